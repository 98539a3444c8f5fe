package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"sync"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// Kinds of watched objects, as the event handlers name them.
const (
	kindPod           = "Pod"
	kindNamespace     = "Namespace"
	kindNetworkPolicy = "NetworkPolicy"
)

// maxDirtyObjects bounds the objects remembered between two syncs; past it, the next sync re-reads
// the whole cache instead (a burst that large costs a full resolve anyway).
const maxDirtyObjects = 10_000

// objectRef names one watched object.
type objectRef struct {
	kind      string
	namespace string
	name      string
}

// dirtyObjects remembers which objects changed since the last sync. The event handlers add to it; the
// sync takes it. It never loses a change: when it overflows, or before the first sync, it asks for a
// full re-read of the cache instead.
type dirtyObjects struct {
	mu      sync.Mutex
	objects map[objectRef]struct{}
	full    bool
	spare   spareMap[struct{}]
}

func (d *dirtyObjects) add(kind string, obj client.Object) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.full {
		return
	}
	if len(d.objects) >= maxDirtyObjects {
		d.objects, d.full = nil, true
		return
	}
	if d.objects == nil {
		d.objects = d.spare.get()
	}
	d.objects[objectRef{kind: kind, namespace: obj.GetNamespace(), name: obj.GetName()}] = struct{}{}
}

// release hands back a map that take returned, once read, for later changes to reuse.
func (d *dirtyObjects) release(objects map[objectRef]struct{}) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.spare.put(objects)
}

// maxReleasedEntries bounds the maps kept for reuse: clearing a map keeps its buckets, and a
// burst's map is not worth holding on to.
const maxReleasedEntries = 1024

// spareMap holds one emptied map for reuse (dirtyObjects and changeClock hand their maps to each
// sync and get them back). Its owner's lock guards it.
type spareMap[V any] struct{ m map[objectRef]V }

// get returns the spare map, or a new one.
func (s *spareMap[V]) get() map[objectRef]V {
	if m := s.m; m != nil {
		s.m = nil
		return m
	}
	return map[objectRef]V{}
}

// put keeps m, emptied, unless a burst grew it.
func (s *spareMap[V]) put(m map[objectRef]V) {
	if m == nil || len(m) > maxReleasedEntries {
		return
	}
	clear(m)
	s.m = m
}

// take returns the changed objects and forgets them. full is true when only re-reading the whole cache
// is correct.
func (d *dirtyObjects) take() (objects map[objectRef]struct{}, full bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	objects, full = d.objects, d.full
	d.objects, d.full = nil, false
	return objects, full
}

// pending reports whether a change is waiting for the next sync.
func (d *dirtyObjects) pending() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.full || len(d.objects) > 0
}

// putBack returns what a failed sync took, so that the next sync reads it again.
func (d *dirtyObjects) putBack(objects map[objectRef]struct{}, full bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if full || d.full || len(d.objects)+len(objects) > maxDirtyObjects {
		d.objects, d.full = nil, true
		return
	}
	if d.objects == nil {
		d.objects = map[objectRef]struct{}{}
	}
	for ref := range objects {
		d.objects[ref] = struct{}{}
	}
}

// rebuildResolver reads every pod, namespace and policy from the cache into a new resolver.
func rebuildResolver(ctx context.Context, pods toolscache.Store, c client.Reader, node string) (*selectors.Resolver, error) {
	snap, err := snapshot(ctx, pods, c, node)
	if err != nil {
		return nil, err
	}
	res := selectors.NewResolver(node)
	res.Load(snap)
	return res, nil
}

// refresh reads the changed objects from the cache into the resolver: the cache holds their latest
// state, and an object no longer there was deleted. It returns the addresses of the changed pods that
// are on node: their host interfaces may have changed too, even when nothing selectors read did (a
// pod deleted and created again under the same name and address has a new veth).
func refresh(ctx context.Context, pods toolscache.Store, c client.Reader, res *selectors.Resolver, node string, objects map[objectRef]struct{}) ([]netip.Addr, error) {
	var local []netip.Addr
	for ref := range objects {
		key := types.NamespacedName{Namespace: ref.namespace, Name: ref.name}
		var err error
		switch ref.kind {
		case kindPod:
			var obj any
			var exists bool
			if obj, exists, err = pods.GetByKey(key.String()); err == nil && exists {
				var p *CachedPod
				if p, err = podOfObject(obj); err == nil {
					res.SetPod(p.Pod)
					if p.Node == node {
						local = append(local, p.IPs...)
					}
				}
			} else if err == nil {
				res.DeletePod(ref.namespace, ref.name)
			}
		case kindNamespace:
			var ns corev1.Namespace
			// Shares the cache's labels, as snapshot's list does: the resolver only reads them.
			if err = c.Get(ctx, key, &ns, client.UnsafeDisableDeepCopy); err == nil {
				res.SetNamespace(selectors.Namespace{Name: ns.Name, Labels: ns.Labels})
			} else if apierrors.IsNotFound(err) {
				res.DeleteNamespace(ref.name)
				err = nil
			}
		case kindNetworkPolicy:
			np := &networkingv1.NetworkPolicy{}
			// Shares the cache's object, as snapshot's list does: the resolver keeps it and only
			// reads it, and the cache replaces objects rather than changing them.
			if err = c.Get(ctx, key, np, client.UnsafeDisableDeepCopy); err == nil {
				res.SetPolicy(np)
			} else if apierrors.IsNotFound(err) {
				res.DeletePolicy(ref.namespace, ref.name)
				err = nil
			}
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s %s from the cache: %w", ref.kind, key, err)
		}
	}
	return local, nil
}
