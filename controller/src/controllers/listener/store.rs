//! The in-memory cache of Listener CRs, indexed by load balancer. Filled by the watcher, read by the per-LB
//! sync workers (through [`ListenerStore::snapshot`]) and by the status writer. No I/O.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::api::{Listener, ListenerStatus, keys};
use crate::cloud::LbRef;
use crate::sync::{DeletingListener, DesiredListener, OwnerRef};

use super::desired::{
    MappingError, deleting_listener, desired_listener, has_finalizer, is_deleting, lb_of, owner_of,
};

/// What a sync worker plans from: the CRs of one LB, plus the CRs it must not plan for (invalid spec) with the
/// reason to put in their status.
#[derive(Debug, Default)]
pub struct LbSnapshot {
    pub desired: Vec<DesiredListener>,
    pub deleting: Vec<DeletingListener>,
    pub invalid: Vec<(OwnerRef, MappingError)>,
    /// `metadata.generation` of every CR above, read in the same lock as its spec.
    pub generations: HashMap<OwnerRef, i64>,
}

#[derive(Debug, Default)]
struct Inner {
    objects: HashMap<OwnerRef, Entry>,
    by_lb: HashMap<LbRef, BTreeSet<OwnerRef>>,
}

#[derive(Debug)]
struct Entry {
    listener: Arc<Listener>,
    /// `Err` when the LB reference is unusable (reported as NotSynced, never planned).
    lb: Result<LbRef, MappingError>,
}

/// How a cached CR takes part in sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Not deleting and carries our finalizer: planned as desired.
    Desired,
    /// Not deleting, no finalizer yet: waits for the finalizer (so a quick delete cannot leak a cloud listener).
    AwaitingFinalizer,
    /// Deleting with our finalizer: its cloud listener must go.
    Deleting,
    /// Deleting without our finalizer: nothing to do.
    Ignored,
}

/// The role of a CR.
pub fn role_of(listener: &Listener) -> Role {
    match (is_deleting(listener), has_finalizer(listener)) {
        (false, true) => Role::Desired,
        (false, false) => Role::AwaitingFinalizer,
        (true, true) => Role::Deleting,
        (true, false) => Role::Ignored,
    }
}

/// Listener CRs by owner (`ns/name`) and by LB. Cheap to share behind an `Arc`.
#[derive(Debug)]
pub struct ListenerStore {
    default_region: String,
    inner: RwLock<Inner>,
}

impl ListenerStore {
    pub fn new(default_region: impl Into<String>) -> Self {
        ListenerStore {
            default_region: default_region.into(),
            inner: RwLock::default(),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        // The data stays consistent even if a holder panicked: every write is a plain insert/remove.
        self.inner.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds or replaces a CR; returns the LBs whose worker must look again (old and new LB).
    pub fn apply(&self, listener: Listener) -> Vec<LbRef> {
        let mut inner = self.write();
        let mut touched = Vec::new();
        let owner = owner_of(&listener);
        if let Some(lb) = inner.remove(&owner) {
            touched.push(lb);
        }
        if role_of(&listener) == Role::Ignored {
            return touched;
        }
        let lb = lb_of(&listener, &self.default_region);
        if let Ok(lb) = &lb {
            inner
                .by_lb
                .entry(lb.clone())
                .or_default()
                .insert(owner.clone());
            if !touched.contains(lb) {
                touched.push(lb.clone());
            }
        }
        inner.objects.insert(
            owner,
            Entry {
                listener: Arc::new(listener),
                lb,
            },
        );
        touched
    }

    /// Forgets a CR; returns its LB.
    pub fn delete(&self, owner: &str) -> Vec<LbRef> {
        self.write().remove(owner).into_iter().collect()
    }

    /// Replaces the whole content (after a watch (re)list); returns every LB before and after.
    pub fn replace_all(&self, listeners: Vec<Listener>) -> Vec<LbRef> {
        let mut touched: BTreeSet<(String, String)> = self
            .lbs()
            .into_iter()
            .map(|lb| (lb.region, lb.lb_id))
            .collect();
        *self.write() = Inner::default();
        for l in listeners {
            for lb in self.apply(l) {
                touched.insert((lb.region, lb.lb_id));
            }
        }
        touched
            .into_iter()
            .map(|(region, id)| LbRef::new(region, id))
            .collect()
    }

    /// The cached CR.
    pub fn get(&self, owner: &str) -> Option<Arc<Listener>> {
        self.read().objects.get(owner).map(|e| e.listener.clone())
    }

    /// Records a status this controller just wrote, so the next plan sees the listener id before the watch
    /// event arrives.
    pub fn set_status(&self, owner: &str, status: ListenerStatus) {
        let mut inner = self.write();
        if let Some(entry) = inner.objects.get_mut(owner) {
            let mut listener = (*entry.listener).clone();
            listener.status = Some(status);
            entry.listener = Arc::new(listener);
        }
    }

    /// Every LB with at least one CR.
    pub fn lbs(&self) -> Vec<LbRef> {
        self.read().by_lb.keys().cloned().collect()
    }

    /// CRs that wait for our finalizer.
    pub fn awaiting_finalizer(&self) -> Vec<Arc<Listener>> {
        self.read()
            .objects
            .values()
            .filter(|e| role_of(&e.listener) == Role::AwaitingFinalizer)
            .map(|e| e.listener.clone())
            .collect()
    }

    /// CRs whose LB reference is unusable, with the reason.
    pub fn without_lb(&self) -> Vec<(OwnerRef, MappingError)> {
        self.read()
            .objects
            .iter()
            .filter_map(|(owner, e)| e.lb.as_ref().err().map(|err| (owner.clone(), err.clone())))
            .collect()
    }

    /// The CRs of one LB in the sync engine's terms, in owner order.
    pub fn snapshot(&self, lb: &LbRef) -> LbSnapshot {
        let inner = self.read();
        let mut snap = LbSnapshot::default();
        let Some(owners) = inner.by_lb.get(lb) else {
            return snap;
        };
        for owner in owners {
            let Some(entry) = inner.objects.get(owner) else {
                continue;
            };
            if let Some(generation) = entry.listener.metadata.generation {
                snap.generations.insert(owner.clone(), generation);
            }
            match role_of(&entry.listener) {
                Role::Desired => match desired_listener(&entry.listener) {
                    Ok(d) => snap.desired.push(d),
                    Err(e) => snap.invalid.push((owner.clone(), e)),
                },
                Role::Deleting => snap.deleting.push(deleting_listener(&entry.listener)),
                Role::AwaitingFinalizer | Role::Ignored => {}
            }
        }
        snap
    }

    /// Number of CRs by status column value (`Synced`, `NotSynced`, `Pending`, `Deleting`), for metrics.
    pub fn count_by_status(&self) -> BTreeMap<&'static str, i64> {
        let mut counts = BTreeMap::from([
            (keys::LISTENER_STATUS_SYNCED, 0),
            (keys::LISTENER_STATUS_NOT_SYNCED, 0),
            ("Pending", 0),
            ("Deleting", 0),
        ]);
        for e in self.read().objects.values() {
            let key = if is_deleting(&e.listener) {
                "Deleting"
            } else {
                match e.listener.status.as_ref().and_then(|s| s.status.as_deref()) {
                    Some(keys::LISTENER_STATUS_SYNCED) => keys::LISTENER_STATUS_SYNCED,
                    Some(keys::LISTENER_STATUS_NOT_SYNCED) => keys::LISTENER_STATUS_NOT_SYNCED,
                    _ => "Pending",
                }
            };
            *counts.entry(key).or_default() += 1;
        }
        counts
    }
}

impl Inner {
    fn remove(&mut self, owner: &str) -> Option<LbRef> {
        let entry = self.objects.remove(owner)?;
        let lb = entry.lb.ok()?;
        if let Some(set) = self.by_lb.get_mut(&lb) {
            set.remove(owner);
            if set.is_empty() {
                self.by_lb.remove(&lb);
            }
        }
        Some(lb)
    }
}
