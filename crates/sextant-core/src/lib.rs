//! Shared vocabulary of Sextant: the distance [`Metric`], point offsets, vector validation and
//! the error kinds every layer above builds on.
//!
//! This crate is deliberately tiny and pure: no I/O, no async, no index structures. Everything
//! here is a small value type with its own rules, so that the index, storage and engine crates
//! agree on what a metric or a valid vector is without knowing about each other.
#![forbid(unsafe_code)]

mod error;
pub mod filter;
mod metric;
mod number;
mod sparse;
mod vector;

pub use error::{ErrorKind, VectorError};
pub use filter::{format_rfc3339, parse_rfc3339, Filter, FilterError, PointId};
pub use metric::{KernelKind, Metric, ParseMetricError};
pub use number::Num;
pub use sparse::{legacy_term, SparseDoc, SparseVector, TermCounts};
pub use vector::{l2_normalize_in_place, validate_vector, validate_vector_for};

/// Offset of a point inside one index or segment (0-based, dense). External ids (u64, UUID,
/// string) are mapped to offsets by the storage layer; indexes only ever see offsets.
pub type PointOffset = u32;
