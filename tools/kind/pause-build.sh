#!/usr/bin/env bash
# Builds the pause binary of the offline kind node image (tools/kind/pause) and prints its path.
# Cache: $CLB_CACHE_DIR/kind/pause-<hash of the sources>/pause.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../controlplane/lib.sh"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/pause" && pwd)"
key="$(cat "$src/go.mod" "$src/main.go" | sha256sum | cut -c1-12)"
out="$CLB_CACHE_DIR/kind/pause-$key/pause"
if [[ ! -x "$out" ]]; then
    GO="$(find_go)"
    go_env
    mkdir -p "$(dirname "$out")"
    (cd "$src" && "$GO" build -trimpath -ldflags "-s -w" -o "$out.tmp" .)
    mv "$out.tmp" "$out"
fi
echo "$out"
