//! `Ingress` (networkextension flavour, short name `bcsingress`): ports on one or more CLBs mapped to Services
//! (`rules`) or to StatefulSet / GameStatefulSet pods by ordinal (`portMappings`).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    IngressListenerAttribute, IngressListenerCertificate, IngressLoadBalancer, Protocol,
    optional_port_schema, port_schema,
};
use super::keys::DEFAULT_WEIGHT;

/// Which CLBs to use comes from the `networkextension.bkbcs.tencent.com/lbids` (or `/lbnames`) annotation.
// clippy reads the repeated `type_ = ...` inside separate `printcolumn(...)` groups as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "networkextension.bkbcs.tencent.com",
    version = "v1",
    kind = "Ingress",
    plural = "ingresses",
    singular = "ingress",
    shortname = "bcsingress",
    category = "bkbcs",
    namespaced,
    status = "IngressStatus",
    doc = "Ports of Tencent CLBs mapped to Services or to StatefulSet pods (bcs-ingress-controller compatible).",
    printcolumn(
        name = "LB",
        type_ = "string",
        json_path = ".status.loadbalancers[0].loadbalancerID"
    ),
    printcolumn(
        name = "VIP",
        type_ = "string",
        json_path = ".status.loadbalancers[0].ips[0]"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<IngressRule>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub port_mappings: Vec<IngressPortMapping>,
}

/// One CLB port and what it forwards to.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressRule {
    #[schemars(schema_with = "port_schema")]
    pub port: i32,
    pub protocol: Protocol,
    /// For L7 only `sniSwitch`, `keepAliveEnable` and `uptimeCheck` apply to the listener; the rest is per route.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_attribute: Option<IngressListenerAttribute>,
    /// Required for HTTPS / TCP_SSL / QUIC unless SNI is on (then every route carries one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<IngressListenerCertificate>,
    /// L4 backends.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceRoute>,
    /// L7 routes (domain + path).
    #[serde(
        rename = "layer7Routes",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub layer7_routes: Vec<Layer7Route>,
}

/// A Service whose pods (or nodes) become backends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceRoute {
    /// `service` (default) or `multiclusterservice`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_kind: Option<String>,
    pub service_name: String,
    /// Defaults to the Ingress namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_namespace: Option<String>,
    /// The Service `port` (not its targetPort).
    #[schemars(schema_with = "port_schema")]
    pub service_port: i32,
    /// Use the pod's hostPort for the container port as the backend port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<bool>,
    /// Pods are backends directly (otherwise node IP + NodePort).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_direct_connect: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<IngressWeight>,
    /// Per-label-subset weights (direct-connect only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subsets: Vec<IngressSubset>,
}

impl ServiceRoute {
    /// Backend weight, 10 when unset.
    pub fn weight(&self) -> i32 {
        self.weight.as_ref().map_or(DEFAULT_WEIGHT, |w| w.value)
    }
}

/// A CLB backend weight.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IngressWeight {
    #[schemars(range(min = 0, max = 100))]
    pub value: i32,
}

/// Pods of a Service further selected by labels, with their own weight.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSubset {
    pub label_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<IngressWeight>,
}

impl IngressSubset {
    /// Backend weight, 10 when unset.
    pub fn weight(&self) -> i32 {
        self.weight.as_ref().map_or(DEFAULT_WEIGHT, |w| w.value)
    }
}

/// Backend protocol of an L7 rule when it differs from the listener's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum ForwardType {
    #[serde(rename = "GRPC")]
    Grpc,
    #[serde(rename = "QUIC")]
    Quic,
}

/// One domain + path of an HTTP/HTTPS listener.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Layer7Route {
    pub domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_attribute: Option<IngressListenerAttribute>,
    /// Per-domain certificate when the listener has `sniSwitch: 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<IngressListenerCertificate>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<ServiceRoute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_type: Option<ForwardType>,
}

/// Pod `i` of a StatefulSet / GameStatefulSet gets port `startPort + i·L` (or the segment of length `L`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressPortMapping {
    /// `StatefulSet` or `GameStatefulSet` (case-insensitive, hence not an enum in the schema).
    pub workload_kind: String,
    pub workload_name: String,
    pub workload_namespace: String,
    #[schemars(schema_with = "port_schema")]
    pub start_port: i32,
    /// First backend (container) port; unset or 0 means "same as the CLB port".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_port_schema")]
    pub rs_start_port: Option<i32>,
    #[schemars(range(min = 0))]
    pub start_index: i32,
    /// Exclusive.
    #[schemars(range(min = 0))]
    pub end_index: i32,
    /// 0 or 1 = one port per pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub segment_length: Option<i32>,
    pub protocol: Protocol,
    /// Every pod's backend port is `rsStartPort` (or `startPort`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_rs_port_fixed: Option<bool>,
    /// One listener per port even when `segmentLength > 1`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_segment: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_attribute: Option<IngressListenerAttribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<IngressListenerCertificate>,
    /// Required for HTTP/HTTPS mappings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<IngressPortMappingLayer7Route>,
}

impl IngressPortMapping {
    /// Ports per pod: `segmentLength`, with 0 treated as 1.
    pub fn effective_segment_length(&self) -> i32 {
        self.segment_length.unwrap_or(0).max(1)
    }
}

/// One domain + path of an HTTP/HTTPS port mapping.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressPortMappingLayer7Route {
    pub domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_attribute: Option<IngressListenerAttribute>,
}

/// The CLBs the Ingress resolved to.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IngressStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loadbalancers: Vec<IngressLoadBalancer>,
}
