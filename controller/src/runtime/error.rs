//! The error of one reconcile pass. The driver logs it in the object's span, counts it under
//! [`ReconcileError::label`] and retries the key with backoff.

use std::future::Future;
use std::time::Duration;

use crate::cloud::CloudError;

/// Limit of every Kubernetes API call a reconciler makes: a hung call must not stall its key forever.
pub const API_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a reconcile pass failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The API server refused or failed a call.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// A CLB call failed (after the client's own retries).
    #[error("CLB API: {0}")]
    Cloud(#[from] CloudError),
    /// A Kubernetes API call did not answer within [`API_TIMEOUT`].
    #[error("{what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    /// The object (or what it refers to) cannot be acted on until someone changes it.
    #[error("{0}")]
    Invalid(String),
}

impl ReconcileError {
    /// Metric label of the error kind (`reason` of `clb_controller_reconcile_errors_total`).
    pub fn label(&self) -> &'static str {
        match self {
            ReconcileError::Kube(_) => "kube",
            ReconcileError::Cloud(_) => "cloud",
            ReconcileError::Timeout { .. } => "timeout",
            ReconcileError::Invalid(_) => "invalid",
        }
    }

    /// 404 from the API server: the object is already gone.
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReconcileError::Kube(kube::Error::Api(s)) if s.code == 404)
    }

    /// Worth trying again as is: the API server was unreachable, overloaded (429, 5xx) or too slow.
    pub fn is_transient(&self) -> bool {
        match self {
            ReconcileError::Kube(kube::Error::Api(status)) => {
                status.code == 429 || status.code >= 500
            }
            ReconcileError::Kube(_) | ReconcileError::Timeout { .. } => true,
            ReconcileError::Cloud(_) | ReconcileError::Invalid(_) => false,
        }
    }

    /// The API server refused a create because the namespace is being deleted (status cause
    /// `NamespaceTerminating`): the object follows its namespace, nothing to warn about.
    pub fn is_namespace_terminating(&self) -> bool {
        match self {
            ReconcileError::Kube(kube::Error::Api(status)) => status
                .details
                .as_ref()
                .is_some_and(|d| d.causes.iter().any(|c| c.reason == "NamespaceTerminating")),
            _ => false,
        }
    }
}

/// Runs one Kubernetes API call under [`API_TIMEOUT`]; `what` names it in the timeout error.
pub async fn api_call<T>(
    what: &str,
    call: impl Future<Output = Result<T, kube::Error>>,
) -> Result<T, ReconcileError> {
    match tokio::time::timeout(API_TIMEOUT, call).await {
        Ok(result) => result.map_err(ReconcileError::from),
        Err(_) => Err(ReconcileError::Timeout {
            what: what.to_owned(),
            after: API_TIMEOUT,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api_error(status: serde_json::Value) -> ReconcileError {
        let status = serde_json::from_value(status).expect("a Status");
        ReconcileError::Kube(kube::Error::Api(Box::new(status)))
    }

    #[test]
    fn only_the_namespace_terminating_cause_counts() {
        let terminating = api_error(serde_json::json!({
            "status": "Failure", "code": 403, "reason": "Forbidden",
            "message": "unable to create new content in namespace game because it is being terminated",
            "details": {"causes": [{"reason": "NamespaceTerminating", "field": "metadata.namespace"}]},
        }));
        assert!(terminating.is_namespace_terminating());
        assert!(!terminating.is_not_found());
        let forbidden = api_error(serde_json::json!({
            "status": "Failure", "code": 403, "reason": "Forbidden", "message": "no",
        }));
        assert!(!forbidden.is_namespace_terminating());
        assert_eq!(forbidden.label(), "kube");
    }

    #[test]
    fn unreachable_overloaded_or_slow_is_transient_and_a_refusal_is_not() {
        let status = |code: u16| {
            api_error(serde_json::json!({"status": "Failure", "code": code, "message": "x"}))
        };
        assert!(status(429).is_transient());
        assert!(status(503).is_transient());
        assert!(!status(403).is_transient());
        assert!(!status(404).is_transient());
        assert!(!status(409).is_transient());
        let timeout = ReconcileError::Timeout {
            what: "writing".into(),
            after: API_TIMEOUT,
        };
        assert!(timeout.is_transient());
        assert!(!ReconcileError::Invalid("bad".into()).is_transient());
    }

    #[test]
    fn not_found_is_a_404_only() {
        let gone = api_error(serde_json::json!({
            "status": "Failure", "code": 404, "reason": "NotFound", "message": "gone",
        }));
        assert!(gone.is_not_found());
        let timeout = ReconcileError::Timeout {
            what: "listing pods".into(),
            after: API_TIMEOUT,
        };
        assert!(!timeout.is_not_found());
        assert_eq!(timeout.label(), "timeout");
        assert_eq!(timeout.to_string(), "listing pods timed out after 10s");
    }
}
