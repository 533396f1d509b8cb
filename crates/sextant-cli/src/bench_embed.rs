//! `sextant bench embed`: embedding throughput of a local model on a file of texts.
//!
//! The whole file goes to the embedder in one call per run, as the peers
//! (`bench/peers/embed.py`) hand the whole list to sentence-transformers and onnxruntime, so
//! every system sorts the same texts by length before batching. Throughput is reported per
//! sentence and per real token (padding excluded), with wall and CPU seconds, the FLOP rate
//! derived from the model's configuration, the process's peak RSS and the stage/operation
//! timers of [`sextant_embed::EmbedProfile`].

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::builder::TypedValueParser;
use clap::Args;
use serde::Serialize;
use sextant_embed::{
    lines_from_bytes, BatchParallelism, BertConfig, BertEmbedder, EmbedProfile, EmbedderOptions,
    InputKind, Precision, DEFAULT_BATCH_SIZE,
};
use sextant_eval::collections::proc_status_kib;
use sextant_eval::process_cpu_seconds;
use sextant_eval::report::median;

/// Texts embedded once before timing (weights paged in, allocator and thread pool warm).
const WARMUP_TEXTS: usize = 256;

#[derive(Debug, Args)]
pub struct EmbedBenchArgs {
    /// Model directory in the Hugging Face layout.
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    model: String,
    /// Text file, one text per line (see scripts/fetch-text-corpus.py).
    #[arg(long)]
    input: PathBuf,
    /// Texts per forward pass.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize))]
    batch: usize,
    /// Threads for the model, matrix products included [default: all cores].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize))]
    threads: Option<usize>,
    /// How several threads are used: `batches` (whole batches on different threads) or
    /// `within-batch` (every matrix product split over all threads).
    #[arg(long, default_value = "batches", value_parser = crate::embed::parse_parallelism)]
    parallelism: BatchParallelism,
    /// Precision of the layer projections: `f32`, `bf16`, `int8` or `auto` (the fastest within cosine 0.999 of f32, measured at load; see `sextant embed --help`).
    #[arg(long, default_value = "f32", value_parser = crate::embed::parse_precision)]
    precision: Precision,
    /// Timed passes over the file (the median is reported).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize))]
    runs: usize,
    /// Use only the first N lines.
    #[arg(long)]
    limit: Option<usize>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown report here (it is always printed to stdout).
    #[arg(long)]
    markdown: Option<PathBuf>,
}

/// One timed pass over the file.
#[derive(Debug, Clone, Serialize)]
struct Run {
    wall_s: f64,
    cpu_s: f64,
}

/// Multiply-adds × 2 of the model, split into the part that scales with tokens (projections)
/// and the part that scales with the square of the sequence length (attention).
#[derive(Debug, Clone, Copy, Serialize)]
struct FlopModel {
    /// FLOPs per token of the dense projections: `2 · layers · (4h² + 2h·i)`.
    per_token: f64,
    /// FLOPs per (query, key) token pair of attention: `2 · layers · 2h` (scores and context).
    per_token_pair: f64,
}

impl FlopModel {
    fn of(cfg: &BertConfig) -> Self {
        let (l, h, i) = (
            cfg.num_hidden_layers as f64,
            cfg.hidden_size as f64,
            cfg.intermediate_size as f64,
        );
        FlopModel {
            per_token: 2.0 * l * (4.0 * h * h + 2.0 * h * i),
            per_token_pair: 2.0 * l * 2.0 * h,
        }
    }
}

#[derive(Debug, Serialize)]
struct EmbedBenchReport {
    system: &'static str,
    version: &'static str,
    model: String,
    precision: &'static str,
    /// Whether the precision ran on its native kernel (`false`: bf16 emulated on f32).
    precision_native: bool,
    /// The kernel of the projections: f32, for bf16 amx, avx512 or emulated, for int8 amx,
    /// vnni or emulated.
    kernel: &'static str,
    /// How the precision was decided: `auto`'s measurements (seconds and cosine to f32 per
    /// candidate) and whether they came from the per-CPU cache.
    precision_choice: sextant_embed::PrecisionChoice,
    parallelism: String,
    input: String,
    sentences: usize,
    batch: usize,
    threads: usize,
    runs: Vec<Run>,
    /// Median over runs.
    wall_s: f64,
    /// Median over runs.
    cpu_s: f64,
    sentences_per_s: f64,
    tokens_per_s: f64,
    /// Real tokens per pass (special tokens included, padding excluded).
    tokens: usize,
    /// Tokens computed per pass, padding included.
    padded_tokens: usize,
    flops: FlopModel,
    /// FLOPs of the real tokens (projections + attention over real lengths) per pass.
    useful_gflop: f64,
    /// FLOPs actually executed (padded batches) per pass.
    executed_gflop: f64,
    /// `useful_gflop / wall_s`.
    gflop_per_s: f64,
    /// `executed_gflop / wall_s`.
    executed_gflop_per_s: f64,
    /// Process peak resident set (VmHWM) at the end, model and all runs included.
    peak_rss_bytes: u64,
    load_s: f64,
    /// Stage and operation timers of the median run (thread-seconds when batches ran in
    /// parallel).
    profile: EmbedProfile,
}

pub fn bench_embed(args: EmbedBenchArgs) -> anyhow::Result<()> {
    let threads = crate::embed::set_product_threads(args.threads, args.parallelism);
    let bytes = std::fs::read(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))?;
    let mut lines = lines_from_bytes(&bytes).lines;
    if let Some(limit) = args.limit {
        lines.truncate(limit);
    }
    anyhow::ensure!(!lines.is_empty(), "{} has no lines", args.input.display());
    let texts: Vec<&str> = lines.iter().map(String::as_str).collect();

    let load_start = Instant::now();
    let model = BertEmbedder::load(
        &args.model,
        EmbedderOptions {
            batch_size: Some(args.batch),
            threads: Some(threads),
            parallelism: Some(args.parallelism),
            precision: Some(args.precision),
            ..Default::default()
        },
    )
    .with_context(|| format!("cannot load model {}", args.model))?;
    let load_s = load_start.elapsed().as_secs_f64();
    let warm = &texts[..texts.len().min(WARMUP_TEXTS)];
    model.embed_profiled(warm, InputKind::Plain, &mut EmbedProfile::default())?;

    let mut runs = Vec::with_capacity(args.runs);
    let mut profiles = Vec::with_capacity(args.runs);
    for r in 0..args.runs {
        let mut prof = EmbedProfile::default();
        let cpu0 = process_cpu_seconds();
        let t0 = Instant::now();
        let out = model.embed_profiled(&texts, InputKind::Plain, &mut prof)?;
        let wall_s = t0.elapsed().as_secs_f64();
        let cpu_s = process_cpu_seconds() - cpu0;
        std::hint::black_box(out);
        eprintln!(
            "run {}/{}: {:.2} s wall, {:.2} s CPU, {:.1} sentences/s",
            r + 1,
            args.runs,
            wall_s,
            cpu_s,
            texts.len() as f64 / wall_s
        );
        runs.push(Run { wall_s, cpu_s });
        profiles.push(prof);
    }
    let walls: Vec<f64> = runs.iter().map(|r| r.wall_s).collect();
    let wall_s = median(&walls);
    let cpu_s = median(&runs.iter().map(|r| r.cpu_s).collect::<Vec<_>>());
    let mut by_wall: Vec<usize> = (0..runs.len()).collect();
    by_wall.sort_by(|&a, &b| walls[a].total_cmp(&walls[b]));
    let profile = profiles[by_wall[by_wall.len() / 2]];

    let flops = FlopModel::of(model.config());
    let useful = flops.per_token * profile.tokens as f64
        + flops.per_token_pair * profile.tokens_squared as f64;
    let executed = flops.per_token * profile.padded_tokens as f64
        + flops.per_token_pair * profile.padded_tokens_squared as f64;
    let report = EmbedBenchReport {
        system: "sextant",
        version: env!("CARGO_PKG_VERSION"),
        model: args.model.clone(),
        precision: model.precision().as_str(),
        precision_native: model.precision().is_native(),
        kernel: model.precision().kernel(),
        precision_choice: model.precision_choice().clone(),
        parallelism: format!("{:?}", args.parallelism),
        input: args.input.display().to_string(),
        sentences: texts.len(),
        batch: args.batch,
        threads,
        runs,
        wall_s,
        cpu_s,
        sentences_per_s: texts.len() as f64 / wall_s,
        tokens_per_s: profile.tokens as f64 / wall_s,
        tokens: profile.tokens,
        padded_tokens: profile.padded_tokens,
        flops,
        useful_gflop: useful / 1e9,
        executed_gflop: executed / 1e9,
        gflop_per_s: useful / 1e9 / wall_s,
        executed_gflop_per_s: executed / 1e9 / wall_s,
        peak_rss_bytes: proc_status_kib("VmHWM:") * 1024,
        load_s,
        profile,
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

fn to_markdown(r: &EmbedBenchReport) -> String {
    let p = &r.profile;
    let mut s = format!(
        "# Embedding speed: {} ({}, kernel {}), {} sentences, batch {}, {} thread(s), median of {} runs\n\n\
         | sentences/s | tokens/s | wall s | CPU s | GFLOP/s (useful) | GFLOP/s (executed) | padding | peak RSS MiB |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {:.1} | {:.0} | {:.2} | {:.2} | {:.1} | {:.1} | {:.1}% | {:.0} |\n\n",
        r.model,
        r.precision,
        r.kernel,
        r.sentences,
        r.batch,
        r.threads,
        r.runs.len(),
        r.sentences_per_s,
        r.tokens_per_s,
        r.wall_s,
        r.cpu_s,
        r.gflop_per_s,
        r.executed_gflop_per_s,
        100.0 * (1.0 - r.tokens as f64 / r.padded_tokens.max(1) as f64),
        r.peak_rss_bytes as f64 / 1048576.0,
    );
    let total = p.tokenize_s + p.batch_s + p.forward_s + p.pool_s;
    let pct = |x: f64| 100.0 * x / total.max(f64::MIN_POSITIVE);
    s.push_str("| stage | s | % |\n|---|---:|---:|\n");
    for (name, v) in [
        ("tokenisation", p.tokenize_s),
        ("padded batches", p.batch_s),
        ("forward pass", p.forward_s),
        ("pooling + normalisation", p.pool_s),
    ] {
        s.push_str(&format!("| {name} | {v:.3} | {:.1} |\n", pct(v)));
    }
    s.push_str("\n| forward operation | s | % of forward |\n|---|---:|---:|\n");
    let fwd = p.forward_s.max(f64::MIN_POSITIVE);
    for (name, v) in p.forward_ops.entries() {
        s.push_str(&format!("| {name} | {v:.3} | {:.1} |\n", 100.0 * v / fwd));
    }
    let rest = p.forward_s - p.forward_ops.total_s();
    s.push_str(&format!(
        "| (untimed: mask, glue) | {rest:.3} | {:.1} |\n",
        100.0 * rest / fwd
    ));
    s
}
