use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Pod;
use serde_json::{Value, json};

use super::*;
use crate::allocator::{AllocatePolicy, ItemSpec, ItemStatus, RequestProtocol};
use crate::api::PortPoolItemStatus;

/// A test world: an allocator plus the observed item status the lookup returns.
struct World {
    allocator: Allocator,
    items: HashMap<(PoolKey, String), PortPoolItemStatus>,
}

struct Item {
    name: &'static str,
    start: u16,
    end: u16,
    segment: u16,
    tcp: bool,
    udp: bool,
    /// (lb id, ips, dnsName)
    lbs: Vec<(&'static str, Vec<&'static str>, &'static str)>,
    external: Option<&'static str>,
}

fn item(name: &'static str, start: u16, end: u16) -> Item {
    Item {
        name,
        start,
        end,
        segment: 0,
        tcp: true,
        udp: true,
        lbs: vec![("lb-00001", vec!["1.1.1.1"], "")],
        external: None,
    }
}

impl World {
    fn new() -> Self {
        World {
            allocator: Allocator::new(),
            items: HashMap::new(),
        }
    }

    fn pool(mut self, namespace: &str, name: &str, items: Vec<Item>) -> Self {
        let key = PoolKey::new(namespace, name);
        let specs: Vec<ItemSpec> = items
            .iter()
            .map(|i| ItemSpec {
                name: i.name.to_owned(),
                start_port: i.start,
                end_port: i.end,
                segment_length: i.segment,
                tcp: i.tcp,
                udp: i.udp,
                status: ItemStatus::Ready,
            })
            .collect();
        self.allocator
            .sync_pool(&key, AllocatePolicy::Default, &specs)
            .unwrap();
        for i in items {
            let status: PortPoolItemStatus = serde_json::from_value(json!({
                "itemName": i.name,
                "loadBalancerIDs": i.lbs.iter().map(|l| l.0).collect::<Vec<_>>(),
                "startPort": i.start, "endPort": i.end, "segmentLength": i.segment,
                "status": "Ready", "message": "Ready",
                "external": i.external,
                "poolItemLoadBalancers": i.lbs.iter().map(|(id, ips, dns)| {
                    let mut lb = json!({"loadbalancerName": "test-nj-loadtest-public1", "loadbalancerID": id,
                        "region": "ap-nanjing", "type": "OPEN", "ips": ips});
                    if !dns.is_empty() { lb["dnsName"] = json!(dns); }
                    lb
                }).collect::<Vec<_>>(),
            }))
            .unwrap();
            self.items.insert((key.clone(), i.name.to_owned()), status);
        }
        self
    }

    fn mutate(&mut self, pod: &Pod) -> Result<Option<Mutation>, Denial> {
        self.mutate_with(pod, None)
    }

    fn mutate_with(
        &mut self,
        pod: &Pod,
        previous: Option<&PortBinding>,
    ) -> Result<Option<Mutation>, Denial> {
        let items = &self.items;
        mutate_pod(
            pod,
            &mut self.allocator,
            |k, i| items.get(&(k.clone(), i.to_owned())).cloned(),
            previous,
            None,
        )
    }

    fn is_free(
        &self,
        ns: &str,
        pool: &str,
        item: &str,
        protocol: RequestProtocol,
        port: u16,
    ) -> bool {
        self.allocator
            .is_free(&PoolKey::new(ns, pool), item, protocol, port)
            .unwrap()
    }
}

/// The user guide's port-pool setup: pool test/test-pool1, item1 = 31000-31100 TCP on lb-00001 (1.1.1.1).
fn guide_world() -> World {
    World::new().pool(
        "test",
        "test-pool1",
        vec![Item {
            udp: false,
            ..item("item1", 31000, 31100)
        }],
    )
}

/// A pod in `test` with one container declaring the guide's ports.
fn pod(annotations: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "nginx-0", "namespace": "test", "annotations": annotations},
        "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [
            {"containerPort": 80},
            {"containerPort": 8000, "protocol": "TCP"},
            {"name": "httpport", "containerPort": 8080, "protocol": "TCP"},
            {"name": "game", "containerPort": 7000, "protocol": "UDP"},
        ]}]},
    })
}

fn requesting(ports: &str) -> Value {
    pod(json!({
        "portpools.networkextension.bkbcs.tencent.com": "true",
        "ports.portpools.networkextension.bkbcs.tencent.com": ports,
    }))
}

fn typed(value: &Value) -> Pod {
    serde_json::from_value(value.clone()).unwrap()
}

/// Applies the mutation's patch to the pod JSON, as the API server does.
fn patched(original: &Value, mutation: &Mutation) -> Value {
    let mut doc = original.clone();
    json_patch::patch(&mut doc, &mutation.patch).unwrap();
    doc
}

fn env_of(pod: &Value, field: &str, index: usize) -> Vec<(String, String)> {
    pod["spec"][field][index]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_owned(),
                e["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn bindings_of(pod: &Value) -> Vec<PoolBindingItem> {
    annotations::parse_pool_bindings(
        pod["metadata"]["annotations"][annotations::POOL_BINDINGS]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

/// (pool ns/name, item, protocol, start, end, rsStartPort, hostPort) of each binding.
fn summary(pod: &Value) -> Vec<(String, String, &'static str, u16, u16, u16, bool)> {
    bindings_of(pod)
        .into_iter()
        .map(|b| {
            (
                format!("{}/{}", b.pool_namespace, b.pool_name),
                b.pool_item_name,
                Protocol::from(b.protocol).as_str(),
                b.start_port,
                b.end_port,
                b.rs_start_port,
                b.host_port,
            )
        })
        .collect()
}

fn denial(world: &mut World, ports: &str) -> Denial {
    world.mutate(&typed(&requesting(ports))).unwrap_err()
}

#[test]
fn guide_section_10_pod_gets_the_bindings_status_and_env() {
    let mut world = guide_world();
    let original = requesting("test-pool1 TCP 80");
    let mutation = world.mutate(&typed(&original)).unwrap().unwrap();
    assert!(!mutation.reused);
    let pod = patched(&original, &mutation);
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(
        annotations[annotations::POOL_BINDINGS],
        r#"[{"poolName":"test-pool1","poolNamespace":"test","loadBalancerIDs":["lb-00001"],"poolItemLoadBalancers":[{"loadbalancerName":"test-nj-loadtest-public1","loadbalancerID":"lb-00001","region":"ap-nanjing","type":"OPEN","ips":["1.1.1.1"]}],"poolItemName":"item1","protocol":"TCP","startPort":31000,"endPort":0,"rsStartPort":80}]"#
    );
    assert_eq!(annotations[annotations::STATUS], "NotReady");
    // The user's annotations are kept.
    assert_eq!(annotations[annotations::PORTS], "test-pool1 TCP 80");
    assert_eq!(
        env_of(&pod, "containers", 0),
        [(
            "BCS_PORTPOOL_PORT_VIPLIST_TCP_80".to_owned(),
            "1.1.1.1:31000".to_owned()
        )]
    );
    assert!(pod["spec"].get("readinessGates").is_none());
    assert!(!world.is_free("test", "test-pool1", "item1", RequestProtocol::Tcp, 31000));

    // The next pod gets the next port (the guide's downward-API file shows 31001).
    let second = world.mutate(&typed(&original)).unwrap().unwrap();
    assert_eq!(
        env_of(&patched(&original, &second), "containers", 0)[0].1,
        "1.1.1.1:31001"
    );
}

#[test]
fn pods_without_the_portpools_annotation_are_left_alone() {
    let mut world = guide_world();
    let plain =
        pod(json!({"ports.portpools.networkextension.bkbcs.tencent.com": "test-pool1 TCP 80"}));
    assert_eq!(world.mutate(&typed(&plain)).unwrap(), None);
    let mut bare = pod(json!({}));
    bare["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    assert_eq!(world.mutate(&typed(&bare)).unwrap(), None);
    assert!(world.is_free("test", "test-pool1", "item1", RequestProtocol::Tcp, 31000));
}

#[test]
fn every_annotation_form_of_the_guide() {
    let world = || {
        World::new()
            .pool("test", "portpool-sample", vec![item("item1", 30000, 30100)])
            .pool(
                "ns1",
                "portpool1",
                vec![item("item1", 31000, 31100), item("item2", 32000, 32100)],
            )
            .pool("ns1", "portpool2", vec![item("item1", 33000, 33100)])
    };
    let s = |pool: &str, item: &str, proto: &'static str, start: u16, rs: u16, host: bool| {
        (pool.to_owned(), item.to_owned(), proto, start, 0, rs, host)
    };
    type Env = Vec<(&'static str, &'static str)>;
    let cases: Vec<(&str, Vec<_>, Env)> = vec![
        (
            "portpool-sample TCP 8000",
            vec![s(
                "test/portpool-sample",
                "item1",
                "TCP",
                30000,
                8000,
                false,
            )],
            vec![("BCS_PORTPOOL_PORT_VIPLIST_TCP_8000", "1.1.1.1:30000")],
        ),
        (
            "portpool-sample TCP_UDP 8000",
            vec![
                s("test/portpool-sample", "item1", "TCP", 30000, 8000, false),
                s("test/portpool-sample", "item1", "UDP", 30000, 8000, false),
            ],
            vec![
                ("BCS_PORTPOOL_PORT_VIPLIST_TCP_8000", "1.1.1.1:30000"),
                ("BCS_PORTPOOL_PORT_VIPLIST_UDP_8000", "1.1.1.1:30000"),
            ],
        ),
        (
            "portpool1.ns1 TCP 8000",
            vec![s("ns1/portpool1", "item1", "TCP", 31000, 8000, false)],
            vec![("BCS_PORTPOOL_PORT_VIPLIST_TCP_8000", "1.1.1.1:31000")],
        ),
        (
            "portpool1.ns1 TCP 8000/hostport",
            vec![s("ns1/portpool1", "item1", "TCP", 31000, 8000, true)],
            vec![("BCS_PORTPOOL_PORT_VIPLIST_TCP_8000", "1.1.1.1:31000")],
        ),
        (
            "portpool1.ns1 TCP httpport",
            vec![s("ns1/portpool1", "item1", "TCP", 31000, 8080, false)],
            vec![("BCS_PORTPOOL_PORT_VIPLIST_TCP_8080", "1.1.1.1:31000")],
        ),
        (
            "portpool1.ns1 httpport",
            vec![s("ns1/portpool1", "item1", "TCP", 31000, 8080, false)],
            vec![("BCS_PORTPOOL_PORT_VIPLIST_TCP_8080", "1.1.1.1:31000")],
        ),
        (
            "portpool1/item2.ns1 UDP game",
            vec![s("ns1/portpool1", "item2", "UDP", 32000, 7000, false)],
            vec![("BCS_PORTPOOL_PORT_VIPLIST_UDP_7000", "1.1.1.1:32000")],
        ),
        (
            "portpool1.ns1/item2 game/hostport",
            vec![s("ns1/portpool1", "item2", "UDP", 32000, 7000, true)],
            vec![("BCS_PORTPOOL_PORT_VIPLIST_UDP_7000", "1.1.1.1:32000")],
        ),
    ];
    for (ports, bindings, env) in cases {
        let mut w = world();
        let original = requesting(ports);
        let mutation = w.mutate(&typed(&original)).unwrap().unwrap();
        let pod = patched(&original, &mutation);
        assert_eq!(summary(&pod), bindings, "{ports}");
        let env: Vec<(String, String)> = env
            .into_iter()
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        assert_eq!(env_of(&pod, "containers", 0), env, "{ports}");
    }

    // Several entries, newline- or semicolon-separated: same result.
    let expected = vec![
        s("ns1/portpool1", "item1", "TCP", 31000, 8000, false),
        s("ns1/portpool1", "item1", "UDP", 31000, 8000, false),
        s("ns1/portpool2", "item1", "TCP", 33000, 8080, false),
    ];
    for ports in [
        "portpool1.ns1 TCP 8000\nportpool1.ns1 UDP 8000\nportpool2.ns1 TCP 8080",
        "portpool1.ns1 TCP 8000;portpool1.ns1 UDP 8000;portpool2.ns1 TCP 8080",
    ] {
        let mut w = world();
        let original = requesting(ports);
        let pod = patched(&original, &w.mutate(&typed(&original)).unwrap().unwrap());
        assert_eq!(summary(&pod), expected, "{ports}");
        assert_eq!(
            env_of(&pod, "containers", 0)
                .into_iter()
                .map(|(n, _)| n)
                .collect::<Vec<_>>(),
            [
                "BCS_PORTPOOL_PORT_VIPLIST_TCP_8000",
                "BCS_PORTPOOL_PORT_VIPLIST_UDP_8000",
                "BCS_PORTPOOL_PORT_VIPLIST_TCP_8080"
            ]
        );
    }
}

#[test]
fn segments_multiple_lbs_and_external() {
    let mut world = World::new().pool(
        "test",
        "seg",
        vec![Item {
            segment: 5,
            lbs: vec![
                ("lb-1", vec!["1.1.1.1"], ""),
                ("ap-shanghai:lb-2", vec!["2.2.2.2"], "lb-2.example.com"),
            ],
            external: Some("zone-a"),
            ..item("item1", 31000, 31100)
        }],
    );
    let original = requesting("seg TCP 80");
    let pod = patched(
        &original,
        &world.mutate(&typed(&original)).unwrap().unwrap(),
    );
    let bindings = bindings_of(&pod);
    assert_eq!(
        (
            bindings[0].start_port,
            bindings[0].end_port,
            bindings[0].external.as_str()
        ),
        (31000, 31004, "zone-a")
    );
    assert_eq!(bindings[0].load_balancer_ids, ["lb-1", "ap-shanghai:lb-2"]);
    assert_eq!(
        env_of(&pod, "containers", 0)[0].1,
        "1.1.1.1,2.2.2.2,lb-2.example.com:31000-31004"
    );
    let next = patched(
        &original,
        &world.mutate(&typed(&original)).unwrap().unwrap(),
    );
    assert_eq!(bindings_of(&next)[0].start_port, 31005);
}

#[test]
fn env_goes_into_every_container_and_init_container() {
    let mut world = guide_world();
    let mut original = requesting("test-pool1 TCP 80");
    original["spec"]["initContainers"] = json!([{"name": "init", "image": "busybox"}]);
    original["spec"]["containers"].as_array_mut().unwrap().push(
        json!({"name": "sidecar", "image": "envoy", "env": [
            {"name": "KEEP", "value": "1"},
            {"name": "BCS_PORTPOOL_PORT_VIPLIST_TCP_80", "value": "stale"},
        ]}),
    );
    let pod = patched(
        &original,
        &world.mutate(&typed(&original)).unwrap().unwrap(),
    );
    let ours = (
        "BCS_PORTPOOL_PORT_VIPLIST_TCP_80".to_owned(),
        "1.1.1.1:31000".to_owned(),
    );
    assert_eq!(env_of(&pod, "initContainers", 0), vec![ours.clone()]);
    assert_eq!(env_of(&pod, "containers", 0), vec![ours.clone()]);
    // Existing variables stay; one of the same name is replaced rather than duplicated.
    assert_eq!(
        env_of(&pod, "containers", 1),
        [("KEEP".to_owned(), "1".to_owned()), ours]
    );
}

#[test]
fn readiness_gate_is_added_or_appended_once() {
    let gate = json!({"conditionType": "networkextension.bkbcs.tencent.com/portbinding-ready"});
    let with_gate = |gates: Option<Value>| {
        let mut p = pod(json!({
            "portpools.networkextension.bkbcs.tencent.com": "true",
            "ports.portpools.networkextension.bkbcs.tencent.com": "test-pool1 TCP 80",
            "readinessgate.portpools.networkextension.bkbcs.tencent.com": "true",
        }));
        if let Some(g) = gates {
            p["spec"]["readinessGates"] = g;
        }
        p
    };
    let mut world = guide_world();

    let original = with_gate(None);
    let pod = patched(
        &original,
        &world.mutate(&typed(&original)).unwrap().unwrap(),
    );
    assert_eq!(pod["spec"]["readinessGates"], json!([gate.clone()]));

    let other = json!({"conditionType": "example.com/other"});
    let original = with_gate(Some(json!([other.clone()])));
    let pod = patched(
        &original,
        &world.mutate(&typed(&original)).unwrap().unwrap(),
    );
    assert_eq!(pod["spec"]["readinessGates"], json!([other, gate.clone()]));

    let original = with_gate(Some(json!([gate.clone()])));
    let pod = patched(
        &original,
        &world.mutate(&typed(&original)).unwrap().unwrap(),
    );
    assert_eq!(pod["spec"]["readinessGates"], json!([gate]));
}

#[test]
fn patch_paths_escape_pointer_segments() {
    assert_eq!(escape("a/b~c"), "a~1b~0c");
    let mut world = guide_world();
    let original = requesting("test-pool1 TCP 80");
    let mutation = world.mutate(&typed(&original)).unwrap().unwrap();
    let ops = serde_json::to_value(&mutation.patch).unwrap();
    let paths: Vec<&str> = ops
        .as_array()
        .unwrap()
        .iter()
        .map(|op| op["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/metadata/annotations/poolbindings.portpool.networkextension.bkbcs.tencent.com",
            "/metadata/annotations/status.portpools.networkextension.bkbcs.tencent.com",
            "/spec/containers/0/env",
        ]
    );
}

#[test]
fn denials_name_the_problem_and_the_line() {
    let mut world = guide_world();
    assert_eq!(
        denial(&mut world, "nope TCP 80"),
        Denial::new(
            DenialReason::UnknownPool,
            "line 1: port pool test/nope not found"
        )
    );
    assert_eq!(
        denial(&mut world, "test-pool1/item9 TCP 80"),
        Denial::new(
            DenialReason::UnknownItem,
            "line 1: item \"item9\" not found in port pool test/test-pool1"
        )
    );
    let bad = denial(&mut world, "test-pool1 TCP web");
    assert_eq!(bad.reason, DenialReason::BadAnnotation);
    assert_eq!(
        bad.message,
        "line 1: port name \"web\" not found in the pod's containers"
    );
    let bad = denial(&mut world, "test-pool1 TCP 80\ntest-pool1 TPC 8000");
    assert_eq!(bad.reason, DenialReason::BadAnnotation);
    assert!(
        bad.message.starts_with("line 2: unknown protocol \"TPC\""),
        "{}",
        bad.message
    );
    let udp = denial(&mut world, "test-pool1 UDP 80");
    assert_eq!(udp.reason, DenialReason::Exhausted);
    assert_eq!(
        udp.message,
        "line 1: port pool test/test-pool1 has no free UDP port (0 of 1 items are Ready and serve UDP)"
    );
    // Nothing was held by any denied pod.
    assert!(world.is_free("test", "test-pool1", "item1", RequestProtocol::Tcp, 31000));
}

#[test]
fn exhausted_pool_is_denied_and_nothing_is_held() {
    let mut world = World::new().pool(
        "test",
        "tiny",
        vec![Item {
            udp: false,
            ..item("item1", 31000, 31002)
        }],
    );
    let original = requesting("tiny TCP 80");
    world.mutate(&typed(&original)).unwrap().unwrap();
    world.mutate(&typed(&original)).unwrap().unwrap();
    let d = world.mutate(&typed(&original)).unwrap_err();
    assert_eq!(d.reason, DenialReason::Exhausted);
    assert_eq!(
        d.message,
        "line 1: port pool test/tiny has no free TCP port (1 of 1 items are Ready and serve TCP)"
    );
}

#[test]
fn a_failing_entry_releases_everything_allocated_for_the_pod() {
    let mut world = guide_world().pool("test", "second", vec![item("item1", 40000, 40001)]);
    // Entry 1 and 2 allocate, entry 3 fails: both must be given back.
    let d = denial(
        &mut world,
        "test-pool1 TCP 80\nsecond TCP_UDP 8000\nmissing TCP 8080",
    );
    assert_eq!(d.message, "line 3: port pool test/missing not found");
    assert!(world.is_free("test", "test-pool1", "item1", RequestProtocol::Tcp, 31000));
    assert!(world.is_free("test", "second", "item1", RequestProtocol::TcpUdp, 40000));

    // Same when the allocated item has no observed status yet.
    world.items.clear();
    let d = denial(&mut world, "test-pool1 TCP 80");
    assert_eq!(d.reason, DenialReason::NoItemStatus);
    assert!(world.is_free("test", "test-pool1", "item1", RequestProtocol::Tcp, 31000));
}

#[test]
fn release_all_gives_back_a_mutation_for_dry_runs() {
    let mut world = guide_world();
    let original = requesting("test-pool1 TCP 80");
    let mutation = world.mutate(&typed(&original)).unwrap().unwrap();
    assert_eq!(mutation.allocated.len(), 1);
    release_all(&mut world.allocator, &mutation.allocated);
    assert!(world.is_free("test", "test-pool1", "item1", RequestProtocol::Tcp, 31000));
}

fn kept_binding(keep: bool, deleting: bool, items: Value) -> PortBinding {
    let mut metadata = json!({"name": "nginx-0", "namespace": "test"});
    if keep {
        metadata["annotations"] = json!({"keepduration.portbinding.bkbcs.tencent.com": "5m"});
    }
    if deleting {
        metadata["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    serde_json::from_value(json!({
        "apiVersion": "networkextension.bkbcs.tencent.com/v1", "kind": "PortBinding",
        "metadata": metadata,
        "spec": {"portBindingList": items},
        "status": {"status": "Cleaned", "updateTime": "2026-01-01T00:00:00Z"},
    }))
    .unwrap()
}

fn kept_item(protocol: &str, port: i32, rs: i32) -> Value {
    json!({"poolName": "test-pool1", "poolNamespace": "test", "loadBalancerIDs": ["lb-00001"],
        "poolItemLoadBalancers": [{"loadbalancerName": "test-nj-loadtest-public1", "loadbalancerID": "lb-00001",
            "region": "ap-nanjing", "type": "OPEN", "ips": ["1.1.1.1"]}],
        "poolItemName": "item1", "protocol": protocol, "startPort": port, "endPort": 0, "rsStartPort": rs})
}

fn keeping_pod(ports: &str) -> Value {
    pod(json!({
        "portpools.networkextension.bkbcs.tencent.com": "true",
        "ports.portpools.networkextension.bkbcs.tencent.com": ports,
        "keepduration.portbinding.bkbcs.tencent.com": "5m",
    }))
}

#[test]
fn a_kept_portbinding_of_the_same_name_is_reused() {
    let mut world = guide_world();
    let binding = kept_binding(true, false, json!([kept_item("TCP", 31042, 80)]));
    let original = keeping_pod("test-pool1 TCP 80");
    let mutation = world
        .mutate_with(&typed(&original), Some(&binding))
        .unwrap()
        .unwrap();
    assert!(mutation.reused);
    assert!(mutation.allocated.is_empty());
    let pod = patched(&original, &mutation);
    assert_eq!(
        summary(&pod),
        [(
            "test/test-pool1".to_owned(),
            "item1".to_owned(),
            "TCP",
            31042,
            0,
            80,
            false
        )]
    );
    assert_eq!(env_of(&pod, "containers", 0)[0].1, "1.1.1.1:31042");
    assert_eq!(
        pod["metadata"]["annotations"][annotations::STATUS],
        "NotReady"
    );
    // The allocator was not asked for anything.
    assert!(world.is_free("test", "test-pool1", "item1", RequestProtocol::Tcp, 31000));
}

#[test]
fn a_portbinding_that_cannot_be_reused_blocks_the_pod() {
    let mut world = guide_world();
    let items = json!([kept_item("TCP", 31042, 80)]);
    let cases = [
        (
            kept_binding(true, true, items.clone()),
            keeping_pod("test-pool1 TCP 80"),
            "it is being deleted",
        ),
        (
            kept_binding(false, false, items.clone()),
            keeping_pod("test-pool1 TCP 80"),
            "it has no keep duration",
        ),
        (
            kept_binding(true, false, items.clone()),
            requesting("test-pool1 TCP 80"),
            "the new pod has no keepduration.portbinding.bkbcs.tencent.com annotation",
        ),
        (
            kept_binding(true, false, items.clone()),
            keeping_pod("test-pool1 TCP 8000"),
            "it holds no TCP port of pool test/test-pool1 for container port 8000",
        ),
        (
            kept_binding(
                true,
                false,
                json!([kept_item("TCP", 31042, 80), kept_item("TCP", 31043, 8000)]),
            ),
            keeping_pod("test-pool1 TCP 80"),
            "it holds 2 ports, the pod asks for 1",
        ),
    ];
    for (binding, pod, why) in cases {
        let d = world.mutate_with(&typed(&pod), Some(&binding)).unwrap_err();
        assert_eq!(d.reason, DenialReason::PreviousBinding, "{why}");
        assert!(
            d.message
                .starts_with("found previous PortBinding test/nginx-0 of this pod: ")
                && d.message.contains(why),
            "{}",
            d.message
        );
    }
    assert!(world.is_free("test", "test-pool1", "item1", RequestProtocol::Tcp, 31000));
}

#[test]
fn the_mutating_configuration_selects_labelled_namespaces_and_fails_closed() {
    use crate::webhook::register::mutating_webhook_configuration;
    let config = mutating_webhook_configuration(
        "clb-controller",
        &crate::webhook::WebhookTarget::Url("https://127.0.0.1:9443".into()),
        "CA PEM",
    );
    let value = serde_json::to_value(&config).unwrap();
    assert_eq!(value["kind"], "MutatingWebhookConfiguration");
    let hooks = value["webhooks"].as_array().unwrap();
    assert_eq!(hooks.len(), 1);
    let h = &hooks[0];
    assert_eq!(
        h["clientConfig"]["url"],
        "https://127.0.0.1:9443/portpool/v1/mutate"
    );
    assert_eq!(h["clientConfig"]["caBundle"], "Q0EgUEVN");
    assert_eq!(
        h["rules"],
        json!([{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "operations": ["CREATE"], "scope": "Namespaced"}])
    );
    assert_eq!(
        h["namespaceSelector"],
        json!({"matchLabels": {"bcs-ingress-controller-inject": "true"}})
    );
    assert!(h.get("objectSelector").is_none());
    assert_eq!(h["failurePolicy"], "Fail");
    assert_eq!(h["timeoutSeconds"], 10);
    assert_eq!(h["reinvocationPolicy"], "Never");
    assert_eq!(h["sideEffects"], "NoneOnDryRun");
}

/// The HTTP handler before the allocator is rebuilt: annotated pods are denied with the retry
/// message, other pods pass untouched (neither needs the cluster).
#[tokio::test]
async fn handler_denies_annotated_pods_while_not_ready() {
    use axum::Json;
    use axum::extract::State;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let metrics = PodWebhookMetrics::default();
    let state = Arc::new(crate::webhook::server::WebhookState {
        client,
        settings: crate::ingress::Settings::default(),
        request_timeout: std::time::Duration::from_secs(1),
        pod: PodWebhook {
            pools: Arc::new(PoolState::default()),
            metrics: metrics.clone(),
            reservation_timeout: std::time::Duration::from_secs(5),
            randhostport: None,
        },
    });
    let review = |object: Value| {
        serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "test", "name": "nginx-0", "operation": "CREATE",
                "userInfo": {}, "object": object,
            }
        }))
        .unwrap()
    };
    let Json(answer) = crate::webhook::server::pod_mutate(
        State(state.clone()),
        Json(review(requesting("test-pool1 TCP 80"))),
    )
    .await;
    let answer = serde_json::to_value(&answer).unwrap();
    assert_eq!(answer["response"]["allowed"], false);
    assert_eq!(answer["response"]["status"]["message"], NOT_READY_MESSAGE);

    let Json(answer) =
        crate::webhook::server::pod_mutate(State(state), Json(review(pod(json!({}))))).await;
    let answer = serde_json::to_value(&answer).unwrap();
    assert_eq!(answer["response"]["allowed"], true);
    assert!(answer["response"].get("patch").is_none());
    let denied = metrics
        .outcomes
        .get_or_create(&OutcomeLabels {
            result: "denied".into(),
            reason: "not_ready".into(),
        })
        .get();
    assert_eq!(denied, 1);
}

#[test]
fn newly_taken_ports_carry_the_reservation_id_and_reused_ones_do_not() {
    let mut world = guide_world();
    let original = requesting("test-pool1 TCP 80");
    let items = world.items.clone();
    let lookup = |k: &PoolKey, i: &str| items.get(&(k.clone(), i.to_owned())).cloned();
    let mutation = mutate_pod(
        &typed(&original),
        &mut world.allocator,
        lookup,
        None,
        Some("r-1"),
    )
    .unwrap()
    .unwrap();
    let pod = patched(&original, &mutation);
    assert_eq!(
        pod["metadata"]["annotations"][annotations::RESERVATION],
        "r-1"
    );
    let check = reservation_check(&typed(&with_identity(pod)), "test")
        .unwrap()
        .unwrap();
    assert_eq!(check.reservation, "r-1");
    assert_eq!(check.ports.len(), 1);

    let original = keeping_pod("test-pool1 TCP 80");
    let kept = kept_binding(true, false, json!([kept_item("TCP", 31042, 80)]));
    let mutation = mutate_pod(
        &typed(&original),
        &mut world.allocator,
        lookup,
        Some(&kept),
        Some("r-2"),
    )
    .unwrap()
    .unwrap();
    assert!(mutation.reused);
    let pod = patched(&original, &mutation);
    assert!(
        pod["metadata"]["annotations"]
            .get(annotations::RESERVATION)
            .is_none()
    );
    assert_eq!(
        reservation_check(&typed(&with_identity(pod)), "test"),
        Ok(None)
    );
}

/// The pod as the validating webhook sees it: named and with a uid.
fn with_identity(mut pod: Value) -> Value {
    pod["metadata"]["name"] = json!("nginx-0");
    pod["metadata"]["uid"] = json!("uid-1");
    pod
}

/// The validating handler on a ready pool state: the reservation made by the mutating handler's pool state is
/// validated; a pod whose port went to another reservation is denied with the port named; a dry run passes
/// without touching anything. No cluster is needed (no kept PortBinding lookup for a generateName pod).
#[tokio::test]
async fn the_validating_handler_ties_a_pod_to_its_reservation() {
    use axum::Json;
    use axum::extract::State;
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
    let client = kube::Client::try_from(config).unwrap();
    let pools = Arc::new(PoolState::default());
    let key = PoolKey::new("test", "test-pool1");
    let spec = ItemSpec {
        name: "item1".into(),
        start_port: 31000,
        end_port: 31005,
        segment_length: 0,
        tcp: true,
        udp: false,
        status: ItemStatus::Ready,
    };
    pools
        .with_allocator(|a| a.sync_pool(&key, AllocatePolicy::Default, &[spec]))
        .unwrap();
    pools.set_items(
        key.clone(),
        vec![guide_world().items[&(key.clone(), "item1".into())].clone()],
    );
    pools.set_ready(true);
    let state = Arc::new(crate::webhook::server::WebhookState {
        client,
        settings: crate::ingress::Settings::default(),
        request_timeout: std::time::Duration::from_secs(1),
        pod: PodWebhook {
            pools: pools.clone(),
            metrics: PodWebhookMetrics::default(),
            reservation_timeout: std::time::Duration::from_secs(5),
            randhostport: None,
        },
    });
    let review = |object: &Value, dry_run: bool| {
        serde_json::from_value(json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {
                "uid": "u-1",
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "namespace": "test", "operation": "CREATE", "dryRun": dry_run,
                "userInfo": {}, "object": object,
            }
        }))
        .unwrap()
    };
    let mut original = requesting("test-pool1 TCP 80");
    original["metadata"]["name"] = json!(null);
    original["metadata"]["generateName"] = json!("nginx-");
    let Json(answer) =
        crate::webhook::server::pod_mutate(State(state.clone()), Json(review(&original, false)))
            .await;
    let response = answer.response.expect("a response");
    assert!(response.allowed);
    let patch: json_patch::Patch =
        serde_json::from_slice(&response.patch.expect("a patch")).unwrap();
    let mut admitted = original.clone();
    json_patch::patch(&mut admitted, &patch).unwrap();
    let admitted = with_identity(admitted);

    let validate = |object: Value, dry_run: bool| {
        let state = state.clone();
        async move {
            let Json(answer) =
                crate::webhook::server::pod_validate(State(state), Json(review(&object, dry_run)))
                    .await;
            serde_json::to_value(&answer).unwrap()
        }
    };
    assert_eq!(
        validate(admitted.clone(), true).await["response"]["allowed"],
        true
    );
    assert!(
        pools
            .validated_due(
                std::time::Instant::now() + std::time::Duration::from_secs(5),
                std::time::Duration::from_secs(5)
            )
            .is_empty(),
        "a dry run validates nothing"
    );
    assert_eq!(
        validate(admitted.clone(), false).await["response"]["allowed"],
        true
    );
    assert_eq!(
        pools
            .validated_due(
                std::time::Instant::now() + std::time::Duration::from_secs(5),
                std::time::Duration::from_secs(5)
            )
            .len(),
        1
    );

    // A pod claiming the other port under an unknown reservation, while that port is reserved by someone else.
    let other = pools.allocate_pending("test", "", "r-other", |a| {
        let got = a.allocate(&key, RequestProtocol::Tcp, None).unwrap();
        (
            got.start_port,
            vec![(
                key.clone(),
                got.item.to_string(),
                got.protocol,
                got.start_port,
            )],
        )
    });
    let mut thief = admitted.clone();
    let mut items = bindings_of(&thief);
    items[0].start_port = other;
    items[0].end_port = other;
    thief["metadata"]["annotations"][annotations::POOL_BINDINGS] =
        json!(annotations::render_pool_bindings(&items).unwrap());
    thief["metadata"]["annotations"][annotations::RESERVATION] = json!("r-lost");
    thief["metadata"]["uid"] = json!("uid-2");
    let answer = validate(thief, false).await;
    assert_eq!(answer["response"]["allowed"], false);
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("port {other} (TCP)")),
        "{message}"
    );

    // No reservation annotation: passes untouched.
    assert_eq!(
        validate(pod(json!({})), false).await["response"]["allowed"],
        true
    );
}
