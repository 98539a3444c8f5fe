package netlab

import (
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestNodeAddresses checks the address plan's node addresses: every node reaches every other node's
// own address, from its own address, and an external client reaches every node's own address, from
// its own address, over TCP, IPv4 and IPv6. The client reaches no pod: it has no route to them.
func TestNodeAddresses(t *testing.T) {
	lab := NewForTest(t)
	var nodes []*Node
	for range 3 {
		n, err := lab.AddNode()
		if err != nil {
			t.Fatal(err)
		}
		for _, peer := range nodes {
			if err := lab.Connect(peer, n); err != nil {
				t.Fatal(err)
			}
		}
		nodes = append(nodes, n)
	}
	pod, err := nodes[0].AddPod("a")
	if err != nil {
		t.Fatal(err)
	}
	ext, err := lab.AddExternal()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		srv, err := n.ServeTCP(testPort)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
	}
	type endpoint struct {
		ns         *Netns
		ipv4, ipv6 netip.Addr
	}
	clients := []endpoint{{&ext.Netns, ext.IPv4, ext.IPv6}}
	for _, n := range nodes {
		clients = append(clients, endpoint{&n.Netns, n.IPv4, n.IPv6})
	}
	for _, from := range clients {
		for _, to := range nodes {
			if from.ns == &to.Netns {
				continue
			}
			for _, pair := range [][2]netip.Addr{{from.ipv4, to.IPv4}, {from.ipv6, to.IPv6}} {
				dst := netip.AddrPortFrom(pair[1], testPort)
				seen, err := remoteAddrSeenBy(from.ns, dst)
				if err != nil {
					t.Errorf("%s -> %s: %v", from.ns.Name, dst, err)
					continue
				}
				if seen != pair[0] {
					t.Errorf("%s -> %s: the server saw %s, want the client's own address %s", from.ns.Name, dst, seen, pair[0])
				}
			}
		}
	}
	if err := ext.ConnectTCP(netip.AddrPortFrom(pod.IPv4, testPort), 300*time.Millisecond); err == nil {
		t.Errorf("the external client reached pod %s directly", pod.IPv4)
	}
}

// remoteAddrSeenBy connects from ns to a Server at dst and returns the client address the server
// reports.
func remoteAddrSeenBy(ns *Netns, dst netip.AddrPort) (netip.Addr, error) {
	var conn net.Conn
	err := ns.Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp", dst.String(), 2*time.Second)
		return err
	})
	if err != nil {
		return netip.Addr{}, err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	line, err := io.ReadAll(conn)
	if err != nil {
		return netip.Addr{}, err
	}
	ap, err := netip.ParseAddrPort(strings.TrimSpace(string(line)))
	if err != nil {
		return netip.Addr{}, err
	}
	return ap.Addr().Unmap(), nil
}
