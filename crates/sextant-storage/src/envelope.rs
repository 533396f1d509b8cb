//! Checked files: every small file Sextant writes (manifest, aliases, segment parts) is wrapped in
//! one envelope, and replaced atomically.
//!
//! ```text
//! file = magic [8] | version u32 | body_len u64 | crc32(body) u32 | body      (little-endian)
//! ```
//!
//! A reader checks all four before looking at the body, so a damaged or foreign file is refused
//! with its name instead of being half-read. Atomic replacement is the usual dance: write a
//! temporary file in the same directory, fsync it, rename it over the target, fsync the directory
//! (without the last step a power cut can forget the rename).

use std::path::{Path, PathBuf};

use crate::fs::Fs;
use crate::StorageError;

const HEADER_LEN: usize = 24;

/// Wraps `body` in an envelope.
pub fn seal(magic: &[u8; 8], version: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(magic);
    out.extend_from_slice(&version.to_le_bytes());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
    out.extend_from_slice(body);
    out
}

/// Checks an envelope read from `path` and returns its body.
pub fn open<'a>(
    path: &Path,
    magic: &[u8; 8],
    version: u32,
    bytes: &'a [u8],
) -> Result<&'a [u8], StorageError> {
    let corrupt = |offset: u64, reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason,
    };
    if bytes.len() < HEADER_LEN {
        return Err(corrupt(
            0,
            format!(
                "file is {} bytes, shorter than its {HEADER_LEN}-byte header",
                bytes.len()
            ),
        ));
    }
    if &bytes[..8] != magic {
        return Err(corrupt(
            0,
            format!(
                "wrong magic number (expected {:?})",
                String::from_utf8_lossy(magic).trim_end_matches('\0')
            ),
        ));
    }
    let found = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if found != version {
        return Err(StorageError::UnsupportedVersion {
            path: path.to_path_buf(),
            found,
            supported: version,
        });
    }
    let len = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
    let crc = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
    let body = &bytes[HEADER_LEN..];
    if body.len() as u64 != len {
        return Err(corrupt(
            12,
            format!("body is {} bytes, header says {len}", body.len()),
        ));
    }
    if crc32fast::hash(body) != crc {
        return Err(corrupt(HEADER_LEN as u64, "checksum mismatch".into()));
    }
    Ok(body)
}

/// Reads `path` and checks its envelope; returns the body.
pub fn read(
    fs: &dyn Fs,
    path: &Path,
    magic: &[u8; 8],
    version: u32,
) -> Result<Vec<u8>, StorageError> {
    let bytes = fs.read(path).map_err(|e| io_err(path, e))?;
    let body = open(path, magic, version, &bytes)?;
    Ok(body.to_vec())
}

/// Reads `path`, a file of any format version in `versions`; returns the version and the body.
/// Another version is refused naming the file and the newest version this build reads.
pub fn read_versions(
    fs: &dyn Fs,
    path: &Path,
    magic: &[u8; 8],
    versions: std::ops::RangeInclusive<u32>,
) -> Result<(u32, Vec<u8>), StorageError> {
    let bytes = fs.read(path).map_err(|e| io_err(path, e))?;
    let found = bytes
        .get(8..12)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
        .filter(|v| versions.contains(v))
        .unwrap_or(*versions.end());
    let body = open(path, magic, found, &bytes)?;
    Ok((found, body.to_vec()))
}

/// The temporary file [`write_atomic`] writes `path` through (in the same directory).
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Whether a directory entry is a temporary file or directory an interrupted write left
/// behind (`*.tmp`, `.*.tmp-<pid>` of older versions, `*.creating`, `.deleting-*`).
pub fn is_leftover(name: &str) -> bool {
    name.ends_with(".tmp")
        || (name.starts_with('.') && name.contains(".tmp-"))
        || name.ends_with(".creating")
        || name.starts_with(".deleting-")
}

/// Writes `bytes` to `path` durably and atomically (temp file, fsync, rename, fsync directory).
pub fn write_atomic(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    let tmp = temp_path(path);
    write_synced(fs, &tmp, bytes)?;
    fs.rename(&tmp, path).map_err(|e| io_err(path, e))?;
    sync_dir(fs, parent(path))
}

/// Creates (or truncates) `path` with `bytes` and fsyncs it (not its directory entry).
pub fn write_synced(fs: &dyn Fs, path: &Path, bytes: &[u8]) -> Result<(), StorageError> {
    fs.write_synced(path, bytes).map_err(|e| io_err(path, e))
}

/// fsyncs a directory, so renames and creations inside it are durable.
pub fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<(), StorageError> {
    fs.sync_dir(dir).map_err(|e| io_err(dir, e))
}

/// The directory holding `path`.
pub fn parent(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Wraps an I/O error with its path.
pub fn io_err(path: &Path, source: std::io::Error) -> StorageError {
    StorageError::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const M: &[u8; 8] = b"SXTTEST\0";

    #[test]
    fn round_trip_and_every_kind_of_damage() {
        let p = Path::new("x");
        let sealed = seal(M, 3, b"hello");
        assert_eq!(open(p, M, 3, &sealed).unwrap(), b"hello");
        let err = |b: &[u8]| open(p, M, 3, b).unwrap_err().to_string();
        assert!(err(&sealed[..10]).contains("shorter"));
        assert!(err(&sealed[..sealed.len() - 1]).contains("header says"));
        let mut flipped = sealed.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert!(err(&flipped).contains("checksum"));
        let mut magic = sealed.clone();
        magic[0] = b'Y';
        assert!(err(&magic).contains("magic"));
        assert!(open(p, M, 4, &sealed)
            .unwrap_err()
            .to_string()
            .contains("version 3"));
    }

    #[test]
    fn atomic_write_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let fs = crate::fs::RealFs;
        write_atomic(&fs, &p, &seal(M, 1, b"a")).unwrap();
        write_atomic(&fs, &p, &seal(M, 1, b"bb")).unwrap();
        assert_eq!(read(&fs, &p, M, 1).unwrap(), b"bb");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            1,
            "no temp left"
        );
    }
}
