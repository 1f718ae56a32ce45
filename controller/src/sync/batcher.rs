//! Adaptive micro-batching for one load balancer's worker, as a pure state machine.
//!
//! A change is flushed at once when the worker is idle; changes that arrive while a call is in
//! flight are coalesced (duplicates collapse) and flushed together when it finishes. There is no
//! timer: a fixed batching window (2–3 s in bcs and tke) only adds latency when the worker is idle,
//! and under load the in-flight call itself is the window.

use std::collections::HashSet;
use std::hash::Hash;

/// Changes to hand to the worker, in arrival order, without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch<K>(pub Vec<K>);

/// The batching state of one worker.
#[derive(Debug, Clone)]
pub struct Batcher<K> {
    in_flight: bool,
    pending: Vec<K>,
    seen: HashSet<K>,
}

impl<K> Default for Batcher<K> {
    fn default() -> Self {
        Batcher {
            in_flight: false,
            pending: Vec::new(),
            seen: HashSet::new(),
        }
    }
}

impl<K: Eq + Hash + Clone> Batcher<K> {
    /// An idle batcher.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records a change. Returns a batch to run now if the worker was idle (it is then busy
    /// until [`Batcher::finish`]); otherwise the change waits for the current call.
    pub fn push(&mut self, change: K) -> Option<Batch<K>> {
        if self.in_flight {
            if self.seen.insert(change.clone()) {
                self.pending.push(change);
            }
            return None;
        }
        self.in_flight = true;
        Some(Batch(vec![change]))
    }

    /// Marks the in-flight batch done. Returns the changes that arrived meanwhile as the next
    /// batch (the worker stays busy), or `None` when there are none (the worker becomes idle).
    pub fn finish(&mut self) -> Option<Batch<K>> {
        if self.pending.is_empty() {
            self.in_flight = false;
            return None;
        }
        self.seen.clear();
        Some(Batch(std::mem::take(&mut self.pending)))
    }

    /// Whether a batch is in flight.
    pub fn is_busy(&self) -> bool {
        self.in_flight
    }

    /// Number of changes waiting for the in-flight batch to finish.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lone_change_flushes_at_once() {
        let mut b = Batcher::new();
        assert_eq!(b.push("ns/a"), Some(Batch(vec!["ns/a"])));
        assert!(b.is_busy());
        assert_eq!(b.finish(), None);
        assert!(!b.is_busy());
    }

    #[test]
    fn changes_during_a_call_become_one_batch_after_it() {
        let mut b = Batcher::new();
        assert!(b.push("ns/a").is_some());
        assert_eq!(b.push("ns/b"), None);
        assert_eq!(b.push("ns/c"), None);
        assert_eq!(b.push("ns/d"), None);
        assert_eq!(b.pending(), 3);
        assert_eq!(b.finish(), Some(Batch(vec!["ns/b", "ns/c", "ns/d"])));
        assert!(b.is_busy(), "the coalesced batch is now in flight");
        assert_eq!(b.finish(), None);
        assert!(!b.is_busy());
        assert_eq!(b.push("ns/e"), Some(Batch(vec!["ns/e"])));
    }

    #[test]
    fn duplicates_coalesce() {
        let mut b = Batcher::new();
        assert!(b.push("ns/a").is_some());
        for change in ["ns/b", "ns/a", "ns/b", "ns/b"] {
            assert_eq!(b.push(change), None);
        }
        assert_eq!(b.finish(), Some(Batch(vec!["ns/b", "ns/a"])));
        // A change seen in the previous batch is queued again for the next one.
        assert_eq!(b.push("ns/b"), None);
        assert_eq!(b.finish(), Some(Batch(vec!["ns/b"])));
    }
}
