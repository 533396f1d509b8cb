//! Ingest options: what a document collection is created with on first ingest (model, SPLADE,
//! chunking, redaction, tenant key), the refusal of creation-time options that differ from a
//! collection's stored settings, and the redaction key's resolution.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sextant_engine::documents::{
    self, ChunkingSpec, DenseModel, DocumentSettings, RedactionKey, RedactionSpec, SPLADE,
};
use sextant_engine::{Collection, FieldType, PayloadIndexSpec, Schema};

use crate::error::{Error, Result};

/// The embedding model of a new document collection unless one is given.
pub const DEFAULT_MODEL: &str = "models/all-MiniLM-L6-v2";
/// The SPLADE model of a new collection when it exists here (`scripts/setup-models.sh`
/// installs it) and none is given.
pub const DEFAULT_SPLADE: &str = "models/splade-mini";
/// Chunking of a new collection unless one is given.
pub const DEFAULT_CHUNKING: &str = "sentences";

/// Options of an ingest. The creation-time ones (`model`, `splade`, `no_splade`, `chunking`,
/// `chunk_*`, `parent_tokens`, `redact*`, `tenant_key`) make the collection on first use and
/// must match its stored settings afterwards, where they may be left out.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IngestOptions {
    /// Embedding model (directory, hub id or configured name) [default:
    /// models/all-MiniLM-L6-v2]. Later ingests and queries use the collection's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// SPLADE model for the learned sparse space [default: models/splade-mini when it exists].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub splade: Option<String>,
    /// No SPLADE space (ingestion about 1.6× faster).
    #[serde(default)]
    pub no_splade: bool,
    /// sentences, paragraphs, fixed, semantic or hierarchical [default: sentences].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunking: Option<String>,
    /// Chunk budget in model tokens [default: 200, or less when the model reads fewer].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_tokens: Option<usize>,
    /// Overlap of fixed windows in tokens [default: 15% of the chunk budget].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chunk_overlap: Option<usize>,
    /// Parent chunk budget of hierarchical chunking [default: 4 × the chunk budget].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_tokens: Option<usize>,
    /// Redact PII: mask or hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redact: Option<String>,
    /// PII kinds to redact, comma-separated [default: all].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redact_kinds: Option<String>,
    /// Multi-tenant collection: payload key `KEY` (string tenants) or `KEY:integer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_key: Option<String>,
    /// Duplicate detection: keep (record `duplicate_of`), link (record, and collapse copies
    /// in search and ask) or skip (do not store copies) [default: off].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup: Option<String>,
    /// Estimated Jaccard similarity of word 3-shingles from which a document is a
    /// near-duplicate, in (0, 1] [default: 0.5]; needs `dedup`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedup_threshold: Option<f64>,
    /// The language BM25 analyses text in: `auto` (each chunk its own detected language,
    /// English when unsure; a query the language whose terms the index holds most), a language with a stemmer (`french` or `fr`) or another
    /// detectable language's ISO 639-1 code (no stemming) [default: english].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Precision of the embedding and SPLADE models: f32, bf16, int8 or auto (measured at load) [default: auto].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    /// Chunks embedded per batch (one WAL record each) [default: 256].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// Encrypt the collection at rest when this ingest creates it (needs the master key); for
    /// an existing collection, refused unless it is encrypted already.
    #[serde(default)]
    pub encrypt: bool,
    /// Key file of hash-mode redaction (local callers only: never part of a request body).
    #[serde(skip)]
    pub redaction_key_file: Option<PathBuf>,
}

/// Seconds an ingest spent per stage (wall clock; the models use all their threads inside
/// their stages, and the embedding model and SPLADE run side by side).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IngestStages {
    /// Opening the collection and loading the models (`auto` precision measures here on a
    /// machine's first load).
    pub load_s: f64,
    /// Reading and parsing the sources (files, JSONL records).
    pub read_s: f64,
    /// Chunking, redaction, language and duplicate detection.
    pub prepare_s: f64,
    /// The embedding model, its own time.
    pub dense_s: f64,
    /// The SPLADE model, its own time.
    pub splade_s: f64,
    /// The two models together: they run at the same time, so `dense_s` and `splade_s` may
    /// add up to more than this.
    pub models_s: f64,
    /// Writing: WAL records, BM25 and index updates, the final sync.
    pub write_s: f64,
    /// The merge after the ingest.
    pub settle_s: f64,
}

/// What an ingest did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    /// Documents written (new or changed).
    pub documents: usize,
    /// Of which replaced an older version.
    pub replaced: usize,
    /// Documents skipped as unchanged.
    pub unchanged: usize,
    /// Chunks written.
    pub chunks: usize,
    /// PII redactions by kind.
    pub redactions: std::collections::BTreeMap<String, usize>,
    /// Documents that are exact copies of another (dedup on).
    #[serde(default)]
    pub duplicates: usize,
    /// Documents that are near-duplicates of another (dedup on).
    #[serde(default)]
    pub near_duplicates: usize,
    /// Of those, not written (the skip policy).
    #[serde(default)]
    pub skipped_duplicates: usize,
    /// Images not ingested because the collection's embedding model embeds only text.
    #[serde(default)]
    pub skipped_images: usize,
    /// Chunks whose text an earlier chunk of the run had: their vectors were copied, not
    /// computed again.
    #[serde(default)]
    pub repeated_chunks: usize,
    /// The precision the embedding model ran in (`auto` resolved: f32, bf16 or int8).
    #[serde(default)]
    pub precision: String,
    /// The precision the SPLADE model ran in, when the collection has one.
    #[serde(default)]
    pub splade_precision: Option<String>,
    /// Seconds per stage.
    #[serde(default)]
    pub stages: IngestStages,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Documents per second.
    pub documents_per_s: f64,
    /// Chunks per second.
    pub chunks_per_s: f64,
}

/// Parses a tenant key spec `KEY[:keyword|integer]` into the key and its payload index.
pub fn parse_tenant_key(spec: &str) -> Result<(String, FieldType)> {
    let (key, ty) = match spec.rsplit_once(':') {
        Some((k, t)) => (k, t),
        None => (spec, "keyword"),
    };
    let ty = match ty {
        "keyword" => FieldType::Keyword,
        "integer" => FieldType::Integer,
        other => {
            return Err(Error::invalid(
                "tenant_key",
                format!("tenant_key {spec:?}: tenant ids are keyword or integer, not {other:?}"),
            ))
        }
    };
    if key.is_empty() {
        return Err(Error::invalid("tenant_key", "tenant_key: the key is empty"));
    }
    Ok((key.to_string(), ty))
}

/// Sets a schema's tenant key (and its payload index, unless one is declared).
pub fn set_tenant_key(schema: &mut Schema, spec: &str) -> Result<()> {
    let (key, ty) = parse_tenant_key(spec)?;
    if !schema.payload_indexes.iter().any(|p| p.key == key) {
        schema.payload_indexes.push(PayloadIndexSpec {
            key: key.clone(),
            field_type: ty,
        });
    }
    schema.tenant_key = Some(key);
    Ok(())
}

/// The redaction key: the options' key file, else the configured key, else
/// `$SEXTANT_REDACTION_KEY`.
pub fn resolve_redaction_key(
    opts: &IngestOptions,
    configured: Option<&RedactionKey>,
) -> Result<Option<RedactionKey>> {
    if let Some(path) = &opts.redaction_key_file {
        return RedactionKey::from_file(path)
            .map(Some)
            .map_err(|e| Error::from(e).with_field("redaction_key"));
    }
    if let Some(k) = configured {
        return Ok(Some(k.clone()));
    }
    RedactionKey::from_env().map_err(|e| {
        Error::from(e)
            .context(format!("${}", documents::REDACTION_KEY_ENV))
            .with_field("redaction_key")
    })
}

/// The settings of a new collection from the options.
pub fn settings(
    opts: &IngestOptions,
    dense: &dyn DenseModel,
    key: Option<&RedactionKey>,
) -> Result<DocumentSettings> {
    let mut settings = DocumentSettings::for_model(dense.max_tokens());
    settings.chunking = ChunkingSpec {
        strategy: opts
            .chunking
            .clone()
            .unwrap_or_else(|| DEFAULT_CHUNKING.into()),
        max_tokens: opts.chunk_tokens.unwrap_or(settings.chunking.max_tokens),
        overlap: opts.chunk_overlap,
        parent_max_tokens: opts.parent_tokens,
    };
    if opts.dedup_threshold.is_some() && opts.dedup.is_none() {
        return Err(Error::invalid(
            "dedup_threshold",
            "a near-duplicate threshold applies with dedup (keep, link or skip)",
        ));
    }
    settings.dedup = opts.dedup.as_ref().map(|policy| documents::DedupSpec {
        policy: policy.clone(),
        threshold: opts
            .dedup_threshold
            .unwrap_or(sextant_text::dedup::DEFAULT_THRESHOLD),
    });
    settings.language = opts.language.clone();
    settings.redaction = match opts.redact.as_deref() {
        Some("hash") => Some(RedactionSpec {
            mode: "hash".into(),
            key_id: Some(
                key.ok_or_else(|| {
                    Error::invalid(
                        "redaction_key",
                        format!(
                            "redact hash needs a secret key kept outside the data: --redaction-key FILE or ${} (make one with `head -c 32 /dev/urandom > FILE && chmod 600 FILE`)",
                            documents::REDACTION_KEY_ENV
                        ),
                    )
                })?
                .id(),
            ),
            kinds: opts.redact_kinds.clone(),
        }),
        Some(mode) => Some(RedactionSpec {
            mode: mode.to_string(),
            key_id: None,
            kinds: opts.redact_kinds.clone(),
        }),
        None => None,
    };
    Ok(settings)
}

/// The SPLADE model a new collection gets: the one given, else the default one when it is
/// installed, unless `no_splade`.
pub fn splade_spec(opts: &IngestOptions) -> Option<String> {
    match (&opts.splade, opts.no_splade) {
        (Some(d), _) => Some(d.clone()),
        (None, false) if Path::new(DEFAULT_SPLADE).join("config.json").exists() => {
            Some(DEFAULT_SPLADE.to_string())
        }
        _ => None,
    }
}

/// Refuses creation-time options that differ from an existing collection's stored settings
/// (they cannot change after creation; silently ignoring them would leave, say, text
/// unredacted that the user asked to redact). A [`Conflict`](sextant_core::ErrorKind::Conflict)
/// naming the first differing field; the message lists them all.
pub fn refuse_changed_settings(c: &Collection, a: &IngestOptions) -> Result<()> {
    if a.encrypt && c.encryption_status().is_none() {
        return Err(Error::invalid(
            "encrypt",
            format!(
                "collection {:?} exists and is not encrypted; encryption is chosen when a collection is created (snapshot it and restore into an encrypted one instead)",
                c.name()
            ),
        ));
    }
    let stored = DocumentSettings::of(c)?;
    let ch = &stored.chunking;
    let red = stored.redaction.as_ref();
    let has_splade = documents::stored_model(c, SPLADE).is_some();
    // The stored tenant key and its index type, against `tenant_key KEY[:TYPE]`.
    let schema = c.schema();
    let stored_key = schema.tenant_key.as_deref().and_then(|k| {
        let index = schema.payload_indexes.iter().find(|p| p.key == k);
        index.map(|p| (k.to_string(), p.field_type))
    });
    let tenant_key_differs = a
        .tenant_key
        .as_deref()
        .is_some_and(|spec| parse_tenant_key(spec).ok() != stored_key);
    let differs: Vec<(&str, String)> = [
        (
            "chunking",
            a.chunking.as_ref().is_some_and(|v| *v != ch.strategy),
            ch.strategy.clone(),
        ),
        (
            "chunk_tokens",
            a.chunk_tokens.is_some_and(|v| v != ch.max_tokens),
            ch.max_tokens.to_string(),
        ),
        (
            "chunk_overlap",
            a.chunk_overlap.is_some() && a.chunk_overlap != ch.overlap,
            format!("{:?}", ch.overlap),
        ),
        (
            "parent_tokens",
            a.parent_tokens.is_some() && a.parent_tokens != ch.parent_max_tokens,
            format!("{:?}", ch.parent_max_tokens),
        ),
        (
            "redact",
            a.redact
                .as_ref()
                .is_some_and(|m| Some(m) != red.map(|r| &r.mode)),
            red.map_or("none".into(), |r| r.mode.clone()),
        ),
        (
            "redact_kinds",
            a.redact_kinds.is_some()
                && a.redact_kinds.as_ref() != red.and_then(|r| r.kinds.as_ref()),
            red.and_then(|r| r.kinds.clone())
                .unwrap_or_else(|| "all".into()),
        ),
        (
            "splade",
            a.splade.is_some() && !has_splade,
            "no SPLADE space".into(),
        ),
        (
            "no_splade",
            a.no_splade && has_splade,
            "a SPLADE space".into(),
        ),
        (
            "dedup",
            a.dedup.is_some() && a.dedup.as_ref() != stored.dedup.as_ref().map(|d| &d.policy),
            stored
                .dedup
                .as_ref()
                .map_or("no dedup".into(), |d| format!("dedup {}", d.policy)),
        ),
        (
            "dedup_threshold",
            a.dedup_threshold.is_some()
                && a.dedup_threshold != stored.dedup.as_ref().map(|d| d.threshold),
            stored
                .dedup
                .as_ref()
                .map_or("no dedup".into(), |d| format!("threshold {}", d.threshold)),
        ),
        (
            "language",
            a.language.is_some()
                && documents::Bm25Language::parse(a.language.as_deref()).ok()
                    != documents::Bm25Language::parse(stored.language.as_deref()).ok(),
            stored.language.clone().unwrap_or_else(|| "english".into()),
        ),
        (
            "tenant_key",
            tenant_key_differs,
            format!("{:?}", stored_key.as_ref().map(|(k, _)| k)),
        ),
    ]
    .into_iter()
    .filter(|(_, d, _)| *d)
    .map(|(field, _, was)| (field, format!("{field} (the collection has {was})")))
    .collect();
    if let Some((first, _)) = differs.first() {
        let list: Vec<&str> = differs.iter().map(|(_, m)| m.as_str()).collect();
        return Err(Error::conflict(format!(
            "collection {:?} exists and its creation-time settings cannot change: {}; ingest into a new collection to use other settings",
            c.name(),
            list.join(", ")
        ))
        .with_field(*first));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_core::ErrorKind;

    #[test]
    fn tenant_key_specs_parse_or_name_the_field() {
        assert_eq!(
            parse_tenant_key("org").unwrap(),
            ("org".to_string(), FieldType::Keyword)
        );
        assert_eq!(
            parse_tenant_key("org:integer").unwrap(),
            ("org".to_string(), FieldType::Integer)
        );
        for bad in ["org:float", ":keyword"] {
            let e = parse_tenant_key(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput);
            assert_eq!(e.field(), Some("tenant_key"));
        }
    }

    #[test]
    fn unknown_json_options_are_refused() {
        assert!(serde_json::from_str::<IngestOptions>(r#"{"chunk":"x"}"#).is_err());
        // The key file is never read from a request body.
        assert!(serde_json::from_str::<IngestOptions>(r#"{"redaction_key_file":"/k"}"#).is_err());
        let o: IngestOptions =
            serde_json::from_str(r#"{"chunking":"fixed","no_splade":true}"#).unwrap();
        assert!(o.no_splade);
    }
}
