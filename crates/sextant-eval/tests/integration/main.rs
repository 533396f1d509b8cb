//! Integration tests of the evaluation crate.

mod ranx_parity;
