//! Error kinds shared by every layer that accepts vectors from users.

/// Why a vector given by a user cannot be used. These are *user* errors: the caller sent bad
/// input, nothing is wrong with the database.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum VectorError {
    /// The vector's length differs from the dimension of the space it is meant for.
    #[error("vector has dimension {got}, expected {expected}")]
    DimensionMismatch {
        /// Dimension the space was declared with.
        expected: usize,
        /// Dimension of the vector that was given.
        got: usize,
    },
    /// A component is NaN or infinite.
    #[error("vector component {position} is {value} (NaN and infinity are not allowed)")]
    NonFinite {
        /// 0-based position of the first offending component.
        position: usize,
        /// The offending value.
        value: f32,
    },
    /// The vector has no components at all.
    #[error("vector is empty")]
    Empty,
    /// A component of a vector for a binary metric (hamming, jaccard) is not 0 or 1.
    #[error("vector component {position} is {value}: a {metric} space takes binary vectors (every component 0 or 1)")]
    NotBinary {
        /// 0-based position of the first offending component.
        position: usize,
        /// The offending value.
        value: f32,
        /// The space's metric.
        metric: crate::Metric,
    },
}

/// What kind of failure an error is, as every front end needs to know it: the CLI turns it into
/// an exit code, the server into an HTTP status, the Python package into an exception class.
/// Each layer's error type says which kind each of its variants is, with an exhaustive match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A named thing (collection, alias, point, document, model, key) does not exist.
    NotFound,
    /// The name is already used.
    AlreadyExists,
    /// The request is malformed or a value is out of range; the message names the field.
    InvalidInput,
    /// The request is well-formed but conflicts with the data's state (another tenant's point,
    /// settings fixed at creation, a model different from the collection's).
    Conflict,
    /// No or an unknown credential.
    Unauthorized,
    /// A known credential without the right to do this.
    Forbidden,
    /// Too much work queued or a rate limit reached: try again later.
    Overloaded,
    /// Our fault or the system's (I/O, corruption, a bug): never the caller's.
    Internal,
}

impl ErrorKind {
    /// A short stable name (`not_found`, `invalid_input`, …) for JSON error bodies.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unauthorized => "unauthorized",
            ErrorKind::Forbidden => "forbidden",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Internal => "internal",
        }
    }
}
