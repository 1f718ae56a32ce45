//! The Kubernetes-facing runtime behind `clb-controller run`: kube client, optional CRD install, leader
//! election, the Listener reconciler (watch → per-LB sync workers → status), and the metrics/health server.
//!
//! [`run`] starts everything and returns a [`RuntimeHandle`]; the binary and the integration tests drive the
//! same code. Only the leader reconciles; every replica serves `/metrics` and `/healthz`.

pub mod ingress;
pub mod ingress_index;
pub mod leader;
pub mod listener;
pub mod mapping;
pub mod metrics_server;
pub mod pools;
pub mod portbinding;
pub mod portbinding_plan;
pub mod portleak;
pub mod portpool;
pub mod portpool_plan;
pub mod queue;
pub mod status;
pub mod store;
mod watchers;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::Reporter;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cloud::{ClbClient, ClientConfig, CloudError, CloudMetrics, Credentials};
use crate::sync::WorkerConfig;

pub use leader::LeaderElectionConfig;
pub use metrics_server::{Health, RuntimeMetrics};

/// Name under which events are reported and CRDs are applied (server-side apply field manager).
pub const CONTROLLER_NAME: &str = "clb-controller";
/// How long `--install-crds` waits for the API server to establish the CRDs.
const CRD_ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors that stop the runtime from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("kubeconfig: {0}")]
    KubeConfig(String),
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("CLB client: {0}")]
    Cloud(#[from] CloudError),
    #[error("binding {0}: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    #[error("CRD {0} was not established within {1:?}")]
    CrdNotEstablished(String, Duration),
    #[error("runtime task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Webhook(#[from] crate::webhook::WebhookError),
}

/// Everything `run` needs; `clb-controller run` builds it from flags.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Kubeconfig file; `None` = `KUBECONFIG`, `~/.kube/config`, then in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// CLB endpoint, default region, rate limits, timeouts.
    pub cloud: ClientConfig,
    pub credentials: Credentials,
    /// Per-LB worker knobs (pass timeout, resync interval, retry backoff).
    pub worker: WorkerConfig,
    /// `/metrics`, `/healthz`, `/readyz`; port 0 picks a free port ([`RuntimeHandle::metrics_addr`]).
    pub metrics_addr: SocketAddr,
    /// `None` = this replica always leads (single replica, tests).
    pub leader_election: Option<LeaderElectionConfig>,
    /// Watch Listener CRs in this namespace only; `None` = all namespaces.
    pub watch_namespace: Option<String>,
    /// Apply the CRDs (server-side apply) at start and wait until they are established.
    pub install_crds: bool,
    /// This replica's name (pod name), for events and the Lease.
    pub instance: String,
    /// Serve the admission webhooks (every replica; see [`crate::webhook`]); `None` = off.
    pub webhook: Option<crate::webhook::WebhookConfig>,
    /// Ports the webhook allocated that no pod or PortBinding records after this long are released
    /// ([`portleak`]; bcs: PORT_LEAK_THRESHOLD_SECONDS).
    pub port_leak_threshold: Duration,
}

/// A running runtime. Dropping it does not stop it; call [`RuntimeHandle::shutdown`].
pub struct RuntimeHandle {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    metrics_addr: SocketAddr,
    health: Arc<Health>,
    webhook_addr: Option<SocketAddr>,
    pool_state: Arc<pools::PoolState>,
}

impl RuntimeHandle {
    /// The port pools' allocator and observed items, written by the PortPool reconciler (leader only) and read
    /// by the pod webhook; `is_ready()` only once rebuilt on this leader.
    pub fn pool_state(&self) -> Arc<pools::PoolState> {
        self.pool_state.clone()
    }

    /// Where `/metrics`, `/healthz` and `/readyz` are served.
    pub fn metrics_addr(&self) -> SocketAddr {
        self.metrics_addr
    }

    /// Where the admission webhooks are served (HTTPS), when enabled.
    pub fn webhook_addr(&self) -> Option<SocketAddr> {
        self.webhook_addr
    }

    /// This replica leads and its Listener cache has synced.
    pub fn is_ready(&self) -> bool {
        self.health.is_ready()
    }

    /// This replica leads.
    pub fn is_leader(&self) -> bool {
        self.health.leader.load(Ordering::Acquire)
    }

    /// Stops the workers (in-flight passes are cancelled), drains queued status writes, releases the Lease and
    /// stops the metrics server.
    pub async fn shutdown(self) -> Result<(), RuntimeError> {
        self.shutdown.send_replace(true);
        self.task
            .await
            .map_err(|e| RuntimeError::Task(e.to_string()))
    }

    /// Resolves if the runtime stopped on its own (it should not); lets `main` notice a dead runtime.
    pub async fn stopped(&mut self) -> Result<(), RuntimeError> {
        (&mut self.task)
            .await
            .map_err(|e| RuntimeError::Task(e.to_string()))
    }
}

/// Starts the runtime: connects to Kubernetes, installs CRDs if asked, binds the metrics server and starts
/// leader election and the reconciler. Returns once everything is started (not once it is leader).
pub async fn run(config: RuntimeConfig) -> Result<RuntimeHandle, RuntimeError> {
    let client = kube_client(config.kubeconfig.as_ref()).await?;
    if config.install_crds {
        install_crds(&client).await?;
    }

    let cloud_metrics = CloudMetrics::default();
    let cloud = ClbClient::new(
        config.cloud.clone(),
        &config.credentials,
        cloud_metrics.clone(),
    )?;
    tracing::info!(
        endpoint = %config.cloud.endpoint,
        region = %config.cloud.default_region,
        secret_id = %mask(config.credentials.secret_id()),
        "CLB client ready"
    );

    let metrics = RuntimeMetrics::default();
    let pool_state = Arc::new(pools::PoolState::default());
    let health = Arc::new(Health::default());
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (metrics_stop_tx, metrics_stop_rx) = watch::channel(false);
    let mut registry = metrics_server::registry(&cloud_metrics, &metrics);
    let pod_webhook = crate::webhook::pod::PodWebhook {
        pools: pool_state.clone(),
        metrics: crate::webhook::pod::PodWebhookMetrics::default(),
    };
    pod_webhook.metrics.register(&mut registry);
    let portbinding_metrics = portbinding::PortBindingMetrics::default();
    portbinding_metrics.register(&mut registry);
    let (metrics_addr, metrics_task) = metrics_server::serve(
        config.metrics_addr,
        Arc::new(metrics_server::MetricsState {
            registry,
            health: health.clone(),
        }),
        metrics_stop_rx,
    )
    .await?;
    let webhook = match config.webhook.clone() {
        Some(w) => Some(
            crate::webhook::start_with_pod(
                w,
                client.clone(),
                pod_webhook,
                metrics_stop_tx.subscribe(),
            )
            .await?,
        ),
        None => None,
    };
    let webhook_addr = webhook.as_ref().map(|w| w.addr);

    let ctx = listener::ReconcilerContext {
        client: client.clone(),
        cloud,
        worker: config.worker,
        watch_namespace: config.watch_namespace.clone(),
        reporter: Reporter {
            controller: CONTROLLER_NAME.to_string(),
            instance: Some(config.instance.clone()),
        },
        metrics: metrics.clone(),
        health: health.clone(),
    };

    let (leader_tx, leader_rx) = watch::channel(config.leader_election.is_none());
    let (elector_stop_tx, elector_stop_rx) = watch::channel(false);
    let elector = config.leader_election.clone().map(|le| {
        tracing::info!(namespace = %le.namespace, lease = %le.lease_name, identity = %le.identity, "leader election on");
        tokio::spawn(leader::LeaderElector::new(client.clone(), le).run(leader_tx.clone(), elector_stop_rx))
    });

    let supervised_pools = pool_state.clone();
    let leak_threshold = config.port_leak_threshold;
    let task = tokio::spawn(async move {
        supervise(
            ctx,
            supervised_pools,
            portbinding_metrics,
            leak_threshold,
            leader_rx,
            shutdown_rx,
        )
        .await;
        // Work has stopped: only now may another replica take over.
        elector_stop_tx.send_replace(true);
        if let Some(elector) = elector {
            let _ = elector.await;
        }
        drop(leader_tx);
        metrics_stop_tx.send_replace(true);
        let _ = metrics_task.await;
        if let Some(webhook) = webhook {
            let _ = webhook.task.await;
        }
    });

    Ok(RuntimeHandle {
        shutdown: shutdown_tx,
        task,
        metrics_addr,
        health,
        webhook_addr,
        pool_state,
    })
}

/// Runs the reconciler while this replica leads; stops it on loss of leadership or shutdown.
async fn supervise(
    ctx: listener::ReconcilerContext,
    pool_state: Arc<pools::PoolState>,
    portbinding_metrics: portbinding::PortBindingMetrics,
    leak_threshold: Duration,
    mut leader: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = async { leader.wait_for(|l| *l).await.map(|_| ()) } => if r.is_err() { return },
            _ = listener::wait_true(&mut shutdown) => return,
        }
        ctx.health.leader.store(true, Ordering::Release);
        ctx.metrics.leader.set(1);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut work = tokio::spawn(listener::run_while_leader(ctx.clone(), stop_rx.clone()));
        let ingress_work = tokio::spawn(ingress::run_while_leader(
            ingress::IngressContext::from_listener_context(&ctx),
            stop_rx.clone(),
        ));
        let portpool_work = tokio::spawn(portpool::run_while_leader(
            portpool::PortPoolContext::from_listener_context(&ctx, pool_state.clone()),
            stop_rx.clone(),
        ));
        let portbinding_work = tokio::spawn(portbinding::run_while_leader(
            portbinding::PortBindingContext {
                client: ctx.client.clone(),
                pool_state: pool_state.clone(),
                metrics: portbinding_metrics.clone(),
            },
            stop_rx.clone(),
        ));
        let leak_work = tokio::spawn(portleak::run_while_leader(
            portleak::LeakCheckContext {
                client: ctx.client.clone(),
                pool_state: pool_state.clone(),
                reclaimed: ctx.metrics.pool_leaked_reclaimed.clone(),
                threshold: leak_threshold,
            },
            stop_rx,
        ));
        let stopping = tokio::select! {
            _ = &mut work => false,
            _ = async { let _ = leader.wait_for(|l| !*l).await; } => {
                tracing::warn!("lost leadership: stopping the reconciler");
                false
            },
            _ = listener::wait_true(&mut shutdown) => true,
        };
        stop_tx.send_replace(true);
        if let Err(e) = (&mut work).await
            && e.is_panic()
        {
            tracing::error!("listener reconciler panicked");
        }
        if let Err(e) = ingress_work.await
            && e.is_panic()
        {
            tracing::error!("ingress reconciler panicked");
        }
        if let Err(e) = portpool_work.await
            && e.is_panic()
        {
            tracing::error!("portpool reconciler panicked");
        }
        if let Err(e) = portbinding_work.await
            && e.is_panic()
        {
            tracing::error!("portbinding reconciler panicked");
        }
        if let Err(e) = leak_work.await
            && e.is_panic()
        {
            tracing::error!("port leak checker panicked");
        }
        pool_state.set_ready(false);
        ctx.health.leader.store(false, Ordering::Release);
        ctx.metrics.leader.set(0);
        if stopping || *shutdown.borrow() {
            return;
        }
    }
}

/// A client from an explicit kubeconfig, else the usual inference (KUBECONFIG, ~/.kube/config, in-cluster).
pub async fn kube_client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client, RuntimeError> {
    // Two rustls providers end up linked (reqwest and kube); pick ring explicitly. Fails harmlessly when one is set.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path)
                .map_err(|e| RuntimeError::KubeConfig(format!("{}: {e}", path.display())))?;
            kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| RuntimeError::KubeConfig(format!("{}: {e}", path.display())))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| RuntimeError::KubeConfig(e.to_string()))?,
    };
    Ok(kube::Client::try_from(config)?)
}

/// Server-side applies the four CRDs and waits until the API server serves them.
pub async fn install_crds(client: &kube::Client) -> Result<(), RuntimeError> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(CONTROLLER_NAME).force();
    let crds = crate::api::all_crds();
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(crd)).await?;
        tracing::info!(crd = %name, "CRD applied");
    }
    let deadline = tokio::time::Instant::now() + CRD_ESTABLISH_TIMEOUT;
    for crd in &crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        loop {
            let current = api.get(&name).await?;
            let established = current
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(RuntimeError::CrdNotEstablished(name, CRD_ESTABLISH_TIMEOUT));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// First four characters of a SecretId, for logs.
fn mask(secret_id: &str) -> String {
    let head: String = secret_id.chars().take(4).collect();
    format!("{head}****")
}
