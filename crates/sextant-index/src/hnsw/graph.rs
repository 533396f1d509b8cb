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

use parking_lot::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicU32, Ordering::Relaxed};

/// Highest level a node can be assigned (levels are stored as `u8`).
pub(crate) const MAX_LEVEL: usize = 16;

pub(crate) struct Graph {
    m: usize,
    m0: usize,
    levels: Vec<u8>,
    links0: Vec<AtomicU32>,
    upper_start: Vec<u32>,
    upper: Vec<AtomicU32>,
    locks: Vec<Mutex<()>>,
}

impl Graph {
    /// A graph of `levels.len()` unlinked nodes with the given levels.
    pub(crate) fn with_levels(m: usize, m0: usize, levels: Vec<u8>) -> Self {
        let mut g = Graph {
            m,
            m0,
            levels: Vec::with_capacity(levels.len()),
            links0: Vec::with_capacity(levels.len() * (m0 + 1)),
            upper_start: Vec::with_capacity(levels.len()),
            upper: Vec::new(),
            locks: Vec::with_capacity(levels.len()),
        };
        crate::storage::advise_huge_pages(&g.links0);
        for level in levels {
            g.push_node(level);
        }
        g
    }

    pub(crate) fn push_node(&mut self, level: u8) {
        self.levels.push(level);
        self.links0.extend((0..=self.m0).map(|_| AtomicU32::new(0)));
        self.upper_start.push(self.upper.len() as u32);
        self.upper
            .extend((0..usize::from(level) * (self.m + 1)).map(|_| AtomicU32::new(0)));
        self.locks.push(Mutex::new(()));
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
            &self.links0[start..start + self.m0 + 1]
        } else {
            let start = self.upper_start[node as usize] as usize + (level - 1) * (self.m + 1);
            &self.upper[start..start + self.m + 1]
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
        let block = &self.links0[start..start + self.m0 + 1];
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
        std::ptr::from_ref(&self.links0[node as usize * (self.m0 + 1)]).cast()
    }

    /// Copies the neighbours of `node` at `level` into `out`.
    pub(crate) fn copy_neighbors(&self, node: u32, level: usize, out: &mut Vec<u32>) {
        out.clear();
        out.extend(self.neighbors(node, level).iter().map(|a| a.load(Relaxed)));
    }

    /// Replaces the neighbours of `node` at `level`. The caller holds `node`'s lock (or `&mut`).
    pub(crate) fn set_neighbors(&self, node: u32, level: usize, ids: &[u32]) {
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

    /// All level-0 blocks, then all upper blocks, as raw `u32` (count first in every block).
    pub(crate) fn raw_links(
        &self,
    ) -> (
        impl Iterator<Item = u32> + '_,
        impl Iterator<Item = u32> + '_,
    ) {
        (
            self.links0.iter().map(|a| a.load(Relaxed)),
            self.upper.iter().map(|a| a.load(Relaxed)),
        )
    }

    pub(crate) fn upper_len(&self) -> usize {
        self.upper.len()
    }

    /// Rebuilds a graph from raw blocks, checking every count and id.
    pub(crate) fn from_raw(
        m: usize,
        m0: usize,
        levels: Vec<u8>,
        links0: impl Iterator<Item = u32>,
        upper: impl Iterator<Item = u32>,
    ) -> Result<Self, String> {
        let n = levels.len();
        let g = Graph::with_levels(m, m0, levels);
        for (slot, v) in g.links0.iter().zip(links0) {
            slot.store(v, Relaxed);
        }
        for (slot, v) in g.upper.iter().zip(upper) {
            slot.store(v, Relaxed);
        }
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
        Ok(g)
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.levels.capacity()
            + (self.links0.capacity() + self.upper.capacity() + self.upper_start.capacity()) * 4
            + self.locks.capacity() * std::mem::size_of::<Mutex<()>>()
    }
}
