package selectors_test

// IP plan of the tests.
//
//	198.18.1.0/24   pods of namespace "a" (198.18.1.1 is pod a/x, .2 a/y, .3 a/z, ...)
//	198.18.2.0/24   pods of namespace "b"
//	198.18.3.0/24   pods of namespace "c"
//	198.19.0.0/16   addresses outside the cluster (no pod)
//	fd18::1:0/112   IPv6 addresses of namespace "a" pods (fd18::1:1 is a/x)
//	fd18::2:0/112   IPv6 addresses of namespace "b" pods
//	fd18::ff:0/112  IPv6 addresses outside the cluster
//
// Node "n1" is the node under test; "n2" is another node, whose pods are peers but never local.

import (
	"fmt"
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/selectors/oracle"
)

const testNode = "n1"

// Pods.

func makePod(namespace, name string, tweaks ...func(*selectors.Pod)) selectors.Pod {
	p := selectors.Pod{Namespace: namespace, Name: name, Node: testNode, Phase: corev1.PodRunning}
	for _, tweak := range tweaks {
		tweak(&p)
	}
	return p
}

func withLabels(kv ...string) func(*selectors.Pod) {
	return func(p *selectors.Pod) { p.Labels = labelMap(kv...) }
}

func withIPs(ips ...string) func(*selectors.Pod) {
	return func(p *selectors.Pod) {
		for _, ip := range ips {
			p.IPs = append(p.IPs, netip.MustParseAddr(ip))
		}
	}
}

func onNode(node string) func(*selectors.Pod) { return func(p *selectors.Pod) { p.Node = node } }

func inPhase(phase corev1.PodPhase) func(*selectors.Pod) {
	return func(p *selectors.Pod) { p.Phase = phase }
}

func withHostNetwork() func(*selectors.Pod) { return func(p *selectors.Pod) { p.HostNetwork = true } }

// withPorts takes "name/PROTOCOL/number" triples, e.g. "http/TCP/8080"; an empty protocol is TCP.
func withPorts(specs ...string) func(*selectors.Pod) {
	return func(p *selectors.Pod) {
		for _, spec := range specs {
			var cp selectors.ContainerPort
			parts := strings.Split(spec, "/")
			cp.Name, cp.Protocol = parts[0], corev1.Protocol(parts[1])
			if _, err := fmt.Sscan(parts[2], &cp.Number); err != nil {
				panic(fmt.Sprintf("port spec %q: %v", spec, err))
			}
			p.Ports = append(p.Ports, cp)
		}
	}
}

func makeNamespace(name string, kv ...string) selectors.Namespace {
	return selectors.Namespace{Name: name, Labels: labelMap(kv...)}
}

func labelMap(kv ...string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// Policies.

func makePolicy(namespace, name string, tweaks ...func(*networkingv1.NetworkPolicy)) *networkingv1.NetworkPolicy {
	np := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	for _, tweak := range tweaks {
		tweak(np)
	}
	return np
}

// selecting sets spec.podSelector to matchLabels kv (no kv: {}, every pod of the namespace).
func selecting(kv ...string) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) { np.Spec.PodSelector = *sel(kv...) }
}

func selectingExpr(reqs ...metav1.LabelSelectorRequirement) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) {
		np.Spec.PodSelector = metav1.LabelSelector{MatchExpressions: reqs}
	}
}

func withTypes(types ...networkingv1.PolicyType) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) { np.Spec.PolicyTypes = types }
}

func withIngress(rules ...networkingv1.NetworkPolicyIngressRule) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) { np.Spec.Ingress = append(np.Spec.Ingress, rules...) }
}

func withEgress(rules ...networkingv1.NetworkPolicyEgressRule) func(*networkingv1.NetworkPolicy) {
	return func(np *networkingv1.NetworkPolicy) { np.Spec.Egress = append(np.Spec.Egress, rules...) }
}

func ingressRule(from []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) networkingv1.NetworkPolicyIngressRule {
	return networkingv1.NetworkPolicyIngressRule{From: from, Ports: ports}
}

func egressRule(to []networkingv1.NetworkPolicyPeer, ports ...networkingv1.NetworkPolicyPort) networkingv1.NetworkPolicyEgressRule {
	return networkingv1.NetworkPolicyEgressRule{To: to, Ports: ports}
}

func peers(ps ...networkingv1.NetworkPolicyPeer) []networkingv1.NetworkPolicyPeer { return ps }

// sel is a matchLabels selector; no kv is the empty selector {}.
func sel(kv ...string) *metav1.LabelSelector {
	ls := &metav1.LabelSelector{}
	if len(kv) > 0 {
		ls.MatchLabels = labelMap(kv...)
	}
	return ls
}

func expr(key string, op metav1.LabelSelectorOperator, values ...string) metav1.LabelSelectorRequirement {
	return metav1.LabelSelectorRequirement{Key: key, Operator: op, Values: values}
}

func podPeer(ls *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{PodSelector: ls}
}

func nsPeer(ls *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: ls}
}

func nsPodPeer(ns, pod *metav1.LabelSelector) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{NamespaceSelector: ns, PodSelector: pod}
}

func ipBlockPeer(cidr string, except ...string) networkingv1.NetworkPolicyPeer {
	return networkingv1.NetworkPolicyPeer{IPBlock: &networkingv1.IPBlock{CIDR: cidr, Except: except}}
}

func port(protocol corev1.Protocol, p int) networkingv1.NetworkPolicyPort {
	pp := intstr.FromInt32(int32(p))
	return networkingv1.NetworkPolicyPort{Protocol: &protocol, Port: &pp}
}

// defaultProtocolPort leaves protocol unset.
func defaultProtocolPort(p int) networkingv1.NetworkPolicyPort {
	pp := intstr.FromInt32(int32(p))
	return networkingv1.NetworkPolicyPort{Port: &pp}
}

func portRange(protocol corev1.Protocol, first, last int) networkingv1.NetworkPolicyPort {
	np := port(protocol, first)
	end := int32(last)
	np.EndPort = &end
	return np
}

func namedPortOf(protocol corev1.Protocol, name string) networkingv1.NetworkPolicyPort {
	pp := intstr.FromString(name)
	return networkingv1.NetworkPolicyPort{Protocol: &protocol, Port: &pp}
}

func everyPortOf(protocol corev1.Protocol) networkingv1.NetworkPolicyPort {
	return networkingv1.NetworkPolicyPort{Protocol: &protocol}
}

const (
	tcp  = corev1.ProtocolTCP
	udp  = corev1.ProtocolUDP
	sctp = corev1.ProtocolSCTP
	icmp = corev1.Protocol("ICMP")
)

// Connections.

func conn(src, dst string, protocol corev1.Protocol, port uint16) oracle.Connection {
	return oracle.Connection{Src: netip.MustParseAddr(src), Dst: netip.MustParseAddr(dst), Protocol: protocol, Port: port}
}

// connCase is a connection and whether it must be allowed.
type connCase struct {
	oracle.Connection
	allowed bool
}

func allowed(c oracle.Connection) connCase { return connCase{c, true} }
func denied(c oracle.Connection) connCase  { return connCase{c, false} }

type metav1LabelSelector = metav1.LabelSelector

func reqs(rs ...metav1.LabelSelectorRequirement) []metav1.LabelSelectorRequirement { return rs }
