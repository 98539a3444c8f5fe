package generator

import (
	"fmt"
	"math/rand"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"
)

// makeClusterPolicies makes Params.ClusterPolicies ClusterNetworkPolicies in four shapes, in turn:
// an Admin guardrail of a team's namespaces (deny dev on a port, pass within the team), an Admin
// rule for prod databases (accept one app by named port, deny egress to an external range), an
// Admin DNS allowance for prod, and a Baseline isolation of dev namespaces. Their random choices
// come from a source of their own, so that the rest of the cluster and its events do not depend on
// how many there are.
func (c *Cluster) makeClusterPolicies() {
	rng := rand.New(rand.NewSource(c.Params.Seed + 1))
	for j := range c.Params.ClusterPolicies {
		c.Snapshot.ClusterPolicies = append(c.Snapshot.ClusterPolicies, c.makeClusterPolicy(rng, j))
	}
}

func (c *Cluster) makeClusterPolicy(rng *rand.Rand, j int) *v1beta1.ClusterNetworkPolicy {
	cnp := &v1beta1.ClusterNetworkPolicy{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cluster-policy-%03d", j)}}
	cnp.Spec.Tier, cnp.Spec.Priority = v1beta1.AdminTier, int32(rng.Intn(1000))
	team := labelSelector("team", c.teamValue(rng.Intn(c.alphabet.teams)))
	app := labelSelector("app", c.appValue(rng.Intn(c.alphabet.apps)))
	switch j % 4 {
	case 0:
		cnp.Spec.Subject.Namespaces = team
		cnp.Spec.Ingress = []v1beta1.ClusterNetworkPolicyIngressRule{
			{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny, From: namespacesPeer(labelSelector("env", "dev")), Protocols: tcpPort(5432)},
			{Action: v1beta1.ClusterNetworkPolicyRuleActionPass, From: namespacesPeer(team)},
		}
	case 1:
		cnp.Spec.Subject.Pods = &v1beta1.NamespacedPod{NamespaceSelector: *labelSelector("env", "prod"), PodSelector: *labelSelector("tier", "db")}
		cnp.Spec.Ingress = []v1beta1.ClusterNetworkPolicyIngressRule{{
			Action:    v1beta1.ClusterNetworkPolicyRuleActionAccept,
			From:      []v1beta1.ClusterNetworkPolicyIngressPeer{{Pods: &v1beta1.NamespacedPod{NamespaceSelector: *team, PodSelector: *app}}},
			Protocols: []v1beta1.ClusterNetworkPolicyProtocol{{DestinationNamedPort: "http"}},
		}}
		cnp.Spec.Egress = []v1beta1.ClusterNetworkPolicyEgressRule{{
			Action: v1beta1.ClusterNetworkPolicyRuleActionDeny,
			To:     []v1beta1.ClusterNetworkPolicyEgressPeer{{Networks: []v1beta1.CIDR{v1beta1.CIDR(fmt.Sprintf("172.16.%d.0/24", rng.Intn(256)))}}},
		}}
	case 2:
		cnp.Spec.Subject.Namespaces = labelSelector("env", "prod")
		cnp.Spec.Egress = []v1beta1.ClusterNetworkPolicyEgressRule{{
			Action:    v1beta1.ClusterNetworkPolicyRuleActionAccept,
			To:        []v1beta1.ClusterNetworkPolicyEgressPeer{{Namespaces: labelSelector("kubernetes.io/metadata.name", namespaceName(0))}},
			Protocols: []v1beta1.ClusterNetworkPolicyProtocol{{UDP: &v1beta1.ClusterNetworkPolicyProtocolUDP{DestinationPort: &v1beta1.Port{Number: 53}}}},
		}}
	case 3:
		cnp.Spec.Tier = v1beta1.BaselineTier
		cnp.Spec.Subject.Namespaces = labelSelector("env", "dev")
		cnp.Spec.Ingress = []v1beta1.ClusterNetworkPolicyIngressRule{
			{Action: v1beta1.ClusterNetworkPolicyRuleActionAccept, From: namespacesPeer(team)},
			{Action: v1beta1.ClusterNetworkPolicyRuleActionDeny, From: namespacesPeer(&metav1.LabelSelector{})},
		}
	}
	return cnp
}

func labelSelector(key, value string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{key: value}}
}

func namespacesPeer(s *metav1.LabelSelector) []v1beta1.ClusterNetworkPolicyIngressPeer {
	return []v1beta1.ClusterNetworkPolicyIngressPeer{{Namespaces: s}}
}

func tcpPort(n int32) []v1beta1.ClusterNetworkPolicyProtocol {
	return []v1beta1.ClusterNetworkPolicyProtocol{{TCP: &v1beta1.ClusterNetworkPolicyProtocolTCP{DestinationPort: &v1beta1.Port{Number: n}}}}
}

// editClusterPolicy moves a random ClusterNetworkPolicy to another priority, which reorders its
// tier for every local pod it selects.
func (c *Cluster) editClusterPolicy() (string, error) {
	if len(c.Snapshot.ClusterPolicies) == 0 {
		return "", fmt.Errorf("the cluster has no ClusterNetworkPolicy")
	}
	j := c.rng.Intn(len(c.Snapshot.ClusterPolicies))
	// Replace, do not modify: earlier snapshots may share the object.
	cnp := c.Snapshot.ClusterPolicies[j].DeepCopy()
	old := cnp.Spec.Priority
	cnp.Spec.Priority = (old + 1 + int32(c.rng.Intn(999))) % 1000
	c.Snapshot.ClusterPolicies[j] = cnp
	c.Last.ClusterPolicy = cnp
	return fmt.Sprintf("cluster policy %s priority %d -> %d", cnp.Name, old, cnp.Spec.Priority), nil
}
