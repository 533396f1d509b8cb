//! The sparse inverted index: term → postings of (point, value), searched top-k exactly.
//!
//! One structure serves BM25 and learned sparse vectors (SPLADE):
//! - [`SparseScoring::Dot`]: a posting's contribution is `query weight × value`;
//! - [`SparseScoring::Bm25`]: the value is the term frequency, and the contribution is
//!   `query weight × tf·(k1+1) / (tf + k1·(1 − b + b·len/avg_len))` with the point's length. The
//!   query weight is the term's IDF, and `avg_len` comes from collection-wide statistics, so
//!   both are supplied by the caller at query time: the index stores only raw frequencies and
//!   lengths, and scores do not depend on how the collection is split into segments.
//!
//! **Bounds without the query.** A contribution grows with the value and shrinks with the
//! length, so its maximum over a list is reached on the list's *skyline* of (value, length)
//! pairs (those no other posting beats on both): an exact bound at query time, whatever `k1`,
//! `b`, `avg_len` and the query weight then are, from a handful of pairs.
//!
//! **Top-k by MaxScore, exact** ([`SparseIndex::search`], in `search.rs`): results equal
//! [`SparseIndex::exhaustive`] bit for bit (scores summed in query order, ties broken by lower
//! point offset). Negative query weights fall back to exhaustive scoring.

use std::collections::{BinaryHeap, HashMap};
use std::hash::{BuildHasherDefault, Hasher};

use roaring::RoaringBitmap;
use sextant_core::{PointOffset, SparseVector};

use crate::IndexError;

pub mod search;
mod terms;

pub use terms::TermDict;

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
    /// One posting's contribution (what every search path sums).
    #[cfg(test)]
    fn contribution(self, weight: f32, value: f32, len: f32) -> f32 {
        match self.prepare() {
            Prepared::Dot(s) => s.score(weight, value, s.norm(len)),
            Prepared::Bm25(s) => s.score(weight, value, s.norm(len)),
        }
    }

    fn prepare(self) -> Prepared {
        match self {
            SparseScoring::Dot => Prepared::Dot(DotScore),
            SparseScoring::Bm25 { k1, b, avg_len } => Prepared::Bm25(Bm25Score {
                base: k1 * (1.0 - b),
                per_len: k1 * b / avg_len.max(f32::MIN_POSITIVE),
                k1_plus_1: k1 + 1.0,
            }),
        }
    }
}

/// A scoring with its per-query constants folded in; search is monomorphised over it.
#[derive(Debug, Clone, Copy)]
enum Prepared {
    Dot(DotScore),
    Bm25(Bm25Score),
}

/// How a contribution is computed: `score(weight, value, norm(len))`. Every path (search,
/// bounds, exhaustive) goes through these, so equal inputs give bit-equal scores.
trait Score: Copy {
    /// Whether the point length matters (BM25).
    const USES_LEN: bool;
    /// The point-dependent part, computed once per point.
    fn norm(self, len: f32) -> f32;
    /// One posting's contribution.
    fn score(self, weight: f32, value: f32, norm: f32) -> f32;
    /// The largest contribution over a skyline of (value, length) pairs.
    fn skyline_max(self, weight: f32, skyline: &[(f32, f32)]) -> f32 {
        skyline
            .iter()
            .map(|&(v, l)| self.score(weight, v, self.norm(l)))
            .fold(0.0, f32::max)
    }
}

#[derive(Debug, Clone, Copy)]
struct DotScore;

impl Score for DotScore {
    const USES_LEN: bool = false;
    #[inline]
    fn norm(self, _len: f32) -> f32 {
        0.0
    }
    #[inline]
    fn score(self, weight: f32, value: f32, _norm: f32) -> f32 {
        weight * value
    }
}

/// BM25 with `k1·(1 − b + b·len/avg_len)` folded to `base + per_len·len`.
#[derive(Debug, Clone, Copy)]
struct Bm25Score {
    base: f32,
    per_len: f32,
    k1_plus_1: f32,
}

impl Score for Bm25Score {
    const USES_LEN: bool = true;
    #[inline]
    fn norm(self, len: f32) -> f32 {
        self.base + self.per_len * len
    }
    #[inline]
    fn score(self, weight: f32, value: f32, norm: f32) -> f32 {
        weight * value * self.k1_plus_1 / (value + norm)
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
    /// The list's skyline of (value, length) pairs.
    skyline: Vec<(f32, f32)>,
}

/// Adds (value, len) to a skyline.
fn skyline_insert(sky: &mut Vec<(f32, f32)>, value: f32, len: f32) {
    if sky.iter().any(|&(v, l)| v >= value && l <= len) {
        return;
    }
    let mut kept = 0;
    for i in 0..sky.len() {
        let (v, l) = sky[i];
        if !(value >= v && len <= l) {
            sky[kept] = (v, l);
            kept += 1;
        }
    }
    sky.truncate(kept);
    sky.push((value, len));
}

impl Postings {
    fn push(&mut self, id: u32, value: f32, len: f32) {
        self.ids.push(id);
        self.values.push(value);
        skyline_insert(&mut self.skyline, value, len);
    }
}

/// Term ids are dictionary ordinals (BM25) or small vocabulary indexes (SPLADE): one multiply
/// spreads either over a hash table, far cheaper than SipHash on the query path.
#[derive(Debug, Clone, Copy, Default)]
struct TermHasher(u64);

impl Hasher for TermHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
    fn finish(&self) -> u64 {
        self.0 ^ (self.0 >> 32)
    }
}

type TermMap<V> = HashMap<u32, V, BuildHasherDefault<TermHasher>>;

/// An inverted index over sparse vectors with appended point offsets.
#[derive(Debug, Clone, Default)]
pub struct SparseIndex {
    terms: TermMap<Postings>,
    lens: Vec<f32>,
    /// Sum of `lens`, kept as points are added (exact for whole-number lengths below 2⁵³).
    total_len: f64,
}

/// The best `k` hits seen, worst on top of a min-heap; pushes must come in increasing point
/// order, so that among equal scores the lower offset stays.
struct TopK {
    k: usize,
    heap: BinaryHeap<Entry>,
}

/// Min-heap entry: the worst of the current top k on top.
#[derive(Debug, PartialEq)]
struct Entry(SparseHit);
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    /// "Greater" = better: higher score, then lower id. BinaryHeap is a max-heap, so entries
    /// are stored reversed to keep the worst on top.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other
            .0
            .score
            .total_cmp(&self.0.score)
            .then_with(|| self.0.id.cmp(&other.0.id))
    }
}

impl TopK {
    fn new(k: usize) -> TopK {
        TopK {
            k,
            heap: BinaryHeap::with_capacity(k + 1),
        }
    }
    /// The score a new (later) point must exceed to enter.
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
        self.total_len
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
            self.terms.entry(t).or_default().push(id, v, len);
        }
        self.lens.push(len);
        self.total_len += f64::from(len);
        Ok(id)
    }

    /// Heap bytes held.
    pub fn memory_bytes(&self) -> usize {
        self.terms
            .values()
            .map(|p| p.ids.capacity() * 4 + p.values.capacity() * 4 + p.skyline.capacity() * 8 + 80)
            .sum::<usize>()
            + self.lens.capacity() * 4
    }

    /// Scores every point that shares a term with the query (the reference [`search`] must
    /// equal; also the path for negative query weights).
    ///
    /// [`search`]: SparseIndex::search
    pub fn exhaustive(
        &self,
        query: &[(u32, f32)],
        k: usize,
        scoring: SparseScoring,
        allowed: Option<&RoaringBitmap>,
    ) -> Vec<SparseHit> {
        match scoring.prepare() {
            Prepared::Dot(s) => self.exhaustive_with(s, query, k, allowed),
            Prepared::Bm25(s) => self.exhaustive_with(s, query, k, allowed),
        }
    }

    fn exhaustive_with<S: Score>(
        &self,
        scorer: S,
        query: &[(u32, f32)],
        k: usize,
        allowed: Option<&RoaringBitmap>,
    ) -> Vec<SparseHit> {
        let mut acc: HashMap<u32, f32> = HashMap::new();
        for &(t, w) in query {
            if let Some(p) = self.terms.get(&t) {
                for (&id, &v) in p.ids.iter().zip(&p.values) {
                    *acc.entry(id).or_default() +=
                        scorer.score(w, v, scorer.norm(self.lens[id as usize]));
                }
            }
        }
        let mut top = TopK::new(k.max(1));
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

    /// `n` points over a Zipf-like vocabulary; `max_tf` small and `lens_from_tf` false give
    /// many exactly equal scores.
    fn random_index(
        rng: &mut StdRng,
        n: usize,
        vocab: u32,
        max_tf: u8,
        lens_from_tf: bool,
    ) -> SparseIndex {
        let mut idx = SparseIndex::new();
        for _ in 0..n {
            let terms = rng.gen_range(1..30);
            let pairs: Vec<(u32, f32)> = (0..terms)
                .map(|_| {
                    // Zipf-like: small term ids are frequent.
                    let t = (rng.gen_range(0.0f64..1.0).powi(3) * f64::from(vocab)) as u32;
                    (t, f32::from(rng.gen_range(1..=max_tf)))
                })
                .collect();
            let v = SparseVector::from_pairs(pairs).unwrap();
            let len: f32 = if lens_from_tf {
                v.values.iter().sum()
            } else {
                f32::from(rng.gen_range(1u8..4)) * 10.0
            };
            idx.push(&v, len).unwrap();
        }
        idx
    }

    fn assert_same(fast: &[SparseHit], slow: &[SparseHit], what: &str) {
        assert_eq!(fast.len(), slow.len(), "{what}");
        for (a, b) in fast.iter().zip(slow) {
            assert_eq!(a.id, b.id, "{what}: {fast:?} vs {slow:?}");
            assert_eq!(a.score.to_bits(), b.score.to_bits(), "{what}: scores");
        }
    }

    #[test]
    fn search_equals_exhaustive_for_bm25_and_dot_with_filters() {
        let mut rng = StdRng::seed_from_u64(11);
        // (points, vocabulary, max tf, lengths from tf): the last ones have few distinct
        // scores, so ties are everywhere.
        let setups = [
            (3000, 500, 4, true),
            (5000, 60, 1, false),
            (4000, 200, 2, false),
            (2500, 40, 3, false),
        ];
        for (setup, &(n, vocab, max_tf, lens_from_tf)) in setups.iter().enumerate() {
            let idx = random_index(&mut rng, n, vocab, max_tf, lens_from_tf);
            let avg_len = (idx.total_len() / idx.len() as f64) as f32;
            let mut allowed = RoaringBitmap::new();
            for i in 0..n as u32 {
                if rng.gen_bool(0.3) {
                    allowed.insert(i);
                }
            }
            for q in 0..120 {
                let query: Vec<(u32, f32)> = (0..rng.gen_range(1..12))
                    .map(|_| {
                        // Repeated weights too, so equal contributions come from other terms.
                        let w = if rng.gen_bool(0.5) {
                            1.0
                        } else {
                            rng.gen_range(0.1f32..3.0)
                        };
                        (rng.gen_range(0..vocab), w)
                    })
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
                    for k in [1, 3, 10, 100] {
                        let fast = idx.search(&query, k, scoring, filter);
                        let slow = idx.exhaustive(&query, k, scoring, filter);
                        assert_same(&fast, &slow, &format!("setup {setup} query {q} k {k}"));
                        if let Some(f) = filter {
                            assert!(fast.iter().all(|h| f.contains(h.id)));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn search_on_a_long_list_with_a_rare_term() {
        // A frequent term, a rare one (seeds the threshold) and a medium one.
        let mut idx = SparseIndex::new();
        let mut rng = StdRng::seed_from_u64(5);
        for i in 0..60_000u32 {
            let mut pairs = vec![(0, f32::from(rng.gen_range(1u8..4)))];
            if i % 997 == 0 {
                pairs.push((1, 1.0));
            }
            if rng.gen_bool(0.1) {
                pairs.push((2, 2.0));
            }
            let v = SparseVector::from_pairs(pairs).unwrap();
            idx.push(&v, f32::from(rng.gen_range(1u8..50))).unwrap();
        }
        let scoring = SparseScoring::Bm25 {
            k1: 1.2,
            b: 0.75,
            avg_len: 25.0,
        };
        for query in [
            vec![(0, 0.1), (1, 5.0)],
            vec![(1, 5.0), (2, 1.0), (0, 0.3)],
            vec![(0, 1.0)],
        ] {
            for k in [1, 10, 1000] {
                let fast = idx.search(&query, k, scoring, None);
                let slow = idx.exhaustive(&query, k, scoring, None);
                assert_same(&fast, &slow, &format!("{query:?} k {k}"));
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
