//! The tenant-isolation matrix: every read and write of the engine × (own tenant, other tenant,
//! no tenant, all tenants) × (string tenants, integer tenants above 2^53) × (unflushed exact
//! scan, flushed HNSW walk) × (dense, sparse BM25, sparse dot). Not one point of another tenant
//! may be read, counted, changed or deleted.

use std::collections::HashSet;

use serde_json::{json, Value};
use sextant_core::{Filter, Metric, PointId, SparseVector};
use sextant_engine::{
    Collection, CollectionConfig, Database, EngineError, FieldType, IndexSpec, PayloadIndexSpec,
    PointInput, Schema, Scope, SearchRequest, SpaceSpec, SparseInput, SparseKind,
    SparseSearchRequest, SparseSpaceSpec, TenantId, Vectors,
};

/// Points per tenant.
const PER: u64 = 60;

fn schema(integer: bool) -> Schema {
    Schema {
        spaces: vec![SpaceSpec {
            name: "v".into(),
            dim: 4,
            metric: Metric::Cosine,
            index: IndexSpec::default(),
            model: None,
            on_disk: false,
        }],
        payload_indexes: vec![PayloadIndexSpec {
            key: "org".into(),
            field_type: if integer {
                FieldType::Integer
            } else {
                FieldType::Keyword
            },
        }],
        tenant_key: Some("org".into()),
        documents: None,
        ttl: None,
        sparse_spaces: vec![
            SparseSpaceSpec {
                name: "text".into(),
                kind: SparseKind::Bm25 {
                    k1: 1.2,
                    b: 0.75,
                    analyzer: Value::Null,
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

/// Tenants that a sloppy comparison would merge: `"007"` and `"7"` (and `7` for a number
/// parser); 2^53 and 2^53 + 1 (equal as f64).
fn tenants(integer: bool) -> Vec<TenantId> {
    if integer {
        vec![
            TenantId::Int(9_007_199_254_740_992),
            TenantId::Int(9_007_199_254_740_993),
            TenantId::Int(i128::from(u64::MAX)),
        ]
    } else {
        vec![
            TenantId::Str("007".into()),
            TenantId::Str("7".into()),
            TenantId::Str("acme".into()),
        ]
    }
}

fn vector(i: u64) -> Vec<f32> {
    let x = i as f32;
    vec![
        1.0 + (x * 0.37).sin(),
        1.0 + (x * 0.11).cos(),
        0.5,
        (x * 0.05).sin(),
    ]
}

fn point(i: u64, t: &TenantId) -> PointInput {
    PointInput {
        id: PointId::Num(i),
        vectors: Vectors::Single(vector(i)),
        payload: json!({"org": t.to_json(), "n": i}),
        sparse: vec![
            (
                "text".into(),
                SparseInput::Text(format!("shared words for everyone item{i}")),
            ),
            (
                "w".into(),
                SparseInput::Vector(SparseVector::from_pairs(vec![(1, 1.0), (2, 0.5)]).unwrap()),
            ),
        ],
        expires_at: None,
    }
}

/// Ids of tenant `t` (tenant index `ti`).
fn ids_of(ti: usize) -> Vec<u64> {
    (0..PER).map(|i| ti as u64 * 1000 + i).collect()
}

fn setup(dir: &std::path::Path, integer: bool, flushed: bool) -> std::sync::Arc<Collection> {
    let db = Database::open(
        dir,
        CollectionConfig {
            background_merge: false,
            ..CollectionConfig::default()
        },
    )
    .unwrap();
    let c = db.create_collection("t", schema(integer)).unwrap();
    for (ti, t) in tenants(integer).iter().enumerate() {
        let pts = ids_of(ti).into_iter().map(|i| point(i, t)).collect();
        c.upsert(&Scope::Tenant(t.clone()), pts).unwrap();
    }
    if flushed {
        c.flush().unwrap();
    }
    c
}

fn org(p: &sextant_engine::PointOut) -> TenantId {
    TenantId::from_json(&p.payload.as_ref().unwrap()["org"]).unwrap()
}

fn all_ids(c: &Collection) -> HashSet<PointId> {
    let mut out = HashSet::new();
    let mut offset = None;
    loop {
        let page = c
            .scroll(
                &Scope::AllTenants,
                None,
                1000,
                offset.as_deref(),
                None,
                false,
            )
            .unwrap();
        out.extend(page.points.into_iter().map(|p| p.id));
        match page.next_offset {
            Some(o) => offset = Some(o),
            None => return out,
        }
    }
}

fn is_tenant_required(e: EngineError) -> bool {
    matches!(e, EngineError::TenantRequired(_))
}

/// Every read, with each scope.
fn check_reads(c: &Collection, integer: bool) {
    let ts = tenants(integer);
    let everyone: Vec<PointId> = (0..ts.len()).flat_map(ids_of).map(PointId::Num).collect();
    for (ti, t) in ts.iter().enumerate() {
        let own = Scope::Tenant(t.clone());
        let mine: HashSet<PointId> = ids_of(ti).into_iter().map(PointId::Num).collect();
        // get: asking for every tenant's ids returns only the own ones.
        let got = c.get(&own, &everyone, true, false).unwrap();
        assert_eq!(got.len() as u64, PER, "get {t}");
        assert!(got.iter().all(|p| org(p) == *t && mine.contains(&p.id)));
        // count, with and without a filter.
        assert_eq!(c.count(&own, None).unwrap(), PER, "count {t}");
        let f = Filter::from_json(&json!({"must": [{"key": "n", "range": {"gte": 0}}]})).unwrap();
        assert_eq!(c.count(&own, Some(&f)).unwrap(), PER);
        // A filter naming another tenant inside the own scope matches nothing.
        let other = &ts[(ti + 1) % ts.len()];
        let f_other = Filter::from_json(
            &json!({"must": [{"key": "org", "match": {"value": other.to_json()}}]}),
        )
        .unwrap();
        assert_eq!(c.count(&own, Some(&f_other)).unwrap(), 0);
        assert!(c.ids_matching(&own, &f_other).unwrap().is_empty());
        // scroll, paged.
        let mut seen = HashSet::new();
        let mut offset = None;
        loop {
            let page = c
                .scroll(&own, None, 7, offset.as_deref(), None, true)
                .unwrap();
            for p in &page.points {
                assert_eq!(org(p), *t);
                seen.insert(p.id.clone());
            }
            match page.next_offset {
                Some(o) => offset = Some(o),
                None => break,
            }
        }
        assert_eq!(seen, mine, "scroll {t}");
        // ids_matching.
        let ids: HashSet<PointId> = c
            .ids_matching(&own, &Filter::default())
            .unwrap()
            .into_iter()
            .collect();
        assert_eq!(ids, mine);
        // Dense search on both plans: exact scan and graph walk.
        for threshold in [0, u64::MAX] {
            let r = c
                .search(SearchRequest {
                    vector: vector(ti as u64 * 1000 + 3),
                    k: 200,
                    scope: own.clone(),
                    with_payload: true,
                    exact_threshold: Some(threshold),
                    ef: Some(400),
                    ..Default::default()
                })
                .unwrap();
            assert_eq!(r.hits.len() as u64, PER, "dense {t} threshold {threshold}");
            assert!(r.hits.iter().all(|h| org(h) == *t));
        }
        // Sparse search: BM25 text and dot-product weights.
        for (space, query) in [
            ("text", SparseInput::Text("shared words".into())),
            (
                "w",
                SparseInput::Vector(SparseVector::from_pairs(vec![(1, 1.0)]).unwrap()),
            ),
        ] {
            let r = c
                .search_sparse(SparseSearchRequest {
                    space: space.into(),
                    query,
                    k: 500,
                    filter: None,
                    scope: own.clone(),
                    with_payload: true,
                })
                .unwrap();
            assert_eq!(r.hits.len() as u64, PER, "{space} {t}");
            assert!(r.hits.iter().all(|h| org(h) == *t));
        }
    }
    // No tenant: every read is refused.
    let none = Scope::Unscoped;
    assert!(is_tenant_required(
        c.get(&none, &everyone, true, false).unwrap_err()
    ));
    assert!(is_tenant_required(c.count(&none, None).unwrap_err()));
    assert!(is_tenant_required(
        c.scroll(&none, None, 10, None, None, false).unwrap_err()
    ));
    assert!(is_tenant_required(
        c.ids_matching(&none, &Filter::default()).unwrap_err()
    ));
    assert!(is_tenant_required(
        c.search(SearchRequest {
            vector: vector(1),
            k: 5,
            ..Default::default()
        })
        .unwrap_err()
    ));
    assert!(is_tenant_required(
        c.search_sparse(SparseSearchRequest {
            space: "text".into(),
            query: SparseInput::Text("shared".into()),
            k: 5,
            filter: None,
            scope: Scope::Unscoped,
            with_payload: false,
        })
        .unwrap_err()
    ));
    // A tenant of the wrong type is refused, not read as another tenant.
    let wrong = if integer {
        TenantId::Str("9007199254740992".into())
    } else {
        TenantId::Int(7)
    };
    assert!(c.count(&Scope::Tenant(wrong), None).is_err());
    // The administrator sees everyone.
    assert_eq!(
        c.count(&Scope::AllTenants, None).unwrap(),
        PER * ts.len() as u64
    );
}

/// Every write, with each scope: nothing of another tenant changes.
fn check_writes(c: &Collection, integer: bool) {
    let ts = tenants(integer);
    let (a, b) = (&ts[0], &ts[1]);
    let sa = Scope::Tenant(a.clone());
    let b_ids: Vec<PointId> = ids_of(1).into_iter().map(PointId::Num).collect();
    let before = all_ids(c);
    let b_before = c
        .get(&Scope::Tenant(b.clone()), &b_ids, true, true)
        .unwrap();

    // delete by id of another tenant's points: nothing happens.
    assert_eq!(c.delete(&sa, b_ids.clone()).unwrap(), 0);
    // delete by filter in the own scope never reaches B, even when the filter names B.
    let f_b =
        Filter::from_json(&json!({"must": [{"key": "org", "match": {"value": b.to_json()}}]}))
            .unwrap();
    assert_eq!(c.delete_by_filter(&sa, &f_b).unwrap(), 0);
    // replace deleting B's ids from A's scope: refused or no-op for B.
    let _ = c.replace(&sa, b_ids.clone(), Vec::new());
    // upsert over B's id from A's scope: refused (the id belongs to another tenant).
    let e = c
        .upsert(&sa, vec![point(1000, a)])
        .expect_err("overwriting another tenant's point");
    assert!(matches!(e, EngineError::TenantConflict(_)), "{e}");
    // upsert into A's scope of a point claiming tenant B: refused.
    let e = c.upsert(&sa, vec![point(77_777, b)]).unwrap_err();
    assert!(matches!(e, EngineError::InvalidPoint { .. }), "{e}");
    // The administrator cannot move a point between tenants either.
    let e = c
        .upsert(&Scope::AllTenants, vec![point(1001, a)])
        .unwrap_err();
    assert!(matches!(e, EngineError::TenantConflict(_)), "{e}");
    // Within one batch, one id cannot carry two tenants.
    let e = c
        .upsert(&Scope::AllTenants, vec![point(55_555, a), point(55_555, b)])
        .unwrap_err();
    assert!(matches!(e, EngineError::TenantConflict(_)), "{e}");
    // replace in A's scope writing over B's id: refused.
    let e = c
        .replace(&sa, Vec::new(), vec![point(1002, a)])
        .unwrap_err();
    assert!(matches!(e, EngineError::TenantConflict(_)), "{e}");
    // check (an importer's dry run) refuses the same.
    assert!(c.check(&sa, &[point(1003, a)]).is_err());
    // No tenant: every write is refused.
    for e in [
        c.upsert(&Scope::Unscoped, vec![point(88_888, a)])
            .unwrap_err(),
        c.delete(&Scope::Unscoped, b_ids.clone()).unwrap_err(),
        c.delete_by_filter(&Scope::Unscoped, &Filter::default())
            .unwrap_err(),
        c.replace(&Scope::Unscoped, b_ids.clone(), Vec::new())
            .unwrap_err(),
    ] {
        assert!(is_tenant_required(e));
    }
    assert_eq!(all_ids(c), before, "a refused write changed something");
    assert_eq!(
        c.get(&Scope::Tenant(b.clone()), &b_ids, true, true)
            .unwrap(),
        b_before,
        "tenant B's points changed"
    );

    // Writes inside the own scope work, and a point without the tenant key gets the scope's.
    let mut p = point(66_666, a);
    p.payload = json!({"n": 1});
    c.upsert(&sa, vec![p]).unwrap();
    let got = c.get(&sa, &[PointId::Num(66_666)], true, false).unwrap();
    assert_eq!(org(&got[0]), *a);
    assert_eq!(c.delete(&sa, vec![PointId::Num(66_666)]).unwrap(), 1);
    // Deleting an own point frees its id for another tenant (no move: a new point).
    c.delete(&sa, vec![PointId::Num(0)]).unwrap();
    c.upsert(&Scope::Tenant(b.clone()), vec![point(0, b)])
        .unwrap();
    // Dropping a tenant removes exactly its points.
    let n = c.drop_tenant(a).unwrap();
    assert_eq!(n as u64, PER - 1);
    assert_eq!(c.count(&sa, None).unwrap(), 0);
    assert_eq!(c.count(&Scope::Tenant(b.clone()), None).unwrap(), PER + 1);
    assert_eq!(c.count(&Scope::Tenant(ts[2].clone()), None).unwrap(), PER);
    let mut expected = vec![(b.clone(), PER + 1), (ts[2].clone(), PER)];
    expected.sort();
    assert_eq!(c.tenants().unwrap(), expected);
}

#[test]
fn tenant_isolation_matrix() {
    for integer in [false, true] {
        for flushed in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let c = setup(dir.path(), integer, flushed);
            check_reads(&c, integer);
            check_writes(&c, integer);
            // And after the writes reach segments.
            c.optimize().unwrap();
            assert_eq!(
                c.count(&Scope::Tenant(tenants(integer)[0].clone()), None)
                    .unwrap(),
                0
            );
        }
    }
}

#[test]
fn a_collection_without_tenants_refuses_a_tenant_scope() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
    let mut s = schema(false);
    s.tenant_key = None;
    s.payload_indexes.clear();
    let c = db.create_collection("plain", s).unwrap();
    let t = TenantId::Str("x".into());
    c.upsert(&Scope::Unscoped, vec![point(1, &t)]).unwrap();
    assert!(c.count(&Scope::Tenant(t.clone()), None).is_err());
    assert!(c
        .upsert(&Scope::Tenant(t), vec![point(2, &TenantId::Int(1))])
        .is_err());
    assert_eq!(c.count(&Scope::AllTenants, None).unwrap(), 1);
    assert_eq!(c.count(&Scope::Unscoped, None).unwrap(), 1);
}
