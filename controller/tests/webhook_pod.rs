//! The pod mutating webhook through a real kube-apiserver: the runtime in-process (PortPool reconciler,
//! webhook on 127.0.0.1 with a self-signed certificate, registration on) against an in-process fake-clb.
//! A pool becomes Ready, a labelled namespace gets a pod with the port-pool annotations, and the pod the API
//! server stores carries the bindings annotation, `NotReady` status and the VIP env var; an unknown pool is
//! denied with the message.
//!
//! Ignored by default; `make test-cluster` runs it with `CLB_TEST_KUBECONFIG` set. Run by hand:
//! `target/debug/clb-harness cluster up --state-dir .work/pod-cluster` then
//! `CLB_TEST_KUBECONFIG=$PWD/.work/pod-cluster/kubeconfig cargo test -p clb-controller --test webhook_pod -- --ignored`.

mod support;

use std::time::Duration;

use clb_controller::annotations;
use clb_controller::api::PortPool;
use clb_controller::manager::{self, RuntimeConfig};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, PostParams};
use support::{FakeClb, Poll, eventually};

const REGION: &str = "ap-guangzhou";
const VIP: &str = "1.1.1.4";
const POLL: Poll = Poll {
    deadline: Duration::from_secs(90),
    every: Duration::from_millis(200),
};
const CONFIG_PREFIX: &str = "clb-podwh-test-";

/// `lb` differs per run: pools left behind by a failed run claim their LB's ports cluster-wide.
fn fake(lb: &str) -> FakeClb<'_> {
    FakeClb {
        seed: 14,
        secret_id: "AKIDpodwebhook01",
        secret_key: "pod-webhook-secret",
        region: REGION,
        lb,
        name: "pod-webhook-test",
        vip: VIP,
        listeners_per_lb: None,
    }
}

fn pod(name: &str, ports: &str) -> Pod {
    support::pool_pod(name, ports, false)
}

#[tokio::test]
#[ignore = "needs a cluster: CLB_TEST_KUBECONFIG (make test-cluster)"]
async fn pod_gets_a_pool_port_through_the_api_server() {
    let Some((kubeconfig, client)) = support::cluster().await else {
        return;
    };

    // A failed earlier run leaves its configurations pointing at a dead server (failurePolicy Fail).
    support::remove_stale_configurations(&client, CONFIG_PREFIX).await;
    let millis = support::unique_millis();
    let lb = format!("lb-{:08x}", millis & 0xffff_ffff);
    let fake_clb = fake(&lb);
    let fake = fake_clb.start().await;
    let ns = format!("clb-podwh-{millis}");
    let namespaces = support::create_namespace(&client, &ns, true).await;

    let config_name = format!("{CONFIG_PREFIX}{ns}");
    let handle = manager::run(RuntimeConfig {
        webhook: Some(support::webhook_config(&config_name, REGION)),
        ..support::runtime_config(
            &kubeconfig,
            fake_clb.cloud_config(&fake),
            fake_clb.credentials(),
            &ns,
            "podwh-test-0",
        )
    })
    .await
    .expect("runtime starts");
    let addr = handle.webhook_addr().expect("webhook enabled");
    support::wait_ready_with_pools(POLL, &handle).await;
    let pool_state = handle.pool_state();

    // Registered: pods CREATE in labelled namespaces, our address.
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    let registered = mutating
        .get(&config_name)
        .await
        .expect("mutating configuration applied");
    let hooks = registered.webhooks.unwrap_or_default();
    assert_eq!(hooks.len(), 1);
    assert_eq!(
        hooks[0].client_config.url.as_deref(),
        Some(format!("https://{addr}/portpool/v1/mutate").as_str())
    );

    let pools: Api<PortPool> = Api::namespaced(client.clone(), &ns);
    let pool = support::test_pool1(&lb);
    // The validating configuration may not be active yet; the pool is valid either way.
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
    eventually(POLL, "pool Ready", || async {
        let pool = pools.get("test-pool1").await.ok()?;
        (pool.status.as_ref()?.status.as_deref() == Some("Ready")).then_some(())
    })
    .await;
    eventually(
        POLL,
        "allocator and item status know the Ready item",
        || async {
            let key = clb_controller::allocator::PoolKey::new(&ns, "test-pool1");
            let usage = pool_state.with_allocator(|a| a.usage(&key)).ok()?;
            let item = pool_state.item(&key, "item1")?;
            (usage.len() == 1
                && item.status == "Ready"
                && !item.pool_item_load_balancers.is_empty())
            .then_some(())
        },
    )
    .await;

    // An unknown pool is denied with the allocator's message; until the API server has picked up the
    // configuration such a pod is created unmutated, so delete it and try again under a new name.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut attempt = 0;
    let message = eventually(POLL, "unknown pool denied by the webhook", || {
        attempt += 1;
        let name = format!("unknown-{attempt}");
        let pods = pods.clone();
        async move {
            match pods
                .create(&PostParams::default(), &pod(&name, "nope TCP 80"))
                .await
            {
                Ok(_) => {
                    let _ = pods
                        .delete(&name, &DeleteParams::default().grace_period(0))
                        .await;
                    None
                }
                Err(kube::Error::Api(status)) => Some(status.message),
                Err(e) => panic!("unexpected error: {e}"),
            }
        }
    })
    .await;
    assert!(
        message.contains(&format!("line 1: port pool {ns}/nope not found")),
        "{message}"
    );

    // The webhook is active now: a good pod is stored mutated.
    let created = pods
        .create(&PostParams::default(), &pod("nginx-0", "test-pool1 TCP 80"))
        .await
        .expect("annotated pod admitted");
    let annotations = created.metadata.annotations.clone().unwrap_or_default();
    assert_eq!(
        annotations.get(annotations::STATUS).map(String::as_str),
        Some("NotReady")
    );
    let bindings = annotations::parse_pool_bindings(
        annotations
            .get(annotations::POOL_BINDINGS)
            .expect("bindings annotation"),
    )
    .expect("bindings JSON");
    assert_eq!(bindings.len(), 1);
    let b = &bindings[0];
    assert_eq!(
        (
            b.pool_namespace.as_str(),
            b.pool_name.as_str(),
            b.pool_item_name.as_str()
        ),
        (ns.as_str(), "test-pool1", "item1")
    );
    assert_eq!((b.start_port, b.end_port, b.rs_start_port), (31000, 0, 80));
    assert_eq!(b.load_balancer_ids, vec![lb.clone()]);
    assert_eq!(b.pool_item_load_balancers[0].ips, [VIP]);
    let env: Vec<(String, Option<String>)> = created
        .spec
        .as_ref()
        .and_then(|s| s.containers[0].env.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|e| (e.name, e.value))
        .collect();
    // `vip[,vip…]:port`: the LB's IPs then its domain (fake-clb gives every LB one).
    let expected = annotations::env_var_value(b);
    assert!(
        expected.starts_with(VIP) && expected.ends_with(":31000"),
        "{expected}"
    );
    assert_eq!(
        env,
        [(
            "BCS_PORTPOOL_PORT_VIPLIST_TCP_80".to_owned(),
            Some(expected)
        )]
    );
    // The port is held in the shared allocator.
    let key = clb_controller::allocator::PoolKey::new(&ns, "test-pool1");
    let free = pool_state.with_allocator(|a| {
        a.is_free(
            &key,
            "item1",
            clb_controller::allocator::RequestProtocol::Tcp,
            31000,
        )
    });
    assert_eq!(free, Ok(false));

    // Cleanup (the configurations are cluster-wide); the pool's finalizer needs the running reconciler.
    let _ = pods
        .delete("nginx-0", &DeleteParams::default().grace_period(0))
        .await;
    let _ = mutating
        .delete(&config_name, &DeleteParams::default())
        .await;
    // The validating webhook refuses the deletion while the pod's PortBinding is being cleaned: retry.
    eventually(POLL, "pool gone", || async {
        let _ = pools.delete("test-pool1", &DeleteParams::default()).await;
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
