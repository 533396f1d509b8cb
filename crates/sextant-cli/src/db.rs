//! The database subcommands: collections, aliases, points and search over a data directory.

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use sextant_core::{Filter, PointId};
use sextant_engine::{
    Collection, CollectionConfig, Database, Durability, OrderBy, Schema, Scope, SearchRequest,
    TenantId,
};
use sextant_service::import::{ImportOptions, PointBatches};

/// Environment variable naming the data directory (overridden by `--data`).
pub const DATA_ENV: &str = "SEXTANT_DATA";

/// Options every database command shares; they may go anywhere on the command line
/// (`sextant --data DIR search … --json`; see `hoist_global_options` in main.rs).
#[derive(Debug, Args)]
pub struct DbArgs {
    /// Data directory [default: $SEXTANT_DATA, else $XDG_DATA_HOME/sextant, else
    /// ~/.local/share/sextant].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// When writes reach stable storage: `always` (fsync before a write is acknowledged; the
    /// default) or an interval such as `100ms` (faster imports; a crash may lose the last
    /// interval's batches, never part of one).
    #[arg(long, default_value = "always", value_name = "POLICY")]
    pub durability: String,
    /// Print machine-readable JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Collection management.
#[derive(Debug, Subcommand)]
pub enum CollectionCommand {
    /// Create a collection.
    Create(CreateArgs),
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
}

/// `collection create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Collection name (letters, digits, `_`, `-`).
    pub name: String,
    /// Dimension of the single vector space (named `default`).
    #[arg(long, conflicts_with = "space")]
    pub dim: Option<usize>,
    /// Metric of the single vector space: cosine, dot, l2, l1.
    #[arg(long, default_value = "cosine")]
    pub metric: String,
    /// Index of the single vector space: hnsw or flat.
    #[arg(long, default_value = "hnsw")]
    pub index: String,
    /// HNSW links per node.
    #[arg(long, default_value_t = sextant_engine::DEFAULT_M)]
    pub m: usize,
    /// HNSW build candidate list size.
    #[arg(long, default_value_t = sextant_engine::DEFAULT_EF_CONSTRUCTION)]
    pub ef_construction: usize,
    /// A named vector space `NAME:DIM:METRIC[:hnsw|flat]` (repeat for several).
    #[arg(long, value_name = "SPEC")]
    pub space: Vec<String>,
    /// A payload index `KEY:TYPE`, TYPE one of keyword, integer, float, bool, datetime (repeat).
    #[arg(long = "payload-index", value_name = "KEY:TYPE")]
    pub payload_index: Vec<String>,
    /// Payload key holding each point's tenant, `KEY` or `KEY:keyword|integer` (string
    /// tenants by default); every point command then needs `--tenant` or `--all-tenants`.
    #[arg(long, value_name = "KEY[:TYPE]")]
    pub tenant_key: Option<String>,
}

/// The tenant scope of a command on points.
#[derive(Debug, Clone, Default, Args)]
pub struct TenantArgs {
    /// Only this tenant's points (multi-tenant collections; typed by the tenant key: a string
    /// for a keyword key, an integer for an integer key).
    #[arg(long, value_name = "TENANT")]
    pub tenant: Option<String>,
    /// Every tenant's points: the administrator's path in a multi-tenant collection.
    #[arg(long, conflicts_with = "tenant")]
    pub all_tenants: bool,
}

impl TenantArgs {
    /// The engine scope these flags give for collection `name` with `schema`.
    pub fn scope(&self, name: &str, schema: &Schema) -> Result<Scope> {
        match (&self.tenant, self.all_tenants, &schema.tenant_key) {
            (None, false, Some(key)) => bail!(
                "collection {name:?} is multi-tenant (tenant key {key:?}): give --tenant TENANT, or --all-tenants for the administrator's path"
            ),
            (Some(_), _, None) => bail!(
                "--tenant: collection {name:?} is not multi-tenant (it has no tenant key)"
            ),
            (Some(t), _, Some(_)) => Ok(Scope::Tenant(
                TenantId::parse_for(schema, t).context("--tenant")?,
            )),
            (None, true, _) => Ok(Scope::AllTenants),
            (None, false, None) => Ok(Scope::Unscoped),
        }
    }
}

/// `tenant …`.
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// List the tenants of a collection with their point counts.
    List {
        /// Collection or alias.
        name: String,
    },
    /// Delete every point of one tenant (one durable write).
    Drop {
        /// Collection or alias.
        name: String,
        /// The tenant (typed by the tenant key, as `--tenant`).
        tenant: String,
    },
}

/// Runs `tenant …`.
pub fn run_tenant(args: &DbArgs, cmd: TenantCommand) -> Result<()> {
    let db = open(args)?;
    match cmd {
        TenantCommand::List { name } => {
            let c = collection(&db, &name)?;
            let tenants = c.tenants()?;
            if args.json {
                let v: Vec<Value> = tenants
                    .iter()
                    .map(|(t, n)| json!({"tenant": t.to_json(), "points": n}))
                    .collect();
                print_json(&v)?;
            } else {
                for (t, n) in tenants {
                    println!("{}\t{n}", t.to_json());
                }
            }
        }
        TenantCommand::Drop { name, tenant } => {
            let c = collection(&db, &name)?;
            let t = TenantId::parse_for(c.schema(), &tenant).context("tenant drop")?;
            let n = c.drop_tenant(&t)?;
            c.sync()?;
            if args.json {
                print_json(&json!({"tenant": t.to_json(), "deleted": n}))?;
            } else {
                println!("deleted {n} points of tenant {t}");
            }
        }
    }
    Ok(())
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

/// `upsert`.
#[derive(Debug, Args)]
pub struct UpsertArgs {
    /// Collection or alias.
    pub name: String,
    /// JSONL (`{"id":…, "vector":[…] or {"space":[…]}, "payload":{…}}` per line), or `.npy` /
    /// `.fvecs` vectors with sequential integer ids.
    #[arg(long)]
    pub file: PathBuf,
    /// For `.npy`/`.fvecs`: the id of the first row.
    #[arg(long, default_value_t = 0)]
    pub start_id: u64,
    /// For `.npy`/`.fvecs`: a JSONL file with one payload object per row.
    #[arg(long)]
    pub payloads: Option<PathBuf>,
    /// Points per write batch (each batch is one WAL record, all-or-nothing).
    #[arg(long, default_value_t = sextant_service::import::DEFAULT_IMPORT_BATCH)]
    pub batch: usize,
    #[command(flatten)]
    pub tenant: TenantArgs,
}

/// Retrieval options shared by `search --text/--queries` and `ask`. Options that only some
/// modes use are refused where they would do nothing (never silently ignored).
#[derive(Debug, Clone, Default, Args)]
pub struct RetrievalArgs {
    /// Text search mode: dense, bm25, splade or hybrid [default: hybrid].
    #[arg(long)]
    pub mode: Option<String>,
    /// Sources of hybrid mode, comma-separated (dense, bm25, splade) [default: dense,bm25].
    #[arg(long)]
    pub sources: Option<String>,
    /// Fusion weights, one finite non-negative number per hybrid source [default: all 1].
    #[arg(long)]
    pub weights: Option<String>,
    /// Hybrid fusion: weighted (min-max normalised scores, summed with the weights), weighted-z
    /// (z-score normalised), rrf (reciprocal rank, k = 60) or dbsf (3-sigma normalised)
    /// [default: weighted].
    #[arg(long)]
    pub fusion: Option<String>,
    /// Chunks each source contributes [default: max(3 k, 100)].
    #[arg(long)]
    pub source_k: Option<usize>,
    /// Rerank: a cross-encoder model directory, or `maxsim` (late interaction over the
    /// collection's own model's token states).
    #[arg(long)]
    pub rerank: Option<String>,
    /// Chunks to rerank (with --rerank) [default: 50].
    #[arg(long, requires = "rerank")]
    pub rerank_top: Option<usize>,
    /// MMR diversity: lambda in [0, 1] (1 = relevance only).
    #[arg(long)]
    pub mmr: Option<f32>,
    /// Numeric precision of the query-side embedding model: f32 or bf16 [default: f32].
    #[cfg(feature = "embed")]
    #[arg(long, value_parser = crate::embed::parse_precision)]
    pub precision: Option<sextant_embed::Precision>,
    /// Chunks per document: results are grouped by document [search default: 1; ask default:
    /// no grouping, chunks in rank order].
    #[arg(long)]
    pub group_size: Option<usize>,
}

impl RetrievalArgs {
    /// The flags given on the command line, by name (for refusing them where they do nothing).
    pub fn given(&self) -> Vec<&'static str> {
        #[cfg(feature = "embed")]
        let precision = self.precision.is_some();
        #[cfg(not(feature = "embed"))]
        let precision = false;
        [
            ("--mode", self.mode.is_some()),
            ("--sources", self.sources.is_some()),
            ("--weights", self.weights.is_some()),
            ("--fusion", self.fusion.is_some()),
            ("--source-k", self.source_k.is_some()),
            ("--rerank", self.rerank.is_some()),
            ("--rerank-top", self.rerank_top.is_some()),
            ("--mmr", self.mmr.is_some()),
            ("--precision", precision),
            ("--group-size", self.group_size.is_some()),
        ]
        .into_iter()
        .filter_map(|(f, g)| g.then_some(f))
        .collect()
    }
}

/// `search`.
#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Collection or alias.
    pub name: String,
    /// The query vector as a JSON array.
    #[arg(
        long,
        conflicts_with = "vector_file",
        required_unless_present_any = ["vector_file", "text", "queries"]
    )]
    pub vector: Option<String>,
    /// A text query (collections made by `ingest`).
    #[arg(long, conflicts_with_all = ["vector", "vector_file", "queries"])]
    pub text: Option<String>,
    /// Text queries from a BEIR `queries.jsonl` (`_id`, `text`); one ranked list of documents
    /// per query.
    #[arg(long, conflicts_with_all = ["vector", "vector_file"])]
    pub queries: Option<PathBuf>,
    #[command(flatten)]
    pub retrieval: RetrievalArgs,
    /// Write text-query results as a TREC run (`qid Q0 docid rank score tag`).
    #[arg(long)]
    pub run_out: Option<PathBuf>,
    /// Query vectors from a file: JSON (one array or an array of arrays), `.npy` or `.fvecs`.
    #[arg(long)]
    pub vector_file: Option<PathBuf>,
    /// Vector space to search (needed when the collection has several).
    #[arg(long)]
    pub space: Option<String>,
    /// Payload filter (JSON, e.g. `{"must":[{"key":"tag","match":{"value":"a"}}]}`).
    #[arg(long)]
    pub filter: Option<String>,
    #[command(flatten)]
    pub tenant: TenantArgs,
    /// Number of results.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// HNSW candidate list size (higher: better recall, slower).
    #[arg(long)]
    pub ef: Option<usize>,
    /// Include payloads.
    #[arg(long)]
    pub with_payload: bool,
    /// Include stored vectors.
    #[arg(long)]
    pub with_vector: bool,
    /// Print the per-segment plan (matching points, exact scan or graph walk).
    #[arg(long)]
    pub explain: bool,
}

/// `scroll`.
#[derive(Debug, Args)]
pub struct ScrollArgs {
    /// Collection or alias.
    pub name: String,
    /// Payload filter (JSON).
    #[arg(long)]
    pub filter: Option<String>,
    /// Points per page.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// The `next_offset` of the previous page.
    #[arg(long)]
    pub offset: Option<String>,
    /// Order by this payload key instead of by id.
    #[arg(long)]
    pub order_by: Option<String>,
    /// Largest first (with --order-by).
    #[arg(long, requires = "order_by")]
    pub desc: bool,
    /// Include payloads.
    #[arg(long)]
    pub with_payload: bool,
    #[command(flatten)]
    pub tenant: TenantArgs,
}

/// The data directory: `--data`, else `$SEXTANT_DATA`, else the XDG data directory.
pub fn data_dir(args: &DbArgs) -> Result<PathBuf> {
    if let Some(d) = &args.data {
        return Ok(d.clone());
    }
    if let Some(d) = std::env::var_os(DATA_ENV).filter(|d| !d.is_empty()) {
        return Ok(d.into());
    }
    if let Some(d) = std::env::var_os("XDG_DATA_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(d).join("sextant"));
    }
    let home = std::env::var_os("HOME")
        .context("cannot find a data directory: set --data or SEXTANT_DATA")?;
    Ok(PathBuf::from(home).join(".local/share/sextant"))
}

/// Opens the database the arguments name.
pub fn open(args: &DbArgs) -> Result<Database> {
    let durability = durability(args)?;
    let dir = data_dir(args)?;
    let db = Database::open(
        &dir,
        CollectionConfig {
            durability,
            ..CollectionConfig::default()
        },
    )
    .with_context(|| format!("cannot open data directory {}", dir.display()))?;
    Ok(db)
}

/// Opens the data directory the arguments name as a service (documents, models).
pub fn service(args: &DbArgs) -> Result<sextant_service::Service> {
    Ok(sextant_service::Service::from_database(
        open(args)?,
        sextant_service::ServiceConfig::with_durability(durability(args)?),
    ))
}

fn durability(args: &DbArgs) -> Result<Durability> {
    args.durability
        .parse()
        .map_err(|e: String| anyhow::anyhow!(e))
}

/// Opens a collection and prints its recovery warnings.
pub fn collection(db: &Database, name: &str) -> Result<std::sync::Arc<Collection>> {
    let c = db.collection(name)?;
    for w in c.recovery().warnings() {
        eprintln!("warning: collection {:?}: {w}", c.name());
    }
    Ok(c)
}

fn print_json(v: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// Parses a point id given on the command line: digits are an integer id, anything else a
/// UUID or string id.
pub fn parse_id(s: &str) -> PointId {
    match s.parse::<u64>() {
        Ok(n) => PointId::Num(n),
        Err(_) => PointId::from_json(&Value::String(s.to_string())).expect("strings are ids"),
    }
}

/// A `--filter` as JSON for the service (checked here, so errors name the JSON path).
pub fn parse_filter_json(s: Option<&str>) -> Result<Option<Value>> {
    s.map(|s| -> Result<Value> {
        Filter::from_json_str(s)?;
        Ok(serde_json::from_str(s)?)
    })
    .transpose()
}

pub fn parse_filter(s: Option<&str>) -> Result<Option<Filter>> {
    s.map(|s| Filter::from_json_str(s).map_err(anyhow::Error::from))
        .transpose()
}

/// `--space NAME:DIM:METRIC[:hnsw|flat]`.
fn parse_space(spec: &str) -> Result<sextant_service::SpaceBody> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (name, dim, metric, index) = match parts.as_slice() {
        [n, d, m] => (n, d, m, "hnsw"),
        [n, d, m, i] => (n, d, m, *i),
        _ => bail!("--space {spec:?}: expected NAME:DIM:METRIC[:hnsw|flat]"),
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
    })
}

/// Runs `collection …`.
pub fn run_collection(args: &DbArgs, cmd: CollectionCommand) -> Result<()> {
    let db = open(args)?;
    match cmd {
        CollectionCommand::Create(c) => {
            let hnsw = c.index == "hnsw";
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
                    metric: Some(c.metric.clone()),
                    index: Some(c.index.clone()),
                    m: hnsw.then_some(c.m),
                    ef_construction: hnsw.then_some(c.ef_construction),
                    spaces: None,
                    payload_indexes,
                    tenant_key: c.tenant_key.clone(),
                }
            } else {
                sextant_service::CollectionSpec {
                    name: c.name.clone(),
                    spaces: Some(
                        c.space
                            .iter()
                            .map(|s| parse_space(s))
                            .collect::<Result<_>>()?,
                    ),
                    payload_indexes,
                    tenant_key: c.tenant_key.clone(),
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
                        "  space {}: {}-d {}, index {:?}",
                        s.name, s.dim, s.metric, s.index
                    );
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
                println!(
                    "  points: {} live, {} deleted, {} not yet flushed",
                    info.points, info.deleted, info.unflushed_points
                );
                println!("  segments: {}", info.segments.len());
                for s in &info.segments {
                    println!(
                        "    #{}: {} points, {} deleted, {:.1} MiB in memory",
                        s.id,
                        s.points,
                        s.deleted,
                        s.memory_bytes as f64 / 1048576.0
                    );
                }
                println!(
                    "  memory: {:.1} MiB; disk: {:.1} MiB (WAL {:.1} MiB)",
                    info.memory_bytes as f64 / 1048576.0,
                    info.disk_bytes as f64 / 1048576.0,
                    info.wal_bytes as f64 / 1048576.0
                );
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
            let t = Instant::now();
            c.optimize()?;
            let info = c.info();
            if args.json {
                print_json(
                    &json!({"seconds": t.elapsed().as_secs_f64(), "segments": info.segments.len(), "points": info.points}),
                )?;
            } else {
                println!(
                    "optimized {name:?} in {:.1} s: {} segment(s), {} points",
                    t.elapsed().as_secs_f64(),
                    info.segments.len(),
                    info.points
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

/// Runs `upsert`.
pub fn run_upsert(args: &DbArgs, up: UpsertArgs) -> Result<()> {
    let svc = service(args)?;
    let c = collection(svc.database(), &up.name)?;
    let scope = up.tenant.scope(c.name(), c.schema())?;
    let t = Instant::now();
    let mut batches = PointBatches::open(
        &up.file,
        &ImportOptions {
            start_id: up.start_id,
            payloads: up.payloads.clone(),
            batch: up.batch,
        },
    )?;
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} points, {per_sec}, eta {eta}")
            .expect("valid template"),
    );
    let report = svc.import_points(
        &up.name,
        &scope,
        &mut batches,
        &up.file.display().to_string(),
        &mut |landed, n| {
            bar.set_length(n as u64);
            bar.set_position(landed as u64);
        },
    );
    bar.finish_and_clear();
    let report = report?;
    let (n, write_s) = (report.points, report.write_seconds);
    if args.json {
        print_json(
            &json!({"points": n, "seconds": t.elapsed().as_secs_f64(), "write_seconds": write_s, "points_per_s": n as f64 / write_s.max(1e-9)}),
        )?;
    } else {
        println!(
            "upserted {n} points into {:?} in {:.2} s ({:.0} points/s); durable",
            c.name(),
            write_s,
            n as f64 / write_s.max(1e-9)
        );
    }
    Ok(())
}

/// Runs `get`.
pub fn run_get(
    args: &DbArgs,
    name: &str,
    ids: &[String],
    with_vector: bool,
    tenant: &TenantArgs,
) -> Result<()> {
    let db = open(args)?;
    let c = collection(&db, name)?;
    let scope = tenant.scope(c.name(), c.schema())?;
    let ids: Vec<PointId> = ids.iter().map(|s| parse_id(s)).collect();
    let points = c.get(&scope, &ids, true, with_vector)?;
    if args.json {
        print_json(&points)?;
    } else {
        for p in &points {
            println!("{}", serde_json::to_string(p)?);
        }
        if points.len() < ids.len() {
            eprintln!(
                "{} of {} ids not found",
                ids.len() - points.len(),
                ids.len()
            );
        }
    }
    Ok(())
}

/// Runs `delete`.
pub fn run_delete(
    args: &DbArgs,
    name: &str,
    ids: &[String],
    filter: Option<&str>,
    tenant: &TenantArgs,
) -> Result<()> {
    let db = open(args)?;
    let c = collection(&db, name)?;
    let scope = tenant.scope(c.name(), c.schema())?;
    let n = match (ids.is_empty(), parse_filter(filter)?) {
        (false, None) => c.delete(&scope, ids.iter().map(|s| parse_id(s)).collect())?,
        (true, Some(f)) => c.delete_by_filter(&scope, &f)?,
        (false, Some(_)) => bail!("give ids or --filter, not both"),
        (true, None) => bail!("give the ids to delete, or --filter"),
    };
    if args.json {
        print_json(&json!({"deleted": n}))?;
    } else {
        println!("deleted {n} points");
    }
    Ok(())
}

/// Runs `count`.
pub fn run_count(
    args: &DbArgs,
    name: &str,
    filter: Option<&str>,
    tenant: &TenantArgs,
) -> Result<()> {
    let db = open(args)?;
    let c = collection(&db, name)?;
    let scope = tenant.scope(c.name(), c.schema())?;
    let n = c.count(&scope, parse_filter(filter)?.as_ref())?;
    if args.json {
        print_json(&json!({"count": n}))?;
    } else {
        println!("{n}");
    }
    Ok(())
}

/// Runs `scroll`.
pub fn run_scroll(args: &DbArgs, s: ScrollArgs) -> Result<()> {
    let db = open(args)?;
    let c = collection(&db, &s.name)?;
    let order = s.order_by.map(|key| OrderBy {
        key,
        descending: s.desc,
    });
    let page = c.scroll(
        &s.tenant.scope(c.name(), c.schema())?,
        parse_filter(s.filter.as_deref())?.as_ref(),
        s.limit,
        s.offset.as_deref(),
        order.as_ref(),
        s.with_payload,
    )?;
    if args.json {
        print_json(&page)?;
    } else {
        for p in &page.points {
            println!("{}", serde_json::to_string(p)?);
        }
        if let Some(o) = page.next_offset {
            eprintln!("next page: --offset {o}");
        }
    }
    Ok(())
}

/// Runs `search`.
pub fn run_search(args: &DbArgs, s: SearchArgs) -> Result<()> {
    if s.text.is_some() || s.queries.is_some() {
        let vector_only: Vec<&str> = [
            ("--ef", s.ef.is_some()),
            ("--space", s.space.is_some()),
            ("--with-vector", s.with_vector),
            ("--with-payload", s.with_payload),
            ("--explain", s.explain),
        ]
        .into_iter()
        .filter_map(|(f, g)| g.then_some(f))
        .collect();
        if !vector_only.is_empty() {
            bail!(
                "{} apply to vector search only: text search uses the document collection's own spaces (pick them with --mode/--sources), always returns chunk payloads, and has no per-segment plan to print",
                vector_only.join(", ")
            );
        }
        #[cfg(feature = "embed")]
        {
            let queries = match (&s.text, &s.queries) {
                (Some(t), _) => vec![("q".to_string(), t.clone())],
                (None, Some(p)) => crate::docs::read_queries(p)?,
                (None, None) => unreachable!(),
            };
            return crate::docs::run_text_search(
                &service(args)?,
                crate::docs::TextSearch {
                    name: &s.name,
                    queries,
                    retrieval: &s.retrieval,
                    k: s.k,
                    filter: parse_filter_json(s.filter.as_deref())?,
                    tenant: &s.tenant,
                    run_out: s.run_out.as_deref(),
                    json_out: args.json,
                },
            );
        }
        #[cfg(not(feature = "embed"))]
        bail!("text search needs the `embed` feature (this build has none)");
    }
    let retrieval = s.retrieval.given();
    if !retrieval.is_empty() || s.run_out.is_some() {
        let mut flags = retrieval;
        if s.run_out.is_some() {
            flags.push("--run-out");
        }
        bail!(
            "{} apply to text search (--text or --queries) only; a vector search has no text to rank",
            flags.join(", ")
        );
    }
    let db = open(args)?;
    let c = collection(&db, &s.name)?;
    let queries = match (&s.vector, &s.vector_file) {
        (Some(v), _) => {
            let v: Value = serde_json::from_str(v).context("--vector is not JSON")?;
            vec![sextant_service::import::vector_from_json(&v, "--vector")?]
        }
        (None, Some(f)) => sextant_service::import::read_query_vectors(f)?,
        (None, None) => bail!("give --vector or --vector-file"),
    };
    let filter = parse_filter(s.filter.as_deref())?;
    let scope = s.tenant.scope(c.name(), c.schema())?;
    let mut out = Vec::new();
    let stdout = std::io::stdout();
    for q in queries {
        let r = c.search(SearchRequest {
            space: s.space.clone(),
            vector: q,
            k: s.k,
            ef: s.ef,
            filter: filter.clone(),
            scope: scope.clone(),
            with_payload: s.with_payload,
            with_vector: s.with_vector,
            exact_threshold: None,
        })?;
        if args.json {
            out.push(if s.explain {
                serde_json::to_value(&r)?
            } else {
                json!({"hits": r.hits})
            });
        } else {
            let mut lock = stdout.lock();
            if s.explain {
                for p in &r.plan {
                    writeln!(
                        lock,
                        "# segment {}: {} of {} points match, {:?}",
                        p.segment, p.matching, p.points, p.strategy
                    )?;
                }
            }
            if !r.unindexed_keys.is_empty() {
                eprintln!(
                    "note: no payload index for {}; those conditions scanned payloads",
                    r.unindexed_keys.join(", ")
                );
            }
            for h in &r.hits {
                writeln!(lock, "{}", serde_json::to_string(h)?)?;
            }
            if out.is_empty() {
                writeln!(lock)?;
            }
        }
    }
    if args.json {
        if out.len() == 1 {
            print_json(&out[0])?;
        } else {
            print_json(&out)?;
        }
    }
    Ok(())
}
