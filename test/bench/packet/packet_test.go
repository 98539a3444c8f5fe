package packet

// IP plan of these tests: the lab pods of node 1, client 198.18.1.1 and server 198.18.1.2 (netlab's
// plan); the generated cluster is in 10.0.0.0/10.

import (
	"math"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/kernel/nflog"
	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/test/bench/baselines"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

var (
	clientIP = netip.MustParseAddr("198.18.1.1")
	serverIP = netip.MustParseAddr("198.18.1.2")
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want Summary
	}{
		{"empty", nil, Summary{}},
		{"one", []float64{3}, Summary{Median: 3, Min: 3, Max: 3, N: 1}},
		{"odd, unsorted", []float64{5, 1, 3}, Summary{Median: 3, Min: 1, Max: 5, N: 3}},
		{"even: mean of the middle two", []float64{4, 1, 2, 3}, Summary{Median: 2.5, Min: 1, Max: 4, N: 4}},
		{"NaN left out", []float64{math.NaN(), 2, 4}, Summary{Median: 3, Min: 2, Max: 4, N: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := summarize(tc.in); got != tc.want {
				t.Errorf("summarize(%v) = %+v, want %+v", tc.in, got, tc.want)
			}
		})
	}
}

func TestPercentile(t *testing.T) {
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(i + 1)
	}
	for _, tc := range []struct{ p, want float64 }{{1, 1}, {50, 50.5}, {99, 99}, {100, 100}} {
		if got := percentile(xs, tc.p); got != tc.want {
			t.Errorf("percentile(1..100, %v) = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := percentile(nil, 50); !math.IsNaN(got) {
		t.Errorf("percentile of nothing = %v, want NaN", got)
	}
}

func TestRatiosArePerRound(t *testing.T) {
	// Round 2 was slow for both sides: per-round ratios do not see it.
	a := []float64{90, 45, 95}
	b := []float64{100, 50, 100}
	got := ratios(a, b)
	want := Summary{Median: 0.9, Min: 0.9, Max: 0.95, N: 3}
	if math.Abs(got.Median-want.Median) > 1e-9 || math.Abs(got.Max-want.Max) > 1e-9 || got.N != want.N {
		t.Errorf("ratios = %+v, want %+v", got, want)
	}
	if got := ratios([]float64{1, 2}, []float64{0, 4}); got.N != 1 || got.Median != 0.5 {
		t.Errorf("a zero denominator must be skipped, got %+v", got)
	}
}

func TestRotate(t *testing.T) {
	firsts := map[int]bool{}
	for r := range 4 {
		order := rotate(4, r)
		seen := map[int]bool{}
		for _, i := range order {
			seen[i] = true
		}
		if len(seen) != 4 {
			t.Fatalf("round %d: order %v is not a permutation", r, order)
		}
		firsts[order[0]] = true
	}
	if len(firsts) != 4 {
		t.Errorf("every table should run first in some round of four, got %v", firsts)
	}
}

func TestNum(t *testing.T) {
	for _, tc := range []struct {
		x    float64
		want string
	}{{0, "0"}, {0.9512, "0.951"}, {12.345, "12.3"}, {352.4, "352"}, {6970.4, "6970"}, {math.NaN(), "-"}} {
		if got := num(tc.x); got != tc.want {
			t.Errorf("num(%v) = %q, want %q", tc.x, got, tc.want)
		}
	}
}

func TestJudge(t *testing.T) {
	for _, tc := range []struct {
		s    Summary
		want string
	}{
		{Summary{Median: 0.99, Min: 0.97, Max: 1.01, N: 5}, "met"},
		{Summary{Median: 0.96, Min: 0.90, Max: 1.01, N: 5}, "met (borderline)"},
		{Summary{Median: 0.94, Min: 0.90, Max: 0.99, N: 5}, "**missed**"},
		{Summary{}, "not measured"},
	} {
		if got := judge(tc.s, 0.95).verdict; got != tc.want {
			t.Errorf("judge(%+v, 0.95) = %q, want %q", tc.s, got, tc.want)
		}
	}
}

// smallCluster is a generated cluster small enough for unit tests, with policies.
func smallCluster(t *testing.T) *generator.Cluster {
	t.Helper()
	c, err := generator.Generate(generator.Defaults(2000, 400, generator.DistinctSelectors))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// labModel resolves the small cluster with the lab pods copying their twins.
func labModel(t *testing.T) (*selectors.Model, Twins) {
	t.Helper()
	c := smallCluster(t)
	twins, err := chooseTwins(selectors.Resolve(c.Snapshot))
	if err != nil {
		t.Fatal(err)
	}
	s, err := withLabPods(c.Snapshot, labPods{Client: clientIP, Server: serverIP}, &twins)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Pods) != len(c.Snapshot.Pods)+2 || len(s.Policies) != len(c.Snapshot.Policies)+2 {
		t.Fatalf("want the lab pods and two policies added to a copy")
	}
	return selectors.Resolve(s), twins
}

func localPod(t *testing.T, m *selectors.Model, ip netip.Addr) selectors.LocalPod {
	t.Helper()
	for _, p := range m.LocalPods {
		for _, a := range p.IPs {
			if a == ip {
				return p
			}
		}
	}
	t.Fatalf("no local pod has %s", ip)
	return selectors.LocalPod{}
}

func TestLabPodsCopyTheirTwins(t *testing.T) {
	m, twins := labModel(t)
	if twins.ServerIngressPolicies == 0 || twins.ClientEgressPolicies == 0 || twins.Server == twins.Client {
		t.Fatalf("twins %+v: want two different pods, each selected by generated policies", twins)
	}
	server, client := localPod(t, m, serverIP), localPod(t, m, clientIP)
	// The server is selected by its twin's policies and by the benchmark's allow policy.
	if server.Ingress == nil || len(server.Ingress.Policies) != twins.ServerIngressPolicies+1 {
		t.Errorf("server ingress: %+v, want %d policies", server.Ingress, twins.ServerIngressPolicies+1)
	}
	if client.Egress == nil || len(client.Egress.Policies) < twins.ClientEgressPolicies+1 {
		t.Errorf("client egress: %+v, want at least %d policies", client.Egress, twins.ClientEgressPolicies+1)
	}
}

// TestTablesPassTheBenchmarkAndDropTheRest traces, without a kernel, the packets the benchmark sends
// through every table it programs: the allowed ports pass, a port without policy does not (except in
// the tables without policies).
func TestTablesPassTheBenchmarkAndDropTheRest(t *testing.T) {
	m, _ := labModel(t)
	rs := compileA(m, map[netip.Addr]string{clientIP: "lab1", serverIP: "lab2"}, nil)
	syn := nft.Packet{Hook: nft.HookForward, Iifname: "lab1", Src: clientIP, Dst: serverIP, Proto: protoTCP, DstPort: crrPort, Ct: nft.CtNew}
	for _, port := range []uint16{crrPort, streamPort} {
		p := syn
		p.DstPort = port
		if v := nft.Trace(rs, p).Verdict; v != nft.Accept {
			t.Errorf("A drops %s", p)
		}
	}
	udp := syn
	udp.Proto, udp.DstPort = 17, udpPort
	if v := nft.Trace(rs, udp).Verdict; v != nft.Accept {
		t.Errorf("A drops %s", udp)
	}
	denied := syn
	denied.DstPort = deniedPort
	if v := nft.Trace(rs, denied).Verdict; v != nft.Drop {
		t.Errorf("A lets %s through", denied)
	}

	a := Table{Name: "A"}
	if err := describeNFT(&a, rs, syn); err != nil {
		t.Fatal(err)
	}
	if a.FirstPacketRules < 4 || a.EstablishedRules < 2 || a.Rules == 0 || a.Elements == 0 {
		t.Errorf("A described as %+v", a)
	}

	base := Table{Name: KindConntrack}
	if err := describeNFT(&base, conntrackOnly(), syn); err != nil {
		t.Fatal(err)
	}
	if base.FirstPacketRules != 2 || base.EstablishedRules != 1 || base.Rules != 2 {
		t.Errorf("conntrack-only described as %+v, want 2 rules for a new packet and 1 for an established one", base)
	}

	layout, err := baselines.NaiveLayout(m)
	if err != nil {
		t.Fatal(err)
	}
	b := Table{Name: "B"}
	if err := describeNaive(&b, layout, clientIP, serverIP, crrPort); err != nil {
		t.Fatal(err)
	}
	if b.FirstPacketRules <= a.FirstPacketRules {
		t.Errorf("B's first packet walks %d rules, A's %d: want B's linear chains longer", b.FirstPacketRules, a.FirstPacketRules)
	}
	if err := describeNaive(&Table{}, layout, clientIP, serverIP, deniedPort); err == nil {
		t.Errorf("B should drop port %d", deniedPort)
	}
}

// loggedPrefixes traces p through rs and returns the verdict and the prefixes of the log rules that
// matched on its way.
func loggedPrefixes(rs *nft.Ruleset, p nft.Packet) (string, []string) {
	chains := map[string]nft.Chain{}
	for _, c := range rs.Chains {
		chains[c.Name] = c
	}
	path := nft.NewTracer(rs).Explain(p)
	var out []string
	for _, s := range path.Steps {
		if c, ok := chains[s.Chain]; ok && s.Matched && s.Index >= 0 && c.Rules[s.Index].Log != nil {
			out = append(out, c.Rules[s.Index].Log.Prefix)
		}
	}
	return path.Verdict, out
}

// TestDropLogTableLogsEveryNewConnection traces the logging table: the lab pods' namespaces log at
// level all, so the first packet of a benchmark connection passes a log rule in the client's egress
// and in the server's ingress, each naming the admitting rule; a connection to a port without policy
// is logged by the client's egress default deny; established packets meet no log rule.
func TestDropLogTableLogsEveryNewConnection(t *testing.T) {
	m, _ := labModel(t)
	ifaces := map[netip.Addr]string{clientIP: "lab1", serverIP: "lab2"}
	dl, desc := dropLogFor(m, *DefaultDropLogOptions(), labNamespaces(m, clientIP, serverIP))
	server, client := localPod(t, m, serverIP), localPod(t, m, clientIP)
	if !dl.AllPods[server.Key()] || !dl.AllPods[client.Key()] || dl.AntiSpoof {
		t.Fatalf("drop log %+v: want both lab pods at level all and no anti-spoofing logging", dl)
	}
	if len(desc.Namespaces) != 2 || desc.Pods < 2 || desc.AllPods != desc.Pods || desc.Group != 100 || desc.PairRate != 5 || desc.Rate != 50 {
		t.Errorf("described as %+v", desc)
	}
	logged, plain := compileA(m, ifaces, dl), compileA(m, ifaces, nil)

	syn := nft.Packet{Hook: nft.HookForward, Iifname: "lab1", Src: clientIP, Dst: serverIP, Proto: protoTCP, DstPort: crrPort, Ct: nft.CtNew}
	verdict, prefixes := loggedPrefixes(logged, syn)
	if verdict != "accept" {
		t.Fatalf("the logging table drops %s", syn)
	}
	var allowed int
	for _, prefix := range prefixes {
		if point, ok := nft.ParseLogPrefix(prefix); ok && point.Counter != "" {
			allowed++
		}
	}
	if allowed != 2 {
		t.Errorf("first packet logged by %v: want one allowed-connection record per direction", prefixes)
	}
	est := syn
	est.Ct = nft.CtEstablished
	if _, prefixes := loggedPrefixes(logged, est); len(prefixes) != 0 {
		t.Errorf("an established packet is logged by %v", prefixes)
	}

	denied := syn
	denied.DstPort = deniedPort
	verdict, prefixes = loggedPrefixes(logged, denied)
	want := nft.LogPrefix + nft.PodChainName(client, selectors.Egress) // the client may not send there
	if verdict != "drop" || !slices.Contains(prefixes, want) {
		t.Errorf("denied port: verdict %s, logged by %v; want a drop logged by %s", verdict, prefixes, want)
	}

	withLog, without := Table{Name: "A-log"}, Table{Name: "A"}
	if err := describeNFT(&withLog, logged, syn); err != nil {
		t.Fatal(err)
	}
	if err := describeNFT(&without, plain, syn); err != nil {
		t.Fatal(err)
	}
	if withLog.FirstPacketRules <= without.FirstPacketRules || withLog.EstablishedRules != without.EstablishedRules {
		t.Errorf("first packet %d rules with logging, %d without; established %d and %d: want more for the first, the same for established",
			withLog.FirstPacketRules, without.FirstPacketRules, withLog.EstablishedRules, without.EstablishedRules)
	}
}

func TestLogReaderCountsByDropPoint(t *testing.T) {
	src := nflog.NewFake(8)
	l := startLogReader(src)
	src.Log(nflog.Record{Prefix: "np/allow-in_ns_p_0"}, nflog.Record{Prefix: "np/allow-eg_ns_p_0"},
		nflog.Record{Prefix: "np/in_ns_pod"}, nflog.Record{Prefix: "someone else"})
	src.Lose(3)
	if err := l.close(); err != nil {
		t.Fatal(err)
	}
	want := LogCounts{Records: 4, Allowed: 2, Denied: 1, Other: 1, Overruns: 1, Lost: 3}
	if got := l.counts(); got != want {
		t.Errorf("counts %+v, want %+v", got, want)
	}
	if got := want.minus(LogCounts{Records: 1, Allowed: 1, Lost: 3}); got != (LogCounts{Records: 3, Allowed: 1, Denied: 1, Other: 1, Overruns: 1}) {
		t.Errorf("minus: %+v", got)
	}
}

func TestNoPoliciesLeaveTheLabPodsOpen(t *testing.T) {
	c, err := generator.Generate(generator.Defaults(500, 0, generator.DistinctSelectors))
	if err != nil {
		t.Fatal(err)
	}
	s, err := withLabPods(c.Snapshot, labPods{Client: clientIP, Server: serverIP}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m := selectors.Resolve(s)
	if p := localPod(t, m, serverIP); p.Ingress != nil || p.Egress != nil {
		t.Errorf("server isolated without policies: %+v", p)
	}
	// A new packet passes the source check and falls through every rule of the egress and ingress
	// paths. An established one stops at `ct state` in each.
	//   source-check: jump anti-spoofing (1); anti-spoofing: the pod's own interface and address (1)
	//   egress-postrouting: jump egress (1); egress: ct, nd, 2 vmaps (4)
	//   ingress-postrouting: jump ingress (1); ingress: ct, nd, the node's own, 2 vmaps (5)
	a := Table{Name: "A-0"}
	syn := nft.Packet{Hook: nft.HookForward, Iifname: "lab1", Src: clientIP, Dst: serverIP, Proto: protoTCP, DstPort: crrPort, Ct: nft.CtNew}
	if err := describeNFT(&a, compileA(m, map[netip.Addr]string{clientIP: "lab1", serverIP: "lab2"}, nil), syn); err != nil {
		t.Fatal(err)
	}
	if a.FirstPacketRules != 2+5+6 || a.EstablishedRules != 2+2+2 {
		t.Errorf("A-0: first packet %d rules, established %d; want 13 and 6", a.FirstPacketRules, a.EstablishedRules)
	}
}

func TestReportStatesGoals(t *testing.T) {
	r := &Run{
		Options: DefaultOptions(),
		Tables: []Table{
			{Name: KindConntrack, Kind: KindConntrack, FirstPacketRules: 2, EstablishedRules: 1},
			{Name: "A-0", Kind: KindA},
			{Name: "A-10k", Kind: KindA, Policies: 10000, FirstPacketRules: 20, EstablishedRules: 9},
			{Name: "A-10k-log", Kind: KindA, Policies: 10000, FirstPacketRules: 24, EstablishedRules: 9,
				DropLog: &TableDropLog{DropLogOptions: *DefaultDropLogOptions(), Namespaces: []string{"ns-1"}, Pods: 3, AllPods: 3}},
			{Name: "B-10k", Kind: KindB, Policies: 10000, FirstPacketRules: 50000},
		},
		LogTotals: map[string]LogCounts{"A-10k-log": {Records: 120, Allowed: 110, Denied: 10, Overruns: 1, Lost: 2}},
	}
	figures := func(crr, gbps float64) Figures {
		var f Figures
		for i := range 5 {
			f.CRR = append(f.CRR, CRRResult{PerSecond: crr, ConnectP50US: 50 + float64(i)})
			f.Stream = append(f.Stream, StreamResult{Gbps: gbps})
			f.UDP = append(f.UDP, UDPResult{PerSecond: 20000})
		}
		return f
	}
	r.Figures = []Figures{figures(1000, 10), figures(990, 10), figures(900, 9.9), figures(720, 9.9), figures(100, 10)}
	for i := range 5 {
		r.Figures[3].Log = append(r.Figures[3].Log, LogCounts{Records: uint64(20 + i)})
	}
	r.summarize()
	if _, ok := r.ratio("A-10k-log", "B-10k"); ok {
		t.Error("the logging table is compared with B")
	}
	if row, ok := r.ratio("A-10k", "B-10k"); !ok || row.CRRPerSecond.Median != 9 {
		t.Fatalf("A-10k/B-10k = %+v", row)
	}
	md := Report(r, "bench/runs/packet-test.json")
	for _, want := range []string{
		"| A-10k / conntrack-only | 0.900",
		"new connections/s with 10000 policies >= 95% of conntrack only | A-10k/conntrack-only = 0.900 [0.900, 0.900] | **missed**",
		"within 3% of conntrack only (faster counts as within) | A-10k/conntrack-only = 0.990 [0.990, 0.990] | met",
		"at least 7x baseline B's | A-10k/B-10k = 9.00 [9.00, 9.00] | met",
		"| A-10k-log / A-10k | 0.800 [0.800, 0.800] |",
		"| A-10k-log / conntrack-only | 0.720 [0.720, 0.720] |",
		"they are not goals",
		"For scale, conntrack-only's own figures varied between rounds by 0% (new connections/s)",
		"| whole run, from the checks on | 120 | 110 | 10 | 0 | 1 | 2 |",
		"| per round | 22.0 [20.0, 24.0] | 0 [0, 0] |",
		"24 rules in A-10k-log and 20 in A-10k",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
}
