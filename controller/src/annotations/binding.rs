//! The `poolbindings.portpool…` JSON and the `BCS_PORTPOOL_PORT_VIPLIST_*` env vars.
//!
//! Field names and order follow bcs' `PortBindingItem` as shown in the user guide; fields bcs
//! omits when empty are omitted here too. Unknown fields of a load balancer are kept, so a
//! binding read back during rebuild is written again unchanged.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{AnnotationError, ENV_PREFIX};
use crate::allocator::Protocol;

/// One entry of the bindings annotation (TCP_UDP requests give one TCP and one UDP entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PoolBindingItem {
    /// PortPool name.
    pub pool_name: String,
    /// PortPool namespace.
    pub pool_namespace: String,
    /// LB ids of the item ("lb-x" or "region:lb-x").
    #[serde(rename = "loadBalancerIDs", default)]
    pub load_balancer_ids: Vec<String>,
    /// The pool's listener attribute, passed through as-is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_attribute: Option<Value>,
    /// The item's uptime check, passed through as-is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_check: Option<Value>,
    /// LBs of the item as resolved from the cloud.
    #[serde(default)]
    pub pool_item_load_balancers: Vec<ItemLoadBalancer>,
    /// Item the port comes from.
    pub pool_item_name: String,
    /// `TCP` or `UDP`.
    pub protocol: BindingProtocol,
    /// First port on the LB.
    pub start_port: u16,
    /// Last port of a segment (inclusive), 0 for a single port.
    #[serde(default)]
    pub end_port: u16,
    /// Container port the LB forwards to.
    pub rs_start_port: u16,
    /// Forward to the container port's hostPort.
    #[serde(default, skip_serializing_if = "is_false")]
    pub host_port: bool,
    /// Opaque item field passed to the pod.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub external: String,
}

/// Serde form of [`Protocol`]: `"TCP"` / `"UDP"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BindingProtocol {
    /// TCP.
    #[serde(rename = "TCP")]
    Tcp,
    /// UDP.
    #[serde(rename = "UDP")]
    Udp,
}

impl From<Protocol> for BindingProtocol {
    fn from(p: Protocol) -> Self {
        match p {
            Protocol::Tcp => BindingProtocol::Tcp,
            Protocol::Udp => BindingProtocol::Udp,
        }
    }
}

impl From<BindingProtocol> for Protocol {
    fn from(p: BindingProtocol) -> Self {
        match p {
            BindingProtocol::Tcp => Protocol::Tcp,
            BindingProtocol::Udp => Protocol::Udp,
        }
    }
}

/// A load balancer of a pool item (`IngressLoadBalancer` in bcs).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ItemLoadBalancer {
    /// LB name.
    #[serde(rename = "loadbalancerName", default)]
    pub name: String,
    /// LB id.
    #[serde(rename = "loadbalancerID", default)]
    pub id: String,
    /// Region, e.g. `ap-nanjing`.
    #[serde(default)]
    pub region: String,
    /// `OPEN` or `INTERNAL`.
    #[serde(rename = "type", default)]
    pub lb_type: String,
    /// VIPs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// Domain of a domain-based LB.
    #[serde(rename = "dnsName", default, skip_serializing_if = "String::is_empty")]
    pub dns_name: String,
    /// Any other field, kept for round trips.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// Reads the bindings annotation (also used to rebuild the allocator after a restart).
pub fn parse_pool_bindings(value: &str) -> Result<Vec<PoolBindingItem>, AnnotationError> {
    serde_json::from_str(value).map_err(|e| AnnotationError::Bindings(e.to_string()))
}

/// Writes the bindings annotation.
pub fn render_pool_bindings(items: &[PoolBindingItem]) -> Result<String, AnnotationError> {
    serde_json::to_string(items).map_err(|e| AnnotationError::Bindings(e.to_string()))
}

/// `BCS_PORTPOOL_PORT_VIPLIST_<PROTO>_<containerPort>`, e.g. `BCS_PORTPOOL_PORT_VIPLIST_TCP_80`.
pub fn env_var_name(protocol: Protocol, container_port: u16) -> String {
    format!("{ENV_PREFIX}{}_{container_port}", protocol.as_str())
}

/// `vip[,vip…]:start[-end]`: every IP then the domain of each LB of the item, in order,
/// e.g. `1.1.1.1:31000` or `1.1.1.1,2.2.2.2:31000-31004`.
pub fn env_var_value(item: &PoolBindingItem) -> String {
    let vips: Vec<&str> = item
        .pool_item_load_balancers
        .iter()
        .flat_map(|lb| {
            lb.ips
                .iter()
                .map(String::as_str)
                .chain((!lb.dns_name.is_empty()).then_some(lb.dns_name.as_str()))
        })
        .collect();
    let vips = vips.join(",");
    if item.end_port > item.start_port {
        format!("{vips}:{}-{}", item.start_port, item.end_port)
    } else {
        format!("{vips}:{}", item.start_port)
    }
}
