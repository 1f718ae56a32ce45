//! The Listener reconciler end to end: a real kube-apiserver (the harness' local control plane), the runtime
//! in-process with leader election on, and an in-process fake-clb.
//!
//! Ignored by default; `make test-cluster` runs it with `CLB_TEST_KUBECONFIG` set. Run by hand:
//! `target/debug/clb-harness cluster up --state-dir .work/rt-cluster` then
//! `CLB_TEST_KUBECONFIG=$PWD/.work/rt-cluster/kubeconfig cargo test -p clb-controller --test runtime_listener -- --ignored`.

mod support;

use std::time::Duration;

use clb_controller::api::{Listener, keys};
use clb_controller::cloud::LbRef;
use clb_controller::manager::{self, LeaderElectionConfig, RuntimeConfig};
use clb_controller::sync::{CloudListener, Endpoint, ListenerKey, Protocol, read_cloud};
use k8s_openapi::api::events::v1::Event as KubeEvent;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::{FakeClb, Poll, eventually, targets_of};

const REGION: &str = "ap-guangzhou";
const LB: &str = "lb-rt000001";
const POLL: Poll = Poll {
    deadline: Duration::from_secs(60),
    every: Duration::from_millis(100),
};
const FAKE: FakeClb<'static> = FakeClb {
    seed: 11,
    secret_id: "AKIDruntimetest01",
    secret_key: "runtime-test-secret",
    region: REGION,
    lb: LB,
    name: "runtime-test",
    vip: "1.1.1.1",
    listeners_per_lb: Some(200),
};

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

#[tokio::test]
#[ignore = "needs a cluster: CLB_TEST_KUBECONFIG (make test-cluster)"]
async fn listener_lifecycle_against_fake_clb() {
    let Some((kubeconfig, client)) = support::cluster().await else {
        return;
    };

    let fake = FAKE.start().await;
    let http = reqwest::Client::new();
    let (cloud_config, credentials, observer) = FAKE.clients(&fake);
    let lb = LbRef::new(REGION, LB);

    let ns = format!("clb-rt-{}", support::unique_millis());
    let namespaces = support::create_namespace(&client, &ns, false).await;

    let mut election = LeaderElectionConfig::new(&ns, "clb-controller-test", "rt-test-0");
    election.retry_period = Duration::from_millis(500);
    let handle = manager::run(RuntimeConfig {
        leader_election: Some(election),
        ..support::runtime_config(
            &kubeconfig,
            cloud_config,
            credentials.clone(),
            &ns,
            "rt-test-0",
        )
    })
    .await
    .expect("runtime starts");
    eventually(POLL, "leader and cache synced", || async {
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
    let ids: Vec<String> = eventually(POLL, "three listeners Synced", || async {
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
    eventually(POLL, "cloud targets follow the backend change", || async {
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
    eventually(POLL, "deleted Listener CR disappears", || async {
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
    support::set_faults(
        &fake,
        json!([{"action": "CreateListener",
                "effect": {"type": "error", "code": "InvalidParameter", "message": "injected by runtime test"}}]),
    )
    .await;
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
    let msg = eventually(POLL, "NotSynced with the cloud error code", || async {
        let l = listeners.get("lb-rt000001-8081").await.ok()?;
        let s = l.status?;
        (s.status.as_deref() == Some(keys::LISTENER_STATUS_NOT_SYNCED)).then_some(s.msg?)
    })
    .await;
    assert!(msg.contains("InvalidParameter"), "status.msg: {msg}");
    let events: Api<KubeEvent> = Api::namespaced(client.clone(), &ns);
    let note = eventually(POLL, "Warning event on the listener", || async {
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
    support::clear_faults(&fake).await;
    let fixed_id = eventually(POLL, "Synced after the fault is cleared", || async {
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
    eventually(POLL, "every Listener CR gone", || async {
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
