//! The task heads on top of the encoder: sequence classification (the cross-encoder) and the
//! masked-LM head (SPLADE).
//!
//! The classification head has one shape per encoder family, because transformers built them
//! differently: BERT runs its pooler (dense + tanh on the first token) and a `classifier`
//! linear; RoBERTa and XLM-RoBERTa have no pooler, and their `classifier` is itself
//! dense + tanh + `out_proj` on the first token (`<s>`). Dropout is a no-op at inference and
//! is not represented.

use candle_core::Tensor;

use crate::bert::{Activation, BertModel, LayerNorm, Linear};
use crate::config::{BertConfig, EncoderFamily};
use crate::weights::Weights;
use crate::EmbedError;

/// A `*ForSequenceClassification` head.
#[derive(Debug, Clone)]
pub(crate) enum ClassifierHead {
    /// `BertForSequenceClassification`: `classifier(tanh(pooler(h[0])))`.
    Bert { pooler: Linear, classifier: Linear },
    /// `(XLM)RobertaForSequenceClassification`:
    /// `classifier.out_proj(tanh(classifier.dense(h[0])))`.
    Roberta { dense: Linear, out_proj: Linear },
}

impl ClassifierHead {
    pub(crate) fn load(cfg: &BertConfig, w: &Weights) -> Result<Self, EmbedError> {
        let h = cfg.hidden_size;
        Ok(match cfg.family() {
            EncoderFamily::Bert => ClassifierHead::Bert {
                pooler: Linear::load(w, "pooler.dense", h, h)?,
                classifier: Linear::load(w, "classifier", h, cfg.labels())?,
            },
            EncoderFamily::Roberta => ClassifierHead::Roberta {
                dense: Linear::load(w, "classifier.dense", h, h)?,
                out_proj: Linear::load(w, "classifier.out_proj", h, cfg.labels())?,
            },
        })
    }

    /// Logits `[batch, labels]` from hidden states `[batch, seq, hidden]`.
    pub(crate) fn forward(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        let first = hidden.narrow(1, 0, 1)?.squeeze(1)?;
        let (inner, outer) = match self {
            ClassifierHead::Bert { pooler, classifier } => (pooler, classifier),
            ClassifierHead::Roberta { dense, out_proj } => (dense, out_proj),
        };
        outer.forward(&inner.forward(&first)?.tanh()?)
    }
}

/// `BertForMaskedLM`'s head: transform (dense, activation, layer norm), then the decoder to the
/// vocabulary, tied to the word embeddings when the checkpoint stores no decoder of its own.
#[derive(Debug, Clone)]
pub(crate) struct MaskedLmHead {
    transform: Linear,
    act: Activation,
    norm: LayerNorm,
    decoder: Linear,
}

impl MaskedLmHead {
    pub(crate) fn load(
        cfg: &BertConfig,
        w: &Weights,
        model: &BertModel,
    ) -> Result<Self, EmbedError> {
        let h = cfg.hidden_size;
        let v = cfg.vocab_size;
        let decoder_w = match w.get_opt("cls.predictions.decoder.weight", &[v, h])? {
            Some(t) => t,
            None => model.word_embeddings().clone(),
        };
        let bias = match w.get_opt("cls.predictions.bias", &[v])? {
            Some(b) => b,
            None => w.get("cls.predictions.decoder.bias", &[v])?,
        };
        Ok(MaskedLmHead {
            transform: Linear::load(w, "cls.predictions.transform.dense", h, h)?,
            act: model.activation(),
            norm: LayerNorm::load(
                w,
                "cls.predictions.transform.LayerNorm",
                h,
                cfg.layer_norm_eps,
            )?,
            decoder: Linear::from_parts(&decoder_w, Some(bias))?,
        })
    }

    /// A copy whose transform and vocabulary projection multiply in `precision`.
    pub(crate) fn with_precision(&self, precision: crate::Precision) -> candle_core::Result<Self> {
        Ok(MaskedLmHead {
            transform: self.transform.with_precision(precision)?,
            decoder: self.decoder.with_precision(precision)?,
            ..self.clone()
        })
    }

    /// A copy for the int8 mode: both projections as [`Linear::for_int8_mode`] runs them.
    pub(crate) fn for_int8_mode(&self) -> candle_core::Result<Self> {
        Ok(MaskedLmHead {
            transform: self.transform.for_int8_mode()?,
            decoder: self.decoder.for_int8_mode()?,
            ..self.clone()
        })
    }

    /// Transformed token states `[.., hidden]` (before the vocabulary projection).
    pub(crate) fn transform(&self, hidden: &Tensor) -> candle_core::Result<Tensor> {
        self.norm
            .forward(&self.act.apply(&self.transform.forward(hidden)?)?)
    }

    /// The maximum over tokens of each vocabulary logit of transformed states `[tokens,
    /// hidden]`: fused on AMX (the `[tokens, vocab]` logits never exist), else the logits'
    /// maximum.
    pub(crate) fn max_logits(&self, transformed: &Tensor) -> candle_core::Result<Vec<f32>> {
        if let Some(mut v) = self.decoder.product_colmax(transformed)? {
            // The bias is per column: max(x + b) = max(x) + b.
            if let Some(b) = self.decoder.bias() {
                for (x, b) in v.iter_mut().zip(b.to_vec1::<f32>()?) {
                    *x += b;
                }
            }
            return Ok(v);
        }
        self.logits(transformed)?
            .max(candle_core::D::Minus2)?
            .to_vec1::<f32>()
    }

    /// Vocabulary logits `[tokens, vocab]` of transformed states `[tokens, hidden]`.
    pub(crate) fn logits(&self, transformed: &Tensor) -> candle_core::Result<Tensor> {
        self.decoder.forward(transformed)
    }
}
