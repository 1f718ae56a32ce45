//! The planner: desired listeners + deleting listeners + cloud listeners → ordered, batched calls.
//!
//! See the module docs of [`crate::sync`] for the ownership rule and the step order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use clb_api::limits;

use super::model::{
    AttributeChanges, Attributes, Certificate, CloudListener, CloudRule, DeletingListener,
    DesiredListener, DesiredRule, ListenerKey, OwnerRef, Protocol, RuleKey, Target, TargetSet,
    attribute_changes,
};
use super::nonempty::NonEmpty;

/// Batch limits of the CLB API; the defaults are [`clb_api::limits`]. Configurable because some are observed,
/// not documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// CreateListener `Ports` per call (the API wants fewer than 50).
    pub create_ports: usize,
    /// DeleteLoadBalancerListeners `ListenerIds` per call.
    pub delete_listeners: usize,
    /// BatchRegisterTargets / BatchDeregisterTargets `Targets` per call.
    pub batch_targets: usize,
    /// BatchModifyTargetWeight rules per call.
    pub weight_rules: usize,
    /// BatchModifyTargetWeight targets per rule.
    pub weight_targets_per_rule: usize,
    /// BatchModifyTargetWeight targets per call.
    pub weight_targets_total: usize,
    /// CreateRule `Rules` / DeleteRule `LocationIds` per call (undocumented; a listener holds
    /// at most 50 rules by default quota).
    pub rules_per_call: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            create_ports: limits::CREATE_LISTENER_PORTS,
            delete_listeners: limits::DELETE_LISTENER_IDS,
            batch_targets: limits::BATCH_TARGETS,
            weight_rules: limits::WEIGHT_RULES,
            weight_targets_per_rule: limits::WEIGHT_TARGETS_PER_RULE,
            weight_targets_total: limits::WEIGHT_TARGETS_TOTAL,
            rules_per_call: limits::RULES_PER_CALL,
        }
    }
}

/// A listener the plan talks about: an existing one by id, or one an earlier `CreateListeners`
/// step of the same plan creates, by key (the executor maps it to the id the create returned).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ListenerRef {
    /// An existing cloud listener.
    Id(String),
    /// A listener created earlier in this plan.
    Key(ListenerKey),
}

/// An L7 rule: an existing one by `LocationId`, or one an earlier `CreateRules` step of the same
/// plan creates on the same listener, by domain and url.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RuleRef {
    /// An existing rule's `LocationId`.
    Id(String),
    /// A rule created earlier in this plan.
    Key(RuleKey),
}

/// What every listener of one `CreateListeners` call shares (normalised per protocol, so two
/// listeners that differ only in fields the protocol ignores share a call).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerSpec {
    /// Protocol of all listeners in the call.
    pub protocol: Protocol,
    /// L4 attributes (`None` for L7 or when the CR has none: cloud defaults).
    pub attributes: Option<Attributes>,
    /// Listener certificate (TCP_SSL, QUIC, HTTPS without SNI).
    pub certificate: Option<Certificate>,
    /// HTTPS SNI.
    pub sni_switch: bool,
    /// HTTP/HTTPS keep-alive.
    pub keepalive: bool,
}

impl ListenerSpec {
    /// The fields of `d` that matter for its protocol.
    pub fn of(d: &DesiredListener) -> Self {
        let protocol = d.key.protocol;
        let sni_switch = protocol == Protocol::Https && d.sni_switch;
        ListenerSpec {
            protocol,
            attributes: if protocol.is_l7() {
                None
            } else {
                d.attributes.clone()
            },
            certificate: if protocol.takes_certificate() && !sni_switch {
                d.certificate.clone()
            } else {
                None
            },
            sni_switch,
            keepalive: protocol.is_l7() && d.keepalive,
        }
    }
}

/// One listener of a `CreateListeners` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewListener {
    /// Port (and end port for a range listener, which is then alone in its call).
    pub key: ListenerKey,
    /// `ListenerNames` entry.
    pub name: String,
}

/// Only the listener fields that must change (sent with `ModifyListener`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerChanges {
    /// L4 attributes.
    pub attributes: AttributeChanges,
    /// New certificate.
    pub certificate: Option<Certificate>,
    /// Turn SNI on (the API only allows 0 → 1; 1 → 0 recreates the listener).
    pub enable_sni: bool,
    /// New keep-alive setting.
    pub keepalive: Option<bool>,
}

impl ListenerChanges {
    /// True when nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty()
            && self.certificate.is_none()
            && !self.enable_sni
            && self.keepalive.is_none()
    }
}

/// One rule of a `CreateRules` call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRule {
    /// Domain and url.
    pub key: RuleKey,
    /// Rule attributes (`None`: cloud defaults).
    pub attributes: Option<Attributes>,
    /// Domain certificate (only when the listener has SNI on).
    pub certificate: Option<Certificate>,
}

/// A target bound to a listener (L4) or to a rule of it (L7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundTarget {
    /// The listener.
    pub listener: ListenerRef,
    /// The rule, for L7 listeners.
    pub rule: Option<RuleRef>,
    /// Backend and weight.
    pub target: Target,
}

/// One `RsWeightRule` of `BatchModifyTargetWeight`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightChange {
    /// The listener.
    pub listener: ListenerRef,
    /// The rule, for L7 listeners.
    pub rule: Option<RuleRef>,
    /// Targets with their new weights.
    pub targets: NonEmpty<Target>,
}

/// One CLB call, within its batch limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `DeleteLoadBalancerListeners`; the ids are never empty.
    DeleteListeners {
        /// Listener ids (≤ `Limits::delete_listeners`).
        listener_ids: NonEmpty<String>,
    },
    /// `CreateListener`: several ports with one spec, or one range listener (`EndPort`).
    CreateListeners {
        /// Shared settings.
        spec: ListenerSpec,
        /// Ports and names (≤ `Limits::create_ports`; exactly one for a range listener).
        listeners: NonEmpty<NewListener>,
    },
    /// `ModifyListener` with only the fields that differ.
    ModifyListener {
        /// Existing listener.
        listener_id: String,
        /// Fields to send.
        changes: ListenerChanges,
    },
    /// `DeleteRule` by `LocationIds`.
    DeleteRules {
        /// Existing listener.
        listener_id: String,
        /// Rules to delete.
        location_ids: NonEmpty<String>,
    },
    /// `CreateRule` on an existing or just-created listener.
    CreateRules {
        /// The listener.
        listener: ListenerRef,
        /// Rules to create.
        rules: NonEmpty<NewRule>,
    },
    /// `ModifyRule` with only the fields that differ.
    ModifyRule {
        /// Existing listener.
        listener_id: String,
        /// Existing rule.
        location_id: String,
        /// Fields to send.
        changes: AttributeChanges,
    },
    /// `ModifyDomainAttributes`: the certificate of every rule of a domain (SNI).
    ModifyDomainAttributes {
        /// Existing listener.
        listener_id: String,
        /// Domain.
        domain: String,
        /// New certificate.
        certificate: Certificate,
    },
    /// `BatchDeregisterTargets` (synchronous).
    DeregisterTargets {
        /// Targets to unbind (≤ `Limits::batch_targets`).
        targets: NonEmpty<BoundTarget>,
    },
    /// `BatchRegisterTargets` (synchronous).
    RegisterTargets {
        /// Targets to bind (≤ `Limits::batch_targets`).
        targets: NonEmpty<BoundTarget>,
    },
    /// `BatchModifyTargetWeight`.
    ModifyTargetWeights {
        /// Per listener/rule weight changes.
        rules: NonEmpty<WeightChange>,
    },
}

impl Call {
    /// The API action name, for logs and metrics.
    pub fn action(&self) -> &'static str {
        match self {
            Call::DeleteListeners { .. } => "DeleteLoadBalancerListeners",
            Call::CreateListeners { .. } => "CreateListener",
            Call::ModifyListener { .. } => "ModifyListener",
            Call::DeleteRules { .. } => "DeleteRule",
            Call::CreateRules { .. } => "CreateRule",
            Call::ModifyRule { .. } => "ModifyRule",
            Call::ModifyDomainAttributes { .. } => "ModifyDomainAttributes",
            Call::DeregisterTargets { .. } => "BatchDeregisterTargets",
            Call::RegisterTargets { .. } => "BatchRegisterTargets",
            Call::ModifyTargetWeights { .. } => "BatchModifyTargetWeight",
        }
    }
}

/// A call and the Listener CRs it serves: if it fails, exactly these are marked NotSynced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Listener CRs (`ns/name`) this call works for.
    pub owners: BTreeSet<OwnerRef>,
    /// The call.
    pub call: Call,
}

/// Why a desired listener gets no cloud calls in this plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockReason {
    /// The CR asks for something the cloud cannot hold.
    Invalid(String),
    /// Another Listener CR on this LB wants an overlapping port of the same class; it won.
    ConflictsWith {
        /// The winning CR.
        owner: OwnerRef,
    },
    /// A cloud listener that is not ours occupies an overlapping port of the same class.
    PortInUse {
        /// The occupying listener.
        listener_id: String,
        /// Its key.
        key: ListenerKey,
    },
}

impl fmt::Display for BlockReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlockReason::Invalid(why) => write!(f, "invalid listener: {why}"),
            BlockReason::ConflictsWith { owner } => {
                write!(
                    f,
                    "port conflicts with Listener {owner} on the same load balancer"
                )
            }
            BlockReason::PortInUse { listener_id, key } => write!(
                f,
                "port in use by cloud listener {listener_id} ({key}) that this controller does not own"
            ),
        }
    }
}

/// A desired listener the plan leaves alone, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocked {
    /// The Listener CR.
    pub owner: OwnerRef,
    /// Its key.
    pub key: ListenerKey,
    /// Why.
    pub reason: BlockReason,
}

/// The ordered calls that bring the cloud to the desired state, plus per-CR outcomes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Calls in execution order.
    pub steps: Vec<Step>,
    /// For every desired listener that is not blocked: where its cloud listener is (by id if it
    /// exists, by key if a step creates it). The executor writes the resolved id to status.
    pub listeners: BTreeMap<OwnerRef, ListenerRef>,
    /// Desired listeners that get no calls, with the reason to put in their status.
    pub blocked: Vec<Blocked>,
}

impl Plan {
    /// True when the cloud already matches (no calls to make).
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Ids of the existing listeners some step calls on (listeners a step creates have no id yet).
    pub fn touched_listener_ids(&self) -> BTreeSet<String> {
        fn existing(r: &ListenerRef) -> Option<&String> {
            match r {
                ListenerRef::Id(id) => Some(id),
                ListenerRef::Key(_) => None,
            }
        }
        let mut ids = BTreeSet::new();
        for step in &self.steps {
            match &step.call {
                Call::DeleteListeners { listener_ids } => ids.extend(listener_ids.iter().cloned()),
                Call::CreateListeners { .. } => {}
                Call::ModifyListener { listener_id, .. }
                | Call::DeleteRules { listener_id, .. }
                | Call::ModifyRule { listener_id, .. }
                | Call::ModifyDomainAttributes { listener_id, .. } => {
                    ids.insert(listener_id.clone());
                }
                Call::CreateRules { listener, .. } => ids.extend(existing(listener).cloned()),
                Call::DeregisterTargets { targets } | Call::RegisterTargets { targets } => {
                    ids.extend(
                        targets
                            .iter()
                            .filter_map(|t| existing(&t.listener))
                            .cloned(),
                    );
                }
                Call::ModifyTargetWeights { rules } => {
                    ids.extend(rules.iter().filter_map(|r| existing(&r.listener)).cloned());
                }
            }
        }
        ids
    }
}

/// Plans with the default (real API) limits.
pub fn plan(
    desired: &[DesiredListener],
    deleting: &[DeletingListener],
    cloud: &[CloudListener],
) -> Plan {
    plan_with(&Limits::default(), desired, deleting, cloud)
}

/// Plans with explicit batch limits.
pub fn plan_with(
    limits: &Limits,
    desired: &[DesiredListener],
    deleting: &[DeletingListener],
    cloud: &[CloudListener],
) -> Plan {
    Planner::new(limits, cloud).run(desired, deleting)
}

/// Checks a desired listener for things the cloud cannot hold.
fn validate(d: &DesiredListener) -> Result<(), String> {
    if d.key.port == 0 {
        return Err("port 0".into());
    }
    if let Some(end) = d.key.end_port
        && end <= d.key.port
    {
        return Err(format!(
            "endPort {end} must be greater than port {}",
            d.key.port
        ));
    }
    let heavy = d
        .targets
        .iter()
        .chain(d.rules.iter().flat_map(|r| r.targets.iter()))
        .find(|t| i64::from(t.weight) > limits::WEIGHT_MAX);
    if let Some(t) = heavy {
        return Err(format!(
            "target {}:{} weight {} is over {}",
            t.ip,
            t.port,
            t.weight,
            limits::WEIGHT_MAX
        ));
    }
    if d.key.protocol.is_l7() {
        if !d.targets.is_empty() {
            return Err(format!(
                "{} listeners bind targets on rules",
                d.key.protocol
            ));
        }
        // Rule certificates only matter with SNI; then one domain has one certificate.
        let sni = ListenerSpec::of(d).sni_switch;
        let mut seen = BTreeSet::new();
        let mut domain_certs: BTreeMap<&str, &Certificate> = BTreeMap::new();
        for r in &d.rules {
            if !seen.insert(&r.key) {
                return Err(format!("duplicate rule {}", r.key));
            }
            if sni
                && let Some(cert) = &r.certificate
                && let Some(prev) = domain_certs.insert(&r.key.domain, cert)
                && prev != cert
            {
                return Err(format!(
                    "rules of domain {} ask for different certificates",
                    r.key.domain
                ));
            }
        }
    } else if !d.rules.is_empty() {
        return Err(format!("{} listeners have no rules", d.key.protocol));
    }
    Ok(())
}

/// Collects targets and weight changes per owner while planning, then packs them into batches.
#[derive(Default)]
struct TargetWork {
    deregister: Vec<(OwnerRef, BoundTarget)>,
    register: Vec<(OwnerRef, BoundTarget)>,
    weights: Vec<(OwnerRef, ListenerRef, Option<RuleRef>, Vec<Target>)>,
}

impl TargetWork {
    /// Diffs one target set (a listener's, or one rule's) and records the work.
    fn diff(
        &mut self,
        owner: &OwnerRef,
        listener: &ListenerRef,
        rule: Option<&RuleRef>,
        desired: &TargetSet,
        cloud: &TargetSet,
    ) {
        let bound = |target: Target| BoundTarget {
            listener: listener.clone(),
            rule: rule.cloned(),
            target,
        };
        let mut reweigh = Vec::new();
        for t in desired.iter() {
            let endpoint = super::model::Endpoint {
                ip: t.ip.clone(),
                port: t.port,
            };
            match cloud.weight(&endpoint) {
                None => self.register.push((owner.clone(), bound(t))),
                Some(w) if w != t.weight => reweigh.push(t),
                Some(_) => {}
            }
        }
        for t in cloud.iter() {
            let endpoint = super::model::Endpoint {
                ip: t.ip.clone(),
                port: t.port,
            };
            if desired.weight(&endpoint).is_none() {
                self.deregister.push((owner.clone(), bound(t)));
            }
        }
        if !reweigh.is_empty() {
            self.weights
                .push((owner.clone(), listener.clone(), rule.cloned(), reweigh));
        }
    }

    fn into_steps(self, limits: &Limits, steps: &mut Vec<Step>) {
        for (items, make) in [
            (
                self.deregister,
                (|targets| Call::DeregisterTargets { targets }) as fn(_) -> Call,
            ),
            (self.register, |targets| Call::RegisterTargets { targets }),
        ] {
            for chunk in NonEmpty::chunks(items, limits.batch_targets) {
                steps.push(Step {
                    owners: chunk.iter().map(|(o, _)| o.clone()).collect(),
                    call: make(chunk.map(|(_, t)| t.clone())),
                });
            }
        }

        let per_rule = limits.weight_targets_per_rule.max(1);
        let max_rules = limits.weight_rules.max(1);
        let max_total = limits.weight_targets_total.max(1);
        let mut owners = BTreeSet::new();
        let mut rules: Vec<WeightChange> = Vec::new();
        let mut total = 0;
        let mut flush = |owners: &mut BTreeSet<OwnerRef>, rules: &mut Vec<WeightChange>| {
            if let Some(rules) = NonEmpty::new(std::mem::take(rules)) {
                steps.push(Step {
                    owners: std::mem::take(owners),
                    call: Call::ModifyTargetWeights { rules },
                });
            }
        };
        for (owner, listener, rule, targets) in self.weights {
            for chunk in NonEmpty::chunks(targets, per_rule.min(max_total)) {
                if rules.len() == max_rules || total + chunk.len() > max_total {
                    flush(&mut owners, &mut rules);
                    total = 0;
                }
                total += chunk.len();
                owners.insert(owner.clone());
                rules.push(WeightChange {
                    listener: listener.clone(),
                    rule: rule.clone(),
                    targets: chunk,
                });
            }
        }
        flush(&mut owners, &mut rules);
    }
}

struct Planner<'a> {
    limits: &'a Limits,
    cloud: &'a [CloudListener],
    cloud_by_key: HashMap<ListenerKey, &'a CloudListener>,
}

impl<'a> Planner<'a> {
    fn new(limits: &'a Limits, cloud: &'a [CloudListener]) -> Self {
        Planner {
            limits,
            cloud,
            cloud_by_key: cloud.iter().map(|c| (c.key, c)).collect(),
        }
    }

    fn run(&self, desired: &[DesiredListener], deleting: &[DeletingListener]) -> Plan {
        let mut plan = Plan::default();

        // 1. Which desired listeners we act on: valid ones, without port conflicts between
        //    them. A listener already in the cloud wins a conflict, so a working one is not
        //    disturbed by a newcomer; then key and owner order keep it deterministic.
        let mut candidates: Vec<&DesiredListener> = Vec::new();
        for d in desired {
            match validate(d) {
                Ok(()) => candidates.push(d),
                Err(why) => plan.blocked.push(Blocked {
                    owner: d.owner.clone(),
                    key: d.key,
                    reason: BlockReason::Invalid(why),
                }),
            }
        }
        candidates.sort_by(|a, b| {
            let rank = |d: &DesiredListener| !self.cloud_by_key.contains_key(&d.key);
            (rank(a), a.key, &a.owner).cmp(&(rank(b), b.key, &b.owner))
        });
        let mut accepted: Vec<&DesiredListener> = Vec::new();
        for d in candidates {
            match accepted.iter().find(|a| a.key.overlaps(&d.key)) {
                Some(winner) => plan.blocked.push(Blocked {
                    owner: d.owner.clone(),
                    key: d.key,
                    reason: BlockReason::ConflictsWith {
                        owner: winner.owner.clone(),
                    },
                }),
                None => accepted.push(d),
            }
        }
        accepted.sort_by(|a, b| (a.key, &a.owner).cmp(&(b.key, &b.owner)));

        // 2-4. Match, decide deletes, and block creates on ports held by listeners that stay.
        //    Blocking a CR freezes its old listener (see `settle`), which can keep a port
        //    occupied for another CR, so repeat until nothing new is blocked (each round
        //    blocks at least one more CR, so this ends).
        let settled = loop {
            let round = self.settle(desired, deleting, &accepted);
            if round.blocked.is_empty() {
                break round;
            }
            accepted.retain(|a| !round.blocked.iter().any(|b| b.owner == a.owner));
            plan.blocked.extend(round.blocked);
        };
        let Settled {
            matched,
            creatable,
            delete_owners,
            ..
        } = settled;

        // 5. Steps, in execution order.
        let ids: Vec<(String, BTreeSet<OwnerRef>)> = delete_owners
            .into_iter()
            .map(|(id, owners)| (id.to_string(), owners))
            .collect();
        for chunk in NonEmpty::chunks(ids, self.limits.delete_listeners) {
            plan.steps.push(Step {
                owners: chunk.iter().flat_map(|(_, o)| o.iter().cloned()).collect(),
                call: Call::DeleteListeners {
                    listener_ids: chunk.map(|(id, _)| id.clone()),
                },
            });
        }

        self.create_steps(&creatable, &mut plan.steps);

        let mut targets = TargetWork::default();
        let mut rule_steps = RuleSteps::default();
        for (d, c) in &matched {
            let changes = listener_changes(d, c);
            if !changes.is_empty() {
                plan.steps.push(Step {
                    owners: BTreeSet::from([d.owner.clone()]),
                    call: Call::ModifyListener {
                        listener_id: c.id.clone(),
                        changes,
                    },
                });
            }
            let listener = ListenerRef::Id(c.id.clone());
            if d.key.protocol.is_l7() {
                rule_steps.diff(d, c, &mut targets);
            } else {
                targets.diff(&d.owner, &listener, None, &d.targets, &c.targets);
            }
            plan.listeners.insert(d.owner.clone(), listener);
        }
        for d in &creatable {
            let listener = ListenerRef::Key(d.key);
            if d.key.protocol.is_l7() {
                let sni = ListenerSpec::of(d).sni_switch;
                let rules = sorted_rules(d);
                rule_steps.create(&d.owner, &listener, &rules, sni);
                for r in rules {
                    let rule = RuleRef::Key(r.key.clone());
                    targets.diff(
                        &d.owner,
                        &listener,
                        Some(&rule),
                        &r.targets,
                        &TargetSet::new(),
                    );
                }
            } else {
                targets.diff(&d.owner, &listener, None, &d.targets, &TargetSet::new());
            }
            plan.listeners.insert(d.owner.clone(), listener);
        }
        rule_steps.into_steps(self.limits, &mut plan.steps);
        targets.into_steps(self.limits, &mut plan.steps);
        plan
    }

    /// `CreateListener` steps: single-port listeners grouped by identical spec, ≤ the port
    /// limit each; range listeners one per call (the API takes one `EndPort` per call).
    fn create_steps(&self, creatable: &[&DesiredListener], steps: &mut Vec<Step>) {
        let mut groups: BTreeMap<ListenerSpec, Vec<&DesiredListener>> = BTreeMap::new();
        let mut ranges = Vec::new();
        for d in creatable {
            if d.key.end_port.is_some() {
                ranges.push(*d);
            } else {
                groups.entry(ListenerSpec::of(d)).or_default().push(d);
            }
        }
        let new = |d: &DesiredListener| NewListener {
            key: d.key,
            name: d.name.clone(),
        };
        for (spec, members) in groups {
            for chunk in NonEmpty::chunks(members, self.limits.create_ports) {
                steps.push(Step {
                    owners: chunk.iter().map(|d| d.owner.clone()).collect(),
                    call: Call::CreateListeners {
                        spec: spec.clone(),
                        listeners: chunk.map(|d| new(d)),
                    },
                });
            }
        }
        for d in ranges {
            steps.push(Step {
                owners: BTreeSet::from([d.owner.clone()]),
                call: Call::CreateListeners {
                    spec: ListenerSpec::of(d),
                    listeners: NonEmpty::one(new(d)),
                },
            });
        }
    }
}

/// One round of matching for a fixed set of accepted desired listeners.
struct Settled<'a> {
    matched: Vec<(&'a DesiredListener, &'a CloudListener)>,
    creatable: Vec<&'a DesiredListener>,
    delete_owners: BTreeMap<&'a str, BTreeSet<OwnerRef>>,
    blocked: Vec<Blocked>,
}

impl<'a> Planner<'a> {
    /// Matches cloud listeners to `accepted` by key (also how a listener is adopted after its
    /// CR lost its status), picks the listeners to delete under the ownership rule, and finds
    /// accepted listeners that cannot be created because a port stays occupied.
    ///
    /// HTTPS with SNI on in the cloud but off in the CR cannot be modified back (0 → 1 only),
    /// so it is recreated. Ids held only by blocked CRs are frozen, never deleted, so a CR with
    /// a transient error does not lose its listener.
    fn settle(
        &self,
        desired: &'a [DesiredListener],
        deleting: &'a [DeletingListener],
        accepted: &[&'a DesiredListener],
    ) -> Settled<'a> {
        let mut round = Settled {
            matched: Vec::new(),
            creatable: Vec::new(),
            delete_owners: BTreeMap::new(),
            blocked: Vec::new(),
        };
        let frozen: BTreeSet<&str> = desired
            .iter()
            .filter(|d| !accepted.iter().any(|a| a.owner == d.owner))
            .filter_map(|d| d.known_listener_id.as_deref())
            .collect();
        let port_in_use = |d: &DesiredListener, c: &CloudListener| Blocked {
            owner: d.owner.clone(),
            key: d.key,
            reason: BlockReason::PortInUse {
                listener_id: c.id.clone(),
                key: c.key,
            },
        };

        let mut to_create = Vec::new();
        for &d in accepted {
            match self.cloud_by_key.get(&d.key) {
                Some(c) if c.sni_switch && !ListenerSpec::of(d).sni_switch => {
                    if frozen.contains(c.id.as_str()) {
                        round.blocked.push(port_in_use(d, c));
                        continue;
                    }
                    round
                        .delete_owners
                        .entry(c.id.as_str())
                        .or_default()
                        .insert(d.owner.clone());
                    to_create.push(d);
                }
                Some(c) => round.matched.push((d, *c)),
                None => to_create.push(d),
            }
        }
        let claimed: BTreeSet<&str> = round.matched.iter().map(|(_, c)| c.id.as_str()).collect();

        // Ownership: a cloud listener not claimed by key is deleted only when its id is the
        // status of an accepted or deleting Listener CR, and not frozen.
        let owners_by_id = accepted
            .iter()
            .filter_map(|d| d.known_listener_id.as_deref().map(|id| (id, &d.owner)))
            .chain(
                deleting
                    .iter()
                    .filter_map(|d| d.known_listener_id.as_deref().map(|id| (id, &d.owner))),
            );
        for (id, owner) in owners_by_id {
            if let Some(c) = self.cloud.iter().find(|c| c.id == id)
                && !claimed.contains(id)
                && !frozen.contains(id)
            {
                round
                    .delete_owners
                    .entry(c.id.as_str())
                    .or_default()
                    .insert(owner.clone());
            }
        }

        // A deleting CR whose status never got the id (deleted while its create was in flight)
        // still owns the cloud listener at exactly its key when that listener has the name the CR
        // gave it. Anything else at that key is not ours and stays.
        for d in deleting.iter().filter(|d| d.known_listener_id.is_none()) {
            let Some(name) = d.cloud_name.as_deref() else {
                continue;
            };
            if let Some(c) = self.cloud_by_key.get(&d.key)
                && c.name == name
                && !claimed.contains(c.id.as_str())
                && !frozen.contains(c.id.as_str())
            {
                round
                    .delete_owners
                    .entry(c.id.as_str())
                    .or_default()
                    .insert(d.owner.clone());
            }
        }

        // New listeners must not overlap a cloud listener that stays (claimed ones sit at
        // accepted keys, which do not overlap each other).
        for d in to_create {
            let occupied = self.cloud.iter().find(|c| {
                !round.delete_owners.contains_key(c.id.as_str())
                    && !claimed.contains(c.id.as_str())
                    && c.key.overlaps(&d.key)
            });
            match occupied {
                Some(c) => round.blocked.push(port_in_use(d, c)),
                None => round.creatable.push(d),
            }
        }
        round
    }
}

/// Desired rules in key order (validated unique).
fn sorted_rules(d: &DesiredListener) -> Vec<&DesiredRule> {
    let mut rules: Vec<&DesiredRule> = d.rules.iter().collect();
    rules.sort_by(|a, b| a.key.cmp(&b.key));
    rules
}

/// `ModifyListener` fields for a matched listener (bcs `needUpdateAttribute`, plus the
/// listener-level L7 fields, which bcs sent only when it created a listener outside its bulk path).
fn listener_changes(d: &DesiredListener, c: &CloudListener) -> ListenerChanges {
    let spec = ListenerSpec::of(d);
    ListenerChanges {
        attributes: spec
            .attributes
            .as_ref()
            .map(|a| attribute_changes(a, &c.attributes))
            .unwrap_or_default(),
        certificate: spec
            .certificate
            .filter(|cert| c.certificate.as_ref() != Some(cert)),
        enable_sni: spec.sni_switch && !c.sni_switch,
        keepalive: (d.key.protocol.is_l7() && spec.keepalive != c.keepalive)
            .then_some(spec.keepalive),
    }
}

/// Rule calls collected per listener, emitted in phase order.
#[derive(Default)]
struct RuleSteps {
    deletes: Vec<(OwnerRef, String, Vec<String>)>,
    creates: Vec<(OwnerRef, ListenerRef, Vec<NewRule>)>,
    modifies: Vec<Step>,
    domains: Vec<Step>,
}

impl RuleSteps {
    fn new_rule(r: &DesiredRule, sni: bool) -> NewRule {
        NewRule {
            key: r.key.clone(),
            attributes: r.attributes.clone(),
            certificate: if sni { r.certificate.clone() } else { None },
        }
    }

    fn create(
        &mut self,
        owner: &OwnerRef,
        listener: &ListenerRef,
        rules: &[&DesiredRule],
        sni: bool,
    ) {
        if !rules.is_empty() {
            self.creates.push((
                owner.clone(),
                listener.clone(),
                rules.iter().map(|r| Self::new_rule(r, sni)).collect(),
            ));
        }
    }

    /// Rule diff of a matched L7 listener, keyed by domain + url as in bcs.
    fn diff(&mut self, d: &DesiredListener, c: &CloudListener, targets: &mut TargetWork) {
        let sni = ListenerSpec::of(d).sni_switch;
        let listener = ListenerRef::Id(c.id.clone());
        let owners = BTreeSet::from([d.owner.clone()]);
        let cloud_rules: BTreeMap<&RuleKey, &CloudRule> =
            c.rules.iter().map(|r| (&r.key, r)).collect();
        let wanted: BTreeSet<&RuleKey> = d.rules.iter().map(|r| &r.key).collect();

        let stale: Vec<String> = c
            .rules
            .iter()
            .filter(|r| !wanted.contains(&r.key))
            .map(|r| r.location_id.clone())
            .collect();
        if !stale.is_empty() {
            self.deletes.push((d.owner.clone(), c.id.clone(), stale));
        }

        let mut new_rules = Vec::new();
        let mut domain_certs: BTreeMap<&str, &Certificate> = BTreeMap::new();
        for r in sorted_rules(d) {
            let Some(cr) = cloud_rules.get(&r.key) else {
                new_rules.push(r);
                let rule = RuleRef::Key(r.key.clone());
                targets.diff(
                    &d.owner,
                    &listener,
                    Some(&rule),
                    &r.targets,
                    &TargetSet::new(),
                );
                continue;
            };
            if let Some(a) = &r.attributes {
                let changes = attribute_changes(a, &cr.attributes);
                if !changes.is_empty() {
                    self.modifies.push(Step {
                        owners: owners.clone(),
                        call: Call::ModifyRule {
                            listener_id: c.id.clone(),
                            location_id: cr.location_id.clone(),
                            changes,
                        },
                    });
                }
            }
            if sni
                && let Some(cert) = &r.certificate
                && cr.certificate.as_ref() != Some(cert)
            {
                domain_certs.insert(&r.key.domain, cert);
            }
            let rule = RuleRef::Id(cr.location_id.clone());
            targets.diff(&d.owner, &listener, Some(&rule), &r.targets, &cr.targets);
        }
        self.create(&d.owner, &listener, &new_rules, sni);
        for (domain, cert) in domain_certs {
            self.domains.push(Step {
                owners: owners.clone(),
                call: Call::ModifyDomainAttributes {
                    listener_id: c.id.clone(),
                    domain: domain.to_string(),
                    certificate: cert.clone(),
                },
            });
        }
    }

    fn into_steps(self, limits: &Limits, steps: &mut Vec<Step>) {
        for (owner, listener_id, ids) in self.deletes {
            for location_ids in NonEmpty::chunks(ids, limits.rules_per_call) {
                steps.push(Step {
                    owners: BTreeSet::from([owner.clone()]),
                    call: Call::DeleteRules {
                        listener_id: listener_id.clone(),
                        location_ids,
                    },
                });
            }
        }
        for (owner, listener, rules) in self.creates {
            for rules in NonEmpty::chunks(rules, limits.rules_per_call) {
                steps.push(Step {
                    owners: BTreeSet::from([owner.clone()]),
                    call: Call::CreateRules {
                        listener: listener.clone(),
                        rules,
                    },
                });
            }
        }
        steps.extend(self.modifies);
        steps.extend(self.domains);
    }
}
