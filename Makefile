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


.PHONY: chart-crds
.PHONY: all build test test-rust test-sdk test-bins venv lint fmt clean help
.PHONY: controlplane harness-bin cluster-up cluster-down cluster-status test-cluster scenario-bins conformance

all: build

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/' | column -t -s $$'\t'

build: ## Build every binary of the workspace
	$(CARGO) build --workspace --bins

test: test-rust test-sdk test-cluster ## Run every test of the workspace (installs what it needs)

test-rust: ## Rust unit and integration tests
	$(CARGO) test --workspace

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

cluster-status: harness-bin ## Show the local cluster's processes and health
	$(HARNESS) cluster status --state-dir $(CLUSTER_STATE_DIR)

# Integration tests that need the local control plane (#[ignore]d in a plain `cargo test`).
CLUSTER_TESTS := cluster scenarios runtime_listener runtime_ingress runtime_portpool webhook_validate webhook_pod runtime_portbinding runtime_portleak

test-cluster: test-bins ## Cluster integration tests on their own cluster, stopped even on failure
	@set -euo pipefail; \
	trap '$(HARNESS) cluster down --state-dir $(TEST_CLUSTER_STATE_DIR)' EXIT; \
	$(HARNESS) cluster up --state-dir $(TEST_CLUSTER_STATE_DIR); \
	CLB_TEST_KUBECONFIG=$(CURDIR)/$(TEST_CLUSTER_STATE_DIR)/kubeconfig \
		$(CARGO) test --workspace $(addprefix --test ,$(CLUSTER_TESTS)) -- --ignored

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
