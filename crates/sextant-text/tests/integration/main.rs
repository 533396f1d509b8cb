//! sextant-text's integration tests: whole documents through the public API.

mod extract;
#[cfg(feature = "pdf")]
mod pdf;
mod pipeline;
