//! Ports of refused pods come back within seconds, through a real kube-apiserver: the runtime in-process with
//! both pod webhooks registered (mutating: allocates and stamps the reservation; validating: ties the stored
//! pod to it) against an in-process fake-clb, reservation timeout 5 s.
//!
//! 1. A pod is stored through both webhooks (the controller now knows the validating one is registered). Then a
//!    pod the API server refuses after our mutating webhook (an invalid container name fails object validation)
//!    holds its port at first, and the port is free again within 10 s.
//! 2. Two waves of 12 generateName pods, a seeded third of them refused the same way: every stored pod holds a
//!    port no other stored pod holds, and once the refused ones are released the pool holds exactly the stored
//!    pods' ports (ports of refused pods of the first wave are handed to the second).
//! 3. A ResourceQuota of 0 pods (refusal after validation) and a Deployment of 2 replicas: its ReplicaSet keeps
//!    trying, every try reserves a port, and after 2 minutes the Deployment holds at most 2.
//!
//! Ignored by default; `make test-cluster` runs it with `CLB_TEST_KUBECONFIG` set. Run by hand:
//! `target/debug/clb-harness cluster up --state-dir .work/res-cluster` then
//! `CLB_TEST_KUBECONFIG=$PWD/.work/res-cluster/kubeconfig cargo test -p clb-controller --test webhook_reservations -- --ignored --nocapture`.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use clb_controller::allocator::PoolKey;
use clb_controller::annotations;
use clb_controller::api::PortPool;
use clb_controller::manager::{self, RuntimeConfig};
use clb_controller::pools::PoolState;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota};
use kube::ResourceExt;
use kube::api::{Api, ListParams, PostParams};
use serde_json::json;
use support::{FakeClb, Poll, eventually};

const REGION: &str = "ap-guangzhou";
const POLL: Poll = Poll {
    deadline: Duration::from_secs(90),
    every: Duration::from_millis(200),
};
const CONFIG_PREFIX: &str = "clb-reservation-test-";
/// The runtime's reservation timeout (support::runtime_config) is 5 s; the bound is 10 s.
const FREE_WITHIN: Duration = Duration::from_secs(10);
const POOL_PORTS: u16 = 40;
/// How long the quota-stuck Deployment is watched.
const STUCK_FOR: Duration = Duration::from_secs(120);

fn fake(lb: &str) -> FakeClb<'_> {
    FakeClb {
        seed: 31,
        secret_id: "AKIDreservations1",
        secret_key: "reservation-secret",
        region: REGION,
        lb,
        name: "reservation-test",
        vip: "1.1.1.31",
        listeners_per_lb: None,
    }
}

fn pool(lb: &str) -> PortPool {
    serde_json::from_value(json!({
        "apiVersion": "networkextension.bkbcs.tencent.com/v1", "kind": "PortPool",
        "metadata": {"name": "res-pool"},
        "spec": {"poolItems": [{"itemName": "item1", "loadBalancerIDs": [lb], "protocol": "TCP",
            "startPort": 32000, "endPort": 32000 + POOL_PORTS}]},
    }))
    .unwrap()
}

/// A pod asking for one port of the test pool; `valid: false` gives it a container name object validation
/// refuses (after the mutating webhooks ran, before the validating ones).
fn pod_json(valid: bool) -> serde_json::Value {
    let container = if valid { "game" } else { "Not_A_DNS_Label" };
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"generateName": "res-", "labels": {"app": "res"}, "annotations": {
            annotations::PORT_POOLS: "true", annotations::PORTS: "res-pool TCP 80"}},
        "spec": {"containers": [{"name": container, "image": "game", "ports": [{"containerPort": 80}]}]},
    })
}

fn used(state: &PoolState, key: &PoolKey) -> u32 {
    state
        .with_allocator(|a| a.usage(key))
        .map(|items| items.iter().map(|i| i.used).sum())
        .unwrap_or(0)
}

/// Seeded coin flips (xorshift), so a failure can be replayed.
struct Coins(u64);

impl Coins {
    fn flip(&mut self) -> bool {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0.is_multiple_of(3)
    }
}

#[tokio::test]
#[ignore = "needs a cluster: CLB_TEST_KUBECONFIG (make test-cluster)"]
async fn ports_of_refused_pods_come_back_within_seconds() {
    let Some((kubeconfig, client)) = support::cluster().await else {
        return;
    };
    support::remove_stale_configurations(&client, CONFIG_PREFIX).await;
    let millis = support::unique_millis();
    let lb = format!("lb-{:08x}", (millis >> 3) & 0xffff_ffff);
    let fake_clb = fake(&lb);
    let fake = fake_clb.start().await;
    let ns = format!("clb-res-{millis}");
    let namespaces = support::create_namespace(&client, &ns, true).await;
    let config_name = format!("{CONFIG_PREFIX}{ns}");
    let handle = manager::run(RuntimeConfig {
        webhook: Some(support::webhook_config(&config_name, REGION)),
        ..support::runtime_config(
            &kubeconfig,
            fake_clb.cloud_config(&fake),
            fake_clb.credentials(),
            &ns,
            "reservation-test-0",
        )
    })
    .await
    .expect("runtime starts");
    support::wait_ready_with_pools(POLL, &handle).await;
    let state = handle.pool_state();
    let key = PoolKey::new(&ns, "res-pool");
    let pools: Api<PortPool> = Api::namespaced(client.clone(), &ns);
    pools
        .create(&PostParams::default(), &pool(&lb))
        .await
        .expect("create pool");
    eventually(POLL, "pool item known to the webhook", || async {
        let item = state.item(&key, "item1")?;
        (item.status == "Ready").then_some(())
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);

    refused_pod_frees_its_port(&pods, &state, &key).await;
    burst_with_refusals_shares_no_port(&pods, &state, &key).await;
    quota_stuck_deployment_holds_at_most_its_replicas(&client, &ns, &state, &key).await;

    handle.shutdown().await.expect("runtime stops");
    support::remove_stale_configurations(&client, &config_name).await;
    let _ = namespaces
        .delete(&ns, &kube::api::DeleteParams::default())
        .await;
}

/// Creates a pod that our mutating webhook admits and the API server then refuses; returns the message.
async fn create_refused(pods: &Api<Pod>) -> String {
    let pod: Pod = serde_json::from_value(pod_json(false)).unwrap();
    match pods.create(&PostParams::default(), &pod).await {
        Ok(p) => panic!(
            "pod {} with an invalid container name was stored",
            p.name_any()
        ),
        Err(e) => e.to_string(),
    }
}

async fn refused_pod_frees_its_port(pods: &Api<Pod>, state: &PoolState, key: &PoolKey) {
    // Both webhook configurations may take a moment to be active: until then pods are stored unmutated (deleted
    // again here). The first pod through both also tells the controller the validating webhook is registered.
    eventually(POLL, "a pod stored through both webhooks", || async {
        let pod: Pod = serde_json::from_value(pod_json(true)).unwrap();
        let stored = pods.create(&PostParams::default(), &pod).await.ok()?;
        if stored.annotations().contains_key(annotations::RESERVATION) {
            return Some(());
        }
        let _ = pods.delete(&stored.name_any(), &Default::default()).await;
        None
    })
    .await;
    eventually(POLL, "the stored pod's reservation confirmed", || async {
        (used(state, key) == 1 && state.pending_len() == 0).then_some(())
    })
    .await;
    let message = create_refused(pods).await;
    assert!(
        message.contains("Not_A_DNS_Label"),
        "refused for another reason: {message}"
    );
    let refused_at = Instant::now();
    assert_eq!(
        used(state, key),
        2,
        "the refused pod's port is held at first"
    );
    let freed = eventually(POLL, "the refused pod's port is free", || async {
        (used(state, key) == 1).then(|| refused_at.elapsed())
    })
    .await;
    println!("refused pod: port free again after {freed:?} (reservation timeout 5 s)");
    assert!(
        freed <= FREE_WITHIN,
        "the port came back after {freed:?}, more than {FREE_WITHIN:?}"
    );
}

async fn burst_with_refusals_shares_no_port(pods: &Api<Pod>, state: &PoolState, key: &PoolKey) {
    let mut coins = Coins(0x5eed_2026);
    // The pod of the first check.
    let mut stored = 1usize;
    for wave in 0..2 {
        let valid: Vec<bool> = (0..12).map(|_| !coins.flip()).collect();
        let creates = valid.iter().map(|ok| {
            let pods = pods.clone();
            let pod: Pod = serde_json::from_value(pod_json(*ok)).unwrap();
            async move { pods.create(&PostParams::default(), &pod).await.is_ok() }
        });
        let results = futures::future::join_all(creates).await;
        assert_eq!(
            results, valid,
            "wave {wave}: exactly the valid pods are stored"
        );
        stored += valid.iter().filter(|ok| **ok).count();
        let expected = stored as u32;
        eventually(POLL, "refused pods' ports released", || async {
            (used(state, key) == expected).then_some(())
        })
        .await;
        println!(
            "wave {wave}: {} stored, {} refused; the pool holds {expected} ports",
            valid.iter().filter(|ok| **ok).count(),
            valid.iter().filter(|ok| !**ok).count()
        );
    }
    let list = pods
        .list(&ListParams::default().labels("app=res"))
        .await
        .expect("list pods");
    let mut holders: BTreeMap<u16, String> = BTreeMap::new();
    for pod in &list.items {
        let raw = &pod.annotations()[annotations::POOL_BINDINGS];
        for item in annotations::parse_pool_bindings(raw).expect("bindings") {
            if let Some(first) = holders.insert(item.start_port, pod.name_any()) {
                panic!(
                    "port {} held by {first} and {}",
                    item.start_port,
                    pod.name_any()
                );
            }
        }
    }
    assert_eq!(holders.len(), stored, "one port per stored pod");
}

async fn quota_stuck_deployment_holds_at_most_its_replicas(
    client: &kube::Client,
    ns: &str,
    state: &PoolState,
    key: &PoolKey,
) {
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), ns);
    let quota = serde_json::from_value(
        json!({"metadata": {"name": "no-pods"}, "spec": {"hard": {"pods": "0"}}}),
    )
    .unwrap();
    quotas
        .create(&PostParams::default(), &quota)
        .await
        .expect("create quota");
    let before = used(state, key);
    let template = pod_json(true);
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": {"name": "stuck"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "stuck"}},
            "template": {"metadata": {"labels": {"app": "stuck"}, "annotations": template["metadata"]["annotations"]},
                "spec": template["spec"]}},
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .expect("create deployment");
    let start = Instant::now();
    let mut peak = 0;
    while start.elapsed() < STUCK_FOR {
        peak = peak.max(used(state, key).saturating_sub(before));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let held = used(state, key).saturating_sub(before);
    println!("quota-stuck Deployment of 2: peak {peak} ports held, {held} after {STUCK_FOR:?}");
    assert!(
        peak >= 1,
        "the ReplicaSet's tries never reached the webhook: the test proves nothing"
    );
    assert!(
        held <= 2,
        "holds {held} ports after {STUCK_FOR:?}, more than its 2 replicas"
    );
    let stuck = Api::<Pod>::namespaced(client.clone(), ns)
        .list(&ListParams::default().labels("app=stuck"))
        .await
        .expect("list pods");
    assert!(stuck.items.is_empty(), "the quota let a pod through");
}
