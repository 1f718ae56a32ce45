//! Random hostPort (the user guide's "随机 HostPort方案", bcs-webhook-server's `randhostport` plugin): a pod
//! annotated `randhostport.webhook.bkbcs.tencent.com: "true"` and `ports.randhostport.webhook.bkbcs.tencent.com:
//! "8080,metric"` gets, for each listed container port, a `hostPort` from a configured range, the label
//! `<hostPort>.randhostport.webhook.bkbcs.tencent.com: "<hostPort>"`, the `BCS_RANDHOSTPORT_*` env vars and one
//! required pod anti-affinity term per hostPort on `kubernetes.io/hostname`, so two pods sharing a hostPort never
//! land on one node.
//!
//! Pure parts: reading the request ([`requested_ports`]), the ports a stored pod holds ([`held_ports`]) and the
//! patch ([`build_patch`]). [`load::PortLoad`] picks the least-held ports; [`state`] shares it with the webhook.

pub mod load;
pub mod state;

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

/// `"true"` opts a pod in.
pub const ENABLED: &str = "randhostport.webhook.bkbcs.tencent.com";
/// Comma-separated container port numbers or names.
pub const PORTS: &str = "ports.randhostport.webhook.bkbcs.tencent.com";
/// Label key suffix: `<hostPort>.randhostport.webhook.bkbcs.tencent.com: "<hostPort>"`.
pub const LABEL_SUFFIX: &str = ".randhostport.webhook.bkbcs.tencent.com";
/// `BCS_RANDHOSTPORT_FOR_CONTAINER_PORT_<containerPort>` = the hostPort.
pub const ENV_PORT_PREFIX: &str = "BCS_RANDHOSTPORT_FOR_CONTAINER_PORT_";
pub const ENV_HOST_IP: &str = "BCS_RANDHOSTPORT_HOSTIP";
pub const ENV_POD_NAME: &str = "BCS_RANDHOSTPORT_POD_NAME";
pub const ENV_POD_NAMESPACE: &str = "BCS_RANDHOSTPORT_POD_NAMESPACE";
/// Topology of the anti-affinity terms: one node.
const HOSTNAME_TOPOLOGY: &str = "kubernetes.io/hostname";

/// An inclusive range of host ports, written `29000-29999`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    /// Default of `--randhostport-range` (ours; the guide's examples 29001 and 29323 lie in it).
    pub const DEFAULT: PortRange = PortRange {
        start: 29000,
        end: 29999,
    };

    /// Number of ports in the range.
    pub fn len(&self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    /// Never true: a range holds at least one port.
    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

impl FromStr for PortRange {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (start, end) = s
            .split_once('-')
            .ok_or_else(|| format!("{s:?}: write the range as START-END, e.g. 29000-29999"))?;
        let port = |v: &str| {
            v.trim()
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| format!("{s:?}: {v:?} is not a port (1-65535)"))
        };
        let (start, end) = (port(start)?, port(end)?);
        if start > end {
            return Err(format!("{s:?}: the start is above the end"));
        }
        Ok(PortRange { start, end })
    }
}

/// Why a pod cannot get random host ports; the message goes back to the user as the denial.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{PORTS}: no container port listed")]
    Empty,
    #[error("{PORTS}: {0:?} is not a container port number or name of this pod")]
    UnknownPort(String),
    #[error("{PORTS}: container port {0} is listed twice")]
    ListedTwice(u16),
    #[error("{PORTS}: container {container:?} port {port} already has hostPort {host_port}")]
    HasHostPort {
        container: String,
        port: u16,
        host_port: i32,
    },
    #[error(
        "random host port range {range} has {size} port(s); the pod asks for {wanted} different ones"
    )]
    Exhausted {
        range: PortRange,
        size: usize,
        wanted: usize,
    },
}

/// One container port that gets a host port: where it is in the spec, and its number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WantedPort {
    pub container: usize,
    pub index: usize,
    pub container_port: u16,
}

/// True when the pod opts in.
pub fn wants(pod: &Pod) -> bool {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ENABLED))
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// The container ports the pod lists, in its order, each resolved by number or name in `spec.containers`.
pub fn requested_ports(pod: &Pod) -> Result<Vec<WantedPort>, RequestError> {
    let raw = pod
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(PORTS))
        .map(String::as_str)
        .unwrap_or("");
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[]);
    let mut out: Vec<WantedPort> = Vec::new();
    let mut seen = BTreeSet::new();
    for entry in raw.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let number = entry.parse::<i32>().ok();
        let found = containers.iter().enumerate().find_map(|(c, container)| {
            container
                .ports
                .iter()
                .flatten()
                .enumerate()
                .find_map(|(i, p)| {
                    let hit = match number {
                        Some(n) => p.container_port == n,
                        None => p.name.as_deref() == Some(entry),
                    };
                    hit.then_some((c, i, p))
                })
        });
        let Some((c, i, port)) = found else {
            return Err(RequestError::UnknownPort(entry.to_owned()));
        };
        let container_port = u16::try_from(port.container_port)
            .map_err(|_| RequestError::UnknownPort(entry.to_owned()))?;
        if !seen.insert(container_port) {
            return Err(RequestError::ListedTwice(container_port));
        }
        if let Some(host_port) = port.host_port.filter(|h| *h != 0) {
            return Err(RequestError::HasHostPort {
                container: containers[c].name.clone(),
                port: container_port,
                host_port,
            });
        }
        out.push(WantedPort {
            container: c,
            index: i,
            container_port,
        });
    }
    if out.is_empty() {
        return Err(RequestError::Empty);
    }
    Ok(out)
}

/// The host ports a stored pod holds, read from its `<port>.randhostport…` labels (in `range` only).
pub fn held_ports<'a>(
    labels: impl IntoIterator<Item = (&'a String, &'a String)>,
    range: PortRange,
) -> Vec<u16> {
    let mut ports: Vec<u16> = labels
        .into_iter()
        .filter_map(|(key, value)| {
            let port: u16 = key.strip_suffix(LABEL_SUFFIX)?.parse().ok()?;
            (value.parse::<u16>().ok() == Some(port) && range.contains(port)).then_some(port)
        })
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// `/` and `~` escaped for a JSON pointer segment (RFC 6901).
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// The JSON patch of the guide's "注入后的Pod": each wanted container port gets its host port, the pod a label
/// per host port and one anti-affinity term per host port, and every container the env vars.
pub fn build_patch(
    pod: &Pod,
    wanted: &[WantedPort],
    host_ports: &[u16],
) -> Result<json_patch::Patch, String> {
    let mut ops: Vec<Value> = Vec::new();
    let labels: Vec<(String, String)> = host_ports
        .iter()
        .map(|p| (format!("{p}{LABEL_SUFFIX}"), p.to_string()))
        .collect();
    if pod.metadata.labels.is_some() {
        for (key, value) in &labels {
            ops.push(json!({"op": "add", "path": format!("/metadata/labels/{}", escape(key)), "value": value}));
        }
    } else {
        let map: serde_json::Map<String, Value> =
            labels.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        ops.push(json!({"op": "add", "path": "/metadata/labels", "value": map}));
    }
    for (w, host_port) in wanted.iter().zip(host_ports) {
        ops.push(json!({"op": "add",
            "path": format!("/spec/containers/{}/ports/{}/hostPort", w.container, w.index), "value": host_port}));
    }
    let env = env_vars(wanted, host_ports);
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or(&[]);
    for (c, container) in containers.iter().enumerate() {
        let path = format!("/spec/containers/{c}/env");
        match &container.env {
            None => ops.push(json!({"op": "add", "path": path, "value": env})),
            Some(existing) => {
                for var in &env {
                    match existing
                        .iter()
                        .position(|e| Some(e.name.as_str()) == var["name"].as_str())
                    {
                        Some(i) => ops.push(
                            json!({"op": "replace", "path": format!("{path}/{i}"), "value": var}),
                        ),
                        None => ops
                            .push(json!({"op": "add", "path": format!("{path}/-"), "value": var})),
                    }
                }
            }
        }
    }
    affinity_ops(pod, &labels, &mut ops);
    serde_json::from_value(Value::Array(ops)).map_err(|e| format!("building the pod patch: {e}"))
}

/// The guide's env vars: one per container port, then host IP, pod name and namespace (fieldRefs).
fn env_vars(wanted: &[WantedPort], host_ports: &[u16]) -> Vec<Value> {
    let field = |path: &str| json!({"fieldRef": {"apiVersion": "v1", "fieldPath": path}});
    let mut env: Vec<Value> = wanted
        .iter()
        .zip(host_ports)
        .map(|(w, p)| json!({"name": format!("{ENV_PORT_PREFIX}{}", w.container_port), "value": p.to_string()}))
        .collect();
    env.push(json!({"name": ENV_HOST_IP, "valueFrom": field("status.hostIP")}));
    env.push(json!({"name": ENV_POD_NAME, "valueFrom": field("metadata.name")}));
    env.push(json!({"name": ENV_POD_NAMESPACE, "valueFrom": field("metadata.namespace")}));
    env
}

/// Appends one required anti-affinity term per host-port label, creating what is missing on the way.
fn affinity_ops(pod: &Pod, labels: &[(String, String)], ops: &mut Vec<Value>) {
    let terms: Vec<Value> = labels
        .iter()
        .map(|(k, v)| json!({"labelSelector": {"matchLabels": {k: v}}, "topologyKey": HOSTNAME_TOPOLOGY}))
        .collect();
    let affinity = pod.spec.as_ref().and_then(|s| s.affinity.as_ref());
    let anti = affinity.and_then(|a| a.pod_anti_affinity.as_ref());
    let required = anti.and_then(|a| {
        a.required_during_scheduling_ignored_during_execution
            .as_ref()
    });
    match (affinity, anti, required) {
        (None, _, _) => ops.push(json!({"op": "add", "path": "/spec/affinity",
            "value": {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": terms}}})),
        (Some(_), None, _) => ops.push(json!({"op": "add", "path": "/spec/affinity/podAntiAffinity",
            "value": {"requiredDuringSchedulingIgnoredDuringExecution": terms}})),
        (Some(_), Some(_), None) => ops.push(json!({"op": "add",
            "path": "/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution", "value": terms})),
        (Some(_), Some(_), Some(_)) => {
            for term in terms {
                ops.push(json!({"op": "add",
                    "path": "/spec/affinity/podAntiAffinity/requiredDuringSchedulingIgnoredDuringExecution/-",
                    "value": term}));
            }
        }
    }
}

#[cfg(test)]
mod tests;
