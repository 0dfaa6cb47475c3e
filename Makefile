# connectors-node: CSI node plugin and credential-injecting proxy.

SHELL := /usr/bin/env bash
GO ?= go
BIN := $(CURDIR)/bin
TOOLS := $(BIN)/controller-gen $(BIN)/golangci-lint $(BIN)/crane $(BIN)/helm
export PATH := $(BIN):$(PATH)

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets.
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-15s %s\n", $$1, $$2}'

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)

.PHONY: build
build: ## Build bin/connectors-node.
	$(GO) build -trimpath -ldflags "-X main.version=$(VERSION)" -o $(BIN)/connectors-node ./cmd/connectors-node

IMAGE_TAG ?= dev
PUSH ?=

.PHONY: image
image: ## Build the image tarballs into bin/images without Docker (PUSH=registry/path also pushes them).
	$(GO) run ./build/image --out $(BIN)/images --tag $(IMAGE_TAG) --version $(VERSION) $(if $(PUSH),--push $(PUSH))

CHART_VERSION ?= $(shell hack/chart-version.sh)
CHART_REGISTRY ?=

.PHONY: chart
chart: $(TOOLS) ## Package the Helm chart as bin/charts/connectors-node-<version>.tgz, its version from git describe (CHART_REGISTRY=oci://registry/path also pushes it with helm push).
	helm package charts/connectors-node --version $(CHART_VERSION) --app-version $(VERSION) --destination $(BIN)/charts
	$(if $(CHART_REGISTRY),helm push $(BIN)/charts/connectors-node-$(CHART_VERSION).tgz $(CHART_REGISTRY))

.PHONY: deps
deps: ## Install the Debian packages the demo and tests use (git, curl, ...), when missing.
	@hack/install-deps.sh

.PHONY: demo
demo: deps build testbin ## Run the end-to-end demo: a real git clone through the proxy (needs root).
	KUBEBUILDER_ASSETS=$$(hack/testbin.sh) $(GO) run ./test/demo --binary $(BIN)/connectors-node

$(TOOLS) &: hack/tools/go.mod hack/tools/go.sum
	cd hack/tools && GOBIN=$(BIN) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen github.com/golangci/golangci-lint/v2/cmd/golangci-lint github.com/google/go-containerregistry/cmd/crane helm.sh/helm/v3/cmd/helm

.PHONY: tools
tools: $(TOOLS) ## Build the pinned developer tools into bin/.

.PHONY: generate
generate: $(TOOLS) ## Regenerate deepcopy code and the CRDs in deploy/base/crds and the chart.
	controller-gen object paths=./kube/api/...
	controller-gen crd:crdVersions=v1 paths=./kube/api/... output:crd:artifacts:config=deploy/base/crds
	cp deploy/base/crds/*.yaml charts/connectors-node/crds/

.PHONY: demo-node
demo-node: deps testbin ## Run the real-node suite's main story visibly: the git-clone Job on a real kubelet, in both topologies (needs root).
	KUBEBUILDER_ASSETS=$$(hack/testbin.sh) $(GO) test -count=1 -v -run '^(TestGitCloneJob|TestSplitTopologyGitClone)$$' ./e2e/node/

.PHONY: testbin
testbin: ## Build kube-apiserver, etcd, kubelet, kube-scheduler and kube-controller-manager for the tests into a cache outside the repo.
	@hack/testbin.sh node >/dev/null

.PHONY: lint
lint: $(TOOLS) ## Run go vet and golangci-lint.
	$(GO) vet ./...
	golangci-lint run ./...

.PHONY: verify
verify: lint check-generated ## Run go vet, golangci-lint and the generated-code check.

.PHONY: test
test: verify testbin ## Run vet, lint and every test (with -race) against a real API server; in CI also a fuzz smoke run. Install the packages first with make deps: a test whose program is missing skips, and fails in CI.
	KUBEBUILDER_ASSETS=$$(hack/testbin.sh) hack/gotest.sh -race -count=1 -timeout=30m ./...
	@if [ "$${CI:-}" = true ]; then $(MAKE) fuzz FUZZTIME=3s; fi

.PHONY: test-unit
test-unit: ## Run the tests that need no API server and no root (go test -short), with -race.
	hack/gotest.sh -race -count=1 -short ./...

FUZZTIME ?= 30s

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s); seeds live in testdata/fuzz.
	FUZZTIME=$(FUZZTIME) hack/fuzz.sh

.PHONY: check-generated
check-generated: $(TOOLS) ## Check that the deepcopy code and deploy/base/crds match kube/api (controller-gen into a temp dir, then diff).
	hack/check-generated.sh

.PHONY: bench
bench: bench-go bench-proxy bench-registry bench-memory bench-scale ## Run every benchmark: Go benchmarks, the proxy load table, registry push/pull, the binary's memory, the many-node simulation.

.PHONY: bench-go
bench-go: ## Run the Go benchmarks (CSI publish, rendering, matching, leaves, round trips).
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: bench-proxy
bench-proxy: ## Load the proxy on loopback against direct and nginx with wrk (installs nginx and wrk).
	@hack/install-deps.sh bench
	test/bench/proxy.sh

.PHONY: bench-registry
bench-registry: deps tools ## Push and pull a 512 MiB image directly and through both proxy modes.
	test/bench/registry.sh

.PHONY: bench-memory
bench-memory: build testbin ## Measure bin/connectors-node's RSS, heap and goroutines with the DaemonSet's settings: idle, 1,000 Connectors, 100 volumes, 100 / 1,000 / --max-connections connections (needs root).
	KUBEBUILDER_ASSETS=$$(hack/testbin.sh) $(GO) run ./test/bench/memory --binary $(BIN)/connectors-node

SCALE_NODES ?= 20

.PHONY: bench-scale
bench-scale: build testbin ## Run SCALE_NODES (20) node processes against one API server with 1,000 Connectors and count API requests at rest, per publish and per proxied request (needs root).
	KUBEBUILDER_ASSETS=$$(hack/testbin.sh) $(GO) run ./test/bench/scale --binary $(BIN)/connectors-node --nodes $(SCALE_NODES)
