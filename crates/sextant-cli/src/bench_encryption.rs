//! `sextant bench encryption`: what encryption at rest costs. The same work on a plain and on an
//! encrypted collection, alternating, `--runs` times each, in fresh data directories:
//! - ingest: batches of `--batch` points (durable, fsync per batch), wall and CPU time;
//! - optimize: flush and merge into one segment (index build, every file written);
//! - reopen: open the database and the collection (every segment file read and decrypted);
//! - search: every query once, one thread (wall and CPU per query, recall@k against exact
//!   search);
//! - single upserts: `--single` one-point durable upserts (WAL append + fdatasync each).
//!
//! Medians per variant and the encrypted/plain ratio of each are reported.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use serde_json::json;
use sextant_core::PointId;
use sextant_engine::{
    CollectionConfig, Database, Durability, MasterKey, PointInput, Scope, SearchRequest, Vectors,
    DEFAULT_M,
};
use sextant_eval::{process_cpu_seconds, report::median};

#[derive(Debug, Args)]
pub struct EncryptionBenchArgs {
    /// Base vectors (`.fvecs` or `.npy`, float32).
    #[arg(long)]
    base: PathBuf,
    /// Query vectors (`.fvecs` or `.npy`).
    #[arg(long)]
    queries: PathBuf,
    /// Points taken from the start of the base file [default: all].
    #[arg(long)]
    points: Option<usize>,
    /// Queries taken from the start of the query file.
    #[arg(long, default_value_t = 1000)]
    max_queries: usize,
    /// Points per ingest batch (one durable write each).
    #[arg(long, default_value_t = 1000)]
    batch: usize,
    /// HNSW beam width of the searches.
    #[arg(long, default_value_t = 96)]
    ef: usize,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// One-point durable upserts timed after the searches.
    #[arg(long, default_value_t = 300)]
    single: usize,
    /// Runs per variant (alternating plain, encrypted; medians reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Directory for the runs' data directories [default: a temporary directory].
    #[arg(long)]
    work: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown report here (it is always printed to stdout).
    #[arg(long)]
    markdown: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize)]
struct Run {
    encrypted: bool,
    ingest_s: f64,
    ingest_cpu_s: f64,
    ingest_points_per_s: f64,
    optimize_s: f64,
    optimize_cpu_s: f64,
    reopen_s: f64,
    search_us_per_query: f64,
    search_cpu_us_per_query: f64,
    /// recall@k of the timed searches against exact search.
    recall: f64,
    single_upsert_ms_median: f64,
    disk_bytes: u64,
}

/// Wall and CPU seconds of `f`.
fn timed<T>(f: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<(T, f64, f64)> {
    let (t, c) = (Instant::now(), process_cpu_seconds());
    let out = f()?;
    Ok((out, t.elapsed().as_secs_f64(), process_cpu_seconds() - c))
}

fn config() -> CollectionConfig {
    CollectionConfig {
        durability: Durability::Always,
        background_merge: false,
        ..CollectionConfig::default()
    }
}

pub fn bench_encryption(args: EncryptionBenchArgs) -> anyhow::Result<()> {
    let (base, queries, n, nq) =
        super::base_and_queries(&args.base, &args.queries, args.points, args.max_queries)?;
    let tmp = tempfile::tempdir()?;
    let work = args
        .work
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    std::fs::create_dir_all(&work)?;
    let master = MasterKey::generate().context("making a master key")?;
    let schema = super::cosine_hnsw_schema(base.dim, DEFAULT_M);
    let point = |i: usize| PointInput {
        id: PointId::Num(i as u64),
        vectors: Vectors::Single(base.row(i).to_vec()),
        payload: json!({"n": i, "title": format!("point number {i} of the benchmark")}),
        sparse: Vec::new(),
        expires_at: None,
    };
    let mut runs = Vec::new();
    let mut cipher = String::new();
    for r in 0..args.runs {
        for encrypted in [false, true] {
            let data = work.join(format!(
                "run{r}-{}",
                if encrypted { "enc" } else { "plain" }
            ));
            anyhow::ensure!(
                !data.exists(),
                "{} exists; give an empty --work",
                data.display()
            );
            let db = Database::open(&data, config())?;
            db.set_master_key(Some(master.clone()));
            let c = db.create_collection_with("bench", schema.clone(), encrypted)?;
            let (_, ingest_s, ingest_cpu_s) = timed(|| {
                for start in (0..n).step_by(args.batch) {
                    let batch = (start..(start + args.batch).min(n)).map(point).collect();
                    c.upsert(&Scope::Unscoped, batch)?;
                }
                Ok(())
            })?;
            let (_, optimize_s, optimize_cpu_s) = timed(|| Ok(c.optimize()?))?;
            drop(c);
            drop(db);
            let ((db, c), reopen_s, _) = timed(|| {
                let db = Database::open(&data, config())?;
                db.set_master_key(Some(master.clone()));
                let c = db.collection("bench")?;
                Ok((db, c))
            })?;
            let mut hits = Vec::with_capacity(nq);
            let (_, search_s, search_cpu_s) = timed(|| {
                for q in 0..nq {
                    let res = c.search(SearchRequest {
                        vector: queries.row(q).to_vec(),
                        k: args.k,
                        ef: Some(args.ef),
                        with_payload: true,
                        ..SearchRequest::default()
                    })?;
                    hits.push(res.hits.into_iter().map(|h| h.id).collect::<Vec<_>>());
                }
                Ok(())
            })?;
            // Exact search (untimed), for the recall of the timed searches.
            let mut exact = Vec::with_capacity(nq);
            for q in 0..nq {
                let res = c.search(SearchRequest {
                    vector: queries.row(q).to_vec(),
                    k: args.k,
                    exact_threshold: Some(u64::MAX),
                    ..SearchRequest::default()
                })?;
                exact.push(res.hits);
            }
            let found: usize = hits
                .iter()
                .zip(&exact)
                .map(|(h, e)| h.iter().filter(|id| e.iter().any(|x| &x.id == *id)).count())
                .sum();
            let recall = found as f64 / (nq * args.k) as f64;
            let mut lat = Vec::with_capacity(args.single);
            for i in 0..args.single {
                let t = Instant::now();
                c.upsert(&Scope::Unscoped, vec![point(i % n)])?;
                lat.push(t.elapsed().as_secs_f64() * 1e3);
            }
            let disk_bytes = c.info().disk_bytes;
            if let Some(st) = c.encryption_status() {
                cipher = st.cipher;
            }
            drop(c);
            drop(db);
            std::fs::remove_dir_all(&data)?;
            let run = Run {
                encrypted,
                ingest_s,
                ingest_cpu_s,
                ingest_points_per_s: n as f64 / ingest_s,
                optimize_s,
                optimize_cpu_s,
                reopen_s,
                search_us_per_query: search_s / nq as f64 * 1e6,
                search_cpu_us_per_query: search_cpu_s / nq as f64 * 1e6,
                recall,
                single_upsert_ms_median: median(&lat),
                disk_bytes,
            };
            eprintln!("run {r}: {run:?}");
            runs.push(run);
        }
    }
    let med = |enc: bool, f: fn(&Run) -> f64| {
        median(
            &runs
                .iter()
                .filter(|r| r.encrypted == enc)
                .map(f)
                .collect::<Vec<_>>(),
        )
    };
    type Row = (&'static str, fn(&Run) -> f64);
    let metrics: [Row; 10] = [
        ("ingest wall s", |r| r.ingest_s),
        ("ingest CPU s", |r| r.ingest_cpu_s),
        ("ingest points/s", |r| r.ingest_points_per_s),
        ("optimize wall s", |r| r.optimize_s),
        ("optimize CPU s", |r| r.optimize_cpu_s),
        ("reopen s", |r| r.reopen_s),
        ("search µs/query (wall)", |r| r.search_us_per_query),
        ("search µs/query (CPU)", |r| r.search_cpu_us_per_query),
        ("search recall@k", |r| r.recall),
        ("single upsert ms (median)", |r| r.single_upsert_ms_median),
    ];
    let mut md = format!(
        "## Encryption at rest: cost\n\n{n} points × {} dims ({}), batches of {}, {nq} queries (k {}, ef {}), {} one-point upserts; {} runs per variant, alternating; medians.\n\n| metric | plain | encrypted | encrypted / plain |\n|---|---:|---:|---:|\n",
        base.dim,
        args.base.display(),
        args.batch,
        args.k,
        args.ef,
        args.single,
        args.runs
    );
    let mut summary = serde_json::Map::new();
    for (name, f) in metrics {
        let (p, e) = (med(false, f), med(true, f));
        md.push_str(&format!("| {name} | {p:.3} | {e:.3} | {:.3} |\n", e / p));
        summary.insert(
            name.into(),
            json!({"plain": p, "encrypted": e, "ratio": e / p}),
        );
    }
    let disk = |enc: bool| {
        runs.iter()
            .find(|r| r.encrypted == enc)
            .map_or(0, |r| r.disk_bytes)
    };
    md.push_str(&format!(
        "| disk bytes | {} | {} | {:.4} |\n",
        disk(false),
        disk(true),
        disk(true) as f64 / disk(false) as f64
    ));
    println!("{md}");
    if let Some(p) = &args.markdown {
        std::fs::write(p, &md)?;
    }
    if let Some(p) = &args.json {
        let report = json!({
            "system": "sextant",
            "version": env!("CARGO_PKG_VERSION"),
            "cipher": cipher,
            "base": args.base, "points": n, "dim": base.dim, "queries": nq,
            "batch": args.batch, "k": args.k, "ef": args.ef, "single": args.single,
            "summary": summary, "runs": runs,
        });
        std::fs::write(p, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}
