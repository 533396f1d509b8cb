//! The snapshot archive: one file holding the files of a collection as they were at one WAL
//! sequence number, each with its length and SHA-256.
//!
//! ```text
//! file     = header | manifest | body*
//! header   = magic "SXTSNAP\0" [8] | version u32 | manifest_len u64 | crc32(manifest) u32   (LE)
//! manifest = JSON (`SnapshotManifest`): collection, schema, seq, created_at, points, and per
//!            file its name, length and SHA-256
//! body     = the bytes of each file the manifest lists, in its order, back to back; nothing after
//! ```
//!
//! Our own format rather than tar, on purpose: the manifest is read and checked before any body,
//! so a reader knows what every byte must be and can name the file a flipped bit or a cut-off
//! end falls in; tar checksums only its headers, and its entries can be links or absolute paths
//! that a restore would have to refuse. The header is the same shape as every other checked file
//! of ours ([`crate::envelope`]: magic, version, length, CRC).
//!
//! This module knows nothing of collections: the engine decides which files go in (and checks
//! that a restored set is a collection). [`write`] streams the files in twice (hash, then copy
//! while checking the hash again), so a file that changes under it is an error, not a silently
//! wrong snapshot; [`SnapshotReader`] streams them out, checking each as it ends.

use std::io::{self, Read};
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::envelope::{self, io_err};
use crate::fs::{read_full, Fs};
use crate::schema::Schema;
use crate::StorageError;

/// Magic number at the start of every snapshot file.
pub const MAGIC: &[u8; 8] = b"SXTSNAP\0";
/// The snapshot format version this build writes and reads.
pub const VERSION: u32 = 1;
/// The extension of snapshot files.
pub const EXTENSION: &str = "snapshot";
/// Largest accepted manifest; a larger length field is damage, not data.
pub const MAX_MANIFEST_BYTES: u64 = 64 << 20;

const HEADER_LEN: usize = 24;
/// Bytes moved per read while hashing or copying a file.
const CHUNK: usize = 1 << 20;

/// What a snapshot holds, written before the file bodies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotManifest {
    /// The collection the snapshot was taken of.
    pub collection: String,
    /// The WAL sequence number it stands at: every write up to it is in, none after it.
    pub seq: u64,
    /// When it was taken (RFC 3339, UTC).
    pub created_at: String,
    /// Live points at `seq`.
    pub points: u64,
    /// The version of Sextant that wrote it.
    pub sextant_version: String,
    /// The collection's schema (also inside its manifest file; here so that listing snapshots
    /// reads no body).
    pub schema: Schema,
    /// The files, in the order their bodies follow.
    pub files: Vec<SnapshotFile>,
}

impl SnapshotManifest {
    /// Bytes of all file bodies.
    pub fn body_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.len).sum()
    }
}

/// One file in a snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFile {
    /// Relative path inside the collection directory (`/`-separated).
    pub name: String,
    /// Its length in bytes.
    pub len: u64,
    /// SHA-256 of its bytes, lower-case hex.
    pub sha256: String,
}

/// Where the bytes of a file to snapshot come from.
#[derive(Debug)]
pub enum Source {
    /// Bytes taken in memory (what can change after it was taken: the WAL, the manifest,
    /// tombstones).
    Bytes(Vec<u8>),
    /// An immutable file on disk, streamed.
    File(PathBuf),
}

/// A file to put in a snapshot.
#[derive(Debug)]
pub struct Entry {
    /// Its name inside the snapshot (see [`check_file_name`]).
    pub name: String,
    /// Its bytes.
    pub source: Source,
}

/// Refuses a file name a restore must not write: anything but a relative path of one to three
/// plain components made of ASCII letters, digits, `_`, `-` and `.` (not starting with `.`).
pub fn check_file_name(name: &str) -> Result<(), String> {
    let parts: Vec<&str> = name.split('/').collect();
    let plain = |p: &&str| {
        !p.is_empty()
            && !p.starts_with('.')
            && p.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    let normal = Path::new(name)
        .components()
        .all(|c| matches!(c, Component::Normal(_)));
    if (1..=3).contains(&parts.len()) && parts.iter().all(plain) && normal {
        Ok(())
    } else {
        Err(format!(
            "file name {name:?} is not allowed (a relative path of plain names)"
        ))
    }
}

/// SHA-256 and length of a stream.
#[derive(Debug, Default)]
struct Hasher {
    sha: Sha256,
    len: u64,
}

impl Hasher {
    fn update(&mut self, bytes: &[u8]) {
        self.sha.update(bytes);
        self.len += bytes.len() as u64;
    }

    fn hex(self) -> String {
        self.sha
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// Streams `source` in chunks to `each` (from memory, or read from `fs`).
fn each_chunk(
    fs: &dyn Fs,
    source: &Source,
    each: &mut dyn FnMut(&[u8]) -> Result<(), StorageError>,
) -> Result<(), StorageError> {
    match source {
        Source::Bytes(b) => b.chunks(CHUNK).try_for_each(each),
        Source::File(path) => {
            let mut r = fs.open_read(path).map_err(|e| io_err(path, e))?;
            let mut buf = vec![0u8; CHUNK];
            loop {
                let n = match r.read(&mut buf) {
                    Ok(0) => return Ok(()),
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(io_err(path, e)),
                };
                each(&buf[..n])?;
            }
        }
    }
}

/// The header and manifest bytes that start a snapshot.
fn head(manifest: &SnapshotManifest) -> Vec<u8> {
    let body = serde_json::to_vec_pretty(manifest).expect("snapshot manifest serialises");
    envelope::seal(MAGIC, VERSION, &body)
}

/// Writes a snapshot of `entries` to `path` (through `<dir>/.<name>.tmp`: written, fsynced,
/// renamed, directory fsynced, so `path` is whole or absent). `manifest` gives everything but
/// the file list, which this fills in. `progress(done, total)` counts bytes hashed plus bytes
/// copied (each file is read twice: the second read must hash the same, or the snapshot is
/// refused). Returns the manifest written.
pub fn write(
    fs: &dyn Fs,
    path: &Path,
    mut manifest: SnapshotManifest,
    entries: &[Entry],
    progress: &mut dyn FnMut(u64, u64),
) -> Result<SnapshotManifest, StorageError> {
    let source_path = |e: &Entry| match &e.source {
        Source::File(p) => p.clone(),
        Source::Bytes(_) => PathBuf::from(&e.name),
    };
    manifest.files.clear();
    for e in entries {
        check_file_name(&e.name).map_err(|reason| StorageError::Corrupt {
            path: source_path(e),
            offset: 0,
            reason,
        })?;
    }
    // Pass 1: lengths and hashes, for the manifest that precedes the bodies.
    let total_guess: u64 = entries
        .iter()
        .map(|e| match &e.source {
            Source::Bytes(b) => b.len() as u64,
            Source::File(p) => fs.file_len(p).unwrap_or(0),
        })
        .sum::<u64>()
        * 2;
    let mut done = 0u64;
    for e in entries {
        let mut h = Hasher::default();
        each_chunk(fs, &e.source, &mut |b| {
            h.update(b);
            done += b.len() as u64;
            progress(done, total_guess.max(done));
            Ok(())
        })?;
        manifest.files.push(SnapshotFile {
            name: e.name.clone(),
            len: h.len,
            sha256: h.hex(),
        });
    }
    let total = done * 2;
    let tmp = envelope::temp_path(path);
    let written = (|| {
        fs.write(&tmp, &head(&manifest))
            .map_err(|e| io_err(&tmp, e))?;
        let mut out = fs.open_log(&tmp, false).map_err(|e| io_err(&tmp, e))?;
        // Pass 2: copy, hashing again.
        for (e, f) in entries.iter().zip(&manifest.files) {
            let mut h = Hasher::default();
            each_chunk(fs, &e.source, &mut |b| {
                h.update(b);
                out.write_all(b).map_err(|e| io_err(&tmp, e))?;
                done += b.len() as u64;
                progress(done, total);
                Ok(())
            })?;
            if h.len != f.len || h.hex() != f.sha256 {
                return Err(StorageError::Corrupt {
                    path: source_path(e),
                    offset: 0,
                    reason: "the file changed while the snapshot was being written".into(),
                });
            }
        }
        out.sync_data().map_err(|e| io_err(&tmp, e))?;
        drop(out);
        fs.rename(&tmp, path).map_err(|e| io_err(path, e))?;
        envelope::sync_dir(fs, envelope::parent(path))
    })();
    if written.is_err() {
        let _ = fs.remove_file(&tmp);
    }
    written.map(|()| manifest)
}

/// Reads a snapshot front to back: the header and manifest on open, then each file in turn,
/// checked against its length and SHA-256 as it ends.
pub struct SnapshotReader {
    path: PathBuf,
    r: Box<dyn Read + Send>,
    manifest: SnapshotManifest,
    next: usize,
}

impl std::fmt::Debug for SnapshotReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SnapshotReader")
            .field("path", &self.path)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl SnapshotReader {
    /// Opens the snapshot at `path` on `fs` and checks its header and manifest.
    pub fn open(fs: &dyn Fs, path: &Path) -> Result<SnapshotReader, StorageError> {
        let r = fs.open_read(path).map_err(|e| io_err(path, e))?;
        SnapshotReader::new(path, r)
    }

    /// Reads the header and manifest from `r` (`path` names the snapshot in errors).
    pub fn new(path: &Path, mut r: Box<dyn Read + Send>) -> Result<SnapshotReader, StorageError> {
        let damaged = |part: &str, reason: String| StorageError::SnapshotDamaged {
            path: path.to_path_buf(),
            part: part.to_string(),
            reason,
        };
        // An encrypted snapshot's reader fails with `InvalidData` where its bytes fail
        // authentication: damage, in the part being read.
        let read_err = |part: &str, e: io::Error| {
            if e.kind() == io::ErrorKind::InvalidData {
                damaged(part, format!("cannot be decrypted: {e}"))
            } else {
                io_err(path, e)
            }
        };
        let mut header = [0u8; HEADER_LEN];
        let got = read_full(&mut *r, &mut header).map_err(|e| read_err("header", e))?;
        if got < HEADER_LEN {
            return Err(damaged(
                "header",
                format!("the file is {got} bytes, shorter than the {HEADER_LEN}-byte header (truncated, or not a snapshot)"),
            ));
        }
        if &header[..8] != MAGIC {
            return Err(damaged(
                "header",
                "not a Sextant snapshot (wrong magic number)".into(),
            ));
        }
        let version = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(StorageError::UnsupportedVersion {
                path: path.to_path_buf(),
                found: version,
                supported: VERSION,
            });
        }
        let len = u64::from_le_bytes(header[12..20].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(header[20..24].try_into().expect("4 bytes"));
        if len > MAX_MANIFEST_BYTES {
            return Err(damaged(
                "header",
                format!("manifest length {len} is over the {MAX_MANIFEST_BYTES}-byte limit"),
            ));
        }
        let mut body = vec![0u8; len as usize];
        let got = read_full(&mut *r, &mut body).map_err(|e| read_err("manifest", e))?;
        if got < body.len() {
            return Err(damaged(
                "manifest",
                format!("the snapshot ends {got} bytes into the {len}-byte manifest (truncated)"),
            ));
        }
        if crc32fast::hash(&body) != crc {
            return Err(damaged("manifest", "checksum mismatch".into()));
        }
        let manifest: SnapshotManifest = serde_json::from_slice(&body)
            .map_err(|e| damaged("manifest", format!("JSON does not parse: {e}")))?;
        let mut seen = std::collections::HashSet::new();
        for f in &manifest.files {
            check_file_name(&f.name).map_err(|reason| damaged("manifest", reason))?;
            if !seen.insert(f.name.as_str()) {
                return Err(damaged(
                    "manifest",
                    format!("file {:?} is listed twice", f.name),
                ));
            }
        }
        Ok(SnapshotReader {
            path: path.to_path_buf(),
            r,
            manifest,
            next: 0,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &SnapshotManifest {
        &self.manifest
    }

    /// The file [`SnapshotReader::copy_next`] reads next, if any is left.
    pub fn peek(&self) -> Option<&SnapshotFile> {
        self.manifest.files.get(self.next)
    }

    /// Streams the next file's bytes to `sink` and checks its length and SHA-256; returns the
    /// file, or `None` after the last. The bytes given to `sink` are unchecked until this
    /// returns `Ok`: on an error, throw away what the sink received.
    pub fn copy_next(
        &mut self,
        sink: &mut dyn FnMut(&[u8]) -> Result<(), StorageError>,
    ) -> Result<Option<SnapshotFile>, StorageError> {
        let Some(f) = self.manifest.files.get(self.next).cloned() else {
            return Ok(None);
        };
        self.next += 1;
        let damaged = |reason: String| StorageError::SnapshotDamaged {
            path: self.path.clone(),
            part: format!("file {}", f.name),
            reason,
        };
        let mut h = Hasher::default();
        let mut buf = vec![0u8; CHUNK.min(f.len as usize).max(1)];
        while h.len < f.len {
            let want = buf.len().min((f.len - h.len) as usize);
            let got = read_full(&mut *self.r, &mut buf[..want]).map_err(|e| {
                if e.kind() == io::ErrorKind::InvalidData {
                    damaged(format!("cannot be decrypted: {e}"))
                } else {
                    io_err(&self.path, e)
                }
            })?;
            h.update(&buf[..got]);
            if got < want {
                return Err(damaged(format!(
                    "the snapshot ends {} bytes into this {}-byte file (truncated)",
                    h.len, f.len
                )));
            }
            sink(&buf[..got])?;
        }
        if h.hex() != f.sha256 {
            return Err(damaged(
                "SHA-256 mismatch: its bytes are not those that were snapshotted".into(),
            ));
        }
        Ok(Some(f))
    }

    /// Checks that the snapshot ends after its last file (every file must have been read).
    pub fn finish(mut self) -> Result<(), StorageError> {
        if self.next < self.manifest.files.len() {
            return Err(StorageError::InvalidSequence(
                "a snapshot was finished before all its files were read".into(),
            ));
        }
        let mut extra = [0u8; 1];
        let got = read_full(&mut *self.r, &mut extra).map_err(|e| io_err(&self.path, e))?;
        if got > 0 {
            return Err(StorageError::SnapshotDamaged {
                path: self.path.clone(),
                part: "end".into(),
                reason: "bytes follow the last file the manifest lists".into(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::RealFs;

    fn manifest() -> SnapshotManifest {
        SnapshotManifest {
            collection: "c".into(),
            seq: 7,
            created_at: "2026-12-04T00:00:00Z".into(),
            points: 1,
            sextant_version: "test".into(),
            schema: Schema {
                spaces: Vec::new(),
                sparse_spaces: Vec::new(),
                payload_indexes: Vec::new(),
                tenant_key: None,
                documents: None,
                ttl: None,
            },
            files: Vec::new(),
        }
    }

    fn read_all(path: &Path) -> Result<Vec<(String, Vec<u8>)>, StorageError> {
        let mut r = SnapshotReader::open(&RealFs, path)?;
        let mut out = Vec::new();
        loop {
            let mut bytes = Vec::new();
            match r.copy_next(&mut |b| {
                bytes.extend_from_slice(b);
                Ok(())
            })? {
                Some(f) => out.push((f.name, bytes)),
                None => break,
            }
        }
        r.finish()?;
        Ok(out)
    }

    #[test]
    fn round_trip_and_damage_named_by_part() {
        let dir = tempfile::tempdir().unwrap();
        let on_disk = dir.path().join("seg.bin");
        std::fs::write(&on_disk, vec![7u8; 3000]).unwrap();
        let path = dir.path().join("s.snapshot");
        let entries = [
            Entry {
                name: "wal".into(),
                source: Source::Bytes(b"log".to_vec()),
            },
            Entry {
                name: "segments/1/points.bin".into(),
                source: Source::File(on_disk),
            },
        ];
        let m = write(&RealFs, &path, manifest(), &entries, &mut |_, _| {}).unwrap();
        assert_eq!(m.body_bytes(), 3003);
        let files = read_all(&path).unwrap();
        assert_eq!(files[0], ("wal".to_string(), b"log".to_vec()));
        assert_eq!(files[1].1, vec![7u8; 3000]);

        let good = std::fs::read(&path).unwrap();
        let body_start = good.len() - 3003;
        let err = |bytes: &[u8]| {
            std::fs::write(&path, bytes).unwrap();
            read_all(&path).unwrap_err().to_string()
        };
        let mut flipped = good.clone();
        flipped[body_start + 1000] ^= 0x10;
        let e = err(&flipped);
        assert!(
            e.contains("file segments/1/points.bin") && e.contains("SHA-256"),
            "{e}"
        );
        let e = err(&good[..good.len() - 10]);
        assert!(
            e.contains("file segments/1/points.bin") && e.contains("truncated"),
            "{e}"
        );
        let e = err(&good[..body_start - 5]);
        assert!(e.contains("manifest") && e.contains("truncated"), "{e}");
        let mut manifest_flip = good.clone();
        manifest_flip[30] ^= 1;
        assert!(err(&manifest_flip).contains("manifest: checksum"));
        assert!(err(&good[..10]).contains("header"));
        let mut longer = good.clone();
        longer.push(0);
        assert!(err(&longer).contains("end"));
    }

    #[test]
    fn names_that_could_escape_are_refused() {
        for bad in [
            "../x",
            "/etc/passwd",
            "a//b",
            ".hidden",
            "a/../b",
            "a/b/c/d",
            "",
        ] {
            assert!(check_file_name(bad).is_err(), "{bad}");
        }
        for good in ["manifest", "wal", "segments/12/vectors-0.idx"] {
            check_file_name(good).unwrap();
        }
    }
}
