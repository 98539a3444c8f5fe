package packet

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// TestMeasureSmall runs the whole measurement on a small cluster with short runs: four nodes in real
// network namespaces, every table programmed, every workload passing, the lab removed afterwards.
func TestMeasureSmall(t *testing.T) {
	if reason := netlab.Unavailable(); reason != "" {
		t.Skip(reason)
	}
	if testing.Short() {
		t.Skip("sends real traffic for a few seconds")
	}
	o := DefaultOptions()
	o.Params = generator.Defaults(2000, 400, generator.DistinctSelectors)
	o.Rounds, o.CRRSeconds, o.StreamSeconds, o.UDPSeconds, o.PauseMS = 2, 0.3, 0.3, 0.3, 10
	o.Log = t.Logf
	r, err := Measure(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Tables) != 4 || len(r.Order) != 2 {
		t.Fatalf("want 4 tables and 2 rounds, got %d and %d", len(r.Tables), len(r.Order))
	}
	for _, tb := range r.Tables {
		s := r.Summary[tb.Name]
		if s.CRRPerSecond.N != 2 || s.CRRPerSecond.Min <= 0 || s.StreamGbps.Min <= 0 || s.UDPPerSecond.Min <= 0 {
			t.Errorf("%s: figures %+v", tb.Name, s)
		}
		if s.CRRFailures != 0 {
			t.Errorf("%s: %d failed connections", tb.Name, s.CRRFailures)
		}
	}
	if !strings.Contains(Report(r, "test"), "## Goals of the issue") {
		t.Error("the report has no goals")
	}
	// Measure removes its lab: no namespace of this process is left.
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), fmt.Sprintf("%s%d-", netlab.DefaultPrefix, os.Getpid())) {
			t.Errorf("namespace %s left behind", e.Name())
		}
	}
}
