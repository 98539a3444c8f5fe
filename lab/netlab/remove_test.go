package netlab

import (
	"net/netip"
	"testing"
	"time"
)

// TestRemovePodReusesAddress removes a pod and checks that the next pod of the node gets its
// addresses and interface name, and that traffic to the new pod flows.
func TestRemovePodReusesAddress(t *testing.T) {
	lab := NewForTest(t)
	node, err := lab.AddNode()
	if err != nil {
		t.Fatal(err)
	}
	client, err := node.AddPod("client")
	if err != nil {
		t.Fatal(err)
	}
	old, err := node.AddPod("old")
	if err != nil {
		t.Fatal(err)
	}
	if err := node.RemovePod(old); err != nil {
		t.Fatal(err)
	}
	reborn, err := node.AddPod("new")
	if err != nil {
		t.Fatal(err)
	}
	if reborn.IPv4 != old.IPv4 || reborn.IPv6 != old.IPv6 || reborn.HostIfname != old.HostIfname {
		t.Errorf("new pod has %s %s %s, want the removed pod's %s %s %s",
			reborn.IPv4, reborn.IPv6, reborn.HostIfname, old.IPv4, old.IPv6, old.HostIfname)
	}
	srv, err := reborn.ServeTCP(testPort)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	if err := client.ConnectTCP(netip.AddrPortFrom(reborn.IPv4, testPort), 2*time.Second); err != nil {
		t.Error(err)
	}
	udp, err := reborn.ServeUDP(testPort)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	if err := client.RequestUDP(netip.AddrPortFrom(reborn.IPv6, testPort), 2*time.Second); err != nil {
		t.Error(err)
	}
}
