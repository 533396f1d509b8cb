//! Documents in, answers out: `sextant ingest` (files, directories or JSONL records → the
//! engine's document layer), text queries for `sextant search` (`--text`, `--queries`) and
//! `sextant ask` (retrieval → cited context → optionally a language model).
//!
//! The work is `sextant_service` (the plan, model loading, ingest options, document sources)
//! over `sextant_engine::documents`; this module turns flags into requests, shows progress and
//! prints results.

use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use sextant_embed::Precision;
use sextant_engine::documents;
use sextant_engine::documents::context::{self, Context as RagContext};
use sextant_engine::documents::search::{DocumentHit, Explanation};
use sextant_service::sources::{FileDocuments, JsonlDocuments, RecordFields};
use sextant_service::{AskRequest, IngestOptions, LlmRequest, Service, TextSearchRequest};
use sextant_text::LanguageSource;

use crate::search::RetrievalArgs;

/// `ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Collection (created on first ingest).
    pub name: String,
    /// Files or directories (recursed): text, Markdown, HTML, PDF, DOCX, EPUB, e-mail (.eml),
    /// source code (chunked by function and class), and CSV/TSV and mbox files whose rows and
    /// messages become documents `FILE#KEY`. A file that cannot be read (encrypted, damaged,
    /// a scanned PDF, a ragged CSV) is skipped with a warning saying why.
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
    /// Embedding model directory, used when the collection is created [default:
    /// models/all-MiniLM-L6-v2]; later ingests and queries use the collection's own model,
    /// and a model given for an existing collection must be that one (refused otherwise,
    /// naming both).
    #[arg(long)]
    pub model: Option<String>,
    /// SPLADE model for the collection's learned sparse space (at creation only) [default:
    /// models/splade-mini when it exists, as `scripts/setup-models.sh` installs it].
    #[arg(long, conflicts_with = "no_splade")]
    pub splade: Option<String>,
    /// Create the collection without a SPLADE space (ingestion about 1.6× faster; no
    /// `--mode splade`).
    #[arg(long)]
    pub no_splade: bool,
    /// Encrypt the collection at rest when this ingest creates it (needs the master key:
    /// `--master-key-file` or $SEXTANT_MASTER_KEY); refused for an existing collection that is
    /// not encrypted.
    #[arg(long)]
    pub encrypt: bool,
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
    /// Numeric precision of the embedding and SPLADE models: f32; bf16 (2–2.5× faster on CPUs
    /// with AMX, about 1.7× on AMD Zen 4); int8 (about 2.1× on AMX, 1.3× with VNNI alone); or
    /// auto (the fastest within cosine 0.999 of f32, measured at load). Vectors of every
    /// precision mix in one collection.
    #[arg(long, default_value = "auto", value_parser = crate::embed::parse_precision)]
    pub precision: Precision,
    /// Chunks embedded per batch (one WAL record each).
    #[arg(long, default_value_t = documents::ingest::DEFAULT_BATCH_CHUNKS)]
    pub batch: usize,
    /// Make the new collection multi-tenant: payload key `KEY` (string tenants) or
    /// `KEY:integer`. A JSONL record's field of that name gives its tenant (with
    /// `--all-tenants`), or `--tenant` gives every document's.
    #[arg(long, value_name = "KEY[:TYPE]")]
    pub tenant_key: Option<String>,
    /// Detect duplicates at creation (exact copies of the normalised text and near-duplicates
    /// by MinHash, within a tenant): keep (record `duplicate_of` in the payload), link (record,
    /// and collapse copies in search and ask) or skip (do not store a copy) [default: off].
    #[arg(long, value_name = "POLICY")]
    pub dedup: Option<String>,
    /// Near-duplicate threshold: estimated Jaccard similarity of word 3-shingles, in (0, 1]
    /// [default: 0.5].
    #[arg(long, requires = "dedup", value_name = "SIMILARITY")]
    pub dedup_threshold: Option<f64>,
    /// The language BM25 analyses text in, at creation: `auto` (each chunk its own detected
    /// language, English when unsure; a query the language whose terms the index holds most), a
    /// language with a stemmer (`french` or `fr`; see
    /// docs/languages.md) or another detectable language's ISO 639-1 code (no stemming)
    /// [default: english].
    #[arg(long, value_name = "LANG")]
    pub language: Option<String>,
    #[command(flatten)]
    pub tenant: crate::db::TenantArgs,
}

impl IngestArgs {
    /// The service's options from the flags.
    fn options(&self) -> IngestOptions {
        IngestOptions {
            model: self.model.clone(),
            splade: self.splade.clone(),
            no_splade: self.no_splade,
            chunking: self.chunking.clone(),
            chunk_tokens: self.chunk_tokens,
            chunk_overlap: self.chunk_overlap,
            parent_tokens: self.parent_tokens,
            redact: self.redact.clone(),
            redact_kinds: self.redact_kinds.clone(),
            tenant_key: self.tenant_key.clone(),
            dedup: self.dedup.clone(),
            dedup_threshold: self.dedup_threshold,
            language: self.language.clone(),
            precision: Some(self.precision.to_string()),
            batch: Some(self.batch),
            encrypt: self.encrypt,
            redaction_key_file: self.redaction_key.clone(),
        }
    }
}

/// Runs `ingest`.
pub fn run_ingest(db_args: &crate::db::DbArgs, a: IngestArgs) -> Result<()> {
    if a.paths.is_empty() && a.jsonl.is_none() {
        bail!("give files or directories to ingest, or --jsonl FILE");
    }
    let svc = crate::db::service(db_args)?;
    let scope = match crate::db::collection(svc.database(), &a.name) {
        Ok(c) => a.tenant.scope(c.name(), c.schema())?,
        Err(_) => {
            // A new collection: the scope follows the tenant key it will get.
            let mut schema = sextant_engine::Schema {
                spaces: Vec::new(),
                payload_indexes: Vec::new(),
                tenant_key: None,
                documents: None,
                ttl: None,
                sparse_spaces: Vec::new(),
            };
            if let Some(spec) = &a.tenant_key {
                sextant_service::ingest::set_tenant_key(&mut schema, spec)?;
            }
            a.tenant.scope(&a.name, &schema)?
        }
    };
    let bar = ProgressBar::new_spinner()
        .with_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    let t0 = Instant::now();
    let warn_bar = bar.clone();
    let mut files = FileDocuments::new(a.paths.clone())
        .with_warnings(move |w| warn_bar.suspend(|| eprintln!("warning: {w}")));
    let jsonl = match &a.jsonl {
        Some(path) => {
            let f = std::fs::File::open(path)
                .with_context(|| format!("cannot open {}", path.display()))?;
            let fields = RecordFields {
                id_field: a.id_field.clone(),
                text_field: a.text_field.clone(),
                title_field: a.title_field.clone(),
            };
            Some(JsonlDocuments::new(
                BufReader::new(f),
                path.display().to_string(),
                fields,
            ))
        }
        None => None,
    };
    let mut docs = files.by_ref().chain(jsonl.into_iter().flatten());
    let mut tick = |st: &documents::ingest::IngestStats| {
        let s = t0.elapsed().as_secs_f64().max(1e-9);
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
    let report = svc.ingest(&a.name, &scope, &a.options(), &mut docs, &mut tick)?;
    drop(docs);
    bar.finish_and_clear();
    let (skipped_files, unreadable_files) = (files.skipped(), files.unreadable());
    let s = report.seconds;
    if db_args.json {
        let mut v = serde_json::to_value(&report)?;
        v["skipped_files"] = json!(skipped_files);
        v["unreadable_files"] = json!(unreadable_files);
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!(
            "ingested {} documents ({} replaced, {} unchanged) as {} chunks into {:?} in {s:.1} s ({:.1} documents/s, {:.1} chunks/s)",
            report.documents, report.replaced, report.unchanged, report.chunks, a.name,
            report.documents_per_s, report.chunks_per_s
        );
        let st = &report.stages;
        let share = |x: f64| 100.0 * x / s.max(1e-9);
        println!(
            "stages: load {:.1} s ({:.0}%), read {:.1} s ({:.0}%), chunk {:.1} s ({:.0}%), models {:.1} s ({:.0}%: embed {:.1} s, {}{}), write {:.1} s ({:.0}%), merge {:.1} s ({:.0}%)",
            st.load_s, share(st.load_s), st.read_s, share(st.read_s), st.prepare_s,
            share(st.prepare_s), st.models_s, share(st.models_s), st.dense_s, report.precision,
            report
                .splade_precision
                .as_deref()
                .map(|p| format!(", and side by side SPLADE {:.1} s, {p}", st.splade_s))
                .unwrap_or_default(),
            st.write_s, share(st.write_s), st.settle_s, share(st.settle_s)
        );
        if report.repeated_chunks > 0 {
            println!(
                "{} chunks repeated an earlier chunk's text: their vectors were copied",
                report.repeated_chunks
            );
        }
        if report.duplicates + report.near_duplicates > 0 {
            println!(
                "duplicates: {} exact copies, {} near-duplicates of other documents ({} skipped)",
                report.duplicates, report.near_duplicates, report.skipped_duplicates
            );
        }
        if !report.redactions.is_empty() {
            println!("redacted: {}", serde_json::to_string(&report.redactions)?);
        }
        if skipped_files > 0 {
            println!("skipped {skipped_files} files of no format ingest reads");
        }
        if unreadable_files > 0 {
            println!("skipped {unreadable_files} files that could not be read (see the warnings)");
        }
        if report.skipped_images > 0 {
            println!(
                "skipped {} images: the collection's embedding model embeds only text (ingest pictures into a collection made with a CLIP model)",
                report.skipped_images
            );
        }
    }
    Ok(())
}

impl RetrievalArgs {
    /// The service's request from the flags.
    pub fn request(&self, text: &str, k: Option<usize>) -> Result<TextSearchRequest> {
        let weights = self
            .weights
            .as_ref()
            .map(|w| {
                w.split(',')
                    .map(|x| x.trim().parse::<f32>())
                    .collect::<Result<Vec<f32>, _>>()
                    .with_context(|| format!("--weights {w:?}: expected numbers"))
            })
            .transpose()?;
        Ok(TextSearchRequest {
            text: text.to_string(),
            image: None,
            k,
            mode: self.mode.clone(),
            sources: self
                .sources
                .as_ref()
                .map(|s| s.split(',').map(|x| x.trim().to_string()).collect()),
            weights,
            fusion: self.fusion.clone(),
            rerank: self.rerank.clone(),
            rerank_top: self.rerank_top,
            rerank_blend: self.rerank_blend,
            source_k: self.source_k,
            mmr: self.mmr,
            group_size: self.group_size,
            filter: None,
            precision: self.precision.map(|p: Precision| p.to_string()),
            ef: None,
            exact: false,
            adapter: self.no_adapter.then_some(false),
            query_language: self.query_language.clone(),
            expand: self.expand.clone(),
            rm3_docs: self.rm3_docs,
            rm3_terms: self.rm3_terms,
            rm3_weight: self.rm3_weight,
            rewrites: self.rewrites,
            llm: self.expand_llm.as_ref().map(|url| LlmRequest {
                url: url.clone(),
                model: Some(self.expand_llm_model.clone()),
                timeout_s: None,
            }),
        })
    }
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
    /// HNSW candidate list size of the dense source.
    pub ef: Option<usize>,
    /// Payload filter (JSON) applied to every source.
    pub filter: Option<Value>,
    /// Tenant flags, giving the scope applied to every source.
    pub tenant: &'a crate::db::TenantArgs,
    /// TREC run output.
    pub run_out: Option<&'a Path>,
    /// JSON output.
    pub json_out: bool,
    /// Print what each source did.
    pub explain: bool,
    /// Search by this picture (base64) instead of text.
    pub image: Option<String>,
}

/// Text queries: one (`--text`) or a BEIR `queries.jsonl` (`--queries`), ranked documents out
/// (the best chunk per document), optionally as a TREC run.
pub fn run_text_search(svc: &Service, t: TextSearch<'_>) -> Result<()> {
    let c = crate::db::collection(svc.database(), t.name)?;
    let scope = t.tenant.scope(c.name(), c.schema())?;
    let mut template = t.retrieval.request("", Some(t.k))?;
    template.filter = t.filter.clone();
    template.ef = t.ef;
    template.image = t.image.clone();
    // Refuse a bad request before the first query (and with no queries at all).
    sextant_service::plan::plan(&template)?;
    let mut run: Vec<(String, Vec<DocumentHit>)> = Vec::new();
    let mut explained: Vec<Explanation> = Vec::new();
    let bar = ProgressBar::new(t.queries.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} queries ({per_sec})")
            .expect("valid template"),
    );
    for (qid, text) in &t.queries {
        let q = TextSearchRequest {
            text: text.clone(),
            ..template.clone()
        };
        let (hits, why) = svc.text_search_explained(t.name, &scope, &q)?;
        run.push((qid.clone(), hits));
        explained.push(why);
        bar.inc(1);
    }
    bar.finish_and_clear();
    let tag = format!(
        "sextant-{}",
        t.retrieval
            .mode
            .as_deref()
            .unwrap_or(sextant_service::DEFAULT_MODE)
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
        if t.explain {
            for ((qid, _), why) in run.iter().zip(&explained) {
                for line in explain_lines(why) {
                    eprintln!("{qid}: {line}");
                }
            }
        }
    } else if t.json_out {
        let out: Vec<Value> = run
            .iter()
            .zip(&explained)
            .map(|((q, docs), why)| {
                let mut o = json!({"query": q, "documents": docs});
                if t.explain {
                    o["explain"] = json!(why);
                }
                o
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for ((_, docs), why) in run.iter().zip(&explained) {
            if t.explain {
                for line in explain_lines(why) {
                    println!("# {line}");
                }
            }
            for (rank, d) in docs.iter().enumerate() {
                let p = &d.chunks[0].payload;
                let snippet: String = p["text"].as_str().unwrap_or("").chars().take(100).collect();
                let copies = if d.copies.is_empty() {
                    String::new()
                } else {
                    format!(" [also: {}]", d.copies.join(", "))
                };
                println!(
                    "{:>3}. {}{copies} ({:.4}) {}: {snippet}",
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

/// What each source of a text search did, one line each: its depth, weight and hits, and for
/// BM25 the query's analysis language and its weighted terms (best first).
fn explain_lines(why: &Explanation) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    if !why.rewrites.is_empty() {
        lines.push(format!(
            "multi-query rewrites: {}",
            why.rewrites.join(" | ")
        ));
    }
    if let Some(p) = &why.hypothetical {
        lines.push(format!("hyde passage: {p}"));
    }
    let sources = why
        .sources
        .iter()
        .map(|s| {
            let mut line = format!(
                "{} (k {}, weight {}): {} hits",
                serde_json::to_value(s.source)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                s.k,
                s.weight,
                s.hits
            );
            if let Some(l) = &s.language {
                let lang = l
                    .language
                    .map_or("no language".to_string(), |l| l.to_string());
                let how = match (l.source, l.detected) {
                    (LanguageSource::Detected, Some(d)) => format!("detected {d}"),
                    (LanguageSource::Detected, None) => "detected".into(),
                    (LanguageSource::Given, _) => "given by --query-language".into(),
                    (LanguageSource::Configured, _) => "the collection's".into(),
                    (LanguageSource::Index, Some(d)) => {
                        format!("chosen by the index; detection guessed {d}")
                    }
                    (LanguageSource::Index, None) => "chosen by the index".into(),
                };
                line.push_str(&format!("; query analysed in {lang} ({how})"));
            }
            if let Some(f) = &s.adapter {
                line.push_str(&format!("; query mapped by the collection's adapter {f}"));
            }
            if !s.terms.is_empty() {
                let mut terms = s.terms.clone();
                terms.sort_by(|a, b| b.1.total_cmp(&a.1));
                let list: Vec<String> = terms.iter().map(|(t, w)| format!("{t} {w:.3}")).collect();
                line.push_str(&format!("; terms: {}", list.join(", ")));
            }
            if !s.expansion.is_empty() {
                let list: Vec<String> = s
                    .expansion
                    .iter()
                    .map(|(t, w)| format!("{t} {w:.3}"))
                    .collect();
                line.push_str(&format!("; rm3 query: {}", list.join(", ")));
            }
            line
        })
        .collect::<Vec<String>>();
    lines.extend(sources);
    lines
}

/// Reads BEIR `queries.jsonl` as (id, text).
pub fn read_queries(path: &Path) -> Result<Vec<(String, String)>> {
    let f = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    Ok(sextant_service::sources::read_queries(
        BufReader::new(f),
        &path.display().to_string(),
    )?)
}

/// `ask`.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// Collection or alias (made by `ingest`).
    pub name: String,
    /// The question.
    pub question: String,
    /// Chunks to retrieve before packing the context.
    #[arg(long, default_value_t = sextant_service::DEFAULT_ASK_K)]
    pub k: usize,
    /// Context budget in model tokens.
    #[arg(long, default_value_t = sextant_service::DEFAULT_ASK_BUDGET)]
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
    #[arg(long, default_value = sextant_service::DEFAULT_LLM_MODEL)]
    pub llm_model: String,
    /// Seconds to wait for the language model.
    #[arg(long, default_value_t = sextant_service::DEFAULT_LLM_TIMEOUT_S)]
    pub llm_timeout: u64,
}

/// Runs `ask`.
pub fn run_ask(db_args: &crate::db::DbArgs, a: AskArgs) -> Result<()> {
    let svc = crate::db::service(db_args)?;
    let c = crate::db::collection(svc.database(), &a.name)?;
    let scope = a.tenant.scope(c.name(), c.schema())?;
    let mut retrieval = a.retrieval.request("", None)?;
    retrieval.filter = crate::db::parse_filter_json(a.filter.as_deref())?;
    let req = AskRequest {
        question: a.question.clone(),
        k: Some(a.k),
        budget: Some(a.budget),
        retrieval,
        llm: a.llm.as_ref().map(|url| LlmRequest {
            url: url.clone(),
            model: Some(a.llm_model.clone()),
            timeout_s: Some(a.llm_timeout),
        }),
    };
    let r = svc.ask(&a.name, &scope, &req)?;
    print_answer(db_args.json, &a.question, &r.context, r.answer.as_deref())
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
