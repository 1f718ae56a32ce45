//! Shared setup for the cluster integration tests (`#[ignore]`d, run with `CLB_TEST_KUBECONFIG`): the kube
//! client, an in-process fake-clb, the runtime's configuration, namespaces, polling and fake-clb admin calls.
#![allow(dead_code)]

use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clb_controller::annotations;
use clb_controller::api::PortPool;
use clb_controller::cloud::{ClbClient, ClientConfig, CloudMetrics, Credentials};
use clb_controller::ingress::Settings;
use clb_controller::manager::{self, RuntimeConfig};
use clb_controller::sync::{CloudListener, WorkerConfig};
use clb_controller::webhook::{CertSource, Registration, WebhookConfig};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use serde_json::{Value, json};

/// The kubeconfig named by `CLB_TEST_KUBECONFIG` and a client for it, or `None` (the test skips) when unset.
/// Panics when the cluster is unreachable: a set variable means the cluster is expected to be up.
pub async fn cluster() -> Option<(PathBuf, kube::Client)> {
    let Some(kubeconfig) = std::env::var_os("CLB_TEST_KUBECONFIG").map(PathBuf::from) else {
        eprintln!("CLB_TEST_KUBECONFIG is not set; skipping");
        return None;
    };
    let client = manager::kube_client(Some(&kubeconfig))
        .await
        .expect("kubeconfig from CLB_TEST_KUBECONFIG");
    client
        .apiserver_version()
        .await
        .expect("the cluster named by CLB_TEST_KUBECONFIG is unreachable");
    Some((kubeconfig, client))
}

/// How long and how often [`eventually`] polls.
#[derive(Clone, Copy, Debug)]
pub struct Poll {
    pub deadline: Duration,
    pub every: Duration,
}

/// Polls `probe` every `poll.every` until it returns `Some`, failing with `what` at the deadline.
pub async fn eventually<T, F, Fut>(poll: Poll, what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = probe().await {
            return v;
        }
        assert!(
            start.elapsed() < poll.deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(poll.every).await;
    }
}

/// Waits until the runtime leads, its caches are synced and the port allocator is rebuilt.
pub async fn wait_ready_with_pools(poll: Poll, handle: &manager::RuntimeHandle) {
    let pool_state = handle.pool_state();
    eventually(
        poll,
        "leader, cache synced and allocator rebuilt",
        || async { (handle.is_ready() && pool_state.is_ready()).then_some(()) },
    )
    .await;
}

/// One account and one load balancer on an in-process fake-clb.
pub struct FakeClb<'a> {
    pub seed: u64,
    pub secret_id: &'a str,
    pub secret_key: &'a str,
    pub region: &'a str,
    pub lb: &'a str,
    /// The LB's name, also the config's file stem (for error messages).
    pub name: &'a str,
    pub vip: &'a str,
    /// `None` keeps fake-clb's default quota.
    pub listeners_per_lb: Option<u32>,
}

impl FakeClb<'_> {
    /// Starts fake-clb with no QPS limit and 50 ms tasks, API and admin on 127.0.0.1 ports of its choosing.
    pub async fn start(&self) -> fake_clb::ServerHandle {
        let FakeClb {
            seed,
            secret_id,
            secret_key,
            region,
            lb,
            name,
            vip,
            listeners_per_lb,
        } = self;
        let quota = listeners_per_lb
            .map(|n| format!("  listenersPerLoadBalancer: {n}\n"))
            .unwrap_or_default();
        let yaml = format!(
            r#"
listen: 127.0.0.1:0
adminListen: 127.0.0.1:0
seed: {seed}
accounts:
  - secretId: {secret_id}
    secretKey: {secret_key}
    appId: 1250000001
loadBalancers:
  - id: {lb}
    secretId: {secret_id}
    region: {region}
    name: {name}
    type: OPEN
    vips: [{vip}]
limits:
  actionQps: 0
{quota}  taskDuration: 50ms
"#
        );
        let file = format!("{name}.yaml");
        let config = fake_clb::Config::from_yaml(&yaml, std::path::Path::new(&file))
            .expect("fake-clb config");
        fake_clb::serve(config).await.expect("fake-clb starts")
    }

    pub fn credentials(&self) -> Credentials {
        Credentials::new(self.secret_id, self.secret_key).unwrap()
    }

    /// The runtime's cloud configuration and credentials, and a separate client for the test's own reads of
    /// the cloud.
    pub fn clients(&self, fake: &fake_clb::ServerHandle) -> (ClientConfig, Credentials, ClbClient) {
        let cloud_config = self.cloud_config(fake);
        let credentials = self.credentials();
        let observer =
            ClbClient::new(cloud_config.clone(), &credentials, CloudMetrics::default()).unwrap();
        (cloud_config, credentials, observer)
    }

    /// A client configuration for this fake's API, with timeouts short enough for a test.
    pub fn cloud_config(&self, fake: &fake_clb::ServerHandle) -> ClientConfig {
        ClientConfig {
            endpoint: format!("http://{}", fake.api_addr),
            default_region: self.region.into(),
            request_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(20),
            ..ClientConfig::default()
        }
    }
}

/// Milliseconds since the epoch: unique names per run, so a failed run's leftovers do not collide.
pub fn unique_millis() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

/// Creates namespace `ns`, labelled for pod injection when `inject` is set.
pub async fn create_namespace(client: &kube::Client, ns: &str, inject: bool) -> Api<Namespace> {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let (body, what) = if inject {
        (
            json!({"metadata": {"name": ns, "labels": {"bcs-ingress-controller-inject": "true"}}}),
            "create labelled namespace",
        )
    } else {
        (json!({"metadata": {"name": ns}}), "create namespace")
    };
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(body).unwrap(),
        )
        .await
        .expect(what);
    namespaces
}

/// The runtime watching `ns` with fast retries, metrics on 127.0.0.1, no leader election and no webhook.
pub fn runtime_config(
    kubeconfig: &std::path::Path,
    cloud: ClientConfig,
    credentials: Credentials,
    ns: &str,
    instance: &str,
) -> RuntimeConfig {
    RuntimeConfig {
        kubeconfig: Some(kubeconfig.to_path_buf()),
        cloud,
        credentials,
        worker: WorkerConfig {
            retry_initial: Duration::from_millis(200),
            retry_max: Duration::from_secs(1),
            ..WorkerConfig::default()
        },
        metrics_addr: "127.0.0.1:0".parse().unwrap(),
        leader_election: None,
        watch_namespace: Some(ns.to_owned()),
        install_crds: true,
        port_leak_threshold: Duration::from_secs(300),
        port_reservation_timeout: Duration::from_secs(5),
        randhostport: None,
        instance: instance.into(),
        webhook: None,
    }
}

/// The webhook on 127.0.0.1 with a self-signed certificate, registered as `config_name`.
pub fn webhook_config(config_name: &str, region: &str) -> WebhookConfig {
    WebhookConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        certs: CertSource::SelfSigned { hosts: Vec::new() },
        registration: Some(Registration {
            config_name: config_name.to_owned(),
            target: None,
            randhostport: false,
        }),
        settings: Settings {
            default_region: region.into(),
            tcp_udp_port_reuse: false,
        },
        request_timeout: Duration::from_secs(8),
    }
}

/// Deletes webhook configurations named `prefix…`: a failed earlier run leaves them pointing at a dead server
/// (failurePolicy Fail).
pub async fn remove_stale_configurations(client: &kube::Client, prefix: &str) {
    let params = ListParams::default();
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    for c in mutating
        .list(&params)
        .await
        .map(|l| l.items)
        .unwrap_or_default()
    {
        if let Some(name) = c.metadata.name.filter(|n| n.starts_with(prefix)) {
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
        if let Some(name) = c.metadata.name.filter(|n| n.starts_with(prefix)) {
            let _ = validating.delete(&name, &DeleteParams::default()).await;
        }
    }
}

/// A pod asking the port-pool webhook for `ports`, optionally with the readiness gate.
pub fn pool_pod(name: &str, ports: &str, readiness_gate: bool) -> Pod {
    let mut pod_annotations = json!({
        annotations::PORT_POOLS: "true",
        annotations::PORTS: ports,
    });
    if readiness_gate {
        pod_annotations[annotations::READINESS_GATE] = json!("true");
    }
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "annotations": pod_annotations},
        "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80}]}]},
    }))
    .expect("pod")
}

/// PortPool `test-pool1`: item `item1`, TCP 31000–31005 on `lb`.
pub fn test_pool1(lb: &str) -> PortPool {
    serde_json::from_value(json!({
        "apiVersion": "networkextension.bkbcs.tencent.com/v1", "kind": "PortPool",
        "metadata": {"name": "test-pool1"},
        "spec": {"poolItems": [{"itemName": "item1", "loadBalancerIDs": [lb], "protocol": "TCP",
            "startPort": 31000, "endPort": 31005}]},
    }))
    .unwrap()
}

/// (ip, port, weight) of a cloud listener's targets.
pub fn targets_of(c: &CloudListener) -> Vec<(String, u16, u16)> {
    c.targets.iter().map(|t| (t.ip, t.port, t.weight)).collect()
}

/// fake-clb's control API.
fn admin_of(fake: &fake_clb::ServerHandle) -> fake_clb::admin_client::AdminClient {
    fake_clb::admin_client::AdminClient::for_addr(fake.admin_addr).expect("the admin address")
}

/// Installs fault rules on fake-clb's admin API.
pub async fn set_faults(fake: &fake_clb::ServerHandle, faults: Value) {
    let rules: Vec<fake_clb::admin_api::FaultRule> =
        serde_json::from_value(faults).expect("fault rules");
    admin_of(fake)
        .put_faults(&rules)
        .await
        .expect("installing the fault");
}

/// Clears every fault rule on fake-clb's admin API.
pub async fn clear_faults(fake: &fake_clb::ServerHandle) {
    admin_of(fake)
        .clear_faults()
        .await
        .expect("clearing the faults");
}
