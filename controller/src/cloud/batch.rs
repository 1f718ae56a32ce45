//! Pure request splitting within the API's array limits ([`clb_api::limits`]). No I/O: the client sends what
//! these functions plan.

use clb_api::limits;
use clb_api::model::{Certificate, HealthCheck, RsWeightRule};

/// DescribeLoadBalancers `LoadBalancerIds` per call.
pub const MAX_DESCRIBE_LB_IDS: usize = limits::DESCRIBE_LOAD_BALANCER_IDS;
/// DescribeListeners `ListenerIds` per call.
pub const MAX_DESCRIBE_LISTENER_IDS: usize = limits::DESCRIBE_LISTENER_IDS;
/// DescribeTargets `ListenerIds` per call.
pub const MAX_DESCRIBE_TARGETS_LISTENER_IDS: usize = limits::DESCRIBE_TARGETS_LISTENER_IDS;
/// CreateListener `Ports` per call (the API wants fewer than 50).
pub const MAX_CREATE_LISTENER_PORTS: usize = limits::CREATE_LISTENER_PORTS;
/// DeleteLoadBalancerListeners `ListenerIds` per call.
pub const MAX_DELETE_LISTENER_IDS: usize = limits::DELETE_LISTENER_IDS;
/// RegisterTargets / DeregisterTargets `Targets` per call.
pub const MAX_TARGETS_PER_CALL: usize = limits::TARGETS_PER_CALL;
/// BatchRegisterTargets / BatchDeregisterTargets `Targets` per call.
pub const MAX_BATCH_TARGETS: usize = limits::BATCH_TARGETS;
/// BatchModifyTargetWeight rules per call.
pub const MAX_WEIGHT_RULES: usize = limits::WEIGHT_RULES;
/// BatchModifyTargetWeight targets per rule.
pub const MAX_WEIGHT_TARGETS_PER_RULE: usize = limits::WEIGHT_TARGETS_PER_RULE;
/// BatchModifyTargetWeight targets per call.
pub const MAX_WEIGHT_TARGETS: usize = limits::WEIGHT_TARGETS_TOTAL;

/// Listener settings that one CreateListener call applies to all of its ports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListenerAttributes {
    pub health_check: Option<HealthCheck>,
    pub certificate: Option<Certificate>,
    pub session_expire_time: Option<i64>,
    pub scheduler: Option<String>,
    pub sni_switch: Option<i64>,
    pub target_type: Option<String>,
    pub session_type: Option<String>,
    pub keepalive_enable: Option<i64>,
    pub deregister_target_rst: Option<bool>,
}

/// One listener to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewListener {
    pub protocol: String,
    pub port: u16,
    /// Port-range listener end; such a listener needs a CreateListener call of its own.
    pub end_port: Option<u16>,
    pub name: Option<String>,
    pub attributes: ListenerAttributes,
}

impl NewListener {
    /// Listeners that may share one CreateListener call.
    fn batches_with(&self, other: &NewListener) -> bool {
        self.end_port.is_none()
            && other.end_port.is_none()
            && self.protocol.eq_ignore_ascii_case(&other.protocol)
            && self.attributes == other.attributes
            && self.name.is_some() == other.name.is_some()
    }
}

/// Groups `listeners` into CreateListener calls: same protocol, attributes and naming share a call of at most
/// `max_ports` ports; each range listener gets its own call. Returns indices into `listeners`; groups keep the
/// order in which they first appear and each group keeps input order.
pub fn plan_create_listeners(listeners: &[NewListener], max_ports: usize) -> Vec<Vec<usize>> {
    let max_ports = max_ports.max(1);
    let mut groups: Vec<Vec<usize>> = Vec::new();
    for (i, listener) in listeners.iter().enumerate() {
        match groups
            .iter_mut()
            .find(|g| listener.batches_with(&listeners[g[0]]))
        {
            Some(group) => group.push(i),
            None => groups.push(vec![i]),
        }
    }
    groups
        .into_iter()
        .flat_map(|g| {
            g.chunks(max_ports)
                .map(<[usize]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Between 1 and [`MAX_DELETE_LISTENER_IDS`] listener ids. DeleteLoadBalancerListeners with an empty or omitted
/// `ListenerIds` deletes **every** listener of the load balancer, so the delete call only accepts this type, and
/// the only way to build one is [`ListenerIdBatch::split`], which never yields an empty batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerIdBatch(Vec<String>);

impl ListenerIdBatch {
    /// Splits `ids` (duplicates and empty strings dropped, order kept) into batches; no ids → no batches.
    pub fn split(ids: &[String]) -> Vec<ListenerIdBatch> {
        let mut seen = std::collections::HashSet::new();
        let unique: Vec<String> = ids
            .iter()
            .filter(|id| !id.is_empty() && seen.insert(id.as_str()))
            .cloned()
            .collect();
        unique
            .chunks(MAX_DELETE_LISTENER_IDS)
            .map(|c| ListenerIdBatch(c.to_vec()))
            .collect()
    }

    pub fn ids(&self) -> &[String] {
        &self.0
    }
}

/// Packs weight changes into BatchModifyTargetWeight calls: rules with more than [`MAX_WEIGHT_TARGETS_PER_RULE`]
/// targets are split into several rules for the same listener/location, rules without targets are dropped, and
/// each call holds at most [`MAX_WEIGHT_RULES`] rules and [`MAX_WEIGHT_TARGETS`] targets.
pub fn plan_weight_modifications(rules: &[RsWeightRule]) -> Vec<Vec<RsWeightRule>> {
    let pieces = rules.iter().flat_map(|rule| {
        rule.targets
            .chunks(MAX_WEIGHT_TARGETS_PER_RULE)
            .map(move |targets| RsWeightRule {
                targets: targets.to_vec(),
                ..rule.clone()
            })
    });
    let mut calls: Vec<Vec<RsWeightRule>> = Vec::new();
    let mut current: Vec<RsWeightRule> = Vec::new();
    let mut current_targets = 0;
    for piece in pieces {
        if !current.is_empty()
            && (current.len() == MAX_WEIGHT_RULES
                || current_targets + piece.targets.len() > MAX_WEIGHT_TARGETS)
        {
            calls.push(std::mem::take(&mut current));
            current_targets = 0;
        }
        current_targets += piece.targets.len();
        current.push(piece);
    }
    if !current.is_empty() {
        calls.push(current);
    }
    calls
}

#[cfg(test)]
mod tests {
    use super::*;
    use clb_api::model::Target;

    fn tcp(port: u16) -> NewListener {
        NewListener {
            protocol: "TCP".into(),
            port,
            end_port: None,
            name: Some(format!("l-{port}")),
            attributes: ListenerAttributes::default(),
        }
    }

    #[test]
    fn many_ports_split_into_calls_below_fifty() {
        let listeners: Vec<_> = (0..120).map(|i| tcp(10000 + i)).collect();
        let plan = plan_create_listeners(&listeners, MAX_CREATE_LISTENER_PORTS);
        let sizes: Vec<usize> = plan.iter().map(Vec::len).collect();
        assert_eq!(sizes, [49, 49, 22]);
        let flat: Vec<usize> = plan.concat();
        assert_eq!(flat, (0..120).collect::<Vec<_>>());
    }

    #[test]
    fn different_protocols_attributes_and_ranges_do_not_share_a_call() {
        let mut udp = tcp(2);
        udp.protocol = "UDP".into();
        let mut lower = tcp(3);
        lower.protocol = "tcp".into();
        let mut sticky = tcp(4);
        sticky.attributes.session_expire_time = Some(30);
        let mut range = tcp(5);
        range.end_port = Some(9);
        let mut range2 = tcp(20);
        range2.end_port = Some(29);
        let mut unnamed = tcp(6);
        unnamed.name = None;
        let listeners = vec![tcp(1), udp, lower, sticky, range, range2, unnamed, tcp(7)];
        let plan = plan_create_listeners(&listeners, 49);
        assert_eq!(
            plan,
            vec![vec![0, 2, 7], vec![1], vec![3], vec![4], vec![5], vec![6]]
        );
    }

    #[test]
    fn delete_batches_are_never_empty() {
        assert!(ListenerIdBatch::split(&[]).is_empty());
        assert!(ListenerIdBatch::split(&[String::new()]).is_empty());
        let ids: Vec<String> = (0..45).map(|i| format!("lbl-{i:08}")).collect();
        let mut with_dups = ids.clone();
        with_dups.extend(ids.iter().take(5).cloned());
        let batches = ListenerIdBatch::split(&with_dups);
        let sizes: Vec<usize> = batches.iter().map(|b| b.ids().len()).collect();
        assert_eq!(sizes, [20, 20, 5]);
        assert_eq!(
            batches
                .iter()
                .flat_map(|b| b.ids().to_vec())
                .collect::<Vec<_>>(),
            ids
        );
    }

    fn rule(listener: &str, n: usize) -> RsWeightRule {
        RsWeightRule {
            listener_id: listener.into(),
            targets: (0..n)
                .map(|i| Target {
                    port: 8000 + i as i64,
                    eni_ip: Some("10.0.0.1".into()),
                    weight: Some(5),
                    ..Target::default()
                })
                .collect(),
            ..RsWeightRule::default()
        }
    }

    #[test]
    fn weight_changes_respect_every_limit() {
        // 3 rules of 120 targets (each split 50/50/20), 150 rules of 3, one empty rule.
        let mut rules: Vec<RsWeightRule> =
            (0..3).map(|i| rule(&format!("lbl-big{i}"), 120)).collect();
        rules.extend((0..150).map(|i| rule(&format!("lbl-s{i}"), 3)));
        rules.push(rule("lbl-empty", 0));
        let calls = plan_weight_modifications(&rules);
        for call in &calls {
            assert!(!call.is_empty() && call.len() <= MAX_WEIGHT_RULES);
            assert!(
                call.iter()
                    .all(|r| !r.targets.is_empty() && r.targets.len() <= 50)
            );
            assert!(call.iter().map(|r| r.targets.len()).sum::<usize>() <= MAX_WEIGHT_TARGETS);
        }
        let total: usize = calls.iter().flatten().map(|r| r.targets.len()).sum();
        assert_eq!(total, 3 * 120 + 150 * 3);
        let big0: Vec<usize> = calls
            .iter()
            .flatten()
            .filter(|r| r.listener_id == "lbl-big0")
            .map(|r| r.targets.len())
            .collect();
        assert_eq!(big0, [50, 50, 20]);
        assert!(calls.iter().flatten().all(|r| r.listener_id != "lbl-empty"));
        // 810 targets need at least two calls; the rule count forces a third (159 rules > 100).
        assert_eq!(
            calls.len(),
            3,
            "{:?}",
            calls.iter().map(Vec::len).collect::<Vec<_>>()
        );
    }
}
