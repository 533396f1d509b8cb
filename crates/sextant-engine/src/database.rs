//! A database: one data directory holding collections and aliases.
//!
//! ```text
//! <data>/LOCK                   held (flock) by the process that has the database open
//! <data>/aliases                envelope SXTALIAS: JSON {"alias": "collection", …}
//! <data>/collections/<name>/    manifest, wal, segments/
//! <data>/snapshots/<name>/      snapshots of a collection by default (see `snapshot.rs`)
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
use sextant_storage::fs::Fs;
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
    pub(crate) dir: PathBuf,
    pub(crate) fs: Arc<dyn Fs>,
    /// The `flock`ed `LOCK` file (none on a simulated file system).
    pub(crate) lock: Option<Arc<File>>,
    pub(crate) config: CollectionConfig,
    pub(crate) open: Mutex<HashMap<String, Arc<Collection>>>,
    pub(crate) aliases: Mutex<BTreeMap<String, String>>,
    /// The master key of encrypted collections ([`Database::set_master_key`]).
    pub(crate) master: Mutex<Option<sextant_storage::crypt::MasterKey>>,
}

/// Refuses a collection or alias name other than 1 to 64 ASCII letters, digits, `_` and `-`
/// ([`EngineError::InvalidName`]).
pub fn check_name(name: &str) -> Result<()> {
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
    /// Lets background merges finish and stops recall probes, so the directory is unlocked
    /// when the last handle goes.
    fn drop(&mut self) {
        for c in self.open.lock().values() {
            c.stop_background();
        }
    }
}

/// Takes the data directory's `LOCK` (`flock`), waiting briefly for a previous holder.
fn lock_dir(dir: &Path) -> Result<File> {
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
            Ok(()) => return Ok(lock),
            Err(fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(fs::TryLockError::WouldBlock) => return Err(EngineError::Locked(dir.into())),
            Err(fs::TryLockError::Error(e)) => return Err(io_err(&lock_path, e).into()),
        }
    }
}

impl Database {
    /// Opens (creating if needed) the data directory `dir`; collections open with `config`.
    pub fn open(dir: &Path, config: CollectionConfig) -> Result<Database> {
        Database::open_with(dir, config, sextant_storage::fs::real())
    }

    /// [`Database::open`] on the file system `fs` (tests run the engine on a simulated disk
    /// with faults and power loss; see `sextant_storage::fs`). Removes leftovers of interrupted
    /// collection creations and deletions, of alias writes and of snapshot writes.
    pub fn open_with(dir: &Path, config: CollectionConfig, fs: Arc<dyn Fs>) -> Result<Database> {
        config
            .recall_probe
            .validate()
            .map_err(|m| EngineError::invalid("recall_probe", m))?;
        let collections = dir.join("collections");
        fs.create_dir_all(&collections)
            .map_err(|e| io_err(dir, e))?;
        // Make the directories durable (the data directory's entry in its parent, `collections`
        // in it) every time: an earlier open may have created them and failed before this.
        // (The parent may not be ours to read: then its owner answers for it.)
        if let Err(e) = fs.sync_dir(envelope::parent(dir)) {
            if e.kind() != std::io::ErrorKind::PermissionDenied {
                return Err(io_err(envelope::parent(dir), e).into());
            }
        }
        envelope::sync_dir(&*fs, dir)?;
        let lock = if fs.is_os() {
            Some(Arc::new(lock_dir(dir)?))
        } else {
            None
        };
        crate::snapshot::finish_interrupted_replace(&*fs, &collections)?;
        crate::snapshot::remove_leftover_temp_files(
            &*fs,
            &dir.join(crate::snapshot::SNAPSHOTS_DIR),
        )?;
        for name in fs
            .read_dir(&collections)
            .map_err(|e| io_err(&collections, e))?
        {
            if envelope::is_leftover(&name) {
                let p = collections.join(&name);
                fs.remove_dir_all(&p).map_err(|e| io_err(&p, e))?;
            }
        }
        for name in fs.read_dir(dir).map_err(|e| io_err(dir, e))? {
            if envelope::is_leftover(&name) && name.starts_with(".aliases") {
                let p = dir.join(&name);
                fs.remove_file(&p).map_err(|e| io_err(&p, e))?;
            }
        }
        let aliases_path = dir.join("aliases");
        let mut aliases: BTreeMap<String, String> = if fs.exists(&aliases_path) {
            let body = envelope::read(&*fs, &aliases_path, ALIASES_MAGIC, ALIASES_VERSION)?;
            serde_json::from_slice(&body).map_err(|e| StorageError::Corrupt {
                path: aliases_path.clone(),
                offset: 24,
                reason: format!("aliases JSON does not parse: {e}"),
            })?
        } else {
            BTreeMap::new()
        };
        // Aliases of a collection whose deletion ended after its point of no return.
        let loaded = aliases.clone();
        aliases.retain(|_, target| fs.is_dir(&collections.join(target.as_str())));
        let db = Database {
            dir: dir.to_path_buf(),
            fs,
            lock,
            config,
            open: Mutex::new(HashMap::new()),
            aliases: Mutex::new(aliases.clone()),
            master: Mutex::new(None),
        };
        if aliases != loaded {
            db.write_aliases(&aliases, &loaded)?;
        }
        Ok(db)
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn collection_dir(&self, name: &str) -> PathBuf {
        self.dir.join("collections").join(name)
    }

    /// Creates a collection.
    pub fn create_collection(&self, name: &str, schema: Schema) -> Result<Arc<Collection>> {
        self.create_collection_with(name, schema, false)
    }

    /// Creates a collection, encrypted at rest when `encrypted` (which needs the master key:
    /// [`Database::set_master_key`]; see [`crate::encryption`]).
    pub fn create_collection_with(
        &self,
        name: &str,
        schema: Schema,
        encrypted: bool,
    ) -> Result<Arc<Collection>> {
        check_name(name)?;
        let schema = crate::collection::with_current_analyzers(schema.validated()?)?;
        if self.fs.exists(&self.collection_dir(name)) || self.aliases.lock().contains_key(name) {
            return Err(EngineError::NameTaken(name.to_string()));
        }
        if let Some(space) = schema.spaces.iter().find(|s| encrypted && s.on_disk) {
            return Err(EngineError::invalid(
                "on_disk",
                format!(
                    "space {:?}: on-disk vectors are memory-mapped plain files, which an encrypted collection cannot have; keep its vectors in memory",
                    space.name
                ),
            ));
        }
        let keys = if encrypted {
            Some(crate::encryption::new_keys(
                name,
                self.master.lock().as_ref(),
            )?)
        } else {
            None
        };
        crate::recovery::create_files(&self.fs, &self.collection_dir(name), &schema, keys)?;
        self.collection(name)
    }

    /// Names of all collections, sorted.
    pub fn list_collections(&self) -> Result<Vec<String>> {
        let dir = self.dir.join("collections");
        let mut names = Vec::new();
        for name in self.fs.read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            if self.fs.is_dir(&dir.join(&name)) && check_name(&name).is_ok() {
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
        let mut open = self.open.lock();
        // An open collection exists (deleting one removes it from `open` first): no file
        // system call on this path, which every search and write takes.
        if let Some(c) = open.get(&name) {
            return Ok(c.clone());
        }
        if check_name(&name).is_err() || !self.fs.is_dir(&self.collection_dir(&name)) {
            return Err(EngineError::CollectionNotFound(name_or_alias.to_string()));
        }
        let dir = self.collection_dir(&name);
        let (fs, encryption) =
            crate::encryption::open_fs(&self.fs, &name, &dir, self.master.lock().as_ref())?;
        let c = Collection::open(&name, &dir, self.config, self.lock.clone(), fs, encryption)?;
        open.insert(name, c.clone());
        Ok(c)
    }

    /// Deletes a collection and the aliases that point at it.
    pub fn delete_collection(&self, name: &str) -> Result<()> {
        check_name(name).map_err(|_| EngineError::CollectionNotFound(name.to_string()))?;
        let dir = self.collection_dir(name);
        if !self.fs.is_dir(&dir) {
            return Err(EngineError::CollectionNotFound(name.to_string()));
        }
        if let Some(c) = self.open.lock().remove(name) {
            c.stop_background();
        }
        let collections = self.dir.join("collections");
        let trash = collections.join(format!(".deleting-{name}-{}", std::process::id()));
        self.fs.rename(&dir, &trash).map_err(|e| io_err(&dir, e))?;
        if let Err(e) = envelope::sync_dir(&*self.fs, &collections) {
            // Undo, so that a delete reported failed does not happen after a power cut.
            let _ = self
                .fs
                .rename(&trash, &dir)
                .and_then(|()| self.fs.sync_dir(&collections));
            return Err(e.into());
        }
        // The deletion is done (and durable) once the rename is. Aliases to the collection
        // that stay in the file because writing it fails here are dropped by the next open; a
        // failure to remove the renamed directory leaves a leftover the next open removes.
        {
            let mut aliases = self.aliases.lock();
            let mut next = aliases.clone();
            next.retain(|_, target| target != name);
            if next != *aliases {
                let _ = self.write_aliases(&next, &aliases);
                *aliases = next;
            }
        }
        let _ = self.fs.remove_dir_all(&trash);
        Ok(())
    }

    /// All aliases and their collections.
    pub fn aliases(&self) -> BTreeMap<String, String> {
        self.aliases.lock().clone()
    }

    /// Points `alias` at `collection`, creating or switching it atomically.
    pub fn set_alias(&self, alias: &str, collection: &str) -> Result<()> {
        check_name(alias)?;
        if self.fs.exists(&self.collection_dir(alias)) {
            return Err(EngineError::NameTaken(alias.to_string()));
        }
        if check_name(collection).is_err() || !self.fs.is_dir(&self.collection_dir(collection)) {
            return Err(EngineError::CollectionNotFound(collection.to_string()));
        }
        let mut aliases = self.aliases.lock();
        let mut next = aliases.clone();
        next.insert(alias.to_string(), collection.to_string());
        self.write_aliases(&next, &aliases)?;
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
        self.write_aliases(&next, &aliases)?;
        *aliases = next;
        Ok(())
    }

    /// Replaces the aliases file with `next`. On failure the file is put back to `current`
    /// (best effort): the rename may have happened before the directory fsync failed, and a
    /// change reported failed must not appear after a power cut.
    fn write_aliases(
        &self,
        next: &BTreeMap<String, String>,
        current: &BTreeMap<String, String>,
    ) -> Result<()> {
        let write = |aliases: &BTreeMap<String, String>| {
            let body = serde_json::to_vec_pretty(aliases).expect("aliases serialise");
            envelope::write_atomic(
                &*self.fs,
                &self.dir.join("aliases"),
                &envelope::seal(ALIASES_MAGIC, ALIASES_VERSION, &body),
            )
        };
        write(next).map_err(|e| {
            let _ = write(current);
            e.into()
        })
    }
}
