// Package selectorstest generates random clusters for property tests: the engine's (a packet traced
// through the compiled rulesets gets the oracle's verdict) and explain's (the spec answer is the
// oracle's).
package selectorstest

import (
	"fmt"
	"math/rand/v2"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// IP plan of the generated clusters: pod i of namespace n has 198.18.n.(10+i) and, when dual-stack,
// fd18::n:(10+i); pods sit on nodes n1 or n2;
// 203.0.113.0/24 is outside the cluster.

var (
	namespaces = []string{"x", "y", "z"}
	pods       = []string{"a", "b", "c", "d"}
	colors     = []string{"red", "blue"}
	// External are addresses outside the cluster, one inside an ipBlock's except in some policies.
	External = []string{"203.0.113.7", "203.0.113.200"}
)

// RandomSnapshot generates a cluster of three namespaces of four pods each, on nodes n1 and n2, with
// random labels, named port numbers, families and finished pods, and one to four random
// NetworkPolicies over them.
func RandomSnapshot(r *rand.Rand) *selectors.Snapshot {
	s := &selectors.Snapshot{}
	for ni, ns := range namespaces {
		labels := map[string]string{"ns": ns, "kubernetes.io/metadata.name": ns}
		if r.IntN(2) == 0 {
			labels["color"] = colors[r.IntN(2)]
		}
		s.Namespaces = append(s.Namespaces, selectors.Namespace{Name: ns, Labels: labels})
		for pi, name := range pods {
			p := selectors.Pod{Namespace: ns, Name: name, Node: fmt.Sprintf("n%d", 1+r.IntN(2)), Phase: corev1.PodRunning,
				Labels: map[string]string{"pod": name}}
			if r.IntN(2) == 0 {
				p.Labels["color"] = colors[r.IntN(2)]
			}
			p.IPs = []netip.Addr{netip.AddrFrom4([4]byte{198, 18, byte(ni), byte(10 + pi)})}
			if r.IntN(3) == 0 {
				p.IPs = append(p.IPs, netip.MustParseAddr(fmt.Sprintf("fd18::%d:%d", ni, 10+pi)))
			}
			// Named ports map to different numbers on different pods.
			p.Ports = []selectors.ContainerPort{
				{Name: "serve-tcp", Number: int32(80 + r.IntN(2)), Protocol: corev1.ProtocolTCP},
				{Name: "serve-udp", Number: 81, Protocol: corev1.ProtocolUDP},
			}
			if r.IntN(8) == 0 {
				p.Phase = corev1.PodSucceeded
			}
			s.Pods = append(s.Pods, p)
		}
	}
	for i := 0; i < 1+r.IntN(4); i++ {
		s.Policies = append(s.Policies, policy(r, i))
	}
	return s
}

func selector(r *rand.Rand, key string, values []string) *metav1.LabelSelector {
	switch r.IntN(5) {
	case 0:
		return &metav1.LabelSelector{}
	case 1:
		return &metav1.LabelSelector{MatchLabels: map[string]string{key: values[r.IntN(len(values))]}}
	case 2:
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "color", Operator: metav1.LabelSelectorOpIn, Values: []string{colors[r.IntN(2)]}}}}
	case 3:
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "color", Operator: metav1.LabelSelectorOpDoesNotExist}}}
	default:
		return &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: key, Operator: metav1.LabelSelectorOpNotIn, Values: []string{values[r.IntN(len(values))]}}}}
	}
}

func peer(r *rand.Rand) networkingv1.NetworkPolicyPeer {
	switch r.IntN(4) {
	case 0:
		return networkingv1.NetworkPolicyPeer{PodSelector: selector(r, "pod", pods)}
	case 1:
		return networkingv1.NetworkPolicyPeer{NamespaceSelector: selector(r, "ns", namespaces)}
	case 2:
		return networkingv1.NetworkPolicyPeer{PodSelector: selector(r, "pod", pods), NamespaceSelector: selector(r, "ns", namespaces)}
	default:
		cidrs := []string{"198.18.0.0/15", "198.18.1.0/24", "198.18.0.8/29", "0.0.0.0/0", "203.0.113.0/24", "fd18::/64", "::/0"}
		excepts := []string{"198.18.1.10/31", "198.18.0.12/32", "203.0.113.0/25", "fd18::1:0/112"}
		b := &networkingv1.IPBlock{CIDR: cidrs[r.IntN(len(cidrs))]}
		for i := 0; i < r.IntN(3); i++ {
			b.Except = append(b.Except, excepts[r.IntN(len(excepts))])
		}
		return networkingv1.NetworkPolicyPeer{IPBlock: b}
	}
}

func ports(r *rand.Rand) []networkingv1.NetworkPolicyPort {
	var ports []networkingv1.NetworkPolicyPort
	for i := 0; i < r.IntN(3); i++ {
		var p networkingv1.NetworkPolicyPort
		switch r.IntN(6) {
		case 0:
			v := intstr.FromInt32(int32(80 + r.IntN(2)))
			p.Port = &v
		case 4: // apart from 79-81: a rule's ports become several ranges (a port set)
			v := intstr.FromInt32(443)
			p.Port = &v
		case 5:
			v, end := intstr.FromInt32(8000), int32(8080)
			p.Port, p.EndPort = &v, &end
		case 1:
			v := intstr.FromString([]string{"serve-tcp", "serve-udp"}[r.IntN(2)])
			p.Port = &v
		case 2:
			v, end := intstr.FromInt32(79), int32(80)
			p.Port, p.EndPort = &v, &end
		}
		if r.IntN(2) == 0 {
			proto := []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}[r.IntN(3)]
			p.Protocol = &proto
		}
		ports = append(ports, p)
	}
	return ports
}

func policy(r *rand.Rand, i int) *networkingv1.NetworkPolicy {
	p := &networkingv1.NetworkPolicy{ObjectMeta: metav1.ObjectMeta{Namespace: namespaces[r.IntN(3)], Name: fmt.Sprintf("p%d", i)}}
	p.Spec.PodSelector = *selector(r, "pod", pods)
	for j := 0; j < r.IntN(3); j++ {
		rule := networkingv1.NetworkPolicyIngressRule{Ports: ports(r)}
		for k := 0; k < r.IntN(3); k++ {
			rule.From = append(rule.From, peer(r))
		}
		p.Spec.Ingress = append(p.Spec.Ingress, rule)
	}
	for j := 0; j < r.IntN(3); j++ {
		rule := networkingv1.NetworkPolicyEgressRule{Ports: ports(r)}
		for k := 0; k < r.IntN(3); k++ {
			rule.To = append(rule.To, peer(r))
		}
		p.Spec.Egress = append(p.Spec.Egress, rule)
	}
	switch r.IntN(4) {
	case 0:
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress}
	case 1:
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeEgress}
	case 2:
		p.Spec.PolicyTypes = []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress}
	}
	return p
}
