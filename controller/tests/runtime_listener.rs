//! The Listener reconciler end to end: a real kube-apiserver (the harness' local control plane), the runtime
//! in-process with leader election on, and an in-process fake-clb.
//!
//! Ignored by default; `make test-cluster` runs it with `CLB_TEST_KUBECONFIG` set. Run by hand:
//! `target/debug/clb-harness cluster up --state-dir .work/rt-cluster` then
//! `CLB_TEST_KUBECONFIG=$PWD/.work/rt-cluster/kubeconfig cargo test -p clb-controller --test runtime_listener -- --ignored`.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clb_controller::api::{Listener, keys};
use clb_controller::cloud::{ClbClient, ClientConfig, CloudMetrics, Credentials, LbRef};
use clb_controller::runtime::{self, LeaderElectionConfig, RuntimeConfig};
use clb_controller::sync::{
    CloudListener, Endpoint, ListenerKey, Protocol, WorkerConfig, read_cloud,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const SECRET_ID: &str = "AKIDruntimetest01";
const SECRET_KEY: &str = "runtime-test-secret";
const REGION: &str = "ap-guangzhou";
const LB: &str = "lb-rt000001";
const DEADLINE: Duration = Duration::from_secs(60);

async fn start_fake() -> fake_clb::ServerHandle {
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
adminListen: 127.0.0.1:0
seed: 11
accounts:
  - secretId: {SECRET_ID}
    secretKey: {SECRET_KEY}
    appId: 1250000001
loadBalancers:
  - id: {LB}
    secretId: {SECRET_ID}
    region: {REGION}
    name: runtime-test
    type: OPEN
    vips: [1.1.1.1]
limits:
  actionQps: 0
  listenersPerLoadBalancer: 200
  taskDuration: 50ms
"#
    );
    let config = fake_clb::Config::from_yaml(&yaml, std::path::Path::new("runtime-test.yaml"))
        .expect("fake-clb config");
    fake_clb::serve(config).await.expect("fake-clb starts")
}

/// Polls `probe` every 100 ms until it returns `Some`, failing with `what` at the deadline.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn listener(name: &str, spec: Value) -> Listener {
    serde_json::from_value(json!({
        "apiVersion": "networkextension.bkbcs.tencent.com/v1",
        "kind": "Listener",
        "metadata": {"name": name},
        "spec": spec,
    }))
    .expect("listener")
}

fn synced_id(l: &Listener) -> Option<String> {
    let s = l.status.as_ref()?;
    (s.status.as_deref() == Some(keys::LISTENER_STATUS_SYNCED))
        .then(|| s.listener_id.clone())
        .flatten()
}

fn targets_of(c: &CloudListener) -> Vec<(String, u16, u16)> {
    c.targets.iter().map(|t| (t.ip, t.port, t.weight)).collect()
}

#[tokio::test]
#[ignore = "needs a cluster: CLB_TEST_KUBECONFIG (make test-cluster)"]
async fn listener_lifecycle_against_fake_clb() {
    let Some(kubeconfig) = std::env::var_os("CLB_TEST_KUBECONFIG").map(PathBuf::from) else {
        eprintln!("CLB_TEST_KUBECONFIG is not set; skipping");
        return;
    };
    let client = runtime::kube_client(Some(&kubeconfig))
        .await
        .expect("kubeconfig from CLB_TEST_KUBECONFIG");
    client
        .apiserver_version()
        .await
        .expect("the cluster named by CLB_TEST_KUBECONFIG is unreachable");

    let fake = start_fake().await;
    let admin = format!("http://{}", fake.admin_addr);
    let http = reqwest::Client::new();
    let endpoint = format!("http://{}", fake.api_addr);
    let cloud_config = ClientConfig {
        endpoint: endpoint.clone(),
        default_region: REGION.into(),
        request_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(20),
        ..ClientConfig::default()
    };
    let credentials = Credentials::new(SECRET_ID, SECRET_KEY).unwrap();
    // A separate client for the test's own reads of the cloud.
    let observer =
        ClbClient::new(cloud_config.clone(), &credentials, CloudMetrics::default()).unwrap();
    let lb = LbRef::new(REGION, LB);

    let ns = format!(
        "clb-rt-{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns}})).unwrap(),
        )
        .await
        .expect("create namespace");

    let mut election = LeaderElectionConfig::new(&ns, "clb-controller-test", "rt-test-0");
    election.retry_period = Duration::from_millis(500);
    let handle = runtime::run(RuntimeConfig {
        kubeconfig: Some(kubeconfig.clone()),
        cloud: cloud_config,
        credentials: credentials.clone(),
        worker: WorkerConfig {
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(1),
            ..WorkerConfig::default()
        },
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        leader_election: Some(election),
        watch_namespace: Some(ns.clone()),
        install_crds: true,
        instance: "rt-test-0".into(),
        webhook: None,
    })
    .await
    .expect("runtime starts");
    eventually("leader and cache synced", || async {
        handle.is_ready().then_some(())
    })
    .await;
    let metrics_url = format!("http://{}", handle.metrics_addr());
    let ready = http
        .get(format!("{metrics_url}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);

    let listeners: Api<Listener> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    let specs = [
        listener(
            "lb-rt000001-8080",
            json!({"loadbalancerID": LB, "port": 8080, "protocol": "TCP",
                   "targetGroup": {"backends": [
                       {"IP": "10.0.0.1", "port": 80, "weight": 10},
                       {"IP": "10.0.0.2", "port": 80, "weight": 20}]}}),
        ),
        listener(
            "lb-rt000001-udp-9000",
            json!({"loadbalancerID": LB, "port": 9000, "protocol": "UDP",
                   "targetGroup": {"backends": [{"IP": "10.0.0.3", "port": 9000, "weight": 10}]}}),
        ),
        listener(
            "lb-rt000001-30000-30009",
            json!({"loadbalancerID": LB, "port": 30000, "endPort": 30009, "protocol": "TCP",
                   "targetGroup": {"backends": [{"IP": "10.0.0.4", "port": 30000, "weight": 10}]}}),
        ),
    ];
    for l in &specs {
        listeners.create(&pp, l).await.expect("create listener");
    }

    // All three Synced with listener ids; the cloud holds them with their targets.
    let ids: Vec<String> = eventually("three listeners Synced", || async {
        let mut ids = Vec::new();
        for l in &specs {
            let name = l.metadata.name.as_deref().unwrap();
            ids.push(synced_id(&listeners.get(name).await.ok()?)?);
        }
        Some(ids)
    })
    .await;
    let cloud = read_cloud(&observer, &lb).await.expect("read fake-clb");
    let find = |cloud: &[CloudListener], id: &str| cloud.iter().find(|c| c.id == id).cloned();
    let tcp = find(&cloud, &ids[0]).expect("TCP listener in the cloud");
    assert_eq!(tcp.key, ListenerKey::single(Protocol::Tcp, 8080));
    assert_eq!(
        targets_of(&tcp),
        vec![("10.0.0.1".into(), 80, 10), ("10.0.0.2".into(), 80, 20)]
    );
    let udp = find(&cloud, &ids[1]).expect("UDP listener in the cloud");
    assert_eq!(udp.key, ListenerKey::single(Protocol::Udp, 9000));
    assert_eq!(targets_of(&udp), vec![("10.0.0.3".into(), 9000, 10)]);
    let range = find(&cloud, &ids[2]).expect("range listener in the cloud");
    assert_eq!(range.key, ListenerKey::range(Protocol::Tcp, 30000, 30009));
    assert_eq!(targets_of(&range), vec![("10.0.0.4".into(), 30000, 10)]);
    // Every CR carries the finalizer.
    for l in &specs {
        let got = listeners
            .get(l.metadata.name.as_deref().unwrap())
            .await
            .unwrap();
        assert!(
            got.metadata
                .finalizers
                .unwrap_or_default()
                .contains(&keys::FINALIZER_CONTROLLER.to_string())
        );
    }

    // A backend change: the cloud follows.
    listeners
        .patch(
            "lb-rt000001-8080",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"targetGroup": {"backends": [
                {"IP": "10.0.0.1", "port": 80, "weight": 10},
                {"IP": "10.0.0.5", "port": 80, "weight": 30}]}}})),
        )
        .await
        .expect("patch backends");
    eventually("cloud targets follow the backend change", || async {
        let cloud = read_cloud(&observer, &lb).await.ok()?;
        let tcp = find(&cloud, &ids[0])?;
        (targets_of(&tcp) == vec![("10.0.0.1".into(), 80, 10), ("10.0.0.5".into(), 80, 30)])
            .then_some(())
    })
    .await;
    assert!(
        read_cloud(&observer, &lb)
            .await
            .unwrap()
            .iter()
            .find(|c| c.id == ids[0])
            .unwrap()
            .targets
            .weight(&Endpoint {
                ip: "10.0.0.2".into(),
                port: 80
            })
            .is_none()
    );

    // Deleting a Listener: the cloud listener goes, then the finalizer, then the CR.
    listeners
        .delete("lb-rt000001-udp-9000", &DeleteParams::default())
        .await
        .expect("delete listener");
    eventually("deleted Listener CR disappears", || async {
        match listeners.get_opt("lb-rt000001-udp-9000").await {
            Ok(None) => Some(()),
            _ => None,
        }
    })
    .await;
    let cloud = read_cloud(&observer, &lb).await.unwrap();
    assert!(
        find(&cloud, &ids[1]).is_none(),
        "UDP listener still in the cloud"
    );
    assert!(find(&cloud, &ids[0]).is_some() && find(&cloud, &ids[2]).is_some());

    // A fault on CreateListener: NotSynced with the code, a Warning event; Synced once cleared.
    let put = http
        .put(format!("{admin}/_fake/faults"))
        .json(&json!([{"action": "CreateListener",
                       "effect": {"type": "error", "code": "InvalidParameter", "message": "injected by runtime test"}}]))
        .send()
        .await
        .unwrap();
    assert!(
        put.status().is_success(),
        "installing the fault: {}",
        put.status()
    );
    listeners
        .create(
            &pp,
            &listener(
                "lb-rt000001-8081",
                json!({"loadbalancerID": LB, "port": 8081, "protocol": "TCP",
                       "targetGroup": {"backends": [{"IP": "10.0.0.6", "port": 80, "weight": 10}]}}),
            ),
        )
        .await
        .expect("create listener");
    let msg = eventually("NotSynced with the cloud error code", || async {
        let l = listeners.get("lb-rt000001-8081").await.ok()?;
        let s = l.status?;
        (s.status.as_deref() == Some(keys::LISTENER_STATUS_NOT_SYNCED)).then_some(s.msg?)
    })
    .await;
    assert!(msg.contains("InvalidParameter"), "status.msg: {msg}");
    let events: Api<KubeEvent> = Api::namespaced(client.clone(), &ns);
    let note = eventually("Warning event on the listener", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items.into_iter().find_map(|e| {
            let regarding = e.regarding.as_ref()?;
            (regarding.name.as_deref() == Some("lb-rt000001-8081")
                && e.type_.as_deref() == Some("Warning"))
            .then_some(e.note.unwrap_or_default())
        })
    })
    .await;
    assert!(note.contains("InvalidParameter"), "event note: {note}");
    let cleared = http
        .delete(format!("{admin}/_fake/faults"))
        .send()
        .await
        .unwrap();
    assert!(cleared.status().is_success());
    let fixed_id = eventually("Synced after the fault is cleared", || async {
        synced_id(&listeners.get("lb-rt000001-8081").await.ok()?)
    })
    .await;
    let cloud = read_cloud(&observer, &lb).await.unwrap();
    let fixed = find(&cloud, &fixed_id).expect("listener created after the fault");
    assert_eq!(fixed.key, ListenerKey::single(Protocol::Tcp, 8081));
    assert_eq!(targets_of(&fixed), vec![("10.0.0.6".into(), 80, 10)]);

    // Metrics: the client's calls and the reconciler's outcomes are exported.
    let text = http
        .get(format!("{metrics_url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            "clb_client_requests_total{action=\"CreateListener\",result=\"InvalidParameter\"}"
        ),
        "{text}"
    );
    assert!(
        text.contains("clb_controller_listener_reconciles_total{result=\"synced\"}"),
        "{text}"
    );

    // Clean up while the controller still runs (it must remove the finalizers), then stop.
    listeners
        .delete_collection(&DeleteParams::default(), &ListParams::default())
        .await
        .expect("delete listeners");
    eventually("every Listener CR gone", || async {
        listeners
            .list(&ListParams::default())
            .await
            .ok()
            .filter(|l| l.items.is_empty())
            .map(|_| ())
    })
    .await;
    assert!(
        read_cloud(&observer, &lb).await.unwrap().is_empty(),
        "cloud listeners left behind"
    );
    handle.shutdown().await.expect("clean shutdown");
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
    fake.shutdown().await;
}
