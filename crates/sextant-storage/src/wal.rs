//! The write-ahead log: an append-only file of checksummed, sequence-numbered records.
//!
//! ```text
//! file   = header record*
//! header = magic "SXTWAL\0\0" | version u32 | crc32(magic, version) u32
//! record = len u32 | crc32(seq, payload) u32 | seq u64 | payload [len bytes]     (little-endian)
//! ```
//!
//! One record holds one whole batch, so a batch is applied entirely or not at all. Sequence
//! numbers strictly increase. On open, the log is scanned: a damaged *last* record (cut short,
//! checksum wrong, or a zero-filled tail, the marks of a write interrupted by a crash) is cut off
//! and reported in [`Recovery::torn_tail_bytes`]; damage anywhere else cannot come from a crash
//! and is an error naming the file and offset. The payload's meaning belongs to the layer above.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fs::{Fs, LogFile};
use crate::StorageError;

/// Magic number at the start of every WAL file.
pub const MAGIC: &[u8; 8] = b"SXTWAL\0\0";
/// The WAL format version this build writes and reads.
pub const VERSION: u32 = 1;
/// Largest accepted payload; a larger length field is damage, not data.
pub const MAX_RECORD_BYTES: usize = 256 << 20;

const HEADER_LEN: usize = 16;
const RECORD_HEADER_LEN: usize = 16;

/// When appended records are forced to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync (fdatasync) before every append returns: an acknowledged batch survives power
    /// loss. The default.
    #[default]
    Always,
    /// fsync at most once per interval: faster bulk writes, but a power cut can lose the
    /// batches of the last interval (never a partial batch). An append syncs when the interval
    /// has passed since the last sync; a collection also syncs on a timer every interval (so
    /// the window is bounded when writes stop), and the log syncs when it is dropped. Opt-in.
    Interval(Duration),
}

impl FromStr for Durability {
    type Err = String;

    /// `always`, or an interval such as `100ms` or `2s`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let bad =
            || format!("invalid durability {s:?}: expected `always` or an interval like `100ms`");
        if s == "always" {
            return Ok(Durability::Always);
        }
        let (num, unit) = s
            .find(|c: char| !c.is_ascii_digit())
            .map(|i| s.split_at(i))
            .ok_or_else(bad)?;
        let n: u64 = num.parse().map_err(|_| bad())?;
        match unit {
            "ms" => Ok(Durability::Interval(Duration::from_millis(n))),
            "s" => Ok(Durability::Interval(Duration::from_secs(n))),
            _ => Err(bad()),
        }
    }
}

/// One logged batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Sequence number (strictly increasing through the log).
    pub seq: u64,
    /// The batch, encoded by the layer above.
    pub payload: Vec<u8>,
}

/// What opening a log found.
#[derive(Debug, Default)]
pub struct Recovery {
    /// Every intact record, in order.
    pub records: Vec<Record>,
    /// Bytes of an interrupted last write that were cut off (0 when the log was clean).
    pub torn_tail_bytes: u64,
}

/// An open write-ahead log.
///
/// **After a failed write or fsync the log is poisoned**: after a failed fsync the record may
/// or may not be on disk (and Linux may already have dropped the dirty pages and reported the
/// next fsync clean), so the log is rewritten at once — records up to the last acknowledged one
/// are read back and written to a new file that is fsynced and renamed over the log — which
/// removes the failed record for good before the failure is reported. Until such a rewrite has
/// succeeded every append is refused ([`StorageError::WalPoisoned`]); each later append or sync
/// tries it again, so a process whose disk recovers goes on without a restart. Sequence
/// numbers of failed appends are never reused.
#[derive(Debug)]
pub struct Wal {
    fs: Arc<dyn Fs>,
    path: PathBuf,
    file: Box<dyn LogFile>,
    /// Bytes of the header and the acknowledged records.
    len: u64,
    /// The highest sequence number used, by an acknowledged or a failed append.
    last_seq: Option<u64>,
    /// The highest acknowledged sequence number.
    acked_seq: Option<u64>,
    durability: Durability,
    last_sync: Instant,
    /// Acknowledged records not yet fsynced (only under [`Durability::Interval`]).
    unsynced: bool,
    /// Why the log refuses appends, until a rewrite succeeds.
    poisoned: Option<Arc<StorageError>>,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn header_bytes() -> Vec<u8> {
    let mut h = Vec::with_capacity(HEADER_LEN);
    h.extend_from_slice(MAGIC);
    h.extend_from_slice(&VERSION.to_le_bytes());
    let crc = crc32fast::hash(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

fn record_bytes(seq: u64, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(8 + payload.len());
    body.extend_from_slice(&seq.to_le_bytes());
    body.extend_from_slice(payload);
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    out
}

fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// The temporary file a rewrite of the log at `path` goes through.
pub fn temp_path(path: &Path) -> PathBuf {
    path.with_extension("wal.tmp")
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// Scans `bytes` (a whole log file); returns the intact records and where they end.
fn scan(path: &Path, bytes: &[u8]) -> Result<(Vec<Record>, usize), StorageError> {
    let corrupt = |offset: usize, reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
        return Err(corrupt(
            0,
            "not a Sextant WAL file (bad magic or too short)".into(),
        ));
    }
    if crc32fast::hash(&bytes[..12]) != u32_at(bytes, 12) {
        return Err(corrupt(0, "header checksum mismatch".into()));
    }
    let found = u32_at(bytes, 8);
    if found != VERSION {
        return Err(StorageError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: VERSION,
        });
    }
    let mut records: Vec<Record> = Vec::new();
    let mut at = HEADER_LEN;
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.iter().all(|&b| b == 0) {
            break; // a zero-filled tail: space allocated by a write that never landed
        }
        if rest.len() < RECORD_HEADER_LEN {
            break; // a cut-off record header
        }
        let len = u32_at(rest, 0) as usize;
        if len > MAX_RECORD_BYTES {
            // `append` never writes such a length, so this is damage, wherever it is.
            return Err(corrupt(
                at,
                format!("record length {len} is over the limit"),
            ));
        }
        if RECORD_HEADER_LEN + len > rest.len() {
            // Runs past the end of the file: a cut-off record. (A damaged length field that
            // happens to point past the end looks the same; the checksum cannot tell them apart.)
            break;
        }
        let end = RECORD_HEADER_LEN + len;
        let body = &rest[8..end];
        if crc32fast::hash(body) != u32_at(rest, 4) {
            if at + end == bytes.len() {
                break; // the last record was being written
            }
            return Err(corrupt(
                at,
                "record checksum mismatch before the end of the log".into(),
            ));
        }
        let seq = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
        if let Some(prev) = records.last().map(|r| r.seq) {
            if seq <= prev {
                return Err(corrupt(at, format!("sequence number {seq} after {prev}")));
            }
        }
        records.push(Record {
            seq,
            payload: body[8..].to_vec(),
        });
        at += end;
    }
    Ok((records, at))
}

/// Reads a whole log held in memory (a log inside a snapshot): every record, in order. Unlike
/// opening a log, a torn last record is an error here, since such a log was written whole.
pub fn read_records(path: &Path, bytes: &[u8]) -> Result<Vec<Record>, StorageError> {
    let (records, end) = scan(path, bytes)?;
    if end != bytes.len() {
        return Err(StorageError::Corrupt {
            path: path.to_path_buf(),
            offset: end as u64,
            reason: "the log ends in an incomplete record".into(),
        });
    }
    Ok(records)
}

impl Wal {
    /// Opens the log at `path` on the real file system, creating it if missing, and returns
    /// every intact record. A torn last record is cut off (and counted in the [`Recovery`]);
    /// other damage is an error. (A collection opens its log with [`Wal::open_in`], which
    /// refuses a missing file.)
    pub fn open(path: &Path, durability: Durability) -> Result<(Wal, Recovery), StorageError> {
        let fs = crate::fs::real();
        if fs.exists(path) {
            Wal::open_in(fs, path, durability)
        } else {
            Ok((Wal::create_in(fs, path, durability)?, Recovery::default()))
        }
    }

    /// Creates a new, empty log at `path` (replacing any file there), durably: the file and
    /// its directory entry are fsynced.
    pub fn create_in(
        fs: Arc<dyn Fs>,
        path: &Path,
        durability: Durability,
    ) -> Result<Wal, StorageError> {
        fs.write_synced(path, &header_bytes()).map_err(io(path))?;
        fs.sync_dir(parent(path)).map_err(io(parent(path)))?;
        let file = fs.open_log(path, false).map_err(io(path))?;
        Ok(Wal {
            fs,
            path: path.to_path_buf(),
            file,
            len: HEADER_LEN as u64,
            last_seq: None,
            acked_seq: None,
            durability,
            last_sync: Instant::now(),
            unsynced: false,
            poisoned: None,
        })
    }

    /// Opens the existing log at `path` and returns every intact record. A missing file is an
    /// error naming it ([`StorageError::Missing`]): a log is never silently recreated, which
    /// would lose its acknowledged records. A torn last record is cut off (and counted in the
    /// [`Recovery`]); other damage is an error.
    pub fn open_in(
        fs: Arc<dyn Fs>,
        path: &Path,
        durability: Durability,
    ) -> Result<(Wal, Recovery), StorageError> {
        let bytes = match fs.read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StorageError::Missing {
                    path: path.to_path_buf(),
                    what: "write-ahead log",
                })
            }
            Err(e) => return Err(io(path)(e)),
        };
        let (records, valid) = scan(path, &bytes)?;
        let mut file = fs.open_log(path, false).map_err(io(path))?;
        let mut recovery = Recovery::default();
        if valid < bytes.len() {
            recovery.torn_tail_bytes = (bytes.len() - valid) as u64;
            file.set_len(valid as u64).map_err(io(path))?;
            file.sync_data().map_err(io(path))?;
        }
        let last = records.last().map(|r| r.seq);
        recovery.records = records;
        let wal = Wal {
            fs,
            path: path.to_path_buf(),
            file,
            len: valid as u64,
            last_seq: last,
            acked_seq: last,
            durability,
            last_sync: Instant::now(),
            unsynced: false,
            poisoned: None,
        };
        Ok((wal, recovery))
    }

    /// The highest sequence number used (failed appends included: numbers are never reused).
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// The log's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the log refuses appends after a failure it could not yet repair.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned.is_some()
    }

    /// Whether acknowledged records wait for an fsync (under [`Durability::Interval`]).
    pub fn has_unsynced(&self) -> bool {
        self.unsynced
    }

    /// Appends one batch. With [`Durability::Always`] it is on stable storage when this returns.
    /// When the write or its fsync fails, the record is removed from the log (see [`Wal`])
    /// before the error is returned; if that is impossible now, the log refuses appends until
    /// it has succeeded.
    pub fn append(&mut self, seq: u64, payload: &[u8]) -> Result<(), StorageError> {
        if let Some(last) = self.last_seq.filter(|&last| seq <= last) {
            return Err(StorageError::InvalidSequence(format!(
                "sequence number {seq} is not above the last one, {last}"
            )));
        }
        if payload.len() > MAX_RECORD_BYTES {
            return Err(StorageError::InvalidSequence(format!(
                "a {} byte batch is over the {MAX_RECORD_BYTES} byte record limit",
                payload.len()
            )));
        }
        self.heal()?;
        let bytes = record_bytes(seq, payload);
        self.last_seq = Some(seq);
        let sync = match self.durability {
            Durability::Always => true,
            Durability::Interval(every) => self.last_sync.elapsed() >= every,
        };
        let written =
            self.file
                .write_all(&bytes)
                .and_then(|()| if sync { self.file.sync_data() } else { Ok(()) });
        if let Err(source) = written {
            return Err(self.fail(StorageError::Io {
                path: self.path.clone(),
                source,
            }));
        }
        self.len += bytes.len() as u64;
        self.acked_seq = Some(seq);
        if sync {
            self.last_sync = Instant::now();
            self.unsynced = false;
        } else {
            self.unsynced = true;
        }
        Ok(())
    }

    /// Poisons the log after `cause`, tries to repair it at once, and returns the error to
    /// report for the failed operation.
    fn fail(&mut self, cause: StorageError) -> StorageError {
        let cause = Arc::new(cause);
        self.poisoned = Some(cause.clone());
        let cut_back = self.rewrite(0).is_ok();
        StorageError::WalWrite {
            path: self.path.clone(),
            cut_back,
            source: cause,
        }
    }

    /// Repairs a poisoned log (a rewrite); an error when that fails again.
    fn heal(&mut self) -> Result<(), StorageError> {
        match self.poisoned.clone() {
            None => Ok(()),
            Some(cause) => self
                .rewrite(0)
                .map(|_| ())
                .map_err(|_| StorageError::WalPoisoned {
                    path: self.path.clone(),
                    source: cause,
                }),
        }
    }

    /// Forces appended records to stable storage. A failed fsync is repaired by rewriting the
    /// log (see [`Wal`]); the error is returned only when that fails too.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.heal()?;
        if !self.unsynced {
            return Ok(());
        }
        match self.file.sync_data() {
            Ok(()) => {
                self.last_sync = Instant::now();
                self.unsynced = false;
                Ok(())
            }
            Err(source) => {
                let e = self.fail(StorageError::Io {
                    path: self.path.clone(),
                    source,
                });
                if self.poisoned.is_none() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    /// Drops every record with a sequence number up to `seq` (their effects are in flushed
    /// segments). The kept records are written to a temporary file that atomically replaces the
    /// log (write, fsync, rename, fsync directory). Returns how many records were kept.
    pub fn truncate_through(&mut self, seq: u64) -> Result<usize, StorageError> {
        self.rewrite(seq)
    }

    /// Rewrites the log with the acknowledged records above `floor`, read back from the file:
    /// a new file, fsynced, renamed over the log, directory fsynced, then reopened. Any failure
    /// leaves the log poisoned (the handle may point at a replaced file).
    fn rewrite(&mut self, floor: u64) -> Result<usize, StorageError> {
        match self.try_rewrite(floor) {
            Ok(kept) => {
                self.poisoned = None;
                Ok(kept)
            }
            Err(e) if self.poisoned.is_some() => Err(e),
            Err(e) => {
                let cause = Arc::new(e);
                self.poisoned = Some(cause.clone());
                Err(StorageError::WalWrite {
                    path: self.path.clone(),
                    cut_back: false,
                    source: cause,
                })
            }
        }
    }

    /// A whole log file holding the acknowledged records above `floor`, read back from the
    /// file, and how many records it holds. A snapshot takes the log this way under the
    /// collection's writer lock: never a torn or failed record, and nothing above the last
    /// acknowledged sequence number.
    pub fn acknowledged_bytes(&self, floor: u64) -> Result<(Vec<u8>, usize), StorageError> {
        let bytes = self.fs.read(&self.path).map_err(io(&self.path))?;
        let (records, _) = scan(&self.path, &bytes)?;
        let acked = self.acked_seq.unwrap_or(0);
        let mut out = header_bytes();
        let mut kept = 0;
        for r in records.iter().filter(|r| r.seq > floor && r.seq <= acked) {
            out.extend_from_slice(&record_bytes(r.seq, &r.payload));
            kept += 1;
        }
        Ok((out, kept))
    }

    fn try_rewrite(&mut self, floor: u64) -> Result<usize, StorageError> {
        let (out, kept) = self.acknowledged_bytes(floor)?;
        let tmp = temp_path(&self.path);
        self.fs.write_synced(&tmp, &out).map_err(io(&tmp))?;
        self.fs.rename(&tmp, &self.path).map_err(io(&self.path))?;
        let dir = parent(&self.path);
        self.fs.sync_dir(dir).map_err(io(dir))?;
        self.file = self
            .fs
            .open_log(&self.path, false)
            .map_err(io(&self.path))?;
        self.len = out.len() as u64;
        self.unsynced = false;
        self.last_sync = Instant::now();
        // The last sequence number is kept even when every record was dropped, so that numbers
        // never go back.
        Ok(kept)
    }
}

impl Drop for Wal {
    /// Syncs acknowledged records on close (they matter under [`Durability::Interval`]).
    fn drop(&mut self) {
        if self.unsynced && self.poisoned.is_none() {
            let _ = self.file.sync_data();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::sim::{Fault, OpKind, SimFs};

    fn payloads(fs: &SimFs, path: &Path) -> Vec<(u64, Vec<u8>)> {
        let (_, rec) = Wal::open_in(fs.handle(), path, Durability::Always).unwrap();
        rec.records
            .into_iter()
            .map(|r| (r.seq, r.payload))
            .collect()
    }

    #[test]
    fn a_failed_fsync_removes_the_record_and_keeps_numbering() {
        let fs = SimFs::new();
        let path = Path::new("/wal");
        let mut wal = Wal::create_in(fs.handle(), path, Durability::Always).unwrap();
        wal.append(1, b"one").unwrap();
        let mut armed = true;
        fs.fail_when(move |op| {
            let hit = armed && op.kind == OpKind::SyncFile;
            armed &= !hit;
            hit.then_some(Fault::Eio)
        });
        let err = wal.append(2, b"two").unwrap_err();
        assert!(
            matches!(err, StorageError::WalWrite { cut_back: true, .. }),
            "{err}"
        );
        assert!(!wal.is_poisoned());
        assert!(
            wal.append(2, b"again").is_err(),
            "sequence numbers are not reused"
        );
        wal.append(3, b"three").unwrap();
        let want = vec![(1, b"one".to_vec()), (3, b"three".to_vec())];
        assert_eq!(payloads(&fs.restart(), path), want);
        assert_eq!(payloads(&fs.power_loss(0), path), want);
    }

    #[test]
    fn a_poisoned_log_refuses_appends_until_the_disk_recovers() {
        let fs = SimFs::new();
        let path = Path::new("/wal");
        let mut wal = Wal::create_in(fs.handle(), path, Durability::Always).unwrap();
        wal.append(1, b"one").unwrap();
        fs.fail_when(|_| Some(Fault::Enospc));
        let err = wal.append(2, b"two").unwrap_err();
        assert!(
            matches!(
                err,
                StorageError::WalWrite {
                    cut_back: false,
                    ..
                }
            ),
            "{err}"
        );
        assert!(wal.is_poisoned());
        let err = wal.append(3, b"three").unwrap_err();
        assert!(matches!(err, StorageError::WalPoisoned { .. }), "{err}");
        assert!(err.to_string().contains("refuses writes"), "{err}");
        fs.heal();
        wal.append(4, b"four").unwrap();
        assert!(!wal.is_poisoned());
        let want = vec![(1, b"one".to_vec()), (4, b"four".to_vec())];
        assert_eq!(payloads(&fs.power_loss(0), path), want);
    }

    #[test]
    fn a_missing_log_is_an_error_not_a_new_file() {
        let fs = SimFs::new();
        let err = Wal::open_in(fs.handle(), Path::new("/wal"), Durability::Always).unwrap_err();
        assert!(matches!(err, StorageError::Missing { .. }), "{err}");
        assert!(err.to_string().contains("/wal"), "{err}");
        assert!(!fs.exists(Path::new("/wal")));
    }

    #[test]
    fn interval_records_are_synced_on_drop() {
        let fs = SimFs::new();
        let path = Path::new("/wal");
        {
            let mut wal = Wal::create_in(
                fs.handle(),
                path,
                Durability::Interval(Duration::from_secs(3600)),
            )
            .unwrap();
            wal.append(1, b"one").unwrap();
            assert!(wal.has_unsynced());
            assert!(payloads(&fs.power_loss(0), path).is_empty());
        }
        assert_eq!(payloads(&fs.power_loss(0), path), [(1, b"one".to_vec())]);
    }
}
