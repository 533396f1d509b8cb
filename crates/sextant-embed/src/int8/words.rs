//! 16-bit integer products (`vpdpwssd`) for the projections the int8 mode cannot quantise to
//! bytes: the feed-forward down projection (and SPLADE's head) on CPUs with AVX-512 VNNI but
//! no AMX, where bf16 is no faster than f32.
//!
//! Weights are quantised symmetrically per output column and activations per row to at most
//! ±[`MAX_RANGE`] (11 bits), small enough that no sum of `k` products can overflow i32
//! ([`word_range`]); 11 bits keep vectors as close to f32 as f32 itself is to PyTorch on the
//! parity texts (the byte quantisation of this projection costs 0.002 of cosine, see
//! `BertModel::with_int8`). `vpdpwssd` does 32 multiply-adds per instruction, twice an f32 FMA.

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

use super::{vnni, RowQuant, PANEL};
use crate::bf16::padded_pairs;

/// The largest quantised magnitude of weights and activations.
pub(crate) const MAX_RANGE: f32 = 1023.0;
/// Rows per parallel task.
const ROWS_PER_TASK: usize = 96;

/// The range for inner dimension `k`: [`MAX_RANGE`], lowered so that `k` products of two
/// values of that magnitude sum below 2³¹.
pub(crate) fn word_range(k: usize) -> f32 {
    ((f64::from(i32::MAX) / k.max(1) as f64).sqrt().floor() as f32).min(MAX_RANGE)
}

/// Whether this CPU runs the word kernel.
pub(crate) fn available() -> bool {
    vnni::available()
}

/// A `[k, n]` weight matrix quantised to words per column, in VNNI panels of pairs.
#[derive(Debug, Clone)]
pub(crate) struct PackedWords {
    k: usize,
    n: usize,
    range: f32,
    scale: Vec<f32>,
    /// Zeros: the shared dequantisation takes a column sum for zero points, and words have none.
    colsum: Vec<i32>,
    /// Panels of [`PANEL`] columns; inside one, per pair of rows `(2q, 2q + 1)` one `u32` per
    /// column, row `2q` in the low half (zero rows pad k to `padded_pairs`).
    data: Vec<u32>,
}

impl PackedWords {
    /// Quantises the row-major `[k, n]` f32 matrix `w` (the CPU must run the kernel).
    pub(crate) fn pack(w: &[f32], k: usize, n: usize) -> candle_core::Result<Self> {
        if w.len() != k * n {
            candle_core::bail!("weights of {} elements are not {k} × {n}", w.len());
        }
        if !available() {
            candle_core::bail!("the 16-bit VNNI kernel does not run on this CPU");
        }
        let range = word_range(k);
        let mut scale = vec![0f32; n];
        for row in w.chunks_exact(n) {
            for (s, &v) in scale.iter_mut().zip(row) {
                *s = s.max(v.abs());
            }
        }
        for s in &mut scale {
            *s = if *s > 0.0 { *s / range } else { 1.0 };
        }
        let q = |r: usize, c: usize| -> u32 {
            if r >= k {
                return 0;
            }
            u32::from(to_word(w[r * n + c] / scale[c], range) as u16)
        };
        let pairs = padded_pairs(k);
        let panels = n.div_ceil(PANEL);
        let mut data = vec![0u32; panels * pairs * PANEL];
        for p in 0..panels {
            for g in 0..pairs {
                let dst = &mut data[(p * pairs + g) * PANEL..][..PANEL];
                for (c, slot) in dst.iter_mut().enumerate() {
                    let col = p * PANEL + c;
                    if col < n {
                        *slot = q(2 * g, col) | (q(2 * g + 1, col) << 16);
                    }
                }
            }
        }
        Ok(PackedWords {
            k,
            n,
            range,
            scale,
            colsum: vec![0; n],
            data,
        })
    }

    /// `x · W` for `x` `[rows, k]` f32: a new `[rows, n]` f32 tensor.
    pub(crate) fn matmul(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.apply_op1_no_bwd(self)
    }

    fn block(&self, a: &[f32], c: &mut [f32]) {
        let (k, n) = (self.k, self.n);
        let m = a.len() / k;
        let pairs = padded_pairs(k);
        let mut rows = vec![0u32; m * pairs];
        let mut words = vec![0i16; k];
        let mut params = Vec::with_capacity(m);
        for (src, row) in a.chunks_exact(k).zip(rows.chunks_exact_mut(pairs)) {
            params.push(quantize_words(src, self.range, &mut words));
            for (dst, w) in row.iter_mut().zip(words.chunks(2)) {
                let hi = w.get(1).copied().unwrap_or(0);
                *dst = u32::from(w[0] as u16) | (u32::from(hi as u16) << 16);
            }
        }
        vnni::matmul_words(
            &rows,
            pairs,
            &self.data,
            &params,
            &self.scale,
            &self.colsum,
            c,
            n,
        );
    }
}

/// `v` rounded half away from zero after clamping to `±range` (no libm call).
fn to_word(v: f32, range: f32) -> i16 {
    let v = v.clamp(-range, range);
    (v + 0.5f32.copysign(v)) as i16
}

/// Quantises a row symmetrically to `±range`: `x ≈ scale · q`.
pub(crate) fn quantize_words(x: &[f32], range: f32, out: &mut [i16]) -> RowQuant {
    let max = x.iter().fold(0f32, |m, &v| m.max(v.abs()));
    if !(max > 0.0 && max.is_finite()) {
        out.fill(0);
        return RowQuant {
            scale: 1.0,
            zero: 0,
        };
    }
    let scale = max / range;
    let inv = 1.0 / scale;
    for (o, &v) in out.iter_mut().zip(x) {
        *o = to_word(v * inv, range);
    }
    RowQuant { scale, zero: 0 }
}

impl CustomOp1 for PackedWords {
    fn name(&self) -> &'static str {
        "sextant-int16-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = match (s, l.contiguous_offsets()) {
            (CpuStorage::F32(v), Some((a, b))) => &v[a..b],
            _ => candle_core::bail!("{}: expected a contiguous f32 tensor", self.name()),
        };
        let k = self.k;
        if k == 0 || !x.len().is_multiple_of(k) {
            candle_core::bail!("{}: {} inputs are not rows of {k}", self.name(), x.len());
        }
        let (m, n) = (x.len() / k, self.n);
        let mut c = vec![0f32; m * n];
        if m > 0 && n > 0 {
            c.par_chunks_mut(ROWS_PER_TASK * n)
                .zip(x.par_chunks(ROWS_PER_TASK * k))
                .for_each(|(c, a)| self.block(a, c));
        }
        Ok((CpuStorage::F32(c), Shape::from((m, n))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rand(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The scalar definition: the same quantisation, exact i64 sums, f64 scaling.
    fn reference(a: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let range = word_range(k);
        let mut scale = vec![0f32; n];
        for r in 0..k {
            for j in 0..n {
                scale[j] = scale[j].max(w[r * n + j].abs());
            }
        }
        let scale: Vec<f32> = scale
            .iter()
            .map(|&s| if s > 0.0 { s / range } else { 1.0 })
            .collect();
        let mut out = vec![0f32; m * n];
        let mut q = vec![0i16; k];
        for i in 0..m {
            let p = quantize_words(&a[i * k..(i + 1) * k], range, &mut q);
            for j in 0..n {
                let s: i64 = (0..k)
                    .map(|r| i64::from(q[r]) * i64::from(to_word(w[r * n + j] / scale[j], range)))
                    .sum();
                out[i * n + j] = (s as f64 * f64::from(p.scale) * f64::from(scale[j])) as f32;
            }
        }
        out
    }

    #[test]
    fn range_keeps_sums_inside_i32() {
        for k in [1, 384, 1536, 2048, 4096, 30_522] {
            let r = f64::from(word_range(k));
            assert!(r * r * k as f64 <= f64::from(i32::MAX), "k = {k}");
        }
        assert_eq!(word_range(1536), MAX_RANGE);
        assert_eq!(to_word(2.5, 10.0), 3);
        assert_eq!(to_word(-2.5, 10.0), -3);
        assert_eq!(to_word(-99.0, 10.0), -10);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// The VNNI word kernel (where this CPU has it) against the scalar reference, and the
        /// product within 11-bit rounding of the exact f32 one.
        #[test]
        fn word_kernel_matches_the_reference(
            m in 1usize..70,
            k in 1usize..300,
            n in 1usize..140,
            seed in 0u64..1_000_000,
        ) {
            if !available() {
                return Ok(());
            }
            let a = rand(m * k, seed);
            let w = rand(k * n, seed ^ 0x55);
            let want = reference(&a, &w, m, k, n);
            let packed = PackedWords::pack(&w, k, n).unwrap();
            let x = Tensor::from_vec(a.clone(), (m, k), &candle_core::Device::Cpu).unwrap();
            let got = packed.matmul(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
            for i in 0..m {
                for j in 0..n {
                    let r = want[i * n + j];
                    proptest::prop_assert!(
                        (got[i * n + j] - r).abs() <= 1e-5 * r.abs() + 1e-6,
                        "[{i}, {j}]: {} vs {r}", got[i * n + j]
                    );
                    let exact: f32 = (0..k).map(|l| a[i * k + l] * w[l * n + j]).sum();
                    proptest::prop_assert!(
                        (exact - r).abs() <= 2e-3 * (k as f32).sqrt() + 1e-4,
                        "[{i}, {j}]: {r} vs exact {exact}"
                    );
                }
            }
        }
    }
}
