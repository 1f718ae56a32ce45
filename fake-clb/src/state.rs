//! The pure state core: accounts, regions, load balancers, listeners, rules, targets and async tasks.
//! No I/O and no clock: every call gets `now_ms`, so tests drive time explicitly.

use std::collections::{BTreeMap, BTreeSet};

use clb_api::model::{self, HealthCheck};
use clb_api::protocol::{PortClass, Protocol};
use clb_api::{ApiError, ErrorCode, limits};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::admin_api::{AccountDump, RegionDump, StateDump, TaskDump};
use crate::config::{Config, Limits};

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub port: i64,
    pub weight: i64,
    pub registered_ms: u64,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub location_id: String,
    pub domain: String,
    pub url: String,
    pub scheduler: String,
    pub session_expire_time: i64,
    pub forward_type: String,
    pub default_server: bool,
    pub http2: bool,
    #[schemars(with = "Option<Value>")]
    pub health_check: Option<HealthCheck>,
    /// Domain certificate (SNI): set by CreateRule, changed per domain by ModifyDomainAttributes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    pub certificate: Option<model::Certificate>,
    pub created_ms: u64,
    pub targets: Vec<Backend>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Listener {
    pub listener_id: String,
    pub protocol: String,
    pub port: i64,
    pub end_port: i64,
    pub name: String,
    #[schemars(with = "Option<Value>")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(with = "Option<Value>")]
    pub certificate: Option<model::Certificate>,
    pub scheduler: String,
    pub session_expire_time: i64,
    pub sni_switch: i64,
    pub target_type: String,
    pub session_type: String,
    pub keepalive_enable: i64,
    pub deregister_target_rst: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_connect_timeout: Option<i64>,
    pub created_ms: u64,
    pub targets: Vec<Backend>,
    pub rules: Vec<Rule>,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Tag {
    pub tag_key: String,
    pub tag_value: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LoadBalancer {
    pub load_balancer_id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub lb_type: String,
    pub vips: Vec<String>,
    /// 0 creating, 1 running.
    pub status: i64,
    pub vpc_id: String,
    #[serde(default)]
    pub tags: Vec<Tag>,
    pub created_ms: u64,
    pub listeners: Vec<Listener>,
    /// The in-progress mutating task, if any (the one-task-per-LB lock).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_task: Option<String>,
    /// Busy tail after synchronous batch calls.
    #[serde(default)]
    pub busy_until_ms: u64,
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

fn default_health_check(protocol: Protocol) -> Option<HealthCheck> {
    if protocol.is_l7() {
        return None;
    }
    Some(HealthCheck {
        health_switch: Some(1),
        time_out: Some(2),
        interval_time: Some(5),
        health_num: Some(3),
        un_health_num: Some(3),
        check_type: Some(protocol.default_check_type().to_string()),
        source_ip_type: Some(0),
        ..HealthCheck::default()
    })
}

fn default_rule_health_check() -> HealthCheck {
    HealthCheck {
        health_switch: Some(1),
        time_out: Some(2),
        interval_time: Some(5),
        health_num: Some(3),
        un_health_num: Some(3),
        http_code: Some(31),
        http_check_path: Some("/".into()),
        http_check_method: Some("HEAD".into()),
        check_type: Some("HTTP".into()),
        source_ip_type: Some(0),
        ..HealthCheck::default()
    }
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

    /// Completes every task whose time has come: rolls back failed ones, marks created LBs running.
    /// Returns whether anything changed.
    pub fn settle(&mut self, now_ms: u64) -> bool {
        let due: Vec<TaskRef> = self
            .pending
            .iter()
            .filter(|r| {
                self.accounts
                    .get(&r.secret_id)
                    .and_then(|a| a.regions.get(&r.region))
                    .and_then(|g| g.tasks.get(&r.task_id))
                    .is_none_or(|t| t.done_ms.is_some_and(|d| d <= now_ms))
            })
            .cloned()
            .collect();
        for r in &due {
            self.pending.remove(r);
            let Some(region) = self
                .accounts
                .get_mut(&r.secret_id)
                .and_then(|a| a.regions.get_mut(&r.region))
            else {
                continue;
            };
            let Some(task) = region.tasks.get_mut(&r.task_id) else {
                continue;
            };
            task.settled = true;
            let task = task.clone();
            if task.fail_message.is_some() {
                match task.rollback {
                    Some(Rollback::Restore(lbs)) => {
                        for mut lb in lbs {
                            lb.current_task = None;
                            region
                                .load_balancers
                                .insert(lb.load_balancer_id.clone(), lb);
                        }
                    }
                    Some(Rollback::Remove(ids)) => {
                        for id in ids {
                            region.load_balancers.remove(&id);
                        }
                    }
                    None => {}
                }
            } else {
                for id in &task.load_balancer_ids {
                    if let Some(lb) = region.load_balancers.get_mut(id) {
                        lb.status = 1;
                    }
                }
            }
            for lb in region.load_balancers.values_mut() {
                if lb.current_task.as_deref() == Some(task.task_id.as_str()) {
                    lb.current_task = None;
                }
            }
            if let Some(t) = region.tasks.get_mut(&r.task_id) {
                t.rollback = None;
            }
        }
        !due.is_empty()
    }

    /// Lets hanging tasks finish now (their fault was cleared).
    pub fn release_hung_tasks(&mut self, now_ms: u64) -> bool {
        let mut changed = false;
        for r in self.pending.clone() {
            if let Some(t) = self
                .accounts
                .get_mut(&r.secret_id)
                .and_then(|a| a.regions.get_mut(&r.region))
                .and_then(|g| g.tasks.get_mut(&r.task_id))
                && t.done_ms.is_none()
            {
                t.done_ms = Some(now_ms);
                changed = true;
            }
        }
        self.settle(now_ms) || changed
    }

    /// Tasks still in progress (for the metrics gauge).
    pub fn tasks_in_progress(&self) -> usize {
        self.pending.len()
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

    fn new_task(
        &mut self,
        ctx: &Ctx,
        action: &str,
        lb_id: Option<&str>,
        duration_ms: u64,
        rollback: Option<Rollback>,
    ) -> Task {
        let (done_ms, fail_message) = match &ctx.task_mode {
            TaskMode::Normal => (Some(ctx.now_ms + duration_ms), None),
            TaskMode::Fail(m) => (Some(ctx.now_ms + duration_ms), Some(m.clone())),
            TaskMode::Hang => (None, None),
        };
        Task {
            task_id: ctx.request_id.to_string(),
            action: action.to_string(),
            load_balancer_id: lb_id.map(str::to_string),
            created_ms: ctx.now_ms,
            done_ms,
            settled: false,
            rollback: if fail_message.is_some() {
                rollback
            } else {
                None
            },
            fail_message,
            load_balancer_ids: Vec::new(),
            deal_name: None,
        }
    }

    fn insert_task(&mut self, ctx: &Ctx, task: Task) {
        let task_ref = TaskRef {
            secret_id: ctx.secret_id.to_string(),
            region: ctx.region.to_string(),
            task_id: task.task_id.clone(),
        };
        let region = self.region_mut(ctx);
        if region.tasks.len() >= MAX_TASKS_PER_REGION {
            let cutoff = ctx.now_ms.saturating_sub(TASK_RETENTION_MS);
            region
                .tasks
                .retain(|_, t| !t.settled || t.created_ms >= cutoff);
        }
        region.tasks.insert(task.task_id.clone(), task);
        self.pending.insert(task_ref);
    }

    /// Runs `f` on a copy of the LB; on success the copy replaces it and, for async actions, a task
    /// locks the LB until it ends. Errors leave the LB untouched.
    fn mutate_lb<R>(
        &mut self,
        ctx: &Ctx,
        action: &str,
        lb_id: &str,
        is_async: bool,
        f: impl FnOnce(&mut State, &mut LoadBalancer) -> Result<R, ApiError>,
    ) -> Result<R, ApiError> {
        let lb = self.lb(ctx, lb_id)?;
        if self.is_busy(ctx, lb) {
            return Err(ApiError::resource_in_operating(lb_id));
        }
        let mut copy = lb.clone();
        let out = f(self, &mut copy)?;
        let duration = ctx.limits.task_duration.as_millis() as u64;
        if is_async {
            copy.current_task = Some(ctx.request_id.to_string());
            // Only a task scripted to fail needs the snapshot to roll back to.
            let rollback = match ctx.task_mode {
                TaskMode::Fail(_) => Some(Rollback::Restore(vec![self.lb(ctx, lb_id)?.clone()])),
                _ => None,
            };
            let task = self.new_task(ctx, action, Some(lb_id), duration, rollback);
            self.insert_task(ctx, task);
        } else {
            copy.busy_until_ms = ctx.now_ms + ctx.limits.batch_busy_tail.as_millis() as u64;
        }
        self.region_mut(ctx)
            .load_balancers
            .insert(lb_id.to_string(), copy);
        Ok(out)
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

    fn describe_load_balancers(
        &self,
        ctx: &Ctx,
        r: model::DescribeLoadBalancersRequest,
    ) -> Result<Value, ApiError> {
        let mut lbs: Vec<&LoadBalancer> = self
            .region(ctx)
            .map(|g| g.load_balancers.values().collect())
            .unwrap_or_default();
        if let Some(ids) = &r.load_balancer_ids {
            lbs.retain(|lb| ids.contains(&lb.load_balancer_id));
        }
        if let Some(t) = &r.load_balancer_type {
            lbs.retain(|lb| lb.lb_type.eq_ignore_ascii_case(t));
        }
        if let Some(f) = r.forward
            && f != 1
        {
            lbs.clear();
        }
        if let Some(n) = &r.load_balancer_name {
            lbs.retain(|lb| lb.name.contains(n.as_str()));
        }
        if let Some(vips) = &r.load_balancer_vips {
            lbs.retain(|lb| lb.vips.iter().any(|v| vips.contains(v)));
        }
        if let Some(k) = &r.search_key {
            lbs.retain(|lb| {
                lb.name.contains(k.as_str())
                    || lb.load_balancer_id.contains(k.as_str())
                    || lb.vips.iter().any(|v| v.contains(k.as_str()))
            });
        }
        for f in r.filters.iter().flatten() {
            if let Some(key) = f.name.strip_prefix("tag:") {
                lbs.retain(|lb| {
                    lb.tags
                        .iter()
                        .any(|t| t.tag_key == key && f.values.contains(&t.tag_value))
                });
            } else if f.name == "tag-key" {
                lbs.retain(|lb| lb.tags.iter().any(|t| f.values.contains(&t.tag_key)));
            } else if !matches!(
                f.name.as_str(),
                "charge-type"
                    | "internet-charge-type"
                    | "master-zone-id"
                    | "function-name"
                    | "vip-isp"
                    | "sla-type"
                    | "exclusive"
            ) {
                return Err(err(
                    ErrorCode::InvalidParameterValueInvalidFilter,
                    format!("Filter name `{}` is not supported.", f.name),
                ));
            }
        }
        let order_by = r.order_by.as_deref().unwrap_or("CreateTime");
        match order_by {
            "LoadBalancerName" => lbs.sort_by(|a, b| a.name.cmp(&b.name)),
            "LoadBalancerType" => lbs.sort_by(|a, b| a.lb_type.cmp(&b.lb_type)),
            _ => lbs.sort_by(|a, b| {
                (a.created_ms, &a.load_balancer_id).cmp(&(b.created_ms, &b.load_balancer_id))
            }),
        }
        if r.order_type.unwrap_or(1) == 1 {
            lbs.reverse();
        }
        let total = lbs.len();
        let offset = r.offset.unwrap_or(0).max(0) as usize;
        let limit = r.limit.unwrap_or(20).clamp(0, 100) as usize;
        let want_count = r
            .additional_fields
            .iter()
            .flatten()
            .any(|f| f == "TargetCount");
        let set: Vec<model::LoadBalancer> = lbs
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|lb| lb_output(lb, ctx.region, want_count))
            .collect();
        Ok(to_value(&model::DescribeLoadBalancersResponse {
            total_count: total as i64,
            load_balancer_set: set,
            request_id: String::new(),
        }))
    }

    fn count_lbs(&self, ctx: &Ctx, lb_type: &str) -> usize {
        self.region(ctx).map_or(0, |g| {
            g.load_balancers
                .values()
                .filter(|lb| lb.lb_type == lb_type)
                .count()
        })
    }

    fn create_load_balancer(
        &mut self,
        ctx: &Ctx,
        r: model::CreateLoadBalancerRequest,
    ) -> Result<Value, ApiError> {
        let lb_type = r.load_balancer_type.to_ascii_uppercase();
        if lb_type != "OPEN" && lb_type != "INTERNAL" {
            return Err(invalid_value("LoadBalancerType should be OPEN or INTERNAL"));
        }
        if r.forward.is_some_and(|f| f != 1) {
            return Err(err(
                ErrorCode::UnsupportedOperation,
                "Only Forward=1 (CLB) can be created.",
            ));
        }
        if lb_type == "INTERNAL" && r.vpc_id.is_none() {
            return Err(ApiError::missing_parameter("VpcId"));
        }
        if let Some(name) = &r.load_balancer_name {
            check_name(name, "LoadBalancerName")?;
        }
        if let Some(token) = &r.client_token {
            if token.len() > 64 {
                return Err(err(
                    ErrorCode::InvalidParameterValueLength,
                    "ClientToken is longer than 64.",
                ));
            }
            if let Some(prev) = self
                .accounts
                .get(ctx.secret_id)
                .and_then(|a| a.client_tokens.get(token))
            {
                return Ok(to_value(&model::CreateLoadBalancerResponse {
                    load_balancer_ids: prev.load_balancer_ids.clone(),
                    deal_name: Some(prev.deal_name.clone()),
                    request_id: String::new(),
                }));
            }
        }
        let number = r.number.unwrap_or(1).max(1) as usize;
        if self.count_lbs(ctx, &lb_type) + number > ctx.limits.load_balancers_per_region {
            return Err(err(
                ErrorCode::LimitExceeded,
                format!(
                    "The number of {lb_type} load balancers exceeds the quota {}.",
                    ctx.limits.load_balancers_per_region
                ),
            ));
        }
        let mut ids = Vec::new();
        for _ in 0..number {
            let id = self.next_id("lb");
            let n = self.next_number();
            let vip = if lb_type == "OPEN" {
                format!("203.0.{}.{}", (n / 256) % 256, n % 254 + 1)
            } else {
                format!(
                    "10.{}.{}.{}",
                    (n / 65536) % 256,
                    (n / 256) % 256,
                    n % 254 + 1
                )
            };
            let lb = LoadBalancer {
                load_balancer_id: id.clone(),
                name: r.load_balancer_name.clone().unwrap_or_else(|| id.clone()),
                lb_type: lb_type.clone(),
                vips: vec![r.vip.clone().unwrap_or(vip)],
                status: 0,
                vpc_id: r.vpc_id.clone().unwrap_or_else(|| "vpc-00000000".into()),
                tags: r
                    .tags
                    .iter()
                    .flatten()
                    .map(|t| Tag {
                        tag_key: t.tag_key.clone(),
                        tag_value: t.tag_value.clone(),
                    })
                    .collect(),
                created_ms: ctx.now_ms,
                listeners: Vec::new(),
                current_task: Some(ctx.request_id.to_string()),
                busy_until_ms: 0,
            };
            self.region_mut(ctx).load_balancers.insert(id.clone(), lb);
            ids.push(id);
        }
        let deal_name = format!("2026{:019}", self.next_number());
        let mut task = self.new_task(
            ctx,
            "CreateLoadBalancer",
            None,
            ctx.limits.load_balancer_create_duration.as_millis() as u64,
            Some(Rollback::Remove(ids.clone())),
        );
        task.load_balancer_ids = ids.clone();
        task.deal_name = Some(deal_name.clone());
        self.insert_task(ctx, task);
        if let Some(token) = &r.client_token {
            self.accounts
                .entry(ctx.secret_id.to_string())
                .or_default()
                .client_tokens
                .insert(
                    token.clone(),
                    ClientTokenResult {
                        load_balancer_ids: ids.clone(),
                        deal_name: deal_name.clone(),
                    },
                );
        }
        Ok(to_value(&model::CreateLoadBalancerResponse {
            load_balancer_ids: ids,
            deal_name: Some(deal_name),
            request_id: String::new(),
        }))
    }

    fn delete_load_balancer(
        &mut self,
        ctx: &Ctx,
        r: model::DeleteLoadBalancerRequest,
    ) -> Result<Value, ApiError> {
        if r.load_balancer_ids.is_empty() {
            return Err(ApiError::missing_parameter("LoadBalancerIds"));
        }
        let missing: Vec<&str> = r
            .load_balancer_ids
            .iter()
            .filter(|id| self.lb(ctx, id).is_err())
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(ApiError::lb_not_found(&missing));
        }
        for id in &r.load_balancer_ids {
            let lb = self.lb(ctx, id)?;
            if self.is_busy(ctx, lb) {
                return Err(ApiError::resource_in_operating(id));
            }
        }
        let mut removed = Vec::new();
        let region = self.region_mut(ctx);
        for id in &r.load_balancer_ids {
            if let Some(lb) = region.load_balancers.remove(id) {
                removed.push(lb);
            }
        }
        let task = self.new_task(
            ctx,
            "DeleteLoadBalancer",
            r.load_balancer_ids.first().map(String::as_str),
            ctx.limits.task_duration.as_millis() as u64,
            Some(Rollback::Restore(removed)),
        );
        self.insert_task(ctx, task);
        Ok(json!({}))
    }

    fn describe_quota(&self, ctx: &Ctx) -> Value {
        let l = ctx.limits;
        let q = |id: &str, current: Option<usize>, limit: usize| model::Quota {
            quota_id: id.to_string(),
            quota_current: current.map(|c| c as i64),
            quota_limit: limit as i64,
        };
        to_value(&model::DescribeQuotaResponse {
            quota_set: vec![
                q(
                    "TOTAL_OPEN_CLB_QUOTA",
                    Some(self.count_lbs(ctx, "OPEN")),
                    l.load_balancers_per_region,
                ),
                q(
                    "TOTAL_INTERNAL_CLB_QUOTA",
                    Some(self.count_lbs(ctx, "INTERNAL")),
                    l.load_balancers_per_region,
                ),
                q("TOTAL_LISTENER_QUOTA", None, l.listeners_per_load_balancer),
                q("TOTAL_LISTENER_RULE_QUOTA", None, l.rules_per_listener),
                q("TOTAL_TARGET_BIND_QUOTA", None, l.targets_per_listener),
            ],
            request_id: String::new(),
        })
    }

    fn create_listener(
        &mut self,
        ctx: &Ctx,
        r: model::CreateListenerRequest,
    ) -> Result<Value, ApiError> {
        let Some(proto) = Protocol::parse(&r.protocol) else {
            let names: Vec<&str> = Protocol::ALL.iter().map(|p| p.as_str()).collect();
            return Err(invalid_value(format!(
                "Protocol should be one of {}",
                names.join(", ")
            )));
        };
        let protocol = proto.as_str().to_string();
        if r.ports.is_empty() {
            return Err(ApiError::missing_parameter("Ports"));
        }
        if r.ports.len() > ctx.limits.create_listener_max_ports {
            return Err(clb_api::schema::length_error(
                "Ports",
                ctx.limits.create_listener_max_ports,
            ));
        }
        let end_port = r.end_port.unwrap_or(0);
        if end_port > 0 && (r.ports.len() != 1 || end_port <= r.ports[0]) {
            return Err(invalid_value(
                "EndPort needs exactly one Ports element smaller than EndPort.",
            ));
        }
        if let Some(names) = &r.listener_names {
            if names.len() != r.ports.len() {
                return Err(err(
                    ErrorCode::InvalidParameterValueLength,
                    "Length of ListenerNames should equal to the length of Ports.",
                ));
            }
            for n in names {
                check_name(n, "ListenerName")?;
            }
        }
        let scheduler = r
            .scheduler
            .as_deref()
            .map(check_scheduler)
            .transpose()?
            .unwrap_or_else(|| "WRR".into());
        if r.health_check.is_some() && proto.is_l7() {
            return Err(invalid_value(
                "HealthCheck is only for TCP/UDP/TCP_SSL/QUIC listeners.",
            ));
        }
        if proto == Protocol::TcpSsl && r.certificate.is_none() && r.multi_cert_info.is_none() {
            return Err(ApiError::missing_parameter("Certificate"));
        }
        let lb_id = r.load_balancer_id.clone();
        let limits = ctx.limits;
        let ids = self.mutate_lb(ctx, "CreateListener", &lb_id, true, |state, lb| {
            if lb.listeners.len() + r.ports.len() > limits.listeners_per_load_balancer {
                return Err(err(
                    ErrorCode::LimitExceeded,
                    format!(
                        "The number of listeners of {} exceeds the quota {} (TOTAL_LISTENER_QUOTA).",
                        lb.load_balancer_id, limits.listeners_per_load_balancer
                    ),
                ));
            }
            let class = Some(proto.port_class());
            let mut taken: Vec<(i64, i64)> = lb
                .listeners
                .iter()
                .filter(|l| port_class(&l.protocol) == class)
                .map(|l| (l.port, l.last_port()))
                .collect();
            let mut ids = Vec::new();
            for (i, port) in r.ports.iter().enumerate() {
                let last = if end_port > 0 { end_port } else { *port };
                if taken.iter().any(|(a, b)| *port <= *b && *a <= last) {
                    return Err(err(
                        ErrorCode::InvalidParameterPortCheckFailed,
                        format!("Port {port} of protocol {protocol} conflicts with an existing listener port of {}.", lb.load_balancer_id),
                    ));
                }
                taken.push((*port, last));
                let id = state.next_id("lbl");
                let health = match &r.health_check {
                    Some(h) => Some(merge_health(default_health_check(proto), h)),
                    None => default_health_check(proto),
                };
                lb.listeners.push(Listener {
                    listener_id: id.clone(),
                    protocol: protocol.clone(),
                    port: *port,
                    end_port,
                    name: r.listener_names.as_ref().and_then(|n| n.get(i).cloned()).unwrap_or_default(),
                    health_check: health,
                    certificate: r.certificate.clone(),
                    scheduler: scheduler.clone(),
                    session_expire_time: r.session_expire_time.unwrap_or(0),
                    sni_switch: r.sni_switch.unwrap_or(0),
                    target_type: r.target_type.clone().unwrap_or_else(|| "NODE".into()),
                    session_type: r.session_type.clone().unwrap_or_else(|| "NORMAL".into()),
                    keepalive_enable: r.keepalive_enable.unwrap_or(0),
                    deregister_target_rst: r.deregister_target_rst.unwrap_or(false),
                    idle_connect_timeout: r.idle_connect_timeout,
                    created_ms: ctx.now_ms,
                    targets: Vec::new(),
                    rules: Vec::new(),
                });
                ids.push(id);
            }
            Ok(ids)
        })?;
        Ok(to_value(&model::CreateListenerResponse {
            listener_ids: ids,
            request_id: String::new(),
        }))
    }

    fn describe_listeners(
        &self,
        ctx: &Ctx,
        r: model::DescribeListenersRequest,
    ) -> Result<Value, ApiError> {
        let lb = self.lb(ctx, &r.load_balancer_id)?;
        let protocol = r.protocol.as_ref().map(|p| p.to_ascii_uppercase());
        let listeners: Vec<model::Listener> = lb
            .listeners
            .iter()
            .filter(|l| {
                r.listener_ids
                    .as_ref()
                    .is_none_or(|ids| ids.is_empty() || ids.contains(&l.listener_id))
            })
            .filter(|l| protocol.as_ref().is_none_or(|p| &l.protocol == p))
            .filter(|l| r.port.is_none_or(|p| l.port == p))
            .map(listener_output)
            .collect();
        Ok(to_value(&model::DescribeListenersResponse {
            total_count: listeners.len() as i64,
            listeners,
            request_id: String::new(),
        }))
    }

    fn delete_listeners(
        &mut self,
        ctx: &Ctx,
        action: &str,
        lb_id: &str,
        ids: Option<Vec<String>>,
        single: bool,
    ) -> Result<Value, ApiError> {
        self.mutate_lb(ctx, action, lb_id, true, |_, lb| {
            match ids.filter(|v| !v.is_empty()) {
                None => lb.listeners.clear(),
                Some(ids) => {
                    let missing: Vec<&str> = ids
                        .iter()
                        .filter(|id| !lb.listeners.iter().any(|l| &&l.listener_id == id))
                        .map(String::as_str)
                        .collect();
                    if !missing.is_empty() {
                        return Err(if single {
                            ApiError::listener_not_found(missing[0])
                        } else {
                            ApiError::invalid_parameter(format!(
                                "some ListenerId {missing:?} not found in {}",
                                lb.load_balancer_id
                            ))
                        });
                    }
                    lb.listeners.retain(|l| !ids.contains(&l.listener_id));
                }
            }
            Ok(json!({}))
        })
    }

    fn modify_listener(
        &mut self,
        ctx: &Ctx,
        r: model::ModifyListenerRequest,
    ) -> Result<Value, ApiError> {
        if let Some(n) = &r.listener_name {
            check_name(n, "ListenerName")?;
        }
        let scheduler = r.scheduler.as_deref().map(check_scheduler).transpose()?;
        let lb_id = r.load_balancer_id.clone();
        self.mutate_lb(ctx, "ModifyListener", &lb_id, true, |_, lb| {
            let l = find_listener(lb, &r.listener_id)?;
            if let Some(n) = &r.listener_name {
                l.name = n.clone();
            }
            if let Some(h) = &r.health_check {
                if l.is_l7() {
                    return Err(invalid_value(
                        "HealthCheck of HTTP/HTTPS listeners is set on rules.",
                    ));
                }
                l.health_check = Some(merge_health(l.health_check.take(), h));
            }
            if let Some(s) = scheduler {
                l.scheduler = s;
            }
            if let Some(v) = r.session_expire_time {
                l.session_expire_time = v;
            }
            if let Some(v) = r.sni_switch {
                l.sni_switch = v;
            }
            if let Some(v) = &r.target_type {
                l.target_type = v.clone();
            }
            if let Some(v) = &r.session_type {
                l.session_type = v.clone();
            }
            if let Some(v) = r.keepalive_enable {
                l.keepalive_enable = v;
            }
            if let Some(v) = r.deregister_target_rst {
                l.deregister_target_rst = v;
            }
            if let Some(v) = r.idle_connect_timeout {
                l.idle_connect_timeout = Some(v);
            }
            if let Some(c) = &r.certificate {
                l.certificate = Some(c.clone());
            }
            Ok(json!({}))
        })
    }

    fn create_rule(&mut self, ctx: &Ctx, r: model::CreateRuleRequest) -> Result<Value, ApiError> {
        if r.rules.is_empty() {
            return Err(ApiError::missing_parameter("Rules"));
        }
        let limits = ctx.limits;
        let lb_id = r.load_balancer_id.clone();
        let ids = self.mutate_lb(ctx, "CreateRule", &lb_id, true, |state, lb| {
            let default_domain = lb.vips.first().cloned().unwrap_or_default();
            let l = find_listener(lb, &r.listener_id)?;
            if !l.is_l7() {
                return Err(invalid_value("This interface only support HTTP/HTTPS listener."));
            }
            if l.rules.len() + r.rules.len() > limits.rules_per_listener {
                return Err(err(
                    ErrorCode::LimitExceeded,
                    format!("The number of rules of {} exceeds the quota {} (TOTAL_LISTENER_RULE_QUOTA).", l.listener_id, limits.rules_per_listener),
                ));
            }
            let mut ids = Vec::new();
            for input in &r.rules {
                let url = input.url.clone();
                if url.is_empty() || url.chars().count() > 200 {
                    return Err(err(ErrorCode::InvalidParameterValueLength, "The length of Url should be between 1 and 200."));
                }
                let domain = input
                    .domain
                    .clone()
                    .or_else(|| input.domains.as_ref().and_then(|d| d.first().cloned()))
                    .unwrap_or_else(|| default_domain.clone());
                if l.rules.iter().any(|x| x.domain == domain && x.url == url) {
                    return Err(err(ErrorCode::InvalidParameterValueDuplicate, format!("The rule {domain}{url} already exists in {}.", l.listener_id)));
                }
                let scheduler = input.scheduler.as_deref().map(check_scheduler).transpose()?.unwrap_or_else(|| "WRR".into());
                let id = state.next_id("loc");
                let health = merge_health(Some(default_rule_health_check()), &input.health_check.clone().unwrap_or_default());
                let first_for_domain = !l.rules.iter().any(|x| x.domain == domain);
                l.rules.push(Rule {
                    location_id: id.clone(),
                    domain,
                    url,
                    scheduler,
                    session_expire_time: input.session_expire_time.unwrap_or(0),
                    forward_type: input.forward_type.clone().unwrap_or_else(|| "HTTP".into()),
                    default_server: input.default_server.unwrap_or(first_for_domain && l.rules.is_empty()),
                    http2: input.http2.unwrap_or(false),
                    health_check: Some(health),
                    certificate: input.certificate.clone(),
                    created_ms: ctx.now_ms,
                    targets: Vec::new(),
                });
                ids.push(id);
            }
            Ok(ids)
        })?;
        Ok(to_value(&model::CreateRuleResponse {
            location_ids: ids,
            request_id: String::new(),
        }))
    }

    fn delete_rule(&mut self, ctx: &Ctx, r: model::DeleteRuleRequest) -> Result<Value, ApiError> {
        let lb_id = r.load_balancer_id.clone();
        self.mutate_lb(ctx, "DeleteRule", &lb_id, true, |_, lb| {
            let l = find_listener(lb, &r.listener_id)?;
            let before = l.rules.len();
            match (&r.location_ids, &r.domain, &r.url) {
                (Some(ids), _, _) if !ids.is_empty() => {
                    if let Some(missing) = ids
                        .iter()
                        .find(|id| !l.rules.iter().any(|x| &&x.location_id == id))
                    {
                        return Err(err(
                            ErrorCode::InvalidParameterLocationNotFound,
                            format!("Location not exist: {missing}"),
                        ));
                    }
                    l.rules.retain(|x| !ids.contains(&x.location_id));
                }
                (_, Some(d), Some(u)) => l.rules.retain(|x| !(&x.domain == d && &x.url == u)),
                _ => return Err(ApiError::missing_parameter("LocationIds")),
            }
            if l.rules.len() == before {
                return Err(err(
                    ErrorCode::InvalidParameterLocationNotFound,
                    "No rule matches the given Domain and Url.",
                ));
            }
            Ok(json!({}))
        })
    }

    fn modify_rule(&mut self, ctx: &Ctx, r: model::ModifyRuleRequest) -> Result<Value, ApiError> {
        let scheduler = r.scheduler.as_deref().map(check_scheduler).transpose()?;
        let lb_id = r.load_balancer_id.clone();
        self.mutate_lb(ctx, "ModifyRule", &lb_id, true, |_, lb| {
            let l = find_listener(lb, &r.listener_id)?;
            let rule = find_rule(l, &r.location_id)?;
            if let Some(u) = &r.url {
                rule.url = u.clone();
            }
            if let Some(h) = &r.health_check {
                rule.health_check = Some(merge_health(rule.health_check.take(), h));
            }
            if let Some(s) = scheduler {
                rule.scheduler = s;
            }
            if let Some(v) = r.session_expire_time {
                rule.session_expire_time = v;
            }
            if let Some(v) = &r.forward_type {
                rule.forward_type = v.clone();
            }
            Ok(json!({}))
        })
    }

    fn modify_domain_attributes(
        &mut self,
        ctx: &Ctx,
        r: model::ModifyDomainAttributesRequest,
    ) -> Result<Value, ApiError> {
        let lb_id = r.load_balancer_id.clone();
        self.mutate_lb(ctx, "ModifyDomainAttributes", &lb_id, true, |_, lb| {
            let l = find_listener(lb, &r.listener_id)?;
            if !l.rules.iter().any(|x| x.domain == r.domain) {
                return Err(err(
                    ErrorCode::InvalidParameterLocationNotFound,
                    format!("Domain not exist: {}", r.domain),
                ));
            }
            for rule in l.rules.iter_mut().filter(|x| x.domain == r.domain) {
                if let Some(v) = r.http2 {
                    rule.http2 = v;
                }
                if let Some(v) = r.default_server {
                    rule.default_server = v;
                }
                if let Some(c) = &r.certificate {
                    rule.certificate = Some(c.clone());
                }
                if let Some(nd) = r
                    .new_domain
                    .as_ref()
                    .or(r.new_domains.as_ref().and_then(|d| d.first()))
                {
                    rule.domain = nd.clone();
                }
            }
            Ok(json!({}))
        })
    }

    fn targets_op(
        &mut self,
        ctx: &Ctx,
        action: &str,
        r: model::ModifyTargetWeightRequest,
    ) -> Result<Value, ApiError> {
        if r.targets.is_empty() {
            return Err(ApiError::missing_parameter("Targets"));
        }
        let keys = target_keys(&r.targets)?;
        let limits = ctx.limits;
        let lb_id = r.load_balancer_id.clone();
        self.mutate_lb(ctx, action, &lb_id, true, |_, lb| {
            let l = find_listener(lb, &r.listener_id)?;
            let list = target_list(
                l,
                r.location_id.as_deref(),
                r.domain.as_deref(),
                r.url.as_deref(),
            )?;
            for (key, t) in keys.iter().zip(&r.targets) {
                let weight = t.weight.or(r.weight);
                apply_target(list, action, key, weight, ctx.now_ms)?;
            }
            if list.len() > limits.targets_per_listener {
                return Err(err(
                    ErrorCode::LimitExceeded,
                    format!(
                        "The number of targets exceeds the quota {} (TOTAL_TARGET_BIND_QUOTA).",
                        limits.targets_per_listener
                    ),
                ));
            }
            Ok(json!({}))
        })
    }

    fn batch_targets(
        &mut self,
        ctx: &Ctx,
        action: &str,
        r: model::BatchRegisterTargetsRequest,
    ) -> Result<Value, ApiError> {
        if r.targets.is_empty() {
            return Err(ApiError::missing_parameter("Targets"));
        }
        let mut seen = BTreeSet::new();
        for t in &r.targets {
            let key = target_key(t.instance_id.as_deref(), t.eni_ip.as_deref(), t.port)?;
            if !seen.insert((t.listener_id.clone(), t.location_id.clone(), key.clone())) {
                return Err(err(
                    ErrorCode::InvalidParameterValueDuplicate,
                    format!("Duplicate target {} in Targets.", key.describe()),
                ));
            }
        }
        let limits = ctx.limits;
        let lb_id = r.load_balancer_id.clone();
        let single = if action == "BatchRegisterTargets" {
            "RegisterTargets"
        } else {
            "DeregisterTargets"
        };
        let fail = self.mutate_lb(ctx, action, &lb_id, false, |_, lb| {
            // Whole-call checks first: every listener and rule must exist.
            for t in &r.targets {
                let l = find_listener(lb, &t.listener_id)?;
                target_list(l, t.location_id.as_deref(), None, None)?;
            }
            let mut failed: BTreeSet<String> = BTreeSet::new();
            let mut by_listener: BTreeMap<String, Vec<&model::BatchTarget>> = BTreeMap::new();
            for t in &r.targets {
                by_listener
                    .entry(t.listener_id.clone())
                    .or_default()
                    .push(t);
            }
            for (lid, targets) in by_listener {
                let l = find_listener(lb, &lid)?;
                let mut copy = l.clone();
                let mut ok = true;
                for t in &targets {
                    let key = target_key(t.instance_id.as_deref(), t.eni_ip.as_deref(), t.port)?;
                    let list = target_list(&mut copy, t.location_id.as_deref(), None, None)?;
                    if apply_target(list, single, &key, t.weight, ctx.now_ms).is_err()
                        || list.len() > limits.targets_per_listener
                    {
                        ok = false;
                        break;
                    }
                }
                if ok {
                    *l = copy;
                } else {
                    failed.insert(lid);
                }
            }
            Ok(failed.into_iter().collect::<Vec<_>>())
        })?;
        let message = if fail.is_empty() {
            String::new()
        } else {
            "Some listeners failed; see FailListenerIdSet.".into()
        };
        Ok(to_value(&model::BatchRegisterTargetsResponse {
            fail_listener_id_set: fail,
            message: Some(message),
            request_id: String::new(),
        }))
    }

    fn batch_modify_weight(
        &mut self,
        ctx: &Ctx,
        r: model::BatchModifyTargetWeightRequest,
    ) -> Result<Value, ApiError> {
        let total: usize = r.modify_list.iter().map(|m| m.targets.len()).sum();
        if total > limits::WEIGHT_TARGETS_TOTAL {
            return Err(clb_api::schema::length_error(
                "ModifyList.Targets",
                limits::WEIGHT_TARGETS_TOTAL,
            ));
        }
        let lb_id = r.load_balancer_id.clone();
        self.mutate_lb(ctx, "BatchModifyTargetWeight", &lb_id, true, |_, lb| {
            for m in &r.modify_list {
                let keys = target_keys(&m.targets)?;
                let l = find_listener(lb, &m.listener_id)?;
                let list = target_list(
                    l,
                    m.location_id.as_deref(),
                    m.domain.as_deref(),
                    m.url.as_deref(),
                )?;
                for (key, t) in keys.iter().zip(&m.targets) {
                    apply_target(
                        list,
                        "ModifyTargetWeight",
                        key,
                        t.weight.or(m.weight),
                        ctx.now_ms,
                    )?;
                }
            }
            Ok(json!({}))
        })
    }

    fn describe_targets(
        &self,
        ctx: &Ctx,
        r: model::DescribeTargetsRequest,
    ) -> Result<Value, ApiError> {
        let lb = self.lb(ctx, &r.load_balancer_id)?;
        let protocol = r.protocol.as_ref().map(|p| p.to_ascii_uppercase());
        let mut location_filter: Option<&Vec<String>> = None;
        let mut ip_filter: Option<&Vec<String>> = None;
        for f in r.filters.iter().flatten() {
            match f.name.as_str() {
                "location-id" => location_filter = Some(&f.values),
                "private-ip-address" => ip_filter = Some(&f.values),
                "tag" => {}
                other => {
                    return Err(err(
                        ErrorCode::InvalidParameterValueInvalidFilter,
                        format!("Filter name `{other}` is not supported."),
                    ));
                }
            }
        }
        let keep = |b: &&Backend| {
            ip_filter.is_none_or(|ips| b.ip.as_ref().is_some_and(|ip| ips.contains(ip)))
        };
        let listeners: Vec<model::ListenerBackend> = lb
            .listeners
            .iter()
            .filter(|l| {
                r.listener_ids
                    .as_ref()
                    .is_none_or(|ids| ids.is_empty() || ids.contains(&l.listener_id))
            })
            .filter(|l| protocol.as_ref().is_none_or(|p| &l.protocol == p))
            .filter(|l| r.port.is_none_or(|p| l.port == p))
            .map(|l| model::ListenerBackend {
                listener_id: l.listener_id.clone(),
                protocol: l.protocol.clone(),
                port: l.port,
                end_port: Some(l.end_port),
                rules: l.is_l7().then(|| {
                    l.rules
                        .iter()
                        .filter(|x| location_filter.is_none_or(|ids| ids.contains(&x.location_id)))
                        .map(|x| model::RuleTargets {
                            location_id: x.location_id.clone(),
                            domain: Some(x.domain.clone()),
                            url: Some(x.url.clone()),
                            targets: Some(
                                x.targets.iter().filter(keep).map(backend_output).collect(),
                            ),
                        })
                        .collect()
                }),
                targets: (!l.is_l7())
                    .then(|| l.targets.iter().filter(keep).map(backend_output).collect()),
            })
            .collect();
        Ok(to_value(&model::DescribeTargetsResponse {
            listeners,
            request_id: String::new(),
        }))
    }

    fn describe_target_health(
        &self,
        ctx: &Ctx,
        r: model::DescribeTargetHealthRequest,
    ) -> Result<Value, ApiError> {
        let mut out = Vec::new();
        for id in &r.load_balancer_ids {
            let lb = self.lb(ctx, id)?;
            let health = |hc: &Option<HealthCheck>, b: &Backend| {
                let on = hc.as_ref().and_then(|h| h.health_switch).unwrap_or(1) == 1;
                let detail = if on { "Alive" } else { "Close" };
                model::TargetHealth {
                    ip: b
                        .ip
                        .clone()
                        .or_else(|| b.instance_id.clone())
                        .unwrap_or_default(),
                    port: b.port,
                    health_status: on,
                    target_id: b.instance_id.clone().or_else(|| b.ip.clone()),
                    health_status_detail: Some(detail.into()),
                    health_status_detial: Some(detail.into()),
                    target_group_id: None,
                    weight: Some(b.weight),
                }
            };
            let listeners = lb
                .listeners
                .iter()
                .filter(|l| {
                    r.listener_ids
                        .as_ref()
                        .is_none_or(|ids| ids.is_empty() || ids.contains(&l.listener_id))
                })
                .map(|l| {
                    let rules = if l.is_l7() {
                        l.rules
                            .iter()
                            .filter(|x| {
                                r.location_ids.as_ref().is_none_or(|ids| {
                                    ids.is_empty() || ids.contains(&x.location_id)
                                })
                            })
                            .map(|x| model::RuleHealth {
                                location_id: x.location_id.clone(),
                                domain: Some(x.domain.clone()),
                                url: Some(x.url.clone()),
                                rule_id: Some(x.location_id.clone()),
                                targets: Some(
                                    x.targets
                                        .iter()
                                        .map(|b| health(&x.health_check, b))
                                        .collect(),
                                ),
                            })
                            .collect()
                    } else {
                        vec![model::RuleHealth {
                            location_id: l.listener_id.replacen("lbl-", "loc-", 1),
                            domain: None,
                            url: None,
                            rule_id: None,
                            targets: Some(
                                l.targets
                                    .iter()
                                    .map(|b| health(&l.health_check, b))
                                    .collect(),
                            ),
                        }]
                    };
                    model::ListenerHealth {
                        listener_id: l.listener_id.clone(),
                        listener_name: Some(l.name.clone()),
                        protocol: l.protocol.clone(),
                        port: l.port,
                        rules: Some(rules),
                    }
                })
                .collect();
            out.push(model::LoadBalancerHealth {
                load_balancer_id: lb.load_balancer_id.clone(),
                load_balancer_name: Some(lb.name.clone()),
                listeners: Some(listeners),
            });
        }
        Ok(to_value(&model::DescribeTargetHealthResponse {
            load_balancers: out,
            request_id: String::new(),
        }))
    }

    fn describe_task_status(
        &self,
        ctx: &Ctx,
        r: model::DescribeTaskStatusRequest,
    ) -> Result<Value, ApiError> {
        let region = self.region(ctx);
        let task = match (&r.task_id, &r.deal_name) {
            (Some(id), _) => region
                .and_then(|g| g.tasks.get(id))
                .ok_or_else(|| ApiError::invalid_parameter(format!("TaskId {id} not found."))),
            (None, Some(deal)) => region
                .and_then(|g| {
                    g.tasks
                        .values()
                        .find(|t| t.deal_name.as_deref() == Some(deal.as_str()))
                })
                .ok_or_else(|| ApiError::invalid_parameter(format!("DealName {deal} not found."))),
            (None, None) => Err(ApiError::missing_parameter("TaskId")),
        }?;
        Ok(to_value(&model::DescribeTaskStatusResponse {
            status: task.status(),
            load_balancer_ids: (!task.load_balancer_ids.is_empty())
                .then(|| task.load_balancer_ids.clone()),
            message: task.fail_message.clone().filter(|_| task.settled),
            request_id: String::new(),
        }))
    }

    /// Finds which account/region holds an LB (console operations without a secretId).
    pub fn locate_lb(
        &self,
        secret_id: Option<&str>,
        region: Option<&str>,
        lb_id: &str,
    ) -> Vec<(String, String)> {
        let mut found = Vec::new();
        for (sid, account) in &self.accounts {
            if secret_id.is_some_and(|s| s != sid) {
                continue;
            }
            for (rname, reg) in &account.regions {
                if region.is_some_and(|r| r != rname) {
                    continue;
                }
                if reg.load_balancers.contains_key(lb_id) {
                    found.push((sid.clone(), rname.clone()));
                }
            }
        }
        found
    }

    /// Mutable access to an LB for out-of-band (console) changes.
    pub fn lb_mut(
        &mut self,
        secret_id: &str,
        region: &str,
        lb_id: &str,
    ) -> Option<&mut LoadBalancer> {
        self.accounts
            .get_mut(secret_id)?
            .regions
            .get_mut(region)?
            .load_balancers
            .get_mut(lb_id)
    }

    pub fn remove_lb(
        &mut self,
        secret_id: &str,
        region: &str,
        lb_id: &str,
    ) -> Option<LoadBalancer> {
        self.accounts
            .get_mut(secret_id)?
            .regions
            .get_mut(region)?
            .load_balancers
            .remove(lb_id)
    }

    /// Adds a running LB instantly (console creation).
    pub fn insert_lb(&mut self, secret_id: &str, region: &str, lb: LoadBalancer) {
        self.accounts
            .entry(secret_id.to_string())
            .or_default()
            .regions
            .entry(region.to_string())
            .or_default()
            .load_balancers
            .insert(lb.load_balancer_id.clone(), lb);
    }

    /// The `/_fake/state` view: no secrets, no rollback snapshots.
    pub fn dump(&self, secret_id: Option<&str>, region: Option<&str>) -> StateDump {
        let accounts = self
            .accounts
            .iter()
            .filter(|(sid, _)| secret_id.is_none_or(|s| s == sid.as_str()))
            .map(|(sid, a)| AccountDump {
                secret_id: sid.clone(),
                app_id: a.app_id,
                regions: a
                    .regions
                    .iter()
                    .filter(|(r, _)| region.is_none_or(|x| x == r.as_str()))
                    .map(|(r, g)| (r.clone(), region_dump(g)))
                    .collect(),
            })
            .collect();
        StateDump { accounts }
    }
}

fn region_dump(g: &Region) -> RegionDump {
    RegionDump {
        load_balancers: g.load_balancers.values().cloned().collect(),
        tasks: g
            .tasks
            .values()
            .map(|t| TaskDump {
                task_id: t.task_id.clone(),
                action: t.action.clone(),
                load_balancer_id: t.load_balancer_id.clone(),
                load_balancer_ids: t.load_balancer_ids.clone(),
                status: t.status(),
                message: t.fail_message.clone(),
                created_ms: t.created_ms,
                done_ms: t.done_ms,
            })
            .collect(),
    }
}

fn find_listener<'a>(lb: &'a mut LoadBalancer, id: &str) -> Result<&'a mut Listener, ApiError> {
    lb.listeners
        .iter_mut()
        .find(|l| l.listener_id == id)
        .ok_or_else(|| ApiError::listener_not_found(id))
}

fn find_rule<'a>(l: &'a mut Listener, id: &str) -> Result<&'a mut Rule, ApiError> {
    l.rules
        .iter_mut()
        .find(|x| x.location_id == id)
        .ok_or_else(|| {
            err(
                ErrorCode::InvalidParameterLocationNotFound,
                format!("Location not exist: {id}"),
            )
        })
}

/// The target list of an L4 listener, or of the rule named by LocationId (or Domain + Url) on L7.
fn target_list<'a>(
    l: &'a mut Listener,
    location_id: Option<&str>,
    domain: Option<&str>,
    url: Option<&str>,
) -> Result<&'a mut Vec<Backend>, ApiError> {
    if !l.is_l7() {
        return Ok(&mut l.targets);
    }
    let idx = match (location_id, domain, url) {
        (Some(id), _, _) => l.rules.iter().position(|x| x.location_id == id),
        (None, Some(d), Some(u)) => l.rules.iter().position(|x| x.domain == d && x.url == u),
        _ => return Err(ApiError::missing_parameter("LocationId")),
    };
    let idx = idx.ok_or_else(|| {
        err(
            ErrorCode::InvalidParameterLocationNotFound,
            format!("Location not exist: {}", location_id.unwrap_or_default()),
        )
    })?;
    Ok(&mut l.rules[idx].targets)
}

fn target_key(
    instance_id: Option<&str>,
    eni_ip: Option<&str>,
    port: i64,
) -> Result<TargetKey, ApiError> {
    match (instance_id, eni_ip) {
        (Some(_), Some(_)) | (None, None) => Err(ApiError::invalid_parameter(
            "Exactly one of InstanceId and EniIp must be given for each target.",
        )),
        (i, e) => Ok(TargetKey {
            ip: e.map(str::to_string),
            instance_id: i.map(str::to_string),
            port,
        }),
    }
}

fn target_keys(targets: &[model::Target]) -> Result<Vec<TargetKey>, ApiError> {
    let mut seen = BTreeSet::new();
    let mut keys = Vec::new();
    for t in targets {
        let key = target_key(t.instance_id.as_deref(), t.eni_ip.as_deref(), t.port)?;
        if !seen.insert(key.clone()) {
            return Err(err(
                ErrorCode::InvalidParameterValueDuplicate,
                format!("Duplicate target {} in Targets.", key.describe()),
            ));
        }
        keys.push(key);
    }
    Ok(keys)
}

/// Register (idempotent; re-registering updates the weight), deregister (must be bound) or reweight one target.
fn apply_target(
    list: &mut Vec<Backend>,
    action: &str,
    key: &TargetKey,
    weight: Option<i64>,
    now_ms: u64,
) -> Result<(), ApiError> {
    let pos = list.iter().position(|b| b.same(key));
    match action {
        "RegisterTargets" => match pos {
            Some(i) => {
                if let Some(w) = weight {
                    list[i].weight = w;
                }
            }
            None => list.push(Backend {
                ip: key.ip.clone(),
                instance_id: key.instance_id.clone(),
                port: key.port,
                weight: weight.unwrap_or(10),
                registered_ms: now_ms,
            }),
        },
        "DeregisterTargets" => match pos {
            Some(i) => {
                list.remove(i);
            }
            None => {
                return Err(ApiError::invalid_parameter(format!(
                    "Target {} is not bound.",
                    key.describe()
                )));
            }
        },
        _ => {
            let w = weight.ok_or_else(|| ApiError::missing_parameter("Weight"))?;
            match pos {
                Some(i) => list[i].weight = w,
                None => {
                    return Err(ApiError::invalid_parameter(format!(
                        "Target {} is not bound.",
                        key.describe()
                    )));
                }
            }
        }
    }
    Ok(())
}

fn backend_output(b: &Backend) -> model::Backend {
    model::Backend {
        r#type: Some(
            if b.instance_id.is_some() {
                "CVM"
            } else {
                "ENI"
            }
            .into(),
        ),
        instance_id: Some(b.instance_id.clone().unwrap_or_default()),
        port: b.port,
        weight: b.weight,
        public_ip_addresses: None,
        private_ip_addresses: Some(b.ip.iter().cloned().collect()),
        instance_name: Some(String::new()),
        registered_time: Some(fmt_time(b.registered_ms)),
        eni_id: Some(String::new()),
        tag: None,
        zone: None,
    }
}

fn certificate_output(c: &model::Certificate) -> model::CertificateOutput {
    model::CertificateOutput {
        ssl_mode: c.ssl_mode.clone(),
        ssl_verify_client: c.ssl_verify_client.clone(),
        cert_id: c.cert_id.clone(),
        cert_ca_id: c.cert_ca_id.clone(),
        ext_cert_ids: None,
    }
}

fn listener_output(l: &Listener) -> model::Listener {
    model::Listener {
        listener_id: l.listener_id.clone(),
        protocol: l.protocol.clone(),
        port: l.port,
        certificate: l.certificate.as_ref().map(certificate_output),
        health_check: l.health_check.clone(),
        scheduler: Some(l.scheduler.clone()),
        session_expire_time: Some(l.session_expire_time),
        sni_switch: Some(l.sni_switch),
        rules: l.is_l7().then(|| {
            l.rules
                .iter()
                .map(|x| model::RuleOutput {
                    location_id: x.location_id.clone(),
                    domain: Some(x.domain.clone()),
                    url: Some(x.url.clone()),
                    session_expire_time: Some(x.session_expire_time),
                    health_check: x.health_check.clone(),
                    certificate: x.certificate.as_ref().map(certificate_output),
                    scheduler: Some(x.scheduler.clone()),
                    listener_id: Some(l.listener_id.clone()),
                    http2: Some(x.http2),
                    default_server: Some(x.default_server),
                    forward_type: Some(x.forward_type.clone()),
                    create_time: Some(fmt_time(x.created_ms)),
                    target_type: Some("NODE".into()),
                    domains: Some(vec![x.domain.clone()]),
                    ..model::RuleOutput::default()
                })
                .collect()
        }),
        listener_name: Some(l.name.clone()),
        create_time: Some(fmt_time(l.created_ms)),
        end_port: Some(l.end_port),
        target_type: Some(l.target_type.clone()),
        session_type: Some(l.session_type.clone()),
        keepalive_enable: Some(l.keepalive_enable),
        toa: Some(false),
        deregister_target_rst: Some(l.deregister_target_rst),
        attr_flags: Some(Vec::new()),
        idle_connect_timeout: l.idle_connect_timeout,
        ..model::Listener::default()
    }
}

fn lb_output(lb: &LoadBalancer, region: &str, want_count: bool) -> model::LoadBalancer {
    let targets: usize = lb
        .listeners
        .iter()
        .map(|l| l.targets.len() + l.rules.iter().map(|r| r.targets.len()).sum::<usize>())
        .sum();
    model::LoadBalancer {
        load_balancer_id: lb.load_balancer_id.clone(),
        load_balancer_name: lb.name.clone(),
        load_balancer_type: lb.lb_type.clone(),
        forward: 1,
        domain: Some(String::new()),
        load_balancer_domain: Some(format!(
            "{}.clb.{region}.tencentclb.com",
            lb.load_balancer_id
        )),
        load_balancer_vips: lb.vips.clone(),
        address_ipv6: None,
        address_ip_version: Some("ipv4".into()),
        status: lb.status,
        create_time: Some(fmt_time(lb.created_ms)),
        status_time: Some(fmt_time(lb.created_ms)),
        project_id: Some(0),
        open_bgp: Some(0),
        snat: Some(false),
        isolation: Some(0),
        vpc_id: Some(lb.vpc_id.clone()),
        numerical_vpc_id: Some(0),
        target_region_info: Some(model::TargetRegionInfo {
            region: Some(region.into()),
            vpc_id: Some(lb.vpc_id.clone()),
            numerical_vpc_id: Some(0),
        }),
        subnet_id: Some(String::new()),
        secure_groups: Some(Vec::new()),
        tags: Some(
            lb.tags
                .iter()
                .map(|t| model::TagInfo {
                    tag_key: t.tag_key.clone(),
                    tag_value: t.tag_value.clone(),
                })
                .collect(),
        ),
        master_zone: Some(model::ZoneInfo {
            zone_id: Some(100003),
            zone: Some(format!("{region}-3")),
            zone_name: Some(String::new()),
            zone_region: Some(region.into()),
            local_zone: Some(false),
            edge_zone: Some(false),
        }),
        charge_type: Some("POSTPAID_BY_HOUR".into()),
        network_attributes: Some(model::NetworkAttributes {
            internet_charge_type: Some("TRAFFIC_POSTPAID_BY_HOUR".into()),
            internet_max_bandwidth_out: Some(10),
            bandwidthpkg_sub_type: None,
        }),
        load_balancer_pass_to_target: Some(false),
        is_d_dos: Some(false),
        snat_pro: Some(false),
        snat_ips: Some(Vec::new()),
        is_block: Some(false),
        sla_type: Some(String::new()),
        local_bgp: Some(false),
        mix_ip_target: Some(false),
        attribute_flags: Some(Vec::new()),
        vip_isp: Some("BGP".into()),
        egress: None,
        target_count: want_count.then_some(targets as i64),
    }
}

#[cfg(test)]
mod tests;
