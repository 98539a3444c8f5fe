package nft

import (
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/nftpolicy/nftpolicy/selectors"
)

var update = flag.Bool("update", false, "rewrite golden files")

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden (run with -update to create it): %v", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file; got:\n%s", name, got)
	}
}

func TestCompileGuestbookGolden(t *testing.T) {
	checkGolden(t, "guestbook.nft", Render(compileGuestbook()))
}

func TestCompileIsDeterministic(t *testing.T) {
	a, b := Render(compileGuestbook()), Render(compileGuestbook())
	if a != b {
		t.Fatal("two compilations of the same model differ")
	}
}

func TestCompileEmptyModelHasOnlyTheSkeleton(t *testing.T) {
	rs := Compile(CompileInput{Table: "nftpolicy", Model: emptyModel()})
	for _, c := range rs.Chains {
		switch c.Name {
		case chainSourceCheck, chainEgressPostrouting, chainEgressInput, chainIngressPostrouting, chainSpoofing, chainEgress, chainIngress:
		default:
			t.Errorf("unexpected chain %s in an empty model", c.Name)
		}
	}
	for _, m := range rs.Maps {
		if len(m.Elements) != 0 {
			t.Errorf("map %s has elements in an empty model", m.Name)
		}
	}
	checkGolden(t, "empty.nft", Render(rs))
}

func TestCompileLongNamesAreTruncatedWithAHash(t *testing.T) {
	long := "a-very-long-pod-name-that-goes-on-and-on-and-on-well-past-any-readable-limit"
	m := emptyModel()
	m.LocalPods = append(m.LocalPods,
		makeLocalPod("ns", long+"-1", withIPs("198.18.0.50"), isolatedIngress("p")),
		makeLocalPod("ns", long+"-2", withIPs("198.18.0.51"), isolatedIngress("p")))
	rs := Compile(CompileInput{Table: "t", Model: m})
	seen := map[string]bool{}
	for _, c := range rs.Chains {
		if len(c.Name) > maxNameLen {
			t.Errorf("chain name %q is longer than %d", c.Name, maxNameLen)
		}
		if seen[c.Name] {
			t.Errorf("two chains named %q", c.Name)
		}
		seen[c.Name] = true
	}
	if len(rs.Chains) != len(baseChains)+3+2 {
		t.Errorf("got %d chains, want two pod chains besides the skeleton", len(rs.Chains))
	}
}

func TestCompileRuleWithNothingToMatchEmitsNoAccept(t *testing.T) {
	// An ingress rule whose only port was a named port the pod does not define: selectors resolves
	// it to no ports at all, and the pod must stay closed.
	m := emptyModel()
	m.LocalPods = []selectors.LocalPod{makeLocalPod("ns", "a", withIPs("198.18.0.60"),
		isolatedIngress("p", makeRule(0, onPorts())))}
	rs := Compile(CompileInput{Table: "t", Model: m})
	for _, c := range rs.Chains {
		if c.Name != "in_ns_a" {
			continue
		}
		if len(c.Rules) != 1 || c.Rules[0].Verdict.Kind != Drop {
			t.Fatalf("chain in_ns_a = %v, want only the final drop", c.Rules)
		}
		return
	}
	t.Fatal("chain in_ns_a missing")
}
