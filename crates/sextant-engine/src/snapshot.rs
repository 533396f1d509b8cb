//! Snapshots: a collection as it was at one WAL sequence number, in one file, taken while
//! writes go on; and restoring one into a new collection, or over an existing one atomically.
//!
//! ```text
//! <data>/snapshots/<collection>/<collection>-<YYYYMMDDTHHMMSSZ>-seq<N>.snapshot   (the default)
//! ```
//!
//! **What a snapshot holds.** A collection's state at sequence number `S` is its manifest, the
//! segment files and tombstone files the manifest names, and the WAL records above the
//! manifest's `flushed_seq` up to `S` — exactly what recovery reads. So a snapshot is those
//! files, and a restore writes them into a new collection directory that the ordinary open
//! (WAL replay included) turns back into the collection at `S`.
//!
//! **Consistency while writes go on** ([`Collection::begin_snapshot`]):
//! - the merge lock is held for the whole snapshot: merges are what delete segment
//!   directories, so every segment the manifest names stays on disk until the copy is done
//!   (merges wait; writes, flushes and reads do not);
//! - under the writer lock, briefly: the in-memory manifest, the WAL's acknowledged records
//!   above its `flushed_seq` (read back from the file, so never a torn or failed record), the
//!   named tombstone files (a flush deletes replaced ones) and the names of the segment files.
//!   No write, flush or manifest swap can run in between, so these agree with each other and
//!   with `S`, the last applied sequence number;
//! - the segment files are then streamed without any lock: they are never changed in place
//!   (the archive writer hashes each twice and refuses a snapshot if one changed anyway).
//!
//! **Restore** ([`Database::restore_snapshot`]) unpacks into `collections/.restore-*.tmp`,
//! checking every file's SHA-256 as it ends; checks that the files are a collection (manifest,
//! schema, segment files, WAL) and opens it there once; only then renames it into place. A
//! damaged or truncated snapshot is refused naming the bad part and the temporary directory is
//! removed (a crash leaves only a `*.tmp` leftover, removed by the next open). Replacing an
//! existing collection renames it to `.replaced-<name>`, renames the new one in, fsyncs the
//! directory and removes the old: after a crash, [`finish_interrupted_replace`] (run by every
//! open of the database) puts the old one back if the new one had not landed yet, so a replace
//! happens entirely or not at all.
//!
//! **Whole-database backups** (a snapshot of every collection plus the aliases) are in
//! `backup.rs`.

mod backup;

pub use backup::{
    BackupCollection, BackupInfo, BackupListing, BackupManifest, BACKUPS_DIR, BACKUP_MANIFEST,
};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::MutexGuard;
use serde::Serialize;
use sextant_storage::crypt::{DataKeys, KeyFile, MasterKey, KEYS_FILE};
use sextant_storage::envelope::{self, io_err};
use sextant_storage::fs::encrypted::EncryptedFs;
use sextant_storage::fs::Fs;
use sextant_storage::schema::Manifest;
use sextant_storage::snapshot::{self as archive, Entry, SnapshotManifest, SnapshotReader, Source};
use sextant_storage::StorageError;

use crate::adapter::ADAPTER_FILE;
use crate::collection::{seg_dir, Collection, MANIFEST, SEGMENTS, WAL_FILE};
use crate::database::{check_name, Database};
use crate::error::{chain, EngineError, Result};

/// The directory under the data directory where snapshots are kept by default (one
/// subdirectory per collection).
pub const SNAPSHOTS_DIR: &str = "snapshots";

/// Prefix of a collection directory being replaced by a restore (see the module docs).
const REPLACED_PREFIX: &str = ".replaced-";

/// A snapshot file and what its manifest says.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SnapshotInfo {
    /// The snapshot file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The collection it was taken of.
    pub collection: String,
    /// The WAL sequence number it stands at.
    pub seq: u64,
    /// When it was taken (RFC 3339, UTC).
    pub created_at: String,
    /// Live points at `seq`.
    pub points: u64,
    /// Files inside it.
    pub files: usize,
    /// The version of Sextant that wrote it.
    pub sextant_version: String,
}

impl SnapshotInfo {
    fn new(path: &Path, bytes: u64, m: &SnapshotManifest) -> SnapshotInfo {
        SnapshotInfo {
            path: path.to_path_buf(),
            bytes,
            collection: m.collection.clone(),
            seq: m.seq,
            created_at: m.created_at.clone(),
            points: m.points,
            files: m.files.len(),
            sextant_version: m.sextant_version.clone(),
        }
    }
}

/// One file found by [`Database::list_snapshots`]: its header and manifest, or why they could
/// not be read (listing reads no file body; [`Database::verify_snapshot`] checks those).
#[derive(Debug, Clone, Serialize)]
pub struct SnapshotListing {
    /// The file.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// What its manifest says, when it could be read.
    pub snapshot: Option<SnapshotInfo>,
    /// Why it could not be read.
    pub problem: Option<String>,
}

/// A snapshot whose contents are fixed (at [`PendingSnapshot::seq`]) but not yet written.
/// Merges of the collection wait until it is written or dropped.
pub struct PendingSnapshot<'a> {
    collection: &'a Collection,
    _merging: MutexGuard<'a, ()>,
    manifest: SnapshotManifest,
    entries: Vec<Entry>,
}

impl std::fmt::Debug for PendingSnapshot<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingSnapshot")
            .field("collection", &self.manifest.collection)
            .field("seq", &self.manifest.seq)
            .field("files", &self.entries.len())
            .finish()
    }
}

impl PendingSnapshot<'_> {
    /// The WAL sequence number the snapshot stands at: every write acknowledged with a number
    /// up to it is in the snapshot, none after it.
    pub fn seq(&self) -> u64 {
        self.manifest.seq
    }

    /// Live points at [`PendingSnapshot::seq`].
    pub fn points(&self) -> u64 {
        self.manifest.points
    }

    /// Writes the snapshot to `path` (never over an existing file; the directory is created).
    /// `progress(done, total)` counts bytes hashed and copied.
    pub fn write(self, path: &Path, progress: &mut dyn FnMut(u64, u64)) -> Result<SnapshotInfo> {
        let fs = &*self.collection.fs;
        if fs.exists(path) {
            return Err(EngineError::SnapshotExists(path.to_path_buf()));
        }
        let dir = envelope::parent(path);
        // Directories made here are synced into their parents, so the snapshot's path
        // survives a power cut as the file itself does.
        let mut made = Vec::new();
        let mut d = dir;
        while !fs.exists(d) {
            made.push(d);
            d = envelope::parent(d);
        }
        fs.create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        for d in made.iter().rev() {
            envelope::sync_dir(fs, envelope::parent(d))?;
        }
        let m = archive::write(fs, path, self.manifest, &self.entries, progress)?;
        let bytes = fs.file_len(path).map_err(|e| io_err(path, e))?;
        Ok(SnapshotInfo::new(path, bytes, &m))
    }
}

impl Collection {
    /// Fixes the contents of a snapshot of this collection as it is now (see the module docs
    /// for why this is consistent while writes go on); write it with
    /// [`PendingSnapshot::write`]. Holds the writer lock only while it reads the manifest, the
    /// WAL and the tombstones.
    pub fn begin_snapshot(&self) -> Result<PendingSnapshot<'_>> {
        let merging = self.merging.lock();
        let fs = &*self.fs;
        let w = self.writer.lock();
        let now = self.now_ms();
        let (seq, points) = {
            let st = self.state.read();
            (st.applied_seq, st.live_count(now))
        };
        let m = w.manifest.clone();
        let (wal, _) = w.wal.acknowledged_bytes(m.flushed_seq)?;
        let mut entries = vec![
            Entry {
                name: MANIFEST.into(),
                source: Source::Bytes(m.encode()),
            },
            Entry {
                name: WAL_FILE.into(),
                source: Source::Bytes(wal),
            },
        ];
        // Adapters are written under the writer lock too: these are the ones of this moment.
        if let Some(bytes) = self.adapter_file_bytes() {
            entries.push(Entry {
                name: ADAPTER_FILE.into(),
                source: Source::Bytes(bytes),
            });
        }
        for seg in &m.segments {
            let dir = seg_dir(&self.dir, seg.id);
            let name = |f: &str| format!("{SEGMENTS}/{}/{f}", seg.id);
            for f in fs.read_dir(&dir).map_err(|e| io_err(&dir, e))? {
                // Tombstone files other than the named one are being replaced or removed.
                if f.starts_with("deleted-") || envelope::is_leftover(&f) {
                    continue;
                }
                entries.push(Entry {
                    name: name(&f),
                    source: Source::File(dir.join(&f)),
                });
            }
            if let Some(t) = &seg.tombstones {
                let p = dir.join(t);
                let bytes = fs.read(&p).map_err(|e| io_err(&p, e))?;
                entries.push(Entry {
                    name: name(t),
                    source: Source::Bytes(bytes),
                });
            }
        }
        drop(w);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Ok(PendingSnapshot {
            collection: self,
            _merging: merging,
            manifest: SnapshotManifest {
                collection: self.name().to_string(),
                seq,
                created_at: sextant_core::format_rfc3339(now),
                points,
                sextant_version: env!("CARGO_PKG_VERSION").to_string(),
                schema: self.schema.clone(),
                files: Vec::new(),
            },
            entries,
        })
    }

    /// Writes a snapshot of this collection to `path` ([`Collection::begin_snapshot`], then
    /// [`PendingSnapshot::write`]).
    pub fn snapshot(
        &self,
        path: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<SnapshotInfo> {
        self.begin_snapshot()?.write(path, progress)
    }
}

/// A storage error of reading a snapshot, typed: damage is the caller's input, not ours.
fn snap_err(e: StorageError) -> EngineError {
    match e {
        e @ StorageError::SnapshotDamaged { .. } => EngineError::SnapshotDamaged(e),
        e => EngineError::Storage(e),
    }
}

fn damaged(path: &Path, part: &str, reason: String) -> EngineError {
    EngineError::SnapshotDamaged(StorageError::SnapshotDamaged {
        path: path.to_path_buf(),
        part: part.to_string(),
        reason,
    })
}

/// Checks that the files of a snapshot make a collection: the manifest parses and has the
/// snapshot's schema, every segment it names has its files, the WAL reads whole and its
/// records lie between the manifest's `flushed_seq` and the snapshot's sequence number.
fn check_contents(
    path: &Path,
    m: &SnapshotManifest,
    manifest_bytes: &[u8],
    wal_bytes: &[u8],
    adapter_bytes: Option<&[u8]>,
) -> Result<()> {
    if let Some(b) = adapter_bytes {
        crate::adapter::check_file_bytes(Path::new(ADAPTER_FILE), b)
            .map_err(|e| damaged(path, "file adapter", e.to_string()))?;
    }
    let names: std::collections::HashSet<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
    for f in &m.files {
        let ok = f.name == MANIFEST
            || f.name == WAL_FILE
            || f.name == ADAPTER_FILE
            || f.name.strip_prefix("segments/").is_some_and(|rest| {
                rest.split_once('/')
                    .is_some_and(|(id, file)| id.parse::<u64>().is_ok() && !file.contains('/'))
            });
        if !ok {
            return Err(damaged(
                path,
                "manifest",
                format!("file {:?} is not part of a collection", f.name),
            ));
        }
    }
    for need in [MANIFEST, WAL_FILE] {
        if !names.contains(need) {
            return Err(damaged(
                path,
                "manifest",
                format!("it holds no {need} file"),
            ));
        }
    }
    let cm = Manifest::decode(Path::new(MANIFEST), manifest_bytes)
        .map_err(|e| damaged(path, "file manifest", e.to_string()))?;
    if cm.schema != m.schema {
        return Err(damaged(
            path,
            "file manifest",
            "its schema differs from the snapshot manifest's".into(),
        ));
    }
    for seg in &cm.segments {
        let mut need = vec!["points.bin".to_string(), "payloads.bin".to_string()];
        need.extend((0..cm.schema.spaces.len()).map(|i| format!("vectors-{i}.idx")));
        need.extend((0..cm.schema.sparse_spaces.len()).map(|i| format!("sparse-{i}.bin")));
        need.extend(seg.tombstones.clone());
        for f in need {
            let name = format!("{SEGMENTS}/{}/{f}", seg.id);
            if !names.contains(name.as_str()) {
                return Err(damaged(
                    path,
                    "file manifest",
                    format!(
                        "it names segment {} but the snapshot holds no {name}",
                        seg.id
                    ),
                ));
            }
        }
    }
    let records = sextant_storage::wal::read_records(Path::new(WAL_FILE), wal_bytes)
        .map_err(|e| damaged(path, "file wal", e.to_string()))?;
    if let Some(r) = records
        .iter()
        .find(|r| r.seq <= cm.flushed_seq || r.seq > m.seq)
    {
        return Err(damaged(
            path,
            "file wal",
            format!(
                "record {} lies outside {}..={} (after the manifest's flush, up to the snapshot)",
                r.seq,
                cm.flushed_seq + 1,
                m.seq
            ),
        ));
    }
    Ok(())
}

/// Receives the files of a snapshot as they are read: `(name, Some(bytes))` for each piece,
/// then `(name, None)` when the file has ended and checked out.
type FileSink<'a> = &'a mut dyn FnMut(&str, Option<&[u8]>) -> Result<(), StorageError>;

/// Reads every file of the snapshot at `path`, checking each, passing its bytes to `sink`
/// (`sink(file name, bytes)`, called in pieces), then checks the contents as a collection.
fn read_checked(
    fs: &dyn Fs,
    path: &Path,
    sink: FileSink<'_>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SnapshotInfo> {
    let bytes = match fs.file_len(path) {
        Ok(n) => n,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(EngineError::SnapshotNotFound(path.display().to_string()))
        }
        Err(e) => return Err(io_err(path, e).into()),
    };
    let mut reader = SnapshotReader::open(fs, path).map_err(snap_err)?;
    let m = reader.manifest().clone();
    let total = m.body_bytes();
    let (mut done, mut manifest_bytes, mut wal_bytes) = (0u64, Vec::new(), Vec::new());
    let mut adapter_bytes: Option<Vec<u8>> = None;
    while let Some(f) = reader.peek().cloned() {
        reader
            .copy_next(&mut |b| {
                match f.name.as_str() {
                    MANIFEST => manifest_bytes.extend_from_slice(b),
                    WAL_FILE => wal_bytes.extend_from_slice(b),
                    ADAPTER_FILE => adapter_bytes
                        .get_or_insert_with(Vec::new)
                        .extend_from_slice(b),
                    _ => {}
                }
                done += b.len() as u64;
                progress(done, total);
                sink(&f.name, Some(b))
            })
            .map_err(snap_err)?;
        // The end of one file (an empty file gets only this call).
        sink(&f.name, None).map_err(snap_err)?;
    }
    reader.finish().map_err(snap_err)?;
    check_contents(
        path,
        &m,
        &manifest_bytes,
        &wal_bytes,
        adapter_bytes.as_deref(),
    )?;
    Ok(SnapshotInfo::new(path, bytes, &m))
}

/// After a crash in the middle of a replacing restore: a `.replaced-<name>` directory whose
/// `<name>` exists is the old collection, replaced (removed); one whose `<name>` is missing was
/// moved aside but the new collection never landed (moved back). Run on every open.
pub(crate) fn finish_interrupted_replace(fs: &dyn Fs, collections: &Path) -> Result<()> {
    let mut changed = false;
    for entry in fs
        .read_dir(collections)
        .map_err(|e| io_err(collections, e))?
    {
        let Some(name) = entry.strip_prefix(REPLACED_PREFIX) else {
            continue;
        };
        let (old, current) = (collections.join(&entry), collections.join(name));
        if fs.is_dir(&current) {
            fs.remove_dir_all(&old).map_err(|e| io_err(&old, e))?;
        } else {
            fs.rename(&old, &current).map_err(|e| io_err(&current, e))?;
        }
        changed = true;
    }
    if changed {
        envelope::sync_dir(fs, collections)?;
    }
    Ok(())
}

/// Removes the temporary files that interrupted snapshot writes left under `root` (the
/// `.<name>.tmp` that [`archive::write`] renames into place once it is whole), in `root` and in
/// its subdirectories. Run by every open of the database, when no snapshot can be being written
/// (the directory lock is held); a running create cleans up after its own failures.
pub(crate) fn remove_leftover_temp_files(fs: &dyn Fs, root: &Path) -> Result<()> {
    if !fs.is_dir(root) {
        return Ok(());
    }
    let mut dirs = vec![root.to_path_buf()];
    for d in fs.read_dir(root).map_err(|e| io_err(root, e))? {
        let p = root.join(&d);
        if fs.is_dir(&p) {
            dirs.push(p);
        }
    }
    for dir in dirs {
        let mut removed = false;
        for f in fs.read_dir(&dir).map_err(|e| io_err(&dir, e))? {
            let p = dir.join(&f);
            if f.starts_with('.') && f.ends_with(".tmp") && !fs.is_dir(&p) {
                fs.remove_file(&p).map_err(|e| io_err(&p, e))?;
                removed = true;
            }
        }
        if removed {
            envelope::sync_dir(fs, &dir)?;
        }
    }
    Ok(())
}

/// The master key and the data key an encrypted snapshot carries.
type SnapshotKeys = (MasterKey, DataKeys);

/// Distinguishes the temporary directories of restores running at once in one process.
static RESTORES: AtomicU64 = AtomicU64::new(0);

impl Database {
    /// The file system to read the snapshot at `path` with (decrypting it with the key it
    /// carries, when it is encrypted), and that key.
    fn snapshot_reader(&self, path: &Path) -> Result<(Arc<dyn Fs>, Option<SnapshotKeys>)> {
        match crate::encryption::snapshot_keys(&*self.fs, path, self.master.lock().as_ref())? {
            Some((master, data)) => Ok((
                Arc::new(EncryptedFs::reader(self.fs.clone(), master.clone())),
                Some((master, data)),
            )),
            None => Ok((self.fs.clone(), None)),
        }
    }

    /// Where snapshots are kept by default: `<data>/snapshots`.
    pub fn snapshots_dir(&self) -> PathBuf {
        self.dir.join(SNAPSHOTS_DIR)
    }

    /// Snapshots collection `name_or_alias` while writes to it go on. `path` is the snapshot
    /// file to write, or a directory to write it in; by default it goes into
    /// `<data>/snapshots/<collection>/`, named after the collection, the time and the
    /// sequence number. `progress(done, total)` counts bytes hashed and copied.
    pub fn create_snapshot(
        &self,
        name_or_alias: &str,
        path: Option<&Path>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<SnapshotInfo> {
        let c = self.collection(name_or_alias)?;
        let pending = c.begin_snapshot()?;
        let dir = match path {
            Some(p) if !self.fs.is_dir(p) => return pending.write(p, progress),
            Some(p) => p.to_path_buf(),
            None => self.snapshots_dir().join(c.name()),
        };
        let stamp: String = pending
            .manifest
            .created_at
            .chars()
            .filter(|c| !matches!(c, '-' | ':'))
            .collect();
        let base = format!("{}-{stamp}-seq{}", c.name(), pending.seq());
        let mut file = dir.join(format!("{base}.{}", archive::EXTENSION));
        let mut n = 2;
        while self.fs.exists(&file) {
            file = dir.join(format!("{base}-{n}.{}", archive::EXTENSION));
            n += 1;
        }
        pending.write(&file, progress)
    }

    /// The snapshots under `<data>/snapshots/` (of one collection, or of all), ordered by
    /// collection and time. Reads only each file's header and manifest.
    pub fn list_snapshots(&self, collection: Option<&str>) -> Result<Vec<SnapshotListing>> {
        let root = self.snapshots_dir();
        let dirs = match collection {
            Some(c) => {
                check_name(c)?;
                vec![root.join(c)]
            }
            None if self.fs.is_dir(&root) => self
                .fs
                .read_dir(&root)
                .map_err(|e| io_err(&root, e))?
                .into_iter()
                .map(|d| root.join(d))
                .filter(|d| self.fs.is_dir(d))
                .collect(),
            None => Vec::new(),
        };
        let mut out = Vec::new();
        for d in dirs {
            out.extend(self.list_snapshots_in(&d)?);
        }
        Ok(out)
    }

    /// The snapshot files (`*.snapshot`) in directory `dir`, by name; none when it does not
    /// exist.
    pub fn list_snapshots_in(&self, dir: &Path) -> Result<Vec<SnapshotListing>> {
        if !self.fs.is_dir(dir) {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        for f in self.fs.read_dir(dir).map_err(|e| io_err(dir, e))? {
            let path = dir.join(&f);
            let is_snapshot = !f.starts_with('.')
                && Path::new(&f)
                    .extension()
                    .is_some_and(|e| e == archive::EXTENSION);
            if !is_snapshot || self.fs.is_dir(&path) {
                continue;
            }
            let bytes = self.fs.file_len(&path).map_err(|e| io_err(&path, e))?;
            let read = self
                .snapshot_reader(&path)
                .and_then(|(fs, _)| SnapshotReader::open(&*fs, &path).map_err(snap_err));
            let (snapshot, problem) = match read {
                Ok(r) => (Some(SnapshotInfo::new(&path, bytes, r.manifest())), None),
                Err(e) => (None, Some(chain(&e))),
            };
            out.push(SnapshotListing {
                path,
                bytes,
                snapshot,
                problem,
            });
        }
        Ok(out)
    }

    /// The snapshot a user names: a path, or the file name of a snapshot under
    /// `<data>/snapshots/<collection>/` (with or without `.snapshot`).
    pub fn find_snapshot(&self, reference: &str) -> Result<PathBuf> {
        let given = Path::new(reference);
        let bare = given.components().count() == 1 && !given.is_absolute();
        if bare {
            let root = self.snapshots_dir();
            let mut found = Vec::new();
            if self.fs.is_dir(&root) {
                for d in self.fs.read_dir(&root).map_err(|e| io_err(&root, e))? {
                    for f in [
                        reference.to_string(),
                        format!("{reference}.{}", archive::EXTENSION),
                    ] {
                        let p = root.join(&d).join(f);
                        if self.fs.exists(&p) && !self.fs.is_dir(&p) {
                            found.push(p);
                        }
                    }
                }
            }
            match found.len() {
                0 => {}
                1 => return Ok(found.remove(0)),
                _ => {
                    return Err(EngineError::invalid(
                        "snapshot",
                        format!(
                            "{reference:?} names several snapshots ({}); give a path",
                            found
                                .iter()
                                .map(|p| p.display().to_string())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    ))
                }
            }
        }
        if self.fs.exists(given) && !self.fs.is_dir(given) {
            return Ok(given.to_path_buf());
        }
        Err(EngineError::SnapshotNotFound(reference.to_string()))
    }

    /// What the snapshot at `path` says of itself (reads only its header and manifest).
    pub fn snapshot_info(&self, path: &Path) -> Result<SnapshotInfo> {
        let bytes = match self.fs.file_len(path) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(EngineError::SnapshotNotFound(path.display().to_string()))
            }
            Err(e) => return Err(io_err(path, e).into()),
        };
        let (fs, _) = self.snapshot_reader(path)?;
        let r = SnapshotReader::open(&*fs, path).map_err(snap_err)?;
        Ok(SnapshotInfo::new(path, bytes, r.manifest()))
    }

    /// Reads the whole snapshot at `path` and checks it: header, manifest, every file's length
    /// and SHA-256, nothing after the last file, and that the files make a collection. Writes
    /// nothing. A failure names the bad part ([`EngineError::SnapshotDamaged`]).
    pub fn verify_snapshot(
        &self,
        path: &Path,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<SnapshotInfo> {
        if !self.fs.exists(path) {
            return Err(EngineError::SnapshotNotFound(path.display().to_string()));
        }
        let (fs, _) = self.snapshot_reader(path)?;
        read_checked(&*fs, path, &mut |_, _| Ok(()), progress)
    }

    /// Deletes the snapshot file at `path` (refused unless it starts like a snapshot).
    pub fn delete_snapshot(&self, path: &Path) -> Result<()> {
        let fs = &*self.fs;
        if !fs.exists(path) || fs.is_dir(path) {
            return Err(EngineError::SnapshotNotFound(path.display().to_string()));
        }
        let mut magic = [0u8; 8];
        let mut r = fs.open_read(path).map_err(|e| io_err(path, e))?;
        let is_snapshot = std::io::Read::read_exact(&mut r, &mut magic).is_ok()
            && (&magic == archive::MAGIC || &magic == sextant_storage::crypt::MAGIC);
        if !is_snapshot {
            return Err(EngineError::invalid(
                "snapshot",
                format!(
                    "{} is not a Sextant snapshot; it was not deleted",
                    path.display()
                ),
            ));
        }
        fs.remove_file(path).map_err(|e| io_err(path, e))?;
        envelope::sync_dir(fs, envelope::parent(path))?;
        Ok(())
    }

    /// Restores the snapshot at `path` as collection `name`: a new name, or, with `replace`,
    /// an existing collection replaced atomically (an alias is never replaced). Every file is
    /// checked before anything becomes visible; on any failure nothing of the restore remains.
    /// Open handles to a replaced collection see it as deleted (as after
    /// [`Database::delete_collection`]). `progress(done, total)` counts bytes unpacked.
    ///
    /// Returns once the collection is durably in place, with what the snapshot says of itself;
    /// open it with [`Database::collection`]. (An error means the restore did not happen: the
    /// opening is left out of it, since it can fail after the point of no return.)
    pub fn restore_snapshot(
        &self,
        path: &Path,
        name: &str,
        replace: bool,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<SnapshotInfo> {
        check_name(name)?;
        self.check_restore_target(name, replace)?;
        let collections = self.dir.join("collections");
        let tmp = collections.join(format!(
            ".restore-{name}-{}-{}.tmp",
            std::process::id(),
            RESTORES.fetch_add(1, Ordering::Relaxed)
        ));
        let built = self.unpack(path, &tmp, name, progress);
        let landed = built.and_then(|info| self.swap_in(&tmp, name, replace).map(|()| info));
        if landed.is_err() && self.fs.exists(&tmp) {
            let _ = self.fs.remove_dir_all(&tmp);
        }
        landed
    }

    fn check_restore_target(&self, name: &str, replace: bool) -> Result<()> {
        let alias = self.aliases.lock().contains_key(name);
        if alias || (!replace && self.fs.exists(&self.collection_dir(name))) {
            return Err(EngineError::NameTaken(name.to_string()));
        }
        Ok(())
    }

    /// Writes the snapshot's files into `tmp` (checked, fsynced) and opens them once there.
    fn unpack(
        &self,
        path: &Path,
        tmp: &Path,
        name: &str,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<SnapshotInfo> {
        if !self.fs.exists(path) {
            return Err(EngineError::SnapshotNotFound(path.display().to_string()));
        }
        let (reader, keys) = self.snapshot_reader(path)?;
        self.fs
            .create_dir_all(&tmp.join(SEGMENTS))
            .map_err(|e| io_err(tmp, e))?;
        // An encrypted snapshot restores as an encrypted collection with the snapshot's data
        // key, wrapped by this database's master key.
        let (target, encryption) = match keys {
            Some((master, data)) => {
                let file = KeyFile::wrap(&data, &master)
                    .map_err(|e| EngineError::EncryptionKey(e.to_string()))?;
                file.write(&*self.fs, &tmp.join(KEYS_FILE))?;
                crate::encryption::with_keys(&self.fs, tmp, master, data)
            }
            None => (self.fs.clone(), None),
        };
        let fs = &*target;
        let mut dirs = std::collections::BTreeSet::new();
        dirs.insert(tmp.join(SEGMENTS));
        let mut open: Option<(String, Box<dyn sextant_storage::fs::LogFile>)> = None;
        let info = read_checked(
            &*reader,
            path,
            &mut |file, bytes| {
                let target = tmp.join(file);
                if open.as_ref().is_none_or(|(f, _)| f != file) {
                    let dir = envelope::parent(&target);
                    if !fs.is_dir(dir) {
                        fs.create_dir_all(dir).map_err(|e| io_err(dir, e))?;
                        dirs.insert(dir.to_path_buf());
                    }
                    let log = fs.open_log(&target, true).map_err(|e| io_err(&target, e))?;
                    open = Some((file.to_string(), log));
                }
                let (_, log) = open.as_mut().expect("opened above");
                match bytes {
                    Some(b) => log.write_all(b).map_err(|e| io_err(&target, e)),
                    None => {
                        log.sync_data().map_err(|e| io_err(&target, e))?;
                        open = None;
                        Ok(())
                    }
                }
            },
            progress,
        )?;
        // Deepest first, so each directory's entry in its parent is synced after its contents.
        for d in dirs.iter().rev() {
            envelope::sync_dir(fs, d)?;
        }
        envelope::sync_dir(fs, tmp)?;
        // Checksums say the bytes are those snapshotted; opening says this build reads them
        // (format versions, WAL replay), before the collection can be seen.
        Collection::open(
            name,
            tmp,
            self.config,
            self.lock.clone(),
            target.clone(),
            encryption,
        )
        .map(drop)
        .map_err(|e| match e {
            e @ EngineError::Storage(StorageError::Io { .. }) => e,
            e => damaged(
                path,
                "contents",
                format!(
                    "the restored files do not open as a collection: {}",
                    chain(&e)
                ),
            ),
        })?;
        Ok(info)
    }

    /// Renames the restored collection in `tmp` into place (replacing `name` when asked).
    fn swap_in(&self, tmp: &Path, name: &str, replace: bool) -> Result<()> {
        let fs = &*self.fs;
        let collections = self.dir.join("collections");
        let dir = self.collection_dir(name);
        let mut open = self.open.lock();
        self.check_restore_target(name, replace)?;
        if !fs.exists(&dir) {
            fs.rename(tmp, &dir).map_err(|e| io_err(&dir, e))?;
            if let Err(e) = envelope::sync_dir(fs, &collections) {
                // Undo, so that a restore reported failed does not appear after a power cut.
                let _ = fs
                    .rename(&dir, tmp)
                    .and_then(|()| fs.sync_dir(&collections));
                return Err(e.into());
            }
            return Ok(());
        }
        if let Some(c) = open.remove(name) {
            c.stop_background();
        }
        let aside = collections.join(format!("{REPLACED_PREFIX}{name}"));
        if fs.exists(&aside) {
            fs.remove_dir_all(&aside).map_err(|e| io_err(&aside, e))?;
        }
        fs.rename(&dir, &aside).map_err(|e| io_err(&dir, e))?;
        if let Err(e) = fs.rename(tmp, &dir) {
            let _ = fs.rename(&aside, &dir);
            return Err(io_err(&dir, e).into());
        }
        // The point of no return: from here a crash keeps the new collection.
        if let Err(e) = envelope::sync_dir(fs, &collections) {
            let _ = fs
                .rename(&dir, tmp)
                .and_then(|()| fs.rename(&aside, &dir))
                .and_then(|()| fs.sync_dir(&collections));
            return Err(e.into());
        }
        let _ = fs.remove_dir_all(&aside);
        Ok(())
    }
}
