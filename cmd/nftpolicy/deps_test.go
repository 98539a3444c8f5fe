package main

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// modulePrefix starts the import path of every package of this module.
const modulePrefix = "github.com/nftpolicy/nftpolicy/"

// notForTheAgent says why a package of this module must not be linked into the agent, or "" when it
// may: the lab and its network namespaces, the scenario runner, other commands, and test support.
func notForTheAgent(rel string) string {
	segments := strings.Split(rel, "/")
	if segments[0] == "cmd" && (len(segments) < 2 || segments[1] != "nftpolicy") {
		return "another command"
	}
	for _, s := range segments {
		switch {
		case strings.Contains(s, "lab"):
			return "lab tooling"
		case s == "scenario":
			return "the scenario runner"
		case s == "test" || s == "e2e" || s == "bench" || strings.HasSuffix(s, "test") || strings.HasSuffix(s, "testing") || s == "nftlisting" || s == "oracle":
			return "test support"
		}
	}
	return ""
}

// TestAgentLinksNoLabOrTestCode lists the packages the agent binary is built from and fails on any
// lab, scenario or test package of this module: the DaemonSet's image carries the agent only.
func TestAgentLinksNoLabOrTestCode(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("listing the agent's dependencies: %v", err)
	}
	var ours []string
	for _, pkg := range strings.Fields(string(out)) {
		if rel, ok := strings.CutPrefix(pkg, modulePrefix); ok {
			ours = append(ours, rel)
			if why := notForTheAgent(rel); why != "" {
				t.Errorf("the agent links %s (%s)", pkg, why)
			}
		}
	}
	// The check proves something only if the listing reached the agent's own packages.
	for _, want := range []string{"controllers", "nft", "selectors"} {
		if !slices.Contains(ours, want) {
			t.Fatalf("go list -deps . does not name %s%s (it named %v)", modulePrefix, want, ours)
		}
	}
}

func TestNotForTheAgent(t *testing.T) {
	for rel, wantRefused := range map[string]bool{
		"controllers":         false,
		"nft":                 false,
		"selectors":           false,
		"api/v1alpha1":        false,
		"cmd/nftpolicy/agent": false,
		"cmd/nftpolicy-lab":   true,
		"internal/lab":        true,
		"lab":                 true,
		"lab/netlab":          true,
		"internal/netlab":     true,
		"internal/scenario":   true,
		"lab/scenario":        true,
		"test/e2e":            true,
		"test/bench/harness":  true,
		"test/nftlisting":     true,
		"nft/nfttest":         true,
		"selectors/oracle":    true,
	} {
		if refused := notForTheAgent(rel) != ""; refused != wantRefused {
			t.Errorf("notForTheAgent(%q) refuses it: %t, want %t", rel, refused, wantRefused)
		}
	}
}
