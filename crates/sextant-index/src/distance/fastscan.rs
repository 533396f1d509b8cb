//! 4-bit product-quantisation "fast scan": the sums of 32 vectors' lookup-table entries at once,
//! with the tables held in SIMD registers (`vpshufb` looks up 16 one-byte entries per lane).
//!
//! Layout (see [`crate::ivf`]): a block holds 32 vectors. For each pair of sub-quantisers
//! `(2p, 2p + 1)` it stores 32 bytes; vector `v` sits at byte [`slot`]`(v)` (`2v` for the first
//! 16, `2(v − 16) + 1` for the others, so that the even and odd bytes the kernels sum in
//! separate 16-bit lanes come out in vector order), with its code of `2p` in the low nibble and
//! of `2p + 1` in the high nibble. The query's table for the pair is 32 bytes: the 16 entries of
//! `2p`, then the 16 of `2p + 1`, each an unsigned byte. Sums are exact in u16 for up to 256
//! sub-quantisers (256 × 255 < 65,536).

/// Sums whole blocks: `codes` holds `blocks × pairs × 32` bytes and `lut` `pairs × 32`;
/// `out[32 b + v]` receives vector `v` of block `b`'s total (`out` holds `blocks × 32`).
pub type FastScanKernel = fn(codes: &[u8], lut: &[u8], out: &mut [u16]);

/// Most sub-quantisers a table may have for exact u16 sums.
pub const MAX_SUBQUANTIZERS: usize = 256;

/// The byte of a block's 32-byte row that holds vector `v` (`v < 32`).
#[inline]
pub const fn slot(v: usize) -> usize {
    if v < 16 {
        2 * v
    } else {
        2 * (v - 16) + 1
    }
}

/// The scalar reference.
pub(super) fn scan_scalar(codes: &[u8], lut: &[u8], out: &mut [u16]) {
    let pairs = lut.len() / 32;
    let blocks = out.len() / 32;
    debug_assert_eq!(codes.len(), blocks * pairs * 32);
    out.fill(0);
    for b in 0..blocks {
        for p in 0..pairs {
            let row = &codes[(b * pairs + p) * 32..(b * pairs + p + 1) * 32];
            let t = &lut[32 * p..32 * p + 32];
            for v in 0..32 {
                let c = row[slot(v)];
                out[32 * b + v] +=
                    u16::from(t[usize::from(c & 15)]) + u16::from(t[16 + usize::from(c >> 4)]);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) mod x86 {
    use std::arch::x86_64::*;

    /// Stores one block's sums: the even bytes' lanes are vectors 0–15, the odd ones 16–31.
    ///
    /// # Safety
    /// AVX2 must be supported and `out` must hold 32 values.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn store(even: __m256i, odd: __m256i, out: &mut [u16]) {
        assert!(out.len() >= 32);
        // SAFETY: `out` holds at least 32 u16 = 64 bytes, two unaligned 256-bit stores.
        unsafe {
            _mm256_storeu_si256(out.as_mut_ptr().cast(), even);
            _mm256_storeu_si256(out.as_mut_ptr().add(16).cast(), odd);
        }
    }

    /// Adds pair `p`'s table entries to the even- and odd-vector u16 accumulators.
    ///
    /// # Safety
    /// AVX2 must be supported and `32 * p + 32` must be within both slices.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn pair256(
        codes: &[u8],
        lut: &[u8],
        p: usize,
        even: __m256i,
        odd: __m256i,
    ) -> (__m256i, __m256i) {
        let low = _mm256_set1_epi8(0x0f);
        let byte = _mm256_set1_epi16(0x00ff);
        debug_assert!(32 * p + 32 <= codes.len().min(lut.len()));
        // SAFETY: the caller keeps 32 * p + 32 within both slices.
        let (c, t0, t1) = unsafe {
            (
                _mm256_loadu_si256(codes.as_ptr().add(32 * p).cast()),
                _mm256_broadcastsi128_si256(_mm_loadu_si128(lut.as_ptr().add(32 * p).cast())),
                _mm256_broadcastsi128_si256(_mm_loadu_si128(lut.as_ptr().add(32 * p + 16).cast())),
            )
        };
        let lo = _mm256_and_si256(c, low);
        let hi = _mm256_and_si256(_mm256_srli_epi16::<4>(c), low);
        let d0 = _mm256_shuffle_epi8(t0, lo);
        let d1 = _mm256_shuffle_epi8(t1, hi);
        let even = _mm256_add_epi16(even, _mm256_and_si256(d0, byte));
        let even = _mm256_add_epi16(even, _mm256_and_si256(d1, byte));
        let odd = _mm256_add_epi16(odd, _mm256_srli_epi16::<8>(d0));
        let odd = _mm256_add_epi16(odd, _mm256_srli_epi16::<8>(d1));
        (even, odd)
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub(in crate::distance) unsafe fn scan_avx2(codes: &[u8], lut: &[u8], out: &mut [u16]) {
        let pairs = lut.len() / 32;
        let blocks = out.len() / 32;
        for b in 0..blocks {
            let block = &codes[b * pairs * 32..(b + 1) * pairs * 32];
            let (mut even, mut odd) = (_mm256_setzero_si256(), _mm256_setzero_si256());
            for p in 0..pairs {
                // SAFETY: 32 * p + 32 <= len of `block` and of `lut`.
                (even, odd) = unsafe { pair256(block, lut, p, even, odd) };
            }
            // SAFETY: AVX2 is enabled here; the slice holds 32 values.
            unsafe { store(even, odd, &mut out[32 * b..32 * b + 32]) };
        }
    }

    /// Two pairs per step in the two halves of a 512-bit register.
    ///
    /// # Safety
    /// The CPU must support AVX-512 F and BW (and AVX2).
    #[target_feature(enable = "avx512f,avx512bw,avx2")]
    pub(in crate::distance) unsafe fn scan_avx512(codes: &[u8], lut: &[u8], out: &mut [u16]) {
        let pairs = lut.len() / 32;
        let blocks = out.len() / 32;
        let low = _mm512_set1_epi8(0x0f);
        let byte = _mm512_set1_epi16(0x00ff);
        for b in 0..blocks {
            let block = &codes[b * pairs * 32..(b + 1) * pairs * 32];
            let (mut even, mut odd) = (_mm512_setzero_si512(), _mm512_setzero_si512());
            let mut p = 0;
            while p + 2 <= pairs {
                // SAFETY: 32 * p + 64 <= len of `block` and of `lut`.
                let (c, ta, tb) = unsafe {
                    let base = lut.as_ptr().add(32 * p);
                    let lane =
                        |o: usize| _mm256_broadcastsi128_si256(_mm_loadu_si128(base.add(o).cast()));
                    (
                        _mm512_loadu_si512(block.as_ptr().add(32 * p).cast()),
                        // Lanes: table 2p, 2p, 2(p+1), 2(p+1) (low nibbles) ...
                        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lane(0)), lane(32)),
                        // ... and 2p+1, 2p+1, 2(p+1)+1, 2(p+1)+1 (high nibbles).
                        _mm512_inserti64x4::<1>(_mm512_castsi256_si512(lane(16)), lane(48)),
                    )
                };
                let lo = _mm512_and_si512(c, low);
                let hi = _mm512_and_si512(_mm512_srli_epi16::<4>(c), low);
                let d0 = _mm512_shuffle_epi8(ta, lo);
                let d1 = _mm512_shuffle_epi8(tb, hi);
                even = _mm512_add_epi16(even, _mm512_and_si512(d0, byte));
                even = _mm512_add_epi16(even, _mm512_and_si512(d1, byte));
                odd = _mm512_add_epi16(odd, _mm512_srli_epi16::<8>(d0));
                odd = _mm512_add_epi16(odd, _mm512_srli_epi16::<8>(d1));
                p += 2;
            }
            let mut e = _mm256_add_epi16(
                _mm512_castsi512_si256(even),
                _mm512_extracti64x4_epi64::<1>(even),
            );
            let mut o = _mm256_add_epi16(
                _mm512_castsi512_si256(odd),
                _mm512_extracti64x4_epi64::<1>(odd),
            );
            if p < pairs {
                // SAFETY: p < pairs, so 32 * p + 32 is within `block` and `lut`.
                (e, o) = unsafe { pair256(block, lut, p, e, o) };
            }
            // SAFETY: AVX2 is enabled here; the slice holds 32 values.
            unsafe { store(e, o, &mut out[32 * b..32 * b + 32]) };
        }
    }
}
