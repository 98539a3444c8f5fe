package controllers

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// IP plan: 198.18.1.0/24 and fd18::1:0/112 are node-1's pods, 198.18.2.0/24 node-2's; 198.19.0.2
// is node-2's own address.
func TestPodsByAddressFollowsThePodsOfEveryNode(t *testing.T) {
	addrs := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	pod := func(ns, name string, phase corev1.PodPhase, ips ...string) *CachedPod {
		return &CachedPod{Pod: selectors.Pod{Namespace: ns, Name: name, Phase: phase, IPs: addrs(ips...)}}
	}
	client := pod("x", "client", corev1.PodRunning, "198.18.1.2", "fd18::1:2")
	server := pod("y", "server", corev1.PodRunning, "198.18.2.2")
	proxy := pod("kube-system", "proxy", corev1.PodRunning, "198.19.0.2")
	proxy.HostNetwork = true
	done := pod("y", "done", corev1.PodSucceeded, "198.18.2.3")
	moving := pod("y", "moving", corev1.PodRunning, "198.18.2.5")

	p := &PodsByAddress{addrs: map[netip.Addr]*CachedPod{}}
	for _, added := range []*CachedPod{client, server, proxy, done, moving} {
		p.update(nil, added)
	}
	moved := pod("y", "moving", corev1.PodRunning, "198.18.2.6")
	p.update(moving, moved)
	// A new pod claims server's address while server's status is stale; then server goes away.
	successor := pod("y", "successor", corev1.PodRunning, "198.18.2.2")
	p.update(nil, successor)
	p.update(server, nil)

	cases := []struct {
		addr, want string // want "" for no pod
	}{
		{"198.18.1.2", "x/client"},
		{"fd18::1:2", "x/client"},
		{"198.18.2.2", "y/successor"}, // server's deletion does not take its successor's address
		{"198.19.0.2", ""},            // a hostNetwork pod holds its node's address
		{"198.18.2.3", ""},            // a pod that ended gave its address back
		{"198.18.2.5", ""},            // moving's old address
		{"198.18.2.6", "y/moving"},
		{"198.18.9.9", ""},
	}
	for _, c := range cases {
		got := ""
		if pod, ok := p.Pod(netip.MustParseAddr(c.addr)); ok {
			got = pod.Namespace + "/" + pod.Name
		}
		if got != c.want {
			t.Errorf("%s: pod %q, want %q", c.addr, got, c.want)
		}
	}
	if len(p.addrs) != 4 {
		t.Errorf("%d addresses held, want 4: %v", len(p.addrs), p.addrs)
	}
}
