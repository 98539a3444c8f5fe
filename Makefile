# Image URL to use for all building/pushing image targets.
IMG ?= nftpolicy:latest

# Go comes from /usr/local/go; never let the go command fetch another toolchain.
export PATH := /usr/local/go/bin:$(PATH)
export GOTOOLCHAIN := local

# Setting SHELL to bash allows bash commands to be executed by recipes.
# Options are set to exit when a recipe line exits non-zero or a piped command fails.
SHELL = /usr/bin/env bash -o pipefail
.SHELLFLAGS = -ec

# Location to install dependencies to.
LOCALBIN ?= $(shell pwd)/bin

# Tool binaries; versions are pinned in hack/setup.sh.
CONTROLLER_GEN ?= $(LOCALBIN)/controller-gen
KUSTOMIZE ?= $(LOCALBIN)/kustomize
GOLANGCI_LINT ?= $(LOCALBIN)/golangci-lint
GINKGO ?= $(LOCALBIN)/ginkgo
GOTESTSUM ?= $(LOCALBIN)/gotestsum

# CONTAINER_TOOL defines the container tool to be used for building images.
CONTAINER_TOOL ?= docker

.PHONY: all
all: build

##@ General

# The help target prints out all targets with their descriptions organized
# beneath their categories. The categories are represented by '##@' and the
# target descriptions by '##'.

.PHONY: help
help: ## Display this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: $(CONTROLLER_GEN) ## Generate ClusterRole and CustomResourceDefinition objects.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd webhook paths="./..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: $(CONTROLLER_GEN) ## Generate DeepCopy, DeepCopyInto and DeepCopyObject implementations.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./..."

.PHONY: fmt
fmt: ## Run go fmt against code.
	go fmt ./...

.PHONY: fmt-check
fmt-check: ## Fail when a Go file is not gofmt-formatted.
	@unformatted="$$(find . -name '*.go' -not -path './bin/*' -not -path './.git/*' -not -path '*/testdata/*' -print0 \
		| xargs -0 -r gofmt -l)"; \
	if [[ -n "$$unformatted" ]]; then \
		echo "fmt-check: these files need gofmt (run 'make fmt'):"; echo "$$unformatted"; exit 1; \
	fi; \
	echo "fmt-check: ok"

# golden rewrites the golden files of every package whose tests take -update (review the diff
# before committing it).
GOLDEN_PKGS = $(shell grep -rl --include='*_test.go' 'flag[.]Bool."update"' . | xargs -r -n1 dirname | sort -u)

.PHONY: golden
golden: ## Rewrite the golden files (whole tables, transactions of each story step) from the current code.
	go test -count=1 $(GOLDEN_PKGS) -run Golden -update

.PHONY: vet
vet: ## Run go vet against code.
	go vet ./...

# -count=1: the dataplane tests read kernel state, so cached results lie.
GO_TEST_FLAGS ?= -race -count=1 -timeout 45m

# test runs every check even when an earlier one fails and fails at the end
# (hack/test.sh), so one CI run reports vet, gofmt, lint and test results.
.PHONY: test
test: setup envtest-assets ## Run vet, gofmt check, lint and all tests (race detector, envtest).
	@LOCALBIN="$(LOCALBIN)" GO_TEST_FLAGS="$(GO_TEST_FLAGS)" hack/test.sh

.PHONY: test-e2e
test-e2e: setup envtest-assets ## Run the ginkgo conformance suite in test/e2e (needs root for network namespaces).
	@if ! compgen -G 'test/e2e/*_test.go' >/dev/null; then echo "test-e2e: no suite in test/e2e yet"; exit 0; fi; \
	export KUBEBUILDER_ASSETS="$$(hack/build-k8s.sh 2>/dev/null | tail -n1)"; \
	"$(GINKGO)" -r --race --trace --poll-progress-after=120s ./test/e2e

.PHONY: test-proxy-modes
test-proxy-modes: setup envtest-assets build ## Run the scenarios through Services under kube-proxy's iptables and ipvs modes; writes test/e2e/PROXY-MODES.md (needs root).
	KUBEBUILDER_ASSETS="$$(hack/build-k8s.sh | tail -n1)" LOCALBIN="$(LOCALBIN)" hack/test-proxy-modes.sh

.PHONY: test-upstream
test-upstream: setup envtest-assets build ## Run upstream's NetworkPolicy e2e specs (e2e.test) on an ipv4 and a dual-stack lab; writes test/e2e/UPSTREAM.md (needs root).
	"$(LOCALBIN)/nftpolicy-lab" upstream --ip-family ipv4,dual --assets "$$(hack/build-k8s.sh --e2e | tail -n1)" --report test/e2e/UPSTREAM.md

# bench runs every script in hack/bench/ (each writes its report under bench/),
# or hack/bench itself when it is one script; without either it runs every Go
# benchmark once. BENCH_ARGS is passed to each script (e.g. a repeat count).
BENCH_ARGS ?=

.PHONY: bench
bench: ## Run benchmarks (the scripts in hack/bench/ when present, otherwise every Go benchmark).
	@if [[ -d hack/bench ]] && compgen -G 'hack/bench/*.sh' >/dev/null; then \
		for script in hack/bench/*.sh; do echo "bash $$script $(BENCH_ARGS)"; bash "$$script" $(BENCH_ARGS); done; \
	elif [[ -f hack/bench ]]; then \
		bash hack/bench $(BENCH_ARGS); \
	else \
		go test -run '^$$' -bench . -benchmem ./...; \
	fi

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint linter.
	$(GOLANGCI_LINT) run

.PHONY: lint-fix
lint-fix: $(GOLANGCI_LINT) ## Run golangci-lint linter and perform fixes.
	$(GOLANGCI_LINT) run --fix

.PHONY: lint-config
lint-config: $(GOLANGCI_LINT) ## Verify golangci-lint linter configuration.
	$(GOLANGCI_LINT) config verify

##@ Build

.PHONY: build
build: ## Build the agent (bin/nftpolicy), the kubectl plugin (bin/kubectl-nftpolicy) and the lab (bin/nftpolicy-lab).
	go build -o "$(LOCALBIN)/nftpolicy" ./cmd/nftpolicy
	go build -o "$(LOCALBIN)/kubectl-nftpolicy" ./cmd/kubectl-nftpolicy
	go build -o "$(LOCALBIN)/nftpolicy-lab" ./cmd/nftpolicy-lab

.PHONY: run
run: manifests generate fmt vet ## Run the agent from your host against the current kubeconfig (needs root).
	go run ./cmd/nftpolicy

.PHONY: demo
demo: setup envtest-assets build ## Install what the lab needs, build, and run the guestbook demo (needs root).
	KUBEBUILDER_ASSETS="$$(hack/build-k8s.sh | tail -n1)" "$(LOCALBIN)/nftpolicy-lab" demo

# docker-build needs a container engine (docker or podman via CONTAINER_TOOL)
# and a Dockerfile at the repository root; neither is part of the development
# machines, so the target explains itself instead of failing obscurely.
.PHONY: docker-build
docker-build: ## Build the container image with CONTAINER_TOOL (docker by default).
	@if ! command -v "$(CONTAINER_TOOL)" >/dev/null 2>&1; then \
		echo "docker-build: $(CONTAINER_TOOL) not found; set CONTAINER_TOOL=podman or install an engine"; exit 1; \
	fi
	$(CONTAINER_TOOL) build -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the container image.
	$(CONTAINER_TOOL) push $(IMG)

.PHONY: build-installer
build-installer: manifests generate $(KUSTOMIZE) ## Generate dist/install.yaml with CRDs, RBAC and the DaemonSet.
	mkdir -p dist
	cd config/manager && $(KUSTOMIZE) edit set image agent=$(IMG)
	$(KUSTOMIZE) build config/default > dist/install.yaml

.PHONY: clean
clean: ## Remove build outputs (bin/nftpolicy, bin/nftpolicy-lab, dist/, cover.out); pinned tools stay.
	rm -rf "$(LOCALBIN)/nftpolicy" "$(LOCALBIN)/nftpolicy-lab" dist cover.out

.PHONY: clean-tools
clean-tools: ## Remove the pinned tools in bin/ (hack/setup.sh rebuilds them).
	rm -rf "$(LOCALBIN)"

##@ Dependencies

.PHONY: setup
setup: ## Install Debian packages and pinned Go tools (hack/setup.sh).
	@LOCALBIN="$(LOCALBIN)" hack/setup.sh

$(CONTROLLER_GEN) $(KUSTOMIZE) $(GOLANGCI_LINT) $(GINKGO) $(GOTESTSUM):
	@LOCALBIN="$(LOCALBIN)" hack/setup.sh

.PHONY: envtest
envtest: ## Build or reuse kube-apiserver+etcd for envtest; prints an export line for `eval`.
	@echo "export KUBEBUILDER_ASSETS=$$(hack/build-k8s.sh | tail -n1)"

.PHONY: envtest-assets
envtest-assets:
	@hack/build-k8s.sh >/dev/null
