package kernel

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/nfttest"
	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// TestReadRulesetRoundTrip commits rulesets with the NetlinkBackend and requires reading the table
// back to give exactly what was committed: the hand-built one with every kind, the guestbook with and
// without fail-closed, empty ones, a larger compiled model, and random rulesets.
func TestReadRulesetRoundTrip(t *testing.T) {
	cases := []struct {
		name string
		rs   func() *nft.Ruleset
	}{
		{"every kind", everyKindRuleset},
		{"guestbook", compileGuestbook},
		{"guestbook fail-closed", func() *nft.Ruleset {
			return nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces(), PodInterfacePrefix: "veth"})
		}},
		{"guestbook drop log", compileGuestbookDropLog},
		{"guestbook drop log all", func() *nft.Ruleset {
			return nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: guestbookModel(), Interfaces: guestbookInterfaces(),
				DropLog: &nft.DropLog{Group: 7, PairRate: 5, Rate: 50, Pods: map[string]bool{"default/guestbook-1": true},
					AllPods: map[string]bool{"default/guestbook-1": true}}})
		}},
		{"guestbook audit", func() *nft.Ruleset {
			return nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: nfttest.GuestbookAuditModel(), Interfaces: guestbookInterfaces(),
				DropLog: &nft.DropLog{Group: 7, PairRate: 5, Rate: 50, Pods: map[string]bool{"default/redis-master": true}, AntiSpoof: true}})
		}},
		{"guestbook audit without logging", func() *nft.Ruleset {
			return nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: nfttest.GuestbookAuditModel(), Interfaces: guestbookInterfaces()})
		}},
		{"guestbook cluster tiers", func() *nft.Ruleset {
			return nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: nfttest.GuestbookClusterModel(), Interfaces: guestbookInterfaces()})
		}},
		{"empty model", func() *nft.Ruleset {
			return nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: emptyModel(), Interfaces: map[netip.Addr]string{}})
		}},
		{"empty table", func() *nft.Ruleset { return &nft.Ruleset{Table: kernelTable} }},
		{"300 cluster pods", func() *nft.Ruleset {
			m, ifaces := nfttest.BenchModel(300)
			return nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: m, Interfaces: ifaces})
		}},
	}
	for seed := int64(1); seed <= 3; seed++ {
		for _, shape := range []generator.Shape{generator.DistinctSelectors, generator.WideSelectors} {
			cases = append(cases, struct {
				name string
				rs   func() *nft.Ruleset
			}{fmt.Sprintf("generated cluster %d %s", seed, shape), func() *nft.Ruleset { return generatedRuleset(t, seed, shape) }})
		}
	}
	for seed := uint64(1); seed <= 12; seed++ {
		cases = append(cases, struct {
			name string
			rs   func() *nft.Ruleset
		}{fmt.Sprintf("random %d", seed), func() *nft.Ruleset { return randomRuleset(rand.New(rand.NewPCG(seed, 7))) }})
	}
	_, b := kernelNamespace(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs := tc.rs()
			run(t, b, replaceTable(rs))
			got, err := b.ReadRuleset(rs.Table)
			if err != nil {
				t.Fatal(err)
			}
			handles := map[uint64]bool{}
			for ci := range got.Chains {
				for ri := range got.Chains[ci].Rules {
					r := &got.Chains[ci].Rules[ri]
					if r.Handle == 0 || handles[r.Handle] {
						t.Errorf("chain %s rule %d: handle %d is not a fresh kernel handle", got.Chains[ci].Name, ri, r.Handle)
					}
					handles[r.Handle] = true
					r.Handle = 0
				}
			}
			if !reflect.DeepEqual(normalized(got), normalized(rs)) {
				t.Errorf("read back:\n%s\ncommitted:\n%s", nft.Render(got), nft.Render(rs))
				t.Errorf("read back: %+v\ncommitted: %+v", normalized(got), normalized(rs))
			}
		})
	}
}

// TestReadRulesetRefusesForeignRules requires rules the lowering never emits to make ReadRuleset fail
// with the chain, the rule's handle and its expressions, and a missing table to be os.ErrNotExist.
func TestReadRulesetRefusesForeignRules(t *testing.T) {
	ns, b := kernelNamespace(t)
	if _, err := b.ReadRuleset(kernelTable); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("reading a missing table: %v, want os.ErrNotExist", err)
	}
	for _, tc := range []struct {
		name string
		rule []string
		want string
	}{
		{"unknown match", []string{"meta", "mark", "1", "accept"}, "Meta{Key:3"},
		{"address compared with a constant", []string{"ip", "saddr", "10.0.0.1", "accept"}, "Payload"},
		{"fib daddr", []string{"fib", "daddr", "type", "local", "accept"}, "fib"},
		{"exact interface name", []string{"iifname", "lab1", "drop"}, "an interface name"},
		{"interface names in an anonymous set", []string{"iifname", "{", "lab1,", "lab2", "}", "drop"}, "an interface name"},
		{"counter", []string{"ct", "state", "established", "counter", "accept"}, "Counter"},
		{"ct state new", []string{"ct", "state", "new", "accept"}, "ct state"},
		{"port inequality", []string{"meta", "l4proto", "tcp", "th", "dport", "!=", "80", "accept"}, "th dport"},
		{"limit with a burst", []string{"limit", "rate", "5/second", "burst", "10", "packets", "accept"}, "limit"},
		{"limit over", []string{"limit", "rate", "over", "5/second", "drop"}, "limit"},
		{"log with a snaplen", []string{"log", "prefix", "np/x", "group", "3", "snaplen", "64"}, "log expression"},
		{"log to the kernel log", []string{"log", "prefix", "np/x"}, "log expression"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rs := everyKindRuleset()
			run(t, b, replaceTable(rs))
			foreignNft(t, ns, append([]string{"add", "rule", "inet", kernelTable, "eg_pod2"}, tc.rule...)...)
			_, err := b.ReadRuleset(kernelTable)
			if err == nil {
				t.Fatalf("reading a table with `%s` succeeded", strings.Join(tc.rule, " "))
			}
			t.Log(err)
			for _, want := range []string{"chain eg_pod2 rule handle ", tc.want} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

// TestReadRulesetWhileAnotherWriterCommits reads the table while another backend keeps replacing it
// with one of two rulesets: every read gives one of them whole, never a mix of both, or says that the
// table kept changing.
func TestReadRulesetWhileAnotherWriterCommits(t *testing.T) {
	ns, b := kernelNamespace(t)
	writer, err := NewNetlinkBackend(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = writer.Close() })
	// Two states that differ in elements, map elements and chains: a pod moved to another address.
	m, ifaces := guestbookModel(), guestbookInterfaces()
	first := nft.Compile(nft.CompileInput{Table: kernelTable, Model: m, Interfaces: ifaces})
	movePod(m, ifaces, netip.MustParseAddr("198.18.0.99"))
	second := nft.Compile(nft.CompileInput{Table: kernelTable, Model: m, Interfaces: ifaces})
	run(t, writer, replaceTable(first))

	stop, done := make(chan struct{}), make(chan error)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if err := writer.Run(replaceTable([]*nft.Ruleset{first, second}[i%2])); err != nil {
				done <- err
				return
			}
		}
	}()
	var whole, changing int
	for range 40 {
		got, err := b.ReadRuleset(kernelTable)
		if err != nil {
			if !strings.Contains(err.Error(), "changed during each") {
				t.Error(err)
			}
			changing++
			continue
		}
		for ci := range got.Chains {
			for ri := range got.Chains[ci].Rules {
				got.Chains[ci].Rules[ri].Handle = 0
			}
		}
		if !reflect.DeepEqual(normalized(got), normalized(first)) && !reflect.DeepEqual(normalized(got), normalized(second)) {
			t.Errorf("read a table that was never committed:\n%s", nft.Render(got))
		}
		whole++
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d whole reads, %d refused while the table kept changing", whole, changing)
}

// generatedRuleset compiles a small random cluster of the benchmarks' generator, with ipBlocks,
// excepts, port ranges, named ports and egress policies.
func generatedRuleset(t *testing.T, seed int64, shape generator.Shape) *nft.Ruleset {
	t.Helper()
	p := generator.Defaults(2000, 300, shape)
	p.Seed, p.Namespaces, p.LocalPods = seed, 40, 60
	c, err := generator.Generate(p)
	if err != nil {
		t.Fatal(err)
	}
	m := selectors.Resolve(c.Snapshot)
	ifaces := map[netip.Addr]string{}
	for i, pod := range m.LocalPods {
		for _, ip := range pod.IPs {
			ifaces[ip] = fmt.Sprintf("gen%d", i)
		}
	}
	return nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: m, Interfaces: ifaces})
}

// normalized makes empty and nil slices alike.
func normalized(rs *nft.Ruleset) *nft.Ruleset {
	out := *rs
	// A counter's labels live in the agent's model only: the kernel holds its name.
	out.Counters = nilIfEmpty(slices.Clone(rs.Counters))
	for i := range out.Counters {
		out.Counters[i].Labels = nft.CounterLabels{}
	}
	out.Sets = nilIfEmpty(slices.Clone(rs.Sets))
	for i := range out.Sets {
		out.Sets[i].Elements = nilIfEmpty(out.Sets[i].Elements)
	}
	out.Maps = nilIfEmpty(slices.Clone(rs.Maps))
	for i := range out.Maps {
		out.Maps[i].Elements = nilIfEmpty(out.Maps[i].Elements)
	}
	out.Chains = nilIfEmpty(slices.Clone(rs.Chains))
	for i := range out.Chains {
		rules := nilIfEmpty(slices.Clone(out.Chains[i].Rules))
		for j := range rules {
			rules[j].Matches = nilIfEmpty(rules[j].Matches)
		}
		out.Chains[i].Rules = rules
	}
	return &out
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// randomRuleset builds a ruleset of every set type, with random elements (ranges up to the end of
// the key space included), and chains of random rules over every Match kind and verdict.
func randomRuleset(r *rand.Rand) *nft.Ruleset {
	rs := &nft.Ruleset{Table: kernelTable}
	comment := func() string {
		if r.IntN(2) == 0 {
			return ""
		}
		return fmt.Sprintf("comment %d", r.IntN(1000))
	}
	addrs := func(bits int, n int) []netip.Addr {
		seen := map[netip.Addr]bool{}
		for range n {
			var b [16]byte
			for i := range b {
				b[i] = byte(r.IntN(256))
			}
			a := netip.AddrFrom16(b)
			if bits == 32 {
				a = netip.AddrFrom4([4]byte(b[:4]))
			}
			seen[a] = true
		}
		out := slices.Collect(func(yield func(netip.Addr) bool) {
			for a := range seen {
				if !yield(a) {
					return
				}
			}
		})
		slices.SortFunc(out, netip.Addr.Compare)
		return out
	}
	ifname := func() string { return fmt.Sprintf("veth%d", r.IntN(20)) }
	// Disjoint ranges between sorted boundaries; the last may end at the family's last address.
	addrRanges := func(bits int) []nft.Element {
		bounds := addrs(bits, 2*r.IntN(5))
		var out []nft.Element
		for i := 0; i+1 < len(bounds); i += 2 {
			out = append(out, nft.Element{Addr: bounds[i], AddrEnd: bounds[i+1]})
		}
		if n := len(out); n > 0 && r.IntN(3) == 0 {
			last := netip.MustParseAddr("255.255.255.255")
			if bits == 128 {
				last = netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
			}
			out[n-1].AddrEnd = last
		}
		return out
	}
	portRanges := func() []nft.PortRange {
		var out []nft.PortRange
		next := 1 + r.IntN(100)
		for range 1 + r.IntN(4) {
			first := next + r.IntN(1000)
			last := first + r.IntN(3)*r.IntN(50)
			if last > 65535 {
				break
			}
			out = append(out, nft.PortRange{First: uint16(first), Last: uint16(last)})
			next = last + 2
		}
		if r.IntN(4) == 0 {
			out = append(out, nft.PortRange{First: 65000, Last: 65535})
		}
		return out
	}
	elements := func(t nft.KeyType) []nft.Element {
		var out []nft.Element
		bits := 32
		if t == nft.KeyIPv6 || t == nft.KeyIfnameIPv6 || t == nft.KeyIPv6ProtoPort {
			bits = 128
		}
		for _, a := range addrs(bits, r.IntN(6)) {
			switch t {
			case nft.KeyIPv4, nft.KeyIPv6:
				out = append(out, nft.Element{Addr: a})
			case nft.KeyIfname:
				out = append(out, nft.Element{Ifname: ifname()})
			case nft.KeyIfnameIPv4, nft.KeyIfnameIPv6:
				out = append(out, nft.Element{Ifname: ifname(), Addr: a})
			case nft.KeyIPv4ProtoPort, nft.KeyIPv6ProtoPort:
				out = append(out, nft.Element{Addr: a, Proto: []uint8{nft.ProtoTCP, nft.ProtoUDP, nft.ProtoSCTP}[r.IntN(3)], Port: uint16(r.IntN(65536))})
			}
		}
		nft.SortElements(out)
		return slices.Compact(out)
	}
	for _, s := range []nft.Set{
		{Name: "a4", Type: nft.KeyIPv4, Interval: true}, {Name: "a6", Type: nft.KeyIPv6, Interval: true},
		{Name: "h4", Type: nft.KeyIPv4}, {Name: "h6", Type: nft.KeyIPv6}, {Name: "if", Type: nft.KeyIfname},
		{Name: "ia4", Type: nft.KeyIfnameIPv4}, {Name: "ia6", Type: nft.KeyIfnameIPv6},
		{Name: "p", Type: nft.KeyPort, Interval: true},
		{Name: "sv4", Type: nft.KeyIPv4ProtoPort}, {Name: "sv6", Type: nft.KeyIPv6ProtoPort},
	} {
		s.Comment = comment()
		switch {
		case s.Type == nft.KeyPort:
			for _, pr := range portRanges() {
				s.Elements = append(s.Elements, nft.Element{Port: pr.First, PortEnd: pr.Last})
			}
		case s.Interval && s.Type == nft.KeyIPv4:
			s.Elements = addrRanges(32)
		case s.Interval:
			s.Elements = addrRanges(128)
		default:
			s.Elements = elements(s.Type)
			if r.IntN(2) == 0 {
				s.Size = uint32(64 + r.IntN(1000))
			}
		}
		rs.Sets = append(rs.Sets, s)
	}
	slices.SortFunc(rs.Sets, func(a, b nft.Set) int { return strings.Compare(a.Name, b.Name) })
	const chains = 4
	chainName := func(i int) string { return fmt.Sprintf("c%d", i) }
	for _, m := range []nft.Map{{Name: "m4", Type: nft.KeyIPv4}, {Name: "m6", Type: nft.KeyIPv6}} {
		m.Comment = comment()
		bits := 32
		if m.Type == nft.KeyIPv6 {
			bits = 128
		}
		for _, a := range addrs(bits, r.IntN(5)) {
			kind := []nft.VerdictKind{nft.Jump, nft.Goto}[r.IntN(2)]
			m.Elements = append(m.Elements, nft.MapElement{Key: a, Verdict: nft.Verdict{Kind: kind, Chain: chainName(1 + r.IntN(chains-1))}})
		}
		rs.Maps = append(rs.Maps, m)
	}
	hooks := []nft.Hook{nft.HookPrerouting, nft.HookInput, nft.HookForward, nft.HookOutput, nft.HookPostrouting}
	for i := range 1 + r.IntN(3) {
		rs.Chains = append(rs.Chains, nft.Chain{Name: fmt.Sprintf("base%d", i),
			Base:  &nft.BaseHook{Hook: hooks[r.IntN(len(hooks))], Priority: int32(r.IntN(400) - 200)},
			Rules: []nft.Rule{{Verdict: nft.Verdict{Kind: nft.Jump, Chain: chainName(0)}}}})
	}
	for i := range chains {
		c := nft.Chain{Name: chainName(i)}
		for range r.IntN(6) {
			rule := nft.Rule{Comment: comment()}
			for range r.IntN(3) {
				rule.Matches = append(rule.Matches, randomMatches(r, portRanges)...)
			}
			switch v := r.IntN(6); {
			case v == 0 && i == 0:
				fam := []nft.Family{nft.IPv4, nft.IPv6}[r.IntN(2)]
				rule.VMap = &nft.VMapLookup{Family: fam, Field: []nft.Field{nft.SourceAddr, nft.DestAddr}[r.IntN(2)], Map: map[nft.Family]string{nft.IPv4: "m4", nft.IPv6: "m6"}[fam]}
			case (v == 1 || v == 2) && i+1 < chains:
				rule.Verdict = nft.Verdict{Kind: []nft.VerdictKind{nft.Jump, nft.Goto}[v-1], Chain: chainName(i + 1 + r.IntN(chains-i-1))}
			default:
				rule.Verdict = nft.Verdict{Kind: []nft.VerdictKind{nft.Accept, nft.Drop, nft.Return}[r.IntN(3)]}
			}
			c.Rules = append(c.Rules, rule)
		}
		rs.Chains = append(rs.Chains, c)
	}
	return rs
}

// randomMatches returns one match of a random kind, with the protocol match that port matches need.
func randomMatches(r *rand.Rand, portRanges func() []nft.PortRange) []nft.Match {
	fam := []nft.Family{nft.IPv4, nft.IPv6}[r.IntN(2)]
	suffix := map[nft.Family]string{nft.IPv4: "4", nft.IPv6: "6"}[fam]
	neg := r.IntN(2) == 0
	withPorts := nft.L4Proto{Protos: []uint8{[]uint8{nft.ProtoTCP, nft.ProtoUDP, nft.ProtoSCTP}[r.IntN(3)]}}
	someOf := func(values ...uint8) []uint8 {
		var out []uint8
		for _, v := range values {
			if r.IntN(2) == 0 {
				out = append(out, v)
			}
		}
		if len(out) == 0 {
			out = values[:1]
		}
		return out
	}
	switch r.IntN(11) {
	case 0:
		ct := nft.CtState{Established: r.IntN(2) == 0}
		ct.Related = !ct.Established || r.IntN(2) == 0
		return []nft.Match{ct}
	case 1:
		set := "a" + suffix
		if r.IntN(2) == 0 {
			set = "h" + suffix
		}
		return []nft.Match{nft.AddrInSet{Family: fam, Field: []nft.Field{nft.SourceAddr, nft.DestAddr}[r.IntN(2)], Set: set, Negate: neg}}
	case 2:
		return []nft.Match{nft.IfnameInSet{Set: "if", Negate: neg}}
	case 3:
		return []nft.Match{nft.IfnameAddrInSet{Family: fam, Output: r.IntN(2) == 0, Set: "ia" + suffix, Negate: neg}}
	case 4:
		return []nft.Match{nft.IfnamePrefix{Output: r.IntN(2) == 0, Prefix: []string{"veth", "cali", "l"}[r.IntN(3)]}}
	case 5:
		return []nft.Match{nft.L4Proto{Protos: someOf(nft.ProtoICMP, nft.ProtoTCP, nft.ProtoUDP, nft.ProtoICMPv6, nft.ProtoSCTP)}}
	case 6:
		return []nft.Match{withPorts, nft.DestPortIn{Ranges: portRanges()}}
	case 7:
		return []nft.Match{withPorts, nft.DestPortInSet{Set: "p"}}
	case 8:
		return []nft.Match{nft.ServiceInSet{Family: fam, Set: "sv" + suffix}}
	case 9:
		return []nft.Match{nft.SourceIsLocal{}}
	default:
		return []nft.Match{nft.ICMPv6TypeIn{Types: someOf(nft.ICMPv6RouterSolicit, nft.ICMPv6RouterAdvert, nft.ICMPv6NeighborSolicit, nft.ICMPv6NeighborAdvert, nft.ICMPv6Redirect)}}
	}
}

// TestExplainFromKernel traces guestbook connections through the table read back from the kernel:
// the same path as through the committed ruleset, with the kernel's rule handles, until an element is
// deleted behind the backend's back, which the path read from the kernel then shows.
func TestExplainFromKernel(t *testing.T) {
	ns, b := kernelNamespace(t)
	rs := compileGuestbook()
	run(t, b, replaceTable(rs))
	allowed := nft.Flow{Src: addr(nfttest.GuestbookIP), Dst: addr(nfttest.RedisIP), Proto: nft.ProtoTCP, DstPort: 6379}
	explain := func(rs *nft.Ruleset) nft.TracePath {
		return nft.NewTracer(rs).Explain(nft.ForwardPacket(allowed, guestbookInterfaces(), nfttest.FabricIface))
	}
	readBack := func() *nft.Ruleset {
		t.Helper()
		got, err := b.ReadRuleset(rs.Table)
		if err != nil {
			t.Fatal(err)
		}
		return got
	}

	want, got := explain(rs), explain(readBack())
	if got.Verdict != "accept" || len(got.Steps) != len(want.Steps) {
		t.Fatalf("from the kernel: %s in %d steps, committed: %s in %d steps", got.Verdict, len(got.Steps), want.Verdict, len(want.Steps))
	}
	for i := range got.Steps {
		if got.Steps[i].Handle == 0 {
			t.Errorf("step %d (%s[%d]) has no kernel handle", i, got.Steps[i].Chain, got.Steps[i].Index)
		}
		got.Steps[i].Handle = 0
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("from the kernel:\n%+v\ncommitted:\n%+v", got, want)
	}

	// guestbook-1 leaves the redis policy's peers behind the backend's back.
	foreignNft(t, ns, "delete", "element", "inet", rs.Table, "peers_guestbook_v4", "{ "+nfttest.GuestbookIP+" }")
	drifted := explain(readBack())
	last := drifted.Steps[len(drifted.Steps)-1]
	if drifted.Verdict != "drop" || last.Chain != "in_default_redis-master" || last.Verdict != "drop" {
		t.Fatalf("after the deletion: %s by %s[%d], want a drop by in_default_redis-master", drifted.Verdict, last.Chain, last.Index)
	}
	var missed bool
	for _, st := range drifted.Steps {
		for _, l := range st.Lookups {
			missed = missed || (l.Set == "peers_guestbook_v4" && l.Key == nfttest.GuestbookIP && !l.Found)
		}
	}
	if !missed {
		t.Errorf("the path does not show the failed lookup of %s in peers_guestbook_v4: %+v", nfttest.GuestbookIP, drifted.Steps)
	}
	if explain(rs).Verdict != "accept" {
		t.Error("the committed ruleset must still accept")
	}
}
