package controllers

import (
	"net/netip"
	"testing"
	"time"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// In the fail-closed mode a local pod whose host interface was not found has no network, and nothing
// but a sync finds the interface: the node syncs again soon, not at the next resync.
func TestInterfaceRetry(t *testing.T) {
	a, b := netip.MustParseAddr("10.1.0.10"), netip.MustParseAddr("10.1.0.11")
	model := &selectors.Model{LocalPods: []selectors.LocalPod{
		{Namespace: "ns", Name: "a", IPs: []netip.Addr{a}},
		{Namespace: "ns", Name: "b", IPs: []netip.Addr{b}},
	}}
	cases := []struct {
		name   string
		prefix string
		found  map[netip.Addr]string
		want   time.Duration
	}{
		{"an interface is missing", "veth", map[netip.Addr]string{a: "veth-a"}, interfaceRetryInterval},
		{"every interface is known", "veth", map[netip.Addr]string{a: "veth-a", b: "veth-b"}, DefaultResyncPeriod},
		{"the mode is off", "", map[netip.Addr]string{a: "veth-a"}, DefaultResyncPeriod},
	}
	for _, c := range cases {
		r := &NodeReconciler{PodInterfacePrefix: c.prefix}
		r.state.ifaces = c.found
		if got := r.interfaceRetry(model); got != c.want {
			t.Errorf("%s: interfaceRetry() = %v, want %v", c.name, got, c.want)
		}
	}
}
