// Package controllers is the shell around nftpolicy's pure core: it watches pods, namespaces and
// NetworkPolicies, and on every change syncs this node's table in one step —
// changed objects from the cache -> selectors.Resolver -> nft.Compiler -> nft.Applier (one
// transaction) — then reports the outcome on the node's NodeEnforcement, in Events and in metrics.
//
// A sync costs what changed: the event handlers only note which objects changed, the sync reads those
// from the cache into a long-lived selectors.Resolver, and the resolver, the compiler and the diff
// skip everything else. It stays level-triggered where it matters: a sync reads an object's latest
// state from the cache (never the event's), and the periodic resync rebuilds the resolver from the
// whole cache, so a missed or coalesced event costs nothing but latency.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	toolscache "k8s.io/client-go/tools/cache"
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
	// VerifyIncremental makes every sync that read only the changed objects also resolve the whole
	// cache and compare: a difference is logged, counted in nftpolicy_incremental_mismatches_total and
	// repaired by rebuilding from the whole cache. It costs a full resolve per sync; for tests and for
	// chasing a suspected bug.
	VerifyIncremental bool

	changes changeClock
	dirty   dirtyObjects
	// pods is the pod informer's store (CachedPods), set up by SetupWithManager.
	pods     toolscache.Store
	problems problemReporter

	// Owned by the sync (one worker): the resolved view of the cluster, kept across syncs, when it was
	// last rebuilt from the whole cache, and the compiler that remembers the last ruleset.
	resolver  *selectors.Resolver
	rebuiltAt time.Time
	compiler  nft.Compiler
	// ifaces remembers the host interface of each local pod address found so far; the addresses of
	// pods that changed are looked up again, and a rebuild forgets everything.
	ifaces      map[netip.Addr]string
	spareIfaces map[netip.Addr]string // the ifaces of the sync before, for the next sync to reuse
	inEffect    inEffectMemo
	// reserveDue is set when the resolver or the compiler starts over: the next committed sync
	// reserves the compiler's spare arrays (see nft.Compiler.Reserve).
	reserveDue bool
	synced     atomic.Bool
	// cleanupPending is set when a committed ruleset's conntrack cleanup has not succeeded yet.
	cleanupPending bool

	statusMu sync.Mutex
	written  *policyv1alpha1.NodeEnforcementStatus // the status last applied; nil: unknown
	// writtenFrom is what written was computed from (valid while written is not nil).
	writtenFrom statusInputs
	// statusDeferred is set when a change of counts was not written yet (see writeStatus).
	statusDeferred bool
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
	r.changes.release(changes)
	c := out.counts
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
	requeue := r.resyncPeriod()
	r.statusMu.Lock()
	if r.statusDeferred {
		requeue = min(requeue, statusCountsInterval)
	}
	r.statusMu.Unlock()
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// sync builds the desired ruleset from the cache and commits it in one transaction. On failure the
// applier has forgotten what the kernel holds, so the next sync replaces the whole table at once: a
// table is never left half-programmed.
func (r *NodeReconciler) sync(ctx context.Context) syncOutcome {
	log := logf.FromContext(ctx)
	out := syncOutcome{started: time.Now(), ruleset: r.Applier.Committed()}
	fail := func(step string, err error) syncOutcome {
		out.step, out.err, out.duration = step, err, time.Since(out.started)
		// The compiler compares each model and ruleset with the previous one and reuses the arrays of
		// older ones (see nft.Compiler): after a model it did not compile or a ruleset that was not
		// committed, it starts over.
		r.compiler = nft.Compiler{}
		r.reserveDue = true
		return out
	}

	if err := r.updateResolver(ctx); err != nil {
		return fail(stepSnapshot, err)
	}
	out.model, _ = r.resolver.Model()
	inEffect := r.inEffect.of(out.model)
	out.problems = r.inEffect.problemsOf(out.model)

	ifaces, err := r.hostInterfaces(out.model)
	if err != nil {
		return fail(stepInterfaces, err)
	}
	desired := r.compiler.Compile(nft.CompileInput{Table: r.Table, Model: out.model, Interfaces: ifaces})
	if log := log.V(6); log.Enabled() {
		log.Info("Desired ruleset", "ruleset", nft.Render(desired))
	}

	res, err := r.Applier.Apply(desired)
	if err != nil {
		return fail(stepApply, err)
	}
	out.ruleset = desired
	if r.reserveDue {
		// After a full resolve or compile: what the first change of each set would allocate is
		// allocated now, in the sync that built everything, not in the events that follow.
		r.compiler.Reserve()
		r.reserveDue = false
	}
	if !res.Unchanged() {
		// The verdicts change here; ending old connections below is not part of the latency.
		out.committed = time.Now()
	}
	// A change that only added peers cannot have denied a tracked connection.
	if err := r.endDeniedConnections(ctx, desired, ifaces, !res.Unchanged() && !res.OnlyWidens); err != nil {
		return fail(stepConntrack, err)
	}
	out.counts = countsOf(out.model, inEffect, out.ruleset)
	out.duration = time.Since(out.started)
	if res.Unchanged() {
		log.V(4).Info("Table already up to date", "table", r.Table, "duration", out.duration)
	} else {
		log.V(2).Info("Committed transaction", "table", r.Table, "fullReplace", res.FullReplace,
			"ops", res.Ops, "elements", res.Elements, "rules", res.Rules, "duration", out.duration)
	}
	return out
}

// updateResolver brings the resolver up to date with the cache: only the objects that changed since
// the last sync, or everything when the resolver is new, when too many objects changed, or on the
// periodic resync (a sync that no event asked for).
func (r *NodeReconciler) updateResolver(ctx context.Context) error {
	log := logf.FromContext(ctx)
	objects, full := r.dirty.take()
	if full || r.resolver == nil || (len(objects) == 0 && time.Since(r.rebuiltAt) >= r.resyncPeriod()/2) {
		log.V(4).Info("Reading every pod, namespace and policy from the cache")
		res, err := rebuildResolver(ctx, r.pods, r.Client, r.NodeName)
		if err != nil {
			r.dirty.putBack(objects, true)
			return err
		}
		r.resolver, r.rebuiltAt, r.ifaces = res, time.Now(), nil
		r.reserveDue = true
		r.dirty.release(objects)
		cacheReads.WithLabelValues(readAll).Inc()
		return nil
	}
	log.V(4).Info("Reading changed objects from the cache", "objects", len(objects))
	changedLocal, err := refresh(ctx, r.pods, r.Client, r.resolver, r.NodeName, objects)
	if err != nil {
		r.dirty.putBack(objects, false)
		return err
	}
	r.dirty.release(objects)
	for _, a := range changedLocal {
		delete(r.ifaces, a)
	}
	cacheReads.WithLabelValues(readChanged).Inc()
	if r.VerifyIncremental {
		return r.verifyIncremental(ctx)
	}
	return nil
}

// verifyIncremental compares the resolver's model with a full resolve of the cache, and rebuilds the
// resolver when they differ. A change that reaches the cache between the two reads is not a
// difference: it is pending for the next sync, so the comparison is skipped then.
func (r *NodeReconciler) verifyIncremental(ctx context.Context) error {
	snap, err := snapshot(ctx, r.pods, r.Client, r.NodeName)
	if err != nil {
		return err
	}
	want := selectors.Resolve(snap)
	got, _ := r.resolver.Model()
	if reflect.DeepEqual(got, want) {
		return nil
	}
	// The event handlers note a change just after the cache holds it: give them a moment.
	time.Sleep(100 * time.Millisecond)
	if r.dirty.pending() {
		return nil
	}
	incrementalMismatches.Inc()
	logf.FromContext(ctx).Error(nil, "The incremental model differs from a full resolve of the cache; rebuilding from the cache",
		"localPods", len(got.LocalPods), "wantLocalPods", len(want.LocalPods), "addressSets", len(got.AddressSets), "wantAddressSets", len(want.AddressSets))
	r.resolver, r.rebuiltAt, r.ifaces = nil, time.Time{}, nil
	res, err := rebuildResolver(ctx, r.pods, r.Client, r.NodeName)
	if err != nil {
		return err
	}
	r.resolver, r.rebuiltAt, r.reserveDue = res, time.Now(), true
	return nil
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

// hostInterfaces resolves the host-side interface of every local pod address. Addresses found before
// are not looked up again (see ifaces); addresses without an interface are, on every sync, until the
// pod's interface shows up.
func (r *NodeReconciler) hostInterfaces(m *selectors.Model) (map[netip.Addr]string, error) {
	if r.Interfaces == nil {
		return nil, nil
	}
	// The map of the sync before is reused: nothing holds it past its sync.
	found := r.spareIfaces
	if found == nil {
		found = make(map[netip.Addr]string, len(r.ifaces))
	}
	clear(found)
	var missing []netip.Addr
	for _, pod := range m.LocalPods {
		for _, a := range pod.IPs {
			if iface, ok := r.ifaces[a]; ok {
				found[a] = iface
			} else {
				missing = append(missing, a)
			}
		}
	}
	if len(missing) > 0 {
		looked, err := r.Interfaces.Interfaces(missing)
		if err != nil {
			return nil, fmt.Errorf("resolving host interfaces of %d local pod addresses: %w", len(missing), err)
		}
		for a, iface := range looked {
			found[a] = iface
		}
	}
	r.ifaces, r.spareIfaces = found, r.ifaces
	return found, nil
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
