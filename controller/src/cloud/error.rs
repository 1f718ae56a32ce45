//! The typed error of every CLB call: the API's code, message and RequestId survive so that status messages and
//! events can quote them.

use clb_api::error::{ApiError, ErrorCode};

/// Why a CLB operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CloudError {
    /// The API answered with `Response.Error`.
    #[error("{action} failed: {error}")]
    Api { action: String, error: ApiError },

    /// An async call was accepted but its task ended with Status 1.
    #[error("{action} task {task_id} failed: {message}")]
    TaskFailed {
        action: String,
        task_id: String,
        message: String,
    },

    /// DescribeTaskStatus returned a Status other than 0, 1 or 2.
    #[error("{action} task {task_id} returned unknown status {status}")]
    TaskStatusUnknown {
        action: String,
        task_id: String,
        status: i64,
    },

    /// The task was still in progress (Status 2) when the operation's deadline passed.
    #[error("{action} task {task_id} still in progress at the deadline")]
    TaskTimeout { action: String, task_id: String },

    /// The operation's deadline passed before a call succeeded (waiting for the rate limiter, a response or a retry).
    #[error(
        "{action} did not complete before its deadline after {attempts} attempt(s){}",
        last_suffix(last)
    )]
    DeadlineExceeded {
        action: String,
        attempts: u32,
        last: Option<Box<CloudError>>,
    },

    /// Every allowed attempt of a retryable error was used.
    #[error("{action} gave up after {attempts} attempts: {last}")]
    RetriesExhausted {
        action: String,
        attempts: u32,
        last: Box<CloudError>,
    },

    /// The request never produced an API answer (connect error, reset, per-request timeout, non-200 status).
    #[error("{action}: transport error: {message}")]
    Transport {
        action: String,
        message: String,
        timeout: bool,
    },

    /// The answer was not a valid API 3.0 envelope or lacked a field the operation needs.
    #[error("{action}: unexpected response (RequestId {request_id}): {message}")]
    Decode {
        action: String,
        request_id: String,
        message: String,
    },

    /// Credentials could not be loaded.
    #[error("credentials: {0}")]
    Credentials(String),

    /// The client configuration is unusable (bad endpoint, bad load balancer reference, …).
    #[error("configuration: {0}")]
    Config(String),
}

fn last_suffix(last: &Option<Box<CloudError>>) -> String {
    match last {
        Some(e) => format!("; last error: {e}"),
        None => String::new(),
    }
}

impl CloudError {
    /// The innermost error (looks through retry and deadline wrappers).
    pub fn root(&self) -> &CloudError {
        match self {
            CloudError::RetriesExhausted { last, .. } => last.root(),
            CloudError::DeadlineExceeded {
                last: Some(last), ..
            } => last.root(),
            other => other,
        }
    }

    /// The API error code, when the API answered with one.
    pub fn code(&self) -> Option<&ErrorCode> {
        match self.root() {
            CloudError::Api { error, .. } => Some(&error.code),
            _ => None,
        }
    }

    /// The API's message for API errors and failed tasks.
    pub fn api_message(&self) -> Option<&str> {
        match self.root() {
            CloudError::Api { error, .. } => Some(&error.message),
            CloudError::TaskFailed { message, .. } => Some(message),
            _ => None,
        }
    }

    /// The RequestId (or TaskId) to quote when asking Tencent Cloud support about this failure.
    pub fn request_id(&self) -> Option<&str> {
        let id = match self.root() {
            CloudError::Api { error, .. } => error.request_id.as_str(),
            CloudError::TaskFailed { task_id, .. }
            | CloudError::TaskStatusUnknown { task_id, .. }
            | CloudError::TaskTimeout { task_id, .. } => task_id.as_str(),
            CloudError::Decode { request_id, .. } => request_id.as_str(),
            _ => "",
        };
        (!id.is_empty()).then_some(id)
    }

    /// The load balancer does not exist (any more): for deletes this means "already gone".
    ///
    /// Matches the code and, like tke, the message substrings the real API uses on actions whose code is plain
    /// `InvalidParameter`.
    pub fn is_lb_not_found(&self) -> bool {
        match self.root() {
            CloudError::Api { error, .. } => {
                error.code == ErrorCode::InvalidParameterLbIdNotFound
                    || error.message.contains("LoadBalancer not exist")
                    || error.message.contains("LB not exist")
            }
            _ => false,
        }
    }

    /// The operation ran out of time (its deadline, or a task that never finished).
    pub fn is_timeout(&self) -> bool {
        match self {
            CloudError::DeadlineExceeded { .. } | CloudError::TaskTimeout { .. } => true,
            CloudError::RetriesExhausted { last, .. } => last.is_timeout(),
            CloudError::Transport { timeout, .. } => *timeout,
            _ => false,
        }
    }

    /// The async task ran and failed.
    pub fn is_task_failed(&self) -> bool {
        matches!(self.root(), CloudError::TaskFailed { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(code: ErrorCode, message: &str) -> CloudError {
        CloudError::Api {
            action: "DeleteLoadBalancerListeners".into(),
            error: ApiError {
                code,
                message: message.into(),
                request_id: "6082314c-030c-429d-9eae-2dc6b159b5b9".into(),
            },
        }
    }

    #[test]
    fn lb_not_found_by_code_or_message() {
        assert!(api(ErrorCode::InvalidParameterLbIdNotFound, "x").is_lb_not_found());
        assert!(api(ErrorCode::InvalidParameter, "LoadBalancer not exist: lb-1").is_lb_not_found());
        assert!(api(ErrorCode::InvalidParameter, "LB not exist").is_lb_not_found());
        assert!(!api(ErrorCode::InvalidParameter, "some ListenerId not found").is_lb_not_found());
    }

    #[test]
    fn wrappers_expose_the_root_code_and_request_id() {
        let wrapped = CloudError::RetriesExhausted {
            action: "CreateListener".into(),
            attempts: 5,
            last: Box::new(api(ErrorCode::RequestLimitExceeded, "slow down")),
        };
        assert_eq!(wrapped.code(), Some(&ErrorCode::RequestLimitExceeded));
        assert_eq!(
            wrapped.request_id(),
            Some("6082314c-030c-429d-9eae-2dc6b159b5b9")
        );
        assert_eq!(wrapped.api_message(), Some("slow down"));
        let text = wrapped.to_string();
        assert!(
            text.contains("RequestLimitExceeded") && text.contains("slow down"),
            "{text}"
        );
    }
}
