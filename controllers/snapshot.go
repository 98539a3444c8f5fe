package controllers

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// snapshot lists the world this node resolves: every pod (peers may live anywhere) from the agent's
// pod store, and every namespace and NetworkPolicy from the cache.
//
// The snapshot shares the cache's objects instead of deep-copying them on every sync (most of a sync's
// allocations otherwise): the snapshot and selectors.Resolve only read them, and nothing keeps them
// past the sync.
func snapshot(ctx context.Context, pods toolscache.Store, c client.Reader, node string) (*selectors.Snapshot, error) {
	items := pods.List()
	ps := make([]selectors.Pod, 0, len(items))
	for _, obj := range items {
		p, err := podOfObject(obj)
		if err != nil {
			return nil, err
		}
		ps = append(ps, p.Pod)
	}
	return snapshotWith(ctx, c, node, ps)
}

// snapshotWith completes a snapshot of pods with every namespace and NetworkPolicy c lists.
func snapshotWith(ctx context.Context, c client.Reader, node string, pods []selectors.Pod) (*selectors.Snapshot, error) {
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
	for _, ns := range namespaces.Items {
		s.Namespaces = append(s.Namespaces, selectors.Namespace{Name: ns.Name, Labels: ns.Labels})
	}
	for i := range policies.Items {
		s.Policies = append(s.Policies, &policies.Items[i])
	}
	return s, nil
}

// podOf converts a Pod. Addresses that do not parse are left out: the pod is then enforced
// without them, which only ever removes a peer.
func podOf(pod *corev1.Pod) selectors.Pod {
	p := selectors.Pod{
		Namespace:   pod.Namespace,
		Name:        pod.Name,
		Labels:      pod.Labels,
		Node:        pod.Spec.NodeName,
		Phase:       pod.Status.Phase,
		HostNetwork: pod.Spec.HostNetwork,
	}
	ips := pod.Status.PodIPs
	if len(ips) == 0 && pod.Status.PodIP != "" {
		ips = []corev1.PodIP{{IP: pod.Status.PodIP}}
	}
	for _, ip := range ips {
		if addr, err := netip.ParseAddr(ip.IP); err == nil {
			p.IPs = append(p.IPs, addr.Unmap())
		}
	}
	for _, c := range pod.Spec.Containers {
		for _, port := range c.Ports {
			p.Ports = append(p.Ports, selectors.ContainerPort{Name: port.Name, Number: port.ContainerPort, Protocol: port.Protocol})
		}
	}
	return p
}
