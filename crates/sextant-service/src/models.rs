//! Models for collections and requests: the engine's model traits over `sextant-embed`
//! ([`Dense`], [`Splade`], [`Cross`], [`MaxSim`]) and the [`ModelRegistry`] that loads each
//! model once and hands out shared references.
//!
//! A model's identity, stored with the collection space it fills, is `{"path": …,
//! "fingerprint": …}`; a model matches a stored identity when its fingerprint does (the path is
//! only where to load it from next time). The stored path is [`stored_location`]: a local
//! directory as its absolute, canonical path (a relative path would break every later command
//! run from another directory), a Hugging Face id as the id (it resolves through the local cache
//! on any machine, and a cache snapshot directory changes with every revision).
//!
//! The registry is keyed by that location (and precision), so `models/x`, `./models/x` and the
//! canonical path share one loaded model; a server loads each model once.

use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Value};
use sextant_core::SparseVector;
use sextant_embed::{
    maxsim, BatchParallelism, BertEmbedder, CrossEncoder, Embedder, EmbedderOptions, InputKind,
    ModelFingerprint, Precision, Reranker, RerankerOptions, SparseEncoder, SpladeEncoder,
    SpladeOptions, TextEmbedder, TokenOptions,
};
use sextant_engine::documents::{self, DenseModel, PairScorer, SparseModel, SPLADE};
use sextant_engine::Collection;

use crate::error::{Error, Result};

/// Where a model given as `spec` is to be loaded from later: the canonical absolute path of a
/// local directory, else `spec` itself (a Hugging Face id).
pub fn stored_location(spec: &str) -> Result<String> {
    let path = std::path::Path::new(spec);
    if !path.is_dir() {
        return Ok(spec.to_string());
    }
    let canonical = std::fs::canonicalize(path)
        .map_err(|e| Error::internal(format!("cannot resolve the model directory {spec}"), e))?;
    canonical.to_str().map(str::to_string).ok_or_else(|| {
        Error::invalid(
            "model",
            format!(
                "the model directory {} is not valid UTF-8",
                canonical.display()
            ),
        )
    })
}

/// What a space stores about its model: where it lives, its fingerprint (what vectors must
/// match), and the precision it ran in when the space was created (information only: every
/// precision makes the same vector space).
fn identity(path: &str, fp: &ModelFingerprint, precision: Precision) -> Value {
    json!({"path": path, "fingerprint": fp, "precision": precision.as_str()})
}

fn check(mine: &ModelFingerprint, stored: &Value) -> std::result::Result<(), String> {
    let fp: ModelFingerprint = serde_json::from_value(stored["fingerprint"].clone())
        .map_err(|e| format!("stored model fingerprint does not parse: {e}"))?;
    fp.check(mine).map_err(|e| e.to_string())
}

/// Where a stored identity says its model lives.
pub fn stored_path(stored: &Value) -> Result<String> {
    stored["path"].as_str().map(str::to_string).ok_or_else(|| {
        Error::new(
            sextant_core::ErrorKind::Internal,
            "the stored model identity has no path",
        )
    })
}

fn load_error(what: &str, spec: &str, e: sextant_embed::EmbedError) -> Error {
    Error::invalid("model", format!("loading the {what} from {spec}")).with_source(e)
}

/// A bi-encoder.
#[derive(Debug)]
pub struct Dense {
    /// The model.
    pub model: TextEmbedder,
    path: String,
    /// Vectors already computed, by text and input kind (bounded; `None`: off).
    cache: Option<sextant_embed::EmbeddingCache>,
}

impl Dense {
    /// Loads a model directory (whole batches per thread: the fastest for many texts).
    pub fn load(path: &str, precision: Precision) -> Result<Self> {
        Dense::load_with(
            path,
            EmbedderOptions {
                parallelism: Some(BatchParallelism::Batches),
                precision: Some(precision),
                ..Default::default()
            },
        )
    }

    /// Loads a model directory with explicit options.
    pub fn load_with(path: &str, opts: EmbedderOptions) -> Result<Self> {
        let model =
            TextEmbedder::load(path, opts).map_err(|e| load_error("embedding model", path, e))?;
        Ok(Dense {
            model,
            path: stored_location(path)?,
            cache: None,
        })
    }

    /// Keeps up to `entries` vectors so a text embedded again (a re-ingested chunk, a repeated
    /// query) costs a lookup; 0 turns the cache off.
    pub fn with_cache(mut self, entries: usize) -> Self {
        self.cache = (entries > 0)
            .then(|| sextant_embed::EmbeddingCache::new(self.model.fingerprint().clone(), entries));
        self
    }

    /// Hits, misses and size of the embedding cache (`None` when off).
    pub fn cache_stats(&self) -> Option<sextant_embed::CacheStats> {
        self.cache.as_ref().map(|c| c.stats())
    }

    /// Embeds texts through the cache: only the texts not cached reach the model. Returns the
    /// rows (full dimension) and how many of the embedded texts were truncated.
    pub fn embed_rows(
        &self,
        texts: &[&str],
        kind: InputKind,
    ) -> std::result::Result<(Vec<Vec<f32>>, usize), sextant_embed::EmbedError> {
        let Some(cache) = &self.cache else {
            let e = self.model.embed(texts, kind)?;
            let truncated = e.truncated;
            return Ok((e.rows().map(<[f32]>::to_vec).collect(), truncated));
        };
        let mut rows: Vec<Option<Vec<f32>>> = texts.iter().map(|t| cache.get(t, kind)).collect();
        let missing: Vec<usize> = (0..texts.len()).filter(|&i| rows[i].is_none()).collect();
        let mut truncated = 0;
        if !missing.is_empty() {
            let todo: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            let e = self.model.embed(&todo, kind)?;
            truncated = e.truncated;
            for (&i, row) in missing.iter().zip(e.rows()) {
                cache.insert(texts[i], kind, row.to_vec());
                rows[i] = Some(row.to_vec());
            }
        }
        Ok((
            rows.into_iter().map(Option::unwrap_or_default).collect(),
            truncated,
        ))
    }

    /// Tokens of each text as the model counts them (before truncation).
    pub fn count_tokens(&self, texts: &[&str]) -> usize {
        texts
            .iter()
            .map(|t| self.model.tokenizer().token_spans(t).map_or(0, |s| s.len()))
            .sum()
    }
}

impl DenseModel for Dense {
    fn dim(&self) -> usize {
        self.model.dim()
    }
    fn identity(&self) -> Value {
        identity(&self.path, self.model.fingerprint(), self.model.precision())
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
        let (rows, _) = self.embed_rows(texts, kind).map_err(|e| e.to_string())?;
        Ok(rows)
    }
    fn embeds_images(&self) -> bool {
        self.model.as_clip().is_some()
    }
    fn embed_images(&self, images: &[&[u8]]) -> std::result::Result<Vec<Vec<f32>>, String> {
        let clip = self.model.as_clip().ok_or_else(|| {
            format!(
                "the embedding model {} embeds only text (images need a CLIP model)",
                self.path
            )
        })?;
        let e = clip
            .install(|m| m.embed_image_bytes(images))
            .map_err(|e| e.to_string())?;
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
    /// The precision the encoder runs in (`auto` resolved).
    pub fn precision(&self) -> Precision {
        self.model.precision()
    }

    /// Loads a masked-LM directory.
    pub fn load(path: &str) -> Result<Self> {
        Splade::load_with(path, SpladeOptions::default())
    }

    /// Loads a masked-LM directory with explicit options.
    pub fn load_with(path: &str, opts: SpladeOptions) -> Result<Self> {
        let model =
            SpladeEncoder::load(path, opts).map_err(|e| load_error("SPLADE model", path, e))?;
        Ok(Splade {
            model,
            path: stored_location(path)?,
        })
    }
}

impl SparseModel for Splade {
    fn identity(&self) -> Value {
        identity(&self.path, self.model.fingerprint(), self.model.precision())
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
    /// The model.
    pub model: CrossEncoder,
}

impl Cross {
    /// Loads a sequence-classification directory.
    pub fn load(path: &str) -> Result<Self> {
        Cross::load_with(path, RerankerOptions::default())
    }

    /// Loads a sequence-classification directory with explicit options.
    pub fn load_with(path: &str, opts: RerankerOptions) -> Result<Self> {
        let model = CrossEncoder::load(path, opts).map_err(|e| load_error("reranker", path, e))?;
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
            .map_err(|e| load_error("MaxSim model", path, e))?;
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

/// How the registry runs the models it loads (defaults: every core, whole batches per thread).
#[derive(Debug, Clone, Default)]
pub struct RegistryConfig {
    /// Configured model names → directories or hub ids (`"minilm" → "/models/all-MiniLM-L6-v2"`);
    /// a spec that is no name is used as a directory or hub id itself.
    pub names: BTreeMap<String, String>,
    /// Texts per forward pass [default: the model's].
    pub batch_size: Option<usize>,
    /// Threads per model [default: every core].
    pub threads: Option<usize>,
    /// How several threads are used [default: whole batches on different threads].
    pub parallelism: Option<BatchParallelism>,
    /// Embeddings cached per loaded embedding model (0: no cache).
    pub embedding_cache_entries: usize,
}

type Cache<T> = Mutex<HashMap<String, Arc<T>>>;

/// Loads models by directory (or configured name), once: later requests for the same model
/// (by any path to it) share the loaded one. Checks models against a collection's stored model
/// identity.
#[derive(Debug, Default)]
pub struct ModelRegistry {
    config: RegistryConfig,
    dense: Cache<Dense>,
    splade: Cache<Splade>,
    cross: Cache<Cross>,
    maxsim: Cache<MaxSim>,
}

/// Loads `key` into `cache` unless it is there. The lock is not held while loading (seconds):
/// two threads asking for a new model at once may both load it, and the first one stored wins.
fn cached<T>(cache: &Cache<T>, key: String, load: impl FnOnce() -> Result<T>) -> Result<Arc<T>> {
    if let Some(m) = cache.lock().get(&key) {
        return Ok(m.clone());
    }
    let m = Arc::new(load()?);
    Ok(cache.lock().entry(key).or_insert(m).clone())
}

impl ModelRegistry {
    /// A registry with this configuration.
    pub fn new(config: RegistryConfig) -> Self {
        ModelRegistry {
            config,
            ..Default::default()
        }
    }

    /// The configuration.
    pub fn config(&self) -> &RegistryConfig {
        &self.config
    }

    /// The directory or hub id a spec names: a configured name's target, else the spec.
    pub fn resolve<'a>(&'a self, spec: &'a str) -> &'a str {
        self.config.names.get(spec).map_or(spec, String::as_str)
    }

    fn key(&self, spec: &str) -> Result<(String, String)> {
        let target = self.resolve(spec).to_string();
        Ok((stored_location(&target)?, target))
    }

    /// An embedding model at `precision`.
    pub fn dense(&self, spec: &str, precision: Precision) -> Result<Arc<Dense>> {
        let (loc, target) = self.key(spec)?;
        cached(&self.dense, format!("{loc}\0{precision}"), || {
            Dense::load_with(
                &target,
                EmbedderOptions {
                    batch_size: self.config.batch_size,
                    threads: self.config.threads,
                    parallelism: Some(self.config.parallelism.unwrap_or(BatchParallelism::Batches)),
                    precision: Some(precision),
                    ..Default::default()
                },
            )
            .map(|d| d.with_cache(self.config.embedding_cache_entries))
        })
    }

    /// Hits, misses and entries of the embedding caches of every loaded model, summed.
    pub fn embedding_cache_stats(&self) -> sextant_embed::CacheStats {
        let mut total = sextant_embed::CacheStats {
            hits: 0,
            misses: 0,
            len: 0,
        };
        for d in self.dense.lock().values() {
            if let Some(s) = d.cache_stats() {
                total.hits += s.hits;
                total.misses += s.misses;
                total.len += s.len;
            }
        }
        total
    }

    /// Tokens of `texts` by a model's tokenizer.
    pub fn count_tokens(&self, model: &str, texts: &[String]) -> Result<usize> {
        let m = self.dense(model, Precision::default())?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        Ok(m.count_tokens(&refs))
    }

    /// A SPLADE encoder at `precision` (with the registry's batch size and threads).
    pub fn splade(&self, spec: &str, precision: Precision) -> Result<Arc<Splade>> {
        let (loc, target) = self.key(spec)?;
        cached(&self.splade, format!("{loc}\0{precision}"), || {
            Splade::load_with(
                &target,
                SpladeOptions {
                    batch_size: self.config.batch_size,
                    threads: self.config.threads,
                    precision: Some(precision),
                    ..Default::default()
                },
            )
        })
    }

    /// A cross-encoder.
    pub fn cross(&self, spec: &str) -> Result<Arc<Cross>> {
        let (loc, target) = self.key(spec)?;
        cached(&self.cross, loc, || {
            Cross::load_with(
                &target,
                RerankerOptions {
                    batch_size: self.config.batch_size,
                    threads: self.config.threads,
                    ..Default::default()
                },
            )
        })
    }

    /// A bi-encoder for MaxSim reranking.
    pub fn maxsim(&self, spec: &str) -> Result<Arc<MaxSim>> {
        let (loc, target) = self.key(spec)?;
        cached(&self.maxsim, loc, || MaxSim::load(&target))
    }

    /// The embedding model a document collection was built with, checked against its stored
    /// fingerprint.
    pub fn collection_dense(&self, c: &Collection, precision: Precision) -> Result<Arc<Dense>> {
        let m = self.dense(&stored_path(&stored_dense(c)?)?, precision)?;
        documents::check_models(c, Some(m.as_ref()), None)?;
        Ok(m)
    }

    /// The SPLADE model of a document collection's SPLADE space, checked against its stored
    /// fingerprint.
    pub fn collection_splade(&self, c: &Collection, precision: Precision) -> Result<Arc<Splade>> {
        let stored = documents::stored_model(c, SPLADE).ok_or_else(|| {
            Error::invalid(
                "mode",
                format!(
                    "collection {:?} has no SPLADE space (give a SPLADE model when it is first ingested)",
                    c.name()
                ),
            )
        })?;
        let m = self.splade(&stored_path(&stored)?, precision)?;
        documents::check_models(c, None, Some(m.as_ref()))?;
        Ok(m)
    }

    /// MaxSim over a document collection's own embedding model.
    pub fn collection_maxsim(&self, c: &Collection) -> Result<Arc<MaxSim>> {
        self.maxsim(&stored_path(&stored_dense(c)?)?)
    }
}

fn stored_dense(c: &Collection) -> Result<Value> {
    documents::stored_model(c, documents::DENSE).ok_or_else(|| {
        Error::invalid(
            "collection",
            format!(
                "collection {:?} has no model-backed space {:?} (make it with `sextant ingest`)",
                c.name(),
                documents::DENSE
            ),
        )
    })
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

    #[test]
    fn configured_names_resolve_and_other_specs_pass_through() {
        let mut names = BTreeMap::new();
        names.insert("minilm".to_string(), "/models/all-MiniLM-L6-v2".to_string());
        let r = ModelRegistry::new(RegistryConfig {
            names,
            ..Default::default()
        });
        assert_eq!(r.resolve("minilm"), "/models/all-MiniLM-L6-v2");
        assert_eq!(r.resolve("models/x"), "models/x");
    }
}
