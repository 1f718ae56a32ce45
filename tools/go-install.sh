#!/usr/bin/env bash
# Installs one Go command at a pinned version from the Go module proxy into the machine-local cache
# and prints its absolute path on stdout. Used for helm and kind (see the Makefile).
#
#   tools/go-install.sh NAME PACKAGE VERSION [LDFLAGS]   e.g. helm helm.sh/helm/v3/cmd/helm v3.21.4
#
# LDFLAGS (optional) is appended to "-s -w", e.g. "-X helm.sh/helm/v3/internal/version.version=v3.21.4" so
# `helm version` names the release (module builds carry no git metadata).
# Cache: $CLB_CACHE_DIR/NAME-VERSION/bin/NAME plus a .complete stamp; the module and build caches are
# the control plane's ($CLB_CACHE_DIR/go/{mod,build}, tools/controlplane/lib.sh). A warm call only checks
# the stamp: no Go invocation. The stamp does not cover LDFLAGS: delete the directory after changing them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/controlplane/lib.sh"

if [[ $# -lt 3 || $# -gt 4 ]]; then
    echo "usage: $0 NAME PACKAGE VERSION [LDFLAGS]" >&2
    exit 2
fi
name="$1" package="$2" version="$3" ldflags="${4:-}"
dir="$CLB_CACHE_DIR/$name-$version"
if [[ -f "$dir/bin/.complete" ]]; then
    echo "$dir/bin/$name"
    exit 0
fi

mkdir -p "$CLB_CACHE_DIR"
# Two checkouts installing at once wait for each other instead of racing on the directory.
if command -v flock >/dev/null 2>&1; then
    exec 9>"$CLB_CACHE_DIR/.$name.lock"
    flock 9
    if [[ -f "$dir/bin/.complete" ]]; then
        echo "$dir/bin/$name"
        exit 0
    fi
fi
GO="$(find_go)"
go_env
staging="$dir.tmp-$$"
rm -rf "$staging"
mkdir -p "$staging/bin"
start=$SECONDS
echo "[$name] not cached: go install $package@$version ($("$GO" version | cut -d' ' -f3)) ..." >&2
GOBIN="$staging/bin" "$GO" install -trimpath -ldflags "-s -w $ldflags" "$package@$version" >&2
touch "$staging/bin/.complete"
rm -rf "$dir"
mv "$staging" "$dir"
echo "[$name] $version built in $((SECONDS - start))s into $dir/bin" >&2
echo "$dir/bin/$name"
