//! The filters an immutable segment answered recently, with the offsets each matched.
//!
//! A filtered search needs the segment's matching offsets as a bitmap before it can plan. The
//! payload indexes build it per query: a range over an integer field unions one bitmap per
//! value (at 50% of a 390,000-point segment that was more than half of a search's time), and
//! a key without an index costs a scan of every payload. An immutable segment's payloads
//! never change, so the answer to a filter over all of its offsets never changes either;
//! deletes and expiry are applied afterwards by the caller. This is the segment-level filter
//! cache Lucene keeps for the same reason.
//!
//! Bounded by entries and by bytes; least recently used first out. The mutable segment has
//! no cache (its payloads change with every write).

use std::sync::Arc;

use parking_lot::Mutex;
use roaring::RoaringBitmap;
use sextant_core::Filter;

/// Most filters kept per segment.
pub const MAX_ENTRIES: usize = 32;
/// Most bitmap bytes kept per segment (a 50% filter over 1M offsets is about 128 KiB).
pub const MAX_BYTES: usize = 4 << 20;

/// Recently answered filters of one segment, most recent last.
#[derive(Debug, Default)]
pub struct FilterCache {
    inner: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    list: Vec<(Filter, Arc<RoaringBitmap>, usize)>,
    bytes: usize,
    hits: u64,
    misses: u64,
}

/// Hits and misses of a filter cache, and what it holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FilterCacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups computed (and then kept when they fit).
    pub misses: u64,
    /// Filters held.
    pub entries: u64,
    /// Bytes of the bitmaps held.
    pub bytes: u64,
}

impl std::ops::AddAssign for FilterCacheStats {
    fn add_assign(&mut self, o: FilterCacheStats) {
        self.hits += o.hits;
        self.misses += o.misses;
        self.entries += o.entries;
        self.bytes += o.bytes;
    }
}

impl FilterCache {
    /// The offsets `filter` matches, from the cache or from `compute` (kept when it fits).
    pub fn get_or(
        &self,
        filter: &Filter,
        compute: impl FnOnce() -> RoaringBitmap,
    ) -> Arc<RoaringBitmap> {
        {
            let mut e = self.inner.lock();
            if let Some(i) = e.list.iter().position(|(f, _, _)| f == filter) {
                let entry = e.list.remove(i);
                let found = entry.1.clone();
                e.list.push(entry);
                e.hits += 1;
                return found;
            }
            e.misses += 1;
        }
        // Computed without the lock: two searches may compute the same filter at once, and
        // the second keeps its own copy (the list never holds a filter twice).
        let bitmap = Arc::new(compute());
        let size = bitmap.serialized_size();
        if size <= MAX_BYTES {
            let mut e = self.inner.lock();
            if !e.list.iter().any(|(f, _, _)| f == filter) {
                while !e.list.is_empty()
                    && (e.list.len() >= MAX_ENTRIES || e.bytes + size > MAX_BYTES)
                {
                    let (_, _, gone) = e.list.remove(0);
                    e.bytes -= gone;
                }
                e.bytes += size;
                e.list.push((filter.clone(), bitmap.clone(), size));
            }
        }
        bitmap
    }

    /// Forgets every filter (for a segment whose payloads change).
    pub fn clear(&mut self) {
        let e = self.inner.get_mut();
        e.list.clear();
        e.bytes = 0;
    }

    /// Hits, misses and what is held.
    pub fn stats(&self) -> FilterCacheStats {
        let e = self.inner.lock();
        FilterCacheStats {
            hits: e.hits,
            misses: e.misses,
            entries: e.list.len() as u64,
            bytes: e.bytes as u64,
        }
    }

    /// Heap bytes held: the bitmaps (by their serialised size) and the filters' entries.
    pub fn memory_bytes(&self) -> usize {
        let e = self.inner.lock();
        e.bytes + e.list.capacity() * std::mem::size_of::<(Filter, Arc<RoaringBitmap>, usize)>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(n: u32) -> Filter {
        Filter::from_json(&serde_json::json!({"must": [{"key": "k", "match": {"value": n}}]}))
            .unwrap()
    }

    #[test]
    fn answers_a_repeated_filter_without_computing_it_again() {
        let cache = FilterCache::default();
        let mut computed = 0;
        for _ in 0..3 {
            let b = cache.get_or(&filter(1), || {
                computed += 1;
                (0..10).collect()
            });
            assert_eq!(b.len(), 10);
        }
        assert_eq!(computed, 1);
        let s = cache.stats();
        assert_eq!((s.hits, s.misses, s.entries), (2, 1, 1));
        // Another filter is another entry.
        let b = cache.get_or(&filter(2), || (5..7).collect());
        assert_eq!(b.iter().collect::<Vec<_>>(), vec![5, 6]);
        assert_eq!(cache.get_or(&filter(1), || unreachable!()).len(), 10);
    }

    #[test]
    fn stays_within_its_bounds_dropping_the_least_recently_used() {
        let cache = FilterCache::default();
        for n in 0..(MAX_ENTRIES as u32 + 5) {
            cache.get_or(&filter(n), || [n].into_iter().collect());
            // Keep filter 0 recently used.
            cache.get_or(&filter(0), || unreachable!("filter 0 stays cached"));
        }
        let s = cache.stats();
        assert_eq!(s.entries, MAX_ENTRIES as u64);
        let mut recomputed = false;
        cache.get_or(&filter(1), || {
            recomputed = true;
            RoaringBitmap::new()
        });
        assert!(recomputed, "the least recently used filter was dropped");
        // A bitmap over the byte bound is answered but not kept.
        let big: RoaringBitmap = (0..(MAX_BYTES as u32 * 8)).step_by(2).collect();
        assert!(big.serialized_size() > MAX_BYTES);
        let before = cache.stats();
        assert_eq!(cache.get_or(&filter(9999), || big.clone()).len(), big.len());
        assert_eq!(cache.stats().entries, before.entries);
        assert!(cache.stats().bytes <= MAX_BYTES as u64);
    }

    #[test]
    fn clear_forgets_everything() {
        let mut cache = FilterCache::default();
        cache.get_or(&filter(1), || (0..3).collect());
        cache.clear();
        assert_eq!(cache.stats().entries, 0);
        assert_eq!(cache.stats().bytes, 0);
        let b = cache.get_or(&filter(1), || (0..4).collect());
        assert_eq!(b.len(), 4);
    }
}
