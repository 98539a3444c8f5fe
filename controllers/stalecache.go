package controllers

// An informer whose list or watch fails keeps serving what it last held: without a word, the agent
// would go on enforcing a cluster that no longer exists (a policy deleted, a pod moved, a permission
// revoked from its role). WatchFailures notes every such failure, as the cache's watch error handler,
// until the informer has recovered (see current); while any is noted the NodeEnforcement says so (Programmed is
// False with reason Forbidden or CacheStale, naming the type), the agent is not ready, and
// nftpolicy_watch_failing is 1 for the type.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/event"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
)

// WatchFailures records the informers whose list or watch fails. Its Handler goes in the cache's
// options (cache.Options.DefaultWatchErrorHandler); the zero value is not usable, see NewWatchFailures.
type WatchFailures struct {
	log logr.Logger

	mu      sync.Mutex
	failing map[string]*watchFailure // by the informer's type, e.g. "v1.NetworkPolicy"
	// noted receives a value (without blocking) whenever a type starts failing.
	noted chan struct{}
}

// watchFailure is one informer's failure.
type watchFailure struct {
	typ       string
	err       error
	reflector *toolscache.Reflector
	// listedAt is the reflector's last synced resource version when the error came, at last.
	listedAt string
	last     time.Time
}

// watchRecoveredAfter is how long an informer must go without an error to count as recovered, when
// its resource version did not move: a failing reflector retries at least once a minute (client-go's
// backoff is capped at 30 seconds, plus as much jitter), so a quiet minute and a half means that its
// last retry is listing and watching.
const watchRecoveredAfter = 90 * time.Second

// NewWatchFailures returns an empty record that logs to log.
func NewWatchFailures(log logr.Logger) *WatchFailures {
	return &WatchFailures{log: log, failing: map[string]*watchFailure{}, noted: make(chan struct{}, 1)}
}

// Handler is a watch error handler for the cache: it logs as client-go's default does, then notes
// the failure. Watches that end as watches do (a closed stream, an expired resource version) are not
// failures: the reflector resumes them at once.
func (w *WatchFailures) Handler(ctx context.Context, r *toolscache.Reflector, err error) {
	toolscache.DefaultWatchErrorHandler(ctx, r, err)
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || apierrors.IsResourceExpired(err) || apierrors.IsGone(err) {
		return
	}
	typ := strings.TrimPrefix(r.TypeDescription(), "*")
	w.mu.Lock()
	_, known := w.failing[typ]
	w.failing[typ] = &watchFailure{typ: typ, err: err, reflector: r, listedAt: r.LastSyncResourceVersion(), last: time.Now()}
	w.mu.Unlock()
	watchFailing.WithLabelValues(typ).Set(1)
	if !known {
		w.log.Error(err, "Listing or watching failed; the table keeps enforcing what the cache last held until it recovers", "type", typ)
		select {
		case w.noted <- struct{}{}:
		default:
		}
	}
}

// current returns the failures of informers that have not recovered, by type, and forgets the others.
// An informer has recovered when it listed or watched past the resource version it held at its last
// error, or when no error came for watchRecoveredAfter: a list of a type that did not change since
// may return the same resource version. Nil-safe: a nil record has none.
func (w *WatchFailures) current() []watchFailure {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []watchFailure
	for typ, f := range w.failing {
		if f.reflector.LastSyncResourceVersion() != f.listedAt || time.Since(f.last) >= watchRecoveredAfter {
			delete(w.failing, typ)
			watchFailing.WithLabelValues(typ).Set(0)
			w.log.Info("Listing and watching recovered", "type", typ)
			continue
		}
		out = append(out, *f)
	}
	slices.SortFunc(out, func(a, b watchFailure) int { return strings.Compare(a.typ, b.typ) })
	return out
}

// staleReason is the condition reason for failures: Forbidden when the API server refused one of
// them (the agent's role lacks a permission), CacheStale otherwise.
func staleReason(failures []watchFailure) string {
	for _, f := range failures {
		if apierrors.IsForbidden(f.err) {
			return policyv1alpha1.ReasonForbidden
		}
	}
	return policyv1alpha1.ReasonCacheStale
}

// staleMessage names each failing type and its error.
func staleMessage(failures []watchFailure) string {
	parts := make([]string, len(failures))
	for i, f := range failures {
		parts[i] = fmt.Sprintf("cannot list or watch %s: %v", f.typ, f.err)
	}
	return strings.Join(parts, "; ") + "; the table enforces what the cache last held"
}

// staleRecheckInterval is how often an agent with failing informers checks whether they recovered.
const staleRecheckInterval = 10 * time.Second

// ReportStaleCache writes the NodeEnforcement's status whenever an informer fails before the first
// sync: until every informer has synced no sync runs, so without it an agent whose role lacks a
// permission would leave the status of its previous run in place. After the first sync, every sync
// reports failing informers itself, and an informer that starts failing asks for one. It returns
// when ctx is done.
func (r *NodeReconciler) ReportStaleCache(ctx context.Context) {
	if r.Watches == nil {
		return
	}
	log := logf.FromContext(ctx)
	tick := time.NewTicker(staleRecheckInterval)
	defer tick.Stop()
	for {
		noted := false
		select {
		case <-ctx.Done():
			return
		case <-r.Watches.noted:
			noted = true
		case <-tick.C:
		}
		if r.synced.Load() {
			if noted && r.recheck != nil {
				select {
				case r.recheck <- event.GenericEvent{}:
				case <-ctx.Done():
					return
				}
			}
			continue
		}
		failures := r.Watches.current()
		if len(failures) == 0 {
			continue
		}
		writeCtx, cancel := context.WithTimeout(ctx, staleRecheckInterval)
		err := r.writeStatus(writeCtx, syncOutcome{started: time.Now(), stale: failures})
		cancel()
		if err != nil {
			log.Error(err, "Recording the failing informers on the NodeEnforcement")
		}
	}
}
