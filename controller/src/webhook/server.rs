//! The admission server: axum over rustls, AdmissionReview v1 in and out.
//!
//! | Path | Operations | Rules |
//! |---|---|---|
//! | `/ingress/v1/validate` (alias `/ingress/v1/mutate`, bcs' path; never patches) | CREATE, UPDATE | [`super::review_ingress`] |
//! | `/portpool/v1/validate` | CREATE, UPDATE (DELETE too) | [`super::review_portpool`] |
//! | `/portpool/v1/delete` | DELETE (CREATE/UPDATE too) | [`super::review_portpool_delete`] |
//! | `/portpool/v1/mutate` | Pod CREATE | [`super::pod::mutate_pod`]: allocates pool ports, patches the pod |
//! | `/portpool/v1/validate-pod` | Pod CREATE | marks the pod's port reservation validated (see [`crate::pools::reservation`]) |
//! | `/randhostport/v1/mutate` | Pod CREATE | random host ports (see [`crate::randhostport`]) |
//! | `/healthz` | GET | 200 while serving |
//!
//! Bodies are capped at [`MAX_BODY_BYTES`]; each decision (cluster reads included) is bounded by the
//! configured timeout and fails closed: an API error or a timeout denies with the reason, matching the
//! registered `failurePolicy: Fail`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use axum_server::tls_rustls::RustlsConfig;
use kube::core::DynamicObject;
use kube::core::admission::{
    AdmissionRequest, AdmissionResponse, AdmissionReview, ConvertAdmissionReviewError, Operation,
};
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::pod::{self, Denial};
use super::{ClusterView, ServingCert, WebhookError};
use crate::api::{Ingress, PortBinding, PortPool};
use crate::ingress::Settings;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

pub const PATH_INGRESS: &str = "/ingress/v1/validate";
/// bcs registers its Ingress check under this path; served for configurations written for bcs.
pub const PATH_INGRESS_BCS: &str = "/ingress/v1/mutate";
pub const PATH_PORTPOOL: &str = "/portpool/v1/validate";
pub const PATH_PORTPOOL_DELETE: &str = "/portpool/v1/delete";
/// bcs' path of the pod mutating webhook.
pub const PATH_POD_MUTATE: &str = "/portpool/v1/mutate";
/// Ours: the pod validating webhook that ties a stored pod to its port reservation.
pub const PATH_POD_VALIDATE: &str = "/portpool/v1/validate-pod";
/// bcs-webhook-server's plugin, served here.
pub const PATH_RANDHOSTPORT_MUTATE: &str = "/randhostport/v1/mutate";
pub const PATH_HEALTHZ: &str = "/healthz";
/// An UPDATE review carries the object twice; etcd caps one object near 1.5 MiB.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// Open requests get this long to finish on shutdown.
const DRAIN: Duration = Duration::from_secs(5);

/// What the handlers read.
pub struct WebhookState {
    pub client: kube::Client,
    pub settings: Settings,
    pub request_timeout: Duration,
    /// Pool state and metrics of the pod webhook.
    pub pod: super::pod::PodWebhook,
}

type Review = AdmissionReview<DynamicObject>;

/// All routes, one router per concern.
pub fn router(state: Arc<WebhookState>) -> Router {
    let ingress = Router::new()
        .route(PATH_INGRESS, post(ingress_review))
        .route(PATH_INGRESS_BCS, post(ingress_review));
    let portpool = Router::new()
        .route(PATH_PORTPOOL, post(portpool_review))
        .route(PATH_PORTPOOL_DELETE, post(portpool_review));
    let pod = Router::new()
        .route(PATH_POD_MUTATE, post(pod_mutate))
        .route(PATH_POD_VALIDATE, post(pod_validate))
        .route(
            PATH_RANDHOSTPORT_MUTATE,
            post(super::randhostport::randhostport_mutate),
        );
    let health = Router::new().route(PATH_HEALTHZ, get(|| async { "ok" }));
    Router::new()
        .merge(ingress)
        .merge(portpool)
        .merge(pod)
        .with_state(state)
        .merge(health)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// Binds `addr` (port 0 picks one) and serves HTTPS until `shutdown` turns true.
pub async fn serve(
    addr: SocketAddr,
    cert: &ServingCert,
    state: Arc<WebhookState>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), WebhookError> {
    let tls = RustlsConfig::from_config(cert.rustls_config()?);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| WebhookError::Bind(addr, e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| WebhookError::Bind(addr, e))?;
    let listener = listener
        .into_std()
        .map_err(|e| WebhookError::Bind(addr, e))?;
    let server =
        axum_server::from_tcp_rustls(listener, tls).map_err(|e| WebhookError::Bind(addr, e))?;
    let handle = axum_server::Handle::new();
    let app = router(state);
    let stopper = handle.clone();
    let task = tokio::spawn(async move {
        let serving = server.handle(handle).serve(app.into_make_service());
        tokio::pin!(serving);
        let result = tokio::select! {
            r = &mut serving => r,
            _ = async { let _ = shutdown.wait_for(|s| *s).await; } => {
                stopper.graceful_shutdown(Some(DRAIN));
                serving.await
            }
        };
        if let Err(e) = result {
            tracing::error!(error = %e, "webhook server failed");
        }
    });
    tracing::info!(addr = %bound, "admission webhook listening (HTTPS)");
    Ok((bound, task))
}

async fn ingress_review(
    State(state): State<Arc<WebhookState>>,
    Json(review): Json<Review>,
) -> Json<Review> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return malformed(e),
    };
    let decision = bounded(&state, async {
        if !matches!(request.operation, Operation::Create | Operation::Update) {
            return Ok(Vec::new());
        }
        let Some(object) = &request.object else {
            return Ok(vec!["request has no object".to_owned()]);
        };
        let ingress: Ingress = match typed(object) {
            Ok(i) => i,
            Err(e) => return Ok(vec![e]),
        };
        let view = ClusterView::read(&state.client, true, false).await?;
        Ok(super::review_ingress(&ingress, &view, &state.settings))
    })
    .await;
    Json(respond(&request, decision).into_review())
}

async fn portpool_review(
    State(state): State<Arc<WebhookState>>,
    Json(review): Json<Review>,
) -> Json<Review> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return malformed(e),
    };
    let decision = bounded(&state, async {
        match request.operation {
            Operation::Delete => {
                let namespace = request
                    .namespace
                    .clone()
                    .unwrap_or_else(|| "default".into());
                let view = ClusterView::read(&state.client, false, true).await?;
                Ok(super::review_portpool_delete(
                    &namespace,
                    &request.name,
                    &view,
                ))
            }
            Operation::Create | Operation::Update => {
                let Some(object) = &request.object else {
                    return Ok(vec!["request has no object".to_owned()]);
                };
                let pool: PortPool = match typed(object) {
                    Ok(p) => p,
                    Err(e) => return Ok(vec![e]),
                };
                let old: Option<PortPool> = match (&request.operation, &request.old_object) {
                    (Operation::Update, Some(o)) => match typed(o) {
                        Ok(p) => Some(p),
                        Err(e) => return Ok(vec![format!("old object: {e}")]),
                    },
                    _ => None,
                };
                let needs_bindings = old.is_some();
                let view = ClusterView::read(&state.client, true, needs_bindings).await?;
                Ok(super::review_portpool(
                    &pool,
                    old.as_ref(),
                    &view,
                    &state.settings,
                ))
            }
            Operation::Connect => Ok(Vec::new()),
        }
    })
    .await;
    Json(respond(&request, decision).into_review())
}

pub(crate) async fn pod_mutate(
    State(state): State<Arc<WebhookState>>,
    Json(review): Json<Review>,
) -> Json<Review> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return malformed(e),
    };
    let response = AdmissionResponse::from(&request);
    let metrics = &state.pod.metrics;
    if request.operation != Operation::Create {
        return Json(response.into_review());
    }
    let Some(object) = &request.object else {
        return Json(response.into_review());
    };
    let mut pod: Pod = match typed(object) {
        Ok(p) => p,
        Err(e) => return Json(pod_denied(&request, metrics, &Denial::internal(e))),
    };
    if !pod::wants_ports(&pod) {
        metrics.count(true, "skipped");
        return Json(response.into_review());
    }
    let pools = &state.pod.pools;
    if !pools.is_ready() {
        return Json(pod_denied(&request, metrics, &Denial::not_ready()));
    }
    if pod.metadata.namespace.as_deref().unwrap_or("").is_empty() {
        pod.metadata.namespace = Some(
            request
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
        );
    }
    let namespace = pod.metadata.namespace.clone().unwrap_or_default();
    let previous = match previous_binding(&state, &pod, &namespace).await {
        Ok(found) => found,
        Err(denial) => return Json(pod_denied(&request, metrics, &denial)),
    };
    let started = std::time::Instant::now();
    let pod_name = pod.metadata.name.clone().unwrap_or_default();
    // Taken ports stay pending until a stored pod or PortBinding records them (the leak checker frees the rest).
    let reservation = pools.new_reservation_id();
    let stamp = (!request.dry_run).then_some(reservation.as_str());
    let outcome = pools.allocate_pending(&namespace, &pod_name, &reservation, |allocator| {
        let outcome = pod::mutate_pod(
            &pod,
            allocator,
            |k, i| pools.item(k, i),
            previous.as_ref(),
            stamp,
        );
        // A dry run must not keep ports: answer with the patch, hold nothing.
        if request.dry_run
            && let Ok(Some(mutation)) = &outcome
        {
            pod::release_all(allocator, &mutation.allocated);
        }
        let pending = match &outcome {
            Ok(Some(mutation)) if !request.dry_run => pending_ports(&mutation.allocated),
            _ => Vec::new(),
        };
        (outcome, pending)
    });
    metrics
        .allocate_duration
        .observe(started.elapsed().as_secs_f64());
    let mutation = match outcome {
        Ok(Some(m)) => m,
        Ok(None) => return Json(response.into_review()),
        Err(denial) => return Json(pod_denied(&request, metrics, &denial)),
    };
    let reason = match (request.dry_run, mutation.reused) {
        (true, _) => "dry_run",
        (false, true) => "reused",
        (false, false) => "allocated",
    };
    match response.with_patch(mutation.patch) {
        Ok(patched) => {
            metrics.count(true, reason);
            let ports: Vec<String> = mutation
                .bindings
                .iter()
                .map(|b| {
                    format!(
                        "{}/{} {}:{:?} {}",
                        b.pool_namespace, b.pool_name, b.pool_item_name, b.protocol, b.start_port
                    )
                })
                .collect();
            tracing::info!(uid = %request.uid, %namespace, name = %request.name, reused = mutation.reused, dry_run = request.dry_run, ?ports, "pod ports bound");
            Json(patched.into_review())
        }
        Err(e) => {
            if !request.dry_run {
                pools.with_allocator(|a| pod::release_all(a, &mutation.allocated));
                pools.forget_pending(&pending_ports(&mutation.allocated));
            }
            Json(pod_denied(
                &request,
                metrics,
                &Denial::internal(format!("serialising the patch: {e}")),
            ))
        }
    }
}

/// The PortBinding named like the pod (keep-duration reuse). Only a fixed name can find one: a generateName pod
/// has no name yet at admission.
async fn previous_binding(
    state: &WebhookState,
    pod: &Pod,
    namespace: &str,
) -> Result<Option<PortBinding>, Denial> {
    let Some(name) = pod.metadata.name.as_deref().filter(|n| !n.is_empty()) else {
        return Ok(None);
    };
    let api: Api<PortBinding> = Api::namespaced(state.client.clone(), namespace);
    match tokio::time::timeout(state.request_timeout, api.get_opt(name)).await {
        Ok(Ok(found)) => Ok(found),
        Ok(Err(e)) => Err(Denial::internal(format!(
            "clb-controller webhook cannot read the cluster: {e}"
        ))),
        Err(_) => Err(Denial::internal(format!(
            "clb-controller webhook could not decide within {:?}",
            state.request_timeout
        ))),
    }
}

/// Pod CREATE, validating: marks the pod's port reservation validated with its name and uid (taking again
/// ports released meanwhile if they are still free), or denies the pod when one went to another pod. A dry
/// run and a pod without a reservation pass untouched.
pub(crate) async fn pod_validate(
    State(state): State<Arc<WebhookState>>,
    Json(review): Json<Review>,
) -> Json<Review> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return malformed(e),
    };
    let response = AdmissionResponse::from(&request);
    let metrics = &state.pod.metrics;
    let (Operation::Create, false, Some(object)) =
        (&request.operation, request.dry_run, &request.object)
    else {
        return Json(response.into_review());
    };
    let deny = |reason: &str, message: String| {
        metrics.count_validation(false, reason);
        tracing::info!(uid = %request.uid, namespace = request.namespace.as_deref().unwrap_or(""), name = %request.name, reason, %message, "pod refused at validation");
        Json(
            AdmissionResponse::from(&request)
                .deny(message)
                .into_review(),
        )
    };
    let pod: Pod = match typed(object) {
        Ok(p) => p,
        Err(e) => return deny(pod::DenialReason::Internal.as_str(), e),
    };
    let namespace = request
        .namespace
        .clone()
        .or_else(|| pod.metadata.namespace.clone())
        .unwrap_or_else(|| "default".into());
    let check = match pod::reservation_check(&pod, &namespace) {
        Ok(Some(check)) => check,
        Ok(None) => return Json(response.into_review()),
        Err(denial) => return deny(denial.reason.as_str(), denial.message),
    };
    let pools = &state.pod.pools;
    if !pools.is_ready() {
        return deny(
            pod::DenialReason::NotReady.as_str(),
            pod::NOT_READY_MESSAGE.to_owned(),
        );
    }
    match pools.validate_reservation(&check, state.pod.reservation_timeout) {
        Ok(retaken) => {
            let reason = if retaken == 0 { "validated" } else { "retaken" };
            metrics.count_validation(true, reason);
            tracing::debug!(%namespace, pod = %check.pod, reservation = %check.reservation, retaken, "pod reservation validated");
            Json(response.into_review())
        }
        Err(message) => deny("reservation_lost", message),
    }
}

/// The pool state's pending-allocation keys of ports the webhook took.
fn pending_ports(held: &[pod::HeldPort]) -> Vec<crate::pools::PendingPort> {
    held.iter()
        .map(|h| {
            (
                h.pool.clone(),
                h.allocation.item.to_string(),
                h.allocation.protocol,
                h.allocation.start_port,
            )
        })
        .collect()
}

/// A denied pod review, counted and logged.
fn pod_denied(
    request: &AdmissionRequest<DynamicObject>,
    metrics: &pod::PodWebhookMetrics,
    denial: &Denial,
) -> Review {
    metrics.count(false, denial.reason.as_str());
    tracing::info!(uid = %request.uid, namespace = request.namespace.as_deref().unwrap_or(""), name = %request.name, reason = denial.reason.as_str(), message = %denial.message, "pod denied");
    AdmissionResponse::from(request)
        .deny(denial.message.clone())
        .into_review()
}

/// Answer to a review without a usable request.
pub(crate) fn malformed(e: ConvertAdmissionReviewError) -> Json<Review> {
    tracing::warn!(error = %e, "malformed AdmissionReview");
    Json(AdmissionResponse::invalid(e.to_string()).into_review())
}

/// Why a decision could not be made.
enum Undecided {
    Kube(kube::Error),
    Timeout(Duration),
}

impl From<kube::Error> for Undecided {
    fn from(e: kube::Error) -> Self {
        Undecided::Kube(e)
    }
}

async fn bounded<F>(state: &WebhookState, decide: F) -> Result<Vec<String>, Undecided>
where
    F: Future<Output = Result<Vec<String>, Undecided>>,
{
    match tokio::time::timeout(state.request_timeout, decide).await {
        Ok(result) => result,
        Err(_) => Err(Undecided::Timeout(state.request_timeout)),
    }
}

/// Allowed when there are no errors; otherwise denied with every message, one per line.
fn respond(
    request: &AdmissionRequest<DynamicObject>,
    decision: Result<Vec<String>, Undecided>,
) -> AdmissionResponse {
    let kind = &request.kind.kind;
    let namespace = request.namespace.as_deref().unwrap_or("");
    let name = &request.name;
    let response = AdmissionResponse::from(request);
    match decision {
        Ok(errors) if errors.is_empty() => {
            tracing::debug!(uid = %request.uid, %kind, %namespace, %name, operation = ?request.operation, "admitted");
            response
        }
        Ok(errors) => {
            tracing::info!(uid = %request.uid, %kind, %namespace, %name, operation = ?request.operation, errors = errors.len(), "denied");
            response.deny(errors.join("\n"))
        }
        Err(Undecided::Kube(e)) => {
            tracing::warn!(uid = %request.uid, %kind, %namespace, %name, error = %e, "cannot read the cluster; denying");
            response.deny(format!(
                "clb-controller webhook cannot read the cluster: {e}"
            ))
        }
        Err(Undecided::Timeout(limit)) => {
            tracing::warn!(uid = %request.uid, %kind, %namespace, %name, "admission decision timed out; denying");
            response.deny(format!(
                "clb-controller webhook could not decide within {limit:?}"
            ))
        }
    }
}

/// The typed object, or a message saying why it is not one.
pub(crate) fn typed<K: DeserializeOwned>(object: &DynamicObject) -> Result<K, String> {
    serde_json::to_value(object)
        .and_then(serde_json::from_value)
        .map_err(|e| format!("object does not parse: {e}"))
}
