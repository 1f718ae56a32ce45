#!/usr/bin/env bash
# Builds etcd, kube-apiserver, kube-controller-manager, kube-scheduler and kwok from the Go
# module proxy into the machine-local cache, unless the cache already holds them.
#
#   build.sh                  the control plane (what clb-harness runs): etcd kubernetes kwok
#   build.sh COMPONENT...     only these; `kubenode` = kubelet, kubeadm, kubectl, kube-proxy (the offline
#                             kind node image, tools/kind), `kwok` alone for kind's in-cluster kwok
#
# Output: progress on stderr; on stdout one `NAME=/absolute/path` line per binary
# (ETCD, KUBE_APISERVER, KUBE_CONTROLLER_MANAGER, KUBE_SCHEDULER, KWOK; with `kubenode`: KUBELET,
# KUBEADM, KUBECTL, KUBE_PROXY) plus KUBERNETES_VERSION, which clb-harness reads.
#
# Cache layout ($CLB_CACHE_DIR, default ~/.cache/clb-testbed):
#   controlplane/<component>-<version>-<inputs hash>/bin/...   finished binaries + .complete stamp
#   go/mod, go/build                                           Go module and build caches
# A warm run only hashes a few files and checks the stamps: no Go invocation.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Bump when the build recipe (flags, ldflags) changes so cached binaries are rebuilt.
RECIPE=1

log() { echo "[controlplane] $*" >&2; }

elapsed() { # seconds -> "1m05s"
    printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
}

# Hash of everything that determines a component's binaries.
inputs_hash() { # component-dir
    {
        echo "recipe=$RECIPE"
        cat "$CONTROLPLANE_DIR/versions.env"
        cat "$1"/go.mod "$1"/go.sum
        find "$1" -maxdepth 1 -name '*.go' -print0 | sort -z | xargs -0 -r cat
    } | sha256sum | cut -c1-12
}

# Runs `go build` for one binary, printing a heartbeat every 30 s so a long cold compile does
# not look hung. The heartbeat runs in the foreground so no helper process outlives the script.
go_build() { # module-dir output package ldflags
    local dir="$1" out="$2" pkg="$3" ldflags="$4"
    local name start
    name="$(basename "$out")"
    start=$SECONDS
    log "building $name ($pkg) ..."
    (cd "$dir" && exec "$GO" build -trimpath -ldflags "-s -w $ldflags" -o "$out" "$pkg" >&2) &
    local build_pid=$!
    local next_beat=$((start + 30))
    while kill -0 "$build_pid" 2>/dev/null; do
        sleep 1
        if ((SECONDS >= next_beat)); then
            log "  still building $name, $(elapsed $((SECONDS - start))) elapsed"
            next_beat=$((next_beat + 30))
        fi
    done
    local status=0
    wait "$build_pid" || status=$?
    if [[ $status -ne 0 ]]; then
        log "FAILED building $name after $(elapsed $((SECONDS - start))) (go build exit $status)"
        return "$status"
    fi
    log "built $name in $(elapsed $((SECONDS - start)))"
}

# Ensures one component is in the cache; sets COMPONENT_BIN_DIR.
ensure_component() { # component version build-function
    local component="$1" version="$2" build_fn="$3"
    local dir="$CONTROLPLANE_DIR/$component"
    local key
    key="$component-$version-$(inputs_hash "$dir")"
    COMPONENT_BIN_DIR="$CLB_CACHE_DIR/controlplane/$key/bin"
    if [[ -f "$COMPONENT_BIN_DIR/.complete" ]]; then
        log "$component $version: cached in $COMPONENT_BIN_DIR"
        return 0
    fi
    if [[ -z "${GO:-}" ]]; then
        GO="$(find_go)"
    fi
    go_env
    local staging="$CLB_CACHE_DIR/controlplane/$key.tmp-$$"
    rm -rf "$staging"
    mkdir -p "$staging/bin"
    local start=$SECONDS
    log "$component $version: not cached, building with $("$GO" version | cut -d' ' -f3) into $COMPONENT_BIN_DIR"
    log "downloading $component modules ..."
    (cd "$dir" && "$GO" mod download >&2)
    "$build_fn" "$dir" "$staging/bin" "$version"
    touch "$staging/bin/.complete"
    rm -rf "$CLB_CACHE_DIR/controlplane/$key"
    mv "$staging" "$CLB_CACHE_DIR/controlplane/$key"
    log "$component $version: done in $(elapsed $((SECONDS - start)))"
}

# -X flags that give Kubernetes binaries their version (module builds carry no git metadata).
kubernetes_ldflags() { # version
    local version="$1"
    local minor="${version#v1.}"
    minor="${minor%%.*}"
    local build_date
    build_date="$(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' \
        "$GOMODCACHE/cache/download/k8s.io/kubernetes/@v/$version.info" 2>/dev/null || true)"
    local ldflags=""
    # Without these `--version` and /version report v0.0.0-master (see README).
    for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        ldflags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.gitCommit="
        [[ -n "$build_date" ]] && ldflags+=" -X $pkg.buildDate=$build_date"
    done
    echo "$ldflags"
}

build_kubernetes() { # module-dir out-dir version
    local ldflags cmd
    ldflags="$(kubernetes_ldflags "$3")"
    for cmd in kube-apiserver kube-controller-manager kube-scheduler; do
        go_build "$1" "$2/$cmd" "k8s.io/kubernetes/cmd/$cmd" "$ldflags"
    done
}

# The node binaries live in their own wrapper module so adding them does not change the control
# plane's cache key (kubelet and kubectl pull in modules the control plane does not need).
build_kubenode() { # module-dir out-dir version
    local ldflags cmd
    ldflags="$(kubernetes_ldflags "$3")"
    for cmd in kubelet kubeadm kubectl kube-proxy; do
        go_build "$1" "$2/$cmd" "k8s.io/kubernetes/cmd/$cmd" "$ldflags"
    done
}

build_etcd() { # module-dir out-dir version
    go_build "$1" "$2/etcd" . ""
}

build_kwok() { # module-dir out-dir version
    local kube="${KUBERNETES_VERSION#v}"
    go_build "$1" "$2/kwok" sigs.k8s.io/kwok/cmd/kwok \
        "-X sigs.k8s.io/kwok/pkg/consts.Version=${3#v} -X sigs.k8s.io/kwok/pkg/consts.KubeVersion=$kube"
}

# Components (default: etcd kubernetes kwok, the control plane clb-harness runs): one `NAME=path` line per
# binary of each, then KUBERNETES_VERSION.
main() {
    local components=("$@")
    ((${#components[@]})) || components=(etcd kubernetes kwok)
    mkdir -p "$CLB_CACHE_DIR/controlplane"
    # Serialise concurrent builds (e.g. two checkouts on one machine) on the shared cache.
    if command -v flock >/dev/null 2>&1; then
        exec 9>"$CLB_CACHE_DIR/controlplane/.lock"
        flock 9
    fi
    local start=$SECONDS component bins=() bin
    for component in "${components[@]}"; do
        case "$component" in
            etcd) ensure_component etcd "$ETCD_VERSION" build_etcd; bins=(etcd) ;;
            kubernetes)
                ensure_component kubernetes "$KUBERNETES_VERSION" build_kubernetes
                bins=(kube-apiserver kube-controller-manager kube-scheduler) ;;
            kwok) ensure_component kwok "$KWOK_VERSION" build_kwok; bins=(kwok) ;;
            kubenode)
                ensure_component kubenode "$KUBERNETES_VERSION" build_kubenode
                bins=(kubelet kubeadm kubectl kube-proxy) ;;
            *) log "unknown component $component (etcd, kubernetes, kwok, kubenode)"; return 2 ;;
        esac
        for bin in "${bins[@]}"; do
            local var="${bin^^}"
            echo "${var//-/_}=$COMPONENT_BIN_DIR/$bin"
        done
    done
    log "${components[*]} ready ($(elapsed $((SECONDS - start))))"
    echo "KUBERNETES_VERSION=$KUBERNETES_VERSION"
}

main "$@"
