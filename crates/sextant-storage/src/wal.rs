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

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

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
    /// fsync at most once per interval: faster bulk writes, but a crash can lose the batches of
    /// the last interval (never a partial batch). Opt-in.
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
#[derive(Debug)]
pub struct Wal {
    path: PathBuf,
    file: File,
    len: u64,
    last_seq: Option<u64>,
    durability: Durability,
    last_sync: Instant,
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

/// fsyncs the directory holding `path`, so that a created or renamed file's name is durable.
fn sync_parent(path: &Path) -> Result<(), StorageError> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
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

impl Wal {
    /// Opens the log at `path`, creating it if missing, and returns every intact record. A torn
    /// last record is cut off (and counted in the [`Recovery`]); other damage is an error.
    pub fn open(path: &Path, durability: Durability) -> Result<(Wal, Recovery), StorageError> {
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io(path))?;
        let mut recovery = Recovery::default();
        let len = if existed {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).map_err(io(path))?;
            let (records, valid) = scan(path, &bytes)?;
            if valid < bytes.len() {
                recovery.torn_tail_bytes = (bytes.len() - valid) as u64;
                file.set_len(valid as u64).map_err(io(path))?;
                file.sync_all().map_err(io(path))?;
            }
            recovery.records = records;
            valid as u64
        } else {
            file.write_all(&header_bytes()).map_err(io(path))?;
            file.sync_all().map_err(io(path))?;
            sync_parent(path)?;
            HEADER_LEN as u64
        };
        file.seek(SeekFrom::Start(len)).map_err(io(path))?;
        let wal = Wal {
            path: path.to_path_buf(),
            file,
            len,
            last_seq: recovery.records.last().map(|r| r.seq),
            durability,
            last_sync: Instant::now(),
        };
        Ok((wal, recovery))
    }

    /// The highest sequence number in the log.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// The log's file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one batch. With [`Durability::Always`] it is on stable storage when this returns.
    /// On a failed write the file is cut back, so the log never keeps a partial record.
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
        let bytes = record_bytes(seq, payload);
        if let Err(source) = self.file.write_all(&bytes) {
            let _ = self.file.set_len(self.len);
            let _ = self.file.seek(SeekFrom::Start(self.len));
            return Err(StorageError::Io {
                path: self.path.clone(),
                source,
            });
        }
        self.len += bytes.len() as u64;
        self.last_seq = Some(seq);
        match self.durability {
            Durability::Always => self.sync(),
            Durability::Interval(every) if self.last_sync.elapsed() >= every => self.sync(),
            Durability::Interval(_) => Ok(()),
        }
    }

    /// Forces appended records to stable storage.
    pub fn sync(&mut self) -> Result<(), StorageError> {
        self.file.sync_data().map_err(io(&self.path))?;
        self.last_sync = Instant::now();
        Ok(())
    }

    /// Drops every record with a sequence number up to `seq` (their effects are in flushed
    /// segments). The kept records are written to a temporary file that atomically replaces the
    /// log (write, fsync, rename, fsync directory). Returns how many records were kept.
    pub fn truncate_through(&mut self, seq: u64) -> Result<usize, StorageError> {
        self.sync()?;
        let mut bytes = Vec::new();
        let mut f = File::open(&self.path).map_err(io(&self.path))?;
        f.read_to_end(&mut bytes).map_err(io(&self.path))?;
        let (records, _) = scan(&self.path, &bytes)?;
        let kept: Vec<&Record> = records.iter().filter(|r| r.seq > seq).collect();
        let mut out = header_bytes();
        for r in &kept {
            out.extend_from_slice(&record_bytes(r.seq, &r.payload));
        }
        let tmp = self.path.with_extension("wal.tmp");
        {
            let mut t = File::create(&tmp).map_err(io(&tmp))?;
            t.write_all(&out).map_err(io(&tmp))?;
            t.sync_all().map_err(io(&tmp))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io(&self.path))?;
        sync_parent(&self.path)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .map_err(io(&self.path))?;
        file.seek(SeekFrom::End(0)).map_err(io(&self.path))?;
        self.file = file;
        self.len = out.len() as u64;
        // The last sequence number is kept even when every record was dropped, so that numbers
        // never go back.
        Ok(kept.len())
    }
}
