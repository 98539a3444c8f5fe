#!/usr/bin/env bash
# Baseline benchmarks (issue 5, measurements 1 and 2): nftpolicy (A) against a naive nftables layout (B)
# and an iptables + ipset layout in the style of kube-router (C), on a generated cluster of P=50k pods,
# N=10k policies, L=110 local pods, each backend in a fresh network namespace. Writes one JSON file per
# run under bench/runs/ and renders bench/RESULTS.md from it.
#
# Usage: hack/bench/baselines.sh [extra flags of `nftpolicy-bench run`]
#   e.g. hack/bench/baselines.sh -full-repeats 3 -events 20      (quicker)
# Needs root (network namespaces), strace (netlink byte counts), and Debian's iptables and ipset.
# Takes about 2 to 3 minutes on a 2-core VM with the defaults below (bounded by a 20-minute timeout).
set -euo pipefail
cd "$(dirname "$0")/../.."

for tool in ip ipset iptables-restore strace; do
  command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install iproute2 ipset iptables strace)" >&2; exit 1; }
done
if [[ $(id -u) -ne 0 ]]; then
  echo "needs root to create network namespaces" >&2
  exit 1
fi

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/nftpolicy-bench" ./test/bench/cmd/nftpolicy-bench

mkdir -p bench/runs
run="bench/runs/$(date -u +%Y%m%dT%H%M%SZ).json"
# The whole run is bounded: 5 repetitions of the full programming at 50k and 25k pods (baseline B,
# one rule per pod, peer and port, takes about 8 s per repetition at 50k), 50 events of each kind
# for A, 10 of each kind for C (every one a full restore of about 3 MB).
timeout 20m "$bin/nftpolicy-bench" run -out "$run" \
  -full-repeats 5 -growth-repeats 5 -events 50 -baseline-events 10 -resyncs 5 -floor-repeats 100 "$@"
"$bin/nftpolicy-bench" report -run "$run" -out bench/RESULTS.md
echo "wrote $run and bench/RESULTS.md" >&2
