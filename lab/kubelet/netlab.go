package kubelet

import (
	"context"
	"fmt"
	"net/netip"

	corev1 "k8s.io/api/core/v1"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// NetlabSandboxes makes each pod's sandbox a netlab pod namespace on one node, named after the
// pod's namespace and name, and a hostNetwork pod's the node's own namespace.
type NetlabSandboxes struct {
	Node *netlab.Node
	// Families are the cluster's IP families, primary first: the addresses a pod's status shows.
	Families []corev1.IPFamily
}

var _ Sandboxes = (*NetlabSandboxes)(nil)

// Create adds the pod's namespace and veth to the node.
func (s *NetlabSandboxes) Create(_ context.Context, pod *corev1.Pod) (Sandbox, error) {
	if pod.Spec.HostNetwork {
		return &netlabSandbox{path: s.Node.Path, ips: s.pick(s.Node.IPv4, s.Node.IPv6)}, nil
	}
	p, err := s.Node.AddPod(pod.Namespace + "." + pod.Name)
	if err != nil {
		return nil, fmt.Errorf("adding the namespace of pod %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return &netlabSandbox{path: p.Path, ips: s.pick(p.IPv4, p.IPv6), remove: func() error {
		return s.Node.RemovePod(p)
	}}, nil
}

// pick orders the addresses by the cluster's families.
func (s *NetlabSandboxes) pick(v4, v6 netip.Addr) []netip.Addr {
	var ips []netip.Addr
	for _, f := range s.Families {
		switch f {
		case corev1.IPv4Protocol:
			ips = append(ips, v4)
		case corev1.IPv6Protocol:
			ips = append(ips, v6)
		}
	}
	return ips
}

type netlabSandbox struct {
	path   string
	ips    []netip.Addr
	remove func() error // nil: the node's namespace, never removed
}

func (b *netlabSandbox) NetnsPath() string { return b.path }
func (b *netlabSandbox) IPs() []netip.Addr { return b.ips }

func (b *netlabSandbox) Remove() error {
	if b.remove == nil {
		return nil
	}
	return b.remove()
}
