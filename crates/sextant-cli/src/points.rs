//! Point commands: `upsert`, `get`, `delete`, `count`, `scroll`, and `tenant list|drop`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};
use sextant_core::PointId;
use sextant_engine::{OrderBy, TenantId};
use sextant_service::import::{ImportOptions, PointBatches};

use crate::db::{
    collection, open, parse_filter, parse_id, print_json, service, DbArgs, TenantArgs,
};

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

/// Runs `delete NAME --older-than DURATION`.
pub fn run_delete_older_than(
    args: &DbArgs,
    name: &str,
    older_than: &str,
    tenant: &TenantArgs,
) -> Result<()> {
    let svc = crate::db::service(args)?;
    let c = svc.collection(name)?;
    let scope = tenant.scope(c.name(), c.schema())?;
    let r = svc.delete_older_than(c.name(), &scope, older_than)?;
    let cutoff = sextant_engine::clock::format_expiry(r.cutoff_ms);
    if args.json {
        print_json(&json!({"deleted": r.points, "documents": r.documents, "cutoff": cutoff}))?;
    } else {
        println!(
            "deleted {} documents ({} points) ingested before {cutoff}",
            r.documents, r.points
        );
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
