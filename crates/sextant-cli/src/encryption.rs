//! `sextant encryption …`: make a master key, show which collections are encrypted and with
//! which keys, rotate the master key (rewraps data keys; no data rewritten) or a collection's
//! data key (every file rewritten).

use std::path::PathBuf;

use anyhow::Result;
use clap::Subcommand;
use serde_json::json;

use crate::db::{collection, data_dir, open, print_json, DbArgs};

/// Encryption at rest.
#[derive(Debug, Subcommand)]
pub enum EncryptionCommand {
    /// Write a new random master key to FILE (64 hex digits, mode 0600; never over an existing
    /// file, never under the data directory). Keep it safe: without it encrypted collections
    /// and their snapshots cannot be read.
    Keygen {
        /// The key file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Which collections are encrypted: cipher, master key id, data key generations.
    Status {
        /// One collection (default: all).
        name: Option<String>,
    },
    /// Rewrap every encrypted collection's data keys under a new master key (the current one is
    /// `--master-key-file` or $SEXTANT_MASTER_KEY). Only the small key files are rewritten;
    /// collections already under the new key are skipped, so an interrupted rotation is
    /// finished by running it again. Snapshots taken before keep needing the old key.
    RotateMasterKey {
        /// File holding the new master key.
        #[arg(long, value_name = "FILE")]
        new_key_file: PathBuf,
    },
    /// Give a collection a new data key and rewrite every file of it with that key (a merge of
    /// all segments; reads and writes go on), then drop the old key.
    RotateDataKey {
        /// Collection or alias.
        name: String,
    },
}

/// Runs `encryption …`.
pub fn run_encryption(args: &DbArgs, cmd: EncryptionCommand) -> Result<()> {
    match cmd {
        EncryptionCommand::Keygen { out } => {
            let key = sextant_service::master_key::generate(&out, &data_dir(args)?)?;
            if args.json {
                print_json(&json!({"file": out, "master_key_id": key.id()}))?;
            } else {
                println!("wrote master key {} to {}", key.id(), out.display());
            }
        }
        EncryptionCommand::Status { name } => {
            let db = open(args)?;
            let names = match name {
                Some(n) => vec![n],
                None => db.list_collections()?,
            };
            let mut rows = Vec::new();
            for n in names {
                let status = match db.collection(&n) {
                    Ok(c) => json!(c.encryption_status()),
                    Err(e @ sextant_engine::EngineError::EncryptionKey(_)) => {
                        json!({"error": e.to_string()})
                    }
                    Err(e) => return Err(e.into()),
                };
                rows.push(json!({"collection": n, "encryption": status}));
            }
            if args.json {
                print_json(&json!({"master_key_id": db.master_key_id(), "collections": rows}))?;
            } else {
                if let Some(id) = db.master_key_id() {
                    println!("master key given: {id}");
                }
                for r in rows {
                    let e = &r["encryption"];
                    let what = if e.is_null() {
                        "not encrypted".to_string()
                    } else if let Some(err) = e["error"].as_str() {
                        err.to_string()
                    } else {
                        format!(
                            "encrypted ({}), master key {}, data key generation {} (held: {})",
                            e["cipher"].as_str().unwrap_or("?"),
                            e["master_key_id"].as_str().unwrap_or("?"),
                            e["current_generation"],
                            e["generations"]
                        )
                    };
                    println!("{}: {what}", r["collection"].as_str().unwrap_or("?"));
                }
            }
        }
        EncryptionCommand::RotateMasterKey { new_key_file } => {
            let db = open(args)?;
            let new = sextant_service::master_key::read_key_file(
                &new_key_file,
                db.dir(),
                "new_key_file",
            )?;
            let done = db.rotate_master_key(&new)?;
            if args.json {
                print_json(&json!({"master_key_id": new.id(), "rewrapped": done}))?;
            } else {
                println!(
                    "master key is now {}; rewrapped {} collection(s){}",
                    new.id(),
                    done.len(),
                    if done.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", done.join(", "))
                    }
                );
            }
        }
        EncryptionCommand::RotateDataKey { name } => {
            let db = open(args)?;
            let c = collection(&db, &name)?;
            let generation = c.rotate_data_key()?;
            if args.json {
                print_json(&json!({"collection": c.name(), "generation": generation}))?;
            } else {
                println!(
                    "collection {}: every file rewritten with data key generation {generation}",
                    c.name()
                );
            }
        }
    }
    Ok(())
}
