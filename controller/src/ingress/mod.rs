//! Ingress → Listener generation, as pure functions of an Ingress and a [`World`] snapshot.
//!
//! The reconciler reads the cluster (Services, Pods, Nodes, workloads) and resolves the Ingress's CLBs, then
//! calls [`generate`]: the result is the full desired set of Listener CRs (one per rule or mapped port per
//! CLB), the problems bcs reports as `IngressBindFailed` warnings (a missing Service gives a listener with no
//! backends, not an error), and the `status.loadbalancers` to write. Diffing against existing Listener CRs
//! and writing them is the caller's job.
//!
//! Admission helpers live here too, because they share the port arithmetic: [`validate`] (what the CRD
//! schema cannot express, messages with field paths) and [`conflict`] (cluster-wide port claims per
//! `region:lbID` across Ingresses and PortPools).

mod backends;
pub mod conflict;
pub mod lbref;
mod mapping;
mod rules;
pub mod validate;
pub mod world;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use serde::Serialize;

use crate::api::keys::{
    LABEL_LB_ID, LABEL_LB_REGION, LABEL_OWNER_KIND, LABEL_OWNER_NAME, LABEL_SEGMENT_LISTENER,
    LABEL_UPTIME_CHECK, LABEL_VALUE_FALSE, LABEL_VALUE_INGRESS_NAME, LABEL_VALUE_TRUE,
};
use crate::api::{
    API_VERSION, Ingress, IngressListenerAttribute, IngressListenerCertificate,
    IngressLoadBalancer, Listener, ListenerRule, ListenerSpec, ListenerTargetGroup, Protocol,
    mapping_listener_name, rule_listener_name,
};

pub(crate) use backends::pod_clb_weight;
pub use conflict::{
    ClaimOwner, Conflict, PortClaim, find_conflicts, ingress_claims, portpool_claims,
};
pub use lbref::{LbAnnotationError, LbKey, LbSelection, parse_lb_annotations};
pub use validate::validate;
pub use world::{GameStatefulSet, ResolvedLb, Settings, World};

/// Value of `owner-kind` on listeners generated from an Ingress.
pub const OWNER_KIND_INGRESS: &str = "Ingress";

/// What one Ingress wants, given a [`World`].
#[derive(Clone, Debug, Default, Serialize)]
pub struct Generated {
    /// Desired Listener CRs, CLB by CLB in annotation order, rules before mappings, in spec order.
    pub listeners: Vec<Listener>,
    /// Things that left a listener without (some) backends; reported as warning events, never fatal.
    pub problems: Vec<Problem>,
    /// The Ingress's `status.loadbalancers`.
    pub load_balancers: Vec<IngressLoadBalancer>,
}

/// A warning about one rule or mapping (`spec.rules[0].services[1]: service default/x not found`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Field path of the rule, route or mapping concerned.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

/// A listener independent of the CLB it lands on (every CLB of the Ingress gets the same ones).
#[derive(Clone, Debug)]
pub(crate) struct Draft {
    /// Field path of the rule or mapping it comes from.
    pub source: String,
    pub from_mapping: bool,
    pub port: i32,
    /// Inclusive last port of a segment listener.
    pub end_port: Option<i32>,
    pub protocol: Protocol,
    pub listener_attribute: Option<IngressListenerAttribute>,
    pub certificate: Option<IngressListenerCertificate>,
    pub target_group: Option<ListenerTargetGroup>,
    pub rules: Vec<ListenerRule>,
}

/// Desired listeners, problems and status of `ingress` in `world`. Pure: same inputs, same output.
pub fn generate(ingress: &Ingress, world: &World) -> Generated {
    let namespace = ingress.metadata.namespace.as_deref().unwrap_or("default");
    let mut problems = Vec::new();
    let mut drafts = Vec::new();
    for (i, rule) in ingress.spec.rules.iter().enumerate() {
        drafts.push(rules::rule_draft(i, rule, namespace, world, &mut problems));
    }
    for (i, mapping) in ingress.spec.port_mappings.iter().enumerate() {
        drafts.extend(mapping::mapping_drafts(i, mapping, world, &mut problems));
    }

    let reuse = world.settings.tcp_udp_port_reuse;
    let mut listeners = Vec::new();
    // Global, not per CLB: two CLBs with the same bare id in different regions would collide too.
    let mut names = BTreeSet::new();
    for lb in &world.load_balancers {
        for draft in &drafts {
            let name = if draft.from_mapping {
                mapping_listener_name(&lb.id, draft.port, draft.end_port, draft.protocol, reuse)
            } else {
                rule_listener_name(&lb.id, draft.port, draft.protocol, reuse)
            };
            if !names.insert(name.clone()) {
                problems.push(Problem {
                    path: draft.source.clone(),
                    message: format!(
                        "listener {name} on {}:{} is generated twice ({} port {}); only the first is kept",
                        lb.region, lb.id, draft.protocol, draft.port
                    ),
                });
                continue;
            }
            listeners.push(build_listener(ingress, namespace, lb, name, draft));
        }
    }

    Generated {
        listeners,
        problems,
        load_balancers: world
            .load_balancers
            .iter()
            .map(ResolvedLb::to_status)
            .collect(),
    }
}

fn build_listener(
    ingress: &Ingress,
    namespace: &str,
    lb: &ResolvedLb,
    name: String,
    draft: &Draft,
) -> Listener {
    let ingress_name = ingress.metadata.name.clone().unwrap_or_default();
    let segment = draft.end_port.is_some();
    let mut labels = BTreeMap::from([
        (ingress_name.clone(), LABEL_VALUE_INGRESS_NAME.to_owned()),
        (
            LABEL_SEGMENT_LISTENER.to_owned(),
            if segment {
                LABEL_VALUE_TRUE
            } else {
                LABEL_VALUE_FALSE
            }
            .to_owned(),
        ),
        (LABEL_LB_ID.to_owned(), lb.id.clone()),
        (LABEL_LB_REGION.to_owned(), lb.region.clone()),
        (LABEL_OWNER_KIND.to_owned(), OWNER_KIND_INGRESS.to_owned()),
        (LABEL_OWNER_NAME.to_owned(), ingress_name.clone()),
    ]);
    if uptime_check_enabled(draft.listener_attribute.as_ref()) {
        labels.insert(LABEL_UPTIME_CHECK.to_owned(), LABEL_VALUE_TRUE.to_owned());
    }
    // Without a uid (an object never stored) there is nothing valid to point at.
    let owner_references = ingress.metadata.uid.as_ref().map(|uid| {
        vec![OwnerReference {
            api_version: API_VERSION.to_owned(),
            kind: OWNER_KIND_INGRESS.to_owned(),
            name: ingress_name.clone(),
            uid: uid.clone(),
            controller: Some(true),
            block_owner_deletion: None,
        }]
    });
    let mut rules = draft.rules.clone();
    rules.sort_by(|a, b| (&a.domain, &a.path).cmp(&(&b.domain, &b.path)));
    Listener {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(namespace.to_owned()),
            labels: Some(labels),
            owner_references,
            ..ObjectMeta::default()
        },
        spec: ListenerSpec {
            loadbalancer_id: lb.id.clone(),
            port: draft.port,
            end_port: draft.end_port,
            protocol: draft.protocol,
            listener_attribute: draft.listener_attribute.clone(),
            certificate: draft.certificate.clone(),
            target_group: draft.target_group.clone(),
            rules,
        },
        status: None,
    }
}

/// `uptimeCheck.enabled: true` in the listener's attributes.
fn uptime_check_enabled(attr: Option<&IngressListenerAttribute>) -> bool {
    attr.and_then(|a| a.uptime_check.as_ref())
        .and_then(|u| u.0.get("enabled"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false)
}

/// The part of an attribute that belongs to an L7 listener (the rest is per rule).
pub(crate) fn layer7_listener_attribute(
    attr: Option<&IngressListenerAttribute>,
) -> Option<IngressListenerAttribute> {
    let attr = attr?;
    let kept = IngressListenerAttribute {
        sni_switch: attr.sni_switch,
        keep_alive_enable: attr.keep_alive_enable,
        uptime_check: attr.uptime_check.clone(),
        ..IngressListenerAttribute::default()
    };
    (kept != IngressListenerAttribute::default()).then_some(kept)
}

/// Backends sorted by (IP, port), as the Listener type documents.
pub(crate) fn target_group(
    protocol: &str,
    mut backends: Vec<crate::api::ListenerBackend>,
) -> ListenerTargetGroup {
    backends.sort();
    ListenerTargetGroup {
        protocol: Some(protocol.to_owned()),
        backends,
        ..ListenerTargetGroup::default()
    }
}

#[cfg(test)]
mod tests;
