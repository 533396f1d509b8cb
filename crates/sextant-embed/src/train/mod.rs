//! A differentiable forward pass of a sentence-transformers bi-encoder (issue 20, first step):
//! the BERT-family encoder, its pooling, `Dense` modules and `Normalize`, over candle `Var`s,
//! so that candle's autograd gives the gradient of a training loss with respect to every
//! weight.
//!
//! The weights load from the same files as the inference path. The same name resolution
//! ([`Weights`]) and the same configuration checks apply, and the names this module keeps are
//! the files' own: `encoder.layer.0.attention.self.query.weight` for the encoder and
//! `2_Dense/linear.weight` for a `Dense` module. The inference path's fused kernels and
//! transposed, packed weights stay there. This pass is written with plain tensor operations,
//! each of which candle can differentiate: embeddings by `index_select`, layer norm from means,
//! softmax with its maximum held constant, the exact (`erf`) GELU. Dropout is not applied.
//!
//! [`mnrl_loss`] is sentence-transformers' `MultipleNegativesRankingLoss`: the cross-entropy of
//! each anchor against every positive of the batch (in-batch negatives), on `scale` times their
//! cosine similarity.

mod adamw;
mod cross;
mod ops;

use std::path::Path;

pub use cross::{bce_with_logits, TrainableCrossEncoder};

use candle_core::{DType, Device, Tensor, Var, D};

use crate::bert::{Activation, MASK_BIAS};
use crate::config::{BertConfig, EncoderFamily, ModelDir};
use crate::dense::{DenseActivation, DenseLayer};
use crate::modules::Pipeline;
use crate::pooling::Pooling;
use crate::tokenize::Encoded;
use crate::weights::Weights;
use crate::EmbedError;

/// A named trainable weight, named as in the model's files.
#[derive(Debug, Clone)]
pub struct Param {
    /// The tensor's name in its file (`2_Dense/linear.weight` for a `Dense` module's).
    pub name: String,
    /// The weight.
    pub var: Var,
}

#[derive(Debug, Clone)]
struct Linear {
    /// `[out, in]`, as stored.
    w: Var,
    b: Option<Var>,
    /// Mixed precision: the products on the native bf16 kernel ([`ops::Bf16Linear`]).
    bf16: bool,
}

impl Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let y = if self.bf16 && x.rank() == 2 {
            x.contiguous()?
                .apply_op2(self.w.as_tensor(), ops::Bf16Linear)?
        } else {
            x.matmul(&self.w.as_tensor().t()?)?
        };
        match &self.b {
            Some(b) => y.apply_op2(b.as_tensor(), ops::BiasAdd),
            None => Ok(y),
        }
    }
}

#[derive(Debug, Clone)]
struct LayerNorm {
    gamma: Var,
    beta: Var,
    eps: f64,
}

impl LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?.apply_op3(
            self.gamma.as_tensor(),
            self.beta.as_tensor(),
            ops::LayerNorm { eps: self.eps },
        )
    }
}

#[derive(Debug, Clone)]
struct Layer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    up: Linear,
    down: Linear,
    out_norm: LayerNorm,
}

#[derive(Debug, Clone)]
struct Dense {
    linear: Linear,
    activation: DenseActivation,
}

/// A sentence-transformers bi-encoder whose weights are candle `Var`s (see the module docs).
#[derive(Debug, Clone)]
pub struct TrainableEncoder {
    cfg: BertConfig,
    word: Var,
    position: Var,
    token_type: Var,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    act: Activation,
    pooling: Pooling,
    dense: Vec<Dense>,
    normalize: bool,
    params: Vec<Param>,
}

/// Loads tensors as `Var`s of `dtype`, recording their names.
struct Loader<'a> {
    weights: &'a Weights,
    dtype: DType,
    prefix: String,
    params: &'a mut Vec<Param>,
}

impl Loader<'_> {
    fn var(&mut self, name: &str, shape: &[usize]) -> Result<Var, EmbedError> {
        let t = self.weights.get(name, shape)?.to_dtype(self.dtype)?;
        let var = Var::from_tensor(&t)?;
        self.params.push(Param {
            name: format!("{}{name}", self.prefix),
            var: var.clone(),
        });
        Ok(var)
    }

    fn linear(&mut self, name: &str, inp: usize, out: usize) -> Result<Linear, EmbedError> {
        let w = self.var(&format!("{name}.weight"), &[out, inp])?;
        let b = match self.weights.get_opt(&format!("{name}.bias"), &[out])? {
            Some(_) => Some(self.var(&format!("{name}.bias"), &[out])?),
            None => None,
        };
        Ok(Linear { w, b, bf16: false })
    }

    fn norm(&mut self, name: &str, dim: usize, eps: f64) -> Result<LayerNorm, EmbedError> {
        Ok(LayerNorm {
            gamma: self.var(&format!("{name}.weight"), &[dim])?,
            beta: self.var(&format!("{name}.bias"), &[dim])?,
            eps,
        })
    }
}

impl TrainableEncoder {
    /// Loads the sentence-transformers (or plain Hugging Face BERT-family) model in `dir`, its
    /// weights as `dtype` (f32 to train, f64 for gradient checks). A model without a pooling
    /// module pools by `default_pooling`.
    pub fn load(dir: &Path, dtype: DType, default_pooling: Pooling) -> Result<Self, EmbedError> {
        let model = ModelDir::resolve(&dir.to_string_lossy())?;
        let cfg = model.bert_config()?;
        if cfg.family() != EncoderFamily::Bert {
            return Err(EmbedError::InvalidArgument(format!(
                "{}: training supports BERT models (model_type bert), not {:?}",
                dir.display(),
                cfg.model_type
            )));
        }
        let weights = Weights::load(&model.require(crate::config::WEIGHTS_FILE)?, &Device::Cpu)?;
        let (h, eps) = (cfg.hidden_size, cfg.layer_norm_eps);
        let mut params = Vec::new();
        let mut l = Loader {
            weights: &weights,
            dtype,
            prefix: String::new(),
            params: &mut params,
        };
        let word = l.var("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?;
        let position = l.var(
            "embeddings.position_embeddings.weight",
            &[cfg.max_position_embeddings, h],
        )?;
        let token_type = l.var(
            "embeddings.token_type_embeddings.weight",
            &[cfg.type_vocab_size, h],
        )?;
        let emb_norm = l.norm("embeddings.LayerNorm", h, eps)?;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            layers.push(Layer {
                query: l.linear(&format!("{p}.attention.self.query"), h, h)?,
                key: l.linear(&format!("{p}.attention.self.key"), h, h)?,
                value: l.linear(&format!("{p}.attention.self.value"), h, h)?,
                attn_out: l.linear(&format!("{p}.attention.output.dense"), h, h)?,
                attn_norm: l.norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
                up: l.linear(&format!("{p}.intermediate.dense"), h, cfg.intermediate_size)?,
                down: l.linear(&format!("{p}.output.dense"), cfg.intermediate_size, h)?,
                out_norm: l.norm(&format!("{p}.output.LayerNorm"), h, eps)?,
            });
        }
        let act = Activation::parse(&cfg.hidden_act).ok_or_else(|| {
            EmbedError::InvalidArgument(format!("unsupported activation {:?}", cfg.hidden_act))
        })?;
        let pipeline = Pipeline::read(model.root(), h)?;
        let mut dense = Vec::with_capacity(pipeline.dense.len());
        let mut width = h;
        for dir in &pipeline.dense {
            // The inference loader checks the module's configuration and weights.
            let checked = DenseLayer::load(dir, width)?;
            let dense_weights = Weights::load(&crate::dense::weights_file(dir)?, &Device::Cpu)?;
            let name = dir
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into());
            let mut l = Loader {
                weights: &dense_weights,
                dtype,
                prefix: format!("{name}/"),
                params: &mut params,
            };
            let linear = l.linear("linear", width, checked.out_features())?;
            dense.push(Dense {
                linear,
                activation: checked.activation(),
            });
            width = checked.out_features();
        }
        Ok(TrainableEncoder {
            cfg,
            word,
            position,
            token_type,
            emb_norm,
            layers,
            act,
            pooling: pipeline.pooling.map_or(default_pooling, |p| p.pooling),
            dense,
            normalize: pipeline.normalize,
            params,
        })
    }

    /// Mixed precision on or off: with it every linear layer's products, forward and
    /// backward, run on the native bf16 kernel (operands rounded to bf16, f32 sums), while the
    /// weights, the other operations and the optimiser stay f32. Refused on a CPU without
    /// AMX or AVX512-BF16 ([`mixed_precision_available`]) or for weights not loaded as f32.
    pub fn set_mixed_precision(&mut self, on: bool) -> Result<(), EmbedError> {
        if on {
            check_mixed_precision(self.word.dtype())?;
        }
        for l in &mut self.layers {
            for lin in [
                &mut l.query,
                &mut l.key,
                &mut l.value,
                &mut l.attn_out,
                &mut l.up,
                &mut l.down,
            ] {
                lin.bf16 = on;
            }
        }
        for d in &mut self.dense {
            d.linear.bf16 = on;
        }
        Ok(())
    }

    /// Every trainable weight, named as in the model's files.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Sentence embeddings `[batch, out]` of token `ids` and `type_ids` (`[batch, seq]` u32)
    /// with `mask` (`[batch, seq]`, 1 for tokens, 0 for padding), differentiable with respect to
    /// every [`TrainableEncoder::params`] weight.
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor, EmbedError> {
        let mut out = self.forward_many(&[(ids, type_ids, mask)])?;
        Ok(out.remove(0))
    }

    /// [`TrainableEncoder::forward`] of several batches (each `(ids, type_ids, mask)`) at once.
    /// Their tokens are looked up in the embedding tables in one gather, so the gradient of
    /// the word embeddings (`vocab × hidden`, most of the model's weights) is built once for
    /// all of them rather than once a batch.
    pub fn forward_many(
        &self,
        batches: &[(&Tensor, &Tensor, &Tensor)],
    ) -> Result<Vec<Tensor>, EmbedError> {
        let mut outs = Vec::with_capacity(batches.len());
        for (x, mask) in self.hidden_many(batches)? {
            let mut out = self.pooling.apply(&x, &mask)?;
            for d in &self.dense {
                out = d.activation.apply(&d.linear.forward(&out)?)?;
            }
            if self.normalize {
                out = unit_rows(&out)?;
            }
            outs.push(out);
        }
        Ok(outs)
    }

    /// The encoder's last hidden states `[batch, seq, hidden]` of each batch, with its mask in
    /// the model's float type.
    fn hidden_many(
        &self,
        batches: &[(&Tensor, &Tensor, &Tensor)],
    ) -> Result<Vec<(Tensor, Tensor)>, EmbedError> {
        let mut shapes = Vec::with_capacity(batches.len());
        for (ids, _, _) in batches {
            let (b, s) = ids.dims2()?;
            if s > self.cfg.max_tokens() {
                return Err(EmbedError::InvalidArgument(format!(
                    "sequence of {s} tokens exceeds the model's {} positions",
                    self.cfg.max_tokens()
                )));
            }
            shapes.push((b, s));
        }
        let flat = |pick: fn(&(&Tensor, &Tensor, &Tensor)) -> candle_core::Result<Tensor>| {
            let parts = batches
                .iter()
                .map(pick)
                .collect::<candle_core::Result<Vec<_>>>()?;
            Tensor::cat(&parts, 0)
        };
        let all_ids = flat(|b| b.0.flatten_all())?;
        let all_types = flat(|b| b.1.flatten_all())?;
        let words = self.word.index_select(&all_ids, 0)?;
        let types = self.token_type.index_select(&all_types, 0)?;
        let tokens = (words + types)?;
        let h = self.cfg.hidden_size;
        let dtype = self.word.dtype();
        let mut offset = 0;
        let mut outs = Vec::with_capacity(batches.len());
        for ((_, _, mask), &(b, s)) in batches.iter().zip(&shapes) {
            let pos = self.position.narrow(0, 0, s)?;
            let x = tokens
                .narrow(0, offset, b * s)?
                .reshape((b, s, h))?
                .broadcast_add(&pos)?;
            offset += b * s;
            let mut x = self.emb_norm.forward(&x)?;
            let mask = mask.to_dtype(dtype)?;
            let bias = ((1.0 - &mask)? * MASK_BIAS)?.reshape((b, 1, 1, s))?;
            for layer in &self.layers {
                x = self.layer(layer, &x, &bias)?;
            }
            outs.push((x, mask));
        }
        Ok(outs)
    }

    fn layer(&self, l: &Layer, x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let heads = self.cfg.num_attention_heads;
        let hd = h / heads;
        let x2 = x.reshape((b * s, h))?;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, s, heads, hd))?.transpose(1, 2)?.contiguous()
        };
        let q = split(l.query.forward(&x2)?)?;
        let k = split(l.key.forward(&x2)?)?;
        let v = split(l.value.forward(&x2)?)?;
        let probs = q.matmul(&k.t()?)?.apply_op2(
            bias,
            ops::AttentionSoftmax {
                scale: 1.0 / (hd as f64).sqrt(),
            },
        )?;
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b * s, h))?;
        let x2 = l.attn_norm.forward(&(l.attn_out.forward(&ctx)? + &x2)?)?;
        let up = l.up.forward(&x2)?;
        let up = match self.act {
            Activation::Gelu => up.apply_op1(ops::Gelu)?,
            _ => self.act.apply(&up)?,
        };
        let out = l.out_norm.forward(&(l.down.forward(&up)? + &x2)?)?;
        out.reshape((b, s, h))
    }
}

/// Whether training can run in mixed precision here: the CPU has a native bf16 kernel (AMX
/// or AVX512-BF16).
pub fn mixed_precision_available() -> bool {
    crate::bf16::native()
}

fn check_mixed_precision(dtype: DType) -> Result<(), EmbedError> {
    if !mixed_precision_available() {
        return Err(EmbedError::InvalidArgument(
            "mixed precision needs a CPU with AMX or AVX512-BF16 (this one has neither): train in f32".into(),
        ));
    }
    if dtype != DType::F32 {
        return Err(EmbedError::InvalidArgument(format!(
            "mixed precision trains f32 weights, not {dtype:?}"
        )));
    }
    Ok(())
}

/// Each row divided by its L2 norm (at least 1e-12), as sentence-transformers' `Normalize`.
fn unit_rows(t: &Tensor) -> candle_core::Result<Tensor> {
    let norm = t.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    t.broadcast_div(&norm.clamp(1e-12, f64::MAX)?)
}

/// sentence-transformers' `MultipleNegativesRankingLoss` of `anchors` and `positives`
/// (`[batch, dim]` each, row `i` of both a pair), with optional hard `negatives` (`[batch,
/// dim]`, row `i` mined for anchor `i`; every anchor sees all of them): the mean cross-entropy
/// of row `i` of `scale · cos(anchors, [positives; negatives])ᵀ` against column `i`. A scalar
/// tensor.
pub fn mnrl_loss(
    anchors: &Tensor,
    positives: &Tensor,
    negatives: Option<&Tensor>,
    scale: f64,
) -> Result<Tensor, EmbedError> {
    let (a, p) = (unit_rows(anchors)?, unit_rows(positives)?);
    let candidates = match negatives {
        Some(neg) => Tensor::cat(&[&p, &unit_rows(neg)?], 0)?,
        None => p,
    };
    let scores = (a.matmul(&candidates.t()?)? * scale)?;
    let n = scores.dim(0)?;
    let max = scores.max_keepdim(D::Minus1)?.detach();
    let shifted = scores.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let log_probs = shifted.broadcast_sub(&log_sum)?;
    let eye = Tensor::eye(n, log_probs.dtype(), log_probs.device())?;
    let eye = match scores.dim(1)? - n {
        0 => eye,
        extra => Tensor::cat(
            &[&eye, &Tensor::zeros((n, extra), eye.dtype(), eye.device())?],
            1,
        )?,
    };
    let picked = (log_probs * eye)?.sum_all()?;
    Ok((picked.neg()? / n as f64)?)
}

/// Settings of [`TrainableEncoder::fit`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct TrainOptions {
    /// Passes over the pairs.
    pub epochs: usize,
    /// Pairs per step (every other pair of a batch is a negative of each anchor); at least 2.
    pub batch: usize,
    /// Peak learning rate of AdamW.
    pub lr: f64,
    /// Share of the steps over which the learning rate rises linearly from 0 to `lr`; it then
    /// falls linearly to 0 at the last step.
    pub warmup: f64,
    /// AdamW's decoupled weight decay (not applied to biases and layer-norm weights).
    pub weight_decay: f64,
    /// The gradient is scaled down to this global norm when above it.
    pub max_grad_norm: f64,
    /// [`mnrl_loss`]'s scale.
    pub scale: f64,
    /// Seed of the order of the pairs in each epoch.
    pub seed: u64,
    /// Matryoshka training: when not empty, the loss is the sum of [`mnrl_loss`] over the
    /// embeddings cut to each of these widths (sentence-transformers' `MatryoshkaLoss` with
    /// weights 1), so that a prefix of the vector is itself a good embedding.
    pub matryoshka: Vec<usize>,
    /// Symmetric multiple-negatives ranking (sentence-transformers'
    /// `MultipleNegativesSymmetricRankingLoss`): the mean of [`mnrl_loss`] from anchors to
    /// positives (with the hard negatives) and from positives to anchors (in-batch ones only),
    /// so that each document also finds its query among the batch's.
    pub symmetric: bool,
}

impl Default for TrainOptions {
    /// sentence-transformers' defaults for MNRL fine-tuning: 1 epoch, batch 16 (their
    /// trainer's 8 is small for in-batch negatives), lr 2e-5, 10% warm-up, weight decay 0.01,
    /// gradient norm 1, scale 20.
    fn default() -> Self {
        TrainOptions {
            epochs: 1,
            batch: 16,
            lr: 2e-5,
            warmup: 0.1,
            weight_decay: 0.01,
            max_grad_norm: 1.0,
            scale: 20.0,
            seed: 42,
            matryoshka: Vec::new(),
            symmetric: false,
        }
    }
}

/// One optimisation step, as [`TrainableEncoder::fit`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Step {
    /// 1-based.
    pub step: usize,
    /// Steps in the whole run.
    pub total: usize,
    pub epoch: usize,
    pub loss: f64,
    /// The learning rate the step used.
    pub lr: f64,
    /// The gradient's global norm before clipping.
    pub grad_norm: f64,
}

/// The batches of each epoch of [`TrainableEncoder::fit`] over `pairs` pairs: indices into the
/// pairs, shuffled each epoch by a generator seeded with `opts.seed`, cut into batches of
/// `opts.batch`; a last batch of fewer than 2 pairs is left out (it has no in-batch negative).
pub fn training_batches(pairs: usize, opts: &TrainOptions) -> Vec<Vec<Vec<usize>>> {
    use rand::seq::SliceRandom;
    use rand::SeedableRng;
    let mut rng = rand::rngs::SmallRng::seed_from_u64(opts.seed);
    let mut order: Vec<usize> = (0..pairs).collect();
    (0..opts.epochs)
        .map(|_| {
            order.shuffle(&mut rng);
            order
                .chunks(opts.batch.max(1))
                .filter(|c| c.len() >= 2)
                .map(<[usize]>::to_vec)
                .collect()
        })
        .collect()
}

/// [`mnrl_loss`], or with `symmetric` its mean with the loss from positives to anchors
/// (in-batch negatives only), as sentence-transformers' `MultipleNegativesSymmetricRankingLoss`.
pub fn ranking_loss(
    anchors: &Tensor,
    positives: &Tensor,
    negatives: Option<&Tensor>,
    scale: f64,
    symmetric: bool,
) -> Result<Tensor, EmbedError> {
    let forward = mnrl_loss(anchors, positives, negatives, scale)?;
    if !symmetric {
        return Ok(forward);
    }
    let backward = mnrl_loss(positives, anchors, None, scale)?;
    Ok(((forward + backward)? * 0.5)?)
}

/// The training loss of a batch's embeddings: [`ranking_loss`], or its sum over the
/// Matryoshka widths when `matryoshka` is not empty.
pub fn training_loss(
    anchors: &Tensor,
    positives: &Tensor,
    negatives: Option<&Tensor>,
    opts: &TrainOptions,
) -> Result<Tensor, EmbedError> {
    let (scale, symmetric) = (opts.scale, opts.symmetric);
    if opts.matryoshka.is_empty() {
        return ranking_loss(anchors, positives, negatives, scale, symmetric);
    }
    let mut total: Option<Tensor> = None;
    for &w in &opts.matryoshka {
        let cut = |t: &Tensor| t.narrow(D::Minus1, 0, w);
        let negatives = negatives.map(cut).transpose()?;
        let loss = ranking_loss(
            &cut(anchors)?,
            &cut(positives)?,
            negatives.as_ref(),
            scale,
            symmetric,
        )?;
        total = Some(match total {
            Some(t) => (t + loss)?,
            None => loss,
        });
    }
    Ok(total.expect("matryoshka is not empty"))
}

/// The training loop shared by the bi-encoder and the cross-encoder: AdamW over `params` on
/// the batches of [`training_batches`] (indices into `items` training items), each batch's loss
/// from `batch_loss`; linear warm-up and decay, the gradient clipped to its global norm.
fn optimise(
    params: &[Param],
    items: usize,
    opts: &TrainOptions,
    mut batch_loss: impl FnMut(&[usize]) -> Result<Tensor, EmbedError>,
    control: Control<'_>,
) -> Result<(), EmbedError> {
    if opts.batch < 2 {
        return Err(EmbedError::InvalidArgument(format!(
            "batch {}: in-batch negatives need at least 2 pairs a batch",
            opts.batch
        )));
    }
    let lr_ok = opts.lr > 0.0 && opts.lr.is_finite();
    if !lr_ok || !(0.0..1.0).contains(&opts.warmup) {
        return Err(EmbedError::InvalidArgument(format!(
            "learning rate {} (must be positive) or warm-up share {} (must be in [0, 1))",
            opts.lr, opts.warmup
        )));
    }
    let epochs = training_batches(items, opts);
    let total: usize = epochs.iter().map(Vec::len).sum();
    if total == 0 {
        return Err(EmbedError::InvalidArgument(format!(
            "{items} pairs make no batch of at least 2"
        )));
    }
    let warmup = (opts.warmup * total as f64).ceil() as usize;
    let mut adam = adamw::AdamW::new(
        params
            .iter()
            .map(|p| (p.var.clone(), adamw::decays(&p.name)))
            .collect(),
        opts.weight_decay,
    )?;
    let names: Vec<&str> = params.iter().map(|p| p.name.as_str()).collect();
    if let Some(path) = control.resume {
        let state = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| EmbedError::InvalidArgument(format!("{}: {e}", path.display())))?;
        adam.load(&names, &state)
            .map_err(|e| EmbedError::InvalidArgument(format!("{}: {e}", path.display())))?;
        if adam.steps() >= total {
            return Err(EmbedError::InvalidArgument(format!(
                "{}: the checkpoint is after step {} of this run's {total}: nothing is left to train",
                path.display(),
                adam.steps()
            )));
        }
    }
    let done = adam.steps();
    let mut step = 0;
    'run: for (epoch, batches) in epochs.iter().enumerate() {
        for chunk in batches {
            step += 1;
            if step <= done {
                // Trained before the checkpoint: the seeded order is the same, so skipping
                // these batches resumes where the run stopped.
                continue;
            }
            let lr = if step <= warmup {
                opts.lr * step as f64 / warmup as f64
            } else {
                opts.lr * (total - step + 1) as f64 / (total - warmup + 1) as f64
            };
            let loss = batch_loss(chunk)?;
            let grads = loss.backward()?;
            let mut sq = 0f64;
            for p in params {
                if let Some(g) = grads.get(p.var.as_tensor()) {
                    sq += adamw::sum_squares(g)?;
                }
            }
            let grad_norm = sq.sqrt();
            let clip = if grad_norm > opts.max_grad_norm {
                opts.max_grad_norm / grad_norm
            } else {
                1.0
            };
            adam.step(&grads, lr, clip)?;
            let flow = (control.after_step)(
                &Step {
                    step,
                    total,
                    epoch: epoch + 1,
                    loss: loss.to_dtype(DType::F64)?.to_scalar::<f64>()?,
                    lr,
                    grad_norm,
                },
                &Optimiser {
                    adam: &adam,
                    names: &names,
                },
            )?;
            if flow == Flow::Stop {
                break 'run;
            }
        }
    }
    Ok(())
}

/// Runs `train` from the start under a [`Control`] that only reports each step to `on_step`
/// (never stopping it).
fn reporting(
    mut on_step: impl FnMut(&Step),
    train: impl FnOnce(Control<'_>) -> Result<(), EmbedError>,
) -> Result<(), EmbedError> {
    let mut each = |s: &Step, _: &Optimiser<'_>| {
        on_step(s);
        Ok(Flow::Continue)
    };
    train(Control {
        resume: None,
        after_step: &mut each,
    })
}

/// What the training loop does after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// End the run here (early stopping): the weights stay as this step left them.
    Stop,
}

/// How a training run is driven beyond its [`TrainOptions`].
#[allow(missing_debug_implementations)] // a callback
pub struct Control<'a> {
    /// An optimiser state written by [`Optimiser::save`] after step N of a run with the same
    /// data and options: the run skips its first N steps (the seeded order is the same) and
    /// goes on from the weights the model was loaded with (the checkpoint's), with AdamW's
    /// moments and step count restored.
    pub resume: Option<&'a Path>,
    /// Called after every step with the step and the optimiser (to checkpoint it).
    pub after_step: &'a mut dyn FnMut(&Step, &Optimiser<'_>) -> Result<Flow, EmbedError>,
}

/// The optimiser of a run, as [`Control::after_step`] sees it.
#[derive(Debug)]
pub struct Optimiser<'a> {
    adam: &'a adamw::AdamW,
    names: &'a [&'a str],
}

impl Optimiser<'_> {
    /// Writes AdamW's state (every weight's moments under its name, and the step count) to
    /// `path` as safetensors: what [`Control::resume`] reads back.
    pub fn save(&self, path: &Path) -> Result<(), EmbedError> {
        let state: std::collections::HashMap<String, Tensor> =
            self.adam.state(self.names)?.into_iter().collect();
        candle_core::safetensors::save(&state, path)?;
        Ok(())
    }
}

/// A copy of every weight's current value (to keep the best weights of a run).
pub fn snapshot_params(params: &[Param]) -> Result<Vec<Tensor>, EmbedError> {
    Ok(params
        .iter()
        .map(|p| p.var.as_tensor().copy())
        .collect::<candle_core::Result<_>>()?)
}

/// Sets every weight back to a [`snapshot_params`] of the same parameters.
pub fn restore_params(params: &[Param], snapshot: &[Tensor]) -> Result<(), EmbedError> {
    if snapshot.len() != params.len() {
        return Err(EmbedError::InvalidArgument(format!(
            "a snapshot of {} weights for {} parameters",
            snapshot.len(),
            params.len()
        )));
    }
    for (p, t) in params.iter().zip(snapshot) {
        p.var.set(t)?;
    }
    Ok(())
}

impl TrainableEncoder {
    /// The width of the embeddings [`TrainableEncoder::forward`] returns.
    pub fn output_width(&self) -> usize {
        self.dense
            .last()
            .map_or(self.cfg.hidden_size, |d| d.linear.w.dims()[0])
    }

    /// Trains on `(anchor, positive)` pairs of tokenised texts with [`mnrl_loss`] and AdamW,
    /// with a hard negative for each pair when `negatives` are given (`negatives[i]` for
    /// `pairs[i]`); `on_step` sees every step. Pairs are shuffled each epoch (seeded); a last
    /// batch of fewer than 2 pairs is skipped (it has no in-batch negative).
    pub fn fit(
        &self,
        pairs: &[(Encoded, Encoded)],
        negatives: Option<&[Encoded]>,
        pad_id: u32,
        opts: &TrainOptions,
        on_step: impl FnMut(&Step),
    ) -> Result<(), EmbedError> {
        reporting(on_step, |control| {
            self.fit_controlled(pairs, negatives, pad_id, opts, control)
        })
    }

    /// As [`TrainableEncoder::fit`], with the run under `control`: resumed from a checkpoint's
    /// optimiser state, and after every step told to go on or stop (validation, early
    /// stopping, checkpoints are the caller's).
    pub fn fit_controlled(
        &self,
        pairs: &[(Encoded, Encoded)],
        negatives: Option<&[Encoded]>,
        pad_id: u32,
        opts: &TrainOptions,
        control: Control<'_>,
    ) -> Result<(), EmbedError> {
        if let Some(neg) = negatives.filter(|n| n.len() != pairs.len()) {
            return Err(EmbedError::InvalidArgument(format!(
                "{} hard negatives for {} pairs: give one a pair",
                neg.len(),
                pairs.len()
            )));
        }
        let width = self.output_width();
        if let Some(&bad) = opts.matryoshka.iter().find(|&&w| w == 0 || w > width) {
            return Err(EmbedError::InvalidArgument(format!(
                "Matryoshka width {bad}: every width must be between 1 and the model's {width}"
            )));
        }
        let batch_loss = |chunk: &[usize]| -> Result<Tensor, EmbedError> {
            let batch =
                |items: Vec<&Encoded>| crate::tokenize::Batch::new(&items, pad_id, &Device::Cpu);
            let mut sides = vec![
                batch(chunk.iter().map(|&i| &pairs[i].0).collect())?,
                batch(chunk.iter().map(|&i| &pairs[i].1).collect())?,
            ];
            if let Some(neg) = negatives {
                sides.push(batch(chunk.iter().map(|&i| &neg[i]).collect())?);
            }
            let embedded = self.forward_many(
                &sides
                    .iter()
                    .map(|b| (&b.ids, &b.type_ids, &b.mask))
                    .collect::<Vec<_>>(),
            )?;
            training_loss(&embedded[0], &embedded[1], embedded.get(2), opts)
        };
        optimise(&self.params, pairs.len(), opts, batch_loss, control)
    }

    /// Writes the model as trained into `out`: every file of the directory it was loaded from
    /// (`from`: configuration, tokenizer, modules), with the encoder's and each `Dense`
    /// module's `model.safetensors` rewritten — trained tensors in f32 under their stored
    /// names, other stored tensors (a pooler) unchanged — so that Sextant, sentence-transformers
    /// and transformers load it as they loaded the original.
    pub fn save(&self, from: &Path, out: &Path) -> Result<(), EmbedError> {
        copy_dir(from, out)?;
        let model = ModelDir::resolve(&from.to_string_lossy())?;
        let mut files: Vec<(std::path::PathBuf, String)> =
            vec![(model.require(crate::config::WEIGHTS_FILE)?, String::new())];
        for dir in Pipeline::read(model.root(), self.cfg.hidden_size)?.dense {
            let name = dir
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into());
            files.push((crate::dense::weights_file(&dir)?, format!("{name}/")));
        }
        for (path, prefix) in files {
            let weights = Weights::load(&path, &Device::Cpu)?;
            let mut tensors = weights.tensors().clone();
            // The encoder's weights have bare names, a Dense module's its directory's prefix.
            let mine = |name: &'_ str| -> Option<String> {
                if prefix.is_empty() {
                    (!name.contains('/')).then(|| name.to_owned())
                } else {
                    name.strip_prefix(prefix.as_str()).map(str::to_owned)
                }
            };
            for param in &self.params {
                let Some(name) = mine(&param.name) else {
                    continue;
                };
                let stored = weights.stored_name(&name).ok_or_else(|| {
                    EmbedError::InvalidArgument(format!("{name}: not in {}", path.display()))
                })?;
                tensors.insert(stored, param.var.as_tensor().to_dtype(DType::F32)?);
            }
            let rel = path.strip_prefix(from).map_err(|_| {
                EmbedError::InvalidArgument(format!(
                    "{} is outside {}",
                    path.display(),
                    from.display()
                ))
            })?;
            let target = out.join(rel);
            candle_core::safetensors::save(&tensors, &target)?;
        }
        Ok(())
    }
}

/// Copies the files under `from` into `out` (created), directories included.
fn copy_dir(from: &Path, out: &Path) -> Result<(), EmbedError> {
    std::fs::create_dir_all(out).map_err(|e| EmbedError::io(out, e))?;
    for entry in std::fs::read_dir(from).map_err(|e| EmbedError::io(from, e))? {
        let entry = entry.map_err(|e| EmbedError::io(from, e))?;
        let (src, dst) = (entry.path(), out.join(entry.file_name()));
        if src.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| EmbedError::io(&src, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// With hard negatives every anchor is scored against all positives and all negatives:
    /// an anchor whose negative is as close as its positive loses ln 2 (plus e^-20 terms).
    #[test]
    fn mnrl_scores_anchors_against_positives_and_negatives() {
        let d = &Device::Cpu;
        let e = Tensor::new(&[[1f64, 0.0], [0.0, 1.0]], d).unwrap();
        let swapped = Tensor::new(&[[0f64, 1.0], [1.0, 0.0]], d).unwrap();
        let value = |t: Tensor| t.to_scalar::<f64>().unwrap();
        let plain = value(mnrl_loss(&e, &e, None, 20.0).unwrap());
        let tail = (-20f64).exp();
        assert!((plain - (1.0 + tail).ln()).abs() < 1e-12, "{plain}");
        let hard = value(mnrl_loss(&e, &e, Some(&swapped), 20.0).unwrap());
        assert!((hard - (2.0 + 2.0 * tail).ln()).abs() < 1e-12, "{hard}");
        // Scaled rows change nothing: the scores are cosines.
        let scaled = (&e * 3.0).unwrap();
        let again = value(mnrl_loss(&scaled, &e, Some(&swapped), 20.0).unwrap());
        assert!((again - hard).abs() < 1e-12);
    }

    /// The Matryoshka loss is the sum of the loss over each prefix width.
    #[test]
    fn matryoshka_sums_the_loss_over_prefixes() {
        let d = &Device::Cpu;
        let a = Tensor::new(&[[1f64, 0.5, -0.2, 0.3], [0.1, 1.0, 0.4, -0.6]], d).unwrap();
        let p = Tensor::new(&[[0.9f64, 0.4, 0.1, -0.3], [-0.2, 0.8, 0.9, 0.5]], d).unwrap();
        let value = |t: Tensor| t.to_scalar::<f64>().unwrap();
        let cut = |t: &Tensor, w: usize| t.narrow(1, 0, w).unwrap();
        let widths = |w: &[usize]| TrainOptions {
            matryoshka: w.to_vec(),
            ..TrainOptions::default()
        };
        let whole = value(training_loss(&a, &p, None, &widths(&[])).unwrap());
        assert_eq!(whole, value(mnrl_loss(&a, &p, None, 20.0).unwrap()));
        let summed = value(training_loss(&a, &p, Some(&p), &widths(&[4, 2])).unwrap());
        let by_hand = value(mnrl_loss(&a, &p, Some(&p), 20.0).unwrap())
            + value(mnrl_loss(&cut(&a, 2), &cut(&p, 2), Some(&cut(&p, 2)), 20.0).unwrap());
        assert!((summed - by_hand).abs() < 1e-12, "{summed} {by_hand}");
        // The width-2 loss differs from the whole one: the cut is not a no-op.
        let two = value(training_loss(&a, &p, None, &widths(&[2])).unwrap());
        assert!((two - whole).abs() > 1e-6);
    }

    /// The symmetric loss is the mean of the loss from anchors (with the hard negatives) and
    /// the loss from positives back to the anchors (in-batch only); it differs from the
    /// one-way loss when the similarity matrix is not symmetric.
    #[test]
    fn symmetric_loss_averages_both_directions() {
        let d = &Device::Cpu;
        let a = Tensor::new(&[[1f64, 0.5, -0.2], [0.1, 1.0, 0.4], [0.3, -0.1, 0.9]], d).unwrap();
        let p = Tensor::new(&[[0.9f64, 0.4, 0.1], [0.8, 0.9, 0.5], [0.2, 0.1, 1.0]], d).unwrap();
        let n = Tensor::new(&[[0.5f64, 0.5, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.2]], d).unwrap();
        let value = |t: Tensor| t.to_scalar::<f64>().unwrap();
        let sym = TrainOptions {
            symmetric: true,
            ..TrainOptions::default()
        };
        let both = value(training_loss(&a, &p, Some(&n), &sym).unwrap());
        let by_hand = 0.5
            * (value(mnrl_loss(&a, &p, Some(&n), 20.0).unwrap())
                + value(mnrl_loss(&p, &a, None, 20.0).unwrap()));
        assert!((both - by_hand).abs() < 1e-12, "{both} {by_hand}");
        let one_way = value(training_loss(&a, &p, Some(&n), &TrainOptions::default()).unwrap());
        assert!((both - one_way).abs() > 1e-6);
        // With Matryoshka widths each width's loss is symmetric too.
        let cut = |t: &Tensor| t.narrow(1, 0, 2).unwrap();
        let sym2 = TrainOptions {
            matryoshka: vec![2],
            ..sym
        };
        let two = value(training_loss(&a, &p, Some(&n), &sym2).unwrap());
        let two_by_hand = 0.5
            * (value(mnrl_loss(&cut(&a), &cut(&p), Some(&cut(&n)), 20.0).unwrap())
                + value(mnrl_loss(&cut(&p), &cut(&a), None, 20.0).unwrap()));
        assert!((two - two_by_hand).abs() < 1e-12);
    }

    /// Each epoch's batches cover every pair once (but a last batch of one), in a seeded order
    /// that changes between epochs and not between runs.
    #[test]
    fn training_batches_are_seeded_and_cover_the_pairs() {
        let opts = TrainOptions {
            epochs: 2,
            batch: 4,
            ..TrainOptions::default()
        };
        let epochs = training_batches(10, &opts);
        assert_eq!(epochs, training_batches(10, &opts));
        assert_eq!(epochs.len(), 2);
        for batches in &epochs {
            assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [4, 4, 2]);
            let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(epochs[0], epochs[1]);
        // 9 pairs in batches of 4: the lone last pair has no in-batch negative and is left out.
        let short = training_batches(9, &opts);
        assert_eq!(short[0].iter().map(Vec::len).collect::<Vec<_>>(), [4, 4]);
        let other = TrainOptions { seed: 7, ..opts };
        assert_ne!(training_batches(10, &other), epochs);
    }
}
