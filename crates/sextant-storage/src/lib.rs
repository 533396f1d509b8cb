//! Sextant's storage engine.
//!
//! - [`wal`]: the write-ahead log (checksummed, sequence-numbered batch records, torn-tail cut);
//! - [`segment`]: segments (ids, per-point sequence numbers, payloads, payload indexes, one vector
//!   index per space), built in memory and written once as an immutable directory;
//! - [`sparse_store`]: a sparse space's points in a segment (forward vectors, inverted index,
//!   a BM25 space's term dictionary, statistics of the live points);
//! - [`schema`]: a collection's schema and its manifest (the segments that make up its state);
//! - [`payload_index`]: payload indexes that answer filters exactly as bitmaps;
//! - [`id_map`]: external ids ↔ offsets, one id kind per collection;
//! - [`snapshot`]: the snapshot archive (one file: header, manifest, checksummed file bodies);
//! - [`crypt`]: encryption at rest (keys, key wrapping, the encrypted file format), applied to
//!   every file of an encrypted collection by [`fs::encrypted`];
//! - [`envelope`]: the checked, atomically replaced file wrapper the small files use;
//! - [`fs`]: the file-system layer every file operation goes through (real, or simulated with
//!   faults and power loss for tests).
//!
//! Every file starts with a magic number and a format version and carries checksums;
//! corruption is reported with the file name and offset, never silently skipped.
//!
//! No unsafe code except the one memory mapping of on-disk vectors (`RealFs::map`).
#![deny(unsafe_code)]

pub mod crypt;
pub mod envelope;
pub mod filter_cache;
pub mod fs;
pub mod id_map;
pub mod payload_index;
pub mod schema;
pub mod segment;
pub mod snapshot;
pub mod sparse_store;
pub mod wal;

use std::path::PathBuf;
use std::sync::Arc;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// An operating-system I/O error on a file.
    #[error("I/O error on {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file's bytes fail validation somewhere a crash cannot explain (not a torn tail).
    #[error("{path} is corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset of the first bad byte.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// A file written by a format version this build does not read.
    #[error("{path} has format version {found}; this build reads version {supported}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version in the file.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// A batch whose ids are not all of the collection's id kind.
    #[error("point id {id} is {found}, but this collection's ids are {expected}; ids of one collection must all be integers, all UUIDs or all strings")]
    MixedIdKinds {
        /// The offending id, as written.
        id: String,
        /// Its kind.
        found: &'static str,
        /// The collection's kind.
        expected: &'static str,
    },
    /// A file that must exist is missing.
    #[error("{what} {path} is missing; it is never recreated silently, because that would lose the writes it held (restore it from a backup, or move the collection aside)")]
    Missing {
        /// The file.
        path: PathBuf,
        /// What it is.
        what: &'static str,
    },
    /// A write or fsync of the write-ahead log failed: the batch was not written.
    #[error("writing to the write-ahead log {path} failed, so this batch was not written{}", if *cut_back { " (the log was cut back to its last acknowledged batch)" } else { "; the log refuses writes until it can be cut back to its last acknowledged batch (tried again at every write)" })]
    WalWrite {
        /// The log.
        path: PathBuf,
        /// Whether the log was repaired at once.
        cut_back: bool,
        /// What failed.
        #[source]
        source: Arc<StorageError>,
    },
    /// The write-ahead log refuses writes since an earlier write or fsync failed and it could
    /// not yet be repaired.
    #[error("the write-ahead log {path} refuses writes since an earlier write or fsync failed and it could not yet be cut back to its last acknowledged batch; nothing was written (tried again at every write; reopening the collection also repairs it)")]
    WalPoisoned {
        /// The log.
        path: PathBuf,
        /// The first failure.
        #[source]
        source: Arc<StorageError>,
    },
    /// A snapshot archive fails its checks: `part` names what is bad (the header, the
    /// manifest, or one file of the snapshot by its name inside it).
    #[error("snapshot {path} is damaged: {part}: {reason}")]
    SnapshotDamaged {
        /// The snapshot file.
        path: PathBuf,
        /// The bad part: `header`, `manifest`, or `file <name>`.
        part: String,
        /// What is wrong.
        reason: String,
    },
    /// A file's data key cannot be had: the key it carries is wrapped by another master key,
    /// or fails authentication.
    #[error("cannot decrypt {path}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::crypt::KeyError,
    },
    /// A caller broke the log's contract (e.g. a sequence number that does not increase).
    #[error("invalid WAL use: {0}")]
    InvalidSequence(String),
}
