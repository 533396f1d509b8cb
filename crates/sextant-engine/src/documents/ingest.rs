//! Document ingestion: documents → chunks → (redaction) → embeddings and sparse weights →
//! points, one atomic WAL record per batch of documents.
//!
//! A document whose content hash is unchanged is skipped. A changed document's new chunks and
//! the deletion of its old chunks go into the same record ([`Collection::replace`]), so a crash
//! or a concurrent reader never sees a document with both or neither.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;

use serde::Serialize;
use serde_json::{json, Map, Value};
use sextant_core::{Filter, PointId, SparseVector};
use sextant_text::chunk::{
    self, hierarchical, semantic, Chunk, HierarchyOptions, SemanticOptions, Strategy,
};
use sextant_text::{OffsetMap, PiiKind, RedactionMode, Redactor};

use super::{model_err, DenseModel, DocumentSettings, RedactionKey, SparseModel, BM25, SPLADE};
use crate::error::{EngineError, Result};
use crate::{Collection, PointInput, Scope, SparseInput, TenantId, Vectors};

/// Chunks embedded and written per batch.
pub const DEFAULT_BATCH_CHUNKS: usize = 256;
/// The payload key where every chunk records when its document's current version was
/// written (RFC 3339, UTC, by the collection's clock): the age `delete_older_than` judges.
/// An unchanged document re-ingested keeps its time; a changed one gets a new one.
pub const INGESTED_AT: &str = "ingested_at";

/// The payload keys ingestion writes on a chunk itself (beside a record's own fields, which
/// these replace).
pub const CHUNK_KEYS: &[&str] = &[
    "doc_id",
    "chunk_index",
    "start",
    "end",
    "title",
    "section",
    "page",
    "text",
    "content_hash",
    INGESTED_AT,
    "duplicate_of",
    "duplicate_kind",
    "duplicate_similarity",
    super::DEDUP_KEYS,
    "dedup_sig",
    "source",
    "modified",
    "parent",
    "pii",
    super::LANGUAGE,
    super::DOC_LANGUAGE,
];
/// Page size when looking up a document's stored chunks.
const CHUNK_PAGE: usize = 10_000;
/// Stored documents sharing a dedup key that are compared with a new one, at most.
const CANDIDATES: usize = 256;

/// A document to ingest.
#[derive(Debug, Clone, Default)]
pub struct Document {
    /// Document id (unique in the collection).
    pub id: String,
    /// Title ("" when none); prefixed to every chunk for embedding and BM25.
    pub title: String,
    /// The text to chunk.
    pub text: String,
    /// Where it came from (a path or URL).
    pub source: Option<String>,
    /// Last modification time of the source (RFC 3339).
    pub modified: Option<String>,
    /// Other fields, stored in every chunk's payload.
    pub fields: Map<String, Value>,
    /// Maps byte offsets of `text` back to the source file when `text` was extracted from it
    /// (HTML); `None`: `text` is the source.
    pub source_map: Option<OffsetMap>,
    /// Paged sources (PDF): where each page starts in `text`, ascending (page `i + 1` starts
    /// at `pages[i]`). Each chunk then records the `page` (from 1) it starts on, and its
    /// `start`/`end` stay offsets into `text` (byte offsets into a PDF file mean nothing), so
    /// such a document has no `source_map`.
    pub pages: Option<Vec<usize>>,
    /// The tenant the document belongs to (multi-tenant collections): when `None`, the
    /// record's field at the tenant key, else the ingester's scope tenant.
    pub tenant: Option<TenantId>,
    /// An image (PNG, JPEG or WebP bytes). The document is then one chunk whose dense vector
    /// is the image's embedding (the collection's model must embed images: a CLIP model),
    /// with `title` and `text` as its caption for BM25, SPLADE and citations, and
    /// [`MEDIA`] `"image"` in its payload.
    pub image: Option<Vec<u8>>,
}

/// Payload key marking what a chunk's dense vector was computed from when it is not its text:
/// `"image"`.
pub const MEDIA: &str = "media";

/// What [`Ingester::add`] did with a document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New document, with this many chunks.
    Added(usize),
    /// Changed document; its old chunks are replaced by this many.
    Replaced(usize),
    /// Same content hash as stored: nothing written.
    Unchanged,
    /// A duplicate of another stored document, not written (the `skip` dedup policy).
    Duplicate,
}

/// Counters of an ingestion run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestStats {
    /// Documents written (new or changed).
    pub documents: usize,
    /// Of which replaced an older version.
    pub replaced: usize,
    /// Documents skipped as unchanged.
    pub unchanged: usize,
    /// Chunks written.
    pub chunks: usize,
    /// PII redactions by kind.
    pub redactions: BTreeMap<String, usize>,
    /// Documents that are exact copies (normalised text) of another document (dedup on).
    pub duplicates: usize,
    /// Documents that are near-duplicates of another document (dedup on).
    pub near_duplicates: usize,
    /// Of those, documents not written under the `skip` policy.
    pub skipped_duplicates: usize,
    /// Chunks whose text another chunk of the run already had (within a batch, or among the
    /// last [`REPEAT_MEMORY`] distinct chunk texts): their vectors were copied, not computed.
    pub repeated_chunks: usize,
    /// Seconds spent in each stage.
    pub stages: IngestStages,
}

/// Seconds an ingestion run spent per stage (wall clock; the models use all their threads
/// inside their stages, and run side by side).
#[derive(Debug, Clone, Default, Serialize)]
pub struct IngestStages {
    /// Chunking, redaction, language detection, duplicate detection, payloads.
    pub prepare_s: f64,
    /// The dense model (texts and images), its own time.
    pub dense_s: f64,
    /// The SPLADE model, its own time.
    pub splade_s: f64,
    /// The two models together (wall time): they run at the same time, so `dense_s` and
    /// `splade_s` may add up to more than this.
    pub models_s: f64,
    /// Writing: WAL records, BM25 and index updates, the final sync.
    pub write_s: f64,
}

impl IngestStages {
    /// The stages `flush` times.
    fn flushed(&self) -> f64 {
        self.models_s + self.write_s
    }
}

/// Distinct chunk texts whose vectors an ingestion run remembers, so a chunk repeated across
/// batches (boilerplate, a header on every page) is not embedded again.
pub const REPEAT_MEMORY: usize = 4096;

/// The vectors of recently ingested chunk texts (bounded: cleared when full).
#[derive(Default)]
struct Repeats {
    dense: HashMap<String, Vec<f32>>,
    splade: HashMap<String, SparseVector>,
}

impl Repeats {
    fn remember<T>(map: &mut HashMap<String, T>, text: &str, v: &T)
    where
        T: Clone,
    {
        if map.len() >= REPEAT_MEMORY {
            map.clear();
        }
        map.insert(text.to_owned(), v.clone());
    }
}

/// Runs `compute` on the distinct texts of `texts` not in `memory`, and returns one result per
/// text (copies for repeats) and how many were not computed.
fn distinct<T: Clone>(
    texts: &[&str],
    memory: &mut HashMap<String, T>,
    compute: impl FnOnce(&[&str]) -> Result<Vec<T>>,
) -> Result<(Vec<T>, usize)> {
    let mut todo: Vec<&str> = Vec::new();
    let mut slot: HashMap<&str, usize> = HashMap::new();
    for &t in texts {
        if !memory.contains_key(t) && !slot.contains_key(t) {
            slot.insert(t, todo.len());
            todo.push(t);
        }
    }
    let computed = if todo.is_empty() {
        Vec::new()
    } else {
        compute(&todo)?
    };
    if computed.len() != todo.len() {
        return Err(EngineError::Model(format!(
            "the model returned {} results for {} texts",
            computed.len(),
            todo.len()
        )));
    }
    let out = texts
        .iter()
        .map(|t| match slot.get(t) {
            Some(&i) => computed[i].clone(),
            None => memory[*t].clone(),
        })
        .collect();
    for (t, v) in todo.iter().zip(&computed) {
        Repeats::remember(memory, t, v);
    }
    Ok((out, texts.len() - todo.len()))
}

/// `f`'s result and the seconds it took.
fn timed<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = std::time::Instant::now();
    let r = f();
    (r, t.elapsed().as_secs_f64())
}

/// The dense vectors of the pending chunks, in order (text chunks through the text side with
/// repeats copied, images through the image side), and how many text chunks were repeats.
fn dense_vectors(
    dense: &dyn DenseModel,
    pending: &[Pending],
    texts: &[&str],
    memory: &mut HashMap<String, Vec<f32>>,
) -> Result<(Vec<Vec<f32>>, usize)> {
    let (images, text_rows): (Vec<usize>, Vec<usize>) =
        (0..pending.len()).partition(|&i| pending[i].image.is_some());
    let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); pending.len()];
    let mut repeated = 0;
    if !text_rows.is_empty() {
        let batch: Vec<&str> = text_rows.iter().map(|&i| texts[i]).collect();
        let (rows, r) = distinct(&batch, memory, |todo| {
            dense
                .embed(todo, false)
                .map_err(|e| model_err("embedding chunks", e))
        })?;
        repeated = r;
        for (&i, v) in text_rows.iter().zip(rows) {
            vectors[i] = v;
        }
    }
    if !images.is_empty() {
        let batch: Vec<&[u8]> = images
            .iter()
            .map(|&i| pending[i].image.as_deref().unwrap_or_default())
            .collect();
        let rows = dense
            .embed_images(&batch)
            .map_err(|e| model_err("embedding images", e))?;
        if rows.len() != batch.len() {
            return Err(EngineError::Model(format!(
                "the embedding model returned {} vectors for {} images",
                rows.len(),
                batch.len()
            )));
        }
        for (&i, v) in images.iter().zip(rows) {
            vectors[i] = v;
        }
    }
    Ok((vectors, repeated))
}

/// A document found to duplicate another.
#[derive(Debug, Clone)]
struct Dup {
    /// The first copy's document id (a copy of a copy points to the first).
    of: String,
    /// `exact` or `near`.
    kind: &'static str,
    /// Estimated Jaccard similarity (1 for exact copies).
    similarity: f64,
}

/// The duplicate-detection keys of one document.
struct DedupKeys {
    exact: Option<String>,
    bands: Vec<String>,
    sig: Option<Vec<u32>>,
}

impl DedupKeys {
    fn of(title: &str, text: &str) -> Self {
        use sextant_text::dedup;
        let full = format!("{title}\n{text}");
        let sig = dedup::signature(&full);
        DedupKeys {
            exact: dedup::exact_key(&full).map(|k| format!("x:{k}")),
            bands: sig
                .as_deref()
                .map(|s| {
                    dedup::band_keys(s)
                        .into_iter()
                        .map(|b| format!("b{b}"))
                        .collect()
                })
                .unwrap_or_default(),
            sig,
        }
    }
    /// A picture's keys: its bytes (SHA-256) make an exact copy; pictures have no
    /// near-duplicate keys (a caption or file name says nothing about the pixels).
    fn of_image(bytes: &[u8]) -> Self {
        use sha2::{Digest, Sha256};
        let digest: String = Sha256::digest(bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        DedupKeys {
            exact: Some(format!("i:{digest}")),
            bands: Vec::new(),
            sig: None,
        }
    }
    fn all(&self) -> Vec<String> {
        self.exact.iter().chain(&self.bands).cloned().collect()
    }
}

struct Pending {
    point: PointInput,
    embed_text: String,
    /// The image whose embedding is the dense vector (image documents).
    image: Option<Vec<u8>>,
}

/// Writes documents into a document collection.
pub struct Ingester<'a> {
    c: &'a Collection,
    scope: Scope,
    dense: &'a dyn DenseModel,
    splade: Option<&'a dyn SparseModel>,
    settings: DocumentSettings,
    redactor: Option<Redactor>,
    pending: Vec<Pending>,
    deletes: Vec<PointId>,
    pending_docs: HashSet<String>,
    batch_chunks: usize,
    stats: IngestStats,
    /// Dedup keys of the documents written by this ingester (tenant-qualified) → the first
    /// copy's id and signature: duplicates within one run, before their batch is written.
    seen: HashMap<String, (String, Option<Vec<u32>>)>,
    /// Vectors of recent chunk texts.
    repeats: Repeats,
}

impl std::fmt::Debug for Ingester<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingester")
            .field("collection", &self.c.name())
            .field("settings", &self.settings)
            .field("pending", &self.pending.len())
            .field("stats", &self.stats)
            .finish()
    }
}

impl<'a> Ingester<'a> {
    /// An ingester for a document collection, checking that the models are the collection's.
    /// `splade` is required when the collection has a SPLADE space.
    ///
    /// In a multi-tenant collection `scope` names the tenant the documents belong to, or is
    /// [`Scope::AllTenants`] when each document names its own ([`Document::tenant`] or the
    /// record's field at the tenant key). Chunk ids then start with the tenant (as JSON), so two
    /// tenants may use the same document id.
    pub fn new(
        c: &'a Collection,
        scope: Scope,
        dense: &'a dyn DenseModel,
        splade: Option<&'a dyn SparseModel>,
    ) -> Result<Self> {
        c.resolve(&scope)?;
        let settings = DocumentSettings::of(c)?;
        settings.validate(dense.max_tokens())?;
        super::check_models(c, Some(dense), splade)?;
        let has_splade = c.schema().sparse_spaces.iter().any(|s| s.name == SPLADE);
        if has_splade && splade.is_none() {
            return Err(EngineError::invalid(
                "splade",
                format!(
                    "collection {:?} has a SPLADE space: give its SPLADE model to ingest into it",
                    c.name()
                ),
            ));
        }
        // Hash mode needs the key, given by `with_redaction_key`; until then no redactor.
        let redactor = match &settings.redaction {
            Some(spec) if spec.mode == "mask" => Some(redactor(spec, None)?),
            _ => None,
        };
        Ok(Ingester {
            c,
            scope,
            dense,
            splade: if has_splade { splade } else { None },
            settings,
            redactor,
            pending: Vec::new(),
            deletes: Vec::new(),
            pending_docs: HashSet::new(),
            batch_chunks: DEFAULT_BATCH_CHUNKS,
            stats: IngestStats::default(),
            seen: HashMap::new(),
            repeats: Repeats::default(),
        })
    }

    /// The key of a hash-mode redacting collection (required before the first document; an
    /// error for a collection that does not hash). A key whose fingerprint is not the stored
    /// one is refused: its tokens would not match the ones already stored.
    pub fn with_redaction_key(mut self, key: &RedactionKey) -> Result<Self> {
        let spec = match &self.settings.redaction {
            Some(spec) if spec.mode == "hash" => spec,
            _ => {
                return Err(EngineError::invalid(
                    "redaction_key",
                    format!(
                        "collection {:?} does not redact in hash mode: a redaction key is not used",
                        self.c.name()
                    ),
                ))
            }
        };
        if spec.key_id.as_deref() != Some(key.id().as_str()) {
            return Err(EngineError::Conflict(format!(
                "the redaction key is not the one collection {:?} was made with (fingerprint {} expected)",
                self.c.name(),
                spec.key_id.as_deref().unwrap_or("none")
            )));
        }
        self.redactor = Some(redactor(spec, Some(key))?);
        Ok(self)
    }

    /// Chunks embedded per batch (and per WAL record).
    pub fn with_batch_chunks(mut self, n: usize) -> Self {
        self.batch_chunks = n.max(1);
        self
    }

    /// Counters so far.
    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Adds a document; it is written with the batch it lands in (call [`Ingester::finish`]
    /// at the end).
    pub fn add(&mut self, doc: Document) -> Result<Outcome> {
        let t0 = std::time::Instant::now();
        let flushed = self.stats.stages.flushed();
        let outcome = self.prepare(doc);
        // Preparation is the time not spent in a flush `prepare` needed.
        self.stats.stages.prepare_s +=
            t0.elapsed().as_secs_f64() - (self.stats.stages.flushed() - flushed);
        let outcome = outcome?;
        if self.pending.len() >= self.batch_chunks {
            self.flush()?;
        }
        Ok(outcome)
    }

    /// Chunks, redacts and checks a document into the pending batch.
    fn prepare(&mut self, doc: Document) -> Result<Outcome> {
        if doc.id.is_empty() {
            return Err(EngineError::invalid("id", "document id is empty".into()));
        }
        if let Some(pages) = &doc.pages {
            if pages.windows(2).any(|w| w[0] > w[1]) || pages.iter().any(|&p| p > doc.text.len()) {
                return Err(EngineError::invalid(
                    "pages",
                    format!(
                        "document {:?}: page starts must ascend within its text",
                        doc.id
                    ),
                ));
            }
        }
        let redacting = self.settings.redaction.is_some();
        if redacting && self.redactor.is_none() {
            return Err(EngineError::invalid(
                "redaction_key",
                format!(
                    "collection {:?} redacts in hash mode: give its redaction key",
                    self.c.name()
                ),
            ));
        }
        if doc.image.is_some() && !self.dense.embeds_images() {
            return Err(EngineError::invalid(
                "image",
                format!(
                    "document {:?} is an image, and the embedding model of collection {:?} \
                     embeds only text: ingest images into a collection made with a CLIP model",
                    doc.id,
                    self.c.name()
                ),
            ));
        }
        let tenant = self.tenant_of(&doc)?;
        let mut doc = doc;
        if let Some(r) = &self.redactor {
            refuse_pii(r, &doc.id, "id", &doc.id)?;
            if let Some(s) = &doc.source {
                refuse_pii(r, &doc.id, "source", s)?;
            }
            if let Some(m) = &doc.modified {
                refuse_pii(r, &doc.id, "modification time", m)?;
            }
            if let Some(t) = &tenant {
                refuse_pii(r, &doc.id, "tenant", &t.to_json().to_string())?;
            }
            let tenant_key = self.c.schema().tenant_key.clone();
            let fields = std::mem::take(&mut doc.fields);
            doc.fields = redact_fields(r, &doc.id, fields, tenant_key.as_deref())?;
        }
        let key = chunk_prefix(tenant.as_ref(), &doc.id);
        if self.pending_docs.contains(&key) {
            // The same id twice in one batch: write the first before looking at the second.
            self.flush()?;
        }
        // Redact the whole text first (a value is never cut in two by a chunk boundary), then
        // chunk the redacted text; offsets map back through the redaction and the extraction.
        let (text, red_map) = match &self.redactor {
            Some(r) => {
                let red = r.redact(&doc.text);
                (red.text, Some(red.map))
            }
            None => (doc.text.clone(), None),
        };
        let title = match &self.redactor {
            Some(r) => r.redact(&doc.title).text,
            None => doc.title.clone(),
        };
        // Over what is stored: a hash of the original text would let a masked value be
        // recovered by hashing guesses.
        let hash = match &doc.image {
            // The image's bytes take part: a changed picture with the same caption is new.
            Some(img) => content_hash(&title, &format!("{text}\u{0}{:016x}", fnv64(img))),
            None => content_hash(&title, &text),
        };
        let old = self.stored_chunks(tenant.as_ref(), &doc.id, true)?;
        if let Some(p) = old.first() {
            if p.payload.as_ref().and_then(|v| v.get("content_hash")) == Some(&json!(hash)) {
                self.stats.unchanged += 1;
                return Ok(Outcome::Unchanged);
            }
        }
        let dedup = match &self.settings.dedup {
            Some(spec) => {
                let keys = match &doc.image {
                    Some(img) => DedupKeys::of_image(img),
                    None => DedupKeys::of(&title, &text),
                };
                let found = self.find_duplicate(tenant.as_ref(), &doc.id, &keys, spec.threshold)?;
                if let Some(d) = &found {
                    if d.kind == "exact" {
                        self.stats.duplicates += 1;
                    } else {
                        self.stats.near_duplicates += 1;
                    }
                    if spec.policy == "skip" && old.is_empty() {
                        self.stats.skipped_duplicates += 1;
                        return Ok(Outcome::Duplicate);
                    }
                }
                let root = found.as_ref().map_or(doc.id.clone(), |d| d.of.clone());
                let t = tenant
                    .as_ref()
                    .map(|t| t.to_json().to_string())
                    .unwrap_or_default();
                for k in keys.all() {
                    self.seen
                        .entry(format!("{t}\u{1}{k}"))
                        .or_insert_with(|| (root.clone(), keys.sig.clone()));
                }
                Some((keys, found))
            }
            None => None,
        };
        // The picture's bytes go to the one chunk that embeds them (moved, not copied).
        let mut image = doc.image.take();
        let is_image = image.is_some();
        let to_text = |r: Range<usize>| -> Range<usize> {
            match &red_map {
                Some(m) => m.range_to_source(r),
                None => r,
            }
        };
        let to_source = |r: Range<usize>| -> Range<usize> {
            let r = to_text(r);
            match &doc.source_map {
                Some(m) => m.range_to_source(r),
                None => r,
            }
        };
        // The page a range of the (redacted) text starts on, for paged documents.
        let page_of = |r: Range<usize>| {
            doc.pages
                .as_deref()
                .and_then(|p| sextant_text::extract::page_at(p, to_text(r).start))
        };
        // A chunk that is only a heading (the section it opens did not fit with it) carries
        // nothing to retrieve: its heading is already every following chunk's `section`.
        // (Source code has no headings: a `#` line there is a comment.)
        let code = code_language(&doc)?;
        let chunks: Vec<_> = if is_image {
            // An image is one chunk; its caption is not cut.
            vec![(
                Chunk {
                    start: 0,
                    end: text.len(),
                    section: None,
                },
                None,
            )]
        } else {
            self.chunk(&text, code)?
                .into_iter()
                .filter(|(c, _)| code.is_some() || !heading_only(&text[c.start..c.end]))
                .collect()
        };
        let languages = chunk_languages(&doc, &text, &chunks);
        let mut new_ids = HashSet::new();
        let prefix = self.title_prefix(&title);
        let ingested_at = crate::clock::format_expiry(self.c.now_ms());
        let n_chunks = chunks.len().max(usize::from(!title.is_empty()));
        for i in 0..n_chunks {
            let (ch, parent) = match chunks.get(i) {
                Some((c, p)) => (c.clone(), p.clone()),
                // A document with a title and no text is one title-only chunk.
                None => (
                    Chunk {
                        start: 0,
                        end: 0,
                        section: None,
                    },
                    None,
                ),
            };
            let body = &text[ch.start..ch.end];
            let embed_text = embed_text(&prefix, body);
            let id = PointId::Str(format!("{key}#{i}"));
            new_ids.insert(id.clone());
            let src = to_source(ch.start..ch.end);
            let mut payload = doc.fields.clone();
            if let (Some(t), Some(k)) = (&tenant, &self.c.schema().tenant_key) {
                payload.insert(k.clone(), t.to_json());
            }
            payload.insert("doc_id".into(), json!(doc.id));
            payload.insert("chunk_index".into(), json!(i));
            payload.insert("start".into(), json!(src.start));
            payload.insert("end".into(), json!(src.end));
            payload.insert("title".into(), json!(title));
            payload.insert("section".into(), json!(ch.section));
            if let Some(page) = page_of(ch.start..ch.end) {
                payload.insert("page".into(), json!(page));
            }
            payload.insert("text".into(), json!(body));
            if let Some(l) = languages
                .chunks
                .get(i)
                .copied()
                .flatten()
                .or(languages.doc.as_deref())
            {
                payload.insert(super::LANGUAGE.into(), json!(l));
            }
            if let Some(l) = &languages.doc {
                payload.insert(super::DOC_LANGUAGE.into(), json!(l));
            }
            payload.insert("content_hash".into(), json!(hash));
            payload.insert(INGESTED_AT.into(), json!(ingested_at));
            if is_image {
                payload.insert(MEDIA.into(), json!("image"));
            }
            if let Some((keys, found)) = &dedup {
                if let Some(d) = found {
                    payload.insert("duplicate_of".into(), json!(d.of));
                    payload.insert("duplicate_kind".into(), json!(d.kind));
                    payload.insert("duplicate_similarity".into(), json!(d.similarity));
                }
                if i == 0 {
                    payload.insert(super::DEDUP_KEYS.into(), json!(keys.all()));
                    if let Some(sig) = &keys.sig {
                        payload.insert("dedup_sig".into(), json!(sextant_text::dedup::encode(sig)));
                    }
                }
            }
            if let Some(s) = &doc.source {
                payload.insert("source".into(), json!(s));
            }
            if let Some(m) = &doc.modified {
                payload.insert("modified".into(), json!(m));
            }
            if let Some(p) = parent {
                let ps = to_source(p.clone());
                let mut parent =
                    json!({"start": ps.start, "end": ps.end, "text": &text[p.clone()]});
                if let Some(page) = page_of(p) {
                    parent["page"] = json!(page);
                }
                payload.insert("parent".into(), parent);
            }
            if let Some(r) = &self.redactor {
                let mut pii = redaction_counts(r, body);
                if i == 0 {
                    for (k, n) in redaction_counts(r, &title) {
                        *pii.entry(k).or_default() += n;
                    }
                }
                for (k, n) in &pii {
                    *self.stats.redactions.entry(k.clone()).or_default() += n;
                }
                payload.insert("pii".into(), json!(pii));
            }
            self.pending.push(Pending {
                point: PointInput {
                    id,
                    vectors: Vectors::Single(Vec::new()),
                    payload: Value::Object(payload),
                    sparse: vec![(BM25.into(), SparseInput::Text(embed_text.clone()))],
                    expires_at: None,
                },
                embed_text,
                image: image.take(),
            });
        }
        let outcome = if old.is_empty() {
            Outcome::Added(n_chunks)
        } else {
            self.stats.replaced += 1;
            Outcome::Replaced(n_chunks)
        };
        self.deletes.extend(
            old.into_iter()
                .map(|p| p.id)
                .filter(|id| !new_ids.contains(id)),
        );
        self.pending_docs.insert(key);
        self.stats.documents += 1;
        self.stats.chunks += n_chunks;
        Ok(outcome)
    }

    /// Embeds and writes the pending chunks (one WAL record). The dense model and SPLADE run
    /// at the same time, on their own threads: each leaves cores idle in its serial parts
    /// (tokenisation, pooling, the last uneven batch), and the other fills them.
    pub fn flush(&mut self) -> Result<()> {
        if self.pending.is_empty() && self.deletes.is_empty() {
            return Ok(());
        }
        let (dense, splade) = (self.dense, self.splade);
        let pending = &self.pending;
        let Repeats {
            dense: dense_memory,
            splade: splade_memory,
        } = &mut self.repeats;
        let texts: Vec<&str> = pending.iter().map(|p| p.embed_text.as_str()).collect();
        let texts = texts.as_slice();
        let dense_job = move || timed(move || dense_vectors(dense, pending, texts, dense_memory));
        let splade_job = move || {
            timed(move || match splade {
                Some(m) if !texts.is_empty() => distinct(texts, splade_memory, |todo| {
                    m.encode(todo, false)
                        .map_err(|e| model_err("SPLADE encoding chunks", e))
                })
                .map(|(v, _)| Some(v)),
                _ => Ok(None),
            })
        };
        let t = std::time::Instant::now();
        let ((vectors, dense_s), (sparse, splade_s)) = if splade.is_some() && !texts.is_empty() {
            std::thread::scope(|s| {
                let other = s.spawn(splade_job);
                let d = dense_job();
                let sp = other
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (d, sp)
            })
        } else {
            (dense_job(), splade_job())
        };
        self.stats.stages.models_s += t.elapsed().as_secs_f64();
        self.stats.stages.dense_s += dense_s;
        self.stats.stages.splade_s += splade_s;
        let (vectors, repeated) = vectors?;
        self.stats.repeated_chunks += repeated;
        let mut sparse = sparse?.map(Vec::into_iter);
        let points: Vec<PointInput> = self
            .pending
            .drain(..)
            .zip(vectors)
            .map(|(p, v)| {
                let mut point = p.point;
                point.vectors = Vectors::Single(v);
                if let Some(s) = sparse.as_mut().and_then(Iterator::next) {
                    point.sparse.push((SPLADE.into(), SparseInput::Vector(s)));
                }
                point
            })
            .collect();
        let t = std::time::Instant::now();
        self.c
            .replace(&self.scope, std::mem::take(&mut self.deletes), points)?;
        self.stats.stages.write_s += t.elapsed().as_secs_f64();
        self.pending_docs.clear();
        Ok(())
    }

    /// Writes what is pending and forces it to stable storage.
    pub fn finish(mut self) -> Result<IngestStats> {
        self.flush()?;
        let t = std::time::Instant::now();
        self.c.sync()?;
        self.stats.stages.write_s += t.elapsed().as_secs_f64();
        Ok(self.stats)
    }

    /// Removes a document (all its chunks, in the scope: the scope's tenant, or every
    /// tenant's document of that id on the all-tenants path) in one record; returns how many
    /// chunks it had.
    pub fn remove(&mut self, doc_id: &str) -> Result<usize> {
        self.flush()?;
        let tenant = match &self.scope {
            Scope::Tenant(t) => Some(t.clone()),
            _ => None,
        };
        let ids: Vec<PointId> = self
            .stored_chunks(tenant.as_ref(), doc_id, false)?
            .into_iter()
            .map(|p| p.id)
            .collect();
        let n = ids.len();
        self.c.replace(&self.scope, ids, Vec::new())?;
        Ok(n)
    }

    /// The tenant a document belongs to (`None` in a collection without tenants).
    fn tenant_of(&self, doc: &Document) -> Result<Option<TenantId>> {
        let Some(key) = &self.c.schema().tenant_key else {
            return match doc.tenant {
                Some(_) => Err(EngineError::invalid(
                    "tenant",
                    format!(
                        "document {:?} names a tenant, but collection {:?} is not multi-tenant",
                        doc.id,
                        self.c.name()
                    ),
                )),
                None => Ok(None),
            };
        };
        let from_field = match doc.fields.get(key) {
            Some(v) => Some(TenantId::from_json(v).map_err(|e| {
                EngineError::invalid(
                    "tenant",
                    format!("document {:?}: field {key:?} (the tenant key): {e}", doc.id),
                )
            })?),
            None => None,
        };
        let scoped = match &self.scope {
            Scope::Tenant(t) => Some(t.clone()),
            _ => None,
        };
        let tenant = doc
            .tenant
            .clone()
            .or(from_field.clone())
            .or(scoped.clone())
            .ok_or_else(|| {
                EngineError::invalid(
                    "tenant",
                    format!(
                    "document {:?} has no tenant: give it field {key:?} or ingest into one tenant",
                    doc.id
                ),
                )
            })?;
        for other in [from_field, scoped].into_iter().flatten() {
            if other != tenant {
                return Err(EngineError::TenantConflict(format!(
                    "document {:?} belongs to tenant {tenant}, not to tenant {other}",
                    doc.id
                )));
            }
        }
        Ok(Some(tenant))
    }

    /// Every stored chunk of a document (of `tenant`, when given), page by page.
    fn stored_chunks(
        &self,
        tenant: Option<&TenantId>,
        doc_id: &str,
        with_payload: bool,
    ) -> Result<Vec<crate::PointOut>> {
        let filter =
            Filter::from_json(&json!({"must": [{"key": "doc_id", "match": {"value": doc_id}}]}))
                .map_err(EngineError::from)?;
        let scope = match tenant {
            Some(t) => Scope::Tenant(t.clone()),
            None => self.scope.clone(),
        };
        let mut out = Vec::new();
        let mut offset: Option<String> = None;
        loop {
            let page = self.c.scroll(
                &scope,
                Some(&filter),
                CHUNK_PAGE,
                offset.as_deref(),
                None,
                with_payload,
            )?;
            out.extend(page.points);
            match page.next_offset {
                Some(o) => offset = Some(o),
                None => return Ok(out),
            }
        }
    }

    /// The first copy this document duplicates, if any: exact copies first (the same exact
    /// key), then the most similar near-duplicate at or above `threshold` among the documents
    /// sharing an LSH band, within the document's tenant, among the documents written by this
    /// ingester and the stored ones (other document ids only).
    fn find_duplicate(
        &self,
        tenant: Option<&TenantId>,
        doc_id: &str,
        keys: &DedupKeys,
        threshold: f64,
    ) -> Result<Option<Dup>> {
        use sextant_text::dedup::{decode, similarity};
        let mut best: Option<Dup> = None;
        let mut consider = |of: &str, exact: bool, sig: Option<&[u32]>| {
            if of == doc_id {
                return;
            }
            let sim = if exact {
                1.0
            } else {
                match (sig, keys.sig.as_deref()) {
                    (Some(a), Some(b)) => similarity(a, b),
                    _ => 0.0,
                }
            };
            let kind = if exact { "exact" } else { "near" };
            if !exact && sim < threshold {
                return;
            }
            let better = match &best {
                None => true,
                Some(b) => (exact && b.kind != "exact") || (b.kind == kind && sim > b.similarity),
            };
            if better {
                best = Some(Dup {
                    of: of.to_string(),
                    kind,
                    similarity: sim,
                });
            }
        };
        let t = tenant.map(|t| t.to_json().to_string()).unwrap_or_default();
        let all = keys.all();
        for k in &all {
            if let Some((of, sig)) = self.seen.get(&format!("{t}\u{1}{k}")) {
                consider(of, Some(k) == keys.exact.as_ref(), sig.as_deref());
            }
        }
        if !all.is_empty() {
            let filter = Filter::from_json(&json!({
                "must": [{"key": super::DEDUP_KEYS, "match": {"any": all}}],
                "must_not": [{"key": "doc_id", "match": {"value": doc_id}}],
            }))
            .map_err(EngineError::from)?;
            let scope = match tenant {
                Some(t) => Scope::Tenant(t.clone()),
                None => self.scope.clone(),
            };
            let page = self
                .c
                .scroll(&scope, Some(&filter), CANDIDATES, None, None, true)?;
            for p in page.points {
                let Some(pl) = p.payload.as_ref() else {
                    continue;
                };
                let of = pl
                    .get("duplicate_of")
                    .or_else(|| pl.get("doc_id"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                let exact = keys.exact.as_ref().is_some_and(|x| {
                    pl[super::DEDUP_KEYS]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|v| v.as_str() == Some(x.as_str())))
                });
                let sig = pl["dedup_sig"].as_str().and_then(decode);
                consider(&of, exact, sig.as_deref());
            }
        }
        Ok(best)
    }

    fn title_prefix(&self, title: &str) -> String {
        title_prefix(self.dense, self.settings.chunking.max_tokens, title)
    }

    /// Chunks a text by the collection's strategy: each chunk with its parent's range
    /// (hierarchical chunking).
    fn chunk(
        &self,
        text: &str,
        code: Option<chunk::CodeLanguage>,
    ) -> Result<Vec<(Chunk, Option<Range<usize>>)>> {
        let c = &self.settings.chunking;
        let tokens = |s: &str| self.dense.token_spans(s);
        let max = c.max_tokens;
        if let Some(lang) = code {
            // Source code: cut at functions, classes and impls, whatever the strategy.
            return Ok(chunk::code(text, lang, max, &tokens)
                .into_iter()
                .map(|c| (c, None))
                .collect());
        }
        let overlap = c
            .overlap
            .unwrap_or((max as f32 * chunk::DEFAULT_OVERLAP_FRACTION) as usize);
        let plain = |strategy| -> Vec<(Chunk, Option<Range<usize>>)> {
            chunk::chunk(text, strategy, &tokens)
                .into_iter()
                .map(|c| (c, None))
                .collect()
        };
        Ok(match c.strategy.as_str() {
            "sentences" => plain(Strategy::Sentences { max_tokens: max }),
            "paragraphs" => plain(Strategy::Paragraphs { max_tokens: max }),
            "fixed" => plain(Strategy::Fixed {
                max_tokens: max,
                overlap,
            }),
            "semantic" => {
                let mut embed = |sentences: &[&str]| self.dense.embed(sentences, false);
                semantic(text, max, &tokens, &mut embed, &SemanticOptions::default())
                    .map_err(|e| model_err("embedding sentences for semantic chunking", e))?
                    .into_iter()
                    .map(|c| (c, None))
                    .collect()
            }
            "hierarchical" => {
                let h = hierarchical(
                    text,
                    &HierarchyOptions {
                        parent_max_tokens: c.parent_max_tokens.unwrap_or(max * 4),
                        child_max_tokens: max,
                        child_overlap: c.overlap.unwrap_or(overlap),
                    },
                    &tokens,
                );
                h.children
                    .iter()
                    .zip(&h.parent_of)
                    .map(|(ch, &p)| {
                        let par = &h.parents[p];
                        (ch.clone(), Some(par.start..par.end))
                    })
                    .collect()
            }
            other => {
                return Err(EngineError::invalid(
                    "chunking",
                    format!("unknown chunking {other:?}"),
                ))
            }
        })
    }
}

/// What chunk ids of a document start with: the document id, after the tenant (as JSON, so
/// the boundary is unambiguous) in a multi-tenant collection.
fn chunk_prefix(tenant: Option<&TenantId>, doc_id: &str) -> String {
    match tenant {
        Some(t) => format!("{}/{doc_id}", t.to_json()),
        None => doc_id.to_string(),
    }
}

/// Whether every non-blank line of a chunk is a Markdown ATX heading.
fn heading_only(body: &str) -> bool {
    body.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .all(|l| {
            let rest = l.trim_start_matches('#');
            rest.len() < l.len()
                && l.len() - rest.len() <= 6
                && (rest.is_empty() || rest.starts_with(' '))
        })
}

/// The PII redactor of a collection's settings (hash mode: with its key).
fn redactor(spec: &super::RedactionSpec, key: Option<&RedactionKey>) -> Result<Redactor> {
    let kinds = match &spec.kinds {
        Some(k) => PiiKind::parse_list(k).map_err(|e| {
            EngineError::invalid("redaction.kinds", format!("redaction kinds: {e}"))
        })?,
        None => PiiKind::ALL.to_vec(),
    };
    let mode = match (spec.mode.as_str(), key) {
        ("hash", Some(k)) => RedactionMode::hash(k.bytes()),
        ("hash", None) => {
            return Err(EngineError::invalid(
                "redaction_key",
                "hash-mode redaction needs its key".into(),
            ))
        }
        _ => RedactionMode::Mask,
    };
    Ok(Redactor::new(&kinds, mode))
}

/// Refuses a document whose `what` (a value stored as given) holds personal data.
fn refuse_pii(r: &Redactor, doc_id: &str, what: &str, value: &str) -> Result<()> {
    let found = r.redact(value);
    if found.total == 0 {
        return Ok(());
    }
    let kinds: Vec<String> = found
        .counts
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(k, _)| k.to_string())
        .collect();
    // The id itself is not repeated when it is what holds the data.
    let doc = if what == "id" {
        "a document".to_string()
    } else {
        format!("document {doc_id:?}")
    };
    Err(EngineError::invalid("document", format!(
        "{doc}: its {what} holds personal data ({}); a document's id, source, modification time and tenant are stored as given and cannot be redacted",
        kinds.join(", ")
    )))
}

/// Redacts every string of a record's other fields (keys included); a number that holds
/// personal data (a card or phone number written as a JSON number) cannot be masked in place
/// and is refused, naming the field. The tenant key is checked by the caller, not redacted.
fn redact_fields(
    r: &Redactor,
    doc_id: &str,
    fields: Map<String, Value>,
    tenant_key: Option<&str>,
) -> Result<Map<String, Value>> {
    fn walk(r: &Redactor, doc_id: &str, path: &str, v: Value) -> Result<Value> {
        Ok(match v {
            Value::String(s) => Value::String(r.redact(&s).text),
            Value::Number(n) => {
                if r.redact(&n.to_string()).total > 0 {
                    return Err(EngineError::invalid("fields", format!(
                        "document {doc_id:?}: field {path:?} is a number that holds personal data; give it as a string so it can be redacted"
                    )));
                }
                Value::Number(n)
            }
            Value::Array(a) => Value::Array(
                a.into_iter()
                    .enumerate()
                    .map(|(i, x)| walk(r, doc_id, &format!("{path}[{i}]"), x))
                    .collect::<Result<_>>()?,
            ),
            Value::Object(m) => Value::Object(
                m.into_iter()
                    .map(|(k, x)| {
                        let p = format!("{path}.{k}");
                        let x = walk(r, doc_id, &p, x)?;
                        Ok((r.redact(&k).text, x))
                    })
                    .collect::<Result<_>>()?,
            ),
            other => other,
        })
    }
    fields
        .into_iter()
        .map(|(k, v)| {
            if Some(k.as_str()) == tenant_key {
                return Ok((k, v));
            }
            let v = walk(r, doc_id, &k, v)?;
            Ok((r.redact(&k).text, v))
        })
        .collect()
}

/// Redaction counts by kind in an already redacted text (its `[LABEL` tokens).
fn redaction_counts(r: &Redactor, text: &str) -> BTreeMap<String, usize> {
    r.kinds()
        .iter()
        .filter_map(|k| {
            let n = text.matches(&format!("[{}", k.label())).count();
            (n > 0).then(|| (k.name().to_string(), n))
        })
        .collect()
}

/// The title as prefixed to chunks: cut to the tokens the chunk budget (`chunk_tokens`)
/// leaves free, so no embedded text exceeds the model's limit.
pub(crate) fn title_prefix(dense: &dyn DenseModel, chunk_tokens: usize, title: &str) -> String {
    if title.is_empty() {
        return String::new();
    }
    let free = dense
        .max_tokens()
        .saturating_sub(2)
        .saturating_sub(chunk_tokens);
    let spans = dense.token_spans(title);
    if spans.len() <= free {
        return title.to_string();
    }
    match free {
        0 => String::new(),
        n => title[..spans[n - 1].end].to_string(),
    }
}

/// The text embedded for a chunk: the (cut) title, a newline, the chunk's text.
pub(crate) fn embed_text(prefix: &str, body: &str) -> String {
    if prefix.is_empty() {
        body.to_string()
    } else {
        format!("{prefix}\n{body}")
    }
}

/// FNV-1a 64 of bytes.
fn fnv64(bytes: impl IntoIterator<Item = impl std::borrow::Borrow<u8>>) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b.borrow());
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The change detector of a document (FNV-1a 64 over title and text; not a security boundary).
pub fn content_hash(title: &str, text: &str) -> String {
    format!(
        "{:016x}",
        fnv64(title.bytes().chain([0u8]).chain(text.bytes()))
    )
}

/// The languages of a document and of each of its chunks.
struct Languages<'a> {
    /// The document's: the record's `language` field, else the language most of the reliably
    /// detected chunk text is in, else the whole text's when reliably detected.
    doc: Option<String>,
    /// Each chunk's own: the record's field, or the chunk's reliable detection.
    chunks: Vec<Option<&'a str>>,
}

/// Detects the language of each chunk and of the document (see [`Languages`]).
fn chunk_languages<'a>(
    doc: &'a Document,
    text: &str,
    chunks: &[(Chunk, Option<Range<usize>>)],
) -> Languages<'a> {
    if let Some(given) = doc.fields.get(super::LANGUAGE).and_then(Value::as_str) {
        return Languages {
            doc: Some(given.to_string()),
            chunks: vec![Some(given); chunks.len()],
        };
    }
    let found: Vec<Option<&'static str>> = chunks
        .iter()
        .map(|(c, _)| {
            sextant_text::language::detect(&text[c.start..c.end])
                .filter(|d| d.reliable)
                .map(|d| d.code)
        })
        .collect();
    let mut bytes: HashMap<&str, usize> = HashMap::new();
    for ((c, _), l) in chunks.iter().zip(&found) {
        if let Some(l) = l {
            *bytes.entry(l).or_default() += c.end - c.start;
        }
    }
    // The most text; ties to the smaller code, so the choice never depends on hash order.
    let doc_language = bytes
        .into_iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        .map(|(l, _)| l.to_string())
        .or_else(|| {
            sextant_text::language::detect(text)
                .filter(|d| d.reliable)
                .map(|d| d.code.to_string())
        });
    Languages {
        doc: doc_language,
        chunks: found.into_iter().map(|l| l.map(|l| l as &'a str)).collect(),
    }
}

/// The programming language of a document chunked as source code: its `code_language` field
/// (`rust`, `python`, …), which file ingestion sets for source files and a record may give.
fn code_language(doc: &Document) -> Result<Option<chunk::CodeLanguage>> {
    match doc.fields.get(CODE_LANGUAGE) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => s.parse().map(Some).map_err(|e| {
            EngineError::invalid(CODE_LANGUAGE, format!("document {:?}: {e}", doc.id))
        }),
        Some(other) => Err(EngineError::invalid(
            CODE_LANGUAGE,
            format!(
                "document {:?}: {CODE_LANGUAGE} must be a string, got {other}",
                doc.id
            ),
        )),
    }
}

/// The field that makes a document source code, chunked by functions and classes: a
/// programming language name (`sextant_text::chunk::CodeLanguage`).
pub const CODE_LANGUAGE: &str = "code_language";
