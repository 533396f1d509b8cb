//! IR metrics at any cut-off, per query and averaged, and a paired randomisation test between
//! two runs — the measures `sextant eval` reports.
//!
//! Definitions (ranx's, checked against ranx to 1e-6 on committed fixtures by
//! `tests/integration/ranx_parity.rs`; `rel` = a document's grade in the qrels, *relevant* = grade ≥ 1):
//! - `precision@k` = |relevant ∩ top k| / k;
//! - `recall@k` = |relevant ∩ top k| / |relevant|;
//! - `hit_rate@k` = 1 if a relevant document is in the top k, else 0;
//! - `mrr@k` = 1 / rank of the first relevant document within the top k (0 if none);
//! - `map@k` = Σ_{relevant d_i, i ≤ k} precision@i / |relevant|;
//! - `ndcg@k` = DCG@k / IDCG@k, DCG = Σ_{i ≤ k} rel(d_i) / log2(i + 1) (linear gains), IDCG the
//!   same over the qrels sorted by grade.
//!
//! Without `@k` a measure reads the whole run. A query of the qrels without any relevant
//! document scores 0 on every measure and counts in the mean (as in ranx); a query missing from
//! the run scores 0. A run is ranked by score, descending; ties by document id, descending (as
//! trec_eval), so the same run file scores the same whoever wrote it.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use crate::ir::{Qrels, Run};

/// A measure, without its cut-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Measure {
    /// Precision.
    Precision,
    /// Recall.
    Recall,
    /// Hit rate (success).
    HitRate,
    /// Mean reciprocal rank.
    Mrr,
    /// Mean average precision.
    Map,
    /// nDCG with linear gains.
    Ndcg,
}

impl Measure {
    fn name(self) -> &'static str {
        match self {
            Measure::Precision => "precision",
            Measure::Recall => "recall",
            Measure::HitRate => "hit_rate",
            Measure::Mrr => "mrr",
            Measure::Map => "map",
            Measure::Ndcg => "ndcg",
        }
    }
}

/// A measure at a cut-off (`ndcg@10`), or over the whole run (`map`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Metric {
    /// The measure.
    pub measure: Measure,
    /// The cut-off; `None` reads the whole run.
    pub k: Option<usize>,
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.k {
            Some(k) => write!(f, "{}@{k}", self.measure.name()),
            None => f.write_str(self.measure.name()),
        }
    }
}

impl FromStr for Metric {
    type Err = String;

    /// `ndcg@10`, `recall@100`, `precision@5` (or `p@5`), `mrr@10`, `map` / `map@100`,
    /// `hit_rate@10` (or `hits@10`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, k) = match s.trim().split_once('@') {
            Some((n, k)) => {
                let k: usize = k.parse().ok().filter(|&k| k > 0).ok_or_else(|| {
                    format!("metric {s:?}: the cut-off must be a positive integer")
                })?;
                (n, Some(k))
            }
            None => (s.trim(), None),
        };
        let measure = match name.to_ascii_lowercase().as_str() {
            "precision" | "p" => Measure::Precision,
            "recall" | "r" => Measure::Recall,
            "hit_rate" | "hits" | "success" => Measure::HitRate,
            "mrr" => Measure::Mrr,
            "map" => Measure::Map,
            "ndcg" => Measure::Ndcg,
            _ => {
                return Err(format!(
                    "metric {s:?}: unknown measure (precision, recall, hit_rate, mrr, map, ndcg, each with an optional @k)"
                ))
            }
        };
        if measure == Measure::Precision && k.is_none() {
            return Err(format!(
                "metric {s:?}: precision needs a cut-off (precision@k)"
            ));
        }
        Ok(Metric { measure, k })
    }
}

/// `docs` ranked: score descending, ties by document id descending.
pub fn ranked(docs: &[(String, f32)]) -> Vec<&str> {
    let mut v: Vec<&(String, f32)> = docs.iter().collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
    v.into_iter().map(|(d, _)| d.as_str()).collect()
}

/// One query's score on `m`: `ranking` is the run's documents in rank order, `rel` the query's
/// judgements.
pub fn score(m: Metric, ranking: &[&str], rel: &HashMap<String, u32>) -> f64 {
    let relevant = rel.values().filter(|&&g| g >= 1).count();
    if relevant == 0 {
        return 0.0;
    }
    let top = &ranking[..m.k.map_or(ranking.len(), |k| k.min(ranking.len()))];
    let grade = |d: &str| rel.get(d).copied().unwrap_or(0);
    let is_rel = |d: &str| grade(d) >= 1;
    match m.measure {
        Measure::Precision => {
            let k = m.k.expect("precision has a cut-off");
            top.iter().filter(|d| is_rel(d)).count() as f64 / k as f64
        }
        Measure::Recall => top.iter().filter(|d| is_rel(d)).count() as f64 / relevant as f64,
        Measure::HitRate => f64::from(u8::from(top.iter().any(|d| is_rel(d)))),
        Measure::Mrr => top
            .iter()
            .position(|d| is_rel(d))
            .map_or(0.0, |p| 1.0 / (p + 1) as f64),
        Measure::Map => {
            let (mut hits, mut sum) = (0usize, 0.0);
            for (i, d) in top.iter().enumerate() {
                if is_rel(d) {
                    hits += 1;
                    sum += hits as f64 / (i + 1) as f64;
                }
            }
            sum / relevant as f64
        }
        Measure::Ndcg => {
            let dcg: f64 = top
                .iter()
                .enumerate()
                .map(|(i, d)| f64::from(grade(d)) / ((i + 2) as f64).log2())
                .sum();
            let mut grades: Vec<u32> = rel.values().copied().filter(|&g| g >= 1).collect();
            grades.sort_unstable_by(|a, b| b.cmp(a));
            let ideal_len = m.k.map_or(grades.len(), |k| k.min(grades.len()));
            let idcg: f64 = grades[..ideal_len]
                .iter()
                .enumerate()
                .map(|(i, &g)| f64::from(g) / ((i + 2) as f64).log2())
                .sum();
            if idcg > 0.0 {
                dcg / idcg
            } else {
                0.0
            }
        }
    }
}

/// Per query of the qrels (sorted by id), its score on each metric.
pub fn per_query(run: &Run, qrels: &Qrels, metrics: &[Metric]) -> BTreeMap<String, Vec<f64>> {
    let empty = Vec::new();
    qrels
        .iter()
        .map(|(q, rel)| {
            let ranking = ranked(run.get(q).unwrap_or(&empty));
            let scores = metrics.iter().map(|&m| score(m, &ranking, rel)).collect();
            (q.clone(), scores)
        })
        .collect()
}

/// The mean over the qrels' queries of each metric (0 for no query).
pub fn mean(per_query: &BTreeMap<String, Vec<f64>>, metrics: usize) -> Vec<f64> {
    let n = per_query.len();
    (0..metrics)
        .map(|i| {
            if n == 0 {
                0.0
            } else {
                per_query.values().map(|s| s[i]).sum::<f64>() / n as f64
            }
        })
        .collect()
}

/// A paired randomisation (permutation) test between two systems' per-query scores on one
/// metric.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Significance {
    /// Mean of `b` minus mean of `a`.
    pub difference: f64,
    /// Two-sided p-value: the fraction of random sign flips of the per-query differences whose
    /// mean is at least as far from 0 as the observed one (with the observed one counted).
    pub p_value: f64,
    /// Queries compared.
    pub queries: usize,
    /// Random permutations drawn.
    pub permutations: usize,
}

/// Compares `a` and `b` (per-query scores of the same queries, in the same order) with
/// `permutations` random sign flips, drawn from `seed` (so a report is reproducible).
pub fn randomisation_test(a: &[f64], b: &[f64], permutations: usize, seed: u64) -> Significance {
    assert_eq!(a.len(), b.len(), "paired scores");
    let n = a.len();
    let diffs: Vec<f64> = a.iter().zip(b).map(|(x, y)| y - x).collect();
    let observed = if n == 0 {
        0.0
    } else {
        diffs.iter().sum::<f64>() / n as f64
    };
    // SplitMix64: a small, well-mixed generator; one bit per query per permutation.
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut extreme = 1usize; // the observed assignment itself
    let eps = 1e-12;
    for _ in 0..permutations {
        let mut sum = 0.0;
        let mut bits = 0u64;
        for (i, d) in diffs.iter().enumerate() {
            if i % 64 == 0 {
                bits = next();
            }
            sum += if bits & 1 == 1 { -d } else { *d };
            bits >>= 1;
        }
        let mean = if n == 0 { 0.0 } else { sum / n as f64 };
        if mean.abs() >= observed.abs() - eps {
            extreme += 1;
        }
    }
    Significance {
        difference: observed,
        p_value: extreme as f64 / (permutations + 1) as f64,
        queries: n,
        permutations,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(pairs: &[(&str, u32)]) -> HashMap<String, u32> {
        pairs.iter().map(|(d, g)| (d.to_string(), *g)).collect()
    }

    #[test]
    fn metric_names_parse_and_print() {
        for s in [
            "ndcg@10",
            "recall@100",
            "precision@5",
            "mrr@10",
            "map",
            "map@100",
            "hit_rate@1",
        ] {
            assert_eq!(s.parse::<Metric>().unwrap().to_string(), s);
        }
        assert_eq!("p@3".parse::<Metric>().unwrap().to_string(), "precision@3");
        for bad in ["ndcg@0", "ndcg@x", "bleu@4", "precision", ""] {
            assert!(bad.parse::<Metric>().is_err(), "{bad}");
        }
    }

    #[test]
    fn hand_computed_scores() {
        let r = rel(&[("a", 2), ("c", 1), ("z", 0)]);
        let ranking = ["a", "b", "c", "z"];
        let m = |s: &str| score(s.parse().unwrap(), &ranking, &r);
        assert_eq!(m("precision@2"), 0.5);
        assert_eq!(m("recall@2"), 0.5);
        assert_eq!(m("recall@3"), 1.0);
        assert_eq!(m("hit_rate@1"), 1.0);
        assert_eq!(m("mrr@10"), 1.0);
        assert!((m("map") - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-12);
        let dcg = 2.0 + 1.0 / 4f64.log2();
        let idcg = 2.0 + 1.0 / 3f64.log2();
        assert!((m("ndcg@3") - dcg / idcg).abs() < 1e-12);
        // No relevant document: 0 everywhere.
        let none = rel(&[("a", 0)]);
        assert_eq!(score("ndcg@10".parse().unwrap(), &ranking, &none), 0.0);
    }

    #[test]
    fn ties_rank_by_document_id_descending() {
        let docs = vec![
            ("a".to_string(), 1.0),
            ("c".to_string(), 1.0),
            ("b".to_string(), 2.0),
        ];
        assert_eq!(ranked(&docs), ["b", "c", "a"]);
    }

    #[test]
    fn the_randomisation_test_tells_a_real_difference_from_noise() {
        let a: Vec<f64> = (0..200).map(|i| ((i * 37) % 100) as f64 / 100.0).collect();
        let better: Vec<f64> = a.iter().map(|x| (x + 0.1).min(1.0)).collect();
        let s = randomisation_test(&a, &better, 2000, 7);
        assert!(s.difference > 0.05 && s.p_value < 0.01, "{s:?}");
        // The same scores shuffled between systems query by query: no difference.
        let mixed: Vec<f64> = a
            .iter()
            .zip(&better)
            .enumerate()
            .map(|(i, (x, y))| if i % 2 == 0 { *x } else { *y })
            .collect();
        let back: Vec<f64> = a
            .iter()
            .zip(&better)
            .enumerate()
            .map(|(i, (x, y))| if i % 2 == 0 { *y } else { *x })
            .collect();
        let s = randomisation_test(&mixed, &back, 2000, 7);
        assert!(s.difference.abs() < 0.01 && s.p_value > 0.5, "{s:?}");
        assert_eq!(
            randomisation_test(&a, &better, 500, 3),
            randomisation_test(&a, &better, 500, 3)
        );
    }
}
