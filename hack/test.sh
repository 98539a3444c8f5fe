#!/usr/bin/env bash
# Runs every check `make test` promises, in order: go vet, the gofmt check,
# golangci-lint (when hack/setup.sh built it), upstream's NetworkPolicy e2e
# specs on an IPv4 lab, and the tests under the race detector with
# KUBEBUILDER_ASSETS pointing at the envtest control plane.
#
# A failing check does not stop the later ones, so one run reports everything;
# the script exits non-zero if any check failed. The tests run last, so on a
# green run the test runner's closing line is the last line printed.
#
# Expects hack/setup.sh and hack/build-k8s.sh to have run (make test does).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
LOCALBIN="${LOCALBIN:-$(pwd)/bin}"
GO_TEST_FLAGS="${GO_TEST_FLAGS:--race -count=1 -timeout 45m}"

export PATH="/usr/local/go/bin:${PATH}"
export GOTOOLCHAIN=local

failed=()

step() { echo "==> $*"; }

step "go vet ./..."
go vet ./... || failed+=("vet")

step "gofmt check"
unformatted="$(find . -name '*.go' -not -path './bin/*' -not -path './.git/*' \
  -not -path '*/testdata/*' -print0 | xargs -0 -r gofmt -l)"
if [[ -n "${unformatted}" ]]; then
  echo "these files need gofmt (run 'make fmt'):"
  echo "${unformatted}"
  failed+=("gofmt")
fi

# Build outputs never belong in git: a tracked file over 1 MiB, or a tracked
# ELF executable, fails the run (bench/runs/*.json stay well below the limit).
step "tracked files: none over 1 MiB, no executables"
oversized="$(git ls-files -z 2>/dev/null | xargs -0 -r stat -c '%s %n' 2>/dev/null | awk '$1 > 1048576 {print "  " $2 " (" $1 " bytes)"}')"
executables="$(git ls-files -z 2>/dev/null | xargs -0 -r -n 200 file --mime-type 2>/dev/null | awk -F': ' '$2 ~ /x-(executable|pie-executable|sharedlib|object)/ {print "  " $1}')"
if [[ -n "${oversized}${executables}" ]]; then
  echo "build outputs are tracked; remove them from git and list them in .gitignore:"
  [[ -n "${oversized}" ]] && echo "${oversized}"
  [[ -n "${executables}" ]] && echo "${executables}"
  failed+=("tracked-files")
fi

if [[ -x "${LOCALBIN}/golangci-lint" ]]; then
  step "golangci-lint run"
  "${LOCALBIN}/golangci-lint" run || failed+=("lint")
else
  step "golangci-lint not installed in ${LOCALBIN}; skipping lint"
fi

KUBEBUILDER_ASSETS="$(hack/build-k8s.sh --e2e | tail -n1)"
export KUBEBUILDER_ASSETS

# The upstream e2e suite's NetworkPolicy specs on an IPv4 lab (make test-upstream adds dual-stack and
# writes test/e2e/UPSTREAM.md). Its own build of the two binaries, so a stale bin/ never runs here.
step "upstream NetworkPolicy e2e specs, ipv4 (e2e.test from ${KUBEBUILDER_ASSETS})"
upstream_bin="$(mktemp -d -t nftpolicy-upstream-bin.XXXXXX)"
if go build -o "${upstream_bin}/" ./cmd/nftpolicy ./cmd/nftpolicy-lab &&
  "${upstream_bin}/nftpolicy-lab" upstream --ip-family ipv4 --assets "${KUBEBUILDER_ASSETS}" \
    --report-dir "${upstream_bin}/report" >"${upstream_bin}/upstream.log" 2>&1; then
  grep -E '^ipv4, ' "${upstream_bin}/upstream.log"
else
  tail -n 80 "${upstream_bin}/upstream.log" || true
  failed+=("upstream")
fi
rm -rf "${upstream_bin}"
# shellcheck disable=SC2086 # GO_TEST_FLAGS is a list of flags.
if [[ -x "${LOCALBIN}/gotestsum" ]]; then
  # standard-quiet prints go test's package lines; the closing summary lists
  # skipped tests with their reasons and every failure again.
  step "gotestsum -- ${GO_TEST_FLAGS} ./...  (KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS})"
  tests_ok=true
  "${LOCALBIN}/gotestsum" --format standard-quiet -- ${GO_TEST_FLAGS} ./... || tests_ok=false
else
  step "go test ${GO_TEST_FLAGS} ./...  (KUBEBUILDER_ASSETS=${KUBEBUILDER_ASSETS})"
  tests_ok=true
  go test ${GO_TEST_FLAGS} ./... || tests_ok=false
fi

if [[ "${tests_ok}" != true ]]; then
  failed+=("tests")
fi
if ((${#failed[@]} > 0)); then
  echo "make test: FAILED: ${failed[*]}"
  exit 1
fi
