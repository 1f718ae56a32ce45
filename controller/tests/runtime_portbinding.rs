//! The PortBinding controller through a real kube-apiserver: the runtime in-process (PortPool and PortBinding
//! reconcilers, pod webhook on 127.0.0.1) against an in-process fake-clb. A pool becomes Ready, an annotated pod
//! gets a port through the webhook, and once kwok runs it the PortBinding turns Ready, fake-clb's listener has the
//! pod IP as target and the pod says Ready (annotation and readiness condition). Deleting the pod removes the
//! target, deletes the PortBinding and frees the port.
//!
//! Ignored by default; `make test-cluster` runs it with `CLB_TEST_KUBECONFIG` set. Run by hand:
//! `target/debug/clb-harness cluster up --state-dir .work/pb-cluster` then
//! `CLB_TEST_KUBECONFIG=$PWD/.work/pb-cluster/kubeconfig cargo test -p clb-controller --test runtime_portbinding -- --ignored`.

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clb_controller::allocator::{PoolKey, RequestProtocol};
use clb_controller::annotations;
use clb_controller::api::{PortBinding, PortPool};
use clb_controller::cloud::{ClbClient, ClientConfig, CloudMetrics, Credentials, LbRef};
use clb_controller::ingress::Settings;
use clb_controller::runtime::{self, RuntimeConfig};
use clb_controller::sync::{CloudListener, ListenerKey, Protocol, WorkerConfig, read_cloud};
use clb_controller::webhook::{CertSource, Registration, WebhookConfig};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

const SECRET_ID: &str = "AKIDportbinding01";
const SECRET_KEY: &str = "portbinding-secret";
const REGION: &str = "ap-guangzhou";
const VIP: &str = "1.1.1.5";
const DEADLINE: Duration = Duration::from_secs(90);
/// Short enough to expire within the test, long enough to recreate the pod before it does.
const KEEP: &str = "10s";

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
    name: portbinding-test
    type: OPEN
    vips: [{VIP}]
limits:
  actionQps: 0
  taskDuration: 50ms
"#
    );
    let config = fake_clb::Config::from_yaml(&yaml, std::path::Path::new("portbinding-test.yaml"))
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
            annotations::READINESS_GATE: "true",
        }},
        "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}]},
    }))
    .expect("pod")
}

const CONFIG_PREFIX: &str = "clb-pbwh-test-";

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

fn targets_of(c: &CloudListener) -> Vec<(String, u16, u16)> {
    c.targets
        .iter()
        .map(|t| (t.ip.clone(), t.port, t.weight))
        .collect()
}

#[tokio::test]
#[ignore = "needs a cluster: CLB_TEST_KUBECONFIG (make test-cluster)"]
async fn pod_targets_follow_the_pod_through_its_portbinding() {
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

    remove_stale_configurations(&client).await;
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let lb = format!("lb-{:08x}", millis & 0xffff_ffff);
    let fake = start_fake(&lb).await;
    let cloud_config = ClientConfig {
        endpoint: format!("http://{}", fake.api_addr),
        default_region: REGION.into(),
        request_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_secs(20),
        ..ClientConfig::default()
    };
    let credentials = Credentials::new(SECRET_ID, SECRET_KEY).unwrap();
    let observer =
        ClbClient::new(cloud_config.clone(), &credentials, CloudMetrics::default()).unwrap();
    let lb_ref = LbRef::new(REGION, &lb);
    let ns = format!("clb-pb-{millis}");
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
        cloud: cloud_config,
        credentials,
        worker: WorkerConfig {
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(1),
            ..WorkerConfig::default()
        },
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        leader_election: None,
        watch_namespace: Some(ns.clone()),
        install_crds: true,
        instance: "pb-test-0".into(),
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
    let pool_state = handle.pool_state();
    eventually("leader, cache synced and allocator rebuilt", || async {
        (handle.is_ready() && pool_state.is_ready()).then_some(())
    })
    .await;

    let pools: Api<PortPool> = Api::namespaced(client.clone(), &ns);
    let pool: PortPool = serde_json::from_value(json!({
        "apiVersion": "networkextension.bkbcs.tencent.com/v1", "kind": "PortPool",
        "metadata": {"name": "test-pool1"},
        "spec": {"poolItems": [{"itemName": "item1", "loadBalancerIDs": [&lb], "protocol": "TCP",
            "startPort": 31000, "endPort": 31005}]},
    }))
    .unwrap();
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
    let key = PoolKey::new(&ns, "test-pool1");
    eventually("pool Ready and known to the allocator", || async {
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
    let (pod_name, created) = eventually("annotated pod admitted and mutated", || {
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

    let pod_ip = eventually("pod Running with an IP", || async {
        let p = pods.get(&pod_name).await.ok()?;
        let status = p.status?;
        (status.phase.as_deref() == Some("Running"))
            .then_some(())
            .and(status.pod_ip.filter(|ip| !ip.is_empty()))
    })
    .await;

    let portbindings: Api<PortBinding> = Api::namespaced(client.clone(), &ns);
    eventually("PortBinding Ready", || async {
        let pb = portbindings.get(&pod_name).await.ok()?;
        (pb.status?.status == "Ready").then_some(())
    })
    .await;
    let cloud_target = eventually("fake-clb listener has the pod as target", || async {
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
    let ready_pod =
        eventually("pod annotation and readiness condition Ready", || async {
            let p = pods.get(&pod_name).await.ok()?;
            let annotated =
                p.annotations().get(annotations::STATUS).map(String::as_str) == Some("Ready");
            let condition =
                p.status.as_ref()?.conditions.as_ref()?.iter().any(|c| {
                    c.type_ == annotations::READINESS_GATE_CONDITION && c.status == "True"
                });
            (annotated && condition).then_some(p)
        })
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
    eventually("target removed from fake-clb", || async {
        let cloud = read_cloud(&observer, &lb_ref).await.ok()?;
        let listener = cloud
            .iter()
            .find(|c| c.key == ListenerKey::single(Protocol::Tcp, port))?;
        listener.targets.is_empty().then_some(())
    })
    .await;
    eventually("PortBinding gone", || async {
        matches!(portbindings.get_opt(&pod_name).await, Ok(None)).then_some(())
    })
    .await;
    eventually("port free again", || async {
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
    eventually("kept PortBinding Ready", || async {
        let pb = portbindings.get("kept-0").await.ok()?;
        (pb.status?.status == "Ready").then_some(())
    })
    .await;
    pods.delete("kept-0", &DeleteParams::default().grace_period(0))
        .await
        .expect("delete kept pod");
    let cleaned = eventually("kept PortBinding Cleaned with an update time", || async {
        let status = portbindings.get("kept-0").await.ok()?.status?;
        (status.status == "Cleaned" && !status.update_time.is_empty()).then_some(status)
    })
    .await;
    assert_eq!(cleaned.port_binding_type.as_deref(), Some("Pod"));
    let held =
        pool_state.with_allocator(|a| a.is_free(&key, "item1", RequestProtocol::Tcp, kept_port));
    assert_eq!(held, Ok(false), "a kept binding holds its port");
    eventually("old pod gone", || async {
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
    eventually("reused PortBinding Ready again", || async {
        let pb = portbindings.get("kept-0").await.ok()?;
        (pb.status?.status == "Ready").then_some(())
    })
    .await;
    pods.delete("kept-0", &DeleteParams::default().grace_period(0))
        .await
        .expect("delete recreated pod");
    eventually("kept PortBinding Cleaned again", || async {
        let status = portbindings.get("kept-0").await.ok()?.status?;
        (status.status == "Cleaned").then_some(())
    })
    .await;
    eventually(
        "kept PortBinding deleted after the keep duration",
        || async { matches!(portbindings.get_opt("kept-0").await, Ok(None)).then_some(()) },
    )
    .await;
    eventually("kept port free again", || async {
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
    eventually("pool gone", || async {
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
