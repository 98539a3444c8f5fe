package controllers

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// snapshot lists the world this node resolves, from the cache: every pod and namespace (peers may live
// anywhere) and every NetworkPolicy.
//
// The lists share the cache's objects instead of deep-copying them on every sync (most of a sync's
// allocations otherwise): the snapshot and selectors.Resolve only read them, and nothing keeps them
// past the sync.
func snapshot(ctx context.Context, c client.Reader, node string) (*selectors.Snapshot, error) {
	var pods corev1.PodList
	if err := c.List(ctx, &pods, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("listing pods: %w", err)
	}
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
		Pods:       make([]selectors.Pod, 0, len(pods.Items)),
		Namespaces: make([]selectors.Namespace, 0, len(namespaces.Items)),
		Policies:   make([]*networkingv1.NetworkPolicy, 0, len(policies.Items)),
	}
	for i := range pods.Items {
		s.Pods = append(s.Pods, podOf(&pods.Items[i]))
	}
	for _, ns := range namespaces.Items {
		s.Namespaces = append(s.Namespaces, selectors.Namespace{Name: ns.Name, Labels: ns.Labels})
	}
	for i := range policies.Items {
		s.Policies = append(s.Policies, &policies.Items[i])
	}
	return s, nil
}

// podOf converts a (stripped) Pod. Addresses that do not parse are left out: the pod is then enforced
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
