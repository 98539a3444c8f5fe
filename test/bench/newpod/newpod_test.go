package main

// TestNewPodWindow brings real labs up (kube-apiserver and etcd from the setup cache, network
// namespaces, agents built from this checkout). It skips, saying why, when not run as root or when
// kube-apiserver and etcd are missing.

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// windowTestDelay is the lab kubelet's IP report delay in the test: long enough that the default
// mode's window is plain, short enough for a quick test.
const windowTestDelay = 300 * time.Millisecond

func windowTestConfig(t *testing.T) config {
	t.Helper()
	if reason := netlab.Unavailable(); reason != "" {
		t.Skip(reason)
	}
	cfg := config{
		trials: 2, probeTimeout: 20 * time.Millisecond, probeGap: 2 * time.Millisecond, workers: 4,
		quiet: 300 * time.Millisecond, trialTimeout: 20 * time.Second, assets: os.Getenv("KUBEBUILDER_ASSETS"),
		agentPath: filepath.Join(t.TempDir(), "nftpolicy"),
		log:       t.Logf,
	}
	build := exec.Command("go", "build", "-o", cfg.agentPath, "github.com/nftpolicy/nftpolicy/cmd/nftpolicy")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the agent: %v\n%s", err, out)
	}
	if reason := skipReason(&cfg); reason != "" {
		t.Skip(reason)
	}
	if _, err := os.Stat(filepath.Join(cfg.assets, "kube-apiserver")); err != nil {
		t.Skipf("no kube-apiserver in %s (set KUBEBUILDER_ASSETS or fill %s)", cfg.assets, lab.DefaultCacheDir)
	}
	return cfg
}

// Without the fail-closed mode a new pod is open, both ways, from its network being up until the
// agent has programmed it, which it cannot do before the kubelet reports the pod's IP. With it, no
// probe ever gets through a denied pair, and the allowed pair connects once the pod is programmed.
func TestNewPodWindow(t *testing.T) {
	cfg := windowTestConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	delayMs := ms(windowTestDelay)

	open, err := measureSeries(ctx, cfg, false, windowTestDelay)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range open.Trials {
		for name, pr := range map[string]pairResult{"denied peer -> new pod": tr.DeniedIngress, "new pod -> denied destination": tr.DeniedEgress} {
			// Open while the IP is unreported: probes got through up to the report, at least.
			if pr.LastReachedMs == nil || *pr.LastReachedMs < delayMs-50 {
				t.Errorf("default mode, trial %d, %s: last got through at %v ms, want the window to last until the IP report (%v ms): %+v",
					tr.Trial, name, pr.LastReachedMs, delayMs, pr)
			}
		}
		if tr.AllowedIngress.FirstReachedMs == nil {
			t.Errorf("default mode, trial %d: the allowed peer never connected", tr.Trial)
		}
	}

	closed, err := measureSeries(ctx, cfg, true, windowTestDelay)
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range closed.Trials {
		for name, pr := range map[string]pairResult{"denied peer -> new pod": tr.DeniedIngress, "new pod -> denied destination": tr.DeniedEgress} {
			if pr.Probes == 0 || pr.Reached != 0 {
				t.Errorf("fail-closed mode, trial %d, %s: %d of %d probes got through, want none (and some probes)", tr.Trial, name, pr.Reached, pr.Probes)
			}
		}
		// The pod gets its network once programmed, which needs its IP: never before the report.
		if first := tr.AllowedIngress.FirstReachedMs; first == nil || *first < delayMs {
			t.Errorf("fail-closed mode, trial %d: the allowed peer first connected at %v ms, want after the IP report (%v ms)", tr.Trial, first, delayMs)
		}
	}
}
