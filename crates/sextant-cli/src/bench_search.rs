//! `sextant bench search`: vector search over an existing durable collection through the
//! engine's Rust API, one query at a time from one thread, as wall and CPU time per pass.
//!
//! It is the baseline the Python package is measured against (`bench/python/bench_python.py`):
//! both open the same data directory and issue the same [`SearchRequest`] (k, ef, payloads
//! returned as the Python API's default does), so the difference is what the binding costs.
//! The collection is only read; nothing is written.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use sextant_core::PointId;
use sextant_engine::{CollectionConfig, Database, SearchRequest};
use sextant_eval::io::{read_ids, read_vectors};
use sextant_eval::{ann::recall_at_k, process_cpu_seconds, report::median};

#[derive(Debug, Args)]
pub struct SearchBenchArgs {
    /// Data directory holding the collection.
    #[arg(long)]
    data: PathBuf,
    /// Collection (or alias) to search.
    #[arg(long, default_value = "bench")]
    collection: String,
    /// Query vectors, `.fvecs` or `.npy` (float32).
    #[arg(long)]
    queries: PathBuf,
    /// Ground-truth ids (`.ivecs` or `.npy`, row i = query i, ids = the points' integer ids);
    /// with it, recall@k is reported.
    #[arg(long)]
    gt: Option<PathBuf>,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    k: u32,
    /// HNSW beam widths, comma-separated; each is measured in turn.
    #[arg(long, value_delimiter = ',', required = true)]
    ef: Vec<usize>,
    /// Timed passes over all queries per `ef` (median reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Untimed passes over all queries before the first timed one (page cache, caches).
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// Return payloads with the hits (the Python API's default; off for bare ids and scores).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    with_payload: bool,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown report here (it is always printed to stdout).
    #[arg(long)]
    markdown: Option<PathBuf>,
}

/// One `ef` setting.
#[derive(Debug, Serialize)]
struct SearchRun {
    ef: usize,
    /// recall@k of the first timed pass (every pass returns the same hits).
    recall: Option<f64>,
    /// Median queries per wall second over the passes.
    qps: f64,
    /// Wall and CPU seconds of the median pass.
    wall_s: f64,
    cpu_s: f64,
    /// Microseconds per query, wall and CPU, of the median pass.
    us_per_query: f64,
    cpu_us_per_query: f64,
    /// Every pass's QPS, in order.
    qps_runs: Vec<f64>,
}

#[derive(Debug, Serialize)]
struct SearchReport {
    system: &'static str,
    version: &'static str,
    data: String,
    collection: String,
    points: u64,
    segments: usize,
    queries: usize,
    k: usize,
    with_payload: bool,
    threads: &'static str,
    open_s: f64,
    runs: Vec<SearchRun>,
}

pub fn bench_search(args: SearchBenchArgs) -> anyhow::Result<()> {
    let queries = read_vectors(&args.queries)?;
    let gt = args.gt.as_deref().map(read_ids).transpose()?;
    if let Some(gt) = &gt {
        anyhow::ensure!(
            gt.rows >= queries.rows,
            "{}: {} rows of ground truth for {} queries",
            args.gt
                .as_ref()
                .map_or(String::new(), |p| p.display().to_string()),
            gt.rows,
            queries.rows
        );
    }
    let k = args.k as usize;
    let t0 = Instant::now();
    let db = Database::open(&args.data, CollectionConfig::default())
        .with_context(|| format!("opening {}", args.data.display()))?;
    let c = db.collection(&args.collection)?;
    let open_s = t0.elapsed().as_secs_f64();
    let info = c.info();

    let search = |ef: usize, found: Option<&mut Vec<Vec<u32>>>| -> anyhow::Result<()> {
        let mut found = found;
        for qi in 0..queries.rows {
            let r = c.search(SearchRequest {
                vector: queries.row(qi).to_vec(),
                k,
                ef: Some(ef),
                with_payload: args.with_payload,
                ..Default::default()
            })?;
            if let Some(f) = found.as_deref_mut() {
                f.push(
                    r.hits
                        .iter()
                        .map(|h| match h.id {
                            PointId::Num(n) => n as u32,
                            _ => u32::MAX,
                        })
                        .collect(),
                );
            } else {
                std::hint::black_box(&r);
            }
        }
        Ok(())
    };

    let mut runs = Vec::new();
    for &ef in &args.ef {
        for _ in 0..args.warmup {
            search(ef, None)?;
        }
        let mut passes = Vec::new();
        let mut recall = None;
        for pass in 0..args.runs {
            let mut found = Vec::with_capacity(queries.rows);
            let (c0, w0) = (process_cpu_seconds(), Instant::now());
            search(ef, Some(&mut found))?;
            let wall = w0.elapsed().as_secs_f64();
            let cpu = process_cpu_seconds() - c0;
            passes.push((queries.rows as f64 / wall, wall, cpu));
            if pass == 0 {
                recall = gt.as_ref().map(|g| recall_at_k(g, &found, k));
            }
        }
        let qps_runs: Vec<f64> = passes.iter().map(|p| p.0).collect();
        let med = median(&qps_runs);
        // The pass closest to the median (an even count's median lies between two).
        let &(_, wall_s, cpu_s) = passes
            .iter()
            .min_by(|a, b| (a.0 - med).abs().total_cmp(&(b.0 - med).abs()))
            .expect("at least one pass");
        let n = queries.rows.max(1) as f64;
        runs.push(SearchRun {
            ef,
            recall,
            qps: med,
            wall_s,
            cpu_s,
            us_per_query: wall_s / n * 1e6,
            cpu_us_per_query: cpu_s / n * 1e6,
            qps_runs,
        });
    }
    let report = SearchReport {
        system: "sextant-rust",
        version: env!("CARGO_PKG_VERSION"),
        data: args.data.display().to_string(),
        collection: args.collection,
        points: info.points,
        segments: info.segments.len(),
        queries: queries.rows,
        k,
        with_payload: args.with_payload,
        threads: "1 (queries issued one at a time from the main thread)",
        open_s,
        runs,
    };
    let markdown = to_markdown(&report);
    println!("{markdown}");
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report).expect("report serialises");
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.markdown {
        std::fs::write(path, markdown).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn to_markdown(r: &SearchReport) -> String {
    let mut s = format!(
        "# Vector search through the Rust API: {:?} ({} points, {} segments), k={}, {} queries\n\n\
         | ef | recall@{} | QPS | µs/query | CPU µs/query |\n|---:|---:|---:|---:|---:|\n",
        r.collection, r.points, r.segments, r.k, r.queries, r.k
    );
    for run in &r.runs {
        s.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {:.1} |\n",
            run.ef,
            run.recall.map_or("—".to_string(), |x| format!("{x:.4}")),
            run.qps,
            run.us_per_query,
            run.cpu_us_per_query
        ));
    }
    s
}
