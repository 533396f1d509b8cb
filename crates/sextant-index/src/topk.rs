//! Search results and the bounded top-k collector.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// A point offset with its internal distance to the query (smaller is closer; convert with
/// [`sextant_core::Metric::score`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Neighbor {
    /// Point offset.
    pub id: u32,
    /// Internal distance to the query.
    pub distance: f32,
}

impl Eq for Neighbor {}

impl Ord for Neighbor {
    /// By distance, then id, so ties break deterministically.
    fn cmp(&self, other: &Self) -> Ordering {
        self.distance
            .total_cmp(&other.distance)
            .then(self.id.cmp(&other.id))
    }
}

impl PartialOrd for Neighbor {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Keeps the `k` closest neighbours offered to it.
#[derive(Debug)]
pub(crate) struct TopK {
    k: usize,
    heap: BinaryHeap<Neighbor>,
}

impl TopK {
    pub(crate) fn new(k: usize) -> Self {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }

    #[inline]
    pub(crate) fn offer(&mut self, id: u32, distance: f32) {
        if self.heap.len() < self.k {
            self.heap.push(Neighbor { id, distance });
        } else if let Some(mut worst) = self.heap.peek_mut() {
            let n = Neighbor { id, distance };
            if n < *worst {
                *worst = n;
            }
        }
    }

    /// The distance a newcomer must not exceed to be kept: the worst kept one once `k` are
    /// kept, infinity before.
    #[inline]
    pub(crate) fn bound(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::INFINITY
        } else {
            self.heap.peek().map_or(f32::INFINITY, |n| n.distance)
        }
    }

    /// The kept neighbours, closest first.
    pub(crate) fn into_sorted(self) -> Vec<Neighbor> {
        self.heap.into_sorted_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_k_smallest_in_order() {
        let mut t = TopK::new(3);
        for (i, d) in [5.0, 1.0, 4.0, 2.0, 3.0, 0.5].into_iter().enumerate() {
            t.offer(i as u32, d);
        }
        let ids: Vec<u32> = t.into_sorted().iter().map(|n| n.id).collect();
        assert_eq!(ids, vec![5, 1, 3]);
    }

    #[test]
    fn ties_break_by_id() {
        let mut t = TopK::new(2);
        for id in [9, 3, 7] {
            t.offer(id, 1.0);
        }
        let ids: Vec<u32> = t.into_sorted().iter().map(|n| n.id).collect();
        assert_eq!(ids, vec![3, 7]);
    }
}
