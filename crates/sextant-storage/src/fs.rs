//! The file-system layer: every file operation of the storage engine and of the engine's write
//! paths (WAL, segments, manifest, tombstones, aliases, collection create/delete) goes through
//! the [`Fs`] trait, so that tests can run the whole engine on a simulated disk.
//!
//! - [`RealFs`] (the default, [`real`]) is a thin pass-through to `std::fs`.
//! - [`sim::SimFs`] (feature `testing`) keeps files and directories in memory, fails chosen
//!   operations on demand (EIO, ENOSPC, a failed fsync) and simulates power loss: it tracks
//!   what is *durable* apart from what is merely written, where only an fsync of a file makes
//!   its data durable and only an fsync of a directory makes the creation, rename or removal
//!   of its entries durable. A power cut keeps the durable state and nothing else.
//!
//! The trait is path-based and coarse (one call writes a whole file) because the engine writes
//! small files whole; the one file written piece by piece, the WAL, gets a [`LogFile`] handle.
//! Files used in place (on-disk vectors, index files) are opened with [`Fs::map`], which only
//! the real file system answers with a memory mapping.
//! The engine resolves its `Arc<dyn Fs>` once per collection; a WAL append is one dynamic call
//! to `write_all` and one to `sync_data`, nothing next to the fdatasync itself.

use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::Arc;

/// The file operations Sextant's write and recovery paths use.
pub trait Fs: Send + Sync + Debug {
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    /// Whether `path` names a file or directory.
    fn exists(&self, path: &Path) -> bool;
    /// Whether `path` names a directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// A file's length in bytes.
    fn file_len(&self, path: &Path) -> io::Result<u64>;
    /// The names in a directory, sorted.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Creates a directory and its missing parents (not durable until the parents are synced).
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Creates or truncates `path` and writes `bytes` (not durable until synced).
    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()>;
    /// fsyncs a file's data and metadata.
    fn sync_file(&self, path: &Path) -> io::Result<()>;
    /// Creates or truncates `path`, writes `bytes` and fsyncs it.
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        self.write(path, bytes)?;
        self.sync_file(path)
    }
    /// fsyncs a directory, making the creations, renames and removals of its entries durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Renames `from` to `to`, replacing a file (or an empty directory) at `to`.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes a directory and everything in it.
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Opens a file for appending (creating it when `create`), positioned at its end.
    fn open_log(&self, path: &Path, create: bool) -> io::Result<Box<dyn LogFile>>;
    /// Whether paths are real operating-system paths (so the data directory can be `flock`ed).
    fn is_os(&self) -> bool {
        false
    }
    /// Opens a file for reading from its start, for files read in pieces (snapshots, which can
    /// be larger than memory). The default reads the whole file at once.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(io::Cursor::new(self.read(path)?)))
    }
    /// Maps a file into memory read-only, for files used in place (on-disk vectors); `None`
    /// where the file system has no plain file to map (simulated or encrypted), and the caller
    /// reads the file whole instead.
    fn map(&self, path: &Path) -> io::Result<Option<sextant_index::SharedBytes>> {
        let _ = path;
        Ok(None)
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
pub fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A file written by appending: the WAL.
pub trait LogFile: Send + Debug {
    /// Writes `bytes` at the current end.
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Cuts (or extends) the file to `len` bytes; later writes go to the new end.
    fn set_len(&mut self, len: u64) -> io::Result<()>;
    /// fdatasyncs the file.
    fn sync_data(&mut self) -> io::Result<()>;
}

/// The real file system (`std::fs`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

/// The real file system as the shared handle the engine keeps.
pub fn real() -> Arc<dyn Fs> {
    Arc::new(RealFs)
}

impl Fs for RealFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        std::fs::metadata(path).map(|m| m.len())
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for e in std::fs::read_dir(path)? {
            names.push(e?.file_name().to_string_lossy().into_owned());
        }
        names.sort();
        Ok(names)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        std::fs::write(path, bytes)
    }
    fn sync_file(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        f.write_all(bytes)?;
        f.sync_all()
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir_all(path)
    }
    fn open_log(&self, path: &Path, create: bool) -> io::Result<Box<dyn LogFile>> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(path)?;
        file.seek(SeekFrom::End(0))?;
        Ok(Box::new(RealLog { file }))
    }
    fn is_os(&self) -> bool {
        true
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(File::open(path)?))
    }
    #[allow(unsafe_code)]
    fn map(&self, path: &Path) -> io::Result<Option<sextant_index::SharedBytes>> {
        let file = File::open(path)?;
        if file.metadata()?.len() == 0 {
            return Ok(None);
        }
        // SAFETY: segment files are written once (temp directory, fsync, rename) and never
        // modified in place, and removing a mapped file leaves the mapping valid. Another
        // process truncating the file under us would fault, as with any mapped database file.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Some(std::sync::Arc::new(map)))
    }
}

#[derive(Debug)]
struct RealLog {
    file: File,
}

impl LogFile for RealLog {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        self.file.seek(SeekFrom::Start(len)).map(|_| ())
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.file.sync_data()
    }
}

pub mod encrypted;

#[cfg(any(test, feature = "testing"))]
pub mod sim;
