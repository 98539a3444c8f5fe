#!/usr/bin/env bash
# Agent memory benchmark (issue 5, measurement 4): loads a generated cluster into a real API server
# (envtest: etcd + kube-apiserver), runs a baseline manager and then the agent (bin/nftpolicy) as child
# processes, and writes bench/runs/memory-*.json and bench/MEMORY.md. Needs root (network namespaces).
# Goals: RSS after sync at 50k pods / 10k policies, and RSS flat over a 30-minute churn. Figures beside
# them, with no goal: allocations (KiB) and CPU time (ms, user + system) per event, the agent's and
# the baseline's.
#
# Usage: hack/bench/memory.sh [ARGS...]   ARGS go to the command (see test/bench/memory), e.g.
#   hack/bench/memory.sh                                  # 25000:10000 then 50000:10000, 3-minute churn
#   hack/bench/memory.sh --scales 50000:10000 --churn 30m # the goal's flat-memory run
#   hack/bench/memory.sh --note "after the incremental sync" --variant no-limit:agent:arg=--memory-limit=0
# A lone number (the repeat count `make bench` passes to every script) is ignored.
#
# Another build of the agent, such as an earlier commit's, is a variant with bin=: it runs after the
# main agent against the same loaded API server, in a network namespace of its own with the same pod
# interfaces, and the report's Variants table shows its RSS, live heap and CPU s after sync beside
# the main agent's (--variant is repeatable; bin= takes any path):
#   git worktree add /tmp/nftpolicy-base-src 7073737 && make -C /tmp/nftpolicy-base-src build
#   cp /tmp/nftpolicy-base-src/bin/nftpolicy /tmp/nftpolicy-base
#   hack/bench/memory.sh --scales 50000:10000 --variant base:agent:bin=/tmp/nftpolicy-base
#
# Time on the shared 2-core VM: loading runs at 250-400 pods/s (two writes a pod), so 25k pods take
# 1-2 minutes and 50k 2-4; each scale then needs about 3 minutes of measurements (baseline and agent
# syncs, idle window, 60 paced events, the variants), plus the churn at the largest scale. The default
# run takes 15-20 minutes; with --churn 30m, about 50. The first run also builds etcd (~2 minutes).
# The run ignores SIGHUP and a closed stderr, and keeps its progress in memory.log in its log directory
# (printed first), so it can be left unattended: `nohup hack/bench/memory.sh --churn 30m &`.
#
# etcd: envtest's etcd here is Debian's 3.4, which cannot serve the watch-progress requests that
# client-go's streaming initial list (WatchListClient, on by default in client-go 0.35+) needs, so
# informers would fall back to one big LIST. Real control planes run etcd 3.5.13+ and stream; so does
# this benchmark, with etcd ${ETCD_VERSION} built from the Go module proxy into a cache outside the checkout.
# The variants below measure, against the same API server, the baseline without streaming, the cache
# without our transforms, the agent without its memory limit, and the agent keeping GOGC after its
# first sync.
set -euo pipefail
cd "$(dirname "$0")/../.."
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
args=("$@")
if [[ $# -eq 1 && "$1" =~ ^[0-9]+$ ]]; then
  args=()
fi
export PATH="/usr/local/go/bin:${PATH}" GOTOOLCHAIN=local
if [[ -z "${KUBEBUILDER_ASSETS:-}" ]]; then
  KUBEBUILDER_ASSETS="$(hack/build-k8s.sh 2>/dev/null | tail -n1)"
  export KUBEBUILDER_ASSETS
fi

# etcd_binary prints the path of etcd ${ETCD_VERSION}, building it first when it is not cached.
etcd_binary() {
  local cache="${NFTPOLICY_CACHE_DIR:-/var/cache/nftpolicy}"
  [[ -w "$(dirname "${cache}")" || -w "${cache}" ]] || cache="${XDG_CACHE_HOME:-${HOME}/.cache}/nftpolicy"
  local dir="${cache}/etcd/${ETCD_VERSION}"
  if [[ ! -x "${dir}/etcd" ]]; then
    echo "memory.sh: building etcd ${ETCD_VERSION} into ${dir}" >&2
    local work
    work="$(mktemp -d)"
    cat >"${work}/main.go" <<'GO'
// Command etcd is etcd's server, built from the Go module proxy for the memory benchmark.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
    (cd "${work}" && go mod init nftpolicy.local/etcd >/dev/null 2>&1 &&
      go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >&2 && go build -o etcd . >&2)
    mkdir -p "${dir}"
    mv "${work}/etcd" "${dir}/etcd"
    rm -rf "${work}"
  fi
  echo "${dir}/etcd"
}

etcd="$(etcd_binary)"
make build >&2
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/nftpolicy-memory" ./test/bench/memory
mkdir -p bench/runs
"$bin/nftpolicy-memory" --agent bin/nftpolicy --repo . --etcd "${etcd}" \
  --variant no-watchlist:baseline:env=KUBE_FEATURE_WatchListClient=false \
  --variant managed-fields-only:baseline:arg=--transforms=managed-fields \
  --variant no-memory-limit:agent:arg=--memory-limit=0 \
  --variant gogc-unchanged-after-sync:agent:arg=--steady-gc-percent=0 \
  "${args[@]}"
