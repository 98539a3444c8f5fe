package selectors_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// TestClusterPoliciesMatchFullRecompute: on random clusters with random ClusterNetworkPolicies,
// the Resolver's Model equals the Model without them completed by a recompute from scratch that
// uses none of the Resolver's indexes, on every node.
func TestClusterPoliciesMatchFullRecompute(t *testing.T) {
	for i, b := range randomSeeds(23, 150, 320) {
		c := &chooser{data: b}
		s := randomSnapshot(c)
		for j := range 1 + c.pick(4) {
			s.ClusterPolicies = append(s.ClusterPolicies, randomClusterPolicy(c, fmt.Sprintf("cnp%d", j)))
		}
		for _, node := range []string{testNode, "n2"} {
			s.Node = node
			got := selectors.Resolve(s)
			without := *s
			without.ClusterPolicies = nil
			want := selectors.Resolve(&without)
			selectors.ResolveClusterPoliciesFully(s, want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d, node %s:\n%s", i, node, diffModels(got, want))
			}
		}
	}
}

// TestResolverClusterPolicyEvents follows one ClusterNetworkPolicy through the events the brief
// of the Resolver names: its set exists only while it selects a local pod, a namespace relabel
// moves a local pod in and out of its subject, a peer relabel changes the set's elements, and each
// Model's Changes name what changed.
func TestResolverClusterPolicyEvents(t *testing.T) {
	s := cnpSnapshot()
	r := selectors.NewResolver(testNode)
	r.Load(s)
	r.Model()
	cnp := makeCNP(t, "team-b-only", `
tier: Admin
priority: 1
subject: {namespaces: {matchLabels: {guarded: "yes"}}}
ingress: [{action: Deny, from: [{pods: {namespaceSelector: {matchLabels: {team: b}}, podSelector: {matchLabels: {app: x}}}}]}]
`)
	r.SetClusterPolicy(cnp)
	m, changes := r.Model()
	if lp := localPod(t, m, "a/x"); lp.ClusterIngress != nil || len(m.AddressSets) != 0 || !changes.None() {
		t.Fatalf("a policy selecting no local pod: ClusterIngress %+v, sets %+v, changes %+v", lp.ClusterIngress, m.AddressSets, changes)
	}

	r.SetNamespace(makeNamespace("a", "team", "a", "guarded", "yes"))
	m, changes = r.Model()
	lp := localPod(t, m, "a/x")
	if lp.ClusterIngress == nil || len(lp.ClusterIngress.Admin) != 1 {
		t.Fatalf("after its namespace joined the subject, a/x has ClusterIngress %+v", lp.ClusterIngress)
	}
	set := lp.ClusterIngress.Admin[0].Peers
	if len(m.AddressSets) != 1 || m.AddressSets[0].ID != set || renderRanges(m.AddressSets[0].Ranges) != "198.18.2.1" {
		t.Errorf("AddressSets = %+v, want %s with b/x", m.AddressSets, set)
	}
	if !changes.LocalPods.Has("a/x") || !changes.AddressSets.Has(set) {
		t.Errorf("changes %+v do not name a/x and %s", changes, set)
	}

	r.SetPod(makePod("b", "x", withLabels("app", "y"), withIPs("198.18.2.1"), onNode("n2")))
	m, changes = r.Model()
	if len(m.AddressSets) != 1 || m.AddressSets[0].Ranges != nil || !changes.AddressSets.Has(set) || changes.LocalPods.Len() != 0 {
		t.Errorf("after the peer's relabel: sets %+v, changes %+v", m.AddressSets, changes)
	}

	r.DeleteClusterPolicy(cnp.Name)
	m, changes = r.Model()
	if lp := localPod(t, m, "a/x"); lp.ClusterIngress != nil || len(m.AddressSets) != 0 || !changes.LocalPods.Has("a/x") || !changes.AddressSets.Has(set) {
		t.Errorf("after the delete: ClusterIngress %+v, sets %+v, changes %+v", lp.ClusterIngress, m.AddressSets, changes)
	}
}

// TestResolverClusterPolicyProblems: problems of a policy that selects no pod are reported, a
// named port problem follows the pod that lacks the port, and Changes say when they changed.
func TestResolverClusterPolicyProblems(t *testing.T) {
	r := selectors.NewResolver(testNode)
	r.Load(cnpSnapshot())
	r.Model()
	r.SetClusterPolicy(makeCNP(t, "named", `
tier: Baseline
priority: 3
subject: {namespaces: {}}
ingress: [{action: Accept, from: [{namespaces: {}}], protocols: [{destinationNamedPort: metrics}]}]
egress: [{action: Deny, to: [{domainNames: [example.com]}]}]
`))
	m, changes := r.Model()
	if got := renderProblems(m.ClusterProblems); len(got) != 3 || !changes.ClusterProblems {
		// domainNames unsupported, the Deny rule failed closed, metrics undefined on a/x, and
		// nothing for the pod of b, which is not local.
		t.Errorf("ClusterProblems = %q (changes %+v), want 3", got, changes)
	}
	r.SetPod(makePod("a", "x", withLabels("app", "x"), withIPs("198.18.1.1"), withPorts("metrics/TCP/9090")))
	m, changes = r.Model()
	if got := renderProblems(m.ClusterProblems); len(got) != 2 || !changes.ClusterProblems {
		t.Errorf("after a/x defined metrics: ClusterProblems = %q (changes %+v), want 2", got, changes)
	}
	if rule := localPod(t, m, "a/x").ClusterIngress.Baseline[0]; !reflect.DeepEqual(rule.Ports, []selectors.PortRange{{Protocol: "TCP", First: 9090, Last: 9090}}) {
		t.Errorf("named port resolved to %+v", rule.Ports)
	}
}
