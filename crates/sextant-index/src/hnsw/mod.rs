//! Hierarchical navigable small-world graph (Malkov & Yashunin, 2016).
//!
//! Nodes get a random level (`P(level ≥ l) = m^-l`); each level is a proximity graph whose links
//! are chosen by the diversity heuristic in [`search::select_neighbors`], up to `m` a node on the
//! upper levels and `2·m` on level 0 (for a new node's own links too). A search descends
//! greedily through the upper levels and runs a beam search of width `ef` on level 0.
//!
//! Writes: [`VectorIndexMut::insert`] links one node through `&mut self`; [`HnswIndex::build`]
//! links many in parallel through `&self` (per-node locks, see [`graph`]). Deletes are
//! tombstones: deleted nodes keep routing searches but never appear in results.

mod codes;
mod graph;
mod search;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use sextant_core::{Metric, PointOffset};

use crate::bytes::{Reader, Writer};
use crate::flat::{read_tombstones, write_tombstones, FlatIndex};
use crate::storage::{
    bound_sigmas_for, BinaryCodes, BitVectors, DenseVectors, SharedBytes, Slab, Sq8Vectors,
    VectorStorage, DEFAULT_ROTATION_SEED,
};
use crate::tombstones::Tombstones;
use crate::{IdFilter, IndexError, Neighbor, PlanCosts, SearchParams, VectorIndex, VectorIndexMut};
use codes::LinkCodes;
use graph::{Graph, MAX_LEVEL};
use search::{select_neighbors, Scratch, Walk};

pub(crate) const MAGIC: &[u8; 8] = b"SXTHNSW\0";
/// Version 2 adds the binary filter codes; version 1 files still load (codes are built from
/// their vectors when those are in memory). An index whose quantization is `pq4` (code 2, which
/// version 2 readers before it refuse by name) stores its link codes after the binary codes.
/// Version 3 lays every large array (links, inline vectors, SQ8 codes and their sums, binary
/// codes and their terms) out as the search reads it, 64-byte aligned within the file, so that
/// a memory-mapped file is used in place ([`HnswIndex::from_shared`]); versions 1 and 2 still
/// load by decoding (a v2 `pq4` index rebuilds its records, links beside neighbours' codes).
const VERSION: u32 = 3;
/// Alignment of the arrays of a version 3 file (a cache line).
const ALIGN: usize = 64;

/// Default number of links per node on upper levels (level 0 allows `2 * m`).
pub const DEFAULT_M: usize = 16;
/// Default beam width while building.
pub const DEFAULT_EF_CONSTRUCTION: usize = 200;
/// Default beam width while searching, when a query does not give one.
pub const DEFAULT_EF_SEARCH: usize = 64;
/// Default seed of the level generator (builds are reproducible on one thread).
pub const DEFAULT_SEED: u64 = 0x05e8_7a47;
/// An SQ8 index walks on f32 until it holds this many vectors, then fits its code range to
/// them; later inserts are encoded with that range (values outside it are clipped, and results
/// are rescored exactly, so clipping only perturbs the walk).
pub const SQ8_MIN_FIT: usize = 1_024;

/// How the graph walk compares vectors. Results are always ranked by exact f32 distances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quantization {
    /// `Sq8` where the metric supports it, else `None` (the default: at equal recall the SQ8 walk
    /// answered 1.4–2.2× the f32 walk's queries per second on Fashion-MNIST and 1.1–1.2× on
    /// GloVe; BENCHMARKS.md).
    #[default]
    Auto,
    /// Walk on the f32 vectors.
    None,
    /// Walk on 8-bit scalar codes (a quarter of the bytes; see [`Sq8Vectors`]), then rescore the
    /// `ef` candidates exactly. Costs one byte per dimension per vector on top of the f32 copy.
    /// Not available for L1.
    Sq8,
    /// Walk on 4-bit product-quantisation codes stored beside every node's links (a node's
    /// neighbours are estimated together from one contiguous block by the fast-scan kernel),
    /// then rescore the `ef` candidates exactly. The fastest walk, and the largest: each node
    /// holds a copy of its level-0 links and its neighbours' codes on top of the f32 copy,
    /// `16 × dim + 128` bytes per node up to 256 dimensions (one component per sub-quantiser;
    /// wider vectors get more components per sub-quantiser, 4 KiB of codes per node at most)
    /// with the default `m = 16`. Not available for L1 or binary metrics.
    Pq4,
}

impl Quantization {
    fn code(self) -> u8 {
        match self {
            Quantization::Auto | Quantization::None => 0,
            Quantization::Sq8 => 1,
            Quantization::Pq4 => 2,
        }
    }

    /// What an index over `metric` will actually walk on.
    pub fn resolve(self, metric: Metric) -> Quantization {
        match self {
            Quantization::Auto if Sq8Vectors::supports(metric) => Quantization::Sq8,
            Quantization::Auto => Quantization::None,
            q => q,
        }
    }

    /// Whether an index over `metric` can walk this way: the codes of `sq8` and `pq4`
    /// approximate inner products and squared distances, so they need a metric ranked by one.
    pub fn supports(self, metric: Metric) -> bool {
        matches!(self, Quantization::Auto | Quantization::None) || metric.quantizable()
    }

    /// Lower-case name, as parsed.
    pub fn name(self) -> &'static str {
        match self {
            Quantization::Auto => "auto",
            Quantization::None => "none",
            Quantization::Sq8 => "sq8",
            Quantization::Pq4 => "pq4",
        }
    }
}

impl std::str::FromStr for Quantization {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" => Ok(Quantization::Auto),
            "none" | "f32" => Ok(Quantization::None),
            "sq8" => Ok(Quantization::Sq8),
            "pq4" => Ok(Quantization::Pq4),
            _ => Err(format!(
                "unknown quantization {s:?}: expected auto, none, sq8 or pq4"
            )),
        }
    }
}

/// Construction parameters of an HNSW index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HnswParams {
    /// Links per node on levels above 0; level 0 allows `2 * m`. More links: better recall and
    /// slower build, more memory. Valid: 2..=128.
    pub m: usize,
    /// Beam width while inserting. Larger: a better graph and a slower build. At least 1.
    pub ef_construction: usize,
    /// Beam width of a search that does not ask for one.
    pub ef_search: usize,
    /// Seed of the random level assignment.
    pub seed: u64,
    /// What the graph walk compares (results are rescored exactly either way).
    pub quantization: Quantization,
}

impl Default for HnswParams {
    fn default() -> Self {
        HnswParams {
            m: DEFAULT_M,
            ef_construction: DEFAULT_EF_CONSTRUCTION,
            ef_search: DEFAULT_EF_SEARCH,
            seed: DEFAULT_SEED,
            quantization: Quantization::Auto,
        }
    }
}

impl HnswParams {
    fn validate(&self) -> Result<(), IndexError> {
        if !(2..=128).contains(&self.m) {
            return Err(IndexError::param(
                "m",
                format!("{} is outside 2..=128", self.m),
            ));
        }
        if self.ef_construction == 0 {
            return Err(IndexError::param("ef_construction", "must be at least 1"));
        }
        if self.ef_search == 0 {
            return Err(IndexError::param("ef_search", "must be at least 1"));
        }
        Ok(())
    }
}

/// `(max_level << 32) | node`, or [`EMPTY`] before the first insert.
const EMPTY: u64 = u64::MAX;

fn pack(level: usize, node: u32) -> u64 {
    ((level as u64) << 32) | u64::from(node)
}

fn unpack(entry: u64) -> Option<(usize, u32)> {
    (entry != EMPTY).then_some(((entry >> 32) as usize, entry as u32))
}

/// An HNSW index over f32 vectors.
pub struct HnswIndex {
    params: HnswParams,
    vectors: DenseVectors,
    graph: Graph,
    entry: AtomicU64,
    /// Held for the whole insert of a node that raises the top level.
    entry_lock: Mutex<()>,
    /// Codes the search walks on when `params.quantization` is `Sq8`.
    sq8: Option<Sq8Vectors>,
    /// Binary metrics: the vectors packed one bit a component, which the search walks on
    /// (exact distances, a 32nd of the bytes; derived from the f32 vectors, not stored).
    bits: Option<BitVectors>,
    /// Codes the search walks on when `params.quantization` is `Pq4` (trained once the index
    /// holds [`SQ8_MIN_FIT`] vectors; until then it walks on f32).
    link_codes: Option<LinkCodes>,
    /// 1-bit codes a filtered search scans when its filter allows too many points for an
    /// exact scan and too few for a cheap walk (see [`SearchParams::binary_filter_share`]).
    binary: Option<BinaryCodes>,
    /// Measured costs of a filtered walk and of a code scan (not persisted).
    plan_costs: PlanCosts,
    deleted: Tombstones,
    scratch: Mutex<Vec<Scratch>>,
    rng: SmallRng,
}

impl std::fmt::Debug for HnswIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HnswIndex")
            .field("params", &self.params)
            .field("metric", &self.vectors.metric())
            .field("dim", &self.vectors.dim())
            .field("len", &self.vectors.len())
            .field("deleted", &self.deleted.count())
            .finish()
    }
}

impl HnswIndex {
    /// An empty index.
    pub fn new(metric: Metric, dim: usize, params: HnswParams) -> Result<Self, IndexError> {
        params.validate()?;
        let graph = Graph::with_levels(params.m, 2 * params.m, Vec::new());
        Self::assemble(
            params,
            DenseVectors::new(metric, dim)?,
            graph,
            None,
            None,
            None,
        )
    }

    /// Puts an index together; SQ8 codes are encoded with `sq8_range` when given (a loaded
    /// index), else fitted to the vectors once there are enough of them.
    fn assemble(
        mut params: HnswParams,
        vectors: DenseVectors,
        graph: Graph,
        sq8_range: Option<(f32, f32)>,
        stored_codes: Option<Sq8Vectors>,
        stored_binary: Option<BinaryCodes>,
    ) -> Result<Self, IndexError> {
        params.quantization = params.quantization.resolve(vectors.metric());
        let metric = vectors.metric();
        if !params.quantization.supports(metric) {
            return Err(IndexError::param(
                "quantization",
                format!("{} does not support {metric}", params.quantization.name()),
            ));
        }
        let sq8 = match (params.quantization, sq8_range) {
            _ if stored_codes.is_some() => stored_codes,
            (Quantization::None | Quantization::Auto | Quantization::Pq4, _) => None,
            (Quantization::Sq8, Some((lo, hi))) => Sq8Vectors::with_range(&vectors, lo, hi),
            (Quantization::Sq8, None) if vectors.len() >= SQ8_MIN_FIT => Sq8Vectors::fit(&vectors),
            (Quantization::Sq8, None) => None,
        };
        Ok(HnswIndex {
            sq8,
            bits: BitVectors::from_vectors(&vectors),
            link_codes: None,
            binary: stored_binary,
            plan_costs: PlanCosts::new(params.ef_search),
            rng: SmallRng::seed_from_u64(params.seed ^ graph.len() as u64),
            params,
            vectors,
            graph,
            entry: AtomicU64::new(EMPTY),
            entry_lock: Mutex::new(()),
            deleted: Tombstones::default(),
            scratch: Mutex::new(Vec::new()),
        })
    }

    /// Builds an index over `vectors`, linking nodes in parallel on the current rayon pool (wrap
    /// the call in `ThreadPool::install` to choose the thread count). `progress` is called with
    /// the number of nodes linked so far, every 1,024 nodes.
    pub fn build(
        vectors: DenseVectors,
        params: HnswParams,
        progress: Option<&(dyn Fn(usize) + Sync)>,
    ) -> Result<Self, IndexError> {
        params.validate()?;
        let mut rng = SmallRng::seed_from_u64(params.seed);
        let levels: Vec<u8> = (0..vectors.len())
            .map(|_| random_level(&mut rng, params.m))
            .collect();
        let graph = Graph::with_levels(params.m, 2 * params.m, levels);
        let mut index = Self::assemble(params, vectors, graph, None, None, None)?;
        if index.vectors.len() >= SQ8_MIN_FIT {
            index.binary = BinaryCodes::fit(&index.vectors, DEFAULT_ROTATION_SEED);
        }
        let done = AtomicUsize::new(0);
        let n = index.vectors.len() as u32;
        (0..n).into_par_iter().with_min_len(256).for_each(|node| {
            index.link(node);
            let d = done.fetch_add(1, Ordering::Relaxed) + 1;
            if let Some(p) = progress {
                if d.is_multiple_of(1024) || d == n as usize {
                    p(d);
                }
            }
        });
        index.repair_reachability();
        index.fit_link_codes();
        Ok(index)
    }

    /// Links every node that a walk from the entry point cannot reach on level 0 from its
    /// nearest reachable node; returns how many needed it.
    ///
    /// The neighbour-selection heuristic prunes links, and on low-dimensional or clustered data
    /// it can leave a node with no incoming link: no query, not even the node's own vector,
    /// would ever find it (we measured 0.1–0.5% of nodes on 8-d uniform data). After a build,
    /// a traversal from the entry point finds such nodes, and each gets one incoming link from
    /// the closest reachable node that has a free slot (or, if none among the `ef_construction`
    /// nearest has one, replaces the farthest link of the closest).
    fn repair_reachability(&self) -> usize {
        let n = self.graph.len();
        let Some((top, entry)) = unpack(self.entry.load(Ordering::Acquire)) else {
            return 0;
        };
        let mut reached = vec![false; n];
        let mut links = Vec::new();
        let mut stack = vec![entry];
        reached[entry as usize] = true;
        let flood = |stack: &mut Vec<u32>, reached: &mut Vec<bool>, links: &mut Vec<u32>| {
            while let Some(u) = stack.pop() {
                self.graph.copy_neighbors(u, 0, links);
                for &v in links.iter() {
                    if !std::mem::replace(&mut reached[v as usize], true) {
                        stack.push(v);
                    }
                }
            }
        };
        flood(&mut stack, &mut reached, &mut links);
        let mut repaired = 0;
        let mut scratch = self.take_scratch();
        for node in 0..n as u32 {
            if reached[node as usize] {
                continue;
            }
            let query = self.vectors.prepare_stored(node);
            let walk = Walk {
                graph: &self.graph,
                storage: &self.vectors,
                query: &query,
            };
            let current = walk.descend(entry, top, 1);
            let found =
                walk.search_layer_all(&[current], 0, self.params.ef_construction, &mut scratch);
            let candidates: Vec<&Neighbor> = found
                .iter()
                .filter(|c| c.id != node && reached[c.id as usize])
                .collect();
            let Some(nearest) = candidates.first() else {
                continue;
            };
            let cap = self.graph.capacity(0);
            let host = candidates
                .iter()
                .find(|c| self.graph.neighbors(c.id, 0)[0].load(Ordering::Acquire) < cap as u32)
                .unwrap_or(nearest)
                .id;
            self.graph.copy_neighbors(host, 0, &mut links);
            if links.len() >= cap {
                links.pop();
            }
            links.push(node);
            self.graph.set_neighbors(host, 0, &links);
            reached[node as usize] = true;
            stack.push(node);
            flood(&mut stack, &mut reached, &mut links);
            repaired += 1;
        }
        self.put_scratch(scratch);
        repaired
    }

    /// Trains and lays out the `pq4` walk's codes once there are enough vectors to train on.
    fn fit_link_codes(&mut self) {
        if self.params.quantization == Quantization::Pq4
            && self.link_codes.is_none()
            && self.vectors.len() >= SQ8_MIN_FIT
        {
            self.link_codes = LinkCodes::train(&self.vectors, &self.graph, self.params.seed);
        }
    }

    /// The construction parameters.
    pub fn params(&self) -> HnswParams {
        self.params
    }

    /// The stored vectors.
    pub fn vectors(&self) -> &DenseVectors {
        &self.vectors
    }

    fn take_scratch(&self) -> Scratch {
        self.scratch.lock().pop().unwrap_or_default()
    }

    fn put_scratch(&self, s: Scratch) {
        self.scratch.lock().push(s);
    }

    /// Links stored node `node` into the graph (its level is already assigned).
    fn link(&self, node: u32) {
        let level = self.graph.level(node);
        let mut guard = None;
        let mut entry = unpack(self.entry.load(Ordering::Acquire));
        if entry.is_none_or(|(top, _)| level > top) {
            guard = Some(self.entry_lock.lock());
            entry = unpack(self.entry.load(Ordering::Acquire));
        }
        let Some((top, entry_node)) = entry else {
            self.entry.store(pack(level, node), Ordering::Release);
            return;
        };
        let query = self.vectors.prepare_stored(node);
        let walk = Walk {
            graph: &self.graph,
            storage: &self.vectors,
            query: &query,
        };
        let current = walk.descend(entry_node, top, level + 1);
        let mut scratch = self.take_scratch();
        let mut entries = vec![current];
        let mut selected = Vec::with_capacity(self.graph.m0());
        for l in (0..=level.min(top)).rev() {
            let mut found =
                walk.search_layer_all(&entries, l, self.params.ef_construction, &mut scratch);
            found.retain(|n| n.id != node);
            // A new node links to as many neighbours as its level allows (2·M on level 0, as
            // faiss does; hnswlib takes M there too). GloVe: recall@10 at ef 96 0.945 → 0.957,
            // QPS at recall 0.95 +15%; Fashion-MNIST, whose heuristic keeps fewer: unchanged.
            select_neighbors(&self.vectors, &found, self.graph.capacity(l), &mut selected);
            let ids: Vec<u32> = selected.iter().map(|n| n.id).collect();
            {
                let _g = self.graph.lock(node);
                self.graph.set_neighbors(node, l, &ids);
            }
            for s in &selected {
                self.connect(s.id, node, s.distance, l, &mut scratch);
            }
            entries = found;
        }
        self.put_scratch(scratch);
        if level > top {
            self.entry.store(pack(level, node), Ordering::Release);
        }
        drop(guard);
    }

    /// Adds the link `target → new` on `level`, pruning `target`'s list with the heuristic when
    /// it is full.
    fn connect(&self, target: u32, new: u32, distance: f32, level: usize, scratch: &mut Scratch) {
        let _g = self.graph.lock(target);
        let cap = self.graph.capacity(level);
        let links = &mut scratch.links;
        self.graph.copy_neighbors(target, level, links);
        if links.contains(&new) {
            return;
        }
        if links.len() < cap {
            links.push(new);
            self.graph.set_neighbors(target, level, links);
            return;
        }
        let mut candidates: Vec<Neighbor> = links
            .iter()
            .map(|&id| Neighbor {
                id,
                distance: self.vectors.distance_between(target, id),
            })
            .collect();
        candidates.push(Neighbor { id: new, distance });
        candidates.sort_unstable();
        let mut kept = Vec::with_capacity(cap);
        select_neighbors(&self.vectors, &candidates, cap, &mut kept);
        links.clear();
        links.extend(kept.iter().map(|n| n.id));
        self.graph.set_neighbors(target, level, links);
    }

    /// Loads an index written by [`VectorIndex::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IndexError> {
        Self::from_parts(bytes, None)
    }

    /// Loads an index written by [`VectorIndex::to_bytes_with`]; `vectors` are the vectors of
    /// one written with `external_vectors` (see [`DenseVectors::from_file`]).
    pub fn from_parts(bytes: &[u8], vectors: Option<DenseVectors>) -> Result<Self, IndexError> {
        Self::parse(bytes, None, vectors)
    }

    /// Like [`HnswIndex::from_parts`] over bytes that stay alive (a memory-mapped index file):
    /// a version 3 file's links, inline vectors and codes are used in place where they lie
    /// aligned, so opening costs the checksum and a check of every link, not a copy.
    pub fn from_shared(
        bytes: SharedBytes,
        vectors: Option<DenseVectors>,
    ) -> Result<Self, IndexError> {
        Self::parse((*bytes).as_ref(), Some(&bytes), vectors)
    }

    fn parse(
        bytes: &[u8],
        shared: Option<&SharedBytes>,
        vectors: Option<DenseVectors>,
    ) -> Result<Self, IndexError> {
        let corrupt = |what: String| IndexError::Corrupt(format!("hnsw index: {what}"));
        let (r, version) = Reader::open_versions(bytes, MAGIC, "hnsw index", 1..=VERSION)?;
        let mut r = r.with_vectors(vectors);
        let metric =
            Metric::from_code(r.u8()?).ok_or_else(|| corrupt("unknown metric code".into()))?;
        let dim = r.u32()? as usize;
        let len = usize::try_from(r.u64()?).map_err(|_| corrupt("length overflows".into()))?;
        let params = HnswParams {
            m: r.u32()? as usize,
            ef_construction: r.u32()? as usize,
            ef_search: r.u32()? as usize,
            seed: r.u64()?,
            quantization: match r.u8()? {
                0 => Quantization::None,
                1 => Quantization::Sq8,
                2 => Quantization::Pq4,
                q => return Err(corrupt(format!("unknown quantization code {q}"))),
            },
        };
        let sq8_range = match r.u8()? {
            0 => None,
            _ => Some((f32::from_bits(r.u32()?), f32::from_bits(r.u32()?))),
        };
        params.validate().map_err(|e| corrupt(e.to_string()))?;
        let m0 = 2 * params.m;
        let entry = r.u64()?;
        let levels = r.bytes(len)?.to_vec();
        if let Some(l) = levels.iter().find(|&&l| usize::from(l) > MAX_LEVEL) {
            return Err(corrupt(format!("level {l} above {MAX_LEVEL}")));
        }
        let upper_len = levels
            .iter()
            .map(|&l| usize::from(l) * (params.m + 1))
            .sum();
        let slots0 = len
            .checked_mul(m0 + 1)
            .ok_or_else(|| corrupt("size".into()))?;
        let graph = if version >= 3 {
            r.align(ALIGN)?;
            let links0 = Slab::of(shared, r.array(slots0, 4)?);
            r.align(ALIGN)?;
            let upper = Slab::of(shared, r.array(upper_len, 4)?);
            Graph::from_stored(params.m, m0, levels, links0, upper)
        } else {
            let links0 = r.u32s(slots0)?;
            let upper = r.u32s(upper_len)?;
            Graph::from_raw(params.m, m0, levels, links0, upper)
        }
        .map_err(corrupt)?;
        let vectors = if version >= 3 && !r.external_vectors {
            if r.vectors.is_some() {
                return Err(corrupt(
                    "the index holds its vectors inline, yet a vectors file was given".into(),
                ));
            }
            r.align(ALIGN)?;
            let size = DenseVectors::new(metric, dim)?.line_bytes_for(len);
            let bytes = r.array(size.ok_or_else(|| corrupt("size".into()))?, 1)?;
            DenseVectors::from_lines(metric, dim, len, bytes, shared)?
        } else {
            DenseVectors::deserialize_from(&mut r, metric, dim, len)?
        };
        // Version 3 stores SQ8 codes and their sums whenever the index has them; before, only
        // an index whose vectors live apart stored its codes (so that loading it reads no
        // vector), and others encoded them again from the vectors.
        let stored_codes = match sq8_range {
            Some(range) if version >= 3 => {
                let n = usize::try_from(r.u64()?).map_err(|_| corrupt("size".into()))?;
                r.align(ALIGN)?;
                let codes = r.array(n, 1)?;
                let stats = r.array(len, 8)?;
                Some(
                    Sq8Vectors::from_parts(&vectors, range, codes, stats, shared)
                        .ok_or_else(|| corrupt("SQ8 codes do not match the vectors".into()))?,
                )
            }
            Some((lo, hi)) if r.external_vectors => {
                let n = r.u64()? as usize;
                let bytes = r.bytes(n)?;
                Some(
                    Sq8Vectors::from_code_bytes(&vectors, lo, hi, bytes)
                        .ok_or_else(|| corrupt("SQ8 codes do not match the vectors".into()))?,
                )
            }
            _ => None,
        };
        let stored_binary = match version {
            1 => None,
            2 => read_binary(&mut r, metric, dim, len)?,
            _ => read_binary_in_place(&mut r, shared, metric, dim, len)?,
        };
        let link_codes = match params.quantization {
            Quantization::Pq4 if r.u8()? == 1 => Some(LinkCodes::read(
                &mut r,
                &vectors,
                &graph,
                (version, shared),
            )?),
            _ => None,
        };
        let deleted = read_tombstones(&mut r, len)?;
        r.finish()?;
        match unpack(entry) {
            None if len == 0 => {}
            Some((top, node))
                if (node as usize) < len
                    && graph.level(node) == top
                    && graph.levels().iter().all(|&l| usize::from(l) <= top) => {}
            _ => return Err(corrupt("invalid entry point".into())),
        }
        let mut index = Self::assemble(
            params,
            vectors,
            graph,
            sq8_range,
            stored_codes,
            stored_binary,
        )
        .map_err(|e| corrupt(e.to_string()))?;
        index.link_codes = link_codes;
        index.entry = AtomicU64::new(entry);
        index.deleted = deleted;
        Ok(index)
    }

    /// Descends the upper levels greedily over `storage`, then runs `layer` on level 0 from
    /// where the descent ended, with pooled scratch. Empty while the index is.
    fn level0<S: VectorStorage>(
        &self,
        storage: &S,
        query: &S::Query,
        layer: impl FnOnce(Walk<'_, S>, &[Neighbor], &mut Scratch) -> Vec<Neighbor>,
    ) -> Vec<Neighbor> {
        let Some((top, entry)) = unpack(self.entry.load(Ordering::Acquire)) else {
            return Vec::new();
        };
        let walk = Walk {
            graph: &self.graph,
            storage,
            query,
        };
        let current = walk.descend(entry, top, 1);
        let mut scratch = self.take_scratch();
        let found = layer(walk, &[current], &mut scratch);
        self.put_scratch(scratch);
        found
    }

    /// Descends the upper levels and beam-searches level 0 over `storage`; returns up to
    /// `width.keep` live, filter-matching nodes with `storage`'s distances, closest first.
    fn walk<S: VectorStorage>(
        &self,
        storage: &S,
        query: &S::Query,
        width: Width,
        filter: Option<&IdFilter<'_>>,
    ) -> Vec<Neighbor> {
        let deleted = &self.deleted;
        let Width { ef, keep } = width;
        // One monomorphised walk per case, so the unfiltered search pays for no check at all.
        self.level0(storage, query, |walk, e, s| {
            match (filter, deleted.is_empty()) {
                (None, true) => walk.search_layer_all(e, 0, keep, s),
                (None, false) => {
                    walk.search_layer(e, (0, keep, keep), s, |id| !deleted.contains(id))
                }
                (Some(f), _) => walk.search_layer(e, (0, ef, keep), s, |id| {
                    !deleted.contains(id) && f.allows(id)
                }),
            }
        })
    }

    /// [`Self::walk`] over the codes beside the links: descends on the nodes' own codes, then
    /// beam-searches level 0 record by record. Distances are the codes' byte sums.
    fn walk_blocks(
        &self,
        codes: &LinkCodes,
        query: &codes::CodedQuery,
        width: Width,
        filter: Option<&IdFilter<'_>>,
    ) -> Vec<Neighbor> {
        let deleted = &self.deleted;
        let Width { ef, keep } = width;
        self.level0(codes, query, |walk, e, s| {
            match (filter, deleted.is_empty()) {
                (None, true) => walk.search_layer_blocks_all(e, keep, s),
                (None, false) => {
                    walk.search_layer_blocks(e, (keep, keep), s, |id| !deleted.contains(id))
                }
                (Some(f), _) => walk.search_layer_blocks(e, (ef, keep), s, |id| {
                    !deleted.contains(id) && f.allows(id)
                }),
            }
        })
    }

    /// The `ef` a filtered walk stops at: the requested one, not raised to `k`. A filtered
    /// walk steps over rejected nodes until `ef` matches bound it, so it explores about
    /// `ef / selectivity` nodes and finds more of the true matches at a given `ef` than an
    /// unfiltered walk finds of the true neighbours: on Fashion-MNIST at 10% selectivity,
    /// `ef = k = 10` reached recall 0.994, and `ef = 6` reached 0.966 at 1.4 times the speed.
    /// It still returns the `k` closest matches it scored.
    fn filtered_ef(&self, params: &SearchParams) -> usize {
        params.ef.unwrap_or(self.params.ef_search).max(1)
    }

    /// Ranks a walk's candidates (estimated distances) by their exact distances.
    fn rescore(&self, q: &crate::storage::DenseQuery, mut found: Vec<Neighbor>) -> Vec<Neighbor> {
        // The full vectors are cold (the walk read codes): start loading them all.
        for n in &found {
            self.vectors.prefetch(n.id);
        }
        for n in &mut found {
            n.distance = self.vectors.distance(q, n.id);
        }
        found.sort_unstable();
        found
    }
}

fn write_binary(w: &mut Writer, codes: Option<&BinaryCodes>) {
    let Some(codes) = codes else {
        w.u8(0);
        return;
    };
    let (centroid, seed) = codes.centroid_and_seed();
    let (lines, terms) = codes.stored();
    w.u8(1);
    w.u64(seed);
    w.f32s(centroid);
    w.u64(codes.len() as u64);
    w.align(ALIGN);
    w.bytes(lines);
    w.bytes(terms);
}

fn binary_corrupt(what: &str) -> IndexError {
    IndexError::Corrupt(format!("hnsw index: binary codes: {what}"))
}

/// The header of stored binary codes, shared by versions 2 and 3: `None` when the index has
/// none, else the rotation seed, the centroid and the number of coded vectors (at most `len`).
fn read_binary_header(
    r: &mut Reader<'_>,
    dim: usize,
    len: usize,
) -> Result<Option<(u64, Vec<f32>, usize)>, IndexError> {
    if r.u8()? == 0 {
        return Ok(None);
    }
    let seed = r.u64()?;
    let centroid: Vec<f32> = r.f32s(dim)?.collect();
    let n = usize::try_from(r.u64()?).map_err(|_| binary_corrupt("count overflows"))?;
    if n > len {
        return Err(binary_corrupt("more codes than vectors"));
    }
    Ok(Some((seed, centroid, n)))
}

/// Reads the binary codes of a version 3 file (their lines and terms in place where they lie
/// aligned inside `shared`).
fn read_binary_in_place(
    r: &mut Reader<'_>,
    shared: Option<&SharedBytes>,
    metric: Metric,
    dim: usize,
    len: usize,
) -> Result<Option<BinaryCodes>, IndexError> {
    let Some((seed, centroid, n)) = read_binary_header(r, dim, len)? else {
        return Ok(None);
    };
    let words = n
        .checked_mul(BinaryCodes::code_words(dim))
        .ok_or_else(|| binary_corrupt("size"))?;
    r.align(ALIGN)?;
    let lines = r.array(words.div_ceil(8), 64)?;
    let terms = r.array(n, 16)?;
    BinaryCodes::from_stored(metric, dim, seed, centroid, n, (lines, terms), shared)
        .map(Some)
        .ok_or_else(|| binary_corrupt("do not match the index"))
}

/// Reads the binary codes of a version 2 file (decoded: words, then three factors a vector).
fn read_binary(
    r: &mut Reader<'_>,
    metric: Metric,
    dim: usize,
    len: usize,
) -> Result<Option<BinaryCodes>, IndexError> {
    let Some((seed, centroid, n)) = read_binary_header(r, dim, len)? else {
        return Ok(None);
    };
    let words = BinaryCodes::code_words(dim);
    let codes = r.bytes(
        n.checked_mul(words * 8)
            .ok_or_else(|| binary_corrupt("size"))?,
    )?;
    let flat: Vec<f32> = r.f32s(n * 3)?.collect();
    let factors = flat.chunks_exact(3).map(|f| [f[0], f[1], f[2]]).collect();
    BinaryCodes::from_parts(metric, dim, seed, centroid, codes, factors)
        .map(Some)
        .ok_or_else(|| binary_corrupt("do not match the index"))
}

/// How wide a level-0 walk is: it returns `keep` results (the search's `ef` raised to `k`), and
/// a filtered walk stops at its `ef`-th match (`ef ≤ keep`, see [`HnswIndex::filtered_ef`]);
/// unfiltered walks use `keep` for both.
#[derive(Debug, Clone, Copy)]
struct Width {
    ef: usize,
    keep: usize,
}

/// Draws a level with `P(level ≥ l) = m^-l`, capped at [`MAX_LEVEL`].
fn random_level(rng: &mut SmallRng, m: usize) -> u8 {
    let u: f64 = rng.gen_range(f64::MIN_POSITIVE..1.0);
    let level = (-u.ln() / (m as f64).ln()).floor();
    level.min(MAX_LEVEL as f64) as u8
}

impl VectorIndex for HnswIndex {
    stored_accessors!();

    fn search(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: Option<&IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>, IndexError> {
        params.validate()?;
        let q = self.vectors.query(query)?;
        let ef = params.ef.unwrap_or(self.params.ef_search).max(params.k);
        if let Some(exact) =
            FlatIndex::scan_if_selective(&self.vectors, &q, params, filter, &self.deleted)
        {
            return Ok(exact);
        }
        // Codes cover every vector once fitted (the fit codes all of them, every later insert
        // pushes one), checked here rather than trusted.
        let coded = self.binary.as_ref().filter(|c| c.len() == self.len());
        if let (Some(codes), Some(IdFilter::Bitmap(allowed))) = (coded, filter) {
            let live = self.len() - self.deleted.count();
            if allowed.len() as f64 <= params.binary_filter_share * live as f64 {
                let bq = codes
                    .prepare(q.values(self.dim()))
                    .with_bound_sigmas(bound_sigmas_for(ef));
                let deleted = &self.deleted;
                let ids = allowed
                    .range(..self.len() as u32)
                    .filter(|&id| !deleted.contains(id));
                return Ok(match &self.sq8 {
                    Some(sq8) => {
                        let coded = sq8.prepare(q.values(self.dim()));
                        codes.search_via(&bq, sq8, &coded, &q, &self.vectors, ids, params.k, ef)
                    }
                    None => codes.search(&bq, &q, &self.vectors, ids, params.k, ef).0,
                });
            }
        }
        let width = Width {
            ef: self.filtered_ef(params).min(ef),
            keep: ef,
        };
        let mut found = match (&self.sq8, &self.bits, &self.link_codes) {
            // Packed bits give the exact distances: nothing to rescore.
            (_, Some(bits), _) => {
                self.walk(bits, &bits.prepare(q.values(self.dim())), width, filter)
            }
            (_, None, Some(codes)) => {
                let coded = codes.prepare(q.values(self.dim()));
                self.rescore(&q, self.walk_blocks(codes, &coded, width, filter))
            }
            (None, None, None) => self.walk(&self.vectors, &q, width, filter),
            (Some(sq8), None, None) => {
                let coded = sq8.prepare(q.values(self.dim()));
                self.rescore(&q, self.walk(sq8, &coded, width, filter))
            }
        };
        found.truncate(params.k);
        Ok(found)
    }

    fn binary_codes(&self) -> Option<&BinaryCodes> {
        self.binary.as_ref()
    }

    fn plan_costs(&self) -> Option<&PlanCosts> {
        self.binary.is_some().then_some(&self.plan_costs)
    }

    fn memory_bytes(&self) -> usize {
        self.vectors.memory_bytes()
            + self.sq8.as_ref().map_or(0, Sq8Vectors::memory_bytes)
            + self.bits.as_ref().map_or(0, BitVectors::memory_bytes)
            + self.link_codes.as_ref().map_or(0, LinkCodes::memory_bytes)
            + self.binary.as_ref().map_or(0, BinaryCodes::memory_bytes)
            + self.graph.memory_bytes()
            + self.deleted.memory_bytes()
    }

    fn mapped_bytes(&self) -> usize {
        self.graph.mapped_bytes()
            + self.sq8.as_ref().map_or(0, Sq8Vectors::mapped_bytes)
            + self.binary.as_ref().map_or(0, BinaryCodes::mapped_bytes)
            + self.link_codes.as_ref().map_or(0, LinkCodes::mapped_bytes)
    }

    fn to_bytes_with(&self, external_vectors: bool) -> Vec<u8> {
        let n = self.len();
        let capacity = n * (self.dim() * 4 + (self.graph.m0() + 1) * 4 + 1);
        let mut w = Writer::new(MAGIC, VERSION, capacity + self.graph.upper_len() * 4)
            .external(external_vectors);
        w.u8(self.metric().code());
        w.u32(self.dim() as u32);
        w.u64(n as u64);
        w.u32(self.params.m as u32);
        w.u32(self.params.ef_construction as u32);
        w.u32(self.params.ef_search as u32);
        w.u64(self.params.seed);
        w.u8(self.params.quantization.code());
        match self.sq8.as_ref().map(Sq8Vectors::range) {
            None => w.u8(0),
            Some((lo, hi)) => {
                w.u8(1);
                w.u32(lo.to_bits());
                w.u32(hi.to_bits());
            }
        }
        w.u64(self.entry.load(Ordering::Acquire));
        w.bytes(self.graph.levels());
        let (links0, upper) = self.graph.stored_links();
        w.align(ALIGN);
        w.u32s(links0.iter().map(|a| a.load(Ordering::Relaxed)));
        w.align(ALIGN);
        w.u32s(upper.iter().map(|a| a.load(Ordering::Relaxed)));
        if !external_vectors {
            w.align(ALIGN);
            w.bytes(self.vectors.line_bytes());
        }
        if let Some(sq8) = &self.sq8 {
            let codes = sq8.code_bytes();
            w.u64(codes.len() as u64);
            w.align(ALIGN);
            w.bytes(codes);
            w.bytes(sq8.stats_bytes());
        }
        write_binary(&mut w, self.binary.as_ref());
        if self.params.quantization == Quantization::Pq4 {
            match &self.link_codes {
                None => w.u8(0),
                Some(codes) => {
                    w.u8(1);
                    codes.write(&mut w);
                }
            }
        }
        write_tombstones(&mut w, &self.deleted);
        w.finish()
    }
}

impl VectorIndexMut for HnswIndex {
    fn insert(&mut self, vector: &[f32]) -> Result<PointOffset, IndexError> {
        // A loaded index may use its arrays in place: each is copied on its first change (the
        // graph's by `push_node`, before any link is written).
        let id = self.vectors.push(vector)?;
        if let Some(bits) = &mut self.bits {
            bits.push(self.vectors.get(id).expect("just pushed"));
        }
        if self.params.quantization == Quantization::Sq8 {
            match &mut self.sq8 {
                Some(sq8) => sq8.push(self.vectors.get(id).expect("just pushed")),
                None if self.vectors.len() >= SQ8_MIN_FIT => {
                    self.sq8 = Sq8Vectors::fit(&self.vectors);
                }
                None => {}
            }
        }
        match &mut self.binary {
            Some(b) if b.len() == id as usize => b.push(self.vectors.get(id).expect("just pushed")),
            None if self.vectors.len() >= SQ8_MIN_FIT && !self.vectors.is_mapped() => {
                self.binary = BinaryCodes::fit(&self.vectors, DEFAULT_ROTATION_SEED);
            }
            _ => {}
        }
        if let Some(codes) = &mut self.link_codes {
            codes.push(self.vectors.get(id).expect("just pushed"));
        }
        let level = random_level(&mut self.rng, self.params.m);
        self.graph.push_node(level);
        self.link(id);
        if let Some(codes) = &mut self.link_codes {
            // Linking changed the node's own list and those of the neighbours it links back.
            let mut links = Vec::new();
            self.graph.copy_neighbors(id, 0, &mut links);
            codes.refresh(&self.graph, id);
            for n in links {
                codes.refresh(&self.graph, n);
            }
        }
        self.fit_link_codes();
        Ok(id)
    }

    fn delete(&mut self, id: PointOffset) -> Result<bool, IndexError> {
        if id as usize >= self.len() {
            return Err(IndexError::UnknownPoint(id));
        }
        Ok(self.deleted.insert(id))
    }
}
