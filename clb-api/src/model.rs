//! Request and response structs of the CLB actions (generated from `gen/model.txt` by `gen/gen_model.py`).
//! Optional fields are skipped when `None`; responses tolerate missing fields.
#![allow(missing_docs)]

use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_switch: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_out: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_num: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub un_health_num: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_code: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_check_path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_check_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_check_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recv_context: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_ip_type: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_code: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Certificate {
    #[serde(rename = "SSLMode")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_mode: Option<String>,
    #[serde(rename = "SSLVerifyClient")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_verify_client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_ca_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_content: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_ca_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_ca_content: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Filter {
    pub name: String,
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagInfo {
    pub tag_key: String,
    pub tag_value: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct InternetAccessible {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_charge_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_max_bandwidth_out: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidthpkg_sub_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Target {
    pub port: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eni_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchTarget {
    pub listener_id: String,
    pub port: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eni_ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RsWeightRule {
    pub listener_id: String,
    pub targets: Vec<Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RuleInput {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expire_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_cert_info: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_server: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trpc_callee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trpc_func: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o_auth: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeLoadBalancersRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_vips: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_public_ips: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_private_ips: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_type: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub with_rs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security_group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<Filter>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional_fields: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateLoadBalancerRequest {
    pub load_balancer_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<i64>,
    #[serde(rename = "AddressIPVersion")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_ip_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_zone_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slave_zone_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_accessible: Option<InternetAccessible>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip_isp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth_package_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclusive_cluster: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snat_pro: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snat_ips: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eip_address_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_pass_to_target: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamic_vip: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
    #[serde(rename = "LBChargePrepaid")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_charge_prepaid: Option<Value>,
    #[serde(rename = "LBChargeType")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_charge_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_log_topic_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advanced_route: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available_zone_affinity_info: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteLoadBalancerRequest {
    pub load_balancer_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_delete: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeQuotaRequest {}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateListenerRequest {
    pub load_balancer_id: String,
    pub ports: Vec<i64>,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_names: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expire_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni_switch: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_enable: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregister_target_rst: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_cert_info: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_conn: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cps: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_connect_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snat_enable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub full_end_ports: Option<Vec<i64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h2c_switch: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_close_switch: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_compress_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_target_zero_weight: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_unhealthy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_expand_target: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_start_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_interval: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeListenersRequest {
    pub load_balancer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteListenerRequest {
    pub load_balancer_id: String,
    pub listener_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteLoadBalancerListenersRequest {
    pub load_balancer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyListenerRequest {
    pub load_balancer_id: String,
    pub listener_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expire_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni_switch: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_enable: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregister_target_rst: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_cert_info: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_conn: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cps: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_connect_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_protocol: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snat_enable: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_compress_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_target_zero_weight: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_unhealthy: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_expand_target: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_start_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_interval: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CreateRuleRequest {
    pub load_balancer_id: String,
    pub listener_id: String,
    pub rules: Vec<RuleInput>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeleteRuleRequest {
    pub load_balancer_id: String,
    pub listener_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_default_server_domain: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyRuleRequest {
    pub load_balancer_id: String,
    pub listener_id: String,
    pub location_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expire_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trpc_callee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trpc_func: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub o_auth: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyDomainAttributesRequest {
    pub load_balancer_id: String,
    pub listener_id: String,
    pub domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<Certificate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_server: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_default_server_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub new_domains: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multi_cert_info: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RegisterTargetsRequest {
    pub load_balancer_id: String,
    pub listener_id: String,
    pub targets: Vec<Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DeregisterTargetsRequest {
    pub load_balancer_id: String,
    pub listener_id: String,
    pub targets: Vec<Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ModifyTargetWeightRequest {
    pub load_balancer_id: String,
    pub listener_id: String,
    pub targets: Vec<Target>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchRegisterTargetsRequest {
    pub load_balancer_id: String,
    pub targets: Vec<BatchTarget>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchDeregisterTargetsRequest {
    pub load_balancer_id: String,
    pub targets: Vec<BatchTarget>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchModifyTargetWeightRequest {
    pub load_balancer_id: String,
    pub modify_list: Vec<RsWeightRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTargetsRequest {
    pub load_balancer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protocol: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Vec<Filter>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTargetHealthRequest {
    pub load_balancer_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescribeTaskStatusRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_name: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ZoneInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_zone: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_zone: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TargetRegionInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerical_vpc_id: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkAttributes {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_charge_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_max_bandwidth_out: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidthpkg_sub_type: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LoadBalancer {
    pub load_balancer_id: String,
    pub load_balancer_name: String,
    pub load_balancer_type: String,
    pub forward: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_domain: Option<String>,
    pub load_balancer_vips: Vec<String>,
    #[serde(rename = "AddressIPv6")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_ipv6: Option<String>,
    #[serde(rename = "AddressIPVersion")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address_ip_version: Option<String>,
    pub status: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_bgp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snat: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub numerical_vpc_id: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_region_info: Option<TargetRegionInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secure_groups: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_zone: Option<ZoneInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub charge_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_attributes: Option<NetworkAttributes>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_pass_to_target: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_d_dos: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snat_pro: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snat_ips: Option<Vec<Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_block: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sla_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_bgp: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix_ip_target: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute_flags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vip_isp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_count: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CertificateOutput {
    #[serde(rename = "SSLMode")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_mode: Option<String>,
    #[serde(rename = "SSLVerifyClient")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssl_verify_client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_ca_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ext_cert_ids: Option<Vec<String>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RuleOutput {
    pub location_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expire_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_gzip: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub be_auto_created: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_server: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http2: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forward_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domains: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quic_status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trpc_callee: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trpc_func: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Listener {
    pub listener_id: String,
    pub protocol: String,
    pub port: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<CertificateOutput>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheduler: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_expire_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sni_switch: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<RuleOutput>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_enable: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toa: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deregister_target_rst: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attr_flags: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_conn: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cps: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_connect_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_interval: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_compress_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reschedule_start_time: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Backend {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    pub port: i64,
    pub weight: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_ip_addresses: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip_addresses: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registered_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eni_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RuleTargets {
    pub location_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<Backend>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListenerBackend {
    pub listener_id: String,
    pub protocol: String,
    pub port: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<RuleTargets>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<Backend>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TargetHealth {
    #[serde(rename = "IP")]
    pub ip: String,
    pub port: i64,
    pub health_status: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status_detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_status_detial: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_group_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RuleHealth {
    pub location_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<Vec<TargetHealth>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListenerHealth {
    pub listener_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listener_name: Option<String>,
    pub protocol: String,
    pub port: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<Vec<RuleHealth>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct LoadBalancerHealth {
    pub load_balancer_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listeners: Option<Vec<ListenerHealth>>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Quota {
    pub quota_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota_current: Option<i64>,
    pub quota_limit: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeLoadBalancersResponse {
    pub total_count: i64,
    pub load_balancer_set: Vec<LoadBalancer>,
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateLoadBalancerResponse {
    pub load_balancer_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deal_name: Option<String>,
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeleteLoadBalancerResponse {
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeQuotaResponse {
    pub quota_set: Vec<Quota>,
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateListenerResponse {
    pub listener_ids: Vec<String>,
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeListenersResponse {
    pub listeners: Vec<Listener>,
    pub total_count: i64,
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeleteListenerResponse {
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeleteLoadBalancerListenersResponse {
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ModifyListenerResponse {
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateRuleResponse {
    pub location_ids: Vec<String>,
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeleteRuleResponse {
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ModifyRuleResponse {
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ModifyDomainAttributesResponse {
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RegisterTargetsResponse {
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeregisterTargetsResponse {
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ModifyTargetWeightResponse {
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BatchRegisterTargetsResponse {
    pub fail_listener_id_set: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BatchDeregisterTargetsResponse {
    pub fail_listener_id_set: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct BatchModifyTargetWeightResponse {
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeTargetsResponse {
    pub listeners: Vec<ListenerBackend>,
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeTargetHealthResponse {
    pub load_balancers: Vec<LoadBalancerHealth>,
    pub request_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DescribeTaskStatusResponse {
    pub status: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_balancer_ids: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub request_id: String,
}
