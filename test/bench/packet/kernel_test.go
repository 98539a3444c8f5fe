package packet

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
)

// TestMeasureSmall runs the whole measurement on a small cluster with short runs: five nodes in real
// network namespaces, every table programmed, every workload passing, the logging table's records
// read, the lab removed afterwards.
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
	if len(r.Tables) != 5 || len(r.Order) != 2 {
		t.Fatalf("want 5 tables and 2 rounds, got %d and %d", len(r.Tables), len(r.Order))
	}
	// The logging table's reader read records of allowed connections (level all) and of the check's
	// connection to a port without policy (a default deny).
	logged := r.LogTotals["A-400-log"]
	if logged.Allowed == 0 || logged.Denied == 0 || len(r.Figures[3].Log) != 2 {
		t.Errorf("drop log of A-400-log: %+v, per round %+v", logged, r.Figures[3].Log)
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
