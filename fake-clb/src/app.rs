//! The shared application: configuration, the state core behind one lock, faults, rate limits,
//! the request log, persistence, and the API request pipeline (gateway checks, then the state core).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clb_api::sign::{self, Tc3Received, VerifyOptions};
use clb_api::{ApiError, ErrorCode, actions, envelope, flatten, schema};
use parking_lot::Mutex;
use serde_json::Value;
use tracing::Instrument;

pub use crate::admin_api::LogEntry;
use crate::config::{Config, Limits};
use crate::error::FakeError;
use crate::faults::{Effect, FaultEngine};
use crate::metrics::Metrics;
use crate::state::{Ctx, State, TaskMode};

const REQUEST_LOG_MAX: usize = 100_000;
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

/// Action, version, region, flattened business parameters and the JSON body, whichever scheme carried them.
type CommonParams<'a> = (
    String,
    Option<String>,
    Option<String>,
    Vec<(String, String)>,
    Option<&'a [u8]>,
);

pub struct Inner {
    pub state: State,
    pub limits: Limits,
    pub faults: FaultEngine,
    pub log: VecDeque<LogEntry>,
    pub log_seq: u64,
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
            log: VecDeque::new(),
            log_seq: 0,
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
        inner.log.clear();
        inner.rate.clear();
        self.persist(&inner.state)
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
        inner.log_seq += 1;
        let entry = LogEntry {
            seq: inner.log_seq,
            time: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            elapsed_ms: elapsed.as_secs_f64() * 1000.0,
            action: action.to_string(),
            secret_id: seen.secret_id.clone(),
            region: seen.region.clone(),
            load_balancer_id: seen.load_balancer_id.clone(),
            result: result.to_string(),
            request_id: request_id.to_string(),
            params: seen.params.clone(),
        };
        if inner.log.len() >= REQUEST_LOG_MAX {
            inner.log.pop_front();
        }
        inner.log.push_back(entry);
    }

    /// Gateway checks in the order of spec §1.8, then faults and the state core.
    /// `Ok(None)` means: drop the connection.
    async fn pipeline(
        &self,
        req: &ApiRequest,
        request_id: &str,
        seen: &mut Seen,
    ) -> Result<Option<Value>, ApiError> {
        let limits = self.inner.lock().limits.clone();
        let is_get = match req.method.as_str() {
            "GET" => true,
            "POST" => false,
            _ => {
                return Err(ApiError::new(
                    ErrorCode::UnsupportedProtocol,
                    "HTTP(S) request protocol error; only GET and POST requests are supported.",
                ));
            }
        };
        let content_type = header(&req.headers, "content-type").unwrap_or_default();
        let is_form = content_type
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded");
        let size_limit = if is_get {
            clb_api::limits::GET_MAX_BYTES
        } else if is_form {
            clb_api::limits::V1_POST_MAX_BYTES
        } else {
            limits.max_body_bytes
        };
        let size = if is_get {
            req.raw_query.len()
        } else {
            req.body.len()
        };
        if size > size_limit {
            return Err(ApiError::new(
                ErrorCode::RequestSizeLimitExceeded,
                format!("The request size {size} exceeds the limit {size_limit} bytes."),
            ));
        }
        let now = now_ms();
        let opts = VerifyOptions {
            now: (now / 1000) as i64,
            max_skew_secs: limits.timestamp_skew.as_secs() as i64,
            required_service: None,
        };
        let lookup = |id: &str| self.secret_key(id);
        let has_auth_header = req.headers.contains_key("authorization");

        // Identify the scheme and the common parameters.
        let (action, version, region, business_pairs, json_body): CommonParams<'_>;
        let v1_params;
        if has_auth_header {
            action = header(&req.headers, "x-tc-action")
                .ok_or_else(|| ApiError::missing_parameter("Action"))?;
            version = header(&req.headers, "x-tc-version");
            region = header(&req.headers, "x-tc-region").filter(|r| !r.is_empty());
            if is_get {
                let pairs = decode_pairs(&req.raw_query)?;
                business_pairs = pairs
                    .into_iter()
                    .filter(|(k, _)| !COMMON_PARAMS.contains(&k.as_str()))
                    .collect();
                json_body = None;
            } else if content_type
                .to_ascii_lowercase()
                .starts_with("application/json")
            {
                business_pairs = Vec::new();
                json_body = Some(&req.body);
            } else {
                return Err(ApiError::invalid_parameter(format!(
                    "Content-Type `{content_type}` is not supported with TC3-HMAC-SHA256; use application/json."
                )));
            }
            v1_params = None;
        } else {
            let text = if is_get {
                req.raw_query.clone()
            } else if is_form {
                String::from_utf8_lossy(&req.body).into_owned()
            } else {
                String::new()
            };
            let pairs = decode_pairs(&text)?;
            if !pairs.iter().any(|(k, _)| k == "Signature") {
                return Err(ApiError::new(
                    ErrorCode::AuthFailureInvalidAuthorization,
                    "The request carries neither an `Authorization` header nor a `Signature` parameter.",
                ));
            }
            let get = |n: &str| pairs.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
            action = get("Action").ok_or_else(|| ApiError::missing_parameter("Action"))?;
            version = get("Version");
            region = get("Region").filter(|r| !r.is_empty());
            business_pairs = pairs
                .iter()
                .filter(|(k, _)| !COMMON_PARAMS.contains(&k.as_str()))
                .cloned()
                .collect();
            json_body = None;
            v1_params = Some(pairs);
        }
        let spec = actions::find(&action).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidAction,
                format!("The action `{action}` is not supported."),
            )
        })?;
        seen.action = action.clone();
        tracing::Span::current().record("action", action.as_str());
        if version.as_deref() != Some(actions::VERSION) {
            return Err(ApiError::new(
                ErrorCode::NoSuchVersion,
                format!(
                    "The API version `{}` does not exist; use {}.",
                    version.unwrap_or_default(),
                    actions::VERSION
                ),
            ));
        }

        // Signature.
        let secret_id = match &v1_params {
            None => {
                let hdr = |name: &str| header(&req.headers, name);
                let received = Tc3Received {
                    method: &req.method,
                    raw_query: &req.raw_query,
                    body: &req.body,
                    header: &hdr,
                };
                sign::verify_tc3(&received, &lookup, &opts)?
            }
            Some(pairs) => {
                let host = header(&req.headers, "host").unwrap_or_default();
                sign::verify_v1(&req.method, &host, pairs, &lookup, &opts)?
            }
        };
        seen.secret_id = secret_id.clone();

        // Region.
        let region = region.ok_or_else(|| ApiError::missing_parameter("Region"))?;
        seen.region = region.clone();
        if !self.config.regions.contains(&region) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedRegion,
                format!("The region `{region}` is not supported."),
            ));
        }

        // Rate limit per (account, action) in one-second windows.
        if limits.action_qps > 0 {
            let second = now / 1000;
            let mut inner = self.inner.lock();
            let slot = inner
                .rate
                .entry((secret_id.clone(), action.clone()))
                .or_insert((second, 0));
            if slot.0 != second {
                *slot = (second, 0);
            }
            slot.1 += 1;
            if slot.1 > limits.action_qps {
                return Err(ApiError::request_limit_exceeded(slot.1, limits.action_qps));
            }
        }

        // Schema.
        let params = match json_body {
            Some(body) => {
                let raw: Value = if body.iter().all(u8::is_ascii_whitespace) {
                    Value::Object(Default::default())
                } else {
                    serde_json::from_slice(body).map_err(|e| {
                        ApiError::new(
                            ErrorCode::InvalidParameterFormatError,
                            format!("The request body is not valid JSON: {e}"),
                        )
                    })?
                };
                seen.params = raw.clone();
                schema::validate(spec.fields, &raw)?
            }
            None => {
                let unflat = flatten::unflatten(&business_pairs, spec.fields)?;
                seen.params = unflat.clone();
                schema::validate(spec.fields, &unflat)?
            }
        };
        seen.params = params.clone();
        seen.load_balancer_id = lb_of(&params);

        // Faults.
        let effect =
            self.inner
                .lock()
                .faults
                .pick(&action, seen.load_balancer_id.as_deref(), &secret_id);
        let mut task_mode = TaskMode::Normal;
        let mut fail_after: Option<ApiError> = None;
        match effect {
            None => {}
            Some(Effect::Error { code, message }) => {
                return Err(ApiError::new(
                    code.parse().unwrap_or(ErrorCode::Other(code.clone())),
                    message.unwrap_or_else(|| format!("injected {code}")),
                ));
            }
            Some(Effect::Latency { ms }) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Some(Effect::Throttle) => {
                let limit = limits.action_qps.max(1);
                return Err(ApiError::request_limit_exceeded(limit + 1, limit));
            }
            Some(Effect::Drop) => return Ok(None),
            Some(Effect::CommitThenFail { code, message }) => {
                fail_after = Some(ApiError::new(
                    code.parse().unwrap_or(ErrorCode::Other(code.clone())),
                    message.unwrap_or_else(|| format!("injected {code}")),
                ));
            }
            Some(Effect::FailTask { message }) => {
                task_mode =
                    TaskMode::Fail(message.unwrap_or_else(|| "injected task failure".into()))
            }
            Some(Effect::HangTask) => task_mode = TaskMode::Hang,
        }

        // Business logic.
        let now = now_ms();
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let settled = inner.state.settle(now);
        let ctx = Ctx {
            secret_id: &secret_id,
            region: &region,
            now_ms: now,
            request_id,
            limits: &inner.limits,
            task_mode,
        };
        let result = inner.state.execute(&ctx, &action, params);
        if ((spec.mutating && result.is_ok()) || settled)
            && let Err(e) = self.persist(&inner.state)
        {
            tracing::error!(error = %e, "persisting state failed");
            return Err(ApiError::new(
                ErrorCode::InternalError,
                "The fake could not persist its state.",
            ));
        }
        let output = result?;
        match fail_after {
            Some(e) => Err(e),
            None => Ok(Some(output)),
        }
    }
}
