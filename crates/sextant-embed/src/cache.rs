//! The embedding cache: text → vector, so that re-ingesting unchanged chunks costs nothing.
//!
//! Keys are the sha256 of the model fingerprint, the input kind and the text, so a vector is
//! never served for another model, prefix or dimension. Memory is bounded with two generations
//! (an approximation of LRU with O(1) work per operation): new entries go to the hot map; when it
//! holds half the capacity, it becomes the cold map and the old cold map is dropped; a hit in
//! the cold map moves the entry back to the hot one. The cache can be saved to and loaded from a
//! file (`SXTEMBC\0`, version, fingerprint, entries, CRC32), written atomically.

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use crate::embedder::{Embedder, Embeddings, InputKind};
use crate::fingerprint::ModelFingerprint;
use crate::EmbedError;

/// Entries kept in memory unless configured otherwise.
pub const DEFAULT_CACHE_CAPACITY: usize = 100_000;
/// First bytes of a cache file.
pub const CACHE_MAGIC: &[u8; 8] = b"SXTEMBC\0";
/// Current cache file version.
pub const CACHE_VERSION: u32 = 1;

type Key = [u8; 32];

#[derive(Debug, Default)]
struct Generations {
    hot: HashMap<Key, Vec<f32>>,
    cold: HashMap<Key, Vec<f32>>,
}

/// Hit and miss counters of a cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that were not.
    pub misses: u64,
    /// Entries held now.
    pub len: usize,
}

/// A bounded text → vector cache for one model fingerprint.
#[derive(Debug)]
pub struct EmbeddingCache {
    fingerprint: ModelFingerprint,
    capacity: usize,
    inner: Mutex<Generations>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl EmbeddingCache {
    /// An empty cache holding at most `capacity` vectors (at least 2).
    pub fn new(fingerprint: ModelFingerprint, capacity: usize) -> Self {
        EmbeddingCache {
            fingerprint,
            capacity: capacity.max(2),
            inner: Mutex::new(Generations::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The fingerprint the cached vectors belong to.
    pub fn fingerprint(&self) -> &ModelFingerprint {
        &self.fingerprint
    }

    fn key(&self, text: &str, kind: InputKind) -> Key {
        let mut h = Sha256::new();
        h.update(self.fingerprint.key_bytes());
        h.update([kind.code()]);
        h.update(text.as_bytes());
        h.finalize().into()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generations> {
        // A panic while holding the lock leaves consistent maps: keep using them.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The cached vector of `text`, counting a hit or a miss.
    pub fn get(&self, text: &str, kind: InputKind) -> Option<Vec<f32>> {
        let key = self.key(text, kind);
        let mut g = self.lock();
        let found = if let Some(v) = g.hot.get(&key) {
            Some(v.clone())
        } else if let Some(v) = g.cold.remove(&key) {
            let out = v.clone();
            self.put(&mut g, key, v);
            Some(out)
        } else {
            None
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// Stores the vector of `text`.
    pub fn insert(&self, text: &str, kind: InputKind, vector: Vec<f32>) {
        let key = self.key(text, kind);
        let mut g = self.lock();
        g.cold.remove(&key);
        self.put(&mut g, key, vector);
    }

    fn put(&self, g: &mut Generations, key: Key, v: Vec<f32>) {
        if g.hot.len() >= self.capacity / 2 && !g.hot.contains_key(&key) {
            g.cold = std::mem::take(&mut g.hot);
        }
        g.hot.insert(key, v);
    }

    /// Counters and size.
    pub fn stats(&self) -> CacheStats {
        let g = self.lock();
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            len: g.hot.len() + g.cold.len(),
        }
    }

    /// Writes the cache to `path` atomically (temporary file, fsync, rename).
    pub fn save(&self, path: &Path) -> Result<(), EmbedError> {
        let g = self.lock();
        let fp = serde_json::to_vec(&self.fingerprint).map_err(|source| EmbedError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let dim = self.fingerprint.dim;
        let count = g.hot.len() + g.cold.len();
        let mut buf = Vec::with_capacity(64 + fp.len() + count * (32 + 4 * dim));
        buf.extend_from_slice(CACHE_MAGIC);
        buf.extend_from_slice(&CACHE_VERSION.to_le_bytes());
        buf.extend_from_slice(&(fp.len() as u32).to_le_bytes());
        buf.extend_from_slice(&fp);
        buf.extend_from_slice(&(dim as u32).to_le_bytes());
        buf.extend_from_slice(&(count as u64).to_le_bytes());
        // Cold first, so that on load the hot entries are the most recent ones.
        for (k, v) in g.cold.iter().chain(g.hot.iter()) {
            buf.extend_from_slice(k);
            v.iter()
                .for_each(|x| buf.extend_from_slice(&x.to_le_bytes()));
        }
        drop(g);
        let crc = crc32fast::hash(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());
        let tmp = path.with_extension("tmp");
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| EmbedError::io(path, e))
    }

    /// Loads a cache saved by [`EmbeddingCache::save`]; refuses a file of another model.
    pub fn load(
        path: &Path,
        fingerprint: ModelFingerprint,
        capacity: usize,
    ) -> Result<Self, EmbedError> {
        let bytes = std::fs::read(path).map_err(|e| EmbedError::io(path, e))?;
        let bad = |reason: &str| EmbedError::CacheFile {
            path: path.to_path_buf(),
            reason: reason.to_owned(),
        };
        if bytes.len() < CACHE_MAGIC.len() + 4 + 4 || &bytes[..8] != CACHE_MAGIC {
            return Err(bad("not an embedding cache (bad magic)"));
        }
        let (body, tail) = bytes.split_at(bytes.len() - 4);
        let crc = u32::from_le_bytes(tail.try_into().expect("4 bytes"));
        if crc32fast::hash(body) != crc {
            return Err(bad("checksum mismatch (truncated or corrupted)"));
        }
        let mut r = Reader { buf: body, pos: 8 };
        let version = r.u32().ok_or_else(|| bad("truncated header"))?;
        if version != CACHE_VERSION {
            return Err(bad(&format!(
                "format version {version}, this build reads version {CACHE_VERSION}"
            )));
        }
        let fp_len = r.u32().ok_or_else(|| bad("truncated header"))? as usize;
        let fp_bytes = r.take(fp_len).ok_or_else(|| bad("truncated fingerprint"))?;
        let stored: ModelFingerprint =
            serde_json::from_slice(fp_bytes).map_err(|_| bad("unreadable fingerprint"))?;
        fingerprint.check(&stored)?;
        let dim = r.u32().ok_or_else(|| bad("truncated header"))? as usize;
        let count = r.u64().ok_or_else(|| bad("truncated header"))?;
        if dim != fingerprint.dim {
            return Err(bad("dimension differs from the fingerprint's"));
        }
        let entry = 32 + 4 * dim;
        if (body.len() - r.pos) as u64 != count.saturating_mul(entry as u64) {
            return Err(bad("entry count does not match the file size"));
        }
        let cache = EmbeddingCache::new(fingerprint, capacity);
        {
            let mut g = cache.lock();
            for _ in 0..count {
                let k: Key = r.take(32).expect("size checked").try_into().expect("32");
                let v = r
                    .take(4 * dim)
                    .expect("size checked")
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                    .collect();
                cache.put(&mut g, k, v);
            }
        }
        Ok(cache)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
    }
}

/// An [`Embedder`] that answers repeated texts from an [`EmbeddingCache`] and embeds only the
/// misses, in one batch. `truncated` counts only the texts embedded by this call.
#[derive(Debug)]
pub struct CachedEmbedder<E> {
    inner: E,
    cache: EmbeddingCache,
}

impl<E: Embedder> CachedEmbedder<E> {
    /// Wraps `inner` with an empty cache of `capacity` vectors.
    pub fn new(inner: E, capacity: usize) -> Self {
        let cache = EmbeddingCache::new(inner.fingerprint().clone(), capacity);
        CachedEmbedder { inner, cache }
    }

    /// Wraps `inner` with an existing cache, checked to belong to the same model.
    pub fn with_cache(inner: E, cache: EmbeddingCache) -> Result<Self, EmbedError> {
        inner.fingerprint().check(cache.fingerprint())?;
        Ok(CachedEmbedder { inner, cache })
    }

    /// The cache.
    pub fn cache(&self) -> &EmbeddingCache {
        &self.cache
    }

    /// The wrapped embedder.
    pub fn inner(&self) -> &E {
        &self.inner
    }
}

impl<E: Embedder> Embedder for CachedEmbedder<E> {
    fn dim(&self) -> usize {
        self.inner.dim()
    }

    fn fingerprint(&self) -> &ModelFingerprint {
        self.inner.fingerprint()
    }

    fn embed(&self, texts: &[&str], kind: InputKind) -> Result<Embeddings, EmbedError> {
        let d = self.dim();
        let mut out = vec![0f32; texts.len() * d];
        let mut missing: Vec<usize> = Vec::new();
        for (i, t) in texts.iter().enumerate() {
            match self.cache.get(t, kind) {
                Some(v) => out[i * d..(i + 1) * d].copy_from_slice(&v),
                None => missing.push(i),
            }
        }
        let mut truncated = 0;
        if !missing.is_empty() {
            let miss_texts: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
            let fresh = self.inner.embed(&miss_texts, kind)?;
            truncated = fresh.truncated;
            for (j, &i) in missing.iter().enumerate() {
                out[i * d..(i + 1) * d].copy_from_slice(fresh.row(j));
                self.cache.insert(texts[i], kind, fresh.row(j).to_vec());
            }
        }
        Ok(Embeddings::new(d, out, truncated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pooling::Pooling;

    fn fp(dim: usize) -> ModelFingerprint {
        ModelFingerprint {
            model_id: "t".into(),
            weights_sha256: "00".repeat(32),
            dim,
            pooling: Some(Pooling::Mean),
            normalize: true,
            query_prefix: String::new(),
            passage_prefix: String::new(),
            plain_prefix: String::new(),
        }
    }

    #[test]
    fn hits_misses_and_kinds_are_separate() {
        let c = EmbeddingCache::new(fp(2), 10);
        assert!(c.get("a", InputKind::Query).is_none());
        c.insert("a", InputKind::Query, vec![1.0, 2.0]);
        assert_eq!(c.get("a", InputKind::Query), Some(vec![1.0, 2.0]));
        assert!(c.get("a", InputKind::Passage).is_none());
        let s = c.stats();
        assert_eq!((s.hits, s.misses, s.len), (1, 2, 1));
    }

    #[test]
    fn stays_bounded_and_keeps_recent_entries() {
        let c = EmbeddingCache::new(fp(1), 8);
        for i in 0..100 {
            c.insert(&i.to_string(), InputKind::Plain, vec![i as f32]);
            assert!(c.stats().len <= 8);
        }
        assert_eq!(c.get("99", InputKind::Plain), Some(vec![99.0]));
        assert!(c.get("0", InputKind::Plain).is_none());
    }

    #[test]
    fn save_load_round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cache.bin");
        let c = EmbeddingCache::new(fp(3), 100);
        c.insert("x", InputKind::Passage, vec![1.0, -2.0, 0.5]);
        c.insert("y", InputKind::Query, vec![0.0, 0.0, 0.0]);
        c.save(&path).unwrap();
        let l = EmbeddingCache::load(&path, fp(3), 100).unwrap();
        assert_eq!(l.get("x", InputKind::Passage), Some(vec![1.0, -2.0, 0.5]));
        assert_eq!(l.get("y", InputKind::Query), Some(vec![0.0; 3]));

        let mut other = fp(3);
        other.weights_sha256 = "11".repeat(32);
        assert!(matches!(
            EmbeddingCache::load(&path, other, 100),
            Err(EmbedError::FingerprintMismatch { .. })
        ));

        let mut bytes = std::fs::read(&path).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(
            EmbeddingCache::load(&path, fp(3), 100),
            Err(EmbedError::CacheFile { .. })
        ));
        std::fs::write(&path, b"nonsense").unwrap();
        assert!(matches!(
            EmbeddingCache::load(&path, fp(3), 100),
            Err(EmbedError::CacheFile { .. })
        ));
    }
}
