//! Shared port-pool state, used by the PortPool reconciler (writer) and the pod webhook (reader
//! and allocator user). Leader-only: it is rebuilt from the API server before the webhook may
//! allocate (`is_ready`), so no port is handed out from a half-known state.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

pub mod held;
pub mod leak;

use crate::allocator::{Allocator, PoolKey, Protocol, RequestProtocol};
use crate::api::PortPoolItemStatus;
use held::HeldPort;
use leak::Unrecorded;

/// A port (or segment) the webhook took: (pool, item, protocol as allocated, first port).
pub type PendingPort = (PoolKey, String, RequestProtocol, u16);

/// A webhook allocation not yet seen in a stored pod or PortBinding; released by the leak checker when it
/// stays unrecorded (see [`super::portleak`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingAllocation {
    pub namespace: String,
    /// Pod name; empty for a `generateName` pod (named only when stored).
    pub pod: String,
    /// When the webhook allocated it.
    pub since: Instant,
}

/// The leak checker's view of confirmed allocations (see [`leak::judge_unrecorded`]). Lock order:
/// allocator, pending, sweep.
#[derive(Debug, Default)]
struct Sweep {
    /// Bumped by every rebuild: a sweep begun before one decides nothing.
    epoch: u64,
    /// Ports the webhook handed out since the current sweep began: their holder may be missing from its lists.
    reallocated: HashSet<HeldPort>,
    /// Confirmed ports no pod or PortBinding recorded at a sweep, and since which sweep.
    suspects: HashMap<HeldPort, Instant>,
}

/// What [`PoolState::begin_sweep`] saw before the leak checker listed pods and PortBindings.
#[derive(Debug, Clone)]
pub struct SweepSnapshot {
    epoch: u64,
    /// Ports held and not pending at that moment: recorded in a stored object before the lists began.
    confirmed: BTreeSet<HeldPort>,
}

impl SweepSnapshot {
    /// True when no confirmed port was held: the sweep has nothing to judge.
    pub fn is_empty(&self) -> bool {
        self.confirmed.is_empty()
    }
}

/// Pool changes a receiver may fall behind by before it sees `Lagged` (and refreshes everything).
const EXTERNAL_CHANGES_CAPACITY: usize = 256;

/// Announces pools whose item `external` changed, so the PortBinding controller refreshes the pods'
/// bindings annotations at once rather than at its next resync (bcs updates them in the pool reconcile).
#[derive(Debug)]
struct ExternalChanges(broadcast::Sender<PoolKey>);

impl Default for ExternalChanges {
    fn default() -> Self {
        ExternalChanges(broadcast::channel(EXTERNAL_CHANGES_CAPACITY).0)
    }
}

/// The allocator plus the observed item status the webhook needs to describe an allocation
/// (load balancer ids, VIPs, region, `external`).
#[derive(Debug, Default)]
pub struct PoolState {
    allocator: Mutex<Allocator>,
    items: Mutex<HashMap<PoolKey, Vec<PortPoolItemStatus>>>,
    external_changes: ExternalChanges,
    /// Webhook allocations awaiting confirmation. Lock order: allocator, then pending.
    pending: Mutex<HashMap<PendingPort, PendingAllocation>>,
    sweep: Mutex<Sweep>,
    ready: AtomicBool,
}

impl PoolState {
    /// Runs `f` with the allocator locked. Keep `f` short: admission waits on it.
    pub fn with_allocator<T>(&self, f: impl FnOnce(&mut Allocator) -> T) -> T {
        let mut guard = self
            .allocator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut guard)
    }

    /// Replaces the observed item status of one pool (from `PortPool.status.poolItems`); announces the
    /// pool to [`Self::subscribe_external_changes`] when an item it already knew changed its `external`.
    pub fn set_items(&self, key: PoolKey, items: Vec<PortPoolItemStatus>) {
        let changed = {
            let mut all = self.lock_items();
            let changed = all
                .get(&key)
                .is_some_and(|old| externals_changed(old, &items));
            all.insert(key.clone(), items);
            changed
        };
        if changed {
            // Sent after the new items are readable. No receiver (no PortBinding controller running) is fine.
            let _ = self.external_changes.0.send(key);
        }
    }

    /// Pools whose item `external` changed from now on (see [`Self::set_items`]).
    pub fn subscribe_external_changes(&self) -> broadcast::Receiver<PoolKey> {
        self.external_changes.0.subscribe()
    }

    /// Forgets a pool's observed items.
    pub fn remove_items(&self, key: &PoolKey) {
        self.lock_items().remove(key);
    }

    /// Observed status of one item, if known.
    pub fn item(&self, key: &PoolKey, item: &str) -> Option<PortPoolItemStatus> {
        self.lock_items()
            .get(key)
            .and_then(|items| items.iter().find(|i| i.item_name == item).cloned())
    }

    /// True once the allocator was rebuilt from the API server (pools, bindings, pod annotations).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// Marks the rebuild done (or undone on losing leadership).
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Records ports the webhook just took for a pod; the caller holds the allocator lock. A new allocation
    /// also ends any suspicion about the port's previous holding.
    fn record_pending(
        pending: &mut HashMap<PendingPort, PendingAllocation>,
        sweep: &mut Sweep,
        ports: impl IntoIterator<Item = PendingPort>,
        namespace: &str,
        pod: &str,
        since: Instant,
    ) {
        for port in ports {
            for protocol in port.2.protocols() {
                let held = (port.0.clone(), port.1.clone(), *protocol, port.3);
                sweep.suspects.remove(&held);
                sweep.reallocated.insert(held);
            }
            pending.insert(
                port,
                PendingAllocation {
                    namespace: namespace.to_owned(),
                    pod: pod.to_owned(),
                    since,
                },
            );
        }
    }

    /// Runs `f` with the allocator locked and records the ports it returns as pending for the pod, before the
    /// lock is released: the leak checker can never see the allocation without its pending record.
    pub fn allocate_pending<T>(
        &self,
        namespace: &str,
        pod: &str,
        f: impl FnOnce(&mut Allocator) -> (T, Vec<PendingPort>),
    ) -> T {
        let mut allocator = self
            .allocator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (out, ports) = f(&mut allocator);
        Self::record_pending(
            &mut self.lock_pending(),
            &mut self.lock_sweep(),
            ports,
            namespace,
            pod,
            Instant::now(),
        );
        out
    }

    /// Drops pending records of ports now recorded in a pod annotation or PortBinding, or released.
    pub fn confirm_pending(&self, held: &BTreeSet<HeldPort>) {
        if held.is_empty() {
            return;
        }
        self.lock_pending()
            .retain(|port, _| !leak::is_claimed(port, held));
    }

    /// Drops the pending records of exactly these ports (released again by the webhook).
    pub fn forget_pending(&self, ports: &[PendingPort]) {
        let mut pending = self.lock_pending();
        for port in ports {
            pending.remove(port);
        }
    }

    /// Drops every pending record and suspicion (rebuild: the allocator is refilled from the API server); a
    /// sweep begun before decides nothing.
    pub fn clear_pending(&self) {
        let mut pending = self.lock_pending();
        let mut sweep = self.lock_sweep();
        pending.clear();
        sweep.epoch += 1;
        sweep.suspects.clear();
        sweep.reallocated.clear();
    }

    /// Number of pending allocations.
    pub fn pending_len(&self) -> usize {
        self.lock_pending().len()
    }

    /// Namespaces of pending allocations at least `threshold` old at `now`, sorted.
    pub fn stale_pending_namespaces(&self, now: Instant, threshold: Duration) -> Vec<String> {
        let set: BTreeSet<String> = self
            .lock_pending()
            .values()
            .filter(|p| now.saturating_duration_since(p.since) >= threshold)
            .map(|p| p.namespace.clone())
            .collect();
        set.into_iter().collect()
    }

    /// Releases the pending allocations [`leak::reclaimable`] picks and drops the confirmed ones,
    /// all under the allocator lock. Returns what was actually released (a port already free is not counted).
    pub fn reclaim(
        &self,
        now: Instant,
        threshold: Duration,
        existing_pods: &HashSet<(String, String)>,
        claimed: &BTreeSet<HeldPort>,
    ) -> Vec<(PendingPort, PendingAllocation)> {
        let mut allocator = self
            .allocator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut pending = self.lock_pending();
        let picked = leak::reclaimable(&pending, now, threshold, existing_pods, claimed);
        let mut released = Vec::new();
        for port in picked {
            let Some(entry) = pending.remove(&port) else {
                continue;
            };
            let (pool, item, protocol, start) = &port;
            match allocator.release(pool, item, *protocol, *start) {
                Ok(true) => released.push((port, entry)),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(pool = %pool, %item, port = start, error = %e, "leaked port not released")
                }
            }
        }
        pending.retain(|port, _| !leak::is_claimed(port, claimed));
        released
    }

    /// Starts a sweep of confirmed allocations: notes the ports held and not pending now, before the caller lists
    /// pods and PortBindings. Suspicions about ports no longer confirmed are dropped.
    pub fn begin_sweep(&self) -> SweepSnapshot {
        // Copied under the locks (bitsets: cheap), walked outside them: admission never waits for the walk.
        let (allocator, pending, epoch) = {
            let allocator = self
                .allocator
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let pending = self.lock_pending();
            let mut sweep = self.lock_sweep();
            sweep.reallocated.clear();
            (allocator.clone(), pending.clone(), sweep.epoch)
        };
        let confirmed = leak::confirmed(&allocated_ports(&allocator), &pending);
        let mut sweep = self.lock_sweep();
        // A port handed out since the copy is in `reallocated` and no longer suspected anyway.
        sweep.suspects.retain(|port, _| confirmed.contains(port));
        SweepSnapshot { epoch, confirmed }
    }

    /// Ends a sweep: under the allocator lock, releases the confirmed ports [`leak::judge_unrecorded`] picks
    /// given what the lists taken since `snapshot` record (`claimed`). Nothing happens while the state is not
    /// ready or after a rebuild since `snapshot`. Released ports carry when they were first seen unrecorded.
    pub fn reclaim_unrecorded(
        &self,
        snapshot: &SweepSnapshot,
        now: Instant,
        threshold: Duration,
        claimed: &BTreeSet<HeldPort>,
    ) -> SweepOutcome {
        let mut allocator = self
            .allocator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let pending = self.lock_pending();
        let mut sweep = self.lock_sweep();
        if !self.is_ready() || sweep.epoch != snapshot.epoch {
            return SweepOutcome::default();
        }
        // Only the snapshot's ports can be candidates: look those up rather than walk every slot again.
        let still_held: BTreeSet<HeldPort> = snapshot
            .confirmed
            .iter()
            .filter(|(pool, item, protocol, start)| {
                matches!(
                    allocator.is_free(pool, item, (*protocol).into(), *start),
                    Ok(false)
                )
            })
            .cloned()
            .collect();
        let now_confirmed = leak::confirmed(&still_held, &pending);
        let candidates =
            leak::sweep_candidates(&snapshot.confirmed, &now_confirmed, &sweep.reallocated);
        let Unrecorded {
            release,
            suspects,
            newly_suspected,
        } = leak::judge_unrecorded(&sweep.suspects, &candidates, claimed, now, threshold);
        let mut released = Vec::new();
        for (port, since) in release {
            let (pool, item, protocol, start) = &port;
            match allocator.release(pool, item, (*protocol).into(), *start) {
                Ok(true) => released.push((port, since)),
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(pool = %pool, %item, port = start, error = %e, "unrecorded port not released")
                }
            }
        }
        sweep.suspects = suspects;
        SweepOutcome {
            released,
            newly_suspected,
        }
    }

    /// Number of confirmed ports currently suspected of having no holder.
    pub fn suspects_len(&self) -> usize {
        self.lock_sweep().suspects.len()
    }

    fn lock_sweep(&self) -> std::sync::MutexGuard<'_, Sweep> {
        self.sweep
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<PendingPort, PendingAllocation>> {
        self.pending
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_items(&self) -> std::sync::MutexGuard<'_, HashMap<PoolKey, Vec<PortPoolItemStatus>>> {
        self.items
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What one sweep of confirmed allocations did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepOutcome {
    /// Ports released, with when they were first seen unrecorded.
    pub released: Vec<(HeldPort, Instant)>,
    /// Ports seen unrecorded for the first time.
    pub newly_suspected: Vec<HeldPort>,
}

/// Every port (or segment) the allocator holds, per single protocol.
fn allocated_ports(allocator: &Allocator) -> BTreeSet<HeldPort> {
    let mut held = BTreeSet::new();
    for key in allocator.pool_keys() {
        let Some(pool) = allocator.pool(key) else {
            continue;
        };
        for item in pool.items() {
            let geometry = item.geometry();
            for protocol in [Protocol::Tcp, Protocol::Udp] {
                let Some((_, used)) = item.usage(protocol) else {
                    continue;
                };
                let mut left = used;
                for slot in 0..geometry.slot_count() {
                    if left == 0 {
                        break;
                    }
                    let start = geometry.slot_start(slot);
                    if matches!(
                        allocator.is_free(key, item.name(), protocol.into(), start),
                        Ok(false)
                    ) {
                        left -= 1;
                        held.insert((key.clone(), item.name().to_owned(), protocol, start));
                    }
                }
            }
        }
    }
    held
}

/// True when an item present in both lists has a different `external`.
fn externals_changed(old: &[PortPoolItemStatus], new: &[PortPoolItemStatus]) -> bool {
    new.iter().any(|n| {
        old.iter()
            .find(|o| o.item_name == n.item_name)
            .is_some_and(|o| o.external != n.external)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocator::{AllocatePolicy, ItemSpec, ItemStatus, Protocol};

    fn state_with_pool() -> (PoolState, PoolKey) {
        let state = PoolState::default();
        let key = PoolKey::new("ns", "pool");
        let item = ItemSpec {
            name: "a".into(),
            start_port: 100,
            end_port: 110,
            segment_length: 0,
            tcp: true,
            udp: false,
            status: ItemStatus::Ready,
        };
        state
            .with_allocator(|a| a.sync_pool(&key, AllocatePolicy::default(), &[item]))
            .unwrap();
        (state, key)
    }

    fn take(state: &PoolState, key: &PoolKey, pod: &str) -> u16 {
        state.allocate_pending("game", pod, |a| {
            let got = a.allocate(key, RequestProtocol::Tcp, None).unwrap();
            let port = (
                key.clone(),
                got.item.to_string(),
                got.protocol,
                got.start_port,
            );
            (got.start_port, vec![port])
        })
    }

    fn item(name: &str, external: Option<&str>) -> PortPoolItemStatus {
        PortPoolItemStatus {
            item_name: name.into(),
            external: external.map(str::to_owned),
            ..PortPoolItemStatus::default()
        }
    }

    #[test]
    fn a_changed_external_is_announced_once_the_items_are_stored() {
        let state = PoolState::default();
        let mut changes = state.subscribe_external_changes();
        let key = PoolKey::new("ns", "pool");
        // First sight of the pool, and an unchanged update: nothing to refresh.
        state.set_items(key.clone(), vec![item("a", Some("v1")), item("b", None)]);
        state.set_items(key.clone(), vec![item("a", Some("v1")), item("b", None)]);
        assert!(changes.try_recv().is_err());
        // A new item is not a change of an existing binding's external.
        state.set_items(
            key.clone(),
            vec![item("a", Some("v1")), item("b", None), item("c", Some("x"))],
        );
        assert!(changes.try_recv().is_err());
        state.set_items(
            key.clone(),
            vec![
                item("a", Some("v1")),
                item("b", Some("set")),
                item("c", Some("x")),
            ],
        );
        assert_eq!(changes.try_recv().unwrap(), key);
        assert_eq!(
            state.item(&key, "b").unwrap().external.as_deref(),
            Some("set")
        );
        state.set_items(key.clone(), vec![item("a", None)]);
        assert_eq!(changes.try_recv().unwrap(), key, "external removed");
        assert!(changes.try_recv().is_err());
    }

    #[test]
    fn reclaim_frees_unrecorded_ports_and_keeps_confirmed_ones() {
        let (state, key) = state_with_pool();
        let leaked = take(&state, &key, "never-stored");
        let stored = take(&state, &key, "stored");
        assert_eq!(state.pending_len(), 2);
        let claimed = BTreeSet::from([(key.clone(), "a".to_string(), Protocol::Tcp, stored)]);
        let later = Instant::now() + Duration::from_secs(301);
        assert_eq!(
            state.stale_pending_namespaces(later, Duration::from_secs(300)),
            vec!["game".to_string()]
        );
        let released = state.reclaim(later, Duration::from_secs(300), &HashSet::new(), &claimed);
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].0.3, leaked);
        assert_eq!(released[0].1.pod, "never-stored");
        assert_eq!(state.pending_len(), 0, "the recorded port is confirmed");
        state.with_allocator(|a| {
            assert!(a.is_free(&key, "a", RequestProtocol::Tcp, leaked).unwrap());
            assert!(!a.is_free(&key, "a", RequestProtocol::Tcp, stored).unwrap());
        });
    }

    #[test]
    fn confirmed_or_fresh_allocations_are_not_reclaimed() {
        let (state, key) = state_with_pool();
        let port = take(&state, &key, "p");
        state.confirm_pending(&BTreeSet::from([(
            key.clone(),
            "a".to_string(),
            Protocol::Tcp,
            port,
        )]));
        assert_eq!(state.pending_len(), 0);
        let fresh = take(&state, &key, "q");
        let released = state.reclaim(
            Instant::now(),
            Duration::from_secs(300),
            &HashSet::new(),
            &BTreeSet::new(),
        );
        assert!(released.is_empty());
        state.with_allocator(|a| {
            assert!(!a.is_free(&key, "a", RequestProtocol::Tcp, port).unwrap());
            assert!(!a.is_free(&key, "a", RequestProtocol::Tcp, fresh).unwrap());
        });
    }

    fn confirm(state: &PoolState, key: &PoolKey, port: u16) {
        state.confirm_pending(&BTreeSet::from([(
            key.clone(),
            "a".to_string(),
            Protocol::Tcp,
            port,
        )]));
    }

    /// One sweep with nothing recorded: begin, (lists), decide at `now`.
    fn sweep(state: &PoolState, now: Instant) -> SweepOutcome {
        let snapshot = state.begin_sweep();
        state.reclaim_unrecorded(&snapshot, now, THRESHOLD, &BTreeSet::new())
    }

    const THRESHOLD: Duration = Duration::from_secs(300);

    #[test]
    fn a_confirmed_port_nothing_records_is_released_by_the_second_sweep() {
        let (state, key) = state_with_pool();
        state.set_ready(true);
        let port = take(&state, &key, "p");
        confirm(&state, &key, port);
        let recorded = take(&state, &key, "q");
        confirm(&state, &key, recorded);
        let held = (key.clone(), "a".to_string(), Protocol::Tcp, port);
        let t0 = Instant::now();
        let snapshot = state.begin_sweep();
        let claimed = BTreeSet::from([(key.clone(), "a".to_string(), Protocol::Tcp, recorded)]);
        let first = state.reclaim_unrecorded(&snapshot, t0, THRESHOLD, &claimed);
        assert!(first.released.is_empty());
        assert_eq!(first.newly_suspected, vec![held.clone()]);
        let snapshot = state.begin_sweep();
        let second = state.reclaim_unrecorded(&snapshot, t0 + THRESHOLD, THRESHOLD, &claimed);
        assert_eq!(second.released, vec![(held, t0)]);
        assert_eq!(state.suspects_len(), 0);
        state.with_allocator(|a| {
            assert!(a.is_free(&key, "a", RequestProtocol::Tcp, port).unwrap());
            assert!(
                !a.is_free(&key, "a", RequestProtocol::Tcp, recorded)
                    .unwrap()
            );
        });
    }

    #[test]
    fn a_pending_allocation_is_never_swept() {
        let (state, key) = state_with_pool();
        state.set_ready(true);
        let port = take(&state, &key, "admitted-not-stored-yet");
        let t0 = Instant::now();
        assert!(sweep(&state, t0).newly_suspected.is_empty());
        assert!(sweep(&state, t0 + THRESHOLD * 10).released.is_empty());
        state.with_allocator(|a| {
            assert!(!a.is_free(&key, "a", RequestProtocol::Tcp, port).unwrap());
        });
    }

    #[test]
    fn a_port_allocated_and_confirmed_while_the_lists_run_is_not_judged() {
        let (state, key) = state_with_pool();
        state.set_ready(true);
        let t0 = Instant::now();
        let snapshot = state.begin_sweep();
        // The webhook admits a pod and the PortBinding controller confirms it after the lists were taken.
        let port = take(&state, &key, "new");
        confirm(&state, &key, port);
        let out = state.reclaim_unrecorded(&snapshot, t0, THRESHOLD, &BTreeSet::new());
        assert_eq!(out, SweepOutcome::default());
        assert_eq!(state.suspects_len(), 0);
    }

    #[test]
    fn a_suspect_handed_to_a_new_pod_is_forgiven() {
        let (state, key) = state_with_pool();
        state.set_ready(true);
        let port = take(&state, &key, "old");
        confirm(&state, &key, port);
        let t0 = Instant::now();
        assert_eq!(sweep(&state, t0).newly_suspected.len(), 1);
        // Freed (the PortBinding controller deleted a binding) and handed out again by the webhook during the
        // next sweep's lists: the new pod may be missing from them.
        let snapshot = state.begin_sweep();
        state.with_allocator(|a| a.release(&key, "a", RequestProtocol::Tcp, port).unwrap());
        assert_eq!(take(&state, &key, "new"), port);
        confirm(&state, &key, port);
        let out = state.reclaim_unrecorded(&snapshot, t0 + THRESHOLD, THRESHOLD, &BTreeSet::new());
        assert_eq!(out, SweepOutcome::default());
        assert_eq!(state.suspects_len(), 0);
        state.with_allocator(|a| {
            assert!(!a.is_free(&key, "a", RequestProtocol::Tcp, port).unwrap());
        });
        // Judged afresh from the next sweep on.
        assert_eq!(
            sweep(&state, t0 + THRESHOLD * 2).newly_suspected.len(),
            1,
            "a new suspicion, not the old one"
        );
        assert!(sweep(&state, t0 + THRESHOLD * 2).released.is_empty());
    }

    #[test]
    fn a_rebuild_or_lost_readiness_during_a_sweep_decides_nothing() {
        let (state, key) = state_with_pool();
        state.set_ready(true);
        let port = take(&state, &key, "p");
        confirm(&state, &key, port);
        let t0 = Instant::now();
        sweep(&state, t0);
        assert_eq!(state.suspects_len(), 1);
        let snapshot = state.begin_sweep();
        state.clear_pending();
        assert_eq!(state.suspects_len(), 0, "a rebuild forgets suspicions");
        let out = state.reclaim_unrecorded(&snapshot, t0 + THRESHOLD, THRESHOLD, &BTreeSet::new());
        assert_eq!(out, SweepOutcome::default());
        sweep(&state, t0);
        let snapshot = state.begin_sweep();
        state.set_ready(false);
        let out = state.reclaim_unrecorded(&snapshot, t0 + THRESHOLD, THRESHOLD, &BTreeSet::new());
        assert_eq!(out, SweepOutcome::default());
        state.with_allocator(|a| {
            assert!(!a.is_free(&key, "a", RequestProtocol::Tcp, port).unwrap());
        });
    }

    #[test]
    fn allocated_ports_lists_segment_starts_per_protocol() {
        let key = PoolKey::new("ns", "pool");
        let items = [
            ItemSpec {
                name: "seg".into(),
                start_port: 200,
                end_port: 220,
                segment_length: 5,
                tcp: true,
                udp: true,
                status: ItemStatus::Ready,
            },
            ItemSpec {
                name: "one".into(),
                start_port: 100,
                end_port: 110,
                segment_length: 0,
                tcp: true,
                udp: false,
                status: ItemStatus::Ready,
            },
        ];
        let mut allocator = Allocator::new();
        allocator
            .sync_pool(&key, AllocatePolicy::default(), &items)
            .unwrap();
        allocator
            .allocate_specific(&key, "seg", RequestProtocol::TcpUdp, 210)
            .unwrap();
        allocator
            .allocate_specific(&key, "seg", RequestProtocol::Udp, 215)
            .unwrap();
        allocator
            .allocate_specific(&key, "one", RequestProtocol::Tcp, 109)
            .unwrap();
        let seg = |protocol, port| (key.clone(), "seg".to_string(), protocol, port);
        assert_eq!(
            allocated_ports(&allocator),
            BTreeSet::from([
                seg(Protocol::Tcp, 210),
                seg(Protocol::Udp, 210),
                seg(Protocol::Udp, 215),
                (key.clone(), "one".to_string(), Protocol::Tcp, 109),
            ])
        );
    }
}
