//! `spec.rules[]` → one listener draft per rule.

use std::collections::BTreeSet;

use super::backends::route_backends;
use super::world::World;
use super::{Draft, Problem, layer7_listener_attribute, target_group};
use crate::api::{IngressRule, ListenerBackend, ListenerRule, ServiceRoute};

pub(crate) fn rule_draft(
    index: usize,
    rule: &IngressRule,
    namespace: &str,
    world: &World,
    problems: &mut Vec<Problem>,
) -> Draft {
    let path = format!("spec.rules[{index}]");
    if !rule.protocol.is_l7() {
        let backends = services_backends(&path, &rule.services, namespace, world, problems);
        return Draft {
            source: path,
            from_mapping: false,
            port: rule.port,
            end_port: None,
            protocol: rule.protocol,
            listener_attribute: rule.listener_attribute.clone(),
            certificate: rule.certificate.clone(),
            target_group: Some(target_group(rule.protocol.as_str(), backends)),
            rules: Vec::new(),
        };
    }
    let mut seen = BTreeSet::new();
    let mut rules = Vec::new();
    for (r, route) in rule.layer7_routes.iter().enumerate() {
        let route_path = format!("{path}.layer7Routes[{r}]");
        if !seen.insert((route.domain.clone(), route.path.clone())) {
            problems.push(Problem {
                path: route_path,
                message: format!(
                    "domain {} path {} repeats an earlier route; ignored",
                    route.domain,
                    route.path.as_deref().unwrap_or("")
                ),
            });
            continue;
        }
        let backends = services_backends(&route_path, &route.services, namespace, world, problems);
        let protocol = route
            .forward_type
            .map_or(rule.protocol.as_str(), |f| match f {
                crate::api::ForwardType::Grpc => "GRPC",
                crate::api::ForwardType::Quic => "QUIC",
            });
        rules.push(ListenerRule {
            rule_id: None,
            domain: Some(route.domain.clone()),
            path: route.path.clone(),
            certificate: route.certificate.clone(),
            listener_attribute: route.listener_attribute.clone(),
            target_group: Some(target_group(protocol, backends)),
        });
    }
    Draft {
        source: path,
        from_mapping: false,
        port: rule.port,
        end_port: None,
        protocol: rule.protocol,
        listener_attribute: layer7_listener_attribute(rule.listener_attribute.as_ref()),
        certificate: rule.certificate.clone(),
        target_group: None,
        rules,
    }
}

/// Backends of several services on one listener or rule; an (IP, port) seen twice keeps its first weight.
fn services_backends(
    path: &str,
    services: &[ServiceRoute],
    namespace: &str,
    world: &World,
    problems: &mut Vec<Problem>,
) -> Vec<ListenerBackend> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (s, route) in services.iter().enumerate() {
        let result = route_backends(route, namespace, world);
        problems.extend(result.problems.into_iter().map(|message| Problem {
            path: format!("{path}.services[{s}]"),
            message,
        }));
        for b in result.backends {
            if seen.insert((b.ip.clone(), b.port)) {
                out.push(b);
            }
        }
    }
    out
}
