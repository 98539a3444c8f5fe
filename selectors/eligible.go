package selectors

import corev1 "k8s.io/api/core/v1"

// Eligible reports whether a pod takes part in NetworkPolicy at all, both as a selected pod and as
// a peer: a hostNetwork pod shares the node's addresses, a pod without an address cannot be matched,
// and a terminated pod's address may already belong to another pod.
func Eligible(p *Pod) bool {
	return !p.HostNetwork && len(p.IPs) > 0 &&
		p.Phase != corev1.PodSucceeded && p.Phase != corev1.PodFailed
}
