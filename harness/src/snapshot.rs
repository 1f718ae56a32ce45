//! Readers of the JSON the harness looks at: cluster objects and fake-clb's state dump. Pure functions shared by
//! the runner's invariants and the measurements.

use std::collections::BTreeSet;

use serde_json::Value;

pub(crate) fn str_at<'a>(v: &'a Value, pointer: &str) -> Option<&'a str> {
    v.pointer(pointer).and_then(Value::as_str)
}

/// Load-balancer ids an item binds (`poolItemLoadBalancers[].loadbalancerID`, else
/// `loadBalancerIDs` with any `region:` prefix removed).
pub(crate) fn item_lbs(item: &Value) -> BTreeSet<String> {
    let mut ids: BTreeSet<String> = item
        .get("poolItemLoadBalancers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|lb| str_at(lb, "/loadbalancerID").map(str::to_string))
        .collect();
    if ids.is_empty() {
        ids = item
            .get("loadBalancerIDs")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(|id| id.rsplit(':').next().unwrap_or(id).to_string())
            .collect();
    }
    ids
}

/// Targets bound to a listener directly (L4) or through its rules (L7), from fake-clb's state dump.
pub(crate) fn targets(listener: &Value) -> Vec<&Value> {
    let direct = listener
        .get("targets")
        .and_then(Value::as_array)
        .into_iter()
        .flatten();
    let in_rules = listener
        .get("rules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|r| {
            r.get("targets")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        });
    direct.chain(in_rules).collect()
}
