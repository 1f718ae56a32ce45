//! The reconcile driver's work queue: each key at most once, due at its earliest requested time, never handed
//! out twice at once, with per-key exponential backoff after failures. No I/O; the driver sleeps until
//! [`WorkQueue::next_due`].

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// First retry delay after a failed reconcile.
pub const BACKOFF_INITIAL: Duration = Duration::from_millis(500);
/// Longest retry delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Keys waiting to be reconciled, keys being reconciled, and consecutive failure counts for backoff.
#[derive(Debug)]
pub struct WorkQueue<K> {
    due: HashMap<K, Instant>,
    running: HashSet<K>,
    failures: HashMap<K, u32>,
}

impl<K> Default for WorkQueue<K> {
    fn default() -> Self {
        WorkQueue {
            due: HashMap::new(),
            running: HashSet::new(),
            failures: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash> WorkQueue<K> {
    /// Queues `key` at `at`, or earlier if it is already queued for earlier. A running key is queued too: it
    /// starts again once its current pass ends, so no change seen during a pass is lost.
    pub fn schedule(&mut self, key: K, at: Instant) {
        let slot = self.due.entry(key).or_insert(at);
        if at < *slot {
            *slot = at;
        }
    }

    /// When the earliest queued key that is not running is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.due
            .iter()
            .filter(|(k, _)| !self.running.contains(*k))
            .map(|(_, at)| *at)
            .min()
    }

    /// Takes the earliest key due at `now` that is not running, and marks it running.
    pub fn start_due(&mut self, now: Instant) -> Option<K> {
        let key = self
            .due
            .iter()
            .filter(|(k, at)| **at <= now && !self.running.contains(*k))
            .min_by_key(|(_, at)| **at)
            .map(|(k, _)| k.clone())?;
        self.due.remove(&key);
        self.running.insert(key.clone());
        Some(key)
    }

    /// How many keys are running.
    pub fn running(&self) -> usize {
        self.running.len()
    }

    /// Ends the pass of `key` successfully: forgets its failures, requeues it after `requeue` if asked.
    pub fn succeeded(&mut self, key: K, requeue: Option<Duration>, now: Instant) {
        self.running.remove(&key);
        self.failures.remove(&key);
        if let Some(after) = requeue {
            self.schedule(key, now + after);
        }
    }

    /// Ends the pass of `key` with a failure: requeues it after a delay that doubles per consecutive failure
    /// up to [`BACKOFF_MAX`], and returns that delay.
    pub fn failed(&mut self, key: K, now: Instant) -> Duration {
        self.running.remove(&key);
        let n = self.failures.entry(key.clone()).or_default();
        *n = n.saturating_add(1);
        let after = BACKOFF_INITIAL
            .saturating_mul(1u32 << (*n - 1).min(16))
            .min(BACKOFF_MAX);
        self.schedule(key, now + after);
        after
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
        assert_eq!(q.start_due(now), None);
        let later = now + Duration::from_secs(3);
        assert_eq!(q.start_due(later), Some("a"));
        assert_eq!(q.start_due(later), Some("b"));
        assert_eq!(q.start_due(later), None);
        assert_eq!(q.next_due(), None);
        assert_eq!(q.running(), 2);
    }

    #[test]
    fn a_running_key_waits_for_its_pass_to_end() {
        let mut q = WorkQueue::default();
        let now = Instant::now();
        q.schedule("a", now);
        assert_eq!(q.start_due(now), Some("a"));
        q.schedule("a", now);
        assert_eq!(q.next_due(), None, "a is running");
        assert_eq!(q.start_due(now), None);
        q.succeeded("a", None, now);
        assert_eq!(
            q.start_due(now),
            Some("a"),
            "the change seen meanwhile runs"
        );
    }

    #[test]
    fn success_requeues_only_when_asked() {
        let mut q = WorkQueue::default();
        let now = Instant::now();
        q.schedule("a", now);
        q.start_due(now);
        q.succeeded("a", None, now);
        assert_eq!(q.next_due(), None);
        q.schedule("a", now);
        q.start_due(now);
        q.succeeded("a", Some(Duration::from_secs(2)), now);
        assert_eq!(q.next_due(), Some(now + Duration::from_secs(2)));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_resets_on_success() {
        let mut q = WorkQueue::default();
        let now = Instant::now();
        let fail = |q: &mut WorkQueue<&str>, key| {
            q.schedule(key, now);
            q.start_due(now);
            q.failed(key, now)
        };
        assert_eq!(fail(&mut q, "a"), BACKOFF_INITIAL);
        assert_eq!(fail(&mut q, "a"), BACKOFF_INITIAL * 2);
        assert_eq!(fail(&mut q, "a"), BACKOFF_INITIAL * 4);
        for _ in 0..40 {
            fail(&mut q, "a");
        }
        assert_eq!(fail(&mut q, "a"), BACKOFF_MAX);
        q.schedule("a", now);
        q.start_due(now);
        q.succeeded("a", None, now);
        assert_eq!(fail(&mut q, "a"), BACKOFF_INITIAL);
        assert_eq!(fail(&mut q, "b"), BACKOFF_INITIAL);
    }
}
