#!/usr/bin/env bash
# Runs the conformance scenarios (test/e2e/scenarios) through Services -- every expect without a via
# key probes each destination's own ClusterIP Service -- on an IPv4 lab under each kube-proxy mode of
# MODES (default: iptables ipvs; CI's conformance suite covers nftables), and writes
# test/e2e/PROXY-MODES.md: a table of scenario x mode with pass, fail or skipped and the reason.
#
# A mode the lab refuses to start (ipvs on a kernel without IP_VS) gives every row of its column the
# lab's reason. Needs root, bin/nftpolicy and bin/nftpolicy-lab (make build) and the Kubernetes
# binaries of hack/build-k8s.sh (make test-proxy-modes does both).
#
#   MODES="iptables" hack/test-proxy-modes.sh [scenario files...]
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
LOCALBIN="${LOCALBIN:-$(pwd)/bin}"
MODES="${MODES:-iptables ipvs}"
OUT="${OUT:-test/e2e/PROXY-MODES.md}"
LOGDIR="${LOGDIR:-$(mktemp -d /tmp/nftpolicy-proxy-modes.XXXXXX)}"

if [[ $# -gt 0 ]]; then
  files=("$@")
else
  files=(test/e2e/scenarios/*.yaml)
fi

start=$(date -u +%s)
started_at=$(date -u '+%Y-%m-%d %H:%M UTC')
declare -A verdict   # "mode name" -> cell of the table
declare -A seconds   # mode -> how long its run took
declare -A refused   # mode -> why the lab did not start in that mode

for mode in ${MODES}; do
  log="${LOGDIR}/${mode}.log"
  echo "==> kube-proxy ${mode}: ${#files[@]} files, log ${log}"
  mode_start=$(date -u +%s)
  set +e
  "${LOCALBIN}/nftpolicy-lab" scenario --proxy-mode "${mode}" --via service --ip-family ipv4 "${files[@]}" >"${log}" 2>&1
  set -e
  seconds[${mode}]=$(( $(date -u +%s) - mode_start ))
  grep -E '^--- (PASS|FAIL|SKIP) ' "${log}" | grep -v ' \[ipv[46]\]$' || true
  # One line per file: "--- PASS name", "--- FAIL name", "--- SKIP name: reason", or
  # "--- FAIL path: why" for a file that did not load.
  while read -r _ result rest; do
    name="${rest%%:*}"
    name="$(basename "${name}" .yaml)"
    reason=""
    [[ "${rest}" == *:* ]] && reason="${rest#*: }"
    case "${result}" in
      PASS) verdict["${mode} ${name}"]="pass" ;;
      FAIL) verdict["${mode} ${name}"]="**fail**${reason:+: ${reason}}" ;;
      SKIP) verdict["${mode} ${name}"]="skipped: ${reason}" ;;
    esac
  done < <(grep -E '^--- (PASS|FAIL|SKIP) ' "${log}" | grep -v ' \[ipv[46]\]$' || true)
  # No file ran: the lab did not start. Its last line says why.
  if ! grep -qE '^--- (PASS|FAIL|SKIP) ' "${log}"; then
    refused[${mode}]="$(grep -v '^\s*$' "${log}" | tail -n1 | tr '|' '/')"
    for f in "${files[@]}"; do
      verdict["${mode} $(basename "${f}" .yaml)"]="skipped: no lab (above)"
    done
  fi
done

duration=$(( $(date -u +%s) - start ))
{
  echo "# Scenarios through Services under each kube-proxy mode"
  echo
  echo "Every scenario of test/e2e/scenarios on a two-node IPv4 lab, each expect without a via key probed"
  echo "through the destination's own ClusterIP Service (\`--via service\`). Written by"
  echo "\`make test-proxy-modes\` (hack/test-proxy-modes.sh); the nftables mode runs in the conformance suite."
  echo
  echo "- command: \`MODES=\"${MODES}\" hack/test-proxy-modes.sh\`"
  echo "- date: ${started_at}"
  echo "- duration: $((duration / 60)) min $((duration % 60)) s ($(for m in ${MODES}; do printf '%s %s s; ' "${m}" "${seconds[${m}]}"; done | sed 's/; $//'))"
  echo
  for m in ${MODES}; do
    pass=0 fail=0 skip=0
    for f in "${files[@]}"; do
      case "${verdict["${m} $(basename "${f}" .yaml)"]:-}" in
        pass) pass=$((pass + 1)) ;;
        skipped*) skip=$((skip + 1)) ;;
        *) fail=$((fail + 1)) ;;
      esac
    done
    echo "- ${m}: ${pass} passed, ${fail} failed, ${skip} skipped${refused[${m}]:+; the lab refused to start: ${refused[${m}]}}"
  done
  echo
  printf '| scenario |'
  for m in ${MODES}; do printf ' %s |' "${m}"; done
  echo
  printf '|---|'
  for _ in ${MODES}; do printf -- '---|'; done
  echo
  for f in "${files[@]}"; do
    name="$(basename "${f}" .yaml)"
    printf '| %s |' "${name}"
    for m in ${MODES}; do printf ' %s |' "${verdict["${m} ${name}"]:-**fail**: no result (see the log)}"; done
    echo
  done
} >"${OUT}"
echo "==> wrote ${OUT}; logs in ${LOGDIR}"
