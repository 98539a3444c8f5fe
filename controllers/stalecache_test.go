package controllers

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	dto "github.com/prometheus/client_model/go"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	toolscache "k8s.io/client-go/tools/cache"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
)

// TestStaleCacheIsNeverProgrammed checks the status of a sync that committed while an informer
// failed, and of the report an agent writes before its first sync: Programmed is False with the
// reason and the failing type, and a report without a sync keeps the counts of what the table holds.
func TestStaleCacheIsNeverProgrammed(t *testing.T) {
	forbidden := watchFailure{typ: "v1.NetworkPolicy", err: apierrors.NewForbidden(
		schema.GroupResource{Group: "networking.k8s.io", Resource: "networkpolicies"}, "", errors.New("no rule"))}
	refused := watchFailure{typ: "v1.Pod", err: errors.New("connection refused")}
	m := modelWithProblems(0)
	synced := succeeded(time.Now(), time.Millisecond, m)

	for _, tc := range []struct {
		name       string
		out        syncOutcome
		wantReason string
		wantPods   int32
	}{
		{"forbidden after a sync", withStale(synced, forbidden, refused), policyv1alpha1.ReasonForbidden, 2},
		{"refused after a sync", withStale(synced, refused), policyv1alpha1.ReasonCacheStale, 2},
		{"forbidden before any sync", syncOutcome{started: time.Now(), stale: []watchFailure{forbidden}}, policyv1alpha1.ReasonForbidden, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ne := &policyv1alpha1.NodeEnforcement{Status: policyv1alpha1.NodeEnforcementStatus{LocalPods: 7}}
			desiredStatus(ne, tc.out, "nftpolicy")
			programmed := meta.FindStatusCondition(ne.Status.Conditions, policyv1alpha1.ConditionProgrammed)
			if programmed.Status != metav1.ConditionFalse || programmed.Reason != tc.wantReason {
				t.Errorf("Programmed %s/%s, want False/%s", programmed.Status, programmed.Reason, tc.wantReason)
			}
			for _, f := range tc.out.stale {
				if !strings.Contains(programmed.Message, f.typ) || !strings.Contains(programmed.Message, f.err.Error()) {
					t.Errorf("Programmed message %q does not name %s and its error", programmed.Message, f.typ)
				}
			}
			if !meta.IsStatusConditionTrue(ne.Status.Conditions, policyv1alpha1.ConditionDegraded) {
				t.Error("not Degraded")
			}
			if ne.Status.LocalPods != tc.wantPods {
				t.Errorf("localPods %d, want %d", ne.Status.LocalPods, tc.wantPods)
			}
		})
	}

	a, b := statusInputsOf(1, synced), statusInputsOf(1, withStale(synced, forbidden))
	if a.equal(&b, true) {
		t.Error("a sync with a failing informer has the same status inputs as one without")
	}
}

func withStale(out syncOutcome, failures ...watchFailure) syncOutcome {
	out.stale = failures
	return out
}

// TestWatchFailuresUntilRecovered checks what the cache's watch error handler notes: a refused list
// until the informer recovers, never a watch that ended as watches do.
func TestWatchFailuresUntilRecovered(t *testing.T) {
	w := NewWatchFailures(logr.Discard())
	refl := toolscache.NewReflector(&toolscache.ListWatch{}, &corev1.Pod{}, toolscache.NewStore(toolscache.MetaNamespaceKeyFunc), 0)
	ctx := context.Background()

	w.Handler(ctx, refl, io.EOF)
	w.Handler(ctx, refl, apierrors.NewResourceExpired("too old"))
	if got := w.current(); len(got) != 0 {
		t.Fatalf("watches that ended normally noted as failures: %v", got)
	}
	w.Handler(ctx, refl, apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "", errors.New("no rule")))
	got := w.current()
	if len(got) != 1 || got[0].typ != "v1.Pod" || staleReason(got) != policyv1alpha1.ReasonForbidden {
		t.Fatalf("failures %v, want v1.Pod, forbidden", got)
	}
	if v := failingGauge(t, "v1.Pod"); v != 1 {
		t.Errorf("nftpolicy_watch_failing{type=v1.Pod} = %v, want 1", v)
	}
	select {
	case <-w.noted:
	default:
		t.Error("a new failure did not signal the reporter")
	}

	// The resource version did not move (the reflector never listed): only a quiet spell clears it.
	w.mu.Lock()
	w.failing["v1.Pod"].last = time.Now().Add(-watchRecoveredAfter)
	w.mu.Unlock()
	if got := w.current(); len(got) != 0 {
		t.Errorf("still failing after %s without an error: %v", watchRecoveredAfter, got)
	}
	if v := failingGauge(t, "v1.Pod"); v != 0 {
		t.Errorf("nftpolicy_watch_failing{type=v1.Pod} = %v after recovery, want 0", v)
	}
}

func failingGauge(t *testing.T, typ string) float64 {
	t.Helper()
	var m dto.Metric
	if err := watchFailing.WithLabelValues(typ).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetGauge().GetValue()
}
