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
demo: deps build ## Run the end-to-end demo: a real git clone through the proxy (needs root; builds etcd, kube-apiserver and kubectl the first time).
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
demo-node: deps testbin ## Run the real-node suite's main story visibly: the git-clone Job on each of two real nodes through its own node's proxy, and through the central proxy on the other node (needs root).
	KUBEBUILDER_ASSETS=$$(hack/testbin.sh) $(GO) test -count=1 -v -run '^(TestGitCloneJobOnEachNodeThroughItsOwnProxy|TestSplitTopologyGitClone)$$' ./e2e/node/

.PHONY: testbin
testbin: ## Build kube-apiserver, etcd, kubelet, kube-proxy, kube-scheduler, kube-controller-manager, CoreDNS and Tekton Pipelines for the tests into a cache outside the repo.
	@hack/testbin.sh node >/dev/null

.PHONY: lint
lint: $(TOOLS) ## Run go vet and golangci-lint.
	$(GO) vet ./...
	golangci-lint run ./...

.PHONY: verify
verify: lint check-generated check-stages ## Run go vet, golangci-lint, the generated-code check and the test-stage check.

.PHONY: check-stages
check-stages: ## Check that the test stages (unit, integration, e2e, e2e-node) hold every package of ./... exactly once.
	hack/packages.sh check

.PHONY: test
test: testbin ## Run every test with -race in named stages, printing each stage's time: verify, unit, integration, e2e, e2e-node; in CI also a fuzz smoke run. Install the packages first with make deps: a test whose program is missing skips, and fails in CI.
	hack/test.sh

GOTEST := hack/gotest.sh -race -count=1 -timeout=30m

.PHONY: test-unit
test-unit: ## Run the tests of the packages that need no API server (hack/packages.sh unit), with -short and -race.
	pkgs=$$(hack/packages.sh unit) && TEST_LOG=bin/test-unit.log $(GOTEST) -short $$pkgs

.PHONY: test-integration
test-integration: ## Run the tests of the packages outside e2e/ that start a real API server (hack/packages.sh integration), with -race.
	pkgs=$$(hack/packages.sh integration) && KUBEBUILDER_ASSETS=$$(hack/testbin.sh) TEST_LOG=bin/test-integration.log $(GOTEST) $$pkgs

.PHONY: test-e2e
test-e2e: ## Run the end-to-end suite, e2e/ without e2e/node, with -race (needs root).
	pkgs=$$(hack/packages.sh e2e) && KUBEBUILDER_ASSETS=$$(hack/testbin.sh) TEST_LOG=bin/test-e2e.log $(GOTEST) $$pkgs

.PHONY: test-e2e-node
test-e2e-node: testbin ## Run the real-node suite, e2e/node, with -race (needs root).
	pkgs=$$(hack/packages.sh e2e-node) && KUBEBUILDER_ASSETS=$$(hack/testbin.sh) TEST_LOG=bin/test-e2e-node.log $(GOTEST) $$pkgs

FUZZTIME ?= 30s

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s); seeds live in testdata/fuzz.
	FUZZTIME=$(FUZZTIME) hack/fuzz.sh

.PHONY: check-generated
check-generated: $(TOOLS) ## Check that the deepcopy code and deploy/base/crds match kube/api (controller-gen into a temp dir, then diff).
	hack/check-generated.sh

.PHONY: bench
bench: bench-go bench-proxy bench-registry bench-memory bench-scale bench-pods bench-clients ## Run every benchmark: Go benchmarks, the proxy load table, registry push/pull, the binary's memory, the many-node simulation, pod start-up and clients on the real nodes.

.PHONY: bench-go
bench-go: ## Run the Go benchmarks (CSI publish, rendering, matching, leaves, round trips).
	$(GO) test -run '^$$' -bench . -benchmem ./...

.PHONY: bench-proxy
bench-proxy: ## Load the proxy on loopback against direct, nginx, HAProxy and Caddy with wrk (installs wrk, nginx, haproxy and caddy).
	@hack/install-deps.sh bench
	test/bench/proxy.sh

.PHONY: bench-registry
bench-registry: deps tools ## Push and pull a 512 MiB image directly and through both proxy modes.
	test/bench/registry.sh

.PHONY: bench-memory
bench-memory: build testbin ## Measure bin/connectors-node's RSS, heap and goroutines with the DaemonSet's settings: idle, 1,000 Connectors, 100 volumes, 100 / 1,000 / --max-connections connections of load, and per idle keep-alive connection and intercepted tunnel (needs root).
	KUBEBUILDER_ASSETS=$$(hack/testbin.sh) $(GO) run ./test/bench/memory --binary $(BIN)/connectors-node

SCALE_NODES ?= 20

.PHONY: bench-scale
bench-scale: build testbin ## Run SCALE_NODES (20) node processes against one API server with 1,000 Connectors and count API requests at rest, per publish and per proxied request (needs root).
	KUBEBUILDER_ASSETS=$$(hack/testbin.sh) $(GO) run ./test/bench/scale --binary $(BIN)/connectors-node --nodes $(SCALE_NODES)

BENCH_ROUNDS ?= 3

.PHONY: bench-pods
bench-pods: deps testbin ## On the real-node suite's cluster: 30 pods created at once on one node, time until all Running with the connectors volume against without it, BENCH_ROUNDS (3) interleaved rounds (needs root).
	KUBEBUILDER_ASSETS=$$(hack/testbin.sh) CONNECTORS_NODE_BENCH_ROUNDS=$(BENCH_ROUNDS) $(GO) test -tags nodebench -count=1 -v -timeout=60m -run '^TestBenchPodsStartup$$' ./e2e/node/

.PHONY: bench-clients
bench-clients: deps testbin ## On the real-node suite's cluster: git clone of a 200 MiB repository through the reverse proxy and npm install of 200 packages through the intercepting forward proxy, from a pod, each against direct, BENCH_ROUNDS (3) interleaved rounds (needs root).
	KUBEBUILDER_ASSETS=$$(hack/testbin.sh) CONNECTORS_NODE_BENCH_ROUNDS=$(BENCH_ROUNDS) $(GO) test -tags nodebench -count=1 -v -timeout=60m -run '^(TestBenchGitClone|TestBenchNpmInstall)$$' ./e2e/node/
