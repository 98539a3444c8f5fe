package packet

import (
	"cmp"
	"fmt"
	"maps"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// roleLabel marks the two lab pods; the benchmark's own policies select them by it.
const roleLabel = "bench-role"

// Twins says which generated local pods the lab pods copy: the server takes the namespace and labels
// of a typical pod isolated for ingress, the client those of a typical pod isolated for egress, so
// that the generated policies select them as they select those pods.
type Twins struct {
	Server string `json:"server"` // namespace/name of the generated pod the server copies
	Client string `json:"client"`
	// Policies and rules that select the twin in that direction (the allow policy not counted).
	ServerIngressPolicies int `json:"serverIngressPolicies"`
	ServerIngressRules    int `json:"serverIngressRules"`
	ClientEgressPolicies  int `json:"clientEgressPolicies"`
	ClientEgressRules     int `json:"clientEgressRules"`
	// The most policies selecting any local pod for ingress, for scale.
	MaxIngressPolicies int `json:"maxIngressPolicies"`
}

// chooseTwins picks, among the local pods of a resolved model, the one with the median number of
// ingress policies (the server's twin) and the one with the median number of egress policies (the
// client's), ties broken by key so that a seed always picks the same pods.
func chooseTwins(m *selectors.Model) (Twins, error) {
	pick := func(iso func(selectors.LocalPod) *selectors.Isolation, exclude string) (selectors.LocalPod, bool) {
		var pods []selectors.LocalPod
		for _, p := range m.LocalPods {
			if iso(p) != nil && p.Key() != exclude && len(p.IPs) > 0 {
				pods = append(pods, p)
			}
		}
		if len(pods) == 0 {
			return selectors.LocalPod{}, false
		}
		slices.SortFunc(pods, func(a, b selectors.LocalPod) int {
			return cmp.Or(cmp.Compare(len(iso(a).Policies), len(iso(b).Policies)), cmp.Compare(a.Key(), b.Key()))
		})
		return pods[len(pods)/2], true
	}
	ingress := func(p selectors.LocalPod) *selectors.Isolation { return p.Ingress }
	egress := func(p selectors.LocalPod) *selectors.Isolation { return p.Egress }
	server, ok := pick(ingress, "")
	if !ok {
		return Twins{}, fmt.Errorf("choosing the server's twin: no local pod is isolated for ingress")
	}
	client, ok := pick(egress, server.Key())
	if !ok {
		return Twins{}, fmt.Errorf("choosing the client's twin: no other local pod is isolated for egress")
	}
	t := Twins{
		Server: server.Key(), Client: client.Key(),
		ServerIngressPolicies: len(server.Ingress.Policies), ServerIngressRules: len(server.Ingress.Rules),
		ClientEgressPolicies: len(client.Egress.Policies), ClientEgressRules: len(client.Egress.Rules),
	}
	for _, p := range m.LocalPods {
		if p.Ingress != nil {
			t.MaxIngressPolicies = max(t.MaxIngressPolicies, len(p.Ingress.Policies))
		}
	}
	return t, nil
}

// labPods are the addresses of one node's client and server.
type labPods struct {
	Client, Server netip.Addr
}

// withLabPods returns a copy of s (s itself is not changed) with the two lab pods on the node under
// test. With twins, each lab pod copies its twin's namespace and labels, and two policies allow the
// benchmark's ports from the client to the server (the client's egress, the server's ingress);
// without, the lab pods go to a namespace of their own and no policy is added.
func withLabPods(s *selectors.Snapshot, pods labPods, twins *Twins) (*selectors.Snapshot, error) {
	out := *s
	out.Pods = slices.Clone(s.Pods)
	out.Namespaces = slices.Clone(s.Namespaces)
	out.Policies = slices.Clone(s.Policies)
	serverNS, clientNS := "bench", "bench"
	serverLabels, clientLabels := map[string]string{}, map[string]string{}
	if twins == nil {
		out.Namespaces = append(out.Namespaces, selectors.Namespace{Name: "bench"})
	} else {
		byKey := map[string]selectors.Pod{}
		for _, p := range s.Pods {
			byKey[p.Namespace+"/"+p.Name] = p
		}
		server, ok1 := byKey[twins.Server]
		client, ok2 := byKey[twins.Client]
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("adding the lab pods: twins %s and %s are not in the snapshot", twins.Server, twins.Client)
		}
		serverNS, clientNS = server.Namespace, client.Namespace
		serverLabels, clientLabels = maps.Clone(server.Labels), maps.Clone(client.Labels)
	}
	serverLabels[roleLabel], clientLabels[roleLabel] = "server", "client"
	out.Pods = append(out.Pods,
		labPod(serverNS, "bench-server", serverLabels, pods.Server),
		labPod(clientNS, "bench-client", clientLabels, pods.Client))
	if twins != nil {
		out.Policies = append(out.Policies, allowPolicies(serverNS, clientNS)...)
	}
	return &out, nil
}

func labPod(namespace, name string, labels map[string]string, ip netip.Addr) selectors.Pod {
	return selectors.Pod{
		Namespace: namespace, Name: name, Labels: labels, IPs: []netip.Addr{ip},
		Node: generator.Node, Phase: corev1.PodRunning,
	}
}

// allowPolicies let the client reach the server on the benchmark's ports and nothing else: the
// server's ingress from the client, the client's egress to the server. The peers are "any namespace"
// AND the role label, so the policies hold wherever the twins live.
func allowPolicies(serverNS, clientNS string) []*networkingv1.NetworkPolicy {
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	port := func(proto *corev1.Protocol, n int32) networkingv1.NetworkPolicyPort {
		p := intstr.FromInt32(n)
		return networkingv1.NetworkPolicyPort{Protocol: proto, Port: &p}
	}
	ports := []networkingv1.NetworkPolicyPort{port(&tcp, crrPort), port(&tcp, streamPort), port(&udp, udpPort)}
	role := func(r string) metav1.LabelSelector {
		return metav1.LabelSelector{MatchLabels: map[string]string{roleLabel: r}}
	}
	peer := func(r string) []networkingv1.NetworkPolicyPeer {
		sel := role(r)
		return []networkingv1.NetworkPolicyPeer{{NamespaceSelector: &metav1.LabelSelector{}, PodSelector: &sel}}
	}
	return []*networkingv1.NetworkPolicy{
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: serverNS, Name: "bench-allow-from-client"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: role("server"),
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress},
				Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: peer("client"), Ports: ports}},
			},
		},
		{
			ObjectMeta: metav1.ObjectMeta{Namespace: clientNS, Name: "bench-allow-to-server"},
			Spec: networkingv1.NetworkPolicySpec{
				PodSelector: role("client"),
				PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
				Egress:      []networkingv1.NetworkPolicyEgressRule{{To: peer("server"), Ports: ports}},
			},
		},
	}
}
