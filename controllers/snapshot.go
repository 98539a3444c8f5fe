package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/network-policy-api/apis/v1beta1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// snapshot lists the world this node resolves: every pod (peers may live anywhere) from the agent's
// pod store, and every namespace and NetworkPolicy (and ClusterNetworkPolicy, when clusterPolicies)
// from the cache.
//
// The snapshot shares the cache's objects instead of deep-copying them on every sync (most of a sync's
// allocations otherwise): the snapshot and selectors.Resolve only read them, and nothing keeps them
// past the sync.
func snapshot(ctx context.Context, pods toolscache.Store, c client.Reader, node string, clusterPolicies bool) (*selectors.Snapshot, error) {
	items := pods.List()
	ps := make([]selectors.Pod, 0, len(items))
	for _, obj := range items {
		p, err := podOfObject(obj)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p.Pod)
	}
	return snapshotWith(ctx, c, node, ps, clusterPolicies)
}

// clusterPoliciesOf adds every ClusterNetworkPolicy c lists to s.
func clusterPoliciesOf(ctx context.Context, c client.Reader, s *selectors.Snapshot) (*selectors.Snapshot, error) {
	var cnps v1beta1.ClusterNetworkPolicyList
	if err := c.List(ctx, &cnps, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing cluster network policies: %w", err)
	}
	s.ClusterPolicies = make([]*v1beta1.ClusterNetworkPolicy, len(cnps.Items))
	for i := range cnps.Items {
		s.ClusterPolicies[i] = &cnps.Items[i]
	}
	return s, nil
}

// snapshotWith completes a snapshot of pods with every namespace and NetworkPolicy c lists, and every
// ClusterNetworkPolicy when clusterPolicies.
func snapshotWith(ctx context.Context, c client.Reader, node string, pods []selectors.Pod, clusterPolicies bool) (*selectors.Snapshot, error) {
	var namespaces corev1.NamespaceList
	if err := c.List(ctx, &namespaces, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing namespaces: %w", err)
	}
	var policies networkingv1.NetworkPolicyList
	if err := c.List(ctx, &policies, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing network policies: %w", err)
	}

	s := &selectors.Snapshot{
		Node:       node,
		Pods:       pods,
		Namespaces: make([]selectors.Namespace, 0, len(namespaces.Items)),
		Policies:   make([]*networkingv1.NetworkPolicy, 0, len(policies.Items)),
	}
	for i := range namespaces.Items {
		s.Namespaces = append(s.Namespaces, selectors.NamespaceOf(&namespaces.Items[i]))
	}
	for i := range policies.Items {
		s.Policies = append(s.Policies, &policies.Items[i])
	}
	if clusterPolicies {
		return clusterPoliciesOf(ctx, c, s)
	}
	return s, nil
}
