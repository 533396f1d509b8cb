//! The query-result cache: bounded, keyed by the resolved collection, its write generation, the
//! caller's tenant scope and the request's canonical JSON. Every write to a collection bumps its
//! generation, so a cached answer is never served after a write it does not reflect; the routes
//! add the collection's next expiry (`Collection::next_expiry`) to the kind, so an answer is
//! never served after a point in it (or any point) expired.

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::Value;
use std::collections::{HashMap, VecDeque};

/// Bounded map with first-in-first-out eviction (hits do not reorder: the cache is small and
/// writes invalidate it often, so recency tracking would cost more than it saves).
#[derive(Debug)]
pub struct QueryCache {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    map: HashMap<String, Bytes>,
    order: VecDeque<String>,
    generations: HashMap<String, u64>,
}

impl QueryCache {
    /// A cache of at most `capacity` answers; 0 turns it off.
    pub fn new(capacity: usize) -> QueryCache {
        QueryCache {
            capacity,
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Whether it is on.
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    /// The key of a request to `collection` (resolved name).
    pub fn key(&self, collection: &str, scope: &str, kind: &str, request: &Value) -> String {
        let generation = self
            .inner
            .lock()
            .generations
            .get(collection)
            .copied()
            .unwrap_or(0);
        format!("{collection}\u{0}{generation}\u{0}{scope}\u{0}{kind}\u{0}{request}")
    }

    /// A cached answer.
    pub fn get(&self, key: &str) -> Option<Bytes> {
        if !self.enabled() {
            return None;
        }
        let hit = self.inner.lock().map.get(key).cloned();
        let outcome = if hit.is_some() { "hit" } else { "miss" };
        metrics::counter!("sextant_cache_requests_total", "cache" => "query", "outcome" => outcome)
            .increment(1);
        hit
    }

    /// Stores an answer computed under the generation `key` names. A write between key and put
    /// makes the key stale: it is stored, but no later lookup builds it again.
    pub fn put(&self, key: String, value: Bytes) {
        if !self.enabled() {
            return;
        }
        let mut g = self.inner.lock();
        if g.map.insert(key.clone(), value).is_none() {
            g.order.push_back(key);
        }
        while g.map.len() > self.capacity {
            match g.order.pop_front() {
                Some(old) => {
                    g.map.remove(&old);
                }
                None => break,
            }
        }
        metrics::gauge!("sextant_cache_entries", "cache" => "query").set(g.map.len() as f64);
    }

    /// Invalidates `collection`'s answers. Call after a write is applied and before it is
    /// acknowledged: a read that builds its key after this sees the write.
    pub fn invalidate(&self, collection: &str) {
        let mut g = self.inner.lock();
        *g.generations.entry(collection.to_string()).or_insert(0) += 1;
        let prefix = format!("{collection}\u{0}");
        let Inner { map, order, .. } = &mut *g;
        map.retain(|k, _| !k.starts_with(&prefix));
        order.retain(|k| map.contains_key(k));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_invalidate_and_capacity_bounds() {
        let c = QueryCache::new(2);
        let k = c.key("a", "", "search", &serde_json::json!({"k": 1}));
        c.put(k.clone(), Bytes::from_static(b"1"));
        assert!(c.get(&k).is_some());
        c.invalidate("a");
        assert!(c.get(&k).is_none());
        assert_ne!(k, c.key("a", "", "search", &serde_json::json!({"k": 1})));
        for i in 0..5 {
            c.put(
                c.key("b", "", "s", &serde_json::json!(i)),
                Bytes::from(i.to_string()),
            );
        }
        assert_eq!(c.inner.lock().map.len(), 2);
        let off = QueryCache::new(0);
        off.put("x".into(), Bytes::from_static(b"1"));
        assert!(off.get("x").is_none());
    }
}
