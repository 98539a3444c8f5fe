package main

// The pure parts of the benchmark: when a transition counts as settled, the probe grid, the
// histograms read from the agent, percentiles, and the cluster's shape. The lab itself runs only in
// `hack/bench/latency.sh` (root, kube-apiserver and etcd, minutes).

import (
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// probesAt builds probes starting at the given milliseconds after t0 with the given verdicts.
func probesAt(verdicts string, startsMs ...float64) []probe {
	var out []probe
	for i, v := range verdicts {
		start := t0.Add(time.Duration(startsMs[i] * float64(time.Millisecond)))
		out = append(out, probe{start: start, end: start.Add(time.Millisecond), ok: v == '+'})
	}
	return out
}

func TestSettled(t *testing.T) {
	tests := []struct {
		name      string
		verdicts  string
		want      bool
		confirm   int
		wantOK    bool
		wantFirst int
		wantFlaps int
	}{
		{name: "not yet", verdicts: "+++--", want: false, confirm: 3},
		{name: "settled", verdicts: "+++---", want: false, confirm: 3, wantOK: true, wantFirst: 3},
		{name: "a flap before settling", verdicts: "+-+---", want: false, confirm: 3, wantOK: true, wantFirst: 3, wantFlaps: 1},
		{name: "allowed again", verdicts: "--+++", want: true, confirm: 3, wantOK: true, wantFirst: 2},
		{name: "already settled at the write", verdicts: "----", want: false, confirm: 3, wantOK: true, wantFirst: 0},
		{name: "nothing yet", verdicts: "", want: true, confirm: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			starts := make([]float64, len(tt.verdicts))
			for i := range starts {
				starts[i] = float64(i)
			}
			first, flaps, ok := settled(probesAt(tt.verdicts, starts...), tt.want, tt.confirm)
			if ok != tt.wantOK || (ok && (first != tt.wantFirst || flaps != tt.wantFlaps)) {
				t.Errorf("settled = %d, %d, %v; want %d, %d, %v", first, flaps, ok, tt.wantFirst, tt.wantFlaps, tt.wantOK)
			}
		})
	}
}

func TestObserve(t *testing.T) {
	// Allowed probes every millisecond until the rule lands between 12 and 13 ms.
	probes := probesAt("++---", 10, 12, 13, 14, 15)
	issued, returned := t0.Add(9*time.Millisecond), t0.Add(11*time.Millisecond)
	first, flaps, ok := settled(probes, false, 3)
	if !ok {
		t.Fatal("not settled")
	}
	o := observe(probes, first, flaps, issued, returned)
	if o.Latency != 2*time.Millisecond || o.Bracket != time.Millisecond {
		t.Errorf("observe = %+v; want latency 2ms, bracket 1ms", o)
	}
	// Enforced before the call returned: a negative latency, bracketed from the call's start.
	probes = probesAt("---", 10, 12, 13)
	first, flaps, _ = settled(probes, false, 3)
	o = observe(probes, first, flaps, issued, returned)
	if o.Latency != -time.Millisecond || o.Bracket != time.Millisecond {
		t.Errorf("observe = %+v; want latency -1ms, bracket 1ms", o)
	}
}

func TestNextSlot(t *testing.T) {
	interval := time.Millisecond
	tests := []struct {
		nowMs, worker int
		wantMs        int
	}{
		{nowMs: 0, worker: 0, wantMs: 0},
		{nowMs: 0, worker: 3, wantMs: 3},
		{nowMs: 1, worker: 0, wantMs: 4},
		{nowMs: 4, worker: 0, wantMs: 4},
		{nowMs: 21, worker: 2, wantMs: 22}, // after a 20 ms timeout, the worker's next own slot
		{nowMs: 23, worker: 2, wantMs: 26},
	}
	for _, tt := range tests {
		got := nextSlot(t0, t0.Add(time.Duration(tt.nowMs)*interval), interval, 4, tt.worker)
		if want := t0.Add(time.Duration(tt.wantMs) * interval); !got.Equal(want) {
			t.Errorf("nextSlot(now=%dms, worker %d) = %v; want %dms", tt.nowMs, tt.worker, got.Sub(t0), tt.wantMs)
		}
	}
}

const scraped = `# HELP nftpolicy_programming_latency_seconds Time from ...
# TYPE nftpolicy_programming_latency_seconds histogram
nftpolicy_programming_latency_seconds_bucket{le="0.005"} 0
nftpolicy_programming_latency_seconds_bucket{le="0.01"} 2
nftpolicy_programming_latency_seconds_bucket{le="0.02"} 6
nftpolicy_programming_latency_seconds_bucket{le="+Inf"} 10
nftpolicy_programming_latency_seconds_sum 0.3
nftpolicy_programming_latency_seconds_count 10
nftpolicy_sync_duration_seconds_bucket{le="0.001"} 1
nftpolicy_sync_duration_seconds_bucket{le="+Inf"} 1
nftpolicy_sync_duration_seconds_sum 0.0005
nftpolicy_sync_duration_seconds_count 1
nftpolicy_isolated_pods 3
`

func TestParseHistograms(t *testing.T) {
	got, err := parseHistograms(strings.NewReader(scraped), programmingLatencyMetric, syncDurationMetric)
	if err != nil {
		t.Fatal(err)
	}
	h := got[programmingLatencyMetric]
	if h.Count != 10 || h.Sum != 0.3 || len(h.Buckets) != 4 || h.Buckets[3].LE != math.MaxFloat64 {
		t.Fatalf("programming latency = %+v", h)
	}
	if q := h.quantile(0.5); math.Abs(q-0.0175) > 1e-9 { // rank 5 of 2..6 in (0.01, 0.02]
		t.Errorf("median = %v; want 0.0175", q)
	}
	if q := h.quantile(0.99); q != 0.02 { // in +Inf: only "more than the last bound" is known
		t.Errorf("p99 = %v; want 0.02", q)
	}
	d := h.minus(histogram{Buckets: []bucket{{0.005, 0}, {0.01, 1}, {0.02, 1}, {math.MaxFloat64, 1}}, Sum: 0.01, Count: 1})
	if d.Count != 9 || d.Buckets[2].Count != 5 || math.Abs(d.Sum-0.29) > 1e-9 {
		t.Errorf("minus = %+v", d)
	}
	if s := got[syncDurationMetric]; s.Count != 1 {
		t.Errorf("sync duration = %+v", s)
	}
}

func TestSummarize(t *testing.T) {
	var values []float64
	for i := 100; i >= 1; i-- {
		values = append(values, float64(i))
	}
	s := summarize(values)
	if s.N != 100 || s.Min != 1 || s.Median != 50 || s.P90 != 90 || s.P99 != 99 || s.Max != 100 {
		t.Errorf("summarize(1..100) = %+v", s)
	}
	if s := summarize(values[:50]); s.P99 != 100 { // 51..100: the p99 of 50 samples is the maximum
		t.Errorf("p99 of 50 samples = %v; want the maximum 100", s.P99)
	}
}

func TestClusterSpec(t *testing.T) {
	spec, apiOnly := clusterSpec(1000, 2)
	refs := spec.PodRefs()
	if len(refs) != 2*realPodsPerNode || apiOnly != 1000-2*realPodsPerNode {
		t.Errorf("clusterSpec(1000, 2): %d lab pods, %d API-only", len(refs), apiOnly)
	}
	// The lab spreads pods round-robin in file order: target first on node 1, client second on node 2.
	if refs[0] != pairNamespace+"/"+targetName || refs[1] != pairNamespace+"/"+clientName {
		t.Errorf("first pods = %v", refs[:2])
	}
	if _, apiOnly := clusterSpec(100, 2); apiOnly != 0 {
		t.Errorf("clusterSpec(100, 2) has %d API-only pods", apiOnly)
	}
}
