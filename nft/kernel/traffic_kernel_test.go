package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"net/netip"
	"os/exec"
	"testing"
	"time"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// Traffic plan (see netlab for the address plan):
//
//	node1: pod a (ingress isolated), pod b (egress isolated), pod x (not isolated)
//	node2: pod c, pod d (not isolated; node2 has no table)
//
//	a admits TCP and UDP on port 8080 from x (same node, IPv4 and IPv6) and c (other node, IPv4).
//	b may send TCP and UDP to c on port 8080, nothing else.
//	UDP rules match ports in a named port set (7000-7010 and 8080), TCP rules one port each.
//	Every pod serves ports 8080 and 9090.
const (
	allowedPort = 8080
	otherPort   = 9090
)

type trafficPods struct {
	a, b, x, c, d *netlab.Pod
}

// trafficRuleset is the enforcer's table on node1, in the shape the compiler produces.
func trafficRuleset(p trafficPods) *nft.Ruleset {
	tcpTo := func(port uint16) []nft.Match {
		return []nft.Match{nft.L4Proto{Protos: []uint8{nft.ProtoTCP}}, nft.DestPortIn{Ranges: []nft.PortRange{{First: port, Last: port}}}}
	}
	udpToPortSet := []nft.Match{nft.L4Proto{Protos: []uint8{nft.ProtoUDP}}, nft.DestPortInSet{Set: "ports_udp"}}
	from := func(f nft.Family, set string, ms []nft.Match) []nft.Match {
		return append([]nft.Match{nft.AddrInSet{Family: f, Field: nft.SourceAddr, Set: set}}, ms...)
	}
	to := func(f nft.Family, set string, ms []nft.Match) []nft.Match {
		return append([]nft.Match{nft.AddrInSet{Family: f, Field: nft.DestAddr, Set: set}}, ms...)
	}
	accept, drop := nft.Verdict{Kind: nft.Accept}, nft.Verdict{Kind: nft.Drop}
	established := nft.Rule{Matches: []nft.Match{nft.CtState{Established: true, Related: true}}, Verdict: accept}
	single := func(a netip.Addr) nft.Element { return nft.Element{Addr: a, AddrEnd: a} }
	return &nft.Ruleset{
		Table: kernelTable,
		Sets: []nft.Set{
			{Name: "peers_a_v4", Type: nft.KeyIPv4, Interval: true, Elements: sortedTestElements(single(p.x.IPv4), single(p.c.IPv4))},
			{Name: "peers_a_v6", Type: nft.KeyIPv6, Interval: true, Elements: []nft.Element{single(p.x.IPv6)}},
			{Name: "peers_b_v4", Type: nft.KeyIPv4, Elements: []nft.Element{{Addr: p.c.IPv4}}},
			{Name: "ports_udp", Type: nft.KeyPort, Interval: true, Elements: []nft.Element{{Port: 7000, PortEnd: 7010}, {Port: allowedPort, PortEnd: allowedPort}}},
		},
		Maps: []nft.Map{
			{Name: "egress-pods-v4", Type: nft.KeyIPv4, Elements: []nft.MapElement{{Key: p.b.IPv4, Verdict: nft.Verdict{Kind: nft.Goto, Chain: "eg_b"}}}},
			{Name: "ingress-pods-v4", Type: nft.KeyIPv4, Elements: []nft.MapElement{{Key: p.a.IPv4, Verdict: nft.Verdict{Kind: nft.Goto, Chain: "in_a"}}}},
			{Name: "ingress-pods-v6", Type: nft.KeyIPv6, Elements: []nft.MapElement{{Key: p.a.IPv6, Verdict: nft.Verdict{Kind: nft.Goto, Chain: "in_a"}}}},
		},
		Chains: []nft.Chain{
			{Name: "egress-forward", Base: &nft.BaseHook{Hook: nft.HookForward}, Rules: []nft.Rule{{Verdict: nft.Verdict{Kind: nft.Jump, Chain: "egress"}}}},
			{Name: "egress-input", Base: &nft.BaseHook{Hook: nft.HookInput}, Rules: []nft.Rule{{Verdict: nft.Verdict{Kind: nft.Jump, Chain: "egress"}}}},
			{Name: "ingress-forward", Base: &nft.BaseHook{Hook: nft.HookForward, Priority: 10}, Rules: []nft.Rule{{Verdict: nft.Verdict{Kind: nft.Jump, Chain: "ingress"}}}},
			{Name: "eg_b", Rules: []nft.Rule{
				{Matches: to(nft.IPv4, "peers_b_v4", tcpTo(allowedPort)), Verdict: accept},
				{Matches: to(nft.IPv4, "peers_b_v4", udpToPortSet), Verdict: accept},
				{Verdict: drop},
			}},
			{Name: "egress", Rules: []nft.Rule{
				established,
				{VMap: &nft.VMapLookup{Family: nft.IPv4, Field: nft.SourceAddr, Map: "egress-pods-v4"}},
			}},
			{Name: "in_a", Rules: []nft.Rule{
				{Matches: from(nft.IPv4, "peers_a_v4", tcpTo(allowedPort)), Verdict: accept},
				{Matches: from(nft.IPv4, "peers_a_v4", udpToPortSet), Verdict: accept},
				{Matches: from(nft.IPv6, "peers_a_v6", tcpTo(allowedPort)), Verdict: accept},
				{Matches: from(nft.IPv6, "peers_a_v6", udpToPortSet), Verdict: accept},
				{Verdict: drop},
			}},
			{Name: "ingress", Rules: []nft.Rule{
				established,
				{Matches: []nft.Match{nft.ICMPv6TypeIn{Types: ndTypes}}, Verdict: accept},
				{VMap: &nft.VMapLookup{Family: nft.IPv4, Field: nft.DestAddr, Map: "ingress-pods-v4"}},
				{VMap: &nft.VMapLookup{Family: nft.IPv6, Field: nft.DestAddr, Map: "ingress-pods-v6"}},
			}},
		},
	}
}

func sortedTestElements(es ...nft.Element) []nft.Element {
	nft.SortElements(es)
	return es
}

type flow struct {
	name    string
	from    *netlab.Pod
	to      netip.Addr
	port    uint16
	allowed bool // with the table in place; every flow works without it
}

// TestNetlinkTraffic sends real TCP and UDP between pod namespaces through a node that runs the
// table: allowed flows connect and get their replies back (the replies pass through the same chains
// and are accepted by the ct state rule), denied flows time out.
func TestNetlinkTraffic(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("the nft command is needed to read the kernel's listing")
	}
	lab := netlab.NewForTest(t)
	node1, node2 := mustNode(t, lab), mustNode(t, lab)
	if err := lab.Connect(node1, node2); err != nil {
		t.Fatal(err)
	}
	p := trafficPods{a: mustPod(t, node1, "a"), b: mustPod(t, node1, "b"), x: mustPod(t, node1, "x"), c: mustPod(t, node2, "c"), d: mustPod(t, node2, "d")}
	for _, pod := range []*netlab.Pod{p.a, p.x, p.c} {
		for _, port := range []uint16{allowedPort, otherPort} {
			srv, err := pod.Serve(port)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Close)
		}
	}
	flows := []flow{
		{"same node, allowed peer and port", p.x, p.a.IPv4, allowedPort, true},
		{"same node IPv6, allowed peer and port", p.x, p.a.IPv6, allowedPort, true},
		{"same node, other port", p.x, p.a.IPv4, otherPort, false},
		{"other node, allowed peer", p.c, p.a.IPv4, allowedPort, true},
		{"other node, peer not selected", p.d, p.a.IPv4, allowedPort, false},
		{"other node IPv6, peer not selected", p.c, p.a.IPv6, allowedPort, false},
		{"egress isolated to allowed peer on other node", p.b, p.c.IPv4, allowedPort, true},
		{"egress isolated to other port", p.b, p.c.IPv4, otherPort, false},
		{"egress isolated to same node pod", p.b, p.x.IPv4, allowedPort, false},
		{"not isolated to not isolated", p.x, p.c.IPv4, otherPort, true},
	}

	check := func(t *testing.T, withTable bool) {
		for _, f := range flows {
			want := f.allowed || !withTable
			dst := netip.AddrPortFrom(f.to, f.port)
			timeout := 3 * time.Second
			if !want {
				timeout = 400 * time.Millisecond
			}
			tcpErr := f.from.ConnectTCP(dst, timeout)
			udpErr := f.from.RequestUDP(dst, timeout)
			for proto, err := range map[string]error{"TCP": tcpErr, "UDP": udpErr} {
				switch {
				case want && err != nil:
					t.Errorf("%s: %s %s -> %s should pass: %v", f.name, proto, f.from.Name, dst, err)
				case !want && err == nil:
					t.Errorf("%s: %s %s -> %s should be dropped", f.name, proto, f.from.Name, dst)
				}
			}
		}
	}

	t.Run("without table", func(t *testing.T) { check(t, false) })

	b, err := NewNetlinkBackend(node1.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	rs := trafficRuleset(p)
	run(t, b, replaceTable(rs))
	assertListing(t, node1, rs)
	t.Run("with table", func(t *testing.T) { check(t, true) })
}

func mustNode(t *testing.T, lab *netlab.Lab) *netlab.Node {
	t.Helper()
	n, err := lab.AddNode()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func mustPod(t *testing.T, n *netlab.Node, name string) *netlab.Pod {
	t.Helper()
	p, err := n.AddPod(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
