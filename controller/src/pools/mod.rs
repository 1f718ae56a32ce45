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
pub mod reservation;

use crate::allocator::{Allocator, PoolKey, Protocol, RequestProtocol};
use crate::api::PortPoolItemStatus;
use held::HeldPort;
use leak::Unrecorded;
use reservation::{Due, LatePod, ReservationCheck, Tombstone, Validated};

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
    /// The reservation id stamped on the pod (see [`reservation`]); empty when allocated without one.
    pub reservation: String,
    /// Set by the pod validating webhook.
    pub validated: Option<Validated>,
}

/// Webhook allocations awaiting confirmation, and what the reservation timeout needs around them.
#[derive(Debug, Default)]
struct Pending {
    ports: HashMap<PendingPort, PendingAllocation>,
    /// Validated reservations by pod uid: the pod's first watch event confirms them.
    by_uid: HashMap<String, String>,
    /// Validated reservations released because no pod had been stored, by pod uid.
    tombstones: HashMap<String, Tombstone>,
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
    pending: Mutex<Pending>,
    sweep: Mutex<Sweep>,
    ready: AtomicBool,
    /// Source of reservation ids: unique within this process, and across processes by the start time.
    reservations: ReservationIds,
    /// The pod validating webhook answered since the last rebuild. Until it has, reservations never validated are
    /// left to the leak threshold: without that webhook, stored pods are never validated either.
    validation_seen: AtomicBool,
}

/// Makes reservation ids: `<process start, hex>-<counter>`.
#[derive(Debug)]
struct ReservationIds {
    prefix: String,
    next: std::sync::atomic::AtomicU64,
}

impl Default for ReservationIds {
    fn default() -> Self {
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        ReservationIds {
            prefix: format!("{started:x}"),
            next: std::sync::atomic::AtomicU64::new(1),
        }
    }
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
        allocation: &PendingAllocation,
    ) {
        for port in ports {
            for protocol in port.2.protocols() {
                let held = (port.0.clone(), port.1.clone(), *protocol, port.3);
                sweep.suspects.remove(&held);
                sweep.reallocated.insert(held);
            }
            pending.insert(port, allocation.clone());
        }
    }

    /// A fresh reservation id for one admission.
    pub fn new_reservation_id(&self) -> String {
        let n = self.reservations.next.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n}", self.reservations.prefix)
    }

    /// Runs `f` with the allocator locked and records the ports it returns as pending for the pod, before the
    /// lock is released: the leak checker can never see the allocation without its pending record.
    pub fn allocate_pending<T>(
        &self,
        namespace: &str,
        pod: &str,
        reservation: &str,
        f: impl FnOnce(&mut Allocator) -> (T, Vec<PendingPort>),
    ) -> T {
        let mut allocator = self
            .allocator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (out, ports) = f(&mut allocator);
        let allocation = PendingAllocation {
            namespace: namespace.to_owned(),
            pod: pod.to_owned(),
            since: Instant::now(),
            reservation: reservation.to_owned(),
            validated: None,
        };
        Self::record_pending(
            &mut self.lock_pending().ports,
            &mut self.lock_sweep(),
            ports,
            &allocation,
        );
        out
    }

    /// Drops pending records of ports now recorded in a pod annotation or PortBinding, or released.
    pub fn confirm_pending(&self, held: &BTreeSet<HeldPort>) {
        if held.is_empty() {
            return;
        }
        self.lock_pending()
            .ports
            .retain(|port, _| !leak::is_claimed(port, held));
    }

    /// Drops the pending records of exactly these ports (released again by the webhook).
    pub fn forget_pending(&self, ports: &[PendingPort]) {
        let mut pending = self.lock_pending();
        for port in ports {
            pending.ports.remove(port);
        }
    }

    /// Drops every pending record and suspicion (rebuild: the allocator is refilled from the API server); a
    /// sweep begun before decides nothing.
    pub fn clear_pending(&self) {
        let mut pending = self.lock_pending();
        let mut sweep = self.lock_sweep();
        // The rebuild read every stored pod: a tombstoned pod stored by then holds its ports already.
        *pending = Pending::default();
        self.validation_seen.store(false, Ordering::Release);
        sweep.epoch += 1;
        sweep.suspects.clear();
        sweep.reallocated.clear();
    }

    /// Number of pending allocations.
    pub fn pending_len(&self) -> usize {
        self.lock_pending().ports.len()
    }

    /// Namespaces of pending allocations at least `threshold` old at `now`, sorted.
    pub fn stale_pending_namespaces(&self, now: Instant, threshold: Duration) -> Vec<String> {
        let set: BTreeSet<String> = self
            .lock_pending()
            .ports
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
        let mut guard = self.lock_pending();
        let pending = &mut guard.ports;
        let picked = leak::reclaimable(pending, now, threshold, existing_pods, claimed);
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
            (allocator.clone(), pending.ports.clone(), sweep.epoch)
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
        let now_confirmed = leak::confirmed(&still_held, &pending.ports);
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

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Pending> {
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

/// Reservations (see [`reservation`]): validation by the pod validating webhook, the timeout, late pods.
impl PoolState {
    /// The pod validating webhook's check: marks the pod's reservation validated with its name and uid, taking
    /// again any of its ports that were released meanwhile (timeout, new leader) when they are still free.
    /// Returns how many were taken again, or the denial message when one went to another pod.
    pub fn validate_reservation(
        &self,
        check: &ReservationCheck,
        timeout: Duration,
    ) -> Result<usize, String> {
        let mut allocator = self
            .allocator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        self.validation_seen.store(true, Ordering::Release);
        let mut guard = self.lock_pending();
        let pending = &mut *guard;
        let missing = reservation::uncovered(&pending.ports, check);
        if !missing.is_empty() {
            let others = reservation::pending_ports(&pending.ports);
            if let Some(lost) = missing.iter().find(|p| others.contains(*p)) {
                return Err(reservation::lost_message(lost, timeout));
            }
            let taken = take_specific(&mut allocator, &missing)
                .map_err(|lost| reservation::lost_message(&lost, timeout))?;
            let allocation = PendingAllocation {
                namespace: check.namespace.clone(),
                pod: check.pod.clone(),
                since: Instant::now(),
                reservation: check.reservation.clone(),
                validated: None,
            };
            Self::record_pending(
                &mut pending.ports,
                &mut self.lock_sweep(),
                taken,
                &allocation,
            );
        }
        let validated = Validated {
            at: Instant::now(),
            pod: check.pod.clone(),
            uid: check.uid.clone(),
        };
        for entry in pending.ports.values_mut() {
            if entry.reservation == check.reservation {
                entry.pod = check.pod.clone();
                entry.validated = Some(validated.clone());
            }
        }
        pending
            .by_uid
            .insert(check.uid.clone(), check.reservation.clone());
        Ok(missing.len())
    }

    /// A stored pod with this uid was seen: its validated reservation is confirmed. Cheap when there is none.
    pub fn confirm_stored(&self, uid: &str) -> bool {
        let mut pending = self.lock_pending();
        let Some(reservation) = pending.by_uid.remove(uid) else {
            return false;
        };
        pending.ports.retain(|_, p| p.reservation != reservation);
        true
    }

    /// Releases reservations never validated within `timeout` (see [`reservation`]); returns them. Nothing is
    /// released before the pod validating webhook has answered once since the last rebuild.
    pub fn release_unvalidated(
        &self,
        now: Instant,
        timeout: Duration,
    ) -> Vec<(PendingPort, PendingAllocation)> {
        if !self.validation_seen.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut allocator = self
            .allocator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut pending = self.lock_pending();
        let expired = reservation::unvalidated_expired(&pending.ports, now, timeout);
        let mut released = Vec::new();
        for port in expired {
            if let Some(entry) = pending.ports.remove(&port) {
                release_logged(&mut allocator, &port);
                released.push((port, entry));
            }
        }
        released
    }

    /// Validated reservations no stored pod confirmed within `timeout` of validation, oldest first.
    pub fn validated_due(&self, now: Instant, timeout: Duration) -> Vec<Due> {
        reservation::validated_due(&self.lock_pending().ports, now, timeout)
    }

    /// Settles a due reservation after reading the pod: `stored` confirms it; otherwise its ports are released
    /// and a tombstone is kept for the uid. Returns the released ports.
    pub fn settle(&self, due: &Due, stored: bool, now: Instant) -> Vec<PendingPort> {
        let mut allocator = self
            .allocator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut pending = self.lock_pending();
        let ports: Vec<PendingPort> = reservation::ports_of(&pending.ports, &due.reservation)
            .into_iter()
            .filter(|p| {
                pending.ports[p]
                    .validated
                    .as_ref()
                    .is_some_and(|v| v.uid == due.uid)
            })
            .collect();
        for port in &ports {
            pending.ports.remove(port);
        }
        pending.by_uid.remove(&due.uid);
        if stored || ports.is_empty() {
            return Vec::new();
        }
        for port in &ports {
            release_logged(&mut allocator, port);
        }
        pending.tombstones.insert(
            due.uid.clone(),
            Tombstone {
                namespace: due.namespace.clone(),
                pod: due.pod.clone(),
                ports: ports.clone(),
                until: now + reservation::TOMBSTONE_TTL,
            },
        );
        ports
    }

    /// A stored pod whose reservation was released before it was stored: takes its ports again when all are
    /// free, else names one that went to another pod. `None` for any other pod (cheap).
    pub fn late_pod(&self, uid: &str) -> Option<LatePod> {
        if self.lock_pending().tombstones.is_empty() {
            return None;
        }
        let mut allocator = self
            .allocator
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut pending = self.lock_pending();
        let tombstone = pending.tombstones.remove(uid)?;
        let wanted: Vec<HeldPort> = tombstone
            .ports
            .iter()
            .flat_map(|p| reservation::expand(p).collect::<Vec<_>>())
            .collect();
        let others = reservation::pending_ports(&pending.ports);
        if let Some(lost) = wanted.iter().find(|p| others.contains(*p)) {
            return Some(LatePod::Conflict(lost.clone()));
        }
        // Held for the stored pod: confirmed, so no pending record.
        Some(match take_specific(&mut allocator, &wanted) {
            Ok(_) => LatePod::Retaken,
            Err(lost) => LatePod::Conflict(lost),
        })
    }

    /// Forgets tombstones past their time, and uid entries whose reservation is gone (confirmed by ports).
    pub fn expire_tombstones(&self, now: Instant) {
        let mut guard = self.lock_pending();
        let pending = &mut *guard;
        pending.tombstones.retain(|_, t| t.until > now);
        let live: std::collections::HashSet<&str> = pending
            .ports
            .values()
            .map(|p| p.reservation.as_str())
            .collect();
        pending.by_uid.retain(|_, r| live.contains(r.as_str()));
    }

    /// Number of tombstones kept.
    pub fn tombstones_len(&self) -> usize {
        self.lock_pending().tombstones.len()
    }
}

/// Holds each port for its protocol; on the first that is not free, gives back those taken and names it.
fn take_specific(
    allocator: &mut Allocator,
    ports: &[HeldPort],
) -> Result<Vec<PendingPort>, HeldPort> {
    let mut taken: Vec<PendingPort> = Vec::new();
    for port in ports {
        let (pool, item, protocol, start) = port;
        if allocator
            .allocate_specific(pool, item, (*protocol).into(), *start)
            .is_err()
        {
            for back in &taken {
                release_logged(allocator, back);
            }
            return Err(port.clone());
        }
        taken.push((pool.clone(), item.clone(), (*protocol).into(), *start));
    }
    Ok(taken)
}

/// Frees one port; an unknown pool or item (deleted meanwhile) is logged.
fn release_logged(allocator: &mut Allocator, port: &PendingPort) {
    let (pool, item, protocol, start) = port;
    if let Err(e) = allocator.release(pool, item, *protocol, *start) {
        tracing::warn!(pool = %pool, %item, port = start, error = %e, "reserved port not released");
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
        state.allocate_pending("game", pod, "", |a| {
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

    fn reserve(state: &PoolState, key: &PoolKey, reservation: &str) -> u16 {
        state.allocate_pending("game", "", reservation, |a| {
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

    fn check(key: &PoolKey, reservation: &str, uid: &str, ports: &[u16]) -> ReservationCheck {
        ReservationCheck {
            reservation: reservation.into(),
            namespace: "game".into(),
            pod: format!("pod-{uid}"),
            uid: uid.into(),
            ports: ports
                .iter()
                .map(|p| (key.clone(), "a".to_string(), Protocol::Tcp, *p))
                .collect(),
        }
    }

    fn free(state: &PoolState, key: &PoolKey, port: u16) -> bool {
        state.with_allocator(|a| a.is_free(key, "a", RequestProtocol::Tcp, port).unwrap())
    }

    const RESERVATION_TIMEOUT: Duration = Duration::from_secs(5);

    /// One pod through both webhooks and stored: the validating webhook is known to be registered.
    fn seen_validation(state: &PoolState, key: &PoolKey) {
        let port = reserve(state, key, "r-first");
        state
            .validate_reservation(
                &check(key, "r-first", "u-first", &[port]),
                RESERVATION_TIMEOUT,
            )
            .unwrap();
        assert!(state.confirm_stored("u-first"));
    }

    #[test]
    fn without_the_validating_webhook_unvalidated_reservations_are_left_to_the_leak_threshold() {
        let (state, key) = state_with_pool();
        let port = reserve(&state, &key, "r");
        let later = Instant::now() + RESERVATION_TIMEOUT * 10;
        assert!(
            state
                .release_unvalidated(later, RESERVATION_TIMEOUT)
                .is_empty()
        );
        assert!(!free(&state, &key, port));
        seen_validation(&state, &key);
        assert_eq!(
            state.release_unvalidated(later, RESERVATION_TIMEOUT).len(),
            1
        );
        assert!(free(&state, &key, port));
        // A rebuild forgets it was seen.
        let port = reserve(&state, &key, "r2");
        state.clear_pending();
        state.with_allocator(|a| a.release(&key, "a", RequestProtocol::Tcp, port).unwrap());
        let port = reserve(&state, &key, "r3");
        let later = Instant::now() + RESERVATION_TIMEOUT;
        assert!(
            state
                .release_unvalidated(later, RESERVATION_TIMEOUT)
                .is_empty()
        );
        assert!(!free(&state, &key, port));
    }

    #[test]
    fn an_unvalidated_reservation_is_released_after_the_timeout_and_a_validated_one_is_not() {
        let (state, key) = state_with_pool();
        let refused = reserve(&state, &key, "r-refused");
        let admitted = reserve(&state, &key, "r-admitted");
        state
            .validate_reservation(
                &check(&key, "r-admitted", "u1", &[admitted]),
                RESERVATION_TIMEOUT,
            )
            .unwrap();
        let later = Instant::now() + RESERVATION_TIMEOUT;
        let released = state.release_unvalidated(later, RESERVATION_TIMEOUT);
        assert_eq!(released.len(), 1);
        assert_eq!(released[0].0.3, refused);
        assert!(free(&state, &key, refused));
        assert!(!free(&state, &key, admitted));
        // The stored pod's first watch event confirms it: nothing is due any more.
        assert!(state.confirm_stored("u1"));
        assert!(
            state
                .validated_due(later + RESERVATION_TIMEOUT, RESERVATION_TIMEOUT)
                .is_empty()
        );
        assert_eq!(state.pending_len(), 0);
        assert!(!free(&state, &key, admitted));
    }

    #[test]
    fn a_pod_validated_after_its_reservation_lapsed_takes_its_free_port_again_or_is_refused() {
        let (state, key) = state_with_pool();
        seen_validation(&state, &key);
        let slow = reserve(&state, &key, "r-slow");
        state.release_unvalidated(Instant::now() + RESERVATION_TIMEOUT, RESERVATION_TIMEOUT);
        assert!(free(&state, &key, slow));
        // Still free: taken again for the pod and validated.
        assert_eq!(
            state.validate_reservation(&check(&key, "r-slow", "u1", &[slow]), RESERVATION_TIMEOUT),
            Ok(1)
        );
        assert!(!free(&state, &key, slow));
        assert_eq!(
            state
                .validated_due(Instant::now() + RESERVATION_TIMEOUT, RESERVATION_TIMEOUT)
                .len(),
            1
        );

        // Lapsed and handed to another pod meanwhile: the slow pod is refused and the other keeps it.
        let lapsed = reserve(&state, &key, "r-lapsed");
        state.release_unvalidated(Instant::now() + RESERVATION_TIMEOUT, RESERVATION_TIMEOUT);
        assert_eq!(reserve(&state, &key, "r-other"), lapsed);
        let refused = state.validate_reservation(
            &check(&key, "r-lapsed", "u2", &[lapsed]),
            RESERVATION_TIMEOUT,
        );
        assert!(
            refused
                .unwrap_err()
                .contains(&format!("port {lapsed} (TCP)"))
        );
        assert!(!free(&state, &key, lapsed));
        assert_eq!(
            state.validate_reservation(
                &check(&key, "r-other", "u3", &[lapsed]),
                RESERVATION_TIMEOUT
            ),
            Ok(0)
        );
    }

    #[test]
    fn a_validated_pod_that_was_never_stored_gives_its_port_back_and_a_late_one_is_caught() {
        let (state, key) = state_with_pool();
        let port = reserve(&state, &key, "r-quota");
        state
            .validate_reservation(&check(&key, "r-quota", "u1", &[port]), RESERVATION_TIMEOUT)
            .unwrap();
        let later = Instant::now() + RESERVATION_TIMEOUT;
        let due = state.validated_due(later, RESERVATION_TIMEOUT);
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].pod.as_str(), due[0].uid.as_str()), ("pod-u1", "u1"));
        // The pod was looked up and not found (refused by the quota after validation).
        assert_eq!(state.settle(&due[0], false, later).len(), 1);
        assert!(free(&state, &key, port));
        assert_eq!(state.tombstones_len(), 1);
        assert_eq!(state.late_pod("someone-else"), None);
        // Stored late after all, with the port still free: it is held for it again.
        assert_eq!(state.late_pod("u1"), Some(LatePod::Retaken));
        assert!(!free(&state, &key, port));
        assert_eq!(state.tombstones_len(), 0);

        // Same again, but the port went to another pod before the late one showed up.
        let port = reserve(&state, &key, "r-quota-2");
        state
            .validate_reservation(
                &check(&key, "r-quota-2", "u2", &[port]),
                RESERVATION_TIMEOUT,
            )
            .unwrap();
        let due = state.validated_due(Instant::now() + RESERVATION_TIMEOUT, RESERVATION_TIMEOUT);
        let due = due.iter().find(|d| d.uid == "u2").unwrap();
        state.settle(due, false, Instant::now());
        assert_eq!(reserve(&state, &key, "r-next"), port);
        assert_eq!(
            state.late_pod("u2"),
            Some(LatePod::Conflict((
                key.clone(),
                "a".to_string(),
                Protocol::Tcp,
                port
            )))
        );
        assert!(!free(&state, &key, port), "the other pod keeps it");
    }

    #[test]
    fn a_validated_pod_found_stored_keeps_its_port_and_tombstones_expire() {
        let (state, key) = state_with_pool();
        let port = reserve(&state, &key, "r");
        state
            .validate_reservation(&check(&key, "r", "u1", &[port]), RESERVATION_TIMEOUT)
            .unwrap();
        let later = Instant::now() + RESERVATION_TIMEOUT;
        let due = state.validated_due(later, RESERVATION_TIMEOUT);
        assert!(state.settle(&due[0], true, later).is_empty());
        assert!(!free(&state, &key, port));
        assert_eq!((state.pending_len(), state.tombstones_len()), (0, 0));

        let port = reserve(&state, &key, "r2");
        state
            .validate_reservation(&check(&key, "r2", "u2", &[port]), RESERVATION_TIMEOUT)
            .unwrap();
        let later = Instant::now() + RESERVATION_TIMEOUT;
        let due = state.validated_due(later, RESERVATION_TIMEOUT);
        state.settle(&due[0], false, later);
        state.expire_tombstones(later + reservation::TOMBSTONE_TTL);
        assert_eq!(state.tombstones_len(), 0);
        assert_eq!(state.late_pod("u2"), None);
    }

    #[test]
    fn a_rebuild_forgets_reservations_and_tombstones() {
        let (state, key) = state_with_pool();
        let port = reserve(&state, &key, "r");
        state
            .validate_reservation(&check(&key, "r", "u1", &[port]), RESERVATION_TIMEOUT)
            .unwrap();
        let later = Instant::now() + RESERVATION_TIMEOUT;
        let due = state.validated_due(later, RESERVATION_TIMEOUT);
        state.settle(&due[0], false, later);
        state.clear_pending();
        assert_eq!(state.late_pod("u1"), None);
        assert!(!state.confirm_stored("u1"));
        let ids = (state.new_reservation_id(), state.new_reservation_id());
        assert_ne!(ids.0, ids.1);
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
