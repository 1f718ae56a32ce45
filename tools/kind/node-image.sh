#!/usr/bin/env bash
# Builds the offline kind node image (for machines where kindest/node cannot be pulled) and prints its name,
# clb-testbed/kind-node:<KUBERNETES_VERSION>-<hash>. Everything comes from the Go module proxy and the machine's
# apt sources; no container registry is used.
#
# What goes in (each piece cached on its own, see tools/README.md):
#   - a Debian root filesystem (rootfs.sh node …): systemd, containerd, runc, CNI plugins, iptables, …;
#   - kind's own base files (images/base/files of the kind Go module) and the clean-up of kind's base
#     Dockerfile (node/setup.sh);
#   - kubelet, kubeadm, kubectl (in /usr/bin) built by tools/controlplane/build.sh kubenode;
#   - the images kubeadm expects, under the exact names `kubeadm config images list` prints: kube-apiserver,
#     kube-controller-manager, kube-scheduler, etcd (the control plane's binaries), kube-proxy, pause (ours,
#     node/../pause), CoreDNS (go install at kubeadm's version); kind's local-path-provisioner and helper
#     images and manifest; our CNI (node/cni.yaml, node/cni.sh) in place of kindnetd, which the module
#     proxy refuses to serve;
#   - machine-specific: node/kubelet-cgroup-v1.conf and restrict_oom_score_adj (see those files).
# The image name's hash covers every input, so a warm call checks one `docker image inspect` and returns.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tools/kind/lib.sh
source tools/controlplane/versions.env
docker_env

KIND_VERSION="${KIND_VERSION:?KIND_VERSION is set by the Makefile}"
LOCAL_PATH_PROVISIONER_VERSION="${LOCAL_PATH_PROVISIONER_VERSION:-v0.0.30}"
NODE_PACKAGES=(systemd systemd-sysv dbus conntrack iptables nftables iproute2 ethtool util-linux mount kmod
    libseccomp2 pigz fuse-overlayfs bash ca-certificates curl jq procps containerd runc containernetworking-plugins)
TOOLS_PACKAGES=(iptables iproute2 conntrack ca-certificates)
start=$SECONDS

value() { sed -n "s/^$1=//p"; }

# --- inputs (each cached by content) -------------------------------------------------------------------
node_rootfs="$(tools/kind/rootfs.sh node minbase "${NODE_PACKAGES[@]}")"
tools_rootfs="$(tools/kind/rootfs.sh tools minbase "${TOOLS_PACKAGES[@]}")"
controlplane="$(tools/controlplane/build.sh)"
kubenode="$(tools/controlplane/build.sh kubenode)"
KUBEADM="$(value KUBEADM <<<"$kubenode")"
images="$("$KUBEADM" config images list --kubernetes-version "$KUBERNETES_VERSION" 2>/dev/null)"
image_named() { grep -m1 "/$1:" <<<"$images"; }
coredns_image="$(image_named coredns)"
coredns_version="${coredns_image##*:}"
COREDNS="$(tools/go-install.sh coredns github.com/coredns/coredns "$coredns_version")"
LOCAL_PATH="$(tools/go-install.sh local-path-provisioner github.com/rancher/local-path-provisioner \
    "$LOCAL_PATH_PROVISIONER_VERSION")"
PAUSE="$(tools/kind/pause-build.sh)"
source tools/controlplane/lib.sh
kind_dir="$(cd tools/kind && GO="$(find_go)" && go_env && "$GO" mod download -json "sigs.k8s.io/kind@$KIND_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -d "$kind_dir/images/base/files" ]] || { log "kind module sources not found ($kind_dir)"; exit 1; }

key="$({
    echo "recipe=1 $KIND_VERSION $LOCAL_PATH_PROVISIONER_VERSION"
    basename "$node_rootfs"; basename "$tools_rootfs"
    echo "$controlplane" "$kubenode" "$COREDNS" "$LOCAL_PATH" "$PAUSE"
    cat tools/kind/node/* tools/kind/node-image.sh
} | sha256sum | cut -c1-12)"
node_image="clb-testbed/kind-node:$KUBERNETES_VERSION-$key"
if docker image inspect "$node_image" >/dev/null 2>&1; then
    log "node image $node_image: cached"
    echo "$node_image"
    exit 0
fi
log "building node image $node_image"

ctx="$(mktemp -d)"
build=""
cleanup() {
    [[ -n "$build" ]] && docker rm -f "$build" >/dev/null 2>&1
    rm -rf "$ctx"
}
trap cleanup EXIT

# --- images the node preloads ---------------------------------------------------------------------------
import_rootfs() { # tar tag
    docker image inspect "$2" >/dev/null 2>&1 || docker import "$1" "$2" >/dev/null
}
tools_base="clb-testbed/kind-tools-rootfs:$(basename "$tools_rootfs" .tar | sed 's/^tools-//')"
import_rootfs "$tools_rootfs" "$tools_base"

# image_of NAME BASE ENTRYPOINT FILE:DEST...: docker build of BASE plus files (one context per image).
image_of() {
    local name="$1" base="$2" entrypoint="$3"
    shift 3
    local dir="$ctx/img-$(echo "$name" | tr '/:' '__')"
    mkdir -p "$dir"
    echo "FROM $base" > "$dir/Dockerfile"
    local spec src dest
    for spec in "$@"; do
        src="${spec%%:*}" dest="${spec#*:}"
        cp "$src" "$dir/$(basename "$dest")"
        echo "COPY $(basename "$dest") $dest" >> "$dir/Dockerfile"
    done
    [[ -n "$entrypoint" ]] && echo "ENTRYPOINT $entrypoint" >> "$dir/Dockerfile"
    docker build -q -t "$name" "$dir" >/dev/null
    preload+=("$name")
}
preload=()
K8S_DIR="$(dirname "$(value KUBE_APISERVER <<<"$controlplane")")"
for component in kube-apiserver kube-controller-manager kube-scheduler; do
    image_of "$(image_named "$component")" scratch "" "$K8S_DIR/$component:/usr/local/bin/$component"
done
image_of "$(image_named etcd)" scratch "" "$(value ETCD <<<"$controlplane"):/usr/local/bin/etcd"
image_of "$(image_named kube-proxy)" "$tools_base" "" "$(value KUBE_PROXY <<<"$kubenode"):/usr/local/bin/kube-proxy"
image_of "$coredns_image" scratch '["/coredns"]' "$COREDNS:/coredns"
# Both pause tags: kubeadm's and the sandbox image of kind's containerd config.
sandbox="$(sed -n 's/^\s*sandbox_image\s*=\s*"\(.*\)"/\1/p' "$kind_dir/images/base/files/etc/containerd/config.toml")"
image_of "$(image_named pause)" scratch '["/pause"]' "$PAUSE:/pause"
[[ "$sandbox" != "$(image_named pause)" ]] && image_of "$sandbox" scratch '["/pause"]' "$PAUSE:/pause"
storage_const="$kind_dir/pkg/build/nodeimage/const_storage.go"
go_const() { sed -n "s/^const $1 = \"\(.*\)\"$/\1/p" "$storage_const"; }
provisioner_image="$(go_const storageProvisionerImage)"
helper_image="$(go_const storageHelperImage)"
image_of "$provisioner_image" scratch "" "$LOCAL_PATH:/usr/local/bin/local-path-provisioner"
image_of "$helper_image" "$tools_base" ""
image_of localhost/clb-testbed/kind-cni:v1 "$tools_base" "" \
    "$(value KUBECTL <<<"$kubenode"):/usr/local/bin/kubectl" tools/kind/node/cni.sh:/usr/local/bin/clb-kind-cni
log "preload images built ($(elapsed $((SECONDS - start))))"

# --- the node filesystem ---------------------------------------------------------------------------------
node_base="clb-testbed/kind-node-rootfs:$(basename "$node_rootfs" .tar | sed 's/^node-//')"
import_rootfs "$node_rootfs" "$node_base"
files="$ctx/files"
mkdir -p "$files/usr/bin" "$files/kind/manifests" "$files/etc/systemd/system/kubelet.service.d"
cp -r "$kind_dir/images/base/files/." "$files/"
chmod -R u+w "$files"
for bin in kubelet kubeadm kubectl; do
    install -m 0755 "$(value "${bin^^}" <<<"$kubenode")" "$files/usr/bin/$bin"
done
echo "$KUBERNETES_VERSION" > "$files/kind/version"
cp tools/kind/node/cni.yaml "$files/kind/manifests/default-cni.yaml"
# kind's storage manifest, with its image constants substituted.
awk '/^const defaultStorageManifest = `/ {on=1; next} on && /^`$/ {exit} on {print}' "$storage_const" |
    sed -e "s|\` + storageProvisionerImage + \`|$provisioner_image|g" -e "s|\` + storageHelperImage + \`|$helper_image|g" \
    > "$files/kind/manifests/default-storage.yaml"
install -m 0644 tools/kind/node/kubelet-cgroup-v1.conf "$files/etc/systemd/system/kubelet.service.d/20-clb-cgroup-v1.conf"
install -m 0755 tools/kind/node/setup.sh "$files/kind/clb-setup.sh"

build="clb-kind-build-$$"
docker run -d --name "$build" --entrypoint sleep --security-opt seccomp=unconfined "$node_base" infinity >/dev/null
tar -C "$files" --owner=0 --group=0 -c . | docker cp - "$build:/"
docker exec "$build" /kind/clb-setup.sh
docker exec "$build" rm /kind/clb-setup.sh
docker exec "$build" bash -c 'nohup containerd >/tmp/containerd.log 2>&1 &'
docker exec "$build" bash -c 'for i in $(seq 30); do [ -S /run/containerd/containerd.sock ] && ctr version >/dev/null 2>&1 && exit 0; sleep 1; done; cat /tmp/containerd.log; exit 1'
log "importing ${#preload[@]} images into the node's containerd"
docker save "${preload[@]}" | docker exec -i "$build" \
    ctr --namespace=k8s.io images import --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - >/dev/null
# The build container's PID 1 (sleep) reaps nothing: a stopped containerd stays a zombie, so wait for that.
docker exec "$build" bash -c 'pkill -x containerd; while ps -o stat= -C containerd | grep -qv "^Z"; do sleep 0.2; done; rm -f /tmp/containerd.log'
# `docker commit --change` takes no STOPSIGNAL on Docker 20.10 (Debian's docker.io): a one-line build adds it, so
# `docker stop` shuts systemd down cleanly as on kind's own images.
docker commit \
    --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' \
    --change 'ENV container=docker' \
    "$build" "$node_image-unsignalled" >/dev/null
printf 'FROM %s\nSTOPSIGNAL SIGRTMIN+3\n' "$node_image-unsignalled" | docker build -q -t "$node_image" - >/dev/null
docker rmi "$node_image-unsignalled" >/dev/null
docker rmi "${preload[@]}" >/dev/null 2>&1 || true
log "node image $node_image: $(( $(docker image inspect -f '{{.Size}}' "$node_image") / 1000000 )) MB in $(elapsed $((SECONDS - start)))"
echo "$node_image"
