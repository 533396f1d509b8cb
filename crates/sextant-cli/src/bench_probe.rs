//! `sextant bench recall-probe`: does the live ANN recall probe tell the truth? One collection
//! (one segment after optimize), then for each `ef`: every query once from one thread with the
//! probe sampling at `--rate` (samples it cannot keep up with are dropped, as in production),
//! the probe's recall@k estimate read after its queue drained, and recall@k of the same
//! searches computed offline against exact search. Also the search time with the probe on and
//! off (a second database handle with the probe off), to show what sampling costs a query.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use serde::Serialize;
use serde_json::json;
use sextant_core::PointId;
use sextant_engine::{
    CollectionConfig, Database, PointInput, ProbeConfig, Scope, SearchRequest, Vectors,
};
use sextant_eval::process_cpu_seconds;

#[derive(Debug, Args)]
pub struct ProbeBenchArgs {
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
    #[arg(long, default_value_t = 10_000)]
    max_queries: usize,
    /// HNSW beam widths to measure, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "10,20,40,80,160")]
    efs: Vec<usize>,
    /// HNSW links per node (lower loses more recall).
    #[arg(long, default_value_t = 16)]
    m: usize,
    /// Share of searches the probe samples.
    #[arg(long, default_value_t = 0.1)]
    rate: f64,
    /// Share of one core the probe's worker may keep busy (the product's default is
    /// 0.25; a full core here gathers more samples in a short benchmark).
    #[arg(long, default_value_t = 1.0)]
    max_busy: f64,
    /// Times the query set is run per `ef` with the probe on (the window gathers samples over
    /// all of them; the searches are deterministic, so offline recall is that of one pass).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    passes: u32,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Data directory [default: a temporary directory].
    #[arg(long)]
    work: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown report here (it is always printed to stdout).
    #[arg(long)]
    markdown: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
struct Row {
    ef: usize,
    offline_recall: f64,
    probe_recall: Option<f64>,
    probe_stderr: Option<f64>,
    difference: Option<f64>,
    samples: usize,
    dropped: u64,
    exact_ms: Option<f64>,
    search_us_probe_on: f64,
    search_cpu_us_probe_on: f64,
    search_us_probe_off: f64,
    search_cpu_us_probe_off: f64,
}

fn bar(len: u64, what: &str) -> indicatif::ProgressBar {
    indicatif::ProgressBar::new(len).with_style(
        indicatif::ProgressStyle::with_template(&format!(
            "{what} [{{bar:40}}] {{pos}}/{{len}} ({{per_sec}}, eta {{eta}})"
        ))
        .expect("valid template"),
    )
}

fn config(rate: f64, window: usize, max_busy: f64) -> CollectionConfig {
    CollectionConfig {
        background_merge: false,
        recall_probe: ProbeConfig {
            rate,
            window,
            max_busy,
        },
        ..CollectionConfig::default()
    }
}

pub fn bench_recall_probe(args: ProbeBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.rate > 0.0 && args.rate <= 1.0,
        "--rate must be in (0, 1], got {}",
        args.rate
    );
    anyhow::ensure!(
        !args.efs.is_empty() && !args.efs.contains(&0),
        "--efs needs values of at least 1"
    );
    let (base, queries, n, nq) =
        super::base_and_queries(&args.base, &args.queries, args.points, args.max_queries)?;
    let tmp = tempfile::tempdir()?;
    let data = args.work.clone().unwrap_or_else(|| tmp.path().join("db"));
    anyhow::ensure!(
        !data.exists(),
        "{} exists; give a new --work",
        data.display()
    );
    let schema = super::cosine_hnsw_schema(base.dim, args.m);
    let t = Instant::now();
    {
        let db = Database::open(&data, config(0.0, 1, 1.0))?;
        let c = db.create_collection("bench", schema)?;
        let bar = bar(n as u64, "ingest");
        for start in (0..n).step_by(10_000) {
            let batch: Vec<PointInput> = (start..(start + 10_000).min(n))
                .map(|i| PointInput {
                    id: PointId::Num(i as u64),
                    vectors: Vectors::Single(base.row(i).to_vec()),
                    payload: json!({}),
                    sparse: Vec::new(),
                    expires_at: None,
                })
                .collect();
            bar.inc(batch.len() as u64);
            c.upsert(&Scope::Unscoped, batch)?;
        }
        bar.finish_and_clear();
        eprintln!("optimizing (index build) …");
        c.optimize()?;
    }
    eprintln!("built {n} points in {:.1} s", t.elapsed().as_secs_f64());
    // Exact answers, once.
    let exact: Vec<Vec<PointId>> = {
        let db = Database::open(&data, config(0.0, 1, 1.0))?;
        let c = db.collection("bench")?;
        let bar = bar(nq as u64, "exact search");
        (0..nq)
            .map(|q| {
                bar.inc(1);
                Ok(c.search(SearchRequest {
                    vector: queries.row(q).to_vec(),
                    k: args.k,
                    exact_threshold: Some(u64::MAX),
                    ..SearchRequest::default()
                })?
                .hits
                .into_iter()
                .map(|h| h.id)
                .collect())
            })
            .collect::<anyhow::Result<_>>()?
    };
    // Timed passes: the same queries, returning the ids found.
    let pass = |c: &sextant_engine::Collection,
                ef: usize|
     -> anyhow::Result<(Vec<Vec<PointId>>, f64, f64)> {
        let (t, cpu) = (Instant::now(), process_cpu_seconds());
        let mut found = Vec::with_capacity(nq);
        for q in 0..nq {
            let res = c.search(SearchRequest {
                vector: queries.row(q).to_vec(),
                k: args.k,
                ef: Some(ef),
                ..SearchRequest::default()
            })?;
            found.push(res.hits.into_iter().map(|h| h.id).collect::<Vec<_>>());
        }
        Ok((
            found,
            t.elapsed().as_secs_f64(),
            process_cpu_seconds() - cpu,
        ))
    };
    let mut rows = Vec::new();
    for &ef in &args.efs {
        let (off_s, off_cpu) = {
            let db = Database::open(&data, config(0.0, 1, 1.0))?;
            let c = db.collection("bench")?;
            let (_, s, cpu) = pass(&c, ef)?;
            (s, cpu)
        };
        let window = nq * args.passes as usize;
        let db = Database::open(&data, config(args.rate, window, args.max_busy))?;
        let c = db.collection("bench")?;
        let (found, on_s, on_cpu) = pass(&c, ef)?;
        for _ in 1..args.passes {
            let (again, _, _) = pass(&c, ef)?;
            anyhow::ensure!(
                again == found,
                "searches are not deterministic across passes"
            );
        }
        c.drain_recall_probe();
        let info = c
            .recall_probe()
            .ok_or_else(|| anyhow::anyhow!("the probe is off"))?;
        let offline = found
            .iter()
            .zip(&exact)
            .map(|(f, e)| {
                if e.is_empty() {
                    return 1.0;
                }
                f.iter().filter(|id| e.contains(id)).count() as f64 / e.len() as f64
            })
            .sum::<f64>()
            / nq as f64;
        let row = Row {
            ef,
            offline_recall: offline,
            probe_recall: info.recall,
            probe_stderr: info.recall_stderr,
            difference: info.recall.map(|r| r - offline),
            samples: info.samples,
            dropped: info.dropped,
            exact_ms: info.exact_ms,
            search_us_probe_on: on_s / nq as f64 * 1e6,
            search_cpu_us_probe_on: on_cpu / nq as f64 * 1e6,
            search_us_probe_off: off_s / nq as f64 * 1e6,
            search_cpu_us_probe_off: off_cpu / nq as f64 * 1e6,
        };
        eprintln!("{row:?}");
        rows.push(row);
    }
    let opt = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.4}"));
    let mut md = format!(
        "## ANN recall probe vs offline recall@{k}\n\n{n} points × {} dims ({}), HNSW m {}, {nq} queries, one thread; {} passes per ef with the probe on (rate {}, worker at most {} of a core, window = all samples); times are of the first pass.\nCPU µs/query counts the probe's background thread too (process CPU time).\n\n| ef | offline recall@{k} | probe recall@{k} | ± stderr | probe − offline | samples | dropped | exact re-run ms | µs/query on | off | CPU µs/query on | off |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
        base.dim,
        args.base.display(),
        args.m,
        args.passes,
        args.rate,
        args.max_busy,
        k = args.k,
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {:.4} | {} | {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            r.ef,
            r.offline_recall,
            opt(r.probe_recall),
            opt(r.probe_stderr),
            r.difference.map_or("–".into(), |d| format!("{d:+.4}")),
            r.samples,
            r.dropped,
            r.exact_ms.map_or("–".into(), |x| format!("{x:.2}")),
            r.search_us_probe_on,
            r.search_us_probe_off,
            r.search_cpu_us_probe_on,
            r.search_cpu_us_probe_off,
        ));
    }
    let worst = rows
        .iter()
        .filter_map(|r| r.difference)
        .map(f64::abs)
        .fold(0.0, f64::max);
    md.push_str(&format!("\nLargest |probe − offline|: {worst:.4}.\n"));
    println!("{md}");
    if let Some(p) = &args.markdown {
        std::fs::write(p, &md)?;
    }
    if let Some(p) = &args.json {
        let report = json!({
            "system": "sextant",
            "version": env!("CARGO_PKG_VERSION"),
            "base": args.base, "points": n, "dim": base.dim, "queries": nq,
            "m": args.m, "k": args.k, "rate": args.rate, "max_busy": args.max_busy, "passes": args.passes,
            "largest_abs_difference": worst,
            "rows": rows,
        });
        std::fs::write(p, serde_json::to_vec_pretty(&report)?)?;
    }
    Ok(())
}
