package explain_test

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// IP plan of the hand-written cluster:
//   - namespace default (team=a): busybox 10.0.1.10 and fd00::1:10, redis 10.0.1.20 and fd00::1:20
//     (port redis=6379/TCP), guestbook 10.0.1.30, dns 10.0.1.40 (port dns=53/UDP),
//     done 10.0.1.50 (Succeeded), node-agent on the node's 192.0.2.1 (hostNetwork);
//   - namespace other (team=b): client 10.0.2.10 (app=guestbook);
//   - outside the cluster: 203.0.113.0/24, 198.51.100.0/24.

type podTweak func(*selectors.Pod)

func makePod(namespace, name string, tweaks ...podTweak) selectors.Pod {
	p := selectors.Pod{Namespace: namespace, Name: name, Node: "n1", Phase: corev1.PodRunning, Labels: map[string]string{}}
	for _, t := range tweaks {
		t(&p)
	}
	return p
}

func withLabels(kv ...string) podTweak {
	return func(p *selectors.Pod) {
		for i := 0; i+1 < len(kv); i += 2 {
			p.Labels[kv[i]] = kv[i+1]
		}
	}
}

func withIPs(ips ...string) podTweak {
	return func(p *selectors.Pod) {
		for _, ip := range ips {
			p.IPs = append(p.IPs, netip.MustParseAddr(ip))
		}
	}
}

func withPort(name string, number int32, protocol corev1.Protocol) podTweak {
	return func(p *selectors.Pod) {
		p.Ports = append(p.Ports, selectors.ContainerPort{Name: name, Number: number, Protocol: protocol})
	}
}

func withPhase(phase corev1.PodPhase) podTweak { return func(p *selectors.Pod) { p.Phase = phase } }

func withHostNetwork() podTweak { return func(p *selectors.Pod) { p.HostNetwork = true } }

func cluster(policies ...*networkingv1.NetworkPolicy) *selectors.Snapshot {
	return &selectors.Snapshot{
		Namespaces: []selectors.Namespace{
			{Name: "default", Labels: map[string]string{"team": "a"}},
			{Name: "other", Labels: map[string]string{"team": "b"}},
		},
		Pods: []selectors.Pod{
			makePod("default", "busybox", withLabels("app", "busybox"), withIPs("10.0.1.10", "fd00::1:10")),
			makePod("default", "redis", withLabels("app", "redis"), withIPs("10.0.1.20", "fd00::1:20"), withPort("redis", 6379, corev1.ProtocolTCP)),
			makePod("default", "guestbook", withLabels("app", "guestbook"), withIPs("10.0.1.30")),
			makePod("default", "dns", withLabels("app", "dns"), withIPs("10.0.1.40"), withPort("dns", 53, corev1.ProtocolUDP)),
			makePod("default", "done", withLabels("app", "busybox"), withIPs("10.0.1.50"), withPhase(corev1.PodSucceeded)),
			makePod("default", "node-agent", withLabels("app", "agent"), withIPs("192.0.2.1"), withHostNetwork()),
			makePod("other", "client", withLabels("app", "guestbook"), withIPs("10.0.2.10")),
		},
		Policies: policies,
	}
}

type policyTweak func(*networkingv1.NetworkPolicy)

func makePolicy(name string, podLabels map[string]string, tweaks ...policyTweak) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: name}}
	np.Spec.PodSelector = metav1.LabelSelector{MatchLabels: podLabels}
	for _, t := range tweaks {
		t(np)
	}
	return np
}

func ingressRule(peers []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) policyTweak {
	return func(np *networkingv1.NetworkPolicy) {
		np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{From: peers, Ports: ports})
		np.Spec.PolicyTypes = addType(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress)
	}
}

func egressRule(peers []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) policyTweak {
	return func(np *networkingv1.NetworkPolicy) {
		np.Spec.Egress = append(np.Spec.Egress, networkingv1.NetworkPolicyEgressRule{To: peers, Ports: ports})
		np.Spec.PolicyTypes = addType(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress)
	}
}

// denyAll isolates for a direction without any rule.
func denyAll(t networkingv1.PolicyType) policyTweak {
	return func(np *networkingv1.NetworkPolicy) { np.Spec.PolicyTypes = addType(np.Spec.PolicyTypes, t) }
}

func addType(types []networkingv1.PolicyType, t networkingv1.PolicyType) []networkingv1.PolicyType {
	for _, have := range types {
		if have == t {
			return types
		}
	}
	return append(types, t)
}

func peers(ps ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer { return ps }

func podsPeer(kv ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: &metav1.LabelSelector{MatchLabels: pairs(kv)}}
}

func nsPodsPeer(nsLabels, podLabels map[string]string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: nsLabels},
		PodSelector:       &metav1.LabelSelector{MatchLabels: podLabels},
	}
}

func blockPeer(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func pairs(kv []string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

func port(protocol corev1.Protocol, p intstr.IntOrString) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: &protocol, Port: &p}
}

func tcp(n int32) networkingv1.NetworkPolicyPort {
	return port(corev1.ProtocolTCP, intstr.FromInt32(n))
}
func udp(n int32) networkingv1.NetworkPolicyPort {
	return port(corev1.ProtocolUDP, intstr.FromInt32(n))
}
func tcpNamed(name string) networkingv1.NetworkPolicyPort {
	return port(corev1.ProtocolTCP, intstr.FromString(name))
}
