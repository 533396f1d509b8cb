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

impl AdamW {
    /// Steps taken (restored by [`AdamW::load`]).
    pub(crate) fn steps(&self) -> usize {
        self.step as usize
    }

    /// The moments of every weight and the step count as named tensors (`m.{name}`,
    /// `v.{name}` for the weight `names[i]` of slot `i`, and `step`), for a checkpoint.
    pub(crate) fn state(&self, names: &[&str]) -> Result<Vec<(String, Tensor)>> {
        if names.len() != self.slots.len() {
            bail!(
                "AdamW state: {} names for {} weights",
                names.len(),
                self.slots.len()
            );
        }
        let dev = candle_core::Device::Cpu;
        let mut out = vec![(
            "step".to_string(),
            Tensor::from_vec(vec![self.step as i64], 1, &dev)?,
        )];
        for (slot, name) in self.slots.iter().zip(names) {
            let moments = slot.moments.lock().expect("moments lock");
            let (m, v) = match &*moments {
                Moments::F32(m, v) => (
                    Tensor::from_slice(m, m.len(), &dev)?,
                    Tensor::from_slice(v, v.len(), &dev)?,
                ),
                Moments::F64(m, v) => (
                    Tensor::from_slice(m, m.len(), &dev)?,
                    Tensor::from_slice(v, v.len(), &dev)?,
                ),
            };
            out.push((format!("m.{name}"), m));
            out.push((format!("v.{name}"), v));
        }
        Ok(out)
    }

    /// Restores what [`AdamW::state`] gave: every weight's moments (each present, of the
    /// weight's size) and the step count.
    pub(crate) fn load(
        &mut self,
        names: &[&str],
        state: &std::collections::HashMap<String, Tensor>,
    ) -> Result<()> {
        let get = |key: &str| -> Result<&Tensor> {
            state
                .get(key)
                .ok_or_else(|| candle_core::Error::Msg(format!("optimiser state lacks {key}")))
        };
        let step = get("step")?.to_dtype(DType::I64)?.to_vec1::<i64>()?;
        let step = match step.as_slice() {
            [s] if (0..=i32::MAX as i64).contains(s) => *s as i32,
            _ => bail!("optimiser state: a bad step count {step:?}"),
        };
        for (slot, name) in self.slots.iter().zip(names) {
            let n = slot.var.elem_count();
            let (m, v) = (get(&format!("m.{name}"))?, get(&format!("v.{name}"))?);
            if m.elem_count() != n || v.elem_count() != n {
                bail!(
                    "optimiser state of {name}: {} and {} moments for {n} weights",
                    m.elem_count(),
                    v.elem_count()
                );
            }
            let mut moments = slot.moments.lock().expect("moments lock");
            *moments = match &*moments {
                Moments::F32(..) => Moments::F32(
                    m.to_dtype(DType::F32)?.to_vec1()?,
                    v.to_dtype(DType::F32)?.to_vec1()?,
                ),
                Moments::F64(..) => Moments::F64(
                    m.to_dtype(DType::F64)?.to_vec1()?,
                    v.to_dtype(DType::F64)?.to_vec1()?,
                ),
            };
        }
        self.step = step;
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

    /// A run resumed from the saved state (moments and step count) goes on exactly as the
    /// uninterrupted one; a state of another shape is refused.
    #[test]
    fn state_round_trips_and_resumes_exactly() {
        let d = &Device::Cpu;
        let start = Tensor::new(&[[0.5f32, -1.0, 2.0], [0.1, 0.0, -0.3]], d).unwrap();
        let loss_of = |w: &Var| {
            (w.as_tensor() * 3.0)
                .unwrap()
                .sqr()
                .unwrap()
                .sum_all()
                .unwrap()
        };
        let whole = Var::from_tensor(&start).unwrap();
        let mut a = AdamW::new(vec![(whole.clone(), true)], 0.1).unwrap();
        for _ in 0..3 {
            a.step(&loss_of(&whole).backward().unwrap(), 0.05, 1.0)
                .unwrap();
        }
        let state: std::collections::HashMap<String, Tensor> =
            a.state(&["w"]).unwrap().into_iter().collect();
        let resumed = Var::from_tensor(&whole.as_tensor().copy().unwrap()).unwrap();
        let mut b = AdamW::new(vec![(resumed.clone(), true)], 0.1).unwrap();
        b.load(&["w"], &state).unwrap();
        assert_eq!(b.steps(), 3);
        for _ in 0..2 {
            a.step(&loss_of(&whole).backward().unwrap(), 0.05, 1.0)
                .unwrap();
            b.step(&loss_of(&resumed).backward().unwrap(), 0.05, 1.0)
                .unwrap();
        }
        let (x, y) = (
            whole
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
            resumed
                .as_tensor()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap(),
        );
        assert_eq!(x, y);
        let other = Var::from_tensor(&Tensor::zeros(4, DType::F32, d).unwrap()).unwrap();
        let mut c = AdamW::new(vec![(other, true)], 0.1).unwrap();
        let err = c.load(&["w"], &state).unwrap_err().to_string();
        assert!(err.contains("6 and 6 moments for 4 weights"), "{err}");
        assert!(c
            .load(&["x"], &state)
            .unwrap_err()
            .to_string()
            .contains("lacks m.x"));
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
