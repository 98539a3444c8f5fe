package selectorstest

import (
	"fmt"
	"math/rand/v2"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// RandomClusterPolicies generates one to four valid ClusterNetworkPolicies over the clusters of
// RandomSnapshot: both tiers, priorities that tie, namespace and pod subjects, the three actions,
// namespace, pod and network peers (the cluster's addresses and outside it, both families), port
// numbers, ranges and named ports.
func RandomClusterPolicies(r *rand.Rand) []*v1beta1.ClusterNetworkPolicy {
	var out []*v1beta1.ClusterNetworkPolicy
	for i := range 1 + r.IntN(4) {
		out = append(out, clusterPolicy(r, fmt.Sprintf("cnp%d", i)))
	}
	return out
}

var clusterActions = []v1beta1.ClusterNetworkPolicyRuleAction{
	v1beta1.ClusterNetworkPolicyRuleActionAccept, v1beta1.ClusterNetworkPolicyRuleActionDeny, v1beta1.ClusterNetworkPolicyRuleActionPass,
}

func clusterPolicy(r *rand.Rand, name string) *v1beta1.ClusterNetworkPolicy {
	cnp := &v1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}
	cnp.Spec.Tier = []v1beta1.Tier{v1beta1.AdminTier, v1beta1.BaselineTier}[r.IntN(2)]
	cnp.Spec.Priority = int32(r.IntN(3))
	if r.IntN(2) == 0 {
		cnp.Spec.Subject.Namespaces = selector(r, "ns", namespaces)
	} else {
		cnp.Spec.Subject.Pods = &v1beta1.NamespacedPod{NamespaceSelector: *selector(r, "ns", namespaces), PodSelector: *selector(r, "pod", pods)}
	}
	for range r.IntN(4) {
		rule := v1beta1.ClusterNetworkPolicyIngressRule{Action: clusterActions[r.IntN(3)], Protocols: clusterProtocols(r)}
		for range 1 + r.IntN(2) {
			p := clusterPeer(r, false)
			rule.From = append(rule.From, v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: p.Namespaces, Pods: p.Pods})
		}
		cnp.Spec.Ingress = append(cnp.Spec.Ingress, rule)
	}
	for range r.IntN(4) {
		rule := v1beta1.ClusterNetworkPolicyEgressRule{Action: clusterActions[r.IntN(3)], Protocols: clusterProtocols(r)}
		for range 1 + r.IntN(2) {
			rule.To = append(rule.To, clusterPeer(r, true))
		}
		cnp.Spec.Egress = append(cnp.Spec.Egress, rule)
	}
	return cnp
}

func clusterPeer(r *rand.Rand, egress bool) v1beta1.ClusterNetworkPolicyEgressPeer {
	kinds := 2
	if egress {
		kinds = 3
	}
	var p v1beta1.ClusterNetworkPolicyEgressPeer
	switch r.IntN(kinds) {
	case 0:
		p.Namespaces = selector(r, "ns", namespaces)
	case 1:
		p.Pods = &v1beta1.NamespacedPod{NamespaceSelector: *selector(r, "ns", namespaces), PodSelector: *selector(r, "pod", pods)}
	default:
		cidrs := []string{"198.18.0.0/15", "198.18.1.0/24", "198.18.0.8/29", "0.0.0.0/0", "203.0.113.0/25", "fd18::/64", "::/0"}
		for range 1 + r.IntN(2) {
			p.Networks = append(p.Networks, v1beta1.CIDR(cidrs[r.IntN(len(cidrs))]))
		}
	}
	return p
}

func clusterProtocols(r *rand.Rand) []v1beta1.ClusterNetworkPolicyProtocol {
	var out []v1beta1.ClusterNetworkPolicyProtocol
	for range r.IntN(3) {
		var port *v1beta1.Port
		switch r.IntN(4) {
		case 1:
			port = &v1beta1.Port{Number: []int32{80, 81, 443}[r.IntN(3)]}
		case 2:
			port = &v1beta1.Port{Range: &v1beta1.PortRange{Start: []int32{1, 79, 81}[r.IntN(3)], End: []int32{80, 81, 8080}[r.IntN(3)]}}
		case 3:
			port = &v1beta1.Port{Range: &v1beta1.PortRange{Start: 8000, End: 8080}}
		}
		var p v1beta1.ClusterNetworkPolicyProtocol
		switch r.IntN(4) {
		case 0:
			p.TCP = &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: port}
		case 1:
			p.UDP = &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: port}
		case 2:
			p.SCTP = &v1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: port}
		default:
			p.DestinationNamedPort = []string{"serve-tcp", "serve-udp"}[r.IntN(2)]
		}
		out = append(out, p)
	}
	return out
}
