// Package controllers is the shell around nftpolicy's pure core: it watches pods, namespaces and
// NetworkPolicies, and on every change syncs this node's whole table in one step —
// cache -> selectors.Snapshot -> selectors.Resolve -> nft.Compile -> nft.Applier (one transaction) —
// then reports the outcome on the node's NodeEnforcement, in Events and in metrics.
//
// The sync is level-triggered: it never looks at what changed, only at the world as the cache holds
// it, so a missed or coalesced event costs nothing but latency.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/klog/v2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/recorder"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// DefaultResyncPeriod is how often an idle agent re-syncs and refreshes its status.
const DefaultResyncPeriod = 10 * time.Minute

// NodeReconciler programs one node's table from the whole cluster's pods, namespaces and policies.
type NodeReconciler struct {
	// Client reads from the manager's cache and writes NodeEnforcements.
	Client client.Client
	// APIReader reads the Node, uncached.
	APIReader client.Reader
	// Recorder reports policy problems as Events on the NetworkPolicy.
	Recorder recorder.EventRecorder

	NodeName string
	Table    string
	// Applier commits rulesets, one transaction each, sending only what changed.
	Applier *nft.Applier
	// Interfaces finds the host interface of each local pod address, for anti-spoofing. Nil: none.
	Interfaces nft.InterfaceResolver
	// Conntrack ends tracked connections that a committed ruleset no longer allows. Nil: none.
	Conntrack nft.ConntrackCleaner
	// ResyncPeriod defaults to DefaultResyncPeriod.
	ResyncPeriod time.Duration

	changes  changeClock
	problems problemReporter
	synced   atomic.Bool
	// cleanupPending is set when a committed ruleset's conntrack cleanup has not succeeded yet.
	cleanupPending bool

	statusMu sync.Mutex
	written  *policyv1alpha1.NodeEnforcementStatus // the status last applied; nil: unknown
}

// +kubebuilder:rbac:groups="",resources=pods;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=policy.nftpolicy.io,resources=nodeenforcements,verbs=create;get;list;watch;update;patch
// +kubebuilder:rbac:groups=policy.nftpolicy.io,resources=nodeenforcements/status,verbs=get;update;patch

// Reconcile syncs this node. Every request names this node; see SetupWithManager.
func (r *NodeReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	log := logf.FromContext(ctx)
	changes := r.changes.take()
	out := r.sync(ctx)

	if out.err != nil {
		r.changes.putBack(changes)
		syncFailures.WithLabelValues(out.step).Inc()
		// The returned error is logged by the controller and requeues the node with backoff.
		if err := r.writeStatus(ctx, out); err != nil {
			log.Error(err, "Recording the failed sync on the NodeEnforcement")
		}
		return ctrl.Result{}, out.err
	}

	syncDuration.Observe(out.duration.Seconds())
	// A change is programmed by the transaction that follows its observation. Changes that needed no
	// transaction (the table already matched) are not latencies of anything and are dropped.
	if !out.committed.IsZero() {
		for _, observed := range changes {
			programmingLatency.Observe(out.committed.Sub(observed).Seconds())
		}
	}
	c := countsOf(out.model, out.ruleset)
	isolatedPods.Set(float64(c.isolatedPods))
	programmedChains.Set(float64(c.chains))
	programmedElements.Set(float64(c.setElements))
	if !r.synced.Swap(true) {
		log.V(2).Info("First sync committed, ready", "node", klog.KRef("", r.NodeName), "localPods", c.localPods, "isolatedPods", c.isolatedPods)
	}

	r.reportProblems(ctx, out.problems)
	if err := r.writeStatus(ctx, out); err != nil {
		syncFailures.WithLabelValues(stepStatus).Inc()
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: r.resyncPeriod()}, nil
}

// sync builds the desired ruleset from the cache and commits it in one transaction. On failure the
// applier has forgotten what the kernel holds, so the next sync replaces the whole table at once: a
// table is never left half-programmed.
func (r *NodeReconciler) sync(ctx context.Context) syncOutcome {
	log := logf.FromContext(ctx)
	out := syncOutcome{started: time.Now(), ruleset: r.Applier.Committed()}
	fail := func(step string, err error) syncOutcome {
		out.step, out.err, out.duration = step, err, time.Since(out.started)
		return out
	}

	log.V(4).Info("Listing pods, namespaces and policies from the cache")
	snap, err := snapshot(ctx, r.Client, r.NodeName)
	if err != nil {
		return fail(stepSnapshot, err)
	}
	out.model = selectors.Resolve(snap)
	out.problems = problemsInEffect(out.model)
	log.V(4).Info("Resolved policies", "pods", len(snap.Pods), "policies", len(snap.Policies),
		"localPods", len(out.model.LocalPods), "problems", len(out.model.Problems))

	ifaces, err := r.hostInterfaces(out.model)
	if err != nil {
		return fail(stepInterfaces, err)
	}
	desired := nft.Compile(nft.CompileInput{Table: r.Table, Model: out.model, Interfaces: ifaces})
	if log := log.V(6); log.Enabled() {
		log.Info("Desired ruleset", "ruleset", nft.Render(desired))
	}

	res, err := r.Applier.Apply(desired)
	if err != nil {
		return fail(stepApply, err)
	}
	out.ruleset = desired
	if !res.Unchanged() {
		// The verdicts change here; ending old connections below is not part of the latency.
		out.committed = time.Now()
	}
	if err := r.endDeniedConnections(ctx, desired, ifaces, !res.Unchanged()); err != nil {
		return fail(stepConntrack, err)
	}
	out.duration = time.Since(out.started)
	if res.Unchanged() {
		log.V(4).Info("Table already up to date", "table", r.Table, "duration", out.duration)
	} else {
		log.V(2).Info("Committed transaction", "table", r.Table, "fullReplace", res.FullReplace,
			"ops", res.Ops, "elements", res.Elements, "rules", res.Rules, "duration", out.duration)
	}
	return out
}

// endDeniedConnections deletes the tracked connections that the committed ruleset would not let
// start: our chains accept tracked connections before any policy, so without this a connection
// allowed before a policy change would outlive it. It runs after every committed change, and again
// on later syncs until it has succeeded once.
func (r *NodeReconciler) endDeniedConnections(ctx context.Context, rs *nft.Ruleset, ifaces map[netip.Addr]string, changed bool) error {
	if r.Conntrack == nil || (!changed && !r.cleanupPending) {
		return nil
	}
	r.cleanupPending = true
	n, err := r.Conntrack.Cleanup(rs, ifaces)
	if err != nil {
		return fmt.Errorf("ending connections the new rules deny: %w", err)
	}
	r.cleanupPending = false
	if n > 0 {
		logf.FromContext(ctx).V(2).Info("Ended connections the new rules deny", "connections", n)
	}
	return nil
}

// hostInterfaces resolves the host-side interface of every local pod address.
func (r *NodeReconciler) hostInterfaces(m *selectors.Model) (map[netip.Addr]string, error) {
	if r.Interfaces == nil {
		return nil, nil
	}
	var addrs []netip.Addr
	for _, pod := range m.LocalPods {
		addrs = append(addrs, pod.IPs...)
	}
	ifaces, err := r.Interfaces.Interfaces(addrs)
	if err != nil {
		return nil, fmt.Errorf("resolving host interfaces of %d local pod addresses: %w", len(addrs), err)
	}
	return ifaces, nil
}

// ReadyCheck is the readiness probe: ready once the first sync committed.
func (r *NodeReconciler) ReadyCheck(_ *http.Request) error {
	if !r.synced.Load() {
		return errors.New("the first sync has not committed yet")
	}
	return nil
}

func (r *NodeReconciler) resyncPeriod() time.Duration {
	if r.ResyncPeriod > 0 {
		return r.ResyncPeriod
	}
	return DefaultResyncPeriod
}
