//! Fusion of ranked lists from several sources (dense, BM25, SPLADE) into one ranking.
//!
//! Pure functions over `(id, score)` lists, best first. Each returns the fused list sorted by
//! fused score (ties: the id that appears first in the earliest source wins, so results are
//! deterministic).
//!
//! - **RRF** (reciprocal rank fusion): `Σ_s w_s / (k + rank_s(d))`, ranks from 1; a document
//!   missing from a source gets nothing from it. Robust to incomparable score scales.
//! - **Weighted**: scores normalised per source, then `Σ_s w_s · norm_s(d)` (missing = 0).
//!   Normalisation: min-max to [0, 1] (a constant list maps to 1), or z-score
//!   `(x − mean) / std` (a constant list maps to 0).
//! - **DBSF** (distribution-based score fusion): per source, scores are scaled to [0, 1] between
//!   `mean − 3σ` and `mean + 3σ` (clamped), then summed with the weights.
//!
//! Scores must be "higher is better"; distances should be negated by the caller.

use std::collections::HashMap;
use std::hash::Hash;

/// Default RRF constant.
pub const DEFAULT_RRF_K: f32 = 60.0;

/// How a weighted fusion normalises each source's scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalization {
    /// Min-max to [0, 1].
    MinMax,
    /// Standard score.
    ZScore,
}

/// A fusion method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fusion {
    /// Reciprocal rank fusion with constant `k`.
    Rrf {
        /// Rank offset (60 in the original paper).
        k: f32,
    },
    /// Weighted sum of normalised scores.
    Weighted(Normalization),
    /// Distribution-based score fusion.
    Dbsf,
}

/// Fuses ranked lists (best first) with per-source weights (`weights.len()` must equal
/// `lists.len()`; missing weights count as 1).
pub fn fuse<I: Clone + Eq + Hash>(
    lists: &[Vec<(I, f32)>],
    weights: &[f32],
    method: Fusion,
) -> Vec<(I, f32)> {
    let mut acc: HashMap<I, (f32, usize)> = HashMap::new();
    let mut order = 0usize;
    for (s, list) in lists.iter().enumerate() {
        let w = weights.get(s).copied().unwrap_or(1.0);
        let normalized: Vec<f32> = match method {
            Fusion::Rrf { k } => (0..list.len())
                .map(|r| 1.0 / (k + (r + 1) as f32))
                .collect(),
            Fusion::Weighted(Normalization::MinMax) => min_max(list),
            Fusion::Weighted(Normalization::ZScore) => z_score(list),
            Fusion::Dbsf => dbsf(list),
        };
        for ((id, _), n) in list.iter().zip(normalized) {
            let e = acc.entry(id.clone()).or_insert_with(|| {
                order += 1;
                (0.0, order)
            });
            e.0 += w * n;
        }
    }
    let mut out: Vec<(I, f32, usize)> = acc.into_iter().map(|(i, (s, o))| (i, s, o)).collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
    out.into_iter().map(|(i, s, _)| (i, s)).collect()
}

fn stats(list: &[(impl Sized, f32)]) -> (f32, f32) {
    let n = list.len() as f64;
    if n == 0.0 {
        return (0.0, 0.0);
    }
    let mean = list.iter().map(|x| f64::from(x.1)).sum::<f64>() / n;
    let var = list
        .iter()
        .map(|x| (f64::from(x.1) - mean).powi(2))
        .sum::<f64>()
        / n;
    (mean as f32, var.sqrt() as f32)
}

fn min_max<I>(list: &[(I, f32)]) -> Vec<f32> {
    let lo = list.iter().map(|x| x.1).fold(f32::INFINITY, f32::min);
    let hi = list.iter().map(|x| x.1).fold(f32::NEG_INFINITY, f32::max);
    list.iter()
        .map(|x| if hi > lo { (x.1 - lo) / (hi - lo) } else { 1.0 })
        .collect()
}

fn z_score<I>(list: &[(I, f32)]) -> Vec<f32> {
    let (mean, std) = stats(list);
    list.iter()
        .map(|x| if std > 0.0 { (x.1 - mean) / std } else { 0.0 })
        .collect()
}

fn dbsf<I>(list: &[(I, f32)]) -> Vec<f32> {
    let (mean, std) = stats(list);
    let (lo, hi) = (mean - 3.0 * std, mean + 3.0 * std);
    list.iter()
        .map(|x| {
            if hi > lo {
                ((x.1 - lo) / (hi - lo)).clamp(0.0, 1.0)
            } else {
                1.0
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: &[(&str, f32)], b: &[(&str, f32)]) {
        assert_eq!(a.len(), b.len(), "{a:?} vs {b:?}");
        for (x, y) in a.iter().zip(b) {
            assert_eq!(x.0, y.0, "{a:?} vs {b:?}");
            assert!((x.1 - y.1).abs() < 1e-6, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn rrf_by_hand() {
        let dense = vec![("a", 0.9), ("b", 0.8), ("c", 0.1)];
        let sparse = vec![("c", 12.0), ("a", 3.0)];
        let f = fuse(&[dense, sparse], &[1.0, 1.0], Fusion::Rrf { k: 60.0 });
        // a: 1/61 + 1/62; c: 1/63 + 1/61; b: 1/62
        close(
            &f,
            &[
                ("a", 1.0 / 61.0 + 1.0 / 62.0),
                ("c", 1.0 / 63.0 + 1.0 / 61.0),
                ("b", 1.0 / 62.0),
            ],
        );
        // Weights scale each source's contribution.
        let f = fuse(
            &[vec![("a", 1.0)], vec![("b", 1.0)]],
            &[1.0, 2.0],
            Fusion::Rrf { k: 0.0 },
        );
        close(&f, &[("b", 2.0), ("a", 1.0)]);
    }

    #[test]
    fn weighted_min_max_and_z_by_hand() {
        let dense = vec![("a", 0.9), ("b", 0.5), ("c", 0.1)];
        let sparse = vec![("c", 10.0), ("b", 5.0)];
        // min-max: dense a=1, b=0.5, c=0; sparse c=1, b=0. alpha 0.7 / 0.3.
        let f = fuse(
            &[dense.clone(), sparse.clone()],
            &[0.7, 0.3],
            Fusion::Weighted(Normalization::MinMax),
        );
        close(&f, &[("a", 0.7), ("b", 0.35), ("c", 0.3)]);
        // z-score: dense mean 0.5, std sqrt(0.32/3); sparse mean 7.5, std 2.5.
        let sd = (0.32f32 / 3.0).sqrt();
        let f = fuse(
            &[dense, sparse],
            &[1.0, 1.0],
            Fusion::Weighted(Normalization::ZScore),
        );
        close(&f, &[("a", 0.4 / sd), ("c", -0.4 / sd + 1.0), ("b", -1.0)]);
        // A constant list: min-max gives 1, z-score 0.
        let flat = vec![("x", 2.0), ("y", 2.0)];
        close(
            &fuse(
                std::slice::from_ref(&flat),
                &[1.0],
                Fusion::Weighted(Normalization::MinMax),
            ),
            &[("x", 1.0), ("y", 1.0)],
        );
        close(
            &fuse(&[flat], &[1.0], Fusion::Weighted(Normalization::ZScore)),
            &[("x", 0.0), ("y", 0.0)],
        );
    }

    #[test]
    fn dbsf_by_hand_and_empty_inputs() {
        // Scores 1, 2, 3: mean 2, σ = sqrt(2/3); range [2 − 3σ, 2 + 3σ].
        let s = (2.0f32 / 3.0).sqrt();
        let (lo, hi) = (2.0 - 3.0 * s, 2.0 + 3.0 * s);
        let f = fuse(
            &[vec![("c", 3.0), ("b", 2.0), ("a", 1.0)]],
            &[1.0],
            Fusion::Dbsf,
        );
        close(
            &f,
            &[
                ("c", (3.0 - lo) / (hi - lo)),
                ("b", 0.5),
                ("a", (1.0 - lo) / (hi - lo)),
            ],
        );
        let empty: Vec<Vec<(&str, f32)>> = vec![vec![], vec![]];
        assert!(fuse(&empty, &[1.0, 1.0], Fusion::Dbsf).is_empty());
    }
}
