//! The sparse inverted index: term → postings of (point, value), searched top-k with MaxScore.
//!
//! One structure serves BM25 and learned sparse vectors (SPLADE):
//! - [`SparseScoring::Dot`]: a posting's contribution is `query weight × value`;
//! - [`SparseScoring::Bm25`]: the value is the term frequency, and the contribution is
//!   `query weight × tf·(k1+1) / (tf + k1·(1 − b + b·len/avg_len))` with the point's length. The
//!   query weight is the term's IDF, and `avg_len` comes from collection-wide statistics, so
//!   both are supplied by the caller at query time: the index stores only raw frequencies and
//!   lengths, and scores do not depend on how the collection is split into segments.
//!
//! **Top-k by MaxScore, exact.** Each query term gets the exact maximum of its contribution over
//! its list (computed from the list's skyline of (value, length) pairs). Terms are ordered by bound; the
//! cheapest ones whose bounds together cannot beat the current k-th score are *non-essential*:
//! a point is only considered when an essential list contains it, and non-essential lists are
//! probed (binary search) only while the partial score plus their remaining bounds can still beat
//! the k-th score. Nothing that could enter the top k is skipped, so results equal exhaustive
//! scoring (ties broken by lower point offset). Negative query weights fall back to exhaustive
//! scoring.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use roaring::RoaringBitmap;
use sextant_core::{PointOffset, SparseVector};

use crate::IndexError;

/// How postings are scored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SparseScoring {
    /// Dot product of query weights and stored values.
    Dot,
    /// Okapi BM25 over stored term frequencies and point lengths.
    Bm25 {
        /// Term-frequency saturation.
        k1: f32,
        /// Length normalisation (0 = none, 1 = full).
        b: f32,
        /// Average point length over the whole collection.
        avg_len: f32,
    },
}

impl SparseScoring {
    #[inline]
    fn contribution(self, weight: f32, value: f32, len: f32) -> f32 {
        match self {
            SparseScoring::Dot => weight * value,
            SparseScoring::Bm25 { k1, b, avg_len } => {
                let norm = k1 * (1.0 - b + b * len / avg_len.max(f32::MIN_POSITIVE));
                weight * value * (k1 + 1.0) / (value + norm)
            }
        }
    }
}

/// A scored point.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SparseHit {
    /// Point offset.
    pub id: PointOffset,
    /// Score (higher is better).
    pub score: f32,
}

#[derive(Debug, Clone, Default)]
struct Postings {
    ids: Vec<u32>,
    values: Vec<f32>,
    /// The (value, length) pairs no other posting beats on both (higher value, shorter point).
    /// A BM25 contribution grows with the value and shrinks with the length, so its maximum
    /// over the list is reached on this skyline: an exact bound at query time, whatever the
    /// average length then is, from a handful of pairs.
    skyline: Vec<(f32, f32)>,
}

impl Postings {
    fn add_to_skyline(&mut self, value: f32, len: f32) {
        if self.skyline.iter().any(|&(v, l)| v >= value && l <= len) {
            return;
        }
        self.skyline.retain(|&(v, l)| !(value >= v && len <= l));
        self.skyline.push((value, len));
    }

    fn bound(&self, scoring: SparseScoring, weight: f32) -> f32 {
        self.skyline
            .iter()
            .map(|&(v, l)| scoring.contribution(weight, v, l))
            .fold(0.0, f32::max)
    }
}

/// An inverted index over sparse vectors with appended point offsets.
#[derive(Debug, Clone, Default)]
pub struct SparseIndex {
    terms: HashMap<u32, Postings>,
    lens: Vec<f32>,
}

/// Min-heap entry: the worst of the current top k on top.
#[derive(Debug, PartialEq)]
struct Entry(SparseHit);
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// "Greater" = better: higher score, then lower id. BinaryHeap is a max-heap, so entries
    /// are stored reversed to keep the worst on top.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .0
            .score
            .total_cmp(&self.0.score)
            .then_with(|| self.0.id.cmp(&other.0.id))
    }
}

struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
}

impl TopK {
    fn threshold(&self) -> f32 {
        if self.heap.len() < self.k {
            f32::NEG_INFINITY
        } else {
            self.heap.peek().map_or(f32::NEG_INFINITY, |e| e.0.score)
        }
    }
    fn push(&mut self, hit: SparseHit) {
        if self.heap.len() < self.k {
            self.heap.push(Entry(hit));
        } else if hit.score > self.threshold() {
            self.heap.pop();
            self.heap.push(Entry(hit));
        }
    }
    fn into_sorted(self) -> Vec<SparseHit> {
        let mut v: Vec<SparseHit> = self.heap.into_iter().map(|e| e.0).collect();
        v.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        v
    }
}

struct Cursor<'a> {
    ids: &'a [u32],
    values: &'a [f32],
    pos: usize,
    weight: f32,
    bound: f32,
}

impl Cursor<'_> {
    #[inline]
    fn current(&self) -> Option<u32> {
        self.ids.get(self.pos).copied()
    }
    /// Moves to the first posting ≥ `id` (galloping, then binary search).
    fn seek(&mut self, id: u32) {
        if self.current().is_none_or(|c| c >= id) {
            return;
        }
        let mut step = 1;
        let mut hi = self.pos + 1;
        while hi < self.ids.len() && self.ids[hi] < id {
            self.pos = hi;
            hi += step;
            step *= 2;
        }
        let hi = hi.min(self.ids.len());
        self.pos += self.ids[self.pos..hi].partition_point(|&x| x < id);
    }
}

impl SparseIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of points added.
    pub fn len(&self) -> usize {
        self.lens.len()
    }

    /// Whether no point was added.
    pub fn is_empty(&self) -> bool {
        self.lens.is_empty()
    }

    /// Number of points holding `term` (its document frequency in this index).
    pub fn doc_freq(&self, term: u32) -> usize {
        self.terms.get(&term).map_or(0, |p| p.ids.len())
    }

    /// Sum of point lengths (for collection-wide averages).
    pub fn total_len(&self) -> f64 {
        self.lens.iter().map(|&l| f64::from(l)).sum()
    }

    /// Length of point `id`.
    pub fn point_len(&self, id: PointOffset) -> Option<f32> {
        self.lens.get(id as usize).copied()
    }

    /// Appends a point; returns its offset. `len` is its length for BM25 (token count); values
    /// must be non-negative (frequencies or learned weights).
    pub fn push(&mut self, vector: &SparseVector, len: f32) -> Result<PointOffset, IndexError> {
        if let Some(v) = vector.values.iter().find(|v| !v.is_finite() || **v < 0.0) {
            return Err(IndexError::param(
                "sparse vector",
                format!("values must be finite and non-negative, got {v}"),
            ));
        }
        if !len.is_finite() || len < 0.0 {
            return Err(IndexError::param(
                "length",
                format!("must be ≥ 0, got {len}"),
            ));
        }
        let id = self.lens.len() as u32;
        for (&t, &v) in vector.indices.iter().zip(&vector.values) {
            let p = self.terms.entry(t).or_default();
            p.ids.push(id);
            p.values.push(v);
            p.add_to_skyline(v, len);
        }
        self.lens.push(len);
        Ok(id)
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.terms
            .values()
            .map(|p| p.ids.capacity() * 4 + p.values.capacity() * 4 + p.skyline.len() * 8 + 40)
            .sum::<usize>()
            + self.lens.capacity() * 4
    }

    /// The `k` best points for `query` (term, weight) pairs, exactly, best first. Points the
    /// `allowed` bitmap excludes are never returned.
    pub fn search(
        &self,
        query: &[(u32, f32)],
        k: usize,
        scoring: SparseScoring,
        allowed: Option<&RoaringBitmap>,
    ) -> Vec<SparseHit> {
        if k == 0 {
            return Vec::new();
        }
        let mut top = TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        };
        let mut cursors: Vec<Cursor<'_>> = query
            .iter()
            .filter_map(|&(t, w)| {
                let p = self.terms.get(&t)?;
                let bound = p.bound(scoring, w);
                Some(Cursor {
                    ids: &p.ids,
                    values: &p.values,
                    pos: 0,
                    weight: w,
                    // Rounding in a sum of contributions must never exceed the bound sum.
                    bound: bound * (1.0 + 1e-5) + 1e-30,
                })
            })
            .collect();
        if cursors.iter().any(|c| c.weight < 0.0) {
            return self.exhaustive(query, k, scoring, allowed);
        }
        cursors.sort_by(|a, b| a.bound.total_cmp(&b.bound));
        // prefix[i] = sum of bounds of cursors 0..=i
        let prefix: Vec<f32> = cursors
            .iter()
            .scan(0.0f32, |acc, c| {
                *acc += c.bound;
                Some(*acc)
            })
            .collect();
        let mut first_essential = 0;
        loop {
            let theta = top.threshold();
            while first_essential < cursors.len() && prefix[first_essential] <= theta {
                first_essential += 1;
            }
            let Some(doc) = cursors[first_essential..]
                .iter()
                .filter_map(Cursor::current)
                .min()
            else {
                break;
            };
            let len = self.lens[doc as usize];
            let mut score = 0.0f32;
            for c in &mut cursors[first_essential..] {
                if c.current() == Some(doc) {
                    score += scoring.contribution(c.weight, c.values[c.pos], len);
                    c.pos += 1;
                }
            }
            if allowed.is_some_and(|a| !a.contains(doc)) {
                continue;
            }
            let mut possible = true;
            for i in (0..first_essential).rev() {
                if score + prefix[i] <= theta {
                    possible = false;
                    break;
                }
                let c = &mut cursors[i];
                c.seek(doc);
                if c.current() == Some(doc) {
                    score += scoring.contribution(c.weight, c.values[c.pos], len);
                }
            }
            if possible {
                top.push(SparseHit { id: doc, score });
            }
        }
        top.into_sorted()
    }

    /// Scores every point that shares a term with the query (the reference MaxScore must
    /// equal; also the path for negative query weights).
    pub fn exhaustive(
        &self,
        query: &[(u32, f32)],
        k: usize,
        scoring: SparseScoring,
        allowed: Option<&RoaringBitmap>,
    ) -> Vec<SparseHit> {
        let mut acc: HashMap<u32, f32> = HashMap::new();
        for &(t, w) in query {
            if let Some(p) = self.terms.get(&t) {
                for (&id, &v) in p.ids.iter().zip(&p.values) {
                    *acc.entry(id).or_default() +=
                        scoring.contribution(w, v, self.lens[id as usize]);
                }
            }
        }
        let mut top = TopK {
            k: k.max(1),
            heap: BinaryHeap::new(),
        };
        let mut ids: Vec<(u32, f32)> = acc.into_iter().collect();
        ids.sort_by_key(|p| p.0);
        for (id, score) in ids {
            if allowed.is_none_or(|a| a.contains(id)) {
                top.push(SparseHit { id, score });
            }
        }
        top.into_sorted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random_index(rng: &mut StdRng, n: usize, vocab: u32) -> SparseIndex {
        let mut idx = SparseIndex::new();
        for _ in 0..n {
            let terms = rng.gen_range(1..30);
            let pairs: Vec<(u32, f32)> = (0..terms)
                .map(|_| {
                    // Zipf-like: small term ids are frequent.
                    let t = (rng.gen_range(0.0f64..1.0).powi(3) * f64::from(vocab)) as u32;
                    (t, f32::from(rng.gen_range(1u8..5)))
                })
                .collect();
            let v = SparseVector::from_pairs(pairs).unwrap();
            let len: f32 = v.values.iter().sum();
            idx.push(&v, len).unwrap();
        }
        idx
    }

    #[test]
    fn maxscore_equals_exhaustive_for_bm25_and_dot_with_filters() {
        let mut rng = StdRng::seed_from_u64(11);
        let idx = random_index(&mut rng, 3000, 500);
        let avg_len = (idx.total_len() / idx.len() as f64) as f32;
        let mut allowed = RoaringBitmap::new();
        for i in 0..3000u32 {
            if rng.gen_bool(0.3) {
                allowed.insert(i);
            }
        }
        for q in 0..200 {
            let query: Vec<(u32, f32)> = (0..rng.gen_range(1..8))
                .map(|_| (rng.gen_range(0..500), rng.gen_range(0.1f32..3.0)))
                .collect();
            let scoring = if q % 2 == 0 {
                SparseScoring::Dot
            } else {
                SparseScoring::Bm25 {
                    k1: 1.2,
                    b: 0.75,
                    avg_len,
                }
            };
            for filter in [None, Some(&allowed)] {
                for k in [1, 10, 100] {
                    let fast = idx.search(&query, k, scoring, filter);
                    let slow = idx.exhaustive(&query, k, scoring, filter);
                    assert_eq!(fast.len(), slow.len());
                    for (a, b) in fast.iter().zip(&slow) {
                        assert_eq!(a.id, b.id, "query {q} k {k}: {fast:?} vs {slow:?}");
                        assert!((a.score - b.score).abs() <= 1e-5 * b.score.abs().max(1.0));
                    }
                    if let Some(f) = filter {
                        assert!(fast.iter().all(|h| f.contains(h.id)));
                    }
                }
            }
        }
    }

    #[test]
    fn bm25_contribution_matches_the_formula() {
        let s = SparseScoring::Bm25 {
            k1: 1.2,
            b: 0.75,
            avg_len: 10.0,
        };
        // tf=2, len=20: 2·2.2 / (2 + 1.2·(0.25 + 0.75·2)) = 4.4 / 4.1
        assert!((s.contribution(1.0, 2.0, 20.0) - 4.4 / 4.1).abs() < 1e-6);
        let mut idx = SparseIndex::new();
        assert!(idx
            .push(&SparseVector::from_pairs(vec![(1, -1.0)]).unwrap(), 1.0)
            .is_err());
        assert!(idx
            .search(&[(1, 1.0)], 5, SparseScoring::Dot, None)
            .is_empty());
    }
}
