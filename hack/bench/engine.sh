#!/usr/bin/env bash
# Engine benchmarks: runs the Go benchmarks of selectors/ and nft/ several times and writes
# bench/ENGINE.md, figures as ratios against a baseline measured in the same run (median, min, max).
# Usage: hack/bench/engine.sh [COUNT]   (default 5; needs root for the kernel benchmarks)
set -euo pipefail
cd "$(dirname "$0")/../.."
count=${1:-5}
raw=$(mktemp)
trap 'rm -f "$raw"' EXIT

echo "running engine benchmarks (count=$count)..." >&2
go test -run '^$' -bench '^BenchmarkResolve$|^BenchmarkResolver(FullResolve|Load)$' -benchtime 3x -count "$count" ./selectors/ | tee -a "$raw" >&2
go test -run '^$' -bench '^BenchmarkResolver(PodRelabel|PodIPChange|NamespaceRelabel|PolicyEdit)$' -benchtime 400x -benchmem -count "$count" ./selectors/ | tee -a "$raw" >&2
go test -run '^$' -bench '^Benchmark(Compile|Diff)$' -benchtime 10x -benchmem -count "$count" ./nft/ | tee -a "$raw" >&2
# Event-sized compiles: many iterations, each a fraction of a millisecond.
go test -run '^$' -bench '^BenchmarkCompile(OnePod|PeerEvent)$' -benchtime 300x -benchmem -count "$count" ./nft/ | tee -a "$raw" >&2
go test -run '^$' -bench 'KernelApply|KernelElementFloor' -benchtime 10x -count "$count" ./nft/kernel/ | tee -a "$raw" >&2

out=bench/ENGINE.md
{
  echo "# Engine benchmarks"
  echo
  echo "Written by \`hack/bench/engine.sh $count\` on $(date -u +%Y-%m-%d), kernel $(uname -r), $(nproc) CPUs, $(go version | cut -d' ' -f3)."
  echo "Each figure is the median of $count runs, with min and max; ratios compare figures of the same run."
  echo
  awk -v count="$count" '
    /^Benchmark/ {
      name = $1; sub(/-[0-9]+$/, "", name)
      for (i = 3; i < NF; i++) if ($(i+1) == "ns/op") { v[name, ++n[name]] = $i }
      for (i = 3; i < NF; i++) if ($(i+1) == "B/op") { bytes[name, ++nb[name]] = $i }
      if (!(name in seen)) { seen[name] = 1; order[++names] = name }
    }
    function median(name,   k, m, a, tmp, i, j) {
      m = n[name]
      for (i = 1; i <= m; i++) a[i] = v[name, i]
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { tmp = a[i]; a[i] = a[j]; a[j] = tmp }
      lo[name] = a[1]; hi[name] = a[m]
      return (m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2
    }
    function medianBytes(name,   m, a, tmp, i, j) {
      m = nb[name]
      if (m == 0) return ""
      for (i = 1; i <= m; i++) a[i] = bytes[name, i]
      for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (a[j] < a[i]) { tmp = a[i]; a[i] = a[j]; a[j] = tmp }
      return sprintf("%.1f", ((m % 2) ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2) / 1024)
    }
    function ms(x) { return sprintf("%.3f", x / 1e6) }
    function ratio(a, b) { return (b in med && a in med && med[b] > 0) ? sprintf("%.3f", med[a] / med[b]) : "n/a" }
    END {
      print "## Figures (ms per operation)"
      print ""
      print "| benchmark | median | min | max | KiB allocated per op (median) |"
      print "|---|---:|---:|---:|---:|"
      for (i = 1; i <= names; i++) { nm = order[i]; med[nm] = median(nm); printf "| %s | %s | %s | %s | %s |\n", nm, ms(med[nm]), ms(lo[nm]), ms(hi[nm]), medianBytes(nm) }
      print ""
      print "## Ratios"
      print ""
      print "| what | ratio | meaning |"
      print "|---|---:|---|"
      printf "| kernel: one-pod change / full replacement, 50k pods | %s | an incremental update against rebuilding the table |\n", ratio("BenchmarkKernelApply/one-pod/pods=50000", "BenchmarkKernelApply/full/pods=50000")
      printf "| kernel: one-pod change / one-element delete floor | %s | how close an update gets to the cheapest deleting commit of the kernel |\n", ratio("BenchmarkKernelApply/one-pod/pods=50000", "BenchmarkKernelElementFloor/delete")
      printf "| kernel: element delete floor / element add floor | %s | what deleting costs the kernel beyond adding |\n", ratio("BenchmarkKernelElementFloor/delete", "BenchmarkKernelElementFloor/add")
      printf "| kernel: full replacement, 50k / 25k pods | %s | growth when the cluster doubles (linear = 2) |\n", ratio("BenchmarkKernelApply/full/pods=50000", "BenchmarkKernelApply/full/pods=25000")
      printf "| kernel: one-pod change, 50k / 25k pods | %s | growth of an update when the cluster doubles (flat = 1) |\n", ratio("BenchmarkKernelApply/one-pod/pods=50000", "BenchmarkKernelApply/one-pod/pods=25000")
      printf "| diff: one-pod change, Compiler output / Compile output, 50k pods | %s | the diff restricted to what the changes of the Compiler name (as the agent diffs) against comparing every set and chain |\n", ratio("BenchmarkDiff/one-pod-compiler/pods=50000", "BenchmarkDiff/one-pod/pods=50000")
      printf "| compile: one-pod change with Compiler / whole Compile, 50k pods | %s | lowering only what changed against lowering everything |\n", ratio("BenchmarkCompileOnePod/pods=50000", "BenchmarkCompile/pods=50000")
      printf "| compile: 50k / 25k pods | %s | growth when the cluster doubles |\n", ratio("BenchmarkCompile/pods=50000", "BenchmarkCompile/pods=25000")
      printf "| compile: peer event with Compiler / whole Compile, 50k pods | %s | a remote pod moving: one set changes, nothing local |\n", ratio("BenchmarkCompilePeerEvent/pods=50000", "BenchmarkCompile/pods=50000")
      printf "| resolve: 50k pods, 10k policies / 5k pods, 1k policies | %s | growth for 10x the cluster |\n", ratio("BenchmarkResolve/pods=50k/policies=10k", "BenchmarkResolve/pods=5k/policies=1k")
      split("PodRelabel PodIPChange NamespaceRelabel PolicyEdit", kinds, " ")
      for (k = 1; k <= 4; k++) {
        ev = "BenchmarkResolver" kinds[k] "/pods=50k/policies=10k/event+model"
        printf "| resolver: %s event + model / full resolve, 50k pods | %s | an incremental event against resolving the world |\n", kinds[k], ratio(ev, "BenchmarkResolverFullResolve/pods=50k/policies=10k")
      }
      for (k = 1; k <= 4; k++) {
        printf "| resolver: %s event + model, 50k / 25k pods | %s | growth of an event when the cluster doubles (flat = 1; the changed sets are twice as large) |\n", kinds[k], ratio("BenchmarkResolver" kinds[k] "/pods=50k/policies=10k/event+model", "BenchmarkResolver" kinds[k] "/pods=25k/policies=10k/event+model")
      }
      printf "| resolver: initial load + model / full resolve, 50k pods | %s | the first sync of the incremental resolver |\n", ratio("BenchmarkResolverLoad/pods=50k/policies=10k", "BenchmarkResolverFullResolve/pods=50k/policies=10k")
    }' "$raw"
  echo
  echo "## Raw output"
  echo
  echo '```'
  grep '^Benchmark' "$raw"
  echo '```'
} > "$out"
echo "wrote $out" >&2
