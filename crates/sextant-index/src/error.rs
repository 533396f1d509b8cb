//! Errors of the index layer.

use sextant_core::VectorError;

/// Why an index operation failed. `Vector`, `InvalidParameter` and `UnknownPoint` are the
/// caller's mistakes; `Corrupt` and `UnsupportedVersion` describe bytes that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// A query or inserted vector is malformed.
    #[error(transparent)]
    Vector(#[from] VectorError),
    /// A parameter is out of its valid range (`k = 0`, `m < 2`, …).
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An id that the index does not hold.
    #[error("point offset {0} is not in the index")]
    UnknownPoint(u32),
    /// The index is full (offsets are u32).
    #[error("index capacity exceeded: at most {max} points")]
    CapacityExceeded {
        /// The largest number of points an index can hold.
        max: u64,
    },
    /// Serialised bytes fail validation (magic, checksum, sizes).
    #[error("corrupt index data: {0}")]
    Corrupt(String),
    /// Serialised bytes were written by a format version this build does not read.
    #[error(
        "index format version {found} is not supported (this build reads version {supported})"
    )]
    UnsupportedVersion {
        /// Version found in the bytes.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
}

impl IndexError {
    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        IndexError::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }
}
