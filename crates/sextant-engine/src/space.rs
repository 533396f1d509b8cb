//! Space held by deleted points: what a merge would give back, per segment and in total, as
//! `info` reports it.
//!
//! A deleted (or overwritten) point stays in its immutable segment, masked by the segment's
//! tombstones, until a merge rewrites the segment without it. What it holds is estimated, not
//! measured: its payload bytes exactly (payloads vary most in size), plus its share by count
//! of everything else (vectors, graph links, ids, postings — per point roughly constant), plus
//! the tombstone file itself, which a rewrite without concurrent deletes leaves behind.

use std::path::Path;

use roaring::RoaringBitmap;
use sextant_storage::segment::Segment;

/// What one segment holds and how much of it is reclaimable.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Held {
    /// Bytes of the segment's files.
    pub(crate) disk_bytes: u64,
    /// Estimated bytes of those files that hold deleted points.
    pub(crate) reclaimable_bytes: u64,
    /// Estimated heap bytes that hold deleted points.
    pub(crate) reclaimable_memory_bytes: u64,
}

/// The fraction of `points` that `deleted` are (0 for an empty segment).
pub(crate) fn fraction(deleted: u64, points: u64) -> f64 {
    if points == 0 {
        0.0
    } else {
        deleted as f64 / points as f64
    }
}

/// Estimates what the deleted points of `seg` hold, its files in `dir` (`None` for the mutable
/// segment, which has no files: its points are in the WAL until a flush).
pub(crate) fn held(dir: Option<&Path>, seg: &Segment, deleted: &RoaringBitmap) -> Held {
    let (mut files, mut tombstones) = (0u64, 0u64);
    if let Some(dir) = dir {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let len = e
                .metadata()
                .map_or(0, |m| if m.is_file() { m.len() } else { 0 });
            files += len;
            if e.file_name().to_string_lossy().starts_with("deleted-") {
                tombstones += len;
            }
        }
    }
    let points = u64::from(seg.len());
    if deleted.is_empty() || points == 0 {
        return Held {
            disk_bytes: files,
            ..Held::default()
        };
    }
    let payload_len = |o: u32| seg.payload_raw(o).len() as u64;
    let all_payloads: u64 = (0..seg.len()).map(payload_len).sum();
    let dead_payloads: u64 = deleted.iter().map(payload_len).sum();
    let share = fraction(deleted.len(), points);
    let rest = |total: u64| (total.saturating_sub(all_payloads) as f64 * share).round() as u64;
    let memory = seg.memory_bytes() as u64;
    Held {
        disk_bytes: files,
        reclaimable_bytes: if dir.is_some() {
            (dead_payloads + rest(files.saturating_sub(tombstones)) + tombstones).min(files)
        } else {
            0
        },
        reclaimable_memory_bytes: (dead_payloads + rest(memory)).min(memory),
    }
}
