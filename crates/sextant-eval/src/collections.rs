//! Benchmarks of durable collections through the engine's public API: import throughput,
//! filtered search (recall@k and QPS per selectivity against exact filtered ground truth) and
//! reopen time and memory.
//!
//! The filtered benchmark reads the data set description `bench/filtered_data.py` writes
//! (`meta.json` with the filters, the payload JSONL, exact ground truth per filter) so Sextant
//! and the peer scripts answer the same queries with the same filters.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::Serialize;
use serde_json::{json, Value};
use sextant_core::{Filter, Metric, PointId};
use sextant_engine::{
    CollectionConfig, Database, Durability, FieldType, IndexSpec, PayloadIndexSpec, PointInput,
    Schema, SearchRequest, SpaceSpec, Vectors,
};

use crate::io::{read_ids, read_vectors, Matrix};
use crate::report::median;
use crate::{process_cpu_seconds, EvalError};

/// Points per upsert batch in the benchmarks (one WAL record, one fsync each).
pub const IMPORT_BATCH: usize = 1_000;

/// Wall and CPU seconds of a phase.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    /// Points handled.
    pub points: usize,
    /// Wall-clock seconds.
    pub wall_s: f64,
    /// CPU seconds of the process (all threads).
    pub cpu_s: f64,
    /// Points per wall second.
    pub points_per_s: f64,
    /// What was measured.
    pub what: String,
}

fn timed<T>(
    points: usize,
    what: &str,
    f: impl FnOnce() -> Result<T, EvalError>,
) -> Result<(T, Phase), EvalError> {
    let (c0, t0) = (process_cpu_seconds(), Instant::now());
    let out = f()?;
    let wall_s = t0.elapsed().as_secs_f64();
    Ok((
        out,
        Phase {
            points,
            wall_s,
            cpu_s: process_cpu_seconds() - c0,
            points_per_s: points as f64 / wall_s.max(1e-12),
            what: what.to_string(),
        },
    ))
}

fn engine(e: sextant_engine::EngineError) -> EvalError {
    EvalError::Invalid(format!("engine: {e}"))
}

/// How [`import`] sets up the collection.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Metric of the vector space.
    pub metric: Metric,
    /// Payload indexes to declare.
    pub payload_indexes: Vec<PayloadIndexSpec>,
    /// WAL durability policy.
    pub durability: Durability,
    /// The space's index.
    pub index: IndexSpec,
    /// Keep the flushed vectors on disk, memory-mapped.
    pub on_disk: bool,
}

/// Imports `base` (with `payloads`, ids = row numbers) into a new collection `name` of a fresh
/// database in `data`, in batches of [`IMPORT_BATCH`] with the given durability; then builds
/// the index (flush + merge into one segment). Returns the import and build phases.
pub fn import(
    data: &Path,
    name: &str,
    base: &Matrix<f32>,
    payloads: Option<&[Value]>,
    opts: ImportOptions,
    progress: &dyn Fn(usize),
) -> Result<(Phase, Phase), EvalError> {
    let ImportOptions {
        metric,
        payload_indexes,
        durability,
        index,
        on_disk,
    } = opts;
    let config = CollectionConfig {
        durability,
        // One index build at the end, measured as its own phase.
        flush_points: usize::MAX,
        ..CollectionConfig::default()
    };
    let db = Database::open(data, config).map_err(engine)?;
    let schema = Schema {
        spaces: vec![SpaceSpec {
            name: "default".into(),
            dim: base.dim,
            metric,
            index,
            model: None,
            on_disk,
        }],
        payload_indexes,
        tenant_key: None,
        documents: None,
        ttl: None,
        sparse_spaces: Vec::new(),
    };
    let c = db.create_collection(name, schema).map_err(engine)?;
    let (_, import) = timed(
        base.rows,
        "upsert batches of 1000 to WAL + mutable segment",
        || {
            for start in (0..base.rows).step_by(IMPORT_BATCH) {
                let end = (start + IMPORT_BATCH).min(base.rows);
                let batch = (start..end)
                    .map(|i| PointInput {
                        id: PointId::Num(i as u64),
                        vectors: Vectors::Single(base.row(i).to_vec()),
                        payload: payloads.map_or(Value::Null, |p| p[i].clone()),
                        sparse: Vec::new(),
                        expires_at: None,
                    })
                    .collect();
                c.upsert(&sextant_engine::Scope::Unscoped, batch)
                    .map_err(engine)?;
                progress(end);
            }
            c.sync().map_err(engine)
        },
    )?;
    let what = format!(
        "flush + index build ({index:?}{}) + write",
        if on_disk { ", vectors on disk" } else { "" }
    );
    let (_, build) = timed(base.rows, &what, || c.optimize().map_err(engine))?;
    Ok((import, build))
}

/// One filter of the filtered benchmark.
#[derive(Debug, Clone)]
struct FilterCase {
    selectivity: Option<f64>,
    label: String,
    filter: Option<Filter>,
    gt: Matrix<i32>,
}

/// One (filter, ef) measurement.
#[derive(Debug, Clone, Serialize)]
pub struct FilteredRun {
    /// Fraction of points the filter allows (`None` = unfiltered).
    pub selectivity: Option<f64>,
    /// The filter, as text.
    pub filter: String,
    /// Search parameters.
    pub params: Value,
    /// recall@k against exact filtered ground truth.
    pub recall: f64,
    /// Median queries per second.
    pub qps: f64,
    /// Wall seconds of the median run.
    pub wall_s: f64,
    /// CPU seconds of the median run.
    pub cpu_s: f64,
    /// How segments were searched (strategy counts over all queries of one run).
    pub plans: Value,
}

/// The filtered-search report (the schema the peer scripts write too).
#[derive(Debug, Clone, Serialize)]
pub struct FilteredReport {
    /// "sextant".
    pub system: String,
    /// Crate version.
    pub version: String,
    /// Data set name.
    pub dataset: String,
    /// Metric.
    pub metric: Metric,
    /// Base points.
    pub n: usize,
    /// Dimension.
    pub dim: usize,
    /// Neighbours per query.
    pub k: usize,
    /// Queries.
    pub queries: usize,
    /// Threading.
    pub threads: String,
    /// Import phase.
    pub import: Phase,
    /// Index build phase.
    pub build: Phase,
    /// Measurements.
    pub runs: Vec<FilteredRun>,
}

/// Configuration of [`run_filtered`].
#[derive(Debug, Clone)]
pub struct FilteredConfig {
    /// Base vectors.
    pub base: PathBuf,
    /// Queries.
    pub queries: PathBuf,
    /// Payload JSONL, one object per base row.
    pub payloads: PathBuf,
    /// `meta.json` of the filtered data set (filters and ground-truth file names).
    pub meta: PathBuf,
    /// Metric.
    pub metric: Metric,
    /// Neighbours per query.
    pub k: usize,
    /// ef values to sweep.
    pub ef: Vec<usize>,
    /// Repetitions per (filter, ef); the median is reported.
    pub runs: usize,
    /// Directory of the ground-truth files (default: the directory of `meta`).
    pub gt_dir: Option<PathBuf>,
    /// Data directory to build the collection in (must not hold a collection `bench`).
    pub data: PathBuf,
}

fn read_jsonl(path: &Path) -> Result<Vec<Value>, EvalError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EvalError::Invalid(format!("{}: {e}", path.display())))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, l)| {
            serde_json::from_str(l)
                .map_err(|e| EvalError::Invalid(format!("{} line {}: {e}", path.display(), i + 1)))
        })
        .collect()
}

fn load_cases(
    meta_path: &Path,
    gt_dir: Option<&Path>,
) -> Result<(String, Vec<FilterCase>), EvalError> {
    let bad = |m: String| EvalError::Invalid(format!("{}: {m}", meta_path.display()));
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(meta_path).map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    let dir = gt_dir.unwrap_or_else(|| meta_path.parent().unwrap_or(Path::new(".")));
    let mut cases = Vec::new();
    for f in meta["filters"]
        .as_array()
        .ok_or_else(|| bad("no \"filters\" array".into()))?
    {
        let filter = match f.get("sextant") {
            Some(v) => Some(Filter::from_json(v).map_err(|e| bad(e.to_string()))?),
            None => None,
        };
        let gt = f["gt"]
            .as_str()
            .ok_or_else(|| bad("a filter without \"gt\"".into()))?;
        cases.push(FilterCase {
            selectivity: f["selectivity"].as_f64(),
            label: f
                .get("sextant")
                .map_or_else(|| "none".to_string(), |v| v.to_string()),
            filter,
            gt: read_ids(&dir.join(gt))?,
        });
    }
    Ok((meta["dataset"].as_str().unwrap_or("?").to_string(), cases))
}

/// Runs the filtered-search benchmark.
pub fn run_filtered(
    cfg: &FilteredConfig,
    progress: &dyn Fn(&str),
) -> Result<FilteredReport, EvalError> {
    let base = read_vectors(&cfg.base)?;
    let queries = read_vectors(&cfg.queries)?;
    if base.dim != queries.dim {
        return Err(EvalError::Invalid(format!(
            "base is {}-d, queries {}-d",
            base.dim, queries.dim
        )));
    }
    let payloads = read_jsonl(&cfg.payloads)?;
    if payloads.len() != base.rows {
        return Err(EvalError::Invalid(format!(
            "{} payloads for {} base vectors",
            payloads.len(),
            base.rows
        )));
    }
    let (dataset, cases) = load_cases(&cfg.meta, cfg.gt_dir.as_deref())?;
    progress(&format!("importing {} × {}-d", base.rows, base.dim));
    let indexes = ["bucket", "label"]
        .iter()
        .map(|k| PayloadIndexSpec {
            key: (*k).into(),
            field_type: FieldType::Integer,
        })
        .collect();
    let (import, build) = import(
        &cfg.data,
        "bench",
        &base,
        Some(&payloads),
        ImportOptions {
            metric: cfg.metric,
            payload_indexes: indexes,
            durability: Durability::Always,
            index: IndexSpec::default(),
            on_disk: false,
        },
        &|_| {},
    )?;
    progress(&format!(
        "import {:.0} points/s; build {:.1} s",
        import.points_per_s, build.wall_s
    ));
    // `import` closed its handle; reopen as every later CLI command would.
    let db = Database::open(&cfg.data, CollectionConfig::default()).map_err(engine)?;
    let c = db.collection("bench").map_err(engine)?;
    let mut runs = Vec::new();
    for case in &cases {
        for &ef in &cfg.ef {
            let mut qps = Vec::new();
            let mut timing = Vec::new();
            let mut recall = 0.0;
            let mut plans = std::collections::BTreeMap::<String, u64>::new();
            for rep in 0..cfg.runs {
                let mut found = Vec::with_capacity(queries.rows);
                plans.clear();
                let (c0, t0) = (process_cpu_seconds(), Instant::now());
                for qi in 0..queries.rows {
                    let r = c
                        .search(SearchRequest {
                            vector: queries.row(qi).to_vec(),
                            k: cfg.k,
                            ef: Some(ef),
                            filter: case.filter.clone(),
                            ..Default::default()
                        })
                        .map_err(engine)?;
                    for p in &r.plan {
                        *plans
                            .entry(format!("{:?}", p.strategy).to_lowercase())
                            .or_default() += 1;
                    }
                    found.push(
                        r.hits
                            .iter()
                            .map(|h| match h.id {
                                PointId::Num(n) => n as u32,
                                _ => u32::MAX,
                            })
                            .collect::<Vec<u32>>(),
                    );
                }
                let wall = t0.elapsed().as_secs_f64();
                let cpu = process_cpu_seconds() - c0;
                qps.push(queries.rows as f64 / wall);
                timing.push((wall, cpu));
                if rep == 0 {
                    recall = crate::ann::recall_at_k(&case.gt, &found, cfg.k);
                }
            }
            let med = median(&qps);
            let (wall_s, cpu_s) = timing[qps.iter().position(|&q| q == med).unwrap_or(0)];
            progress(&format!(
                "filter {} ef {ef}: recall {recall:.4}, {med:.0} QPS",
                case.label
            ));
            runs.push(FilteredRun {
                selectivity: case.selectivity,
                filter: case.label.clone(),
                params: json!({"ef": ef}),
                recall,
                qps: med,
                wall_s,
                cpu_s,
                plans: json!(plans),
            });
        }
    }
    Ok(FilteredReport {
        system: "sextant".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        dataset,
        metric: cfg.metric,
        n: base.rows,
        dim: base.dim,
        k: cfg.k,
        queries: queries.rows,
        threads: "1 (queries issued one at a time from one thread; build on all cores)".into(),
        import,
        build,
        runs,
    })
}

/// Reopen measurement of an existing collection.
#[derive(Debug, Clone, Serialize)]
pub struct OpenReport {
    /// Collection.
    pub collection: String,
    /// Live points.
    pub points: u64,
    /// Wall seconds from `Database::open` to the collection answering queries.
    pub open_wall_s: f64,
    /// CPU seconds of the same.
    pub open_cpu_s: f64,
    /// Resident set size after opening, bytes.
    pub rss_bytes: u64,
    /// Peak resident set size of the process, bytes.
    pub peak_rss_bytes: u64,
    /// Of the resident set after opening: anonymous memory (heap), bytes.
    pub rss_anon_bytes: u64,
    /// Of the resident set after opening: pages of mapped files (on-disk vectors the open
    /// touched; page cache the kernel may drop), bytes.
    pub rss_file_bytes: u64,
    /// Memory the engine accounts for, bytes.
    pub engine_memory_bytes: u64,
    /// The same by part (vectors in memory and on disk, index, payloads, points, sparse).
    pub memory_parts: sextant_engine::MemoryParts,
    /// Bytes on disk.
    pub disk_bytes: u64,
    /// Searches run after opening (with `OpenSearch`), one thread, queries one at a time.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<OpenSearchRun>,
    /// The untimed warm-up pass before them (the first grid point, once): right after opening,
    /// the vectors it rescores come from disk unless the page cache holds them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_pass: Option<OpenSearchRun>,
    /// Resident set after those searches (anonymous and file pages), and the peak.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after_search: Option<RssAfter>,
}

/// Searches to run after [`measure_open`], with their ground truth (ids = row numbers, as
/// [`import`] assigns them).
#[derive(Debug, Clone)]
pub struct OpenSearch {
    /// Query vectors.
    pub queries: Matrix<f32>,
    /// Exact neighbours of each query (at least `k` per row).
    pub gt: Matrix<i32>,
    /// Results per query.
    pub k: usize,
    /// `ef` values to sweep.
    pub efs: Vec<usize>,
    /// `nprobe` values to sweep (empty: the space's own, for any index).
    pub nprobes: Vec<usize>,
    /// Timed runs per grid point (the median is reported).
    pub runs: usize,
}

/// One (nprobe, ef) point of [`OpenSearch`].
#[derive(Debug, Clone, Serialize)]
pub struct OpenSearchRun {
    /// Lists scanned (`None`: the space's own).
    pub nprobe: Option<usize>,
    /// Candidates kept / rescored.
    pub ef: usize,
    /// recall@k against the ground truth.
    pub recall: f64,
    /// Median queries per second.
    pub qps: f64,
    /// Every run's queries per second.
    pub qps_runs: Vec<f64>,
    /// Wall seconds of the median run.
    pub wall_s: f64,
    /// CPU seconds of the median run.
    pub cpu_s: f64,
}

/// Resident memory at a point of the measurement, bytes.
#[derive(Debug, Clone, Serialize)]
pub struct RssAfter {
    /// Resident set.
    pub rss_bytes: u64,
    /// Of it, anonymous memory.
    pub rss_anon_bytes: u64,
    /// Of it, pages of mapped files.
    pub rss_file_bytes: u64,
    /// Peak resident set of the process so far.
    pub peak_rss_bytes: u64,
}

impl RssAfter {
    fn now() -> RssAfter {
        RssAfter {
            rss_bytes: proc_status_kib("VmRSS:") * 1024,
            rss_anon_bytes: proc_status_kib("RssAnon:") * 1024,
            rss_file_bytes: proc_status_kib("RssFile:") * 1024,
            peak_rss_bytes: proc_status_kib("VmHWM:") * 1024,
        }
    }
}

/// A `kB` field of `/proc/self/status` (`VmRSS:`, `VmHWM:`) in KiB; 0 where unavailable.
pub fn proc_status_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

impl FilteredReport {
    /// A Markdown table of the runs.
    pub fn to_markdown(&self) -> String {
        let mut s = format!(
            "# Filtered search: {} ({} × {}-d, {}), k={}, {} queries\n\n\
             Import: {:.0} points/s ({:.1} s wall, {:.1} s CPU); build: {:.1} s wall, {:.1} s CPU.\n\n\
             | selectivity | ef | recall@{} | QPS | CPU s | plans |\n|---|---|---|---|---|---|\n",
            self.dataset, self.n, self.dim, self.metric, self.k, self.queries,
            self.import.points_per_s, self.import.wall_s, self.import.cpu_s,
            self.build.wall_s, self.build.cpu_s, self.k
        );
        for r in &self.runs {
            s.push_str(&format!(
                "| {} | {} | {:.4} | {:.0} | {:.2} | {} |\n",
                r.selectivity
                    .map_or("none".to_string(), |x| format!("{}%", x * 100.0)),
                r.params["ef"],
                r.recall,
                r.qps,
                r.cpu_s,
                r.plans
            ));
        }
        s
    }
}

/// Opens `collection` in `data` and measures the time and memory it takes; then, with
/// `search`, runs its queries over the grid and measures recall, speed and memory again.
pub fn measure_open(
    data: &Path,
    collection: &str,
    search: Option<&OpenSearch>,
) -> Result<OpenReport, EvalError> {
    let (c0, t0) = (process_cpu_seconds(), Instant::now());
    let db = Database::open(data, CollectionConfig::default()).map_err(engine)?;
    let c = db.collection(collection).map_err(engine)?;
    let open_wall_s = t0.elapsed().as_secs_f64();
    let open_cpu_s = process_cpu_seconds() - c0;
    let info = c.info();
    let opened = RssAfter::now();
    let mut report = OpenReport {
        collection: collection.into(),
        points: info.points,
        open_wall_s,
        open_cpu_s,
        rss_bytes: opened.rss_bytes,
        peak_rss_bytes: opened.peak_rss_bytes,
        rss_anon_bytes: opened.rss_anon_bytes,
        rss_file_bytes: opened.rss_file_bytes,
        engine_memory_bytes: info.memory_bytes,
        memory_parts: info.memory_parts,
        disk_bytes: info.disk_bytes,
        search: Vec::new(),
        first_pass: None,
        after_search: None,
    };
    if let Some(s) = search {
        let (first, runs) = open_searches(&c, s)?;
        report.first_pass = Some(first);
        report.search = runs;
        report.after_search = Some(RssAfter::now());
    }
    Ok(report)
}

fn open_searches(
    c: &sextant_engine::Collection,
    s: &OpenSearch,
) -> Result<(OpenSearchRun, Vec<OpenSearchRun>), EvalError> {
    if s.gt.rows != s.queries.rows || s.gt.dim < s.k {
        return Err(EvalError::Invalid(format!(
            "ground truth of {} × {} does not fit {} queries and k = {}",
            s.gt.rows, s.gt.dim, s.queries.rows, s.k
        )));
    }
    let nprobes: Vec<Option<usize>> = if s.nprobes.is_empty() {
        vec![None]
    } else {
        s.nprobes.iter().copied().map(Some).collect()
    };
    let search = |nprobe: Option<usize>, ef: usize| -> Result<Vec<Vec<u32>>, EvalError> {
        (0..s.queries.rows)
            .map(|q| {
                let r = c
                    .search(SearchRequest {
                        vector: s.queries.row(q).to_vec(),
                        k: s.k,
                        ef: Some(ef),
                        nprobe,
                        ..SearchRequest::default()
                    })
                    .map_err(engine)?;
                Ok(r.hits
                    .iter()
                    .map(|h| match h.id {
                        PointId::Num(n) => n as u32,
                        _ => u32::MAX,
                    })
                    .collect())
            })
            .collect()
    };
    // `runs` timed passes at one grid point; the median pass is reported.
    let measure =
        |nprobe: Option<usize>, ef: usize, runs: usize| -> Result<OpenSearchRun, EvalError> {
            let mut timed = Vec::new();
            let mut found = Vec::new();
            for _ in 0..runs.max(1) {
                let (c0, t0) = (process_cpu_seconds(), Instant::now());
                found = search(nprobe, ef)?;
                let wall = t0.elapsed().as_secs_f64();
                timed.push((
                    s.queries.rows as f64 / wall,
                    wall,
                    process_cpu_seconds() - c0,
                ));
            }
            let mut sorted = timed.clone();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            let median = sorted[sorted.len() / 2];
            Ok(OpenSearchRun {
                nprobe,
                ef,
                recall: crate::ann::recall_at_k(&s.gt, &found, s.k),
                qps: median.0,
                qps_runs: timed.iter().map(|r| r.0).collect(),
                wall_s: median.1,
                cpu_s: median.2,
            })
        };
    // Warm-up, reported apart: the first pages of mapped vectors are read here.
    let first = measure(nprobes[0], s.efs[0], 1)?;
    let mut out = Vec::new();
    for &nprobe in &nprobes {
        for &ef in &s.efs {
            out.push(measure(nprobe, ef, s.runs)?);
        }
    }
    Ok((first, out))
}

/// Seeded uniform random vectors in [-1, 1) (for import and restart benchmarks, where the
/// values do not matter).
pub fn synthetic(rows: usize, dim: usize, seed: u64) -> Matrix<f32> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data = (0..rows * dim)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Matrix { rows, dim, data }
}
