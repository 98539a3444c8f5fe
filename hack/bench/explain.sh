#!/usr/bin/env bash
# What `kubectl nftpolicy explain` and a metrics scrape read from the kernel, on the table of 50000
# pods and 10000 policies (nft/kernel BenchmarkExplainReads): the agent's periodic read-back of the same
# table is the baseline of the same run. Writes the raw `go test -bench` output to
# bench/runs/explain-<time>.txt and renders bench/EXPLAIN.md with each figure's ratio to the baseline.
#
# Usage: hack/bench/explain.sh [COUNT]          (COUNT runs of each sub-benchmark, default 5)
#        hack/bench/explain.sh --render FILE   (render bench/EXPLAIN.md again from a run's output)
# Needs root (a network namespace). Takes a few minutes on a 2-core VM.
set -euo pipefail
cd "$(dirname "$0")/../.."
if [[ ${1:-} == --render ]]; then
  run=$2
  count=$(grep -c '^BenchmarkExplainReads/read-back' "$run")
else
  count=${1:-5}
  mkdir -p bench/runs
  run="bench/runs/explain-$(date -u +%Y%m%dT%H%M%SZ).txt"
  go test -run XXX -bench 'BenchmarkExplainReads' -benchtime 5x -count "$count" ./nft/kernel/ | tee "$run"
fi

# The median ns/op of each sub-benchmark, and its ratio to read-back's.
awk -v run="$run" -v count="$count" '
  /^BenchmarkExplainReads\// {
    name = $1; sub(/^BenchmarkExplainReads\//, "", name); sub(/-[0-9]+$/, "", name)
    for (i = 1; i <= NF; i++) if ($(i) == "ns/op") v[name] = v[name] " " $(i-1)
  }
  /^cpu:/ { cpu = substr($0, 6) }
  function sorted(list, a,   n, i, j, t) {
    n = split(list, a, " ")
    for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] + 0 < a[i] + 0) { t = a[i]; a[i] = a[j]; a[j] = t }
    return n
  }
  function median(list,   a, n) {
    n = sorted(list, a)
    return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
  }
  function span(list,   a, n) {
    n = sorted(list, a)
    return sprintf("%.2f-%.2f", a[1] / 1e6, a[n] / 1e6)
  }
  END {
    base = median(v["read-back"])
    print "# What explain and a scrape read from the kernel"
    print ""
    print "The table of 50000 pods and 10000 policies (the generated cluster of issue 5, measurement 1), committed in a"
    print "network namespace. Baseline, measured in the same run: `read-back`, the periodic resync'"'"'s read of the same"
    print "table and its comparison with the committed ruleset. `read-ruleset` is what explain does first on each"
    print "node (the kernel'"'"'s table raised into the model, then lowered again and compared, so that a mistake in"
    print "reading can only fail); `trace` follows one packet through the raised table; `counters` is one scrape."
    print ""
    print "| what | median ms per call | min-max ms | ratio to read-back (medians) |"
    print "|---|---|---|---|"
    order = "read-back read-ruleset trace"
    n = split(order, names, " ")
    for (k in v) if (k ~ /^counters=/) names[++n] = k
    for (i = 1; i <= n; i++) {
      m = median(v[names[i]])
      printf "| %s | %.2f | %s | %.4f |\n", names[i], m / 1e6, span(v[names[i]]), m / base
    }
    print ""
    print "Runs: " count " of each (5 calls each), on " cpu "; raw output in `" run "`."
    print "Reproduce: `hack/bench/explain.sh` (as root)."
  }' "$run" > bench/EXPLAIN.md
echo "wrote $run and bench/EXPLAIN.md" >&2
