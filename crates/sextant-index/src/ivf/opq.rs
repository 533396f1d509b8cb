//! Optimised product quantisation (OPQ, Ge et al. 2013, the non-parametric form): an orthogonal
//! rotation `R` learnt so that the rotated vectors `R x` lose less to product quantisation
//! than `x` does. Sub-spaces of raw embeddings mix strongly and weakly varying components
//! unevenly; a rotation spreads the variance so every sub-quantiser's codebook carries its
//! share.
//!
//! Training alternates two steps that each lower `Σ ‖R x − decode(encode(R x))‖²`:
//! 1. fix `R`, retrain the codebooks on the rotated rows (a few Lloyd iterations warm-started
//!    from the previous codebooks);
//! 2. fix the codes `Y = decode(encode(R X))`, and solve the orthogonal Procrustes problem
//!    `min_R ‖R X − Y‖`: with the SVD `Yᵀ X = U Σ Vᵀ` (rows as vectors) the optimum is
//!    `R = U Vᵀ`.
//!
//! A rotation keeps every inner product and distance, so the index stores its centroids in
//! the rotated space, rotates each query once, and rescores from the unrotated f32 vectors.

use crate::ivf::pq::ProductQuantizer;

/// Lloyd iterations of the first codebooks, and of each retraining after a rotation step.
const FIRST_ITERS: usize = 8;
const ROUND_ITERS: usize = 4;

/// The rows of `data` (`n × dim`) multiplied by `rotation`ᵀ: row `i` becomes `R xᵢ`. On the
/// current rayon pool when `parallel` (not from inside a parallel loop).
pub(crate) fn rotate_rows(data: &[f32], dim: usize, rotation: &[f32], parallel: bool) -> Vec<f32> {
    let n = data.len() / dim;
    let mut out = vec![0f32; n * dim];
    // Rᵀ as the right-hand side: element (k, i) is R[i][k], at i · dim + k.
    product(
        &mut out,
        n,
        dim,
        dim,
        (data, 1, dim),
        (rotation, dim, 1),
        parallel,
    );
    out
}

/// `dst (m × n, row-major) = lhs (m × depth) · rhs (depth × n)`, each operand given as
/// (slice, column stride, row stride).
fn product(
    dst: &mut [f32],
    m: usize,
    n: usize,
    depth: usize,
    lhs: (&[f32], usize, usize),
    rhs: (&[f32], usize, usize),
    parallel: bool,
) {
    let within = |s: &[f32], cs: usize, rs: usize, rows: usize, cols: usize| {
        rows == 0 || cols == 0 || (rows - 1) * rs + (cols - 1) * cs < s.len()
    };
    assert!(
        dst.len() >= m * n
            && within(lhs.0, lhs.1, lhs.2, m, depth)
            && within(rhs.0, rhs.1, rhs.2, depth, n),
        "matrix product operands out of bounds"
    );
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: `dst` holds `m × n` values (column stride 1, row stride n); each operand's last
    // element, at (rows − 1) · row stride + (cols − 1) · column stride, is inside its slice
    // (asserted above), so every element gemm reads or writes is in bounds.
    #[allow(unsafe_code)]
    unsafe {
        gemm::gemm(
            m,
            n,
            depth,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.0.as_ptr(),
            lhs.1 as isize,
            lhs.2 as isize,
            rhs.0.as_ptr(),
            rhs.1 as isize,
            rhs.2 as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            if parallel {
                gemm::Parallelism::Rayon(0)
            } else {
                gemm::Parallelism::None
            },
        );
    }
}

/// `R x` for one vector.
pub(crate) fn rotate(x: &[f32], rotation: &[f32]) -> Vec<f32> {
    let dot = crate::distance::kernels().dot;
    rotation.chunks_exact(x.len()).map(|r| dot(r, x)).collect()
}

/// A rotation as a query uses it: `Rᵀ` in bfloat16 (16 bits per entry, rounded to nearest),
/// applied as `Σ_k x_k · column_k`. A 768-d rotation then takes 1.2 MiB instead of 2.4 and
/// stays in a core's L2 cache, which makes the one matrix-vector product per query about as
/// fast as the bandwidth of its f32 form allows at 384-d. The rounding (relative 2⁻⁹ per entry)
/// only perturbs the estimates a search rescores exactly.
#[derive(Debug, Clone, Default)]
pub(crate) struct QueryRotation {
    dim: usize,
    /// `dim × dim`: row `k` is column `k` of `R`.
    columns: Vec<u16>,
}

impl QueryRotation {
    pub(crate) fn new(rotation: &[f32], dim: usize) -> Self {
        let mut columns = vec![0u16; dim * dim];
        for i in 0..dim {
            for k in 0..dim {
                columns[k * dim + i] = to_bf16(rotation[i * dim + k]);
            }
        }
        QueryRotation { dim, columns }
    }

    /// Heap bytes held.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.columns.capacity() * 2
    }

    /// `R x`, within bfloat16 rounding of the rotation's entries.
    pub(crate) fn apply(&self, x: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; self.dim];
        crate::ivf::pq::ARCH.dispatch(Axpys {
            columns: &self.columns,
            x,
            out: &mut out,
        });
        out
    }
}

/// Rounds to the nearest bfloat16 (ties to even; the entries of a rotation are finite).
fn to_bf16(x: f32) -> u16 {
    let bits = x.to_bits();
    let round = 0x7fff + ((bits >> 16) & 1);
    (bits.wrapping_add(round) >> 16) as u16
}

/// The loop of [`QueryRotation::apply`] as a pulp body (see `pq::DotTable`): `out += x_k ·
/// column_k` for every `k`, element-wise, so it vectorises without reordering any sum.
struct Axpys<'a> {
    columns: &'a [u16],
    x: &'a [f32],
    out: &'a mut [f32],
}

impl pulp::WithSimd for Axpys<'_> {
    type Output = ();

    #[inline(always)]
    fn with_simd<S: pulp::Simd>(self, _: S) {
        let dim = self.out.len();
        for (&v, column) in self.x.iter().zip(self.columns.chunks_exact(dim)) {
            for (o, &c) in self.out.iter_mut().zip(column) {
                *o += v * f32::from_bits(u32::from(c) << 16);
            }
        }
    }
}

/// The identity rotation of `dim` components.
fn identity(dim: usize) -> Vec<f32> {
    let mut r = vec![0f32; dim * dim];
    for i in 0..dim {
        r[i * dim + i] = 1.0;
    }
    r
}

/// Learns a rotation for product quantisation of the rows of `data` with `m` sub-quantisers
/// of `ksub` centroids, in `rounds` alternations (each: codebooks retrained, rotation
/// re-solved). Returns the rotation (`dim × dim`, row-major: `x ↦ R x`) and the squared
/// quantisation error per row before the first and after the last rotation step.
pub(crate) fn train(
    data: &[f32],
    dim: usize,
    m: usize,
    ksub: usize,
    rounds: usize,
    seed: u64,
) -> (Vec<f32>, [f64; 2]) {
    let n = data.len() / dim;
    let mut rotation = identity(dim);
    let mut pq: Option<ProductQuantizer> = None;
    let mut errors = [0f64; 2];
    let mut codes = vec![0u8; m];
    for round in 0..rounds {
        let rotated = rotate_rows(data, dim, &rotation, true);
        let q = match pq.as_mut() {
            None => pq.insert(ProductQuantizer::train(
                &rotated,
                dim,
                m,
                ksub,
                FIRST_ITERS,
                seed,
            )),
            Some(q) => {
                q.refine(&rotated, ROUND_ITERS);
                q
            }
        };
        let mut decoded = Vec::with_capacity(n * dim);
        let mut error = 0f64;
        for row in rotated.chunks_exact(dim) {
            q.encode(row, &mut codes);
            let y = q.decode(&codes);
            error += row
                .iter()
                .zip(&y)
                .map(|(a, b)| f64::from((a - b) * (a - b)))
                .sum::<f64>();
            decoded.extend(y);
        }
        if round == 0 {
            errors[0] = error / n as f64;
        }
        errors[1] = error / n as f64;
        rotation = procrustes(&decoded, data, dim);
    }
    (rotation, errors)
}

/// The orthogonal `R` minimising `Σᵢ ‖R xᵢ − yᵢ‖²` over the rows `xᵢ` of `x` and `yᵢ` of `y`:
/// `U Vᵀ` for the SVD `Yᵀ X = U Σ Vᵀ`. A rank-deficient product (components that never vary)
/// still gives an orthogonal `R`: the SVD completes both bases.
fn procrustes(y: &[f32], x: &[f32], dim: usize) -> Vec<f32> {
    let n = x.len() / dim;
    // Yᵀ X: the left operand is Y read transposed (element (i, r) at r · dim + i).
    let mut a = vec![0f32; dim * dim];
    product(&mut a, dim, dim, n, (y, dim, 1), (x, 1, dim), true);
    let a = nalgebra::DMatrix::<f64>::from_fn(dim, dim, |i, k| f64::from(a[i * dim + k]));
    let svd = a.svd(true, true);
    let (u, v_t) = (
        svd.u.expect("the SVD was asked for U"),
        svd.v_t.expect("the SVD was asked for Vᵀ"),
    );
    let r = u * v_t;
    let mut out = vec![0f32; dim * dim];
    for i in 0..dim {
        for k in 0..dim {
            out[i * dim + k] = r[(i, k)] as f32;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::ivf::pq::KSUB;

    /// Correlated data whose variance sits in a few mixed directions: the case OPQ is for.
    fn skewed(n: usize, dim: usize, seed: u64) -> Vec<f32> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let basis: Vec<Vec<f32>> = (0..4)
            .map(|_| (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect())
            .collect();
        (0..n)
            .flat_map(|_| {
                let w: Vec<f32> = (0..4).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
                let noise = 0.02;
                (0..dim)
                    .map(|d| {
                        (0..4).map(|b| w[b] * basis[b][d]).sum::<f32>()
                            + noise * rng.gen_range(-1.0f32..1.0)
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The rotation is orthogonal (`R Rᵀ = I`) and keeps norms and inner products.
    #[test]
    fn the_rotation_is_orthogonal() {
        let dim = 24;
        let data = skewed(2_000, dim, 1);
        let (r, _) = train(&data, dim, 6, KSUB, 3, 7);
        for i in 0..dim {
            for k in 0..dim {
                let dot: f32 = (0..dim).map(|t| r[i * dim + t] * r[k * dim + t]).sum();
                let want = if i == k { 1.0 } else { 0.0 };
                assert!((dot - want).abs() < 1e-4, "R Rᵀ[{i}][{k}] = {dot}");
            }
        }
        let (a, b) = (&data[..dim], &data[dim..2 * dim]);
        let (ra, rb) = (rotate(a, &r), rotate(b, &r));
        let dot = |x: &[f32], y: &[f32]| x.iter().zip(y).map(|(p, q)| p * q).sum::<f32>();
        assert!((dot(a, b) - dot(&ra, &rb)).abs() < 1e-4);
        let rows = rotate_rows(&data[..2 * dim], dim, &r, false);
        for (x, y) in rows.iter().zip(ra.iter().chain(&rb)) {
            assert!((x - y).abs() < 1e-5);
        }
    }

    /// The bfloat16 query rotation agrees with the f32 one to within its rounding.
    #[test]
    fn the_query_rotation_matches_the_f32_one() {
        let dim = 40;
        let data = skewed(1_500, dim, 4);
        let (r, _) = train(&data, dim, 10, KSUB, 2, 9);
        let fast = QueryRotation::new(&r, dim);
        for x in data.chunks_exact(dim).take(20) {
            let (want, got) = (rotate(x, &r), fast.apply(x));
            let norm = x.iter().map(|v| v * v).sum::<f32>().sqrt();
            for (a, b) in want.iter().zip(&got) {
                assert!((a - b).abs() <= 1e-2 * norm, "{a} vs {b} (‖x‖ {norm})");
            }
        }
        assert_eq!(to_bf16(1.0), 0x3f80);
        assert_eq!(to_bf16(-0.5), 0xbf00);
    }

    /// On correlated data the learnt rotation lowers the quantisation error markedly, and a
    /// product quantiser trained on rotated rows beats one trained on the raw rows.
    #[test]
    fn the_rotation_lowers_quantisation_error() {
        let dim = 32;
        let data = skewed(4_000, dim, 2);
        let (r, [first, last]) = train(&data, dim, 8, KSUB, 8, 3);
        assert!(last < 0.8 * first, "error {first} → {last}");
        let error = |rows: &[f32]| {
            let pq = ProductQuantizer::train(rows, dim, 8, KSUB, 20, 5);
            let mut codes = [0u8; 8];
            rows.chunks_exact(dim)
                .map(|x| {
                    pq.encode(x, &mut codes);
                    let y = pq.decode(&codes);
                    x.iter()
                        .zip(&y)
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum::<f32>()
                })
                .sum::<f32>()
        };
        let (plain, opq) = (error(&data), error(&rotate_rows(&data, dim, &r, true)));
        assert!(opq < 0.8 * plain, "plain {plain}, opq {opq}");
    }

    /// Components that never vary leave the cross-product rank-deficient; the rotation is
    /// still orthogonal and finite.
    #[test]
    fn constant_components_still_give_an_orthogonal_rotation() {
        let dim = 12;
        let mut data = skewed(1_000, dim, 3);
        for row in data.chunks_exact_mut(dim) {
            row[0] = 0.0;
            row[5] = 0.0;
        }
        let (r, _) = train(&data, dim, 3, KSUB, 2, 1);
        assert!(r.iter().all(|x| x.is_finite()));
        for i in 0..dim {
            let norm: f32 = (0..dim).map(|t| r[i * dim + t] * r[i * dim + t]).sum();
            assert!((norm - 1.0).abs() < 1e-4, "row {i} norm {norm}");
        }
    }
}
