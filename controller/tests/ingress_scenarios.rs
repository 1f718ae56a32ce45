//! One test per user-guide scenario (shared/seeds/000_…txt): the guide's manifest, a hand-built world as
//! the scenario describes it, the facts the guide states about the resulting CLB listeners asserted
//! explicitly, and the full generated output as an insta snapshot.

mod ingress_support;

/// Named `ingress` so that `cargo test -p clb-controller ingress` selects these tests.
mod ingress {
    use super::ingress_support::*;

    use clb_controller::api::keys::{
        ANNOTATION_CLB_WEIGHT, LABEL_LB_ID, LABEL_LB_REGION, LABEL_OWNER_KIND, LABEL_OWNER_NAME,
        LABEL_SEGMENT_LISTENER,
    };
    use clb_controller::api::{CertificateMode, LbPolicy, Protocol};
    use clb_controller::ingress::{
        find_conflicts, generate, ingress_claims, parse_lb_annotations, portpool_claims,
    };

    /// Quick start, "NodePort转发": listener 38080; backend IP = the pod's node, port = the Service nodePort.
    #[test]
    fn quickstart_1_nodeport() {
        let ingress = ingress_fixture("ingress-quickstart-nodeport.yaml");
        let mut world = world_for(&ingress);
        world.services.push(service(
            "ingress-test",
            "nginx",
            &[("app", "nginx")],
            vec![svc_port(8080, 80, Some(31080))],
        ));
        world.nodes.push(node("node-1", "10.0.0.11"));
        world.pods.push(
            pod(
                "ingress-test",
                "nginx-7d9c-abcde",
                ("node-1", "10.0.0.11"),
                "172.16.0.11",
            )
            .label("app", "nginx")
            .port(80)
            .build(),
        );

        let out = generate(&ingress, &world);
        assert_eq!(names(&out.listeners), ["lb-xxx-38080"]);
        let l = listener(&out.listeners, "lb-xxx-38080");
        assert_eq!(
            (l.spec.port, l.spec.protocol, l.spec.end_port),
            (38080, Protocol::Tcp, None)
        );
        assert_eq!(backends(l), [("10.0.0.11", 31080, 10)]);
        let labels = l.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["test1"], "ingress-name");
        assert_eq!(labels[LABEL_LB_ID], "lb-xxx");
        assert_eq!(labels[LABEL_LB_REGION], DEFAULT_REGION);
        assert_eq!(labels[LABEL_SEGMENT_LISTENER], "false");
        assert_eq!(labels[LABEL_OWNER_KIND], "Ingress");
        assert_eq!(labels[LABEL_OWNER_NAME], "test1");
        let owner = &l.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("Ingress", "test1", "uid-test1")
        );
        assert_eq!(l.metadata.namespace.as_deref(), Some("ingress-test"));
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        assert_eq!(
            out.load_balancers[0].loadbalancer_id.as_deref(),
            Some("lb-xxx")
        );
        insta::assert_yaml_snapshot!(out);
    }

    /// Quick start, "CLB直通Pod": listener 39090; backend = pod IP, port 80 (the Service targetPort).
    #[test]
    fn quickstart_2_direct() {
        let ingress = ingress_fixture("ingress-quickstart-direct.yaml");
        let mut world = world_for(&ingress);
        world.services.push(service(
            "ingress-test",
            "nginx",
            &[("app", "nginx")],
            vec![svc_port(8080, 80, Some(31080))],
        ));
        world.pods.push(
            pod(
                "ingress-test",
                "nginx-7d9c-abcde",
                ("node-1", "10.0.0.11"),
                "172.16.0.11",
            )
            .label("app", "nginx")
            .port(80)
            .build(),
        );

        let out = generate(&ingress, &world);
        assert_eq!(names(&out.listeners), ["lb-xxx-39090"]);
        assert_eq!(backends(&out.listeners[0]), [("172.16.0.11", 80, 10)]);
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        insta::assert_yaml_snapshot!(out);
    }

    /// Quick start, "端口段": segments 30000-30001, 30002-30003, 30004-30005 for nginx-sts-0..2; vport 30000
    /// maps to 80, so segment i's backend starts at rsStartPort + 2i (80, 82, 84).
    #[test]
    fn quickstart_3_segment() {
        let ingress = ingress_fixture("ingress-quickstart-segment.yaml");
        let mut world = world_for(&ingress);
        world
            .stateful_sets
            .push(stateful_set("ingress-test", "nginx-sts", 3));
        for i in 0..3 {
            world.pods.push(
                pod(
                    "ingress-test",
                    &format!("nginx-sts-{i}"),
                    ("node-1", "10.0.0.11"),
                    &format!("172.16.1.{i}"),
                )
                .label("app", "nginx-sts")
                .port(80)
                .owned_by("StatefulSet", "nginx-sts")
                .build(),
            );
        }

        let out = generate(&ingress, &world);
        assert_eq!(
            names(&out.listeners),
            [
                "lb-xxx-30000-30001",
                "lb-xxx-30002-30003",
                "lb-xxx-30004-30005"
            ]
        );
        for (i, l) in out.listeners.iter().enumerate() {
            let i = i as i32;
            assert_eq!(
                (l.spec.port, l.spec.end_port),
                (30000 + 2 * i, Some(30001 + 2 * i))
            );
            assert_eq!(
                backends(l),
                [(format!("172.16.1.{i}").as_str(), 80 + 2 * i, 10)]
            );
            assert_eq!(
                l.metadata.labels.as_ref().unwrap()[LABEL_SEGMENT_LISTENER],
                "true"
            );
        }
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        insta::assert_yaml_snapshot!(out);
    }

    /// Quick start, "端口池": pool1 on lb-xxx claims 31000-31009 (TCP and UDP); together with the three
    /// quick-start Ingresses on the same CLB nothing conflicts.
    #[test]
    fn quickstart_4_portpool_claims_do_not_conflict_with_the_quickstart_ingresses() {
        let pool = portpool_fixture("portpool-quickstart-portpool.yaml");
        let pool_claims = portpool_claims(&pool, DEFAULT_REGION);
        let ranges: Vec<_> = pool_claims
            .iter()
            .map(|c| (c.protocol, c.first, c.last, c.lb.to_string()))
            .collect();
        assert_eq!(
            ranges,
            [
                (
                    Protocol::Tcp,
                    31000,
                    31009,
                    "ap-guangzhou:lb-xxx".to_string()
                ),
                (
                    Protocol::Udp,
                    31000,
                    31009,
                    "ap-guangzhou:lb-xxx".to_string()
                ),
            ]
        );
        let mut existing = pool_claims.clone();
        for f in [
            "ingress-quickstart-nodeport.yaml",
            "ingress-quickstart-direct.yaml",
            "ingress-quickstart-segment.yaml",
        ] {
            let ingress = ingress_fixture(f);
            let lbs = parse_lb_annotations(ingress.metadata.annotations.as_ref(), DEFAULT_REGION)
                .unwrap();
            let claims = ingress_claims(&ingress, lbs.keys());
            assert!(find_conflicts(&claims, &existing, false).is_empty(), "{f}");
            existing.extend(claims);
        }
        insta::assert_yaml_snapshot!(existing);
    }

    /// Scenario 1: NodePort 31003 on the nodes running test-svc's pods (one backend per node).
    #[test]
    fn scenario_1_nodeport() {
        let ingress = ingress_fixture("ingress-scenario1-nodeport.yaml");
        let mut world = world_for(&ingress);
        world.services.push(service(
            "default",
            "test-svc",
            &[("app", "test")],
            vec![svc_port(8080, 8080, Some(31003))],
        ));
        world.pods.push(
            pod("default", "test-a", ("node-1", "10.0.0.11"), "10.244.1.2")
                .label("app", "test")
                .port(8080)
                .build(),
        );
        world.pods.push(
            pod("default", "test-b", ("node-1", "10.0.0.11"), "10.244.1.3")
                .label("app", "test")
                .port(8080)
                .build(),
        );
        world.pods.push(
            pod("default", "test-c", ("node-2", "10.0.0.12"), "10.244.2.2")
                .label("app", "test")
                .port(8080)
                .not_ready()
                .build(),
        );
        // Another app's pod on a third node is not a backend.
        world.pods.push(
            pod("default", "other", ("node-3", "10.0.0.13"), "10.244.3.2")
                .label("app", "other")
                .build(),
        );

        let out = generate(&ingress, &world);
        assert_eq!(names(&out.listeners), ["lb-xxxxxxx-38080"]);
        // NodePort mode does not filter by readiness (kube-proxy forwards to ready pods anywhere).
        assert_eq!(
            backends(&out.listeners[0]),
            [("10.0.0.11", 31003, 10), ("10.0.0.12", 31003, 10)]
        );
        assert_eq!(
            out.listeners[0].metadata.namespace.as_deref(),
            Some("default")
        );
        insta::assert_yaml_snapshot!(out);
    }

    /// Scenario 2: direct to pods, CLB 38080 → pod 8080 (Service port 28080's targetPort). An unready pod stays
    /// registered with weight 0; a pending pod without IP is not a backend.
    #[test]
    fn scenario_2_direct() {
        let ingress = ingress_fixture("ingress-scenario2-direct.yaml");
        let mut world = world_for(&ingress);
        world.services.push(service(
            "default",
            "test-svc",
            &[("app", "test")],
            vec![svc_port(28080, 8080, Some(31080))],
        ));
        world.pods.push(
            pod("default", "test-a", ("node-1", "10.0.0.11"), "10.244.1.2")
                .label("app", "test")
                .port(8080)
                .build(),
        );
        world.pods.push(
            pod("default", "test-b", ("node-2", "10.0.0.12"), "10.244.2.2")
                .label("app", "test")
                .port(8080)
                .not_ready()
                .build(),
        );
        world.pods.push(
            pod("default", "test-c", ("node-2", "10.0.0.12"), "10.244.2.3")
                .label("app", "test")
                .port(8080)
                .pending()
                .build(),
        );

        let out = generate(&ingress, &world);
        assert_eq!(
            backends(listener(&out.listeners, "lb-xxxxxxx-38080")),
            [("10.244.1.2", 8080, 10), ("10.244.2.2", 8080, 0)]
        );
        insta::assert_yaml_snapshot!(out);
    }

    /// Scenario 3: hostPort, CLB 38080 → node IP : 18080 (the hostPort of container port 8080).
    #[test]
    fn scenario_3_hostport() {
        let ingress = ingress_fixture("ingress-scenario3-hostport.yaml");
        let mut world = world_for(&ingress);
        world.services.push(service(
            "default",
            "test-svc",
            &[("app", "test")],
            vec![svc_port(28080, 8080, None)],
        ));
        world.pods.push(
            pod("default", "test-a", ("node-1", "10.0.0.11"), "10.244.1.2")
                .label("app", "test")
                .host_port(8080, 18080)
                .build(),
        );
        world.pods.push(
            pod("default", "test-b", ("node-2", "10.0.0.12"), "10.244.2.2")
                .label("app", "test")
                .host_port(8080, 18080)
                .build(),
        );

        let out = generate(&ingress, &world);
        assert_eq!(
            backends(listener(&out.listeners, "lb-xxxxxxx-38080")),
            [("10.0.0.11", 18080, 10), ("10.0.0.12", 18080, 10)]
        );
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        insta::assert_yaml_snapshot!(out);
    }

    /// Scenario 4: HTTPS 443 with certificate xxx (UNIDIRECTIONAL), rule www.qq.com/path1 → nodes : 31003.
    /// (The guide's prose says test-svc, its manifest says test-tcp; the manifest is what gets applied.)
    #[test]
    fn scenario_4_https() {
        let ingress = ingress_fixture("ingress-scenario4-https.yaml");
        let mut world = world_for(&ingress);
        world.services.push(service(
            "default",
            "test-tcp",
            &[("app", "test")],
            vec![svc_port(8080, 8080, Some(31003))],
        ));
        world.pods.push(
            pod("default", "test-a", ("node-1", "10.0.0.11"), "10.244.1.2")
                .label("app", "test")
                .port(8080)
                .build(),
        );

        let out = generate(&ingress, &world);
        let l = listener(&out.listeners, "lb-xxxxxxx-443");
        assert_eq!(l.spec.protocol, Protocol::Https);
        let cert = l.spec.certificate.as_ref().unwrap();
        assert_eq!(
            (cert.mode, cert.cert_id.as_deref()),
            (Some(CertificateMode::Unidirectional), Some("xxx"))
        );
        assert!(l.spec.target_group.is_none());
        assert_eq!(l.spec.rules.len(), 1);
        assert_eq!(
            rule_backends(l, "www.qq.com", "/path1"),
            [("10.0.0.11", 31003, 10)]
        );
        assert_eq!(
            l.spec.rules[0]
                .target_group
                .as_ref()
                .unwrap()
                .protocol
                .as_deref(),
            Some("HTTPS")
        );
        insta::assert_yaml_snapshot!(out);
    }

    /// Scenario 5: UDP segments of 5 for gameserver-0..5: pod i gets 30000+5i ..= 30004+5i, backend port =
    /// the first CLB port (no rsStartPort). The guide's list ends "gameserver-5对应30020~30024", which
    /// contradicts its own first two lines (0 → 30000~30004, 1 → 30005~30009); pod 5 gets 30025~30029.
    #[test]
    fn scenario_5_segment_mapping() {
        let ingress = ingress_fixture("ingress-scenario5-segment-mapping.yaml");
        let mut world = world_for(&ingress);
        world
            .stateful_sets
            .push(stateful_set("game", "gameserver", 6));
        for i in 0..6 {
            world.pods.push(
                pod(
                    "game",
                    &format!("gameserver-{i}"),
                    ("node-1", "10.0.0.11"),
                    &format!("10.244.0.{}", 10 + i),
                )
                .label("app", "gameserver")
                .udp_port(30000 + 5 * i)
                .owned_by("StatefulSet", "gameserver")
                .build(),
            );
        }

        let out = generate(&ingress, &world);
        assert_eq!(out.listeners.len(), 6);
        let first = listener(&out.listeners, "lb-xxxxxxx-30000-30004");
        assert_eq!(
            (first.spec.protocol, first.spec.end_port),
            (Protocol::Udp, Some(30004))
        );
        assert_eq!(backends(first), [("10.244.0.10", 30000, 10)]);
        assert_eq!(
            backends(listener(&out.listeners, "lb-xxxxxxx-30005-30009")),
            [("10.244.0.11", 30005, 10)]
        );
        assert_eq!(
            backends(listener(&out.listeners, "lb-xxxxxxx-30025-30029")),
            [("10.244.0.15", 30025, 10)]
        );
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        insta::assert_yaml_snapshot!(out);
    }

    /// Scenario 7: one TCP 38080 listener; svc1's nodes at nodePort 31003 weight 80, svc2's at 31004 weight 20.
    #[test]
    fn scenario_7_weights_between_services() {
        let ingress = ingress_fixture("ingress-scenario7-weights.yaml");
        let mut world = world_for(&ingress);
        world.services.push(service(
            "default",
            "svc1",
            &[("app", "svc1")],
            vec![svc_port(8080, 8080, Some(31003))],
        ));
        world.services.push(service(
            "default",
            "svc2",
            &[("app", "svc2")],
            vec![svc_port(8080, 8080, Some(31004))],
        ));
        world.pods.push(
            pod("default", "svc1-a", ("node-1", "10.0.0.11"), "10.244.1.2")
                .label("app", "svc1")
                .build(),
        );
        world.pods.push(
            pod("default", "svc1-b", ("node-2", "10.0.0.12"), "10.244.2.2")
                .label("app", "svc1")
                .build(),
        );
        world.pods.push(
            pod("default", "svc2-a", ("node-2", "10.0.0.12"), "10.244.2.3")
                .label("app", "svc2")
                .build(),
        );

        let out = generate(&ingress, &world);
        assert_eq!(
            backends(listener(&out.listeners, "lb-xxxxxxx-38080")),
            [
                ("10.0.0.11", 31003, 80),
                ("10.0.0.12", 31003, 80),
                ("10.0.0.12", 31004, 20)
            ]
        );
        insta::assert_yaml_snapshot!(out);
    }

    /// Scenario 8: one Service over two Deployments; pods labelled version=v2-1 weigh 10, version=v2-2 weigh 20.
    #[test]
    fn scenario_8_subset_weights() {
        let ingress = ingress_fixture("ingress-scenario8-subsets.yaml");
        let mut world = world_for(&ingress);
        world.services.push(service(
            "ingress-test",
            "nginx-v2",
            &[("app", "nginx-v2")],
            vec![svc_port(8080, 8080, None)],
        ));
        for (name, version, ip) in [
            ("v21-a", "v2-1", "10.244.1.2"),
            ("v21-b", "v2-1", "10.244.1.3"),
            ("v22-a", "v2-2", "10.244.2.2"),
        ] {
            world.pods.push(
                pod("ingress-test", name, ("node-1", "10.0.0.11"), ip)
                    .label("app", "nginx-v2")
                    .label("version", version)
                    .port(8080)
                    .build(),
            );
        }
        // A pod of the Service in neither subset is not registered.
        world.pods.push(
            pod(
                "ingress-test",
                "v1-a",
                ("node-1", "10.0.0.11"),
                "10.244.3.2",
            )
            .label("app", "nginx-v2")
            .label("version", "v1")
            .port(8080)
            .build(),
        );

        let out = generate(&ingress, &world);
        assert_eq!(
            backends(listener(&out.listeners, "lb-7hxxxxx-8080")),
            [
                ("10.244.1.2", 8080, 10),
                ("10.244.1.3", 8080, 10),
                ("10.244.2.2", 8080, 20)
            ]
        );
        insta::assert_yaml_snapshot!(out);
    }

    /// Scenario 9: HTTPS per pod: gameserver-i on 30000+i (per-port names end in "-0"), certificate on the
    /// listener, rule www.qq.com/path2 → pod IP : 30000+i.
    #[test]
    fn scenario_9_https_mapping() {
        let ingress = ingress_fixture("ingress-scenario9-https-mapping.yaml");
        let mut world = world_for(&ingress);
        world
            .stateful_sets
            .push(stateful_set("game", "gameserver", 6));
        for i in 0..6 {
            world.pods.push(
                pod(
                    "game",
                    &format!("gameserver-{i}"),
                    ("node-1", "10.0.0.11"),
                    &format!("10.244.0.{}", 10 + i),
                )
                .port(30000 + i)
                .owned_by("StatefulSet", "gameserver")
                .build(),
            );
        }

        let out = generate(&ingress, &world);
        assert_eq!(
            names(&out.listeners),
            [
                "lb-xxxxxxx-30000-0",
                "lb-xxxxxxx-30001-0",
                "lb-xxxxxxx-30002-0",
                "lb-xxxxxxx-30003-0",
                "lb-xxxxxxx-30004-0",
                "lb-xxxxxxx-30005-0"
            ]
        );
        for (i, l) in out.listeners.iter().enumerate() {
            let i = i as i32;
            assert_eq!(
                (l.spec.port, l.spec.end_port, l.spec.protocol),
                (30000 + i, None, Protocol::Https)
            );
            assert_eq!(
                l.spec.certificate.as_ref().unwrap().cert_id.as_deref(),
                Some("xxxxxxx")
            );
            assert_eq!(
                rule_backends(l, "www.qq.com", "/path2"),
                [(format!("10.244.0.{}", 10 + i).as_str(), 30000 + i, 10)]
            );
        }
        insta::assert_yaml_snapshot!(out);
    }

    /// Scenario 11: the same listener on a CLB in Chongqing and one in Shanghai, each labelled with its region.
    /// The guide's two placeholder ids are the same string; real CLB ids are unique, so the test gives them
    /// distinct ids (and checks that the identical placeholders are reported rather than silently merged).
    #[test]
    fn scenario_11_cross_region() {
        let mut ingress = ingress_fixture("ingress-cross-region-ingress.yaml");
        let placeholder = generate(&ingress, &world_for(&ingress));
        assert_eq!(placeholder.listeners.len(), 1);
        assert!(
            placeholder
                .problems
                .iter()
                .any(|p| p.path == "spec.rules[0]" && p.message.contains("generated twice")),
            "{:?}",
            placeholder.problems
        );

        ingress.metadata.annotations.as_mut().unwrap().insert(
            "networkextension.bkbcs.tencent.com/lbids".into(),
            "ap-chongqing:lb-cq000001,ap-shanghai:lb-sh000001".into(),
        );
        let mut world = world_for(&ingress);
        world.services.push(service(
            "ingress",
            "nginx-host",
            &[("app", "nginx-host")],
            vec![svc_port(8080, 8080, Some(31500))],
        ));
        world.pods.push(
            pod(
                "ingress",
                "nginx-host-a",
                ("node-1", "10.0.0.11"),
                "10.0.0.11",
            )
            .label("app", "nginx-host")
            .build(),
        );

        let out = generate(&ingress, &world);
        assert_eq!(
            names(&out.listeners),
            ["lb-cq000001-38080", "lb-sh000001-38080"]
        );
        for (l, region) in out.listeners.iter().zip(["ap-chongqing", "ap-shanghai"]) {
            assert_eq!(l.metadata.labels.as_ref().unwrap()[LABEL_LB_REGION], region);
            assert_eq!(backends(l), [("10.0.0.11", 31500, 10)]);
        }
        let regions: Vec<_> = out
            .load_balancers
            .iter()
            .map(|lb| lb.region.as_deref().unwrap())
            .collect();
        assert_eq!(regions, ["ap-chongqing", "ap-shanghai"]);
        insta::assert_yaml_snapshot!(out);
    }

    /// "更多参数解释": lbids wins over lbnames; TCP 1111 keeps its listener attributes and goes direct to the
    /// hostPort; HTTP 2222 keeps only listener-level attributes on the listener and the route's on its rule.
    #[test]
    fn more_parameters() {
        let ingress = ingress_fixture("ingress-more-parameters-ingress.yaml");
        let mut world = world_for(&ingress);
        assert_eq!(world.load_balancers[0].id, "lb-xxxxxx");
        world.services.push(service(
            "default",
            "test-tcp",
            &[("app", "tcp")],
            vec![svc_port(1111, 1111, None)],
        ));
        world.services.push(service(
            "default",
            "test2",
            &[("app", "http")],
            vec![svc_port(2222, 8080, Some(32222))],
        ));
        world.pods.push(
            pod("default", "tcp-a", ("node-1", "10.0.0.11"), "10.244.1.2")
                .label("app", "tcp")
                .host_port(1111, 21111)
                .build(),
        );
        world.pods.push(
            pod("default", "http-a", ("node-2", "10.0.0.12"), "10.244.2.2")
                .label("app", "http")
                .port(8080)
                .build(),
        );

        let out = generate(&ingress, &world);
        assert_eq!(names(&out.listeners), ["lb-xxxxxx-1111", "lb-xxxxxx-2222"]);
        let tcp = &out.listeners[0];
        let attr = tcp.spec.listener_attribute.as_ref().unwrap();
        assert_eq!(
            (attr.session_time, attr.lb_policy),
            (Some(100), Some(LbPolicy::Wrr))
        );
        assert_eq!(attr.health_check.as_ref().unwrap().interval_time, Some(15));
        assert_eq!(backends(tcp), [("10.0.0.11", 21111, 10)]);
        let http = &out.listeners[1];
        assert!(http.spec.listener_attribute.is_none());
        let rule_attr = http.spec.rules[0].listener_attribute.as_ref().unwrap();
        assert_eq!(rule_attr.lb_policy, Some(LbPolicy::LeastConn));
        assert_eq!(
            rule_backends(http, "www.qq.com", "/test1"),
            [("10.0.0.12", 32222, 10)]
        );
        assert!(out.problems.is_empty(), "{:?}", out.problems);
        insta::assert_yaml_snapshot!(out);
    }

    /// The per-pod `clb-weight` annotation (GameStatefulSet in-place-update hooks set it to 0 to drain a pod and
    /// back to 1) overrides the route weight in direct mode; terminating pods drain at weight 0.
    #[test]
    fn clb_weight_annotation_and_terminating_pods() {
        let ingress = ingress_fixture("ingress-scenario2-direct.yaml");
        let mut world = world_for(&ingress);
        world.services.push(service(
            "default",
            "test-svc",
            &[("app", "test")],
            vec![svc_port(28080, 8080, None)],
        ));
        world.pods.push(
            pod("default", "a", ("n1", "10.0.0.11"), "10.244.1.2")
                .label("app", "test")
                .annotation(ANNOTATION_CLB_WEIGHT, "0")
                .build(),
        );
        world.pods.push(
            pod("default", "b", ("n1", "10.0.0.11"), "10.244.1.3")
                .label("app", "test")
                .annotation(ANNOTATION_CLB_WEIGHT, "1")
                .build(),
        );
        world.pods.push(
            pod("default", "c", ("n1", "10.0.0.11"), "10.244.1.4")
                .label("app", "test")
                .terminating()
                .build(),
        );
        world.pods.push(
            pod("default", "d", ("n1", "10.0.0.11"), "10.244.1.5")
                .label("app", "test")
                .annotation(ANNOTATION_CLB_WEIGHT, "heavy")
                .build(),
        );

        let out = generate(&ingress, &world);
        assert_eq!(
            backends(&out.listeners[0]),
            [
                ("10.244.1.2", 8080, 0),
                ("10.244.1.3", 8080, 1),
                ("10.244.1.4", 8080, 0),
                ("10.244.1.5", 8080, 10)
            ]
        );
        assert_eq!(out.problems.len(), 1);
        assert!(
            out.problems[0].message.contains("\"heavy\""),
            "{}",
            out.problems[0]
        );
    }
}
