#!/usr/bin/env bash
# `make kind-test`: the conformance scenarios against a kind cluster running both Helm charts, the controller
# from its image as the chart deploys it.
#
#   tools/kind-test.sh HELM KIND HARNESS
#
# 1. Node image: the stock kindest/node pinned in kind-config/cluster.yaml when it is present or can be
#    pulled, else the offline image from tools/kind/node-image.sh (KIND_OFFLINE=auto|0|1, KIND_NODE_IMAGE).
# 2. kind cluster from kind-config/cluster.yaml (control plane + worker).
# 3. Images: clb-controller and fake-clb (tools/kind/app-images.sh: the Dockerfiles with a registry, binaries
#    built on the host without one; KIND_APP_IMAGES), kwok from the binary tools/controlplane builds; all
#    loaded with `kind load docker-image`.
# 4. kwok in the cluster from the kwok Go module's kustomize sources with that image, the harness's Stages and
#    fake nodes; the real nodes get the taint clb-testbed/system so only the charts (which tolerate it) run
#    there and scenario pods land on the fake nodes, as on the local control plane.
# 5. helm install fake-clb (kind-config/fake-clb.yaml, node ports 30900/30901 mapped to 127.0.0.1) and
#    clb-controller (2 replicas, leader election, Helm-generated webhook certificates); wait for the leader.
# 6. clb-harness run --no-controller against that fake-clb, on $KIND_SCENARIOS (default scenarios/conformance).
#    Scenarios with `controller:` steps (stop/kill/restart the controller process) cannot run against the
#    chart's Deployment: they are skipped, named with the reason on the log and in
#    $KIND_REPORT_DIR/kind-skipped.txt.
# The cluster is deleted at the end unless KIND_KEEP=1. Prints the time of each phase.
set -euo pipefail
cd "$(dirname "$0")/.."
source tools/kind/lib.sh
docker_env

HELM="$1" KIND="$2" HARNESS="$3"
NAME="${KIND_CLUSTER_NAME:-clb-testbed}"
KWOK_VERSION="$(sed -n 's/^KWOK_VERSION=//p' tools/controlplane/versions.env)"
STATE=".work/kind"
KUBECONFIG_FILE="$PWD/$STATE/kubeconfig"
REPORT_DIR="${KIND_REPORT_DIR:-reports/kind-test}"
NS=clb-system
mkdir -p "$STATE" "$REPORT_DIR"

command -v kubectl >/dev/null || { log "kubectl is required on PATH"; exit 1; }
docker_answers || { log "no Docker engine answers (make docker-engine starts one)"; exit 1; }
kc() { kubectl --kubeconfig "$KUBECONFIG_FILE" "$@"; }

timings=()
phase_start=$SECONDS
phase_done() { # name
    timings+=("$1 $((SECONDS - phase_start))s")
    log "$1 done in $(elapsed $((SECONDS - phase_start)))"
    phase_start=$SECONDS
}

cleanup() {
    local status=$?
    if [[ "${KIND_KEEP:-0}" == 1 ]]; then
        log "KIND_KEEP=1: cluster $NAME left running (kubeconfig $KUBECONFIG_FILE)"
    elif [[ -n "${cluster_created:-}" ]]; then
        log "deleting cluster $NAME"
        "$KIND" delete cluster --name "$NAME" >&2 || true
    fi
    ((${#timings[@]})) && log "phase times: ${timings[*]}"
    exit "$status"
}
trap cleanup EXIT

# --- 1. node image -------------------------------------------------------------------------------------
choice_line="$(tools/kind/choose-node-image.sh)"
read -r choice chosen_image <<<"$choice_line"
image_args=()
if [[ "$choice" == offline ]]; then
    offline=1
    node_image="$(with_heartbeat "building the offline node image" tools/kind/node-image.sh)"
    image_args=(--image "$node_image")
else
    offline=0
    log "node image $chosen_image"
    # The config pins the stock image; KIND_NODE_IMAGE replaces it on every node.
    [[ -n "${KIND_NODE_IMAGE:-}" ]] && image_args=(--image "$chosen_image")
fi
phase_done "node-image"

# --- 2. cluster ----------------------------------------------------------------------------------------
if "$KIND" get clusters 2>/dev/null | grep -qx "$NAME"; then
    log "deleting the leftover cluster $NAME"
    "$KIND" delete cluster --name "$NAME" >&2
fi
log "creating kind cluster $NAME"
cluster_created=1
with_heartbeat "creating the cluster" "$KIND" create cluster --name "$NAME" --config kind-config/cluster.yaml \
    "${image_args[@]}" --kubeconfig "$KUBECONFIG_FILE" --wait 180s
phase_done "cluster-create"

# --- 3. images -----------------------------------------------------------------------------------------
app_mode="${KIND_APP_IMAGES:-$([[ "$offline" == 1 ]] && echo host || echo dockerfile)}"
with_heartbeat "building the clb-controller and fake-clb images" tools/kind/app-images.sh "$app_mode" dev
KWOK_BIN="$(tools/controlplane/build.sh kwok | sed -n 's/^KWOK=//p')"
kwok_image="localhost/clb-testbed/kwok:$KWOK_VERSION"
kwok_ctx="$(mktemp -d)"
cp "$KWOK_BIN" "$kwok_ctx/kwok"
printf 'FROM scratch\nCOPY kwok /usr/local/bin/kwok\nENTRYPOINT ["/usr/local/bin/kwok"]\n' > "$kwok_ctx/Dockerfile"
docker build -q -t "$kwok_image" "$kwok_ctx" >/dev/null
rm -rf "$kwok_ctx"
with_heartbeat "loading the images into kind" \
    "$KIND" load docker-image --name "$NAME" clb-controller:dev fake-clb:dev "$kwok_image" >&2
phase_done "images"

# --- 4. kwok and fake nodes ----------------------------------------------------------------------------
log "kwok $KWOK_VERSION in the cluster (kwok module's kustomize sources, image $kwok_image)"
source tools/controlplane/lib.sh
kwok_dir="$(GO="$(find_go)" && go_env && cd tools/controlplane/kwok && "$GO" mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
overlay="$STATE/kwok-kustomize"
rm -rf "$overlay"
mkdir -p "$overlay"
cp -r "$kwok_dir/kustomize/." "$overlay/"
chmod -R u+w "$overlay"
mkdir -p "$overlay/clb"
cat > "$overlay/clb/kustomization.yaml" <<KUSTOMIZE
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [../kwok]
images:
  - {name: registry.k8s.io/kwok/kwok, newName: ${kwok_image%:*}, newTag: $KWOK_VERSION}
KUSTOMIZE
kc apply --server-side -k "$overlay/clb" >/dev/null
"$HARNESS" cluster kwok-stages | kc apply -f - >/dev/null
kc -n kube-system rollout status deployment/kwok-controller --timeout=180s
kc -n kube-system rollout status deployment/coredns --timeout=180s
# From now on nothing without the toleration is scheduled on a real node: scenario pods go to kwok nodes. The
# label lets the charts select the real nodes (kwok would happily "run" them on a fake one, where nothing runs).
kc taint nodes --all clb-testbed/system=true:NoSchedule --overwrite >/dev/null
kc label nodes --all clb-testbed/system=true --overwrite >/dev/null
"$HARNESS" cluster fake-nodes --kubeconfig "$KUBECONFIG_FILE" --nodes 3
phase_done "kwok"

# --- 5. charts -----------------------------------------------------------------------------------------
log "installing the charts"
with_heartbeat "installing fake-clb" "$HELM" upgrade --install fake-clb charts/fake-clb --kubeconfig "$KUBECONFIG_FILE" \
    -n "$NS" --create-namespace -f kind-config/fake-clb-values.yaml --set-file configFile=kind-config/fake-clb.yaml \
    --wait --timeout 3m >/dev/null
with_heartbeat "installing clb-controller" "$HELM" upgrade --install clb-controller charts/clb-controller \
    --kubeconfig "$KUBECONFIG_FILE" -n "$NS" -f kind-config/clb-controller-values.yaml --wait --timeout 3m >/dev/null
# Only the leader is Ready: one ready replica means the webhook Service has its endpoint.
kc -n "$NS" wait deployment/clb-controller --for=jsonpath='{.status.readyReplicas}'=1 --timeout=180s
kc -n "$NS" get pods -o wide >&2
phase_done "charts"

# --- 6. scenarios --------------------------------------------------------------------------------------
scenarios=()
: > "$REPORT_DIR/kind-skipped.txt"
for path in ${KIND_SCENARIOS:-scenarios/conformance}; do
    while IFS= read -r file; do
        if grep -qE '^[[:space:]]*-[[:space:]]*controller:' "$file"; then
            reason="stops, kills or restarts the controller process; on kind the controller is the chart's Deployment"
            log "SKIPPED $file: $reason"
            echo "$file: $reason" >> "$REPORT_DIR/kind-skipped.txt"
        else
            scenarios+=("$file")
        fi
    done < <(if [[ -d "$path" ]]; then find "$path" -maxdepth 1 -name '*.yaml' | sort; else echo "$path"; fi)
done
log "running ${#scenarios[@]} scenarios ($(wc -l < "$REPORT_DIR/kind-skipped.txt") skipped)"
CI=true "$HARNESS" run "${scenarios[@]}" \
    --kubeconfig "$KUBECONFIG_FILE" --no-controller \
    --fake-clb-api 127.0.0.1:30900 --fake-clb-admin 127.0.0.1:30901 --fake-clb-config kind-config/fake-clb.yaml \
    --state-dir "$STATE/harness" --report-dir "$REPORT_DIR"
phase_done "scenarios"
