package main

import (
	"fmt"
	"strings"
)

// Goals of measurement 4 (issue 5). Allocations and CPU time per event are reported as figures, with
// no goal: the allocations were dominated by the libraries (issue 13 retired their goal).
const (
	goalRSSMiB   = 150
	goalPods     = 50000
	goalPolicies = 10000
	// goalChurnSeconds is the length of the churn run the flat-memory goal asks for.
	goalChurnSeconds = 30 * 60
	// flatFraction is how much RSS may grow over a churn run, as a share of where it started, and
	// still be called flat: the least-squares slope times the run's length.
	flatFraction = 0.05
)

// verdicts states, from the figures, where each goal is met or missed and what limits it, and the
// figures per event beside them.
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
	if large.Params.Pods < goalPods || large.Params.Policies < goalPolicies {
		p("- **Scale:** the goal's scale (P=%d, N=%d) was not reached; the largest measured is P=%d, N=%d: **missed**.", goalPods, goalPolicies, large.Params.Pods, large.Params.Policies)
	} else {
		p("- **Scale:** P=%d, N=%d loaded in %.0fs (%.0f pods/s, %d writes repeated after transient errors) and measured: met.",
			large.Params.Pods, large.Params.Policies, large.Load.Seconds, large.Load.PodsPerSecond, large.Load.Retries)
	}
	a, bl := large.Agent.AfterSync, large.Baseline.AfterSync
	p("- **RSS after sync, P=%d:** agent %.0f MiB (peak %.0f) against the goal of %d MiB: %s. The bare manager caching the same objects with the same transforms holds %.0f MiB (peak %.0f).",
		large.Params.Pods, kib(a.RSSKiB), kib(a.PeakKiB), goalRSSMiB, meets(kib(a.RSSKiB) <= goalRSSMiB), kib(bl.RSSKiB), kib(bl.PeakKiB))
	if a.LiveHeap > 0 && bl.LiveHeap > 0 {
		p("  Live heap after a forced collection: agent %.0f MiB, baseline %.0f MiB (the cache itself); the agent's own state (indexes, model, committed ruleset) is the difference, %.0f MiB. The rest of the agent's RSS, %.0f MiB, is %sheap not collected or not returned to the OS yet, fragmentation, runtime metadata and stacks.",
			mib(a.LiveHeap), mib(bl.LiveHeap), mib(a.LiveHeap-bl.LiveHeap), kib(a.RSSKiB)-mib(a.LiveHeap), fileText(a))
	}
	if r.Settings.MemoryLimit != "" && a.GoMemLimit > 0 && a.GoMemLimit < 1<<62 {
		p("  The agent ran with --memory-limit=%s (the DaemonSet's limit unless the run said otherwise): Go soft memory limit %.0f MiB.", r.Settings.MemoryLimit, mib(a.GoMemLimit))
	}
	if la, lb := large.Agent.Late, large.Baseline.Late; la != nil && lb != nil {
		p("  Late in the run (the agent after its events and churn): agent %.0f MiB RSS (%.0f MiB live), baseline %.0f MiB (%.0f MiB live): %s.",
			kib(la.RSSKiB), mib(la.LiveHeap), kib(lb.RSSKiB), mib(lb.LiveHeap), meets(kib(la.RSSKiB) <= goalRSSMiB))
	}
	if len(measured) > 1 {
		sa, sb := small.Agent.AfterSync, small.Baseline.AfterSync
		dp := float64(large.Params.Pods - small.Params.Pods)
		p("  Growth from P=%d to P=%d: agent RSS %.2fx, baseline RSS %.2fx; per added pod, agent %.2f KiB of RSS (%.2f KiB live), baseline %.2f KiB (%.2f KiB live).",
			small.Params.Pods, large.Params.Pods, float64(a.RSSKiB)/float64(sa.RSSKiB), float64(bl.RSSKiB)/float64(sb.RSSKiB),
			float64(a.RSSKiB-sa.RSSKiB)/dp, (a.LiveHeap-sa.LiveHeap)/1024/dp, float64(bl.RSSKiB-sb.RSSKiB)/dp, (bl.LiveHeap-sb.LiveHeap)/1024/dp)
	}
	perEventFigures(p, measured)
	churned := false
	for _, sc := range r.Scales {
		ch := sc.Churn
		if ch == nil || len(ch.Samples) < 2 {
			continue
		}
		churned = true
		growth := ch.RSSSlopeMiBPerMin * ch.Seconds / 60
		first := kib(ch.RSSFirstKiB)
		if ch.Seconds < goalChurnSeconds-60 {
			p("- **Flat under churn, P=%d:** RSS slope %.2f MiB/min over %.0fs (RSS %.0f -> %.0f MiB, max %.0f), heap in use %.2f MiB/min: too short to judge the goal's 30 minutes (run with --churn 30m).",
				sc.Params.Pods, ch.RSSSlopeMiBPerMin, ch.Seconds, first, kib(ch.RSSLastKiB), kib(ch.RSSMaxKiB), ch.HeapSlopeMiBPerMin)
			continue
		}
		p("- **Flat under churn, P=%d:** over %.0f minutes (%d events) RSS went %.0f -> %.0f MiB (max %.0f); the least-squares slope, %.2f MiB/min, adds up to %.1f MiB (%.1f%% of the start) against at most %.0f%%: %s. Heap in use: %.2f MiB/min.",
			sc.Params.Pods, ch.Seconds/60, ch.Events, first, kib(ch.RSSLastKiB), kib(ch.RSSMaxKiB), ch.RSSSlopeMiBPerMin, growth, 100*growth/first,
			100*flatFraction, meets(growth <= flatFraction*first), ch.HeapSlopeMiBPerMin)
	}
	if !churned {
		p("- **Flat under churn:** not run (--churn 0).")
	}
	return b.String()
}

// fileText names the file-backed part of a sample's RSS, when the sample has it.
func fileText(m Memory) string {
	if m.FileKiB == 0 {
		return ""
	}
	return fmt.Sprintf("the binary's file-backed pages (%.0f MiB), ", kib(m.FileKiB))
}

func growsOrNot(ratio float64) string {
	switch {
	case ratio > 1.5:
		return "grows"
	case ratio < 1/1.5:
		return "shrinks"
	default:
		return "does not grow"
	}
}

func bytesText(v float64) string {
	if v >= 1<<20 {
		return fmt.Sprintf("%.2f MiB", mib(v))
	}
	return fmt.Sprintf("%.1f KiB", v/1024)
}

// lastRound is the highest round of events (0 for runs before rounds).
func lastRound(events []EventFigures) int {
	last := 0
	for _, e := range events {
		last = max(last, e.Round)
	}
	return last
}

// worstEvent is the event kind of round that allocated most per event.
func worstEvent(events []EventFigures, round int) EventFigures {
	var worst EventFigures
	for _, e := range events {
		if (e.Round == round || round == 0) && e.BytesPerEvent > worst.BytesPerEvent {
			worst = e
		}
	}
	return worst
}

// cpuClause is " and C of CPU" for the net CPU time per event of e, "" when not measured.
func cpuClause(e *EventCPU) string {
	if e == nil {
		return ""
	}
	return " and " + cpuText(e.Net) + " of CPU"
}

// cpuDifferenceClause is " and C of CPU" for the agent's net CPU time per event beyond the baseline's.
func cpuDifferenceClause(agent, baseline *EventCPU) string {
	if agent == nil || baseline == nil {
		return ""
	}
	return fmt.Sprintf(" and %.2f ms of CPU", 1000*(agent.Net.Total()-baseline.Net.Total()))
}

// perEventFigures states the allocations and CPU time per event at the largest scale of measured:
// figures, not judged against a goal.
func perEventFigures(p func(string, ...any), measured []Scale) {
	small, large := measured[0], measured[len(measured)-1]
	worst, worstFirst := worstEvent(large.Events, lastRound(large.Events)), worstEvent(large.Events, 1)
	if ch := large.Churn; ch != nil && ch.SteadyEvents > 0 {
		// The steady state: the second half of the churn run, every kind in turn.
		p("- **Per event, P=%d (figures, no goal):** %s allocated%s per event in steady state (the second half of the churn run: %d events, relabel, address change and policy edit in turn).",
			large.Params.Pods, bytesText(ch.SteadyBytesPerEvent), cpuClause(ch.SteadyCPU), ch.SteadyEvents)
		if ch.SteadyBaselineBytesPerEvent > 0 {
			p("  The baseline (a manager caching the same objects, no reconciler) allocated %s%s per event over the same events: receiving, decoding and caching them, which the agent pays too; the agent's own work is %s%s per event (%.2fx the baseline's allocations in all).",
				bytesText(ch.SteadyBaselineBytesPerEvent), cpuClause(ch.SteadyBaselineCPU), bytesText(ch.SteadyBytesPerEvent-ch.SteadyBaselineBytesPerEvent),
				cpuDifferenceClause(ch.SteadyCPU, ch.SteadyBaselineCPU), ch.SteadyBytesPerEvent/ch.SteadyBaselineBytesPerEvent)
		}
		if bd := large.AllocBreakdown; bd != nil {
			var counted, scrapes float64
			var largest AllocPart
			for _, part := range bd.Parts {
				switch {
				case !part.Excluded:
					counted += part.BytesPerEvent
					if part.BytesPerEvent > largest.BytesPerEvent {
						largest = part
					}
				case part.Part == scrapesPart:
					scrapes += part.BytesPerEvent
				}
			}
			p("  The heap profiles, which set the scrapes apart exactly, give %s per event over all %d events of the scale (largest part: %s, %s; see \"Where the allocations per event go\"). The counter figure above subtracts each sample's scrape at its cost measured at idle; the profiles put the scrapes at %s per event.",
				bytesText(counted), bd.Events, largest.Part, bytesText(largest.BytesPerEvent), bytesText(scrapes))
		}
		if worst.Kind != "" {
			p("  Paced events before the churn (table below): up to %s (%s, round %d); in round 1 up to %s (%s).",
				bytesText(worst.BytesPerEvent), worst.Kind, max(worst.Round, 1), bytesText(worstFirst.BytesPerEvent), worstFirst.Kind)
		}
	} else if worst.Kind != "" {
		p("- **Per event, P=%d (figures, no goal):** up to %s allocated%s per event (%s, round %d); the baseline over the same events %s%s.",
			large.Params.Pods, bytesText(worst.BytesPerEvent), cpuClause(worst.CPU), worst.Kind, max(worst.Round, 1), bytesText(worst.BaselineBytesPerEvent), cpuClause(worst.BaselineCPU))
		if worstFirst.Round == 1 && worst.Round > 1 {
			p("  In round 1: up to %s (%s).", bytesText(worstFirst.BytesPerEvent), worstFirst.Kind)
		}
	}
	if worst.Kind != "" {
		if len(measured) > 1 && len(small.Events) > 0 && len(large.Events) > 0 && small.Events[0].BytesPerEvent > 0 {
			p("  From P=%d to P=%d (%.1fx pods) a %s allocates %.2fx: the cost per event %s with the cluster.", small.Params.Pods, large.Params.Pods,
				float64(large.Params.Pods)/float64(small.Params.Pods), large.Events[0].Kind, large.Events[0].BytesPerEvent/small.Events[0].BytesPerEvent,
				growsOrNot(large.Events[0].BytesPerEvent/small.Events[0].BytesPerEvent))
		}
		if ip := large.InProcess; ip != nil && worst.BytesPerEvent > 0 {
			p("  For scale: a whole-cluster `selectors.Resolve` + `nft.Compile` allocates %s at this size (in-process, below).", bytesText(ip.BytesPerCall))
		}
	}
}
