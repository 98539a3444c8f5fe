package lab

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// attached is a running lab seen from another process: its API server and, through the pods'
// NetnsAnnotation, their network namespaces.
type attached struct {
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

// attach finds the running lab called name, or the only one when name is "".
func attach(name string) (*attached, error) {
	if name == "" {
		var err error
		if name, err = onlyLab(); err != nil {
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
	return &attached{state: s, client: c}, nil
}

// pods lists the lab's pods sorted by reference.
func (a *attached) pods(ctx context.Context) (map[string]*remotePod, []string, error) {
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
func (a *attached) probe(ctx context.Context, pods map[string]*remotePod, src, dst string, port int, protocol, family string) (bool, error) {
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

// parsePortProto reads "80/TCP" (the protocol defaults to TCP).
func parsePortProto(s string) (int, string, error) {
	portText, proto, found := strings.Cut(s, "/")
	if !found {
		proto = scenario.ProtocolTCP
	}
	proto = strings.ToUpper(proto)
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return 0, "", fmt.Errorf("port %q: want PORT/PROTO such as 80/TCP", s)
	}
	if proto != scenario.ProtocolTCP && proto != scenario.ProtocolUDP {
		return 0, "", fmt.Errorf("protocol %q: the lab probes TCP and UDP", proto)
	}
	return port, proto, nil
}

func cmdApply(ctx context.Context, args []string) int {
	fs := newFlagSet("apply")
	name := fs.String("name", "", "The lab (default: the only one).")
	file := fs.String("f", "", "NetworkPolicy manifests, multi-document YAML; - reads stdin.")
	if err := fs.Parse(args); err != nil || fs.NArg() > 0 || *file == "" {
		fmt.Fprintln(os.Stderr, "usage: nftpolicy-lab apply [--name NAME] -f FILE")
		return 2
	}
	a, err := attach(*name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var data []byte
	if *file == "-" {
		data, err = readAll(os.Stdin)
	} else {
		data, err = os.ReadFile(*file)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	policies, err := scenario.ParsePolicies(string(data))
	if err != nil {
		fmt.Fprintf(os.Stderr, "reading %s: %v\n", *file, err)
		return 1
	}
	if len(policies) == 0 {
		fmt.Fprintf(os.Stderr, "%s holds no NetworkPolicy\n", *file)
		return 1
	}
	for _, p := range policies {
		if err := applyPolicy(ctx, a.client, p); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Printf("networkpolicy %s/%s applied\n", p.Namespace, p.Name)
	}
	return 0
}

func cmdProbe(ctx context.Context, args []string) int {
	fs := newFlagSet("probe")
	name := fs.String("name", "", "The lab (default: the only one).")
	family := fs.String("family", "", "ipv4 or ipv6 (default: the destination's primary address).")
	if err := fs.Parse(args); err != nil || fs.NArg() != 3 {
		fmt.Fprintln(os.Stderr, "usage: nftpolicy-lab probe [--name NAME] SRC DST PORT/PROTO   (pods as namespace/pod)")
		return 2
	}
	port, proto, err := parsePortProto(fs.Arg(2))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	a, err := attach(*name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pods, _, err := a.pods(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	src, dst := fs.Arg(0), fs.Arg(1)
	ok, err := a.probe(ctx, pods, src, dst, port, proto, *family)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if !ok {
		fmt.Printf("%s -> %s %d/%s: blocked (no answer within %s)\n", src, dst, port, proto, ProbeTimeout)
		return 1
	}
	fmt.Printf("%s -> %s %d/%s: allowed\n", src, dst, port, proto)
	return 0
}

func cmdMatrix(ctx context.Context, args []string) int {
	fs := newFlagSet("matrix")
	name := fs.String("name", "", "The lab (default: the only one).")
	family := fs.String("family", "", "ipv4 or ipv6 (default: each destination's primary address).")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: nftpolicy-lab matrix [--name NAME] PORT/PROTO")
		return 2
	}
	port, proto, err := parsePortProto(fs.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	a, err := attach(*name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	pods, refs, err := a.pods(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	var destinations []string
	for _, ref := range refs {
		if slices.ContainsFunc(pods[ref].ports, func(p corev1.ContainerPort) bool {
			return int(p.ContainerPort) == port && string(p.Protocol) == proto
		}) {
			destinations = append(destinations, ref)
		}
	}
	if len(destinations) == 0 {
		fmt.Fprintf(os.Stderr, "no pod serves %d/%s\n", port, proto)
		return 1
	}
	m := probeMatrix(ctx, refs, destinations, scenario.DefaultWorkers, func(ctx context.Context, src, dst string) (bool, error) {
		return a.probe(ctx, pods, src, dst, port, proto, *family)
	})
	fmt.Printf("%d/%s, rows are sources, columns destinations:\n", port, proto)
	m.write(os.Stdout)
	if len(m.errs) > 0 {
		return 1
	}
	return 0
}

func readAll(f *os.File) ([]byte, error) { return io.ReadAll(f) }
