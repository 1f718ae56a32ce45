//! Admission helpers of the ingress module: `lbids`/`lbnames` parsing, static validation messages, and
//! cluster-wide port conflicts between Ingresses and PortPools.

mod ingress_support;

/// Named `ingress` so that `cargo test -p clb-controller ingress` selects these tests.
mod ingress {
    use super::ingress_support::*;

    use std::collections::BTreeMap;

    use clb_controller::api::{Ingress, Protocol};
    use clb_controller::ingress::{
        LbAnnotationError, LbKey, LbSelection, Settings, find_conflicts, ingress_claims,
        parse_lb_annotations, portpool_claims, validate,
    };

    const IDS: &str = "networkextension.bkbcs.tencent.com/lbids";
    const NAMES: &str = "networkextension.bkbcs.tencent.com/lbnames";

    fn annotations(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn key(region: &str, value: &str) -> LbKey {
        LbKey {
            region: region.into(),
            value: value.into(),
        }
    }

    fn settings() -> Settings {
        Settings {
            default_region: DEFAULT_REGION.into(),
            tcp_udp_port_reuse: false,
        }
    }

    fn ingress_yaml(yaml: &str) -> Ingress {
        serde_yaml::from_str(yaml).expect("test manifest parses")
    }

    // ---- lbids / lbnames --------------------------------------------------------------------------------

    #[test]
    fn lbids_take_the_default_region_unless_prefixed() {
        let a = annotations(&[(IDS, " lb-a , ap-shanghai:lb-b,,lb-a ")]);
        assert_eq!(
            parse_lb_annotations(Some(&a), DEFAULT_REGION),
            Ok(LbSelection::Ids(vec![
                key("ap-guangzhou", "lb-a"),
                key("ap-shanghai", "lb-b")
            ]))
        );
    }

    #[test]
    fn lbids_win_over_lbnames() {
        let a = annotations(&[(IDS, "lb-a"), (NAMES, "name1")]);
        assert_eq!(
            parse_lb_annotations(Some(&a), DEFAULT_REGION),
            Ok(LbSelection::Ids(vec![key("ap-guangzhou", "lb-a")]))
        );
    }

    #[test]
    fn lbnames_accept_region_prefix_and_keep_colons_that_are_not_regions() {
        let a = annotations(&[(NAMES, "name1,eu-frankfurt:name2,team:clb")]);
        assert_eq!(
            parse_lb_annotations(Some(&a), DEFAULT_REGION),
            Ok(LbSelection::Names(vec![
                key("ap-guangzhou", "name1"),
                key("eu-frankfurt", "name2"),
                key("ap-guangzhou", "team:clb")
            ]))
        );
    }

    #[test]
    fn bad_lb_annotations_are_explained() {
        assert_eq!(
            parse_lb_annotations(None, DEFAULT_REGION),
            Err(LbAnnotationError::Missing)
        );
        let empty = annotations(&[(IDS, " , ")]);
        assert_eq!(
            parse_lb_annotations(Some(&empty), DEFAULT_REGION),
            Err(LbAnnotationError::Missing)
        );
        for bad in ["clb-a", "ap-gz:x:lb-a", "lb-", "guangzhou:lb-a"] {
            let a = annotations(&[(IDS, bad)]);
            let err = parse_lb_annotations(Some(&a), DEFAULT_REGION).unwrap_err();
            assert!(
                matches!(err, LbAnnotationError::BadId { .. }),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        let a = annotations(&[(IDS, "lb-a")]);
        let err = parse_lb_annotations(Some(&a), "").unwrap_err();
        assert_eq!(
            err.to_string(),
            "metadata.annotations[networkextension.bkbcs.tencent.com/lbids]: entry \"lb-a\" has no region and the controller has no default region"
        );
        let a = annotations(&[(IDS, "ap-beijing:lb-a")]);
        assert_eq!(
            parse_lb_annotations(Some(&a), ""),
            Ok(LbSelection::Ids(vec![key("ap-beijing", "lb-a")]))
        );
    }

    // ---- static validation ------------------------------------------------------------------------------

    #[test]
    fn every_user_guide_ingress_is_valid() {
        for f in [
            "ingress-quickstart-nodeport.yaml",
            "ingress-quickstart-direct.yaml",
            "ingress-quickstart-segment.yaml",
            "ingress-scenario1-nodeport.yaml",
            "ingress-scenario2-direct.yaml",
            "ingress-scenario3-hostport.yaml",
            "ingress-scenario4-https.yaml",
            "ingress-scenario5-segment-mapping.yaml",
            "ingress-scenario7-weights.yaml",
            "ingress-scenario8-subsets.yaml",
            "ingress-scenario9-https-mapping.yaml",
            "ingress-cross-region-ingress.yaml",
            "ingress-more-parameters-ingress.yaml",
        ] {
            assert_eq!(
                validate(&ingress_fixture(f), &settings()),
                Vec::<String>::new(),
                "{f}"
            );
        }
    }

    const BROKEN: &str = r#"
apiVersion: networkextension.bkbcs.tencent.com/v1
kind: Ingress
metadata:
  name: broken
  namespace: ns
  annotations:
    networkextension.bkbcs.tencent.com/lbids: lb-a
spec:
  rules:
  - port: 8080
    protocol: TCP
    services:
    - serviceName: s
      servicePort: 80
      hostPort: true
  - port: 9090
    protocol: HTTP
  - port: 8080
    protocol: HTTP
    layer7Routes:
    - domain: a.com
      path: /
    - domain: a.com
      path: /
  - port: 443
    protocol: HTTPS
    layer7Routes:
    - domain: b.com
  - port: 8080
    protocol: UDP
  portMappings:
  - startPort: 30000
    protocol: HTTP
    startIndex: 0
    endIndex: 2
    segmentLength: 2
    workloadKind: StatefulSet
    workloadName: w
    workloadNamespace: ns
  - startPort: 30003
    protocol: TCP
    startIndex: 3
    endIndex: 1
    workloadKind: Deployment
    workloadName: w
    workloadNamespace: ns
  - startPort: 30002
    protocol: TCP
    startIndex: 0
    endIndex: 2
    workloadKind: gamestatefulset
    workloadName: w
    workloadNamespace: ns
"#;

    #[test]
    fn validation_names_the_field_of_each_problem() {
        let errors = validate(&ingress_yaml(BROKEN), &settings());
        let expected = [
            "spec.rules[0].services[0].hostPort: needs isDirectConnect: true",
            "spec.rules[1].layer7Routes: required for HTTP rules",
            "spec.rules[2].layer7Routes[1]: domain \"a.com\" path \"/\" repeats an earlier route",
            "spec.rules[3].certificate: required for HTTPS unless listenerAttribute.sniSwitch is 1",
            "spec.portMappings[0].segmentLength: port segments need TCP or UDP, not HTTP (set ignoreSegment: true for one listener per port)",
            "spec.portMappings[0].routes: required for HTTP mappings",
            "spec.portMappings[1].workloadKind: \"Deployment\" is not supported (StatefulSet or GameStatefulSet)",
            "spec.portMappings[1].endIndex: 1 must be greater than startIndex 3 (the range is [startIndex, endIndex))",
            "spec.rules[2].port: port 8080 is already used by spec.rules[0] (TCP)",
            "spec.rules[4].port: port 8080 is already used by spec.rules[0] (TCP) (TCP and UDP share a port only with TCP_UDP_PORT_REUSE=true)",
            "spec.rules[4].port: port 8080 is already used by spec.rules[2] (HTTP) (TCP and UDP share a port only with TCP_UDP_PORT_REUSE=true)",
            // Mapping 0 covers 30000-30003 (2 pods × 2 ports); bcs ignored segmentLength here.
            "spec.portMappings[2].startPort: port 30002 is already used by spec.portMappings[0] (HTTP)",
        ];
        assert_eq!(errors, expected);
    }

    #[test]
    fn tcp_and_udp_rules_may_share_a_port_with_reuse() {
        let errors = validate(
            &ingress_yaml(BROKEN),
            &Settings {
                tcp_udp_port_reuse: true,
                ..settings()
            },
        );
        assert!(
            !errors.iter().any(|e| e.starts_with("spec.rules[4].port")),
            "{errors:?}"
        );
        assert!(
            errors.iter().any(|e| e.starts_with("spec.rules[2].port")),
            "TCP vs HTTP still clashes: {errors:?}"
        );
    }

    #[test]
    fn certificates_and_sni() {
        let ingress = ingress_yaml(
            r#"
apiVersion: networkextension.bkbcs.tencent.com/v1
kind: Ingress
metadata:
  name: certs
  annotations:
    networkextension.bkbcs.tencent.com/lbnames: clb1
spec:
  rules:
  - port: 443
    protocol: HTTPS
    listenerAttribute:
      sniSwitch: 1
    layer7Routes:
    - domain: a.com
      certificate:
        certID: c1
    - domain: b.com
  - port: 444
    protocol: TCP_SSL
    certificate:
      mode: MUTUAL
      certID: c2
  - port: 80
    protocol: TCP
    certificate:
      certID: c3
"#,
        );
        assert_eq!(
            validate(&ingress, &settings()),
            [
                "spec.rules[0].layer7Routes[1].certificate: required when listenerAttribute.sniSwitch is 1",
                "spec.rules[1].certificate.certCaID: required when mode is MUTUAL",
                "spec.rules[2].certificate: only HTTPS, TCP_SSL and QUIC listeners take a certificate, not TCP",
            ]
        );
    }

    #[test]
    fn mapping_ports_beyond_65535_and_missing_annotation() {
        let ingress = ingress_yaml(
            r#"
apiVersion: networkextension.bkbcs.tencent.com/v1
kind: Ingress
metadata:
  name: big
spec:
  portMappings:
  - startPort: 65000
    rsStartPort: 65500
    protocol: UDP
    startIndex: 0
    endIndex: 100
    segmentLength: 10
    workloadKind: StatefulSet
    workloadName: w
    workloadNamespace: ns
"#,
        );
        assert_eq!(
            validate(&ingress, &settings()),
            [
                "metadata.annotations: one of networkextension.bkbcs.tencent.com/lbids or networkextension.bkbcs.tencent.com/lbnames is required",
                "spec.portMappings[0].endIndex: ordinals up to 99 need CLB ports up to 65999, above 65535",
                "spec.portMappings[0].rsStartPort: ordinals up to 99 need backend ports up to 66499, above 65535",
            ]
        );
    }

    // ---- cluster-wide conflicts -------------------------------------------------------------------------

    fn claims_of(ingress: &Ingress) -> Vec<clb_controller::ingress::PortClaim> {
        let lbs =
            parse_lb_annotations(ingress.metadata.annotations.as_ref(), DEFAULT_REGION).unwrap();
        ingress_claims(ingress, lbs.keys())
    }

    fn rule_ingress(ns: &str, name: &str, lbids: &str, protocol: &str, port: i32) -> Ingress {
        ingress_yaml(&format!(
            r#"
apiVersion: networkextension.bkbcs.tencent.com/v1
kind: Ingress
metadata:
  name: {name}
  namespace: {ns}
  annotations:
    networkextension.bkbcs.tencent.com/lbids: "{lbids}"
spec:
  rules:
  - port: {port}
    protocol: {protocol}
"#
        ))
    }

    #[test]
    fn tcp_and_http_on_one_port_conflict_and_the_message_names_both_objects() {
        let existing = claims_of(&rule_ingress("a", "web", "lb-1", "HTTP", 8080));
        let candidate = claims_of(&rule_ingress("b", "game", "lb-1", "TCP", 8080));
        let conflicts = find_conflicts(&candidate, &existing, false);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(conflicts[0].port, 8080);
        assert_eq!(
            conflicts[0].message,
            "port conflict on ap-guangzhou:lb-1 port 8080: Ingress b/game (spec.rules[0], TCP port 8080) overlaps Ingress a/web (spec.rules[0], HTTP port 8080)"
        );
    }

    #[test]
    fn tcp_and_udp_share_a_port_unless_listener_names_would_collide() {
        let tcp = claims_of(&rule_ingress("a", "tcp", "lb-1", "TCP", 7000));
        // Another namespace: Listener CRs cannot collide, CLB keeps TCP and UDP apart.
        let udp_elsewhere = claims_of(&rule_ingress("b", "udp", "lb-1", "UDP", 7000));
        assert!(find_conflicts(&udp_elsewhere, &tcp, false).is_empty());
        // Same namespace: both would be Listener "lb-1-7000" unless TCP_UDP_PORT_REUSE names them by protocol.
        let udp_same_ns = claims_of(&rule_ingress("a", "udp", "lb-1", "UDP", 7000));
        let conflicts = find_conflicts(&udp_same_ns, &tcp, false);
        assert_eq!(conflicts.len(), 1);
        assert!(
            conflicts[0].message.contains("TCP_UDP_PORT_REUSE"),
            "{}",
            conflicts[0].message
        );
        assert!(find_conflicts(&udp_same_ns, &tcp, true).is_empty());
        // QUIC is in UDP's port space.
        let quic = claims_of(&rule_ingress("b", "quic", "lb-1", "QUIC", 7000));
        assert_eq!(find_conflicts(&quic, &udp_elsewhere, true).len(), 1);
    }

    #[test]
    fn conflicts_are_per_region_and_lb_and_ignore_the_object_itself() {
        let old = claims_of(&rule_ingress("a", "web", "lb-1", "TCP", 80));
        let same_object = claims_of(&rule_ingress("a", "web", "lb-1", "TCP", 80));
        assert!(
            find_conflicts(&same_object, &old, false).is_empty(),
            "an UPDATE does not conflict with itself"
        );
        let other_lb = claims_of(&rule_ingress("b", "web", "lb-2", "TCP", 80));
        let other_region = claims_of(&rule_ingress("b", "web", "ap-shanghai:lb-1", "TCP", 80));
        assert!(find_conflicts(&other_lb, &old, false).is_empty());
        assert!(find_conflicts(&other_region, &old, false).is_empty());
        let same_by_prefix = claims_of(&rule_ingress("b", "web", "ap-guangzhou:lb-1", "TCP", 80));
        assert_eq!(find_conflicts(&same_by_prefix, &old, false).len(), 1);
    }

    #[test]
    fn mapping_ranges_include_segment_length_and_pools_only_whole_segments() {
        // Quick-start segment mapping: 3 pods × 2 ports = 30000-30005 on lb-xxx.
        let mapping = claims_of(&ingress_fixture("ingress-quickstart-segment.yaml"));
        assert_eq!(
            (mapping[0].first, mapping[0].last, mapping[0].protocol),
            (30000, 30005, Protocol::Tcp)
        );
        let mut pool = portpool_fixture("portpool-quickstart-portpool.yaml");
        pool.spec.pool_items[0].start_port = 30005;
        pool.spec.pool_items[0].end_port = 30012;
        pool.spec.pool_items[0].segment_length = Some(3);
        pool.spec.pool_items[0].protocol = Some("TCP".into());
        let pool_claims = portpool_claims(&pool, DEFAULT_REGION);
        // [30005, 30012) in segments of 3: 30005-30007, 30008-30010; 30011 is never used.
        assert_eq!((pool_claims[0].first, pool_claims[0].last), (30005, 30010));
        let conflicts = find_conflicts(&pool_claims, &mapping, false);
        assert_eq!(conflicts.len(), 1);
        assert_eq!(
            conflicts[0].message,
            "port conflict on ap-guangzhou:lb-xxx port 30005: PortPool ingress-test/pool1 (spec.poolItems[0], TCP ports 30005-30010) overlaps Ingress ingress-test/test3 (spec.portMappings[0], TCP ports 30000-30005)"
        );
    }

    #[test]
    fn cross_region_pool_claims_each_lb_in_its_region() {
        let pool = portpool_fixture("portpool-cross-region-portpool.yaml");
        let lbs: Vec<String> = portpool_claims(&pool, DEFAULT_REGION)
            .iter()
            .map(|c| format!("{} {}", c.lb, c.protocol))
            .collect();
        assert_eq!(
            lbs,
            [
                "ap-chongqing:lb-xxxxxxxx TCP",
                "ap-chongqing:lb-xxxxxxxx UDP",
                "ap-shanghai:lb-xxxxxxxx TCP",
                "ap-shanghai:lb-xxxxxxxx UDP"
            ]
        );
        // The cross-region Ingress (TCP 38080) and pool (31000-31099) share both CLBs without conflict.
        let ingress = claims_of(&ingress_fixture("ingress-cross-region-ingress.yaml"));
        assert!(
            find_conflicts(&ingress, &portpool_claims(&pool, DEFAULT_REGION), false).is_empty()
        );
    }
}
