// Command newpod measures the new-pod window in the lab (issue 14): how long a new pod that an existing
// policy isolates is reachable from a denied peer, and can reach a denied destination, counted from the
// moment its network is up (interface, addresses, routes) on its node. The lab plays kubelet and
// reports the pod's IPs after a delay, as a real kubelet and CNI take a while to; the agent learns
// about the pod from that report. Each delay is measured with the agents in the default mode and in
// the fail-closed mode (--pod-interface-prefix), each in a lab of its own, one after the other. It
// writes one JSON file per run and renders bench/NEWPOD.md from it.
//
//	newpod -agent bin/nftpolicy -delays 0,200ms,1s -trials 5 -out bench/runs/newpod-TIMESTAMP.json -md bench/NEWPOD.md
//	newpod -report bench/runs/newpod-TIMESTAMP.json -md bench/NEWPOD.md
//
// It needs root (network namespaces) and kube-apiserver and etcd (hack/build-k8s.sh); without
// them it says so and exits 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/test/bench/harness"
)

// run is one benchmark run, as written to the JSON file.
type run struct {
	Started  time.Time       `json:"started"`
	Finished time.Time       `json:"finished"`
	Command  string          `json:"command"`
	Machine  harness.Machine `json:"machine"`
	Config   configJSON      `json:"config"`
	Series   []series        `json:"series"`
}

type configJSON struct {
	Trials         int     `json:"trials"`
	ProbeTimeoutMs float64 `json:"probeTimeoutMs"`
	ProbeGapMs     float64 `json:"probeGapMs"`
	Workers        int     `json:"workersPerPair"`
	QuietMs        float64 `json:"quietMs"`
}

func main() {
	if err := mainErr(); err != nil {
		fmt.Fprintln(os.Stderr, "newpod:", err)
		os.Exit(1)
	}
}

func mainErr() error {
	cfg := config{log: logf}
	delays := flag.String("delays", "0,200ms,1s", "IP report delays of the lab's kubelet, comma-separated")
	flag.IntVar(&cfg.trials, "trials", 5, "new pods per mode and delay")
	flag.DurationVar(&cfg.probeTimeout, "probe-timeout", 20*time.Millisecond, "TCP connect timeout of one probe")
	flag.DurationVar(&cfg.probeGap, "probe-gap", 2*time.Millisecond, "pause of a worker between its probes")
	flag.IntVar(&cfg.workers, "workers", 4, "probe workers per pair, started a slot apart")
	flag.DurationVar(&cfg.quiet, "quiet", 300*time.Millisecond, "how long the denied pairs must stay unreachable to end a trial")
	flag.DurationVar(&cfg.trialTimeout, "trial-timeout", 15*time.Second, "a trial not settled this long after its delay fails the run")
	flag.StringVar(&cfg.agentPath, "agent", "bin/nftpolicy", "the nftpolicy binary the agents run")
	flag.StringVar(&cfg.assets, "assets", os.Getenv("KUBEBUILDER_ASSETS"), "directory of kube-apiserver and etcd (default: the newest in "+lab.DefaultCacheDir+")")
	out := flag.String("out", "", "JSON file to write (default bench/runs/newpod-TIMESTAMP.json)")
	md := flag.String("md", "bench/NEWPOD.md", "markdown report to write; empty: none")
	command := flag.String("command", "hack/bench/newpod.sh", "the command that reproduces the run, for the report")
	reportOnly := flag.String("report", "", "render -md from this JSON file instead of running")
	flag.Parse()

	if *reportOnly != "" {
		var r run
		if err := harness.ReadJSON(*reportOnly, &r); err != nil {
			return err
		}
		return writeReport(&r, *reportOnly, *md)
	}
	for _, s := range strings.Split(*delays, ",") {
		s = strings.TrimSpace(s)
		if s == "0" {
			s = "0s"
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return fmt.Errorf("delay %q: want a duration such as 200ms", s)
		}
		cfg.delays = append(cfg.delays, d)
	}
	if reason := skipReason(&cfg); reason != "" {
		fmt.Println("new-pod window benchmark skipped:", reason)
		return nil
	}

	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &run{Started: time.Now().UTC(), Command: *command, Machine: harness.DescribeMachine("iptables-restore"), Config: configJSON{
		Trials: cfg.trials, ProbeTimeoutMs: ms(cfg.probeTimeout), ProbeGapMs: ms(cfg.probeGap), Workers: cfg.workers, QuietMs: ms(cfg.quiet),
	}}
	for _, delay := range cfg.delays {
		for _, failClosed := range []bool{false, true} {
			logf("delay %v, fail-closed %v: starting a lab", delay, failClosed)
			s, err := measureSeries(ctx, cfg, failClosed, delay)
			if err != nil {
				return fmt.Errorf("delay %v, fail-closed %v: %w", delay, failClosed, err)
			}
			r.Series = append(r.Series, s)
		}
	}
	r.Finished = time.Now().UTC()
	if *out == "" {
		*out = filepath.Join("bench", "runs", "newpod-"+r.Started.Format("20060102T150405Z")+".json")
	}
	if err := harness.WriteJSON(*out, r); err != nil {
		return err
	}
	logf("wrote %s", *out)
	return writeReport(r, *out, *md)
}

// skipReason says why the benchmark cannot run here, filling in the assets directory.
func skipReason(cfg *config) string {
	return harness.LabUnavailable(&cfg.assets, &cfg.agentPath)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}
