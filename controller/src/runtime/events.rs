//! Publishing Kubernetes events from a reconcile pass: bounded by [`API_TIMEOUT`], and a failure is logged and
//! counted, never fails the pass (an event is a report, not state).

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder};
use prometheus_client::metrics::counter::Counter;

use super::error::API_TIMEOUT;

/// Longest event note the controller writes (the API server refuses notes over 1 KiB).
const MAX_NOTE_CHARS: usize = 1000;

/// Publishes a Warning event `reason` with `note` on `object`; counts a failure in `failures`.
pub async fn warn(
    recorder: &Recorder,
    object: &ObjectReference,
    reason: &str,
    action: &str,
    note: &str,
    failures: &Counter,
) {
    let event = Event {
        type_: EventType::Warning,
        reason: reason.to_owned(),
        note: Some(note.chars().take(MAX_NOTE_CHARS).collect()),
        action: action.to_owned(),
        secondary: None,
    };
    match tokio::time::timeout(API_TIMEOUT, recorder.publish(&event, object)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            failures.inc();
            tracing::warn!(error = %e, %reason, "publishing an event failed");
        }
        Err(_) => {
            failures.inc();
            tracing::warn!(%reason, "publishing an event timed out");
        }
    }
}
