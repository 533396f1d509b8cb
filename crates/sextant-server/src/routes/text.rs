//! Documents and text: text query (every mode, fusion, rerank, MMR, grouping), ask, document
//! ingest (a streamed JSONL body or uploaded files) and deletion.

use std::io::Read;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::Json;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sextant_service::sources::{FileDocuments, JsonlDocuments, RecordFields};
use sextant_service::{AskRequest, IngestOptions, IngestReport, LlmRequest, TextSearchRequest};
use utoipa::ToSchema;

use crate::auth::Role;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, RequestId};
use crate::limits::Work;
use crate::routes::ErrorBody;
use crate::AppState;

/// A text query over a document collection (made by ingest).
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct QueryBody {
    /// The query text (empty or absent with `image`).
    #[serde(default)]
    pub text: String,
    /// Search by a picture instead (CLIP collections): PNG, JPEG or WebP bytes, base64; the
    /// dense source searches with its embedding.
    #[serde(default)]
    pub image: Option<String>,
    /// Results: documents (grouped, the default) or chunks [default: 10].
    #[serde(default)]
    pub k: Option<usize>,
    /// dense, bm25, splade or hybrid [default: hybrid].
    #[serde(default)]
    pub mode: Option<String>,
    /// Sources of hybrid mode [default: dense, bm25].
    #[serde(default)]
    pub sources: Option<Vec<String>>,
    /// Fusion weights, one per hybrid source.
    #[serde(default)]
    pub weights: Option<Vec<f32>>,
    /// weighted, weighted-z, rrf or dbsf [default: weighted].
    #[serde(default)]
    pub fusion: Option<String>,
    /// Rerank: a configured cross-encoder name, or `maxsim`.
    #[serde(default)]
    pub rerank: Option<String>,
    /// Chunks to rerank [default: 50].
    #[serde(default)]
    pub rerank_top: Option<usize>,
    /// Blend the reranker's order with the first stage's over the reranked chunks: each is
    /// placed by w · reranker rank + (1 − w) · first-stage rank, w in [0, 1] [default: the
    /// reranker's order alone].
    #[serde(default)]
    pub rerank_blend: Option<f32>,
    /// Chunks each source contributes.
    #[serde(default)]
    pub source_k: Option<usize>,
    /// MMR lambda in [0, 1].
    #[serde(default)]
    pub mmr: Option<f32>,
    /// Chunks per document [default: 1].
    #[serde(default)]
    pub group_size: Option<usize>,
    /// Payload filter.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub filter: Option<Value>,
    /// f32, bf16, int8 or auto (measured at load).
    #[serde(default)]
    pub precision: Option<String>,
    /// HNSW candidate list size of the dense source (default: the index's).
    #[serde(default)]
    pub ef: Option<usize>,
    /// Exact search for the dense source instead of the HNSW walk.
    #[serde(default)]
    pub exact: bool,
    /// Map the embedded query through the collection's query adapter when one is attached
    /// [default: true]; `false`: the model's own query embedding. Dense sources only.
    #[serde(default)]
    pub adapter: Option<bool>,
    /// Tenant (multi-tenant collections).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tenant: Option<Value>,
    /// Every tenant (not for tenant keys).
    #[serde(default)]
    pub all_tenants: bool,
    /// The language BM25 analyses the query in (`french` or `fr`) [default: the
    /// collection's].
    #[serde(default)]
    pub query_language: Option<String>,
    /// Query expansion: `rm3`, `multi-query` or `hyde` (the last two through the server's
    /// language model, setting llm.endpoint).
    #[serde(default)]
    pub expand: Option<String>,
    /// RM3: feedback chunks [default: 10].
    #[serde(default)]
    pub rm3_docs: Option<usize>,
    /// RM3: expansion terms kept [default: 10].
    #[serde(default)]
    pub rm3_terms: Option<usize>,
    /// RM3: weight of the original query in [0, 1] [default: 0.5].
    #[serde(default)]
    pub rm3_weight: Option<f32>,
    /// Multi-query: rewrites asked of the server's language model [default: 3].
    #[serde(default)]
    pub rewrites: Option<usize>,
    /// Add `explain`: what each source did (hits; for BM25 the query's analysis language and
    /// weighted terms).
    #[serde(default)]
    pub explain: bool,
}

impl QueryBody {
    fn request(&self) -> TextSearchRequest {
        TextSearchRequest {
            text: self.text.clone(),
            image: self.image.clone(),
            k: self.k,
            mode: self.mode.clone(),
            sources: self.sources.clone(),
            weights: self.weights.clone(),
            fusion: self.fusion.clone(),
            rerank: self.rerank.clone(),
            rerank_top: self.rerank_top,
            rerank_blend: self.rerank_blend,
            source_k: self.source_k,
            mmr: self.mmr,
            group_size: self.group_size,
            filter: self.filter.clone(),
            precision: self.precision.clone(),
            ef: self.ef,
            exact: self.exact,
            adapter: self.adapter,
            query_language: self.query_language.clone(),
            expand: self.expand.clone(),
            rm3_docs: self.rm3_docs,
            rm3_terms: self.rm3_terms,
            rm3_weight: self.rm3_weight,
            rewrites: self.rewrites,
            llm: None,
        }
    }
}

/// Ranked documents, each with its best chunks (payload: text, title, source, section, page,
/// start, end).
#[derive(Debug, Serialize, ToSchema)]
pub struct QueryOut {
    /// Best first.
    #[schema(value_type = Vec<Object>)]
    pub documents: Vec<Value>,
    /// With `explain`: each source's depth, weight and hits, and for BM25 the query's
    /// analysis language and weighted terms.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub explain: Option<Value>,
}

/// Gives a request that expands through a language model (`multi-query`, `hyde`) the server's
/// configured one; remote callers never name an endpoint.
fn expansion_llm(s: &AppState, req: &mut TextSearchRequest) -> ApiResult<()> {
    if !matches!(req.expand.as_deref(), Some("multi-query" | "hyde")) {
        return Ok(());
    }
    let llm = &s.config().llm;
    if llm.endpoint.is_empty() {
        return Err(ApiError::invalid(
            "expand",
            "this server has no language model configured (setting llm.endpoint) for multi-query or hyde expansion",
        ));
    }
    req.llm = Some(LlmRequest {
        url: llm.endpoint.clone(),
        model: Some(llm.model.clone()),
        timeout_s: Some(llm.timeout_s),
    });
    Ok(())
}

/// Only configured model names may be named by remote callers (never paths: a request must not
/// make the server read arbitrary directories or download models).
pub(crate) fn check_model_name(s: &AppState, field: &str, spec: Option<&str>) -> ApiResult<()> {
    let models = s.config().effective_models();
    match spec {
        None => Ok(()),
        Some("maxsim") if field == "rerank" => Ok(()),
        Some(name) if models.contains_key(name) => Ok(()),
        Some(name) => Err(ApiError::invalid(
            field,
            format!(
                "unknown model {name:?}: the server offers {} (setting models.NAME)",
                if models.is_empty() {
                    "none".to_string()
                } else {
                    models.keys().cloned().collect::<Vec<_>>().join(", ")
                }
            ),
        )),
    }
}

fn bounds(s: &AppState, k: Option<usize>, field: &str) -> ApiResult<()> {
    let max = s.config().limits.max_results;
    match k {
        Some(k) if k == 0 || k > max => Err(ApiError::invalid(
            field,
            format!("{field} must be 1..={max}"),
        )),
        _ => Ok(()),
    }
}

/// Text search in a document collection: dense, BM25, SPLADE or hybrid, with fusion, rerank,
/// MMR and grouping (read role).
#[utoipa::path(post, path = "/collections/{name}/query", tag = "search", request_body = QueryBody,
    params(("name" = String, Path, description = "Document collection or alias")),
    responses((status = 200, body = QueryOut), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn query(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(name): ApiPath<String>,
    ApiJson(b): ApiJson<QueryBody>,
) -> ApiResult<axum::response::Response> {
    let c = s.collection(&p, Role::Read, &name)?;
    let scope = s.scope(&p, &c, b.tenant.as_ref(), b.all_tenants)?;
    check_model_name(&s, "rerank", b.rerank.as_deref())?;
    bounds(&s, b.k, "k")?;
    bounds(&s, b.source_k, "source_k")?;
    bounds(&s, b.rerank_top, "rerank_top")?;
    let key = s.cache.enabled().then(|| {
        s.cache.key(
            c.name(),
            &format!("{scope:?}"),
            // A cached answer lasts until the next expiry in the collection at most.
            &format!("query\u{0}{:?}", c.next_expiry()),
            &serde_json::to_value(&b).unwrap_or_default(),
        )
    });
    if let Some(hit) = key.as_deref().and_then(|k| s.cache.get(k)) {
        return Ok(crate::routes::points::json_bytes(hit));
    }
    let mut req = b.request();
    expansion_llm(&s, &mut req)?;
    let st = s.clone();
    s.run(s.read_work(), move || {
        let t0 = std::time::Instant::now();
        let (hits, why) = st.service().text_search_explained(c.name(), &scope, &req)?;
        let mode = b.mode.as_deref().unwrap_or(sextant_service::DEFAULT_MODE);
        let plan = if b.rerank.is_some() {
            format!("{mode}+rerank")
        } else {
            mode.to_string()
        };
        metrics::histogram!("sextant_search_duration_seconds", "plan" => plan)
            .record(t0.elapsed().as_secs_f64());
        let out = bytes::Bytes::from(
            serde_json::to_vec(&if b.explain {
                json!({"documents": hits, "explain": why})
            } else {
                json!({"documents": hits})
            })
            .map_err(ApiError::internal)?,
        );
        if let Some(k) = key {
            st.cache.put(k, out.clone());
        }
        Ok(crate::routes::points::json_bytes(out))
    })
    .await
}

/// A question for a document collection.
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AskBody {
    /// The question.
    pub question: String,
    /// Chunks retrieved before packing the context [default: 8].
    #[serde(default)]
    pub k: Option<usize>,
    /// Context budget in model tokens [default: 1024].
    #[serde(default)]
    pub budget: Option<usize>,
    /// Ask the server's configured language model (`llm.endpoint`) for an answer; without it
    /// the answer is the cited context.
    #[serde(default)]
    pub answer: bool,
    /// dense, bm25, splade or hybrid [default: hybrid].
    #[serde(default)]
    pub mode: Option<String>,
    /// Sources of hybrid mode.
    #[serde(default)]
    pub sources: Option<Vec<String>>,
    /// Fusion weights.
    #[serde(default)]
    pub weights: Option<Vec<f32>>,
    /// Fusion.
    #[serde(default)]
    pub fusion: Option<String>,
    /// Rerank: a configured cross-encoder name, or `maxsim`.
    #[serde(default)]
    pub rerank: Option<String>,
    /// Chunks to rerank.
    #[serde(default)]
    pub rerank_top: Option<usize>,
    /// Blend of the reranker's order with the first stage's, w in [0, 1] (as in a query).
    #[serde(default)]
    pub rerank_blend: Option<f32>,
    /// Chunks each source contributes.
    #[serde(default)]
    pub source_k: Option<usize>,
    /// MMR lambda in [0, 1].
    #[serde(default)]
    pub mmr: Option<f32>,
    /// Chunks per document (default: no grouping).
    #[serde(default)]
    pub group_size: Option<usize>,
    /// Payload filter.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub filter: Option<Value>,
    /// The language BM25 analyses the question in (`french` or `fr`) [default: the
    /// collection's].
    #[serde(default)]
    pub query_language: Option<String>,
    /// Query expansion: `rm3`, `multi-query` or `hyde` (the last two through the server's
    /// language model, setting llm.endpoint).
    #[serde(default)]
    pub expand: Option<String>,
    /// RM3: feedback chunks [default: 10].
    #[serde(default)]
    pub rm3_docs: Option<usize>,
    /// RM3: expansion terms kept [default: 10].
    #[serde(default)]
    pub rm3_terms: Option<usize>,
    /// RM3: weight of the original query in [0, 1] [default: 0.5].
    #[serde(default)]
    pub rm3_weight: Option<f32>,
    /// Multi-query: rewrites asked of the server's language model [default: 3].
    #[serde(default)]
    pub rewrites: Option<usize>,
    /// Tenant (multi-tenant collections).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tenant: Option<Value>,
    /// Every tenant (not for tenant keys).
    #[serde(default)]
    pub all_tenants: bool,
}

/// The answer: the language model's (when asked for) and the cited context.
#[derive(Debug, Serialize, ToSchema)]
pub struct AskOut {
    /// The question.
    pub question: String,
    /// The model's answer, or null.
    pub answer: Option<String>,
    /// `passages` (citation, doc_id, title, source, section, page, start, end, score, text),
    /// `tokens`, `budget`, `omitted`.
    #[schema(value_type = Object)]
    pub context: Value,
}

/// Cited context for a question, within a token budget, and optionally an answer from the
/// configured language model (read role).
#[utoipa::path(post, path = "/collections/{name}/ask", tag = "search", request_body = AskBody,
    params(("name" = String, Path, description = "Document collection or alias")),
    responses((status = 200, body = AskOut), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn ask(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(name): ApiPath<String>,
    ApiJson(b): ApiJson<AskBody>,
) -> ApiResult<Json<Value>> {
    let c = s.collection(&p, Role::Read, &name)?;
    let scope = s.scope(&p, &c, b.tenant.as_ref(), b.all_tenants)?;
    check_model_name(&s, "rerank", b.rerank.as_deref())?;
    bounds(&s, b.k, "k")?;
    bounds(&s, b.source_k, "source_k")?;
    bounds(&s, b.rerank_top, "rerank_top")?;
    let llm = &s.config().llm;
    let llm = match (b.answer, llm.endpoint.is_empty()) {
        (false, _) => None,
        (true, true) => {
            return Err(ApiError::invalid(
                "answer",
                "this server has no language model configured (setting llm.endpoint); ask without answer for the cited context",
            ))
        }
        (true, false) => Some(LlmRequest {
            url: llm.endpoint.clone(),
            model: Some(llm.model.clone()),
            timeout_s: Some(llm.timeout_s),
        }),
    };
    let mut req = AskRequest {
        question: b.question,
        k: b.k,
        budget: b.budget,
        retrieval: TextSearchRequest {
            text: String::new(),
            image: None,
            k: None,
            mode: b.mode,
            sources: b.sources,
            weights: b.weights,
            fusion: b.fusion,
            rerank: b.rerank,
            rerank_top: b.rerank_top,
            rerank_blend: b.rerank_blend,
            source_k: b.source_k,
            mmr: b.mmr,
            group_size: b.group_size,
            filter: b.filter,
            precision: None,
            ef: None,
            exact: false,
            adapter: None,
            query_language: b.query_language,
            expand: b.expand,
            rm3_docs: b.rm3_docs,
            rm3_terms: b.rm3_terms,
            rm3_weight: b.rm3_weight,
            rewrites: b.rewrites,
            llm: None,
        },
        llm,
    };
    expansion_llm(&s, &mut req.retrieval)?;
    let st = s.clone();
    let work = if req.llm.is_some() {
        crate::limits::Work::Read(std::time::Duration::from_secs(
            s.config().llm.timeout_s + 30,
        ))
    } else {
        s.read_work()
    };
    s.run(work, move || {
        let r = st.service().ask(c.name(), &scope, &req)?;
        Ok(Json(serde_json::to_value(r).map_err(ApiError::internal)?))
    })
    .await
}

/// Options of a document ingest (query string): creation-time settings apply when the request
/// makes the collection, and must match its stored settings afterwards.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct IngestQuery {
    /// Embedding model: a configured model name [default: the server's default model].
    #[serde(default)]
    pub model: Option<String>,
    /// SPLADE model: a configured model name.
    #[serde(default)]
    pub splade: Option<String>,
    /// No SPLADE space.
    #[serde(default)]
    pub no_splade: Option<bool>,
    /// Encrypt the collection at rest when this ingest creates it (the server's master key);
    /// refused for an existing collection that is not encrypted.
    #[serde(default)]
    pub encrypt: Option<bool>,
    /// sentences, paragraphs, fixed, semantic or hierarchical.
    #[serde(default)]
    pub chunking: Option<String>,
    /// Chunk budget in model tokens.
    #[serde(default)]
    pub chunk_tokens: Option<usize>,
    /// Overlap of fixed windows in tokens.
    #[serde(default)]
    pub chunk_overlap: Option<usize>,
    /// Parent budget of hierarchical chunking.
    #[serde(default)]
    pub parent_tokens: Option<usize>,
    /// Redact PII: mask (hash mode needs the server's key: `SEXTANT_REDACTION_KEY`).
    #[serde(default)]
    pub redact: Option<String>,
    /// PII kinds, comma-separated.
    #[serde(default)]
    pub redact_kinds: Option<String>,
    /// Make the collection multi-tenant: `KEY` or `KEY:integer`.
    #[serde(default)]
    pub tenant_key: Option<String>,
    /// Duplicate detection at creation: keep, link or skip [default: off].
    #[serde(default)]
    pub dedup: Option<String>,
    /// Near-duplicate threshold (estimated Jaccard of word 3-shingles) [default: 0.5].
    #[serde(default)]
    pub dedup_threshold: Option<f64>,
    /// The language BM25 analyses text in, at creation: `auto`, a language with a stemmer
    /// (`french` or `fr`) or a detectable language's ISO 639-1 code [default: english].
    #[serde(default)]
    pub language: Option<String>,
    /// JSONL field holding the document id [default: id].
    #[serde(default)]
    pub id_field: Option<String>,
    /// JSONL field holding the text [default: text].
    #[serde(default)]
    pub text_field: Option<String>,
    /// JSONL field holding the title [default: title].
    #[serde(default)]
    pub title_field: Option<String>,
    /// Tenant of every document.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Documents name their own tenant (tenant-key field); not for tenant keys.
    #[serde(default)]
    pub all_tenants: Option<bool>,
}

/// Reads a streamed body from the blocking side: frames arrive through a bounded channel, so at
/// most a few frames are held at once.
struct ChannelReader {
    rx: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>>,
    current: bytes::Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => {
                    return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        let _ = self.current.split_to(n);
        Ok(n)
    }
}

/// Forwards a body into a channel, refusing more than `limit` bytes.
fn stream_body(
    body: Body,
    limit: u64,
) -> tokio::sync::mpsc::Receiver<Result<bytes::Bytes, String>> {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tokio::spawn(async move {
        let mut stream = body.into_data_stream();
        let mut total = 0u64;
        while let Some(frame) = stream.next().await {
            let msg = match frame {
                Ok(b) => {
                    total += b.len() as u64;
                    if total > limit {
                        Err(format!(
                            "the upload is larger than the server's limit of {limit} bytes (limits.max_upload_bytes)"
                        ))
                    } else {
                        Ok(b)
                    }
                }
                Err(e) => Err(format!("cannot read the request body: {e}")),
            };
            let stop = msg.is_err();
            if tx.send(msg).await.is_err() || stop {
                break;
            }
        }
    });
    rx
}

/// Ingests documents into a document collection, creating it on first use (admin to create,
/// write otherwise): a JSONL body (`application/x-ndjson`: one `{"id", "text", "title"?, …}`
/// per line, streamed, never held whole) or uploaded files (`multipart/form-data`: text,
/// Markdown, HTML, PDF, DOCX, EPUB, e-mail, source code; CSV/TSV rows and mbox messages as one
/// document each). An unchanged document is a no-op; a changed one replaces its chunks
/// atomically.
#[utoipa::path(post, path = "/collections/{name}/documents", tag = "documents",
    params(("name" = String, Path, description = "Document collection or alias"), IngestQuery),
    request_body(content = String, description = "JSONL documents (application/x-ndjson) or files (multipart/form-data)", content_type = "application/x-ndjson"),
    responses((status = 200, body = IngestReport), (status = 400, body = ErrorBody),
              (status = 413, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn ingest(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<IngestQuery>,
    req: Request,
) -> ApiResult<Json<IngestReport>> {
    let exists = s.db().collection(&name).is_ok();
    s.allow(
        &p,
        if exists { Role::Write } else { Role::Admin },
        Some(&name),
    )?;
    check_model_name(&s, "model", q.model.as_deref())?;
    check_model_name(&s, "splade", q.splade.as_deref())?;
    if q.redact.as_deref() == Some("hash")
        && std::env::var_os(sextant_engine::documents::REDACTION_KEY_ENV).is_none()
    {
        return Err(ApiError::invalid(
            "redact",
            format!(
                "hash redaction needs the server's key in ${}",
                sextant_engine::documents::REDACTION_KEY_ENV
            ),
        ));
    }
    let ctype = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if exists && q.model.is_some() {
        return Err(ApiError::new(
            sextant_core::ErrorKind::Conflict,
            format!("collection {name:?} exists: its embedding model is fixed; leave model out"),
        )
        .with_field("model"));
    }
    let opts = IngestOptions {
        // The server offers no SPLADE model unless one is named: a new collection has no
        // SPLADE space by default.
        model: if exists {
            None
        } else {
            q.model.clone().or_else(|| s.config().default_model())
        },
        splade: q.splade.clone(),
        no_splade: q.no_splade.unwrap_or(!exists && q.splade.is_none()),
        chunking: q.chunking.clone(),
        chunk_tokens: q.chunk_tokens,
        chunk_overlap: q.chunk_overlap,
        parent_tokens: q.parent_tokens,
        redact: q.redact.clone(),
        redact_kinds: q.redact_kinds.clone(),
        tenant_key: q.tenant_key.clone(),
        dedup: q.dedup.clone(),
        dedup_threshold: q.dedup_threshold,
        language: q.language.clone(),
        precision: None,
        batch: None,
        encrypt: q.encrypt.unwrap_or(false),
        redaction_key_file: None,
    };
    let fields = RecordFields {
        id_field: q.id_field.clone().unwrap_or_else(|| "id".into()),
        text_field: q.text_field.clone().unwrap_or_else(|| "text".into()),
        title_field: q.title_field.clone().unwrap_or_else(|| "title".into()),
    };
    let limit = s.config().limits.max_upload_bytes;
    let st = s.clone();
    let pp = p.clone();
    let tenant = q.tenant.clone().map(Value::String);
    let all = q.all_tenants.unwrap_or(false);
    let name2 = name.clone();
    let r = if ctype.starts_with("multipart/form-data") {
        let (dir, files) = save_uploads(req, limit).await?;
        s.run(Work::Write, move || {
            let scope = scope_for_ingest(&st, &pp, &name2, tenant.as_ref(), all)?;
            // Each file is its own root, so its id is its file name; its source is that name too
            // (the temporary directory is nobody's business).
            let mut docs = FileDocuments::new(files).map(|d| {
                d.map(|mut d| {
                    d.source = Some(d.id.clone());
                    d
                })
            });
            let _keep = &dir;
            let report = st
                .service()
                .ingest(&name2, &scope, &opts, &mut docs, &mut |_| {})?;
            st.cache.invalidate(&st.db().resolve(&name2));
            Ok(report)
        })
        .await
    } else if ctype.starts_with("application/x-ndjson")
        || ctype.starts_with("application/jsonl")
        || ctype.starts_with("application/json")
    {
        let rx = stream_body(req.into_body(), limit);
        s.run(Work::Write, move || {
            let scope = scope_for_ingest(&st, &pp, &name2, tenant.as_ref(), all)?;
            let reader = std::io::BufReader::new(ChannelReader {
                rx,
                current: bytes::Bytes::new(),
            });
            let mut docs = JsonlDocuments::new(reader, "body", fields);
            let report = st
                .service()
                .ingest(&name2, &scope, &opts, &mut docs, &mut |_| {})?;
            st.cache.invalidate(&st.db().resolve(&name2));
            Ok(report)
        })
        .await
    } else {
        Err(ApiError::invalid(
            "content-type",
            "send documents as JSONL (Content-Type: application/x-ndjson) or files (multipart/form-data)",
        )
        .with_status(axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE))
    };
    if let Ok(rep) = &r {
        metrics::counter!("sextant_ingested_documents_total").increment(rep.documents as u64);
        metrics::counter!("sextant_ingested_chunks_total").increment(rep.chunks as u64);
    }
    s.audit(&p, "documents.ingest", Some(&name), None, &rid, &r);
    Ok(Json(r?))
}

/// The scope of an ingest: the collection may not exist yet (then a tenant scope needs the
/// `tenant_key` it is being made with, which the engine checks).
fn scope_for_ingest(
    s: &AppState,
    p: &crate::auth::Principal,
    name: &str,
    tenant: Option<&Value>,
    all: bool,
) -> ApiResult<sextant_engine::Scope> {
    match s.db().collection(name) {
        Ok(c) => s.scope(p, &c, tenant, all),
        Err(_) if p.tenant.is_some() => Err(ApiError::new(
            sextant_core::ErrorKind::Forbidden,
            "a tenant-limited key cannot create a collection",
        )),
        Err(_) => Ok(match (tenant, all) {
            (Some(t), _) => sextant_engine::Scope::Tenant(
                sextant_engine::TenantId::from_json(t)
                    .map_err(|e| ApiError::from(e).with_field("tenant"))?,
            ),
            (None, true) => sextant_engine::Scope::AllTenants,
            (None, false) => sextant_engine::Scope::Unscoped,
        }),
    }
}

/// Saves each uploaded file of a multipart body into a temporary directory (streamed to disk,
/// at most `limit` bytes in all); file names become document ids.
async fn save_uploads(
    req: Request,
    limit: u64,
) -> ApiResult<(tempfile::TempDir, Vec<std::path::PathBuf>)> {
    use axum::extract::FromRequest;
    use tokio::io::AsyncWriteExt;
    let mut mp = axum::extract::Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::invalid("body", e.body_text()))?;
    let dir = tempfile::tempdir().map_err(ApiError::internal)?;
    let mut total = 0u64;
    let mut files = Vec::new();
    while let Some(mut field) = mp
        .next_field()
        .await
        .map_err(|e| ApiError::invalid("body", e.body_text()))?
    {
        let Some(fname) = field.file_name().map(String::from) else {
            continue;
        };
        let safe: String = std::path::Path::new(&fname)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        if safe.is_empty() || safe.starts_with('.') {
            return Err(ApiError::invalid(
                "file",
                format!("file name {fname:?} is not usable"),
            ));
        }
        let path = dir.path().join(&safe);
        if files.contains(&path) {
            return Err(ApiError::invalid(
                "file",
                format!("two files are named {safe:?}"),
            ));
        }
        let mut out = tokio::fs::File::create(&path)
            .await
            .map_err(ApiError::internal)?;
        while let Some(chunk) = field
            .chunk()
            .await
            .map_err(|e| ApiError::invalid("body", e.body_text()))?
        {
            total += chunk.len() as u64;
            if total > limit {
                return Err(ApiError::invalid(
                    "body",
                    format!("the upload is larger than the server's limit of {limit} bytes (limits.max_upload_bytes)"),
                )
                .with_status(axum::http::StatusCode::PAYLOAD_TOO_LARGE));
            }
            out.write_all(&chunk).await.map_err(ApiError::internal)?;
        }
        out.flush().await.map_err(ApiError::internal)?;
        files.push(path);
    }
    if files.is_empty() {
        return Err(ApiError::invalid(
            "file",
            "the multipart body has no file parts",
        ));
    }
    Ok((dir, files))
}

/// Which documents to delete by age.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct OlderThanQuery {
    /// Delete every document ingested longer ago than this: a whole number and s, m, h or d
    /// (`30d`, `12h`, `90m`, `45s`).
    pub older_than: String,
    /// Tenant (an integer for an integer tenant key).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Every tenant (`true`).
    #[serde(default)]
    pub all_tenants: Option<bool>,
}

/// Deletes every document (all its chunks) ingested longer ago than `older_than`, in one
/// durable write (write role); answers `{deleted_documents, deleted_chunks, cutoff}`.
#[utoipa::path(delete, path = "/collections/{name}/documents", tag = "documents",
    params(("name" = String, Path, description = "Document collection or alias"), OlderThanQuery),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete_older_than(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
    ApiQuery(q): ApiQuery<OlderThanQuery>,
) -> ApiResult<Json<Value>> {
    let c = s.collection(&p, Role::Write, &name)?;
    let tenant = q.tenant.clone().map(Value::String);
    let scope = s.scope(&p, &c, tenant.as_ref(), q.all_tenants.unwrap_or(false))?;
    let st = s.clone();
    let sc = scope.clone();
    let r = s
        .run(Work::Write, move || {
            let r = st
                .service()
                .delete_older_than(c.name(), &sc, &q.older_than)?;
            st.cache.invalidate(c.name());
            Ok(json!({
                "deleted_documents": r.documents,
                "deleted_chunks": r.points,
                "cutoff": sextant_engine::clock::format_expiry(r.cutoff_ms),
            }))
        })
        .await;
    s.audit(
        &p,
        "documents.delete_older_than",
        Some(&name),
        Some(&scope),
        &rid,
        &r,
    );
    Ok(Json(r?))
}

/// Deletes a document (all its chunks) (write role).
#[utoipa::path(delete, path = "/collections/{name}/documents/{doc_id}", tag = "documents",
    params(("name" = String, Path, description = "Document collection or alias"),
           ("doc_id" = String, Path, description = "Document id"),
           crate::routes::points::TenantQuery),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete_document(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath((name, doc_id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<crate::routes::points::TenantQuery>,
) -> ApiResult<Json<Value>> {
    let c = s.collection(&p, Role::Write, &name)?;
    let tenant = q.tenant.clone().map(Value::String);
    let scope = s.scope(&p, &c, tenant.as_ref(), q.all_tenants.unwrap_or(false))?;
    let st = s.clone();
    let sc = scope.clone();
    let r = s
        .run(Work::Write, move || {
            let n = st.service().delete_document(c.name(), &sc, &doc_id)?;
            st.cache.invalidate(c.name());
            if n == 0 {
                return Err(ApiError::new(
                    sextant_core::ErrorKind::NotFound,
                    format!("no document {doc_id:?} in collection {:?}", c.name()),
                ));
            }
            Ok(json!({"doc_id": doc_id, "deleted_chunks": n}))
        })
        .await;
    s.audit(&p, "documents.delete", Some(&name), Some(&scope), &rid, &r);
    Ok(Json(r?))
}
