package nft

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// portSetsModel is node n1 with local pods in namespace "shop", each isolated for ingress by its own
// policy:
//   - "a" by "web-a" and "b" by "web-b": clients on TCP 80 and 443 (the same two ports);
//   - "c" by "range": clients on TCP 8000-8090 and 8080 (they merge into one range: no set);
//   - "d" by "dns" when withDNS: anyone on UDP 53 and 5353 (another two ports).
//
// Each call builds new isolations: a model from another call has other *Isolation values for the
// same content.
func portSetsModel(withDNS bool) *selectors.Model {
	web := func(policy string) podTweak {
		return isolatedIngress(policy, makeRule(0, fromPeers("clients"), onPorts(tcp(80), tcp(443))))
	}
	pods := []selectors.LocalPod{
		makeLocalPod("shop", "a", withIPs("10.1.0.1"), web("web-a")),
		makeLocalPod("shop", "b", withIPs("10.1.0.2", "fd01::2"), web("web-b")),
		makeLocalPod("shop", "c", withIPs("10.1.0.3"), isolatedIngress("range",
			makeRule(0, fromPeers("clients"), onPorts(selectors.PortRange{Protocol: tcp(0).Protocol, First: 8000, Last: 8090}, tcp(8080))))),
	}
	if withDNS {
		pods = append(pods, makeLocalPod("shop", "d", withIPs("10.1.0.4"), isolatedIngress("dns", makeRule(0, onPorts(udp(53), udp(5353))))))
	}
	return &selectors.Model{
		Node:        "n1",
		LocalPods:   pods,
		AddressSets: []selectors.AddressSet{{ID: "clients", Ranges: single("10.2.0.1", "fd02::1")}},
	}
}

// portSetsOf returns the port sets of rs by name, and which chains refer to each.
func portSetsOf(rs *Ruleset) (portSets map[string]Set, users map[string][]string) {
	portSets, users = map[string]Set{}, map[string][]string{}
	for _, s := range rs.Sets {
		if s.Type == KeyPort {
			portSets[s.Name] = s
		}
	}
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			for _, m := range r.Matches {
				if m, ok := m.(DestPortInSet); ok {
					users[m.Set] = append(users[m.Set], c.Name)
				}
			}
		}
	}
	return portSets, users
}

func TestPortSetsAreSharedByRulesWithTheSamePorts(t *testing.T) {
	rs := Compile(CompileInput{Table: "nftpolicy", Model: portSetsModel(true)})
	portSets, users := portSetsOf(rs)
	if len(portSets) != 2 {
		t.Fatalf("want 2 port portSets (80+443 and 53+5353), got %d:\n%s", len(portSets), Render(rs))
	}
	want := map[string][]Element{
		"pi_shop_web-a": {{Port: 80, PortEnd: 80}, {Port: 443, PortEnd: 443}},
		"pi_shop_dns":   {{Port: 53, PortEnd: 53}, {Port: 5353, PortEnd: 5353}},
	}
	for name, set := range portSets {
		if !set.Interval || !strings.HasPrefix(name, portSetPrefix) {
			t.Errorf("port set %s: interval %v; want an interval set named %s...", name, set.Interval, portSetPrefix)
		}
		chains := users[name]
		slices.Sort(chains)
		chains = slices.Compact(chains)
		switch {
		case slices.Equal(chains, []string{"pi_shop_web-a", "pi_shop_web-b"}), slices.Equal(chains, []string{"pi_shop_dns"}):
			if elems := want[chains[0]]; !slices.Equal(set.Elements, elems) {
				t.Errorf("port set %s used by %q holds %v, want %v", name, chains, set.Elements, elems)
			}
		default:
			t.Errorf("port set %s is used by %q", name, chains)
		}
	}
	// b is dual-stack: its chain has an IPv4 and an IPv6 rule, both on the one set.
	if got := users[chainNamed(t, rs, "pi_shop_web-b").Rules[1].Matches[2].(DestPortInSet).Set]; len(got) != 3 {
		t.Errorf("the 80+443 set is used by %q, want a's rule and b's two", got)
	}
	// One range is matched in the rule itself.
	c := chainNamed(t, rs, "pi_shop_range")
	if len(c.Rules) != 1 || !reflect.DeepEqual(c.Rules[0].Matches[2], DestPortIn{Ranges: []PortRange{{8000, 8090}}}) {
		t.Errorf("range chain: %s", Render(&Ruleset{Table: "t", Chains: []Chain{c}}))
	}
}

// TestPortSetsFollowTheirRules: a Compiler keeps the port sets of unchanged chains, and a port set
// goes when its last rule does; each ruleset, applied as a diff of what the Compiler says changed,
// leaves the table equal to it.
func TestPortSetsFollowTheirRules(t *testing.T) {
	fake := NewFake("nftpolicy")
	applier := NewApplier(fake)
	var cc Compiler
	compile := func(step string, m *selectors.Model, mc selectors.Changes) (*Ruleset, Changes) {
		t.Helper()
		in := CompileInput{Table: "nftpolicy", Model: m, Changes: mc}
		got, changed := cc.Compile(in)
		if want := Compile(in); !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: Compiler.Compile differs from Compile:\n%s\nwant\n%s", step, Render(got), Render(want))
		}
		if _, err := applier.Apply(got, changed); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if content := fake.Ruleset(); !reflect.DeepEqual(content, got) {
			t.Fatalf("%s: the table holds\n%s\nwant\n%s", step, Render(content), Render(got))
		}
		return got, changed
	}

	first, _ := compile("first", portSetsModel(true), selectors.FullChanges())
	if portSets, _ := portSetsOf(first); len(portSets) != 2 {
		t.Fatalf("first: %d port sets, want 2", len(portSets))
	}

	// Pod d goes: the 80+443 set stays, the 53+5353 set goes with the dns chain.
	second := portSetsModel(false)
	rs, _ := compile("without d", second, selectors.Changes{LocalPods: sets.New("shop/d")})
	portSets, users := portSetsOf(rs)
	if len(portSets) != 1 || len(users) != 1 {
		t.Fatalf("without d: want only the 80+443 set, got %d sets:\n%s", len(portSets), Render(rs))
	}
	var deleted bool
	for _, tx := range fake.Transactions()[1:] {
		for _, op := range tx.Ops {
			if o, ok := op.(DeleteSet); ok && strings.HasPrefix(o.Name, portSetPrefix) {
				deleted = true
			}
		}
	}
	if !deleted {
		t.Error("without d: the 53+5353 set was not deleted")
	}

	// A peer event: the chains are kept, the set stays declared.
	peers := *second
	peers.AddressSets = []selectors.AddressSet{{ID: "clients", Ranges: single("10.2.0.7", "fd02::1")}}
	if _, changed := compile("peer event", &peers, selectors.Changes{AddressSets: sets.New("clients")}); changed.Chains {
		t.Error("the peer event compiled the chains again")
	}

	// Pod c's policy changes.
	edited := peers
	edited.LocalPods = slices.Clone(peers.LocalPods)
	edited.LocalPods[2] = makeLocalPod("shop", "c", withIPs("10.1.0.3"), isolatedIngress("range", makeRule(0, onPorts(tcp(22)))))
	rs, _ = compile("c edited", &edited, selectors.Changes{LocalPods: sets.New("shop/c")})
	if portSets, _ := portSetsOf(rs); len(portSets) != 1 {
		t.Errorf("c edited: %d port sets, want the 80+443 one", len(portSets))
	}
}

// TestPortSetNameCollisionKeepsTheRulesPorts: when the name of a rule's ports is taken by a set with
// other ports (two lists whose hashes collide), the rule matches its ports in an anonymous set.
func TestPortSetNameCollisionKeepsTheRulesPorts(t *testing.T) {
	name, _ := portSetName([]PortRange{{80, 80}, {443, 443}})
	taken := []PortRange{{First: 1, Last: 1}, {First: 2, Last: 2}}
	c := chainCompiler{model: portSetsModel(false), refs: map[string]setRef{name: {kind: portSetPrefix, ports: taken}}}
	chains, _ := c.compile()
	rs := &Ruleset{Table: "nftpolicy", Chains: chains}
	if _, users := portSetsOf(rs); len(users) != 0 {
		t.Fatalf("port sets used by %v, want none:\n%s", users, Render(rs))
	}
	a := chainNamed(t, rs, "pi_shop_web-a")
	if got, want := a.Rules[0].Matches[2], (DestPortIn{Ranges: []PortRange{{80, 80}, {443, 443}}}); !reflect.DeepEqual(got, want) {
		t.Errorf("a's rule matches %#v, want %#v", got, want)
	}
}

// TestFakeRefusesOverlappingPortRanges, as the kernel refuses overlapping intervals.
func TestFakeRefusesOverlappingPortRanges(t *testing.T) {
	f := NewFake("t")
	set := Set{Name: "ports_x", Type: KeyPort, Interval: true}
	add := func(es ...Element) error {
		return f.Run(&Transaction{Table: "t", Ops: []Op{AddElements{Set: set.Name, Type: KeyPort, Interval: true, Elements: es}}})
	}
	if err := f.Run(&Transaction{Table: "t", Ops: []Op{AddTable{}, AddSet{Set: set}}}); err != nil {
		t.Fatal(err)
	}
	if err := add(Element{Port: 80, PortEnd: 90}, Element{Port: 91, PortEnd: 91}); err != nil {
		t.Fatalf("adjacent ranges: %v", err)
	}
	if err := add(Element{Port: 85, PortEnd: 85}); err == nil || !strings.Contains(err.Error(), "overlaps 80-90") {
		t.Errorf("a port inside 80-90: %v, want an overlap", err)
	}
}
