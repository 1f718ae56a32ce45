//! PortPool admission, pure: the server reads the cluster into a [`ClusterView`] and
//! calls these. Messages start with the field path (`spec.poolItems[1].endPort: …`).

use std::collections::BTreeMap;

use crate::api::{PortBinding, PortPool, PortPoolItem};
use crate::ingress::{LbKey, Settings, find_conflicts, portpool_claims};

use super::ClusterView;

/// bcs' `MaxPortQuantityForEachLoadbalancer`: ports (or segments) per item.
pub const MAX_SLOTS_PER_ITEM: i64 = 4000;
/// Bindings named in a deletion denial; the rest are counted.
const LISTED_BINDINGS: usize = 10;

/// CREATE (`old` = `None`) or UPDATE of a pool: every problem found; empty = allowed.
pub fn review_portpool(
    pool: &PortPool,
    old: Option<&PortPool>,
    view: &ClusterView,
    settings: &Settings,
) -> Vec<String> {
    let mut errors = static_checks(pool, &settings.default_region);
    if let Some(old) = old {
        errors.extend(update_checks(pool, old, view, &settings.default_region));
    }
    if errors.is_empty() {
        let candidate = portpool_claims(pool, &settings.default_region);
        let existing = view.claims(settings);
        errors.extend(
            find_conflicts(&candidate, &existing, settings.tcp_udp_port_reuse)
                .into_iter()
                .map(|c| format!("{}: {}", c.claim.source, c.message)),
        );
    }
    errors
}

/// DELETE of pool `namespace/name`: refused while any PortBinding still holds one of its ports.
pub fn review_portpool_delete(namespace: &str, name: &str, view: &ClusterView) -> Vec<String> {
    let holders = bindings_of(&view.bindings, namespace, name, None);
    if holders.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "port pool {namespace}/{name} still has port bindings: {}; delete those pods (or wait for their bindings to be cleaned) first",
        list_holders(&holders)
    )]
}

fn pool_ref(pool: &PortPool) -> (String, String) {
    (
        pool.metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        pool.metadata.name.clone().unwrap_or_default(),
    )
}

/// What needs no other object: policy, item fields, names, overlaps inside the pool.
fn static_checks(pool: &PortPool, default_region: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if let Some(policy) = pool.spec.allocate_policy.as_deref()
        && !matches!(policy, "" | "default" | "average")
    {
        errors.push(format!(
            "spec.allocatePolicy: {policy:?} is not supported (\"\", \"default\" or \"average\")"
        ));
    }
    if pool.spec.pool_items.is_empty() {
        errors.push("spec.poolItems: at least one item is required".to_owned());
    }
    let mut names: BTreeMap<&str, usize> = BTreeMap::new();
    // (item index, lb, first, last) of items whose range is usable.
    let mut ranges: Vec<(usize, LbKey, i32, i32)> = Vec::new();
    for (i, item) in pool.spec.pool_items.iter().enumerate() {
        let path = format!("spec.poolItems[{i}]");
        if item.item_name.trim().is_empty() {
            errors.push(format!("{path}.itemName: must not be empty"));
        } else if let Some(first) = names.insert(&item.item_name, i) {
            names.insert(&item.item_name, first);
            errors.push(format!(
                "{path}.itemName: {:?} is already used by spec.poolItems[{first}]",
                item.item_name
            ));
        }
        if item.load_balancer_ids.is_empty() {
            errors.push(format!("{path}.loadBalancerIDs: at least one is required"));
        }
        let lbs = lb_keys(item, default_region);
        for (k, raw) in item.load_balancer_ids.iter().enumerate() {
            let (_, id) = raw.trim().rsplit_once(':').unwrap_or(("", raw.trim()));
            if id.is_empty() {
                errors.push(format!(
                    "{path}.loadBalancerIDs[{k}]: {raw:?} is not a load balancer id (lb-xxx or region:lb-xxx)"
                ));
            }
        }
        if item.protocols().is_none() {
            errors.push(format!(
                "{path}.protocol: {:?} is not supported (\"\", TCP, UDP or TCP,UDP)",
                item.protocol.as_deref().unwrap_or("")
            ));
        }
        let len = item.segment_length.unwrap_or(0);
        if len < 0 {
            errors.push(format!("{path}.segmentLength: {len} must not be negative"));
        }
        if item.end_port <= item.start_port {
            errors.push(format!(
                "{path}.endPort: {} must be greater than startPort {} (the range is [startPort, endPort))",
                item.end_port, item.start_port
            ));
            continue;
        }
        let slots = (i64::from(item.end_port) - i64::from(item.start_port)) / i64::from(len.max(1));
        if slots > MAX_SLOTS_PER_ITEM {
            errors.push(format!(
                "{path}.endPort: {slots} ports or segments in one item, more than {MAX_SLOTS_PER_ITEM}"
            ));
        }
        for lb in lbs {
            ranges.push((i, lb, item.start_port, item.end_port - 1));
        }
    }
    // Two items of one pool never share a port of one CLB, whatever their protocols (bcs).
    for (j, b) in ranges.iter().enumerate() {
        for a in &ranges[..j] {
            if a.0 == b.0 || a.1 != b.1 {
                continue;
            }
            let first = a.2.max(b.2);
            if first <= a.3.min(b.3) {
                errors.push(format!(
                    "spec.poolItems[{}]: ports {}-{} on {} overlap spec.poolItems[{}] (ports {}-{}) from port {first}",
                    b.0, b.2, b.3, b.1, a.0, a.2, a.3
                ));
            }
        }
    }
    errors
}

/// UPDATE: startPort and segmentLength fixed per item, endPort only grows, removed items hold no bindings, and
/// the CLBs of an item stay as they are while it has bindings (their pods are bound to the old CLBs).
fn update_checks(
    pool: &PortPool,
    old: &PortPool,
    view: &ClusterView,
    default_region: &str,
) -> Vec<String> {
    let (namespace, name) = pool_ref(pool);
    let mut errors = Vec::new();
    for (i, item) in pool.spec.pool_items.iter().enumerate() {
        let Some(before) = old
            .spec
            .pool_items
            .iter()
            .find(|o| o.item_name == item.item_name)
        else {
            continue;
        };
        let path = format!("spec.poolItems[{i}]");
        if item.start_port != before.start_port {
            errors.push(format!(
                "{path}.startPort: cannot change ({} → {}); create a new item instead",
                before.start_port, item.start_port
            ));
        }
        if item.effective_segment_length() != before.effective_segment_length() {
            errors.push(format!(
                "{path}.segmentLength: cannot change ({} → {})",
                before.segment_length.unwrap_or(0),
                item.segment_length.unwrap_or(0)
            ));
        }
        if item.end_port < before.end_port {
            errors.push(format!(
                "{path}.endPort: may only grow ({} → {})",
                before.end_port, item.end_port
            ));
        }
        let mut now = lb_keys(item, default_region);
        let mut was = lb_keys(before, default_region);
        now.sort();
        was.sort();
        if now != was {
            let holders = bindings_of(&view.bindings, &namespace, &name, Some(&item.item_name));
            if !holders.is_empty() {
                errors.push(format!(
                    "{path}.loadBalancerIDs: cannot change while the item has port bindings: {}",
                    list_holders(&holders)
                ));
            }
        }
    }
    for before in &old.spec.pool_items {
        if pool
            .spec
            .pool_items
            .iter()
            .any(|n| n.item_name == before.item_name)
        {
            continue;
        }
        let holders = bindings_of(&view.bindings, &namespace, &name, Some(&before.item_name));
        if !holders.is_empty() {
            errors.push(format!(
                "spec.poolItems: item {:?} cannot be removed while it has port bindings: {}",
                before.item_name,
                list_holders(&holders)
            ));
        }
    }
    errors
}

/// CLBs of an item with their region made explicit (bare ids get the default region).
fn lb_keys(item: &PortPoolItem, default_region: &str) -> Vec<LbKey> {
    let mut keys: Vec<LbKey> = Vec::new();
    for raw in &item.load_balancer_ids {
        let (region, id) = match raw.trim().split_once(':') {
            Some((r, id)) => (r.trim(), id.trim()),
            None => (default_region, raw.trim()),
        };
        let key = LbKey {
            region: region.to_owned(),
            value: id.to_owned(),
        };
        if !id.is_empty() && !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// `namespace/name (item PROTO port[-end])` of each binding entry on the pool (and item, if given).
fn bindings_of(
    bindings: &[PortBinding],
    pool_namespace: &str,
    pool_name: &str,
    item: Option<&str>,
) -> Vec<String> {
    let mut out = Vec::new();
    for b in bindings {
        let holder = format!(
            "{}/{}",
            b.metadata.namespace.as_deref().unwrap_or("default"),
            b.metadata.name.as_deref().unwrap_or_default()
        );
        for e in &b.spec.port_binding_list {
            if e.pool_name != pool_name
                || e.pool_namespace != pool_namespace
                || item.is_some_and(|i| i != e.pool_item_name)
            {
                continue;
            }
            let ports = if e.end_port > e.start_port {
                format!("{}-{}", e.start_port, e.end_port)
            } else {
                e.start_port.to_string()
            };
            out.push(format!(
                "{holder} ({} {} {ports})",
                e.pool_item_name, e.protocol
            ));
        }
    }
    out
}

fn list_holders(holders: &[String]) -> String {
    let mut text = holders
        .iter()
        .take(LISTED_BINDINGS)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if holders.len() > LISTED_BINDINGS {
        text.push_str(&format!(" and {} more", holders.len() - LISTED_BINDINGS));
    }
    text
}
