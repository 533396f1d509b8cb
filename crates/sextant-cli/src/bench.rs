//! `sextant bench …`: benchmark subcommands over the evaluation harness.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sextant_core::Metric;
use sextant_eval::ann::{self, AnnConfig, AnnObserver};
use sextant_eval::collections;
use sextant_eval::io::{read_vectors, write_ivecs};
use sextant_index::hnsw_defaults::{DEFAULT_EF_CONSTRUCTION, DEFAULT_M};
use sextant_index::{HnswParams, IvfPqParams, Quantization};
use tempfile::TempDir;

// A sibling file (not bench/search.rs) so the subcommand's code stays beside the other bench
// files; it is a child of this module because only `bench` knows the subcommands.
#[path = "bench_search.rs"]
mod search;

#[path = "bench_reclaim.rs"]
mod reclaim;

#[path = "bench_encryption.rs"]
mod encryption;

#[path = "bench_probe.rs"]
mod probe;

#[path = "bench_langid.rs"]
mod langid;

/// Base and query vectors of a collection benchmark: the first `points` and `max_queries`
/// rows, refused when empty or of different dimensions.
pub(crate) fn base_and_queries(
    base: &std::path::Path,
    queries: &std::path::Path,
    points: Option<usize>,
    max_queries: usize,
) -> anyhow::Result<(
    sextant_eval::io::Matrix<f32>,
    sextant_eval::io::Matrix<f32>,
    usize,
    usize,
)> {
    let b = sextant_eval::io::read_vectors(base)?;
    let q = sextant_eval::io::read_vectors(queries)?;
    let n = points.unwrap_or(b.rows).min(b.rows);
    let nq = max_queries.min(q.rows);
    anyhow::ensure!(n > 0 && nq > 0, "no points or no queries");
    anyhow::ensure!(b.dim == q.dim, "base and queries differ in dimension");
    Ok((b, q, n, nq))
}

/// One cosine HNSW space of `dim` dimensions with `m` links, nothing else.
pub(crate) fn cosine_hnsw_schema(dim: usize, m: usize) -> sextant_engine::Schema {
    sextant_engine::Schema {
        spaces: vec![sextant_engine::SpaceSpec {
            name: "default".into(),
            dim,
            metric: sextant_core::Metric::Cosine,
            index: sextant_engine::IndexSpec::Hnsw {
                m,
                ef_construction: sextant_engine::DEFAULT_EF_CONSTRUCTION,
                quantization: Quantization::Auto,
            },
            model: None,
            on_disk: false,
        }],
        payload_indexes: Vec::new(),
        tenant_key: None,
        documents: None,
        sparse_spaces: Vec::new(),
        ttl: None,
    }
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Build an HNSW index and sweep `ef`: recall@k and queries/s, queries issued one at a time.
    Ann(AnnArgs),
    /// Compute exact ground truth (top-k ids per query) with the flat index, as `.ivecs`.
    Gt(GtArgs),
    /// Durable collection: import, index build, then filtered search (recall@k and QPS per
    /// selectivity) on the data set `bench/filtered_data.py` writes.
    Filtered(FilteredArgs),
    /// Import throughput of synthetic vectors into a durable collection, and index build time.
    Import(ImportArgs),
    /// Time and memory to reopen an existing collection.
    Open(OpenArgs),
    /// Vector search over an existing collection through the Rust API, one query at a time
    /// from one thread: QPS, wall and CPU time per query, recall@k.
    Search(search::SearchBenchArgs),
    /// Disk and memory after a mass deletion: build a collection, delete a fraction of it,
    /// then run the merge policy and optimize, recording disk bytes, reclaimable bytes and RSS
    /// after each stage.
    Reclaim(reclaim::ReclaimBenchArgs),
    /// What encryption at rest costs: ingest, optimize, reopen, search and one-point upserts on
    /// a plain and an encrypted collection, alternating runs, medians and ratios.
    Encryption(encryption::EncryptionBenchArgs),
    /// Whether the live ANN recall probe tells the truth: per `ef`, the probe's recall@k
    /// estimate from a sample of searches against recall@k computed offline on all of them,
    /// and the search time with the probe on and off.
    RecallProbe(probe::ProbeBenchArgs),
    /// Language detection accuracy on labelled samples (per language and per kind: accuracy,
    /// share called reliable, confusions) and its time per text.
    Langid(langid::LangidBenchArgs),
    /// BM25 over a BEIR corpus: index, run every query (top-k, one thread), score against
    /// qrels, write a TREC run.
    Bm25(Bm25Args),
    /// Embedding throughput of a local model on a text file (sentences/s, tokens/s, CPU time,
    /// GFLOP/s, peak RSS, a stage profile).
    #[cfg(feature = "embed")]
    Embed(crate::bench_embed::EmbedBenchArgs),
}

#[derive(Debug, Args)]
pub struct Bm25Args {
    /// BEIR `corpus.jsonl` (`_id`, `title`, `text`).
    #[arg(long)]
    corpus: PathBuf,
    /// BEIR `queries.jsonl`.
    #[arg(long)]
    queries: PathBuf,
    /// BEIR qrels TSV; with it, nDCG@10, Recall@100, MRR@10 and MAP are reported.
    #[arg(long)]
    qrels: Option<PathBuf>,
    /// Results per query.
    #[arg(long, default_value_t = 100)]
    k: usize,
    /// Term-frequency saturation.
    #[arg(long, default_value_t = sextant_text::bm25::DEFAULT_K1)]
    k1: f32,
    /// Length normalisation.
    #[arg(long, default_value_t = sextant_text::bm25::DEFAULT_B)]
    b: f32,
    /// Tokenisation: `unicode` (UAX #29 words) or `alphanumeric` (runs of letters and digits).
    #[arg(long, default_value = "unicode")]
    split: String,
    /// Drop tokens with fewer characters.
    #[arg(long, default_value_t = 1)]
    min_chars: usize,
    /// Drop the language's stop words (English: Lucene's list; others: Snowball's).
    #[arg(long)]
    stop_words: bool,
    /// Snowball stemming in the language.
    #[arg(long)]
    stem: bool,
    /// The language of --stem and --stop-words (`french` or `fr`, …), or `auto`: each
    /// document's and query's detected language, English when detection is unsure.
    #[arg(long, default_value = "english")]
    language: String,
    /// Analyzer version: 2 (NFKC, CJK bigrams, exact terms) or 1 (hashed terms, as before).
    #[arg(long, default_value_t = sextant_text::ANALYZER_VERSION)]
    analyzer_version: u32,
    /// Query passes to time (median reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Write the TREC run here.
    #[arg(long)]
    run_out: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct FilteredArgs {
    /// Base vectors, `.fvecs` or `.npy`.
    #[arg(long)]
    base: PathBuf,
    /// Query vectors, `.fvecs` or `.npy`.
    #[arg(long)]
    queries: PathBuf,
    /// Payloads, one JSON object per line per base vector.
    #[arg(long)]
    payloads: PathBuf,
    /// The data set's `meta.json` (filters and their ground-truth files).
    #[arg(long)]
    filters: PathBuf,
    /// Directory of the ground-truth files [default: the directory of --filters].
    #[arg(long)]
    gt_dir: Option<PathBuf>,
    /// Distance metric.
    #[arg(long)]
    metric: Metric,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// ef values to sweep.
    #[arg(long, value_delimiter = ',', default_value = "16,32,64,128,256")]
    ef: Vec<usize>,
    /// Repetitions per setting (median reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Data directory for the benchmark collection [default: a temporary directory].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown report here.
    #[arg(long)]
    markdown: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Number of points (seeded uniform random vectors; not with --base).
    #[arg(long, default_value_t = 100_000)]
    n: usize,
    /// Dimension (not with --base).
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// Import these vectors (`.fvecs` or `.npy`, ids = row numbers) instead of random ones.
    #[arg(long, conflicts_with_all = ["n", "dim"])]
    base: Option<PathBuf>,
    /// The index: `hnsw`, `ivf_pq` or `flat`.
    #[arg(long, default_value = "hnsw", value_parser = ["hnsw", "ivf_pq", "flat"])]
    index: String,
    /// ivf_pq: inverted lists [default: 0, about the square root of the points].
    #[arg(long)]
    nlist: Option<usize>,
    /// ivf_pq: sub-quantisers [default: 0, a quarter of the dimension, rounded up, with 4-bit
    /// codes; an eighth with 8-bit codes].
    #[arg(long)]
    pq_m: Option<usize>,
    /// ivf_pq: bits per code, 4 or 8 [default: 4].
    #[arg(long)]
    pq_bits: Option<usize>,
    /// ivf_pq: learn an OPQ rotation before quantising.
    #[arg(long)]
    opq: bool,
    /// ivf_pq: lists scanned per search by default [default: 16].
    #[arg(long)]
    nprobe: Option<usize>,
    /// Keep the flushed vectors on disk, memory-mapped.
    #[arg(long)]
    on_disk: bool,
    /// Metric.
    #[arg(long, default_value = "cosine")]
    metric: Metric,
    /// Durability: `always` (the default: fsync per batch) or an interval like `100ms`.
    #[arg(long, default_value = "always")]
    durability: String,
    /// HNSW links per node [default: 16].
    #[arg(long)]
    m: Option<usize>,
    /// HNSW build beam width [default: 200].
    #[arg(long)]
    ef_construction: Option<usize>,
    /// HNSW: what the walk compares, auto, none, sq8 or pq4 [default: auto].
    #[arg(long)]
    quantization: Option<Quantization>,
    /// Keep the collection in this data directory (as collection `bench`) for `bench open`
    /// [default: a temporary directory, removed afterwards].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct OpenArgs {
    /// Data directory.
    #[arg(long)]
    data: PathBuf,
    /// Collection.
    #[arg(long, default_value = "bench")]
    collection: String,
    /// After opening, search these queries (`.fvecs` or `.npy`) and report recall, QPS (one
    /// thread) and memory after the searches; needs --gt.
    #[arg(long, requires = "gt")]
    queries: Option<PathBuf>,
    /// Exact neighbours of --queries (`.ivecs` or `.npy`, row numbers of the imported base).
    #[arg(long, requires = "queries")]
    gt: Option<PathBuf>,
    /// Results per query.
    #[arg(long, default_value_t = 10)]
    k: usize,
    /// Candidates kept (HNSW) or rescored (ivf_pq), comma-separated sweep.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    ef: Vec<usize>,
    /// ivf_pq: lists scanned, comma-separated sweep [default: the space's].
    #[arg(long, value_delimiter = ',')]
    nprobe: Vec<usize>,
    /// Timed runs per grid point (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
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
    /// Distance metric: cosine, dot, l2, l1, hamming or jaccard (binary vectors).
    #[arg(long)]
    metric: Metric,
    /// The index to build: `hnsw` (a graph) or `ivf_pq` (inverted lists of 4-bit product
    /// quantisation codes, candidates rescored exactly).
    #[arg(long, default_value = "hnsw", value_parser = ["hnsw", "ivf_pq"])]
    index: String,
    /// IVF-PQ: inverted lists (0: about the square root of the number of vectors).
    #[arg(long, default_value_t = 0)]
    nlist: usize,
    /// IVF-PQ: sub-quantisers (0: a quarter of the dimension, rounded up, for 4-bit codes; an
    /// eighth for 8-bit codes).
    #[arg(long, default_value_t = 0)]
    pq_m: usize,
    /// IVF-PQ: bits per code, 4 (scanned in registers) or 8.
    #[arg(long, default_value_t = 4)]
    pq_bits: usize,
    /// IVF-PQ: learn an OPQ rotation before quantising.
    #[arg(long)]
    opq: bool,
    /// IVF-PQ: lists scanned per query to sweep, comma-separated (each with every `--ef`,
    /// which is then the number of candidates rescored exactly).
    #[arg(long, value_delimiter = ',')]
    nprobe: Vec<usize>,
    /// HNSW links per node (level 0 gets twice as many).
    #[arg(long, default_value_t = DEFAULT_M)]
    m: usize,
    /// HNSW build beam width.
    #[arg(long, default_value_t = DEFAULT_EF_CONSTRUCTION)]
    ef_construction: usize,
    /// What the graph walk compares: `sq8` (8-bit codes, results rescored exactly in f32; one
    /// extra byte per dimension per vector), `pq4` (4-bit codes of each node's neighbours
    /// beside its links, results rescored exactly; about 16 extra bytes per dimension plus 128
    /// per vector up to 256 dimensions), `none` (f32), or `auto` (sq8 where the metric allows).
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
    /// Distance metric: cosine, dot, l2, l1, hamming or jaccard (binary vectors).
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
        BenchCommand::Filtered(args) => bench_filtered(args),
        BenchCommand::Import(args) => bench_import(args),
        BenchCommand::Open(args) => bench_open(args),
        BenchCommand::Search(args) => search::bench_search(args),
        BenchCommand::Reclaim(args) => reclaim::bench_reclaim(args),
        BenchCommand::Encryption(args) => encryption::bench_encryption(args),
        BenchCommand::RecallProbe(args) => probe::bench_recall_probe(args),
        BenchCommand::Langid(args) => langid::bench_langid(args),
        BenchCommand::Bm25(args) => bench_bm25(args),
        #[cfg(feature = "embed")]
        BenchCommand::Embed(args) => crate::bench_embed::bench_embed(args),
    }
}

fn bench_bm25(args: Bm25Args) -> anyhow::Result<()> {
    use sextant_text::{AnalyzerConfig, Bm25Params, Language, Split};
    let split = match args.split.as_str() {
        "unicode" => Split::UnicodeWords,
        "alphanumeric" => Split::Alphanumeric,
        other => anyhow::bail!("--split {other:?}: expected unicode or alphanumeric"),
    };
    if !(sextant_text::LEGACY_ANALYZER_VERSION..=sextant_text::ANALYZER_VERSION)
        .contains(&args.analyzer_version)
    {
        anyhow::bail!(
            "--analyzer-version {}: expected {}..={}",
            args.analyzer_version,
            sextant_text::LEGACY_ANALYZER_VERSION,
            sextant_text::ANALYZER_VERSION
        );
    }
    let (language, detect_language) = if args.language.eq_ignore_ascii_case("auto") {
        (Language::English, true)
    } else {
        (
            args.language
                .parse::<Language>()
                .map_err(|e| anyhow::anyhow!("--language: {e}"))?,
            false,
        )
    };
    if !args.stem && !args.stop_words && args.language != "english" {
        anyhow::bail!("--language applies to --stem and --stop-words; give one of them");
    }
    let cfg = sextant_eval::bm25::Bm25Config {
        corpus: args.corpus,
        queries: args.queries,
        qrels: args.qrels,
        k: args.k,
        analyzer: AnalyzerConfig {
            version: args.analyzer_version,
            split,
            min_chars: args.min_chars,
            stop_words: args.stop_words.then_some(language),
            stemmer: args.stem.then_some(language),
            detect_language,
            ..AnalyzerConfig::default()
        },
        params: Bm25Params {
            k1: args.k1,
            b: args.b,
        },
        runs: args.runs,
        run_out: args.run_out,
    };
    let r = sextant_eval::bm25::run(&cfg)?;
    println!(
        "indexed {} docs in {:.2} s ({:.0} docs/s, {:.2} s CPU); {} queries: {:.0} QPS ({:.2} s wall, {:.2} s CPU, one thread)",
        r.index.items, r.index.wall_s, r.index.per_s, r.index.cpu_s, r.search.items, r.search.per_s, r.search.wall_s, r.search.cpu_s
    );
    if let Some(m) = &r.metrics {
        println!(
            "nDCG@10 {:.4}  Recall@100 {:.4}  MRR@10 {:.4}  MAP {:.4}  ({} judged queries)",
            m.ndcg_at_10, m.recall_at_100, m.mrr_at_10, m.map, m.queries
        );
    }
    write_report(args.json.as_ref(), &r)
}

fn write_report(path: Option<&PathBuf>, report: &impl serde::Serialize) -> anyhow::Result<()> {
    if let Some(path) = path {
        let json = serde_json::to_string_pretty(report).expect("report serialises");
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// A fresh data directory: the one given (which must not exist yet), or a temporary one.
fn bench_data_dir(given: Option<PathBuf>) -> anyhow::Result<(PathBuf, Option<TempDir>)> {
    match given {
        Some(d) if d.join("collections/bench").exists() => anyhow::bail!(
            "{} already holds a collection \"bench\"; give a new directory",
            d.display()
        ),
        Some(d) => Ok((d, None)),
        None => {
            let t = tempfile::Builder::new()
                .prefix("sextant-bench-")
                .tempdir_in(
                    std::env::var_os("TMPDIR").map_or_else(std::env::temp_dir, PathBuf::from),
                )?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}

fn bench_filtered(args: FilteredArgs) -> anyhow::Result<()> {
    let (data, _tmp) = bench_data_dir(args.data)?;
    let config = collections::FilteredConfig {
        base: args.base,
        queries: args.queries,
        payloads: args.payloads,
        meta: args.filters,
        gt_dir: args.gt_dir,
        metric: args.metric,
        k: args.k,
        ef: args.ef,
        runs: args.runs.max(1),
        data,
    };
    let report = collections::run_filtered(&config, &|m| eprintln!("{m}"))?;
    let markdown = report.to_markdown();
    println!("{markdown}");
    write_report(args.json.as_ref(), &report)?;
    if let Some(path) = &args.markdown {
        std::fs::write(path, markdown).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn bench_import(args: ImportArgs) -> anyhow::Result<()> {
    let durability = args.durability.parse().map_err(anyhow::Error::msg)?;
    let hnsw_set =
        args.m.is_some() || args.ef_construction.is_some() || args.quantization.is_some();
    let ivf_set = args.nlist.is_some()
        || args.pq_m.is_some()
        || args.pq_bits.is_some()
        || args.opq
        || args.nprobe.is_some();
    if args.index != "hnsw" && hnsw_set {
        anyhow::bail!("--m, --ef-construction and --quantization apply to --index hnsw only");
    }
    if args.index != "ivf_pq" && ivf_set {
        anyhow::bail!(
            "--nlist, --pq-m, --pq-bits, --opq and --nprobe apply to --index ivf_pq only"
        );
    }
    let index = match args.index.as_str() {
        "hnsw" => sextant_engine::IndexSpec::Hnsw {
            m: args.m.unwrap_or(DEFAULT_M),
            ef_construction: args.ef_construction.unwrap_or(DEFAULT_EF_CONSTRUCTION),
            quantization: args.quantization.unwrap_or_default(),
        },
        "ivf_pq" => sextant_engine::IndexSpec::IvfPq {
            nlist: args.nlist.unwrap_or(0),
            m: args.pq_m.unwrap_or(0),
            nprobe: args.nprobe.unwrap_or(sextant_engine::DEFAULT_NPROBE),
            bits: args.pq_bits.unwrap_or(4),
            opq: args.opq,
        },
        _ => sextant_engine::IndexSpec::Flat,
    };
    let (data, _tmp) = bench_data_dir(args.data)?;
    let base = match &args.base {
        Some(path) => read_vectors(path)?,
        None => collections::synthetic(args.n, args.dim, 42),
    };
    let bar = ProgressBar::new(args.n as u64).with_style(
        ProgressStyle::with_template("import [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})")
            .expect("valid template"),
    );
    let (import, build) = collections::import(
        &data,
        "bench",
        &base,
        None,
        collections::ImportOptions {
            metric: args.metric,
            payload_indexes: Vec::new(),
            durability,
            index,
            on_disk: args.on_disk,
        },
        &|done| bar.set_position(done as u64),
    )?;
    bar.finish_and_clear();
    let report = serde_json::json!({
        "system": "sextant",
        "version": env!("CARGO_PKG_VERSION"),
        "n": base.rows, "dim": base.dim, "metric": args.metric,
        "base": args.base,
        "durability": args.durability,
        "index": index, "on_disk": args.on_disk,
        "batch": collections::IMPORT_BATCH,
        "import": import, "build": build,
    });
    println!(
        "import {} × {}-d ({}): {:.0} points/s ({:.1} s wall, {:.1} s CPU); index build {:.1} s wall, {:.1} s CPU",
        base.rows, base.dim, args.durability, import.points_per_s, import.wall_s, import.cpu_s, build.wall_s, build.cpu_s
    );
    write_report(args.json.as_ref(), &report)
}

fn bench_open(args: OpenArgs) -> anyhow::Result<()> {
    if args.ef.contains(&0) || args.nprobe.contains(&0) || args.k == 0 {
        anyhow::bail!("--k, --ef and --nprobe must be at least 1");
    }
    if args.queries.is_none()
        && (args.ef != [100] || !args.nprobe.is_empty() || args.k != 10 || args.runs != 3)
    {
        anyhow::bail!("--k, --ef, --nprobe and --runs apply to the searches of --queries");
    }
    let search = match (&args.queries, &args.gt) {
        (Some(q), Some(gt)) => Some(collections::OpenSearch {
            queries: read_vectors(q)?,
            gt: sextant_eval::io::read_ids(gt)?,
            k: args.k,
            efs: args.ef.clone(),
            nprobes: args.nprobe.clone(),
            runs: args.runs,
        }),
        _ => None,
    };
    let report = collections::measure_open(&args.data, &args.collection, search.as_ref())?;
    println!(
        "opened {:?} ({} points) in {:.2} s wall, {:.2} s CPU; RSS {:.0} MiB (peak {:.0} MiB), engine accounts {:.0} MiB; disk {:.0} MiB",
        report.collection,
        report.points,
        report.open_wall_s,
        report.open_cpu_s,
        report.rss_bytes as f64 / 1048576.0,
        report.peak_rss_bytes as f64 / 1048576.0,
        report.engine_memory_bytes as f64 / 1048576.0,
        report.disk_bytes as f64 / 1048576.0
    );
    let p = &report.memory_parts;
    let per = |b: u64| b as f64 / report.points.max(1) as f64;
    println!(
        "  anonymous RSS {:.0} MiB, file RSS {:.0} MiB; engine memory per point {:.1} B (vectors {:.1}, index {:.1} + {:.1} mapped, payloads {:.1}, points {:.1}); vectors on disk {:.0} MiB",
        report.rss_anon_bytes as f64 / 1048576.0,
        report.rss_file_bytes as f64 / 1048576.0,
        per(p.heap()),
        per(p.vectors),
        per(p.index),
        per(p.index_mapped),
        per(p.payloads),
        per(p.points),
        p.vectors_on_disk as f64 / 1048576.0
    );
    if let Some(f) = &report.first_pass {
        println!(
            "first pass (nprobe {}, ef {}; vectors read from disk unless cached): {:.0} QPS, {:.2} s wall, {:.2} s CPU",
            f.nprobe.map_or("space's".to_string(), |n| n.to_string()),
            f.ef,
            f.qps,
            f.wall_s,
            f.cpu_s
        );
    }
    if !report.search.is_empty() {
        println!("| nprobe | ef | recall@{} | QPS | wall s | CPU s |", args.k);
        println!("|---:|---:|---:|---:|---:|---:|");
        for r in &report.search {
            println!(
                "| {} | {} | {:.4} | {:.0} | {:.3} | {:.3} |",
                r.nprobe.map_or("space's".to_string(), |n| n.to_string()),
                r.ef,
                r.recall,
                r.qps,
                r.wall_s,
                r.cpu_s
            );
        }
    }
    if let Some(a) = &report.after_search {
        println!(
            "after the searches: RSS {:.0} MiB (anonymous {:.0} MiB, file {:.0} MiB), peak {:.0} MiB",
            a.rss_bytes as f64 / 1048576.0,
            a.rss_anon_bytes as f64 / 1048576.0,
            a.rss_file_bytes as f64 / 1048576.0,
            a.peak_rss_bytes as f64 / 1048576.0
        );
    }
    write_report(args.json.as_ref(), &report)
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
    if args.index == "hnsw" && (args.nlist != 0 || args.pq_m != 0 || args.pq_bits != 4 || args.opq)
    {
        anyhow::bail!("--nlist, --pq-m, --pq-bits and --opq apply to --index ivf_pq only");
    }
    if args.index == "ivf_pq"
        && (args.m != DEFAULT_M
            || args.ef_construction != DEFAULT_EF_CONSTRUCTION
            || args.quantization != Quantization::Auto)
    {
        anyhow::bail!("--m, --ef-construction and --quantization apply to --index hnsw only");
    }
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
        ivf: (args.index == "ivf_pq").then(|| IvfPqParams {
            nlist: args.nlist,
            m: args.pq_m,
            bits: args.pq_bits,
            opq: args.opq,
            ..IvfPqParams::default()
        }),
        efs: args.ef,
        nprobes: args.nprobe,
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
