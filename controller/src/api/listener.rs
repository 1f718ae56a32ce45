//! `Listener`: the desired state of one CLB listener (one per LB × port [× protocol]). Ingresses and port pools
//! only write Listener CRs; the listener controller is the only part that calls CLB for listeners and targets.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::common::{
    IngressListenerAttribute, IngressListenerCertificate, Protocol, UptimeCheckStatus,
    optional_port_schema, port_schema,
};

/// The cloud identity of a listener is (LB, protocol, port[, endPort]), not its name.
// clippy reads the repeated `type_ = ...` inside separate `printcolumn(...)` groups as duplicates.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "networkextension.bkbcs.tencent.com",
    version = "v1",
    kind = "Listener",
    plural = "listeners",
    singular = "listener",
    shortname = "bcslis",
    category = "bkbcs",
    namespaced,
    status = "ListenerStatus",
    doc = "Desired state of one Tencent CLB listener (bcs-ingress-controller compatible).",
    printcolumn(name = "Port", type_ = "integer", json_path = ".spec.port"),
    printcolumn(name = "EndPort", type_ = "integer", json_path = ".spec.endPort"),
    printcolumn(name = "Protocol", type_ = "string", json_path = ".spec.protocol"),
    printcolumn(name = "LB", type_ = "string", json_path = ".spec.loadbalancerID"),
    printcolumn(
        name = "ListenerID",
        type_ = "string",
        json_path = ".status.listenerID"
    ),
    printcolumn(name = "Status", type_ = "string", json_path = ".status.status"),
    printcolumn(
        name = "Ingress",
        type_ = "string",
        json_path = ".status.ingress",
        priority = 1
    ),
    printcolumn(
        name = "PortPool",
        type_ = "string",
        json_path = ".status.portpool",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ListenerSpec {
    /// Bare CLB id (`lb-xxx`), without region prefix.
    #[serde(rename = "loadbalancerID")]
    pub loadbalancer_id: String,
    #[schemars(schema_with = "port_schema")]
    pub port: i32,
    /// Last port of a port-range ("segment") listener, inclusive; unset or 0 for a single port.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "optional_port_schema")]
    pub end_port: Option<i32>,
    pub protocol: Protocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_attribute: Option<IngressListenerAttribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<IngressListenerCertificate>,
    /// L4 backends.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group: Option<ListenerTargetGroup>,
    /// L7 rules, sorted by (domain, path) so that deep equality is a meaningful diff.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<ListenerRule>,
}

impl ListenerStatus {
    /// `Synced` for the spec of generation `generation` (`metadata.generation`; unknown on objects that never
    /// went through the API server, which then only need `Synced`).
    pub fn synced_for(&self, generation: Option<i64>) -> bool {
        self.status.as_deref() == Some(crate::api::keys::LISTENER_STATUS_SYNCED)
            && (generation.is_none() || self.observed_generation == generation)
    }
}

impl ListenerSpec {
    /// True for a port-range listener (`endPort > 0`).
    pub fn is_segment(&self) -> bool {
        self.end_port.is_some_and(|e| e > 0)
    }
}

/// A set of backends.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ListenerTargetGroup {
    #[serde(
        rename = "targetGroupID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub target_group_id: Option<String>,
    #[serde(
        rename = "targetGroupName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub target_group_name: Option<String>,
    /// Listener protocol, or an L7 route's `forwardType`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    /// Sorted by (IP, port).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<ListenerBackend>,
}

/// One CLB target, registered by IP.
#[derive(
    Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub struct ListenerBackend {
    #[serde(rename = "IP")]
    pub ip: String,
    #[schemars(schema_with = "port_schema")]
    pub port: i32,
    #[schemars(range(min = 0, max = 100))]
    pub weight: i32,
}

/// One domain + path of an L7 listener.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerRule {
    /// CLB `LocationId`, once known.
    #[serde(rename = "ruleID", default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<IngressListenerCertificate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_attribute: Option<IngressListenerAttribute>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group: Option<ListenerTargetGroup>,
}

/// What the controller last did with the cloud listener.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerStatus {
    #[serde(
        rename = "listenerID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub listener_id: Option<String>,
    /// `Synced` or `NotSynced`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Last result or error text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    /// `metadata.generation` of the spec the status describes. A `Synced` status for an older generation says
    /// nothing about the current spec (not in bcs, which had to mark listeners NotSynced before each change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Declared by the original, never written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status: Option<ListenerHealthStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_check_status: Option<UptimeCheckStatus>,
    /// Name of the owning PortPool, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub portpool: Option<String>,
    /// Name of the owning Ingress, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<String>,
}

/// Backend health per rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ListenerHealthStatus {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<ListenerRuleHealthStatus>,
}

/// Backend health of one rule (domain/path empty for L4).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ListenerRuleHealthStatus {
    pub domain: String,
    pub path: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backends: Vec<ListenerBackendHealthStatus>,
}

/// Health of one backend.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerBackendHealthStatus {
    pub ip: String,
    pub port: i32,
    pub health_status: bool,
    #[serde(rename = "targetID")]
    pub target_id: String,
    pub health_status_detail: String,
}

#[cfg(test)]
mod status_tests {
    use super::ListenerStatus;
    use crate::api::keys;

    #[test]
    fn synced_counts_only_for_the_generation_it_observed() {
        let status = ListenerStatus {
            status: Some(keys::LISTENER_STATUS_SYNCED.into()),
            observed_generation: Some(3),
            ..ListenerStatus::default()
        };
        assert!(status.synced_for(Some(3)));
        assert!(
            !status.synced_for(Some(4)),
            "a newer spec is not synced yet"
        );
        assert!(status.synced_for(None));
        let old_writer = ListenerStatus {
            observed_generation: None,
            ..status.clone()
        };
        assert!(!old_writer.synced_for(Some(1)));
        let failed = ListenerStatus {
            status: Some(keys::LISTENER_STATUS_NOT_SYNCED.into()),
            ..status
        };
        assert!(!failed.synced_for(Some(3)));
    }
}
