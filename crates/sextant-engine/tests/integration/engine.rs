//! Collections end to end: CRUD across flush and reopen, bad input, filters and the planner,
//! tenancy, concurrent merge.

use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sextant_core::{Filter, Metric, PointId};
use sextant_engine::{
    Collection, CollectionConfig, Database, EngineError, FieldType, IndexSpec, OrderBy,
    PayloadIndexSpec, PointInput, Schema, SearchRequest, SpaceSpec, Strategy, Vectors,
};
use sextant_engine::{Scope, TenantId};

pub fn schema(dim: usize, metric: Metric, index: IndexSpec) -> Schema {
    Schema {
        spaces: vec![SpaceSpec {
            name: "default".into(),
            dim,
            metric,
            index,
            model: None,
            on_disk: false,
        }],
        payload_indexes: vec![
            PayloadIndexSpec {
                key: "bucket".into(),
                field_type: FieldType::Integer,
            },
            PayloadIndexSpec {
                key: "tag".into(),
                field_type: FieldType::Keyword,
            },
        ],
        tenant_key: None,
        documents: None,
        ttl: None,
        sparse_spaces: Vec::new(),
    }
}

pub fn point(id: u64, v: Vec<f32>, payload: Value) -> PointInput {
    PointInput {
        id: PointId::Num(id),
        vectors: Vectors::Single(v),
        payload,
        sparse: Vec::new(),
        expires_at: None,
    }
}

pub fn random_vec(rng: &mut StdRng, dim: usize) -> Vec<f32> {
    (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

fn config(flush_points: usize) -> CollectionConfig {
    CollectionConfig {
        flush_points,
        ..CollectionConfig::default()
    }
}

pub fn ids(points: &[sextant_engine::PointOut]) -> Vec<u64> {
    points
        .iter()
        .map(|p| match p.id {
            PointId::Num(n) => n,
            _ => panic!("integer ids"),
        })
        .collect()
}

#[test]
fn crud_survives_flush_merge_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let vecs: Vec<Vec<f32>> = (0..300).map(|_| random_vec(&mut rng, 8)).collect();
    {
        let db = Database::open(dir.path(), config(100)).unwrap();
        let c = db
            .create_collection("c", schema(8, Metric::L2, IndexSpec::default()))
            .unwrap();
        for chunk in (0..300u64).collect::<Vec<_>>().chunks(50) {
            let batch = chunk
                .iter()
                .map(|&i| {
                    point(
                        i,
                        vecs[i as usize].clone(),
                        json!({"bucket": i % 10, "tag": format!("t{}", i % 3)}),
                    )
                })
                .collect();
            c.upsert(&Scope::Unscoped, batch).unwrap();
        }
        assert_eq!(c.count(&Scope::Unscoped, None).unwrap(), 300);
        assert!(c.info().segments.len() >= 2, "auto-flush made segments");
        // Replace one point in a flushed segment, delete others across segments and mutable.
        c.upsert(
            &Scope::Unscoped,
            vec![point(5, vecs[6].clone(), json!({"bucket": 99}))],
        )
        .unwrap();
        assert_eq!(
            c.delete(
                &Scope::Unscoped,
                vec![PointId::Num(7), PointId::Num(299), PointId::Num(12345)]
            )
            .unwrap(),
            2
        );
        assert_eq!(c.count(&Scope::Unscoped, None).unwrap(), 298);
        let f = Filter::from_json_str(r#"{"must":[{"key":"bucket","range":{"gte":99}}]}"#).unwrap();
        assert_eq!(c.count(&Scope::Unscoped, Some(&f)).unwrap(), 1);
    }
    // Reopen: WAL replay of the unflushed part.
    let db = Database::open(dir.path(), config(100)).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.count(&Scope::Unscoped, None).unwrap(), 298);
    let got = c
        .get(
            &Scope::Unscoped,
            &[PointId::Num(5), PointId::Num(7)],
            true,
            true,
        )
        .unwrap();
    assert_eq!(ids(&got), vec![5]);
    assert_eq!(got[0].payload, Some(json!({"bucket": 99})));
    c.flush().unwrap();
    c.optimize().unwrap();
    let info = c.info();
    assert_eq!(
        (info.segments.len(), info.points, info.deleted),
        (1, 298, 0)
    );
    drop(c);
    drop(db);
    let db = Database::open(dir.path(), config(100)).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(c.count(&Scope::Unscoped, None).unwrap(), 298);
    // The nearest neighbour of a stored vector is itself.
    let r = c
        .search(SearchRequest {
            vector: vecs[40].clone(),
            k: 3,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ids(&r.hits)[0], 40);
    assert!(r.hits[0].score.unwrap() < 1e-4);
}

#[test]
fn scroll_pages_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), config(7)).unwrap();
    let c = db
        .create_collection("s", schema(2, Metric::Dot, IndexSpec::Flat))
        .unwrap();
    let pts = (0..25u64)
        .map(|i| point(100 - i, vec![1.0, 0.0], json!({"rank": (i * 7) % 25})))
        .collect();
    c.upsert(&Scope::Unscoped, pts).unwrap();
    let mut seen = Vec::new();
    let mut offset = None;
    loop {
        let page = c
            .scroll(&Scope::Unscoped, None, 10, offset.as_deref(), None, false)
            .unwrap();
        seen.extend(ids(&page.points));
        match page.next_offset {
            Some(o) => offset = Some(o),
            None => break,
        }
    }
    assert_eq!(seen, (76..=100).collect::<Vec<_>>());
    let ob = OrderBy {
        key: "rank".into(),
        descending: true,
    };
    let page = c
        .scroll(&Scope::Unscoped, None, 3, None, Some(&ob), true)
        .unwrap();
    let ranks: Vec<Value> = page
        .points
        .iter()
        .map(|p| p.payload.clone().unwrap()["rank"].clone())
        .collect();
    assert_eq!(ranks, vec![json!(24), json!(23), json!(22)]);
    assert!(c
        .scroll(&Scope::Unscoped, None, 3, Some("x"), None, false)
        .is_err());
}

#[test]
fn bad_input_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), config(1000)).unwrap();
    let c = db
        .create_collection("b", schema(3, Metric::Cosine, IndexSpec::default()))
        .unwrap();
    c.upsert(
        &Scope::Unscoped,
        vec![point(1, vec![1.0, 0.0, 0.0], json!({}))],
    )
    .unwrap();
    let before = c.count(&Scope::Unscoped, None).unwrap();
    // The message with its source chain, as a front end shows it.
    let err = |batch: Vec<PointInput>| {
        let e = c.upsert(&Scope::Unscoped, batch).unwrap_err();
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg = format!("{msg}: {s}");
            src = s.source();
        }
        msg
    };
    let good = point(2, vec![0.0, 1.0, 0.0], json!({}));
    let e = err(vec![good.clone(), point(3, vec![1.0, 2.0], json!({}))]);
    assert!(
        e.contains("point 1 (id 3)") && e.contains("dimension"),
        "{e}"
    );
    let e = err(vec![point(3, vec![1.0, f32::NAN, 0.0], json!({}))]);
    assert!(
        e.to_lowercase().contains("nan") || e.contains("finite"),
        "{e}"
    );
    let e = err(vec![point(3, vec![1.0, f32::INFINITY, 0.0], json!({}))]);
    assert!(
        e.contains("finite") || e.to_lowercase().contains("inf"),
        "{e}"
    );
    let e = err(vec![point(3, vec![1.0, 1.0, 0.0], json!([1, 2]))]);
    assert!(e.contains("payload must be a JSON object"), "{e}");
    let mixed = PointInput {
        id: PointId::Str("x".into()),
        vectors: Vectors::Single(vec![1.0, 1.0, 1.0]),
        payload: json!({}),
        sparse: Vec::new(),
        expires_at: None,
    };
    let e = err(vec![good.clone(), mixed]);
    assert!(e.contains("\"x\"") && e.contains("integer"), "{e}");
    let named = PointInput {
        id: PointId::Num(9),
        vectors: Vectors::Named(vec![("nope".into(), vec![1.0, 1.0, 1.0])]),
        payload: json!({}),
        sparse: Vec::new(),
        expires_at: None,
    };
    assert!(err(vec![named]).contains("unknown vector space \"nope\""));
    assert_eq!(
        c.count(&Scope::Unscoped, None).unwrap(),
        before,
        "refused batches changed nothing"
    );
    assert!(c
        .get(&Scope::Unscoped, &[PointId::Num(2)], false, false)
        .unwrap()
        .is_empty());
    assert!(matches!(
        db.collection("missing"),
        Err(EngineError::CollectionNotFound(_))
    ));
    assert!(matches!(
        db.create_collection("b", schema(3, Metric::L2, IndexSpec::Flat)),
        Err(EngineError::NameTaken(_))
    ));
    assert!(matches!(
        db.create_collection("a b", schema(3, Metric::L2, IndexSpec::Flat)),
        Err(EngineError::InvalidName(_))
    ));
    let q = |v: Vec<f32>| {
        c.search(SearchRequest {
            vector: v,
            k: 1,
            ..Default::default()
        })
    };
    assert!(q(vec![1.0]).unwrap_err().to_string().contains("dimension"));
    assert!(Filter::from_json_str(r#"{"must":[{"key":"a","range":{"gt":"x"}}]}"#).is_err());
    // Reopen: still exactly one point.
    drop(c);
    drop(db);
    let db = Database::open(dir.path(), config(1000)).unwrap();
    assert_eq!(
        db.collection("b")
            .unwrap()
            .count(&Scope::Unscoped, None)
            .unwrap(),
        1
    );
}

#[test]
fn second_process_is_locked_out_and_aliases_switch() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), config(1000)).unwrap();
    assert!(matches!(
        Database::open(dir.path(), config(1000)),
        Err(EngineError::Locked(_))
    ));
    db.create_collection("v1", schema(2, Metric::L2, IndexSpec::Flat))
        .unwrap();
    db.create_collection("v2", schema(2, Metric::L2, IndexSpec::Flat))
        .unwrap();
    db.collection("v2")
        .unwrap()
        .upsert(&Scope::Unscoped, vec![point(1, vec![0.0, 0.0], json!({}))])
        .unwrap();
    db.set_alias("live", "v1").unwrap();
    assert_eq!(db.collection("live").unwrap().name(), "v1");
    db.set_alias("live", "v2").unwrap();
    assert_eq!(
        db.collection("live")
            .unwrap()
            .count(&Scope::Unscoped, None)
            .unwrap(),
        1
    );
    assert!(matches!(
        db.set_alias("v1", "v2"),
        Err(EngineError::NameTaken(_))
    ));
    assert!(matches!(
        db.set_alias("x", "nope"),
        Err(EngineError::CollectionNotFound(_))
    ));
    drop(db);
    let db = Database::open(dir.path(), config(1000)).unwrap();
    assert_eq!(db.resolve("live"), "v2");
    db.delete_collection("v2").unwrap();
    assert!(
        db.aliases().is_empty(),
        "aliases of a deleted collection go with it"
    );
    assert_eq!(db.list_collections().unwrap(), vec!["v1".to_string()]);
    db.delete_alias("live").unwrap_err();
}

/// Exact filtered top-k by brute force.
pub fn brute(vecs: &[Vec<f32>], allowed: impl Fn(usize) -> bool, q: &[f32], k: usize) -> Vec<u64> {
    let mut d: Vec<(f32, u64)> = vecs
        .iter()
        .enumerate()
        .filter(|(i, _)| allowed(*i))
        .map(|(i, v)| {
            (
                v.iter().zip(q).map(|(a, b)| (a - b) * (a - b)).sum(),
                i as u64,
            )
        })
        .collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    d.into_iter().take(k).map(|x| x.1).collect()
}

/// The 1-bit code scan as a filtered-search plan, on every layout it serves (vectors in memory
/// and on disk) and across reopen: past `codes_exact_threshold(64)` (1,000) matches the planner tries
/// the codes first, then the walk, then picks by measured cost; whichever it picks, the hits
/// stay inside the filter, skip deleted and overwritten points, match a brute-force scan
/// (recall >= 0.95), and report exact scores. An explicit exact threshold still scans.
#[test]
fn filtered_code_scan_plan_on_every_layout() {
    for on_disk in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut s = schema(64, Metric::L2, IndexSpec::default());
        s.spaces[0].on_disk = on_disk;
        let mut rng = StdRng::seed_from_u64(17);
        let n = 4_000;
        let mut vecs: Vec<Vec<f32>> = (0..n).map(|_| random_vec(&mut rng, 64)).collect();
        let buckets: Vec<u64> = (0..n).map(|_| rng.gen_range(0..100)).collect();
        {
            let db = Database::open(dir.path(), config(100_000)).unwrap();
            let c = db.create_collection("b", s).unwrap();
            let pts = (0..n)
                .map(|i| point(i as u64, vecs[i].clone(), json!({"bucket": buckets[i]})))
                .collect();
            c.upsert(&Scope::Unscoped, pts).unwrap();
            c.optimize().unwrap();
            // Overwrite some points (their new vectors go to the mutable segment) and delete
            // others: neither the old vectors nor the deleted points may come back.
            let moved: Vec<usize> = (0..n).step_by(13).collect();
            let pts = moved
                .iter()
                .map(|&i| {
                    vecs[i] = random_vec(&mut rng, 64);
                    point(i as u64, vecs[i].clone(), json!({"bucket": buckets[i]}))
                })
                .collect();
            c.upsert(&Scope::Unscoped, pts).unwrap();
            let gone: Vec<PointId> = (5..n).step_by(17).map(|i| PointId::Num(i as u64)).collect();
            c.delete(&Scope::Unscoped, gone).unwrap();
        }
        let deleted = |i: usize| i >= 5 && (i - 5).is_multiple_of(17);
        for reopened in [false, true] {
            let db = Database::open(dir.path(), config(100_000)).unwrap();
            let c = db.collection("b").unwrap();
            if reopened {
                c.optimize().unwrap();
            }
            let f =
                Filter::from_json_str(r#"{"must":[{"key":"bucket","range":{"lt":40}}]}"#).unwrap();
            let mut seen = std::collections::BTreeSet::new();
            let mut hit = 0;
            let queries = 40;
            for qi in 0..queries {
                let q = random_vec(&mut rng, 64);
                let r = c
                    .search(SearchRequest {
                        vector: q.clone(),
                        k: 10,
                        // Wide enough that both plans clear the recall bar on uniform 64-d data (which
                        // plan runs depends on measured time).
                        ef: Some(128),
                        filter: Some(f.clone()),
                        with_payload: true,
                        ..Default::default()
                    })
                    .unwrap();
                let graph_plan = r.plan.iter().find(|p| p.points >= 1_024).unwrap();
                if qi == 0 {
                    assert_eq!(
                        graph_plan.strategy,
                        Strategy::Binary,
                        "codes are tried first"
                    );
                }
                if qi == 1 {
                    assert_eq!(graph_plan.strategy, Strategy::Graph, "then the walk");
                }
                seen.insert(format!("{:?}", graph_plan.strategy));
                let truth = brute(&vecs, |i| buckets[i] < 40 && !deleted(i), &q, 10);
                for h in &r.hits {
                    let PointId::Num(id) = h.id else { panic!() };
                    let id = id as usize;
                    assert!(buckets[id] < 40 && !deleted(id), "on_disk {on_disk}: {id}");
                    let d: f32 = vecs[id]
                        .iter()
                        .zip(&q)
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum();
                    let (score, d) = (h.score.unwrap(), d.sqrt()); // L2 scores are distances
                    assert!(
                        (score - d).abs() <= 1e-3 * d.max(1.0),
                        "{score} vs exact {d}"
                    );
                }
                hit += ids(&r.hits).iter().filter(|i| truth.contains(i)).count();
            }
            let recall = hit as f64 / (10 * queries) as f64;
            assert!(
                recall >= 0.95,
                "on_disk {on_disk}, reopened {reopened}: recall {recall}"
            );
            assert!(
                seen.contains("Binary") && seen.contains("Graph"),
                "{seen:?}"
            );
            // Few matches, or an explicit threshold: an exact scan.
            let few =
                Filter::from_json_str(r#"{"must":[{"key":"bucket","range":{"lt":1}}]}"#).unwrap();
            for (filter, threshold) in [(few, None), (f.clone(), Some(u64::MAX))] {
                let r = c
                    .search(SearchRequest {
                        vector: vecs[0].clone(),
                        k: 5,
                        filter: Some(filter),
                        exact_threshold: threshold,
                        ..Default::default()
                    })
                    .unwrap();
                let scans = |s: &Strategy| matches!(s, Strategy::Exact | Strategy::Empty);
                assert!(r.plan.iter().all(|p| scans(&p.strategy)), "{:?}", r.plan);
            }
        }
    }
}

#[test]
fn filtered_search_plans_and_recall() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), config(100_000)).unwrap();
    let c = db
        .create_collection("f", schema(16, Metric::L2, IndexSpec::default()))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let n = 6000;
    let vecs: Vec<Vec<f32>> = (0..n).map(|_| random_vec(&mut rng, 16)).collect();
    let buckets: Vec<u64> = (0..n).map(|_| rng.gen_range(0..100)).collect();
    let pts = (0..n)
        .map(|i| {
            point(
                i as u64,
                vecs[i].clone(),
                json!({"bucket": buckets[i], "free": buckets[i] % 2}),
            )
        })
        .collect();
    c.upsert(&Scope::Unscoped, pts).unwrap();
    c.optimize().unwrap();
    for (sel, want) in [
        (1u64, Strategy::Exact),
        (10, Strategy::Graph),
        (50, Strategy::Graph),
    ] {
        let f = Filter::from_json_str(&format!(
            r#"{{"must":[{{"key":"bucket","range":{{"lt":{sel}}}}}]}}"#
        ))
        .unwrap();
        let mut hit = 0;
        let queries = 30;
        for _ in 0..queries {
            let q = random_vec(&mut rng, 16);
            let r = c
                .search(SearchRequest {
                    vector: q.clone(),
                    k: 10,
                    ef: Some(128),
                    filter: Some(f.clone()),
                    with_payload: true,
                    exact_threshold: Some(200),
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(r.plan[0].strategy, want, "selectivity {sel}%");
            for h in &r.hits {
                assert!(h.payload.as_ref().unwrap()["bucket"].as_u64().unwrap() < sel);
            }
            let truth = brute(&vecs, |i| buckets[i] < sel, &q, 10);
            hit += ids(&r.hits).iter().filter(|i| truth.contains(i)).count();
        }
        let recall = hit as f64 / (10 * queries) as f64;
        assert!(recall >= 0.95, "recall {recall} at {sel}%");
    }
    // An unindexed key still filters (payload scan), and is reported.
    let f = Filter::from_json_str(
        r#"{"must":[{"key":"free","match":{"value":1}},{"key":"bucket","range":{"lt":20}}]}"#,
    )
    .unwrap();
    let r = c
        .search(SearchRequest {
            vector: vecs[0].clone(),
            k: 5,
            filter: Some(f.clone()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.unindexed_keys, vec!["free".to_string()]);
    let expected = (0..n)
        .filter(|&i| buckets[i] % 2 == 1 && buckets[i] < 20)
        .count() as u64;
    assert_eq!(c.count(&Scope::Unscoped, Some(&f)).unwrap(), expected);
    assert!(c
        .info()
        .unindexed_payload_keys
        .contains(&"free".to_string()));
}

#[test]
fn tenant_scope_never_leaks() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), config(400)).unwrap();
    let mut s = schema(8, Metric::Cosine, IndexSpec::default());
    s.tenant_key = Some("org".into());
    let c = db.create_collection("t", s).unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    let pts: Vec<PointInput> = (0..1500u64)
        .map(|i| {
            point(
                i,
                random_vec(&mut rng, 8),
                json!({"org": format!("org{}", i % 7)}),
            )
        })
        .collect();
    c.upsert(&Scope::AllTenants, pts).unwrap();
    let e = c
        .upsert(
            &Scope::AllTenants,
            vec![point(9999, random_vec(&mut rng, 8), json!({"x": 1}))],
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("multi-tenant"), "{e}");
    for t in 0..7 {
        let r = c
            .search(SearchRequest {
                vector: random_vec(&mut rng, 8),
                k: 50,
                scope: Scope::Tenant(TenantId::Str(format!("org{t}"))),
                with_payload: true,
                ..Default::default()
            })
            .unwrap();
        assert_eq!(r.hits.len(), 50);
        for h in r.hits {
            assert_eq!(h.payload.unwrap()["org"], json!(format!("org{t}")));
        }
    }
}

#[test]
fn merge_runs_while_queries_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        dir.path(),
        CollectionConfig {
            flush_points: 500,
            max_segments: 2,
            ..CollectionConfig::default()
        },
    )
    .unwrap();
    let c: Arc<Collection> = db
        .create_collection("m", schema(8, Metric::L2, IndexSpec::default()))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    let vecs: Vec<Vec<f32>> = (0..3000).map(|_| random_vec(&mut rng, 8)).collect();
    for chunk in (0..3000u64).collect::<Vec<_>>().chunks(500) {
        c.upsert(
            &Scope::Unscoped,
            chunk
                .iter()
                .map(|&i| point(i, vecs[i as usize].clone(), json!({})))
                .collect(),
        )
        .unwrap();
    }
    c.delete(
        &Scope::Unscoped,
        (0..3000u64).step_by(3).map(PointId::Num).collect(),
    )
    .unwrap();
    let reader = {
        let c = c.clone();
        let vecs = vecs.clone();
        std::thread::spawn(move || {
            for i in 0..200usize {
                let id = (i * 3 + 1) % 3000;
                // ef above any segment's size: the walk is exhaustive, so a miss can only mean
                // a point lost or hidden by the concurrent merge, not an approximation.
                let r = c
                    .search(SearchRequest {
                        vector: vecs[id].clone(),
                        k: 1,
                        ef: Some(1024),
                        ..Default::default()
                    })
                    .unwrap();
                if ids(&r.hits) != vec![id as u64] {
                    let got = c
                        .get(&Scope::Unscoped, &[PointId::Num(id as u64)], false, true)
                        .unwrap();
                    let exact = c
                        .search(SearchRequest {
                            vector: vecs[id].clone(),
                            k: 3,
                            ef: Some(3000),
                            ..Default::default()
                        })
                        .unwrap();
                    panic!(
                        "query {i}: point {id} not found: got {:?}; stored {:?}; ef=3000 gives {:?}; segments {:?}",
                        r.hits, got, exact.hits, c.info().segments
                    );
                }
            }
        })
    };
    while c.merge().unwrap() {}
    reader.join().unwrap();
    assert!(c.info().segments.len() <= 2);
    assert_eq!(c.count(&Scope::Unscoped, None).unwrap(), 2000);
}

#[test]
fn background_merges_keep_segment_count_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        dir.path(),
        CollectionConfig {
            flush_points: 100,
            max_segments: 3,
            ..CollectionConfig::default()
        },
    )
    .unwrap();
    let c = db
        .create_collection("bg", schema(4, Metric::L2, IndexSpec::default()))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    for chunk in (0..2000u64).collect::<Vec<_>>().chunks(100) {
        c.upsert(
            &Scope::Unscoped,
            chunk
                .iter()
                .map(|&i| point(i, random_vec(&mut rng, 4), json!({})))
                .collect(),
        )
        .unwrap();
    }
    // 20 flushes happened; merges ran in the background (wait for the last one).
    std::thread::sleep(std::time::Duration::from_millis(50));
    c.wait_for_merge();
    let info = c.info();
    assert!(info.segments.len() <= 4, "{} segments", info.segments.len());
    assert_eq!((info.points, info.background_error), (2000, None));
    drop(c);
    drop(db);
    let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
    assert_eq!(
        db.collection("bg")
            .unwrap()
            .count(&Scope::Unscoped, None)
            .unwrap(),
        2000
    );
}

#[test]
fn corruption_is_reported_with_the_file_and_a_torn_wal_tail_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let setup = |flush: bool| {
        let db = Database::open(dir.path(), config(1000)).unwrap();
        let c = db
            .create_collection("x", schema(2, Metric::L2, IndexSpec::Flat))
            .unwrap();
        c.upsert(
            &Scope::Unscoped,
            (0..10)
                .map(|i| point(i, vec![i as f32, 0.0], json!({})))
                .collect(),
        )
        .unwrap();
        if flush {
            c.flush().unwrap();
        }
        c.upsert(&Scope::Unscoped, vec![point(10, vec![1.0, 1.0], json!({}))])
            .unwrap();
    };
    setup(true);
    let coll = dir.path().join("collections/x");
    let open_err = || {
        let db = Database::open(dir.path(), config(1000)).unwrap();
        db.collection("x").map(|_| ()).unwrap_err().to_string()
    };
    // A torn last WAL record: cut with a warning, the earlier data intact.
    let wal = coll.join("wal");
    let len = std::fs::metadata(&wal).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
    f.set_len(len - 3).unwrap();
    {
        let db = Database::open(dir.path(), config(1000)).unwrap();
        let c = db.collection("x").unwrap();
        assert_eq!(
            c.count(&Scope::Unscoped, None).unwrap(),
            10,
            "the torn batch is gone, the flushed ones stay"
        );
        assert!(c.recovery().warnings()[0].contains("interrupted write"));
    }
    // Damage inside a segment file or the manifest: an error naming the file.
    let points = coll.join("segments/1/points.bin");
    let mut bytes = std::fs::read(&points).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&points, &bytes).unwrap();
    let e = open_err();
    assert!(e.contains("points.bin") && e.contains("checksum"), "{e}");
    bytes[last] ^= 0xff;
    std::fs::write(&points, &bytes).unwrap();
    let manifest = coll.join("manifest");
    let mut m = std::fs::read(&manifest).unwrap();
    m[30] ^= 0x01;
    std::fs::write(&manifest, &m).unwrap();
    let e = open_err();
    assert!(e.contains("manifest") && e.contains("checksum"), "{e}");
}

/// An `ivf_pq` collection: a flushed segment big enough trains lists and codes (searched
/// approximately, rescored exactly), a small one stays flat (exact); recall with and without a
/// filter, deletes, and the same answers after reopening.
#[test]
fn ivf_pq_collections_search_filter_delete_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let spec = IndexSpec::IvfPq {
        nlist: 0,
        m: 8,
        nprobe: 32,
        bits: 4,
        opq: false,
    };
    let mut rng = StdRng::seed_from_u64(11);
    let n = 4000;
    let vecs: Vec<Vec<f32>> = (0..n).map(|_| random_vec(&mut rng, 16)).collect();
    let buckets: Vec<u64> = (0..n).map(|_| rng.gen_range(0..10)).collect();
    let queries: Vec<Vec<f32>> = (0..30).map(|_| random_vec(&mut rng, 16)).collect();
    let search = |c: &Collection, q: &[f32], filter: Option<Filter>| {
        c.search(SearchRequest {
            vector: q.to_vec(),
            k: 10,
            ef: Some(300),
            filter,
            with_payload: true,
            exact_threshold: Some(0),
            ..Default::default()
        })
        .unwrap()
    };
    let before: Vec<Vec<u64>>;
    {
        let db = Database::open(dir.path(), config(100_000)).unwrap();
        let c = db
            .create_collection("ivf", schema(16, Metric::L2, spec))
            .unwrap();
        assert_eq!(c.schema().spaces[0].index, spec);
        let pts = (0..n)
            .map(|i| point(i as u64, vecs[i].clone(), json!({"bucket": buckets[i]})))
            .collect();
        c.upsert(&Scope::Unscoped, pts).unwrap();
        c.optimize().unwrap();
        let (mut hit, mut hit_f) = (0, 0);
        let f = Filter::from_json_str(r#"{"must":[{"key":"bucket","range":{"lt":3}}]}"#).unwrap();
        for q in &queries {
            let r = search(&c, q, None);
            assert_eq!(r.plan[0].strategy, Strategy::Graph, "an approximate index");
            let truth = brute(&vecs, |_| true, q, 10);
            hit += ids(&r.hits).iter().filter(|i| truth.contains(i)).count();
            let r = search(&c, q, Some(f.clone()));
            for h in &r.hits {
                assert!(h.payload.as_ref().unwrap()["bucket"].as_u64().unwrap() < 3);
            }
            let truth = brute(&vecs, |i| buckets[i] < 3, q, 10);
            hit_f += ids(&r.hits).iter().filter(|i| truth.contains(i)).count();
        }
        let (recall, recall_f) = (hit as f64 / 300.0, hit_f as f64 / 300.0);
        assert!(
            recall >= 0.9 && recall_f >= 0.9,
            "recall {recall}, filtered {recall_f}"
        );
        // Deleted points never come back.
        let gone = ids(&search(&c, &queries[0], None).hits);
        let gone_ids: Vec<PointId> = gone.iter().map(|&i| PointId::Num(i)).collect();
        c.delete(&Scope::Unscoped, gone_ids).unwrap();
        let after = ids(&search(&c, &queries[0], None).hits);
        assert!(after.iter().all(|i| !gone.contains(i)), "{after:?}");
        before = queries
            .iter()
            .map(|q| ids(&search(&c, q, None).hits))
            .collect();
    }
    let db = Database::open(dir.path(), config(100_000)).unwrap();
    let c = db.collection("ivf").unwrap();
    let again: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| ids(&search(&c, q, None).hits))
        .collect();
    assert_eq!(again, before, "the same answers after reopening");
    // A segment under IVF_MIN_POINTS stays flat: exact.
    let small = db
        .create_collection("small", schema(16, Metric::L2, spec))
        .unwrap();
    let pts = (0..500)
        .map(|i| point(i as u64, vecs[i].clone(), json!({})))
        .collect();
    small.upsert(&Scope::Unscoped, pts).unwrap();
    small.optimize().unwrap();
    let r = search(&small, &queries[1], None);
    assert_eq!(r.plan[0].strategy, Strategy::Exact);
    assert_eq!(ids(&r.hits), brute(&vecs[..500], |_| true, &queries[1], 10));
    // L1 is refused at creation, naming the index.
    let err = db
        .create_collection("l1", schema(16, Metric::L1, spec))
        .unwrap_err()
        .to_string();
    assert!(err.contains("ivf_pq") && err.contains("l1"), "{err}");
}

/// Binary metrics (hamming, jaccard) over a flat and a graph space: scores by definition across
/// flushes and reopening, and a vector that is not binary refused on every way in — upsert (the
/// collection unchanged), search, a drift canary, the advisor's own queries — while codes that
/// approximate products (sq8, ivf_pq) are refused at creation naming the metric.
#[test]
fn binary_metric_collections_score_by_definition_and_refuse_other_vectors() {
    const BITS: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(77);
    let vecs: Vec<Vec<f32>> = (0..600)
        .map(|_| {
            (0..BITS)
                .map(|_| f32::from(u8::from(rng.gen_bool(0.3))))
                .collect()
        })
        .collect();
    let definition = |metric: Metric, a: &[f32], b: &[f32]| -> f32 {
        let count = |f: &dyn Fn(bool, bool) -> bool| {
            a.iter()
                .zip(b)
                .filter(|(x, y)| f(**x == 1.0, **y == 1.0))
                .count() as f32
        };
        match metric {
            Metric::Hamming => count(&|x, y| x != y),
            _ => {
                let or = count(&|x, y| x || y);
                if or == 0.0 {
                    0.0
                } else {
                    1.0 - count(&|x, y| x && y) / or
                }
            }
        }
    };
    let mut half = vecs[0].clone();
    half[5] = 0.5;
    for metric in [Metric::Hamming, Metric::Jaccard] {
        for index in [IndexSpec::Flat, IndexSpec::default()] {
            let name = format!("{metric}-{}", index.name());
            {
                let db = Database::open(dir.path(), config(250)).unwrap();
                let c = db
                    .create_collection(&name, schema(BITS, metric, index))
                    .unwrap();
                let pts = (0..vecs.len())
                    .map(|i| point(i as u64, vecs[i].clone(), json!({})))
                    .collect();
                c.upsert(&Scope::Unscoped, pts).unwrap();
                let e = c
                    .upsert(
                        &Scope::Unscoped,
                        vec![point(9_999, half.clone(), json!({}))],
                    )
                    .unwrap_err();
                assert_eq!(e.kind(), sextant_engine::ErrorKind::InvalidInput, "{e}");
                assert!(e.to_string().contains("binary"), "{e}");
                assert_eq!(c.count(&Scope::Unscoped, None).unwrap(), 600);
                let e = c
                    .search(SearchRequest {
                        vector: half.clone(),
                        k: 3,
                        ..Default::default()
                    })
                    .unwrap_err();
                assert!(e.to_string().contains("binary"), "{name}: {e}");
                let e = c
                    .drift_add_canary(sextant_engine::drift::CanaryInput {
                        name: "c".into(),
                        space: None,
                        text: None,
                        vector: half.clone(),
                        k: 3,
                        expected: None,
                    })
                    .unwrap_err();
                assert!(e.to_string().contains("binary"), "{name}: {e}");
                let e = c
                    .advise(
                        &sextant_engine::advise::AdviseRequest {
                            query_vectors: Some(vec![half.clone()]),
                            ..Default::default()
                        },
                        &mut |_, _, _| {},
                    )
                    .unwrap_err();
                assert!(e.to_string().contains("binary"), "{name}: {e}");
            }
            // Reopened: every hit scored by the definition, a stored vector its own nearest.
            let db = Database::open(dir.path(), config(250)).unwrap();
            let c = db.collection(&name).unwrap();
            for q in [7usize, 300, 599] {
                let r = c
                    .search(SearchRequest {
                        vector: vecs[q].clone(),
                        k: 5,
                        ef: Some(100),
                        ..Default::default()
                    })
                    .unwrap();
                assert_eq!(r.hits[0].score, Some(0.0), "{name}");
                for h in &r.hits {
                    let PointId::Num(id) = h.id else { panic!() };
                    let want = definition(metric, &vecs[q], &vecs[id as usize]);
                    assert!((h.score.unwrap() - want).abs() < 1e-6, "{name}");
                }
            }
        }
        let db = Database::open(dir.path(), config(250)).unwrap();
        let ivf = IndexSpec::IvfPq {
            nlist: 0,
            m: 8,
            nprobe: 8,
            bits: 4,
            opq: false,
        };
        let e = db
            .create_collection(&format!("{metric}-ivf"), schema(BITS, metric, ivf))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("metric {metric} is not supported")),
            "{e}"
        );
        let sq8 = IndexSpec::Hnsw {
            m: 16,
            ef_construction: 100,
            quantization: sextant_engine::Quantization::Sq8,
        };
        let e = db
            .create_collection(&format!("{metric}-sq8"), schema(BITS, metric, sq8))
            .unwrap_err();
        assert!(
            e.to_string()
                .contains(&format!("does not support metric {metric}")),
            "{e}"
        );
    }
}
