package explain

import (
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Backend is one endpoint of a Service port: a pod (Pod is "namespace/name") or, for an endpoint
// without a pod, its addresses; with the port the traffic reaches it on.
type Backend struct {
	Pod        string
	IPs        []netip.Addr // every family the EndpointSlices give
	TargetPort uint16
	Protocol   corev1.Protocol
}

// Target is the backend as a target of Explain: its pod, or its first address.
func (b Backend) Target() Target {
	if ns, name, ok := cutPod(b.Pod); ok {
		return PodTarget(ns, name)
	}
	return IPTarget(b.IPs[0])
}

// Port is the backend's port as a PortSpec.
func (b Backend) Port() PortSpec { return PortSpec{Protocol: b.Protocol, Number: b.TargetPort} }

func cutPod(s string) (string, string, bool) {
	t, err := ParseTarget(s)
	return t.Namespace, t.Name, err == nil && t.IsPod()
}

// ServiceBackends expands a Service port, given by number or name, into its ready backends through
// the Service's EndpointSlices, which hold each endpoint's target port (a named targetPort resolved
// per pod, as kube-proxy uses it). protocol "" matches any protocol when only one service port
// fits. Backends are sorted by pod, then first address; a pod in several slices (one per family)
// is one backend.
func ServiceBackends(svc *corev1.Service, endpointSlices []discoveryv1.EndpointSlice, port intstr.IntOrString, protocol corev1.Protocol) ([]Backend, error) {
	key := svc.Namespace + "/" + svc.Name
	if svc.Spec.Type == corev1.ServiceTypeExternalName {
		return nil, fmt.Errorf("service %s is an ExternalName service: it has no backends", key)
	}
	sp, err := servicePort(svc, port, protocol)
	if err != nil {
		return nil, fmt.Errorf("choosing a port of service %s: %w", key, err)
	}
	var out []Backend
	for i := range endpointSlices {
		es := &endpointSlices[i]
		if es.Namespace != svc.Namespace || es.Labels[discoveryv1.LabelServiceName] != svc.Name {
			continue
		}
		target, ok := slicePort(es, sp)
		if !ok {
			continue
		}
		for j := range es.Endpoints {
			out = addBackend(out, &es.Endpoints[j], target, sp.Protocol)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("service %s has no ready endpoint for port %s", key, portLabel(sp))
	}
	sortBackends(out)
	return out, nil
}

// servicePort finds the one service port a number or name names.
func servicePort(svc *corev1.Service, port intstr.IntOrString, protocol corev1.Protocol) (*corev1.ServicePort, error) {
	var found []*corev1.ServicePort
	for i := range svc.Spec.Ports {
		sp := &svc.Spec.Ports[i]
		named := port.Type == intstr.String && sp.Name == port.StrVal
		numbered := port.Type == intstr.Int && sp.Port == port.IntVal
		if (named || numbered) && (protocol == "" || sp.Protocol == protocol) {
			found = append(found, sp)
		}
	}
	switch len(found) {
	case 0:
		have := make([]string, len(svc.Spec.Ports))
		for i := range svc.Spec.Ports {
			have[i] = portLabel(&svc.Spec.Ports[i])
		}
		return nil, fmt.Errorf("no port %s (ports: %v)", port.String(), have)
	case 1:
		return found[0], nil
	default:
		return nil, fmt.Errorf("port %s is several ports; give the protocol", port.String())
	}
}

func portLabel(sp *corev1.ServicePort) string {
	if sp.Name != "" {
		return fmt.Sprintf("%s=%d/%s", sp.Name, sp.Port, sp.Protocol)
	}
	return fmt.Sprintf("%d/%s", sp.Port, sp.Protocol)
}

// slicePort finds a service port's target port in a slice: its ports are named after the
// service's ports.
func slicePort(es *discoveryv1.EndpointSlice, sp *corev1.ServicePort) (uint16, bool) {
	for _, p := range es.Ports {
		name, proto := "", corev1.ProtocolTCP
		if p.Name != nil {
			name = *p.Name
		}
		if p.Protocol != nil {
			proto = *p.Protocol
		}
		if name == sp.Name && proto == sp.Protocol && p.Port != nil && *p.Port >= 1 && *p.Port <= 65535 {
			return uint16(*p.Port), true
		}
	}
	return 0, false
}

// addBackend adds a ready endpoint, merging it with the backend of the same pod and port from the
// slice of the other family. "ready" unset means ready, as the API says consumers should read it.
func addBackend(out []Backend, ep *discoveryv1.Endpoint, target uint16, protocol corev1.Protocol) []Backend {
	if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
		return out
	}
	var addrs []netip.Addr
	for _, s := range ep.Addresses {
		if a, err := netip.ParseAddr(s); err == nil {
			addrs = append(addrs, a.Unmap())
		}
	}
	if len(addrs) == 0 {
		return out
	}
	pod := ""
	if ref := ep.TargetRef; ref != nil && ref.Kind == "Pod" {
		pod = ref.Namespace + "/" + ref.Name
	}
	if pod != "" {
		for i := range out {
			if b := &out[i]; b.Pod == pod && b.TargetPort == target && b.Protocol == protocol {
				b.IPs = append(b.IPs, addrs...)
				return out
			}
		}
	}
	return append(out, Backend{Pod: pod, IPs: addrs, TargetPort: target, Protocol: protocol})
}

func sortBackends(bs []Backend) {
	slices.SortFunc(bs, func(a, b Backend) int {
		if a.Pod != b.Pod {
			if a.Pod < b.Pod {
				return -1
			}
			return 1
		}
		return a.IPs[0].Compare(b.IPs[0])
	})
}
