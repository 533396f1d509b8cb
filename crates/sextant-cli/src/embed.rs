//! `sextant embed` and `sextant rerank`: the local models from the command line.
//!
//! Input files hold one text per line; invalid UTF-8 is repaired (U+FFFD) and reported rather
//! than aborting a long job. `embed` writes a float32 `.npy` `[n, dim]` in input order.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::builder::TypedValueParser;
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sextant_embed::{lines_from_bytes, BatchParallelism, Precision, TextLines, DEFAULT_BATCH_SIZE};
use sextant_service::{EmbedKind, EmbedOptions};
use sextant_service::{ModelRegistry, RegistryConfig};

/// Texts handed to the model per call (progress granularity; batching happens inside).
const CHUNK: usize = 1024;

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// Model directory in the Hugging Face layout (see scripts/setup-models.sh).
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    model: String,
    /// Text file, one text per line.
    #[arg(long)]
    input: PathBuf,
    /// Output `.npy` (float32, `[n, dim]`, input order).
    #[arg(long)]
    output: PathBuf,
    /// Texts per forward pass.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize))]
    batch: usize,
    /// Threads for the model (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize))]
    threads: Option<usize>,
    /// How several threads are used: `batches` (whole batches on different threads; best
    /// throughput) or `within-batch` (every matrix product split over all threads).
    #[arg(long, default_value = "batches", value_parser = parse_parallelism)]
    parallelism: BatchParallelism,
    /// Precision of the layer projections: `f32` (reference); `bf16` (weights and activations
    /// rounded to bf16, f32 sums: 2–2.5× faster on CPUs with AMX, about 1.7× on AMD Zen 4,
    /// no faster elsewhere); `int8` (three of four projections quantised, smoothed on
    /// built-in calibration texts: about 2.1× f32 on AMX, 1.3× with AVX-512 VNNI alone); or
    /// `auto` (the fastest of these whose vectors stay within cosine 0.999 of f32 on the
    /// calibration texts, measured at load and cached per CPU in $SEXTANT_PRECISION_CACHE).
    /// Every precision keeps the fingerprint.
    #[arg(long, default_value = "auto", value_parser = parse_precision)]
    precision: Precision,
    /// The texts are queries (the model's query prefix is applied).
    #[arg(long, conflicts_with = "passage")]
    query: bool,
    /// The texts are passages (the model's passage prefix is applied).
    #[arg(long)]
    passage: bool,
    /// Matryoshka dimension: keep the first D components, then re-normalise.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize))]
    dim: Option<usize>,
}

#[derive(Debug, Args)]
pub struct RerankArgs {
    /// Cross-encoder directory in the Hugging Face layout.
    #[arg(long)]
    model: String,
    /// The query.
    #[arg(long)]
    query: String,
    /// Passages, one per line.
    #[arg(long)]
    input: PathBuf,
    /// Print only the best K passages.
    #[arg(long)]
    top: Option<usize>,
    /// Pairs per forward pass.
    #[arg(long, default_value_t = DEFAULT_BATCH_SIZE, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize))]
    batch: usize,
    /// Threads for the model (default: all cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..).map(|v| v as usize))]
    threads: Option<usize>,
}

fn read_lines(path: &Path) -> anyhow::Result<TextLines> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let lines = lines_from_bytes(&bytes);
    if !lines.invalid_utf8.is_empty() {
        let first: Vec<String> = lines
            .invalid_utf8
            .iter()
            .take(5)
            .map(|n| (n + 1).to_string())
            .collect();
        eprintln!(
            "warning: {} line(s) of {} held invalid UTF-8 and were repaired (lines {}{})",
            lines.invalid_utf8.len(),
            path.display(),
            first.join(", "),
            if lines.invalid_utf8.len() > 5 {
                ", ..."
            } else {
                ""
            }
        );
    }
    Ok(lines)
}

/// Parses `f32` / `bf16`.
pub(crate) fn parse_precision(s: &str) -> Result<Precision, String> {
    s.parse()
        .map_err(|e: sextant_embed::EmbedError| e.to_string())
}

/// Parses `batches` / `within-batch`.
pub(crate) fn parse_parallelism(s: &str) -> Result<BatchParallelism, String> {
    match s {
        "batches" => Ok(BatchParallelism::Batches),
        "within-batch" => Ok(BatchParallelism::WithinBatch),
        other => Err(format!(
            "unknown parallelism {other:?} (expected batches or within-batch)"
        )),
    }
}

/// Tells candle how many threads one matrix product may use. candle sizes its gemm
/// parallelism from `RAYON_NUM_THREADS` (read at every product), not from the rayon pool the
/// embedder installs: without this a 1-thread job would still split every product in as many
/// pieces as the machine has cores. With whole batches on different threads a product runs
/// on one thread.
///
/// Returns the embedder's thread count: `threads`, else every core. It is always explicit, so
/// that the embedder gets its own pool and the variable never sizes rayon's global pool.
pub(crate) fn set_product_threads(threads: Option<usize>, parallelism: BatchParallelism) -> usize {
    let threads =
        threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let per_product = match parallelism {
        BatchParallelism::Batches => 1,
        BatchParallelism::WithinBatch => threads,
    };
    // Set before any thread is started (the CLI is still single-threaded here).
    std::env::set_var("RAYON_NUM_THREADS", per_product.to_string());
    threads
}

pub fn run_embed(args: EmbedArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let threads = set_product_threads(args.threads, args.parallelism);
    let registry = ModelRegistry::new(RegistryConfig {
        batch_size: Some(args.batch),
        threads: Some(threads),
        parallelism: Some(args.parallelism),
        ..Default::default()
    });
    let opts = EmbedOptions {
        kind: if args.query {
            EmbedKind::Query
        } else if args.passage {
            EmbedKind::Passage
        } else {
            EmbedKind::Plain
        },
        dimensions: args.dim,
        precision: Some(args.precision.to_string()),
    };
    // Load before reading the input, so a missing model is reported first.
    registry
        .dense(&args.model, args.precision)
        .with_context(|| format!("cannot load model {}", args.model))?;
    let lines = read_lines(&args.input)?;
    let n = lines.lines.len();
    let bar = ProgressBar::new(n as u64).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} texts, {per_sec}, eta {eta}")
            .expect("valid template"),
    );
    let mut data = Vec::new();
    let (mut truncated, mut dim, mut max_tokens) = (0, args.dim.unwrap_or(0), 0);
    for chunk in lines.lines.chunks(CHUNK) {
        let out = registry.embed(&args.model, chunk, &opts)?;
        truncated += out.truncated;
        dim = out.dim;
        max_tokens = out.max_tokens;
        data.extend_from_slice(&out.data);
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    if n == 0 {
        let m = registry.dense(&args.model, args.precision)?;
        dim = args.dim.unwrap_or(sextant_embed::Embedder::dim(&m.model));
        max_tokens = m.model.max_seq_length();
    }
    write_npy_f32(&args.output, n, dim, &data)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    eprintln!(
        "embedded {n} texts into {} ([{n}, {dim}] float32) in {:.1}s; {truncated} truncated to {max_tokens} tokens",
        args.output.display(),
        started.elapsed().as_secs_f64(),
    );
    Ok(())
}

pub fn run_rerank(args: RerankArgs) -> anyhow::Result<()> {
    let registry = ModelRegistry::new(RegistryConfig {
        batch_size: Some(args.batch),
        threads: args.threads,
        ..Default::default()
    });
    registry
        .cross(&args.model)
        .with_context(|| format!("cannot load model {}", args.model))?;
    let lines = read_lines(&args.input)?;
    let scores = registry.rerank(&args.model, &args.query, &lines.lines)?;
    let passages: Vec<&str> = lines.lines.iter().map(String::as_str).collect();
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    order.truncate(args.top.unwrap_or(order.len()));
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    writeln!(out, "rank\tscore\tline\tpassage")?;
    for (rank, &i) in order.iter().enumerate() {
        writeln!(
            out,
            "{}\t{:.6}\t{}\t{}",
            rank + 1,
            scores[i],
            i + 1,
            passages[i]
        )?;
    }
    Ok(())
}

/// Writes a C-order float32 `.npy` (format version 1.0).
fn write_npy_f32(path: &Path, rows: usize, cols: usize, data: &[f32]) -> std::io::Result<()> {
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + header length (2) + header, padded to 64 bytes with a newline.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + data.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    data.iter()
        .for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
    std::fs::write(path, bytes)
}
