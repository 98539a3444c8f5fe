package kernel

import (
	"net/netip"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/sets"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/nft/nfttest"
	"github.com/nftpolicy/nftpolicy/selectors"
)

// Fail-closed plan (netlab addresses; the node sides of pod veths are named lab<p>):
//
//	node1: known    known to the agent, selected by no policy
//	       isolated known, isolated for ingress with no rules (nothing may reach it)
//	       unknown  network up, not in the model yet (the kubelet has not reported its IP)
//	node2: remote   node2 has no table
//
// Every pod serves failClosedPort. The compiler's ruleset is applied through the Applier, with the
// host interfaces found by NetlinkInterfaces, as the agent does.
const failClosedPort = 8080

// TestNetlinkFailClosed sends real traffic through a node programmed in the fail-closed mode: a pod
// whose interface the table does not know has no network until it is programmed, while known pods
// keep exactly their policies; without the mode the unknown pod is open.
func TestNetlinkFailClosed(t *testing.T) {
	lab := netlab.NewForTest(t)
	node1, node2 := mustNode(t, lab), mustNode(t, lab)
	if err := lab.Connect(node1, node2); err != nil {
		t.Fatal(err)
	}
	known, isolated, unknown := mustPod(t, node1, "known"), mustPod(t, node1, "isolated"), mustPod(t, node1, "unknown")
	remote := mustPod(t, node2, "remote")
	for _, pod := range []*netlab.Pod{known, isolated, unknown, remote} {
		srv, err := pod.Serve(failClosedPort)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
	}
	backend, err := NewNetlinkBackend(node1.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	resolver, err := NewNetlinkInterfaces(node1.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resolver.Close()

	localPod := func(name string, p *netlab.Pod, tweaks ...nfttest.PodTweak) selectors.LocalPod {
		return nfttest.MakeLocalPod("ns", name, append([]nfttest.PodTweak{nfttest.WithIPs(p.IPv4.String(), p.IPv6.String())}, tweaks...)...)
	}
	model := &selectors.Model{Node: "node1", LocalPods: []selectors.LocalPod{
		localPod("isolated", isolated, nfttest.IsolatedIngress("deny-all")),
		localPod("known", known),
	}}
	var compiler nft.Compiler
	applier := nft.NewApplier(backend)
	apply := func(t *testing.T, m *selectors.Model, changes selectors.Changes, prefix string) {
		t.Helper()
		var addrs []netip.Addr
		for _, p := range m.LocalPods {
			addrs = append(addrs, p.IPs...)
		}
		ifaces, err := resolver.Interfaces(addrs)
		if err != nil {
			t.Fatal(err)
		}
		rs, changed := compiler.Compile(nft.CompileInput{Table: kernelTable, Model: m, Changes: changes, Interfaces: ifaces, PodInterfacePrefix: prefix})
		if _, err := applier.Apply(rs, changed); err != nil {
			t.Fatal(err)
		}
		assertListing(t, node1, rs)
	}
	type flow struct {
		name    string
		from    *netlab.Pod
		to      netip.Addr
		reaches bool
	}
	check := func(t *testing.T, flows []flow) {
		t.Helper()
		for _, f := range flows {
			timeout := 3 * time.Second
			if !f.reaches {
				timeout = 300 * time.Millisecond
			}
			err := f.from.ConnectTCP(netip.AddrPortFrom(f.to, failClosedPort), timeout)
			switch {
			case f.reaches && err != nil:
				t.Errorf("%s: should connect: %v", f.name, err)
			case !f.reaches && err == nil:
				t.Errorf("%s: should be dropped", f.name)
			}
		}
	}
	// What the mode must not change.
	steady := []flow{
		{"remote -> known (no policy)", remote, known.IPv4, true},
		{"known -> remote", known, remote.IPv4, true},
		{"remote -> known over IPv6", remote, known.IPv6, true},
		{"known -> isolated on the same node (isolated for ingress)", known, isolated.IPv4, false},
		{"isolated -> remote (not isolated for egress)", isolated, remote.IPv4, true},
	}

	t.Run("default mode: the unknown pod is open", func(t *testing.T) {
		apply(t, model, selectors.FullChanges(), "")
		check(t, append(steady,
			flow{"remote -> unknown", remote, unknown.IPv4, true},
			flow{"unknown -> remote", unknown, remote.IPv4, true}))
	})
	t.Run("fail-closed: the unknown pod has no network", func(t *testing.T) {
		apply(t, model, selectors.FullChanges(), netlab.HostIfnamePrefix)
		check(t, append(steady,
			flow{"remote -> unknown", remote, unknown.IPv4, false},
			flow{"remote -> unknown over IPv6", remote, unknown.IPv6, false},
			flow{"unknown -> remote", unknown, remote.IPv4, false},
			flow{"unknown -> remote over IPv6", unknown, remote.IPv6, false},
			flow{"known -> unknown on the same node", known, unknown.IPv4, false},
			flow{"unknown -> known on the same node", unknown, known.IPv4, false}))
	})
	t.Run("fail-closed: once programmed, the pod has its policies' network", func(t *testing.T) {
		programmed := &selectors.Model{Node: "node1", LocalPods: append(model.LocalPods, localPod("unknown", unknown))}
		apply(t, programmed, selectors.Changes{LocalPods: sets.New("ns/unknown")}, netlab.HostIfnamePrefix)
		check(t, append(steady,
			flow{"remote -> unknown", remote, unknown.IPv4, true},
			flow{"unknown -> remote", unknown, remote.IPv4, true},
			flow{"unknown -> known on the same node", unknown, known.IPv4, true}))
	})
}
