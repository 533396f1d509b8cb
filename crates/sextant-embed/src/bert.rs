//! Our own BERT-family forward pass over candle tensors (the task heads are in `heads`).
//!
//! candle-transformers has a BERT, but its attention mask is built from `f32::MIN`, which
//! overflows to NaN once the model runs in bf16/f16; owning the forward pass (it is small:
//! embeddings, N × (self-attention + feed-forward), layer norms) lets us apply the mask as an
//! additive finite bias and, later, swap single steps for our own kernels.
//!
//! RoBERTa and XLM-RoBERTa are the same network with other embeddings: position ids that
//! start after the padding id and skip padding tokens, and token type 0 for every token
//! ([`EncoderFamily`]). That difference is confined to the embedding step of
//! [`BertModel::forward`]; the layers, the fused f32 kernels and the bf16 projections are
//! shared, so every family gets the same speed and the same tests of the layer code.
//!
//! Linear weights are transposed once at load time so that every projection is one contiguous
//! `[tokens, in] × [in, out]` matrix product.

use candle_core::{DType, Device, Tensor};

use crate::bf16::PackedBf16;
use crate::config::{BertConfig, EncoderFamily};
use crate::int8::PackedInt8;
use crate::kernels::{self, AddNormParams};
use crate::precision::Precision;
use crate::profile::{timed, ForwardProfile};
use crate::weights::Weights;
use crate::EmbedError;

/// Additive attention bias on padded keys. Large enough that `exp` underflows to exactly 0 in
/// f32, finite in every float dtype (f16 max is 65504), so a fully masked row cannot become NaN.
pub const MASK_BIAS: f64 = -1e4;

/// Feed-forward activations we support.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU (`erf`), what BERT's `gelu` means.
    Gelu,
    /// The tanh approximation (`gelu_new`, `gelu_pytorch_tanh`).
    GeluTanh,
    /// ReLU.
    Relu,
}

impl Activation {
    /// Parses `hidden_act` from `config.json`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "gelu" | "gelu_python" => Some(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            _ => None,
        }
    }

    pub(crate) fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::Gelu => x.gelu_erf(),
            Activation::GeluTanh => x.gelu(),
            Activation::Relu => x.relu(),
        }
    }
}

/// `y = x Wᵀ + b`, with `Wᵀ` stored contiguous.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    wt: Tensor,
    b: Option<Tensor>,
    /// How the product runs (f32 `gemm`, or `wt` packed for a reduced precision).
    packed: Packed,
    /// Output widths of the projections side by side in `wt` (Q, K and V after
    /// [`Linear::concat`]; one part otherwise): int8 smooths each separately.
    parts: Vec<usize>,
}

/// A [`Linear`]'s weights as its product reads them beyond the f32 `wt`.
#[derive(Debug, Clone)]
enum Packed {
    /// The f32 `gemm` on `wt`.
    None,
    /// Rounded to bf16 and packed ([`Precision::Bf16`]).
    Bf16(PackedBf16),
    /// Smoothed, quantised to int8 and packed ([`Precision::Int8`]).
    Int8(PackedInt8),
}

impl Linear {
    pub(crate) fn load(
        w: &Weights,
        name: &str,
        inp: usize,
        out: usize,
    ) -> Result<Self, EmbedError> {
        let wt = w
            .get(&format!("{name}.weight"), &[out, inp])?
            .t()?
            .contiguous()?;
        let b = w.get_opt(&format!("{name}.bias"), &[out])?;
        Ok(Linear {
            wt,
            b,
            packed: Packed::None,
            parts: vec![out],
        })
    }

    pub(crate) fn from_parts(weight: &Tensor, bias: Option<Tensor>) -> Result<Self, EmbedError> {
        Ok(Linear {
            parts: vec![weight.dim(0)?],
            wt: weight.t()?.contiguous()?,
            b: bias,
            packed: Packed::None,
        })
    }

    /// One projection computing `parts` side by side (their outputs concatenated), so that
    /// Q, K and V cost one matrix product instead of three. Missing biases count as zero.
    fn concat(parts: &[Linear]) -> candle_core::Result<Self> {
        let wts: Vec<&Tensor> = parts.iter().map(|p| &p.wt).collect();
        let b = if parts.iter().any(|p| p.b.is_some()) {
            let bs = parts
                .iter()
                .map(|p| match &p.b {
                    Some(b) => Ok(b.clone()),
                    None => Tensor::zeros(p.wt.dim(1)?, p.wt.dtype(), p.wt.device()),
                })
                .collect::<candle_core::Result<Vec<_>>>()?;
            Some(Tensor::cat(&bs, 0)?)
        } else {
            None
        };
        Ok(Linear {
            wt: Tensor::cat(&wts, 1)?,
            b,
            packed: Packed::None,
            parts: parts.iter().flat_map(|p| p.parts.iter().copied()).collect(),
        })
    }

    /// The bias, or zeros.
    fn bias_or_zeros(&self) -> candle_core::Result<Tensor> {
        match &self.b {
            Some(b) => Ok(b.clone()),
            None => Tensor::zeros(self.wt.dim(1)?, self.wt.dtype(), self.wt.device()),
        }
    }

    fn to_dtype(&self, dtype: DType) -> candle_core::Result<Self> {
        Ok(Linear {
            wt: self.wt.to_dtype(dtype)?,
            b: self.b.as_ref().map(|b| b.to_dtype(dtype)).transpose()?,
            packed: Packed::None,
            parts: self.parts.clone(),
        })
    }

    /// A copy multiplying in `precision` (packs the weights for bf16). int8 needs the inputs'
    /// channel maxima: [`Linear::with_int8`].
    pub(crate) fn with_precision(&self, precision: Precision) -> candle_core::Result<Self> {
        let packed = match precision {
            Precision::F32 => Packed::None,
            Precision::Bf16 => Packed::Bf16(PackedBf16::pack_tensor(&self.wt)?),
            Precision::Int8 | Precision::Auto => candle_core::bail!(
                "precision {precision} is not a per-layer precision here (int8 needs calibration)"
            ),
        };
        Ok(Linear {
            packed,
            ..self.clone()
        })
    }

    /// A copy for a projection the int8 mode keeps out of bytes: bf16 on AMX, f32 elsewhere
    /// (`int8::unquantised`).
    pub(crate) fn for_int8_mode(&self) -> candle_core::Result<Self> {
        self.with_precision(crate::int8::unquantised())
    }

    /// A copy multiplying in int8, smoothed for inputs whose channels reached `channel_max`
    /// (absolute) on the calibration texts (see `int8`).
    pub(crate) fn with_int8(&self, channel_max: &[f32]) -> candle_core::Result<Self> {
        let (k, n) = self.wt.dims2()?;
        if channel_max.len() != k {
            candle_core::bail!("{} channel maxima for {k} inputs", channel_max.len());
        }
        let w = self.wt.flatten_all()?.to_vec1::<f32>()?;
        Ok(Linear {
            packed: Packed::Int8(PackedInt8::pack(&w, k, n, &self.parts, channel_max)?),
            ..self.clone()
        })
    }

    /// `max over rows of x · Wᵀ` (no bias) per output, without the `[rows, out]` product, when
    /// the layer's kernel fuses it (bf16 on AMX); `None` otherwise.
    pub(crate) fn product_colmax(&self, x: &Tensor) -> candle_core::Result<Option<Vec<f32>>> {
        match &self.packed {
            Packed::Bf16(p) => p.matmul_colmax(x),
            _ => Ok(None),
        }
    }

    /// The bias, if any.
    pub(crate) fn bias(&self) -> Option<&Tensor> {
        self.b.as_ref()
    }

    /// `x · Wᵀ` (no bias) for contiguous f32 `x` `[rows, in]`, in the precision of the layer.
    fn product(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        match &self.packed {
            Packed::Bf16(p) => p.matmul(x),
            Packed::Int8(p) => p.matmul(x),
            Packed::None => x.matmul(&self.wt),
        }
    }

    /// Applies the projection to the last dimension of `x` (any rank ≥ 2).
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims().to_vec();
        let inp = dims[dims.len() - 1];
        let rows = x.elem_count() / inp.max(1);
        let y = self.product(&x.reshape((rows, inp))?.contiguous()?)?;
        let y = match &self.b {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        };
        let mut out_dims = dims;
        let last = out_dims.len() - 1;
        out_dims[last] = self.wt.dim(1)?;
        y.reshape(out_dims)
    }
}

/// Layer normalisation over the last dimension.
#[derive(Debug, Clone)]
pub(crate) struct LayerNorm {
    gamma: Tensor,
    beta: Tensor,
    eps: f32,
}

impl LayerNorm {
    pub(crate) fn load(w: &Weights, name: &str, dim: usize, eps: f64) -> Result<Self, EmbedError> {
        Ok(LayerNorm {
            gamma: w.get(&format!("{name}.weight"), &[dim])?,
            beta: w.get(&format!("{name}.bias"), &[dim])?,
            eps: eps as f32,
        })
    }

    fn to_dtype(&self, dtype: DType) -> candle_core::Result<Self> {
        Ok(LayerNorm {
            gamma: self.gamma.to_dtype(dtype)?,
            beta: self.beta.to_dtype(dtype)?,
            eps: self.eps,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(&x.contiguous()?, &self.gamma, &self.beta, self.eps)
    }

    /// The parameters of the fused "Add & Norm" kernel: `LayerNorm(y + proj.bias + residual)`.
    fn add_norm_params(&self, proj: &Linear) -> candle_core::Result<AddNormParams> {
        let f32s = |t: &Tensor| t.to_dtype(DType::F32)?.to_vec1::<f32>();
        Ok(AddNormParams {
            bias: f32s(&proj.bias_or_zeros()?)?,
            gamma: f32s(&self.gamma)?,
            beta: f32s(&self.beta)?,
            eps: self.eps,
        })
    }
}

/// One layer's calibration for int8: the largest absolute input per channel of three of its
/// projections.
#[derive(Debug, Clone)]
pub(crate) struct LayerInputs {
    qkv: Vec<f32>,
    attn_out: Vec<f32>,
    up: Vec<f32>,
}

/// Raises `max[c]` to the largest `|x[r, c]|` of the `[rows, max.len()]` tensor `x`.
fn channel_max(x: &Tensor, max: &mut [f32]) -> candle_core::Result<()> {
    let v = x.flatten_all()?.to_vec1::<f32>()?;
    for row in v.chunks_exact(max.len()) {
        for (m, &a) in max.iter_mut().zip(row) {
            *m = m.max(a.abs());
        }
    }
    Ok(())
}

#[derive(Debug, Clone)]
struct Layer {
    /// Query, key and value projections side by side: `[hidden, 3 · hidden]`.
    qkv: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    intermediate: Linear,
    output: Linear,
    out_norm: LayerNorm,
    /// `attn_out`'s bias and `attn_norm` for the fused f32 kernel.
    attn_add_norm: AddNormParams,
    /// `output`'s bias and `out_norm` for the fused f32 kernel.
    out_add_norm: AddNormParams,
}

impl Layer {
    fn new(
        qkv: Linear,
        attn_out: Linear,
        attn_norm: LayerNorm,
        intermediate: Linear,
        output: Linear,
        out_norm: LayerNorm,
    ) -> candle_core::Result<Self> {
        Ok(Layer {
            attn_add_norm: attn_norm.add_norm_params(&attn_out)?,
            out_add_norm: out_norm.add_norm_params(&output)?,
            qkv,
            attn_out,
            attn_norm,
            intermediate,
            output,
            out_norm,
        })
    }
}

/// A BERT-family encoder (BERT, RoBERTa, XLM-RoBERTa): embeddings and transformer layers, no
/// head.
#[derive(Debug, Clone)]
pub struct BertModel {
    cfg: BertConfig,
    family: EncoderFamily,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    act: Activation,
    precision: Precision,
    device: Device,
}

impl BertModel {
    /// Builds the encoder from `weights` (names bare or under `bert.`/`roberta.`,
    /// `weight`/`bias` or `gamma`/`beta`), checking every shape against `cfg`.
    pub fn load(cfg: &BertConfig, w: &Weights, device: &Device) -> Result<Self, EmbedError> {
        let h = cfg.hidden_size;
        let eps = cfg.layer_norm_eps;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for i in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{i}");
            let qkv = Linear::concat(&[
                Linear::load(w, &format!("{p}.attention.self.query"), h, h)?,
                Linear::load(w, &format!("{p}.attention.self.key"), h, h)?,
                Linear::load(w, &format!("{p}.attention.self.value"), h, h)?,
            ])?;
            layers.push(Layer::new(
                qkv,
                Linear::load(w, &format!("{p}.attention.output.dense"), h, h)?,
                LayerNorm::load(w, &format!("{p}.attention.output.LayerNorm"), h, eps)?,
                Linear::load(
                    w,
                    &format!("{p}.intermediate.dense"),
                    h,
                    cfg.intermediate_size,
                )?,
                Linear::load(w, &format!("{p}.output.dense"), cfg.intermediate_size, h)?,
                LayerNorm::load(w, &format!("{p}.output.LayerNorm"), h, eps)?,
            )?);
        }
        let act = Activation::parse(&cfg.hidden_act).ok_or_else(|| {
            EmbedError::InvalidArgument(format!("unsupported activation {:?}", cfg.hidden_act))
        })?;
        Ok(BertModel {
            cfg: cfg.clone(),
            family: cfg.family(),
            word: w.get("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?,
            position: w.get(
                "embeddings.position_embeddings.weight",
                &[cfg.max_position_embeddings, h],
            )?,
            token_type: w.get(
                "embeddings.token_type_embeddings.weight",
                &[cfg.type_vocab_size, h],
            )?,
            emb_norm: LayerNorm::load(w, "embeddings.LayerNorm", h, eps)?,
            layers,
            act,
            precision: Precision::F32,
            device: device.clone(),
        })
    }

    /// A copy computing in `dtype` (f32, f16 or bf16). The attention mask stays finite in every
    /// one of them, so padded batches cannot produce NaN.
    pub fn to_dtype(&self, dtype: DType) -> Result<Self, EmbedError> {
        let layers = self
            .layers
            .iter()
            .map(|l| -> candle_core::Result<Layer> {
                Ok(Layer {
                    qkv: l.qkv.to_dtype(dtype)?,
                    attn_out: l.attn_out.to_dtype(dtype)?,
                    attn_norm: l.attn_norm.to_dtype(dtype)?,
                    intermediate: l.intermediate.to_dtype(dtype)?,
                    output: l.output.to_dtype(dtype)?,
                    out_norm: l.out_norm.to_dtype(dtype)?,
                    attn_add_norm: l.attn_add_norm.clone(),
                    out_add_norm: l.out_add_norm.clone(),
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(BertModel {
            cfg: self.cfg.clone(),
            family: self.family,
            word: self.word.to_dtype(dtype)?,
            position: self.position.to_dtype(dtype)?,
            token_type: self.token_type.to_dtype(dtype)?,
            emb_norm: self.emb_norm.to_dtype(dtype)?,
            layers,
            act: self.act,
            precision: Precision::F32,
            device: self.device.clone(),
        })
    }

    /// A copy whose layer projections multiply in `precision` (the f32 forward pass with its
    /// four products per layer swapped; see [`Precision`]). Only for f32 models.
    pub fn with_precision(&self, precision: Precision) -> Result<Self, EmbedError> {
        if self.dtype() != DType::F32 {
            return Err(EmbedError::InvalidArgument(format!(
                "precision {precision} needs an f32 model, not {:?}",
                self.dtype()
            )));
        }
        if matches!(precision, Precision::Int8 | Precision::Auto) {
            return Err(EmbedError::InvalidArgument(format!(
                "precision {precision} is chosen at load by the embedder (it calibrates on texts)"
            )));
        }
        let layers = self
            .layers
            .iter()
            .map(|l| -> candle_core::Result<Layer> {
                Ok(Layer {
                    qkv: l.qkv.with_precision(precision)?,
                    attn_out: l.attn_out.with_precision(precision)?,
                    intermediate: l.intermediate.with_precision(precision)?,
                    output: l.output.with_precision(precision)?,
                    ..l.clone()
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(BertModel {
            layers,
            precision,
            ..self.clone()
        })
    }

    /// The precision of the layer projections.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Per layer, the largest absolute input per channel of the three projections the int8
    /// mode quantises (query/key/value, attention output, feed-forward up), over `batches`
    /// run in f32: what [`BertModel::with_int8`] smooths by.
    pub(crate) fn input_maxima(
        &self,
        batches: &[crate::tokenize::Batch],
    ) -> Result<Vec<LayerInputs>, EmbedError> {
        if self.dtype() != DType::F32 || self.precision != Precision::F32 {
            return Err(EmbedError::InvalidArgument(
                "int8 calibration runs on the f32 model".into(),
            ));
        }
        let h = self.cfg.hidden_size;
        let mut stats = vec![
            LayerInputs {
                qkv: vec![0.0; h],
                attn_out: vec![0.0; h],
                up: vec![0.0; h],
            };
            self.layers.len()
        ];
        let mut prof = ForwardProfile::default();
        for batch in batches {
            let (b, s) = batch.ids.dims2()?;
            let mut x = self
                .embed(&batch.ids, &batch.type_ids)?
                .reshape((b, s, h))?;
            x = self.emb_norm.forward(&x)?;
            let bias = ((1.0 - batch.mask.to_dtype(DType::F32)?)? * MASK_BIAS)?.contiguous()?;
            for (layer, st) in self.layers.iter().zip(&mut stats) {
                x = self.layer_forward_f32(layer, &x, &bias, &mut prof, Some(st))?;
            }
        }
        Ok(stats)
    }

    /// A copy whose query/key/value, attention output and feed-forward up projections multiply
    /// in int8, smoothed by `maxima` ([`BertModel::input_maxima`]); the feed-forward down
    /// projection, whose input (the activation's output) carries the outlier channels int8
    /// loses most on, runs in bf16 on AMX tiles and in f32 elsewhere (Intel's AVX512-BF16
    /// without AMX is no faster than f32).
    pub(crate) fn with_int8(&self, maxima: &[LayerInputs]) -> Result<Self, EmbedError> {
        if self.dtype() != DType::F32 || maxima.len() != self.layers.len() {
            return Err(EmbedError::InvalidArgument(format!(
                "int8 needs an f32 model and one calibration per layer ({} for {})",
                maxima.len(),
                self.layers.len()
            )));
        }
        let layers = self
            .layers
            .iter()
            .zip(maxima)
            .map(|(l, st)| -> candle_core::Result<Layer> {
                Ok(Layer {
                    qkv: l.qkv.with_int8(&st.qkv)?,
                    attn_out: l.attn_out.with_int8(&st.attn_out)?,
                    intermediate: l.intermediate.with_int8(&st.up)?,
                    output: l.output.for_int8_mode()?,
                    ..l.clone()
                })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(BertModel {
            layers,
            precision: Precision::Int8,
            ..self.clone()
        })
    }

    /// The computation dtype.
    pub fn dtype(&self) -> DType {
        self.word.dtype()
    }

    /// The configuration.
    pub fn config(&self) -> &BertConfig {
        &self.cfg
    }

    /// The encoder family (which decides the position and token type ids).
    pub fn family(&self) -> EncoderFamily {
        self.family
    }

    /// The feed-forward activation (the masked-LM head's transform uses it too).
    pub(crate) fn activation(&self) -> Activation {
        self.act
    }

    /// The device tensors live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The word embedding table `[vocab, hidden]` (tied to the masked-LM decoder).
    pub fn word_embeddings(&self) -> &Tensor {
        &self.word
    }

    /// The position ids `[batch, seq]` (u32) the model reads for `ids` `[batch, seq]`: `0..seq`
    /// for BERT; for RoBERTa `pad + k` for the `k`-th token that is not the padding id `pad`
    /// and `pad` for padding ids (also one written literally in the text), as transformers'
    /// `create_position_ids_from_input_ids` does.
    pub fn position_ids(&self, ids: &Tensor) -> Result<Tensor, EmbedError> {
        let (b, s) = ids.dims2()?;
        let pos: Vec<u32> = match self.family {
            EncoderFamily::Bert => (0..b).flat_map(|_| 0..s as u32).collect(),
            EncoderFamily::Roberta => {
                let pad = self.cfg.pad_token_id;
                let flat = ids.flatten_all()?.to_vec1::<u32>()?;
                let mut out = Vec::with_capacity(flat.len());
                for row in flat.chunks(s.max(1)) {
                    let mut n = 0;
                    out.extend(row.iter().map(|&id| {
                        if id == pad {
                            pad
                        } else {
                            n += 1;
                            pad + n
                        }
                    }));
                }
                out
            }
        };
        Ok(Tensor::from_vec(pos, (b, s), ids.device())?)
    }

    /// Word + token type + position embeddings, `[b · s, hidden]` (before the layer norm).
    fn embed(&self, ids: &Tensor, type_ids: &Tensor) -> Result<Tensor, EmbedError> {
        let (b, s) = ids.dims2()?;
        let words = self.word.index_select(&ids.flatten_all()?, 0)?;
        let x = match self.family {
            EncoderFamily::Bert => {
                let types = self.token_type.index_select(&type_ids.flatten_all()?, 0)?;
                let pos = self.position.narrow(0, 0, s)?.repeat((b, 1))?;
                (words + types)?.add(&pos)?
            }
            EncoderFamily::Roberta => {
                let type0 = self.token_type.narrow(0, 0, 1)?;
                let pos_ids = self.position_ids(ids)?.flatten_all()?;
                let pos = self.position.index_select(&pos_ids, 0)?;
                words.broadcast_add(&type0)?.add(&pos)?
            }
        };
        Ok(x)
    }

    /// Hidden states `[batch, seq, hidden]` of the last layer.
    ///
    /// `ids` and `type_ids` are `[batch, seq]` u32 (RoBERTa-family models ignore `type_ids`:
    /// every token takes type 0); `mask` is `[batch, seq]` f32 (1 = token, 0 = padding).
    /// Padded positions never influence real ones: their keys get [`MASK_BIAS`].
    pub fn forward(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
    ) -> Result<Tensor, EmbedError> {
        self.forward_profiled(ids, type_ids, mask, &mut ForwardProfile::default())
    }

    /// [`BertModel::forward`], adding the time of every operation to `prof`.
    pub fn forward_profiled(
        &self,
        ids: &Tensor,
        type_ids: &Tensor,
        mask: &Tensor,
        prof: &mut ForwardProfile,
    ) -> Result<Tensor, EmbedError> {
        let (b, s) = ids.dims2()?;
        if s > self.cfg.max_tokens() {
            return Err(EmbedError::InvalidArgument(format!(
                "sequence of {s} tokens exceeds the model's {} positions",
                self.cfg.max_tokens()
            )));
        }
        let h = self.cfg.hidden_size;
        let mut x = timed(&mut prof.embeddings_s, || -> Result<Tensor, EmbedError> {
            let x = self.embed(ids, type_ids)?.reshape((b, s, h))?;
            Ok(self.emb_norm.forward(&x)?)
        })?;

        // [b, s] f32: 0 on tokens, MASK_BIAS on padding, added to every query row.
        let bias = ((1.0 - mask.to_dtype(DType::F32)?)? * MASK_BIAS)?.contiguous()?;
        if x.dtype() == DType::F32 {
            for layer in &self.layers {
                x = self.layer_forward_f32(layer, &x, &bias, prof, None)?;
            }
        } else {
            let bias = bias.to_dtype(x.dtype())?.reshape((b, 1, 1, s))?;
            for layer in &self.layers {
                x = self.layer_forward(layer, &x, &bias, prof)?;
            }
        }
        Ok(x)
    }

    /// One layer in f32: one matrix product per projection, every elementwise step fused
    /// into the product's output in place (see `kernels`), attention on `[b, heads, s, hd]`.
    fn layer_forward_f32(
        &self,
        l: &Layer,
        x: &Tensor,
        mask_bias: &Tensor,
        p: &mut ForwardProfile,
        mut observe: Option<&mut LayerInputs>,
    ) -> Result<Tensor, EmbedError> {
        let (b, s, h) = x.dims3()?;
        let heads = self.cfg.num_attention_heads;
        let hd = h / heads;
        let x2 = x.reshape((b * s, h))?;
        if let Some(st) = observe.as_deref_mut() {
            channel_max(&x2, &mut st.qkv)?;
        }
        let qkv = timed(&mut p.qkv_s, || {
            let y = l.qkv.product(&x2)?;
            kernels::bias_act(&y, &l.qkv.bias_or_zeros()?, None)?;
            Ok::<_, candle_core::Error>(y)
        })?;
        // [3, b, heads, s, hd]; the key block is read transposed by the score product.
        let (q, kt, v) = timed(&mut p.heads_s, || {
            let t = qkv
                .reshape((b, s, 3, heads, hd))?
                .permute((2, 0, 3, 1, 4))?
                .contiguous()?;
            Ok::<_, candle_core::Error>((t.get(0)?, t.get(1)?.t()?, t.get(2)?))
        })?;
        let scores = timed(&mut p.scores_s, || q.matmul(&kt))?;
        let scale = (1.0 / (hd as f64).sqrt()) as f32;
        timed(&mut p.softmax_s, || {
            kernels::masked_softmax(&scores, mask_bias, scale)
        })?;
        let ctx = timed(&mut p.context_s, || scores.matmul(&v))?;
        let ctx = timed(&mut p.heads_s, || {
            ctx.transpose(1, 2)?.contiguous()?.reshape((b * s, h))
        })?;
        if let Some(st) = observe.as_deref_mut() {
            channel_max(&ctx, &mut st.attn_out)?;
        }
        let attn = timed(&mut p.attn_out_s, || l.attn_out.product(&ctx))?;
        timed(&mut p.residual_norm_s, || {
            kernels::add_norm(&attn, &x2, &l.attn_add_norm)
        })?;
        if let Some(st) = observe {
            channel_max(&attn, &mut st.up)?;
        }
        let up = timed(&mut p.ffn_up_s, || l.intermediate.product(&attn))?;
        timed(&mut p.activation_s, || {
            kernels::bias_act(&up, &l.intermediate.bias_or_zeros()?, Some(self.act))
        })?;
        let down = timed(&mut p.ffn_down_s, || l.output.product(&up))?;
        timed(&mut p.residual_norm_s, || {
            kernels::add_norm(&down, &attn, &l.out_add_norm)
        })?;
        Ok(down.reshape((b, s, h))?)
    }

    /// One layer in any dtype, with candle's own operations (the f16/bf16 path).
    fn layer_forward(
        &self,
        l: &Layer,
        x: &Tensor,
        bias: &Tensor,
        p: &mut ForwardProfile,
    ) -> Result<Tensor, EmbedError> {
        let (b, s, h) = x.dims3()?;
        let heads = self.cfg.num_attention_heads;
        let hd = h / heads;
        let split = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((b, s, heads, hd))?.transpose(1, 2)?.contiguous()
        };
        let (q, k, v) = timed(&mut p.qkv_s, || {
            let qkv = l.qkv.forward(x)?;
            Ok::<_, candle_core::Error>((
                qkv.narrow(2, 0, h)?,
                qkv.narrow(2, h, h)?,
                qkv.narrow(2, 2 * h, h)?,
            ))
        })?;
        let (q, kt, v) = timed(&mut p.heads_s, || {
            Ok::<_, candle_core::Error>((split(q)?, split(k)?.t()?.contiguous()?, split(v)?))
        })?;
        let scale = 1.0 / (hd as f64).sqrt();
        let scores = timed(&mut p.scores_s, || {
            (q.matmul(&kt)? * scale)?.broadcast_add(bias)
        })?;
        let probs = timed(&mut p.softmax_s, || {
            candle_nn::ops::softmax_last_dim(&scores)
        })?;
        let ctx = timed(&mut p.context_s, || probs.matmul(&v))?;
        let ctx = timed(&mut p.heads_s, || {
            ctx.transpose(1, 2)?.contiguous()?.reshape((b, s, h))
        })?;
        let proj = timed(&mut p.attn_out_s, || l.attn_out.forward(&ctx))?;
        let attn = timed(&mut p.residual_norm_s, || l.attn_norm.forward(&(proj + x)?))?;
        let up = timed(&mut p.ffn_up_s, || l.intermediate.forward(&attn))?;
        let inter = timed(&mut p.activation_s, || self.act.apply(&up))?;
        let down = timed(&mut p.ffn_down_s, || l.output.forward(&inter))?;
        let out = timed(&mut p.residual_norm_s, || {
            l.out_norm.forward(&(down + &attn)?)
        })?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokenize::{Batch, TextTokenizer};

    fn tiny() -> (BertModel, TextTokenizer) {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tiny-cross-encoder");
        let cfg = BertConfig::load(&dir.join("config.json")).unwrap();
        let w = Weights::load(&dir.join("model.safetensors"), &Device::Cpu).unwrap();
        let model = BertModel::load(&cfg, &w, &Device::Cpu).unwrap();
        let tok = TextTokenizer::load(&dir.join("tokenizer.json"), 128).unwrap();
        (model, tok)
    }

    /// Regression test for candle-transformers' BERT, whose `f32::MIN` mask turns into NaN in
    /// half precision: padded batches in f16/bf16 stay finite and close to f32.
    #[test]
    fn half_precision_with_padding_has_no_nan() {
        let (model, tok) = tiny();
        let a = tok
            .encode("a longer input that forces padding on the other row")
            .unwrap();
        let b = tok.encode("short").unwrap();
        let batch = Batch::new(&[&a, &b], 0, &Device::Cpu).unwrap();
        let want = model
            .forward(&batch.ids, &batch.type_ids, &batch.mask)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for dtype in [DType::F16, DType::BF16] {
            let half = model.to_dtype(dtype).unwrap();
            assert_eq!(half.dtype(), dtype);
            let got = half
                .forward(&batch.ids, &batch.type_ids, &batch.mask)
                .unwrap()
                .to_dtype(DType::F32)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            assert!(
                got.iter().all(|x| x.is_finite()),
                "{dtype:?} produced NaN/inf"
            );
            let max = got
                .iter()
                .zip(&want)
                .map(|(g, w)| (g - w).abs())
                .fold(0f32, f32::max);
            assert!(max < 0.25, "{dtype:?} differs from f32 by {max}");
        }
    }

    #[test]
    fn padding_does_not_change_real_tokens() {
        let (model, tok) = tiny();
        let a = tok.encode("padding must not leak into attention").unwrap();
        let b = tok.encode("x").unwrap();
        let pair = Batch::new(&[&a, &b], 0, &Device::Cpu).unwrap();
        let alone = Batch::new(&[&b], 0, &Device::Cpu).unwrap();
        let h2 = model
            .forward(&pair.ids, &pair.type_ids, &pair.mask)
            .unwrap();
        let h1 = model
            .forward(&alone.ids, &alone.type_ids, &alone.mask)
            .unwrap();
        let n = b.ids.len();
        let x = h2
            .get(1)
            .unwrap()
            .narrow(0, 0, n)
            .unwrap()
            .flatten_all()
            .unwrap();
        let y = h1.get(0).unwrap().flatten_all().unwrap();
        let diff = (x - y)
            .unwrap()
            .abs()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
    }
}
