package main

import (
	"fmt"
	"strings"
)

// Goals of measurement 4 (issue 5).
const (
	goalRSSMiB        = 150
	goalBytesPerEvent = 10 * 1024
)

// report renders the run as bench/MEMORY.md.
func report(r *Run, source string) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("# Agent memory against a real API server (issue 5, measurement 4)")
	p("")
	p("Written by `hack/bench/memory.sh` from `%s` (run of %s UTC, %.0fs).", source, r.Started.Format("2006-01-02 15:04"), r.Seconds)
	m := r.Machine
	p("Machine: %d CPUs (%s), %d MiB, kernel %s, %s; load average at the start %s. etcd, kube-apiserver (envtest, `%s`), the loader and the measured process share the machine.",
		m.CPUs, m.Model, m.MemoryKiB/1024, m.Kernel, m.GoVersion, m.LoadAvg, r.Assets)
	p("")
	p("Goals: RSS <= %d MiB after sync; <= %d KiB allocated per incremental event; flat over a 30-minute churn run.", goalRSSMiB, goalBytesPerEvent/1024)
	p("")
	p("## Against the goals")
	p("")
	b.WriteString(verdicts(r))
	p("")
	p("## After the first sync")
	p("")
	p("Baseline: a bare controller-runtime manager with the agent's scheme and `controllers.CacheOptions` (same transforms), informing pods, namespaces, NetworkPolicies and the node's NodeEnforcement, with no reconciler: what the cache costs by itself. Sampled %.0fs after /readyz passed (agent: first sync committed; baseline: caches synced).", r.Settings.SettleSeconds)
	p("")
	p("| pods P | policies N | load s (pods/s) | process | ready s | RSS MiB | peak RSS MiB | heap alloc MiB | heap in use MiB | runtime sys MiB | RSS goal |")
	p("|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---|")
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
			p("| %d | %d | %.0f (%.0f) | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f | %s |", sc.Params.Pods, sc.Params.Policies, sc.Load.Seconds, sc.Load.PodsPerSecond,
				pf.name, pf.f.ReadySeconds, kib(a.RSSKiB), kib(a.PeakKiB), mib(a.HeapAlloc), mib(a.HeapInuse), mib(a.Sys), verdict)
		}
	}
	p("")
	p("Late samples, at the end of each scale (minutes later, after the runtime's periodic GC; the baseline idle all along, the agent after its events and churn):")
	p("")
	p("| pods P | process | RSS MiB | peak RSS MiB | heap alloc MiB | heap in use MiB |")
	p("|---:|---|---:|---:|---:|---:|")
	for _, sc := range r.Scales {
		for _, pf := range []struct {
			name string
			f    *ProcessFigures
		}{{"baseline", sc.Baseline}, {"agent", sc.Agent}} {
			if pf.f != nil && pf.f.Late != nil {
				l := pf.f.Late
				p("| %d | %s | %.1f | %.1f | %.1f | %.1f |", sc.Params.Pods, pf.name, kib(l.RSSKiB), kib(l.PeakKiB), mib(l.HeapAlloc), mib(l.HeapInuse))
			}
		}
	}
	p("")
	p("| pods P | agent / baseline RSS | agent / baseline peak RSS | agent / baseline heap in use | agent minus baseline RSS MiB |")
	p("|---:|---:|---:|---:|---:|")
	for _, sc := range r.Scales {
		if sc.Agent == nil || sc.Baseline == nil {
			continue
		}
		a, bl := sc.Agent.AfterSync, sc.Baseline.AfterSync
		p("| %d | %.2f | %.2f | %.2f | %.1f |", sc.Params.Pods, float64(a.RSSKiB)/float64(bl.RSSKiB), float64(a.PeakKiB)/float64(bl.PeakKiB), a.HeapInuse/bl.HeapInuse, kib(a.RSSKiB-bl.RSSKiB))
	}
	p("")
	p("## Allocations per incremental event")
	p("")
	p("Each event is written to the API server and followed by a pause (at least 1 s, three times the mean sync) so that it gets a sync of its own; allocations are the growth of `go_gc_heap_allocs_bytes_total` over the window, minus the agent's idle allocation rate over the same time (an idle window of %.0fs: metrics scrapes, timers), divided by the number of events. Events are the generator's, aimed at pods that are peers of the node's table.", r.Settings.IdleSeconds)
	p("")
	p("| pods P | policies N | event | events | syncs | MiB per event | raw MiB per event | objects per event | sync ms | per-event goal | example |")
	p("|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|")
	for _, sc := range r.Scales {
		for _, e := range sc.Events {
			p("| %d | %d | %s | %d | %.0f | %.2f | %.2f | %.0f | %.0f | %s (%.0fx) | %s |", sc.Params.Pods, sc.Params.Policies, e.Kind, e.Events, e.Syncs,
				mib(e.BytesPerEvent), mib(e.RawBytesPerEvent), e.ObjectsPerEvent, 1000*e.SyncSecondsPerSync,
				meets(e.BytesPerEvent <= goalBytesPerEvent), e.BytesPerEvent/goalBytesPerEvent, e.Example)
		}
	}
	p("")
	p("Idle background: ")
	for _, sc := range r.Scales {
		if sc.Idle != nil {
			p("- P=%d: %.1f KiB/s over %.0fs (%.0f syncs)", sc.Params.Pods, sc.Idle.BytesPerSecond/1024, sc.Idle.Seconds, sc.Idle.Syncs)
		}
	}
	p("")
	p("In-process complement (not the agent: `selectors.Resolve` + `nft.Compile` of the generated snapshot in the benchmark process, %s), the pure core of one sync without the cache list, the object conversions and the applier's diff:", "mean of a few calls")
	p("")
	p("| pods P | policies N | MiB per call | objects per call | ms per call | snapshot heap MiB |")
	p("|---:|---:|---:|---:|---:|---:|")
	for _, sc := range r.Scales {
		if ip := sc.InProcess; ip != nil {
			p("| %d | %d | %.1f | %.0f | %.0f | %.1f |", sc.Params.Pods, sc.Params.Policies, mib(ip.BytesPerCall), ip.ObjectsPerCall, ip.MillisPerCall, mib(ip.SnapshotBytes))
		}
	}
	p("")
	p("## Churn")
	p("")
	for _, sc := range r.Scales {
		ch := sc.Churn
		if ch == nil {
			continue
		}
		p("P=%d, N=%d: %.0fs at %.1f events/s (%d events: relabel, address change, policy edit in turn; %.0f syncs). RSS %.1f -> %.1f MiB (max %.1f); least-squares slope: RSS %.2f MiB/min, heap in use %.2f MiB/min.",
			sc.Params.Pods, sc.Params.Policies, ch.Seconds, ch.EventsPerSecond, ch.Events, ch.Syncs, kib(ch.RSSFirstKiB), kib(ch.RSSLastKiB), kib(ch.RSSMaxKiB), ch.RSSSlopeMiBPerMin, ch.HeapSlopeMiBPerMin)
		p("")
		p("| s | RSS MiB | heap in use MiB | heap alloc MiB | syncs |")
		p("|---:|---:|---:|---:|---:|")
		for _, s := range ch.Samples {
			p("| %.0f | %.1f | %.1f | %.1f | %.0f |", s.AtSeconds, kib(s.RSSKiB), mib(s.HeapInuse), mib(s.HeapAlloc), s.Syncs)
		}
		p("")
	}
	p("The 30-minute churn run of the goal was not done: this run churns for %.0fs.", r.Settings.ChurnSeconds)
	for _, sc := range r.Scales {
		if sc.Error != "" {
			p("")
			p("**P=%d N=%d failed:** %s", sc.Params.Pods, sc.Params.Policies, sc.Error)
		}
	}
	for _, n := range r.Notes {
		p("")
		p("%s", n)
	}
	return b.String()
}

func meets(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}
