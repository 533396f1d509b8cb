//! AVX2 + FMA kernels (8 f32 lanes). Callers must have checked `avx2` and `fma` support.

use std::arch::x86_64::*;

#[target_feature(enable = "avx2,fma")]
fn hsum256(v: __m256) -> f32 {
    let lo = _mm256_castps256_ps128(v);
    let hi = _mm256_extractf128_ps::<1>(v);
    let s = _mm_add_ps(lo, hi);
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_shuffle_ps::<0b01>(s, s));
    _mm_cvtss_f32(s)
}

/// Shared loop shape of the three f32 kernels: 4 × 8 lanes per step, then 8, then a scalar tail.
macro_rules! f32_kernel {
    ($name:ident, $step:expr, $tail:expr) => {
        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn $name(a: &[f32], b: &[f32]) -> f32 {
            debug_assert_eq!(a.len(), b.len());
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut acc = [_mm256_setzero_ps(); 4];
            let mut i = 0;
            // SAFETY (all loads): i + lanes <= n, so every load stays inside both slices.
            while i + 32 <= n {
                for (j, acc) in acc.iter_mut().enumerate() {
                    let x = unsafe { _mm256_loadu_ps(pa.add(i + 8 * j)) };
                    let y = unsafe { _mm256_loadu_ps(pb.add(i + 8 * j)) };
                    *acc = $step(*acc, x, y);
                }
                i += 32;
            }
            while i + 8 <= n {
                let x = unsafe { _mm256_loadu_ps(pa.add(i)) };
                let y = unsafe { _mm256_loadu_ps(pb.add(i)) };
                acc[0] = $step(acc[0], x, y);
                i += 8;
            }
            let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
            let mut total = hsum256(sum);
            for k in i..n {
                total += $tail(a[k], b[k]);
            }
            total
        }
    };
}

#[target_feature(enable = "avx2,fma")]
fn dot_step(acc: __m256, x: __m256, y: __m256) -> __m256 {
    _mm256_fmadd_ps(x, y, acc)
}

#[target_feature(enable = "avx2,fma")]
fn l2_step(acc: __m256, x: __m256, y: __m256) -> __m256 {
    let d = _mm256_sub_ps(x, y);
    _mm256_fmadd_ps(d, d, acc)
}

#[target_feature(enable = "avx2,fma")]
fn l1_step(acc: __m256, x: __m256, y: __m256) -> __m256 {
    let d = _mm256_sub_ps(x, y);
    let abs = _mm256_andnot_ps(_mm256_set1_ps(-0.0), d);
    _mm256_add_ps(acc, abs)
}

f32_kernel!(dot, dot_step, |x: f32, y: f32| x * y);
f32_kernel!(l2sq, l2_step, |x: f32, y: f32| (x - y) * (x - y));
f32_kernel!(l1, l1_step, |x: f32, y: f32| (x - y).abs());

/// i8 kernels widen 16 lanes to i16 and use `madd` (pairwise i16 products summed into i32).
macro_rules! i8_kernel {
    ($name:ident, $a:ty, $widen_a:ident, $combine:expr, $tail:expr) => {
        #[target_feature(enable = "avx2,fma")]
        pub(super) unsafe fn $name(a: &[$a], b: &[i8]) -> i32 {
            debug_assert_eq!(a.len(), b.len());
            let n = a.len().min(b.len());
            let (pa, pb) = (a.as_ptr(), b.as_ptr());
            let mut acc = _mm256_setzero_si256();
            let mut i = 0;
            while i + 16 <= n {
                // SAFETY: i + 16 <= n; 16 bytes are read from each slice.
                let x = unsafe { _mm_loadu_si128(pa.add(i).cast()) };
                let y = unsafe { _mm_loadu_si128(pb.add(i).cast()) };
                let (x, y) = ($widen_a(x), _mm256_cvtepi8_epi16(y));
                acc = _mm256_add_epi32(acc, $combine(x, y));
                i += 16;
            }
            let mut lanes = [0i32; 8];
            // SAFETY: `lanes` is 32 bytes, exactly one __m256i.
            unsafe { _mm256_storeu_si256(lanes.as_mut_ptr().cast(), acc) };
            let mut total: i32 = lanes.iter().sum();
            for k in i..n {
                total += $tail(a[k], b[k]);
            }
            total
        }
    };
}

#[target_feature(enable = "avx2,fma")]
fn dot_i8_combine(x: __m256i, y: __m256i) -> __m256i {
    _mm256_madd_epi16(x, y)
}

#[target_feature(enable = "avx2,fma")]
fn l2_i8_combine(x: __m256i, y: __m256i) -> __m256i {
    let d = _mm256_sub_epi16(x, y);
    _mm256_madd_epi16(d, d)
}

i8_kernel!(
    dot_i8,
    i8,
    _mm256_cvtepi8_epi16,
    dot_i8_combine,
    |x: i8, y: i8| { i32::from(x) * i32::from(y) }
);
// u8 × i8: the first operand is zero-extended instead of sign-extended.
i8_kernel!(
    dot_u8i8,
    u8,
    _mm256_cvtepu8_epi16,
    dot_i8_combine,
    |x: u8, y: i8| { i32::from(x) * i32::from(y) }
);
i8_kernel!(
    l2sq_i8,
    i8,
    _mm256_cvtepi8_epi16,
    l2_i8_combine,
    |x: i8, y: i8| {
        let d = i32::from(x) - i32::from(y);
        d * d
    }
);
