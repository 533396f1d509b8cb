//! Fused f32 kernels for the forward pass, applied in place on the output of a matrix product.
//!
//! candle runs every elementwise step as its own pass over memory with a freshly allocated
//! output, and its exact GELU and softmax call scalar `libm` functions per element: on
//! all-MiniLM-L6-v2 the GELU alone took about a sixth of the forward pass. Each kernel here
//! makes one pass over a matrix product's output, in place:
//!
//! - [`bias_act`]: `y ← act(y + b)` (projection bias and feed-forward activation);
//! - [`add_norm`]: `y ← LayerNorm(y + b + residual)` (the two "Add & Norm" steps of a layer);
//! - [`masked_softmax`]: `s ← softmax(scale · s + mask_bias)` over the keys.
//!
//! The maths is plain Rust written to auto-vectorise (lane-parallel reductions, branch-free
//! polynomial `exp` and `erf`) and compiled for AVX2/AVX-512 through `pulp`'s runtime dispatch,
//! so they need no `unsafe` (only `bf16/avx512.rs` has any). Rows are spread over the current
//! rayon pool. The approximations are accurate to a few f32 ulps (`exp`) and 2e-7 absolute (`erf`); tests
//! compare every kernel with the unfused candle operations.

use std::sync::LazyLock;

use candle_core::{CpuStorage, InplaceOp2, Layout, Tensor};
use rayon::prelude::*;

use crate::bert::Activation;

/// Instruction set for the kernels, detected once.
static ARCH: LazyLock<pulp::Arch> = LazyLock::new(pulp::Arch::new);

/// Elements per rayon task (about 64 KiB of f32): fewer tasks than rows for short rows.
const TASK_ELEMS: usize = 16 * 1024;
/// Lanes of the partial sums and maxima (one AVX-512 register of f32).
const LANES: usize = 16;

/// `y ← act(y + bias)` on a contiguous f32 `y` whose last dimension is `bias.len()`.
pub(crate) fn bias_act(
    y: &Tensor,
    bias: &Tensor,
    act: Option<Activation>,
) -> candle_core::Result<()> {
    y.inplace_op2(bias, &BiasAct { act })
}

/// `y ← LayerNorm(y + bias + residual) · gamma + beta` over the last dimension, in place.
pub(crate) fn add_norm(
    y: &Tensor,
    residual: &Tensor,
    params: &AddNormParams,
) -> candle_core::Result<()> {
    y.inplace_op2(residual, params)
}

/// `scores ← softmax(scale · scores + mask_bias)` over the last dimension of contiguous
/// `[batch, heads, queries, keys]` scores, with `mask_bias` `[batch, keys]` (f32, contiguous).
pub(crate) fn masked_softmax(
    scores: &Tensor,
    mask_bias: &Tensor,
    scale: f32,
) -> candle_core::Result<()> {
    scores.inplace_op2(mask_bias, &MaskedSoftmax { scale })
}

/// The slice of a contiguous f32 tensor's storage.
fn f32_slice<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("{what}: expected a contiguous f32 tensor"),
    }
}

fn f32_slice_mut<'a>(
    s: &'a mut CpuStorage,
    l: &Layout,
    what: &str,
) -> candle_core::Result<&'a mut [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&mut v[a..b]),
        _ => candle_core::bail!("{what}: expected a contiguous f32 tensor"),
    }
}

/// Rows per task for rows of `width` elements.
fn rows_per_task(width: usize) -> usize {
    (TASK_ELEMS / width.max(1)).max(1)
}

struct BiasAct {
    act: Option<Activation>,
}

impl InplaceOp2 for BiasAct {
    fn name(&self) -> &'static str {
        "sextant-bias-act"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let bias = f32_slice(s2, l2, self.name())?;
        let y = f32_slice_mut(s1, l1, self.name())?;
        let n = bias.len();
        if n == 0 || !y.len().is_multiple_of(n) {
            candle_core::bail!("bias of {n} does not divide {} elements", y.len());
        }
        let act = self.act;
        y.par_chunks_mut(n * rows_per_task(n))
            .for_each(|rows| ARCH.dispatch(BiasActRows { rows, bias, act }));
        Ok(())
    }
}

// The loops below are `WithSimd` bodies with `#[inline(always)]`: pulp compiles them inside a
// function with the AVX2/AVX-512 target features. A closure handed to `dispatch` is not
// reliably inlined there (profiling showed SSE-only code), a forced-inline method is.

struct BiasActRows<'a> {
    rows: &'a mut [f32],
    bias: &'a [f32],
    act: Option<Activation>,
}

impl pulp::WithSimd for BiasActRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let bias = self.bias;
        for row in self.rows.chunks_exact_mut(bias.len()) {
            match self.act {
                None => {
                    for (v, b) in row.iter_mut().zip(bias) {
                        *v += b;
                    }
                }
                Some(Activation::Gelu) => {
                    for (v, b) in row.iter_mut().zip(bias) {
                        *v = gelu_erf(*v + b);
                    }
                }
                Some(Activation::GeluTanh) => {
                    for (v, b) in row.iter_mut().zip(bias) {
                        *v = gelu_tanh(*v + b);
                    }
                }
                Some(Activation::Relu) => {
                    for (v, b) in row.iter_mut().zip(bias) {
                        *v = (*v + b).max(0.0);
                    }
                }
            }
        }
    }
}

/// Bias, gain and offset of one "Add & Norm" step, copied out of their tensors at load time.
#[derive(Debug, Clone)]
pub(crate) struct AddNormParams {
    pub(crate) bias: Vec<f32>,
    pub(crate) gamma: Vec<f32>,
    pub(crate) beta: Vec<f32>,
    pub(crate) eps: f32,
}

impl InplaceOp2 for AddNormParams {
    fn name(&self) -> &'static str {
        "sextant-add-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let residual = f32_slice(s2, l2, self.name())?;
        let y = f32_slice_mut(s1, l1, self.name())?;
        let n = self.gamma.len();
        if n == 0 || y.len() != residual.len() || !y.len().is_multiple_of(n) {
            candle_core::bail!(
                "add-norm: {} vs {} elements, width {n}",
                y.len(),
                residual.len()
            );
        }
        let per = n * rows_per_task(n);
        y.par_chunks_mut(per)
            .zip(residual.par_chunks(per))
            .for_each(|(rows, residual)| {
                ARCH.dispatch(AddNormRows {
                    p: self,
                    rows,
                    residual,
                })
            });
        Ok(())
    }
}

struct AddNormRows<'a> {
    p: &'a AddNormParams,
    rows: &'a mut [f32],
    residual: &'a [f32],
}

impl pulp::WithSimd for AddNormRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let n = self.p.gamma.len();
        for (row, r) in self
            .rows
            .chunks_exact_mut(n)
            .zip(self.residual.chunks_exact(n))
        {
            self.p.row(row, r);
        }
    }
}

impl AddNormParams {
    #[inline(always)]
    fn row(&self, row: &mut [f32], residual: &[f32]) {
        for ((v, r), b) in row.iter_mut().zip(residual).zip(&self.bias) {
            *v += r + b;
        }
        let n = row.len() as f32;
        let mean = lane_sum(row) / n;
        let mut sq = [0f32; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for c in &mut chunks {
            for (acc, v) in sq.iter_mut().zip(c) {
                let d = v - mean;
                *acc += d * d;
            }
        }
        let tail: f32 = chunks
            .remainder()
            .iter()
            .map(|v| (v - mean) * (v - mean))
            .sum();
        let var = (sq.iter().sum::<f32>() + tail) / n;
        let inv = 1.0 / (var + self.eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(&self.gamma).zip(&self.beta) {
            *v = (*v - mean) * inv * g + b;
        }
    }
}

struct MaskedSoftmax {
    scale: f32,
}

impl InplaceOp2 for MaskedSoftmax {
    fn name(&self) -> &'static str {
        "sextant-masked-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        let dims = l1.shape().dims();
        let [b, _, _, keys] = dims else {
            candle_core::bail!("masked softmax: scores must be 4-d, got {dims:?}");
        };
        let (b, keys) = (*b, *keys);
        let mask = f32_slice(s2, l2, self.name())?;
        let scores = f32_slice_mut(s1, l1, self.name())?;
        if mask.len() != b * keys || keys == 0 {
            candle_core::bail!("masked softmax: mask of {} for {b} × {keys}", mask.len());
        }
        let per_item = scores.len() / b;
        let scale = self.scale;
        // One sequence's rows share its mask row.
        scores
            .par_chunks_mut(per_item)
            .zip(mask.par_chunks(keys))
            .for_each(|(item, mask)| {
                item.par_chunks_mut(keys * rows_per_task(keys))
                    .for_each(|rows| ARCH.dispatch(SoftmaxRows { rows, mask, scale }))
            });
        Ok(())
    }
}

struct SoftmaxRows<'a> {
    rows: &'a mut [f32],
    mask: &'a [f32],
    scale: f32,
}

impl pulp::WithSimd for SoftmaxRows<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        for row in self.rows.chunks_exact_mut(self.mask.len()) {
            softmax_row(row, self.mask, self.scale);
        }
    }
}

#[inline(always)]
fn softmax_row(row: &mut [f32], mask: &[f32], scale: f32) {
    for (v, m) in row.iter_mut().zip(mask) {
        *v = *v * scale + m;
    }
    let max = lane_max(row);
    for v in row.iter_mut() {
        *v = exp(*v - max);
    }
    let inv = 1.0 / lane_sum(row);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Sum with [`LANES`] independent accumulators (vectorises without reassociation licence).
#[inline(always)]
fn lane_sum(x: &[f32]) -> f32 {
    let mut acc = [0f32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

#[inline(always)]
fn lane_max(x: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a = a.max(*v);
        }
    }
    let tail = chunks
        .remainder()
        .iter()
        .fold(f32::NEG_INFINITY, |a, v| a.max(*v));
    acc.iter().fold(tail, |a, v| a.max(*v))
}

/// `eˣ` (Cephes `expf` polynomial, range reduction by ln 2, scale through the exponent bits);
/// exactly 0 below -87 (where f32 `exp` leaves the normal range), saturating above 88.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // 1.5 · 2²³: adding it rounds to an integer held in the low mantissa bits.
    const SHIFTER: f32 = 12_582_912.0;
    let xc = x.clamp(-87.0, 88.0);
    let t = xc * LOG2E + SHIFTER;
    let n = t - SHIFTER;
    let r = xc - n * LN2_HI - n * LN2_LO;
    let p = 1.987_569_1e-4_f32;
    let p = p * r + 1.398_199_9e-3;
    let p = p * r + 8.333_452e-3;
    let p = p * r + 4.166_579_6e-2;
    let p = p * r + 0.166_666_65;
    let p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    let scale = f32::from_bits(
        t.to_bits()
            .wrapping_sub(SHIFTER.to_bits())
            .wrapping_add(127)
            << 23,
    );
    if x < -87.0 {
        0.0
    } else {
        y * scale
    }
}

/// `erf(x)`: the rational approximation Eigen and XLA use for f32 (odd degree-13 numerator,
/// even degree-8 denominator on [-4, 4]; ±1 beyond, where f32 `erf` is ±1 anyway).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = -2.726_142_3e-10_f32;
    let p = p * x2 + 2.770_681_4e-8;
    let p = p * x2 - 2.101_024e-6;
    let p = p * x2 - 5.692_506_4e-5;
    let p = p * x2 - 7.349_906_3e-4;
    let p = p * x2 - 2.954_600_1e-3;
    let p = p * x2 - 1.609_603_3e-2;
    let q = -1.456_607_2e-5_f32;
    let q = q * x2 - 2.133_740_6e-4;
    let q = q * x2 - 1.682_827e-3;
    let q = q * x2 - 7.373_329_2e-3;
    let q = q * x2 - 1.426_474e-2;
    x * p / q
}

/// Exact GELU, `x · Φ(x) = ½x(1 + erf(x/√2))`.
#[inline(always)]
fn gelu_erf(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// GELU's tanh form, with `tanh(u) = 1 - 2/(e^{2u} + 1)`.
#[inline(always)]
fn gelu_tanh(x: f32) -> f32 {
    const C: f32 = 0.797_884_6; // √(2/π)
    let u = C * (x + 0.044_715 * x * x * x);
    let th = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
    0.5 * x * (1.0 + th)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, D};

    fn rand_tensor(shape: &[usize], seed: u64, spread: f32) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        let v: Vec<f32> = (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * spread
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    #[test]
    fn exp_matches_std() {
        let mut worst = 0f32;
        for i in -86_999..=87_999 {
            let x = i as f32 * 1e-3;
            let (got, want) = (exp(x), x.exp());
            let e = ((got - want) / want).abs();
            assert!(e < 4e-7, "exp({x}) = {got}, std says {want}");
            worst = worst.max(e);
        }
        assert!(worst < 4e-7, "relative error {worst}");
        // Flushed to zero below -87 (std's result there is < 2e-38).
        assert_eq!(exp(-87.5), 0.0);
        assert_eq!(exp(-1e4), 0.0);
        assert_eq!(exp(f32::NEG_INFINITY), 0.0);
    }

    #[test]
    fn erf_matches_libm() {
        let mut worst = 0f64;
        for i in -6_000..=6_000 {
            let x = i as f64 * 1e-3;
            worst = worst.max((erf(x as f32) as f64 - libm_erf(x)).abs());
        }
        assert!(worst < 5e-7, "absolute error {worst}");
    }

    fn libm_erf(x: f64) -> f64 {
        // A&S 7.1.26 is too coarse for a reference; integrate the series instead.
        let mut sum = 0.0;
        let mut term = x;
        let mut k = 0.0;
        if x.abs() > 3.5 {
            return x.signum() * (1.0 - erfc_tail(x.abs()));
        }
        while term.abs() > 1e-17 || k < 3.0 {
            sum += term / (2.0 * k + 1.0);
            k += 1.0;
            term *= -x * x / k;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    fn erfc_tail(x: f64) -> f64 {
        // Asymptotic expansion, accurate to < 1e-9 for x > 3.5.
        let mut s = 1.0;
        let mut t = 1.0;
        for k in 1..6 {
            t *= -((2 * k - 1) as f64) / (2.0 * x * x);
            s += t;
        }
        (-x * x).exp() / (x * std::f64::consts::PI.sqrt()) * s
    }

    #[test]
    fn bias_act_matches_candle() {
        let y = rand_tensor(&[37, 96], 1, 4.0);
        let b = rand_tensor(&[96], 2, 1.0);
        let yb = y.broadcast_add(&b).unwrap();
        for act in [
            None,
            Some(Activation::Gelu),
            Some(Activation::GeluTanh),
            Some(Activation::Relu),
        ] {
            let want = match act {
                None => yb.clone(),
                Some(Activation::Gelu) => yb.gelu_erf().unwrap(),
                Some(Activation::GeluTanh) => yb.gelu().unwrap(),
                Some(Activation::Relu) => yb.relu().unwrap(),
            };
            let got = y.copy().unwrap();
            bias_act(&got, &b, act).unwrap();
            let d = max_diff(&got, &want);
            assert!(d < 2e-6, "{act:?}: {d}");
        }
    }

    #[test]
    fn add_norm_matches_candle() {
        let y = rand_tensor(&[2, 21, 48], 3, 3.0);
        let r = rand_tensor(&[2, 21, 48], 4, 3.0);
        let p = AddNormParams {
            bias: rand_tensor(&[48], 5, 1.0).to_vec1().unwrap(),
            gamma: rand_tensor(&[48], 6, 2.0).to_vec1().unwrap(),
            beta: rand_tensor(&[48], 7, 1.0).to_vec1().unwrap(),
            eps: 1e-12,
        };
        let t = |v: &Vec<f32>| Tensor::new(v.as_slice(), &Device::Cpu).unwrap();
        let sum = (y.broadcast_add(&t(&p.bias)).unwrap() + &r).unwrap();
        let want = candle_nn::ops::layer_norm(&sum, &t(&p.gamma), &t(&p.beta), p.eps).unwrap();
        let got = y.copy().unwrap();
        add_norm(&got, &r, &p).unwrap();
        let d = max_diff(&got, &want);
        assert!(d < 1e-5, "{d}");
    }

    #[test]
    fn masked_softmax_matches_candle() {
        let (b, h, s) = (3, 4, 19);
        let scores = rand_tensor(&[b, h, s, s], 8, 6.0);
        let mut m = vec![0f32; b * s];
        m[s - 3..s].fill(-1e4); // first sequence: three padded keys
        m[2 * s - 1] = -1e4;
        let mask = Tensor::from_vec(m, (b, s), &Device::Cpu).unwrap();
        let scale = 0.3f32;
        let want = candle_nn::ops::softmax_last_dim(
            &(scores.clone() * scale as f64)
                .unwrap()
                .broadcast_add(&mask.reshape((b, 1, 1, s)).unwrap())
                .unwrap(),
        )
        .unwrap();
        let got = scores.copy().unwrap();
        masked_softmax(&got, &mask, scale).unwrap();
        assert!(max_diff(&got, &want) < 1e-6);
        let sums = got.sum(D::Minus1).unwrap();
        let ones = Tensor::ones_like(&sums).unwrap();
        assert!(max_diff(&sums, &ones) < 1e-5);
        // Padded keys get exactly zero weight.
        let padded = got.get(0).unwrap().narrow(2, s - 3, 3).unwrap();
        assert_eq!(
            padded
                .abs()
                .unwrap()
                .sum_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
            0.0
        );
    }
}
