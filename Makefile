# Entry points. `make test` is the README's test command and what CI's .ci/run calls.
# Machine-local caches (never committed) live under $(CLB_CACHE_DIR).

SHELL := /bin/bash
CARGO ?= cargo
PYTHON ?= python3
VENV := .venv
CLB_CACHE_DIR ?= $(HOME)/.cache/clb-testbed
export CLB_CACHE_DIR
# Tests talk to 127.0.0.1 only; never through a proxy.
export NO_PROXY := 127.0.0.1,localhost
export no_proxy := 127.0.0.1,localhost

# Where cargo puts binaries; CI points CARGO_TARGET_DIR at a machine cache so a fresh clone builds fast.
TARGET_DIR := $(or $(CARGO_TARGET_DIR),$(CURDIR)/target)

# Pinned versions of the official Tencent Cloud Python SDK, the referee for fake-clb.
TENCENTCLOUD_SDK_COMMON_VERSION := 3.1.195
TENCENTCLOUD_SDK_CLB_VERSION := 3.1.194


.PHONY: chart-crds helm kind test-charts kind-test test-kind-if-docker docker-engine kind-node-image kind-images
.PHONY: all build test test-rust test-sdk test-bins venv lint fmt clean help fuzz
.PHONY: controlplane harness-bin cluster-up cluster-down cluster-status test-cluster scenario-bins conformance faults perf perf-quick perf-large perf-bins

all: build

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

build: ## Build every binary of the workspace
	$(CARGO) build --workspace --bins

test: test-rust test-sdk test-charts test-cluster test-kind-if-docker ## Run every test of the workspace (installs what it needs)

test-rust: ## Rust unit and integration tests
	$(CARGO) test --workspace

# Property-based fuzzing (proptest, stable toolchain) of the flattened-parameter parser, the TC3 / v1 signature
# parsers and every action's decoding through fake-clb's HTTP app. `make test` runs the same properties with 64
# cases each; this runs FUZZ_CASES each, stopped after FUZZ_SECONDS at the latest.
FUZZ_CASES ?= 20000
FUZZ_SECONDS ?= 300
fuzz: ## Longer fuzzing of fake-clb's parsers and HTTP app (bounded by FUZZ_SECONDS)
	PROPTEST_CASES=$(FUZZ_CASES) timeout $(FUZZ_SECONDS) $(CARGO) test -p clb-api -p fake-clb --test fuzz

$(VENV)/.installed: Makefile fake-clb/tests/sdk/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r fake-clb/tests/sdk/requirements.txt
	touch $@

venv: $(VENV)/.installed ## Python venv with the official Tencent Cloud SDK and pytest

test-sdk: venv test-bins ## fake-clb driven by the official Tencent Cloud Python SDK
	FAKE_CLB_BIN=$(TARGET_DIR)/debug/fake-clb $(VENV)/bin/python -m pytest -q fake-clb/tests/sdk

# Tests and the binaries they start are built by one `cargo test --workspace` invocation, so cargo unifies
# features once and never rebuilds dependencies between steps.
test-bins:
	$(CARGO) test --workspace --no-run

# Local Kubernetes control plane on 127.0.0.1 (etcd, kube-apiserver, KCM, scheduler, kwok);
# see harness/README.md "Local control plane". Binaries are cached in $(CLB_CACHE_DIR).
CLUSTER_STATE_DIR ?= .work/cluster
CLUSTER_NODES ?= 3
TEST_CLUSTER_STATE_DIR := .work/test-cluster
HARNESS := $(TARGET_DIR)/debug/clb-harness

controlplane: ## Build the control-plane binaries only (cached; cold build takes ~15 min)
	tools/controlplane/build.sh

harness-bin:
	$(CARGO) build -p clb-harness --bin clb-harness

cluster-up: harness-bin ## Start the local cluster in $(CLUSTER_STATE_DIR) (idempotent)
	$(HARNESS) cluster up --state-dir $(CLUSTER_STATE_DIR) --nodes $(CLUSTER_NODES)

cluster-down: ## Stop every process of the local cluster (uses the built harness; builds it only if absent)
	@[ -x $(HARNESS) ] || $(CARGO) build -p clb-harness --bin clb-harness
	$(HARNESS) cluster down --state-dir $(CLUSTER_STATE_DIR)

# Binaries `clb-harness run` starts (it finds them next to itself).
scenario-bins:
	$(CARGO) build -p fake-clb -p clb-controller --bins

conformance: harness-bin scenario-bins ## Run scenarios/conformance on the local cluster; prints the report dir
	$(HARNESS) run scenarios/conformance --cluster-state-dir $(CLUSTER_STATE_DIR)

faults: harness-bin scenario-bins ## Run scenarios/faults on the local cluster (~2 min)
	$(HARNESS) run scenarios/faults --cluster-state-dir $(CLUSTER_STATE_DIR)

# Benchmarks: release builds of the harness, fake-clb and the controller; each scenario runs the same
# Deployment without ports (baseline) and with ports on one cluster. Reports (perf.md, report.html) go
# to reports/<UTC timestamp>; `perf` and `perf-large` also write a dated results pair into
# $(PERF_RESULTS_DIR) for committing, compared with the newest earlier one.
PERF_HARNESS := $(TARGET_DIR)/release/clb-harness
PERF_RESULTS_DIR ?= benches/results
# 5,000 pods need 5 fake nodes of 1,000 pods; a running cluster gets the missing ones.
PERF_LARGE_NODES := 6

perf-bins:
	$(CARGO) build --release -p fake-clb -p clb-controller -p clb-harness --bins

perf: perf-bins ## Benchmark 100 and 1,000 pods, baseline vs ports, release build (~6 min); not in `make test`
	$(PERF_HARNESS) run scenarios/perf --cluster-state-dir $(CLUSTER_STATE_DIR) --results-dir $(PERF_RESULTS_DIR)

perf-large: perf-bins ## `perf` plus 5,000 pods on a 20-LB pool (~20 min)
	$(PERF_HARNESS) run scenarios/perf scenarios/perf/large --cluster-state-dir $(CLUSTER_STATE_DIR) \
		--nodes $(PERF_LARGE_NODES) --results-dir $(PERF_RESULTS_DIR)

perf-quick: perf-bins ## Benchmark 100 pods only, no results file (~1 min)
	$(PERF_HARNESS) run scenarios/perf/10-pods-100.yaml --cluster-state-dir $(CLUSTER_STATE_DIR)

cluster-status: harness-bin ## Show the local cluster's processes and health
	$(HARNESS) cluster status --state-dir $(CLUSTER_STATE_DIR)

# Integration tests that need the local control plane (#[ignore]d in a plain `cargo test`).
CLUSTER_TESTS := cluster scenarios charts runtime_listener runtime_ingress runtime_portpool webhook_validate webhook_pod runtime_portbinding runtime_portleak runtime_leader webhook_reservations
# Scenario suites `make test` gates on, run on the test cluster with the controller as the chart's ServiceAccount
# (its RBAC rendered by test-charts), so a rule the controller needs and the chart lacks fails the run.
GATE_SCENARIOS := scenarios/conformance scenarios/faults
GATE_REPORT_DIR := reports/make-test

test-cluster: test-bins test-charts ## Cluster integration tests on their own cluster, stopped even on failure
	@set -euo pipefail; \
	trap '$(HARNESS) cluster down --state-dir $(TEST_CLUSTER_STATE_DIR)' EXIT; \
	$(HARNESS) cluster up --state-dir $(TEST_CLUSTER_STATE_DIR); \
	CLB_TEST_KUBECONFIG=$(CURDIR)/$(TEST_CLUSTER_STATE_DIR)/kubeconfig \
	CLB_TEST_CHARTS_DIR=$(CURDIR)/$(CHARTS_OUT) \
	CLB_TEST_CHART_RBAC=$(CURDIR)/$(CHARTS_OUT)/rbac-as-harness.yaml \
		$(CARGO) test --workspace $(addprefix --test ,$(CLUSTER_TESTS)) -- --ignored; \
	$(HARNESS) run $(GATE_SCENARIOS) --kubeconfig $(CURDIR)/$(TEST_CLUSTER_STATE_DIR)/kubeconfig \
		--state-dir .work/test-harness --report-dir $(GATE_REPORT_DIR) \
		--controller-service-account clb-system/clb-controller \
		--controller-rbac $(CURDIR)/$(CHARTS_OUT)/rbac-as-harness.yaml

# Helm and kind, built from the Go module proxy into $(CLB_CACHE_DIR) by tools/go-install.sh (module and build
# caches shared with the control plane); a warm call only checks a stamp. The ldflags give `helm version` its
# release and `helm template`/`lint` the Kubernetes minor of helm's client-go (v0.36) as their default.
HELM_VERSION := v3.21.4
KIND_VERSION := v0.30.0
HELM := $(CLB_CACHE_DIR)/helm-$(HELM_VERSION)/bin/helm
KIND := $(CLB_CACHE_DIR)/kind-$(KIND_VERSION)/bin/kind
HELM_LDFLAGS := -X helm.sh/helm/v3/internal/version.version=$(HELM_VERSION) \
	-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=36 \
	-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=36
# Charts are rendered for the local control plane's Kubernetes version.
KUBE_VERSION := $(shell sed -n 's/^KUBERNETES_VERSION=//p' tools/controlplane/versions.env)
CHARTS_OUT := .work/charts
# Values files of charts/<chart>/ci/ that test-charts lints and renders (charts/README.md says what each covers).
CONTROLLER_CHART_VALUES := default nondefault controller-certs certmanager
FAKE_CLB_CHART_VALUES := default nondefault

$(HELM):
	tools/go-install.sh helm helm.sh/helm/v3/cmd/helm $(HELM_VERSION) "$(HELM_LDFLAGS)" >/dev/null

$(KIND):
	tools/go-install.sh kind sigs.k8s.io/kind $(KIND_VERSION) >/dev/null

helm: $(HELM) ## Build helm into the machine cache (cached; cold ~75 s)

kind: $(KIND) ## Build kind into the machine cache (cached)

# helm lint --strict and helm template for both charts with each ci/ values file and the kind values; the
# renders go to $(CHARTS_OUT) for the cluster tests (charts.rs applies them, scenarios.rs runs the controller
# with rbac-as-harness.yaml: the chart's RBAC, webhook registration included, for the harness's config name).
test-charts: $(HELM) ## helm lint + template of both charts, default and non-default values
	@set -euo pipefail; rm -rf $(CHARTS_OUT); mkdir -p $(CHARTS_OUT); \
	kv="--kube-version $(KUBE_VERSION)"; \
	for v in $(CONTROLLER_CHART_VALUES); do \
		f=charts/clb-controller/ci/$$v-values.yaml; \
		$(HELM) lint --strict --quiet charts/clb-controller -f $$f $$kv; \
		$(HELM) template clb-controller charts/clb-controller -n clb-system --include-crds $$kv -f $$f \
			> $(CHARTS_OUT)/clb-controller-$$v.yaml; \
	done; \
	for v in $(FAKE_CLB_CHART_VALUES); do \
		f=charts/fake-clb/ci/$$v-values.yaml; \
		$(HELM) lint --strict --quiet charts/fake-clb -f $$f $$kv; \
		$(HELM) template fake-clb charts/fake-clb -n clb-system $$kv -f $$f > $(CHARTS_OUT)/fake-clb-$$v.yaml; \
	done; \
	$(HELM) lint --strict --quiet charts/clb-controller -f kind-config/clb-controller-values.yaml $$kv; \
	$(HELM) lint --strict --quiet charts/fake-clb -f kind-config/fake-clb-values.yaml \
		--set-file configFile=kind-config/fake-clb.yaml $$kv; \
	$(HELM) template fake-clb charts/fake-clb -n clb-system $$kv -f kind-config/fake-clb-values.yaml \
		--set-file configFile=kind-config/fake-clb.yaml > $(CHARTS_OUT)/fake-clb-kind.yaml; \
	$(HELM) template clb-controller charts/clb-controller -n clb-system $$kv \
		-f charts/clb-controller/ci/default-values.yaml --show-only templates/rbac.yaml \
		--set webhook.certs.mode=controller,replicaCount=1,webhook.configName=clb-harness \
		> $(CHARTS_OUT)/rbac-as-harness.yaml; \
	if $(HELM) template clb-controller charts/clb-controller $$kv > /dev/null 2> $(CHARTS_OUT)/no-region.err; then \
		echo "test-charts: the chart rendered without tencentcloud.region"; exit 1; fi; \
	grep -q "tencentcloud.region is required" $(CHARTS_OUT)/no-region.err || { cat $(CHARTS_OUT)/no-region.err; exit 1; }; \
	if $(HELM) template clb-controller charts/clb-controller $$kv -f charts/clb-controller/ci/default-values.yaml \
		--set replicaCount=2,webhook.certs.mode=controller > /dev/null 2> $(CHARTS_OUT)/two-registrars.err; then \
		echo "test-charts: mode controller rendered with 2 replicas"; exit 1; fi; \
	grep -q "needs replicaCount 1" $(CHARTS_OUT)/two-registrars.err || { cat $(CHARTS_OUT)/two-registrars.err; exit 1; }; \
	echo "test-charts: $$(ls $(CHARTS_OUT)/*.yaml | wc -l) renders in $(CHARTS_OUT), lint clean, bad values refused"

# kind: both charts in a kind cluster and the conformance scenarios against them (tools/kind-test.sh; the
# variables it reads are listed in tools/README.md). Needs a Docker engine (`make docker-engine` starts one) and
# kubectl. The node image is the stock kindest/node where it can be pulled, else built offline
# (tools/kind/node-image.sh). KIND_KEEP=1 leaves the cluster running.
# The engine `make docker-engine` starts listens on its own socket; use it when DOCKER_HOST is unset and the
# default engine does not answer (tools/kind/lib.sh does the same for the scripts).
CLB_DOCKER_SOCK := $(or $(CLB_DOCKER_DIR),$(CLB_CACHE_DIR)/docker)/docker.sock
ifeq ($(origin DOCKER_HOST),undefined)
ifneq ($(wildcard $(CLB_DOCKER_SOCK)),)
ifneq ($(shell docker info > /dev/null 2>&1 && echo up),up)
export DOCKER_HOST := unix://$(CLB_DOCKER_SOCK)
endif
endif
endif
export KIND_VERSION
KIND_REPORT_DIR ?= reports/kind-test
export KIND_REPORT_DIR

docker-engine: ## Start a Docker engine if none answers (installs Debian docker.io if absent; idempotent)
	tools/docker-engine.sh

# Inside `make test` the harness comes from test-bins (one cargo invocation, unified features); a separate
# `cargo build -p clb-harness` there would rebuild dependencies with other features.
kind-test: $(HELM) $(KIND) $(if $(KIND_HARNESS_BUILT),,harness-bin) ## Conformance scenarios on kind with both charts from their images (needs Docker)
	tools/kind-test.sh $(HELM) $(KIND) $(HARNESS)

kind-node-image: ## Build the offline kind node image only (cached; prints its name)
	tools/kind/node-image.sh

kind-images: ## Build the clb-controller and fake-clb images (KIND_APP_IMAGES=dockerfile|host, default dockerfile)
	tools/kind/app-images.sh $(or $(KIND_APP_IMAGES),dockerfile) dev

# `make test` adds the kind run only where a Docker engine answers (ours from `make docker-engine`, or any
# other); elsewhere it says so.
test-kind-if-docker: test-bins
	@if command -v docker > /dev/null && tools/docker-engine.sh --check; then \
		$(MAKE) kind-test KIND_HARNESS_BUILT=1; \
	else \
		echo "kind-test: skipped (no Docker engine answers; make docker-engine starts one); the local control plane ran the conformance run"; \
	fi

chart-crds: ## Regenerate the chart's CRD copy from the controller (a test fails when they drift)
	$(CARGO) run -q -p clb-controller -- crds --output charts/clb-controller/crds/crds.yaml

lint: ## rustfmt and clippy, warnings are errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt: ## Format the code
	$(CARGO) fmt --all

clean: ## Remove build outputs of this checkout (machine caches stay)
	$(CARGO) clean
	rm -rf $(VENV)
