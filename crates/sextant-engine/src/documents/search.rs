//! The hybrid plan over a document collection: sources → fusion → rerank → MMR → grouping.
//!
//! 1. **Sources**, each with its own depth `k`: dense ANN on [`DENSE`](super::DENSE), BM25 on
//!    [`BM25`](super::BM25), SPLADE on [`SPLADE`](super::SPLADE). The filter and tenant apply to
//!    every source.
//! 2. **Fusion** of the source lists ([`crate::fusion`]) with per-source weights; one source is
//!    passed through with its own scores.
//! 3. **Rerank** (optional): a cross-encoder scores the top `top_n` fused chunks against the
//!    query text; they are re-ordered by that score and placed before the rest.
//! 4. **MMR** (optional, `lambda` in [0, 1]): greedy maximal marginal relevance over the
//!    candidates, relevance being the min-max-normalised score of the previous stage and
//!    redundancy the highest cosine between a candidate's dense vector and those already chosen.
//! 5. **Grouping** (optional): the best `group_size` chunks per document, `k` documents.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;
use sextant_core::{Filter, PointId};

use super::{model_err, DenseModel, PairScorer, SparseModel, BM25, DENSE, SPLADE};
use crate::error::{EngineError, Result};
use crate::fusion::{fuse, Fusion};
use crate::query::MAX_K;
use crate::{Collection, Scope, SearchRequest, SparseInput, SparseSearchRequest};

/// A retrieval source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// Embedding similarity (needs the dense model).
    Dense,
    /// BM25 over the chunk text.
    Bm25,
    /// SPLADE weights (needs the SPLADE model).
    Splade,
}

impl std::str::FromStr for SourceKind {
    type Err = EngineError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "dense" => Ok(SourceKind::Dense),
            "bm25" => Ok(SourceKind::Bm25),
            "splade" => Ok(SourceKind::Splade),
            _ => Err(EngineError::invalid(
                "sources",
                format!("unknown source {s:?}: expected dense, bm25 or splade"),
            )),
        }
    }
}

/// A source of the plan.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Source {
    /// Which.
    pub kind: SourceKind,
    /// Chunks it contributes.
    pub k: usize,
    /// Its weight in fusion.
    pub weight: f32,
}

/// The models a query may need.
#[derive(Clone, Copy, Default)]
pub struct Models<'a> {
    /// For dense sources and MMR.
    pub dense: Option<&'a dyn DenseModel>,
    /// For SPLADE sources.
    pub splade: Option<&'a dyn SparseModel>,
    /// For the rerank stage.
    pub reranker: Option<&'a dyn PairScorer>,
}

impl std::fmt::Debug for Models<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Models")
            .field("dense", &self.dense.is_some())
            .field("splade", &self.splade.is_some())
            .field("reranker", &self.reranker.is_some())
            .finish()
    }
}

/// A text query.
#[derive(Debug, Clone)]
pub struct TextQuery {
    /// The query text.
    pub text: String,
    /// Sources (at least one).
    pub sources: Vec<Source>,
    /// How several sources are fused.
    pub fusion: Fusion,
    /// Results: documents when grouping, else chunks.
    pub k: usize,
    /// Payload filter for every source.
    pub filter: Option<Filter>,
    /// Tenant scope for every source (required in a multi-tenant collection).
    pub scope: Scope,
    /// Rerank the top this-many fused chunks with the reranker (0: no rerank).
    pub rerank_top: usize,
    /// Blend the reranker's order with fusion's over the reranked chunks: each is placed by
    /// `w · (its rank by the reranker) + (1 − w) · (its rank after fusion)`, ties by the
    /// reranker. `None` (or 1): the reranker's order alone; 0: fusion's order. For a
    /// cross-encoder weaker than the first stage on its own, such as one trained in place on
    /// a few thousand pairs (BENCHMARKS.md, "Fine-tuning").
    pub rerank_blend: Option<f32>,
    /// MMR trade-off (1: relevance only, 0: diversity only); `None`: no MMR.
    pub mmr_lambda: Option<f32>,
    /// Chunks per document when grouping by document; `None`: no grouping.
    pub group_size: Option<usize>,
    /// HNSW candidate list size of the dense source (default: the index's).
    pub ef: Option<usize>,
    /// Exact (flat) search for the dense source instead of the HNSW walk.
    pub exact: bool,
    /// The language BM25 analyses the query in; `None`: the collection's choice (its language,
    /// or with `language: auto` the one whose terms the index holds most).
    pub language: Option<sextant_text::Language>,
    /// RM3 pseudo-relevance feedback for the BM25 source; `None`: none.
    pub rm3: Option<Rm3>,
    /// HyDE: a passage the dense source embeds (as a document) instead of the query; BM25,
    /// SPLADE and the reranker keep the query. `None`: the query.
    pub dense_text: Option<String>,
    /// A vector the dense source searches with instead of embedding any text: an image's
    /// embedding, for image → image search in a CLIP collection. `None`: embed the query.
    pub dense_vector: Option<Vec<f32>>,
    /// Map the embedded query through the dense space's query adapter, when one is attached
    /// ([`crate::adapter`]; default). Not applied to `dense_vector` nor to a HyDE passage:
    /// those are in the points' space already.
    pub adapter: bool,
}

/// RM3 pseudo-relevance feedback (Lavrenko & Croft's relevance model, interpolated with the
/// query as in Anserini): BM25 retrieves `fb_docs` chunks; each term of them weighs
/// Σ P(t|d)·P(q|d), with P(t|d) its share of the chunk's terms (stop words of the query's
/// language removed) and P(q|d) the chunk's share of the feedback scores; the best `fb_terms`
/// are normalised to sum 1 and mixed with the query's own terms (each 1/|q|) as
/// `original_weight · query + (1 − original_weight) · feedback`; BM25 runs again with those
/// weights.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rm3 {
    /// Feedback chunks.
    pub fb_docs: usize,
    /// Expansion terms kept.
    pub fb_terms: usize,
    /// Weight of the original query, in [0, 1].
    pub original_weight: f32,
}

impl Default for Rm3 {
    /// Anserini's defaults: 10 chunks, 10 terms, 0.5.
    fn default() -> Self {
        Rm3 {
            fb_docs: 10,
            fb_terms: 10,
            original_weight: 0.5,
        }
    }
}

impl TextQuery {
    /// A query with the given sources at depth `max(3k, 100)` each, equal weights, weighted
    /// min-max fusion (the best of the fusions on our judged set, see BENCHMARKS.md), grouped by
    /// document (best chunk).
    pub fn new(text: &str, kinds: &[SourceKind], k: usize) -> Self {
        let depth = (k * 3).clamp(100, MAX_K);
        TextQuery {
            text: text.to_string(),
            sources: kinds
                .iter()
                .map(|&kind| Source {
                    kind,
                    k: depth,
                    weight: 1.0,
                })
                .collect(),
            fusion: Fusion::Weighted(crate::fusion::Normalization::MinMax),
            k,
            filter: None,
            scope: Scope::Unscoped,
            rerank_top: 0,
            rerank_blend: None,
            mmr_lambda: None,
            group_size: Some(1),
            ef: None,
            exact: false,
            language: None,
            rm3: None,
            dense_text: None,
            dense_vector: None,
            adapter: true,
        }
    }
}

/// What a text query did, source by source (`--explain`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Explanation {
    /// Each source in plan order.
    pub sources: Vec<SourceExplanation>,
    /// Multi-query expansion: the rewrites searched beside the query (their lists fused by
    /// reciprocal rank).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rewrites: Vec<String>,
    /// HyDE: the hypothetical passage the dense source embedded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hypothetical: Option<String>,
}

/// What one source of a text query did.
#[derive(Debug, Clone, Serialize)]
pub struct SourceExplanation {
    /// Which source.
    pub source: SourceKind,
    /// Chunks it was asked for.
    pub k: usize,
    /// Its fusion weight.
    pub weight: f32,
    /// Chunks it returned.
    pub hits: usize,
    /// BM25: the language the query was analysed in, and how it was chosen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub language: Option<sextant_text::AnalysisLanguage>,
    /// BM25: each query term with the weight it scored with (query weight × IDF).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub terms: Vec<(String, f32)>,
    /// BM25 with RM3: the expanded query's terms with their query weights (before IDF),
    /// heaviest first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expansion: Vec<(String, f32)>,
    /// Dense: the fingerprint of the query adapter the embedded query went through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adapter: Option<String>,
}

/// A retrieved chunk.
#[derive(Debug, Clone, Serialize)]
pub struct ChunkHit {
    /// Point id.
    #[serde(serialize_with = "ser_id")]
    pub id: PointId,
    /// Its document.
    pub doc_id: String,
    /// Score of the last stage that scored it (fusion or rerank).
    pub score: f32,
    /// Score per source that found it.
    pub sources: HashMap<SourceKind, f32>,
    /// Cross-encoder score, when reranked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rerank_score: Option<f32>,
    /// Payload.
    pub payload: Value,
}

fn ser_id<S: serde::Serializer>(id: &PointId, s: S) -> std::result::Result<S::Ok, S::Error> {
    id.to_json().serialize(s)
}

/// A document and its best chunks.
#[derive(Debug, Clone, Serialize)]
pub struct DocumentHit {
    /// Document id.
    pub doc_id: String,
    /// Its best chunk's score.
    pub score: f32,
    /// Its chunks, best first.
    pub chunks: Vec<ChunkHit>,
    /// Documents collapsed into this hit as its duplicates (the `link` dedup policy): copies
    /// of it, or the document it copies and the other copies, ranked below it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<String>,
}

/// Runs a text query. With grouping, one [`DocumentHit`] per document; without, one per chunk.
pub fn search_text(c: &Collection, models: Models<'_>, q: &TextQuery) -> Result<Vec<DocumentHit>> {
    Ok(search_text_explained(c, models, q)?.0)
}

/// [`search_text`], with what each source did.
pub fn search_text_explained(
    c: &Collection,
    models: Models<'_>,
    q: &TextQuery,
) -> Result<(Vec<DocumentHit>, Explanation)> {
    if q.sources.is_empty() {
        return Err(EngineError::invalid(
            "sources",
            "a text query needs at least one source".into(),
        ));
    }
    if q.k == 0 || q.k > MAX_K {
        return Err(EngineError::invalid(
            "k",
            format!("must be 1..={MAX_K}, got {}", q.k),
        ));
    }
    if let Some(l) = q.mmr_lambda {
        if !(0.0..=1.0).contains(&l) {
            return Err(EngineError::invalid(
                "mmr",
                format!("MMR lambda must be in [0, 1], got {l}"),
            ));
        }
    }
    if let Some(w) = q.rerank_blend {
        if !(0.0..=1.0).contains(&w) {
            return Err(EngineError::invalid(
                "rerank_blend",
                format!("must be in [0, 1], got {w}"),
            ));
        }
        if q.rerank_top == 0 {
            return Err(EngineError::invalid(
                "rerank_blend",
                "applies with a rerank stage only (rerank_top > 0)".into(),
            ));
        }
    }
    if q.group_size == Some(0) {
        return Err(EngineError::invalid(
            "group_size",
            "must be at least 1".into(),
        ));
    }
    super::check_models(c, models.dense, models.splade)?;
    let mut lists: Vec<Vec<(PointId, f32)>> = Vec::new();
    let mut weights = Vec::new();
    let mut hits: HashMap<PointId, ChunkHit> = HashMap::new();
    let mut explanation = Explanation::default();
    for s in &q.sources {
        let mut language = None;
        let mut expansion = Vec::new();
        let mut adapter = None;
        let resp = match s.kind {
            SourceKind::Dense => {
                let m = models.dense.ok_or_else(|| {
                    EngineError::invalid(
                        "models.dense",
                        "a dense source needs the embedding model".into(),
                    )
                })?;
                // A HyDE passage is embedded as a document: it stands for one.
                let (text, as_query) = match &q.dense_text {
                    Some(t) => (t.as_str(), false),
                    None => (q.text.as_str(), true),
                };
                let v = match &q.dense_vector {
                    Some(v) => v.clone(),
                    None => {
                        let v = m
                            .embed(&[text], as_query)
                            .map_err(|e| model_err("embedding the query", e))?
                            .pop()
                            .unwrap_or_default();
                        match c.adapter(DENSE).filter(|_| q.adapter && as_query) {
                            Some(a) => {
                                adapter = Some(a.fingerprint().to_string());
                                a.apply(&v)
                            }
                            None => v,
                        }
                    }
                };
                c.search(SearchRequest {
                    space: Some(DENSE.into()),
                    vector: v,
                    k: s.k,
                    ef: q.ef,
                    filter: q.filter.clone(),
                    scope: q.scope.clone(),
                    with_payload: true,
                    exact_threshold: q.exact.then_some(u64::MAX),
                    ..Default::default()
                })?
            }
            SourceKind::Bm25 => {
                let (terms, used) = c.analyse(BM25, &q.text, q.language)?;
                language = Some(used);
                let mut weighted: Vec<(String, f32)> =
                    terms.into_iter().map(|t| (t, 1.0)).collect();
                if let Some(rm3) = &q.rm3 {
                    weighted = rm3_expand(c, q, rm3, &weighted, used.language)?;
                    expansion = weighted.clone();
                }
                c.search_sparse(SparseSearchRequest {
                    space: BM25.into(),
                    query: SparseInput::Terms(weighted),
                    k: s.k,
                    filter: q.filter.clone(),
                    scope: q.scope.clone(),
                    with_payload: true,
                })?
            }
            SourceKind::Splade => {
                let m = models.splade.ok_or_else(|| {
                    EngineError::invalid(
                        "models.splade",
                        "a SPLADE source needs the SPLADE model".into(),
                    )
                })?;
                let v = m
                    .encode(&[q.text.as_str()], true)
                    .map_err(|e| model_err("SPLADE encoding the query", e))?
                    .pop()
                    .unwrap_or_default();
                c.search_sparse(SparseSearchRequest {
                    space: SPLADE.into(),
                    query: SparseInput::Vector(v),
                    k: s.k,
                    filter: q.filter.clone(),
                    scope: q.scope.clone(),
                    with_payload: true,
                })?
            }
        };
        explanation.sources.push(SourceExplanation {
            source: s.kind,
            k: s.k,
            weight: s.weight,
            hits: resp.hits.len(),
            language,
            terms: resp.query_terms,
            expansion,
            adapter,
        });
        let mut list = Vec::with_capacity(resp.hits.len());
        for h in resp.hits {
            let score = h.score.unwrap_or(0.0);
            list.push((h.id.clone(), score));
            let e = hits.entry(h.id.clone()).or_insert_with(|| {
                let mut payload = h.payload.unwrap_or(Value::Null);
                // The dedup keys and signature are the engine's bookkeeping, not content.
                if let Some(m) = payload.as_object_mut() {
                    m.remove(super::DEDUP_KEYS);
                    m.remove("dedup_sig");
                }
                ChunkHit {
                    doc_id: payload["doc_id"]
                        .as_str()
                        .map_or_else(|| h.id.to_string(), str::to_string),
                    id: h.id,
                    score: 0.0,
                    sources: HashMap::new(),
                    rerank_score: None,
                    payload,
                }
            });
            e.sources.insert(s.kind, score);
        }
        lists.push(list);
        weights.push(s.weight);
    }
    let fused = if lists.len() == 1 {
        lists.pop().unwrap_or_default()
    } else {
        fuse(&lists, &weights, q.fusion)
    };
    let mut ranked: Vec<ChunkHit> = fused
        .into_iter()
        .filter_map(|(id, score)| {
            hits.remove(&id).map(|mut h| {
                h.score = score;
                h
            })
        })
        .collect();
    if q.rerank_top > 0 {
        let scorer = models.reranker.ok_or_else(|| {
            EngineError::invalid("models.reranker", "rerank needs a reranker model".into())
        })?;
        rerank(scorer, &q.text, &mut ranked, q.rerank_top, q.rerank_blend)?;
    }
    if let Some(lambda) = q.mmr_lambda {
        let pool = (q.k * q.group_size.unwrap_or(1) * 4).max(50);
        ranked = mmr(c, &q.scope, ranked, lambda, pool)?;
    }
    // Read straight from the stored settings: parsing them whole on every query is not needed.
    let link = c
        .schema()
        .documents
        .as_ref()
        .and_then(|d| d.pointer("/dedup/policy"))
        .and_then(Value::as_str)
        == Some("link");
    let hits = if link {
        collapse(group(ranked, usize::MAX, q.group_size), q.k)
    } else {
        group(ranked, q.k, q.group_size)
    };
    Ok((hits, explanation))
}

/// The RM3-expanded query (see [`Rm3`]): terms with query weights, heaviest first.
fn rm3_expand(
    c: &Collection,
    q: &TextQuery,
    rm3: &Rm3,
    query: &[(String, f32)],
    language: Option<sextant_text::Language>,
) -> Result<Vec<(String, f32)>> {
    if rm3.fb_docs == 0 || rm3.fb_docs > MAX_K || !(0.0..=1.0).contains(&rm3.original_weight) {
        return Err(EngineError::invalid(
            "rm3",
            format!(
                "RM3 needs 1..={MAX_K} feedback chunks and an original-query weight in [0, 1], got {} and {}",
                rm3.fb_docs, rm3.original_weight
            ),
        ));
    }
    if query.is_empty() {
        return Ok(Vec::new());
    }
    let first = c.search_sparse(SparseSearchRequest {
        space: BM25.into(),
        query: SparseInput::Terms(query.to_vec()),
        k: rm3.fb_docs,
        filter: q.filter.clone(),
        scope: q.scope.clone(),
        with_payload: true,
    })?;
    let total: f32 = first.hits.iter().filter_map(|h| h.score).sum();
    let mut model: HashMap<String, f32> = HashMap::new();
    if total > 0.0 {
        for h in &first.hits {
            let p = h.payload.as_ref().unwrap_or(&Value::Null);
            let text = format!(
                "{}\n{}",
                p["title"].as_str().unwrap_or(""),
                p["text"].as_str().unwrap_or("")
            );
            let counts = c.feedback_counts(BM25, &text, language)?;
            if counts.len <= 0.0 {
                continue;
            }
            let p_q = h.score.unwrap_or(0.0) / total;
            for (t, n) in counts.terms {
                *model.entry(t).or_default() += n / counts.len * p_q;
            }
        }
    }
    let mut feedback: Vec<(String, f32)> = model.into_iter().collect();
    // Heaviest first; ties by term, so the expansion never depends on hash order.
    feedback.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    feedback.truncate(rm3.fb_terms);
    let norm: f32 = feedback.iter().map(|(_, w)| w).sum();
    let lambda = rm3.original_weight;
    let mut mixed: HashMap<String, f32> = query
        .iter()
        .map(|(t, _)| (t.clone(), lambda / query.len() as f32))
        .collect();
    if norm > 0.0 {
        for (t, w) in feedback {
            *mixed.entry(t).or_default() += (1.0 - lambda) * w / norm;
        }
    }
    let mut out: Vec<(String, f32)> = mixed.into_iter().filter(|(_, w)| *w > 0.0).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(out)
}

/// Folds the hits of documents that duplicate each other (the same first copy: a chunk's
/// `duplicate_of`, or the document itself) into the best-ranked one, listing the others in its
/// `copies`; then the first `k`.
fn collapse(hits: Vec<DocumentHit>, k: usize) -> Vec<DocumentHit> {
    let root = |h: &DocumentHit| -> String {
        h.chunks
            .first()
            .and_then(|c| c.payload.get("duplicate_of"))
            .and_then(Value::as_str)
            .unwrap_or(&h.doc_id)
            .to_string()
    };
    let mut out: Vec<DocumentHit> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for h in hits {
        let r = root(&h);
        match at.get(&r).copied() {
            // Another chunk of the same document (results not grouped): a hit of its own.
            Some(i) if out[i].doc_id == h.doc_id && out.len() < k => out.push(h),
            Some(i) if out[i].doc_id == h.doc_id => {}
            Some(i) if !out[i].copies.contains(&h.doc_id) => out[i].copies.push(h.doc_id),
            Some(_) => {}
            None if out.len() < k => {
                at.insert(r, out.len());
                out.push(h);
            }
            None => {}
        }
    }
    out
}

/// Re-orders the first `top` chunks by cross-encoder score (ties keep their order), or with a
/// `blend` by the blended rank of [`TextQuery::rerank_blend`]; the rest follow in their
/// previous order.
fn rerank(
    scorer: &dyn PairScorer,
    query: &str,
    ranked: &mut [ChunkHit],
    top: usize,
    blend: Option<f32>,
) -> Result<()> {
    let n = top.min(ranked.len());
    if n == 0 {
        return Ok(());
    }
    let passages: Vec<String> = ranked[..n].iter().map(passage_text).collect();
    let refs: Vec<&str> = passages.iter().map(String::as_str).collect();
    let scores = scorer
        .score(query, &refs)
        .map_err(|e| model_err("reranking", e))?;
    if scores.len() != n {
        return Err(EngineError::Model(format!(
            "the reranker returned {} scores for {n} passages",
            scores.len()
        )));
    }
    for (h, s) in ranked[..n].iter_mut().zip(scores) {
        h.rerank_score = Some(s);
        h.score = s;
    }
    match blend {
        None => ranked[..n].sort_by(|a, b| b.score.total_cmp(&a.score)),
        Some(w) => blend_ranks(&mut ranked[..n], w),
    }
    below_reranked(ranked, n);
    Ok(())
}

/// Orders reranked chunks (in fusion's order, each scored by the reranker) by
/// `w · reranker rank + (1 − w) · fusion rank` (ranks from 1), ties by the reranker's rank;
/// each chunk's score becomes the negated blend, strictly decreasing down the list (a tie
/// takes the next float below) so that sorting by score gives the same order.
fn blend_ranks(head: &mut [ChunkHit], w: f32) {
    let mut by_reranker: Vec<usize> = (0..head.len()).collect();
    // Stable: equal reranker scores keep fusion's order.
    by_reranker.sort_by(|&a, &b| head[b].score.total_cmp(&head[a].score));
    let mut reranker_rank = vec![0usize; head.len()];
    for (r, &i) in by_reranker.iter().enumerate() {
        reranker_rank[i] = r + 1;
    }
    let w = f64::from(w);
    let mut keyed: Vec<(f64, usize, ChunkHit)> = head
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let blend = w * reranker_rank[i] as f64 + (1.0 - w) * (i + 1) as f64;
            (blend, reranker_rank[i], h.clone())
        })
        .collect();
    keyed.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut last = f32::INFINITY;
    for (slot, (blend, _, mut h)) in head.iter_mut().zip(keyed) {
        let score = (-blend as f32).min(last.next_down());
        h.score = score;
        last = score;
        *slot = h;
    }
}

/// Keeps the chunks after the first `n` (reranked) below them in score as they are in order:
/// a reranker's scores are on another scale than fusion's (a cross-encoder's logits are often
/// negative), so without this anything sorting by score — grouping, a caller, `eval` — would
/// put the un-reranked tail above the reranked head. The tail keeps its fusion gaps, shifted
/// to start one unit below the lowest reranked score (its per-source scores are unchanged).
fn below_reranked(ranked: &mut [ChunkHit], n: usize) {
    let (Some(floor), Some(first)) = (
        ranked[..n].iter().map(|h| h.score).reduce(f32::min),
        ranked.get(n).map(|h| h.score),
    ) else {
        return;
    };
    for h in &mut ranked[n..] {
        h.score = floor - 1.0 - (first - h.score);
    }
}

/// The text a reranker reads for a chunk: its title and text.
fn passage_text(h: &ChunkHit) -> String {
    let title = h.payload["title"].as_str().unwrap_or("");
    let text = h.payload["text"].as_str().unwrap_or("");
    if title.is_empty() {
        text.to_string()
    } else {
        format!("{title}\n{text}")
    }
}

/// Greedy MMR over the first `pool` chunks; the rest follow unchanged.
fn mmr(
    c: &Collection,
    scope: &Scope,
    mut ranked: Vec<ChunkHit>,
    lambda: f32,
    pool: usize,
) -> Result<Vec<ChunkHit>> {
    let n = pool.min(ranked.len());
    if n <= 1 {
        return Ok(ranked);
    }
    let rest = ranked.split_off(n);
    let ids: Vec<PointId> = ranked.iter().map(|h| h.id.clone()).collect();
    let points = c.get(scope, &ids, false, true)?;
    let by_id: HashMap<&PointId, Vec<f32>> = points
        .iter()
        .filter_map(|p| {
            let v = p.vectors.as_ref()?.get(DENSE)?.as_array()?;
            Some((
                &p.id,
                v.iter().map(|x| x.as_f64().unwrap_or(0.0) as f32).collect(),
            ))
        })
        .collect();
    let vecs: Vec<Option<&Vec<f32>>> = ids.iter().map(|id| by_id.get(id)).collect();
    let (lo, hi) = ranked
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), h| {
            (lo.min(h.score), hi.max(h.score))
        });
    let rel: Vec<f32> = ranked
        .iter()
        .map(|h| {
            if hi > lo {
                (h.score - lo) / (hi - lo)
            } else {
                1.0
            }
        })
        .collect();
    let mut chosen: Vec<usize> = Vec::with_capacity(n);
    let mut max_sim = vec![f32::NEG_INFINITY; n];
    let mut taken = vec![false; n];
    for _ in 0..n {
        let mut best: Option<(usize, f32)> = None;
        for i in (0..n).filter(|&i| !taken[i]) {
            let red = if chosen.is_empty() { 0.0 } else { max_sim[i] };
            let v = lambda * rel[i] - (1.0 - lambda) * red;
            if best.is_none_or(|(_, b)| v > b) {
                best = Some((i, v));
            }
        }
        let Some((i, _)) = best else { break };
        taken[i] = true;
        chosen.push(i);
        if let Some(vi) = vecs[i] {
            for j in (0..n).filter(|&j| !taken[j]) {
                if let Some(vj) = vecs[j] {
                    let s = vi.iter().zip(vj.iter()).map(|(a, b)| a * b).sum::<f32>();
                    max_sim[j] = max_sim[j].max(s);
                }
            }
        }
    }
    let mut slots: Vec<Option<ChunkHit>> = ranked.into_iter().map(Some).collect();
    let mut out: Vec<ChunkHit> = chosen.into_iter().filter_map(|i| slots[i].take()).collect();
    out.extend(rest);
    Ok(out)
}

/// Groups ranked chunks by document (up to `group_size` each, `k` documents), or returns the
/// first `k` chunks as single-chunk groups.
fn group(ranked: Vec<ChunkHit>, k: usize, group_size: Option<usize>) -> Vec<DocumentHit> {
    let Some(size) = group_size else {
        return ranked
            .into_iter()
            .take(k)
            .map(|h| DocumentHit {
                doc_id: h.doc_id.clone(),
                score: h.score,
                chunks: vec![h],
                copies: Vec::new(),
            })
            .collect();
    };
    let mut out: Vec<DocumentHit> = Vec::new();
    let mut at: HashMap<String, usize> = HashMap::new();
    for h in ranked {
        match at.get(&h.doc_id) {
            Some(&i) if out[i].chunks.len() < size => out[i].chunks.push(h),
            Some(_) => {}
            None if out.len() < k => {
                at.insert(h.doc_id.clone(), out.len());
                out.push(DocumentHit {
                    doc_id: h.doc_id.clone(),
                    score: h.score,
                    chunks: vec![h],
                    copies: Vec::new(),
                });
            }
            None => {}
        }
    }
    out
}
