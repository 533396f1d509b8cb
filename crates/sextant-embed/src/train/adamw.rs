//! AdamW with decoupled weight decay, each weight updated in place in one pass (its moments
//! kept beside it), the gradient's clipping factor folded into that pass.
//!
//! candle-nn's `AdamW` runs about ten tensor operations per weight per step, each allocating
//! a tensor of the weight's size; for MiniLM's 23M weights (12M of them the word embeddings,
//! updated every step because their moments decay) that was a tenth of a training step.
//!
//! The update is PyTorch's `AdamW` (and candle-nn's): `θ ← θ(1 − lr·λ)`, then
//! `θ ← θ − lr · m̂ / (√v̂ + ε)` with bias-corrected moments. As in the Hugging Face trainer
//! (and so sentence-transformers'), biases and layer-norm weights are not decayed.

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, DType, InplaceOp2, Layout, Result, Storage, Tensor, Var};

use rayon::prelude::*;

use super::ops::Real;

/// Whether a weight named `name` (as in the model's files) is decayed: not biases and not
/// layer-norm weights.
pub(crate) fn decays(name: &str) -> bool {
    !(name.ends_with("bias") || name.contains("LayerNorm") || name.contains("layer_norm"))
}

/// First and second moments of one weight.
#[derive(Debug)]
enum Moments {
    F32(Vec<f32>, Vec<f32>),
    F64(Vec<f64>, Vec<f64>),
}

#[derive(Debug)]
struct Slot {
    var: Var,
    decay: bool,
    moments: Mutex<Moments>,
}

/// The optimiser over a list of weights.
#[derive(Debug)]
pub(crate) struct AdamW {
    slots: Vec<Slot>,
    weight_decay: f64,
    step: i32,
}

const BETA1: f64 = 0.9;
const BETA2: f64 = 0.999;
const EPS: f64 = 1e-8;

impl AdamW {
    /// `params`: each weight with whether it is decayed.
    pub(crate) fn new(params: Vec<(Var, bool)>, weight_decay: f64) -> Result<Self> {
        let slots = params
            .into_iter()
            .map(|(var, decay)| {
                let n = var.elem_count();
                let moments = match var.dtype() {
                    DType::F32 => Moments::F32(vec![0.0; n], vec![0.0; n]),
                    DType::F64 => Moments::F64(vec![0.0; n], vec![0.0; n]),
                    other => bail!("AdamW: {other:?} weights are not supported (f32 or f64)"),
                };
                Ok(Slot {
                    var,
                    decay,
                    moments: Mutex::new(moments),
                })
            })
            .collect::<Result<_>>()?;
        Ok(AdamW {
            slots,
            weight_decay,
            step: 0,
        })
    }

    /// One step at learning rate `lr`, every gradient multiplied by `grad_scale` first (the
    /// clipping factor). Weights without a gradient in `grads` are left as they are (their
    /// moments too), as PyTorch does for a parameter whose `.grad` is `None`.
    pub(crate) fn step(
        &mut self,
        grads: &candle_core::backprop::GradStore,
        lr: f64,
        grad_scale: f64,
    ) -> Result<()> {
        self.step += 1;
        for slot in &self.slots {
            let Some(grad) = grads.get(slot.var.as_tensor()) else {
                continue;
            };
            let update = Update {
                moments: &slot.moments,
                lr,
                decay: if slot.decay { self.weight_decay } else { 0.0 },
                grad_scale,
                correction1: 1.0 - BETA1.powi(self.step),
                correction2: 1.0 - BETA2.powi(self.step),
            };
            slot.var
                .as_tensor()
                .inplace_op2(&grad.contiguous()?, &update)?;
        }
        Ok(())
    }
}

/// The in-place update of one weight by its gradient.
struct Update<'a> {
    moments: &'a Mutex<Moments>,
    lr: f64,
    decay: f64,
    grad_scale: f64,
    correction1: f64,
    correction2: f64,
}

impl Update<'_> {
    fn run<T: Real>(&self, theta: &mut [T], grad: &[T], m: &mut [T], v: &mut [T]) {
        let c = |x: f64| T::from_f64(x);
        let (b1, b2, eps) = (c(BETA1), c(BETA2), c(EPS));
        let (one_b1, one_b2) = (c(1.0 - BETA1), c(1.0 - BETA2));
        let keep = c(1.0 - self.lr * self.decay);
        let (scale, lr) = (c(self.grad_scale), c(self.lr));
        let (inv1, inv2) = (c(1.0 / self.correction1), c(1.0 / self.correction2));
        const CHUNK: usize = 1 << 14;
        theta
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .for_each(|(((theta, grad), m), v)| {
                for (((p, &g), m), v) in theta.iter_mut().zip(grad).zip(m).zip(v) {
                    let g = g * scale;
                    *m = b1 * *m + one_b1 * g;
                    *v = b2 * *v + one_b2 * g * g;
                    *p = *p * keep - lr * (*m * inv1) / ((*v * inv2).sqrt() + eps);
                }
            });
    }
}

impl InplaceOp2 for Update<'_> {
    fn name(&self) -> &'static str {
        "train-adamw"
    }

    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<()> {
        let (Some((a1, b1)), Some((a2, b2))) = (l1.contiguous_offsets(), l2.contiguous_offsets())
        else {
            bail!("AdamW: weights and gradients must be contiguous");
        };
        if b1 - a1 != b2 - a2 {
            bail!("AdamW: {} weights, {} gradients", b1 - a1, b2 - a2);
        }
        let mut moments = self
            .moments
            .lock()
            .map_err(|_| candle_core::Error::Msg("AdamW: a poisoned lock".into()))?;
        match (s1, s2.dtype(), &mut *moments) {
            (CpuStorage::F32(theta), DType::F32, Moments::F32(m, v)) => {
                self.run(&mut theta[a1..b1], &s2.as_slice::<f32>()?[a2..b2], m, v)
            }
            (CpuStorage::F64(theta), DType::F64, Moments::F64(m, v)) => {
                self.run(&mut theta[a1..b1], &s2.as_slice::<f64>()?[a2..b2], m, v)
            }
            (theta, grad, _) => bail!("AdamW: {:?} weights with {grad:?} gradients", theta.dtype()),
        }
        Ok(())
    }
}

/// `Σ x²` of a tensor's elements, in f64.
pub(crate) fn sum_squares(t: &Tensor) -> Result<f64> {
    let t = t.contiguous()?;
    let (storage, layout) = t.storage_and_layout();
    let Some((a, b)) = layout.contiguous_offsets() else {
        bail!("sum of squares: not contiguous");
    };
    Ok(match &*storage {
        Storage::Cpu(CpuStorage::F32(x)) => x[a..b].iter().map(|&v| f64::from(v * v)).sum(),
        Storage::Cpu(CpuStorage::F64(x)) => x[a..b].iter().map(|&v| v * v).sum(),
        _ => bail!("sum of squares: {:?} is not supported", t.dtype()),
    })
}

#[cfg(test)]
mod tests {
    use candle_core::Device;
    use candle_nn::optim::{Optimizer, ParamsAdamW};

    use super::*;

    /// With every weight decayed and no clipping, the fused update is candle-nn's AdamW step
    /// for step; a weight marked not decayed matches candle-nn with no decay.
    #[test]
    fn matches_candle_nn_adamw() {
        let d = &Device::Cpu;
        let start = Tensor::new(&[[0.5f64, -1.0, 2.0], [0.1, 0.0, -0.3]], d).unwrap();
        let loss_of = |w: &Var| {
            let t = Tensor::new(&[[1.0f64, 2.0, -1.0], [0.5, -0.5, 3.0]], d).unwrap();
            (w.as_tensor() * &t)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
        };
        for (decay, wd) in [(true, 0.1), (false, 0.0)] {
            let ours = Var::from_tensor(&start).unwrap();
            let theirs = Var::from_tensor(&start).unwrap();
            let mut fused = AdamW::new(vec![(ours.clone(), decay)], 0.1).unwrap();
            let mut reference = candle_nn::optim::AdamW::new(
                vec![theirs.clone()],
                ParamsAdamW {
                    lr: 0.05,
                    weight_decay: wd,
                    ..ParamsAdamW::default()
                },
            )
            .unwrap();
            for _ in 0..5 {
                fused
                    .step(&loss_of(&ours).backward().unwrap(), 0.05, 1.0)
                    .unwrap();
                reference
                    .step(&loss_of(&theirs).backward().unwrap())
                    .unwrap();
            }
            let diff = (ours.as_tensor() - theirs.as_tensor())
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f64>()
                .unwrap();
            assert!(diff < 1e-12, "decay {decay}: {diff}");
        }
    }

    #[test]
    fn biases_and_layer_norms_are_not_decayed() {
        assert!(decays("encoder.layer.0.attention.self.query.weight"));
        assert!(decays("2_Dense/linear.weight"));
        assert!(decays("embeddings.word_embeddings.weight"));
        assert!(!decays("encoder.layer.0.attention.self.query.bias"));
        assert!(!decays("embeddings.LayerNorm.weight"));
        assert!(!decays("encoder.layer.3.output.LayerNorm.weight"));
    }
}
