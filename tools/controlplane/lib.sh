# Shared setup for build.sh and update-modules.sh; sourced, not executed.
# Keeps every Go artefact (module cache, build cache, binaries) in the machine-local cache.

CONTROLPLANE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$CONTROLPLANE_DIR/versions.env"

CLB_CACHE_DIR="${CLB_CACHE_DIR:-$HOME/.cache/clb-testbed}"

find_go() {
    if [[ -n "${GO:-}" ]]; then
        echo "$GO"
    elif command -v go >/dev/null 2>&1; then
        command -v go
    elif [[ -x /usr/local/go/bin/go ]]; then
        echo /usr/local/go/bin/go
    else
        echo "controlplane: no Go toolchain found (set GO=/path/to/go or put go on PATH)" >&2
        return 1
    fi
}

go_env() {
    export GOMODCACHE="$CLB_CACHE_DIR/go/mod"
    export GOCACHE="$CLB_CACHE_DIR/go/build"
    # Writable module cache so `rm -rf $CLB_CACHE_DIR` works; no workspace file may leak in.
    export GOFLAGS="-modcacherw"
    export GOWORK=off
    export CGO_ENABLED=0
}
