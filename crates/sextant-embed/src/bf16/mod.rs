//! Matrix products with bf16 weights: `C[m, n] = A[m, k] · W[k, n]`, A and C in f32.
//!
//! The reduced-precision mode ([`crate::Precision::Bf16`]) runs the four linear projections of
//! every layer here. Weights are rounded to bf16 once at load and packed ([`PackedBf16`]); each
//! product rounds its activations to bf16 row block by row block and accumulates in f32.
//!
//! Three implementations, chosen once per process ([`Kernel::detect`], overridable with
//! `SEXTANT_BF16_KERNEL=amx|avx512|emulated` for measurements):
//!
//! - **AMX** (`amx`): Intel's tile instructions, `tdpbf16ps` on 16 × 32 by 32 × 16 tiles, where
//!   the CPU exposes them (Sapphire Rapids and later Xeons). On Intel cores `vdpbf16ps` issues on
//!   one port and so only matches the f32 FMA rate; tiles are what makes bf16 faster there.
//! - **AVX512-BF16** (`avx512`): `vdpbf16ps` does 32 bf16
//!   multiply-adds per instruction against 16 for an f32 FMA. Weights are packed in panels of
//!   [`PANEL`] columns, k-pairs interleaved the way the instruction reads them, so that the
//!   register-blocked micro-kernel (up to [`MR`] rows × 4 registers of 16 columns) loads every
//!   weight contiguously and broadcasts one pair of activations per row.
//! - **Emulated** (any other CPU): the same bf16-rounded weights kept as f32, activations rounded
//!   to bf16 in place, then the f32 `gemm` of the full-precision path. The inputs of every
//!   multiplication are the same bf16 values; only the summation order differs, so vectors stay
//!   within f32 rounding of the hardware path (and tests pass on machines without the feature).
//!
//! [`reference`] is the scalar definition all are tested against.

#[cfg(target_arch = "x86_64")]
pub(crate) mod amx;
#[cfg(target_arch = "x86_64")]
mod avx512;

use std::sync::LazyLock;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use rayon::prelude::*;

/// Output columns per packed weight panel (four AVX-512 registers of f32).
pub(crate) const PANEL: usize = 64;
/// Rows per micro-kernel call (6 rows × 4 registers = 24 accumulators of 32).
pub(crate) const MR: usize = 6;
/// Pairs of k per AMX tile step: panels and activations are padded with zero pairs to a
/// multiple of it (MiniLM's k of 384 and 1536 need none).
pub(crate) const KB: usize = 16;

/// Pairs of k in the packed layout: ⌈k/2⌉ padded to a multiple of [`KB`].
pub(crate) fn padded_pairs(k: usize) -> usize {
    k.div_ceil(2).div_ceil(KB) * KB
}

/// Which implementation runs the bf16 products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kernel {
    /// AMX tiles.
    Amx,
    /// AVX512-BF16 `vdpbf16ps`.
    Avx512,
    /// bf16-rounded operands through the f32 `gemm`.
    Emulated,
}

/// The environment variable that picks a bf16 kernel (for measurements): `amx`, `avx512` or
/// `emulated`; one this CPU cannot run is refused at first use.
pub const BF16_KERNEL_ENV: &str = "SEXTANT_BF16_KERNEL";

impl Kernel {
    /// Every kernel, fastest first.
    pub(crate) const ALL: [Kernel; 3] = [Kernel::Amx, Kernel::Avx512, Kernel::Emulated];

    /// The fastest this CPU runs, unless [`BF16_KERNEL_ENV`] names one.
    pub(crate) fn detect() -> candle_core::Result<Self> {
        static CHOSEN: LazyLock<Result<Kernel, String>> = LazyLock::new(|| {
            crate::precision::pick_kernel(
                BF16_KERNEL_ENV,
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
            Kernel::Amx => amx::available(),
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Amx => false,
            Kernel::Avx512 => hardware(),
            Kernel::Emulated => true,
        }
    }

    /// Its name, as [`BF16_KERNEL_ENV`] takes it.
    pub fn name(self) -> &'static str {
        match self {
            Kernel::Amx => "amx",
            Kernel::Avx512 => "avx512",
            Kernel::Emulated => "emulated",
        }
    }
}
/// Rows per parallel task: its bf16 activations (≤ 96 × 1536 × 2 bytes) and one weight panel
/// stay in L2 while every panel passes over them.
const ROWS_PER_TASK: usize = 16 * MR;
/// Columns per parallel task of [`PackedBf16::matmul_colmax`] (a multiple of the AMX block).
const COLS_PER_TASK: usize = 1024;

/// Whether this CPU runs `vdpbf16ps` (detected once).
pub(crate) fn hardware() -> bool {
    static HW: LazyLock<bool> = LazyLock::new(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512bf16")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    });
    *HW
}

/// `x` rounded to the nearest bf16 (ties to even), as its 16 bits. NaN stays NaN.
pub(crate) fn to_bf16(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7fc0;
    }
    let bits = x.to_bits();
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// The f32 value of bf16 bits.
pub(crate) fn from_bf16(b: u16) -> f32 {
    f32::from_bits(u32::from(b) << 16)
}

/// `x` rounded to bf16 precision, kept in f32.
pub(crate) fn round_bf16(x: f32) -> f32 {
    from_bf16(to_bf16(x))
}

/// A `[k, n]` weight matrix rounded to bf16, laid out for the implementation in use.
#[derive(Debug, Clone)]
pub(crate) struct PackedBf16 {
    k: usize,
    n: usize,
    layout: Packed,
}

#[derive(Debug, Clone)]
enum Packed {
    /// For the AVX512-BF16 kernel, panels of [`PANEL`] columns (the last one zero-padded);
    /// inside a panel, for every pair of rows `(2q, 2q + 1)` (a zero row pads odd `k`, zero
    /// pairs pad to [`padded_pairs`]), one `u32` per column holding the bf16 of row `2q` in its
    /// low half and of row `2q + 1` in its high half. With `amx`, the same pairs as AMX tiles
    /// (`amx::pack_tiles`).
    Panels { data: Vec<u32>, amx: bool },
    /// The rounded weights as a contiguous f32 `[k, n]` tensor (emulation).
    Rounded(Tensor),
}

impl PackedBf16 {
    /// Packs the row-major `[k, n]` f32 matrix `w` for this CPU's kernel ([`Kernel::detect`]).
    pub(crate) fn pack(w: &[f32], k: usize, n: usize) -> candle_core::Result<Self> {
        Self::pack_as(w, k, n, Kernel::detect()?)
    }

    /// Packs for `kernel` (which must run here).
    fn pack_as(w: &[f32], k: usize, n: usize, kernel: Kernel) -> candle_core::Result<Self> {
        if w.len() != k * n {
            candle_core::bail!("weights of {} elements are not {k} × {n}", w.len());
        }
        if !kernel.runs_here() {
            candle_core::bail!("the {} bf16 kernel does not run on this CPU", kernel.name());
        }
        let layout = match kernel {
            #[cfg(target_arch = "x86_64")]
            Kernel::Amx => Packed::Panels {
                data: amx::pack_tiles(w, k, n),
                amx: true,
            },
            #[cfg(not(target_arch = "x86_64"))]
            Kernel::Amx => unreachable!("AMX runs only on x86_64"),
            Kernel::Avx512 => Packed::Panels {
                data: pack_panels(w, k, n),
                amx: false,
            },
            Kernel::Emulated => {
                let r: Vec<f32> = w.iter().map(|&x| round_bf16(x)).collect();
                Packed::Rounded(Tensor::from_vec(r, (k, n), &candle_core::Device::Cpu)?)
            }
        };
        Ok(PackedBf16 { k, n, layout })
    }

    /// `max over rows of x · W` per column, without holding the `[rows, n]` product (one 32 × 32
    /// block at a time): `Some` on the AMX kernel, `None` elsewhere (the caller multiplies and
    /// reduces). SPLADE's vocabulary logits are the use: 30,522 columns per token.
    pub(crate) fn matmul_colmax(&self, x: &Tensor) -> candle_core::Result<Option<Vec<f32>>> {
        #[cfg(target_arch = "x86_64")]
        if let Packed::Panels { data, amx: true } = &self.layout {
            let (m, k) = x.dims2()?;
            if k != self.k {
                candle_core::bail!("inputs of {k} columns for weights of {} rows", self.k);
            }
            let n = self.n;
            if m == 0 {
                return Ok(Some(vec![f32::NEG_INFINITY; n]));
            }
            let a = x.contiguous()?.flatten_all()?.to_vec1::<f32>()?;
            let abf = amx::a_tiles(&a, k);
            let mut out = vec![0f32; n];
            out.par_chunks_mut(COLS_PER_TASK)
                .enumerate()
                .for_each(|(i, o)| {
                    let c0 = i * COLS_PER_TASK;
                    amx::colmax(&abf, m, data, k, n, c0..c0 + o.len(), o)
                });
            return Ok(Some(out));
        }
        let _ = x;
        Ok(None)
    }

    /// The kernel that runs this matrix's products.
    #[cfg(test)]
    pub(crate) fn kernel(&self) -> Kernel {
        match &self.layout {
            Packed::Panels { amx: true, .. } => Kernel::Amx,
            Packed::Panels { amx: false, .. } => Kernel::Avx512,
            Packed::Rounded(_) => Kernel::Emulated,
        }
    }

    /// Packs a contiguous f32 `[k, n]` tensor.
    pub(crate) fn pack_tensor(w: &Tensor) -> candle_core::Result<Self> {
        let (k, n) = w.dims2()?;
        let v = w
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        Self::pack(&v, k, n)
    }

    /// `x · W` for `x` `[rows, k]` f32: a new `[rows, n]` f32 tensor.
    pub(crate) fn matmul(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.layout {
            Packed::Panels { .. } => x.apply_op1_no_bwd(self),
            Packed::Rounded(w) => {
                let rounded = x.apply_op1_no_bwd(&RoundBf16)?;
                rounded.matmul(w)
            }
        }
    }
}

/// `a · b` for row-major f32 `a` `[m, k]` and `b` `[k, n]` on this CPU's native bf16 kernel
/// (AMX or AVX512-BF16: both operands rounded to bf16, f32 sums), `b` packed for the call;
/// `None` where the CPU has no native kernel (emulation would be slower than f32). Training's
/// mixed precision runs its linear layers' products, forward and backward, on it.
pub(crate) fn matmul_native(
    a: &[f32],
    b: &[f32],
    (m, k, n): (usize, usize, usize),
) -> candle_core::Result<Option<Vec<f32>>> {
    if a.len() != m * k {
        candle_core::bail!("{} inputs are not {m} × {k}", a.len());
    }
    let kernel = Kernel::detect()?;
    if kernel == Kernel::Emulated {
        return Ok(None);
    }
    let packed = PackedBf16::pack_as(b, k, n, kernel)?;
    let Packed::Panels { data, amx } = &packed.layout else {
        return Ok(None);
    };
    let mut c = vec![0f32; m * n];
    matmul_panels(a, data, m, k, n, *amx, &mut c);
    Ok(Some(c))
}

/// Whether this CPU has a native bf16 kernel ([`matmul_native`] runs).
pub(crate) fn native() -> bool {
    Kernel::detect().is_ok_and(|k| k != Kernel::Emulated)
}

/// Builds the [`Packed::Panels`] layout.
fn pack_panels(w: &[f32], k: usize, n: usize) -> Vec<u32> {
    let pairs = padded_pairs(k);
    let panels = n.div_ceil(PANEL);
    let mut out = vec![0u32; panels * pairs * PANEL];
    for p in 0..panels {
        for q in 0..pairs {
            let dst = &mut out[(p * pairs + q) * PANEL..][..PANEL];
            for (c, slot) in dst.iter_mut().enumerate() {
                let col = p * PANEL + c;
                if col >= n {
                    break;
                }
                if 2 * q >= k {
                    break;
                }
                let lo = to_bf16(w[2 * q * n + col]);
                let hi = if 2 * q + 1 < k {
                    to_bf16(w[(2 * q + 1) * n + col])
                } else {
                    0
                };
                *slot = u32::from(lo) | (u32::from(hi) << 16);
            }
        }
    }
    out
}

/// The scalar definition: both operands rounded to bf16, products summed in f64, stored f32.
/// Tests compare both implementations with it.
#[cfg(test)]
pub(crate) fn reference(a: &[f32], w: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = 0f64;
            for l in 0..k {
                s += f64::from(round_bf16(a[i * k + l])) * f64::from(round_bf16(w[l * n + j]));
            }
            c[i * n + j] = s as f32;
        }
    }
    c
}

/// Rounds a tensor's elements to bf16 precision (a new f32 tensor): the emulated path's
/// activation conversion.
struct RoundBf16;

impl CustomOp1 for RoundBf16 {
    fn name(&self) -> &'static str {
        "sextant-round-bf16"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, self.name())?;
        let r: Vec<f32> = x.par_iter().map(|&v| round_bf16(v)).collect();
        Ok((CpuStorage::F32(r), l.shape().clone()))
    }
}

impl CustomOp1 for PackedBf16 {
    fn name(&self) -> &'static str {
        "sextant-bf16-matmul"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s, l, self.name())?;
        let Packed::Panels { data: panels, amx } = &self.layout else {
            candle_core::bail!("{}: weights are not packed in panels", self.name());
        };
        let (k, n) = (self.k, self.n);
        if k == 0 || !x.len().is_multiple_of(k) {
            candle_core::bail!("{}: {} inputs are not rows of {k}", self.name(), x.len());
        }
        let m = x.len() / k;
        let mut c = vec![0f32; m * n];
        matmul_panels(x, panels, m, k, n, *amx, &mut c);
        Ok((CpuStorage::F32(c), Shape::from((m, n))))
    }
}

/// The AMX or AVX512-BF16 product into `c` (`[m, n]`), row blocks spread over the rayon pool.
fn matmul_panels(
    a: &[f32],
    panels: &[u32],
    m: usize,
    k: usize,
    n: usize,
    amx: bool,
    c: &mut [f32],
) {
    if m == 0 || n == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        c.par_chunks_mut(ROWS_PER_TASK * n)
            .zip(a.par_chunks(ROWS_PER_TASK * k))
            .for_each(|(c, a)| {
                if amx {
                    amx::matmul(a, panels, k, n, c)
                } else {
                    avx512::matmul(a, panels, k, n, c)
                }
            });
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (a, panels, k, amx, c);
        unreachable!("packed bf16 panels exist only on x86_64");
    }
}

/// The slice of a contiguous f32 tensor's storage.
fn contiguous_f32<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    match (s, l.contiguous_offsets()) {
        (CpuStorage::F32(v), Some((a, b))) => Ok(&v[a..b]),
        _ => candle_core::bail!("{what}: expected a contiguous f32 tensor"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `len` pseudo-random values in [−1, 1) (xorshift; the kernels' tests share it).
    pub(crate) fn rand(len: usize, seed: u64) -> Vec<f32> {
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

    /// How far `[i, j]` of a kernel's product may be from [`reference`]: k exact products of
    /// bf16 values summed in f32, |error| ≤ k · 2⁻²⁴ · Σ|a·w|.
    fn summation_bound(a: &[f32], w: &[f32], (i, j): (usize, usize), k: usize, n: usize) -> f32 {
        let abs: f32 = (0..k)
            .map(|l| (round_bf16(a[i * k + l]) * round_bf16(w[l * n + j])).abs())
            .sum();
        k as f32 * abs / (1u32 << 24) as f32 + 1e-7
    }

    /// The kernels this CPU can run: emulation always, AVX512-BF16 and AMX where present (a
    /// CPU without them tests fewer; the output says which).
    fn implementations() -> Vec<Kernel> {
        let ks: Vec<Kernel> = Kernel::ALL.into_iter().filter(|k| k.runs_here()).collect();
        eprintln!("bf16 kernels tested on this CPU: {ks:?}");
        ks
    }

    #[test]
    fn rounding_is_to_nearest_even() {
        assert_eq!(to_bf16(1.0), 0x3f80);
        // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even (1.0).
        assert_eq!(to_bf16(1.0 + 1.0 / 256.0), 0x3f80);
        // 1 + 3·2^-8 is halfway between 1 + 2^-7 (odd) and 1 + 2^-6: up.
        assert_eq!(to_bf16(1.0 + 3.0 / 256.0), 0x3f82);
        assert_eq!(to_bf16(-2.5), 0xc020);
        assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
        assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
        for &x in &rand(1000, 3) {
            let r = round_bf16(x);
            assert!((r - x).abs() <= x.abs() / 256.0, "{x} → {r}");
        }
    }

    /// Every shape class: fewer rows than a micro-kernel, rows not a multiple of it or of a
    /// task, odd k, columns not a multiple of 16 or of a panel, and MiniLM's own shapes.
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
            // AMX blocks: a full 32 × 32 block, one row past it, k not a multiple of 32.
            (32, 64, 32),
            (33, 100, 65),
            (96, 40, 96),
        ];
        for (seed, &(m, k, n)) in shapes.iter().enumerate() {
            let a = rand(m * k, seed as u64 + 10);
            let w = rand(k * n, seed as u64 + 100);
            let want = reference(&a, &w, m, k, n);
            for panels in implementations() {
                let packed = PackedBf16::pack_as(&w, k, n, panels).unwrap();
                assert_eq!(packed.kernel(), panels);
                let x = Tensor::from_vec(a.clone(), (m, k), &candle_core::Device::Cpu).unwrap();
                let got = packed
                    .matmul(&x)
                    .unwrap()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                assert_eq!(got.len(), m * n);
                for i in 0..m {
                    for j in 0..n {
                        let bound = summation_bound(&a, &w, (i, j), k, n);
                        let (g, r) = (got[i * n + j], want[i * n + j]);
                        assert!(
                            (g - r).abs() <= bound,
                            "{m}×{k}×{n} ({panels:?}): [{i}, {j}]: {g} vs {r} (bound {bound})"
                        );
                    }
                }
                // And bf16 is a real approximation of the f32 product.
                let mut worst = 0f32;
                for i in 0..m {
                    for j in 0..n {
                        let exact: f32 = (0..k).map(|l| a[i * k + l] * w[l * n + j]).sum();
                        worst = worst.max((exact - got[i * n + j]).abs());
                    }
                }
                assert!(
                    worst < 0.02 * (k as f32).sqrt() + 0.01,
                    "{m}×{k}×{n}: {worst}"
                );
            }
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Every kernel this CPU runs, on random shapes and values: each element within the f32
        /// summation bound of the scalar reference, and (AMX) the fused column maximum equal to
        /// the maximum of the product.
        #[test]
        fn every_kernel_matches_the_reference_on_random_shapes(
            m in 1usize..70,
            k in 1usize..200,
            n in 1usize..140,
            seed in 0u64..1_000_000,
        ) {
            let a = rand(m * k, seed);
            let w = rand(k * n, seed ^ 0xabcd);
            let want = reference(&a, &w, m, k, n);
            let x = Tensor::from_vec(a.clone(), (m, k), &candle_core::Device::Cpu).unwrap();
            for kernel in implementations() {
                let packed = PackedBf16::pack_as(&w, k, n, kernel).unwrap();
                let got = packed.matmul(&x).unwrap().to_vec2::<f32>().unwrap();
                for i in 0..m {
                    for j in 0..n {
                        let bound = summation_bound(&a, &w, (i, j), k, n);
                        proptest::prop_assert!(
                            (got[i][j] - want[i * n + j]).abs() <= bound,
                            "{kernel:?} {m}×{k}×{n} [{i}, {j}]: {} vs {}", got[i][j], want[i * n + j]
                        );
                    }
                }
                if let Some(fused) = packed.matmul_colmax(&x).unwrap() {
                    for j in 0..n {
                        let max = (0..m).map(|i| got[i][j]).fold(f32::NEG_INFINITY, f32::max);
                        proptest::prop_assert_eq!(fused[j], max);
                    }
                }
            }
        }
    }

    /// The fused column maximum equals the maximum over the rows of the full product, exactly
    /// (the same block arithmetic), on the AMX kernel; elsewhere it declines.
    #[test]
    fn column_max_equals_the_max_of_the_product() {
        for (seed, &(m, k, n)) in [(1, 7, 5), (5, 64, 33), (37, 100, 1000), (70, 384, 2100)]
            .iter()
            .enumerate()
        {
            let a = rand(m * k, seed as u64 + 40);
            let w = rand(k * n, seed as u64 + 50);
            for kernel in implementations() {
                let packed = PackedBf16::pack_as(&w, k, n, kernel).unwrap();
                let x = Tensor::from_vec(a.clone(), (m, k), &candle_core::Device::Cpu).unwrap();
                let fused = packed.matmul_colmax(&x).unwrap();
                if kernel != Kernel::Amx {
                    assert!(fused.is_none(), "{kernel:?}");
                    continue;
                }
                let fused = fused.expect("AMX fuses the column maximum");
                let full = packed.matmul(&x).unwrap().to_vec2::<f32>().unwrap();
                for j in 0..n {
                    let want = (0..m).map(|i| full[i][j]).fold(f32::NEG_INFINITY, f32::max);
                    assert_eq!(fused[j], want, "{m}×{k}×{n}: column {j}");
                }
            }
        }
    }

    /// A row's result does not depend on which other rows share its product (what makes batch
    /// output equal one-at-a-time output).
    #[test]
    fn rows_are_independent_of_the_batch() {
        let (m, k, n) = (50, 96, 80);
        let a = rand(m * k, 1);
        let w = rand(k * n, 2);
        for panels in implementations() {
            let packed = PackedBf16::pack_as(&w, k, n, panels).unwrap();
            let dev = candle_core::Device::Cpu;
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
                    assert!((x - y).abs() <= 1e-6, "row {i}: {x} vs {y}");
                }
            }
        }
    }
}
