package harness

import (
	"fmt"
	"strings"

	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// The goals a candidate build is held to against the build it replaces (measured in the same session,
// runs alternating): full programming no slower than maxFullSlowdown of the base, and still
// minFasterThanC times faster than baseline C; a cost per set element at most maxPerElementOverKernel
// times the kernel's own CPU per element; element-only events within goalP50MS and goalP99MS.
const (
	maxFullSlowdown         = 1.1
	minFasterThanC          = 2.0
	maxPerElementOverKernel = 1.5
)

// Figures are the headline figures of one run, from its raw measurements.
type Figures struct {
	// FullMS is A's compile + program at full scale (median over repetitions), FixedMS the same for
	// A without set elements, and CMS baseline C's.
	FullMS, FixedMS, CMS float64
	Elements             int
	// PerElementUS is A's time per set element ((FullMS - FixedMS) / Elements) and KernelPerElementUS
	// the kernel's CPU per element (A's system time minus the fixed ruleset's, per element).
	PerElementUS, KernelPerElementUS float64
	// EventP50MS and EventP99MS are element-only events from the changed object to the commit.
	EventP50MS, EventP99MS float64
	Events                 int
	// NetlinkBytesElement and NetlinkBytesPolicyEdit are the median netlink bytes per event.
	NetlinkBytesElement, NetlinkBytesPolicyEdit float64
}

// FiguresOf computes the headline figures of a run (zero where the run did not measure them).
func FiguresOf(r *Run) Figures {
	var f Figures
	if len(r.Full) > 0 {
		full := r.Full[0]
		if a := backend(full, BackendA); a != nil {
			f.FullMS, f.Elements = summarize(totals(a)).Median, a.Elements
			if fixed := backend(full, BackendAFixed); fixed != nil && a.Elements > 0 {
				f.FixedMS = summarize(totals(fixed)).Median
				f.PerElementUS = (f.FullMS - f.FixedMS) * 1000 / float64(a.Elements)
				f.KernelPerElementUS = (summarize(a.SysMS).Median - summarize(fixed.SysMS).Median) * 1000 / float64(a.Elements)
			}
		}
		if c := backend(full, BackendC); c != nil {
			f.CMS = summarize(totals(c)).Median
		}
	}
	if r.Incr != nil {
		var events, element, edit []float64
		for _, e := range r.Incr.Events {
			if e.Ops == 0 {
				continue
			}
			if e.Kind.ElementOnly() {
				events = append(events, e.EventMS)
				if e.NetlinkBytes > 0 {
					element = append(element, float64(e.NetlinkBytes))
				}
			} else if e.Kind == generator.PolicyEdit && e.NetlinkBytes > 0 {
				edit = append(edit, float64(e.NetlinkBytes))
			}
		}
		f.EventP50MS, f.EventP99MS, f.Events = percentileOf(events, 50), percentileOf(events, 99), len(events)
		f.NetlinkBytesElement, f.NetlinkBytesPolicyEdit = percentileOf(element, 50), percentileOf(edit, 50)
	}
	return f
}

// Versus renders the headline figures of two builds side by side: base's runs and cand's runs were
// taken alternately, so run i of each forms a pair whose ratio (candidate / base) is summarized.
func Versus(baseName, candName string, base, cand []*Run) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	pairs := min(len(base), len(cand))
	bf, cf := make([]Figures, pairs), make([]Figures, pairs)
	for i := range pairs {
		bf[i], cf[i] = FiguresOf(base[i]), FiguresOf(cand[i])
	}
	col := func(fs []Figures, get func(Figures) float64) []float64 {
		out := make([]float64, len(fs))
		for i, f := range fs {
			out[i] = get(f)
		}
		return out
	}
	p("| figure | %s | %s | %s / %s |", baseName, candName, candName, baseName)
	p("|---|---|---|---|")
	rows := []struct {
		name string
		get  func(Figures) float64
	}{
		{"full programming at full scale, compile + program ms", func(f Figures) float64 { return f.FullMS }},
		{"the same without set elements ms", func(f Figures) float64 { return f.FixedMS }},
		{"baseline C, compile + program ms", func(f Figures) float64 { return f.CMS }},
		{"A per set element µs", func(f Figures) float64 { return f.PerElementUS }},
		{"kernel CPU per set element µs", func(f Figures) float64 { return f.KernelPerElementUS }},
		{"element-only events p50 ms", func(f Figures) float64 { return f.EventP50MS }},
		{"element-only events p99 ms", func(f Figures) float64 { return f.EventP99MS }},
		{"netlink bytes per element-only event (median)", func(f Figures) float64 { return f.NetlinkBytesElement }},
		{"netlink bytes per policy edit (median)", func(f Figures) float64 { return f.NetlinkBytesPolicyEdit }},
	}
	for _, row := range rows {
		bs, cs := col(bf, row.get), col(cf, row.get)
		p("| %s | %s | %s | %s |", row.name, medianRange(bs), medianRange(cs), fmtSummary(ratios(cs, bs), "x"))
	}
	p("")
	p("Each cell is the median [min, max] over %d runs per build; a run's figure is itself a median over its repetitions or events. Ratios are taken per pair of runs (run i of each build, taken one after the other) and then summarized.", pairs)
	p("")
	full := ratios(col(cf, func(f Figures) float64 { return f.FullMS }), col(bf, func(f Figures) float64 { return f.FullMS }))
	cOverA := ratios(col(cf, func(f Figures) float64 { return f.CMS }), col(cf, func(f Figures) float64 { return f.FullMS }))
	perElem := ratios(col(cf, func(f Figures) float64 { return f.PerElementUS }), col(cf, func(f Figures) float64 { return f.KernelPerElementUS }))
	p50 := summarize(col(cf, func(f Figures) float64 { return f.EventP50MS }))
	p99 := summarize(col(cf, func(f Figures) float64 { return f.EventP99MS }))
	goal := func(name string, met bool, figure string) {
		verdict := "missed"
		if met {
			verdict = "met"
		}
		p("- %s: **%s** (%s)", name, verdict, figure)
	}
	goal(fmt.Sprintf("full programming within %.1fx of %s", maxFullSlowdown, baseName), full.N > 0 && full.Median <= maxFullSlowdown, fmtSummary(full, "x"))
	goal(fmt.Sprintf("full programming at least %.0fx faster than C", minFasterThanC), cOverA.N > 0 && cOverA.Median >= minFasterThanC, "C/A "+fmtSummary(cOverA, "x"))
	goal(fmt.Sprintf("cost per set element at most %.1fx the kernel's CPU per element", maxPerElementOverKernel), perElem.N > 0 && perElem.Median <= maxPerElementOverKernel, fmtSummary(perElem, "x"))
	goal(fmt.Sprintf("element-only events p50 <= %g ms and p99 <= %g ms", goalP50MS, goalP99MS), p50.N > 0 && p50.Median <= goalP50MS && p99.Median <= goalP99MS,
		fmt.Sprintf("p50 %s ms, p99 %s ms, medians over runs", num(p50.Median), num(p99.Median)))
	return b.String()
}
