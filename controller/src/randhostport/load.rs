//! The guide's allocation rule: a priority structure of (pods holding the port, port), always handing out the
//! ports the fewest pods hold, so ports spread and reuse is fair. Updated on every pod added and deleted.

use std::collections::BTreeSet;

use super::{PortRange, RequestError};

/// How many pods hold each port of a range, ordered by that count (then by port).
#[derive(Debug, Clone)]
pub struct PortLoad {
    range: PortRange,
    /// Indexed by `port - range.start`.
    counts: Vec<u32>,
    order: BTreeSet<(u32, u16)>,
}

impl PortLoad {
    /// Every port of `range` held by no pod.
    pub fn new(range: PortRange) -> Self {
        PortLoad {
            range,
            counts: vec![0; range.len()],
            order: (range.start..=range.end).map(|p| (0, p)).collect(),
        }
    }

    pub fn range(&self) -> PortRange {
        self.range
    }

    /// The `n` different ports the fewest pods hold (ties: the lowest port), without taking them.
    pub fn least_held(&self, n: usize) -> Result<Vec<u16>, RequestError> {
        if n > self.range.len() {
            return Err(RequestError::Exhausted {
                range: self.range,
                size: self.range.len(),
                wanted: n,
            });
        }
        Ok(self.order.iter().take(n).map(|(_, port)| *port).collect())
    }

    /// Pods holding `port` (0 outside the range).
    pub fn count(&self, port: u16) -> u32 {
        self.index(port).map_or(0, |i| self.counts[i])
    }

    /// One more pod holds `port`; ports outside the range are ignored.
    pub fn add(&mut self, port: u16) {
        self.change(port, |c| c.saturating_add(1));
    }

    /// One pod fewer holds `port`.
    pub fn remove(&mut self, port: u16) {
        self.change(port, |c| c.saturating_sub(1));
    }

    fn change(&mut self, port: u16, f: impl FnOnce(u32) -> u32) {
        let Some(i) = self.index(port) else { return };
        let old = self.counts[i];
        let new = f(old);
        self.order.remove(&(old, port));
        self.order.insert((new, port));
        self.counts[i] = new;
    }

    fn index(&self, port: u16) -> Option<usize> {
        self.range
            .contains(port)
            .then(|| usize::from(port - self.range.start))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(start: u16, end: u16) -> PortRange {
        PortRange { start, end }
    }

    #[test]
    fn the_least_held_ports_are_handed_out_first_and_ties_go_to_the_lowest() {
        let mut load = PortLoad::new(range(100, 103));
        assert_eq!(load.least_held(2).unwrap(), vec![100, 101]);
        for p in [100, 101] {
            load.add(p);
        }
        assert_eq!(load.least_held(2).unwrap(), vec![102, 103]);
        for p in [102, 103, 100] {
            load.add(p);
        }
        assert_eq!(load.count(100), 2);
        assert_eq!(load.least_held(3).unwrap(), vec![101, 102, 103]);
        load.remove(101);
        load.remove(101);
        assert_eq!(load.count(101), 0, "never below zero");
        assert_eq!(load.least_held(1).unwrap(), vec![101]);
        load.add(7);
        assert_eq!(load.count(7), 0, "outside the range: ignored");
    }

    #[test]
    fn asking_for_more_ports_than_the_range_has_is_refused() {
        let load = PortLoad::new(range(29000, 29001));
        assert_eq!(load.least_held(2).unwrap().len(), 2);
        assert_eq!(
            load.least_held(3).unwrap_err().to_string(),
            "random host port range 29000-29001 has 2 port(s); the pod asks for 3 different ones"
        );
    }
}
