package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"slices"
)

// The goals of measurement 5 (issue 5), in milliseconds.
const (
	goalMedianMs = 50
	goalP99Ms    = 200
)

// kindMeaning says what each kind of change is, for the report.
var kindMeaning = map[string]string{
	kindCreate: "NetworkPolicy created, denies the pair: Create returns → first failing probe",
	kindGrant:  "client gains access=granted: Patch returns → first successful probe",
	kindRevoke: "client loses the label: Patch returns → first failing probe",
	kindDelete: "the policy deleted: Delete returns → first successful probe",
}

// writeReport renders the markdown report of r to path; "" writes nothing.
func writeReport(r *run, jsonPath, path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	renderReport(f, r, jsonPath)
	if err := f.Close(); err != nil {
		return err
	}
	logf("wrote %s", path)
	return nil
}

func renderReport(w io.Writer, r *run, jsonPath string) {
	c := r.Config
	fmt.Fprintf(w, "# End-to-end enforcement latency in the lab (issue 5, measurement 5)\n\n")
	fmt.Fprintf(w, "Written by `hack/bench/latency.sh` from `%s` (run of %s UTC, %s).\n", jsonPath, r.Started.Format("2006-01-02 15:04"), r.Finished.Sub(r.Started).Round(1e9))
	fmt.Fprintf(w, "Machine: %d CPUs, kernel %s, %s; load average at the start %s (other work shares the machine).\n\n", r.Machine.CPUs, r.Machine.Kernel, r.Machine.GoVersion, r.Machine.LoadAvg)
	fmt.Fprintf(w, "Goal: median ≤ %d ms and p99 ≤ %d ms with 1k pods in the lab.\n\n", goalMedianMs, goalP99Ms)
	renderFindings(w, r)
	renderMethod(w, c)
	for _, s := range r.Sizes {
		renderSize(w, s, c)
	}
	renderGrowth(w, r.Sizes)
}

func renderMethod(w io.Writer, c configJSON) {
	fmt.Fprintf(w, "## Method\n\n")
	fmt.Fprintf(w, "- One lab per size: a real kube-apiserver and etcd on loopback, %d node namespaces with one agent process each, and the pods (`lab`). "+
		"Pods are spread over 10 namespaces; %d background policies select and admit a share of them. The measured pair crosses nodes: `lat-00/client` on one node probes TCP 80 of `lat-00/target` on the other, so the target's agent enforces and sees the client as a remote peer.\n", c.Nodes, backgroundPolicies)
	fmt.Fprintf(w, "- A node of the lab's address plan holds at most 254 pods, so at most %d pods per node get a network namespace, a veth and a server; pods beyond that are API objects only (Running, with an address nothing routes) on agentless nodes. The agents resolve them as peers like any remote pod; no probe goes to them.\n", realPodsPerNode)
	fmt.Fprintf(w, "- Each trial makes four writes in turn, each timed on its own: %s, %s, %s, %s. After each, the run waits for %d probes in a row with the new verdict, then pauses %.0f–%.0f ms.\n",
		kindCreate, kindGrant, kindRevoke, kindDelete, c.Confirm, c.SettleMs, c.SettleMs*1.5)
	fmt.Fprintf(w, "- Probes: TCP connects from the client's network namespace by %d workers on a shared grid of one slot per %.1f ms, each with a %.0f ms timeout, closed with a reset. "+
		"The policy drops, so a blocked probe is a timeout; an allowed one completes in well under a millisecond. "+
		"**Latency** is from the write call returning to the start of the first probe with the new verdict after which no probe shows the old one; a negative latency means the change was enforced before the API server's response reached the client. "+
		"**Resolution**: the enforcement happened between the start of the last old-verdict probe and that first new-verdict probe (the *bracket*): about %.1f ms when the pair goes from allowed to blocked, and about (timeout + workers × slot) / workers ≈ %.0f ms from blocked to allowed, where each worker waits out its timeout.\n",
		c.Probers, c.ProbeIntervalMs, c.ProbeTimeoutMs, c.ProbeIntervalMs, (c.ProbeTimeoutMs+float64(c.Probers)*c.ProbeIntervalMs)/float64(c.Probers))
	if c.Nice != 0 {
		fmt.Fprintf(w, "- Once its lab is up the benchmark's own threads run at nice %d, so that the probe loop (the instrument, a few percent of a CPU) is not starved; the API server, etcd and the agents keep nice 0.\n", c.Nice)
	}
	fmt.Fprintf(w, "- Percentiles are nearest-rank: with 100 or fewer samples the p99 is the maximum.\n")
	fmt.Fprintf(w, "- Decomposition per change: the write call's duration; when the benchmark's own watch of the pair's namespace (a client on the same loopback, like the agent) received the change; and, from the target agent's metrics endpoint scraped before and after each change, the mean of `nftpolicy_programming_latency_seconds` (from the agent observing the change to the end of the sync that programmed it) and of `nftpolicy_sync_duration_seconds`.\n\n")
}

func renderSize(w io.Writer, s *sizeResult, c configJSON) {
	fmt.Fprintf(w, "## %d pods\n\n", s.Pods)
	fmt.Fprintf(w, "%d pods with a network namespace on %d nodes, %d API-only pods on agentless nodes; %d background policies; target on %s, client on %s; %d trials.\n",
		s.RealPods, s.Nodes, s.APIOnlyPods, s.BackgroundPolicies, s.TargetNode, s.ClientNode, s.Trials)
	fmt.Fprintf(w, "Setup: lab up %.1f s, pods with a namespace %.1f s (%.0f ms each), API-only pods %.1f s, agents quiet %.1f s later; trials %.1f s.\n\n",
		s.Setup.LabStartS, s.Setup.RealPodsS, 1000*s.Setup.RealPodsS/float64(max(s.RealPods, 1)), s.Setup.APIOnlyPodsS, s.Setup.AgentsQuietS, s.TrialsS)

	fmt.Fprintf(w, "### Latency (ms), against the goal\n\n")
	fmt.Fprintf(w, "| change | n | median | p90 | p99 | max | from call start: median / p99 | goal median ≤ %d | goal p99 ≤ %d | timeouts | flaps | relapses |\n", goalMedianMs, goalP99Ms)
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|\n")
	for _, kind := range kinds {
		samples := s.Kinds[kind]
		lat := summarize(collect(samples, func(x sample) (float64, bool) { return x.LatencyMs, !x.TimedOut }))
		issue := summarize(collect(samples, func(x sample) (float64, bool) { return x.FromIssueMs, !x.TimedOut }))
		timeouts, flaps, relapses := 0, 0, 0
		for _, x := range samples {
			flaps += x.Flaps
			relapses += x.Relapses
			if x.TimedOut {
				timeouts++
			}
		}
		fmt.Fprintf(w, "| %s | %d | %.1f | %.1f | %.1f | %.1f | %.1f / %.1f | %s | %s | %d | %d | %d |\n",
			kind, lat.N, lat.Median, lat.P90, lat.P99, lat.Max, issue.Median, issue.P99,
			verdict(lat.Median, goalMedianMs, timeouts), verdict(lat.P99, goalP99Ms, timeouts), timeouts, flaps, relapses)
	}
	fmt.Fprintf(w, "\n")
	for _, kind := range kinds {
		fmt.Fprintf(w, "- %s: %s.\n", kind, kindMeaning[kind])
	}
	fmt.Fprintf(w, "\nFlaps: probes of the new verdict followed by the old one again before it settled. Relapses: probes of the old verdict during the pause after a settled change. Timeouts: changes not seen within %.0f s.\n\n", c.TransitionTimeout)

	fmt.Fprintf(w, "### Where the time goes (medians, ms)\n\n")
	fmt.Fprintf(w, "| change | write call | own watch after call returned | agent: observed → programmed | agent: sync | bracket (resolution) | latency | agent busy after the verdict changed (≈ programmed − latency) |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, kind := range kinds {
		samples := s.Kinds[kind]
		med := func(get func(sample) (float64, bool)) string {
			sum := summarize(collect(samples, get))
			if sum.N == 0 {
				return "–"
			}
			if sum.N < len(samples) {
				return fmt.Sprintf("%.1f (n=%d)", sum.Median, sum.N)
			}
			return fmt.Sprintf("%.1f", sum.Median)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", kind,
			med(func(x sample) (float64, bool) { return x.CallMs, true }),
			med(func(x sample) (float64, bool) { return deref(x.WatchMs) }),
			med(func(x sample) (float64, bool) { return deref(x.ProgrammingMs) }),
			med(func(x sample) (float64, bool) { return deref(x.SyncMs) }),
			med(func(x sample) (float64, bool) { return x.BracketMs, !x.TimedOut }),
			med(func(x sample) (float64, bool) { return x.LatencyMs, !x.TimedOut }),
			med(func(x sample) (float64, bool) {
				p, ok := deref(x.ProgrammingMs)
				return p - x.LatencyMs, ok && !x.TimedOut && x.Programmed == 1
			}))
	}
	fmt.Fprintf(w, "\nThe agent's figures are means per change of its own histograms' sums and counts, so they are exact rather than bucketed; its sync ends after the post-commit conntrack cleanup, which dumps the node's conntrack table, so they run past the moment the new rules took effect.\n\n")

	fmt.Fprintf(w, "### Floor: the probe loop with nothing changing\n\n")
	fmt.Fprintf(w, "| pair | probes | wrong verdicts | other failures | probe duration median / p99 / max | gap between probe starts median / p99 / max | target node's conntrack entries |\n")
	fmt.Fprintf(w, "|---|---:|---:|---:|---:|---:|---:|\n")
	for _, row := range []struct {
		name string
		f    floorFigures
	}{{"allowed", s.Floor.Allowed}, {"blocked", s.Floor.Blocked}} {
		fmt.Fprintf(w, "| %s | %d | %d | %d | %.2f / %.2f / %.2f | %.2f / %.2f / %.2f | %d |\n", row.name, row.f.Probes, row.f.WrongVerdicts, row.f.OtherFailures,
			row.f.ProbeMs.Median, row.f.ProbeMs.P99, row.f.ProbeMs.Max, row.f.GapMs.Median, row.f.GapMs.P99, row.f.GapMs.Max, row.f.TargetConntrack)
	}
	fmt.Fprintf(w, "\n")

	fmt.Fprintf(w, "### The agents' histograms over the trials\n\n")
	fmt.Fprintf(w, "Estimated from the buckets as `histogram_quantile` does (buckets a factor of 2 apart, so coarse); the mean is exact.\n\n")
	fmt.Fprintf(w, "| node | histogram | count | mean ms | p50 ms | p99 ms |\n|---|---|---:|---:|---:|---:|\n")
	nodes := make([]string, 0, len(s.Agents))
	for n := range s.Agents {
		nodes = append(nodes, n)
	}
	slices.Sort(nodes)
	for _, n := range nodes {
		a := s.Agents[n]
		for _, h := range []struct {
			name string
			h    histogram
		}{{programmingLatencyMetric, a.ProgrammingLatency}, {syncDurationMetric, a.SyncDuration}} {
			mean := math.NaN()
			if h.h.Count > 0 {
				mean = 1000 * h.h.Sum / h.h.Count
			}
			fmt.Fprintf(w, "| %s | `%s` | %.0f | %.1f | %.1f | %.1f |\n", n, h.name, h.h.Count, mean, 1000*h.h.quantile(0.5), 1000*h.h.quantile(0.99))
		}
	}
	fmt.Fprintf(w, "\n")
}

// renderGrowth compares the medians of the largest size with the smallest.
func renderGrowth(w io.Writer, sizes []*sizeResult) {
	if len(sizes) < 2 {
		return
	}
	small, large := sizes[0], sizes[len(sizes)-1]
	fmt.Fprintf(w, "## Growth from %d to %d pods (%.1fx the pods)\n\n", small.Pods, large.Pods, float64(large.Pods)/float64(small.Pods))
	fmt.Fprintf(w, "The sizes run one after the other on a machine other work shares, so the load differs between them: a ratio below 1 means the smaller size met more contention, not that more pods are cheaper. Compare sizes only within a quiet run.\n\n")
	fmt.Fprintf(w, "| change | median latency | p99 latency | agent: observed → programmed (median) | agent: sync (median) |\n|---|---|---|---|---|\n")
	for _, kind := range kinds {
		row := func(s *sizeResult, get func(sample) (float64, bool)) summary {
			return summarize(collect(s.Kinds[kind], get))
		}
		lat := func(x sample) (float64, bool) { return x.LatencyMs, !x.TimedOut }
		prog := func(x sample) (float64, bool) { return deref(x.ProgrammingMs) }
		syncMs := func(x sample) (float64, bool) { return deref(x.SyncMs) }
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", kind,
			growth(row(small, lat).Median, row(large, lat).Median),
			growth(row(small, lat).P99, row(large, lat).P99),
			growth(row(small, prog).Median, row(large, prog).Median),
			growth(row(small, syncMs).Median, row(large, syncMs).Median))
	}
	fmt.Fprintf(w, "\n")
}

func growth(a, b float64) string {
	if a <= 0 {
		return fmt.Sprintf("%.1f → %.1f ms", a, b)
	}
	return fmt.Sprintf("%.1f → %.1f ms (%.2fx)", a, b, b/a)
}

func verdict(value float64, goal int, timeouts int) string {
	switch {
	case timeouts > 0:
		return fmt.Sprintf("**missed** (%d timeouts)", timeouts)
	case value <= float64(goal):
		return "met"
	}
	return fmt.Sprintf("**missed** by %.0f ms", value-float64(goal))
}

func collect(samples []sample, get func(sample) (float64, bool)) []float64 {
	var out []float64
	for _, s := range samples {
		if v, ok := get(s); ok {
			out = append(out, v)
		}
	}
	return out
}

func deref(p *float64) (float64, bool) {
	if p == nil {
		return 0, false
	}
	return *p, true
}

// renderFindings is the headline: the goals at the largest size, and what limits the latency, with
// the figures of this run.
func renderFindings(w io.Writer, r *run) {
	if len(r.Sizes) == 0 {
		return
	}
	large := r.Sizes[len(r.Sizes)-1]
	fmt.Fprintf(w, "## Headline: %d pods (%d with a network namespace)\n\n", large.Pods, large.RealPods)
	met := true
	for _, kind := range kinds {
		samples := large.Kinds[kind]
		lat := summarize(collect(samples, func(x sample) (float64, bool) { return x.LatencyMs, !x.TimedOut }))
		timeouts := len(samples) - lat.N
		ok := timeouts == 0 && lat.Median <= goalMedianMs && lat.P99 <= goalP99Ms
		met = met && ok
		word := "meets"
		if !ok {
			word = "**misses**"
		}
		fmt.Fprintf(w, "- %s: median %.1f ms, p99 %.1f ms over %d changes (%d timeouts): %s the goal.\n", kind, lat.Median, lat.P99, len(samples), timeouts, word)
	}
	if met {
		fmt.Fprintf(w, "\nEvery kind of change meets both goals at this size.\n\n")
	} else {
		fmt.Fprintf(w, "\nThe goal is missed where marked above.\n\n")
	}

	all := func(s *sizeResult, get func(sample) (float64, bool)) summary {
		var v []float64
		for _, kind := range kinds {
			v = append(v, collect(s.Kinds[kind], get)...)
		}
		return summarize(v)
	}
	syncOf := func(x sample) (float64, bool) { return deref(x.SyncMs) }
	watchOf := func(x sample) (float64, bool) { return deref(x.WatchMs) }
	callOf := func(x sample) (float64, bool) { return x.CallMs, true }
	after := func(x sample) (float64, bool) {
		p, ok := deref(x.ProgrammingMs)
		return p - x.LatencyMs, ok && !x.TimedOut && x.Programmed == 1
	}
	fmt.Fprintf(w, "What limits it, from this run's figures (all kinds together, %d pods):\n\n", large.Pods)
	syncLarge := all(large, syncOf)
	fmt.Fprintf(w, "1. **The agent's sync.** Each event makes both agents read only the changed objects from their caches and update the resolved model, the compiled ruleset and the table incrementally; the target agent's whole sync, including the status and the conntrack cleanup that follow the commit (item 2), took a median %.1f ms (p99 %.1f ms)", syncLarge.Median, syncLarge.P99)
	if small := r.Sizes[0]; small != large {
		syncSmall := all(small, syncOf)
		fmt.Fprintf(w, " against %.1f ms at %d pods (%.1fx for %.1fx the pods)", syncSmall.Median, small.Pods, syncLarge.Median/syncSmall.Median, float64(large.Pods)/float64(small.Pods))
	}
	fmt.Fprintf(w, ". A change that arrives while a sync runs waits for it, then for its own.\n")
	fmt.Fprintf(w, "2. **Work after the commit.** The sync ends with a conntrack cleanup that dumps the node's whole conntrack table (%d entries on the target node here, mostly the probes' own closed connections). Programming latency minus end-to-end latency puts the agent's work after the new verdict took effect at a median %.1f ms per change: it does not delay that change, but the agent is busy when the next one arrives, and the node's CPU is shared with everything else.\n",
		large.Floor.Allowed.TargetConntrack, all(large, after).Median)
	fmt.Fprintf(w, "3. **Not the API server's watch.** The benchmark's own watch, a client on the same loopback like the agents, received each change a median %.1f ms after the write call returned (the write call itself took a median %.1f ms, p99 %.1f ms).\n",
		all(large, watchOf).Median, all(large, callOf).Median, all(large, callOf).P99)
	fmt.Fprintf(w, "4. **A small shared machine.** %d CPUs run etcd, kube-apiserver, two agents and the probe loop (and other work: see the load average). With nothing changing, %d of %d allowed probes took longer than the %.0f ms timeout and the longest took %.0f ms: the tail of every figure here includes such stalls.\n\n",
		r.Machine.CPUs, large.Floor.Allowed.WrongVerdicts, large.Floor.Allowed.Probes, r.Config.ProbeTimeoutMs, large.Floor.Allowed.ProbeMs.Max)
}
