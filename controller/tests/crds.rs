//! CRD generation and manifest compatibility: user-guide manifests round-trip through the types, the generated
//! schemas carry the static validation, and `clb-controller crds` prints four installable CRDs.

use std::path::{Path, PathBuf};
use std::process::Command;

use clb_controller::api::{self, Ingress, Listener, PortBinding, PortPool};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;
use serde_json::Value;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/user-guide")
}

/// YAML `key:` with no value is null; Go and the apiserver treat it as absent, so the comparison does too.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn round_trip<K: serde::de::DeserializeOwned + serde::Serialize>(
    v: &Value,
) -> Result<Value, String> {
    let typed: K = serde_json::from_value(v.clone()).map_err(|e| e.to_string())?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

fn round_trip_by_kind(v: &Value) -> Result<Value, String> {
    match v["kind"].as_str() {
        Some("Ingress") => round_trip::<Ingress>(v),
        Some("PortPool") => round_trip::<PortPool>(v),
        Some("Listener") => round_trip::<Listener>(v),
        Some("PortBinding") => round_trip::<PortBinding>(v),
        other => Err(format!("unexpected kind {other:?}")),
    }
}

fn load_fixture(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap();
    let mut v: Value = serde_yaml::from_str(&text).unwrap();
    strip_nulls(&mut v);
    v
}

#[test]
fn user_guide_manifests_round_trip_without_losing_fields() {
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(fixtures_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yaml") {
            continue;
        }
        let original = load_fixture(&path);
        assert_eq!(
            original["apiVersion"],
            api::API_VERSION,
            "{}",
            path.display()
        );
        let back =
            round_trip_by_kind(&original).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(back, original, "{} changed in a round trip", path.display());
        seen.push((original["kind"].as_str().unwrap().to_owned(), path));
    }
    // The guide has 13 Ingress and 8 PortPool examples; a missing file would silently shrink coverage.
    let count = |kind: &str| seen.iter().filter(|(k, _)| k == kind).count();
    assert_eq!(count("Ingress"), 13, "{seen:?}");
    assert_eq!(count("PortPool"), 8, "{seen:?}");
}

#[test]
fn user_guide_field_values_land_in_typed_fields() {
    let v = load_fixture(&fixtures_dir().join("ingress-more-parameters-ingress.yaml"));
    let ing: Ingress = serde_json::from_value(v).unwrap();
    let l4 = &ing.spec.rules[0];
    assert_eq!(l4.port, 1111);
    assert_eq!(l4.protocol, api::Protocol::Tcp);
    let attr = l4.listener_attribute.as_ref().unwrap();
    assert_eq!(attr.session_time, Some(100));
    assert_eq!(attr.lb_policy, Some(api::LbPolicy::Wrr));
    let hc = attr.health_check.as_ref().unwrap();
    assert_eq!(
        (
            hc.timeout,
            hc.interval_time,
            hc.health_num,
            hc.un_health_num
        ),
        (Some(2), Some(15), Some(3), Some(3))
    );
    assert_eq!(l4.services[0].is_direct_connect, Some(true));
    assert_eq!(l4.services[0].weight(), 10);
    let l7 = &ing.spec.rules[1];
    assert_eq!(l7.protocol, api::Protocol::Http);
    let route = &l7.layer7_routes[0];
    assert_eq!(route.domain, "www.qq.com");
    let rhc = route
        .listener_attribute
        .as_ref()
        .unwrap()
        .health_check
        .as_ref()
        .unwrap();
    assert_eq!(rhc.http_code, Some(31));
    assert_eq!(rhc.http_check_method.as_deref(), Some("HEAD"));

    let v = load_fixture(&fixtures_dir().join("portpool-with-status.yaml"));
    let pool: PortPool = serde_json::from_value(v).unwrap();
    let status = pool.status.unwrap();
    assert_eq!(status.pool_items[0].status, "Ready");
    assert_eq!(
        status.pool_items[0].pool_item_load_balancers[0].ips,
        vec!["1.1.1.1".to_owned()]
    );
}

/// The guide's second PortPool example spells `loadBalancerID`; the field is `loadBalancerIDs` and required, so
/// the original CRD rejects it too.
#[test]
fn user_guide_typo_is_rejected() {
    let text = std::fs::read_to_string(fixtures_dir().join("portpool-multi-lb.yaml"))
        .unwrap()
        .replace(
            "    loadBalancerIDs: [\"lb-test3\"",
            "    loadBalancerID: [\"lb-test3\"",
        );
    let v: Value = serde_yaml::from_str(&text).unwrap();
    let err = serde_json::from_value::<PortPool>(v)
        .unwrap_err()
        .to_string();
    assert!(err.contains("loadBalancerIDs"), "{err}");
}

#[test]
fn round_trip_keeps_explicit_false_and_zero() {
    let v = serde_json::json!({
        "apiVersion": api::API_VERSION, "kind": "Ingress", "metadata": {"name": "x"},
        "spec": {"portMappings": [{
            "workloadKind": "StatefulSet", "workloadName": "w", "workloadNamespace": "ns",
            "startPort": 30000, "startIndex": 0, "endIndex": 3, "protocol": "UDP",
            "segmentLength": 0, "isRsPortFixed": false, "hostPort": false,
            "listenerAttribute": {"sessionTime": 0}
        }]}
    });
    assert_eq!(round_trip::<Ingress>(&v).unwrap(), v);
}

#[test]
fn listener_and_portbinding_round_trip() {
    let listener = serde_json::json!({
        "apiVersion": api::API_VERSION, "kind": "Listener",
        "metadata": {"name": "lb-00001-tcp-31000", "namespace": "test"},
        "spec": {"loadbalancerID": "lb-00001", "port": 31000, "protocol": "TCP",
                 "targetGroup": {"protocol": "TCP", "backends": [{"IP": "10.0.0.1", "port": 80, "weight": 10}]}},
        "status": {"listenerID": "lbl-1", "status": "Synced", "msg": "ensure success", "portpool": "pool1",
                   "uptimeCheckStatus": {"id": 3, "status": "running", "future": ["kept"]}}
    });
    assert_eq!(round_trip::<Listener>(&listener).unwrap(), listener);

    let binding = serde_json::json!({
        "apiVersion": api::API_VERSION, "kind": "PortBinding", "metadata": {"name": "pod-0", "namespace": "test"},
        "spec": {"portBindingList": [{
            "poolName": "test-pool1", "poolNamespace": "test", "loadBalancerIDs": ["lb-00001"],
            "poolItemLoadBalancers": [{"loadbalancerName": "n", "loadbalancerID": "lb-00001", "region": "ap-nanjing",
                                       "type": "OPEN", "ips": ["1.1.1.1"]}],
            "poolItemName": "item1", "protocol": "TCP", "startPort": 31000, "endPort": 31004, "rsStartPort": 80,
            "external": "test"
        }]},
        "status": {"status": "Ready", "updateTime": "", "portBindingType": "Pod",
                   "portPoolBindStatusList": [{"portPoolName": "test-pool1", "portPoolNamespace": "test",
                       "poolItemName": "item1", "startPort": 31000, "endPort": 31004, "status": "Initializeing"}]}
    });
    assert_eq!(round_trip::<PortBinding>(&binding).unwrap(), binding);
}

#[test]
fn crd_yaml_snapshot() {
    insta::assert_snapshot!("crds", api::crds_yaml().unwrap());
}

fn crd_json(kind: &str) -> Value {
    let crd = api::all_crds()
        .into_iter()
        .find(|c| c.spec.names.kind == kind)
        .unwrap();
    serde_json::to_value(crd).unwrap()
}

/// Follows `.properties.<name>` / `.items` steps from a version's openAPIV3Schema.
fn schema_at<'a>(crd: &'a Value, path: &[&str]) -> &'a Value {
    let mut node = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    for step in path {
        node = if *step == "[]" {
            &node["items"]
        } else {
            &node["properties"][*step]
        };
        assert!(!node.is_null(), "no schema at {path:?} (stopped at {step})");
    }
    node
}

fn assert_range(node: &Value, min: i64, max: i64) {
    assert_eq!(node["minimum"].as_f64(), Some(min as f64), "{node}");
    assert_eq!(node["maximum"].as_f64(), Some(max as f64), "{node}");
}

fn enum_strings(node: &Value) -> Vec<String> {
    let values = node["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("no enum in {node}"));
    values
        .iter()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn schema_has_port_bounds_and_protocol_enums() {
    let ing = crd_json("Ingress");
    assert_range(schema_at(&ing, &["spec", "rules", "[]", "port"]), 1, 65535);
    assert_range(
        schema_at(
            &ing,
            &["spec", "rules", "[]", "services", "[]", "servicePort"],
        ),
        1,
        65535,
    );
    assert_range(
        schema_at(&ing, &["spec", "portMappings", "[]", "startPort"]),
        1,
        65535,
    );
    assert_range(
        schema_at(&ing, &["spec", "portMappings", "[]", "rsStartPort"]),
        0,
        65535,
    );
    let protocols = ["TCP", "TCP_SSL", "HTTP", "HTTPS", "UDP", "QUIC"];
    assert_eq!(
        enum_strings(schema_at(&ing, &["spec", "rules", "[]", "protocol"])),
        protocols
    );
    assert_eq!(
        enum_strings(schema_at(&ing, &["spec", "portMappings", "[]", "protocol"])),
        protocols
    );

    let lis = crd_json("Listener");
    assert_range(schema_at(&lis, &["spec", "port"]), 1, 65535);
    assert_range(schema_at(&lis, &["spec", "endPort"]), 0, 65535);
    assert_eq!(
        enum_strings(schema_at(&lis, &["spec", "protocol"])),
        protocols
    );
    assert_range(
        schema_at(&lis, &["spec", "targetGroup", "backends", "[]", "weight"]),
        0,
        100,
    );

    let pool = crd_json("PortPool");
    let item = &["spec", "poolItems", "[]"];
    assert_range(
        schema_at(&pool, &[item.as_slice(), &["startPort"]].concat()),
        1,
        65535,
    );
    assert_range(
        schema_at(&pool, &[item.as_slice(), &["endPort"]].concat()),
        1,
        65535,
    );
    assert_eq!(
        enum_strings(schema_at(&pool, &[item.as_slice(), &["protocol"]].concat())),
        ["", "TCP", "UDP", "TCP,UDP"]
    );
    assert_eq!(
        enum_strings(schema_at(&pool, &["spec", "allocatePolicy"])),
        ["", "default", "average"]
    );
    let name = schema_at(&pool, &[item.as_slice(), &["itemName"]].concat());
    assert_eq!(
        (name["minLength"].as_u64(), name["maxLength"].as_u64()),
        (Some(1), Some(128))
    );
    assert_eq!(
        schema_at(&pool, &[item.as_slice(), &["loadBalancerIDs"]].concat())["minItems"].as_u64(),
        Some(1)
    );
}

#[test]
fn schema_has_weight_health_check_and_session_bounds() {
    let ing = crd_json("Ingress");
    let service = ["spec", "rules", "[]", "services", "[]"];
    assert_range(
        schema_at(&ing, &[service.as_slice(), &["weight", "value"]].concat()),
        0,
        100,
    );
    assert_range(
        schema_at(
            &ing,
            &[service.as_slice(), &["subsets", "[]", "weight", "value"]].concat(),
        ),
        0,
        100,
    );

    let attr = ["spec", "rules", "[]", "listenerAttribute"];
    let hc =
        |field: &str| schema_at(&ing, &[attr.as_slice(), &["healthCheck", field]].concat()).clone();
    assert_range(&hc("timeout"), 2, 60);
    assert_range(&hc("intervalTime"), 2, 300);
    assert_range(&hc("healthNum"), 2, 10);
    assert_range(&hc("unHealthNum"), 2, 10);
    assert_range(&hc("httpCode"), 1, 31);
    assert_eq!(
        enum_strings(schema_at(&ing, &[attr.as_slice(), &["lbPolicy"]].concat())),
        ["WRR", "LEAST_CONN", "IP_HASH"]
    );
    assert_eq!(
        enum_strings(schema_at(
            &ing,
            &[attr.as_slice(), &["sessionType"]].concat()
        )),
        ["NORMAL", "QUIC_CID"]
    );
    assert_eq!(
        enum_strings(schema_at(
            &ing,
            &["spec", "rules", "[]", "certificate", "mode"]
        )),
        ["UNIDIRECTIONAL", "MUTUAL"]
    );

    // sessionTime: 0 or 30..=3600, as value-only anyOf branches under one integer type (structural).
    let session = schema_at(&ing, &[attr.as_slice(), &["sessionTime"]].concat());
    assert_eq!(session["type"], "integer");
    let branches = session["anyOf"].as_array().unwrap();
    assert_eq!(branches.len(), 2, "{session}");
    assert_eq!(branches[0], serde_json::json!({"enum": [0]}));
    assert_range(&branches[1], 30, 3600);
}

/// Structural schemas: every node has a type (or preserves unknown fields), and logical junctors carry value
/// validation only — no type, description, default or nullable. See the apiextensions structural rules.
#[test]
fn schemas_are_structural() {
    fn walk(node: &Value, path: &str, problems: &mut Vec<String>) {
        let Some(obj) = node.as_object() else { return };
        let preserves = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        if !obj.contains_key("type") && !preserves {
            problems.push(format!("{path}: no type"));
        }
        for junctor in ["anyOf", "oneOf", "allOf"] {
            for (i, branch) in obj
                .get(junctor)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .enumerate()
            {
                for forbidden in [
                    "type",
                    "description",
                    "default",
                    "nullable",
                    "additionalProperties",
                ] {
                    if branch.get(forbidden).is_some() {
                        problems.push(format!("{path}.{junctor}[{i}] sets {forbidden}"));
                    }
                }
            }
        }
        if let Some(props) = obj.get("properties").and_then(Value::as_object) {
            for (name, child) in props {
                walk(child, &format!("{path}.{name}"), problems);
            }
        }
        if let Some(items) = obj.get("items") {
            walk(items, &format!("{path}[]"), problems);
        }
        if let Some(extra) = obj.get("additionalProperties").filter(|v| v.is_object()) {
            walk(extra, &format!("{path}{{}}"), problems);
        }
        for forbidden in ["$ref", "definitions", "$defs"] {
            if obj.contains_key(forbidden) {
                problems.push(format!("{path}: {forbidden}"));
            }
        }
    }
    for kind in ["Ingress", "Listener", "PortPool", "PortBinding"] {
        let crd = crd_json(kind);
        let mut problems = Vec::new();
        walk(
            &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"],
            kind,
            &mut problems,
        );
        assert!(problems.is_empty(), "{problems:#?}");
    }
}

#[test]
fn uptime_check_preserves_unknown_fields() {
    let pool = crd_json("PortPool");
    let node = schema_at(&pool, &["spec", "poolItems", "[]", "uptimeCheck"]);
    assert_eq!(node["type"], "object");
    assert_eq!(node["x-kubernetes-preserve-unknown-fields"], true);
}

#[test]
fn crds_have_names_scope_subresources_and_columns() {
    let expected = [
        ("Ingress", "ingresses", "bcsingress"),
        ("Listener", "listeners", "bcslis"),
        ("PortPool", "portpools", "bcspp"),
        ("PortBinding", "portbindings", "bcspb"),
    ];
    let crds = api::all_crds();
    assert_eq!(crds.len(), 4);
    for (crd, (kind, plural, short)) in crds.iter().zip(expected) {
        assert_eq!(crd.spec.group, api::GROUP);
        assert_eq!(crd.spec.names.kind, kind);
        assert_eq!(crd.spec.names.plural, plural);
        assert_eq!(
            crd.metadata.name.as_deref(),
            Some(format!("{plural}.{}", api::GROUP).as_str())
        );
        assert_eq!(
            crd.spec.names.short_names.as_deref(),
            Some([short.to_owned()].as_slice())
        );
        assert_eq!(crd.spec.scope, "Namespaced");
        let version = &crd.spec.versions[0];
        assert_eq!(version.name, api::VERSION);
        assert!(version.served && version.storage);
        let subresources = version
            .subresources
            .as_ref()
            .unwrap_or_else(|| panic!("{kind}: no subresources"));
        assert!(
            subresources.status.is_some(),
            "{kind}: no status subresource"
        );
    }
    let lis = crd_json("Listener");
    let columns: Vec<&str> = lis["spec"]["versions"][0]["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["jsonPath"].as_str().unwrap())
        .collect();
    for path in [
        ".spec.port",
        ".spec.endPort",
        ".spec.protocol",
        ".spec.loadbalancerID",
        ".status.listenerID",
        ".status.status",
    ] {
        assert!(columns.contains(&path), "{path} missing from {columns:?}");
    }
}

fn parse_crd_stream(yaml: &str) -> Vec<CustomResourceDefinition> {
    serde_yaml::Deserializer::from_str(yaml)
        .map(|doc| CustomResourceDefinition::deserialize(doc).unwrap())
        .collect()
}

#[test]
fn crds_subcommand_prints_four_crds() {
    let out = Command::new(env!("CARGO_BIN_EXE_clb-controller"))
        .arg("crds")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout, api::crds_yaml().unwrap());
    let kinds: Vec<String> = parse_crd_stream(&stdout)
        .into_iter()
        .map(|c| c.spec.names.kind)
        .collect();
    assert_eq!(kinds, ["Ingress", "Listener", "PortPool", "PortBinding"]);
}

#[test]
fn crds_subcommand_writes_output_file() {
    let path =
        std::env::temp_dir().join(format!("clb-controller-crds-{}.yaml", std::process::id()));
    let out = Command::new(env!("CARGO_BIN_EXE_clb-controller"))
        .args(["crds", "--output"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
    let written = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(parse_crd_stream(&written).len(), 4);
}

/// The Helm chart ships a copy of the CRDs; it must be exactly what the controller generates.
/// Regenerate with `make chart-crds` (or `clb-controller crds --output charts/clb-controller/crds/crds.yaml`).
#[test]
fn chart_crds_match_the_generated_ones() {
    let chart =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../charts/clb-controller/crds/crds.yaml");
    let committed = std::fs::read_to_string(&chart)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", chart.display()));
    let generated = api::crds_yaml().unwrap();
    assert!(
        committed == generated,
        "{} drifted from `clb-controller crds`; run `make chart-crds` and commit the result",
        chart.display()
    );
}
