//! Distance kernels: a scalar reference plus explicit SIMD per instruction set, chosen once.
//!
//! The best kernel set the CPU supports is detected on first use and cached ([`kernels`]). Hot
//! loops fetch the function pointer they need once per query, so dispatch costs one indirect call
//! per distance, the same as hnswlib's. `SEXTANT_ISA=scalar|avx2|avx512` forces a lower set (for
//! tests and benchmarks); asking for one the CPU lacks falls back to the best available.
//!
//! i8 kernels accumulate in i32: exact for dimensions up to 2^17 (|product| ≤ 2^14 per lane).

use std::sync::OnceLock;

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod bits;
mod fastscan;
mod scalar;

pub use bits::{HammingKernel, Popcount4BatchKernel, Popcount4Kernel};
pub use fastscan::{slot as fastscan_slot, FastScanKernel, MAX_SUBQUANTIZERS};

/// An f32 distance kernel over two slices of equal length.
pub type F32Kernel = fn(&[f32], &[f32]) -> f32;
/// An i8 kernel over two slices of equal length, exact in i32.
pub type I8Kernel = fn(&[i8], &[i8]) -> i32;
/// A u8 × i8 inner product over two slices of equal length, exact in i32.
pub type U8I8Kernel = fn(&[u8], &[i8]) -> i32;

/// An instruction set a kernel family is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Portable Rust, no explicit SIMD.
    Scalar,
    /// x86-64 AVX2 with FMA.
    Avx2,
    /// x86-64 AVX-512 (F, BW, VL).
    Avx512,
}

impl Isa {
    /// Lower-case name, as accepted by `SEXTANT_ISA`.
    pub const fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512 => "avx512",
        }
    }

    /// Whether this CPU can run kernels for `self`.
    pub fn is_supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => {
                is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// One instruction set's kernels, as plain function pointers.
#[derive(Debug, Clone, Copy)]
pub struct Kernels {
    /// The instruction set these kernels use.
    pub isa: Isa,
    /// Inner product.
    pub dot: F32Kernel,
    /// Squared Euclidean distance.
    pub l2sq: F32Kernel,
    /// Sum of absolute differences.
    pub l1: F32Kernel,
    /// Inner product of i8 vectors.
    pub dot_i8: I8Kernel,
    /// Squared Euclidean distance of i8 vectors.
    pub l2sq_i8: I8Kernel,
    /// Inner product of a u8 and an i8 vector (AVX-512 VNNI's native operation).
    pub dot_u8i8: U8I8Kernel,
    /// 4-bit product-quantisation table sums of a block of 32 vectors.
    pub fastscan: FastScanKernel,
    /// Weighted popcount of a 1-bit code against a 4-bit query's bit planes.
    pub popcount4: Popcount4Kernel,
    /// The same over a batch of codes picked by id.
    pub popcount4_batch: Popcount4BatchKernel,
    /// Hamming distance of two bit vectors.
    pub hamming: HammingKernel,
}

const SCALAR: Kernels = Kernels {
    isa: Isa::Scalar,
    dot: scalar::dot,
    l2sq: scalar::l2sq,
    l1: scalar::l1,
    dot_i8: scalar::dot_i8,
    l2sq_i8: scalar::l2sq_i8,
    dot_u8i8: scalar::dot_u8i8,
    fastscan: fastscan::scan_scalar,
    popcount4: bits::popcount4_scalar,
    popcount4_batch: bits::popcount4_batch_scalar,
    hamming: bits::hamming_scalar,
};

/// Wraps an `unsafe` target-feature kernel in a safe function. The wrappers are only reachable
/// through [`Kernels::for_isa`], which hands them out after checking CPU support.
#[cfg(target_arch = "x86_64")]
macro_rules! safe_wrappers {
    ($module:ident: $($name:ident($ta:ty, $tb:ty) -> $r:ty),*) => {
        pub(super) mod $module {
            $(pub(in crate::distance) fn $name(a: &[$ta], b: &[$tb]) -> $r {
                // SAFETY: only installed by `Kernels::for_isa` after `Isa::is_supported`.
                unsafe { crate::distance::$module::$name(a, b) }
            })*
        }
    };
}

#[cfg(target_arch = "x86_64")]
mod safe {
    safe_wrappers!(avx2: dot(f32, f32) -> f32, l2sq(f32, f32) -> f32, l1(f32, f32) -> f32,
        dot_i8(i8, i8) -> i32, l2sq_i8(i8, i8) -> i32, dot_u8i8(u8, i8) -> i32);
    safe_wrappers!(avx512: dot(f32, f32) -> f32, l2sq(f32, f32) -> f32, l1(f32, f32) -> f32,
        dot_i8(i8, i8) -> i32, l2sq_i8(i8, i8) -> i32, dot_u8i8(u8, i8) -> i32);

    pub(super) fn fastscan_avx2(codes: &[u8], lut: &[u8], out: &mut [u16]) {
        // SAFETY: only installed by `Kernels::for_isa` after `Isa::Avx2.is_supported()`.
        unsafe { crate::distance::fastscan::x86::scan_avx2(codes, lut, out) }
    }

    pub(super) fn fastscan_avx512(codes: &[u8], lut: &[u8], out: &mut [u16]) {
        // SAFETY: only installed by `Kernels::for_isa` after `Isa::Avx512.is_supported()`
        // (AVX-512 F/BW/VL) and a check for AVX2.
        unsafe { crate::distance::fastscan::x86::scan_avx512(codes, lut, out) }
    }

    /// `popcnt` is checked separately from AVX2 (every AVX2 CPU has it, but nothing promises).
    pub(super) fn popcount4_popcnt(code: &[u64], planes: &[u64]) -> u32 {
        // SAFETY: only installed by `Kernels::for_isa` after checking `popcnt`.
        unsafe { crate::distance::bits::x86::popcount4_popcnt(code, planes) }
    }

    pub(super) fn popcount4_batch_popcnt(
        codes: &[u64],
        words: usize,
        ids: &[u32],
        planes: &[u64],
        out: &mut [u32],
    ) {
        // SAFETY: only installed by `Kernels::for_isa` after checking `popcnt`.
        unsafe {
            crate::distance::bits::x86::popcount4_batch_popcnt(codes, words, ids, planes, out)
        }
    }

    pub(super) fn popcount4_batch_avx512(
        codes: &[u64],
        words: usize,
        ids: &[u32],
        planes: &[u64],
        out: &mut [u32],
    ) {
        // SAFETY: only installed by `Kernels::for_isa` after checking `avx512vpopcntdq`.
        unsafe {
            crate::distance::bits::x86::popcount4_batch_avx512(codes, words, ids, planes, out)
        }
    }

    pub(super) fn hamming_popcnt(a: &[u64], b: &[u64]) -> u32 {
        // SAFETY: only installed by `Kernels::for_isa` after checking `popcnt`.
        unsafe { crate::distance::bits::x86::hamming_popcnt(a, b) }
    }

    /// VPOPCNTDQ is an AVX-512 extension of its own (checked apart from F/BW/VL).
    pub(super) fn popcount4_avx512(code: &[u64], planes: &[u64]) -> u32 {
        // SAFETY: only installed by `Kernels::for_isa` after checking `avx512vpopcntdq`.
        unsafe { crate::distance::bits::x86::popcount4_avx512(code, planes) }
    }

    pub(super) fn hamming_avx512(a: &[u64], b: &[u64]) -> u32 {
        // SAFETY: only installed by `Kernels::for_isa` after checking `avx512vpopcntdq`.
        unsafe { crate::distance::bits::x86::hamming_avx512(a, b) }
    }

    /// VNNI is checked separately from the rest of AVX-512 (some AVX-512 CPUs lack it).
    pub(super) fn dot_u8i8_vnni(a: &[u8], b: &[i8]) -> i32 {
        // SAFETY: only installed by `Kernels::for_isa` after checking `avx512vnni` too.
        unsafe { crate::distance::avx512::dot_u8i8_vnni(a, b) }
    }
}

impl Kernels {
    /// The kernels for `isa`, or `None` when this CPU cannot run them.
    pub fn for_isa(isa: Isa) -> Option<Kernels> {
        if !isa.is_supported() {
            return None;
        }
        match isa {
            Isa::Scalar => Some(SCALAR),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => Some(Kernels {
                isa,
                dot: safe::avx2::dot,
                l2sq: safe::avx2::l2sq,
                l1: safe::avx2::l1,
                dot_i8: safe::avx2::dot_i8,
                l2sq_i8: safe::avx2::l2sq_i8,
                dot_u8i8: safe::avx2::dot_u8i8,
                fastscan: safe::fastscan_avx2,
                popcount4: popcnt_or(safe::popcount4_popcnt, bits::popcount4_scalar),
                popcount4_batch: popcnt_or(
                    safe::popcount4_batch_popcnt,
                    bits::popcount4_batch_scalar,
                ),
                hamming: popcnt_or(safe::hamming_popcnt, bits::hamming_scalar),
            }),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => Some(Kernels {
                isa,
                dot: safe::avx512::dot,
                l2sq: safe::avx512::l2sq,
                l1: safe::avx512::l1,
                dot_i8: safe::avx512::dot_i8,
                l2sq_i8: safe::avx512::l2sq_i8,
                dot_u8i8: if is_x86_feature_detected!("avx512vnni") {
                    safe::dot_u8i8_vnni
                } else {
                    safe::avx512::dot_u8i8
                },
                fastscan: if is_x86_feature_detected!("avx2") {
                    safe::fastscan_avx512
                } else {
                    fastscan::scan_scalar
                },
                popcount4: if is_x86_feature_detected!("avx512vpopcntdq") {
                    safe::popcount4_avx512
                } else {
                    popcnt_or(safe::popcount4_popcnt, bits::popcount4_scalar)
                },
                popcount4_batch: if is_x86_feature_detected!("avx512vpopcntdq") {
                    safe::popcount4_batch_avx512
                } else {
                    popcnt_or(safe::popcount4_batch_popcnt, bits::popcount4_batch_scalar)
                },
                hamming: if is_x86_feature_detected!("avx512vpopcntdq") {
                    safe::hamming_avx512
                } else {
                    popcnt_or(safe::hamming_popcnt, bits::hamming_scalar)
                },
            }),
            #[cfg(not(target_arch = "x86_64"))]
            _ => None,
        }
    }

    /// The best kernels this CPU supports, capped by `SEXTANT_ISA` when it is set.
    fn detect() -> Kernels {
        let cap = std::env::var("SEXTANT_ISA").ok().and_then(|s| {
            [Isa::Scalar, Isa::Avx2, Isa::Avx512]
                .into_iter()
                .find(|i| i.name() == s.trim())
        });
        [Isa::Avx512, Isa::Avx2]
            .into_iter()
            .filter(|&isa| cap.is_none_or(|cap| isa <= cap))
            .find_map(Kernels::for_isa)
            .unwrap_or(SCALAR)
    }

    /// The f32 kernel that computes `metric`'s internal distance (smaller is closer).
    pub fn distance(&self, kind: sextant_core::KernelKind) -> F32Kernel {
        use sextant_core::KernelKind;
        match kind {
            KernelKind::NegDot => match self.isa {
                Isa::Scalar => neg_dot_scalar,
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => neg_dot_avx2,
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => neg_dot_avx512,
                #[cfg(not(target_arch = "x86_64"))]
                _ => neg_dot_scalar,
            },
            KernelKind::L2Squared => self.l2sq,
            KernelKind::L1 => self.l1,
            KernelKind::Jaccard => scalar::jaccard,
        }
    }
}

/// `with` when the CPU has the `popcnt` instruction, else `without`.
#[cfg(target_arch = "x86_64")]
fn popcnt_or<K>(with: K, without: K) -> K {
    if is_x86_feature_detected!("popcnt") {
        with
    } else {
        without
    }
}

// Negated inner products as direct functions (no closure over a pointer), so the hot loop pays a
// single indirect call.
fn neg_dot_scalar(a: &[f32], b: &[f32]) -> f32 {
    -scalar::dot(a, b)
}
#[cfg(target_arch = "x86_64")]
fn neg_dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    -safe::avx2::dot(a, b)
}
#[cfg(target_arch = "x86_64")]
fn neg_dot_avx512(a: &[f32], b: &[f32]) -> f32 {
    -safe::avx512::dot(a, b)
}

/// The process-wide kernels, detected once.
pub fn kernels() -> &'static Kernels {
    static KERNELS: OnceLock<Kernels> = OnceLock::new();
    KERNELS.get_or_init(Kernels::detect)
}

/// Inner product with the best available kernel.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    (kernels().dot)(a, b)
}

/// Squared Euclidean distance with the best available kernel.
pub fn l2sq(a: &[f32], b: &[f32]) -> f32 {
    (kernels().l2sq)(a, b)
}

/// Manhattan distance with the best available kernel.
pub fn l1(a: &[f32], b: &[f32]) -> f32 {
    (kernels().l1)(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn supported() -> Vec<Kernels> {
        [Isa::Scalar, Isa::Avx2, Isa::Avx512]
            .into_iter()
            .filter_map(Kernels::for_isa)
            .collect()
    }

    /// Exact (f64) references and the magnitude that bounds f32 rounding error.
    fn reference(a: &[f32], b: &[f32]) -> [(f64, f64); 3] {
        let (mut dot, mut dot_mag, mut l2, mut l1) = (0.0, 0.0, 0.0, 0.0);
        for (&x, &y) in a.iter().zip(b) {
            let (x, y) = (f64::from(x), f64::from(y));
            dot += x * y;
            dot_mag += (x * y).abs();
            l2 += (x - y) * (x - y);
            l1 += (x - y).abs();
        }
        [(dot, dot_mag), (l2, l2), (l1, l1)]
    }

    /// Tolerance: a relative 1e-5 of the sum of absolute terms (f32 summation in any order of up
    /// to a few thousand terms stays far inside it), plus 1e-6 absolute for values near zero.
    fn close(got: f32, (exact, magnitude): (f64, f64)) -> bool {
        (f64::from(got) - exact).abs() <= 1e-5 * magnitude + 1e-6
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn f32_kernels_match_reference(
            (a, b) in (0usize..300).prop_flat_map(|n| (
                proptest::collection::vec(-100.0f32..100.0, n),
                proptest::collection::vec(-100.0f32..100.0, n),
            ))
        ) {
            let refs = reference(&a, &b);
            for k in supported() {
                prop_assert!(close((k.dot)(&a, &b), refs[0]), "{:?} dot", k.isa);
                prop_assert!(close((k.l2sq)(&a, &b), refs[1]), "{:?} l2sq", k.isa);
                prop_assert!(close((k.l1)(&a, &b), refs[2]), "{:?} l1", k.isa);
            }
        }

        #[test]
        fn i8_kernels_are_exact(
            (a, b) in (0usize..600).prop_flat_map(|n| (
                proptest::collection::vec(any::<i8>(), n),
                proptest::collection::vec(any::<i8>(), n),
            ))
        ) {
            let dot: i32 = a.iter().zip(&b).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum();
            let l2: i32 = a.iter().zip(&b).map(|(&x, &y)| (i32::from(x) - i32::from(y)).pow(2)).sum();
            let u: Vec<u8> = a.iter().map(|&x| (i16::from(x) + 128) as u8).collect();
            let dot_u8: i32 = u.iter().zip(&b).map(|(&x, &y)| i32::from(x) * i32::from(y)).sum();
            for k in supported() {
                prop_assert_eq!((k.dot_i8)(&a, &b), dot, "{:?}", k.isa);
                prop_assert_eq!((k.l2sq_i8)(&a, &b), l2, "{:?}", k.isa);
                prop_assert_eq!((k.dot_u8i8)(&u, &b), dot_u8, "{:?}", k.isa);
            }
        }

        /// Fast scan against a plain per-vector sum of table entries (not the scalar kernel's
        /// loop), every pair count up to the u16 limit's 128 pairs, odd counts included, over
        /// one to three blocks.
        #[test]
        fn fastscan_kernels_are_exact(
            (codes, lut, blocks) in (0usize..=128, 1usize..=3).prop_flat_map(|(pairs, blocks)| (
                proptest::collection::vec(any::<u8>(), blocks * pairs * 32),
                proptest::collection::vec(any::<u8>(), pairs * 32),
                Just(blocks),
            ))
        ) {
            let pairs = lut.len() / 32;
            let want: Vec<u16> = (0..blocks * 32)
                .map(|i| {
                    let (b, v) = (i / 32, i % 32);
                    (0..pairs)
                        .map(|p| {
                            let c = codes[(b * pairs + p) * 32 + fastscan_slot(v)];
                            u16::from(lut[32 * p + usize::from(c % 16)])
                                + u16::from(lut[32 * p + 16 + usize::from(c / 16)])
                        })
                        .sum()
                })
                .collect();
            for k in supported() {
                let mut out = vec![7u16; blocks * 32];
                (k.fastscan)(&codes, &lut, &mut out);
                prop_assert_eq!(&out, &want, "{:?}", k.isa);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]

        /// Popcount kernels against per-bit loops (not the scalar kernels' word loops), every
        /// word count from 0 to 40 so the AVX-512 kernels' masked tails are all exercised.
        #[test]
        fn popcount_kernels_match_bit_loops(
            (code, planes, other) in (0usize..=40).prop_flat_map(|w| (
                proptest::collection::vec(any::<u64>(), w),
                proptest::collection::vec(any::<u64>(), 4 * w),
                proptest::collection::vec(any::<u64>(), w),
            ))
        ) {
            let words = code.len();
            let bit = |v: &[u64], i: usize| (v[i / 64] >> (i % 64)) & 1;
            let mut weighted = 0u32;
            let mut differing = 0u32;
            for i in 0..64 * words {
                if bit(&code, i) == 1 {
                    for j in 0..4 {
                        weighted += (bit(&planes[j * words..(j + 1) * words], i) as u32) << j;
                    }
                }
                differing += (bit(&code, i) ^ bit(&other, i)) as u32;
            }
            for k in supported() {
                prop_assert_eq!((k.popcount4)(&code, &planes), weighted, "{:?}", k.isa);
                // The batch kernel over 11 ids (a group of eight and a tail) picking the code
                // and another one from a store of five codes.
                let store: Vec<u64> = [&other[..], &code[..], &code[..], &other[..], &code[..]].concat();
                let ids = [1, 4, 2, 0, 3, 1, 4, 0, 2, 3, 1];
                let other_weighted = bits::popcount4_scalar(&other, &planes);
                let want: Vec<u32> = ids
                    .iter()
                    .map(|&id| if id % 3 == 0 { other_weighted } else { weighted })
                    .collect();
                let mut out = [9u32; 11];
                (k.popcount4_batch)(&store, words, &ids, &planes, &mut out);
                prop_assert_eq!(&out[..], &want[..], "{:?} batch", k.isa);
                prop_assert_eq!((k.hamming)(&code, &other), differing, "{:?}", k.isa);
            }
        }
    }

    /// The AVX-512 set falls back to `popcnt` without VPOPCNTDQ: check both x86 variants
    /// directly, whichever one `for_isa` picked.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn every_x86_popcount_variant_matches_scalar() {
        for words in [0usize, 1, 7, 8, 9, 16, 17] {
            let code: Vec<u64> = (0..words as u64)
                .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
                .collect();
            let planes: Vec<u64> = (0..4 * words as u64)
                .map(|i| !i.wrapping_mul(0xbf58_476d_1ce4_e5b9))
                .collect();
            let want = (
                bits::popcount4_scalar(&code, &planes),
                bits::hamming_scalar(&code, &planes[..words]),
            );
            if is_x86_feature_detected!("popcnt") {
                assert_eq!(
                    safe::popcount4_popcnt(&code, &planes),
                    want.0,
                    "words={words}"
                );
                assert_eq!(
                    safe::hamming_popcnt(&code, &planes[..words]),
                    want.1,
                    "words={words}"
                );
            }
            let store: Vec<u64> = [&planes[..], &code[..]].concat();
            let batch = |kernel: Popcount4BatchKernel| {
                let mut out = [0u32; 2];
                kernel(&store, words.max(1), &[4, 4], &planes, &mut out);
                out
            };
            if words > 0 {
                assert_eq!(
                    batch(bits::popcount4_batch_scalar),
                    [want.0; 2],
                    "words={words}"
                );
            }
            if is_x86_feature_detected!("popcnt") && words > 0 {
                assert_eq!(
                    batch(safe::popcount4_batch_popcnt),
                    [want.0; 2],
                    "words={words}"
                );
            }
            if is_x86_feature_detected!("avx512f") && is_x86_feature_detected!("avx512vpopcntdq") {
                if words > 0 {
                    assert_eq!(
                        batch(safe::popcount4_batch_avx512),
                        [want.0; 2],
                        "words={words}"
                    );
                }
                assert_eq!(
                    safe::popcount4_avx512(&code, &planes),
                    want.0,
                    "words={words}"
                );
                assert_eq!(
                    safe::hamming_avx512(&code, &planes[..words]),
                    want.1,
                    "words={words}"
                );
            }
        }
        // Saturated: every bit of the code and planes set.
        let ones = vec![u64::MAX; 4 * 16];
        for k in supported() {
            assert_eq!(
                (k.popcount4)(&ones[..16], &ones),
                15 * 64 * 16,
                "{:?}",
                k.isa
            );
        }
    }

    #[test]
    fn fastscan_saturated_tables_do_not_overflow() {
        let pairs = MAX_SUBQUANTIZERS / 2;
        let (codes, lut) = (vec![0xffu8; pairs * 32], vec![255u8; pairs * 32]);
        for k in supported() {
            let mut out = [0u16; 32];
            (k.fastscan)(&codes, &lut, &mut out);
            assert_eq!(out, [255 * MAX_SUBQUANTIZERS as u16; 32], "{:?}", k.isa);
        }
        // The slots are a permutation of the 32 bytes.
        let mut seen: Vec<usize> = (0..32).map(fastscan_slot).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..32).collect::<Vec<_>>());
    }

    #[test]
    fn extreme_i8_values_do_not_overflow() {
        let a = vec![-128i8; 4096];
        for k in supported() {
            assert_eq!((k.dot_i8)(&a, &a), 128 * 128 * 4096, "{:?}", k.isa);
            assert_eq!(
                (k.l2sq_i8)(&a, &[127i8; 4096]),
                255 * 255 * 4096,
                "{:?}",
                k.isa
            );
            let u8_max = [255u8; 4096];
            assert_eq!((k.dot_u8i8)(&u8_max, &a), -255 * 128 * 4096, "{:?}", k.isa);
        }
    }

    /// The AVX-512 u8 × i8 kernel without VNNI is not the one `for_isa` picks on VNNI CPUs;
    /// check it directly against the scalar reference.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn avx512_u8i8_without_vnni_matches_scalar() {
        if !Isa::Avx512.is_supported() {
            return;
        }
        for n in [0, 1, 31, 32, 33, 100, 784] {
            let a: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
            let b: Vec<i8> = (0..n).map(|i: i32| (i * 91 % 256 - 128) as i8).collect();
            assert_eq!(
                safe::avx512::dot_u8i8(&a, &b),
                scalar::dot_u8i8(&a, &b),
                "n={n}"
            );
        }
    }

    #[test]
    fn neg_dot_is_negated_dot() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        for k in supported() {
            let f = k.distance(sextant_core::KernelKind::NegDot);
            assert_eq!(f(&a, &a), -(k.dot)(&a, &a));
        }
    }

    /// The Jaccard kernel is the set definition on 0/1 vectors of every length (whole groups of
    /// eight and a remainder), 0 for two all-zero vectors, and L1 counts the differing bits.
    #[test]
    fn binary_metrics_follow_their_set_definitions() {
        let mut x = 0x9e37_79b9_u32;
        let mut bit = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x & 1) as f32
        };
        for n in 1..=40 {
            let a: Vec<f32> = (0..n).map(|_| bit()).collect();
            let b: Vec<f32> = (0..n).map(|_| bit()).collect();
            let and = a
                .iter()
                .zip(&b)
                .filter(|(p, q)| **p == 1.0 && **q == 1.0)
                .count();
            let or = a
                .iter()
                .zip(&b)
                .filter(|(p, q)| **p == 1.0 || **q == 1.0)
                .count();
            let differ = a.iter().zip(&b).filter(|(p, q)| p != q).count();
            let want = if or == 0 {
                0.0
            } else {
                1.0 - and as f32 / or as f32
            };
            for k in supported() {
                let jaccard = k.distance(sextant_core::KernelKind::Jaccard);
                assert!((jaccard(&a, &b) - want).abs() < 1e-6, "n {n}");
                assert_eq!((k.l1)(&a, &b), differ as f32, "n {n}");
            }
        }
        let zeros = [0.0f32; 9];
        assert_eq!(
            kernels().distance(sextant_core::KernelKind::Jaccard)(&zeros, &zeros),
            0.0
        );
    }

    #[test]
    fn detection_picks_a_supported_isa() {
        assert!(kernels().isa.is_supported());
    }
}
