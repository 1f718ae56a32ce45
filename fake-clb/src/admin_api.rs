//! The control API's contract: every `/_fake/...` path and every type its endpoints take or return. The server
//! ([`crate::admin`]), the typed client ([`crate::admin_client`]), the tests and the harness all use these, so
//! the wire shape is written once. Types derive `JsonSchema` so a scenario schema can embed them.

use std::collections::BTreeMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use crate::latency::{CallLatency, LatencyRange};
pub use crate::model::{Backend, Listener, LoadBalancer, Rule, Tag};

/// One endpoint of the control API (served on the admin listener only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AdminPath {
    /// `GET`: liveness, answers [`Status`].
    Health,
    /// `GET` with [`StateQuery`]: a [`StateDump`].
    State,
    /// `POST`: back to the configured state.
    Reset,
    /// `GET` / `PATCH` with [`LimitsPatch`]: the runtime [`Limits`].
    Limits,
    /// `GET` / `PUT` / `PATCH` / `DELETE`: the [`FaultRule`] list.
    Faults,
    /// `GET` with [`RequestsQuery`] / `DELETE`: the request log of [`LogEntry`].
    Requests,
    /// `POST` [`ConsoleTarget`]: delete a listener out of band.
    ConsoleDeleteListener,
    /// `POST` [`ConsoleTarget`]: unbind a target out of band.
    ConsoleDeleteTarget,
    /// `POST` [`ConsoleTarget`]: delete a load balancer out of band.
    ConsoleDeleteLoadBalancer,
    /// `POST` [`CreateLoadBalancer`]: create a running load balancer at once.
    ConsoleCreateLoadBalancer,
    /// `GET`: OpenMetrics text.
    Metrics,
}

impl AdminPath {
    /// Every endpoint, for routing tests and tooling.
    pub const ALL: [AdminPath; 11] = [
        AdminPath::Health,
        AdminPath::State,
        AdminPath::Reset,
        AdminPath::Limits,
        AdminPath::Faults,
        AdminPath::Requests,
        AdminPath::ConsoleDeleteListener,
        AdminPath::ConsoleDeleteTarget,
        AdminPath::ConsoleDeleteLoadBalancer,
        AdminPath::ConsoleCreateLoadBalancer,
        AdminPath::Metrics,
    ];

    /// The URL path, starting with `/`.
    pub const fn as_str(self) -> &'static str {
        match self {
            AdminPath::Health => "/_fake/health",
            AdminPath::State => "/_fake/state",
            AdminPath::Reset => "/_fake/reset",
            AdminPath::Limits => "/_fake/limits",
            AdminPath::Faults => "/_fake/faults",
            AdminPath::Requests => "/_fake/requests",
            AdminPath::ConsoleDeleteListener => "/_fake/console/delete-listener",
            AdminPath::ConsoleDeleteTarget => "/_fake/console/delete-target",
            AdminPath::ConsoleDeleteLoadBalancer => "/_fake/console/delete-load-balancer",
            AdminPath::ConsoleCreateLoadBalancer => "/_fake/console/create-load-balancer",
            AdminPath::Metrics => "/metrics",
        }
    }
}

impl std::fmt::Display for AdminPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"status": "ok"}`: the answer of health, reset and console changes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Status {
    pub status: String,
}

impl Status {
    pub fn ok() -> Self {
        Status {
            status: "ok".into(),
        }
    }
}

/// The body of every control-API error answer (HTTP 4xx/5xx).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AdminErrorBody {
    pub error: String,
}

/// A test account: the key pair requests are signed with.
#[derive(Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AccountConfig {
    pub secret_id: String,
    pub secret_key: String,
    #[serde(default)]
    pub app_id: u64,
}

impl std::fmt::Debug for AccountConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountConfig")
            .field("secret_id", &self.secret_id)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

/// A load balancer that exists (running, no listeners) when the server starts or after a reset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoadBalancerConfig {
    pub id: String,
    pub secret_id: String,
    pub region: String,
    #[serde(default)]
    pub name: Option<String>,
    /// `OPEN` or `INTERNAL`.
    #[serde(default = "default_lb_type", rename = "type")]
    pub lb_type: String,
    #[serde(default)]
    pub vips: Vec<String>,
}

pub(crate) fn default_lb_type() -> String {
    "OPEN".into()
}

/// Quotas, rates and timings; set in the config's `limits` and changed at runtime through `PATCH /_fake/limits`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct Limits {
    /// Requests per second per (account, action); 0 disables throttling.
    pub action_qps: u64,
    /// TOTAL_LISTENER_QUOTA.
    pub listeners_per_load_balancer: usize,
    /// TOTAL_LISTENER_RULE_QUOTA.
    pub rules_per_listener: usize,
    /// TOTAL_TARGET_BIND_QUOTA, per layer-4 listener and per layer-7 rule.
    pub targets_per_listener: usize,
    /// TOTAL_OPEN_CLB_QUOTA and TOTAL_INTERNAL_CLB_QUOTA (each).
    pub load_balancers_per_region: usize,
    /// CreateListener `Ports` per call; more is `InvalidParameterValue.Length`.
    pub create_listener_max_ports: usize,
    /// How long an async task stays in progress.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub task_duration: Duration,
    /// How long a CreateLoadBalancer task stays in progress.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub load_balancer_create_duration: Duration,
    /// How long a load balancer stays busy after a synchronous batch target call.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub batch_busy_tail: Duration,
    /// Largest TC3 JSON body accepted.
    pub max_body_bytes: usize,
    /// Largest accepted difference between a request's timestamp and the server clock.
    #[serde(with = "humantime_serde")]
    #[schemars(with = "String")]
    pub timestamp_skew: Duration,
    /// Most entries the request log keeps (oldest dropped first).
    pub request_log_max_entries: usize,
    /// Most bytes (estimated) the request log keeps (oldest dropped first).
    pub request_log_max_bytes: usize,
    /// Largest listener `IdleConnectTimeout` in seconds: 900 on standard load balancers, up to 1980 on
    /// performance-capacity ones.
    pub idle_connect_timeout_max: i64,
    /// Whether a TC3 POST must say exactly `Content-Type: application/json` (parameters such as
    /// `; charset=utf-8` allowed); when false any type starting with `application/json` passes.
    pub strict_json_content_type: bool,
    /// Latency added before answering each API call, per action name or `default`: a range drawn uniformly
    /// from the seeded RNG (`40ms-120ms`) or a fixed delay (`50ms`). Empty (the default): answer at once.
    pub call_latency: CallLatency,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            action_qps: 20,
            listeners_per_load_balancer: 50,
            rules_per_listener: 50,
            targets_per_listener: 100,
            load_balancers_per_region: 100,
            create_listener_max_ports: clb_api::limits::CREATE_LISTENER_PORTS,
            task_duration: Duration::from_millis(200),
            load_balancer_create_duration: Duration::from_secs(1),
            batch_busy_tail: Duration::ZERO,
            max_body_bytes: clb_api::limits::TC3_POST_MAX_BYTES,
            timestamp_skew: Duration::from_secs(300),
            request_log_max_entries: 100_000,
            request_log_max_bytes: 64 * 1024 * 1024,
            idle_connect_timeout_max: clb_api::limits::IDLE_CONNECT_TIMEOUT.1,
            strict_json_content_type: true,
            call_latency: CallLatency::new(),
        }
    }
}

/// A partial [`Limits`] for `PATCH /_fake/limits`: the keys given replace the current values, the rest stay.
/// Durations are humantime strings (`200ms`, `1s`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LimitsPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action_qps: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listeners_per_load_balancer: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules_per_listener: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets_per_listener: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancers_per_region: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_listener_max_ports: Option<usize>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    #[schemars(with = "Option<String>")]
    pub task_duration: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    #[schemars(with = "Option<String>")]
    pub load_balancer_create_duration: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    #[schemars(with = "Option<String>")]
    pub batch_busy_tail: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "humantime_serde"
    )]
    #[schemars(with = "Option<String>")]
    pub timestamp_skew: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_log_max_entries: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_log_max_bytes: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_connect_timeout_max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict_json_content_type: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_latency: Option<CallLatency>,
}

/// What a firing fault rule does to the request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Effect {
    /// Fail with this code; no state change.
    Error {
        code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Delay, then process normally.
    Latency { ms: u64 },
    /// `RequestLimitExceeded` with the real message.
    Throttle,
    /// Close the connection without an HTTP response.
    Drop,
    /// Apply the change, then answer with this error.
    CommitThenFail {
        code: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// Accept the async call; its task ends with Status 1 and the change is rolled back.
    FailTask {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The task stays in progress until reset or the faults are cleared.
    HangTask,
}

/// A scripted fault: matched on action / load balancer / account; the first matching rule whose probability
/// draw succeeds fires.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FaultRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// CLB action name, e.g. `CreateListener`; any action when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    /// Chance in [0, 1] that a matching call fires the rule (seeded RNG); always when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probability: Option<f64>,
    /// Fires for the first N matching calls; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    pub effect: Effect,
    /// Shown by GET; ignored on input (reset when a rule is installed).
    #[serde(default)]
    pub fired: u64,
    /// Shown by GET; ignored on input.
    #[serde(default)]
    pub remaining: Option<u64>,
}

impl FaultRule {
    /// A rule that fires on every call with `effect`.
    pub fn always(effect: Effect) -> Self {
        FaultRule {
            id: None,
            action: None,
            load_balancer_id: None,
            secret_id: None,
            probability: None,
            count: None,
            effect,
            fired: 0,
            remaining: None,
        }
    }
}

/// Query of `GET /_fake/state`: narrow the dump to one account and/or region.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// `GET /_fake/state`: every account's regions, without secrets or rollback snapshots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StateDump {
    pub accounts: Vec<AccountDump>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountDump {
    pub secret_id: String,
    pub app_id: u64,
    pub regions: BTreeMap<String, RegionDump>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RegionDump {
    pub load_balancers: Vec<LoadBalancer>,
    pub tasks: Vec<TaskDump>,
}

/// An async task as DescribeTaskStatus sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskDump {
    pub task_id: String,
    pub action: String,
    pub load_balancer_id: Option<String>,
    pub load_balancer_ids: Vec<String>,
    /// 0 succeeded, 1 failed, 2 in progress.
    pub status: i64,
    pub message: Option<String>,
    pub created_ms: u64,
    pub done_ms: Option<u64>,
}

impl StateDump {
    /// Every load balancer of the dump with its account and region.
    pub fn load_balancers(&self) -> impl Iterator<Item = (&str, &str, &LoadBalancer)> {
        self.accounts.iter().flat_map(|a| {
            a.regions.iter().flat_map(move |(region, r)| {
                r.load_balancers
                    .iter()
                    .map(move |lb| (a.secret_id.as_str(), region.as_str(), lb))
            })
        })
    }

    /// The load balancer with this id, in any account or region.
    pub fn load_balancer(&self, id: &str) -> Option<&LoadBalancer> {
        self.load_balancers()
            .map(|(_, _, lb)| lb)
            .find(|lb| lb.load_balancer_id == id)
    }
}

/// Query of `GET /_fake/requests`: entries with a sequence number above `since`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RequestsQuery {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
}

/// One answered API request in `GET /_fake/requests`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogEntry {
    pub seq: u64,
    /// RFC 3339 with milliseconds, UTC.
    pub time: String,
    pub elapsed_ms: f64,
    /// `Unknown` when the request did not name a supported action.
    pub action: String,
    pub secret_id: String,
    pub region: String,
    pub load_balancer_id: Option<String>,
    /// `OK`, `Dropped` or the error code.
    pub result: String,
    pub request_id: String,
    /// The business parameters as received (null when they were not kept).
    pub params: Value,
    /// Set when the parameters of a refused request were too large to keep: their size in bytes of JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params_omitted_bytes: Option<usize>,
}

/// Body of the console deletions: which object to remove out of band (as someone using the web console would).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConsoleTarget {
    /// Narrows the search when the id exists in several accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub load_balancer_id: String,
    /// Required by delete-listener and delete-target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_id: Option<String>,
    /// delete-target on a layer-7 rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    /// delete-target: the target's IP (an instance id also matches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

/// Body of `POST /_fake/console/create-load-balancer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateLoadBalancer {
    pub secret_id: String,
    pub region: String,
    /// Generated from the seed when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `OPEN` (default) or `INTERNAL`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub lb_type: Option<String>,
    #[serde(default)]
    pub vips: Vec<String>,
}

/// Answer of `POST /_fake/console/create-load-balancer`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreatedLoadBalancer {
    pub load_balancer_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_distinct_and_under_the_control_prefix() {
        let mut seen = std::collections::HashSet::new();
        for p in AdminPath::ALL {
            assert!(seen.insert(p.as_str()), "{p} twice");
            assert!(p.as_str().starts_with("/_fake/") || p == AdminPath::Metrics);
        }
    }

    #[test]
    fn a_limits_patch_names_every_limit() {
        let full = serde_json::to_value(Limits::default()).unwrap();
        let patch: LimitsPatch = serde_json::from_value(full.clone()).unwrap();
        let back = serde_json::to_value(&patch).unwrap();
        assert_eq!(back, full, "LimitsPatch and Limits have the same keys");
    }
}
