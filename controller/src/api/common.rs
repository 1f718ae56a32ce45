//! Types shared by several kinds: protocols, listener attributes, health checks, certificates, resolved CLBs.
//!
//! Optional Go fields (`omitempty`) are `Option`s skipped when `None`, so a user manifest round-trips without
//! gaining nulls or zeroes; an explicit `false`/`0` a user wrote is kept.

use std::borrow::Cow;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// Listener protocol. The CRD schema accepts exactly the API's upper-case spellings.
pub use clb_api::protocol::Protocol;

/// CLB scheduling algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum LbPolicy {
    #[serde(rename = "WRR")]
    Wrr,
    #[serde(rename = "LEAST_CONN")]
    LeastConn,
    #[serde(rename = "IP_HASH")]
    IpHash,
}

/// Session persistence type; `QUIC_CID` forces the WRR scheduler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SessionType {
    #[serde(rename = "NORMAL")]
    Normal,
    #[serde(rename = "QUIC_CID")]
    QuicCid,
}

/// TLS verification mode of a certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum CertificateMode {
    #[serde(rename = "UNIDIRECTIONAL")]
    Unidirectional,
    #[serde(rename = "MUTUAL")]
    Mutual,
}

/// Health check of a listener (L4) or rule (L7). Bounds follow the CLB API; the original checks them only in its
/// webhook and only when `enabled` is true, here the schema checks them whenever a value is present.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ListenerHealthCheck {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Response timeout in seconds (2–60); must be below `intervalTime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 60))]
    pub timeout: Option<i32>,
    /// Probe interval in seconds (2–300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 300))]
    pub interval_time: Option<i32>,
    /// Consecutive successes to become healthy (2–10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 10))]
    pub health_num: Option<i32>,
    /// Consecutive failures to become unhealthy (2–10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 2, max = 10))]
    pub un_health_num: Option<i32>,
    /// Bitmask of healthy HTTP classes: 1=1xx, 2=2xx, 4=3xx, 8=4xx, 16=5xx (1–31).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 31))]
    pub http_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub health_check_port: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_protocol: Option<String>,
    /// AWS only: matcher such as `"200,202"` or `"200-299"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_code_values: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_check_path: Option<String>,
    /// `HEAD` (CLB default) or `GET`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_check_method: Option<String>,
}

/// AWS target-group attribute (kept for manifest compatibility; unused with Tencent CLB).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct AwsAttribute {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
}

/// Forwarding attributes of a listener (L4) or of one L7 rule.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressListenerAttribute {
    /// Session persistence in seconds: 0 (off) or 30–3600.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "session_time_schema")]
    pub session_time: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_type: Option<SessionType>,
    /// SNI on an HTTPS listener: 0 or 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub sni_switch: Option<i32>,
    /// HTTP keep-alive to backends: 0 or 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1))]
    pub keep_alive_enable: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lb_policy: Option<LbPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend_insecure: Option<bool>,
    /// Maximum new connections per second per target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_rate: Option<i32>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aws_attributes: Vec<AwsAttribute>,
    /// AWS only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<ListenerHealthCheck>,
    /// BlueKing-Monitor dial test, passed through unchanged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uptime_check: Option<UptimeCheckConfig>,
}

/// Certificate of an HTTPS / TCP_SSL / QUIC listener or of one SNI domain.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct IngressListenerCertificate {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<CertificateMode>,
    #[serde(rename = "certID", default, skip_serializing_if = "Option::is_none")]
    pub cert_id: Option<String>,
    #[serde(rename = "certCaID", default, skip_serializing_if = "Option::is_none")]
    pub cert_ca_id: Option<String>,
}

/// A CLB as resolved from the cloud (`DescribeLoadBalancers`), reported in Ingress / PortPool / PortBinding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IngressLoadBalancer {
    #[serde(
        rename = "loadbalancerName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub loadbalancer_name: Option<String>,
    #[serde(
        rename = "loadbalancerID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub loadbalancer_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// CLB `LoadBalancerType`: `OPEN` or `INTERNAL`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub lb_type: Option<String>,
    /// The CLB's VIPs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    /// The CLB's domain.
    #[serde(rename = "dnsName", default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(rename = "awsLBType", default, skip_serializing_if = "Option::is_none")]
    pub aws_lb_type: Option<String>,
}

/// A JSON object the controller passes through without interpreting it. The schema keeps unknown fields, so
/// uptime-check settings written for newer bcs-ingress-controller versions survive.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FreeformObject(pub serde_json::Map<String, serde_json::Value>);

impl JsonSchema for FreeformObject {
    fn schema_name() -> Cow<'static, str> {
        "FreeformObject".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": true,
        })
    }
}

/// BlueKing-Monitor dial-test configuration (out of scope for CLB; carried through unchanged).
pub type UptimeCheckConfig = FreeformObject;
/// Result of a dial test as reported by BlueKing Monitor (carried through unchanged).
pub type UptimeCheckStatus = FreeformObject;

/// `0` (off) or `30..=3600`; the value-only `anyOf` keeps the schema structural.
fn session_time_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "integer",
        "format": "int32",
        "anyOf": [
            { "enum": [0] },
            { "minimum": 30, "maximum": 3600 },
        ],
    })
}

/// A TCP/UDP port, `1..=65535`.
pub(crate) fn port_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "integer", "format": "int32", "minimum": 1, "maximum": 65535 })
}

/// A port where `0` means "not set", `0..=65535`.
pub(crate) fn optional_port_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "integer", "format": "int32", "minimum": 0, "maximum": 65535 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_parse_is_case_insensitive_and_rejects_unknown() {
        assert_eq!(Protocol::parse("tcp_ssl"), Some(Protocol::TcpSsl));
        assert_eq!(Protocol::parse(" Https "), Some(Protocol::Https));
        assert_eq!(Protocol::parse("TCP_UDP"), None);
        assert_eq!(Protocol::parse(""), None);
    }

    #[test]
    fn protocol_name_token_drops_underscore() {
        use crate::api::naming::protocol_token;
        assert_eq!(protocol_token(Protocol::TcpSsl), "tcpssl");
        assert_eq!(protocol_token(Protocol::Udp), "udp");
    }

    #[test]
    fn only_http_and_https_are_layer7() {
        let l7: Vec<_> = Protocol::ALL.into_iter().filter(|p| p.is_l7()).collect();
        assert_eq!(l7, vec![Protocol::Http, Protocol::Https]);
    }

    #[test]
    fn protocol_serde_uses_wire_spelling() {
        for p in Protocol::ALL {
            let json = serde_json::to_value(p).unwrap();
            assert_eq!(json, serde_json::Value::String(p.as_str().to_owned()));
            assert_eq!(serde_json::from_value::<Protocol>(json).unwrap(), p);
        }
    }
}
