package controllers

import (
	"context"
	"sync"
	"time"

	"github.com/go-logr/logr"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// Status writes back off from statusRetryMin to statusRetryMax while the API server refuses them.
const (
	statusRetryMin = 100 * time.Millisecond
	statusRetryMax = 30 * time.Second
)

// statusWriter writes the outcomes of syncs to the node's NodeEnforcement from its own goroutine, so
// that no sync waits for the API server: a slow or unreachable API server must not delay the repair
// of a table another writer changed, or the isolation of a new pod. Only the latest outcome is
// written; a failed write is retried, with backoff, until a newer outcome replaces it.
type statusWriter struct {
	mu     sync.Mutex
	latest *syncOutcome // not written yet
	wake   chan struct{}
}

func newStatusWriter() *statusWriter {
	return &statusWriter{wake: make(chan struct{}, 1)}
}

// submit hands over a sync's outcome, replacing one not written yet. A drift repair of the replaced
// outcome is carried over, so that its Event is still emitted.
func (w *statusWriter) submit(out syncOutcome) {
	w.mu.Lock()
	if prev := w.latest; prev != nil && out.repaired == nil {
		out.repaired = prev.repaired
	}
	w.latest = &out
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take returns the outcome to write, if any.
func (w *statusWriter) take() *syncOutcome {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.latest
	w.latest = nil
	return out
}

// putBack returns an outcome whose write failed, unless a newer one came meanwhile.
func (w *statusWriter) putBack(out *syncOutcome) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.latest == nil {
		w.latest = out
	} else if w.latest.repaired == nil {
		w.latest.repaired = out.repaired
	}
}

// run writes outcomes until ctx is done.
func (r *NodeReconciler) runStatusWriter(ctx context.Context, log logr.Logger) {
	ctx = logf.IntoContext(ctx, log)
	w := r.status
	retry := statusRetryMin
	var timer <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer:
		}
		timer = nil
		out := w.take()
		if out == nil {
			continue
		}
		if err := r.writeStatus(ctx, *out); err != nil {
			if ctx.Err() != nil {
				return
			}
			syncFailures.WithLabelValues(stepStatus).Inc()
			log.Error(err, "Writing the NodeEnforcement status; retrying", "after", retry)
			w.putBack(out)
			timer = time.After(retry)
			retry = min(2*retry, statusRetryMax)
			continue
		}
		retry = statusRetryMin
		if out.repaired != nil {
			r.reportDriftRepair(ctx, out.repaired)
		}
	}
}
