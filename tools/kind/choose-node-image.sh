#!/usr/bin/env bash
# Decides which kind node image `make kind-test` uses and prints `stock IMAGE` or `offline`.
#
# KIND_NODE_IMAGE set: `stock $KIND_NODE_IMAGE` (used as given). KIND_OFFLINE=0: stock; 1: offline;
# auto (default): stock when the image pinned in kind-config/cluster.yaml is present in the engine or can be
# pulled within KIND_PULL_TIMEOUT seconds (600), offline otherwise. Only `docker image inspect` and
# `docker pull` are used, so the decision needs nothing offline-only.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/kind/lib.sh
docker_env

stock="$(sed -n 's/^[[:space:]]*image:[[:space:]]*\(kindest\/node[^[:space:]]*\).*/\1/p' kind-config/cluster.yaml | head -1)"
if [[ -n "${KIND_NODE_IMAGE:-}" ]]; then
    echo "stock $KIND_NODE_IMAGE"
    exit 0
fi
case "${KIND_OFFLINE:-auto}" in
    0) echo "stock $stock" ;;
    1) echo offline ;;
    auto)
        if docker image inspect "$stock" >/dev/null 2>&1; then
            echo "stock $stock"
        elif log "pulling $stock" && with_heartbeat "pulling $stock" \
            timeout "${KIND_PULL_TIMEOUT:-600}" docker pull -q "$stock" >/dev/null; then
            echo "stock $stock"
        else
            log "$stock cannot be pulled: the offline node image will be used"
            echo offline
        fi ;;
    *) log "KIND_OFFLINE must be auto, 0 or 1"; exit 2 ;;
esac
