//! The shared application: configuration, the state core behind one lock, faults, rate limits,
//! the request log, persistence, and the API request pipeline (gateway checks, then the state core).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use clb_api::{ApiError, ErrorCode, actions, envelope};
use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::Value;
use tracing::Instrument;

pub use crate::admin_api::LogEntry;
use crate::config::{Config, Limits};
use crate::error::FakeError;
use crate::faults::FaultEngine;
use crate::metrics::Metrics;
use crate::request_log::RequestLog;
use crate::state::State;

mod pipeline;

/// Parameters of the v1 envelope (and of TC3 GET query strings some clients add), not business parameters.
const COMMON_PARAMS: &[&str] = &[
    "Action",
    "Version",
    "Region",
    "Timestamp",
    "Nonce",
    "SecretId",
    "Signature",
    "SignatureMethod",
    "Token",
    "Language",
    "RequestClient",
];

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub struct Inner {
    pub state: State,
    pub limits: Limits,
    pub faults: FaultEngine,
    pub log: RequestLog,
    /// Draws of `limits.callLatency`; seeded so that runs repeat.
    pub latency_rng: StdRng,
    /// (secretId, action) -> (unix second, count in that second).
    pub rate: HashMap<(String, String), (u64, u64)>,
}

pub struct App {
    pub config: Config,
    pub seed: u64,
    pub inner: Mutex<Inner>,
    pub metrics: Metrics,
}

/// A raw API request as received.
pub struct ApiRequest {
    pub method: String,
    pub raw_query: String,
    pub headers: http::HeaderMap,
    pub body: bytes::Bytes,
}

pub enum ApiOutcome {
    Respond(Value),
    /// Close the connection without answering (the `drop` fault).
    Drop,
}

/// What the gateway part of the pipeline learned before the failure or success.
#[derive(Default)]
struct Seen {
    action: String,
    secret_id: String,
    region: String,
    load_balancer_id: Option<String>,
    params: Value,
}

fn lb_of(params: &Value) -> Option<String> {
    params
        .get("LoadBalancerId")
        .and_then(Value::as_str)
        .or_else(|| {
            params
                .get("LoadBalancerIds")
                .and_then(|v| v.get(0))
                .and_then(Value::as_str)
        })
        .map(str::to_string)
}

fn header(headers: &http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Whether a TC3 POST's Content-Type is JSON: the media type (before any `;` parameter) must be exactly
/// `application/json` (any case); without `strict`, any type starting with `application/json` passes.
fn is_json(content_type: &str, strict: bool) -> bool {
    let lower = content_type.to_ascii_lowercase();
    if strict {
        lower.split(';').next().map(str::trim) == Some("application/json")
    } else {
        lower.starts_with("application/json")
    }
}

fn decode_pairs(text: &str) -> Result<Vec<(String, String)>, ApiError> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(text).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidParameterFormatError,
            format!("Cannot decode parameters: {e}"),
        )
    })
}

pub fn load_state_file(path: &Path) -> Result<Option<State>, FakeError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice::<State>(&bytes)
            .map(Some)
            .map_err(|e| FakeError::StateFileCorrupt {
                path: path.to_path_buf(),
                message: e.to_string(),
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(FakeError::StateFileRead {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Atomic write: temp file in the same directory, then rename over the target.
pub fn save_state_file(path: &Path, state: &State) -> Result<(), FakeError> {
    let write_err = |source| FakeError::StateFileWrite {
        path: path.to_path_buf(),
        source,
    };
    let bytes = serde_json::to_vec(state).map_err(|e| write_err(std::io::Error::other(e)))?;
    let mut tmp: PathBuf = path.to_path_buf();
    let name = format!(
        ".{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("state")
    );
    tmp.set_file_name(name);
    std::fs::write(&tmp, &bytes).map_err(write_err)?;
    std::fs::rename(&tmp, path).map_err(write_err)
}

impl App {
    /// Builds the app: state from the state file when it exists (a corrupt one is refused), else from config.
    pub fn new(config: Config) -> Result<App, FakeError> {
        let seed = config.seed.unwrap_or_else(rand::random);
        let state = match &config.state_file {
            Some(path) => match load_state_file(path)? {
                Some(state) => state,
                None => {
                    let s = State::from_config(&config, seed, now_ms());
                    save_state_file(path, &s)?;
                    s
                }
            },
            None => State::from_config(&config, seed, now_ms()),
        };
        let inner = Inner {
            state,
            limits: config.limits.clone(),
            faults: FaultEngine::new(seed),
            log: RequestLog::default(),
            latency_rng: StdRng::seed_from_u64(seed),
            rate: HashMap::new(),
        };
        Ok(App {
            seed,
            inner: Mutex::new(inner),
            metrics: Metrics::default(),
            config,
        })
    }

    fn secret_key(&self, secret_id: &str) -> Option<String> {
        self.config
            .accounts
            .iter()
            .find(|a| a.secret_id == secret_id)
            .map(|a| a.secret_key.clone())
    }

    /// Persists after a committed change; called with the lock held so files follow the commit order.
    pub fn persist(&self, state: &State) -> Result<(), FakeError> {
        match &self.config.state_file {
            Some(path) => save_state_file(path, state),
            None => Ok(()),
        }
    }

    /// Back to the initial state of the config (also rewrites the state file).
    pub fn reset(&self) -> Result<(), FakeError> {
        let mut inner = self.inner.lock();
        inner.state = State::from_config(&self.config, self.seed, now_ms());
        inner.limits = self.config.limits.clone();
        inner.faults.reset(self.seed);
        inner.latency_rng = StdRng::seed_from_u64(self.seed);
        inner.log.clear();
        inner.rate.clear();
        self.persist(&inner.state)
    }

    /// The most body bytes worth reading: the larger of the TC3 limit (`maxBodyBytes`) and the v1 form limit,
    /// plus one so that a body just over the limit is still answered by the pipeline's size check.
    pub fn body_read_cap(&self) -> usize {
        let tc3 = self.inner.lock().limits.max_body_bytes;
        tc3.max(clb_api::limits::V1_POST_MAX_BYTES)
            .saturating_add(1)
    }

    /// Answers a request refused before the pipeline could look at it (e.g. a body over the read cap) with the
    /// error envelope, and logs it without parameters.
    pub fn refuse(&self, headers: &http::HeaderMap, error: ApiError) -> Value {
        let request_id = uuid::Uuid::new_v4().to_string();
        let seen = Seen {
            action: header(headers, "x-tc-action")
                .filter(|a| actions::find(a).is_some())
                .unwrap_or_default(),
            ..Seen::default()
        };
        self.record(&seen, error.code.as_str(), &request_id, Instant::now());
        envelope::api_error(&error, &request_id)
    }

    /// Answers one API request; everything it logs is inside one span with the action and request id.
    pub async fn handle(&self, req: ApiRequest) -> ApiOutcome {
        let request_id = uuid::Uuid::new_v4().to_string();
        let span =
            tracing::info_span!("api", request_id = %request_id, action = tracing::field::Empty);
        self.handle_in_span(req, request_id).instrument(span).await
    }

    async fn handle_in_span(&self, req: ApiRequest, request_id: String) -> ApiOutcome {
        let started = Instant::now();
        let mut seen = Seen::default();
        let result = self.pipeline(&req, &request_id, &mut seen).await;
        self.call_latency(&seen.action).await;
        let (body, result_name) = match result {
            Ok(Some(output)) => (envelope::success(output, &request_id), "OK".to_string()),
            Ok(None) => {
                self.record(&seen, "Dropped", &request_id, started);
                return ApiOutcome::Drop;
            }
            Err(e) => (
                envelope::api_error(&e, &request_id),
                e.code.as_str().to_string(),
            ),
        };
        self.record(&seen, &result_name, &request_id, started);
        ApiOutcome::Respond(body)
    }

    /// Waits the configured `callLatency` of `action` (its own range, else `default`), if any.
    async fn call_latency(&self, action: &str) {
        let delay = {
            let mut inner = self.inner.lock();
            let inner = &mut *inner;
            crate::latency::for_action(&inner.limits.call_latency, action)
                .map(|range| range.draw(&mut inner.latency_rng))
        };
        if let Some(d) = delay.filter(|d| !d.is_zero()) {
            tokio::time::sleep(d).await;
        }
    }

    fn record(&self, seen: &Seen, result: &str, request_id: &str, started: Instant) {
        let elapsed = started.elapsed();
        let action = if seen.action.is_empty() {
            "Unknown"
        } else {
            seen.action.as_str()
        };
        self.metrics.observe(action, result, elapsed.as_secs_f64());
        tracing::info!(
            result,
            elapsed_ms = elapsed.as_secs_f64() * 1000.0,
            "request"
        );
        let mut inner = self.inner.lock();
        let entry = LogEntry {
            seq: 0,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            elapsed_ms: elapsed.as_secs_f64() * 1000.0,
            action: action.to_string(),
            secret_id: seen.secret_id.clone(),
            region: seen.region.clone(),
            load_balancer_id: seen.load_balancer_id.clone(),
            result: result.to_string(),
            request_id: request_id.to_string(),
            params: seen.params.clone(),
            params_omitted_bytes: None,
        };
        let (max_entries, max_bytes) = (
            inner.limits.request_log_max_entries,
            inner.limits.request_log_max_bytes,
        );
        inner.log.push(entry, max_entries, max_bytes);
    }
}
