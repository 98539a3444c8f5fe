package main

// The measured cluster, in namespace newpod of a two-node lab:
//
//	newpod/stranger  node-2  role=stranger   serves TCP 80   the denied peer and the denied destination
//	newpod/friend    node-2  role=friend     serves TCP 80   the allowed peer
//	newpod/new-N     node-1  app=new         serves TCP 80   the new pod of trial N, added then deleted
//
// Policy newpod/isolate-new selects app=new for ingress and egress and admits role=friend only, both
// ways. Each trial adds new-N on node-1 and, from the moment its network is up (interface, addresses,
// routes), probes three pairs: stranger -> new-N (denied ingress), new-N -> stranger (denied egress) and
// friend -> new-N (allowed ingress). The new pod's agent is node-1's; its peers are remote.

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

const (
	namespace   = "newpod"
	port        = 80
	newPodNode  = "node-1"
	peersNode   = "node-2"
	policyName  = "isolate-new"
	strangerRef = namespace + "/stranger"
	friendRef   = namespace + "/friend"
)

// config is what one measurement does.
type config struct {
	agentPath, assets string
	delays            []time.Duration
	trials            int
	probeTimeout      time.Duration
	probeGap          time.Duration
	workers           int
	// quiet is how long the denied pairs must stay unreachable, after the allowed one connected, to
	// end a trial.
	quiet time.Duration
	// trialTimeout bounds a trial beyond its IP report delay.
	trialTimeout time.Duration
	log          func(format string, args ...any)
}

// pairResult is one probed pair of one trial, times in ms from the new pod's network being up.
type pairResult struct {
	Probes  int `json:"probes"`
	Reached int `json:"reached"`
	// FirstReachedMs and LastReachedMs are the ends of the first and last probes that reached the
	// destination; nil when none did.
	FirstReachedMs *float64 `json:"firstReachedMs,omitempty"`
	LastReachedMs  *float64 `json:"lastReachedMs,omitempty"`
}

// trialResult is one new pod.
type trialResult struct {
	Trial int `json:"trial"`
	// IPReportedMs is when the lab, as kubelet, had written the pod's IPs; DurationMs when probing
	// stopped.
	IPReportedMs float64 `json:"ipReportedMs"`
	DurationMs   float64 `json:"durationMs"`
	// DeniedIngress: stranger -> new pod; DeniedEgress: new pod -> stranger; AllowedIngress: friend ->
	// new pod.
	DeniedIngress  pairResult `json:"deniedIngress"`
	DeniedEgress   pairResult `json:"deniedEgress"`
	AllowedIngress pairResult `json:"allowedIngress"`
}

// series is every trial of one mode and delay, in one lab.
type series struct {
	FailClosed bool          `json:"failClosed"`
	DelayMs    float64       `json:"delayMs"`
	Trials     []trialResult `json:"trials"`
}

// isolateNew denies the new pods everything but role=friend, both ways.
func isolateNew() *networkingv1.NetworkPolicy {
	friend := []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"role": "friend"}}}}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: policyName},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "new"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: friend}},
			Egress:      []networkingv1.NetworkPolicyEgressRule{{To: friend}},
		},
	}
}

func servingPod(name string, labels map[string]string) scenario.Pod {
	return scenario.Pod{Name: name, Labels: labels, Ports: []scenario.Port{{Port: port, Protocol: scenario.ProtocolTCP}}}
}

// measureSeries brings a lab up with the mode and delay, and runs the trials on it.
func measureSeries(ctx context.Context, cfg config, failClosed bool, delay time.Duration) (s series, err error) {
	s = series{FailClosed: failClosed, DelayMs: ms(delay)}
	var networkUp atomic.Pointer[func(ref string, pod *netlab.Pod)]
	l, err := lab.Start(ctx, lab.Options{
		Nodes: 2, AgentPath: cfg.agentPath, AssetsDir: cfg.assets, AgentVerbosity: 1,
		FailClosed: failClosed, IPReportDelay: delay,
		// The DaemonSet's default, so that the figures compare with earlier runs.
		DropLog: lab.DropLogOff,
		OnPodNetworkUp: func(ref string, pod *netlab.Pod) {
			if f := networkUp.Load(); f != nil {
				(*f)(ref, pod)
			}
		},
	})
	if err != nil {
		return s, err
	}
	defer func() {
		if cerr := l.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if err := l.Setup(ctx, scenario.ClusterSpec{Namespaces: []scenario.Namespace{{Name: namespace}}}); err != nil {
		return s, err
	}
	if err := l.ApplyPolicies(ctx, []*networkingv1.NetworkPolicy{isolateNew()}); err != nil {
		return s, err
	}
	for _, p := range []scenario.Pod{servingPod("stranger", map[string]string{"role": "stranger"}), servingPod("friend", map[string]string{"role": "friend"})} {
		if err := l.AddPod(ctx, namespace, p, peersNode); err != nil {
			return s, err
		}
	}
	if err := l.WaitProgrammed(ctx); err != nil {
		return s, err
	}
	for i := range cfg.trials {
		tr, err := runTrial(ctx, cfg, l, &networkUp, i, delay)
		if err != nil {
			return s, fmt.Errorf("trial %d: %w", i, err)
		}
		cfg.log("fail-closed=%v delay=%v trial %d: denied ingress %s, denied egress %s, allowed ingress %s",
			failClosed, delay, i, describe(tr.DeniedIngress, false), describe(tr.DeniedEgress, false), describe(tr.AllowedIngress, true))
		s.Trials = append(s.Trials, tr)
	}
	return s, nil
}

// runTrial adds one new pod, probes its three pairs from the moment its network is up until the
// allowed pair connected and the denied ones stayed unreachable for cfg.quiet, then deletes it.
func runTrial(ctx context.Context, cfg config, l *lab.Lab, networkUp *atomic.Pointer[func(string, *netlab.Pod)], i int, delay time.Duration) (trialResult, error) {
	name := fmt.Sprintf("new-%d", i)
	ref := namespace + "/" + name
	stranger, err := l.PodIP(strangerRef, scenario.IPv4)
	if err != nil {
		return trialResult{}, err
	}
	strangerNs, friendNs, err := netnsOf(l, strangerRef, friendRef)
	if err != nil {
		return trialResult{}, err
	}

	probeCtx, stop := context.WithCancel(ctx)
	defer stop()
	var (
		wg                             sync.WaitGroup
		t0                             time.Time
		deniedIn, deniedOut, allowedIn *prober
		started                        = make(chan struct{})
	)
	hook := func(r string, pod *netlab.Pod) {
		if r != ref {
			return
		}
		t0 = time.Now()
		newAddr := netip.AddrPortFrom(pod.IPv4, port)
		mk := func(from netlab.Netns, dst netip.AddrPort) *prober {
			return &prober{from: from, dst: dst, t0: t0, timeout: cfg.probeTimeout, gap: cfg.probeGap}
		}
		deniedIn, deniedOut, allowedIn = mk(strangerNs, newAddr), mk(pod.Netns, netip.AddrPortFrom(stranger, port)), mk(friendNs, newAddr)
		for _, p := range []*prober{deniedIn, deniedOut, allowedIn} {
			p.run(probeCtx, cfg.workers, &wg)
		}
		close(started)
	}
	networkUp.Store(&hook)
	defer networkUp.Store(nil)

	err = l.AddPod(ctx, namespace, servingPod(name, map[string]string{"app": "new"}), newPodNode)
	select {
	case <-started:
	default:
		if err != nil {
			return trialResult{}, err
		}
		return trialResult{}, fmt.Errorf("adding %s: the network-up hook did not run", ref)
	}
	tr := trialResult{Trial: i, IPReportedMs: ms(time.Since(t0))}
	if err != nil {
		stop()
		wg.Wait()
		return tr, err
	}
	deadline := time.Now().Add(delay + cfg.trialTimeout)
	for {
		now := time.Since(t0)
		_, allowed := firstReached(allowedIn.snapshot())
		if allowed && quietFor(deniedIn.snapshot(), now, cfg.quiet) && quietFor(deniedOut.snapshot(), now, cfg.quiet) {
			break
		}
		if time.Now().After(deadline) {
			stop()
			wg.Wait()
			return tr, fmt.Errorf("%s not settled %v after its IP report delay: allowed pair connected %v; denied ingress %s, denied egress %s",
				ref, cfg.trialTimeout, allowed, describe(summarize(deniedIn.snapshot()), false), describe(summarize(deniedOut.snapshot()), false))
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop()
	wg.Wait()
	tr.DurationMs = ms(time.Since(t0))
	tr.DeniedIngress, tr.DeniedEgress, tr.AllowedIngress = summarize(deniedIn.snapshot()), summarize(deniedOut.snapshot()), summarize(allowedIn.snapshot())
	if err := l.DeletePod(ctx, ref); err != nil {
		return tr, err
	}
	return tr, l.WaitProgrammed(ctx)
}

// netnsOf returns the network namespaces of two lab pods, from their NetnsAnnotation.
func netnsOf(l *lab.Lab, a, b string) (netlab.Netns, netlab.Netns, error) {
	var out [2]netlab.Netns
	for i, ref := range []string{a, b} {
		ns, err := l.PodNetns(ref)
		if err != nil {
			return out[0], out[1], err
		}
		out[i] = ns
	}
	return out[0], out[1], nil
}

func summarize(results []probeResult) pairResult {
	pr := pairResult{Probes: len(results)}
	for _, r := range results {
		if r.reached {
			pr.Reached++
		}
	}
	if first, ok := firstReached(results); ok {
		v := ms(first)
		pr.FirstReachedMs = &v
	}
	if last, ok := lastReached(results); ok {
		v := ms(last)
		pr.LastReachedMs = &v
	}
	return pr
}

func describe(pr pairResult, allowed bool) string {
	switch {
	case pr.Reached == 0:
		return fmt.Sprintf("never reached (%d probes)", pr.Probes)
	case allowed:
		return fmt.Sprintf("first reached at %.1f ms (%d probes)", *pr.FirstReachedMs, pr.Probes)
	default:
		return fmt.Sprintf("reached %d of %d probes, the last at %.1f ms", pr.Reached, pr.Probes, *pr.LastReachedMs)
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
