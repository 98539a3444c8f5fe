package kernel

import (
	"github.com/nftpolicy/nftpolicy/nft"

	"maps"
	"net/netip"
	"testing"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// TestNetlinkInterfaces resolves pod addresses in a node namespace: local pods map to the host side
// of their veth, a pod on another node (routed via the fabric) and an unrouted address are left out.
func TestNetlinkInterfaces(t *testing.T) {
	lab := netlab.NewForTest(t)
	node1, node2 := mustNode(t, lab), mustNode(t, lab)
	if err := lab.Connect(node1, node2); err != nil {
		t.Fatal(err)
	}
	a, b, c := mustPod(t, node1, "a"), mustPod(t, node1, "b"), mustPod(t, node2, "c")
	r, err := NewNetlinkInterfaces(node1.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.Interfaces([]netip.Addr{a.IPv4, a.IPv6, b.IPv4, c.IPv4, c.IPv6, netip.MustParseAddr("203.0.113.7")})
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]string{a.IPv4: a.HostIfname, a.IPv6: a.HostIfname, b.IPv4: b.HostIfname}
	if !maps.Equal(got, want) {
		t.Errorf("Interfaces = %v, want %v", got, want)
	}
}

// TestFakeInterfaces needs no kernel: the fake answers for the addresses it knows.
func TestFakeInterfaces(t *testing.T) {
	a, b := netip.MustParseAddr("198.18.1.1"), netip.MustParseAddr("198.18.1.2")
	got, err := nft.FakeInterfaces{a: "lab1"}.Interfaces([]netip.Addr{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[netip.Addr]string{a: "lab1"}; !maps.Equal(got, want) {
		t.Errorf("Interfaces = %v, want %v", got, want)
	}
}
