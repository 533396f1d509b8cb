//! sextant-text's integration tests: whole documents through the public API.

mod archives;
mod code;
mod extract;
#[cfg(feature = "pdf")]
mod pdf;
mod pipeline;
mod records;
