//! Static checks of an Ingress that the CRD schema cannot express (admission). Each message
//! starts with the field path, e.g. `spec.rules[2].port: 8080 is already used by spec.rules[0] (TCP)`.
//!
//! Port overlaps inside one Ingress use the same arithmetic as generation and conflict detection
//! (mapping ranges include `segmentLength`; bcs left it out of its overlap check).

use std::collections::BTreeSet;

use super::lbref::parse_lb_annotations;
use super::world::Settings;
use crate::api::{
    CertificateMode, Ingress, IngressListenerCertificate, IngressPortMapping, IngressRule,
    Layer7Route, Protocol, ServiceRoute,
};

const MAX_PORT: i64 = 65535;

/// The CLB ports one rule or mapping occupies, for the overlap check.
struct PortRange {
    path: String,
    protocol: Protocol,
    first: i64,
    last: i64,
    from_mapping: bool,
}

/// Every problem found, in spec order; empty means valid.
pub fn validate(ingress: &Ingress, settings: &Settings) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = parse_lb_annotations(
        ingress.metadata.annotations.as_ref(),
        &settings.default_region,
    ) {
        errors.push(e.to_string());
    }
    let mut ranges = Vec::new();
    for (i, rule) in ingress.spec.rules.iter().enumerate() {
        ranges.push(check_rule(&format!("spec.rules[{i}]"), rule, &mut errors));
    }
    for (i, mapping) in ingress.spec.port_mappings.iter().enumerate() {
        let path = format!("spec.portMappings[{i}]");
        ranges.extend(check_mapping(&path, mapping, &mut errors));
    }
    check_overlaps(&ranges, settings, &mut errors);
    errors
}

/// One rule: protocol-specific fields, certificates, services and routes; returns its port.
fn check_rule(path: &str, rule: &IngressRule, errors: &mut Vec<String>) -> PortRange {
    let p = rule.protocol;
    if p.is_l7() {
        if rule.layer7_routes.is_empty() {
            errors.push(format!("{path}.layer7Routes: required for {p} rules"));
        }
        if !rule.services.is_empty() {
            errors.push(format!(
                "{path}.services: not used by {p} rules; put services under layer7Routes"
            ));
        }
    } else if !rule.layer7_routes.is_empty() {
        errors.push(format!(
            "{path}.layer7Routes: only HTTP and HTTPS rules have routes, not {p}"
        ));
    }
    let sni = p == Protocol::Https
        && rule.listener_attribute.as_ref().and_then(|a| a.sni_switch) == Some(1);
    check_certificate(path, p, rule.certificate.as_ref(), sni, errors);
    for (s, svc) in rule.services.iter().enumerate() {
        check_service(&format!("{path}.services[{s}]"), svc, errors);
    }
    let mut routes = BTreeSet::new();
    for (r, route) in rule.layer7_routes.iter().enumerate() {
        check_layer7_route(
            &format!("{path}.layer7Routes[{r}]"),
            route,
            sni,
            &mut routes,
            errors,
        );
    }
    PortRange {
        path: path.to_owned(),
        protocol: p,
        first: i64::from(rule.port),
        last: i64::from(rule.port),
        from_mapping: false,
    }
}

/// One route of an HTTP/HTTPS rule; `seen` holds the (domain, path) pairs of the rule's earlier routes.
fn check_layer7_route<'a>(
    rpath: &str,
    route: &'a Layer7Route,
    sni: bool,
    seen: &mut BTreeSet<(&'a str, &'a str)>,
    errors: &mut Vec<String>,
) {
    check_route_identity(rpath, &route.domain, route.path.as_deref(), seen, errors);
    let cert_id = route
        .certificate
        .as_ref()
        .and_then(|c| c.cert_id.as_deref());
    if sni && cert_id.is_none_or(str::is_empty) {
        errors.push(format!(
            "{rpath}.certificate: required when listenerAttribute.sniSwitch is 1"
        ));
    } else if let Some(cert) = &route.certificate {
        check_certificate_fields(&format!("{rpath}.certificate"), cert, errors);
    }
    for (s, svc) in route.services.iter().enumerate() {
        check_service(&format!("{rpath}.services[{s}]"), svc, errors);
    }
}

/// A route's domain is not empty and its (domain, path) does not repeat an earlier route's.
fn check_route_identity<'a>(
    rpath: &str,
    domain: &'a str,
    path: Option<&'a str>,
    seen: &mut BTreeSet<(&'a str, &'a str)>,
    errors: &mut Vec<String>,
) {
    if domain.trim().is_empty() {
        errors.push(format!("{rpath}.domain: must not be empty"));
    }
    let path = path.unwrap_or("");
    if !seen.insert((domain, path)) {
        errors.push(format!(
            "{rpath}: domain {domain:?} path {path:?} repeats an earlier route"
        ));
    }
}

/// One port mapping: workload kind, index range, segments, routes, certificate and the ports it needs;
/// returns its CLB port range when the index range is usable.
fn check_mapping(
    path: &str,
    m: &IngressPortMapping,
    errors: &mut Vec<String>,
) -> Option<PortRange> {
    let p = m.protocol;
    let kind = m.workload_kind.as_str();
    if !kind.eq_ignore_ascii_case("StatefulSet") && !kind.eq_ignore_ascii_case("GameStatefulSet") {
        errors.push(format!(
            "{path}.workloadKind: {kind:?} is not supported (StatefulSet or GameStatefulSet)"
        ));
    }
    if m.end_index <= m.start_index {
        errors.push(format!(
            "{path}.endIndex: {} must be greater than startIndex {} (the range is [startIndex, endIndex))",
            m.end_index, m.start_index
        ));
    }
    let len = i64::from(m.effective_segment_length());
    let segment_mode = len > 1 && !m.ignore_segment.unwrap_or(false);
    if segment_mode && !matches!(p, Protocol::Tcp | Protocol::Udp) {
        errors.push(format!(
            "{path}.segmentLength: port segments need TCP or UDP, not {p} (set ignoreSegment: true for one listener per port)"
        ));
    }
    if p.is_l7() && m.routes.is_empty() {
        errors.push(format!("{path}.routes: required for {p} mappings"));
    }
    if !p.is_l7() && !m.routes.is_empty() {
        errors.push(format!(
            "{path}.routes: only HTTP and HTTPS mappings have routes, not {p}"
        ));
    }
    let mut routes = BTreeSet::new();
    for (r, route) in m.routes.iter().enumerate() {
        let rpath = format!("{path}.routes[{r}]");
        check_route_identity(
            &rpath,
            &route.domain,
            route.path.as_deref(),
            &mut routes,
            errors,
        );
    }
    check_certificate(path, p, m.certificate.as_ref(), false, errors);
    (m.end_index > m.start_index).then(|| mapping_range(path, m, len, errors))
}

/// The CLB ports (and backend ports) of a mapping's ordinals must stay within 65535.
fn mapping_range(
    path: &str,
    m: &IngressPortMapping,
    len: i64,
    errors: &mut Vec<String>,
) -> PortRange {
    let first = i64::from(m.start_port) + i64::from(m.start_index) * len;
    let last = i64::from(m.start_port) + i64::from(m.end_index) * len - 1;
    if last > MAX_PORT {
        errors.push(format!(
            "{path}.endIndex: ordinals up to {} need CLB ports up to {last}, above {MAX_PORT}",
            m.end_index - 1
        ));
    }
    let rs_start = i64::from(m.rs_start_port.unwrap_or(0));
    if rs_start > 0 && !m.is_rs_port_fixed.unwrap_or(false) {
        let rs_last = rs_start + i64::from(m.end_index) * len - 1;
        if rs_last > MAX_PORT {
            errors.push(format!(
                "{path}.rsStartPort: ordinals up to {} need backend ports up to {rs_last}, above {MAX_PORT}",
                m.end_index - 1
            ));
        }
    }
    PortRange {
        path: path.to_owned(),
        protocol: m.protocol,
        first,
        last,
        from_mapping: true,
    }
}

/// Overlaps inside the Ingress. Same port space always clashes; TCP vs UDP clashes when the Listener names
/// would be equal (two rules, or two mappings, without TCP_UDP_PORT_REUSE).
fn check_overlaps(ranges: &[PortRange], settings: &Settings, errors: &mut Vec<String>) {
    for (j, b) in ranges.iter().enumerate() {
        for a in &ranges[..j] {
            let first = a.first.max(b.first);
            if first > a.last.min(b.last) {
                continue;
            }
            let same_class = is_udp_class(a.protocol) == is_udp_class(b.protocol);
            if !same_class && (settings.tcp_udp_port_reuse || a.from_mapping != b.from_mapping) {
                continue;
            }
            let field = if b.from_mapping { "startPort" } else { "port" };
            let note = if same_class {
                ""
            } else {
                " (TCP and UDP share a port only with TCP_UDP_PORT_REUSE=true)"
            };
            errors.push(format!(
                "{}.{field}: port {first} is already used by {} ({}){note}",
                b.path, a.path, a.protocol
            ));
        }
    }
}

fn is_udp_class(p: Protocol) -> bool {
    matches!(p, Protocol::Udp | Protocol::Quic)
}

/// HTTPS, TCP_SSL and QUIC listeners need a certificate unless SNI puts one on every route; other
/// protocols take none.
fn check_certificate(
    path: &str,
    p: Protocol,
    cert: Option<&IngressListenerCertificate>,
    sni: bool,
    errors: &mut Vec<String>,
) {
    let needs = matches!(p, Protocol::Https | Protocol::TcpSsl | Protocol::Quic);
    match cert {
        None if needs && !sni => errors.push(format!(
            "{path}.certificate: required for {p} unless listenerAttribute.sniSwitch is 1"
        )),
        Some(_) if !needs => errors.push(format!(
            "{path}.certificate: only HTTPS, TCP_SSL and QUIC listeners take a certificate, not {p}"
        )),
        Some(c) if !sni => {
            if c.cert_id.as_deref().is_none_or(str::is_empty) {
                errors.push(format!("{path}.certificate.certID: required for {p}"));
            }
            check_certificate_fields(&format!("{path}.certificate"), c, errors);
        }
        _ => {}
    }
}

fn check_certificate_fields(path: &str, c: &IngressListenerCertificate, errors: &mut Vec<String>) {
    if c.mode == Some(CertificateMode::Mutual) && c.cert_ca_id.as_deref().is_none_or(str::is_empty)
    {
        errors.push(format!("{path}.certCaID: required when mode is MUTUAL"));
    }
}

fn check_service(path: &str, svc: &ServiceRoute, errors: &mut Vec<String>) {
    let direct = svc.is_direct_connect.unwrap_or(false);
    if let Some(kind) = svc
        .service_kind
        .as_deref()
        .filter(|k| !k.is_empty() && !k.eq_ignore_ascii_case("service"))
    {
        errors.push(format!(
            "{path}.serviceKind: {kind:?} is not supported (only \"service\")"
        ));
    }
    if svc.service_name.trim().is_empty() {
        errors.push(format!("{path}.serviceName: must not be empty"));
    }
    if svc.host_port.unwrap_or(false) && !direct {
        errors.push(format!("{path}.hostPort: needs isDirectConnect: true"));
    }
    if !svc.subsets.is_empty() && !direct {
        errors.push(format!(
            "{path}.subsets: need isDirectConnect: true (NodePort backends are nodes, not pods)"
        ));
    }
    for (i, subset) in svc.subsets.iter().enumerate() {
        if subset.label_selector.is_empty() {
            errors.push(format!(
                "{path}.subsets[{i}].labelSelector: must not be empty"
            ));
        }
    }
}
