package selectors

import (
	"net/netip"

	corev1 "k8s.io/api/core/v1"
)

// PodOf converts a Pod. Addresses that do not parse are left out: the pod is then enforced
// without them, which only ever removes a peer. The result shares the Pod's labels map.
func PodOf(pod *corev1.Pod) Pod {
	p := Pod{
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
			p.Ports = append(p.Ports, ContainerPort{Name: port.Name, Number: port.ContainerPort, Protocol: port.Protocol})
		}
	}
	return p
}

// NamespaceOf converts a Namespace.
func NamespaceOf(ns *corev1.Namespace) Namespace {
	return Namespace{Name: ns.Name, Labels: ns.Labels}
}
