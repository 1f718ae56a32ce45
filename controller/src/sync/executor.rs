//! The I/O edge of the sync engine: reads a load balancer into [`CloudListener`]s and runs a
//! [`Plan`] against the CLB API, turning each step's result into per-Listener-CR outcomes.
//!
//! Steps run in plan order. A step that refers to a listener or rule whose create failed is
//! skipped (its owners already carry the create's error); a batched target call drops only the
//! targets it cannot resolve and still binds the rest, so one bad listener does not hold up the
//! others. "LB not found" on a delete means the listener is gone; `PortCheckFailed` on a create
//! asks the worker for an immediate re-read, where the planner adopts our listener by key or
//! blocks the CR on a foreign one.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use clb_api::error::ErrorCode;
use clb_api::model as api;
use tracing::{debug, warn};

use super::model::{
    Attributes, Certificate, CloudListener, CloudRule, DeletingListener, DesiredListener,
    HealthCheck, ListenerKey, OwnerRef, Protocol, RuleKey, Scheduler, Target, TargetSet,
};
use super::plan::{
    BoundTarget, Call, ListenerChanges, ListenerRef, ListenerSpec, NewRule, Plan, RuleRef, Step,
    WeightChange,
};
use crate::cloud::{ClbClient, CloudError, LbRef, ListenerAttributes, NewListener};

/// What became of one Listener CR in a sync pass; the reconciler writes it to the CR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Every call for the CR succeeded: `status.listenerID` = `listener_id`, status Synced.
    Synced {
        /// The cloud listener's id.
        listener_id: String,
    },
    /// Something failed or the CR is blocked: status NotSynced with `message` (and an event).
    NotSynced {
        /// The cloud error code, when the cloud answered with one.
        code: Option<String>,
        /// For a human: the failed action, the cloud's code and text, the RequestId.
        message: String,
    },
    /// The CR was being deleted and its cloud listener is gone: remove the finalizer.
    Deleted,
}

impl Outcome {
    fn failed(failure: &Failure) -> Self {
        Outcome::NotSynced {
            code: failure.code.clone(),
            message: failure.message.clone(),
        }
    }

    /// True for [`Outcome::NotSynced`].
    pub fn is_failure(&self) -> bool {
        matches!(self, Outcome::NotSynced { .. })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Synced { listener_id } => write!(f, "Synced ({listener_id})"),
            Outcome::NotSynced { message, .. } => write!(f, "NotSynced: {message}"),
            Outcome::Deleted => f.write_str("Deleted"),
        }
    }
}

/// The first error seen for an owner in a pass (later ones are usually consequences of it).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Failure {
    code: Option<String>,
    message: String,
}

impl Failure {
    fn cloud(error: &CloudError) -> Self {
        Failure {
            code: error.code().map(|c| c.as_str().to_string()),
            message: error.to_string(),
        }
    }

    fn local(message: String) -> Self {
        Failure {
            code: None,
            message,
        }
    }
}

/// The result of running one plan (or of a pass that could not read the cloud).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionReport {
    /// Per Listener CR named by the plan (desired, blocked, and deleting CRs a step served).
    pub outcomes: BTreeMap<OwnerRef, Outcome>,
    /// Owners whose create failed with `PortCheckFailed`: re-read and re-plan at once.
    pub reread: BTreeSet<OwnerRef>,
    /// Calls made (steps sent to the cloud).
    pub calls_made: usize,
    /// Steps that failed.
    pub calls_failed: usize,
    /// Steps (or parts of batched target steps) skipped because what they refer to was not created.
    pub calls_skipped: usize,
    /// A delete or deregister call found the load balancer gone (counted as done for that call): the pass
    /// planned against a load balancer that no longer exists.
    pub lb_missing: bool,
}

impl ExecutionReport {
    /// Deleting CRs that no step named (no known id, or the listener is already gone) are done.
    pub fn complete_deleting(&mut self, deleting: &[DeletingListener]) {
        for d in deleting {
            self.outcomes
                .entry(d.owner.clone())
                .or_insert(Outcome::Deleted);
        }
    }

    /// The report of a pass that could not read the load balancer. If the LB does not exist,
    /// deleting CRs are done (nothing left to delete) and desired ones say so; otherwise
    /// every CR is NotSynced with the read error.
    pub fn read_failed(
        lb: &LbRef,
        desired: &[DesiredListener],
        deleting: &[DeletingListener],
        error: &CloudError,
    ) -> Self {
        let mut report = ExecutionReport::default();
        let lb_gone = error.is_lb_not_found();
        let failure = if lb_gone {
            Failure {
                code: error.code().map(|c| c.as_str().to_string()),
                message: format!("load balancer {lb} does not exist: {error}"),
            }
        } else {
            Failure {
                code: error.code().map(|c| c.as_str().to_string()),
                message: format!("reading load balancer {lb}: {error}"),
            }
        };
        for d in desired {
            report
                .outcomes
                .insert(d.owner.clone(), Outcome::failed(&failure));
        }
        for d in deleting {
            let outcome = if lb_gone {
                Outcome::Deleted
            } else {
                Outcome::failed(&failure)
            };
            report.outcomes.insert(d.owner.clone(), outcome);
        }
        report
    }

    /// Every CR of the pass NotSynced with `message` (the pass ran out of time).
    pub fn all_failed(
        desired: &[DesiredListener],
        deleting: &[DeletingListener],
        message: &str,
    ) -> Self {
        let failure = Failure::local(message.to_string());
        let owners = desired
            .iter()
            .map(|d| &d.owner)
            .chain(deleting.iter().map(|d| &d.owner));
        ExecutionReport {
            outcomes: owners
                .map(|o| (o.clone(), Outcome::failed(&failure)))
                .collect(),
            ..ExecutionReport::default()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Reading the cloud
// ---------------------------------------------------------------------------------------------

/// Every listener of `lb` with its targets: one DescribeListeners, DescribeTargets in chunks of 20.
///
/// Listeners with a protocol or port this engine cannot represent are left out (with a warning);
/// targets without a private IP (CVM instances bound by hand) are ignored, as bcs does.
pub async fn read_cloud(client: &ClbClient, lb: &LbRef) -> Result<Vec<CloudListener>, CloudError> {
    let mut known = TargetCache::default();
    read_cloud_cached(client, lb, &mut known).await
}

/// What a pass may reuse from the previous one instead of reading it again: the bound targets
/// (`DescribeTargets` answers) of listeners the previous pass did not touch, by listener id, and the listener
/// list itself (`DescribeListeners`) when the previous pass only changed targets. Only the sync worker fills it.
#[derive(Debug, Clone, Default)]
pub struct TargetCache {
    backends: HashMap<String, api::ListenerBackend>,
    listeners: Option<Vec<api::Listener>>,
}

impl TargetCache {
    /// Listeners whose targets are cached.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// Whether the next read may skip `DescribeListeners`.
    pub fn has_listeners(&self) -> bool {
        self.listeners.is_some()
    }

    /// Forgets everything: the next read is a full one.
    pub fn clear(&mut self) {
        self.backends.clear();
        self.listeners = None;
    }

    /// After a plan whose every call succeeded: the cached targets become what the calls made of them, so the
    /// next pass reads nothing for them (no cloud read on the per-pod path). A plan that does more than
    /// register, deregister or reweigh targets of existing listeners falls back to [`Self::forget_touched`].
    pub fn record(&mut self, plan: &Plan) {
        let recorded = plan
            .steps
            .iter()
            .all(|step| self.apply_target_call(&step.call));
        if !recorded {
            self.forget_touched(plan);
        }
    }

    /// Applies one successful target call to the cache; false when it cannot (not a target call, a
    /// listener or rule named by key, a listener not in the cache).
    fn apply_target_call(&mut self, call: &Call) -> bool {
        match call {
            Call::RegisterTargets { targets } => targets.iter().all(|t| {
                self.with_targets(&t.listener, t.rule.as_ref(), |list| {
                    list.retain(|b| !same_backend(b, &t.target));
                    list.push(cached_backend(&t.target));
                })
            }),
            Call::DeregisterTargets { targets } => targets.iter().all(|t| {
                self.with_targets(&t.listener, t.rule.as_ref(), |list| {
                    list.retain(|b| !same_backend(b, &t.target));
                })
            }),
            Call::ModifyTargetWeights { rules } => rules.iter().all(|r| {
                self.with_targets(&r.listener, r.rule.as_ref(), |list| {
                    for t in r.targets.iter() {
                        for b in list.iter_mut().filter(|b| same_backend(b, t)) {
                            b.weight = i64::from(t.weight);
                        }
                    }
                })
            }),
            _ => false,
        }
    }

    /// Runs `change` on the cached targets of a listener (or of one of its rules) known by id.
    fn with_targets(
        &mut self,
        listener: &ListenerRef,
        rule: Option<&RuleRef>,
        change: impl FnOnce(&mut Vec<api::Backend>),
    ) -> bool {
        let ListenerRef::Id(id) = listener else {
            return false;
        };
        let Some(entry) = self.backends.get_mut(id) else {
            return false;
        };
        let list = match rule {
            None => entry.targets.get_or_insert_with(Vec::new),
            Some(RuleRef::Id(location)) => {
                let rules = entry.rules.get_or_insert_with(Vec::new);
                let Some(rule) = rules.iter_mut().find(|r| &r.location_id == location) else {
                    return false;
                };
                rule.targets.get_or_insert_with(Vec::new)
            }
            Some(RuleRef::Key(_)) => return false,
        };
        change(list);
        true
    }

    /// Forgets the listeners `plan` calls on: their targets are whatever the calls made of them. A plan that
    /// creates, deletes or modifies listeners or rules also invalidates the listener list.
    pub fn forget_touched(&mut self, plan: &Plan) {
        for id in plan.touched_listener_ids() {
            self.backends.remove(&id);
        }
        let targets_only = plan.steps.iter().all(|s| {
            matches!(
                s.call,
                Call::RegisterTargets { .. }
                    | Call::DeregisterTargets { .. }
                    | Call::ModifyTargetWeights { .. }
            )
        });
        if !targets_only {
            self.listeners = None;
        }
    }
}

/// A cloud backend is the target with this private IP and port.
fn same_backend(backend: &api::Backend, target: &Target) -> bool {
    i64::from(target.port) == backend.port
        && backend
            .private_ip_addresses
            .as_ref()
            .is_some_and(|ips| ips.contains(&target.ip))
}

/// The backend DescribeTargets would list for a target just registered.
fn cached_backend(target: &Target) -> api::Backend {
    api::Backend {
        r#type: Some("ENI".to_owned()),
        port: i64::from(target.port),
        weight: i64::from(target.weight),
        private_ip_addresses: Some(vec![target.ip.clone()]),
        ..api::Backend::default()
    }
}

/// Like [`read_cloud`], but takes the targets of listeners in `cache` from it and reads only the others.
/// Every listener is still listed (`DescribeListeners`), so deleted or new listeners are always seen. On
/// return `cache` holds the targets of every current listener (entries of vanished listeners are dropped).
pub async fn read_cloud_cached(
    client: &ClbClient,
    lb: &LbRef,
    cache: &mut TargetCache,
) -> Result<Vec<CloudListener>, CloudError> {
    let listeners = match cache.listeners.take() {
        Some(listeners) => listeners,
        None => client.describe_all_listeners(lb).await?,
    };
    let unknown: Vec<String> = listeners
        .iter()
        .filter(|l| !cache.backends.contains_key(&l.listener_id))
        .map(|l| l.listener_id.clone())
        .collect();
    let fresh = if unknown.is_empty() {
        Vec::new()
    } else {
        client.describe_targets(lb, &unknown).await?
    };
    let mut current: HashMap<String, api::ListenerBackend> =
        HashMap::with_capacity(listeners.len());
    for l in &listeners {
        if let Some(b) = cache.backends.remove(&l.listener_id) {
            current.insert(l.listener_id.clone(), b);
        }
    }
    for b in fresh {
        current.insert(b.listener_id.clone(), b);
    }
    // A listener the answer leaves out has no targets; remember that too.
    for id in unknown {
        current
            .entry(id.clone())
            .or_insert_with(|| api::ListenerBackend {
                listener_id: id,
                ..api::ListenerBackend::default()
            });
    }
    cache.backends = current;
    cache.listeners = Some(listeners.clone());
    let backends: HashMap<&str, &api::ListenerBackend> = cache
        .backends
        .iter()
        .map(|(id, b)| (id.as_str(), b))
        .collect();
    let mut out = Vec::with_capacity(listeners.len());
    for l in &listeners {
        match cloud_listener(l, backends.get(l.listener_id.as_str()).copied()) {
            Some(c) => out.push(c),
            None => warn!(
                lb = %lb,
                listener_id = %l.listener_id,
                protocol = %l.protocol,
                port = l.port,
                "ignoring a cloud listener this controller cannot represent"
            ),
        }
    }
    Ok(out)
}

fn to_u16(v: i64) -> Option<u16> {
    u16::try_from(v).ok()
}

fn to_u32(v: i64) -> Option<u32> {
    u32::try_from(v).ok()
}

fn cloud_listener(
    l: &api::Listener,
    backend: Option<&api::ListenerBackend>,
) -> Option<CloudListener> {
    let protocol = Protocol::parse(&l.protocol)?;
    let port = to_u16(l.port).filter(|p| *p > 0)?;
    // Single-port listeners report EndPort 0 (or nothing).
    let end_port = l.end_port.and_then(to_u16).filter(|end| *end > port);
    let key = ListenerKey {
        protocol,
        port,
        end_port,
    };
    let attributes = if protocol.is_l7() {
        Attributes::default()
    } else {
        Attributes {
            session_expire_time: l.session_expire_time.and_then(to_u32).unwrap_or(0),
            scheduler: l.scheduler.as_deref().and_then(scheduler_from),
            health_check: l.health_check.as_ref().map(health_from),
        }
    };
    let rule_targets: HashMap<&str, &api::RuleTargets> = backend
        .and_then(|b| b.rules.as_ref())
        .map(|rules| rules.iter().map(|r| (r.location_id.as_str(), r)).collect())
        .unwrap_or_default();
    let rules = l
        .rules
        .iter()
        .flatten()
        .map(|r| CloudRule {
            location_id: r.location_id.clone(),
            key: RuleKey::new(
                r.domain.clone().unwrap_or_default(),
                r.url.clone().unwrap_or_default(),
            ),
            attributes: Attributes {
                session_expire_time: r.session_expire_time.and_then(to_u32).unwrap_or(0),
                scheduler: r.scheduler.as_deref().and_then(scheduler_from),
                health_check: r.health_check.as_ref().map(health_from),
            },
            certificate: r.certificate.as_ref().and_then(certificate_from),
            targets: rule_targets
                .get(r.location_id.as_str())
                .map(|rt| target_set(rt.targets.as_deref()))
                .unwrap_or_default(),
        })
        .collect();
    Some(CloudListener {
        id: l.listener_id.clone(),
        key,
        name: l.listener_name.clone().unwrap_or_default(),
        attributes,
        certificate: l.certificate.as_ref().and_then(certificate_from),
        sni_switch: l.sni_switch == Some(1),
        keepalive: l.keepalive_enable == Some(1),
        targets: target_set(backend.and_then(|b| b.targets.as_deref())),
        rules,
    })
}

fn target_set(backends: Option<&[api::Backend]>) -> TargetSet {
    backends
        .unwrap_or_default()
        .iter()
        .filter_map(|b| {
            let ip = b
                .private_ip_addresses
                .as_ref()?
                .iter()
                .find(|ip| !ip.is_empty())?;
            Some(Target::new(
                ip.clone(),
                to_u16(b.port)?,
                u16::try_from(b.weight).unwrap_or(0),
            ))
        })
        .collect()
}

fn scheduler_from(s: &str) -> Option<Scheduler> {
    match s.to_ascii_uppercase().as_str() {
        "WRR" => Some(Scheduler::Wrr),
        "LEAST_CONN" => Some(Scheduler::LeastConn),
        "IP_HASH" => Some(Scheduler::IpHash),
        _ => None,
    }
}

fn scheduler_name(s: Scheduler) -> String {
    match s {
        Scheduler::Wrr => "WRR",
        Scheduler::LeastConn => "LEAST_CONN",
        Scheduler::IpHash => "IP_HASH",
    }
    .to_string()
}

fn health_from(h: &api::HealthCheck) -> HealthCheck {
    HealthCheck {
        enabled: h.health_switch == Some(1),
        timeout: h.time_out.and_then(to_u32),
        interval: h.interval_time.and_then(to_u32),
        healthy_threshold: h.health_num.and_then(to_u32),
        unhealthy_threshold: h.un_health_num.and_then(to_u32),
        http_code: h.http_code.and_then(to_u32),
        http_check_path: h.http_check_path.clone(),
        http_check_method: h.http_check_method.clone(),
    }
}

fn health_to(h: &HealthCheck) -> api::HealthCheck {
    api::HealthCheck {
        health_switch: Some(i64::from(h.enabled)),
        time_out: h.timeout.map(i64::from),
        interval_time: h.interval.map(i64::from),
        health_num: h.healthy_threshold.map(i64::from),
        un_health_num: h.unhealthy_threshold.map(i64::from),
        http_code: h.http_code.map(i64::from),
        http_check_path: h.http_check_path.clone(),
        http_check_method: h.http_check_method.clone(),
        ..api::HealthCheck::default()
    }
}

fn certificate_from(c: &api::CertificateOutput) -> Option<Certificate> {
    Some(Certificate {
        mode: c.ssl_mode.clone().unwrap_or_default(),
        cert_id: c.cert_id.clone().filter(|id| !id.is_empty())?,
        ca_cert_id: c.cert_ca_id.clone().filter(|id| !id.is_empty()),
    })
}

fn certificate_to(c: &Certificate) -> api::Certificate {
    api::Certificate {
        ssl_mode: Some(c.mode.clone()),
        cert_id: Some(c.cert_id.clone()),
        cert_ca_id: c.ca_cert_id.clone(),
        ..api::Certificate::default()
    }
}

/// `SessionExpireTime` to send on create: 0 is the cloud default and is left out.
fn session_on_create(a: &Attributes) -> Option<i64> {
    (a.session_expire_time != 0).then_some(i64::from(a.session_expire_time))
}

fn listener_attributes(spec: &ListenerSpec) -> ListenerAttributes {
    let attrs = spec.attributes.as_ref();
    ListenerAttributes {
        health_check: attrs.and_then(|a| a.health_check.as_ref()).map(health_to),
        certificate: spec.certificate.as_ref().map(certificate_to),
        session_expire_time: attrs.and_then(session_on_create),
        scheduler: attrs.and_then(|a| a.scheduler).map(scheduler_name),
        sni_switch: (spec.protocol == Protocol::Https).then_some(i64::from(spec.sni_switch)),
        keepalive_enable: spec.protocol.is_l7().then_some(i64::from(spec.keepalive)),
        ..ListenerAttributes::default()
    }
}

fn modify_listener_request(
    listener_id: &str,
    changes: &ListenerChanges,
) -> api::ModifyListenerRequest {
    api::ModifyListenerRequest {
        listener_id: listener_id.to_string(),
        session_expire_time: changes.attributes.session_expire_time.map(i64::from),
        scheduler: changes.attributes.scheduler.map(scheduler_name),
        health_check: changes.attributes.health_check.as_ref().map(health_to),
        certificate: changes.certificate.as_ref().map(certificate_to),
        sni_switch: changes.enable_sni.then_some(1),
        keepalive_enable: changes.keepalive.map(i64::from),
        ..api::ModifyListenerRequest::default()
    }
}

fn rule_input(r: &NewRule) -> api::RuleInput {
    let attrs = r.attributes.as_ref();
    api::RuleInput {
        url: r.key.url.clone(),
        domain: Some(r.key.domain.clone()),
        session_expire_time: attrs.and_then(session_on_create),
        health_check: attrs.and_then(|a| a.health_check.as_ref()).map(health_to),
        scheduler: attrs.and_then(|a| a.scheduler).map(scheduler_name),
        certificate: r.certificate.as_ref().map(certificate_to),
        ..api::RuleInput::default()
    }
}

// ---------------------------------------------------------------------------------------------
// Running a plan
// ---------------------------------------------------------------------------------------------

/// Runs `plan` against `lb` in step order and reports what became of every CR it names.
///
/// Deleting CRs that no step names are not in the report; see
/// [`ExecutionReport::complete_deleting`].
pub async fn execute(client: &ClbClient, lb: &LbRef, plan: &Plan) -> ExecutionReport {
    let mut run = Run {
        client,
        lb,
        created: HashMap::new(),
        created_rules: HashMap::new(),
        owners_by_ref: HashMap::new(),
        failures: BTreeMap::new(),
        report: ExecutionReport::default(),
    };
    for (owner, listener) in &plan.listeners {
        run.owners_by_ref
            .entry(listener.clone())
            .or_default()
            .push(owner.clone());
    }
    for step in &plan.steps {
        run.step(step).await;
    }
    run.finish(plan)
}

struct Run<'a> {
    client: &'a ClbClient,
    lb: &'a LbRef,
    /// Ids returned by create steps, by key.
    created: HashMap<ListenerKey, String>,
    /// LocationIds returned by CreateRule, by (listener id, rule key).
    created_rules: HashMap<(String, RuleKey), String>,
    /// Who each listener of the plan belongs to (to blame the right CR for one target).
    owners_by_ref: HashMap<ListenerRef, Vec<OwnerRef>>,
    failures: BTreeMap<OwnerRef, Failure>,
    report: ExecutionReport,
}

impl Run<'_> {
    /// Records `failure` for each owner that has none yet (the first error is the cause).
    fn fail<'o>(&mut self, owners: impl IntoIterator<Item = &'o OwnerRef>, failure: &Failure) {
        for owner in owners {
            self.failures
                .entry(owner.clone())
                .or_insert_with(|| failure.clone());
        }
    }

    fn fail_step(&mut self, step: &Step, error: &CloudError) {
        warn!(lb = %self.lb, action = step.call.action(), owners = step.owners.len(), error = %error, "sync step failed");
        self.report.calls_failed += 1;
        self.fail(&step.owners, &Failure::cloud(error));
    }

    fn listener_id(&self, listener: &ListenerRef) -> Option<String> {
        match listener {
            ListenerRef::Id(id) => Some(id.clone()),
            ListenerRef::Key(key) => self.created.get(key).cloned(),
        }
    }

    fn rule_id(&self, listener_id: &str, rule: &RuleRef) -> Option<String> {
        match rule {
            RuleRef::Id(id) => Some(id.clone()),
            RuleRef::Key(key) => self
                .created_rules
                .get(&(listener_id.to_string(), key.clone()))
                .cloned(),
        }
    }

    fn describe_ref(listener: &ListenerRef) -> String {
        match listener {
            ListenerRef::Id(id) => id.clone(),
            ListenerRef::Key(key) => key.to_string(),
        }
    }

    /// The owners a target of `listener` works for, within the step's owners.
    fn owners_of(&self, listener: &ListenerRef, step: &Step) -> Vec<OwnerRef> {
        match self.owners_by_ref.get(listener) {
            Some(owners) => owners
                .iter()
                .filter(|o| step.owners.contains(*o))
                .cloned()
                .collect(),
            None => step.owners.iter().cloned().collect(),
        }
    }

    /// Skips (part of) a step whose listener or rule was not created, blaming its owners.
    fn skip(&mut self, step: &Step, listener: &ListenerRef, owners: &[OwnerRef]) {
        self.report.calls_skipped += 1;
        let failure = Failure::local(format!(
            "{} skipped: listener {} was not created",
            step.call.action(),
            Self::describe_ref(listener)
        ));
        debug!(lb = %self.lb, action = step.call.action(), listener = %Self::describe_ref(listener), "skipping");
        self.fail(owners, &failure);
    }

    async fn step(&mut self, step: &Step) {
        let client = self.client;
        let lb = self.lb;
        match &step.call {
            Call::DeleteListeners { listener_ids } => {
                self.report.calls_made += 1;
                let ids = listener_ids.to_vec();
                match client.delete_listeners(lb, &ids).await {
                    Ok(()) => {}
                    // The load balancer is gone, and with it every listener.
                    Err(e) if e.is_lb_not_found() => {
                        debug!(lb = %lb, "load balancer gone: listeners count as deleted");
                        self.report.lb_missing = true;
                    }
                    Err(e) => self.fail_step(step, &e),
                }
            }
            Call::CreateListeners { spec, listeners } => {
                self.report.calls_made += 1;
                let attributes = listener_attributes(spec);
                let new: Vec<NewListener> = listeners
                    .iter()
                    .map(|l| NewListener {
                        protocol: spec.protocol.as_str().to_string(),
                        port: l.key.port,
                        end_port: l.key.end_port,
                        name: Some(l.name.clone()),
                        attributes: attributes.clone(),
                    })
                    .collect();
                match client.create_listeners(lb, &new).await {
                    Ok(ids) => {
                        for (l, id) in listeners.iter().zip(ids) {
                            self.created.insert(l.key, id);
                        }
                    }
                    Err(e) => {
                        if e.code() == Some(&ErrorCode::InvalidParameterPortCheckFailed) {
                            self.report.reread.extend(step.owners.iter().cloned());
                        }
                        self.fail_step(step, &e);
                    }
                }
            }
            Call::ModifyListener {
                listener_id,
                changes,
            } => {
                self.report.calls_made += 1;
                let request = modify_listener_request(listener_id, changes);
                if let Err(e) = client.modify_listener(lb, request).await {
                    self.fail_step(step, &e);
                }
            }
            Call::DeleteRules {
                listener_id,
                location_ids,
            } => {
                self.report.calls_made += 1;
                if let Err(e) = client.delete_rules(lb, listener_id, location_ids).await {
                    self.fail_step(step, &e);
                }
            }
            Call::CreateRules { listener, rules } => {
                let Some(listener_id) = self.listener_id(listener) else {
                    let owners: Vec<OwnerRef> = step.owners.iter().cloned().collect();
                    self.skip(step, listener, &owners);
                    return;
                };
                self.report.calls_made += 1;
                let inputs = rules.iter().map(rule_input).collect();
                match client.create_rules(lb, &listener_id, inputs).await {
                    Ok(ids) if ids.len() == rules.len() => {
                        for (r, id) in rules.iter().zip(ids) {
                            self.created_rules
                                .insert((listener_id.clone(), r.key.clone()), id);
                        }
                    }
                    Ok(ids) => {
                        self.report.calls_failed += 1;
                        let failure = Failure::local(format!(
                            "CreateRule on {listener_id}: asked for {} rules, got {} LocationIds",
                            rules.len(),
                            ids.len()
                        ));
                        self.fail(&step.owners, &failure);
                    }
                    Err(e) => self.fail_step(step, &e),
                }
            }
            Call::ModifyRule {
                listener_id,
                location_id,
                changes,
            } => {
                self.report.calls_made += 1;
                let request = api::ModifyRuleRequest {
                    listener_id: listener_id.clone(),
                    location_id: location_id.clone(),
                    session_expire_time: changes.session_expire_time.map(i64::from),
                    scheduler: changes.scheduler.map(scheduler_name),
                    health_check: changes.health_check.as_ref().map(health_to),
                    ..api::ModifyRuleRequest::default()
                };
                if let Err(e) = client.modify_rule(lb, request).await {
                    self.fail_step(step, &e);
                }
            }
            Call::ModifyDomainAttributes {
                listener_id,
                domain,
                certificate,
            } => {
                self.report.calls_made += 1;
                let request = api::ModifyDomainAttributesRequest {
                    listener_id: listener_id.clone(),
                    domain: domain.clone(),
                    certificate: Some(certificate_to(certificate)),
                    ..api::ModifyDomainAttributesRequest::default()
                };
                if let Err(e) = client.modify_domain_attributes(lb, request).await {
                    self.fail_step(step, &e);
                }
            }
            Call::RegisterTargets { targets } => self.bind(step, targets, true).await,
            Call::DeregisterTargets { targets } => self.bind(step, targets, false).await,
            Call::ModifyTargetWeights { rules } => self.weights(step, rules).await,
        }
    }

    /// The listener and rule ids of a bound target, or `None` when its create failed.
    fn resolve_target(
        &self,
        listener: &ListenerRef,
        rule: Option<&RuleRef>,
    ) -> Option<(String, Option<String>)> {
        let listener_id = self.listener_id(listener)?;
        let location_id = match rule {
            Some(rule) => Some(self.rule_id(&listener_id, rule)?),
            None => None,
        };
        Some((listener_id, location_id))
    }

    /// BatchRegisterTargets / BatchDeregisterTargets for the targets that resolve.
    async fn bind(&mut self, step: &Step, targets: &[BoundTarget], register: bool) {
        let mut batch = Vec::with_capacity(targets.len());
        let mut owners_by_id: HashMap<String, Vec<OwnerRef>> = HashMap::new();
        let mut unresolved: BTreeSet<&ListenerRef> = BTreeSet::new();
        for bound in targets {
            let Some((listener_id, location_id)) =
                self.resolve_target(&bound.listener, bound.rule.as_ref())
            else {
                unresolved.insert(&bound.listener);
                continue;
            };
            owners_by_id
                .entry(listener_id.clone())
                .or_insert_with(|| self.owners_of(&bound.listener, step));
            batch.push(api::BatchTarget {
                listener_id,
                port: i64::from(bound.target.port),
                eni_ip: Some(bound.target.ip.clone()),
                weight: register.then_some(i64::from(bound.target.weight)),
                location_id,
                ..api::BatchTarget::default()
            });
        }
        for listener in unresolved {
            let owners = self.owners_of(listener, step);
            self.skip(step, listener, &owners);
        }
        if batch.is_empty() {
            return;
        }
        self.report.calls_made += 1;
        let result = if register {
            self.client.batch_register_targets(self.lb, &batch).await
        } else {
            self.client.batch_deregister_targets(self.lb, &batch).await
        };
        let called: Vec<OwnerRef> = owners_by_id.values().flatten().cloned().collect();
        match result {
            Ok(failed_ids) => {
                for id in failed_ids {
                    let failure = Failure::local(format!(
                        "{}: the cloud reported listener {id} in FailListenerIdSet",
                        step.call.action()
                    ));
                    let owners = owners_by_id.get(&id).cloned().unwrap_or_default();
                    warn!(lb = %self.lb, action = step.call.action(), listener_id = %id, "targets not (un)bound");
                    self.fail(&owners, &failure);
                }
            }
            Err(e) if !register && e.is_lb_not_found() => self.report.lb_missing = true,
            Err(e) => {
                warn!(lb = %self.lb, action = step.call.action(), error = %e, "sync step failed");
                self.report.calls_failed += 1;
                self.fail(&called, &Failure::cloud(&e));
            }
        }
    }

    /// BatchModifyTargetWeight for the rules that resolve.
    async fn weights(&mut self, step: &Step, rules: &[WeightChange]) {
        let mut batch = Vec::with_capacity(rules.len());
        let mut called: Vec<OwnerRef> = Vec::new();
        for change in rules {
            let Some((listener_id, location_id)) =
                self.resolve_target(&change.listener, change.rule.as_ref())
            else {
                let owners = self.owners_of(&change.listener, step);
                self.skip(step, &change.listener, &owners);
                continue;
            };
            called.extend(self.owners_of(&change.listener, step));
            batch.push(api::RsWeightRule {
                listener_id,
                location_id,
                targets: change
                    .targets
                    .iter()
                    .map(|t| api::Target {
                        port: i64::from(t.port),
                        eni_ip: Some(t.ip.clone()),
                        weight: Some(i64::from(t.weight)),
                        ..api::Target::default()
                    })
                    .collect(),
                ..api::RsWeightRule::default()
            });
        }
        if batch.is_empty() {
            return;
        }
        self.report.calls_made += 1;
        if let Err(e) = self
            .client
            .batch_modify_target_weight(self.lb, &batch)
            .await
        {
            warn!(lb = %self.lb, action = step.call.action(), error = %e, "sync step failed");
            self.report.calls_failed += 1;
            self.fail(&called, &Failure::cloud(&e));
        }
    }

    fn finish(mut self, plan: &Plan) -> ExecutionReport {
        let mut outcomes = BTreeMap::new();
        for (owner, listener) in &plan.listeners {
            let outcome = match (self.failures.get(owner), self.listener_id(listener)) {
                (Some(failure), _) => Outcome::failed(failure),
                (None, Some(listener_id)) => Outcome::Synced { listener_id },
                (None, None) => Outcome::failed(&Failure::local(format!(
                    "listener {} was not created",
                    Self::describe_ref(listener)
                ))),
            };
            outcomes.insert(owner.clone(), outcome);
        }
        for blocked in &plan.blocked {
            let failure = Failure::local(format!("listener {}: {}", blocked.key, blocked.reason));
            outcomes.insert(blocked.owner.clone(), Outcome::failed(&failure));
        }
        // Remaining step owners are deleting CRs.
        for step in &plan.steps {
            for owner in &step.owners {
                if !outcomes.contains_key(owner) {
                    let outcome = match self.failures.get(owner) {
                        Some(failure) => Outcome::failed(failure),
                        None => Outcome::Deleted,
                    };
                    outcomes.insert(owner.clone(), outcome);
                }
            }
        }
        self.report.outcomes = outcomes;
        self.report
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::NonEmpty;

    fn cache_with(listener: &str, targets: &[(&str, u16, u16)]) -> TargetCache {
        let mut cache = TargetCache::default();
        let backends = targets
            .iter()
            .map(|(ip, port, weight)| cached_backend(&Target::new(*ip, *port, *weight)))
            .collect();
        cache.backends.insert(
            listener.to_owned(),
            api::ListenerBackend {
                listener_id: listener.to_owned(),
                targets: Some(backends),
                ..api::ListenerBackend::default()
            },
        );
        cache.listeners = Some(Vec::new());
        cache
    }

    fn cached_targets(cache: &TargetCache, listener: &str) -> TargetSet {
        target_set(
            cache
                .backends
                .get(listener)
                .and_then(|b| b.targets.as_deref()),
        )
    }

    fn bound(listener: ListenerRef, ip: &str, port: u16, weight: u16) -> BoundTarget {
        BoundTarget {
            listener,
            rule: None,
            target: Target::new(ip, port, weight),
        }
    }

    fn plan_of(calls: Vec<Call>) -> Plan {
        Plan {
            steps: calls
                .into_iter()
                .map(|call| Step {
                    owners: BTreeSet::new(),
                    call,
                })
                .collect(),
            ..Plan::default()
        }
    }

    #[test]
    fn successful_target_calls_update_the_cache_instead_of_emptying_it() {
        let mut cache = cache_with("lbl-1", &[("10.0.0.1", 80, 10), ("10.0.0.2", 80, 10)]);
        let id = || ListenerRef::Id("lbl-1".to_owned());
        cache.record(&plan_of(vec![
            Call::DeregisterTargets {
                targets: NonEmpty::one(bound(id(), "10.0.0.1", 80, 10)),
            },
            Call::RegisterTargets {
                targets: NonEmpty::one(bound(id(), "10.0.0.3", 8080, 10)),
            },
            Call::ModifyTargetWeights {
                rules: NonEmpty::one(WeightChange {
                    listener: id(),
                    rule: None,
                    targets: NonEmpty::one(Target::new("10.0.0.2", 80, 50)),
                }),
            },
        ]));
        assert_eq!(
            cached_targets(&cache, "lbl-1"),
            [
                Target::new("10.0.0.2", 80, 50),
                Target::new("10.0.0.3", 8080, 10)
            ]
            .into_iter()
            .collect()
        );
        assert!(
            cache.has_listeners(),
            "a targets-only plan keeps the listener list"
        );
    }

    #[test]
    fn a_call_the_cache_cannot_follow_forgets_the_listeners_it_touched() {
        let mut cache = cache_with("lbl-1", &[("10.0.0.1", 80, 10)]);
        let key = ListenerKey::single(Protocol::Tcp, 81);
        cache.record(&plan_of(vec![Call::RegisterTargets {
            targets: NonEmpty::one(bound(ListenerRef::Key(key), "10.0.0.3", 81, 10)),
        }]));
        cache.record(&plan_of(vec![Call::RegisterTargets {
            targets: NonEmpty::one(bound(
                ListenerRef::Id("lbl-unknown".to_owned()),
                "10.0.0.4",
                82,
                10,
            )),
        }]));
        assert!(!cache.backends.contains_key("lbl-unknown"));
        assert_eq!(
            cached_targets(&cache, "lbl-1"),
            [Target::new("10.0.0.1", 80, 10)].into_iter().collect()
        );
    }
}
