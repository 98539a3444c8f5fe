package controllers

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// rebuildResolver reads every pod, namespace and policy from the cache into a new resolver.
func rebuildResolver(ctx context.Context, pods toolscache.Store, c client.Reader, node string, clusterPolicies bool) (*selectors.Resolver, error) {
	snap, err := snapshot(ctx, pods, c, node, clusterPolicies)
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
func refresh(ctx context.Context, pods toolscache.Store, c client.Reader, res *selectors.Resolver, node string, objects map[objectRef]time.Time) ([]netip.Addr, error) {
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
		case kindClusterNetworkPolicy:
			cnp := &v1beta1.ClusterNetworkPolicy{}
			// Shared with the cache, as NetworkPolicies are.
			if err = c.Get(ctx, key, cnp, client.UnsafeDisableDeepCopy); err == nil {
				res.SetClusterPolicy(cnp)
			} else if apierrors.IsNotFound(err) {
				res.DeleteClusterPolicy(ref.name)
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
