package controllers

import (
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/sets"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
	"github.com/nftpolicy/nftpolicy/selectors"
)

var (
	redisPolicy  = selectors.PolicyRef{Namespace: "default", Name: "redis-policy"}
	remotePolicy = selectors.PolicyRef{Namespace: "default", Name: "remote-policy"}
)

// modelWithProblems has one local pod isolated by redis-policy; remote-policy selects no local pod.
func modelWithProblems(n int) *selectors.Model {
	m := &selectors.Model{LocalPods: []selectors.LocalPod{
		{Namespace: "default", Name: "redis", IPs: []netip.Addr{netip.MustParseAddr("10.1.0.10")},
			Ingress: &selectors.Isolation{Policies: []selectors.PolicyRef{redisPolicy}}},
		{Namespace: "default", Name: "web", IPs: []netip.Addr{netip.MustParseAddr("10.1.0.11")}},
	}}
	for i := range n {
		m.Problems = append(m.Problems, selectors.Problem{Policy: redisPolicy, Field: fmt.Sprintf("spec.ingress[%d].ports[0].port", i), Message: "named port is not defined"})
	}
	m.Problems = append(m.Problems, selectors.Problem{Policy: remotePolicy, Field: "spec.ingress[0].ports[0].port", Message: "named port is not defined"})
	return m
}

func TestProblemsInEffectKeepsOnlyPoliciesSelectingLocalPods(t *testing.T) {
	got := problemsInEffect(modelWithProblems(2))
	if len(got) != 2 {
		t.Fatalf("got %d problems, want the 2 of redis-policy: %v", len(got), got)
	}
	for _, p := range got {
		if p.Policy != redisPolicy {
			t.Errorf("problem of %s reported, but it selects no local pod", p.Policy)
		}
	}
}

// An audited policy is counted apart, named in the Programmed message, and its problems reported.
func TestDesiredStatusShowsAuditedPolicies(t *testing.T) {
	m := modelWithProblems(0)
	m.LocalPods[1].AuditIngress = &selectors.Isolation{Policies: []selectors.PolicyRef{remotePolicy}}
	ne := &policyv1alpha1.NodeEnforcement{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Generation: 3}}
	desiredStatus(ne, syncOutcome{started: time.Now(), duration: time.Millisecond, model: m, problems: problemsInEffect(m), counts: countsOf(m, policiesInEffect(m), nil)}, "nftpolicy")
	st := ne.Status
	if st.PoliciesInEffect != 1 || st.AuditedPolicies != 1 || st.IsolatedPods != 1 || st.ProblemCount != 1 || st.Problems[0].PolicyName != remotePolicy.Name {
		t.Errorf("status %+v, want 1 enforced and 1 audited policy, 1 isolated pod, the audited policy's problem", st)
	}
	programmed := meta.FindStatusCondition(st.Conditions, policyv1alpha1.ConditionProgrammed)
	if want := "table inet nftpolicy enforces 1 policies on 2 local pods, and audits 1 (nftpolicy.io/mode: audit) without enforcing them"; programmed == nil || programmed.Message != want {
		t.Errorf("Programmed = %+v, want the message %q", programmed, want)
	}
}

func TestDesiredStatusBoundsTheProblemList(t *testing.T) {
	m := modelWithProblems(policyv1alpha1.MaxProblems + 5)
	ne := &policyv1alpha1.NodeEnforcement{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Generation: 3}}
	desiredStatus(ne, syncOutcome{started: time.Now(), duration: time.Millisecond, model: m, problems: problemsInEffect(m), counts: countsOf(m, policiesInEffect(m), nil)}, "nftpolicy")

	st := ne.Status
	if len(st.Problems) != policyv1alpha1.MaxProblems || st.ProblemCount != int32(policyv1alpha1.MaxProblems+5) {
		t.Errorf("listed %d of %d problems, want %d of %d", len(st.Problems), st.ProblemCount, policyv1alpha1.MaxProblems, policyv1alpha1.MaxProblems+5)
	}
	if st.LocalPods != 2 || st.IsolatedPods != 1 || st.PoliciesInEffect != 1 {
		t.Errorf("counts: local %d isolated %d policies %d, want 2 1 1", st.LocalPods, st.IsolatedPods, st.PoliciesInEffect)
	}
	degraded := meta.FindStatusCondition(st.Conditions, policyv1alpha1.ConditionDegraded)
	if degraded == nil || degraded.Status != metav1.ConditionTrue || degraded.Reason != policyv1alpha1.ReasonPolicyProblems || degraded.ObservedGeneration != 3 {
		t.Errorf("Degraded = %+v, want True/PolicyProblems at generation 3", degraded)
	}
}

func TestDesiredStatusAfterAFailedApplyKeepsCountsAndSaysWhy(t *testing.T) {
	ne := &policyv1alpha1.NodeEnforcement{}
	desiredStatus(ne, succeeded(time.Now(), 0, modelWithProblems(0)), "nftpolicy")
	desiredStatus(ne, syncOutcome{started: time.Now(), step: stepApply, err: fmt.Errorf("applying 3 operations: no buffer space")}, "nftpolicy")

	if ne.Status.LocalPods != 2 {
		t.Errorf("LocalPods = %d after a failure, want the last programmed 2", ne.Status.LocalPods)
	}
	programmed := meta.FindStatusCondition(ne.Status.Conditions, policyv1alpha1.ConditionProgrammed)
	if programmed == nil || programmed.Status != metav1.ConditionFalse || programmed.Reason != policyv1alpha1.ReasonApplyFailed {
		t.Errorf("Programmed = %+v, want False/ApplyFailed", programmed)
	}
	if !meta.IsStatusConditionTrue(ne.Status.Conditions, policyv1alpha1.ConditionDegraded) {
		t.Error("Degraded is not True after a failed sync")
	}
}

func TestStatusChangedIgnoresSyncTimes(t *testing.T) {
	a := &policyv1alpha1.NodeEnforcement{}
	desiredStatus(a, succeeded(time.Now(), time.Millisecond, modelWithProblems(1)), "nftpolicy")
	b := a.DeepCopy()
	desiredStatus(b, succeeded(time.Now().Add(time.Minute), time.Second, modelWithProblems(1)), "nftpolicy")
	if statusChanged(&a.Status, &b.Status) {
		t.Error("a later sync with the same outcome counts as a change")
	}
	desiredStatus(b, succeeded(time.Now(), 0, &selectors.Model{}), "nftpolicy")
	if !statusChanged(&a.Status, &b.Status) {
		t.Error("a sync with other counts does not count as a change")
	}
}

// succeeded is the outcome of a sync that resolved m and committed nothing else worth counting.
func succeeded(started time.Time, d time.Duration, m *selectors.Model) syncOutcome {
	return syncOutcome{started: started, duration: d, model: m, problems: problemsInEffect(m), counts: countsOf(m, policiesInEffect(m), nil)}
}

// derive recomputes what it derives from a model exactly when the Changes say it may differ.
func TestDeriveFollowsTheChanges(t *testing.T) {
	var s syncState
	m := modelWithProblems(2)
	full := selectors.FullChanges()
	s.derive(m, &full)
	if want := policiesInEffect(m); !reflect.DeepEqual(s.inEffect, want) {
		t.Fatalf("in effect = %v, want %v", s.inEffect, want)
	}
	if want := problemsInEffect(m); !reflect.DeepEqual(s.problems, want) {
		t.Fatalf("problems = %v, want %v", s.problems, want)
	}

	// New problems, same isolations: the problems follow.
	fewer := *m
	fewer.Problems = slices.Clone(m.Problems[1:])
	s.derive(&fewer, &selectors.Changes{Problems: true})
	if want := problemsInEffect(&fewer); !reflect.DeepEqual(s.problems, want) {
		t.Errorf("after the problems changed: %v, want %v", s.problems, want)
	}

	// remote-policy comes into effect on a local pod: its problem appears.
	widened := fewer
	widened.LocalPods = slices.Clone(m.LocalPods)
	widened.LocalPods[1].Ingress = &selectors.Isolation{Policies: []selectors.PolicyRef{remotePolicy}}
	changes := selectors.Changes{LocalPods: sets.New(widened.LocalPods[1].Key())}
	s.derive(&widened, &changes)
	if want := policiesInEffect(&widened); !reflect.DeepEqual(s.inEffect, want) || !s.inEffect[remotePolicy] {
		t.Errorf("after remote-policy came into effect: in effect = %v, want %v", s.inEffect, want)
	}
	if want := problemsInEffect(&widened); !reflect.DeepEqual(s.problems, want) || len(s.problems) != len(fewer.Problems) {
		t.Errorf("after remote-policy came into effect: problems = %v, want %v", s.problems, want)
	}
}

func TestOnlyTheElementCountWaits(t *testing.T) {
	a := &policyv1alpha1.NodeEnforcementStatus{LocalPods: 3, IsolatedPods: 1, PoliciesInEffect: 1, Chains: 9, SetElements: 40}
	for _, tc := range []struct {
		name       string
		change     func(*policyv1alpha1.NodeEnforcementStatus)
		meaningful bool
	}{
		{"element count", func(s *policyv1alpha1.NodeEnforcementStatus) { s.SetElements++ }, false},
		{"chains", func(s *policyv1alpha1.NodeEnforcementStatus) { s.Chains++ }, true},
		{"isolated pods", func(s *policyv1alpha1.NodeEnforcementStatus) { s.IsolatedPods++ }, true},
		{"local pods", func(s *policyv1alpha1.NodeEnforcementStatus) { s.LocalPods++ }, true},
		{"policies in effect", func(s *policyv1alpha1.NodeEnforcementStatus) { s.PoliciesInEffect++ }, true},
	} {
		b := a.DeepCopy()
		tc.change(b)
		if !statusChanged(a, b) {
			t.Errorf("%s: not a change", tc.name)
		}
		if got := meaningfulChange(a, b); got != tc.meaningful {
			t.Errorf("%s: meaningfulChange = %v, want %v", tc.name, got, tc.meaningful)
		}
	}
	if a.SetElements != 40 || a.LastSyncTime != nil {
		t.Errorf("comparing changed the status: %+v", a)
	}
}

// TestStatusInputsDecideAsTheStatusesWould checks writeStatus's shortcut: comparing the inputs of
// two syncs gives the same answers as building both statuses and comparing them (statusChanged and
// meaningfulChange below), for every pair of a set of outcomes.
func TestStatusInputsDecideAsTheStatusesWould(t *testing.T) {
	now := time.Now()
	withElements := func(out syncOutcome, n int) syncOutcome { out.counts.setElements = n; return out }
	withChains := func(out syncOutcome, n int) syncOutcome { out.counts.chains = n; return out }
	failed := func(step, msg string) syncOutcome {
		return syncOutcome{started: now, step: step, err: fmt.Errorf("%s", msg)}
	}
	type sync struct {
		name       string
		generation int64
		out        syncOutcome
	}
	syncs := []sync{
		{"ok", 1, succeeded(now, time.Millisecond, modelWithProblems(0))},
		{"ok later", 1, succeeded(now.Add(time.Minute), time.Second, modelWithProblems(0))},
		{"ok next generation", 2, succeeded(now, time.Millisecond, modelWithProblems(0))},
		{"more elements", 1, withElements(succeeded(now, time.Millisecond, modelWithProblems(0)), 7)},
		{"more chains", 1, withChains(succeeded(now, time.Millisecond, modelWithProblems(0)), 7)},
		{"no local pods", 1, succeeded(now, 0, &selectors.Model{})},
		{"one problem", 1, succeeded(now, 0, modelWithProblems(1))},
		{"max problems", 1, succeeded(now, 0, modelWithProblems(policyv1alpha1.MaxProblems))},
		{"max+1 problems", 1, succeeded(now, 0, modelWithProblems(policyv1alpha1.MaxProblems+1))},
		{"apply failed", 1, failed(stepApply, "no buffer space")},
		{"apply failed otherwise", 1, failed(stepApply, "invalid argument")},
		{"snapshot failed", 1, failed(stepSnapshot, "no buffer space")},
	}
	var decided int
	for _, first := range syncs {
		for _, then := range syncs {
			// As writeStatus does: the next status starts from the written one.
			written := &policyv1alpha1.NodeEnforcement{ObjectMeta: metav1.ObjectMeta{Generation: first.generation}}
			desiredStatus(written, first.out, "nftpolicy")
			next := written.DeepCopy()
			next.Generation = then.generation
			desiredStatus(next, then.out, "nftpolicy")

			was, is := statusInputsOf(first.generation, first.out), statusInputsOf(then.generation, then.out)
			if got, want := is.equal(&was, true), !statusChanged(&written.Status, &next.Status); got != want {
				t.Errorf("%s then %s: inputs equal = %v, statuses equal = %v", first.name, then.name, got, want)
			}
			if got, want := is.equal(&was, false), !meaningfulChange(&written.Status, &next.Status); got != want {
				t.Errorf("%s then %s: inputs equal but for elements = %v, statuses equal but for elements = %v", first.name, then.name, got, want)
			}
			if !is.equal(&was, true) {
				decided++
			}
		}
	}
	if decided == 0 {
		t.Fatal("no pair of outcomes differs: the cases test nothing")
	}
}

// meaningfulChange reports whether a status change is more than the element count: conditions,
// problems, the observed generation, the local pod, policy and chain counts.
func meaningfulChange(a, b *policyv1alpha1.NodeEnforcementStatus) bool {
	x, y := *a, *b // shallow copies: only scalar fields are cleared
	x.SetElements, y.SetElements = 0, 0
	return statusChanged(&x, &y)
}

// statusChanged compares two statuses, ignoring when and how long the sync ran.
func statusChanged(a, b *policyv1alpha1.NodeEnforcementStatus) bool {
	x, y := *a, *b
	x.LastSyncTime, x.LastSyncDuration, y.LastSyncTime, y.LastSyncDuration = nil, nil, nil, nil
	return !equality.Semantic.DeepEqual(&x, &y)
}
