package controllers

import (
	"context"
	"fmt"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// syncOutcome is what one sync found and did, as the status reports it.
type syncOutcome struct {
	started   time.Time
	committed time.Time // when the transaction committed; zero when none was needed
	duration  time.Duration
	model     *selectors.Model    // nil when the sync failed before resolving
	ruleset   *nft.Ruleset        // the committed ruleset; nil when nothing is known to be committed
	problems  []selectors.Problem // problems of the policies in effect on this node
	counts    counts              // of model and ruleset, on success
	step      string              // the step that failed, "" on success
	err       error
	// drift is a foreign change found and not repaired yet (on failure); repaired is the drift this
	// sync repaired; driftRepairs and lastRepair are the repairs so far.
	drift        *driftFound
	repaired     *policyv1alpha1.DriftRepair
	driftRepairs int32
	lastRepair   *policyv1alpha1.DriftRepair
	stale        []watchFailure // informers that failed to list or watch: the cache may be out of date
}

// counts are the numbers the status and the gauges report.
type counts struct {
	localPods, isolatedPods, policiesInEffect, auditedPolicies, chains, setElements int
}

// countsOf counts m and rs; inEffect is policiesInEffect(m).
func countsOf(m *selectors.Model, inEffect map[selectors.PolicyRef]bool, rs *nft.Ruleset) counts {
	var c counts
	if m != nil {
		c.localPods = len(m.LocalPods)
		audited := map[selectors.PolicyRef]bool{}
		for _, pod := range m.LocalPods {
			if pod.Ingress != nil || pod.Egress != nil {
				c.isolatedPods++
			}
			for _, iso := range []*selectors.Isolation{pod.AuditIngress, pod.AuditEgress} {
				if iso != nil {
					for _, ref := range iso.Policies {
						audited[ref] = true
					}
				}
			}
		}
		// A policy is either enforced or audited.
		c.auditedPolicies = len(audited)
		c.policiesInEffect = len(inEffect) - len(audited)
	}
	if rs != nil {
		c.chains = len(rs.Chains)
		for _, s := range rs.Sets {
			c.setElements += len(s.Elements)
		}
		for _, mp := range rs.Maps {
			c.setElements += len(mp.Elements)
		}
	}
	return c
}

// nodeEnforcement returns this node's NodeEnforcement, creating it, owned by the Node so that it goes
// away with the node, when it does not exist yet. It may share maps and slices with the cache:
// read-only, DeepCopy before changing it.
func (r *NodeReconciler) nodeEnforcement(ctx context.Context) (*policyv1alpha1.NodeEnforcement, error) {
	key := types.NamespacedName{Name: r.NodeName}
	var ne policyv1alpha1.NodeEnforcement
	err := r.Client.Get(ctx, key, &ne, client.UnsafeDisableDeepCopy)
	if err == nil || !apierrors.IsNotFound(err) {
		return &ne, err
	}
	// The Node is read from the API server directly: caching every node for one owner reference would
	// cost a watch on all nodes.
	var node corev1.Node
	if err := r.APIReader.Get(ctx, key, &node); err != nil {
		return nil, fmt.Errorf("getting node %s: %w", r.NodeName, err)
	}
	ne = policyv1alpha1.NodeEnforcement{
		ObjectMeta: metav1.ObjectMeta{
			Name: r.NodeName,
			OwnerReferences: []metav1.OwnerReference{{
				APIVersion: "v1",
				Kind:       "Node",
				Name:       node.Name,
				UID:        node.UID,
			}},
		},
		Spec: policyv1alpha1.NodeEnforcementSpec{NodeName: r.NodeName, Table: r.Table},
	}
	err = r.Client.Create(ctx, &ne, fieldOwner)
	if apierrors.IsAlreadyExists(err) {
		// The cache has not seen our earlier create yet.
		err = r.APIReader.Get(ctx, key, &ne)
	}
	if err != nil {
		return nil, fmt.Errorf("creating NodeEnforcement %s: %w", r.NodeName, err)
	}
	return &ne, nil
}

// fieldOwner is the field manager of everything the agent writes.
const fieldOwner = client.FieldOwner("nftpolicy-agent")

// writeStatus records the outcome of a sync on this node's NodeEnforcement, by server-side apply of the
// whole status: the API server then holds exactly what this sync found, whatever the cache has seen of
// earlier writes. When only the sync time would change, it writes at most once per resync period, so
// that steady syncs cost the API server nothing.
func (r *NodeReconciler) writeStatus(ctx context.Context, out syncOutcome) error {
	ne, err := r.nodeEnforcement(ctx)
	if err != nil {
		return err
	}
	if ne.Spec.Table != r.Table || ne.Spec.NodeName != r.NodeName {
		ne = ne.DeepCopy() // the patch response is decoded into it
		before := ne.DeepCopy()
		ne.Spec = policyv1alpha1.NodeEnforcementSpec{NodeName: r.NodeName, Table: r.Table}
		if err := r.Client.Patch(ctx, ne, client.MergeFrom(before)); err != nil {
			return fmt.Errorf("updating spec of NodeEnforcement %s: %w", r.NodeName, err)
		}
	}

	r.statusMu.Lock()
	defer r.statusMu.Unlock()
	in := statusInputsOf(ne.Generation, out)
	if r.written != nil {
		sinceWritten := out.started.Sub(r.written.LastSyncTime.Time)
		switch {
		case sinceWritten >= r.resyncPeriod(): // the heartbeat is due
		case in.equal(&r.writtenFrom, true):
			return nil
		case in.equal(&r.writtenFrom, false) && sinceWritten < statusCountsInterval:
			// Only the element count moved: a peer joining a set changes it on every event, and an
			// API write per event would cost more than the event. Written later.
			r.statusDeferred = true
			return nil
		}
	}
	r.statusDeferred = false

	next := ne.DeepCopy()
	if r.written != nil {
		// What this agent wrote last is newer than what the cache may show.
		next.Status = *r.written.DeepCopy()
	}
	desiredStatus(next, out, r.Table)
	status, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&next.Status)
	if err != nil {
		return fmt.Errorf("converting the status of NodeEnforcement %s: %w", r.NodeName, err)
	}
	u := &unstructured.Unstructured{Object: map[string]any{"status": status}}
	u.SetGroupVersionKind(policyv1alpha1.GroupVersion.WithKind("NodeEnforcement"))
	u.SetName(r.NodeName)
	if err := r.Client.Status().Apply(ctx, client.ApplyConfigurationFromUnstructured(u), fieldOwner, client.ForceOwnership); err != nil {
		r.written = nil
		return fmt.Errorf("applying the status of NodeEnforcement %s: %w", r.NodeName, err)
	}
	r.written = next.Status.DeepCopy()
	r.writtenFrom = in
	return nil
}

// statusInputs is what desiredStatus computes a status from, besides the times and the conditions'
// transition times. Syncs with equal inputs write equal statuses, so comparing inputs tells whether
// a status would change without building it.
type statusInputs struct {
	generation int64
	step, err  string
	stale      string // staleMessage of the failing informers, "" when none
	// On success only (after a failure the status keeps the counts of what the table last held):
	counts       counts
	problems     []selectors.Problem // the first MaxProblems
	problemCount int
	driftRepairs int32
	drifted      bool
}

func statusInputsOf(generation int64, out syncOutcome) statusInputs {
	in := statusInputs{generation: generation, step: out.step, driftRepairs: out.driftRepairs, drifted: out.drift != nil}
	if len(out.stale) > 0 {
		in.stale = staleMessage(out.stale)
	}
	if out.err != nil {
		in.err = out.err.Error()
		return in
	}
	in.counts, in.problemCount = out.counts, len(out.problems)
	in.problems = out.problems[:min(len(out.problems), policyv1alpha1.MaxProblems)]
	return in
}

// equal compares two inputs, the element count only when withElements is set.
func (in *statusInputs) equal(o *statusInputs, withElements bool) bool {
	a, b := in.counts, o.counts
	if !withElements {
		a.setElements, b.setElements = 0, 0
	}
	return in.generation == o.generation && in.step == o.step && in.err == o.err && in.stale == o.stale && a == b &&
		in.driftRepairs == o.driftRepairs && in.drifted == o.drifted &&
		in.problemCount == o.problemCount && slices.Equal(in.problems, o.problems)
}

// programmedMessage is the Programmed condition's message of a committed table.
func programmedMessage(table string, st *policyv1alpha1.NodeEnforcementStatus) string {
	msg := fmt.Sprintf("table inet %s enforces %d policies on %d local pods", table, st.PoliciesInEffect, st.LocalPods)
	if st.AuditedPolicies > 0 {
		msg += fmt.Sprintf(", and audits %d (%s: %s) without enforcing them", st.AuditedPolicies, selectors.ModeAnnotation, selectors.ModeAudit)
	}
	return msg
}

// desiredStatus fills ne's status from a sync's outcome. After a failure, counts keep describing what
// the table last held.
func desiredStatus(ne *policyv1alpha1.NodeEnforcement, out syncOutcome, table string) {
	st := &ne.Status
	st.ObservedGeneration = ne.Generation
	st.LastSyncTime = &metav1.Time{Time: out.started}
	st.LastSyncDuration = &metav1.Duration{Duration: out.duration.Round(time.Microsecond)}
	st.DriftRepairs = out.driftRepairs
	st.LastDriftRepair = out.lastRepair.DeepCopy()

	if out.err == nil && out.model != nil { // a report of failing informers before any sync has no counts
		c := out.counts
		st.LocalPods = int32(c.localPods)
		st.IsolatedPods = int32(c.isolatedPods)
		st.PoliciesInEffect = int32(c.policiesInEffect)
		st.AuditedPolicies = int32(c.auditedPolicies)
		st.Chains = int32(c.chains)
		st.SetElements = int32(c.setElements)
		st.ProblemCount = int32(len(out.problems))
		st.Problems = nil
		for i, p := range out.problems {
			if i == policyv1alpha1.MaxProblems {
				break
			}
			st.Problems = append(st.Problems, policyv1alpha1.PolicyProblem{
				PolicyNamespace: p.Policy.Namespace,
				PolicyName:      p.Policy.Name,
				Field:           p.Field,
				Message:         p.Message,
			})
		}
	}

	programmed := metav1.Condition{
		Type:               policyv1alpha1.ConditionProgrammed,
		Status:             metav1.ConditionTrue,
		Reason:             policyv1alpha1.ReasonCommitted,
		Message:            programmedMessage(table, st),
		ObservedGeneration: ne.Generation,
	}
	degraded := metav1.Condition{
		Type:               policyv1alpha1.ConditionDegraded,
		Status:             metav1.ConditionFalse,
		Reason:             policyv1alpha1.ReasonHealthy,
		Message:            "every policy in effect is enforced as written",
		ObservedGeneration: ne.Generation,
	}
	switch {
	case out.err != nil:
		programmed.Status = metav1.ConditionFalse
		programmed.Reason = policyv1alpha1.ReasonSyncFailed
		if out.step == stepApply {
			programmed.Reason = policyv1alpha1.ReasonApplyFailed
		}
		programmed.Message = out.err.Error()
		if out.drift != nil {
			programmed.Reason = policyv1alpha1.ReasonDrifted
			programmed.Message = fmt.Sprintf("another writer changed table inet %s (%s, found by %s) and the repair failed: %v", table, out.drift.detail, out.drift.cause, out.err)
		}
		degraded.Status = metav1.ConditionTrue
		degraded.Reason = programmed.Reason
		degraded.Message = fmt.Sprintf("the last sync failed at step %s; it is retried with backoff", out.step)
	case len(out.stale) > 0:
		programmed.Status = metav1.ConditionFalse
		programmed.Reason = staleReason(out.stale)
		programmed.Message = staleMessage(out.stale)
		degraded.Status = metav1.ConditionTrue
		degraded.Reason = programmed.Reason
		degraded.Message = "the agent's cache may be out of date; see the Programmed condition"
	case len(out.problems) > 0:
		degraded.Status = metav1.ConditionTrue
		degraded.Reason = policyv1alpha1.ReasonPolicyProblems
		degraded.Message = fmt.Sprintf("%d problems in policies in effect; what cannot be understood matches nothing", len(out.problems))
	}
	meta.SetStatusCondition(&st.Conditions, programmed)
	meta.SetStatusCondition(&st.Conditions, degraded)
}

// statusCountsInterval is the longest a change of the element count alone waits before it is
// written. Peers joining and leaving sets change it on every such event, and nothing else in the
// status; every other change is written at once.
const statusCountsInterval = 30 * time.Second
