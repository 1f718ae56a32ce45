//! Tests of the planner against the simulator: readable cases first, then properties.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

mod simulate;

use super::*;
use simulate::{default_listener_attributes, default_rule_attributes};

// ---------- helpers ----------

fn ip(n: u16) -> String {
    format!("10.0.{}.{}", n / 250, n % 250 + 1)
}

fn targets(list: &[(&str, u16, u16)]) -> TargetSet {
    list.iter()
        .map(|(ip, port, weight)| Target::new(*ip, *port, *weight))
        .collect()
}

fn l4(owner: &str, protocol: Protocol, port: u16, backends: TargetSet) -> DesiredListener {
    DesiredListener {
        targets: backends,
        ..DesiredListener::new(owner, ListenerKey::single(protocol, port))
    }
}

fn cloud_l4(id: &str, key: ListenerKey, backends: TargetSet) -> CloudListener {
    CloudListener {
        id: id.into(),
        key,
        name: format!("name-{id}"),
        attributes: default_listener_attributes(key.protocol),
        certificate: None,
        sni_switch: false,
        keepalive: false,
        targets: backends,
        rules: Vec::new(),
    }
}

fn cloud_rule(loc: &str, domain: &str, url: &str, backends: TargetSet) -> CloudRule {
    CloudRule {
        location_id: loc.into(),
        key: RuleKey::new(domain, url),
        attributes: default_rule_attributes(),
        certificate: None,
        targets: backends,
    }
}

fn rule(domain: &str, url: &str, backends: TargetSet) -> DesiredRule {
    DesiredRule {
        key: RuleKey::new(domain, url),
        attributes: None,
        certificate: None,
        targets: backends,
    }
}

fn cert(id: &str) -> Certificate {
    Certificate {
        mode: "UNIDIRECTIONAL".into(),
        cert_id: id.into(),
        ca_cert_id: None,
    }
}

/// Plans, applies the plan to the simulated cloud, and checks that planning again is a no-op.
fn converge(
    desired: &[DesiredListener],
    deleting: &[DeletingListener],
    cloud: &[CloudListener],
) -> (Plan, Vec<CloudListener>) {
    let plan = plan(desired, deleting, cloud);
    let after = simulate::apply(&plan, cloud).unwrap_or_else(|e| panic!("{e}\n{plan:#?}"));
    let again = super::plan(desired, deleting, &after);
    assert!(again.is_empty(), "not idempotent: {:#?}", again.steps);
    (plan, after)
}

fn actions(plan: &Plan) -> Vec<&'static str> {
    plan.steps.iter().map(|s| s.call.action()).collect()
}

fn owners(list: &[&str]) -> BTreeSet<OwnerRef> {
    list.iter().map(|s| s.to_string()).collect()
}

fn find(cloud: &[CloudListener], key: ListenerKey) -> &CloudListener {
    cloud
        .iter()
        .find(|l| l.key == key)
        .unwrap_or_else(|| panic!("no listener {key}"))
}

// ---------- readable cases ----------

#[test]
fn forty_new_ports_on_an_idle_lb_are_one_create_and_one_register() {
    let desired: Vec<_> = (0..40)
        .map(|i| {
            l4(
                &format!("ns/pod-{i}"),
                Protocol::Tcp,
                10_000 + i,
                targets(&[(&ip(i), 8080, 10)]),
            )
        })
        .collect();
    let (plan, after) = converge(&desired, &[], &[]);

    assert_eq!(actions(&plan), ["CreateListener", "BatchRegisterTargets"]);
    match &plan.steps[0].call {
        Call::CreateListeners { spec, listeners } => {
            assert_eq!(spec.protocol, Protocol::Tcp);
            assert_eq!(listeners.len(), 40);
        }
        other => panic!("unexpected {other:?}"),
    }
    match &plan.steps[1].call {
        Call::RegisterTargets { targets } => {
            assert_eq!(targets.len(), 40);
            assert!(
                targets
                    .iter()
                    .all(|t| matches!(t.listener, ListenerRef::Key(_)))
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(plan.steps[0].owners.len(), 40);
    assert_eq!(after.len(), 40);
    assert_eq!(
        plan.listeners.get("ns/pod-7"),
        Some(&ListenerRef::Key(ListenerKey::single(
            Protocol::Tcp,
            10_007
        )))
    );
    assert_eq!(
        find(&after, ListenerKey::single(Protocol::Tcp, 10_007))
            .targets
            .len(),
        1
    );
}

#[test]
fn creates_split_at_49_ports_and_by_settings() {
    let mut desired: Vec<_> = (0..100)
        .map(|i| {
            l4(
                &format!("ns/a-{i}"),
                Protocol::Udp,
                20_000 + i,
                TargetSet::new(),
            )
        })
        .collect();
    let mut special = l4("ns/special", Protocol::Udp, 30_000, TargetSet::new());
    special.attributes = Some(Attributes {
        session_expire_time: 30,
        ..Attributes::default()
    });
    desired.push(special);
    let (plan, after) = converge(&desired, &[], &[]);

    let sizes: Vec<usize> = plan
        .steps
        .iter()
        .map(|s| match &s.call {
            Call::CreateListeners { listeners, .. } => listeners.len(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    let mut sorted = sizes.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, [1, 2, 49, 49]);
    assert_eq!(
        find(&after, ListenerKey::single(Protocol::Udp, 30_000))
            .attributes
            .session_expire_time,
        30
    );
}

#[test]
fn range_listeners_get_one_create_each() {
    let desired = vec![
        DesiredListener::new("ns/seg-a", ListenerKey::range(Protocol::Tcp, 100, 109)),
        DesiredListener::new("ns/seg-b", ListenerKey::range(Protocol::Tcp, 110, 119)),
        DesiredListener::new("ns/single", ListenerKey::single(Protocol::Tcp, 120)),
    ];
    let (plan, _) = converge(&desired, &[], &[]);
    assert_eq!(plan.steps.len(), 3);
    for step in &plan.steps {
        let Call::CreateListeners { listeners, .. } = &step.call else {
            panic!("unexpected {:?}", step.call);
        };
        assert_eq!(listeners.len(), 1);
        assert_eq!(step.owners.len(), 1);
    }
}

#[test]
fn our_listener_with_the_wrong_protocol_is_deleted_then_recreated() {
    let cloud = vec![cloud_l4(
        "lbl-old",
        ListenerKey::single(Protocol::Tcp, 80),
        targets(&[("10.0.0.1", 80, 10)]),
    )];
    let mut d = DesiredListener::new("ns/web", ListenerKey::single(Protocol::Http, 80));
    d.known_listener_id = Some("lbl-old".into());
    d.rules = vec![rule("a.com", "/", targets(&[("10.0.0.2", 8080, 10)]))];
    let (plan, after) = converge(&[d], &[], &cloud);

    assert_eq!(
        actions(&plan),
        [
            "DeleteLoadBalancerListeners",
            "CreateListener",
            "CreateRule",
            "BatchRegisterTargets"
        ]
    );
    assert_eq!(plan.steps[0].owners, owners(&["ns/web"]));
    let Call::RegisterTargets { targets } = &plan.steps[3].call else {
        panic!("unexpected {:?}", plan.steps[3].call);
    };
    assert_eq!(
        targets.head().rule,
        Some(RuleRef::Key(RuleKey::new("a.com", "/")))
    );
    let http = find(&after, ListenerKey::single(Protocol::Http, 80));
    assert_eq!(http.rules.len(), 1);
    assert_eq!(http.rules[0].targets.len(), 1);
    assert!(after.iter().all(|l| l.id != "lbl-old"));
}

#[test]
fn a_foreign_listener_is_never_touched_and_blocks_its_port() {
    let foreign = cloud_l4(
        "lbl-foreign",
        ListenerKey::single(Protocol::Tcp, 80),
        targets(&[("10.9.9.9", 80, 10)]),
    );
    let cloud = vec![foreign.clone()];
    let desired = vec![
        DesiredListener::new("ns/web", ListenerKey::single(Protocol::Http, 80)),
        l4(
            "ns/udp",
            Protocol::Udp,
            80,
            targets(&[("10.0.0.1", 53, 10)]),
        ),
    ];
    let deleting = vec![DeletingListener {
        owner: "ns/gone".into(),
        key: ListenerKey::single(Protocol::Tcp, 80),
        known_listener_id: None,
        cloud_name: None,
    }];
    let (plan, after) = converge(&desired, &deleting, &cloud);

    assert_eq!(actions(&plan), ["CreateListener", "BatchRegisterTargets"]);
    assert!(plan.steps.iter().all(|s| !s.owners.contains("ns/web")));
    assert_eq!(
        plan.blocked,
        vec![Blocked {
            owner: "ns/web".into(),
            key: ListenerKey::single(Protocol::Http, 80),
            reason: BlockReason::PortInUse {
                listener_id: "lbl-foreign".into(),
                key: foreign.key,
            },
        }]
    );
    assert!(plan.blocked[0].reason.to_string().contains("lbl-foreign"));
    assert!(after.contains(&foreign));
}

#[test]
fn a_deleting_listener_without_id_deletes_only_the_cloud_listener_it_named() {
    // The CR was deleted while its CreateListener was in flight: the id never reached its status.
    let mine = cloud_l4(
        "lbl-mine",
        ListenerKey::single(Protocol::Tcp, 9000),
        TargetSet::new(),
    );
    let foreign = cloud_l4(
        "lbl-foreign",
        ListenerKey::single(Protocol::Tcp, 9001),
        TargetSet::new(),
    );
    let cloud = vec![mine, foreign.clone()];
    let deleting = vec![
        DeletingListener {
            owner: "ns/mine".into(),
            key: ListenerKey::single(Protocol::Tcp, 9000),
            known_listener_id: None,
            cloud_name: Some("name-lbl-mine".into()),
        },
        DeletingListener {
            owner: "ns/other".into(),
            key: ListenerKey::single(Protocol::Tcp, 9001),
            known_listener_id: None,
            cloud_name: Some("lb-x-tcp-9001".into()),
        },
    ];
    let (plan, after) = converge(&[], &deleting, &cloud);

    assert_eq!(actions(&plan), ["DeleteLoadBalancerListeners"]);
    assert_eq!(
        plan.steps[0].owners.iter().cloned().collect::<Vec<_>>(),
        vec!["ns/mine".to_string()]
    );
    assert_eq!(after, vec![foreign]);
}

#[test]
fn a_listener_at_the_exact_key_is_adopted_and_its_targets_fixed() {
    let cloud = vec![cloud_l4(
        "lbl-1",
        ListenerKey::single(Protocol::Tcp, 7000),
        targets(&[("10.0.0.1", 80, 10), ("10.0.0.2", 80, 10)]),
    )];
    let desired = vec![l4(
        "ns/game",
        Protocol::Tcp,
        7000,
        targets(&[("10.0.0.1", 80, 50), ("10.0.0.3", 80, 10)]),
    )];
    let (plan, after) = converge(&desired, &[], &cloud);

    assert_eq!(
        actions(&plan),
        [
            "BatchDeregisterTargets",
            "BatchRegisterTargets",
            "BatchModifyTargetWeight"
        ]
    );
    assert_eq!(
        plan.listeners.get("ns/game"),
        Some(&ListenerRef::Id("lbl-1".into()))
    );
    assert_eq!(find(&after, cloud[0].key).targets, desired[0].targets);
}

#[test]
fn deleting_listeners_are_deleted_by_id_in_chunks_of_20() {
    let cloud: Vec<_> = (0..45)
        .map(|i| {
            cloud_l4(
                &format!("lbl-{i}"),
                ListenerKey::single(Protocol::Tcp, 1000 + i),
                TargetSet::new(),
            )
        })
        .collect();
    let mut deleting: Vec<_> = (0..45)
        .map(|i| DeletingListener {
            owner: format!("ns/x-{i}"),
            key: ListenerKey::single(Protocol::Tcp, 1000 + i),
            known_listener_id: Some(format!("lbl-{i}")),
            cloud_name: None,
        })
        .collect();
    // Already gone, and never synced: nothing to send for them.
    deleting.push(DeletingListener {
        owner: "ns/already-gone".into(),
        key: ListenerKey::single(Protocol::Tcp, 2000),
        known_listener_id: Some("lbl-missing".into()),
        cloud_name: None,
    });
    let (plan, after) = converge(&[], &deleting, &cloud);

    let sizes: Vec<usize> = plan
        .steps
        .iter()
        .map(|s| match &s.call {
            Call::DeleteListeners { listener_ids } => listener_ids.len(),
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(sizes, [20, 20, 5]);
    assert!(after.is_empty());
    assert!(
        plan.steps
            .iter()
            .all(|s| !s.owners.contains("ns/already-gone"))
    );
}

#[test]
fn turning_health_checks_off_converges() {
    let cloud = vec![cloud_l4(
        "lbl-1",
        ListenerKey::single(Protocol::Tcp, 80),
        TargetSet::new(),
    )];
    let mut d = l4("ns/a", Protocol::Tcp, 80, TargetSet::new());
    d.attributes = Some(Attributes {
        session_expire_time: 0,
        scheduler: None,
        health_check: Some(HealthCheck::default()),
    });
    let (plan, after) = converge(&[d], &[], &cloud);

    let [step] = plan.steps.as_slice() else {
        panic!("expected one step: {:?}", plan.steps);
    };
    let Call::ModifyListener { changes, .. } = &step.call else {
        panic!("unexpected {:?}", step.call);
    };
    assert_eq!(
        changes.attributes.health_check,
        Some(HealthCheck::default())
    );
    assert_eq!(changes.attributes.scheduler, None);
    assert_eq!(changes.attributes.session_expire_time, None);
    assert_eq!(
        after[0].attributes.health_check.as_ref().map(|h| h.enabled),
        Some(false)
    );
}

#[test]
fn unset_attributes_are_not_compared() {
    let mut c = cloud_l4(
        "lbl-1",
        ListenerKey::single(Protocol::Tcp, 80),
        TargetSet::new(),
    );
    c.attributes.scheduler = Some(Scheduler::LeastConn);
    let mut d = l4("ns/a", Protocol::Tcp, 80, TargetSet::new());
    d.attributes = Some(Attributes {
        session_expire_time: 0,
        scheduler: None,
        health_check: Some(HealthCheck {
            enabled: true,
            timeout: Some(2),
            ..HealthCheck::default()
        }),
    });
    let plan = plan(&[d.clone()], &[], &[c.clone()]);
    assert!(plan.is_empty(), "{:?}", plan.steps);

    // A CR without attributes leaves them alone entirely.
    c.attributes.session_expire_time = 300;
    d.attributes = None;
    assert!(super::plan(&[d], &[], &[c]).is_empty());
}

#[test]
fn l7_rules_are_diffed_by_domain_and_url() {
    let cloud = vec![CloudListener {
        rules: vec![
            cloud_rule("loc-a", "a.com", "/", targets(&[("10.0.0.1", 80, 10)])),
            cloud_rule("loc-b", "b.com", "/", targets(&[("10.0.0.1", 80, 10)])),
        ],
        attributes: default_listener_attributes(Protocol::Http),
        ..cloud_l4(
            "lbl-web",
            ListenerKey::single(Protocol::Http, 80),
            TargetSet::new(),
        )
    }];
    let mut d = DesiredListener::new("ns/web", ListenerKey::single(Protocol::Http, 80));
    d.rules = vec![
        DesiredRule {
            attributes: Some(Attributes {
                session_expire_time: 60,
                ..Attributes::default()
            }),
            ..rule("a.com", "/", targets(&[("10.0.0.2", 80, 10)]))
        },
        rule("c.com", "/api", targets(&[("10.0.0.3", 80, 10)])),
    ];
    let (plan, after) = converge(&[d], &[], &cloud);

    assert_eq!(
        actions(&plan),
        [
            "DeleteRule",
            "CreateRule",
            "ModifyRule",
            "BatchDeregisterTargets",
            "BatchRegisterTargets"
        ]
    );
    let Call::DeleteRules { location_ids, .. } = &plan.steps[0].call else {
        panic!("unexpected {:?}", plan.steps[0].call);
    };
    assert_eq!(location_ids.to_vec(), ["loc-b"]);
    let Call::CreateRules { listener, .. } = &plan.steps[1].call else {
        panic!("unexpected {:?}", plan.steps[1].call);
    };
    assert_eq!(listener, &ListenerRef::Id("lbl-web".into()));
    let Call::RegisterTargets { targets } = &plan.steps[4].call else {
        panic!("unexpected {:?}", plan.steps[4].call);
    };
    let rules: BTreeSet<_> = targets.iter().map(|t| t.rule.clone()).collect();
    assert_eq!(
        rules,
        BTreeSet::from([
            Some(RuleRef::Id("loc-a".into())),
            Some(RuleRef::Key(RuleKey::new("c.com", "/api")))
        ])
    );
    let web = find(&after, cloud[0].key);
    let keys: Vec<String> = web.rules.iter().map(|r| r.key.to_string()).collect();
    assert_eq!(keys, ["a.com/", "c.com/api"]);
}

#[test]
fn sni_on_modifies_and_sni_off_recreates() {
    let key = ListenerKey::single(Protocol::Https, 443);
    let base = CloudListener {
        certificate: Some(cert("c1")),
        rules: vec![cloud_rule("loc-a", "a.com", "/", TargetSet::new())],
        attributes: default_listener_attributes(Protocol::Https),
        ..cloud_l4("lbl-tls", key, TargetSet::new())
    };
    let mut d = DesiredListener::new("ns/tls", key);
    d.sni_switch = true;
    d.rules = vec![DesiredRule {
        certificate: Some(cert("c-a")),
        ..rule("a.com", "/", TargetSet::new())
    }];
    let (plan, after) = converge(&[d.clone()], &[], std::slice::from_ref(&base));
    assert_eq!(actions(&plan), ["ModifyListener", "ModifyDomainAttributes"]);
    assert!(find(&after, key).sni_switch);

    d.sni_switch = false;
    d.certificate = Some(cert("c1"));
    let (plan, after) = converge(&[d], &[], &after);
    assert_eq!(
        actions(&plan),
        [
            "DeleteLoadBalancerListeners",
            "CreateListener",
            "CreateRule"
        ]
    );
    assert!(!find(&after, key).sni_switch);
}

#[test]
fn weight_changes_pack_into_calls_within_all_three_limits() {
    let key_of = |i: u16| ListenerKey::single(Protocol::Tcp, 5000 + i);
    let cloud: Vec<_> = (0..6)
        .map(|i| {
            let backends = (0..120).map(|j| Target::new(ip(j), 80, 10)).collect();
            cloud_l4(&format!("lbl-{i}"), key_of(i), backends)
        })
        .collect();
    let desired: Vec<_> = (0..6)
        .map(|i| {
            let backends = (0..120).map(|j| Target::new(ip(j), 80, 20)).collect();
            l4(&format!("ns/l-{i}"), Protocol::Tcp, 5000 + i, backends)
        })
        .collect();
    let (plan, _) = converge(&desired, &[], &cloud);

    let mut total = 0;
    for step in &plan.steps {
        let Call::ModifyTargetWeights { rules } = &step.call else {
            panic!("unexpected {:?}", step.call);
        };
        let sum: usize = rules.iter().map(|r| r.targets.len()).sum();
        assert!(rules.len() <= 100 && sum <= 500);
        assert!(rules.iter().all(|r| r.targets.len() <= 50));
        total += sum;
    }
    assert_eq!(total, 720);
    assert_eq!(plan.steps.len(), 2);
}

#[test]
fn conflicting_crs_keep_the_one_already_in_the_cloud() {
    let cloud = vec![cloud_l4(
        "lbl-1",
        ListenerKey::single(Protocol::Udp, 9000),
        TargetSet::new(),
    )];
    let desired = vec![
        DesiredListener::new("ns/a-new", ListenerKey::range(Protocol::Quic, 8990, 9010)),
        DesiredListener::new("ns/z-old", ListenerKey::single(Protocol::Udp, 9000)),
    ];
    let (plan, _) = converge(&desired, &[], &cloud);
    assert!(plan.steps.is_empty());
    assert_eq!(plan.blocked.len(), 1);
    assert_eq!(plan.blocked[0].owner, "ns/a-new");
    assert_eq!(
        plan.blocked[0].reason,
        BlockReason::ConflictsWith {
            owner: "ns/z-old".into()
        }
    );
}

#[test]
fn a_blocked_cr_keeps_its_listener() {
    let cloud = vec![cloud_l4(
        "lbl-1",
        ListenerKey::single(Protocol::Tcp, 80),
        TargetSet::new(),
    )];
    let mut d = DesiredListener::new("ns/a", ListenerKey::single(Protocol::Http, 80));
    d.known_listener_id = Some("lbl-1".into());
    d.targets = targets(&[("10.0.0.1", 80, 10)]); // invalid: HTTP binds targets on rules
    let deleting = vec![DeletingListener {
        owner: "ns/old".into(),
        key: ListenerKey::single(Protocol::Tcp, 80),
        known_listener_id: Some("lbl-1".into()),
        cloud_name: None,
    }];
    let (plan, after) = converge(&[d], &deleting, &cloud);
    assert!(plan.steps.is_empty());
    assert!(matches!(plan.blocked[0].reason, BlockReason::Invalid(_)));
    assert_eq!(after, cloud);
}

#[test]
fn step_owners_are_exactly_the_crs_served() {
    let cloud = vec![
        cloud_l4(
            "lbl-a",
            ListenerKey::single(Protocol::Tcp, 1),
            targets(&[("10.0.0.1", 1, 10)]),
        ),
        cloud_l4(
            "lbl-b",
            ListenerKey::single(Protocol::Tcp, 2),
            TargetSet::new(),
        ),
    ];
    let desired = vec![
        l4("ns/a", Protocol::Tcp, 1, targets(&[("10.0.0.1", 1, 10)])),
        l4("ns/c", Protocol::Tcp, 3, targets(&[("10.0.0.3", 1, 10)])),
    ];
    let deleting = vec![DeletingListener {
        owner: "ns/b".into(),
        key: ListenerKey::single(Protocol::Tcp, 2),
        known_listener_id: Some("lbl-b".into()),
        cloud_name: None,
    }];
    let (plan, _) = converge(&desired, &deleting, &cloud);
    let served: Vec<BTreeSet<OwnerRef>> = plan.steps.iter().map(|s| s.owners.clone()).collect();
    assert_eq!(
        served,
        [owners(&["ns/b"]), owners(&["ns/c"]), owners(&["ns/c"])]
    );
    assert_eq!(
        plan.listeners.get("ns/a"),
        Some(&ListenerRef::Id("lbl-a".into()))
    );
}

#[test]
fn the_simulator_refuses_what_the_cloud_refuses() {
    let cloud = vec![cloud_l4(
        "lbl-1",
        ListenerKey::single(Protocol::Tcp, 80),
        TargetSet::new(),
    )];
    let create_http_80 = Plan {
        steps: vec![Step {
            owners: owners(&["ns/a"]),
            call: Call::CreateListeners {
                spec: ListenerSpec::of(&DesiredListener::new(
                    "ns/a",
                    ListenerKey::single(Protocol::Http, 80),
                )),
                listeners: NonEmpty::one(NewListener {
                    key: ListenerKey::single(Protocol::Http, 80),
                    name: "a".into(),
                }),
            },
        }],
        ..Plan::default()
    };
    let err = simulate::apply(&create_http_80, &cloud).expect_err("port clash");
    assert!(err.reason.contains("PortCheckFailed"), "{err}");

    let register_unknown = Plan {
        steps: vec![Step {
            owners: owners(&["ns/a"]),
            call: Call::RegisterTargets {
                targets: NonEmpty::one(BoundTarget {
                    listener: ListenerRef::Key(ListenerKey::single(Protocol::Tcp, 81)),
                    rule: None,
                    target: Target::new("10.0.0.1", 80, 10),
                }),
            },
        }],
        ..Plan::default()
    };
    assert!(simulate::apply(&register_unknown, &cloud).is_err());
}

// ---------- properties ----------

const DOMAINS: [&str; 2] = ["a.com", "b.com"];
const URLS: [&str; 2] = ["/", "/x"];

fn arb_key() -> impl Strategy<Value = ListenerKey> {
    (
        prop::sample::select(Protocol::ALL.to_vec()),
        1u16..=12,
        prop::option::weighted(0.2, 1u16..=3),
    )
        .prop_map(|(protocol, port, extra)| ListenerKey {
            protocol,
            port,
            end_port: extra.map(|e| port + e),
        })
}

fn arb_targets() -> impl Strategy<Value = TargetSet> {
    prop::collection::vec(
        (
            0u16..4,
            1u16..=2,
            prop::sample::select(vec![0u16, 10, 50, 100]),
        ),
        0..5,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(i, port, w)| Target::new(ip(i), port, w))
            .collect()
    })
}

fn arb_health() -> impl Strategy<Value = HealthCheck> {
    (
        any::<bool>(),
        prop::option::of(2u32..=3),
        prop::option::of(5u32..=6),
        prop::option::of(prop::sample::select(vec![
            "HEAD".to_string(),
            "GET".to_string(),
        ])),
    )
        .prop_map(|(enabled, timeout, interval, method)| HealthCheck {
            enabled,
            timeout,
            interval,
            http_check_method: method,
            ..HealthCheck::default()
        })
}

fn arb_attributes() -> impl Strategy<Value = Attributes> {
    (
        prop::sample::select(vec![0u32, 30]),
        prop::option::of(prop::sample::select(vec![
            Scheduler::Wrr,
            Scheduler::LeastConn,
        ])),
        prop::option::of(arb_health()),
    )
        .prop_map(
            |(session_expire_time, scheduler, health_check)| Attributes {
                session_expire_time,
                scheduler,
                health_check,
            },
        )
}

fn arb_cert() -> impl Strategy<Value = Option<Certificate>> {
    prop::option::of(prop::sample::select(vec!["c1", "c2"]).prop_map(cert))
}

fn arb_rule_key() -> impl Strategy<Value = RuleKey> {
    (
        prop::sample::select(DOMAINS.to_vec()),
        prop::sample::select(URLS.to_vec()),
    )
        .prop_map(|(d, u)| RuleKey::new(d, u))
}

/// A listener id choice: none, one that does not exist, or one of the cloud's (by index).
fn arb_known() -> impl Strategy<Value = (u8, prop::sample::Index)> {
    (0u8..4, any::<prop::sample::Index>())
}

fn pick_known(choice: &(u8, prop::sample::Index), cloud: &[CloudListener]) -> Option<String> {
    match choice.0 {
        0 => None,
        1 => Some("lbl-gone".into()),
        _ if cloud.is_empty() => None,
        _ => Some(cloud[choice.1.index(cloud.len())].id.clone()),
    }
}

#[derive(Debug, Clone)]
struct RawRule {
    key: RuleKey,
    attributes: Option<Attributes>,
    certificate: Option<Certificate>,
    targets: TargetSet,
}

fn arb_raw_rules() -> impl Strategy<Value = Vec<RawRule>> {
    prop::collection::vec(
        (
            arb_rule_key(),
            prop::option::of(arb_attributes()),
            arb_cert(),
            arb_targets(),
        )
            .prop_map(|(key, attributes, certificate, targets)| RawRule {
                key,
                attributes,
                certificate,
                targets,
            }),
        0..4,
    )
}

#[derive(Debug, Clone)]
struct RawListener {
    key: ListenerKey,
    attributes: Option<Attributes>,
    certificate: Option<Certificate>,
    sni: bool,
    keepalive: bool,
    targets: TargetSet,
    rules: Vec<RawRule>,
    /// Keep targets and rules regardless of protocol (an invalid CR).
    keep_both: bool,
    known: (u8, prop::sample::Index),
    /// Take the key of a cloud listener instead (desired only), so updates get exercised.
    reuse_key: Option<prop::sample::Index>,
}

fn arb_raw_listener() -> impl Strategy<Value = RawListener> {
    (
        arb_key(),
        prop::option::of(arb_attributes()),
        arb_cert(),
        any::<bool>(),
        any::<bool>(),
        arb_targets(),
        arb_raw_rules(),
        prop::bool::weighted(0.05),
        arb_known(),
        prop::option::weighted(0.6, any::<prop::sample::Index>()),
    )
        .prop_map(
            |(
                key,
                attributes,
                certificate,
                sni,
                keepalive,
                targets,
                rules,
                keep_both,
                known,
                reuse_key,
            )| {
                RawListener {
                    key,
                    attributes,
                    certificate,
                    sni,
                    keepalive,
                    targets,
                    rules,
                    keep_both,
                    known,
                    reuse_key,
                }
            },
        )
}

/// A cloud the real service could hold: no overlapping ports per class, unique rules,
/// protocol-specific fields only where they apply.
fn build_cloud(raw: Vec<RawListener>) -> Vec<CloudListener> {
    let mut cloud: Vec<CloudListener> = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        if cloud.iter().any(|c| c.key.overlaps(&r.key)) {
            continue;
        }
        let protocol = r.key.protocol;
        let mut attributes = default_listener_attributes(protocol);
        if let Some(a) = &r.attributes
            && !protocol.is_l7()
        {
            attributes = AttributeChanges {
                session_expire_time: Some(a.session_expire_time),
                scheduler: a.scheduler,
                health_check: a.health_check.clone(),
            }
            .apply_to_owned(attributes);
        }
        let mut rules: Vec<CloudRule> = Vec::new();
        if protocol.is_l7() {
            for (j, rr) in r.rules.into_iter().enumerate() {
                if rules.iter().any(|c| c.key == rr.key) {
                    continue;
                }
                let mut attributes = default_rule_attributes();
                if let Some(a) = &rr.attributes {
                    attributes.session_expire_time = a.session_expire_time;
                }
                rules.push(CloudRule {
                    location_id: format!("loc-c{i}-{j}"),
                    key: rr.key,
                    attributes,
                    certificate: rr.certificate,
                    targets: rr.targets,
                });
            }
        }
        cloud.push(CloudListener {
            id: format!("lbl-c{i}"),
            key: r.key,
            name: format!("cloud-{i}"),
            attributes,
            certificate: if protocol.takes_certificate() {
                r.certificate
            } else {
                None
            },
            sni_switch: protocol == Protocol::Https && r.sni,
            keepalive: protocol.is_l7() && r.keepalive,
            targets: if protocol.is_l7() {
                TargetSet::new()
            } else {
                r.targets
            },
            rules,
        });
    }
    cloud
}

fn build_desired(raw: Vec<RawListener>, cloud: &[CloudListener]) -> Vec<DesiredListener> {
    raw.into_iter()
        .enumerate()
        .map(|(i, mut r)| {
            if let Some(index) = r.reuse_key
                && !cloud.is_empty()
            {
                r.key = cloud[index.index(cloud.len())].key;
            }
            let l7 = r.key.protocol.is_l7();
            DesiredListener {
                owner: format!("ns/d{i}"),
                key: r.key,
                name: format!("d{i}"),
                attributes: r.attributes,
                certificate: r.certificate,
                sni_switch: r.sni,
                keepalive: r.keepalive,
                targets: if l7 && !r.keep_both {
                    TargetSet::new()
                } else {
                    r.targets
                },
                rules: if l7 || r.keep_both {
                    r.rules
                        .into_iter()
                        .map(|rr| DesiredRule {
                            key: rr.key,
                            attributes: rr.attributes,
                            certificate: rr.certificate,
                            targets: rr.targets,
                        })
                        .collect()
                } else {
                    Vec::new()
                },
                known_listener_id: pick_known(&r.known, cloud),
            }
        })
        .collect()
}

impl AttributeChanges {
    fn apply_to_owned(&self, mut a: Attributes) -> Attributes {
        self.apply_to(&mut a);
        a
    }
}

fn arb_limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        Just(Limits::default()),
        (
            1usize..4,
            1usize..3,
            1usize..5,
            1usize..3,
            1usize..3,
            1usize..6,
            1usize..3
        )
            .prop_map(
                |(
                    create_ports,
                    delete_listeners,
                    batch_targets,
                    weight_rules,
                    per_rule,
                    total,
                    rules,
                )| {
                    Limits {
                        create_ports,
                        delete_listeners,
                        batch_targets,
                        weight_rules,
                        weight_targets_per_rule: per_rule,
                        weight_targets_total: total,
                        rules_per_call: rules,
                    }
                }
            ),
    ]
}

fn arb_scenario() -> impl Strategy<
    Value = (
        Limits,
        Vec<DesiredListener>,
        Vec<DeletingListener>,
        Vec<CloudListener>,
    ),
> {
    (
        arb_limits(),
        prop::collection::vec(arb_raw_listener(), 0..8),
        prop::collection::vec(arb_raw_listener(), 0..6),
        prop::collection::vec((arb_key(), arb_known()), 0..4),
    )
        .prop_map(|(limits, raw_cloud, raw_desired, raw_deleting)| {
            let cloud = build_cloud(raw_cloud);
            let desired = build_desired(raw_desired, &cloud);
            let deleting = raw_deleting
                .into_iter()
                .enumerate()
                .map(|(i, (key, known))| DeletingListener {
                    owner: format!("ns/x{i}"),
                    key,
                    known_listener_id: pick_known(&known, &cloud),
                    cloud_name: None,
                })
                .collect();
            (limits, desired, deleting, cloud)
        })
}

/// Independent statement of what makes a Listener CR invalid.
fn expect_invalid(d: &DesiredListener) -> bool {
    let mut all_targets = d
        .targets
        .iter()
        .chain(d.rules.iter().flat_map(|r| r.targets.iter()));
    let heavy = all_targets.any(|t| t.weight > 100);
    let misplaced = if d.key.protocol.is_l7() {
        !d.targets.is_empty()
    } else {
        !d.rules.is_empty()
    };
    let keys: BTreeSet<_> = d.rules.iter().map(|r| &r.key).collect();
    let duplicate = d.key.protocol.is_l7() && keys.len() != d.rules.len();
    let sni = d.key.protocol == Protocol::Https && d.sni_switch;
    let mut certs: BTreeMap<&str, BTreeSet<&Certificate>> = BTreeMap::new();
    for r in &d.rules {
        if let Some(c) = &r.certificate {
            certs.entry(&r.key.domain).or_default().insert(c);
        }
    }
    let cert_clash = d.key.protocol.is_l7() && sni && certs.values().any(|s| s.len() > 1);
    heavy || misplaced || duplicate || cert_clash
}

fn check_limits(step: &Step, limits: &Limits) -> Result<(), TestCaseError> {
    prop_assert!(!step.owners.is_empty(), "step without owners: {step:?}");
    match &step.call {
        Call::DeleteListeners { listener_ids } => {
            prop_assert!(!listener_ids.is_empty());
            prop_assert!(listener_ids.len() <= limits.delete_listeners);
        }
        Call::CreateListeners { listeners, .. } => {
            prop_assert!(listeners.len() <= limits.create_ports);
            if listeners.iter().any(|l| l.key.end_port.is_some()) {
                prop_assert_eq!(listeners.len(), 1);
            }
        }
        Call::DeleteRules { location_ids, .. } => {
            prop_assert!(!location_ids.is_empty() && location_ids.len() <= limits.rules_per_call);
        }
        Call::CreateRules { rules, .. } => prop_assert!(rules.len() <= limits.rules_per_call),
        Call::DeregisterTargets { targets } | Call::RegisterTargets { targets } => {
            prop_assert!(targets.len() <= limits.batch_targets);
        }
        Call::ModifyTargetWeights { rules } => {
            prop_assert!(rules.len() <= limits.weight_rules);
            prop_assert!(
                rules
                    .iter()
                    .all(|r| r.targets.len() <= limits.weight_targets_per_rule)
            );
            let total: usize = rules.iter().map(|r| r.targets.len()).sum();
            prop_assert!(total <= limits.weight_targets_total);
        }
        Call::ModifyListener { .. }
        | Call::ModifyRule { .. }
        | Call::ModifyDomainAttributes { .. } => {}
    }
    Ok(())
}

/// The cloud listener at `d.key` holds exactly what `d` asks for.
fn check_listener(d: &DesiredListener, l: &CloudListener) -> Result<(), TestCaseError> {
    let spec = ListenerSpec::of(d);
    if let Some(cert) = &spec.certificate {
        prop_assert_eq!(l.certificate.as_ref(), Some(cert));
    }
    prop_assert_eq!(l.sni_switch, spec.sni_switch);
    if d.key.protocol.is_l7() {
        prop_assert_eq!(l.keepalive, d.keepalive);
        let want: BTreeMap<&RuleKey, &DesiredRule> = d.rules.iter().map(|r| (&r.key, r)).collect();
        let have: BTreeMap<&RuleKey, &CloudRule> = l.rules.iter().map(|r| (&r.key, r)).collect();
        prop_assert_eq!(
            want.keys().collect::<Vec<_>>(),
            have.keys().collect::<Vec<_>>()
        );
        for (key, r) in want {
            let c = have[key];
            prop_assert_eq!(&c.targets, &r.targets, "rule {}", key);
            if let Some(a) = &r.attributes {
                prop_assert!(
                    attribute_changes(a, &c.attributes).is_empty(),
                    "rule {key} attrs"
                );
            }
            if spec.sni_switch
                && let Some(cert) = &r.certificate
            {
                prop_assert_eq!(c.certificate.as_ref(), Some(cert));
            }
        }
    } else {
        prop_assert_eq!(&l.targets, &d.targets);
        prop_assert!(l.rules.is_empty());
        if let Some(a) = &d.attributes {
            prop_assert!(
                attribute_changes(a, &l.attributes).is_empty(),
                "listener attrs"
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn plans_converge_safely_within_limits(
        (limits, desired, deleting, cloud) in arb_scenario()
    ) {
        let plan = plan_with(&limits, &desired, &deleting, &cloud);
        for step in &plan.steps {
            check_limits(step, &limits)?;
        }
        let after = match simulate::apply_with(&limits, &plan, &cloud) {
            Ok(after) => after,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{plan:#?}"))),
        };

        let blocked: BTreeMap<&str, &Blocked> =
            plan.blocked.iter().map(|b| (b.owner.as_str(), b)).collect();
        let accepted: Vec<&DesiredListener> =
            desired.iter().filter(|d| !blocked.contains_key(d.owner.as_str())).collect();
        let accepted_keys: BTreeSet<ListenerKey> = accepted.iter().map(|d| d.key).collect();
        let desired_keys: BTreeSet<ListenerKey> = desired.iter().map(|d| d.key).collect();
        let deleting_ids: BTreeSet<&str> =
            deleting.iter().filter_map(|d| d.known_listener_id.as_deref()).collect();
        let accepted_ids: BTreeSet<&str> =
            accepted.iter().filter_map(|d| d.known_listener_id.as_deref()).collect();
        let known_ids: BTreeSet<&str> = desired
            .iter()
            .filter_map(|d| d.known_listener_id.as_deref())
            .chain(deleting_ids.iter().copied())
            .collect();
        let frozen: BTreeSet<&str> = desired
            .iter()
            .filter(|d| blocked.contains_key(d.owner.as_str()))
            .filter_map(|d| d.known_listener_id.as_deref())
            .collect();

        // Safety: only our listeners change (id known, or key exactly desired).
        for c in &cloud {
            let now = after.iter().find(|l| l.id == c.id);
            if now != Some(c) {
                prop_assert!(
                    known_ids.contains(c.id.as_str()) || desired_keys.contains(&c.key),
                    "foreign listener {} ({}) was changed", c.id, c.key
                );
            }
            if frozen.contains(c.id.as_str()) && !accepted_keys.contains(&c.key) {
                prop_assert_eq!(now, Some(c), "frozen listener changed");
            }
        }

        // Every accepted desired listener is there, exactly as asked.
        for d in &accepted {
            prop_assert!(!expect_invalid(d), "invalid CR {} was accepted", d.owner);
            let found: Vec<&CloudListener> = after.iter().filter(|l| l.key == d.key).collect();
            prop_assert_eq!(found.len(), 1, "listener for {}", d.owner);
            check_listener(d, found[0])?;
            match plan.listeners.get(&d.owner) {
                Some(ListenerRef::Id(id)) => prop_assert_eq!(id, &found[0].id),
                Some(ListenerRef::Key(key)) => prop_assert_eq!(key, &d.key),
                None => prop_assert!(false, "no listener ref for {}", d.owner),
            }
        }

        // Every block is justified.
        for b in &plan.blocked {
            let d = desired.iter().find(|d| d.owner == b.owner);
            prop_assert!(d.is_some());
            match &b.reason {
                BlockReason::Invalid(_) => {
                    prop_assert!(d.is_some_and(expect_invalid), "{:?} not invalid", d);
                }
                BlockReason::ConflictsWith { owner } => {
                    // The winner was picked first; it may itself be blocked later by a port
                    // in use, but never by a conflict.
                    let winner = desired.iter().find(|a| &a.owner == owner);
                    prop_assert!(winner.is_some_and(|w| w.key.overlaps(&b.key)));
                    let winner_reason = blocked.get(owner.as_str()).map(|w| &w.reason);
                    let winner_lost = matches!(
                        winner_reason,
                        Some(BlockReason::ConflictsWith { .. } | BlockReason::Invalid(_))
                    );
                    prop_assert!(!winner_lost, "winner {} was not eligible", owner);
                }
                BlockReason::PortInUse { listener_id, key } => {
                    let holder = after.iter().find(|l| &l.id == listener_id);
                    prop_assert!(holder.is_some_and(|h| h.key == *key && key.overlaps(&b.key)));
                    prop_assert!(
                        !deleting_ids.contains(listener_id.as_str())
                            || frozen.contains(listener_id.as_str())
                    );
                    prop_assert!(
                        !accepted_ids.contains(listener_id.as_str())
                            || frozen.contains(listener_id.as_str())
                    );
                }
            }
        }

        // No listener of ours is left over: deleting ones are gone unless a desired CR claims
        // the key, and ids of moved listeners are gone.
        for l in &after {
            if (deleting_ids.contains(l.id.as_str()) || accepted_ids.contains(l.id.as_str()))
                && !frozen.contains(l.id.as_str())
            {
                prop_assert!(accepted_keys.contains(&l.key), "leftover listener {} ({})", l.id, l.key);
            }
        }

        // Idempotence, with stale and with refreshed status ids.
        let again = plan_with(&limits, &desired, &deleting, &after);
        prop_assert!(again.is_empty(), "second plan not empty: {:#?}", again.steps);
        let refreshed: Vec<DesiredListener> = desired
            .iter()
            .map(|d| {
                let mut d = d.clone();
                let is_accepted = !blocked.contains_key(d.owner.as_str());
                if let Some(l) = after.iter().find(|l| is_accepted && l.key == d.key) {
                    d.known_listener_id = Some(l.id.clone());
                }
                d
            })
            .collect();
        let again = plan_with(&limits, &refreshed, &deleting, &after);
        prop_assert!(again.is_empty(), "plan after status refresh not empty: {:#?}", again.steps);
    }
}
