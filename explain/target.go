package explain

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// Target is one side of a connection as the user names it: a pod by namespace and name, or an
// address (a pod's or one outside the cluster).
type Target struct {
	Namespace, Name string
	IP              netip.Addr
}

// PodTarget names a pod.
func PodTarget(namespace, name string) Target { return Target{Namespace: namespace, Name: name} }

// IPTarget names an address.
func IPTarget(ip netip.Addr) Target { return Target{IP: ip.Unmap()} }

// IsPod reports whether the target names a pod.
func (t Target) IsPod() bool { return t.Name != "" }

func (t Target) String() string {
	if t.IsPod() {
		return t.Namespace + "/" + t.Name
	}
	return t.IP.String()
}

// ParseTarget reads "namespace/pod" or an IP address. Services ("svc/namespace/name") are expanded
// by the caller with ServiceBackends.
func ParseTarget(s string) (Target, error) {
	if ip, err := netip.ParseAddr(s); err == nil {
		return IPTarget(ip), nil
	}
	ns, name, ok := strings.Cut(s, "/")
	if !ok || ns == "" || name == "" || strings.Contains(name, "/") {
		return Target{}, fmt.Errorf("reading target %q: want namespace/pod or an IP address", s)
	}
	return PodTarget(ns, name), nil
}

// PortSpec is the destination port as the user gives it: a number, or a name resolved on the
// destination pod's container ports.
type PortSpec struct {
	Protocol corev1.Protocol // TCP, UDP or SCTP
	Number   uint16          // 0 when Name is set
	Name     string
}

func (p PortSpec) String() string {
	if p.Name != "" {
		return p.Name + "/" + string(p.Protocol)
	}
	return strconv.Itoa(int(p.Number)) + "/" + string(p.Protocol)
}

// ParsePortSpec reads "PORT[/PROTO]": PORT is a number or a port name, PROTO is tcp (the default),
// udp or sctp in any case.
func ParsePortSpec(s string) (PortSpec, error) {
	port, proto, _ := strings.Cut(s, "/")
	spec := PortSpec{Protocol: corev1.ProtocolTCP}
	if proto != "" {
		spec.Protocol = corev1.Protocol(strings.ToUpper(proto))
	}
	switch spec.Protocol {
	case corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP:
	default:
		return PortSpec{}, fmt.Errorf("reading port %q: protocol %q is not tcp, udp or sctp", s, proto)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err == nil {
		if n == 0 {
			return PortSpec{}, fmt.Errorf("reading port %q: port 0 is not a port", s)
		}
		spec.Number = uint16(n)
		return spec, nil
	}
	if errs := validation.IsValidPortName(port); len(errs) > 0 {
		return PortSpec{}, fmt.Errorf("reading port %q: want a number from 1 to 65535 or a port name: %s", s, strings.Join(errs, "; "))
	}
	spec.Name = port
	return spec, nil
}

// SnapshotFromObjects converts API objects into the snapshot the agent resolves, with the agent's
// conversions. Node is left empty: Explain answers for every node.
func SnapshotFromObjects(pods []corev1.Pod, nss []corev1.Namespace, pols []networkingv1.NetworkPolicy) *selectors.Snapshot {
	s := &selectors.Snapshot{
		Pods:       make([]selectors.Pod, 0, len(pods)),
		Namespaces: make([]selectors.Namespace, 0, len(nss)),
		Policies:   make([]*networkingv1.NetworkPolicy, 0, len(pols)),
	}
	for i := range pods {
		s.Pods = append(s.Pods, selectors.PodOf(&pods[i]))
	}
	for i := range nss {
		s.Namespaces = append(s.Namespaces, selectors.NamespaceOf(&nss[i]))
	}
	for i := range pols {
		s.Policies = append(s.Policies, &pols[i])
	}
	return s
}
