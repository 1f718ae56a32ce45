//! A typed client of fake-clb's control API, for tests, benchmarks and the scenario harness.
//!
//! ```no_run
//! # async fn demo() -> Result<(), fake_clb::admin_client::AdminClientError> {
//! use fake_clb::admin_client::AdminClient;
//! let admin = AdminClient::new("http://127.0.0.1:9001")?;
//! admin.reset().await?;
//! let state = admin.state(&Default::default()).await?;
//! # let _ = state; Ok(()) }
//! ```

use std::time::Duration;

use reqwest::Method;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::admin_api::{
    AdminErrorBody, AdminPath, ConsoleTarget, CreateLoadBalancer, CreatedLoadBalancer, FaultRule,
    Limits, LimitsPatch, LogEntry, RequestsQuery, StateDump, StateQuery, Status,
};

/// How long one control-API request may take unless [`AdminClient::with_timeout`] says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a control-API call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminClientError {
    /// The base URL could not be used.
    #[error("invalid fake-clb admin URL {url}: {message}")]
    InvalidUrl { url: String, message: String },
    /// No answer: connection refused or reset, or the per-request timeout passed.
    #[error("{method} {path}: {source}")]
    Transport {
        method: Method,
        path: AdminPath,
        #[source]
        source: reqwest::Error,
    },
    /// fake-clb answered with an error status and its `{"error": …}` message.
    #[error("{method} {path}: HTTP {status}: {message}")]
    Refused {
        method: Method,
        path: AdminPath,
        status: u16,
        message: String,
    },
    /// The answer was not the documented JSON.
    #[error("{method} {path}: unexpected answer: {message}")]
    Decode {
        method: Method,
        path: AdminPath,
        message: String,
    },
}

/// The control API of one fake-clb (its admin listener).
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    timeout: Duration,
}

impl AdminClient {
    /// A client of the admin listener at `base_url` (e.g. `http://127.0.0.1:9001`), never through a proxy.
    pub fn new(base_url: impl Into<String>) -> Result<Self, AdminClientError> {
        let base = base_url.into().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(AdminClientError::InvalidUrl {
                url: base,
                message: "expected http:// or https://".into(),
            });
        }
        let http = reqwest::Client::builder().no_proxy().build().map_err(|e| {
            AdminClientError::InvalidUrl {
                url: base.clone(),
                message: e.to_string(),
            }
        })?;
        Ok(AdminClient {
            http,
            base,
            timeout: DEFAULT_TIMEOUT,
        })
    }

    /// A client of the admin listener at `addr`.
    pub fn for_addr(addr: std::net::SocketAddr) -> Result<Self, AdminClientError> {
        Self::new(format!("http://{addr}"))
    }

    /// The same client with another per-request timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The base URL, without a trailing slash.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The full URL of an endpoint.
    pub fn url(&self, path: AdminPath) -> String {
        format!("{}{}", self.base, path.as_str())
    }

    async fn send(
        &self,
        method: Method,
        path: AdminPath,
        query: Option<&(dyn erased::Query + Sync)>,
        body: Option<&(dyn erased::Body + Sync)>,
    ) -> Result<reqwest::Response, AdminClientError> {
        let mut req = self
            .http
            .request(method.clone(), self.url(path))
            .timeout(self.timeout);
        if let Some(q) = query {
            req = q.apply(req);
        }
        if let Some(b) = body {
            req = b.apply(req);
        }
        let resp = req
            .send()
            .await
            .map_err(|source| AdminClientError::Transport {
                method: method.clone(),
                path,
                source,
            })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<AdminErrorBody>(&text)
            .map(|b| b.error)
            .unwrap_or(text);
        Err(AdminClientError::Refused {
            method,
            path,
            status,
            message,
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: AdminPath,
        query: Option<&(dyn erased::Query + Sync)>,
        body: Option<&(dyn erased::Body + Sync)>,
    ) -> Result<T, AdminClientError> {
        let resp = self.send(method.clone(), path, query, body).await?;
        let bytes = resp
            .bytes()
            .await
            .map_err(|source| AdminClientError::Transport {
                method: method.clone(),
                path,
                source,
            })?;
        serde_json::from_slice(&bytes).map_err(|e| AdminClientError::Decode {
            method,
            path,
            message: e.to_string(),
        })
    }

    /// `GET /_fake/health`.
    pub async fn health(&self) -> Result<Status, AdminClientError> {
        self.json(Method::GET, AdminPath::Health, None, None).await
    }

    /// `GET /_fake/state`, typed.
    pub async fn state(&self, query: &StateQuery) -> Result<StateDump, AdminClientError> {
        self.json(Method::GET, AdminPath::State, Some(query), None)
            .await
    }

    /// `GET /_fake/state` as plain JSON (for callers that walk it generically).
    pub async fn state_json(&self, query: &StateQuery) -> Result<Value, AdminClientError> {
        self.json(Method::GET, AdminPath::State, Some(query), None)
            .await
    }

    /// `POST /_fake/reset`: state, faults, limits, request log and rate buckets back to the config.
    pub async fn reset(&self) -> Result<Status, AdminClientError> {
        self.json(Method::POST, AdminPath::Reset, None, None).await
    }

    /// `GET /_fake/limits`.
    pub async fn limits(&self) -> Result<Limits, AdminClientError> {
        self.json(Method::GET, AdminPath::Limits, None, None).await
    }

    /// `PATCH /_fake/limits`: changes the given keys; answers the limits now in force.
    pub async fn patch_limits(&self, patch: &LimitsPatch) -> Result<Limits, AdminClientError> {
        self.json(Method::PATCH, AdminPath::Limits, None, Some(patch))
            .await
    }

    /// `GET /_fake/faults`, with each rule's `fired` and `remaining`.
    pub async fn faults(&self) -> Result<Vec<FaultRule>, AdminClientError> {
        self.json(Method::GET, AdminPath::Faults, None, None).await
    }

    /// `PUT /_fake/faults`: replaces every rule (hanging tasks finish).
    pub async fn put_faults(
        &self,
        rules: &[FaultRule],
    ) -> Result<Vec<FaultRule>, AdminClientError> {
        let rules = rules.to_vec();
        self.json(Method::PUT, AdminPath::Faults, None, Some(&rules))
            .await
    }

    /// `PATCH /_fake/faults`: appends rules after the installed ones.
    pub async fn append_faults(
        &self,
        rules: &[FaultRule],
    ) -> Result<Vec<FaultRule>, AdminClientError> {
        let rules = rules.to_vec();
        self.json(Method::PATCH, AdminPath::Faults, None, Some(&rules))
            .await
    }

    /// `DELETE /_fake/faults`: removes every rule (hanging tasks finish).
    pub async fn clear_faults(&self) -> Result<(), AdminClientError> {
        self.json::<Vec<FaultRule>>(Method::DELETE, AdminPath::Faults, None, None)
            .await
            .map(drop)
    }

    /// `GET /_fake/requests`: log entries with a sequence number above `since` (all when `None`).
    pub async fn requests(&self, since: Option<u64>) -> Result<Vec<LogEntry>, AdminClientError> {
        let query = RequestsQuery { since };
        self.json(Method::GET, AdminPath::Requests, Some(&query), None)
            .await
    }

    /// `DELETE /_fake/requests`: empties the request log.
    pub async fn clear_requests(&self) -> Result<(), AdminClientError> {
        self.json::<Vec<LogEntry>>(Method::DELETE, AdminPath::Requests, None, None)
            .await
            .map(drop)
    }

    /// `POST /_fake/console/delete-listener` (`listener_id` required).
    pub async fn console_delete_listener(
        &self,
        target: &ConsoleTarget,
    ) -> Result<Status, AdminClientError> {
        self.json(
            Method::POST,
            AdminPath::ConsoleDeleteListener,
            None,
            Some(target),
        )
        .await
    }

    /// `POST /_fake/console/delete-target` (`listener_id`, `ip` and `port` required).
    pub async fn console_delete_target(
        &self,
        target: &ConsoleTarget,
    ) -> Result<Status, AdminClientError> {
        self.json(
            Method::POST,
            AdminPath::ConsoleDeleteTarget,
            None,
            Some(target),
        )
        .await
    }

    /// `POST /_fake/console/delete-load-balancer`.
    pub async fn console_delete_load_balancer(
        &self,
        target: &ConsoleTarget,
    ) -> Result<Status, AdminClientError> {
        self.json(
            Method::POST,
            AdminPath::ConsoleDeleteLoadBalancer,
            None,
            Some(target),
        )
        .await
    }

    /// `POST /_fake/console/create-load-balancer`: a running load balancer at once.
    pub async fn console_create_load_balancer(
        &self,
        lb: &CreateLoadBalancer,
    ) -> Result<CreatedLoadBalancer, AdminClientError> {
        self.json(
            Method::POST,
            AdminPath::ConsoleCreateLoadBalancer,
            None,
            Some(lb),
        )
        .await
    }

    /// `GET /metrics` (OpenMetrics text).
    pub async fn metrics(&self) -> Result<String, AdminClientError> {
        let method = Method::GET;
        let path = AdminPath::Metrics;
        let resp = self.send(method.clone(), path, None, None).await?;
        resp.text()
            .await
            .map_err(|source| AdminClientError::Transport {
                method,
                path,
                source,
            })
    }
}

/// Object-safe adapters so one `send` serves every query and body type.
mod erased {
    use serde::Serialize;

    pub trait Query {
        fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder;
    }

    impl<T: Serialize> Query for T {
        fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
            req.query(self)
        }
    }

    pub trait Body {
        fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder;
    }

    impl<T: Serialize> Body for T {
        fn apply(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
            req.json(self)
        }
    }
}
