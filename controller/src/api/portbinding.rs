//! `PortBinding`: the ports one pod (or node) holds from port pools; named after the pod. The same item type is
//! the JSON the webhook writes into the pod's `poolbindings.portpool...` annotation.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    IngressListenerAttribute, IngressLoadBalancer, UptimeCheckConfig, UptimeCheckStatus,
};

/// Created by the controller from the pod annotation; status tracks listener binding and cleanup.
// clippy reads the repeated `type_ = ...` inside separate `printcolumn(...)` groups as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "networkextension.bkbcs.tencent.com",
    version = "v1",
    kind = "PortBinding",
    plural = "portbindings",
    singular = "portbinding",
    shortname = "bcspb",
    category = "bkbcs",
    namespaced,
    status = "PortBindingStatus",
    doc = "Ports a pod or node holds from port pools (bcs-ingress-controller compatible).",
    printcolumn(name = "Status", type_ = "string", json_path = ".status.status"),
    printcolumn(
        name = "Type",
        type_ = "string",
        json_path = ".status.portBindingType",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct PortBindingSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_binding_list: Vec<PortBindingItem>,
}

/// One allocated port (or segment) of one protocol from one pool item.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortBindingItem {
    pub pool_name: String,
    pub pool_namespace: String,
    #[serde(
        rename = "loadBalancerIDs",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub load_balancer_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_attribute: Option<IngressListenerAttribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_check: Option<UptimeCheckConfig>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pool_item_load_balancers: Vec<IngressLoadBalancer>,
    pub pool_item_name: String,
    /// `TCP` or `UDP` (a `TCP_UDP` request becomes two items).
    pub protocol: String,
    pub start_port: i32,
    /// Last port of a segment (inclusive); 0 for a single port.
    pub end_port: i32,
    /// Container port the traffic goes to.
    pub rs_start_port: i32,
    /// Bind the container port's hostPort instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external: Option<String>,
}

/// Observed state of a binding.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortBindingStatus {
    /// `NotReady`, `Ready`, `Cleaning` or `Cleaned`.
    #[serde(default)]
    pub status: String,
    /// RFC 3339 time, set while cleaning; the keep duration counts from here.
    #[serde(default)]
    pub update_time: String,
    /// `Pod` or `Node`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_binding_type: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_pool_bind_status_list: Vec<PortBindingStatusItem>,
}

/// Observed state of one item.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PortBindingStatusItem {
    #[serde(rename = "portPoolName")]
    pub pool_name: String,
    #[serde(rename = "portPoolNamespace")]
    pub pool_namespace: String,
    pub pool_item_name: String,
    pub start_port: i32,
    pub end_port: i32,
    /// `Initializeing` (sic), `NotReady`, `Ready`, `Deleting` or `Cleaned`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_check_status: Option<UptimeCheckStatus>,
}
