#!/usr/bin/env bash
# `make kind-test`: the conformance scenarios against a kind cluster running both Helm charts.
#
#   tools/kind-test.sh HELM KIND HARNESS
#
# 1. kind cluster from kind-config/cluster.yaml; kwok inside it with the harness's Stages, then the harness's
#    fake nodes (scenario pods run there, as on the local control plane); the real nodes get the taint
#    clb-testbed/system so only the charts (which tolerate it) run on them.
# 2. Images from controller/Dockerfile and fake-clb/Dockerfile, loaded into kind.
# 3. helm install fake-clb (config kind-config/fake-clb.yaml, node ports 30900/30901 mapped to 127.0.0.1) and
#    clb-controller (2 replicas, Helm-generated webhook certificates), then wait for the leader to be Ready.
# 4. clb-harness run scenarios/conformance --kubeconfig … --no-controller, driving that fake-clb.
# The cluster is deleted at the end unless KIND_KEEP=1. Needs docker (with an engine), kubectl, internet
# access for the kindest/node and kwok images. Untested where this repository is developed (no Docker engine).
set -euo pipefail
cd "$(dirname "$0")/.."

HELM="$1" KIND="$2" HARNESS="$3"
NAME="${KIND_CLUSTER_NAME:-clb-testbed}"
KWOK_VERSION="$(sed -n 's/^KWOK_VERSION=//p' tools/controlplane/versions.env)"
STATE=".work/kind"
KUBECONFIG_FILE="$PWD/$STATE/kubeconfig"
NS=clb-system
mkdir -p "$STATE"

log() { echo "[kind-test] $*" >&2; }
command -v kubectl >/dev/null || { log "kubectl is required on PATH"; exit 1; }
kc() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }

cleanup() {
    if [[ "${KIND_KEEP:-0}" == 1 ]]; then
        log "KIND_KEEP=1: cluster $NAME left running (kubeconfig $KUBECONFIG_FILE)"
    else
        "$KIND" delete cluster --name "$NAME" >&2 || true
    fi
}
trap cleanup EXIT

log "creating kind cluster $NAME"
"$KIND" create cluster --name "$NAME" --config kind-config/cluster.yaml --kubeconfig "$KUBECONFIG_FILE" --wait 120s

log "kwok $KWOK_VERSION in the cluster, with the harness's Stages and fake nodes"
kc apply -f "https://github.com/kubernetes-sigs/kwok/releases/download/$KWOK_VERSION/kwok.yaml"
"$HARNESS" cluster kwok-stages | kc apply -f -
kc -n kube-system rollout status deployment/kwok-controller --timeout=180s
kc -n kube-system rollout status deployment/coredns --timeout=180s
# From now on nothing without the toleration is scheduled on a real node: scenario pods go to kwok nodes.
kc taint nodes --all clb-testbed/system=true:NoSchedule --overwrite
"$HARNESS" cluster fake-nodes --kubeconfig "$KUBECONFIG_FILE" --nodes 3

log "building and loading the images"
docker build -f controller/Dockerfile -t clb-controller:dev .
docker build -f fake-clb/Dockerfile -t fake-clb:dev .
"$KIND" load docker-image --name "$NAME" clb-controller:dev fake-clb:dev

log "installing the charts"
"$HELM" upgrade --install fake-clb charts/fake-clb --kubeconfig "$KUBECONFIG_FILE" -n "$NS" --create-namespace \
    -f kind-config/fake-clb-values.yaml --set-file configFile=kind-config/fake-clb.yaml --wait --timeout 3m
"$HELM" upgrade --install clb-controller charts/clb-controller --kubeconfig "$KUBECONFIG_FILE" -n "$NS" \
    -f kind-config/clb-controller-values.yaml --wait --timeout 3m
# Only the leader is Ready: one ready replica means the webhook Service has its endpoint.
kc -n "$NS" wait deployment/clb-controller --for=jsonpath='{.status.readyReplicas}'=1 --timeout=180s

log "running the conformance scenarios"
CI=true "$HARNESS" run scenarios/conformance \
    --kubeconfig "$KUBECONFIG_FILE" --no-controller \
    --fake-clb-api 127.0.0.1:30900 --fake-clb-admin 127.0.0.1:30901 --fake-clb-config kind-config/fake-clb.yaml \
    --state-dir "$STATE/harness" --report-dir "${KIND_REPORT_DIR:-$STATE/reports}"
