//! Adjacency lists of an HNSW graph.
//!
//! Level 0 (every node) lives in one flat array of fixed-size blocks, `[count, id, id, …]` with
//! room for `m0` ids, so a node's neighbours are one cache-friendly slice away. Higher levels are
//! rare (a node reaches level `l` with probability `m^-l`); their blocks sit in a second array,
//! located through `upper_start`.
//!
//! Slots are `AtomicU32` so that a multi-threaded build can link nodes through `&self`: writers
//! hold the node's mutex and store the ids before the count; readers load without locking
//! (relaxed loads are plain moves on x86-64). A reader racing a writer may see an old or a
//! partly updated list, but every id it can see is a fully stored node, which is all a graph walk
//! needs.
//!
//! A loaded graph may instead use its slots in place from the index file's mapping
//! ([`Graph::from_stored`]); it is copied into memory before its first change ([`Graph::own`]).

use parking_lot::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

use crate::storage::Slab;

/// Highest level a node can be assigned (levels are stored as `u8`).
pub(crate) const MAX_LEVEL: usize = 16;

pub(crate) struct Graph {
    m: usize,
    m0: usize,
    levels: Vec<u8>,
    links0: Slots,
    upper_start: Vec<u32>,
    upper: Slots,
    /// One per node of an owned graph; none while the slots are a view.
    locks: Vec<Mutex<()>>,
}

/// Link slots: owned atomics that a build writes through `&self`, or a read-only view of a
/// loaded index file that is only ever loaded from.
enum Slots {
    Owned(Vec<AtomicU32>),
    Mapped(Slab<u32>),
}

impl Slots {
    #[inline(always)]
    fn as_slice(&self) -> &[AtomicU32] {
        match self {
            Slots::Owned(v) => v,
            Slots::Mapped(s) => {
                let s = s.as_slice();
                // SAFETY: `AtomicU32` has the size and bit validity of `u32`, and the view is
                // aligned to 4 bytes (`Slab` checks `u32`'s alignment, which is `AtomicU32`'s
                // on every target with 32-bit atomics). The slots are only loaded from: every
                // store goes through `Graph::set_neighbors`, which refuses a view, and
                // `Graph::own` replaces the view by an owned copy first.
                unsafe { &*(std::ptr::from_ref(s) as *const [AtomicU32]) }
            }
        }
    }

    fn owned(&mut self) -> &mut Vec<AtomicU32> {
        if let Slots::Mapped(s) = self {
            *self = Slots::Owned(s.as_slice().iter().map(|&v| AtomicU32::new(v)).collect());
        }
        match self {
            Slots::Owned(v) => v,
            Slots::Mapped(_) => unreachable!("converted above"),
        }
    }

    fn heap_bytes(&self) -> usize {
        match self {
            Slots::Owned(v) => v.capacity() * 4,
            Slots::Mapped(s) => s.heap_bytes(),
        }
    }

    fn mapped_bytes(&self) -> usize {
        match self {
            Slots::Owned(_) => 0,
            Slots::Mapped(s) => s.mapped_bytes(),
        }
    }
}

impl Graph {
    /// A graph of `levels.len()` unlinked nodes with the given levels.
    pub(crate) fn with_levels(m: usize, m0: usize, levels: Vec<u8>) -> Self {
        let mut g = Graph {
            m,
            m0,
            levels: Vec::with_capacity(levels.len()),
            links0: Slots::Owned(Vec::with_capacity(levels.len() * (m0 + 1))),
            upper_start: Vec::with_capacity(levels.len()),
            upper: Slots::Owned(Vec::new()),
            locks: Vec::with_capacity(levels.len()),
        };
        crate::storage::advise_huge_pages(g.links0.owned());
        for level in levels {
            g.push_node(level);
        }
        g
    }

    pub(crate) fn push_node(&mut self, level: u8) {
        self.own();
        self.levels.push(level);
        let m0 = self.m0;
        self.links0
            .owned()
            .extend((0..=m0).map(|_| AtomicU32::new(0)));
        let upper = self.upper.owned();
        self.upper_start.push(upper.len() as u32);
        upper.extend((0..usize::from(level) * (self.m + 1)).map(|_| AtomicU32::new(0)));
        self.locks.push(Mutex::new(()));
    }

    /// Copies slots used in place into memory, so that the graph can change.
    pub(crate) fn own(&mut self) {
        self.links0.owned();
        self.upper.owned();
        let n = self.levels.len();
        if self.locks.len() < n {
            self.locks.resize_with(n, || Mutex::new(()));
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.levels.len()
    }

    pub(crate) fn m0(&self) -> usize {
        self.m0
    }

    #[inline]
    pub(crate) fn level(&self, node: u32) -> usize {
        usize::from(self.levels[node as usize])
    }

    /// Maximum number of neighbours at `level`.
    #[inline]
    pub(crate) fn capacity(&self, level: usize) -> usize {
        if level == 0 {
            self.m0
        } else {
            self.m
        }
    }

    #[inline(always)]
    fn block(&self, node: u32, level: usize) -> &[AtomicU32] {
        if level == 0 {
            let start = node as usize * (self.m0 + 1);
            &self.links0.as_slice()[start..start + self.m0 + 1]
        } else {
            let start = self.upper_start[node as usize] as usize + (level - 1) * (self.m + 1);
            &self.upper.as_slice()[start..start + self.m + 1]
        }
    }

    /// The neighbour slots of `node` at `level` that are in use.
    #[inline(always)]
    pub(crate) fn neighbors(&self, node: u32, level: usize) -> &[AtomicU32] {
        let block = self.block(node, level);
        let count = (block[0].load(Relaxed) as usize).min(block.len() - 1);
        &block[1..=count]
    }

    /// Hints the CPU to load every cache line of `node`'s level-0 block.
    #[inline(always)]
    pub(crate) fn prefetch_block0(&self, node: u32) {
        let start = node as usize * (self.m0 + 1);
        let block = &self.links0.as_slice()[start..start + self.m0 + 1];
        let first = std::ptr::from_ref(&block[0]) as usize;
        let last = std::ptr::from_ref(&block[self.m0]) as usize;
        let mut line = first & !63;
        while line <= last {
            crate::storage::prefetch_read(line as *const i8);
            line += 64;
        }
    }

    /// Address of `node`'s level-0 block, for prefetching.
    #[inline(always)]
    pub(crate) fn block0_ptr(&self, node: u32) -> *const i8 {
        std::ptr::from_ref(&self.links0.as_slice()[node as usize * (self.m0 + 1)]).cast()
    }

    /// Copies the neighbours of `node` at `level` into `out`.
    pub(crate) fn copy_neighbors(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        out.extend(self.neighbors(node, level).iter().map(|a| a.load(Relaxed)));
    }

    /// Replaces the neighbours of `node` at `level`. The caller holds `node`'s lock (or `&mut`).
    pub(crate) fn set_neighbors(&self, node: u32, level: usize, ids: &[u32]) {
        assert!(
            matches!(self.links0, Slots::Owned(_)) && matches!(self.upper, Slots::Owned(_)),
            "a graph used in place is changed only after Graph::own"
        );
        let block = self.block(node, level);
        debug_assert!(ids.len() < block.len());
        for (slot, &id) in block[1..].iter().zip(ids) {
            slot.store(id, Relaxed);
        }
        block[0].store(ids.len() as u32, std::sync::atomic::Ordering::Release);
    }

    pub(crate) fn lock(&self, node: u32) -> MutexGuard<'_, ()> {
        self.locks[node as usize].lock()
    }

    pub(crate) fn levels(&self) -> &[u8] {
        &self.levels
    }

    pub(crate) fn upper_len(&self) -> usize {
        self.upper.as_slice().len()
    }

    /// Rebuilds a graph from raw blocks, checking every count and id.
    pub(crate) fn from_raw(
        m: usize,
        m0: usize,
        levels: Vec<u8>,
        links0: impl Iterator<Item = u32>,
        upper: impl Iterator<Item = u32>,
    ) -> Result<Self, String> {
        let g = Graph::with_levels(m, m0, levels);
        for (slot, v) in g.links0.as_slice().iter().zip(links0) {
            slot.store(v, Relaxed);
        }
        for (slot, v) in g.upper.as_slice().iter().zip(upper) {
            slot.store(v, Relaxed);
        }
        g.check()?;
        Ok(g)
    }

    /// A graph over stored slots (used in place where they are a view), checking every count
    /// and id; `links0` and `upper` must hold exactly the slots `levels` call for.
    pub(crate) fn from_stored(
        m: usize,
        m0: usize,
        levels: Vec<u8>,
        links0: Slab<u32>,
        upper: Slab<u32>,
    ) -> Result<Self, String> {
        let n = levels.len();
        let mut upper_start = Vec::with_capacity(n);
        let mut at = 0usize;
        for &l in &levels {
            upper_start.push(u32::try_from(at).map_err(|_| "too many upper links".to_string())?);
            at += usize::from(l) * (m + 1);
        }
        if links0.len() != n * (m0 + 1) || upper.len() != at {
            return Err(format!(
                "{} level-0 and {} upper slots for {n} nodes that need {} and {at}",
                links0.len(),
                upper.len(),
                n * (m0 + 1)
            ));
        }
        let g = Graph {
            m,
            m0,
            levels,
            links0: Slots::Mapped(links0),
            upper_start,
            upper: Slots::Mapped(upper),
            locks: Vec::new(),
        };
        g.check()?;
        Ok(g)
    }

    /// Checks every node's counts and neighbour ids (each names another node that reaches
    /// the level).
    fn check(&self) -> Result<(), String> {
        let (g, n) = (self, self.len());
        for node in 0..n as u32 {
            for level in 0..=g.level(node) {
                let block = g.block(node, level);
                let count = block[0].load(Relaxed) as usize;
                if count >= block.len() {
                    return Err(format!("node {node} level {level}: {count} neighbours"));
                }
                if let Some(bad) = block[1..=count]
                    .iter()
                    .map(|a| a.load(Relaxed))
                    .find(|&id| id as usize >= n || id == node || g.level(id) < level)
                {
                    return Err(format!("node {node} level {level}: bad neighbour {bad}"));
                }
            }
        }
        Ok(())
    }

    /// The level-0 and upper slots as stored (count first in every block), for a format
    /// that uses them in place.
    pub(crate) fn stored_links(&self) -> (&[AtomicU32], &[AtomicU32]) {
        (self.links0.as_slice(), self.upper.as_slice())
    }

    /// Bytes used in place from shared bytes.
    pub(crate) fn mapped_bytes(&self) -> usize {
        self.links0.mapped_bytes() + self.upper.mapped_bytes()
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.levels.capacity()
            + self.links0.heap_bytes()
            + self.upper.heap_bytes()
            + self.upper_start.capacity() * 4
            + self.locks.capacity() * std::mem::size_of::<Mutex<()>>()
    }
}
