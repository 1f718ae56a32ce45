//! The port leak checker end to end: a webhook-style pending allocation whose pod is never stored is released after
//! `--port-leak-threshold`, while one a stored pod records stays held. Real kube-apiserver, runtime in-process.
//!
//! Ignored by default; needs `CLB_TEST_KUBECONFIG`. Run by hand:
//! `target/debug/clb-harness cluster up --state-dir .work/sf-cluster` then
//! `CLB_TEST_KUBECONFIG=$PWD/.work/sf-cluster/kubeconfig cargo test -p clb-controller --test runtime_portleak -- --ignored`.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clb_controller::allocator::{AllocatePolicy, ItemSpec, ItemStatus, PoolKey, RequestProtocol};
use clb_controller::cloud::{ClientConfig, Credentials};
use clb_controller::runtime::pools::PoolState;
use clb_controller::runtime::{self, RuntimeConfig};
use clb_controller::sync::WorkerConfig;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const DEADLINE: Duration = Duration::from_secs(60);

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

/// Takes one TCP port of the test pool for `pod`, recorded as pending like the pod webhook does.
fn take(state: &PoolState, key: &PoolKey, ns: &str, pod: &str) -> u16 {
    state.allocate_pending(ns, pod, |a| {
        let got = a
            .allocate(key, RequestProtocol::Tcp, None)
            .expect("free port");
        let pending = (
            key.clone(),
            got.item.to_string(),
            got.protocol,
            got.start_port,
        );
        (got.start_port, vec![pending])
    })
}

fn is_free(state: &PoolState, key: &PoolKey, port: u16) -> bool {
    state.with_allocator(|a| a.is_free(key, "a", RequestProtocol::Tcp, port).unwrap())
}

#[tokio::test]
#[ignore = "needs a cluster: CLB_TEST_KUBECONFIG (make test-cluster)"]
async fn unrecorded_webhook_allocation_is_reclaimed() {
    let Some(kubeconfig) = std::env::var_os("CLB_TEST_KUBECONFIG").map(PathBuf::from) else {
        eprintln!("CLB_TEST_KUBECONFIG is not set; skipping");
        return;
    };
    let client = runtime::kube_client(Some(&kubeconfig))
        .await
        .expect("kubeconfig from CLB_TEST_KUBECONFIG");
    let ns = format!(
        "clb-leak-{}",
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

    // No listener is ever synced: the CLB endpoint is never called.
    let handle = runtime::run(RuntimeConfig {
        kubeconfig: Some(kubeconfig.clone()),
        cloud: ClientConfig {
            endpoint: "http://127.0.0.1:9".into(),
            default_region: "ap-guangzhou".into(),
            ..ClientConfig::default()
        },
        credentials: Credentials::new("AKIDleaktest00001", "leak-test-secret").unwrap(),
        worker: WorkerConfig::default(),
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        leader_election: None,
        watch_namespace: Some(ns.clone()),
        install_crds: true,
        port_leak_threshold: Duration::from_secs(1),
        instance: "leak-test-0".into(),
        webhook: None,
    })
    .await
    .expect("runtime starts");
    let state = handle.pool_state();
    eventually("allocator rebuilt", || async {
        (handle.is_ready() && state.is_ready()).then_some(())
    })
    .await;

    // A pool only the allocator knows (no PortPool CR, so no reconcile touches it).
    let key = PoolKey::new(&ns, "ghost");
    let item = ItemSpec {
        name: "a".into(),
        start_port: 100,
        end_port: 110,
        segment_length: 0,
        tcp: true,
        udp: false,
        status: ItemStatus::Ready,
    };
    state
        .with_allocator(|a| a.sync_pool(&key, AllocatePolicy::default(), &[item]))
        .unwrap();
    let leaked = take(&state, &key, &ns, "never-stored");
    let stored = take(&state, &key, &ns, "stored");

    // The second pod is stored with the bindings annotation the webhook would have written.
    let bindings = json!([{
        "poolName": "ghost", "poolNamespace": ns, "loadBalancerIDs": ["lb-none"],
        "poolItemLoadBalancers": [], "poolItemName": "a", "protocol": "TCP",
        "startPort": stored, "endPort": 0, "rsStartPort": 80,
    }]);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": "stored", "annotations": {
            "poolbindings.portpool.networkextension.bkbcs.tencent.com": bindings.to_string(),
        }},
        "spec": {"containers": [{"name": "c", "image": "nginx"}]},
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod)
        .await
        .expect("create pod");

    eventually("the leaked port released", || async {
        is_free(&state, &key, leaked).then_some(())
    })
    .await;
    assert!(
        !is_free(&state, &key, stored),
        "the recorded port stays held"
    );
    eventually("no pending allocation left", || async {
        (state.pending_len() == 0).then_some(())
    })
    .await;
    assert!(
        !is_free(&state, &key, stored),
        "the recorded port stays held"
    );

    let metrics = reqwest::get(format!("http://{}/metrics", handle.metrics_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("clb_controller_portpool_leaked_ports_reclaimed_total 1\n"),
        "metric missing: {metrics}"
    );

    handle.shutdown().await.expect("clean shutdown");
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
}
