#!/usr/bin/env bash
# End-to-end enforcement latency in the lab (issue 5, measurement 5): a real API server, two nodes
# with an agent each, and the pods; writes bench/runs/latency-TIMESTAMP.json and bench/LATENCY.md.
# Usage: hack/bench/latency.sh [TRIALS] [SIZES]   (defaults 60 and "250,1000"; about 6 minutes)
# Needs root (network namespaces) and kube-apiserver and etcd (hack/build-k8s.sh); without
# them the benchmark says why and exits 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
trials=${1:-60}
sizes=${2:-250,1000}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The agent and the benchmark are built into a temporary directory, so that bin/ is left alone.
go build -o "$work/nftpolicy" ./cmd/nftpolicy
go build -o "$work/latency" ./test/bench/latency
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/runs
"$work/latency" -agent "$work/nftpolicy" -sizes "$sizes" -trials "$trials" \
  -out "bench/runs/latency-$stamp.json" -md bench/LATENCY.md
