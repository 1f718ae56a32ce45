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
            for (label, _) in kubeops::list(&client, r, &ns).await? {
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
                let admin = ctx.env.admin_url("/_fake/state");
                ctx.measurements
                    .start(&ctx.env.client, &def, &ctx.namespace, admin);
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
    }
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
