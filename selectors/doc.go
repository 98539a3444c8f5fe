// Package selectors implements NetworkPolicy semantics over plain data.
//
// Input is the cluster as one node's agent sees it (pods, namespaces, policies); output is a Model:
// which local pods are isolated in which direction, and exactly which peers and ports each of their
// allowances admits. Nothing here holds a client, a context, or does I/O, and nothing here knows
// about nftables.
//
// A Resolver holds the cluster and is updated object by object, so that an event costs what it
// changes rather than the size of the cluster; Model returns the Model with the Changes since the
// one before, by id, for the layers below to redo only that. Loading a snapshot into a new Resolver
// is the full computation: there is one implementation of the semantics.
//
// Reading order: resolver.go (the Resolver and its Model), then one file per event (pod.go,
// namespace.go, policy.go) over the membership core (membership.go: which pods each peer selects;
// sets.go, registry.go, tally.go: the sets built from them). Policies are compiled on their own in
// compile.go, rules.go, peers.go, ports.go and ipblock.go; reading.go exposes that compilation
// entry by entry, with the matching functions the sets are built with, to explain a verdict.
package selectors
