//! Domain types of the sync engine: what a Listener CR asks for, and what the cloud holds.
//!
//! These are our own types, independent of the CRD structs and of the wire model, so the
//! planner can be tested alone; a thin executor maps CRDs in and client calls out.

use std::collections::BTreeMap;
use std::fmt;

/// `namespace/name` of the Listener CR a desired (or deleting) listener comes from.
pub type OwnerRef = String;

/// A CLB listener protocol and its port-space class: the API's own rules, shared with fake-clb.
pub use clb_api::protocol::{PortClass, Protocol};

/// Cloud identity of a listener on one load balancer: (protocol, port[, endPort]), as in bcs.
/// The name is not part of the identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerKey {
    /// Listener protocol.
    pub protocol: Protocol,
    /// (First) port.
    pub port: u16,
    /// Last port of a port-range (segment) listener, inclusive; `None` for a single port.
    pub end_port: Option<u16>,
}

impl ListenerKey {
    /// A single-port listener key.
    pub fn single(protocol: Protocol, port: u16) -> Self {
        ListenerKey {
            protocol,
            port,
            end_port: None,
        }
    }

    /// A port-range listener key occupying `[port, end_port]`.
    pub fn range(protocol: Protocol, port: u16, end_port: u16) -> Self {
        ListenerKey {
            protocol,
            port,
            end_port: Some(end_port),
        }
    }

    /// Last port occupied (inclusive).
    pub fn last_port(&self) -> u16 {
        self.end_port.unwrap_or(self.port).max(self.port)
    }

    /// Whether both listeners could not exist together on one load balancer.
    pub fn overlaps(&self, other: &ListenerKey) -> bool {
        self.protocol.port_class() == other.protocol.port_class()
            && self.port <= other.last_port()
            && other.port <= self.last_port()
    }
}

impl fmt::Display for ListenerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.end_port {
            Some(end) => write!(f, "{}:{}-{}", self.protocol, self.port, end),
            None => write!(f, "{}:{}", self.protocol, self.port),
        }
    }
}

/// Load-balancing algorithm (`lbPolicy` in the CRD, `Scheduler` in the API).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scheduler {
    /// Weighted round robin (the cloud default).
    Wrr,
    /// Least connections.
    LeastConn,
    /// Source IP hash (L7 rules).
    IpHash,
}

/// Health-check settings. Optional fields mean "no opinion": the planner only compares fields
/// the desired side sets (bcs `needUpdateAttribute`), but it always compares `enabled`, so
/// switching health checks off converges (bcs compared only non-zero fields and never did).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HealthCheck {
    /// `HealthSwitch`.
    pub enabled: bool,
    /// `TimeOut`, seconds.
    pub timeout: Option<u32>,
    /// `IntervalTime`, seconds.
    pub interval: Option<u32>,
    /// `HealthNum`.
    pub healthy_threshold: Option<u32>,
    /// `UnHealthNum`.
    pub unhealthy_threshold: Option<u32>,
    /// `HttpCode` bitmask.
    pub http_code: Option<u32>,
    /// `HttpCheckPath`.
    pub http_check_path: Option<String>,
    /// `HttpCheckMethod`.
    pub http_check_method: Option<String>,
}

impl HealthCheck {
    /// Whether `cloud` (absent = no health check) already satisfies this desired setting.
    pub fn satisfied_by(&self, cloud: Option<&HealthCheck>) -> bool {
        let cloud_enabled = cloud.is_some_and(|c| c.enabled);
        if self.enabled != cloud_enabled {
            return false;
        }
        let Some(cloud) = cloud else {
            return true;
        };
        if !self.enabled {
            return true;
        }
        fn same<T: PartialEq>(want: &Option<T>, have: &Option<T>) -> bool {
            want.is_none() || want == have
        }
        same(&self.timeout, &cloud.timeout)
            && same(&self.interval, &cloud.interval)
            && same(&self.healthy_threshold, &cloud.healthy_threshold)
            && same(&self.unhealthy_threshold, &cloud.unhealthy_threshold)
            && same(&self.http_code, &cloud.http_code)
            && same(&self.http_check_path, &cloud.http_check_path)
            && same(&self.http_check_method, &cloud.http_check_method)
    }

    /// The settings the cloud holds after a create/modify that sends `self` over `base`
    /// (the API merges the fields that are sent).
    pub fn merged_over(&self, base: Option<&HealthCheck>) -> HealthCheck {
        let mut out = base.cloned().unwrap_or_default();
        out.enabled = self.enabled;
        fn put<T: Clone>(dst: &mut Option<T>, src: &Option<T>) {
            if src.is_some() {
                dst.clone_from(src);
            }
        }
        put(&mut out.timeout, &self.timeout);
        put(&mut out.interval, &self.interval);
        put(&mut out.healthy_threshold, &self.healthy_threshold);
        put(&mut out.unhealthy_threshold, &self.unhealthy_threshold);
        put(&mut out.http_code, &self.http_code);
        put(&mut out.http_check_path, &self.http_check_path);
        put(&mut out.http_check_method, &self.http_check_method);
        out
    }
}

/// Session persistence, scheduler and health check of an L4 listener or of an L7 rule.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Attributes {
    /// `SessionExpireTime` in seconds, 0 = off. Always compared (as bcs does).
    pub session_expire_time: u32,
    /// `Scheduler`; `None` = no opinion (desired) or not reported (cloud).
    pub scheduler: Option<Scheduler>,
    /// Health check; `None` = no opinion (desired) or none configured (cloud).
    pub health_check: Option<HealthCheck>,
}

/// The fields of `desired` that `cloud` does not satisfy, as a minimal change set.
pub fn attribute_changes(desired: &Attributes, cloud: &Attributes) -> AttributeChanges {
    AttributeChanges {
        session_expire_time: (desired.session_expire_time != cloud.session_expire_time)
            .then_some(desired.session_expire_time),
        scheduler: desired.scheduler.filter(|s| cloud.scheduler != Some(*s)),
        health_check: desired
            .health_check
            .as_ref()
            .filter(|h| !h.satisfied_by(cloud.health_check.as_ref()))
            .cloned(),
    }
}

/// Only the attribute fields that must change (each `None` = leave as is).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeChanges {
    /// New `SessionExpireTime`.
    pub session_expire_time: Option<u32>,
    /// New `Scheduler`.
    pub scheduler: Option<Scheduler>,
    /// Health-check fields to send (merged by the cloud).
    pub health_check: Option<HealthCheck>,
}

impl AttributeChanges {
    /// True when nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.session_expire_time.is_none()
            && self.scheduler.is_none()
            && self.health_check.is_none()
    }

    /// Applies the changes to cloud-side attributes (used by the simulator).
    pub fn apply_to(&self, cloud: &mut Attributes) {
        if let Some(s) = self.session_expire_time {
            cloud.session_expire_time = s;
        }
        if let Some(s) = self.scheduler {
            cloud.scheduler = Some(s);
        }
        if let Some(h) = &self.health_check {
            cloud.health_check = Some(h.merged_over(cloud.health_check.as_ref()));
        }
    }
}

/// A certificate reference (`SSLMode`, `CertId`, `CertCaId`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Certificate {
    /// `UNIDIRECTIONAL` or `MUTUAL`.
    pub mode: String,
    /// Server certificate id.
    pub cert_id: String,
    /// CA certificate id (mutual TLS).
    pub ca_cert_id: Option<String>,
}

/// A backend address: private IP (`EniIp`) and port. Targets are keyed by this, as in bcs (`ip:port`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// Private IP.
    pub ip: String,
    /// Backend port.
    pub port: u16,
}

/// A backend with its weight (0–100).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// Private IP.
    pub ip: String,
    /// Backend port.
    pub port: u16,
    /// Weight 0–100.
    pub weight: u16,
}

impl Target {
    /// A target.
    pub fn new(ip: impl Into<String>, port: u16, weight: u16) -> Self {
        Target {
            ip: ip.into(),
            port,
            weight,
        }
    }
}

/// Targets keyed by endpoint, so one endpoint cannot appear twice with different weights.
/// Built from targets, a later duplicate endpoint replaces an earlier one.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TargetSet(BTreeMap<Endpoint, u16>);

impl TargetSet {
    /// No targets.
    pub fn new() -> Self {
        TargetSet::default()
    }

    /// Adds or replaces a target.
    pub fn insert(&mut self, target: Target) {
        self.0.insert(
            Endpoint {
                ip: target.ip,
                port: target.port,
            },
            target.weight,
        );
    }

    /// Removes an endpoint, returning its weight.
    pub fn remove(&mut self, endpoint: &Endpoint) -> Option<u16> {
        self.0.remove(endpoint)
    }

    /// Weight of an endpoint, if bound.
    pub fn weight(&self, endpoint: &Endpoint) -> Option<u16> {
        self.0.get(endpoint).copied()
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no targets.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Targets in endpoint order.
    pub fn iter(&self) -> impl Iterator<Item = Target> + '_ {
        self.0.iter().map(|(e, w)| Target {
            ip: e.ip.clone(),
            port: e.port,
            weight: *w,
        })
    }
}

impl FromIterator<Target> for TargetSet {
    fn from_iter<I: IntoIterator<Item = Target>>(iter: I) -> Self {
        let mut set = TargetSet::new();
        for t in iter {
            set.insert(t);
        }
        set
    }
}

/// Identity of an L7 rule inside its listener.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuleKey {
    /// Host name.
    pub domain: String,
    /// Path.
    pub url: String,
}

impl RuleKey {
    /// A rule key.
    pub fn new(domain: impl Into<String>, url: impl Into<String>) -> Self {
        RuleKey {
            domain: domain.into(),
            url: url.into(),
        }
    }
}

impl fmt::Display for RuleKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.domain, self.url)
    }
}

/// An L7 forwarding rule as the Listener CR asks for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredRule {
    /// Domain and path.
    pub key: RuleKey,
    /// Rule attributes; `None` = leave as the cloud has them.
    pub attributes: Option<Attributes>,
    /// Per-domain certificate, used only when the HTTPS listener has SNI on.
    pub certificate: Option<Certificate>,
    /// Backends of this rule.
    pub targets: TargetSet,
}

/// One Listener CR's desired cloud listener on the load balancer being planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredListener {
    /// The Listener CR (`ns/name`).
    pub owner: OwnerRef,
    /// Cloud identity.
    pub key: ListenerKey,
    /// Cloud listener name, written at creation only (identity is the key).
    pub name: String,
    /// L4 listener attributes; `None` = leave as the cloud has them. Ignored for L7.
    pub attributes: Option<Attributes>,
    /// Listener certificate (TCP_SSL, QUIC, HTTPS without SNI); `None` = no opinion.
    pub certificate: Option<Certificate>,
    /// HTTPS SNI switch (certificates per domain instead of per listener).
    pub sni_switch: bool,
    /// HTTP/HTTPS keep-alive.
    pub keepalive: bool,
    /// L4 backends (must be empty for L7).
    pub targets: TargetSet,
    /// L7 rules (must be empty for L4).
    pub rules: Vec<DesiredRule>,
    /// `status.listenerID` of the CR, if it has one.
    pub known_listener_id: Option<String>,
}

impl DesiredListener {
    /// An L4 or L7 listener with no attributes, targets or rules.
    pub fn new(owner: impl Into<String>, key: ListenerKey) -> Self {
        let owner = owner.into();
        DesiredListener {
            name: owner.replace('/', "-"),
            owner,
            key,
            attributes: None,
            certificate: None,
            sni_switch: false,
            keepalive: false,
            targets: TargetSet::new(),
            rules: Vec::new(),
            known_listener_id: None,
        }
    }
}

/// A Listener CR being deleted: its cloud listener (if it ever got an id) must go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletingListener {
    /// The Listener CR (`ns/name`).
    pub owner: OwnerRef,
    /// The key it had.
    pub key: ListenerKey,
    /// `status.listenerID`.
    pub known_listener_id: Option<String>,
    /// The cloud listener name this CR gave its listener at creation. Without a known id, the plan
    /// deletes the cloud listener at exactly `key` only when it carries this name: that covers a CR
    /// deleted while its create was in flight (the id never reached its status).
    pub cloud_name: Option<String>,
}

/// An L7 rule as read back from DescribeListeners/DescribeTargets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudRule {
    /// `LocationId`.
    pub location_id: String,
    /// Domain and path.
    pub key: RuleKey,
    /// Rule attributes.
    pub attributes: Attributes,
    /// Domain certificate (SNI).
    pub certificate: Option<Certificate>,
    /// Bound backends.
    pub targets: TargetSet,
}

/// A listener as read back from DescribeListeners + DescribeTargets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudListener {
    /// `ListenerId`.
    pub id: String,
    /// Protocol, port, end port.
    pub key: ListenerKey,
    /// `ListenerName`.
    pub name: String,
    /// L4 attributes (L7 listeners carry theirs on rules).
    pub attributes: Attributes,
    /// Listener certificate.
    pub certificate: Option<Certificate>,
    /// `SniSwitch`.
    pub sni_switch: bool,
    /// `KeepaliveEnable`.
    pub keepalive: bool,
    /// L4 backends.
    pub targets: TargetSet,
    /// L7 rules.
    pub rules: Vec<CloudRule>,
}
