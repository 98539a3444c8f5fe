// Package netlab builds small routed clusters out of network namespaces, for tests that need real
// packets: "node" namespaces that forward, "pod" namespaces each joined to their node by a veth pair,
// and a fabric veth between nodes.
//
// Address plan (all inside 198.18.0.0/15, reserved for benchmarking, and the ULA fd18::/16):
//
//	pod p (1..254) on node n (1..99):   198.18.n.p/32        fd18::n:p/128 (pods: 198.18.0.0/16, fd18::/96)
//	pod default route:                  via 169.254.1.1 / fe80::1 on eth0 (the node side answers)
//	node side of every pod veth:        lab<p>, 169.254.1.1/32, fe80::1/64; a /32 and /128 route per pod
//	fabric between nodes n<m:           198.19.(10n+m).1 and .2 /24, fd18:ffff:X::n and ::m /64, X = 100n+m in hex
//	node n's own address (InternalIP):  198.19.0.n/32        fd18:ffff:ffff::n/128, on the node's lo
//	external client c (1..99):          198.19.1.c/32        fd18:ffff:fffe::c/128, on the client's lo
//	external client's link to node n:   node<n> in the client, ext<c> in the node; fe80::2 and fe80::1
//	Services (lab package):             198.19.240.0/20      fd18:ffff:5e::/112
//
// A node's own address is what its Node object publishes: every other node routes it over their
// fabric link, and every external client over its link to that node, so a NodePort answers there as
// on a real node. An external client stands for a machine outside the cluster: it reaches the node
// addresses only, never the pods directly.
//
// The layout is routed, like Calico's: the node has a host route per pod address pointing at the
// pod's veth, forwarding is enabled in node namespaces only, and nothing is bridged. The host's own
// namespace is only touched to create and delete the namespaces' names under /run/netns.
package netlab

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DefaultPrefix starts the name of every namespace a Lab creates, so that Sweep finds leftovers.
const DefaultPrefix = "nftplab-"

// PodIfname is the pod side of each pod's veth.
const PodIfname = "eth0"

// HostIfnamePrefix starts the name of the node side of every pod's veth (and of no other interface),
// as a CNI's prefix does (Calico's "cali"): the agents' --pod-interface-prefix.
const HostIfnamePrefix = "lab"

var (
	gatewayV4 = netip.MustParseAddr("169.254.1.1")
	gatewayV6 = netip.MustParseAddr("fe80::1")
)

// Lab is a set of namespaces with unique names for one run. Pods may be added and removed
// concurrently (the lab's own pods and those its kubelets run); the rest is set up by one caller.
type Lab struct {
	prefix    string // DefaultPrefix + pid + random, unique per run
	nodes     []*Node
	externals []*External

	// mu guards what pods change: the lists below and each node's pod numbers.
	mu     sync.Mutex
	pods   []*Pod
	netnss []*Netns // everything created, deleted in reverse order
}

// Node is a node namespace: it routes between its pods and the fabric.
type Node struct {
	Netns
	Index int // n in the address plan
	// IPv4 and IPv6 are the node's own addresses, on its loopback.
	IPv4, IPv6 netip.Addr
	lab        *Lab
	pods       int
	free       []int // pod numbers p that RemovePod gave back, reused first
}

// Pod is a pod namespace with one veth to its node.
type Pod struct {
	Netns
	Node       *Node
	IPv4, IPv6 netip.Addr
	HostIfname string // the node side of the veth
}

// New creates an empty lab. Call Close to remove everything it created.
func New() (*Lab, error) {
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("generating a lab name: %w", err)
	}
	return &Lab{prefix: fmt.Sprintf("%s%d-%s-", DefaultPrefix, os.Getpid(), hex.EncodeToString(b[:]))}, nil
}

// NewForTest creates a lab that is removed when the test ends, passed or failed. It skips the test
// when the process cannot create network namespaces.
func NewForTest(t testing.TB) *Lab {
	t.Helper()
	if reason := Unavailable(); reason != "" {
		t.Skip(reason)
	}
	lab, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lab.Close(); err != nil {
			t.Errorf("removing lab: %v", err)
		}
	})
	return lab
}

// Unavailable returns why network namespaces cannot be used here, or "".
func Unavailable() string {
	if os.Geteuid() != 0 {
		return "needs root to create network namespaces"
	}
	if _, err := os.Stat("/proc/self/ns/net"); err != nil {
		return "network namespaces are not supported: " + err.Error()
	}
	return ""
}

// Prefix returns the prefix of every namespace name of this lab.
func (l *Lab) Prefix() string { return l.prefix }

// Close deletes every namespace of the lab, with the interfaces in them.
func (l *Lab) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var errs []error
	for i := len(l.netnss) - 1; i >= 0; i-- {
		errs = append(errs, l.netnss[i].Delete())
	}
	l.netnss = nil
	return errors.Join(errs...)
}

func (l *Lab) newNetns(suffix string) (*Netns, error) {
	n, err := newNetns(l.prefix + suffix)
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	l.netnss = append(l.netnss, n)
	l.mu.Unlock()
	if err := n.Do(baseSysctls); err != nil {
		return nil, err
	}
	return n, nil
}

// baseSysctls: loopback up, and no duplicate address detection so that IPv6 addresses work at once.
func baseSysctls() error {
	if err := writeSysctls(map[string]string{
		"net/ipv6/conf/all/accept_dad":     "0",
		"net/ipv6/conf/default/accept_dad": "0",
	}); err != nil {
		return err
	}
	lo, err := netlink.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("finding lo: %w", err)
	}
	return netlink.LinkSetUp(lo)
}

// writeSysctls writes /proc/sys entries; called inside a namespace (Do), it sets that namespace's.
func writeSysctls(kv map[string]string) error {
	for k, v := range kv {
		if err := os.WriteFile(filepath.Join("/proc/sys", k), []byte(v), 0o644); err != nil {
			return fmt.Errorf("setting %s: %w", k, err)
		}
	}
	return nil
}

// AddNode creates a node namespace with forwarding enabled.
func (l *Lab) AddNode() (*Node, error) {
	index := len(l.nodes) + 1
	if index > 99 {
		return nil, errors.New("too many nodes")
	}
	ns, err := l.newNetns(fmt.Sprintf("node%d", index))
	if err != nil {
		return nil, err
	}
	err = ns.Do(func() error {
		return writeSysctls(map[string]string{
			"net/ipv4/ip_forward":          "1",
			"net/ipv6/conf/all/forwarding": "1",
		})
	})
	if err != nil {
		return nil, err
	}
	node := &Node{Netns: *ns, Index: index, lab: l, IPv4: nodeIPv4(index), IPv6: nodeIPv6(index)}
	err = ns.Do(func() error {
		lo, err := netlink.LinkByName("lo")
		if err != nil {
			return err
		}
		if err := addAddr(lo, netip.PrefixFrom(node.IPv4, 32)); err != nil {
			return err
		}
		return addAddr(lo, netip.PrefixFrom(node.IPv6, 128))
	})
	if err != nil {
		return nil, fmt.Errorf("adding the addresses of node %d: %w", index, err)
	}
	l.nodes = append(l.nodes, node)
	return node, nil
}

// nodeIPv4 and nodeIPv6 are node n's own addresses in the address plan.
func nodeIPv4(n int) netip.Addr { return netip.AddrFrom4([4]byte{198, 19, 0, byte(n)}) }

func nodeIPv6(n int) netip.Addr { return netip.MustParseAddr(fmt.Sprintf("fd18:ffff:ffff::%x", n)) }

// AddPod creates a pod namespace on node, joined by a veth pair, with addresses and routes per the
// address plan.
func (n *Node) AddPod(name string) (*Pod, error) {
	p, err := n.takePodNumber()
	if err != nil {
		return nil, err
	}
	ns, err := n.lab.newNetns(fmt.Sprintf("n%d-%s", n.Index, name))
	if err != nil {
		return nil, err
	}
	pod := &Pod{
		Netns:      *ns,
		Node:       n,
		IPv4:       netip.AddrFrom4([4]byte{198, 18, byte(n.Index), byte(p)}),
		IPv6:       netip.MustParseAddr(fmt.Sprintf("fd18::%x:%x", n.Index, p)),
		HostIfname: fmt.Sprintf("%s%d", HostIfnamePrefix, p),
	}
	podNs, err := netns.GetFromPath(pod.Path)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", pod.Name, err)
	}
	defer podNs.Close()
	err = n.Do(func() error {
		veth := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: pod.HostIfname},
			PeerName:      PodIfname,
			PeerNamespace: netlink.NsFd(podNs),
		}
		if err := netlink.LinkAdd(veth); err != nil {
			return fmt.Errorf("adding veth %s: %w", pod.HostIfname, err)
		}
		host, err := netlink.LinkByName(pod.HostIfname)
		if err != nil {
			return err
		}
		// The gateway addresses the pods route through; the same /32 on every pod veth.
		if err := addAddr(host, netip.PrefixFrom(gatewayV4, 32)); err != nil {
			return err
		}
		if err := addAddr(host, netip.PrefixFrom(gatewayV6, 64)); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(host); err != nil {
			return fmt.Errorf("setting %s up: %w", pod.HostIfname, err)
		}
		for _, a := range []netip.Addr{pod.IPv4, pod.IPv6} {
			r := &netlink.Route{LinkIndex: host.Attrs().Index, Dst: hostPrefix(a), Scope: netlink.SCOPE_LINK}
			if err := netlink.RouteAdd(r); err != nil {
				return fmt.Errorf("adding route to %s: %w", a, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("plumbing pod %s on node %d: %w", name, n.Index, err)
	}
	err = pod.Do(func() error {
		eth, err := netlink.LinkByName(PodIfname)
		if err != nil {
			return err
		}
		if err := addAddr(eth, netip.PrefixFrom(pod.IPv4, 32)); err != nil {
			return err
		}
		if err := addAddr(eth, netip.PrefixFrom(pod.IPv6, 128)); err != nil {
			return err
		}
		if err := netlink.LinkSetUp(eth); err != nil {
			return err
		}
		// default via 169.254.1.1 dev eth0 onlink; default via fe80::1 dev eth0
		routes := []*netlink.Route{
			{LinkIndex: eth.Attrs().Index, Dst: defaultRoute(4), Gw: gatewayV4.AsSlice(), Flags: int(netlink.FLAG_ONLINK)},
			{LinkIndex: eth.Attrs().Index, Dst: defaultRoute(6), Gw: gatewayV6.AsSlice()},
		}
		for _, r := range routes {
			if err := netlink.RouteAdd(r); err != nil {
				return fmt.Errorf("adding default route via %s: %w", r.Gw, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("configuring pod %s: %w", name, err)
	}
	if err := waitOperUp(&n.Netns, pod.HostIfname); err != nil {
		return nil, err
	}
	if err := waitOperUp(&pod.Netns, PodIfname); err != nil {
		return nil, err
	}
	n.lab.mu.Lock()
	n.lab.pods = append(n.lab.pods, pod)
	n.lab.mu.Unlock()
	return pod, nil
}

// Connect joins two nodes with a fabric veth and routes each node's pod addresses over it.
func (l *Lab) Connect(a, b *Node) error {
	if a.Index > b.Index {
		a, b = b, a
	}
	ifname := func(peer *Node) string { return fmt.Sprintf("fab%d", peer.Index) }
	addr4 := func(self *Node) netip.Prefix {
		side := byte(1)
		if self == b {
			side = 2
		}
		return netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 19, byte(a.Index*10 + b.Index), side}), 24)
	}
	addr6 := func(self *Node) netip.Prefix {
		return netip.PrefixFrom(netip.MustParseAddr(fmt.Sprintf("fd18:ffff:%x::%x", a.Index*100+b.Index, self.Index)), 64)
	}
	bNs, err := netns.GetFromPath(b.Path)
	if err != nil {
		return err
	}
	defer bNs.Close()
	err = a.Do(func() error {
		return netlink.LinkAdd(&netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: ifname(b)},
			PeerName:      ifname(a),
			PeerNamespace: netlink.NsFd(bNs),
		})
	})
	if err != nil {
		return fmt.Errorf("adding fabric veth between nodes %d and %d: %w", a.Index, b.Index, err)
	}
	for _, side := range []struct{ self, peer *Node }{{a, b}, {b, a}} {
		self, peer := side.self, side.peer
		err := self.Do(func() error {
			link, err := netlink.LinkByName(ifname(peer))
			if err != nil {
				return err
			}
			if err := addAddr(link, addr4(self)); err != nil {
				return err
			}
			if err := addAddr(link, addr6(self)); err != nil {
				return err
			}
			if err := netlink.LinkSetUp(link); err != nil {
				return err
			}
			// The peer node's pods, 198.18.PEER.0/24 and fd18::PEER:0/112, and its own addresses via
			// the peer's fabric address. Traffic to the peer's own address leaves from this node's
			// own address, as between the InternalIPs of real nodes.
			routes := []struct {
				dst      netip.Prefix
				via, src netip.Addr
			}{
				{dst: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 18, byte(peer.Index), 0}), 24), via: addr4(peer).Addr()},
				{dst: netip.MustParsePrefix(fmt.Sprintf("fd18::%x:0/112", peer.Index)), via: addr6(peer).Addr()},
				{dst: netip.PrefixFrom(peer.IPv4, 32), via: addr4(peer).Addr(), src: self.IPv4},
				{dst: netip.PrefixFrom(peer.IPv6, 128), via: addr6(peer).Addr(), src: self.IPv6},
			}
			for _, r := range routes {
				route := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: ipNet(r.dst), Gw: r.via.AsSlice()}
				if r.src.IsValid() {
					route.Src = r.src.AsSlice()
				}
				if err := netlink.RouteAdd(route); err != nil {
					return fmt.Errorf("adding route to %s via %s: %w", r.dst, r.via, err)
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("configuring fabric on node %d: %w", self.Index, err)
		}
	}
	if err := waitOperUp(&a.Netns, ifname(b)); err != nil {
		return err
	}
	return waitOperUp(&b.Netns, ifname(a))
}

// linkReadyTimeout bounds the wait for a new veth to become operationally up.
const linkReadyTimeout = 5 * time.Second

// waitOperUp waits until a link of the namespace is operationally up. The kernel reports carrier
// changes with up to a second of delay, and until then IPv6 ignores neighbour solicitations on the
// link: the first IPv6 packets across it would be lost and retried a second later.
func waitOperUp(ns *Netns, name string) error {
	deadline := time.Now().Add(linkReadyTimeout)
	for {
		var state netlink.LinkOperState
		err := ns.Do(func() error {
			link, err := netlink.LinkByName(name)
			if err != nil {
				return err
			}
			state = link.Attrs().OperState
			return nil
		})
		if err != nil {
			return fmt.Errorf("reading the state of %s in %s: %w", name, ns.Name, err)
		}
		if state == netlink.OperUp {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("link %s in %s is still %s after %v", name, ns.Name, state, linkReadyTimeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func addAddr(link netlink.Link, p netip.Prefix) error {
	a := &netlink.Addr{IPNet: ipNet(p)}
	if p.Addr().Is6() {
		a.Flags = unix.IFA_F_NODAD
	}
	if err := netlink.AddrAdd(link, a); err != nil {
		return fmt.Errorf("adding %s to %s: %w", p, link.Attrs().Name, err)
	}
	return nil
}

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

func hostPrefix(a netip.Addr) *net.IPNet { return ipNet(netip.PrefixFrom(a, a.BitLen())) }

func defaultRoute(family int) *net.IPNet {
	if family == 4 {
		return ipNet(netip.MustParsePrefix("0.0.0.0/0"))
	}
	return ipNet(netip.MustParsePrefix("::/0"))
}
