// Command memory measures the agent's memory against a real API server (issue 5, measurement 4):
// RSS and heap after the first sync, allocations and CPU time per incremental event, and RSS over a
// churn. Its goals are the RSS after sync and a flat RSS over the churn; the allocations and CPU time
// per event are figures only.
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
// RSS comes from /proc/PID/status and CPU time (user and system) from /proc/PID/stat; heap and
// allocation counters from the process's Prometheus endpoint (go_memstats_*,
// go_gc_heap_allocs_bytes_total on controller-runtime's registry).
//
// Allocations and CPU time per event are measured with the events paced so that each gets a sync of
// its own, with the cost of the window's metrics scrape and the background rate of an idle window of
// the same process subtracted; over the churn's steady state the allocations subtract only the
// samples' scrapes, the CPU time the scrapes and the idle rate. The baseline is measured over the
// same windows: what receiving, decoding and caching the events costs a bare manager. The in-process
// figures (selectors.Resolve + nft.Compile over the generated snapshot) are a labelled complement:
// what the pure core allocates per sync at that scale, without the cache.
//
// Usage: see hack/bench/memory.sh. It needs root (network namespaces, nftables).
package main
