//! Lloyd's k-means under squared Euclidean distance: the coarse quantiser of an IVF index and
//! the codebooks of product quantisation. Seeded (the same data and seed give the same
//! centroids), assignment in parallel on the current rayon pool, empty clusters re-seeded by
//! splitting the largest one.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::distance::kernels;

/// `k` centroids (`k × dim`, row-major) of the `data.len() / dim` rows of `data`, after `iters`
/// Lloyd iterations started from k-means++ seeds. Needs at least `k` rows.
pub(crate) fn train(data: &[f32], dim: usize, k: usize, iters: usize, seed: u64) -> Vec<f32> {
    let n = data.len() / dim;
    assert!(
        k >= 1 && n >= k,
        "k-means needs at least k = {k} rows, got {n}"
    );
    let mut centroids = seeds(data, dim, k, seed);
    refine(data, dim, &mut centroids, iters);
    centroids
}

/// `iters` more Lloyd iterations of `centroids` (`k × dim`) over the rows of `data`: a warm
/// start from centroids trained before (OPQ retrains its codebooks after each rotation).
pub(crate) fn refine(data: &[f32], dim: usize, centroids: &mut [f32], iters: usize) {
    let n = data.len() / dim;
    let k = centroids.len() / dim;
    let mut assign = vec![0u32; n];
    for _ in 0..iters {
        assign_all(data, dim, centroids, &mut assign);
        let mut sums = vec![0f64; k * dim];
        let mut counts = vec![0usize; k];
        for (row, &c) in data.chunks_exact(dim).zip(&assign) {
            let c = c as usize;
            counts[c] += 1;
            for (s, &x) in sums[c * dim..(c + 1) * dim].iter_mut().zip(row) {
                *s += f64::from(x);
            }
        }
        for c in 0..k {
            if counts[c] > 0 {
                for (x, s) in centroids[c * dim..(c + 1) * dim]
                    .iter_mut()
                    .zip(&sums[c * dim..(c + 1) * dim])
                {
                    *x = (*s / counts[c] as f64) as f32;
                }
            }
        }
        split_empty(centroids, dim, &mut counts);
    }
}

/// k-means++ seeding: the first centroid a random row, each next one a row drawn with
/// probability proportional to its squared distance to the nearest centroid so far.
fn seeds(data: &[f32], dim: usize, k: usize, seed: u64) -> Vec<f32> {
    let n = data.len() / dim;
    let l2 = kernels().l2sq;
    let mut rng = SmallRng::seed_from_u64(seed);
    let first = rng.gen_range(0..n);
    let mut centroids: Vec<f32> = data[first * dim..(first + 1) * dim].to_vec();
    let mut nearest = vec![f32::INFINITY; n];
    for c in 1..=k {
        let last = &centroids[(c - 1) * dim..c * dim];
        nearest
            .par_iter_mut()
            .zip(data.par_chunks_exact(dim))
            .for_each(|(d, row)| *d = d.min(l2(row, last)));
        if c == k {
            break;
        }
        let total: f64 = nearest.iter().map(|&d| f64::from(d)).sum();
        let pick = if total > 0.0 {
            let mut target = rng.gen_range(0.0..total);
            nearest
                .iter()
                .position(|&d| {
                    target -= f64::from(d);
                    target < 0.0
                })
                .unwrap_or(n - 1)
        } else {
            // Every row sits on a centroid already (fewer distinct rows than k).
            rng.gen_range(0..n)
        };
        centroids.extend_from_slice(&data[pick * dim..(pick + 1) * dim]);
    }
    centroids
}

/// Re-seeds each empty cluster from the largest one: the two centroids move apart by a small
/// relative step, so the next assignment splits the large cluster between them.
fn split_empty(centroids: &mut [f32], dim: usize, counts: &mut [usize]) {
    const EPS: f32 = 1.0 / 1024.0;
    for empty in 0..counts.len() {
        if counts[empty] != 0 {
            continue;
        }
        let big = (0..counts.len())
            .max_by_key(|&c| counts[c])
            .expect("k >= 1");
        if counts[big] < 2 {
            return;
        }
        for j in 0..dim {
            let v = centroids[big * dim + j];
            let (up, down) = if j % 2 == 0 {
                (1.0 + EPS, 1.0 - EPS)
            } else {
                (1.0 - EPS, 1.0 + EPS)
            };
            centroids[empty * dim + j] = v * up + if v == 0.0 { EPS } else { 0.0 };
            centroids[big * dim + j] = v * down;
        }
        counts[empty] = counts[big] / 2;
        counts[big] -= counts[empty];
    }
}

/// The nearest centroid of every row, in parallel.
pub(crate) fn assign_all(data: &[f32], dim: usize, centroids: &[f32], out: &mut [u32]) {
    assign_rows(data, dim, dim, centroids, out);
}

/// Rows a matrix product covers at once (the products of a block: `ROWS × k` floats).
const ROWS: usize = 256;

/// The nearest centroid (squared distance) of each of `out.len()` rows of `dim` values laid
/// `stride` apart in `data` (`stride ≥ dim`; the values past `dim` are ignored), in parallel.
///
/// Wide rows and many centroids go through one matrix product per block of rows:
/// argmin ‖c‖² − 2⟨x, c⟩ (‖x‖² is the same for every centroid), the way faiss assigns; few
/// centroids, or a few components (PQ sub-spaces) with under 64 centroids, stay with the
/// direct loop. A near-tie (within float
/// rounding of the two forms) may pick the other centroid of the two, which only moves a point
/// between lists of equal distance.
pub(crate) fn assign_rows(
    data: &[f32],
    dim: usize,
    stride: usize,
    centroids: &[f32],
    out: &mut [u32],
) {
    let k = centroids.len() / dim;
    // 8-bit PQ codebooks (256 centroids of a few components) gain from the product too.
    if k < 16 || (dim <= 8 && k < 64) {
        out.par_chunks_mut(ROWS).enumerate().for_each(|(b, out)| {
            for (i, o) in out.iter_mut().enumerate() {
                let at = (b * ROWS + i) * stride;
                *o = nearest(centroids, dim, &data[at..at + dim]).0 as u32;
            }
        });
        return;
    }
    let norms: Vec<f32> = centroids
        .chunks_exact(dim)
        .map(|c| c.iter().map(|x| x * x).sum())
        .collect();
    out.par_chunks_mut(ROWS).enumerate().for_each(|(b, out)| {
        let m = out.len();
        let first = b * ROWS * stride;
        let last = first + (m - 1) * stride + dim;
        let rows = &data[first..last];
        let mut prod = vec![0f32; m * k];
        // SAFETY: `prod` is `m × k` row-major (row stride k, column stride 1); `rows` holds `m`
        // rows of `dim` values `stride` apart (its length is checked by the slice above); the
        // centroids are `k` rows of `dim` values, read as the `dim × k` right-hand side (row
        // stride 1, column stride dim). Every pointer stays inside its slice for these sizes.
        #[allow(unsafe_code)]
        unsafe {
            gemm::gemm(
                m,
                k,
                dim,
                prod.as_mut_ptr(),
                1,
                k as isize,
                false,
                rows.as_ptr(),
                1,
                stride as isize,
                centroids.as_ptr(),
                dim as isize,
                1,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        for (o, p) in out.iter_mut().zip(prod.chunks_exact_mut(k)) {
            *o = crate::ivf::pq::ARCH.dispatch(ArgminScores {
                norms: &norms,
                products: p,
            }) as u32;
        }
    });
}

/// Lanes of [`ArgminScores`].
const ARGMIN_LANES: usize = 16;

/// The centroid of least `‖c‖² − 2⟨x, c⟩` given the norms and one row of products (turned
/// into those scores in place), ties to the lower index: one running minimum per lane
/// (compare and select, which vectorises; a single running minimum is a chain of dependent
/// branches, and was most of an 8-bit PQ build), then the lanes reduced. A pulp body, so it is
/// compiled with the instruction sets pulp detects.
struct ArgminScores<'a> {
    norms: &'a [f32],
    products: &'a mut [f32],
}

impl pulp::WithSimd for ArgminScores<'_> {
    type Output = usize;

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) -> usize {
        const L: usize = ARGMIN_LANES;
        for (p, &n) in self.products.iter_mut().zip(self.norms) {
            *p = n - 2.0 * *p;
        }
        let (chunks, tail) = self.products.as_chunks::<L>();
        let mut best = [f32::INFINITY; L];
        let mut at = [0u32; L];
        for (c, chunk) in chunks.iter().enumerate() {
            for l in 0..L {
                let better = chunk[l] < best[l];
                best[l] = if better { chunk[l] } else { best[l] };
                at[l] = if better { (c * L + l) as u32 } else { at[l] };
            }
        }
        let mut win = (usize::MAX, f32::INFINITY);
        for l in 0..L {
            let i = at[l] as usize;
            if best[l] < win.1 || (best[l] == win.1 && i < win.0) {
                win = (i, best[l]);
            }
        }
        for (i, &v) in tail.iter().enumerate() {
            if v < win.1 {
                win = (chunks.len() * L + i, v);
            }
        }
        // Every score infinite or NaN: the first centroid, as the plain loop would pick.
        if win.0 == usize::MAX {
            0
        } else {
            win.0
        }
    }
}

/// The nearest centroid of `x` and its squared distance (ties: the lower index).
pub(crate) fn nearest(centroids: &[f32], dim: usize, x: &[f32]) -> (usize, f32) {
    // Sub-spaces of product quantisation are a few components wide: an inlined loop beats a
    // call through the kernel pointer there.
    if dim <= 8 {
        let mut best = (0, f32::INFINITY);
        for (c, row) in centroids.chunks_exact(dim).enumerate() {
            let d: f32 = row.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum();
            if d < best.1 {
                best = (c, d);
            }
        }
        return best;
    }
    let l2 = kernels().l2sq;
    let mut best = (0, f32::INFINITY);
    for (c, row) in centroids.chunks_exact(dim).enumerate() {
        let d = l2(x, row);
        if d < best.1 {
            best = (c, d);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three well-separated blobs: k-means finds one centroid per blob, whatever the seed.
    #[test]
    fn finds_separated_clusters() {
        let centres = [[0.0f32, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let mut data = Vec::new();
        for i in 0..300 {
            let c = centres[i % 3];
            let jitter = ((i * 37 % 11) as f32 - 5.0) / 10.0;
            data.extend([c[0] + jitter, c[1] - jitter]);
        }
        for seed in 0..5 {
            let got = train(&data, 2, 3, 10, seed);
            for c in centres {
                let (_, d) = nearest(&got, 2, &c);
                assert!(d < 0.1, "seed {seed}: no centroid near {c:?}: {got:?}");
            }
        }
    }

    /// The matrix-product assignment agrees with the direct loop (wide rows, many centroids,
    /// rows laid out with padding between them).
    #[test]
    fn matrix_product_assignment_matches_the_direct_loop() {
        let (n, dim, k, stride) = (1_000, 40, 50, 48);
        let mut x = 7u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 40) as f32 / (1u64 << 24) as f32 - 0.5
        };
        let centroids: Vec<f32> = (0..k * dim).map(|_| next()).collect();
        let mut data = vec![0f32; n * stride];
        for r in 0..n {
            for j in 0..dim {
                data[r * stride + j] = next();
            }
            for j in dim..stride {
                data[r * stride + j] = 1e6; // padding: must be ignored
            }
        }
        let mut got = vec![0u32; n];
        assign_rows(&data, dim, stride, &centroids, &mut got);
        let mismatched = (0..n)
            .filter(|&r| {
                let row = &data[r * stride..r * stride + dim];
                let (want, d) = nearest(&centroids, dim, row);
                let c = got[r] as usize;
                let mine: f32 = row
                    .iter()
                    .zip(&centroids[c * dim..(c + 1) * dim])
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum();
                // Only a tie within rounding may differ.
                c != want && (mine - d).abs() > 1e-4 * d.max(1e-6)
            })
            .count();
        assert_eq!(mismatched, 0);
    }

    /// More clusters asked than distinct blobs: no centroid is left empty-handed at a far
    /// position (splitting keeps every centroid on the data).
    #[test]
    fn empty_clusters_are_split_from_the_largest() {
        let mut data = Vec::new();
        for i in 0..200 {
            data.extend([(i % 2) as f32 * 100.0, (i as f32) / 1000.0]);
        }
        let got = train(&data, 2, 8, 15, 3);
        for c in got.chunks_exact(2) {
            let (_, d) = nearest(&data, 2, c);
            assert!(d < 1.0, "centroid {c:?} far from every row");
        }
    }
}
