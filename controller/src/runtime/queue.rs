//! The reconcilers' work queue: each key at most once, due at its earliest requested time, with
//! per-key exponential backoff after failures. No I/O; the caller sleeps until `next_due`.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// First retry delay after a failed reconcile.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Keys waiting to be reconciled, with consecutive failure counts for backoff.
#[derive(Debug)]
pub struct WorkQueue<K> {
    due: HashMap<K, Instant>,
    failures: HashMap<K, u32>,
}

impl<K> Default for WorkQueue<K> {
    fn default() -> Self {
        WorkQueue {
            due: HashMap::new(),
            failures: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    /// Queues `key` at `at`, or earlier if it is already queued for earlier.
    pub fn schedule(&mut self, key: K, at: Instant) {
        let slot = self.due.entry(key).or_insert(at);
        if at < *slot {
            *slot = at;
        }
    }

    /// When the earliest queued key is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due.values().min().copied()
    }

    /// Takes the earliest key due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<K> {
        let key = self
            .due
            .iter()
            .filter(|(_, at)| **at <= now)
            .min_by_key(|(_, at)| **at)
            .map(|(k, _)| k.clone())?;
        self.due.remove(&key);
        Some(key)
    }

    /// Forgets the failures of `key`.
    pub fn succeeded(&mut self, key: &K) {
        self.failures.remove(key);
    }

    /// The delay before the next attempt: doubles per consecutive failure up to [`BACKOFF_MAX`].
    pub fn failed(&mut self, key: &K) -> Duration {
        let n = self.failures.entry(key.clone()).or_default();
        *n = n.saturating_add(1);
        BACKOFF_INITIAL
            .saturating_mul(1u32 << (*n - 1).min(16))
            .min(BACKOFF_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_is_queued_once_at_its_earliest_time() {
        let mut q = WorkQueue::default();
        let now = Instant::now();
        q.schedule("a", now + Duration::from_secs(10));
        q.schedule("a", now + Duration::from_secs(1));
        q.schedule("a", now + Duration::from_secs(5));
        q.schedule("b", now + Duration::from_secs(2));
        assert_eq!(q.next_due(), Some(now + Duration::from_secs(1)));
        assert_eq!(q.pop_due(now), None);
        let later = now + Duration::from_secs(3);
        assert_eq!(q.pop_due(later), Some("a"));
        assert_eq!(q.pop_due(later), Some("b"));
        assert_eq!(q.pop_due(later), None);
        assert_eq!(q.next_due(), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets_on_success() {
        let mut q = WorkQueue::default();
        assert_eq!(q.failed(&"a"), BACKOFF_INITIAL);
        assert_eq!(q.failed(&"a"), BACKOFF_INITIAL * 2);
        assert_eq!(q.failed(&"a"), BACKOFF_INITIAL * 4);
        for _ in 0..40 {
            q.failed(&"a");
        }
        assert_eq!(q.failed(&"a"), BACKOFF_MAX);
        q.succeeded(&"a");
        assert_eq!(q.failed(&"a"), BACKOFF_INITIAL);
        assert_eq!(q.failed(&"b"), BACKOFF_INITIAL);
    }
}
