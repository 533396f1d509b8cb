//! `collection …` and `alias …`: create, list, inspect, optimize and delete collections; set,
//! list and delete aliases.

use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;

use crate::db::{collection, open, print_json, DbArgs};

/// Collection management.
#[derive(Debug, Subcommand)]
pub enum CollectionCommand {
    /// Create a collection.
    Create(Box<CreateArgs>),
    /// List collections and aliases.
    List,
    /// Show counts, segments, memory, disk and unindexed payload keys.
    Info {
        /// Collection or alias.
        name: String,
    },
    /// Delete a collection (and the aliases pointing at it).
    Delete {
        /// Collection name.
        name: String,
    },
    /// Flush and merge all segments into one, dropping deleted points.
    Optimize {
        /// Collection or alias.
        name: String,
    },
    /// Recommend an index layout: builds every layout on a sample of the collection's own
    /// vectors, measures recall and speed, and projects memory and speed to the planned size
    /// (an administrator's command: it samples every tenant's vectors and changes nothing).
    Advise(Box<AdviseArgs>),
}

/// `collection advise`.
#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// Collection or alias.
    pub name: String,
    /// The vector space to advise on (needed when the collection has several).
    #[arg(long)]
    pub space: Option<String>,
    /// Points to plan for [default: the live points now].
    #[arg(long)]
    pub points: Option<u64>,
    /// RAM the whole collection may hold at that size: bytes, or with a unit (`800MiB`,
    /// `2GiB`, `1.5GB`) [default: no limit].
    #[arg(long, value_name = "SIZE")]
    pub memory_budget: Option<String>,
    /// Recall@k to reach.
    #[arg(long, default_value_t = sextant_engine::advise::DEFAULT_TARGET_RECALL)]
    pub recall: f64,
    /// Neighbours per query.
    #[arg(long, default_value_t = sextant_engine::advise::DEFAULT_K)]
    pub k: usize,
    /// Stored vectors to build each layout over (all of them when the space holds fewer).
    #[arg(long, default_value_t = sextant_engine::advise::DEFAULT_SAMPLE)]
    pub sample: usize,
    /// Stored vectors held out as queries; with --queries-file, how many of its queries to
    /// use (the first ones) [default: 200; with --queries-file, all of them].
    #[arg(long)]
    pub queries: Option<usize>,
    /// Your own query vectors (.fvecs or .npy), instead of held-out stored vectors: advice for
    /// the queries your users send.
    #[arg(long, value_name = "FILE")]
    pub queries_file: Option<std::path::PathBuf>,
    /// Seed of the sample.
    #[arg(long, default_value_t = sextant_engine::advise::DEFAULT_SEED)]
    pub seed: u64,
}

/// Parses a size: bytes, or a number with B, KB, MB, GB, TB (powers of 1000) or KiB, MiB,
/// GiB, TiB (powers of 1024).
pub(crate) fn parse_size(s: &str) -> Result<u64> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit_bytes: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        other => {
            bail!("size {s:?}: unknown unit {other:?} (B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)")
        }
    };
    let n: f64 = num
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite() && *n > 0.0)
        .with_context(|| format!("size {s:?}: expected a positive number and a unit, e.g. 2GiB"))?;
    let bytes = n * unit_bytes;
    if bytes >= u64::MAX as f64 {
        bail!("size {s:?} is too large");
    }
    Ok(bytes.round() as u64)
}

fn size(b: u64) -> String {
    let m = mib(b);
    if m >= 10_240.0 {
        format!("{:.1} GiB", m / 1024.0)
    } else {
        format!("{m:.1} MiB")
    }
}

fn run_advise(args: &DbArgs, db: sextant_engine::Database, a: &AdviseArgs) -> Result<()> {
    let memory_budget = a
        .memory_budget
        .as_deref()
        .map(parse_size)
        .transpose()
        .context("--memory-budget")?;
    let query_vectors = match &a.queries_file {
        Some(path) => {
            let m = sextant_vecio::read_vectors(path)
                .with_context(|| format!("--queries-file {}", path.display()))?;
            Some((0..m.rows).map(|i| m.row(i).to_vec()).collect())
        }
        None => None,
    };
    let opts = sextant_service::advise::AdviseOptions {
        space: a.space.clone(),
        points: a.points,
        memory_budget,
        target_recall: Some(a.recall),
        k: Some(a.k),
        sample: Some(a.sample),
        queries: a.queries,
        query_vectors,
        seed: Some(a.seed),
    };
    let svc = sextant_service::Service::from_database(db, Default::default());
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template("advise [{bar:30}] {pos}/{len} layouts: {msg}")
            .expect("valid template"),
    );
    let report = svc.advise(&a.name, &opts, &mut |done, total, what| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(format!("building and measuring {what}"));
    });
    bar.finish_and_clear();
    let report = report?;
    if args.json {
        return print_json(&report);
    }
    println!(
        "collection {} space {}: {}-d {}, {} live points, planning for {}",
        report.collection,
        report.space,
        report.dim,
        report.metric,
        report.live_points,
        report.points
    );
    println!(
        "measured on {} vectors and {} {} queries, recall@{} target {}{}",
        report.sample,
        report.queries,
        report.queries_from,
        report.k,
        report.target_recall,
        report
            .memory_budget
            .map(|b| format!(", memory budget {}", size(b)))
            .unwrap_or_default()
    );
    println!();
    println!(
        "{:<3} {:<38} {:>9} {:>11} {:>10} {:>8} {:>10} {:>11} {:>8}",
        "",
        "layout",
        "RAM B/vec",
        "RAM at N",
        "disk at N",
        "recall",
        "QPS sample",
        "QPS at N",
        "build s"
    );
    for (i, l) in report.layouts.iter().enumerate() {
        let mark = if report.recommended == Some(i) {
            "->"
        } else if l.fits_budget == Some(false) {
            " x"
        } else {
            ""
        };
        let top = l.sweep.iter().map(|m| m.recall).fold(0.0, f64::max);
        let (recall, qps, at_n) = match (&l.chosen, l.projected_qps) {
            (Some(m), Some(p)) => (
                format!("{:.4}", m.recall),
                format!("{:.0}", m.qps),
                format!("{p:.0}"),
            ),
            _ => (format!("<{:.4}", top.max(0.0)), "-".into(), "-".into()),
        };
        println!(
            "{:<3} {:<38} {:>9.1} {:>11} {:>10} {:>8} {:>10} {:>11} {:>8.2}",
            mark,
            l.layout,
            l.ram_bytes_per_vector,
            size(l.ram_bytes),
            size(l.disk_bytes),
            recall,
            qps,
            at_n,
            l.build_s
        );
    }
    println!();
    match report.recommended {
        Some(i) => {
            let l = &report.layouts[i];
            println!("recommended: {} — {}", l.layout, report.reason);
            println!(
                "  sextant collection create NAME --dim {} --metric {} {}{}",
                report.dim,
                report.metric,
                l.create_flags,
                match (&l.index, l.chosen.and_then(|m| m.nprobe)) {
                    (sextant_engine::IndexSpec::IvfPq { .. }, Some(p)) => format!(" --nprobe {p}"),
                    _ => String::new(),
                }
            );
            if let Some(f) = &l.search_flags {
                println!("  search with {f}");
            }
        }
        None => println!("no recommendation: {}", report.reason),
    }
    for n in &report.notes {
        println!("note: {n}");
    }
    Ok(())
}

/// `collection create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Collection name (letters, digits, `_`, `-`).
    pub name: String,
    /// Dimension of the single vector space (named `default`).
    #[arg(long, conflicts_with = "space")]
    pub dim: Option<usize>,
    /// Metric of the single vector space: cosine, dot, l2, l1, or for binary vectors (every
    /// component 0 or 1, checked on the way in) hamming or jaccard [default: cosine].
    #[arg(long, conflicts_with = "space")]
    pub metric: Option<String>,
    /// Index of the single vector space: hnsw, flat, or ivf_pq (inverted lists of 4- or 8-bit
    /// product-quantisation codes, candidates rescored exactly; `--ef` at search time is the
    /// number rescored) [default: hnsw].
    #[arg(long, conflicts_with = "space")]
    pub index: Option<String>,
    /// ivf_pq: inverted lists per segment (0: about the square root of its points).
    #[arg(long)]
    pub nlist: Option<usize>,
    /// ivf_pq: sub-quantisers (0: a quarter of the dimension, rounded up, with 4-bit codes;
    /// an eighth with 8-bit codes: the same bytes per vector).
    #[arg(long)]
    pub pq_m: Option<usize>,
    /// ivf_pq: bits per code, 4 (16 centroids per sub-space, scanned in registers) or 8 (256:
    /// finer codes, a slower scan) [default: 4].
    #[arg(long)]
    pub pq_bits: Option<usize>,
    /// ivf_pq: learn an OPQ rotation before quantising: a slower build and one rotation per
    /// query, for more recall per byte where variance is uneven across components.
    #[arg(long)]
    pub opq: bool,
    /// ivf_pq: lists scanned per search [default: 16].
    #[arg(long)]
    pub nprobe: Option<usize>,
    /// Keep the f32 vectors of flushed segments on disk, memory-mapped, instead of in memory
    /// (with every --space too). The index stays in memory: an ivf_pq search reads from disk
    /// only the candidates it rescores, an hnsw walk (SQ8 codes) likewise; flat scans read
    /// everything. Not with --encrypt.
    #[arg(long)]
    pub on_disk: bool,
    /// hnsw: links per node [default: 16].
    #[arg(long)]
    pub m: Option<usize>,
    /// hnsw: build candidate list size [default: 200].
    #[arg(long)]
    pub ef_construction: Option<usize>,
    /// hnsw: what the graph walk compares: auto (8-bit codes where the metric allows, else
    /// f32), none (the f32 vectors: no codes in memory, the least memory with the vectors in
    /// memory), sq8 (8-bit codes, one byte per dimension beside the vectors) or pq4 (4-bit
    /// codes of every node's neighbours stored beside its links: the fastest walk and the most
    /// memory, about 16 bytes per dimension plus 128 per point up to 256 dimensions, at most
    /// 4 KiB of codes per point). sq8 and pq4 are not available with l1, hamming or jaccard.
    /// Results are rescored exactly either way [default: auto].
    #[arg(long)]
    pub quantization: Option<String>,
    /// A named vector space `NAME:DIM:METRIC[:hnsw|flat|ivf_pq]` (repeat for several; the
    /// index settings above apply to the single space only).
    #[arg(long, value_name = "SPEC")]
    pub space: Vec<String>,
    /// A payload index `KEY:TYPE`, TYPE one of keyword, integer, float, bool, datetime (repeat).
    #[arg(long = "payload-index", value_name = "KEY:TYPE")]
    pub payload_index: Vec<String>,
    /// Payload key holding each point's tenant, `KEY` or `KEY:keyword|integer` (string
    /// tenants by default); every point command then needs `--tenant` or `--all-tenants`.
    #[arg(long, value_name = "KEY[:TYPE]")]
    pub tenant_key: Option<String>,
    /// Encrypt the collection at rest (every file and every snapshot of it), under the master
    /// key (`--master-key-file` or $SEXTANT_MASTER_KEY); fixed at creation.
    #[arg(long)]
    pub encrypt: bool,
    /// Default time to live `FIELD:DURATION` (`created_at:30d`; s, m, h or d): a point without
    /// an expiry of its own (`expires_at` or `ttl` in the upsert file) expires DURATION after
    /// the RFC 3339 instant in its payload's FIELD; a point without one never expires.
    #[arg(long, value_name = "FIELD:DURATION")]
    pub ttl: Option<String>,
}

/// Aliases.
#[derive(Debug, Subcommand)]
pub enum AliasCommand {
    /// Create an alias or switch it to another collection (atomically).
    Set {
        /// Alias name.
        alias: String,
        /// Target collection.
        collection: String,
    },
    /// Delete an alias.
    Delete {
        /// Alias name.
        alias: String,
    },
    /// List aliases.
    List,
}

/// `--space NAME:DIM:METRIC[:hnsw|flat|ivf_pq]`.
fn parse_space(spec: &str) -> Result<sextant_service::SpaceBody> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (name, dim, metric, index) = match parts.as_slice() {
        [n, d, m] => (n, d, m, "hnsw"),
        [n, d, m, i] => (n, d, m, *i),
        _ => bail!("--space {spec:?}: expected NAME:DIM:METRIC[:hnsw|flat|ivf_pq]"),
    };
    Ok(sextant_service::SpaceBody {
        name: name.to_string(),
        dim: dim
            .parse()
            .with_context(|| format!("--space {spec:?}: dimension {dim:?} is not a number"))?,
        metric: metric.to_string(),
        index: Some(index.to_string()),
        m: None,
        ef_construction: None,
        quantization: None,
        nlist: None,
        pq_m: None,
        pq_bits: None,
        opq: None,
        nprobe: None,
        on_disk: false,
    })
}

/// Runs `collection …`.
pub fn run_collection(args: &DbArgs, cmd: CollectionCommand) -> Result<()> {
    let db = open(args)?;
    match cmd {
        CollectionCommand::Create(c) => {
            if let Some(t) = &c.ttl {
                sextant_service::collections::parse_ttl(t).context("--ttl")?;
            }
            let payload_indexes = c
                .payload_index
                .iter()
                .map(|p| {
                    let (key, ty) = p
                        .rsplit_once(':')
                        .with_context(|| format!("--payload-index {p:?}: expected KEY:TYPE"))?;
                    Ok((key.to_string(), ty.to_string()))
                })
                .collect::<Result<_>>()?;
            let spec = if c.space.is_empty() {
                sextant_service::CollectionSpec {
                    name: c.name.clone(),
                    dim: Some(c.dim.context("give --dim (or --space NAME:DIM:METRIC)")?),
                    metric: c.metric.clone(),
                    index: c.index.clone(),
                    m: c.m,
                    ef_construction: c.ef_construction,
                    quantization: c.quantization.clone(),
                    nlist: c.nlist,
                    pq_m: c.pq_m,
                    pq_bits: c.pq_bits,
                    opq: c.opq.then_some(true),
                    nprobe: c.nprobe,
                    on_disk: c.on_disk,
                    spaces: None,
                    payload_indexes,
                    tenant_key: c.tenant_key.clone(),
                    encrypted: c.encrypt,
                    ttl: c.ttl.clone(),
                }
            } else {
                if c.nlist.is_some()
                    || c.pq_m.is_some()
                    || c.pq_bits.is_some()
                    || c.opq
                    || c.nprobe.is_some()
                    || c.m.is_some()
                    || c.ef_construction.is_some()
                    || c.quantization.is_some()
                {
                    bail!("--m, --ef-construction, --quantization, --nlist, --pq-m, --pq-bits, --opq and --nprobe set the single space's index: with --space, give index settings through the API (`spaces` of the collection body)");
                }
                let mut spaces = c
                    .space
                    .iter()
                    .map(|s| parse_space(s))
                    .collect::<Result<Vec<_>>>()?;
                for s in &mut spaces {
                    s.on_disk = c.on_disk;
                }
                sextant_service::CollectionSpec {
                    name: c.name.clone(),
                    spaces: Some(spaces),
                    payload_indexes,
                    tenant_key: c.tenant_key.clone(),
                    encrypted: c.encrypt,
                    ttl: c.ttl.clone(),
                    ..Default::default()
                }
            };
            let col = sextant_service::Service::from_database(db, Default::default())
                .create_collection(&spec)?;
            if args.json {
                print_json(&col.info())?;
            } else {
                println!("created collection {:?}", c.name);
            }
        }
        CollectionCommand::Advise(a) => run_advise(args, db, &a)?,
        CollectionCommand::List => {
            let names = db.list_collections()?;
            let aliases = db.aliases();
            if args.json {
                print_json(&json!({"collections": names, "aliases": aliases}))?;
            } else {
                for n in names {
                    println!("{n}");
                }
                for (a, c) in aliases {
                    println!("{a} -> {c} (alias)");
                }
            }
        }
        CollectionCommand::Info { name } => {
            let info = collection(&db, &name)?.info();
            if args.json {
                print_json(&info)?;
            } else {
                println!("collection {}", info.name);
                for s in &info.schema.spaces {
                    println!(
                        "  space {}: {}-d {}, index {}{}",
                        s.name,
                        s.dim,
                        s.metric,
                        s.index,
                        if s.on_disk { ", vectors on disk" } else { "" }
                    );
                    if let Some(m) = &s.model {
                        println!(
                            "    model {} (precision at creation: {})",
                            m["path"].as_str().unwrap_or("?"),
                            m["precision"].as_str().unwrap_or("f32")
                        );
                    }
                }
                for p in &info.schema.payload_indexes {
                    println!(
                        "  payload index {}: {}",
                        p.key,
                        serde_json::to_value(p.field_type)?.as_str().unwrap_or("?")
                    );
                }
                if let Some(t) = &info.schema.tenant_key {
                    println!("  tenant key: {t}");
                }
                if let Some(t) = &info.schema.ttl {
                    println!(
                        "  default ttl: {} s after payload field {}",
                        t.seconds, t.field
                    );
                }
                println!(
                    "  points: {} live, {} deleted (of which {} expired), {} not yet flushed",
                    info.points, info.deleted, info.expired, info.unflushed_points
                );
                println!("  segments: {}", info.segments.len());
                for s in &info.segments {
                    println!(
                        "    #{}: {} points, {} deleted ({:.1}%), {:.1} MiB in memory, {:.1} MiB on disk, ~{:.1} MiB reclaimable",
                        s.id,
                        s.points,
                        s.deleted,
                        s.deleted_fraction * 100.0,
                        mib(s.memory_bytes),
                        mib(s.disk_bytes),
                        mib(s.reclaimable_bytes)
                    );
                }
                println!(
                    "  memory: {:.1} MiB; disk: {:.1} MiB (WAL {:.1} MiB)",
                    mib(info.memory_bytes),
                    mib(info.disk_bytes),
                    mib(info.wal_bytes)
                );
                let p = &info.memory_parts;
                println!(
                    "    in memory: vectors {:.1} MiB, index {:.1} MiB (+ {:.1} MiB used in place from mapped index files), payloads {:.1} MiB, points {:.1} MiB, sparse {:.1} MiB; vectors used from disk (memory-mapped): {:.1} MiB",
                    mib(p.vectors),
                    mib(p.index),
                    mib(p.index_mapped),
                    mib(p.payloads),
                    mib(p.points),
                    mib(p.sparse),
                    mib(p.vectors_on_disk)
                );
                let d = &info.disk_parts;
                println!(
                    "    on disk: vectors {:.1} MiB, index {:.1} MiB, payloads {:.1} MiB, points {:.1} MiB, sparse {:.1} MiB, tombstones {:.1} MiB, WAL {:.1} MiB, other {:.1} MiB",
                    mib(d.vectors),
                    mib(d.index),
                    mib(d.payloads),
                    mib(d.points),
                    mib(d.sparse),
                    mib(d.tombstones),
                    mib(d.wal),
                    mib(d.other)
                );
                println!(
                    "  reclaimable (held by deleted points, {:.1}% of those stored; a merge or optimize gives it back): ~{:.1} MiB on disk, ~{:.1} MiB in memory",
                    info.deleted_fraction * 100.0,
                    mib(info.reclaimable_bytes),
                    mib(info.reclaimable_memory_bytes)
                );
                match &info.recall_probe {
                    None => println!("  recall probe: off"),
                    Some(p) => match (p.recall, p.k_range) {
                        (Some(r), Some((lo, hi))) => println!(
                            "  recall probe: recall@{} ≈ {r:.3} ± {:.3} over the last {} sampled searches (lowest {:.2}; {} dropped)",
                            if lo == hi { lo.to_string() } else { format!("{lo}..{hi}") },
                            p.recall_stderr.unwrap_or(0.0),
                            p.samples,
                            p.min_recall.unwrap_or(r),
                            p.dropped
                        ),
                        _ => println!(
                            "  recall probe: no samples yet (it samples {}% of this process's approximate searches; a server reports its own in GET /collections/NAME and /metrics)",
                            p.rate * 100.0
                        ),
                    },
                }
                #[cfg(feature = "embed")]
                if let Some(d) = &info.drift {
                    for l in crate::drift::report_lines(d) {
                        println!("  {l}");
                    }
                }
                for a in &info.adapters {
                    println!(
                        "  query adapter on space {:?}: {} {}×{}, fingerprint {}",
                        a.space, a.kind, a.dim, a.dim, a.fingerprint
                    );
                }
                if info.unindexed_payload_keys.is_empty() {
                    println!("  every payload key seen has an index");
                } else {
                    println!(
                        "  payload keys without an index (filters on them scan payloads): {}",
                        info.unindexed_payload_keys.join(", ")
                    );
                }
            }
        }
        CollectionCommand::Delete { name } => {
            db.delete_collection(&name)?;
            if !args.json {
                println!("deleted collection {name:?}");
            } else {
                print_json(&json!({"deleted": name}))?;
            }
        }
        CollectionCommand::Optimize { name } => {
            let c = collection(&db, &name)?;
            let disk_before = c.info().disk_bytes;
            let t = Instant::now();
            c.optimize()?;
            let info = c.info();
            if args.json {
                print_json(&json!({
                    "seconds": t.elapsed().as_secs_f64(),
                    "segments": info.segments.len(),
                    "points": info.points,
                    "disk_bytes_before": disk_before,
                    "disk_bytes": info.disk_bytes,
                    "reclaimable_bytes": info.reclaimable_bytes,
                }))?;
            } else {
                println!(
                    "optimized {name:?} in {:.1} s: {} segment(s), {} points; disk {:.1} MiB -> {:.1} MiB",
                    t.elapsed().as_secs_f64(),
                    info.segments.len(),
                    info.points,
                    mib(disk_before),
                    mib(info.disk_bytes)
                );
            }
        }
    }
    Ok(())
}

/// Runs `alias …`.
pub fn run_alias(args: &DbArgs, cmd: AliasCommand) -> Result<()> {
    let db = open(args)?;
    match cmd {
        AliasCommand::Set { alias, collection } => {
            db.set_alias(&alias, &collection)?;
            if !args.json {
                println!("alias {alias:?} -> {collection:?}");
            }
        }
        AliasCommand::Delete { alias } => {
            db.delete_alias(&alias)?;
            if !args.json {
                println!("deleted alias {alias:?}");
            }
        }
        AliasCommand::List => {
            let aliases = db.aliases();
            if args.json {
                print_json(&aliases)?;
            } else {
                for (a, c) in aliases {
                    println!("{a} -> {c}");
                }
            }
        }
    }
    Ok(())
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1048576.0
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_decimal_and_binary_units() {
        assert_eq!(parse_size("1024").unwrap(), 1024);
        assert_eq!(parse_size("64B").unwrap(), 64);
        assert_eq!(parse_size("2KiB").unwrap(), 2048);
        assert_eq!(parse_size("1.5 GB").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("800mib").unwrap(), 800 << 20);
        assert_eq!(parse_size("2GiB").unwrap(), 2 << 30);
        for bad in ["", "MiB", "-1GiB", "0", "1.2.3MB", "12XB", "1e30TiB", "nan"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
    }
}
