//! A three-level bitset of free slots with O(1) "lowest free slot".
//!
//! A set bit means *free*. `leaf` holds one bit per slot; bit `j` of `mid[i]` is set iff
//! `leaf[i * 64 + j] != 0`; bit `j` of `top[i]` is set iff `mid[i * 64 + j] != 0`. Finding the
//! lowest free slot is three `trailing_zeros` once the first non-zero `top` word is found, and
//! `top` has a single word for up to 262 144 slots (a port item has at most 65 535), so every
//! operation touches a constant number of words. The bcs cache scans ports linearly instead.

const WORD: u32 = 64;

/// Free/held state of the slots `0..len`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FreeSet {
    len: u32,
    free: u32,
    leaf: Vec<u64>,
    mid: Vec<u64>,
    top: Vec<u64>,
}

fn words_for(bits: u32) -> usize {
    bits.div_ceil(WORD) as usize
}

impl FreeSet {
    /// A set of `len` slots, all free.
    pub fn new(len: u32) -> Self {
        let mut set = FreeSet {
            len: 0,
            free: 0,
            leaf: Vec::new(),
            mid: Vec::new(),
            top: Vec::new(),
        };
        set.grow(len);
        set
    }

    /// Number of slots.
    pub fn len(&self) -> u32 {
        self.len
    }

    /// True when the set has no slot at all.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of free slots.
    pub fn free_count(&self) -> u32 {
        self.free
    }

    /// Number of held slots.
    pub fn held_count(&self) -> u32 {
        self.len - self.free
    }

    /// Extends the set to `new_len` slots; the new slots are free and existing state is kept.
    /// A smaller `new_len` is ignored (shrinking is not supported, as in bcs).
    pub fn grow(&mut self, new_len: u32) {
        if new_len <= self.len {
            return;
        }
        let old_len = self.len;
        self.leaf.resize(words_for(new_len), 0);
        self.mid.resize(words_for(self.leaf.len() as u32), 0);
        self.top.resize(words_for(self.mid.len() as u32), 0);
        self.len = new_len;
        for slot in old_len..new_len {
            self.release(slot);
        }
    }

    /// True when `slot` exists and is free.
    pub fn is_free(&self, slot: u32) -> bool {
        slot < self.len && self.leaf[(slot / WORD) as usize] & (1 << (slot % WORD)) != 0
    }

    /// Lowest free slot, if any.
    pub fn first_free(&self) -> Option<u32> {
        let (t, top_word) = self.top.iter().enumerate().find(|(_, w)| **w != 0)?;
        let m = t * WORD as usize + top_word.trailing_zeros() as usize;
        let l = m * WORD as usize + self.mid[m].trailing_zeros() as usize;
        Some(l as u32 * WORD + self.leaf[l].trailing_zeros())
    }

    /// Marks `slot` held. Returns false (and changes nothing) when it was not free.
    pub fn take(&mut self, slot: u32) -> bool {
        if !self.is_free(slot) {
            return false;
        }
        let l = (slot / WORD) as usize;
        self.leaf[l] &= !(1 << (slot % WORD));
        if self.leaf[l] == 0 {
            let m = l / WORD as usize;
            self.mid[m] &= !(1 << (l % WORD as usize));
            if self.mid[m] == 0 {
                self.top[m / WORD as usize] &= !(1 << (m % WORD as usize));
            }
        }
        self.free -= 1;
        true
    }

    /// Marks `slot` free. Returns false (and changes nothing) when it was already free or does
    /// not exist.
    pub fn release(&mut self, slot: u32) -> bool {
        if slot >= self.len || self.is_free(slot) {
            return false;
        }
        let l = (slot / WORD) as usize;
        let was_empty = self.leaf[l] == 0;
        self.leaf[l] |= 1 << (slot % WORD);
        if was_empty {
            let m = l / WORD as usize;
            let mid_was_empty = self.mid[m] == 0;
            self.mid[m] |= 1 << (l % WORD as usize);
            if mid_was_empty {
                self.top[m / WORD as usize] |= 1 << (m % WORD as usize);
            }
        }
        self.free += 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn new_set_is_all_free_and_lowest_first() {
        let mut set = FreeSet::new(130);
        assert_eq!(set.free_count(), 130);
        assert_eq!(set.first_free(), Some(0));
        assert!(set.take(0));
        assert!(!set.take(0));
        assert_eq!(set.first_free(), Some(1));
        assert!(!set.is_free(130));
        assert!(!set.release(130));
    }

    #[test]
    fn full_set_has_no_free_slot_and_grow_adds_free_slots() {
        let mut set = FreeSet::new(4097);
        for slot in 0..4097 {
            assert!(set.take(slot));
        }
        assert_eq!(set.first_free(), None);
        set.grow(5000);
        assert_eq!(set.first_free(), Some(4097));
        assert_eq!(set.free_count(), 5000 - 4097);
        assert_eq!(set.held_count(), 4097);
        set.grow(10);
        assert_eq!(set.len(), 5000);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Take(u32),
        TakeLowest,
        Release(u32),
        Grow(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..70_000).prop_map(Op::Take),
            Just(Op::TakeLowest),
            (0u32..70_000).prop_map(Op::Release),
            (0u32..70_000).prop_map(Op::Grow),
        ]
    }

    proptest! {
        /// The bitset behaves exactly like a `BTreeSet` of free slots.
        #[test]
        fn matches_btreeset_model(len in 0u32..9000, ops in proptest::collection::vec(op(), 0..300)) {
            let mut set = FreeSet::new(len);
            let mut model: BTreeSet<u32> = (0..len).collect();
            let mut model_len = len;
            for op in ops {
                match op {
                    Op::Take(s) => prop_assert_eq!(set.take(s), model.remove(&s)),
                    Op::TakeLowest => {
                        let lowest = set.first_free();
                        prop_assert_eq!(lowest, model.first().copied());
                        if let Some(s) = lowest {
                            prop_assert!(set.take(s));
                            model.remove(&s);
                        }
                    }
                    Op::Release(s) => {
                        prop_assert_eq!(set.release(s), s < model_len && model.insert(s));
                    }
                    Op::Grow(n) => {
                        set.grow(n);
                        if n > model_len {
                            model.extend(model_len..n);
                            model_len = n;
                        }
                    }
                }
                prop_assert_eq!(set.free_count() as usize, model.len());
                prop_assert_eq!(set.first_free(), model.first().copied());
            }
        }
    }
}
