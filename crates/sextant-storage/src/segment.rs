//! Segments: a set of points (ids, per-point sequence numbers, payloads, payload indexes, one
//! vector index per space) addressed by dense offsets.
//!
//! The same type serves both roles the write path needs. The *mutable* segment is built in
//! memory, one point at a time, with exact (flat) vector indexes; a *flush* turns its live points
//! into an immutable segment with the schema's indexes (HNSW built in parallel) and writes it as a
//! directory:
//!
//! ```text
//! segments/<id>/points.bin      envelope SXTPNTS v2: count u32, then per point
//!                               seq u64 | expires_at i64 | id
//!                               (v1, still read: seq u64 | id, no expiries)
//! segments/<id>/payloads.bin    envelope SXTPAYL: count u32, end offsets u64[count], JSON bytes
//! segments/<id>/vectors-<i>.idx the index of space i (its own magic, version and CRC)
//! segments/<id>/sparse-<i>.bin  envelope SXTSPRS v2: count u32, the term dictionary, then per
//!                               point len f32 | nnz u32 | (index u32 | value f32) × nnz
//!                               (see `sparse_store`)
//! segments/<id>/deleted-<gen>.bin  envelope SXTTOMB: roaring bitmap of deleted offsets
//! ```
//! id = tag u8 (0 integer u64, 1 UUID u128, 2 string u32 length + UTF-8 bytes).
//! expires_at = milliseconds since the Unix epoch (UTC) at which the point expires, or
//! `i64::MAX` ([`NO_EXPIRY`]) for a point that never does.
//!
//! A segment knows each point's expiry but not the time: [`Segment::expired_at`] answers
//! which points have expired at an instant the engine gives (its clock), from a list of the
//! expiring points sorted by expiry, so a query pays for the points that have expired, not
//! for the segment's size.
//!
//! Payload indexes are not stored: they are rebuilt from the payloads when a segment is opened
//! (one JSON parse per point), which keeps one source of truth on disk. Deletes are not this
//! type's business: the engine keeps a tombstone bitmap beside each segment.

use std::path::Path;
use std::sync::Arc;

use roaring::RoaringBitmap;
use serde_json::Value;
use sextant_core::filter::Condition;
use sextant_core::{Filter, PointId, SparseDoc, SparseVector};
use sextant_index::{
    AnyIndex, DenseVectors, FlatIndex, HnswIndex, HnswParams, IvfPqIndex, IvfPqParams, VectorIndex,
    VectorIndexMut, VectorStorage,
};

use crate::envelope::{self, io_err};
use crate::filter_cache::{FilterCache, FilterCacheStats};
use crate::fs::Fs;
use crate::id_map::IdMap;
use crate::payload_index::{FieldIndex, PayloadIndexes};
use crate::schema::{IndexSpec, Schema, SparseKind, IVF_MIN_POINTS};
pub use crate::sparse_store::SparseStore;
use crate::StorageError;

const POINTS_MAGIC: &[u8; 8] = b"SXTPNTS\0";
const PAYLOADS_MAGIC: &[u8; 8] = b"SXTPAYL\0";
const TOMBSTONES_MAGIC: &[u8; 8] = b"SXTTOMB\0";
const FORMAT_VERSION: u32 = 1;
/// Version of `points.bin` this build writes (v2 added per-point expiries).
pub const POINTS_VERSION: u32 = 2;
/// The stored expiry of a point that never expires.
pub const NO_EXPIRY: i64 = i64::MAX;

/// Payloads as serialised JSON, one after another.
#[derive(Debug, Clone, Default)]
pub struct PayloadStore {
    ends: Vec<u64>,
    bytes: Vec<u8>,
}

impl PayloadStore {
    /// Appends a payload.
    pub fn push(&mut self, payload: &Value) {
        serde_json::to_writer(&mut self.bytes, payload).expect("JSON values serialise");
        self.ends.push(self.bytes.len() as u64);
    }

    /// The raw JSON of payload `i`.
    pub fn raw(&self, i: u32) -> &[u8] {
        let i = i as usize;
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.bytes[start..self.ends[i] as usize]
    }

    /// Payload `i`, parsed.
    pub fn get(&self, i: u32) -> Value {
        serde_json::from_slice(self.raw(i)).expect("stored payloads are valid JSON")
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.bytes.capacity() + self.ends.capacity() * 8
    }
}

/// A segment's (or a collection's) memory by part, in bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct MemoryParts {
    /// f32 vectors held in memory.
    pub vectors: u64,
    /// f32 vectors used in place from memory-mapped files (`on_disk` spaces): on disk, read
    /// into the page cache as searches touch them, not part of the process's heap.
    pub vectors_on_disk: u64,
    /// What the vector indexes hold besides the f32 vectors: graphs, SQ8 codes, IVF lists and
    /// PQ codes, centroids, tombstones.
    pub index: u64,
    /// Index files used in place from their memory mapping (IVF-PQ codes; HNSW links, SQ8 and
    /// 1-bit codes, and the f32 vectors of a space that keeps them in its index file): read
    /// through the page cache like `vectors_on_disk`, but opening reads them whole (checksum)
    /// and every search touches them, so they stay resident.
    pub index_mapped: u64,
    /// Payloads (serialised JSON) and the filter cache's bitmaps.
    pub payloads: u64,
    /// Ids, per-point sequence numbers and expiries.
    pub points: u64,
    /// Sparse spaces (forward vectors and inverted indexes).
    pub sparse: u64,
}

impl MemoryParts {
    /// Heap bytes (every part but `vectors_on_disk`).
    pub fn heap(&self) -> u64 {
        self.vectors + self.index + self.payloads + self.points + self.sparse
    }
}

impl std::ops::AddAssign for MemoryParts {
    fn add_assign(&mut self, o: MemoryParts) {
        self.vectors += o.vectors;
        self.vectors_on_disk += o.vectors_on_disk;
        self.index_mapped += o.index_mapped;
        self.index += o.index;
        self.payloads += o.payloads;
        self.points += o.points;
        self.sparse += o.sparse;
    }
}

/// One point to add to a segment.
#[derive(Debug, Clone, Copy)]
pub struct NewPoint<'a> {
    /// External id.
    pub id: &'a PointId,
    /// Sequence number of the WAL record that wrote it.
    pub seq: u64,
    /// One vector per space, in schema order.
    pub vectors: &'a [Vec<f32>],
    /// The payload (a JSON object).
    pub payload: &'a Value,
    /// One entry per sparse space (may be shorter: missing = empty).
    pub sparse: &'a [SparseDoc],
    /// When it expires (milliseconds since the Unix epoch, UTC), if ever.
    pub expires_at: Option<i64>,
}

/// One empty sparse store per sparse space of `schema`.
fn sparse_stores(schema: &Schema) -> Vec<SparseStore> {
    schema
        .sparse_spaces
        .iter()
        .map(|s| SparseStore::new(matches!(s.kind, SparseKind::Bm25 { .. })))
        .collect()
}

/// A segment's points.
#[derive(Debug)]
pub struct Segment {
    /// Segment id (0 for the mutable segment, which has no directory).
    pub id: u64,
    ids: IdMap,
    seqs: Vec<u64>,
    /// Expiry per offset ([`NO_EXPIRY`] when none).
    expiries: Vec<i64>,
    /// (expiry, offset) of the points that expire, sorted.
    expiring: Vec<(i64, u32)>,
    payloads: PayloadStore,
    indexes: PayloadIndexes,
    vectors: Vec<AnyIndex>,
    /// Per dense space: whether its vectors are written to a vectors file and used memory-mapped
    /// (the schema's `on_disk`; always false for the mutable segment).
    on_disk: Vec<bool>,
    sparse: Vec<SparseStore>,
    /// Recent filters and the offsets they match; `None` for the mutable segment.
    filters: Option<FilterCache>,
}

/// The (expiry, offset) pairs of the points that expire, sorted.
fn expiring_of(expiries: &[i64]) -> Vec<(i64, u32)> {
    let mut v: Vec<(i64, u32)> = expiries
        .iter()
        .enumerate()
        .filter(|(_, &e)| e != NO_EXPIRY)
        .map(|(o, &e)| (e, o as u32))
        .collect();
    v.sort_unstable();
    v
}

fn payload_indexes(schema: &Schema) -> PayloadIndexes {
    let mut idx = PayloadIndexes::default();
    for p in &schema.payload_indexes {
        idx.add(FieldIndex::new(&p.key, p.field_type));
    }
    idx
}

fn corrupt(path: &Path, offset: usize, reason: impl Into<String>) -> StorageError {
    StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: offset as u64,
        reason: reason.into(),
    }
}

impl Segment {
    /// An empty in-memory segment with flat indexes, for writes.
    pub fn new_mutable(schema: &Schema) -> Segment {
        Segment {
            id: 0,
            ids: IdMap::default(),
            seqs: Vec::new(),
            expiries: Vec::new(),
            expiring: Vec::new(),
            payloads: PayloadStore::default(),
            indexes: payload_indexes(schema),
            vectors: schema
                .spaces
                .iter()
                .map(|s| AnyIndex::Flat(FlatIndex::new(s.metric, s.dim).expect("validated schema")))
                .collect(),
            on_disk: vec![false; schema.spaces.len()],
            sparse: sparse_stores(schema),
            filters: None,
        }
    }

    /// Number of points stored (live or deleted).
    pub fn len(&self) -> u32 {
        self.seqs.len() as u32
    }

    /// Whether the segment stores no point.
    pub fn is_empty(&self) -> bool {
        self.seqs.is_empty()
    }

    /// Appends a point (vectors already validated against the schema); returns its offset.
    /// An earlier point with the same id in this segment is returned too (the caller
    /// tombstones it).
    pub fn push(&mut self, p: NewPoint<'_>) -> (u32, Option<u32>) {
        let offset = self.len();
        if let Some(cache) = &mut self.filters {
            cache.clear();
        }
        for (index, v) in self.vectors.iter_mut().zip(p.vectors) {
            index
                .insert(v)
                .expect("vectors are validated before they reach a segment");
        }
        let empty = SparseDoc::default();
        for (i, store) in self.sparse.iter_mut().enumerate() {
            store.push(p.sparse.get(i).unwrap_or(&empty));
        }
        self.seqs.push(p.seq);
        let expiry = p.expires_at.unwrap_or(NO_EXPIRY);
        self.expiries.push(expiry);
        if expiry != NO_EXPIRY {
            let at = self.expiring.partition_point(|&e| e < (expiry, offset));
            self.expiring.insert(at, (expiry, offset));
        }
        self.payloads.push(p.payload);
        self.indexes.insert(offset, p.payload);
        let previous = self.ids.assign(p.id.clone(), offset);
        (offset, previous)
    }

    /// The offset of `id` (which may be tombstoned by the caller).
    pub fn offset(&self, id: &PointId) -> Option<u32> {
        self.ids.offset(id)
    }

    /// The id at `offset` (`None` for a replaced point of the mutable segment).
    pub fn id(&self, offset: u32) -> Option<PointId> {
        self.ids.id(offset)
    }

    /// Sequence number of the write that stored `offset`.
    pub fn seq(&self, offset: u32) -> u64 {
        self.seqs[offset as usize]
    }

    /// When the point at `offset` expires (milliseconds since the Unix epoch), if ever.
    pub fn expires_at(&self, offset: u32) -> Option<i64> {
        Some(self.expiries[offset as usize]).filter(|&e| e != NO_EXPIRY)
    }

    /// The offsets whose expiry is at or before `now` (milliseconds since the Unix epoch):
    /// the points expired at that instant, deleted or not.
    pub fn expired_at(&self, now: i64) -> RoaringBitmap {
        let n = self.expiring.partition_point(|&(e, _)| e <= now);
        self.expiring[..n].iter().map(|&(_, o)| o).collect()
    }

    /// The earliest expiry after `now` of a point of this segment (deleted or not).
    pub fn next_expiry_after(&self, now: i64) -> Option<i64> {
        let n = self.expiring.partition_point(|&(e, _)| e <= now);
        self.expiring.get(n).map(|&(e, _)| e)
    }

    /// Whether any point has expired at `now` (cheaper than [`Segment::expired_at`]).
    pub fn any_expired_at(&self, now: i64) -> bool {
        self.expiring.first().is_some_and(|&(e, _)| e <= now)
    }

    /// The payload at `offset`.
    pub fn payload(&self, offset: u32) -> Value {
        self.payloads.get(offset)
    }

    /// The raw JSON payload at `offset`.
    pub fn payload_raw(&self, offset: u32) -> &[u8] {
        self.payloads.raw(offset)
    }

    /// The payload indexes.
    pub fn indexes(&self) -> &PayloadIndexes {
        &self.indexes
    }

    /// The offsets whose point matches `filter`, deleted and expired ones included (callers
    /// remove those): answered by the payload indexes where they can, otherwise narrowed by
    /// the `must` conditions they answer and checked against the payloads. An immutable
    /// segment keeps its recent answers ([`FilterCache`]); the mutable one computes each time.
    pub fn select(&self, filter: &Filter) -> Arc<RoaringBitmap> {
        match &self.filters {
            Some(cache) => cache.get_or(filter, || self.select_uncached(filter)),
            None => Arc::new(self.select_uncached(filter)),
        }
    }

    fn select_uncached(&self, filter: &Filter) -> RoaringBitmap {
        let mut all = RoaringBitmap::new();
        all.insert_range(0..self.len());
        if let Some(b) = self.indexes.answer(filter, &all) {
            return b;
        }
        let answerable = |c: &Condition| {
            let one = Filter {
                must: vec![c.clone()],
                ..Filter::default()
            };
            self.indexes.answer(&one, &RoaringBitmap::new()).is_some()
        };
        let indexed = Filter {
            must: filter
                .must
                .iter()
                .filter(|c| answerable(c))
                .cloned()
                .collect(),
            ..Filter::default()
        };
        let candidates = self.indexes.answer(&indexed, &all).unwrap_or(all);
        let mut out = RoaringBitmap::new();
        for o in &candidates {
            if let Some(id) = self.id(o) {
                if filter.matches(&id, &self.payload(o)) {
                    out.insert(o);
                }
            }
        }
        out
    }

    /// Hits, misses and contents of the filter cache (zeros for the mutable segment).
    pub fn filter_cache_stats(&self) -> FilterCacheStats {
        self.filters
            .as_ref()
            .map_or_else(FilterCacheStats::default, FilterCache::stats)
    }

    /// The vector index of space `i`.
    pub fn vectors(&self, space: usize) -> &AnyIndex {
        &self.vectors[space]
    }

    /// The sparse store of sparse space `i`.
    pub fn sparse(&self, space: usize) -> &SparseStore {
        &self.sparse[space]
    }

    /// Where this segment's bytes are, part by part.
    pub fn memory_parts(&self) -> MemoryParts {
        let mut p = MemoryParts::default();
        for (v, &apart) in self.vectors.iter().zip(&self.on_disk) {
            let dense = v.dense_vectors();
            let in_memory = dense.memory_bytes();
            p.vectors += in_memory as u64;
            match (dense.is_mapped(), apart) {
                (false, _) => {}
                (true, true) => p.vectors_on_disk += dense.data_bytes() as u64,
                // Vectors inside a mapped index file (an HNSW index used in place): read
                // whole at open with the rest of the file.
                (true, false) => p.index_mapped += dense.data_bytes() as u64,
            }
            p.index += (v.memory_bytes() - in_memory) as u64;
            p.index_mapped += v.mapped_bytes() as u64;
        }
        p.payloads = (self.payloads.memory_bytes()
            + self.filters.as_ref().map_or(0, FilterCache::memory_bytes))
            as u64;
        p.points = (self.seqs.capacity() * 8
            + self.expiries.capacity() * 8
            + self.expiring.capacity() * 16
            + self.ids.memory_bytes()) as u64;
        p.sparse = self
            .sparse
            .iter()
            .map(SparseStore::memory_bytes)
            .sum::<usize>() as u64;
        p
    }

    /// Heap bytes held (vectors, graphs, payloads, ids): every part of
    /// [`Segment::memory_parts`] but what is used in place from mapped files.
    pub fn memory_bytes(&self) -> usize {
        self.memory_parts().heap() as usize
    }

    /// Builds an immutable segment with id `id` from the points of `sources` that `keep`
    /// accepts, in order, with the schema's indexes (HNSW built in parallel on the current
    /// rayon pool). Returns the segment and, per source, the new offset of each kept old
    /// offset (`u32::MAX` when dropped).
    pub fn build(
        id: u64,
        schema: &Schema,
        sources: &[(&Segment, &RoaringBitmap)],
        progress: Option<&(dyn Fn(usize) + Sync)>,
    ) -> Result<(Segment, Vec<Vec<u32>>), StorageError> {
        let mut ids = IdMap::default();
        let mut seqs = Vec::new();
        let mut expiries = Vec::new();
        let mut payloads = PayloadStore::default();
        let mut indexes = payload_indexes(schema);
        let mut rows: Vec<Vec<f32>> = vec![Vec::new(); schema.spaces.len()];
        let mut sparse = sparse_stores(schema);
        let mut maps = Vec::with_capacity(sources.len());
        for (seg, deleted) in sources {
            let mut map = vec![u32::MAX; seg.len() as usize];
            for old in 0..seg.len() {
                let Some(pid) = seg.id(old) else { continue };
                if deleted.contains(old) {
                    continue;
                }
                let new = seqs.len() as u32;
                map[old as usize] = new;
                ids.assign(pid, new);
                seqs.push(seg.seq(old));
                expiries.push(seg.expiries[old as usize]);
                let raw = seg.payload_raw(old);
                payloads.bytes.extend_from_slice(raw);
                payloads.ends.push(payloads.bytes.len() as u64);
                let value: Value = serde_json::from_slice(raw).expect("stored JSON");
                indexes.insert(new, &value);
                for (space, r) in rows.iter_mut().enumerate() {
                    r.extend_from_slice(seg.vectors[space].vector(old).expect("offset in range"));
                }
                for (store, from) in sparse.iter_mut().zip(&seg.sparse) {
                    store.push_from(from, old);
                }
            }
            maps.push(map);
        }
        let mut vectors = Vec::with_capacity(schema.spaces.len());
        for (spec, flat) in schema.spaces.iter().zip(rows) {
            let dense = DenseVectors::from_rows(spec.metric, spec.dim, &flat).map_err(|e| {
                StorageError::InvalidSequence(format!("segment build refused vectors: {e}"))
            })?;
            vectors.push(build_index(&spec.index, dense, progress)?);
        }
        // An immutable segment's ids never change: the compact layout where it applies.
        ids.freeze();
        let seg = Segment {
            id,
            ids,
            seqs,
            expiring: expiring_of(&expiries),
            expiries,
            payloads,
            indexes,
            vectors,
            on_disk: schema.spaces.iter().map(|s| s.on_disk).collect(),
            sparse,
            filters: Some(FilterCache::default()),
        };
        Ok((seg, maps))
    }

    /// Writes this segment as directory `dir` (via `dir.tmp`: files fsynced, the temporary
    /// directory fsynced, renamed, the parent directory fsynced), so the directory and every
    /// file in it are durable before a manifest can name it. The vectors of an on-disk space
    /// go to their own `vectors-<i>.f32` file and, once it is durable, this segment uses them
    /// from there (memory-mapped where the file system allows) instead of from memory.
    pub fn write(&mut self, fs: &dyn Fs, dir: &Path) -> Result<(), StorageError> {
        self.write_files(fs, dir)?;
        for i in 0..self.vectors.len() {
            if self.on_disk[i] {
                let (index, _) = load_index(fs, dir, i)?;
                debug_assert_eq!(index.len(), self.vectors[i].len());
                self.vectors[i] = index;
            }
        }
        Ok(())
    }

    fn write_files(&self, fs: &dyn Fs, dir: &Path) -> Result<(), StorageError> {
        let tmp = dir.with_extension("tmp");
        if fs.exists(&tmp) {
            fs.remove_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        }
        fs.create_dir_all(&tmp).map_err(|e| io_err(&tmp, e))?;
        let mut points = Vec::with_capacity(4 + self.seqs.len() * 25);
        points.extend_from_slice(&self.len().to_le_bytes());
        for off in 0..self.len() {
            points.extend_from_slice(&self.seqs[off as usize].to_le_bytes());
            points.extend_from_slice(&self.expiries[off as usize].to_le_bytes());
            encode_id(
                &self.ids.id(off).expect("built segments are dense"),
                &mut points,
            );
        }
        let put = |name: &str, bytes: &[u8]| envelope::write_synced(fs, &tmp.join(name), bytes);
        put(
            "points.bin",
            &envelope::seal(POINTS_MAGIC, POINTS_VERSION, &points),
        )?;
        let mut pay =
            Vec::with_capacity(4 + self.payloads.ends.len() * 8 + self.payloads.bytes.len());
        pay.extend_from_slice(&self.len().to_le_bytes());
        for e in &self.payloads.ends {
            pay.extend_from_slice(&e.to_le_bytes());
        }
        pay.extend_from_slice(&self.payloads.bytes);
        put(
            "payloads.bin",
            &envelope::seal(PAYLOADS_MAGIC, FORMAT_VERSION, &pay),
        )?;
        for (i, v) in self.vectors.iter().enumerate() {
            if self.on_disk[i] {
                put(
                    &format!("vectors-{i}.f32"),
                    &v.dense_vectors().to_file_bytes(),
                )?;
            }
            put(
                &format!("vectors-{i}.idx"),
                &v.to_bytes_with(self.on_disk[i]),
            )?;
        }
        for (i, store) in self.sparse.iter().enumerate() {
            put(&format!("sparse-{i}.bin"), &store.to_bytes(self.len()))?;
        }
        envelope::sync_dir(fs, &tmp)?;
        fs.rename(&tmp, dir).map_err(|e| io_err(dir, e))?;
        envelope::sync_dir(fs, envelope::parent(dir))
    }

    /// Opens segment directory `dir` written by [`Segment::write`].
    pub fn open(
        fs: &dyn Fs,
        id: u64,
        dir: &Path,
        schema: &Schema,
    ) -> Result<Segment, StorageError> {
        let path = dir.join("points.bin");
        let (n, ids, seqs, expiries) = read_points(fs, &path)?;
        let path = dir.join("payloads.bin");
        let body = envelope::read(fs, &path, PAYLOADS_MAGIC, FORMAT_VERSION)?;
        let mut r = Cursor {
            bytes: &body,
            at: 0,
            path: &path,
        };
        if r.u32()? != n {
            return Err(corrupt(&path, 24, "payload count differs from point count"));
        }
        let mut ends = Vec::with_capacity(n as usize);
        for _ in 0..n {
            ends.push(r.u64()?);
        }
        let bytes = body[r.at..].to_vec();
        drop(body);
        if ends.windows(2).any(|w| w[0] > w[1])
            || ends.last().is_some_and(|&e| e as usize != bytes.len())
        {
            return Err(corrupt(&path, 28, "payload offsets are inconsistent"));
        }
        let payloads = PayloadStore { ends, bytes };
        let mut indexes = payload_indexes(schema);
        for off in 0..n {
            let v: Value = serde_json::from_slice(payloads.raw(off))
                .map_err(|e| corrupt(&path, 24, format!("payload {off} is not valid JSON: {e}")))?;
            indexes.insert(off, &v);
        }
        let mut vectors = Vec::with_capacity(schema.spaces.len());
        let mut on_disk = Vec::with_capacity(schema.spaces.len());
        for (i, spec) in schema.spaces.iter().enumerate() {
            let path = dir.join(format!("vectors-{i}.idx"));
            // What the files hold decides, not the schema: a space keeps the layout each of
            // its segments was written with.
            let (index, apart) = load_index(fs, dir, i)?;
            on_disk.push(apart);
            if index.len() != n as usize || index.dim() != spec.dim || index.metric() != spec.metric
            {
                return Err(corrupt(
                    &path,
                    0,
                    format!(
                        "index holds {} × {}-d {} vectors; the segment has {n} points of space {:?} ({}-d {})",
                        index.len(),
                        index.dim(),
                        index.metric(),
                        spec.name,
                        spec.dim,
                        spec.metric
                    ),
                ));
            }
            vectors.push(index);
        }
        let mut sparse = Vec::with_capacity(schema.sparse_spaces.len());
        for (i, spec) in schema.sparse_spaces.iter().enumerate() {
            let path = dir.join(format!("sparse-{i}.bin"));
            let bm25 = matches!(spec.kind, SparseKind::Bm25 { .. });
            sparse.push(SparseStore::read(fs, &path, n, bm25)?);
        }
        Ok(Segment {
            id,
            ids,
            seqs,
            expiring: expiring_of(&expiries),
            expiries,
            payloads,
            indexes,
            vectors,
            on_disk,
            sparse,
            filters: Some(FilterCache::default()),
        })
    }
}

/// Reads `points.bin`: the point count, the id map (integer ids straight into the compact
/// layout, without a hash map or a list of decoded ids in between), sequence numbers and
/// expiries. Every buffer it reads through is freed before it returns.
#[allow(clippy::type_complexity)]
fn read_points(fs: &dyn Fs, path: &Path) -> Result<(u32, IdMap, Vec<u64>, Vec<i64>), StorageError> {
    let (version, body) = envelope::read_versions(fs, path, POINTS_MAGIC, 1..=POINTS_VERSION)?;
    let mut r = Cursor {
        bytes: &body,
        at: 0,
        path,
    };
    let n = r.u32()?;
    let start = r.at;
    let mut seqs = Vec::with_capacity(n as usize);
    let mut expiries = Vec::with_capacity(n as usize);
    let mut nums = Vec::with_capacity(n as usize);
    let mut all_nums = true;
    for _ in 0..n {
        seqs.push(r.u64()?);
        expiries.push(if version >= 2 {
            r.u64()? as i64
        } else {
            NO_EXPIRY
        });
        match decode_id(&mut r)? {
            PointId::Num(x) if all_nums => nums.push(x),
            _ => all_nums = false,
        }
    }
    // Where the id of point `o` starts (for an error naming it).
    let id_at = |o: u32| -> Result<usize, StorageError> {
        let mut r = Cursor {
            bytes: &body,
            at: start,
            path,
        };
        for i in 0..=o {
            r.u64()?;
            if version >= 2 {
                r.u64()?;
            }
            if i == o {
                return Ok(r.at);
            }
            decode_id(&mut r)?;
        }
        unreachable!("the loop returns at o")
    };
    let twice = |at: usize| corrupt(path, at + 24, "an id appears twice");
    let ids = if all_nums {
        match IdMap::from_nums(nums) {
            Ok(ids) => ids,
            Err(o) => return Err(twice(id_at(o)?)),
        }
    } else {
        drop(nums);
        let mut ids = IdMap::default();
        let mut r = Cursor {
            bytes: &body,
            at: start,
            path,
        };
        for off in 0..n {
            r.u64()?;
            if version >= 2 {
                r.u64()?;
            }
            let at = r.at;
            if ids.assign(decode_id(&mut r)?, off).is_some() {
                return Err(twice(at));
            }
        }
        ids
    };
    Ok((n, ids, seqs, expiries))
}

/// Loads the index of space `space` of segment directory `dir`, with its vectors file when it
/// has one (then also returns `true`): memory-mapped where the file system can (only the
/// header is read), otherwise read whole and checked.
fn load_index(fs: &dyn Fs, dir: &Path, space: usize) -> Result<(AnyIndex, bool), StorageError> {
    let path = dir.join(format!("vectors-{space}.idx"));
    // Read through a mapping where there is one: the index is decoded into its own
    // structures, so the file's pages are only borrowed while it is (no heap buffer the size
    // of the file that the allocator might keep).
    let map = fs.map(&path).map_err(|e| io_err(&path, e))?;
    let vpath = dir.join(format!("vectors-{space}.f32"));
    let vectors = if fs.exists(&vpath) {
        let mapped = fs.map(&vpath).map_err(|e| io_err(&vpath, e))?;
        let v = match mapped {
            Some(map) => DenseVectors::from_file(map, false),
            None => {
                let whole = fs.read(&vpath).map_err(|e| io_err(&vpath, e))?;
                DenseVectors::from_file(std::sync::Arc::new(whole), true)
            }
        };
        Some(v.map_err(|e| corrupt(&vpath, 0, e.to_string()))?)
    } else {
        None
    };
    let apart = vectors.is_some();
    match map {
        Some(map) => AnyIndex::from_shared(map, vectors),
        None => {
            let bytes = fs.read(&path).map_err(|e| io_err(&path, e))?;
            AnyIndex::from_parts(&bytes, vectors)
        }
    }
    .map(|index| (index, apart))
    .map_err(|e| corrupt(&path, 0, e.to_string()))
}

/// Writes a tombstone file, durably: the file is fsynced and so is its directory, so that a
/// manifest written afterwards never names a file a power cut can take away.
pub fn write_tombstones(
    fs: &dyn Fs,
    path: &Path,
    deleted: &RoaringBitmap,
) -> Result<(), StorageError> {
    let mut body = Vec::with_capacity(deleted.serialized_size());
    deleted
        .serialize_into(&mut body)
        .expect("writing to a Vec cannot fail");
    envelope::write_synced(
        fs,
        path,
        &envelope::seal(TOMBSTONES_MAGIC, FORMAT_VERSION, &body),
    )?;
    envelope::sync_dir(fs, envelope::parent(path))
}

/// Reads a tombstone file.
pub fn read_tombstones(fs: &dyn Fs, path: &Path) -> Result<RoaringBitmap, StorageError> {
    let body = envelope::read(fs, path, TOMBSTONES_MAGIC, FORMAT_VERSION)?;
    RoaringBitmap::deserialize_from(&body[..])
        .map_err(|e| corrupt(path, 24, format!("tombstone bitmap does not decode: {e}")))
}

fn encode_id(id: &PointId, out: &mut Vec<u8>) {
    match id {
        PointId::Num(n) => {
            out.push(0);
            out.extend_from_slice(&n.to_le_bytes());
        }
        PointId::Uuid(u) => {
            out.push(1);
            out.extend_from_slice(&u.to_le_bytes());
        }
        PointId::Str(s) => {
            out.push(2);
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
}

/// Encodes a sparse vector and its length: `len f32 | nnz u32 | (index u32 | value f32) × nnz`
/// (shared with the engine's WAL records).
pub fn put_sparse(v: &SparseVector, len: f32, out: &mut Vec<u8>) {
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(v.indices.len() as u32).to_le_bytes());
    for (t, x) in v.indices.iter().zip(&v.values) {
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&x.to_le_bytes());
    }
}

/// Decodes what [`put_sparse`] wrote, checking that indices increase and values and length
/// are finite and non-negative.
pub fn read_sparse(r: &mut Cursor<'_>) -> Result<(SparseVector, f32), StorageError> {
    let at = r.at;
    let len = f32::from_bits(r.u32()?);
    let nnz = r.u32()? as usize;
    let mut v = SparseVector::default();
    for _ in 0..nnz {
        v.indices.push(r.u32()?);
        v.values.push(f32::from_bits(r.u32()?));
    }
    let ok = v.indices.windows(2).all(|w| w[0] < w[1])
        && v.values.iter().all(|x| x.is_finite() && *x >= 0.0)
        && len.is_finite()
        && len >= 0.0;
    if !ok {
        return Err(corrupt(r.path, at + 24, "invalid sparse vector"));
    }
    Ok((v, len))
}

/// Encodes a point id (shared with the engine's WAL records).
pub fn put_id(id: &PointId, out: &mut Vec<u8>) {
    encode_id(id, out);
}

/// A bounds-checked little-endian reader over a file body; errors name the file and offset
/// (offsets count from the start of the file, after the 24-byte envelope header).
#[derive(Debug)]
pub struct Cursor<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// Read position.
    pub at: usize,
    /// File the bytes came from.
    pub path: &'a Path,
}

impl Cursor<'_> {
    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&[u8], StorageError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                corrupt(
                    self.path,
                    self.at + 24,
                    format!("{n} bytes run past the end"),
                )
            })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }
    /// A u8.
    pub fn u8(&mut self) -> Result<u8, StorageError> {
        Ok(self.take(1)?[0])
    }
    /// A u32.
    pub fn u32(&mut self) -> Result<u32, StorageError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().expect("4")))
    }
    /// A u64.
    pub fn u64(&mut self) -> Result<u64, StorageError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().expect("8")))
    }
    /// Whether everything was read.
    pub fn done(&self) -> bool {
        self.at == self.bytes.len()
    }
}

/// Decodes a point id written by [`put_id`].
pub fn decode_id(r: &mut Cursor<'_>) -> Result<PointId, StorageError> {
    let at = r.at;
    Ok(match r.u8()? {
        0 => PointId::Num(r.u64()?),
        1 => PointId::Uuid(u128::from_le_bytes(r.take(16)?.try_into().expect("16"))),
        2 => {
            let n = r.u32()? as usize;
            let path = r.path;
            let s = r.take(n)?;
            PointId::Str(
                std::str::from_utf8(s)
                    .map_err(|_| corrupt(path, at + 24, "string id is not UTF-8"))?
                    .to_string(),
            )
        }
        t => return Err(corrupt(r.path, at + 24, format!("unknown id tag {t}"))),
    })
}

/// The index a flushed or merged segment of a space with `spec` keeps over `dense`: the one
/// definition the segment builder and the index advisor (which measures layouts on a sample)
/// share. `progress` is called with the number of vectors indexed so far.
pub fn build_index(
    spec: &IndexSpec,
    dense: DenseVectors,
    progress: Option<&(dyn Fn(usize) + Sync)>,
) -> Result<AnyIndex, StorageError> {
    Ok(match *spec {
        IndexSpec::Flat => AnyIndex::Flat(FlatIndex::from_vectors(dense)),
        IndexSpec::Hnsw {
            m,
            ef_construction,
            quantization,
        } => {
            let params = HnswParams {
                m,
                ef_construction,
                quantization,
                ..HnswParams::default()
            };
            let h = HnswIndex::build(dense, params, progress)
                .map_err(|e| StorageError::InvalidSequence(format!("HNSW build failed: {e}")))?;
            AnyIndex::Hnsw(Box::new(h))
        }
        // Too few points to train lists and codebooks: an exact scan is cheap.
        IndexSpec::IvfPq { .. } if dense.len() < IVF_MIN_POINTS => {
            AnyIndex::Flat(FlatIndex::from_vectors(dense))
        }
        IndexSpec::IvfPq {
            nlist,
            m,
            nprobe,
            bits,
            opq,
        } => {
            let params = IvfPqParams {
                nlist: nlist.min(dense.len() / 8).max(usize::from(nlist > 0)),
                m,
                nprobe,
                bits,
                opq,
                ..IvfPqParams::default()
            };
            let i = IvfPqIndex::build(dense, params, progress)
                .map_err(|e| StorageError::InvalidSequence(format!("IVF-PQ build failed: {e}")))?;
            AnyIndex::IvfPq(Box::new(i))
        }
    })
}
