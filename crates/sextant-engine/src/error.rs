//! The engine's error type. User errors (bad input, unknown names) are kept apart from internal
//! ones (I/O, corruption) so a front end can map them to exit codes or HTTP statuses without
//! parsing messages.

use sextant_core::{ErrorKind, FilterError};
use sextant_storage::schema::SchemaError;
use sextant_storage::StorageError;

/// Errors of the engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// No collection or alias has this name.
    #[error("collection {0:?} does not exist (no collection or alias has that name)")]
    CollectionNotFound(String),
    /// A collection or alias already uses the name.
    #[error("{0:?} is already the name of a collection or an alias")]
    NameTaken(String),
    /// No alias has this name.
    #[error("alias {0:?} does not exist")]
    AliasNotFound(String),
    /// A name with characters that are not allowed.
    #[error("invalid name {0:?}: use 1-64 letters, digits, '_' or '-'")]
    InvalidName(String),
    /// The schema is not usable.
    #[error(transparent)]
    Schema(#[from] SchemaError),
    /// A point of a write batch is invalid; nothing of the batch was written.
    #[error("point {index} (id {id}): {reason}; nothing of this batch was written")]
    InvalidPoint {
        /// Position in the batch.
        index: usize,
        /// Its id, as given.
        id: String,
        /// What is wrong.
        reason: String,
    },
    /// Ids of different kinds in one collection.
    #[error("batch refused, nothing of it was written")]
    MixedIds(#[source] StorageError),
    /// A multi-tenant collection was used without a tenant scope.
    #[error("collection {0:?} is multi-tenant: name a tenant, or ask for all tenants (the administrator's path)")]
    TenantRequired(String),
    /// A write would change a point of another tenant or move a point between tenants.
    #[error("{0}; nothing of this batch was written")]
    TenantConflict(String),
    /// A malformed filter.
    #[error(transparent)]
    Filter(#[from] FilterError),
    /// A parameter or input field is invalid (out of range, unknown name, wrong type); `field`
    /// names it as the engine's request types spell it (`k`, `space`, `tenant`,
    /// `chunking.max_tokens`, …).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The parameter or field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request is well-formed but conflicts with what the collection fixed at creation (a
    /// different model than the one a space was built with, another redaction key).
    #[error("{0}")]
    Conflict(String),
    /// Another process holds the data directory.
    #[error("data directory {0} is in use by another Sextant process")]
    Locked(std::path::PathBuf),
    /// A model (embedding, sparse encoder, reranker) failed on its input.
    #[error("model error: {0}")]
    Model(String),
    /// No snapshot at this path, nor by this file name under the data directory's
    /// `snapshots/`.
    #[error("snapshot {0:?} does not exist (give its path, or the file name of a snapshot under <data>/snapshots/)")]
    SnapshotNotFound(String),
    /// A snapshot would be written over an existing file.
    #[error("{0} already exists; snapshots are never written over (delete it first, or choose another path)")]
    SnapshotExists(std::path::PathBuf),
    /// A snapshot given to restore or verify fails its checks
    /// ([`StorageError::SnapshotDamaged`]: names the snapshot and the bad part, e.g. one file
    /// inside it).
    #[error(transparent)]
    SnapshotDamaged(StorageError),
    /// An encrypted collection or snapshot cannot be opened with the master key given (none
    /// given, or another one), or a key operation is refused.
    #[error("encryption key: {0}")]
    EncryptionKey(String),
    /// Storage failure: I/O error or corruption (names the file).
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl EngineError {
    /// An [`EngineError::Invalid`] naming `field`.
    pub fn invalid(field: &str, reason: String) -> Self {
        EngineError::Invalid {
            field: field.to_string(),
            reason,
        }
    }

    /// The request field this error is about, when it names one.
    pub fn field(&self) -> Option<&str> {
        match self {
            EngineError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    /// Whether the caller's input caused the error (as opposed to the system).
    pub fn is_user_error(&self) -> bool {
        self.kind() != ErrorKind::Internal
    }

    /// The kind of failure, for front ends to map to exit codes and HTTP statuses.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::CollectionNotFound(_)
            | EngineError::AliasNotFound(_)
            | EngineError::SnapshotNotFound(_) => ErrorKind::NotFound,
            EngineError::NameTaken(_) | EngineError::SnapshotExists(_) => ErrorKind::AlreadyExists,
            EngineError::InvalidName(_)
            | EngineError::Schema(_)
            | EngineError::InvalidPoint { .. }
            | EngineError::MixedIds(_)
            | EngineError::TenantRequired(_)
            | EngineError::Filter(_)
            | EngineError::Invalid { .. }
            | EngineError::Model(_)
            | EngineError::SnapshotDamaged(_) => ErrorKind::InvalidInput,
            EngineError::TenantConflict(_) | EngineError::Conflict(_) => ErrorKind::Conflict,
            EngineError::Locked(_) => ErrorKind::Conflict,
            EngineError::EncryptionKey(_) => ErrorKind::Forbidden,
            EngineError::Storage(_) => ErrorKind::Internal,
        }
    }
}

/// Shorthand result type.
pub type Result<T, E = EngineError> = std::result::Result<T, E>;

/// An error and its sources as one line (`a: b: c`), for the places that keep errors as text
/// (`CollectionInfo::background_error`).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}
