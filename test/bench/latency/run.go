package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// The four changes of a trial, in order. Each starts from the verdict the previous one left.
const (
	kindCreate = "policy-create" // the pair goes from allowed to blocked
	kindGrant  = "label-grant"   // the client gains access=granted: blocked to allowed
	kindRevoke = "label-revoke"  // the client loses it: allowed to blocked
	kindDelete = "policy-delete" // the pair goes from blocked to allowed
)

var kinds = []string{kindCreate, kindGrant, kindRevoke, kindDelete}

// change is one kind of write and the verdict the pair has once it is enforced.
type change struct {
	kind    string
	allowed bool
	write   func(ctx context.Context) error
	// seen matches the benchmark's own watch event of the write.
	seen func(watchEvent) bool
}

// sizeRun is one lab of one size.
type sizeRun struct {
	cfg     config
	lab     *lab.Lab
	prober  *prober
	events  *eventLog
	metrics lab.AgentState // the target node's agent, whose metrics are read
	// targetNetns is the target node's namespace, where its agent programs its table.
	targetNetns netlab.Netns
	agents      map[string]lab.AgentState
	result      *sizeResult
}

func runSize(ctx context.Context, cfg config, total int) (*sizeResult, error) {
	res := &sizeResult{Pods: total, Nodes: cfg.nodes, Trials: cfg.trials}
	begin := time.Now()
	l, err := lab.Start(ctx, lab.Options{Nodes: cfg.nodes, AgentPath: cfg.agentPath, AssetsDir: cfg.assets, DropLog: lab.DropLogOff, Log: prefixed("lab: ")})
	if err != nil {
		return nil, fmt.Errorf("starting the lab: %w", err)
	}
	defer func() {
		if err := l.Close(); err != nil {
			logf("removing the lab: %v", err)
		}
	}()
	// Cancelled before the lab closes: the watch would otherwise keep dialling a stopped API server.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res.Setup.LabStartS = time.Since(begin).Seconds()
	if cfg.nice != 0 {
		if err := reniceSelf(cfg.nice); err != nil {
			return nil, err
		}
	}
	r := &sizeRun{cfg: cfg, lab: l, result: res, agents: map[string]lab.AgentState{}}
	if err := r.setup(ctx, total); err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	proberDone := make(chan error, 1)
	go func() { proberDone <- r.prober.run(runCtx) }()

	err = r.measure(ctx)
	stop()
	return res, errors.Join(err, <-proberDone)
}

// setup creates the cluster, waits for the agents to settle and prepares the prober and the watch.
func (r *sizeRun) setup(ctx context.Context, total int) error {
	res, l := r.result, r.lab
	spec, apiOnly := clusterSpec(total, r.cfg.nodes)
	res.RealPods, res.APIOnlyPods = total-apiOnly, apiOnly
	logf("%d pods: creating %d pods with a network namespace", total, res.RealPods)
	begin := time.Now()
	if err := l.Setup(ctx, spec); err != nil {
		return fmt.Errorf("setting up %d pods: %w", res.RealPods, err)
	}
	res.Setup.RealPodsS = time.Since(begin).Seconds()
	if apiOnly > 0 {
		logf("%d pods: creating %d API-only pods on agentless nodes", total, apiOnly)
		begin = time.Now()
		if err := createAPIOnlyPods(ctx, l.Client(), res.RealPods, apiOnly, 8); err != nil {
			return err
		}
		res.Setup.APIOnlyPodsS = time.Since(begin).Seconds()
	}
	var background []*networkingv1.NetworkPolicy
	for k := range backgroundPolicies {
		background = append(background, backgroundPolicy(k))
	}
	if err := l.ApplyPolicies(ctx, background); err != nil {
		return err
	}
	res.BackgroundPolicies = len(background)

	var target, clientPod corev1.Pod
	if err := l.Client().Get(ctx, types.NamespacedName{Namespace: pairNamespace, Name: targetName}, &target); err != nil {
		return err
	}
	if err := l.Client().Get(ctx, types.NamespacedName{Namespace: pairNamespace, Name: clientName}, &clientPod); err != nil {
		return err
	}
	res.TargetNode, res.ClientNode = target.Spec.NodeName, clientPod.Spec.NodeName
	for _, a := range l.State().Agents {
		r.agents[a.Node] = a
	}
	for _, n := range l.State().Nodes {
		if n.Name == res.TargetNode {
			r.targetNetns = netlab.Netns{Name: filepath.Base(n.Netns), Path: n.Netns}
		}
	}
	r.metrics = r.agents[res.TargetNode]
	begin = time.Now()
	if err := r.waitQuiet(ctx); err != nil {
		return err
	}
	res.Setup.AgentsQuietS = time.Since(begin).Seconds()

	addr, err := l.PodIP(pairNamespace+"/"+targetName, scenario.IPv4)
	if err != nil {
		return err
	}
	path := clientPod.Annotations[lab.NetnsAnnotation]
	r.prober = newProber(netlab.Netns{Name: filepath.Base(path), Path: path}, netip.AddrPortFrom(addr, targetPort), r.cfg.probeTimeout, r.cfg.probeInterval, r.cfg.probers)

	restCfg, err := clientcmd.BuildConfigFromFlags("", l.Kubeconfig())
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return err
	}
	r.events = watchPair(ctx, cs)
	return nil
}

// quietFor is how long no agent may sync for the cluster to count as programmed.
const quietFor = 2 * time.Second

// waitQuiet waits until no agent has synced for quietFor: every pod and policy is programmed.
func (r *sizeRun) waitQuiet(ctx context.Context) error {
	deadline := time.Now().Add(3 * time.Minute)
	last, lastChange := -1.0, time.Now()
	for time.Now().Before(deadline) {
		syncs := 0.0
		for _, agent := range r.agents {
			h, err := scrapeHistograms(ctx, agent)
			if err != nil {
				return err
			}
			syncs += h[syncDurationMetric].Count
		}
		if syncs != last {
			last, lastChange = syncs, time.Now()
		} else if time.Since(lastChange) >= quietFor {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return errors.New("the agents kept syncing for 3 minutes after setup")
}

func (r *sizeRun) changes() []change {
	c := r.lab.Client()
	clientPod := &corev1.Pod{}
	clientPod.Namespace, clientPod.Name = pairNamespace, clientName
	patchLabel := func(value string) func(ctx context.Context) error {
		return func(ctx context.Context) error {
			patch := fmt.Sprintf(`{"metadata":{"labels":{%q:%s}}}`, accessLabel, value)
			return c.Patch(ctx, clientPod, client.RawPatch(types.MergePatchType, []byte(patch)))
		}
	}
	return []change{
		{
			kind: kindCreate, allowed: false,
			write: func(ctx context.Context) error { return c.Create(ctx, latencyPolicy()) },
			seen: func(e watchEvent) bool {
				return e.kind == "NetworkPolicy" && e.name == policyName && e.typ == "ADDED"
			},
		},
		{
			kind: kindGrant, allowed: true,
			write: patchLabel(`"` + accessGranted + `"`),
			seen:  func(e watchEvent) bool { return e.kind == "Pod" && e.typ == "MODIFIED" && e.granted },
		},
		{
			kind: kindRevoke, allowed: false,
			write: patchLabel("null"),
			seen:  func(e watchEvent) bool { return e.kind == "Pod" && e.typ == "MODIFIED" && !e.granted },
		},
		{
			kind: kindDelete, allowed: true,
			write: func(ctx context.Context) error { return c.Delete(ctx, latencyPolicy()) },
			seen: func(e watchEvent) bool {
				return e.kind == "NetworkPolicy" && e.name == policyName && e.typ == "DELETED"
			},
		},
	}
}

// measure runs the floor, then the trials, and reads the agents' histograms around the trials.
func (r *sizeRun) measure(ctx context.Context) error {
	res := r.result
	// The prober starts with the pair allowed.
	if err := r.waitVerdict(ctx, true); err != nil {
		return err
	}
	changes := r.changes()
	var err error
	if res.Floor.Allowed, err = r.floor(ctx, true); err != nil {
		return err
	}
	if _, err := r.transition(ctx, changes[0]); err != nil {
		return err
	}
	if res.Floor.Blocked, err = r.floor(ctx, false); err != nil {
		return err
	}
	if _, err := r.transition(ctx, changes[3]); err != nil {
		return err
	}

	before := map[string]map[string]histogram{}
	for node, agent := range r.agents {
		if before[node], err = scrapeHistograms(ctx, agent); err != nil {
			return err
		}
	}
	res.Kinds = map[string][]sample{}
	begin := time.Now()
	for trial := range r.cfg.trials {
		for _, ch := range changes {
			s, err := r.transition(ctx, ch)
			if err != nil {
				return fmt.Errorf("trial %d, %s: %w", trial, ch.kind, err)
			}
			res.Kinds[ch.kind] = append(res.Kinds[ch.kind], s)
		}
		if (trial+1)%10 == 0 {
			logf("%d pods: %d/%d trials done", res.Pods, trial+1, r.cfg.trials)
		}
	}
	res.TrialsS = time.Since(begin).Seconds()
	res.Agents = map[string]agentFigures{}
	for node, agent := range r.agents {
		after, err := scrapeHistograms(ctx, agent)
		if err != nil {
			return err
		}
		res.Agents[node] = agentFigures{
			ProgrammingLatency: after[programmingLatencyMetric].minus(before[node][programmingLatencyMetric]),
			SyncDuration:       after[syncDurationMetric].minus(before[node][syncDurationMetric]),
		}
	}
	return nil
}

// waitVerdict waits until the prober settles on allowed, with no write involved.
func (r *sizeRun) waitVerdict(ctx context.Context, allowed bool) error {
	since := time.Now()
	deadline := since.Add(r.cfg.transitionTimeout)
	for time.Now().Before(deadline) {
		if _, _, ok := settled(r.prober.completedSince(since), allowed, r.cfg.confirm); ok {
			return nil
		}
		if err := sleep(ctx, time.Millisecond); err != nil {
			return err
		}
	}
	return fmt.Errorf("the pair did not settle on allowed=%v within %s", allowed, r.cfg.transitionTimeout)
}

// transition makes one change and times it: write, probes until the new verdict holds for confirm
// probes in a row, then a settling pause, and the target agent's histograms around it all.
func (r *sizeRun) transition(ctx context.Context, ch change) (sample, error) {
	before, err := scrapeHistograms(ctx, r.metrics)
	if err != nil {
		return sample{}, err
	}
	issued := time.Now()
	if err := ch.write(ctx); err != nil {
		return sample{}, fmt.Errorf("writing %s: %w", ch.kind, err)
	}
	returned := time.Now()
	s := sample{CallMs: ms(returned.Sub(issued))}

	var (
		probes       []probe
		first, flaps int
		ok           bool
	)
	for {
		probes = r.prober.completedSince(issued)
		if first, flaps, ok = settled(probes, ch.allowed, r.cfg.confirm); ok {
			break
		}
		if time.Since(issued) > r.cfg.transitionTimeout {
			s.TimedOut = true
			break
		}
		if err := sleep(ctx, time.Millisecond); err != nil {
			return s, err
		}
	}
	if !s.TimedOut {
		o := observe(probes, first, flaps, issued, returned)
		s.LatencyMs, s.BracketMs, s.Flaps = ms(o.Latency), ms(o.Bracket), o.Flaps
		s.FromIssueMs = s.LatencyMs + s.CallMs
	}
	// Settle, a little irregularly so that trials do not fall into step with anything periodic.
	settleFrom := time.Now()
	if err := sleep(ctx, r.cfg.settle+rand.N(r.cfg.settle/2+1)); err != nil {
		return s, err
	}
	if s.TimedOut {
		// Later trials need the verdict this change asked for; without it the run is meaningless.
		if err := r.waitVerdict(ctx, ch.allowed); err != nil {
			return s, fmt.Errorf("after %s timed out: %w", ch.kind, err)
		}
	} else {
		for _, p := range r.prober.completedSince(settleFrom) {
			if p.ok != ch.allowed {
				s.Relapses++
			}
		}
	}
	if at, seen := r.events.first(issued, ch.seen); seen {
		v := ms(at.Sub(returned))
		s.WatchMs = &v
	}
	after, err := scrapeHistograms(ctx, r.metrics)
	if err != nil {
		return s, err
	}
	prog := after[programmingLatencyMetric].minus(before[programmingLatencyMetric])
	syncs := after[syncDurationMetric].minus(before[syncDurationMetric])
	s.Programmed = int(prog.Count)
	if prog.Count > 0 {
		v := prog.Sum / prog.Count * 1000
		s.ProgrammingMs = &v
	}
	s.Syncs = int(syncs.Count)
	if syncs.Count > 0 {
		v := syncs.Sum / syncs.Count * 1000
		s.SyncMs = &v
	}
	return s, nil
}

// floor probes the steady state for cfg.floorDuration: how long a probe takes, how far apart probes
// start (the resolution), and how often a probe shows the wrong verdict with nothing changing.
func (r *sizeRun) floor(ctx context.Context, allowed bool) (floorFigures, error) {
	from := time.Now()
	if err := sleep(ctx, r.cfg.floorDuration+r.cfg.probeTimeout*2); err != nil {
		return floorFigures{}, err
	}
	var durations, gaps []float64
	f := floorFigures{}
	var prev time.Time
	for _, p := range r.prober.completedSince(from) {
		if p.start.After(from.Add(r.cfg.floorDuration)) {
			break
		}
		f.Probes++
		if p.ok != allowed {
			f.WrongVerdicts++
		}
		if p.otherFailure {
			f.OtherFailures++
		}
		durations = append(durations, ms(p.end.Sub(p.start)))
		if !prev.IsZero() {
			gaps = append(gaps, ms(p.start.Sub(prev)))
		}
		prev = p.start
	}
	f.ProbeMs = summarize(durations)
	f.GapMs = summarize(gaps)
	err := r.targetNetns.Do(func() error {
		var err error
		f.TargetConntrack, err = conntrackCount()
		return err
	})
	return f, err
}

func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
