// Package controllers is the shell around nftpolicy's pure core. It watches pods, namespaces and
// NetworkPolicies and, on every change, syncs this node's table in one step: the changed objects from
// the cache -> selectors.Resolver (Model and Changes) -> nft.Compiler -> nft.Applier (one transaction),
// then reports the outcome on the node's NodeEnforcement, in Events and in metrics.
//
// Event handlers only note which objects changed (pendingChanges); the sync reads their latest state
// from the cache, so it stays level-triggered, and the periodic resync reads the whole cache again.
package controllers

import (
	"context"
	"errors"
	"fmt"
	"maps"
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
	"sigs.k8s.io/controller-runtime/pkg/event"
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
	// PodInterfacePrefix turns the fail-closed mode on (nft.CompileInput.PodInterfacePrefix): traffic
	// of a host interface with this prefix that is not a programmed local pod's is dropped. It needs
	// Interfaces. "": off.
	PodInterfacePrefix string
	// ClusterNetworkPolicies makes the agent watch and enforce ClusterNetworkPolicies
	// (policy.networking.k8s.io v1beta1), whose CRD must be installed. Off: they are not read.
	ClusterNetworkPolicies bool
	// PodDenyCounters counts each isolated pod's default deny on its own (nft.CompileInput.PodDenyCounters)
	// instead of per namespace.
	PodDenyCounters bool
	// DropLog turns drop logging on: the node-wide level, overridden per namespace by LogAnnotation,
	// and the NFLOG group. Nil: nothing is logged and LogAnnotation is not read.
	DropLog *DropLogSettings
	// Committed, when set, is called after each successful sync with the model it committed (the
	// drop log names pods and policies from it).
	Committed func(*selectors.Model)
	// Conntrack ends tracked connections that a committed ruleset no longer allows. Nil: none.
	Conntrack nft.ConntrackCleaner
	// ForeignChanges brings news that another writer may have changed the table (a kernel
	// TableWatch). Nil: foreign changes are found by reading the table back on resyncs only.
	ForeignChanges <-chan nft.ForeignChange
	// ResyncPeriod defaults to DefaultResyncPeriod.
	ResyncPeriod time.Duration
	// Watches records the informers whose list or watch fails (its Handler is the cache's watch error
	// handler); while any fails, the status and the readiness check say so. Nil: not tracked.
	Watches *WatchFailures
	// VerifyIncremental makes every sync that read only the changed objects also resolve the whole
	// cache and compare: a difference is logged, counted in nftpolicy_incremental_mismatches_total and
	// repaired by rebuilding from the whole cache. It costs a full resolve per sync; for tests and for
	// chasing a suspected bug.
	VerifyIncremental bool

	// pending is filled by the event handlers and taken by each sync.
	pending pendingChanges
	// status writes the outcomes of syncs, apart from them (see statusWriter).
	status *statusWriter
	// recheck asks for a sync that no object change asked for (see ReportStaleCache).
	recheck chan event.GenericEvent
	// pods is the pod informer's store (CachedPods), set up by SetupWithManager.
	pods     toolscache.Store
	problems problemReporter
	// state is what one sync hands the next; only the sync's worker touches it.
	state  syncState
	synced atomic.Bool

	statusMu sync.Mutex
	written  *policyv1alpha1.NodeEnforcementStatus // the status last applied; nil: unknown
	// writtenFrom is what written was computed from (valid while written is not nil).
	writtenFrom statusInputs
	// statusDeferred is set when a change of counts was not written yet (see writeStatus).
	statusDeferred bool
}

// syncState is what one sync hands the next: the resolved view of the cluster and when it was last
// read from the whole cache, the compiler (which remembers the last ruleset), the host interfaces
// found so far, what was derived from the last model, and whether a conntrack cleanup is owed.
type syncState struct {
	resolver  *selectors.Resolver
	rebuiltAt time.Time
	compiler  nft.Compiler
	// ifaces maps each local pod address to its host interface, as found so far; the addresses of pods
	// that changed are looked up again, and a rebuild forgets everything.
	ifaces map[netip.Addr]string
	// inEffect and problems are the policies in effect and their problems in the last model, derived
	// again when its Changes say isolations or problems changed.
	inEffect map[selectors.PolicyRef]bool
	problems []selectors.Problem
	// dropLogLevels is what the syncs made of the namespaces' LogAnnotation.
	dropLogLevels dropLogLevels
	// cleanupPending is set when a committed ruleset's conntrack cleanup has not succeeded yet.
	cleanupPending bool
	// verifiedAt is when the kernel was last known to hold the committed ruleset: read back, or
	// replaced whole. replacedAt is when the last full replacement began: it undid every foreign
	// change committed before.
	verifiedAt time.Time
	replacedAt time.Time
	// drift is a foreign change found and not repaired yet; driftRepairs and lastRepair describe the
	// repairs so far, for the status.
	drift        *driftFound
	driftRepairs int32
	lastRepair   *policyv1alpha1.DriftRepair
}

// startOver makes the next sync compile everything: after a failed step, the compiler's memory of
// the last ruleset no longer matches what the kernel holds, and the resolver's Changes since then
// were taken.
func (s *syncState) startOver() { s.compiler = nft.Compiler{} }

// derive brings inEffect and problems up to date with a model.
func (s *syncState) derive(m *selectors.Model, changes *selectors.Changes) {
	if s.inEffect == nil || changes.Isolations() {
		s.inEffect = policiesInEffect(m)
	}
	if s.inEffect == nil || changes.Isolations() || changes.Problems || changes.ClusterProblems {
		// ClusterNetworkPolicies' problems are listed too (an Event needs a namespaced policy).
		s.problems = append(problemsIn(m, s.inEffect), m.ClusterProblems...)
	}
}

// +kubebuilder:rbac:groups="",resources=pods;namespaces,verbs=get;list;watch
// +kubebuilder:rbac:groups=networking.k8s.io,resources=networkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy.networking.k8s.io,resources=clusternetworkpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=policy.networking.k8s.io,resources=clusternetworkpolicies/status,verbs=get;update;patch
// +kubebuilder:rbac:groups="",resources=nodes,verbs=get
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=policy.nftpolicy.io,resources=nodeenforcements,verbs=create;get;list;watch;update;patch
// +kubebuilder:rbac:groups=policy.nftpolicy.io,resources=nodeenforcements/status,verbs=get;update;patch

// Reconcile syncs this node: it takes the changes noted since the last sync, resolves, compiles and
// applies them in one transaction, then reports the outcome. Every request names this node; see
// SetupWithManager.
func (r *NodeReconciler) Reconcile(ctx context.Context, _ ctrl.Request) (ctrl.Result, error) {
	batch := r.pending.take()
	out := r.sync(ctx, batch)
	if out.err != nil {
		r.pending.putBack(batch)
		r.state.startOver()
		syncFailures.WithLabelValues(out.step).Inc()
		r.status.submit(out)
		// The returned error is logged by the controller and requeues the node with backoff.
		return ctrl.Result{}, out.err
	}
	r.record(ctx, out, batch)
	if r.Committed != nil && out.model != nil {
		r.Committed(out.model)
	}
	if out.repaired != nil {
		logf.FromContext(ctx).Info("Another writer changed the table; replaced it whole", "table", r.Table,
			"cause", out.repaired.Cause, "change", out.repaired.Message, "repairedAfter", out.repaired.RepairedAfter.Duration)
	}
	r.reportProblems(ctx, out.problems)
	out.stale = r.Watches.current()
	r.status.submit(out)
	requeue := min(r.resyncPeriod(), r.interfaceRetry(out.model))
	r.statusMu.Lock()
	if r.statusDeferred {
		requeue = min(requeue, statusCountsInterval)
	}
	r.statusMu.Unlock()
	if len(out.stale) > 0 {
		// Nothing else tells the agent that an informer recovered.
		requeue = min(requeue, staleRecheckInterval)
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// sync brings the table up to date with the cache in one transaction. On failure the applier has
// forgotten what the kernel holds, so the next sync replaces the whole table at once: a table is
// never left half-programmed.
func (r *NodeReconciler) sync(ctx context.Context, batch changeBatch) syncOutcome {
	log := logf.FromContext(ctx)
	out := syncOutcome{started: time.Now(), ruleset: r.Applier.Committed()}
	fail := func(step string, err error) syncOutcome {
		out.step, out.err, out.duration = step, err, time.Since(out.started)
		out.drift, out.driftRepairs, out.lastRepair = r.state.drift, r.state.driftRepairs, r.state.lastRepair
		return out
	}

	if err := r.checkTable(ctx, batch); err != nil {
		return fail(stepReadBack, err)
	}

	model, changes, err := r.resolve(ctx, batch)
	if err != nil {
		return fail(stepSnapshot, err)
	}
	r.state.derive(model, &changes)
	out.model, out.problems = model, r.state.problems

	ifaces, err := r.hostInterfaces(model)
	if err != nil {
		return fail(stepInterfaces, err)
	}
	dropLog, err := r.dropLog(ctx, model)
	if err != nil {
		return fail(stepSnapshot, err)
	}
	desired, changed := r.state.compiler.Compile(nft.CompileInput{Table: r.Table, Model: model, Changes: changes, Interfaces: ifaces,
		PodInterfacePrefix: r.PodInterfacePrefix, PodDenyCounters: r.PodDenyCounters, DropLog: dropLog})
	if log := log.V(6); log.Enabled() {
		log.Info("Desired ruleset", "ruleset", nft.Render(desired))
	}

	applying := time.Now()
	res, err := r.Applier.Apply(desired, changed)
	if err != nil {
		return fail(stepApply, err)
	}
	out.ruleset = desired
	if !res.Unchanged() {
		// The verdicts change here; ending old connections below is not part of the latency.
		out.committed = time.Now()
	}
	if res.FullReplace {
		out.repaired = r.state.repaired(applying, out.committed)
	}
	out.driftRepairs, out.lastRepair = r.state.driftRepairs, r.state.lastRepair
	// A change that only added peers cannot have denied a tracked connection.
	if err := r.endDeniedConnections(ctx, desired, ifaces, !res.Unchanged() && !res.OnlyWidens); err != nil {
		return fail(stepConntrack, err)
	}
	out.counts = countsOf(model, r.state.inEffect, out.ruleset)
	out.duration = time.Since(out.started)
	if res.Unchanged() {
		log.V(4).Info("Table already up to date", "table", r.Table, "duration", out.duration)
	} else {
		log.V(2).Info("Committed transaction", "table", r.Table, "fullReplace", res.FullReplace,
			"ops", res.Ops, "elements", res.Elements, "rules", res.Rules, "duration", out.duration)
	}
	return out
}

// record updates the metrics after a successful sync.
func (r *NodeReconciler) record(ctx context.Context, out syncOutcome, batch changeBatch) {
	syncDuration.Observe(out.duration.Seconds())
	// A change is programmed by the transaction that follows its observation. Changes that needed no
	// transaction (the table already matched) are not latencies of anything and are dropped.
	if !out.committed.IsZero() {
		for _, observed := range batch.objects {
			programmingLatency.Observe(out.committed.Sub(observed).Seconds())
		}
	}
	c := out.counts
	isolatedPods.Set(float64(c.isolatedPods))
	programmedChains.Set(float64(c.chains))
	programmedElements.Set(float64(c.setElements))
	if !r.synced.Swap(true) {
		logf.FromContext(ctx).V(2).Info("First sync committed, ready", "node", klog.KRef("", r.NodeName), "localPods", c.localPods, "isolatedPods", c.isolatedPods)
	}
}

// resolve brings the resolver up to date with the cache and returns its model and what changed: only
// the objects that changed since the last sync are read, or everything when the resolver is new,
// when too many objects changed, or on the periodic resync (a sync that no event asked for).
func (r *NodeReconciler) resolve(ctx context.Context, batch changeBatch) (*selectors.Model, selectors.Changes, error) {
	log := logf.FromContext(ctx)
	s := &r.state
	if batch.full || s.resolver == nil || (len(batch.objects) == 0 && time.Since(s.rebuiltAt) >= r.resyncPeriod()/2) {
		log.V(4).Info("Reading every pod, namespace and policy from the cache")
		if err := r.rebuild(ctx); err != nil {
			return nil, selectors.Changes{}, err
		}
		cacheReads.WithLabelValues(readAll).Inc()
		m, _ := s.resolver.Model()
		return m, selectors.FullChanges(), nil
	}
	log.V(4).Info("Reading changed objects from the cache", "objects", len(batch.objects))
	changedLocal, err := refresh(ctx, r.pods, r.Client, s.resolver, r.NodeName, batch.objects)
	if err != nil {
		return nil, selectors.Changes{}, err
	}
	for _, a := range changedLocal {
		delete(s.ifaces, a)
	}
	cacheReads.WithLabelValues(readChanged).Inc()
	m, changes := s.resolver.Model()
	if r.VerifyIncremental {
		rebuilt, err := r.verifyIncremental(ctx, m)
		if err != nil {
			return nil, selectors.Changes{}, err
		}
		if rebuilt {
			m, _ = s.resolver.Model()
			return m, selectors.FullChanges(), nil
		}
	}
	return m, changes, nil
}

// rebuild reads the whole cache into a new resolver.
func (r *NodeReconciler) rebuild(ctx context.Context) error {
	res, err := rebuildResolver(ctx, r.pods, r.Client, r.NodeName, r.ClusterNetworkPolicies)
	if err != nil {
		return err
	}
	r.state.resolver, r.state.rebuiltAt, r.state.ifaces = res, time.Now(), nil
	return nil
}

// verifyIncremental compares the resolver's model with a full resolve of the cache, and rebuilds the
// resolver when they differ (rebuilt is then true). A change that reaches the cache between the two
// reads is not a difference: it is pending for the next sync, so the comparison is skipped then.
func (r *NodeReconciler) verifyIncremental(ctx context.Context, got *selectors.Model) (rebuilt bool, err error) {
	snap, err := snapshot(ctx, r.pods, r.Client, r.NodeName, r.ClusterNetworkPolicies)
	if err != nil {
		return false, err
	}
	want := selectors.Resolve(snap)
	if reflect.DeepEqual(got, want) {
		return false, nil
	}
	// The event handlers note a change just after the cache holds it: give them a moment.
	time.Sleep(100 * time.Millisecond)
	if r.pending.pending() {
		return false, nil
	}
	incrementalMismatches.Inc()
	logf.FromContext(ctx).Error(nil, "The incremental model differs from a full resolve of the cache; rebuilding from the cache",
		"localPods", len(got.LocalPods), "wantLocalPods", len(want.LocalPods), "addressSets", len(got.AddressSets), "wantAddressSets", len(want.AddressSets))
	return true, r.rebuild(ctx)
}

// endDeniedConnections deletes the tracked connections that the committed ruleset would not let
// start: our chains accept tracked connections before any policy, so without this a connection
// allowed before a policy change would outlive it. It runs after every committed change, and again
// on later syncs until it has succeeded once.
func (r *NodeReconciler) endDeniedConnections(ctx context.Context, rs *nft.Ruleset, ifaces map[netip.Addr]string, changed bool) error {
	if r.Conntrack == nil || (!changed && !r.state.cleanupPending) {
		return nil
	}
	r.state.cleanupPending = true
	n, err := r.Conntrack.Cleanup(rs, ifaces)
	if err != nil {
		return fmt.Errorf("ending connections the new rules deny: %w", err)
	}
	r.state.cleanupPending = false
	if n > 0 {
		logf.FromContext(ctx).V(2).Info("Ended connections the new rules deny", "connections", n)
	}
	return nil
}

// hostInterfaces resolves the host-side interface of every local pod address. Addresses found before
// are not looked up again (see syncState.ifaces); addresses without an interface are, on every sync,
// until the pod's interface shows up.
func (r *NodeReconciler) hostInterfaces(m *selectors.Model) (map[netip.Addr]string, error) {
	if r.Interfaces == nil {
		return nil, nil
	}
	known := r.state.ifaces
	found := make(map[netip.Addr]string, len(known))
	var missing []netip.Addr
	for _, pod := range m.LocalPods {
		for _, a := range pod.IPs {
			if iface, ok := known[a]; ok {
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
		maps.Copy(found, looked)
	}
	r.state.ifaces = found
	return found, nil
}

// ReadyCheck is the readiness probe: ready once the first sync committed, and not while an informer
// fails to list or watch.
func (r *NodeReconciler) ReadyCheck(_ *http.Request) error {
	if !r.synced.Load() {
		return errors.New("the first sync has not committed yet")
	}
	if failures := r.Watches.current(); len(failures) > 0 {
		return errors.New(staleMessage(failures))
	}
	return nil
}

func (r *NodeReconciler) resyncPeriod() time.Duration {
	if r.ResyncPeriod > 0 {
		return r.ResyncPeriod
	}
	return DefaultResyncPeriod
}
