//! sextant-text's integration tests: whole documents through the public API.

mod extract;
mod pipeline;
