//! Encryption at rest, per collection (opt-in at creation): the key file, opening an encrypted
//! collection's files through [`EncryptedFs`], master-key rotation (rewraps the key file, rewrites
//! no data) and data-key rotation (a new generation for new files, then every file rewritten and
//! the old generation dropped). The formats are in `sextant_storage::crypt`.
//!
//! The master key is given to the [`Database`] ([`Database::set_master_key`]) by the front end,
//! from a key file or an environment variable; it is never written under the data directory.
//! Opening an encrypted collection without it, or with another one, is
//! [`EngineError::EncryptionKey`] naming the collection and the key ids — never an attempt to
//! read its files.

use std::path::Path;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use sextant_storage::crypt::{self, DataKeys, KeyError, KeyFile, MasterKey, KEYS_FILE};
use sextant_storage::envelope::io_err;
use sextant_storage::fs::encrypted::{EncryptedFs, Keyring};
use sextant_storage::fs::Fs;

use crate::collection::Collection;
use crate::database::Database;
use crate::error::{EngineError, Result};

/// An open encrypted collection's keys, shared by every file handle of it.
#[derive(Debug, Clone)]
pub(crate) struct Encryption {
    pub(crate) keys: Arc<RwLock<Keyring>>,
    /// The file system under the encryption (for the key file itself).
    pub(crate) plain: Arc<dyn Fs>,
}

/// What [`Collection::encryption_status`] reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EncryptionStatus {
    /// The cipher.
    pub cipher: String,
    /// The id of the master key that wraps the data keys.
    pub master_key_id: String,
    /// The data key generation new files are written with.
    pub current_generation: u32,
    /// Every generation the key file holds (more than one while a data-key rotation runs).
    pub generations: Vec<u32>,
}

fn key_error(collection: &str, e: KeyError) -> EngineError {
    let hint = match &e {
        KeyError::OtherMaster { .. } => {
            " (give the master key it was created or last rotated with)"
        }
        _ => "",
    };
    EngineError::EncryptionKey(format!("collection {collection:?}: {e}{hint}"))
}

/// Whether the collection in `dir` is encrypted (it has a key file).
pub(crate) fn is_encrypted(fs: &dyn Fs, dir: &Path) -> bool {
    fs.exists(&dir.join(KEYS_FILE))
}

/// The file system to open the collection in `dir` with: `plain` itself for a collection
/// without a key file, else an [`EncryptedFs`] with its data keys unwrapped by `master`.
pub(crate) fn open_fs(
    plain: &Arc<dyn Fs>,
    name: &str,
    dir: &Path,
    master: Option<&MasterKey>,
) -> Result<(Arc<dyn Fs>, Option<Encryption>)> {
    if !is_encrypted(&**plain, dir) {
        return Ok((plain.clone(), None));
    }
    let file = KeyFile::read(&**plain, &dir.join(KEYS_FILE))?;
    let Some(master) = master else {
        return Err(EngineError::EncryptionKey(format!(
            "collection {name:?} is encrypted (by master key {}): give the master key (--master-key-file, or SEXTANT_MASTER_KEY / SEXTANT_MASTER_KEY_FILE)",
            file.master_key_id()
        )));
    };
    let data = file.unwrap(master).map_err(|e| key_error(name, e))?;
    Ok(with_keys(plain, dir, master.clone(), data))
}

/// The encrypted file system of the collection in `dir` with `data` keys.
pub(crate) fn with_keys(
    plain: &Arc<dyn Fs>,
    dir: &Path,
    master: MasterKey,
    data: DataKeys,
) -> (Arc<dyn Fs>, Option<Encryption>) {
    let keys = Arc::new(RwLock::new(Keyring { master, data }));
    let fs: Arc<dyn Fs> = Arc::new(EncryptedFs::new(plain.clone(), dir, keys.clone()));
    (
        fs,
        Some(Encryption {
            keys,
            plain: plain.clone(),
        }),
    )
}

/// A new key file for a collection being created, and the keys it holds.
pub(crate) fn new_keys(
    name: &str,
    master: Option<&MasterKey>,
) -> Result<(KeyFile, DataKeys, MasterKey)> {
    let master = master.ok_or_else(|| {
        EngineError::EncryptionKey(format!(
            "collection {name:?} cannot be created encrypted without a master key (--master-key-file, or SEXTANT_MASTER_KEY / SEXTANT_MASTER_KEY_FILE)"
        ))
    })?;
    let (file, data) = KeyFile::new(master).map_err(|e| key_error(name, e))?;
    Ok((file, data, master.clone()))
}

/// The data key a snapshot file carries, when it is encrypted: `Ok(None)` for a plain one.
pub(crate) fn snapshot_keys(
    plain: &dyn Fs,
    path: &Path,
    master: Option<&MasterKey>,
) -> Result<Option<(MasterKey, DataKeys)>> {
    let head = crypt::read_header(plain, path).map_err(|e| io_err(path, e))?;
    if !crypt::is_encrypted(&head) {
        return Ok(None);
    }
    let damaged = |reason: String| {
        EngineError::SnapshotDamaged(sextant_storage::StorageError::SnapshotDamaged {
            path: path.to_path_buf(),
            part: "header".into(),
            reason,
        })
    };
    let header = match crypt::FileHeader::decode(&head) {
        Ok(Some((h, _))) => h,
        Ok(None) => return Err(damaged("it ends inside its encryption header".into())),
        Err(reason) => return Err(damaged(reason)),
    };
    let Some(w) = header.keyblock else {
        return Err(damaged(
            "an encrypted file without its key: not a snapshot (a collection's own file?)".into(),
        ));
    };
    let Some(master) = master else {
        return Err(EngineError::EncryptionKey(format!(
            "snapshot {} is encrypted (by master key {}): give the master key",
            path.display(),
            w.master_key_id
        )));
    };
    let key = master
        .unwrap(&w)
        .map_err(|e| EngineError::EncryptionKey(format!("snapshot {}: {e}", path.display())))?;
    Ok(Some((master.clone(), DataKeys::single(w.generation, key))))
}

impl Collection {
    /// Whether this collection is encrypted, and with which keys (ids and generations only).
    pub fn encryption_status(&self) -> Option<EncryptionStatus> {
        let e = self.encryption.as_ref()?;
        let k = e.keys.read().unwrap_or_else(|p| p.into_inner());
        Some(EncryptionStatus {
            cipher: crypt::CIPHER.into(),
            master_key_id: k.master.id().to_string(),
            current_generation: k.data.current(),
            generations: k.data.generations(),
        })
    }

    fn encryption(&self) -> Result<&Encryption> {
        self.encryption.as_ref().ok_or_else(|| {
            EngineError::invalid(
                "collection",
                format!("collection {:?} is not encrypted", self.name()),
            )
        })
    }

    /// Writes the key file for `data` wrapped by `master`, durably, under the writer lock.
    fn write_keys(&self, e: &Encryption, master: &MasterKey, data: &DataKeys) -> Result<()> {
        let file = KeyFile::wrap(data, master).map_err(|err| key_error(self.name(), err))?;
        file.write(&*e.plain, &self.dir.join(KEYS_FILE))?;
        Ok(())
    }

    /// Rewraps this collection's data keys under `new` (the key file is replaced atomically;
    /// no data is rewritten). `current` must be the master key the keys are wrapped by now; a
    /// collection already wrapped by `new` is left as it is (so an interrupted rotation of
    /// many collections can simply be run again). Writes and reads go on meanwhile.
    pub fn rotate_master_key(&self, current: &MasterKey, new: &MasterKey) -> Result<bool> {
        let e = self.encryption()?;
        let _w = self.writer.lock();
        let on_disk = KeyFile::read(&*e.plain, &self.dir.join(KEYS_FILE))?;
        if on_disk.master_key_id() == new.id() {
            e.keys.write().unwrap_or_else(|p| p.into_inner()).master = new.clone();
            return Ok(false);
        }
        let data = on_disk
            .unwrap(current)
            .map_err(|err| key_error(self.name(), err))?;
        self.write_keys(e, new, &data)?;
        e.keys.write().unwrap_or_else(|p| p.into_inner()).master = new.clone();
        Ok(true)
    }

    /// Rotates the data key: a new generation becomes current (new files use it from now on),
    /// then every file is rewritten with it (the segments by a merge into one, the WAL by a
    /// flush, the manifest and tombstones with them), and the old generations are dropped from
    /// the key file. Reads and writes go on meanwhile; a crash in between leaves both
    /// generations in the key file and running it again finishes the job. Returns the new
    /// generation.
    pub fn rotate_data_key(&self) -> Result<u32> {
        let e = self.encryption()?.clone();
        let generation = {
            let _w = self.writer.lock();
            let mut k = e.keys.write().unwrap_or_else(|p| p.into_inner());
            let mut data = k.data.clone();
            let g = data.rotate().map_err(|err| key_error(self.name(), err))?;
            self.write_keys(&e, &k.master, &data)?;
            k.data = data;
            g
        };
        self.rewrite_all_files()?;
        let _w = self.writer.lock();
        let old = self.files_not_of(generation)?;
        if let Some(f) = old.first() {
            return Err(EngineError::Storage(sextant_storage::StorageError::Corrupt {
                path: f.clone(),
                offset: 12,
                reason: format!(
                    "still of an old data key generation after the rewrite ({} such files); the old keys are kept",
                    old.len()
                ),
            }));
        }
        let mut k = e.keys.write().unwrap_or_else(|p| p.into_inner());
        let mut data = k.data.clone();
        data.retain_current();
        self.write_keys(&e, &k.master, &data)?;
        k.data = data;
        Ok(generation)
    }

    /// The collection's files whose encryption header is not of `generation`.
    fn files_not_of(&self, generation: u32) -> Result<Vec<std::path::PathBuf>> {
        let e = self.encryption()?;
        let fs = &*e.plain;
        let mut out = Vec::new();
        let mut dirs = vec![self.dir.clone()];
        while let Some(d) = dirs.pop() {
            for name in fs.read_dir(&d).map_err(|err| io_err(&d, err))? {
                let p = d.join(&name);
                if fs.is_dir(&p) {
                    dirs.push(p);
                    continue;
                }
                if name == KEYS_FILE || sextant_storage::envelope::is_leftover(&name) {
                    continue;
                }
                let head = crypt::read_header(fs, &p).map_err(|err| io_err(&p, err))?;
                match crypt::FileHeader::decode(&head) {
                    Ok(Some((h, _))) if h.generation == generation => {}
                    _ => out.push(p),
                }
            }
        }
        Ok(out)
    }

    /// Rewrites every file: flushes (a new WAL and manifest), merges every segment into one
    /// (new segment files, no tombstones), and rewrites the WAL once more.
    fn rewrite_all_files(&self) -> Result<()> {
        self.flush()?;
        self.merge_all_segments()?;
        let mut w = self.writer.lock();
        let flushed = w.manifest.flushed_seq;
        w.wal.truncate_through(flushed)?;
        // A manifest written with the new key even when the merge had nothing to do.
        let path = self.dir.join(crate::collection::MANIFEST);
        w.manifest.write(&*self.fs, &path)?;
        drop(w);
        // The collection's other files: drift state and adapters.
        self.rewrite_drift_file()?;
        self.rewrite_adapter_file()?;
        Ok(())
    }
}

impl Database {
    /// Sets the master key that opens encrypted collections and wraps the keys of new ones.
    /// Collections already open keep the keys they were opened with.
    pub fn set_master_key(&self, key: Option<MasterKey>) {
        *self.master.lock() = key;
    }

    /// The master key's id, when one is set.
    pub fn master_key_id(&self) -> Option<String> {
        self.master.lock().as_ref().map(|k| k.id().to_string())
    }

    pub(crate) fn master_key(&self) -> Option<MasterKey> {
        self.master.lock().clone()
    }

    /// Rewraps the data keys of every encrypted collection under `new` (the master key set on
    /// this database is the current one), then makes `new` this database's master key. No data
    /// is rewritten. Collections already under `new` are skipped, so an interrupted rotation is
    /// finished by running it again. Returns the collections rewrapped.
    pub fn rotate_master_key(&self, new: &MasterKey) -> Result<Vec<String>> {
        let current = self.master_key().ok_or_else(|| {
            EngineError::EncryptionKey(
                "rotating the master key needs the current one as well as the new one".into(),
            )
        })?;
        let mut done = Vec::new();
        for name in self.list_collections()? {
            if !is_encrypted(&*self.fs, &self.collection_dir(&name)) {
                continue;
            }
            let dir = self.collection_dir(&name);
            let file = KeyFile::read(&*self.fs, &dir.join(KEYS_FILE))?;
            if file.master_key_id() == new.id() {
                continue;
            }
            let c = self.collection(&name)?;
            if c.rotate_master_key(&current, new)? {
                done.push(name);
            }
        }
        self.set_master_key(Some(new.clone()));
        Ok(done)
    }
}
