//! Integration tests against the local control plane started by `clb-harness cluster up`.
//!
//! `make test-cluster` starts a cluster, runs these with `--ignored` and
//! `CLB_TEST_KUBECONFIG=<state-dir>/kubeconfig`, then stops it. They are `#[ignore]`d so a
//! plain `cargo test` does not need a cluster; run with `--ignored`, they fail (never skip)
//! if the variable is missing or the API server is unreachable.

use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Json;
use axum::extract::State;
use axum::routing::post;
use clb_harness::cluster::pki::{CertificateAuthority, LeafSpec};
use k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration;
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, ResourceExt};
use serde_json::json;

const KUBECONFIG_ENV: &str = "CLB_TEST_KUBECONFIG";
const DEADLINE: Duration = Duration::from_secs(60);
const POLL: Duration = Duration::from_millis(200);

/// A client for the test cluster; panics (fails the test) when there is none.
async fn client() -> Client {
    clb_harness::install_crypto_provider();
    let path = std::env::var(KUBECONFIG_ENV).unwrap_or_else(|_| {
        panic!("{KUBECONFIG_ENV} is not set: run these tests through `make test-cluster`")
    });
    let client = clb_harness::cluster::client_from_kubeconfig(Path::new(&path))
        .await
        .unwrap_or_else(|e| panic!("cannot load kubeconfig {path}: {e}"));
    client
        .apiserver_version()
        .await
        .unwrap_or_else(|e| panic!("API server from {path} unreachable: {e}"));
    client
}

/// Polls `probe` until it yields a value; fails the test at the deadline.
async fn eventually<T, F, Fut>(what: &str, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {}s waiting for {what}",
            DEADLINE.as_secs()
        );
        tokio::time::sleep(POLL).await;
    }
}

fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{nanos:x}")
}

/// Creates a namespace labelled with its own name (webhooks select on that label).
async fn namespace(client: &Client, prefix: &str) -> String {
    let name = unique(prefix);
    let ns: Namespace = serde_json::from_value(json!({
        "metadata": { "name": name, "labels": { "clb-test/namespace": name } }
    }))
    .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
    name
}

async fn delete_namespace(client: &Client, name: &str) {
    Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
}

fn condition<'a>(pod: &'a Pod, type_: &str) -> Option<&'a str> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

fn running_and_ready(pod: &Pod) -> bool {
    let phase = pod.status.as_ref().and_then(|s| s.phase.as_deref());
    phase == Some("Running") && condition(pod, "Ready") == Some("True")
}

fn pod_ip(pod: &Pod) -> Option<String> {
    pod.status.as_ref()?.pod_ip.clone()
}

fn host_ip(pod: &Pod) -> Option<String> {
    pod.status.as_ref()?.host_ip.clone()
}

fn in_cidr(ip: &str, cidr: &str) -> bool {
    let (Some((net, bits)), Ok(ip)) = (cidr.split_once('/'), ip.parse::<Ipv4Addr>()) else {
        return false;
    };
    let (Ok(net), Ok(bits)) = (net.parse::<Ipv4Addr>(), bits.parse::<u32>()) else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn internal_ip(node: &Node) -> Option<String> {
    node.status
        .as_ref()?
        .addresses
        .as_ref()?
        .iter()
        .find(|a| a.type_ == "InternalIP")
        .map(|a| a.address.clone())
}

fn node_ready(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

#[tokio::test]
#[ignore = "needs a cluster: make test-cluster"]
async fn at_least_three_fake_nodes_are_ready_with_distinct_addresses() {
    let client = client().await;
    let nodes: Api<Node> = Api::all(client);
    let ready = eventually("3 Ready nodes", || {
        let nodes = nodes.clone();
        async move {
            let list = nodes.list(&ListParams::default()).await.ok()?;
            let ready: Vec<Node> = list.items.into_iter().filter(node_ready).collect();
            (ready.len() >= 3).then_some(ready)
        }
    })
    .await;
    let ips: HashSet<String> = ready.iter().filter_map(internal_ip).collect();
    let cidrs: HashSet<String> = ready
        .iter()
        .filter_map(|n| n.spec.as_ref()?.pod_cidr.clone())
        .collect();
    assert_eq!(ips.len(), ready.len(), "InternalIPs not distinct: {ips:?}");
    assert_eq!(cidrs.len(), ready.len(), "podCIDRs not distinct: {cidrs:?}");
}

#[tokio::test]
#[ignore = "needs a cluster: make test-cluster"]
async fn deployment_pods_run_ready_with_distinct_pod_and_host_ips() {
    let client = client().await;
    let ns = namespace(&client, "deploy").await;
    let deployment: Deployment = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "replicas": 3,
            "selector": { "matchLabels": { "app": "web" } },
            "template": {
                "metadata": { "labels": { "app": "web" } },
                "spec": {
                    "containers": [{ "name": "web", "image": "example.invalid/web:1" }],
                    // One pod per node, so host IPs must differ.
                    "topologySpreadConstraints": [{
                        "maxSkew": 1,
                        "topologyKey": "kubernetes.io/hostname",
                        "whenUnsatisfiable": "DoNotSchedule",
                        "labelSelector": { "matchLabels": { "app": "web" } }
                    }]
                }
            }
        }
    }))
    .unwrap();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    deployments
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let ready = eventually("3 Running+Ready pods of deployment web", || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=web"))
                .await
                .ok()?;
            let ready: Vec<Pod> = list.items.into_iter().filter(running_and_ready).collect();
            (ready.len() == 3).then_some(ready)
        }
    })
    .await;
    let pod_ips: HashSet<String> = ready.iter().filter_map(pod_ip).collect();
    let host_ips: HashSet<String> = ready.iter().filter_map(host_ip).collect();
    assert_eq!(pod_ips.len(), 3, "pod IPs not distinct: {pod_ips:?}");
    assert_eq!(host_ips.len(), 3, "host IPs not distinct: {host_ips:?}");

    // Each pod's IPs come from the node it runs on.
    let nodes: Api<Node> = Api::all(client.clone());
    for pod in &ready {
        let node_name = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap();
        let node = nodes.get(&node_name).await.unwrap();
        assert_eq!(
            host_ip(pod),
            internal_ip(&node),
            "hostIP of {}",
            pod.name_any()
        );
        let cidr = node.spec.as_ref().and_then(|s| s.pod_cidr.clone()).unwrap();
        let ip = pod_ip(pod).unwrap();
        assert!(in_cidr(&ip, &cidr), "pod IP {ip} outside {cidr}");
    }

    let ready_replicas = eventually("deployment status readyReplicas=3", || {
        let deployments = deployments.clone();
        async move {
            let d = deployments.get("web").await.ok()?;
            let n = d.status?.ready_replicas?;
            (n == 3).then_some(n)
        }
    })
    .await;
    assert_eq!(ready_replicas, 3);
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs a cluster: make test-cluster"]
async fn statefulset_pods_get_ordinal_names_and_become_ready() {
    let client = client().await;
    let ns = namespace(&client, "sts").await;
    let service: Service = serde_json::from_value(json!({
        "metadata": { "name": "db" },
        "spec": {
            "clusterIP": "None",
            "selector": { "app": "db" },
            "ports": [{ "port": 5432 }]
        }
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let sts: StatefulSet = serde_json::from_value(json!({
        "metadata": { "name": "db" },
        "spec": {
            "replicas": 3,
            "serviceName": "db",
            "selector": { "matchLabels": { "app": "db" } },
            "template": {
                "metadata": { "labels": { "app": "db" } },
                "spec": { "containers": [{ "name": "db", "image": "example.invalid/db:1" }] }
            }
        }
    }))
    .unwrap();
    Api::<StatefulSet>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &sts)
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let names = eventually("db-0..2 Ready", || {
        let pods = pods.clone();
        async move {
            let list = pods
                .list(&ListParams::default().labels("app=db"))
                .await
                .ok()?;
            let mut names: Vec<String> = list
                .items
                .iter()
                .filter(|p| running_and_ready(p))
                .map(ResourceExt::name_any)
                .collect();
            names.sort();
            (names.len() == 3).then_some(names)
        }
    })
    .await;
    assert_eq!(names, ["db-0", "db-1", "db-2"]);
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs a cluster: make test-cluster"]
async fn nodeport_service_gets_a_node_port_and_cluster_ip() {
    let client = client().await;
    let ns = namespace(&client, "svc").await;
    let service: Service = serde_json::from_value(json!({
        "metadata": { "name": "web" },
        "spec": {
            "type": "NodePort",
            "selector": { "app": "web" },
            "ports": [{ "port": 80, "targetPort": 8080, "protocol": "TCP" }]
        }
    }))
    .unwrap();
    let created = Api::<Service>::namespaced(client.clone(), &ns)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let spec = created.spec.unwrap();
    let node_port = spec.ports.unwrap()[0].node_port.unwrap();
    assert!(
        (30000..=32767).contains(&node_port),
        "nodePort {node_port} outside the default range"
    );
    let cluster_ip = spec.cluster_ip.unwrap();
    assert!(
        in_cidr(&cluster_ip, "10.96.0.0/16"),
        "clusterIP {cluster_ip}"
    );
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs a cluster: make test-cluster"]
async fn crd_is_served_validated_and_has_a_status_subresource() {
    let client = client().await;
    let ns = namespace(&client, "crd").await;
    let group = format!("{}.clbtest.example.com", unique("g"));
    let crd_name = format!("widgets.{group}");
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": { "name": crd_name },
        "spec": {
            "group": group,
            "scope": "Namespaced",
            "names": { "plural": "widgets", "singular": "widget", "kind": "Widget" },
            "versions": [{
                "name": "v1",
                "served": true,
                "storage": true,
                "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object",
                    "properties": {
                        "spec": {
                            "type": "object",
                            "required": ["size"],
                            "properties": {
                                "size": { "type": "integer", "minimum": 1, "maximum": 10 }
                            }
                        },
                        "status": {
                            "type": "object",
                            "properties": { "phase": { "type": "string" } }
                        }
                    }
                }}
            }]
        }
    }))
    .unwrap();
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    crds.create(&PostParams::default(), &crd).await.unwrap();
    tokio::time::timeout(
        DEADLINE,
        await_condition(crds.clone(), &crd_name, conditions::is_crd_established()),
    )
    .await
    .expect("CRD not Established in time")
    .unwrap();

    let gvk = GroupVersionKind::gvk(&group, "v1", "Widget");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "widgets");
    let widgets: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &resource);
    let widget = |name: &str, spec: serde_json::Value| -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": format!("{group}/v1"),
            "kind": "Widget",
            "metadata": { "name": name },
            "spec": spec
        }))
        .unwrap()
    };

    // Served: the first create may race the handler installation right after Established.
    let created = eventually("Widget create to succeed", || {
        let widgets = widgets.clone();
        let w = widget("good", json!({ "size": 3 }));
        async move { widgets.create(&PostParams::default(), &w).await.ok() }
    })
    .await;
    assert_eq!(created.data["spec"]["size"], 3);

    // Validated: schema violations are rejected with 422 Invalid.
    for (name, spec) in [
        ("too-big", json!({ "size": 100 })),
        ("wrong-type", json!({ "size": "big" })),
        ("missing", json!({})),
    ] {
        match widgets
            .create(&PostParams::default(), &widget(name, spec))
            .await
        {
            Err(kube::Error::Api(status)) => {
                assert_eq!(status.code, 422, "{name}: {status:?}");
            }
            other => panic!("{name}: expected 422, got {other:?}"),
        }
    }

    // Status subresource: status is written only through /status ...
    let after_status = widgets
        .patch_status(
            "good",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Ready" }, "spec": { "size": 9 } })),
        )
        .await
        .unwrap();
    assert_eq!(after_status.data["status"]["phase"], "Ready");
    assert_eq!(
        after_status.data["spec"]["size"], 3,
        "spec changed via /status"
    );
    // ... and status changes through the main resource are ignored.
    let after_main = widgets
        .patch(
            "good",
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": { "phase": "Hacked" }, "spec": { "size": 4 } })),
        )
        .await
        .unwrap();
    assert_eq!(after_main.data["spec"]["size"], 4);
    assert_eq!(after_main.data["status"]["phase"], "Ready");

    crds.delete(&crd_name, &DeleteParams::default())
        .await
        .unwrap();
    delete_namespace(&client, &ns).await;
}

#[tokio::test]
#[ignore = "needs a cluster: make test-cluster"]
async fn pod_ready_follows_readiness_gates() {
    let client = client().await;
    let ns = namespace(&client, "gates").await;
    let gate = "clb.test/target-healthy";
    let pod: Pod = serde_json::from_value(json!({
        "metadata": { "name": "gated" },
        "spec": {
            "containers": [{ "name": "app", "image": "example.invalid/app:1" }],
            "readinessGates": [{ "conditionType": gate }]
        }
    }))
    .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    pods.create(&PostParams::default(), &pod).await.unwrap();

    let state = |want_ready: &'static str| {
        let pods = pods.clone();
        move || {
            let pods = pods.clone();
            async move {
                let p = pods.get("gated").await.ok()?;
                let running = p.status.as_ref()?.phase.as_deref() == Some("Running");
                (running
                    && condition(&p, "ContainersReady") == Some("True")
                    && condition(&p, "Ready") == Some(want_ready))
                .then_some(p)
            }
        }
    };
    let running = eventually("gated pod Running but not Ready", state("False")).await;
    assert!(pod_ip(&running).is_some());

    let set_gate = |status: &str| {
        Patch::Strategic(json!({
            "status": { "conditions": [{ "type": gate, "status": status }] }
        }))
    };
    pods.patch_status("gated", &PatchParams::default(), &set_gate("True"))
        .await
        .unwrap();
    eventually("pod Ready once the gate is True", state("True")).await;

    pods.patch_status("gated", &PatchParams::default(), &set_gate("False"))
        .await
        .unwrap();
    eventually("pod not Ready once the gate is False again", state("False")).await;
    delete_namespace(&client, &ns).await;
}

/// Label the test webhook adds to every pod it admits.
const MUTATED_LABEL: &str = "clb-test/mutated-by";

async fn mutate(
    State(calls): State<Arc<AtomicUsize>>,
    Json(review): Json<AdmissionReview<DynamicObject>>,
) -> Json<AdmissionReview<DynamicObject>> {
    calls.fetch_add(1, Ordering::SeqCst);
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(request) => request,
        Err(e) => return Json(AdmissionResponse::invalid(e.to_string()).into_review()),
    };
    let has_labels = request
        .object
        .as_ref()
        .is_some_and(|o| o.metadata.labels.is_some());
    let patch = if has_labels {
        json!([{ "op": "add", "path": "/metadata/labels/clb-test~1mutated-by", "value": "webhook" }])
    } else {
        json!([{ "op": "add", "path": "/metadata/labels", "value": { MUTATED_LABEL: "webhook" } }])
    };
    let patch: json_patch::Patch = serde_json::from_value(patch).unwrap();
    let response = AdmissionResponse::from(&request).with_patch(patch).unwrap();
    Json(response.into_review())
}

#[tokio::test]
#[ignore = "needs a cluster: make test-cluster"]
async fn mutating_webhook_on_loopback_is_called_on_pod_creation() {
    let client = client().await;
    let ns = namespace(&client, "webhook").await;

    let ca = CertificateAuthority::new("webhook-test-ca").unwrap();
    let serving = ca
        .issue(&LeafSpec::server(
            "webhook",
            &[IpAddr::V4(Ipv4Addr::LOCALHOST)],
            &[],
        ))
        .unwrap();
    let listener = std::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem(
        serving.cert_pem.into_bytes(),
        serving.key_pem.into_bytes(),
    )
    .await
    .unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let app = axum::Router::new()
        .route("/mutate", post(mutate))
        .with_state(calls.clone());
    let server = tokio::spawn(async move {
        axum_server::from_tcp_rustls(listener, tls)
            .unwrap()
            .serve(app.into_make_service())
            .await
    });

    let config_name = format!("clb-test-{ns}");
    let webhook: MutatingWebhookConfiguration = serde_json::from_value(json!({
        "metadata": { "name": config_name },
        "webhooks": [{
            "name": "pods.clbtest.example.com",
            "clientConfig": {
                "url": format!("https://127.0.0.1:{port}/mutate"),
                "caBundle": k8s_openapi::ByteString(ca.cert_pem().as_bytes().to_vec()),
            },
            "rules": [{
                "operations": ["CREATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
            }],
            // Only this test's namespace, so other tests never depend on this server.
            "namespaceSelector": { "matchLabels": { "clb-test/namespace": ns } },
            "failurePolicy": "Fail",
            "sideEffects": "None",
            "admissionReviewVersions": ["v1"],
            "timeoutSeconds": 10,
        }]
    }))
    .unwrap();
    let webhooks: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    webhooks
        .create(&PostParams::default(), &webhook)
        .await
        .unwrap();

    // The API server picks up new webhook configurations asynchronously: create probe pods
    // until one comes back mutated.
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let attempt = AtomicUsize::new(0);
    let mutated = eventually("a pod mutated by the webhook", || {
        let pods = pods.clone();
        let n = attempt.fetch_add(1, Ordering::SeqCst);
        async move {
            let pod: Pod = serde_json::from_value(json!({
                "metadata": { "name": format!("probe-{n}"), "labels": { "app": "probe" } },
                "spec": { "containers": [{ "name": "app", "image": "example.invalid/app:1" }] }
            }))
            .unwrap();
            let created = pods.create(&PostParams::default(), &pod).await.ok()?;
            created
                .labels()
                .contains_key(MUTATED_LABEL)
                .then_some(created)
        }
    })
    .await;
    assert_eq!(
        mutated.labels().get(MUTATED_LABEL).map(String::as_str),
        Some("webhook")
    );
    assert_eq!(
        mutated.labels().get("app").map(String::as_str),
        Some("probe")
    );
    assert!(calls.load(Ordering::SeqCst) >= 1);
    let stored = pods.get(&mutated.name_any()).await.unwrap();
    let stored_labels: &BTreeMap<String, String> = stored.labels();
    assert_eq!(
        stored_labels.get(MUTATED_LABEL).map(String::as_str),
        Some("webhook")
    );

    webhooks
        .delete(&config_name, &DeleteParams::default())
        .await
        .unwrap();
    server.abort();
    delete_namespace(&client, &ns).await;
}
