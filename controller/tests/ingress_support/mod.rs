//! Builders for hand-made [`World`]s: the cluster objects each user-guide scenario describes.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;

use clb_controller::api::{Ingress, Listener, PortPool};
use clb_controller::ingress::{ResolvedLb, Settings, World, parse_lb_annotations};
use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Node, NodeAddress, NodeStatus, Pod, PodCondition, PodSpec, PodStatus,
    Service, ServicePort, ServiceSpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub const DEFAULT_REGION: &str = "ap-guangzhou";

fn fixture_text(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/user-guide")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A user-guide Ingress, as the API server would store it (namespace defaulted, a uid assigned).
pub fn ingress_fixture(name: &str) -> Ingress {
    let mut ingress: Ingress = serde_yaml::from_str(&fixture_text(name)).expect("fixture parses");
    ingress
        .metadata
        .namespace
        .get_or_insert_with(|| "default".into());
    ingress.metadata.uid = Some(format!(
        "uid-{}",
        ingress.metadata.name.as_deref().unwrap_or("")
    ));
    ingress
}

pub fn portpool_fixture(name: &str) -> PortPool {
    let mut pool: PortPool = serde_yaml::from_str(&fixture_text(name)).expect("fixture parses");
    pool.metadata
        .namespace
        .get_or_insert_with(|| "default".into());
    pool
}

/// A world whose CLBs are exactly what the Ingress's annotation names (VIPs made up per id).
pub fn world_for(ingress: &Ingress) -> World {
    let settings = Settings {
        default_region: DEFAULT_REGION.into(),
        tcp_udp_port_reuse: false,
    };
    let selection = parse_lb_annotations(ingress.metadata.annotations.as_ref(), DEFAULT_REGION)
        .expect("fixture annotation parses");
    let load_balancers = selection
        .keys()
        .iter()
        .enumerate()
        .map(|(i, k)| ResolvedLb {
            region: k.region.clone(),
            id: k.value.clone(),
            name: format!("clb-{}", k.value),
            lb_type: Some("OPEN".into()),
            vips: vec![format!("81.0.0.{}", i + 1)],
            domain: None,
        })
        .collect();
    World {
        settings,
        load_balancers,
        ..World::default()
    }
}

fn meta(ns: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        namespace: Some(ns.into()),
        name: Some(name.into()),
        ..ObjectMeta::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One Service port: `port` → `target` (number or name), optional nodePort.
pub struct SvcPort {
    pub port: i32,
    pub target: IntOrString,
    pub node_port: Option<i32>,
    pub protocol: &'static str,
}

pub fn svc_port(port: i32, target: i32, node_port: Option<i32>) -> SvcPort {
    SvcPort {
        port,
        target: IntOrString::Int(target),
        node_port,
        protocol: "TCP",
    }
}

pub fn service(ns: &str, name: &str, selector: &[(&str, &str)], ports: Vec<SvcPort>) -> Service {
    Service {
        metadata: meta(ns, name),
        spec: Some(ServiceSpec {
            selector: (!selector.is_empty()).then(|| labels(selector)),
            type_: Some(
                if ports.iter().any(|p| p.node_port.is_some()) {
                    "NodePort"
                } else {
                    "ClusterIP"
                }
                .into(),
            ),
            ports: Some(
                ports
                    .into_iter()
                    .map(|p| ServicePort {
                        port: p.port,
                        target_port: Some(p.target),
                        node_port: p.node_port,
                        protocol: Some(p.protocol.into()),
                        ..ServicePort::default()
                    })
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

pub fn node(name: &str, ip: &str) -> Node {
    Node {
        metadata: ObjectMeta {
            name: Some(name.into()),
            ..ObjectMeta::default()
        },
        spec: None,
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress {
                type_: "InternalIP".into(),
                address: ip.into(),
            }]),
            ..NodeStatus::default()
        }),
    }
}

/// A pod under construction; `build()` gives the k8s object.
#[derive(Clone)]
pub struct PodBuilder {
    ns: String,
    name: String,
    labels: Vec<(String, String)>,
    annotations: Vec<(String, String)>,
    node: (String, String),
    pod_ip: Option<String>,
    phase: String,
    ready: bool,
    terminating: bool,
    /// (containerPort, hostPort, name, protocol)
    ports: Vec<(i32, Option<i32>, Option<String>, String)>,
    owner: Option<(String, String)>,
}

pub fn pod(ns: &str, name: &str, node: (&str, &str), pod_ip: &str) -> PodBuilder {
    PodBuilder {
        ns: ns.into(),
        name: name.into(),
        labels: Vec::new(),
        annotations: Vec::new(),
        node: (node.0.into(), node.1.into()),
        pod_ip: Some(pod_ip.into()),
        phase: "Running".into(),
        ready: true,
        terminating: false,
        ports: Vec::new(),
        owner: None,
    }
}

impl PodBuilder {
    pub fn label(mut self, k: &str, v: &str) -> Self {
        self.labels.push((k.into(), v.into()));
        self
    }
    pub fn annotation(mut self, k: &str, v: &str) -> Self {
        self.annotations.push((k.into(), v.into()));
        self
    }
    pub fn port(mut self, container_port: i32) -> Self {
        self.ports.push((container_port, None, None, "TCP".into()));
        self
    }
    pub fn udp_port(mut self, container_port: i32) -> Self {
        self.ports.push((container_port, None, None, "UDP".into()));
        self
    }
    pub fn named_port(mut self, container_port: i32, name: &str) -> Self {
        self.ports
            .push((container_port, None, Some(name.into()), "TCP".into()));
        self
    }
    pub fn host_port(mut self, container_port: i32, host_port: i32) -> Self {
        self.ports
            .push((container_port, Some(host_port), None, "TCP".into()));
        self
    }
    pub fn not_ready(mut self) -> Self {
        self.ready = false;
        self
    }
    pub fn terminating(mut self) -> Self {
        self.terminating = true;
        self
    }
    pub fn pending(mut self) -> Self {
        self.phase = "Pending".into();
        self.ready = false;
        self.pod_ip = None;
        self
    }
    pub fn owned_by(mut self, kind: &str, name: &str) -> Self {
        self.owner = Some((kind.into(), name.into()));
        self
    }
    pub fn build(self) -> Pod {
        Pod {
            metadata: ObjectMeta {
                namespace: Some(self.ns),
                name: Some(self.name),
                labels: Some(self.labels.into_iter().collect()),
                annotations: (!self.annotations.is_empty())
                    .then(|| self.annotations.into_iter().collect()),
                deletion_timestamp: self
                    .terminating
                    .then(|| Time("2026-01-01T00:00:00Z".parse().expect("timestamp"))),
                owner_references: self.owner.map(|(kind, name)| {
                    vec![OwnerReference {
                        api_version: "apps/v1".into(),
                        kind,
                        name,
                        uid: "owner-uid".into(),
                        controller: Some(true),
                        block_owner_deletion: None,
                    }]
                }),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                node_name: Some(self.node.0),
                containers: vec![Container {
                    name: "main".into(),
                    ports: Some(
                        self.ports
                            .into_iter()
                            .map(
                                |(container_port, host_port, name, protocol)| ContainerPort {
                                    container_port,
                                    host_port,
                                    name,
                                    protocol: Some(protocol),
                                    ..ContainerPort::default()
                                },
                            )
                            .collect(),
                    ),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            status: Some(PodStatus {
                phase: Some(self.phase),
                host_ip: Some(self.node.1),
                pod_ip: self.pod_ip,
                conditions: Some(vec![PodCondition {
                    type_: "ContainersReady".into(),
                    status: if self.ready { "True" } else { "False" }.into(),
                    ..PodCondition::default()
                }]),
                ..PodStatus::default()
            }),
        }
    }
}

pub fn stateful_set(ns: &str, name: &str, replicas: i32) -> StatefulSet {
    StatefulSet {
        metadata: meta(ns, name),
        spec: Some(StatefulSetSpec {
            replicas: Some(replicas),
            service_name: Some(name.into()),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

/// The Listener named `name`, or a panic listing the names that exist.
pub fn listener<'a>(listeners: &'a [Listener], name: &str) -> &'a Listener {
    listeners
        .iter()
        .find(|l| l.metadata.name.as_deref() == Some(name))
        .unwrap_or_else(|| {
            let names: Vec<_> = listeners
                .iter()
                .filter_map(|l| l.metadata.name.as_deref())
                .collect();
            panic!("no listener {name}; have {names:?}")
        })
}

/// Names of all listeners, in output order.
pub fn names(listeners: &[Listener]) -> Vec<&str> {
    listeners
        .iter()
        .filter_map(|l| l.metadata.name.as_deref())
        .collect()
}

/// (ip, port, weight) of an L4 listener's target group.
pub fn backends(l: &Listener) -> Vec<(&str, i32, i32)> {
    l.spec
        .target_group
        .as_ref()
        .map(|tg| {
            tg.backends
                .iter()
                .map(|b| (b.ip.as_str(), b.port, b.weight))
                .collect()
        })
        .unwrap_or_default()
}

/// (ip, port, weight) of the L7 rule for `domain` + `path`.
pub fn rule_backends<'a>(l: &'a Listener, domain: &str, path: &str) -> Vec<(&'a str, i32, i32)> {
    let rule = l
        .spec
        .rules
        .iter()
        .find(|r| r.domain.as_deref() == Some(domain) && r.path.as_deref() == Some(path))
        .unwrap_or_else(|| panic!("no rule {domain}{path}"));
    rule.target_group
        .as_ref()
        .map(|tg| {
            tg.backends
                .iter()
                .map(|b| (b.ip.as_str(), b.port, b.weight))
                .collect()
        })
        .unwrap_or_default()
}
