//! The per-pod CLB weight handshake of the GameWorkload in-place update hooks: a hook sets
//! `networkextension.bkbcs.tencent.com/clb-weight` (0–100) and `…/clb-weight-ready: "false"`, the controller
//! applies the weight to every CLB target of the pod and sets `…/clb-weight-ready: "true"` once the cloud has it.
//! The manual's HookTemplate spells the group `networkextension.bkbc.tencent.com`; those keys work too.

use std::collections::BTreeMap;

use crate::api::keys::{ANNOTATION_CLB_WEIGHT, ANNOTATION_CLB_WEIGHT_READY};

/// The manual's spelling of [`ANNOTATION_CLB_WEIGHT`] (its HookTemplate example).
pub const CLB_WEIGHT_MISSPELLED: &str = "networkextension.bkbc.tencent.com/clb-weight";
/// The manual's spelling of [`ANNOTATION_CLB_WEIGHT_READY`].
pub const CLB_WEIGHT_READY_MISSPELLED: &str = "networkextension.bkbc.tencent.com/clb-weight-ready";

/// The pod's weight annotation value, from the documented key or else the manual's spelling (then `true`).
pub fn weight_value(annotations: &BTreeMap<String, String>) -> Option<(&str, bool)> {
    annotations
        .get(ANNOTATION_CLB_WEIGHT)
        .map(|v| (v.as_str(), false))
        .or_else(|| {
            annotations
                .get(CLB_WEIGHT_MISSPELLED)
                .map(|v| (v.as_str(), true))
        })
}

/// A CLB weight, 0–100.
pub fn parse_weight(value: &str) -> Option<i32> {
    value
        .trim()
        .parse::<i32>()
        .ok()
        .filter(|w| (0..=100).contains(w))
}

/// The ready keys the pod carries that say `"false"`: a hook waits on them.
pub fn waiting_ready_keys(annotations: &BTreeMap<String, String>) -> Vec<&'static str> {
    [ANNOTATION_CLB_WEIGHT_READY, CLB_WEIGHT_READY_MISSPELLED]
        .into_iter()
        .filter(|k| annotations.get(*k).is_some_and(|v| v.trim() == "false"))
        .collect()
}

/// True when the pod uses the manual's spelling for either key.
pub fn uses_misspelled_keys(annotations: &BTreeMap<String, String>) -> bool {
    annotations.contains_key(CLB_WEIGHT_MISSPELLED)
        || annotations.contains_key(CLB_WEIGHT_READY_MISSPELLED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_documented_key_wins_and_the_manuals_spelling_is_flagged() {
        let both = map(&[(ANNOTATION_CLB_WEIGHT, "5"), (CLB_WEIGHT_MISSPELLED, "0")]);
        assert_eq!(weight_value(&both), Some(("5", false)));
        let manual = map(&[
            (CLB_WEIGHT_MISSPELLED, "0"),
            (CLB_WEIGHT_READY_MISSPELLED, "false"),
        ]);
        assert_eq!(weight_value(&manual), Some(("0", true)));
        assert!(uses_misspelled_keys(&manual));
        assert_eq!(
            waiting_ready_keys(&manual),
            vec![CLB_WEIGHT_READY_MISSPELLED]
        );
        assert!(waiting_ready_keys(&map(&[(ANNOTATION_CLB_WEIGHT_READY, "true")])).is_empty());
        assert_eq!(weight_value(&map(&[])), None);
    }

    #[test]
    fn weights_are_0_to_100() {
        assert_eq!(parse_weight(" 0 "), Some(0));
        assert_eq!(parse_weight("100"), Some(100));
        assert_eq!(parse_weight("101"), None);
        assert_eq!(parse_weight("-1"), None);
        assert_eq!(parse_weight("x"), None);
    }
}
