//! Sextant's local transformer models: texts in, vectors out.
//!
//! - [`Embedder`] / [`BertEmbedder`]: BERT-family bi-encoders (all-MiniLM-L6-v2 by default) with
//!   every sentence-transformers pooling mode, `Dense` modules, L2 normalisation, instruction
//!   prefixes and Matryoshka truncation; architectures and modules that are not implemented
//!   are refused by name.
//! - [`Reranker`] / [`CrossEncoder`]: `BertForSequenceClassification` cross-encoders.
//! - [`SparseEncoder`] / [`SpladeEncoder`]: SPLADE sparse vectors from a masked-LM head.
//! - Late interaction: [`BertEmbedder::embed_tokens`] and [`maxsim`].
//! - [`ModelFingerprint`]: what makes two vectors comparable; [`EmbeddingCache`].
//!
//! Models are read from a local directory in the Hugging Face layout (see [`ModelDir`]); the
//! default ones are installed by `scripts/setup-models.sh`. The forward pass is our own, on
//! candle tensors (see `bert`), checked against PyTorch outputs in the integration tests.
//! [`Precision::Bf16`] runs its projections on our own AVX512-BF16 kernel.
//!
//! `unsafe` is denied crate-wide; the exceptions are the SIMD micro-kernel module
//! `bf16::avx512` (intrinsics behind runtime feature detection, tested against a scalar
//! reference) and `alloc` (one `mallopt` call: see [`keep_inference_buffers`]).
#![deny(unsafe_code)]

mod alloc;
mod bert;
mod bf16;
mod cache;
mod config;
mod dense;
mod embedder;
mod error;
mod fingerprint;
pub mod hub;
mod input;
mod kernels;
mod late;
mod load;
mod modules;
mod pooling;
mod precision;
mod profile;
mod rerank;
mod splade;
mod tokenize;
mod weights;

pub use alloc::keep_inference_buffers;
pub use bert::{Activation, BertModel, MASK_BIAS};
pub use cache::{
    CacheStats, CachedEmbedder, EmbeddingCache, CACHE_MAGIC, CACHE_VERSION, DEFAULT_CACHE_CAPACITY,
};
pub use config::{
    BertConfig, ModelDir, SentenceConfig, CONFIG_FILE, SUPPORTED_ARCHITECTURES,
    SUPPORTED_MODEL_TYPES, TOKENIZER_FILE, WEIGHTS_FILE,
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
pub use late::{maxsim, Projection, TokenEmbeddings, TokenOptions};
pub use modules::{Pipeline, PoolingConfig, MODULES_FILE};
pub use pooling::{truncate_and_normalize, Pooling, ALL_POOLINGS};
pub use precision::{Precision, DEFAULT_PRECISION};
pub use profile::{EmbedProfile, ForwardProfile};
pub use rerank::{CrossEncoder, Reranker, RerankerOptions};
pub use splade::{SparseEmbedding, SparseEmbeddings, SparseEncoder, SpladeEncoder, SpladeOptions};
pub use tokenize::{Batch, Encoded, TextTokenizer};
pub use weights::Weights;
