//! Graph walks: the greedy descent through upper levels and the beam search of one level.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering::Relaxed;

use super::graph::Graph;
use crate::storage::{prefetch_read, VectorStorage};
use crate::Neighbor;

/// Per-search working memory, pooled so that searches do not allocate.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    visited: Visited,
    candidates: BinaryHeap<Reverse<Neighbor>>,
    results: BinaryHeap<Neighbor>,
    fresh: Vec<u32>,
    pub(crate) links: Vec<u32>,
}

/// The set of nodes a walk has seen: one bit per node, so that even a large graph's set stays
/// in L1/L2 cache (a u16 per node, as hnswlib keeps, is 16× larger; on GloVe-400k a profile
/// showed 25% of search samples stalled on its reads). Only the words a walk touched are cleared.
#[derive(Debug, Default)]
struct Visited {
    bits: Vec<u64>,
    touched: Vec<u32>,
}

impl Visited {
    fn reset(&mut self, n: usize) {
        for &w in &self.touched {
            self.bits[w as usize] = 0;
        }
        self.touched.clear();
        let words = n.div_ceil(64);
        if self.bits.len() < words {
            self.bits.resize(words, 0);
        }
    }

    /// Marks `id`; returns whether it was unseen.
    #[inline(always)]
    fn insert(&mut self, id: u32) -> bool {
        let w = (id >> 6) as usize;
        let bit = 1u64 << (id & 63);
        let word = &mut self.bits[w];
        if *word & bit != 0 {
            return false;
        }
        if *word == 0 {
            self.touched.push(w as u32);
        }
        *word |= bit;
        true
    }
}

impl Scratch {
    /// Starts a new walk over a graph of `n` nodes.
    fn begin(&mut self, n: usize) {
        self.visited.reset(n);
        self.candidates.clear();
        self.results.clear();
    }
}

/// One query's walk over a graph and the vectors it links.
pub(crate) struct Walk<'a, S: VectorStorage> {
    pub(crate) graph: &'a Graph,
    pub(crate) storage: &'a S,
    pub(crate) query: &'a S::Query,
}

impl<S: VectorStorage> Walk<'_, S> {
    /// Starts at `entry` and descends greedily through levels `top` down to `floor` inclusive
    /// (nothing when `floor > top`); returns where it ends.
    pub(crate) fn descend(&self, entry: u32, top: usize, floor: usize) -> Neighbor {
        let mut current = Neighbor {
            id: entry,
            distance: self.storage.distance(self.query, entry),
        };
        for l in (floor..=top).rev() {
            current = self.greedy(current, l);
        }
        current
    }

    /// Walks down from `entry` on `level` by always moving to the closest neighbour (beam width 1).
    pub(crate) fn greedy(&self, mut entry: Neighbor, level: usize) -> Neighbor {
        let Walk {
            graph,
            storage,
            query,
        } = *self;
        loop {
            let mut moved = false;
            for slot in graph.neighbors(entry.id, level) {
                let id = slot.load(Relaxed);
                let distance = storage.distance(query, id);
                if distance < entry.distance {
                    entry = Neighbor { id, distance };
                    moved = true;
                }
            }
            if !moved {
                return entry;
            }
        }
    }

    /// Beam search of one level with width `ef`, from `entries` (distances already computed).
    ///
    /// Every reachable node is a candidate for the walk, but only nodes for which `accept` returns
    /// true enter the results: this is how deleted points and filters are handled without
    /// disconnecting the graph. Returns up to `ef` accepted nodes, closest first.
    pub(crate) fn search_layer(
        &self,
        entries: &[Neighbor],
        level: usize,
        ef: usize,
        scratch: &mut Scratch,
        accept: impl Fn(u32) -> bool,
    ) -> Vec<Neighbor> {
        let Walk {
            graph,
            storage,
            query,
        } = *self;
        scratch.begin(graph.len());
        let Scratch {
            visited,
            candidates,
            results,
            fresh,
            ..
        } = scratch;
        for &e in entries {
            if visited.insert(e.id) {
                candidates.push(Reverse(e));
                if accept(e.id) {
                    results.push(e);
                }
            }
        }
        while results.len() > ef {
            results.pop();
        }
        let mut worst = match results.peek() {
            Some(w) if results.len() >= ef => w.distance,
            _ => f32::INFINITY,
        };

        while let Some(Reverse(current)) = candidates.pop() {
            if current.distance > worst {
                break;
            }
            if level == 0 {
                if let Some(Reverse(next)) = candidates.peek() {
                    prefetch_read(graph.block0_ptr(next.id));
                }
            }
            fresh.clear();
            for slot in graph.neighbors(current.id, level) {
                let id = slot.load(Relaxed);
                if visited.insert(id) {
                    fresh.push(id);
                    storage.prefetch(id);
                }
            }
            for &id in fresh.iter() {
                let distance = storage.distance(query, id);
                if distance < worst {
                    candidates.push(Reverse(Neighbor { id, distance }));
                    if accept(id) {
                        results.push(Neighbor { id, distance });
                        if results.len() > ef {
                            results.pop();
                        }
                        if results.len() >= ef {
                            worst = results.peek().map_or(f32::INFINITY, |w| w.distance);
                        }
                    }
                }
            }
        }
        let mut out: Vec<Neighbor> = results.drain().collect();
        out.sort_unstable();
        out
    }
}

impl<S: VectorStorage> Clone for Walk<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: VectorStorage> Copy for Walk<'_, S> {}

/// HNSW's neighbour-selection heuristic: walk candidates from the closest and keep one only if
/// it is closer to the base node than to every neighbour already kept. This spreads links in
/// different directions, which keeps the graph navigable. `sorted` must be closest first.
pub(crate) fn select_neighbors<S: VectorStorage>(
    storage: &S,
    sorted: &[Neighbor],
    m: usize,
    out: &mut Vec<Neighbor>,
) {
    out.clear();
    if sorted.len() <= m {
        out.extend_from_slice(sorted);
        return;
    }
    for &c in sorted {
        if out.len() >= m {
            break;
        }
        if out
            .iter()
            .all(|kept| storage.distance_between(c.id, kept.id) >= c.distance)
        {
            out.push(c);
        }
    }
}
