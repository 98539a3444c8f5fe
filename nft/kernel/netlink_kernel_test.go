package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"net/netip"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/test/nftlisting"
)

// Kernel tests: they program a fresh network namespace through NetlinkBackend and compare the
// kernel's own listing (`nft list table`) with Render. They need root and nf_tables, and skip with
// the reason otherwise.
//
// IP plan of the hand-built ruleset (no traffic flows here; see traffic_kernel_test.go):
//
//	198.18.1.1, 198.18.1.2, fd18::1:1   local pods behind lab1 and lab2
//	10.0.0.0/8, 198.18.0.5-198.18.0.9   peer ranges; 255.255.255.0/24 and ffff::/16 end at the family's
//	                                    last address, so their intervals have no end element

const kernelTable = "nftpolicy-test"

var (
	pod1V4 = netip.MustParseAddr("198.18.1.1")
	pod2V4 = netip.MustParseAddr("198.18.1.2")
	pod1V6 = netip.MustParseAddr("fd18::1:1")
)

func addrRange(from, to string) nft.Element {
	return nft.Element{Addr: netip.MustParseAddr(from), AddrEnd: netip.MustParseAddr(to)}
}

// everyKindRuleset uses every Match kind, every verdict, both families, every key type, comments on
// sets, maps, chains and rules, in the shape the compiler produces.
func everyKindRuleset() *nft.Ruleset {
	tcp, udp := nft.ProtoTCP, nft.ProtoUDP
	return &nft.Ruleset{
		Table: kernelTable,
		Sets: []nft.Set{
			{Name: "peers_v4", Type: nft.KeyIPv4, Interval: true, Comment: "namespace=default app=web", Elements: []nft.Element{
				addrRange("10.0.0.0", "10.255.255.255"),
				addrRange("198.18.0.1", "198.18.0.1"),
				addrRange("198.18.0.5", "198.18.0.9"),
				addrRange("255.255.255.0", "255.255.255.255"),
			}},
			{Name: "peers_v6", Type: nft.KeyIPv6, Interval: true, Elements: []nft.Element{
				addrRange("fd18::", "fd18::ffff:ffff:ffff:ffff"),
				addrRange("fd18:1::1", "fd18:1::5"),
				addrRange("ffff::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
			}},
			{Name: "pod-addrs-v4", Type: nft.KeyIPv4, Comment: "local pod addresses", Elements: []nft.Element{{Addr: pod1V4}, {Addr: pod2V4}}},
			{Name: "pod-iface-addrs-v4", Type: nft.KeyIfnameIPv4, Elements: []nft.Element{
				{Ifname: "lab1", Addr: pod1V4}, {Ifname: "lab2", Addr: pod2V4},
			}},
			{Name: "pod-iface-addrs-v6", Type: nft.KeyIfnameIPv6, Elements: []nft.Element{{Ifname: "lab1", Addr: pod1V6}}},
			{Name: "pod-ifaces", Type: nft.KeyIfname, Elements: []nft.Element{{Ifname: "lab1"}, {Ifname: "lab2"}}},
			{Name: "ports_web", Type: nft.KeyPort, Interval: true, Comment: "ports 80, 8000-8080, 65000-65535", Elements: []nft.Element{
				{Port: 80, PortEnd: 80}, {Port: 8000, PortEnd: 8080}, {Port: 65000, PortEnd: 65535},
			}},
			{Name: "svc_v4", Type: nft.KeyIPv4ProtoPort, Elements: []nft.Element{
				{Addr: pod1V4, Proto: tcp, Port: 6379}, {Addr: pod2V4, Proto: udp, Port: 53},
			}},
			{Name: "svc_v6", Type: nft.KeyIPv6ProtoPort, Elements: []nft.Element{{Addr: pod1V6, Proto: tcp, Port: 443}}},
		},
		Maps: []nft.Map{
			{Name: "egress-pods-v4", Type: nft.KeyIPv4, Elements: []nft.MapElement{{Key: pod2V4, Verdict: nft.Verdict{Kind: nft.Goto, Chain: "eg_pod2"}}}},
			{Name: "ingress-pods-v4", Type: nft.KeyIPv4, Comment: "local pods isolated for ingress", Elements: []nft.MapElement{
				{Key: pod1V4, Verdict: nft.Verdict{Kind: nft.Goto, Chain: "in_pod1"}},
			}},
			{Name: "ingress-pods-v6", Type: nft.KeyIPv6, Elements: []nft.MapElement{{Key: pod1V6, Verdict: nft.Verdict{Kind: nft.Goto, Chain: "in_pod1"}}}},
		},
		Chains: []nft.Chain{
			{Name: "egress-forward", Base: &nft.BaseHook{Hook: nft.HookForward}, Rules: []nft.Rule{{Verdict: nft.Verdict{Kind: nft.Jump, Chain: "egress"}}}},
			{Name: "egress-input", Base: &nft.BaseHook{Hook: nft.HookInput}, Rules: []nft.Rule{{Verdict: nft.Verdict{Kind: nft.Jump, Chain: "egress"}}}},
			{Name: "ingress-forward", Base: &nft.BaseHook{Hook: nft.HookForward, Priority: 10}, Rules: []nft.Rule{{Verdict: nft.Verdict{Kind: nft.Jump, Chain: "ingress"}}}},
			{Name: "output-test", Base: &nft.BaseHook{Hook: nft.HookOutput, Priority: -5}, Rules: []nft.Rule{{Verdict: nft.Verdict{Kind: nft.Return}}}},
			{Name: "eg_pod2", Rules: []nft.Rule{
				{Matches: []nft.Match{nft.AddrInSet{Family: nft.IPv4, Field: nft.DestAddr, Set: "peers_v4"}, nft.L4Proto{Protos: []uint8{tcp}}, nft.DestPortIn{Ranges: []nft.PortRange{{First: 80, Last: 80}}}},
					Verdict: nft.Verdict{Kind: nft.Accept}, Comment: "default/allow-web egress[0]"},
				{Matches: []nft.Match{nft.L4Proto{Protos: []uint8{udp}}, nft.DestPortIn{Ranges: []nft.PortRange{{First: 8000, Last: 8080}}}}, Verdict: nft.Verdict{Kind: nft.Accept}},
				{Matches: []nft.Match{nft.L4Proto{Protos: []uint8{tcp}}, nft.DestPortIn{Ranges: []nft.PortRange{{First: 53, Last: 53}, {First: 8000, Last: 8080}, {First: 65000, Last: 65535}}}}, Verdict: nft.Verdict{Kind: nft.Accept}},
				{Matches: []nft.Match{nft.ServiceInSet{Family: nft.IPv4, Set: "svc_v4"}}, Verdict: nft.Verdict{Kind: nft.Accept}},
				{Matches: []nft.Match{nft.AddrInSet{Family: nft.IPv4, Field: nft.DestAddr, Set: "peers_v4"}, nft.L4Proto{Protos: []uint8{udp}}, nft.DestPortInSet{Set: "ports_web"}},
					Verdict: nft.Verdict{Kind: nft.Accept}},
				{Matches: []nft.Match{nft.L4Proto{Protos: []uint8{nft.ProtoSCTP}}, nft.DestPortInSet{Set: "ports_web"}}, Verdict: nft.Verdict{Kind: nft.Accept}},
				{Matches: []nft.Match{nft.L4Proto{Protos: []uint8{tcp, udp, nft.ProtoSCTP}}}, Verdict: nft.Verdict{Kind: nft.Drop}},
				{Verdict: nft.Verdict{Kind: nft.Drop}, Comment: "egress isolated by default/deny"},
			}},
			{Name: "egress", Rules: []nft.Rule{
				{Matches: []nft.Match{nft.CtState{Established: true, Related: true}}, Verdict: nft.Verdict{Kind: nft.Accept}},
				{Matches: []nft.Match{nft.IfnameInSet{Set: "pod-ifaces"}, nft.IfnameAddrInSet{Family: nft.IPv4, Set: "pod-iface-addrs-v4", Negate: true}},
					Verdict: nft.Verdict{Kind: nft.Drop}, Comment: "spoofed source from a pod interface"},
				{Matches: []nft.Match{nft.IfnameInSet{Set: "pod-ifaces", Negate: true}, nft.AddrInSet{Family: nft.IPv4, Field: nft.SourceAddr, Set: "pod-addrs-v4"}},
					Verdict: nft.Verdict{Kind: nft.Drop}},
				{Matches: []nft.Match{nft.IfnameAddrInSet{Family: nft.IPv6, Set: "pod-iface-addrs-v6"}}, Verdict: nft.Verdict{Kind: nft.Return}},
				{VMap: &nft.VMapLookup{Family: nft.IPv4, Field: nft.SourceAddr, Map: "egress-pods-v4"}},
			}},
			{Name: "in_pod1", Rules: []nft.Rule{
				{Matches: []nft.Match{nft.AddrInSet{Family: nft.IPv6, Field: nft.SourceAddr, Set: "peers_v6", Negate: true}}, Verdict: nft.Verdict{Kind: nft.Drop}},
				{Matches: []nft.Match{nft.ServiceInSet{Family: nft.IPv6, Set: "svc_v6"}}, Verdict: nft.Verdict{Kind: nft.Accept}},
				{Matches: []nft.Match{nft.ICMPv6TypeIn{Types: []uint8{nft.ICMPv6NeighborSolicit}}}, Verdict: nft.Verdict{Kind: nft.Accept}},
				{Matches: []nft.Match{nft.L4Proto{Protos: []uint8{nft.ProtoICMP}}}, Verdict: nft.Verdict{Kind: nft.Accept}},
				{Verdict: nft.Verdict{Kind: nft.Drop}},
			}},
			{Name: "ingress", Rules: []nft.Rule{
				{Matches: []nft.Match{nft.IfnamePrefix{Prefix: "lab"}, nft.IfnameInSet{Set: "pod-ifaces", Negate: true}}, Verdict: nft.Verdict{Kind: nft.Drop}},
				{Matches: []nft.Match{nft.IfnamePrefix{Output: true, Prefix: "lab"}, nft.IfnameAddrInSet{Family: nft.IPv4, Output: true, Set: "pod-iface-addrs-v4", Negate: true}},
					Verdict: nft.Verdict{Kind: nft.Drop}, Comment: "pod interface not programmed yet"},
				{Matches: []nft.Match{nft.IfnamePrefix{Output: true, Prefix: "lab"}, nft.IfnameAddrInSet{Family: nft.IPv6, Output: true, Set: "pod-iface-addrs-v6"}}, Verdict: nft.Verdict{Kind: nft.Return}},
				{Matches: []nft.Match{nft.CtState{Established: true}}, Verdict: nft.Verdict{Kind: nft.Accept}},
				{Matches: []nft.Match{nft.ICMPv6TypeIn{Types: ndTypes}}, Verdict: nft.Verdict{Kind: nft.Accept}},
				{VMap: &nft.VMapLookup{Family: nft.IPv4, Field: nft.DestAddr, Map: "ingress-pods-v4"}},
				{VMap: &nft.VMapLookup{Family: nft.IPv6, Field: nft.DestAddr, Map: "ingress-pods-v6"}},
			}},
		},
	}
}

// replaceTable is a full-replace transaction: `add table; delete table;` takes over whatever is
// there, then everything is created in Render's order (the kernel lists objects in creation order).
func replaceTable(rs *nft.Ruleset) *nft.Transaction {
	tx := &nft.Transaction{Table: rs.Table, Ops: []nft.Op{nft.AddTable{}, nft.DeleteTable{}, nft.AddTable{}}}
	for _, c := range rs.Counters {
		tx.Ops = append(tx.Ops, nft.AddCounter{Counter: c})
	}
	for _, s := range rs.Sets {
		tx.Ops = append(tx.Ops, nft.AddSet{Set: withoutElements(s)})
		if len(s.Elements) > 0 {
			tx.Ops = append(tx.Ops, nft.AddElements{Set: s.Name, Type: s.Type, Interval: s.Interval, Elements: s.Elements})
		}
	}
	for _, m := range rs.Maps {
		tx.Ops = append(tx.Ops, nft.AddMap{Map: nft.Map{Name: m.Name, Type: m.Type, Comment: m.Comment}})
	}
	for _, c := range rs.Chains {
		tx.Ops = append(tx.Ops, nft.AddChain{Chain: nft.Chain{Name: c.Name, Base: c.Base}})
	}
	// Map elements jump to chains, so they come after the chains.
	for _, m := range rs.Maps {
		if len(m.Elements) > 0 {
			tx.Ops = append(tx.Ops, nft.AddMapElements{Map: m.Name, Type: m.Type, Elements: m.Elements})
		}
	}
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			tx.Ops = append(tx.Ops, nft.AddRule{Chain: c.Name, Rule: r})
		}
	}
	return tx
}

// kernelNamespace returns a fresh node namespace and a backend for it, or skips the test.
func kernelNamespace(t *testing.T) (*netlab.Node, *NetlinkBackend) {
	t.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("the nft command is needed to read the kernel's listing")
	}
	lab := netlab.NewForTest(t)
	node, err := lab.AddNode()
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewNetlinkBackend(node.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	probe := &nft.Transaction{Table: kernelTable, Ops: []nft.Op{nft.AddTable{}, nft.DeleteTable{}}}
	if err := b.Run(probe); err != nil {
		t.Skipf("nf_tables is not available: %v", err)
	}
	return node, b
}

// listTable returns `nft list table inet T` from inside the namespace, with element lists
// normalised by normalizeElements.
func listTable(t *testing.T, ns *netlab.Node, table string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns.Name, "nft", "list", "table", "inet", table).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table: %v\n%s", err, out)
	}
	return nftlisting.NormalizeElements(string(out))
}

func tableExists(t *testing.T, ns *netlab.Node, table string) bool {
	t.Helper()
	err := exec.Command("ip", "netns", "exec", ns.Name, "nft", "list", "table", "inet", table).Run()
	return err == nil
}

func run(t *testing.T, b nft.Backend, tx *nft.Transaction) {
	t.Helper()
	if err := b.Run(tx); err != nil {
		t.Fatalf("running transaction:\n%s\nerror: %v", tx, err)
	}
}

func assertListing(t *testing.T, ns *netlab.Node, rs *nft.Ruleset) {
	t.Helper()
	got, want := listTable(t, ns, rs.Table), nftlisting.NormalizeElements(nft.Render(rs))
	if got != want {
		t.Errorf("kernel listing differs from Render\n--- kernel\n%s\n--- Render\n%s\n--- diff\n%s", got, want, lineDiff(want, got))
	}
}

// assertSameContent compares listing and Render block by block, ignoring the order of top-level
// sets, maps and chains: after incremental changes the kernel lists objects in creation order while
// Render sorts them by name.
func assertSameContent(t *testing.T, ns *netlab.Node, rs *nft.Ruleset) {
	t.Helper()
	got, want := listTable(t, ns, rs.Table), nftlisting.NormalizeElements(nft.Render(rs))
	if gb, wb := nftlisting.Blocks(got, rs.Table), nftlisting.Blocks(want, rs.Table); !slices.Equal(gb, wb) {
		t.Errorf("kernel listing has other content than Render\n--- kernel\n%s\n--- Render\n%s\n--- diff\n%s", got, want, lineDiff(want, got))
	}
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range wl {
		if !slices.Contains(gl, l) {
			b.WriteString("- " + l + "\n")
		}
	}
	for _, l := range gl {
		if !slices.Contains(wl, l) {
			b.WriteString("+ " + l + "\n")
		}
	}
	return b.String()
}

// TestNetlinkFullReplace applies a ruleset with every Match kind, key type and op kind needed for a
// full replace, and checks that the kernel lists exactly what Render writes; then applies the same
// transaction again to show that a full replace is idempotent and takes over an existing table.
func TestNetlinkFullReplace(t *testing.T) {
	ns, b := kernelNamespace(t)
	rs := everyKindRuleset()
	run(t, b, replaceTable(rs))
	assertListing(t, ns, rs)

	run(t, b, replaceTable(rs))
	assertListing(t, ns, rs)
}

// TestNetlinkIncremental applies element, rule and chain changes on top of a full replace.
func TestNetlinkIncremental(t *testing.T) {
	ns, b := kernelNamespace(t)
	rs := everyKindRuleset()
	run(t, b, replaceTable(rs))

	// Elements: add and delete in plain, interval (including a range ending at the last address),
	// concatenated, port and map elements.
	added := []nft.Element{addrRange("198.18.0.20", "198.18.0.30")}
	deleted := []nft.Element{rs.Sets[0].Elements[1], rs.Sets[0].Elements[3]}
	run(t, b, &nft.Transaction{Table: rs.Table, Ops: []nft.Op{
		nft.AddElements{Set: "peers_v4", Type: nft.KeyIPv4, Interval: true, Elements: added},
		nft.DeleteElements{Set: "peers_v4", Type: nft.KeyIPv4, Interval: true, Elements: deleted},
		nft.DeleteElements{Set: "peers_v6", Type: nft.KeyIPv6, Interval: true, Elements: rs.Sets[1].Elements[2:]},
		nft.AddElements{Set: "pod-iface-addrs-v4", Type: nft.KeyIfnameIPv4, Elements: []nft.Element{{Ifname: "lab3", Addr: netip.MustParseAddr("198.18.1.3")}}},
		nft.DeleteElements{Set: "svc_v4", Type: nft.KeyIPv4ProtoPort, Elements: rs.Sets[7].Elements[1:]},
		nft.AddElements{Set: "ports_web", Type: nft.KeyPort, Interval: true, Elements: []nft.Element{{Port: 443, PortEnd: 443}}},
		nft.DeleteElements{Set: "ports_web", Type: nft.KeyPort, Interval: true, Elements: rs.Sets[6].Elements[1:2]},
		nft.AddMapElements{Map: "egress-pods-v4", Type: nft.KeyIPv4, Elements: []nft.MapElement{{Key: pod1V4, Verdict: nft.Verdict{Kind: nft.Jump, Chain: "in_pod1"}}}},
	}})
	rs.Sets[0].Elements = []nft.Element{rs.Sets[0].Elements[0], rs.Sets[0].Elements[2], added[0]}
	rs.Sets[1].Elements = rs.Sets[1].Elements[:2]
	rs.Sets[3].Elements = append(rs.Sets[3].Elements, nft.Element{Ifname: "lab3", Addr: netip.MustParseAddr("198.18.1.3")})
	rs.Sets[6].Elements = []nft.Element{rs.Sets[6].Elements[0], {Port: 443, PortEnd: 443}, rs.Sets[6].Elements[2]}
	rs.Sets[7].Elements = rs.Sets[7].Elements[:1]
	rs.Maps[0].Elements = []nft.MapElement{{Key: pod1V4, Verdict: nft.Verdict{Kind: nft.Jump, Chain: "in_pod1"}}, rs.Maps[0].Elements[0]}
	assertListing(t, ns, rs)

	// Rules: flush a per-pod chain and refill it.
	refill := []nft.Rule{
		{Matches: []nft.Match{nft.AddrInSet{Family: nft.IPv4, Field: nft.DestAddr, Set: "peers_v4"}}, Verdict: nft.Verdict{Kind: nft.Accept}, Comment: "default/allow-all egress[0]"},
		{Verdict: nft.Verdict{Kind: nft.Drop}},
	}
	tx := &nft.Transaction{Table: rs.Table, Ops: []nft.Op{nft.FlushChain{Name: "eg_pod2"}}}
	for _, r := range refill {
		tx.Ops = append(tx.Ops, nft.AddRule{Chain: "eg_pod2", Rule: r})
	}
	run(t, b, tx)
	rs.Chains[4].Rules = refill
	assertListing(t, ns, rs)

	// A pod stops being isolated: delete its map element first, then its now unreferenced chain, a
	// set nothing refers to any more and an empty map; add a new set and a new chain.
	run(t, b, &nft.Transaction{Table: rs.Table, Ops: []nft.Op{
		nft.DeleteMapElements{Map: "egress-pods-v4", Type: nft.KeyIPv4, Elements: []nft.MapElement{{Key: pod2V4}}},
		nft.FlushChain{Name: "eg_pod2"},
		nft.DeleteChain{Name: "eg_pod2"},
		nft.DeleteMapElements{Map: "ingress-pods-v6", Type: nft.KeyIPv6, Elements: rs.Maps[2].Elements},
		nft.FlushChain{Name: "ingress"},
		nft.AddRule{Chain: "ingress", Rule: rs.Chains[7].Rules[0]},
		nft.AddRule{Chain: "ingress", Rule: rs.Chains[7].Rules[1]},
		nft.AddRule{Chain: "ingress", Rule: rs.Chains[7].Rules[2]},
		nft.DeleteMap{Name: "ingress-pods-v6"},
		nft.DeleteSet{Name: "svc_v4"},
		nft.AddSet{Set: nft.Set{Name: "peers_extra", Type: nft.KeyIPv6, Comment: "added later"}},
		nft.AddElements{Set: "peers_extra", Type: nft.KeyIPv6, Elements: []nft.Element{{Addr: pod1V6}}},
		nft.AddChain{Chain: nft.Chain{Name: "in_pod9"}},
		nft.AddRule{Chain: "in_pod9", Rule: nft.Rule{Matches: []nft.Match{nft.AddrInSet{Family: nft.IPv6, Field: nft.SourceAddr, Set: "peers_extra"}}, Verdict: nft.Verdict{Kind: nft.Accept}}},
	}})
	rs.Maps[0].Elements = rs.Maps[0].Elements[:1]
	rs.Maps = slices.Delete(rs.Maps, 2, 3)
	rs.Chains = slices.Delete(rs.Chains, 4, 5) // eg_pod2
	rs.Chains[6].Rules = rs.Chains[6].Rules[:3]
	rs.Chains = append(rs.Chains, nft.Chain{Name: "in_pod9", Rules: []nft.Rule{
		{Matches: []nft.Match{nft.AddrInSet{Family: nft.IPv6, Field: nft.SourceAddr, Set: "peers_extra"}}, Verdict: nft.Verdict{Kind: nft.Accept}},
	}})
	rs.Sets = slices.Delete(rs.Sets, 7, 8) // svc_v4
	rs.Sets = append(rs.Sets, nft.Set{Name: "peers_extra", Type: nft.KeyIPv6, Comment: "added later", Elements: []nft.Element{{Addr: pod1V6}}})
	slices.SortFunc(rs.Sets, func(a, b nft.Set) int { return strings.Compare(a.Name, b.Name) })
	assertSameContent(t, ns, rs)

	// Deleting the table removes everything.
	run(t, b, &nft.Transaction{Table: rs.Table, Ops: []nft.Op{nft.DeleteTable{}}})
	if tableExists(t, ns, rs.Table) {
		t.Error("table still listed after DeleteTable")
	}
}

// TestNetlinkAnonymousSetsOfSeveralBackends: the backend names the anonymous sets of rules itself
// (see anonymousSetNames). A second backend, as after a restart of the agent, refills chains while the
// first backend's anonymous sets are still in the table, and the first one goes on: no name is taken
// twice, and the listing still equals Render.
func TestNetlinkAnonymousSetsOfSeveralBackends(t *testing.T) {
	ns, first := kernelNamespace(t)
	rs := everyKindRuleset()
	run(t, first, replaceTable(rs))
	second, err := NewNetlinkBackend(ns.Path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Close() })
	refill := func(b nft.Backend, chain string) {
		t.Helper()
		c := rs.Chains[slices.IndexFunc(rs.Chains, func(c nft.Chain) bool { return c.Name == chain })]
		tx := &nft.Transaction{Table: rs.Table, Ops: []nft.Op{nft.FlushChain{Name: chain}}}
		for _, r := range c.Rules {
			tx.Ops = append(tx.Ops, nft.AddRule{Chain: chain, Rule: r})
		}
		run(t, b, tx)
	}
	// The first backend's anonymous sets of eg_pod2 are still there when the second one makes its
	// first: a second backend with the same names would be refused here.
	refill(second, "ingress")
	refill(first, "eg_pod2")
	refill(second, "eg_pod2")
	refill(first, "ingress")
	assertListing(t, ns, rs)
}

// TestNetlinkAtomic shows that a transaction that fails after valid operations changes nothing: the
// kernel rejects the whole batch.
func TestNetlinkAtomic(t *testing.T) {
	ns, b := kernelNamespace(t)
	rs := everyKindRuleset()
	run(t, b, replaceTable(rs))
	before := listTable(t, ns, rs.Table)

	bad := &nft.Transaction{Table: rs.Table, Ops: []nft.Op{
		nft.AddElements{Set: "peers_v4", Type: nft.KeyIPv4, Interval: true, Elements: []nft.Element{addrRange("198.18.9.0", "198.18.9.255")}},
		nft.DeleteMapElements{Map: "ingress-pods-v4", Type: nft.KeyIPv4, Elements: rs.Maps[1].Elements},
		nft.FlushChain{Name: "in_pod1"},
		nft.AddChain{Chain: nft.Chain{Name: "in_pod7"}},
		nft.AddRule{Chain: "in_pod7", Rule: nft.Rule{Verdict: nft.Verdict{Kind: nft.Drop}}},
		nft.AddRule{Chain: "ingress", Rule: nft.Rule{Verdict: nft.Verdict{Kind: nft.Jump, Chain: "no-such-chain"}}},
	}}
	if err := b.Run(bad); err == nil {
		t.Fatal("a rule jumping to a missing chain was accepted")
	} else {
		t.Logf("rejected as expected: %v", err)
	}
	if after := listTable(t, ns, rs.Table); after != before {
		t.Errorf("failed transaction changed the table\n--- before\n%s\n--- after\n%s", before, after)
	}

	// A failed full replace leaves the old table in place too.
	broken := replaceTable(rs)
	broken.Ops = append(broken.Ops, nft.AddElements{Set: "no-such-set", Type: nft.KeyIPv4, Elements: []nft.Element{{Addr: pod1V4}}})
	if err := b.Run(broken); err == nil {
		t.Fatal("elements of a missing set were accepted")
	}
	if after := listTable(t, ns, rs.Table); after != before {
		t.Errorf("failed full replace changed the table\n--- before\n%s\n--- after\n%s", before, after)
	}
}

// TestNetlinkCurrentNamespace checks that "" selects the namespace of the caller: run from inside a
// namespace it programs that namespace.
func TestNetlinkCurrentNamespace(t *testing.T) {
	ns, _ := kernelNamespace(t)
	rs := &nft.Ruleset{Table: kernelTable, Chains: []nft.Chain{{Name: "only", Rules: []nft.Rule{{Verdict: nft.Verdict{Kind: nft.Accept}}}}}}
	err := ns.Do(func() error {
		b, err := NewNetlinkBackend("")
		if err != nil {
			return err
		}
		defer b.Close()
		return b.Run(replaceTable(rs))
	})
	if err != nil {
		t.Fatal(err)
	}
	assertListing(t, ns, rs)
	if exec.Command("nft", "list", "table", "inet", kernelTable).Run() == nil {
		t.Error("table created in the test's own namespace")
	}
}
