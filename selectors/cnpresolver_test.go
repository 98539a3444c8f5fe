package selectors_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/nftpolicy/nftpolicy/selectors"
)

// TestClusterPoliciesMatchFullRecompute: on random clusters with random ClusterNetworkPolicies,
// the Resolver's Model equals the Model without them completed by a recompute from scratch that
// uses none of the Resolver's indexes, on every node.
func TestClusterPoliciesMatchFullRecompute(t *testing.T) {
	for i, b := range randomSeeds(23, 150, 320) {
		c := &chooser{data: b}
		s := randomSnapshot(c)
		for j := range 1 + c.pick(4) {
			s.ClusterPolicies = append(s.ClusterPolicies, randomClusterPolicy(c, fmt.Sprintf("cnp%d", j)))
		}
		for _, node := range []string{testNode, "n2"} {
			s.Node = node
			got := selectors.Resolve(s)
			without := *s
			without.ClusterPolicies = nil
			want := selectors.Resolve(&without)
			selectors.ResolveClusterPoliciesFully(s, want)
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("seed %d, node %s:\n%s", i, node, diffModels(got, want))
			}
		}
	}
}
