//! BM25 query speed without building the CLI (which links the embedding stack): for fast
//! iteration on the sparse index. `sextant bench bm25 … --split alphanumeric` is the
//! benchmark of record; this runs the same harness with that analyzer.
//!
//! `cargo run --release -p sextant-eval --example bm25_speed -- CORPUS QUERIES [K] [RUNS]`

use sextant_eval::bm25::{run, Bm25Config};
use sextant_text::{AnalyzerConfig, Bm25Params, Split};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [corpus, queries, rest @ ..] = args.as_slice() else {
        return Err("usage: bm25_speed CORPUS QUERIES [K] [RUNS]".into());
    };
    let number = |i: usize, default: usize| rest.get(i).map_or(Ok(default), |s| s.parse());
    let cfg = Bm25Config {
        corpus: corpus.into(),
        queries: queries.into(),
        qrels: None,
        k: number(0, 10)?,
        analyzer: AnalyzerConfig {
            split: Split::Alphanumeric,
            ..AnalyzerConfig::default()
        },
        params: Bm25Params::default(),
        runs: number(1, 3)?,
        run_out: None,
    };
    let r = run(&cfg)?;
    println!(
        "{} queries: {:.0} QPS ({:.3} s wall, {:.3} s CPU)",
        r.search.items, r.search.per_s, r.search.wall_s, r.search.cpu_s
    );
    Ok(())
}
