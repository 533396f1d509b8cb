//! One embedding model type for whatever a directory holds: a transformer
//! ([`BertEmbedder`]: BERT, RoBERTa, XLM-RoBERTa) or a Model2Vec static model
//! ([`StaticEmbedder`]).
//!
//! Front ends that take `--model DIR` load a [`TextEmbedder`] and never ask which kind it is:
//! the closed set of implementations is an enum (no `Box<dyn>` on the embedding path), and each
//! method dispatches with one `match`. What only one kind has (the encoder configuration, late
//! interaction) stays on that kind's type, reachable through [`TextEmbedder::as_transformer`].

use crate::config::{ModelDir, ModelKind};
use crate::embedder::{BertEmbedder, Embedder, EmbedderOptions, Embeddings, InputKind};
use crate::fingerprint::ModelFingerprint;
use crate::model2vec::StaticEmbedder;
use crate::pooling::Pooling;
use crate::precision::Precision;
use crate::profile::EmbedProfile;
use crate::tokenize::TextTokenizer;
use crate::EmbedError;

/// An embedding model of any supported kind.
// Both variants are a few kilobytes (their tokenizers); a model is loaded once and shared, so
// boxing one of them would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum TextEmbedder {
    /// A BERT-family transformer.
    Transformer(BertEmbedder),
    /// A Model2Vec static model.
    Static(StaticEmbedder),
}

impl TextEmbedder {
    /// Loads a model directory (or a Hugging Face id in the local cache), whichever kind it
    /// holds (see [`ModelDir::kind`]).
    pub fn load(spec: &str, opts: EmbedderOptions) -> Result<Self, EmbedError> {
        opts.check()?;
        let dir = ModelDir::resolve(spec)?;
        Ok(match dir.kind()? {
            ModelKind::Transformer => TextEmbedder::Transformer(BertEmbedder::load_dir(dir, opts)?),
            ModelKind::Static => TextEmbedder::Static(StaticEmbedder::load_dir(dir, opts)?),
        })
    }

    /// Which kind of model this is.
    pub fn kind(&self) -> ModelKind {
        match self {
            TextEmbedder::Transformer(_) => ModelKind::Transformer,
            TextEmbedder::Static(_) => ModelKind::Static,
        }
    }

    /// The transformer, if this is one.
    pub fn as_transformer(&self) -> Option<&BertEmbedder> {
        match self {
            TextEmbedder::Transformer(m) => Some(m),
            TextEmbedder::Static(_) => None,
        }
    }

    /// The static model, if this is one.
    pub fn as_static(&self) -> Option<&StaticEmbedder> {
        match self {
            TextEmbedder::Transformer(_) => None,
            TextEmbedder::Static(m) => Some(m),
        }
    }

    /// The most tokens of a text that count (special tokens included for transformers).
    pub fn max_seq_length(&self) -> usize {
        match self {
            TextEmbedder::Transformer(m) => m.max_seq_length(),
            TextEmbedder::Static(m) => m.max_seq_length(),
        }
    }

    /// Whether outputs are normalised.
    pub fn normalize(&self) -> bool {
        match self {
            TextEmbedder::Transformer(m) => m.normalize(),
            TextEmbedder::Static(m) => m.normalize(),
        }
    }

    /// The pooling (a static model averages its token vectors: mean).
    pub fn pooling(&self) -> Pooling {
        match self {
            TextEmbedder::Transformer(m) => m.pooling(),
            TextEmbedder::Static(_) => Pooling::Mean,
        }
    }

    /// The precision of the layer projections (a static model computes in f32).
    pub fn precision(&self) -> Precision {
        match self {
            TextEmbedder::Transformer(m) => m.precision(),
            TextEmbedder::Static(_) => Precision::F32,
        }
    }

    /// The tokenizer (for token counts and spans; special tokens are never part of those).
    pub fn tokenizer(&self) -> &TextTokenizer {
        match self {
            TextEmbedder::Transformer(m) => m.tokenizer(),
            TextEmbedder::Static(m) => m.tokenizer(),
        }
    }

    /// The text actually tokenized for `text` of `kind` (prefix applied).
    pub fn prefixed(&self, text: &str, kind: InputKind) -> String {
        match self {
            TextEmbedder::Transformer(m) => m.prefixed(text, kind),
            TextEmbedder::Static(m) => m.prefixed(text, kind),
        }
    }

    /// [`Embedder::embed`] with stage timers (see [`BertEmbedder::embed_profiled`]).
    pub fn embed_profiled(
        &self,
        texts: &[&str],
        kind: InputKind,
        prof: &mut EmbedProfile,
    ) -> Result<Embeddings, EmbedError> {
        match self {
            TextEmbedder::Transformer(m) => m.embed_profiled(texts, kind, prof),
            TextEmbedder::Static(m) => m.embed_profiled(texts, kind, prof),
        }
    }
}

impl Embedder for TextEmbedder {
    fn dim(&self) -> usize {
        match self {
            TextEmbedder::Transformer(m) => m.dim(),
            TextEmbedder::Static(m) => m.dim(),
        }
    }

    fn fingerprint(&self) -> &ModelFingerprint {
        match self {
            TextEmbedder::Transformer(m) => m.fingerprint(),
            TextEmbedder::Static(m) => m.fingerprint(),
        }
    }

    fn embed(&self, texts: &[&str], kind: InputKind) -> Result<Embeddings, EmbedError> {
        match self {
            TextEmbedder::Transformer(m) => m.embed(texts, kind),
            TextEmbedder::Static(m) => m.embed(texts, kind),
        }
    }
}
