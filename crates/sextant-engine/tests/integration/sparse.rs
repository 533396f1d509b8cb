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
        }],
        payload_indexes: vec![],
        tenant_key: None,
        documents: None,
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
