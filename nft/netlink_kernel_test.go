package nft

import (
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

func addrRange(from, to string) Element {
	return Element{Addr: netip.MustParseAddr(from), AddrEnd: netip.MustParseAddr(to)}
}

// everyKindRuleset uses every Match kind, every verdict, both families, every key type, comments on
// sets, maps, chains and rules, in the shape the compiler produces.
func everyKindRuleset() *Ruleset {
	tcp, udp := ProtoTCP, ProtoUDP
	return &Ruleset{
		Table: kernelTable,
		Sets: []Set{
			{Name: "peers_v4", Type: KeyIPv4, Interval: true, Comment: "namespace=default app=web", Elements: []Element{
				addrRange("10.0.0.0", "10.255.255.255"),
				addrRange("198.18.0.1", "198.18.0.1"),
				addrRange("198.18.0.5", "198.18.0.9"),
				addrRange("255.255.255.0", "255.255.255.255"),
			}},
			{Name: "peers_v6", Type: KeyIPv6, Interval: true, Elements: []Element{
				addrRange("fd18::", "fd18::ffff:ffff:ffff:ffff"),
				addrRange("fd18:1::1", "fd18:1::5"),
				addrRange("ffff::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
			}},
			{Name: "pod-addrs-v4", Type: KeyIPv4, Comment: "local pod addresses", Elements: []Element{{Addr: pod1V4}, {Addr: pod2V4}}},
			{Name: "pod-iface-addrs-v4", Type: KeyIfnameIPv4, Elements: []Element{
				{Ifname: "lab1", Addr: pod1V4}, {Ifname: "lab2", Addr: pod2V4},
			}},
			{Name: "pod-iface-addrs-v6", Type: KeyIfnameIPv6, Elements: []Element{{Ifname: "lab1", Addr: pod1V6}}},
			{Name: "pod-ifaces", Type: KeyIfname, Elements: []Element{{Ifname: "lab1"}, {Ifname: "lab2"}}},
			{Name: "ports_web", Type: KeyPort, Interval: true, Comment: "ports 80, 8000-8080, 65000-65535", Elements: []Element{
				{Port: 80, PortEnd: 80}, {Port: 8000, PortEnd: 8080}, {Port: 65000, PortEnd: 65535},
			}},
			{Name: "svc_v4", Type: KeyIPv4ProtoPort, Elements: []Element{
				{Addr: pod1V4, Proto: tcp, Port: 6379}, {Addr: pod2V4, Proto: udp, Port: 53},
			}},
			{Name: "svc_v6", Type: KeyIPv6ProtoPort, Elements: []Element{{Addr: pod1V6, Proto: tcp, Port: 443}}},
		},
		Maps: []Map{
			{Name: "egress-pods-v4", Type: KeyIPv4, Elements: []MapElement{{Key: pod2V4, Verdict: Verdict{Kind: Goto, Chain: "eg_pod2"}}}},
			{Name: "ingress-pods-v4", Type: KeyIPv4, Comment: "local pods isolated for ingress", Elements: []MapElement{
				{Key: pod1V4, Verdict: Verdict{Kind: Goto, Chain: "in_pod1"}},
			}},
			{Name: "ingress-pods-v6", Type: KeyIPv6, Elements: []MapElement{{Key: pod1V6, Verdict: Verdict{Kind: Goto, Chain: "in_pod1"}}}},
		},
		Chains: []Chain{
			{Name: "egress-forward", Base: &BaseHook{Hook: HookForward}, Rules: []Rule{{Verdict: Verdict{Kind: Jump, Chain: "egress"}}}},
			{Name: "egress-input", Base: &BaseHook{Hook: HookInput}, Rules: []Rule{{Verdict: Verdict{Kind: Jump, Chain: "egress"}}}},
			{Name: "ingress-forward", Base: &BaseHook{Hook: HookForward, Priority: 10}, Rules: []Rule{{Verdict: Verdict{Kind: Jump, Chain: "ingress"}}}},
			{Name: "output-test", Base: &BaseHook{Hook: HookOutput, Priority: -5}, Rules: []Rule{{Verdict: Verdict{Kind: Return}}}},
			{Name: "eg_pod2", Rules: []Rule{
				{Matches: []Match{AddrInSet{Family: IPv4, Field: DestAddr, Set: "peers_v4"}, L4Proto{Protos: []uint8{tcp}}, DestPortIn{Ranges: []PortRange{{80, 80}}}},
					Verdict: Verdict{Kind: Accept}, Comment: "default/allow-web egress[0]"},
				{Matches: []Match{L4Proto{Protos: []uint8{udp}}, DestPortIn{Ranges: []PortRange{{8000, 8080}}}}, Verdict: Verdict{Kind: Accept}},
				{Matches: []Match{L4Proto{Protos: []uint8{tcp}}, DestPortIn{Ranges: []PortRange{{53, 53}, {8000, 8080}, {65000, 65535}}}}, Verdict: Verdict{Kind: Accept}},
				{Matches: []Match{ServiceInSet{Family: IPv4, Set: "svc_v4"}}, Verdict: Verdict{Kind: Accept}},
				{Matches: []Match{AddrInSet{Family: IPv4, Field: DestAddr, Set: "peers_v4"}, L4Proto{Protos: []uint8{udp}}, DestPortInSet{Set: "ports_web"}},
					Verdict: Verdict{Kind: Accept}},
				{Matches: []Match{L4Proto{Protos: []uint8{ProtoSCTP}}, DestPortInSet{Set: "ports_web"}}, Verdict: Verdict{Kind: Accept}},
				{Matches: []Match{L4Proto{Protos: []uint8{tcp, udp, ProtoSCTP}}}, Verdict: Verdict{Kind: Drop}},
				{Verdict: Verdict{Kind: Drop}, Comment: "egress isolated by default/deny"},
			}},
			{Name: "egress", Rules: []Rule{
				{Matches: []Match{CtState{Established: true, Related: true}}, Verdict: Verdict{Kind: Accept}},
				{Matches: []Match{IfnameInSet{Set: "pod-ifaces"}, IfnameAddrInSet{Family: IPv4, Set: "pod-iface-addrs-v4", Negate: true}},
					Verdict: Verdict{Kind: Drop}, Comment: "spoofed source from a pod interface"},
				{Matches: []Match{IfnameInSet{Set: "pod-ifaces", Negate: true}, AddrInSet{Family: IPv4, Field: SourceAddr, Set: "pod-addrs-v4"}},
					Verdict: Verdict{Kind: Drop}},
				{Matches: []Match{IfnameAddrInSet{Family: IPv6, Set: "pod-iface-addrs-v6"}}, Verdict: Verdict{Kind: Return}},
				{VMap: &VMapLookup{Family: IPv4, Field: SourceAddr, Map: "egress-pods-v4"}},
			}},
			{Name: "in_pod1", Rules: []Rule{
				{Matches: []Match{AddrInSet{Family: IPv6, Field: SourceAddr, Set: "peers_v6", Negate: true}}, Verdict: Verdict{Kind: Drop}},
				{Matches: []Match{ServiceInSet{Family: IPv6, Set: "svc_v6"}}, Verdict: Verdict{Kind: Accept}},
				{Matches: []Match{ICMPv6TypeIn{Types: []uint8{ICMPv6NeighborSolicit}}}, Verdict: Verdict{Kind: Accept}},
				{Matches: []Match{L4Proto{Protos: []uint8{ProtoICMP}}}, Verdict: Verdict{Kind: Accept}},
				{Verdict: Verdict{Kind: Drop}},
			}},
			{Name: "ingress", Rules: []Rule{
				{Matches: []Match{CtState{Established: true}}, Verdict: Verdict{Kind: Accept}},
				{Matches: []Match{ICMPv6TypeIn{Types: ndTypes}}, Verdict: Verdict{Kind: Accept}},
				{VMap: &VMapLookup{Family: IPv4, Field: DestAddr, Map: "ingress-pods-v4"}},
				{VMap: &VMapLookup{Family: IPv6, Field: DestAddr, Map: "ingress-pods-v6"}},
			}},
		},
	}
}

// replaceTable is a full-replace transaction: `add table; delete table;` takes over whatever is
// there, then everything is created in Render's order (the kernel lists objects in creation order).
func replaceTable(rs *Ruleset) *Transaction {
	tx := &Transaction{Table: rs.Table, Ops: []Op{AddTable{}, DeleteTable{}, AddTable{}}}
	for _, s := range rs.Sets {
		tx.Ops = append(tx.Ops, AddSet{Set: withoutElements(s)})
		if len(s.Elements) > 0 {
			tx.Ops = append(tx.Ops, AddElements{Set: s.Name, Type: s.Type, Interval: s.Interval, Elements: s.Elements})
		}
	}
	for _, m := range rs.Maps {
		tx.Ops = append(tx.Ops, AddMap{Map: Map{Name: m.Name, Type: m.Type, Comment: m.Comment}})
	}
	for _, c := range rs.Chains {
		tx.Ops = append(tx.Ops, AddChain{Chain: Chain{Name: c.Name, Base: c.Base}})
	}
	// Map elements jump to chains, so they come after the chains.
	for _, m := range rs.Maps {
		if len(m.Elements) > 0 {
			tx.Ops = append(tx.Ops, AddMapElements{Map: m.Name, Type: m.Type, Elements: m.Elements})
		}
	}
	for _, c := range rs.Chains {
		for _, r := range c.Rules {
			tx.Ops = append(tx.Ops, AddRule{Chain: c.Name, Rule: r})
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
	probe := &Transaction{Table: kernelTable, Ops: []Op{AddTable{}, DeleteTable{}}}
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

func run(t *testing.T, b Backend, tx *Transaction) {
	t.Helper()
	if err := b.Run(tx); err != nil {
		t.Fatalf("running transaction:\n%s\nerror: %v", tx, err)
	}
}

func assertListing(t *testing.T, ns *netlab.Node, rs *Ruleset) {
	t.Helper()
	got, want := listTable(t, ns, rs.Table), nftlisting.NormalizeElements(Render(rs))
	if got != want {
		t.Errorf("kernel listing differs from Render\n--- kernel\n%s\n--- Render\n%s\n--- diff\n%s", got, want, lineDiff(want, got))
	}
}

// assertSameContent compares listing and Render block by block, ignoring the order of top-level
// sets, maps and chains: after incremental changes the kernel lists objects in creation order while
// Render sorts them by name.
func assertSameContent(t *testing.T, ns *netlab.Node, rs *Ruleset) {
	t.Helper()
	got, want := listTable(t, ns, rs.Table), nftlisting.NormalizeElements(Render(rs))
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
	added := []Element{addrRange("198.18.0.20", "198.18.0.30")}
	deleted := []Element{rs.Sets[0].Elements[1], rs.Sets[0].Elements[3]}
	run(t, b, &Transaction{Table: rs.Table, Ops: []Op{
		AddElements{Set: "peers_v4", Type: KeyIPv4, Interval: true, Elements: added},
		DeleteElements{Set: "peers_v4", Type: KeyIPv4, Interval: true, Elements: deleted},
		DeleteElements{Set: "peers_v6", Type: KeyIPv6, Interval: true, Elements: rs.Sets[1].Elements[2:]},
		AddElements{Set: "pod-iface-addrs-v4", Type: KeyIfnameIPv4, Elements: []Element{{Ifname: "lab3", Addr: netip.MustParseAddr("198.18.1.3")}}},
		DeleteElements{Set: "svc_v4", Type: KeyIPv4ProtoPort, Elements: rs.Sets[7].Elements[1:]},
		AddElements{Set: "ports_web", Type: KeyPort, Interval: true, Elements: []Element{{Port: 443, PortEnd: 443}}},
		DeleteElements{Set: "ports_web", Type: KeyPort, Interval: true, Elements: rs.Sets[6].Elements[1:2]},
		AddMapElements{Map: "egress-pods-v4", Type: KeyIPv4, Elements: []MapElement{{Key: pod1V4, Verdict: Verdict{Kind: Jump, Chain: "in_pod1"}}}},
	}})
	rs.Sets[0].Elements = []Element{rs.Sets[0].Elements[0], rs.Sets[0].Elements[2], added[0]}
	rs.Sets[1].Elements = rs.Sets[1].Elements[:2]
	rs.Sets[3].Elements = append(rs.Sets[3].Elements, Element{Ifname: "lab3", Addr: netip.MustParseAddr("198.18.1.3")})
	rs.Sets[6].Elements = []Element{rs.Sets[6].Elements[0], {Port: 443, PortEnd: 443}, rs.Sets[6].Elements[2]}
	rs.Sets[7].Elements = rs.Sets[7].Elements[:1]
	rs.Maps[0].Elements = []MapElement{{Key: pod1V4, Verdict: Verdict{Kind: Jump, Chain: "in_pod1"}}, rs.Maps[0].Elements[0]}
	assertListing(t, ns, rs)

	// Rules: flush a per-pod chain and refill it.
	refill := []Rule{
		{Matches: []Match{AddrInSet{Family: IPv4, Field: DestAddr, Set: "peers_v4"}}, Verdict: Verdict{Kind: Accept}, Comment: "default/allow-all egress[0]"},
		{Verdict: Verdict{Kind: Drop}},
	}
	tx := &Transaction{Table: rs.Table, Ops: []Op{FlushChain{Name: "eg_pod2"}}}
	for _, r := range refill {
		tx.Ops = append(tx.Ops, AddRule{Chain: "eg_pod2", Rule: r})
	}
	run(t, b, tx)
	rs.Chains[4].Rules = refill
	assertListing(t, ns, rs)

	// A pod stops being isolated: delete its map element first, then its now unreferenced chain, a
	// set nothing refers to any more and an empty map; add a new set and a new chain.
	run(t, b, &Transaction{Table: rs.Table, Ops: []Op{
		DeleteMapElements{Map: "egress-pods-v4", Type: KeyIPv4, Elements: []MapElement{{Key: pod2V4}}},
		FlushChain{Name: "eg_pod2"},
		DeleteChain{Name: "eg_pod2"},
		DeleteMapElements{Map: "ingress-pods-v6", Type: KeyIPv6, Elements: rs.Maps[2].Elements},
		FlushChain{Name: "ingress"},
		AddRule{Chain: "ingress", Rule: rs.Chains[7].Rules[0]},
		AddRule{Chain: "ingress", Rule: rs.Chains[7].Rules[1]},
		AddRule{Chain: "ingress", Rule: rs.Chains[7].Rules[2]},
		DeleteMap{Name: "ingress-pods-v6"},
		DeleteSet{Name: "svc_v4"},
		AddSet{Set: Set{Name: "peers_extra", Type: KeyIPv6, Comment: "added later"}},
		AddElements{Set: "peers_extra", Type: KeyIPv6, Elements: []Element{{Addr: pod1V6}}},
		AddChain{Chain: Chain{Name: "in_pod9"}},
		AddRule{Chain: "in_pod9", Rule: Rule{Matches: []Match{AddrInSet{Family: IPv6, Field: SourceAddr, Set: "peers_extra"}}, Verdict: Verdict{Kind: Accept}}},
	}})
	rs.Maps[0].Elements = rs.Maps[0].Elements[:1]
	rs.Maps = slices.Delete(rs.Maps, 2, 3)
	rs.Chains = slices.Delete(rs.Chains, 4, 5) // eg_pod2
	rs.Chains[6].Rules = rs.Chains[6].Rules[:3]
	rs.Chains = append(rs.Chains, Chain{Name: "in_pod9", Rules: []Rule{
		{Matches: []Match{AddrInSet{Family: IPv6, Field: SourceAddr, Set: "peers_extra"}}, Verdict: Verdict{Kind: Accept}},
	}})
	rs.Sets = slices.Delete(rs.Sets, 7, 8) // svc_v4
	rs.Sets = append(rs.Sets, Set{Name: "peers_extra", Type: KeyIPv6, Comment: "added later", Elements: []Element{{Addr: pod1V6}}})
	slices.SortFunc(rs.Sets, func(a, b Set) int { return strings.Compare(a.Name, b.Name) })
	assertSameContent(t, ns, rs)

	// Deleting the table removes everything.
	run(t, b, &Transaction{Table: rs.Table, Ops: []Op{DeleteTable{}}})
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
	refill := func(b Backend, chain string) {
		t.Helper()
		c := rs.Chains[slices.IndexFunc(rs.Chains, func(c Chain) bool { return c.Name == chain })]
		tx := &Transaction{Table: rs.Table, Ops: []Op{FlushChain{Name: chain}}}
		for _, r := range c.Rules {
			tx.Ops = append(tx.Ops, AddRule{Chain: chain, Rule: r})
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

	bad := &Transaction{Table: rs.Table, Ops: []Op{
		AddElements{Set: "peers_v4", Type: KeyIPv4, Interval: true, Elements: []Element{addrRange("198.18.9.0", "198.18.9.255")}},
		DeleteMapElements{Map: "ingress-pods-v4", Type: KeyIPv4, Elements: rs.Maps[1].Elements},
		FlushChain{Name: "in_pod1"},
		AddChain{Chain: Chain{Name: "in_pod7"}},
		AddRule{Chain: "in_pod7", Rule: Rule{Verdict: Verdict{Kind: Drop}}},
		AddRule{Chain: "ingress", Rule: Rule{Verdict: Verdict{Kind: Jump, Chain: "no-such-chain"}}},
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
	broken.Ops = append(broken.Ops, AddElements{Set: "no-such-set", Type: KeyIPv4, Elements: []Element{{Addr: pod1V4}}})
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
	rs := &Ruleset{Table: kernelTable, Chains: []Chain{{Name: "only", Rules: []Rule{{Verdict: Verdict{Kind: Accept}}}}}}
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
