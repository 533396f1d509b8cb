//! `serve` (the HTTP server) and `keys` (its API keys).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use sextant_server::auth::{KeyStore, Role};
use sextant_server::config::{Overrides, ServerConfig};

/// `serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:6480, or `listen` in the config file).
    #[arg(long, value_name = "IP:PORT")]
    pub listen: Option<String>,
    /// TOML configuration file (every setting: docs/server.md). Environment variables
    /// `SEXTANT_SERVER_<SETTING>` (sections joined with `__`) override it; flags override both.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Serve without API keys: only allowed on a loopback address.
    #[arg(long)]
    pub no_auth: bool,
}

/// Runs `serve` until SIGINT or SIGTERM.
pub fn run_serve(db_args: &crate::db::DbArgs, a: ServeArgs) -> Result<()> {
    let config = ServerConfig::load(
        a.config.as_deref(),
        std::env::vars(),
        &Overrides {
            listen: a.listen,
            no_auth: a.no_auth,
        },
    )?;
    let db = crate::db::open(db_args)?;
    if config.auth && db_keys_empty(&db)? {
        eprintln!(
            "sextant serve: no API keys yet; make one with `sextant --data {} keys create --role admin`",
            db.dir().display()
        );
    }
    sextant_server::serve(db, config)
}

fn db_keys_empty(db: &sextant_engine::Database) -> Result<bool> {
    Ok(KeyStore::open(db.dir())?.list()?.is_empty())
}

/// `keys`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Make an API key and print it (it is shown only this once; only its hash is stored).
    Create {
        /// `read` (search, get, count, scroll, ask, embed), `write` (and upsert, delete,
        /// ingest) or `admin` (everything: collections, aliases, tenants, keys).
        #[arg(long, value_parser = parse_role)]
        role: Role,
        /// Limit the key to this collection or alias (repeat for several); default: all.
        #[arg(long = "collection", value_name = "NAME")]
        collections: Vec<String>,
        /// Limit the key to one tenant's points (read and write keys).
        #[arg(long)]
        tenant: Option<String>,
        /// A note kept with the key.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id.
    Delete {
        /// Key id (from `keys list`).
        id: String,
    },
}

fn parse_role(s: &str) -> Result<Role, String> {
    s.parse()
}

/// Runs `keys …`. It works while a server runs on the same data directory (the server sees the
/// change within a second).
pub fn run_keys(db_args: &crate::db::DbArgs, cmd: KeysCommand) -> Result<()> {
    let dir = crate::db::data_dir(db_args)?;
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let store = KeyStore::open(&dir)?;
    match cmd {
        KeysCommand::Create {
            role,
            collections,
            tenant,
            description,
        } => {
            let collections = (!collections.is_empty()).then_some(collections);
            let (record, key) = store.create(
                role,
                collections,
                tenant.map(serde_json::Value::String),
                description,
            )?;
            if db_args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"key": key, "record": record})
                    )?
                );
            } else {
                println!("{key}");
                eprintln!(
                    "made {} key {} (shown once: store it now; send it as `Authorization: Bearer KEY`)",
                    record.role.as_str(),
                    record.id
                );
            }
        }
        KeysCommand::List => {
            let keys = store.list()?;
            if db_args.json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                for k in keys {
                    println!(
                        "{}  {:<5}  collections={}  tenant={}  {}",
                        k.id,
                        k.role.as_str(),
                        k.collections
                            .map_or_else(|| "*".to_string(), |c| c.join(",")),
                        k.tenant.map_or_else(|| "-".to_string(), |t| t.to_string()),
                        k.description
                    );
                }
            }
        }
        KeysCommand::Delete { id } => {
            store.delete(&id)?;
            println!("revoked key {id}");
        }
    }
    Ok(())
}
