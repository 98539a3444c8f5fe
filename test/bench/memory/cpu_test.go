package main

import (
	"math"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// proc(5): pid (comm) state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
	// utime stime ...; the command's name may hold spaces and parentheses.
	stat := "4242 (nft policy) (x)) S 1 4242 4242 0 -1 4194560 1200 0 3 0 1234 567 0 0 20 0 9 0 100 1000000 2000 18446744073709551615\n"
	got, err := parseProcStat(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := (CPUTime{User: 12.34, System: 5.67}); !near(got, want) {
		t.Errorf("parseProcStat = %+v, want %+v", got, want)
	}
	for _, bad := range []string{"", "4242 (agent) S 1 2 3", "4242 (agent) S 1 4242 4242 0 -1 4194560 1200 0 3 0 x 567 0"} {
		if _, err := parseProcStat(bad); err == nil {
			t.Errorf("parseProcStat(%q) gave no error", bad)
		}
	}
}

func TestProcCPUReadsThisProcess(t *testing.T) {
	before, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	spinCPU(t, 200*time.Millisecond)
	after, err := procCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// The kernel's ticks are 10 ms; allow for them and for the split between user and system.
	if grew := after.Total() - before.Total(); grew < 0.17 || grew > 1 {
		t.Errorf("procCPU grew by %.3f s over 200 ms of CPU: %+v -> %+v", grew, before, after)
	}
}

// idleOf is an idle window's figures: a scrape costs scrapeMS, the background rate is rateMS ms/s
// (all user time but systemShare of it).
func idleOf(scrapeMS, rateMS, systemShare float64) IdleFigures {
	split := func(ms float64) *CPUTime {
		return &CPUTime{User: ms * (1 - systemShare) / 1000, System: ms * systemShare / 1000}
	}
	return IdleFigures{Seconds: 30, ScrapeCPU: split(scrapeMS), CPUPerSecond: split(rateMS)}
}

func cpuSample(at, user, system float64, events int) Memory {
	return Memory{AtSeconds: at, CPU: &CPUTime{User: user, System: system}, Events: events}
}

func TestCPUPerEventSubtractsScrapesAndIdleRate(t *testing.T) {
	// 20 events over 40 s: 1.2 s user and 0.4 s system in all; one scrape of 4 ms (3 user, 1
	// system) and an idle rate of 2 ms/s (1.5 user, 0.5 system), 80 ms over the window.
	before, after := cpuSample(10, 3, 1, 0), cpuSample(50, 4.2, 1.4, 0)
	got := cpuPerEvent(before, after, idleOf(4, 2, 0.25), 1, 20)
	if got == nil {
		t.Fatal("no CPU figure")
	}
	if want := (CPUTime{User: 0.060, System: 0.020}); !near(got.Raw, want) {
		t.Errorf("raw %+v, want %+v", got.Raw, want)
	}
	// user: (1.2 - 0.003 - 0.060) / 20, system: (0.4 - 0.001 - 0.020) / 20
	if want := (CPUTime{User: 1.137 / 20, System: 0.379 / 20}); !near(got.Net, want) {
		t.Errorf("net %+v, want %+v", got.Net, want)
	}
}

func TestCPUPerEventNeedsEveryFigure(t *testing.T) {
	idle := idleOf(4, 2, 0)
	before, after := cpuSample(0, 1, 1, 0), cpuSample(10, 2, 1, 0)
	recorded := Memory{AtSeconds: 10} // a sample recorded before CPU times were read
	cases := map[string]*EventCPU{
		"no events":             cpuPerEvent(before, after, idle, 1, 0),
		"sample without CPU":    cpuPerEvent(before, recorded, idle, 1, 10),
		"idle without CPU rate": cpuPerEvent(before, after, IdleFigures{Seconds: 30}, 1, 10),
	}
	for name, got := range cases {
		if got != nil {
			t.Errorf("%s: %+v, want none", name, got)
		}
	}
}

func TestSummarizeChurnCPUOverTheSecondHalf(t *testing.T) {
	// Five samples 60 s apart, 100 events between each; the agent spends 10 ms per event and 2 ms/s
	// besides, the baseline 1 ms per event and 1 ms/s; each sample's scrape costs 5 ms (agent) and
	// 1 ms (baseline). The second half runs from the third sample to the fifth: 200 events, 120 s,
	// two scrapes.
	var agent, base []Memory
	agentCPU, baseCPU := 0.0, 0.0
	for i := range 5 {
		agent = append(agent, Memory{AtSeconds: float64(60 * i), CPU: &CPUTime{User: agentCPU}, Events: 100 * i, RSSKiB: 100 << 10})
		base = append(base, Memory{AtSeconds: float64(60 * i), CPU: &CPUTime{User: baseCPU}, Events: 100 * i, RSSKiB: 50 << 10})
		agentCPU += 100*0.010 + 60*0.002 + 0.005
		baseCPU += 100*0.001 + 60*0.001 + 0.001
	}
	fig := ChurnFigures{Samples: agent, BaselineSamples: base}
	summarizeChurn(&fig, idleOf(5, 2, 0), idleOf(1, 1, 0))
	if fig.SteadyEvents != 200 {
		t.Fatalf("steady events %d, want 200", fig.SteadyEvents)
	}
	if fig.SteadyCPU == nil || fig.SteadyBaselineCPU == nil {
		t.Fatalf("no steady CPU: %+v, %+v", fig.SteadyCPU, fig.SteadyBaselineCPU)
	}
	if got := fig.SteadyCPU.Net; !near(got, CPUTime{User: 0.010}) {
		t.Errorf("agent net %+v, want 10 ms user per event", got)
	}
	if got := fig.SteadyCPU.Raw; !near(got, CPUTime{User: 2 * (1 + 0.12 + 0.005) / 200}) {
		t.Errorf("agent raw %+v", got)
	}
	if got := fig.SteadyBaselineCPU.Net; !near(got, CPUTime{User: 0.001}) {
		t.Errorf("baseline net %+v, want 1 ms user per event", got)
	}
}

func TestReportShowsCPUPerEvent(t *testing.T) {
	run := makeRun(100, 20*1024)
	sc := &run.Scales[0]
	sc.Idle.CPUPerSecond, sc.Idle.ScrapeCPU = &CPUTime{User: 0.002}, &CPUTime{User: 0.004}
	sc.Events[0].CPU = &EventCPU{Raw: CPUTime{User: 0.005, System: 0.002}, Net: CPUTime{User: 0.004, System: 0.001}}
	sc.Events[0].BaselineCPU = &EventCPU{Raw: CPUTime{User: 0.002}, Net: CPUTime{User: 0.0015}}
	sc.Churn.SteadyCPU = &EventCPU{Raw: CPUTime{User: 0.004, System: 0.002}, Net: CPUTime{User: 0.003, System: 0.00125}}
	sc.Churn.SteadyBaselineCPU = &EventCPU{Raw: CPUTime{User: 0.001}, Net: CPUTime{User: 0.00075}}
	sc.Churn.SteadyBaselineBytesPerEvent = 8 * 1024
	out := report(run, "run.json")
	for _, want := range []string{
		// the summary, beside the allocations
		"20.0 KiB allocated and 4.25 ms (user 3.00, system 1.25) of CPU per event in steady state",
		"allocated 8.0 KiB and 0.75 ms (user 0.75, system 0.00) of CPU per event over the same events",
		"the agent's own work is 12.0 KiB and 3.50 ms of CPU per event",
		// the table of paced events: net, split, raw, baseline
		"| 20.0 | 20.0 | 0.0 | 5.00 | 4.00 / 1.00 | 7.00 | 1.50 |",
		// the churn section
		"CPU time over the same half, less the samples' scrapes and the idle CPU rate over the same time: 4.25 ms (user 3.00, system 1.25) per event (raw, nothing subtracted: 6.00 ms).",
		// the idle background
		"2.00 ms/s of CPU (user 2.00, system 0.00)", "costs 4.00 ms of CPU",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the report lacks %q:\n%s", want, out)
		}
	}
	// Paced events recorded without CPU times render a dash.
	if !strings.Contains(out, "| 20.0 | 20.0 | 0.0 | - | - | - | - |") {
		t.Errorf("an event without CPU figures does not render dashes:\n%s", out)
	}
}

func near(got, want CPUTime) bool {
	return math.Abs(got.User-want.User) < 1e-9 && math.Abs(got.System-want.System) < 1e-9
}

// spinCPU burns d of this process's CPU time, as getrusage(2) counts it.
func spinCPU(t *testing.T, d time.Duration) {
	t.Helper()
	used := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	start := used()
	for x := 1.0; used()-start < d; x = math.Sqrt(x + 1) {
	}
}

func TestChurnTableCountsCPUFromTheFirstSample(t *testing.T) {
	run := makeRun(100, 1024)
	ch := run.Scales[0].Churn
	for i := range ch.Samples {
		// /proc/PID/stat's times, which win over the metric, when the run has them.
		ch.Samples[i].CPU = &CPUTime{User: 10 + 1.5*float64(i), System: 0.25 * float64(i)}
		ch.Samples[i].CPUSeconds = 1000
	}
	out := report(run, "run.json")
	for _, row := range []string{"| 0 | 100.0 | 0.0 | 0.0 | 0 | 0.0 | 0.00 |", "| 240 | 100.0 | 0.0 | 0.0 | 0 | 0.4 | 7.00 |"} {
		if !strings.Contains(out, row) {
			t.Errorf("the churn table lacks %q:\n%s", row, out)
		}
	}
	// A run recorded before: the metric process_cpu_seconds_total.
	if got := (Memory{CPUSeconds: 12.5}).cpuSeconds(); got != 12.5 {
		t.Errorf("cpuSeconds without /proc times = %v, want the metric's 12.5", got)
	}
}
