//! The API request pipeline as named steps, in the order the real gateway checks: method, size, signing
//! scheme, action, version, signature, region, rate limit, schema; then scripted faults and the state core.

use std::time::Duration;

use clb_api::actions::{self, ActionSpec};
use clb_api::sign::{self, Tc3Received, VerifyOptions};
use clb_api::{ApiError, ErrorCode, flatten, schema};
use serde_json::Value;

use super::{ApiRequest, App, COMMON_PARAMS, Seen, decode_pairs, header, is_json, lb_of, now_ms};
use crate::config::Limits;
use crate::faults::Effect;
use crate::state::{Ctx, TaskMode};

/// What the signing scheme carried: the common parameters and where the business parameters are.
struct Envelope<'a> {
    action: String,
    version: Option<String>,
    region: Option<String>,
    /// Flattened business parameters (GET query or v1 form).
    pairs: Vec<(String, String)>,
    /// The TC3 JSON body, when the request is a TC3 POST.
    json_body: Option<&'a [u8]>,
    /// Every decoded parameter of a v1 request (the signature covers them all).
    v1_params: Option<Vec<(String, String)>>,
}

/// How the request is framed: GET query, v1 form POST, or TC3 JSON POST.
#[derive(Clone, Copy)]
struct Framing {
    is_get: bool,
    is_form: bool,
}

/// What a fired fault leaves for the state core.
struct FaultPlan {
    task_mode: TaskMode,
    fail_after: Option<ApiError>,
}

fn injected(code: String, message: Option<String>) -> ApiError {
    ApiError::new(
        code.parse().unwrap_or(ErrorCode::Other(code.clone())),
        message.unwrap_or_else(|| format!("injected {code}")),
    )
}

fn framing(req: &ApiRequest, content_type: &str) -> Result<Framing, ApiError> {
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
    let is_form = content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded");
    Ok(Framing { is_get, is_form })
}

/// GET queries up to 32 KiB, v1 forms up to 1 MiB, TC3 bodies up to `maxBodyBytes`.
fn check_size(req: &ApiRequest, f: Framing, limits: &Limits) -> Result<(), ApiError> {
    let (size, limit) = if f.is_get {
        (req.raw_query.len(), clb_api::limits::GET_MAX_BYTES)
    } else if f.is_form {
        (req.body.len(), clb_api::limits::V1_POST_MAX_BYTES)
    } else {
        (req.body.len(), limits.max_body_bytes)
    };
    if size > limit {
        return Err(ApiError::new(
            ErrorCode::RequestSizeLimitExceeded,
            format!("The request size {size} exceeds the limit {limit} bytes."),
        ));
    }
    Ok(())
}

/// TC3 when an `Authorization` header is present: common parameters in `X-TC-*` headers.
fn tc3_envelope<'a>(
    req: &'a ApiRequest,
    f: Framing,
    content_type: &str,
    limits: &Limits,
) -> Result<Envelope<'a>, ApiError> {
    let action =
        header(&req.headers, "x-tc-action").ok_or_else(|| ApiError::missing_parameter("Action"))?;
    let (pairs, json_body) = if f.is_get {
        let pairs = decode_pairs(&req.raw_query)?
            .into_iter()
            .filter(|(k, _)| !COMMON_PARAMS.contains(&k.as_str()))
            .collect();
        (pairs, None)
    } else if is_json(content_type, limits.strict_json_content_type) {
        (Vec::new(), Some(&req.body[..]))
    } else {
        return Err(ApiError::invalid_parameter(format!(
            "Content-Type `{content_type}` is not supported with TC3-HMAC-SHA256; use application/json."
        )));
    };
    Ok(Envelope {
        action,
        version: header(&req.headers, "x-tc-version"),
        region: header(&req.headers, "x-tc-region").filter(|r| !r.is_empty()),
        pairs,
        json_body,
        v1_params: None,
    })
}

/// v1 when a `Signature` parameter is present: every parameter in the query (GET) or the form body.
fn v1_envelope(req: &ApiRequest, f: Framing) -> Result<Envelope<'_>, ApiError> {
    let text = if f.is_get {
        req.raw_query.clone()
    } else if f.is_form {
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
    let action = get("Action").ok_or_else(|| ApiError::missing_parameter("Action"))?;
    Ok(Envelope {
        action,
        version: get("Version"),
        region: get("Region").filter(|r| !r.is_empty()),
        pairs: pairs
            .iter()
            .filter(|(k, _)| !COMMON_PARAMS.contains(&k.as_str()))
            .cloned()
            .collect(),
        json_body: None,
        v1_params: Some(pairs),
    })
}

/// A supported action of the served version.
fn resolve_action(env: &Envelope<'_>) -> Result<&'static ActionSpec, ApiError> {
    let spec = actions::find(&env.action).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidAction,
            format!("The action `{}` is not supported.", env.action),
        )
    })?;
    if env.version.as_deref() != Some(actions::VERSION) {
        return Err(ApiError::new(
            ErrorCode::NoSuchVersion,
            format!(
                "The API version `{}` does not exist; use {}.",
                env.version.clone().unwrap_or_default(),
                actions::VERSION
            ),
        ));
    }
    Ok(spec)
}

/// The business parameters decoded and validated against the action's schema.
fn decode_params(
    spec: &ActionSpec,
    env: &Envelope<'_>,
    seen: &mut Seen,
) -> Result<Value, ApiError> {
    let raw = match env.json_body {
        Some(body) if body.iter().all(u8::is_ascii_whitespace) => Value::Object(Default::default()),
        Some(body) => serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                ErrorCode::InvalidParameterFormatError,
                format!("The request body is not valid JSON: {e}"),
            )
        })?,
        None => flatten::unflatten(&env.pairs, spec.fields)?,
    };
    seen.params = raw;
    let params = schema::validate(spec.fields, &seen.params)?;
    seen.params = params.clone();
    seen.load_balancer_id = lb_of(&params);
    Ok(params)
}

impl App {
    /// Runs the steps; `Ok(None)` means: drop the connection (the `drop` fault).
    pub(super) async fn pipeline(
        &self,
        req: &ApiRequest,
        request_id: &str,
        seen: &mut Seen,
    ) -> Result<Option<Value>, ApiError> {
        let limits = self.inner.lock().limits.clone();
        let content_type = header(&req.headers, "content-type").unwrap_or_default();
        let f = framing(req, &content_type)?;
        check_size(req, f, &limits)?;
        let env = if req.headers.contains_key("authorization") {
            tc3_envelope(req, f, &content_type, &limits)?
        } else {
            v1_envelope(req, f)?
        };
        let spec = resolve_action(&env)?;
        seen.action = env.action.clone();
        tracing::Span::current().record("action", env.action.as_str());
        let now = now_ms();
        seen.secret_id = self.verify_signature(req, &env, &limits, now)?;
        seen.region = env.region.clone().unwrap_or_default();
        seen.region = self.check_region(env.region.clone())?;
        self.rate_limit(&seen.secret_id, &env.action, &limits, now)?;
        let params = decode_params(spec, &env, seen)?;
        let Some(plan) = self.apply_fault(seen, &limits).await? else {
            return Ok(None);
        };
        let output = self.execute(spec, seen, request_id, params, plan.task_mode)?;
        match plan.fail_after {
            Some(e) => Err(e),
            None => Ok(Some(output)),
        }
    }

    /// Checks the TC3 or v1 signature; returns the SecretId.
    fn verify_signature(
        &self,
        req: &ApiRequest,
        env: &Envelope<'_>,
        limits: &Limits,
        now: u64,
    ) -> Result<String, ApiError> {
        let opts = VerifyOptions {
            now: (now / 1000) as i64,
            max_skew_secs: limits.timestamp_skew.as_secs() as i64,
            required_service: None,
        };
        let lookup = |id: &str| self.secret_key(id);
        match &env.v1_params {
            None => {
                let hdr = |name: &str| header(&req.headers, name);
                let received = Tc3Received {
                    method: &req.method,
                    raw_query: &req.raw_query,
                    body: &req.body,
                    header: &hdr,
                };
                sign::verify_tc3(&received, &lookup, &opts)
            }
            Some(pairs) => {
                let host = header(&req.headers, "host").unwrap_or_default();
                sign::verify_v1(&req.method, &host, pairs, &lookup, &opts)
            }
        }
    }

    /// The region is given and served.
    fn check_region(&self, region: Option<String>) -> Result<String, ApiError> {
        let region = region.ok_or_else(|| ApiError::missing_parameter("Region"))?;
        if !self.config.regions.contains(&region) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedRegion,
                format!("The region `{region}` is not supported."),
            ));
        }
        Ok(region)
    }

    /// At most `actionQps` calls per (account, action) in each one-second window.
    fn rate_limit(
        &self,
        secret_id: &str,
        action: &str,
        limits: &Limits,
        now: u64,
    ) -> Result<(), ApiError> {
        if limits.action_qps == 0 {
            return Ok(());
        }
        let second = now / 1000;
        let mut inner = self.inner.lock();
        let slot = inner
            .rate
            .entry((secret_id.to_string(), action.to_string()))
            .or_insert((second, 0));
        if slot.0 != second {
            *slot = (second, 0);
        }
        slot.1 += 1;
        if slot.1 > limits.action_qps {
            return Err(ApiError::request_limit_exceeded(slot.1, limits.action_qps));
        }
        Ok(())
    }

    /// The first matching fault rule's effect: an answer now, a delay, a drop (`None`), or a plan for the
    /// state core.
    async fn apply_fault(
        &self,
        seen: &Seen,
        limits: &Limits,
    ) -> Result<Option<FaultPlan>, ApiError> {
        let effect = self.inner.lock().faults.pick(
            &seen.action,
            seen.load_balancer_id.as_deref(),
            &seen.secret_id,
        );
        let mut plan = FaultPlan {
            task_mode: TaskMode::Normal,
            fail_after: None,
        };
        match effect {
            None => {}
            Some(Effect::Error { code, message }) => return Err(injected(code, message)),
            Some(Effect::Latency { ms }) => tokio::time::sleep(Duration::from_millis(ms)).await,
            Some(Effect::Throttle) => {
                let limit = limits.action_qps.max(1);
                return Err(ApiError::request_limit_exceeded(limit + 1, limit));
            }
            Some(Effect::Drop) => return Ok(None),
            Some(Effect::CommitThenFail { code, message }) => {
                plan.fail_after = Some(injected(code, message));
            }
            Some(Effect::FailTask { message }) => {
                plan.task_mode =
                    TaskMode::Fail(message.unwrap_or_else(|| "injected task failure".into()));
            }
            Some(Effect::HangTask) => plan.task_mode = TaskMode::Hang,
        }
        Ok(Some(plan))
    }

    /// Runs the action on the state core and persists a committed change (or a settled task).
    fn execute(
        &self,
        spec: &ActionSpec,
        seen: &Seen,
        request_id: &str,
        params: Value,
        task_mode: TaskMode,
    ) -> Result<Value, ApiError> {
        let now = now_ms();
        let mut inner = self.inner.lock();
        let inner = &mut *inner;
        let settled = inner.state.settle(now);
        let ctx = Ctx {
            secret_id: &seen.secret_id,
            region: &seen.region,
            now_ms: now,
            request_id,
            limits: &inner.limits,
            task_mode,
        };
        let result = inner.state.execute(&ctx, &seen.action, params);
        if ((spec.mutating && result.is_ok()) || settled)
            && let Err(e) = self.persist(&inner.state)
        {
            tracing::error!(error = %e, "persisting state failed");
            return Err(ApiError::new(
                ErrorCode::InternalError,
                "The fake could not persist its state.",
            ));
        }
        result
    }
}
