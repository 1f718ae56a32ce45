//! The PortPool reconciler end to end: the user guide's quick-start PortPool (10 ports, TCP and UDP) against a
//! real kube-apiserver, the runtime in-process, and an in-process fake-clb.
//!
//! Ignored by default; needs `CLB_TEST_KUBECONFIG`. Run by hand:
//! `target/debug/clb-harness cluster up --state-dir .work/pp-cluster` then
//! `CLB_TEST_KUBECONFIG=$PWD/.work/pp-cluster/kubeconfig cargo test -p clb-controller --test runtime_portpool -- --ignored`.

mod support;

use std::time::Duration;

use clb_controller::allocator::{PoolKey, RequestProtocol};
use clb_controller::api::{Listener, PortPool, keys};
use clb_controller::cloud::{ClbClient, LbRef};
use clb_controller::manager;
use clb_controller::sync::{Protocol, read_cloud};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{FakeClb, Poll, eventually};

const REGION: &str = "ap-guangzhou";
const LB: &str = "lb-pool0001";
const VIP: &str = "1.1.1.3";
const POLL: Poll = Poll {
    deadline: Duration::from_secs(90),
    every: Duration::from_millis(200),
};
const FAKE: FakeClb<'static> = FakeClb {
    seed: 13,
    secret_id: "AKIDpooltest0001",
    secret_key: "pool-test-secret",
    region: REGION,
    lb: LB,
    name: "pool-test",
    vip: VIP,
    listeners_per_lb: Some(200),
};
const FIXTURE: &str = include_str!("fixtures/user-guide/portpool-quickstart-portpool.yaml");

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
    let Some((kubeconfig, client)) = support::cluster().await else {
        return;
    };

    let fake = FAKE.start().await;
    let (cloud_config, credentials, observer) = FAKE.clients(&fake);
    let lb = LbRef::new(REGION, LB);

    let ns = format!("clb-pp-{}", support::unique_millis());
    let namespaces = support::create_namespace(&client, &ns, false).await;

    let handle = manager::run(support::runtime_config(
        &kubeconfig,
        cloud_config,
        credentials.clone(),
        &ns,
        "pp-test-0",
    ))
    .await
    .expect("runtime starts");
    support::wait_ready_with_pools(POLL, &handle).await;
    let pool_state = handle.pool_state();

    let pools: Api<PortPool> = Api::namespaced(client.clone(), &ns);
    let listeners: Api<Listener> = Api::namespaced(client.clone(), &ns);
    pools
        .create(&PostParams::default(), &quickstart_pool(&ns))
        .await
        .expect("create pool");

    // 10 ports × TCP and UDP: 20 Listener CRs, 20 cloud listeners, item and pool Ready with the LB's VIP.
    eventually(POLL, "20 cloud listeners", || async {
        (cloud_ports(&observer, &lb).await? == expected_ports(31000, 31010)).then_some(())
    })
    .await;
    let pool = eventually(POLL, "pool Ready", || async {
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
    eventually(POLL, "allocator holds the Ready item", || async {
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
    eventually(POLL, "30 cloud listeners", || async {
        (cloud_ports(&observer, &lb).await? == expected_ports(31000, 31015)).then_some(())
    })
    .await;
    eventually(POLL, "pool Ready again with the new range", || async {
        let s = pools.get("pool1").await.ok()?.status?;
        (s.status.as_deref() == Some("Ready") && s.pool_items.first()?.end_port == 31015)
            .then_some(())
    })
    .await;
    eventually(POLL, "allocator grew, kept the held port", || async {
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
    eventually(POLL, "pool gone", || async {
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
    eventually(POLL, "pool dropped from the allocator", || async {
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
