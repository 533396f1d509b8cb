//! The AVX-512 VNNI micro-kernel: `vpdpbusd` multiplies four unsigned activation bytes by four
//! signed weight bytes per lane and adds them to an i32 lane, 64 products per instruction.
//!
//! Every function here is `#[target_feature]` code reached only through [`matmul`], which
//! asserts [`available`] before calling any of it. Pointer arithmetic stays inside slices whose
//! lengths are checked at the top of each function.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512i, _mm512_add_ps, _mm512_cvtepi32_ps, _mm512_cvttps_epi32, _mm512_dpbusd_epi32,
    _mm512_loadu_ps, _mm512_loadu_si512, _mm512_mask_cvtepi32_storeu_epi8, _mm512_mask_storeu_ps,
    _mm512_maskz_loadu_epi32, _mm512_maskz_loadu_ps, _mm512_max_ps, _mm512_min_ps, _mm512_mul_ps,
    _mm512_mullo_epi32, _mm512_reduce_max_ps, _mm512_reduce_min_ps, _mm512_set1_epi32,
    _mm512_set1_ps, _mm512_setzero_ps, _mm512_setzero_si512, _mm512_storeu_ps, _mm512_sub_epi32,
};
use std::sync::LazyLock;

use super::{RowQuant, MR, PANEL};

/// i32 lanes of a register.
const LANES: usize = 16;
/// Registers of output columns per panel.
const REGS: usize = PANEL / LANES;

/// Whether this CPU runs `vpdpbusd` on 512-bit registers (detected once).
pub(super) fn available() -> bool {
    static HW: LazyLock<bool> = LazyLock::new(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
            && std::arch::is_x86_feature_detected!("avx512vnni")
    });
    *HW
}

/// `c[r, ..n]` (row `r` at `r · ldc`) for one row block: `rows` holds `m` rows of `quads`
/// activation quads (unsigned bytes), `panels` the weights packed by `Part::pack_as`;
/// `params[i]` is row `i`'s quantisation, `scale` and `colsum` the weights' per column (`n`).
#[allow(clippy::too_many_arguments)]
pub(super) fn matmul(
    rows: &[u32],
    quads: usize,
    panels: &[u32],
    params: &[RowQuant],
    scale: &[f32],
    colsum: &[i32],
    c: &mut [f32],
    ldc: usize,
) {
    assert!(
        available(),
        "AVX-512 VNNI kernel called on a CPU without it"
    );
    let (m, n) = (params.len(), scale.len());
    assert_eq!(rows.len(), m * quads);
    assert!(colsum.len() == n && m > 0 && c.len() >= (m - 1) * ldc + n);
    assert!(panels.len() >= n.div_ceil(PANEL) * quads * PANEL);
    for p in 0..n.div_ceil(PANEL) {
        let panel = &panels[p * quads * PANEL..(p + 1) * quads * PANEL];
        let c0 = p * PANEL;
        let cols = (n - c0).min(PANEL);
        let cols_of = Columns {
            scale: &scale[c0..c0 + cols],
            colsum: &colsum[c0..c0 + cols],
        };
        let mut i = 0;
        while i < m {
            let r = (m - i).min(MR);
            let a = &rows[i * quads..(i + r) * quads];
            let pr = &params[i..i + r];
            let c_rows = &mut c[i * ldc + c0..];
            // SAFETY: features asserted above; `a` has `r` rows of `quads`, `panel` has
            // `quads` × PANEL slots, `c_rows` starts at column `c0` of row `i` and reaches at
            // least `(r - 1) · ldc + cols` elements, the furthest the kernel writes.
            unsafe {
                match r {
                    6 => kernel::<6>(a, quads, panel, pr, &cols_of, c_rows, ldc),
                    5 => kernel::<5>(a, quads, panel, pr, &cols_of, c_rows, ldc),
                    4 => kernel::<4>(a, quads, panel, pr, &cols_of, c_rows, ldc),
                    3 => kernel::<3>(a, quads, panel, pr, &cols_of, c_rows, ldc),
                    2 => kernel::<2>(a, quads, panel, pr, &cols_of, c_rows, ldc),
                    _ => kernel::<1>(a, quads, panel, pr, &cols_of, c_rows, ldc),
                }
            }
            i += r;
        }
    }
}

/// A panel's per-column dequantisation.
struct Columns<'a> {
    scale: &'a [f32],
    colsum: &'a [i32],
}

/// `R` rows × one panel: i32 sums in 4 × R registers, then `(acc − zero · colsum) · a_scale ·
/// scale` into `c[r, 0..cols]`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn kernel<const R: usize>(
    a: &[u32],
    quads: usize,
    panel: &[u32],
    params: &[RowQuant],
    cols_of: &Columns<'_>,
    c: &mut [f32],
    ldc: usize,
) {
    let cols = cols_of.scale.len();
    assert!(a.len() >= R * quads && panel.len() >= quads * PANEL && params.len() >= R);
    assert!(cols <= PANEL && cols_of.colsum.len() == cols && c.len() >= (R - 1) * ldc + cols);
    let mut acc = [[_mm512_setzero_si512(); REGS]; R];
    let ap = a.as_ptr();
    let bp = panel.as_ptr();
    for q in 0..quads {
        // SAFETY: q < quads, so the four loads read panel[q · PANEL .. (q + 1) · PANEL] and
        // the broadcasts a[r · quads + q] for r < R, all asserted in bounds above.
        unsafe {
            let b: [__m512i; REGS] = std::array::from_fn(|j| {
                _mm512_loadu_si512(bp.add(q * PANEL + j * LANES).cast::<__m512i>())
            });
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let x = _mm512_set1_epi32(*ap.add(r * quads + q) as i32);
                for (acc_rj, &bj) in acc_r.iter_mut().zip(&b) {
                    *acc_rj = _mm512_dpbusd_epi32(*acc_rj, x, bj);
                }
            }
        }
    }
    for (j, start) in (0..cols).step_by(LANES).enumerate() {
        let len = (cols - start).min(LANES);
        let mask = if len == LANES {
            u16::MAX
        } else {
            ((1u32 << len) - 1) as u16
        };
        // SAFETY: columns start..start + len ≤ cols of the per-column slices and of every row
        // of `c` (asserted above); masked loads and stores touch only those lanes.
        unsafe {
            let colsum = _mm512_maskz_loadu_epi32(mask, cols_of.colsum.as_ptr().add(start));
            let scale = if len == LANES {
                _mm512_loadu_ps(cols_of.scale.as_ptr().add(start))
            } else {
                _mm512_maskz_loadu_ps(mask, cols_of.scale.as_ptr().add(start))
            };
            for (r, acc_r) in acc.iter().enumerate() {
                let p = params[r];
                let fix = _mm512_mullo_epi32(colsum, _mm512_set1_epi32(p.zero));
                let v = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc_r[j], fix));
                let v = _mm512_mul_ps(_mm512_mul_ps(v, _mm512_set1_ps(p.scale)), scale);
                let dst = c.as_mut_ptr().add(r * ldc + start);
                if len == LANES {
                    _mm512_storeu_ps(dst, v);
                } else {
                    _mm512_mask_storeu_ps(dst, mask, v);
                }
            }
        }
    }
}

/// `super::quantize_row` on sixteen lanes where the CPU has AVX-512 F/BW (every CPU with the
/// VNNI or AMX kernel does): `None` elsewhere.
pub(super) fn quantize_row(x: &[f32], inv_smooth: &[f32], out: &mut [u8]) -> Option<RowQuant> {
    static OK: LazyLock<bool> = LazyLock::new(|| {
        std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw")
    });
    // SAFETY: the features were detected; the callee asserts the slices' lengths.
    (*OK).then(|| unsafe { quantize_row_avx512(x, inv_smooth, out) })
}

/// The same operations as the scalar loop, in the same order per element.
///
/// # Safety
/// The CPU must have AVX-512 F/BW.
#[target_feature(enable = "avx512f,avx512bw")]
unsafe fn quantize_row_avx512(x: &[f32], inv_smooth: &[f32], out: &mut [u8]) -> RowQuant {
    let k = x.len();
    assert!(inv_smooth.len() >= k && out.len() >= k);
    let mask = |len: usize| -> u16 {
        if len >= LANES {
            u16::MAX
        } else {
            ((1u32 << len) - 1) as u16
        }
    };
    let (xp, sp) = (x.as_ptr(), inv_smooth.as_ptr());
    let (mut lo, mut hi) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut j = 0;
    while j < k {
        let m = mask(k - j);
        // SAFETY: the masked loads read lanes j..min(j + 16, k), inside both slices.
        unsafe {
            let y = _mm512_mul_ps(
                _mm512_maskz_loadu_ps(m, xp.add(j)),
                _mm512_maskz_loadu_ps(m, sp.add(j)),
            );
            // Masked-off lanes are 0, which the range includes anyway.
            lo = _mm512_min_ps(lo, y);
            hi = _mm512_max_ps(hi, y);
        }
        j += LANES;
    }
    let Some(p) = super::row_params(_mm512_reduce_min_ps(lo), _mm512_reduce_max_ps(hi)) else {
        out[..k].fill(0);
        return RowQuant {
            scale: 1.0,
            zero: 0,
        };
    };
    let inv = _mm512_set1_ps(1.0 / p.scale);
    let zero = _mm512_set1_ps(p.zero as f32);
    let (zero_f, top, half) = (
        _mm512_setzero_ps(),
        _mm512_set1_ps(255.0),
        _mm512_set1_ps(0.5),
    );
    let op = out.as_mut_ptr();
    let mut j = 0;
    while j < k {
        let m = mask(k - j);
        // SAFETY: as above; the store writes the same lanes' bytes, inside `out`.
        unsafe {
            let y = _mm512_mul_ps(
                _mm512_maskz_loadu_ps(m, xp.add(j)),
                _mm512_maskz_loadu_ps(m, sp.add(j)),
            );
            let v = _mm512_add_ps(_mm512_mul_ps(y, inv), zero);
            let v = _mm512_add_ps(_mm512_min_ps(_mm512_max_ps(v, zero_f), top), half);
            let q = _mm512_cvttps_epi32(v);
            _mm512_mask_cvtepi32_storeu_epi8(op.add(j).cast::<i8>(), m, q);
        }
        j += LANES;
    }
    p
}
