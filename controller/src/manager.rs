//! `clb-controller run`: connects to Kubernetes and the cloud, installs CRDs if asked, serves metrics and the
//! webhooks on every replica, and runs the [`crate::controllers`] while this replica leads.
//!
//! [`run`] starts everything and returns a [`RuntimeHandle`]; the binary and the integration tests drive the
//! same code. Only the leader reconciles; every replica serves `/metrics` and `/healthz`.

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

use crate::CONTROLLER_NAME;
use crate::cloud::{ClbClient, ClientConfig, CloudError, CloudMetrics, Credentials};
use crate::controllers::{self, Context};
use crate::ingress::Settings;
use crate::pools::PoolState;
use crate::runtime::kube_requests::{KubeRequests, counting_layer};
use crate::runtime::{Health, RuntimeMetrics, leader, metrics_server, wait_true};
use crate::sync::WorkerConfig;

pub use crate::runtime::LeaderElectionConfig;

/// How long `--install-crds` waits for the API server to establish the CRDs.
const CRD_ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Errors that stop the controller from starting, or a runtime task that died.
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
    /// (bcs: PORT_LEAK_THRESHOLD_SECONDS).
    pub port_leak_threshold: Duration,
    /// Reservations of refused pods are released this long after admission or validation
    /// (see [`crate::pools::reservation`]); zero leaves them to the leak threshold.
    pub port_reservation_timeout: Duration,
    /// Random host ports from this range (see [`crate::randhostport`]); `None` = off.
    pub randhostport: Option<crate::randhostport::PortRange>,
}

/// A running runtime. Dropping it does not stop it; call [`RuntimeHandle::shutdown`].
pub struct RuntimeHandle {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    metrics_addr: SocketAddr,
    health: Arc<Health>,
    webhook_addr: Option<SocketAddr>,
    pool_state: Arc<PoolState>,
}

impl RuntimeHandle {
    /// The port pools' allocator and observed items, written by the PortPool reconciler (leader only) and read
    /// by the pod webhook; `is_ready()` only once rebuilt on this leader.
    pub fn pool_state(&self) -> Arc<PoolState> {
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
/// leader election and the controllers. Returns once everything is started (not once it is leader).
pub async fn run(config: RuntimeConfig) -> Result<RuntimeHandle, RuntimeError> {
    let kube_requests = KubeRequests::default();
    let client = kube_client_counted(config.kubeconfig.as_ref(), kube_requests.clone()).await?;
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
    let ctx = context(&config, client.clone(), cloud, kube_requests);
    let (metrics_stop_tx, metrics_stop_rx) = watch::channel(false);
    let mut registry = metrics_server::registry(&cloud_metrics, &ctx.metrics);
    let pod_webhook = crate::webhook::pod::PodWebhook {
        pools: ctx.pools.clone(),
        metrics: crate::webhook::pod::PodWebhookMetrics::default(),
        reservation_timeout: config.port_reservation_timeout,
        randhostport: ctx.randhostport.clone(),
    };
    pod_webhook.metrics.register(&mut registry);
    let state = Arc::new(metrics_server::MetricsState {
        registry,
        health: ctx.health.clone(),
    });
    let (metrics_addr, metrics_task) =
        metrics_server::serve(config.metrics_addr, state, metrics_stop_rx)
            .await
            .map_err(|e| RuntimeError::Bind(config.metrics_addr, e))?;
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
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (health, pool_state) = (ctx.health.clone(), ctx.pools.clone());
    let leadership = Leadership::start(&client, config.leader_election.clone());
    let task = tokio::spawn(async move {
        let Leadership {
            leader,
            leader_tx,
            stop,
            elector,
        } = leadership;
        supervise(ctx, leader, shutdown_rx).await;
        // Work has stopped: only now may another replica take over.
        stop.send_replace(true);
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

/// The controllers' shared context, built once from the configuration.
fn context(
    config: &RuntimeConfig,
    client: kube::Client,
    cloud: ClbClient,
    kube_requests: KubeRequests,
) -> Context {
    Context {
        settings: Settings {
            default_region: cloud.config().default_region.clone(),
            // bcs' variable: L4 listeners are named with their protocol.
            tcp_udp_port_reuse: std::env::var("TCP_UDP_PORT_REUSE")
                .is_ok_and(|v| v.trim().eq_ignore_ascii_case("true")),
        },
        client,
        cloud,
        worker: config.worker,
        watch_namespace: config.watch_namespace.clone(),
        reporter: Reporter {
            controller: CONTROLLER_NAME.to_string(),
            instance: Some(config.instance.clone()),
        },
        metrics: RuntimeMetrics {
            kube_requests,
            ..RuntimeMetrics::default()
        },
        health: Arc::new(Health::default()),
        pools: Arc::new(PoolState::default()),
        leak_threshold: config.port_leak_threshold,
        reservation_timeout: config.port_reservation_timeout,
        randhostport: config
            .randhostport
            .map(|range| Arc::new(crate::randhostport::state::RandHostPortState::new(range))),
    }
}

/// Whether this replica leads: always without leader election, else as the elector says.
struct Leadership {
    leader: watch::Receiver<bool>,
    /// Kept until the controllers stopped: a closed channel reads as lost leadership.
    leader_tx: watch::Sender<bool>,
    stop: watch::Sender<bool>,
    elector: Option<JoinHandle<()>>,
}

impl Leadership {
    fn start(client: &kube::Client, election: Option<LeaderElectionConfig>) -> Leadership {
        let (leader_tx, leader) = watch::channel(election.is_none());
        let (stop, stop_rx) = watch::channel(false);
        let elector = election.map(|le| {
            tracing::info!(namespace = %le.namespace, lease = %le.lease_name, identity = %le.identity, "leader election on");
            let elector = leader::LeaderElector::new(client.clone(), le);
            tokio::spawn(elector.run(leader_tx.clone(), stop_rx))
        });
        Leadership {
            leader,
            leader_tx,
            stop,
            elector,
        }
    }
}

/// Runs the controllers while this replica leads; stops them on loss of leadership or shutdown.
async fn supervise(
    ctx: Context,
    mut leader: watch::Receiver<bool>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            r = async { leader.wait_for(|l| *l).await.map(|_| ()) } => if r.is_err() { return },
            _ = wait_true(&mut shutdown) => return,
        }
        ctx.health.leader.store(true, Ordering::Release);
        ctx.metrics.leader.set(1);
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut work = tokio::spawn(controllers::run_while_leader(ctx.clone(), stop_rx));
        let stopping = tokio::select! {
            _ = &mut work => false,
            _ = async { let _ = leader.wait_for(|l| !*l).await; } => {
                tracing::warn!("lost leadership: stopping the controllers");
                false
            },
            _ = wait_true(&mut shutdown) => true,
        };
        stop_tx.send_replace(true);
        if let Err(e) = (&mut work).await
            && e.is_panic()
        {
            tracing::error!("the controllers panicked");
        }
        ctx.pools.set_ready(false);
        ctx.health.leader.store(false, Ordering::Release);
        ctx.metrics.leader.set(0);
        if stopping || *shutdown.borrow() {
            return;
        }
    }
}

/// A client from an explicit kubeconfig, else the usual inference (KUBECONFIG, ~/.kube/config, in-cluster).
pub async fn kube_client(kubeconfig: Option<&PathBuf>) -> Result<kube::Client, RuntimeError> {
    kube_client_counted(kubeconfig, KubeRequests::default()).await
}

/// Like [`kube_client`], counting every request into `requests`.
pub async fn kube_client_counted(
    kubeconfig: Option<&PathBuf>,
    requests: KubeRequests,
) -> Result<kube::Client, RuntimeError> {
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
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&counting_layer(requests))
        .build())
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
