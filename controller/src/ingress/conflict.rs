//! Cluster-wide port conflicts per `region:lbID` between Ingresses and PortPools, for the
//! validating webhook. Callers turn each object into [`PortClaim`]s and ask whether a new or changed
//! object's claims overlap anyone else's.
//!
//! Differences from bcs: mapping ranges always account for `segmentLength`, pool items claim only
//! their whole segments (as the allocator hands out), and TCP and UDP may share a port whenever the
//! Listener CR names cannot collide (they only can between two Ingresses of one namespace when
//! `TCP_UDP_PORT_REUSE` is off, because both would be named `<lb>-<port>`).

use serde::Serialize;

use super::lbref::LbKey;
use crate::allocator::Geometry;
use crate::api::{Ingress, PortPool, Protocol};

/// The object behind a claim.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct ClaimOwner {
    /// `Ingress` or `PortPool`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ClaimOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// Ports `first..=last` of one protocol on one CLB, wanted by one rule, mapping or pool item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PortClaim {
    pub owner: ClaimOwner,
    /// Field path inside the owner (`spec.rules[0]`, `spec.poolItems[1]`).
    pub source: String,
    pub lb: LbKey,
    pub protocol: Protocol,
    pub first: i32,
    pub last: i32,
}

impl PortClaim {
    fn ports_text(&self) -> String {
        if self.first == self.last {
            format!("{} port {}", self.protocol, self.first)
        } else {
            format!("{} ports {}-{}", self.protocol, self.first, self.last)
        }
    }
}

/// Two claims that cannot both hold.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// From the object being admitted.
    pub claim: PortClaim,
    /// From an object already in the cluster.
    pub existing: PortClaim,
    /// First port both want.
    pub port: i32,
    pub message: String,
}

/// Claims of an Ingress on its CLBs (`lbs` as parsed from its annotation): every rule port and every
/// mapping range `startPort + startIndex·L ..= startPort + endIndex·L − 1`.
pub fn ingress_claims(ingress: &Ingress, lbs: &[LbKey]) -> Vec<PortClaim> {
    let owner = ClaimOwner {
        kind: "Ingress",
        namespace: ingress
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: ingress.metadata.name.clone().unwrap_or_default(),
    };
    let mut ranges = Vec::new();
    for (i, rule) in ingress.spec.rules.iter().enumerate() {
        ranges.push((
            format!("spec.rules[{i}]"),
            rule.protocol,
            rule.port,
            rule.port,
        ));
    }
    for (i, m) in ingress.spec.port_mappings.iter().enumerate() {
        if m.end_index <= m.start_index {
            continue;
        }
        let len = m.effective_segment_length();
        let first = m
            .start_port
            .saturating_add(m.start_index.saturating_mul(len));
        let last = m.start_port.saturating_add(m.end_index.saturating_mul(len)) - 1;
        ranges.push((format!("spec.portMappings[{i}]"), m.protocol, first, last));
    }
    expand(&owner, lbs, ranges)
}

/// Claims of a PortPool: each item's whole segments, per protocol (unset = TCP and UDP), on each of its
/// CLBs (`region:lb-x`, or bare ids in `default_region`). Unparsable items claim nothing (the pool
/// webhook rejects them).
pub fn portpool_claims(pool: &PortPool, default_region: &str) -> Vec<PortClaim> {
    let owner = ClaimOwner {
        kind: "PortPool",
        namespace: pool
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: pool.metadata.name.clone().unwrap_or_default(),
    };
    let mut claims = Vec::new();
    for (i, item) in pool.spec.pool_items.iter().enumerate() {
        let (Ok(start), Ok(end), Ok(len)) = (
            u16::try_from(item.start_port),
            u16::try_from(item.end_port),
            u16::try_from(item.effective_segment_length()),
        ) else {
            continue;
        };
        let geometry = Geometry {
            start_port: start,
            end_port: end,
            segment_length: len,
        };
        let slots = geometry.slot_count();
        if slots == 0 {
            continue;
        }
        let first = i32::from(geometry.slot_start(0));
        let last = i32::from(geometry.slot_last(slots - 1));
        let lbs: Vec<LbKey> = item
            .load_balancer_ids
            .iter()
            .filter_map(|s| {
                let (region, id) = match s.trim().split_once(':') {
                    Some((r, id)) => (r.trim(), id.trim()),
                    None => (default_region, s.trim()),
                };
                (!id.is_empty()).then(|| LbKey {
                    region: region.to_owned(),
                    value: id.to_owned(),
                })
            })
            .collect();
        let ranges = item
            .protocols()
            .unwrap_or_default()
            .into_iter()
            .map(|p| (format!("spec.poolItems[{i}]"), p, first, last))
            .collect();
        claims.extend(expand(&owner, &lbs, ranges));
    }
    claims
}

fn expand(
    owner: &ClaimOwner,
    lbs: &[LbKey],
    ranges: Vec<(String, Protocol, i32, i32)>,
) -> Vec<PortClaim> {
    lbs.iter()
        .flat_map(|lb| {
            ranges
                .iter()
                .map(|(source, protocol, first, last)| PortClaim {
                    owner: owner.clone(),
                    source: source.clone(),
                    lb: lb.clone(),
                    protocol: *protocol,
                    first: *first,
                    last: *last,
                })
        })
        .collect()
}

/// TCP, TCP_SSL, HTTP and HTTPS share one port space on a CLB; UDP and QUIC another.
fn is_udp_class(p: Protocol) -> bool {
    matches!(p, Protocol::Udp | Protocol::Quic)
}

/// Every pair (claim of the candidate, claim of another object) on the same CLB whose ports overlap and
/// whose protocols cannot share a port. Claims of `existing` owned by the candidate itself (its previous
/// version, on UPDATE) are ignored; conflicts inside the candidate are [`super::validate`]'s business.
pub fn find_conflicts(
    candidate: &[PortClaim],
    existing: &[PortClaim],
    tcp_udp_port_reuse: bool,
) -> Vec<Conflict> {
    let mut out = Vec::new();
    for claim in candidate {
        for other in existing {
            if other.owner == claim.owner || other.lb != claim.lb {
                continue;
            }
            let first = claim.first.max(other.first);
            if first > claim.last.min(other.last) {
                continue;
            }
            let same_class = is_udp_class(claim.protocol) == is_udp_class(other.protocol);
            let names_collide = !tcp_udp_port_reuse
                && claim.owner.kind == "Ingress"
                && other.owner.kind == "Ingress"
                && claim.owner.namespace == other.owner.namespace;
            if !same_class && !names_collide {
                continue;
            }
            let why = if same_class {
                String::new()
            } else {
                " (TCP and UDP share a port across Ingresses of one namespace only with TCP_UDP_PORT_REUSE=true)"
                    .to_owned()
            };
            let message = format!(
                "port conflict on {lb} port {first}: {owner} ({source}, {ports}) overlaps {other_owner} ({other_source}, {other_ports}){why}",
                lb = claim.lb,
                owner = claim.owner,
                source = claim.source,
                ports = claim.ports_text(),
                other_owner = other.owner,
                other_source = other.source,
                other_ports = other.ports_text(),
            );
            out.push(Conflict {
                claim: claim.clone(),
                existing: other.clone(),
                port: first,
                message,
            });
        }
    }
    out
}
