//! The control API under `/_fake/` and `/metrics` (admin listener only).

use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::Value;

use crate::admin_api::{
    AdminErrorBody, AdminPath, ConsoleTarget, CreateLoadBalancer, CreatedLoadBalancer, FaultRule,
    LogEntry, RequestsQuery, StateQuery, Status,
};
use crate::app::{App, now_ms};
use crate::config::Limits;
use crate::state::{Backend, LoadBalancer};

type AppState = State<Arc<App>>;

fn fail(status: StatusCode, message: impl Into<String>) -> Response {
    let body = AdminErrorBody {
        error: message.into(),
    };
    (status, Json(body)).into_response()
}

/// An error answer of the control API, small enough to return through `Result`.
struct AdminError {
    status: StatusCode,
    message: String,
}

impl AdminError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        AdminError {
            status,
            message: message.into(),
        }
    }
}

impl IntoResponse for AdminError {
    fn into_response(self) -> Response {
        fail(self.status, self.message)
    }
}

fn ok<T: Serialize>(v: T) -> Response {
    Json(v).into_response()
}

async fn health() -> Response {
    ok(Status::ok())
}

async fn state_dump(State(app): AppState, Query(q): Query<StateQuery>) -> Response {
    let mut inner = app.inner.lock();
    inner.state.settle(now_ms());
    ok(inner
        .state
        .dump(q.secret_id.as_deref(), q.region.as_deref()))
}

async fn reset(State(app): AppState) -> Response {
    match app.reset() {
        Ok(()) => ok(Status::ok()),
        Err(e) => fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn get_limits(State(app): AppState) -> Response {
    ok(app.inner.lock().limits.clone())
}

async fn patch_limits(State(app): AppState, Json(patch): Json<Value>) -> Response {
    let Value::Object(patch) = patch else {
        return fail(StatusCode::BAD_REQUEST, "expected a JSON object of limits");
    };
    let mut inner = app.inner.lock();
    let mut current = serde_json::to_value(&inner.limits).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut current {
        map.extend(patch);
    }
    match serde_json::from_value::<Limits>(current) {
        Ok(l) => {
            inner.limits = l;
            ok(inner.limits.clone())
        }
        Err(e) => fail(StatusCode::BAD_REQUEST, format!("invalid limits: {e}")),
    }
}

async fn get_faults(State(app): AppState) -> Response {
    ok(app.inner.lock().faults.list().to_vec())
}

fn parse_rules(body: &[u8]) -> Result<Vec<FaultRule>, AdminError> {
    serde_json::from_slice(body)
        .map_err(|e| AdminError::new(StatusCode::BAD_REQUEST, format!("invalid fault rules: {e}")))
}

/// Replacing or clearing rules ends hanging tasks ("until reset / fault cleared").
fn release_hung(app: &App) {
    let mut inner = app.inner.lock();
    if inner.state.release_hung_tasks(now_ms())
        && let Err(e) = app.persist(&inner.state)
    {
        tracing::error!(error = %e, "persisting state failed");
    }
}

async fn put_faults(State(app): AppState, body: axum::body::Bytes) -> Response {
    let rules = match parse_rules(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = app.inner.lock().faults.replace(rules) {
        return fail(StatusCode::BAD_REQUEST, e);
    }
    release_hung(&app);
    get_faults(State(app)).await
}

async fn patch_faults(State(app): AppState, body: axum::body::Bytes) -> Response {
    let rules = match parse_rules(&body) {
        Ok(r) => r,
        Err(e) => return e.into_response(),
    };
    if let Err(e) = app.inner.lock().faults.append(rules) {
        return fail(StatusCode::BAD_REQUEST, e);
    }
    get_faults(State(app)).await
}

async fn delete_faults(State(app): AppState) -> Response {
    app.inner.lock().faults.clear();
    release_hung(&app);
    ok(Vec::<FaultRule>::new())
}

async fn get_requests(State(app): AppState, Query(q): Query<RequestsQuery>) -> Response {
    let since = q.since.unwrap_or(0);
    let inner = app.inner.lock();
    let entries: Vec<&LogEntry> = inner.log.iter().filter(|e| e.seq > since).collect();
    ok(entries)
}

async fn delete_requests(State(app): AppState) -> Response {
    app.inner.lock().log.clear();
    ok(Vec::<LogEntry>::new())
}

async fn metrics(State(app): AppState) -> Response {
    {
        let mut inner = app.inner.lock();
        inner.state.settle(now_ms());
        app.metrics
            .tasks_in_progress
            .set(inner.state.tasks_in_progress() as i64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

/// Runs an out-of-band change on one LB, found by id (secretId / region narrow the search).
fn console_change(
    app: &App,
    t: &ConsoleTarget,
    f: impl FnOnce(&mut crate::state::State, &str, &str) -> Result<(), AdminError>,
) -> Response {
    let mut inner = app.inner.lock();
    inner.state.settle(now_ms());
    let found = inner.state.locate_lb(
        t.secret_id.as_deref(),
        t.region.as_deref(),
        &t.load_balancer_id,
    );
    let (sid, region) = match found.as_slice() {
        [] => {
            return fail(
                StatusCode::NOT_FOUND,
                format!("load balancer {} not found", t.load_balancer_id),
            );
        }
        [one] => one.clone(),
        _ => {
            return fail(
                StatusCode::BAD_REQUEST,
                format!(
                    "load balancer {} exists in several accounts; give secretId",
                    t.load_balancer_id
                ),
            );
        }
    };
    if let Err(e) = f(&mut inner.state, &sid, &region) {
        return e.into_response();
    }
    if let Err(e) = app.persist(&inner.state) {
        return fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    ok(Status::ok())
}

async fn console_delete_listener(State(app): AppState, Json(t): Json<ConsoleTarget>) -> Response {
    let Some(lid) = t.listener_id.clone() else {
        return fail(StatusCode::BAD_REQUEST, "listenerId is required");
    };
    console_change(&app, &t, |state, sid, region| {
        let lb = state
            .lb_mut(sid, region, &t.load_balancer_id)
            .ok_or_else(|| AdminError::new(StatusCode::NOT_FOUND, "load balancer not found"))?;
        let before = lb.listeners.len();
        lb.listeners.retain(|l| l.listener_id != lid);
        if lb.listeners.len() == before {
            return Err(AdminError::new(
                StatusCode::NOT_FOUND,
                format!("listener {lid} not found"),
            ));
        }
        Ok(())
    })
}

async fn console_delete_target(State(app): AppState, Json(t): Json<ConsoleTarget>) -> Response {
    let (Some(lid), Some(ip), Some(port)) = (t.listener_id.clone(), t.ip.clone(), t.port) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "listenerId, ip and port are required",
        );
    };
    console_change(&app, &t, |state, sid, region| {
        let lb = state
            .lb_mut(sid, region, &t.load_balancer_id)
            .ok_or_else(|| AdminError::new(StatusCode::NOT_FOUND, "load balancer not found"))?;
        let l = lb
            .listeners
            .iter_mut()
            .find(|l| l.listener_id == lid)
            .ok_or_else(|| {
                AdminError::new(StatusCode::NOT_FOUND, format!("listener {lid} not found"))
            })?;
        let list: &mut Vec<Backend> = match &t.location_id {
            Some(loc) => {
                &mut l
                    .rules
                    .iter_mut()
                    .find(|r| &r.location_id == loc)
                    .ok_or_else(|| {
                        AdminError::new(StatusCode::NOT_FOUND, format!("rule {loc} not found"))
                    })?
                    .targets
            }
            None => &mut l.targets,
        };
        let before = list.len();
        list.retain(|b| {
            !((b.ip.as_deref() == Some(ip.as_str())
                || b.instance_id.as_deref() == Some(ip.as_str()))
                && b.port == port)
        });
        if list.len() == before {
            return Err(AdminError::new(
                StatusCode::NOT_FOUND,
                format!("target {ip}:{port} not found"),
            ));
        }
        Ok(())
    })
}

async fn console_delete_lb(State(app): AppState, Json(t): Json<ConsoleTarget>) -> Response {
    console_change(&app, &t, |state, sid, region| {
        state
            .remove_lb(sid, region, &t.load_balancer_id)
            .map(|_| ())
            .ok_or_else(|| AdminError::new(StatusCode::NOT_FOUND, "load balancer not found"))
    })
}

async fn console_create_lb(State(app): AppState, Json(c): Json<CreateLoadBalancer>) -> Response {
    let lb_type = c
        .lb_type
        .clone()
        .unwrap_or_else(|| "OPEN".into())
        .to_ascii_uppercase();
    if lb_type != "OPEN" && lb_type != "INTERNAL" {
        return fail(StatusCode::BAD_REQUEST, "type must be OPEN or INTERNAL");
    }
    if !app.config.regions.contains(&c.region) {
        return fail(
            StatusCode::BAD_REQUEST,
            format!("region {} is not configured", c.region),
        );
    }
    let mut inner = app.inner.lock();
    let now = now_ms();
    inner.state.settle(now);
    let id = match &c.id {
        Some(id) => id.clone(),
        None => inner.state.next_id("lb"),
    };
    if !inner.state.locate_lb(None, None, &id).is_empty() {
        return fail(
            StatusCode::CONFLICT,
            format!("load balancer {id} already exists"),
        );
    }
    let lb = LoadBalancer {
        load_balancer_id: id.clone(),
        name: c.name.clone().unwrap_or_else(|| id.clone()),
        lb_type,
        vips: c.vips.clone(),
        status: 1,
        vpc_id: "vpc-00000000".into(),
        tags: Vec::new(),
        created_ms: now,
        listeners: Vec::new(),
        current_task: None,
        busy_until_ms: 0,
    };
    inner.state.insert_lb(&c.secret_id, &c.region, lb);
    if let Err(e) = app.persist(&inner.state) {
        return fail(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
    }
    ok(CreatedLoadBalancer {
        load_balancer_id: id,
    })
}

pub fn admin_router(app: Arc<App>) -> Router {
    use AdminPath as P;
    Router::new()
        .route(P::Health.as_str(), get(health))
        .route(P::State.as_str(), get(state_dump))
        .route(P::Reset.as_str(), post(reset))
        .route(P::Limits.as_str(), get(get_limits).patch(patch_limits))
        .route(
            P::Faults.as_str(),
            get(get_faults)
                .put(put_faults)
                .patch(patch_faults)
                .delete(delete_faults),
        )
        .route(
            P::Requests.as_str(),
            get(get_requests).delete(delete_requests),
        )
        .route(
            P::ConsoleDeleteListener.as_str(),
            post(console_delete_listener),
        )
        .route(P::ConsoleDeleteTarget.as_str(), post(console_delete_target))
        .route(
            P::ConsoleDeleteLoadBalancer.as_str(),
            post(console_delete_lb),
        )
        .route(
            P::ConsoleCreateLoadBalancer.as_str(),
            post(console_create_lb),
        )
        .route(P::Metrics.as_str(), get(metrics))
        .with_state(app)
}
