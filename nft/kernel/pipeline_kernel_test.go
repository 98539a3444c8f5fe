package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"fmt"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// The whole engine on the kernel: a snapshot is resolved and compiled for each of two node namespaces,
// the pods' host interfaces are found by route lookup, each node's table is applied through the
// netlink backend, and real connections between pod namespaces get the verdicts of the guestbook
// policies. Addresses come from netlab's plan (198.18.<node>.<n>, fd18::<node>:<n>).
//
//	node 1: default/redis (app=redis, serves redis-server 6379/TCP), default/guestbook (app=guestbook)
//	node 2: default/guestbook-2 (app=guestbook), default/busybox (run=busybox), other/guestbook (app=guestbook)
//
// Policies: redis-policy (redis accepts guestbook pods of default on redis-server, and on UDP 5353),
// guestbook-egress (guestbook pods of default may only reach redis on 6379 and 5353/UDP).
func TestPipelineOnTheKernel(t *testing.T) {
	lab := netlab.NewForTest(t)
	node1, node2 := mustNode(t, lab), mustNode(t, lab)
	if err := lab.Connect(node1, node2); err != nil {
		t.Fatal(err)
	}
	redis, guestbook := mustPod(t, node1, "redis"), mustPod(t, node1, "guestbook")
	guestbook2, busybox, foreign := mustPod(t, node2, "guestbook-2"), mustPod(t, node2, "busybox"), mustPod(t, node2, "foreign")
	for _, p := range []*netlab.Pod{redis, busybox, guestbook} {
		for _, port := range []uint16{6379, 80} {
			srv, err := p.Serve(port)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Close)
		}
	}

	pod := func(ns string, p *netlab.Pod, labels map[string]string, ports ...selectors.ContainerPort) selectors.Pod {
		return selectors.Pod{Namespace: ns, Name: p.Name, Labels: labels, IPs: []netip.Addr{p.IPv4, p.IPv6},
			Node: p.Node.Name, Phase: corev1.PodRunning, Ports: ports}
	}
	snapshot := &selectors.Snapshot{
		Namespaces: []selectors.Namespace{{Name: "default"}, {Name: "other"}},
		Pods: []selectors.Pod{
			pod("default", redis, map[string]string{"app": "redis"}, selectors.ContainerPort{Name: "redis-server", Number: 6379, Protocol: corev1.ProtocolTCP}),
			pod("default", guestbook, map[string]string{"app": "guestbook"}),
			pod("default", guestbook2, map[string]string{"app": "guestbook"}),
			pod("default", busybox, map[string]string{"run": "busybox"}),
			pod("other", foreign, map[string]string{"app": "guestbook"}),
		},
		Policies: []*networkingv1.NetworkPolicy{redisPolicy(), guestbookEgressPolicy()},
	}

	program := func(antiSpoofing bool) {
		for _, node := range []*netlab.Node{node1, node2} {
			snap := *snapshot
			snap.Node = node.Name
			model := selectors.Resolve(&snap)
			in := nft.CompileInput{Table: kernelTable, Model: model}
			if antiSpoofing {
				in.Interfaces = resolveInterfaces(t, node, model)
			}
			b, err := NewNetlinkBackend(node.Path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := nft.NewApplier(b).Apply(nft.Compile(in), nft.FullChanges()); err != nil {
				t.Fatalf("programming %s: %v", node.Name, err)
			}
			_ = b.Close()
		}
	}
	program(true)

	flows := []struct {
		name    string
		from    *netlab.Pod
		to      netip.Addr
		port    uint16
		tcp     bool
		udp     bool
		because string
	}{
		{"guestbook -> redis, same node", guestbook, redis.IPv4, 6379, true, false, "egress allows 6379; redis-server is TCP only"},
		{"guestbook -> redis, same node, IPv6", guestbook, redis.IPv6, 6379, true, false, "every family of every pod"},
		{"guestbook-2 -> redis, other node", guestbook2, redis.IPv4, 6379, true, false, "not egress-isolated on node 2"},
		{"busybox -> redis", busybox, redis.IPv4, 6379, false, false, "not a guestbook pod"},
		{"other/guestbook -> redis", foreign, redis.IPv4, 6379, false, false, "podSelector is scoped to the policy's namespace"},
		{"guestbook -> busybox", guestbook, busybox.IPv4, 80, false, false, "guestbook is isolated for egress"},
		{"busybox -> guestbook", busybox, guestbook.IPv4, 80, true, true, "guestbook is not isolated for ingress"},
		{"redis -> guestbook, same node", redis, guestbook.IPv4, 80, true, true, "redis is not isolated for egress"},
	}
	for _, f := range flows {
		dst := netip.AddrPortFrom(f.to, f.port)
		for proto, want := range map[string]bool{"TCP": f.tcp, "UDP": f.udp} {
			timeout := 3 * time.Second
			if !want {
				timeout = 400 * time.Millisecond
			}
			var err error
			if proto == "TCP" {
				err = f.from.ConnectTCP(dst, timeout)
			} else {
				err = f.from.RequestUDP(dst, timeout)
			}
			if (err == nil) != want {
				t.Errorf("%s %s (%s): allowed=%v, want %v (%v)", f.name, proto, f.because, err == nil, want, err)
			}
		}
	}

	// Anti-spoofing: busybox borrows guestbook-2's address and sends to redis on UDP 5353, which
	// redis accepts from guestbook pods. Without anti-spoofing the datagrams arrive (so the check below
	// can fail); with it, node 2 drops them at busybox's interface.
	received := countUDP(t, redis, 5353)
	spoof := func() int64 {
		before := received.Load()
		sendFrom(t, busybox, guestbook2.IPv4, netip.AddrPortFrom(redis.IPv4, 5353))
		time.Sleep(300 * time.Millisecond)
		return received.Load() - before
	}
	program(false)
	if n := spoof(); n == 0 {
		t.Fatal("without anti-spoofing the spoofed datagrams should have arrived; the test cannot show anything")
	}
	program(true)
	if n := spoof(); n != 0 {
		t.Errorf("%d spoofed datagrams reached redis", n)
	}
}

func redisPolicy() *networkingv1.NetworkPolicy {
	redisServer, udp, dnsPort := intstr.FromString("redis-server"), corev1.ProtocolUDP, intstr.FromInt32(5353)
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "redis-policy"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}},
			Ingress: []networkingv1.NetworkPolicyIngressRule{{
				From:  []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "guestbook"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &redisServer}, {Protocol: &udp, Port: &dnsPort}},
			}},
		},
	}
}

func guestbookEgressPolicy() *networkingv1.NetworkPolicy {
	redisPort, udp, dnsPort := intstr.FromInt32(6379), corev1.ProtocolUDP, intstr.FromInt32(5353)
	return &networkingv1.NetworkPolicy{
		ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "guestbook-egress"},
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{MatchLabels: map[string]string{"app": "guestbook"}},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeEgress},
			Egress: []networkingv1.NetworkPolicyEgressRule{{
				To:    []networkingv1.NetworkPolicyPeer{{PodSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "redis"}}}},
				Ports: []networkingv1.NetworkPolicyPort{{Port: &redisPort}, {Protocol: &udp, Port: &dnsPort}},
			}},
		},
	}
}

// resolveInterfaces finds the host interface of every local pod address by route lookup, as the agent does.
func resolveInterfaces(t *testing.T, node *netlab.Node, m *selectors.Model) map[netip.Addr]string {
	t.Helper()
	r, err := NewNetlinkInterfaces(node.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var addrs []netip.Addr
	for _, p := range m.LocalPods {
		addrs = append(addrs, p.IPs...)
	}
	ifaces, err := r.Interfaces(addrs)
	if err != nil {
		t.Fatal(err)
	}
	if len(ifaces) != len(addrs) {
		t.Fatalf("found interfaces for %d of %d local pod addresses: %v", len(ifaces), len(addrs), ifaces)
	}
	return ifaces
}

// countUDP counts datagrams arriving on port inside the pod.
func countUDP(t *testing.T, p *netlab.Pod, port uint16) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	var conn net.PacketConn
	if err := p.Do(func() (err error) {
		conn, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", port))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := conn.ReadFrom(buf); err != nil {
				return
			}
			n.Add(1)
		}
	}()
	return &n
}

// sendFrom sends a few datagrams from inside p with a source address p does not own: the address is
// added to p's interface for the duration (with DAD off it is usable at once).
func sendFrom(t *testing.T, p *netlab.Pod, src netip.Addr, dst netip.AddrPort) {
	t.Helper()
	err := p.Do(func() error {
		link, err := netlink.LinkByName(netlab.PodIfname)
		if err != nil {
			return err
		}
		a := &netlink.Addr{IPNet: &net.IPNet{IP: src.AsSlice(), Mask: net.CIDRMask(32, 32)}}
		if err := netlink.AddrAdd(link, a); err != nil && !os.IsExist(err) {
			return err
		}
		defer func() { _ = netlink.AddrDel(link, a) }()
		conn, err := net.DialUDP("udp4", &net.UDPAddr{IP: src.AsSlice()}, net.UDPAddrFromAddrPort(dst))
		if err != nil {
			return err
		}
		defer conn.Close()
		for i := 0; i < 3; i++ {
			if _, err := conn.Write([]byte("spoofed")); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sending from %s in %s: %v", src, p.Name, err)
	}
}
