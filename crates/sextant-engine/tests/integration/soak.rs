//! A seeded random-operations soak (upsert, delete, delete by filter, flush, merge, optimize,
//! reopen) checked against a plain in-memory model after every step.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sextant_core::{Filter, Metric, PointId};
use sextant_engine::Scope;
use sextant_engine::{
    CollectionConfig, Database, FieldType, IndexSpec, PayloadIndexSpec, PointInput, Schema,
    SearchRequest, SpaceSpec, Vectors,
};

use crate::engine::random_vec;

type Model = BTreeMap<u64, (Vec<f32>, Vec<f32>, Value)>;

fn schema() -> Schema {
    Schema {
        spaces: vec![
            SpaceSpec {
                name: "a".into(),
                dim: 4,
                metric: Metric::L2,
                index: IndexSpec::Flat,
                model: None,
                on_disk: false,
            },
            SpaceSpec {
                name: "b".into(),
                dim: 6,
                metric: Metric::Dot,
                index: IndexSpec::Hnsw {
                    m: 8,
                    ef_construction: 32,
                    quantization: sextant_engine::Quantization::Auto,
                },
                model: None,
                on_disk: false,
            },
        ],
        payload_indexes: vec![PayloadIndexSpec {
            key: "g".into(),
            field_type: FieldType::Integer,
        }],
        tenant_key: None,
        documents: None,
        ttl: None,
        sparse_spaces: Vec::new(),
    }
}

fn check(db: &Database, model: &Model, rng: &mut StdRng, step: usize) {
    let c = db.collection("soak").unwrap();
    assert_eq!(
        c.count(&Scope::Unscoped, None).unwrap(),
        model.len() as u64,
        "step {step}: count"
    );
    let ids: Vec<PointId> = model.keys().map(|&i| PointId::Num(i)).collect();
    let got = c.get(&Scope::Unscoped, &ids, true, true).unwrap();
    assert_eq!(got.len(), model.len(), "step {step}: get");
    for p in &got {
        let PointId::Num(i) = p.id else { panic!() };
        let (a, b, payload) = &model[&i];
        assert_eq!(
            p.payload.as_ref(),
            Some(payload),
            "step {step}: payload of {i}"
        );
        let vs = p.vectors.as_ref().unwrap();
        assert_eq!(vs["a"], json!(a), "step {step}: vector a of {i}");
        assert_eq!(vs["b"], json!(b), "step {step}: vector b of {i}");
    }
    let g = rng.gen_range(0..4);
    let f = Filter::from_json_str(&format!(
        r#"{{"must":[{{"key":"g","match":{{"value":{g}}}}}]}}"#
    ))
    .unwrap();
    let want = model.values().filter(|m| m.2["g"] == json!(g)).count() as u64;
    assert_eq!(
        c.count(&Scope::Unscoped, Some(&f)).unwrap(),
        want,
        "step {step}: filtered count"
    );
    // Space "a" is flat, hence exact: compare with brute force.
    let q = random_vec(rng, 4);
    let r = c
        .search(SearchRequest {
            space: Some("a".into()),
            vector: q.clone(),
            k: 5,
            filter: Some(f.clone()),
            ..Default::default()
        })
        .unwrap();
    let mut truth: Vec<(f32, u64)> = model
        .iter()
        .filter(|(_, m)| m.2["g"] == json!(g))
        .map(|(&i, m)| (m.0.iter().zip(&q).map(|(x, y)| (x - y) * (x - y)).sum(), i))
        .collect();
    truth.sort_by(|a, b| a.0.total_cmp(&b.0));
    let truth: Vec<u64> = truth.into_iter().take(5).map(|t| t.1).collect();
    let got: Vec<u64> = r
        .hits
        .iter()
        .map(|h| match h.id {
            PointId::Num(n) => n,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(got, truth, "step {step}: exact filtered search");
    // Space "b" (HNSW): every hit is live and unique.
    let r = c
        .search(SearchRequest {
            space: Some("b".into()),
            vector: random_vec(rng, 6),
            k: 20,
            ..Default::default()
        })
        .unwrap();
    let mut seen = std::collections::HashSet::new();
    for h in &r.hits {
        let PointId::Num(n) = h.id else { panic!() };
        assert!(model.contains_key(&n), "step {step}: hit {n} is not live");
        assert!(seen.insert(n), "step {step}: hit {n} twice");
    }
    assert_eq!(
        r.hits.len(),
        model.len().min(20),
        "step {step}: hnsw hit count"
    );
}

#[test]
fn random_operations_match_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectionConfig {
        flush_points: 40,
        max_segments: 3,
        ..CollectionConfig::default()
    };
    let mut rng = StdRng::seed_from_u64(0x50a4);
    let mut model: Model = BTreeMap::new();
    let mut db = Database::open(dir.path(), config).unwrap();
    db.create_collection("soak", schema()).unwrap();
    for step in 0..400 {
        let c = db.collection("soak").unwrap();
        match rng.gen_range(0..100) {
            0..=54 => {
                let n = rng.gen_range(1..25);
                let mut batch = Vec::new();
                for _ in 0..n {
                    let id = rng.gen_range(0..300u64);
                    let a = random_vec(&mut rng, 4);
                    let b = random_vec(&mut rng, 6);
                    let payload = json!({"g": rng.gen_range(0..4), "step": step});
                    model.insert(id, (a.clone(), b.clone(), payload.clone()));
                    batch.push(PointInput {
                        id: PointId::Num(id),
                        vectors: Vectors::Named(vec![("b".into(), b), ("a".into(), a)]),
                        payload,
                        sparse: Vec::new(),
                        expires_at: None,
                    });
                }
                c.upsert(&Scope::Unscoped, batch).unwrap();
            }
            55..=74 => {
                let ids: Vec<u64> = (0..rng.gen_range(1..15))
                    .map(|_| rng.gen_range(0..320u64))
                    .collect();
                let existed = ids
                    .iter()
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .filter(|i| model.remove(i).is_some())
                    .count();
                let n = c
                    .delete(
                        &Scope::Unscoped,
                        ids.into_iter().map(PointId::Num).collect(),
                    )
                    .unwrap();
                assert_eq!(n, existed, "step {step}: delete count");
            }
            75..=79 => {
                let g = rng.gen_range(0..4);
                let f = Filter::from_json_str(&format!(
                    r#"{{"must":[{{"key":"g","match":{{"value":{g}}}}},{{"key":"step","range":{{"lt":{}}}}}]}}"#,
                    step / 2
                ))
                .unwrap();
                let before = model.len();
                model.retain(|_, m| {
                    !(m.2["g"] == json!(g) && m.2["step"].as_u64().unwrap() < step as u64 / 2)
                });
                assert_eq!(
                    c.delete_by_filter(&Scope::Unscoped, &f).unwrap(),
                    before - model.len()
                );
            }
            80..=86 => c.flush().unwrap(),
            87..=92 => {
                c.merge().unwrap();
            }
            93..=94 => c.optimize().unwrap(),
            _ => {
                drop(c);
                drop(db);
                db = Database::open(dir.path(), config).unwrap();
            }
        }
        check(&db, &model, &mut rng, step);
    }
}
