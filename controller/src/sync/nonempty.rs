//! A vector that cannot be empty, so that calls where an empty list is dangerous
//! (`DeleteLoadBalancerListeners` with no `ListenerIds` deletes every listener) cannot be built.

use std::ops::Deref;

/// A non-empty, ordered list. Derefs to a slice.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NonEmpty<T>(Vec<T>);

impl<T> NonEmpty<T> {
    /// `None` when `items` is empty.
    pub fn new(items: Vec<T>) -> Option<Self> {
        (!items.is_empty()).then_some(NonEmpty(items))
    }

    /// A list of one.
    pub fn one(item: T) -> Self {
        NonEmpty(vec![item])
    }

    /// The first element (always present).
    pub fn head(&self) -> &T {
        &self.0[0]
    }

    /// A list of `f` applied to each element (still non-empty).
    pub fn map<U>(&self, f: impl FnMut(&T) -> U) -> NonEmpty<U> {
        NonEmpty(self.0.iter().map(f).collect())
    }

    /// The elements as a vector.
    pub fn into_vec(self) -> Vec<T> {
        self.0
    }

    /// Splits `items` into consecutive non-empty chunks of at most `max` (treated as at least 1).
    pub fn chunks(items: Vec<T>, max: usize) -> Vec<NonEmpty<T>> {
        let max = max.max(1);
        let mut out = Vec::with_capacity(items.len().div_ceil(max));
        let mut current = Vec::with_capacity(max.min(items.len()));
        for item in items {
            current.push(item);
            if current.len() == max {
                out.push(NonEmpty(std::mem::take(&mut current)));
            }
        }
        if !current.is_empty() {
            out.push(NonEmpty(current));
        }
        out
    }
}

impl<T> Deref for NonEmpty<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        &self.0
    }
}

impl<'a, T> IntoIterator for &'a NonEmpty<T> {
    type Item = &'a T;
    type IntoIter = std::slice::Iter<'a, T>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_vec_is_rejected() {
        assert!(NonEmpty::<u8>::new(vec![]).is_none());
        assert_eq!(NonEmpty::new(vec![1]).map(|n| n.len()), Some(1));
    }

    #[test]
    fn chunks_are_bounded_and_keep_order() {
        let chunks = NonEmpty::chunks((0..7).collect(), 3);
        let lens: Vec<usize> = chunks.iter().map(|c| c.len()).collect();
        assert_eq!(lens, vec![3, 3, 1]);
        let flat: Vec<i32> = chunks.into_iter().flat_map(NonEmpty::into_vec).collect();
        assert_eq!(flat, (0..7).collect::<Vec<_>>());
        assert!(NonEmpty::<u8>::chunks(vec![], 3).is_empty());
    }
}
