//! The port leak checker end to end: a webhook-style pending allocation whose pod is never stored is released after
//! `--port-leak-threshold`, while one a stored pod records stays held; and a kept (Cleaned) PortBinding deleted by
//! hand gives its port back, so a new pod is admitted again. Real kube-apiserver, runtime in-process.
//!
//! Ignored by default; needs `CLB_TEST_KUBECONFIG`. Run by hand:
//! `target/debug/clb-harness cluster up --state-dir .work/sf-cluster` then
//! `CLB_TEST_KUBECONFIG=$PWD/.work/sf-cluster/kubeconfig cargo test -p clb-controller --test runtime_portleak -- --ignored`.

mod support;

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clb_controller::allocator::{AllocatePolicy, ItemSpec, ItemStatus, PoolKey, RequestProtocol};
use clb_controller::annotations;
use clb_controller::api::{PortBinding, PortPool};
use clb_controller::cloud::{ClientConfig, Credentials};
use clb_controller::manager::{self, RuntimeConfig};
use clb_controller::pools::PoolState;
use clb_controller::sync::WorkerConfig;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use support::{FakeClb, Poll};

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
    state.allocate_pending(ns, pod, "", |a| {
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
    let client = manager::kube_client(Some(&kubeconfig))
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
    let handle = manager::run(RuntimeConfig {
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
        port_reservation_timeout: Duration::from_secs(5),
        randhostport: None,
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

const REGION: &str = "ap-guangzhou";
const POLL: Poll = Poll {
    deadline: Duration::from_secs(90),
    every: Duration::from_millis(200),
};
/// Short, so the test waits seconds; the release must still come no earlier than this after the hand delete.
const THRESHOLD: Duration = Duration::from_secs(2);
const CONFIG_PREFIX: &str = "clb-leak-test-";

/// The first port of the pod's bindings annotation (the webhook wrote it).
fn port_of(pod: &Pod) -> u16 {
    annotations::parse_pool_bindings(&pod.annotations()[annotations::POOL_BINDINGS])
        .expect("bindings JSON")[0]
        .start_port
}

fn port_is_free(state: &PoolState, key: &PoolKey, port: u16) -> bool {
    state.with_allocator(|a| a.is_free(key, "item1", RequestProtocol::Tcp, port)) == Ok(true)
}

/// The scenario author's reproduction: a pod with `keepduration: 5m` is deleted, its PortBinding goes Cleaned and
/// is kept, then the PortBinding is deleted by hand. Without a finalizer nothing released its port, so the full
/// pool refused every new pod until the next leader change. Now the leak checker gives the port back (no earlier
/// than the threshold after the delete), the port a live pod's binding records stays held, and a new pod is admitted.
#[tokio::test]
#[ignore = "needs a cluster: CLB_TEST_KUBECONFIG (make test-cluster)"]
async fn a_kept_portbinding_deleted_by_hand_gives_its_port_back() {
    let Some((kubeconfig, client)) = support::cluster().await else {
        return;
    };
    support::remove_stale_configurations(&client, CONFIG_PREFIX).await;
    let millis = support::unique_millis();
    let lb = format!("lb-{:08x}", millis & 0xffff_ffff);
    let fake_clb = FakeClb {
        seed: 34,
        secret_id: "AKIDportleak00002",
        secret_key: "portleak-secret",
        region: REGION,
        lb: &lb,
        name: "portleak-test",
        vip: "1.1.1.34",
        listeners_per_lb: None,
    };
    let fake = fake_clb.start().await;
    let (cloud_config, credentials, _observer) = fake_clb.clients(&fake);
    let ns = format!("clb-leakpb-{millis}");
    let namespaces = support::create_namespace(&client, &ns, true).await;
    let config_name = format!("{CONFIG_PREFIX}{ns}");
    let handle = manager::run(RuntimeConfig {
        webhook: Some(support::webhook_config(&config_name, REGION)),
        port_leak_threshold: THRESHOLD,
        port_reservation_timeout: Duration::from_secs(5),
        randhostport: None,
        ..support::runtime_config(&kubeconfig, cloud_config, credentials, &ns, "leak-test-1")
    })
    .await
    .expect("runtime starts");
    support::wait_ready_with_pools(POLL, &handle).await;
    let state = handle.pool_state();

    // Two ports: one for the pod whose binding is deleted by hand, one for a pod that stays.
    let pools: Api<PortPool> = Api::namespaced(client.clone(), &ns);
    let pool: PortPool = serde_json::from_value(json!({
        "apiVersion": "networkextension.bkbcs.tencent.com/v1", "kind": "PortPool",
        "metadata": {"name": "tiny"},
        "spec": {"poolItems": [{"itemName": "item1", "loadBalancerIDs": [lb], "protocol": "TCP",
            "startPort": 31000, "endPort": 31002}]},
    }))
    .unwrap();
    support::eventually(POLL, "create pool", || async {
        pools
            .create(&PostParams::default(), &pool)
            .await
            .map_err(|e| eprintln!("create pool: {e}"))
            .ok()
    })
    .await;
    let key = PoolKey::new(&ns, "tiny");
    support::eventually(POLL, "pool Ready and known to the allocator", || async {
        let pool = pools.get("tiny").await.ok()?;
        let ready = pool.status.as_ref()?.status.as_deref() == Some("Ready");
        let item = state.item(&key, "item1")?;
        (ready && item.status == "Ready").then_some(())
    })
    .await;

    // Until the API server has picked up the webhook configuration a pod is stored unmutated: retry under a new
    // name until one comes back with the bindings annotation.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut attempt = 0;
    let kept = support::eventually(POLL, "kept pod admitted and mutated", || {
        attempt += 1;
        let name = format!("kept-{attempt}");
        let pods = pods.clone();
        async move {
            let mut pod = support::pool_pod(&name, "tiny TCP 80", false);
            pod.annotations_mut()
                .insert(annotations::KEEP_DURATION.into(), "5m".into());
            let created = pods.create(&PostParams::default(), &pod).await.ok()?;
            if created
                .annotations()
                .contains_key(annotations::POOL_BINDINGS)
            {
                return Some(created);
            }
            let _ = pods
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
            None
        }
    })
    .await;
    let kept_name = kept.name_any();
    let kept_port = port_of(&kept);
    let stays = pods
        .create(
            &PostParams::default(),
            &support::pool_pod("stays", "tiny TCP 80", false),
        )
        .await
        .expect("second pod admitted");
    let stays_port = port_of(&stays);
    assert_ne!(kept_port, stays_port);

    let bindings: Api<PortBinding> = Api::namespaced(client.clone(), &ns);
    for name in [kept_name.as_str(), "stays"] {
        support::eventually(POLL, "PortBinding Ready", || async {
            let pb = bindings.get(name).await.ok()?;
            (pb.status?.status == "Ready").then_some(())
        })
        .await;
    }
    pods.delete(&kept_name, &DeleteParams::default().grace_period(0))
        .await
        .expect("delete kept pod");
    support::eventually(POLL, "kept PortBinding Cleaned", || async {
        let status = bindings.get(&kept_name).await.ok()?.status?;
        (status.status == "Cleaned").then_some(())
    })
    .await;
    support::eventually(POLL, "kept pod gone", || async {
        matches!(pods.get_opt(&kept_name).await, Ok(None)).then_some(())
    })
    .await;

    // The pool is full: the kept binding holds one port, the live pod the other.
    let refused = pods
        .create(
            &PostParams::default(),
            &support::pool_pod("newcomer", "tiny TCP 80", false),
        )
        .await
        .expect_err("a full pool refuses the pod");
    let refusal = refused.to_string();
    assert!(
        refusal.contains("has no free TCP port (1 of 1 items are Ready"),
        "unexpected refusal: {refusal}"
    );
    assert!(!port_is_free(&state, &key, kept_port));

    // The operator deletes the kept binding by hand; nothing else records its port. Timed from before the call:
    // no list can miss the binding earlier.
    let deleting_at = Instant::now();
    bindings
        .delete(&kept_name, &DeleteParams::default())
        .await
        .expect("delete the kept PortBinding");
    support::eventually(POLL, "the kept port released", || async {
        port_is_free(&state, &key, kept_port).then_some(())
    })
    .await;
    let unrecorded_for = deleting_at.elapsed();
    eprintln!(
        "kept port {kept_port} released {unrecorded_for:?} after the hand delete (threshold {THRESHOLD:?})"
    );
    assert!(
        unrecorded_for >= THRESHOLD,
        "released {unrecorded_for:?} after the delete, before the threshold {THRESHOLD:?}"
    );
    assert!(
        !port_is_free(&state, &key, stays_port),
        "the live pod's port stays held"
    );

    let newcomer = pods
        .create(
            &PostParams::default(),
            &support::pool_pod("newcomer", "tiny TCP 80", false),
        )
        .await
        .expect("the new pod is admitted once the port is back");
    assert_eq!(port_of(&newcomer), kept_port);
    support::eventually(POLL, "the newcomer's PortBinding Ready", || async {
        let pb = bindings.get("newcomer").await.ok()?;
        (pb.status?.status == "Ready").then_some(())
    })
    .await;
    // Both recorded ports are held, and the only port reclaimed in the whole run was the kept binding's.
    assert!(!port_is_free(&state, &key, kept_port));
    assert!(!port_is_free(&state, &key, stays_port));
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

    // Cleanup (the configurations are cluster-wide); the pool's finalizer needs the running reconciler.
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let _ = mutating
        .delete(&config_name, &DeleteParams::default())
        .await;
    for name in ["stays", "newcomer"] {
        let _ = pods
            .delete(name, &DeleteParams::default().grace_period(0))
            .await;
    }
    // The PortPool webhook refuses to delete a pool while PortBindings use it.
    support::eventually(POLL, "PortBindings gone", || async {
        let left = bindings.list(&Default::default()).await.ok()?;
        left.items.is_empty().then_some(())
    })
    .await;
    support::eventually(POLL, "pool deleted", || async {
        pools
            .delete("tiny", &DeleteParams::default())
            .await
            .map_err(|e| eprintln!("delete pool: {e}"))
            .ok()
    })
    .await;
    support::eventually(POLL, "pool gone", || async {
        matches!(pools.get_opt("tiny").await, Ok(None)).then_some(())
    })
    .await;
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let _ = validating
        .delete(&config_name, &DeleteParams::default())
        .await;
    handle.shutdown().await.expect("runtime stops");
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
    drop(fake);
}
