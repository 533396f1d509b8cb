//! A sparse space's points in one segment: the forward vectors, the inverted index over them,
//! a BM25 space's term dictionary, and the statistics of the segment's live points.
//!
//! **Terms.** A BM25 space's points arrive as term counts ([`SparseDoc::Terms`], terms as text,
//! through the WAL); the store numbers terms in its own [`TermDict`] and indexes ordinals. Term
//! identity is therefore exact (no hash can merge two terms), and a segment is self-contained:
//! a merge maps ordinals back to texts and numbers them anew, and a query looks its terms up by
//! text in every segment. A dot-product space (SPLADE) keeps its vocabulary indices as they
//! come and has no dictionary.
//!
//! **Live statistics.** BM25's document count, total length and document frequencies must
//! count live points only, or scores would depend on update history. The engine keeps a
//! segment's tombstones; [`SparseStore::live_stats`] subtracts what its tombstoned points
//! contribute. Those contributions are cached and brought up to date incrementally (tombstones
//! only grow while a segment lives), so a query pays a bitmap comparison per segment, and the
//! forward vectors of newly deleted points once.
//!
//! ```text
//! sparse-<i>.bin  envelope SXTSPRS\0 v2: count u32 | terms u32 | (len u32 | UTF-8) × terms
//!                 | per point: len f32 | nnz u32 | (index u32 | value f32) × nnz
//! ```
//! `index` is a term ordinal (BM25: `< terms`) or a vocabulary index (dot product: `terms` = 0).
//! Version 1 had no dictionary; a BM25 space's indices were 32-bit term hashes, which open as
//! [`legacy_term`]s (the collection keeps its version-1 analyzer and scoring).

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use roaring::RoaringBitmap;
use sextant_core::{legacy_term, SparseDoc, SparseVector, TermCounts};
use sextant_index::{SparseHit, SparseIndex, SparseScoring, TermDict};

use crate::envelope;
use crate::segment::{put_sparse, read_sparse, Cursor};
use crate::StorageError;

const SPARSE_MAGIC: &[u8; 8] = b"SXTSPRS\0";
/// Version of `sparse-<i>.bin` this build writes (v2 added the term dictionary).
pub const SPARSE_VERSION: u32 = 2;

/// A query for one sparse space.
#[derive(Debug, Clone, PartialEq)]
pub enum SparseQuery {
    /// (vocabulary index, weight) pairs (dot-product spaces).
    Ids(Vec<(u32, f32)>),
    /// (term, weight) pairs (BM25 spaces), looked up in each segment's dictionary; the order
    /// is the order scores are summed in, so it must not depend on the segment.
    Terms(Vec<(String, f32)>),
}

/// What the tombstoned points of a store contribute to its statistics.
#[derive(Debug, Clone, Default)]
struct DeadStats {
    /// The tombstones accounted for.
    seen: RoaringBitmap,
    /// Sum of their lengths.
    len: f64,
    /// Per term ordinal, how many of them hold it.
    df: HashMap<u32, u32>,
}

/// One sparse space's points in a segment.
#[derive(Debug, Default)]
pub struct SparseStore {
    forward: Vec<(SparseVector, f32)>,
    index: SparseIndex,
    /// BM25 spaces: numbers the terms of `forward` and `index`.
    dict: Option<TermDict>,
    dead: Mutex<DeadStats>,
}

impl Clone for SparseStore {
    fn clone(&self) -> Self {
        SparseStore {
            forward: self.forward.clone(),
            index: self.index.clone(),
            dict: self.dict.clone(),
            dead: Mutex::new(lock(&self.dead).clone()),
        }
    }
}

fn lock(m: &Mutex<DeadStats>) -> MutexGuard<'_, DeadStats> {
    // The cache is rebuilt from scratch when inconsistent, so a poisoned lock is harmless.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl SparseStore {
    /// An empty store; `terms` for a BM25 space (a term dictionary).
    pub fn new(terms: bool) -> SparseStore {
        SparseStore {
            dict: terms.then(TermDict::new),
            ..SparseStore::default()
        }
    }

    /// Appends a point's entry. A BM25 store given weights (data written before term
    /// dictionaries) takes their indices as term hashes.
    pub fn push(&mut self, doc: &SparseDoc) {
        let (v, len) = match (&mut self.dict, doc) {
            (Some(dict), SparseDoc::Terms(TermCounts { terms, len })) => {
                let pairs = terms.iter().map(|(t, c)| (dict.insert(t), *c)).collect();
                (SparseVector::from_pairs(pairs), *len)
            }
            (Some(dict), SparseDoc::Weights(w)) => {
                let pairs = w
                    .indices
                    .iter()
                    .zip(&w.values)
                    .map(|(&id, &c)| (dict.insert(&legacy_term(id)), c))
                    .collect();
                (SparseVector::from_pairs(pairs), w.values.iter().sum())
            }
            (None, SparseDoc::Weights(w)) => (Ok(w.clone()), 0.0),
            (None, SparseDoc::Terms(_)) => {
                debug_assert!(false, "term counts reached a dot-product space");
                (Ok(SparseVector::default()), 0.0)
            }
        };
        self.push_vector(v.expect("counts are finite"), len);
    }

    fn push_vector(&mut self, v: SparseVector, len: f32) {
        self.index
            .push(&v, len)
            .expect("sparse vectors are validated before they reach a segment");
        self.forward.push((v, len));
    }

    /// Appends point `old` of `src` (a store of the same space), renumbering its terms.
    pub fn push_from(&mut self, src: &SparseStore, old: u32) {
        let (v, len) = &src.forward[old as usize];
        match (&mut self.dict, &src.dict) {
            (Some(dict), Some(from)) => {
                let pairs = v
                    .indices
                    .iter()
                    .zip(&v.values)
                    .map(|(&id, &c)| (dict.insert(from.term(id).expect("ordinals in range")), c))
                    .collect();
                let v = SparseVector::from_pairs(pairs).expect("stored values are finite");
                self.push_vector(v, *len);
            }
            _ => self.push_vector(v.clone(), *len),
        }
    }

    /// The inverted index (keyed by term ordinals in a BM25 space).
    pub fn index(&self) -> &SparseIndex {
        &self.index
    }

    /// The term dictionary (BM25 spaces).
    pub fn terms(&self) -> Option<&TermDict> {
        self.dict.as_ref()
    }

    /// The vector and length stored at `offset` (term ordinals in a BM25 space).
    pub fn get(&self, offset: u32) -> Option<&(SparseVector, f32)> {
        self.forward.get(offset as usize)
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.index.memory_bytes() * 2 + self.dict.as_ref().map_or(0, TermDict::memory_bytes)
    }

    /// Exact top `k` for `query` among `allowed` offsets (all when `None`).
    pub fn search(
        &self,
        query: &SparseQuery,
        k: usize,
        scoring: SparseScoring,
        allowed: Option<&RoaringBitmap>,
    ) -> Vec<SparseHit> {
        match query {
            SparseQuery::Ids(q) => self.index.search(q, k, scoring, allowed),
            SparseQuery::Terms(q) => {
                let Some(dict) = &self.dict else {
                    return Vec::new();
                };
                let local: Vec<(u32, f32)> = q
                    .iter()
                    .filter_map(|(t, w)| dict.get(t).map(|id| (id, *w)))
                    .collect();
                if local.is_empty() {
                    return Vec::new();
                }
                self.index.search(&local, k, scoring, allowed)
            }
        }
    }

    /// Statistics of the points not in `deleted` (this segment's tombstones).
    pub fn live_stats(&self, deleted: &RoaringBitmap) -> LiveStats<'_> {
        if deleted.is_empty() {
            return LiveStats {
                store: self,
                dead: None,
            };
        }
        let mut dead = lock(&self.dead);
        let current = dead.seen.len() == deleted.len() && dead.seen.is_subset(deleted);
        if !current {
            if !dead.seen.is_subset(deleted) {
                *dead = DeadStats::default();
            }
            let fresh = deleted - &dead.seen;
            for offset in &fresh {
                let Some((v, len)) = self.forward.get(offset as usize) else {
                    continue;
                };
                dead.len += f64::from(*len);
                for &t in &v.indices {
                    *dead.df.entry(t).or_default() += 1;
                }
                dead.seen.insert(offset);
            }
        }
        LiveStats {
            store: self,
            dead: Some(dead),
        }
    }

    /// Serialises the store of a segment of `count` points (`sparse-<i>.bin`).
    pub fn to_bytes(&self, count: u32) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&count.to_le_bytes());
        let dict_len = self.dict.as_ref().map_or(0, TermDict::len) as u32;
        b.extend_from_slice(&dict_len.to_le_bytes());
        for t in self.dict.iter().flat_map(TermDict::terms) {
            b.extend_from_slice(&(t.len() as u32).to_le_bytes());
            b.extend_from_slice(t.as_bytes());
        }
        for (v, len) in &self.forward {
            put_sparse(v, *len, &mut b);
        }
        envelope::seal(SPARSE_MAGIC, SPARSE_VERSION, &b)
    }

    /// Reads `sparse-<i>.bin` of a segment of `count` points; `terms` for a BM25 space.
    pub fn read(
        fs: &dyn crate::fs::Fs,
        path: &Path,
        count: u32,
        terms: bool,
    ) -> Result<SparseStore, StorageError> {
        let (version, body) = envelope::read_versions(fs, path, SPARSE_MAGIC, 1..=SPARSE_VERSION)?;
        let mut r = Cursor {
            bytes: &body,
            at: 0,
            path,
        };
        if r.u32()? != count {
            return Err(corrupt(
                path,
                24,
                "sparse vector count differs from point count",
            ));
        }
        let mut store = SparseStore::new(terms);
        let v2 = version >= 2;
        if v2 {
            let at = r.at;
            let n = r.u32()?;
            if !terms && n != 0 {
                return Err(corrupt(path, at + 24, "a dot-product space has terms"));
            }
            let mut d = TermDict::new();
            for i in 0..n {
                let at = r.at;
                let len = r.u32()? as usize;
                let t = std::str::from_utf8(r.take(len)?)
                    .map_err(|_| corrupt(path, at + 24, "a term is not UTF-8"))?;
                if d.insert(t) != i {
                    return Err(corrupt(path, at + 24, "a term appears twice"));
                }
            }
            if terms {
                store.dict = Some(d);
            }
        }
        for _ in 0..count {
            let at = r.at;
            let (v, len) = read_sparse(&mut r)?;
            match &store.dict {
                Some(d) if v2 => {
                    if v.indices.last().is_some_and(|&t| t as usize >= d.len()) {
                        return Err(corrupt(path, at + 24, "a term ordinal is out of range"));
                    }
                    store.push_vector(v, len);
                }
                Some(_) => {
                    // Version 1: a BM25 space's indices are term hashes; keep the length.
                    let counts = v
                        .indices
                        .iter()
                        .zip(&v.values)
                        .map(|(&t, &c)| (legacy_term(t), c))
                        .collect();
                    store.push(&SparseDoc::Terms(TermCounts { terms: counts, len }));
                }
                None => store.push_vector(v, len),
            }
        }
        if !r.done() {
            return Err(corrupt(path, r.at + 24, "trailing bytes"));
        }
        Ok(store)
    }
}

/// A store's statistics over its live points (holds the store's cache while alive).
#[derive(Debug)]
pub struct LiveStats<'a> {
    store: &'a SparseStore,
    dead: Option<MutexGuard<'a, DeadStats>>,
}

impl LiveStats<'_> {
    /// Number of live points.
    pub fn docs(&self) -> u64 {
        let all = self.store.index.len() as u64;
        all - self.dead.as_ref().map_or(0, |d| d.seen.len())
    }

    /// Sum of the live points' lengths.
    pub fn total_len(&self) -> f64 {
        self.store.index.total_len() - self.dead.as_ref().map_or(0.0, |d| d.len)
    }

    /// Number of live points holding `term` (BM25 spaces; 0 elsewhere).
    pub fn doc_freq(&self, term: &str) -> u64 {
        let Some(id) = self.store.dict.as_ref().and_then(|d| d.get(term)) else {
            return 0;
        };
        let dead = self
            .dead
            .as_ref()
            .and_then(|d| d.df.get(&id).copied())
            .unwrap_or(0);
        (self.store.index.doc_freq(id) - dead as usize) as u64
    }
}

/// Encodes a point's entry in one sparse space for a WAL record:
/// `0 u8 | len f32 | nnz u32 | (index u32 | value f32) × nnz` (weights) or
/// `1 u8 | len f32 | nnz u32 | (term_len u32 | UTF-8 | value f32) × nnz` (term counts).
pub fn put_sparse_doc(doc: &SparseDoc, out: &mut Vec<u8>) {
    match doc {
        SparseDoc::Weights(v) => {
            out.push(0);
            put_sparse(v, 0.0, out);
        }
        SparseDoc::Terms(tc) => {
            out.push(1);
            out.extend_from_slice(&tc.len.to_le_bytes());
            out.extend_from_slice(&(tc.terms.len() as u32).to_le_bytes());
            for (t, c) in &tc.terms {
                out.extend_from_slice(&(t.len() as u32).to_le_bytes());
                out.extend_from_slice(t.as_bytes());
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
    }
}

/// Decodes what [`put_sparse_doc`] wrote, checking order, finiteness and signs.
pub fn read_sparse_doc(r: &mut Cursor<'_>) -> Result<SparseDoc, StorageError> {
    let at = r.at;
    match r.u8()? {
        0 => Ok(SparseDoc::Weights(read_sparse(r)?.0)),
        1 => {
            let len = f32::from_bits(r.u32()?);
            let n = r.u32()? as usize;
            let mut terms: Vec<(String, f32)> = Vec::with_capacity(n.min(1 << 16));
            for _ in 0..n {
                let tl = r.u32()? as usize;
                let path = r.path;
                let t = std::str::from_utf8(r.take(tl)?)
                    .map_err(|_| corrupt(path, at + 24, "a term is not UTF-8"))?
                    .to_owned();
                let c = f32::from_bits(r.u32()?);
                terms.push((t, c));
            }
            let ok = terms.windows(2).all(|w| w[0].0 < w[1].0)
                && terms.iter().all(|(_, c)| c.is_finite() && *c >= 0.0)
                && len.is_finite()
                && len >= 0.0;
            if !ok {
                return Err(corrupt(r.path, at + 24, "invalid term counts"));
            }
            Ok(SparseDoc::Terms(TermCounts { terms, len }))
        }
        k => Err(corrupt(
            r.path,
            at + 24,
            format!("unknown sparse entry kind {k}"),
        )),
    }
}

fn corrupt(path: &Path, offset: usize, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason: reason.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(terms: &[(&str, f32)]) -> SparseDoc {
        SparseDoc::Terms(TermCounts {
            terms: terms.iter().map(|(t, c)| (t.to_string(), *c)).collect(),
            len: terms.iter().map(|p| p.1).sum(),
        })
    }

    #[test]
    fn live_stats_follow_tombstones_incrementally() {
        let mut s = SparseStore::new(true);
        s.push(&doc(&[("a", 1.0), ("b", 2.0)]));
        s.push(&doc(&[("a", 1.0)]));
        s.push(&doc(&[("b", 1.0), ("c", 4.0)]));
        let mut deleted = RoaringBitmap::new();
        {
            let l = s.live_stats(&deleted);
            assert_eq!((l.docs(), l.total_len(), l.doc_freq("a")), (3, 9.0, 2));
        }
        deleted.insert(0);
        {
            let l = s.live_stats(&deleted);
            assert_eq!((l.docs(), l.total_len()), (2, 6.0));
            assert_eq!(
                (l.doc_freq("a"), l.doc_freq("b"), l.doc_freq("c")),
                (1, 1, 1)
            );
            assert_eq!(l.doc_freq("zzz"), 0);
        }
        deleted.insert(2);
        let l = s.live_stats(&deleted);
        assert_eq!((l.docs(), l.total_len(), l.doc_freq("b")), (1, 1.0, 0));
        drop(l);
        // A different (not larger) set is recomputed, not added to.
        let other: RoaringBitmap = [1].into_iter().collect();
        let l = s.live_stats(&other);
        assert_eq!((l.docs(), l.doc_freq("a"), l.doc_freq("b")), (2, 1, 2));
    }

    #[test]
    fn terms_round_trip_through_files_and_merges_and_v1_opens() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = SparseStore::new(true);
        s.push(&doc(&[("1023898", 1.0), ("東京", 2.0)]));
        s.push(&doc(&[("1027041", 3.0)]));
        let path = dir.path().join("sparse-0.bin");
        std::fs::write(&path, s.to_bytes(2)).unwrap();
        let back = SparseStore::read(&crate::fs::RealFs, &path, 2, true).unwrap();
        let mut merged = SparseStore::new(true);
        merged.push_from(&back, 1);
        merged.push_from(&back, 0);
        for store in [&back, &merged] {
            let hits = store.search(
                &SparseQuery::Terms(vec![("1027041".into(), 1.0)]),
                10,
                SparseScoring::Dot,
                None,
            );
            assert_eq!(hits.len(), 1);
            assert_eq!(hits[0].score, 3.0);
        }
        assert_eq!(merged.index().total_len(), 6.0);
        // Version 1 (no dictionary, hashed ids) opens with legacy terms and its lengths.
        let mut v1 = Vec::new();
        v1.extend_from_slice(&1u32.to_le_bytes());
        put_sparse(
            &SparseVector::from_pairs(vec![(7, 2.0), (9, 1.0)]).unwrap(),
            5.0,
            &mut v1,
        );
        std::fs::write(&path, envelope::seal(SPARSE_MAGIC, 1, &v1)).unwrap();
        let old = SparseStore::read(&crate::fs::RealFs, &path, 1, true).unwrap();
        assert_eq!(
            old.live_stats(&RoaringBitmap::new())
                .doc_freq(&legacy_term(7)),
            1
        );
        assert_eq!(old.index().total_len(), 5.0);
        // A newer version is refused with the file named.
        std::fs::write(&path, envelope::seal(SPARSE_MAGIC, 3, &v1)).unwrap();
        let err = SparseStore::read(&crate::fs::RealFs, &path, 1, true)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sparse-0.bin") && err.contains("version 3"),
            "{err}"
        );
    }

    #[test]
    fn wal_entries_round_trip() {
        let docs = [
            doc(&[("a", 1.0), ("ß", 2.0)]),
            SparseDoc::Weights(SparseVector::from_pairs(vec![(3, 0.5)]).unwrap()),
        ];
        for d in docs {
            let mut b = Vec::new();
            put_sparse_doc(&d, &mut b);
            let mut r = Cursor {
                bytes: &b,
                at: 0,
                path: Path::new("wal"),
            };
            assert_eq!(read_sparse_doc(&mut r).unwrap(), d);
            assert!(r.done());
        }
    }
}
