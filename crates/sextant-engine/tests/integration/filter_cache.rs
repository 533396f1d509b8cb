//! Immutable segments cache the bitmaps of recent filters (`Segment::select`). A cached answer
//! must never outlive what it describes: property test against a model of the points while
//! upserts, overwrites (which change an id's payload), deletes by id and by filter, flushes,
//! merges and reopens interleave with reads that repeat the same filters, on every read path
//! that builds a filter bitmap (count, scroll, ids by filter, dense search by scan and by graph
//! walk, sparse search).

use std::collections::BTreeMap;

use proptest::prelude::*;
use serde_json::{json, Value};
use sextant_core::{Filter, Metric, PointId, SparseVector};
use sextant_engine::{
    Collection, CollectionConfig, Database, FieldType, IndexSpec, PayloadIndexSpec, PointInput,
    Schema, Scope, SearchRequest, SpaceSpec, SparseInput, SparseKind, SparseSearchRequest,
    SparseSpaceSpec, Vectors,
};

const IDS: u64 = 24;

fn schema() -> Schema {
    Schema {
        spaces: vec![SpaceSpec {
            name: "default".into(),
            dim: 3,
            metric: Metric::L2,
            index: IndexSpec::Hnsw {
                m: 8,
                ef_construction: 32,
                quantization: sextant_engine::Quantization::Auto,
            },
            model: None,
            on_disk: false,
        }],
        // `n` is indexed; `note` is not, so filters on it read payloads.
        payload_indexes: vec![PayloadIndexSpec {
            key: "n".into(),
            field_type: FieldType::Integer,
        }],
        tenant_key: None,
        sparse_spaces: vec![SparseSpaceSpec {
            name: "w".into(),
            kind: SparseKind::Dot,
            model: None,
        }],
        documents: None,
        ttl: None,
    }
}

/// A stored point of the model: its `n` and `note`.
type Model = BTreeMap<u64, (i64, &'static str)>;

const NOTES: [&str; 3] = ["a", "b", "c"];

/// The model's reading of a filter: whether a point with this `n` and `note` matches.
type Matches = fn(i64, &str) -> bool;

/// The filters every read repeats, with the model's reading of each.
fn filters() -> Vec<(Filter, Matches)> {
    let f = |v: Value| Filter::from_json(&v).unwrap();
    vec![
        (
            f(json!({"must": [{"key": "n", "range": {"gte": 3, "lt": 7}}]})),
            |n, _| (3..7).contains(&n),
        ),
        (
            f(json!({"must": [{"key": "note", "match": {"value": "a"}}]})),
            |_, note| note == "a",
        ),
        (
            f(json!({"must": [
                {"key": "n", "range": {"lt": 5}},
                {"key": "note", "match": {"value": "b"}}
            ]})),
            |n, note| n < 5 && note == "b",
        ),
        (
            f(json!({
                "should": [{"key": "n", "match": {"value": 1}}, {"key": "n", "match": {"value": 8}}],
                "must_not": [{"key": "note", "match": {"value": "c"}}]
            })),
            |n, note| (n == 1 || n == 8) && note != "c",
        ),
    ]
}

fn point(id: u64, n: i64, note: &str) -> PointInput {
    let x = id as f32;
    PointInput {
        id: PointId::Num(id),
        vectors: Vectors::Single(vec![x, n as f32, 1.0]),
        payload: json!({"n": n, "note": note}),
        sparse: vec![(
            "w".into(),
            SparseInput::Vector(SparseVector::from_pairs(vec![(0, 1.0)]).unwrap()),
        )],
        expires_at: None,
    }
}

fn sorted_ids(points: impl IntoIterator<Item = PointId>) -> Vec<u64> {
    let mut v: Vec<u64> = points
        .into_iter()
        .map(|p| match p {
            PointId::Num(n) => n,
            other => panic!("unexpected id {other}"),
        })
        .collect();
    v.sort_unstable();
    v
}

/// Every read path's answer for `filter`, by name, as sorted ids (a count as that many ids).
fn reads(c: &Collection, filter: &Filter) -> BTreeMap<&'static str, Vec<u64>> {
    let scope = Scope::Unscoped;
    let k = IDS as usize;
    let mut out = BTreeMap::new();
    out.insert(
        "count",
        (0..c.count(&scope, Some(filter)).unwrap()).collect(),
    );
    let mut scrolled = Vec::new();
    let mut offset = None;
    loop {
        let page = c
            .scroll(&scope, Some(filter), 5, offset.as_deref(), None, false)
            .unwrap();
        scrolled.extend(page.points.into_iter().map(|p| p.id));
        match page.next_offset {
            Some(o) => offset = Some(o),
            None => break,
        }
    }
    out.insert("scroll", sorted_ids(scrolled));
    out.insert(
        "ids_matching",
        sorted_ids(c.ids_matching(&scope, filter).unwrap()),
    );
    for (name, threshold) in [("search exact", u64::MAX), ("search graph", 0)] {
        let r = c
            .search(SearchRequest {
                vector: vec![0.0, 0.0, 1.0],
                k,
                ef: Some(256),
                filter: Some(filter.clone()),
                exact_threshold: Some(threshold),
                ..SearchRequest::default()
            })
            .unwrap();
        out.insert(name, sorted_ids(r.hits.into_iter().map(|h| h.id)));
    }
    let r = c
        .search_sparse(SparseSearchRequest {
            space: "w".into(),
            query: SparseInput::Vector(SparseVector::from_pairs(vec![(0, 1.0)]).unwrap()),
            k,
            filter: Some(filter.clone()),
            scope: scope.clone(),
            with_payload: false,
        })
        .unwrap();
    out.insert("sparse", sorted_ids(r.hits.into_iter().map(|h| h.id)));
    out
}

#[derive(Debug, Clone)]
enum Op {
    Upsert(u64, i64, usize),
    Delete(u64),
    DeleteByFilter(usize),
    Flush,
    Merge,
    Reopen,
    Read,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..IDS, 0i64..10, 0..NOTES.len()).prop_map(|(id, n, note)| Op::Upsert(id, n, note)),
        2 => (0..IDS).prop_map(Op::Delete),
        1 => (0..4usize).prop_map(Op::DeleteByFilter),
        2 => Just(Op::Flush),
        1 => Just(Op::Merge),
        1 => Just(Op::Reopen),
        4 => Just(Op::Read),
    ]
}

fn check(c: &Collection, model: &Model, step: usize) {
    for (i, (filter, want)) in filters().iter().enumerate() {
        let expected: Vec<u64> = model
            .iter()
            .filter(|(_, (n, note))| want(*n, note))
            .map(|(&id, _)| id)
            .collect();
        for (path, got) in reads(c, filter) {
            let want = if path == "count" {
                (0..expected.len() as u64).collect()
            } else {
                expected.clone()
            };
            assert_eq!(got, want, "filter {i}, {path}, after step {step}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn cached_filter_answers_follow_every_write(ops in prop::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let config = CollectionConfig {
            background_merge: false,
            ..CollectionConfig::default()
        };
        let mut db = Database::open(dir.path(), config).unwrap();
        let mut c = db.create_collection("f", schema()).unwrap();
        let mut model = Model::new();
        let scope = Scope::Unscoped;
        for (step, op) in ops.iter().enumerate() {
            match *op {
                Op::Upsert(id, n, note) => {
                    c.upsert(&scope, vec![point(id, n, NOTES[note])]).unwrap();
                    model.insert(id, (n, NOTES[note]));
                }
                Op::Delete(id) => {
                    c.delete(&scope, vec![PointId::Num(id)]).unwrap();
                    model.remove(&id);
                }
                Op::DeleteByFilter(i) => {
                    let (filter, want) = &filters()[i];
                    let n = c.delete_by_filter(&scope, filter).unwrap();
                    let before = model.len();
                    model.retain(|_, (n, note)| !want(*n, note));
                    prop_assert_eq!(n, before - model.len(), "deleted by filter {}", i);
                }
                Op::Flush => c.flush().unwrap(),
                Op::Merge => c.optimize().unwrap(),
                Op::Reopen => {
                    drop(c);
                    drop(db);
                    db = Database::open(dir.path(), config).unwrap();
                    c = db.collection("f").unwrap();
                }
                Op::Read => check(&c, &model, step),
            }
        }
        check(&c, &model, ops.len());
        // The second check above repeats every filter over the same segments: when there are
        // immutable segments, those answers came from their caches.
        let info = c.info();
        if !info.segments.is_empty() {
            prop_assert!(info.filter_cache.hits > 0, "{:?}", info.filter_cache);
        }
    }
}

/// The cache is bounded and reported: `info` shows its hits, misses, entries and bytes, and
/// its bytes are part of `memory_parts.payloads`.
#[test]
fn info_reports_the_filter_cache() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
    let c = db.create_collection("f", schema()).unwrap();
    let scope = Scope::Unscoped;
    let points = (0..IDS).map(|id| point(id, (id % 10) as i64, NOTES[(id % 3) as usize]));
    c.upsert(&scope, points.collect()).unwrap();
    c.flush().unwrap();
    let payloads_before = c.info().memory_parts.payloads;
    let (filter, _) = &filters()[0];
    for _ in 0..3 {
        c.count(&scope, Some(filter)).unwrap();
    }
    let info = c.info();
    assert_eq!(info.filter_cache.misses, 1, "{:?}", info.filter_cache);
    assert_eq!(info.filter_cache.hits, 2, "{:?}", info.filter_cache);
    assert_eq!(info.filter_cache.entries, 1);
    assert!(info.filter_cache.bytes > 0);
    assert!(info.memory_parts.payloads >= payloads_before + info.filter_cache.bytes);
}
