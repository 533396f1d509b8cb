//! IVF-PQ: an inverted file over a k-means coarse quantiser, each list holding its vectors'
//! residuals (vector − list centroid) as product-quantisation codes — 4-bit codes scanned with
//! the fast-scan kernels ([`crate::distance::FastScanKernel`]), or 8-bit codes summed from a
//! float table — and the best candidates rescored exactly from the f32 vectors. With `opq` a
//! learnt rotation (see `opq`) is applied before quantisation: centroids and codebooks live in
//! the rotated space, each query is rotated once, and rescoring uses the unrotated vectors.
//!
//! A search ranks the centroids (by squared distance, as points were assigned, for cosine
//! and L2; by inner product for dot; see `probe`), scans the `nprobe` first lists, estimates every allowed candidate's distance from one byte table per list
//! (the query's sub-vector distances to the sub-centroids, quantised to bytes with one scale
//! per list), keeps the `ef` best estimates (`rescore` when `ef` is not given), and returns the
//! `k` best of those by exact distance. For inner products the table is the same for every list
//! (`−⟨q, c⟩` is added per list); for squared distances it is built per list from `q − c`.
//!
//! Lists of 4-bit codes store them in blocks of 32 vectors, laid out for the fast-scan kernel:
//! per pair of sub-quantisers 32 bytes, vector `i`'s two codes in the low and high nibbles of
//! byte `i`. Lists of 8-bit codes store `m` bytes per vector, one vector after another. Point
//! offsets are the order vectors were given; deletes are tombstones.

mod kmeans;
mod opq;
pub(crate) mod pq;

use sextant_core::{Metric, PointOffset};

use crate::bytes::{Reader, Writer};
use crate::distance::{fastscan_slot, kernels, MAX_SUBQUANTIZERS};
use crate::flat::{read_tombstones, write_tombstones, FlatIndex};
use crate::storage::{DenseVectors, SharedBytes, VectorStorage};
use crate::tombstones::Tombstones;
use crate::topk::TopK;
use crate::{IdFilter, IndexError, Neighbor, SearchParams, VectorIndex, VectorIndexMut};
use pq::{ksub, ProductQuantizer, KSUB};

pub(crate) const MAGIC: &[u8; 8] = b"SXTIVFPQ";
/// Version 2 adds the code width and the OPQ rotation; version 1 files read as 4-bit codes
/// without rotation.
const VERSION: u32 = 2;

/// Vectors per fast-scan block.
const BLOCK: usize = 32;
/// Rows the coarse quantiser trains on per list (at most [`MAX_COARSE_SAMPLE`] in all).
const COARSE_SAMPLE_PER_LIST: usize = 64;
const MAX_COARSE_SAMPLE: usize = 262_144;
/// Rows the sub-quantisers train on: 1,024 per codebook entry of 4-bit codes (faiss takes up
/// to 256), 128 per entry of 8-bit codes.
const PQ_SAMPLE: usize = 16_384;
const PQ_SAMPLE_8BIT: usize = 32_768;
/// Lloyd iterations of the sub-quantisers.
const PQ_ITERS: usize = 20;
/// Rows OPQ learns its rotation on, and its alternations (codebooks, then rotation).
const OPQ_SAMPLE: usize = 16_384;
const OPQ_ROUNDS: usize = 10;
/// Vectors residualised, rotated and encoded together while building.
const ENCODE_CHUNK: usize = 1_024;
/// Lloyd iterations of the coarse quantiser.
const COARSE_ITERS: usize = 12;

/// Default lists probed per search.
pub const DEFAULT_NPROBE: usize = 16;
/// Default candidates rescored exactly per search.
pub const DEFAULT_RESCORE: usize = 100;

/// Settings of an [`IvfPqIndex`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IvfPqParams {
    /// Inverted lists (coarse centroids); 0 chooses about √n.
    pub nlist: usize,
    /// Sub-quantisers (`bits` each: `m / 2` bytes per vector for 4 bits, `m` for 8); 0 chooses
    /// ⌈dim / 4⌉ for 4-bit codes and ⌈dim / 8⌉ for 8-bit ones (the same bytes per vector).
    pub m: usize,
    /// Bits per code: 4 (16 centroids per sub-space, scanned in registers) or 8 (256).
    pub bits: usize,
    /// Learn an OPQ rotation before quantising.
    pub opq: bool,
    /// Lists scanned per search unless the search asks otherwise.
    pub nprobe: usize,
    /// Candidates rescored exactly per search unless the search gives `ef`.
    pub rescore: usize,
    /// Seed of the k-means initialisations.
    pub seed: u64,
}

impl Default for IvfPqParams {
    fn default() -> Self {
        IvfPqParams {
            nlist: 0,
            m: 0,
            bits: 4,
            opq: false,
            nprobe: DEFAULT_NPROBE,
            rescore: DEFAULT_RESCORE,
            seed: 0x5e7_a47,
        }
    }
}

impl IvfPqParams {
    /// The list count and sub-quantiser count used for `n` vectors of `dim` components.
    pub fn resolve(&self, n: usize, dim: usize) -> (usize, usize) {
        let nlist = if self.nlist == 0 {
            ((n as f64).sqrt().round() as usize).min(n / 64).max(1)
        } else {
            self.nlist
        };
        let m = match (self.m, self.bits) {
            (0, 8) => dim.div_ceil(8).max(1),
            (0, _) => dim.div_ceil(4).clamp(1, MAX_SUBQUANTIZERS),
            (m, _) => m,
        };
        (nlist, m)
    }

    fn validate(&self, metric: Metric, dim: usize) -> Result<(), IndexError> {
        if !metric.quantizable() {
            return Err(IndexError::param(
                "metric",
                format!(
                    "ivf_pq ranks by inner product or squared distance: {metric} is not supported"
                ),
            ));
        }
        if self.bits != 4 && self.bits != 8 {
            return Err(IndexError::param(
                "bits",
                format!("codes are 4 or 8 bits, got {}", self.bits),
            ));
        }
        if self.bits == 8 && self.m > dim {
            return Err(IndexError::param(
                "m",
                format!("{} sub-quantisers: at most the dimension {dim}", self.m),
            ));
        }
        if self.bits == 4 && (self.m > MAX_SUBQUANTIZERS || self.m > dim) {
            return Err(IndexError::param(
                "m",
                format!(
                    "{} sub-quantisers: at most {MAX_SUBQUANTIZERS} and at most the dimension {dim}",
                    self.m
                ),
            ));
        }
        if self.nprobe == 0 {
            return Err(IndexError::param("nprobe", "must be at least 1"));
        }
        if self.rescore == 0 {
            return Err(IndexError::param("rescore", "must be at least 1"));
        }
        Ok(())
    }
}

/// One inverted list: its point offsets and their codes.
#[derive(Debug, Clone, Default)]
struct List {
    ids: Vec<u32>,
    /// 4-bit codes: `ceil(ids.len() / 32)` fast-scan blocks of `pairs × 32` bytes; 8-bit codes:
    /// `ids.len() × m` bytes.
    codes: Codes,
}

/// A list's codes: owned (built, or grown by inserts), or used in place from the index file
/// they were loaded from (memory-mapped: no copy, and no transient buffer the size of the
/// file at open).
#[derive(Clone, Default)]
enum Codes {
    #[default]
    Empty,
    Owned(Vec<u8>),
    Shared {
        bytes: SharedBytes,
        start: usize,
        len: usize,
    },
}

impl std::fmt::Debug for Codes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Codes::Shared { len, .. } => write!(f, "Codes::Shared({len} bytes)"),
            other => write!(f, "Codes::Owned({} bytes)", other.as_slice().len()),
        }
    }
}

impl Codes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Codes::Empty => &[],
            Codes::Owned(v) => v,
            Codes::Shared { bytes, start, len } => &(**bytes).as_ref()[*start..*start + *len],
        }
    }

    /// The codes as an owned buffer, copying shared ones first.
    fn owned(&mut self) -> &mut Vec<u8> {
        if !matches!(self, Codes::Owned(_)) {
            *self = Codes::Owned(self.as_slice().to_vec());
        }
        match self {
            Codes::Owned(v) => v,
            _ => unreachable!("converted above"),
        }
    }

    /// Heap bytes held.
    fn heap_bytes(&self) -> usize {
        match self {
            Codes::Owned(v) => v.capacity(),
            _ => 0,
        }
    }

    /// Bytes used in place from a mapped file.
    fn shared_bytes(&self) -> usize {
        match self {
            Codes::Shared { len, .. } => *len,
            _ => 0,
        }
    }
}

/// Approximate index: inverted lists of 4- or 8-bit PQ codes with exact rescoring.
#[derive(Debug, Clone)]
pub struct IvfPqIndex {
    params: IvfPqParams,
    /// `nlist × dim`, in the preprocessed space (normalised vectors for cosine), rotated by
    /// `rotation` when there is one.
    centroids: Vec<f32>,
    /// OPQ's rotation (`dim × dim`, row-major, `x ↦ R x`); empty without OPQ.
    rotation: Vec<f32>,
    /// The rotation as queries apply it (derived, not stored).
    query_rotation: opq::QueryRotation,
    pq: ProductQuantizer,
    /// 8-bit codes: the codebooks transposed and their squared norms (derived, not stored;
    /// see [`ProductQuantizer::scaled_dot_table`]).
    books_t: Vec<f32>,
    book_norms: Vec<f32>,
    /// Squared distances only: each list's part of the table (`nlist × m × 16`, derived from
    /// the centroids and codebooks, not stored).
    list_terms: Vec<f32>,
    /// ‖c‖² per list (the cosine probe's rank key; derived, not stored).
    centroid_norms: Vec<f32>,
    lists: Vec<List>,
    vectors: DenseVectors,
    deleted: Tombstones,
}

impl IvfPqIndex {
    /// Trains the quantisers on `vectors` (a sample of them) and indexes them all, on the
    /// current rayon pool. `progress` is called with the number of vectors encoded so far.
    /// Needs at least 16 vectors, and at least `nlist` when `nlist` is given.
    pub fn build(
        vectors: DenseVectors,
        params: IvfPqParams,
        progress: Option<&(dyn Fn(usize) + Sync)>,
    ) -> Result<Self, IndexError> {
        let (n, dim, metric) = (vectors.len(), vectors.dim(), vectors.metric());
        let (nlist, m) = params.resolve(n, dim);
        let params = IvfPqParams { nlist, m, ..params };
        params.validate(metric, dim)?;
        let ksub = ksub(params.bits);
        if n < ksub || n < nlist {
            return Err(IndexError::param(
                "vectors",
                format!(
                    "training ivf_pq with {nlist} lists and {}-bit codes needs at least {} vectors, got {n}",
                    params.bits,
                    nlist.max(ksub)
                ),
            ));
        }
        let rows = |ids: &[usize]| -> Vec<f32> {
            ids.iter()
                .flat_map(|&i| vectors.get(i as u32).expect("in range").iter().copied())
                .collect()
        };
        let sample = |size: usize, salt: u64| -> Vec<usize> {
            use rand::seq::index;
            use rand::SeedableRng;
            let mut rng = rand::rngs::SmallRng::seed_from_u64(params.seed ^ salt);
            let mut s = index::sample(&mut rng, n, size.min(n)).into_vec();
            s.sort_unstable();
            s
        };
        let coarse_rows = rows(&sample(
            (nlist * COARSE_SAMPLE_PER_LIST).min(MAX_COARSE_SAMPLE),
            1,
        ));
        let centroids = kmeans::train(&coarse_rows, dim, nlist, COARSE_ITERS, params.seed);
        drop(coarse_rows);
        // Residuals of a sample train the rotation and the sub-quantisers.
        let pq_sample = if params.bits == 8 {
            PQ_SAMPLE_8BIT
        } else {
            PQ_SAMPLE
        };
        let pq_ids = sample(pq_sample, 2);
        let mut residuals = rows(&pq_ids);
        let mut homes = vec![0u32; pq_ids.len()];
        kmeans::assign_all(&residuals, dim, &centroids, &mut homes);
        for (r, &c) in residuals.chunks_exact_mut(dim).zip(&homes) {
            let c = c as usize;
            for (x, y) in r.iter_mut().zip(&centroids[c * dim..(c + 1) * dim]) {
                *x -= y;
            }
        }
        let rotation = if params.opq {
            let rows = (residuals.len() / dim).min(OPQ_SAMPLE) * dim;
            let (r, _) = opq::train(&residuals[..rows], dim, m, ksub, OPQ_ROUNDS, params.seed);
            residuals = opq::rotate_rows(&residuals, dim, &r, true);
            r
        } else {
            Vec::new()
        };
        let pq = ProductQuantizer::train(&residuals, dim, m, ksub, PQ_ITERS, params.seed);
        drop(residuals);
        let mut index = IvfPqIndex {
            params,
            centroids: if rotation.is_empty() {
                centroids.clone()
            } else {
                opq::rotate_rows(&centroids, dim, &rotation, true)
            },
            rotation,
            query_rotation: Default::default(),
            pq,
            books_t: Vec::new(),
            book_norms: Vec::new(),
            list_terms: Vec::new(),
            centroid_norms: Vec::new(),
            lists: vec![List::default(); nlist],
            vectors: DenseVectors::new(metric, dim)?,
            deleted: Tombstones::default(),
        };
        // Assign (one matrix product per block of vectors, against the unrotated centroids:
        // a rotation keeps distances), then residualise, rotate and encode blocks in parallel,
        // and append in offset order.
        use rayon::prelude::*;
        let mut homes = vec![0u32; n];
        let (all, stride) = vectors.rows();
        kmeans::assign_rows(all, dim, stride, &centroids, &mut homes);
        let done = std::sync::atomic::AtomicUsize::new(0);
        let encoded: Vec<Vec<u8>> = (0..n.div_ceil(ENCODE_CHUNK))
            .into_par_iter()
            .map(|b| {
                let ids = b * ENCODE_CHUNK..((b + 1) * ENCODE_CHUNK).min(n);
                let mut residuals = Vec::with_capacity(ids.len() * dim);
                for id in ids.clone() {
                    let home = homes[id] as usize;
                    let v = vectors.get(id as u32).expect("in range");
                    let c = &centroids[home * dim..(home + 1) * dim];
                    residuals.extend(v.iter().zip(c).map(|(x, c)| x - c));
                }
                if !index.rotation.is_empty() {
                    residuals = opq::rotate_rows(&residuals, dim, &index.rotation, false);
                }
                let mut codes = vec![0u8; ids.len() * m];
                index.pq.encode_rows(&residuals, &mut codes);
                let d = done.fetch_add(ids.len(), std::sync::atomic::Ordering::Relaxed) + ids.len();
                if let Some(p) = progress {
                    p(d);
                }
                codes
            })
            .collect();
        index.vectors = vectors;
        index.derive();
        for (id, codes) in encoded.iter().flat_map(|b| b.chunks_exact(m)).enumerate() {
            index.append(id as u32, homes[id], codes);
        }
        Ok(index)
    }

    /// Fills the state derived from the centroids and codebooks (not stored): the per-list
    /// table terms of squared distances and the centroid norms the cosine probe ranks by.
    fn derive(&mut self) {
        let dim = self.dim();
        if !self.rotation.is_empty() {
            self.query_rotation = opq::QueryRotation::new(&self.rotation, dim);
        }
        if self.params.bits == 8 {
            self.books_t = self.pq.transposed();
            self.book_norms = self.pq.norms();
        }
        self.list_terms = if self.params.bits == 4
            && self.vectors.metric().kernel() == sextant_core::KernelKind::L2Squared
        {
            self.centroids
                .chunks_exact(dim)
                .flat_map(|c| self.pq.l2_list_terms(c))
                .collect()
        } else {
            Vec::new()
        };
        self.centroid_norms = self
            .centroids
            .chunks_exact(dim)
            .map(|c| c.iter().map(|x| x * x).sum())
            .collect();
    }

    /// Heap bytes that grow with the number of lists rather than with the points: centroids,
    /// their norms, the per-list table terms (L2, 4-bit codes) and each list's own record.
    pub fn list_bytes(&self) -> usize {
        self.centroids.capacity() * 4
            + self.centroid_norms.capacity() * 4
            + self.list_terms.capacity() * 4
            + self.lists.capacity() * std::mem::size_of::<List>()
    }

    /// The settings, with `nlist` and `m` resolved.
    pub fn params(&self) -> IvfPqParams {
        self.params
    }

    /// The stored vectors.
    pub fn vectors(&self) -> &DenseVectors {
        &self.vectors
    }

    /// Bytes of code per vector.
    pub fn code_bytes(&self) -> usize {
        if self.params.bits == 8 {
            self.pq.m
        } else {
            self.pairs()
        }
    }

    fn pairs(&self) -> usize {
        self.pq.m.div_ceil(2)
    }

    fn dim(&self) -> usize {
        self.vectors.dim()
    }

    /// A preprocessed vector in the space of the centroids and codebooks (rotated by OPQ).
    fn rotated<'a>(&self, v: &'a [f32]) -> std::borrow::Cow<'a, [f32]> {
        if self.rotation.is_empty() {
            std::borrow::Cow::Borrowed(v)
        } else {
            std::borrow::Cow::Owned(opq::rotate(v, &self.rotation))
        }
    }

    /// The list of a preprocessed vector and the codes of its residual.
    fn encode(&self, v: &[f32]) -> (u32, Vec<u8>) {
        let v = self.rotated(v);
        let (list, _) = kmeans::nearest(&self.centroids, self.dim(), &v);
        self.encode_in(&v, list)
    }

    /// The codes of `v` (rotated) in list `list`.
    fn encode_in(&self, v: &[f32], list: usize) -> (u32, Vec<u8>) {
        let dim = self.dim();
        let residual: Vec<f32> = v
            .iter()
            .zip(&self.centroids[list * dim..(list + 1) * dim])
            .map(|(x, c)| x - c)
            .collect();
        let mut codes = vec![0u8; self.pq.m];
        self.pq.encode(&residual, &mut codes);
        (list as u32, codes)
    }

    /// Appends offset `id` with `codes` to `list`.
    fn append(&mut self, id: u32, list: u32, codes: &[u8]) {
        let pairs = self.pairs();
        let l = &mut self.lists[list as usize];
        if self.params.bits == 8 {
            l.codes.owned().extend_from_slice(codes);
            l.ids.push(id);
            return;
        }
        let slot = l.ids.len() % BLOCK;
        let bytes = l.codes.owned();
        if slot == 0 {
            bytes.resize(bytes.len() + pairs * BLOCK, 0);
        }
        let block = bytes.len() - pairs * BLOCK;
        let at = fastscan_slot(slot);
        for (j, &c) in codes.iter().enumerate() {
            let byte = &mut bytes[block + (j / 2) * BLOCK + at];
            *byte |= if j % 2 == 0 { c } else { c << 4 };
        }
        l.ids.push(id);
    }

    /// The `nprobe` lists to scan for `q`, in order, each with the metric's distance from `q`
    /// to its centroid (what a candidate's estimate starts from).
    ///
    /// Lists are ranked as points were assigned to them: by squared Euclidean distance to the
    /// centroid (k-means and encoding both use it). For cosine that is not the inner product
    /// with the centroid — a centroid of unit vectors is shorter the more spread its list is —
    /// so the rank key is ‖c‖² − 2⟨q, c⟩ (‖q − c‖² less the constant ‖q‖² = 1). For an inner
    /// product over unnormalised vectors the key stays −⟨q, c⟩: there the best list is the one
    /// whose points have the largest products, whatever their distance.
    fn probe(&self, q: &[f32], nprobe: usize) -> Vec<(f32, usize)> {
        let dim = self.dim();
        let metric = self.vectors.metric();
        let kernel = kernels().distance(metric.kernel());
        let spherical = metric.normalizes();
        let mut d: Vec<(f32, f32, usize)> = self
            .centroids
            .chunks_exact(dim)
            .enumerate()
            .map(|(l, c)| {
                let value = kernel(q, c);
                let key = if spherical {
                    self.centroid_norms[l] + 2.0 * value
                } else {
                    value
                };
                (key, value, l)
            })
            .collect();
        let nprobe = nprobe.min(d.len());
        if nprobe < d.len() {
            d.select_nth_unstable_by(nprobe, |a, b| a.0.total_cmp(&b.0));
            d.truncate(nprobe);
        }
        d.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.2.cmp(&b.2)));
        d.into_iter().map(|(_, value, l)| (value, l)).collect()
    }

    /// The `depth` best estimates among the allowed points of the `nprobe` lists nearest the
    /// preprocessed query `q`.
    fn candidates(
        &self,
        q: &[f32],
        nprobe: usize,
        depth: usize,
        filter: Option<&IdFilter<'_>>,
    ) -> Vec<Neighbor> {
        let q = if self.rotation.is_empty() {
            std::borrow::Cow::Borrowed(q)
        } else {
            std::borrow::Cow::Owned(self.query_rotation.apply(q))
        };
        if self.params.bits == 8 {
            self.candidates8(&q, nprobe, depth, filter)
        } else {
            self.candidates4(&q, nprobe, depth, filter)
        }
    }

    /// Offers a candidate's estimate to the kept set when it can enter it (`bound`, the kept
    /// set's worst, is tested first: most candidates cannot) and the point is live and allowed.
    #[inline(always)]
    fn keep(
        &self,
        top: &mut TopK,
        bound: &mut f32,
        id: u32,
        estimate: f32,
        filter: Option<&IdFilter<'_>>,
    ) {
        if estimate > *bound || self.deleted.contains(id) || filter.is_some_and(|f| !f.allows(id)) {
            return;
        }
        top.offer(id, estimate);
        *bound = top.bound();
    }

    /// [`Self::candidates`] over 8-bit codes: one float table per query (inner products) or per
    /// list (squared distances, from `q − c`), summed code by code.
    fn candidates8(
        &self,
        q: &[f32],
        nprobe: usize,
        depth: usize,
        filter: Option<&IdFilter<'_>>,
    ) -> Vec<Neighbor> {
        let (dim, m) = (self.dim(), self.pq.m);
        let neg_dot = self.vectors.metric().kernel() == sextant_core::KernelKind::NegDot;
        let mut table = vec![0f32; m * pq::KSUB8];
        if neg_dot {
            self.pq
                .scaled_dot_table(&self.books_t, q, -1.0, None, &mut table);
        }
        let mut diff = vec![0f32; dim];
        let mut top = TopK::new(depth);
        let mut bound = f32::INFINITY;
        for (centroid_d, l) in self.probe(q, nprobe) {
            let list = &self.lists[l];
            if list.ids.is_empty() {
                continue;
            }
            if !neg_dot {
                let c = &self.centroids[l * dim..(l + 1) * dim];
                for ((d, &a), &b) in diff.iter_mut().zip(q).zip(c) {
                    *d = a - b;
                }
                self.pq.scaled_dot_table(
                    &self.books_t,
                    &diff,
                    -2.0,
                    Some(&self.book_norms),
                    &mut table,
                );
            }
            for (&id, code) in list.ids.iter().zip(list.codes.as_slice().chunks_exact(m)) {
                let estimate = centroid_d + table_sum8(&table, code);
                self.keep(&mut top, &mut bound, id, estimate, filter);
            }
        }
        top.into_sorted()
    }

    /// [`Self::candidates`] over 4-bit codes, through the fast-scan kernel.
    fn candidates4(
        &self,
        q: &[f32],
        nprobe: usize,
        depth: usize,
        filter: Option<&IdFilter<'_>>,
    ) -> Vec<Neighbor> {
        let scan = kernels().fastscan;
        let neg_dot = self.vectors.metric().kernel() == sextant_core::KernelKind::NegDot;
        // Inner products: one table for every list, the list's `−⟨q, c⟩` added to it.
        let dot_table = self.pq.neg_dot_table(q);
        let table_len = self.pairs() * 2 * KSUB;
        let mut shared_bytes = vec![0u8; table_len];
        let shared = neg_dot.then(|| pq::quantize_table(&dot_table, &mut shared_bytes));
        let mut table_f = vec![0f32; dot_table.len()];
        let mut own = vec![0u8; table_len];
        let mut top = TopK::new(depth);
        let mut bound = f32::INFINITY;
        let mut sums: Vec<u16> = Vec::new();
        let block_bytes = self.pairs() * BLOCK;
        for (centroid_d, l) in self.probe(q, nprobe) {
            let list = &self.lists[l];
            if list.ids.is_empty() {
                continue;
            }
            let (table, base, scale) = match shared {
                Some((base, scale)) => (shared_bytes.as_slice(), base + centroid_d, scale),
                None => {
                    // ‖q − c‖² (the probe's distance) + the list's terms − 2⟨q_j, b_jk⟩.
                    let n = table_f.len();
                    let terms = &self.list_terms[l * n..(l + 1) * n];
                    for ((t, &a), &d) in table_f.iter_mut().zip(terms).zip(&dot_table) {
                        *t = a + 2.0 * d;
                    }
                    let (base, scale) = pq::quantize_table(&table_f, &mut own);
                    (own.as_slice(), base + centroid_d, scale)
                }
            };
            // The whole list in one call; slots past the last id are padding.
            let codes = list.codes.as_slice();
            sums.resize(codes.len() / block_bytes * BLOCK, 0);
            scan(codes, table, &mut sums);
            for (&id, &s) in list.ids.iter().zip(&sums) {
                self.keep(
                    &mut top,
                    &mut bound,
                    id,
                    base + scale * f32::from(s),
                    filter,
                );
            }
        }
        top.into_sorted()
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

    /// Like [`IvfPqIndex::from_parts`], over bytes that stay alive (a memory-mapped index
    /// file): the lists' codes are used in place instead of copied.
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
        let corrupt = |what: String| IndexError::Corrupt(format!("ivf_pq index: {what}"));
        let (r, version) = Reader::open_versions(bytes, MAGIC, "ivf_pq index", 1..=VERSION)?;
        let mut r = r.with_vectors(vectors);
        let metric =
            Metric::from_code(r.u8()?).ok_or_else(|| corrupt("unknown metric code".into()))?;
        let dim = r.u32()? as usize;
        let len = usize::try_from(r.u64()?).map_err(|_| corrupt("length overflows".into()))?;
        let mut params = IvfPqParams {
            nlist: r.u32()? as usize,
            m: r.u32()? as usize,
            nprobe: r.u32()? as usize,
            rescore: r.u32()? as usize,
            seed: r.u64()?,
            ..IvfPqParams::default()
        };
        if version >= 2 {
            params.bits = r.u32()? as usize;
            params.opq = match r.u8()? {
                0 => false,
                1 => true,
                other => return Err(corrupt(format!("OPQ flag {other}"))),
            };
        }
        if dim == 0 || params.nlist == 0 || params.m == 0 {
            return Err(corrupt("zero dimension, lists or sub-quantisers".into()));
        }
        params
            .validate(metric, dim)
            .map_err(|e| corrupt(e.to_string()))?;
        let size = |a: usize, b: usize| a.checked_mul(b).ok_or_else(|| corrupt("size".into()));
        let centroids: Vec<f32> = r.f32s(size(params.nlist, dim)?)?.collect();
        let dsub = dim.div_ceil(params.m);
        let ksub = ksub(params.bits);
        let pq = ProductQuantizer {
            dim,
            m: params.m,
            dsub,
            ksub,
            centroids: r.f32s(size(size(params.m, ksub)?, dsub)?)?.collect(),
        };
        let rotation: Vec<f32> = if params.opq {
            r.f32s(size(dim, dim)?)?.collect()
        } else {
            Vec::new()
        };
        if centroids
            .iter()
            .chain(&pq.centroids)
            .chain(&rotation)
            .any(|x| !x.is_finite())
        {
            return Err(corrupt("non-finite centroid or rotation".into()));
        }
        let block_bytes = params.m.div_ceil(2) * BLOCK;
        let list_bytes = |count: usize| {
            if params.bits == 8 {
                size(count, params.m)
            } else {
                size(count.div_ceil(BLOCK), block_bytes)
            }
        };
        let mut lists = Vec::with_capacity(params.nlist.min(len + 1));
        let mut listed = vec![false; len];
        for l in 0..params.nlist {
            let count = r.u64()? as usize;
            if count > len {
                return Err(corrupt(format!("list {l} holds {count} of {len} points")));
            }
            let ids: Vec<u32> = r.u32s(count)?.collect();
            for &id in &ids {
                match listed.get_mut(id as usize) {
                    Some(seen) if !*seen => *seen = true,
                    _ => return Err(corrupt(format!("offset {id} out of range or listed twice"))),
                }
            }
            let slice = r.bytes(list_bytes(count)?)?;
            let codes = match shared {
                _ if slice.is_empty() => Codes::Empty,
                Some(owner) => Codes::Shared {
                    bytes: owner.clone(),
                    start: slice.as_ptr() as usize - bytes.as_ptr() as usize,
                    len: slice.len(),
                },
                None => Codes::Owned(slice.to_vec()),
            };
            lists.push(List { ids, codes });
        }
        if listed.contains(&false) {
            return Err(corrupt("a point is in no list".into()));
        }
        let vectors = DenseVectors::deserialize_from(&mut r, metric, dim, len)?;
        let deleted = read_tombstones(&mut r, len)?;
        r.finish()?;
        let mut index = IvfPqIndex {
            params,
            centroids,
            rotation,
            query_rotation: Default::default(),
            pq,
            books_t: Vec::new(),
            book_norms: Vec::new(),
            list_terms: Vec::new(),
            centroid_norms: Vec::new(),
            lists,
            vectors,
            deleted,
        };
        index.derive();
        Ok(index)
    }
}

/// `Σ_j table[j][code_j]` for a table of `code.len() × 256` floats, in four independent sums
/// (scalars: kept as an array, the compiler packed them into vector registers with shuffles
/// and stack spills, a third slower).
fn table_sum8(table: &[f32], code: &[u8]) -> f32 {
    const K: usize = pq::KSUB8;
    let (quads, rest) = code.as_chunks::<4>();
    let (rows, tail) = table.split_at(quads.len() * 4 * K);
    let (mut a0, mut a1, mut a2, mut a3) = (0f32, 0f32, 0f32, 0f32);
    for (c, t) in quads.iter().zip(rows.as_chunks::<{ 4 * K }>().0) {
        a0 += t[usize::from(c[0])];
        a1 += t[K + usize::from(c[1])];
        a2 += t[2 * K + usize::from(c[2])];
        a3 += t[3 * K + usize::from(c[3])];
    }
    for (c, t) in rest.iter().zip(tail.chunks_exact(K)) {
        a0 += t[usize::from(*c)];
    }
    (a0 + a1) + (a2 + a3)
}

impl VectorIndex for IvfPqIndex {
    stored_accessors!();

    fn search(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: Option<&IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>, IndexError> {
        params.validate()?;
        let q = self.vectors.query(query)?;
        if let Some(exact) =
            FlatIndex::scan_if_selective(&self.vectors, &q, params, filter, &self.deleted)
        {
            return Ok(exact);
        }
        let nprobe = params.nprobe.unwrap_or(self.params.nprobe);
        let depth = params.ef.unwrap_or(self.params.rescore).max(params.k);
        let found = self.candidates(q.values(self.dim()), nprobe, depth, filter);
        let mut top = TopK::new(params.k);
        for n in found {
            top.offer(n.id, self.vectors.distance(&q, n.id));
        }
        Ok(top.into_sorted())
    }

    fn memory_bytes(&self) -> usize {
        self.centroids.capacity() * 4
            + self.pq.centroids.capacity() * 4
            + (self.rotation.capacity() + self.books_t.capacity() + self.book_norms.capacity()) * 4
            + self.query_rotation.memory_bytes()
            + self.list_terms.capacity() * 4
            + self.centroid_norms.capacity() * 4
            + self
                .lists
                .iter()
                .map(|l| l.ids.capacity() * 4 + l.codes.heap_bytes())
                .sum::<usize>()
            + self.vectors.memory_bytes()
            + self.deleted.memory_bytes()
    }

    fn mapped_bytes(&self) -> usize {
        self.lists.iter().map(|l| l.codes.shared_bytes()).sum()
    }

    fn to_bytes_with(&self, external_vectors: bool) -> Vec<u8> {
        let n = self.len();
        let codes: usize = self.lists.iter().map(|l| l.codes.as_slice().len()).sum();
        let mut w = Writer::new(MAGIC, VERSION, n * (self.dim() * 4 + 4) + codes)
            .external(external_vectors);
        w.u8(self.metric().code());
        w.u32(self.dim() as u32);
        w.u64(n as u64);
        let p = &self.params;
        for x in [p.nlist, p.m, p.nprobe, p.rescore] {
            w.u32(x as u32);
        }
        w.u64(p.seed);
        w.u32(p.bits as u32);
        w.u8(u8::from(p.opq));
        w.f32s(&self.centroids);
        w.f32s(&self.pq.centroids);
        w.f32s(&self.rotation);
        for l in &self.lists {
            w.u64(l.ids.len() as u64);
            w.u32s(l.ids.iter().copied());
            w.bytes(l.codes.as_slice());
        }
        self.vectors.serialize_into(&mut w);
        write_tombstones(&mut w, &self.deleted);
        w.finish()
    }
}

impl VectorIndexMut for IvfPqIndex {
    /// Encodes `vector` with the trained quantisers (they are not retrained).
    fn insert(&mut self, vector: &[f32]) -> Result<PointOffset, IndexError> {
        let id = self.vectors.push(vector)?;
        let (list, codes) = self.encode(self.vectors.get(id).expect("just pushed"));
        self.append(id, list, &codes);
        Ok(id)
    }

    fn delete(&mut self, id: PointOffset) -> Result<bool, IndexError> {
        if id as usize >= self.len() {
            return Err(IndexError::UnknownPoint(id));
        }
        Ok(self.deleted.insert(id))
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// The unrolled 8-bit table sum equals the plain one for every code length (whole groups of
    /// eight, a remainder, both).
    #[test]
    fn table_sums_of_8_bit_codes_match_the_plain_sum() {
        let mut rng = SmallRng::seed_from_u64(9);
        for m in 1..=33 {
            let table: Vec<f32> = (0..m * pq::KSUB8)
                .map(|_| rng.gen_range(-1.0..1.0))
                .collect();
            let code: Vec<u8> = (0..m).map(|_| rng.gen()).collect();
            let want: f32 = code
                .iter()
                .enumerate()
                .map(|(j, &c)| table[j * pq::KSUB8 + usize::from(c)])
                .sum();
            let got = table_sum8(&table, &code);
            assert!((got - want).abs() < 1e-4, "m {m}: {got} vs {want}");
        }
    }

    /// Lists are probed by the criterion points were assigned by: a stored vector used as the
    /// query ranks its own list first. For cosine the inner product with the centroid would
    /// not (a spread list's centroid is shorter), which cost half the recall at small nprobe
    /// on clustered data (regression).
    #[test]
    fn a_stored_vector_probes_its_own_list_first() {
        let (n, dim) = (3_000, 24);
        let mut rng = SmallRng::seed_from_u64(3);
        // Clusters of very different spread, so centroid norms differ.
        let centres: Vec<Vec<f32>> = (0..20)
            .map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())
            .collect();
        let data: Vec<f32> = (0..n)
            .flat_map(|i| {
                let c = &centres[i % 20];
                let spread = 0.1 + (i % 20) as f32 * 0.15;
                c.iter()
                    .map(|x| x + spread * rng.gen_range(-1.0..1.0))
                    .collect::<Vec<_>>()
            })
            .collect();
        for metric in [Metric::Cosine, Metric::L2] {
            let vectors = DenseVectors::from_rows(metric, dim, &data).unwrap();
            let index = IvfPqIndex::build(vectors, IvfPqParams::default(), None).unwrap();
            let mut home = vec![0usize; n];
            for (l, list) in index.lists.iter().enumerate() {
                for &id in &list.ids {
                    home[id as usize] = l;
                }
            }
            let misses = (0..n as u32)
                .filter(|&id| {
                    let v = index.vectors.get(id).unwrap();
                    index.probe(v, 1)[0].1 != home[id as usize]
                })
                .count();
            assert_eq!(
                misses, 0,
                "{metric:?}: {misses} of {n} probe another list first"
            );
        }
    }
}
