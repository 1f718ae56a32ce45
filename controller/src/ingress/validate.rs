//! Static checks of an Ingress that the CRD schema cannot express (admission, reference §3.6). Each message
//! starts with the field path, e.g. `spec.rules[2].port: 8080 is already used by spec.rules[0] (TCP)`.
//!
//! Port overlaps inside one Ingress use the same arithmetic as generation and conflict detection
//! (mapping ranges include `segmentLength`, fixing quirk Q8).

use std::collections::BTreeSet;

use super::lbref::parse_lb_annotations;
use super::world::Settings;
use crate::api::{CertificateMode, Ingress, IngressListenerCertificate, Protocol, ServiceRoute};

const MAX_PORT: i64 = 65535;

/// Every problem found, in spec order; empty means valid.
pub fn validate(ingress: &Ingress, settings: &Settings) -> Vec<String> {
    let mut errors = Vec::new();
    if let Err(e) = parse_lb_annotations(
        ingress.metadata.annotations.as_ref(),
        &settings.default_region,
    ) {
        errors.push(e.to_string());
    }
    // (path, protocol, first, last, from a mapping)
    let mut ranges: Vec<(String, Protocol, i64, i64, bool)> = Vec::new();

    for (i, rule) in ingress.spec.rules.iter().enumerate() {
        let path = format!("spec.rules[{i}]");
        let p = rule.protocol;
        if p.is_layer7() {
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
        check_certificate(&path, p, rule.certificate.as_ref(), sni, &mut errors);
        for (s, svc) in rule.services.iter().enumerate() {
            check_service(&format!("{path}.services[{s}]"), svc, &mut errors);
        }
        let mut routes = BTreeSet::new();
        for (r, route) in rule.layer7_routes.iter().enumerate() {
            let rpath = format!("{path}.layer7Routes[{r}]");
            if route.domain.trim().is_empty() {
                errors.push(format!("{rpath}.domain: must not be empty"));
            }
            if !routes.insert((route.domain.as_str(), route.path.as_deref().unwrap_or(""))) {
                errors.push(format!(
                    "{rpath}: domain {:?} path {:?} repeats an earlier route",
                    route.domain,
                    route.path.as_deref().unwrap_or("")
                ));
            }
            if sni
                && route
                    .certificate
                    .as_ref()
                    .and_then(|c| c.cert_id.as_deref())
                    .is_none_or(str::is_empty)
            {
                errors.push(format!(
                    "{rpath}.certificate: required when listenerAttribute.sniSwitch is 1"
                ));
            } else if let Some(cert) = &route.certificate {
                check_certificate_fields(&format!("{rpath}.certificate"), cert, &mut errors);
            }
            for (s, svc) in route.services.iter().enumerate() {
                check_service(&format!("{rpath}.services[{s}]"), svc, &mut errors);
            }
        }
        ranges.push((path, p, i64::from(rule.port), i64::from(rule.port), false));
    }

    for (i, m) in ingress.spec.port_mappings.iter().enumerate() {
        let path = format!("spec.portMappings[{i}]");
        let p = m.protocol;
        let kind = m.workload_kind.as_str();
        if !kind.eq_ignore_ascii_case("StatefulSet")
            && !kind.eq_ignore_ascii_case("GameStatefulSet")
        {
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
        if p.is_layer7() && m.routes.is_empty() {
            errors.push(format!("{path}.routes: required for {p} mappings"));
        }
        if !p.is_layer7() && !m.routes.is_empty() {
            errors.push(format!(
                "{path}.routes: only HTTP and HTTPS mappings have routes, not {p}"
            ));
        }
        let mut routes = BTreeSet::new();
        for (r, route) in m.routes.iter().enumerate() {
            if route.domain.trim().is_empty() {
                errors.push(format!("{path}.routes[{r}].domain: must not be empty"));
            }
            if !routes.insert((route.domain.as_str(), route.path.as_deref().unwrap_or(""))) {
                errors.push(format!(
                    "{path}.routes[{r}]: domain {:?} path {:?} repeats an earlier route",
                    route.domain,
                    route.path.as_deref().unwrap_or("")
                ));
            }
        }
        check_certificate(&path, p, m.certificate.as_ref(), false, &mut errors);
        if m.end_index > m.start_index {
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
            ranges.push((path, p, first, last, true));
        }
    }

    // Overlaps inside the Ingress. Same port space always clashes; TCP vs UDP clashes when the Listener
    // names would be equal (two rules, or two mappings, without TCP_UDP_PORT_REUSE).
    for (j, b) in ranges.iter().enumerate() {
        for a in &ranges[..j] {
            let first = a.2.max(b.2);
            if first > a.3.min(b.3) {
                continue;
            }
            let same_class = is_udp_class(a.1) == is_udp_class(b.1);
            if !same_class && (settings.tcp_udp_port_reuse || a.4 != b.4) {
                continue;
            }
            let field = if b.4 { "startPort" } else { "port" };
            let note = if same_class {
                ""
            } else {
                " (TCP and UDP share a port only with TCP_UDP_PORT_REUSE=true)"
            };
            errors.push(format!(
                "{}.{field}: port {first} is already used by {} ({}){note}",
                b.0, a.0, a.1
            ));
        }
    }
    errors
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
