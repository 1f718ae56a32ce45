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
    let timeouts = &ctx.scenario.scenario.timeouts;
    let timeout =
        |own, kind| scenario::effective_timeout(own, step.timeouts.as_ref(), timeouts, kind);
    let client = ctx.env.client.clone();
    let ns = ctx.namespace.clone();
    match op {
        Operation::Apply(apply) => {
            let objects = apply_objects(ctx, apply)?;
            let limit = timeout(apply.timeout, TimeoutKind::Apply);
            for object in objects {
                let name = object
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string();
                if let Some(expected) = &apply.expect_error {
                    expect_rejection(&client, &ns, &object, &name, expected, limit).await?;
                    continue;
                }
                poll(limit, &format!("apply {name}"), || {
                    let (client, ns, object) = (client.clone(), ns.clone(), object.clone());
                    async move {
                        kubeops::apply(&client, &object, &ns)
                            .await
                            .map(|_| Poll::Done)
                    }
                })
                .await?;
            }
            Ok(())
        }
        Operation::Delete(delete) => {
            let r = &delete.resource;
            let limit = timeout(delete.timeout, TimeoutKind::Delete);
            let api = kubeops::api_for(
                &client,
                &r.api_version,
                &r.kind,
                r.namespace.as_deref(),
                &ns,
            )
            .await?;
            let selected = kubeops::list(&client, r, &ns).await?;
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
            if delete.wait {
                poll(limit, "objects gone", || {
                    let (client, ns) = (client.clone(), ns.clone());
                    async move {
                        let left = kubeops::list(&client, r, &ns).await?;
                        Ok(if left.is_empty() {
                            Poll::Done
                        } else {
                            Poll::NotYet(format!("still present: {}", names(&left)))
                        })
                    }
                })
                .await?;
            }
            Ok(())
        }
        Operation::Patch(patch) => {
            let r = &patch.resource;
            let name = r.name.clone().unwrap_or_default();
            let api = kubeops::api_for(
                &client,
                &r.api_version,
                &r.kind,
                r.namespace.as_deref(),
                &ns,
            )
            .await?;
            let body: Patch<Value> = match patch.patch_type {
                PatchType::Merge => Patch::Merge(patch.patch.clone()),
                PatchType::Strategic => Patch::Strategic(patch.patch.clone()),
                PatchType::Json => Patch::Json(
                    serde_json::from_value::<json_patch::Patch>(patch.patch.clone()).map_err(
                        |e| OpFailure {
                            message: format!("invalid JSON patch: {e}"),
                            detail: String::new(),
                        },
                    )?,
                ),
            };
            let limit = timeout(patch.timeout, TimeoutKind::Apply);
            let status = patch.subresource.as_deref() == Some("status");
            poll(limit, &format!("patch {name}"), || {
                let (api, name, body) = (api.clone(), name.clone(), body.clone());
                async move {
                    let params = PatchParams::default();
                    if status {
                        api.patch_status(&name, &params, &body).await?;
                    } else {
                        api.patch(&name, &params, &body).await?;
                    }
                    Ok(Poll::Done)
                }
            })
            .await
        }
        Operation::Scale(scale) => {
            let r = &scale.resource;
            let name = r.name.clone().unwrap_or_default();
            let api = kubeops::api_for(
                &client,
                &r.api_version,
                &r.kind,
                r.namespace.as_deref(),
                &ns,
            )
            .await?;
            let body = Patch::Merge(json!({"spec": {"replicas": scale.replicas}}));
            poll(
                timeout(scale.timeout, TimeoutKind::Apply),
                &format!("scale {name}"),
                || {
                    let (api, name, body) = (api.clone(), name.clone(), body.clone());
                    async move {
                        api.patch(&name, &PatchParams::apply(FIELD_MANAGER), &body)
                            .await?;
                        Ok(Poll::Done)
                    }
                },
            )
            .await
        }
        Operation::Wait(wait) => {
            let r = &wait.resource;
            let limit = timeout(wait.timeout, TimeoutKind::Wait);
            poll(limit, "wait", || {
                let (client, ns) = (client.clone(), ns.clone());
                async move {
                    let objects = kubeops::list(&client, r, &ns).await?;
                    if wait.deleted {
                        return Ok(if objects.is_empty() {
                            Poll::Done
                        } else {
                            Poll::NotYet(format!("still present: {}", names(&objects)))
                        });
                    }
                    let condition = wait.condition.clone().unwrap_or_default();
                    let min = wait.count.unwrap_or(1) as usize;
                    let lacking: Vec<String> = objects
                        .iter()
                        .filter(|(_, o)| {
                            condition_status(o, &condition) != Some(wait.status.as_str())
                        })
                        .map(|(n, o)| {
                            format!(
                                "{n}: {condition}={}",
                                condition_status(o, &condition).unwrap_or("absent")
                            )
                        })
                        .collect();
                    Ok(if objects.len() >= min && lacking.is_empty() {
                        Poll::Done
                    } else {
                        Poll::NotYet(format!(
                            "{} object(s), need at least {min} all with {condition}={}\n{}",
                            objects.len(),
                            wait.status,
                            lacking.join("\n")
                        ))
                    })
                }
            })
            .await
        }
        Operation::Assert(assert) => {
            let limit = timeout(assert.timeout, TimeoutKind::Assert);
            let mode = assert.match_mode;
            poll(limit, "assert", || {
                let (client, ns) = (client.clone(), ns.clone());
                async move {
                    let objects = kubeops::list(&client, &assert.resource, &ns).await?;
                    let outcome = match_objects(mode, &assert.object, &objects);
                    Ok(if outcome.ok {
                        Poll::Done
                    } else {
                        Poll::NotYet(outcome.diff)
                    })
                }
            })
            .await
        }
        Operation::Error(error) => {
            let check = || {
                let (client, ns) = (client.clone(), ns.clone());
                async move {
                    let objects = kubeops::list(&client, &error.resource, &ns).await?;
                    let matching: Vec<String> = objects
                        .iter()
                        .filter(|(_, o)| matcher::matches(&error.object, o))
                        .map(|(n, _)| n.clone())
                        .collect();
                    Ok::<Vec<String>, Error>(matching)
                }
            };
            match error.window {
                Some(window) => {
                    let end = Instant::now() + window.get();
                    loop {
                        match check().await {
                            Ok(matching) if !matching.is_empty() => {
                                return Err(OpFailure {
                                    message: "forbidden state observed during the window"
                                        .to_string(),
                                    detail: format!(
                                        "object(s) matching {}: {}",
                                        matcher::brief(&error.object),
                                        matching.join(", ")
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
                None => {
                    poll(timeout(error.timeout, TimeoutKind::Error), "error", || {
                        let fut = check();
                        async move {
                            let matching = fut.await?;
                            Ok(if matching.is_empty() {
                                Poll::Done
                            } else {
                                Poll::NotYet(format!(
                                    "object(s) still matching {}: {}",
                                    matcher::brief(&error.object),
                                    matching.join(", ")
                                ))
                            })
                        }
                    })
                    .await
                }
            }
        }
        Operation::AssertCloud(cloud) => {
            let limit = timeout(cloud.timeout, TimeoutKind::Assert);
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
        Operation::InjectFaults(inject) => {
            let rules = serde_json::to_value(&inject.rules).map_err(|e| OpFailure {
                message: e.to_string(),
                detail: String::new(),
            })?;
            ctx.env
                .admin("PATCH", "/_fake/faults", Some(&rules))
                .await?;
            Ok(())
        }
        Operation::ClearFaults(_) => {
            ctx.env.admin("DELETE", "/_fake/faults", None).await?;
            Ok(())
        }
        Operation::SetLimits(limits) => {
            let body = serde_json::to_value(limits).map_err(|e| OpFailure {
                message: e.to_string(),
                detail: String::new(),
            })?;
            ctx.env.admin("PATCH", "/_fake/limits", Some(&body)).await?;
            Ok(())
        }
        Operation::Controller(controller) => {
            match controller.action {
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
        Operation::Measure(measure) => {
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
        Operation::Sleep(sleep) => {
            tokio::time::sleep(sleep.duration.get()).await;
            Ok(())
        }
        Operation::Console(console) => {
            let (path, body) = console_request(ctx.env, console).await?;
            ctx.env.admin("POST", &path, Some(&body)).await?;
            Ok(())
        }
        Operation::Events(events) => {
            let namespace = events.namespace.clone().unwrap_or(ns);
            ctx.notes.push(collect_events(&client, &namespace).await?);
            Ok(())
        }
        Operation::Dump(dump) => {
            let objects = kubeops::list(&client, &dump.resource, &ns).await?;
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
        Operation::ControllerLog(log) => {
            let lines = log.lines.unwrap_or(50);
            let path = ctx.env.controller_log();
            ctx.notes.push(format!(
                "last {lines} line(s) of {}:\n{}",
                path.display(),
                crate::cluster::process::log_tail(&path, lines)
            ));
            Ok(())
        }
    }
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

/// The control-API path and body of a `console` operation; listener ids are looked up by port.
async fn console_request(
    env: &crate::env::Environment,
    console: &scenario::ConsoleOp,
) -> Result<(String, Value), OpFailure> {
    use scenario::ConsoleAction;
    let region = console
        .region
        .clone()
        .unwrap_or_else(|| env.cloud.region.clone());
    let mut body = json!({"region": region, "loadBalancerId": console.load_balancer_id});
    if let Some(secret_id) = &console.secret_id {
        body["secretId"] = json!(secret_id);
    }
    let action = match console.action {
        ConsoleAction::DeleteLoadBalancer => "delete-load-balancer",
        ConsoleAction::CreateLoadBalancer => {
            let secret_id = console
                .secret_id
                .clone()
                .or_else(|| env.cloud.accounts.first().map(|a| a.secret_id.clone()))
                .unwrap_or_default();
            body["secretId"] = json!(secret_id);
            body["id"] = json!(console.load_balancer_id);
            body["name"] = json!(
                console
                    .name
                    .clone()
                    .unwrap_or_else(|| console.load_balancer_id.clone())
            );
            body["type"] = json!("OPEN");
            body["vips"] = json!(console.vips);
            if let Some(map) = body.as_object_mut() {
                map.remove("loadBalancerId");
            }
            "create-load-balancer"
        }
        ConsoleAction::DeleteListener | ConsoleAction::DeleteTarget => {
            let port = console.port.unwrap_or_default();
            let protocol = console
                .protocol
                .clone()
                .unwrap_or_else(|| "TCP".to_string());
            let state = env.admin("GET", "/_fake/state", None).await?;
            let lb = super::invariants::cloud_load_balancers(&state)
                .remove(&console.load_balancer_id)
                .ok_or_else(|| OpFailure {
                    message: format!(
                        "load balancer {} not found in fake-clb",
                        console.load_balancer_id
                    ),
                    detail: String::new(),
                })?;
            let listener_id = lb
                .get("listeners")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .find(|l| {
                    l.get("port").and_then(Value::as_u64) == Some(u64::from(port))
                        && l.get("protocol").and_then(Value::as_str) == Some(protocol.as_str())
                })
                .and_then(|l| l.get("listenerId").and_then(Value::as_str))
                .ok_or_else(|| OpFailure {
                    message: format!(
                        "no {protocol} listener on port {port} of {}",
                        console.load_balancer_id
                    ),
                    detail: String::new(),
                })?;
            body["listenerId"] = json!(listener_id);
            if console.action == ConsoleAction::DeleteTarget {
                body["ip"] = json!(console.ip);
                body["port"] = json!(console.target_port);
                "delete-target"
            } else {
                "delete-listener"
            }
        }
    };
    Ok((format!("/_fake/console/{action}"), body))
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
    Ok(match query {
        CloudQuery::Faults => Some(env.admin("GET", "/_fake/faults", None).await?),
        CloudQuery::Limits => Some(env.admin("GET", "/_fake/limits", None).await?),
        CloudQuery::State => Some(env.admin("GET", "/_fake/state", None).await?),
        CloudQuery::Requests => Some(env.admin("GET", "/_fake/requests", None).await?),
        CloudQuery::LoadBalancers => {
            let state = env.admin("GET", "/_fake/state", None).await?;
            Some(Value::Array(
                super::invariants::cloud_load_balancers(&state)
                    .into_values()
                    .collect(),
            ))
        }
        CloudQuery::LoadBalancer => {
            let state = env.admin("GET", "/_fake/state", None).await?;
            let id = id.unwrap_or_default();
            super::invariants::cloud_load_balancers(&state).remove(id)
        }
    })
}
