#!/usr/bin/env bash
# The new-pod window in the lab (issue 14): how long a new pod that an existing policy isolates is
# reachable from a denied peer, and reaches a denied destination, from its network being up, with the
# lab's kubelet reporting its IPs after each delay, in the default and the fail-closed mode; writes
# bench/runs/newpod-TIMESTAMP.json and bench/NEWPOD.md.
# Usage: hack/bench/newpod.sh [TRIALS] [DELAYS]   (defaults 5 and "0,200ms,1s"; about 2 minutes)
# Needs root (network namespaces) and kube-apiserver and etcd (hack/build-k8s.sh); without
# them the benchmark says why and exits 0.
set -euo pipefail
cd "$(dirname "$0")/../.."
trials=${1:-5}
delays=${2:-0,200ms,1s}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The agent and the benchmark are built into a temporary directory, so that bin/ is left alone.
go build -o "$work/nftpolicy" ./cmd/nftpolicy
go build -o "$work/newpod" ./test/bench/newpod
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p bench/runs
"$work/newpod" -agent "$work/nftpolicy" -delays "$delays" -trials "$trials" \
  -command "hack/bench/newpod.sh $trials $delays" \
  -out "bench/runs/newpod-$stamp.json" -md bench/NEWPOD.md
