package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// networkPolicyAPIModule ships the ClusterNetworkPolicy CRD (policy.networking.k8s.io) beside its Go
// types; the version is the one go.mod requires, so the CRD always matches the types we read.
const networkPolicyAPIModule = "sigs.k8s.io/network-policy-api"

// clusterNetworkPolicyCRD is the module's experimental channel CRD: it keeps the experimental fields
// (nodes and domainNames peers, destinationNamedPort) that the standard channel's schema prunes. A
// pruned peer would read as a peer with no field, which fails closed instead of doing what was written.
var clusterNetworkPolicyCRD = filepath.Join("config", "crd", "experimental", "policy.networking.k8s.io_clusternetworkpolicies.yaml")

// CRDPaths lists the CRD manifests a control plane installs: the agent's own CRDs from
// config/crd/bases of the checkout at repoRoot, and the ClusterNetworkPolicy CRD from the
// network-policy-api module of that checkout's go.mod, found with `go list -m` (the module cache).
func CRDPaths(ctx context.Context, repoRoot string) ([]string, error) {
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", networkPolicyAPIModule)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("finding the %s module (run `go mod download` in %s): %w", networkPolicyAPIModule, repoRoot, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return nil, fmt.Errorf("finding the %s module: not in the module cache (run `go mod download` in %s)", networkPolicyAPIModule, repoRoot)
	}
	crd := filepath.Join(dir, clusterNetworkPolicyCRD)
	if _, err := os.Stat(crd); err != nil {
		return nil, fmt.Errorf("finding the ClusterNetworkPolicy CRD: %w", err)
	}
	return []string{filepath.Join(repoRoot, "config", "crd", "bases"), crd}, nil
}
