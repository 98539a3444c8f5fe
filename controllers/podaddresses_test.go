package controllers

import (
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// IP plan: 198.18.1.0/24 and fd18::1:0/112 are node-1's pods, 198.18.2.0/24 node-2's; 198.19.0.2
// is node-2's own address.
func TestPodsByAddressNamesPodsOfEveryNode(t *testing.T) {
	store := toolscache.NewIndexer(toolscache.MetaNamespaceKeyFunc, toolscache.Indexers{podAddressIndex: podAddresses})
	add := func(p selectors.Pod) {
		t.Helper()
		if err := store.Add(&CachedPod{Pod: p}); err != nil {
			t.Fatal(err)
		}
	}
	addrs := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	add(selectors.Pod{Namespace: "x", Name: "client", Node: "node-1", Phase: corev1.PodRunning, IPs: addrs("198.18.1.2", "fd18::1:2")})
	add(selectors.Pod{Namespace: "y", Name: "server", Node: "node-2", Phase: corev1.PodRunning, IPs: addrs("198.18.2.2")})
	add(selectors.Pod{Namespace: "kube-system", Name: "proxy", Node: "node-2", Phase: corev1.PodRunning, HostNetwork: true, IPs: addrs("198.19.0.2")})
	add(selectors.Pod{Namespace: "y", Name: "done", Node: "node-2", Phase: corev1.PodSucceeded, IPs: addrs("198.18.2.3")})
	add(selectors.Pod{Namespace: "y", Name: "stale-a", Node: "node-2", Phase: corev1.PodRunning, IPs: addrs("198.18.2.4")})
	add(selectors.Pod{Namespace: "y", Name: "stale-b", Node: "node-2", Phase: corev1.PodRunning, IPs: addrs("198.18.2.4")})
	pods := &PodsByAddress{pods: store}

	cases := []struct {
		addr, want string // want "" for no pod
	}{
		{"198.18.1.2", "x/client"},
		{"fd18::1:2", "x/client"},
		{"198.18.2.2", "y/server"},
		{"198.19.0.2", ""}, // a hostNetwork pod holds its node's address
		{"198.18.2.3", ""}, // a pod that ended gave its address back
		{"198.18.2.4", ""}, // two pods claim it
		{"198.18.9.9", ""},
	}
	for _, c := range cases {
		p, ok := pods.Pod(netip.MustParseAddr(c.addr))
		got := ""
		if ok {
			got = p.Namespace + "/" + p.Name
		}
		if got != c.want {
			t.Errorf("%s: pod %q, want %q", c.addr, got, c.want)
		}
	}

	if err := store.Delete(&CachedPod{Pod: selectors.Pod{Namespace: "y", Name: "server"}}); err != nil {
		t.Fatal(err)
	}
	if p, ok := pods.Pod(netip.MustParseAddr("198.18.2.2")); ok {
		t.Errorf("a deleted pod is still found: %s/%s", p.Namespace, p.Name)
	}
}
