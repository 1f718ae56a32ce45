#!/bin/bash
# Pod network of the offline kind node image (a stand-in for kindnetd, which cannot be built from the Go module
# proxy). Runs on every node in the host network namespace; every 10 s it
#   - writes /etc/cni/net.d/10-clb-kind.conflist: ptp + host-local on this node's podCIDR, portmap;
#   - routes every other real node's podCIDR via that node's InternalIP (kwok fake nodes are skipped: they have
#     no network);
#   - masquerades traffic from the pod subnet ($POD_SUBNET) to anything outside it.
# No NetworkPolicy. Talks to the API server at $CONTROL_PLANE_ENDPOINT (kind adds it to the manifest) with the
# pod's ServiceAccount token, since Service IPs need kube-proxy and kube-proxy's pods need this network first.
set -euo pipefail
sa=/var/run/secrets/kubernetes.io/serviceaccount
conf=/etc/cni/net.d/10-clb-kind.conflist

kc() {
    kubectl --server "https://$CONTROL_PLANE_ENDPOINT" --certificate-authority "$sa/ca.crt" \
        --token "$(cat "$sa/token")" --request-timeout 10s "$@"
}

write_conf() { # podCIDR
    local tmp="$conf.tmp"
    cat > "$tmp" <<CONF
{
  "cniVersion": "0.4.0",
  "name": "clb-kind",
  "plugins": [
    {
      "type": "ptp",
      "mtu": 1500,
      "ipMasq": false,
      "ipam": {
        "type": "host-local",
        "dataDir": "/run/cni-ipam-state",
        "routes": [{"dst": "0.0.0.0/0"}],
        "ranges": [[{"subnet": "$1"}]]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CONF
    if ! cmp -s "$tmp" "$conf"; then
        mv "$tmp" "$conf"
        echo "wrote $conf for $1"
    else
        rm -f "$tmp"
    fi
}

sync_once() {
    local mine name cidr ip fake
    mine="$(kc get node "$NODE_NAME" -o jsonpath='{.spec.podCIDR}')"
    [[ -n "$mine" ]] && write_conf "$mine"
    kc get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address} {.metadata.annotations.kwok\.x-k8s\.io/node}{"\n"}{end}' |
        while read -r name cidr ip fake; do
            [[ "$name" == "$NODE_NAME" || -z "$cidr" || -z "$ip" || -n "$fake" ]] && continue
            ip route replace "$cidr" via "$ip" || echo "route $cidr via $ip ($name) failed"
        done
    iptables -t nat -C POSTROUTING -s "$POD_SUBNET" ! -d "$POD_SUBNET" -j MASQUERADE 2>/dev/null ||
        iptables -t nat -A POSTROUTING -s "$POD_SUBNET" ! -d "$POD_SUBNET" -j MASQUERADE
}

sysctl -qw net.ipv4.ip_forward=1 || true
echo "clb-kind-cni on $NODE_NAME, pod subnet $POD_SUBNET, API server $CONTROL_PLANE_ENDPOINT"
while true; do
    sync_once || echo "sync failed; retrying"
    sleep 10
done
