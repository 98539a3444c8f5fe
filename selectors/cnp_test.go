package selectors_test

import (
	"fmt"
	"reflect"
	"testing"

	"sigs.k8s.io/network-policy-api/apis/v1beta1"
	"sigs.k8s.io/yaml"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// makeCNP reads a ClusterNetworkPolicy spec written in YAML.
func makeCNP(t *testing.T, name, spec string) *v1beta1.ClusterNetworkPolicy {
	t.Helper()
	cnp := &v1beta1.ClusterNetworkPolicy{}
	if err := yaml.UnmarshalStrict([]byte(spec), &cnp.Spec); err != nil {
		t.Fatalf("reading %s: %v", name, err)
	}
	cnp.Name = name
	return cnp
}

func cnpSnapshot(cnps ...*v1beta1.ClusterNetworkPolicy) *selectors.Snapshot {
	return &selectors.Snapshot{
		Node:       testNode,
		Namespaces: []selectors.Namespace{makeNamespace("a", "team", "a"), makeNamespace("b", "team", "b")},
		Pods: []selectors.Pod{
			makePod("a", "x", withLabels("app", "x"), withIPs("198.18.1.1"), withPorts("http/TCP/8080")),
			makePod("b", "x", withLabels("app", "x"), withIPs("198.18.2.1"), onNode("n2")),
			makePod("b", "h", withIPs("198.18.2.9"), withHostNetwork(), onNode("n2")),
		},
		ClusterPolicies: cnps,
	}
}

func localPod(t *testing.T, m *selectors.Model, key string) selectors.LocalPod {
	t.Helper()
	for _, lp := range m.LocalPods {
		if lp.Key() == key {
			return lp
		}
	}
	t.Fatalf("no local pod %s", key)
	return selectors.LocalPod{}
}

func ruleOrder(rules []selectors.ClusterRule) []string {
	var out []string
	for _, r := range rules {
		out = append(out, r.Policy+"/"+string(r.Action))
	}
	return out
}

func TestClusterPolicyOrder(t *testing.T) {
	rule := "subject: {namespaces: {}}\ningress: [{action: %s, from: [{namespaces: {}}]}, {action: Deny, from: [{namespaces: {}}]}]\n"
	s := cnpSnapshot(
		makeCNP(t, "late", "tier: Admin\npriority: 20\n"+fmt.Sprintf(rule, "Accept")),
		makeCNP(t, "early-b", "tier: Admin\npriority: 10\n"+fmt.Sprintf(rule, "Pass")),
		makeCNP(t, "early-a", "tier: Admin\npriority: 10\n"+fmt.Sprintf(rule, "Accept")),
		makeCNP(t, "base", "tier: Baseline\npriority: 0\n"+fmt.Sprintf(rule, "Pass")),
	)
	lp := localPod(t, selectors.Resolve(s), "a/x")
	if lp.ClusterEgress != nil {
		t.Errorf("ClusterEgress = %+v, want nil: no policy has egress rules", lp.ClusterEgress)
	}
	want := []string{"early-a/Accept", "early-a/Deny", "early-b/Pass", "early-b/Deny", "late/Accept", "late/Deny"}
	if got := ruleOrder(lp.ClusterIngress.Admin); !reflect.DeepEqual(got, want) {
		t.Errorf("Admin = %q, want %q", got, want)
	}
	if got := ruleOrder(lp.ClusterIngress.Baseline); !reflect.DeepEqual(got, []string{"base/Pass", "base/Deny"}) {
		t.Errorf("Baseline = %q", got)
	}
}

func TestClusterPolicySharesPeerSets(t *testing.T) {
	s := cnpSnapshot(makeCNP(t, "from-b", `
tier: Admin
priority: 1
subject: {pods: {namespaceSelector: {matchLabels: {team: a}}, podSelector: {}}}
ingress: [{action: Accept, from: [{namespaces: {matchLabels: {team: b}}}]}]
egress: [{action: Deny, to: [{networks: [198.18.2.0/24]}], protocols: [{tcp: {destinationPort: {range: {start: 80, end: 81}}}}]}]
`))
	s.Policies = append(s.Policies, makePolicy("a", "np", withIngress(ingressRule(peers(nsPeer(sel("team", "b")))))))
	m := selectors.Resolve(s)
	lp := localPod(t, m, "a/x")
	npPeers := lp.Ingress.Rules[0].Peers
	if got := lp.ClusterIngress.Admin[0].Peers; got != npPeers {
		t.Errorf("CNP peers set %s, NetworkPolicy peers set %s: equal selectors must share one set", got, npPeers)
	}
	sets := map[string]selectors.AddressSet{}
	for _, set := range m.AddressSets {
		sets[set.ID] = set
	}
	if len(sets) != len(m.AddressSets) {
		t.Errorf("AddressSets hold an ID twice: %+v", m.AddressSets)
	}
	// The hostNetwork pod of b is no peer.
	if got, want := renderRanges(sets[npPeers].Ranges), "198.18.2.1"; got != want {
		t.Errorf("peers of b = %v, want %v", got, want)
	}
	egress := lp.ClusterEgress.Admin[0]
	if got, want := renderRanges(sets[egress.Peers].Ranges), "198.18.2.0-198.18.2.255"; got != want {
		t.Errorf("networks peer = %v, want %v", got, want)
	}
	if want := []selectors.PortRange{{Protocol: "TCP", First: 80, Last: 81}}; !reflect.DeepEqual(egress.Ports, want) || egress.AllPorts {
		t.Errorf("egress ports = %+v (all %v), want %+v", egress.Ports, egress.AllPorts, want)
	}
}

func TestClusterPolicyFailsClosed(t *testing.T) {
	s := cnpSnapshot(makeCNP(t, "broken", `
tier: Admin
priority: 1
subject: {namespaces: {}}
egress:
- {name: accept-nothing, action: Accept, to: [{}]}
- {name: pass-domains, action: Pass, to: [{domainNames: [example.com]}]}
- {name: deny-nodes, action: Deny, to: [{nodes: {}}], protocols: [{tcp: {destinationPort: {number: 80}}}]}
`))
	m := selectors.Resolve(s)
	got := localPod(t, m, "a/x").ClusterEgress.Admin
	denyAll := func(index int, name string) selectors.ClusterRule {
		return selectors.ClusterRule{Policy: "broken", Priority: 1, Index: index, Name: name, Action: selectors.Deny, AnyPeer: true, AllPorts: true}
	}
	if want := []selectors.ClusterRule{denyAll(1, "pass-domains"), denyAll(2, "deny-nodes")}; !reflect.DeepEqual(got, want) {
		t.Errorf("rules = %+v\nwant %+v", got, want)
	}
	if len(m.ClusterProblems) < 3 {
		t.Errorf("ClusterProblems = %v, want one per broken rule and peer", m.ClusterProblems)
	}
	for _, p := range m.ClusterProblems {
		if p.Policy != selectors.ClusterPolicyRef("broken") {
			t.Errorf("problem names %v", p.Policy)
		}
	}
}

func TestClusterPolicyIngressNamedPort(t *testing.T) {
	s := cnpSnapshot(makeCNP(t, "http", `
tier: Baseline
priority: 1
subject: {namespaces: {}}
ingress: [{action: Deny, from: [{namespaces: {}}], protocols: [{destinationNamedPort: http}]}]
`))
	got := localPod(t, selectors.Resolve(s), "a/x").ClusterIngress.Baseline[0]
	if want := []selectors.PortRange{{Protocol: "TCP", First: 8080, Last: 8080}}; !reflect.DeepEqual(got.Ports, want) || got.AllPorts {
		t.Errorf("ports = %+v, want %+v", got.Ports, want)
	}
}

// The Models of every node, evaluated tier by tier, agree with the oracle's naive reading of the
// ClusterNetworkPolicy API on every connection between the snapshot's addresses.
func TestClusterPoliciesAgreeWithOracle(t *testing.T) {
	world := func(cnps ...*v1beta1.ClusterNetworkPolicy) *selectors.Snapshot {
		s := cnpSnapshot(cnps...)
		s.Pods = append(s.Pods,
			makePod("a", "y", withLabels("app", "y"), withIPs("198.18.1.2", "fd18::1:2"), withPorts("http/UDP/53", "web/TCP/81"), onNode("n2")),
			makePod("b", "y", withLabels("app", "y", "role", "db"), withIPs("198.18.2.2", "fd18::2:2"), withPorts("web/TCP/80")),
		)
		return s
	}
	isolateA := makePolicy("a", "from-a", withIngress(ingressRule(peers(podPeer(sel())))))
	for _, tc := range []struct {
		name     string
		cnps     []string
		policies bool
	}{
		{"tiers", []string{
			"tier: Admin\npriority: 1\nsubject: {namespaces: {matchLabels: {team: a}}}\ningress: [{action: Pass, from: [{namespaces: {matchLabels: {team: b}}}]}, {action: Deny, from: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {app: y}}}}]}]",
			"tier: Admin\npriority: 2\nsubject: {namespaces: {}}\negress: [{action: Accept, to: [{pods: {namespaceSelector: {}, podSelector: {matchLabels: {role: db}}}}]}]",
			"tier: Baseline\npriority: 1\nsubject: {namespaces: {}}\ningress: [{action: Deny, from: [{namespaces: {}}]}]\negress: [{action: Deny, to: [{networks: [198.19.0.0/16, \"fd18::ff:0/112\"]}]}]",
		}, true},
		{"ports", []string{
			"tier: Admin\npriority: 3\nsubject: {namespaces: {}}\negress: [{action: Deny, to: [{namespaces: {matchLabels: {team: a}}}], protocols: [{tcp: {destinationPort: {range: {start: 80, end: 81}}}}, {destinationNamedPort: http}]}]",
			"tier: Baseline\npriority: 3\nsubject: {pods: {namespaceSelector: {}, podSelector: {matchLabels: {role: db}}}}\ningress: [{action: Deny, from: [{namespaces: {}}], protocols: [{destinationNamedPort: web}, {udp: {destinationPort: {number: 53}}}]}]",
		}, false},
		{"fail closed and equal priority", []string{
			"tier: Admin\npriority: 7\nsubject: {namespaces: {matchLabels: {team: b}}}\negress: [{action: Accept, to: [{}]}, {action: Pass, to: [{domainNames: [example.com]}]}]",
			"tier: Admin\npriority: 7\nsubject: {namespaces: {matchLabels: {team: a}}}\negress: [{action: Deny, to: [{networks: [\"198.18.2.0/24\"]}]}]",
			"tier: Admin\npriority: 7\nsubject: {namespaces: {matchLabels: {team: a}}}\negress: [{action: Accept, to: [{networks: [\"198.18.0.0/16\"]}]}]",
		}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cnps []*v1beta1.ClusterNetworkPolicy
			for i, spec := range tc.cnps {
				cnps = append(cnps, makeCNP(t, fmt.Sprintf("p%d", len(tc.cnps)-i), spec))
			}
			s := world(cnps...)
			if tc.policies {
				s.Policies = append(s.Policies, isolateA)
			}
			checkAgainstOracle(t, s)
		})
	}
}
