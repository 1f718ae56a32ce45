use super::*;
use crate::api::{ListenerStatus, PortPoolSpec, PortPoolStatus};

fn lb(id: &str) -> ResolvedLb {
    ResolvedLb {
        region: "ap-guangzhou".into(),
        id: id.into(),
        name: format!("name-{id}"),
        lb_type: Some("OPEN".into()),
        vips: vec!["1.1.1.1".into()],
        domain: None,
    }
}

fn item(name: &str, protocol: &str, start: i32, end: i32, segment: i32) -> PortPoolItem {
    PortPoolItem {
        item_name: name.into(),
        load_balancer_ids: vec!["lb-1".into()],
        protocol: Some(protocol.into()),
        start_port: start,
        end_port: end,
        segment_length: Some(segment),
        ..PortPoolItem::default()
    }
}

fn pool(items: Vec<PortPoolItem>) -> PortPool {
    let mut p = PortPool::new(
        "pool1",
        PortPoolSpec {
            pool_items: items,
            ..PortPoolSpec::default()
        },
    );
    p.metadata.namespace = Some("game".into());
    p.metadata.uid = Some("uid-1".into());
    p
}

fn names(listeners: &[Listener]) -> Vec<String> {
    listeners.iter().map(|l| l.name_any()).collect()
}

fn synced(mut l: Listener, id: &str) -> Listener {
    l.status = Some(ListenerStatus {
        listener_id: Some(id.into()),
        status: Some(keys::LISTENER_STATUS_SYNCED.into()),
        ..ListenerStatus::default()
    });
    l
}

#[test]
fn single_ports_get_one_listener_each() {
    let it = item("a", "TCP", 30000, 30003, 0);
    let p = pool(vec![it.clone()]);
    let ls = item_listeners(&p, &it, &[lb("lb-1")]);
    assert_eq!(
        names(&ls),
        ["lb-1-tcp-30000", "lb-1-tcp-30001", "lb-1-tcp-30002"]
    );
    let first = &ls[0];
    assert_eq!(first.spec.end_port, None);
    assert_eq!(first.spec.target_group, None);
    assert_eq!(first.metadata.namespace.as_deref(), Some("game"));
    assert_eq!(first.labels()[keys::LABEL_OWNER_NAME], "pool1");
    assert_eq!(first.labels()[keys::LABEL_OWNER_KIND], OWNER_KIND_PORTPOOL);
    assert_eq!(first.labels()[LABEL_PORTPOOL_ITEM], "a");
    assert_eq!(first.labels()[keys::LABEL_SEGMENT_LISTENER], "false");
    assert_eq!(first.labels()[keys::LABEL_LB_REGION], "ap-guangzhou");
    let owner = &first.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str()),
        ("PortPool", "uid-1")
    );
}

#[test]
fn segments_skip_the_partial_last_one() {
    // [30000, 30012) in segments of 5: 30000-30004, 30005-30009; 30010-30011 is partial.
    let it = item("a", "UDP", 30000, 30012, 5);
    let ls = item_listeners(&pool(vec![it.clone()]), &it, &[lb("lb-1")]);
    assert_eq!(names(&ls), ["lb-1-udp-30000-30004", "lb-1-udp-30005-30009"]);
    assert_eq!(ls[1].spec.port, 30005);
    assert_eq!(ls[1].spec.end_port, Some(30009));
    assert_eq!(ls[1].labels()[keys::LABEL_SEGMENT_LISTENER], "true");
}

#[test]
fn empty_protocol_means_both_on_every_lb() {
    let it = item("a", "", 100, 102, 1);
    let ls = item_listeners(&pool(vec![it.clone()]), &it, &[lb("lb-1"), lb("lb-2")]);
    assert_eq!(
        names(&ls),
        [
            "lb-1-tcp-100",
            "lb-1-tcp-101",
            "lb-1-udp-100",
            "lb-1-udp-101",
            "lb-2-tcp-100",
            "lb-2-tcp-101",
            "lb-2-udp-100",
            "lb-2-udp-101",
        ]
    );
    let both = item("b", "TCP,UDP", 100, 101, 0);
    assert_eq!(
        item_listeners(&pool(vec![both.clone()]), &both, &[lb("lb-1")]).len(),
        2
    );
}

#[test]
fn pool_attribute_and_item_certificate_are_copied() {
    let mut it = item("a", "TCP", 100, 101, 0);
    it.certificate = Some(crate::api::IngressListenerCertificate {
        cert_id: Some("cert-1".into()),
        ..Default::default()
    });
    let mut p = pool(vec![it.clone()]);
    p.spec.listener_attribute = Some(crate::api::IngressListenerAttribute {
        session_time: Some(30),
        ..Default::default()
    });
    let l = &item_listeners(&p, &it, &[lb("lb-1")])[0];
    assert_eq!(l.spec.certificate, it.certificate);
    assert_eq!(l.spec.listener_attribute, p.spec.listener_attribute);
}

#[test]
fn end_port_growth_applies_only_the_new_listeners() {
    let small = item("a", "TCP", 30000, 30002, 0);
    let grown = item("a", "TCP", 30000, 30004, 0);
    let p = pool(vec![grown.clone()]);
    let existing: Vec<Listener> = item_listeners(&p, &small, &[lb("lb-1")])
        .into_iter()
        .map(|l| synced(l, "lbl-x"))
        .collect();
    let desired = item_listeners(&p, &grown, &[lb("lb-1")]);
    let diff = diff_listeners(&desired, &existing);
    assert_eq!(names(&diff.apply), ["lb-1-tcp-30002", "lb-1-tcp-30003"]);
    assert!(diff.delete.is_empty());
    assert!(diff.blocked.is_empty());
}

#[test]
fn diff_deletes_undesired_and_reapplies_changed_and_waits_for_deleting() {
    let it = item("a", "TCP", 100, 103, 0);
    let p = pool(vec![it.clone()]);
    let desired = item_listeners(&p, &it, &[lb("lb-1")]);
    let mut changed = desired[0].clone();
    changed.spec.certificate = Some(Default::default());
    let mut deleting = desired[1].clone();
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Default::default()),
    );
    let mut stale = desired[2].clone();
    stale.metadata.name = Some("lb-9-tcp-100".into());
    // A target group set by the PortBinding controller is not a difference.
    let mut bound = desired[2].clone();
    bound.spec.target_group = Some(Default::default());
    let diff = diff_listeners(&desired, &[changed, deleting, stale, bound]);
    assert_eq!(names(&diff.apply), ["lb-1-tcp-100"]);
    assert_eq!(diff.blocked, ["lb-1-tcp-101"]);
    assert_eq!(diff.delete, ["lb-9-tcp-100"]);
}

#[test]
fn item_is_ready_only_when_every_listener_is_synced_with_an_id() {
    let it = item("a", "TCP", 100, 103, 0);
    let p = pool(vec![it.clone()]);
    let desired = item_listeners(&p, &it, &[lb("lb-1"), lb("lb-2")]);
    let all: Vec<Listener> = desired
        .iter()
        .cloned()
        .map(|l| synced(l, "lbl-1"))
        .collect();
    assert_eq!(
        item_readiness(&desired, &all),
        (ItemStatus::Ready, MESSAGE_READY.to_string())
    );

    let mut partial = all.clone();
    partial.remove(0); // lb-1: missing
    partial[0].status.as_mut().unwrap().listener_id = None; // lb-1: no id
    partial[3].status.as_mut().unwrap().status = Some("NotSynced".into()); // lb-2
    let (status, message) = item_readiness(&desired, &partial);
    assert_eq!(status, ItemStatus::NotReady);
    assert_eq!(
        message,
        "lb lb-1: 2 of 3 listeners are not ready; lb lb-2: 1 of 3 listeners are not ready"
    );
}

#[test]
fn item_and_pool_status() {
    let mut it = item("a", "", 100, 110, 5);
    it.external = Some("ext".into());
    let s = item_status(&it, &[lb("lb-1")], ItemStatus::Ready, "Ready".into());
    assert_eq!(s.protocol, ["TCP", "UDP"]);
    assert_eq!((s.start_port, s.end_port, s.segment_length), (100, 110, 5));
    assert_eq!(s.pool_item_load_balancers[0].ips, ["1.1.1.1"]);
    assert_eq!(
        s.pool_item_load_balancers[0].loadbalancer_id.as_deref(),
        Some("lb-1")
    );
    assert_eq!(
        s.pool_item_load_balancers[0].region.as_deref(),
        Some("ap-guangzhou")
    );
    assert_eq!(s.external.as_deref(), Some("ext"));
    assert_eq!(pool_status(std::slice::from_ref(&s)), "Ready");
    let other = item_status(&it, &[], ItemStatus::NotReady, "x".into());
    assert_eq!(pool_status(&[s, other]), "NotReady");
}

#[test]
fn removed_items_become_deleting_and_keep_their_geometry_for_the_allocator() {
    let a = item("a", "TCP", 100, 110, 0);
    let b = item("b", "UDP", 200, 210, 0);
    let mut p = pool(vec![a.clone()]);
    p.status = Some(PortPoolStatus {
        status: Some("Ready".into()),
        pool_items: vec![
            item_status(&a, &[], ItemStatus::Ready, "Ready".into()),
            item_status(&b, &[], ItemStatus::Ready, "Ready".into()),
        ],
    });
    let deleting = deleting_items(&p);
    assert_eq!(deleting.len(), 1);
    assert_eq!(deleting[0].item_name, "b");
    assert_eq!(deleting[0].status, "Deleting");

    p.spec.pool_items.push(item("c", "TCP", 300, 302, 0));
    let specs = allocator_items_of(&p);
    let view: Vec<(&str, ItemStatus, bool, bool)> = specs
        .iter()
        .map(|s| (s.name.as_str(), s.status, s.tcp, s.udp))
        .collect();
    assert_eq!(
        view,
        [
            ("a", ItemStatus::Ready, true, false),
            ("c", ItemStatus::NotReady, true, false),
            ("b", ItemStatus::Deleting, false, true),
        ]
    );
    assert_eq!((specs[2].start_port, specs[2].end_port), (200, 210));
}

#[test]
fn item_label_values_are_valid_labels() {
    assert_eq!(item_label_value("item-1"), "item-1");
    let long = "x".repeat(100);
    let hashed = item_label_value(&long);
    assert!(hashed.starts_with("h-") && hashed.len() == 18);
    assert_ne!(item_label_value("a b"), item_label_value("a c"));
    assert!(item_label_value("-a").starts_with("h-"));
}
