//! Sextant's database engine: a [`Database`] of named [`Collection`]s.
//!
//! - [`collection`]: the write path (validate → WAL → mutable segment), flush, merge/vacuum and
//!   recovery (manifest + WAL replay);
//! - [`query`]: search with the filter planner, get, count, scroll, info;
//! - [`scope`]: the tenant scope every read and write takes;
//! - [`clock`]: the clock expiry (TTL) is judged by, and the expiry rules;
//! - [`database`]: the data directory, its lock, collections and aliases;
//! - [`encryption`]: encryption at rest per collection (keys, rotation);
//! - [`snapshot`]: consistent snapshots of a collection as one file, and restoring them;
//! - [`ops`]: the batches the WAL records carry;
//! - [`drift`]: drift monitoring (embedding distribution against a pinned reference, canary
//!   queries);
//! - [`probe`]: the ANN recall probe (a sample of searches re-run exactly);
//! - [`documents`]: the document layer (ingestion, the hybrid plan, RAG context) over models
//!   given through small traits.
//!
//! The engine is synchronous and thread-safe. See ARCHITECTURE.md ("Write path", "Read path")
//! for the durability contract this crate implements.
#![forbid(unsafe_code)]

pub mod adapter;
pub mod advise;
pub mod clock;
pub mod collection;
pub mod database;
pub mod documents;
pub mod drift;
pub mod encryption;
mod error;
pub mod fusion;
mod maintenance;
pub mod ops;
pub mod probe;
pub mod query;
mod recovery;
pub mod scope;
pub mod snapshot;
mod space;
mod sync_timer;

pub use clock::{Clock, ManualClock, SystemClock};
pub use collection::{
    Collection, CollectionConfig, PointInput, RecoveryReport, SparseInput, Vectors,
    DEFAULT_FLUSH_POINTS, DEFAULT_MAX_SEGMENTS, DEFAULT_VACUUM_DELETED_FRACTION,
};
pub use database::Database;
pub use encryption::EncryptionStatus;
pub use error::{EngineError, Result};
pub use probe::{ProbeConfig, RecallProbeInfo};
pub use query::{
    codes_exact_threshold, default_exact_threshold, CODES_EXACT_BUDGET_NS, CODES_EXACT_THRESHOLD,
    DEFAULT_EXACT_THRESHOLD, EXACT_SCAN_BUDGET_NS,
};
pub use query::{
    CollectionInfo, DiskParts, OrderBy, PointOut, ScrollPage, SearchRequest, SearchResponse,
    SparseSearchRequest, Strategy,
};
pub use scope::{Scope, TenantId};
pub use sextant_core::ErrorKind;
pub use sextant_storage::crypt::MasterKey;
pub use sextant_storage::filter_cache::FilterCacheStats;
pub use sextant_storage::payload_index::FieldType;
pub use sextant_storage::schema::{
    IndexSpec, PayloadIndexSpec, Quantization, Schema, SpaceSpec, SparseKind, SparseSpaceSpec,
    TtlSpec, DEFAULT_EF_CONSTRUCTION, DEFAULT_M, DEFAULT_NPROBE, DEFAULT_SPACE, IVF_MIN_POINTS,
    MAX_NLIST, MAX_TTL_SECONDS,
};
pub use sextant_storage::segment::MemoryParts;
pub use sextant_storage::wal::Durability;
pub use snapshot::{PendingSnapshot, SnapshotInfo, SnapshotListing};
