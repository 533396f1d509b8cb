//! Our metrics equal ranx's to 1e-6, per query and averaged, on the committed fixture
//! (`tests/fixtures/ranx/`: graded and binary qrels, tied scores, a query with no relevant
//! document, a query no run answers, unjudged documents, rankings shorter than the cut-offs),
//! whose reference values `bench/eval/ranx_reference.py` wrote with ranx 0.3.20.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use serde_json::Value;
use sextant_eval::ir::{Qrels, Run};
use sextant_eval::metrics::{mean, per_query, Metric};

fn fixture(name: &str) -> Value {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ranx")
        .join(name);
    serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap()
}

fn qrels() -> Qrels {
    let v = fixture("qrels.json");
    v.as_object()
        .unwrap()
        .iter()
        .map(|(q, docs)| {
            let rel: HashMap<String, u32> = docs
                .as_object()
                .unwrap()
                .iter()
                .map(|(d, g)| (d.clone(), g.as_u64().unwrap() as u32))
                .collect();
            (q.clone(), rel)
        })
        .collect()
}

fn run(name: &str) -> Run {
    let v = fixture(&format!("{name}.json"));
    let mut run: Run = BTreeMap::new();
    for (q, docs) in v.as_object().unwrap() {
        run.insert(
            q.clone(),
            docs.as_object()
                .unwrap()
                .iter()
                .map(|(d, s)| (d.clone(), s.as_f64().unwrap() as f32))
                .collect(),
        );
    }
    run
}

#[test]
fn every_metric_equals_ranx_per_query_and_on_average() {
    let expected = fixture("expected.json");
    let qrels = qrels();
    let mut checked = 0;
    for name in ["run_a", "run_b"] {
        let run = run(name);
        let want = &expected[name];
        let metrics: Vec<Metric> = want["mean"]
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.parse().unwrap())
            .collect();
        let pq = per_query(&run, &qrels, &metrics);
        assert_eq!(pq.len(), qrels.len(), "every query of the qrels is scored");
        let means = mean(&pq, metrics.len());
        for (i, m) in metrics.iter().enumerate() {
            let key = m.to_string();
            let w = want["mean"][&key].as_f64().unwrap();
            assert!(
                (means[i] - w).abs() < 1e-6,
                "{name} {key}: ours {} ranx {w}",
                means[i]
            );
            for (q, scores) in &pq {
                let w = want["per_query"][&key][q].as_f64().unwrap();
                assert!(
                    (scores[i] - w).abs() < 1e-6,
                    "{name} {key} {q}: ours {} ranx {w}",
                    scores[i]
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 2 * 17 * 32);
}
