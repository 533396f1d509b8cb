//! [`Service`]: the operations every front end offers, over one [`Database`] and one
//! [`ModelRegistry`].

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sextant_core::ErrorKind;
use sextant_embed::{Embedder, InputKind, Precision, Reranker as _};
use sextant_engine::documents::context::{self, Context as RagContext};
use sextant_engine::documents::ingest::{Document, IngestStats, Ingester};
use sextant_engine::documents::retention::AgeDeletion;
use sextant_engine::documents::search::{search_text_explained, DocumentHit, Explanation, Models};
use sextant_engine::documents::{
    self, DenseModel, DocumentSettings, PairScorer, RedactionKey, RedactionSpec, SparseModel,
    SPLADE,
};
use sextant_engine::fusion::{fuse, Fusion};
use sextant_engine::{
    Collection, CollectionConfig, Database, Durability, EngineError, PointInput, Scope,
};

use crate::error::{Error, Result};
use crate::ingest::{self, IngestOptions, IngestReport};
use crate::models::{Dense, ModelRegistry, RegistryConfig, Splade};
use crate::plan::{self, Plan, Reranker, TextSearchRequest};

/// Chunks retrieved for `ask` before packing the context.
pub const DEFAULT_ASK_K: usize = 8;
/// Context budget of `ask` in model tokens.
pub const DEFAULT_ASK_BUDGET: usize = 1024;
/// Model name sent to the LLM endpoint.
pub const DEFAULT_LLM_MODEL: &str = "gpt-4o-mini";
/// Seconds to wait for the LLM.
pub const DEFAULT_LLM_TIMEOUT_S: u64 = 120;

/// How a [`Service`] runs.
#[derive(Clone, Default)]
pub struct ServiceConfig {
    /// Collections' configuration (durability, flush and merge thresholds).
    pub collection: CollectionConfig,
    /// Model loading.
    pub models: RegistryConfig,
    /// The key of hash-mode redaction when a request gives none [default:
    /// `$SEXTANT_REDACTION_KEY`].
    pub redaction_key: Option<RedactionKey>,
}

impl std::fmt::Debug for ServiceConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceConfig")
            .field("collection", &self.collection)
            .field("models", &self.models)
            .field("redaction_key", &self.redaction_key.is_some())
            .finish()
    }
}

impl ServiceConfig {
    /// The default configuration with this durability.
    pub fn with_durability(durability: Durability) -> Self {
        ServiceConfig {
            collection: CollectionConfig {
                durability,
                ..CollectionConfig::default()
            },
            ..Default::default()
        }
    }
}

/// Where `ask` gets an answer from: an OpenAI-compatible chat completions endpoint.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmRequest {
    /// Endpoint (`http://host:port`, `…/v1` or `…/v1/chat/completions`).
    pub url: String,
    /// Model name sent [default: gpt-4o-mini].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Seconds to wait [default: 120].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_s: Option<u64>,
}

/// A question for a document collection.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskRequest {
    /// The question.
    pub question: String,
    /// Chunks to retrieve before packing the context [default: 8].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    /// Context budget in model tokens [default: 1024].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<usize>,
    /// Retrieval as in [`TextSearchRequest`] (its `text` and `k` are ignored); `group_size`
    /// defaults to no grouping: chunks in rank order.
    #[serde(default)]
    pub retrieval: TextSearchRequest,
    /// An answer from a language model; without it the answer is the cited context itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<LlmRequest>,
}

/// The answer to an [`AskRequest`].
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct AskResponse {
    /// The question.
    pub question: String,
    /// The language model's answer, when one was asked for.
    pub answer: Option<String>,
    /// The cited context.
    #[schema(value_type = Object)]
    pub context: RagContext,
}

/// What the texts given to [`Service::embed`] are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum EmbedKind {
    /// Queries (the model's query prefix).
    Query,
    /// Passages (the model's passage prefix).
    Passage,
    /// As given [default].
    #[default]
    Plain,
}

/// Options of [`Service::embed`].
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedOptions {
    /// query, passage or plain [default: plain].
    #[serde(default)]
    pub kind: EmbedKind,
    /// Matryoshka dimension: keep the first D components, then re-normalise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dimensions: Option<usize>,
    /// f32, bf16, int8 or auto (measured at load) [default: auto].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
}

/// Embeddings, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Embedded {
    /// Components per vector.
    pub dim: usize,
    /// `texts × dim` values.
    pub data: Vec<f32>,
    /// Inputs cut to the model's sequence limit.
    pub truncated: usize,
    /// The model's sequence limit in tokens.
    pub max_tokens: usize,
}

/// What an import wrote.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Points written.
    pub points: usize,
    /// Seconds spent writing (after reading and checking).
    pub write_seconds: f64,
}

/// One data directory's operations. `Send + Sync`: share one behind an `Arc`.
#[derive(Debug)]
pub struct Service {
    db: Database,
    models: ModelRegistry,
    config: ServiceConfig,
}

/// The loaded models of a plan.
struct Loaded {
    dense: Option<Arc<Dense>>,
    splade: Option<Arc<Splade>>,
    reranker: Option<Arc<dyn PairScorer + Send + Sync>>,
}

impl Loaded {
    fn models(&self) -> Models<'_> {
        Models {
            dense: self.dense.as_deref().map(|m| m as &dyn DenseModel),
            splade: self.splade.as_deref().map(|m| m as &dyn SparseModel),
            reranker: self.reranker.as_deref().map(|m| m as &dyn PairScorer),
        }
    }
}

impl Service {
    /// Opens (creating) a data directory.
    pub fn open(data_dir: &Path, config: ServiceConfig) -> Result<Service> {
        let db = Database::open(data_dir, config.collection).map_err(|e| {
            Error::from(e).context(format!("cannot open data directory {}", data_dir.display()))
        })?;
        Ok(Service::from_database(db, config))
    }

    /// A service over an open database.
    pub fn from_database(db: Database, config: ServiceConfig) -> Service {
        Service {
            db,
            models: ModelRegistry::new(config.models.clone()),
            config,
        }
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// The model registry.
    pub fn models(&self) -> &ModelRegistry {
        &self.models
    }

    /// A collection (or alias) by name.
    pub fn collection(&self, name: &str) -> Result<Arc<Collection>> {
        Ok(self.db.collection(name)?)
    }

    fn load(&self, c: &Collection, p: &Plan) -> Result<Loaded> {
        let dense = p
            .needs
            .dense
            .then(|| self.models.collection_dense(c, p.needs.precision))
            .transpose()?;
        let splade = p
            .needs
            .splade
            .then(|| self.models.collection_splade(c, p.needs.precision))
            .transpose()?;
        let reranker: Option<Arc<dyn PairScorer + Send + Sync>> = match &p.needs.reranker {
            Some(Reranker::MaxSim) => Some(self.models.collection_maxsim(c)?),
            Some(Reranker::Cross(m)) => {
                Some(self.models.cross(m).map_err(|e| e.with_field("rerank"))?)
            }
            None => None,
        };
        Ok(Loaded {
            dense,
            splade,
            reranker,
        })
    }

    /// A text search (the hybrid plan) in a document collection: documents, each with its best
    /// chunks (or chunks, with `group_size` left to grouping by the caller's plan).
    pub fn text_search(
        &self,
        collection: &str,
        scope: &Scope,
        req: &TextSearchRequest,
    ) -> Result<Vec<DocumentHit>> {
        Ok(self.text_search_explained(collection, scope, req)?.0)
    }

    /// [`text_search`](Self::text_search), with what each source did (`--explain`).
    pub fn text_search_explained(
        &self,
        collection: &str,
        scope: &Scope,
        req: &TextSearchRequest,
    ) -> Result<(Vec<DocumentHit>, Explanation)> {
        let c = self.collection(collection)?;
        if c.schema().documents.is_none() {
            return Err(Error::invalid(
                "collection",
                format!(
                    "collection {:?} is not a document collection: text search needs one made by ingest (search a vector collection by vector)",
                    c.name()
                ),
            ));
        }
        let mut p = plan::plan(req)?;
        p.query.scope = scope.clone();
        let loaded = self.load(&c, &p)?;
        if let Some(image) = &req.image {
            p.query.dense_vector = Some(image_query_vector(&c, &loaded, image)?);
        }
        retrieve(&c, &loaded, &p)
    }

    /// Retrieval → cited context within a token budget (counted in the collection's model
    /// tokens) → optionally an answer from a language model.
    pub fn ask(&self, collection: &str, scope: &Scope, req: &AskRequest) -> Result<AskResponse> {
        let c = self.collection(collection)?;
        let retrieval = TextSearchRequest {
            text: req.question.clone(),
            k: Some(req.k.unwrap_or(DEFAULT_ASK_K)),
            ..req.retrieval.clone()
        };
        let mut p = plan::plan(&retrieval)?;
        p.query.scope = scope.clone();
        // Chunks, not documents, unless grouping is asked for: several chunks of one document
        // are welcome in a context.
        p.query.group_size = req.retrieval.group_size;
        let loaded = self.load(&c, &p)?;
        let (hits, _) = retrieve(&c, &loaded, &p)?;
        let counter = match &loaded.dense {
            Some(d) => d.clone(),
            None => self.models.collection_dense(&c, p.needs.precision)?,
        };
        let count = |s: &str| counter.token_spans(s).len();
        let ctx = context::assemble(&hits, req.budget.unwrap_or(DEFAULT_ASK_BUDGET), &count);
        let answer = match &req.llm {
            Some(llm) => Some(crate::llm::complete(
                &llm.url,
                llm.model.as_deref().unwrap_or(DEFAULT_LLM_MODEL),
                &crate::llm::prompt(&req.question, &ctx),
                Duration::from_secs(llm.timeout_s.unwrap_or(DEFAULT_LLM_TIMEOUT_S)),
            )?),
            None => None,
        };
        Ok(AskResponse {
            question: req.question.clone(),
            answer,
            context: ctx,
        })
    }

    /// Ingests documents into a document collection, creating it on first use from `opts`
    /// (refusing creation-time options that differ from an existing collection's), then runs
    /// the merge policy ([`Collection::settle`]). `progress` is called after each document.
    pub fn ingest(
        &self,
        collection: &str,
        scope: &Scope,
        opts: &IngestOptions,
        docs: &mut dyn Iterator<Item = Result<Document>>,
        progress: &mut dyn FnMut(&IngestStats),
    ) -> Result<IngestReport> {
        let t0 = Instant::now();
        let key = ingest::resolve_redaction_key(opts, self.config.redaction_key.as_ref())?;
        let precision = opts
            .precision
            .as_deref()
            .map(plan::parse_precision)
            .transpose()?
            .unwrap_or(plan::DEFAULT_PRECISION);
        let (c, dense, splade) = match self.db.collection(collection) {
            Ok(c) => {
                ingest::refuse_changed_settings(&c, opts)?;
                let splade = documents::stored_model(&c, SPLADE)
                    .is_some()
                    .then(|| self.models.collection_splade(&c, precision))
                    .transpose()?;
                // A model named for an existing collection must be the one it was built
                // with (refused naming both), never silently replaced by the stored one.
                let dense = match &opts.model {
                    Some(m) => {
                        let d = self
                            .models
                            .dense(m, precision)
                            .map_err(|e| e.with_field("model"))?;
                        documents::check_models(&c, Some(d.as_ref()), None)
                            .map_err(|e| Error::from(e).with_field("model"))?;
                        d
                    }
                    None => self.models.collection_dense(&c, precision)?,
                };
                (c, dense, splade)
            }
            Err(EngineError::CollectionNotFound(_)) => {
                let model = opts.model.as_deref().unwrap_or(ingest::DEFAULT_MODEL);
                let dense = self
                    .models
                    .dense(model, precision)
                    .map_err(|e| e.with_field("model"))?;
                let splade = ingest::splade_spec(opts)
                    .map(|s| {
                        self.models
                            .splade(&s, precision)
                            .map_err(|e| e.with_field("splade"))
                    })
                    .transpose()?;
                let settings = ingest::settings(opts, dense.as_ref(), key.as_ref())?;
                let mut schema = documents::schema(
                    dense.as_ref(),
                    splade.as_deref().map(|s| s as &dyn SparseModel),
                    &settings,
                )?;
                if let Some(spec) = &opts.tenant_key {
                    ingest::set_tenant_key(&mut schema, spec)?;
                }
                let c = self
                    .db
                    .create_collection_with(collection, schema, opts.encrypt)?;
                (c, dense, splade)
            }
            Err(e) => return Err(e.into()),
        };
        let mut ing = Ingester::new(
            &c,
            scope.clone(),
            dense.as_ref(),
            splade.as_deref().map(|s| s as &dyn SparseModel),
        )?
        .with_batch_chunks(
            opts.batch
                .unwrap_or(documents::ingest::DEFAULT_BATCH_CHUNKS),
        );
        let hashes = matches!(
            DocumentSettings::of(&c)?.redaction,
            Some(RedactionSpec { ref mode, .. }) if mode == "hash"
        );
        match (&key, hashes) {
            (Some(k), true) => ing = ing.with_redaction_key(k)?,
            (None, true) => {
                return Err(Error::invalid(
                    "redaction_key",
                    format!(
                        "collection {:?} redacts in hash mode: give its key with --redaction-key FILE or ${}",
                        c.name(),
                        documents::REDACTION_KEY_ENV
                    ),
                ))
            }
            (Some(_), false) if opts.redaction_key_file.is_some() => {
                return Err(Error::invalid(
                    "redaction_key",
                    format!(
                        "--redaction-key: collection {:?} does not redact in hash mode",
                        c.name()
                    ),
                ))
            }
            _ => {}
        }
        let load_s = t0.elapsed().as_secs_f64();
        let mut read_s = 0.0;
        let mut skipped_images = 0;
        let docs = docs.into_iter();
        loop {
            let t = Instant::now();
            let Some(doc) = docs.next() else { break };
            read_s += t.elapsed().as_secs_f64();
            let doc = doc?;
            // Pictures in a directory of a text collection are left out and counted (a CLIP
            // collection embeds them).
            if doc.image.is_some() && !documents::DenseModel::embeds_images(dense.as_ref()) {
                skipped_images += 1;
                continue;
            }
            let what = doc
                .source
                .clone()
                .unwrap_or_else(|| format!("document {:?}", doc.id));
            ing.add(doc)
                .map_err(|e| Error::from(e).context(format!("ingesting {what}")))?;
            progress(ing.stats());
        }
        let stats = ing.finish()?;
        let t = Instant::now();
        c.settle().map_err(|e| {
            Error::from(e).context(
                "every document was written and is durable; the merge after the ingest failed",
            )
        })?;
        let settle_s = t.elapsed().as_secs_f64();
        let s = t0.elapsed().as_secs_f64().max(1e-9);
        Ok(IngestReport {
            documents: stats.documents,
            replaced: stats.replaced,
            unchanged: stats.unchanged,
            chunks: stats.chunks,
            redactions: stats.redactions.clone(),
            duplicates: stats.duplicates,
            near_duplicates: stats.near_duplicates,
            skipped_duplicates: stats.skipped_duplicates,
            skipped_images,
            repeated_chunks: stats.repeated_chunks,
            precision: dense.model.precision().as_str().into(),
            splade_precision: splade.as_ref().map(|m| m.precision().as_str().into()),
            stages: ingest::IngestStages {
                load_s,
                read_s,
                prepare_s: stats.stages.prepare_s,
                dense_s: stats.stages.dense_s,
                splade_s: stats.stages.splade_s,
                models_s: stats.stages.models_s,
                write_s: stats.stages.write_s,
                settle_s,
            },
            seconds: s,
            documents_per_s: stats.documents as f64 / s,
            chunks_per_s: stats.chunks as f64 / s,
        })
    }

    /// Creates a vector collection as `spec` describes.
    pub fn create_collection(&self, spec: &crate::CollectionSpec) -> Result<Arc<Collection>> {
        if spec.name.is_empty() {
            return Err(Error::invalid("name", "give the collection's name"));
        }
        let schema = spec.schema()?;
        Ok(self
            .db
            .create_collection_with(&spec.name, schema, spec.encrypted)?)
    }

    /// Removes, in the scope, every document ingested longer ago than `older_than` (`30d`,
    /// `12h`, `90m`, `45s`), all chunks in one durable write; see
    /// [`documents::retention`](sextant_engine::documents::retention).
    pub fn delete_older_than(
        &self,
        collection: &str,
        scope: &Scope,
        older_than: &str,
    ) -> Result<AgeDeletion> {
        let ms = sextant_engine::clock::parse_duration_ms(older_than).ok_or_else(|| {
            Error::invalid(
                "older_than",
                format!("{older_than:?} is not a duration: a whole number and s, m, h or d (30d, 12h, 90m, 45s)"),
            )
        })?;
        let c = self.collection(collection)?;
        Ok(sextant_engine::documents::retention::delete_older_than(
            &c, scope, ms,
        )?)
    }

    /// Removes a document (all its chunks, in the scope) in one durable write; returns how
    /// many chunks it had (0: no such document).
    pub fn delete_document(&self, collection: &str, scope: &Scope, doc_id: &str) -> Result<usize> {
        let c = self.collection(collection)?;
        let dense = self.models.collection_dense(&c, Precision::default())?;
        let splade = documents::stored_model(&c, SPLADE)
            .is_some()
            .then(|| self.models.collection_splade(&c, Precision::default()))
            .transpose()?;
        let key = ingest::resolve_redaction_key(
            &IngestOptions::default(),
            self.config.redaction_key.as_ref(),
        )?;
        let mut ing = Ingester::new(
            &c,
            scope.clone(),
            dense.as_ref(),
            splade.as_deref().map(|s| s as &dyn SparseModel),
        )?;
        if let (Some(k), Some(RedactionSpec { mode, .. })) =
            (&key, DocumentSettings::of(&c)?.redaction)
        {
            if mode == "hash" {
                ing = ing.with_redaction_key(k)?;
            }
        }
        let n = ing.remove(doc_id)?;
        ing.finish()?;
        Ok(n)
    }

    /// Imports points: every batch is read and checked before anything is written (a bad
    /// point leaves the collection unchanged), then written batch by batch (each one WAL
    /// record), made durable, and the merge policy runs. `name` names the input in errors;
    /// `progress` gets the points written so far.
    pub fn import_points(
        &self,
        collection: &str,
        scope: &Scope,
        batches: &mut dyn Iterator<Item = Result<Vec<PointInput>>>,
        name: &str,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<ImportReport> {
        let c = self.collection(collection)?;
        let batches: Vec<Vec<PointInput>> = batches.collect::<Result<_>>()?;
        let n: usize = batches.iter().map(Vec::len).sum();
        let mut offset = 0;
        for b in &batches {
            c.check(scope, b).map_err(|e| match e {
                EngineError::InvalidPoint { index, id, reason } => Error::invalid(
                    "points",
                    format!(
                        "point {} of {name} (id {id}): {reason}; nothing was written",
                        offset + index + 1
                    ),
                ),
                e => Error::from(e),
            })?;
            offset += b.len();
        }
        let batch_len = batches.first().map_or(1, Vec::len).max(1);
        let write_start = Instant::now();
        let mut landed = 0usize;
        for b in batches {
            let k = b.len();
            c.upsert(scope, b).map_err(|e| {
                Error::from(e).context(format!(
                    "import of {name} stopped: {landed} of {n} points landed (the first {} batches of {batch_len}); the failed batch and the rest were not written",
                    landed / batch_len
                ))
            })?;
            landed += k;
            progress(landed, n);
        }
        c.sync().map_err(|e| {
            Error::from(e).context(format!(
                "all {n} points were written, but forcing them to stable storage failed"
            ))
        })?;
        let write_seconds = write_start.elapsed().as_secs_f64();
        c.settle().map_err(|e| {
            Error::from(e).context(format!(
                "all {n} points were written and are durable; the merge after the import failed"
            ))
        })?;
        Ok(ImportReport {
            points: n,
            write_seconds,
        })
    }

    /// Embeds texts with a model (directory, hub id or configured name).
    pub fn embed(
        &self,
        model: &str,
        texts: &[String],
        opts: &EmbedOptions,
    ) -> Result<Vec<Vec<f32>>> {
        let e = self.models.embed(model, texts, opts)?;
        Ok(e.data.chunks(e.dim.max(1)).map(<[f32]>::to_vec).collect())
    }

    /// Scores documents against a query with a cross-encoder (raw logits, input order).
    pub fn rerank(&self, model: &str, query: &str, documents: &[String]) -> Result<Vec<f32>> {
        self.models.rerank(model, query, documents)
    }
}

impl ModelRegistry {
    /// Embeds texts (row-major output with the truncation count).
    pub fn embed(&self, model: &str, texts: &[String], opts: &EmbedOptions) -> Result<Embedded> {
        let precision = opts
            .precision
            .as_deref()
            .map(plan::parse_precision)
            .transpose()?
            .unwrap_or(plan::DEFAULT_PRECISION);
        let m = self.dense(model, precision)?;
        let kind = match opts.kind {
            EmbedKind::Query => InputKind::Query,
            EmbedKind::Passage => InputKind::Passage,
            EmbedKind::Plain => InputKind::Plain,
        };
        let full = m.model.dim();
        let dim = match opts.dimensions {
            None => full,
            Some(d) if (1..=full).contains(&d) => d,
            Some(d) => {
                return Err(Error::invalid(
                    "dimensions",
                    format!("dimensions {d}: the model gives 1..={full}"),
                ))
            }
        };
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let (rows, truncated) = m
            .embed_rows(&refs, kind)
            .map_err(|e| Error::new(ErrorKind::Internal, "embedding failed").with_source(e))?;
        let mut data = Vec::with_capacity(texts.len() * dim);
        for row in &rows {
            let start = data.len();
            data.extend_from_slice(&row[..dim]);
            if dim < full && m.model.normalize() {
                sextant_core::l2_normalize_in_place(&mut data[start..]);
            }
        }
        Ok(Embedded {
            dim,
            data,
            truncated,
            max_tokens: m.model.max_seq_length(),
        })
    }

    /// Scores documents against a query with a cross-encoder.
    pub fn rerank(&self, model: &str, query: &str, documents: &[String]) -> Result<Vec<f32>> {
        let m = self.cross(model)?;
        let refs: Vec<&str> = documents.iter().map(String::as_str).collect();
        m.model
            .score(query, &refs)
            .map_err(|e| Error::new(ErrorKind::Internal, "reranking failed").with_source(e))
    }
}

/// The embedding of an image query (base64 PNG, JPEG or WebP) by the collection's model.
fn image_query_vector(c: &Collection, loaded: &Loaded, image: &str) -> Result<Vec<f32>> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(image.trim())
        .map_err(|e| Error::invalid("image", format!("the image is not valid base64: {e}")))?;
    let dense = loaded
        .dense
        .as_ref()
        .ok_or_else(|| Error::invalid("image", "an image query needs the dense source"))?;
    let clip = dense.model.as_clip().ok_or_else(|| {
        Error::invalid(
            "image",
            format!(
                "collection {:?} was embedded by a text-only model: search by image needs a collection made with a CLIP model",
                c.name()
            ),
        )
    })?;
    let e = clip
        .install(|m| m.embed_image_bytes(&[bytes.as_slice()]))
        .map_err(|e| {
            if e.is_input_error() {
                Error::invalid("image", e.to_string())
            } else {
                Error::new(ErrorKind::Internal, "embedding the image failed").with_source(e)
            }
        })?;
    let v = e.rows().next().map(<[f32]>::to_vec).unwrap_or_default();
    Ok(v)
}

/// Runs a plan: the engine's query, with the language-model expansion it asks for around it
/// (multi-query: the query and its rewrites searched, the lists fused by reciprocal rank; HyDE:
/// the dense source embeds a hypothetical answer passage).
fn retrieve(
    c: &Collection,
    loaded: &Loaded,
    p: &plan::Plan,
) -> Result<(Vec<DocumentHit>, Explanation)> {
    use plan::LlmExpansion;
    let ask = |llm: &LlmRequest, messages: Value| {
        crate::llm::complete(
            &llm.url,
            llm.model.as_deref().unwrap_or(DEFAULT_LLM_MODEL),
            &messages,
            Duration::from_secs(llm.timeout_s.unwrap_or(DEFAULT_LLM_TIMEOUT_S)),
        )
    };
    match &p.llm_expansion {
        None => Ok(search_text_explained(c, loaded.models(), &p.query)?),
        Some(LlmExpansion::Hyde(llm)) => {
            let passage = ask(llm, crate::llm::hyde_prompt(&p.query.text))?;
            let passage = passage.trim().to_string();
            let mut q = p.query.clone();
            if !passage.is_empty() {
                q.dense_text = Some(passage.clone());
            }
            let (hits, mut why) = search_text_explained(c, loaded.models(), &q)?;
            why.hypothetical = Some(passage);
            Ok((hits, why))
        }
        Some(LlmExpansion::MultiQuery(n, llm)) => {
            let answer = ask(llm, crate::llm::rewrite_prompt(&p.query.text, *n))?;
            let rewrites = crate::llm::parse_rewrites(&answer, &p.query.text, *n);
            let (first, mut why) = search_text_explained(c, loaded.models(), &p.query)?;
            let mut lists = vec![first];
            for r in &rewrites {
                let mut q = p.query.clone();
                q.text = r.clone();
                lists.push(search_text_explained(c, loaded.models(), &q)?.0);
            }
            why.rewrites = rewrites;
            let grouped = p.query.group_size.is_some();
            Ok((fuse_hits(lists, grouped, p.query.k), why))
        }
    }
}

/// Reciprocal-rank fusion (k = 60, [`fuse`]) of ranked hit lists: documents (grouped) or chunks
/// (ungrouped) by identity, each kept as it appeared first, best fused score first, `k` of them.
fn fuse_hits(lists: Vec<Vec<DocumentHit>>, grouped: bool, k: usize) -> Vec<DocumentHit> {
    let key = |h: &DocumentHit| -> String {
        if grouped {
            h.doc_id.clone()
        } else {
            h.chunks
                .first()
                .map_or_else(|| h.doc_id.clone(), |c| c.id.to_string())
        }
    };
    let ranked: Vec<Vec<(String, f32)>> = lists
        .iter()
        .map(|l| l.iter().map(|h| (key(h), h.score)).collect())
        .collect();
    let mut first: HashMap<String, DocumentHit> = HashMap::new();
    for h in lists.into_iter().flatten() {
        first.entry(key(&h)).or_insert(h);
    }
    let rrf = Fusion::Rrf {
        k: sextant_engine::fusion::DEFAULT_RRF_K,
    };
    fuse(&ranked, &vec![1.0; ranked.len()], rrf)
        .into_iter()
        .filter_map(|(id, score)| {
            first.remove(&id).map(|mut h| {
                h.score = score;
                h
            })
        })
        .take(k)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Service>();
    }

    #[test]
    fn ask_requests_default_and_refuse_unknown_fields() {
        let r: AskRequest = serde_json::from_str(r#"{"question":"why?"}"#).unwrap();
        assert_eq!(r.k, None);
        assert!(serde_json::from_str::<AskRequest>(r#"{"question":"q","budgt":3}"#).is_err());
        let r: AskRequest = serde_json::from_str(
            r#"{"question":"q","retrieval":{"text":"","mode":"bm25"},"llm":{"url":"http://localhost:1"}}"#,
        )
        .unwrap();
        assert_eq!(r.retrieval.mode.as_deref(), Some("bm25"));
        let e: EmbedOptions = serde_json::from_str(r#"{"kind":"query","dimensions":8}"#).unwrap();
        assert_eq!(e.kind, EmbedKind::Query);
    }
}
