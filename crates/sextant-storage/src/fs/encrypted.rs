//! [`EncryptedFs`]: an [`Fs`] that encrypts every file it writes and decrypts every file it
//! reads (the format is in [`crate::crypt`]), over any other `Fs` (the real disk, or the
//! simulated one of the crash tests). An encrypted collection opens its files through one, so
//! every file of it — WAL, manifest, segment files, tombstones — and every snapshot taken of
//! it are encrypted by the same code path, with nothing above this layer aware of it.
//!
//! - Whole files ([`Fs::write`]) are sealed in frames of up to [`crypt::MAX_FRAME`] bytes.
//! - Logs ([`Fs::open_log`]) get one frame per append; a torn last frame is cut off when the
//!   log is opened (as the WAL does with a torn record) and [`LogFile::set_len`] cuts at a
//!   frame boundary (the WAL only cuts back to the end of an acknowledged append).
//! - Files written outside the collection's directory (snapshots) carry their data key wrapped
//!   by the master key, so that the master key alone opens them.
//! - [`Fs::file_len`] is the file's size on disk (ciphertext), which is what space reports mean.
//!
//! Metadata is not encrypted: file names, sizes and directory structure stay visible.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::crypt::{self, DataKeys, FileHeader, Key, MasterKey};
use crate::fs::{read_full, Fs, LogFile};
use crate::StorageError;

/// The keys an [`EncryptedFs`] uses: the master key (to wrap snapshot keys, and to unwrap the
/// key a snapshot carries) and the collection's data keys.
#[derive(Debug, Clone)]
pub struct Keyring {
    /// The master key.
    pub master: MasterKey,
    /// The collection's data keys ([`DataKeys::none`] for a reader of snapshots).
    pub data: DataKeys,
}

/// An [`Fs`] that encrypts what it writes and decrypts what it reads (see the module docs).
#[derive(Debug)]
pub struct EncryptedFs {
    inner: Arc<dyn Fs>,
    root: PathBuf,
    keys: Arc<RwLock<Keyring>>,
    allow_plain: bool,
}

fn invalid(e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

impl EncryptedFs {
    /// The file system of the encrypted collection in `root` over `inner`. Every file it reads
    /// must be encrypted.
    pub fn new(inner: Arc<dyn Fs>, root: &Path, keys: Arc<RwLock<Keyring>>) -> EncryptedFs {
        EncryptedFs {
            inner,
            root: root.to_path_buf(),
            keys,
            allow_plain: false,
        }
    }

    /// A reader for files that may or may not be encrypted (snapshots): encrypted ones are
    /// opened with the key they carry, unwrapped by `master`; plain ones pass through. Writes
    /// are refused (it holds no data key).
    pub fn reader(inner: Arc<dyn Fs>, master: MasterKey) -> EncryptedFs {
        EncryptedFs {
            inner,
            root: PathBuf::new(),
            keys: Arc::new(RwLock::new(Keyring {
                master,
                data: DataKeys::none(),
            })),
            allow_plain: true,
        }
    }

    /// The shared keys (a rotation changes them for every handle at once).
    pub fn keys(&self) -> &Arc<RwLock<Keyring>> {
        &self.keys
    }

    fn keyring(&self) -> std::sync::RwLockReadGuard<'_, Keyring> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    fn inside(&self, path: &Path) -> bool {
        let creating = self.root.with_extension("creating");
        !self.root.as_os_str().is_empty()
            && (path.starts_with(&self.root) || path.starts_with(&creating))
    }

    /// A header (and its key) for a new file at `path`.
    fn new_header(&self, path: &Path) -> io::Result<(FileHeader, Key)> {
        let k = self.keyring();
        let g = k.data.current();
        let key = k.data.get(g).cloned().ok_or_else(|| {
            invalid(format!(
                "{} cannot be written: this handle holds no data key",
                path.display()
            ))
        })?;
        let keyblock = if self.inside(path) {
            None
        } else {
            Some(k.master.wrap(g, &key).map_err(io::Error::other)?)
        };
        let h = FileHeader::new(g, keyblock).map_err(io::Error::other)?;
        Ok((h, key))
    }

    /// The key of a file with header `h` (read from `path`).
    fn key_for(&self, path: &Path, h: &FileHeader) -> Result<Key, StorageError> {
        let k = self.keyring();
        if let Some(key) = k.data.get(h.generation) {
            return Ok(key.clone());
        }
        match &h.keyblock {
            Some(w) => k.master.unwrap(w).map_err(|source| StorageError::Key {
                path: path.to_path_buf(),
                source,
            }),
            None => Err(StorageError::Corrupt {
                path: path.to_path_buf(),
                offset: 12,
                reason: format!(
                    "encrypted with data key generation {}, which the key file does not hold (held: {:?})",
                    h.generation,
                    k.data.generations()
                ),
            }),
        }
    }

    fn decrypt(&self, path: &Path, bytes: &[u8]) -> io::Result<crypt::Decrypted> {
        crypt::decrypt(path, bytes, &|h| self.key_for(path, h)).map_err(invalid)
    }

    fn not_encrypted(&self, path: &Path) -> io::Error {
        invalid(format!(
            "{} is not encrypted, but every file of an encrypted collection must be",
            path.display()
        ))
    }
}

impl Fs for EncryptedFs {
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let bytes = self.inner.read(path)?;
        if !crypt::is_encrypted(&bytes) {
            return if self.allow_plain {
                Ok(bytes)
            } else {
                Err(self.not_encrypted(path))
            };
        }
        Ok(self.decrypt(path, &bytes)?.plain)
    }
    fn exists(&self, path: &Path) -> bool {
        self.inner.exists(path)
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.inner.is_dir(path)
    }
    fn file_len(&self, path: &Path) -> io::Result<u64> {
        self.inner.file_len(path)
    }
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.read_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn write(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let (h, key) = self.new_header(path)?;
        let enc = crypt::encrypt(&key, &h, bytes).map_err(io::Error::other)?;
        self.inner.write(path, &enc)
    }
    fn sync_file(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_file(path)
    }
    fn write_synced(&self, path: &Path, bytes: &[u8]) -> io::Result<()> {
        let (h, key) = self.new_header(path)?;
        let enc = crypt::encrypt(&key, &h, bytes).map_err(io::Error::other)?;
        self.inner.write_synced(path, &enc)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        self.inner.sync_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path)
    }
    fn open_log(&self, path: &Path, create: bool) -> io::Result<Box<dyn LogFile>> {
        let existing = match self.inner.read(path) {
            Ok(b) if !b.is_empty() => Some(b),
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => None,
            Err(e) => return Err(e),
        };
        let mut inner = self.inner.open_log(path, create)?;
        let Some(bytes) = existing else {
            let (h, key) = self.new_header(path)?;
            let head = h.encode();
            inner.write_all(&head)?;
            return Ok(Box::new(EncryptedLog {
                inner,
                key,
                file_id: h.file_id,
                header_len: head.len() as u64,
                frames: Vec::new(),
            }));
        };
        if !crypt::is_encrypted(&bytes) {
            return Err(self.not_encrypted(path));
        }
        let d = self.decrypt(path, &bytes)?;
        let key = self.key_for(path, &d.header).map_err(invalid)?;
        let header_len = d.header.encode().len() as u64;
        let mut log = EncryptedLog {
            inner,
            key,
            file_id: d.header.file_id,
            header_len,
            frames: d.frames,
        };
        if d.torn > 0 {
            // Cut the torn last frame off, so the next append follows the last intact one.
            let end = log.frames.last().map_or(header_len, |f| f.1);
            log.inner.set_len(end)?;
            log.inner.sync_data()?;
        }
        Ok(Box::new(log))
    }
    fn is_os(&self) -> bool {
        self.inner.is_os()
    }
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn Read + Send>> {
        let mut r = self.inner.open_read(path)?;
        let mut magic = [0u8; 8];
        let got = read_full(&mut *r, &mut magic)?;
        if !crypt::is_encrypted(&magic[..got]) {
            if !self.allow_plain {
                return Err(self.not_encrypted(path));
            }
            let prefix = io::Cursor::new(magic[..got].to_vec());
            return Ok(Box::new(prefix.chain(r)));
        }
        // The header: its fixed part, then the keyblock it announces.
        let mut head = magic.to_vec();
        let mut need = 36usize;
        loop {
            let at = head.len();
            head.resize(need, 0);
            let got = read_full(&mut *r, &mut head[at..])?;
            head.truncate(at + got);
            match FileHeader::decode(&head) {
                Ok(Some((h, _))) => {
                    let key = self.key_for(path, &h).map_err(invalid)?;
                    return Ok(Box::new(DecryptReader {
                        path: path.to_path_buf(),
                        r,
                        key,
                        file_id: h.file_id,
                        index: 0,
                        buf: Vec::new(),
                        pos: 0,
                    }));
                }
                Ok(None) if got > 0 => {
                    let kb = u32::from_le_bytes(
                        head.get(32..36)
                            .and_then(|b| b.try_into().ok())
                            .unwrap_or([0; 4]),
                    ) as usize;
                    need = (36 + kb + 4).max(head.len() + 1);
                }
                Ok(None) => {
                    return Err(invalid(format!(
                        "{} ends inside its encryption header",
                        path.display()
                    )))
                }
                Err(reason) => return Err(invalid(format!("{}: {reason}", path.display()))),
            }
        }
    }
}

/// An encrypted log: one frame per append.
#[derive(Debug)]
struct EncryptedLog {
    inner: Box<dyn LogFile>,
    key: Key,
    file_id: [u8; 16],
    header_len: u64,
    /// Per frame: (end in the plaintext, end in the file).
    frames: Vec<(u64, u64)>,
}

impl LogFile for EncryptedLog {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let index = self.frames.len() as u64;
        let mut out = Vec::with_capacity(bytes.len() + crypt::FRAME_OVERHEAD);
        crypt::seal_frames(&self.key, &self.file_id, index, bytes, &mut out)
            .map_err(io::Error::other)?;
        self.inner.write_all(&out)?;
        let (mut plain, mut file) = self.frames.last().copied().unwrap_or((0, self.header_len));
        let mut chunks: Vec<usize> = bytes.chunks(crypt::MAX_FRAME).map(<[u8]>::len).collect();
        if chunks.is_empty() {
            chunks.push(0);
        }
        for n in chunks {
            plain += n as u64;
            file += (n + crypt::FRAME_OVERHEAD) as u64;
            self.frames.push((plain, file));
        }
        Ok(())
    }
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        let keep = if len == 0 {
            0
        } else {
            match self.frames.iter().position(|f| f.0 == len) {
                // Frames that add no bytes end at the same offset: keep them all.
                Some(i) => self.frames.iter().rposition(|f| f.0 == len).unwrap_or(i) + 1,
                None => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!(
                        "an encrypted log is cut only at the end of an append; {len} is not one"
                    ),
                    ))
                }
            }
        };
        self.frames.truncate(keep);
        let end = self.frames.last().map_or(self.header_len, |f| f.1);
        self.inner.set_len(end)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        self.inner.sync_data()
    }
}

/// Decrypts a whole encrypted file as a stream (every frame must be intact).
struct DecryptReader {
    path: PathBuf,
    r: Box<dyn Read + Send>,
    key: Key,
    file_id: [u8; 16],
    index: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl DecryptReader {
    /// Reads and opens the next frame into `buf`; false at the end of the file.
    fn next_frame(&mut self) -> io::Result<bool> {
        let mut head = [0u8; 28];
        let got = read_full(&mut *self.r, &mut head)?;
        if got == 0 {
            return Ok(false);
        }
        let bad = |reason: String| {
            invalid(format!(
                "{}: frame {}: {reason}",
                self.path.display(),
                self.index
            ))
        };
        if got < head.len() {
            return Err(bad("the file ends inside it (truncated)".into()));
        }
        let ct_len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        if !(16..=crypt::MAX_FRAME + 16).contains(&ct_len) {
            return Err(bad(format!("length {ct_len} is not one a writer produces")));
        }
        let mut ct = vec![0u8; ct_len];
        if read_full(&mut *self.r, &mut ct)? < ct_len {
            return Err(bad("the file ends inside it (truncated)".into()));
        }
        self.buf = crypt::open_frame(&self.key, &self.file_id, self.index, &head[4..], &ct)
            .ok_or_else(|| bad("it fails authentication (altered, or damaged)".into()))?;
        self.pos = 0;
        self.index += 1;
        Ok(true)
    }
}

impl Read for DecryptReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if !self.next_frame()? {
                return Ok(0);
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::sim::{Fault, OpKind, SimFs};
    use crate::wal::{Durability, Wal};

    fn keyring() -> Arc<RwLock<Keyring>> {
        let master = MasterKey::generate().unwrap();
        let (_, data) = crypt::KeyFile::new(&master).unwrap();
        Arc::new(RwLock::new(Keyring { master, data }))
    }

    fn enc(sim: &SimFs, keys: &Arc<RwLock<Keyring>>) -> Arc<dyn Fs> {
        Arc::new(EncryptedFs::new(
            sim.handle(),
            Path::new("/c"),
            keys.clone(),
        ))
    }

    const SECRET: &[u8] = b"the planted secret payload 0123456789";

    fn contains(hay: &[u8], needle: &[u8]) -> bool {
        hay.windows(needle.len()).any(|w| w == needle)
    }

    #[test]
    fn files_are_encrypted_on_disk_and_read_back_plain() {
        let sim = SimFs::new();
        sim.create_dir_all(Path::new("/c")).unwrap();
        let keys = keyring();
        let fs = enc(&sim, &keys);
        let mut body = SECRET.to_vec();
        body.extend((0..3 * crypt::MAX_FRAME).map(|i| (i % 7) as u8));
        fs.write_synced(Path::new("/c/f"), &body).unwrap();
        assert_eq!(fs.read(Path::new("/c/f")).unwrap(), body);
        let raw = sim.read(Path::new("/c/f")).unwrap();
        assert!(crypt::is_encrypted(&raw));
        assert!(!contains(&raw, SECRET));
        let mut streamed = Vec::new();
        fs.open_read(Path::new("/c/f"))
            .unwrap()
            .read_to_end(&mut streamed)
            .unwrap();
        assert_eq!(streamed, body);
        // A plain file in an encrypted collection is refused, by read and by open_read.
        sim.write(Path::new("/c/plain"), SECRET).unwrap();
        assert!(fs.read(Path::new("/c/plain")).is_err());
        assert!(fs.open_read(Path::new("/c/plain")).is_err());
        // Another collection's keys cannot read it.
        let other = enc(&sim, &keyring());
        let e = other.read(Path::new("/c/f")).unwrap_err().to_string();
        assert!(
            e.contains("generation") || e.contains("authentication"),
            "{e}"
        );
    }

    #[test]
    fn files_outside_the_collection_open_with_the_master_key_alone() {
        let sim = SimFs::new();
        let keys = keyring();
        let fs = enc(&sim, &keys);
        fs.write(Path::new("/snap"), SECRET).unwrap();
        let mut log = fs.open_log(Path::new("/snap"), false).unwrap();
        log.write_all(b" and more").unwrap();
        drop(log);
        let master = keys.read().unwrap().master.clone();
        let reader = EncryptedFs::reader(sim.handle(), master);
        let mut want = SECRET.to_vec();
        want.extend_from_slice(b" and more");
        assert_eq!(reader.read(Path::new("/snap")).unwrap(), want);
        let mut streamed = Vec::new();
        reader
            .open_read(Path::new("/snap"))
            .unwrap()
            .read_to_end(&mut streamed)
            .unwrap();
        assert_eq!(streamed, want);
        // Plain files pass through a reader; another master key is a clear error.
        sim.write(Path::new("/plain"), b"plain").unwrap();
        assert_eq!(reader.read(Path::new("/plain")).unwrap(), b"plain");
        let wrong = EncryptedFs::reader(sim.handle(), MasterKey::generate().unwrap());
        let e = wrong.read(Path::new("/snap")).unwrap_err();
        let mut text = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            text.push_str(&format!(": {s}"));
            src = s.source();
        }
        assert!(text.contains("master key"), "{text}");
        assert!(
            wrong.write(Path::new("/x"), b"x").is_err(),
            "a reader writes nothing"
        );
        // A flipped bit inside a streamed file is an error, never other bytes.
        let mut raw = sim.read(Path::new("/snap")).unwrap();
        let n = raw.len();
        raw[n - 20] ^= 1;
        sim.write(Path::new("/snap"), &raw).unwrap();
        let mut out = Vec::new();
        let e = reader
            .open_read(Path::new("/snap"))
            .unwrap()
            .read_to_end(&mut out)
            .unwrap_err();
        assert!(e.to_string().contains("authentication"), "{e}");
    }

    fn records(fs: Arc<dyn Fs>) -> Vec<(u64, Vec<u8>)> {
        let (_, rec) = Wal::open_in(fs, Path::new("/c/wal"), Durability::Always).unwrap();
        rec.records
            .into_iter()
            .map(|r| (r.seq, r.payload))
            .collect()
    }

    #[test]
    fn an_encrypted_wal_survives_power_cuts_at_every_operation() {
        let keys = keyring();
        // Count the operations of the whole run once, then cut the power before each.
        let run = |sim: &SimFs| -> Vec<u64> {
            let fs = enc(sim, &keys);
            let mut acked = Vec::new();
            let Ok(mut wal) = Wal::create_in(fs, Path::new("/c/wal"), Durability::Always) else {
                return acked;
            };
            for seq in 1..=6u64 {
                let mut payload = SECRET.to_vec();
                payload.extend_from_slice(&seq.to_le_bytes());
                if wal.append(seq, &payload).is_ok() {
                    acked.push(seq);
                }
            }
            acked
        };
        let full = SimFs::new();
        full.create_dir_all(Path::new("/c")).unwrap();
        full.sync_dir(Path::new("/")).unwrap();
        let base_ops = full.ops();
        assert_eq!(run(&full), (1..=6).collect::<Vec<_>>());
        let total = full.ops();
        for at in base_ops..=total {
            for seed in [0, 1, 2, 3] {
                let sim = SimFs::new();
                sim.create_dir_all(Path::new("/c")).unwrap();
                sim.sync_dir(Path::new("/")).unwrap();
                sim.crash_at(at, seed);
                let acked = run(&sim);
                let after = sim.after_crash();
                if !after.exists(Path::new("/c/wal")) {
                    assert!(acked.is_empty(), "cut at {at}: acked {acked:?} but no log");
                    continue;
                }
                let got: Vec<u64> = records(enc(&after, &keys)).iter().map(|r| r.0).collect();
                assert!(
                    got.starts_with(&acked) && got.len() <= 6,
                    "cut at {at} seed {seed}: acknowledged {acked:?}, recovered {got:?}"
                );
                assert!(!contains(&after.read(Path::new("/c/wal")).unwrap(), SECRET));
                // The recovered log takes new appends after its last intact record.
                let fs = enc(&after, &keys);
                let (mut wal, _) =
                    Wal::open_in(fs.clone(), Path::new("/c/wal"), Durability::Always).unwrap();
                wal.append(100, b"next").unwrap();
                drop(wal);
                let again = records(fs);
                assert_eq!(again.last().unwrap(), &(100, b"next".to_vec()));
            }
        }
    }

    #[test]
    fn a_failed_append_is_cut_back_and_numbering_goes_on() {
        let sim = SimFs::new();
        sim.create_dir_all(Path::new("/c")).unwrap();
        sim.sync_dir(Path::new("/")).unwrap();
        let keys = keyring();
        let fs = enc(&sim, &keys);
        let mut wal = Wal::create_in(fs.clone(), Path::new("/c/wal"), Durability::Always).unwrap();
        wal.append(1, b"one").unwrap();
        let mut armed = true;
        sim.fail_when(move |op| {
            let hit = armed && op.kind == OpKind::SyncFile;
            armed &= !hit;
            hit.then_some(Fault::Eio)
        });
        assert!(wal.append(2, b"two").is_err());
        wal.append(3, b"three").unwrap();
        drop(wal);
        let want = vec![(1, b"one".to_vec()), (3, b"three".to_vec())];
        assert_eq!(records(enc(&sim.restart(), &keys)), want);
        assert_eq!(records(enc(&sim.power_loss(0), &keys)), want);
    }
}
