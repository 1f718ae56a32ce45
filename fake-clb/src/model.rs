//! What fake-clb holds per load balancer, as its state file and the control API's state dump show it:
//! load balancers with their tags, listeners, L7 rules and bound targets. The state core changes these; the
//! control API's types embed them.

use clb_api::model::{self, HealthCheck};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
