package lab

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// NetnsAnnotation on a lab pod is the path of its network namespace: `nftpolicy-lab probe` and `matrix`,
// which run in another process, find pods through the API.
const NetnsAnnotation = "lab.nftpolicy.io/netns"

// labPod is one pod the lab runs: its namespace, the servers of its ports and its object.
type labPod struct {
	ref     string // "namespace/name"
	node    *node
	net     *netlab.Pod
	servers []*netlab.Server
}

func (p *labPod) closeServers() {
	for _, s := range p.servers {
		s.Close()
	}
	p.servers = nil
}

// startPod creates the pod's network namespace on n, serves its ports there, and creates the Pod with
// its status, as a kubelet would once the sandbox is up.
func (l *Lab) startPod(ctx context.Context, n *node, namespace string, spec scenario.Pod) (*labPod, error) {
	ref := namespace + "/" + spec.Name
	// Namespace names have no dots, so "namespace.pod" names every pod of a node uniquely.
	netPod, err := n.net.AddPod(namespace + "." + spec.Name)
	if err != nil {
		return nil, fmt.Errorf("creating the network namespace of %s: %w", ref, err)
	}
	return l.runPod(ctx, n, netPod, namespace, spec)
}

// runPod serves the pod's ports in its network namespace and creates the Pod with its status, after
// the IP report delay.
func (l *Lab) runPod(ctx context.Context, n *node, netPod *netlab.Pod, namespace string, spec scenario.Pod) (*labPod, error) {
	ref := namespace + "/" + spec.Name
	p := &labPod{ref: ref, node: n, net: netPod}
	if err := p.serve(spec.Ports); err != nil {
		return p, err
	}
	if l.opts.OnPodNetworkUp != nil {
		l.opts.OnPodNetworkUp(ref, netPod)
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: spec.Name, Namespace: namespace, Labels: withPodServiceLabel(spec.Name, spec.Labels),
			Annotations: map[string]string{NetnsAnnotation: netPod.Path},
		},
		Spec: corev1.PodSpec{
			NodeName:   n.name,
			Containers: []corev1.Container{{Name: "serve", Image: "lab.invalid/serve", Ports: containerPorts(spec.Ports)}},
		},
	}
	if err := l.client.Create(ctx, pod); err != nil {
		return p, fmt.Errorf("creating pod %s: %w", ref, err)
	}
	// The pod is Pending, without an address, until the kubelet reports it.
	if d := l.opts.IPReportDelay; d > 0 {
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return p, fmt.Errorf("waiting to report the IPs of pod %s: %w", ref, ctx.Err())
		}
	}
	pod.Status = l.podStatus(netPod)
	if err := l.client.Status().Update(ctx, pod); err != nil {
		return p, fmt.Errorf("writing the status of pod %s: %w", ref, err)
	}
	return p, nil
}

// serve starts a server per declared port and protocol. SCTP ports are not served: no SCTP prober
// exists, and SupportsProtocol says so.
func (p *labPod) serve(ports []scenario.Port) error {
	for _, port := range ports {
		var (
			s   *netlab.Server
			err error
		)
		switch port.Protocol {
		case scenario.ProtocolTCP:
			s, err = p.net.ServeTCP(uint16(port.Port))
		case scenario.ProtocolUDP:
			s, err = p.net.ServeUDP(uint16(port.Port))
		default:
			continue
		}
		if err != nil {
			return fmt.Errorf("serving %s/%d in pod %s: %w", port.Protocol, port.Port, p.ref, err)
		}
		p.servers = append(p.servers, s)
	}
	return nil
}

func containerPorts(ports []scenario.Port) []corev1.ContainerPort {
	var out []corev1.ContainerPort
	for _, p := range ports {
		out = append(out, corev1.ContainerPort{Name: p.Name, ContainerPort: int32(p.Port), Protocol: corev1.Protocol(p.Protocol)})
	}
	return out
}

// podStatus is a running, ready pod with the addresses of the lab's families.
func (l *Lab) podStatus(p *netlab.Pod) corev1.PodStatus {
	var ips []corev1.PodIP
	for _, a := range l.podAddrs(p) {
		ips = append(ips, corev1.PodIP{IP: a.String()})
	}
	now := metav1.Now()
	return corev1.PodStatus{
		Phase:     corev1.PodRunning,
		PodIP:     ips[0].IP,
		PodIPs:    ips,
		StartTime: &now,
		Conditions: []corev1.PodCondition{
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		},
	}
}

// podAddrs are the addresses the pod publishes, primary first.
func (l *Lab) podAddrs(p *netlab.Pod) []netip.Addr {
	switch l.opts.IPFamily {
	case FamilyIPv6:
		return []netip.Addr{p.IPv6}
	case FamilyDual:
		return []netip.Addr{p.IPv4, p.IPv6}
	}
	return []netip.Addr{p.IPv4}
}

// removePod closes the pod's servers and removes its network namespace. The Pod object is the
// caller's.
func (l *Lab) removePod(p *labPod) error {
	p.closeServers()
	if p.net == nil {
		return nil
	}
	err := p.node.net.RemovePod(p.net)
	p.net = nil
	return err
}

// splitRef splits "namespace/name".
func splitRef(ref string) (namespace, name string, err error) {
	namespace, name, ok := strings.Cut(ref, "/")
	if !ok || namespace == "" || name == "" {
		return "", "", fmt.Errorf("%q: want namespace/name", ref)
	}
	return namespace, name, nil
}

// WritePods writes a table of the lab's pods: reference, node and addresses.
func (l *Lab) WritePods(w io.Writer) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	refs := make([]string, 0, len(l.pods))
	for ref := range l.pods {
		refs = append(refs, ref)
	}
	sort.Strings(refs)
	fmt.Fprintf(w, "%-28s %-8s %s\n", "POD", "NODE", "IPS")
	for _, ref := range refs {
		p := l.pods[ref]
		var ips []string
		for _, a := range l.podAddrs(p.net) {
			ips = append(ips, a.String())
		}
		fmt.Fprintf(w, "%-28s %-8s %s\n", ref, p.node.name, strings.Join(ips, ","))
	}
}
