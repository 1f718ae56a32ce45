//! The random-hostPort state the leader's pod watch feeds and the webhook reads: the [`PortLoad`] of stored pods
//! plus the pods admitted in the last [`ADMITTED_FOR`], so a burst of admissions spreads over the ports before any
//! of those pods is seen stored (a stored pod then counts twice for a few seconds, which only nudges the order).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::load::PortLoad;
use super::{PortRange, RequestError};

/// How long an admitted pod counts on its own, before its stored copy is expected in the watch.
pub const ADMITTED_FOR: Duration = Duration::from_secs(10);

#[derive(Debug)]
struct Inner {
    load: PortLoad,
    /// Ports of stored pods, by uid.
    stored: HashMap<String, Vec<u16>>,
    /// Ports handed out at admission, oldest first.
    admitted: VecDeque<(Instant, Vec<u16>)>,
}

/// Shared by the webhook and the leader's pod watch. Not ready until the watch's first listing is in.
#[derive(Debug)]
pub struct RandHostPortState {
    inner: Mutex<Inner>,
    ready: AtomicBool,
}

impl RandHostPortState {
    pub fn new(range: PortRange) -> Self {
        RandHostPortState {
            inner: Mutex::new(Inner {
                load: PortLoad::new(range),
                stored: HashMap::new(),
                admitted: VecDeque::new(),
            }),
            ready: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn range(&self) -> PortRange {
        self.lock().load.range()
    }

    /// True once rebuilt from the pods (the leader's watch listed them).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Release);
    }

    /// Hands out the `n` least-held ports for one pod; a dry run takes nothing.
    pub fn admit(&self, n: usize, dry_run: bool, now: Instant) -> Result<Vec<u16>, RequestError> {
        let mut inner = self.lock();
        let ports = inner.load.least_held(n)?;
        if !dry_run {
            for p in &ports {
                inner.load.add(*p);
            }
            inner.admitted.push_back((now, ports.clone()));
        }
        Ok(ports)
    }

    /// Admissions older than [`ADMITTED_FOR`] stop counting on their own.
    pub fn expire_admitted(&self, now: Instant) {
        let mut inner = self.lock();
        while let Some((at, _)) = inner.admitted.front() {
            if now.saturating_duration_since(*at) < ADMITTED_FOR {
                break;
            }
            if let Some((_, ports)) = inner.admitted.pop_front() {
                for p in ports {
                    inner.load.remove(p);
                }
            }
        }
    }

    /// A stored pod (added or changed) holds `ports`.
    pub fn pod_seen(&self, uid: &str, ports: Vec<u16>) {
        let mut inner = self.lock();
        for p in &ports {
            inner.load.add(*p);
        }
        if let Some(old) = inner.stored.insert(uid.to_owned(), ports) {
            for p in old {
                inner.load.remove(p);
            }
        }
    }

    /// A stored pod was deleted.
    pub fn pod_gone(&self, uid: &str) {
        let mut inner = self.lock();
        if let Some(old) = inner.stored.remove(uid) {
            for p in old {
                inner.load.remove(p);
            }
        }
    }

    /// Replaces every stored pod at once (the watch's listing, after a start or a lost watch).
    pub fn rebuild(&self, pods: HashMap<String, Vec<u16>>) {
        let mut inner = self.lock();
        let old = std::mem::take(&mut inner.stored);
        for p in old.into_values().flatten() {
            inner.load.remove(p);
        }
        for p in pods.values().flatten() {
            inner.load.add(*p);
        }
        inner.stored = pods;
    }

    /// Pods counted on `port` now (stored and recently admitted).
    pub fn count(&self, port: u16) -> u32 {
        self.lock().load.count(port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> RandHostPortState {
        RandHostPortState::new(PortRange {
            start: 29000,
            end: 29003,
        })
    }

    #[test]
    fn concurrent_admissions_spread_before_any_pod_is_seen() {
        let s = state();
        let t0 = Instant::now();
        assert_eq!(s.admit(2, false, t0).unwrap(), vec![29000, 29001]);
        assert_eq!(s.admit(2, false, t0).unwrap(), vec![29002, 29003]);
        assert_eq!(
            s.admit(1, true, t0).unwrap(),
            vec![29000],
            "a dry run only looks"
        );
        assert_eq!(s.admit(1, false, t0).unwrap(), vec![29000]);
        assert_eq!(s.count(29000), 2);
        s.expire_admitted(t0 + ADMITTED_FOR);
        assert_eq!(s.count(29000), 0);
    }

    #[test]
    fn stored_pods_count_until_deleted_and_a_rebuild_replaces_them() {
        let s = state();
        s.pod_seen("a", vec![29000, 29001]);
        s.pod_seen("b", vec![29000]);
        assert_eq!(s.count(29000), 2);
        s.pod_seen("b", vec![29002]);
        assert_eq!(
            (s.count(29000), s.count(29002)),
            (1, 1),
            "a changed pod moves"
        );
        s.pod_gone("a");
        s.pod_gone("a");
        assert_eq!((s.count(29000), s.count(29001)), (0, 0));
        assert_eq!(s.admit(1, false, Instant::now()).unwrap(), vec![29000]);
        s.rebuild(HashMap::from([("c".to_string(), vec![29003])]));
        assert_eq!(s.count(29002), 0, "b is gone after the rebuild");
        assert_eq!(s.count(29003), 1);
        assert_eq!(s.count(29000), 1, "the admission still counts");
    }
}
