package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/selectors"
	"github.com/nftpolicy/nftpolicy/test/bench/generator"
	"github.com/nftpolicy/nftpolicy/test/bench/harness"
)

// Run is one run of the measurement, as written to bench/runs/memory-*.json.
type Run struct {
	Started  time.Time       `json:"started"`
	Seconds  float64         `json:"seconds"`
	Machine  harness.Machine `json:"machine"`
	Agent    string          `json:"agent"`
	Assets   string          `json:"assets"`
	Etcd     string          `json:"etcd"` // the etcd binary and its version
	Command  string          `json:"command"`
	Settings Settings        `json:"settings"`
	Scales   []Scale         `json:"scales"`
	Notes    []string        `json:"notes,omitempty"`
}

// Settings are the knobs of the run.
type Settings struct {
	Workers        int     `json:"workers"`
	SettleSeconds  float64 `json:"settleSeconds"`
	EventsPerKind  int     `json:"eventsPerKind"`
	ChurnSeconds   float64 `json:"churnSeconds"`
	ChurnRate      float64 `json:"churnEventsPerSecond"`
	SampleSeconds  float64 `json:"sampleSeconds"`
	IdleSeconds    float64 `json:"idleSeconds"`
	ChurnAllScales bool    `json:"churnAllScales"`
	// MemoryLimit is what the agent and the baseline got as --memory-limit ("" none), GOGC their
	// GOGC ("" Go's default).
	MemoryLimit string    `json:"memoryLimit"`
	GOGC        string    `json:"gogc,omitempty"`
	Variants    []Variant `json:"variants,omitempty"`
}

// Scale is everything measured at one cluster size.
type Scale struct {
	Params   generator.Params `json:"params"`
	Load     LoadFigures      `json:"load"`
	Baseline *ProcessFigures  `json:"baseline,omitempty"`
	Agent    *ProcessFigures  `json:"agent,omitempty"`
	Idle     *IdleFigures     `json:"idle,omitempty"`
	// BaselineIdle is the baseline's idle figures, measured over the same window as the agent's.
	BaselineIdle *IdleFigures     `json:"baselineIdle,omitempty"`
	Events       []EventFigures   `json:"events,omitempty"`
	Churn        *ChurnFigures    `json:"churn,omitempty"`
	Variants     []VariantFigures `json:"variants,omitempty"`
	InProcess    *InProcess       `json:"inProcess,omitempty"`
	// AllocBreakdown is where the agent's allocations went over every event of the scale.
	AllocBreakdown *AllocBreakdown `json:"allocBreakdown,omitempty"`
	Error          string          `json:"error,omitempty"`
}

// eventCount is how many events the agent of the scale received: every paced event and the churn.
func (sc *Scale) eventCount() int {
	n := 0
	for _, e := range sc.Events {
		n += e.Events
	}
	if sc.Churn != nil {
		n += sc.Churn.Events
	}
	return n
}

type runner struct {
	agentPath, assets, etcdPath, repoRoot, tmpfs, logDir string
	memoryLimit, gogc                                    string
	workers, eventsPerKind                               int
	settle, idle, churnFor, sampleEvery                  time.Duration
	readyTimeout                                         time.Duration
	churnRate                                            float64
	variants                                             []Variant
	scaleIndex                                           int
	// hold keeps each scale's loaded API server, unmeasured, until interrupted (profiling by hand).
	hold bool

	logMu sync.Mutex
	log   io.Writer // stderr and the run's log file
}

func (r *runner) logf(format string, args ...any) {
	r.logMu.Lock()
	defer r.logMu.Unlock()
	fmt.Fprintf(r.log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "baseline" {
		if err := runBaseline(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "baseline:", err)
			os.Exit(1)
		}
		return
	}
	// A run takes from minutes to most of an hour and is often left unattended: it must not die with
	// the terminal that started it (SIGHUP) or with a pipe its progress went to (SIGPIPE on stderr),
	// which would leave etcd, kube-apiserver and their data behind without a word. The progress also
	// goes to a log file.
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	// envtest logs through controller-runtime; the progress lines of this command are enough.
	ctrllog.SetLogger(logr.Discard())
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "memory:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("memory", flag.ContinueOnError)
	r := &runner{log: os.Stderr}
	scales := fs.String("scales", "25000:10000,50000:10000", "comma-separated pods:policies, measured in this order, one API server each")
	fs.StringVar(&r.agentPath, "agent", "bin/nftpolicy", "the agent binary")
	fs.StringVar(&r.assets, "assets", os.Getenv("KUBEBUILDER_ASSETS"), "directory with kube-apiserver and etcd")
	fs.StringVar(&r.etcdPath, "etcd", "", "the etcd binary (default: the one in --assets); etcd 3.5.13 or later lets informers stream their initial list")
	fs.StringVar(&r.repoRoot, "repo", ".", "repository root (for the CRDs and the DaemonSet's memory limit)")
	fs.StringVar(&r.tmpfs, "tmpfs", "/dev/shm", "where etcd keeps its data")
	fs.IntVar(&r.workers, "workers", 48, "concurrent writers while loading")
	fs.IntVar(&r.eventsPerKind, "events", 20, "events per kind for allocations per event")
	fs.DurationVar(&r.settle, "settle", 15*time.Second, "wait after ready before sampling")
	fs.DurationVar(&r.idle, "idle", 30*time.Second, "idle window for the background allocation rate")
	fs.DurationVar(&r.churnFor, "churn", 3*time.Minute, "churn run at the largest scale (the goal's is 30m); 0 skips it")
	fs.Float64Var(&r.churnRate, "churn-rate", 2, "churn events per second")
	fs.DurationVar(&r.sampleEvery, "sample", 10*time.Second, "churn sampling interval")
	fs.DurationVar(&r.readyTimeout, "ready-timeout", 10*time.Minute, "how long a process may take to sync")
	fs.StringVar(&r.memoryLimit, "memory-limit", "daemonset", `--memory-limit of the agent and the baseline: a quantity, "daemonset" (limits.memory of config/manager/manager.yaml) or "" (none)`)
	fs.StringVar(&r.gogc, "gogc", "daemonset", `GOGC of the agent and the baseline: a percentage, "daemonset" (the GOGC of config/manager/manager.yaml, if any) or "" (Go's default)`)
	fs.Func("variant", "an extra process measured after sync against the same API server, repeatable: NAME:agent|baseline[:bin=PATH][:env=K=V][:arg=ARG]...; e.g. base:agent:bin=/tmp/nftpolicy-base, another build of the agent", func(s string) error {
		v, err := parseVariant(s)
		r.variants = append(r.variants, v)
		return err
	})
	fs.BoolVar(&r.hold, "hold", false, "load each scale, print its kubeconfig and wait until interrupted instead of measuring it")
	churnAll := fs.Bool("churn-all-scales", false, "churn at every scale, not only the largest")
	var notes []string
	fs.Func("note", "a sentence for the report, repeatable (what the run measured, what changed since the last)", func(s string) error {
		notes = append(notes, s)
		return nil
	})
	outJSON := fs.String("json", "", "write the run here (default bench/runs/memory-TIMESTAMP.json)")
	outMD := fs.String("md", "bench/MEMORY.md", "write the report here")
	render := fs.String("render", "", "only re-render --md from this run's JSON (with --note: replacing its notes)")
	profiles := fs.String("profiles", "", "with --render: the run's log directory, to compute each scale's allocation breakdown from its profiles again")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *render != "" {
		b, err := os.ReadFile(*render)
		if err != nil {
			return err
		}
		var out Run
		if err := json.Unmarshal(b, &out); err != nil {
			return fmt.Errorf("reading %s: %w", *render, err)
		}
		if *profiles != "" { // the run's log directory: each scale's allocation breakdown, again
			for i := range out.Scales {
				sc := &out.Scales[i]
				path := func(what string) string { return filepath.Join(*profiles, fmt.Sprintf("%s-%d.heap.pb.gz", what, i)) }
				b, err := allocBreakdown(path("agent"), path("agent-late"), sc.eventCount())
				if err != nil {
					return fmt.Errorf("scale %d: %w", i, err)
				}
				sc.AllocBreakdown = b
			}
		}
		if len(notes) > 0 { // the notes given replace the run's
			out.Notes = notes
		}
		if len(notes) > 0 || *profiles != "" { // in its JSON too
			return write(&out, *render, *outMD)
		}
		return os.WriteFile(*outMD, []byte(report(&out, *render)), 0o644)
	}
	if r.assets == "" {
		return errors.New("set --assets or KUBEBUILDER_ASSETS")
	}
	if r.etcdPath == "" {
		r.etcdPath = filepath.Join(r.assets, "etcd")
	}
	sizes, err := parseScales(*scales)
	if err != nil {
		return err
	}
	if r.memoryLimit == "daemonset" || r.gogc == "daemonset" {
		deployed, err := daemonSetMemory(r.repoRoot)
		if err != nil {
			return err
		}
		if r.memoryLimit == "daemonset" {
			r.memoryLimit = deployed.limit
		}
		if r.gogc == "daemonset" {
			r.gogc = deployed.gogc
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	begin := time.Now().UTC()
	if *outJSON == "" {
		*outJSON = filepath.Join("bench", "runs", "memory-"+begin.Format("20060102T150405Z")+".json")
	}
	if r.logDir, err = os.MkdirTemp("", "nftpolicy-memory-logs-"); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(r.logDir, "memory.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	// A dead stderr (its pipe closed) must not stop the log file.
	r.log = io.MultiWriter(logFile, lenientWriter{os.Stderr})
	r.logf("logs of the run and of the measured processes in %s", r.logDir)
	out := &Run{Started: begin, Machine: harness.DescribeMachine("iptables-restore"), Agent: r.agentPath, Assets: r.assets,
		Etcd:    r.etcdPath + " (" + etcdVersion(r.etcdPath) + ")",
		Command: strings.Join(os.Args, " "),
		Settings: Settings{Workers: r.workers, SettleSeconds: r.settle.Seconds(), EventsPerKind: r.eventsPerKind,
			ChurnSeconds: r.churnFor.Seconds(), ChurnRate: r.churnRate, SampleSeconds: r.sampleEvery.Seconds(),
			IdleSeconds: r.idle.Seconds(), ChurnAllScales: *churnAll, MemoryLimit: r.memoryLimit, GOGC: r.gogc, Variants: r.variants},
		Notes: notes}
	for i, size := range sizes {
		r.scaleIndex = i
		churn := *churnAll || i == len(sizes)-1
		sc, err := r.measureScale(ctx, size[0], size[1], churn)
		if err != nil {
			sc.Error = err.Error()
			r.logf("scale P=%d N=%d failed: %v", size[0], size[1], err)
		}
		out.Scales = append(out.Scales, sc)
		out.Seconds = time.Since(begin).Seconds()
		if werr := write(out, *outJSON, *outMD); werr != nil {
			return werr
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	r.logf("wrote %s and %s in %s", *outJSON, *outMD, time.Since(begin).Round(time.Second))
	return nil
}

// lenientWriter ignores write errors: progress on a terminal that went away is not worth a failed run.
type lenientWriter struct{ w io.Writer }

func (l lenientWriter) Write(p []byte) (int, error) {
	_, _ = l.w.Write(p)
	return len(p), nil
}

func etcdVersion(path string) string {
	out, err := exec.Command(path, "--version").Output()
	if err != nil {
		return "version unknown: " + err.Error()
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(first)
}

func parseScales(s string) ([][2]int, error) {
	var out [][2]int
	for _, part := range strings.Split(s, ",") {
		p, n, ok := strings.Cut(part, ":")
		pods, err1 := strconv.Atoi(p)
		policies, err2 := strconv.Atoi(n)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("scale %q is not pods:policies", part)
		}
		out = append(out, [2]int{pods, policies})
	}
	return out, nil
}

// measureScale runs every phase at one cluster size against a fresh API server.
func (r *runner) measureScale(ctx context.Context, pods, policies int, churn bool) (Scale, error) {
	params := generator.Defaults(pods, policies, generator.DistinctSelectors)
	sc := Scale{Params: params}
	r.logf("P=%d N=%d: generating and starting the API server", pods, policies)
	c, err := generator.Generate(params)
	if err != nil {
		return sc, err
	}
	sc.InProcess = measureInProcess(c)
	r.logf("  in-process resolve + compile: %.1f MiB allocated per call, %.0f ms", mib(sc.InProcess.BytesPerCall), sc.InProcess.MillisPerCall)
	cp, err := startControlPlane(r.assets, r.etcdPath, r.repoRoot, r.tmpfs)
	if err != nil {
		return sc, err
	}
	defer func() {
		if err := cp.stop(); err != nil {
			r.logf("stopping the control plane: %v", err)
		}
	}()
	if sc.Load, err = load(ctx, cp.clientset, c, r.workers, r.logf); err != nil {
		return sc, err
	}
	r.logf("  loaded %d pods, %d policies in %.0fs (pods %.0fs, %.0f pods/s; %d writes repeated)", pods, policies,
		sc.Load.Seconds, sc.Load.PodSeconds, sc.Load.PodsPerSecond, sc.Load.Retries)
	if r.hold {
		r.logf("  holding the API server until interrupted: KUBECONFIG=%s", cp.kubeconfig)
		<-ctx.Done()
		return sc, ctx.Err()
	}

	bc, base, err := r.startBaseline(ctx, cp)
	if err != nil {
		return sc, fmt.Errorf("measuring the baseline: %w", err)
	}
	sc.Baseline = &base
	start := time.Now()
	err = r.measureAgent(ctx, cp, c, &sc, churn, bc)
	if late, lerr := bc.sampleLive(ctx, start, r.profilePath("baseline-late")); lerr == nil {
		sc.Baseline.Late = &late
		r.logf("  baseline late: RSS %.1f MiB, heap in use %.1f MiB, live heap %.1f MiB", kib(late.RSSKiB), mib(late.HeapInuse), mib(late.LiveHeap))
	}
	bc.stop()
	if err != nil {
		return sc, err
	}
	for _, v := range r.variants {
		fig, err := r.measureVariant(ctx, cp, c, v)
		if err != nil {
			return sc, fmt.Errorf("measuring variant %s: %w", v.Name, err)
		}
		sc.Variants = append(sc.Variants, fig)
	}
	return sc, nil
}

func (r *runner) profilePath(what string) string {
	return filepath.Join(r.logDir, fmt.Sprintf("%s-%d.heap.pb.gz", what, r.scaleIndex))
}

// agentSpec is the agent's command line against cp, programming netnsPath.
func (r *runner) agentSpec(name, bin string, cp *controlPlane, netnsPath string) childSpec {
	argv := []string{bin, "--node-name", generator.Node, "--kubeconfig", cp.kubeconfig, "--netns", netnsPath}
	if r.memoryLimit != "" && hasFlag(argv[:1], "memory-limit") {
		argv = append(argv, "--memory-limit", r.memoryLimit)
	}
	// The benchmark scrapes its child on the loopback over plain HTTP: a secure endpoint would
	// send a TokenReview and a SubjectAccessReview to the control plane being measured per scrape.
	if hasFlag(argv[:1], "metrics-secure") {
		argv = append(argv, "--metrics-secure=false")
	}
	return childSpec{name: name, argv: argv, env: r.gogcEnv()}
}

// gogcEnv is the environment that sets the measured processes' GOGC, if the run sets one.
func (r *runner) gogcEnv() []string {
	if r.gogc == "" {
		return nil
	}
	return []string{"GOGC=" + r.gogc}
}

// measureAgent starts the agent and measures it; the baseline bc, running all along, is sampled
// over the same event windows: what receiving and caching the events costs by itself.
func (r *runner) measureAgent(ctx context.Context, cp *controlPlane, c *generator.Cluster, sc *Scale, churn bool, bc *child) error {
	ns, err := addNetns(fmt.Sprintf("nftpolicy-mem-%d", os.Getpid()))
	if err != nil {
		return err
	}
	defer func() {
		if err := ns.remove(); err != nil {
			r.logf("%v", err)
		}
	}()
	if err := ns.addPodInterfaces(localPodAddrs(c)); err != nil {
		return err
	}
	a, err := startChild(r.agentSpec("agent", r.agentPath, cp, ns.path()), filepath.Join(r.logDir, fmt.Sprintf("agent-%d.log", r.scaleIndex)))
	if err != nil {
		return err
	}
	defer a.stop()
	begin := time.Now()
	fig, err := r.afterSync(ctx, a, cp, "agent", "nftpolicy agent ("+r.agentPath+") programming a fresh network namespace")
	if err != nil {
		return err
	}
	sc.Agent = &fig
	defer func() {
		if late, err := a.sampleLive(ctx, begin, r.profilePath("agent-late")); err == nil {
			sc.Agent.Late = &late
			r.logf("  agent late: RSS %.1f MiB, heap in use %.1f MiB, live heap %.1f MiB", kib(late.RSSKiB), mib(late.HeapInuse), mib(late.LiveHeap))
			if b, err := allocBreakdown(r.profilePath("agent"), r.profilePath("agent-late"), sc.eventCount()); err != nil {
				r.logf("  allocation breakdown: %s", err)
			} else {
				sc.AllocBreakdown = b
			}
		}
	}()

	var baseIdle IdleFigures
	var baseErr error
	baseDone := make(chan struct{})
	go func() {
		defer close(baseDone)
		baseIdle, baseErr = r.measureIdle(ctx, bc, r.idle)
	}()
	idle, err := r.measureIdle(ctx, a, r.idle)
	<-baseDone
	if err := errors.Join(err, baseErr); err != nil {
		return err
	}
	sc.Idle, sc.BaselineIdle = &idle, &baseIdle
	r.logf("  idle: %.1f KiB/s allocated, %.1f ms/s CPU, %.0f syncs; baseline %.1f KiB/s, %.1f ms/s CPU", idle.BytesPerSecond/1024, 1000*idle.CPUPerSecond.Total(), idle.Syncs,
		baseIdle.BytesPerSecond/1024, 1000*baseIdle.CPUPerSecond.Total())
	agent, base := observed{a, idle}, observed{bc, baseIdle}

	// Pace events well apart from one sync each: three times the mean sync so far, at least a second.
	gap := time.Second
	if m := fig.AfterSync; m.Syncs > 0 {
		gap = max(gap, time.Duration(3*float64(time.Second)*m.SyncSeconds/m.Syncs))
	}
	w := newEventWriter(cp.clientset, c)
	harness.TargetPeers(c, selectors.Resolve(c.Snapshot))
	// Two rounds of every kind, one after the other: two samples of the same events.
	for round := 1; round <= 2; round++ {
		for _, kind := range measuredKinds {
			ev, err := r.measureEvents(ctx, agent, base, w, kind, round, r.eventsPerKind, gap)
			if err != nil {
				return err
			}
			sc.Events = append(sc.Events, ev)
		}
	}
	if churn && r.churnFor > 0 {
		r.logf("  churn: %s at %.1f events/s, sampling every %s", r.churnFor, r.churnRate, r.sampleEvery)
		ch, err := r.churn(ctx, agent, base, w, r.churnFor, r.churnRate, r.sampleEvery)
		if err != nil {
			return err
		}
		sc.Churn = &ch
		r.logf("  churn: RSS %.1f -> %.1f MiB (max %.1f), slope %.2f MiB/min", kib(ch.RSSFirstKiB), kib(ch.RSSLastKiB), kib(ch.RSSMaxKiB), ch.RSSSlopeMiBPerMin)
	}
	return nil
}

// InProcess is the labelled complement: selectors.Resolve + nft.Compile of the generated snapshot in
// this process, the pure core of one sync without the cache list and the conversions before it.
type InProcess struct {
	Calls          int     `json:"calls"`
	BytesPerCall   float64 `json:"bytesPerCall"`
	ObjectsPerCall float64 `json:"objectsPerCall"`
	MillisPerCall  float64 `json:"millisPerCall"`
	// SnapshotBytes is the heap the selectors.Snapshot itself holds (measured by building it).
	SnapshotBytes float64 `json:"snapshotBytes"`
}

func measureInProcess(c *generator.Cluster) *InProcess {
	const calls = 3
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	start := time.Now()
	for range calls {
		m := selectors.Resolve(c.Snapshot)
		_ = nft.Compile(nft.CompileInput{Table: "nftpolicy", Model: m, Interfaces: harness.Interfaces(m)})
	}
	elapsed := time.Since(start)
	runtime.ReadMemStats(&after)
	ip := &InProcess{
		Calls:          calls,
		BytesPerCall:   float64(after.TotalAlloc-before.TotalAlloc) / calls,
		ObjectsPerCall: float64(after.Mallocs-before.Mallocs) / calls,
		MillisPerCall:  float64(elapsed.Milliseconds()) / calls,
	}
	runtime.GC()
	runtime.ReadMemStats(&before)
	again, _ := generator.Generate(c.Params)
	runtime.GC()
	runtime.ReadMemStats(&after)
	ip.SnapshotBytes = float64(after.HeapAlloc) - float64(before.HeapAlloc)
	runtime.KeepAlive(again)
	return ip
}

func write(out *Run, jsonPath, mdPath string) error {
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(jsonPath, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(mdPath, []byte(report(out, jsonPath)), 0o644)
}
