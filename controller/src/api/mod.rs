//! The `networkextension.bkbcs.tencent.com/v1` API types: Ingress, Listener, PortPool, PortBinding.
//!
//! JSON names and optionality follow bcs-ingress-controller so users can apply the same YAML. Unlike the
//! original, all four kinds have a status subresource, and the schemas reject statically invalid
//! values (port ranges, protocol enums, weights, health-check bounds) that the original only checked in its
//! webhook, if at all.

pub mod common;
pub mod ingress;
pub mod keys;
pub mod listener;
pub mod naming;
pub mod object_key;
pub mod portbinding;
pub mod portpool;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

pub use common::{
    AwsAttribute, CertificateMode, FreeformObject, IngressListenerAttribute,
    IngressListenerCertificate, IngressLoadBalancer, LbPolicy, ListenerHealthCheck, Protocol,
    SessionType, UptimeCheckConfig, UptimeCheckStatus,
};
pub use ingress::{
    ForwardType, Ingress, IngressPortMapping, IngressPortMappingLayer7Route, IngressRule,
    IngressSpec, IngressStatus, IngressSubset, IngressWeight, Layer7Route, ServiceRoute,
};
pub use listener::{
    Listener, ListenerBackend, ListenerBackendHealthStatus, ListenerHealthStatus, ListenerRule,
    ListenerRuleHealthStatus, ListenerSpec, ListenerStatus, ListenerTargetGroup,
};
pub use naming::{listener_name, mapping_listener_name, pool_listener_name, rule_listener_name};
pub use object_key::ObjectKey;
pub use portbinding::{
    PortBinding, PortBindingItem, PortBindingSpec, PortBindingStatus, PortBindingStatusItem,
};
pub use portpool::{
    PortPool, PortPoolItem, PortPoolItemStatus, PortPoolSpec, PortPoolStatus, parse_pool_protocols,
};

/// API group of all four kinds.
pub const GROUP: &str = "networkextension.bkbcs.tencent.com";
/// API version of all four kinds.
pub const VERSION: &str = "v1";
/// `apiVersion` as written in manifests.
pub const API_VERSION: &str = "networkextension.bkbcs.tencent.com/v1";

/// The four CRDs, in a fixed order (Ingress, Listener, PortPool, PortBinding) so generated files are stable.
pub fn all_crds() -> Vec<CustomResourceDefinition> {
    vec![
        Ingress::crd(),
        Listener::crd(),
        PortPool::crd(),
        PortBinding::crd(),
    ]
}

/// [`all_crds`] as one multi-document YAML stream (`---` before each document), as printed by
/// `clb-controller crds` and copied into the Helm chart.
pub fn crds_yaml() -> Result<String, serde_yaml::Error> {
    let mut out = String::new();
    for crd in all_crds() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&crd)?);
    }
    Ok(out)
}
