//! Two replicas with leader election against a real kube-apiserver, as the chart deploys them: exactly one leads
//! (its `/readyz` answers 200, the follower's 503, so the webhook Service routes to the leader) and only the leader
//! calls CLB; when the leader shuts down it releases the Lease and the follower takes over and reconciles.
//!
//! Ignored by default; `make test-cluster` runs it with `CLB_TEST_KUBECONFIG` set.

mod support;

use std::time::Duration;

use clb_controller::api::{Listener, keys};
use clb_controller::manager::{self, LeaderElectionConfig, RuntimeConfig, RuntimeHandle};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;
use support::{FakeClb, Poll, eventually};

const REGION: &str = "ap-guangzhou";
const LB: &str = "lb-leader001";
const LEASE: &str = "clb-controller-leader-test";
const POLL: Poll = Poll {
    deadline: Duration::from_secs(60),
    every: Duration::from_millis(100),
};
const FAKE: FakeClb<'static> = FakeClb {
    seed: 23,
    secret_id: "AKIDleadertest001",
    secret_key: "leader-test-secret",
    region: REGION,
    lb: LB,
    name: "leader-test",
    vip: "1.1.1.9",
    listeners_per_lb: None,
};

fn listener(name: &str, port: u16) -> Listener {
    serde_json::from_value(json!({
        "apiVersion": "networkextension.bkbcs.tencent.com/v1",
        "kind": "Listener",
        "metadata": {"name": name},
        "spec": {"loadbalancerID": LB, "port": port, "protocol": "TCP",
                 "targetGroup": {"backends": [{"IP": "10.0.0.1", "port": 80, "weight": 10}]}},
    }))
    .expect("listener")
}

async fn readyz(http: &reqwest::Client, handle: &RuntimeHandle) -> u16 {
    http.get(format!("http://{}/readyz", handle.metrics_addr()))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Sum of `clb_client_requests_total` on a replica's `/metrics`: how many CLB calls it made.
async fn cloud_calls(http: &reqwest::Client, handle: &RuntimeHandle) -> f64 {
    let text = http
        .get(format!("http://{}/metrics", handle.metrics_addr()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics body");
    text.lines()
        .filter(|l| l.contains("clb_client_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn synced(listeners: &Api<Listener>, name: &str) -> bool {
    listeners.get(name).await.ok().is_some_and(|l| {
        l.status.and_then(|s| s.status).as_deref() == Some(keys::LISTENER_STATUS_SYNCED)
    })
}

#[tokio::test]
#[ignore = "needs a cluster: CLB_TEST_KUBECONFIG (make test-cluster)"]
async fn one_leader_reconciles_and_a_follower_takes_over_on_release() {
    let Some((kubeconfig, client)) = support::cluster().await else {
        return;
    };
    let fake = FAKE.start().await;
    let http = reqwest::Client::new();
    let ns = format!("clb-leader-{}", support::unique_millis());
    let namespaces = support::create_namespace(&client, &ns, false).await;

    let start = |identity: &'static str| {
        let (cloud_config, credentials, _) = FAKE.clients(&fake);
        let mut election = LeaderElectionConfig::new(&ns, LEASE, identity);
        election.lease_duration = Duration::from_secs(6);
        election.renew_deadline = Duration::from_secs(4);
        election.retry_period = Duration::from_millis(300);
        let config = RuntimeConfig {
            leader_election: Some(election),
            install_crds: identity == "replica-a",
            ..support::runtime_config(&kubeconfig, cloud_config, credentials, &ns, identity)
        };
        manager::run(config)
    };
    let a = start("replica-a").await.expect("replica a starts");
    let b = start("replica-b").await.expect("replica b starts");

    // Exactly one leads; readiness follows leadership.
    let (leader, follower) = eventually(POLL, "one replica leads and is ready", || async {
        match (a.is_ready(), b.is_ready()) {
            (true, false) => Some(("replica-a", "replica-b")),
            (false, true) => Some(("replica-b", "replica-a")),
            _ => None,
        }
    })
    .await;
    let (leading, following) = if leader == "replica-a" {
        (a, b)
    } else {
        (b, a)
    };
    assert!(leading.is_leader() && !following.is_leader());
    assert_eq!(readyz(&http, &leading).await, 200);
    assert_eq!(readyz(&http, &following).await, 503);
    let leases: Api<Lease> = Api::namespaced(client.clone(), &ns);
    let holder = leases
        .get(LEASE)
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some(leader));

    // Only the leader reconciles: the Listener is synced and the follower made no CLB call.
    let listeners: Api<Listener> = Api::namespaced(client.clone(), &ns);
    let pp = PostParams::default();
    listeners
        .create(&pp, &listener("lb-leader001-8080", 8080))
        .await
        .expect("create listener");
    eventually(POLL, "listener 8080 Synced by the leader", || async {
        synced(&listeners, "lb-leader001-8080").await.then_some(())
    })
    .await;
    assert!(
        cloud_calls(&http, &leading).await > 0.0,
        "the leader called CLB"
    );
    assert_eq!(
        cloud_calls(&http, &following).await,
        0.0,
        "the follower must not call CLB"
    );

    // The leader shuts down and releases the Lease (no holder, or already the follower), so the follower takes
    // over without waiting for it to expire.
    leading.shutdown().await.expect("leader shuts down");
    let after = leases
        .get(LEASE)
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.holder_identity);
    assert!(
        after
            .as_deref()
            .is_none_or(|h| h.is_empty() || h == follower),
        "lease still held by {after:?} after the leader shut down"
    );
    eventually(POLL, "the follower leads and is ready", || async {
        following.is_ready().then_some(())
    })
    .await;
    let holder = leases
        .get(LEASE)
        .await
        .expect("lease")
        .spec
        .and_then(|s| s.holder_identity);
    assert_eq!(holder.as_deref(), Some(follower));
    assert_eq!(readyz(&http, &following).await, 200);

    // The new leader reconciles new work.
    listeners
        .create(&pp, &listener("lb-leader001-8081", 8081))
        .await
        .expect("create listener");
    eventually(POLL, "listener 8081 Synced by the new leader", || async {
        synced(&listeners, "lb-leader001-8081").await.then_some(())
    })
    .await;
    assert!(
        cloud_calls(&http, &following).await > 0.0,
        "the new leader called CLB"
    );

    for name in ["lb-leader001-8080", "lb-leader001-8081"] {
        let _ = listeners.delete(name, &DeleteParams::default()).await;
    }
    eventually(POLL, "listeners deleted", || async {
        listeners
            .list(&Default::default())
            .await
            .ok()
            .filter(|l| l.items.is_empty())
            .map(|_| ())
    })
    .await;
    following.shutdown().await.expect("shutdown");
    let _ = namespaces.delete(&ns, &DeleteParams::background()).await;
}
