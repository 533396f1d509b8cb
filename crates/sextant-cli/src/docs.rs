//! Documents in, answers out: `sextant ingest` (files, directories or JSONL records → the
//! engine's document layer), text queries for `sextant search` (`--text`, `--queries`) and
//! `sextant ask` (retrieval → cited context → optionally a language model).
//!
//! The pipeline itself (chunking, redaction, embedding, atomic replacement, the hybrid plan,
//! context assembly) is `sextant_engine::documents`; this module reads inputs, loads models,
//! shows progress and prints results.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use sextant_core::Filter;
use sextant_embed::Precision;
use sextant_engine::documents::context::{self, Context as RagContext};
use sextant_engine::documents::ingest::{Document, Ingester};
use sextant_engine::documents::search::{
    search_text, DocumentHit, Models, Source, SourceKind, TextQuery,
};
use sextant_engine::documents::{
    self as documents, ChunkingSpec, DenseModel, DocumentSettings, RedactionKey, RedactionSpec,
    SPLADE,
};
use sextant_engine::fusion::{Fusion, Normalization, DEFAULT_RRF_K};
use sextant_engine::{Collection, Database};
use sextant_text::Format;

use crate::db::RetrievalArgs;
use crate::models::{stored_path, Cross, Dense, MaxSim, Splade};

/// Where `scripts/setup-models.sh` puts the SPLADE model.
const DEFAULT_SPLADE: &str = "models/splade-mini";

/// File extensions `ingest` reads from directories.
const EXTENSIONS: &[&str] = &["txt", "text", "md", "markdown", "html", "htm", "pdf"];

/// `ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Collection (created on first ingest).
    pub name: String,
    /// Files or directories (recursed; .txt, .md, .markdown, .html, .htm, .pdf). A PDF that
    /// gives no text (encrypted, damaged, scanned) is skipped with a warning.
    pub paths: Vec<PathBuf>,
    /// JSONL records, one document per line (BEIR corpus format by default).
    #[arg(long)]
    pub jsonl: Option<PathBuf>,
    /// JSONL field holding the document id.
    #[arg(long, default_value = "_id")]
    pub id_field: String,
    /// JSONL field holding the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// JSONL field holding the title (optional in records).
    #[arg(long, default_value = "title")]
    pub title_field: String,
    /// Embedding model directory (used when the collection is created; later ingests and
    /// queries use the collection's own model).
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    pub model: String,
    /// SPLADE model for the collection's learned sparse space (at creation only) [default:
    /// models/splade-mini when it exists, as `scripts/setup-models.sh` installs it].
    #[arg(long, conflicts_with = "no_splade")]
    pub splade: Option<String>,
    /// Create the collection without a SPLADE space (ingestion about 1.6× faster; no
    /// `--mode splade`).
    #[arg(long)]
    pub no_splade: bool,
    /// Chunking at creation: sentences, paragraphs (heading-aware), fixed (token windows with
    /// overlap), semantic or hierarchical [default: sentences].
    #[arg(long)]
    pub chunking: Option<String>,
    /// Chunk budget in model tokens [default: 200, or less when the model reads fewer].
    #[arg(long)]
    pub chunk_tokens: Option<usize>,
    /// Overlap of fixed windows in tokens [default: 15% of the chunk budget].
    #[arg(long)]
    pub chunk_overlap: Option<usize>,
    /// Parent chunk budget of hierarchical chunking [default: 4 × the chunk budget].
    #[arg(long)]
    pub parent_tokens: Option<usize>,
    /// Redact PII at creation (e-mail, phone, card, IBAN, IP, national id): mask or hash. The
    /// original text is then not stored.
    #[arg(long)]
    pub redact: Option<String>,
    /// PII kinds to redact, comma-separated: email, phone, card, iban, ip, national_id
    /// [default: all].
    #[arg(long, requires = "redact")]
    pub redact_kinds: Option<String>,
    /// Key file of hash-mode redaction (at least 16 bytes, mode 0600; never stored with the
    /// data) [default: the key in $SEXTANT_REDACTION_KEY]. Needed for every ingest into a
    /// collection that hashes.
    #[arg(long, value_name = "FILE")]
    pub redaction_key: Option<PathBuf>,
    /// Numeric precision of the embedding model: f32, or bf16 (about 1.7× faster on CPUs with
    /// AVX512-BF16; vectors within cosine 0.9999 of f32, so both mix in one collection).
    #[arg(long, default_value = "f32", value_parser = crate::embed::parse_precision)]
    pub precision: Precision,
    /// Chunks embedded per batch (one WAL record each).
    #[arg(long, default_value_t = documents::ingest::DEFAULT_BATCH_CHUNKS)]
    pub batch: usize,
    /// Make the new collection multi-tenant: payload key `KEY` (string tenants) or
    /// `KEY:integer`. A JSONL record's field of that name gives its tenant (with
    /// `--all-tenants`), or `--tenant` gives every document's.
    #[arg(long, value_name = "KEY[:TYPE]")]
    pub tenant_key: Option<String>,
    #[command(flatten)]
    pub tenant: crate::db::TenantArgs,
}

/// Loads the embedding model a document collection was built with.
fn dense_model(c: &Collection, precision: Precision) -> Result<Dense> {
    let stored = documents::stored_model(c, documents::DENSE).with_context(|| {
        format!(
            "collection {:?} has no model-backed space {:?} (make it with `sextant ingest`)",
            c.name(),
            documents::DENSE
        )
    })?;
    Dense::load(&stored_path(&stored)?, precision)
}

/// Loads the SPLADE model of a document collection's SPLADE space.
fn splade_model(c: &Collection) -> Result<Splade> {
    let stored = documents::stored_model(c, SPLADE).with_context(|| {
        format!(
            "collection {:?} has no SPLADE space (give --splade DIR when it is first ingested)",
            c.name()
        )
    })?;
    Splade::load(&stored_path(&stored)?)
}

/// The models an ingest into a document collection needs.
struct CollectionModels {
    dense: Dense,
    splade: Option<Splade>,
}

/// Runs `ingest`.
pub fn run_ingest(db_args: &crate::db::DbArgs, a: IngestArgs) -> Result<()> {
    if a.paths.is_empty() && a.jsonl.is_none() {
        bail!("give files or directories to ingest, or --jsonl FILE");
    }
    let db = crate::db::open(db_args)?;
    let key = match &a.redaction_key {
        Some(path) => Some(RedactionKey::from_file(path).context("--redaction-key")?),
        None => RedactionKey::from_env()
            .with_context(|| format!("${}", documents::REDACTION_KEY_ENV))?,
    };
    let (c, models) = match db.collection(&a.name) {
        Ok(c) => {
            refuse_changed_settings(&c, &a)?;
            let splade = documents::stored_model(&c, SPLADE)
                .is_some()
                .then(|| splade_model(&c))
                .transpose()?;
            let dense = dense_model(&c, a.precision)?;
            (c, CollectionModels { dense, splade })
        }
        Err(sextant_engine::EngineError::CollectionNotFound(_)) => {
            let dense = Dense::load(&a.model, a.precision)?;
            let splade_dir = match (&a.splade, a.no_splade) {
                (Some(d), _) => Some(d.clone()),
                (None, false) if Path::new(DEFAULT_SPLADE).join("config.json").exists() => {
                    Some(DEFAULT_SPLADE.to_string())
                }
                _ => None,
            };
            let splade = splade_dir.as_deref().map(Splade::load).transpose()?;
            let mut settings = DocumentSettings::for_model(dense.max_tokens());
            settings.chunking = ChunkingSpec {
                strategy: a.chunking.clone().unwrap_or_else(|| "sentences".into()),
                max_tokens: a.chunk_tokens.unwrap_or(settings.chunking.max_tokens),
                overlap: a.chunk_overlap,
                parent_max_tokens: a.parent_tokens,
            };
            settings.redaction = match a.redact.as_deref() {
                Some("hash") => Some(RedactionSpec {
                    mode: "hash".into(),
                    key_id: Some(
                        key.as_ref()
                            .with_context(|| {
                                format!(
                                    "--redact hash needs a secret key kept outside the data: --redaction-key FILE or ${} (make one with `head -c 32 /dev/urandom > FILE && chmod 600 FILE`)",
                                    documents::REDACTION_KEY_ENV
                                )
                            })?
                            .id(),
                    ),
                    kinds: a.redact_kinds.clone(),
                }),
                Some(mode) => Some(RedactionSpec {
                    mode: mode.to_string(),
                    key_id: None,
                    kinds: a.redact_kinds.clone(),
                }),
                None => None,
            };
            let schema = documents::schema(
                &dense,
                splade.as_ref().map(|s| s as &dyn documents::SparseModel),
                &settings,
            )?;
            let mut schema = schema;
            if let Some(spec) = &a.tenant_key {
                crate::db::set_tenant_key(&mut schema, spec)?;
            }
            let c = db.create_collection(&a.name, schema)?;
            (c, CollectionModels { dense, splade })
        }
        Err(e) => return Err(e.into()),
    };
    let scope = a.tenant.scope(&c)?;
    let mut ing = Ingester::new(
        &c,
        scope,
        &models.dense,
        models
            .splade
            .as_ref()
            .map(|s| s as &dyn documents::SparseModel),
    )?
    .with_batch_chunks(a.batch);
    let hashes = matches!(
        DocumentSettings::of(&c)?.redaction,
        Some(RedactionSpec { ref mode, .. }) if mode == "hash"
    );
    match (&key, hashes) {
        (Some(k), true) => ing = ing.with_redaction_key(k)?,
        (None, true) => bail!(
            "collection {:?} redacts in hash mode: give its key with --redaction-key FILE or ${}",
            c.name(),
            documents::REDACTION_KEY_ENV
        ),
        (Some(_), false) if a.redaction_key.is_some() => bail!(
            "--redaction-key: collection {:?} does not redact in hash mode",
            c.name()
        ),
        _ => {}
    }
    let bar = ProgressBar::new_spinner()
        .with_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    let t0 = Instant::now();
    let mut skipped_files = 0usize;
    let mut unreadable_files = 0usize;
    let tick = |ing: &Ingester<'_>| {
        let s = t0.elapsed().as_secs_f64().max(1e-9);
        let st = ing.stats();
        bar.set_message(format!(
            "{} documents ({:.1}/s), {} chunks ({:.1}/s), {} unchanged",
            st.documents,
            st.documents as f64 / s,
            st.chunks,
            st.chunks as f64 / s,
            st.unchanged
        ));
        bar.tick();
    };
    for root in &a.paths {
        for file in walk(root)? {
            match read_file(root, &file)? {
                FileRead::Document(doc) => {
                    ing.add(*doc)
                        .with_context(|| format!("ingesting {}", file.display()))?;
                }
                FileRead::UnknownFormat => skipped_files += 1,
                FileRead::Unreadable => unreadable_files += 1,
            }
            tick(&ing);
        }
    }
    if let Some(path) = &a.jsonl {
        let f =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        for (line_no, line) in BufReader::new(f).lines().enumerate() {
            let at = || format!("{} line {}", path.display(), line_no + 1);
            let line = line.with_context(at)?;
            if line.trim().is_empty() {
                continue;
            }
            let doc = record(&line, &a).with_context(at)?;
            ing.add(doc).with_context(at)?;
            if line_no % 64 == 0 {
                tick(&ing);
            }
        }
    }
    let stats = ing.finish()?;
    bar.finish_and_clear();
    while c.merge()? {}
    let s = t0.elapsed().as_secs_f64();
    let mut report = serde_json::to_value(&stats)?;
    report["seconds"] = json!(s);
    report["documents_per_s"] = json!(stats.documents as f64 / s);
    report["chunks_per_s"] = json!(stats.chunks as f64 / s);
    report["skipped_files"] = json!(skipped_files);
    report["unreadable_files"] = json!(unreadable_files);
    if db_args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "ingested {} documents ({} replaced, {} unchanged) as {} chunks into {:?} in {s:.1} s ({:.1} documents/s, {:.1} chunks/s)",
            stats.documents, stats.replaced, stats.unchanged, stats.chunks, c.name(),
            stats.documents as f64 / s, stats.chunks as f64 / s
        );
        if !stats.redactions.is_empty() {
            println!("redacted: {}", serde_json::to_string(&stats.redactions)?);
        }
        if skipped_files > 0 {
            println!("skipped {skipped_files} files that are not text, Markdown, HTML or PDF");
        }
        if unreadable_files > 0 {
            println!("skipped {unreadable_files} files that gave no text (see the warnings)");
        }
    }
    Ok(())
}

/// Refuses creation-time options that differ from an existing collection's stored settings
/// (they cannot change after creation; silently ignoring them would leave, say, text
/// unredacted that the user asked to redact).
fn refuse_changed_settings(c: &Collection, a: &IngestArgs) -> Result<()> {
    let stored = DocumentSettings::of(c)?;
    let ch = &stored.chunking;
    let red = stored.redaction.as_ref();
    let has_splade = documents::stored_model(c, SPLADE).is_some();
    // The stored tenant key and its index type, against `--tenant-key KEY[:TYPE]`.
    let schema = c.schema();
    let stored = schema.tenant_key.as_deref().and_then(|k| {
        let index = schema.payload_indexes.iter().find(|p| p.key == k);
        index.map(|p| (k.to_string(), p.field_type))
    });
    let tenant_key_differs = a
        .tenant_key
        .as_deref()
        .is_some_and(|spec| crate::db::parse_tenant_key(spec).ok() != stored);
    let differs: Vec<String> = [
        (
            "--chunking",
            a.chunking.as_ref().is_some_and(|v| *v != ch.strategy),
            ch.strategy.clone(),
        ),
        (
            "--chunk-tokens",
            a.chunk_tokens.is_some_and(|v| v != ch.max_tokens),
            ch.max_tokens.to_string(),
        ),
        (
            "--chunk-overlap",
            a.chunk_overlap.is_some() && a.chunk_overlap != ch.overlap,
            format!("{:?}", ch.overlap),
        ),
        (
            "--parent-tokens",
            a.parent_tokens.is_some() && a.parent_tokens != ch.parent_max_tokens,
            format!("{:?}", ch.parent_max_tokens),
        ),
        (
            "--redact",
            a.redact
                .as_ref()
                .is_some_and(|m| Some(m) != red.map(|r| &r.mode)),
            red.map_or("none".into(), |r| r.mode.clone()),
        ),
        (
            "--redact-kinds",
            a.redact_kinds.is_some()
                && a.redact_kinds.as_ref() != red.and_then(|r| r.kinds.as_ref()),
            red.and_then(|r| r.kinds.clone())
                .unwrap_or_else(|| "all".into()),
        ),
        (
            "--splade",
            a.splade.is_some() && !has_splade,
            "no SPLADE space".into(),
        ),
        (
            "--no-splade",
            a.no_splade && has_splade,
            "a SPLADE space".into(),
        ),
        (
            "--tenant-key",
            tenant_key_differs,
            format!("{:?}", stored.as_ref().map(|(k, _)| k)),
        ),
    ]
    .into_iter()
    .filter(|(_, d, _)| *d)
    .map(|(flag, _, was)| format!("{flag} (the collection has {was})"))
    .collect();
    if !differs.is_empty() {
        bail!(
            "collection {:?} exists and its creation-time settings cannot change: {}; ingest into a new collection to use other settings",
            c.name(),
            differs.join(", ")
        );
    }
    Ok(())
}

/// Files under `root` (itself when it is a file), sorted, with a known extension.
fn walk(root: &Path) -> Result<Vec<PathBuf>> {
    let meta =
        std::fs::metadata(root).with_context(|| format!("cannot read {}", root.display()))?;
    if meta.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot list {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if has_known_extension(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn has_known_extension(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// What [`read_file`] made of a file.
enum FileRead {
    Document(Box<Document>),
    /// Not a format `ingest` reads (a file given explicitly).
    UnknownFormat,
    /// A PDF that gave no text; a warning saying why was printed.
    Unreadable,
}

/// Reads one file as a document (id: the root directory's name and the path under it, or the
/// file name for a file given directly). A PDF that gives no text is reported on stderr and
/// skipped, so one bad file never stops an ingest.
fn read_file(root: &Path, file: &Path) -> Result<FileRead> {
    if !has_known_extension(file) {
        return Ok(FileRead::UnknownFormat);
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let format = Format::detect_bytes(file, &bytes);
    let ex = if format.is_binary() {
        match sextant_text::extract_bytes(format, &bytes) {
            Ok(ex) => ex,
            Err(e) => {
                eprintln!("warning: skipping {}: {}", file.display(), error_chain(&e));
                return Ok(FileRead::Unreadable);
            }
        }
    } else {
        let source = String::from_utf8_lossy(&bytes);
        if matches!(source, std::borrow::Cow::Owned(_)) {
            eprintln!(
                "warning: {} is not valid UTF-8; invalid bytes read as U+FFFD",
                file.display()
            );
        }
        sextant_text::extract(format, &source)
    };
    if !ex.unreadable_pages.is_empty() {
        let pages: Vec<String> = ex.unreadable_pages.iter().map(usize::to_string).collect();
        eprintln!(
            "warning: {}: the PDF parser could not read page(s) {}; the other pages are ingested",
            file.display(),
            pages.join(", ")
        );
    }
    let meta = std::fs::metadata(file)?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| sextant_core::format_rfc3339(d.as_secs() as i64));
    let id = if root.is_file() {
        file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    } else {
        // `<directory name>/<path under it>`, so equal names under two roots stay apart.
        let rel = file.strip_prefix(root).unwrap_or(file);
        match root.file_name() {
            Some(d) => Path::new(d).join(rel),
            None => rel.to_path_buf(),
        }
        .to_string_lossy()
        .into_owned()
    };
    let title = ex.title.clone().unwrap_or_else(|| {
        file.file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    });
    let mut fields = Map::new();
    fields.insert("format".into(), json!(format.name()));
    Ok(FileRead::Document(Box::new(Document {
        id,
        title,
        text: ex.text,
        source: Some(file.display().to_string()),
        modified,
        fields,
        source_map: (!ex.map.is_identity()).then_some(ex.map),
        pages: ex.pages,
        tenant: None,
    })))
}

/// An error and its sources, `: `-separated (a warning has one line to say why).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// A JSONL record as a document.
fn record(line: &str, a: &IngestArgs) -> Result<Document> {
    let rec: Map<String, Value> = serde_json::from_str(line).context("not a JSON object")?;
    let id = match rec.get(&a.id_field) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => bail!("missing or empty id field {:?}", a.id_field),
    };
    let text = match rec.get(&a.text_field) {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => bail!("field {:?} is not a string", a.text_field),
    };
    let title = rec
        .get(&a.title_field)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut fields = rec;
    for k in [&a.id_field, &a.text_field, &a.title_field] {
        fields.remove(k);
    }
    Ok(Document {
        id,
        title,
        text,
        source: None,
        modified: None,
        fields,
        source_map: None,
        pages: None,
        tenant: None,
    })
}

fn parse_fusion(s: &str) -> Result<Fusion> {
    Ok(match s {
        "rrf" => Fusion::Rrf { k: DEFAULT_RRF_K },
        "weighted" => Fusion::Weighted(Normalization::MinMax),
        "weighted-z" => Fusion::Weighted(Normalization::ZScore),
        "dbsf" => Fusion::Dbsf,
        _ => bail!("unknown fusion {s:?}: expected rrf, weighted, weighted-z or dbsf"),
    })
}

/// The models a text query needs, loaded once.
struct QueryModels {
    dense: Option<Dense>,
    splade: Option<Splade>,
    reranker: Option<Box<dyn documents::PairScorer>>,
}

impl QueryModels {
    fn models(&self) -> Models<'_> {
        Models {
            dense: self.dense.as_ref().map(|m| m as &dyn DenseModel),
            splade: self
                .splade
                .as_ref()
                .map(|m| m as &dyn documents::SparseModel),
            reranker: self.reranker.as_deref(),
        }
    }
}

/// Builds the query template (text filled per query) and loads the models it needs.
fn plan(
    c: &Collection,
    r: &RetrievalArgs,
    k: usize,
    filter: Option<Filter>,
) -> Result<(TextQuery, QueryModels)> {
    let mode = r.mode.as_deref().unwrap_or(crate::db::DEFAULT_MODE);
    let kinds: Vec<SourceKind> = match mode {
        "dense" => vec![SourceKind::Dense],
        "bm25" => vec![SourceKind::Bm25],
        "splade" => vec![SourceKind::Splade],
        "hybrid" => r
            .sources
            .as_deref()
            .unwrap_or(crate::db::DEFAULT_SOURCES)
            .split(',')
            .map(|s| s.trim().parse::<SourceKind>())
            .collect::<Result<_, _>>()?,
        other => bail!("unknown mode {other:?}: expected dense, bm25, splade or hybrid"),
    };
    if mode != "hybrid" {
        let hybrid_only: Vec<&str> = [
            ("--sources", r.sources.is_some()),
            ("--weights", r.weights.is_some()),
            ("--fusion", r.fusion.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, g)| g.then_some(f))
        .collect();
        if !hybrid_only.is_empty() {
            bail!(
                "{} apply to --mode hybrid only; --mode {mode} has one source, ranked by its own scores",
                hybrid_only.join(", ")
            );
        }
    }
    if let Some(l) = r.mmr {
        if !(0.0..=1.0).contains(&l) {
            bail!("--mmr {l}: lambda must be in [0, 1]");
        }
    }
    let mut q = TextQuery::new("", &kinds, k);
    if let Some(d) = r.source_k {
        for s in &mut q.sources {
            s.k = d;
        }
    }
    if let Some(w) = &r.weights {
        let w: Vec<f32> = w
            .split(',')
            .map(|x| x.trim().parse::<f32>())
            .collect::<Result<_, _>>()
            .with_context(|| format!("--weights {w:?}: expected numbers"))?;
        if let Some(x) = w.iter().find(|x| !x.is_finite() || **x < 0.0) {
            bail!("--weights {w:?}: {x} is not a finite non-negative weight");
        }
        if w.len() != q.sources.len() {
            bail!(
                "--weights has {} values for {} sources",
                w.len(),
                q.sources.len()
            );
        }
        for (s, w) in q.sources.iter_mut().zip(w) {
            *s = Source { weight: w, ..*s };
        }
    }
    q.fusion = parse_fusion(r.fusion.as_deref().unwrap_or(crate::db::DEFAULT_FUSION))?;
    q.filter = filter;
    q.mmr_lambda = r.mmr;
    if r.group_size == Some(0) {
        bail!("--group-size must be at least 1");
    }
    q.group_size = Some(r.group_size.unwrap_or(1));
    let need_dense = kinds.contains(&SourceKind::Dense) || r.mmr.is_some();
    let need_splade = kinds.contains(&SourceKind::Splade);
    let dense = need_dense
        .then(|| dense_model(c, r.precision.unwrap_or_default()))
        .transpose()?;
    let splade = need_splade.then(|| splade_model(c)).transpose()?;
    let reranker: Option<Box<dyn documents::PairScorer>> = match r.rerank.as_deref() {
        Some("maxsim") => {
            let stored = documents::stored_model(c, documents::DENSE)
                .context("MaxSim reranking needs the collection's embedding model")?;
            Some(Box::new(MaxSim::load(&stored_path(&stored)?)?))
        }
        Some(dir) => Some(Box::new(Cross::load(dir)?)),
        None => None,
    };
    if reranker.is_some() {
        q.rerank_top = r.rerank_top.unwrap_or(crate::db::DEFAULT_RERANK_TOP);
    }
    Ok((
        q,
        QueryModels {
            dense,
            splade,
            reranker,
        },
    ))
}

/// A text search as `search --text/--queries` asks for it.
#[derive(Debug)]
pub struct TextSearch<'a> {
    /// Collection or alias.
    pub name: &'a str,
    /// (query id, text) pairs.
    pub queries: Vec<(String, String)>,
    /// Retrieval options.
    pub retrieval: &'a RetrievalArgs,
    /// Documents per query.
    pub k: usize,
    /// Payload filter applied to every source.
    pub filter: Option<Filter>,
    /// Tenant flags, giving the scope applied to every source.
    pub tenant: &'a crate::db::TenantArgs,
    /// TREC run output.
    pub run_out: Option<&'a Path>,
    /// JSON output.
    pub json_out: bool,
}

/// Text queries: one (`--text`) or a BEIR `queries.jsonl` (`--queries`), ranked documents out
/// (the best chunk per document), optionally as a TREC run.
pub fn run_text_search(db: &Database, t: TextSearch<'_>) -> Result<()> {
    let c = crate::db::collection(db, t.name)?;
    let (mut template, models) = plan(&c, t.retrieval, t.k, t.filter.clone())?;
    template.scope = t.tenant.scope(&c)?;
    let mut run: Vec<(String, Vec<DocumentHit>)> = Vec::new();
    let bar = ProgressBar::new(t.queries.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} queries ({per_sec})")
            .expect("valid template"),
    );
    for (qid, text) in &t.queries {
        let mut q = template.clone();
        q.text = text.clone();
        run.push((qid.clone(), search_text(&c, models.models(), &q)?));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let tag = format!(
        "sextant-{}",
        t.retrieval
            .mode
            .as_deref()
            .unwrap_or(crate::db::DEFAULT_MODE)
    );
    if let Some(path) = t.run_out {
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mut w = std::io::BufWriter::new(f);
        for (qid, docs) in &run {
            for (rank, d) in docs.iter().enumerate() {
                writeln!(w, "{qid} Q0 {} {} {} {tag}", d.doc_id, rank + 1, d.score)?;
            }
        }
        w.flush()?;
        eprintln!("wrote {} queries to {}", run.len(), path.display());
    } else if t.json_out {
        let out: Vec<Value> = run
            .iter()
            .map(|(q, docs)| json!({"query": q, "documents": docs}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (_, docs) in &run {
            for (rank, d) in docs.iter().enumerate() {
                let p = &d.chunks[0].payload;
                let snippet: String = p["text"].as_str().unwrap_or("").chars().take(100).collect();
                println!(
                    "{:>3}. {} ({:.4}) {}: {snippet}",
                    rank + 1,
                    d.doc_id,
                    d.score,
                    p["title"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

/// Reads BEIR `queries.jsonl` as (id, text).
pub fn read_queries(path: &Path) -> Result<Vec<(String, String)>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .with_context(|| format!("{} line {}: not JSON", path.display(), i + 1))?;
        let id = match &v["_id"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => bail!("{} line {}: missing \"_id\"", path.display(), i + 1),
        };
        out.push((id, v["text"].as_str().unwrap_or("").to_string()));
    }
    Ok(out)
}

/// `ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// Collection or alias (made by `ingest`).
    pub name: String,
    /// The question.
    pub question: String,
    /// Chunks to retrieve before packing the context.
    #[arg(long, default_value_t = 8)]
    pub k: usize,
    /// Context budget in model tokens.
    #[arg(long, default_value_t = 1024)]
    pub budget: usize,
    /// Payload filter (JSON).
    #[arg(long)]
    pub filter: Option<String>,
    #[command(flatten)]
    pub tenant: crate::db::TenantArgs,
    #[command(flatten)]
    pub retrieval: RetrievalArgs,
    /// OpenAI-compatible endpoint (`http://host:port`, `…/v1` or `…/v1/chat/completions`;
    /// Ollama serves one at http://localhost:11434). Without it the answer is the cited
    /// context itself. The API key, if any, comes from `SEXTANT_LLM_API_KEY`; it is sent only over
    /// HTTPS or to a loopback host unless `SEXTANT_LLM_ALLOW_INSECURE_KEY=1`.
    #[arg(long)]
    pub llm: Option<String>,
    /// Model name sent to the endpoint.
    #[arg(long, default_value = "gpt-4o-mini")]
    pub llm_model: String,
    /// Seconds to wait for the language model.
    #[arg(long, default_value_t = 120)]
    pub llm_timeout: u64,
}

/// Runs `ask`.
pub fn run_ask(db_args: &crate::db::DbArgs, a: AskArgs) -> Result<()> {
    let db = crate::db::open(db_args)?;
    let c = crate::db::collection(&db, &a.name)?;
    let filter = crate::db::parse_filter(a.filter.as_deref())?;
    let (mut q, mut models) = plan(&c, &a.retrieval, a.k, filter)?;
    q.scope = a.tenant.scope(&c)?;
    q.text = a.question.clone();
    // Chunks, not documents, unless --group-size asks for grouping: several chunks of one
    // document are welcome in a context.
    q.group_size = a.retrieval.group_size;
    let hits = search_text(&c, models.models(), &q)?;
    // The budget is counted in the collection's model tokens.
    let counter = match models.dense.take() {
        Some(d) => d,
        None => dense_model(&c, a.retrieval.precision.unwrap_or_default())?,
    };
    let count = |s: &str| counter.token_spans(s).len();
    let ctx = context::assemble(&hits, a.budget, &count);
    let answer = match &a.llm {
        Some(url) => Some(crate::llm::complete(
            url,
            &a.llm_model,
            &crate::llm::prompt(&a.question, &ctx),
            std::time::Duration::from_secs(a.llm_timeout),
        )?),
        None => None,
    };
    print_answer(db_args.json, &a.question, &ctx, answer.as_deref())
}

fn print_answer(
    json_out: bool,
    question: &str,
    ctx: &RagContext,
    answer: Option<&str>,
) -> Result<()> {
    if json_out {
        let v = json!({"question": question, "answer": answer, "context": ctx});
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if ctx.passages.is_empty() {
        println!("No passage matches this question.");
        return Ok(());
    }
    match answer {
        Some(text) => {
            println!("{}\n\nSources:", text.trim());
            for p in &ctx.passages {
                println!("[{}] {}", p.citation, context::citation_line(p));
            }
        }
        None => {
            println!("Context for: {question}\n");
            print!("{}", context::render(ctx));
            println!(
                "({} passages, {} of {} tokens{})",
                ctx.passages.len(),
                ctx.tokens,
                ctx.budget,
                if ctx.omitted > 0 {
                    format!("; {} more did not fit", ctx.omitted)
                } else {
                    String::new()
                }
            );
        }
    }
    Ok(())
}
