//! The real server over loopback HTTP: every route's success and error paths, the auth matrix,
//! bad input, limits, the OpenAPI document and the web console's pages.

mod common;

mod api;
mod auth_matrix;
mod bad_input;
mod concurrency;
mod console;
mod encryption;
mod eval;
mod openapi;
mod snapshots;
mod text;
#[cfg(feature = "tls")]
mod tls;
mod ttl;
