//! Admission rules: each allowed and denied, with the message.

use serde_json::{Value, json};

use super::register::{WebhookTarget, webhook_configuration};
use super::*;
use crate::api::{Ingress, PortBinding, PortPool};

const REGION: &str = "ap-guangzhou";

fn settings() -> Settings {
    Settings {
        default_region: REGION.into(),
        tcp_udp_port_reuse: false,
    }
}

fn pool(namespace: &str, name: &str, items: Value) -> PortPool {
    serde_json::from_value(json!({
        "apiVersion": "networkextension.bkbcs.tencent.com/v1",
        "kind": "PortPool",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"poolItems": items},
    }))
    .unwrap()
}

fn item(name: &str, lb: &str, start: i32, end: i32) -> Value {
    json!({"itemName": name, "loadBalancerIDs": [lb], "startPort": start, "endPort": end})
}

fn ingress(namespace: &str, name: &str, lbids: &str, spec: Value) -> Ingress {
    serde_json::from_value(json!({
        "apiVersion": "networkextension.bkbcs.tencent.com/v1",
        "kind": "Ingress",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": {"networkextension.bkbcs.tencent.com/lbids": lbids},
        },
        "spec": spec,
    }))
    .unwrap()
}

fn tcp_rule(port: i32) -> Value {
    json!({"port": port, "protocol": "TCP", "services": [{"serviceName": "svc", "serviceNamespace": "ns", "servicePort": 80}]})
}

fn binding(
    namespace: &str,
    pod: &str,
    pool: &str,
    pool_ns: &str,
    item: &str,
    port: i32,
) -> PortBinding {
    serde_json::from_value(json!({
        "apiVersion": "networkextension.bkbcs.tencent.com/v1",
        "kind": "PortBinding",
        "metadata": {"name": pod, "namespace": namespace},
        "spec": {"portBindingList": [{
            "poolName": pool, "poolNamespace": pool_ns, "poolItemName": item,
            "protocol": "TCP", "startPort": port, "endPort": 0, "rsStartPort": 8080,
        }]},
    }))
    .unwrap()
}

fn review(p: &PortPool, old: Option<&PortPool>, view: &ClusterView) -> Vec<String> {
    review_portpool(p, old, view, &settings())
}

fn assert_one(errors: &[String], expected: &str) {
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert!(
        errors[0].contains(expected),
        "{:?} lacks {expected:?}",
        errors[0]
    );
}

// ---- PortPool: static rules ---------------------------------------------------------------------------

#[test]
fn a_valid_pool_is_allowed() {
    let p = pool(
        "ns",
        "p",
        json!([
            item("a", "lb-1", 30000, 30100),
            item("b", "lb-1", 30100, 30200)
        ]),
    );
    assert_eq!(
        review(&p, None, &ClusterView::default()),
        Vec::<String>::new()
    );
}

#[test]
fn repeated_item_names_are_denied() {
    let p = pool(
        "ns",
        "p",
        json!([
            item("a", "lb-1", 30000, 30100),
            item("a", "lb-2", 30000, 30100)
        ]),
    );
    assert_eq!(
        review(&p, None, &ClusterView::default()),
        vec![r#"spec.poolItems[1].itemName: "a" is already used by spec.poolItems[0]"#.to_owned()]
    );
}

#[test]
fn end_port_must_exceed_start_port() {
    let p = pool("ns", "p", json!([item("a", "lb-1", 30000, 30000)]));
    assert_one(
        &review(&p, None, &ClusterView::default()),
        "spec.poolItems[0].endPort: 30000 must be greater than startPort 30000",
    );
}

#[test]
fn too_many_ports_in_one_item_are_denied_but_segments_count_once() {
    let p = pool("ns", "p", json!([item("a", "lb-1", 20000, 24001)]));
    assert_one(
        &review(&p, None, &ClusterView::default()),
        "spec.poolItems[0].endPort: 4001 ports or segments in one item, more than 4000",
    );
    let mut segmented = item("a", "lb-1", 20000, 24001);
    segmented["segmentLength"] = json!(2);
    let p = pool("ns", "p", json!([segmented]));
    assert!(review(&p, None, &ClusterView::default()).is_empty());
}

#[test]
fn overlapping_items_on_one_lb_are_denied_whatever_the_protocol() {
    let mut udp = item("b", "lb-1", 30050, 30150);
    udp["protocol"] = json!("UDP");
    let mut tcp = item("a", "lb-1", 30000, 30100);
    tcp["protocol"] = json!("TCP");
    let p = pool("ns", "p", json!([tcp, udp]));
    assert_one(
        &review(&p, None, &ClusterView::default()),
        "spec.poolItems[1]: ports 30050-30149 on ap-guangzhou:lb-1 overlap spec.poolItems[0] (ports 30000-30099) from port 30050",
    );
    // Same ports on another CLB, or the same id in another region, are fine.
    let p = pool(
        "ns",
        "p",
        json!([
            item("a", "lb-1", 30000, 30100),
            item("b", "lb-2", 30000, 30100),
            item("c", "ap-shanghai:lb-1", 30000, 30100)
        ]),
    );
    assert!(review(&p, None, &ClusterView::default()).is_empty());
}

#[test]
fn unknown_policy_and_protocol_are_denied() {
    let mut bad = item("a", "lb-1", 30000, 30100);
    bad["protocol"] = json!("HTTP");
    let mut p = pool("ns", "p", json!([bad]));
    p.spec.allocate_policy = Some("random".into());
    let errors = review(&p, None, &ClusterView::default());
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(errors[0].starts_with("spec.allocatePolicy: \"random\""));
    assert!(errors[1].starts_with("spec.poolItems[0].protocol: \"HTTP\""));
}

// ---- PortPool: UPDATE ----------------------------------------------------------------------------------

#[test]
fn end_port_may_grow_but_not_shrink() {
    let old = pool("ns", "p", json!([item("a", "lb-1", 30000, 30100)]));
    let grown = pool("ns", "p", json!([item("a", "lb-1", 30000, 30200)]));
    assert!(review(&grown, Some(&old), &ClusterView::default()).is_empty());
    let shrunk = pool("ns", "p", json!([item("a", "lb-1", 30000, 30050)]));
    assert_eq!(
        review(&shrunk, Some(&old), &ClusterView::default()),
        vec!["spec.poolItems[0].endPort: may only grow (30100 → 30050)".to_owned()]
    );
}

#[test]
fn start_port_and_segment_length_are_immutable() {
    let old = pool("ns", "p", json!([item("a", "lb-1", 30000, 30100)]));
    let moved = pool("ns", "p", json!([item("a", "lb-1", 30010, 30100)]));
    assert_one(
        &review(&moved, Some(&old), &ClusterView::default()),
        "spec.poolItems[0].startPort: cannot change (30000 → 30010)",
    );
    let mut seg = item("a", "lb-1", 30000, 30100);
    seg["segmentLength"] = json!(5);
    let segmented = pool("ns", "p", json!([seg]));
    assert_one(
        &review(&segmented, Some(&old), &ClusterView::default()),
        "spec.poolItems[0].segmentLength: cannot change (0 → 5)",
    );
    // 0 and 1 both mean single ports: not a change.
    let mut one = item("a", "lb-1", 30000, 30100);
    one["segmentLength"] = json!(1);
    assert!(
        review(
            &pool("ns", "p", json!([one])),
            Some(&old),
            &ClusterView::default()
        )
        .is_empty()
    );
}

#[test]
fn removing_an_item_with_bindings_is_denied_and_names_them() {
    let old = pool(
        "ns",
        "p",
        json!([
            item("a", "lb-1", 30000, 30100),
            item("b", "lb-1", 30100, 30200)
        ]),
    );
    let without_b = pool("ns", "p", json!([item("a", "lb-1", 30000, 30100)]));
    let view = ClusterView {
        bindings: vec![
            binding("game", "pod-1", "p", "ns", "b", 30100),
            binding("game", "pod-2", "p", "ns", "a", 30000),
            binding("game", "pod-3", "p", "other", "b", 30100),
        ],
        ..ClusterView::default()
    };
    assert_eq!(
        review(&without_b, Some(&old), &view),
        vec![r#"spec.poolItems: item "b" cannot be removed while it has port bindings: game/pod-1 (b TCP 30100)"#.to_owned()]
    );
    let without_a_bindings = ClusterView {
        bindings: vec![binding("game", "pod-2", "p", "ns", "a", 30000)],
        ..ClusterView::default()
    };
    assert!(review(&without_b, Some(&old), &without_a_bindings).is_empty());

    // The CLBs of an item with bindings stay; an item without bindings may move (and `region:` spelling of
    // the same CLB is no change).
    let moved_a = pool(
        "ns",
        "p",
        json!([
            item("a", "lb-9", 30000, 30100),
            item("b", "lb-1", 30100, 30200)
        ]),
    );
    assert_eq!(
        review(&moved_a, Some(&old), &without_a_bindings),
        vec![r#"spec.poolItems[0].loadBalancerIDs: cannot change while the item has port bindings: game/pod-2 (a TCP 30000)"#.to_owned()]
    );
    let moved_b = pool(
        "ns",
        "p",
        json!([
            item("a", "ap-guangzhou:lb-1", 30000, 30100),
            item("b", "lb-9", 30100, 30200)
        ]),
    );
    assert!(review(&moved_b, Some(&old), &without_a_bindings).is_empty());
}

// ---- PortPool: cluster conflicts -----------------------------------------------------------------------

#[test]
fn a_pool_overlapping_another_pool_on_the_same_lb_is_denied() {
    let other = pool("ns2", "q", json!([item("x", "lb-1", 30050, 30060)]));
    let view = ClusterView {
        pools: vec![other],
        ..ClusterView::default()
    };
    let p = pool("ns", "p", json!([item("a", "lb-1", 30000, 30100)]));
    let errors = review(&p, None, &view);
    assert!(!errors.is_empty());
    assert!(
        errors[0].starts_with(
            "spec.poolItems[0]: port conflict on ap-guangzhou:lb-1 port 30050: PortPool ns/p"
        ),
        "{errors:#?}"
    );
    assert!(errors[0].contains("PortPool ns2/q"), "{errors:#?}");
    // On UPDATE the pool's own stored version is not a conflict.
    let view = ClusterView {
        pools: vec![p.clone()],
        ..ClusterView::default()
    };
    assert!(review(&p, Some(&p), &view).is_empty());
}

#[test]
fn a_pool_overlapping_an_ingress_rule_is_denied() {
    let ing = ingress("web", "ing", "lb-1", json!({"rules": [tcp_rule(30042)]}));
    let view = ClusterView {
        ingresses: vec![ing],
        ..ClusterView::default()
    };
    let mut tcp = item("a", "lb-1", 30000, 30100);
    tcp["protocol"] = json!("TCP");
    let errors = review(&pool("ns", "p", json!([tcp])), None, &view);
    assert_one(
        &errors,
        "port 30042: PortPool ns/p (spec.poolItems[0], TCP ports 30000-30099) overlaps Ingress web/ing (spec.rules[0], TCP port 30042)",
    );
    let mut udp = item("a", "lb-1", 30000, 30100);
    udp["protocol"] = json!("UDP");
    assert!(review(&pool("ns", "p", json!([udp])), None, &view).is_empty());
}

// ---- PortPool: DELETE ----------------------------------------------------------------------------------

#[test]
fn deleting_a_pool_with_bindings_is_denied_listing_them() {
    let view = ClusterView {
        bindings: (0..12)
            .map(|i| binding("game", &format!("pod-{i:02}"), "p", "ns", "a", 30000 + i))
            .collect(),
        ..ClusterView::default()
    };
    let errors = review_portpool_delete("ns", "p", &view);
    assert_one(
        &errors,
        "port pool ns/p still has port bindings: game/pod-00 (a TCP 30000), game/pod-01 (a TCP 30001)",
    );
    assert!(
        errors[0].contains("game/pod-09 (a TCP 30009) and 2 more"),
        "{errors:#?}"
    );
    assert!(!errors[0].contains("pod-10"));
    assert!(review_portpool_delete("ns", "unused", &view).is_empty());
    assert!(review_portpool_delete("other", "p", &view).is_empty());
}

// ---- Ingress --------------------------------------------------------------------------------------------

#[test]
fn a_valid_ingress_without_conflicts_is_allowed() {
    let ing = ingress("web", "ing", "lb-1", json!({"rules": [tcp_rule(8080)]}));
    let view = ClusterView {
        pools: vec![pool("ns", "p", json!([item("a", "lb-1", 30000, 30100)]))],
        ingresses: vec![ing.clone()],
        ..ClusterView::default()
    };
    assert!(review_ingress(&ing, &view, &settings()).is_empty());
}

#[test]
fn an_invalid_ingress_is_denied_with_the_validate_message() {
    let ing = ingress(
        "web",
        "ing",
        "lb-1",
        json!({"rules": [tcp_rule(8080), tcp_rule(8080)]}),
    );
    assert_one(
        &review_ingress(&ing, &ClusterView::default(), &settings()),
        "spec.rules[1].port: port 8080 is already used by spec.rules[0] (TCP)",
    );
}

#[test]
fn an_ingress_on_pool_ports_of_the_same_lb_is_denied() {
    let view = ClusterView {
        pools: vec![pool("ns", "p", json!([item("a", "lb-1", 30000, 30100)]))],
        ..ClusterView::default()
    };
    let ing = ingress("web", "ing", "lb-1", json!({"rules": [tcp_rule(30010)]}));
    assert_one(
        &review_ingress(&ing, &view, &settings()),
        "spec.rules[0]: port conflict on ap-guangzhou:lb-1 port 30010: Ingress web/ing (spec.rules[0], TCP port 30010) overlaps PortPool ns/p",
    );
    let elsewhere = ingress(
        "web",
        "ing",
        "ap-shanghai:lb-1",
        json!({"rules": [tcp_rule(30010)]}),
    );
    assert!(review_ingress(&elsewhere, &view, &settings()).is_empty());
}

#[test]
fn an_ingress_clashing_with_another_ingress_is_denied() {
    let first = ingress("a", "first", "lb-1", json!({"rules": [tcp_rule(8080)]}));
    let view = ClusterView {
        ingresses: vec![first],
        ..ClusterView::default()
    };
    let second = ingress("b", "second", "lb-1", json!({"rules": [tcp_rule(8080)]}));
    assert_one(
        &review_ingress(&second, &view, &settings()),
        "overlaps Ingress a/first (spec.rules[0], TCP port 8080)",
    );
}

// ---- Registration ----------------------------------------------------------------------------------------

#[test]
fn the_webhook_configuration_covers_both_kinds_with_fail_policy() {
    let config = webhook_configuration(
        "clb-controller",
        &WebhookTarget::Url("https://127.0.0.1:9443/".into()),
        "CA PEM",
    );
    let value = serde_json::to_value(&config).unwrap();
    let hooks = value["webhooks"].as_array().unwrap();
    let summary: Vec<(String, String, Value)> = hooks
        .iter()
        .map(|h| {
            (
                h["clientConfig"]["url"].as_str().unwrap().to_owned(),
                h["rules"][0]["resources"][0].as_str().unwrap().to_owned(),
                h["rules"][0]["operations"].clone(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "https://127.0.0.1:9443/ingress/v1/validate".into(),
                "ingresses".into(),
                json!(["CREATE", "UPDATE"])
            ),
            (
                "https://127.0.0.1:9443/portpool/v1/validate".into(),
                "portpools".into(),
                json!(["CREATE", "UPDATE"])
            ),
            (
                "https://127.0.0.1:9443/portpool/v1/delete".into(),
                "portpools".into(),
                json!(["DELETE"])
            ),
            (
                "https://127.0.0.1:9443/portpool/v1/validate-pod".into(),
                "pods".into(),
                json!(["CREATE"])
            ),
        ]
    );
    for h in hooks {
        assert_eq!(h["failurePolicy"], "Fail");
        assert_eq!(h["timeoutSeconds"], 10);
        assert_eq!(h["admissionReviewVersions"], json!(["v1"]));
        // base64 of "CA PEM"
        assert_eq!(h["clientConfig"]["caBundle"], "Q0EgUEVN");
    }
    for h in &hooks[..3] {
        assert_eq!(h["sideEffects"], "None");
        assert_eq!(
            h["rules"][0]["apiGroups"],
            json!(["networkextension.bkbcs.tencent.com"])
        );
    }
    // The pod hook marks reservations (not on a dry run) and only where the mutating hook runs.
    assert_eq!(hooks[3]["sideEffects"], "NoneOnDryRun");
    assert_eq!(hooks[3]["rules"][0]["apiGroups"], json!([""]));
    assert_eq!(
        hooks[3]["namespaceSelector"],
        json!({"matchLabels": {"bcs-ingress-controller-inject": "true"}})
    );

    let service = webhook_configuration(
        "x",
        &WebhookTarget::Service {
            namespace: "bcs-system".into(),
            name: "clb-webhook".into(),
            port: 443,
        },
        "CA",
    );
    let value = serde_json::to_value(&service).unwrap();
    assert_eq!(
        value["webhooks"][2]["clientConfig"]["service"],
        json!({"namespace": "bcs-system", "name": "clb-webhook", "path": "/portpool/v1/delete", "port": 443})
    );
}

#[test]
fn the_randhostport_webhook_is_registered_only_when_enabled() {
    use super::register::Registration;
    let addr: std::net::SocketAddr = "127.0.0.1:9443".parse().unwrap();
    let mut registration = Registration {
        config_name: "c".into(),
        target: None,
        randhostport: false,
    };
    let hooks = |r: &Registration| {
        r.mutating_configuration(addr, "CA")
            .webhooks
            .unwrap_or_default()
    };
    assert_eq!(hooks(&registration).len(), 1);
    registration.randhostport = true;
    let both = hooks(&registration);
    assert_eq!(both.len(), 2);
    assert_eq!(
        both[1].client_config.url.as_deref(),
        Some("https://127.0.0.1:9443/randhostport/v1/mutate")
    );
    assert_eq!(both[1].namespace_selector, both[0].namespace_selector);
    assert_eq!(both[1].side_effects, "NoneOnDryRun");
}

/// The random-hostPort handler: denied until the leader's pod watch listed the pods, then the least-held ports
/// are injected; bad input is denied with the problem; pods without the annotation pass untouched.
#[tokio::test]
async fn the_randhostport_handler_injects_the_least_held_ports() {
    use crate::randhostport::PortRange;
    use crate::randhostport::state::RandHostPortState;
    use axum::Json;
    use axum::extract::State;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client =
        kube::Client::try_from(kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
    let ports = std::sync::Arc::new(RandHostPortState::new(PortRange {
        start: 29000,
        end: 29002,
    }));
    let state = std::sync::Arc::new(server::WebhookState {
        client,
        settings: settings(),
        request_timeout: std::time::Duration::from_secs(1),
        pod: pod::PodWebhook {
            randhostport: Some(ports.clone()),
            ..pod::PodWebhook::default()
        },
    });
    let call = |annotations: Value| {
        let state = state.clone();
        async move {
            let review = serde_json::from_value(json!({
                "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                "request": {"uid": "u", "kind": {"group": "", "version": "v1", "kind": "Pod"},
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "namespace": "game", "operation": "CREATE", "userInfo": {},
                    "object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "gs-", "annotations": annotations},
                        "spec": {"containers": [{"name": "gs", "image": "gs", "ports": [{"containerPort": 7000}]}]}}}
            }))
            .unwrap();
            let Json(answer) = randhostport::randhostport_mutate(State(state), Json(review)).await;
            answer.response.expect("a response")
        }
    };
    let opted_in = json!({"randhostport.webhook.bkbcs.tencent.com": "true",
        "ports.randhostport.webhook.bkbcs.tencent.com": "7000"});
    let denied = call(opted_in.clone()).await;
    assert!(!denied.allowed);
    assert_eq!(denied.result.message, randhostport::NOT_READY_MESSAGE);

    ports.rebuild(std::collections::HashMap::from([(
        "a".to_string(),
        vec![29000],
    )]));
    ports.set_ready(true);
    let allowed = call(opted_in.clone()).await;
    assert!(allowed.allowed);
    let patch: json_patch::Patch = serde_json::from_slice(&allowed.patch.unwrap()).unwrap();
    let ops = serde_json::to_value(&patch).unwrap().to_string();
    assert!(
        ops.contains("/spec/containers/0/ports/0/hostPort") && ops.contains("29001"),
        "{ops}"
    );
    assert_eq!(ports.count(29001), 1, "the admission counts at once");

    let bad = call(json!({"randhostport.webhook.bkbcs.tencent.com": "true",
        "ports.randhostport.webhook.bkbcs.tencent.com": "7001"}))
    .await;
    assert!(!bad.allowed);
    assert!(
        bad.result
            .message
            .contains("\"7001\" is not a container port"),
        "{}",
        bad.result.message
    );

    let untouched = call(json!({})).await;
    assert!(untouched.allowed && untouched.patch.is_none());
}
