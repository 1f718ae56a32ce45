//! Shared port-pool state, used by the PortPool reconciler (writer) and the pod webhook (reader
//! and allocator user). Leader-only: it is rebuilt from the API server before the webhook may
//! allocate (`is_ready`), so no port is handed out from a half-known state.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::allocator::{Allocator, PoolKey};
use crate::api::PortPoolItemStatus;

/// The allocator plus the observed item status the webhook needs to describe an allocation
/// (load balancer ids, VIPs, region, `external`).
#[derive(Debug, Default)]
pub struct PoolState {
    allocator: Mutex<Allocator>,
    items: Mutex<HashMap<PoolKey, Vec<PortPoolItemStatus>>>,
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

    /// Replaces the observed item status of one pool (from `PortPool.status.poolItems`).
    pub fn set_items(&self, key: PoolKey, items: Vec<PortPoolItemStatus>) {
        self.lock_items().insert(key, items);
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

    fn lock_items(&self) -> std::sync::MutexGuard<'_, HashMap<PoolKey, Vec<PortPoolItemStatus>>> {
        self.items
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
