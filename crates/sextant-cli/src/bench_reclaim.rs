//! `sextant bench reclaim`: disk and memory after a mass deletion (issue 16, "space comes
//! back").
//!
//! Builds a collection of `--points` random vectors (with a small payload each) in
//! `--segments` segments, reopens it, deletes `--delete-fraction` of the points (chosen at
//! random, in batches of ids), then runs the next merge the policy asks for
//! ([`Collection::merge`]: every segment whose deleted fraction reached
//! `vacuum_deleted_fraction` is rewritten without its deleted points), then `optimize`.
//! After each stage it records what `info` reports (disk bytes, WAL bytes, reclaimable bytes,
//! engine memory) and the process's resident set (`VmRSS`). Background merges are off so
//! that each stage is measured before the next begins; the merge measured is the one a
//! background merge would run.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Args;
use serde::Serialize;
use serde_json::json;
use sextant_core::{Metric, PointId};
use sextant_engine::{
    CollectionConfig, Database, Durability, IndexSpec, PointInput, Schema, Scope, SpaceSpec,
    Vectors, DEFAULT_VACUUM_DELETED_FRACTION,
};
use sextant_eval::collections::proc_status_kib;
use sextant_index::hnsw_defaults::{DEFAULT_EF_CONSTRUCTION, DEFAULT_M};

/// Points per upsert or delete batch (one WAL record each).
const BATCH: usize = 10_000;

#[derive(Debug, Args)]
pub struct ReclaimBenchArgs {
    /// Number of points.
    #[arg(long, default_value_t = 1_000_000)]
    points: usize,
    /// Dimension.
    #[arg(long, default_value_t = 384)]
    dim: usize,
    /// Segments to build the collection in (each flushed with its own HNSW index).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    segments: u32,
    /// Fraction of the points to delete.
    #[arg(long, default_value_t = 0.9)]
    delete_fraction: f64,
    /// The merge policy's deleted fraction (`CollectionConfig::vacuum_deleted_fraction`).
    #[arg(long, default_value_t = DEFAULT_VACUUM_DELETED_FRACTION)]
    vacuum_deleted_fraction: f64,
    /// Seed of the vectors and of the choice of deleted points.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Build the collection in this data directory (which must not hold one named `bench`)
    /// [default: a temporary directory, removed afterwards].
    #[arg(long)]
    data: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the Markdown report here (it is always printed to stdout).
    #[arg(long)]
    markdown: Option<PathBuf>,
}

/// What one stage left behind.
#[derive(Debug, Serialize)]
struct Stage {
    stage: &'static str,
    /// Wall seconds of the stage's work.
    seconds: f64,
    points: u64,
    deleted: u64,
    segments: usize,
    disk_bytes: u64,
    wal_bytes: u64,
    /// `info`'s estimate of the bytes deleted points hold on disk.
    reclaimable_bytes: u64,
    /// `info`'s estimate of the heap bytes deleted points hold.
    reclaimable_memory_bytes: u64,
    /// Heap bytes the engine accounts for (`info.memory_bytes`).
    engine_memory_bytes: u64,
    /// Resident set of this process, which has lived through every stage before.
    rss_bytes: u64,
    /// Resident set of a fresh process (`sextant bench open`) that opens the collection as this
    /// stage left it: what a restarted server would hold.
    fresh_rss_bytes: u64,
}

#[derive(Debug, Serialize)]
struct ReclaimReport {
    system: &'static str,
    version: &'static str,
    points: usize,
    dim: usize,
    segments_built: u32,
    delete_fraction: f64,
    deleted_points: usize,
    vacuum_deleted_fraction: f64,
    payload: &'static str,
    index: String,
    /// Whether the policy's merge ran after the deletes (it must, above the fraction).
    merge_ran: bool,
    peak_rss_bytes: u64,
    stages: Vec<Stage>,
}

/// xorshift64: the same sequence for the same seed, on every machine.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn unit(&mut self) -> f32 {
        ((self.next() >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
}

/// Records a stage: `info` and the RSS of this process, then closes the database, measures a
/// fresh process opening it, and reopens it.
fn stage(
    db: &mut Option<Database>,
    data: &Path,
    config: CollectionConfig,
    name: &'static str,
    seconds: f64,
) -> anyhow::Result<Stage> {
    let info = bench(db)?.info();
    let rss_bytes = proc_status_kib("VmRSS:") * 1024;
    // The data directory is locked while open: close it for the child.
    drop(db.take());
    let fresh_rss_bytes = fresh_process_rss(data)?;
    *db = Some(open(data, config)?);
    Ok(Stage {
        stage: name,
        seconds,
        points: info.points,
        deleted: info.deleted,
        segments: info.segments.len(),
        disk_bytes: info.disk_bytes,
        wal_bytes: info.wal_bytes,
        reclaimable_bytes: info.reclaimable_bytes,
        reclaimable_memory_bytes: info.reclaimable_memory_bytes,
        engine_memory_bytes: info.memory_bytes,
        rss_bytes,
        fresh_rss_bytes,
    })
}

fn open(data: &Path, config: CollectionConfig) -> anyhow::Result<Database> {
    Database::open(data, config).with_context(|| format!("opening {}", data.display()))
}

fn bench(db: &Option<Database>) -> anyhow::Result<std::sync::Arc<sextant_engine::Collection>> {
    Ok(db
        .as_ref()
        .context("the database is open")?
        .collection("bench")?)
}

/// The resident set of `sextant bench open` run on `data` in a child process.
fn fresh_process_rss(data: &Path) -> anyhow::Result<u64> {
    let report = data.join(".open-report.json");
    let exe = std::env::current_exe().context("finding the sextant binary")?;
    let out = std::process::Command::new(exe)
        .args(["bench", "open", "--data"])
        .arg(data)
        .arg("--json")
        .arg(&report)
        .output()
        .context("running sextant bench open")?;
    anyhow::ensure!(
        out.status.success(),
        "sextant bench open failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report)?)?;
    std::fs::remove_file(&report)?;
    v["rss_bytes"]
        .as_u64()
        .context("bench open reported no rss_bytes")
}

fn config(flush_points: usize, vacuum_deleted_fraction: f64) -> CollectionConfig {
    CollectionConfig {
        durability: Durability::Always,
        flush_points,
        vacuum_deleted_fraction,
        background_merge: false,
        ..CollectionConfig::default()
    }
}

pub fn bench_reclaim(args: ReclaimBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        (0.0..=1.0).contains(&args.delete_fraction),
        "--delete-fraction {}: expected 0..=1",
        args.delete_fraction
    );
    anyhow::ensure!(
        args.points > 0 && args.dim > 0,
        "--points and --dim must be positive"
    );
    let (data, _tmp) = super::bench_data_dir(args.data.clone())?;
    let per_segment = args.points.div_ceil(args.segments as usize);
    let index = IndexSpec::Hnsw {
        m: DEFAULT_M,
        ef_construction: DEFAULT_EF_CONSTRUCTION,
        quantization: sextant_engine::Quantization::Auto,
    };
    let mut stages = Vec::new();

    // Build: flushes at `per_segment` points make the segments; the last one is flushed by
    // hand. Then the database is closed, so the stages below start from a freshly opened one.
    let t = Instant::now();
    {
        let db = Database::open(&data, config(per_segment, args.vacuum_deleted_fraction))?;
        let schema = Schema {
            spaces: vec![SpaceSpec {
                name: "default".into(),
                dim: args.dim,
                metric: Metric::Cosine,
                index,
                model: None,
                on_disk: false,
            }],
            payload_indexes: Vec::new(),
            tenant_key: None,
            documents: None,
            ttl: None,
            sparse_spaces: Vec::new(),
        };
        let c = db.create_collection("bench", schema)?;
        let mut rng = Rng::new(args.seed);
        // Batches never cross a segment's end, so every segment holds `per_segment` points.
        let batch_len = BATCH.min(per_segment);
        for start in (0..args.points).step_by(batch_len) {
            let end = (start + batch_len).min(args.points);
            let batch = (start..end)
                .map(|i| PointInput {
                    id: PointId::Num(i as u64),
                    vectors: Vectors::Single((0..args.dim).map(|_| rng.unit()).collect()),
                    payload: json!({"n": i, "text": format!("point {i} of the reclaim benchmark")}),
                    sparse: Vec::new(),
                    expires_at: None,
                })
                .collect();
            c.upsert(&Scope::Unscoped, batch)?;
            eprint!("\rbuild: {end}/{} points", args.points);
        }
        c.flush()?;
        eprintln!();
    }
    let build_s = t.elapsed().as_secs_f64();
    let config = config(usize::MAX, args.vacuum_deleted_fraction);
    let mut db = Some(open(&data, config)?);
    stages.push(stage(&mut db, &data, config, "built (reopened)", build_s)?);

    // Delete a random `delete_fraction` of the ids (a seeded partial shuffle).
    let doomed = (args.points as f64 * args.delete_fraction).round() as usize;
    let mut ids: Vec<u64> = (0..args.points as u64).collect();
    let mut rng = Rng::new(args.seed ^ 0xDE1E7E);
    for i in 0..doomed {
        let j = i + (rng.next() % (args.points - i) as u64) as usize;
        ids.swap(i, j);
    }
    let t = Instant::now();
    let mut gone = 0;
    {
        let c = bench(&db)?;
        for chunk in ids[..doomed].chunks(BATCH) {
            gone += c.delete(
                &Scope::Unscoped,
                chunk.iter().map(|&i| PointId::Num(i)).collect(),
            )?;
        }
    }
    drop(ids);
    anyhow::ensure!(gone == doomed, "deleted {gone} points, expected {doomed}");
    let s = t.elapsed().as_secs_f64();
    stages.push(stage(&mut db, &data, config, "deleted", s)?);

    let t = Instant::now();
    let merge_ran = bench(&db)?.merge()?;
    let s = t.elapsed().as_secs_f64();
    stages.push(stage(&mut db, &data, config, "next merge (policy)", s)?);

    let t = Instant::now();
    bench(&db)?.optimize()?;
    let s = t.elapsed().as_secs_f64();
    stages.push(stage(&mut db, &data, config, "optimize", s)?);
    drop(db);
    let live = (args.points - doomed) as u64;
    anyhow::ensure!(
        stages.iter().skip(1).all(|s| s.points == live),
        "a stage lost or resurrected points"
    );

    let report = ReclaimReport {
        system: "sextant",
        version: env!("CARGO_PKG_VERSION"),
        points: args.points,
        dim: args.dim,
        segments_built: args.segments,
        delete_fraction: args.delete_fraction,
        deleted_points: doomed,
        vacuum_deleted_fraction: args.vacuum_deleted_fraction,
        payload: "{\"n\": i, \"text\": \"point i of the reclaim benchmark\"}",
        index: format!("HNSW m={DEFAULT_M} efC={DEFAULT_EF_CONSTRUCTION}, SQ8 walk, cosine"),
        merge_ran,
        peak_rss_bytes: proc_status_kib("VmHWM:") * 1024,
        stages,
    };
    let markdown = to_markdown(&report);
    println!("{markdown}");
    super::write_report(args.json.as_ref(), &report)?;
    if let Some(path) = &args.markdown {
        std::fs::write(path, markdown).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

fn mib(b: u64) -> String {
    format!("{:.1}", b as f64 / 1048576.0)
}

fn to_markdown(r: &ReclaimReport) -> String {
    let mut s = format!(
        "{} points × {} dims ({}), {} segments built; {} deleted ({:.0}%) in batches of {BATCH}; \
         vacuum_deleted_fraction {}; merge ran: {}; peak RSS {} MiB\n\n",
        r.points,
        r.dim,
        r.index,
        r.segments_built,
        r.deleted_points,
        r.delete_fraction * 100.0,
        r.vacuum_deleted_fraction,
        r.merge_ran,
        mib(r.peak_rss_bytes),
    );
    s.push_str(
        "| stage | s | live | deleted | segments | disk MiB | of which WAL | reclaimable MiB (info) | engine memory MiB | reclaimable memory MiB | RSS MiB (this process) | RSS MiB (fresh process) |\n",
    );
    s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for st in &r.stages {
        s.push_str(&format!(
            "| {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
            st.stage,
            st.seconds,
            st.points,
            st.deleted,
            st.segments,
            mib(st.disk_bytes),
            mib(st.wal_bytes),
            mib(st.reclaimable_bytes),
            mib(st.engine_memory_bytes),
            mib(st.reclaimable_memory_bytes),
            mib(st.rss_bytes),
            mib(st.fresh_rss_bytes),
        ));
    }
    s
}
