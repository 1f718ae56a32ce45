//! `/randhostport/v1/mutate`: the random-hostPort webhook for Pod CREATE (see [`crate::randhostport`]). Leader
//! only, like the pool webhook: other replicas (and the leader before its pod watch has listed the pods) deny
//! annotated pods with a retry message, so no port is picked from a half-known load.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::State;
use k8s_openapi::api::core::v1::Pod;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview, Operation};

use super::server::{WebhookState, malformed, typed};
use crate::randhostport::{self, build_patch, requested_ports};

/// Denial while the leader has not listed the pods yet, or on a replica that does not lead.
pub const NOT_READY_MESSAGE: &str =
    "random host port allocator is not ready yet (rebuilding); retry";

type Review = AdmissionReview<DynamicObject>;

pub(crate) async fn randhostport_mutate(
    State(state): State<Arc<WebhookState>>,
    Json(review): Json<Review>,
) -> Json<Review> {
    let request: AdmissionRequest<DynamicObject> = match review.try_into() {
        Ok(r) => r,
        Err(e) => return malformed(e),
    };
    let response = AdmissionResponse::from(&request);
    let (Operation::Create, Some(object)) = (&request.operation, &request.object) else {
        return Json(response.into_review());
    };
    let deny = |message: String| {
        tracing::info!(uid = %request.uid, namespace = request.namespace.as_deref().unwrap_or(""), %message, "pod denied random host ports");
        Json(
            AdmissionResponse::from(&request)
                .deny(message)
                .into_review(),
        )
    };
    let pod: Pod = match typed(object) {
        Ok(p) => p,
        Err(e) => return deny(e),
    };
    if !randhostport::wants(&pod) {
        return Json(response.into_review());
    }
    let Some(ports) = state.pod.randhostport.as_ref() else {
        return deny(
            "random host ports are not enabled on this controller (--randhostport)".into(),
        );
    };
    if !ports.is_ready() {
        return deny(NOT_READY_MESSAGE.into());
    }
    let wanted = match requested_ports(&pod) {
        Ok(w) => w,
        Err(e) => return deny(e.to_string()),
    };
    let host_ports = match ports.admit(wanted.len(), request.dry_run, Instant::now()) {
        Ok(p) => p,
        Err(e) => return deny(e.to_string()),
    };
    let patch = match build_patch(&pod, &wanted, &host_ports) {
        Ok(p) => p,
        Err(e) => return deny(e),
    };
    match response.with_patch(patch) {
        Ok(patched) => {
            tracing::info!(uid = %request.uid, namespace = request.namespace.as_deref().unwrap_or(""), ?host_ports, dry_run = request.dry_run, "random host ports injected");
            Json(patched.into_review())
        }
        Err(e) => deny(format!("serialising the patch: {e}")),
    }
}
