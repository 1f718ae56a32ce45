#!/usr/bin/env bash
# Builds a Debian root filesystem tarball with mmdebstrap from this machine's apt sources (no container
# registry involved) and prints its path. Cached by content.
#
#   tools/kind/rootfs.sh NAME VARIANT [--mmdebstrap-option...] PACKAGE...
#   e.g. rootfs.sh tools minbase iptables iproute2
#
# Sources: $KIND_APT_SOURCES (default: /etc/apt/sources.list.d/debian.sources, else /etc/apt/sources.list),
# suite $KIND_DEBIAN_SUITE (default: this machine's VERSION_CODENAME). Cache:
# $CLB_CACHE_DIR/kind/rootfs/NAME-<hash>.tar, hash of the variant, packages, sources and suite.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

name="$1" variant="$2"
shift 2
options=()
while [[ $# -gt 0 && "$1" == --* ]]; do
    options+=("$1")
    shift
done
sources="${KIND_APT_SOURCES:-}"
if [[ -z "$sources" ]]; then
    for f in /etc/apt/sources.list.d/debian.sources /etc/apt/sources.list; do
        [[ -s "$f" ]] && { sources="$f"; break; }
    done
fi
[[ -n "$sources" ]] || { log "no apt sources found: set KIND_APT_SOURCES"; exit 1; }
suite="${KIND_DEBIAN_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")}"
key="$({ echo "recipe=1 variant=$variant suite=$suite"; printf '%s\n' "$@" | sort; ((${#options[@]})) && printf "%s\n" "${options[@]}"; cat "$sources"; } | sha256sum | cut -c1-12)"
dir="$CLB_CACHE_DIR/kind/rootfs"
out="$dir/$name-$key.tar"
if [[ -f "$out" ]]; then
    echo "$out"
    exit 0
fi
if ! command -v mmdebstrap >/dev/null; then
    [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null ||
        { log "mmdebstrap is required (Debian: apt-get install mmdebstrap)"; exit 1; }
    log "installing mmdebstrap with apt-get"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends mmdebstrap >&2
fi
mkdir -p "$dir"
start=$SECONDS
log "rootfs $name not cached: mmdebstrap --variant=$variant $suite ($# packages) from $sources ..."
include="$(IFS=,; echo "$*")"
mmdebstrap --quiet --format=tar --variant="$variant" ${include:+--include="$include"} \
    --dpkgopt='path-exclude=/usr/share/{doc,man,info,locale}/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --aptopt='APT::Install-Recommends "false"' "${options[@]}" \
    "$suite" "$out.tmp-$$" "$sources" >&2
mv "$out.tmp-$$" "$out"
log "rootfs $name: $(du -h "$out" | cut -f1 | head -1) in $(elapsed $((SECONDS - start)))"
echo "$out"
