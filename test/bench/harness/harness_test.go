package harness

import (
	"strings"
	"testing"
	"time"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

func smallParams(pods, policies int) generator.Params {
	p := generator.Defaults(pods, policies, generator.DistinctSelectors)
	p.LocalPods, p.Namespaces = 20, 40
	return p
}

// TestEventCostIndependentOfScale is the unit-level check of measurement 2's goal: what an
// element-only event sends is bounded by what it changes (the sets it touches, the elements it adds
// or deletes), whatever the size of the cluster and the number of policies. The same rounds of events
// run against nftpolicy's fake backend at two scales, four times apart.
func TestEventCostIndependentOfScale(t *testing.T) {
	const (
		bytesPerElement = 160 // an element of a concatenated set renders in under 80 characters
		bytesPerOp      = 120 // "add element inet nftpolicy <set name> { }"
	)
	maxPerElement := map[int]float64{}
	for _, scale := range []struct{ pods, policies int }{{2000, 400}, {8000, 1600}} {
		c, err := generator.Generate(smallParams(scale.pods, scale.policies))
		if err != nil {
			t.Fatal(err)
		}
		pl := NewPipeline(c.Snapshot)
		m, rs := pl.Compile()
		TargetPeers(c, m)
		applier := nft.NewApplier(nft.NewFake(Table))
		if _, err := applier.Apply(rs, nft.FullChanges()); err != nil {
			t.Fatal(err)
		}
		changed, resized := 0, 0
		reached := map[generator.EventKind]int{}
		for range 8 {
			for _, kind := range generator.EventKinds {
				step, err := pl.Next(c, kind, applier.Committed())
				if err != nil {
					t.Fatal(err)
				}
				if err := pl.CheckModel(c); err != nil {
					t.Fatalf("P=%d: after %s: %v", scale.pods, step.Description, err)
				}
				res, err := applier.Apply(step.Ruleset, step.Changed)
				if err != nil {
					t.Fatalf("%s: %v", step.Description, err)
				}
				if res.Ops != step.Ops {
					t.Fatalf("%s: the applier sent %d operations, the measured diff has %d", step.Description, res.Ops, step.Ops)
				}
				if step.Ops > 0 {
					reached[kind]++
				}
				if !kind.ElementOnly() || step.Ops == 0 {
					continue
				}
				changed++
				ev := step.Event
				if ev.FullReplace {
					t.Errorf("P=%d: %s replaced the table", scale.pods, ev.Description)
				}
				if ev.ResizedSets > 0 {
					// A set outgrew its size: it is created again and the chains using it refilled.
					// Bounded by those chains, not by the cluster; rare (checked below).
					resized++
					continue
				}
				if ev.Rules > 0 {
					t.Errorf("P=%d: %s added rules", scale.pods, ev.Description)
				}
				if ev.Ops > 2*ev.SetsTouched {
					t.Errorf("P=%d: %s: %d operations for %d sets touched", scale.pods, ev.Description, ev.Ops, ev.SetsTouched)
				}
				if limit := bytesPerElement*ev.Elements + bytesPerOp*ev.Ops; ev.TextBytes > limit {
					t.Errorf("P=%d: %s: %d bytes for %d elements in %d operations (limit %d)", scale.pods, ev.Description, ev.TextBytes, ev.Elements, ev.Ops, limit)
				}
				maxPerElement[scale.pods] = max(maxPerElement[scale.pods], float64(ev.TextBytes)/float64(ev.Elements))
			}
		}
		for _, kind := range generator.EventKinds {
			if reached[kind] == 0 {
				t.Errorf("P=%d: no %s event reached the table", scale.pods, kind)
			}
		}
		if resized*5 > changed {
			t.Errorf("P=%d: %d of %d element-only events resized a set; sizes leave too little room", scale.pods, resized, changed)
		}
		if changed < 8 {
			t.Errorf("P=%d: only %d element-only events reached the table; the events do not exercise it", scale.pods, changed)
		}
	}
	if small, large := maxPerElement[2000], maxPerElement[8000]; large > 1.5*small {
		t.Errorf("bytes per changed element grow with the cluster: %.0f at P=2000, %.0f at P=8000", small, large)
	}
}

func TestPercentiles(t *testing.T) {
	xs := []float64{5, 1, 4, 2, 3}
	if s := summarize(xs); s.Median != 3 || s.Min != 1 || s.Max != 5 || s.N != 5 {
		t.Errorf("summarize = %+v", s)
	}
	if got := summarize([]float64{4, 1, 3, 2}).Median; got != 2.5 {
		t.Errorf("median of an even count = %v, want 2.5", got)
	}
	var hundred []float64
	for i := 1; i <= 100; i++ {
		hundred = append(hundred, float64(i))
	}
	if got := percentileOf(hundred, 99); got != 99 {
		t.Errorf("p99 of 1..100 = %v, want 99", got)
	}
	if r := ratios([]float64{2, 4}, []float64{1, 1}); r.Median != 3 {
		t.Errorf("ratios = %+v", r)
	}
}

// TestReportStatesMissedGoals renders a run whose figures miss some goals and meet others.
func TestReportStatesMissedGoals(t *testing.T) {
	cSync := 300.0
	r := &Run{
		Started: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Finished: time.Date(2026, 1, 1, 0, 10, 0, 0, time.UTC),
		Params: generator.Defaults(50000, 10000, generator.DistinctSelectors),
		Config: Config{IPTablesRestore: "iptables-restore"},
		Full: []FullScale{
			{Pods: 50000, ResolveMS: []float64{60}, Backends: []FullBackend{
				{Backend: BackendA, CompileMS: []float64{10}, ProgramMS: []float64{1490}, Elements: 100, SysMS: []float64{900}},
				{Backend: BackendAFixed, CompileMS: []float64{10}, ProgramMS: []float64{490}, SysMS: []float64{300}},
				{Backend: BackendB, CompileMS: []float64{10}, ProgramMS: []float64{9990}},
				{Backend: BackendC, CompileMS: []float64{10}, ProgramMS: []float64{490}},
			}},
			{Pods: 25000, ResolveMS: []float64{30}, Backends: []FullBackend{
				{Backend: BackendA, CompileMS: []float64{5}, ProgramMS: []float64{995}, Elements: 50, SysMS: []float64{600}},
				{Backend: BackendAFixed, CompileMS: []float64{5}, ProgramMS: []float64{495}, SysMS: []float64{300}},
			}},
		},
		Probe: &ProbeResult{Resyncs: 3, Sent: 100, Received: 100, DeniedBefore: true},
		Incr: &Incremental{Events: []Event{
			{Kind: generator.PodAdd, ApplyMS: 1, Ops: 1, Elements: 1, SetsTouched: 1, TextBytes: 60, CSyncMS: &cSync, CBytes: 60000},
		}},
	}
	out := Report(r, "run.json")
	for _, want := range []string{
		"| 1. full programming (P=50000, N=10000, L=110) at most 1 s | A: 1500",
		"**missed**",
		"B-naive-nftables/A = 6.67x",
		"| 1. no packet of an allowed established flow lost during a full resync | 0 lost of 100 over 3 resyncs | met |",
		"C/A = 1000x",
		"3. per-packet cost",
		// The split of A's time: fixed 10 + 490 ms and 1000 ms for 100 elements at P=50000 (10000 µs
		// each, 6000 of them kernel CPU); at P=25000 fixed 500 ms, 500 ms for 50 elements, and the
		// goal's bound F/4 = 125 ms.
		"at P=50000 a fixed part of 500 ms (compile 10 + programming the empty sets, chains and rules 490; kernel CPU 300 ms) and 1000 ms for 100 elements (10000 µs each, 6000 µs of it kernel CPU)",
		"at P=25000, fixed 500 ms and 500 ms for 50 elements (10000 µs each, 6000 µs kernel CPU)",
		"at most 1.2x only while V <= F / 4: at P=25000 that is V <= 125 ms, against 500 ms measured.",
		// The kernel's part at P=25000: 50 elements at 6000 µs, 300 ms; the fixed part it asks, 4x that.
		"The kernel's CPU time for the elements alone is 300 ms there: even with nothing per element in user space, the former 1.2x growth goal would need a fixed part of at least 1200 ms, against 500 ms.",
		// The restated goal: 10000 µs per element against the kernel's 6000 µs, 1.67x.
		"A 10000 µs per set element against the kernel's 6000 µs of CPU per element: 1.67x; growth when P doubles (50000/25000 pods) 1.50x [1.50, 1.50], a figure | **missed**",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "**missed**") != 3 { // 1 s, 2x against C, 1.67x the kernel's CPU per element
		t.Errorf("want 3 missed goals:\n%s", out)
	}
}
