//! The `lbids` / `lbnames` Ingress annotations: `"lb-a,ap-guangzhou:lb-b"` or
//! `"name1,ap-xx:name2"`. `lbids` wins when both are set.

use std::collections::BTreeMap;

use crate::api::keys::{ANNOTATION_LB_IDS, ANNOTATION_LB_NAMES};

/// A CLB reference with its region made explicit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct LbKey {
    pub region: String,
    /// `lb-xxx` for ids, the CLB name for names.
    pub value: String,
}

impl std::fmt::Display for LbKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.region, self.value)
    }
}

/// Which CLBs an Ingress asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LbSelection {
    /// From `lbids`: looked up with `LoadBalancerIds`.
    Ids(Vec<LbKey>),
    /// From `lbnames`: looked up with `LoadBalancerName`.
    Names(Vec<LbKey>),
}

impl LbSelection {
    pub fn keys(&self) -> &[LbKey] {
        match self {
            LbSelection::Ids(k) | LbSelection::Names(k) => k,
        }
    }
}

/// Why the annotation cannot be used; the text is shown to users by the webhook.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LbAnnotationError {
    #[error(
        "metadata.annotations: one of {ANNOTATION_LB_IDS} or {ANNOTATION_LB_NAMES} is required"
    )]
    Missing,
    #[error(
        "metadata.annotations[{annotation}]: entry {entry:?} is not a load balancer id (expected lb-xxx or region:lb-xxx)"
    )]
    BadId {
        annotation: &'static str,
        entry: String,
    },
    #[error(
        "metadata.annotations[{annotation}]: entry {entry:?} is not a load balancer name (expected name or region:name)"
    )]
    BadName {
        annotation: &'static str,
        entry: String,
    },
    #[error(
        "metadata.annotations[{annotation}]: entry {entry:?} has no region and the controller has no default region"
    )]
    NoRegion {
        annotation: &'static str,
        entry: String,
    },
}

/// Parses the Ingress annotations; entries without `region:` get `default_region`. Blank entries are
/// ignored and repeated entries kept once (first position).
pub fn parse_lb_annotations(
    annotations: Option<&BTreeMap<String, String>>,
    default_region: &str,
) -> Result<LbSelection, LbAnnotationError> {
    let get = |key: &str| {
        annotations
            .and_then(|a| a.get(key))
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    };
    if let Some(ids) = get(ANNOTATION_LB_IDS) {
        return parse_list(ids, ANNOTATION_LB_IDS, default_region, parse_id).map(LbSelection::Ids);
    }
    if let Some(names) = get(ANNOTATION_LB_NAMES) {
        return parse_list(names, ANNOTATION_LB_NAMES, default_region, parse_name)
            .map(LbSelection::Names);
    }
    Err(LbAnnotationError::Missing)
}

type EntryParser = fn(&str, &'static str) -> Result<(Option<String>, String), LbAnnotationError>;

fn parse_list(
    value: &str,
    annotation: &'static str,
    default_region: &str,
    parse_entry: EntryParser,
) -> Result<Vec<LbKey>, LbAnnotationError> {
    let mut out: Vec<LbKey> = Vec::new();
    for entry in value.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let (region, value) = parse_entry(entry, annotation)?;
        let region = match region {
            Some(r) => r,
            None if default_region.is_empty() => {
                return Err(LbAnnotationError::NoRegion {
                    annotation,
                    entry: entry.to_owned(),
                });
            }
            None => default_region.to_owned(),
        };
        let key = LbKey { region, value };
        if !out.contains(&key) {
            out.push(key);
        }
    }
    if out.is_empty() {
        return Err(LbAnnotationError::Missing);
    }
    Ok(out)
}

/// `lb-xxx` or `region:lb-xxx`: at most one `:`, and the id starts with `lb-` (bcs `MatchLbStrWithID`).
fn parse_id(
    entry: &str,
    annotation: &'static str,
) -> Result<(Option<String>, String), LbAnnotationError> {
    let bad = || LbAnnotationError::BadId {
        annotation,
        entry: entry.to_owned(),
    };
    let (region, id) = match entry.split_once(':') {
        Some((r, id)) => (Some(r.trim()), id.trim()),
        None => (None, entry),
    };
    if id.contains(':')
        || !id.starts_with("lb-")
        || id.len() == 3
        || region.is_some_and(|r| !is_region(r))
    {
        return Err(bad());
    }
    Ok((region.map(str::to_owned), id.to_owned()))
}

/// `name` or `region:name`; a prefix that does not look like a region is part of the name.
fn parse_name(
    entry: &str,
    annotation: &'static str,
) -> Result<(Option<String>, String), LbAnnotationError> {
    let (region, name) = match entry.split_once(':') {
        Some((r, n)) if is_region(r.trim()) => (Some(r.trim().to_owned()), n.trim()),
        _ => (None, entry),
    };
    if name.is_empty() {
        return Err(LbAnnotationError::BadName {
            annotation,
            entry: entry.to_owned(),
        });
    }
    Ok((region, name.to_owned()))
}

/// Tencent region ids look like `ap-guangzhou`, `na-siliconvalley`, `eu-frankfurt`, `sa-saopaulo`.
fn is_region(s: &str) -> bool {
    ["ap-", "na-", "eu-", "sa-"]
        .iter()
        .any(|p| s.len() > p.len() && s.starts_with(p))
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
