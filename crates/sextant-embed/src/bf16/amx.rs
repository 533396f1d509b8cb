//! The AMX kernels: bf16 tile products (`tdpbf16ps`) for CPUs that expose Intel AMX, and the
//! int8 ones (`tdpbusd`) that `crate::int8` drives.
//!
//! On Intel cores `vdpbf16ps` does 32 bf16 multiply-adds per instruction but issues on one port,
//! where two ports issue 16-lane f32 FMAs: the AVX512-BF16 kernel then has the f32 kernel's peak
//! and pays the conversions on top (issue 22: 0.65× our f32 on such a Xeon). AMX multiplies a
//! 16 × 32 bf16 tile by a 32 × 16 one into 16 × 16 f32 accumulators in one instruction, many
//! times the FMA rate, so on CPUs that have it this is the bf16 path.
//!
//! Layout: AMX reads its second operand in "VNNI" rows — for every pair of rows `(2q, 2q + 1)`
//! one `u32` per column, as the AVX512-BF16 panels hold them — and we store the weights as whole
//! tiles ([`pack_tiles`]): 16 pair-rows × 16 columns contiguous, so every tile load reads 1 KiB
//! in a row (loads at a stride, straight from the panels, took half the time). The activations
//! are converted to bf16 pairs and laid out as tiles the same way, padded with zero rows to a
//! multiple of 32 and zero pairs to [`KB`]. Each step multiplies a 32-row × 32-column block with
//! four accumulator tiles (2 × 2), two A tiles and two B tiles: all eight tile registers.
//!
//! `unsafe` here is the inline assembly of the tile instructions (stable Rust has no AMX
//! intrinsics), the Linux permission request, and the pointer arithmetic of tile loads and
//! stores, each against bounds asserted at the top of [`matmul`].
#![allow(unsafe_code)]

use std::arch::asm;
use std::sync::LazyLock;

use super::KB;

/// Rows and columns of one accumulator tile (f32).
const T: usize = 16;
/// Rows (and columns) of the block one step computes: 2 × 2 accumulator tiles.
const BLOCK: usize = 2 * T;

/// Whether this CPU and kernel run AMX bf16 tiles: CPUID says AMX-TILE and AMX-BF16, the
/// conversion kernel's AVX512-BF16 is there, and Linux granted the process the tile data state
/// (`arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`, asked once).
pub(crate) fn available() -> bool {
    static OK: LazyLock<bool> = LazyLock::new(|| {
        if !super::hardware() {
            return false;
        }
        // CPUID leaf 7 exists on every x86-64 CPU with AVX-512 (checked above).
        let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
        let (bf16, tile) = ((leaf7.edx >> 22) & 1 == 1, (leaf7.edx >> 24) & 1 == 1);
        bf16 && tile && request_tile_permission()
    });
    *OK
}

#[cfg(target_os = "linux")]
fn request_tile_permission() -> bool {
    const ARCH_REQ_XCOMP_PERM: libc::c_long = 0x1023;
    const XFEATURE_XTILEDATA: libc::c_long = 18;
    // SAFETY: a plain system call with integer arguments; it changes only which register state
    // the kernel lets this process use.
    unsafe {
        libc::syscall(
            libc::SYS_arch_prctl,
            ARCH_REQ_XCOMP_PERM,
            XFEATURE_XTILEDATA,
        ) == 0
    }
}

#[cfg(not(target_os = "linux"))]
fn request_tile_permission() -> bool {
    false
}

/// The 64-byte tile configuration (palette 1): tiles 0–3 accumulators, 4–5 A, 6–7 B, each 16
/// rows of 64 bytes.
#[repr(C, align(64))]
struct TileConfig([u8; 64]);

impl TileConfig {
    fn full() -> Self {
        let mut c = [0u8; 64];
        c[0] = 1;
        for t in 0..8 {
            c[16 + 2 * t] = 64; // bytes per row
            c[48 + t] = T as u8; // rows
        }
        TileConfig(c)
    }
}

/// Packs the row-major `[k, n]` f32 matrix `w` as AMX bf16 B tiles ([`pack_groups`] of pairs of
/// rows, each `u32` the bf16 of rows `2q` (low half) and `2q + 1` (high half)).
pub(super) fn pack_tiles(w: &[f32], k: usize, n: usize) -> Vec<u32> {
    pack_groups(super::padded_pairs(k), n, |q, col| {
        let row = 2 * q;
        if row >= k {
            return 0;
        }
        let lo = super::to_bf16(w[row * n + col]);
        let hi = if row + 1 < k {
            super::to_bf16(w[(row + 1) * n + col])
        } else {
            0
        };
        u32::from(lo) | (u32::from(hi) << 16)
    })
}

/// Lays out a `[groups, n]` matrix of `u32` "groups" (a pair of bf16 or a quad of int8 taken
/// from consecutive rows of one column, the VNNI order the tile product reads) as AMX B tiles:
/// for every block of 16 columns (padded with zeros to a multiple of [`BLOCK`]) and every
/// block of [`KB`] groups, one contiguous 1 KiB tile — 16 group-rows × 16 columns — so that a
/// tile load reads 1 KiB in a row and the k-blocks of a column block follow one another.
/// `groups` must be a multiple of [`KB`]; `group(q, col)` is called for `col < n` only.
pub(crate) fn pack_groups(
    groups: usize,
    n: usize,
    group: impl Fn(usize, usize) -> u32,
) -> Vec<u32> {
    assert!(groups.is_multiple_of(KB));
    let kblocks = groups / KB;
    let cblocks = n.div_ceil(BLOCK) * (BLOCK / T);
    let mut out = vec![0u32; cblocks * kblocks * KB * T];
    for cb in 0..cblocks {
        for qb in 0..kblocks {
            let tile = &mut out[(cb * kblocks + qb) * KB * T..][..KB * T];
            for q in 0..KB {
                for c in 0..T {
                    let col = cb * T + c;
                    if col >= n {
                        break;
                    }
                    tile[q * T + c] = group(qb * KB + q, col);
                }
            }
        }
    }
    out
}

/// `c[m, n] = a[m, k] · W` for one row block, `W` packed by [`pack_tiles`].
pub(super) fn matmul(a: &[f32], tiles: &[u32], k: usize, n: usize, c: &mut [f32]) {
    assert!(available(), "AMX kernel called on a CPU without it");
    let m = c.len() / n;
    let pairs = super::padded_pairs(k);
    let kblocks = pairs / KB;
    assert_eq!(a.len(), m * k);
    assert_eq!(c.len(), m * n);
    let cblocks = n.div_ceil(BLOCK) * (BLOCK / T);
    assert!(tiles.len() >= cblocks * kblocks * KB * T);
    let abf = a_tiles(a, k);
    let cfg = TileConfig::full();
    let mut tmp = [0f32; BLOCK * BLOCK];
    // SAFETY: loads the configuration above (valid palette 1, every tile 16 × 64 bytes).
    unsafe { asm!("ldtilecfg [{0}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly)) };
    for col0 in (0..n).step_by(BLOCK) {
        let cb = col0 / T;
        for row0 in (0..m).step_by(BLOCK) {
            accumulate_block(&abf, tiles, kblocks, row0 / T, cb, Op::Bf16);
            let full = row0 + BLOCK <= m && col0 + BLOCK <= n;
            if full {
                let base = c[row0 * n + col0..].as_mut_ptr();
                // SAFETY: the block's 32 rows and 32 columns are inside `c` (checked by `full`);
                // each store writes 16 rows of 16 f32 at a stride of one row of `c`.
                unsafe { store_block(base, n * 4) };
            } else {
                // SAFETY: `tmp` holds 32 rows of 32 f32.
                unsafe { store_block(tmp.as_mut_ptr(), BLOCK * 4) };
                let cols = BLOCK.min(n - col0);
                for r in 0..BLOCK.min(m - row0) {
                    c[(row0 + r) * n + col0..][..cols].copy_from_slice(&tmp[r * BLOCK..][..cols]);
                }
            }
        }
    }
    // SAFETY: releases the tile state of this thread.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// Activations `a` (`[m, k]` f32) as bf16 A tiles ([`a_layout`] of the rows' bf16 pairs).
pub(super) fn a_tiles(a: &[f32], k: usize) -> Vec<u32> {
    let m = a.len() / k;
    a_layout(m, super::padded_pairs(k), |r, row| {
        // SAFETY: callers assert `available()`, which implies AVX512-BF16; `row[..⌈k/2⌉]`
        // receives the k values.
        unsafe { super::avx512::convert_row(&a[r * k..(r + 1) * k], &mut row[..k.div_ceil(2)]) };
    })
}

/// `m` rows of `groups` `u32` each (`fill(r, row)` writes row `r` into a zeroed buffer) as A
/// tiles: for every block of 16 rows (zero rows pad m to a multiple of [`BLOCK`]) and every
/// k-block, 16 rows × [`KB`] groups contiguous (1 KiB).
pub(crate) fn a_layout(
    m: usize,
    groups: usize,
    mut fill: impl FnMut(usize, &mut [u32]),
) -> Vec<u32> {
    assert!(groups.is_multiple_of(KB));
    let kblocks = groups / KB;
    let rblocks = m.div_ceil(BLOCK) * (BLOCK / T);
    let mut tiles = vec![0u32; rblocks * kblocks * T * KB];
    let mut row = vec![0u32; groups];
    for r in 0..m {
        row.fill(0);
        fill(r, &mut row);
        let (rb, rr) = (r / T, r % T);
        for qb in 0..kblocks {
            tiles[((rb * kblocks + qb) * T + rr) * KB..][..KB]
                .copy_from_slice(&row[qb * KB..(qb + 1) * KB]);
        }
    }
    tiles
}

/// The maximum over rows of `a · W` for the columns `cols` (a multiple of [`BLOCK`] long, or
/// reaching `n`), into `out[..cols.len()]`, never holding more than one 32 × 32 block of the
/// product: what SPLADE needs of its vocabulary-sized logits. `abf` comes from [`a_tiles`] of
/// `m` rows.
pub(super) fn colmax(
    abf: &[u32],
    m: usize,
    tiles: &[u32],
    k: usize,
    n: usize,
    cols: std::ops::Range<usize>,
    out: &mut [f32],
) {
    assert!(available(), "AMX kernel called on a CPU without it");
    let kblocks = super::padded_pairs(k) / KB;
    let rblocks = m.div_ceil(BLOCK) * (BLOCK / T);
    assert!(m > 0 && abf.len() >= rblocks * kblocks * T * KB);
    assert!(cols.start.is_multiple_of(BLOCK) && cols.end <= n && out.len() >= cols.len());
    assert!(tiles.len() >= n.div_ceil(BLOCK) * (BLOCK / T) * kblocks * KB * T);
    out[..cols.len()].fill(f32::NEG_INFINITY);
    let cfg = TileConfig::full();
    let mut tmp = [0f32; BLOCK * BLOCK];
    // SAFETY: loads the configuration above (valid palette 1, every tile 16 × 64 bytes).
    unsafe { asm!("ldtilecfg [{0}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly)) };
    for col0 in cols.clone().step_by(BLOCK) {
        let cb = col0 / T;
        let width = BLOCK.min(cols.end - col0);
        for row0 in (0..m).step_by(BLOCK) {
            accumulate_block(abf, tiles, kblocks, row0 / T, cb, Op::Bf16);
            // SAFETY: `tmp` holds 32 rows of 32 f32.
            unsafe { store_block(tmp.as_mut_ptr(), BLOCK * 4) };
            for r in 0..BLOCK.min(m - row0) {
                for (o, &v) in out[col0 - cols.start..][..width]
                    .iter_mut()
                    .zip(&tmp[r * BLOCK..][..width])
                {
                    *o = o.max(v);
                }
            }
        }
    }
    // SAFETY: releases the tile state of this thread.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// The tile product of a step.
#[derive(Clone, Copy)]
enum Op {
    /// `tdpbf16ps`: pairs of bf16, f32 accumulators.
    Bf16,
    /// `tdpbusd`: quads of unsigned (A) by signed (B) bytes, i32 accumulators.
    Int8,
}

/// Computes the 32 × 32 block of row tiles `rb`, `rb + 1` and column tiles `cb`, `cb + 1` into
/// the four accumulator tiles (zeroed first), over all `kblocks` k-blocks. The tile
/// configuration of this module must be loaded on this thread.
fn accumulate_block(abf: &[u32], tiles: &[u32], kblocks: usize, rb: usize, cb: usize, op: Op) {
    let tile_len = T * KB;
    // SAFETY: zeroes the four accumulator tiles.
    unsafe {
        asm!(
            "tilezero tmm0",
            "tilezero tmm1",
            "tilezero tmm2",
            "tilezero tmm3",
            options(nostack, nomem)
        )
    };
    for qb in 0..kblocks {
        let a0 = abf[(rb * kblocks + qb) * tile_len..][..tile_len].as_ptr();
        let a1 = abf[((rb + 1) * kblocks + qb) * tile_len..][..tile_len].as_ptr();
        let b0 = tiles[(cb * kblocks + qb) * tile_len..][..tile_len].as_ptr();
        let b1 = tiles[((cb + 1) * kblocks + qb) * tile_len..][..tile_len].as_ptr();
        // SAFETY: each pointer starts a 1 KiB tile inside its slice (the slicing above checks
        // it); a tile load reads 16 rows of 64 bytes at a 64-byte stride.
        unsafe {
            match op {
                Op::Bf16 => step(a0, a1, b0, b1, KB * 4),
                Op::Int8 => step_int8(a0, a1, b0, b1, KB * 4),
            }
        };
    }
}

/// Defines one k-step of a 32 × 32 block with the tile product `$op`: two A and two B tiles
/// into the four accumulators.
macro_rules! tile_step {
    ($(#[$doc:meta])* $name:ident, $op:literal) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// Each pointer must start 1 KiB of readable memory, the tile configuration of this
        /// module loaded.
        #[inline(always)]
        unsafe fn $name(
            a0: *const u32,
            a1: *const u32,
            b0: *const u32,
            b1: *const u32,
            stride: usize,
        ) {
            // SAFETY: per the contract.
            unsafe {
                asm!(
                    "tileloadd tmm4, [{a0} + {s}*1]",
                    "tileloadd tmm6, [{b0} + {s}*1]",
                    concat!($op, " tmm0, tmm4, tmm6"),
                    "tileloadd tmm7, [{b1} + {s}*1]",
                    concat!($op, " tmm1, tmm4, tmm7"),
                    "tileloadd tmm5, [{a1} + {s}*1]",
                    concat!($op, " tmm2, tmm5, tmm6"),
                    concat!($op, " tmm3, tmm5, tmm7"),
                    a0 = in(reg) a0,
                    a1 = in(reg) a1,
                    b0 = in(reg) b0,
                    b1 = in(reg) b1,
                    s = in(reg) stride,
                    options(nostack, readonly),
                );
            }
        }
    };
}

tile_step!(
    /// One k-step in bf16 (`tdpbf16ps`: pairs of bf16, f32 sums).
    step,
    "tdpbf16ps"
);
tile_step!(
    /// One k-step in int8 (`tdpbusd`: unsigned bytes of A by signed bytes of B, i32 sums).
    step_int8,
    "tdpbusd"
);

/// Whether this CPU and kernel run AMX int8 tiles (CPUID AMX-TILE and AMX-INT8, AVX-512 F/BW
/// for the quantisation around them, and the tile permission).
pub(crate) fn int8_available() -> bool {
    static OK: LazyLock<bool> = LazyLock::new(|| {
        if !(std::arch::is_x86_feature_detected!("avx512f")
            && std::arch::is_x86_feature_detected!("avx512bw"))
        {
            return false;
        }
        let leaf7 = std::arch::x86_64::__cpuid_count(7, 0);
        let (int8, tile) = ((leaf7.edx >> 25) & 1 == 1, (leaf7.edx >> 24) & 1 == 1);
        int8 && tile && request_tile_permission()
    });
    *OK
}

/// The int8 product of `m` rows of A tiles ([`a_layout`] of quads of unsigned bytes) by B tiles
/// ([`pack_groups`] of quads of signed bytes, `groups` quads deep, `n` columns): for every
/// 32 × 32 block, `sink(row0, col0, block)` receives its exact i32 sums (rows past `m` and
/// columns past `n` are zero padding).
pub(crate) fn matmul_int8(
    abf: &[u32],
    m: usize,
    tiles: &[u32],
    groups: usize,
    n: usize,
    mut sink: impl FnMut(usize, usize, &[i32; BLOCK * BLOCK]),
) {
    assert!(
        int8_available(),
        "AMX int8 kernel called on a CPU without it"
    );
    assert!(groups.is_multiple_of(KB));
    let kblocks = groups / KB;
    let rblocks = m.div_ceil(BLOCK) * (BLOCK / T);
    assert!(abf.len() >= rblocks * kblocks * T * KB);
    assert!(tiles.len() >= n.div_ceil(BLOCK) * (BLOCK / T) * kblocks * KB * T);
    let cfg = TileConfig::full();
    let mut tmp = [0i32; BLOCK * BLOCK];
    // SAFETY: loads the configuration above (valid palette 1, every tile 16 × 64 bytes).
    unsafe { asm!("ldtilecfg [{0}]", in(reg) cfg.0.as_ptr(), options(nostack, readonly)) };
    for col0 in (0..n).step_by(BLOCK) {
        for row0 in (0..m).step_by(BLOCK) {
            accumulate_block(abf, tiles, kblocks, row0 / T, col0 / T, Op::Int8);
            // SAFETY: `tmp` holds 32 rows of 32 i32 (4 bytes, as f32).
            unsafe { store_block(tmp.as_mut_ptr().cast::<f32>(), BLOCK * 4) };
            sink(row0, col0, &tmp);
        }
    }
    // SAFETY: releases the tile state of this thread.
    unsafe { asm!("tilerelease", options(nostack, nomem)) };
}

/// Rows and columns of the block [`matmul_int8`] hands to its sink.
pub(crate) const INT8_BLOCK: usize = BLOCK;

/// Stores the 2 × 2 accumulator tiles as a 32 × 32 block at `base` with row stride `stride`
/// bytes.
///
/// # Safety
/// `base` must have 32 rows of 32 writable f32 at that stride.
unsafe fn store_block(base: *mut f32, stride: usize) {
    // SAFETY: per the contract, each of the four 16 × 16 quarter blocks is writable.
    unsafe {
        let right = base.add(T);
        let low = base.cast::<u8>().add(T * stride).cast::<f32>();
        let low_right = low.add(T);
        asm!(
            "tilestored [{p0} + {s}*1], tmm0",
            "tilestored [{p1} + {s}*1], tmm1",
            "tilestored [{p2} + {s}*1], tmm2",
            "tilestored [{p3} + {s}*1], tmm3",
            p0 = in(reg) base,
            p1 = in(reg) right,
            p2 = in(reg) low,
            p3 = in(reg) low_right,
            s = in(reg) stride,
            options(nostack),
        );
    }
}
