package lab

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

const (
	// ManagedByLabel marks the Services the lab creates, so that clearing a namespace removes them
	// and nothing else (namespace default holds the API server's own Service).
	ManagedByLabel = "app.kubernetes.io/managed-by"
	managedByLab   = "nftpolicy-lab"

	// serviceReadyTimeout bounds the wait for a new cluster's Services to have their endpoints and
	// for every node's kube-proxy to forward them.
	serviceReadyTimeout = 90 * time.Second
)

// ErrNoEndpoints is the error of a probe through a Service that has no ready endpoint for the port
// and family: such a probe would be refused by kube-proxy and must not read as blocked.
var ErrNoEndpoints = errors.New("no endpoints")

// withPodServiceLabel is the pod's labels plus the one its own Service selects it by.
func withPodServiceLabel(pod string, labels map[string]string) map[string]string {
	out := maps.Clone(labels)
	if out == nil {
		out = map[string]string{}
	}
	out[scenario.PodServiceLabel] = scenario.PodServiceLabelValue(pod)
	return out
}

// podService is the pod's own ClusterIP Service: it selects the pod alone and has one port per TCP
// or UDP port the pod serves, targetPort the container port. SCTP ports are left out, as the lab
// serves no SCTP. A pod serving nothing else gets no Service (nil): a Service needs a port.
func (l *Lab) podService(namespace string, pod scenario.Pod) *corev1.Service {
	var ports []corev1.ServicePort
	names := map[string]bool{}
	for _, p := range pod.Ports {
		if p.Protocol == scenario.ProtocolSCTP {
			continue
		}
		name := p.Name
		if name == "" || names[name] {
			name = fmt.Sprintf("%s-%d", strings.ToLower(p.Protocol), p.Port)
		}
		names[name] = true
		ports = append(ports, corev1.ServicePort{
			Name: name, Port: int32(p.Port), TargetPort: intstr.FromInt32(int32(p.Port)), Protocol: corev1.Protocol(p.Protocol),
		})
	}
	if len(ports) == 0 {
		return nil
	}
	return l.service(namespace, scenario.PodServiceName(pod.Name),
		map[string]string{scenario.PodServiceLabel: scenario.PodServiceLabelValue(pod.Name)}, ports)
}

// customService is a Service the file declares.
func (l *Lab) customService(namespace string, s scenario.Service) *corev1.Service {
	var ports []corev1.ServicePort
	for _, p := range s.Ports {
		target := p.TargetPort
		if target == (intstr.IntOrString{}) {
			target = intstr.FromInt32(int32(p.Port))
		}
		ports = append(ports, corev1.ServicePort{Name: p.Name, Port: int32(p.Port), TargetPort: target, Protocol: corev1.Protocol(p.Protocol)})
	}
	return l.service(namespace, s.Name, s.Selector, ports)
}

// service is a ClusterIP Service of the lab's families: both, required, on a dual-stack lab.
func (l *Lab) service(namespace, name string, selector map[string]string, ports []corev1.ServicePort) *corev1.Service {
	policy := corev1.IPFamilyPolicySingleStack
	var families []corev1.IPFamily
	for _, f := range l.Families() {
		families = append(families, ipFamily(f))
	}
	if len(families) > 1 {
		policy = corev1.IPFamilyPolicyRequireDualStack
	}
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, Labels: map[string]string{ManagedByLabel: managedByLab}},
		Spec: corev1.ServiceSpec{
			Type: corev1.ServiceTypeClusterIP, Selector: maps.Clone(selector), Ports: ports,
			IPFamilyPolicy: &policy, IPFamilies: families,
		},
	}
}

func ipFamily(f scenario.Family) corev1.IPFamily {
	if f == scenario.IPv6 {
		return corev1.IPv6Protocol
	}
	return corev1.IPv4Protocol
}

func addressType(f scenario.Family) discoveryv1.AddressType {
	if f == scenario.IPv6 {
		return discoveryv1.AddressTypeIPv6
	}
	return discoveryv1.AddressTypeIPv4
}

// createdServices are the Services Setup created and the pods they must reach.
type createdServices struct {
	// own is each pod's own Service, by pod ("namespace/name").
	own map[string]*corev1.Service
	// custom are the file's Services with the pods their selectors pick from the file's labels.
	custom []customBackends
}

type customBackends struct {
	svc  *corev1.Service
	pods []string
}

// createServices creates the file's Services of ns and the own Service of each of its pods.
func (l *Lab) createServices(ctx context.Context, ns scenario.Namespace, created *createdServices) error {
	for _, s := range ns.Services {
		svc := l.customService(ns.Name, s)
		if err := l.client.Create(ctx, svc); err != nil {
			return fmt.Errorf("creating Service %s/%s: %w", ns.Name, s.Name, err)
		}
		backends := customBackends{svc: svc}
		for _, pod := range ns.Pods {
			if s.Selects(&pod) {
				backends.pods = append(backends.pods, ns.Name+"/"+pod.Name)
			}
		}
		created.custom = append(created.custom, backends)
	}
	for _, pod := range ns.Pods {
		svc := l.podService(ns.Name, pod)
		if svc == nil {
			continue
		}
		if err := l.client.Create(ctx, svc); err != nil {
			return fmt.Errorf("creating Service %s/%s of pod %s: %w", ns.Name, svc.Name, pod.Name, err)
		}
		created.own[ns.Name+"/"+pod.Name] = svc
	}
	return nil
}

// deleteServices deletes the lab's Services of the namespace with their EndpointSlices (nothing
// collects the slices of a deleted Service here: the lab runs no garbage collector).
func (l *Lab) deleteServices(ctx context.Context, namespace string) error {
	var list corev1.ServiceList
	if err := l.client.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{ManagedByLabel: managedByLab}); err != nil {
		if apierrors.IsNotFound(err) {
			return nil
		}
		return fmt.Errorf("listing the Services of %s: %w", namespace, err)
	}
	var errs []error
	for i := range list.Items {
		svc := &list.Items[i]
		if err := l.client.Delete(ctx, svc); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting Service %s/%s: %w", namespace, svc.Name, err))
		}
		err := l.client.DeleteAllOf(ctx, &discoveryv1.EndpointSlice{}, client.InNamespace(namespace),
			client.MatchingLabels{discoveryv1.LabelServiceName: svc.Name})
		if err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("deleting the EndpointSlices of Service %s/%s: %w", namespace, svc.Name, err))
		}
	}
	return errors.Join(errs...)
}

// waitServicesReady waits until each pod's own Service has the pod as a ready endpoint in every
// family of the lab, and every node forwards its ClusterIPs; and until the file's Services have every
// pod they select as a ready endpoint (one that selects none has nothing to wait for: probing it says
// "no endpoints"). Only then do probes through Services say something about policies rather than
// about the controllers and kube-proxy catching up.
func (l *Lab) waitServicesReady(ctx context.Context, created *createdServices) error {
	ctx, cancel := context.WithTimeout(ctx, serviceReadyTimeout)
	defer cancel()
	for _, ref := range slices.Sorted(maps.Keys(created.own)) {
		svc := created.own[ref]
		if err := l.waitPodEndpoint(ctx, ref, svc); err != nil {
			return err
		}
		if err := l.waitForwarded(ctx, ref, svc); err != nil {
			return err
		}
	}
	for _, c := range created.custom {
		for _, ref := range c.pods {
			if err := l.waitPodEndpoint(ctx, ref, c.svc); err != nil {
				return err
			}
		}
	}
	return nil
}

func (l *Lab) waitPodEndpoint(ctx context.Context, ref string, svc *corev1.Service) error {
	p := l.pods[ref]
	if p == nil || p.net == nil {
		return fmt.Errorf("no pod %s in the lab", ref)
	}
	for _, family := range l.Families() {
		addr := p.net.IPv4
		if family == scenario.IPv6 {
			addr = p.net.IPv6
		}
		err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
			endpointSlices, err := l.endpointSlices(ctx, svc.Namespace, svc.Name, family)
			if err != nil {
				return false, err
			}
			return hasReadyAddress(endpointSlices, addr), nil
		})
		if err != nil {
			return fmt.Errorf("waiting for pod %s to be a ready %s endpoint of Service %s/%s (EndpointSlices come from kube-controller-manager): %w",
				ref, family, svc.Namespace, svc.Name, err)
		}
	}
	return nil
}

// waitForwarded waits until, on every node, a pod other than the backend reaches each ClusterIP of
// the Service on its first port. The clients are pods, not the nodes: a lab node has no route to
// the Service CIDR (kube-proxy catches only what is routed), and pods are what scenarios probe from.
// No policy exists yet, so only kube-proxy can stand in the way. A node whose only pod is the
// backend is left out.
func (l *Lab) waitForwarded(ctx context.Context, backend string, created *corev1.Service) error {
	var svc corev1.Service
	if err := l.client.Get(ctx, client.ObjectKeyFromObject(created), &svc); err != nil {
		return fmt.Errorf("getting Service %s/%s: %w", created.Namespace, created.Name, err)
	}
	port := svc.Spec.Ports[0]
	clients := l.clientPerNode(backend)
	for _, ip := range svc.Spec.ClusterIPs {
		addr, err := netip.ParseAddr(ip)
		if err != nil {
			return fmt.Errorf("reading the ClusterIP of Service %s/%s: %q: %w", svc.Namespace, svc.Name, ip, err)
		}
		dst := netip.AddrPortFrom(addr, uint16(port.Port))
		for _, from := range clients {
			err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
				ok, err := Probe(ctx, from.net.Netns, dst, string(port.Protocol), ProbeTimeout)
				return ok && err == nil, nil
			})
			if err != nil {
				return fmt.Errorf("waiting for the kube-proxy of %s to forward Service %s/%s at %s/%s from %s: %w",
					from.node.name, svc.Namespace, svc.Name, port.Protocol, dst, from.ref, err)
			}
		}
	}
	return nil
}

// clientPerNode picks, on each node, the first pod by name other than backend.
func (l *Lab) clientPerNode(backend string) []*labPod {
	var clients []*labPod
	for _, n := range l.nodes {
		for _, ref := range slices.Sorted(maps.Keys(l.pods)) {
			if p := l.pods[ref]; ref != backend && p.node == n && p.net != nil {
				clients = append(clients, p)
				break
			}
		}
	}
	return clients
}

func (l *Lab) endpointSlices(ctx context.Context, namespace, service string, family scenario.Family) ([]discoveryv1.EndpointSlice, error) {
	var list discoveryv1.EndpointSliceList
	err := l.client.List(ctx, &list, client.InNamespace(namespace), client.MatchingLabels{discoveryv1.LabelServiceName: service})
	if err != nil {
		return nil, fmt.Errorf("listing the EndpointSlices of Service %s/%s: %w", namespace, service, err)
	}
	return slices.DeleteFunc(list.Items, func(s discoveryv1.EndpointSlice) bool { return s.AddressType != addressType(family) }), nil
}

// ready is how kube-proxy reads an endpoint's condition: unset means ready.
func ready(e *discoveryv1.Endpoint) bool { return e.Conditions.Ready == nil || *e.Conditions.Ready }

func hasReadyAddress(endpointSlices []discoveryv1.EndpointSlice, addr netip.Addr) bool {
	for _, s := range endpointSlices {
		for i := range s.Endpoints {
			if ready(&s.Endpoints[i]) && addressesContain(s.Endpoints[i].Addresses, addr) {
				return true
			}
		}
	}
	return false
}

func addressesContain(addresses []string, addr netip.Addr) bool {
	return slices.ContainsFunc(addresses, func(a string) bool {
		parsed, err := netip.ParseAddr(a)
		return err == nil && parsed == addr
	})
}

// hasReadyEndpointFor reports whether some slice has a ready endpoint and the Service port by name
// and protocol, the way kube-proxy matches a slice's ports to the Service's.
func hasReadyEndpointFor(endpointSlices []discoveryv1.EndpointSlice, port corev1.ServicePort) bool {
	for _, s := range endpointSlices {
		served := false
		for _, p := range s.Ports {
			name, protocol := "", corev1.ProtocolTCP
			if p.Name != nil {
				name = *p.Name
			}
			if p.Protocol != nil {
				protocol = *p.Protocol
			}
			served = served || (name == port.Name && protocol == port.Protocol && p.Port != nil)
		}
		if served && anyReady(s.Endpoints) {
			return true
		}
	}
	return false
}

func anyReady(endpoints []discoveryv1.Endpoint) bool {
	for i := range endpoints {
		if ready(&endpoints[i]) {
			return true
		}
	}
	return false
}

// ProbeService opens a new connection from src's network namespace to the ClusterIP of family of
// dst's own Service, on the port the Service serves for port and protocol.
func (l *Lab) ProbeService(ctx context.Context, src, dst string, port int, protocol string, family scenario.Family) (bool, error) {
	namespace, name, err := splitRef(dst)
	if err != nil {
		return false, err
	}
	return l.ProbeNamedService(ctx, src, namespace+"/"+scenario.PodServiceName(name), port, protocol, family)
}

// ProbeNamedService opens a new connection from pod src's network namespace to the ClusterIP of
// family of Service svc ("namespace/name"), on its port port/protocol. A Service without a ready
// endpoint for that port and family is an error wrapping ErrNoEndpoints, not a blocked probe.
func (l *Lab) ProbeNamedService(ctx context.Context, src, svc string, port int, protocol string, family scenario.Family) (bool, error) {
	l.mu.RLock()
	from, ok := l.pods[src]
	l.mu.RUnlock()
	if !ok || from.net == nil {
		return false, fmt.Errorf("no pod %s in the lab", src)
	}
	dst, err := l.serviceAddr(ctx, svc, port, protocol, family)
	if err != nil {
		return false, err
	}
	return Probe(ctx, from.net.Netns, dst, protocol, ProbeTimeout)
}

// serviceAddr is the ClusterIP of family and port of the Service, once it has a ready endpoint.
func (l *Lab) serviceAddr(ctx context.Context, ref string, port int, protocol string, family scenario.Family) (netip.AddrPort, error) {
	namespace, name, err := splitRef(ref)
	if err != nil {
		return netip.AddrPort{}, err
	}
	var svc corev1.Service
	if err := l.client.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &svc); err != nil {
		return netip.AddrPort{}, fmt.Errorf("getting Service %s: %w", ref, err)
	}
	i := slices.IndexFunc(svc.Spec.Ports, func(p corev1.ServicePort) bool {
		return int(p.Port) == port && string(p.Protocol) == protocol
	})
	if i < 0 {
		return netip.AddrPort{}, fmt.Errorf("probing Service %s: it has no port %s/%d", ref, protocol, port)
	}
	var clusterIP netip.Addr
	for _, ip := range svc.Spec.ClusterIPs {
		if a, err := netip.ParseAddr(ip); err == nil && a.Is4() == (family == scenario.IPv4) {
			clusterIP = a
		}
	}
	if !clusterIP.IsValid() {
		return netip.AddrPort{}, fmt.Errorf("probing Service %s: it has no %s ClusterIP (it has %v)", ref, family, svc.Spec.ClusterIPs)
	}
	endpointSlices, err := l.endpointSlices(ctx, namespace, name, family)
	if err != nil {
		return netip.AddrPort{}, err
	}
	if !hasReadyEndpointFor(endpointSlices, svc.Spec.Ports[i]) {
		return netip.AddrPort{}, fmt.Errorf("probing Service %s: it has no ready %s endpoint for %s/%d: %w", ref, family, protocol, port, ErrNoEndpoints)
	}
	return netip.AddrPortFrom(clusterIP, uint16(port)), nil
}
