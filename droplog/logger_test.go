package droplog

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/kernel/nflog"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// IP plan: 10.0.0.10 is db/postgres, local and isolated for ingress by db/deny-all and
// db/allow-api; 10.0.0.20 is web/frontend, local and not isolated; 10.1.0.30 is web/api on another
// node; 192.0.2.1 is outside the cluster. Audited policies: db/trial selects postgres for ingress,
// web/trial frontend for egress (nothing enforced isolates frontend).
var (
	postgresIP = netip.MustParseAddr("10.0.0.10")
	frontendIP = netip.MustParseAddr("10.0.0.20")
	apiIP      = netip.MustParseAddr("10.1.0.30")
	outsideIP  = netip.MustParseAddr("192.0.2.1")
	t0         = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
)

func testModel() *selectors.Model {
	iso := &selectors.Isolation{Policies: []selectors.PolicyRef{{Namespace: "db", Name: "allow-api"}, {Namespace: "db", Name: "deny-all"}}}
	return &selectors.Model{Node: "n1", LocalPods: []selectors.LocalPod{
		{Namespace: "db", Name: "postgres", IPs: []netip.Addr{postgresIP}, Ingress: iso,
			AuditIngress: &selectors.Isolation{Policies: []selectors.PolicyRef{{Namespace: "db", Name: "trial"}}}},
		{Namespace: "web", Name: "frontend", IPs: []netip.Addr{frontendIP},
			AuditEgress: &selectors.Isolation{Policies: []selectors.PolicyRef{{Namespace: "web", Name: "trial"}}}},
	}}
}

func testDirectory() *Directory {
	rs := &nft.Ruleset{Counters: []nft.Counter{
		{Name: "allow-in_db_allow-api_0", Labels: nft.CounterLabels{Namespace: "db", Direction: selectors.Ingress, Policy: "allow-api", Rule: 0}},
		{Name: "audit-allow-in_db_trial", Labels: nft.CounterLabels{Namespace: "db", Direction: selectors.Ingress, Policy: "trial", Audit: nft.WouldAllow}},
	}}
	return NewDirectory(testModel(), rs, []selectors.Pod{{Namespace: "web", Name: "api", IPs: []netip.Addr{apiIP}}})
}

// tcpSYN is an IPv4 TCP SYN from src to dst, as NFLOG copies it from the network header on.
func tcpSYN(src, dst netip.AddrPort) []byte {
	b := make([]byte, 40)
	b[0] = 0x45
	b[9] = nft.ProtoTCP
	copy(b[12:16], src.Addr().AsSlice())
	copy(b[16:20], dst.Addr().AsSlice())
	binary.BigEndian.PutUint16(b[20:22], src.Port())
	binary.BigEndian.PutUint16(b[22:24], dst.Port())
	b[32] = 5 << 4
	b[33] = nflog.TCPSyn
	return b
}

func record(prefix string, at time.Time, src, dst netip.AddrPort) nflog.Record {
	return nflog.Record{Prefix: prefix, Family: 2, Timestamp: at, Payload: tcpSYN(src, dst)}
}

var postgresIngress = nft.LogPrefix + nft.PodChainName(testModel().LocalPods[0], selectors.Ingress)

// run feeds records to a Logger through a fake group and returns its lines.
func run(t *testing.T, opts Options, records ...nflog.Record) ([]Entry, *Logger) {
	t.Helper()
	var out bytes.Buffer
	opts.Node, opts.Out = "n1", &out
	l := New(opts)
	l.SetDirectory(testDirectory())
	src := nflog.NewFake(len(records) + 1)
	src.Log(records...)
	_ = src.Close()
	if err := l.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	var entries []Entry
	sc := bufio.NewScanner(&out)
	for sc.Scan() {
		var e Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		entries = append(entries, e)
	}
	return entries, l
}

func TestDefaultDenyNamesThePodEveryIsolatingPolicyAndBothEnds(t *testing.T) {
	entries, l := run(t, Options{}, record(postgresIngress, t0, netip.AddrPortFrom(apiIP, 40000), netip.AddrPortFrom(postgresIP, 5432)))
	if len(entries) != 1 {
		t.Fatalf("%d lines, want 1: %+v", len(entries), entries)
	}
	e := entries[0]
	want := Entry{First: t0, Last: t0, Count: 1, Node: "n1", Direction: "ingress", Verdict: VerdictDrop, Reason: ReasonDefaultDeny,
		Pod: "db/postgres", Policies: []string{"db/allow-api", "db/deny-all"},
		Src:      Endpoint{IP: apiIP, Port: 40000, Pod: "api", Namespace: "web"},
		Dst:      Endpoint{IP: postgresIP, Port: 5432, Pod: "postgres", Namespace: "db"},
		Protocol: "tcp"}
	if !e.First.Equal(want.First) || !e.Last.Equal(want.Last) {
		t.Errorf("times %v..%v, want %v", e.First, e.Last, t0)
	}
	e.First, e.Last = want.First, want.Last
	if e.Direction != want.Direction || e.Reason != want.Reason || e.Pod != want.Pod || !slices.Equal(e.Policies, want.Policies) ||
		e.Src != want.Src || e.Dst != want.Dst || e.Protocol != want.Protocol || e.Count != 1 || e.Node != "n1" || e.Verdict != "drop" {
		t.Errorf("line %+v\nwant %+v", e, want)
	}
	if s := l.Stats(); s.Suppressed != 0 || s.Foreign != 0 {
		t.Errorf("stats %+v, want none", s)
	}
}

func TestAllowedConnectionNamesTheAdmittingRule(t *testing.T) {
	entries, _ := run(t, Options{}, record(nft.LogPrefix+"allow-in_db_allow-api_0", t0, netip.AddrPortFrom(apiIP, 40000), netip.AddrPortFrom(postgresIP, 5432)))
	if len(entries) != 1 {
		t.Fatalf("%d lines, want 1", len(entries))
	}
	e := entries[0]
	if e.Verdict != VerdictAllow || e.Reason != ReasonPolicyRule || e.Direction != "ingress" || !slices.Equal(e.Policies, []string{"db/allow-api"}) ||
		e.Rule == nil || *e.Rule != 0 || e.Pod != "db/postgres" || e.Src.Pod != "api" {
		t.Errorf("line %+v, want an allow by db/allow-api ingress[0] to db/postgres", e)
	}
}

func TestAuditRecordsNameTheAuditedPolicies(t *testing.T) {
	frontendEgress := nft.LogPrefix + nft.LogPrefixWouldDrop + nft.PodChainName(testModel().LocalPods[1], selectors.Egress)
	entries, _ := run(t, Options{},
		record(frontendEgress, t0, netip.AddrPortFrom(frontendIP, 40000), netip.AddrPortFrom(outsideIP, 443)),
		record(nft.LogPrefix+"audit-allow-in_db_trial", t0, netip.AddrPortFrom(apiIP, 40001), netip.AddrPortFrom(postgresIP, 5432)),
	)
	if len(entries) != 2 {
		t.Fatalf("%d lines, want 2: %+v", len(entries), entries)
	}
	if e := entries[0]; e.Verdict != "would-drop" || e.Reason != ReasonAudit || e.Direction != "egress" || e.Pod != "web/frontend" ||
		!slices.Equal(e.Policies, []string{"web/trial"}) || e.Dst.IP != outsideIP {
		t.Errorf("first line %+v, want a would-drop of web/frontend's egress by web/trial", e)
	}
	if e := entries[1]; e.Verdict != "would-allow" || e.Reason != ReasonAudit || e.Direction != "ingress" || e.Pod != "db/postgres" ||
		!slices.Equal(e.Policies, []string{"db/trial"}) || e.Rule != nil || e.Src.Pod != "api" {
		t.Errorf("second line %+v, want a would-allow of web/api to db/postgres by db/trial", e)
	}
}

func TestRecordsOfOneFlowMergeWithinTheWindow(t *testing.T) {
	client := func(port uint16) netip.AddrPort { return netip.AddrPortFrom(outsideIP, port) }
	server := netip.AddrPortFrom(postgresIP, 5432)
	counter := prometheus.NewCounter(prometheus.CounterOpts{Name: "test_suppressed_total"})
	records := []nflog.Record{
		record(postgresIngress, t0, client(1000), server),
		record(postgresIngress, t0.Add(300*time.Millisecond), client(1001), server), // a retry from a new port
		record(postgresIngress, t0.Add(600*time.Millisecond), client(1002), server),
		record(postgresIngress, t0.Add(100*time.Millisecond), netip.AddrPortFrom(frontendIP, 2000), server), // another flow
		record(nft.LogPrefix+nft.LogPrefixAntiSpoof, t0, client(1000), server),                              // another drop point
		record("someone else's prefix", t0, client(1000), server),
	}
	entries, l := run(t, Options{Suppressed: counter}, records...)
	if len(entries) != 3 {
		t.Fatalf("%d lines, want 3: %+v", len(entries), entries)
	}
	first := entries[0]
	if first.Count != 3 || !first.First.Equal(t0) || !first.Last.Equal(t0.Add(600*time.Millisecond)) || first.Src.Port != 1000 {
		t.Errorf("merged line %+v, want count 3 from %v to +600ms with the first source port", first, t0)
	}
	if entries[1].Src.Pod != "frontend" || entries[1].Count != 1 {
		t.Errorf("second line %+v, want frontend's own flow", entries[1])
	}
	if entries[2].Reason != ReasonAntiSpoof || entries[2].Pod != "" || entries[2].Policies != nil {
		t.Errorf("third line %+v, want an anti-spoofing drop naming no pod or policy", entries[2])
	}
	if s := l.Stats(); s.Suppressed != 2 || s.Foreign != 1 {
		t.Errorf("stats %+v, want 2 suppressed, 1 foreign", s)
	}
	if got := testutil.ToFloat64(counter); got != 2 {
		t.Errorf("suppressed counter %v, want 2", got)
	}
}

func TestFlushWritesOnlyFlowsWhoseWindowEnded(t *testing.T) {
	var out bytes.Buffer
	l := New(Options{Node: "n1", Out: &out, Window: time.Second})
	server := netip.AddrPortFrom(postgresIP, 5432)
	l.Handle(record(postgresIngress, t0, netip.AddrPortFrom(outsideIP, 1), server))
	l.Handle(record(postgresIngress, t0.Add(800*time.Millisecond), netip.AddrPortFrom(apiIP, 1), server))
	l.Flush(t0.Add(time.Second))
	if n := bytes.Count(out.Bytes(), []byte("\n")); n != 1 {
		t.Fatalf("%d lines after the first window, want 1:\n%s", n, out.String())
	}
	// The same flow after its line was written starts a new line.
	l.Handle(record(postgresIngress, t0.Add(1100*time.Millisecond), netip.AddrPortFrom(outsideIP, 1), server))
	l.FlushAll()
	if n := bytes.Count(out.Bytes(), []byte("\n")); n != 3 {
		t.Fatalf("%d lines in all, want 3:\n%s", n, out.String())
	}
}

func TestFlowsBeyondTheBoundAndKernelLossesAreSuppressed(t *testing.T) {
	var records []nflog.Record
	for i := range 10 {
		records = append(records, record(postgresIngress, t0, netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(i)}), 1), netip.AddrPortFrom(postgresIP, 5432)))
	}
	var out bytes.Buffer
	l := New(Options{Node: "n1", Out: &out, MaxFlows: 4})
	src := nflog.NewFake(len(records))
	src.Log(records...)
	src.Lose(5)
	_ = src.Close()
	if err := l.Run(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(out.Bytes(), []byte("\n")); n != 4 {
		t.Errorf("%d lines, want 4 (the bound)", n)
	}
	if s := l.Stats(); s.Suppressed != 6+5 {
		t.Errorf("%d suppressed, want 6 beyond the bound and 5 lost", s.Suppressed)
	}
}

// A record can reach the agent before the directory of the commit that made its drop point: lines
// are named when written.
func TestLinesAreNamedByTheDirectoryOfTheirWrite(t *testing.T) {
	var out bytes.Buffer
	l := New(Options{Node: "n1", Out: &out})
	l.Handle(record(postgresIngress, t0, netip.AddrPortFrom(apiIP, 40000), netip.AddrPortFrom(postgresIP, 5432)))
	l.SetDirectory(testDirectory())
	l.Flush(t0.Add(2 * time.Second))
	var e Entry
	if err := json.Unmarshal(out.Bytes(), &e); err != nil {
		t.Fatalf("line %q: %v", out.String(), err)
	}
	if e.Pod != "db/postgres" || !slices.Equal(e.Policies, []string{"db/allow-api", "db/deny-all"}) || e.Src.Pod != "api" {
		t.Errorf("line %+v, want it named by the directory set after its record", e)
	}
}
