//! CLIP's two transformer towers on candle tensors, built from the BERT module's `Linear`
//! and `LayerNorm`.
//!
//! A CLIP layer differs from a BERT layer in where the layer norms sit (before attention and
//! before the feed-forward block, "pre-LN", with the residual added after), in its activation
//! (`quick_gelu`) and, in the text tower, in a causal mask. The BERT forward's fused kernels
//! are written around post-LN ("Add & Norm" after the residual) and a per-key padding mask, so
//! the layer here is composed from candle operations instead; the towers are small next to a
//! BERT over a long passage (50 tokens per ViT-B/32 image, at most 77 per text).
//!
//! - Vision: the patch convolution (kernel = stride = patch size, no bias) is one matrix
//!   product over flattened `[C · p · p]` patches; then the class embedding, position
//!   embeddings, `pre_layrnorm` (sic, transformers' name), the layers, `post_layernorm` of
//!   the class token.
//! - Text: token + position embeddings, the layers under a causal mask, `final_layer_norm`,
//!   the state at the first end-of-text token (transformers ≥ 4.31; configs with the legacy
//!   `eos_token_id` 2 pool at the highest id instead, as transformers still does for them).

use candle_core::{Device, Tensor};

use super::config::{
    ClipActivation, ClipTextConfig, ClipVisionConfig, TowerConfig, LEGACY_EOS_TOKEN_ID,
};
use super::processor::PixelValues;
use crate::bert::{LayerNorm, Linear, MASK_BIAS};
use crate::weights::Weights;
use crate::EmbedError;

/// One pre-LN encoder layer.
#[derive(Debug, Clone)]
struct Layer {
    norm1: LayerNorm,
    /// Query, key and value side by side: `[hidden, 3 · hidden]`.
    qkv: Linear,
    out: Linear,
    norm2: LayerNorm,
    fc1: Linear,
    fc2: Linear,
}

impl Layer {
    fn load(w: &Weights, p: &str, cfg: &TowerConfig) -> Result<Self, EmbedError> {
        let h = cfg.hidden_size;
        let eps = cfg.layer_norm_eps;
        let weight = |n: &str| w.get(&format!("{p}.self_attn.{n}.weight"), &[h, h]);
        let bias = |n: &str| w.get(&format!("{p}.self_attn.{n}.bias"), &[h]);
        let qkv_w = Tensor::cat(
            &[weight("q_proj")?, weight("k_proj")?, weight("v_proj")?],
            0,
        )?;
        let qkv_b = Tensor::cat(&[bias("q_proj")?, bias("k_proj")?, bias("v_proj")?], 0)?;
        Ok(Layer {
            norm1: LayerNorm::load(w, &format!("{p}.layer_norm1"), h, eps)?,
            qkv: Linear::from_parts(&qkv_w, Some(qkv_b))?,
            out: Linear::load(w, &format!("{p}.self_attn.out_proj"), h, h)?,
            norm2: LayerNorm::load(w, &format!("{p}.layer_norm2"), h, eps)?,
            fc1: Linear::load(w, &format!("{p}.mlp.fc1"), h, cfg.intermediate_size)?,
            fc2: Linear::load(w, &format!("{p}.mlp.fc2"), cfg.intermediate_size, h)?,
        })
    }

    /// `x` `[b, s, h]`; `bias` is added to every head's `[s, s]` scores (the causal mask).
    fn forward(
        &self,
        x: &Tensor,
        heads: usize,
        act: ClipActivation,
        bias: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let (b, s, h) = x.dims3()?;
        let hd = h / heads;
        let qkv = self.qkv.forward(&self.norm1.forward(x)?)?;
        let split = |i: usize| -> candle_core::Result<Tensor> {
            qkv.narrow(2, i * h, h)?
                .reshape((b, s, heads, hd))?
                .transpose(1, 2)?
                .contiguous()
        };
        let (q, k, v) = (split(0)?, split(1)?, split(2)?);
        let scale = 1.0 / (hd as f64).sqrt();
        let mut scores = (q.matmul(&k.t()?.contiguous()?)? * scale)?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        let ctx = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((b, s, h))?;
        let x = (x + self.out.forward(&ctx)?)?;
        let up = self.fc1.forward(&self.norm2.forward(&x)?)?;
        let up = match act {
            ClipActivation::QuickGelu => (&up * candle_nn::ops::sigmoid(&(&up * 1.702)?)?)?,
            ClipActivation::Bert(a) => a.apply(&up)?,
        };
        x + self.fc2.forward(&up)?
    }
}

/// The layers of one tower.
#[derive(Debug, Clone)]
struct Encoder {
    layers: Vec<Layer>,
    heads: usize,
    act: ClipActivation,
}

impl Encoder {
    fn load(w: &Weights, prefix: &str, cfg: &TowerConfig) -> Result<Self, EmbedError> {
        let layers = (0..cfg.num_hidden_layers)
            .map(|i| Layer::load(w, &format!("{prefix}.encoder.layers.{i}"), cfg))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Encoder {
            layers,
            heads: cfg.num_attention_heads,
            act: cfg.activation,
        })
    }

    fn forward(&self, mut x: Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
        for l in &self.layers {
            x = l.forward(&x, self.heads, self.act, bias)?;
        }
        Ok(x)
    }
}

/// The vision tower up to the pooled (post-layer-norm) class token.
#[derive(Debug, Clone)]
pub(crate) struct VisionTower {
    cfg: ClipVisionConfig,
    /// The patch convolution as `[C · p · p] → hidden`.
    patch: Linear,
    /// `[1, 1, hidden]`.
    class: Tensor,
    /// `[1, tokens, hidden]`.
    position: Tensor,
    pre_norm: LayerNorm,
    encoder: Encoder,
    post_norm: LayerNorm,
    device: Device,
}

impl VisionTower {
    pub(crate) fn load(
        w: &Weights,
        cfg: &ClipVisionConfig,
        device: &Device,
    ) -> Result<Self, EmbedError> {
        const P: &str = "vision_model";
        let h = cfg.tower.hidden_size;
        let (c, p) = (cfg.num_channels, cfg.patch_size);
        let eps = cfg.tower.layer_norm_eps;
        let conv = w
            .get(
                &format!("{P}.embeddings.patch_embedding.weight"),
                &[h, c, p, p],
            )?
            .reshape((h, c * p * p))?;
        Ok(VisionTower {
            cfg: cfg.clone(),
            patch: Linear::from_parts(&conv, None)?,
            class: w
                .get(&format!("{P}.embeddings.class_embedding"), &[h])?
                .reshape((1, 1, h))?,
            position: w
                .get(
                    &format!("{P}.embeddings.position_embedding.weight"),
                    &[cfg.tokens(), h],
                )?
                .unsqueeze(0)?,
            pre_norm: LayerNorm::load(w, &format!("{P}.pre_layrnorm"), h, eps)?,
            encoder: Encoder::load(w, P, &cfg.tower)?,
            post_norm: LayerNorm::load(w, &format!("{P}.post_layernorm"), h, eps)?,
            device: device.clone(),
        })
    }

    /// `[C · p · p]` patch rows of every image, in the order of the flattened convolution
    /// output (patch rows top to bottom, left to right), channel-major within a patch.
    fn patches(&self, images: &[&PixelValues]) -> Result<Tensor, EmbedError> {
        let (c, p, side) = (
            self.cfg.num_channels,
            self.cfg.patch_size,
            self.cfg.image_size,
        );
        let grid = self.cfg.grid();
        let row = c * p * p;
        let mut out = Vec::with_capacity(images.len() * grid * grid * row);
        for img in images {
            if img.height != side || img.width != side || img.data.len() != c * side * side {
                return Err(EmbedError::InvalidArgument(format!(
                    "pixel values of {}x{} ({} values) do not fit the vision tower's {c}x{side}x{side} \
                     input",
                    img.width,
                    img.height,
                    img.data.len()
                )));
            }
            for gy in 0..grid {
                for gx in 0..grid {
                    for ch in 0..c {
                        for ky in 0..p {
                            let start = ch * side * side + (gy * p + ky) * side + gx * p;
                            out.extend_from_slice(&img.data[start..start + p]);
                        }
                    }
                }
            }
        }
        Ok(Tensor::from_vec(
            out,
            (images.len() * grid * grid, row),
            &self.device,
        )?)
    }

    /// Pooled class-token states `[batch, hidden]` (after `post_layernorm`).
    pub(crate) fn forward(&self, images: &[&PixelValues]) -> Result<Tensor, EmbedError> {
        let b = images.len();
        let h = self.cfg.tower.hidden_size;
        let n = self.cfg.grid() * self.cfg.grid();
        let patches = self
            .patch
            .forward(&self.patches(images)?)?
            .reshape((b, n, h))?;
        let class = self.class.broadcast_as((b, 1, h))?;
        let x = Tensor::cat(&[&class, &patches], 1)?.broadcast_add(&self.position)?;
        let x = self.pre_norm.forward(&x)?;
        let x = self.encoder.forward(x, None)?;
        let cls = x.narrow(1, 0, 1)?.squeeze(1)?;
        Ok(self.post_norm.forward(&cls)?)
    }
}

/// The text tower up to the pooled (final-layer-norm) end-of-text state.
#[derive(Debug, Clone)]
pub(crate) struct TextTower {
    cfg: ClipTextConfig,
    token: Tensor,
    position: Tensor,
    encoder: Encoder,
    final_norm: LayerNorm,
    device: Device,
}

impl TextTower {
    pub(crate) fn load(
        w: &Weights,
        cfg: &ClipTextConfig,
        device: &Device,
    ) -> Result<Self, EmbedError> {
        const P: &str = "text_model";
        let h = cfg.tower.hidden_size;
        Ok(TextTower {
            cfg: cfg.clone(),
            token: w.get(
                &format!("{P}.embeddings.token_embedding.weight"),
                &[cfg.vocab_size, h],
            )?,
            position: w.get(
                &format!("{P}.embeddings.position_embedding.weight"),
                &[cfg.max_position_embeddings, h],
            )?,
            encoder: Encoder::load(w, P, &cfg.tower)?,
            final_norm: LayerNorm::load(
                w,
                &format!("{P}.final_layer_norm"),
                h,
                cfg.tower.layer_norm_eps,
            )?,
            device: device.clone(),
        })
    }

    /// The position whose state is pooled: the first end-of-text id, or for the legacy
    /// `eos_token_id` 2 the (first) highest id; 0 when there is none (transformers' `argmax`
    /// of an all-false row).
    pub(crate) fn pooled_position(&self, ids: &[u32]) -> usize {
        if self.cfg.eos_token_id == LEGACY_EOS_TOKEN_ID {
            let max = ids.iter().copied().max().unwrap_or(0);
            ids.iter().position(|&i| i == max).unwrap_or(0)
        } else {
            ids.iter()
                .position(|&i| i == self.cfg.eos_token_id)
                .unwrap_or(0)
        }
    }

    /// Pooled states `[batch, hidden]` of token id rows (each non-empty, at most
    /// `max_position_embeddings` long, ids below `vocab_size`).
    pub(crate) fn forward(&self, rows: &[&[u32]]) -> Result<Tensor, EmbedError> {
        let b = rows.len();
        let s = rows.iter().map(|r| r.len()).max().unwrap_or(0).max(1);
        if s > self.cfg.max_position_embeddings {
            return Err(EmbedError::InvalidArgument(format!(
                "{s} tokens exceed the text tower's {} positions",
                self.cfg.max_position_embeddings
            )));
        }
        if let Some(bad) = rows
            .iter()
            .flat_map(|r| r.iter())
            .find(|&&i| i as usize >= self.cfg.vocab_size)
        {
            return Err(EmbedError::InvalidArgument(format!(
                "token id {bad} is outside the vocabulary of {}",
                self.cfg.vocab_size
            )));
        }
        let h = self.cfg.tower.hidden_size;
        // Padding goes after every real token, so the causal mask already hides it.
        let mut ids = vec![0u32; b * s];
        for (r, row) in rows.iter().enumerate() {
            ids[r * s..r * s + row.len()].copy_from_slice(row);
        }
        let ids = Tensor::from_vec(ids, b * s, &self.device)?;
        let x = self
            .token
            .index_select(&ids, 0)?
            .reshape((b, s, h))?
            .broadcast_add(&self.position.narrow(0, 0, s)?.unsqueeze(0)?)?;
        let causal: Vec<f32> = (0..s)
            .flat_map(|q| (0..s).map(move |k| if k > q { MASK_BIAS as f32 } else { 0.0 }))
            .collect();
        let causal = Tensor::from_vec(causal, (1, 1, s, s), &self.device)?;
        let x = self.encoder.forward(x, Some(&causal))?;
        let index: Vec<u32> = rows
            .iter()
            .enumerate()
            .map(|(r, row)| (r * s + self.pooled_position(row)) as u32)
            .collect();
        let index = Tensor::from_vec(index, b, &self.device)?;
        let pooled = x.reshape((b * s, h))?.index_select(&index, 0)?;
        Ok(self.final_norm.forward(&pooled)?)
    }
}
