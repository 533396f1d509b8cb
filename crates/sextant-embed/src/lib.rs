//! Sextant's local transformer models: texts in, vectors out.
//!
//! - [`TextEmbedder`]: loads whatever embedding model a directory holds (see
//!   [`ModelDir::kind`]) and embeds with it; front ends that take `--model DIR` use this.
//!   - [`BertEmbedder`]: BERT-family bi-encoders — BERT (all-MiniLM-L6-v2 by default),
//!     RoBERTa and XLM-RoBERTa (`model_type` `"roberta"`, `"xlm-roberta"`: e5, bge, paraphrase
//!     models) — with every sentence-transformers pooling mode, `Dense` modules, L2
//!     normalisation, instruction prompts and Matryoshka truncation. The three families share
//!     one forward pass and its kernels ([`EncoderFamily`] decides position and token type
//!     ids; special tokens come from the tokenizer's post-processor).
//!   - [`StaticEmbedder`]: Model2Vec static models (one vector per token, averaged; no
//!     transformer), exactly as model2vec 0.10.0 encodes, including its treatment of the
//!     unknown-token id (see the module docs of `model2vec` for the `tokenlearn-static-model`
//!     quirk).
//!
//!   Architectures, modules and pooling combinations that are not implemented are refused by
//!   name. Prompts come from `config_sentence_transformers.json` (`prompts`,
//!   `default_prompt_name`): queries get the `"query"` prompt, passages the first non-empty of
//!   `"passage"`/`"document"`/`"corpus"`, and every prompt is part of the fingerprint.
//! - [`Reranker`] / [`CrossEncoder`]: `BertForSequenceClassification` and
//!   `(XLM)RobertaForSequenceClassification` cross-encoders.
//! - [`SparseEncoder`] / [`SpladeEncoder`]: SPLADE sparse vectors from a BERT masked-LM head.
//! - Late interaction: [`BertEmbedder::embed_tokens`] and [`maxsim`].
//! - [`ClipModel`]: CLIP dual encoders, images and texts into one space, with
//!   [`ClipImageProcessor`] reproducing transformers' (Pillow's) preprocessing byte for byte
//!   (PNG and WebP decoded by the `image` crate, JPEG by our port of libjpeg-turbo's
//!   reconstruction, all pure Rust; see [`clip`]).
//! - [`ModelFingerprint`]: what makes two vectors comparable; [`EmbeddingCache`].
//!
//! Models are read from a local directory in the Hugging Face layout (see [`ModelDir`]); the
//! default ones are installed by `scripts/setup-models.sh`. The forward pass is our own, on
//! candle tensors (see `bert`), checked against PyTorch outputs in the integration tests (and
//! the static models against model2vec's).
//! [`Precision::Bf16`] runs its projections on our own AVX512-BF16 kernel (every transformer
//! family; a static model has no projections and always computes in f32).
//!
//! `unsafe` is denied crate-wide; the exceptions are the SIMD micro-kernel module
//! `bf16::avx512` (intrinsics behind runtime feature detection, tested against a scalar
//! reference) and `alloc` (one `mallopt` call: see [`keep_inference_buffers`]).
#![deny(unsafe_code)]

mod alloc;
mod auto;
mod bert;
mod bf16;
mod cache;
mod choice;
pub mod clip;
mod config;
mod dense;
mod embedder;
mod error;
mod fingerprint;
mod heads;
pub mod hub;
mod input;
mod int8;
mod kernels;
mod late;
mod load;
mod model2vec;
mod modules;
mod pooling;
mod precision;
mod profile;
mod prompts;
mod raw_tensors;
mod rerank;
mod splade;
mod tokenize;
mod train;
mod weights;

pub use alloc::keep_inference_buffers;
pub use auto::{ClipEmbedder, TextEmbedder};
pub use bert::{Activation, BertModel, MASK_BIAS};
pub use bf16::BF16_KERNEL_ENV;
pub use cache::{
    CacheStats, CachedEmbedder, EmbeddingCache, CACHE_MAGIC, CACHE_VERSION, DEFAULT_CACHE_CAPACITY,
};
pub use choice::{PrecisionChoice, PrecisionTrial, AUTO_MIN_SPEEDUP, PRECISION_CACHE_ENV};
pub use clip::{
    ClipError, ClipImageProcessor, ClipModel, ClipOptions, PixelValues, ResampleFilter,
};
pub use config::{
    BertConfig, EncoderFamily, ModelDir, ModelKind, SentenceConfig, CONFIG_FILE,
    MODEL2VEC_MODEL_TYPE, SUPPORTED_ARCHITECTURES, SUPPORTED_MODEL_TYPES, TOKENIZER_FILE,
    WEIGHTS_FILE,
};
pub use dense::{DenseActivation, DenseLayer};
pub use embedder::{
    BatchParallelism, BertEmbedder, Embedder, EmbedderOptions, Embeddings, InputKind,
    DEFAULT_BATCH_SIZE, DEFAULT_POOLING,
};
pub use error::{EmbedError, SETUP_SCRIPT};
pub use fingerprint::ModelFingerprint;
pub use hub::{HubOptions, DEFAULT_ENDPOINT};
pub use input::{lines_from_bytes, TextLines};
pub use int8::INT8_KERNEL_ENV;
pub use late::{maxsim, Projection, TokenEmbeddings, TokenOptions};
pub use model2vec::{StaticEmbedder, STATIC_DEFAULT_MAX_LENGTH};
pub use modules::{Pipeline, PoolingConfig, MODULES_FILE};
pub use pooling::{truncate_and_normalize, Pooling, ALL_POOLINGS};
pub use precision::{Precision, AUTO_MIN_COSINE, DEFAULT_PRECISION};
pub use profile::{EmbedProfile, ForwardProfile};
pub use rerank::{CrossEncoder, Reranker, RerankerOptions};
pub use splade::{SparseEmbedding, SparseEmbeddings, SparseEncoder, SpladeEncoder, SpladeOptions};
pub use tokenize::{Batch, Encoded, TextTokenizer};
pub use train::{
    bce_with_logits, mixed_precision_available, mnrl_loss, ranking_loss, restore_params,
    snapshot_params, training_batches, training_loss, Control, Flow, Optimiser, Param, Step,
    TrainOptions, TrainableCrossEncoder, TrainableEncoder,
};
pub use weights::Weights;
