//! The PortBinding controller through a real kube-apiserver: the runtime in-process (PortPool and PortBinding
//! reconcilers, pod webhook on 127.0.0.1) against an in-process fake-clb. A pool becomes Ready, an annotated pod
//! gets a port through the webhook, and once kwok runs it the PortBinding turns Ready, fake-clb's listener has the
//! pod IP as target and the pod says Ready (annotation and readiness condition). Deleting the pod removes the
//! target, deletes the PortBinding and frees the port.
//!
//! Ignored by default; `make test-cluster` runs it with `CLB_TEST_KUBECONFIG` set. Run by hand:
//! `target/debug/clb-harness cluster up --state-dir .work/pb-cluster` then
//! `CLB_TEST_KUBECONFIG=$PWD/.work/pb-cluster/kubeconfig cargo test -p clb-controller --test runtime_portbinding -- --ignored`.

mod support;

use std::time::Duration;

use clb_controller::allocator::{PoolKey, RequestProtocol};
use clb_controller::annotations;
use clb_controller::api::{PortBinding, PortPool};
use clb_controller::cloud::LbRef;
use clb_controller::manager::{self, RuntimeConfig};
use clb_controller::sync::{ListenerKey, Protocol, read_cloud};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use support::{FakeClb, Poll, eventually, targets_of};

const REGION: &str = "ap-guangzhou";
const POLL: Poll = Poll {
    deadline: Duration::from_secs(90),
    every: Duration::from_millis(200),
};
/// Short enough to expire within the test, long enough to recreate the pod before it does.
const KEEP: &str = "10s";
const CONFIG_PREFIX: &str = "clb-pbwh-test-";

/// `lb` differs per run: pools left behind by a failed run claim their LB's ports cluster-wide.
fn fake(lb: &str) -> FakeClb<'_> {
    FakeClb {
        seed: 14,
        secret_id: "AKIDportbinding01",
        secret_key: "portbinding-secret",
        region: REGION,
        lb,
        name: "portbinding-test",
        vip: "1.1.1.5",
        listeners_per_lb: None,
    }
}

fn pod(name: &str, ports: &str) -> Pod {
    support::pool_pod(name, ports, true)
}

#[tokio::test]
#[ignore = "needs a cluster: CLB_TEST_KUBECONFIG (make test-cluster)"]
async fn pod_targets_follow_the_pod_through_its_portbinding() {
    let Some((kubeconfig, client)) = support::cluster().await else {
        return;
    };

    support::remove_stale_configurations(&client, CONFIG_PREFIX).await;
    let millis = support::unique_millis();
    let lb = format!("lb-{:08x}", millis & 0xffff_ffff);
    let fake_clb = fake(&lb);
    let fake = fake_clb.start().await;
    let (cloud_config, credentials, observer) = fake_clb.clients(&fake);
    let lb_ref = LbRef::new(REGION, &lb);
    let ns = format!("clb-pb-{millis}");
    let namespaces = support::create_namespace(&client, &ns, true).await;

    let config_name = format!("{CONFIG_PREFIX}{ns}");
    let handle = manager::run(RuntimeConfig {
        webhook: Some(support::webhook_config(&config_name, REGION)),
        ..support::runtime_config(&kubeconfig, cloud_config, credentials, &ns, "pb-test-0")
    })
    .await
    .expect("runtime starts");
    support::wait_ready_with_pools(POLL, &handle).await;
    let pool_state = handle.pool_state();

    let pools: Api<PortPool> = Api::namespaced(client.clone(), &ns);
    let pool = support::test_pool1(&lb);
    eventually(POLL, "create pool", || async {
        match pools.create(&PostParams::default(), &pool).await {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("create pool: {e}");
                None
            }
        }
    })
    .await;
    let key = PoolKey::new(&ns, "test-pool1");
    eventually(POLL, "pool Ready and known to the allocator", || async {
        let pool = pools.get("test-pool1").await.ok()?;
        let ready = pool.status.as_ref()?.status.as_deref() == Some("Ready");
        let item = pool_state.item(&key, "item1")?;
        (ready && item.status == "Ready" && !item.pool_item_load_balancers.is_empty()).then_some(())
    })
    .await;

    // Until the API server has picked up the webhook configuration a pod is stored unmutated: retry
    // under a new name until one comes back with the bindings annotation.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut attempt = 0;
    let (pod_name, created) = eventually(POLL, "annotated pod admitted and mutated", || {
        attempt += 1;
        let name = format!("nginx-{attempt}");
        let pods = pods.clone();
        async move {
            let created = pods
                .create(&PostParams::default(), &pod(&name, "test-pool1 TCP 80"))
                .await
                .ok()?;
            if created
                .annotations()
                .contains_key(annotations::POOL_BINDINGS)
            {
                return Some((name, created));
            }
            let _ = pods
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
            None
        }
    })
    .await;
    let bindings =
        annotations::parse_pool_bindings(&created.annotations()[annotations::POOL_BINDINGS])
            .expect("bindings JSON");
    assert_eq!(bindings.len(), 1);
    let port = bindings[0].start_port;

    let pod_ip = eventually(POLL, "pod Running with an IP", || async {
        let p = pods.get(&pod_name).await.ok()?;
        let status = p.status?;
        (status.phase.as_deref() == Some("Running"))
            .then_some(())
            .and(status.pod_ip.filter(|ip| !ip.is_empty()))
    })
    .await;

    let portbindings: Api<PortBinding> = Api::namespaced(client.clone(), &ns);
    eventually(POLL, "PortBinding Ready", || async {
        let pb = portbindings.get(&pod_name).await.ok()?;
        (pb.status?.status == "Ready").then_some(())
    })
    .await;
    let cloud_target = eventually(POLL, "fake-clb listener has the pod as target", || async {
        let cloud = read_cloud(&observer, &lb_ref).await.ok()?;
        let listener = cloud
            .iter()
            .find(|c| c.key == ListenerKey::single(Protocol::Tcp, port))?
            .clone();
        let targets = targets_of(&listener);
        (!targets.is_empty()).then_some(targets)
    })
    .await;
    assert_eq!(cloud_target, vec![(pod_ip.clone(), 80, 10)]);
    let ready_pod = eventually(
        POLL,
        "pod annotation and readiness condition Ready",
        || async {
            let p = pods.get(&pod_name).await.ok()?;
            let annotated =
                p.annotations().get(annotations::STATUS).map(String::as_str) == Some("Ready");
            let condition =
                p.status.as_ref()?.conditions.as_ref()?.iter().any(|c| {
                    c.type_ == annotations::READINESS_GATE_CONDITION && c.status == "True"
                });
            (annotated && condition).then_some(p)
        },
    )
    .await;
    assert!(
        ready_pod
            .spec
            .as_ref()
            .and_then(|s| s.readiness_gates.as_ref())
            .is_some_and(|g| g
                .iter()
                .any(|g| g.condition_type == annotations::READINESS_GATE_CONDITION))
    );
    let held = pool_state.with_allocator(|a| a.is_free(&key, "item1", RequestProtocol::Tcp, port));
    assert_eq!(held, Ok(false));

    // The pod goes: its target leaves the cloud, the PortBinding is deleted and the port is free again.
    pods.delete(&pod_name, &DeleteParams::default().grace_period(0))
        .await
        .expect("delete pod");
    eventually(POLL, "target removed from fake-clb", || async {
        let cloud = read_cloud(&observer, &lb_ref).await.ok()?;
        let listener = cloud
            .iter()
            .find(|c| c.key == ListenerKey::single(Protocol::Tcp, port))?;
        listener.targets.is_empty().then_some(())
    })
    .await;
    eventually(POLL, "PortBinding gone", || async {
        matches!(portbindings.get_opt(&pod_name).await, Ok(None)).then_some(())
    })
    .await;
    eventually(POLL, "port free again", || async {
        let free =
            pool_state.with_allocator(|a| a.is_free(&key, "item1", RequestProtocol::Tcp, port));
        (free == Ok(true)).then_some(())
    })
    .await;

    // With a keep duration the binding outlives the pod: Cleaned (target gone, port still held), a same-name pod
    // recreated meanwhile gets the same port back, and after the duration the binding goes and the port is freed.
    let mut kept = pod("kept-0", "test-pool1 TCP 80");
    kept.annotations_mut()
        .insert(annotations::KEEP_DURATION.into(), KEEP.into());
    let first = pods
        .create(&PostParams::default(), &kept)
        .await
        .expect("kept pod admitted");
    let kept_port =
        annotations::parse_pool_bindings(&first.annotations()[annotations::POOL_BINDINGS])
            .expect("bindings JSON")[0]
            .start_port;
    eventually(POLL, "kept PortBinding Ready", || async {
        let pb = portbindings.get("kept-0").await.ok()?;
        (pb.status?.status == "Ready").then_some(())
    })
    .await;
    pods.delete("kept-0", &DeleteParams::default().grace_period(0))
        .await
        .expect("delete kept pod");
    let cleaned = eventually(
        POLL,
        "kept PortBinding Cleaned with an update time",
        || async {
            let status = portbindings.get("kept-0").await.ok()?.status?;
            (status.status == "Cleaned" && !status.update_time.is_empty()).then_some(status)
        },
    )
    .await;
    assert_eq!(cleaned.port_binding_type.as_deref(), Some("Pod"));
    let held =
        pool_state.with_allocator(|a| a.is_free(&key, "item1", RequestProtocol::Tcp, kept_port));
    assert_eq!(held, Ok(false), "a kept binding holds its port");
    eventually(POLL, "old pod gone", || async {
        matches!(pods.get_opt("kept-0").await, Ok(None)).then_some(())
    })
    .await;
    let again = pods
        .create(&PostParams::default(), &kept)
        .await
        .expect("recreated pod admitted");
    let again_port =
        annotations::parse_pool_bindings(&again.annotations()[annotations::POOL_BINDINGS])
            .expect("bindings JSON")[0]
            .start_port;
    assert_eq!(
        again_port, kept_port,
        "the recreated pod reuses the kept port"
    );
    eventually(POLL, "reused PortBinding Ready again", || async {
        let pb = portbindings.get("kept-0").await.ok()?;
        (pb.status?.status == "Ready").then_some(())
    })
    .await;
    pods.delete("kept-0", &DeleteParams::default().grace_period(0))
        .await
        .expect("delete recreated pod");
    eventually(POLL, "kept PortBinding Cleaned again", || async {
        let status = portbindings.get("kept-0").await.ok()?.status?;
        (status.status == "Cleaned").then_some(())
    })
    .await;
    eventually(
        POLL,
        "kept PortBinding deleted after the keep duration",
        || async { matches!(portbindings.get_opt("kept-0").await, Ok(None)).then_some(()) },
    )
    .await;
    eventually(POLL, "kept port free again", || async {
        let free = pool_state
            .with_allocator(|a| a.is_free(&key, "item1", RequestProtocol::Tcp, kept_port));
        (free == Ok(true)).then_some(())
    })
    .await;

    // Cleanup (the configurations are cluster-wide); the pool's finalizer needs the running reconciler.
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let _ = mutating
        .delete(&config_name, &DeleteParams::default())
        .await;
    let _ = pools.delete("test-pool1", &DeleteParams::default()).await;
    eventually(POLL, "pool gone", || async {
        matches!(pools.get_opt("test-pool1").await, Ok(None)).then_some(())
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
