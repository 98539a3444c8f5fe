package main

import (
	"strings"
	"testing"

	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// makeRun is a run of one scale at the goal's size whose agent holds rssMiB after sync and
// allocated bytesPerEvent per event, paced and in the churn's steady state.
func makeRun(rssMiB int64, bytesPerEvent float64) *Run {
	after := func(rss int64) *ProcessFigures {
		return &ProcessFigures{InitialList: "streamed", AfterSync: Memory{RSSKiB: rss * 1024, PeakKiB: rss * 1024, LiveHeap: float64(rss) * (1 << 19)}}
	}
	var samples []Memory
	for i := range 5 {
		samples = append(samples, Memory{AtSeconds: float64(60 * i), RSSKiB: rssMiB * 1024, AllocsBytes: bytesPerEvent * float64(100*i), Events: 100 * i})
	}
	return &Run{Scales: []Scale{{
		Params:   generator.Params{Pods: goalPods, Policies: goalPolicies},
		Baseline: after(rssMiB / 2),
		Agent:    after(rssMiB),
		Idle:     &IdleFigures{Seconds: 30},
		Events: []EventFigures{
			{Kind: generator.PodRelabel, Round: 1, Events: 20, Syncs: 20, BytesPerEvent: bytesPerEvent, RawBytesPerEvent: bytesPerEvent},
			{Kind: generator.PolicyEdit, Round: 2, Events: 20, Syncs: 20, BytesPerEvent: bytesPerEvent, RawBytesPerEvent: bytesPerEvent},
		},
		Churn: &ChurnFigures{Seconds: goalChurnSeconds, EventsPerSecond: 2, Events: 400, Samples: samples, RSSFirstKiB: rssMiB * 1024, RSSLastKiB: rssMiB * 1024, RSSMaxKiB: rssMiB * 1024,
			SteadyEvents: 200, SteadyBytesPerEvent: bytesPerEvent},
	}}}
}

func TestReportDoesNotJudgeAllocations(t *testing.T) {
	// A hundred times the retired 10 KiB per event: still a figure, never a verdict.
	out := report(makeRun(100, 1000*1024), "run.json")
	for _, judged := range []string{"missed", "per-event goal", "KiB allocated per incremental event", "the goal)"} {
		if strings.Contains(out, judged) {
			t.Errorf("the report judges the allocations (%q):\n%s", judged, out)
		}
	}
	for _, figure := range []string{"1000.0 KiB allocated per event in steady state", "| 1000.0 | 1000.0 |"} {
		if !strings.Contains(out, figure) {
			t.Errorf("the report lacks the allocations figure %q:\n%s", figure, out)
		}
	}
}

func TestReportJudgesRSSAndChurn(t *testing.T) {
	met := verdicts(makeRun(100, 1024))
	for _, want := range []string{"**RSS after sync, P=50000:** agent 100 MiB (peak 100) against the goal of 150 MiB: met.", "**Flat under churn, P=50000:**", "against at most 5%: met."} {
		if !strings.Contains(met, want) {
			t.Errorf("verdicts lack %q:\n%s", want, met)
		}
	}
	missed := verdicts(makeRun(200, 1024))
	if !strings.Contains(missed, "against the goal of 150 MiB: **missed**.") {
		t.Errorf("an agent of 200 MiB after sync meets the RSS goal:\n%s", missed)
	}
}

func TestReportDescribesWhatItMeasures(t *testing.T) {
	// The report describes the measurement, not how the agent keeps its memory.
	out := strings.ToLower(report(makeRun(100, 1024), "run.json"))
	for _, mechanism := range []string{"array", "reserve", "buffer", "reuse"} {
		if strings.Contains(out, mechanism) {
			t.Errorf("the report speaks of %q:\n%s", mechanism, out)
		}
	}
	if !strings.Contains(out, "two samples of the same events") {
		t.Errorf("the report does not say what its two rounds are:\n%s", out)
	}
}
