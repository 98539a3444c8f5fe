// Command latency measures end-to-end enforcement latency in the lab (issue 5, measurement 5): from a
// write at the API server (a NetworkPolicy created or deleted, a pod label changed) to the first probe
// that sees the new verdict, with a continuous TCP probe stream from a client pod to a target pod on
// another node. Each size gets its own lab: a real kube-apiserver and etcd, two node namespaces with an
// agent each, and the pods. It writes one JSON file per run and renders bench/LATENCY.md from it.
//
//	latency -agent bin/nftpolicy -sizes 250,1000 -trials 60 -out bench/runs/latency-TIMESTAMP.json -md bench/LATENCY.md
//	latency -report bench/runs/latency-TIMESTAMP.json -md bench/LATENCY.md
//
// It needs root (network namespaces) and kube-apiserver and etcd (hack/build-k8s.sh); without
// them it says so and exits 0, so that `make bench` skips it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/test/bench/harness"
)

type config struct {
	sizes             []int
	nodes             int
	trials            int
	probeTimeout      time.Duration
	probeInterval     time.Duration
	probers           int
	confirm           int
	settle            time.Duration
	transitionTimeout time.Duration
	floorDuration     time.Duration
	nice              int
	agentPath         string
	assets            string
}

func main() {
	if err := mainErr(); err != nil {
		fmt.Fprintln(os.Stderr, "latency:", err)
		os.Exit(1)
	}
}

func mainErr() error {
	var cfg config
	sizes := flag.String("sizes", "250,1000", "pods in the cluster, one lab per size, comma-separated")
	flag.IntVar(&cfg.nodes, "nodes", 2, "nodes, each with an agent")
	flag.IntVar(&cfg.trials, "trials", 60, "trials per size; each times the four kinds of change once")
	flag.DurationVar(&cfg.probeTimeout, "probe-timeout", 20*time.Millisecond, "TCP connect timeout of one probe")
	flag.DurationVar(&cfg.probeInterval, "probe-interval", time.Millisecond, "gap between probe starts while the pair is allowed")
	flag.IntVar(&cfg.probers, "probers", 4, "concurrent probe workers; while blocked a probe starts every probe-timeout/probers")
	flag.IntVar(&cfg.confirm, "confirm", 5, "consecutive probes of the new verdict that end a transition")
	flag.DurationVar(&cfg.settle, "settle", 200*time.Millisecond, "pause after each transition (plus up to half of it at random)")
	flag.DurationVar(&cfg.transitionTimeout, "transition-timeout", 10*time.Second, "a transition not seen within this is a timeout")
	flag.DurationVar(&cfg.floorDuration, "floor", 3*time.Second, "steady-state probing per verdict for the floor")
	flag.IntVar(&cfg.nice, "nice", -10, "nice value of this process's threads once the lab is up, so that the probe loop is not starved (0: unchanged)")
	flag.StringVar(&cfg.agentPath, "agent", "bin/nftpolicy", "the nftpolicy binary the agents run")
	flag.StringVar(&cfg.assets, "assets", os.Getenv("KUBEBUILDER_ASSETS"), "directory of kube-apiserver and etcd (default: the newest in "+lab.DefaultCacheDir+")")
	out := flag.String("out", "", "JSON file to write (default bench/runs/latency-TIMESTAMP.json)")
	md := flag.String("md", "bench/LATENCY.md", "markdown report to write; empty: none")
	reportOnly := flag.String("report", "", "render -md from this JSON file instead of running")
	flag.Parse()

	if *reportOnly != "" {
		var r run
		if err := harness.ReadJSON(*reportOnly, &r); err != nil {
			return err
		}
		return writeReport(&r, *reportOnly, *md)
	}

	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			return fmt.Errorf("size %q: want a pod count of at least 2", s)
		}
		cfg.sizes = append(cfg.sizes, n)
	}
	if reason := skipReason(&cfg); reason != "" {
		fmt.Println("latency benchmark skipped:", reason)
		return nil
	}

	// The lab's envtest logs through controller-runtime; its progress lines come through -Log instead.
	ctrllog.SetLogger(logr.Discard())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r := &run{Started: time.Now().UTC(), Machine: harness.DescribeMachine("iptables-restore"), Config: cfg.json()}
	for _, size := range cfg.sizes {
		logf("size %d: starting", size)
		res, err := runSize(ctx, cfg, size)
		if err != nil {
			return fmt.Errorf("size %d: %w", size, err)
		}
		r.Sizes = append(r.Sizes, res)
	}
	r.Finished = time.Now().UTC()
	if *out == "" {
		*out = filepath.Join("bench", "runs", "latency-"+r.Started.Format("20060102T150405Z")+".json")
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

func (c config) json() configJSON {
	return configJSON{
		Nodes: c.nodes, Trials: c.trials,
		ProbeTimeoutMs: ms(c.probeTimeout), ProbeIntervalMs: ms(c.probeInterval), Probers: c.probers,
		Confirm: c.confirm, SettleMs: ms(c.settle), TransitionTimeout: c.transitionTimeout.Seconds(),
		FloorS: c.floorDuration.Seconds(), Nice: c.nice,
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, time.Now().Format("15:04:05 ")+format+"\n", args...)
}

// prefixed is a writer for the lab's progress lines.
func prefixed(prefix string) io.Writer { return prefixWriter(prefix) }

type prefixWriter string

func (p prefixWriter) Write(b []byte) (int, error) {
	if _, err := fmt.Fprint(os.Stderr, time.Now().Format("15:04:05 ")+string(p)+string(b)); err != nil {
		return 0, err
	}
	return len(b), nil
}
