//! Evaluation harness: data set loaders (`.fvecs`, `.ivecs`, `.npy`), the ANN recall/QPS
//! benchmark, and JSON + Markdown reports.
//!
//! Benchmarks are programs, not tests: the `sextant bench` subcommands drive this crate, and tests
//! only check that the harness computes what it claims (never wall-clock times).

pub mod ann;
pub mod bm25;
pub mod collections;
pub mod ir;
pub mod metrics;
pub mod report;

mod cpu;

pub use cpu::process_cpu_seconds;
/// The vector file formats (re-exported from `sextant-vecio`).
pub use sextant_vecio as io;

/// Errors of loading data or running a benchmark.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    /// A file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file's content is not what its format requires.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// A vector or id file that cannot be read or written.
    #[error(transparent)]
    File(#[from] sextant_vecio::VecIoError),
    /// Inputs that cannot be used together (dimensions, counts, parameters).
    #[error("{0}")]
    Invalid(String),
    /// The index refused an operation.
    #[error(transparent)]
    Index(#[from] sextant_index::IndexError),
}
