// Package scenario reads scenario files (format v1.1, see test/e2e/scenarios/FORMAT.md) and runs them
// against a lab cluster.
//
// A scenario drives a cluster through NetworkPolicy changes and states, after each change, the exact
// connectivity matrix expected for one port and protocol. The package owns the format (strict
// parsing, placeholders, expectation expansion), the runner (convergence polling and the final
// exact check) and the report; how the lab creates pods and probes them stays behind Cluster.
package scenario
