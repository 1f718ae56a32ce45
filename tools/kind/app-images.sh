#!/usr/bin/env bash
# Builds the clb-controller and fake-clb images (TAG, default dev) from this repository.
#
#   tools/kind/app-images.sh dockerfile|host [TAG]
#
# dockerfile: controller/Dockerfile and fake-clb/Dockerfile (need the rust and distroless images from a
#             registry; the usual path on a laptop).
# host:       no registry needed. cargo builds both binaries in release mode on this machine
#             (CARGO_TARGET_DIR is honoured), and each image is FROM a runtime base made of Debian packages
#             (libc6, libgcc-s1, ca-certificates, tzdata, netbase unpacked by mmdebstrap from the machine's apt
#             sources, see rootfs.sh) plus /etc/passwd with uid 65532, the CA bundle and the binary. No shell,
#             no package manager run in the image; the same user, ports and ENTRYPOINT as the Dockerfiles, so the
#             charts' args start the binary.
# Prints each image's size.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/kind/lib.sh
docker_env

mode="${1:?usage: $0 dockerfile|host [TAG]}" tag="${2:-dev}"
start=$SECONDS

if [[ "$mode" == dockerfile ]]; then
    log "docker build -f controller/Dockerfile, fake-clb/Dockerfile"
    DOCKER_BUILDKIT=1 docker build -q -f controller/Dockerfile -t "clb-controller:$tag" . >/dev/null
    DOCKER_BUILDKIT=1 docker build -q -f fake-clb/Dockerfile -t "fake-clb:$tag" . >/dev/null
elif [[ "$mode" == host ]]; then
    target="${CARGO_TARGET_DIR:-$PWD/target}"
    log "cargo build --release (clb-controller, fake-clb) into $target ..."
    cargo build --release --locked -q -p clb-controller -p fake-clb --bin clb-controller --bin fake-clb
    rootfs="$(tools/kind/rootfs.sh runtime extract libc6 libgcc-s1 ca-certificates tzdata netbase)"
    key="$(basename "$rootfs" .tar)"
    key="${key#runtime-}"
    base="clb-testbed/runtime:$key"
    ctx="$(mktemp -d)"
    trap 'rm -rf "$ctx"' EXIT
    if ! docker image inspect "$base" >/dev/null 2>&1; then
        log "runtime base $base from $rootfs"
        docker import "$rootfs" "clb-testbed/runtime-rootfs:$key" >/dev/null
        mkdir -p "$ctx/base/etc/ssl/certs" "$ctx/certs"
        tar -xf "$rootfs" -C "$ctx/certs" ./usr/share/ca-certificates/mozilla
        cat "$ctx"/certs/usr/share/ca-certificates/mozilla/*.crt > "$ctx/base/etc/ssl/certs/ca-certificates.crt"
        printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n' \
            > "$ctx/base/etc/passwd"
        printf 'root:x:0:\nnonroot:x:65532:\n' > "$ctx/base/etc/group"
        printf 'FROM clb-testbed/runtime-rootfs:%s\nCOPY etc/ /etc/\n' "$key" > "$ctx/base/Dockerfile"
        docker build -q -t "$base" "$ctx/base" >/dev/null
        docker rmi "clb-testbed/runtime-rootfs:$key" >/dev/null
    fi
    for spec in clb-controller:controller:"8081 9443":'["run", "--help"]' fake-clb:fake-clb:"9000 9001":'[]'; do
        IFS=: read -r bin _dir ports cmd <<<"$spec"
        mkdir -p "$ctx/$bin"
        cp "$target/release/$bin" "$ctx/$bin/$bin"
        cat > "$ctx/$bin/Dockerfile" <<DOCKERFILE
FROM $base
COPY $bin /usr/local/bin/$bin
USER 65532:65532
EXPOSE $ports
ENTRYPOINT ["/usr/local/bin/$bin"]
CMD $cmd
DOCKERFILE
        docker build -q -t "$bin:$tag" "$ctx/$bin" >/dev/null
    done
else
    echo "usage: $0 dockerfile|host [TAG]" >&2
    exit 2
fi
for image in "clb-controller:$tag" "fake-clb:$tag"; do
    log "$image: $(( $(docker image inspect -f '{{.Size}}' "$image") / 1000000 )) MB"
done
log "images built ($mode) in $(elapsed $((SECONDS - start)))"
