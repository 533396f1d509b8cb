//! 8-bit scalar quantisation (SQ8): a compact copy of the vectors used to *walk* a graph, with
//! exact f32 rescoring of the final candidates by the caller.
//!
//! Every component is mapped to a code `q ∈ [-128, 127]` representing `c + s·q`, with one
//! offset `c` and step `s` for the whole store (not per dimension), so that
//! - L2²(x, y) = s² · Σ(qx − qy)², and
//! - x·y = n·c² + s·c·(Σqx + Σqy) + s²·Σ qx·qy (per-vector code sums are precomputed),
//!
//! and both come out of exact integer kernels. A query is encoded as `u = q + 128` (u8), so that
//! `Σ qx·qy = Σ ux·qy − 128·Σqy` is one u8 × i8 product (AVX-512 VNNI's `vpdpbusd`, 64 pairs an
//! instruction), and `Σ(qx − qy)² = Σqx² + Σqy² − 2·Σ qx·qy` with per-vector `Σq²` stored. The range is fitted to the 0.05%–99.95% quantiles
//! of the data so that a few outliers do not waste the 256 levels; values outside are clipped,
//! which only perturbs the walk — results are rescored in f32. Codes are a quarter of the f32
//! bytes, so the memory-bound graph walk reads four times less.

use bytemuck::{Pod, Zeroable};
use sextant_core::{KernelKind, Metric};

use super::{prefetch_read, DenseVectors, SharedBytes, Slab, VectorStorage};
use crate::distance::{kernels, I8Kernel, U8I8Kernel};

/// One cache line of codes.
#[repr(C, align(64))]
#[derive(Debug, Clone, Copy, Pod, Zeroable)]
struct CodeLine([i8; CODE_LANES]);

const CODE_LANES: usize = 64;

/// Quantile of the data mapped to the lowest and (1 − it) to the highest code.
const CLIP_QUANTILE: f64 = 0.0005;
/// At most this many values are sampled to fit the range.
const RANGE_SAMPLE: usize = 2_000_000;

/// SQ8 codes of a [`DenseVectors`] store (L2, cosine and dot metrics).
#[derive(Clone)]
pub struct Sq8Vectors {
    kind: KernelKind,
    dim: usize,
    lines_per_vector: usize,
    /// Value of code 0.
    offset: f32,
    /// Value step between consecutive codes.
    step: f32,
    codes: Slab<CodeLine>,
    /// Per vector: `[Σq, Σq²]`, side by side so that a distance reads one cache line beside
    /// the codes (two arrays cost two misses: 22% of a filtered GloVe walk's samples).
    stats: Slab<[i32; 2]>,
    /// Σ qa·qb of two stored vectors.
    dot_i8: I8Kernel,
    /// Σ ua·qb of a query (as u8) and a stored vector.
    dot_u8i8: U8I8Kernel,
}

impl std::fmt::Debug for Sq8Vectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sq8Vectors")
            .field("dim", &self.dim)
            .field("len", &self.stats.len())
            .field("offset", &self.offset)
            .field("step", &self.step)
            .finish()
    }
}

/// A query encoded with the store's range, as `u = q + 128`. Padding lanes are 128 in `u` and
/// meet zero codes in stored vectors, so they add nothing once `128·Σq` is subtracted.
#[derive(Debug, Clone)]
pub struct Sq8Query {
    unsigned: Vec<CodeLine>,
    sum: i32,
    square: i32,
}

impl Sq8Vectors {
    /// Whether SQ8 supports `metric` (L1 has no exact integer form here).
    pub fn supports(metric: Metric) -> bool {
        metric.quantizable()
    }

    /// Fits a range to `vectors` and encodes them all. `None` for unsupported metrics.
    pub fn fit(vectors: &DenseVectors) -> Option<Self> {
        let (lo, hi) = quantile_range(vectors);
        Self::with_range(vectors, lo, hi)
    }

    /// Encodes `vectors` with the range `[lo, hi]` (e.g. restored from a file).
    pub fn with_range(vectors: &DenseVectors, lo: f32, hi: f32) -> Option<Self> {
        if !(Self::supports(vectors.metric()) && lo.is_finite() && hi.is_finite()) {
            return None;
        }
        let step = if hi > lo { (hi - lo) / 255.0 } else { 1.0 };
        let lines_per_vector = vectors.dim().div_ceil(CODE_LANES);
        let k = kernels();
        let mut s = Sq8Vectors {
            kind: vectors.metric().kernel(),
            dim: vectors.dim(),
            lines_per_vector,
            offset: lo + 128.0 * step,
            step,
            codes: Vec::with_capacity(vectors.len() * lines_per_vector).into(),
            stats: Vec::with_capacity(vectors.len()).into(),
            dot_i8: k.dot_i8,
            dot_u8i8: k.dot_u8i8,
        };
        super::advise_huge_pages(s.codes.owned());
        super::advise_huge_pages(s.stats.owned());
        for id in 0..vectors.len() as u32 {
            s.push(vectors.get(id).expect("id < len"));
        }
        Some(s)
    }

    /// The codes as bytes, for persisting beside the range (an index whose f32 vectors live
    /// in a vectors file stores them so that opening it never reads the vectors).
    pub(crate) fn code_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self.codes.as_slice())
    }

    /// Each vector's `[Σq, Σq²]` as bytes, for persisting beside the codes.
    pub(crate) fn stats_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(self.stats.as_slice())
    }

    /// Bytes used in place from shared bytes.
    pub(crate) fn mapped_bytes(&self) -> usize {
        self.codes.mapped_bytes() + self.stats.mapped_bytes()
    }

    /// Restores a store of `len` vectors from its range, [`Sq8Vectors::code_bytes`] and
    /// [`Sq8Vectors::stats_bytes`], used in place where they lie aligned inside `owner`;
    /// `None` when the sizes disagree or the metric or range is unsupported.
    pub(crate) fn from_parts(
        vectors: &DenseVectors,
        (lo, hi): (f32, f32),
        codes: &[u8],
        stats: &[u8],
        owner: Option<&SharedBytes>,
    ) -> Option<Self> {
        let mut s = Self::with_range(
            &DenseVectors::new(vectors.metric(), vectors.dim()).ok()?,
            lo,
            hi,
        )?;
        let n = vectors.len();
        if codes.len() != n * s.lines_per_vector * CODE_LANES || stats.len() != n * 8 {
            return None;
        }
        s.codes = Slab::of(owner, codes);
        s.stats = Slab::of(owner, stats);
        Some(s)
    }

    /// Restores a store from its range and [`Sq8Vectors::code_bytes`] for `len` vectors of
    /// `vectors`' metric and dimension; `None` when the sizes disagree or the metric or range
    /// is unsupported.
    pub(crate) fn from_code_bytes(
        vectors: &DenseVectors,
        lo: f32,
        hi: f32,
        bytes: &[u8],
    ) -> Option<Self> {
        let mut s = Self::with_range(
            &DenseVectors::new(vectors.metric(), vectors.dim()).ok()?,
            lo,
            hi,
        )?;
        if bytes.len() != vectors.len() * s.lines_per_vector * CODE_LANES {
            return None;
        }
        s.codes = Slab::of(None, bytes);
        s.stats = (0..vectors.len())
            .map(|id| {
                let codes = s.codes_of(id);
                [
                    codes.iter().map(|&q| i32::from(q)).sum::<i32>(),
                    codes
                        .iter()
                        .map(|&q| i32::from(q) * i32::from(q))
                        .sum::<i32>(),
                ]
            })
            .collect::<Vec<_>>()
            .into();
        Some(s)
    }

    /// The fitted range `[lo, hi]`, for persisting.
    pub fn range(&self) -> (f32, f32) {
        let lo = self.offset - 128.0 * self.step;
        (lo, lo + 255.0 * self.step)
    }

    /// Codes of `v` (padded with zeros to whole lines), Σq and Σq².
    fn encode(&self, v: &[f32]) -> (Vec<CodeLine>, i32, i32) {
        // Adding and subtracting 1.5·2^23 rounds to nearest in two plain additions (libm's
        // `roundf` is a call on baseline x86-64); exact for the clamped range.
        const ROUND: f32 = 12_582_912.0;
        let mut lines = vec![CodeLine([0; CODE_LANES]); self.lines_per_vector];
        let flat: &mut [i8] = bytemuck::cast_slice_mut(&mut lines);
        let (mut sum, mut square) = (0i32, 0i32);
        let inv = 1.0 / self.step;
        // The integer is read from the bits of `scaled + ROUND` (one unit per ulp there), so
        // the loop has no float-to-int conversion and vectorises: a 784-d query encoded in 13%
        // of a Fashion-MNIST search before.
        let base = ROUND.to_bits() as i32;
        for (code, &x) in flat.iter_mut().zip(v) {
            let scaled = ((x - self.offset) * inv).clamp(-128.0, 127.0);
            let q = (scaled + ROUND).to_bits() as i32 - base;
            *code = q as i8;
            sum += q;
            square += q * q;
        }
        (lines, sum, square)
    }

    /// Encodes and appends one (preprocessed) vector; ids stay aligned with the f32 store.
    pub fn push(&mut self, v: &[f32]) {
        let (lines, sum, square) = self.encode(v);
        self.codes.owned().extend_from_slice(&lines);
        self.stats.owned().push([sum, square]);
    }

    #[inline(always)]
    fn codes_of(&self, id: usize) -> &[i8] {
        let start = id * self.lines_per_vector;
        bytemuck::cast_slice(&self.codes.as_slice()[start..start + self.lines_per_vector])
    }

    #[inline(always)]
    fn stats(&self, id: usize) -> (i32, i32) {
        let [sum, square] = self.stats.as_slice()[id];
        (sum, square)
    }

    /// Internal distance from `Σ qa·qb` and the per-vector sums and squares of both sides.
    #[inline(always)]
    fn combine(&self, dot: i32, (sum_a, sq_a): (i32, i32), (sum_b, sq_b): (i32, i32)) -> f32 {
        let s = self.step;
        match self.kind {
            KernelKind::L2Squared => s * s * (sq_a + sq_b - 2 * dot) as f32,
            // Negated inner product, from the identity in the module docs.
            _ => {
                let (n, c) = (self.dim as f32, self.offset);
                -(n * c * c + s * c * (sum_a + sum_b) as f32 + s * s * dot as f32)
            }
        }
    }
}

impl VectorStorage for Sq8Vectors {
    type Query = Sq8Query;

    fn len(&self) -> usize {
        self.stats.len()
    }

    fn prepare(&self, query: &[f32]) -> Sq8Query {
        let (codes, sum, square) = self.encode(query);
        Sq8Query {
            unsigned: to_unsigned(&codes),
            sum,
            square,
        }
    }

    fn prepare_stored(&self, id: u32) -> Sq8Query {
        let start = id as usize * self.lines_per_vector;
        let (sum, square) = self.stats(id as usize);
        let unsigned = to_unsigned(&self.codes.as_slice()[start..start + self.lines_per_vector]);
        Sq8Query {
            unsigned,
            sum,
            square,
        }
    }

    #[inline(always)]
    fn distance(&self, query: &Sq8Query, id: u32) -> f32 {
        let id = id as usize;
        let (sum, square) = self.stats(id);
        let raw = (self.dot_u8i8)(bytemuck::cast_slice(&query.unsigned), self.codes_of(id));
        self.combine(raw - 128 * sum, (query.sum, query.square), (sum, square))
    }

    fn distance_between(&self, a: u32, b: u32) -> f32 {
        let (a, b) = (a as usize, b as usize);
        let dot = (self.dot_i8)(self.codes_of(a), self.codes_of(b));
        self.combine(dot, self.stats(a), self.stats(b))
    }

    #[inline(always)]
    fn prefetch(&self, id: u32) {
        let start = id as usize * self.lines_per_vector;
        let lines = self.lines_per_vector.min(4);
        for line in self
            .codes
            .as_slice()
            .get(start..start + lines)
            .into_iter()
            .flatten()
        {
            prefetch_read(std::ptr::from_ref(line).cast());
        }
        if let Some(stats) = self.stats.as_slice().get(id as usize) {
            prefetch_read(std::ptr::from_ref(stats).cast());
        }
    }

    fn memory_bytes(&self) -> usize {
        self.codes.heap_bytes() + self.stats.heap_bytes()
    }
}

/// `q + 128` of every code: the unsigned form a query takes for the u8 × i8 kernel.
fn to_unsigned(codes: &[CodeLine]) -> Vec<CodeLine> {
    codes
        .iter()
        .map(|line| CodeLine(line.0.map(|q| (i16::from(q) + 128) as u8 as i8)))
        .collect()
}

/// The `CLIP_QUANTILE` and `1 − CLIP_QUANTILE` quantiles of a strided sample of all components.
fn quantile_range(vectors: &DenseVectors) -> (f32, f32) {
    let (n, dim) = (vectors.len(), vectors.dim());
    if n == 0 {
        return (0.0, 0.0);
    }
    let stride = (n * dim).div_ceil(RANGE_SAMPLE).max(1);
    let mut sample: Vec<f32> = (0..n as u32)
        .step_by(stride)
        .flat_map(|id| vectors.get(id).expect("id < len").iter().copied())
        .collect();
    let last = sample.len() - 1;
    let lo_at = ((last as f64) * CLIP_QUANTILE).round() as usize;
    let hi_at = ((last as f64) * (1.0 - CLIP_QUANTILE)).round() as usize;
    let lo = *sample.select_nth_unstable_by(lo_at, f32::total_cmp).1;
    let hi = *sample.select_nth_unstable_by(hi_at, f32::total_cmp).1;
    (lo, hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(metric: Metric, rows: &[&[f32]]) -> DenseVectors {
        let mut s = DenseVectors::new(metric, rows[0].len()).unwrap();
        for r in rows {
            s.push(r).unwrap();
        }
        s
    }

    #[test]
    fn integer_data_in_range_is_exact_for_l2() {
        // 0..=255 maps to codes exactly (offset 128, step 1).
        let v = store(
            Metric::L2,
            &[&[0.0, 255.0, 17.0], &[3.0, 250.0, 17.0], &[255.0, 0.0, 1.0]],
        );
        let q = Sq8Vectors::with_range(&v, 0.0, 255.0).unwrap();
        for a in 0..3 {
            for b in 0..3 {
                assert_eq!(
                    q.distance_between(a, b),
                    v.distance_between(a, b),
                    "{a} {b}"
                );
            }
        }
    }

    #[test]
    fn dot_and_cosine_approximate_f32_closely() {
        for metric in [Metric::Dot, Metric::Cosine] {
            let rows: Vec<Vec<f32>> = (0..50)
                .map(|i| {
                    (0..40)
                        .map(|d| ((i * 7 + d * 13) % 23) as f32 / 23.0 - 0.4)
                        .collect()
                })
                .collect();
            let refs: Vec<&[f32]> = rows.iter().map(|r| r.as_slice()).collect();
            let v = store(metric, &refs);
            let q = Sq8Vectors::fit(&v).unwrap();
            let query = v.get(3).unwrap().to_vec();
            let (pf, pq) = (v.prepare(&query), q.prepare(&query));
            for id in 0..50 {
                let (exact, approx) = (v.distance(&pf, id), q.distance(&pq, id));
                assert!(
                    (exact - approx).abs() < 0.02 * (1.0 + exact.abs()),
                    "{metric} {id}: {exact} vs {approx}"
                );
            }
        }
    }

    #[test]
    fn l1_is_not_supported() {
        let v = store(Metric::L1, &[&[1.0, 2.0]]);
        assert!(Sq8Vectors::fit(&v).is_none());
    }
}
