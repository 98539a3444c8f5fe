#!/usr/bin/env bash
# Installs what building and testing nftpolicy needs on a Debian machine:
#   - Debian packages: the kernel-facing tools the dataplane tests drive (nft,
#     ip, conntrack, iptables, ipset), etcd for envtest, a C toolchain for
#     `go test -race`, and small network tools for the e2e suite;
#   - pinned Go tools in ./bin, built through the Go module proxy.
#
# Idempotent and fast when everything is present: a Debian package is only
# installed when dpkg does not know it, and a Go tool is only built when
# bin/<tool>-<version> is missing. bin/<tool> is a symlink to the pinned build,
# so changing a pin below rebuilds exactly that tool.
#
# The kube-apiserver used by envtest is built separately by
# hack/build-k8s.sh (it takes minutes and is cached outside the checkout).
set -euo pipefail

# Pinned Go tools, chosen for Go 1.26 and k8s.io v0.37 (kustomize v5.8.3 needs
# Go 1.27, so kustomize stays on v5.8.2).
CONTROLLER_TOOLS_VERSION="${CONTROLLER_TOOLS_VERSION:-v0.23.0}"
KUSTOMIZE_VERSION="${KUSTOMIZE_VERSION:-v5.8.2}"
GOLANGCI_LINT_VERSION="${GOLANGCI_LINT_VERSION:-v2.15.0}"
GINKGO_VERSION="${GINKGO_VERSION:-v2.34.0}"
GOTESTSUM_VERSION="${GOTESTSUM_VERSION:-v1.13.0}"

DEBIAN_PACKAGES=(
  nftables       # nft: the dataplane tests compare the kernel's listing; the lab's kube-proxy (nftables mode)
  iproute2       # ip netns / veth pairs for the network-namespace tests
  conntrack      # inspecting connection tracking when debugging a lab
  iptables       # the iptables + ipset baseline of the benchmarks (make bench); the lab's
  ipset          #   kube-proxy in iptables and ipvs modes
  strace         # the benchmarks count the netlink bytes a transaction sends
  etcd-server    # /usr/bin/etcd, started by envtest next to kube-apiserver
  procps         # pkill/pgrep/sysctl used by test helpers
  kmod           # modprobe nf_tables / nf_conntrack (and ip_vs for the lab's ipvs mode) when not yet loaded
  iputils-ping   # connectivity probes in the e2e suite
  netcat-openbsd
  util-linux     # flock, unshare, nsenter (runs the lab's kube-proxy in a node's namespace)
  gcc            # cgo for the race detector
  libc6-dev
  make
  git
  rsync
  file           # hack/test.sh refuses tracked executables
  ca-certificates
)

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCALBIN="${LOCALBIN:-${REPO_ROOT}/bin}"

export PATH="/usr/local/go/bin:${PATH}"
# Never let the go command fetch a toolchain: only the module proxy is reachable.
export GOTOOLCHAIN=local

log() { echo "setup: $*"; }

check_go() {
  if ! command -v go >/dev/null 2>&1; then
    log "Go is not installed (expected /usr/local/go/bin/go, Go 1.26 or newer)"
    exit 1
  fi
  local version
  version="$(go env GOVERSION)"
  log "using ${version} ($(command -v go))"
}

install_debian_packages() {
  local missing=() pkg
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q 'ok installed'; then
      missing+=("${pkg}")
    fi
  done
  if ((${#missing[@]} == 0)); then
    log "Debian packages present (${#DEBIAN_PACKAGES[@]})"
    return
  fi
  if [[ "$(id -u)" != 0 ]]; then
    log "missing Debian packages: ${missing[*]} (run as root to install them)"
    exit 1
  fi
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# go_install_tool NAME PACKAGE VERSION builds PACKAGE@VERSION into
# bin/NAME-VERSION and points bin/NAME at it.
go_install_tool() {
  local name="$1" package="$2" version="$3"
  local target="${LOCALBIN}/${name}-${version}"
  if [[ -x "${target}" ]]; then
    log "${name} ${version} present"
  else
    log "building ${name} ${version} (${package})"
    local tmp start=${SECONDS}
    tmp="$(mktemp -d)"
    GOBIN="${tmp}" CGO_ENABLED=0 go install "${package}@${version}"
    # The one file in GOBIN is the tool (kustomize/v5 installs as "kustomize").
    mv -f "${tmp}"/* "${target}"
    rm -rf "${tmp}"
    log "built ${name} ${version} in $((SECONDS - start))s"
  fi
  if [[ "$(readlink "${LOCALBIN}/${name}" 2>/dev/null)" != "$(basename "${target}")" ]]; then
    ln -sfn "$(basename "${target}")" "${LOCALBIN}/${name}"
  fi
}

install_go_tools() {
  mkdir -p "${LOCALBIN}"
  go_install_tool controller-gen sigs.k8s.io/controller-tools/cmd/controller-gen "${CONTROLLER_TOOLS_VERSION}"
  go_install_tool kustomize sigs.k8s.io/kustomize/kustomize/v5 "${KUSTOMIZE_VERSION}"
  go_install_tool golangci-lint github.com/golangci/golangci-lint/v2/cmd/golangci-lint "${GOLANGCI_LINT_VERSION}"
  go_install_tool ginkgo github.com/onsi/ginkgo/v2/ginkgo "${GINKGO_VERSION}"
  # `make test` runs `go test` through gotestsum: package lines as go test
  # prints them, plus a closing list of skipped tests with their reasons.
  go_install_tool gotestsum gotest.tools/gotestsum "${GOTESTSUM_VERSION}"
}

main() {
  local start=${SECONDS}
  check_go
  install_debian_packages
  install_go_tools
  log "done in $((SECONDS - start))s"
}

main "$@"
