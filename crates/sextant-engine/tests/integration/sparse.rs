//! Sparse spaces: BM25 over text and dot-product weights, through the write path, segments,
//! merges and reopen.

use serde_json::json;
use sextant_core::{Filter, Metric, PointId, SparseVector};
use sextant_engine::Scope;
use sextant_engine::{
    CollectionConfig, Database, IndexSpec, PointInput, Schema, SpaceSpec, SparseInput, SparseKind,
    SparseSearchRequest, SparseSpaceSpec, Vectors,
};

const DOCS: &[&str] = &[
    "The quick brown fox jumps over the lazy dog",
    "A fast brown fox leaps over lazy hounds",
    "Dogs and foxes are not friends",
    "The cat sat on the mat",
    "Lazy afternoons with a lazy cat and a lazy dog",
    "Quantum physics describes tiny particles",
    "Particles collide in the accelerator",
    "Brown bread and butter for breakfast",
    "The fox and the hound: a story of friendship",
    "Breakfast with foxes",
];

fn schema() -> Schema {
    Schema {
        spaces: vec![SpaceSpec {
            name: "v".into(),
            dim: 2,
            metric: Metric::L2,
            index: IndexSpec::Flat,
            model: None,
            on_disk: false,
        }],
        payload_indexes: vec![],
        tenant_key: None,
        documents: None,
        ttl: None,
        sparse_spaces: vec![
            SparseSpaceSpec {
                name: "text".into(),
                kind: SparseKind::Bm25 {
                    k1: 1.2,
                    b: 0.75,
                    analyzer: json!({"split": "unicode_words", "lowercase": true, "min_chars": 1,
                                     "max_bytes": 40, "stop_words": "english", "stemmer": "english"}),
                },
                model: None,
            },
            SparseSpaceSpec {
                name: "w".into(),
                kind: SparseKind::Dot,
                model: None,
            },
        ],
    }
}

fn point(i: usize) -> PointInput {
    PointInput {
        id: PointId::Num(i as u64),
        vectors: Vectors::Single(vec![i as f32, 0.0]),
        payload: json!({"even": i.is_multiple_of(2)}),
        sparse: vec![
            ("text".into(), SparseInput::Text(DOCS[i].into())),
            (
                "w".into(),
                SparseInput::Vector(
                    SparseVector::from_pairs(vec![(i as u32 % 3, 1.0 + i as f32), (7, 0.5)])
                        .unwrap(),
                ),
            ),
        ],
        expires_at: None,
    }
}

fn bm25(c: &sextant_engine::Collection, q: &str, filter: Option<Filter>) -> Vec<(u64, f32)> {
    c.search_sparse(SparseSearchRequest {
        space: "text".into(),
        query: SparseInput::Text(q.into()),
        k: 5,
        filter,
        scope: Scope::Unscoped,
        with_payload: false,
    })
    .unwrap()
    .hits
    .iter()
    .map(|h| match h.id {
        PointId::Num(n) => (n, h.score.unwrap()),
        _ => unreachable!(),
    })
    .collect()
}

#[test]
fn bm25_scores_do_not_depend_on_segments_and_survive_reopen() {
    let one = tempfile::tempdir().unwrap();
    let many = tempfile::tempdir().unwrap();
    let cfg = |flush_points| CollectionConfig {
        flush_points,
        background_merge: false,
        ..CollectionConfig::default()
    };
    let db1 = Database::open(one.path(), cfg(1000)).unwrap();
    let c1 = db1.create_collection("c", schema()).unwrap();
    c1.upsert(&Scope::Unscoped, (0..DOCS.len()).map(point).collect())
        .unwrap();
    let db2 = Database::open(many.path(), cfg(3)).unwrap();
    let c2 = db2.create_collection("c", schema()).unwrap();
    for i in 0..DOCS.len() {
        c2.upsert(&Scope::Unscoped, vec![point(i)]).unwrap();
    }
    assert!(c2.info().segments.len() >= 3);
    for q in [
        "lazy dog",
        "brown fox",
        "breakfast foxes",
        "particles",
        "nothing matches",
    ] {
        let a = bm25(&c1, q, None);
        let b = bm25(&c2, q, None);
        assert_eq!(a.len(), b.len(), "{q}");
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.0, y.0, "{q}: {a:?} vs {b:?}");
            assert!((x.1 - y.1).abs() < 1e-5, "{q}: {a:?} vs {b:?}");
        }
    }
    // Stemming and stop words apply to queries too: "foxes" finds "fox".
    let hits = bm25(&c1, "the foxes", None);
    assert!(hits.iter().any(|h| h.0 == 0) && !hits.iter().any(|h| h.0 == 3));
    assert!(bm25(&c1, "nothing matches", None).is_empty());
    // The lazy-dog document outranks one that mentions neither word.
    let lazy = bm25(&c1, "lazy dog", None);
    assert_eq!(lazy[0].0, 4, "three times 'lazy' and a dog: {lazy:?}");
    // Filters restrict.
    let even =
        Filter::from_json_str(r#"{"must":[{"key":"even","match":{"value":true}}]}"#).unwrap();
    assert!(bm25(&c2, "fox", Some(even))
        .iter()
        .all(|h| h.0.is_multiple_of(2)));
    // Dot space.
    let r = c2
        .search_sparse(SparseSearchRequest {
            space: "w".into(),
            query: SparseInput::Vector(SparseVector::from_pairs(vec![(2, 1.0)]).unwrap()),
            k: 2,
            filter: None,
            scope: Scope::Unscoped,
            with_payload: false,
        })
        .unwrap();
    let ids: Vec<PointId> = r.hits.iter().map(|h| h.id.clone()).collect();
    assert_eq!(
        ids,
        vec![PointId::Num(8), PointId::Num(5)],
        "weights 9 and 6 on term 2"
    );
    // Deleting and merging keeps results consistent; reopening keeps them.
    c2.delete(&Scope::Unscoped, vec![PointId::Num(4)]).unwrap();
    c2.optimize().unwrap();
    let before = bm25(&c2, "lazy dog", None);
    assert!(before.iter().all(|h| h.0 != 4));
    drop(c2);
    drop(db2);
    let db2 = Database::open(many.path(), cfg(3)).unwrap();
    let c2 = db2.collection("c").unwrap();
    assert_eq!(bm25(&c2, "lazy dog", None), before);
}

#[test]
fn sparse_input_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
    let c = db.create_collection("c", schema()).unwrap();
    let mut p = point(0);
    p.sparse = vec![("w".into(), SparseInput::Text("words".into()))];
    let e = c.upsert(&Scope::Unscoped, vec![p]).unwrap_err().to_string();
    assert!(e.contains("not text"), "{e}");
    let mut p = point(0);
    p.sparse = vec![("nope".into(), SparseInput::Text("x".into()))];
    assert!(c
        .upsert(&Scope::Unscoped, vec![p])
        .unwrap_err()
        .to_string()
        .contains("unknown sparse space"));
    let mut p = point(0);
    p.sparse = vec![(
        "w".into(),
        SparseInput::Vector(SparseVector {
            indices: vec![1],
            values: vec![-1.0],
        }),
    )];
    assert!(c
        .upsert(&Scope::Unscoped, vec![p])
        .unwrap_err()
        .to_string()
        .contains("non-negative"));
    let mut bad = schema();
    bad.sparse_spaces[0].kind = SparseKind::Bm25 {
        k1: 1.2,
        b: 2.0,
        analyzer: json!(null),
    };
    assert!(db.create_collection("d", bad).is_err());
    assert_eq!(c.count(&Scope::Unscoped, None).unwrap(), 0);
}

fn text_point(id: u64, text: &str) -> PointInput {
    PointInput {
        id: PointId::Num(id),
        vectors: Vectors::Single(vec![id as f32, 0.0]),
        payload: json!({}),
        sparse: vec![("text".into(), SparseInput::Text(text.into()))],
        expires_at: None,
    }
}

fn search_all(c: &sextant_engine::Collection, q: &str) -> Vec<(u64, u32)> {
    let mut hits: Vec<(u64, u32)> = c
        .search_sparse(SparseSearchRequest {
            space: "text".into(),
            query: SparseInput::Text(q.into()),
            k: 1000,
            filter: None,
            scope: Scope::Unscoped,
            with_payload: false,
        })
        .unwrap()
        .hits
        .iter()
        .map(|h| match h.id {
            PointId::Num(n) => (n, h.score.unwrap().to_bits()),
            _ => unreachable!(),
        })
        .collect();
    hits.sort_unstable();
    hits
}

/// Pairs of numbers whose 32-bit FNV-1a term ids were equal (analyzer version 1).
const COLLIDING: &[(u64, u64)] = &[
    (1023898, 1027041),
    (1142173, 1150199),
    (1127784, 1150852),
    (1019468, 1167144),
    (1021378, 1175439),
    (1022383, 1198436),
    (1155428, 1239130),
    (1176263, 1265534),
];

/// Regression (issue 14, item 3): `1023898` found `1027041` at the same score.
#[test]
fn bm25_numbers_that_shared_a_hash_do_not_find_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
    let c = db.create_collection("c", schema()).unwrap();
    let points = COLLIDING
        .iter()
        .flat_map(|&(a, b)| [a, b])
        .map(|n| text_point(n, &format!("order {n}")))
        .collect();
    c.upsert(&Scope::Unscoped, points).unwrap();
    for &(a, b) in COLLIDING {
        for n in [a, b] {
            let hits = search_all(&c, &n.to_string());
            assert_eq!(hits.len(), 1, "{n}: {hits:?}");
            assert_eq!(hits[0].0, n);
        }
    }
    // A collection made with analyzer version 1 keeps its hashed terms, collisions included.
    let mut old = schema();
    if let SparseKind::Bm25 { analyzer, .. } = &mut old.sparse_spaces[0].kind {
        analyzer["version"] = json!(1);
    }
    let c1 = db.create_collection("old", old).unwrap();
    c1.upsert(
        &Scope::Unscoped,
        vec![text_point(1, "1023898"), text_point(2, "1027041")],
    )
    .unwrap();
    assert_eq!(search_all(&c1, "1023898").len(), 2);
}

/// Scores after any sequence of upserts, replacements, deletes, flushes, merges and reopens
/// (WAL replay, segment files) equal those of a fresh collection holding the same live
/// documents, bit for bit.
#[test]
fn bm25_scores_after_updates_and_deletes_equal_a_fresh_collection() {
    const WORDS: &[&str] = &[
        "alpha", "beta", "gamma", "delta", "fox", "dog", "cat", "lazy", "quick", "brown", "river",
        "stone", "東京", "学习", "1023898", "1027041",
    ];
    let cfg = CollectionConfig {
        flush_points: 5,
        background_merge: false,
        durability: sextant_engine::Durability::Interval(std::time::Duration::from_secs(60)),
        ..CollectionConfig::default()
    };
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = |n: u64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state % n
    };
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Database::open(dir.path(), cfg).unwrap();
        let mut c = db.create_collection("c", schema()).unwrap();
        let mut live: std::collections::BTreeMap<u64, String> = Default::default();
        for step in 0..70 {
            match next(12) {
                0..=3 => {
                    let batch: Vec<(u64, String)> = (0..1 + next(3))
                        .map(|_| {
                            let words: Vec<&str> = (0..1 + next(8))
                                .map(|_| WORDS[next(WORDS.len() as u64) as usize])
                                .collect();
                            (next(24), words.join(" "))
                        })
                        .collect();
                    // The last write of an id in a batch wins.
                    c.upsert(
                        &Scope::Unscoped,
                        batch.iter().map(|(id, t)| text_point(*id, t)).collect(),
                    )
                    .unwrap();
                    live.extend(batch);
                }
                4 => {
                    // A document replaced by new chunks: one atomic delete + upsert.
                    let gone = next(24);
                    let (id, text) = (next(24), WORDS[next(WORDS.len() as u64) as usize]);
                    c.replace(
                        &Scope::Unscoped,
                        vec![PointId::Num(gone)],
                        vec![text_point(id, text)],
                    )
                    .unwrap();
                    live.remove(&gone);
                    live.insert(id, text.to_string());
                }
                10 => {
                    drop(c);
                    drop(db);
                    db = Database::open(dir.path(), cfg).unwrap();
                    c = db.collection("c").unwrap();
                }
                5 | 6 => {
                    let ids: Vec<u64> = (0..1 + next(3)).map(|_| next(24)).collect();
                    c.delete(
                        &Scope::Unscoped,
                        ids.iter().map(|&i| PointId::Num(i)).collect(),
                    )
                    .unwrap();
                    for i in ids {
                        live.remove(&i);
                    }
                }
                7 => c.flush().unwrap(),
                8 => {
                    c.merge().unwrap();
                }
                9 => c.optimize().unwrap(),
                _ => {
                    // A point with no terms still counts as a document of length 0.
                    let id = next(24);
                    c.upsert(&Scope::Unscoped, vec![text_point(id, "")])
                        .unwrap();
                    live.insert(id, String::new());
                }
            }
            if step % 10 != 9 {
                continue;
            }
            let fresh_dir = tempfile::tempdir().unwrap();
            let fresh_db = Database::open(fresh_dir.path(), cfg).unwrap();
            let fresh = fresh_db.create_collection("c", schema()).unwrap();
            if !live.is_empty() {
                fresh
                    .upsert(
                        &Scope::Unscoped,
                        live.iter().map(|(id, t)| text_point(*id, t)).collect(),
                    )
                    .unwrap();
            }
            for q in [
                "fox",
                "lazy brown dog",
                "alpha beta gamma delta",
                "東京で学习",
                "1023898",
                "river stone quick cat",
            ] {
                assert_eq!(
                    search_all(&c, q),
                    search_all(&fresh, q),
                    "round {round} step {step} query {q:?} ({} segments)",
                    c.info().segments.len()
                );
            }
        }
    }
}

#[test]
fn bm25_cjk_queries_find_cjk_documents() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
    let c = db.create_collection("c", schema()).unwrap();
    let docs = [
        (1, "我们在北京大学学习中文和历史。"),
        (2, "上海是一个国际化的大城市，有很多高楼。"),
        (3, "東京タワーは東京の観光名所です。"),
        (4, "きょうは とても いい てんき ですね"),
        (5, "서울은 대한민국의 수도입니다."),
        (6, "저는 학교에서 한국어를 공부합니다."),
        (7, "The quick brown fox jumps over the lazy dog"),
    ];
    c.upsert(
        &Scope::Unscoped,
        docs.iter().map(|(id, t)| text_point(*id, t)).collect(),
    )
    .unwrap();
    for (q, want) in [
        ("北京大学", 1),
        ("中文历史", 1),
        ("上海城市", 2),
        ("東京タワー", 3),
        ("てんき", 4),
        ("ＴＯＫＹＯタワー 観光", 3),
        ("대한민국 수도", 5),
        ("한국어 공부", 6),
        ("학교", 6),
    ] {
        let hits = bm25(&c, q, None);
        assert_eq!(hits.first().map(|h| h.0), Some(want), "{q}: {hits:?}");
    }
}
