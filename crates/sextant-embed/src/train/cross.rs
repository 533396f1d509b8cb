//! A cross-encoder trained in place (issue 20): `BertForSequenceClassification` with one label
//! — `classifier(tanh(pooler(h[CLS])))` over `[CLS] query [SEP] passage [SEP]` — on the
//! differentiable encoder of [`TrainableEncoder`], trained on groups of labelled pairs (one
//! query's candidates) with binary cross-entropy ([`TrainableCrossEncoder::fit`]) or a listwise
//! softmax cross-entropy ([`TrainableCrossEncoder::fit_listwise`]) and saved as a Hugging Face directory that [`crate::CrossEncoder`] (`--rerank
//! DIR`), transformers and sentence-transformers' `CrossEncoder` load.
//!
//! It starts from any BERT directory: a bi-encoder's encoder (its pooling and `Dense` modules
//! are not used), or a cross-encoder to train further. The pooler and the classifier come from
//! the directory's weights when it has them; otherwise they are initialised as transformers
//! does (normal with standard deviation 0.02, biases 0), from the seed.

use std::path::Path;

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};

use super::{optimise, reporting, Control, Linear, Param, Step, TrainOptions, TrainableEncoder};
use crate::config::ModelDir;
use crate::pooling::Pooling;
use crate::tokenize::{Batch, Encoded};
use crate::weights::Weights;
use crate::EmbedError;

/// Standard deviation of transformers' initialisation of new linear layers
/// (`initializer_range`).
const INIT_STD: f64 = 0.02;

/// The tokenizer files a cross-encoder directory needs besides its configuration and weights.
const TOKENIZER_FILES: [&str; 5] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "added_tokens.json",
];

/// Pairs a length bucket of [`TrainableCrossEncoder::forward_pairs`] holds: a training step's
/// pairs are sorted by length and cut into buckets of this many, each padded to its own
/// longest pair rather than to the step's.
const LENGTH_BUCKET: usize = 16;

/// A trainable BERT cross-encoder with one output (a relevance logit).
#[derive(Debug, Clone)]
pub struct TrainableCrossEncoder {
    encoder: TrainableEncoder,
    pooler: Linear,
    classifier: Linear,
    params: Vec<Param>,
}

/// Loads `name` (`[out, inp]` and `[out]`) from `weights` when stored, otherwise initialises it.
fn head_linear(
    weights: &Weights,
    name: &str,
    (out, inp): (usize, usize),
    dtype: DType,
    rng: &mut rand::rngs::SmallRng,
    params: &mut Vec<Param>,
) -> Result<Linear, EmbedError> {
    let stored_w = weights.get_opt(&format!("{name}.weight"), &[out, inp])?;
    let stored_b = weights.get_opt(&format!("{name}.bias"), &[out])?;
    let (w, b) = match (stored_w, stored_b) {
        (Some(w), Some(b)) => (w, b),
        _ => {
            // Box–Muller normal deviates.
            let values: Vec<f64> = (0..out * inp)
                .map(|_| {
                    let (u, v): (f64, f64) = (rng.gen_range(f64::EPSILON..1.0), rng.gen());
                    INIT_STD * (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
                })
                .collect();
            (
                Tensor::from_vec(values, (out, inp), &Device::Cpu)?,
                Tensor::zeros(out, DType::F64, &Device::Cpu)?,
            )
        }
    };
    let w = Var::from_tensor(&w.to_dtype(dtype)?)?;
    let b = Var::from_tensor(&b.to_dtype(dtype)?)?;
    params.push(Param {
        name: format!("{name}.weight"),
        var: w.clone(),
    });
    params.push(Param {
        name: format!("{name}.bias"),
        var: b.clone(),
    });
    Ok(Linear {
        w,
        b: Some(b),
        bf16: false,
    })
}

/// The mean binary cross-entropy of `logits` against `labels` (both `[n]`, labels in [0, 1]),
/// computed stably: `max(z, 0) − z·y + ln(1 + e^−|z|)`.
pub fn bce_with_logits(logits: &Tensor, labels: &Tensor) -> Result<Tensor, EmbedError> {
    let z = logits;
    let softplus_tail = (z.abs()?.neg()?.exp()? + 1.0)?.log()?;
    let per_item = ((z.relu()? - (z * labels)?)? + softplus_tail)?;
    Ok(per_item.mean_all()?)
}

impl TrainableCrossEncoder {
    /// The listwise softmax cross-entropy of `logits` (`[n]`: the groups one after another, of
    /// the lengths in `sizes`) against `labels` (`n` values in [0, 1]): for each group, the
    /// cross-entropy of `softmax(z)` against the labels normalised to sum 1, i.e.
    /// `logsumexp(z) − Σ yᵢ zᵢ / Σ yᵢ`; the mean over the groups. Every group needs a positive
    /// label (and, to be learnt from, a second pair). A scalar tensor.
    pub fn listwise_loss(
        logits: &Tensor,
        labels: &[f64],
        sizes: &[usize],
    ) -> Result<Tensor, EmbedError> {
        let n: usize = sizes.iter().sum();
        if n != labels.len() || n != logits.dim(0)? || sizes.is_empty() {
            return Err(EmbedError::InvalidArgument(format!(
                "listwise loss: {} logits, {} labels, groups of {n} pairs in all",
                logits.dim(0)?,
                labels.len()
            )));
        }
        let mut total: Option<Tensor> = None;
        let mut start = 0;
        for &len in sizes {
            let y = &labels[start..start + len];
            let mass: f64 = y.iter().sum();
            if mass <= 0.0 {
                return Err(EmbedError::InvalidArgument(
                    "listwise loss: a group has no relevant pair".into(),
                ));
            }
            let z = logits.narrow(0, start, len)?;
            let target: Vec<f64> = y.iter().map(|v| v / mass).collect();
            let target = Tensor::from_vec(target, len, &Device::Cpu)?.to_dtype(z.dtype())?;
            let max = z.max_keepdim(0)?.detach();
            let log_sum = (z.broadcast_sub(&max)?.exp()?.sum_all()?.log()? + max.squeeze(0)?)?;
            let loss = (log_sum - (z * target)?.sum_all()?)?;
            total = Some(match total {
                Some(t) => (t + loss)?,
                None => loss,
            });
            start += len;
        }
        Ok((total.expect("at least one group") / sizes.len() as f64)?)
    }

    /// Loads the BERT directory `dir` as a cross-encoder (see the module docs), its weights as
    /// `dtype`; `seed` initialises a missing pooler or classifier.
    pub fn load(dir: &Path, dtype: DType, seed: u64) -> Result<Self, EmbedError> {
        let encoder = TrainableEncoder::load(dir, dtype, Pooling::Cls)?;
        let model = ModelDir::resolve(&dir.to_string_lossy())?;
        let weights = Weights::load(&model.require(crate::config::WEIGHTS_FILE)?, &Device::Cpu)?;
        let h = encoder.cfg.hidden_size;
        // The encoder's own weights; a bi-encoder's Dense modules (named `<dir>/...`) are not
        // part of a cross-encoder.
        let mut params: Vec<Param> = encoder
            .params
            .iter()
            .filter(|p| !p.name.contains('/'))
            .cloned()
            .collect();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
        let pooler = head_linear(
            &weights,
            "pooler.dense",
            (h, h),
            dtype,
            &mut rng,
            &mut params,
        )?;
        let classifier = head_linear(&weights, "classifier", (1, h), dtype, &mut rng, &mut params)?;
        Ok(TrainableCrossEncoder {
            encoder,
            pooler,
            classifier,
            params,
        })
    }

    /// Mixed precision on or off for the encoder and the head
    /// ([`TrainableEncoder::set_mixed_precision`]).
    pub fn set_mixed_precision(&mut self, on: bool) -> Result<(), EmbedError> {
        self.encoder.set_mixed_precision(on)?;
        self.pooler.bf16 = on;
        self.classifier.bf16 = on;
        Ok(())
    }

    /// Every trainable weight: the encoder's under their names in BERT files, then
    /// `pooler.dense.*` and `classifier.*`.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// The relevance logit `[batch]` of each tokenised pair (`ids`, `type_ids`, `mask` as in
    /// [`TrainableEncoder::forward`]).
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor, EmbedError> {
        let (x, _) = self
            .encoder
            .hidden_many(&[(ids, type_ids, mask)])?
            .remove(0);
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?.contiguous()?;
        let pooled = self.pooler.forward(&cls)?.tanh()?;
        Ok(self.classifier.forward(&pooled)?.squeeze(1)?)
    }

    /// The relevance logits `[n]` of tokenised pairs, in their order: as
    /// [`TrainableCrossEncoder::forward`] of one padded batch, but computed on buckets of
    /// pairs of similar length (each padded to its own longest), which spends far less on
    /// padding when a few pairs are long (the logits are the same: padding is masked).
    pub fn forward_pairs(&self, items: &[&Encoded], pad_id: u32) -> Result<Tensor, EmbedError> {
        let mut order: Vec<usize> = (0..items.len()).collect();
        order.sort_by_key(|&i| items[i].ids.len());
        let batches = order
            .chunks(LENGTH_BUCKET)
            .map(|c| {
                let part: Vec<&Encoded> = c.iter().map(|&i| items[i]).collect();
                Batch::new(&part, pad_id, &Device::Cpu)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let hidden = self.encoder.hidden_many(
            &batches
                .iter()
                .map(|b| (&b.ids, &b.type_ids, &b.mask))
                .collect::<Vec<_>>(),
        )?;
        let cls = hidden
            .iter()
            .map(|(x, _)| x.narrow(1, 0, 1)?.squeeze(1))
            .collect::<candle_core::Result<Vec<_>>>()?;
        let cls = Tensor::cat(&cls, 0)?.contiguous()?;
        let pooled = self.pooler.forward(&cls)?.tanh()?;
        let sorted = self.classifier.forward(&pooled)?.squeeze(1)?;
        // Back to the items' order: item i sits at its place in `order`.
        let mut place = vec![0u32; items.len()];
        for (k, &i) in order.iter().enumerate() {
            place[i] = k as u32;
        }
        let place = Tensor::from_vec(place, items.len(), &Device::Cpu)?;
        Ok(sorted.index_select(&place, 0)?)
    }

    /// Trains on groups of labelled pairs (each group: one query's tokenised pairs with their
    /// labels, 1 relevant and 0 not) with [`bce_with_logits`] over every pair and AdamW; a
    /// batch is `opts.batch` groups, shuffled each epoch as [`super::training_batches`] orders
    /// them.
    pub fn fit(
        &self,
        groups: &[Vec<(Encoded, f64)>],
        pad_id: u32,
        opts: &TrainOptions,
        on_step: impl FnMut(&Step),
    ) -> Result<(), EmbedError> {
        reporting(on_step, |control| {
            self.fit_controlled(groups, pad_id, opts, false, control)
        })
    }

    /// As [`TrainableCrossEncoder::fit`], with [`TrainableCrossEncoder::listwise_loss`] over
    /// each group instead: a group's relevant pairs must outscore its other pairs, which is
    /// what reranking one query's candidates asks of the scores (pointwise binary
    /// cross-entropy can be lowered by scoring whole queries up or down). Every group needs a
    /// relevant pair and another.
    pub fn fit_listwise(
        &self,
        groups: &[Vec<(Encoded, f64)>],
        pad_id: u32,
        opts: &TrainOptions,
        on_step: impl FnMut(&Step),
    ) -> Result<(), EmbedError> {
        reporting(on_step, |control| {
            self.fit_controlled(groups, pad_id, opts, true, control)
        })
    }

    /// [`TrainableCrossEncoder::fit_listwise`] (`listwise`) or [`TrainableCrossEncoder::fit`],
    /// with the run under `control` (resumed, stopped early: see
    /// [`TrainableEncoder::fit_controlled`]).
    pub fn fit_controlled(
        &self,
        groups: &[Vec<(Encoded, f64)>],
        pad_id: u32,
        opts: &TrainOptions,
        listwise: bool,
        control: Control<'_>,
    ) -> Result<(), EmbedError> {
        if let Some(bad) = groups
            .iter()
            .flatten()
            .map(|(_, y)| *y)
            .find(|y| !(0.0..=1.0).contains(y))
        {
            return Err(EmbedError::InvalidArgument(format!(
                "label {bad}: cross-encoder labels are in [0, 1]"
            )));
        }
        if !opts.matryoshka.is_empty() {
            return Err(EmbedError::InvalidArgument(
                "Matryoshka widths apply to bi-encoders: a cross-encoder outputs a score".into(),
            ));
        }
        if opts.symmetric {
            return Err(EmbedError::InvalidArgument(
                "the symmetric loss applies to bi-encoders: a cross-encoder scores pairs, it has no documents-to-queries direction".into(),
            ));
        }
        if listwise {
            if let Some(g) = groups
                .iter()
                .find(|g| g.len() < 2 || g.iter().all(|(_, y)| *y <= 0.0))
            {
                return Err(EmbedError::InvalidArgument(format!(
                    "a group of {} pairs with {} relevant: the listwise loss needs a relevant \
                     pair and another in every group",
                    g.len(),
                    g.iter().filter(|(_, y)| *y > 0.0).count()
                )));
            }
        }
        let batch_loss = |chunk: &[usize]| -> Result<Tensor, EmbedError> {
            let items: Vec<&(Encoded, f64)> = chunk.iter().flat_map(|&i| &groups[i]).collect();
            let encoded: Vec<&Encoded> = items.iter().map(|(e, _)| e).collect();
            let logits = self.forward_pairs(&encoded, pad_id)?;
            let labels: Vec<f64> = items.iter().map(|(_, y)| *y).collect();
            if listwise {
                let sizes: Vec<usize> = chunk.iter().map(|&i| groups[i].len()).collect();
                Self::listwise_loss(&logits, &labels, &sizes)
            } else {
                let labels = Tensor::from_vec(labels, items.len(), &Device::Cpu)?
                    .to_dtype(logits.dtype())?;
                bce_with_logits(&logits, &labels)
            }
        };
        optimise(&self.params, groups.len(), opts, batch_loss, control)
    }

    /// Writes a `BertForSequenceClassification` directory into `out`: `config.json` (the
    /// starting directory's, with that architecture and one label), its tokenizer files, and
    /// `model.safetensors` with the encoder and pooler under `bert.` and the `classifier`.
    /// `max_seq`, the pair length it was trained at, becomes the tokenizer's
    /// `model_max_length`, so that it reranks at that length (not at the position table's 512)
    /// in Sextant, transformers and sentence-transformers.
    pub fn save(&self, from: &Path, out: &Path, max_seq: Option<usize>) -> Result<(), EmbedError> {
        let model = ModelDir::resolve(&from.to_string_lossy())?;
        std::fs::create_dir_all(out).map_err(|e| EmbedError::io(out, e))?;
        for name in TOKENIZER_FILES {
            let src = model.root().join(name);
            if src.is_file() {
                std::fs::copy(&src, out.join(name)).map_err(|e| EmbedError::io(&src, e))?;
            }
        }
        if let Some(max_seq) = max_seq {
            let path = out.join("tokenizer_config.json");
            let mut tc: serde_json::Value = match std::fs::read_to_string(&path) {
                Ok(text) => serde_json::from_str(&text)
                    .map_err(|e| EmbedError::InvalidArgument(format!("{}: {e}", path.display())))?,
                Err(_) => serde_json::json!({}),
            };
            if let Some(obj) = tc.as_object_mut() {
                obj.insert("model_max_length".into(), serde_json::json!(max_seq));
            }
            std::fs::write(
                &path,
                serde_json::to_string_pretty(&tc).expect("JSON serialises") + "\n",
            )
            .map_err(|e| EmbedError::io(&path, e))?;
        }
        let config_path = model.require("config.json")?;
        let text =
            std::fs::read_to_string(&config_path).map_err(|e| EmbedError::io(&config_path, e))?;
        let mut config: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| EmbedError::InvalidArgument(format!("{}: {e}", config_path.display())))?;
        let obj = config.as_object_mut().ok_or_else(|| {
            EmbedError::InvalidArgument(format!("{}: not a JSON object", config_path.display()))
        })?;
        obj.insert(
            "architectures".into(),
            serde_json::json!(["BertForSequenceClassification"]),
        );
        obj.insert("id2label".into(), serde_json::json!({"0": "LABEL_0"}));
        obj.insert("label2id".into(), serde_json::json!({"LABEL_0": 0}));
        obj.remove("num_labels");
        let config_out = out.join("config.json");
        std::fs::write(
            &config_out,
            serde_json::to_string_pretty(&config).expect("JSON serialises") + "\n",
        )
        .map_err(|e| EmbedError::io(&config_out, e))?;
        let mut tensors = std::collections::HashMap::new();
        for p in &self.params {
            let name = if p.name.starts_with("classifier.") {
                p.name.clone()
            } else {
                format!("bert.{}", p.name)
            };
            tensors.insert(name, p.var.as_tensor().to_dtype(DType::F32)?);
        }
        candle_core::safetensors::save(&tensors, out.join(crate::config::WEIGHTS_FILE))?;
        Ok(())
    }
}
