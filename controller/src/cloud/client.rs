//! The HTTP edge: one signed POST per attempt, rate limited per action, retried only on "not now" errors, all
//! within one deadline per operation.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clb_api::sign::{Tc3Request, Tc3Signer};
use reqwest::Url;
use serde_json::Value;
use tokio::time::Instant;
use tracing::{Instrument, debug, field, info_span, warn};

use super::credentials::Credentials;
use super::error::CloudError;
use super::metrics::CloudMetrics;
use super::ratelimit::{RateLimit, RateLimiter};
use super::retry::{RetryPolicy, is_retryable};
use super::task::TaskPollPolicy;

/// The public Tencent Cloud endpoint for CLB.
pub const DEFAULT_ENDPOINT: &str = "https://clb.tencentcloudapi.com";
/// The CLB API version this client speaks.
pub const API_VERSION: &str = clb_api::actions::VERSION;
const CONTENT_TYPE: &str = "application/json";

/// Whether `action` returns before its effect is complete (poll DescribeTaskStatus with its RequestId).
/// Actions clb-api does not know are treated as synchronous.
pub fn is_async_action(action: &str) -> bool {
    clb_api::actions::find(action).is_some_and(|a| a.is_async)
}

/// Knobs of the client; each maps to a controller flag (see controller/README.md, "CLB client").
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `https://clb.tencentcloudapi.com`, or `http://127.0.0.1:9000` for fake-clb.
    pub endpoint: String,
    /// Region of load balancers given without a `region:` prefix.
    pub default_region: String,
    /// Limit of one HTTP request (connect + answer).
    pub request_timeout: Duration,
    /// Limit of one operation: every attempt, backoff, rate-limit wait and task poll included.
    pub operation_timeout: Duration,
    /// Client-side token bucket applied to each action separately.
    pub rate_limit: RateLimit,
    /// Per-action overrides of `rate_limit`.
    pub rate_limit_overrides: HashMap<String, RateLimit>,
    pub retry: RetryPolicy,
    pub task_poll: TaskPollPolicy,
    /// Most `Ports` in one CreateListener (the API rejects 50 or more).
    pub create_listener_max_ports: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            endpoint: DEFAULT_ENDPOINT.to_string(),
            default_region: String::new(),
            request_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(120),
            rate_limit: RateLimit::default(),
            rate_limit_overrides: HashMap::new(),
            retry: RetryPolicy::default(),
            task_poll: TaskPollPolicy::default(),
            create_listener_max_ports: super::batch::MAX_CREATE_LISTENER_PORTS,
        }
    }
}

/// A load balancer as the controller names it: `region:lb-id`, or a bare `lb-id` in the default region.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LbRef {
    pub region: String,
    pub lb_id: String,
}

impl LbRef {
    pub fn new(region: impl Into<String>, lb_id: impl Into<String>) -> Self {
        LbRef {
            region: region.into(),
            lb_id: lb_id.into(),
        }
    }

    /// Parses `region:lb-id` or `lb-id` (then `default_region` applies, which must not be empty).
    pub fn parse(s: &str, default_region: &str) -> Result<Self, CloudError> {
        let (region, id) = match s.split_once(':') {
            Some((r, id)) => (r.trim(), id.trim()),
            None => (default_region, s.trim()),
        };
        if region.is_empty() {
            return Err(CloudError::Config(format!(
                "load balancer {s:?} has no region and no default region is configured"
            )));
        }
        if id.is_empty() || id.contains(':') {
            return Err(CloudError::Config(format!(
                "bad load balancer reference {s:?}"
            )));
        }
        Ok(LbRef::new(region, id))
    }
}

impl fmt::Display for LbRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.region, self.lb_id)
    }
}

/// The CLB API client. Cheap to clone; clones share rate limits, connections and metrics.
#[derive(Clone)]
pub struct ClbClient {
    inner: Arc<Inner>,
    operation_timeout: Duration,
}

struct Inner {
    http: reqwest::Client,
    url: Url,
    /// Host header value as signed: host plus `:port` when the endpoint names a non-default port.
    host: String,
    secret_id: String,
    signer: Tc3Signer,
    config: ClientConfig,
    limiter: RateLimiter,
    metrics: CloudMetrics,
}

impl fmt::Debug for ClbClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClbClient")
            .field("endpoint", &self.inner.url.as_str())
            .field("default_region", &self.inner.config.default_region)
            .finish_non_exhaustive()
    }
}

impl ClbClient {
    pub fn new(
        config: ClientConfig,
        credentials: &Credentials,
        metrics: CloudMetrics,
    ) -> Result<Self, CloudError> {
        let url = Url::parse(&config.endpoint)
            .map_err(|e| CloudError::Config(format!("endpoint {:?}: {e}", config.endpoint)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(CloudError::Config(format!(
                "endpoint {:?}: scheme must be http or https",
                config.endpoint
            )));
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => {
                return Err(CloudError::Config(format!(
                    "endpoint {:?} has no host",
                    config.endpoint
                )));
            }
        };
        let http = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout)
            .build()
            .map_err(|e| CloudError::Config(format!("HTTP client: {e}")))?;
        let limiter = RateLimiter::new(config.rate_limit, config.rate_limit_overrides.clone());
        Ok(ClbClient {
            operation_timeout: config.operation_timeout,
            inner: Arc::new(Inner {
                http,
                url,
                host,
                secret_id: credentials.secret_id().to_string(),
                signer: credentials.signer(),
                config,
                limiter,
                metrics,
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    pub fn metrics(&self) -> &CloudMetrics {
        &self.inner.metrics
    }

    /// Parses a `region:lb-id` reference with this client's default region.
    pub fn lb(&self, s: &str) -> Result<LbRef, CloudError> {
        LbRef::parse(s, &self.inner.config.default_region)
    }

    /// The deadline of an operation that starts now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.operation_timeout
    }

    /// A handle whose operations get `timeout` instead of the configured operation timeout; it shares rate limits,
    /// connections and metrics with `self`.
    pub fn with_operation_timeout(&self, timeout: Duration) -> Self {
        ClbClient {
            inner: self.inner.clone(),
            operation_timeout: timeout,
        }
    }

    /// Calls `action` with `params` and returns the `Response` object (with `RequestId`), retrying per the policy
    /// until the configured operation timeout. Does not wait for async tasks.
    pub async fn call_json(
        &self,
        region: &str,
        action: &str,
        params: Value,
    ) -> Result<Value, CloudError> {
        self.call_json_until(region, action, &params, self.deadline())
            .await
    }

    /// [`Self::call_json`] with an explicit deadline shared with the rest of the operation.
    pub async fn call_json_until(
        &self,
        region: &str,
        action: &str,
        params: &Value,
        deadline: Instant,
    ) -> Result<Value, CloudError> {
        let body = serde_json::to_vec(params).map_err(|e| CloudError::Decode {
            action: action.to_string(),
            request_id: String::new(),
            message: format!("serialising the request: {e}"),
        })?;
        let lb_id = params
            .get("LoadBalancerId")
            .and_then(Value::as_str)
            .unwrap_or("");
        let span = info_span!(
            "clb_call",
            action,
            region,
            lb_id,
            request_id = field::Empty,
            attempts = field::Empty,
        );
        self.call_with_retries(region, action, &body, deadline)
            .instrument(span)
            .await
    }

    async fn call_with_retries(
        &self,
        region: &str,
        action: &str,
        body: &[u8],
        deadline: Instant,
    ) -> Result<Value, CloudError> {
        let policy = self.inner.config.retry;
        let max_attempts = policy.max_attempts.max(1);
        let mut attempt = 0u32;
        let mut last: Option<CloudError> = None;
        loop {
            attempt += 1;
            let span = tracing::Span::current();
            span.record("attempts", attempt);
            let deadline_error = |last: Option<CloudError>| CloudError::DeadlineExceeded {
                action: action.to_string(),
                attempts: attempt - 1,
                last: last.map(Box::new),
            };

            let wait = self.inner.limiter.reserve(action);
            if Instant::now() + wait >= deadline {
                return Err(deadline_error(last));
            }
            if !wait.is_zero() {
                self.inner.metrics.observe_rate_limit_wait(action, wait);
                tokio::time::sleep(wait).await;
            }

            let result =
                match tokio::time::timeout_at(deadline, self.send_once(region, action, body)).await
                {
                    Ok(result) => result,
                    Err(_) => {
                        self.inner
                            .metrics
                            .observe_call(action, "Timeout", Duration::ZERO);
                        return Err(deadline_error(last));
                    }
                };
            let error = match result {
                Ok((request_id, response)) => {
                    span.record("request_id", request_id.as_str());
                    debug!(attempt, "CLB call succeeded");
                    return Ok(response);
                }
                Err(e) => e,
            };
            if let Some(id) = error.request_id() {
                span.record("request_id", id);
            }
            if !is_retryable(&error, action) {
                debug!(attempt, error = %error, "CLB call failed, not retryable");
                return Err(error);
            }
            if attempt >= max_attempts {
                return Err(CloudError::RetriesExhausted {
                    action: action.to_string(),
                    attempts: attempt,
                    last: Box::new(error),
                });
            }
            let delay = policy.backoff(attempt - 1, &mut rand::rng());
            if Instant::now() + delay >= deadline {
                return Err(CloudError::DeadlineExceeded {
                    action: action.to_string(),
                    attempts: attempt,
                    last: Some(Box::new(error)),
                });
            }
            let reason = retry_reason(&error);
            warn!(attempt, ?delay, reason, error = %error, "CLB call failed, retrying");
            self.inner.metrics.observe_retry(action, reason);
            last = Some(error);
            tokio::time::sleep(delay).await;
        }
    }

    /// One signed POST. Returns the RequestId and the `Response` object.
    async fn send_once(
        &self,
        region: &str,
        action: &str,
        body: &[u8],
    ) -> Result<(String, Value), CloudError> {
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let authorization = self.inner.signer.authorization(&Tc3Request {
            method: "POST",
            host: &self.inner.host,
            query: "",
            content_type: CONTENT_TYPE,
            body,
            timestamp,
        });
        let started = Instant::now();
        let sent = self
            .inner
            .http
            .post(self.inner.url.clone())
            .header("Host", &self.inner.host)
            .header("Content-Type", CONTENT_TYPE)
            .header("Authorization", authorization)
            .header("X-TC-Action", action)
            .header("X-TC-Version", API_VERSION)
            .header("X-TC-Timestamp", timestamp.to_string())
            .header("X-TC-Region", region)
            .header("X-TC-Language", "en-US")
            .body(body.to_vec())
            .send()
            .await;
        let transport = |e: reqwest::Error| CloudError::Transport {
            action: action.to_string(),
            message: e.to_string(),
            timeout: e.is_timeout(),
        };
        let outcome = match sent {
            Ok(response) => {
                let status = response.status();
                match response.bytes().await {
                    Ok(bytes) if status.is_success() => parse_envelope(action, &bytes),
                    Ok(bytes) => Err(CloudError::Transport {
                        action: action.to_string(),
                        message: format!(
                            "HTTP {status}: {}",
                            String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                        ),
                        timeout: false,
                    }),
                    Err(e) => Err(transport(e)),
                }
            }
            Err(e) => Err(transport(e)),
        };
        let result_label = match &outcome {
            Ok(_) => "OK",
            Err(CloudError::Api { error, .. }) => error.code.as_str(),
            Err(CloudError::Transport { timeout: true, .. }) => "Timeout",
            Err(CloudError::Transport { .. }) => "Transport",
            Err(_) => "BadResponse",
        };
        self.inner
            .metrics
            .observe_call(action, result_label, started.elapsed());
        outcome
    }

    /// The SecretId this client signs with (for logs that must say which account acted).
    pub fn secret_id(&self) -> &str {
        &self.inner.secret_id
    }
}

fn retry_reason(error: &CloudError) -> &str {
    match error {
        CloudError::Api { error, .. } => error.code.as_str(),
        CloudError::Transport { timeout: true, .. } => "Timeout",
        _ => "Transport",
    }
}

/// Splits an API 3.0 envelope (via clb-api) into the RequestId and the `Response` object, or the typed API error.
/// A body that is no envelope comes back from clb-api as `InternalError`.
pub(crate) fn parse_envelope(action: &str, bytes: &[u8]) -> Result<(String, Value), CloudError> {
    let response: Value = clb_api::envelope::parse(bytes).map_err(|error| CloudError::Api {
        action: action.to_string(),
        error,
    })?;
    let request_id = response
        .get("RequestId")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Ok((request_id, response))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clb_api::error::ErrorCode;

    #[test]
    fn lb_refs_parse_with_and_without_region() {
        assert_eq!(
            LbRef::parse("ap-shanghai:lb-abc", "ap-guangzhou").unwrap(),
            LbRef::new("ap-shanghai", "lb-abc")
        );
        assert_eq!(
            LbRef::parse("lb-abc", "ap-guangzhou").unwrap(),
            LbRef::new("ap-guangzhou", "lb-abc")
        );
        assert!(LbRef::parse("lb-abc", "").is_err());
        assert!(LbRef::parse("ap-guangzhou:", "x").is_err());
        assert_eq!(LbRef::new("r", "lb-1").to_string(), "r:lb-1");
    }

    #[test]
    fn envelope_success_and_error() {
        let (id, resp) = parse_envelope(
            "CreateListener",
            br#"{"Response":{"ListenerIds":["lbl-1"],"RequestId":"req-1"}}"#,
        )
        .unwrap();
        assert_eq!(id, "req-1");
        assert_eq!(resp["ListenerIds"][0], "lbl-1");

        let err = parse_envelope(
            "CreateListener",
            br#"{"Response":{"Error":{"Code":"InvalidParameter.PortCheckFailed","Message":"port used"},"RequestId":"req-2"}}"#,
        )
        .unwrap_err();
        assert_eq!(
            err.code(),
            Some(&ErrorCode::InvalidParameterPortCheckFailed)
        );
        assert_eq!(err.request_id(), Some("req-2"));
        assert_eq!(err.api_message(), Some("port used"));

        let garbage = parse_envelope("X", b"<html>").unwrap_err();
        assert_eq!(garbage.code(), Some(&ErrorCode::InternalError));
        assert!(parse_envelope("X", br#"{"Nope":1}"#).is_err());
    }

    #[test]
    fn endpoint_host_keeps_explicit_port_only() {
        let creds = Credentials::new("AKIDx", "k").unwrap();
        let mk = |endpoint: &str| {
            ClbClient::new(
                ClientConfig {
                    endpoint: endpoint.into(),
                    ..ClientConfig::default()
                },
                &creds,
                CloudMetrics::default(),
            )
        };
        assert_eq!(
            mk("http://127.0.0.1:9000").unwrap().inner.host,
            "127.0.0.1:9000"
        );
        assert_eq!(
            mk(DEFAULT_ENDPOINT).unwrap().inner.host,
            "clb.tencentcloudapi.com"
        );
        assert!(mk("ftp://x").is_err());
        assert!(mk("not a url").is_err());
    }

    #[test]
    fn async_actions_table() {
        assert!(is_async_action("CreateListener"));
        assert!(is_async_action("BatchModifyTargetWeight"));
        assert!(!is_async_action("BatchRegisterTargets"));
        assert!(!is_async_action("DescribeListeners"));
    }
}
