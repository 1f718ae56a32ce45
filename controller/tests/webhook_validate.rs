//! The admission webhooks through a real kube-apiserver: the runtime in-process with the webhook on
//! 127.0.0.1 (self-signed certificate, registration on), PortPools and Ingresses written through the API.
//!
//! Ignored by default; `make test-cluster` runs it with `CLB_TEST_KUBECONFIG` set. Run by hand:
//! `target/debug/clb-harness cluster up --state-dir .work/wh-cluster` then
//! `CLB_TEST_KUBECONFIG=$PWD/.work/wh-cluster/kubeconfig cargo test -p clb-controller --test webhook_validate -- --ignored`.

mod support;

use std::time::Duration;

use clb_controller::api::{Ingress, PortBinding, PortPool};
use clb_controller::cloud::ClientConfig;
use clb_controller::manager::{self, RuntimeConfig};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use support::{FakeClb, Poll, eventually};

const REGION: &str = "ap-guangzhou";
const LB: &str = "lb-wh000001";
const POLL: Poll = Poll {
    deadline: Duration::from_secs(60),
    every: Duration::from_millis(100),
};
const FAKE: FakeClb<'static> = FakeClb {
    seed: 12,
    secret_id: "AKIDwebhooktest01",
    secret_key: "webhook-test-secret",
    region: REGION,
    lb: LB,
    name: "webhook-test",
    vip: "1.1.1.2",
    // The PortPool reconciler creates the pool's listeners (up to 200 here); within the quota they are
    // created and deleted quickly, so the pool is gone soon after its deletion.
    listeners_per_lb: Some(500),
};

fn pool(name: &str, items: Value) -> PortPool {
    serde_json::from_value(json!({
        "apiVersion": "networkextension.bkbcs.tencent.com/v1",
        "kind": "PortPool",
        "metadata": {"name": name},
        "spec": {"poolItems": items},
    }))
    .expect("pool")
}

fn item(name: &str, start: i32, end: i32) -> Value {
    json!({"itemName": name, "loadBalancerIDs": [LB], "protocol": "TCP", "startPort": start, "endPort": end})
}

fn ingress(name: &str, port: i32) -> Ingress {
    serde_json::from_value(json!({
        "apiVersion": "networkextension.bkbcs.tencent.com/v1",
        "kind": "Ingress",
        "metadata": {"name": name, "annotations": {"networkextension.bkbcs.tencent.com/lbids": LB}},
        "spec": {"rules": [{"port": port, "protocol": "TCP",
            "services": [{"serviceName": "svc", "serviceNamespace": "default", "servicePort": 80}]}]},
    }))
    .expect("ingress")
}

/// The denial message of a write, or `None` if it was admitted.
fn denial<T>(result: Result<T, kube::Error>) -> Option<String> {
    match result {
        Ok(_) => None,
        Err(kube::Error::Api(status)) => Some(status.message),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[tokio::test]
#[ignore = "needs a cluster: CLB_TEST_KUBECONFIG (make test-cluster)"]
async fn portpool_and_ingress_admission_through_the_api_server() {
    let Some((kubeconfig, client)) = support::cluster().await else {
        return;
    };

    let fake = FAKE.start().await;
    let ns = format!("wh-{}", std::process::id());
    let namespaces = support::create_namespace(&client, &ns, false).await;

    let config_name = format!("clb-webhook-test-{ns}");
    // fake-clb's address with the client's default timeouts.
    let cloud = ClientConfig {
        endpoint: format!("http://{}", fake.api_addr),
        default_region: REGION.into(),
        ..ClientConfig::default()
    };
    let handle = manager::run(RuntimeConfig {
        webhook: Some(support::webhook_config(&config_name, REGION)),
        ..support::runtime_config(&kubeconfig, cloud, FAKE.credentials(), &ns, "wh-test-0")
    })
    .await
    .expect("runtime starts");
    let addr = handle.webhook_addr().expect("webhook enabled");

    // Registered with our address and a CA that verifies the server.
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    let registered = configs
        .get(&config_name)
        .await
        .expect("configuration applied");
    let hooks = registered.webhooks.unwrap_or_default();
    assert_eq!(
        hooks.len(),
        4,
        "Ingress, PortPool, PortPool delete, pod reservations"
    );
    assert_eq!(
        hooks[3].client_config.url.as_deref(),
        Some(format!("https://{addr}/portpool/v1/validate-pod").as_str())
    );
    let url = hooks[0].client_config.url.clone().unwrap_or_default();
    assert_eq!(url, format!("https://{addr}/ingress/v1/validate"));
    let ca = hooks[0]
        .client_config
        .ca_bundle
        .clone()
        .expect("caBundle")
        .0;
    let https = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let health = https
        .get(format!("https://{addr}/healthz"))
        .send()
        .await
        .expect("healthz over TLS with the registered CA");
    assert_eq!(health.status(), 200);

    let pools: Api<PortPool> = Api::namespaced(client.clone(), &ns);
    let ingresses: Api<Ingress> = Api::namespaced(client.clone(), &ns);
    let bindings: Api<PortBinding> = Api::namespaced(client.clone(), &ns);
    let post = PostParams::default();

    // The API server picks up a new configuration asynchronously: retry until the webhook answers.
    let overlapping = pool(
        "overlapping",
        json!([item("a", 30000, 30100), item("b", 30050, 30150)]),
    );
    let message = eventually(POLL, "the overlapping pool rejected by the webhook", || {
        let pools = pools.clone();
        let overlapping = overlapping.clone();
        async move {
            match denial(pools.create(&PostParams::default(), &overlapping).await) {
                Some(message) => Some(message),
                None => {
                    pools
                        .delete("overlapping", &DeleteParams::default())
                        .await
                        .expect("delete the pool admitted before the webhook was active");
                    None
                }
            }
        }
    })
    .await;
    assert!(
        message.contains(&format!(
            "spec.poolItems[1]: ports 30050-30149 on {REGION}:{LB} overlap spec.poolItems[0] (ports 30000-30099)"
        )),
        "{message}"
    );

    // A valid pool is accepted; endPort grows, never shrinks.
    let created = pools
        .create(&post, &pool("pool", json!([item("a", 30000, 30100)])))
        .await
        .expect("a valid pool is admitted");
    // Merge patches without a resourceVersion: the PortPool reconciler writes the pool (finalizer, status)
    // concurrently, so a replace of a stale copy could fail with a conflict instead of reaching the webhook.
    assert_eq!(created.spec.pool_items[0].end_port, 30100);
    let with_end = |end: i32| Patch::Merge(json!({"spec": {"poolItems": [item("a", 30000, end)]}}));
    pools
        .patch("pool", &PatchParams::default(), &with_end(30200))
        .await
        .expect("growing endPort is admitted");
    let message = denial(
        pools
            .patch("pool", &PatchParams::default(), &with_end(30150))
            .await,
    )
    .expect("shrinking is denied");
    assert!(
        message.contains("spec.poolItems[0].endPort: may only grow (30200 → 30150)"),
        "{message}"
    );

    // An Ingress on the pool's ports of the same CLB is denied; elsewhere it is admitted.
    let message = denial(ingresses.create(&post, &ingress("clash", 30010)).await)
        .expect("conflicting ingress is denied");
    assert!(
        message.contains(&format!(
            "spec.rules[0]: port conflict on {REGION}:{LB} port 30010: Ingress {ns}/clash (spec.rules[0], TCP port 30010) overlaps PortPool {ns}/pool"
        )),
        "{message}"
    );
    ingresses
        .create(&post, &ingress("fine", 8080))
        .await
        .expect("an ingress off the pool's ports is admitted");

    // Deleting a pool that still has bindings is denied with their names. The binding has no pod, so the
    // PortBinding controller would clean and delete it at once; the keep duration holds it for the test.
    let binding: PortBinding = serde_json::from_value(json!({
        "apiVersion": "networkextension.bkbcs.tencent.com/v1",
        "kind": "PortBinding",
        "metadata": {"name": "pod-0",
            "annotations": {"keepduration.portbinding.bkbcs.tencent.com": "1h"}},
        "spec": {"portBindingList": [{
            "poolName": "pool", "poolNamespace": ns, "poolItemName": "a",
            "protocol": "TCP", "startPort": 30000, "endPort": 0, "rsStartPort": 8080,
        }]},
    }))
    .unwrap();
    bindings.create(&post, &binding).await.expect("binding");
    let message = denial(pools.delete("pool", &DeleteParams::default()).await)
        .expect("deleting a bound pool is denied");
    assert!(
        message.contains(&format!(
            "port pool {ns}/pool still has port bindings: {ns}/pod-0 (a TCP 30000)"
        )),
        "{message}"
    );
    bindings
        .delete("pod-0", &DeleteParams::default())
        .await
        .expect("delete binding");
    pools
        .delete("pool", &DeleteParams::default())
        .await
        .expect("an unbound pool may be deleted");
    // The PortPool reconciler removes its finalizer once the pool's listeners are gone; a pool left behind
    // would conflict with the next run's pool on the same CLB ports.
    eventually(POLL, "the deleted pool is gone", || async {
        matches!(pools.get_opt("pool").await, Ok(None)).then_some(())
    })
    .await;

    // Unregister first so nothing else in the cluster depends on this process: registration applies the
    // validating configuration and the pod webhook's mutating one, and a dead pod webhook would refuse every
    // pod in labelled namespaces of later tests.
    configs
        .delete(&config_name, &DeleteParams::default())
        .await
        .expect("delete the webhook configuration");
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    mutating
        .delete(&config_name, &DeleteParams::default())
        .await
        .expect("delete the pod webhook configuration");
    handle.shutdown().await.expect("runtime stops");
    let _ = namespaces.delete(&ns, &DeleteParams::default()).await;
}
