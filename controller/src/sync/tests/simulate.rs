//! A small in-memory model of one load balancer's listeners, to run a [`Plan`] against.
//!
//! It checks every call the way the CLB API would refuse it (batch limits, port conflicts within a
//! port class, unknown ids, duplicate or unbound targets, rules on L4 listeners, …) and resolves
//! [`ListenerRef::Key`] / [`RuleRef::Key`] only through ids returned by earlier create steps,
//! as the executor must. Created listeners and rules get fake ids (`lbl-sim…`, `loc-sim…`).

use std::collections::HashMap;
use std::fmt;

use crate::sync::model::{
    Attributes, CloudListener, CloudRule, Endpoint, HealthCheck, ListenerKey, Protocol, RuleKey,
    Scheduler, TargetSet,
};
use crate::sync::plan::{BoundTarget, Call, Limits, ListenerRef, Plan, RuleRef};

/// A call the cloud would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Index of the step in the plan.
    pub step: usize,
    /// API action of the step.
    pub action: &'static str,
    /// Why the cloud refuses it.
    pub reason: String,
}

impl fmt::Display for Rejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "step {} ({}) rejected: {}",
            self.step, self.action, self.reason
        )
    }
}

impl std::error::Error for Rejected {}

/// Attributes a new L4 listener gets when the request leaves them out.
pub fn default_listener_attributes(protocol: Protocol) -> Attributes {
    if protocol.is_l7() {
        return Attributes::default();
    }
    Attributes {
        session_expire_time: 0,
        scheduler: Some(Scheduler::Wrr),
        health_check: Some(HealthCheck {
            enabled: true,
            timeout: Some(2),
            interval: Some(5),
            healthy_threshold: Some(3),
            unhealthy_threshold: Some(3),
            ..HealthCheck::default()
        }),
    }
}

/// Attributes a new L7 rule gets when the request leaves them out.
pub fn default_rule_attributes() -> Attributes {
    Attributes {
        session_expire_time: 0,
        scheduler: Some(Scheduler::Wrr),
        health_check: Some(HealthCheck {
            enabled: true,
            http_code: Some(31),
            http_check_method: Some("HEAD".into()),
            ..HealthCheck::default()
        }),
    }
}

/// The attributes stored when `sent` is sent over `base`.
fn overlay(mut base: Attributes, sent: Option<&Attributes>) -> Attributes {
    if let Some(sent) = sent {
        base.session_expire_time = sent.session_expire_time;
        if sent.scheduler.is_some() {
            base.scheduler = sent.scheduler;
        }
        if let Some(h) = &sent.health_check {
            base.health_check = Some(h.merged_over(base.health_check.as_ref()));
        }
    }
    base
}

/// Runs `plan` against `cloud` with the real API limits.
pub fn apply(plan: &Plan, cloud: &[CloudListener]) -> Result<Vec<CloudListener>, Rejected> {
    apply_with(&Limits::default(), plan, cloud)
}

/// Runs `plan` against `cloud`, refusing calls over `limits`.
pub fn apply_with(
    limits: &Limits,
    plan: &Plan,
    cloud: &[CloudListener],
) -> Result<Vec<CloudListener>, Rejected> {
    let mut sim = Sim {
        limits,
        listeners: cloud.to_vec(),
        created: HashMap::new(),
        created_rules: HashMap::new(),
        next_id: 0,
    };
    for (index, step) in plan.steps.iter().enumerate() {
        sim.call(&step.call).map_err(|reason| Rejected {
            step: index,
            action: step.call.action(),
            reason,
        })?;
    }
    Ok(sim.listeners)
}

struct Sim<'a> {
    limits: &'a Limits,
    listeners: Vec<CloudListener>,
    created: HashMap<ListenerKey, String>,
    created_rules: HashMap<(String, RuleKey), String>,
    next_id: u64,
}

fn check_len(what: &str, len: usize, max: usize) -> Result<(), String> {
    if len > max {
        return Err(format!("{len} {what} exceed the limit of {max}"));
    }
    Ok(())
}

impl Sim<'_> {
    fn fresh_id(&mut self, prefix: &str) -> String {
        loop {
            self.next_id += 1;
            let id = format!("{prefix}-sim{:05}", self.next_id);
            let taken = self
                .listeners
                .iter()
                .any(|l| l.id == id || l.rules.iter().any(|r| r.location_id == id));
            if !taken {
                return id;
            }
        }
    }

    fn index_of(&self, id: &str) -> Result<usize, String> {
        self.listeners
            .iter()
            .position(|l| l.id == id)
            .ok_or_else(|| format!("listener {id} not found"))
    }

    fn resolve(&self, listener: &ListenerRef) -> Result<usize, String> {
        match listener {
            ListenerRef::Id(id) => self.index_of(id),
            ListenerRef::Key(key) => {
                let id = self
                    .created
                    .get(key)
                    .ok_or_else(|| format!("no earlier step created listener {key}"))?;
                self.index_of(id)
            }
        }
    }

    fn l7(&self, index: usize) -> Result<(), String> {
        let l = &self.listeners[index];
        if !l.key.protocol.is_l7() {
            return Err(format!(
                "This interface only support HTTP/HTTPS listener ({})",
                l.id
            ));
        }
        Ok(())
    }

    /// The target set a bound target refers to.
    fn targets_of(&mut self, bound: &BoundTarget) -> Result<&mut TargetSet, String> {
        let index = self.resolve(&bound.listener)?;
        let listener_id = self.listeners[index].id.clone();
        let is_l7 = self.listeners[index].key.protocol.is_l7();
        match (&bound.rule, is_l7) {
            (None, false) => Ok(&mut self.listeners[index].targets),
            (Some(rule), true) => {
                let location = match rule {
                    RuleRef::Id(loc) => loc.clone(),
                    RuleRef::Key(key) => self
                        .created_rules
                        .get(&(listener_id.clone(), key.clone()))
                        .cloned()
                        .ok_or_else(|| format!("no earlier step created rule {key}"))?,
                };
                self.listeners[index]
                    .rules
                    .iter_mut()
                    .find(|r| r.location_id == location)
                    .map(|r| &mut r.targets)
                    .ok_or_else(|| format!("rule {location} not found on {listener_id}"))
            }
            (None, true) => Err(format!("L7 listener {listener_id} needs a LocationId")),
            (Some(_), false) => Err(format!("L4 listener {listener_id} has no rules")),
        }
    }

    fn call(&mut self, call: &Call) -> Result<(), String> {
        match call {
            Call::DeleteListeners { listener_ids } => {
                check_len(
                    "ListenerIds",
                    listener_ids.len(),
                    self.limits.delete_listeners,
                )?;
                for id in listener_ids {
                    self.index_of(id)
                        .map_err(|_| format!("some ListenerId {id} not found"))?;
                }
                self.listeners.retain(|l| !listener_ids.contains(&l.id));
            }
            Call::CreateListeners { spec, listeners } => {
                check_len("Ports", listeners.len(), self.limits.create_ports)?;
                let ranged = listeners.iter().any(|l| l.key.end_port.is_some());
                if ranged && listeners.len() != 1 {
                    return Err("EndPort needs exactly one port".into());
                }
                let mut new = Vec::new();
                for l in listeners {
                    if l.key.protocol != spec.protocol {
                        return Err(format!("{} in a {} call", l.key, spec.protocol));
                    }
                    if l.key.port == 0 || l.key.end_port.is_some_and(|e| e <= l.key.port) {
                        return Err(format!("invalid port range {}", l.key));
                    }
                    let clash = self
                        .listeners
                        .iter()
                        .map(|c| c.key)
                        .chain(new.iter().map(|c: &CloudListener| c.key))
                        .find(|k| k.overlaps(&l.key));
                    if let Some(k) = clash {
                        return Err(format!(
                            "InvalidParameter.PortCheckFailed: {} vs {k}",
                            l.key
                        ));
                    }
                    let id = self.fresh_id("lbl");
                    self.created.insert(l.key, id.clone());
                    new.push(CloudListener {
                        id,
                        key: l.key,
                        name: l.name.clone(),
                        attributes: overlay(
                            default_listener_attributes(spec.protocol),
                            spec.attributes.as_ref(),
                        ),
                        certificate: spec.certificate.clone(),
                        sni_switch: spec.sni_switch,
                        keepalive: spec.keepalive,
                        targets: TargetSet::new(),
                        rules: Vec::new(),
                    });
                }
                self.listeners.extend(new);
            }
            Call::ModifyListener {
                listener_id,
                changes,
            } => {
                let index = self.index_of(listener_id)?;
                if changes.is_empty() {
                    return Err("ModifyListener without changes".into());
                }
                let l = &mut self.listeners[index];
                if changes.enable_sni && l.key.protocol != Protocol::Https {
                    return Err("SniSwitch is HTTPS only".into());
                }
                if changes.keepalive.is_some() && !l.key.protocol.is_l7() {
                    return Err("KeepaliveEnable is HTTP/HTTPS only".into());
                }
                if !changes.attributes.is_empty() && l.key.protocol.is_l7() {
                    return Err("L7 listeners carry attributes on rules".into());
                }
                changes.attributes.apply_to(&mut l.attributes);
                if let Some(cert) = &changes.certificate {
                    l.certificate = Some(cert.clone());
                }
                l.sni_switch |= changes.enable_sni;
                if let Some(k) = changes.keepalive {
                    l.keepalive = k;
                }
            }
            Call::DeleteRules {
                listener_id,
                location_ids,
            } => {
                check_len(
                    "LocationIds",
                    location_ids.len(),
                    self.limits.rules_per_call,
                )?;
                let index = self.index_of(listener_id)?;
                self.l7(index)?;
                let l = &mut self.listeners[index];
                for loc in location_ids {
                    if !l.rules.iter().any(|r| r.location_id == *loc) {
                        return Err(format!("rule {loc} not found"));
                    }
                }
                l.rules.retain(|r| !location_ids.contains(&r.location_id));
            }
            Call::CreateRules { listener, rules } => {
                check_len("Rules", rules.len(), self.limits.rules_per_call)?;
                let index = self.resolve(listener)?;
                self.l7(index)?;
                for r in rules {
                    if self.listeners[index].rules.iter().any(|c| c.key == r.key) {
                        return Err(format!("duplicate rule {}", r.key));
                    }
                    let location_id = self.fresh_id("loc");
                    let listener_id = self.listeners[index].id.clone();
                    self.created_rules
                        .insert((listener_id, r.key.clone()), location_id.clone());
                    self.listeners[index].rules.push(CloudRule {
                        location_id,
                        key: r.key.clone(),
                        attributes: overlay(default_rule_attributes(), r.attributes.as_ref()),
                        certificate: r.certificate.clone(),
                        targets: TargetSet::new(),
                    });
                }
            }
            Call::ModifyRule {
                listener_id,
                location_id,
                changes,
            } => {
                let index = self.index_of(listener_id)?;
                self.l7(index)?;
                if changes.is_empty() {
                    return Err("ModifyRule without changes".into());
                }
                let rule = self.listeners[index]
                    .rules
                    .iter_mut()
                    .find(|r| r.location_id == *location_id)
                    .ok_or_else(|| format!("rule {location_id} not found"))?;
                changes.apply_to(&mut rule.attributes);
            }
            Call::ModifyDomainAttributes {
                listener_id,
                domain,
                certificate,
            } => {
                let index = self.index_of(listener_id)?;
                self.l7(index)?;
                let mut found = false;
                for r in &mut self.listeners[index].rules {
                    if r.key.domain == *domain {
                        r.certificate = Some(certificate.clone());
                        found = true;
                    }
                }
                if !found {
                    return Err(format!("domain {domain} not found"));
                }
            }
            Call::DeregisterTargets { targets } => {
                check_len("Targets", targets.len(), self.limits.batch_targets)?;
                for bound in targets {
                    let set = self.targets_of(bound)?;
                    let endpoint = Endpoint {
                        ip: bound.target.ip.clone(),
                        port: bound.target.port,
                    };
                    if set.remove(&endpoint).is_none() {
                        return Err(format!(
                            "target {}:{} is not bound",
                            endpoint.ip, endpoint.port
                        ));
                    }
                }
            }
            Call::RegisterTargets { targets } => {
                check_len("Targets", targets.len(), self.limits.batch_targets)?;
                for bound in targets {
                    if bound.target.weight > 100 {
                        return Err(format!("weight {} out of range", bound.target.weight));
                    }
                    let set = self.targets_of(bound)?;
                    let endpoint = Endpoint {
                        ip: bound.target.ip.clone(),
                        port: bound.target.port,
                    };
                    if set.weight(&endpoint).is_some() {
                        return Err(format!(
                            "InvalidParameterValue.Duplicate: {}:{}",
                            endpoint.ip, endpoint.port
                        ));
                    }
                    set.insert(bound.target.clone());
                }
            }
            Call::ModifyTargetWeights { rules } => {
                check_len("ModifyList", rules.len(), self.limits.weight_rules)?;
                let total: usize = rules.iter().map(|r| r.targets.len()).sum();
                check_len("Targets", total, self.limits.weight_targets_total)?;
                for change in rules {
                    check_len(
                        "Targets per rule",
                        change.targets.len(),
                        self.limits.weight_targets_per_rule,
                    )?;
                    let bound = BoundTarget {
                        listener: change.listener.clone(),
                        rule: change.rule.clone(),
                        target: change.targets.head().clone(),
                    };
                    let set = self.targets_of(&bound)?;
                    for t in &change.targets {
                        let endpoint = Endpoint {
                            ip: t.ip.clone(),
                            port: t.port,
                        };
                        if set.weight(&endpoint).is_none() {
                            return Err(format!("target {}:{} is not bound", t.ip, t.port));
                        }
                        set.insert(t.clone());
                    }
                }
            }
        }
        Ok(())
    }
}
