package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// ProcessFigures are one process's figures after its first sync.
type ProcessFigures struct {
	What         string  `json:"what"`
	ReadySeconds float64 `json:"readySeconds"` // start to /readyz passing (agent: first sync committed)
	// InitialList is how the process got its pods: "streamed" (a watch that begins with every pod,
	// client-go's WatchListClient) or "listed" (one LIST answered from the API server's watch cache).
	InitialList string `json:"initialList,omitempty"`
	AfterSync   Memory `json:"afterSync"` // after settling
	// Late is sampled at the end of the scale, minutes later (after the runtime's periodic GC): the
	// baseline idle all along, the agent after the events and the churn.
	Late *Memory `json:"late,omitempty"`
}

// EventFigures are the allocations of one kind of event, paced so that each gets its own sync.
type EventFigures struct {
	Kind generator.EventKind `json:"kind"`
	// Round is 1 for the first events after the first sync and 2 for the same number of each kind
	// sent right after round 1: two samples of the same events, one after the other.
	Round      int     `json:"round,omitempty"`
	Events     int     `json:"events"`
	GapSeconds float64 `json:"gapSeconds"`
	Syncs      float64 `json:"syncs"` // syncs the agent ran meanwhile; about Events when pacing worked
	// RawBytesPerEvent is the growth of the allocation counter over the window divided by Events;
	// BytesPerEvent subtracts the idle rate (scrapes, timers) over the same time first.
	RawBytesPerEvent float64 `json:"rawBytesPerEvent"`
	BytesPerEvent    float64 `json:"bytesPerEvent"`
	// BaselineBytesPerEvent is what the baseline (a manager caching the same objects, with no
	// reconciler) allocated over the same window, less its own scrape and idle rate, per event:
	// receiving, decoding and caching the event, which the agent pays too.
	BaselineBytesPerEvent float64 `json:"baselineBytesPerEvent"`
	ObjectsPerEvent       float64 `json:"objectsPerEvent"`
	// CPU is the agent's CPU time per event over the window, BaselineCPU the baseline's: both less
	// the window's scrape and their idle CPU rate over the same time (see EventCPU).
	CPU                *EventCPU `json:"cpu,omitempty"`
	BaselineCPU        *EventCPU `json:"baselineCPU,omitempty"`
	SyncSecondsPerSync float64   `json:"syncSecondsPerSync"`
	RSSAfterKiB        int64     `json:"rssAfterKiB"`
	Example            string    `json:"example"`
}

// IdleFigures are the agent's background allocations with nothing changing.
type IdleFigures struct {
	Seconds float64 `json:"seconds"`
	// BytesPerSecond is the background rate (timers, the informers' bookkeeping), without the
	// harness's own metrics scrapes.
	BytesPerSecond float64 `json:"bytesPerSecond"`
	// ScrapeBytes is what serving one metrics scrape allocates in the agent: between two readings
	// of the allocation counter lies exactly one scrape, whose cost every window subtracts.
	ScrapeBytes float64 `json:"scrapeBytes,omitempty"`
	Syncs       float64 `json:"syncs"`
	// CPUPerSecond is the background CPU rate over the same window, less its one scrape; ScrapeCPU
	// is what serving one scrape costs, the mean over the back-to-back samples (CPU time comes in
	// 10 ms ticks: a least difference would be zero).
	CPUPerSecond *CPUTime `json:"cpuPerSecond,omitempty"`
	ScrapeCPU    *CPUTime `json:"scrapeCPU,omitempty"`
}

// backgroundBytes is what the agent allocates besides its events between two samples: the scrapes
// in between (one per sample after the first) and the background rate.
func (idle IdleFigures) backgroundBytes(scrapes int, seconds float64) float64 {
	return float64(scrapes)*idle.ScrapeBytes + idle.BytesPerSecond*seconds
}

// ChurnFigures are the agent's memory over a run of steady events.
type ChurnFigures struct {
	Seconds         float64  `json:"seconds"`
	EventsPerSecond float64  `json:"eventsPerSecond"`
	Events          int      `json:"events"`
	Syncs           float64  `json:"syncs"`
	Samples         []Memory `json:"samples"`
	// Least-squares slopes over the samples.
	RSSSlopeMiBPerMin  float64 `json:"rssSlopeMiBPerMin"`
	HeapSlopeMiBPerMin float64 `json:"heapInuseSlopeMiBPerMin"`
	RSSFirstKiB        int64   `json:"rssFirstKiB"`
	RSSLastKiB         int64   `json:"rssLastKiB"`
	RSSMaxKiB          int64   `json:"rssMaxKiB"`
	// SteadyBytesPerEvent is what the agent allocated per event over the second half of the run,
	// less the samples' scrapes: the cost of an event after minutes of events, background
	// included. The idle rate is not subtracted: it is measured over one short window, which a
	// one-off (a deferred status write, a resync) can inflate many times over, and subtracting it
	// would flatter the figure. SteadyEvents is how many events that covers.
	SteadyBytesPerEvent float64 `json:"steadyBytesPerEvent,omitempty"`
	SteadyEvents        int     `json:"steadyEvents,omitempty"`
	// BaselineSamples are the baseline's, taken with each sample of the agent;
	// SteadyBaselineBytesPerEvent is its allocations per event over the same second half.
	BaselineSamples             []Memory `json:"baselineSamples,omitempty"`
	SteadyBaselineBytesPerEvent float64  `json:"steadyBaselineBytesPerEvent,omitempty"`
	// SteadyCPU and SteadyBaselineCPU are the agent's and the baseline's CPU time per event over the
	// same second half, less the samples' scrapes and the idle CPU rate (see EventCPU).
	SteadyCPU         *EventCPU `json:"steadyCPU,omitempty"`
	SteadyBaselineCPU *EventCPU `json:"steadyBaselineCPU,omitempty"`
}

// baselineSpec is the baseline's command line against cp: bin's baseline mode.
func (r *runner) baselineSpec(name, bin string, cp *controlPlane) childSpec {
	argv := []string{bin, "baseline", "--node-name", generator.Node, "--kubeconfig", cp.kubeconfig}
	if r.memoryLimit != "" && hasFlag(argv[:2], "memory-limit") {
		argv = append(argv, "--memory-limit", r.memoryLimit)
	}
	return childSpec{name: name, argv: argv, env: r.gogcEnv()}
}

// startBaseline runs the baseline process until it synced and samples it. It keeps running, idle,
// until the caller stops it.
func (r *runner) startBaseline(ctx context.Context, cp *controlPlane) (*child, ProcessFigures, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, ProcessFigures{}, err
	}
	c, err := startChild(r.baselineSpec("baseline", self, cp), filepath.Join(r.logDir, fmt.Sprintf("baseline-%d.log", r.scaleIndex)))
	if err != nil {
		return nil, ProcessFigures{}, err
	}
	fig, err := r.afterSync(ctx, c, cp, "baseline", "bare controller-runtime manager: agent scheme and controllers.CacheOptions, informers for Pod, Namespace, NetworkPolicy, NodeEnforcement, no reconciler")
	if err != nil {
		c.stop()
		return nil, fig, err
	}
	return c, fig, nil
}

// afterSync waits for c to be ready, lets it settle and samples it, its live heap last (the forced
// collection must not flatter the RSS). profile names the heap profile kept in the log directory.
func (r *runner) afterSync(ctx context.Context, c *child, cp *controlPlane, profile, what string) (ProcessFigures, error) {
	start := time.Now()
	listsBefore, err := cp.podLists(ctx)
	if err != nil {
		return ProcessFigures{}, err
	}
	ready, err := c.waitReady(ctx, r.readyTimeout)
	if err != nil {
		return ProcessFigures{}, err
	}
	fig := ProcessFigures{What: what, ReadySeconds: ready.Seconds(), InitialList: "streamed"}
	if listsAfter, err := cp.podLists(ctx); err != nil {
		return fig, err
	} else if listsAfter > listsBefore {
		fig.InitialList = "listed"
	}
	r.logf("  %s ready in %s (pods %s); settling %s", c.name, ready.Round(time.Millisecond), fig.InitialList, r.settle)
	if err := sleep(ctx, r.settle); err != nil {
		return fig, err
	}
	if fig.AfterSync, err = c.sampleLive(ctx, start, r.profilePath(profile)); err != nil {
		return fig, err
	}
	m := fig.AfterSync
	r.logf("  %s after sync: RSS %.1f MiB (peak %.1f), heap alloc %.1f MiB, heap in use %.1f MiB, live heap %.1f MiB", c.name,
		kib(m.RSSKiB), kib(m.PeakKiB), mib(m.HeapAlloc), mib(m.HeapInuse), mib(m.LiveHeap))
	return fig, nil
}

// backToBackScrapes is how many back-to-back samples measure the cost of one scrape.
const backToBackScrapes = 10

// measureIdle samples a process's allocation counter and CPU time over a window with no events.
func (r *runner) measureIdle(ctx context.Context, c *child, window time.Duration) (IdleFigures, error) {
	start := time.Now()
	// The cost of one scrape: in allocations the least of the differences between back-to-back
	// samples, in CPU time their mean.
	var fig IdleFigures
	prev, err := c.sample(ctx, start)
	if err != nil {
		return fig, err
	}
	first := prev
	for i := range backToBackScrapes {
		next, err := c.sample(ctx, start)
		if err != nil {
			return fig, err
		}
		if d := next.AllocsBytes - prev.AllocsBytes; i == 0 || d < fig.ScrapeBytes {
			fig.ScrapeBytes = d
		}
		prev = next
	}
	before := prev
	scrapeCPU := before.CPU.minus(*first.CPU).times(1.0 / backToBackScrapes)
	fig.ScrapeCPU = &scrapeCPU
	if err := sleep(ctx, window); err != nil {
		return fig, err
	}
	after, err := c.sample(ctx, start)
	if err != nil {
		return fig, err
	}
	fig.Seconds = after.AtSeconds - before.AtSeconds
	fig.BytesPerSecond = max(0, after.AllocsBytes-before.AllocsBytes-fig.ScrapeBytes) / fig.Seconds
	fig.Syncs = after.Syncs - before.Syncs
	rate := after.CPU.minus(*before.CPU).minus(scrapeCPU).times(1 / fig.Seconds).atLeastZero()
	fig.CPUPerSecond = &rate
	return fig, nil
}

// observed is a process an event window samples, with its idle figures.
type observed struct {
	c    *child
	idle IdleFigures
}

// measureEvents sends n events of kind, one every gap, and divides the allocations of the agent, and
// of the baseline over the same window, by n.
func (r *runner) measureEvents(ctx context.Context, agent, base observed, w *eventWriter, kind generator.EventKind, round, n int, gap time.Duration) (EventFigures, error) {
	c := agent.c
	fig := EventFigures{Kind: kind, Round: round, Events: n, GapSeconds: gap.Seconds()}
	// Allocation profiles around the window, taken outside it (writing a profile allocates):
	// `go tool pprof -sample_index=alloc_space -base BEFORE AFTER` shows what the events allocated
	// (run with GODEBUG=memprofilerate=4096, which the agent inherits, for a finer sample than the
	// default one per 512 KiB). gc=1 makes each profile current (only the heap profile takes it; it holds
	// the allocations too).
	if err := c.saveProfile(ctx, "heap?gc=1", r.profilePath(fmt.Sprintf("%s-round%d-before", kind, round))); err != nil {
		r.logf("  %s", err)
	}
	start := time.Now()
	before, err := c.sample(ctx, start)
	if err != nil {
		return fig, err
	}
	baseBefore, err := base.c.sample(ctx, start)
	if err != nil {
		return fig, err
	}
	for i := range n {
		desc, err := w.send(ctx, kind)
		if err != nil {
			return fig, err
		}
		if i == 0 {
			fig.Example = desc
		}
		if err := sleep(ctx, gap); err != nil {
			return fig, err
		}
	}
	after, err := c.sample(ctx, start)
	if err != nil {
		return fig, err
	}
	baseAfter, err := base.c.sample(ctx, start)
	if err != nil {
		return fig, err
	}
	if err := c.saveProfile(ctx, "heap?gc=1", r.profilePath(fmt.Sprintf("%s-round%d-after", kind, round))); err != nil {
		r.logf("  %s", err)
	}
	delta := after.AllocsBytes - before.AllocsBytes
	secs := after.AtSeconds - before.AtSeconds
	fig.Syncs = after.Syncs - before.Syncs
	fig.RawBytesPerEvent = delta / float64(n)
	fig.BytesPerEvent = (delta - agent.idle.backgroundBytes(1, secs)) / float64(n)
	fig.BaselineBytesPerEvent = (baseAfter.AllocsBytes - baseBefore.AllocsBytes - base.idle.backgroundBytes(1, baseAfter.AtSeconds-baseBefore.AtSeconds)) / float64(n)
	fig.ObjectsPerEvent = (after.AllocsObjs - before.AllocsObjs) / float64(n)
	fig.CPU = cpuPerEvent(before, after, agent.idle, 1, n)
	fig.BaselineCPU = cpuPerEvent(baseBefore, baseAfter, base.idle, 1, n)
	if fig.Syncs > 0 {
		fig.SyncSecondsPerSync = (after.SyncSeconds - before.SyncSeconds) / fig.Syncs
	}
	fig.RSSAfterKiB = after.RSSKiB
	r.logf("  round %d, %s: %d events, %.0f syncs, %.1f KiB allocated per event (raw %.1f; baseline %.1f), %.0f objects, sync %.0f ms, CPU %s ms per event (baseline %s)",
		round, kind, n, fig.Syncs, fig.BytesPerEvent/1024, fig.RawBytesPerEvent/1024, fig.BaselineBytesPerEvent/1024, fig.ObjectsPerEvent, 1000*fig.SyncSecondsPerSync,
		cpuCell(fig.CPU, true), cpuCell(fig.BaselineCPU, true))
	return fig, nil
}

// churn sends events of the measured kinds round robin at rate per second for d, sampling the agent
// (and the baseline, for its allocations) every interval.
func (r *runner) churn(ctx context.Context, agent, base observed, w *eventWriter, d time.Duration, rate float64, interval time.Duration) (ChurnFigures, error) {
	c := agent.c
	fig := ChurnFigures{EventsPerSecond: rate}
	start := time.Now()
	sampleBoth := func() error {
		m, err := c.sample(ctx, start)
		if err != nil {
			return err
		}
		b, err := base.c.sample(ctx, start)
		if err != nil {
			return err
		}
		m.Events, b.Events = fig.Events, fig.Events
		fig.Samples, fig.BaselineSamples = append(fig.Samples, m), append(fig.BaselineSamples, b)
		return nil
	}
	if err := sampleBoth(); err != nil {
		return fig, err
	}
	first := fig.Samples[0]
	tick := time.NewTicker(time.Duration(float64(time.Second) / rate))
	defer tick.Stop()
	sampleTick := time.NewTicker(interval)
	defer sampleTick.Stop()
	deadline := time.After(d)
	for {
		select {
		case <-ctx.Done():
			return fig, ctx.Err()
		case <-deadline:
			if err := sampleBoth(); err != nil {
				return fig, err
			}
			last := fig.Samples[len(fig.Samples)-1]
			fig.Seconds = last.AtSeconds
			fig.Syncs = last.Syncs - first.Syncs
			summarizeChurn(&fig, agent.idle, base.idle)
			return fig, nil
		case <-tick.C:
			if _, err := w.send(ctx, measuredKinds[fig.Events%len(measuredKinds)]); err != nil {
				return fig, err
			}
			fig.Events++
		case <-sampleTick.C:
			if err := sampleBoth(); err != nil {
				return fig, err
			}
			m := fig.Samples[len(fig.Samples)-1]
			r.logf("  churn %3.0fs: RSS %.1f MiB, heap in use %.1f MiB, %d events, %.0f syncs", m.AtSeconds, kib(m.RSSKiB), mib(m.HeapInuse), fig.Events, m.Syncs-first.Syncs)
		}
	}
}

func summarizeChurn(fig *ChurnFigures, idle, baseIdle IdleFigures) {
	// The second half: from the middle sample to the last, less the scrapes of the samples after the
	// middle one (not the idle rate: see SteadyBytesPerEvent).
	steady := func(samples []Memory, idle IdleFigures) float64 {
		n := len(samples)
		mid, last := samples[n/2], samples[n-1]
		return (last.AllocsBytes - mid.AllocsBytes - float64(n-1-n/2)*idle.ScrapeBytes) / float64(last.Events-mid.Events)
	}
	// CPU time over the same half, less the scrapes and the idle CPU rate.
	steadyCPU := func(samples []Memory, idle IdleFigures) *EventCPU {
		n := len(samples)
		mid, last := samples[n/2], samples[n-1]
		return cpuPerEvent(mid, last, idle, n-1-n/2, last.Events-mid.Events)
	}
	if n := len(fig.Samples); n >= 3 {
		if events := fig.Samples[n-1].Events - fig.Samples[n/2].Events; events > 0 {
			fig.SteadyEvents = events
			fig.SteadyBytesPerEvent = steady(fig.Samples, idle)
			fig.SteadyCPU = steadyCPU(fig.Samples, idle)
			if len(fig.BaselineSamples) == n {
				fig.SteadyBaselineBytesPerEvent = steady(fig.BaselineSamples, baseIdle)
				fig.SteadyBaselineCPU = steadyCPU(fig.BaselineSamples, baseIdle)
			}
		}
	}
	var xs, rss, heap []float64
	for _, s := range fig.Samples {
		xs = append(xs, s.AtSeconds/60)
		rss = append(rss, kib(s.RSSKiB))
		heap = append(heap, mib(s.HeapInuse))
		fig.RSSMaxKiB = max(fig.RSSMaxKiB, s.RSSKiB)
	}
	fig.RSSSlopeMiBPerMin = slope(xs, rss)
	fig.HeapSlopeMiBPerMin = slope(xs, heap)
	fig.RSSFirstKiB = fig.Samples[0].RSSKiB
	fig.RSSLastKiB = fig.Samples[len(fig.Samples)-1].RSSKiB
}

// slope is the least-squares slope of ys over xs.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func kib(v int64) float64   { return float64(v) / 1024 }
func mib(v float64) float64 { return v / (1 << 20) }
