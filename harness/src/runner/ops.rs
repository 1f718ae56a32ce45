//! Execution of single operations. Polling operations retry transient API errors until their
//! timeout and report both the last diff and the last error.

use std::future::Future;
use std::time::{Duration, Instant};

use kube::api::{DeleteParams, Patch, PatchParams};
use serde_json::{Value, json};

use super::Ctx;
use crate::error::Error;
use crate::kubeops::{self, FIELD_MANAGER};
use crate::matcher::{self, match_objects};
use crate::scenario::{
    self, CloudQuery, ControllerAction, MatchMode, MatchWord, Operation, PatchType, Step,
    TimeoutKind,
};
use fake_clb::admin_api::{ConsoleTarget, CreateLoadBalancer, StateQuery};

const POLL: Duration = Duration::from_millis(250);

#[derive(Debug, Clone)]
pub struct OpFailure {
    pub message: String,
    pub detail: String,
}

impl From<Error> for OpFailure {
    fn from(e: Error) -> Self {
        OpFailure {
            message: e.to_string(),
            detail: String::new(),
        }
    }
}

enum Poll {
    Done,
    NotYet(String),
}

/// Polls `check` until Done or `timeout`; transient errors are retried and remembered.
async fn poll<F, Fut>(timeout: Duration, what: &str, mut check: F) -> Result<(), OpFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Poll, Error>>,
{
    let deadline = Instant::now() + timeout;
    let mut last_diff = String::new();
    let mut last_error = String::new();
    loop {
        match check().await {
            Ok(Poll::Done) => return Ok(()),
            Ok(Poll::NotYet(diff)) => last_diff = diff,
            Err(e) if kubeops::is_transient(&e) => last_error = e.to_string(),
            Err(e) => {
                return Err(OpFailure {
                    message: format!("{what}: {e}"),
                    detail: last_diff,
                });
            }
        }
        if Instant::now() >= deadline {
            let mut detail = String::new();
            if !last_diff.is_empty() {
                detail.push_str(&format!("last diff:\n{last_diff}"));
            }
            if !last_error.is_empty() {
                detail.push_str(&format!("\nlast error: {last_error}"));
            }
            return Err(OpFailure {
                message: format!(
                    "{what}: timed out after {}",
                    humantime::format_duration(timeout)
                ),
                detail: detail.trim_start().to_string(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

pub(super) async fn run(ctx: &mut Ctx<'_>, step: &Step, op: &Operation) -> Result<(), OpFailure> {
    let loaded: &scenario::LoadedScenario = ctx.scenario;
    let defaults = &loaded.scenario.timeouts;
    let limit =
        |own, kind| scenario::effective_timeout(own, step.timeouts.as_ref(), defaults, kind);
    match op {
        Operation::Apply(apply) => {
            let limit = limit(apply.timeout, TimeoutKind::Apply);
            run_apply(ctx, apply, limit).await
        }
        Operation::Delete(delete) => {
            let limit = limit(delete.timeout, TimeoutKind::Delete);
            run_delete(ctx, delete, limit).await
        }
        Operation::Patch(patch) => {
            let limit = limit(patch.timeout, TimeoutKind::Apply);
            run_patch(ctx, patch, limit).await
        }
        Operation::Scale(scale) => {
            let limit = limit(scale.timeout, TimeoutKind::Apply);
            run_scale(ctx, scale, limit).await
        }
        Operation::Wait(wait) => {
            let limit = limit(wait.timeout, TimeoutKind::Wait);
            run_wait(ctx, wait, limit).await
        }
        Operation::Assert(assert) => {
            let limit = limit(assert.timeout, TimeoutKind::Assert);
            run_assert(ctx, assert, limit).await
        }
        Operation::Error(error) => {
            let limit = limit(error.timeout, TimeoutKind::Error);
            run_error(ctx, error, limit).await
        }
        Operation::AssertCloud(cloud) => {
            let limit = limit(cloud.timeout, TimeoutKind::Assert);
            run_assert_cloud(ctx, cloud, limit).await
        }
        Operation::InjectFaults(inject) => {
            ctx.env
                .admin
                .append_faults(&inject.rules)
                .await
                .map_err(Error::from)?;
            Ok(())
        }
        Operation::ClearFaults(_) => {
            ctx.env.admin.clear_faults().await.map_err(Error::from)?;
            Ok(())
        }
        Operation::SetLimits(limits) => {
            ctx.env
                .admin
                .patch_limits(limits)
                .await
                .map_err(Error::from)?;
            Ok(())
        }
        Operation::Controller(controller) => run_controller(ctx, controller.action).await,
        Operation::FakeClb(fake) => run_fake_clb(ctx, fake.action).await,
        Operation::RestartControlPlane(restart) => {
            run_restart_control_plane(ctx, restart.component).await
        }
        Operation::Measure(measure) => run_measure(ctx, measure).await,
        Operation::Sleep(sleep) => {
            tokio::time::sleep(sleep.duration.get()).await;
            Ok(())
        }
        Operation::Console(console) => run_console(ctx.env, console).await,
        Operation::Events(events) => {
            let namespace = events.namespace.as_deref().unwrap_or(&ctx.namespace);
            let text = collect_events(&ctx.env.client, namespace).await?;
            ctx.notes.push(text);
            Ok(())
        }
        Operation::Dump(dump) => run_dump(ctx, dump).await,
        Operation::ControllerLog(log) => {
            run_controller_log(ctx, log.lines.unwrap_or(50));
            Ok(())
        }
    }
}

/// `controllerLog`: the last lines of the controller's log into the step log.
fn run_controller_log(ctx: &mut Ctx<'_>, lines: usize) {
    let path = ctx.env.controller_log();
    ctx.notes.push(format!(
        "last {lines} line(s) of {}:\n{}",
        path.display(),
        crate::cluster::process::log_tail(&path, lines)
    ));
}

fn json_of(value: &impl serde::Serialize) -> Result<Value, Error> {
    serde_json::to_value(value).map_err(|e| Error::Serialize {
        what: "fake-clb answer",
        reason: e.to_string(),
    })
}

/// `apply`: server-side apply of each object in turn, or with `expectError` a check that each
/// is rejected.
async fn run_apply(
    ctx: &mut Ctx<'_>,
    apply: &scenario::ApplyOp,
    limit: Duration,
) -> Result<(), OpFailure> {
    let objects = apply_objects(ctx, apply)?;
    let (client, ns) = (&ctx.env.client, ctx.namespace.as_str());
    for object in objects {
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string();
        if let Some(expected) = &apply.expect_error {
            expect_rejection(client, ns, &object, &name, expected, limit).await?;
            continue;
        }
        poll(limit, &format!("apply {name}"), || async {
            kubeops::apply(client, &object, ns)
                .await
                .map(|_| Poll::Done)
        })
        .await?;
    }
    Ok(())
}

/// `delete`: deletes the selected objects (background propagation) and, with `wait`, polls
/// until they are gone; with `expectError` checks that each delete is refused.
async fn run_delete(
    ctx: &mut Ctx<'_>,
    delete: &scenario::DeleteOp,
    limit: Duration,
) -> Result<(), OpFailure> {
    let (client, ns) = (&ctx.env.client, ctx.namespace.as_str());
    let r = &delete.resource;
    let api = resource_api(client, r, ns).await?;
    let selected = kubeops::list(client, r, ns).await?;
    if let Some(expected) = &delete.expect_error {
        return expect_delete_refused(&api, &selected, expected).await;
    }
    for (label, _) in selected {
        let name = label.rsplit('/').next().unwrap_or(&label).to_string();
        match api.delete(&name, &DeleteParams::background()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(Error::from(e).into()),
        }
    }
    if !delete.wait {
        return Ok(());
    }
    poll(limit, "objects gone", || async {
        let left = kubeops::list(client, r, ns).await?;
        Ok(if left.is_empty() {
            Poll::Done
        } else {
            Poll::NotYet(format!("still present: {}", names(&left)))
        })
    })
    .await
}

async fn resource_api(
    client: &kube::Client,
    r: &scenario::ResourceRef,
    ns: &str,
) -> Result<kube::Api<kube::api::DynamicObject>, Error> {
    kubeops::api_for(client, &r.api_version, &r.kind, r.namespace.as_deref(), ns).await
}

/// `patch`: one merge, strategic-merge or JSON patch of the object or its status.
async fn run_patch(
    ctx: &mut Ctx<'_>,
    patch: &scenario::PatchOp,
    limit: Duration,
) -> Result<(), OpFailure> {
    let r = &patch.resource;
    let name = r.name.clone().unwrap_or_default();
    let api = resource_api(&ctx.env.client, r, &ctx.namespace).await?;
    let body: Patch<Value> = match patch.patch_type {
        PatchType::Merge => Patch::Merge(patch.patch.clone()),
        PatchType::Strategic => Patch::Strategic(patch.patch.clone()),
        PatchType::Json => Patch::Json(
            serde_json::from_value::<json_patch::Patch>(patch.patch.clone()).map_err(|e| {
                OpFailure {
                    message: format!("invalid JSON patch: {e}"),
                    detail: String::new(),
                }
            })?,
        ),
    };
    let status = patch.subresource.as_deref() == Some("status");
    let params = PatchParams::default();
    poll(limit, &format!("patch {name}"), || async {
        if status {
            api.patch_status(&name, &params, &body).await?;
        } else {
            api.patch(&name, &params, &body).await?;
        }
        Ok(Poll::Done)
    })
    .await
}

/// `scale`: sets `spec.replicas` with server-side apply.
async fn run_scale(
    ctx: &mut Ctx<'_>,
    scale: &scenario::ScaleOp,
    limit: Duration,
) -> Result<(), OpFailure> {
    let r = &scale.resource;
    let name = r.name.clone().unwrap_or_default();
    let api = resource_api(&ctx.env.client, r, &ctx.namespace).await?;
    let body = Patch::Merge(json!({"spec": {"replicas": scale.replicas}}));
    let params = PatchParams::apply(FIELD_MANAGER);
    poll(limit, &format!("scale {name}"), || async {
        api.patch(&name, &params, &body).await?;
        Ok(Poll::Done)
    })
    .await
}

/// `wait`: polls until the objects are gone (`deleted`) or at least `count` exist and all have
/// the condition with the wanted status.
async fn run_wait(
    ctx: &mut Ctx<'_>,
    wait: &scenario::WaitOp,
    limit: Duration,
) -> Result<(), OpFailure> {
    let (client, ns) = (&ctx.env.client, ctx.namespace.as_str());
    poll(limit, "wait", || async {
        let objects = kubeops::list(client, &wait.resource, ns).await?;
        Ok(wait_progress(wait, &objects))
    })
    .await
}

fn wait_progress(wait: &scenario::WaitOp, objects: &[(String, Value)]) -> Poll {
    if wait.deleted {
        return if objects.is_empty() {
            Poll::Done
        } else {
            Poll::NotYet(format!("still present: {}", names(objects)))
        };
    }
    let condition = wait.condition.clone().unwrap_or_default();
    let min = wait.count.unwrap_or(1) as usize;
    let lacking: Vec<String> = objects
        .iter()
        .filter(|(_, o)| condition_status(o, &condition) != Some(wait.status.as_str()))
        .map(|(n, o)| {
            format!(
                "{n}: {condition}={}",
                condition_status(o, &condition).unwrap_or("absent")
            )
        })
        .collect();
    if objects.len() >= min && lacking.is_empty() {
        Poll::Done
    } else {
        Poll::NotYet(format!(
            "{} object(s), need at least {min} all with {condition}={}\n{}",
            objects.len(),
            wait.status,
            lacking.join("\n")
        ))
    }
}

/// `assert`: polls until the selected objects partially match.
async fn run_assert(
    ctx: &mut Ctx<'_>,
    assert: &scenario::AssertOp,
    limit: Duration,
) -> Result<(), OpFailure> {
    let (client, ns) = (&ctx.env.client, ctx.namespace.as_str());
    poll(limit, "assert", || async {
        let objects = kubeops::list(client, &assert.resource, ns).await?;
        let outcome = match_objects(assert.match_mode, &assert.object, &objects);
        Ok(if outcome.ok {
            Poll::Done
        } else {
            Poll::NotYet(outcome.diff)
        })
    })
    .await
}

/// `error`: with `window`, fails as soon as an object matches during it; without, polls until
/// no object matches.
async fn run_error(
    ctx: &mut Ctx<'_>,
    error: &scenario::ErrorOp,
    limit: Duration,
) -> Result<(), OpFailure> {
    let (client, ns) = (&ctx.env.client, ctx.namespace.as_str());
    let matching = || async {
        let objects = kubeops::list(client, &error.resource, ns).await?;
        Ok::<Vec<String>, Error>(
            objects
                .iter()
                .filter(|(_, o)| matcher::matches(&error.object, o))
                .map(|(n, _)| n.clone())
                .collect(),
        )
    };
    let Some(window) = error.window else {
        return poll(limit, "error", || async {
            let found = matching().await?;
            Ok(if found.is_empty() {
                Poll::Done
            } else {
                Poll::NotYet(format!(
                    "object(s) still matching {}: {}",
                    matcher::brief(&error.object),
                    found.join(", ")
                ))
            })
        })
        .await;
    };
    let end = Instant::now() + window.get();
    loop {
        match matching().await {
            Ok(found) if !found.is_empty() => {
                return Err(OpFailure {
                    message: "forbidden state observed during the window".to_string(),
                    detail: format!(
                        "object(s) matching {}: {}",
                        matcher::brief(&error.object),
                        found.join(", ")
                    ),
                });
            }
            Ok(_) => {}
            Err(e) if kubeops::is_transient(&e) => {}
            Err(e) => return Err(e.into()),
        }
        if Instant::now() >= end {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// `assertCloud`: polls until the fake-clb query partially matches.
async fn run_assert_cloud(
    ctx: &mut Ctx<'_>,
    cloud: &scenario::AssertCloudOp,
    limit: Duration,
) -> Result<(), OpFailure> {
    let env = &*ctx.env;
    poll(limit, "assertCloud", || async {
        let actual = cloud_query(env, cloud.query, cloud.id.as_deref()).await?;
        let Some(actual) = actual else {
            return Ok(Poll::NotYet(format!(
                "load balancer {} not found in fake-clb",
                cloud.id.as_deref().unwrap_or("?")
            )));
        };
        let outcome = match_objects(
            MatchMode::Word(MatchWord::All),
            &cloud.object,
            &[(format!("{:?}", cloud.query), actual)],
        );
        Ok(if outcome.ok {
            Poll::Done
        } else {
            Poll::NotYet(outcome.diff)
        })
    })
    .await
}

async fn run_controller(ctx: &mut Ctx<'_>, action: ControllerAction) -> Result<(), OpFailure> {
    match action {
        ControllerAction::Start => ctx.env.start_controller().await?,
        ControllerAction::Stop => ctx.env.stop_controller(false).await,
        ControllerAction::Kill => ctx.env.stop_controller(true).await,
        ControllerAction::Restart => {
            ctx.env.stop_controller(false).await;
            ctx.env.start_controller().await?;
        }
    }
    Ok(())
}

/// `fakeClb`: the fake-clb process, as `controller` does for the controller.
async fn run_fake_clb(ctx: &mut Ctx<'_>, action: ControllerAction) -> Result<(), OpFailure> {
    match action {
        ControllerAction::Start => ctx.env.start_fake_clb().await?,
        ControllerAction::Stop => ctx.env.stop_fake_clb(false).await?,
        ControllerAction::Kill => ctx.env.stop_fake_clb(true).await?,
        ControllerAction::Restart => {
            ctx.env.stop_fake_clb(false).await?;
            ctx.env.start_fake_clb().await?;
        }
    }
    Ok(())
}

/// `restartControlPlane`: the step log says how long the component was away.
async fn run_restart_control_plane(
    ctx: &mut Ctx<'_>,
    component: crate::cluster::config::Component,
) -> Result<(), OpFailure> {
    let away = ctx.env.restart_control_plane(component).await?;
    ctx.notes.push(format!(
        "{component} restarted, healthy again after {:.1}s",
        away.as_secs_f64()
    ));
    Ok(())
}

async fn run_measure(ctx: &mut Ctx<'_>, measure: &scenario::MeasureOp) -> Result<(), OpFailure> {
    if let Some(name) = &measure.start {
        let def = ctx
            .scenario
            .scenario
            .measurements
            .iter()
            .find(|m| &m.name == name)
            .cloned()
            .ok_or_else(|| OpFailure {
                message: format!("unknown measurement {name}"),
                detail: String::new(),
            })?;
        ctx.measurements.start(ctx.env, &def, &ctx.namespace).await;
    }
    if let Some(name) = &measure.stop {
        ctx.measurements.stop(name);
    }
    Ok(())
}

/// `dump`: the selected objects as YAML (without managedFields) into the step log.
async fn run_dump(ctx: &mut Ctx<'_>, dump: &scenario::DumpOp) -> Result<(), OpFailure> {
    let objects = kubeops::list(&ctx.env.client, &dump.resource, &ctx.namespace).await?;
    let mut text = format!("{} {} object(s):", objects.len(), dump.resource.kind);
    for (name, mut object) in objects {
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            meta.remove("managedFields");
        }
        let yaml = serde_yaml::to_string(&object).unwrap_or_else(|e| e.to_string());
        text.push_str(&format!("\n--- {name}\n{yaml}"));
    }
    ctx.notes.push(text);
    Ok(())
}

/// Applies `object` until the API server rejects it (transient errors are retried) and checks
/// the rejection names `expected`. An accepted object fails the operation.
async fn expect_rejection(
    client: &kube::Client,
    namespace: &str,
    object: &Value,
    name: &str,
    expected: &str,
    limit: Duration,
) -> Result<(), OpFailure> {
    let deadline = Instant::now() + limit;
    loop {
        match kubeops::apply(client, object, namespace).await {
            Ok(_) => {
                return Err(OpFailure {
                    message: format!("apply {name}: accepted, expected a rejection"),
                    detail: format!("expected an error containing {expected:?}"),
                });
            }
            Err(e) if kubeops::is_transient(&e) && Instant::now() < deadline => {
                tokio::time::sleep(POLL).await;
            }
            Err(e) => {
                let message = e.to_string();
                return if message.contains(expected) {
                    Ok(())
                } else {
                    Err(OpFailure {
                        message: format!("apply {name}: rejected with another message"),
                        detail: format!(
                            "expected an error containing {expected:?}\ngot: {message}"
                        ),
                    })
                };
            }
        }
    }
}

/// `delete` with `expectError`: every selected object must be refused with the text; the first
/// accepted or otherwise refused delete fails the operation.
async fn expect_delete_refused(
    api: &kube::Api<kube::api::DynamicObject>,
    selected: &[(String, Value)],
    expected: &str,
) -> Result<(), OpFailure> {
    if selected.is_empty() {
        return Err(OpFailure {
            message: "delete: no object selected, expected a refusal".to_string(),
            detail: format!("expected an error containing {expected:?}"),
        });
    }
    for (label, _) in selected {
        let name = label.rsplit('/').next().unwrap_or(label);
        match api.delete(name, &DeleteParams::background()).await {
            Ok(_) => {
                return Err(OpFailure {
                    message: format!("delete {label}: accepted, expected a refusal"),
                    detail: format!("expected an error containing {expected:?}"),
                });
            }
            Err(e) => {
                let message = e.to_string();
                if !message.contains(expected) {
                    return Err(OpFailure {
                        message: format!("delete {label}: refused with another message"),
                        detail: format!(
                            "expected an error containing {expected:?}\ngot: {message}"
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// `console`: the control-API call a person in the cloud console would make; listener ids are
/// looked up by port and protocol.
async fn run_console(
    env: &crate::env::Environment,
    console: &scenario::ConsoleOp,
) -> Result<(), OpFailure> {
    use scenario::ConsoleAction;
    let region = console
        .region
        .clone()
        .unwrap_or_else(|| env.cloud.region.clone());
    let mut target = ConsoleTarget {
        secret_id: console.secret_id.clone(),
        region: Some(region.clone()),
        load_balancer_id: console.load_balancer_id.clone(),
        ..ConsoleTarget::default()
    };
    let admin = &env.admin;
    let done = match console.action {
        ConsoleAction::DeleteLoadBalancer => {
            admin.console_delete_load_balancer(&target).await.map(drop)
        }
        ConsoleAction::CreateLoadBalancer => {
            let lb = CreateLoadBalancer {
                secret_id: console
                    .secret_id
                    .clone()
                    .or_else(|| env.cloud.accounts.first().map(|a| a.secret_id.clone()))
                    .unwrap_or_default(),
                region,
                id: Some(console.load_balancer_id.clone()),
                name: Some(
                    console
                        .name
                        .clone()
                        .unwrap_or_else(|| console.load_balancer_id.clone()),
                ),
                lb_type: Some("OPEN".to_string()),
                vips: console.vips.clone(),
            };
            admin.console_create_load_balancer(&lb).await.map(drop)
        }
        ConsoleAction::DeleteListener | ConsoleAction::DeleteTarget => {
            target.listener_id = Some(console_listener_id(env, console).await?);
            if console.action == ConsoleAction::DeleteTarget {
                target.ip = console.ip.clone();
                target.port = console.target_port.map(i64::from);
                admin.console_delete_target(&target).await.map(drop)
            } else {
                admin.console_delete_listener(&target).await.map(drop)
            }
        }
    };
    done.map_err(|e| Error::from(e).into())
}

/// The id of the listener a `console` operation names by load balancer, port and protocol.
async fn console_listener_id(
    env: &crate::env::Environment,
    console: &scenario::ConsoleOp,
) -> Result<String, OpFailure> {
    let port = console.port.unwrap_or_default();
    let protocol = console.protocol.as_deref().unwrap_or("TCP");
    let state = env
        .admin
        .state_json(&StateQuery::default())
        .await
        .map_err(Error::from)?;
    let lb = super::invariants::cloud_load_balancers(&state)
        .remove(&console.load_balancer_id)
        .ok_or_else(|| OpFailure {
            message: format!(
                "load balancer {} not found in fake-clb",
                console.load_balancer_id
            ),
            detail: String::new(),
        })?;
    lb.get("listeners")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|l| {
            l.get("port").and_then(Value::as_u64) == Some(u64::from(port))
                && l.get("protocol").and_then(Value::as_str) == Some(protocol)
        })
        .and_then(|l| l.get("listenerId").and_then(Value::as_str))
        .map(str::to_string)
        .ok_or_else(|| OpFailure {
            message: format!(
                "no {protocol} listener on port {port} of {}",
                console.load_balancer_id
            ),
            detail: String::new(),
        })
}

/// The namespace's events, oldest first, one line each.
async fn collect_events(client: &kube::Client, namespace: &str) -> Result<String, OpFailure> {
    use k8s_openapi::api::core::v1::Event;
    let api: kube::Api<Event> = kube::Api::namespaced(client.clone(), namespace);
    let mut events = api
        .list(&kube::api::ListParams::default())
        .await
        .map_err(Error::from)?
        .items;
    events.sort_by_key(|e| e.last_timestamp.clone().map(|t| t.0));
    let mut text = format!("{} event(s) in {namespace}:", events.len());
    for e in events {
        text.push_str(&format!(
            "\n{} {}/{} {}: {}",
            e.type_.unwrap_or_default(),
            e.involved_object.kind.unwrap_or_default(),
            e.involved_object.name.unwrap_or_default(),
            e.reason.unwrap_or_default(),
            e.message.unwrap_or_default()
        ));
    }
    Ok(text)
}

fn names(objects: &[(String, Value)]) -> String {
    objects
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn condition_status<'a>(object: &'a Value, condition: &str) -> Option<&'a str> {
    object
        .pointer("/status/conditions")?
        .as_array()?
        .iter()
        .find(|c| c.get("type").and_then(Value::as_str) == Some(condition))?
        .get("status")?
        .as_str()
}

fn apply_objects(ctx: &Ctx<'_>, apply: &scenario::ApplyOp) -> Result<Vec<Value>, OpFailure> {
    if let Some(object) = &apply.object {
        return Ok(vec![object.clone()]);
    }
    if let Some(objects) = &apply.objects {
        return Ok(objects.clone());
    }
    let Some(file) = &apply.file else {
        return Ok(Vec::new());
    };
    let base = ctx
        .scenario
        .path
        .parent()
        .unwrap_or(std::path::Path::new("."));
    let path = base.join(file);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| OpFailure::from(Error::io("reading manifest", &path, e)))?
        .replace("${namespace}", &ctx.namespace);
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(&text) {
        let value: Value = serde::Deserialize::deserialize(document).map_err(|e| OpFailure {
            message: format!("{}: {e}", path.display()),
            detail: String::new(),
        })?;
        if !value.is_null() {
            out.push(value);
        }
    }
    Ok(out)
}

/// The JSON an `assertCloud` matches against; None when the load balancer does not exist.
async fn cloud_query(
    env: &crate::env::Environment,
    query: CloudQuery,
    id: Option<&str>,
) -> Result<Option<Value>, Error> {
    let admin = &env.admin;
    Ok(match query {
        CloudQuery::Faults => Some(json_of(&admin.faults().await?)?),
        CloudQuery::Limits => Some(json_of(&admin.limits().await?)?),
        CloudQuery::State => Some(admin.state_json(&StateQuery::default()).await?),
        CloudQuery::Requests => Some(json_of(&admin.requests(None).await?)?),
        CloudQuery::LoadBalancers => {
            let state = admin.state_json(&StateQuery::default()).await?;
            Some(Value::Array(
                super::invariants::cloud_load_balancers(&state)
                    .into_values()
                    .collect(),
            ))
        }
        CloudQuery::LoadBalancer => {
            let state = admin.state_json(&StateQuery::default()).await?;
            let id = id.unwrap_or_default();
            super::invariants::cloud_load_balancers(&state).remove(id)
        }
    })
}
