// Package generator builds synthetic clusters for nftpolicy's benchmarks: a selectors.Snapshot from a
// seed and a few knobs modelled on kube-burner's network-policy workload, and the events that change
// it (relabels, address changes, pods coming and going, policy and namespace edits).
//
// Address plan: cluster pod i has 10.0.0.0 + i + 1 (IPv4 only; new pods and moved pods take fresh
// addresses from 10.128.0.0 up); ipBlock peers use 172.16.0.0/12 and 0.0.0.0/0 minus private ranges.
// Nothing here is inside 198.18.0.0/15, so netlab pods can be added to a generated cluster.
package generator

import "fmt"

// Shape says how selectors relate to pods.
type Shape string

const (
	// DistinctSelectors: many label values, so many distinct selectors that each match few pods.
	DistinctSelectors Shape = "distinct-selectors"
	// WideSelectors: few label values, so few selectors that each match a large part of the cluster.
	WideSelectors Shape = "wide-selectors"
)

// Node is the name of the node under test; the other pods are spread over other nodes.
const Node = "node-0"

// Params are the knobs of a generated cluster. Zero values of the mix fields mean "none of that kind".
type Params struct {
	Seed       int64 `json:"seed"`
	Pods       int   `json:"pods"`       // P: eligible pods in the cluster, local ones included
	LocalPods  int   `json:"localPods"`  // L: pods on the node under test
	Namespaces int   `json:"namespaces"` // pods are spread evenly over them
	Policies   int   `json:"policies"`   // N: NetworkPolicies, each in a random namespace
	Shape      Shape `json:"shape"`

	RulesPerPolicy int `json:"rulesPerPolicy"` // ingress rules of every policy; egress policies get as many egress rules
	PeersPerRule   int `json:"peersPerRule"`   // from/to entries of every rule
	// Weights of the peer kinds: podSelector only, namespaceSelector (with a podSelector every other
	// time), ipBlock with excepts.
	PodSelectorPeers       int `json:"podSelectorPeers"`
	NamespaceSelectorPeers int `json:"namespaceSelectorPeers"`
	IPBlockPeers           int `json:"ipBlockPeers"`
	ExceptsPerIPBlock      int `json:"exceptsPerIPBlock"`

	PortsPerRule   int `json:"portsPerRule"`
	PortRangeEvery int `json:"portRangeEvery"` // every n-th port is a range (endPort); 0: never
	NamedPortEvery int `json:"namedPortEvery"` // every n-th port is a named port; 0: never
	EgressEvery    int `json:"egressEvery"`    // every n-th policy is for egress too; 0: never
	SelectAllEvery int `json:"selectAllEvery"` // every n-th policy selects its whole namespace; 0: never

	// ClusterPolicies: ClusterNetworkPolicies (see makeClusterPolicies); 0: none.
	ClusterPolicies int `json:"clusterPolicies,omitempty"`
}

// Defaults returns the parameters of the target scale (P=50k, N=10k, L=110) scaled to the
// given pod and policy counts, with the given shape.
func Defaults(pods, policies int, shape Shape) Params {
	return Params{
		Seed:                   1,
		Pods:                   pods,
		LocalPods:              110,
		Namespaces:             500,
		Policies:               policies,
		Shape:                  shape,
		RulesPerPolicy:         1,
		PeersPerRule:           2,
		PodSelectorPeers:       3,
		NamespaceSelectorPeers: 2,
		IPBlockPeers:           1,
		ExceptsPerIPBlock:      2,
		PortsPerRule:           2,
		PortRangeEvery:         4,
		NamedPortEvery:         5,
		EgressEvery:            3,
		SelectAllEvery:         10,
	}
}

// Validate reports parameters that cannot make a cluster.
func (p Params) Validate() error {
	switch {
	case p.Pods < 1 || p.Namespaces < 1:
		return fmt.Errorf("need at least one pod and one namespace, got %d and %d", p.Pods, p.Namespaces)
	case p.LocalPods < 0 || p.LocalPods > p.Pods:
		return fmt.Errorf("local pods %d not within 0..%d", p.LocalPods, p.Pods)
	case p.Pods > 1<<22:
		return fmt.Errorf("%d pods do not fit the address plan", p.Pods)
	case p.ClusterPolicies < 0:
		return fmt.Errorf("%d cluster policies", p.ClusterPolicies)
	case p.Shape != DistinctSelectors && p.Shape != WideSelectors:
		return fmt.Errorf("unknown shape %q", p.Shape)
	case p.PeersPerRule > 0 && p.PodSelectorPeers+p.NamespaceSelectorPeers+p.IPBlockPeers <= 0:
		return fmt.Errorf("peers per rule is %d but every peer kind has weight 0", p.PeersPerRule)
	}
	return nil
}

// alphabet sizes of the labels, per shape.
type alphabet struct {
	apps  int // values of the pod label "app"
	teams int // values of the namespace label "team"
}

func (p Params) alphabet() alphabet {
	if p.Shape == WideSelectors {
		return alphabet{apps: 2, teams: 2}
	}
	return alphabet{apps: 50, teams: max(1, p.Namespaces/4)}
}
