//! Graph walks: the greedy descent through upper levels and the beam search of one level.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering::Relaxed;

use super::codes::LinkCodes;
use super::graph::Graph;
use crate::storage::{prefetch_read, VectorStorage};
use crate::Neighbor;

/// Per-search working memory, pooled so that searches do not allocate.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    visited: Visited,
    candidates: BinaryHeap<Reverse<Neighbor>>,
    results: BinaryHeap<Neighbor>,
    nearest: BinaryHeap<Neighbor>,
    fresh: Vec<u32>,
    /// Estimated distances of one node's neighbours (walks over [`LinkCodes`]).
    sums: Vec<u16>,
    pool: Pool,
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

/// The `ef` closest nodes seen so far, sorted, each marked once expanded: an unfiltered walk's
/// candidates and results in one array. (A node outside the `ef` closest seen would never be
/// expanded: by the time it is the closest candidate left, `ef` closer results exist.) Inserting
/// moves at most `ef` entries; two binary heaps cost more on every push and pop.
#[derive(Debug, Default)]
struct Pool {
    /// `(distance, id | EXPANDED)`, closest first (ties by id).
    items: Vec<(f32, u32)>,
    capacity: usize,
    /// Every item before this one is expanded.
    cursor: usize,
}

const EXPANDED: u32 = 1 << 31;

impl Pool {
    /// Starts a walk of width `capacity` from `entries` (each once, as `visited` records).
    fn begin(&mut self, capacity: usize, visited: &mut Visited, entries: &[Neighbor]) {
        self.items.clear();
        self.capacity = capacity.max(1);
        self.cursor = 0;
        for &e in entries {
            if visited.insert(e.id) {
                self.insert(e.distance, e.id);
            }
        }
    }

    /// The distance a node must beat to enter: the `ef`-th closest, or infinity.
    #[inline(always)]
    fn bound(&self) -> f32 {
        if self.items.len() < self.capacity {
            f32::INFINITY
        } else {
            self.items[self.items.len() - 1].0
        }
    }

    #[inline(always)]
    fn insert(&mut self, distance: f32, id: u32) {
        // Ordered by distance, then id, as the heaps and an exact scan order ties.
        let at = self
            .items
            .partition_point(|&(d, i)| d < distance || (d == distance && (i & !EXPANDED) < id));
        if at >= self.capacity {
            return;
        }
        if self.items.len() == self.capacity {
            self.items.pop();
        }
        self.items.insert(at, (distance, id));
        self.cursor = self.cursor.min(at);
    }

    /// The closest node not yet expanded, marked expanded.
    #[inline(always)]
    fn next(&mut self) -> Option<Neighbor> {
        while let Some(item) = self.items.get_mut(self.cursor) {
            self.cursor += 1;
            if item.1 & EXPANDED == 0 {
                let id = item.1;
                item.1 |= EXPANDED;
                return Some(Neighbor {
                    id,
                    distance: item.0,
                });
            }
        }
        None
    }

    /// The next node [`Self::next`] would return, if any.
    #[inline(always)]
    fn peek(&self) -> Option<u32> {
        self.items[self.cursor.min(self.items.len())..]
            .iter()
            .find(|i| i.1 & EXPANDED == 0)
            .map(|i| i.1)
    }

    fn drain(&mut self) -> Vec<Neighbor> {
        self.items
            .drain(..)
            .map(|(distance, id)| Neighbor {
                id: id & !EXPANDED,
                distance,
            })
            .collect()
    }
}

/// The heaps of a filtered walk: every node reached is a candidate (rejected nodes still route
/// the walk), only accepted nodes are results. The walk goes on while a candidate is closer
/// than the `ef`-th accepted node, once `keep` are in, and returns the `keep` closest accepted
/// nodes (`keep ≥ ef`: a filtered walk may stop sooner than its number of results would make
/// it, see [`Walk::search_layer`]).
struct Beam<'s> {
    candidates: &'s mut BinaryHeap<Reverse<Neighbor>>,
    results: &'s mut BinaryHeap<Neighbor>,
    /// The `ef` closest accepted nodes, when `ef < keep`.
    nearest: &'s mut BinaryHeap<Neighbor>,
    ef: usize,
    keep: usize,
    /// The `ef`-th closest accepted distance: the walk's bound.
    worst: f32,
    /// The `keep`-th closest accepted distance: what a result must beat.
    limit: f32,
}

impl<'s> Beam<'s> {
    /// Starts from `entries` (each once, as `visited` records).
    #[allow(clippy::too_many_arguments)]
    fn new(
        scratch: (
            &'s mut BinaryHeap<Reverse<Neighbor>>,
            &'s mut BinaryHeap<Neighbor>,
            &'s mut BinaryHeap<Neighbor>,
        ),
        visited: &mut Visited,
        entries: &[Neighbor],
        ef: usize,
        keep: usize,
        accept: &impl Fn(u32) -> bool,
    ) -> Self {
        let (candidates, results, nearest) = scratch;
        let keep = keep.max(ef);
        let mut beam = Beam {
            candidates,
            results,
            nearest,
            ef,
            keep,
            worst: f32::INFINITY,
            limit: f32::INFINITY,
        };
        for &e in entries {
            if visited.insert(e.id) {
                beam.offer(e, accept(e.id));
            }
        }
        beam
    }

    /// Adds a node closer than [`Self::limit`]: a candidate when closer than
    /// [`Self::worst`], a result too when `accepted`.
    #[inline(always)]
    fn offer(&mut self, n: Neighbor, accepted: bool) {
        if n.distance < self.worst {
            self.candidates.push(Reverse(n));
        }
        if accepted {
            self.results.push(n);
            if self.results.len() > self.keep {
                self.results.pop();
            }
            if self.results.len() >= self.keep {
                self.limit = self.results.peek().map_or(f32::INFINITY, |w| w.distance);
            }
            if self.ef == self.keep {
                self.worst = self.limit;
            } else if n.distance < self.worst {
                self.nearest.push(n);
                if self.nearest.len() > self.ef {
                    self.nearest.pop();
                }
                // No bound before `keep` matches are in: the walk returns `keep` if it can.
                if self.results.len() >= self.keep {
                    self.worst = self.nearest.peek().map_or(f32::INFINITY, |w| w.distance);
                }
            }
        }
    }

    /// The closest candidate, while it can still improve the results.
    #[inline(always)]
    fn next(&mut self) -> Option<Neighbor> {
        match self.candidates.pop() {
            Some(Reverse(c)) if c.distance <= self.worst => Some(c),
            _ => None,
        }
    }

    /// The candidate [`Self::next`] would consider.
    #[inline(always)]
    fn peek(&self) -> Option<u32> {
        self.candidates.peek().map(|Reverse(n)| n.id)
    }

    /// The results, closest first.
    fn finish(self) -> Vec<Neighbor> {
        let mut out: Vec<Neighbor> = self.results.drain().collect();
        out.sort_unstable();
        out
    }
}

impl Scratch {
    /// Starts a new walk over a graph of `n` nodes.
    fn begin(&mut self, n: usize) {
        self.visited.reset(n);
        self.candidates.clear();
        self.results.clear();
        self.nearest.clear();
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
            // Start every neighbour's load before the first distance needs one.
            for slot in graph.neighbors(entry.id, level) {
                storage.prefetch(slot.load(Relaxed));
            }
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

    /// [`Self::search_layer`] with every node accepted, over a [`Pool`] (the unfiltered walk of
    /// searches and builds).
    pub(crate) fn search_layer_all(
        &self,
        entries: &[Neighbor],
        level: usize,
        ef: usize,
        scratch: &mut Scratch,
    ) -> Vec<Neighbor> {
        let Walk {
            graph,
            storage,
            query,
        } = *self;
        scratch.begin(graph.len());
        let Scratch {
            visited,
            pool,
            fresh,
            ..
        } = scratch;
        pool.begin(ef, visited, entries);
        while let Some(current) = pool.next() {
            if level == 0 {
                if let Some(next) = pool.peek() {
                    graph.prefetch_block0(next);
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
            let mut worst = pool.bound();
            for &id in fresh.iter() {
                let distance = storage.distance(query, id);
                if distance < worst {
                    pool.insert(distance, id);
                    worst = pool.bound();
                }
            }
        }
        pool.drain()
    }

    /// Beam search of one level with width `ef`, from `entries` (distances already computed).
    ///
    /// Every reachable node is a candidate for the walk, but only nodes for which `accept` returns
    /// true enter the results: this is how deleted points and filters are handled without
    /// disconnecting the graph. Returns up to `max(ef, keep)` accepted nodes, closest first:
    /// with `keep > ef` the walk goes on until `keep` are in and then stops once no candidate is
    /// closer than the `ef`-th.
    pub(crate) fn search_layer(
        &self,
        entries: &[Neighbor],
        (level, ef, keep): (usize, usize, usize),
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
            nearest,
            fresh,
            ..
        } = scratch;
        let heaps = (candidates, results, nearest);
        let mut beam = Beam::new(heaps, visited, entries, ef, keep, &accept);
        while let Some(current) = beam.next() {
            if level == 0 {
                if let Some(next) = beam.peek() {
                    prefetch_read(graph.block0_ptr(next));
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
                if distance < beam.limit {
                    beam.offer(Neighbor { id, distance }, accept(id));
                }
            }
        }
        beam.finish()
    }
}

impl Walk<'_, LinkCodes> {
    /// [`Walk::search_layer`] on level 0 over the codes stored beside each node's links: one
    /// kernel call estimates all of a node's neighbours, and only those closer than the current
    /// `ef`-th result are looked up in the visited set (a neighbour that is not closer now never
    /// will be: the bound only shrinks). Distances are the codes' byte sums.
    pub(crate) fn search_layer_blocks(
        &self,
        entries: &[Neighbor],
        (ef, keep): (usize, usize),
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
            nearest,
            sums,
            ..
        } = scratch;
        let heaps = (candidates, results, nearest);
        let mut beam = Beam::new(heaps, visited, entries, ef, keep, &accept);
        while let Some(current) = beam.next() {
            if let Some(next) = beam.peek() {
                storage.prefetch_record(next);
            }
            let ids = storage.scan(query, current.id, sums);
            for (&id, &sum) in ids.iter().zip(sums.iter()) {
                if id == super::codes::NO_LINK {
                    break;
                }
                let distance = f32::from(sum);
                if distance < beam.limit && visited.insert(id) {
                    beam.offer(Neighbor { id, distance }, accept(id));
                }
            }
        }
        beam.finish()
    }

    /// [`Self::search_layer_blocks`] with every node accepted, over a [`Pool`].
    pub(crate) fn search_layer_blocks_all(
        &self,
        entries: &[Neighbor],
        ef: usize,
        scratch: &mut Scratch,
    ) -> Vec<Neighbor> {
        let Walk {
            graph,
            storage,
            query,
        } = *self;
        scratch.begin(graph.len());
        let Scratch {
            visited,
            pool,
            sums,
            ..
        } = scratch;
        pool.begin(ef, visited, entries);
        while let Some(current) = pool.next() {
            // The closest candidate left is the likeliest next: start loading its record
            // (measured on GloVe: 4–16% more queries per second than loading it once certain,
            // after this node's neighbours are in; loading two ahead was 3–6% slower).
            if let Some(next) = pool.peek() {
                storage.prefetch_record(next);
            }
            let ids = storage.scan(query, current.id, sums);
            let mut worst = pool.bound();
            for (&id, &sum) in ids.iter().zip(sums.iter()) {
                if id == super::codes::NO_LINK {
                    break;
                }
                let distance = f32::from(sum);
                if distance >= worst {
                    continue;
                }
                if visited.insert(id) {
                    pool.insert(distance, id);
                    worst = pool.bound();
                }
            }
        }
        pool.drain()
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
