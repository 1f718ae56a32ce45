//! What the reconciler read before calling [`super::generate`]: a plain snapshot, so generation is a pure
//! function of (Ingress, World) and the tests build worlds by hand.

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;

use crate::api::IngressLoadBalancer;

/// Controller settings that change what is generated or accepted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    /// Region of load balancers named without a `region:` prefix (`--region`).
    pub default_region: String,
    /// `TCP_UDP_PORT_REUSE=true`: TCP and UDP listeners may share a port; L4 listener names then carry the
    /// protocol (`<lb>-tcp-80`) so the two do not collide.
    pub tcp_udp_port_reuse: bool,
}

/// A CLB the Ingress's `lbids` / `lbnames` annotation resolved to (`DescribeLoadBalancers`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedLb {
    pub region: String,
    /// Bare id, `lb-xxx`.
    pub id: String,
    pub name: String,
    /// `OPEN` or `INTERNAL`.
    pub lb_type: Option<String>,
    pub vips: Vec<String>,
    /// The CLB's domain, if it has one.
    pub domain: Option<String>,
}

impl ResolvedLb {
    /// The entry of the Ingress's `status.loadbalancers`.
    pub fn to_status(&self) -> IngressLoadBalancer {
        IngressLoadBalancer {
            loadbalancer_name: Some(self.name.clone()).filter(|n| !n.is_empty()),
            loadbalancer_id: Some(self.id.clone()),
            region: Some(self.region.clone()),
            lb_type: self.lb_type.clone(),
            ips: self.vips.clone(),
            dns_name: self.domain.clone(),
            scheme: None,
            aws_lb_type: None,
        }
    }
}

/// A `tkex.tencent.com/v1alpha1` GameStatefulSet, read dynamically (no typed client): only what port
/// mappings need. Its pods are named `<name>-<ordinal>` like a StatefulSet's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GameStatefulSet {
    pub namespace: String,
    pub name: String,
    pub replicas: i32,
}

/// Everything [`super::generate`] may look at. Objects of every namespace may be present; lookups filter.
#[derive(Clone, Debug, Default)]
pub struct World {
    pub settings: Settings,
    /// The Ingress's load balancers, in annotation order.
    pub load_balancers: Vec<ResolvedLb>,
    pub services: Vec<Service>,
    /// Used only for Services without a selector (manually managed endpoints).
    pub endpoint_slices: Vec<EndpointSlice>,
    pub pods: Vec<Pod>,
    pub nodes: Vec<Node>,
    pub stateful_sets: Vec<StatefulSet>,
    pub game_stateful_sets: Vec<GameStatefulSet>,
}

impl World {
    pub(crate) fn service(&self, namespace: &str, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| is_named(&s.metadata, namespace, name))
    }

    pub(crate) fn pod(&self, namespace: &str, name: &str) -> Option<&Pod> {
        self.pods
            .iter()
            .find(|p| is_named(&p.metadata, namespace, name))
    }

    pub(crate) fn stateful_set(&self, namespace: &str, name: &str) -> Option<&StatefulSet> {
        self.stateful_sets
            .iter()
            .find(|s| is_named(&s.metadata, namespace, name))
    }

    pub(crate) fn game_stateful_set(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<&GameStatefulSet> {
        self.game_stateful_sets
            .iter()
            .find(|g| g.namespace == namespace && g.name == name)
    }

    /// InternalIP of a node, for pods whose `status.hostIP` is not filled in yet.
    pub(crate) fn node_internal_ip(&self, node_name: &str) -> Option<&str> {
        let node = self
            .nodes
            .iter()
            .find(|n| n.metadata.name.as_deref() == Some(node_name))?;
        node.status
            .as_ref()?
            .addresses
            .as_ref()?
            .iter()
            .find(|a| a.type_ == "InternalIP")
            .map(|a| a.address.as_str())
    }
}

fn is_named(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    namespace: &str,
    name: &str,
) -> bool {
    meta.name.as_deref() == Some(name)
        && meta.namespace.as_deref().unwrap_or("default") == namespace
}
