//! The hybrid plan from a text search request: [`TextSearchRequest`] (what a user asks for, as
//! the CLI's flags and the server's JSON body spell it) → the engine's [`TextQuery`] and the
//! models it needs ([`ModelNeeds`]).
//!
//! Options a request's mode would not use are refused, never silently ignored: `sources`,
//! `weights` and `fusion` outside hybrid mode, an MMR lambda outside [0, 1], a group size of 0,
//! `rerank_top` or `rerank_blend` without `rerank`, a blend outside [0, 1], weights that are not finite and non-negative. Each refusal is
//! [`ErrorKind::InvalidInput`](sextant_core::ErrorKind::InvalidInput) naming the field.

use serde::{Deserialize, Serialize};
use sextant_core::Filter;
use sextant_embed::Precision;
use sextant_engine::documents::search::{Rm3, Source, SourceKind, TextQuery};
use sextant_engine::fusion::{Fusion, Normalization, DEFAULT_RRF_K};

use crate::error::{Error, Result};

/// Default text search mode.
pub const DEFAULT_MODE: &str = "hybrid";
/// Default sources of hybrid mode.
pub const DEFAULT_SOURCES: &[&str] = &["dense", "bm25"];
/// Default hybrid fusion.
pub const DEFAULT_FUSION: &str = "weighted";
/// Default number of fused chunks a reranker scores.
pub const DEFAULT_RERANK_TOP: usize = 50;
/// Default number of results of a text search.
pub const DEFAULT_K: usize = 10;
/// Default chunks per document of a text search (results are documents).
pub const DEFAULT_GROUP_SIZE: usize = 1;
/// The `rerank` value that reranks by late interaction over the collection's own model.
pub const MAXSIM: &str = "maxsim";

/// A text search over a document collection. Every field but `text` is optional; the defaults
/// are the constants of this module.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextSearchRequest {
    /// The query text (empty with `image`).
    #[serde(default)]
    pub text: String,
    /// Search by a picture instead of text, in a collection whose model embeds images (CLIP):
    /// PNG, JPEG or WebP bytes, base64. The dense source searches with the image's embedding;
    /// `mode` is dense (the default with an image), and `text`, `rerank`, `mmr`, `expand` and
    /// `query_language` are refused with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Results: documents when grouping (the default), else chunks [default: 10].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    /// dense, bm25, splade or hybrid [default: hybrid].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// Sources of hybrid mode: dense, bm25, splade [default: dense, bm25].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<String>>,
    /// Fusion weights, one finite non-negative number per hybrid source [default: all 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weights: Option<Vec<f32>>,
    /// Hybrid fusion: weighted (min-max), weighted-z (z-score), rrf (k = 60) or dbsf
    /// [default: weighted].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fusion: Option<String>,
    /// Rerank: a cross-encoder model (directory or configured name), or `maxsim`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerank: Option<String>,
    /// Chunks to rerank (with `rerank`) [default: 50].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerank_top: Option<usize>,
    /// Blend the reranker's order with the first stage's over the reranked chunks (with
    /// `rerank`): each is placed by `w · reranker rank + (1 − w) · first-stage rank`, w in
    /// [0, 1] [default: the reranker's order alone]. For a cross-encoder trained in place,
    /// weaker than hybrid on its own: 0.3 (BENCHMARKS.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rerank_blend: Option<f32>,
    /// Chunks each source contributes [default: max(3 k, 100)].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_k: Option<usize>,
    /// MMR diversity: lambda in [0, 1] (1 = relevance only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mmr: Option<f32>,
    /// Chunks per document (results grouped by document) [search: 1; ask: no grouping].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_size: Option<usize>,
    /// Payload filter (the filter JSON of `sextant search --filter`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub filter: Option<serde_json::Value>,
    /// HNSW candidate list size of the dense source (default: the index's); dense sources
    /// only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef: Option<usize>,
    /// Exact (flat) search for the dense source instead of the HNSW walk (the baseline that
    /// shows what the approximate index loses); dense sources only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact: bool,
    /// Map the embedded query through the collection's query adapter, when one is attached
    /// (`sextant adapter train`) [default: true]; `false` searches with the model's own query
    /// embedding. Dense sources only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adapter: Option<bool>,
    /// Numeric precision of the query-side embedding model: f32, bf16, int8 or auto (measured at load) [default: auto].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    /// The language BM25 analyses the query in (a name such as `french` or its ISO 639-1
    /// code) [default: the collection's language; with `auto`, the language whose terms the
    /// index holds most]; BM25 sources only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_language: Option<String>,
    /// Query expansion: `rm3` (pseudo-relevance feedback from the first BM25 results; BM25
    /// sources only), `multi-query` (`rewrites` rewrites of the query from `llm`, each searched,
    /// the lists fused by reciprocal rank) or `hyde` (`llm` writes a passage answering the
    /// query, which the dense source embeds instead of it; dense sources only)
    /// [default: none].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expand: Option<String>,
    /// Multi-query: rewrites asked of the language model [default: 3].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrites: Option<usize>,
    /// The language model of `multi-query` and `hyde` expansion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<crate::service::LlmRequest>,
    /// RM3: feedback chunks [default: 10]; with `expand: rm3` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rm3_docs: Option<usize>,
    /// RM3: expansion terms kept [default: 10]; with `expand: rm3` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rm3_terms: Option<usize>,
    /// RM3: weight of the original query in [0, 1] [default: 0.5]; with `expand: rm3` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rm3_weight: Option<f32>,
}

/// The `image` of a [`TextSearchRequest`] from the picture's bytes (base64).
pub fn image_base64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// An image query searches the dense source with the image's embedding and nothing else: what
/// needs query text is refused by name.
fn check_image_query(r: &TextSearchRequest) -> Result<()> {
    if !r.text.trim().is_empty() {
        return Err(Error::invalid(
            "text",
            "give a text or an image to search by, not both",
        ));
    }
    if let Some(m) = r.mode.as_deref().filter(|m| *m != "dense") {
        return Err(Error::invalid(
            "mode",
            format!("mode {m}: an image is searched by the dense source only (mode dense)"),
        ));
    }
    for (field, given) in [
        ("rerank", r.rerank.is_some()),
        ("mmr", r.mmr.is_some()),
        ("expand", r.expand.is_some()),
        ("query_language", r.query_language.is_some()),
    ] {
        if given {
            return Err(Error::invalid(
                field,
                format!("{field} needs a text query; an image query has none"),
            ));
        }
    }
    Ok(())
}

/// The reranker a plan needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reranker {
    /// A cross-encoder (directory, hub id or configured name).
    Cross(String),
    /// MaxSim over the collection's own embedding model.
    MaxSim,
}

/// The models a plan needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelNeeds {
    /// The collection's embedding model (dense source or MMR).
    pub dense: bool,
    /// The collection's SPLADE model.
    pub splade: bool,
    /// A reranker.
    pub reranker: Option<Reranker>,
    /// Precision of the query-side embedding model.
    pub precision: Precision,
}

/// A request made into the engine's query (its `scope` is left to the caller) and its needs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The query.
    pub query: TextQuery,
    /// The models it needs.
    pub needs: ModelNeeds,
    /// The mode it runs (for run tags).
    pub mode: String,
    /// Expansion through a language model, done by the service before and around the query.
    pub llm_expansion: Option<LlmExpansion>,
}

/// Multi-query rewrites per query by default.
pub const DEFAULT_REWRITES: usize = 3;

/// Query expansion through a language model.
#[derive(Debug, Clone, PartialEq)]
pub enum LlmExpansion {
    /// This many rewrites, each searched beside the query; lists fused by reciprocal rank.
    MultiQuery(usize, crate::service::LlmRequest),
    /// A hypothetical answer passage, embedded by the dense source instead of the query.
    Hyde(crate::service::LlmRequest),
}

/// Parses a fusion name.
pub fn parse_fusion(s: &str) -> Result<Fusion> {
    Ok(match s {
        "rrf" => Fusion::Rrf { k: DEFAULT_RRF_K },
        "weighted" => Fusion::Weighted(Normalization::MinMax),
        "weighted-z" => Fusion::Weighted(Normalization::ZScore),
        "dbsf" => Fusion::Dbsf,
        _ => {
            return Err(Error::invalid(
                "fusion",
                format!("unknown fusion {s:?}: expected rrf, weighted, weighted-z or dbsf"),
            ))
        }
    })
}

/// Precision of the models a request loads when it names none: measured at load (the fastest
/// within cosine 0.999 of f32 on this CPU; see `sextant_embed::Precision::Auto`).
pub const DEFAULT_PRECISION: Precision = Precision::Auto;

/// Parses a precision name.
pub fn parse_precision(s: &str) -> Result<Precision> {
    s.parse()
        .map_err(|e: sextant_embed::EmbedError| Error::invalid("precision", e.to_string()))
}

/// Parses a request's filter.
pub fn parse_filter(filter: Option<&serde_json::Value>) -> Result<Option<Filter>> {
    filter
        .map(|f| Filter::from_json(f).map_err(Error::from))
        .transpose()
}

/// Plans a request: checks every option against the mode and fills the defaults.
pub fn plan(r: &TextSearchRequest) -> Result<Plan> {
    if r.image.is_some() {
        check_image_query(r)?;
    }
    let mode = r.mode.as_deref().unwrap_or(if r.image.is_some() {
        "dense"
    } else {
        DEFAULT_MODE
    });
    let kinds: Vec<SourceKind> = match mode {
        "dense" => vec![SourceKind::Dense],
        "bm25" => vec![SourceKind::Bm25],
        "splade" => vec![SourceKind::Splade],
        "hybrid" => {
            let given: Vec<&str> = match &r.sources {
                Some(s) => s.iter().map(|s| s.trim()).collect(),
                None => DEFAULT_SOURCES.to_vec(),
            };
            given
                .iter()
                .map(|s| s.parse::<SourceKind>().map_err(Error::from))
                .collect::<Result<_>>()
                .map_err(|e| e.with_field("sources"))?
        }
        other => {
            return Err(Error::invalid(
                "mode",
                format!("unknown mode {other:?}: expected dense, bm25, splade or hybrid"),
            ))
        }
    };
    if mode != "hybrid" {
        let hybrid_only: Vec<&str> = [
            ("sources", r.sources.is_some()),
            ("weights", r.weights.is_some()),
            ("fusion", r.fusion.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, g)| g.then_some(f))
        .collect();
        if let Some(first) = hybrid_only.first() {
            return Err(Error::invalid(
                *first,
                format!(
                    "{} apply to mode hybrid only; mode {mode} has one source, ranked by its own scores",
                    hybrid_only.join(", ")
                ),
            ));
        }
    }
    if kinds.is_empty() {
        return Err(Error::invalid("sources", "give at least one source"));
    }
    if let Some(l) = r.mmr {
        if !(0.0..=1.0).contains(&l) {
            return Err(Error::invalid(
                "mmr",
                format!("mmr {l}: lambda must be in [0, 1]"),
            ));
        }
    }
    if r.group_size == Some(0) {
        return Err(Error::invalid(
            "group_size",
            "group_size must be at least 1",
        ));
    }
    if r.rerank_top.is_some() && r.rerank.is_none() {
        return Err(Error::invalid(
            "rerank_top",
            "rerank_top applies with rerank only (name a reranker)",
        ));
    }
    if r.rerank_blend.is_some() && r.rerank.is_none() {
        return Err(Error::invalid(
            "rerank_blend",
            "rerank_blend applies with rerank only (name a reranker)",
        ));
    }
    if let Some(w) = r.rerank_blend.filter(|w| !(0.0..=1.0).contains(w)) {
        return Err(Error::invalid(
            "rerank_blend",
            format!("rerank_blend {w}: the weight must be in [0, 1]"),
        ));
    }
    if r.k == Some(0) {
        return Err(Error::invalid("k", "k must be at least 1"));
    }
    if r.source_k == Some(0) {
        return Err(Error::invalid("source_k", "source_k must be at least 1"));
    }
    let mut q = TextQuery::new(&r.text, &kinds, r.k.unwrap_or(DEFAULT_K));
    if let Some(d) = r.source_k {
        for s in &mut q.sources {
            s.k = d;
        }
    }
    if let Some(w) = &r.weights {
        if let Some(x) = w.iter().find(|x| !x.is_finite() || **x < 0.0) {
            return Err(Error::invalid(
                "weights",
                format!("weights {w:?}: {x} is not a finite non-negative weight"),
            ));
        }
        if w.len() != q.sources.len() {
            return Err(Error::invalid(
                "weights",
                format!(
                    "weights has {} values for {} sources",
                    w.len(),
                    q.sources.len()
                ),
            ));
        }
        for (s, &w) in q.sources.iter_mut().zip(w) {
            *s = Source { weight: w, ..*s };
        }
        // A source weighted 0 contributes nothing: it is not searched at all (it would only
        // pad the fused list with zero-scored chunks and cost its search).
        q.sources.retain(|s| s.weight > 0.0);
        if q.sources.is_empty() {
            return Err(Error::invalid(
                "weights",
                format!("weights {w:?}: at least one source needs a positive weight"),
            ));
        }
    }
    let kinds: Vec<SourceKind> = q.sources.iter().map(|s| s.kind).collect();
    q.fusion = parse_fusion(r.fusion.as_deref().unwrap_or(DEFAULT_FUSION))?;
    q.filter = parse_filter(r.filter.as_ref())?;
    if (r.ef.is_some() || r.exact) && !kinds.contains(&SourceKind::Dense) {
        let field = if r.exact { "exact" } else { "ef" };
        return Err(Error::invalid(
            field,
            format!("{field} applies to the dense source; this plan (mode {mode}, with its weights) searches none"),
        ));
    }
    if r.adapter.is_some() && !kinds.contains(&SourceKind::Dense) {
        return Err(Error::invalid(
            "adapter",
            "the query adapter maps the dense source's query embedding; this plan has no dense source",
        ));
    }
    if r.ef == Some(0) {
        return Err(Error::invalid("ef", "ef must be at least 1"));
    }
    if r.ef.is_some() && r.exact {
        return Err(Error::invalid(
            "ef",
            "ef sets the HNSW walk, which exact search does not take; give one of them",
        ));
    }
    if let Some(l) = &r.query_language {
        if !kinds.contains(&SourceKind::Bm25) {
            return Err(Error::invalid(
                "query_language",
                format!("query_language applies to the bm25 source; this plan (mode {mode}, with its weights) searches none"),
            ));
        }
        q.language = Some(
            l.parse::<sextant_text::Language>()
                .map_err(|e| Error::invalid("query_language", e))?,
        );
    }
    match r.expand.as_deref() {
        Some("rm3") => {
            if !kinds.contains(&SourceKind::Bm25) {
                return Err(Error::invalid(
                    "expand",
                    format!("expand rm3 expands the bm25 source; this plan (mode {mode}, with its weights) searches none"),
                ));
            }
            let d = Rm3::default();
            let rm3 = Rm3 {
                fb_docs: r.rm3_docs.unwrap_or(d.fb_docs),
                fb_terms: r.rm3_terms.unwrap_or(d.fb_terms),
                original_weight: r.rm3_weight.unwrap_or(d.original_weight),
            };
            if rm3.fb_docs == 0 {
                return Err(Error::invalid("rm3_docs", "rm3_docs must be at least 1"));
            }
            if !(0.0..=1.0).contains(&rm3.original_weight) {
                return Err(Error::invalid(
                    "rm3_weight",
                    format!("rm3_weight {}: must be in [0, 1]", rm3.original_weight),
                ));
            }
            q.rm3 = Some(rm3);
        }
        Some(e @ ("multi-query" | "hyde")) => {
            if r.llm.is_none() {
                return Err(Error::invalid(
                    "llm",
                    format!("expand {e} needs a language model (llm: its endpoint)"),
                ));
            }
            if e == "hyde" && !kinds.contains(&SourceKind::Dense) {
                return Err(Error::invalid(
                    "expand",
                    format!("expand hyde replaces the dense source's query; this plan (mode {mode}, with its weights) searches none"),
                ));
            }
        }
        Some(other) => {
            return Err(Error::invalid(
                "expand",
                format!("unknown query expansion {other:?}: expected rm3, multi-query or hyde"),
            ))
        }
        None => {}
    }
    if r.expand.as_deref() != Some("rm3") {
        let given: Vec<&str> = [
            ("rm3_docs", r.rm3_docs.is_some()),
            ("rm3_terms", r.rm3_terms.is_some()),
            ("rm3_weight", r.rm3_weight.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, g)| g.then_some(f))
        .collect();
        if let Some(first) = given.first() {
            return Err(Error::invalid(
                *first,
                format!("{} apply with expand rm3 only", given.join(", ")),
            ));
        }
    }
    let llm_expansion = match (r.expand.as_deref(), &r.llm) {
        (Some("multi-query"), Some(llm)) => {
            let n = r.rewrites.unwrap_or(DEFAULT_REWRITES);
            if !(1..=10).contains(&n) {
                return Err(Error::invalid(
                    "rewrites",
                    format!("rewrites {n}: must be 1..=10"),
                ));
            }
            Some(LlmExpansion::MultiQuery(n, llm.clone()))
        }
        (Some("hyde"), Some(llm)) => Some(LlmExpansion::Hyde(llm.clone())),
        (_, Some(_)) => {
            return Err(Error::invalid(
                "llm",
                "llm applies with expand multi-query or hyde only (ask takes its answering model separately)",
            ))
        }
        (_, None) => None,
    };
    if r.rewrites.is_some() && r.expand.as_deref() != Some("multi-query") {
        return Err(Error::invalid(
            "rewrites",
            "rewrites applies with expand multi-query only",
        ));
    }
    q.ef = r.ef;
    q.exact = r.exact;
    q.adapter = r.adapter.unwrap_or(true);
    q.mmr_lambda = r.mmr;
    q.group_size = Some(r.group_size.unwrap_or(DEFAULT_GROUP_SIZE));
    let reranker = match r.rerank.as_deref() {
        Some(MAXSIM) => Some(Reranker::MaxSim),
        Some(m) => Some(Reranker::Cross(m.to_string())),
        None => None,
    };
    if reranker.is_some() {
        q.rerank_top = r.rerank_top.unwrap_or(DEFAULT_RERANK_TOP);
        q.rerank_blend = r.rerank_blend;
    }
    let precision = r
        .precision
        .as_deref()
        .map(parse_precision)
        .transpose()?
        .unwrap_or(DEFAULT_PRECISION);
    Ok(Plan {
        needs: ModelNeeds {
            dense: kinds.contains(&SourceKind::Dense) || r.mmr.is_some(),
            splade: kinds.contains(&SourceKind::Splade),
            reranker,
            precision,
        },
        query: q,
        mode: mode.to_string(),
        llm_expansion,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_core::ErrorKind;

    fn req() -> TextSearchRequest {
        TextSearchRequest {
            text: "foxes".into(),
            ..Default::default()
        }
    }

    fn refused(r: TextSearchRequest) -> Error {
        plan(&r).expect_err("refused")
    }

    #[test]
    fn the_defaults_are_hybrid_dense_and_bm25_weighted_grouped() {
        let p = plan(&req()).unwrap();
        assert_eq!(p.mode, "hybrid");
        let kinds: Vec<_> = p.query.sources.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, vec![SourceKind::Dense, SourceKind::Bm25]);
        assert_eq!(p.query.k, DEFAULT_K);
        assert_eq!(p.query.group_size, Some(1));
        assert_eq!(p.query.rerank_top, 0);
        assert_eq!(p.query.fusion, Fusion::Weighted(Normalization::MinMax));
        assert!(p.needs.dense && !p.needs.splade && p.needs.reranker.is_none());
    }

    #[test]
    fn query_language_and_rm3_reach_the_bm25_source_or_are_refused() {
        let p = plan(&TextSearchRequest {
            query_language: Some("FR".into()),
            expand: Some("rm3".into()),
            rm3_terms: Some(20),
            ..req()
        })
        .unwrap();
        assert_eq!(p.query.language, Some(sextant_text::Language::French));
        let rm3 = p.query.rm3.expect("rm3");
        assert_eq!(
            (rm3.fb_docs, rm3.fb_terms, rm3.original_weight),
            (10, 20, 0.5)
        );
        assert!(plan(&req()).unwrap().query.rm3.is_none());
        let dense = |f: fn(&mut TextSearchRequest)| {
            let mut r = TextSearchRequest {
                mode: Some("dense".into()),
                ..req()
            };
            f(&mut r);
            r
        };
        let cases: Vec<(TextSearchRequest, &str)> = vec![
            (
                dense(|r| r.query_language = Some("fr".into())),
                "query_language",
            ),
            (dense(|r| r.expand = Some("rm3".into())), "expand"),
            (
                TextSearchRequest {
                    query_language: Some("klingon".into()),
                    ..req()
                },
                "query_language",
            ),
            (
                TextSearchRequest {
                    expand: Some("magic".into()),
                    ..req()
                },
                "expand",
            ),
            (
                TextSearchRequest {
                    expand: Some("hyde".into()),
                    ..req()
                },
                "llm",
            ),
            (
                TextSearchRequest {
                    rewrites: Some(2),
                    ..req()
                },
                "rewrites",
            ),
            (
                TextSearchRequest {
                    rm3_docs: Some(5),
                    ..req()
                },
                "rm3_docs",
            ),
            (
                TextSearchRequest {
                    expand: Some("rm3".into()),
                    rm3_docs: Some(0),
                    ..req()
                },
                "rm3_docs",
            ),
            (
                TextSearchRequest {
                    expand: Some("rm3".into()),
                    rm3_weight: Some(1.5),
                    ..req()
                },
                "rm3_weight",
            ),
        ];
        for (r, field) in cases {
            let e = refused(r.clone());
            assert_eq!(e.field(), Some(field), "{r:?}: {e}");
        }
    }

    #[test]
    fn each_refusal_names_its_field() {
        let cases: Vec<(TextSearchRequest, &str)> = vec![
            (
                TextSearchRequest {
                    mode: Some("nope".into()),
                    ..req()
                },
                "mode",
            ),
            (
                TextSearchRequest {
                    sources: Some(vec!["x".into()]),
                    ..req()
                },
                "sources",
            ),
            (
                TextSearchRequest {
                    sources: Some(vec![]),
                    ..req()
                },
                "sources",
            ),
            (
                TextSearchRequest {
                    mode: Some("bm25".into()),
                    sources: Some(vec!["dense".into()]),
                    ..req()
                },
                "sources",
            ),
            (
                TextSearchRequest {
                    mode: Some("dense".into()),
                    fusion: Some("rrf".into()),
                    ..req()
                },
                "fusion",
            ),
            (
                TextSearchRequest {
                    mode: Some("bm25".into()),
                    weights: Some(vec![1.0]),
                    ..req()
                },
                "weights",
            ),
            (
                TextSearchRequest {
                    weights: Some(vec![f32::NAN, 1.0]),
                    ..req()
                },
                "weights",
            ),
            (
                TextSearchRequest {
                    weights: Some(vec![-1.0, 1.0]),
                    ..req()
                },
                "weights",
            ),
            (
                TextSearchRequest {
                    weights: Some(vec![1.0]),
                    ..req()
                },
                "weights",
            ),
            (
                TextSearchRequest {
                    fusion: Some("max".into()),
                    ..req()
                },
                "fusion",
            ),
            (
                TextSearchRequest {
                    mmr: Some(1.5),
                    ..req()
                },
                "mmr",
            ),
            (
                TextSearchRequest {
                    mmr: Some(-0.1),
                    ..req()
                },
                "mmr",
            ),
            (
                TextSearchRequest {
                    group_size: Some(0),
                    ..req()
                },
                "group_size",
            ),
            (
                TextSearchRequest {
                    rerank_top: Some(5),
                    ..req()
                },
                "rerank_top",
            ),
            (
                TextSearchRequest {
                    rerank_blend: Some(0.3),
                    ..req()
                },
                "rerank_blend",
            ),
            (
                TextSearchRequest {
                    rerank: Some("maxsim".into()),
                    rerank_blend: Some(1.2),
                    ..req()
                },
                "rerank_blend",
            ),
            (
                TextSearchRequest {
                    rerank: Some("maxsim".into()),
                    rerank_blend: Some(f32::NAN),
                    ..req()
                },
                "rerank_blend",
            ),
            (
                TextSearchRequest {
                    k: Some(0),
                    ..req()
                },
                "k",
            ),
            (
                TextSearchRequest {
                    source_k: Some(0),
                    ..req()
                },
                "source_k",
            ),
            (
                TextSearchRequest {
                    precision: Some("f16".into()),
                    ..req()
                },
                "precision",
            ),
            (
                TextSearchRequest {
                    filter: Some(serde_json::json!({"must": 3})),
                    ..req()
                },
                "filter",
            ),
        ];
        for (r, field) in cases {
            let e = refused(r.clone());
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{r:?}: {e}");
            assert_eq!(e.field(), Some(field), "{r:?}: {e}");
        }
    }

    #[test]
    fn a_source_weighted_zero_is_not_searched() {
        let p = plan(&TextSearchRequest {
            sources: Some(vec!["dense".into(), "bm25".into()]),
            weights: Some(vec![0.0, 1.0]),
            ..req()
        })
        .unwrap();
        assert_eq!(p.query.sources.len(), 1);
        assert_eq!(p.query.sources[0].kind, SourceKind::Bm25);
        assert!(!p.needs.dense, "no dense model is loaded for it");
        let e = refused(TextSearchRequest {
            sources: Some(vec!["dense".into(), "bm25".into()]),
            weights: Some(vec![0.0, 0.0]),
            ..req()
        });
        assert_eq!(e.field(), Some("weights"), "{e}");
        // ef for a dense source that is not searched would be ignored: refused.
        let e = refused(TextSearchRequest {
            sources: Some(vec!["dense".into(), "bm25".into()]),
            weights: Some(vec![0.0, 1.0]),
            ef: Some(50),
            ..req()
        });
        assert_eq!(e.field(), Some("ef"), "{e}");
    }

    #[test]
    fn options_fill_the_query() {
        let p = plan(&TextSearchRequest {
            sources: Some(vec!["bm25".into(), "splade".into()]),
            weights: Some(vec![0.3, 0.7]),
            fusion: Some("rrf".into()),
            source_k: Some(7),
            rerank: Some("maxsim".into()),
            rerank_blend: Some(0.25),
            mmr: Some(0.5),
            group_size: Some(2),
            k: Some(3),
            precision: Some("bf16".into()),
            ..req()
        })
        .unwrap();
        assert_eq!(p.query.sources[1].weight, 0.7);
        assert!(p.query.sources.iter().all(|s| s.k == 7));
        assert_eq!(p.query.fusion, Fusion::Rrf { k: DEFAULT_RRF_K });
        assert_eq!(p.query.rerank_top, DEFAULT_RERANK_TOP);
        assert_eq!(p.query.rerank_blend, Some(0.25));
        assert_eq!(p.query.group_size, Some(2));
        assert_eq!(p.needs.reranker, Some(Reranker::MaxSim));
        // MMR needs the dense model even without a dense source.
        assert!(p.needs.dense && p.needs.splade);
        assert_eq!(p.needs.precision, Precision::Bf16);
    }

    #[test]
    fn unknown_json_fields_are_refused() {
        let e = serde_json::from_str::<TextSearchRequest>(r#"{"text":"x","modes":"dense"}"#);
        assert!(e.is_err());
        let r: TextSearchRequest =
            serde_json::from_str(r#"{"text":"x","mode":"bm25","k":3}"#).unwrap();
        assert_eq!(r.k, Some(3));
    }
}
