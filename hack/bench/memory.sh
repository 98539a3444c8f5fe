#!/usr/bin/env bash
# Agent memory benchmark (issue 5, measurement 4): loads a generated cluster into a real API server
# (envtest: etcd + kube-apiserver), runs a baseline manager and then the agent (bin/nftpolicy) as child
# processes, and writes bench/runs/memory-*.json and bench/MEMORY.md. Needs root (network namespaces).
# Usage: hack/bench/memory.sh [ARGS...]   ARGS go to the command (see test/bench/memory), e.g.
#   hack/bench/memory.sh --scales 50000:10000 --churn 30m
# A lone number (the repeat count `make bench` passes to every script) is ignored: one run is ~20 min.
set -euo pipefail
cd "$(dirname "$0")/../.."
args=("$@")
if [[ $# -eq 1 && "$1" =~ ^[0-9]+$ ]]; then
  args=()
fi
if [[ -z "${KUBEBUILDER_ASSETS:-}" ]]; then
  KUBEBUILDER_ASSETS="$(hack/build-apiserver.sh 2>/dev/null | tail -n1)"
  export KUBEBUILDER_ASSETS
fi
make build >&2
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/nftpolicy-memory" ./test/bench/memory
mkdir -p bench/runs
"$bin/nftpolicy-memory" --agent bin/nftpolicy --repo . "${args[@]}"
