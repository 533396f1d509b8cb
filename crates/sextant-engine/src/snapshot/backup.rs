//! Whole-database backups: a snapshot of every collection and the aliases, in one directory.
//!
//! ```text
//! <backup>/<collection>.snapshot   one snapshot per collection (the format of `snapshot.rs`)
//! <backup>/backup                  SXTBACKP v1 envelope: JSON `BackupManifest`, written last
//! ```
//!
//! **Consistency.** [`Database::backup`] first fixes the contents of every collection's snapshot
//! ([`Collection::begin_snapshot`], each at its own last applied sequence number; merges of
//! every collection wait until the backup is written), then reads the aliases, then writes the
//! snapshots. Each collection comes back exactly at its snapshot's sequence number; writes that
//! land between two collections' fixing are in one and not the other, as with any per-collection
//! log. An alias whose collection is not in the backup (created meanwhile) is left out.
//!
//! **Whole or nothing.** The manifest is written (atomically) only after every snapshot is, so
//! a directory without one is an interrupted backup and restore refuses it; a failed backup
//! removes what it wrote. [`Database::restore_backup`] checks that every name is free before it
//! writes anything, restores each snapshot (every file checked before a collection appears), then
//! the aliases; on a failure it deletes what it had restored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sextant_storage::envelope::{self, io_err};
use sextant_storage::snapshot as archive;
use sextant_storage::StorageError;

use crate::database::{check_name, Database};
use crate::error::{EngineError, Result};

/// The backup manifest's file name inside a backup directory.
pub const BACKUP_MANIFEST: &str = "backup";
const BACKUP_MAGIC: &[u8; 8] = b"SXTBACKP";
const BACKUP_VERSION: u32 = 1;

/// One collection of a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupCollection {
    /// The collection's name.
    pub name: String,
    /// Its snapshot's file name inside the backup directory.
    pub file: String,
    /// The WAL sequence number its snapshot stands at.
    pub seq: u64,
    /// Live points at `seq`.
    pub points: u64,
    /// The snapshot's size in bytes.
    pub bytes: u64,
}

/// What a backup holds (the manifest file's JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// When it was taken (RFC 3339, UTC).
    pub created_at: String,
    /// The version of Sextant that wrote it.
    pub sextant_version: String,
    /// Its collections, by name.
    pub collections: Vec<BackupCollection>,
    /// Alias → collection.
    pub aliases: BTreeMap<String, String>,
}

/// A backup directory and its manifest.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupInfo {
    /// The backup directory.
    pub dir: PathBuf,
    /// Its manifest.
    #[serde(flatten)]
    pub manifest: BackupManifest,
}

/// The directory under the data directory where backups go by default.
pub const BACKUPS_DIR: &str = "backups";

/// A directory found by [`Database::list_backups`]: its manifest, or why it cannot be read.
#[derive(Debug, Clone, Serialize)]
pub struct BackupListing {
    /// The directory.
    pub dir: PathBuf,
    /// Its manifest, when it reads (a complete backup).
    pub backup: Option<BackupInfo>,
    /// Why not (an interrupted or damaged backup).
    pub problem: Option<String>,
}

impl Database {
    /// Where backups go by default: `<data>/backups`.
    pub fn backups_dir(&self) -> PathBuf {
        self.dir.join(BACKUPS_DIR)
    }

    /// A new backup directory under [`Database::backups_dir`]: `backup-<YYYYMMDDTHHMMSSZ>`
    /// (with `-2`, `-3`… when taken in the same second).
    pub fn new_backup_dir(&self) -> PathBuf {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let stamp: String = sextant_core::format_rfc3339(now)
            .chars()
            .filter(|c| !matches!(c, '-' | ':'))
            .collect();
        let base = self.backups_dir().join(format!("backup-{stamp}"));
        let mut dir = base.clone();
        let mut n = 2;
        while self.fs.exists(&dir) {
            dir = base.with_file_name(format!("backup-{stamp}-{n}"));
            n += 1;
        }
        dir
    }

    /// The directories under [`Database::backups_dir`], by name, each with its manifest or why
    /// it cannot be read.
    pub fn list_backups(&self) -> Result<Vec<BackupListing>> {
        let root = self.backups_dir();
        if !self.fs.is_dir(&root) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for name in self.fs.read_dir(&root).map_err(|e| io_err(&root, e))? {
            let dir = root.join(&name);
            if name.starts_with('.') || !self.fs.is_dir(&dir) {
                continue;
            }
            let (backup, problem) = match self.backup_info(&dir) {
                Ok(i) => (Some(i), None),
                Err(e) => (None, Some(crate::error::chain(&e))),
            };
            out.push(BackupListing {
                dir,
                backup,
                problem,
            });
        }
        Ok(out)
    }

    /// Deletes the backup directory `dir` (refused unless it holds a backup manifest or only
    /// snapshot files: an interrupted backup).
    pub fn delete_backup(&self, dir: &Path) -> Result<()> {
        let fs = &*self.fs;
        if !fs.is_dir(dir) {
            return Err(EngineError::invalid(
                "backup",
                format!("{} is not a backup directory", dir.display()),
            ));
        }
        let names = fs.read_dir(dir).map_err(|e| io_err(dir, e))?;
        let ours = names.iter().all(|n| {
            n == BACKUP_MANIFEST
                || n.ends_with(&format!(".{}", archive::EXTENSION))
                || envelope::is_leftover(n)
        });
        if !ours {
            return Err(EngineError::invalid(
                "backup",
                format!(
                    "{} holds files that are not part of a backup; it was not deleted",
                    dir.display()
                ),
            ));
        }
        fs.remove_dir_all(dir).map_err(|e| io_err(dir, e))?;
        envelope::sync_dir(fs, envelope::parent(dir))?;
        Ok(())
    }

    /// Backs up every collection and the aliases into directory `dir` (created; it must not
    /// exist or be empty). See the module docs for what is consistent with what.
    /// `progress(collection, done, total)` counts the bytes of each collection's snapshot.
    pub fn backup(
        &self,
        dir: &Path,
        progress: &mut dyn FnMut(&str, u64, u64),
    ) -> Result<BackupInfo> {
        let fs = &*self.fs;
        if fs.exists(dir) {
            let empty = fs.is_dir(dir) && fs.read_dir(dir).map_err(|e| io_err(dir, e))?.is_empty();
            if !empty {
                return Err(EngineError::invalid(
                    "backup",
                    format!(
                        "{} exists and is not an empty directory; back up into a new one",
                        dir.display()
                    ),
                ));
            }
        }
        let mut open = Vec::new();
        for name in self.list_collections()? {
            match self.collection(&name) {
                Ok(c) => open.push(c),
                // Deleted since it was listed: not in the backup.
                Err(EngineError::CollectionNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let pending = open
            .iter()
            .map(|c| c.begin_snapshot())
            .collect::<Result<Vec<_>>>()?;
        let mut aliases = self.aliases();
        aliases.retain(|_, target| open.iter().any(|c| c.name() == target));
        let created_at = pending
            .first()
            .map(|p| p.manifest.created_at.clone())
            .unwrap_or_else(now_rfc3339);
        fs.create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        envelope::sync_dir(fs, envelope::parent(dir))?;
        let mut written: Vec<PathBuf> = Vec::new();
        let result = (|| {
            let mut collections = Vec::new();
            for (c, p) in open.iter().zip(pending) {
                let file = format!("{}.{}", c.name(), archive::EXTENSION);
                let path = dir.join(&file);
                let name = c.name().to_string();
                let info = p.write(&path, &mut |done, total| progress(&name, done, total))?;
                written.push(path);
                collections.push(BackupCollection {
                    name,
                    file,
                    seq: info.seq,
                    points: info.points,
                    bytes: info.bytes,
                });
            }
            let manifest = BackupManifest {
                created_at,
                sextant_version: env!("CARGO_PKG_VERSION").to_string(),
                collections,
                aliases,
            };
            let body = serde_json::to_vec_pretty(&manifest).expect("backup manifest serialises");
            envelope::write_atomic(
                fs,
                &dir.join(BACKUP_MANIFEST),
                &envelope::seal(BACKUP_MAGIC, BACKUP_VERSION, &body),
            )?;
            Ok(manifest)
        })();
        match result {
            Ok(manifest) => Ok(BackupInfo {
                dir: dir.to_path_buf(),
                manifest,
            }),
            Err(e) => {
                for p in written {
                    let _ = fs.remove_file(&p);
                }
                Err(e)
            }
        }
    }

    /// Reads the manifest of the backup in `dir`.
    pub fn backup_info(&self, dir: &Path) -> Result<BackupInfo> {
        let path = dir.join(BACKUP_MANIFEST);
        if !self.fs.exists(&path) {
            return Err(EngineError::invalid(
                "backup",
                format!(
                    "{} holds no backup manifest (`{BACKUP_MANIFEST}`): not a backup, or an interrupted one",
                    dir.display()
                ),
            ));
        }
        let body = envelope::read(&*self.fs, &path, BACKUP_MAGIC, BACKUP_VERSION)?;
        let manifest: BackupManifest =
            serde_json::from_slice(&body).map_err(|e| StorageError::Corrupt {
                path: path.clone(),
                offset: 24,
                reason: format!("backup manifest JSON does not parse: {e}"),
            })?;
        for c in &manifest.collections {
            let plain = c.file == format!("{}.{}", c.name, archive::EXTENSION);
            if check_name(&c.name).is_err() || !plain {
                return Err(StorageError::Corrupt {
                    path,
                    offset: 24,
                    reason: format!("collection {:?} / file {:?} is not allowed", c.name, c.file),
                }
                .into());
            }
        }
        Ok(BackupInfo {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    /// Restores the backup in `dir`: every collection (each at its snapshot's sequence number)
    /// and every alias. Every name must be free in this database (restore into an empty data
    /// directory, typically); nothing is written otherwise. A damaged snapshot is refused naming
    /// the bad part, and the collections restored before it are deleted again.
    /// `progress(collection, done, total)` counts the bytes of each collection's snapshot.
    pub fn restore_backup(
        &self,
        dir: &Path,
        progress: &mut dyn FnMut(&str, u64, u64),
    ) -> Result<BackupInfo> {
        let info = self.backup_info(dir)?;
        let m = &info.manifest;
        let existing = self.list_collections()?;
        let aliases = self.aliases();
        let names = m
            .collections
            .iter()
            .map(|c| &c.name)
            .chain(m.aliases.keys());
        for name in names {
            check_name(name)?;
            if existing.contains(name) || aliases.contains_key(name) {
                return Err(EngineError::NameTaken(name.clone()));
            }
        }
        let mut restored: Vec<&str> = Vec::new();
        let mut set: Vec<&str> = Vec::new();
        let result = (|| {
            for c in &m.collections {
                let path = dir.join(&c.file);
                let name = c.name.as_str();
                let snap = self.snapshot_info(&path)?;
                if snap.collection != c.name || snap.seq != c.seq {
                    return Err(EngineError::invalid(
                        "backup",
                        format!(
                            "{} is a snapshot of {:?} at {}, but the backup lists {:?} at {}",
                            path.display(),
                            snap.collection,
                            snap.seq,
                            c.name,
                            c.seq
                        ),
                    ));
                }
                self.restore_snapshot(&path, name, false, &mut |d, t| progress(name, d, t))?;
                restored.push(name);
            }
            for (alias, target) in &m.aliases {
                self.set_alias(alias, target)?;
                set.push(alias);
            }
            Ok(())
        })();
        if let Err(e) = result {
            for a in set {
                let _ = self.delete_alias(a);
            }
            for c in restored {
                let _ = self.delete_collection(c);
            }
            return Err(e);
        }
        Ok(info)
    }
}

fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    sextant_core::format_rfc3339(now)
}
