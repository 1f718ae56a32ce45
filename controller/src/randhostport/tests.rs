use super::*;

fn guide_pod(ports: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "nginx-deployment-", "labels": {"app": "nginx"},
            "annotations": {ENABLED: "true", PORTS: ports}},
        "spec": {"containers": [{"name": "nginx", "image": "nginx:1.14.2", "ports": [
            {"containerPort": 8080}, {"name": "metric", "containerPort": 8081}]}]},
    }))
    .unwrap()
}

#[test]
fn the_guides_pod_gets_exactly_the_injected_spec() {
    let pod = guide_pod("8080,metric");
    assert!(wants(&pod));
    let wanted = requested_ports(&pod).unwrap();
    let patch = build_patch(&pod, &wanted, &[29001, 29323]).unwrap();
    let mut doc = serde_json::to_value(&pod).unwrap();
    json_patch::patch(&mut doc, &patch).unwrap();
    assert_eq!(
        doc["metadata"]["labels"],
        json!({"app": "nginx", "29001.randhostport.webhook.bkbcs.tencent.com": "29001",
            "29323.randhostport.webhook.bkbcs.tencent.com": "29323"})
    );
    let container = &doc["spec"]["containers"][0];
    assert_eq!(
        container["ports"],
        json!([{"containerPort": 8080, "hostPort": 29001}, {"name": "metric", "containerPort": 8081, "hostPort": 29323}])
    );
    let field = |path: &str| json!({"fieldRef": {"apiVersion": "v1", "fieldPath": path}});
    assert_eq!(
        container["env"],
        json!([
            {"name": "BCS_RANDHOSTPORT_FOR_CONTAINER_PORT_8080", "value": "29001"},
            {"name": "BCS_RANDHOSTPORT_FOR_CONTAINER_PORT_8081", "value": "29323"},
            {"name": "BCS_RANDHOSTPORT_HOSTIP", "valueFrom": field("status.hostIP")},
            {"name": "BCS_RANDHOSTPORT_POD_NAME", "valueFrom": field("metadata.name")},
            {"name": "BCS_RANDHOSTPORT_POD_NAMESPACE", "valueFrom": field("metadata.namespace")},
        ])
    );
    assert_eq!(
        doc["spec"]["affinity"],
        json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"29001.randhostport.webhook.bkbcs.tencent.com": "29001"}},
             "topologyKey": "kubernetes.io/hostname"},
            {"labelSelector": {"matchLabels": {"29323.randhostport.webhook.bkbcs.tencent.com": "29323"}},
             "topologyKey": "kubernetes.io/hostname"},
        ]}})
    );
    let labels = doc["metadata"]["labels"].as_object().unwrap();
    let labels: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
        .collect();
    let range = PortRange::DEFAULT;
    assert_eq!(
        held_ports(labels.iter().map(|(k, v)| (k, v)), range),
        vec![29001, 29323]
    );
}

#[test]
fn existing_env_labels_and_anti_affinity_are_kept() {
    let mut pod = guide_pod("8080");
    let spec = pod.spec.as_mut().unwrap();
    spec.containers[0].env = Some(vec![
        serde_json::from_value(json!({"name": "BCS_RANDHOSTPORT_HOSTIP", "value": "x"})).unwrap(),
    ]);
    spec.affinity = Some(
        serde_json::from_value(
            json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "other"}}, "topologyKey": "zone"}]}}),
        )
        .unwrap(),
    );
    pod.metadata.labels = None;
    let patch = build_patch(&pod, &requested_ports(&pod).unwrap(), &[29000]).unwrap();
    let mut doc = serde_json::to_value(&pod).unwrap();
    json_patch::patch(&mut doc, &patch).unwrap();
    let env = doc["spec"]["containers"][0]["env"].as_array().unwrap();
    assert_eq!(
        env.len(),
        4,
        "the existing variable is replaced, not duplicated: {env:?}"
    );
    assert_eq!(
        env[0]["valueFrom"]["fieldRef"]["fieldPath"],
        "status.hostIP"
    );
    let terms = doc["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        .as_array()
        .unwrap();
    assert_eq!(terms.len(), 2);
    assert_eq!(
        doc["metadata"]["labels"],
        json!({"29000.randhostport.webhook.bkbcs.tencent.com": "29000"})
    );
}

#[test]
fn bad_requests_are_refused_with_the_problem_named() {
    let cases = [
        (
            "8080,web",
            "\"web\" is not a container port number or name of this pod",
        ),
        ("9999", "\"9999\" is not a container port number or name"),
        ("8081,metric", "container port 8081 is listed twice"),
        (" , ", "no container port listed"),
    ];
    for (value, message) in cases {
        let err = requested_ports(&guide_pod(value)).unwrap_err().to_string();
        assert!(err.contains(message), "{value:?}: {err}");
        assert!(err.starts_with(PORTS), "{err}");
    }
    let mut pod = guide_pod("8080");
    pod.spec.as_mut().unwrap().containers[0]
        .ports
        .as_mut()
        .unwrap()[0]
        .host_port = Some(30000);
    assert_eq!(
        requested_ports(&pod).unwrap_err().to_string(),
        format!("{PORTS}: container \"nginx\" port 8080 already has hostPort 30000")
    );
    let mut off = guide_pod("8080");
    off.metadata
        .annotations
        .as_mut()
        .unwrap()
        .insert(ENABLED.into(), "false".into());
    assert!(!wants(&off));
}

#[test]
fn ranges_parse_and_bad_ones_say_how_to_write_them() {
    assert_eq!("29000-29999".parse::<PortRange>(), Ok(PortRange::DEFAULT));
    assert_eq!(PortRange::DEFAULT.len(), 1000);
    for bad in ["29000", "0-10", "20-10", "a-b", "1-70000"] {
        assert!(bad.parse::<PortRange>().is_err(), "{bad}");
    }
    let labels = [
        (
            "29000.randhostport.webhook.bkbcs.tencent.com".to_string(),
            "29000".to_string(),
        ),
        (
            "29001.randhostport.webhook.bkbcs.tencent.com".to_string(),
            "1".to_string(),
        ),
        (
            "40000.randhostport.webhook.bkbcs.tencent.com".to_string(),
            "40000".to_string(),
        ),
        ("app".to_string(), "x".to_string()),
    ];
    assert_eq!(
        held_ports(labels.iter().map(|(k, v)| (k, v)), PortRange::DEFAULT),
        vec![29000]
    );
}
