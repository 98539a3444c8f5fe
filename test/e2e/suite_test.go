package e2e

// The conformance suite runs the scenario files and the agent lifecycle specs against real labs: a
// kube-apiserver and etcd from the setup cache, node and pod network namespaces, and one nftpolicy
// agent process per node (package lab).
//
// Every spec runs once per lab, and there are two labs, one after the other, each brought up by the
// BeforeAll of its Ordered container and removed by its DeferCleanup, also on failure and Ctrl-C:
//
//	Label("ipv4"): a two-node IPv4 lab; each scenario file runs once, for IPv4.
//	Label("dual"): a two-node dual-stack lab; each file runs twice from a clean state, for IPv4 and
//	               for IPv6 (placeholders resolve to that family, probes go to that family's pod IPs).
//
// `go test ./test/e2e/` runs both. CI runs one family per job with a label filter:
//
//	go test ./test/e2e/ -ginkgo.label-filter=ipv4
//	go test ./test/e2e/ -ginkgo.label-filter=dual
//
// Only the labs of the containers the filter keeps are started. The whole suite is skipped, saying
// why, when not run as root or when kube-apiserver and etcd are not in the setup cache; the oracle
// tests of this package (plain testing) run everywhere.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/types"

	policyv1alpha1 "github.com/nftpolicy/nftpolicy/api/v1alpha1"
	"github.com/nftpolicy/nftpolicy/lab"
	"github.com/nftpolicy/nftpolicy/lab/netlab"
)

// labStartTimeout bounds bringing a lab up; it takes seconds once the setup cache is warm.
const labStartTimeout = 3 * time.Minute

// suite is what BeforeSuite prepared for every lab.
var suite struct {
	// agentBinary is the nftpolicy binary the labs run as their agents. The test binary cannot
	// stand in: the agent's flag parsing lives in package main.
	agentBinary string
	assets      string
}

func TestConformance(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "NetworkPolicy conformance")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	if reason := netlab.Unavailable(); reason != "" {
		Skip("no lab can run here: " + reason)
	}
	assets, err := lab.CachedAssets()
	if err != nil {
		Skip("no lab can run here: " + err.Error())
	}
	suite.assets = assets

	dir, err := os.MkdirTemp("", "nftpolicy-e2e-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, dir)
	suite.agentBinary = filepath.Join(dir, "nftpolicy")
	build := exec.CommandContext(ctx, "go", "build", "-o", suite.agentBinary, "./cmd/nftpolicy")
	build.Dir = repoRoot()
	out, err := build.CombinedOutput()
	Expect(err).NotTo(HaveOccurred(), "building the agent:\n%s", out)
}, NodeTimeout(5*time.Minute))

// repoRoot is the checkout: go test runs in test/e2e.
func repoRoot() string {
	wd, err := os.Getwd()
	Expect(err).NotTo(HaveOccurred())
	return filepath.Join(wd, "..", "..")
}

// labEnv is the lab of one family container, set by its BeforeAll.
type labEnv struct {
	family string // lab.FamilyIPv4 or lab.FamilyDual
	lab    *lab.Lab
}

// The family containers. Specs inside run in order and keep running after a failure: the lab is
// shared, and every spec starts from a clean cluster.
var _ = Describe("ipv4 lab", Label("ipv4"), Ordered, ContinueOnFailure, func() {
	describeLabSpecs(&labEnv{family: lab.FamilyIPv4})
})

var _ = Describe("dual-stack lab", Label("dual"), Ordered, ContinueOnFailure, func() {
	describeLabSpecs(&labEnv{family: lab.FamilyDual})
})

// describeLabSpecs brings env's lab up before its first spec and declares every spec that runs on it.
func describeLabSpecs(env *labEnv) {
	BeforeAll(func(ctx SpecContext) {
		begin := time.Now()
		l, err := lab.Start(ctx, lab.Options{
			Nodes:          2,
			IPFamily:       env.family,
			AssetsDir:      suite.assets,
			AgentPath:      suite.agentBinary,
			AgentVerbosity: 2,
			// Every incremental sync is checked against a full resolve; see describeIncrementalCheck.
			AgentArgs: []string{"--verify-incremental"},
			RepoRoot:  repoRoot(),
			Log:       GinkgoWriter,
		})
		Expect(err).NotTo(HaveOccurred(), "starting the %s lab", env.family)
		env.lab = l
		DeferCleanup(func() {
			GinkgoWriter.Printf("Removing the %s lab %s\n", env.family, l.Name())
			Expect(l.Close()).To(Succeed())
		})
		AddReportEntry(env.family+" lab up", time.Since(begin).Round(time.Millisecond).String())
	}, NodeTimeout(labStartTimeout))

	describeScenarioSpecs(env)
	describeNewPodSpecs(env)
	describeIPReuseSpecs(env)
	describeAgentRestartSpecs(env)
	describeServiceSpecs(env)
	describeIncrementalCheck(env)
}

// nftListing is the node's table as the kernel lists it, or why it could not be listed.
func nftListing(ctx context.Context, l *lab.Lab, node string) string {
	path, err := l.NodeNetns(node)
	if err != nil {
		return err.Error()
	}
	out, err := exec.CommandContext(ctx, "ip", "netns", "exec", filepath.Base(path), "nft", "list", "table", "inet", "nftpolicy").CombinedOutput()
	if err != nil {
		return "nft list table inet nftpolicy: " + err.Error() + "\n" + string(out)
	}
	return string(out)
}

// kernelListings lists every node's table, headed by the command that shows it.
func kernelListings(ctx context.Context, l *lab.Lab) string {
	var b strings.Builder
	for _, node := range l.NodeNames() {
		path, _ := l.NodeNetns(node)
		b.WriteString("# " + node + ": ip netns exec " + filepath.Base(path) + " nft list table inet nftpolicy\n")
		b.WriteString(enforcementStatus(ctx, l, node) + "\n")
		b.WriteString(nftListing(ctx, l, node))
	}
	return b.String()
}

// enforcementStatus summarizes the node's NodeEnforcement status in one line.
func enforcementStatus(ctx context.Context, l *lab.Lab, node string) string {
	var ne policyv1alpha1.NodeEnforcement
	if err := l.Client().Get(ctx, types.NamespacedName{Name: node}, &ne); err != nil {
		return "# NodeEnforcement: " + err.Error()
	}
	st := ne.Status
	line := fmt.Sprintf("# NodeEnforcement: localPods=%d isolatedPods=%d policiesInEffect=%d setElements=%d problems=%d",
		st.LocalPods, st.IsolatedPods, st.PoliciesInEffect, st.SetElements, st.ProblemCount)
	for _, c := range st.Conditions {
		line += fmt.Sprintf(" %s=%s(%s)", c.Type, c.Status, c.Reason)
	}
	if st.LastSyncTime != nil {
		line += " lastSync=" + st.LastSyncTime.UTC().Format(time.RFC3339)
	}
	for _, p := range st.Problems {
		line += fmt.Sprintf("\n#   problem %s/%s %s: %s", p.PolicyNamespace, p.PolicyName, p.Field, p.Message)
	}
	return line
}
