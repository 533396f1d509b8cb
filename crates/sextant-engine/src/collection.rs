//! A collection: its state, its write path (validate → WAL → mutable segment) and recovery
//! (manifest + WAL replay). Flush and merge live in `maintenance.rs`, reads in [`crate::query`].
//!
//! Locks: `writer` (the WAL and the manifest) is taken before `state` (the segments), never the
//! other way round. Readers take only `state`'s read lock, so a flush or merge that builds an
//! index holds at most `writer` while it works and takes `state`'s write lock only to swap.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

use parking_lot::{Mutex, MutexGuard, RwLock};
use roaring::RoaringBitmap;
use serde_json::Value;
use sextant_core::{validate_vector_for, PointId, SparseDoc, SparseVector};
use sextant_storage::envelope::io_err;
use sextant_storage::fs::Fs;
use sextant_storage::id_map::{check_id_kinds, IdKind};
use sextant_storage::schema::{Manifest, Schema, SparseKind};
use sextant_storage::segment::{read_tombstones, NewPoint, Segment};
use sextant_storage::wal::{Durability, Wal};
use sextant_storage::StorageError;
use sextant_text::{AnalyzerConfig, Bm25Encoder, Bm25Params};

use crate::clock::{Clock, SystemClock};
use crate::error::{EngineError, Result};
use crate::ops::{Op, PointWrite};
use crate::scope::{tenant_of, Resolved, Scope, TenantId};

/// Default number of points the mutable segment holds before it is flushed.
pub const DEFAULT_FLUSH_POINTS: usize = 20_000;
/// Default number of immutable segments above which a merge combines the smallest.
pub const DEFAULT_MAX_SEGMENTS: usize = 8;
/// Default [`CollectionConfig::vacuum_deleted_fraction`]: a segment with at least this
/// fraction of deleted points is rewritten without them by the next merge.
pub const DEFAULT_VACUUM_DELETED_FRACTION: f64 = 0.2;

/// Tunables of an open collection (not part of the schema: they may change between opens).
#[derive(Debug, Clone, Copy)]
pub struct CollectionConfig {
    /// When appended batches reach stable storage (default: before each write returns).
    pub durability: Durability,
    /// Flush the mutable segment once it holds this many points.
    pub flush_points: usize,
    /// Merge segments once there are more than this many.
    pub max_segments: usize,
    /// Rewrite a segment without its deleted points once at least this fraction of its points
    /// are deleted (deletes, and updates that replaced them). Lower reclaims disk and memory
    /// sooner at the cost of rewriting (and re-indexing) segments more often; above 1 no
    /// segment is rewritten for its deletes alone ([`Collection::optimize`] still is).
    pub vacuum_deleted_fraction: f64,
    /// Start a background merge after a flush, a delete or an update when the merge policy
    /// asks for one (otherwise merges run only when [`Collection::merge`],
    /// [`Collection::settle`] or [`Collection::optimize`] is called).
    pub background_merge: bool,
    /// The ANN recall probe's sampling rate and window ([`crate::probe`]).
    pub recall_probe: crate::probe::ProbeConfig,
}

impl Default for CollectionConfig {
    fn default() -> Self {
        CollectionConfig {
            durability: Durability::Always,
            flush_points: DEFAULT_FLUSH_POINTS,
            max_segments: DEFAULT_MAX_SEGMENTS,
            vacuum_deleted_fraction: DEFAULT_VACUUM_DELETED_FRACTION,
            background_merge: true,
            recall_probe: crate::probe::ProbeConfig::default(),
        }
    }
}

/// A point as a caller gives it.
#[derive(Debug, Clone, PartialEq)]
pub struct PointInput {
    /// External id.
    pub id: PointId,
    /// Its vectors.
    pub vectors: Vectors,
    /// Its payload; must be a JSON object (`Value::Null` is taken as `{}`).
    pub payload: Value,
    /// Its sparse vectors, by sparse space name (spaces left out get an empty vector).
    pub sparse: Vec<(String, SparseInput)>,
    /// When it expires (milliseconds since the Unix epoch, UTC; see [`crate::clock`]). `None`:
    /// the collection's default TTL applies, if it has one and the payload holds its field.
    pub expires_at: Option<i64>,
}

/// What a point gives a sparse space.
#[derive(Debug, Clone, PartialEq)]
pub enum SparseInput {
    /// Text, for a BM25 space (analyzed by the space's analyzer).
    Text(String),
    /// Weights, for a dot-product space (non-negative, finite).
    Vector(SparseVector),
    /// Analysed terms with query weights, for a BM25 space's *queries* only: each term scores
    /// its weight times its IDF (what [`Collection::analyse`] returns has weight 1 per term;
    /// query expansion adds weighted terms). Terms are matched as they are, not analysed.
    Terms(Vec<(String, f32)>),
}

/// The vectors of a point: one unnamed vector for a single-space collection, or one per space.
#[derive(Debug, Clone, PartialEq)]
pub enum Vectors {
    /// The vector of the only space.
    Single(Vec<f32>),
    /// Vectors by space name.
    Named(Vec<(String, Vec<f32>)>),
}

/// What opening a collection found and repaired.
#[derive(Debug, Clone, Default)]
pub struct RecoveryReport {
    /// WAL records replayed into the mutable segment.
    pub replayed_records: usize,
    /// Bytes of a torn WAL tail that were cut off.
    pub torn_tail_bytes: u64,
    /// Leftovers of interrupted flushes or merges that were removed.
    pub removed_leftovers: Vec<String>,
    /// Duplicate live ids found across segments (resolved by sequence number).
    pub duplicates_resolved: usize,
}

impl RecoveryReport {
    /// Human-readable warnings (empty when the collection was closed cleanly).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.torn_tail_bytes > 0 {
            w.push(format!(
                "the write-ahead log ended in an interrupted write: {} bytes of an unacknowledged batch were cut off",
                self.torn_tail_bytes
            ));
        }
        if !self.removed_leftovers.is_empty() {
            w.push(format!(
                "removed leftovers of an interrupted flush or merge: {}",
                self.removed_leftovers.join(", ")
            ));
        }
        if self.duplicates_resolved > 0 {
            w.push(format!(
                "{} ids were live in two segments; the newer write was kept",
                self.duplicates_resolved
            ));
        }
        w
    }
}

/// An immutable segment and its tombstones.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) seg: Arc<Segment>,
    pub(crate) deleted: RoaringBitmap,
    /// Tombstone file currently named by the manifest.
    pub(crate) tomb_file: Option<String>,
    /// Tombstones changed since the manifest was written.
    pub(crate) dirty: bool,
}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) segments: Vec<Slot>,
    pub(crate) mutable: Segment,
    pub(crate) mutable_deleted: RoaringBitmap,
    pub(crate) id_kind: Option<IdKind>,
    /// Highest sequence number applied.
    pub(crate) applied_seq: u64,
}

/// Where a live point is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Loc {
    Mutable(u32),
    Segment(usize, u32),
}

impl State {
    /// Where the stored version of `id` is, expired or not (what the write path replaces).
    pub(crate) fn find(&self, id: &PointId) -> Option<Loc> {
        if let Some(o) = self.mutable.offset(id) {
            if !self.mutable_deleted.contains(o) {
                return Some(Loc::Mutable(o));
            }
        }
        self.segments.iter().enumerate().rev().find_map(|(i, s)| {
            s.seg
                .offset(id)
                .filter(|&o| !s.deleted.contains(o))
                .map(|o| Loc::Segment(i, o))
        })
    }

    /// Where `id` is when it is live at `now`: stored, not deleted, not expired.
    pub(crate) fn find_live(&self, id: &PointId, now: i64) -> Option<Loc> {
        self.find(id).filter(|&loc| !self.expired(loc, now))
    }

    /// Whether the point at `loc` has expired at `now`.
    pub(crate) fn expired(&self, loc: Loc, now: i64) -> bool {
        let e = match loc {
            Loc::Mutable(o) => self.mutable.expires_at(o),
            Loc::Segment(i, o) => self.segments[i].seg.expires_at(o),
        };
        e.is_some_and(|e| now >= e)
    }

    /// The payload of the live point at `loc`.
    pub(crate) fn payload_at(&self, loc: Loc) -> Value {
        match loc {
            Loc::Mutable(o) => self.mutable.payload(o),
            Loc::Segment(i, o) => self.segments[i].seg.payload(o),
        }
    }

    fn seq_at(&self, loc: Loc) -> u64 {
        match loc {
            Loc::Mutable(o) => self.mutable.seq(o),
            Loc::Segment(i, o) => self.segments[i].seg.seq(o),
        }
    }

    fn tombstone(&mut self, loc: Loc) {
        match loc {
            Loc::Mutable(o) => {
                self.mutable_deleted.insert(o);
            }
            Loc::Segment(i, o) => {
                let s = &mut self.segments[i];
                s.deleted.insert(o);
                s.dirty = true;
            }
        }
    }

    /// Applies a logged batch. Idempotent: a point whose live version carries a sequence
    /// number at least `seq` is left alone.
    fn apply(&mut self, seq: u64, op: &Op) {
        match op {
            Op::Upsert(points) => self.apply_upserts(seq, points),
            Op::Delete(ids) => self.apply_deletes(seq, ids),
            Op::Replace { delete, upsert } => {
                self.apply_deletes(seq, delete);
                self.apply_upserts(seq, upsert);
            }
        }
        self.applied_seq = self.applied_seq.max(seq);
    }

    fn apply_upserts(&mut self, seq: u64, points: &[PointWrite]) {
        for p in points {
            if let Some(loc) = self.find(&p.id) {
                // A newer write, or this very record already flushed: nothing to do.
                // (Equal sequence numbers in the mutable segment are an id repeated
                // within one batch, or deleted and rewritten by one replace: the later
                // write wins.)
                let at = self.seq_at(loc);
                if at > seq || (at == seq && matches!(loc, Loc::Segment(..))) {
                    continue;
                }
                self.tombstone(loc);
            }
            self.id_kind.get_or_insert(IdKind::of(&p.id));
            let (_, previous) = self.mutable.push(NewPoint {
                id: &p.id,
                seq,
                vectors: &p.vectors,
                payload: &p.payload,
                sparse: &p.sparse,
                expires_at: p.expires_at,
            });
            if let Some(prev) = previous {
                self.mutable_deleted.insert(prev);
            }
        }
    }

    fn apply_deletes(&mut self, seq: u64, ids: &[PointId]) {
        for id in ids {
            if let Some(loc) = self.find(id) {
                if self.seq_at(loc) <= seq {
                    self.tombstone(loc);
                }
            }
        }
    }

    /// Points live at `now` (stored, neither deleted nor expired).
    pub(crate) fn live_count(&self, now: i64) -> u64 {
        self.each_segment(now)
            .map(|(_, seg, dead)| u64::from(seg.len()) - dead.len())
            .sum()
    }
}

#[derive(Debug)]
pub(crate) struct Writer {
    pub(crate) wal: Wal,
    pub(crate) manifest: Manifest,
}

/// An open collection. Thread-safe: share it behind an `Arc`.
#[derive(Debug)]
pub struct Collection {
    name: String,
    pub(crate) dir: PathBuf,
    pub(crate) schema: Schema,
    pub(crate) config: CollectionConfig,
    pub(crate) state: RwLock<State>,
    /// Shared with the sync timer of [`Durability::Interval`].
    pub(crate) writer: Arc<Mutex<Writer>>,
    pub(crate) merging: Mutex<()>,
    recovery: RecoveryReport,
    /// Weak self-reference, so a flush can hand a background merge an owning handle.
    pub(crate) this: Weak<Collection>,
    /// Keeps the data directory's lock held while any handle (or background merge) lives.
    _lock: Option<Arc<File>>,
    /// The file system every file operation goes through (an encrypting one for an
    /// encrypted collection).
    pub(crate) fs: Arc<dyn Fs>,
    /// The keys of an encrypted collection.
    pub(crate) encryption: Option<crate::encryption::Encryption>,
    /// The last error of background work (a merge, a flush after a write, a timed WAL sync),
    /// reported by `info`.
    pub(crate) background_error: Arc<Mutex<Option<String>>>,
    /// Syncs the WAL every interval under [`Durability::Interval`]; stopped on drop.
    _sync_timer: Option<crate::sync_timer::SyncTimer>,
    /// The BM25 encoder of each sparse space (`None` for dot-product spaces).
    pub(crate) encoders: Vec<Option<Bm25Encoder>>,
    /// The background merge thread, when one was started.
    pub(crate) merge_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The clock expiries are judged by ([`SystemClock`] unless a test sets another).
    clock: RwLock<Arc<dyn Clock>>,
    /// Re-runs a sample of approximate searches exactly ([`crate::probe`]).
    pub(crate) probe: crate::probe::RecallProbe,
    /// The drift reference, canaries and checks ([`crate::drift`]).
    pub(crate) drift: Mutex<crate::drift::DriftState>,
    /// Per-segment vector sums of the drift statistics.
    pub(crate) drift_sums: Mutex<crate::drift::SumCache>,
    /// Query adapters of dense spaces ([`crate::adapter`]).
    pub(crate) adapters: RwLock<Vec<Arc<crate::adapter::Attached>>>,
}

pub(crate) const MANIFEST: &str = "manifest";
pub(crate) const WAL_FILE: &str = "wal";
pub(crate) const SEGMENTS: &str = "segments";

/// A seed for the recall probe's sampling, from the collection's name.
fn name_seed(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub(crate) fn seg_dir(dir: &Path, id: u64) -> PathBuf {
    dir.join(SEGMENTS).join(id.to_string())
}

impl Collection {
    /// Opens the collection in `dir`: reads the manifest, loads its segments, removes leftovers
    /// of interrupted flushes and merges, and replays the WAL.
    pub(crate) fn open(
        name: &str,
        dir: &Path,
        config: CollectionConfig,
        lock: Option<Arc<File>>,
        fs: Arc<dyn Fs>,
        encryption: Option<crate::encryption::Encryption>,
    ) -> Result<Arc<Collection>> {
        let manifest = Manifest::read(&*fs, &dir.join(MANIFEST))?;
        let schema = manifest.schema.clone();
        let mut recovery = RecoveryReport::default();
        crate::recovery::remove_leftovers(&*fs, dir, &manifest, &mut recovery)?;

        let mut segments = Vec::with_capacity(manifest.segments.len());
        for entry in &manifest.segments {
            let sdir = seg_dir(dir, entry.id);
            let seg = Segment::open(&*fs, entry.id, &sdir, &schema)?;
            if u64::from(seg.len()) != entry.points {
                return Err(StorageError::Corrupt {
                    path: sdir.join("points.bin"),
                    offset: 0,
                    reason: format!(
                        "segment holds {} points; the manifest says {}",
                        seg.len(),
                        entry.points
                    ),
                }
                .into());
            }
            let deleted = match &entry.tombstones {
                Some(f) => read_tombstones(&*fs, &sdir.join(f))?,
                None => RoaringBitmap::new(),
            };
            for fname in fs.read_dir(&sdir).map_err(|e| io_err(&sdir, e))? {
                if fname.starts_with("deleted-") && Some(&fname) != entry.tombstones.as_ref() {
                    let file = sdir.join(&fname);
                    fs.remove_file(&file).map_err(|e| io_err(&file, e))?;
                }
            }
            segments.push(Slot {
                seg: Arc::new(seg),
                deleted,
                tomb_file: entry.tombstones.clone(),
                dirty: false,
            });
        }

        let mut state = State {
            segments,
            mutable: Segment::new_mutable(&schema),
            mutable_deleted: RoaringBitmap::new(),
            id_kind: manifest.id_kind.map(IdKind::from),
            applied_seq: manifest.flushed_seq,
        };
        recovery.duplicates_resolved = crate::maintenance::resolve_duplicates(&mut state);

        let encoders = sparse_encoders(&schema)?;
        let drift = crate::drift::load(&*fs, dir)?;
        let adapters = crate::adapter::load(&*fs, dir)?
            .into_iter()
            .map(|a| Arc::new(crate::adapter::Attached::new(a)))
            .collect();
        let wal_path = dir.join(WAL_FILE);
        let (wal, rec) = Wal::open_in(fs.clone(), &wal_path, config.durability)?;
        recovery.torn_tail_bytes = rec.torn_tail_bytes;
        for r in &rec.records {
            if r.seq <= manifest.flushed_seq {
                continue;
            }
            let op = Op::decode(&wal_path, &r.payload)?;
            state.apply(r.seq, &op);
            recovery.replayed_records += 1;
        }
        let writer = Arc::new(Mutex::new(Writer { wal, manifest }));
        let background_error = Arc::new(Mutex::new(None));
        let sync_timer = match config.durability {
            Durability::Interval(every) => Some(crate::sync_timer::SyncTimer::start(
                every,
                writer.clone(),
                background_error.clone(),
            )),
            Durability::Always => None,
        };
        Ok(Arc::new_cyclic(|this| Collection {
            name: name.to_string(),
            dir: dir.to_path_buf(),
            schema,
            config,
            state: RwLock::new(state),
            writer,
            merging: Mutex::new(()),
            recovery,
            this: this.clone(),
            _lock: lock,
            fs,
            encryption,
            background_error,
            _sync_timer: sync_timer,
            merge_thread: Mutex::new(None),
            encoders,
            clock: RwLock::new(Arc::new(SystemClock)),
            probe: crate::probe::RecallProbe::new(config.recall_probe, name_seed(name)),
            drift: Mutex::new(drift),
            drift_sums: Mutex::new(Default::default()),
            adapters: RwLock::new(adapters),
        }))
    }

    /// The collection's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its schema.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// The tunables it was opened with.
    pub fn config(&self) -> CollectionConfig {
        self.config
    }

    /// Replaces the clock expiries are judged by (tests and simulations; production keeps
    /// the system clock). Every read after this call uses it.
    pub fn set_clock(&self, clock: Arc<dyn Clock>) {
        *self.clock.write() = clock;
    }

    /// Now by the collection's clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.read().now_ms()
    }

    /// The next instant (milliseconds since the Unix epoch, by the collection's clock) at which
    /// a stored point expires, if any: until then no read's answer changes by expiry alone, so
    /// a cache of answers keyed by it (and by the writes) is never stale.
    pub fn next_expiry(&self) -> Option<i64> {
        let now = self.now_ms();
        let st = self.state.read();
        st.segments
            .iter()
            .map(|s| s.seg.as_ref())
            .chain(std::iter::once(&st.mutable))
            .filter_map(|seg| seg.next_expiry_after(now))
            .min()
    }

    /// What opening it found.
    pub fn recovery(&self) -> &RecoveryReport {
        &self.recovery
    }

    /// Checks a batch against the schema and the scope without changing anything (the scope's
    /// tenant is filled in where a point leaves a top-level tenant key out).
    fn validate(&self, points: Vec<PointInput>, scope: &Resolved) -> Result<Vec<PointWrite>> {
        let mut out = Vec::with_capacity(points.len());
        for (index, p) in points.into_iter().enumerate() {
            let invalid = |reason: String| EngineError::InvalidPoint {
                index,
                id: p.id.to_string(),
                reason,
            };
            let mut payload = match p.payload {
                Value::Null => Value::Object(Default::default()),
                Value::Object(m) => Value::Object(m),
                other => {
                    return Err(invalid(format!(
                        "payload must be a JSON object, got {}",
                        json_kind(&other)
                    )))
                }
            };
            if let Some(key) = &self.schema.tenant_key {
                self.check_tenant_value(&mut payload, key, scope)
                    .map_err(invalid)?;
            }
            let spaces = &self.schema.spaces;
            let mut vectors: Vec<Option<Vec<f32>>> = vec![None; spaces.len()];
            match p.vectors {
                Vectors::Single(v) if spaces.len() == 1 => vectors[0] = Some(v),
                Vectors::Single(_) => {
                    return Err(invalid(format!(
                        "the collection has {} vector spaces; give vectors by name ({})",
                        spaces.len(),
                        space_names(&self.schema)
                    )))
                }
                Vectors::Named(named) => {
                    for (name, v) in named {
                        let i = self.schema.space_index(&name).ok_or_else(|| {
                            invalid(format!(
                                "unknown vector space {name:?} (spaces: {})",
                                space_names(&self.schema)
                            ))
                        })?;
                        if vectors[i].replace(v).is_some() {
                            return Err(invalid(format!("vector space {name:?} given twice")));
                        }
                    }
                }
            }
            let mut vs = Vec::with_capacity(spaces.len());
            for (spec, v) in spaces.iter().zip(vectors) {
                let v =
                    v.ok_or_else(|| invalid(format!("missing vector for space {:?}", spec.name)))?;
                validate_vector_for(&v, spec.dim, spec.metric)
                    .map_err(|e| invalid(format!("space {:?}: {e}", spec.name)))?;
                vs.push(v);
            }
            let mut sparse: Vec<Option<SparseDoc>> = vec![None; self.schema.sparse_spaces.len()];
            for (name, input) in p.sparse {
                let i = self
                    .schema
                    .sparse_index(&name)
                    .ok_or_else(|| invalid(format!("unknown sparse space {name:?}")))?;
                let encoded = match (&self.encoders[i], input) {
                    (Some(enc), SparseInput::Text(t)) => SparseDoc::Terms(enc.encode_document(&t)),
                    (None, SparseInput::Vector(v)) => {
                        if v.indices.len() != v.values.len()
                            || v.indices.windows(2).any(|w| w[0] >= w[1])
                        {
                            return Err(invalid(format!(
                                "sparse space {name:?}: indices must be strictly increasing, one value each"
                            )));
                        }
                        if let Some(x) = v.values.iter().find(|x| !x.is_finite() || **x < 0.0) {
                            return Err(invalid(format!(
                                "sparse space {name:?}: weights must be finite and non-negative, got {x}"
                            )));
                        }
                        SparseDoc::Weights(v)
                    }
                    (Some(_), SparseInput::Vector(_)) => {
                        return Err(invalid(format!(
                            "sparse space {name:?} is BM25: give it text, not weights"
                        )))
                    }
                    (None, SparseInput::Text(_)) => {
                        return Err(invalid(format!(
                            "sparse space {name:?} takes weights (a sparse vector), not text"
                        )))
                    }
                    (_, SparseInput::Terms(_)) => {
                        return Err(invalid(format!(
                            "sparse space {name:?}: weighted terms are a query form; a point gives a BM25 space its text"
                        )))
                    }
                };
                if sparse[i].replace(encoded).is_some() {
                    return Err(invalid(format!("sparse space {name:?} given twice")));
                }
            }
            let expires_at =
                crate::clock::effective_expiry(p.expires_at, self.schema.ttl.as_ref(), &payload);
            out.push(PointWrite {
                id: p.id,
                vectors: vs,
                payload,
                sparse: sparse.into_iter().map(|s| s.unwrap_or_default()).collect(),
                expires_at,
            });
        }
        Ok(out)
    }

    /// Checks a batch as [`Collection::upsert`] would (schema, values, id kinds) without
    /// writing anything: lets an importer refuse a whole file before its first batch lands.
    pub fn check(&self, scope: &Scope, points: &[PointInput]) -> Result<()> {
        const CHUNK: usize = 4096;
        let scope = self.resolve(scope)?;
        let key = self.schema.tenant_key.as_deref();
        // (position, id, tenant) of every point, as validation completed its payload.
        let mut owners = Vec::new();
        for (i, chunk) in points.chunks(CHUNK).enumerate() {
            let valid = self.validate(chunk.to_vec(), &scope).map_err(|e| match e {
                EngineError::InvalidPoint { index, id, reason } => EngineError::InvalidPoint {
                    index: i * CHUNK + index,
                    id,
                    reason,
                },
                e => e,
            })?;
            if let Some(key) = key {
                owners.extend(valid.into_iter().enumerate().map(|(j, p)| {
                    let t = tenant_of(&p.payload, key);
                    (i * CHUNK + j, p.id, t)
                }));
            }
        }
        let st = self.state.read();
        check_id_kinds(st.id_kind, points.iter().map(|p| &p.id)).map_err(EngineError::MixedIds)?;
        if let Some(key) = key {
            let owners = owners.iter().map(|(i, id, t)| (*i, id, t.clone()));
            check_owners(&st, key, owners, &HashSet::new())?;
        }
        Ok(())
    }

    /// Inserts or replaces points. Returns once the batch is in the WAL (fsynced under the
    /// default durability) and visible to queries. The batch is all-or-nothing. In a
    /// multi-tenant collection every point must belong to the scope's tenant (a point that
    /// leaves a top-level tenant key out gets it), and an id held by another tenant is refused.
    pub fn upsert(&self, scope: &Scope, points: Vec<PointInput>) -> Result<u64> {
        let scope = self.resolve(scope)?;
        let points = self.validate(points, &scope)?;
        if points.is_empty() {
            return Ok(self.state.read().applied_seq);
        }
        let mut w = self.writer.lock();
        self.check_batch(&points, &[])?;
        let seq = self.log(&mut w, &Op::Upsert(points))?;
        self.after_write(w);
        Ok(seq)
    }

    /// Deletes points by id (ids that do not exist in the scope are ignored); returns how many
    /// existed.
    pub fn delete(&self, scope: &Scope, ids: Vec<PointId>) -> Result<usize> {
        self.delete_with(scope, || Ok(ids))
    }

    /// Deletes the ids `ids` gives, calling it with the writer lock held (so that nothing is
    /// written between choosing the ids and logging their deletion).
    pub(crate) fn delete_with(
        &self,
        scope: &Scope,
        ids: impl FnOnce() -> Result<Vec<PointId>>,
    ) -> Result<usize> {
        let scope = self.resolve(scope)?;
        let mut w = self.writer.lock();
        let ids = self.existing_in_scope(&scope, ids()?);
        if ids.is_empty() {
            return Ok(0);
        }
        let n = ids.len();
        self.log(&mut w, &Op::Delete(ids))?;
        self.after_write(w);
        Ok(n)
    }

    /// Deletes `delete` and upserts `points` as one WAL record: after a crash either both
    /// happened or neither did, and readers never see the state in between. Used to replace a
    /// document's chunks. Validation is that of [`Collection::upsert`].
    pub fn replace(
        &self,
        scope: &Scope,
        delete: Vec<PointId>,
        points: Vec<PointInput>,
    ) -> Result<u64> {
        let scope = self.resolve(scope)?;
        let points = self.validate(points, &scope)?;
        let mut w = self.writer.lock();
        let delete = self.existing_in_scope(&scope, delete);
        if points.is_empty() && delete.is_empty() {
            return Ok(self.state.read().applied_seq);
        }
        // Deleted ids are free to be written again by this record, by any tenant the scope
        // allows: check owners as if the deletes had happened.
        self.check_batch(&points, &delete)?;
        let seq = self.log(
            &mut w,
            &Op::Replace {
                delete,
                upsert: points,
            },
        )?;
        self.after_write(w);
        Ok(seq)
    }

    /// After a logged write: flush once the mutable segment is over its threshold, and start a
    /// background merge when the policy asks for one — deletes and updates tombstone points in
    /// immutable segments, so a write that adds no point can still push a segment over
    /// [`CollectionConfig::vacuum_deleted_fraction`].
    fn after_write(&self, w: MutexGuard<'_, Writer>) {
        if self.state.read().mutable.len() as usize >= self.config.flush_points {
            self.flush_after_write(w);
        } else {
            drop(w);
            self.spawn_merge_if_needed();
        }
    }

    /// Checks a scope against the schema.
    pub(crate) fn resolve(&self, scope: &Scope) -> Result<Resolved> {
        Resolved::new(self.name(), &self.schema, scope)
    }

    /// Ids (deduplicated, in order) of live (unexpired) points inside the scope.
    fn existing_in_scope(&self, scope: &Resolved, ids: Vec<PointId>) -> Vec<PointId> {
        let now = self.now_ms();
        let st = self.state.read();
        let mut seen = HashSet::new();
        ids.into_iter()
            .filter(|id| match st.find_live(id, now) {
                Some(loc) => scope.admits_at(&st, loc),
                None => false,
            })
            .filter(|id| seen.insert(id.clone()))
            .collect()
    }

    /// Checks id kinds and, in a multi-tenant collection, that no point changes tenant, for a
    /// batch that first deletes `deleted`. Called with the writer lock held, so nothing changes
    /// between the check and the append.
    fn check_batch(&self, points: &[PointWrite], deleted: &[PointId]) -> Result<()> {
        let st = self.state.read();
        check_id_kinds(st.id_kind, points.iter().map(|p| &p.id)).map_err(EngineError::MixedIds)?;
        let Some(key) = &self.schema.tenant_key else {
            return Ok(());
        };
        let deleted: HashSet<&PointId> = deleted.iter().collect();
        let owners = points
            .iter()
            .enumerate()
            .map(|(i, p)| (i, &p.id, tenant_of(&p.payload, key)));
        check_owners(&st, key, owners, &deleted)
    }

    /// Checks (and completes) the tenant key of a payload: one tenant id of the key's type,
    /// the scope's tenant when the scope names one.
    fn check_tenant_value(
        &self,
        payload: &mut Value,
        key: &str,
        scope: &Resolved,
    ) -> std::result::Result<(), String> {
        if let Resolved::Tenant { tenant, .. } = scope {
            fill_tenant(payload, key, tenant);
        }
        let vals = sextant_core::filter::payload_values(payload, key);
        let [v] = vals.as_slice() else {
            return Err(format!(
                "the collection is multi-tenant: payload key {key:?} must hold one string or integer tenant id"
            ));
        };
        let t = TenantId::from_json(v).map_err(|e| e.to_string())?;
        crate::scope::check_type(&self.schema, key, &t)?;
        if let Resolved::Tenant { tenant, .. } = scope {
            if *tenant != t {
                return Err(format!(
                    "the point belongs to tenant {t}, outside the scope of tenant {tenant}"
                ));
            }
        }
        Ok(())
    }

    /// Appends an op to the WAL and applies it.
    fn log(&self, w: &mut Writer, op: &Op) -> Result<u64> {
        let seq = w
            .wal
            .last_seq()
            .unwrap_or(0)
            .max(w.manifest.flushed_seq)
            .max(self.state.read().applied_seq)
            + 1;
        w.wal.append(seq, &op.encode())?;
        self.state.write().apply(seq, op);
        Ok(seq)
    }

    /// Forces everything written so far to stable storage (matters only under a relaxed
    /// durability policy).
    pub fn sync(&self) -> Result<()> {
        self.writer.lock().wal.sync()?;
        Ok(())
    }
}

/// The schema a new collection stores: each BM25 space's analyzer configuration written out
/// in full, with the current analyzer version where none is given (a stored configuration
/// without a version is one written before versions existed, and means version 1).
pub(crate) fn with_current_analyzers(mut schema: Schema) -> Result<Schema> {
    for s in &mut schema.sparse_spaces {
        if let SparseKind::Bm25 { analyzer, .. } = &mut s.kind {
            let mut given = analyzer.take();
            if given.is_null() {
                given = serde_json::json!({});
            }
            if let Value::Object(m) = &mut given {
                m.entry("version")
                    .or_insert(sextant_text::ANALYZER_VERSION.into());
            }
            let defaults = serde_json::to_value(AnalyzerConfig::default()).expect("serialises");
            if let (Value::Object(full), Value::Object(m)) = (defaults, &given) {
                let mut full = full;
                full.extend(m.clone());
                given = Value::Object(full);
            }
            let config: AnalyzerConfig = serde_json::from_value(given).map_err(|e| {
                EngineError::invalid(
                    "analyzer",
                    format!(
                        "sparse space {:?}: analyzer configuration does not parse: {e}",
                        s.name
                    ),
                )
            })?;
            config.validate().map_err(|e| {
                EngineError::invalid("analyzer", format!("sparse space {:?}: {e}", s.name))
            })?;
            *analyzer = serde_json::to_value(config).expect("serialises");
        }
    }
    Ok(schema)
}

/// Builds the BM25 encoder of each sparse space from the schema.
pub(crate) fn sparse_encoders(schema: &Schema) -> Result<Vec<Option<Bm25Encoder>>> {
    schema
        .sparse_spaces
        .iter()
        .map(|s| match &s.kind {
            SparseKind::Bm25 { k1, b, analyzer } => {
                let config: AnalyzerConfig = if analyzer.is_null() {
                    // Stored before analyzer versions: the version-1 defaults.
                    AnalyzerConfig {
                        version: sextant_text::LEGACY_ANALYZER_VERSION,
                        ..AnalyzerConfig::default()
                    }
                } else {
                    serde_json::from_value(analyzer.clone()).map_err(|e| {
                        EngineError::invalid(
                            "analyzer",
                            format!(
                                "sparse space {:?}: analyzer configuration does not parse: {e}",
                                s.name
                            ),
                        )
                    })?
                };
                Ok(Some(Bm25Encoder::new(
                    config,
                    Bm25Params { k1: *k1, b: *b },
                )))
            }
            SparseKind::Dot => Ok(None),
        })
        .collect()
}

fn space_names(schema: &Schema) -> String {
    schema
        .spaces
        .iter()
        .map(|s| s.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Sets a missing top-level tenant key to the scope's tenant (a dotted key is left for the
/// check to refuse: the point must carry it).
fn fill_tenant(payload: &mut Value, key: &str, tenant: &TenantId) {
    if key.contains('.') {
        return;
    }
    if let Value::Object(m) = payload {
        m.entry(key.to_string()).or_insert_with(|| tenant.to_json());
    }
}

/// Refuses a batch in which an id changes tenant: against the stored points (ids in
/// `deleted` excepted) and within the batch.
fn check_owners<'a>(
    st: &State,
    key: &str,
    owners: impl Iterator<Item = (usize, &'a PointId, Option<TenantId>)>,
    deleted: &HashSet<&PointId>,
) -> Result<()> {
    let mut in_batch: std::collections::HashMap<&PointId, Option<TenantId>> =
        std::collections::HashMap::new();
    for (index, id, tenant) in owners {
        let before = match in_batch.get(id) {
            Some(t) => Some(t.clone()),
            None if deleted.contains(id) => None,
            None => st.find(id).map(|loc| tenant_of(&st.payload_at(loc), key)),
        };
        if let Some(before) = before {
            if before != tenant {
                return Err(EngineError::TenantConflict(format!(
                    "point {index} (id {id}): the id belongs to another tenant, and a point never moves between tenants (delete it first)"
                )));
            }
        }
        in_batch.insert(id, tenant);
    }
    Ok(())
}
