package baselines

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// These tests program the baselines into a fresh network namespace and read the kernel back; they
// skip without root.

func inNetns(t *testing.T, node *netlab.Node, command ...string) string {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", node.Name}, command...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v: %s", command, err, out)
	}
	return string(out)
}

func TestNaiveKernel(t *testing.T) {
	lab := netlab.NewForTest(t)
	node, err := lab.AddNode()
	if err != nil {
		t.Fatal(err)
	}
	n, err := NaiveLayout(testModel())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second run replaces the table
		if err := ProgramNaive(node.Path, n); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("nft is not installed: cannot list the table")
	}
	listing := inNetns(t, node, "nft", "list", "table", "inet", NaiveTable)
	verdicts := strings.Count(listing, " accept\n") + strings.Count(listing, " drop\n") + strings.Count(listing, "jump egress\n")
	if verdicts != n.Rules() {
		t.Errorf("the kernel lists %d rules, want %d:\n%s", verdicts, n.Rules(), listing)
	}
	for _, want := range []string{"ip daddr 10.0.0.1 ip saddr 172.16.0.0-172.16.0.63 accept", "ip saddr 10.0.0.1 drop", "ct state established,related accept"} {
		if !strings.Contains(listing, want) {
			t.Errorf("listing lacks %q:\n%s", want, listing)
		}
	}
}

func TestIPTablesKernel(t *testing.T) {
	for _, tool := range []string{"ipset", "iptables-restore", "iptables-save"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed", tool)
		}
	}
	lab := netlab.NewForTest(t)
	node, err := lab.AddNode()
	if err != nil {
		t.Fatal(err)
	}
	c, err := IPTablesLayout(testModel())
	if err != nil {
		t.Fatal(err)
	}
	syncer := &IPTablesSyncer{Netns: node.Name}
	for range 2 { // the second sync swaps sets that exist
		if _, err := syncer.Sync(c); err != nil {
			t.Fatal(err)
		}
	}
	saved := inNetns(t, node, "iptables-save", "-t", "filter")
	if got := strings.Count(saved, "\n-A "); got != c.Rules {
		t.Errorf("iptables-save lists %d rules, want %d:\n%s", got, c.Rules, saved)
	}
	names := strings.Fields(inNetns(t, node, "ipset", "list", "-n"))
	if len(names) != len(c.Sets) {
		t.Errorf("the kernel has sets %v, want %d sets (temporary ones destroyed)", names, len(c.Sets))
	}
	members := strings.Count(inNetns(t, node, "ipset", "list"), "\n") // headers and members
	if members < c.Elements() {
		t.Errorf("ipset list shows fewer lines (%d) than entries (%d)", members, c.Elements())
	}
	// A model without the egress rule: its service set goes away after the next sync.
	m := testModel()
	m.LocalPods[0].Egress = nil
	smaller, err := IPTablesLayout(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := syncer.Sync(smaller); err != nil {
		t.Fatal(err)
	}
	if names := strings.Fields(inNetns(t, node, "ipset", "list", "-n")); len(names) != len(smaller.Sets) {
		t.Errorf("after shrinking, the kernel has sets %v, want %d", names, len(smaller.Sets))
	}
}
