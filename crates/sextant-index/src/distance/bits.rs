//! Popcount kernels over bit vectors held as `u64` words: the Hamming distance of two codes, and
//! the weighted popcount that scores a 1-bit code against a 4-bit query
//! ([`crate::storage::BinaryCodes`]).
//!
//! A 4-bit query is stored as four bit planes of the code's length, plane `j` holding bit `j`
//! of every component; `Σ_i code_i · q_i = Σ_j 2^j · popcount(code & plane_j)`, so one AND and
//! one popcount per word and plane replace a multiply-add per component.

/// `Σ_j 2^j · popcount(code & planes[j])` over four planes of `code.len()` words each.
pub type Popcount4Kernel = fn(code: &[u64], planes: &[u64]) -> u32;
/// Number of differing bits of two codes of equal length.
pub type HammingKernel = fn(a: &[u64], b: &[u64]) -> u32;
/// [`Popcount4Kernel`] of many codes: `out[i]` receives the weighted popcount of the code at
/// words `ids[i]·words ..` of `codes` (`words` per code) against `planes` (`4 × words`). One
/// call per batch keeps the query's planes in registers and lets the kernel prefetch codes
/// ahead. Panics if a code lies outside `codes`.
pub type Popcount4BatchKernel =
    fn(codes: &[u64], words: usize, ids: &[u32], planes: &[u64], out: &mut [u32]);

/// Codes ahead of the current one that the batch kernels prefetch.
const PREFETCH_AHEAD: usize = 8;

/// The code of `id` in `codes`.
#[inline(always)]
fn code_of(codes: &[u64], words: usize, id: u32) -> &[u64] {
    let start = id as usize * words;
    &codes[start..start + words]
}

pub(super) fn popcount4_batch_scalar(
    codes: &[u64],
    words: usize,
    ids: &[u32],
    planes: &[u64],
    out: &mut [u32],
) {
    for (o, &id) in out.iter_mut().zip(ids) {
        *o = popcount4_scalar(code_of(codes, words, id), planes);
    }
}

/// The scalar reference (`count_ones` without a popcount instruction compiles to bit tricks).
pub(super) fn popcount4_scalar(code: &[u64], planes: &[u64]) -> u32 {
    let words = code.len();
    debug_assert_eq!(planes.len(), 4 * words);
    let mut total = 0u32;
    for (j, plane) in planes.chunks_exact(words.max(1)).take(4).enumerate() {
        let ones: u32 = code
            .iter()
            .zip(plane)
            .map(|(c, p)| (c & p).count_ones())
            .sum();
        total += ones << j;
    }
    total
}

pub(super) fn hamming_scalar(a: &[u64], b: &[u64]) -> u32 {
    debug_assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use std::arch::x86_64::*;

    /// The scalar loops compiled with the `popcnt` instruction.
    ///
    /// # Safety
    /// The CPU must support `popcnt`.
    #[target_feature(enable = "popcnt")]
    pub(in crate::distance) unsafe fn popcount4_popcnt(code: &[u64], planes: &[u64]) -> u32 {
        let words = code.len();
        debug_assert_eq!(planes.len(), 4 * words);
        let mut sums = [0u32; 4];
        for (w, &c) in code.iter().enumerate() {
            for (j, sum) in sums.iter_mut().enumerate() {
                *sum += (c & planes[j * words + w]).count_ones();
            }
        }
        sums[0] + (sums[1] << 1) + (sums[2] << 2) + (sums[3] << 3)
    }

    /// # Safety
    /// The CPU must support `popcnt`.
    #[target_feature(enable = "popcnt")]
    pub(in crate::distance) unsafe fn popcount4_batch_popcnt(
        codes: &[u64],
        words: usize,
        ids: &[u32],
        planes: &[u64],
        out: &mut [u32],
    ) {
        for (i, (o, &id)) in out.iter_mut().zip(ids).enumerate() {
            if let Some(&next) = ids.get(i + super::PREFETCH_AHEAD) {
                prefetch(codes, words, next);
            }
            // SAFETY: this function's own target feature.
            *o = unsafe { popcount4_popcnt(super::code_of(codes, words, id), planes) };
        }
    }

    /// Hints the CPU to load the code of `id` (nothing if it lies outside `codes`).
    #[inline(always)]
    fn prefetch(codes: &[u64], words: usize, id: u32) {
        if let Some(w) = codes.get(id as usize * words) {
            // SAFETY: a prefetch never faults and does not dereference in the Rust sense.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(std::ptr::from_ref(w).cast()) };
        }
    }

    /// # Safety
    /// The CPU must support `popcnt`.
    #[target_feature(enable = "popcnt")]
    pub(in crate::distance) unsafe fn hamming_popcnt(a: &[u64], b: &[u64]) -> u32 {
        a.iter().zip(b).map(|(x, y)| (x ^ y).count_ones()).sum()
    }

    /// Loads up to eight words from `p`, lanes at and past `left` zero.
    ///
    /// # Safety
    /// AVX-512 F must be supported and words `0..min(left, 8)` readable from `p`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn load8(p: *const u64, left: usize) -> __m512i {
        let mask: __mmask8 = if left >= 8 { 0xff } else { (1u8 << left) - 1 };
        // SAFETY: masked-off lanes are not read; the enabled ones are inside the slice.
        unsafe { _mm512_maskz_loadu_epi64(mask, p.cast()) }
    }

    /// Eight words per step with `vpopcntq`; the tail is a masked load.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and VPOPCNTDQ.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    pub(in crate::distance) unsafe fn popcount4_avx512(code: &[u64], planes: &[u64]) -> u32 {
        let words = code.len();
        assert_eq!(planes.len(), 4 * words);
        let mut acc = [_mm512_setzero_si512(); 4];
        let mut w = 0;
        while w < words {
            let left = words - w;
            // SAFETY: `load8` reads words w..min(w + 8, words) of `code` and of each plane,
            // which holds `words` words (asserted above).
            unsafe {
                let c = load8(code.as_ptr().add(w), left);
                for (j, acc) in acc.iter_mut().enumerate() {
                    let p = load8(planes.as_ptr().add(j * words + w), left);
                    *acc = _mm512_add_epi64(*acc, _mm512_popcnt_epi64(_mm512_and_si512(c, p)));
                }
            }
            w += 8;
        }
        let total = _mm512_add_epi64(
            _mm512_add_epi64(acc[0], _mm512_slli_epi64::<1>(acc[1])),
            _mm512_add_epi64(
                _mm512_slli_epi64::<2>(acc[2]),
                _mm512_slli_epi64::<3>(acc[3]),
            ),
        );
        _mm512_reduce_add_epi64(total) as u32
    }

    /// Codes of a multiple of eight words (512 bits: the padded dimension of 257–512-d
    /// vectors, or more) load a code 512 bits at a time unmasked, and eight codes' sums are
    /// reduced together (a transpose of eight vectors of eight lanes, three shuffle-and-add
    /// steps, instead of eight horizontal sums). Other lengths go code by code through
    /// [`popcount4_avx512`].
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and VPOPCNTDQ.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    pub(in crate::distance) unsafe fn popcount4_batch_avx512(
        codes: &[u64],
        words: usize,
        ids: &[u32],
        planes: &[u64],
        out: &mut [u32],
    ) {
        let n = ids.len().min(out.len());
        let whole = if words > 0 && words.is_multiple_of(8) && planes.len() == 4 * words {
            n - n % 8
        } else {
            0
        };
        let mut i = 0;
        while i < whole {
            let mut totals = [_mm512_setzero_si512(); 8];
            for (j, total) in totals.iter_mut().enumerate() {
                if let Some(&next) = ids.get(i + j + super::PREFETCH_AHEAD) {
                    prefetch(codes, words, next);
                }
                let code = super::code_of(codes, words, ids[i + j]);
                let mut acc = [_mm512_setzero_si512(); 4];
                let mut w = 0;
                while w < words {
                    // SAFETY: w + 8 <= words: inside `code` (a bounds-checked slice of `words`
                    // words) and inside each plane (`planes` holds `4 × words`, checked).
                    unsafe {
                        let c = _mm512_loadu_si512(code.as_ptr().add(w).cast());
                        for (k, acc) in acc.iter_mut().enumerate() {
                            let p = _mm512_loadu_si512(planes.as_ptr().add(k * words + w).cast());
                            *acc =
                                _mm512_add_epi64(*acc, _mm512_popcnt_epi64(_mm512_and_si512(c, p)));
                        }
                    }
                    w += 8;
                }
                *total = _mm512_add_epi64(
                    _mm512_add_epi64(acc[0], _mm512_slli_epi64::<1>(acc[1])),
                    _mm512_add_epi64(
                        _mm512_slli_epi64::<2>(acc[2]),
                        _mm512_slli_epi64::<3>(acc[3]),
                    ),
                );
            }
            let sums = transpose_sum(&totals);
            // SAFETY: i + 8 <= n <= out.len(): eight u32 = one 256-bit store.
            unsafe {
                _mm256_storeu_si256(out.as_mut_ptr().add(i).cast(), _mm512_cvtepi64_epi32(sums));
            }
            i += 8;
        }
        for (o, &id) in out[i..n].iter_mut().zip(&ids[i..n]) {
            // SAFETY: this function's own target features.
            *o = unsafe { popcount4_avx512(super::code_of(codes, words, id), planes) };
        }
    }

    /// Lane `j` of the result is the sum of the eight lanes of `t[j]`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn transpose_sum(t: &[__m512i; 8]) -> __m512i {
        let (s01, s23) = (pair(t[0], t[1]), pair(t[2], t[3]));
        let (s45, s67) = (pair(t[4], t[5]), pair(t[6], t[7]));
        fold(fold(s01, s23), fold(s45, s67))
    }

    /// Each 128-bit lane `L` of the result holds (the sum of `a`'s lanes `2L` and `2L + 1`,
    /// the same of `b`).
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn pair(a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi64(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b))
    }

    /// The even and odd 128-bit lanes of `a` then `b`, added: `[a0 + a1, a2 + a3, b0 + b1,
    /// b2 + b3]`.
    #[target_feature(enable = "avx512f")]
    #[inline]
    fn fold(a: __m512i, b: __m512i) -> __m512i {
        _mm512_add_epi64(
            _mm512_shuffle_i64x2::<0b10_00_10_00>(a, b),
            _mm512_shuffle_i64x2::<0b11_01_11_01>(a, b),
        )
    }

    /// # Safety
    /// The CPU must support AVX-512 F and VPOPCNTDQ.
    #[target_feature(enable = "avx512f,avx512vpopcntdq")]
    pub(in crate::distance) unsafe fn hamming_avx512(a: &[u64], b: &[u64]) -> u32 {
        let words = a.len();
        assert_eq!(b.len(), words);
        let mut acc = _mm512_setzero_si512();
        let mut w = 0;
        while w < words {
            // SAFETY: words w..min(w + 8, words) of both slices, which have `words` words.
            unsafe {
                let x = load8(a.as_ptr().add(w), words - w);
                let y = load8(b.as_ptr().add(w), words - w);
                acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(x, y)));
            }
            w += 8;
        }
        _mm512_reduce_add_epi64(acc) as u32
    }
}
