package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseVariant(t *testing.T) {
	cases := map[string]Variant{
		"base:agent:bin=/tmp/nftpolicy-base": {Name: "base", Kind: "agent", Bin: "/tmp/nftpolicy-base"},
		"no-watchlist:baseline:env=KUBE_FEATURE_WatchListClient=false:arg=--transforms=managed-fields": {Name: "no-watchlist", Kind: "baseline",
			Env: []string{"KUBE_FEATURE_WatchListClient=false"}, Args: []string{"--transforms=managed-fields"}},
	}
	for in, want := range cases {
		got, err := parseVariant(in)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("parseVariant(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"base", "base:agents", "Base:agent", "base:agent:path=/tmp/x"} {
		if _, err := parseVariant(bad); err == nil {
			t.Errorf("parseVariant(%q) gave no error", bad)
		}
	}
}

func TestReportShowsAnotherBuildBesideTheAgent(t *testing.T) {
	run := makeRun(100, 1024)
	sc := &run.Scales[0]
	sc.Agent.AfterSync.CPUSeconds = 40
	sc.Variants = []VariantFigures{{
		Variant: Variant{Name: "base", Kind: "agent", Bin: "/tmp/nftpolicy-base"},
		Figures: ProcessFigures{InitialList: "streamed", ReadySeconds: 30, AfterSync: Memory{RSSKiB: 130 << 10, PeakKiB: 160 << 10, LiveHeap: 80 << 20, CPUSeconds: 55.5, GCCycles: 12}},
	}}
	out := report(run, "run.json")
	// The main agent: 100 MiB RSS, 50 MiB live heap, 40 CPU s.
	want := "| 50000 | base | agent | binary `/tmp/nftpolicy-base` | streamed | 30.0 | 55.5 | 12 | 130.0 | 160.0 | 0.0 | 80.0 | +30.0 MiB | +30.0 MiB | +15.5 |"
	if !strings.Contains(out, want) {
		t.Errorf("the report lacks the variant's row %q:\n%s", want, out)
	}
}
