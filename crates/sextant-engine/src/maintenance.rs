//! Keeping a collection in shape: flush (mutable segment → immutable segment + manifest + WAL
//! truncation), merge/vacuum (rewrite segments without their deleted points, off the query
//! path), optimize, background merges, and resolving duplicate ids on open.
//!
//! Expired points (see [`crate::clock`]) are dead like deleted ones: a flush leaves those of
//! the mutable segment out of the segment it writes, the merge policy counts them in a
//! segment's deleted fraction, and a merge drops them. Both judge expiry by the collection's
//! clock once, when they take their snapshot of the state.

use std::sync::Arc;

use parking_lot::MutexGuard;
use roaring::RoaringBitmap;
use sextant_storage::schema::SegmentEntry;
use sextant_storage::segment::{write_tombstones, Segment};

use crate::collection::{seg_dir, Collection, Slot, State, Writer, MANIFEST};
use crate::error::{chain, Result};
use crate::query::dead_at;

impl Collection {
    /// Blocks until a running merge (background or not) has finished.
    pub fn wait_for_merge(&self) {
        let handle = self.merge_thread.lock().take();
        if let Some(h) = handle {
            let _ = h.join();
        }
        drop(self.merging.lock());
    }

    /// Stops the recall probe and waits for a running merge: the collection is being closed,
    /// deleted or replaced.
    pub(crate) fn stop_background(&self) {
        self.probe.stop();
        self.wait_for_merge();
    }

    /// Starts a merge on a background thread when the policy asks for one and none is running.
    pub(crate) fn spawn_merge_if_needed(&self) {
        let mut slot = self.merge_thread.lock();
        if !self.config.background_merge || slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        if self.merge_plan(false, false).is_empty() {
            return;
        }
        let Some(me) = self.this.upgrade() else {
            return;
        };
        let spawned = std::thread::Builder::new()
            .name("sextant-merge".into())
            .spawn(move || loop {
                match me.merge() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        *me.background_error.lock() = Some(chain(&e));
                        break;
                    }
                }
            });
        match spawned {
            Ok(h) => *slot = Some(h),
            Err(e) => {
                *self.background_error.lock() = Some(format!("cannot start a merge thread: {e}"))
            }
        }
    }

    /// Writes the mutable segment as an immutable segment (building its indexes), persists
    /// tombstones, replaces the manifest and truncates the WAL.
    pub fn flush(&self) -> Result<()> {
        let mut w = self.writer.lock();
        self.flush_locked(&mut w)
    }

    /// Flushes after a write pushed the mutable segment over its threshold. The write is
    /// already durable in the WAL, so a failed flush is not the write's error: it is kept as
    /// the collection's background error (see `info`), and the next write over the threshold
    /// (or an explicit flush) tries again with a fresh segment id and generation.
    pub(crate) fn flush_after_write(&self, mut w: MutexGuard<'_, Writer>) {
        if let Err(e) = self.flush_locked(&mut w) {
            *self.background_error.lock() = Some(format!(
                "flush after a write failed (the write itself is durable; the flush is retried): {}",
                chain(&e)
            ));
            return;
        }
        drop(w);
        self.spawn_merge_if_needed();
    }

    pub(crate) fn flush_locked(&self, w: &mut Writer) -> Result<()> {
        {
            let st = self.state.read();
            let dirty = st.segments.iter().any(|s| s.dirty);
            if st.applied_seq == w.manifest.flushed_seq && !dirty && st.mutable.is_empty() {
                return Ok(());
            }
        }
        // The generation and the segment id are used up even if this flush fails, so a retry
        // never writes over files a half-finished attempt may have left (or that a manifest
        // whose rename landed without its directory sync may name).
        let gen = w.manifest.generation + 1;
        w.manifest.generation = gen;
        let fs = &*self.fs;
        let now = self.now_ms();
        let (new_slot, applied, tomb_writes) = {
            let st = self.state.read();
            let dead = dead_at(&st.mutable, &st.mutable_deleted, now);
            let live = u64::from(st.mutable.len()) - dead.len();
            let new_slot = if live > 0 {
                let id = w.manifest.next_segment;
                w.manifest.next_segment += 1;
                let (mut seg, _) = Segment::build(id, &self.schema, &[(&st.mutable, &dead)], None)?;
                seg.write(fs, &seg_dir(&self.dir, id))?;
                Some(seg)
            } else {
                None
            };
            let mut tomb_writes = Vec::new();
            for s in st.segments.iter().filter(|s| s.dirty) {
                let name = format!("deleted-{gen}.bin");
                write_tombstones(fs, &seg_dir(&self.dir, s.seg.id).join(&name), &s.deleted)?;
                tomb_writes.push((s.seg.id, name));
            }
            (new_slot, st.applied_seq, tomb_writes)
        };
        let mut m = w.manifest.clone();
        m.generation = gen;
        m.flushed_seq = applied;
        m.id_kind = self.state.read().id_kind.map(Into::into);
        for (id, name) in &tomb_writes {
            if let Some(e) = m.segments.iter_mut().find(|e| e.id == *id) {
                e.tombstones = Some(name.clone());
            }
        }
        if let Some(seg) = &new_slot {
            m.segments.push(SegmentEntry {
                id: seg.id,
                points: u64::from(seg.len()),
                tombstones: None,
            });
        }
        m.write(fs, &self.dir.join(MANIFEST))?;
        let old_files: Vec<(u64, Option<String>)> = {
            let mut st = self.state.write();
            let mut old = Vec::new();
            for s in st.segments.iter_mut() {
                if let Some((_, name)) = tomb_writes.iter().find(|(id, _)| *id == s.seg.id) {
                    old.push((s.seg.id, s.tomb_file.replace(name.clone())));
                    s.dirty = false;
                }
            }
            if let Some(seg) = new_slot {
                st.segments.push(Slot {
                    seg: Arc::new(seg),
                    deleted: RoaringBitmap::new(),
                    tomb_file: None,
                    dirty: false,
                });
            }
            st.mutable = Segment::new_mutable(&self.schema);
            st.mutable_deleted = RoaringBitmap::new();
            old
        };
        w.manifest = m;
        w.wal.truncate_through(applied)?;
        for (id, file) in old_files {
            if let Some(f) = file {
                let _ = fs.remove_file(&seg_dir(&self.dir, id).join(f));
            }
        }
        Ok(())
    }

    /// Which segments a merge would rewrite now: segments whose deleted fraction reached
    /// [`crate::CollectionConfig::vacuum_deleted_fraction`], plus the smallest ones while there
    /// are more than the configured maximum. `all` picks every
    /// segment (an optimize); `force` picks a lone clean one too.
    fn merge_plan(&self, all: bool, force: bool) -> Vec<u64> {
        let now = self.now_ms();
        let st = self.state.read();
        if all {
            let ids: Vec<u64> = st.segments.iter().map(|s| s.seg.id).collect();
            let dirty = st
                .segments
                .iter()
                .any(|s| !s.deleted.is_empty() || s.seg.any_expired_at(now));
            return if ids.len() > 1 || dirty || force {
                ids
            } else {
                Vec::new()
            };
        }
        let fraction = self.config.vacuum_deleted_fraction;
        let mut pick: Vec<u64> = st
            .segments
            .iter()
            .filter(|s| {
                let dead = dead_at(&s.seg, &s.deleted, now).len();
                dead > 0 && dead as f64 >= fraction * f64::from(s.seg.len())
            })
            .map(|s| s.seg.id)
            .collect();
        if st.segments.len() > self.config.max_segments {
            let mut by_size: Vec<(u64, u64)> = st
                .segments
                .iter()
                .map(|s| {
                    let dead = dead_at(&s.seg, &s.deleted, now).len();
                    (u64::from(s.seg.len()) - dead, s.seg.id)
                })
                .collect();
            by_size.sort();
            let excess = st.segments.len() - self.config.max_segments + 1;
            pick.extend(by_size.iter().take(excess.max(2)).map(|&(_, id)| id));
        }
        pick.sort();
        pick.dedup();
        pick
    }

    /// Runs one merge/vacuum if the policy asks for one; returns whether it did. Safe to call
    /// from a background thread: queries and writes go on while the new segment is built.
    pub fn merge(&self) -> Result<bool> {
        self.merge_segments(false)
    }

    /// The merge policy after a bulk write (an import, an ingest): merges until the policy asks
    /// for no more, so the many small segments the write flushed become few before the next
    /// query. Front ends call this once the bulk write is durable; a failure here loses nothing
    /// written. Returns how many merges ran.
    pub fn settle(&self) -> Result<usize> {
        let mut merges = 0;
        while self.merge()? {
            merges += 1;
        }
        Ok(merges)
    }

    /// Flushes and rewrites all segments into one, dropping deleted points.
    pub fn optimize(&self) -> Result<()> {
        self.flush()?;
        self.merge_segments(true).map(|_| ())
    }

    /// Rewrites every segment into one even when nothing would be dropped (a data-key rotation
    /// rewrites every file); returns whether there was a segment to rewrite.
    pub(crate) fn merge_all_segments(&self) -> Result<bool> {
        self.merge_segments_with(true, true)
    }

    fn merge_segments(&self, all: bool) -> Result<bool> {
        self.merge_segments_with(all, false)
    }

    fn merge_segments_with(&self, all: bool, force: bool) -> Result<bool> {
        let _one_at_a_time = self.merging.lock();
        let pick = self.merge_plan(all, force);
        if pick.is_empty() {
            return Ok(false);
        }
        // What the new segment leaves out: each segment's tombstones and expired points.
        let now = self.now_ms();
        let snapshot: Vec<(Arc<Segment>, RoaringBitmap)> = {
            let st = self.state.read();
            st.segments
                .iter()
                .filter(|s| pick.contains(&s.seg.id))
                .map(|s| (s.seg.clone(), dead_at(&s.seg, &s.deleted, now).into_owned()))
                .collect()
        };
        let id = {
            let mut w = self.writer.lock();
            let id = w.manifest.next_segment;
            w.manifest.next_segment += 1;
            id
        };
        let sources: Vec<(&Segment, &RoaringBitmap)> =
            snapshot.iter().map(|(s, d)| (s.as_ref(), d)).collect();
        let (mut seg, maps) = Segment::build(id, &self.schema, &sources, None)?;
        let dir = seg_dir(&self.dir, id);
        let fs = &*self.fs;
        seg.write(fs, &dir)?;

        let mut w = self.writer.lock();
        let mut deleted = RoaringBitmap::new();
        {
            let st = self.state.read();
            for ((old, before), map) in snapshot.iter().zip(&maps) {
                let now = &st
                    .segments
                    .iter()
                    .find(|s| s.seg.id == old.id)
                    .expect("only merges remove segments, one at a time")
                    .deleted;
                for o in now - before {
                    let n = map[o as usize];
                    if n != u32::MAX {
                        deleted.insert(n);
                    }
                }
            }
        }
        // Used up even if this merge fails (see `flush_locked`).
        let gen = w.manifest.generation + 1;
        w.manifest.generation = gen;
        let tomb = if deleted.is_empty() {
            None
        } else {
            let name = format!("deleted-{gen}.bin");
            write_tombstones(fs, &dir.join(&name), &deleted)?;
            Some(name)
        };
        let mut m = w.manifest.clone();
        m.generation = gen;
        let pos = m
            .segments
            .iter()
            .position(|e| pick.contains(&e.id))
            .unwrap_or(m.segments.len());
        m.segments.retain(|e| !pick.contains(&e.id));
        let at = pos.min(m.segments.len());
        let empty = seg.is_empty();
        if !empty {
            m.segments.insert(
                at,
                SegmentEntry {
                    id,
                    points: u64::from(seg.len()),
                    tombstones: tomb.clone(),
                },
            );
        }
        m.write(fs, &self.dir.join(MANIFEST))?;
        {
            let mut st = self.state.write();
            st.segments.retain(|s| !pick.contains(&s.seg.id));
            if !empty {
                st.segments.insert(
                    at,
                    Slot {
                        seg: Arc::new(seg),
                        deleted,
                        tomb_file: tomb,
                        dirty: false,
                    },
                );
            }
        }
        w.manifest = m;
        drop(w);
        for old in pick {
            let _ = fs.remove_dir_all(&seg_dir(&self.dir, old));
        }
        if empty {
            let _ = fs.remove_dir_all(&dir);
        }
        Ok(true)
    }
}

/// Tombstones the older copy of any id live in two segments (which a correct flush never
/// leaves behind; checked because replay must be idempotent whatever happened before).
pub(crate) fn resolve_duplicates(st: &mut State) -> usize {
    let mut resolved = 0;
    for newer in (0..st.segments.len()).rev() {
        for older in 0..newer {
            let (a, b) = st.segments.split_at_mut(newer);
            let (old, new) = (&mut a[older], &mut b[0]);
            for o in 0..old.seg.len() {
                if old.deleted.contains(o) {
                    continue;
                }
                let Some(id) = old.seg.id(o) else { continue };
                if let Some(n) = new.seg.offset(&id).filter(|&n| !new.deleted.contains(n)) {
                    if new.seg.seq(n) >= old.seg.seq(o) {
                        old.deleted.insert(o);
                        old.dirty = true;
                    } else {
                        new.deleted.insert(n);
                        new.dirty = true;
                    }
                    resolved += 1;
                }
            }
        }
    }
    resolved
}
