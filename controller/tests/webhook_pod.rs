//! The pod mutating webhook through a real kube-apiserver: the runtime in-process (PortPool reconciler,
//! webhook on 127.0.0.1 with a self-signed certificate, registration on) against an in-process fake-clb.
//! A pool becomes Ready, a labelled namespace gets a pod with the port-pool annotations, and the pod the API
//! server stores carries the bindings annotation, `NotReady` status and the VIP env var; an unknown pool is
//! denied with the message.
//!
//! Ignored by default; `make test-cluster` runs it with `CLB_TEST_KUBECONFIG` set. Run by hand:
//! `target/debug/clb-harness cluster up --state-dir .work/pod-cluster` then
//! `CLB_TEST_KUBECONFIG=$PWD/.work/pod-cluster/kubeconfig cargo test -p clb-controller --test webhook_pod -- --ignored`.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clb_controller::annotations;
use clb_controller::api::PortPool;
use clb_controller::cloud::{ClientConfig, Credentials};
use clb_controller::ingress::Settings;
use clb_controller::runtime::{self, RuntimeConfig};
use clb_controller::sync::WorkerConfig;
use clb_controller::webhook::{CertSource, Registration, WebhookConfig};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const SECRET_ID: &str = "AKIDpodwebhook01";
const SECRET_KEY: &str = "pod-webhook-secret";
const REGION: &str = "ap-guangzhou";
const VIP: &str = "1.1.1.4";
const DEADLINE: Duration = Duration::from_secs(90);

/// `lb` differs per run: pools left behind by a failed run claim their LB's ports cluster-wide.
async fn start_fake(lb: &str) -> fake_clb::ServerHandle {
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
adminListen: 127.0.0.1:0
seed: 14
accounts:
  - secretId: {SECRET_ID}
    secretKey: {SECRET_KEY}
    appId: 1250000001
loadBalancers:
  - id: {lb}
    secretId: {SECRET_ID}
    region: {REGION}
    name: pod-webhook-test
    type: OPEN
    vips: [{VIP}]
limits:
  actionQps: 0
  taskDuration: 50ms
"#
    );
    let config = fake_clb::Config::from_yaml(&yaml, std::path::Path::new("pod-webhook-test.yaml"))
        .expect("fake-clb config");
    fake_clb::serve(config).await.expect("fake-clb starts")
}

/// Polls `probe` every 200 ms until it returns `Some`, failing with `what` at the deadline.
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

fn pod(name: &str, ports: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": {
            annotations::PORT_POOLS: "true",
            annotations::PORTS: ports,
        }},
        "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}]},
    }))
    .expect("pod")
}

const CONFIG_PREFIX: &str = "clb-podwh-test-";

async fn remove_stale_configurations(client: &kube::Client) {
    let params = kube::api::ListParams::default();
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    for c in mutating
        .list(&params)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        if let Some(name) = c.metadata.name.filter(|n| n.starts_with(CONFIG_PREFIX)) {
            let _ = mutating.delete(&name, &DeleteParams::default()).await;
        }
    }
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    for c in validating
        .list(&params)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        if let Some(name) = c.metadata.name.filter(|n| n.starts_with(CONFIG_PREFIX)) {
            let _ = validating.delete(&name, &DeleteParams::default()).await;
        }
    }
}

#[tokio::test]
#[ignore = "needs a cluster: CLB_TEST_KUBECONFIG (make test-cluster)"]
async fn pod_gets_a_pool_port_through_the_api_server() {
    let Some(kubeconfig) = std::env::var_os("CLB_TEST_KUBECONFIG").map(PathBuf::from) else {
        eprintln!("CLB_TEST_KUBECONFIG is not set; skipping");
        return;
    };
    let client = runtime::kube_client(Some(&kubeconfig))
        .await
        .expect("kubeconfig from CLB_TEST_KUBECONFIG");
    client
        .apiserver_version()
        .await
        .expect("the cluster named by CLB_TEST_KUBECONFIG is unreachable");

    // A failed earlier run leaves its configurations pointing at a dead server (failurePolicy Fail).
    remove_stale_configurations(&client).await;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let lb = format!("lb-{:08x}", millis & 0xffff_ffff);
    let fake = start_fake(&lb).await;
    let ns = format!("clb-podwh-{millis}");
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": ns,
                "labels": {"bcs-ingress-controller-inject": "true"}}}))
            .unwrap(),
        )
        .await
        .expect("create labelled namespace");

    let config_name = format!("{CONFIG_PREFIX}{ns}");
    let handle = runtime::run(RuntimeConfig {
        kubeconfig: Some(kubeconfig.clone()),
        cloud: ClientConfig {
            endpoint: format!("http://{}", fake.api_addr),
            default_region: REGION.into(),
            request_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(20),
            ..ClientConfig::default()
        },
        credentials: Credentials::new(SECRET_ID, SECRET_KEY).unwrap(),
        worker: WorkerConfig {
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(1),
            ..WorkerConfig::default()
        },
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        leader_election: None,
        watch_namespace: Some(ns.clone()),
        install_crds: true,
        instance: "podwh-test-0".into(),
        webhook: Some(WebhookConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            certs: CertSource::SelfSigned { hosts: Vec::new() },
            registration: Some(Registration {
                config_name: config_name.clone(),
                target: None,
            }),
            settings: Settings {
                default_region: REGION.into(),
                tcp_udp_port_reuse: false,
            },
            request_timeout: Duration::from_secs(8),
        }),
    })
    .await
    .expect("runtime starts");
    let addr = handle.webhook_addr().expect("webhook enabled");
    let pool_state = handle.pool_state();
    eventually("leader, cache synced and allocator rebuilt", || async {
        (handle.is_ready() && pool_state.is_ready()).then_some(())
    })
    .await;

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
    let pool: PortPool = serde_json::from_value(json!({
        "apiVersion": "networkextension.bkbcs.tencent.com/v1", "kind": "PortPool",
        "metadata": {"name": "test-pool1"},
        "spec": {"poolItems": [{"itemName": "item1", "loadBalancerIDs": [&lb], "protocol": "TCP",
            "startPort": 31000, "endPort": 31005}]},
    }))
    .unwrap();
    // The validating configuration may not be active yet; the pool is valid either way.
    eventually("create pool", || async {
        match pools.create(&PostParams::default(), &pool).await {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("create pool: {e}");
                None
            }
        }
    })
    .await;
    eventually("pool Ready", || async {
        let pool = pools.get("test-pool1").await.ok()?;
        (pool.status.as_ref()?.status.as_deref() == Some("Ready")).then_some(())
    })
    .await;
    eventually("allocator and item status know the Ready item", || async {
        let key = clb_controller::allocator::PoolKey::new(&ns, "test-pool1");
        let usage = pool_state.with_allocator(|a| a.usage(&key)).ok()?;
        let item = pool_state.item(&key, "item1")?;
        (usage.len() == 1 && item.status == "Ready" && !item.pool_item_load_balancers.is_empty())
            .then_some(())
    })
    .await;

    // An unknown pool is denied with the allocator's message; until the API server has picked up the
    // configuration such a pod is created unmutated, so delete it and try again under a new name.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let mut attempt = 0;
    let message = eventually("unknown pool denied by the webhook", || {
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
    eventually("pool gone", || async {
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
