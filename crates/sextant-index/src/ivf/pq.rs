//! Product quantisation with 16 centroids per sub-space (4-bit codes): a vector is cut into
//! `m` sub-vectors of `dsub` components (the last ones padded with zeros when `m` does not
//! divide the dimension; zeros change no inner product or squared distance) and each is
//! replaced by the index of its nearest sub-centroid.

use crate::ivf::kmeans;

/// Centroids per sub-space.
pub(crate) const KSUB: usize = 16;

#[derive(Debug, Clone)]
pub(crate) struct ProductQuantizer {
    pub(crate) dim: usize,
    pub(crate) m: usize,
    pub(crate) dsub: usize,
    /// `m × KSUB × dsub`.
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

    /// Trains the codebooks on the rows of `data` (at least [`KSUB`] rows).
    pub(crate) fn train(data: &[f32], dim: usize, m: usize, seed: u64) -> Self {
        let dsub = dim.div_ceil(m);
        let n = data.len() / dim;
        let mut pq = ProductQuantizer {
            dim,
            m,
            dsub,
            centroids: Vec::with_capacity(m * KSUB * dsub),
        };
        let mut part = vec![0f32; n * dsub];
        for j in 0..m {
            for (row, out) in data.chunks_exact(dim).zip(part.chunks_exact_mut(dsub)) {
                pq.sub(row, j, out);
            }
            let c = kmeans::train(&part, dsub, KSUB, 20, seed.wrapping_add(j as u64));
            pq.centroids.extend(c);
        }
        pq
    }

    fn codebook(&self, j: usize) -> &[f32] {
        &self.centroids[j * KSUB * self.dsub..(j + 1) * KSUB * self.dsub]
    }

    /// The `m` codes (each < 16) of `x`.
    pub(crate) fn encode(&self, x: &[f32], codes: &mut [u8]) {
        let mut s = vec![0f32; self.dsub];
        for (j, code) in codes.iter_mut().enumerate().take(self.m) {
            self.sub(x, j, &mut s);
            *code = kmeans::nearest(self.codebook(j), self.dsub, &s).0 as u8;
        }
    }

    /// The vector `codes` stand for.
    #[cfg(test)]
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

    /// Table `m × KSUB` of `f(query sub-vector j, centroid k of j)`.
    fn table(&self, q: &[f32], f: impl Fn(&[f32], &[f32]) -> f32) -> Vec<f32> {
        let mut s = vec![0f32; self.dsub];
        let mut t = vec![0f32; self.m * KSUB];
        for (j, out) in t.chunks_exact_mut(KSUB).enumerate() {
            self.sub(q, j, &mut s);
            for (o, c) in out.iter_mut().zip(self.codebook(j).chunks_exact(self.dsub)) {
                *o = f(&s, c);
            }
        }
        t
    }

    /// Negated inner products: `Σ_j table[j][code_j] = -<q, decode(codes)>`.
    pub(crate) fn neg_dot_table(&self, q: &[f32]) -> Vec<f32> {
        self.table(q, |a, b| -a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>())
    }

    /// The part of a residual's squared-distance table that depends on its list only:
    /// `‖q − c − r‖² = ‖q − c‖² + Σ_j (‖r_j‖² + 2⟨c_j, r_j⟩ − 2⟨q_j, r_j⟩)`, so
    /// `table[j][k] = ‖b_jk‖² + 2⟨c_j, b_jk⟩` for centroid `c` and sub-centroid `b_jk`; a search
    /// adds `−2⟨q_j, b_jk⟩` (twice [`Self::neg_dot_table`]) and `‖q − c‖²`.
    pub(crate) fn l2_list_terms(&self, centroid: &[f32]) -> Vec<f32> {
        self.table(centroid, |c, b| {
            b.iter().zip(c).map(|(y, x)| y * y + 2.0 * x * y).sum()
        })
    }

    /// Squared distances: `Σ_j table[j][code_j] = ‖q − decode(codes)‖²` (the reference the
    /// split form is tested against).
    #[cfg(test)]
    pub(crate) fn l2_table(&self, q: &[f32]) -> Vec<f32> {
        self.table(q, |a, b| {
            a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
        })
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
        let pq = ProductQuantizer::train(&d, dim, 4, 1);
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

    /// Encoding picks each sub-space's nearest centroid, so reconstruction beats a random code.
    #[test]
    fn encoding_reconstructs_better_than_chance() {
        let dim = 16;
        let d = data(2000, dim);
        let pq = ProductQuantizer::train(&d, dim, 8, 2);
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
