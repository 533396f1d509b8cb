//! Exact top-k over the inverted index by MaxScore, with exact scores by construction.
//!
//! Query terms are ordered by their list bound; the cheapest ones whose bounds sum to at most
//! the current k-th score are *non-essential*: a point is only considered when an essential
//! list holds it, and it is probed in the non-essential lists (galloping seeks, most land a
//! few postings on) only while its partial score plus their remaining bounds can still win.
//! Before the walk, the threshold starts at the k-th exact score of the strongest short
//! list's best postings, which the result is known to reach.
//!
//! **Exact by construction.** Pruning never drops a point whose score could beat the k-th:
//! bounds are inflated past the rounding of the bound formula, and comparisons run against a
//! threshold lowered past the rounding of a sum of `n` terms. The score of a point that
//! survives is summed in query order from its contributions, the very sum
//! [`SparseIndex::exhaustive`] computes, and points are offered to the top k in increasing
//! offset order, so equal scores keep the lower offset as there.
//!
//! Per-block bounds (block-max MaxScore over windows of point ids) were tried and measured:
//! on short documents nearly every block holds a short posting, so block bounds are close to
//! list bounds; they cut candidates by 15% and cost more in bound evaluations than they saved
//! (BENCHMARKS.md, BM25 speed).

use roaring::RoaringBitmap;

use super::{Prepared, Score, SparseHit, SparseIndex, SparseScoring, TopK};

/// Sentinel past every point offset.
const END: u32 = u32::MAX;
/// Lists longer than this are not used to seed the threshold (see `Search::seed`).
const SEED_MAX_LIST: usize = 4096;
/// Relative inflation of every bound: covers the rounding of the contribution formula, which
/// may make a dominated (value, length) pair score a few ulps above the skyline's.
const BOUND_SLACK: f32 = 1e-5;

/// One query term's walk over its posting list.
struct Cursor<'a> {
    ids: &'a [u32],
    values: &'a [f32],
    pos: usize,
    weight: f32,
    /// Bound over the whole list (inflated).
    bound: f32,
    /// Position in query order.
    query_pos: usize,
}

impl Cursor<'_> {
    #[inline]
    fn current(&self) -> u32 {
        self.ids.get(self.pos).copied().unwrap_or(END)
    }

    #[inline]
    fn value(&self) -> f32 {
        self.values[self.pos]
    }

    /// Moves to the first posting ≥ `target`: galloping from the current posting, then a
    /// binary search of the bracket.
    fn seek(&mut self, target: u32) {
        if self.current() >= target {
            return;
        }
        let mut step = 1;
        let mut hi = self.pos + 1;
        while hi < self.ids.len() && self.ids[hi] < target {
            self.pos = hi;
            hi += step;
            step *= 2;
        }
        let hi = hi.min(self.ids.len());
        self.pos += self.ids[self.pos..hi].partition_point(|&x| x < target);
    }
}

fn inflate(bound: f32) -> f32 {
    bound * (1.0 + BOUND_SLACK) + f32::MIN_POSITIVE
}

/// The working state of one query.
struct Search<'a, 'q, S> {
    lens: &'a [f32],
    scorer: S,
    allowed: Option<&'q RoaringBitmap>,
    /// Ordered by bound (ascending) once seeded.
    cursors: Vec<Cursor<'a>>,
    /// `prefix[i]`: the sum of the bounds of `cursors[..=i]`.
    prefix: Vec<f32>,
    /// By query position: the last point a term contributed to, and how much.
    contributions: Vec<(u32, f32)>,
    top: TopK,
    /// Relative margin under the k-th score that covers rounding in sums of `n` terms.
    margin: f32,
    /// The k-th score lowered by `margin`: a point whose bound is at most this cannot enter.
    theta: f32,
}

impl<S: Score> Search<'_, '_, S> {
    fn update_theta(&mut self) {
        let t = self.top.threshold();
        if t.is_finite() {
            self.theta = self.theta.max(t - t.abs() * self.margin);
        }
    }

    /// Starts the threshold at a k-th score the result is known to reach: the exact scores
    /// of the `k` best postings of the strongest short list (a binary search per list each).
    /// The final k-th score is at least the k-th of any `k` allowed points, and a point is
    /// pruned only when its bound is below that (the margin makes it strict), so this drops
    /// nothing of the result; it spares the walk the points scored while the top k fills up.
    fn seed(&mut self, k: usize) {
        let Some(best) = (0..self.cursors.len())
            .max_by(|&a, &b| self.cursors[a].bound.total_cmp(&self.cursors[b].bound))
        else {
            return;
        };
        let c = &self.cursors[best];
        if c.ids.len() > SEED_MAX_LIST || c.ids.len() < k {
            return;
        }
        let mut best_postings: Vec<(f32, u32)> = c
            .ids
            .iter()
            .zip(c.values)
            .filter(|&(&id, _)| self.allowed.is_none_or(|a| a.contains(id)))
            .map(|(&id, &v)| {
                let norm = self.scorer.norm(self.lens[id as usize]);
                (self.scorer.score(c.weight, v, norm), id)
            })
            .collect();
        if best_postings.len() < k {
            return;
        }
        best_postings.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        let mut kth = f32::INFINITY;
        for &(_, id) in &best_postings[..k] {
            let norm = self.scorer.norm(self.lens[id as usize]);
            let mut score = 0.0f32;
            for c in &self.cursors {
                if let Ok(p) = c.ids.binary_search(&id) {
                    score += self.scorer.score(c.weight, c.values[p], norm);
                }
            }
            kth = kth.min(score);
        }
        if kth.is_finite() {
            self.theta = kth - kth.abs() * self.margin;
        }
    }

    /// The exact score of `doc`: its contributions summed in query order.
    fn exact(&self, doc: u32) -> f32 {
        let mut score = 0.0f32;
        for &(d, c) in &self.contributions {
            if d == doc {
                score += c;
            }
        }
        score
    }

    /// Scores the points essential lists (`cursors[first..]`) hold.
    fn walk(&mut self, mut first: usize) {
        let n = self.cursors.len();
        loop {
            let doc = self.cursors[first..]
                .iter()
                .map(Cursor::current)
                .min()
                .unwrap_or(END);
            if doc == END {
                return;
            }
            let norm = if S::USES_LEN {
                self.scorer.norm(self.lens[doc as usize])
            } else {
                0.0
            };
            let mut partial = 0.0f32;
            for c in &mut self.cursors[first..] {
                if c.current() == doc {
                    let s = self.scorer.score(c.weight, c.value(), norm);
                    self.contributions[c.query_pos] = (doc, s);
                    partial += s;
                    c.pos += 1;
                }
            }
            let mut possible = self.allowed.is_none_or(|a| a.contains(doc));
            if possible {
                for j in (0..first).rev() {
                    if partial + self.prefix[j] <= self.theta {
                        possible = false;
                        break;
                    }
                    let c = &mut self.cursors[j];
                    c.seek(doc);
                    if c.current() == doc {
                        let s = self.scorer.score(c.weight, c.value(), norm);
                        self.contributions[c.query_pos] = (doc, s);
                        partial += s;
                    }
                }
            }
            if possible && partial > self.theta {
                let score = self.exact(doc);
                self.top.push(SparseHit { id: doc, score });
                self.update_theta();
                while first < n && self.prefix[first] <= self.theta {
                    first += 1;
                }
                if first == n {
                    return;
                }
            }
        }
    }

    fn run(&mut self) {
        self.cursors.sort_by(|a, b| {
            a.bound
                .total_cmp(&b.bound)
                .then(a.query_pos.cmp(&b.query_pos))
        });
        let mut acc = 0.0f32;
        for (p, c) in self.prefix.iter_mut().zip(&self.cursors) {
            acc += c.bound;
            *p = acc;
        }
        let n = self.cursors.len();
        let first = self
            .prefix
            .iter()
            .position(|&p| p > self.theta)
            .unwrap_or(n);
        if first < n {
            self.walk(first);
        }
    }
}

impl SparseIndex {
    /// The `k` best points for `query` (term, weight) pairs, exactly, best first. Points the
    /// `allowed` bitmap excludes are never returned. Equals [`SparseIndex::exhaustive`]: same
    /// points, same scores, same order.
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
        if query
            .iter()
            .any(|&(t, w)| w < 0.0 && self.terms.contains_key(&t))
        {
            return self.exhaustive(query, k, scoring, allowed);
        }
        match scoring.prepare() {
            Prepared::Dot(s) => self.search_with(s, query, k, allowed),
            Prepared::Bm25(s) => self.search_with(s, query, k, allowed),
        }
    }

    fn search_with<S: Score>(
        &self,
        scorer: S,
        query: &[(u32, f32)],
        k: usize,
        allowed: Option<&RoaringBitmap>,
    ) -> Vec<SparseHit> {
        let cursors: Vec<Cursor<'_>> = query
            .iter()
            .filter_map(|&(t, w)| self.terms.get(&t).map(|p| (p, w)))
            .enumerate()
            .map(|(query_pos, (p, w))| Cursor {
                ids: &p.ids,
                values: &p.values,
                pos: 0,
                weight: w,
                bound: inflate(scorer.skyline_max(w, &p.skyline)),
                query_pos,
            })
            .collect();
        let n = cursors.len();
        if n == 0 {
            return Vec::new();
        }
        let mut s = Search {
            lens: &self.lens,
            scorer,
            allowed,
            cursors,
            prefix: vec![0.0; n],
            contributions: vec![(END, 0.0); n],
            top: TopK::new(k),
            margin: (2 * n + 8) as f32 * f32::EPSILON,
            theta: f32::NEG_INFINITY,
        };
        s.seed(k);
        s.run();
        s.top.into_sorted()
    }
}
