package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/pprof/profile"
)

// writeHeapProfile writes a heap profile whose samples allocated bytes[i] under the stack stacks[i]
// (innermost frame first).
func writeHeapProfile(t *testing.T, path string, stacks [][]string, bytes []int64) {
	t.Helper()
	p := &profile.Profile{
		SampleType: []*profile.ValueType{{Type: "alloc_objects", Unit: "count"}, {Type: "alloc_space", Unit: "bytes"}},
		PeriodType: &profile.ValueType{Type: "space", Unit: "bytes"},
		Period:     512 * 1024,
	}
	functions := map[string]*profile.Function{}
	for i, stack := range stacks {
		s := &profile.Sample{Value: []int64{1, bytes[i]}}
		for _, name := range stack {
			fn, ok := functions[name]
			if !ok {
				fn = &profile.Function{ID: uint64(len(functions) + 1), Name: name}
				functions[name] = fn
				p.Function = append(p.Function, fn)
			}
			loc := &profile.Location{ID: uint64(len(p.Location) + 1), Line: []profile.Line{{Function: fn}}}
			p.Location = append(p.Location, loc)
			s.Location = append(s.Location, loc)
		}
		p.Sample = append(p.Sample, s)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := p.Write(f); err != nil {
		t.Fatal(err)
	}
}

func TestAllocBreakdownAttributesTheGrowthBetweenProfiles(t *testing.T) {
	dir := t.TempDir()
	netlinkRead := []string{"github.com/mdlayher/netlink.(*Conn).Receive", "github.com/google/nftables.(*Conn).Flush", "github.com/nftpolicy/nftpolicy/nft.(*NetlinkBackend).Run", "github.com/nftpolicy/nftpolicy/controllers.(*NodeReconciler).sync"}
	status := []string{"golang.org/x/net/http2.(*Framer).WriteData", "github.com/nftpolicy/nftpolicy/controllers.(*NodeReconciler).writeStatus"}
	decode := []string{"k8s.io/api/core/v1.(*Pod).Unmarshal", "k8s.io/apimachinery/pkg/watch.(*StreamWatcher).receive"}
	scrape := []string{"github.com/prometheus/client_golang/prometheus.(*Registry).Gather", "github.com/prometheus/client_golang/prometheus/promhttp.HandlerForTransactional.func1", "net/http.(*conn).serve"}
	collect := []string{"github.com/prometheus/procfs.Proc.Stat", "github.com/prometheus/client_golang/prometheus.(*Registry).Gather.func1"} // a scrape's collector goroutine
	unknown := []string{"main.somethingElse"}
	stacks := [][]string{netlinkRead, status, decode, scrape, collect, unknown}
	writeHeapProfile(t, filepath.Join(dir, "before"), stacks, []int64{1000, 500, 2000, 100, 0, 0})
	writeHeapProfile(t, filepath.Join(dir, "after"), stacks, []int64{5000, 900, 6000, 8100, 2000, 300})

	b, err := allocBreakdown(filepath.Join(dir, "before"), filepath.Join(dir, "after"), 4)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{ // growth / 4 events
		"netlink exchange: google/nftables and mdlayher/netlink (messages, acknowledgements, echoed rules)": 1000,
		"status write (server-side apply of NodeEnforcement status)":                                        100, // its HTTP/2 frames included
		"receiving events: watch decode":                                                                    1000,
		"serving metrics scrapes":                                                                           2500,
		otherPart:                                                                                           75,
	}
	if len(b.Parts) != len(want) {
		t.Fatalf("parts %+v, want %d", b.Parts, len(want))
	}
	for _, p := range b.Parts {
		if w, ok := want[p.Part]; !ok || p.BytesPerEvent != w {
			t.Errorf("%s: %v per event, want %v", p.Part, p.BytesPerEvent, w)
		}
		if p.Excluded != (p.Part == "serving metrics scrapes") {
			t.Errorf("%s: excluded %v", p.Part, p.Excluded)
		}
	}
	if b.Parts[len(b.Parts)-1].Part != otherPart {
		t.Errorf("other comes last: %+v", b.Parts)
	}
}
