package packet

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Goals of issue 5, measurement 3.
const (
	goalCRRVersusBaseline    = 0.95 // new connections per second, A with N policies / conntrack-only
	goalStreamVersusBaseline = 0.97 // established throughput, at most 3% below conntrack-only
	goalCRRVersusB           = 7.0  // new connections per second, A / B with the same policies
)

// Report renders bench/PACKET.md from a run.
func Report(r *Run, source string) string {
	w := &strings.Builder{}
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	o := r.Options
	p("# Per-packet cost: nftpolicy (A) against conntrack only and baseline B, and with drop logging on")
	p("")
	p("Written by `hack/bench/packet.sh` from `%s` (run of %s, %s).", source, r.Started.Format("2006-01-02 15:04 UTC"), (time.Duration(r.Seconds) * time.Second).Round(time.Second))
	p("Machine: %d CPUs (%s), %d MiB, kernel %s, %s; load average at the start %s (other work shares the machine).",
		r.Machine.CPUs, r.Machine.Model, r.Machine.MemoryKiB/1024, r.Machine.Kernel, r.Machine.GoVersion, r.Machine.LoadAvg)
	p("Cluster: generator seed %d, shape %s, P=%d pods, N=%d policies, L=%d local pods, %d namespaces (see `test/bench/generator`).",
		o.Params.Seed, o.Params.Shape, o.Params.Pods, o.Params.Policies, o.Params.LocalPods, o.Params.Namespaces)
	p("")
	p("Two lab pods, a client and a server, on one node (`lab/netlab`: a veth per pod, routed by the node, so every packet crosses the node's prerouting, forward and postrouting hooks). Each table below has a node of its own with its own two pods, programmed once; the workloads then ran table after table, %d rounds, each round starting with the next table (interleaved, so that drift of this shared VM hits every table alike).", o.Rounds)
	p("With %d policies the server copies the namespace and labels of `%s`, the local pod with the median number of selecting ingress policies (%d policies, %d rules; the most any local pod has is %d); the client copies `%s` (egress: %d policies, %d rules). Two more policies allow the client to reach the server's benchmark ports (TCP %d and %d, UDP %d) and nothing else.",
		o.Params.Policies, r.Twins.Server, r.Twins.ServerIngressPolicies, r.Twins.ServerIngressRules, r.Twins.MaxIngressPolicies,
		r.Twins.Client, r.Twins.ClientEgressPolicies, r.Twins.ClientEgressRules, crrPort, streamPort, udpPort)
	p("")
	p("- **CRR**: %d client threads connect, send %d bytes, read the %d-byte reply and the server's close, for %gs; new connections per second and the latency of `connect()`, the round trip of the SYN (the packet the policy judges). The node's conntrack table is flushed before each run.", o.CRRWorkers, messageSize, messageSize, o.CRRSeconds)
	p("- **stream**: one TCP connection writing 128 KiB at a time for %gs; bytes the server received over the time until its count came back.", o.StreamSeconds)
	p("- **UDP**: %d client threads ping-pong %d-byte datagrams, one flow each, for %gs: a small-packet rate on established flows.", o.UDPWorkers, messageSize, o.UDPSeconds)
	p("")
	p("Clients and servers are threads of one Go process making blocking system calls on threads locked into the pods' namespaces (%d server threads per socket). Figures are medians with [min, max] over the rounds; a ratio is computed per round and then summarized.", o.ServerThreads)
	p("")
	reportTables(p, r)
	reportFigures(p, r)
	reportRatios(p, r)
	reportDropLog(p, r)
	reportGoals(p, r)
	p("Not measured: a pair of pods on two nodes. On one node the same-node path is the longest: the packet crosses the client's egress and the server's ingress chains of the same table; across nodes each node sees one of the two.")
	p("")
	if len(r.Problems) > 0 {
		p("## Problems")
		p("")
		for _, pr := range r.Problems {
			p("- %s", pr)
		}
		p("")
	}
	return w.String()
}

func reportTables(p func(string, ...any), r *Run) {
	p("## Tables")
	p("")
	p("| table | what | rules | sets + maps | elements | rules a new connection's first packet is evaluated against | rules for an established packet | programmed in ms | port without policy |")
	p("|---|---|---:|---:|---:|---:|---:|---:|---|")
	for _, t := range r.Tables {
		denied := "passes"
		if t.DeniedPortDropped {
			denied = "dropped"
		}
		p("| %s | %s | %d | %d | %d | %d | %d | %s | %s |", t.Name, t.Description, t.Rules, t.Sets, t.Elements, t.FirstPacketRules, t.EstablishedRules, num(t.ProgramMS), denied)
	}
	p("")
	p("Rules evaluated: over every base chain on the packet's way (prerouting, forward, postrouting), up to the last rule that matched in each chain the packet entered; a set or verdict-map lookup counts as one rule. nftpolicy's count comes from its packet tracer (`nft.Trace`) over the compiled ruleset, B's from walking its two linear chains. The last column is a TCP connection to port %d, which no policy allows: refused by the server (the table let it through) or dropped by the table.", deniedPort)
	p("")
}

func reportFigures(p func(string, ...any), r *Run) {
	p("## Figures")
	p("")
	p("| table | new connections/s | connect p50 µs | connect p99 µs | stream Gbit/s | UDP round trips/s | failed connections / lost datagrams |")
	p("|---|---|---|---|---|---|---|")
	for _, t := range r.Tables {
		s := r.Summary[t.Name]
		p("| %s | %s | %s | %s | %s | %s | %d / %d |", t.Name, sum(s.CRRPerSecond), sum(s.ConnectP50US), sum(s.ConnectP99US), sum(s.StreamGbps), sum(s.UDPPerSecond), s.CRRFailures, s.UDPLost)
	}
	p("")
}

func reportRatios(p func(string, ...any), r *Run) {
	p("## Ratios")
	p("")
	p("Above 1 means the numerator is faster, except for latencies (above 1: the numerator is slower).")
	p("")
	p("| ratio | new connections/s | connect p50 | connect p99 | stream | UDP round trips/s |")
	p("|---|---|---|---|---|---|")
	for _, row := range r.Ratios {
		p("| %s / %s | %s | %s | %s | %s | %s |", row.Numerator, row.Denominator, sum(row.CRRPerSecond), sum(row.ConnectP50US), sum(row.ConnectP99US), sum(row.StreamGbps), sum(row.UDPPerSecond))
	}
	p("")
}

// reportDropLog describes the tables with drop logging on, their ratios against the same table
// without, and what their NFLOG readers read. Issue #18 asks for these ratios as figures, not goals.
func reportDropLog(p func(string, ...any), r *Run) {
	for _, t := range r.Tables {
		if t.DropLog == nil {
			continue
		}
		var plain *Table
		for i := range r.Tables {
			if u := &r.Tables[i]; u.Kind == t.Kind && u.Policies == t.Policies && u.DropLog == nil {
				plain = u
			}
		}
		dl := t.DropLog
		p("## Drop logging on: %s", t.Name)
		p("")
		p("What was measured: %s is the model of %s compiled with drop logging on (`nft.CompileInput.DropLog`), as the agent compiles it with `--drop-log=namespace` when the lab pods' namespaces (%s) are annotated `nftpolicy.io/log: all`: the %d isolated local pods of those namespaces log their default denies and the first packet of each allowed connection (a log rule before each accept of their policies' rules, naming the rule), limited to %d records/s per source and destination address pair and %d/s per log rule (burst 5), NFLOG group %d: the agent's defaults. The anti-spoofing drops are not logged (the node-wide level is off).",
			t.Name, tableName(plain), codeList(dl.Namespaces), dl.Pods, dl.PairRate, dl.Rate, dl.Group)
		p("An NFLOG reader (`nft/kernel/nflog`, with the agent's options) bound the group in the node's namespace before the checks and drained it until the end of the run, counting records by drop point; it did not format log lines (the agent's `droplog` formatter only sees records that passed the limits).")
		if plain != nil {
			p("A new connection's first packet is evaluated against %d rules in %s and %d in %s: the log rules add the per-pair `update` of a dynamic set and the per-rule limit in front of the accepts. Established packets are accepted before any log rule (%d rules in both), so stream and UDP show what logging costs established traffic.",
				t.FirstPacketRules, t.Name, plain.FirstPacketRules, plain.Name, t.EstablishedRules)
		}
		p("")
		p("| ratio | new connections/s | connect p50 | connect p99 | stream | UDP round trips/s |")
		p("|---|---|---|---|---|---|")
		for _, row := range r.Ratios {
			if row.Numerator == t.Name {
				p("| %s / %s | %s | %s | %s | %s | %s |", row.Numerator, row.Denominator, sum(row.CRRPerSecond), sum(row.ConnectP50US), sum(row.ConnectP99US), sum(row.StreamGbps), sum(row.UDPPerSecond))
			}
		}
		p("")
		p("These ratios are reported as figures, as issue #18 asks; they are not goals and nothing is judged against them. Above 1 means %s is faster, except for latencies (above 1: slower).%s", t.Name, spreadNote(r))
		p("")
		total := r.LogTotals[t.Name]
		var perRound [6][]float64
		for i := range r.Tables {
			if r.Tables[i].Name != t.Name {
				continue
			}
			for _, c := range r.Figures[i].Log {
				for k, v := range c.columns() {
					perRound[k] = append(perRound[k], float64(v))
				}
			}
		}
		p("| NFLOG reader of %s | records | allowed connections | default denies | other prefixes | receive buffer overruns | records lost |", t.Name)
		p("|---|---|---|---|---|---|---|")
		c := total.columns()
		p("| whole run, from the checks on | %d | %d | %d | %d | %d | %d |", c[0], c[1], c[2], c[3], c[4], c[5])
		p("| per round | %s | %s | %s | %s | %s | %s |", sum(summarize(perRound[0])), sum(summarize(perRound[1])), sum(summarize(perRound[2])),
			sum(summarize(perRound[3])), sum(summarize(perRound[4])), sum(summarize(perRound[5])))
		p("")
		p("Few records for many connections: every connection is between the same two addresses, and the per-pair limit is one budget per address pair shared by every log rule of the node (%d/s, burst 5), so it bounds the records of the allowed connections, both directions together, and of any drop of the same pair.", dl.PairRate)
		p("")
	}
}

// spreadNote says how far the conntrack-only baseline's own figures moved between rounds: the scale
// of the machine's noise that a per-round ratio cancels only in part.
func spreadNote(r *Run) string {
	for _, t := range r.Tables {
		if t.Kind != KindConntrack {
			continue
		}
		s := r.Summary[t.Name]
		spread := func(x Summary) string {
			if x.N == 0 || x.Median == 0 {
				return "-"
			}
			return fmt.Sprintf("%.0f%%", 100*(x.Max-x.Min)/x.Median)
		}
		return fmt.Sprintf(" For scale, %s's own figures varied between rounds by %s (new connections/s), %s (stream) and %s (UDP) of their medians: a ratio per round cancels the drift both of its runs saw, not the noise within a round.",
			t.Name, spread(s.CRRPerSecond), spread(s.StreamGbps), spread(s.UDPPerSecond))
	}
	return ""
}

func tableName(t *Table) string {
	if t == nil {
		return "the same table"
	}
	return t.Name
}

// codeList renders names as `a`, `b`.
func codeList(names []string) string {
	quoted := make([]string, len(names))
	for i, n := range names {
		quoted[i] = "`" + n + "`"
	}
	return strings.Join(quoted, ", ")
}

// goal is one line of the goals table.
type goal struct {
	text, figure, verdict, why string
}

func reportGoals(p func(string, ...any), r *Run) {
	p("## Goals of the issue")
	p("")
	p("| goal | figure | verdict | what limits it / notes |")
	p("|---|---|---|---|")
	for _, g := range goals(r) {
		p("| %s | %s | %s | %s |", g.text, g.figure, g.verdict, g.why)
	}
	p("")
}

// goals judges the run against the goals. A goal is met when the median of the per-round
// ratios meets it; rounds that miss are named, and so is the baseline's own spread when it is wider
// than the margin the goal leaves.
func goals(r *Run) []goal {
	var a, b, base *Table
	for i := range r.Tables {
		t := &r.Tables[i]
		switch {
		case t.Kind == KindConntrack:
			base = t
		case t.Kind == KindA && t.Policies > 0 && t.DropLog == nil:
			a = t
		case t.Kind == KindB:
			b = t
		}
	}
	if a == nil || b == nil || base == nil {
		return []goal{{text: "3. per-packet cost", figure: "not measured", verdict: "n/a", why: "the run lacks a table"}}
	}
	vsBase, _ := r.ratio(a.Name, base.Name)
	vsB, _ := r.ratio(a.Name, b.Name)
	baseStats := r.Summary[base.Name]
	var out []goal

	crr := judge(vsBase.CRRPerSecond, goalCRRVersusBaseline)
	crr.text = fmt.Sprintf("3. new connections/s with %d policies >= 95%% of conntrack only", a.Policies)
	crr.figure = fmt.Sprintf("%s/%s = %s", a.Name, base.Name, sum(vsBase.CRRPerSecond))
	crr.why = joinWhy(crr.why,
		fmt.Sprintf("a new connection's first packet is evaluated against %d rules in %s (one verdict-map lookup per direction, then the pod's chain) and %d in %s; connect p50 %s against %s µs",
			a.FirstPacketRules, a.Name, base.FirstPacketRules, base.Name, num(r.Summary[a.Name].ConnectP50US.Median), num(baseStats.ConnectP50US.Median)),
		noise("new connections/s", baseStats.CRRPerSecond, 1-goalCRRVersusBaseline))
	out = append(out, crr)

	stream := judge(vsBase.StreamGbps, goalStreamVersusBaseline)
	stream.text = fmt.Sprintf("3. established throughput with %d policies within 3%% of conntrack only (faster counts as within)", a.Policies)
	stream.figure = fmt.Sprintf("%s/%s = %s", a.Name, base.Name, sum(vsBase.StreamGbps))
	stream.why = joinWhy(stream.why,
		fmt.Sprintf("an established packet is evaluated against %d rules in %s (the source check's jump and one lookup of the pod's interface and address on prerouting, then in the egress and ingress base chains each its jump and `ct state`) and %d in %s",
			a.EstablishedRules, a.Name, base.EstablishedRules, base.Name),
		noise("throughput", baseStats.StreamGbps, 1-goalStreamVersusBaseline),
		control(r, b, base))
	out = append(out, stream)

	vb := judge(vsB.CRRPerSecond, goalCRRVersusB)
	vb.text = "3. new connections/s at least 7x baseline B's"
	vb.figure = fmt.Sprintf("%s/%s = %s", a.Name, b.Name, sum(vsB.CRRPerSecond))
	vb.why = joinWhy(vb.why, fmt.Sprintf("B's first packet is evaluated against %d linear rules (every rule of the pods before the client in the egress chain, and before the server in the ingress chain)", b.FirstPacketRules))
	out = append(out, vb)
	return out
}

// control compares B with the baseline on established throughput: B's established packets meet
// only `ct state` rules, so how far B/baseline is from 1 shows what the machine alone does to a ratio.
func control(r *Run, b, base *Table) string {
	row, ok := r.ratio(b.Name, base.Name)
	if !ok || row.StreamGbps.N == 0 {
		return ""
	}
	return fmt.Sprintf("as a control, %s (%d rules for an established packet) measured %s of the baseline's throughput", b.Name, b.EstablishedRules, sum(row.StreamGbps))
}

// judge gives a verdict on per-round ratios that must be at least threshold.
func judge(s Summary, threshold float64) goal {
	switch {
	case s.N == 0:
		return goal{verdict: "not measured"}
	case s.Median < threshold:
		return goal{verdict: "**missed**"}
	case s.Min < threshold:
		return goal{verdict: "met (borderline)", why: fmt.Sprintf("borderline: the median meets it but the worst round is %s", num(s.Min))}
	}
	return goal{verdict: "met"}
}

// noise says how far the baseline's own figure moved between rounds, when that is more than margin
// (a fraction): then no single round can resolve a difference of that size.
func noise(what string, s Summary, margin float64) string {
	if s.N == 0 || s.Median == 0 {
		return ""
	}
	spread := (s.Max - s.Min) / s.Median
	if spread <= margin {
		return ""
	}
	return fmt.Sprintf("the baseline's own %s varied by %.0f%% between rounds (%s to %s), more than the %.0f%% margin", what, 100*spread, num(s.Min), num(s.Max), 100*margin)
}

func joinWhy(parts ...string) string {
	var out []string
	for _, s := range parts {
		if s != "" {
			out = append(out, s)
		}
	}
	return strings.Join(out, "; ")
}

// sum renders a Summary as "median [min, max]".
func sum(s Summary) string {
	if s.N == 0 {
		return "-"
	}
	if s.N == 1 {
		return num(s.Median)
	}
	return fmt.Sprintf("%s [%s, %s]", num(s.Median), num(s.Min), num(s.Max))
}

// num renders a figure with three significant digits, or as an integer from 1000 up.
func num(x float64) string {
	switch {
	case math.IsNaN(x):
		return "-"
	case math.Abs(x) >= 1000:
		return strconv.FormatFloat(x, 'f', 0, 64)
	case x == 0:
		return "0"
	}
	digits := max(0, 2-int(math.Floor(math.Log10(math.Abs(x)))))
	return strconv.FormatFloat(x, 'f', digits, 64)
}
