//! The pure state core: accounts, regions, load balancers, listeners, rules, targets and async tasks.
//! No I/O and no clock: every call gets `now_ms`, so tests drive time explicitly.

use std::collections::{BTreeMap, BTreeSet};

use clb_api::model::{self, HealthCheck};
use clb_api::protocol::{PortClass, Protocol};
use clb_api::{ApiError, ErrorCode, limits};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

mod listeners;
mod load_balancers;
mod rules;
mod targets;
mod tasks;
#[cfg(test)]
mod tests;
mod validate;

use crate::admin_api::{AccountDump, RegionDump, StateDump, TaskDump};
use crate::config::{Config, Limits};
pub use crate::model::{Backend, Listener, LoadBalancer, Rule, Tag};
use listeners::*;

/// How the task created by an async call ends (set by `failTask` / `hangTask` faults).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TaskMode {
    #[default]
    Normal,
    Fail(String),
    Hang,
}

/// Everything a state call needs to know about the request.
#[derive(Debug, Clone)]
pub struct Ctx<'a> {
    pub secret_id: &'a str,
    pub region: &'a str,
    pub now_ms: u64,
    /// Becomes the TaskId of an async call.
    pub request_id: &'a str,
    pub limits: &'a Limits,
    pub task_mode: TaskMode,
}

impl Backend {
    fn same(&self, key: &TargetKey) -> bool {
        self.ip == key.ip && self.instance_id == key.instance_id && self.port == key.port
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct TargetKey {
    ip: Option<String>,
    instance_id: Option<String>,
    port: i64,
}

impl TargetKey {
    fn describe(&self) -> String {
        format!(
            "{}:{}",
            self.ip
                .as_deref()
                .or(self.instance_id.as_deref())
                .unwrap_or(""),
            self.port
        )
    }
}

impl Listener {
    fn is_l7(&self) -> bool {
        Protocol::parse(&self.protocol).is_some_and(Protocol::is_l7)
    }
    fn last_port(&self) -> i64 {
        if self.end_port > 0 {
            self.end_port
        } else {
            self.port
        }
    }
}

/// What to restore when a task fails.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Rollback {
    /// Put these LBs back as they were (modifications and deletions).
    Restore(Vec<LoadBalancer>),
    /// Remove these LBs (a failed creation).
    Remove(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Task {
    pub task_id: String,
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_id: Option<String>,
    pub created_ms: u64,
    /// `None` while the task hangs (hangTask fault).
    pub done_ms: Option<u64>,
    pub settled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<Rollback>,
    #[serde(default)]
    pub load_balancer_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_name: Option<String>,
}

impl Task {
    /// 0 succeeded, 1 failed, 2 in progress (as of the last settle).
    pub fn status(&self) -> i64 {
        match (self.settled, &self.fail_message) {
            (false, _) => 2,
            (true, None) => 0,
            (true, Some(_)) => 1,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Region {
    pub load_balancers: BTreeMap<String, LoadBalancer>,
    pub tasks: BTreeMap<String, Task>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientTokenResult {
    pub load_balancer_ids: Vec<String>,
    pub deal_name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Account {
    pub app_id: u64,
    pub regions: BTreeMap<String, Region>,
    #[serde(default)]
    pub client_tokens: BTreeMap<String, ClientTokenResult>,
}

/// Reference to an unsettled task.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TaskRef {
    pub secret_id: String,
    pub region: String,
    pub task_id: String,
}

/// The whole persisted state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct State {
    pub seed: u64,
    pub id_seq: u64,
    pub accounts: BTreeMap<String, Account>,
    #[serde(default)]
    pub pending: BTreeSet<TaskRef>,
}

const TASK_RETENTION_MS: u64 = 3_600_000;
const MAX_TASKS_PER_REGION: usize = 20_000;

fn err(code: ErrorCode, msg: impl Into<String>) -> ApiError {
    ApiError::new(code, msg)
}

fn invalid_value(msg: impl Into<String>) -> ApiError {
    err(ErrorCode::InvalidParameterValue, msg)
}

fn parse<T: DeserializeOwned>(params: Value) -> Result<T, ApiError> {
    serde_json::from_value(params)
        .map_err(|e| ApiError::invalid_parameter(format!("Invalid parameters: {e}")))
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// `YYYY-MM-DD HH:mm:ss` in Beijing time, as the real API prints times.
pub fn fmt_time(ms: u64) -> String {
    let secs = i64::try_from(ms / 1000).unwrap_or(0) + 8 * 3600;
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn port_class(protocol: &str) -> Option<PortClass> {
    Protocol::parse(protocol).map(Protocol::port_class)
}

/// Overlays the fields set in `patch` onto `base` (both serialize to objects with the same keys).
fn merge_health(base: Option<HealthCheck>, patch: &HealthCheck) -> HealthCheck {
    let mut b = to_value(&base.unwrap_or_default());
    if let (Value::Object(bm), Value::Object(pm)) = (&mut b, to_value(patch)) {
        for (k, v) in pm {
            bm.insert(k, v);
        }
    }
    serde_json::from_value(b).unwrap_or_default()
}

fn check_scheduler(s: &str) -> Result<String, ApiError> {
    let up = s.to_ascii_uppercase();
    if matches!(up.as_str(), "WRR" | "LEAST_CONN" | "IP_HASH") {
        Ok(up)
    } else {
        Err(invalid_value("Scheduler should be WRR or LEAST_CONN"))
    }
}

fn check_name(name: &str, what: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if n == 0 || n > limits::NAME_MAX_CHARS {
        return Err(err(
            ErrorCode::InvalidParameterValueLength,
            format!(
                "The length of {what} should be between 1 and {}.",
                limits::NAME_MAX_CHARS
            ),
        ));
    }
    Ok(())
}

impl State {
    /// The initial state of a config: its accounts and pre-existing LBs (running, no listeners).
    pub fn from_config(config: &Config, seed: u64, now_ms: u64) -> State {
        let mut state = State {
            seed,
            ..State::default()
        };
        for a in &config.accounts {
            state.accounts.insert(
                a.secret_id.clone(),
                Account {
                    app_id: a.app_id,
                    ..Account::default()
                },
            );
        }
        for lb in &config.load_balancers {
            let account = state.accounts.entry(lb.secret_id.clone()).or_default();
            let region = account.regions.entry(lb.region.clone()).or_default();
            region.load_balancers.insert(
                lb.id.clone(),
                LoadBalancer {
                    load_balancer_id: lb.id.clone(),
                    name: lb.name.clone().unwrap_or_else(|| lb.id.clone()),
                    lb_type: lb.lb_type.clone(),
                    vips: lb.vips.clone(),
                    status: 1,
                    vpc_id: "vpc-00000000".into(),
                    tags: Vec::new(),
                    created_ms: now_ms,
                    listeners: Vec::new(),
                    current_task: None,
                    busy_until_ms: 0,
                },
            );
        }
        state
    }

    /// A fresh id like `lbl-1a2b3c4d`: deterministic for a given seed, unique within the state.
    pub fn next_id(&mut self, prefix: &str) -> String {
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
        self.id_seq += 1;
        let mut x = splitmix64(self.seed ^ self.id_seq.wrapping_mul(0xA24B_AED4_963E_E407));
        let mut s = String::with_capacity(prefix.len() + 9);
        s.push_str(prefix);
        s.push('-');
        for _ in 0..8 {
            s.push(ALPHABET[(x % 36) as usize] as char);
            x /= 36;
        }
        s
    }

    fn next_number(&mut self) -> u64 {
        self.id_seq += 1;
        splitmix64(self.seed ^ self.id_seq) % 1_000_000_000
    }

    fn region(&self, ctx: &Ctx) -> Option<&Region> {
        self.accounts
            .get(ctx.secret_id)
            .and_then(|a| a.regions.get(ctx.region))
    }

    fn region_mut(&mut self, ctx: &Ctx) -> &mut Region {
        self.accounts
            .entry(ctx.secret_id.to_string())
            .or_default()
            .regions
            .entry(ctx.region.to_string())
            .or_default()
    }

    fn lb(&self, ctx: &Ctx, id: &str) -> Result<&LoadBalancer, ApiError> {
        self.region(ctx)
            .and_then(|r| r.load_balancers.get(id))
            .ok_or_else(|| ApiError::lb_not_found(&[id]))
    }

    fn is_busy(&self, ctx: &Ctx, lb: &LoadBalancer) -> bool {
        if lb.busy_until_ms > ctx.now_ms {
            return true;
        }
        let Some(tid) = &lb.current_task else {
            return false;
        };
        self.region(ctx)
            .and_then(|r| r.tasks.get(tid))
            .is_some_and(|t| !t.settled && t.done_ms.is_none_or(|d| d > ctx.now_ms))
    }

    /// Executes one API action with already validated parameters; returns the response fields
    /// (without RequestId). The caller settles tasks first.
    pub fn execute(&mut self, ctx: &Ctx, action: &str, params: Value) -> Result<Value, ApiError> {
        match action {
            "DescribeLoadBalancers" => self.describe_load_balancers(ctx, parse(params)?),
            "CreateLoadBalancer" => self.create_load_balancer(ctx, parse(params)?),
            "DeleteLoadBalancer" => self.delete_load_balancer(ctx, parse(params)?),
            "DescribeQuota" => Ok(self.describe_quota(ctx)),
            "CreateListener" => self.create_listener(ctx, parse(params)?),
            "DescribeListeners" => self.describe_listeners(ctx, parse(params)?),
            "DeleteListener" => {
                let r: model::DeleteListenerRequest = parse(params)?;
                self.delete_listeners(
                    ctx,
                    action,
                    &r.load_balancer_id,
                    Some(vec![r.listener_id]),
                    true,
                )
            }
            "DeleteLoadBalancerListeners" => {
                let r: model::DeleteLoadBalancerListenersRequest = parse(params)?;
                self.delete_listeners(ctx, action, &r.load_balancer_id, r.listener_ids, false)
            }
            "ModifyListener" => self.modify_listener(ctx, parse(params)?),
            "CreateRule" => self.create_rule(ctx, parse(params)?),
            "DeleteRule" => self.delete_rule(ctx, parse(params)?),
            "ModifyRule" => self.modify_rule(ctx, parse(params)?),
            "ModifyDomainAttributes" => self.modify_domain_attributes(ctx, parse(params)?),
            "RegisterTargets" | "DeregisterTargets" | "ModifyTargetWeight" => {
                let r: model::ModifyTargetWeightRequest = parse(params)?;
                self.targets_op(ctx, action, r)
            }
            "BatchRegisterTargets" | "BatchDeregisterTargets" => {
                let r: model::BatchRegisterTargetsRequest = parse(params)?;
                self.batch_targets(ctx, action, r)
            }
            "BatchModifyTargetWeight" => self.batch_modify_weight(ctx, parse(params)?),
            "DescribeTargets" => self.describe_targets(ctx, parse(params)?),
            "DescribeTargetHealth" => self.describe_target_health(ctx, parse(params)?),
            "DescribeTaskStatus" => self.describe_task_status(ctx, parse(params)?),
            other => Err(err(
                ErrorCode::InvalidAction,
                format!("The action `{other}` is not supported."),
            )),
        }
    }
}
