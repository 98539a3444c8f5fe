package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"
)

// window is a denied pair's window in one trial: the end of the last probe that reached the
// destination, or 0 when none did.
func window(pr pairResult) float64 {
	if pr.LastReachedMs == nil {
		return 0
	}
	return *pr.LastReachedMs
}

// stats are the median and the largest of some values.
func stats(vs []float64) (median, maxV float64) {
	if len(vs) == 0 {
		return 0, 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	return s[(len(s)-1)/2], s[len(s)-1]
}

// seriesFigures are a series' figures for the report.
type seriesFigures struct {
	ingress, egress, allowed, reported []float64
	reachedDenied, probesDenied        int
	neverAllowed                       int
}

func figuresOf(s series) seriesFigures {
	var f seriesFigures
	for _, t := range s.Trials {
		f.ingress = append(f.ingress, window(t.DeniedIngress))
		f.egress = append(f.egress, window(t.DeniedEgress))
		f.reported = append(f.reported, t.IPReportedMs)
		if t.AllowedIngress.FirstReachedMs != nil {
			f.allowed = append(f.allowed, *t.AllowedIngress.FirstReachedMs)
		} else {
			f.neverAllowed++
		}
		f.reachedDenied += t.DeniedIngress.Reached + t.DeniedEgress.Reached
		f.probesDenied += t.DeniedIngress.Probes + t.DeniedEgress.Probes
	}
	return f
}

func modeName(failClosed bool) string {
	if failClosed {
		return "fail-closed"
	}
	return "default"
}

// writeReport renders the markdown report of a run.
func writeReport(r *run, jsonPath, mdPath string) error {
	if mdPath == "" {
		return nil
	}
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# The new-pod window (issue 14)")
	w("")
	w("Written by `%s` from `%s` (run of %s UTC, %s).", r.Command, jsonPath, r.Started.Format("2006-01-02 15:04"), r.Finished.Sub(r.Started).Round(time.Second))
	w("Machine: %d CPUs, kernel %s, %s; load average at the start %s (other work shares the machine).", r.Machine.CPUs, r.Machine.Kernel, r.Machine.GoVersion, r.Machine.LoadAvg)
	w("")
	w("How long a new pod that an existing policy isolates is open, counted from the moment its network is up on its node")
	w("(interface, addresses, routes): the **window** is the end of the last probe that got through a denied pair")
	w("(0: none ever did). The lab, as kubelet, reports the pod's IPs a *delay* after its network is up; the agent")
	w("learns about the pod from that report. Both modes are measured in the same run, each delay in a lab of its own.")
	w("")
	reached := 0
	for _, s := range r.Series {
		if s.FailClosed {
			reached += figuresOf(s).reachedDenied
		}
	}
	verdict := "met"
	if reached > 0 {
		verdict = fmt.Sprintf("missed: %d denied probes got through", reached)
	}
	w("Goal (issue 14): with the fail-closed mode, no probe of a denied pair ever gets through (a window of 0): %s.", verdict)
	w("")
	w("## Headline")
	w("")
	for _, delay := range delaysOf(r) {
		var parts []string
		for _, s := range r.Series {
			if s.DelayMs != delay {
				continue
			}
			f := figuresOf(s)
			in, _ := stats(f.ingress)
			out, _ := stats(f.egress)
			_, inMax := stats(f.ingress)
			_, outMax := stats(f.egress)
			allowed, _ := stats(f.allowed)
			parts = append(parts, fmt.Sprintf("%s: open to a denied peer %.0f ms (max %.0f), to a denied destination %.0f ms (max %.0f), %d of %d denied probes got through; first allowed connection at %.0f ms",
				modeName(s.FailClosed), in, inMax, out, outMax, f.reachedDenied, f.probesDenied, allowed))
		}
		w("- Kubelet delay %.0f ms: %s.", delay, strings.Join(parts, "; "))
	}
	w("")
	var afterReport, allowedAfterReport []float64
	for _, s := range r.Series {
		for _, t := range s.Trials {
			if !s.FailClosed {
				afterReport = append(afterReport, max(window(t.DeniedIngress), window(t.DeniedEgress))-t.IPReportedMs)
			} else if t.AllowedIngress.FirstReachedMs != nil {
				allowedAfterReport = append(allowedAfterReport, *t.AllowedIngress.FirstReachedMs-t.IPReportedMs)
			}
		}
	}
	closeMedian, closeMax := stats(afterReport)
	allowMedian, allowMax := stats(allowedAfterReport)
	w("In the default mode the window is the kubelet's delay plus the time to report (the lab's Pod create and status")
	w("update) plus the agent's sync: it closed a median %.1f ms (max %.1f) after the IP report call returned. The", closeMedian, closeMax)
	w("fail-closed mode closes it: no denied probe got through in any trial. Its cost is the same interval the other way")
	w("round: the pod's first allowed connection waits for the agent, a median %.1f ms (max %.1f) after the IP report", allowMedian, allowMax)
	w("(within the probes' resolution while blocked), where in the default mode it connects at once.")
	w("")
	w("## Per mode and delay (ms from the pod's network being up; median / max over the trials)")
	w("")
	w("| delay | mode | trials | IP reported | window, denied peer -> pod | window, pod -> denied destination | denied probes that got through | first allowed connection |")
	w("|---:|---|---:|---:|---:|---:|---:|---:|")
	for _, s := range r.Series {
		f := figuresOf(s)
		rep, repMax := stats(f.reported)
		in, inMax := stats(f.ingress)
		out, outMax := stats(f.egress)
		al, alMax := stats(f.allowed)
		allowed := fmt.Sprintf("%.1f / %.1f", al, alMax)
		if f.neverAllowed > 0 {
			allowed += fmt.Sprintf(" (%d never)", f.neverAllowed)
		}
		w("| %.0f | %s | %d | %.1f / %.1f | %.1f / %.1f | %.1f / %.1f | %d of %d | %s |",
			s.DelayMs, modeName(s.FailClosed), len(s.Trials), rep, repMax, in, inMax, out, outMax, f.reachedDenied, f.probesDenied, allowed)
	}
	w("")
	w("## Method")
	w("")
	w("- One lab per mode and delay: a real kube-apiserver and etcd, two node namespaces with one agent process each. Policy `newpod/isolate-new` selects `app=new` for ingress and egress and admits only `role=friend`, both ways. `newpod/stranger` and `newpod/friend` run on node-2 and serve TCP 80.")
	w("- Each trial adds `newpod/new-N` (app=new, serves TCP 80) on node-1: the lab creates its namespace, veth, addresses and routes and starts its server, then creates the Pod (Pending, no IP), waits the delay and writes its IPs through the status subresource. From the moment its network is up (the lab's `OnPodNetworkUp` hook) three pairs are probed: stranger -> new (denied ingress), new -> stranger (denied egress) and friend -> new (allowed ingress).")
	w("- Probes: TCP connects, %d workers per pair started a slot apart, each with a %.0f ms timeout and a %.0f ms pause between its probes; in the fail-closed trials, where the denied pairs never got through, a denied pair's connects started every %.1f ms on average (the probe's own cost in a namespace, on a shared 2-CPU machine, adds to the timeout). A completed or refused connect got through; a timeout did not. A trial ends once the allowed pair has connected and neither denied pair has got through for %.0f ms; the pod is then deleted.",
		r.Config.Workers, r.Config.ProbeTimeoutMs, r.Config.ProbeGapMs, blockedProbeGap(r), r.Config.QuietMs)
	w("- Default mode: the new pod is open from its network being up until the agent, told by the IP report, commits its isolation. Fail-closed mode (`--pod-interface-prefix=lab`, the lab's host-side veth names): everything from or to a `lab*` interface that is not a programmed pod's interface and address is dropped, so the pod has no network at all until the agent commits it, and the first allowed connection waits for that commit.")
	w("")
	w("Reproduce: `%s` (arguments: trials per mode and delay, then the delays).", r.Command)
	return os.WriteFile(mdPath, []byte(b.String()), 0o644)
}

// delaysOf are the run's delays, in order.
func delaysOf(r *run) []float64 {
	var out []float64
	for _, s := range r.Series {
		if !slices.Contains(out, s.DelayMs) {
			out = append(out, s.DelayMs)
		}
	}
	return out
}

// blockedProbeGap is the mean time between the starts of a denied pair's probes in the fail-closed
// trials, where they were all blocked.
func blockedProbeGap(r *run) float64 {
	var duration float64
	probes := 0
	for _, s := range r.Series {
		if !s.FailClosed {
			continue
		}
		for _, t := range s.Trials {
			duration += 2 * t.DurationMs
			probes += t.DeniedIngress.Probes + t.DeniedEgress.Probes
		}
	}
	if probes == 0 {
		return 0
	}
	return duration / float64(probes)
}
