//! 1-bit codes with a RaBitQ-style distance estimator and error bound (Gao & Long, SIGMOD 2024),
//! used to scan a filtered subset of a segment without reading its full vectors, rescoring
//! exactly only the candidates the bound cannot rule out.
//!
//! **Codes.** Each vector `o` is centred on the store's centroid `c`, normalised
//! (`o' = (o − c)/‖o − c‖`), rotated by a fixed random orthogonal map `P` (three rounds of random
//! signs and a normalised Walsh–Hadamard transform, over the dimension padded to a power of two
//! `D ≥ 64`), and stored as the signs of the rotated components: `D` bits, plus `‖o − c‖`,
//! `α = ⟨ō, o'⟩ = Σ|P o'|ᵢ / √D` (how well the signs represent the vector) and the popcount.
//!
//! **Estimator.** For a query direction `u` (unit, rotated), `⟨ō, u⟩ / α` estimates `⟨o', u⟩`
//! without bias, with error at most `ε₀ · √(1 − α²)/α / √(D − 1)` with high probability
//! (`ε₀` = [`BOUND_SIGMAS`] by default; a search with beam `ef` uses [`bound_sigmas_for`]).
//! The query is quantised to 4 bits per component, so `⟨ō, u⟩` is four AND + popcount passes
//! over the code's words (the [`crate::distance`] popcount kernels); the quantisation error is
//! measured per query and added to the bound.
//!
//! **Distances.** L2: `‖o − q‖² = ‖o − c‖² + ‖q − c‖² − 2‖o − c‖‖q − c‖⟨o', u⟩` with
//! `u = P(q − c)/‖q − c‖`. Inner product (cosine vectors are normalised beforehand):
//! `⟨o, q⟩ = ⟨c, q⟩ + ‖o − c‖‖q‖⟨o', u⟩` with `u = P q/‖q‖`. L1 has no such form.
//!
//! **Search** ([`BinaryCodes::search`]): one pass estimates every candidate and keeps those
//! whose lower bound is below the k-th smallest upper bound; they are rescored exactly in
//! order of lower bound until the next lower bound passes the k-th exact distance (and at
//! least `min_rescore` have been rescored, a recall knob for when the probabilistic bound
//! fails).

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;
use sextant_core::{KernelKind, Metric};

use super::{DenseQuery, DenseVectors, SharedBytes, Slab, VectorStorage};
use crate::distance::{kernels, Popcount4Kernel};
use crate::topk::TopK;
use crate::Neighbor;

/// Sigmas of the estimator's error a candidate's bound spans (the paper's `ε₀`).
pub const BOUND_SIGMAS: f32 = 1.9;
/// Fewest padded dimensions: below 64 bits a sign code says too little to prune.
const MIN_BITS: usize = 64;
/// Rounds of random signs + Hadamard transform in the rotation.
const ROUNDS: usize = 3;
/// Seed of the rotation's signs (stored with the codes, so a later change cannot break them).
pub const DEFAULT_ROTATION_SEED: u64 = 0x5ab1_7c0d;
/// Levels of the 4-bit query quantiser.
const QUERY_LEVELS: f32 = 15.0;

/// 1-bit RaBitQ codes of a [`DenseVectors`] store (L2, cosine and dot metrics).
#[derive(Clone)]
pub struct BinaryCodes {
    kind: KernelKind,
    dim: usize,
    /// Padded dimension `D` (a power of two, at least [`MIN_BITS`]).
    bits: usize,
    seed: u64,
    /// `ROUNDS × bits` random signs (±1) of the rotation.
    signs: Vec<f32>,
    centroid: Vec<f32>,
    /// The codes, `bits / 64` words per vector, cache-line aligned.
    codes: Words,
    /// Per vector: `‖o − c‖`, `α`, the estimator's standard error `√(1 − α²)/α/√(D − 1)`
    /// and the popcount of the code (the first, second and last are what is stored).
    terms: Slab<[f32; 4]>,
    popcount4: Popcount4Kernel,
}

impl std::fmt::Debug for BinaryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BinaryCodes")
            .field("dim", &self.dim)
            .field("bits", &self.bits)
            .field("len", &self.terms.len())
            .finish()
    }
}

/// A query prepared for [`BinaryCodes`]: the rotated unit direction quantised to 4 bits, as
/// four bit planes, and the scalars the estimator needs.
#[derive(Debug, Clone)]
pub struct BinaryQuery {
    planes: Vec<u64>,
    /// Value of quantisation level 0 and the step between levels, over `√D`.
    low: f32,
    step: f32,
    /// Σ of the quantised components, over `√D`.
    sum: f32,
    /// `‖q − c‖` (L2) or `‖q‖` (inner product).
    norm: f32,
    /// `⟨c, q⟩` (inner product only).
    centroid_dot: f32,
    /// The quantisation's share of the error bound, in units of `⟨ō, u⟩`.
    quant_error: f32,
    /// Standard errors of the estimator a bound spans.
    sigmas: f32,
}

impl BinaryQuery {
    /// Sets how many standard errors of the estimator a bound spans (default
    /// [`BOUND_SIGMAS`]): fewer rescore fewer candidates and miss more true neighbours.
    pub fn with_bound_sigmas(mut self, sigmas: f32) -> Self {
        self.sigmas = sigmas.max(0.0);
        self
    }
}

/// The bound width a search with beam `ef` uses: `1 + ef/32` standard errors, at most
/// [`BOUND_SIGMAS`] + 0.6 (1.3 at ef 10, 1.5 at 16, 2.0 at 32, 2.5 from 48): `ef` is the
/// user's recall knob for every plan, and a tighter bound rescores fewer candidates.
pub fn bound_sigmas_for(ef: usize) -> f32 {
    (1.0 + ef as f32 / 32.0).min(BOUND_SIGMAS + 0.6)
}

impl BinaryCodes {
    /// Whether the codes support `metric` and `dim`: not L1, and at least 64 dimensions
    /// (fewer bits estimate too coarsely to save rescoring).
    pub fn supports(metric: Metric, dim: usize) -> bool {
        metric.quantizable() && dim >= MIN_BITS
    }

    /// Codes of every vector of `vectors`, centred on their mean; `None` where
    /// [`BinaryCodes::supports`] says no.
    pub fn fit(vectors: &DenseVectors, seed: u64) -> Option<Self> {
        if !Self::supports(vectors.metric(), vectors.dim()) {
            return None;
        }
        let dim = vectors.dim();
        let mut centroid = vec![0f64; dim];
        for id in 0..vectors.len() as u32 {
            for (c, &x) in centroid.iter_mut().zip(vectors.get(id).expect("in range")) {
                *c += f64::from(x);
            }
        }
        let n = vectors.len().max(1) as f64;
        let centroid: Vec<f32> = centroid.iter().map(|&c| (c / n) as f32).collect();
        let mut codes = Self::empty(vectors.metric(), dim, seed, centroid)?;
        let words = codes.words();
        let mut words_out = Words::zeroed(vectors.len() * words);
        let mut factors = vec![[0f32; 3]; vectors.len()];
        words_out
            .as_mut_slice()
            .par_chunks_mut(words * 256)
            .zip(factors.par_chunks_mut(256))
            .enumerate()
            .for_each(|(chunk, (w, f))| {
                for (i, (w, f)) in w.chunks_exact_mut(words).zip(f).enumerate() {
                    let id = (chunk * 256 + i) as u32;
                    *f = codes.encode(vectors.get(id).expect("in range"), w);
                }
            });
        codes.codes = words_out;
        codes.terms = Slab::Owned(factors.iter().map(|&f| codes.derive(f)).collect());
        Some(codes)
    }

    /// A store with no vectors yet, centred on `centroid`.
    pub(crate) fn empty(metric: Metric, dim: usize, seed: u64, centroid: Vec<f32>) -> Option<Self> {
        if !Self::supports(metric, dim) || centroid.len() != dim {
            return None;
        }
        let bits = Self::code_words(dim) * 64;
        let mut rng = SmallRng::seed_from_u64(seed);
        let signs = (0..ROUNDS * bits)
            .map(|_| if rng.gen::<bool>() { 1.0 } else { -1.0 })
            .collect();
        Some(BinaryCodes {
            kind: metric.kernel(),
            dim,
            bits,
            seed,
            signs,
            centroid,
            codes: Words::default(),
            terms: Slab::default(),
            popcount4: kernels().popcount4,
        })
    }

    fn words(&self) -> usize {
        self.bits / 64
    }

    /// `u64` words of one code of a `dim`-dimensional vector (the dimension padded to a power
    /// of two, at least [`MIN_BITS`]).
    pub(crate) fn code_words(dim: usize) -> usize {
        dim.next_power_of_two().max(MIN_BITS) / 64
    }

    /// Number of coded vectors.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// Whether no vector is coded.
    pub fn is_empty(&self) -> bool {
        self.terms.len() == 0
    }

    /// Bits per code (the padded dimension).
    pub fn bits(&self) -> usize {
        self.bits
    }

    /// Heap memory held, in bytes.
    pub fn memory_bytes(&self) -> usize {
        self.codes.memory_bytes()
            + self.terms.heap_bytes()
            + (self.signs.capacity() + self.centroid.capacity()) * 4
    }

    /// Rotates `x` (`bits` long) in place: `ROUNDS` × (random signs, then a Walsh–Hadamard
    /// transform), scaled once at the end so that the map is orthogonal.
    fn rotate(&self, x: &mut [f32]) {
        for round in self.signs.chunks_exact(self.bits) {
            for (v, s) in x.iter_mut().zip(round) {
                *v *= s;
            }
            hadamard(x);
        }
        let scale = (self.bits as f32).powf(-(ROUNDS as f32) / 2.0);
        for v in x.iter_mut() {
            *v *= scale;
        }
    }

    /// Encodes one preprocessed vector (normalised for cosine) and appends it.
    pub fn push(&mut self, v: &[f32]) {
        let mut code = vec![0u64; self.words()];
        let factors = self.encode(v, &mut code);
        self.codes.extend(&code);
        let terms = self.derive(factors);
        self.terms.owned().push(terms);
    }

    /// The scan's per-vector terms from the stored factors (`‖o − c‖`, `α`, popcount).
    fn derive(&self, [norm, alpha, ones]: [f32; 3]) -> [f32; 4] {
        let sigma = (1.0 - alpha * alpha).max(0.0).sqrt() / alpha / (self.bits as f32 - 1.0).sqrt();
        [norm, alpha, sigma, ones]
    }

    /// Writes the code of `v` into `code` (zeroed, `bits / 64` words); returns its factors.
    fn encode(&self, v: &[f32], code: &mut [u64]) -> [f32; 3] {
        let mut r = vec![0f32; self.bits];
        for ((r, &x), &c) in r.iter_mut().zip(v).zip(&self.centroid) {
            *r = x - c;
        }
        let norm = r.iter().map(|x| x * x).sum::<f32>().sqrt();
        if norm == 0.0 || !norm.is_finite() {
            // The vector is the centroid: `norm` 0 makes every estimate exact.
            return [0.0, 1.0, 0.0];
        }
        for x in r.iter_mut() {
            *x /= norm;
        }
        self.rotate(&mut r);
        let mut abs_sum = 0f32;
        for (i, &x) in r.iter().enumerate() {
            abs_sum += x.abs();
            if x > 0.0 {
                code[i / 64] |= 1 << (i % 64);
            }
        }
        let ones = code.iter().map(|w| w.count_ones()).sum::<u32>();
        // α > 0: a unit vector has a non-zero component. Clamped against rounding.
        let alpha = (abs_sum / (self.bits as f32).sqrt()).clamp(f32::MIN_POSITIVE, 1.0);
        [norm, alpha, ones as f32]
    }

    /// Prepares an already preprocessed query.
    pub fn prepare(&self, q: &[f32]) -> BinaryQuery {
        let mut u = vec![0f32; self.bits];
        let mut centroid_dot = 0f32;
        match self.kind {
            KernelKind::L2Squared => {
                for ((u, &x), &c) in u.iter_mut().zip(q).zip(&self.centroid) {
                    *u = x - c;
                }
            }
            _ => {
                for ((u, &x), &c) in u.iter_mut().zip(q).zip(&self.centroid) {
                    *u = x;
                    centroid_dot += x * c;
                }
            }
        }
        let norm = u.iter().map(|x| x * x).sum::<f32>().sqrt();
        let words = self.words();
        let mut planes = vec![0u64; 4 * words];
        if norm == 0.0 || !norm.is_finite() {
            return BinaryQuery {
                planes,
                low: 0.0,
                step: 0.0,
                sum: 0.0,
                norm: 0.0,
                centroid_dot,
                quant_error: 0.0,
                sigmas: BOUND_SIGMAS,
            };
        }
        for x in u.iter_mut() {
            *x /= norm;
        }
        self.rotate(&mut u);
        let low = u.iter().copied().fold(f32::INFINITY, f32::min);
        let high = u.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let step = (high - low) / QUERY_LEVELS;
        let (mut sum, mut err2) = (0f32, 0f32);
        for (i, &x) in u.iter().enumerate() {
            let level = if step > 0.0 {
                ((x - low) / step).round().clamp(0.0, QUERY_LEVELS)
            } else {
                0.0
            };
            let value = low + step * level;
            sum += value;
            err2 += (x - value) * (x - value);
            let level = level as u64;
            for j in 0..4 {
                planes[j * words + i / 64] |= ((level >> j) & 1) << (i % 64);
            }
        }
        // ⟨x̄, u − û⟩ over ±1/√D entries that do not depend on the rounding: its spread is
        // ‖u − û‖/√D.
        let inv_sqrt_d = 1.0 / (self.bits as f32).sqrt();
        let quant_error = err2.sqrt() * inv_sqrt_d;
        BinaryQuery {
            planes,
            low: low * inv_sqrt_d,
            step: step * inv_sqrt_d,
            sum: sum * inv_sqrt_d,
            norm,
            centroid_dot,
            quant_error,
            sigmas: BOUND_SIGMAS,
        }
    }

    /// Estimated internal distance (smaller is closer) from `q` to vector `id`, and the
    /// half-width of its confidence interval.
    #[inline]
    pub fn estimate(&self, q: &BinaryQuery, id: u32) -> (f32, f32) {
        let words = self.words();
        let start = id as usize * words;
        let weighted = (self.popcount4)(&self.codes.as_slice()[start..start + words], &q.planes);
        let (mut lower, mut span) = ([0f32], [0f32]);
        self.bounds(q, &[id], &[weighted], &mut lower, &mut span);
        (lower[0] + span[0] / 2.0, span[0] / 2.0)
    }

    /// Lower bounds and widths (upper − lower) of a batch's distances given their weighted
    /// popcounts: the terms are gathered first so that the arithmetic runs as straight-line
    /// loops the compiler vectorises.
    fn bounds(
        &self,
        q: &BinaryQuery,
        ids: &[u32],
        counts: &[u32],
        lowers: &mut [f32],
        spans: &mut [f32],
    ) {
        const BATCH: usize = 64;
        let n = ids.len().min(BATCH);
        let mut t = [[0f32; BATCH]; 4];
        for (i, &id) in ids[..n].iter().enumerate() {
            let terms = self.terms.as_slice()[id as usize];
            for (col, v) in t.iter_mut().zip(terms) {
                col[i] = v;
            }
        }
        let [norm, alpha, sigma, ones] = &t;
        let l2 = matches!(self.kind, KernelKind::L2Squared);
        for i in 0..n {
            let dot = 2.0 * (q.low * ones[i] + q.step * counts[i] as f32) - q.sum;
            let cosine = dot / alpha[i];
            let error = q.sigmas * (sigma[i] + q.quant_error / alpha[i]);
            let scale = norm[i] * q.norm;
            let (d, e) = if l2 {
                (
                    norm[i] * norm[i] + q.norm * q.norm - 2.0 * scale * cosine,
                    2.0 * scale * error,
                )
            } else {
                (-(q.centroid_dot + scale * cosine), scale * error)
            };
            lowers[i] = d - e;
            spans[i] = 2.0 * e;
        }
    }

    /// The `k` nearest of `ids` by exact distance from `vectors` (the store these codes were
    /// made from), rescoring only candidates the bound cannot rule out, and at least
    /// `min_rescore` of them. Returns the neighbours, closest first, and how many were
    /// rescored.
    pub fn search(
        &self,
        q: &BinaryQuery,
        exact: &DenseQuery,
        vectors: &DenseVectors,
        ids: impl Iterator<Item = u32>,
        k: usize,
        min_rescore: usize,
    ) -> (Vec<Neighbor>, usize) {
        let candidates = self.candidates(q, ids, k.max(min_rescore));
        let mut top = TopK::new(k);
        let mut rescored = 0;
        const AHEAD: usize = 4;
        for (i, &(lower, id)) in candidates.iter().enumerate() {
            if rescored >= min_rescore && lower > top.bound() {
                break;
            }
            if let Some(&(_, next)) = candidates.get(i + AHEAD) {
                vectors.prefetch(next);
            }
            top.offer(id, vectors.distance(exact, id));
            rescored += 1;
        }
        (top.into_sorted(), rescored)
    }

    /// Like [`BinaryCodes::search`] with a cheaper scorer between the codes and the f32
    /// vectors (SQ8 codes): the candidates the bound cannot rule out are scored by `mid` in
    /// order of lower bound until the next lower bound passes the `k`-th `mid` distance; the
    /// `max(k, rescore)` best by `mid` are then rescored exactly.
    #[allow(clippy::too_many_arguments)]
    pub fn search_via<S: VectorStorage>(
        &self,
        q: &BinaryQuery,
        mid: &S,
        mid_query: &S::Query,
        exact: &DenseQuery,
        vectors: &DenseVectors,
        ids: impl Iterator<Item = u32>,
        k: usize,
        rescore: usize,
    ) -> Vec<Neighbor> {
        const AHEAD: usize = 4;
        let candidates = self.candidates(q, ids, k);
        let (mut nearest, mut kept) = (TopK::new(k), TopK::new(k.max(rescore)));
        for (i, &(lower, id)) in candidates.iter().enumerate() {
            if lower > nearest.bound() {
                break;
            }
            if let Some(&(_, next)) = candidates.get(i + AHEAD) {
                mid.prefetch(next);
            }
            let d = mid.distance(mid_query, id);
            nearest.offer(id, d);
            kept.offer(id, d);
        }
        let mut found = kept.into_sorted();
        for n in &found {
            vectors.prefetch(n.id);
        }
        for n in &mut found {
            n.distance = vectors.distance(exact, n.id);
        }
        found.sort_unstable();
        found.truncate(k);
        found
    }

    /// The candidates among `ids` that the bound cannot rule out of the `keep` nearest: those
    /// whose lower bound is at most the `keep`-th smallest upper bound, as `(lower bound, id)`
    /// in increasing order of lower bound.
    pub fn candidates(
        &self,
        q: &BinaryQuery,
        ids: impl Iterator<Item = u32>,
        keep: usize,
    ) -> Vec<(f32, u32)> {
        const BATCH: usize = 64;
        // Internal iteration (`for_each`): a bitmap's nested iterators run much faster
        // folded than stepped with `next`.
        let mut all = Vec::with_capacity(ids.size_hint().0);
        ids.for_each(|id| all.push(id));
        let ids = all;
        let mut uppers = TopK::new(keep);
        let mut candidates: Vec<(f32, u32)> = Vec::new();
        let mut bound = f32::INFINITY;
        let mut counts = [0u32; BATCH];
        let (mut lowers, mut spans) = ([0f32; BATCH], [0f32; BATCH]);
        let popcount4_batch = kernels().popcount4_batch;
        let (codes, words) = (self.codes.as_slice(), self.words());
        // The ids are scattered (a filter's matches), so every code and its terms are a cache
        // miss: ask for the next batch's terms while this one is scored.
        // (The kernel prefetches the codes a few ids ahead itself.)
        let prefetch = |batch: &[u32]| {
            for &id in batch {
                if let Some(t) = self.terms.as_slice().get(id as usize) {
                    super::prefetch_read(std::ptr::from_ref(t).cast());
                }
            }
        };
        let mut batches = ids.chunks(BATCH).peekable();
        if let Some(first) = batches.peek() {
            prefetch(first);
        }
        while let Some(batch) = batches.next() {
            if let Some(next) = batches.peek() {
                prefetch(next);
            }
            let n = batch.len();
            popcount4_batch(codes, words, batch, &q.planes, &mut counts[..n]);
            self.bounds(q, batch, &counts[..n], &mut lowers[..n], &mut spans[..n]);
            for i in 0..n {
                if lowers[i] < bound {
                    candidates.push((lowers[i], batch[i]));
                    let upper = lowers[i] + spans[i];
                    if upper < bound {
                        uppers.offer(batch[i], upper);
                        bound = uppers.bound();
                    }
                }
            }
        }
        let threshold = uppers.bound();
        candidates.retain(|c| c.0 <= threshold);
        candidates.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
        candidates
    }

    /// The centroid and the rotation seed, for persisting beside [`BinaryCodes::stored`].
    pub(crate) fn centroid_and_seed(&self) -> (&[f32], u64) {
        (&self.centroid, self.seed)
    }

    /// Reassembles stored codes (`code_bytes`: the words, little-endian); `None` if they do not
    /// fit `metric` and `dim`.
    pub(crate) fn from_parts(
        metric: Metric,
        dim: usize,
        seed: u64,
        centroid: Vec<f32>,
        code_bytes: &[u8],
        factors: Vec<[f32; 3]>,
    ) -> Option<Self> {
        let mut b = Self::empty(metric, dim, seed, centroid)?;
        let valid = factors
            .iter()
            .all(|&[n, a, o]| n.is_finite() && n >= 0.0 && a > 0.0 && a <= 1.0 && o >= 0.0);
        if code_bytes.len() != factors.len() * b.words() * 8 || !valid {
            return None;
        }
        b.codes = Words::zeroed(code_bytes.len() / 8);
        for (w, bytes) in b
            .codes
            .as_mut_slice()
            .iter_mut()
            .zip(code_bytes.chunks_exact(8))
        {
            *w = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
        }
        b.terms = Slab::Owned(factors.iter().map(|&f| b.derive(f)).collect());
        Some(b)
    }

    /// The code lines (whole 64-byte lines, the last one zero-padded) and the per-vector
    /// terms, as bytes, for a format that uses them in place ([`BinaryCodes::from_stored`]).
    pub(crate) fn stored(&self) -> (&[u8], &[u8]) {
        (
            bytemuck::cast_slice(self.codes.lines.as_slice()),
            bytemuck::cast_slice(self.terms.as_slice()),
        )
    }

    /// Reassembles codes from [`BinaryCodes::stored`] bytes for `len` vectors, used in place
    /// where they lie aligned inside `owner`; `None` if the sizes do not fit `metric` and
    /// `dim`.
    pub(crate) fn from_stored(
        metric: Metric,
        dim: usize,
        seed: u64,
        centroid: Vec<f32>,
        len: usize,
        (lines, terms): (&[u8], &[u8]),
        owner: Option<&SharedBytes>,
    ) -> Option<Self> {
        let mut b = Self::empty(metric, dim, seed, centroid)?;
        let words = len.checked_mul(b.words())?;
        if lines.len() != words.div_ceil(8) * 64 || terms.len() != len.checked_mul(16)? {
            return None;
        }
        b.codes = Words {
            lines: Slab::of(owner, lines),
            len: words,
        };
        b.terms = Slab::of(owner, terms);
        Some(b)
    }

    /// Bytes used in place from shared bytes.
    pub(crate) fn mapped_bytes(&self) -> usize {
        self.codes.lines.mapped_bytes() + self.terms.mapped_bytes()
    }
}

/// One cache line of code words.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct Line([u64; 8]);

/// `u64` words in cache-line aligned storage, so that a 512-bit code is one line and smaller
/// codes (a power of two of words) never straddle two.
#[derive(Debug, Clone, Default)]
struct Words {
    lines: Slab<Line>,
    len: usize,
}

impl Words {
    fn zeroed(len: usize) -> Self {
        Words {
            lines: Slab::Owned(vec![Line::default(); len.div_ceil(8)]),
            len,
        }
    }

    fn as_slice(&self) -> &[u64] {
        &bytemuck::cast_slice(self.lines.as_slice())[..self.len]
    }

    fn as_mut_slice(&mut self) -> &mut [u64] {
        &mut bytemuck::cast_slice_mut(self.lines.owned())[..self.len]
    }

    fn extend(&mut self, words: &[u64]) {
        let len = self.len + words.len();
        let lines = self.lines.owned();
        lines.resize(len.div_ceil(8), Line::default());
        bytemuck::cast_slice_mut(lines)[self.len..len].copy_from_slice(words);
        self.len = len;
    }

    fn memory_bytes(&self) -> usize {
        self.lines.heap_bytes()
    }
}

/// In-place unnormalised Walsh–Hadamard transform (`x.len()` a power of two).
fn hadamard(x: &mut [f32]) {
    let n = x.len();
    let mut h = 1;
    while h < n {
        for block in x.chunks_exact_mut(2 * h) {
            let (a, b) = block.split_at_mut(h);
            for (a, b) in a.iter_mut().zip(b) {
                let (s, d) = (*a + *b, *a - *b);
                *a = s;
                *b = d;
            }
        }
        h *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::{prop_assert, prop_assert_eq, proptest, ProptestConfig};

    fn store(metric: Metric, dim: usize, n: usize, seed: u64) -> DenseVectors {
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut v = DenseVectors::new(metric, dim).unwrap();
        for i in 0..n {
            // Clustered: eight centres, so the centroid is not the origin.
            let centre = (i % 8) as f32;
            let row: Vec<f32> = (0..dim)
                .map(|d| centre * ((d % 5) as f32 - 2.0) * 0.3 + rng.gen_range(-1.0f32..1.0))
                .collect();
            v.push(&row).unwrap();
        }
        v
    }

    #[test]
    fn rotation_is_orthogonal() {
        let codes = BinaryCodes::empty(Metric::L2, 100, 7, vec![0.0; 100]).unwrap();
        assert_eq!(codes.bits(), 128);
        let mut rng = SmallRng::seed_from_u64(1);
        let a: Vec<f32> = (0..128).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..128).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let (mut ra, mut rb) = (a.clone(), b.clone());
        codes.rotate(&mut ra);
        codes.rotate(&mut rb);
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        assert!((dot(&a, &b) - dot(&ra, &rb)).abs() < 1e-4);
        assert!((dot(&a, &a) - dot(&ra, &ra)).abs() < 1e-4);
    }

    #[test]
    fn unsupported_metrics_and_dimensions_get_no_codes() {
        assert!(!BinaryCodes::supports(Metric::L1, 128));
        assert!(!BinaryCodes::supports(Metric::L2, 32));
        assert!(BinaryCodes::fit(&store(Metric::L1, 64, 10, 1), 1).is_none());
        assert!(BinaryCodes::fit(&store(Metric::Cosine, 64, 10, 1), 1).is_some());
    }

    /// The estimator against exact distances: the error stays inside the bound for nearly all
    /// pairs (it is a ~1.9σ bound: a few percent may fall outside), and the mean error is
    /// near zero (unbiased).
    #[test]
    fn estimates_fall_within_their_bounds() {
        for metric in [Metric::L2, Metric::Cosine, Metric::Dot] {
            for dim in [64, 100, 384] {
                let v = store(metric, dim, 400, dim as u64);
                let codes = BinaryCodes::fit(&v, DEFAULT_ROTATION_SEED).unwrap();
                let (mut outside, mut total, mut bias, mut scale) = (0, 0, 0f64, 0f64);
                for qi in 0..20u32 {
                    let q = v.get(qi * 7).unwrap().to_vec();
                    let bq = codes.prepare(&q);
                    let dq = v.prepare(&q);
                    for id in 0..v.len() as u32 {
                        let (est, err) = codes.estimate(&bq, id);
                        let exact = v.distance(&dq, id);
                        total += 1;
                        if (est - exact).abs() > err + 1e-3 * exact.abs().max(1.0) {
                            outside += 1;
                        }
                        bias += f64::from(est - exact);
                        scale += f64::from(err);
                    }
                }
                let share = f64::from(outside) / f64::from(total);
                assert!(share < 0.08, "{metric} {dim}: {share} outside the bound");
                assert!(
                    (bias / f64::from(total)).abs() < 0.1 * scale / f64::from(total),
                    "{metric} {dim}: biased by {}",
                    bias / f64::from(total)
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]

        /// Search with rescoring against an exact scan of the same ids: recall of the top 10
        /// at least 0.9 per query (the bound is probabilistic), and every returned distance is
        /// the exact one.
        #[test]
        fn search_finds_the_exact_neighbours(seed in 0u64..1000, keep in 2u32..6) {
            let metric = [Metric::L2, Metric::Cosine, Metric::Dot][(seed % 3) as usize];
            let v = store(metric, 96, 600, seed);
            let codes = BinaryCodes::fit(&v, seed).unwrap();
            let q: Vec<f32> = v.get((seed % 600) as u32).unwrap().iter().map(|x| x + 0.05).collect();
            let q = v.preprocess(&q).unwrap();
            let (bq, dq) = (codes.prepare(&q), v.prepare(&q));
            let ids = || (0..600u32).filter(|i| i % keep == 0);
            let (found, rescored) = codes.search(&bq, &dq, &v, ids(), 10, 0);
            let mut exact: Vec<Neighbor> = ids()
                .map(|id| Neighbor { id, distance: v.distance(&dq, id) })
                .collect();
            exact.sort_unstable();
            exact.truncate(10);
            let hits = found.iter().filter(|n| exact.iter().any(|e| e.id == n.id)).count();
            prop_assert!(hits >= 9, "{hits}/10 (rescored {rescored})");
            for n in &found {
                prop_assert!(n.id % keep == 0);
                prop_assert_eq!(n.distance, v.distance(&dq, n.id));
            }
            prop_assert!(rescored < ids().count(), "pruned nothing");
        }
    }

    #[test]
    fn min_rescore_rescores_at_least_that_many() {
        let v = store(Metric::L2, 128, 300, 3);
        let codes = BinaryCodes::fit(&v, 3).unwrap();
        let q = v.get(5).unwrap().to_vec();
        let (bq, dq) = (codes.prepare(&q), v.prepare(&q));
        let (_, few) = codes.search(&bq, &dq, &v, 0..300, 5, 0);
        let (found, many) = codes.search(&bq, &dq, &v, 0..300, 5, 120);
        assert!(many >= 120 && many >= few);
        assert_eq!(found[0].id, 5);
        // A vector equal to the centroid is estimated exactly.
        let mut c = BinaryCodes::empty(Metric::L2, 64, 1, vec![0.5; 64]).unwrap();
        c.push(&[0.5; 64]);
        let (d, e) = c.estimate(&c.prepare(&[1.5; 64]), 0);
        assert!((d - 64.0).abs() < 1e-3 && e == 0.0);
    }
}
