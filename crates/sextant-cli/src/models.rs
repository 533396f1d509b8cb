//! The engine's model traits over `sextant-embed`'s models: the bi-encoder ([`Dense`]), SPLADE
//! ([`Splade`]), the cross-encoder ([`Cross`]) and late interaction over a bi-encoder's token
//! states ([`MaxSim`]). A model's identity, stored with the collection
//! space it fills, is `{"path": …, "fingerprint": …}`; a model matches a stored identity when
//! its fingerprint does (the path is only where to load it from next time). The stored path is
//! [`stored_location`]: a local directory as its absolute, canonical path (a relative path
//! would break every later command run from another directory), a Hugging Face id as the id
//! (it resolves through the local cache on any machine, and a cache snapshot directory changes
//! with every revision).

use std::ops::Range;

use anyhow::{Context, Result};
use serde_json::{json, Value};
use sextant_core::SparseVector;
use sextant_embed::{
    maxsim, BatchParallelism, BertEmbedder, CrossEncoder, Embedder, EmbedderOptions, InputKind,
    ModelFingerprint, Precision, Reranker, RerankerOptions, SparseEncoder, SpladeEncoder,
    SpladeOptions, TokenOptions,
};
use sextant_engine::documents::{DenseModel, PairScorer, SparseModel};

/// Where a model given as `spec` is to be loaded from later: the canonical absolute path of a
/// local directory, else `spec` itself (a Hugging Face id).
pub fn stored_location(spec: &str) -> Result<String> {
    let path = std::path::Path::new(spec);
    if !path.is_dir() {
        return Ok(spec.to_string());
    }
    let canonical = std::fs::canonicalize(path)
        .with_context(|| format!("cannot resolve the model directory {spec}"))?;
    canonical.to_str().map(str::to_string).with_context(|| {
        format!(
            "the model directory {} is not valid UTF-8",
            canonical.display()
        )
    })
}

fn identity(path: &str, fp: &ModelFingerprint) -> Value {
    json!({"path": path, "fingerprint": fp})
}

fn check(mine: &ModelFingerprint, stored: &Value) -> std::result::Result<(), String> {
    let fp: ModelFingerprint = serde_json::from_value(stored["fingerprint"].clone())
        .map_err(|e| format!("stored model fingerprint does not parse: {e}"))?;
    fp.check(mine).map_err(|e| e.to_string())
}

/// Where a stored identity says its model lives.
pub fn stored_path(stored: &Value) -> Result<String> {
    stored["path"]
        .as_str()
        .map(str::to_string)
        .context("the stored model identity has no path")
}

/// A bi-encoder.
#[derive(Debug)]
pub struct Dense {
    /// The model.
    pub model: BertEmbedder,
    path: String,
}

impl Dense {
    /// Loads a model directory (whole batches per thread: the fastest for many texts).
    pub fn load(path: &str, precision: Precision) -> Result<Self> {
        let model = BertEmbedder::load(
            path,
            EmbedderOptions {
                parallelism: Some(BatchParallelism::Batches),
                precision: Some(precision),
                ..Default::default()
            },
        )
        .with_context(|| format!("loading the embedding model from {path}"))?;
        Ok(Dense {
            model,
            path: stored_location(path)?,
        })
    }
}

impl DenseModel for Dense {
    fn dim(&self) -> usize {
        self.model.dim()
    }
    fn identity(&self) -> Value {
        identity(&self.path, self.model.fingerprint())
    }
    fn check_identity(&self, stored: &Value) -> std::result::Result<(), String> {
        check(self.model.fingerprint(), stored)
    }
    fn max_tokens(&self) -> usize {
        self.model.max_seq_length()
    }
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        self.model.tokenizer().token_spans(text).unwrap_or_default()
    }
    fn embed(&self, texts: &[&str], query: bool) -> std::result::Result<Vec<Vec<f32>>, String> {
        let kind = if query {
            InputKind::Query
        } else {
            InputKind::Passage
        };
        let e = self.model.embed(texts, kind).map_err(|e| e.to_string())?;
        Ok(e.rows().map(<[f32]>::to_vec).collect())
    }
}

/// A SPLADE encoder.
#[derive(Debug)]
pub struct Splade {
    model: SpladeEncoder,
    path: String,
}

impl Splade {
    /// Loads a masked-LM directory.
    pub fn load(path: &str) -> Result<Self> {
        let model = SpladeEncoder::load(path, SpladeOptions::default())
            .with_context(|| format!("loading the SPLADE model from {path}"))?;
        Ok(Splade {
            model,
            path: stored_location(path)?,
        })
    }
}

impl SparseModel for Splade {
    fn identity(&self) -> Value {
        identity(&self.path, self.model.fingerprint())
    }
    fn check_identity(&self, stored: &Value) -> std::result::Result<(), String> {
        check(self.model.fingerprint(), stored)
    }
    fn encode(
        &self,
        texts: &[&str],
        _query: bool,
    ) -> std::result::Result<Vec<SparseVector>, String> {
        let e = self.model.encode(texts).map_err(|e| e.to_string())?;
        Ok(e.vectors
            .into_iter()
            .map(|v| SparseVector {
                indices: v.indices,
                values: v.values,
            })
            .collect())
    }
}

/// A cross-encoder reranker.
#[derive(Debug)]
pub struct Cross {
    model: CrossEncoder,
}

impl Cross {
    /// Loads a sequence-classification directory.
    pub fn load(path: &str) -> Result<Self> {
        let model = CrossEncoder::load(path, RerankerOptions::default())
            .with_context(|| format!("loading the reranker from {path}"))?;
        Ok(Cross { model })
    }
}

impl PairScorer for Cross {
    fn score(&self, query: &str, passages: &[&str]) -> std::result::Result<Vec<f32>, String> {
        self.model.score(query, passages).map_err(|e| e.to_string())
    }
}

/// Late-interaction reranking: MaxSim between the normalised token states of the query and of
/// each passage, from a bi-encoder (no extra model needed).
#[derive(Debug)]
pub struct MaxSim {
    model: BertEmbedder,
}

impl MaxSim {
    /// Loads the bi-encoder whose token states are compared.
    pub fn load(path: &str) -> Result<Self> {
        let model = BertEmbedder::load(path, EmbedderOptions::default())
            .with_context(|| format!("loading the MaxSim model from {path}"))?;
        Ok(MaxSim { model })
    }
}

impl PairScorer for MaxSim {
    fn score(&self, query: &str, passages: &[&str]) -> std::result::Result<Vec<f32>, String> {
        let opts = TokenOptions {
            projection: None,
            normalize: true,
        };
        let q = self
            .model
            .embed_tokens(&[query], InputKind::Query, &opts)
            .map_err(|e| e.to_string())?
            .pop()
            .unwrap_or_else(|| sextant_embed::TokenEmbeddings {
                dim: 0,
                data: Vec::new(),
            });
        let docs = self
            .model
            .embed_tokens(passages, InputKind::Passage, &opts)
            .map_err(|e| e.to_string())?;
        docs.iter()
            .map(|d| maxsim(&q, d).map_err(|e| e.to_string()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relative_model_directory_is_stored_absolute_and_canonical() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m");
        std::fs::create_dir(&model).unwrap();
        let canonical = std::fs::canonicalize(&model).unwrap();
        // `dir/m/../m` and the canonical path are the same directory.
        let dotted = model.join("..").join("m");
        let stored = stored_location(dotted.to_str().unwrap()).unwrap();
        assert_eq!(std::path::Path::new(&stored), canonical);
        assert!(std::path::Path::new(&stored).is_absolute());
        // A relative path, from the process's working directory.
        let cwd = std::env::current_dir().unwrap();
        if let Ok(rel) = canonical.strip_prefix(std::fs::canonicalize(&cwd).unwrap()) {
            let stored = stored_location(rel.to_str().unwrap()).unwrap();
            assert_eq!(std::path::Path::new(&stored), canonical);
        }
        let rel = std::path::Path::new(".");
        assert_eq!(
            std::path::Path::new(&stored_location(rel.to_str().unwrap()).unwrap()),
            std::fs::canonicalize(cwd).unwrap()
        );
    }

    #[test]
    fn a_hub_id_is_stored_as_given() {
        let id = "sentence-transformers/not-a-local-directory-xyz";
        assert_eq!(stored_location(id).unwrap(), id);
    }
}
