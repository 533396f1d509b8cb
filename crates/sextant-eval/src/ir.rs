//! Retrieval evaluation: BEIR-format data (corpus, queries, qrels), TREC run files, and the IR
//! metrics (nDCG@k, Recall@k, MRR@k, MAP).
//!
//! Definitions (the same as `bench/ir_metrics.py`, so our runs and the peers' are scored by
//! one rule):
//! - nDCG@k = DCG@k / IDCG@k with DCG = Σ_{i=1..k} gain(d_i) / log2(i + 1) and gain = the qrel
//!   grade; IDCG sorts the query's judged grades; a query with no relevant document scores 0.
//! - Recall@k = |relevant ∩ top k| / |relevant|.
//! - MRR@k = 1 / rank of the first relevant document within the top k (0 if none).
//! - MAP = mean over queries of Σ_{relevant d_i} precision@i / |relevant| (the whole run).
//!
//! Each is averaged over the queries that have at least one relevant judgement. As in
//! trec_eval, a run is re-ranked by score (descending), ties by document id (descending), so
//! the same run file scores the same whoever wrote it.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::EvalError;

/// A BEIR document or query.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// `_id`.
    pub id: String,
    /// `title` (empty when absent).
    pub title: String,
    /// `text`.
    pub text: String,
}

fn bad(path: &Path, line: usize, reason: impl std::fmt::Display) -> EvalError {
    EvalError::Invalid(format!("{} line {line}: {reason}", path.display()))
}

/// Reads a BEIR `corpus.jsonl` or `queries.jsonl`.
pub fn read_beir(path: &Path) -> Result<Vec<Record>, EvalError> {
    let f = std::fs::File::open(path)
        .map_err(|e| EvalError::Invalid(format!("cannot open {}: {e}", path.display())))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| bad(path, i + 1, e))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line).map_err(|e| bad(path, i + 1, e))?;
        let field = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let id = match v.get("_id") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(bad(path, i + 1, "missing \"_id\"")),
        };
        out.push(Record {
            id,
            title: field("title"),
            text: field("text"),
        });
    }
    Ok(out)
}

/// Relevance judgements: query id → document id → grade.
pub type Qrels = HashMap<String, HashMap<String, u32>>;

/// Reads BEIR qrels (`query-id<TAB>corpus-id<TAB>score`, optional header).
pub fn read_qrels(path: &Path) -> Result<Qrels, EvalError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| EvalError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    let mut q: Qrels = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 3 || (i == 0 && cols[2].trim().parse::<i64>().is_err()) {
            if i == 0 {
                continue;
            }
            return Err(bad(path, i + 1, "expected query-id, corpus-id, score"));
        }
        let grade: i64 = cols[2].trim().parse().map_err(|e| bad(path, i + 1, e))?;
        if grade > 0 {
            q.entry(cols[0].to_string())
                .or_default()
                .insert(cols[1].to_string(), grade as u32);
        }
    }
    Ok(q)
}

/// A run: query id → ranked (document id, score), best first.
pub type Run = BTreeMap<String, Vec<(String, f32)>>;

/// Writes a TREC run (`qid Q0 docid rank score tag`).
pub fn write_trec(path: &Path, run: &Run, tag: &str) -> Result<(), EvalError> {
    let f = std::fs::File::create(path)
        .map_err(|e| EvalError::Invalid(format!("cannot write {}: {e}", path.display())))?;
    let mut w = std::io::BufWriter::new(f);
    for (q, docs) in run {
        for (rank, (d, s)) in docs.iter().enumerate() {
            writeln!(w, "{q} Q0 {d} {} {s} {tag}", rank + 1)
                .map_err(|e| EvalError::Invalid(format!("{}: {e}", path.display())))?;
        }
    }
    w.flush()
        .map_err(|e| EvalError::Invalid(format!("{}: {e}", path.display())))
}

/// Averaged metrics of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metrics {
    /// nDCG@10.
    pub ndcg_at_10: f64,
    /// Recall@100.
    pub recall_at_100: f64,
    /// MRR@10.
    pub mrr_at_10: f64,
    /// MAP.
    pub map: f64,
    /// Queries evaluated (those with a relevant judgement).
    pub queries: usize,
}

/// Scores `run` against `qrels`.
pub fn evaluate(run: &Run, qrels: &Qrels) -> Metrics {
    let (mut ndcg, mut recall, mut mrr, mut map, mut n) = (0.0, 0.0, 0.0, 0.0, 0usize);
    for (q, rel) in qrels {
        if rel.is_empty() {
            continue;
        }
        n += 1;
        let mut docs: Vec<(String, f32)> = run.get(q).cloned().unwrap_or_default();
        docs.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| b.0.cmp(&a.0)));
        let gain = |d: &str| f64::from(rel.get(d).copied().unwrap_or(0));
        let dcg: f64 = docs
            .iter()
            .take(10)
            .enumerate()
            .map(|(i, (d, _))| gain(d) / ((i + 2) as f64).log2())
            .sum();
        let mut grades: Vec<u32> = rel.values().copied().collect();
        grades.sort_unstable_by(|a, b| b.cmp(a));
        let idcg: f64 = grades
            .iter()
            .take(10)
            .enumerate()
            .map(|(i, &g)| f64::from(g) / ((i + 2) as f64).log2())
            .sum();
        ndcg += if idcg > 0.0 { dcg / idcg } else { 0.0 };
        let found = docs
            .iter()
            .take(100)
            .filter(|(d, _)| rel.contains_key(d))
            .count();
        recall += found as f64 / rel.len() as f64;
        if let Some(pos) = docs.iter().take(10).position(|(d, _)| rel.contains_key(d)) {
            mrr += 1.0 / (pos + 1) as f64;
        }
        let mut hits = 0usize;
        let mut ap = 0.0;
        for (i, (d, _)) in docs.iter().enumerate() {
            if rel.contains_key(d) {
                hits += 1;
                ap += hits as f64 / (i + 1) as f64;
            }
        }
        map += ap / rel.len() as f64;
    }
    let avg = |x: f64| if n == 0 { 0.0 } else { x / n as f64 };
    Metrics {
        ndcg_at_10: avg(ndcg),
        recall_at_100: avg(recall),
        mrr_at_10: avg(mrr),
        map: avg(map),
        queries: n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_metrics() {
        let mut qrels: Qrels = HashMap::new();
        qrels.insert(
            "q1".into(),
            [("a".to_string(), 1), ("c".to_string(), 1)].into(),
        );
        qrels.insert("q2".into(), [("x".to_string(), 1)].into());
        let mut run: Run = BTreeMap::new();
        run.insert(
            "q1".into(),
            vec![("a".into(), 3.0), ("b".into(), 2.0), ("c".into(), 1.0)],
        );
        run.insert("q2".into(), vec![("y".into(), 1.0)]);
        let m = evaluate(&run, &qrels);
        // q1: DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3); q2: 0.
        let q1 = 1.5 / (1.0 + 1.0 / 3f64.log2());
        assert!((m.ndcg_at_10 - q1 / 2.0).abs() < 1e-12);
        assert!((m.recall_at_100 - 0.5).abs() < 1e-12);
        assert!((m.mrr_at_10 - 0.5).abs() < 1e-12);
        // q1 AP = (1/1 + 2/3) / 2
        assert!((m.map - (1.0 + 2.0 / 3.0) / 2.0 / 2.0).abs() < 1e-12);
        assert_eq!(m.queries, 2);
    }
}
