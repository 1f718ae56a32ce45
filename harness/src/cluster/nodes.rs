//! Fake nodes: Node objects kwok adopts (by annotation) and keeps Ready.
//!
//! Node `i` gets InternalIP 172.20.0.(10+i) and podCIDR 10.244.(4i).0/22, so pod IPs and host
//! IPs are distinct across nodes and a node has room for its 1000 pods.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{Node, NodeAddress, NodeSpec, NodeStatus, NodeSystemInfo};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

use super::config::KWOK_NODE_ANNOTATION;
use crate::error::{Error, Result};

/// More would overflow the address plan above.
pub const MAX_NODES: u32 = 64;
pub const NODE_NAME_PREFIX: &str = "kwok-node-";
/// Label selector matching the harness's fake nodes.
pub const FAKE_NODE_LABEL: (&str, &str) = ("type", "kwok");
const PODS_PER_NODE: &str = "1000";

pub fn node_name(index: u32) -> String {
    format!("{NODE_NAME_PREFIX}{index}")
}

pub fn internal_ip(index: u32) -> Ipv4Addr {
    Ipv4Addr::new(172, 20, 0, (10 + index) as u8)
}

pub fn pod_cidr(index: u32) -> String {
    format!("10.244.{}.0/22", index * 4)
}

/// The Node object for fake node `index`, including the status kwok keeps.
pub fn fake_node(index: u32, kubelet_version: &str) -> Node {
    let name = node_name(index);
    let labels = BTreeMap::from([
        ("kubernetes.io/hostname".to_owned(), name.clone()),
        ("kubernetes.io/os".to_owned(), "linux".to_owned()),
        ("kubernetes.io/arch".to_owned(), "amd64".to_owned()),
        ("node-role.kubernetes.io/agent".to_owned(), String::new()),
        (FAKE_NODE_LABEL.0.to_owned(), FAKE_NODE_LABEL.1.to_owned()),
    ]);
    let annotations = BTreeMap::from([
        (
            KWOK_NODE_ANNOTATION.0.to_owned(),
            KWOK_NODE_ANNOTATION.1.to_owned(),
        ),
        ("node.alpha.kubernetes.io/ttl".to_owned(), "0".to_owned()),
    ]);
    let cidr = pod_cidr(index);
    Node {
        metadata: ObjectMeta {
            name: Some(name),
            labels: Some(labels),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(NodeSpec {
            pod_cidr: Some(cidr.clone()),
            pod_cidrs: Some(vec![cidr]),
            ..NodeSpec::default()
        }),
        status: Some(node_status(index, kubelet_version)),
    }
}

fn node_status(index: u32, kubelet_version: &str) -> NodeStatus {
    let resources = BTreeMap::from([
        ("cpu".to_owned(), Quantity("32".to_owned())),
        ("memory".to_owned(), Quantity("256Gi".to_owned())),
        ("pods".to_owned(), Quantity(PODS_PER_NODE.to_owned())),
        ("ephemeral-storage".to_owned(), Quantity("1Ti".to_owned())),
    ]);
    NodeStatus {
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".to_owned(),
                address: internal_ip(index).to_string(),
            },
            NodeAddress {
                type_: "Hostname".to_owned(),
                address: node_name(index),
            },
        ]),
        allocatable: Some(resources.clone()),
        capacity: Some(resources),
        node_info: Some(NodeSystemInfo {
            architecture: "amd64".to_owned(),
            operating_system: "linux".to_owned(),
            kubelet_version: kubelet_version.to_owned(),
            kube_proxy_version: kubelet_version.to_owned(),
            container_runtime_version: "kwok".to_owned(),
            kernel_version: "kwok".to_owned(),
            os_image: "kwok".to_owned(),
            ..NodeSystemInfo::default()
        }),
        ..NodeStatus::default()
    }
}

/// Creates the nodes that do not exist yet and (re)applies their status.
///
/// Status is patched separately because the API server may drop status on create.
pub async fn ensure_nodes(client: &kube::Client, count: u32, kubelet_version: &str) -> Result<()> {
    let api: Api<Node> = Api::all(client.clone());
    for index in 0..count {
        let node = fake_node(index, kubelet_version);
        let name = node_name(index);
        match api.create(&PostParams::default(), &node).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        let status = serde_json::json!({ "status": node.status });
        api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
    }
    Ok(())
}

/// Number of fake nodes whose Ready condition is True.
pub async fn ready_fake_nodes(client: &kube::Client) -> Result<usize> {
    let api: Api<Node> = Api::all(client.clone());
    let selector = format!("{}={}", FAKE_NODE_LABEL.0, FAKE_NODE_LABEL.1);
    let nodes = api.list(&ListParams::default().labels(&selector)).await?;
    Ok(nodes.items.iter().filter(|n| is_ready(n)).count())
}

pub fn is_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conds| {
            conds
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}

/// Rejects node counts the address plan cannot hold.
pub fn validate_count(count: u32) -> Result<()> {
    if (1..=MAX_NODES).contains(&count) {
        Ok(())
    } else {
        Err(Error::InvalidOption(format!(
            "--nodes must be between 1 and {MAX_NODES}, got {count}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn nodes_have_distinct_addresses_and_cidrs() {
        let mut ips = HashSet::new();
        let mut cidrs = HashSet::new();
        for i in 0..MAX_NODES {
            let node = fake_node(i, "v1.34.4");
            let status = node.status.unwrap();
            let ip = &status.addresses.unwrap()[0];
            assert_eq!(ip.type_, "InternalIP");
            assert!(ips.insert(ip.address.clone()));
            assert!(cidrs.insert(node.spec.unwrap().pod_cidr.unwrap()));
        }
        assert_eq!(pod_cidr(MAX_NODES - 1), "10.244.252.0/22");
    }

    #[test]
    fn nodes_are_marked_for_kwok() {
        let node = fake_node(0, "v1.34.4");
        let ann = node.metadata.annotations.unwrap();
        assert_eq!(
            ann.get(KWOK_NODE_ANNOTATION.0).unwrap(),
            KWOK_NODE_ANNOTATION.1
        );
        assert_eq!(
            node.metadata
                .labels
                .unwrap()
                .get("kubernetes.io/hostname")
                .unwrap(),
            "kwok-node-0"
        );
    }

    #[test]
    fn node_count_is_bounded() {
        assert!(validate_count(0).is_err());
        assert!(validate_count(3).is_ok());
        assert!(validate_count(MAX_NODES).is_ok());
        assert!(validate_count(MAX_NODES + 1).is_err());
    }
}
