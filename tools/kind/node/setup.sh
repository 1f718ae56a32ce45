#!/bin/bash
# Runs inside the build container of the offline kind node image (tools/kind/node-image.sh), on the Debian root
# filesystem with kind's base files already copied in: what kind's images/base/Dockerfile does after its package
# installs, with Debian's containerd, runc and CNI plugins in place of kind's own builds.
set -euo pipefail
chmod 0755 /kind/bin /kind/bin/* /usr/local/bin/entrypoint /usr/local/bin/clean-install
# Services kind does not want started in a node.
find /lib/systemd/system/sysinit.target.wants/ -name systemd-tmpfiles-setup.service -delete
rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \
    /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \
    /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/*
echo "ReadKMsg=no" >> /etc/systemd/journald.conf
[ -e /sbin/init ] || ln -s "$(command -v systemd)" /sbin/init
systemctl enable kubelet.service containerd.service undo-mount-hacks.service
systemctl mask systemd-binfmt.service
mkdir -p /etc/kubernetes/manifests /opt/cni/bin /etc/cni/net.d
# kind's unit files expect containerd in /usr/local/bin.
for bin in containerd ctr containerd-shim-runc-v2; do ln -sf "/usr/bin/$bin" "/usr/local/bin/$bin"; done
cp -a /usr/lib/cni/. /opt/cni/bin/
ctr oci spec \
    | jq '.hooks.createContainer[.hooks.createContainer | length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \
    | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json
# Machine-specific: where CAP_SYS_RESOURCE is outside the bounding set, containerd may not lower a container's
# OOM score below its own; clamp instead of failing.
sed -i 's/^\(\s*restrict_oom_score_adj\s*=\s*\).*/\1true/' /etc/containerd/config.toml
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log
