//! Port-mapping arithmetic not covered by the user-guide scenarios: `isRsPortFixed`, `ignoreSegment`,
//! `hostPort`, `startIndex`, GameStatefulSet pods, pods of another owner; plus small helpers.

use k8s_openapi::api::core::v1::{Container, ContainerPort, Pod, PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use super::*;
use crate::api::{IngressPortMapping, IngressSpec};

fn mapping(kind: &str, protocol: Protocol) -> IngressPortMapping {
    IngressPortMapping {
        workload_kind: kind.into(),
        workload_name: "gs".into(),
        workload_namespace: "game".into(),
        start_port: 20000,
        rs_start_port: None,
        start_index: 0,
        end_index: 1,
        segment_length: None,
        protocol,
        is_rs_port_fixed: None,
        ignore_segment: None,
        host_port: None,
        listener_attribute: None,
        certificate: None,
        routes: Vec::new(),
    }
}

fn ingress(mappings: Vec<IngressPortMapping>) -> Ingress {
    let mut ing = Ingress::new(
        "ing",
        IngressSpec {
            rules: Vec::new(),
            port_mappings: mappings,
        },
    );
    ing.metadata.namespace = Some("game".into());
    ing
}

/// Pod `gs-<i>` of kind `owner`, with container ports `(port, hostPort)`.
fn pod(i: i32, owner: &str, ports: &[(i32, Option<i32>)]) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some(format!("gs-{i}")),
            namespace: Some("game".into()),
            owner_references: Some(vec![OwnerReference {
                kind: owner.into(),
                name: "gs".into(),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                ports: Some(
                    ports
                        .iter()
                        .map(|&(container_port, host_port)| ContainerPort {
                            container_port,
                            host_port,
                            ..ContainerPort::default()
                        })
                        .collect(),
                ),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some("Running".into()),
            pod_ip: Some(format!("10.1.0.{i}")),
            host_ip: Some("192.168.0.1".into()),
            conditions: Some(vec![PodCondition {
                type_: "ContainersReady".into(),
                status: "True".into(),
                ..PodCondition::default()
            }]),
            ..PodStatus::default()
        }),
    }
}

fn world(pods: Vec<Pod>) -> World {
    World {
        load_balancers: vec![ResolvedLb {
            region: "ap-guangzhou".into(),
            id: "lb-1".into(),
            ..ResolvedLb::default()
        }],
        game_stateful_sets: vec![GameStatefulSet {
            namespace: "game".into(),
            name: "gs".into(),
            replicas: 3,
        }],
        pods,
        ..World::default()
    }
}

/// (name, port, endPort, backends as (ip, port)).
type ListenerSummary = (String, i32, Option<i32>, Vec<(String, i32)>);

fn summary(out: &Generated) -> Vec<ListenerSummary> {
    out.listeners
        .iter()
        .map(|l| {
            let backends = l
                .spec
                .target_group
                .iter()
                .flat_map(|tg| tg.backends.iter().map(|b| (b.ip.clone(), b.port)))
                .collect();
            (
                l.metadata.name.clone().unwrap_or_default(),
                l.spec.port,
                l.spec.end_port,
                backends,
            )
        })
        .collect()
}

fn b(ip: &str, port: i32) -> Vec<(String, i32)> {
    vec![(ip.to_owned(), port)]
}

#[test]
fn ingress_game_stateful_set_with_fixed_rs_port_and_start_index() {
    let mut m = mapping("gamestatefulset", Protocol::Tcp);
    m.start_index = 1;
    m.end_index = 3;
    m.rs_start_port = Some(7777);
    m.is_rs_port_fixed = Some(true);
    let out = generate(
        &ingress(vec![m]),
        &world(vec![
            pod(1, "GameStatefulSet", &[]),
            pod(2, "GameStatefulSet", &[]),
        ]),
    );
    assert_eq!(
        summary(&out),
        [
            ("lb-1-20001-0".to_owned(), 20001, None, b("10.1.0.1", 7777)),
            ("lb-1-20002-0".to_owned(), 20002, None, b("10.1.0.2", 7777)),
        ]
    );
    assert!(out.problems.is_empty(), "{:?}", out.problems);
}

#[test]
fn ingress_ignore_segment_makes_one_listener_per_port_with_consecutive_backend_ports() {
    let mut m = mapping("GameStatefulSet", Protocol::Udp);
    m.segment_length = Some(3);
    m.ignore_segment = Some(true);
    m.rs_start_port = Some(9000);
    m.start_index = 1;
    m.end_index = 2;
    let out = generate(
        &ingress(vec![m]),
        &world(vec![pod(1, "GameStatefulSet", &[])]),
    );
    // Ordinal 1: CLB 20003..=20005 → backend 9003..=9005.
    assert_eq!(
        summary(&out),
        [
            ("lb-1-20003-0".to_owned(), 20003, None, b("10.1.0.1", 9003)),
            ("lb-1-20004-0".to_owned(), 20004, None, b("10.1.0.1", 9004)),
            ("lb-1-20005-0".to_owned(), 20005, None, b("10.1.0.1", 9005)),
        ]
    );
}

#[test]
fn ingress_host_port_mapping_uses_the_declared_host_port_and_reports_missing_ones() {
    let mut m = mapping("GameStatefulSet", Protocol::Tcp);
    m.segment_length = Some(2);
    m.ignore_segment = Some(true);
    m.is_rs_port_fixed = Some(true);
    m.rs_start_port = Some(8000);
    m.host_port = Some(true);
    let out = generate(
        &ingress(vec![m]),
        &world(vec![pod(0, "GameStatefulSet", &[(8000, Some(31000))])]),
    );
    assert_eq!(
        summary(&out),
        [
            (
                "lb-1-20000-0".to_owned(),
                20000,
                None,
                b("192.168.0.1", 31000)
            ),
            ("lb-1-20001-0".to_owned(), 20001, None, vec![]),
        ]
    );
    assert_eq!(out.problems.len(), 1);
    assert_eq!(
        out.problems[0].to_string(),
        "spec.portMappings[0]: pod game/gs-0 declares no hostPort for TCP container port 8001"
    );
}

#[test]
fn ingress_mapping_skips_pods_of_another_owner_and_reports_missing_workloads() {
    let m = mapping("StatefulSet", Protocol::Tcp);
    let out = generate(
        &ingress(vec![m]),
        &world(vec![pod(0, "GameStatefulSet", &[])]),
    );
    assert_eq!(
        summary(&out),
        [("lb-1-20000-0".to_owned(), 20000, None, vec![])]
    );
    assert_eq!(out.problems[0].message, "StatefulSet game/gs not found");
}

#[test]
fn ingress_segment_mapping_with_reuse_carries_the_protocol_in_its_name() {
    let mut m = mapping("GameStatefulSet", Protocol::Udp);
    m.segment_length = Some(4);
    let mut w = world(vec![pod(0, "GameStatefulSet", &[])]);
    w.settings.tcp_udp_port_reuse = true;
    let out = generate(&ingress(vec![m]), &w);
    assert_eq!(
        summary(&out),
        [(
            "lb-1-udp-20000-20003".to_owned(),
            20000,
            Some(20003),
            b("10.1.0.0", 20000)
        )]
    );
}

#[test]
fn ingress_layer7_listener_keeps_only_listener_level_attributes() {
    let attr = IngressListenerAttribute {
        session_time: Some(30),
        sni_switch: Some(1),
        lb_policy: Some(crate::api::LbPolicy::IpHash),
        ..IngressListenerAttribute::default()
    };
    let kept = layer7_listener_attribute(Some(&attr)).unwrap();
    assert_eq!(
        (kept.sni_switch, kept.session_time, kept.lb_policy),
        (Some(1), None, None)
    );
    let only_rule_level = IngressListenerAttribute {
        session_time: Some(30),
        ..IngressListenerAttribute::default()
    };
    assert_eq!(layer7_listener_attribute(Some(&only_rule_level)), None);
}

#[test]
fn ingress_mapping_drains_pods_beyond_the_workloads_replicas() {
    let mut m = mapping("GameStatefulSet", Protocol::Tcp);
    m.end_index = 4;
    let pods: Vec<Pod> = (0..4).map(|i| pod(i, "GameStatefulSet", &[])).collect();
    let weights = |out: &Generated| -> Vec<i32> {
        out.listeners
            .iter()
            .flat_map(|l| {
                l.spec
                    .target_group
                    .iter()
                    .flat_map(|tg| tg.backends.iter().map(|b| b.weight))
            })
            .collect()
    };
    // Replicas 3: gs-3 is being scaled away and drained before its operator deletes it.
    let out = generate(&ingress(vec![m.clone()]), &world(pods.clone()));
    assert_eq!(weights(&out), vec![10, 10, 10, 0]);
    // The workload unknown (not found, or not readable): nothing is drained, and the problem is reported.
    let mut unknown = world(pods);
    unknown.game_stateful_sets.clear();
    let out = generate(&ingress(vec![m]), &unknown);
    assert_eq!(weights(&out), vec![10, 10, 10, 10]);
    assert!(
        out.problems
            .iter()
            .any(|p| p.message.contains("GameStatefulSet game/gs not found")),
        "{:?}",
        out.problems
    );
}
