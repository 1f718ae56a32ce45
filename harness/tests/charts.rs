//! The Helm charts against a real API server (`make test-cluster`; `make test-charts` renders them first).
//!
//! * Every rendered manifest set (default and non-default values of both charts) is server-side applied to
//!   the cluster in CLB_TEST_KUBECONFIG and read back: the API server accepts the CRDs, RBAC, webhook
//!   configurations, Services and Deployments. Everything applied (but the shared CRDs) is deleted again, even
//!   when a check fails: the chart's webhook configurations fail closed and no real pod serves them here.
//! * The Helm-generated webhook certificate works with the controller: the real `clb-controller` serves its
//!   webhook with the rendered key pair, and a client that trusts only the rendered caBundle reaches it under
//!   the Service's DNS name (the name the API server uses).
//! * The chart's webhook configurations say what the controller registers itself (`--webhook-register`).
//! * fake-clb starts with the config the fake-clb chart renders into its ConfigMap.
//!
//! CLB_TEST_CHARTS_DIR holds `<chart>-<values>.yaml` from `helm template` (see the Makefile).

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use clb_controller::webhook::WebhookTarget;
use clb_controller::webhook::register::{mutating_webhook_configuration, webhook_configuration};
use clb_harness::env::ControllerIdentity;
use clb_harness::env::identity;
use futures::FutureExt as _;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::DeleteParams;
use serde_json::Value;

/// Rendered manifest sets the API server must accept (cert-manager and ServiceMonitor variants are only
/// rendered: this cluster has neither CRD).
const ACCEPTED: [&str; 6] = [
    "clb-controller-default",
    "clb-controller-nondefault",
    "clb-controller-controller-certs",
    "fake-clb-default",
    "fake-clb-nondefault",
    "fake-clb-kind",
];

fn charts_dir() -> PathBuf {
    PathBuf::from(
        std::env::var("CLB_TEST_CHARTS_DIR")
            .expect("CLB_TEST_CHARTS_DIR must name the rendered charts (make test-charts)"),
    )
}

fn rendered(name: &str) -> Vec<Value> {
    let path = charts_dir().join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run make test-charts)", path.display()));
    clb_harness::kubeops::parse_documents(&text, &path.display().to_string()).unwrap()
}

fn find<'a>(objects: &'a [Value], kind: &str) -> &'a Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} rendered"))
}

async fn client() -> kube::Client {
    clb_harness::install_crypto_provider();
    let path = std::env::var("CLB_TEST_KUBECONFIG")
        .expect("CLB_TEST_KUBECONFIG must point at a running cluster (make test-cluster)");
    clb_harness::cluster::client_from_kubeconfig(Path::new(&path))
        .await
        .unwrap()
}

/// Deletes what `apply_all` created, CRDs excepted (the other cluster tests use them).
async fn delete_all(client: &kube::Client, objects: &[Value]) {
    for object in objects.iter().rev() {
        let kind = object["kind"].as_str().unwrap_or_default();
        if kind == "CustomResourceDefinition" {
            continue;
        }
        let name = object["metadata"]["name"].as_str().unwrap_or_default();
        let api = clb_harness::kubeops::api_for(
            client,
            object["apiVersion"].as_str().unwrap_or_default(),
            kind,
            object["metadata"]["namespace"].as_str(),
            "default",
        )
        .await
        .unwrap();
        match api.delete(name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => panic!("deleting {kind} {name}: {e}"),
        }
    }
}

async fn check_accepted(client: &kube::Client, name: &str, objects: &[Value]) {
    let applied = clb_harness::kubeops::apply_all(client, objects, "default")
        .await
        .unwrap_or_else(|e| panic!("{name}: the API server refused the chart: {e}"));
    assert_eq!(applied.len(), objects.len(), "{name}: {applied:?}");
    for object in objects {
        let kind = object["kind"].as_str().unwrap();
        let object_name = object["metadata"]["name"].as_str().unwrap();
        let api = clb_harness::kubeops::api_for(
            client,
            object["apiVersion"].as_str().unwrap(),
            kind,
            object["metadata"]["namespace"].as_str(),
            "default",
        )
        .await
        .unwrap();
        let stored = api.get(object_name).await.unwrap_or_else(|e| {
            panic!("{name}: {kind} {object_name} not readable after apply: {e}")
        });
        // What the chart labels survives the round trip (nothing was dropped or defaulted away).
        if let Some(labels) = object["metadata"]["labels"].as_object() {
            for (key, value) in labels {
                assert_eq!(
                    stored.metadata.labels.as_ref().and_then(|l| l.get(key)),
                    value.as_str().map(str::to_owned).as_ref(),
                    "{name}: {kind} {object_name} label {key}"
                );
            }
        }
    }
    eprintln!("{name}: {} object(s) accepted", applied.len());
}

#[tokio::test]
#[ignore = "needs a cluster and the rendered charts: make test-cluster"]
async fn rendered_charts_are_accepted_by_the_api_server() {
    let client = client().await;
    for name in ACCEPTED {
        let objects = rendered(name);
        let outcome = std::panic::AssertUnwindSafe(check_accepted(&client, name, &objects))
            .catch_unwind()
            .await;
        delete_all(&client, &objects).await;
        if let Err(panic) = outcome {
            std::panic::resume_unwind(panic);
        }
    }
}

#[test]
#[ignore = "needs the rendered charts: make test-cluster"]
fn default_values_deploy_two_replicas_that_are_ready_only_as_leader() {
    let objects = rendered("clb-controller-default");
    let deployment = find(&objects, "Deployment");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        "100%"
    );
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for wanted in [
        "--leader-election=true",
        "--election-namespace=clb-system",
        "--webhook-addr=0.0.0.0:9443",
        "--webhook-cert-file=/etc/clb-webhook/tls.crt",
        "--credentials-dir=/etc/clb-credentials",
    ] {
        assert!(args.contains(&wanted), "{wanted} missing from {args:?}");
    }
    assert!(!args.iter().any(|a| a.starts_with("--webhook-register")));
    // The webhook Service selects the controller pods; only Ready (leader) ones become endpoints.
    let service = objects
        .iter()
        .find(|o| o["kind"] == "Service" && o["metadata"]["name"] == "clb-controller-webhook")
        .unwrap();
    assert_eq!(
        service["spec"]["selector"],
        deployment["spec"]["selector"]["matchLabels"]
    );
    assert!(service["spec"]["publishNotReadyAddresses"].is_null());
}

/// The typed webhooks of a rendered configuration, without caBundle (random per render).
fn rendered_webhooks<T: serde::de::DeserializeOwned>(objects: &[Value], kind: &str) -> T {
    serde_json::from_value(find(objects, kind).clone()).unwrap()
}

#[test]
#[ignore = "needs the rendered charts: make test-cluster"]
fn chart_webhooks_are_the_ones_the_controller_registers() {
    let objects = rendered("clb-controller-default");
    let target = WebhookTarget::Service {
        namespace: "clb-system".into(),
        name: "clb-controller-webhook".into(),
        port: 443,
    };
    let mut chart: ValidatingWebhookConfiguration =
        rendered_webhooks(&objects, "ValidatingWebhookConfiguration");
    let mut ours = webhook_configuration("clb-controller", &target, "");
    for hook in chart.webhooks.iter_mut().flatten() {
        assert!(
            hook.client_config.ca_bundle.is_some(),
            "{}: no caBundle",
            hook.name
        );
        hook.client_config.ca_bundle = None;
    }
    for hook in ours.webhooks.iter_mut().flatten() {
        hook.client_config.ca_bundle = None;
    }
    assert_eq!(chart.webhooks, ours.webhooks);

    let mut chart: MutatingWebhookConfiguration =
        rendered_webhooks(&objects, "MutatingWebhookConfiguration");
    let mut ours = mutating_webhook_configuration("clb-controller", &target, "");
    for hook in chart.webhooks.iter_mut().flatten() {
        assert!(
            hook.client_config.ca_bundle.is_some(),
            "{}: no caBundle",
            hook.name
        );
        hook.client_config.ca_bundle = None;
    }
    for hook in ours.webhooks.iter_mut().flatten() {
        hook.client_config.ca_bundle = None;
    }
    assert_eq!(chart.webhooks, ours.webhooks);
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn sibling(name: &str) -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_clb-harness"))
        .parent()
        .unwrap()
        .join(name)
}

/// Kills the child when dropped, so a failed assertion leaves no process behind.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
#[ignore = "needs a cluster and the rendered charts: make test-cluster"]
async fn controller_serves_the_helm_generated_certificate_under_the_service_name() {
    let objects = rendered("clb-controller-default");
    let secret = objects
        .iter()
        .find(|o| o["kind"] == "Secret" && o["type"] == "kubernetes.io/tls")
        .expect("no webhook TLS Secret rendered");
    let decode = |key: &str| {
        base64::engine::general_purpose::STANDARD
            .decode(secret["data"][key].as_str().unwrap())
            .unwrap()
    };
    let ca_bundle = base64::engine::general_purpose::STANDARD
        .decode(
            find(&objects, "ValidatingWebhookConfiguration")["webhooks"][0]["clientConfig"]
                ["caBundle"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(
        ca_bundle,
        decode("ca.crt"),
        "caBundle is not the Secret's CA"
    );

    let dir = tempfile::tempdir().unwrap();
    // The controller runs as a ServiceAccount without any grant: its webhook server starts all the same, and
    // it cannot touch what other tests left in the cluster.
    let client = client().await;
    let identity = ControllerIdentity::parse("clb-chart-probe/no-rights", Vec::new()).unwrap();
    let account = serde_json::json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": identity.name, "namespace": identity.namespace},
    });
    clb_harness::kubeops::apply_all(&client, &[account], "default")
        .await
        .unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    let admin = PathBuf::from(std::env::var("CLB_TEST_KUBECONFIG").unwrap());
    identity::write_kubeconfig(&client, &admin, &identity, &kubeconfig)
        .await
        .unwrap();
    std::fs::write(dir.path().join("tls.crt"), decode("tls.crt")).unwrap();
    std::fs::write(dir.path().join("tls.key"), decode("tls.key")).unwrap();
    let (metrics, webhook) = (free_port(), free_port());
    let log = std::fs::File::create(dir.path().join("controller.log")).unwrap();
    let child = Command::new(sibling("clb-controller"))
        .args([
            "run",
            &format!("--kubeconfig={}", kubeconfig.display()),
            "--region=ap-guangzhou",
            // Never called: the test only talks to the webhook server.
            "--clb-endpoint=http://127.0.0.1:9",
            "--leader-election=false",
            &format!("--metrics-addr=127.0.0.1:{metrics}"),
            &format!("--webhook-addr=127.0.0.1:{webhook}"),
            &format!(
                "--webhook-cert-file={}",
                dir.path().join("tls.crt").display()
            ),
            &format!(
                "--webhook-key-file={}",
                dir.path().join("tls.key").display()
            ),
        ])
        .env("TENCENTCLOUD_SECRET_ID", "AKIDexample")
        .env("TENCENTCLOUD_SECRET_KEY", "example")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut child = Killed(child);

    // The API server calls https://<service>.<namespace>.svc:<port>/...; resolve that name to our process.
    let host = "clb-controller-webhook.clb-system.svc";
    let https = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca_bundle).unwrap()])
        .resolve(host, SocketAddr::from((Ipv4Addr::LOCALHOST, webhook)))
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let last = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            let log = std::fs::read_to_string(dir.path().join("controller.log")).unwrap();
            panic!("clb-controller exited ({status}) with the chart's certificate:\n{log}");
        }
        let result = https
            .get(format!("https://{host}:{webhook}/healthz"))
            .send()
            .await;
        match result {
            Ok(response) if response.status().is_success() => break None,
            other => {
                if Instant::now() > deadline {
                    break Some(format!("{other:?}"));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(last.is_none(), "webhook not reachable over TLS: {last:?}");

    // A name outside the certificate is refused: the SANs, not just the CA, are what make it work.
    let wrong = reqwest::Client::builder()
        .no_proxy()
        .tls_certs_only([reqwest::Certificate::from_pem(&ca_bundle).unwrap()])
        .resolve(
            "other.clb-system.svc",
            SocketAddr::from((Ipv4Addr::LOCALHOST, webhook)),
        )
        .build()
        .unwrap();
    let refused = wrong
        .get(format!("https://other.clb-system.svc:{webhook}/healthz"))
        .send()
        .await;
    assert!(refused.is_err(), "a foreign name was accepted: {refused:?}");
}

#[test]
#[ignore = "needs the rendered charts: make test-cluster"]
fn fake_clb_starts_with_the_rendered_config() {
    for name in ["fake-clb-default", "fake-clb-nondefault", "fake-clb-kind"] {
        let objects = rendered(name);
        let config = find(&objects, "ConfigMap")["data"]["config.yaml"]
            .as_str()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        // The chart's state file lives on a volume; here a temporary directory stands in for it.
        let state = dir.path().join("state.json");
        let config = config.replace("/var/lib/fake-clb/state.json", &state.display().to_string());
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, &config).unwrap();
        let output = Command::new(sibling("fake-clb"))
            .arg(format!("--config={}", path.display()))
            .args(["--listen=127.0.0.1:0", "--admin-listen=127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut child = Killed(output);
        let mut stdout = child.0.stdout.take().unwrap();
        let mut line = String::new();
        use std::io::Read as _;
        let mut byte = [0u8; 1];
        while !line.ends_with('\n') {
            match stdout.read(&mut byte) {
                Ok(1) => line.push(byte[0] as char),
                _ => break,
            }
        }
        if !line.starts_with("fake-clb listening") {
            let _ = child.0.kill();
            let mut err = String::new();
            let _ = child.0.stderr.take().unwrap().read_to_string(&mut err);
            panic!("{name}: fake-clb refused the rendered config:\n{config}\n{err}");
        }
    }
}

/// The command line of the Deployment's (only) container.
fn container_args(objects: &[Value]) -> Vec<String> {
    find(objects, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

#[test]
#[ignore = "needs the rendered charts: make test-cluster"]
fn the_binaries_accept_every_rendered_command_line() {
    for name in [
        "clb-controller-default",
        "clb-controller-nondefault",
        "clb-controller-controller-certs",
        "clb-controller-certmanager",
    ] {
        let objects = rendered(name);
        let args = container_args(&objects);
        // clap checks every flag, value and repetition before it prints the help and exits 0.
        let output = Command::new(sibling("clb-controller"))
            .args(&args)
            .arg("--help")
            .env_clear()
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}: clb-controller refused {args:?}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    for name in ["fake-clb-default", "fake-clb-nondefault", "fake-clb-kind"] {
        let objects = rendered(name);
        let args = container_args(&objects);
        let output = Command::new(sibling("fake-clb"))
            .args(&args)
            .arg("--help")
            .env_clear()
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{name}: fake-clb refused {args:?}:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
