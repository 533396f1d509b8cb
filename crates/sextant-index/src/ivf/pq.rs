//! Product quantisation with 16 (4-bit codes) or 256 (8-bit codes) centroids per sub-space:
//! a vector is cut into `m` sub-vectors of `dsub` components (the last ones padded with zeros
//! when `m` does not divide the dimension; zeros change no inner product or squared distance)
//! and each is replaced by the index of its nearest sub-centroid.

use std::sync::LazyLock;

use crate::distance::MAX_SUBQUANTIZERS;
use crate::ivf::kmeans;

/// The instruction sets the table loop is compiled for, detected once.
pub(crate) static ARCH: LazyLock<pulp::Arch> = LazyLock::new(pulp::Arch::new);

/// Centroids per sub-space of 4-bit codes (the fast-scan kernels' table width).
pub(crate) const KSUB: usize = 16;
/// Centroids per sub-space of 8-bit codes.
pub(crate) const KSUB8: usize = 256;

/// Centroids per sub-space for codes of `bits` bits (4 or 8).
pub(crate) const fn ksub(bits: usize) -> usize {
    1 << bits
}

#[derive(Debug, Clone)]
pub(crate) struct ProductQuantizer {
    pub(crate) dim: usize,
    pub(crate) m: usize,
    pub(crate) dsub: usize,
    /// Centroids per sub-space ([`KSUB`] or [`KSUB8`]).
    pub(crate) ksub: usize,
    /// `m × ksub × dsub`.
    pub(crate) centroids: Vec<f32>,
}

impl ProductQuantizer {
    /// Sub-vector `j` of `x`, zero-padded to `dsub` components.
    fn sub(&self, x: &[f32], j: usize, out: &mut [f32]) {
        let start = (j * self.dsub).min(self.dim);
        let end = ((j + 1) * self.dsub).min(self.dim);
        out.fill(0.0);
        out[..end - start].copy_from_slice(&x[start..end]);
    }

    /// Trains `ksub` centroids per sub-space on the rows of `data` (at least `ksub` rows).
    pub(crate) fn train(
        data: &[f32],
        dim: usize,
        m: usize,
        ksub: usize,
        iters: usize,
        seed: u64,
    ) -> Self {
        let dsub = dim.div_ceil(m);
        let mut pq = ProductQuantizer {
            dim,
            m,
            dsub,
            ksub,
            centroids: Vec::with_capacity(m * ksub * dsub),
        };
        for (j, part) in pq.parts(data).iter().enumerate() {
            let c = kmeans::train(part, dsub, ksub, iters, seed.wrapping_add(j as u64));
            pq.centroids.extend(c);
        }
        pq
    }

    /// `iters` more Lloyd iterations of every codebook over the rows of `data`, starting from
    /// the current centroids.
    pub(crate) fn refine(&mut self, data: &[f32], iters: usize) {
        let size = self.ksub * self.dsub;
        for (j, part) in self.parts(data).iter().enumerate() {
            kmeans::refine(
                part,
                self.dsub,
                &mut self.centroids[j * size..(j + 1) * size],
                iters,
            );
        }
    }

    /// The rows of `data` cut into their `m` zero-padded sub-vectors, one buffer per sub-space.
    fn parts(&self, data: &[f32]) -> Vec<Vec<f32>> {
        let n = data.len() / self.dim;
        (0..self.m)
            .map(|j| {
                let mut part = vec![0f32; n * self.dsub];
                for (row, out) in data
                    .chunks_exact(self.dim)
                    .zip(part.chunks_exact_mut(self.dsub))
                {
                    self.sub(row, j, out);
                }
                part
            })
            .collect()
    }

    fn codebook(&self, j: usize) -> &[f32] {
        let size = self.ksub * self.dsub;
        &self.centroids[j * size..(j + 1) * size]
    }

    /// The `m` codes (each < `ksub`) of `x`.
    pub(crate) fn encode(&self, x: &[f32], codes: &mut [u8]) {
        let mut s = vec![0f32; self.dsub];
        for (j, code) in codes.iter_mut().enumerate().take(self.m) {
            self.sub(x, j, &mut s);
            *code = kmeans::nearest(self.codebook(j), self.dsub, &s).0 as u8;
        }
    }

    /// The codes of every row of `rows` (`codes`: `m` per row), a matrix product per
    /// sub-space ([`kmeans::assign_rows`]) instead of a loop per row and sub-space.
    pub(crate) fn encode_rows(&self, rows: &[f32], codes: &mut [u8]) {
        let n = rows.len() / self.dim;
        let mut assign = vec![0u32; n];
        for (j, part) in self.parts(rows).iter().enumerate() {
            kmeans::assign_rows(part, self.dsub, self.dsub, self.codebook(j), &mut assign);
            for (out, &a) in codes.chunks_exact_mut(self.m).zip(&assign) {
                out[j] = a as u8;
            }
        }
    }

    /// The vector `codes` stand for.
    pub(crate) fn decode(&self, codes: &[u8]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.m * self.dsub);
        for (j, &c) in codes.iter().enumerate().take(self.m) {
            let book = self.codebook(j);
            out.extend_from_slice(
                &book[usize::from(c) * self.dsub..(usize::from(c) + 1) * self.dsub],
            );
        }
        out.truncate(self.dim);
        out
    }

    /// Table `m × ksub` of `f(query sub-vector j, centroid k of j)`.
    fn table(&self, q: &[f32], f: impl Fn(&[f32], &[f32]) -> f32) -> Vec<f32> {
        let mut s = vec![0f32; self.dsub];
        let mut t = vec![0f32; self.m * self.ksub];
        for (j, out) in t.chunks_exact_mut(self.ksub).enumerate() {
            self.sub(q, j, &mut s);
            for (o, c) in out.iter_mut().zip(self.codebook(j).chunks_exact(self.dsub)) {
                *o = f(&s, c);
            }
        }
        t
    }

    /// The codebooks laid out `m × dsub × ksub` (component-major within each sub-space), so
    /// that [`Self::scaled_dot_table`] adds `dsub` contiguous rows of `ksub` values.
    pub(crate) fn transposed(&self) -> Vec<f32> {
        let mut t = vec![0f32; self.centroids.len()];
        for j in 0..self.m {
            let book = self.codebook(j);
            let out = &mut t[j * self.ksub * self.dsub..(j + 1) * self.ksub * self.dsub];
            for (k, c) in book.chunks_exact(self.dsub).enumerate() {
                for (i, &x) in c.iter().enumerate() {
                    out[i * self.ksub + k] = x;
                }
            }
        }
        t
    }

    /// `‖b_jk‖²` of every sub-centroid (`m × ksub`).
    pub(crate) fn norms(&self) -> Vec<f32> {
        self.centroids
            .chunks_exact(self.dsub)
            .map(|c| c.iter().map(|x| x * x).sum())
            .collect()
    }

    /// `out[j][k] = base[j][k] + scale · ⟨x_j, b_jk⟩` (`base` zero when `None`), from the
    /// layout of [`Self::transposed`]: the table of 8-bit codes, `ksub · dim` multiply-adds over
    /// contiguous rows. With `scale = −1` it is [`Self::neg_dot_table`]; with `scale = −2`, `x =
    /// q − c` and `base` the [`Self::norms`] it is the squared distances less `‖q − c‖²`.
    pub(crate) fn scaled_dot_table(
        &self,
        transposed: &[f32],
        x: &[f32],
        scale: f32,
        base: Option<&[f32]>,
        out: &mut [f32],
    ) {
        match base {
            Some(b) => out.copy_from_slice(b),
            None => out.fill(0.0),
        }
        ARCH.dispatch(DotTable {
            ksub: self.ksub,
            dsub: self.dsub,
            transposed,
            x,
            scale,
            out,
        });
    }

    /// Negated inner products: `Σ_j table[j][code_j] = -<q, decode(codes)>`.
    pub(crate) fn neg_dot_table(&self, q: &[f32]) -> Vec<f32> {
        self.table(q, |a, b| -a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>())
    }

    /// The part of a residual's squared-distance table that depends on its list only:
    /// `‖q − c − r‖² = ‖q − c‖² + Σ_j (‖r_j‖² + 2⟨c_j, r_j⟩ − 2⟨q_j, r_j⟩)`, so
    /// `table[j][k] = ‖b_jk‖² + 2⟨c_j, b_jk⟩` for centroid `c` and sub-centroid `b_jk`; a search
    /// adds `−2⟨q_j, b_jk⟩` (twice [`Self::neg_dot_table`]) and `‖q − c‖²`. (4-bit codes: at
    /// 256 centroids per sub-space these terms would take more memory than the codes.)
    pub(crate) fn l2_list_terms(&self, centroid: &[f32]) -> Vec<f32> {
        self.table(centroid, |c, b| {
            b.iter().zip(c).map(|(y, x)| y * y + 2.0 * x * y).sum()
        })
    }

    /// Squared distances: `Σ_j table[j][code_j] = ‖q − decode(codes)‖²` (the reference the
    /// split and transposed forms are tested against; the table of a graph's link codes).
    pub(crate) fn l2_table(&self, q: &[f32]) -> Vec<f32> {
        self.table(q, |a, b| {
            a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
        })
    }
}

/// Quantises a float table (`m × 16`) into `bytes` in the fast-scan layout (zeros for
/// the padding sub-quantiser of an odd `m`); returns the constant to add to a byte sum
/// and its scale. Every sub-table shares the scale, so byte sums stay comparable.
pub(crate) fn quantize_table(t: &[f32], bytes: &mut [u8]) -> (f32, f32) {
    // Fixed-width rows and compare-and-select minima let the compiler vectorise both
    // passes (this runs once per scanned list for squared distances).
    let (rows, _) = t.as_chunks::<KSUB>();
    let mut lows = [0f32; MAX_SUBQUANTIZERS];
    let (mut base, mut range) = (0f32, 0f32);
    for (row, low) in rows.iter().zip(lows.iter_mut()) {
        let (mut lo, mut hi) = (row[0], row[0]);
        for &x in row {
            lo = if x < lo { x } else { lo };
            hi = if x > hi { x } else { hi };
        }
        *low = lo;
        base += lo;
        range = range.max(hi - lo);
    }
    let scale = if range > 0.0 { range / 255.0 } else { 1.0 };
    let inv = 1.0 / scale;
    let (outs, _) = bytes.as_chunks_mut::<KSUB>();
    for ((row, out), &lo) in rows.iter().zip(outs.iter_mut()).zip(&lows) {
        // Round to nearest; `as` saturates to 0..=255.
        for (o, &x) in out.iter_mut().zip(row) {
            *o = ((x - lo) * inv + 0.5) as u8;
        }
    }
    (base, scale)
}

/// The loop of [`ProductQuantizer::scaled_dot_table`], as a `WithSimd` body with
/// `#[inline(always)]` so pulp compiles it with the AVX2/AVX-512 features it detects (plain
/// multiply-adds, no fused ones: every instruction set gives the same table).
struct DotTable<'a> {
    ksub: usize,
    dsub: usize,
    transposed: &'a [f32],
    x: &'a [f32],
    scale: f32,
    out: &'a mut [f32],
}

impl pulp::WithSimd for DotTable<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        // 64 outputs at a time stay in registers across the sub-vector's components.
        const LANES: usize = 64;
        let (ksub, dsub) = (self.ksub, self.dsub);
        for (j, row) in self.out.chunks_exact_mut(ksub).enumerate() {
            let book = &self.transposed[j * ksub * dsub..(j + 1) * ksub * dsub];
            let start = (j * dsub).min(self.x.len());
            let x = &self.x[start..((j + 1) * dsub).min(self.x.len())];
            // `ksub` is 16 or 256: whole chunks of 64, or one short row done plainly.
            let (chunks, tail) = row.as_chunks_mut::<LANES>();
            for (at, out) in chunks.iter_mut().enumerate() {
                let mut acc: [f32; LANES] = *out;
                for (&v, column) in x.iter().zip(book.chunks_exact(ksub)) {
                    let v = v * self.scale;
                    let column: &[f32; LANES] = column[at * LANES..(at + 1) * LANES]
                        .try_into()
                        .expect("a whole chunk");
                    for (a, &c) in acc.iter_mut().zip(column) {
                        *a += v * c;
                    }
                }
                *out = acc;
            }
            let done = chunks.len() * LANES;
            for (&v, column) in x.iter().zip(book.chunks_exact(ksub)) {
                let v = v * self.scale;
                for (o, &c) in tail.iter_mut().zip(&column[done..]) {
                    *o += v * c;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, dim: usize) -> Vec<f32> {
        (0..n * dim)
            .map(|i| ((i * 2_654_435_761) % 1000) as f32 / 1000.0 - 0.5)
            .collect()
    }

    /// Tables sum to the distance to the decoded vector, for a dimension `m` does not divide.
    #[test]
    fn tables_match_decoded_distances() {
        let dim = 10;
        let d = data(400, dim);
        let pq = ProductQuantizer::train(&d, dim, 4, KSUB, 20, 1);
        assert_eq!(pq.dsub, 3);
        let q: Vec<f32> = (0..dim).map(|i| i as f32 / 7.0 - 0.6).collect();
        let (dot, l2) = (pq.neg_dot_table(&q), pq.l2_table(&q));
        for row in d.chunks_exact(dim).take(50) {
            let mut codes = [0u8; 4];
            pq.encode(row, &mut codes);
            let x = pq.decode(&codes);
            let sum = |t: &[f32]| {
                (0..4)
                    .map(|j| t[j * KSUB + usize::from(codes[j])])
                    .sum::<f32>()
            };
            let want_dot = -q.iter().zip(&x).map(|(a, b)| a * b).sum::<f32>();
            let want_l2: f32 = q.iter().zip(&x).map(|(a, b)| (a - b) * (a - b)).sum();
            assert!((sum(&dot) - want_dot).abs() < 1e-4);
            assert!((sum(&l2) - want_l2).abs() < 1e-4);
            // The split form for a residual of list centroid `c`: ‖q − (c + x)‖².
            let c: Vec<f32> = (0..dim).map(|i| 0.3 - i as f32 / 20.0).collect();
            let terms = pq.l2_list_terms(&c);
            let split: Vec<f32> = terms.iter().zip(&dot).map(|(t, d)| t + 2.0 * d).collect();
            let q_c: f32 = q.iter().zip(&c).map(|(a, b)| (a - b) * (a - b)).sum();
            let want: f32 = q
                .iter()
                .zip(&c)
                .zip(&x)
                .map(|((a, b), r)| (a - b - r) * (a - b - r))
                .sum();
            assert!(
                (q_c + sum(&split) - want).abs() < 1e-4,
                "{} vs {want}",
                q_c + sum(&split)
            );
        }
    }

    /// The transposed 8-bit tables equal the direct ones, including for a padded dimension.
    #[test]
    fn transposed_tables_match_direct_ones_for_8_bit_codes() {
        let dim = 10;
        let d = data(1_000, dim);
        let pq = ProductQuantizer::train(&d, dim, 4, KSUB8, 5, 3);
        let (t, norms) = (pq.transposed(), pq.norms());
        let q: Vec<f32> = (0..dim).map(|i| i as f32 / 9.0 - 0.4).collect();
        let mut got = vec![0f32; 4 * KSUB8];
        pq.scaled_dot_table(&t, &q, -1.0, None, &mut got);
        for (a, b) in got.iter().zip(pq.neg_dot_table(&q)) {
            assert!((a - b).abs() < 1e-5, "{a} vs {b}");
        }
        pq.scaled_dot_table(&t, &q, -2.0, Some(&norms), &mut got);
        let mut sums = [0f32; 4];
        for (j, s) in sums.iter_mut().enumerate() {
            let lo = (j * pq.dsub).min(dim);
            let hi = ((j + 1) * pq.dsub).min(dim);
            *s = q[lo..hi].iter().map(|x| x * x).sum();
        }
        for (i, (a, b)) in got.iter().zip(pq.l2_table(&q)).enumerate() {
            let want = b - sums[i / KSUB8];
            assert!((a - want).abs() < 1e-4, "{a} vs {want}");
        }
    }

    /// Encoding rows together picks, per sub-space, a centroid as near as the one-row loop's
    /// (the same one but for ties within rounding), for 4- and 8-bit codes.
    #[test]
    fn encoding_rows_together_matches_one_at_a_time() {
        let dim = 20;
        let d = data(1_500, dim);
        for ksub in [KSUB, KSUB8] {
            let pq = ProductQuantizer::train(&d, dim, 3, ksub, 5, 4);
            let mut together = vec![0u8; 1_500 * 3];
            pq.encode_rows(&d, &mut together);
            for (row, got) in d.chunks_exact(dim).zip(together.chunks_exact(3)) {
                let mut want = [0u8; 3];
                pq.encode(row, &mut want);
                let error = |c: &[u8]| {
                    let y = pq.decode(c);
                    row.iter()
                        .zip(&y)
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum::<f32>()
                };
                assert!(
                    got == want || (error(got) - error(&want)).abs() < 1e-4,
                    "{got:?} vs {want:?}"
                );
            }
        }
    }

    /// Encoding picks each sub-space's nearest centroid, so reconstruction beats a random code.
    #[test]
    fn encoding_reconstructs_better_than_chance() {
        let dim = 16;
        let d = data(2000, dim);
        let pq = ProductQuantizer::train(&d, dim, 8, KSUB, 20, 2);
        let (mut err, mut rand_err) = (0.0f32, 0.0f32);
        for (i, row) in d.chunks_exact(dim).enumerate() {
            let mut codes = [0u8; 8];
            pq.encode(row, &mut codes);
            let x = pq.decode(&codes);
            err += row
                .iter()
                .zip(&x)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>();
            let other: Vec<u8> = codes
                .iter()
                .map(|c| (c + 1 + (i % 15) as u8) % 16)
                .collect();
            let y = pq.decode(&other);
            rand_err += row
                .iter()
                .zip(&y)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>();
        }
        assert!(err < 0.5 * rand_err, "{err} vs {rand_err}");
    }
}
