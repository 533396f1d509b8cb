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
}
