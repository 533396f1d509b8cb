//! The document layer: text in, cited passages out, over an ordinary [`Collection`].
//!
//! - [`ingest`]: documents → chunks (with byte offsets into their source) → optional PII
//!   redaction → embeddings, BM25 and SPLADE weights → points, each document's chunks replaced
//!   in one atomic WAL record; unchanged documents are skipped by content hash.
//! - [`search`]: the hybrid plan: sources (dense, BM25, SPLADE) → fusion → optional rerank →
//!   optional MMR → grouping by document.
//! - [`reindex`]: re-embedding a collection with another model into a new collection.
//! - [`retention`]: deleting documents by age (`ingested_at`).
//! - [`context`]: RAG context assembly: overlapping chunks merged, hierarchical chunks expanded
//!   to their parents, passages packed into a token budget with citations.
//!
//! The engine does not link the transformer runtime: models come in through the small traits
//! below ([`DenseModel`], [`SparseModel`], [`PairScorer`]), implemented by the front end over
//! `sextant-embed` (and by deterministic fakes in tests).
//!
//! A document collection has a dense space [`DENSE`] (cosine), a BM25 space [`BM25`], optionally
//! a SPLADE space [`SPLADE`], a keyword index on `doc_id`, and its [`DocumentSettings`] stored
//! in the schema. Every chunk is a point with id `<doc id>#<n>` and a payload with `doc_id`,
//! `chunk_index`, `start`/`end` (byte offsets into the source), `source`, `modified`, `title`,
//! `section`, `text`, `content_hash`, `ingested_at` (when this version of the document was
//! written), `parent` (hierarchical chunking), `pii` (redaction counts), plus the record's
//! other fields.

use std::ops::Range;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sextant_core::{Metric, SparseVector};
use sextant_storage::payload_index::FieldType;
use sextant_storage::schema::{
    IndexSpec, PayloadIndexSpec, Schema, SpaceSpec, SparseKind, SparseSpaceSpec,
};

use crate::error::{EngineError, Result};
use crate::Collection;

pub mod context;
pub mod ingest;
pub mod reindex;
pub mod retention;
pub mod search;

/// Name of the dense space of a document collection.
pub const DENSE: &str = "dense";
/// Name of its BM25 space.
pub const BM25: &str = "bm25";
/// Name of its SPLADE space (present when a SPLADE model was given at creation).
pub const SPLADE: &str = "splade";
/// Default chunk budget in model tokens.
pub const DEFAULT_CHUNK_TOKENS: usize = 200;

/// A text embedding model, as the document layer needs it.
pub trait DenseModel: Send + Sync {
    /// Output dimension.
    fn dim(&self) -> usize;
    /// Identity stored with the dense space (model path, fingerprint).
    fn identity(&self) -> Value;
    /// `Ok` when vectors of this model may be mixed with those of the stored identity;
    /// otherwise why not.
    fn check_identity(&self, stored: &Value) -> std::result::Result<(), String>;
    /// Most tokens the model reads, special tokens included.
    fn max_tokens(&self) -> usize;
    /// Byte spans of the model's tokens in `text` (special tokens excluded).
    fn token_spans(&self, text: &str) -> Vec<Range<usize>>;
    /// Embeds texts (as queries when `query`, else as passages), one vector each, in order.
    fn embed(&self, texts: &[&str], query: bool) -> std::result::Result<Vec<Vec<f32>>, String>;
    /// Whether the model embeds images into its text space (CLIP).
    fn embeds_images(&self) -> bool {
        false
    }
    /// Embeds images (PNG, JPEG or WebP bytes), one vector each, in order, into the space of
    /// [`DenseModel::embed`]. Text-only models refuse.
    fn embed_images(&self, images: &[&[u8]]) -> std::result::Result<Vec<Vec<f32>>, String> {
        let _ = images;
        Err("the embedding model embeds only text".into())
    }
}

/// A learned sparse encoder (SPLADE).
pub trait SparseModel: Send + Sync {
    /// Identity stored with the sparse space.
    fn identity(&self) -> Value;
    /// As [`DenseModel::check_identity`].
    fn check_identity(&self, stored: &Value) -> std::result::Result<(), String>;
    /// Encodes texts, one sparse vector each, in order.
    fn encode(&self, texts: &[&str], query: bool)
        -> std::result::Result<Vec<SparseVector>, String>;
}

/// A (query, passage) relevance scorer: a cross-encoder reranker.
pub trait PairScorer: Send + Sync {
    /// One score per passage, higher is more relevant.
    fn score(&self, query: &str, passages: &[&str]) -> std::result::Result<Vec<f32>, String>;
}

/// How documents are cut into chunks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkingSpec {
    /// `sentences`, `paragraphs` (Markdown/HTML headings become sections), `fixed` (token
    /// windows with overlap), `semantic` or `hierarchical`.
    pub strategy: String,
    /// Tokens per chunk at most (children, for hierarchical).
    pub max_tokens: usize,
    /// Overlap of fixed windows in tokens (default 15% of `max_tokens`).
    #[serde(default)]
    pub overlap: Option<usize>,
    /// Parent size for hierarchical chunking (default: 4 × `max_tokens`).
    #[serde(default)]
    pub parent_max_tokens: Option<usize>,
}

/// PII redaction at ingest.
///
/// What is redacted: the text, the title, every string (and refused: every number) of a
/// record's other fields, and so every derived field (chunk text, section, parent text); the
/// content hash is taken over the redacted text. What cannot be redacted is refused: a document
/// id, source path, modification time or tenant that holds personal data is an error, because
/// those are stored as given (they identify the document).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RedactionSpec {
    /// `mask` (`[EMAIL]`) or `hash` (`[EMAIL:1a2b3c4d5e6f7a8b]`, HMAC-SHA256 under a secret key
    /// kept outside the data; equal values give equal tokens).
    pub mode: String,
    /// Hash mode: the public fingerprint of the key ([`sextant_text::pii::key_id`]), so a
    /// different key is refused. The key itself is never stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Kinds to redact, comma-separated (`email,phone,card,iban,ip,national_id`); all when
    /// absent.
    #[serde(default)]
    pub kinds: Option<String>,
}

/// Duplicate detection at ingest (see [`ingest`]): exact copies (the same normalised text
/// under another document id) and near-duplicates (MinHash/LSH over word 3-shingles,
/// [`sextant_text::dedup`]), within a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DedupSpec {
    /// `keep` (record `duplicate_of` in the payload), `link` (record, and collapse copies in
    /// search and `ask` so one hit stands for them) or `skip` (do not store a new document
    /// that duplicates a stored one).
    pub policy: String,
    /// Estimated Jaccard similarity of word 3-shingles from which a document is a
    /// near-duplicate, in (0, 1]; 1 finds exact copies only.
    pub threshold: f64,
}

/// Payload key of a chunk's language (ISO 639-1): the record's own `language` field when it
/// has one, else the chunk's reliably detected language, else its document's; indexed.
pub const LANGUAGE: &str = "language";

/// Payload key of a chunk's document's language: the record's `language` field, else the
/// language most of its reliably detected text is in.
pub const DOC_LANGUAGE: &str = "doc_language";

/// The dedup policies.
pub const DEDUP_POLICIES: [&str; 3] = ["keep", "link", "skip"];

/// Payload key holding a document's duplicate-detection keys (its first chunk): the exact key
/// and the LSH band keys; indexed (keyword) when the collection detects duplicates.
pub const DEDUP_KEYS: &str = "dedup_keys";

/// Settings of a document collection, stored in its schema.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DocumentSettings {
    /// Chunking.
    pub chunking: ChunkingSpec,
    /// PII redaction (none when absent).
    #[serde(default)]
    pub redaction: Option<RedactionSpec>,
    /// Duplicate detection (none when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<DedupSpec>,
    /// The language BM25 analyses text in (see [`Bm25Language`]): `auto`, a language with a
    /// stemmer (`french` or `fr`), or another detectable language's ISO 639-1 code (`zh`,
    /// `pl`: no stemming). Absent: English, as collections made before the setting existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
}

/// How a document collection's BM25 analyses text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bm25Language {
    /// Every chunk in its own detected language (stemmer and, where the analyzer uses them,
    /// stop words), English when detection is unsure; a query in the language whose terms the
    /// index holds most.
    Auto,
    /// One language; `None`: a language without a stemmer (CJK text is cut into bigrams
    /// whatever the language).
    Fixed(Option<sextant_text::Language>),
}

impl Bm25Language {
    /// Parses the `language` setting (absent: English).
    pub fn parse(spec: Option<&str>) -> Result<Bm25Language> {
        let Some(spec) = spec else {
            return Ok(Bm25Language::Fixed(Some(sextant_text::Language::English)));
        };
        let lower = spec.trim().to_ascii_lowercase();
        if lower == "auto" {
            return Ok(Bm25Language::Auto);
        }
        if let Ok(l) = lower.parse::<sextant_text::Language>() {
            return Ok(Bm25Language::Fixed(Some(l)));
        }
        if sextant_text::language::name_of(&lower).is_some() {
            return Ok(Bm25Language::Fixed(None));
        }
        Err(EngineError::invalid(
            "language",
            format!(
                "unknown language {spec:?}: expected auto, a language with a stemmer ({}), or the ISO 639-1 code of a detectable language ({})",
                sextant_text::Language::ALL
                    .iter()
                    .map(|l| l.name())
                    .collect::<Vec<_>>()
                    .join(", "),
                sextant_text::language::detectable().collect::<Vec<_>>().join(", ")
            ),
        ))
    }

    /// The BM25 analyzer configuration (alphanumeric runs, lower-cased, no stop words, the
    /// language's stemmer).
    pub fn analyzer(self) -> Value {
        let (stemmer, detect) = match self {
            Bm25Language::Auto => (Some(sextant_text::Language::English), true),
            Bm25Language::Fixed(l) => (l, false),
        };
        let mut a = json!({"split": "alphanumeric", "lowercase": true, "min_chars": 1,
                           "max_bytes": 40, "stop_words": null, "stemmer": stemmer});
        if detect {
            a["detect_language"] = json!(true);
        }
        a
    }
}

impl DocumentSettings {
    /// Default settings for a model reading `max_tokens` tokens.
    pub fn for_model(max_tokens: usize) -> Self {
        DocumentSettings {
            chunking: ChunkingSpec {
                strategy: "sentences".into(),
                max_tokens: DEFAULT_CHUNK_TOKENS.min(max_tokens.saturating_sub(2).max(1)),
                overlap: None,
                parent_max_tokens: None,
            },
            redaction: None,
            dedup: None,
            language: None,
        }
    }

    /// The settings stored in a collection's schema.
    pub fn of(c: &Collection) -> Result<Self> {
        let v = c.schema().documents.clone().ok_or_else(|| {
            EngineError::invalid(
                "collection",
                format!(
                    "collection {:?} is not a document collection (make one with `sextant ingest`)",
                    c.name()
                ),
            )
        })?;
        serde_json::from_value(v).map_err(|e| {
            EngineError::invalid(
                "documents",
                format!(
                    "collection {:?}: stored document settings do not parse: {e}",
                    c.name()
                ),
            )
        })
    }

    /// Checks the settings against the model's token limit.
    pub fn validate(&self, model_max_tokens: usize) -> Result<()> {
        let limit = model_max_tokens.saturating_sub(2).max(1);
        let bad = |field: &str, m: String| Err(EngineError::invalid(field, m));
        let c = &self.chunking;
        if ![
            "sentences",
            "paragraphs",
            "fixed",
            "semantic",
            "hierarchical",
        ]
        .contains(&c.strategy.as_str())
        {
            return bad("chunking.strategy", format!(
                "unknown chunking {:?}: expected sentences, paragraphs, fixed, semantic or hierarchical",
                c.strategy
            ));
        }
        if c.max_tokens == 0 || c.max_tokens > limit {
            return bad("chunking.max_tokens", format!(
                "chunk size must be 1..={limit} tokens for this model (it reads {model_max_tokens} tokens, special tokens included)"
            ));
        }
        if c.overlap.is_some() && !matches!(c.strategy.as_str(), "fixed" | "hierarchical") {
            return bad("chunking.overlap", format!(
                "chunk overlap applies to fixed and hierarchical chunking only; {:?} chunking cuts at sentence or paragraph boundaries without overlap",
                c.strategy
            ));
        }
        if c.parent_max_tokens.is_some() && c.strategy != "hierarchical" {
            return bad(
                "chunking.parent_max_tokens",
                format!(
                    "a parent chunk size applies to hierarchical chunking only, not {:?}",
                    c.strategy
                ),
            );
        }
        if let Some(o) = c.overlap {
            if o >= c.max_tokens {
                return bad(
                    "chunking.overlap",
                    format!(
                        "chunk overlap ({o}) must be smaller than the chunk size ({})",
                        c.max_tokens
                    ),
                );
            }
        }
        if let Some(p) = c.parent_max_tokens {
            if p < c.max_tokens {
                return bad(
                    "chunking.parent_max_tokens",
                    format!(
                        "parent chunk size ({p}) must be at least the chunk size ({})",
                        c.max_tokens
                    ),
                );
            }
        }
        Bm25Language::parse(self.language.as_deref())?;
        if let Some(d) = &self.dedup {
            if !DEDUP_POLICIES.contains(&d.policy.as_str()) {
                return bad(
                    "dedup.policy",
                    format!(
                        "unknown dedup policy {:?}: expected keep, link or skip",
                        d.policy
                    ),
                );
            }
            if !(d.threshold > 0.0 && d.threshold <= 1.0) {
                return bad(
                    "dedup.threshold",
                    format!(
                        "the near-duplicate threshold must be in (0, 1], got {}",
                        d.threshold
                    ),
                );
            }
        }
        if let Some(r) = &self.redaction {
            if r.mode != "mask" && r.mode != "hash" {
                return bad(
                    "redaction.mode",
                    format!("unknown redaction mode {:?}: expected mask or hash", r.mode),
                );
            }
            if let Some(k) = &r.kinds {
                if let Err(e) = sextant_text::PiiKind::parse_list(k) {
                    return bad("redaction.kinds", format!("redaction kinds: {e}"));
                }
            }
        }
        Ok(())
    }
}

/// The schema of a new document collection.
pub fn schema(
    dense: &dyn DenseModel,
    splade: Option<&dyn SparseModel>,
    settings: &DocumentSettings,
) -> Result<Schema> {
    settings.validate(dense.max_tokens())?;
    let mut sparse_spaces = vec![SparseSpaceSpec {
        name: BM25.into(),
        kind: SparseKind::Bm25 {
            k1: sextant_text::bm25::DEFAULT_K1,
            b: sextant_text::bm25::DEFAULT_B,
            analyzer: Bm25Language::parse(settings.language.as_deref())?.analyzer(),
        },
        model: None,
    }];
    if let Some(s) = splade {
        sparse_spaces.push(SparseSpaceSpec {
            name: SPLADE.into(),
            kind: SparseKind::Dot,
            model: Some(s.identity()),
        });
    }
    Ok(Schema {
        spaces: vec![SpaceSpec {
            name: DENSE.into(),
            dim: dense.dim(),
            metric: Metric::Cosine,
            index: IndexSpec::default(),
            model: Some(dense.identity()),
            on_disk: false,
        }],
        payload_indexes: ["doc_id", LANGUAGE]
            .into_iter()
            .chain(settings.dedup.as_ref().map(|_| DEDUP_KEYS))
            .map(|key| PayloadIndexSpec {
                key: key.into(),
                field_type: FieldType::Keyword,
            })
            .collect(),
        tenant_key: None,
        sparse_spaces,
        documents: Some(serde_json::to_value(settings).expect("settings serialise")),
        ttl: None,
    })
}

/// Checks that `dense` (and `splade`, when given) are the models the collection was built with.
pub fn check_models(
    c: &Collection,
    dense: Option<&dyn DenseModel>,
    splade: Option<&dyn SparseModel>,
) -> Result<()> {
    let schema = c.schema();
    if let Some(m) = dense {
        let stored = schema
            .spaces
            .iter()
            .find(|s| s.name == DENSE)
            .and_then(|s| s.model.as_ref())
            .ok_or_else(|| {
                EngineError::invalid(
                    "collection",
                    format!(
                        "collection {:?} has no model-backed space {DENSE:?}",
                        c.name()
                    ),
                )
            })?;
        m.check_identity(stored).map_err(|e| {
            EngineError::Conflict(format!(
                "the embedding model is not the one collection {:?} was built with: {e}",
                c.name()
            ))
        })?;
    }
    if let Some(m) = splade {
        let stored = schema
            .sparse_spaces
            .iter()
            .find(|s| s.name == SPLADE)
            .ok_or_else(|| {
                EngineError::invalid("splade", format!(
                    "collection {:?} has no SPLADE space (give a SPLADE model when it is first ingested)",
                    c.name()
                ))
            })?;
        if let Some(stored) = &stored.model {
            m.check_identity(stored).map_err(|e| {
                EngineError::Conflict(format!(
                    "the SPLADE model is not the one collection {:?} was built with: {e}",
                    c.name()
                ))
            })?;
        }
    }
    Ok(())
}

/// The stored model identity of a space (`dense` or a sparse space), if any.
pub fn stored_model(c: &Collection, space: &str) -> Option<Value> {
    let s = c.schema();
    s.spaces
        .iter()
        .find(|x| x.name == space)
        .and_then(|x| x.model.clone())
        .or_else(|| {
            s.sparse_spaces
                .iter()
                .find(|x| x.name == space)
                .and_then(|x| x.model.clone())
        })
}

/// The secret key of hash-mode redaction: at least [`RedactionKey::MIN_BYTES`] bytes, from a
/// key file readable by its owner only or from [`REDACTION_KEY_ENV`]. Never stored with the
/// data and never printed.
#[derive(Clone)]
pub struct RedactionKey(Vec<u8>);

/// Environment variable holding the hash-mode redaction key.
pub const REDACTION_KEY_ENV: &str = "SEXTANT_REDACTION_KEY";

impl RedactionKey {
    /// Shortest accepted key.
    pub const MIN_BYTES: usize = 16;

    /// A key from bytes (at least [`RedactionKey::MIN_BYTES`]).
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self> {
        let bytes = bytes.into();
        if bytes.len() < Self::MIN_BYTES {
            return Err(EngineError::invalid("redaction_key", format!(
                "a redaction key needs at least {} bytes, got {} (make one with `head -c 32 /dev/urandom > KEYFILE && chmod 600 KEYFILE`)",
                Self::MIN_BYTES,
                bytes.len()
            )));
        }
        Ok(RedactionKey(bytes))
    }

    /// Reads a key file (one trailing newline is dropped). On Unix the file must not be
    /// readable or writable by group or others (mode 0600 or stricter).
    pub fn from_file(path: &std::path::Path) -> Result<Self> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(path).map_err(|e| {
                EngineError::invalid(
                    "redaction_key",
                    format!("cannot read redaction key file {}: {e}", path.display()),
                )
            })?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(EngineError::invalid("redaction_key", format!(
                    "redaction key file {} has mode {mode:o}: it must be readable by its owner only (chmod 600)",
                    path.display()
                )));
            }
        }
        let mut bytes = std::fs::read(path).map_err(|e| {
            EngineError::invalid(
                "redaction_key",
                format!("cannot read redaction key file {}: {e}", path.display()),
            )
        })?;
        if bytes.last() == Some(&b'\n') {
            bytes.pop();
        }
        Self::new(bytes)
    }

    /// The key in [`REDACTION_KEY_ENV`], if set.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var_os(REDACTION_KEY_ENV) {
            Some(v) if !v.is_empty() => Self::new(v.into_encoded_bytes()).map(Some),
            _ => Ok(None),
        }
    }

    /// The key's public fingerprint, stored with the collection.
    pub fn id(&self) -> String {
        sextant_text::pii::key_id(&self.0)
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for RedactionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedactionKey(<secret>)")
    }
}

fn model_err(what: &str, e: String) -> EngineError {
    EngineError::Model(format!("{what}: {e}"))
}
