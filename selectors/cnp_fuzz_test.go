package selectors_test

import (
	"fmt"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// FuzzClusterPoliciesAgreeWithAllows adds random ClusterNetworkPolicies, unreadable parts included,
// to a random cluster with NetworkPolicies and checks that the Models of every node decide every
// connection as Allows does.
func FuzzClusterPoliciesAgreeWithAllows(f *testing.F) {
	f.Add([]byte{})
	for _, b := range randomSeeds(19, 150, 320) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &chooser{data: data}
		s := randomSnapshot(c)
		for i := range 1 + c.pick(4) {
			s.ClusterPolicies = append(s.ClusterPolicies, randomClusterPolicy(c, fmt.Sprintf("cnp%d", i)))
		}
		checkAgainstOracle(t, s)
	})
}

var cnpActions = []v1beta1.ClusterNetworkPolicyRuleAction{"Accept", "Deny", "Pass", "Accept", "Deny", "Pass", "Reject"}

func randomClusterPolicy(c *chooser, name string) *v1beta1.ClusterNetworkPolicy {
	cnp := &v1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}}
	cnp.Spec.Tier = []v1beta1.Tier{v1beta1.AdminTier, v1beta1.BaselineTier, v1beta1.AdminTier, "Middle"}[c.pick(4)]
	cnp.Spec.Priority = int32(c.pick(3))
	switch c.pick(5) {
	case 0, 1:
		cnp.Spec.Subject.Namespaces = randomSelector(c)
	case 2, 3:
		cnp.Spec.Subject.Pods = &v1beta1.NamespacedPod{NamespaceSelector: *randomSelector(c), PodSelector: *randomSelector(c)}
	default: // invalid: neither
	}
	for range c.pick(3) {
		rule := v1beta1.ClusterNetworkPolicyIngressRule{Action: cnpActions[c.pick(len(cnpActions))], Protocols: randomProtocols(c)}
		for range 1 + c.pick(2) {
			p := randomClusterPeer(c, false)
			rule.From = append(rule.From, v1beta1.ClusterNetworkPolicyIngressPeer{Namespaces: p.Namespaces, Pods: p.Pods})
		}
		cnp.Spec.Ingress = append(cnp.Spec.Ingress, rule)
	}
	for range c.pick(3) {
		rule := v1beta1.ClusterNetworkPolicyEgressRule{Action: cnpActions[c.pick(len(cnpActions))], Protocols: randomProtocols(c)}
		for range 1 + c.pick(2) {
			rule.To = append(rule.To, randomClusterPeer(c, true))
		}
		cnp.Spec.Egress = append(cnp.Spec.Egress, rule)
	}
	return cnp
}

func randomClusterPeer(c *chooser, egress bool) v1beta1.ClusterNetworkPolicyEgressPeer {
	var p v1beta1.ClusterNetworkPolicyEgressPeer
	kinds := 3
	if egress {
		kinds = 6
	}
	switch c.pick(kinds) {
	case 0:
		p.Namespaces = randomSelector(c)
	case 1:
		p.Pods = &v1beta1.NamespacedPod{NamespaceSelector: *randomSelector(c), PodSelector: *randomSelector(c)}
	case 2: // invalid: no field
	case 3:
		for range 1 + c.pick(2) {
			p.Networks = append(p.Networks, v1beta1.CIDR(fuzzCIDRs[c.pick(len(fuzzCIDRs))]))
		}
	case 4:
		p.DomainNames = []v1beta1.DomainName{"example.com"}
	case 5:
		p.Nodes = randomSelector(c)
	}
	return p
}

func randomProtocols(c *chooser) []v1beta1.ClusterNetworkPolicyProtocol {
	var out []v1beta1.ClusterNetworkPolicyProtocol
	for range c.pick(3) {
		var port *v1beta1.Port
		switch c.pick(4) {
		case 1:
			port = &v1beta1.Port{Number: []int32{53, 80, 8080}[c.pick(3)]}
		case 2:
			port = &v1beta1.Port{Range: &v1beta1.PortRange{Start: []int32{1, 53, 80}[c.pick(3)], End: []int32{53, 79, 8080}[c.pick(3)]}}
		case 3:
			port = &v1beta1.Port{Number: 80, Range: &v1beta1.PortRange{Start: 1, End: 90}} // invalid: both
		}
		var p v1beta1.ClusterNetworkPolicyProtocol
		switch c.pick(6) {
		case 0:
			p.TCP = &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: port}
		case 1:
			p.UDP = &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: port}
		case 2:
			p.SCTP = &v1beta1.ClusterNetworkPolicyProtocolSCTP{DestinationPort: port}
		case 3:
			p.DestinationNamedPort = fuzzPortNames[c.pick(2)]
		case 4:
			p.TCP = &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: port}
			p.DestinationNamedPort = "http" // invalid: two fields
		}
		out = append(out, p) // case 5: invalid, no field
	}
	return out
}
