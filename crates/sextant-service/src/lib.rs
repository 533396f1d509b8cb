//! Sextant's product logic, shared by every front end: the CLI, the HTTP server and the Python
//! package call this crate instead of each holding their own copy.
//!
//! - [`Service`]: one per data directory; text search (the hybrid plan), ask (RAG context and
//!   an optional LLM answer), ingest (collection creation from [`IngestOptions`], the merge
//!   policy afterwards), point import, document deletion, embed and rerank;
//! - [`ModelRegistry`] ([`models`]): models loaded once and shared, checked against a
//!   collection's stored model identity;
//! - [`plan`]: [`TextSearchRequest`] → the engine's query, refusing options that would do
//!   nothing;
//! - [`drift`]: drift monitoring (pin, canaries, checks);
//! - [`eval`]: retrieval evaluation of configurations against qrels, with baselines and a
//!   significance test;
//! - [`adapter`]: query adapters trained against a collection's frozen vectors, attached to
//!   it;
//! - [`finetune`]: fine-tuning a bi-encoder on BEIR judgements (hard negatives by BM25,
//!   nDCG@10 before and after on held-back queries);
//! - [`reindex`]: re-embedding a document collection with a new model into a new one;
//! - [`sources`]: documents from files, directories and JSONL streams;
//! - [`import`]: points from JSONL, `.npy` and `.fvecs`, in batches;
//! - [`llm`]: chat completions with the API key policy;
//! - [`master_key`]: where the master key of encrypted collections comes from;
//! - [`Error`]: a kind each front end maps exhaustively, the field, the message.
//!
//! Request and response types derive `serde` (requests with `deny_unknown_fields`) and
//! `utoipa::ToSchema`, so the server uses them as its DTOs. Nothing here prints or reads
//! process-wide state beyond the documented environment variables.
#![forbid(unsafe_code)]

pub mod adapter;
pub mod advise;
pub mod collections;
pub mod drift;
pub mod error;
pub mod eval;
pub mod finetune;
pub mod import;
pub mod ingest;
pub mod llm;
pub mod master_key;
pub mod models;
pub mod plan;
pub mod reindex;
mod service;
pub mod sources;

pub use collections::{CollectionSpec, SpaceBody};
pub use error::{Error, Result};
pub use ingest::{IngestOptions, IngestReport};
pub use models::{ModelRegistry, RegistryConfig};
pub use plan::{
    TextSearchRequest, DEFAULT_FUSION, DEFAULT_MODE, DEFAULT_RERANK_TOP, DEFAULT_SOURCES,
};
pub use reindex::{ReindexOptions, ReindexPlan, ReindexReport};
pub use service::{
    AskRequest, AskResponse, EmbedKind, EmbedOptions, Embedded, ImportReport, LlmRequest, Service,
    ServiceConfig, DEFAULT_ASK_BUDGET, DEFAULT_ASK_K, DEFAULT_LLM_MODEL, DEFAULT_LLM_TIMEOUT_S,
};
pub use sextant_engine::documents::ingest::{Document, IngestStats};
pub use sextant_engine::documents::search::DocumentHit;
pub use sextant_engine::{Database, Scope};
