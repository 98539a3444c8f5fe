package controllers

import (
	"context"
	"fmt"
	"maps"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// SetupWithManager registers the agent's watches. Every event of every watched kind maps to the same
// request, this node's name, so a burst of changes coalesces in the workqueue into one sync of every
// object that changed. The controller starts its workers only once the caches of all watches have synced: nothing is
// programmed from a partial view of the cluster.
//
// Pods are read from the pod informer's store, which holds CachedPods (see CacheOptions).
func (r *NodeReconciler) SetupWithManager(mgr ctrl.Manager) error {
	informer, err := mgr.GetCache().GetInformer(context.Background(), &corev1.Pod{})
	if err != nil {
		return fmt.Errorf("getting the pod informer: %w", err)
	}
	shared, ok := informer.(toolscache.SharedIndexInformer)
	if !ok {
		return fmt.Errorf("the pod informer is a %T, not a shared index informer whose store the agent can read", informer)
	}
	r.pods = shared.GetStore()
	r.recheck = make(chan event.GenericEvent)
	const name = "nodeenforcement"
	r.status = newStatusWriter()
	statusLog := mgr.GetLogger().WithValues("controller", name, "name", r.NodeName)
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		r.runStatusWriter(ctx, statusLog)
		return nil
	})); err != nil {
		return fmt.Errorf("adding the status writer: %w", err)
	}
	b := ctrl.NewControllerManagedBy(mgr).
		Named(name).
		WithLogConstructor(nodeLogConstructor(mgr.GetLogger().WithValues("controller", name), r.NodeName)).
		Watches(&corev1.Pod{}, r.enqueueNode(kindPod), builder.WithPredicates(podChanged)).
		Watches(&corev1.Namespace{}, r.enqueueNode(kindNamespace), builder.WithPredicates(labelsChanged)).
		Watches(&networkingv1.NetworkPolicy{}, r.enqueueNode(kindNetworkPolicy), builder.WithPredicates(policyChanged)).
		// A sync that no object asked for: an informer started failing (see ReportStaleCache).
		WatchesRawSource(source.Channel(r.recheck, handler.Funcs{
			GenericFunc: func(_ context.Context, _ event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
				q.Add(r.request())
			},
		}))
	if r.ClusterNetworkPolicies {
		b = b.Watches(&v1beta1.ClusterNetworkPolicy{}, r.enqueueNode(kindClusterNetworkPolicy),
			builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	}
	if r.ForeignChanges != nil {
		events := make(chan event.TypedGenericEvent[nft.ForeignChange])
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			forwardForeignChanges(ctx, r.ForeignChanges, events)
			return nil
		})); err != nil {
			return fmt.Errorf("adding the table watch: %w", err)
		}
		b = b.WatchesRawSource(source.Channel(events, r.enqueueForeign()))
	}
	return b.Complete(r)
}

// forwardForeignChanges passes news of foreign changes to the controller's source until ctx is done
// or the news stops.
func forwardForeignChanges(ctx context.Context, in <-chan nft.ForeignChange, out chan<- event.TypedGenericEvent[nft.ForeignChange]) {
	for {
		select {
		case <-ctx.Done():
			return
		case c, ok := <-in:
			if !ok {
				return
			}
			select {
			case out <- event.TypedGenericEvent[nft.ForeignChange]{Object: c}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// enqueueForeign notes news of a foreign change to the table and enqueues this node.
func (r *NodeReconciler) enqueueForeign() handler.TypedEventHandler[nft.ForeignChange, reconcile.Request] {
	return handler.TypedFuncs[nft.ForeignChange, reconcile.Request]{
		GenericFunc: func(_ context.Context, e event.TypedGenericEvent[nft.ForeignChange], q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			r.pending.noteForeign(e.Object)
			q.Add(r.request())
		},
	}
}

// nodeLogConstructor returns the loggers of the controller's syncs: base for the controller itself,
// and for a request the values the builder's default gives it (namespace and name). Every request
// names this node, so its logger is built once, not once per sync as the default does.
func nodeLogConstructor(base logr.Logger, node string) func(*reconcile.Request) logr.Logger {
	perNode := base.WithValues("namespace", "", "name", node)
	return func(req *reconcile.Request) logr.Logger {
		switch {
		case req == nil:
			return base
		case req.Namespace == "" && req.Name == node:
			return perNode
		default:
			return base.WithValues("namespace", req.Namespace, "name", req.Name)
		}
	}
}

// request is the one key every event maps to.
func (r *NodeReconciler) request() reconcile.Request {
	return reconcile.Request{NamespacedName: types.NamespacedName{Name: r.NodeName}}
}

// enqueueNode notes which object changed (the sync reads it again) and when, for the programming
// latency, and enqueues this node.
func (r *NodeReconciler) enqueueNode(kind string) handler.EventHandler {
	observe := func(obj client.Object, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		r.pending.note(kind, obj, time.Now())
		q.Add(r.request())
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			observe(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			observe(e.ObjectNew, q)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			observe(e.Object, q)
		},
		GenericFunc: func(_ context.Context, e event.GenericEvent, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
			observe(e.Object, q)
		},
	}
}

// podChanged drops pod updates that change nothing selectors read. Status updates of readiness, restart
// counts and the like are by far the most frequent pod events and never change a rule.
var podChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, errOld := podOfObject(e.ObjectOld)
		cur, errNew := podOfObject(e.ObjectNew)
		if errOld != nil || errNew != nil {
			return true
		}
		return !old.ReadsAs(&cur.Pod)
	},
}

// policyChanged drops NetworkPolicy updates that change neither the spec (its generation) nor the
// mode annotation (selectors.ModeAnnotation), which changes no generation.
var policyChanged = predicate.Or(predicate.GenerationChangedPredicate{}, predicate.Funcs{
	CreateFunc:  func(event.CreateEvent) bool { return false },
	DeleteFunc:  func(event.DeleteEvent) bool { return false },
	GenericFunc: func(event.GenericEvent) bool { return false },
	UpdateFunc: func(e event.UpdateEvent) bool {
		return e.ObjectOld.GetAnnotations()[selectors.ModeAnnotation] != e.ObjectNew.GetAnnotations()[selectors.ModeAnnotation]
	},
})

// labelsChanged drops namespace updates that touch neither labels nor the drop log annotation:
// namespace selectors read nothing else, and the drop log only LogAnnotation.
var labelsChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		return !maps.Equal(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) ||
			e.ObjectOld.GetAnnotations()[LogAnnotation] != e.ObjectNew.GetAnnotations()[LogAnnotation]
	},
}
