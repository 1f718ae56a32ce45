//! `PortPool`: ranges of CLB ports pre-created as listeners, handed out to pods by the webhook.

use kube::CustomResource;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

use super::common::{
    IngressListenerAttribute, IngressListenerCertificate, IngressLoadBalancer, Protocol,
    UptimeCheckConfig, port_schema,
};

/// Ports are `[startPort, endPort)` per item; an item is Ready once every listener has a cloud id.
// clippy reads the repeated `type_ = ...` inside separate `printcolumn(...)` groups as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "networkextension.bkbcs.tencent.com",
    version = "v1",
    kind = "PortPool",
    plural = "portpools",
    singular = "portpool",
    shortname = "bcspp",
    category = "bkbcs",
    namespaced,
    status = "PortPoolStatus",
    doc = "Ranges of Tencent CLB ports pre-created as listeners and allocated to pods (bcs-ingress-controller compatible).",
    printcolumn(name = "Status", type_ = "string", json_path = ".status.status"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PortPoolSpec {
    /// `""`/`default` = items in spec order, `average` = item with most free ports first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "allocate_policy_schema")]
    pub allocate_policy: Option<String>,
    /// Applied to every listener of the pool.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_attribute: Option<IngressListenerAttribute>,
    pub pool_items: Vec<PortPoolItem>,
}

/// One range of ports on a set of CLBs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortPoolItem {
    /// Unique within the pool; the key status entries are matched by.
    #[schemars(length(min = 1, max = 128))]
    pub item_name: String,
    /// `lb-xxx` or `region:lb-xxx`; every CLB gets identical listeners.
    #[serde(rename = "loadBalancerIDs")]
    #[schemars(length(min = 1))]
    pub load_balancer_ids: Vec<String>,
    /// `TCP`, `UDP` or `TCP,UDP`; unset or empty means both.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "pool_protocol_schema")]
    pub protocol: Option<String>,
    #[schemars(schema_with = "port_schema")]
    pub start_port: i32,
    /// Exclusive; may only grow.
    #[schemars(schema_with = "port_schema")]
    pub end_port: i32,
    /// 0 or 1 = single ports; N = each pod gets N consecutive ports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub segment_length: Option<i32>,
    /// Opaque; copied to bindings and the pod annotation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<IngressListenerCertificate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_check: Option<UptimeCheckConfig>,
}

impl PortPoolItem {
    /// Protocols of the item: unset or empty means TCP and UDP. `None` if a token is not TCP or UDP.
    pub fn protocols(&self) -> Option<Vec<Protocol>> {
        parse_pool_protocols(self.protocol.as_deref().unwrap_or(""))
    }

    /// Ports per allocation: `segmentLength`, with 0 treated as 1.
    pub fn effective_segment_length(&self) -> i32 {
        self.segment_length.unwrap_or(0).max(1)
    }
}

/// Parses a pool item's `protocol` (`"TCP"`, `"UDP"`, `"TCP,UDP"`, `""`), case-insensitively, without
/// duplicates and in TCP-then-UDP order. Anything else is `None`.
pub fn parse_pool_protocols(spec: &str) -> Option<Vec<Protocol>> {
    if spec.trim().is_empty() {
        return Some(vec![Protocol::Tcp, Protocol::Udp]);
    }
    let mut protocols = Vec::new();
    for token in spec.split(',') {
        match Protocol::parse(token)? {
            p @ (Protocol::Tcp | Protocol::Udp) if !protocols.contains(&p) => protocols.push(p),
            _ => return None,
        }
    }
    protocols.sort();
    Some(protocols)
}

/// Observed state of the pool.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortPoolStatus {
    /// `Ready` iff every item is Ready, else `NotReady`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(rename = "poolItems", default, skip_serializing_if = "Vec::is_empty")]
    pub pool_items: Vec<PortPoolItemStatus>,
}

/// Observed state of one item; the allocator is rebuilt from these after a restart.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortPoolItemStatus {
    pub item_name: String,
    #[serde(
        rename = "loadBalancerIDs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub load_balancer_ids: Vec<String>,
    #[serde(default)]
    pub start_port: i32,
    #[serde(default)]
    pub end_port: i32,
    #[serde(default)]
    pub segment_length: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pool_item_load_balancers: Vec<IngressLoadBalancer>,
    /// `Ready`, `NotReady` or `Deleting`.
    #[serde(default)]
    pub status: String,
    /// `Ready` or the joined errors.
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub protocol: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<String>,
}

fn allocate_policy_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": ["", "default", "average"] })
}

fn pool_protocol_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "string", "enum": ["", "TCP", "UDP", "TCP,UDP"] })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_pool_protocol_means_tcp_and_udp() {
        assert_eq!(
            parse_pool_protocols(""),
            Some(vec![Protocol::Tcp, Protocol::Udp])
        );
        let item = PortPoolItem::default();
        assert_eq!(item.protocols(), Some(vec![Protocol::Tcp, Protocol::Udp]));
    }

    #[test]
    fn pool_protocols_parse_lists_and_reject_others() {
        assert_eq!(parse_pool_protocols("TCP"), Some(vec![Protocol::Tcp]));
        assert_eq!(
            parse_pool_protocols("udp,tcp"),
            Some(vec![Protocol::Tcp, Protocol::Udp])
        );
        assert_eq!(parse_pool_protocols("TCP,TCP"), None);
        assert_eq!(parse_pool_protocols("HTTP"), None);
        assert_eq!(parse_pool_protocols("TCP,"), None);
    }

    #[test]
    fn segment_length_zero_means_one() {
        let mut item = PortPoolItem::default();
        assert_eq!(item.effective_segment_length(), 1);
        item.segment_length = Some(5);
        assert_eq!(item.effective_segment_length(), 5);
    }
}
