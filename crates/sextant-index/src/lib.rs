//! Sextant's vector index structures.
//!
//! - [`distance`]: SIMD distance kernels (scalar reference, AVX2+FMA, AVX-512), chosen once.
//! - [`storage`]: contiguous vector storage behind the [`VectorStorage`] scorer trait.
//! - [`FlatIndex`]: exact search, batched and multi-threaded.
//! - [`HnswIndex`]: hierarchical navigable small-world graph with tombstone deletes, filtered
//!   search and a multi-threaded build; its walk reads f32 vectors, 8-bit codes, or 4-bit codes
//!   of each node's neighbours stored beside its links ([`Quantization`]), candidates rescored
//!   exactly; it keeps 1-bit [`BinaryCodes`] that a filtered search scans when the filter allows
//!   too many points to scan exactly and too few to walk well.
//! - [`IvfPqIndex`]: inverted lists over a k-means coarse quantiser holding 4-bit product
//!   quantisation codes (scanned with the fast-scan kernels) or 8-bit ones (float tables),
//!   optionally after an OPQ rotation, candidates rescored exactly.
//! - [`SparseIndex`]: inverted index over sparse vectors (BM25 frequencies or learned weights),
//!   exact top-k by MaxScore.
//!
//! Indexes work on dense `u32` point offsets; mapping external ids, payloads and files is the
//! storage layer's job. Both indexes implement the read trait [`VectorIndex`] and the write trait
//! [`VectorIndexMut`]; [`AnyIndex`] is the closed enum used on hot paths instead of `Box<dyn>`.

/// The [`VectorIndex`] accessors of an index that keeps its vectors in `self.vectors` (a
/// [`DenseVectors`]) and its deletes in `self.deleted`.
macro_rules! stored_accessors {
    () => {
        fn metric(&self) -> Metric {
            self.vectors.metric()
        }

        fn dim(&self) -> usize {
            self.vectors.dim()
        }

        fn len(&self) -> usize {
            self.vectors.len()
        }

        fn deleted_count(&self) -> usize {
            self.deleted.count()
        }

        fn is_deleted(&self, id: PointOffset) -> bool {
            self.deleted.contains(id)
        }

        fn vector(&self, id: PointOffset) -> Option<&[f32]> {
            self.vectors.get(id)
        }

        fn dense_vectors(&self) -> &DenseVectors {
            &self.vectors
        }
    };
}

pub mod distance;
pub mod sparse;
pub mod storage;

mod bytes;
mod error;
mod flat;
mod hnsw;
mod ivf;
mod plan;
mod tombstones;
mod topk;

pub use error::IndexError;
pub use flat::FlatIndex;
pub use hnsw::{HnswIndex, HnswParams, Quantization};
pub use ivf::{IvfPqIndex, IvfPqParams, DEFAULT_NPROBE, DEFAULT_RESCORE};
pub use plan::{FilterPlan, PlanCostSnapshot, PlanCosts, EXPLORE_BURST, EXPLORE_EVERY};

/// Default HNSW parameters, as named constants the docs and CLI refer to.
pub mod hnsw_defaults {
    pub use crate::hnsw::{
        DEFAULT_EF_CONSTRUCTION, DEFAULT_EF_SEARCH, DEFAULT_M, DEFAULT_SEED, SQ8_MIN_FIT,
    };
}
pub use sparse::{SparseHit, SparseIndex, SparseScoring, TermDict};
pub use storage::{
    BinaryCodes, BitVectors, DenseVectors, SharedBytes, Sq8Vectors, VectorStorage,
    VECTORS_FILE_HEADER,
};
pub use topk::Neighbor;

use roaring::RoaringBitmap;
use sextant_core::{Metric, PointOffset};

/// Number of allowed points at or below which a filtered HNSW search scans the allowed points
/// exactly instead of walking the graph. Scanning a few thousand vectors is cheaper than a graph
/// walk that must step over most non-matching nodes to find `ef` matching ones, and it is exact.
pub const DEFAULT_EXACT_FILTER_THRESHOLD: usize = 2_000;

/// Largest share of a segment's live points a filter may allow for a filtered HNSW search to
/// scan 1-bit codes instead of walking, when the caller leaves the choice to this default
/// (see [`SearchParams::binary_filter_share`]; the engine's planner chooses by measured cost
/// instead, see [`PlanCosts`]). The scan costs a few nanoseconds per allowed point; the walk's
/// cost grows like one over the selectivity.
pub const DEFAULT_BINARY_FILTER_SHARE: f64 = 0.1;

/// Restricts a search to a subset of point offsets.
#[derive(Clone, Copy)]
pub enum IdFilter<'a> {
    /// Only offsets in the bitmap match. Its cardinality lets the index choose an exact scan.
    Bitmap(&'a RoaringBitmap),
    /// Only offsets for which the predicate returns `true` match.
    Predicate(&'a (dyn Fn(PointOffset) -> bool + Sync)),
}

impl std::fmt::Debug for IdFilter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IdFilter::Bitmap(b) => write!(f, "IdFilter::Bitmap({} ids)", b.len()),
            IdFilter::Predicate(_) => f.write_str("IdFilter::Predicate"),
        }
    }
}

impl IdFilter<'_> {
    /// Whether `id` matches the filter.
    #[inline]
    pub fn allows(&self, id: PointOffset) -> bool {
        match self {
            IdFilter::Bitmap(b) => b.contains(id),
            IdFilter::Predicate(p) => p(id),
        }
    }
}

/// Parameters of one search.
#[derive(Debug, Clone, Copy)]
pub struct SearchParams {
    /// Number of neighbours to return (at least 1).
    pub k: usize,
    /// HNSW beam width, or the candidates an IVF-PQ search rescores exactly; raised to `k`
    /// when smaller, except by a filtered HNSW walk, which stops once no candidate is closer
    /// than its `ef`-th match and still returns the `k` closest matches it scored. `None` uses
    /// the index's default. Ignored by exact indexes.
    pub ef: Option<usize>,
    /// Inverted lists an IVF-PQ search scans. `None` uses the index's default. Ignored by
    /// other indexes.
    pub nprobe: Option<usize>,
    /// A filtered search whose bitmap allows at most this many points scans them exactly.
    pub exact_filter_threshold: usize,
    /// A filtered search (past the exact threshold) whose bitmap allows at most this share
    /// of the live points scans their 1-bit codes, where the index has them (HNSW), and
    /// rescores the candidates the codes' error bound cannot rule out; `0.0` never does,
    /// `1.0` always does.
    pub binary_filter_share: f64,
}

impl SearchParams {
    /// `k` nearest neighbours with default settings.
    pub fn new(k: usize) -> Self {
        SearchParams {
            k,
            ef: None,
            nprobe: None,
            exact_filter_threshold: DEFAULT_EXACT_FILTER_THRESHOLD,
            binary_filter_share: DEFAULT_BINARY_FILTER_SHARE,
        }
    }

    /// Sets the HNSW beam width.
    pub fn with_ef(mut self, ef: usize) -> Self {
        self.ef = Some(ef);
        self
    }

    /// Sets the inverted lists an IVF-PQ search scans.
    pub fn with_nprobe(mut self, nprobe: usize) -> Self {
        self.nprobe = Some(nprobe);
        self
    }

    pub(crate) fn validate(&self) -> Result<(), IndexError> {
        if self.k == 0 {
            return Err(IndexError::param("k", "must be at least 1"));
        }
        if self.ef == Some(0) {
            return Err(IndexError::param("ef", "must be at least 1"));
        }
        if self.nprobe == Some(0) {
            return Err(IndexError::param("nprobe", "must be at least 1"));
        }
        Ok(())
    }
}

/// Read side of a vector index.
pub trait VectorIndex {
    /// Metric the index ranks by.
    fn metric(&self) -> Metric;
    /// Dimension of the indexed vectors.
    fn dim(&self) -> usize;
    /// Number of offsets ever inserted, deleted ones included.
    fn len(&self) -> usize;
    /// Whether no offset was ever inserted.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Number of deleted offsets.
    fn deleted_count(&self) -> usize;
    /// Whether `id` was deleted.
    fn is_deleted(&self, id: PointOffset) -> bool;
    /// The stored vector of `id` (preprocessed: normalised for cosine).
    fn vector(&self, id: PointOffset) -> Option<&[f32]>;
    /// Nearest live neighbours of `query`, closest first; `filter` restricts the candidates.
    fn search(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: Option<&IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>, IndexError>;
    /// The stored f32 vectors.
    fn dense_vectors(&self) -> &DenseVectors;
    /// Heap memory held by the index, in bytes (vectors that are a view of a memory-mapped
    /// file count nothing: their pages belong to the page cache).
    fn memory_bytes(&self) -> usize;
    /// Bytes of index structures used in place from a memory-mapped file (page cache, not
    /// heap; not counting the f32 vectors).
    fn mapped_bytes(&self) -> usize {
        0
    }
    /// The 1-bit codes a filtered search can scan, where the index keeps them.
    fn binary_codes(&self) -> Option<&BinaryCodes> {
        None
    }
    /// The measured costs of walking and of scanning codes, where the index can do both.
    fn plan_costs(&self) -> Option<&PlanCosts> {
        None
    }
    /// Serialises the index (magic, version, checksum included).
    fn to_bytes(&self) -> Vec<u8> {
        self.to_bytes_with(false)
    }
    /// Serialises the index; with `external_vectors` the f32 vectors are left out (the caller
    /// writes them with [`DenseVectors::to_file_bytes`] and hands them back to `from_parts`)
    /// and whatever the index derives from them to search (SQ8 codes) is stored instead, so
    /// loading it never reads the vectors.
    fn to_bytes_with(&self, external_vectors: bool) -> Vec<u8>;
}

/// Write side of a vector index.
pub trait VectorIndexMut {
    /// Validates, stores and indexes `vector`; returns its offset.
    fn insert(&mut self, vector: &[f32]) -> Result<PointOffset, IndexError>;
    /// Marks `id` deleted; returns `false` if it already was.
    fn delete(&mut self, id: PointOffset) -> Result<bool, IndexError>;
}

/// The closed set of index implementations.
#[derive(Debug)]
pub enum AnyIndex {
    /// Exact search.
    Flat(FlatIndex),
    /// Approximate search over an HNSW graph.
    Hnsw(Box<HnswIndex>),
    /// Approximate search over inverted lists of PQ codes.
    IvfPq(Box<IvfPqIndex>),
}

impl AnyIndex {
    /// Loads an index serialised by [`VectorIndex::to_bytes`], whichever kind it is.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IndexError> {
        Self::from_parts(bytes, None)
    }

    /// Like [`AnyIndex::from_parts`] over bytes that stay alive (a memory-mapped index file):
    /// an IVF-PQ index uses its lists' codes in place, an HNSW index its links, inline vectors
    /// and codes (version 3 files); a flat index decodes as usual.
    pub fn from_shared(
        bytes: SharedBytes,
        vectors: Option<DenseVectors>,
    ) -> Result<Self, IndexError> {
        match bytes.as_ref().as_ref().get(..8) {
            Some(m) if m == ivf::MAGIC => {
                IvfPqIndex::from_shared(bytes, vectors).map(|i| AnyIndex::IvfPq(Box::new(i)))
            }
            Some(m) if m == hnsw::MAGIC => {
                HnswIndex::from_shared(bytes, vectors).map(|h| AnyIndex::Hnsw(Box::new(h)))
            }
            _ => Self::from_parts((*bytes).as_ref(), vectors),
        }
    }

    /// Loads an index serialised by [`VectorIndex::to_bytes_with`], whichever kind it is, with
    /// the vectors of one written with `external_vectors`.
    pub fn from_parts(bytes: &[u8], vectors: Option<DenseVectors>) -> Result<Self, IndexError> {
        match bytes.get(..8) {
            Some(m) if m == flat::MAGIC => {
                FlatIndex::from_parts(bytes, vectors).map(AnyIndex::Flat)
            }
            Some(m) if m == hnsw::MAGIC => {
                HnswIndex::from_parts(bytes, vectors).map(|h| AnyIndex::Hnsw(Box::new(h)))
            }
            Some(m) if m == ivf::MAGIC => {
                IvfPqIndex::from_parts(bytes, vectors).map(|i| AnyIndex::IvfPq(Box::new(i)))
            }
            _ => Err(IndexError::Corrupt(
                "not a Sextant index: unknown magic number".into(),
            )),
        }
    }
}

macro_rules! delegate {
    ($self:ident, $i:ident => $e:expr) => {
        match $self {
            AnyIndex::Flat($i) => $e,
            AnyIndex::Hnsw($i) => $e,
            AnyIndex::IvfPq($i) => $e,
        }
    };
}

impl VectorIndex for AnyIndex {
    fn metric(&self) -> Metric {
        delegate!(self, i => i.metric())
    }
    fn dim(&self) -> usize {
        delegate!(self, i => i.dim())
    }
    fn len(&self) -> usize {
        delegate!(self, i => i.len())
    }
    fn deleted_count(&self) -> usize {
        delegate!(self, i => i.deleted_count())
    }
    fn is_deleted(&self, id: PointOffset) -> bool {
        delegate!(self, i => i.is_deleted(id))
    }
    fn vector(&self, id: PointOffset) -> Option<&[f32]> {
        delegate!(self, i => i.vector(id))
    }
    fn search(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: Option<&IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>, IndexError> {
        delegate!(self, i => i.search(query, params, filter))
    }
    fn memory_bytes(&self) -> usize {
        delegate!(self, i => i.memory_bytes())
    }
    fn mapped_bytes(&self) -> usize {
        delegate!(self, i => i.mapped_bytes())
    }
    fn binary_codes(&self) -> Option<&BinaryCodes> {
        delegate!(self, i => i.binary_codes())
    }
    fn plan_costs(&self) -> Option<&PlanCosts> {
        delegate!(self, i => i.plan_costs())
    }
    fn dense_vectors(&self) -> &DenseVectors {
        delegate!(self, i => i.dense_vectors())
    }
    fn to_bytes_with(&self, external_vectors: bool) -> Vec<u8> {
        delegate!(self, i => i.to_bytes_with(external_vectors))
    }
}

impl VectorIndexMut for AnyIndex {
    fn insert(&mut self, vector: &[f32]) -> Result<PointOffset, IndexError> {
        delegate!(self, i => i.insert(vector))
    }
    fn delete(&mut self, id: PointOffset) -> Result<bool, IndexError> {
        delegate!(self, i => i.delete(id))
    }
}
