package controllers_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"time"

	. "github.com/onsi/gomega"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
	"github.com/nftpolicy/nftpolicy/lab/netlab"
	"github.com/nftpolicy/nftpolicy/nft"
	"github.com/nftpolicy/nftpolicy/test/nftlisting"
)

// driftResultsEnv names a file the drift spec appends its figures to, one JSON object per foreign
// change (hack/bench/drift.sh sets it).
const driftResultsEnv = "NFTPOLICY_DRIFT_RESULTS"

// foreignChange is something another writer does to our table, with the nft command.
type foreignChange struct {
	name string
	args func(node *netlab.Node, rs *nft.Ruleset) []string
}

// foreignChanges are the changes the issue names: flush the table, delete one rule, delete one set
// element, delete the whole table, add a rule of its own to one of our chains.
var foreignChanges = []foreignChange{
	{"flush table", func(*netlab.Node, *nft.Ruleset) []string { return []string{"flush", "table", "inet", table} }},
	{"delete rule", func(node *netlab.Node, _ *nft.Ruleset) []string {
		chain, handle := lastRuleHandle(node)
		return []string{"delete", "rule", "inet", table, chain, "handle", handle}
	}},
	{"delete element", func(_ *netlab.Node, rs *nft.Ruleset) []string {
		set, elem := someAddressElement(rs)
		return []string{"delete", "element", "inet", table, set, "{ " + elem + " }"}
	}},
	{"delete table", func(*netlab.Node, *nft.Ruleset) []string { return []string{"delete", "table", "inet", table} }},
	{"add rule", func(_ *netlab.Node, rs *nft.Ruleset) []string {
		return []string{"insert", "rule", "inet", table, rs.Chains[0].Name, "accept"}
	}},
}

// runNft runs nft in node's namespace, as another writer of the table.
func runNft(node *netlab.Node, args ...string) {
	out, err := exec.Command("ip", append([]string{"netns", "exec", node.Name, "nft"}, args...)...).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "nft %s: %s", strings.Join(args, " "), out)
}

var handleComment = regexp.MustCompile(`# handle (\d+)$`)

// lastRuleHandle returns the chain and handle of the last rule of the table's listing.
func lastRuleHandle(node *netlab.Node) (chain, handle string) {
	out, err := exec.Command("ip", "netns", "exec", node.Name, "nft", "-a", "list", "table", "inet", table).CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), string(out))
	current := ""
	for _, line := range strings.Split(string(out), "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "chain ") {
			current = strings.Fields(line)[1]
			continue
		}
		if m := handleComment.FindStringSubmatch(line); m != nil && current != "" && !strings.HasPrefix(line, "type ") {
			chain, handle = current, m[1]
		}
	}
	Expect(handle).NotTo(BeEmpty(), "a rule with a handle in:\n%s", out)
	return chain, handle
}

// someAddressElement returns a named address set of rs holding an element, and the element.
func someAddressElement(rs *nft.Ruleset) (string, string) {
	set, elem, ok := nftlisting.AddressElement(rs)
	Expect(ok).To(BeTrue(), "an address set with elements")
	return set, elem
}

// driftFigure is what the drift spec measures of one foreign change.
type driftFigure struct {
	Change     string  `json:"change"`
	Cause      string  `json:"cause"`
	RepairMs   float64 `json:"repair_ms"`   // from the foreign command's return to our repair seen in the kernel
	ReportedMs float64 `json:"reported_ms"` // the agent's own RepairedAfter: from news of the change to the commit
	Probes     int64   `json:"probes"`      // probes of denied pairs while the change was in place and repaired
	Leaks      int     `json:"leaks"`       // of them, connections that got through
}

func recordDriftFigure(f driftFigure) {
	path := os.Getenv(driftResultsEnv)
	if path == "" {
		return
	}
	data, err := json.Marshal(f)
	Expect(err).NotTo(HaveOccurred())
	file, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	Expect(err).NotTo(HaveOccurred())
	defer file.Close()
	_, err = fmt.Fprintln(file, string(data))
	Expect(err).NotTo(HaveOccurred())
}

// awaitRepair waits until the agent's table is back as it was, and returns when it saw that.
func awaitRepair(a *kernelAgent, node *netlab.Node, before []string, txsBefore int, within time.Duration) time.Time {
	var repaired time.Time
	Eventually(func(g Gomega) {
		txs := a.kernel.transactions()
		g.Expect(len(txs)).To(BeNumerically(">", txsBefore), "a repair transaction")
		g.Expect(fullReplace(txs[len(txs)-1])).To(BeTrue(), "the repair replaces the table whole:\n%s", txs[len(txs)-1])
		repaired = time.Now()
		listing, err := kernelListing(node)
		g.Expect(err).NotTo(HaveOccurred(), listing)
		g.Expect(tableContent(listing)).To(Equal(before), "the kernel holds the table as before the change")
	}).WithTimeout(within).WithPolling(2 * time.Millisecond).Should(Succeed())
	return repaired
}

// lastDriftRepair returns the node's NodeEnforcement's record of its last drift repair.
func lastDriftRepair(nodeName string) (int32, *policyv1alpha1.DriftRepair) {
	ne := enforcementOf(nodeName)
	if ne == nil {
		return 0, nil
	}
	return ne.Status.DriftRepairs, ne.Status.LastDriftRepair
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
