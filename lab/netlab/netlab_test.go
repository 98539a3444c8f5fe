package netlab

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const testPort = 8080

// TestRoutedLab builds two nodes with two pods each and checks that every pod reaches every other pod
// over TCP and UDP, IPv4 and IPv6, on the same node and across the fabric.
func TestRoutedLab(t *testing.T) {
	lab := NewForTest(t)
	node1, err := lab.AddNode()
	if err != nil {
		t.Fatal(err)
	}
	node2, err := lab.AddNode()
	if err != nil {
		t.Fatal(err)
	}
	if err := lab.Connect(node1, node2); err != nil {
		t.Fatal(err)
	}
	var pods []*Pod
	for _, spec := range []struct {
		node *Node
		name string
	}{{node1, "a"}, {node1, "b"}, {node2, "c"}} {
		p, err := spec.node.AddPod(spec.name)
		if err != nil {
			t.Fatal(err)
		}
		pods = append(pods, p)
	}
	for _, p := range pods {
		srv, err := p.Serve(testPort)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Close)
	}
	for _, from := range pods {
		for _, to := range pods {
			if from == to {
				continue
			}
			for _, addr := range []netip.Addr{to.IPv4, to.IPv6} {
				dst := netip.AddrPortFrom(addr, testPort)
				if err := from.ConnectTCP(dst, 2*time.Second); err != nil {
					t.Errorf("TCP %s -> %s: %v", from.Name, dst, err)
				}
				if err := from.RequestUDP(dst, 2*time.Second); err != nil {
					t.Errorf("UDP %s -> %s: %v", from.Name, dst, err)
				}
			}
		}
	}
}

// TestCloseRemovesNamespaces checks that Close leaves nothing under /run/netns, and that Sweep removes
// leftovers by prefix.
func TestCloseRemovesNamespaces(t *testing.T) {
	if reason := Unavailable(); reason != "" {
		t.Skip(reason)
	}
	lab, err := New()
	if err != nil {
		t.Fatal(err)
	}
	node, err := lab.AddNode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := node.AddPod("a"); err != nil {
		t.Fatal(err)
	}
	if got := leftovers(t, lab.Prefix()); len(got) != 2 {
		t.Errorf("namespaces after setup = %v, want a node and a pod", got)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if got := leftovers(t, lab.Prefix()); len(got) != 0 {
		t.Errorf("namespaces left after Close: %v", got)
	}

	leaked, err := New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leaked.AddNode(); err != nil {
		t.Fatal(err)
	}
	if err := Sweep(leaked.Prefix()); err != nil {
		t.Fatal(err)
	}
	if got := leftovers(t, leaked.Prefix()); len(got) != 0 {
		t.Errorf("namespaces left after Sweep: %v", got)
	}
}

func leftovers(t *testing.T, prefix string) []string {
	t.Helper()
	entries, err := os.ReadDir(netnsDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// A namespace of ours stays removable after `ip netns add` runs elsewhere on the machine: that
// command bind-mounts /run/netns onto itself when it is not a mount point yet, which would bury our
// namespaces' mounts under the new one. The test runs itself again in a private mount namespace in
// which /run/netns is not a mount point, as on a machine where nothing has created a namespace yet.
func TestNamespaceSurvivesIPNetnsAdd(t *testing.T) {
	if reason := Unavailable(); reason != "" {
		t.Skip(reason)
	}
	if os.Getenv("NETLAB_FRESH_MOUNTS") == "" {
		cmd := exec.Command("unshare", "--mount", "--propagation", "private", os.Args[0], "-test.run", "^TestNamespaceSurvivesIPNetnsAdd$", "-test.v")
		cmd.Env = append(os.Environ(), "NETLAB_FRESH_MOUNTS=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestNamespaceSurvivesIPNetnsAdd") {
			t.Fatalf("in a private mount namespace: %v\n%s", err, out)
		}
		return
	}
	// Here: a private mount namespace. Take away the mount point, as on a fresh machine.
	for unix.Unmount(netnsDir, unix.MNT_DETACH) == nil {
	}
	ours, err := newNetns(fmt.Sprintf("nftplab-test-ours-%d", os.Getpid()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ours.Delete() })
	theirs := fmt.Sprintf("nftplab-test-theirs-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", theirs).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("ip", "netns", "delete", theirs).Run() })
	if err := ours.Delete(); err != nil {
		t.Fatalf("deleting our namespace after ip netns add: %v", err)
	}
	if _, err := os.Stat(ours.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s still exists after Delete (stat: %v)", ours.Path, err)
	}
}
