//! `spec.portMappings[]` → one listener per pod ordinal (segment mode) or per port.
//!
//! For ordinal `i` and `L = segmentLength || 1`: CLB ports `startPort + i·L ..= startPort + i·L + L − 1`,
//! backend port `rsStartPort + i·L` (or the CLB port when `rsStartPort` is unset; fixed at `rsStartPort` /
//! `startPort` with `isRsPortFixed`). Segment mode (`L > 1`, not `ignoreSegment`) makes one port-range
//! listener whose backend is the first backend port (CLB maps port `start+k` to `rs+k`); otherwise each of
//! the `L` ports is its own listener with backend port `rs + k`.

use k8s_openapi::api::core::v1::Pod;

use super::backends::{container_ports, host_ip, is_running, pod_ip, pod_weight};
use super::world::World;
use super::{Draft, Problem, layer7_listener_attribute, target_group};
use crate::api::keys::DEFAULT_WEIGHT;
use crate::api::{IngressPortMapping, ListenerBackend, ListenerRule, Protocol};

/// Largest CLB / container port.
const MAX_PORT: i64 = 65535;

enum Workload {
    StatefulSet,
    GameStatefulSet,
}

impl Workload {
    fn parse(kind: &str) -> Option<Workload> {
        if kind.eq_ignore_ascii_case("StatefulSet") {
            Some(Workload::StatefulSet)
        } else if kind.eq_ignore_ascii_case("GameStatefulSet") {
            Some(Workload::GameStatefulSet)
        } else {
            None
        }
    }

    fn owner_kind(&self) -> &'static str {
        match self {
            Workload::StatefulSet => "StatefulSet",
            Workload::GameStatefulSet => "GameStatefulSet",
        }
    }
}

pub(crate) fn mapping_drafts(
    index: usize,
    m: &IngressPortMapping,
    world: &World,
    problems: &mut Vec<Problem>,
) -> Vec<Draft> {
    let path = format!("spec.portMappings[{index}]");
    let mut problem = |message: String| {
        problems.push(Problem {
            path: path.clone(),
            message,
        })
    };
    let Some(workload) = Workload::parse(&m.workload_kind) else {
        problem(format!(
            "workloadKind {:?} is not supported (StatefulSet or GameStatefulSet); no listeners generated",
            m.workload_kind
        ));
        return Vec::new();
    };
    let ns = m.workload_namespace.as_str();
    let name = m.workload_name.as_str();
    // Pods at ordinals from `replicas` on are on their way out (scale-down): drained before they are deleted.
    let replicas = match workload {
        Workload::StatefulSet => world
            .stateful_set(ns, name)
            .map(|s| s.spec.as_ref().and_then(|spec| spec.replicas).unwrap_or(1)),
        Workload::GameStatefulSet => world.game_stateful_set(ns, name).map(|g| g.replicas),
    };
    if replicas.is_none() {
        problem(format!("{} {ns}/{name} not found", workload.owner_kind()));
    }

    let seg_len = i64::from(m.effective_segment_length());
    let segment_mode = seg_len > 1 && !m.ignore_segment.unwrap_or(false);
    if segment_mode && !matches!(m.protocol, Protocol::Tcp | Protocol::Udp) {
        problem(format!(
            "port segments need TCP or UDP, not {}; no listeners generated",
            m.protocol
        ));
        return Vec::new();
    }
    let rs_start = i64::from(m.rs_start_port.unwrap_or(0));
    let fixed = m.is_rs_port_fixed.unwrap_or(false);
    let use_host_port = m.host_port.unwrap_or(false);
    let l7 = m.protocol.is_l7();

    let mut drafts = Vec::new();
    for i in i64::from(m.start_index.max(0))..i64::from(m.end_index) {
        let start = i64::from(m.start_port) + i * seg_len;
        let rs = match (fixed, rs_start > 0) {
            (true, true) => rs_start,
            (true, false) => i64::from(m.start_port),
            (false, true) => rs_start + i * seg_len,
            (false, false) => start,
        };
        if start + seg_len - 1 > MAX_PORT || rs + seg_len - 1 > MAX_PORT {
            problem(format!(
                "ordinal {i} would need ports above {MAX_PORT}; ordinals from {i} on are skipped"
            ));
            break;
        }
        let pod_name = format!("{name}-{i}");
        let pod = world
            .pod(ns, &pod_name)
            .filter(|p| owned_by(p, workload.owner_kind(), name));
        let leaving = replicas.is_some_and(|r| i >= i64::from(r));
        // Segment mode: one listener over the whole segment; otherwise one per port.
        let offsets = if segment_mode { 0..1 } else { 0..seg_len };
        for k in offsets {
            let backend_port = rs + k;
            let backends: Vec<ListenerBackend> = pod
                .and_then(|p| {
                    backend(
                        p,
                        backend_port as i32,
                        m.protocol,
                        use_host_port,
                        leaving,
                        world,
                        &mut problem,
                    )
                })
                .into_iter()
                .collect();
            let port = (start + k) as i32;
            let end_port = segment_mode.then_some((start + seg_len - 1) as i32);
            let draft = if l7 {
                Draft {
                    source: path.clone(),
                    from_mapping: true,
                    port,
                    end_port,
                    protocol: m.protocol,
                    listener_attribute: layer7_listener_attribute(m.listener_attribute.as_ref()),
                    certificate: m.certificate.clone(),
                    target_group: None,
                    rules: m
                        .routes
                        .iter()
                        .map(|r| ListenerRule {
                            rule_id: None,
                            domain: Some(r.domain.clone()),
                            path: r.path.clone(),
                            certificate: None,
                            listener_attribute: r.listener_attribute.clone(),
                            target_group: Some(target_group(m.protocol.as_str(), backends.clone())),
                        })
                        .collect(),
                }
            } else {
                Draft {
                    source: path.clone(),
                    from_mapping: true,
                    port,
                    end_port,
                    protocol: m.protocol,
                    listener_attribute: m.listener_attribute.clone(),
                    certificate: m.certificate.clone(),
                    target_group: Some(target_group(m.protocol.as_str(), backends)),
                    rules: Vec::new(),
                }
            };
            drafts.push(draft);
        }
    }
    drafts
}

/// The backend of one mapped port on `pod`: pod IP + port, or host IP + the hostPort declared for that
/// container port. Pods that are not running have none; unready, terminating or `leaving` (ordinal beyond the
/// workload's replicas) pods get weight 0.
fn backend(
    pod: &Pod,
    port: i32,
    protocol: Protocol,
    use_host_port: bool,
    leaving: bool,
    world: &World,
    problem: &mut impl FnMut(String),
) -> Option<ListenerBackend> {
    if !is_running(pod) {
        return None;
    }
    let mut weight_problems = Vec::new();
    let weight = if leaving {
        0
    } else {
        pod_weight(pod, DEFAULT_WEIGHT, &mut weight_problems)
    };
    weight_problems.into_iter().for_each(&mut *problem);
    if !use_host_port {
        return Some(ListenerBackend {
            ip: pod_ip(pod)?.to_owned(),
            port,
            weight,
        });
    }
    let l4 = match protocol {
        Protocol::Udp | Protocol::Quic => "UDP",
        _ => "TCP",
    };
    let host_port = container_ports(pod)
        .find(|c| {
            c.container_port == port
                && c.protocol
                    .as_deref()
                    .unwrap_or("TCP")
                    .eq_ignore_ascii_case(l4)
        })
        .and_then(|c| c.host_port)
        .filter(|p| *p > 0);
    let Some(host_port) = host_port else {
        problem(format!(
            "pod {}/{} declares no hostPort for {l4} container port {port}",
            pod.metadata.namespace.as_deref().unwrap_or("default"),
            pod.metadata.name.as_deref().unwrap_or_default()
        ));
        return None;
    };
    Some(ListenerBackend {
        ip: host_ip(pod, world)?.to_owned(),
        port: host_port,
        weight,
    })
}

/// The pod's controller is the mapped workload (a same-named pod of something else is not a backend).
fn owned_by(pod: &Pod, kind: &str, name: &str) -> bool {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .any(|o| o.kind.eq_ignore_ascii_case(kind) && o.name == name)
}
