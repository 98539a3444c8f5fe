// Command memory measures the agent's memory against a real API server (issue 5, measurement 4):
// RSS and heap after the first sync, allocations per incremental event, and RSS over a short churn.
// Its goals are the RSS after sync and a flat RSS over the churn; the allocations per event are a
// figure only.
//
// For each scale it starts etcd and kube-apiserver with envtest (etcd's data on tmpfs), loads a
// cluster made by test/bench/generator (namespaces, pods created and then given their addresses through
// the status subresource, NetworkPolicies), and then runs, one after the other, as child processes:
//
//   - the baseline: this command's "baseline" mode, a bare controller-runtime manager with the agent's
//     scheme and cache options (controllers.CacheOptions) that informs the same kinds and has no
//     reconciler: what caching the cluster costs by itself;
//   - the agent: bin/nftpolicy, programming a fresh network namespace (`ip netns add`, always removed).
//
// RSS comes from /proc/PID/status; heap and allocation counters from the process's Prometheus
// endpoint (go_memstats_*, go_gc_heap_allocs_bytes_total on controller-runtime's registry).
//
// Allocations per event are measured with the events paced so that each gets a sync of its own, and
// with the background allocation rate of an idle window of the same agent (metrics scrapes, resyncs)
// subtracted; the churn's steady state subtracts only its samples' scrapes. The in-process figures
// (selectors.Resolve + nft.Compile over the generated snapshot) are a labelled complement: what the pure core allocates per sync at that scale, without the cache.
//
// Usage: see hack/bench/memory.sh. It needs root (network namespaces, nftables).
package main
