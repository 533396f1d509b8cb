//! The AVX512-BF16 micro-kernel (and the f32 → bf16 row conversion the AMX kernel shares).
//!
//! Every function here is `#[target_feature]` code reached only through [`matmul`], which
//! asserts [`super::hardware`] (AVX-512 F/BW and BF16 present) before calling any of it. Pointer
//! arithmetic stays inside slices whose lengths are checked at the top of each function.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512, __m512bh, __m512i, _mm512_cvtne2ps_pbh, _mm512_dpbf16_ps, _mm512_loadu_si512,
    _mm512_mask_storeu_epi16, _mm512_mask_storeu_ps, _mm512_maskz_loadu_ps, _mm512_set1_epi32,
    _mm512_setzero_ps, _mm512_storeu_ps,
};

use super::{MR, PANEL};

/// f32 lanes of a register.
const LANES: usize = 16;
/// Registers of output columns per panel.
const REGS: usize = PANEL / LANES;

/// `c[m, n] = a[m, k] · W` for one row block, `W` packed by `super::pack_panels`.
pub(super) fn matmul(a: &[f32], panels: &[u32], k: usize, n: usize, c: &mut [f32]) {
    assert!(
        super::hardware(),
        "AVX512-BF16 kernel called on a CPU without it"
    );
    let m = c.len() / n;
    let pairs = super::padded_pairs(k);
    assert_eq!(a.len(), m * k);
    assert_eq!(c.len(), m * n);
    assert!(panels.len() >= n.div_ceil(PANEL) * pairs * PANEL);
    // Activations as bf16, rows padded with zero pairs to the packed layout's: one u32 per
    // (2q, 2q + 1) pair.
    let mut abf = vec![0u32; m * pairs];
    for (src, dst) in a.chunks_exact(k).zip(abf.chunks_exact_mut(pairs)) {
        // SAFETY: `hardware()` was asserted above; `dst[..⌈k/2⌉]` holds the pairs for the
        // bf16 of `src`'s k values.
        unsafe { convert_row(src, &mut dst[..k.div_ceil(2)]) };
    }
    for p in 0..n.div_ceil(PANEL) {
        let panel = &panels[p * pairs * PANEL..(p + 1) * pairs * PANEL];
        let cols = (n - p * PANEL).min(PANEL);
        let mut i = 0;
        while i < m {
            let rows = (m - i).min(MR);
            let a_rows = &abf[i * pairs..(i + rows) * pairs];
            let c_rows = &mut c[i * n + p * PANEL..];
            // SAFETY: features asserted above; `a_rows` has `rows` rows of `pairs`, `panel` has `pairs` ×
            // PANEL slots, `c_rows` starts at column `p · PANEL` of row `i` and reaches at least
            // `(rows - 1) · n + cols` elements, the furthest the kernel writes.
            unsafe {
                match rows {
                    6 => kernel::<6>(a_rows, pairs, panel, c_rows, n, cols),
                    5 => kernel::<5>(a_rows, pairs, panel, c_rows, n, cols),
                    4 => kernel::<4>(a_rows, pairs, panel, c_rows, n, cols),
                    3 => kernel::<3>(a_rows, pairs, panel, c_rows, n, cols),
                    2 => kernel::<2>(a_rows, pairs, panel, c_rows, n, cols),
                    _ => kernel::<1>(a_rows, pairs, panel, c_rows, n, cols),
                }
            }
            i += rows;
        }
    }
}

/// Rounds `src` to bf16 (to nearest even) into pairs; an odd tail is paired with zero.
///
/// # Safety
/// The CPU must have AVX-512 F/BW and BF16 ([`super::hardware`]).
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
pub(super) unsafe fn convert_row(src: &[f32], dst: &mut [u32]) {
    assert_eq!(dst.len(), src.len().div_ceil(2));
    let mut j = 0;
    while j < src.len() {
        let left = (src.len() - j).min(2 * LANES);
        let lo_n = left.min(LANES);
        let hi_n = left - lo_n;
        let mask = |len: usize| -> u16 { ((1u32 << len) - 1) as u16 };
        // SAFETY: the load masks cover only the `left` f32s from index `j`, inside `src`. The
        // store writes `left` u16s from u16 index `j` of `dst` (u32 index j/2): at most
        // ⌈left/2⌉ u32s, inside `dst` since dst.len() = ⌈src.len()/2⌉ (an odd tail writes the
        // low half of the last u32 only; its high half is the zero padding).
        unsafe {
            let lo = _mm512_maskz_loadu_ps(mask(lo_n), src.as_ptr().add(j));
            let hi = _mm512_maskz_loadu_ps(mask(hi_n), src.as_ptr().add(j + LANES));
            let packed = _mm512_cvtne2ps_pbh(hi, lo);
            let m32: u32 = if left == 32 {
                u32::MAX
            } else {
                (1u32 << left) - 1
            };
            _mm512_mask_storeu_epi16(
                dst.as_mut_ptr().add(j / 2).cast::<i16>(),
                m32,
                std::mem::transmute::<__m512bh, __m512i>(packed),
            );
        }
        j += 2 * LANES;
    }
}

/// `R` rows × one panel: `c[r, 0..cols] = Σ_q a[r, q] · panel[q]`, accumulating in 4 × R
/// registers.
#[target_feature(enable = "avx512f,avx512bw,avx512bf16")]
unsafe fn kernel<const R: usize>(
    a: &[u32],
    pairs: usize,
    panel: &[u32],
    c: &mut [f32],
    ldc: usize,
    cols: usize,
) {
    assert!(a.len() >= R * pairs && panel.len() >= pairs * PANEL);
    assert!(cols <= PANEL && c.len() >= (R - 1) * ldc + cols);
    let mut acc = [[_mm512_setzero_ps(); REGS]; R];
    let ap = a.as_ptr();
    let bp = panel.as_ptr();
    for q in 0..pairs {
        // SAFETY: q < pairs, so the four loads read panel[q · PANEL .. (q + 1) · PANEL] and
        // the broadcasts a[r · pairs + q] for r < R, all asserted in bounds above.
        unsafe {
            let b: [__m512bh; REGS] = std::array::from_fn(|j| {
                std::mem::transmute::<__m512i, __m512bh>(_mm512_loadu_si512(
                    bp.add(q * PANEL + j * LANES).cast::<__m512i>(),
                ))
            });
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let x = std::mem::transmute::<__m512i, __m512bh>(_mm512_set1_epi32(
                    *ap.add(r * pairs + q) as i32,
                ));
                for (acc_rj, &bj) in acc_r.iter_mut().zip(&b) {
                    *acc_rj = _mm512_dpbf16_ps(*acc_rj, x, bj);
                }
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        for (j, &v) in acc_r.iter().enumerate() {
            let start = j * LANES;
            if start >= cols {
                break;
            }
            let len = (cols - start).min(LANES);
            // SAFETY: row r, columns start..start + len ≤ cols: inside `c` (asserted above).
            unsafe { store(c.as_mut_ptr().add(r * ldc + start), v, len) };
        }
    }
}

/// Stores the first `len` (≤ 16) lanes of `v` at `dst`.
#[target_feature(enable = "avx512f")]
unsafe fn store(dst: *mut f32, v: __m512, len: usize) {
    // SAFETY: the caller guarantees `len` writable f32s at `dst`.
    unsafe {
        if len == LANES {
            _mm512_storeu_ps(dst, v);
        } else {
            _mm512_mask_storeu_ps(dst, ((1u32 << len) - 1) as u16, v);
        }
    }
}
