package main

import (
	"fmt"
	"strings"
)

// verdicts states, from the figures, where each goal is met or missed and what limits it.
func verdicts(r *Run) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	var measured []Scale
	for _, sc := range r.Scales {
		if sc.Agent != nil && sc.Baseline != nil {
			measured = append(measured, sc)
		}
	}
	if len(measured) == 0 {
		p("No scale was measured to the end.")
		return b.String()
	}
	small, large := measured[0], measured[len(measured)-1]
	if large.Params.Pods < 50000 {
		p("- **Scale:** the goal's scale (P=50000, N=10000) was not reached; the largest measured is P=%d, N=%d.", large.Params.Pods, large.Params.Policies)
	}
	a, bl := large.Agent.AfterSync, large.Baseline.AfterSync
	p("- **RSS after sync, P=%d:** agent %.0f MiB (peak %.0f) against the goal of %d MiB: %s. The bare manager caching the same objects with the same transforms holds %.0f MiB (peak %.0f), so the cache accounts for %.0f%% of the agent's RSS and the agent's own work (snapshot, model, ruleset, applier state, GC headroom for the per-sync garbage) for %.0f MiB.",
		large.Params.Pods, kib(a.RSSKiB), kib(a.PeakKiB), goalRSSMiB, meets(kib(a.RSSKiB) <= goalRSSMiB),
		kib(bl.RSSKiB), kib(bl.PeakKiB), 100*float64(bl.RSSKiB)/float64(a.RSSKiB), kib(a.RSSKiB-bl.RSSKiB))
	if la, lb := large.Agent.Late, large.Baseline.Late; la != nil && lb != nil {
		p("  Late in the run (after the periodic GC, the agent after its events and churn): agent %.0f MiB RSS (%.0f MiB heap in use), baseline %.0f MiB (%.0f MiB): %s.",
			kib(la.RSSKiB), mib(la.HeapInuse), kib(lb.RSSKiB), mib(lb.HeapInuse), meets(kib(la.RSSKiB) <= goalRSSMiB))
	}
	if len(measured) > 1 {
		sa, sb := small.Agent.AfterSync, small.Baseline.AfterSync
		p("  Growth from P=%d to P=%d (%.1fx pods): agent RSS %.2fx, baseline RSS %.2fx; agent %.1f KiB and baseline %.1f KiB of RSS per added pod.",
			small.Params.Pods, large.Params.Pods, float64(large.Params.Pods)/float64(small.Params.Pods),
			float64(a.RSSKiB)/float64(sa.RSSKiB), float64(bl.RSSKiB)/float64(sb.RSSKiB),
			float64(a.RSSKiB-sa.RSSKiB)/float64(large.Params.Pods-small.Params.Pods),
			float64(bl.RSSKiB-sb.RSSKiB)/float64(large.Params.Pods-small.Params.Pods))
	}
	var worst EventFigures
	for _, e := range large.Events {
		if e.BytesPerEvent > worst.BytesPerEvent {
			worst = e
		}
	}
	p("- **Allocations per event, P=%d:** up to %.1f MiB (%s) against %d KiB: **missed** by a factor of about %.0f. Every event, whatever it changes, costs a whole sync: the reconciler lists every pod, namespace and policy from the cache (controller-runtime deep-copies each object on List unless `UnsafeDisableDeepCopy` is set), converts them to a `selectors.Snapshot`, resolves and compiles the whole world and diffs the whole ruleset. Allocations per event therefore grow with the cluster, not with the change.",
		large.Params.Pods, mib(worst.BytesPerEvent), worst.Kind, goalBytesPerEvent/1024, worst.BytesPerEvent/goalBytesPerEvent)
	if len(measured) > 1 && len(small.Events) > 0 && len(large.Events) > 0 {
		p("  Growth from P=%d to P=%d: %.2fx per relabel for %.1fx pods.", small.Params.Pods, large.Params.Pods,
			large.Events[0].BytesPerEvent/small.Events[0].BytesPerEvent, float64(large.Params.Pods)/float64(small.Params.Pods))
	}
	if ip := large.InProcess; ip != nil && worst.BytesPerEvent > 0 {
		p("  The pure core (`selectors.Resolve` + `nft.Compile`, in-process) allocates %.1f MiB per call at this scale, %.0f%% of the agent's per-event figure: the rest is the cache list and its deep copies, the conversion to the snapshot, the diff, the watch event's decoding and the status write. Meeting %d KiB needs incremental work per event (an index from labels to pods and peer sets, updating only the sets an object is in), not a cheaper whole-world sync.",
			mib(ip.BytesPerCall), 100*ip.BytesPerCall/worst.BytesPerEvent, goalBytesPerEvent/1024)
	}
	for _, sc := range r.Scales {
		if ch := sc.Churn; ch != nil {
			p("- **Flat under churn, P=%d:** RSS slope %.2f MiB/min over %.0fs (RSS %.0f -> %.0f MiB, max %.0f), heap in use %.2f MiB/min. Too short to call flat or growing for 30 minutes; the 30-minute run was not done.",
				sc.Params.Pods, ch.RSSSlopeMiBPerMin, ch.Seconds, kib(ch.RSSFirstKiB), kib(ch.RSSLastKiB), kib(ch.RSSMaxKiB), ch.HeapSlopeMiBPerMin)
		}
	}
	return b.String()
}
