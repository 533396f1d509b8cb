//! AVX-512 kernels (16 f32 lanes; the tail uses a masked load, so there is no scalar loop).
//! Callers must have checked `avx512f`, `avx512bw` and `avx512vl` support.

use std::arch::x86_64::*;

macro_rules! f32_kernel {
    ($name:ident, $step:expr) => {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        pub(super) unsafe fn $name(a: &[f32], b: &[f32]) -> f32 {
            debug_assert_eq!(a.len(), b.len());
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut acc = [_mm512_setzero_ps(); 4];
            let mut i = 0;
            // SAFETY (unmasked loads): i + lanes <= n, inside both slices.
            while i + 64 <= n {
                for (j, acc) in acc.iter_mut().enumerate() {
                    let x = unsafe { _mm512_loadu_ps(pa.add(i + 16 * j)) };
                    let y = unsafe { _mm512_loadu_ps(pb.add(i + 16 * j)) };
                    *acc = $step(*acc, x, y);
                }
                i += 64;
            }
            while i + 16 <= n {
                let x = unsafe { _mm512_loadu_ps(pa.add(i)) };
                let y = unsafe { _mm512_loadu_ps(pb.add(i)) };
                acc[1] = $step(acc[1], x, y);
                i += 16;
            }
            if i < n {
                let mask: __mmask16 = (1u16 << (n - i)) - 1;
                // SAFETY: masked-off lanes are not accessed (AVX-512 masked loads suppress
                // faults), and the enabled lanes are i..n, inside both slices.
                let x = unsafe { _mm512_maskz_loadu_ps(mask, pa.add(i)) };
                let y = unsafe { _mm512_maskz_loadu_ps(mask, pb.add(i)) };
                acc[2] = $step(acc[2], x, y);
            }
            let s = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
            _mm512_reduce_add_ps(s)
        }
    };
}

#[target_feature(enable = "avx512f")]
fn dot_step(acc: __m512, x: __m512, y: __m512) -> __m512 {
    _mm512_fmadd_ps(x, y, acc)
}

#[target_feature(enable = "avx512f")]
fn l2_step(acc: __m512, x: __m512, y: __m512) -> __m512 {
    let d = _mm512_sub_ps(x, y);
    _mm512_fmadd_ps(d, d, acc)
}

#[target_feature(enable = "avx512f")]
fn l1_step(acc: __m512, x: __m512, y: __m512) -> __m512 {
    _mm512_add_ps(acc, _mm512_abs_ps(_mm512_sub_ps(x, y)))
}

f32_kernel!(dot, dot_step);
f32_kernel!(l2sq, l2_step);
f32_kernel!(l1, l1_step);

/// i8 (and u8 × i8) kernels widen 32 lanes to i16 and use `madd` (pairwise i16 products summed into i32).
macro_rules! i8_kernel {
    ($name:ident, $a:ty, $widen_a:ident, $combine:expr) => {
        #[target_feature(enable = "avx512f,avx512bw,avx512vl")]
        pub(super) unsafe fn $name(a: &[$a], b: &[i8]) -> i32 {
            debug_assert_eq!(a.len(), b.len());
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut acc = _mm512_setzero_si512();
            let mut i = 0;
            while i < n {
                let left = n - i;
                let mask: __mmask32 = if left >= 32 {
                    u32::MAX
                } else {
                    (1u32 << left) - 1
                };
                // SAFETY: only lanes i..min(i + 32, n) are enabled, inside both slices; masked
                // loads do not touch disabled lanes.
                let x = unsafe { _mm256_maskz_loadu_epi8(mask, pa.add(i).cast()) };
                let y = unsafe { _mm256_maskz_loadu_epi8(mask, pb.add(i)) };
                let (x, y) = ($widen_a(x), _mm512_cvtepi8_epi16(y));
                acc = _mm512_add_epi32(acc, $combine(x, y));
                i += 32;
            }
            _mm512_reduce_add_epi32(acc)
        }
    };
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn dot_i8_combine(x: __m512i, y: __m512i) -> __m512i {
    _mm512_madd_epi16(x, y)
}

#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
fn l2_i8_combine(x: __m512i, y: __m512i) -> __m512i {
    let d = _mm512_sub_epi16(x, y);
    _mm512_madd_epi16(d, d)
}

i8_kernel!(dot_i8, i8, _mm512_cvtepi8_epi16, dot_i8_combine);
i8_kernel!(l2sq_i8, i8, _mm512_cvtepi8_epi16, l2_i8_combine);
// u8 × i8 without VNNI: the first operand is zero-extended instead of sign-extended.
i8_kernel!(dot_u8i8, u8, _mm512_cvtepu8_epi16, dot_i8_combine);

/// u8 × i8 inner product with AVX-512 VNNI: `vpdpbusd` multiplies 64 byte pairs and adds them
/// into 16 i32 lanes in one instruction. Exact: each group of four products is at most
/// 4 · 255 · 128 in magnitude. Callers must also have checked `avx512vnni`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) unsafe fn dot_u8i8_vnni(a: &[u8], b: &[i8]) -> i32 {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm512_setzero_si512(); 2];
    let mut i = 0;
    // SAFETY (unmasked loads): i + 64 <= n, inside both slices.
    while i + 128 <= n {
        for (j, acc) in acc.iter_mut().enumerate() {
            let x = unsafe { _mm512_loadu_si512(pa.add(i + 64 * j).cast()) };
            let y = unsafe { _mm512_loadu_si512(pb.add(i + 64 * j).cast()) };
            *acc = _mm512_dpbusd_epi32(*acc, x, y);
        }
        i += 128;
    }
    while i < n {
        let left = n - i;
        let mask: __mmask64 = if left >= 64 {
            u64::MAX
        } else {
            (1u64 << left) - 1
        };
        // SAFETY: only lanes i..min(i + 64, n) are enabled; masked loads skip the others.
        let x = unsafe { _mm512_maskz_loadu_epi8(mask, pa.add(i).cast()) };
        let y = unsafe { _mm512_maskz_loadu_epi8(mask, pb.add(i)) };
        acc[1] = _mm512_dpbusd_epi32(acc[1], x, y);
        i += 64;
    }
    _mm512_reduce_add_epi32(_mm512_add_epi32(acc[0], acc[1]))
}
