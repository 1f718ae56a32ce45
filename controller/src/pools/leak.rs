//! Pure judgements of the port-pool leak checker and of the allocator rebuild.
//!
//! The pod webhook takes ports at admission, but the pod may never be stored (a later webhook denies it, the
//! write fails). Every webhook allocation is therefore recorded as pending in [`super::PoolState`]; whoever first
//! sees the port recorded in a pod annotation or a PortBinding confirms it. Pending allocations older than the
//! threshold that nothing records are released ([`reclaimable`]).
//!
//! A confirmed port can leak too: PortBindings carry no finalizer, so one deleted by hand (or a pod deleted before
//! its binding could be created) leaves its ports held with no record anywhere. A confirmed port that two sweeps
//! at least the threshold apart found recorded by no pod and no PortBinding is released ([`sweep_candidates`],
//! [`judge_unrecorded`]). [`duplicate_holdings`] finds ports two holders claim during the allocator rebuild.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;

use super::held::{HeldPort, held_ports};
use super::{PendingAllocation, PendingPort};
use crate::annotations::parse_pool_bindings;
use crate::api::{PortBinding, keys};

/// Pending allocations to release: older than `threshold` at `now`, no pod of that name exists, and no pod
/// annotation or PortBinding records any of their ports.
pub fn reclaimable(
    pending: &HashMap<PendingPort, PendingAllocation>,
    now: Instant,
    threshold: Duration,
    existing_pods: &HashSet<(String, String)>,
    claimed: &BTreeSet<HeldPort>,
) -> Vec<PendingPort> {
    let mut out: Vec<PendingPort> = pending
        .iter()
        .filter(|(_, p)| now.saturating_duration_since(p.since) >= threshold)
        .filter(|(_, p)| {
            p.pod.is_empty() || !existing_pods.contains(&(p.namespace.clone(), p.pod.clone()))
        })
        .filter(|(port, _)| !is_claimed(port, claimed))
        .map(|(port, _)| port.clone())
        .collect();
    out.sort();
    out
}

/// True when a pod annotation or PortBinding records the pending port (for any of its protocols).
pub fn is_claimed(port: &PendingPort, claimed: &BTreeSet<HeldPort>) -> bool {
    let (pool, item, protocol, start) = port;
    protocol
        .protocols()
        .iter()
        .any(|p| claimed.contains(&(pool.clone(), item.clone(), *p, *start)))
}

/// The held ports no pending webhook allocation covers: each was confirmed, i.e. seen recorded in a stored pod
/// or PortBinding (or held by the rebuild because one recorded it).
pub fn confirmed(
    held: &BTreeSet<HeldPort>,
    pending: &HashMap<PendingPort, PendingAllocation>,
) -> BTreeSet<HeldPort> {
    let pending: HashSet<HeldPort> = pending
        .keys()
        .flat_map(|(pool, item, protocol, start)| {
            protocol
                .protocols()
                .iter()
                .map(move |p| (pool.clone(), item.clone(), *p, *start))
        })
        .collect();
    held.iter()
        .filter(|port| !pending.contains(*port))
        .cloned()
        .collect()
}

/// Confirmed ports a sweep may judge: confirmed both before its lists began (`before`) and at the decision
/// (`now`), and not handed out again by the webhook in between (`reallocated`). A port confirmed only after the
/// lists began may have a holder they do not show yet; confirmation implies the holder was stored first, so for
/// the others the lists are authoritative.
pub fn sweep_candidates(
    before: &BTreeSet<HeldPort>,
    now: &BTreeSet<HeldPort>,
    reallocated: &HashSet<HeldPort>,
) -> BTreeSet<HeldPort> {
    before
        .intersection(now)
        .filter(|port| !reallocated.contains(*port))
        .cloned()
        .collect()
}

/// Decision of one sweep of confirmed allocations.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Unrecorded {
    /// Ports to release, with when they were first seen unrecorded.
    pub release: Vec<(HeldPort, Instant)>,
    /// Suspects after this sweep: unrecorded candidates and since when.
    pub suspects: HashMap<HeldPort, Instant>,
    /// Candidates seen unrecorded for the first time at this sweep.
    pub newly_suspected: Vec<HeldPort>,
}

/// Judges the `candidates` of one sweep at `now`. One that no pod or PortBinding records (`claimed`) becomes a
/// suspect; one that was already a suspect (`suspects`, from earlier sweeps) for at least `threshold` is
/// released. So a port is released only after two sweeps at least `threshold` apart found it unrecorded, never
/// while anything records it; a recorded port, or one that stopped being a candidate (freed, pending, handed out
/// again), is no longer a suspect.
pub fn judge_unrecorded(
    suspects: &HashMap<HeldPort, Instant>,
    candidates: &BTreeSet<HeldPort>,
    claimed: &BTreeSet<HeldPort>,
    now: Instant,
    threshold: Duration,
) -> Unrecorded {
    let mut out = Unrecorded::default();
    for port in candidates.iter().filter(|port| !claimed.contains(*port)) {
        match suspects.get(port) {
            Some(&since) if now.saturating_duration_since(since) >= threshold => {
                out.release.push((port.clone(), since));
            }
            Some(&since) => {
                out.suspects.insert(port.clone(), since);
            }
            None => {
                out.suspects.insert(port.clone(), now);
                out.newly_suspected.push(port.clone());
            }
        }
    }
    out
}

/// Who records a port: a PortBinding or a pod annotation. A pod and its PortBinding share the name, so they
/// are the same holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `PortBinding` or `Pod`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl Holder {
    fn same_owner(&self, other: &Holder) -> bool {
        self.namespace == other.namespace && self.name == other.name
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// One port recorded by one holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub port: HeldPort,
    pub holder: Holder,
}

/// A port claimed by a second, different holder: `first` keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Duplicate {
    pub port: HeldPort,
    pub first: Holder,
    pub second: Holder,
}

/// Ports claimed by more than one holder, in claim order; the first claim wins. Repeats by the same holder
/// (a pod and its PortBinding) are not duplicates.
pub fn duplicate_holdings(claims: &[Claim]) -> Vec<Duplicate> {
    let mut first: HashMap<&HeldPort, &Holder> = HashMap::new();
    let mut out = Vec::new();
    for claim in claims {
        match first.get(&claim.port) {
            None => {
                first.insert(&claim.port, &claim.holder);
            }
            Some(owner) if owner.same_owner(&claim.holder) => {}
            Some(owner) => out.push(Duplicate {
                port: claim.port.clone(),
                first: (*owner).clone(),
                second: claim.holder.clone(),
            }),
        }
    }
    out
}

/// The claims of every PortBinding, then of every pod's `poolbindings` annotation (unreadable ones skipped).
pub fn claims_of<'a>(
    bindings: impl IntoIterator<Item = &'a PortBinding>,
    pods: impl IntoIterator<Item = &'a Pod>,
) -> Vec<Claim> {
    let mut claims = Vec::new();
    for binding in bindings {
        let holder = Holder {
            kind: "PortBinding",
            namespace: binding.namespace().unwrap_or_default(),
            name: binding.name_any(),
        };
        for port in held_ports(std::slice::from_ref(binding), std::iter::empty()) {
            claims.push(Claim {
                port,
                holder: holder.clone(),
            });
        }
    }
    for pod in pods {
        let Some(value) = pod.annotations().get(keys::ANNOTATION_POOL_BINDINGS) else {
            continue;
        };
        let items = match parse_pool_bindings(value) {
            Ok(items) => items,
            Err(e) => {
                tracing::warn!(pod = %pod.name_any(), error = %e, "unreadable pool bindings annotation; ignored");
                continue;
            }
        };
        let holder = Holder {
            kind: "Pod",
            namespace: pod.namespace().unwrap_or_default(),
            name: pod.name_any(),
        };
        for port in held_ports(&[], [items.as_slice()]) {
            claims.push(Claim {
                port,
                holder: holder.clone(),
            });
        }
    }
    claims
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::{PoolKey, Protocol, RequestProtocol};

    fn port(item: &str, protocol: RequestProtocol, start: u16) -> PendingPort {
        (
            PoolKey::new("ns", "pool"),
            item.to_string(),
            protocol,
            start,
        )
    }

    fn pending(pod: &str, since: Instant) -> PendingAllocation {
        PendingAllocation {
            namespace: "game".into(),
            pod: pod.into(),
            since,
            reservation: String::new(),
            validated: None,
        }
    }

    fn held(item: &str, protocol: Protocol, start: u16) -> HeldPort {
        (
            PoolKey::new("ns", "pool"),
            item.to_string(),
            protocol,
            start,
        )
    }

    #[test]
    fn reclaims_only_old_unrecorded_allocations_of_missing_pods() {
        let t0 = Instant::now();
        let threshold = Duration::from_secs(300);
        let now = t0 + Duration::from_secs(400);
        let mut table = HashMap::new();
        table.insert(port("a", RequestProtocol::Tcp, 100), pending("gone", t0));
        table.insert(
            port("a", RequestProtocol::Tcp, 101),
            pending("young", now - Duration::from_secs(10)),
        );
        table.insert(port("a", RequestProtocol::Tcp, 102), pending("alive", t0));
        table.insert(port("a", RequestProtocol::Udp, 103), pending("bound", t0));
        table.insert(port("a", RequestProtocol::TcpUdp, 104), pending("half", t0));
        table.insert(port("b", RequestProtocol::Tcp, 100), pending("", t0));
        let existing = HashSet::from([("game".to_string(), "alive".to_string())]);
        let claimed = BTreeSet::from([
            held("a", Protocol::Udp, 103),
            held("a", Protocol::Udp, 104),
            // Same number on another item does not protect item b's port.
            held("c", Protocol::Tcp, 100),
        ]);
        assert_eq!(
            reclaimable(&table, now, threshold, &existing, &claimed),
            vec![
                port("a", RequestProtocol::Tcp, 100),
                port("b", RequestProtocol::Tcp, 100),
            ]
        );
    }

    #[test]
    fn an_allocation_exactly_at_the_threshold_is_reclaimed() {
        let t0 = Instant::now();
        let threshold = Duration::from_secs(60);
        let table = HashMap::from([(port("a", RequestProtocol::Tcp, 7), pending("p", t0))]);
        let none = BTreeSet::new();
        let nobody = HashSet::new();
        assert!(
            reclaimable(
                &table,
                t0 + threshold - Duration::from_secs(1),
                threshold,
                &nobody,
                &none
            )
            .is_empty()
        );
        assert_eq!(
            reclaimable(&table, t0 + threshold, threshold, &nobody, &none),
            vec![port("a", RequestProtocol::Tcp, 7)]
        );
    }

    fn set(ports: &[HeldPort]) -> BTreeSet<HeldPort> {
        ports.iter().cloned().collect()
    }

    #[test]
    fn pending_allocations_are_not_confirmed_in_any_of_their_protocols() {
        let t0 = Instant::now();
        let all = set(&[
            held("a", Protocol::Tcp, 100),
            held("a", Protocol::Tcp, 101),
            held("a", Protocol::Udp, 101),
            held("a", Protocol::Udp, 102),
        ]);
        let pending = HashMap::from([
            (port("a", RequestProtocol::Tcp, 100), pending("p", t0)),
            (port("a", RequestProtocol::TcpUdp, 101), pending("q", t0)),
        ]);
        assert_eq!(
            confirmed(&all, &pending),
            set(&[held("a", Protocol::Udp, 102)])
        );
    }

    #[test]
    fn only_ports_confirmed_before_the_lists_and_not_handed_out_again_are_candidates() {
        let old = held("a", Protocol::Tcp, 100);
        // Allocated and confirmed while the lists ran: its pod may be missing from them.
        let confirmed_during_lists = held("a", Protocol::Tcp, 101);
        // Freed by the PortBinding controller while the lists ran.
        let freed = held("a", Protocol::Tcp, 102);
        // Freed and handed to a new pod by the webhook (confirmed again) while the lists ran.
        let handed_out_again = held("a", Protocol::Tcp, 103);
        let before = set(&[old.clone(), freed.clone(), handed_out_again.clone()]);
        let now = set(&[
            old.clone(),
            confirmed_during_lists.clone(),
            handed_out_again.clone(),
        ]);
        let reallocated = HashSet::from([handed_out_again, confirmed_during_lists]);
        assert_eq!(sweep_candidates(&before, &now, &reallocated), set(&[old]));
    }

    #[test]
    fn an_unrecorded_port_is_released_by_a_second_sweep_a_threshold_later() {
        let threshold = Duration::from_secs(300);
        let t0 = Instant::now();
        let leaked = held("a", Protocol::Tcp, 100);
        let bound = held("a", Protocol::Tcp, 101);
        let candidates = set(&[leaked.clone(), bound.clone()]);
        let claimed = set(&[bound]);

        let first = judge_unrecorded(&HashMap::new(), &candidates, &claimed, t0, threshold);
        assert!(first.release.is_empty(), "one sweep never releases");
        assert_eq!(first.newly_suspected, vec![leaked.clone()]);
        assert_eq!(first.suspects, HashMap::from([(leaked.clone(), t0)]));

        let early = t0 + threshold - Duration::from_secs(1);
        let second = judge_unrecorded(&first.suspects, &candidates, &claimed, early, threshold);
        assert!(second.release.is_empty(), "not yet a threshold apart");
        assert!(second.newly_suspected.is_empty());
        assert_eq!(second.suspects, first.suspects, "the first sighting counts");

        let third = judge_unrecorded(
            &second.suspects,
            &candidates,
            &claimed,
            t0 + threshold,
            threshold,
        );
        assert_eq!(third.release, vec![(leaked, t0)]);
        assert!(third.suspects.is_empty());
    }

    #[test]
    fn a_zero_threshold_still_needs_two_sweeps() {
        let t0 = Instant::now();
        let leaked = held("a", Protocol::Udp, 100);
        let candidates = BTreeSet::from([leaked.clone()]);
        let first = judge_unrecorded(
            &HashMap::new(),
            &candidates,
            &BTreeSet::new(),
            t0,
            Duration::ZERO,
        );
        assert!(first.release.is_empty());
        let second = judge_unrecorded(
            &first.suspects,
            &candidates,
            &BTreeSet::new(),
            t0,
            Duration::ZERO,
        );
        assert_eq!(second.release, vec![(leaked, t0)]);
    }

    #[test]
    fn a_port_recorded_again_or_no_longer_a_candidate_stops_being_suspected() {
        let threshold = Duration::from_secs(60);
        let t0 = Instant::now();
        let reused = held("a", Protocol::Tcp, 100);
        let freed = held("a", Protocol::Tcp, 101);
        let kept = held("a", Protocol::Tcp, 102);
        let suspects = HashMap::from([(reused.clone(), t0), (freed, t0), (kept.clone(), t0)]);
        // A same-name pod reusing a kept binding's port now records it; another port left the allocator.
        let later = t0 + Duration::from_secs(10);
        let candidates = set(&[reused.clone(), kept.clone()]);
        let out = judge_unrecorded(
            &suspects,
            &candidates,
            &BTreeSet::from([reused.clone()]),
            later,
            threshold,
        );
        assert_eq!(out.suspects, HashMap::from([(kept.clone(), t0)]));
        // Unrecorded again later: the clock starts over, a threshold after the earlier sighting is not enough.
        let much_later = t0 + threshold * 2;
        let out = judge_unrecorded(
            &out.suspects,
            &candidates,
            &BTreeSet::new(),
            much_later,
            threshold,
        );
        assert_eq!(out.release, vec![(kept, t0)]);
        assert_eq!(out.newly_suspected, vec![reused.clone()]);
        assert_eq!(out.suspects, HashMap::from([(reused, much_later)]));
    }

    #[test]
    fn the_same_number_in_another_item_or_protocol_does_not_record_a_port() {
        let t0 = Instant::now();
        let threshold = Duration::from_secs(1);
        let leaked = held("a", Protocol::Tcp, 100);
        let candidates = BTreeSet::from([leaked.clone()]);
        let claimed = set(&[held("a", Protocol::Udp, 100), held("b", Protocol::Tcp, 100)]);
        let suspects = HashMap::from([(leaked.clone(), t0)]);
        let out = judge_unrecorded(&suspects, &candidates, &claimed, t0 + threshold, threshold);
        assert_eq!(out.release, vec![(leaked, t0)]);
    }

    fn claim(kind: &'static str, name: &str, start: u16) -> Claim {
        Claim {
            port: held("a", Protocol::Tcp, start),
            holder: Holder {
                kind,
                namespace: "game".into(),
                name: name.into(),
            },
        }
    }

    #[test]
    fn duplicate_holdings_name_both_holders_and_skip_a_pod_with_its_binding() {
        let claims = vec![
            claim("PortBinding", "p1", 100),
            claim("Pod", "p1", 100),
            claim("Pod", "p2", 100),
            claim("Pod", "p3", 101),
            claim("Pod", "p4", 100),
        ];
        let dups = duplicate_holdings(&claims);
        assert_eq!(dups.len(), 2);
        assert_eq!(dups[0].port, held("a", Protocol::Tcp, 100));
        assert_eq!(dups[0].first, claims[0].holder);
        assert_eq!(dups[0].second, claims[2].holder);
        assert_eq!(dups[1].second, claims[4].holder);
        assert_eq!(dups[1].first.to_string(), "PortBinding game/p1");
    }

    #[test]
    fn same_port_in_another_namespace_is_a_duplicate() {
        let mut other = claim("Pod", "p1", 100);
        other.holder.namespace = "other".into();
        let dups = duplicate_holdings(&[claim("Pod", "p1", 100), other.clone()]);
        assert_eq!(dups.len(), 1);
        assert_eq!(dups[0].second, other.holder);
    }
}
