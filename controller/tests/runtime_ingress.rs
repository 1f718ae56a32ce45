//! The Ingress reconciler end to end: the user guide's quick start 2 (direct-to-pod) Ingress against a real
//! kube-apiserver with kwok pods, the runtime in-process, and an in-process fake-clb.
//!
//! Ignored by default; `make test-cluster` runs it with `CLB_TEST_KUBECONFIG` set. Run by hand:
//! `target/debug/clb-harness cluster up --state-dir .work/ing-cluster` then
//! `CLB_TEST_KUBECONFIG=$PWD/.work/ing-cluster/kubeconfig cargo test -p clb-controller --test runtime_ingress -- --ignored`.

mod support;

use std::time::Duration;

use clb_controller::api::{Ingress, Listener, keys};
use clb_controller::cloud::{ClbClient, LbRef};
use clb_controller::manager;
use clb_controller::sync::{ListenerKey, Protocol, read_cloud};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use support::{FakeClb, Poll, eventually};

const REGION: &str = "ap-guangzhou";
const LB: &str = "lb-ing00001";
const POLL: Poll = Poll {
    deadline: Duration::from_secs(90),
    every: Duration::from_millis(200),
};
const FAKE: FakeClb<'static> = FakeClb {
    seed: 12,
    secret_id: "AKIDingresstest01",
    secret_key: "ingress-test-secret",
    region: REGION,
    lb: LB,
    name: "ingress-test",
    vip: "1.1.1.2",
    listeners_per_lb: Some(200),
};
const FIXTURE: &str = include_str!("fixtures/user-guide/ingress-quickstart-direct.yaml");

/// The guide's quick-start 2 Ingress, moved to `ns` and pointed at the fake LB.
fn quickstart_ingress(ns: &str) -> Ingress {
    let mut value: serde_json::Value = serde_yaml::from_str(FIXTURE).expect("fixture parses");
    value["metadata"]["namespace"] = json!(ns);
    value["metadata"]["annotations"][keys::ANNOTATION_LB_IDS] = json!(LB);
    value["spec"]["rules"][0]["services"][0]["serviceNamespace"] = json!(ns);
    serde_json::from_value(value).expect("fixture is an Ingress")
}

fn deployment(replicas: i32) -> Deployment {
    serde_json::from_value(json!({
        "metadata": {"name": "nginx"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "nginx"}},
            "template": {
                "metadata": {"labels": {"app": "nginx"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx",
                                         "ports": [{"containerPort": 8080}]}]},
            },
        },
    }))
    .expect("deployment")
}

/// IPs of the Running pods with an IP, sorted.
async fn pod_ips(pods: &Api<Pod>) -> Vec<String> {
    let list = pods
        .list(&ListParams::default().labels("app=nginx"))
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let mut ips: Vec<String> = list
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| {
            let s = p.status.as_ref()?;
            (s.phase.as_deref() == Some("Running"))
                .then(|| s.pod_ip.clone())
                .flatten()
        })
        .collect();
    ips.sort();
    ips
}

/// Target IPs (port 8080) of the cloud listener on TCP 39090, if it exists.
async fn cloud_target_ips(observer: &ClbClient, lb: &LbRef) -> Option<Vec<String>> {
    let cloud = read_cloud(observer, lb).await.ok()?;
    let listener = cloud
        .iter()
        .find(|c| c.key == ListenerKey::single(Protocol::Tcp, 39090))?;
    let mut ips: Vec<String> = listener
        .targets
        .iter()
        .filter(|t| t.port == 8080)
        .map(|t| t.ip.to_string())
        .collect();
    ips.sort();
    Some(ips)
}

#[tokio::test]
#[ignore = "needs a cluster: CLB_TEST_KUBECONFIG (make test-cluster)"]
async fn quickstart_direct_ingress_against_fake_clb() {
    let Some((kubeconfig, client)) = support::cluster().await else {
        return;
    };

    let fake = FAKE.start().await;
    let (cloud_config, credentials, observer) = FAKE.clients(&fake);
    let lb = LbRef::new(REGION, LB);

    let ns = format!("clb-ing-{}", support::unique_millis());
    let namespaces = support::create_namespace(&client, &ns, false).await;

    let handle = manager::run(support::runtime_config(
        &kubeconfig,
        cloud_config,
        credentials.clone(),
        &ns,
        "ing-test-0",
    ))
    .await
    .expect("runtime starts");
    eventually(POLL, "leader and cache synced", || async {
        handle.is_ready().then_some(())
    })
    .await;

    let pp = PostParams::default();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns);
    let listeners: Api<Listener> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&pp, &deployment(2))
        .await
        .expect("create deployment");
    services
        .create(
            &pp,
            &serde_json::from_value(json!({
                "metadata": {"name": "nginx"},
                "spec": {"selector": {"app": "nginx"},
                         "ports": [{"port": 8080, "targetPort": 8080, "protocol": "TCP"}]},
            }))
            .unwrap(),
        )
        .await
        .expect("create service");
    ingresses
        .create(&pp, &quickstart_ingress(&ns))
        .await
        .expect("create ingress");

    // Two pods: the cloud listener on 39090 targets both pod IPs on 8080.
    let ips = eventually(POLL, "two running pods with IPs", || async {
        let ips = pod_ips(&pods).await;
        (ips.len() == 2).then_some(ips)
    })
    .await;
    eventually(POLL, "cloud listener targets the two pods", || async {
        (cloud_target_ips(&observer, &lb).await? == ips).then_some(())
    })
    .await;
    let listener_name = format!("{LB}-39090");
    let cr = listeners.get(&listener_name).await.expect("Listener CR");
    assert_eq!(
        cr.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(keys::LABEL_OWNER_NAME))
            .map(String::as_str),
        Some("test2")
    );
    let ing = ingresses.get("test2").await.expect("ingress");
    assert!(
        ing.metadata
            .finalizers
            .unwrap_or_default()
            .contains(&keys::FINALIZER_CONTROLLER.to_string())
    );
    let status_lbs = eventually(POLL, "status.loadbalancers written", || async {
        let ing = ingresses.get("test2").await.ok()?;
        let lbs = ing.status?.loadbalancers;
        (!lbs.is_empty()).then_some(lbs)
    })
    .await;
    assert_eq!(status_lbs[0].loadbalancer_id.as_deref(), Some(LB));
    assert_eq!(status_lbs[0].ips, vec!["1.1.1.2".to_string()]);

    // Scale to 3: the targets follow.
    deployments
        .patch(
            "nginx",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 3}})),
        )
        .await
        .expect("scale up");
    let ips = eventually(POLL, "three running pods", || async {
        let ips = pod_ips(&pods).await;
        (ips.len() == 3).then_some(ips)
    })
    .await;
    eventually(POLL, "cloud targets follow the scale-up", || async {
        (cloud_target_ips(&observer, &lb).await? == ips).then_some(())
    })
    .await;
    // And down to 1.
    deployments
        .patch(
            "nginx",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"replicas": 1}})),
        )
        .await
        .expect("scale down");
    eventually(POLL, "cloud targets follow the scale-down", || async {
        let ips = pod_ips(&pods).await;
        let cloud = cloud_target_ips(&observer, &lb).await?;
        (ips.len() == 1 && cloud == ips).then_some(())
    })
    .await;

    // Deleting the Ingress: the cloud listener goes, then the Listener CR, then the Ingress.
    ingresses
        .delete("test2", &DeleteParams::default())
        .await
        .expect("delete ingress");
    eventually(POLL, "ingress gone", || async {
        matches!(ingresses.get_opt("test2").await, Ok(None)).then_some(())
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

    handle.shutdown().await.expect("clean shutdown");
    namespaces
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("delete namespace");
    fake.shutdown().await;
}
