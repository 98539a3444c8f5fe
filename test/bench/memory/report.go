package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// report renders the run as bench/MEMORY.md.
func report(r *Run, source string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# Agent memory against a real API server (issue 5, measurement 4)")
	p("")
	p("Written by `hack/bench/memory.sh` from `%s` (run of %s UTC, %.0fs).", source, r.Started.Format("2006-01-02 15:04"), r.Seconds)
	m := r.Machine
	p("Machine: %d CPUs (%s), %d MiB, kernel %s, %s; load average at the start %s. etcd (%s), kube-apiserver (envtest, `%s`), the loader and the measured processes share the machine.",
		m.CPUs, m.Model, m.MemoryKiB/1024, m.Kernel, m.GoVersion, m.LoadAvg, r.Etcd, r.Assets)
	limit := r.Settings.MemoryLimit
	if limit == "" {
		limit = "none"
	}
	gogc := r.Settings.GOGC
	if gogc == "" {
		gogc = "Go's default (100)"
	}
	p("Agent `%s`; the agent and the baseline run with --memory-limit %s and GOGC %s.", r.Agent, limit, gogc)
	if r.Command != "" {
		p("Command: `%s`.", r.Command)
	}
	p("")
	p("Goals: RSS <= %d MiB after sync at P=%d pods and N=%d policies; flat over a 30-minute churn run. The allocations and the CPU time per event are figures, with no goal.",
		goalRSSMiB, goalPods, goalPolicies)
	p("")
	p("## Against the goals")
	p("")
	b.WriteString(verdicts(r))
	for _, n := range r.Notes {
		p("")
		p("%s", n)
	}
	p("")
	p("## After the first sync")
	p("")
	p("Baseline: a bare controller-runtime manager with the agent's scheme and `controllers.CacheOptions` (same transforms), informing pods, namespaces, NetworkPolicies and the node's NodeEnforcement, with no reconciler: what the cache costs by itself. Sampled %.0fs after /readyz passed (agent: first sync committed; baseline: caches synced); *CPU s* and *GCs* are the process's CPU time and garbage collections up to the sample. *Live heap* is the heap still allocated after a collection forced right after the sample; *pods* says whether the process streamed its initial list of pods or got it in one LIST.", r.Settings.SettleSeconds)
	p("")
	p("| pods P | policies N | process | pods | ready s | CPU s | GCs | RSS MiB | peak RSS MiB | heap alloc MiB | heap in use MiB | live heap MiB | runtime sys MiB | RSS goal |")
	p("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
	for _, sc := range r.Scales {
		for _, pf := range []struct {
			name string
			f    *ProcessFigures
		}{{"baseline", sc.Baseline}, {"agent", sc.Agent}} {
			if pf.f == nil {
				continue
			}
			a := pf.f.AfterSync
			verdict := "-"
			if pf.name == "agent" {
				verdict = meets(kib(a.RSSKiB) <= goalRSSMiB)
			}
			p("| %d | %d | %s | %s | %.1f | %.1f | %.0f | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s |", sc.Params.Pods, sc.Params.Policies,
				pf.name, pf.f.InitialList, pf.f.ReadySeconds, a.CPUSeconds, a.GCCycles, kib(a.RSSKiB), kib(a.PeakKiB), mib(a.HeapAlloc), mib(a.HeapInuse), mib(a.LiveHeap), mib(a.Sys), verdict)
		}
	}
	p("")
	p("Late samples, at the end of each scale (minutes later: the baseline idle all along, the agent after its events and churn):")
	p("")
	p("| pods P | process | RSS MiB | peak RSS MiB | heap alloc MiB | heap in use MiB | live heap MiB |")
	p("|---:|---|---:|---:|---:|---:|---:|")
	for _, sc := range r.Scales {
		for _, pf := range []struct {
			name string
			f    *ProcessFigures
		}{{"baseline", sc.Baseline}, {"agent", sc.Agent}} {
			if pf.f != nil && pf.f.Late != nil {
				l := pf.f.Late
				p("| %d | %s | %.1f | %.1f | %.1f | %.1f | %.1f |", sc.Params.Pods, pf.name, kib(l.RSSKiB), kib(l.PeakKiB), mib(l.HeapAlloc), mib(l.HeapInuse), mib(l.LiveHeap))
			}
		}
	}
	p("")
	p("| pods P | agent / baseline RSS | agent / baseline peak RSS | agent / baseline live heap | agent minus baseline RSS MiB |")
	p("|---:|---:|---:|---:|---:|")
	for _, sc := range r.Scales {
		if sc.Agent == nil || sc.Baseline == nil {
			continue
		}
		a, bl := sc.Agent.AfterSync, sc.Baseline.AfterSync
		p("| %d | %.2f | %.2f | %s | %.1f |", sc.Params.Pods, float64(a.RSSKiB)/float64(bl.RSSKiB), float64(a.PeakKiB)/float64(bl.PeakKiB), ratio(a.LiveHeap, bl.LiveHeap), kib(a.RSSKiB-bl.RSSKiB))
	}
	variants(&b, r)
	events(&b, r)
	breakdown(&b, r)
	churn(&b, r)
	loading(&b, r)
	for _, sc := range r.Scales {
		if sc.Error != "" {
			p("")
			p("**P=%d N=%d failed:** %s", sc.Params.Pods, sc.Params.Policies, sc.Error)
		}
	}
	return b.String()
}

// variants renders the extra processes, each against the process of its kind in the same scale.
func variants(b *strings.Builder, r *Run) {
	present := false
	for _, sc := range r.Scales {
		present = present || len(sc.Variants) > 0
	}
	if !present {
		return
	}
	p := section(b, "Variants", "Each variant is one more process measured like the baseline (ready, settled, sampled, live heap) against the same loaded API server, after the agent and the baseline stopped; an agent variant programs a network namespace of its own with the same pod interfaces, and one with a binary is another build of the agent. The differences (RSS, live heap, CPU s up to the sample) are against the process of its kind in the table above, so each tells what one setting or build is worth.")
	p("| pods P | variant | kind | differs by | pods | ready s | CPU s | GCs | RSS MiB | peak RSS MiB | heap in use MiB | live heap MiB | RSS vs main | live heap vs main | CPU s vs main |")
	p("|---:|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
	for _, sc := range r.Scales {
		for _, v := range sc.Variants {
			main := sc.Baseline
			if v.Kind == "agent" {
				main = sc.Agent
			}
			f := v.Figures.AfterSync
			dRSS, dLive, dCPU := "-", "-", "-"
			if main != nil {
				dRSS = fmt.Sprintf("%+.1f MiB", kib(f.RSSKiB-main.AfterSync.RSSKiB))
				dCPU = fmt.Sprintf("%+.1f", f.CPUSeconds-main.AfterSync.CPUSeconds)
				if f.LiveHeap > 0 && main.AfterSync.LiveHeap > 0 {
					dLive = fmt.Sprintf("%+.1f MiB", mib(f.LiveHeap-main.AfterSync.LiveHeap))
				}
			}
			p("| %d | %s | %s | %s | %s | %.1f | %.1f | %.0f | %.1f | %.1f | %.1f | %.1f | %s | %s | %s |", sc.Params.Pods, v.Name, v.Kind, variantText(v.Variant), v.Figures.InitialList,
				v.Figures.ReadySeconds, f.CPUSeconds, f.GCCycles, kib(f.RSSKiB), kib(f.PeakKiB), mib(f.HeapInuse), mib(f.LiveHeap), dRSS, dLive, dCPU)
		}
	}
}

// idleCPUText is the idle CPU rate of idle for a sentence, "" when not measured.
func idleCPUText(idle *IdleFigures) string {
	if idle.CPUPerSecond == nil {
		return ""
	}
	c := *idle.CPUPerSecond
	return fmt.Sprintf(", %.2f ms/s of CPU (user %.2f, system %.2f)", 1000*c.Total(), 1000*c.User, 1000*c.System)
}

// scrapeCPUText is the CPU cost of one scrape of idle for a sentence, "" when not measured.
func scrapeCPUText(idle *IdleFigures) string {
	if idle.ScrapeCPU == nil {
		return ""
	}
	return fmt.Sprintf(" and costs %.2f ms of CPU", 1000*idle.ScrapeCPU.Total())
}

func variantText(v Variant) string {
	var parts []string
	if v.Bin != "" {
		parts = append(parts, "binary `"+v.Bin+"`")
	}
	for _, e := range v.Env {
		parts = append(parts, "`"+e+"`")
	}
	for _, a := range v.Args {
		parts = append(parts, "`"+a+"`")
	}
	return strings.Join(parts, ", ")
}

func events(b *strings.Builder, r *Run) {
	p := section(b, "Allocations and CPU time per incremental event", "Each event is written to the API server and followed by a pause (at least 1 s, three times the mean sync) so that it gets a sync of its own; allocations are the growth of `go_gc_heap_allocs_bytes_total` over the window, minus what serving the one metrics scrape in the window allocates (measured at idle, back-to-back scrapes) and the agent's idle allocation rate over the same time (an idle window of %.0fs: timers, informer bookkeeping), divided by the number of events. Events are the generator's, aimed at pods that are peers of the node's table. The agent's network namespace gives every local pod address a host interface (a veth with a host route), as a CNI plugin's veth would, so the agent finds them once. Allocation profiles of each window are kept in the run's log directory (`<kind>-round<n>-before/after-*.heap.pb.gz`). Round 1 is the first events after the first sync; round 2 the same number of each kind again, sent right after round 1: two samples of the same events, one after the other. The churn's second half, hundreds of events, gives the agent's steady state.", r.Settings.IdleSeconds)
	p("*CPU ms per event* is the agent's CPU time (user + system, from `/proc/PID/stat`, read with each sample) over the same window, less what serving the window's one scrape costs (the mean of %d back-to-back samples at idle) and the agent's idle CPU rate over the same time (the idle window's CPU time less its one scrape), divided by the number of events; *user/system* split that figure; *raw* divides the growth alone. The kernel counts CPU time in 10 ms ticks: over %d events, %.1f ms per event.", backToBackScrapes, r.Settings.EventsPerKind, 10/float64(max(r.Settings.EventsPerKind, 1)))
	p("")
	p("*Baseline KiB per event* and *baseline CPU ms per event* are what the baseline process (the bare manager above, running all along) allocated and spent over the same window, measured the same way (its own scrape and idle rates): receiving, decoding and caching the event, which the agent pays too. Over 20 paced events it is small against the baseline's own background and noisy (it can come out negative); the churn's second half, hundreds of events, gives the figure to compare with (see the summary above).")
	p("")
	p("| pods P | policies N | round | event | events | syncs | KiB per event | raw KiB per event | baseline KiB per event | CPU ms per event | user/system ms | raw CPU ms | baseline CPU ms per event | objects per event | sync ms | example |")
	p("|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|")
	for _, sc := range r.Scales {
		for _, e := range sc.Events {
			split := "-"
			if e.CPU != nil {
				split = fmt.Sprintf("%.2f / %.2f", 1000*e.CPU.Net.User, 1000*e.CPU.Net.System)
			}
			p("| %d | %d | %d | %s | %d | %.0f | %.1f | %.1f | %.1f | %s | %s | %s | %s | %.0f | %.0f | %s |", sc.Params.Pods, sc.Params.Policies, max(e.Round, 1), e.Kind, e.Events, e.Syncs,
				e.BytesPerEvent/1024, e.RawBytesPerEvent/1024, e.BaselineBytesPerEvent/1024, cpuCell(e.CPU, true), split, cpuCell(e.CPU, false), cpuCell(e.BaselineCPU, true),
				e.ObjectsPerEvent, 1000*e.SyncSecondsPerSync, e.Example)
		}
	}
	p("")
	p("Idle background:")
	for _, sc := range r.Scales {
		if sc.Idle != nil {
			p("- P=%d: %.1f KiB/s over %.0fs (%.0f syncs)%s; one metrics scrape allocates %.1f KiB%s", sc.Params.Pods, sc.Idle.BytesPerSecond/1024, sc.Idle.Seconds, sc.Idle.Syncs,
				idleCPUText(sc.Idle), sc.Idle.ScrapeBytes/1024, scrapeCPUText(sc.Idle))
		}
		if bi := sc.BaselineIdle; bi != nil {
			p("- P=%d, baseline: %.1f KiB/s over the same window%s; one metrics scrape allocates %.1f KiB%s", sc.Params.Pods, bi.BytesPerSecond/1024, idleCPUText(bi), bi.ScrapeBytes/1024, scrapeCPUText(bi))
		}
	}
	p("")
	p("In-process complement (not the agent: `selectors.Resolve` + `nft.Compile` of the whole generated snapshot in the benchmark process, mean of a few calls): what one whole-cluster resolve and compile allocates at each scale.")
	p("")
	p("| pods P | policies N | MiB per call | objects per call | ms per call | snapshot heap MiB |")
	p("|---:|---:|---:|---:|---:|---:|")
	for _, sc := range r.Scales {
		if ip := sc.InProcess; ip != nil {
			p("| %d | %d | %.1f | %.0f | %.0f | %.1f |", sc.Params.Pods, sc.Params.Policies, mib(ip.BytesPerCall), ip.ObjectsPerCall, ip.MillisPerCall, mib(ip.SnapshotBytes))
		}
	}
}

// breakdown shows where the agent's allocations went over every event of each scale.
func breakdown(b *strings.Builder, r *Run) {
	p := section(b, "Where the allocations per event go", "From the agent's heap profile after its first sync to its profile at the end of the scale (every paced event and the whole churn), each allocation attributed to the first of these parts on its stack. Heap profiles sample allocations (one record per so many bytes allocated, on average), so small parts are rough; the measurement's own profiles and scrapes are shown apart and not counted.")
	shown := false
	for _, sc := range r.Scales {
		bd := sc.AllocBreakdown
		if bd == nil {
			continue
		}
		shown = true
		var total float64
		for _, part := range bd.Parts {
			if !part.Excluded {
				total += part.BytesPerEvent
			}
		}
		p("P=%d, N=%d: %d events, %.1f KiB per event in all (one sample per %.0f KiB allocated).", sc.Params.Pods, sc.Params.Policies, bd.Events, total/1024, float64(bd.SampleBytes)/1024)
		p("")
		p("| part | KiB per event | share |")
		p("|---|---:|---:|")
		counted := slices.DeleteFunc(slices.Clone(bd.Parts), func(part AllocPart) bool { return part.Excluded })
		slices.SortStableFunc(counted, func(x, y AllocPart) int { // largest first, "other" last
			return cmp.Or(cmp.Compare(boolInt(x.Part == otherPart), boolInt(y.Part == otherPart)), cmp.Compare(y.BytesPerEvent, x.BytesPerEvent))
		})
		for _, part := range counted {
			p("| %s | %.2f | %.0f%% |", part.Part, part.BytesPerEvent/1024, 100*part.BytesPerEvent/total)
		}
		for _, part := range bd.Parts {
			if part.Excluded {
				p("| (not counted) %s | %.2f | |", part.Part, part.BytesPerEvent/1024)
			}
		}
		p("")
	}
	if !shown {
		p("Not measured (no profiles).")
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// maxChurnRows bounds the churn table: a 30-minute run has 180 samples.
const maxChurnRows = 31

func churn(b *strings.Builder, r *Run) {
	p := section(b, "Churn", "The agent's memory while the measured events arrive at a steady rate, sampled every %.0fs (at most %d rows shown); *allocated MiB* and *CPU s* (user + system) are counted from the first sample.", r.Settings.SampleSeconds, maxChurnRows)
	ran := false
	for _, sc := range r.Scales {
		ch := sc.Churn
		if ch == nil {
			continue
		}
		ran = true
		p("P=%d, N=%d: %.0fs at %.1f events/s (%d events: relabel, address change, policy edit in turn; %.0f syncs). RSS %.1f -> %.1f MiB (max %.1f); least-squares slope: RSS %.2f MiB/min, heap in use %.2f MiB/min.",
			sc.Params.Pods, sc.Params.Policies, ch.Seconds, ch.EventsPerSecond, ch.Events, ch.Syncs, kib(ch.RSSFirstKiB), kib(ch.RSSLastKiB), kib(ch.RSSMaxKiB), ch.RSSSlopeMiBPerMin, ch.HeapSlopeMiBPerMin)
		if ch.SteadyEvents > 0 {
			p("Allocations over the second half (%d events), less the samples' scrapes (not the idle rate, which one window measures and a one-off inflates): %.1f KiB per event; the baseline over the same events, the same way: %.1f KiB per event.", ch.SteadyEvents, ch.SteadyBytesPerEvent/1024, ch.SteadyBaselineBytesPerEvent/1024)
			if c := ch.SteadyCPU; c != nil {
				p("CPU time over the same half, less the samples' scrapes and the idle CPU rate over the same time: %s per event (raw, nothing subtracted: %.2f ms).", cpuText(c.Net), 1000*c.Raw.Total())
				if bc := ch.SteadyBaselineCPU; bc != nil {
					p("The baseline over the same events, the same way: %s per event (raw %.2f ms).", cpuText(bc.Net), 1000*bc.Raw.Total())
				}
			}
		}
		p("")
		p("| s | RSS MiB | heap in use MiB | heap alloc MiB | syncs | allocated MiB | CPU s |")
		p("|---:|---:|---:|---:|---:|---:|---:|")
		step := max(1, (len(ch.Samples)+maxChurnRows-2)/(maxChurnRows-1))
		for i, s := range ch.Samples {
			if i%step == 0 || i == len(ch.Samples)-1 {
				p("| %.0f | %.1f | %.1f | %.1f | %.0f | %.1f | %.2f |", s.AtSeconds, kib(s.RSSKiB), mib(s.HeapInuse), mib(s.HeapAlloc), s.Syncs,
					mib(s.AllocsBytes-ch.Samples[0].AllocsBytes), s.cpuSeconds()-ch.Samples[0].cpuSeconds())
			}
		}
		p("")
	}
	if !ran {
		p("Not run.")
	}
}

func loading(b *strings.Builder, r *Run) {
	p := section(b, "Loading", "The loader writes with %d workers over protobuf, unthrottled; a pod is two writes (create, then its status with the addresses: the API server ignores the status of a pod it creates). Writes that fail transiently (timeouts, throttling, dropped connections) are repeated with backoff for up to about a minute. kube-apiserver runs without priority and fairness and without the admission plugins that only check configuration this cluster never has; etcd keeps its data on tmpfs.", r.Settings.Workers)
	p("| pods P | policies N | namespaces | pods s | pods/s | total s | writes repeated |")
	p("|---:|---:|---:|---:|---:|---:|---:|")
	for _, sc := range r.Scales {
		l := sc.Load
		p("| %d | %d | %d | %.0f | %.0f | %.0f | %d |", sc.Params.Pods, sc.Params.Policies, l.Namespaces, l.PodSeconds, l.PodsPerSecond, l.Seconds, l.Retries)
	}
}

// section starts a section of the report, its heading and the paragraph that says how to read it, and
// returns the printer of its lines.
func section(b *strings.Builder, title, intro string, args ...any) func(string, ...any) {
	p := func(format string, args ...any) { fmt.Fprintf(b, format+"\n", args...) }
	p("")
	p("## %s", title)
	p("")
	p(intro, args...)
	p("")
	return p
}

func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func meets(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}
