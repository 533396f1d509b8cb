//! Fused training operations with their gradients: layer norm, a linear layer's bias, the
//! exact GELU and the attention softmax (scaled, with the padding bias). Written as plain tensor operations (as
//! the first version of the training pass was), each of them is 5–10 passes over the
//! activations forward and as many again backward, each pass a freshly allocated tensor: on
//! MiniLM they took more time than the matrix products. Here each is one pass forward and one
//! or two backward, over rows in parallel (rayon).
//!
//! They run on the CPU in f32 (training) and f64 (gradient checks) and need contiguous inputs
//! (callers make them so). The gradient-check tests of the training pass (finite differences
//! and PyTorch) cover them; the unit tests here compare each with its unfused form.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp1, CustomOp2, CustomOp3, DType, Layout, Result, Shape, Tensor,
    WithDType,
};
use rayon::prelude::*;

/// Rows per parallel task (a row is one token's activations, or one attention row).
const ROWS_PER_TASK: usize = 32;

/// The float types the kernels run in.
pub(crate) trait Real: WithDType + Send + Sync {
    const ZERO: Self;
    const ONE: Self;
    fn sqrt(self) -> Self;
    fn error_fn(self) -> Self;
}

impl Real for f32 {
    const ZERO: f32 = 0.0;
    const ONE: f32 = 1.0;
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
    fn error_fn(self) -> f32 {
        crate::kernels::erf(self)
    }
}

impl Real for f64 {
    const ZERO: f64 = 0.0;
    const ONE: f64 = 1.0;
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
    fn error_fn(self) -> f64 {
        candle_core::cpu::erf::erf_f64(self)
    }
}

/// The contiguous elements of `s` under `l`.
fn slice<'a, T: WithDType>(s: &'a CpuStorage, l: &Layout, op: &str) -> Result<&'a [T]> {
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&s.as_slice::<T>()?[start..end]),
        None => bail!("{op}: the input must be contiguous"),
    }
}

/// The size of the last dimension.
fn width(l: &Layout, op: &str) -> Result<usize> {
    match l.dims().last() {
        Some(&w) if w > 0 => Ok(w),
        _ => bail!("{op}: the input has no last dimension"),
    }
}

fn same_shape(a: &Layout, b: &Layout, op: &str) -> Result<()> {
    if a.shape() != b.shape() {
        bail!("{op}: shapes {:?} and {:?} differ", a.shape(), b.shape());
    }
    Ok(())
}

/// Runs `$body` with `$t` bound to the storage's float type.
macro_rules! by_dtype {
    ($dtype:expr, $op:expr, $t:ident => $body:expr) => {
        match $dtype {
            DType::F32 => {
                type $t = f32;
                $body
            }
            DType::F64 => {
                type $t = f64;
                $body
            }
            other => bail!("{}: {other:?} is not supported (f32 or f64)", $op),
        }
    };
}

/// `out[r] = f(r, row r of the inputs)` over rows of `w` elements, in parallel.
fn map_rows<T: Real>(n: usize, w: usize, f: impl Fn(usize, &mut [T]) + Sync) -> Vec<T> {
    let mut out = vec![T::ZERO; n];
    out.par_chunks_mut(w * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(task, chunk)| {
            for (i, row) in chunk.chunks_mut(w).enumerate() {
                f(task * ROWS_PER_TASK + i, row);
            }
        });
    out
}

/// Mean and 1/σ of a row.
fn moments<T: Real>(x: &[T], eps: T) -> (T, T) {
    let n = T::from_f64(x.len() as f64);
    let mean = x.iter().fold(T::ZERO, |a, &v| a + v) / n;
    let var = x.iter().fold(T::ZERO, |a, &v| a + (v - mean) * (v - mean)) / n;
    (mean, T::ONE / (var + eps).sqrt())
}

/// Layer norm over the last dimension: `(x − mean) / √(var + eps) · γ + β`, the variance
/// biased, as BERT's. Inputs: `x`, `γ`, `β` (the last two of the width of `x`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct LayerNorm {
    pub eps: f64,
}

impl LayerNorm {
    fn run<T: Real>(&self, x: &[T], g: &[T], b: &[T], w: usize) -> Vec<T> {
        let eps = T::from_f64(self.eps);
        map_rows(x.len(), w, |r, out| {
            let row = &x[r * w..(r + 1) * w];
            let (mean, rstd) = moments(row, eps);
            for j in 0..w {
                out[j] = (row[j] - mean) * rstd * g[j] + b[j];
            }
        })
    }
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "train-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let w = width(l1, self.name())?;
        if l2.shape().elem_count() != w || l3.shape().elem_count() != w {
            bail!("{}: γ and β must have {w} elements", self.name());
        }
        by_dtype!(s1.dtype(), self.name(), T => {
            let out = self.run::<T>(
                slice(s1, l1, self.name())?,
                slice(s2, l2, self.name())?,
                slice(s3, l3, self.name())?,
                w,
            );
            Ok((T::to_cpu_storage_owned(out), l1.shape().clone()))
        })
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        _beta: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = x.apply_op3_no_bwd(gamma, &grad, &LayerNormGradInput { eps: self.eps })?;
        let sums = x.apply_op2_no_bwd(&grad, &LayerNormGradParams { eps: self.eps })?;
        let shape = gamma.shape();
        Ok((
            Some(dx),
            Some(sums.get(0)?.reshape(shape)?),
            Some(sums.get(1)?.reshape(shape)?),
        ))
    }
}

/// The gradient of [`LayerNorm`] with respect to `x`, from `x`, `γ` and the output's gradient
/// `dy`: `dx = (ĝ − mean(ĝ) − x̂ · mean(ĝ x̂)) / σ` with `ĝ = dy · γ`.
#[derive(Debug, Clone, Copy)]
struct LayerNormGradInput {
    eps: f64,
}

impl CustomOp3 for LayerNormGradInput {
    fn name(&self) -> &'static str {
        "train-layer-norm-grad-x"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_shape(l1, l3, self.name())?;
        let w = width(l1, self.name())?;
        by_dtype!(s1.dtype(), self.name(), T => {
            let (x, g, dy) = (
                slice::<T>(s1, l1, self.name())?,
                slice::<T>(s2, l2, self.name())?,
                slice::<T>(s3, l3, self.name())?,
            );
            let eps = T::from_f64(self.eps);
            let n = T::from_f64(w as f64);
            let out = map_rows(x.len(), w, |r, out| {
                let (row, d) = (&x[r * w..(r + 1) * w], &dy[r * w..(r + 1) * w]);
                let (mean, rstd) = moments(row, eps);
                let (mut sum_g, mut sum_gx) = (T::ZERO, T::ZERO);
                for j in 0..w {
                    let gh = d[j] * g[j];
                    sum_g += gh;
                    sum_gx += gh * (row[j] - mean) * rstd;
                }
                let (mean_g, mean_gx) = (sum_g / n, sum_gx / n);
                for j in 0..w {
                    let xh = (row[j] - mean) * rstd;
                    out[j] = (d[j] * g[j] - mean_g - xh * mean_gx) * rstd;
                }
            });
            Ok((T::to_cpu_storage_owned(out), l1.shape().clone()))
        })
    }
}

/// The gradients of [`LayerNorm`] with respect to `γ` and `β`, from `x` and `dy`: `[2, width]`,
/// row 0 `Σ dy · x̂`, row 1 `Σ dy`, summed over every row of `x`.
#[derive(Debug, Clone, Copy)]
struct LayerNormGradParams {
    eps: f64,
}

impl CustomOp2 for LayerNormGradParams {
    fn name(&self) -> &'static str {
        "train-layer-norm-grad-params"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_shape(l1, l2, self.name())?;
        let w = width(l1, self.name())?;
        by_dtype!(s1.dtype(), self.name(), T => {
            let (x, dy) = (slice::<T>(s1, l1, self.name())?, slice::<T>(s2, l2, self.name())?);
            let eps = T::from_f64(self.eps);
            let sums = x
                .par_chunks(w * ROWS_PER_TASK)
                .zip(dy.par_chunks(w * ROWS_PER_TASK))
                .map(|(xs, ds)| {
                    let mut acc = vec![T::ZERO; 2 * w];
                    for (row, d) in xs.chunks(w).zip(ds.chunks(w)) {
                        let (mean, rstd) = moments(row, eps);
                        for j in 0..w {
                            acc[j] += d[j] * (row[j] - mean) * rstd;
                            acc[w + j] += d[j];
                        }
                    }
                    acc
                })
                .reduce(
                    || vec![T::ZERO; 2 * w],
                    |mut a, b| {
                        a.iter_mut().zip(&b).for_each(|(a, &b)| *a += b);
                        a
                    },
                );
            Ok((T::to_cpu_storage_owned(sums), Shape::from((2, w))))
        })
    }
}

/// `x + b` with `b` (the width of `x`'s last dimension) added to every row: a linear layer's
/// bias. Its gradient with respect to `b` is the column sum of the output's gradient, one pass
/// (candle's broadcast add reduces it with a strided sum).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "train-bias-add"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let w = width(l1, self.name())?;
        if l2.shape().elem_count() != w {
            bail!("{}: the bias must have {w} elements", self.name());
        }
        by_dtype!(s1.dtype(), self.name(), T => {
            let (x, b) = (slice::<T>(s1, l1, self.name())?, slice::<T>(s2, l2, self.name())?);
            let out = map_rows(x.len(), w, |r, out| {
                for ((o, &x), &b) in out.iter_mut().zip(&x[r * w..(r + 1) * w]).zip(b) {
                    *o = x + b;
                }
            });
            Ok((T::to_cpu_storage_owned(out), l1.shape().clone()))
        })
    }

    fn bwd(
        &self,
        _x: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let db = grad.apply_op1_no_bwd(&ColumnSum)?.reshape(b.shape())?;
        Ok((Some(grad), Some(db)))
    }
}

/// The sum of the rows: `[.., w]` → `[w]`.
#[derive(Debug, Clone, Copy)]
struct ColumnSum;

impl CustomOp1 for ColumnSum {
    fn name(&self) -> &'static str {
        "train-column-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let w = width(l, self.name())?;
        by_dtype!(s.dtype(), self.name(), T => {
            let x = slice::<T>(s, l, self.name())?;
            let sums = x
                .par_chunks(w * ROWS_PER_TASK)
                .map(|rows| {
                    let mut acc = vec![T::ZERO; w];
                    for row in rows.chunks(w) {
                        acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
                    }
                    acc
                })
                .reduce(
                    || vec![T::ZERO; w],
                    |mut a, b| {
                        a.iter_mut().zip(&b).for_each(|(a, &b)| *a += b);
                        a
                    },
                );
            Ok((T::to_cpu_storage_owned(sums), Shape::from(w)))
        })
    }
}

/// The exact GELU, `x · Φ(x) = ½x(1 + erf(x/√2))`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "train-gelu"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        by_dtype!(s.dtype(), self.name(), T => {
            let x = slice::<T>(s, l, self.name())?;
            let half = T::from_f64(0.5);
            let k = T::from_f64(std::f64::consts::FRAC_1_SQRT_2);
            let out: Vec<T> = x
                .par_iter()
                .with_min_len(4096)
                .map(|&v| half * v * (T::ONE + (v * k).error_fn()))
                .collect();
            Ok((T::to_cpu_storage_owned(out), l.shape().clone()))
        })
    }

    fn bwd(&self, x: &Tensor, _res: &Tensor, grad: &Tensor) -> Result<Option<Tensor>> {
        Ok(Some(x.apply_op2_no_bwd(&grad.contiguous()?, &GeluGrad)?))
    }
}

/// `dy · GELU'(x)`, with `GELU'(x) = Φ(x) + x φ(x)`.
#[derive(Debug, Clone, Copy)]
struct GeluGrad;

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "train-gelu-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_shape(l1, l2, self.name())?;
        by_dtype!(s1.dtype(), self.name(), T => {
            let (x, dy) = (slice::<T>(s1, l1, self.name())?, slice::<T>(s2, l2, self.name())?);
            let half = T::from_f64(0.5);
            let k = T::from_f64(std::f64::consts::FRAC_1_SQRT_2);
            let pdf = T::from_f64(1.0 / (2.0 * std::f64::consts::PI).sqrt());
            let out: Vec<T> = x
                .par_iter()
                .zip(dy.par_iter())
                .with_min_len(4096)
                .map(|(&v, &d)| {
                    let cdf = half * (T::ONE + (v * k).error_fn());
                    d * (cdf + v * pdf * (T::ZERO - half * v * v).exp())
                })
                .collect();
            Ok((T::to_cpu_storage_owned(out), l1.shape().clone()))
        })
    }
}

/// The attention softmax: `softmax(scale · scores + bias)` over the last dimension, with
/// `scores` `[batch, heads, queries, keys]` and the padding `bias` `[batch, 1, 1, keys]`
/// (constant: it gets no gradient).
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttentionSoftmax {
    pub scale: f64,
}

impl CustomOp2 for AttentionSoftmax {
    fn name(&self) -> &'static str {
        "train-attention-softmax"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (b, _heads, _queries, keys) = l1.shape().dims4()?;
        if l2.shape().dims() != [b, 1, 1, keys] {
            bail!(
                "{}: the bias must be [{b}, 1, 1, {keys}], not {:?}",
                self.name(),
                l2.shape()
            );
        }
        let per_batch = l1.shape().elem_count() / b / keys;
        by_dtype!(s1.dtype(), self.name(), T => {
            let (x, bias) = (slice::<T>(s1, l1, self.name())?, slice::<T>(s2, l2, self.name())?);
            let scale = T::from_f64(self.scale);
            let out = map_rows(x.len(), keys, |r, out| {
                let row = &x[r * keys..(r + 1) * keys];
                let bias = &bias[(r / per_batch) * keys..(r / per_batch + 1) * keys];
                let mut max = T::from_f64(f64::NEG_INFINITY);
                for j in 0..keys {
                    out[j] = row[j] * scale + bias[j];
                    max = max.max(out[j]);
                }
                let mut sum = T::ZERO;
                for v in out.iter_mut() {
                    *v = (*v - max).exp();
                    sum += *v;
                }
                for v in out.iter_mut() {
                    *v /= sum;
                }
            });
            Ok((T::to_cpu_storage_owned(out), l1.shape().clone()))
        })
    }

    fn bwd(
        &self,
        _scores: &Tensor,
        _bias: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let dx = res.apply_op2_no_bwd(&grad, &SoftmaxGrad { scale: self.scale })?;
        Ok((Some(dx), None))
    }
}

/// The gradient of [`AttentionSoftmax`] from its output `p` and the output's gradient `dp`:
/// `scale · p · (dp − Σ dp · p)`, row by row.
#[derive(Debug, Clone, Copy)]
struct SoftmaxGrad {
    scale: f64,
}

impl CustomOp2 for SoftmaxGrad {
    fn name(&self) -> &'static str {
        "train-softmax-grad"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        same_shape(l1, l2, self.name())?;
        let w = width(l1, self.name())?;
        by_dtype!(s1.dtype(), self.name(), T => {
            let (p, dp) = (slice::<T>(s1, l1, self.name())?, slice::<T>(s2, l2, self.name())?);
            let scale = T::from_f64(self.scale);
            let out = map_rows(p.len(), w, |r, out| {
                let (p, dp) = (&p[r * w..(r + 1) * w], &dp[r * w..(r + 1) * w]);
                let dot = p.iter().zip(dp).fold(T::ZERO, |a, (&p, &d)| a + p * d);
                for j in 0..w {
                    out[j] = scale * p[j] * (dp[j] - dot);
                }
            });
            Ok((T::to_cpu_storage_owned(out), l1.shape().clone()))
        })
    }
}

#[cfg(test)]
mod tests {
    use candle_core::{Device, Var, D};

    use super::*;

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut s = seed;
        let v: Vec<f64> = (0..n)
            .map(|_| {
                s = s
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((s >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
            })
            .collect();
        Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f64>()
            .unwrap()
    }

    /// The mixed-precision linear product and both its gradients equal f32's within bf16's
    /// rounding (8 significant bits: relative error under 1% of the output's scale), for
    /// shapes that are not multiples of the kernels' tiles; the classifier's one output
    /// included. Skipped (passes) where the CPU has no native bf16 kernel.
    #[test]
    fn bf16_linear_matches_f32_within_bf16_rounding() {
        if !crate::bf16::native() {
            // Nothing to compare: the product declines rather than emulating.
            let none = crate::bf16::matmul_native(&[1.0; 4], &[1.0; 4], (2, 2, 2)).unwrap();
            assert!(none.is_none());
            return;
        }
        for (m, k, n) in [(37, 70, 45), (5, 384, 1), (130, 33, 96)] {
            let f32t = |t: Tensor| t.to_dtype(DType::F32).unwrap();
            let x = Var::from_tensor(&f32t(random(&[m, k], 1))).unwrap();
            let w = Var::from_tensor(&f32t(random(&[n, k], 2))).unwrap();
            let up = f32t(random(&[m, n], 3));
            let mixed = x.as_tensor().apply_op2(w.as_tensor(), Bf16Linear).unwrap();
            let exact = x.as_tensor().matmul(&w.as_tensor().t().unwrap()).unwrap();
            let gm = (&mixed * &up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let ge = (&exact * &up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let rel = |a: &Tensor, b: &Tensor| {
                let f64t = |t: &Tensor| t.to_dtype(DType::F64).unwrap();
                let scale = f64t(b)
                    .abs()
                    .unwrap()
                    .max_all()
                    .unwrap()
                    .to_scalar::<f64>()
                    .unwrap();
                max_diff(&f64t(a), &f64t(b)) / scale
            };
            let y = rel(&mixed, &exact);
            let dx = rel(gm.get(&x).unwrap(), ge.get(&x).unwrap());
            let dw = rel(gm.get(&w).unwrap(), ge.get(&w).unwrap());
            assert!(
                y < 1e-2 && dx < 1e-2 && dw < 1e-2,
                "{m}×{k}×{n}: y {y}, dx {dx}, dw {dw}"
            );
            // Not f32 in disguise: bf16 rounding shows.
            assert!(y > 1e-6, "{m}×{k}×{n}: {y}");
        }
    }

    /// Each fused op and its gradient equal the unfused tensor expressions (in f64), for an
    /// arbitrary upstream gradient.
    #[test]
    fn fused_ops_match_their_unfused_forms() {
        let x = Var::from_tensor(&random(&[2, 3, 5, 7], 1)).unwrap();
        let upstream = random(&[2, 3, 5, 7], 2);
        let check = |fused: &dyn Fn(&Tensor) -> Tensor, plain: &dyn Fn(&Tensor) -> Tensor| {
            let (yf, yp) = (fused(x.as_tensor()), plain(x.as_tensor()));
            assert!(max_diff(&yf, &yp) < 1e-12, "forward");
            let gf = (yf * &upstream)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let gp = (yp * &upstream)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let (gf, gp) = (gf.get(&x).unwrap(), gp.get(&x).unwrap());
            assert!(max_diff(gf, gp) < 1e-10, "gradient {}", max_diff(gf, gp));
        };
        // GELU against ½x(1 + erf(x/√2)) (candle's own `gelu_erf` differentiates with a
        // rounded 1/√(2π)).
        check(&|x| x.apply_op1(Gelu).unwrap(), &|x| {
            let erf = (x * std::f64::consts::FRAC_1_SQRT_2)
                .unwrap()
                .erf()
                .unwrap();
            ((erf + 1.0).unwrap() * x)
                .unwrap()
                .affine(0.5, 0.0)
                .unwrap()
        });
        // The attention softmax, with a bias that masks the last two keys of batch 1.
        let mut bias = vec![0f64; 14];
        bias[12] = -1e4;
        bias[13] = -1e4;
        let bias = Tensor::from_vec(bias, (2, 1, 1, 7), &Device::Cpu).unwrap();
        let scale = 0.3;
        check(
            &|x| x.apply_op2(&bias, AttentionSoftmax { scale }).unwrap(),
            &|x| {
                let z = (x * scale).unwrap().broadcast_add(&bias).unwrap();
                let e = z
                    .broadcast_sub(&z.max_keepdim(D::Minus1).unwrap().detach())
                    .unwrap()
                    .exp()
                    .unwrap();
                e.broadcast_div(&e.sum_keepdim(D::Minus1).unwrap()).unwrap()
            },
        );
        // A bias added to every row, the bias trainable too.
        let bias_var = Var::from_tensor(&random(&[7], 6)).unwrap();
        let gf = (x.apply_op2(bias_var.as_tensor(), BiasAdd).unwrap() * &upstream)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let gp = (x.broadcast_add(bias_var.as_tensor()).unwrap() * &upstream)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for v in [&x, &bias_var] {
            assert!(max_diff(gf.get(v).unwrap(), gp.get(v).unwrap()) < 1e-12);
        }
        check(
            &|x| x.apply_op2(bias_var.as_tensor(), BiasAdd).unwrap(),
            &|x| x.broadcast_add(bias_var.as_tensor()).unwrap(),
        );
        // Layer norm, with γ and β trainable too.
        let gamma = Var::from_tensor(&random(&[7], 3)).unwrap();
        let beta = Var::from_tensor(&random(&[7], 4)).unwrap();
        let eps = 1e-5;
        let plain = |x: &Tensor| {
            let c = x
                .broadcast_sub(&x.mean_keepdim(D::Minus1).unwrap())
                .unwrap();
            let var = c.sqr().unwrap().mean_keepdim(D::Minus1).unwrap();
            c.broadcast_div(&(var + eps).unwrap().sqrt().unwrap())
                .unwrap()
                .broadcast_mul(gamma.as_tensor())
                .unwrap()
                .broadcast_add(beta.as_tensor())
                .unwrap()
        };
        let fused = |x: &Tensor| {
            x.apply_op3(gamma.as_tensor(), beta.as_tensor(), LayerNorm { eps })
                .unwrap()
        };
        check(&fused, &plain);
        let loss = |y: Tensor| (y * &upstream).unwrap().sum_all().unwrap();
        let gf = loss(fused(x.as_tensor())).backward().unwrap();
        let gp = loss(plain(x.as_tensor())).backward().unwrap();
        for v in [&gamma, &beta] {
            let d = max_diff(gf.get(v).unwrap(), gp.get(v).unwrap());
            assert!(d < 1e-10, "γ/β gradient {d}");
        }
    }

    /// f32 runs too, and a non-contiguous input is an error, not a wrong answer.
    #[test]
    fn f32_runs_and_strided_inputs_are_refused() {
        let x = random(&[4, 6], 5).to_dtype(DType::F32).unwrap();
        let y = x.apply_op1(Gelu).unwrap();
        let want = x.gelu_erf().unwrap();
        let d = (y - want).unwrap().abs().unwrap().max_all().unwrap();
        assert!(d.to_scalar::<f32>().unwrap() < 1e-6);
        let err = x.t().unwrap().apply_op1(Gelu).unwrap_err().to_string();
        assert!(err.contains("contiguous"), "{err}");
        let int = Tensor::new(&[1u32, 2], &Device::Cpu).unwrap();
        let err = int.apply_op1(Gelu).unwrap_err().to_string();
        assert!(err.contains("not supported"), "{err}");
    }
}

/// A linear layer's product `x · wᵀ` (`x` `[m, k]`, `w` `[n, k]` as stored) in mixed
/// precision: forward and both backward products (`dx = dy · w`, `dw = dyᵀ · x`) on the native
/// bf16 kernel ([`crate::bf16::matmul_native`]: operands rounded to bf16, f32 sums), as
/// PyTorch's bf16 autocast runs a linear layer; the weights, their gradients' accumulation and
/// the optimiser stay f32. Only where the CPU has AMX or AVX512-BF16 (callers check
/// [`crate::bf16::native`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bf16Linear;

/// `a · b` of contiguous row-major f32 slices on the native bf16 kernel.
fn bf16_product(a: &[f32], b: &[f32], mkn: (usize, usize, usize), what: &str) -> Result<Vec<f32>> {
    crate::bf16::matmul_native(a, b, mkn)?.ok_or_else(|| {
        candle_core::Error::Msg(format!("{what}: no native bf16 kernel on this CPU"))
    })
}

fn f32_rows(t: &Tensor) -> Result<Vec<f32>> {
    t.contiguous()?.flatten_all()?.to_vec1::<f32>()
}

impl CustomOp2 for Bf16Linear {
    fn name(&self) -> &'static str {
        "train-bf16-linear"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let ((m, k), (n, k2)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if k != k2 {
            bail!("{}: inputs of {k} columns for weights of {k2}", self.name());
        }
        let x = slice::<f32>(s1, l1, self.name())?;
        let w = slice::<f32>(s2, l2, self.name())?;
        // wᵀ, `[k, n]` row-major, as the kernel's right operand.
        let mut wt = vec![0f32; k * n];
        for (r, row) in w.chunks_exact(k).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                wt[c * n + r] = v;
            }
        }
        let y = bf16_product(x, &wt, (m, k, n), self.name())?;
        Ok((CpuStorage::F32(y), Shape::from((m, n))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        dy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let ((m, k), (n, _)) = (x.dims2()?, w.dims2()?);
        let dev = x.device();
        let dy_rows = f32_rows(dy)?;
        // dx = dy · w: `[m, n] · [n, k]`, w row-major as stored.
        let dx = bf16_product(&dy_rows, &f32_rows(w)?, (m, n, k), self.name())?;
        // dw = dyᵀ · x: `[n, m] · [m, k]`.
        let dyt = f32_rows(&dy.t()?)?;
        let dw = bf16_product(&dyt, &f32_rows(x)?, (n, m, k), self.name())?;
        Ok((
            Some(Tensor::from_vec(dx, (m, k), dev)?),
            Some(Tensor::from_vec(dw, (n, k), dev)?),
        ))
    }
}
