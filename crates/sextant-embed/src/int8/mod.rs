//! Matrix products in int8: `C[m, n] = A[m, k] · W[k, n]`, A and C in f32.
//!
//! The int8 mode ([`crate::Precision::Int8`]) runs three of the four projections of every layer
//! here (query/key/value, attention output, feed-forward up; the feed-forward down projection,
//! whose input is the GELU output with its outlier channels, stays in bf16 or f32: see
//! `BertModel::with_int8`).
//!
//! **Scheme.** Weights are quantised once, symmetrically, per output column (`W[:, j] ≈
//! scale[j] · q[:, j]`, `q` in −127..=127). Activations are quantised per row at every product,
//! asymmetrically (`x ≈ a_scale · (u − zero)`, `u` in 0..=255): one scale and zero point per
//! token, so a token with large values does not crush the others. Before both, SmoothQuant's
//! per-input-channel factors `s` move the activations' outlier channels into the weights
//! (`x · W = (x / s) · (s · W)`, `s_k = √(max|x_k| / max_j |W[k, j]|)`, the channel maxima
//! measured on calibration texts at load: `calibration`). The i32 sums are exact; the
//! result is `a_scale · scale[j] · (Σ u·q − zero · Σ_k q[k, j])`.
//!
//! Three implementations, chosen once per process ([`Kernel::detect`], overridable with
//! `SEXTANT_INT8_KERNEL=amx|vnni|emulated`):
//!
//! - **AMX** (`amx`): `tdpbusd` on 16 × 64 by 64 × 16 byte tiles (Sapphire Rapids and later).
//! - **AVX-512 VNNI** (`vnni`): `vpdpbusd`, 64 byte products per instruction against 16 for an
//!   f32 FMA (Intel since Cascade Lake, AMD since Zen 4).
//! - **Emulated** (any other CPU): the same integers as f32 through the f32 `gemm`, exact while
//!   the partial sums stay below 2²⁴ and within f32 rounding beyond.
//!
//! [`reference`] (tests) is the scalar definition all are tested against.

pub(crate) mod calibration;
#[cfg(target_arch = "x86_64")]
mod vnni;

use std::sync::LazyLock;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use crate::bf16::amx;
use crate::bf16::KB;

/// Output columns per packed panel of the VNNI kernel (four registers of 16 i32).
pub(crate) const PANEL: usize = 64;
/// Rows per VNNI micro-kernel call.
pub(crate) const MR: usize = 6;
/// Rows per parallel task.
const ROWS_PER_TASK: usize = 16 * MR;

/// Quads of k in the packed layouts: ⌈k/4⌉ padded to a multiple of [`KB`] (k to a multiple of
/// 64; MiniLM's 384 and 1536 need none).
pub(crate) fn padded_quads(k: usize) -> usize {
    k.div_ceil(4).div_ceil(KB) * KB
}

/// Which implementation runs the int8 products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// AMX `tdpbusd` tiles.
    Amx,
    /// AVX-512 VNNI `vpdpbusd`.
    Vnni,
    /// The integers through the f32 `gemm`.
    Emulated,
}

/// The environment variable that picks an int8 kernel (for measurements): `amx`, `vnni` or
/// `emulated`; one this CPU cannot run is refused at first use.
pub const INT8_KERNEL_ENV: &str = "SEXTANT_INT8_KERNEL";

impl Kernel {
    /// Every kernel, fastest first.
    pub(crate) const ALL: [Kernel; 3] = [Kernel::Amx, Kernel::Vnni, Kernel::Emulated];

    /// The fastest this CPU runs, unless [`INT8_KERNEL_ENV`] names one.
    pub(crate) fn detect() -> candle_core::Result<Self> {
        static CHOSEN: LazyLock<Result<Kernel, String>> = LazyLock::new(|| {
            crate::precision::pick_kernel(
                INT8_KERNEL_ENV,
                &Kernel::ALL,
                Kernel::name,
                Kernel::runs_here,
            )
        });
        CHOSEN.clone().map_err(candle_core::Error::Msg)
    }

    /// Whether this CPU (and OS) runs the kernel.
    pub(crate) fn runs_here(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx => amx::int8_available(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Vnni => vnni::available(),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Amx | Kernel::Vnni => false,
            Kernel::Emulated => true,
        }
    }

    /// Its name, as [`INT8_KERNEL_ENV`] takes it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Amx => "amx",
            Kernel::Vnni => "vnni",
            Kernel::Emulated => "emulated",
        }
    }
}

/// How the int8 mode runs the projections it keeps out of bytes (the feed-forward down
/// projection, SPLADE's head): bf16 on AMX tiles, else f32. (16-bit integers on VNNI,
/// `vpdpwssd`, were tried for CPUs without AMX and measured slower than f32 on a Xeon:
/// 234.8 against 262.2 sentences/s for the whole model, `BENCHMARKS.md`.)
pub(crate) fn unquantised() -> crate::Precision {
    if crate::bf16::Kernel::detect().is_ok_and(|k| k == crate::bf16::Kernel::Amx) {
        crate::Precision::Bf16
    } else {
        crate::Precision::F32
    }
}

/// SmoothQuant's factors for a `[k, n]` weight matrix whose inputs reached `channel_max[k]`
/// (absolute) on the calibration texts: `s_k = √(max|x_k| / max_j |W[k, j]|)`, clamped so a
/// dead channel or weight row cannot produce zero or infinity.
pub(crate) fn smoothing(w: &[f32], k: usize, n: usize, channel_max: &[f32]) -> Vec<f32> {
    assert_eq!(channel_max.len(), k);
    (0..k)
        .map(|r| {
            let wmax = w[r * n..(r + 1) * n]
                .iter()
                .fold(0f32, |m, &v| m.max(v.abs()))
                .max(1e-5);
            (channel_max[r].max(1e-5) / wmax).sqrt().clamp(1e-3, 1e3)
        })
        .collect()
}

/// A `[k, n]` weight matrix quantised to int8 per column, in column blocks ("parts": Q, K and
/// V of a fused projection) that each have their own smoothing, because each part's weights
/// have their own ranges (one smoothing for the three costs query/key/value most of its
/// accuracy). Every part quantises the activations with its factors and writes its columns.
#[derive(Debug, Clone)]
pub(crate) struct PackedInt8 {
    k: usize,
    n: usize,
    /// Each part's first column and its packed weights.
    parts: Vec<(usize, Part)>,
}

impl PackedInt8 {
    /// Quantises the row-major `[k, n]` f32 matrix `w` in parts of `widths` columns (summing
    /// to `n`), each smoothed for inputs that reached `channel_max` ([`smoothing`]).
    pub(crate) fn pack(
        w: &[f32],
        k: usize,
        n: usize,
        widths: &[usize],
        channel_max: &[f32],
    ) -> candle_core::Result<Self> {
        if widths.iter().sum::<usize>() != n || w.len() != k * n {
            candle_core::bail!("parts {widths:?} do not cover a {k} × {n} matrix");
        }
        let kernel = Kernel::detect()?;
        let mut parts = Vec::with_capacity(widths.len());
        let mut c0 = 0;
        for &np in widths {
            let sub: Vec<f32> = w
                .chunks_exact(n)
                .flat_map(|row| row[c0..c0 + np].iter().copied())
                .collect();
            let smooth = smoothing(&sub, k, np, channel_max);
            parts.push((c0, Part::pack_as(&sub, k, np, &smooth, kernel)?));
            c0 += np;
        }
        Ok(PackedInt8 { k, n, parts })
    }

    /// `x · W` for `x` `[rows, k]` f32: a new `[rows, n]` f32 tensor.
    pub(crate) fn matmul(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.apply_op1_no_bwd(self)
    }
}

/// One part of a [`PackedInt8`]: `[k, n]` columns quantised per column after smoothing, laid
/// out for the implementation in use.
#[derive(Debug, Clone)]
pub(crate) struct Part {
    k: usize,
    n: usize,
    /// `1 / s_k`: what every activation column is multiplied by before quantisation.
    inv_smooth: Vec<f32>,
    /// Per column: `W[:, j] · s ≈ scale[j] · q[:, j]`.
    scale: Vec<f32>,
    /// Per column: `Σ_k q[k, j]` (the zero point's correction).
    colsum: Vec<i32>,
    layout: Packed,
}

#[derive(Debug, Clone)]
enum Packed {
    /// VNNI panels of [`PANEL`] columns (the last one zero-padded); inside a panel, for every
    /// quad of rows `4q..4q + 4` (zero rows pad k to [`padded_quads`]), one `u32` per column
    /// holding the four signed bytes, row `4q` lowest. With `amx`, the same quads as AMX tiles
    /// (`amx::pack_groups`).
    Quads { data: Vec<u32>, amx: bool },
    /// The signed integers as a contiguous f32 `[k, n]` tensor (emulation).
    Integers(Tensor),
}

impl Part {
    /// Quantises the row-major `[k, n]` f32 matrix `w`, smoothed by `smooth` (`s_k`, see
    /// [`smoothing`]; ones for none), for `kernel` (which must run here).
    fn pack_as(
        w: &[f32],
        k: usize,
        n: usize,
        smooth: &[f32],
        kernel: Kernel,
    ) -> candle_core::Result<Self> {
        if w.len() != k * n || smooth.len() != k {
            candle_core::bail!(
                "weights of {} elements and {} factors are not {k} × {n}",
                w.len(),
                smooth.len()
            );
        }
        if !kernel.runs_here() {
            candle_core::bail!("the {} int8 kernel does not run on this CPU", kernel.name());
        }
        let mut scale = vec![0f32; n];
        for r in 0..k {
            for (j, s) in scale.iter_mut().enumerate() {
                *s = s.max((w[r * n + j] * smooth[r]).abs());
            }
        }
        for s in &mut scale {
            *s = if *s > 0.0 { *s / 127.0 } else { 1.0 };
        }
        let mut q = vec![0i8; k * n];
        let mut colsum = vec![0i32; n];
        for r in 0..k {
            for j in 0..n {
                let v = (w[r * n + j] * smooth[r] / scale[j])
                    .round()
                    .clamp(-127.0, 127.0) as i8;
                q[r * n + j] = v;
                colsum[j] += i32::from(v);
            }
        }
        let quad = |g: usize, col: usize| -> u32 {
            let mut bytes = [0u8; 4];
            for (i, b) in bytes.iter_mut().enumerate() {
                let r = 4 * g + i;
                if r < k {
                    *b = q[r * n + col] as u8;
                }
            }
            u32::from_le_bytes(bytes)
        };
        let quads = padded_quads(k);
        let layout = match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx => Packed::Quads {
                data: amx::pack_groups(quads, n, quad),
                amx: true,
            },
            Kernel::Vnni => {
                let panels = n.div_ceil(PANEL);
                let mut data = vec![0u32; panels * quads * PANEL];
                for p in 0..panels {
                    for g in 0..quads {
                        let dst = &mut data[(p * quads + g) * PANEL..][..PANEL];
                        for (c, slot) in dst.iter_mut().enumerate() {
                            let col = p * PANEL + c;
                            if col < n {
                                *slot = quad(g, col);
                            }
                        }
                    }
                }
                Packed::Quads { data, amx: false }
            }
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Amx => unreachable!("AMX runs only on x86_64"),
            Kernel::Emulated => {
                let f: Vec<f32> = q.iter().map(|&v| f32::from(v)).collect();
                Packed::Integers(Tensor::from_vec(f, (k, n), &candle_core::Device::Cpu)?)
            }
        };
        Ok(Part {
            k,
            n,
            inv_smooth: smooth.iter().map(|s| 1.0 / s).collect(),
            scale,
            colsum,
            layout,
        })
    }

    /// The kernel that runs this matrix's products.
    #[cfg(test)]
    pub(crate) fn kernel(&self) -> Kernel {
        match &self.layout {
            Packed::Quads { amx: true, .. } => Kernel::Amx,
            Packed::Quads { amx: false, .. } => Kernel::Vnni,
            Packed::Integers(_) => Kernel::Emulated,
        }
    }

    /// `c[r, ..n] = a[r] · W` for the `m = a.len() / k` rows of one row block, row `r` of `c`
    /// starting at `r · ldc`, on this part's kernel.
    fn block(&self, a: &[f32], c: &mut [f32], ldc: usize) -> candle_core::Result<()> {
        let (k, n) = (self.k, self.n);
        let m = a.len() / k;
        if m == 0 || n == 0 {
            return Ok(());
        }
        assert!(c.len() >= (m - 1) * ldc + n);
        let mut params = Vec::with_capacity(m);
        let mut row_q = vec![0u8; k];
        match &self.layout {
            Packed::Integers(w) => {
                let mut rows = vec![0f32; m * k];
                for (src, dst) in a.chunks_exact(k).zip(rows.chunks_exact_mut(k)) {
                    let p = quantize_row(src, &self.inv_smooth, &mut row_q);
                    for (d, &u) in dst.iter_mut().zip(&row_q) {
                        *d = f32::from(u) - p.zero as f32;
                    }
                    params.push(p);
                }
                let x = Tensor::from_vec(rows, (m, k), &candle_core::Device::Cpu)?;
                let y = x.matmul(w)?.flatten_all()?.to_vec1::<f32>()?;
                for (i, yrow) in y.chunks_exact(n).enumerate() {
                    let crow = &mut c[i * ldc..i * ldc + n];
                    for ((o, &v), &s) in crow.iter_mut().zip(yrow).zip(&self.scale) {
                        *o = v * params[i].scale * s;
                    }
                }
            }
            Packed::Quads { data, amx } => {
                let quads = padded_quads(k);
                let mut fill = |r: usize, row: &mut [u32]| {
                    params.push(quantize_row(
                        &a[r * k..(r + 1) * k],
                        &self.inv_smooth,
                        &mut row_q,
                    ));
                    for (dst, src) in row.iter_mut().zip(row_q.chunks(4)) {
                        let mut bytes = [0u8; 4];
                        bytes[..src.len()].copy_from_slice(src);
                        *dst = u32::from_le_bytes(bytes);
                    }
                };
                #[cfg(target_arch = "x86_64")]
                if *amx {
                    let tiles = amx::a_layout(m, quads, &mut fill);
                    let bsz = amx::INT8_BLOCK;
                    amx::matmul_int8(&tiles, m, data, quads, n, |row0, col0, block| {
                        let cols = bsz.min(n - col0);
                        let scale = &self.scale[col0..col0 + cols];
                        let colsum = &self.colsum[col0..col0 + cols];
                        for r in 0..bsz.min(m - row0) {
                            let p = params[row0 + r];
                            let out = &mut c[(row0 + r) * ldc + col0..][..cols];
                            dequantize(&block[r * bsz..r * bsz + cols], p, colsum, scale, out);
                        }
                    });
                    return Ok(());
                }
                #[cfg(target_arch = "x86_64")]
                {
                    let mut rows = vec![0u32; m * quads];
                    for (r, row) in rows.chunks_exact_mut(quads).enumerate() {
                        fill(r, row);
                    }
                    vnni::matmul(
                        &rows,
                        quads,
                        data,
                        &params,
                        &self.scale,
                        &self.colsum,
                        c,
                        ldc,
                    );
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    let _ = (data, amx, quads, &mut fill);
                    unreachable!("packed int8 quads exist only on x86_64");
                }
            }
        }
        Ok(())
    }
}

/// `out[j] = (acc[j] − zero · colsum[j]) · a_scale · scale[j]`: one row of a block back to f32
/// (straight-line over slices of one length, so the compiler vectorises it).
#[inline]
fn dequantize(acc: &[i32], p: RowQuant, colsum: &[i32], scale: &[f32], out: &mut [f32]) {
    let n = out.len();
    let (acc, colsum, scale) = (&acc[..n], &colsum[..n], &scale[..n]);
    for j in 0..n {
        out[j] = (acc[j] - p.zero * colsum[j]) as f32 * (p.scale * scale[j]);
    }
}

/// A row's quantisation: `x / s ≈ scale · (u − zero)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RowQuant {
    pub(crate) scale: f32,
    pub(crate) zero: i32,
}

/// Quantises `x · inv_smooth` into `out` (0..=255) asymmetrically over the row's range
/// (widened to include 0, so zero padding and exact zeros stay exact). On AVX-512 CPUs the
/// same operations run sixteen lanes at a time (the same results: min/max are exact, and each
/// lane does the scalar loop's multiply, add, clamp and truncation in the same order).
pub(crate) fn quantize_row(x: &[f32], inv_smooth: &[f32], out: &mut [u8]) -> RowQuant {
    assert!(inv_smooth.len() >= x.len() && out.len() >= x.len());
    #[cfg(target_arch = "x86_64")]
    if let Some(p) = vnni::quantize_row(x, inv_smooth, out) {
        return p;
    }
    quantize_row_scalar(x, inv_smooth, out)
}

/// [`quantize_row`] one element at a time (CPUs without AVX-512, and the tests' definition).
fn quantize_row_scalar(x: &[f32], inv_smooth: &[f32], out: &mut [u8]) -> RowQuant {
    let (mut lo, mut hi) = (0f32, 0f32);
    for (&v, &s) in x.iter().zip(inv_smooth) {
        let y = v * s;
        lo = lo.min(y);
        hi = hi.max(y);
    }
    let Some(p) = row_params(lo, hi) else {
        out[..x.len()].fill(0);
        return RowQuant {
            scale: 1.0,
            zero: 0,
        };
    };
    let (inv, zero) = (1.0 / p.scale, p.zero as f32);
    for ((o, &v), &s) in out.iter_mut().zip(x).zip(inv_smooth) {
        *o = ((v * s * inv + zero).clamp(0.0, 255.0) + 0.5) as u8;
    }
    p
}

/// The scale and zero point of a row whose smoothed values span `lo..=hi` (`lo ≤ 0 ≤ hi`);
/// `None` when the span is empty or not finite (all zeros: every code 0; non-finite input
/// cannot be quantised and the model never produces it).
pub(crate) fn row_params(lo: f32, hi: f32) -> Option<RowQuant> {
    let range = hi - lo;
    if !(range > 0.0 && range.is_finite()) {
        return None;
    }
    let scale = range / 255.0;
    // Rounding half up as `(y + 0.5) as u8` on the clamped non-negative value: the same as
    // `round()` there, and without its libm call.
    let zero = ((-lo * (1.0 / scale)).clamp(0.0, 255.0) + 0.5) as u8;
    Some(RowQuant {
        scale,
        zero: i32::from(zero),
    })
}

impl CustomOp1 for PackedInt8 {
    fn name(&self) -> &'static str {
        "sextant-int8-matmul"
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
                .try_for_each(|(c, a)| {
                    self.parts
                        .iter()
                        .try_for_each(|(c0, part)| part.block(a, &mut c[*c0..], n))
                })?;
        }
        Ok((CpuStorage::F32(c), Shape::from((m, n))))
    }
}

/// The scalar definition: rows quantised by [`quantize_row`], weights per column as
/// [`PackedInt8::pack`] does, exact i64 sums, dequantised in f64.
#[cfg(test)]
pub(crate) fn reference(
    a: &[f32],
    w: &[f32],
    m: usize,
    k: usize,
    n: usize,
    smooth: &[f32],
) -> Vec<f32> {
    let inv: Vec<f32> = smooth.iter().map(|s| 1.0 / s).collect();
    let mut scale = vec![0f32; n];
    for r in 0..k {
        for j in 0..n {
            scale[j] = scale[j].max((w[r * n + j] * smooth[r]).abs());
        }
    }
    let scale: Vec<f32> = scale
        .iter()
        .map(|&s| if s > 0.0 { s / 127.0 } else { 1.0 })
        .collect();
    let q = |r: usize, j: usize| -> i64 {
        (w[r * n + j] * smooth[r] / scale[j])
            .round()
            .clamp(-127.0, 127.0) as i64
    };
    let mut c = vec![0f32; m * n];
    let mut u = vec![0u8; k];
    for i in 0..m {
        let p = quantize_row(&a[i * k..(i + 1) * k], &inv, &mut u);
        for j in 0..n {
            let s: i64 = (0..k)
                .map(|r| (i64::from(u[r]) - i64::from(p.zero)) * q(r, j))
                .sum();
            c[i * n + j] = (s as f64 * f64::from(p.scale) * f64::from(scale[j])) as f32;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bf16::tests::rand;

    /// One part with the given smoothing, on `kernel`.
    fn single(w: &[f32], k: usize, n: usize, smooth: &[f32], kernel: Kernel) -> PackedInt8 {
        PackedInt8 {
            k,
            n,
            parts: vec![(0, Part::pack_as(w, k, n, smooth, kernel).unwrap())],
        }
    }

    /// Parts write their own columns, each quantised with its own smoothing: the product of a
    /// matrix packed in three parts equals the three single products side by side.
    #[test]
    fn parts_write_their_own_columns() {
        let (m, k) = (40, 96);
        let widths = [48, 16, 70];
        let n: usize = widths.iter().sum();
        let a = rand(m * k, 5);
        let w = rand(k * n, 6);
        let maxima: Vec<f32> = rand(k, 8).iter().map(|v| 0.1 + 5.0 * v.abs()).collect();
        let packed = PackedInt8::pack(&w, k, n, &widths, &maxima).unwrap();
        let x = Tensor::from_vec(a.clone(), (m, k), &candle_core::Device::Cpu).unwrap();
        let got = packed.matmul(&x).unwrap().to_vec2::<f32>().unwrap();
        let mut c0 = 0;
        for &np in &widths {
            let sub: Vec<f32> = w
                .chunks_exact(n)
                .flat_map(|r| r[c0..c0 + np].to_vec())
                .collect();
            let smooth = smoothing(&sub, k, np, &maxima);
            let want = reference(&a, &sub, m, k, np, &smooth);
            let part: Vec<f32> = got.iter().flat_map(|r| r[c0..c0 + np].to_vec()).collect();
            check(&part, &want, &a, m, k, np, "parts");
            c0 += np;
        }
        assert!(PackedInt8::pack(&w, k, n, &[n - 1], &maxima).is_err());
    }

    /// The kernels this CPU can run (emulation always).
    fn implementations() -> Vec<Kernel> {
        let ks: Vec<Kernel> = Kernel::ALL.into_iter().filter(|k| k.runs_here()).collect();
        eprintln!("int8 kernels tested on this CPU: {ks:?}");
        ks
    }

    /// Elementwise bound between a kernel and [`reference`]: the integer sums are exact in the
    /// hardware kernels (only the final f32 scaling rounds), and the emulation's f32 sums of
    /// integers lose at most k ulps of Σ|u − zero|·|q|.
    fn check(got: &[f32], want: &[f32], a: &[f32], m: usize, k: usize, n: usize, what: &str) {
        for i in 0..m {
            let amax = a[i * k..(i + 1) * k]
                .iter()
                .fold(0f32, |x, &v| x.max(v.abs()));
            for j in 0..n {
                let (g, r) = (got[i * n + j], want[i * n + j]);
                // |u − zero| ≤ 255 and |q| ≤ 127 in units of (scale_a · scale_w), and scale_a ·
                // 255 ≤ 2·amax·max 1/s: bound the f32 rounding of k such products generously.
                let unit = 2.0 * amax * 127.0 * k as f32 * 4.0 / (1u32 << 24) as f32;
                assert!(
                    (g - r).abs() <= 1e-5 * r.abs() + unit + 1e-6,
                    "{what} {m}×{k}×{n} [{i}, {j}]: {g} vs {r}"
                );
            }
        }
    }

    #[test]
    fn quantize_row_keeps_zero_exact_and_bounds_the_error() {
        let x = [0.0, -1.0, 0.5, 2.0, -0.25];
        let ones = [1.0; 5];
        let mut u = [0u8; 5];
        let p = quantize_row(&x, &ones, &mut u);
        assert_eq!(f32::from(u[0]) - p.zero as f32, 0.0);
        for (&v, &q) in x.iter().zip(&u) {
            let back = (f32::from(q) - p.zero as f32) * p.scale;
            assert!((back - v).abs() <= p.scale / 2.0 + 1e-6, "{v} → {back}");
        }
        // All zeros: no division by zero, every code the zero point.
        let p = quantize_row(&[0.0; 4], &[1.0; 4], &mut u[..4]);
        assert_eq!((p.scale, p.zero), (1.0, 0));
        assert_eq!(&u[..4], &[0; 4]);
    }

    /// The vectorised quantisation equals the scalar one bit for bit (lengths not a multiple
    /// of 16, spread-out smoothing, all-zero and one-sign rows).
    #[test]
    fn vector_quantisation_equals_scalar() {
        for (seed, k) in [
            (1u64, 1usize),
            (2, 15),
            (3, 16),
            (4, 17),
            (5, 384),
            (6, 1537),
        ] {
            let x = rand(k, seed);
            let s: Vec<f32> = rand(k, seed + 9)
                .iter()
                .map(|v| 0.1 + 3.0 * v.abs())
                .collect();
            let pos: Vec<f32> = x.iter().map(|v| v.abs() * 7.0).collect();
            for row in [x.clone(), pos, vec![0.0; k]] {
                let (mut a, mut b) = (vec![0u8; k], vec![0u8; k]);
                let pa = quantize_row(&row, &s, &mut a);
                let pb = quantize_row_scalar(&row, &s, &mut b);
                assert_eq!((pa, &a), (pb, &b), "k = {k}");
            }
        }
    }

    #[test]
    fn matmul_matches_the_reference_on_odd_shapes() {
        let shapes = [
            (1, 1, 1),
            (1, 7, 5),
            (5, 33, 17),
            (7, 64, 64),
            (13, 31, 130),
            (97, 385, 71),
            (200, 384, 1152),
            (37, 1536, 384),
            (32, 64, 32),
            (33, 100, 65),
        ];
        for (seed, &(m, k, n)) in shapes.iter().enumerate() {
            let a = rand(m * k, seed as u64 + 10);
            let w = rand(k * n, seed as u64 + 100);
            let smooth: Vec<f32> = rand(k, seed as u64 + 7)
                .iter()
                .map(|v| 0.5 + v.abs())
                .collect();
            let want = reference(&a, &w, m, k, n, &smooth);
            for kernel in implementations() {
                let packed = single(&w, k, n, &smooth, kernel);
                assert_eq!(packed.parts[0].1.kernel(), kernel);
                let x = Tensor::from_vec(a.clone(), (m, k), &candle_core::Device::Cpu).unwrap();
                let got = packed
                    .matmul(&x)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                check(&got, &want, &a, m, k, n, kernel.name());
                // And int8 is a real approximation of the f32 product.
                let mut worst = 0f32;
                for i in 0..m {
                    for j in 0..n {
                        let exact: f32 = (0..k).map(|l| a[i * k + l] * w[l * n + j]).sum();
                        worst = worst.max((exact - got[i * n + j]).abs());
                    }
                }
                assert!(
                    worst < 0.05 * (k as f32).sqrt() + 0.02,
                    "{m}×{k}×{n}: {worst}"
                );
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Every kernel this CPU runs, on random shapes, values and smoothing factors: each
        /// element within f32 rounding of the scalar reference's exact integer sums.
        #[test]
        fn every_kernel_matches_the_reference_on_random_shapes(
            m in 1usize..70,
            k in 1usize..200,
            n in 1usize..140,
            seed in 0u64..1_000_000,
            spread in 0f32..8.0,
        ) {
            let a = rand(m * k, seed);
            let w = rand(k * n, seed ^ 0xabcd);
            let smooth: Vec<f32> = rand(k, seed ^ 0x77).iter().map(|v| 1.0 + spread * v.abs()).collect();
            let want = reference(&a, &w, m, k, n, &smooth);
            let x = Tensor::from_vec(a.clone(), (m, k), &candle_core::Device::Cpu).unwrap();
            for kernel in implementations() {
                let packed = single(&w, k, n, &smooth, kernel);
                let got = packed.matmul(&x).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
                check(&got, &want, &a, m, k, n, kernel.name());
            }
        }
    }

    /// A row's result does not depend on which other rows share its product (per-row
    /// quantisation: what makes batch output equal one-at-a-time output).
    #[test]
    fn rows_are_independent_of_the_batch() {
        let (m, k, n) = (50, 96, 80);
        let a = rand(m * k, 1);
        let w = rand(k * n, 2);
        let smooth = vec![1.0; k];
        let dev = candle_core::Device::Cpu;
        for kernel in implementations() {
            let packed = single(&w, k, n, &smooth, kernel);
            let all = packed
                .matmul(&Tensor::from_vec(a.clone(), (m, k), &dev).unwrap())
                .unwrap()
                .to_vec2::<f32>()
                .unwrap();
            for i in [0, 5, 6, 49] {
                let one = packed
                    .matmul(
                        &Tensor::from_vec(a[i * k..(i + 1) * k].to_vec(), (1, k), &dev).unwrap(),
                    )
                    .unwrap()
                    .to_vec2::<f32>()
                    .unwrap();
                for (x, y) in one[0].iter().zip(&all[i]) {
                    assert!(
                        (x - y).abs() <= 1e-5 * y.abs() + 1e-6,
                        "{kernel:?} row {i}: {x} vs {y}"
                    );
                }
            }
        }
    }

    #[test]
    fn smoothing_balances_activation_and_weight_ranges() {
        // Channel 0: activations up to 100, weights up to 1 → s = 10; channel 1 the reverse.
        let w = [1.0, -0.5, 100.0, 3.0];
        let s = smoothing(&w, 2, 2, &[100.0, 1.0]);
        assert!(
            (s[0] - 10.0).abs() < 1e-4 && (s[1] - 0.1).abs() < 1e-5,
            "{s:?}"
        );
        // A dead channel does not divide by zero.
        let s = smoothing(&[0.0, 0.0], 1, 2, &[0.0]);
        assert!(s[0].is_finite() && s[0] > 0.0);
    }
}
