//! The PortPool reconciler end to end: the user guide's quick-start PortPool (10 ports, TCP and UDP) against a
//! real kube-apiserver, the runtime in-process, and an in-process fake-clb.
//!
//! Ignored by default; needs `CLB_TEST_KUBECONFIG`. Run by hand:
//! `target/debug/clb-harness cluster up --state-dir .work/pp-cluster` then
//! `CLB_TEST_KUBECONFIG=$PWD/.work/pp-cluster/kubeconfig cargo test -p clb-controller --test runtime_portpool -- --ignored`.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clb_controller::allocator::{PoolKey, RequestProtocol};
use clb_controller::api::{Listener, PortPool, keys};
use clb_controller::cloud::{ClbClient, ClientConfig, CloudMetrics, Credentials, LbRef};
use clb_controller::runtime::{self, RuntimeConfig};
use clb_controller::sync::{Protocol, WorkerConfig, read_cloud};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;

const SECRET_ID: &str = "AKIDpooltest0001";
const SECRET_KEY: &str = "pool-test-secret";
const REGION: &str = "ap-guangzhou";
const LB: &str = "lb-pool0001";
const VIP: &str = "1.1.1.3";
const DEADLINE: Duration = Duration::from_secs(90);
const FIXTURE: &str = include_str!("fixtures/user-guide/portpool-quickstart-portpool.yaml");

async fn start_fake() -> fake_clb::ServerHandle {
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
adminListen: 127.0.0.1:0
seed: 13
accounts:
  - secretId: {SECRET_ID}
    secretKey: {SECRET_KEY}
    appId: 1250000001
loadBalancers:
  - id: {LB}
    secretId: {SECRET_ID}
    region: {REGION}
    name: pool-test
    type: OPEN
    vips: [{VIP}]
limits:
  actionQps: 0
  listenersPerLoadBalancer: 200
  taskDuration: 50ms
"#
    );
    let config = fake_clb::Config::from_yaml(&yaml, std::path::Path::new("pool-test.yaml"))
        .expect("fake-clb config");
    fake_clb::serve(config).await.expect("fake-clb starts")
}

/// Polls `probe` every 200 ms until it returns `Some`, failing with `what` at the deadline.
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
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The guide's quick-start PortPool, moved to `ns` and pointed at the fake LB.
fn quickstart_pool(ns: &str) -> PortPool {
    let mut value: serde_json::Value = serde_yaml::from_str(FIXTURE).expect("fixture parses");
    value["metadata"]["namespace"] = json!(ns);
    value["spec"]["poolItems"][0]["loadBalancerIDs"] = json!([LB]);
    serde_json::from_value(value).expect("fixture is a PortPool")
}

/// Sorted (protocol, port) of the single-port cloud listeners.
async fn cloud_ports(observer: &ClbClient, lb: &LbRef) -> Option<Vec<(Protocol, u16)>> {
    let cloud = read_cloud(observer, lb).await.ok()?;
    let mut keys: Vec<(Protocol, u16)> =
        cloud.iter().map(|c| (c.key.protocol, c.key.port)).collect();
    keys.sort();
    Some(keys)
}

fn expected_ports(start: u16, end: u16) -> Vec<(Protocol, u16)> {
    let mut out: Vec<(Protocol, u16)> = (start..end)
        .flat_map(|p| [(Protocol::Tcp, p), (Protocol::Udp, p)])
        .collect();
    out.sort();
    out
}

#[tokio::test]
#[ignore = "needs a cluster: CLB_TEST_KUBECONFIG (make test-cluster)"]
async fn quickstart_portpool_against_fake_clb() {
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
    let cloud_config = ClientConfig {
        endpoint: format!("http://{}", fake.api_addr),
        default_region: REGION.into(),
        request_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(20),
        ..ClientConfig::default()
    };
    let credentials = Credentials::new(SECRET_ID, SECRET_KEY).unwrap();
    let observer =
        ClbClient::new(cloud_config.clone(), &credentials, CloudMetrics::default()).unwrap();
    let lb = LbRef::new(REGION, LB);

    let ns = format!(
        "clb-pp-{}",
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
        leader_election: None,
        watch_namespace: Some(ns.clone()),
        install_crds: true,
        instance: "pp-test-0".into(),
        webhook: None,
    })
    .await
    .expect("runtime starts");
    let pool_state = handle.pool_state();
    eventually("leader, cache synced and allocator rebuilt", || async {
        (handle.is_ready() && pool_state.is_ready()).then_some(())
    })
    .await;

    let pools: Api<PortPool> = Api::namespaced(client.clone(), &ns);
    let listeners: Api<Listener> = Api::namespaced(client.clone(), &ns);
    pools
        .create(&PostParams::default(), &quickstart_pool(&ns))
        .await
        .expect("create pool");

    // 10 ports × TCP and UDP: 20 Listener CRs, 20 cloud listeners, item and pool Ready with the LB's VIP.
    eventually("20 cloud listeners", || async {
        (cloud_ports(&observer, &lb).await? == expected_ports(31000, 31010)).then_some(())
    })
    .await;
    let pool = eventually("pool Ready", || async {
        let pool = pools.get("pool1").await.ok()?;
        (pool.status.as_ref()?.status.as_deref() == Some("Ready")).then_some(pool)
    })
    .await;
    assert!(
        pool.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&keys::FINALIZER_CONTROLLER.to_string())
    );
    let status = pool.status.expect("status");
    assert_eq!(status.pool_items.len(), 1);
    let item = &status.pool_items[0];
    assert_eq!(item.item_name, "item1");
    assert_eq!(item.status, "Ready");
    assert_eq!((item.start_port, item.end_port), (31000, 31010));
    assert_eq!(item.protocol, ["TCP", "UDP"]);
    assert_eq!(item.load_balancer_ids, [LB]);
    let plb = &item.pool_item_load_balancers[0];
    assert_eq!(plb.loadbalancer_id.as_deref(), Some(LB));
    assert_eq!(plb.loadbalancer_name.as_deref(), Some("pool-test"));
    assert_eq!(plb.region.as_deref(), Some(REGION));
    assert_eq!(plb.lb_type.as_deref(), Some("OPEN"));
    assert_eq!(plb.ips, [VIP]);

    let crs = listeners
        .list(&ListParams::default().labels("owner-kind=PortPool,owner-name=pool1"))
        .await
        .expect("list listeners");
    assert_eq!(crs.items.len(), 20);
    let tcp = crs
        .items
        .iter()
        .find(|l| l.metadata.name.as_deref() == Some("lb-pool0001-tcp-31000"))
        .expect("listener lb-pool0001-tcp-31000");
    assert!(tcp.spec.target_group.is_none());
    assert!(
        tcp.status
            .as_ref()
            .and_then(|s| s.listener_id.clone())
            .is_some()
    );

    // The webhook's allocator sees a Ready item with 10 ports per protocol.
    let key = PoolKey::new(&ns, "pool1");
    eventually("allocator holds the Ready item", || async {
        let usage = pool_state.with_allocator(|a| a.usage(&key)).ok()?;
        (usage.len() == 2 && usage.iter().all(|u| u.capacity == 10 && u.used == 0)).then_some(())
    })
    .await;
    let allocation = pool_state
        .with_allocator(|a| a.allocate(&key, RequestProtocol::Tcp, None))
        .expect("a port from the Ready item");
    assert_eq!(allocation.start_port, 31000);
    assert_eq!(
        pool_state
            .item(&key, "item1")
            .map(|i| i.pool_item_load_balancers[0].ips.clone()),
        Some(vec![VIP.to_string()])
    );

    // endPort 31010 → 31015: 10 more listeners.
    pools
        .patch(
            "pool1",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([
                    {"op": "replace", "path": "/spec/poolItems/0/endPort", "value": 31015}
                ]))
                .unwrap(),
            ),
        )
        .await
        .expect("grow endPort");
    eventually("30 cloud listeners", || async {
        (cloud_ports(&observer, &lb).await? == expected_ports(31000, 31015)).then_some(())
    })
    .await;
    eventually("pool Ready again with the new range", || async {
        let s = pools.get("pool1").await.ok()?.status?;
        (s.status.as_deref() == Some("Ready") && s.pool_items.first()?.end_port == 31015)
            .then_some(())
    })
    .await;
    eventually("allocator grew, kept the held port", || async {
        let usage = pool_state.with_allocator(|a| a.usage(&key)).ok()?;
        let tcp = usage.iter().find(|u| u.protocol.as_str() == "TCP")?;
        (tcp.capacity == 15 && tcp.used == 1).then_some(())
    })
    .await;

    // Deleting the pool: cloud listeners, Listener CRs, then the pool itself go.
    pools
        .delete("pool1", &DeleteParams::default())
        .await
        .expect("delete pool");
    eventually("pool gone", || async {
        matches!(pools.get_opt("pool1").await, Ok(None)).then_some(())
    })
    .await;
    let left = listeners
        .list(&ListParams::default())
        .await
        .expect("list listeners");
    assert!(left.items.is_empty(), "Listener CRs left behind");
    assert!(
        read_cloud(&observer, &lb).await.unwrap().is_empty(),
        "cloud listeners left behind"
    );
    eventually("pool dropped from the allocator", || async {
        pool_state
            .with_allocator(|a| a.pool(&key).is_none())
            .then_some(())
    })
    .await;

    handle.shutdown().await.expect("clean shutdown");
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
    fake.shutdown().await;
}
