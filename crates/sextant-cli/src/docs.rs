//! Documents in, ranked documents out: `sextant ingest` (JSONL records → chunks → embeddings +
//! BM25 → points) and text queries for `sextant search` (`--text`, `--queries`, with
//! `--mode dense|bm25|hybrid`), results grouped by document.
//!
//! A collection made by `ingest` has a dense space `dense` (the model's dimension, cosine, HNSW;
//! the model's directory and fingerprint are stored with it, and a query with another model is
//! refused) and a BM25 sparse space `bm25`. Every chunk is a point with id `<doc id>#<n>` and a
//! payload with `doc_id`, `chunk_index`, `start`/`end` (byte offsets in the document text),
//! `title`, `section`, `text` and `content_hash`, plus the record's other fields.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Map, Value};
use sextant_core::{Filter, Metric, PointId};
use sextant_embed::{BertEmbedder, Embedder, EmbedderOptions, InputKind, ModelFingerprint};
use sextant_engine::fusion::{fuse, Fusion, Normalization, DEFAULT_RRF_K};
use sextant_engine::{
    Collection, Database, IndexSpec, PayloadIndexSpec, PointInput, Schema, SearchRequest,
    SpaceSpec, SparseInput, SparseKind, SparseSearchRequest, SparseSpaceSpec, Vectors,
};
use sextant_text::chunk::{chunk, Strategy};

/// Name of the dense space `ingest` creates.
pub const DENSE: &str = "dense";
/// Name of the BM25 space `ingest` creates.
pub const BM25: &str = "bm25";
/// Default chunk budget in model tokens (all-MiniLM-L6-v2 reads 256, special tokens and the
/// title prefix need the rest).
pub const DEFAULT_CHUNK_TOKENS: usize = 200;
/// Chunks embedded and written per batch.
const WRITE_BATCH: usize = 256;
/// Candidates each source contributes before fusion and grouping, per requested result.
const CANDIDATES_PER_RESULT: usize = 3;

/// `ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Collection (created on first ingest).
    pub name: String,
    /// JSONL records, one document per line.
    #[arg(long)]
    pub jsonl: PathBuf,
    /// Field holding the document id.
    #[arg(long, default_value = "_id")]
    pub id_field: String,
    /// Field holding the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// Field holding the title (optional in records).
    #[arg(long, default_value = "title")]
    pub title_field: String,
    /// Embedding model directory (used when the collection is created; later ingests and
    /// queries use the collection's own model).
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    pub model: String,
    /// Chunking: sentences, paragraphs (Markdown-aware) or fixed (token windows with 15% overlap).
    #[arg(long, default_value = "sentences")]
    pub chunking: String,
    /// Chunk budget in model tokens [default: 200, or less when the model reads fewer].
    #[arg(long)]
    pub chunk_tokens: Option<usize>,
}

/// What `search` does with text queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Embedding similarity.
    Dense,
    /// BM25.
    Bm25,
    /// Both, fused.
    Hybrid,
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

/// Loads the collection's model and checks it is the one its vectors came from.
fn collection_model(c: &Collection) -> Result<BertEmbedder> {
    let spec = c
        .schema()
        .spaces
        .iter()
        .find(|s| s.name == DENSE)
        .and_then(|s| s.model.clone())
        .with_context(|| format!("collection {:?} has no model-backed space {DENSE:?} (make it with `sextant ingest`)", c.name()))?;
    let path = spec["path"].as_str().context("stored model has no path")?;
    let stored: ModelFingerprint = serde_json::from_value(spec["fingerprint"].clone())
        .context("stored model fingerprint does not parse")?;
    let model = BertEmbedder::load(path, EmbedderOptions::default())
        .with_context(|| format!("loading the collection's model from {path}"))?;
    stored.check(model.fingerprint()).with_context(|| {
        format!(
            "the model at {path} is not the one collection {:?} was built with",
            c.name()
        )
    })?;
    Ok(model)
}

fn schema_for(model: &BertEmbedder, path: &str) -> Schema {
    Schema {
        spaces: vec![SpaceSpec {
            name: DENSE.into(),
            dim: model.dim(),
            metric: Metric::Cosine,
            index: IndexSpec::default(),
            model: Some(json!({"path": path, "fingerprint": model.fingerprint()})),
        }],
        payload_indexes: vec![PayloadIndexSpec {
            key: "doc_id".into(),
            field_type: sextant_engine::FieldType::Keyword,
        }],
        tenant_key: None,
        sparse_spaces: vec![SparseSpaceSpec {
            name: BM25.into(),
            kind: SparseKind::Bm25 {
                k1: sextant_text::bm25::DEFAULT_K1,
                b: sextant_text::bm25::DEFAULT_B,
                analyzer: json!({"split": "alphanumeric", "lowercase": true, "min_chars": 1,
                                 "max_bytes": 40, "stop_words": null, "stemmer": "english"}),
            },
        }],
    }
}

fn content_hash(title: &str, text: &str) -> String {
    // FNV-1a 64: a change detector, not a security boundary.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in title.bytes().chain([0u8]).chain(text.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Runs `ingest`.
pub fn run_ingest(db_args: &crate::db::DbArgs, a: IngestArgs) -> Result<()> {
    let db = crate::db::open(db_args)?;
    let (c, model) = match db.collection(&a.name) {
        Ok(c) => {
            let m = collection_model(&c)?;
            (c, m)
        }
        Err(sextant_engine::EngineError::CollectionNotFound(_)) => {
            let m = BertEmbedder::load(&a.model, EmbedderOptions::default())?;
            let c = db.create_collection(&a.name, schema_for(&m, &a.model))?;
            (c, m)
        }
        Err(e) => return Err(e.into()),
    };
    let limit = model.max_seq_length().saturating_sub(2).max(1);
    let chunk_tokens = a.chunk_tokens.unwrap_or(DEFAULT_CHUNK_TOKENS.min(limit));
    if chunk_tokens == 0 || chunk_tokens > limit {
        bail!(
            "--chunk-tokens must be 1..={} for this model (its limit is {} tokens)",
            model.max_seq_length() - 2,
            model.max_seq_length()
        );
    }
    let strategy = match a.chunking.as_str() {
        "sentences" => Strategy::Sentences {
            max_tokens: chunk_tokens,
        },
        "paragraphs" => Strategy::Paragraphs {
            max_tokens: chunk_tokens,
        },
        "fixed" => Strategy::Fixed {
            max_tokens: chunk_tokens,
            overlap: (chunk_tokens as f32 * sextant_text::chunk::DEFAULT_OVERLAP_FRACTION) as usize,
        },
        other => bail!("unknown chunking {other:?}: expected sentences, paragraphs or fixed"),
    };
    let file = std::fs::File::open(&a.jsonl)
        .with_context(|| format!("cannot open {}", a.jsonl.display()))?;
    let bar = ProgressBar::new_spinner()
        .with_style(ProgressStyle::with_template("{spinner} {msg}").expect("valid template"));
    let t0 = Instant::now();
    let (mut docs, mut skipped, mut chunks) = (0usize, 0usize, 0usize);
    let mut pending: Vec<(PointInput, String)> = Vec::new();
    let tokens = |s: &str| model.tokenizer().token_spans(s).unwrap_or_default();
    for (line_no, line) in BufReader::new(file).lines().enumerate() {
        let at = || format!("{} line {}", a.jsonl.display(), line_no + 1);
        let line = line.with_context(at)?;
        if line.trim().is_empty() {
            continue;
        }
        let rec: Map<String, Value> =
            serde_json::from_str(&line).with_context(|| format!("{}: not a JSON object", at()))?;
        let id = match rec.get(&a.id_field) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => bail!("{}: missing or empty id field {:?}", at(), a.id_field),
        };
        let text = rec
            .get(&a.text_field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let title = rec
            .get(&a.title_field)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let hash = content_hash(&title, &text);
        // Unchanged documents are a no-op; changed ones lose their old chunks first.
        let doc_filter =
            Filter::from_json(&json!({"must": [{"key": "doc_id", "match": {"value": id}}]}))
                .expect("valid filter");
        let old = c.scroll(Some(&doc_filter), 1, None, None, true)?;
        if let Some(p) = old.points.first() {
            if p.payload.as_ref().and_then(|v| v.get("content_hash")) == Some(&json!(hash)) {
                skipped += 1;
                continue;
            }
            c.delete_by_filter(&doc_filter)?;
        }
        let mut extra = rec.clone();
        for k in [&a.id_field, &a.text_field, &a.title_field] {
            extra.remove(k);
        }
        let pieces = chunk(&text, strategy, &tokens);
        let pieces = if pieces.is_empty() && !title.is_empty() {
            vec![sextant_text::chunk::Chunk {
                start: 0,
                end: 0,
                section: None,
            }]
        } else {
            pieces
        };
        for (i, ch) in pieces.iter().enumerate() {
            let body = &text[ch.start..ch.end];
            let full = if title.is_empty() {
                body.to_string()
            } else {
                format!("{title}\n{body}")
            };
            let mut payload = extra.clone();
            payload.insert("doc_id".into(), json!(id));
            payload.insert("chunk_index".into(), json!(i));
            payload.insert("start".into(), json!(ch.start));
            payload.insert("end".into(), json!(ch.end));
            payload.insert("title".into(), json!(title));
            payload.insert("section".into(), json!(ch.section));
            payload.insert("text".into(), json!(body));
            payload.insert("content_hash".into(), json!(hash));
            pending.push((
                PointInput {
                    id: PointId::Str(format!("{id}#{i}")),
                    vectors: Vectors::Single(Vec::new()),
                    payload: Value::Object(payload),
                    sparse: vec![(BM25.into(), SparseInput::Text(full.clone()))],
                },
                full,
            ));
        }
        docs += 1;
        chunks += pieces.len();
        if pending.len() >= WRITE_BATCH {
            write_batch(&c, &model, &mut pending)?;
            let s = t0.elapsed().as_secs_f64();
            bar.set_message(format!(
                "{docs} documents ({:.0}/s), {chunks} chunks ({:.0}/s), {skipped} unchanged",
                docs as f64 / s,
                chunks as f64 / s
            ));
            bar.tick();
        }
    }
    write_batch(&c, &model, &mut pending)?;
    c.sync()?;
    bar.finish_and_clear();
    while c.merge()? {}
    let s = t0.elapsed().as_secs_f64();
    let report = json!({"documents": docs, "unchanged": skipped, "chunks": chunks, "seconds": s,
                        "documents_per_s": docs as f64 / s, "chunks_per_s": chunks as f64 / s});
    if db_args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "ingested {docs} documents ({skipped} unchanged) as {chunks} chunks into {:?} in {s:.1} s ({:.1} documents/s, {:.1} chunks/s)",
            c.name(), docs as f64 / s, chunks as f64 / s
        );
    }
    Ok(())
}

fn write_batch(
    c: &Collection,
    model: &BertEmbedder,
    pending: &mut Vec<(PointInput, String)>,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let texts: Vec<&str> = pending.iter().map(|(_, t)| t.as_str()).collect();
    let emb = model.embed(&texts, InputKind::Passage)?;
    let points: Vec<PointInput> = pending
        .drain(..)
        .enumerate()
        .map(|(i, (mut p, _))| {
            p.vectors = Vectors::Single(emb.row(i).to_vec());
            p
        })
        .collect();
    c.upsert(points)?;
    Ok(())
}

/// Documents of one query, best first: (doc id, score, payload of its best chunk).
type Ranked = Vec<(String, f32, Value)>;

/// A text search as `search --text/--queries` asks for it.
#[derive(Debug)]
pub struct TextSearch<'a> {
    /// Collection or alias.
    pub name: &'a str,
    /// (query id, text) pairs.
    pub queries: Vec<(String, String)>,
    /// dense, bm25 or hybrid.
    pub mode: &'a str,
    /// Fusion method name.
    pub fusion: &'a str,
    /// Documents per query.
    pub k: usize,
    /// Payload filter applied to every source.
    pub filter: Option<Filter>,
    /// TREC run output.
    pub run_out: Option<&'a Path>,
    /// JSON output.
    pub json_out: bool,
}

/// Text queries: one (`--text`) or a BEIR `queries.jsonl` (`--queries`), ranked documents out
/// (the best chunk per document), optionally as a TREC run.
pub fn run_text_search(db: &Database, t: TextSearch<'_>) -> Result<()> {
    let TextSearch {
        name,
        queries,
        mode,
        fusion,
        k,
        filter,
        run_out,
        json_out,
    } = t;
    let mode = match mode {
        "dense" => Mode::Dense,
        "bm25" => Mode::Bm25,
        "hybrid" => Mode::Hybrid,
        other => bail!("unknown mode {other:?}: expected dense, bm25 or hybrid"),
    };
    let fusion = parse_fusion(fusion)?;
    let c = crate::db::collection(db, name)?;
    let model = match mode {
        Mode::Bm25 => None,
        _ => Some(collection_model(&c)?),
    };
    let depth = (k * CANDIDATES_PER_RESULT).min(sextant_engine::query::MAX_K);
    let mut run: Vec<(String, Ranked)> = Vec::new();
    let bar = ProgressBar::new(queries.len() as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} queries ({per_sec})")
            .expect("valid template"),
    );
    for (qid, text) in &queries {
        let mut lists: Vec<Vec<(PointId, f32)>> = Vec::new();
        let mut payloads: HashMap<PointId, Value> = HashMap::new();
        if let Some(m) = &model {
            let v = m.embed(&[text.as_str()], InputKind::Query)?.row(0).to_vec();
            let r = c.search(SearchRequest {
                space: Some(DENSE.into()),
                vector: v,
                k: depth,
                filter: filter.clone(),
                with_payload: true,
                ..Default::default()
            })?;
            add_source(r, &mut lists, &mut payloads);
        }
        if mode != Mode::Dense {
            let r = c.search_sparse(SparseSearchRequest {
                space: BM25.into(),
                query: SparseInput::Text(text.clone()),
                k: depth,
                filter: filter.clone(),
                tenant: None,
                with_payload: true,
            })?;
            add_source(r, &mut lists, &mut payloads);
        }
        let fused = if lists.len() == 1 {
            lists.pop().unwrap_or_default()
        } else {
            fuse(&lists, &[1.0, 1.0], fusion)
        };
        // Best chunk per document.
        let mut seen = std::collections::HashSet::new();
        let mut docs = Vec::new();
        for (pid, score) in fused {
            let payload = payloads.remove(&pid).unwrap_or(Value::Null);
            let doc = payload["doc_id"]
                .as_str()
                .map_or_else(|| pid.to_string(), str::to_string);
            if seen.insert(doc.clone()) {
                docs.push((doc, score, payload));
                if docs.len() == k {
                    break;
                }
            }
        }
        run.push((qid.clone(), docs));
        bar.inc(1);
    }
    bar.finish_and_clear();
    let tag = format!(
        "sextant-{}",
        match mode {
            Mode::Dense => "dense",
            Mode::Bm25 => "bm25",
            Mode::Hybrid => "hybrid",
        }
    );
    if let Some(path) = run_out {
        let f = std::fs::File::create(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mut w = std::io::BufWriter::new(f);
        for (qid, docs) in &run {
            for (rank, (doc, score, _)) in docs.iter().enumerate() {
                writeln!(w, "{qid} Q0 {doc} {} {score} {tag}", rank + 1)?;
            }
        }
        w.flush()?;
        eprintln!("wrote {} queries to {}", run.len(), path.display());
    } else if json_out {
        let out: Vec<Value> = run
            .iter()
            .map(|(q, docs)| json!({"query": q, "hits": docs.iter().map(|(d, s, p)| json!({"doc_id": d, "score": s, "payload": p})).collect::<Vec<_>>()}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        for (_, docs) in &run {
            for (rank, (doc, score, p)) in docs.iter().enumerate() {
                let snippet: String = p["text"].as_str().unwrap_or("").chars().take(100).collect();
                println!(
                    "{:>3}. {doc} ({score:.4}) {}: {snippet}",
                    rank + 1,
                    p["title"].as_str().unwrap_or("")
                );
            }
        }
    }
    Ok(())
}

/// Adds one source's ranked list, and the payloads of its hits, to a query's fusion inputs.
fn add_source(
    r: sextant_engine::SearchResponse,
    lists: &mut Vec<Vec<(PointId, f32)>>,
    payloads: &mut HashMap<PointId, Value>,
) {
    lists.push(
        r.hits
            .iter()
            .map(|h| (h.id.clone(), h.score.unwrap_or(0.0)))
            .collect(),
    );
    payloads.extend(
        r.hits
            .into_iter()
            .map(|h| (h.id, h.payload.unwrap_or(Value::Null))),
    );
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
