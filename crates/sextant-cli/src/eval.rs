//! `sextant eval`: flags → `Service::evaluate` → the Markdown report on stdout (or JSON), and
//! with `--out` the report, the per-query scores, a TREC run per configuration and the plots
//! (`eval_plots.rs`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sextant_service::eval::{
    ranked, read_qrels, EvalOptions, EvalQuery, DEFAULT_DEPTH, DEFAULT_FAIL_K, DEFAULT_METRICS,
    DEFAULT_PERMUTATIONS,
};

use crate::db::{DbArgs, TenantArgs};

/// `eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Document collection (or alias) to evaluate, made by `sextant ingest` (from a BEIR
    /// folder: `sextant ingest NAME --jsonl DIR/corpus.jsonl`).
    pub name: String,
    /// A BEIR folder: its `queries.jsonl` and `qrels/<SPLIT>.tsv`.
    #[arg(long, conflicts_with_all = ["queries", "qrels"], required_unless_present = "queries")]
    pub beir: Option<PathBuf>,
    /// The qrels split of `--beir` [default: test].
    #[arg(long, requires = "beir")]
    pub split: Option<String>,
    /// BEIR `queries.jsonl` (`_id`, `text`).
    #[arg(long, requires = "qrels")]
    pub queries: Option<PathBuf>,
    /// Qrels TSV (`query-id corpus-id score`, a header line allowed); grades ≥ 1 are relevant.
    #[arg(long, requires = "queries")]
    pub qrels: Option<PathBuf>,
    /// A configuration (repeat): a built-in (`random`, `bm25`, `dense`, `dense-exact`, `splade`,
    /// `hybrid`) or `NAME=KEY=VALUE;…` with the keys of a text query (`mode`, `sources` and
    /// `weights` as `a|b`, `fusion`, `rerank`, `rerank_top`, `rerank_blend`, `source_k`, `mmr`,
    /// `group_size`, `ef`, `exact`, `precision`, `adapter`), e.g. `rrf=mode=hybrid;fusion=rrf`.
    #[arg(long = "config", value_name = "SPEC")]
    pub configs: Vec<String>,
    /// Metrics, comma-separated: precision@k, recall@k, hit_rate@k, mrr@k, map[@k], ndcg@k.
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_METRICS)]
    pub metrics: Vec<String>,
    /// Documents retrieved per query (raised to the largest cut-off).
    #[arg(long, default_value_t = DEFAULT_DEPTH)]
    pub depth: usize,
    /// Leave out the baselines (random, bm25, dense-exact).
    #[arg(long)]
    pub no_baselines: bool,
    /// The configuration the others are compared with [default: the first given, else bm25].
    #[arg(long)]
    pub compare_to: Option<String>,
    /// Random permutations of the paired randomisation test.
    #[arg(long, default_value_t = DEFAULT_PERMUTATIONS)]
    pub permutations: usize,
    /// Seed of the random baseline and of the significance test.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Error analysis: a query fails a configuration when no relevant document is in its top
    /// this-many.
    #[arg(long, default_value_t = DEFAULT_FAIL_K)]
    pub fail_k: usize,
    /// Failed queries shown per configuration in the Markdown report (all are in the JSON).
    #[arg(long, default_value_t = 10)]
    pub examples: usize,
    /// Also run every configuration on this second collection (or alias), e.g. a copy
    /// re-embedded with a new model by `sextant reindex`: each appears as `CONFIG@OTHER` and
    /// is compared with `CONFIG` on the first collection in a paired randomisation test.
    #[arg(long, value_name = "COLLECTION")]
    pub compare: Option<String>,
    /// A fusion-weight sweep: hybrid (dense + BM25) with the dense weight at STEPS + 1 evenly
    /// spaced values from 0 to 1 and BM25 at 1 − w, as configurations `sweep-w0.00` … and, with
    /// `--out`, the plot `fusion-sweep.svg`.
    #[arg(long, value_name = "STEPS", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub sweep_weights: Option<u32>,
    /// Write `report.md`, `report.json`, `per-query.json`, `runs/<config>.trec` and the plots
    /// (`metrics.svg`, `recall-at-k.svg`, `latency.svg`, and `fusion-sweep.svg` with
    /// `--sweep-weights`) here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub tenant: TenantArgs,
}

/// Runs `eval`.
pub fn run_eval(db_args: &DbArgs, a: EvalArgs) -> Result<()> {
    let (queries_path, qrels_path) = match &a.beir {
        Some(dir) => (
            dir.join("queries.jsonl"),
            dir.join("qrels")
                .join(format!("{}.tsv", a.split.as_deref().unwrap_or("test"))),
        ),
        // Checked here as well as by clap: clap drops `requires = "beir"` beside --queries
        // (which conflicts with --beir).
        None if a.split.is_some() => {
            bail!("--split names a qrels file of --beir DIR; with --queries give the --qrels file itself")
        }
        None => (
            a.queries
                .clone()
                .context("give --beir DIR, or --queries and --qrels")?,
            a.qrels.clone().context("give --qrels with --queries")?,
        ),
    };
    let queries = crate::docs::read_queries(&queries_path)?;
    let qrels = read_qrels(&qrels_path)
        .with_context(|| format!("reading the qrels {}", qrels_path.display()))?;
    let svc = crate::db::service(db_args)?;
    let c = crate::db::collection(svc.database(), &a.name)?;
    let scope = a.tenant.scope(c.name(), c.schema())?;
    let opts = EvalOptions {
        queries: queries
            .into_iter()
            .map(|(id, text)| EvalQuery { id, text })
            .collect(),
        qrels,
        configs: a.configs.clone(),
        no_baselines: a.no_baselines,
        compare_to: a.compare_to.clone(),
        compare: a.compare.clone(),
        sweep_weights: a.sweep_weights,
        metrics: Some(a.metrics.clone()),
        depth: Some(a.depth),
        permutations: Some(a.permutations),
        seed: Some(a.seed),
        fail_k: Some(a.fail_k),
        examples: Some(a.examples),
    };
    let bar = ProgressBar::new(opts.queries.len() as u64).with_style(
        ProgressStyle::with_template("{msg:>14} {bar:40} {pos}/{len} queries ({per_sec})")
            .expect("valid template"),
    );
    let report = svc.evaluate_options(&a.name, &scope, &opts, &mut |config, done, _| {
        bar.set_message(config.to_string());
        bar.set_position(done as u64);
    })?;
    bar.finish_and_clear();
    let md = report.markdown();
    if let Some(out) = &a.out {
        write_outputs(out, &report, &md)?;
    }
    if db_args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{md}");
        if let Some(out) = &a.out {
            println!("\nwrote {}", out.display());
        }
    }
    Ok(())
}

fn write_outputs(out: &Path, report: &sextant_service::eval::EvalReport, md: &str) -> Result<()> {
    let runs = out.join("runs");
    std::fs::create_dir_all(&runs).with_context(|| format!("cannot create {}", runs.display()))?;
    let write = |p: PathBuf, bytes: &[u8]| {
        std::fs::write(&p, bytes).with_context(|| format!("cannot write {}", p.display()))
    };
    write(out.join("report.md"), md.as_bytes())?;
    crate::eval_plots::write_plots(out, report)?;
    write(
        out.join("report.json"),
        &serde_json::to_vec_pretty(&serde_json::json!({
            "collection": report.collection,
            "queries": report.queries,
            "judged_queries": report.judged_queries,
            "depth": report.depth,
            "metrics": report.metrics,
            "configs": report.configs.iter().map(|c| serde_json::json!({
                "name": c.name, "request": c.request, "means": c.means,
                "latency_ms": c.latency_ms, "recall_curve": c.recall_curve, "missed": c.missed,
                "failure_causes": c.failure_causes, "failures": c.failures,
            })).collect::<Vec<_>>(),
            "fail_k": report.fail_k,
            "comparisons": report.comparisons,
            "missing_judged": report.missing_judged,
            "missing_examples": report.missing_examples,
        }))?,
    )?;
    let per_query: serde_json::Map<String, serde_json::Value> = report
        .configs
        .iter()
        .map(|c| (c.name.clone(), serde_json::json!(c.per_query)))
        .collect();
    write(
        out.join("per-query.json"),
        &serde_json::to_vec_pretty(&per_query)?,
    )?;
    for c in &report.configs {
        let path = runs.join(format!("{}.trec", c.name));
        let f = std::fs::File::create(&path)
            .with_context(|| format!("cannot write {}", path.display()))?;
        let mut w = std::io::BufWriter::new(f);
        for (q, docs) in &c.run {
            for (rank, d) in ranked(docs).iter().enumerate() {
                let score = docs.iter().find(|(x, _)| x == d).map_or(0.0, |x| x.1);
                writeln!(w, "{q} Q0 {d} {} {score} {}", rank + 1, c.name)?;
            }
        }
        w.flush()?;
    }
    Ok(())
}
