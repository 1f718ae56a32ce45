#!/usr/bin/env bash
# Regenerates the wrapper modules (go.mod/go.sum) from versions.env: kubernetes, kubenode, etcd, kwok.
# Run after bumping a version; commit the resulting go.mod/go.sum files.
#
# Kubernetes: k8s.io/kubernetes requires its staging modules at v0.0.0 and maps them to
# ./staging/src/...; a dependent module must replace each with the published v0.X.Y tag.
# The list is read from the tag's own go.mod so new staging modules are picked up.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
GO="$(find_go)"
go_env

module_file() { # module@version -> path of its go.mod in the module cache
    "$GO" mod download -json "$1" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p'
}

fresh_module() { # dir module-path go-directive godebug-lines...
    local dir="$1" path="$2" godirective="$3"
    shift 3
    rm -f "$dir/go.mod" "$dir/go.sum"
    (cd "$dir" && "$GO" mod init "$path" >/dev/null 2>&1 && "$GO" mod edit -go="$godirective")
    local line
    for line in "$@"; do
        (cd "$dir" && "$GO" mod edit -godebug="${line#godebug }")
    done
}

echo "== kubernetes $KUBERNETES_VERSION"
k8s_mod="$(module_file "k8s.io/kubernetes@$KUBERNETES_VERSION")"
k8s_go="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$k8s_mod")"
mapfile -t k8s_godebug < <(grep -E '^godebug [a-z0-9]+=' "$k8s_mod" || true)
staging_version="v0.${KUBERNETES_VERSION#v1.}"
fresh_module "$CONTROLPLANE_DIR/kubernetes" clb-testbed/controlplane/kubernetes "$k8s_go" "${k8s_godebug[@]}"
edits=(-require="k8s.io/kubernetes@$KUBERNETES_VERSION")
while read -r staged; do
    edits+=(-replace="$staged=$staged@$staging_version")
done < <(sed -n 's|^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/.*$|\1|p' "$k8s_mod")
echo "   replacing $((${#edits[@]} - 1)) staging modules with $staging_version"
(
    cd "$CONTROLPLANE_DIR/kubernetes"
    "$GO" mod edit "${edits[@]}"
    for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
        "$GO" get -tool "k8s.io/kubernetes/cmd/$cmd@$KUBERNETES_VERSION"
    done
    "$GO" mod tidy
)

echo "== kubenode (kubelet, kubeadm, kubectl, kube-proxy for the offline kind node image) $KUBERNETES_VERSION"
fresh_module "$CONTROLPLANE_DIR/kubenode" clb-testbed/controlplane/kubenode "$k8s_go" "${k8s_godebug[@]}"
(
    cd "$CONTROLPLANE_DIR/kubenode"
    "$GO" mod edit "${edits[@]}"
    for cmd in kubelet kubeadm kubectl kube-proxy; do
        "$GO" get -tool "k8s.io/kubernetes/cmd/$cmd@$KUBERNETES_VERSION"
    done
    "$GO" mod tidy
)

echo "== etcd $ETCD_VERSION"
etcd_mod="$(module_file "go.etcd.io/etcd/server/v3@$ETCD_VERSION")"
etcd_go="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$etcd_mod")"
fresh_module "$CONTROLPLANE_DIR/etcd" clb-testbed/controlplane/etcd "$etcd_go"
(
    cd "$CONTROLPLANE_DIR/etcd"
    "$GO" mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    "$GO" mod tidy
)

echo "== kwok $KWOK_VERSION"
kwok_mod="$(module_file "sigs.k8s.io/kwok@$KWOK_VERSION")"
kwok_go="$(sed -n 's/^go \([0-9.]*\)$/\1/p' "$kwok_mod")"
fresh_module "$CONTROLPLANE_DIR/kwok" clb-testbed/controlplane/kwok "$kwok_go"
(
    cd "$CONTROLPLANE_DIR/kwok"
    "$GO" get -tool "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
    "$GO" mod tidy
)
echo "done: review and commit tools/controlplane/*/go.mod and go.sum"
