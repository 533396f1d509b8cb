//! Encryption at rest: keys, how data keys are wrapped, and the encrypted file format. Pure
//! byte formats; [`crate::fs::encrypted`] applies them to every file of a collection.
//!
//! **Keys (envelope encryption).** A *master key* (32 bytes) is the user's: it comes from a key
//! file or an environment variable and is never written under the data directory. Each
//! encrypted collection has its own *data keys* (32 random bytes each, numbered by
//! *generation*), stored only wrapped — encrypted and authenticated under the master key — in
//! the collection's [`KEYS_FILE`]. Rotating the master key rewraps that small file and
//! rewrites no data; rotating the data key starts a new generation that new files use, and
//! the old one is dropped once no file uses it.
//!
//! **Cipher.** XChaCha20-Poly1305 (RustCrypto's `chacha20poly1305`): authenticated, and its
//! 192-bit nonces are drawn at random for every frame, so no counter has to survive a crash
//! or a log being cut back (a reused nonce under one key would break both secrecy and
//! integrity; at 192 bits random ones never collide).
//!
//! **Encrypted file.**
//! ```text
//! file   = header frame*
//! header = magic "SXTCRYP\0" [8] | version u32 | generation u32 | file_id [16]
//!          | keyblock_len u32 | keyblock [keyblock_len] | crc32(everything before) u32
//! frame  = ct_len u32 | nonce [24] | ciphertext [ct_len]        (ct_len = plaintext + 16-byte tag)
//! AAD(frame i) = file_id | i as u64                              (little-endian throughout)
//! ```
//! A file's plaintext is its frames' plaintexts back to back; a frame holds at most
//! [`MAX_FRAME`] bytes. The AAD ties each frame to its file and position, so frames cannot be
//! moved, dropped from the middle or spliced between files unnoticed. A file written whole
//! gets as many frames as its size needs; a log (the WAL) gets one frame per append, so a
//! crash tears at most the last frame — which [`decrypt`] cuts off exactly as the WAL cuts off a
//! torn record (a frame cut short, a zero-filled tail, or a last frame that fails
//! authentication); damage before the last frame is an error naming the offset.
//!
//! The *keyblock* (JSON of a [`WrappedKey`]) is empty for files inside a collection, whose
//! keys are in its key file; a file written outside it (a snapshot) carries its data key,
//! wrapped by the master key, so that the master key alone restores it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use zeroize::Zeroize;

use crate::envelope;
use crate::fs::Fs;
use crate::StorageError;

/// Magic number at the start of every encrypted file.
pub const MAGIC: &[u8; 8] = b"SXTCRYP\0";
/// The encrypted-file format version this build writes and reads.
pub const VERSION: u32 = 1;
/// The file in an encrypted collection's directory that holds its wrapped data keys (the one
/// file there that is not encrypted: it holds nothing but wrapped keys).
pub const KEYS_FILE: &str = "keys";
/// The cipher's name, as the key file records it.
pub const CIPHER: &str = "xchacha20-poly1305";
/// Largest plaintext of one frame.
pub const MAX_FRAME: usize = 1 << 20;
/// Bytes of a frame around its plaintext: length, nonce, tag.
pub const FRAME_OVERHEAD: usize = 4 + NONCE_LEN + TAG_LEN;

const KEYS_MAGIC: &[u8; 8] = b"SXTKEYS\0";
const KEYS_VERSION: u32 = 1;
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
const FIXED_HEADER: usize = 8 + 4 + 4 + 16 + 4;
/// Largest keyblock; a larger length field is damage.
const MAX_KEYBLOCK: usize = 4096;
/// Longest encrypted-file header: reading this many bytes from a file's start is enough for
/// [`FileHeader::decode`].
pub const MAX_HEADER_LEN: usize = FIXED_HEADER + MAX_KEYBLOCK + 4;

/// The first bytes of the file at `path` on `fs`, as many as an encrypted-file header can
/// take (fewer when the file is shorter).
pub fn read_header(fs: &dyn Fs, path: &Path) -> std::io::Result<Vec<u8>> {
    let mut r = fs.open_read(path)?;
    let mut head = vec![0u8; MAX_HEADER_LEN];
    let got = crate::fs::read_full(&mut *r, &mut head)?;
    head.truncate(got);
    Ok(head)
}

/// Fills `buf` from the operating system's random source.
fn random(buf: &mut [u8]) -> Result<(), KeyError> {
    getrandom::getrandom(buf).map_err(|e| KeyError::Random(e.to_string()))
}

/// A 256-bit key; zeroed when dropped, never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; 32]);

impl Drop for Key {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A new key from the operating system's random source.
    pub fn random() -> Result<Key, KeyError> {
        let mut k = [0u8; 32];
        random(&mut k)?;
        Ok(Key(k))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

/// Errors of keys: parsing one, unwrapping a data key, drawing random bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not a key.
    #[error("not a master key: {0} (expected 64 hexadecimal digits, e.g. from `openssl rand -hex 32`, or a file of exactly 32 bytes)")]
    Malformed(String),
    /// The data keys were wrapped by another master key than the one given.
    #[error(
        "the data keys are wrapped by master key {wrapped_by}, but the master key given is {given}"
    )]
    OtherMaster {
        /// Id of the master key that wrapped them.
        wrapped_by: String,
        /// Id of the key given.
        given: String,
    },
    /// A wrapped key fails authentication under the master key with the right id (it was
    /// altered).
    #[error("data key generation {0} fails authentication under the master key (the key file was altered)")]
    Unwrap(u32),
    /// The operating system's random source failed.
    #[error("the operating system's random source failed: {0}")]
    Random(String),
}

/// The user's key that wraps every data key. Identified by [`MasterKey::id`], a hash that
/// tells keys apart without revealing them.
#[derive(Clone)]
pub struct MasterKey {
    key: Key,
    id: String,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey({})", self.id)
    }
}

impl MasterKey {
    /// The master key of these 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        let mut h = Sha256::new();
        h.update(b"sextant master key id v1\0");
        h.update(bytes);
        let id = hex(&h.finalize()[..8]);
        MasterKey {
            key: Key(bytes),
            id,
        }
    }

    /// A key as given by a user: 64 hexadecimal digits (surrounding white space ignored), or
    /// exactly 32 raw bytes (a key file made with `head -c 32 /dev/urandom`).
    pub fn parse(text: &[u8]) -> Result<MasterKey, KeyError> {
        let trimmed = std::str::from_utf8(text).map(str::trim).ok();
        if let Some(t) = trimmed.filter(|t| t.len() == 64) {
            let mut k = [0u8; 32];
            for (i, b) in k.iter_mut().enumerate() {
                *b = u8::from_str_radix(&t[2 * i..2 * i + 2], 16)
                    .map_err(|_| KeyError::Malformed("a character is not a hex digit".into()))?;
            }
            return Ok(MasterKey::from_bytes(k));
        }
        if text.len() == 32 {
            let mut k = [0u8; 32];
            k.copy_from_slice(text);
            return Ok(MasterKey::from_bytes(k));
        }
        Err(KeyError::Malformed(format!(
            "{} bytes ({} after trimming white space)",
            text.len(),
            trimmed.map_or(text.len(), str::len)
        )))
    }

    /// A new random master key.
    pub fn generate() -> Result<MasterKey, KeyError> {
        let k = Key::random()?;
        Ok(MasterKey::from_bytes(k.0))
    }

    /// The key as 64 hexadecimal digits (to write a new key file).
    pub fn to_hex(&self) -> String {
        hex(&self.key.0)
    }

    /// The key's id: 16 hex digits of a hash of it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Wraps data key `key` of `generation` under this master key.
    pub fn wrap(&self, generation: u32, key: &Key) -> Result<WrappedKey, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        let aad = wrap_aad(generation);
        let ct = self
            .key
            .cipher()
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &key.0,
                    aad: &aad,
                },
            )
            .expect("encrypting 32 bytes cannot fail");
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        Ok(WrappedKey {
            generation,
            master_key_id: self.id.clone(),
            wrapped: hex(&out),
        })
    }

    /// Unwraps a data key wrapped by [`MasterKey::wrap`].
    pub fn unwrap(&self, w: &WrappedKey) -> Result<Key, KeyError> {
        if w.master_key_id != self.id {
            return Err(KeyError::OtherMaster {
                wrapped_by: w.master_key_id.clone(),
                given: self.id.clone(),
            });
        }
        let bytes = unhex(&w.wrapped).ok_or(KeyError::Unwrap(w.generation))?;
        if bytes.len() != NONCE_LEN + 32 + TAG_LEN {
            return Err(KeyError::Unwrap(w.generation));
        }
        let aad = wrap_aad(w.generation);
        let mut plain = self
            .key
            .cipher()
            .decrypt(
                XNonce::from_slice(&bytes[..NONCE_LEN]),
                Payload {
                    msg: &bytes[NONCE_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| KeyError::Unwrap(w.generation))?;
        let mut k = [0u8; 32];
        k.copy_from_slice(&plain);
        plain.zeroize();
        Ok(Key(k))
    }
}

fn wrap_aad(generation: u32) -> Vec<u8> {
    let mut aad = b"sextant data key v1\0".to_vec();
    aad.extend_from_slice(&generation.to_le_bytes());
    aad
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// A data key wrapped by a master key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// Its generation.
    pub generation: u32,
    /// The id of the master key that wrapped it.
    pub master_key_id: String,
    /// Nonce and ciphertext, in hex.
    pub wrapped: String,
}

/// A collection's key file: its data keys, wrapped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    /// The cipher ([`CIPHER`]).
    pub cipher: String,
    /// The generation new files are written with.
    pub current: u32,
    /// Every generation some file may still use.
    pub keys: Vec<WrappedKey>,
}

impl KeyFile {
    /// A key file holding one new data key (generation 1) wrapped by `master`; returns it and
    /// the unwrapped keys.
    pub fn new(master: &MasterKey) -> Result<(KeyFile, DataKeys), KeyError> {
        let key = Key::random()?;
        let file = KeyFile {
            cipher: CIPHER.into(),
            current: 1,
            keys: vec![master.wrap(1, &key)?],
        };
        let mut keys = BTreeMap::new();
        keys.insert(1, key);
        Ok((file, DataKeys { current: 1, keys }))
    }

    /// The id of the master key that wrapped the keys.
    pub fn master_key_id(&self) -> &str {
        self.keys
            .first()
            .map(|k| k.master_key_id.as_str())
            .unwrap_or("")
    }

    /// Unwraps every data key with `master`.
    pub fn unwrap(&self, master: &MasterKey) -> Result<DataKeys, KeyError> {
        let mut keys = BTreeMap::new();
        for w in &self.keys {
            keys.insert(w.generation, master.unwrap(w)?);
        }
        Ok(DataKeys {
            current: self.current,
            keys,
        })
    }

    /// The key file of `keys`, wrapped by `master`.
    pub fn wrap(keys: &DataKeys, master: &MasterKey) -> Result<KeyFile, KeyError> {
        let mut wrapped = Vec::new();
        for (&g, k) in &keys.keys {
            wrapped.push(master.wrap(g, k)?);
        }
        Ok(KeyFile {
            cipher: CIPHER.into(),
            current: keys.current,
            keys: wrapped,
        })
    }

    /// Reads and checks the key file at `path`.
    pub fn read(fs: &dyn Fs, path: &Path) -> Result<KeyFile, StorageError> {
        let body = envelope::read(fs, path, KEYS_MAGIC, KEYS_VERSION)?;
        let f: KeyFile = serde_json::from_slice(&body).map_err(|e| StorageError::Corrupt {
            path: path.to_path_buf(),
            offset: 24,
            reason: format!("key file JSON does not parse: {e}"),
        })?;
        let bad = |reason: String| StorageError::Corrupt {
            path: path.to_path_buf(),
            offset: 24,
            reason,
        };
        if f.cipher != CIPHER {
            return Err(bad(format!(
                "cipher {:?} is not one this build knows ({CIPHER})",
                f.cipher
            )));
        }
        if !f.keys.iter().any(|k| k.generation == f.current) {
            return Err(bad(format!(
                "the current data key generation {} is not in the file",
                f.current
            )));
        }
        if f.keys.iter().any(|k| k.master_key_id != f.master_key_id()) {
            return Err(bad(
                "the data keys are wrapped by different master keys".into()
            ));
        }
        Ok(f)
    }

    /// Writes the key file to `path` durably and atomically.
    pub fn write(&self, fs: &dyn Fs, path: &Path) -> Result<(), StorageError> {
        let body = serde_json::to_vec_pretty(self).expect("a key file serialises");
        envelope::write_atomic(fs, path, &envelope::seal(KEYS_MAGIC, KEYS_VERSION, &body))
    }
}

/// A collection's unwrapped data keys by generation, and the one new files use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeys {
    current: u32,
    keys: BTreeMap<u32, Key>,
}

impl DataKeys {
    /// No keys (a reader that only opens files carrying their own key).
    pub fn none() -> DataKeys {
        DataKeys {
            current: 0,
            keys: BTreeMap::new(),
        }
    }

    /// The keys of one generation.
    pub fn single(generation: u32, key: Key) -> DataKeys {
        DataKeys {
            current: generation,
            keys: BTreeMap::from([(generation, key)]),
        }
    }

    /// The generation new files use (0 when there is none).
    pub fn current(&self) -> u32 {
        self.current
    }

    /// The generations held.
    pub fn generations(&self) -> Vec<u32> {
        self.keys.keys().copied().collect()
    }

    /// The key of `generation`.
    pub fn get(&self, generation: u32) -> Option<&Key> {
        self.keys.get(&generation)
    }

    /// Adds a new random key and makes it current; returns its generation.
    pub fn rotate(&mut self) -> Result<u32, KeyError> {
        let g = self.keys.keys().next_back().copied().unwrap_or(0) + 1;
        self.keys.insert(g, Key::random()?);
        self.current = g;
        Ok(g)
    }

    /// Drops every generation but the current one.
    pub fn retain_current(&mut self) {
        let c = self.current;
        self.keys.retain(|&g, _| g == c);
    }
}

/// The header of an encrypted file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    /// The data key generation its frames are sealed with.
    pub generation: u32,
    /// Random, per file: part of every frame's AAD.
    pub file_id: [u8; 16],
    /// The data key, wrapped, for files outside a collection (snapshots).
    pub keyblock: Option<WrappedKey>,
}

impl FileHeader {
    /// A header for a new file of `generation`.
    pub fn new(generation: u32, keyblock: Option<WrappedKey>) -> Result<FileHeader, KeyError> {
        let mut file_id = [0u8; 16];
        random(&mut file_id)?;
        Ok(FileHeader {
            generation,
            file_id,
            keyblock,
        })
    }

    /// The header's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let kb = self
            .keyblock
            .as_ref()
            .map(|k| serde_json::to_vec(k).expect("a wrapped key serialises"))
            .unwrap_or_default();
        let mut out = Vec::with_capacity(FIXED_HEADER + kb.len() + 4);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&self.file_id);
        out.extend_from_slice(&(kb.len() as u32).to_le_bytes());
        out.extend_from_slice(&kb);
        out.extend_from_slice(&crc32fast::hash(&out).to_le_bytes());
        out
    }

    /// Parses a header from the start of `bytes`: `Ok(None)` if `bytes` is too short to hold
    /// it, else the header and its length. `Err` names what is wrong.
    pub fn decode(bytes: &[u8]) -> Result<Option<(FileHeader, usize)>, String> {
        if bytes.len() < 8 {
            return Ok(None);
        }
        if !is_encrypted(bytes) {
            return Err("not an encrypted Sextant file (wrong magic number)".into());
        }
        if bytes.len() < FIXED_HEADER {
            return Ok(None);
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4"));
        let version = u32_at(8);
        if version != VERSION {
            return Err(format!(
                "encrypted-file format version {version}; this build reads version {VERSION}"
            ));
        }
        let generation = u32_at(12);
        let file_id: [u8; 16] = bytes[16..32].try_into().expect("16 bytes");
        let kb_len = u32_at(32) as usize;
        if kb_len > MAX_KEYBLOCK {
            return Err(format!("keyblock length {kb_len} is over the limit"));
        }
        let end = FIXED_HEADER + kb_len + 4;
        if bytes.len() < end {
            return Ok(None);
        }
        if crc32fast::hash(&bytes[..end - 4]) != u32_at(end - 4) {
            return Err("encryption header checksum mismatch".into());
        }
        let keyblock = if kb_len == 0 {
            None
        } else {
            Some(
                serde_json::from_slice(&bytes[FIXED_HEADER..FIXED_HEADER + kb_len])
                    .map_err(|e| format!("keyblock does not parse: {e}"))?,
            )
        };
        Ok(Some((
            FileHeader {
                generation,
                file_id,
                keyblock,
            },
            end,
        )))
    }
}

/// Whether `bytes` start like an encrypted file.
pub fn is_encrypted(bytes: &[u8]) -> bool {
    bytes.len() >= 8 && &bytes[..8] == MAGIC
}

fn frame_aad(file_id: &[u8; 16], index: u64) -> [u8; 24] {
    let mut aad = [0u8; 24];
    aad[..16].copy_from_slice(file_id);
    aad[16..].copy_from_slice(&index.to_le_bytes());
    aad
}

/// Seals frames `index..` of the file `file_id` holding `plain` (split at [`MAX_FRAME`]) and
/// appends them to `out`; returns the number of frames (at least one, even for no bytes).
pub fn seal_frames(
    key: &Key,
    file_id: &[u8; 16],
    index: u64,
    plain: &[u8],
    out: &mut Vec<u8>,
) -> Result<u64, KeyError> {
    let cipher = key.cipher();
    let mut n = 0u64;
    let mut chunks: Vec<&[u8]> = plain.chunks(MAX_FRAME).collect();
    if chunks.is_empty() {
        chunks.push(&[]);
    }
    for chunk in chunks {
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        let aad = frame_aad(file_id, index + n);
        let ct = cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: chunk,
                    aad: &aad,
                },
            )
            .expect("encrypting a frame cannot fail");
        out.extend_from_slice(&(ct.len() as u32).to_le_bytes());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ct);
        n += 1;
    }
    Ok(n)
}

/// A whole file, encrypted: `header` then `plain` in frames.
pub fn encrypt(key: &Key, header: &FileHeader, plain: &[u8]) -> Result<Vec<u8>, KeyError> {
    let mut out = header.encode();
    out.reserve(plain.len() + plain.len().div_ceil(MAX_FRAME).max(1) * FRAME_OVERHEAD);
    seal_frames(key, &header.file_id, 0, plain, &mut out)?;
    Ok(out)
}

/// What [`decrypt`] found.
#[derive(Debug)]
pub struct Decrypted {
    /// The header.
    pub header: FileHeader,
    /// The plaintext of the intact frames.
    pub plain: Vec<u8>,
    /// Per intact frame: (end in the plaintext, end in the file).
    pub frames: Vec<(u64, u64)>,
    /// Bytes after the last intact frame (a torn tail), 0 for a whole file.
    pub torn: u64,
}

/// Opens frame `index` of `file_id`; `None` if it fails authentication.
pub fn open_frame(
    key: &Key,
    file_id: &[u8; 16],
    index: u64,
    nonce: &[u8],
    ct: &[u8],
) -> Option<Vec<u8>> {
    let aad = frame_aad(file_id, index);
    key.cipher()
        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
        .ok()
}

/// Where a frame starting at `at` ends, from its length field: `Ok(None)` when the file ends
/// before the frame does (a torn tail); `Err` for a length no writer produces.
pub fn frame_end(bytes: &[u8], at: usize) -> Result<Option<usize>, String> {
    let rest = &bytes[at..];
    if rest.len() < 4 + NONCE_LEN {
        return Ok(None);
    }
    let ct_len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    if !(TAG_LEN..=MAX_FRAME + TAG_LEN).contains(&ct_len) {
        return Err(format!(
            "frame length {ct_len} is not one a writer produces"
        ));
    }
    let end = at + 4 + NONCE_LEN + ct_len;
    Ok((end <= bytes.len()).then_some(end))
}

/// Decrypts an encrypted file read from `path`, with the key `key_for` gives for its header.
/// A torn tail (see the module docs) is cut off and counted; other damage is an error naming
/// the offset.
pub fn decrypt(
    path: &Path,
    bytes: &[u8],
    key_for: &dyn Fn(&FileHeader) -> Result<Key, StorageError>,
) -> Result<Decrypted, StorageError> {
    let corrupt = |offset: usize, reason: String| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason,
    };
    let (header, mut at) = match FileHeader::decode(bytes) {
        Ok(Some(h)) => h,
        Ok(None) => {
            return Err(corrupt(
                0,
                format!(
                    "the file is {} bytes, shorter than its encryption header",
                    bytes.len()
                ),
            ))
        }
        Err(reason) => return Err(corrupt(0, reason)),
    };
    let key = key_for(&header)?;
    let mut plain = Vec::with_capacity(bytes.len().saturating_sub(at));
    let mut frames = Vec::new();
    let mut index = 0u64;
    while at < bytes.len() {
        if bytes[at..].iter().all(|&b| b == 0) {
            break; // a zero-filled tail: space allocated by a write that never landed
        }
        let end = match frame_end(bytes, at) {
            Ok(Some(end)) => end,
            Ok(None) => break, // a frame cut short
            Err(reason) => return Err(corrupt(at, reason)),
        };
        let nonce = &bytes[at + 4..at + 4 + NONCE_LEN];
        let ct = &bytes[at + 4 + NONCE_LEN..end];
        match open_frame(&key, &header.file_id, index, nonce, ct) {
            Some(p) => plain.extend_from_slice(&p),
            None if end == bytes.len() => break, // the last frame was being written
            None => {
                return Err(corrupt(
                    at,
                    format!("frame {index} fails authentication before the end of the file (altered, or damaged)"),
                ))
            }
        }
        at = end;
        index += 1;
        frames.push((plain.len() as u64, at as u64));
    }
    Ok(Decrypted {
        header,
        plain,
        frames,
        torn: (bytes.len() - at) as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(k: &Key) -> impl Fn(&FileHeader) -> Result<Key, StorageError> + '_ {
        move |_| Ok(k.clone())
    }

    #[test]
    fn master_keys_parse_from_hex_or_raw_bytes_and_nothing_else() {
        let hex64 = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
        let a = MasterKey::parse(format!("  {hex64}\n").as_bytes()).unwrap();
        let b = MasterKey::parse(&a.key.0).unwrap();
        assert_eq!(a.id(), b.id());
        assert_eq!(a.to_hex(), hex64);
        assert_eq!(a.id().len(), 16);
        assert!(!hex64.contains(a.id()), "the id is not the key");
        for bad in [
            &b"short"[..],
            &[b'g'; 64][..],
            &[0u8; 31][..],
            &[0u8; 33][..],
        ] {
            assert!(matches!(MasterKey::parse(bad), Err(KeyError::Malformed(_))));
        }
        assert_ne!(MasterKey::generate().unwrap().id(), a.id());
    }

    #[test]
    fn data_keys_unwrap_only_under_their_master_key() {
        let m1 = MasterKey::generate().unwrap();
        let m2 = MasterKey::generate().unwrap();
        let (file, keys) = KeyFile::new(&m1).unwrap();
        assert_eq!(file.unwrap(&m1).unwrap(), keys);
        assert!(matches!(
            file.unwrap(&m2),
            Err(KeyError::OtherMaster { .. })
        ));
        // A key of the same id that is not the key (a forged id) fails authentication.
        let mut forged = file.clone();
        forged.keys[0].master_key_id = m2.id().to_string();
        assert_eq!(forged.unwrap(&m2), Err(KeyError::Unwrap(1)));
        // Rewrapping under a new master key keeps the data keys.
        let rewrapped = KeyFile::wrap(&keys, &m2).unwrap();
        assert_eq!(rewrapped.unwrap(&m2).unwrap(), keys);
        assert_eq!(rewrapped.master_key_id(), m2.id());
        // A flipped bit of a wrapped key is refused.
        let mut flipped = rewrapped.clone();
        let w = &mut flipped.keys[0].wrapped;
        let last = if w.ends_with('0') { '1' } else { '0' };
        w.pop();
        w.push(last);
        assert_eq!(flipped.unwrap(&m2), Err(KeyError::Unwrap(1)));
    }

    #[test]
    fn files_round_trip_in_frames_and_hide_their_bytes() {
        let key = Key::random().unwrap();
        for len in [
            0,
            1,
            MAX_FRAME - 1,
            MAX_FRAME,
            MAX_FRAME + 1,
            3 * MAX_FRAME + 7,
        ] {
            let plain: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let h = FileHeader::new(3, None).unwrap();
            let enc = encrypt(&key, &h, &plain).unwrap();
            let d = decrypt(Path::new("f"), &enc, &key_of(&key)).unwrap();
            assert_eq!(d.plain, plain, "len {len}");
            assert_eq!(d.header, h);
            assert_eq!(d.torn, 0);
            assert_eq!(d.frames.len(), len.div_ceil(MAX_FRAME).max(1));
            if len >= 64 {
                let runs: std::collections::HashSet<&[u8]> =
                    plain.windows(16).step_by(16).take(4096).collect();
                assert!(
                    !enc.windows(16).any(|w| runs.contains(w)),
                    "no 16-byte run of the plaintext appears in the file"
                );
            }
        }
    }

    #[test]
    fn torn_tails_are_cut_and_earlier_damage_is_an_error() {
        let key = Key::random().unwrap();
        let h = FileHeader::new(1, None).unwrap();
        let mut file = h.encode();
        let mut index = 0;
        for rec in [&b"one"[..], b"two", b"three"] {
            index += seal_frames(&key, &h.file_id, index, rec, &mut file).unwrap();
        }
        let whole = decrypt(Path::new("f"), &file, &key_of(&key)).unwrap();
        assert_eq!(whole.plain, b"onetwothree");
        let (_, second_end) = whole.frames[1];
        // Every cut inside the last frame leaves the first two.
        for cut in second_end as usize + 1..file.len() {
            let d = decrypt(Path::new("f"), &file[..cut], &key_of(&key)).unwrap();
            assert_eq!(d.plain, b"onetwo", "cut at {cut}");
            assert_eq!(d.torn, (cut - second_end as usize) as u64);
        }
        // A zero-filled tail after whole frames.
        let mut zeros = file.clone();
        zeros.extend_from_slice(&[0u8; 100]);
        assert_eq!(
            decrypt(Path::new("f"), &zeros, &key_of(&key))
                .unwrap()
                .plain,
            b"onetwothree"
        );
        // A flipped bit in the last frame: torn. In an earlier frame: an error with its offset.
        let mut last = file.clone();
        *last.last_mut().unwrap() ^= 1;
        assert_eq!(
            decrypt(Path::new("f"), &last, &key_of(&key)).unwrap().plain,
            b"onetwo"
        );
        let mut early = file.clone();
        let at = whole.frames[0].1 as usize - 1;
        early[at] ^= 1;
        let e = decrypt(Path::new("f"), &early, &key_of(&key))
            .unwrap_err()
            .to_string();
        assert!(e.contains("frame 0 fails authentication"), "{e}");
        // Frames swapped: each fails its position's AAD.
        let (a, b) = (whole.frames[0].1 as usize, whole.frames[1].1 as usize);
        let start0 = FileHeader::decode(&file).unwrap().unwrap().1;
        let mut swapped = file[..start0].to_vec();
        swapped.extend_from_slice(&file[a..b]);
        swapped.extend_from_slice(&file[start0..a]);
        swapped.extend_from_slice(&file[b..]);
        let e = decrypt(Path::new("f"), &swapped, &key_of(&key))
            .unwrap_err()
            .to_string();
        assert!(e.contains("frame 0 fails authentication"), "{e}");
        // Another key.
        let other = Key::random().unwrap();
        let e = decrypt(Path::new("f"), &file, &key_of(&other))
            .unwrap_err()
            .to_string();
        assert!(e.contains("fails authentication"), "{e}");
        // A damaged header.
        let mut bad = file.clone();
        bad[13] ^= 1;
        assert!(decrypt(Path::new("f"), &bad, &key_of(&key))
            .unwrap_err()
            .to_string()
            .contains("checksum"));
    }

    #[test]
    fn keyblocks_round_trip_in_headers() {
        let m = MasterKey::generate().unwrap();
        let k = Key::random().unwrap();
        let h = FileHeader::new(7, Some(m.wrap(7, &k).unwrap())).unwrap();
        let bytes = h.encode();
        let (back, len) = FileHeader::decode(&bytes).unwrap().unwrap();
        assert_eq!(len, bytes.len());
        assert_eq!(m.unwrap(back.keyblock.as_ref().unwrap()).unwrap(), k);
        assert_eq!(FileHeader::decode(&bytes[..len - 1]).unwrap(), None);
        assert!(FileHeader::decode(b"SXTWAL\0\0xxxxxxxx").is_err());
    }
}
