package nft

import (
	"reflect"
	"testing"
)

// TestRulesEqualAgreesWithDeepEqual checks the typed comparison Diff uses against reflect.DeepEqual
// for every pair of rules that differ in one field, in every kind of match, or not at all.
func TestRulesEqualAgreesWithDeepEqual(t *testing.T) {
	accept, drop := Verdict{Kind: Accept}, Verdict{Kind: Drop}
	vmap := func(f Field, name string) *VMapLookup { return &VMapLookup{Family: IPv4, Field: f, Map: name} }
	rules := []Rule{
		{Verdict: accept},
		{Verdict: drop},
		{Verdict: Verdict{Kind: Goto, Chain: "a"}},
		{Verdict: Verdict{Kind: Goto, Chain: "b"}},
		{Verdict: accept, Comment: "p/x ingress[0]"},
		{Verdict: accept, Comment: "p/x ingress[1]"},
		{VMap: vmap(SourceAddr, "m")},
		{VMap: vmap(DestAddr, "m")},
		{VMap: vmap(SourceAddr, "n")},
		{Matches: []Match{CtState{Established: true, Related: true}}, Verdict: accept},
		{Matches: []Match{CtState{Established: true}}, Verdict: accept},
		{Matches: []Match{AddrInSet{Family: IPv4, Field: SourceAddr, Set: "s"}}, Verdict: accept},
		{Matches: []Match{AddrInSet{Family: IPv4, Field: SourceAddr, Set: "s", Negate: true}}, Verdict: accept},
		{Matches: []Match{AddrInSet{Family: IPv6, Field: SourceAddr, Set: "s"}}, Verdict: accept},
		{Matches: []Match{IfnameInSet{Set: "i"}}, Verdict: drop},
		{Matches: []Match{IfnameInSet{Set: "j"}}, Verdict: drop},
		{Matches: []Match{IfnameAddrInSet{Family: IPv4, Set: "i"}}, Verdict: drop},
		{Matches: []Match{IfnameAddrInSet{Family: IPv6, Set: "i"}}, Verdict: drop},
		{Matches: []Match{IfnameAddrInSet{Family: IPv6, Output: true, Set: "i"}}, Verdict: drop},
		{Matches: []Match{IfnamePrefix{Prefix: "cali"}}, Verdict: drop},
		{Matches: []Match{IfnamePrefix{Output: true, Prefix: "cali"}}, Verdict: drop},
		{Matches: []Match{IfnamePrefix{Prefix: "veth"}}, Verdict: drop},
		{Matches: []Match{ServiceInSet{Family: IPv4, Set: "svc"}}, Verdict: accept},
		{Matches: []Match{ServiceInSet{Family: IPv4, Set: "svc2"}}, Verdict: accept},
		{Matches: []Match{L4Proto{Protos: []uint8{ProtoTCP}}}, Verdict: accept},
		{Matches: []Match{L4Proto{Protos: []uint8{ProtoTCP, ProtoUDP}}}, Verdict: accept},
		{Matches: []Match{L4Proto{Protos: []uint8{ProtoTCP}}, DestPortIn{Ranges: []PortRange{{80, 80}}}}, Verdict: accept},
		{Matches: []Match{L4Proto{Protos: []uint8{ProtoTCP}}, DestPortIn{Ranges: []PortRange{{80, 81}}}}, Verdict: accept},
		{Matches: []Match{L4Proto{Protos: []uint8{ProtoTCP}}, DestPortIn{Ranges: []PortRange{{80, 80}, {443, 443}}}}, Verdict: accept},
		{Matches: []Match{DestPortIn{Ranges: []PortRange{{80, 80}}}, L4Proto{Protos: []uint8{ProtoTCP}}}, Verdict: accept},
		{Matches: []Match{ICMPv6TypeIn{Types: ndTypes}}, Verdict: accept},
		{Matches: []Match{ICMPv6TypeIn{Types: ndTypes[:2]}}, Verdict: accept},
		{Matches: []Match{}, Verdict: accept}, // no matches, like the first rule but an empty list
	}
	// Copies with fresh slices and pointers, so that equal rules never share memory.
	clone := func(r Rule) Rule {
		c := r
		if r.VMap != nil {
			v := *r.VMap
			c.VMap = &v
		}
		if r.Matches != nil {
			c.Matches = make([]Match, len(r.Matches))
			for i, m := range r.Matches {
				switch x := m.(type) {
				case L4Proto:
					m = L4Proto{Protos: append([]uint8(nil), x.Protos...)}
				case DestPortIn:
					m = DestPortIn{Ranges: append([]PortRange(nil), x.Ranges...)}
				case ICMPv6TypeIn:
					m = ICMPv6TypeIn{Types: append([]uint8(nil), x.Types...)}
				}
				c.Matches[i] = m
			}
		}
		return c
	}
	equalPairs := 0
	for i, a := range rules {
		for j, b := range rules {
			b = clone(b)
			want := reflect.DeepEqual(a, b)
			if want {
				equalPairs++
			}
			// An empty match list and none are the same rule to the kernel; DeepEqual says otherwise,
			// and so may rulesEqual: only pairs where both agree on emptiness are compared.
			if (a.Matches == nil) != (b.Matches == nil) && len(a.Matches) == 0 && len(b.Matches) == 0 {
				continue
			}
			if got := ruleEqual(a, b); got != want {
				t.Errorf("rule %d against %d: ruleEqual %v, reflect.DeepEqual %v\n%+v\n%+v", i, j, got, want, a, b)
			}
			if got := rulesEqual([]Rule{rules[0], a}, []Rule{rules[0], b}); got != want {
				t.Errorf("lists ending in rules %d and %d: rulesEqual %v, reflect.DeepEqual %v", i, j, got, want)
			}
		}
	}
	if equalPairs != len(rules) {
		t.Fatalf("%d equal pairs among %d distinct rules: the collection has duplicates", equalPairs, len(rules))
	}
	if rulesEqual(rules[:2], rules[:3]) {
		t.Error("lists of different lengths compare equal")
	}
}

// TestDiffIgnoresRuleHandles requires a ruleset read back from the kernel, whose rules carry handles,
// to need no change against the same ruleset as compiled.
func TestDiffIgnoresRuleHandles(t *testing.T) {
	compiled, readBack := compileGuestbook(), compileGuestbook()
	handle := uint64(0)
	for ci := range readBack.Chains {
		rules := append([]Rule(nil), readBack.Chains[ci].Rules...)
		for ri := range rules {
			handle++
			rules[ri].Handle = handle
		}
		readBack.Chains[ci].Rules = rules
	}
	if tx := Diff(readBack, compiled, Changes{Chains: true}); len(tx.Ops) != 0 {
		t.Errorf("handles alone made %d operations: %s", len(tx.Ops), tx.Ops)
	}
	if handle == 0 || !rulesEqual(readBack.Chains[0].Rules, compiled.Chains[0].Rules) {
		t.Error("rules that differ only in their handles must be equal")
	}
}
