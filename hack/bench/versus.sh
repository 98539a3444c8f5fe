#!/usr/bin/env bash
# The headline figures of this checkout against an earlier build, measured in the same session: builds
# nftpolicy-bench from BASE_REV (a temporary git worktree) and from this checkout, runs them one after
# the other PAIRS times (base, new, base, new, ...), and writes bench/VERSUS.md: full programming at
# 50k pods / 10k policies, cost per set element against the kernel's own CPU per element, element-only
# event latency, netlink bytes per event, each as ratios new / base per pair.
#
# Usage: hack/bench/versus.sh [PAIRS]   (default 3; about 4 minutes a pair on a 2-core VM)
#   BASE_REV defaults to 7073737, the main before the core was simplified (issue 13).
# Needs root (network namespaces), strace, and Debian's iptables and ipset (baseline C).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
export PATH="/usr/local/go/bin:${PATH}" GOTOOLCHAIN=local

pairs="${1:-3}"
base_rev="${BASE_REV:-7073737}"
if [[ $(id -u) -ne 0 ]]; then
  echo "needs root to create network namespaces" >&2
  exit 1
fi

work=$(mktemp -d)
cleanup() {
  git worktree remove --force "$work/base-tree" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
git worktree add -q --detach "$work/base-tree" "$base_rev"
(cd "$work/base-tree" && go build -o "$work/base-bench" ./test/bench/cmd/nftpolicy-bench)
go build -o "$work/new-bench" ./test/bench/cmd/nftpolicy-bench
head_rev=$(git rev-parse --short HEAD)

mkdir -p bench/runs
stamp=$(date -u +%Y%m%dT%H%M%SZ)
base_runs=() new_runs=()
# Full programming at 50k and 25k pods (5 and 2 repetitions, without baseline B: it is the same code
# in both builds and takes seconds per repetition), then 50 events of each kind.
args=(-only full,incremental -full-repeats 5 -growth-repeats 2 -events 50 -baseline-events 3 -skip-naive)
for i in $(seq 1 "$pairs"); do
  for build in base new; do
    out="bench/runs/versus-$stamp-$build-$i.json"
    echo "pair $i: $build" >&2
    timeout 20m "$work/$build-bench" run -out "$out" "${args[@]}"
    if [[ $build == base ]]; then base_runs+=("$out"); else new_runs+=("$out"); fi
  done
done
join() { local IFS=,; echo "$*"; }
"$work/new-bench" versus -base "$(join "${base_runs[@]}")" -new "$(join "${new_runs[@]}")" \
  -base-name "$base_rev" -new-name "$head_rev" -out bench/VERSUS.md \
  -title "# $head_rev against $base_rev

Written by \`hack/bench/versus.sh $pairs\` on $(date -u '+%Y-%m-%d %H:%M UTC') ($(nproc) CPUs, $(uname -r)); runs in \`bench/runs/versus-$stamp-*.json\`. Each run is \`nftpolicy-bench run ${args[*]}\` on the generated cluster of 50,000 pods, 10,000 policies and 110 local pods."
echo "wrote bench/VERSUS.md" >&2
