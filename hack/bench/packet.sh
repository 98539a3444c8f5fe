#!/usr/bin/env bash
# Per-packet benchmark (issue 5, measurement 3): new connections per second, connect latency,
# established TCP throughput and small-packet UDP rate between two lab pods through a node's forward
# hook, with the node programmed with a conntrack-only table (the baseline), nftpolicy (A) with 0
# and N policies, A with N policies and drop logging on (level all for the two pods, an NFLOG reader
# draining the group; reported as a ratio against A, not a goal), and baseline B (one linear rule per
# pod, peer and port) with N policies. Writes one JSON file per run under bench/runs/ (packet-*.json)
# and renders bench/PACKET.md from it.
#
# Usage: hack/bench/packet.sh [extra flags of `packet-bench run`]
#   e.g. hack/bench/packet.sh -rounds 5                                  (quicker)
#        hack/bench/packet.sh -pods 5000 -policies 1000 -rounds 3        (a smoke run)
#        hack/bench/packet.sh -drop-log=false                            (without the logging table)
# Needs root (network namespaces). Takes about 8 minutes on a 2-core VM with the defaults (12 rounds of
# 2 s CRR, 1.5 s stream and 1.5 s UDP per table; bounded by a 15-minute timeout).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ $(id -u) -ne 0 ]]; then
  echo "needs root to create network namespaces" >&2
  exit 1
fi

bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/packet-bench" ./test/bench/packet/cmd/packet-bench

mkdir -p bench/runs
run="bench/runs/packet-$(date -u +%Y%m%dT%H%M%SZ).json"
timeout 15m "$bin/packet-bench" run -out "$run" "$@"
"$bin/packet-bench" report -run "$run" -out bench/PACKET.md
echo "wrote $run and bench/PACKET.md" >&2
