//! Port-pool self-healing (reference §5.4): the leak checker and duplicate-holding detection.
//!
//! The pod webhook takes ports at admission, but the pod may never be stored (a later webhook denies it, the
//! write fails). Every webhook allocation is therefore recorded as pending in [`PoolState`]; whoever first sees
//! the port recorded in a pod annotation or a PortBinding confirms it. The checker (leader only) releases pending
//! allocations older than the threshold that no pod or PortBinding records. The choice is the pure
//! [`reclaimable`]; [`duplicate_holdings`] finds ports two holders claim during the allocator rebuild.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use prometheus_client::metrics::counter::Counter;
use tokio::sync::watch;

use super::listener::wait_true;
use super::pools::{PendingAllocation, PendingPort, PoolState};
use super::portpool_plan::{HeldPort, held_ports};
use crate::annotations::parse_pool_bindings;
use crate::api::{PortBinding, keys};

/// Default of `--port-leak-threshold` (bcs: PORT_LEAK_THRESHOLD_SECONDS=300).
pub const DEFAULT_LEAK_THRESHOLD: Duration = Duration::from_secs(300);
/// Limit of each list call of one check.
const API_TIMEOUT: Duration = Duration::from_secs(10);

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

/// What the leak checker needs from the runtime.
#[derive(Clone)]
pub struct LeakCheckContext {
    pub client: kube::Client,
    pub pool_state: Arc<PoolState>,
    /// `clb_controller_portpool_leaked_ports_reclaimed_total`.
    pub reclaimed: Counter,
    /// Pending allocations older than this are checked (`--port-leak-threshold`).
    pub threshold: Duration,
}

/// Checks for leaked pending allocations every `threshold / 4` (at least 1 s) until `stop` turns true.
pub async fn run_while_leader(ctx: LeakCheckContext, mut stop: watch::Receiver<bool>) {
    let every = (ctx.threshold / 4).max(Duration::from_secs(1));
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = wait_true(&mut stop) => return,
            _ = tick.tick() => {
                if let Err(e) = check_once(&ctx).await {
                    tracing::warn!(error = %e, "port leak check failed; retrying next round");
                }
            }
        }
    }
}

/// One round: lists only when some pending allocation is old enough, then releases what [`reclaimable`] picks.
async fn check_once(ctx: &LeakCheckContext) -> Result<(), super::RuntimeError> {
    if !ctx.pool_state.is_ready() {
        return Ok(());
    }
    let namespaces = ctx
        .pool_state
        .stale_pending_namespaces(Instant::now(), ctx.threshold);
    if namespaces.is_empty() {
        return Ok(());
    }
    let mut bindings = Vec::new();
    let mut pods = Vec::new();
    for ns in &namespaces {
        let b: Api<PortBinding> = Api::namespaced(ctx.client.clone(), ns);
        bindings.extend(timed(b.list(&ListParams::default())).await?.items);
        let p: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
        pods.extend(timed(p.list(&ListParams::default())).await?.items);
    }
    let claimed: BTreeSet<HeldPort> = claims_of(&bindings, &pods)
        .into_iter()
        .map(|c| c.port)
        .collect();
    let existing: HashSet<(String, String)> = pods
        .iter()
        .map(|p| (p.namespace().unwrap_or_default(), p.name_any()))
        .collect();
    // Decided under the allocator lock, so an allocation made after the lists is either fresh or confirmed.
    let released = ctx
        .pool_state
        .reclaim(Instant::now(), ctx.threshold, &existing, &claimed);
    for (port, pending) in &released {
        let (pool, item, protocol, start) = port;
        ctx.reclaimed.inc();
        tracing::warn!(pool = %pool, %item, %protocol, port = start, namespace = %pending.namespace, pod = %pending.pod,
            "leaked port reclaimed: allocated at admission but no pod or PortBinding records it");
    }
    Ok(())
}

async fn timed<T>(
    call: impl std::future::Future<Output = Result<T, kube::Error>>,
) -> Result<T, super::RuntimeError> {
    match tokio::time::timeout(API_TIMEOUT, call).await {
        Ok(r) => r.map_err(super::RuntimeError::from),
        Err(_) => Err(super::RuntimeError::Task(format!(
            "listing for the port leak check timed out after {API_TIMEOUT:?}"
        ))),
    }
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
