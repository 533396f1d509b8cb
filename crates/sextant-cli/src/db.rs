//! What every database subcommand shares: the data directory and its options, the tenant flags,
//! opening the database, and parsing ids and filters. The subcommands are in `collection.rs`,
//! `points.rs`, `search.rs` and `docs.rs`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use serde_json::Value;
use sextant_core::{Filter, PointId};
use sextant_engine::{Collection, CollectionConfig, Database, Durability, Schema, Scope, TenantId};

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
    /// File holding the master key of encrypted collections (64 hex digits; make one with
    /// `sextant encryption keygen`) [default: $SEXTANT_MASTER_KEY_FILE, else the key itself in
    /// $SEXTANT_MASTER_KEY]. Never under the data directory.
    #[arg(long, value_name = "FILE")]
    pub master_key_file: Option<PathBuf>,
    /// Share of approximate vector searches the ANN recall probe re-runs exactly in the
    /// background (0 turns it off); its recall@k estimate is live state of this process, shown
    /// by `collection info` and the server's `/metrics`.
    #[arg(long, default_value_t = sextant_engine::probe::DEFAULT_PROBE_RATE, value_name = "RATE")]
    pub recall_probe_rate: f64,
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
            recall_probe: sextant_engine::ProbeConfig {
                rate: args.recall_probe_rate,
                ..sextant_engine::ProbeConfig::default()
            },
            ..CollectionConfig::default()
        },
    )
    .with_context(|| format!("cannot open data directory {}", dir.display()))?;
    db.set_master_key(sextant_service::master_key::load(
        args.master_key_file.as_deref(),
        &dir,
    )?);
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

pub(crate) fn print_json(v: &impl serde::Serialize) -> Result<()> {
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
