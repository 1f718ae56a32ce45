//! Shared port-pool state, used by the PortPool reconciler (writer) and the pod webhook (reader
//! and allocator user). Leader-only: it is rebuilt from the API server before the webhook may
//! allocate (`is_ready`), so no port is handed out from a half-known state.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::portpool_plan::HeldPort;
use crate::allocator::{Allocator, PoolKey, RequestProtocol};
use crate::api::PortPoolItemStatus;

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

    /// Records ports the webhook just took for a pod; the caller holds the allocator lock.
    fn record_pending(
        pending: &mut HashMap<PendingPort, PendingAllocation>,
        ports: impl IntoIterator<Item = PendingPort>,
        namespace: &str,
        pod: &str,
        since: Instant,
    ) {
        for port in ports {
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
            .retain(|port, _| !super::portleak::is_claimed(port, held));
    }

    /// Drops the pending records of exactly these ports (released again by the webhook).
    pub fn forget_pending(&self, ports: &[PendingPort]) {
        let mut pending = self.lock_pending();
        for port in ports {
            pending.remove(port);
        }
    }

    /// Drops every pending record (rebuild: the allocator is refilled from the API server).
    pub fn clear_pending(&self) {
        self.lock_pending().clear();
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

    /// Releases the pending allocations [`super::portleak::reclaimable`] picks and drops the confirmed ones,
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
        let picked = super::portleak::reclaimable(&pending, now, threshold, existing_pods, claimed);
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
        pending.retain(|port, _| !super::portleak::is_claimed(port, claimed));
        released
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
}
