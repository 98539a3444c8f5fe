package lab

// Services through the lab's real data path: the API server allocates a ClusterIP, the real
// EndpointSlice controller publishes the pod a Service selects, and each node's real kube-proxy
// carries traffic to it. The pods have no NetworkPolicy, so the agents let everything through.
//
// Cluster (two nodes, pods placed round-robin in this order):
//
//	svc/server   node-1   app=server, serves TCP and UDP 80
//	svc/remote   node-2   the cross-node client
//	svc/local    node-1   the same-node client
//
// Service svc/server selects app=server and maps port 8080 (TCP and UDP) to 80; svc/server-nodeport
// does the same for TCP through a NodePort, reached from the lab's external client (198.19.1.1) at the
// nodes' own addresses (198.19.0.N).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

const (
	servicePort = 8080
	backendPort = 80
	// serviceTimeout bounds how long a change takes to reach the data path: the controller's
	// EndpointSlice, then kube-proxy's rules.
	serviceTimeout = 30 * time.Second
)

var serviceCluster = scenario.ClusterSpec{Namespaces: []scenario.Namespace{{
	Name: "svc",
	Pods: []scenario.Pod{
		{Name: "server", Labels: map[string]string{"app": "server"}, Ports: []scenario.Port{
			{Port: backendPort, Protocol: scenario.ProtocolTCP}, {Port: backendPort, Protocol: scenario.ProtocolUDP},
		}},
		{Name: "remote"},
		{Name: "local"},
	},
}}}

// TestServiceThroughKubeProxy reaches a Service's ClusterIP from a pod on the backend's node and from
// a pod on another node, over TCP and UDP, in each of kube-proxy's modes this kernel supports; the
// backend sees the client pod's own address. Relabelling the backend out of the Service's selector
// removes it from the EndpointSlice, and the ClusterIP stops answering.
func TestServiceThroughKubeProxy(t *testing.T) {
	requireLab(t)
	for _, tc := range []struct{ mode, family string }{
		{ProxyModeNFTables, FamilyIPv4},
		{ProxyModeIPTables, FamilyIPv4},
		{ProxyModeNFTables, FamilyDual},
		{ProxyModeIPTables, FamilyIPv6},
	} {
		t.Run(tc.mode+"-"+tc.family, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			opts := testOptions(t)
			opts.ProxyMode, opts.IPFamily = tc.mode, tc.family
			l, err := Start(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = l.Close() })
			if err := l.Setup(ctx, serviceCluster); err != nil {
				t.Fatal(err)
			}
			testService(ctx, t, l)
		})
	}
}

func testService(ctx context.Context, t *testing.T, l *Lab) {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "svc", Name: "server"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "server"},
			Ports: []corev1.ServicePort{
				{Name: "tcp", Protocol: corev1.ProtocolTCP, Port: servicePort, TargetPort: intstr.FromInt32(backendPort)},
				{Name: "udp", Protocol: corev1.ProtocolUDP, Port: servicePort, TargetPort: intstr.FromInt32(backendPort)},
			},
		},
	}
	if len(l.ServiceCIDRs()) > 1 {
		svc.Spec.IPFamilyPolicy = ptr.To(corev1.IPFamilyPolicyRequireDualStack)
	}
	if err := l.Client().Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	clusterIPs := clusterIPsOf(t, l, svc)

	var backends []string
	for _, f := range l.Families() {
		ip, err := l.PodIP("svc/server", f)
		if err != nil {
			t.Fatal(err)
		}
		backends = append(backends, ip.String())
	}
	waitEndpoints(ctx, t, l, "server", backends)

	for _, src := range []string{"svc/local", "svc/remote"} {
		from, err := l.PodNetns(src)
		if err != nil {
			t.Fatal(err)
		}
		for i, ip := range clusterIPs {
			dst := netip.AddrPortFrom(ip, servicePort)
			own, err := l.PodIP(src, l.Families()[i])
			if err != nil {
				t.Fatal(err)
			}
			eventually(t, serviceTimeout, func() error {
				seen, err := addrSeenByServer(from, dst)
				if err != nil {
					return err
				}
				if seen != own {
					return fmt.Errorf("the backend saw %s, want the client's own address %s", seen, own)
				}
				return nil
			}, "TCP %s -> %s", src, dst)
			eventually(t, serviceTimeout, func() error {
				return from.RequestUDP(dst, ProbeTimeout)
			}, "UDP %s -> %s", src, dst)
		}
	}

	testNodePort(ctx, t, l, backends)

	// The backend leaves the selector: the controller drops it, and kube-proxy stops sending there.
	if err := l.Relabel(ctx, scenario.Relabel{Kind: scenario.KindPod, Name: "svc/server", Labels: map[string]string{"app": "gone"}}); err != nil {
		t.Fatal(err)
	}
	waitEndpoints(ctx, t, l, "server", nil)
	from, err := l.PodNetns("svc/remote")
	if err != nil {
		t.Fatal(err)
	}
	for _, ip := range clusterIPs {
		dst := netip.AddrPortFrom(ip, servicePort)
		for _, protocol := range []string{scenario.ProtocolTCP, scenario.ProtocolUDP} {
			eventually(t, serviceTimeout, func() error {
				ok, err := Probe(ctx, from, dst, protocol, ProbeTimeout)
				if err != nil {
					return err
				}
				if ok {
					return errors.New("still answered")
				}
				return nil
			}, "%s svc/remote -> %s after the backend left the selector", protocol, dst)
		}
	}
}

// clusterIPsOf reads the Service's ClusterIPs and checks that they come from the lab's Service
// CIDRs, one per family, in order.
func clusterIPsOf(t *testing.T, l *Lab, svc *corev1.Service) []netip.Addr {
	t.Helper()
	var ips []netip.Addr
	for _, s := range svc.Spec.ClusterIPs {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			t.Fatal(err)
		}
		ips = append(ips, ip)
	}
	cidrs := l.ServiceCIDRs()
	if len(ips) != len(cidrs) {
		t.Fatalf("ClusterIPs %v, want one in each of %v", ips, cidrs)
	}
	for i, ip := range ips {
		if !cidrs[i].Contains(ip) {
			t.Fatalf("ClusterIP %s is outside the lab's Service CIDR %s", ip, cidrs[i])
		}
	}
	return ips
}

// waitEndpoints waits until the EndpointSlices of the Service svc/name, from the real controller, list
// exactly the ready addresses want.
func waitEndpoints(ctx context.Context, t *testing.T, l *Lab, name string, want []string) {
	t.Helper()
	slices.Sort(want)
	eventually(t, serviceTimeout, func() error {
		var list discoveryv1.EndpointSliceList
		err := l.Client().List(ctx, &list, client.InNamespace("svc"), client.MatchingLabels{discoveryv1.LabelServiceName: name})
		if err != nil {
			return err
		}
		var got []string
		for _, slice := range list.Items {
			if m := slice.Labels[discoveryv1.LabelManagedBy]; m != "endpointslice-controller.k8s.io" {
				return fmt.Errorf("EndpointSlice %s is managed by %q", slice.Name, m)
			}
			for _, ep := range slice.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					got = append(got, ep.Addresses...)
				}
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			return fmt.Errorf("ready endpoints %v, want %v", got, want)
		}
		return nil
	}, "EndpointSlices of svc/%s", name)
}

// TestIPVSRefused starts a lab in kube-proxy's ipvs mode on a kernel without IPVS: Start fails at once,
// saying so, and leaves nothing behind.
func TestIPVSRefused(t *testing.T) {
	requireLab(t)
	if ipvsAvailable() == nil {
		t.Skip("this kernel has IPVS: nothing to refuse")
	}
	before := labNetns(t)
	opts := testOptions(t)
	opts.ProxyMode = ProxyModeIPVS
	begin := time.Now()
	l, err := Start(context.Background(), opts)
	if err == nil {
		_ = l.Close()
		t.Fatal("Start in ipvs mode succeeded on a kernel without IPVS")
	}
	const want = "kube-proxy --proxy-mode=ipvs needs the kernel's IPVS (ip_vs), which this kernel lacks"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("Start: %v, want it to say %q", err, want)
	}
	// "At once": before any control plane starts, which alone takes seconds.
	if d := time.Since(begin); d > 5*time.Second {
		t.Errorf("Start took %s to refuse", d)
	}
	if after := labNetns(t); !slices.Equal(before, after) {
		t.Errorf("network namespaces before %v, after %v", before, after)
	}
}

// labNetns lists the lab namespaces of the machine.
func labNetns(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir("/run/netns")
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), netlab.DefaultPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// addrSeenByServer connects over TCP from ns to dst, where a netlab server greets with the client
// address it sees, and returns that address.
func addrSeenByServer(ns netlab.Netns, dst netip.AddrPort) (netip.Addr, error) {
	var conn net.Conn
	err := ns.Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", dst.String(), ProbeTimeout)
		return err
	})
	if err != nil {
		return netip.Addr{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(ProbeTimeout))
	line, err := io.ReadAll(conn)
	if err != nil {
		return netip.Addr{}, err
	}
	ap, err := netip.ParseAddrPort(strings.TrimSpace(string(line)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("reading the greeting %q: %w", line, err)
	}
	return ap.Addr().Unmap(), nil
}

// eventually retries check until it passes or timeout passes, then fails the test with its last error.
func eventually(t *testing.T, timeout time.Duration, check func() error, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v (after %s)", fmt.Sprintf(format, args...), err, timeout)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// testNodePort reaches the server through a NodePort from the lab's external client. With
// externalTrafficPolicy Local the backend's node answers and the backend sees the client's own
// address, and the other node, which has no backend, does not answer; with Cluster the other node
// answers too, forwarding with its own source address.
func testNodePort(ctx context.Context, t *testing.T, l *Lab, backends []string) {
	t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: "svc", Name: "server-nodeport"},
		Spec: corev1.ServiceSpec{
			Type:                  corev1.ServiceTypeNodePort,
			ExternalTrafficPolicy: corev1.ServiceExternalTrafficPolicyLocal,
			Selector:              map[string]string{"app": "server"},
			Ports:                 []corev1.ServicePort{{Protocol: corev1.ProtocolTCP, Port: servicePort, TargetPort: intstr.FromInt32(backendPort)}},
		},
	}
	if err := l.Client().Create(ctx, svc); err != nil {
		t.Fatal(err)
	}
	// A single-stack Service: the primary family's endpoints.
	waitEndpoints(ctx, t, l, svc.Name, backends[:1])
	nodePort := uint16(svc.Spec.Ports[0].NodePort)
	ext := l.ExternalClient()
	extIP := ext.IPv4
	if l.opts.IPFamily == FamilyIPv6 {
		extIP = ext.IPv6
	}
	backendNode, err := l.NodeOf("svc/server")
	if err != nil {
		t.Fatal(err)
	}
	var otherNode string
	for _, n := range l.NodeNames() {
		if n != backendNode {
			otherNode = n
		}
	}
	nodeAddr := func(name string) netip.AddrPort {
		ip, err := l.NodeIP(name)
		if err != nil {
			t.Fatal(err)
		}
		return netip.AddrPortFrom(ip, nodePort)
	}

	local, other := nodeAddr(backendNode), nodeAddr(otherNode)
	eventually(t, serviceTimeout, func() error {
		seen, err := addrSeenByServer(ext.Netns, local)
		if err != nil {
			return err
		}
		if seen != extIP {
			return fmt.Errorf("the backend saw %s, want the external client's address %s", seen, extIP)
		}
		return nil
	}, "external client -> NodePort %s (Local, backend's node)", local)
	if ok, err := Probe(ctx, ext.Netns, other, scenario.ProtocolTCP, ProbeTimeout); err != nil || ok {
		t.Errorf("external client -> NodePort %s (Local, no backend on that node): answered=%t, err=%v; want no answer", other, ok, err)
	}

	svc.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	if err := l.Client().Update(ctx, svc); err != nil {
		t.Fatal(err)
	}
	eventually(t, serviceTimeout, func() error {
		seen, err := addrSeenByServer(ext.Netns, other)
		if err != nil {
			return err
		}
		if seen == extIP {
			return fmt.Errorf("the backend saw the external client's address %s through another node: no SNAT", seen)
		}
		return nil
	}, "external client -> NodePort %s (Cluster, via the node without a backend)", other)
}

// TestProxyModeToolsMissing: a mode whose tools are not on PATH is refused, naming each one.
func TestProxyModeToolsMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	for mode, tools := range proxyModeTools {
		err := proxyModeUsable(mode)
		if err == nil {
			t.Errorf("%s: usable with an empty PATH", mode)
			continue
		}
		for _, tool := range tools {
			if !strings.Contains(err.Error(), tool) {
				t.Errorf("%s: %v does not name %s", mode, err, tool)
			}
		}
		if !strings.Contains(err.Error(), "hack/setup.sh") {
			t.Errorf("%s: %v does not say what installs them", mode, err)
		}
	}
}
