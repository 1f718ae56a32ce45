//! Pure conversion from Listener CRs (`api::Listener`) to the sync engine's model (`sync::DesiredListener`,
//! `sync::DeletingListener`), and the load balancer a CR belongs to.
//!
//! The CRD schema already bounds ports, weights and protocols, so the errors here are what the schema cannot
//! express (an `endPort` below `port`) or objects written before the schema existed.

use std::fmt;

use crate::api::{
    self, IngressListenerAttribute, IngressListenerCertificate, LbPolicy, Listener,
    ListenerHealthCheck, ListenerTargetGroup, keys,
};
use crate::cloud::LbRef;
use crate::sync::{
    Attributes, Certificate, DeletingListener, DesiredListener, DesiredRule, HealthCheck,
    ListenerKey, OwnerRef, RuleKey, Scheduler, Target, TargetSet,
};

/// Why a Listener CR cannot be turned into a desired cloud listener; shown in its `status.msg`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingError(pub String);

impl fmt::Display for MappingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid listener: {}", self.0)
    }
}

impl std::error::Error for MappingError {}

fn invalid(msg: impl Into<String>) -> MappingError {
    MappingError(msg.into())
}

/// `namespace/name` of a Listener CR: the owner key the sync engine reports outcomes for.
pub fn owner_of(listener: &Listener) -> OwnerRef {
    let ns = listener.metadata.namespace.as_deref().unwrap_or_default();
    let name = listener.metadata.name.as_deref().unwrap_or_default();
    format!("{ns}/{name}")
}

/// The load balancer of a Listener CR. Region: the `region:lb-id` form of `spec.loadbalancerID`, else the
/// `ingress.bkbcs.tencent.com/lbregion` label, else `default_region`.
pub fn lb_of(listener: &Listener, default_region: &str) -> Result<LbRef, MappingError> {
    let raw = listener.spec.loadbalancer_id.trim();
    let label_region = listener
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(keys::LABEL_LB_REGION))
        .map(|r| r.trim())
        .filter(|r| !r.is_empty());
    let region = if raw.contains(':') {
        default_region
    } else {
        label_region.unwrap_or(default_region)
    };
    LbRef::parse(raw, region).map_err(|e| invalid(format!("loadbalancerID {raw:?}: {e}")))
}

/// The cloud identity (protocol, port[, endPort]) a Listener CR asks for.
pub fn key_of(spec: &api::ListenerSpec) -> Result<ListenerKey, MappingError> {
    let protocol = spec.protocol;
    let port = port_of(spec.port, "port")?;
    match spec.end_port.filter(|e| *e > 0) {
        None => Ok(ListenerKey::single(protocol, port)),
        Some(end) => {
            let end = port_of(end, "endPort")?;
            if end <= port {
                return Err(invalid(format!(
                    "endPort {end} must be greater than port {port}"
                )));
            }
            Ok(ListenerKey::range(protocol, port, end))
        }
    }
}

/// The desired cloud listener of a Listener CR that is not being deleted.
pub fn desired_listener(listener: &Listener) -> Result<DesiredListener, MappingError> {
    let spec = &listener.spec;
    let key = key_of(spec)?;
    let owner = owner_of(listener);
    let layer7 = key.protocol.is_l7();
    let attribute = spec.listener_attribute.as_ref();

    let mut desired = DesiredListener::new(owner, key);
    // The cloud listener is named after the CR, as bcs does; the name is informational (identity is the key).
    if let Some(name) = listener.metadata.name.as_deref() {
        desired.name = name.to_string();
    }
    desired.attributes = match (layer7, attribute) {
        (false, Some(a)) => Some(attributes_of(a)?),
        _ => None,
    };
    desired.certificate = spec.certificate.as_ref().and_then(certificate_of);
    desired.sni_switch = attribute.and_then(|a| a.sni_switch).unwrap_or(0) == 1;
    desired.keepalive = attribute.and_then(|a| a.keep_alive_enable).unwrap_or(0) == 1;
    desired.known_listener_id = known_listener_id(listener);

    if layer7 {
        if spec
            .target_group
            .as_ref()
            .is_some_and(|t| !t.backends.is_empty())
        {
            return Err(invalid(format!(
                "{} listeners take backends on rules, not in targetGroup",
                key.protocol
            )));
        }
        desired.rules = spec
            .rules
            .iter()
            .map(|rule| {
                Ok(DesiredRule {
                    key: RuleKey::new(
                        rule.domain.clone().unwrap_or_default(),
                        rule.path.clone().unwrap_or_else(|| "/".to_string()),
                    ),
                    attributes: rule
                        .listener_attribute
                        .as_ref()
                        .map(attributes_of)
                        .transpose()?,
                    certificate: rule.certificate.as_ref().and_then(certificate_of),
                    targets: targets_of(rule.target_group.as_ref())?,
                })
            })
            .collect::<Result<_, MappingError>>()?;
    } else {
        if !spec.rules.is_empty() {
            return Err(invalid(format!(
                "{} listeners take backends in targetGroup; rules are for HTTP/HTTPS",
                key.protocol
            )));
        }
        desired.targets = targets_of(spec.target_group.as_ref())?;
    }
    Ok(desired)
}

/// The deleting form of a Listener CR. Never fails: the plan deletes by `status.listenerID`, and a CR whose key
/// cannot be built (only possible for objects the schema would now reject) falls back to its single port.
pub fn deleting_listener(listener: &Listener) -> DeletingListener {
    let spec = &listener.spec;
    let key = key_of(spec).unwrap_or_else(|_| {
        ListenerKey::single(
            spec.protocol,
            u16::try_from(spec.port.clamp(1, 65535)).unwrap_or(1),
        )
    });
    DeletingListener {
        owner: owner_of(listener),
        key,
        known_listener_id: known_listener_id(listener),
        cloud_name: listener.metadata.name.clone(),
    }
}

/// True once the API server set `deletionTimestamp`.
pub fn is_deleting(listener: &Listener) -> bool {
    listener.metadata.deletion_timestamp.is_some()
}

/// True when the CR carries our finalizer (the controller still has cloud cleanup to do).
pub fn has_finalizer(listener: &Listener) -> bool {
    listener
        .metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|x| x == keys::FINALIZER_CONTROLLER))
}

fn known_listener_id(listener: &Listener) -> Option<String> {
    listener
        .status
        .as_ref()
        .and_then(|s| s.listener_id.as_deref())
        .map(str::trim)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
}

fn port_of(value: i32, field: &str) -> Result<u16, MappingError> {
    u16::try_from(value)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| invalid(format!("{field} {value} is not in 1-65535")))
}

fn non_negative(value: i32, field: &str) -> Result<u32, MappingError> {
    u32::try_from(value).map_err(|_| invalid(format!("{field} {value} is negative")))
}

fn targets_of(group: Option<&ListenerTargetGroup>) -> Result<TargetSet, MappingError> {
    let Some(group) = group else {
        return Ok(TargetSet::new());
    };
    group
        .backends
        .iter()
        .map(|b| {
            let port = port_of(b.port, "backend port")?;
            let weight = u16::try_from(b.weight)
                .ok()
                .filter(|w| *w <= 100)
                .ok_or_else(|| invalid(format!("backend weight {} is not in 0-100", b.weight)))?;
            if b.ip.trim().is_empty() {
                return Err(invalid("backend without IP"));
            }
            Ok(Target::new(b.ip.trim(), port, weight))
        })
        .collect()
}

fn attributes_of(a: &IngressListenerAttribute) -> Result<Attributes, MappingError> {
    Ok(Attributes {
        session_expire_time: non_negative(a.session_time.unwrap_or(0), "sessionTime")?,
        scheduler: a.lb_policy.map(|p| match p {
            LbPolicy::Wrr => Scheduler::Wrr,
            LbPolicy::LeastConn => Scheduler::LeastConn,
            LbPolicy::IpHash => Scheduler::IpHash,
        }),
        health_check: a.health_check.as_ref().map(health_check_of).transpose()?,
    })
}

/// A health check without `enabled` is off, as a Go `bool` zero value is in bcs.
fn health_check_of(h: &ListenerHealthCheck) -> Result<HealthCheck, MappingError> {
    let opt = |v: Option<i32>, field: &str| v.map(|v| non_negative(v, field)).transpose();
    Ok(HealthCheck {
        enabled: h.enabled.unwrap_or(false),
        timeout: opt(h.timeout, "healthCheck.timeout")?,
        interval: opt(h.interval_time, "healthCheck.intervalTime")?,
        healthy_threshold: opt(h.health_num, "healthCheck.healthNum")?,
        unhealthy_threshold: opt(h.un_health_num, "healthCheck.unHealthNum")?,
        http_code: opt(h.http_code, "healthCheck.httpCode")?,
        http_check_path: h.http_check_path.clone().filter(|p| !p.is_empty()),
        http_check_method: h.http_check_method.clone().filter(|m| !m.is_empty()),
    })
}

/// A certificate without `certID` is no certificate (bcs sends none either).
fn certificate_of(c: &IngressListenerCertificate) -> Option<Certificate> {
    let cert_id = c
        .cert_id
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())?;
    Some(Certificate {
        mode: match c.mode {
            Some(api::CertificateMode::Mutual) => "MUTUAL".to_string(),
            _ => "UNIDIRECTIONAL".to_string(),
        },
        cert_id: cert_id.to_string(),
        ca_cert_id: c
            .cert_ca_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string),
    })
}
