//! `search`: by vector, or by text through the hybrid plan (the text path is `docs.rs`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::{json, Value};
use sextant_engine::SearchRequest;

use crate::db::{
    collection, open, parse_filter, parse_filter_json, print_json, service, DbArgs, TenantArgs,
};

/// Retrieval options shared by `search --text/--queries` and `ask`. Options that only some
/// modes use are refused where they would do nothing (never silently ignored).
#[derive(Debug, Clone, Default, Args)]
pub struct RetrievalArgs {
    /// Text search mode: dense, bm25, splade or hybrid [default: hybrid].
    #[arg(long)]
    pub mode: Option<String>,
    /// Sources of hybrid mode, comma-separated (dense, bm25, splade) [default: dense,bm25].
    #[arg(long)]
    pub sources: Option<String>,
    /// Fusion weights, one finite non-negative number per hybrid source [default: all 1].
    #[arg(long)]
    pub weights: Option<String>,
    /// Hybrid fusion: weighted (min-max normalised scores, summed with the weights), weighted-z
    /// (z-score normalised), rrf (reciprocal rank, k = 60) or dbsf (3-sigma normalised)
    /// [default: weighted].
    #[arg(long)]
    pub fusion: Option<String>,
    /// Chunks each source contributes [default: max(3 k, 100)].
    #[arg(long)]
    pub source_k: Option<usize>,
    /// Rerank: a cross-encoder model directory, or `maxsim` (late interaction over the
    /// collection's own model's token states).
    #[arg(long)]
    pub rerank: Option<String>,
    /// Chunks to rerank (with --rerank) [default: 50].
    #[arg(long, requires = "rerank")]
    pub rerank_top: Option<usize>,
    /// Blend the reranker's order with the first stage's over the reranked chunks (with
    /// --rerank): each is placed by w · reranker rank + (1 − w) · first-stage rank, w in
    /// [0, 1] [default: the reranker's order alone]. For a cross-encoder trained in place
    /// (`finetune --cross-encoder`), weaker than hybrid on its own, 0.3 is a start.
    #[arg(long, requires = "rerank")]
    pub rerank_blend: Option<f32>,
    /// MMR diversity: lambda in [0, 1] (1 = relevance only).
    #[arg(long)]
    pub mmr: Option<f32>,
    /// Search with the model's own query embedding, not through the collection's query
    /// adapter (`sextant adapter train`); dense sources only.
    #[arg(long)]
    pub no_adapter: bool,
    /// Numeric precision of the query-side embedding model: f32, bf16, int8 or auto (measured at load) [default: auto].
    #[cfg(feature = "embed")]
    #[arg(long, value_parser = crate::embed::parse_precision)]
    pub precision: Option<sextant_embed::Precision>,
    /// Chunks per document: results are grouped by document [search default: 1; ask default:
    /// no grouping, chunks in rank order].
    #[arg(long)]
    pub group_size: Option<usize>,
    /// The language BM25 analyses the query in: a name (`french`) or ISO 639-1 code (`fr`)
    /// [default: the collection's language; with `--language auto` at ingest, the language
    /// whose terms the index holds most]. `--explain` shows the choice.
    #[arg(long, value_name = "LANG")]
    pub query_language: Option<String>,
    /// Query expansion: `rm3` (pseudo-relevance feedback: terms of the first BM25 results
    /// added to the BM25 query), `multi-query` (rewrites from --expand-llm, each searched, the
    /// lists fused by reciprocal rank) or `hyde` (--expand-llm writes a passage answering the
    /// query; the dense source embeds it instead). docs/languages.md has the details.
    #[arg(long, value_name = "METHOD")]
    pub expand: Option<String>,
    /// The language model of `--expand multi-query` and `hyde`: an OpenAI-compatible endpoint
    /// (`http://host:port`, `…/v1`); the key comes from SEXTANT_LLM_API_KEY.
    #[arg(long, value_name = "URL")]
    pub expand_llm: Option<String>,
    /// Model name sent to --expand-llm.
    #[arg(long, requires = "expand_llm", default_value = "gpt-4o-mini")]
    pub expand_llm_model: String,
    /// Multi-query: rewrites asked for [default: 3].
    #[arg(long, requires = "expand")]
    pub rewrites: Option<usize>,
    /// RM3: feedback chunks [default: 10].
    #[arg(long, requires = "expand")]
    pub rm3_docs: Option<usize>,
    /// RM3: expansion terms kept [default: 10].
    #[arg(long, requires = "expand")]
    pub rm3_terms: Option<usize>,
    /// RM3: weight of the original query, in [0, 1] [default: 0.5].
    #[arg(long, requires = "expand")]
    pub rm3_weight: Option<f32>,
}

impl RetrievalArgs {
    /// The flags given on the command line, by name (for refusing them where they do nothing).
    pub fn given(&self) -> Vec<&'static str> {
        #[cfg(feature = "embed")]
        let precision = self.precision.is_some();
        #[cfg(not(feature = "embed"))]
        let precision = false;
        [
            ("--mode", self.mode.is_some()),
            ("--sources", self.sources.is_some()),
            ("--weights", self.weights.is_some()),
            ("--fusion", self.fusion.is_some()),
            ("--source-k", self.source_k.is_some()),
            ("--rerank", self.rerank.is_some()),
            ("--rerank-top", self.rerank_top.is_some()),
            ("--rerank-blend", self.rerank_blend.is_some()),
            ("--mmr", self.mmr.is_some()),
            ("--no-adapter", self.no_adapter),
            ("--precision", precision),
            ("--group-size", self.group_size.is_some()),
            ("--query-language", self.query_language.is_some()),
            ("--expand", self.expand.is_some()),
            ("--expand-llm", self.expand_llm.is_some()),
            ("--rewrites", self.rewrites.is_some()),
            ("--rm3-docs", self.rm3_docs.is_some()),
            ("--rm3-terms", self.rm3_terms.is_some()),
            ("--rm3-weight", self.rm3_weight.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, g)| g.then_some(f))
        .collect()
    }
}

/// `search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Collection or alias.
    pub name: String,
    /// The query vector as a JSON array.
    #[arg(
        long,
        conflicts_with = "vector_file",
        required_unless_present_any = ["vector_file", "text", "queries", "image"]
    )]
    pub vector: Option<String>,
    /// A text query (collections made by `ingest`).
    #[arg(long, conflicts_with_all = ["vector", "vector_file", "queries", "image"])]
    pub text: Option<String>,
    /// Search by a picture (PNG, JPEG or WebP file) in a collection made by `ingest` with a
    /// CLIP model: the dense source searches with the image's embedding (mode dense).
    #[arg(long, conflicts_with_all = ["vector", "vector_file", "queries"])]
    pub image: Option<PathBuf>,
    /// Text queries from a BEIR `queries.jsonl` (`_id`, `text`); one ranked list of documents
    /// per query.
    #[arg(long, conflicts_with_all = ["vector", "vector_file"])]
    pub queries: Option<PathBuf>,
    #[command(flatten)]
    pub retrieval: RetrievalArgs,
    /// Write text-query results as a TREC run (`qid Q0 docid rank score tag`).
    #[arg(long)]
    pub run_out: Option<PathBuf>,
    /// Query vectors from a file: JSON (one array or an array of arrays), `.npy` or `.fvecs`.
    #[arg(long)]
    pub vector_file: Option<PathBuf>,
    /// Vector space to search (needed when the collection has several).
    #[arg(long)]
    pub space: Option<String>,
    /// Payload filter (JSON, e.g. `{"must":[{"key":"tag","match":{"value":"a"}}]}`).
    #[arg(long)]
    pub filter: Option<String>,
    #[command(flatten)]
    pub tenant: TenantArgs,
    /// Number of results.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Candidates an approximate search keeps (higher: better recall, slower): the HNSW
    /// candidate list, or the ivf_pq candidates rescored exactly; for a text query, of its
    /// dense source. Raised to --k, except by a filtered HNSW walk (it stops at its ef-th
    /// match and still returns the k closest matches it found).
    #[arg(long)]
    pub ef: Option<usize>,
    /// Lists an ivf_pq space scans (higher: better recall, slower) [default: the space's
    /// nprobe]; vector queries only.
    #[arg(long)]
    pub nprobe: Option<usize>,
    /// Include payloads.
    #[arg(long)]
    pub with_payload: bool,
    /// Include stored vectors.
    #[arg(long)]
    pub with_vector: bool,
    /// Explain the search: for a vector search, the per-segment plan (matching points, exact
    /// scan or graph walk); for a text search, what each source did (hits, and for BM25 the
    /// language the query was analysed in and each term's weight).
    #[arg(long)]
    pub explain: bool,
}

/// Runs `search`.
pub fn run_search(args: &DbArgs, s: SearchArgs) -> Result<()> {
    if s.text.is_some() || s.queries.is_some() || s.image.is_some() {
        let vector_only: Vec<&str> = [
            ("--space", s.space.is_some()),
            ("--nprobe", s.nprobe.is_some()),
            ("--with-vector", s.with_vector),
            ("--with-payload", s.with_payload),
        ]
        .into_iter()
        .filter_map(|(f, g)| g.then_some(f))
        .collect();
        if !vector_only.is_empty() {
            bail!(
                "{} {} to vector search only: text search uses the document collection's own spaces (pick them with --mode/--sources) and always returns chunk payloads",
                vector_only.join(", "),
                if vector_only.len() == 1 { "applies" } else { "apply" }
            );
        }
        #[cfg(feature = "embed")]
        {
            let queries = match (&s.text, &s.queries) {
                (Some(t), _) => vec![("q".to_string(), t.clone())],
                (None, Some(p)) => crate::docs::read_queries(p)?,
                (None, None) => vec![("q".to_string(), String::new())],
            };
            let image = s
                .image
                .as_deref()
                .map(|p| {
                    std::fs::read(p)
                        .with_context(|| format!("--image: cannot read {}", p.display()))
                        .map(|b| sextant_service::plan::image_base64(&b))
                })
                .transpose()?;
            return crate::docs::run_text_search(
                &service(args)?,
                crate::docs::TextSearch {
                    name: &s.name,
                    queries,
                    retrieval: &s.retrieval,
                    k: s.k,
                    ef: s.ef,
                    filter: parse_filter_json(s.filter.as_deref())?,
                    tenant: &s.tenant,
                    run_out: s.run_out.as_deref(),
                    json_out: args.json,
                    explain: s.explain,
                    image,
                },
            );
        }
        #[cfg(not(feature = "embed"))]
        bail!("text search needs the `embed` feature (this build has none)");
    }
    let retrieval = s.retrieval.given();
    if !retrieval.is_empty() || s.run_out.is_some() {
        let mut flags = retrieval;
        if s.run_out.is_some() {
            flags.push("--run-out");
        }
        bail!(
            "{} {} to text search (--text or --queries) only; a vector search has no text to rank",
            flags.join(", "),
            if flags.len() == 1 { "applies" } else { "apply" }
        );
    }
    let db = open(args)?;
    let c = collection(&db, &s.name)?;
    let queries = match (&s.vector, &s.vector_file) {
        (Some(v), _) => {
            let v: Value = serde_json::from_str(v).context("--vector is not JSON")?;
            vec![sextant_service::import::vector_from_json(&v, "--vector")?]
        }
        (None, Some(f)) => sextant_service::import::read_query_vectors(f)?,
        (None, None) => bail!("give --vector or --vector-file"),
    };
    let filter = parse_filter(s.filter.as_deref())?;
    let scope = s.tenant.scope(c.name(), c.schema())?;
    let mut out = Vec::new();
    let stdout = std::io::stdout();
    for q in queries {
        let r = c.search(SearchRequest {
            space: s.space.clone(),
            vector: q,
            k: s.k,
            ef: s.ef,
            nprobe: s.nprobe,
            filter: filter.clone(),
            scope: scope.clone(),
            with_payload: s.with_payload,
            with_vector: s.with_vector,
            exact_threshold: None,
        })?;
        if args.json {
            out.push(if s.explain {
                serde_json::to_value(&r)?
            } else {
                json!({"hits": r.hits})
            });
        } else {
            let mut lock = stdout.lock();
            if s.explain {
                for p in &r.plan {
                    writeln!(
                        lock,
                        "# segment {}: {} of {} points match, {:?}",
                        p.segment, p.matching, p.points, p.strategy
                    )?;
                }
            }
            if !r.unindexed_keys.is_empty() {
                eprintln!(
                    "note: no payload index for {}; those conditions scanned payloads",
                    r.unindexed_keys.join(", ")
                );
            }
            for h in &r.hits {
                writeln!(lock, "{}", serde_json::to_string(h)?)?;
            }
            if out.is_empty() {
                writeln!(lock)?;
            }
        }
    }
    if args.json {
        if out.len() == 1 {
            print_json(&out[0])?;
        } else {
            print_json(&out)?;
        }
    }
    Ok(())
}
