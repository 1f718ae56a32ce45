//! `/metrics`, `/healthz` and `/readyz` on one small axum server (served by every replica).
//!
//! - `/healthz`: 200 while the process runs (liveness).
//! - `/readyz`: 200 only on the leader once its Listener cache has synced. A follower answers 503: it serves
//!   metrics but does no reconciling, and the admission webhook (leader only, like bcs) must not route to it.
//! - `/metrics`: Prometheus text format: the CLB client's metrics and the runtime's own.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use crate::cloud::CloudMetrics;

/// Labels of per-outcome counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabels {
    /// `synced`, `not_synced`, `deleted`.
    pub result: String,
}

/// Labels of the listeners-by-status gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// `Synced`, `NotSynced`, `Pending` (no status yet) or `Deleting`.
    pub status: String,
}

/// Labels of the port-pool gauges: one series per pool item and protocol.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolItemLabels {
    pub namespace: String,
    pub pool: String,
    pub item: String,
    /// `TCP` or `UDP`.
    pub protocol: String,
}

/// Labels of the reconcile error counter.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileErrorLabels {
    /// `ingress`, `portpool`, `portbinding`.
    pub controller: String,
    /// [`super::ReconcileError::label`]: `kube`, `cloud`, `timeout`, `invalid`.
    pub reason: String,
}

/// Metrics of the controllers. Cloning shares them.
#[derive(Clone, Debug)]
pub struct RuntimeMetrics {
    /// Outcomes reported by the per-LB workers, per Listener CR.
    pub reconciles: Family<ResultLabels, Counter>,
    /// Kubernetes API writes that failed outside a reconcile pass (status patches, finalizers, events).
    pub kube_errors: Counter,
    /// Failed reconcile passes per controller and error kind.
    pub reconcile_errors: Family<ReconcileErrorLabels, Counter>,
    /// Listener CRs in the cache by status.
    pub listeners: Family<StatusLabels, Gauge>,
    /// Load balancers with a Listener CR (one sync worker each).
    pub load_balancers: Gauge,
    /// 1 on the leader.
    pub leader: Gauge,
    /// Ports (or segments) of each pool item and protocol.
    pub pool_capacity: Family<PoolItemLabels, Gauge>,
    /// Ports (or segments) held of each pool item and protocol.
    pub pool_used: Family<PoolItemLabels, Gauge>,
    /// Webhook allocations released by the leak checker (no pod or PortBinding recorded them).
    pub pool_leaked_reclaimed: Counter,
    /// Reserved ports released because their pod was refused (never stored).
    pub pool_reservations_released: Counter,
    /// Ports found claimed by two different holders while rebuilding the allocator.
    pub pool_duplicate_holdings: Family<PoolItemLabels, Counter>,
    /// Seconds from creating a PortBinding to its first Ready.
    pub bind_latency: Histogram,
    /// This controller's Kubernetes API requests by verb and resource.
    pub kube_requests: super::kube_requests::KubeRequests,
}

impl Default for RuntimeMetrics {
    fn default() -> Self {
        RuntimeMetrics {
            reconciles: Family::default(),
            kube_errors: Counter::default(),
            reconcile_errors: Family::default(),
            listeners: Family::default(),
            load_balancers: Gauge::default(),
            leader: Gauge::default(),
            pool_capacity: Family::default(),
            pool_used: Family::default(),
            pool_leaked_reclaimed: Counter::default(),
            pool_reservations_released: Counter::default(),
            pool_duplicate_holdings: Family::default(),
            bind_latency: Histogram::new(exponential_buckets(0.1, 2.0, 12)),
            kube_requests: Family::default(),
        }
    }
}

impl RuntimeMetrics {
    /// Registers every metric under the `clb_controller_` prefix.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry.sub_registry_with_prefix("clb_controller");
        r.register(
            "listener_reconciles",
            "Listener outcomes reported by the sync workers (synced, not_synced, deleted)",
            self.reconciles.clone(),
        );
        r.register(
            "kube_requests",
            "Kubernetes API requests made by this controller, by verb and resource",
            self.kube_requests.clone(),
        );
        r.register(
            "kube_errors",
            "Kubernetes API writes that failed (status, finalizer, event)",
            self.kube_errors.clone(),
        );
        r.register(
            "reconcile_errors",
            "Failed reconcile passes by controller and error kind (kube, cloud, timeout, invalid)",
            self.reconcile_errors.clone(),
        );
        r.register(
            "listeners",
            "Listener CRs in the cache by status",
            self.listeners.clone(),
        );
        r.register(
            "load_balancers",
            "Load balancers that have Listener CRs",
            self.load_balancers.clone(),
        );
        r.register(
            "leader",
            "1 when this replica is the leader",
            self.leader.clone(),
        );
        r.register(
            "portpool_capacity",
            "Ports (or segments) of each port-pool item and protocol",
            self.pool_capacity.clone(),
        );
        r.register(
            "portpool_used",
            "Ports (or segments) held of each port-pool item and protocol",
            self.pool_used.clone(),
        );
        r.register(
            "portpool_leaked_ports_reclaimed",
            "Ports allocated at admission that no stored pod or PortBinding recorded, released by the leak checker",
            self.pool_leaked_reclaimed.clone(),
        );
        r.register(
            "portpool_reservations_released",
            "Ports reserved at admission for a pod that was refused (never stored), released after the reservation timeout",
            self.pool_reservations_released.clone(),
        );
        r.register(
            "portpool_duplicate_holdings",
            "Ports claimed by two different pods or PortBindings, found while rebuilding the allocator",
            self.pool_duplicate_holdings.clone(),
        );
        r.register(
            "portpool_bind_latency_seconds",
            "Seconds from PortBinding creation to Ready",
            self.bind_latency.clone(),
        );
    }

    /// Counts one outcome.
    pub fn count(&self, result: &str) {
        self.reconciles
            .get_or_create(&ResultLabels {
                result: result.to_string(),
            })
            .inc();
    }
}

/// Readiness inputs shared with the runtime.
#[derive(Debug, Default)]
pub struct Health {
    /// This replica leads (always true without leader election).
    pub leader: AtomicBool,
    /// The Listener cache has listed every object at least once since leadership began.
    pub synced: AtomicBool,
}

impl Health {
    /// Ready to serve the webhook and reconcile.
    pub fn is_ready(&self) -> bool {
        self.leader.load(Ordering::Acquire) && self.synced.load(Ordering::Acquire)
    }
}

/// What the handlers read.
pub struct MetricsState {
    pub registry: Registry,
    pub health: Arc<Health>,
}

/// Builds the registry with the CLB client's and the runtime's metrics.
pub fn registry(cloud: &CloudMetrics, runtime: &RuntimeMetrics) -> Registry {
    let mut registry = Registry::default();
    cloud.register(&mut registry);
    runtime.register(&mut registry);
    registry
}

/// The router (separate from binding, for tests).
pub fn router(state: Arc<MetricsState>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

/// Binds `addr` and serves until `shutdown` turns true; returns the bound address (port 0 picks one).
pub async fn serve(
    addr: SocketAddr,
    state: Arc<MetricsState>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = router(state);
    let task = tokio::spawn(async move {
        let stop = async move {
            let _ = shutdown.wait_for(|s| *s).await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!(error = %e, "metrics server failed");
        }
    });
    tracing::info!(addr = %bound, "metrics server listening");
    Ok((bound, task))
}

async fn metrics(State(state): State<Arc<MetricsState>>) -> Response {
    let mut body = String::new();
    match encode(&mut body, &state.registry) {
        Ok(()) => (
            [(
                header::CONTENT_TYPE,
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<Arc<MetricsState>>) -> Response {
    let health = &state.health;
    if health.is_ready() {
        return (StatusCode::OK, "ok").into_response();
    }
    let why = if !health.leader.load(Ordering::Acquire) {
        "not the leader"
    } else {
        "listener cache not synced"
    };
    (StatusCode::SERVICE_UNAVAILABLE, why).into_response()
}
