package main

import "time"

// settled finds where probes, sorted by start, settled on the verdict want: the index of the first
// probe of the trailing run of want verdicts, once that run holds at least confirm probes. Probes of
// the new verdict seen before that run and followed by the old one again are flaps.
func settled(probes []probe, want bool, confirm int) (first int, flaps int, ok bool) {
	run := 0
	for i := len(probes) - 1; i >= 0 && probes[i].ok == want; i-- {
		run++
	}
	if run < confirm {
		return 0, 0, false
	}
	first = len(probes) - run
	for _, p := range probes[:first] {
		if p.ok == want {
			flaps++
		}
	}
	return first, flaps, true
}

// observation is what one transition's probes say, relative to the write that caused it.
type observation struct {
	// Latency runs from the write call returning to the start of the first probe of the new verdict
	// (negative when the agent enforced it before the API server's response arrived).
	Latency time.Duration
	// Bracket is the gap between the last probe of the old verdict and the first of the new one: the
	// enforcement happened within it, so it is this measurement's resolution.
	Bracket time.Duration
	Flaps   int
}

// observe measures a settled transition: probes started at or after issued, the write's start;
// returned is when the write call returned.
func observe(probes []probe, first, flaps int, issued, returned time.Time) observation {
	lastOld := issued
	if first > 0 {
		lastOld = probes[first-1].start
	}
	return observation{
		Latency: probes[first].start.Sub(returned),
		Bracket: probes[first].start.Sub(lastOld),
		Flaps:   flaps,
	}
}
