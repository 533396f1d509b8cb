//! The engine's model traits over `sextant-embed`'s models: the bi-encoder ([`Dense`]), SPLADE
//! ([`Splade`]), the cross-encoder ([`Cross`]) and late interaction over a bi-encoder's token
//! states ([`MaxSim`]). A model's identity, stored with the collection
//! space it fills, is `{"path": …, "fingerprint": …}`; a model matches a stored identity when
//! its fingerprint does (the path is only where to load it from next time).

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
            path: path.to_string(),
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
            path: path.to_string(),
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
