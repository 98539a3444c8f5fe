#!/usr/bin/env bash
# Builds the Kubernetes binaries the lab and the tests run (kube-apiserver and
# etcd for controller-runtime's envtest; kube-controller-manager and kube-proxy
# for the lab's Services; kube-scheduler and agnhost for the pods of the upstream
# e2e suite) and caches them outside the checkout, keyed by Kubernetes version,
# so every clone on this machine reuses one build. With --e2e it also builds the
# upstream suite, e2e.test (k8s.io/kubernetes/test/e2e, go test -c).
#
# setup-envtest cannot be used here because it downloads release tarballs.
# Instead the binaries are compiled from the k8s.io/kubernetes module served by
# the Go module proxy. That module replaces its staging modules (k8s.io/api,
# k8s.io/apiserver, ...) with ./staging/src/... paths, which do not exist in a
# module download, so a throwaway module replaces each of them with its published
# v0.Y.Z release. etcd comes from Debian's etcd-server package.
#
# Layout:  ${NFTPOLICY_CACHE_DIR:-/var/cache/nftpolicy}/envtest/<k8s-version>/
#          (~/.cache/nftpolicy when not root and /var/cache/nftpolicy is not writable)
#            kube-apiserver, kube-controller-manager, kube-proxy,
#            kube-scheduler, agnhost, e2e.test (--e2e)        built here
#            etcd             symlink to the Debian binary
#            VERSIONS         what was built, from what
#
# Progress goes to stderr; the last line on stdout is the assets directory, so
# `export KUBEBUILDER_ASSETS=$(hack/build-k8s.sh)` works.
set -euo pipefail

# The release of the k8s.io client libraries in go.mod (k8s.io/api v0.37.2).
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
# The binaries built from k8s.io/kubernetes/<package>, in one go build so they
# share the compilation of their common packages.
declare -A PACKAGES=(
  [kube-apiserver]=cmd/kube-apiserver
  [kube-controller-manager]=cmd/kube-controller-manager
  [kube-proxy]=cmd/kube-proxy
  [kube-scheduler]=cmd/kube-scheduler
  [agnhost]=test/images/agnhost
)
BINARIES=(kube-apiserver kube-controller-manager kube-proxy kube-scheduler agnhost)
# --e2e: also the upstream e2e suite, a test binary of its own (go test -c).
E2E=false
if [[ "${1:-}" == "--e2e" ]]; then
  E2E=true
fi
# Root (CI, the development machines) shares one machine-wide cache; other users
# fall back to their own cache directory.
if [[ -z "${NFTPOLICY_CACHE_DIR:-}" ]]; then
  if [[ "$(id -u)" == 0 ]] || [[ -w /var/cache/nftpolicy ]]; then
    NFTPOLICY_CACHE_DIR=/var/cache/nftpolicy
  else
    NFTPOLICY_CACHE_DIR="${XDG_CACHE_HOME:-${HOME}/.cache}/nftpolicy"
  fi
fi
CACHE_ROOT="${NFTPOLICY_CACHE_DIR}/envtest"
ASSETS_DIR="${CACHE_ROOT}/${K8S_VERSION#v}"

export PATH="/usr/local/go/bin:${PATH}"
# Never let the go command fetch a toolchain: only the module proxy is reachable.
export GOTOOLCHAIN=local

log() { echo "build-k8s: $*" >&2; }

binaries_built() {
  local b
  for b in "${BINARIES[@]}"; do
    [[ -x "${ASSETS_DIR}/${b}" ]] || return 1
  done
}

e2e_built() {
  [[ "${E2E}" == false || -x "${ASSETS_DIR}/e2e.test" ]]
}

assets_complete() {
  binaries_built && e2e_built && [[ -x "${ASSETS_DIR}/etcd" && -f "${ASSETS_DIR}/VERSIONS" ]]
}

link_etcd() {
  local etcd_bin
  etcd_bin="$(command -v etcd || true)"
  if [[ -z "${etcd_bin}" ]]; then
    log "etcd not found on PATH; run hack/setup.sh (installs Debian's etcd-server)"
    exit 1
  fi
  ln -sfn "${etcd_bin}" "${ASSETS_DIR}/etcd"
}

# staging_modules prints the k8s.io modules that k8s.io/kubernetes's go.mod
# replaces with ./staging/src/... directories.
staging_modules() {
  local gomod="$1"
  awk '$2 == "=>" && $3 ~ /^\.\/staging\// { print $1 }' "${gomod}"
}

# build runs in a throwaway module that requires k8s.io/kubernetes@K8S_VERSION:
# with --e2e the upstream suite, otherwise the binaries that are missing.
build() {
  local what="$1" work minor patch staging_version gomod
  work="$(mktemp -d -t nftpolicy-k8s-build.XXXXXX)"
  # shellcheck disable=SC2064 # expand now: work is local to this function.
  trap "rm -rf '${work}'" EXIT

  # v1.37.2 -> staging modules are published as v0.37.2.
  IFS=. read -r _ minor patch <<<"${K8S_VERSION#v}"
  staging_version="v0.${minor}.${patch}"

  log "resolving k8s.io/kubernetes@${K8S_VERSION} through the module proxy"
  cd "${work}"
  go mod init nftpolicy.local/k8s-build >/dev/null 2>&1
  local download
  if ! download="$(go mod download -json "k8s.io/kubernetes@${K8S_VERSION}")"; then
    log "could not download k8s.io/kubernetes@${K8S_VERSION}:"
    sed -n 's/^[[:space:]]*"Error": //p' <<<"${download}" >&2
    log "pick another release with K8S_VERSION=vX.Y.Z"
    exit 1
  fi
  gomod="$(sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p' <<<"${download}")"

  local -a edits=("-require=k8s.io/kubernetes@${K8S_VERSION}")
  local mod count=0
  while read -r mod; do
    edits+=("-replace=${mod}=${mod}@${staging_version}")
    count=$((count + 1))
  done < <(staging_modules "${gomod}")
  log "replacing ${count} staging modules with their ${staging_version} releases"
  go mod edit "${edits[@]}"

  # Stamp the binary the way the Kubernetes release build does, so
  # `kube-apiserver --version` and /version report the real release.
  local build_date ldflags
  build_date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  ldflags="-s -w"
  local pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
    ldflags+=" -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${build_date}"
  done

  local -a pkgs=() built=() b
  local start=${SECONDS}
  mkdir -p "${work}/out"
  if [[ "${what}" == e2e ]]; then
    built=(e2e.test)
    log "building e2e.test ${K8S_VERSION} (a cold build takes about 16 minutes on 2 cores)"
    CGO_ENABLED=0 go test -c -mod=mod -trimpath -ldflags "${ldflags}" -o "${work}/out/e2e.test" k8s.io/kubernetes/test/e2e
  else
    built=("${BINARIES[@]}")
    for b in "${BINARIES[@]}"; do
      pkgs+=("k8s.io/kubernetes/${PACKAGES[${b}]}")
    done
    log "building ${BINARIES[*]} ${K8S_VERSION} (a cold build takes 10-20 minutes)"
    CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "${ldflags}" -o "${work}/out/" "${pkgs[@]}"
  fi
  log "built ${built[*]} in $((SECONDS - start))s"

  mkdir -p "${ASSETS_DIR}"
  for b in "${built[@]}"; do
    # Install atomically: a reader never sees a half-written binary.
    cp "${work}/out/${b}" "${ASSETS_DIR}/${b}.tmp"
    mv -f "${ASSETS_DIR}/${b}.tmp" "${ASSETS_DIR}/${b}"
  done
  {
    echo "${built[*]} ${K8S_VERSION} (k8s.io/kubernetes@${K8S_VERSION}, staging modules @${staging_version})"
    echo "built with $(go version | awk '{print $3}') on ${build_date}"
  } >"${ASSETS_DIR}/${what}.version"
}

main() {
  if assets_complete; then
    link_etcd
    echo "${ASSETS_DIR}"
    return
  fi

  mkdir -p "${CACHE_ROOT}"
  # One build per version at a time: a concurrent run waits, then finds the
  # finished assets instead of building them again.
  exec 9>"${CACHE_ROOT}/.build-${K8S_VERSION#v}.lock"
  if ! flock -n 9; then
    log "another build of ${K8S_VERSION} is running; waiting for it"
    flock 9
  fi

  if ! assets_complete; then
    mkdir -p "${ASSETS_DIR}"
    if ! binaries_built; then
      (build binaries)
    fi
    if ! e2e_built; then
      (build e2e)
    fi
    link_etcd
    {
      cat "${ASSETS_DIR}/binaries.version" 2>/dev/null || echo "${BINARIES[*]} ${K8S_VERSION}"
      cat "${ASSETS_DIR}/e2e.version" 2>/dev/null || true
      echo "etcd $("${ASSETS_DIR}/etcd" --version | awk '/etcd Version/ {print $3}') ($(readlink -f "${ASSETS_DIR}/etcd"))"
    } >"${ASSETS_DIR}/VERSIONS.tmp"
    mv -f "${ASSETS_DIR}/VERSIONS.tmp" "${ASSETS_DIR}/VERSIONS"
    log "assets ready in ${ASSETS_DIR}"
  fi
  echo "${ASSETS_DIR}"
}

main "$@"
