//! Parameter schemas as data: one table per action, used to validate JSON bodies, to coerce
//! flattened GET / form parameters, and to reject unknown or missing parameters with the real codes.

use serde_json::{Map, Value};

use crate::error::{ApiError, ErrorCode};
use crate::limits;

/// The type of one parameter.
#[derive(Debug, Clone, Copy)]
pub enum Ty {
    Str,
    Int,
    /// An integer within an inclusive range (out of range -> `InvalidParameterValue.Range`).
    IntIn(i64, i64),
    Bool,
    /// An array with an optional maximum length (longer -> `InvalidParameterValue.Length`).
    Array(&'static Ty, Option<usize>),
    Object(&'static [Field]),
    /// Anything; kept as given (fields the fake stores but does not interpret).
    Any,
}

/// One named parameter.
#[derive(Debug, Clone, Copy)]
pub struct Field {
    pub name: &'static str,
    pub ty: Ty,
    pub required: bool,
}

pub const fn req(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: true,
    }
}

pub const fn opt(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: false,
    }
}

const fn range((lo, hi): (i64, i64)) -> Ty {
    Ty::IntIn(lo, hi)
}

const STR: Ty = Ty::Str;
const INT: Ty = Ty::Int;
const BOOL: Ty = Ty::Bool;
const PORT: Ty = Ty::IntIn(limits::PORT_MIN, limits::PORT_MAX);
const WEIGHT: Ty = Ty::IntIn(0, limits::WEIGHT_MAX);
const STRS: Ty = Ty::Array(&STR, None);

pub const HEALTH_CHECK: &[Field] = &[
    opt("HealthSwitch", Ty::IntIn(0, 1)),
    opt("TimeOut", range(limits::HEALTH_CHECK_TIMEOUT)),
    opt("IntervalTime", range(limits::HEALTH_CHECK_INTERVAL)),
    opt("HealthNum", range(limits::HEALTH_CHECK_PROBES)),
    opt("UnHealthNum", range(limits::HEALTH_CHECK_PROBES)),
    opt("HttpCode", range(limits::HEALTH_CHECK_HTTP_CODE)),
    opt("HttpCheckPath", STR),
    opt("HttpCheckDomain", STR),
    opt("HttpCheckMethod", STR),
    opt("CheckPort", INT),
    opt("ContextType", STR),
    opt("SendContext", STR),
    opt("RecvContext", STR),
    opt("CheckType", STR),
    opt("HttpVersion", STR),
    opt("SourceIpType", Ty::IntIn(0, 1)),
    opt("ExtendedCode", STR),
];

pub const CERTIFICATE: &[Field] = &[
    opt("SSLMode", STR),
    opt("SSLVerifyClient", STR),
    opt("CertId", STR),
    opt("CertCaId", STR),
    opt("CertName", STR),
    opt("CertKey", STR),
    opt("CertContent", STR),
    opt("CertCaName", STR),
    opt("CertCaContent", STR),
];

pub const FILTER: &[Field] = &[
    req("Name", STR),
    req("Values", Ty::Array(&STR, Some(limits::FILTER_VALUES))),
];
pub const TAG_INFO: &[Field] = &[req("TagKey", STR), req("TagValue", STR)];
pub const INTERNET_ACCESSIBLE: &[Field] = &[
    opt("InternetChargeType", STR),
    opt("InternetMaxBandwidthOut", INT),
    opt("BandwidthpkgSubType", STR),
];

pub const TARGET: &[Field] = &[
    req("Port", PORT),
    opt("Type", STR),
    opt("InstanceId", STR),
    opt("Weight", WEIGHT),
    opt("EniIp", STR),
    opt("Tag", STR),
];

pub const BATCH_TARGET: &[Field] = &[
    req("ListenerId", STR),
    req("Port", PORT),
    opt("InstanceId", STR),
    opt("EniIp", STR),
    opt("Weight", WEIGHT),
    opt("LocationId", STR),
    opt("Tag", STR),
];

const TARGET_OBJ: Ty = Ty::Object(TARGET);

pub const RS_WEIGHT_RULE: &[Field] = &[
    req("ListenerId", STR),
    req(
        "Targets",
        Ty::Array(&TARGET_OBJ, Some(limits::WEIGHT_TARGETS_PER_RULE)),
    ),
    opt("LocationId", STR),
    opt("Domain", STR),
    opt("Url", STR),
    opt("Weight", WEIGHT),
];

pub const RULE_INPUT: &[Field] = &[
    req("Url", STR),
    opt("Domain", STR),
    opt("Domains", STRS),
    opt("SessionExpireTime", INT),
    opt("HealthCheck", Ty::Object(HEALTH_CHECK)),
    opt("Certificate", Ty::Object(CERTIFICATE)),
    opt("MultiCertInfo", Ty::Any),
    opt("Scheduler", STR),
    opt("ForwardType", STR),
    opt("DefaultServer", BOOL),
    opt("Http2", BOOL),
    opt("TargetType", STR),
    opt("TrpcCallee", STR),
    opt("TrpcFunc", STR),
    opt("Quic", BOOL),
    opt("CookieName", STR),
    opt("OAuth", Ty::Any),
];

const LISTENER_COMMON_OPTIONAL: [Field; 20] = [
    opt("HealthCheck", Ty::Object(HEALTH_CHECK)),
    opt("Certificate", Ty::Object(CERTIFICATE)),
    opt("SessionExpireTime", INT),
    opt("Scheduler", STR),
    opt("SniSwitch", Ty::IntIn(0, 1)),
    opt("TargetType", STR),
    opt("SessionType", STR),
    opt("KeepaliveEnable", Ty::IntIn(0, 1)),
    opt("DeregisterTargetRst", BOOL),
    opt("MultiCertInfo", Ty::Any),
    opt("MaxConn", INT),
    opt("MaxCps", INT),
    opt("IdleConnectTimeout", INT),
    opt("SnatEnable", BOOL),
    opt("ProxyProtocol", BOOL),
    opt("DataCompressMode", STR),
    opt("RescheduleTargetZeroWeight", BOOL),
    opt("RescheduleUnhealthy", BOOL),
    opt("RescheduleExpandTarget", BOOL),
    opt("RescheduleStartTime", INT),
];

const fn concat<const A: usize, const B: usize, const C: usize>(
    a: [Field; A],
    b: [Field; B],
) -> [Field; C] {
    let mut out = [opt("", Ty::Any); C];
    let mut i = 0;
    while i < A {
        out[i] = a[i];
        i += 1;
    }
    let mut j = 0;
    while j < B {
        out[A + j] = b[j];
        j += 1;
    }
    out
}

const TAG_OBJ: Ty = Ty::Object(TAG_INFO);
const FILTER_OBJ: Ty = Ty::Object(FILTER);
const BATCH_TARGET_OBJ: Ty = Ty::Object(BATCH_TARGET);
const RS_WEIGHT_RULE_OBJ: Ty = Ty::Object(RS_WEIGHT_RULE);
const RULE_INPUT_OBJ: Ty = Ty::Object(RULE_INPUT);
const PORT_TY: Ty = PORT;

pub const DESCRIBE_LOAD_BALANCERS: &[Field] = &[
    opt(
        "LoadBalancerIds",
        Ty::Array(&STR, Some(limits::DESCRIBE_LOAD_BALANCER_IDS)),
    ),
    opt("LoadBalancerType", STR),
    opt("Forward", INT),
    opt("LoadBalancerName", STR),
    opt("Domain", STR),
    opt("LoadBalancerVips", STRS),
    opt("BackendPublicIps", STRS),
    opt("BackendPrivateIps", STRS),
    opt("Offset", Ty::IntIn(0, i64::MAX)),
    opt("Limit", Ty::IntIn(0, limits::DESCRIBE_LOAD_BALANCERS_PAGE)),
    opt("OrderBy", STR),
    opt("OrderType", Ty::IntIn(0, 1)),
    opt("SearchKey", STR),
    opt("ProjectId", INT),
    opt("WithRs", INT),
    opt("VpcId", STR),
    opt("SecurityGroup", STR),
    opt("MasterZone", STR),
    opt("Filters", Ty::Array(&FILTER_OBJ, Some(limits::FILTERS))),
    opt("AdditionalFields", STRS),
];

pub const CREATE_LOAD_BALANCER: &[Field] = &[
    req("LoadBalancerType", STR),
    opt("Forward", INT),
    opt("LoadBalancerName", STR),
    opt("VpcId", STR),
    opt("SubnetId", STR),
    opt("ProjectId", INT),
    opt("AddressIPVersion", STR),
    opt("Number", Ty::IntIn(1, limits::CREATE_LOAD_BALANCER_NUMBER)),
    opt("MasterZoneId", STR),
    opt("ZoneId", STR),
    opt("SlaveZoneId", STR),
    opt("InternetAccessible", Ty::Object(INTERNET_ACCESSIBLE)),
    opt("VipIsp", STR),
    opt("Tags", Ty::Array(&TAG_OBJ, Some(limits::TAGS))),
    opt("Vip", STR),
    opt("BandwidthPackageId", STR),
    opt("ExclusiveCluster", Ty::Any),
    opt("SlaType", STR),
    opt("ClusterIds", STRS),
    opt("ClientToken", STR),
    opt("SnatPro", BOOL),
    opt("SnatIps", Ty::Any),
    opt("ClusterTag", STR),
    opt("EipAddressId", STR),
    opt("LoadBalancerPassToTarget", BOOL),
    opt("DynamicVip", BOOL),
    opt("Egress", STR),
    opt("LBChargePrepaid", Ty::Any),
    opt("LBChargeType", STR),
    opt("AccessLogTopicId", STR),
    opt("AdvancedRoute", BOOL),
    opt("AvailableZoneAffinityInfo", Ty::Any),
];

pub const DELETE_LOAD_BALANCER: &[Field] = &[
    req(
        "LoadBalancerIds",
        Ty::Array(&STR, Some(limits::DELETE_LOAD_BALANCER_IDS)),
    ),
    opt("ForceDelete", BOOL),
];

pub const DESCRIBE_QUOTA: &[Field] = &[];

const CREATE_LISTENER_OWN: [Field; 10] = [
    req("LoadBalancerId", STR),
    // The per-call maximum is a runtime limit (createListenerMaxPorts), checked by the server.
    req("Ports", Ty::Array(&PORT_TY, None)),
    req("Protocol", STR),
    opt("ListenerNames", STRS),
    opt("EndPort", Ty::IntIn(0, limits::PORT_MAX)),
    opt("FullEndPorts", Ty::Array(&PORT_TY, None)),
    opt("H2cSwitch", BOOL),
    opt("SslCloseSwitch", BOOL),
    opt("RescheduleInterval", INT),
    opt("ListenerName", STR),
];
const CREATE_LISTENER_ARR: [Field; 30] = concat(CREATE_LISTENER_OWN, LISTENER_COMMON_OPTIONAL);
pub const CREATE_LISTENER: &[Field] = &CREATE_LISTENER_ARR;

const MODIFY_LISTENER_OWN: [Field; 4] = [
    req("LoadBalancerId", STR),
    req("ListenerId", STR),
    opt("ListenerName", STR),
    opt("RescheduleInterval", INT),
];
const MODIFY_LISTENER_ARR: [Field; 24] = concat(MODIFY_LISTENER_OWN, LISTENER_COMMON_OPTIONAL);
pub const MODIFY_LISTENER: &[Field] = &MODIFY_LISTENER_ARR;

pub const DESCRIBE_LISTENERS: &[Field] = &[
    req("LoadBalancerId", STR),
    opt(
        "ListenerIds",
        Ty::Array(&STR, Some(limits::DESCRIBE_LISTENER_IDS)),
    ),
    opt("Protocol", STR),
    opt("Port", PORT),
];

pub const DELETE_LISTENER: &[Field] = &[req("LoadBalancerId", STR), req("ListenerId", STR)];

pub const DELETE_LOAD_BALANCER_LISTENERS: &[Field] = &[
    req("LoadBalancerId", STR),
    opt(
        "ListenerIds",
        Ty::Array(&STR, Some(limits::DELETE_LISTENER_IDS)),
    ),
];

pub const CREATE_RULE: &[Field] = &[
    req("LoadBalancerId", STR),
    req("ListenerId", STR),
    req("Rules", Ty::Array(&RULE_INPUT_OBJ, None)),
];

pub const DELETE_RULE: &[Field] = &[
    req("LoadBalancerId", STR),
    req("ListenerId", STR),
    opt("LocationIds", STRS),
    opt("Domain", STR),
    opt("Url", STR),
    opt("NewDefaultServerDomain", STR),
];

pub const MODIFY_RULE: &[Field] = &[
    req("LoadBalancerId", STR),
    req("ListenerId", STR),
    req("LocationId", STR),
    opt("Url", STR),
    opt("HealthCheck", Ty::Object(HEALTH_CHECK)),
    opt("Scheduler", STR),
    opt("SessionExpireTime", INT),
    opt("ForwardType", STR),
    opt("TrpcCallee", STR),
    opt("TrpcFunc", STR),
    opt("OAuth", Ty::Any),
    opt("CookieName", STR),
];

pub const MODIFY_DOMAIN_ATTRIBUTES: &[Field] = &[
    req("LoadBalancerId", STR),
    req("ListenerId", STR),
    req("Domain", STR),
    opt("NewDomain", STR),
    opt("Certificate", Ty::Object(CERTIFICATE)),
    opt("Http2", BOOL),
    opt("DefaultServer", BOOL),
    opt("Quic", BOOL),
    opt("NewDefaultServerDomain", STR),
    opt("NewDomains", STRS),
    opt("MultiCertInfo", Ty::Any),
];

pub const REGISTER_TARGETS: &[Field] = &[
    req("LoadBalancerId", STR),
    req("ListenerId", STR),
    req(
        "Targets",
        Ty::Array(&TARGET_OBJ, Some(limits::TARGETS_PER_CALL)),
    ),
    opt("LocationId", STR),
    opt("Domain", STR),
    opt("Url", STR),
];

pub const MODIFY_TARGET_WEIGHT: &[Field] = &[
    req("LoadBalancerId", STR),
    req("ListenerId", STR),
    req(
        "Targets",
        Ty::Array(&TARGET_OBJ, Some(limits::TARGETS_PER_CALL)),
    ),
    opt("LocationId", STR),
    opt("Domain", STR),
    opt("Url", STR),
    opt("Weight", WEIGHT),
];

pub const BATCH_TARGETS: &[Field] = &[
    req("LoadBalancerId", STR),
    req(
        "Targets",
        Ty::Array(&BATCH_TARGET_OBJ, Some(limits::BATCH_TARGETS)),
    ),
];

pub const BATCH_MODIFY_TARGET_WEIGHT: &[Field] = &[
    req("LoadBalancerId", STR),
    req(
        "ModifyList",
        Ty::Array(&RS_WEIGHT_RULE_OBJ, Some(limits::WEIGHT_RULES)),
    ),
];

pub const DESCRIBE_TARGETS: &[Field] = &[
    req("LoadBalancerId", STR),
    opt(
        "ListenerIds",
        Ty::Array(&STR, Some(limits::DESCRIBE_TARGETS_LISTENER_IDS)),
    ),
    opt("Protocol", STR),
    opt("Port", PORT),
    opt("Filters", Ty::Array(&FILTER_OBJ, Some(limits::FILTERS))),
];

pub const DESCRIBE_TARGET_HEALTH: &[Field] = &[
    req(
        "LoadBalancerIds",
        Ty::Array(&STR, Some(limits::DESCRIBE_TARGET_HEALTH_LB_IDS)),
    ),
    opt("ListenerIds", STRS),
    opt("LocationIds", STRS),
];

pub const DESCRIBE_TASK_STATUS: &[Field] = &[opt("TaskId", STR), opt("DealName", STR)];

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}.{name}")
    }
}

fn type_error(path: &str, expected: &str) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidParameter,
        format!("The value type of parameter `{path}` is not valid, expected {expected}."),
    )
}

/// Validates a JSON request body against `fields`: unknown -> `UnknownParameter`, missing ->
/// `MissingParameter`, wrong type -> `InvalidParameter`, out of range / too long -> `InvalidParameterValue.*`.
/// JSON `null` counts as absent, as the SDKs never send it on purpose.
pub fn validate(fields: &[Field], input: &Value) -> Result<Value, ApiError> {
    validate_object(fields, input, "")
}

fn validate_object(fields: &[Field], input: &Value, path: &str) -> Result<Value, ApiError> {
    let obj = input.as_object().ok_or_else(|| {
        if path.is_empty() {
            ApiError::new(
                ErrorCode::InvalidParameterFormatError,
                "The request body is not a JSON object.",
            )
        } else {
            type_error(path, "an object")
        }
    })?;
    let mut out = Map::new();
    for (k, v) in obj {
        let field = fields
            .iter()
            .find(|f| f.name == k)
            .ok_or_else(|| ApiError::unknown_parameter(&join(path, k)))?;
        if v.is_null() {
            continue;
        }
        out.insert(k.clone(), validate_value(&field.ty, v, &join(path, k))?);
    }
    for f in fields {
        if f.required && !out.contains_key(f.name) {
            return Err(ApiError::missing_parameter(&join(path, f.name)));
        }
    }
    Ok(Value::Object(out))
}

fn validate_value(ty: &Ty, v: &Value, path: &str) -> Result<Value, ApiError> {
    match ty {
        Ty::Str => v
            .as_str()
            .map(|_| v.clone())
            .ok_or_else(|| type_error(path, "a string")),
        Ty::Int => v
            .as_i64()
            .map(Value::from)
            .ok_or_else(|| type_error(path, "an integer")),
        Ty::IntIn(lo, hi) => {
            let n = v.as_i64().ok_or_else(|| type_error(path, "an integer"))?;
            if n < *lo || n > *hi {
                return Err(ApiError::new(
                    ErrorCode::InvalidParameterValueRange,
                    format!("The value of `{path}` ({n}) is out of range [{lo}, {hi}]."),
                ));
            }
            Ok(Value::from(n))
        }
        Ty::Bool => v
            .as_bool()
            .map(Value::from)
            .ok_or_else(|| type_error(path, "a boolean")),
        Ty::Array(elem, max) => {
            let arr = v.as_array().ok_or_else(|| type_error(path, "an array"))?;
            if let Some(max) = max
                && arr.len() > *max
            {
                return Err(length_error(path, *max));
            }
            arr.iter()
                .enumerate()
                .map(|(i, e)| validate_value(elem, e, &format!("{path}.{i}")))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Ty::Object(fields) => validate_object(fields, v, path),
        Ty::Any => Ok(v.clone()),
    }
}

/// `InvalidParameterValue.Length` in the observed wording (`Length of .Ports should be less than 50`).
pub fn length_error(path: &str, max: usize) -> ApiError {
    ApiError::new(
        ErrorCode::InvalidParameterValueLength,
        format!("Length of .{path} should be less than {}", max + 1),
    )
}
