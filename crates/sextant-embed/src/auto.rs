//! One embedding model type for whatever a directory holds: a transformer
//! ([`BertEmbedder`]: BERT, RoBERTa, XLM-RoBERTa), a Model2Vec static model
//! ([`StaticEmbedder`]) or a CLIP dual encoder ([`ClipModel`], whose text side embeds texts
//! and whose image side is reached through [`TextEmbedder::as_clip`]).
//!
//! Front ends that take `--model DIR` load a [`TextEmbedder`] and never ask which kind it is:
//! the closed set of implementations is an enum (no `Box<dyn>` on the embedding path), and each
//! method dispatches with one `match`. What only one kind has (the encoder configuration, late
//! interaction) stays on that kind's type, reachable through [`TextEmbedder::as_transformer`].

use crate::clip::{ClipModel, ClipOptions};
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
    /// A CLIP dual encoder (texts through its text tower).
    Clip(ClipEmbedder),
}

/// A CLIP model with the thread pool its options asked for.
#[derive(Debug)]
pub struct ClipEmbedder {
    model: ClipModel,
    pool: Option<rayon::ThreadPool>,
}

impl ClipEmbedder {
    /// The model (its image side: [`ClipModel::embed_image_bytes`] and friends).
    pub fn model(&self) -> &ClipModel {
        &self.model
    }

    /// Runs `f` on the embedder's own pool when it has one.
    pub fn install<T: Send>(&self, f: impl FnOnce(&ClipModel) -> T + Send) -> T {
        match &self.pool {
            Some(p) => p.install(|| f(&self.model)),
            None => f(&self.model),
        }
    }

    /// Loads a CLIP directory with the [`EmbedderOptions`] that apply to CLIP; an option that
    /// does not (pooling, Matryoshka `dim`, a sequence limit, prefixes, bf16) is refused by
    /// name rather than ignored.
    fn load_dir(dir: &ModelDir, opts: EmbedderOptions) -> Result<Self, EmbedError> {
        let refuse = |what: &str| {
            Err(EmbedError::InvalidArgument(format!(
                "{what} does not apply to a CLIP model ({})",
                dir.root().display()
            )))
        };
        if opts.pooling.is_some() {
            return refuse("a pooling override");
        }
        if opts.dim.is_some() {
            return refuse("a Matryoshka dimension");
        }
        if opts.max_seq_length.is_some() {
            return refuse("a sequence-length override");
        }
        if opts.query_prefix.is_some() || opts.passage_prefix.is_some() {
            return refuse("a query or passage prefix");
        }
        if opts
            .precision
            .is_some_and(|p| !matches!(p, Precision::F32 | Precision::Auto))
        {
            return refuse("precision other than f32");
        }
        let defaults = ClipOptions::default();
        let options = ClipOptions {
            normalize: opts.normalize.unwrap_or(defaults.normalize),
            batch_size: opts.batch_size.unwrap_or(defaults.batch_size),
        };
        let model =
            ClipModel::load_with(&dir.root().to_string_lossy(), options).map_err(|e| match e {
                crate::ClipError::Model(m) => m,
                other => EmbedError::InvalidArgument(other.to_string()),
            })?;
        Ok(ClipEmbedder {
            model,
            pool: crate::embedder::build_pool(opts.threads)?,
        })
    }
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
            ModelKind::Clip => TextEmbedder::Clip(ClipEmbedder::load_dir(&dir, opts)?),
        })
    }

    /// Which kind of model this is.
    pub fn kind(&self) -> ModelKind {
        match self {
            TextEmbedder::Transformer(_) => ModelKind::Transformer,
            TextEmbedder::Static(_) => ModelKind::Static,
            TextEmbedder::Clip(_) => ModelKind::Clip,
        }
    }

    /// The CLIP model, if this is one (the only kind that embeds images).
    pub fn as_clip(&self) -> Option<&ClipEmbedder> {
        match self {
            TextEmbedder::Clip(m) => Some(m),
            _ => None,
        }
    }

    /// The transformer, if this is one.
    pub fn as_transformer(&self) -> Option<&BertEmbedder> {
        match self {
            TextEmbedder::Transformer(m) => Some(m),
            _ => None,
        }
    }

    /// The static model, if this is one.
    pub fn as_static(&self) -> Option<&StaticEmbedder> {
        match self {
            TextEmbedder::Static(m) => Some(m),
            _ => None,
        }
    }

    /// The most tokens of a text that count (special tokens included for transformers).
    pub fn max_seq_length(&self) -> usize {
        match self {
            TextEmbedder::Transformer(m) => m.max_seq_length(),
            TextEmbedder::Static(m) => m.max_seq_length(),
            TextEmbedder::Clip(m) => m.model.config().text.max_position_embeddings,
        }
    }

    /// Whether outputs are normalised.
    pub fn normalize(&self) -> bool {
        match self {
            TextEmbedder::Transformer(m) => m.normalize(),
            TextEmbedder::Static(m) => m.normalize(),
            TextEmbedder::Clip(m) => m.model.options().normalize,
        }
    }

    /// The pooling (a static model averages its token vectors: mean).
    pub fn pooling(&self) -> Pooling {
        match self {
            TextEmbedder::Transformer(m) => m.pooling(),
            TextEmbedder::Static(_) => Pooling::Mean,
            // The text tower's end-of-text token, then the projection.
            TextEmbedder::Clip(_) => Pooling::LastToken,
        }
    }

    /// The precision of the layer projections (a static model computes in f32).
    pub fn precision(&self) -> Precision {
        match self {
            TextEmbedder::Transformer(m) => m.precision(),
            TextEmbedder::Static(_) | TextEmbedder::Clip(_) => Precision::F32,
        }
    }

    /// How the precision was decided (a static model and CLIP run f32, whatever was asked).
    pub fn precision_choice(&self) -> crate::PrecisionChoice {
        match self {
            TextEmbedder::Transformer(m) => m.precision_choice().clone(),
            TextEmbedder::Static(_) | TextEmbedder::Clip(_) => {
                crate::PrecisionChoice::fixed(Precision::F32)
            }
        }
    }

    /// The tokenizer (for token counts and spans; special tokens are never part of those).
    pub fn tokenizer(&self) -> &TextTokenizer {
        match self {
            TextEmbedder::Transformer(m) => m.tokenizer(),
            TextEmbedder::Static(m) => m.tokenizer(),
            TextEmbedder::Clip(m) => m.model.tokenizer(),
        }
    }

    /// The text actually tokenized for `text` of `kind` (prefix applied).
    pub fn prefixed(&self, text: &str, kind: InputKind) -> String {
        match self {
            TextEmbedder::Transformer(m) => m.prefixed(text, kind),
            TextEmbedder::Static(m) => m.prefixed(text, kind),
            // CLIP has no prefixes.
            TextEmbedder::Clip(_) => text.to_owned(),
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
            TextEmbedder::Clip(m) => m.install(|c| c.embed(texts, kind)),
        }
    }
}

impl Embedder for TextEmbedder {
    fn dim(&self) -> usize {
        match self {
            TextEmbedder::Transformer(m) => m.dim(),
            TextEmbedder::Static(m) => m.dim(),
            TextEmbedder::Clip(m) => m.model.dim(),
        }
    }

    fn fingerprint(&self) -> &ModelFingerprint {
        match self {
            TextEmbedder::Transformer(m) => m.fingerprint(),
            TextEmbedder::Static(m) => m.fingerprint(),
            TextEmbedder::Clip(m) => m.model.fingerprint(),
        }
    }

    fn embed(&self, texts: &[&str], kind: InputKind) -> Result<Embeddings, EmbedError> {
        match self {
            TextEmbedder::Transformer(m) => m.embed(texts, kind),
            TextEmbedder::Static(m) => m.embed(texts, kind),
            TextEmbedder::Clip(m) => m.install(|c| c.embed(texts, kind)),
        }
    }
}
