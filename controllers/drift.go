package controllers

import (
	"context"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
)

// Drift: another writer changed our table (a host script, a firewall reload, another agent). It is
// found in two ways, and repaired by replacing the whole table in one transaction, the same sync:
//   - news from the kernel (ForeignChanges: an nf_tables notification of a batch that touched our
//     table from another socket) makes the sync forget what it committed, so its Apply replaces all;
//   - reading the table back (Applier.Verify) on every resync, and whenever notifications were lost,
//     finds a change no notification told of (a restarted agent, a lost notification).

const actionRepairing = "Repairing"

// driftFound is a foreign change found and not repaired yet.
type driftFound struct {
	cause  string // policyv1alpha1.DriftCause*
	detail string
	at     time.Time
}

// checkTable acts on news of foreign changes and reads the table back when due: on a resync (a sync no
// change asked for) at most twice per resync period, and after notifications were lost. A change
// found is noted in the sync state, and the applier has forgotten its commit: the next Apply
// replaces the whole table.
func (r *NodeReconciler) checkTable(ctx context.Context, batch changeBatch) error {
	s := &r.state
	news := batch.foreign
	resync := len(batch.objects) == 0 && !batch.full && news == nil && time.Since(s.verifiedAt) >= r.resyncPeriod()/2
	if news != nil && news.At.Before(s.replacedAt) {
		// The watch saw the news before our last full replacement began, so the change it tells of
		// was committed before it and is undone (typically: a resync's read-back found it first).
		logf.FromContext(ctx).V(2).Info("Ignoring news of a foreign change that a full replacement since undid", "news", news.Detail)
		news = nil
	}
	switch {
	case news != nil && !news.Lost:
		s.noteDrift(policyv1alpha1.DriftCauseNotification, news.Detail, news.At)
		r.Applier.Forget()
	case news != nil || resync:
		if news != nil {
			notificationsLost.Inc()
			logf.FromContext(ctx).Info("Reading the table back: nf_tables notifications were lost", "reason", news.Detail)
		}
		started := time.Now()
		diffs, err := r.Applier.Verify()
		readBackDuration.Observe(time.Since(started).Seconds())
		if err != nil {
			return err
		}
		if len(diffs) > 0 {
			s.noteDrift(policyv1alpha1.DriftCauseReadBack, "the table differs from the last commit: "+strings.Join(diffs, "; "), started)
		} else {
			s.verifiedAt = started
		}
	}
	return nil
}

// noteDrift keeps the first foreign change found until it is repaired.
func (s *syncState) noteDrift(cause, detail string, at time.Time) {
	if s.drift == nil {
		s.drift = &driftFound{cause: cause, detail: detail, at: at}
	}
}

// repaired records the repair of the drift found, after a commit that replaced the whole table; the
// commit began at applying.
func (s *syncState) repaired(applying, committed time.Time) *policyv1alpha1.DriftRepair {
	d := s.drift
	s.drift = nil
	s.verifiedAt, s.replacedAt = committed, applying
	if d == nil {
		return nil
	}
	s.driftRepairs++
	s.lastRepair = &policyv1alpha1.DriftRepair{
		Time:          metav1.NewTime(d.at),
		Cause:         d.cause,
		Message:       d.detail,
		RepairedAfter: metav1.Duration{Duration: committed.Sub(d.at)},
	}
	driftRepairs.WithLabelValues(d.cause).Inc()
	return s.lastRepair
}

// reportDriftRepair emits an Event on the node's NodeEnforcement (the sync logged the repair).
func (r *NodeReconciler) reportDriftRepair(ctx context.Context, rep *policyv1alpha1.DriftRepair) {
	log := logf.FromContext(ctx)
	ne, err := r.nodeEnforcement(ctx)
	if err != nil {
		log.Error(err, "Not reporting the drift repair as an Event", "node", klog.KRef("", r.NodeName))
		return
	}
	r.Recorder.Eventf(ne, nil, corev1.EventTypeWarning, policyv1alpha1.ReasonDrifted, actionRepairing,
		"table inet %s was changed by another writer (%s, found by %s); replaced it whole after %s",
		r.Table, rep.Message, rep.Cause, rep.RepairedAfter.Round(time.Microsecond))
}
