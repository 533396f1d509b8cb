//! A database: one data directory holding collections and aliases.
//!
//! ```text
//! <data>/LOCK                   held (flock) by the process that has the database open
//! <data>/aliases                envelope SXTALIAS: JSON {"alias": "collection", …}
//! <data>/collections/<name>/    manifest, wal, segments/
//! ```
//!
//! One process opens a data directory at a time; a second gets [`EngineError::Locked`] at once
//! rather than corrupting files. Collections are opened on first use and kept open.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use sextant_storage::envelope::{self, io_err};
use sextant_storage::schema::Schema;
use sextant_storage::StorageError;

use crate::collection::{Collection, CollectionConfig};
use crate::error::{EngineError, Result};

/// How long [`Database::open`] waits for another holder of the directory lock to let go.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

const ALIASES_MAGIC: &[u8; 8] = b"SXTALIAS";
const ALIASES_VERSION: u32 = 1;

/// An open data directory.
#[derive(Debug)]
pub struct Database {
    dir: PathBuf,
    lock: Arc<File>,
    config: CollectionConfig,
    open: Mutex<HashMap<String, Arc<Collection>>>,
    aliases: Mutex<BTreeMap<String, String>>,
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(EngineError::InvalidName(name.to_string()))
    }
}

impl Drop for Database {
    /// Lets background merges finish, so the directory is unlocked when the last handle goes.
    fn drop(&mut self) {
        for c in self.open.lock().values() {
            c.wait_for_merge();
        }
    }
}

impl Database {
    /// Opens (creating if needed) the data directory `dir`; collections open with `config`.
    pub fn open(dir: &Path, config: CollectionConfig) -> Result<Database> {
        fs::create_dir_all(dir.join("collections")).map_err(|e| io_err(dir, e))?;
        let lock_path = dir.join("LOCK");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| io_err(&lock_path, e))?;
        // Retry briefly: a lock can linger for a moment after its owner closed it (a child
        // process forked at that instant shares the open file until it execs).
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        loop {
            match lock.try_lock() {
                Ok(()) => break,
                Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(fs::TryLockError::WouldBlock) => return Err(EngineError::Locked(dir.into())),
                Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path, e).into()),
            }
        }
        let aliases_path = dir.join("aliases");
        let aliases = if aliases_path.exists() {
            let body = envelope::read(&aliases_path, ALIASES_MAGIC, ALIASES_VERSION)?;
            serde_json::from_slice(&body).map_err(|e| StorageError::Corrupt {
                path: aliases_path.clone(),
                offset: 24,
                reason: format!("aliases JSON does not parse: {e}"),
            })?
        } else {
            BTreeMap::new()
        };
        Ok(Database {
            dir: dir.to_path_buf(),
            lock: Arc::new(lock),
            config,
            open: Mutex::new(HashMap::new()),
            aliases: Mutex::new(aliases),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn collection_dir(&self, name: &str) -> PathBuf {
        self.dir.join("collections").join(name)
    }

    /// Creates a collection.
    pub fn create_collection(&self, name: &str, schema: Schema) -> Result<Arc<Collection>> {
        check_name(name)?;
        let schema = crate::collection::with_current_analyzers(schema.validated()?)?;
        if self.collection_dir(name).exists() || self.aliases.lock().contains_key(name) {
            return Err(EngineError::NameTaken(name.to_string()));
        }
        Collection::create(&self.collection_dir(name), &schema)?;
        self.collection(name)
    }

    /// Names of all collections, sorted.
    pub fn list_collections(&self) -> Result<Vec<String>> {
        let dir = self.dir.join("collections");
        let mut names = Vec::new();
        for e in fs::read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let e = e.map_err(|e| io_err(&dir, e))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() && check_name(&name).is_ok() {
                names.push(name);
            }
        }
        names.sort();
        Ok(names)
    }

    /// Resolves an alias (or returns the name itself).
    pub fn resolve(&self, name: &str) -> String {
        self.aliases
            .lock()
            .get(name)
            .cloned()
            .unwrap_or_else(|| name.to_string())
    }

    /// Opens a collection by name or alias.
    pub fn collection(&self, name_or_alias: &str) -> Result<Arc<Collection>> {
        let name = self.resolve(name_or_alias);
        if check_name(&name).is_err() || !self.collection_dir(&name).is_dir() {
            return Err(EngineError::CollectionNotFound(name_or_alias.to_string()));
        }
        let mut open = self.open.lock();
        if let Some(c) = open.get(&name) {
            return Ok(c.clone());
        }
        let c = Collection::open(
            &name,
            &self.collection_dir(&name),
            self.config,
            self.lock.clone(),
        )?;
        open.insert(name, c.clone());
        Ok(c)
    }

    /// Deletes a collection and the aliases that point at it.
    pub fn delete_collection(&self, name: &str) -> Result<()> {
        check_name(name).map_err(|_| EngineError::CollectionNotFound(name.to_string()))?;
        let dir = self.collection_dir(name);
        if !dir.is_dir() {
            return Err(EngineError::CollectionNotFound(name.to_string()));
        }
        if let Some(c) = self.open.lock().remove(name) {
            c.wait_for_merge();
        }
        {
            let mut aliases = self.aliases.lock();
            let mut next = aliases.clone();
            next.retain(|_, target| target != name);
            if next != *aliases {
                self.write_aliases(&next)?;
                *aliases = next;
            }
        }
        let trash = self
            .dir
            .join("collections")
            .join(format!(".deleting-{name}-{}", std::process::id()));
        fs::rename(&dir, &trash).map_err(|e| io_err(&dir, e))?;
        envelope::sync_dir(&self.dir.join("collections"))?;
        fs::remove_dir_all(&trash).map_err(|e| io_err(&trash, e))?;
        Ok(())
    }

    /// All aliases and their collections.
    pub fn aliases(&self) -> BTreeMap<String, String> {
        self.aliases.lock().clone()
    }

    /// Points `alias` at `collection`, creating or switching it atomically.
    pub fn set_alias(&self, alias: &str, collection: &str) -> Result<()> {
        check_name(alias)?;
        if self.collection_dir(alias).exists() {
            return Err(EngineError::NameTaken(alias.to_string()));
        }
        if check_name(collection).is_err() || !self.collection_dir(collection).is_dir() {
            return Err(EngineError::CollectionNotFound(collection.to_string()));
        }
        let mut aliases = self.aliases.lock();
        let mut next = aliases.clone();
        next.insert(alias.to_string(), collection.to_string());
        self.write_aliases(&next)?;
        *aliases = next;
        Ok(())
    }

    /// Removes an alias.
    pub fn delete_alias(&self, alias: &str) -> Result<()> {
        let mut aliases = self.aliases.lock();
        let mut next = aliases.clone();
        if next.remove(alias).is_none() {
            return Err(EngineError::AliasNotFound(alias.to_string()));
        }
        self.write_aliases(&next)?;
        *aliases = next;
        Ok(())
    }

    fn write_aliases(&self, aliases: &BTreeMap<String, String>) -> Result<()> {
        let body = serde_json::to_vec_pretty(aliases).expect("aliases serialise");
        envelope::write_atomic(
            &self.dir.join("aliases"),
            &envelope::seal(ALIASES_MAGIC, ALIASES_VERSION, &body),
        )?;
        Ok(())
    }
}
