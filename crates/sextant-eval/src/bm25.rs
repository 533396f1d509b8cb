//! The BM25 benchmark: index a BEIR corpus with `sextant-text`'s encoder and `sextant-index`'s
//! sparse index (terms numbered by a `TermDict`, as a segment does), run every query (top-k by MaxScore, one thread), score the run against qrels,
//! and time both phases. The peers (`bench/peers/bm25.py`: bm25s, tantivy) write the same
//! TREC runs and metrics.

use std::path::PathBuf;
use std::time::Instant;

use serde::Serialize;
use sextant_index::{SparseIndex, SparseScoring, TermDict};
use sextant_text::{AnalyzerConfig, Bm25Encoder, Bm25Params, CorpusStats};

use crate::ir::{evaluate, read_beir, read_qrels, write_trec, Metrics, Run};
use crate::report::median;
use crate::{process_cpu_seconds, EvalError};

/// What to run.
#[derive(Debug, Clone)]
pub struct Bm25Config {
    /// BEIR `corpus.jsonl`.
    pub corpus: PathBuf,
    /// BEIR `queries.jsonl`.
    pub queries: PathBuf,
    /// BEIR qrels TSV (metrics are skipped without it).
    pub qrels: Option<PathBuf>,
    /// Results per query.
    pub k: usize,
    /// Analyzer.
    pub analyzer: AnalyzerConfig,
    /// BM25 parameters.
    pub params: Bm25Params,
    /// Query passes to time (median reported).
    pub runs: usize,
    /// Write the TREC run here.
    pub run_out: Option<PathBuf>,
}

/// A timed phase.
#[derive(Debug, Clone, Serialize)]
pub struct Timed {
    /// Items (documents or queries).
    pub items: usize,
    /// Wall seconds.
    pub wall_s: f64,
    /// CPU seconds.
    pub cpu_s: f64,
    /// Items per wall second.
    pub per_s: f64,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Bm25Report {
    /// "sextant".
    pub system: String,
    /// Version.
    pub version: String,
    /// Analyzer used.
    pub analyzer: AnalyzerConfig,
    /// Parameters used.
    pub params: Bm25Params,
    /// Results per query.
    pub k: usize,
    /// Indexing (analysis + postings).
    pub index: Timed,
    /// Searching (median pass).
    pub search: Timed,
    /// Heap bytes of the inverted index.
    pub memory_bytes: usize,
    /// Quality, when qrels were given.
    pub metrics: Option<Metrics>,
}

/// Runs the benchmark.
pub fn run(cfg: &Bm25Config) -> Result<Bm25Report, EvalError> {
    let corpus = read_beir(&cfg.corpus)?;
    let queries = read_beir(&cfg.queries)?;
    let encoder = Bm25Encoder::new(cfg.analyzer.clone(), cfg.params);
    let (c0, t0) = (process_cpu_seconds(), Instant::now());
    let mut index = SparseIndex::new();
    let mut dict = TermDict::new();
    for d in &corpus {
        let text = if d.title.is_empty() {
            d.text.clone()
        } else {
            format!("{} {}", d.title, d.text)
        };
        let (v, len) = encoder.encode_document_with(&text, |t| dict.insert(t));
        index
            .push(&v, len)
            .map_err(|e| EvalError::Invalid(e.to_string()))?;
    }
    let wall = t0.elapsed().as_secs_f64();
    let index_t = Timed {
        items: corpus.len(),
        wall_s: wall,
        cpu_s: process_cpu_seconds() - c0,
        per_s: corpus.len() as f64 / wall.max(1e-12),
    };
    let stats = CorpusStats {
        docs: index.len() as u64,
        total_len: index.total_len(),
    };
    let scoring = SparseScoring::Bm25 {
        k1: cfg.params.k1,
        b: cfg.params.b,
        avg_len: stats.avg_len(),
    };
    let mut passes = Vec::new();
    let mut run: Run = Run::new();
    for pass in 0..cfg.runs.max(1) {
        let (c0, t0) = (process_cpu_seconds(), Instant::now());
        let mut this: Run = Run::new();
        for q in &queries {
            let df = |t: &str| dict.get(t).map_or(0, |id| index.doc_freq(id) as u64);
            // As the engine analyses a query (by the index, for analyzers that detect).
            let (analysed, _) = encoder.analyse_query_by_index(&q.text, None, df);
            let ones: Vec<(String, f32)> = analysed.into_iter().map(|t| (t, 1.0)).collect();
            let terms: Vec<(u32, f32)> = encoder
                .weigh(&ones, stats, df)
                .into_iter()
                .filter_map(|(t, w)| dict.get(&t).map(|id| (id, w)))
                .collect();
            let hits = index.search(&terms, cfg.k, scoring, None);
            this.insert(
                q.id.clone(),
                hits.iter()
                    .map(|h| (corpus[h.id as usize].id.clone(), h.score))
                    .collect(),
            );
        }
        let wall = t0.elapsed().as_secs_f64();
        passes.push((
            queries.len() as f64 / wall.max(1e-12),
            wall,
            process_cpu_seconds() - c0,
        ));
        if pass == 0 {
            run = this;
        }
    }
    let qps: Vec<f64> = passes.iter().map(|p| p.0).collect();
    let med = median(&qps);
    let (_, wall_s, cpu_s) = passes[qps.iter().position(|&q| q == med).unwrap_or(0)];
    if let Some(path) = &cfg.run_out {
        write_trec(path, &run, "sextant-bm25")?;
    }
    let metrics = match &cfg.qrels {
        Some(p) => Some(evaluate(&run, &read_qrels(p)?)),
        None => None,
    };
    Ok(Bm25Report {
        system: "sextant".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        analyzer: cfg.analyzer.clone(),
        params: cfg.params,
        k: cfg.k,
        index: index_t,
        search: Timed {
            items: queries.len(),
            wall_s,
            cpu_s,
            per_s: med,
        },
        memory_bytes: index.memory_bytes() + dict.memory_bytes(),
        metrics,
    })
}
