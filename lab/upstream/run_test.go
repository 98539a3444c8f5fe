package upstream

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

func spec(text string, state types.SpecState, message string) types.SpecReport {
	return types.SpecReport{
		ContainerHierarchyTexts: []string{"[sig-network] Netpol", "NetworkPolicy between server and client"},
		LeafNodeText:            text, LeafNodeType: types.NodeTypeIt, State: state,
		Failure: types.Failure{Message: message},
	}
}

// TestResultSortsSpecs checks that focused specs are sorted by outcome, that a runtime skip keeps
// its message and a --ginkgo.skip spec gets the run's reason, and that specs outside the focus and
// passing setup nodes are left out.
func TestResultSortsSpecs(t *testing.T) {
	reports := []types.Report{{SpecReports: types.SpecReports{
		spec("should support a 'default-deny-ingress' policy [Feature:NetworkPolicy]", types.SpecStatePassed, ""),
		spec("should enforce policy based on Ports [Feature:NetworkPolicy]", types.SpecStateFailed, "timed out\nmore"),
		spec("should support denying of egress traffic on the client side (even if the server explicitly allows this traffic) [Feature:NetworkPolicy]", types.SpecStateSkipped, "needs two nodes"),
		spec("should not allow access by TCP when a policy specifies only SCTP [Feature:NetworkPolicy]", types.SpecStateSkipped, ""),
		{ContainerHierarchyTexts: []string{"[sig-storage] CSI"}, LeafNodeText: "mounts", LeafNodeType: types.NodeTypeIt, State: types.SpecStateSkipped},
		{LeafNodeType: types.NodeTypeSynchronizedBeforeSuite, State: types.SpecStatePassed},
	}}}
	r := &Result{Name: "ipv4"}
	r.add(reports, Options{Skip: "SCTP", SkipReason: "the kernel has no SCTP sockets"})

	if len(r.Passed) != 1 || !strings.Contains(r.Passed[0], "default-deny-ingress") {
		t.Errorf("passed: %q", r.Passed)
	}
	if len(r.Failed) != 1 || r.Failures[r.Failed[0]] != "timed out\nmore" {
		t.Errorf("failed: %q %q", r.Failed, r.Failures)
	}
	want := map[string]string{"denying of egress": "needs two nodes", "only SCTP": "the kernel has no SCTP sockets"}
	if len(r.Skipped) != len(want) {
		t.Fatalf("skipped: %+v", r.Skipped)
	}
	for _, s := range r.Skipped {
		found := false
		for part, reason := range want {
			if strings.Contains(s.Spec, part) && s.Reason == reason {
				found = true
			}
		}
		if !found {
			t.Errorf("unexpected skip %+v", s)
		}
	}
	if r.OK() {
		t.Error("a run with a failed spec is OK")
	}

	var page bytes.Buffer
	r.Release, r.Command = "v1.37.2", []string{"e2e.test", "--ginkgo.focus=" + Focus}
	WriteMarkdown(&page, time.Date(2026, 12, 7, 11, 0, 0, 0, time.UTC), []*Result{r})
	for _, want := range []string{
		"at v1.37.2", "| ipv4 | 1 | 1 | 2 |", "'--ginkgo.focus=" + Focus + "'",
		"should enforce policy based on Ports [Feature:NetworkPolicy]: timed out\n",
		"only SCTP [Feature:NetworkPolicy]: the kernel has no SCTP sockets",
	} {
		if !strings.Contains(page.String(), want) {
			t.Errorf("the page lacks %q:\n%s", want, page.String())
		}
	}
}
