package lab

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"path/filepath"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// Attached is a running lab seen from another process: its API server and, through the pods'
// NetnsAnnotation, their network namespaces. `nftpolicy-lab apply`, `probe`, `matrix` and `droplog` use it.
type Attached struct {
	state  *State
	client client.Client
}

// remotePod is a pod of a running lab.
type remotePod struct {
	ref   string
	netns netlab.Netns
	addrs []netip.Addr // primary first
	ports []corev1.ContainerPort
}

// Attach finds the running lab called name, or the only one when name is "".
func Attach(name string) (*Attached, error) {
	if name == "" {
		var err error
		if name, err = OnlyLab(); err != nil {
			return nil, err
		}
	}
	s, err := ReadState(name)
	if err != nil {
		return nil, fmt.Errorf("finding lab %s: %w", name, err)
	}
	if !s.Ready || !s.Owner.alive() {
		return nil, fmt.Errorf("lab %s is not up (remove it with `nftpolicy-lab down --name %s`)", name, name)
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", s.Kubeconfig)
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	return &Attached{state: s, client: c}, nil
}

// ApplyPolicy creates the policy, or replaces the existing object of that namespace and name.
func (a *Attached) ApplyPolicy(ctx context.Context, policy *networkingv1.NetworkPolicy) error {
	return applyPolicy(ctx, a.client, policy)
}

// Probe opens one new connection from pod src to port/protocol of pod dst (pods as namespace/name),
// to dst's first address of family ("" = its primary address), and reports whether it was answered.
func (a *Attached) Probe(ctx context.Context, src, dst string, port int, protocol, family string) (bool, error) {
	pods, _, err := a.pods(ctx)
	if err != nil {
		return false, err
	}
	return a.probe(ctx, pods, src, dst, port, protocol, family)
}

// Matrix probes port/protocol from every pod to every pod that serves it, to each destination's
// first address of family ("" = its primary address).
func (a *Attached) Matrix(ctx context.Context, port int, protocol, family string) (*Matrix, error) {
	pods, refs, err := a.pods(ctx)
	if err != nil {
		return nil, err
	}
	var destinations []string
	for _, ref := range refs {
		if slices.ContainsFunc(pods[ref].ports, func(p corev1.ContainerPort) bool {
			return int(p.ContainerPort) == port && string(p.Protocol) == protocol
		}) {
			destinations = append(destinations, ref)
		}
	}
	if len(destinations) == 0 {
		return nil, fmt.Errorf("no pod serves %d/%s", port, protocol)
	}
	return probeMatrix(ctx, refs, destinations, scenario.DefaultWorkers, func(ctx context.Context, src, dst string) (bool, error) {
		return a.probe(ctx, pods, src, dst, port, protocol, family)
	}), nil
}

// pods lists the lab's pods sorted by reference.
func (a *Attached) pods(ctx context.Context) (map[string]*remotePod, []string, error) {
	var list corev1.PodList
	if err := a.client.List(ctx, &list); err != nil {
		return nil, nil, fmt.Errorf("listing pods: %w", err)
	}
	pods := map[string]*remotePod{}
	var refs []string
	for _, pod := range list.Items {
		path := pod.Annotations[NetnsAnnotation]
		if path == "" {
			continue // not one of the lab's pods: nothing serves it
		}
		p := &remotePod{ref: pod.Namespace + "/" + pod.Name, netns: netlab.Netns{Name: filepath.Base(path), Path: path}}
		for _, ip := range pod.Status.PodIPs {
			if addr, err := netip.ParseAddr(ip.IP); err == nil {
				p.addrs = append(p.addrs, addr)
			}
		}
		for _, c := range pod.Spec.Containers {
			p.ports = append(p.ports, c.Ports...)
		}
		pods[p.ref] = p
		refs = append(refs, p.ref)
	}
	slices.Sort(refs)
	return pods, refs, nil
}

// probe probes dst's first address of family ("" = its primary address).
func (a *Attached) probe(ctx context.Context, pods map[string]*remotePod, src, dst string, port int, protocol, family string) (bool, error) {
	from, ok := pods[src]
	if !ok {
		return false, fmt.Errorf("no pod %s in lab %s", src, a.state.Name)
	}
	to, ok := pods[dst]
	if !ok {
		return false, fmt.Errorf("no pod %s in lab %s", dst, a.state.Name)
	}
	for _, addr := range to.addrs {
		if family == "" || (family == FamilyIPv6) == addr.Is6() {
			return Probe(ctx, from.netns, netip.AddrPortFrom(addr, uint16(port)), protocol, ProbeTimeout)
		}
	}
	return false, fmt.Errorf("pod %s has no %s address", dst, family)
}

// Kubeconfig is the path of the lab's kubeconfig (the administrator's).
func (a *Attached) Kubeconfig() string { return a.state.Kubeconfig }

// DropLog copies the JSON lines of the agents' drop logs to w (see ReadDropLog).
func (a *Attached) DropLog(ctx context.Context, node string, follow bool, w io.Writer) error {
	return ReadDropLog(ctx, a.state, node, follow, w)
}
