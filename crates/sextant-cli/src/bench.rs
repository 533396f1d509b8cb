//! `sextant bench …`: benchmark subcommands over the evaluation harness.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sextant_core::Metric;
use sextant_eval::ann::{self, AnnConfig, AnnObserver};
use sextant_eval::io::{read_vectors, write_ivecs};
use sextant_index::hnsw_defaults::{DEFAULT_EF_CONSTRUCTION, DEFAULT_M};
use sextant_index::{HnswParams, Quantization};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Build an HNSW index and sweep `ef`: recall@k and queries/s, queries issued one at a time.
    Ann(AnnArgs),
    /// Compute exact ground truth (top-k ids per query) with the flat index, as `.ivecs`.
    Gt(GtArgs),
}

#[derive(Debug, Args)]
pub struct AnnArgs {
    /// Base vectors, `.fvecs` or `.npy` (float32).
    #[arg(long)]
    base: PathBuf,
    /// Query vectors, `.fvecs` or `.npy` (float32).
    #[arg(long)]
    queries: PathBuf,
    /// Ground-truth ids, `.ivecs` or `.npy` (int32); computed exactly when omitted.
    #[arg(long)]
    gt: Option<PathBuf>,
    /// Save computed ground truth here (`.ivecs`), for reuse by peers or later runs.
    #[arg(long, conflicts_with = "gt")]
    gt_out: Option<PathBuf>,
    /// Distance metric: cosine, dot, l2 or l1.
    #[arg(long)]
    metric: Metric,
    /// HNSW links per node (level 0 gets twice as many).
    #[arg(long, default_value_t = DEFAULT_M)]
    m: usize,
    /// HNSW build beam width.
    #[arg(long, default_value_t = DEFAULT_EF_CONSTRUCTION)]
    ef_construction: usize,
    /// What the graph walk compares: `sq8` (8-bit codes, results rescored exactly in f32; one
    /// extra byte per dimension per vector), `none` (f32), or `auto` (sq8 unless the metric is
    /// l1).
    #[arg(long, default_value = "auto")]
    quantization: Quantization,
    /// Search beam widths to sweep, comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "10,16,24,32,48,64,96,128,192,256,384,512"
    )]
    ef: Vec<usize>,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    k: u32,
    /// Threads for the build and for issuing queries.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    threads: u32,
    /// Measure each `ef` this many times and report the median.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Load the index from this file if it exists (parameters must match), else build it and
    /// save it here; lets repeated search measurements skip the build.
    #[arg(long)]
    index_file: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown report here (it is always printed to stdout).
    #[arg(long)]
    markdown: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct GtArgs {
    /// Base vectors, `.fvecs` or `.npy`.
    #[arg(long)]
    base: PathBuf,
    /// Query vectors, `.fvecs` or `.npy`.
    #[arg(long)]
    queries: PathBuf,
    /// Distance metric: cosine, dot, l2 or l1.
    #[arg(long)]
    metric: Metric,
    /// Ids per query.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    k: u32,
    /// Output `.ivecs` file.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(cmd: BenchCommand) -> anyhow::Result<()> {
    match cmd {
        BenchCommand::Ann(args) => bench_ann(args),
        BenchCommand::Gt(args) => bench_gt(args),
    }
}

/// Phase messages and a build progress bar on stderr (hidden when stderr is not a terminal).
struct Progress {
    bar: ProgressBar,
}

impl AnnObserver for Progress {
    fn phase(&self, name: &str) {
        self.bar.set_message(name.to_string());
        if !name.starts_with("search") {
            self.bar.println(format!("{name}…"));
        }
    }

    fn build_progress(&self, done: usize, total: usize) {
        self.bar.set_length(total as u64);
        self.bar.set_position(done as u64);
    }
}

fn bench_ann(args: AnnArgs) -> anyhow::Result<()> {
    let config = AnnConfig {
        base: args.base,
        queries: args.queries,
        gt: args.gt,
        gt_out: args.gt_out,
        metric: args.metric,
        hnsw: HnswParams {
            m: args.m,
            ef_construction: args.ef_construction,
            quantization: args.quantization,
            ..HnswParams::default()
        },
        efs: args.ef,
        k: args.k as usize,
        threads: args.threads as usize,
        runs: args.runs as usize,
        index_file: args.index_file,
    };
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{msg:>14} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    let report = ann::run(&config, &Progress { bar: bar.clone() })?;
    bar.finish_and_clear();
    let markdown = report.to_markdown();
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

fn bench_gt(args: GtArgs) -> anyhow::Result<()> {
    let base = read_vectors(&args.base)?;
    let queries = read_vectors(&args.queries)?;

    eprintln!(
        "exact top-{} for {} queries over {} vectors…",
        args.k, queries.rows, base.rows
    );
    let gt = ann::exact_ground_truth(args.metric, &base, &queries, args.k as usize)?;
    write_ivecs(&args.out, &gt)?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
