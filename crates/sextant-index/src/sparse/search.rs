//! Exact top-k over the inverted index by MaxScore, with exact scores by construction.
//!
//! Query terms are ordered by their list bound; the cheapest ones whose bounds sum to at most
//! the current k-th score are *non-essential*: a point is only considered when an essential
//! list holds it. Points are taken a window of offsets at a time, as Lucene's
//! `MaxScoreBulkScorer` does: the essential lists' postings in the window are summed
//! term-at-a-time into a score buffer (one pass per list, no per-point merge of cursors), then
//! the window's points are visited in increasing offset order and probed in the non-essential
//! lists (a vectorised scan of the next postings, then galloping) only while their partial
//! score plus the remaining bounds can still win. Between windows the essential set shrinks as
//! the threshold rises. Before the walk, the threshold starts at a score the result is known
//! to reach, taken from the best postings of the strongest short lists.
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
/// How many of the strongest short lists seed the threshold (see `Search::seed`).
const SEED_LISTS: usize = 4;
/// Relative inflation of every bound: covers the rounding of the contribution formula, which
/// may make a dominated (value, length) pair score a few ulps above the skyline's.
const BOUND_SLACK: f32 = 1e-5;
/// Point offsets scored together in one window of the walk (a 16 KiB score buffer).
const WINDOW: u32 = 4096;
/// Postings a seek compares at once before galloping.
const SCAN: usize = 16;

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

    /// Moves to the first posting ≥ `target`. Most probes land a few postings on, so the next
    /// [`SCAN`] ids are compared all at once (a branch-free count the compiler vectorises;
    /// the list is sorted, so the count of ids below `target` is the offset of the first that
    /// is not); farther targets are found by galloping, then a binary search of the bracket.
    #[inline]
    fn seek(&mut self, target: u32) {
        if self.current() >= target {
            return;
        }
        let next = self.pos + 1;
        let window = self.ids.get(next..next + SCAN);
        if let Some(window) = window.and_then(|w| <&[u32; SCAN]>::try_from(w).ok()) {
            let below = window
                .iter()
                .map(|&x| usize::from(x < target))
                .sum::<usize>();
            if below < SCAN {
                self.pos = next + below;
                return;
            }
            self.pos = next + SCAN - 1;
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
    /// By query position: the last point a non-essential term contributed to, and how much.
    contributions: Vec<(u32, f32)>,
    /// By query position: the index of the term's cursor in `cursors`.
    by_query: Vec<usize>,
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

    /// Starts the threshold at a score the final k-th is known to reach: the k-th best among
    /// the best postings of the [`SEED_LISTS`] strongest short lists, each point scored by its
    /// contributions from the short lists only (a binary search per short list; probing the
    /// long ones would miss the cache at every step). Contributions are never negative here,
    /// so that is at most the point's score, and the final k-th score is at least the k-th of
    /// any `k` allowed points; a point is pruned only when its bound is below that (the margin
    /// makes it strict), so this drops nothing of the result. It spares the walk the points
    /// scored while the top k fills up, and keeps the essential lists few from the first
    /// window.
    fn seed(&mut self, k: usize) {
        let short: Vec<usize> = (0..self.cursors.len())
            .filter(|&i| self.cursors[i].ids.len() <= SEED_MAX_LIST)
            .collect();
        let mut strongest = short.clone();
        strongest.sort_by(|&a, &b| self.cursors[b].bound.total_cmp(&self.cursors[a].bound));
        strongest.truncate(SEED_LISTS);
        let mut ids: Vec<u32> = Vec::new();
        let mut best: Vec<(f32, u32)> = Vec::new();
        for &i in &strongest {
            let c = &self.cursors[i];
            best.clear();
            best.extend(
                c.ids
                    .iter()
                    .zip(c.values)
                    .filter(|&(&id, _)| self.allowed.is_none_or(|a| a.contains(id)))
                    .map(|(&id, &v)| {
                        let norm = self.scorer.norm(self.lens[id as usize]);
                        (self.scorer.score(c.weight, v, norm), id)
                    }),
            );
            if best.len() > k {
                best.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
                best.truncate(k);
            }
            ids.extend(best.iter().map(|&(_, id)| id));
        }
        ids.sort_unstable();
        ids.dedup();
        if ids.len() < k {
            return;
        }
        let mut scores: Vec<f32> = ids
            .iter()
            .map(|&id| {
                let norm = self.scorer.norm(self.lens[id as usize]);
                let mut score = 0.0f32;
                for &i in &short {
                    let c = &self.cursors[i];
                    if let Ok(p) = c.ids.binary_search(&id) {
                        score += self.scorer.score(c.weight, c.values[p], norm);
                    }
                }
                score
            })
            .collect();
        scores.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        let kth = scores[k - 1];
        if kth.is_finite() {
            self.theta = kth - kth.abs() * self.margin;
        }
    }

    /// The exact score of `doc` (point length norm `norm`), summed in query order like
    /// [`SparseIndex::exhaustive`]: essential lists (`cursors[first..]`) are looked up among
    /// the postings of the current window (from `starts[i]` to the cursor), non-essential ones
    /// through the contributions their probes recorded.
    fn exact(&self, doc: u32, norm: f32, first: usize, starts: &[usize]) -> f32 {
        let mut score = 0.0f32;
        for (query_pos, &i) in self.by_query.iter().enumerate() {
            let c = &self.cursors[i];
            if i >= first {
                let window = &c.ids[starts[i]..c.pos];
                if let Ok(p) = window.binary_search(&doc) {
                    score += self.scorer.score(c.weight, c.values[starts[i] + p], norm);
                }
            } else {
                let (d, s) = self.contributions[query_pos];
                if d == doc {
                    score += s;
                }
            }
        }
        score
    }

    /// Scores the points essential lists (`cursors[first..]`) hold, a window of [`WINDOW`]
    /// point offsets at a time: the essential lists' postings in the window are summed
    /// term-at-a-time into a score buffer (no per-point merge of cursors, no data-dependent
    /// branch per posting), then the points that matched are visited in increasing offset
    /// order, probed in the non-essential lists while they can still win, and offered to the
    /// top k. The essential set shrinks between windows as the threshold rises.
    fn walk(&mut self, mut first: usize) {
        let n = self.cursors.len();
        let lens = self.lens;
        let scorer = self.scorer;
        let mut scores = vec![0.0f32; WINDOW as usize];
        let mut matches = [0u64; WINDOW as usize / 64];
        let mut starts = vec![0usize; n];
        loop {
            let base = self.cursors[first..]
                .iter()
                .map(Cursor::current)
                .min()
                .unwrap_or(END);
            if base == END {
                return;
            }
            let end = base.saturating_add(WINDOW);
            for (c, start) in self.cursors[first..].iter_mut().zip(&mut starts[first..]) {
                *start = c.pos;
                c.seek(end);
                for (&id, &v) in c.ids[*start..c.pos].iter().zip(&c.values[*start..c.pos]) {
                    let d = (id - base) as usize;
                    let norm = if S::USES_LEN {
                        scorer.norm(lens[id as usize])
                    } else {
                        0.0
                    };
                    scores[d] += scorer.score(c.weight, v, norm);
                    matches[d / 64] |= 1 << (d % 64);
                }
            }
            for (word, bits) in matches.iter_mut().enumerate() {
                let mut bits = std::mem::take(bits);
                while bits != 0 {
                    let d = word * 64 + bits.trailing_zeros() as usize;
                    bits &= bits - 1;
                    let doc = base + d as u32;
                    let mut partial = std::mem::take(&mut scores[d]);
                    if !self.allowed.is_none_or(|a| a.contains(doc)) {
                        continue;
                    }
                    let norm = if S::USES_LEN {
                        scorer.norm(lens[doc as usize])
                    } else {
                        0.0
                    };
                    let mut possible = true;
                    for j in (0..first).rev() {
                        if partial + self.prefix[j] <= self.theta {
                            possible = false;
                            break;
                        }
                        let c = &mut self.cursors[j];
                        c.seek(doc);
                        if c.current() == doc {
                            let s = scorer.score(c.weight, c.value(), norm);
                            self.contributions[c.query_pos] = (doc, s);
                            partial += s;
                        }
                    }
                    if possible && partial > self.theta {
                        let score = self.exact(doc, norm, first, &starts);
                        self.top.push(SparseHit { id: doc, score });
                        self.update_theta();
                    }
                }
            }
            while first < n && self.prefix[first] <= self.theta {
                first += 1;
            }
            if first == n {
                return;
            }
        }
    }

    fn run(&mut self) {
        self.cursors.sort_by(|a, b| {
            a.bound
                .total_cmp(&b.bound)
                .then(a.query_pos.cmp(&b.query_pos))
        });
        for (i, c) in self.cursors.iter().enumerate() {
            self.by_query[c.query_pos] = i;
        }
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
            by_query: vec![0; n],
            top: TopK::new(k),
            margin: (2 * n + 8) as f32 * f32::EPSILON,
            theta: f32::NEG_INFINITY,
        };
        s.seed(k);
        s.run();
        s.top.into_sorted()
    }
}
