package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nftpolicy/nftpolicy/lab/scenario"
)

// The scenario files state by hand what every pair must observe. These tests check each file
// against oracle.Allows, an independent reading of the NetworkPolicy API, before any lab runs
// it: a wrong deny list shows up here in milliseconds instead of as a lab failure in CI.

// oracleOptions runs both families and gives up on a mismatch almost at once: the oracle cluster
// never needs time to converge.
func oracleOptions() scenario.Options {
	return scenario.Options{
		Families:     []scenario.Family{scenario.IPv4, scenario.IPv6},
		PollInterval: time.Millisecond,
		Deadline:     20 * time.Millisecond,
	}
}

// TestOracleScenarios runs every file of test/e2e/scenarios against the oracle cluster, under each
// IP plan and for both families.
func TestOracleScenarios(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("scenarios", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no scenario files in test/e2e/scenarios")
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			oracleCheckFile(t, path)
		})
	}
}

// TestOracleClusterNetworkPolicyScenarios checks the ClusterNetworkPolicy files of
// test/e2e/scenarios-cnp against the oracle, before any dataplane enforces them. They live apart
// from test/e2e/scenarios, which the lab runs, until the agent enforces ClusterNetworkPolicies.
func TestOracleClusterNetworkPolicyScenarios(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join("scenarios-cnp", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) == 0 {
		t.Fatal("no scenario files in test/e2e/scenarios-cnp")
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) {
			t.Parallel()
			oracleCheckFile(t, path)
		})
	}
}

// TestOracleSharedExamples checks the two example files beside the format description, which the
// runner must accept unchanged.
func TestOracleSharedExamples(t *testing.T) {
	dir := filepath.Join(oracleRepoRoot(t), "..", "shared", "scenarios")
	for _, name := range []string{"default-deny-ingress.yaml", "guestbook-redis.yaml"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if _, err := os.Stat(path); err != nil {
				t.Skipf("shared example not available: %v", err)
			}
			oracleCheckFile(t, path)
		})
	}
}

// oracleCheckFile loads one file and requires it to pass every IP plan on both families.
func oracleCheckFile(t *testing.T, path string) {
	t.Helper()
	s, err := scenario.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, plan := range oracleIPPlans {
		result := scenario.Run(context.Background(), newOracleCluster(plan), s, oracleOptions())
		if result.Skipped != "" {
			t.Errorf("IP plan %s: skipped: %s", plan.name, result.Skipped)
			continue
		}
		if !result.Passed() {
			var report bytes.Buffer
			scenario.WriteResult(&report, &result)
			t.Errorf("IP plan %s: the file disagrees with oracle.Allows:\n%s", plan.name, report.String())
		}
	}
}

// oracleRepoRoot is the directory holding go.mod, found upward from the test's directory.
func oracleRepoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}
