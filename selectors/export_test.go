package selectors

// ResolveClusterPoliciesFully is resolveClusterPolicies for the external tests: the
// ClusterNetworkPolicy part of a Model recomputed from scratch.
var ResolveClusterPoliciesFully = resolveClusterPolicies
