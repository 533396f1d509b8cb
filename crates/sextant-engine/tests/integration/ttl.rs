//! TTL and retention (issue 16, item 3): expired points are never returned by any read path,
//! from the instant of their expiry on, on a simulated clock; their space is reclaimed by the
//! next merge; expiries survive restarts, flushes, merges and snapshots; old files open.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};
use sextant_core::{Filter, Metric, PointId, SparseVector};
use sextant_engine::{
    Collection, CollectionConfig, Database, FieldType, IndexSpec, ManualClock, OrderBy,
    PayloadIndexSpec, PointInput, Schema, Scope, SearchRequest, SpaceSpec, SparseInput, SparseKind,
    SparseSearchRequest, SparseSpaceSpec, TenantId, TtlSpec, Vectors,
};

/// 2026-01-01T00:00:00Z in milliseconds.
const T0: i64 = 1_767_225_600_000;
const DIM: usize = 4;

fn config() -> CollectionConfig {
    CollectionConfig {
        background_merge: false,
        ..CollectionConfig::default()
    }
}

/// Dense (HNSW) + BM25 + dot-product sparse spaces, indexed `tag` and `n`, an unindexed
/// `note`, optionally a tenant key and a default TTL.
fn schema(tenant: bool, ttl: Option<TtlSpec>) -> Schema {
    Schema {
        spaces: vec![SpaceSpec {
            name: "default".into(),
            dim: DIM,
            metric: Metric::L2,
            index: IndexSpec::Hnsw {
                m: 8,
                ef_construction: 32,
                quantization: sextant_engine::Quantization::Auto,
            },
            model: None,
            on_disk: false,
        }],
        payload_indexes: vec![
            PayloadIndexSpec {
                key: "tag".into(),
                field_type: FieldType::Keyword,
            },
            PayloadIndexSpec {
                key: "n".into(),
                field_type: FieldType::Integer,
            },
        ],
        tenant_key: tenant.then(|| "tenant".into()),
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
                name: "weights".into(),
                kind: SparseKind::Dot,
                model: None,
            },
        ],
        documents: None,
        ttl,
    }
}

/// Point `id`: every point matches the text "common" and weight 0, and the filters below.
fn point(id: u64, expires_at: Option<i64>) -> PointInput {
    let x = id as f32;
    PointInput {
        id: PointId::Num(id),
        vectors: Vectors::Single(vec![x, 1.0, -x, 0.5]),
        payload: json!({"tag": "t", "n": id, "note": "x", "tenant": "a"}),
        sparse: vec![
            ("text".into(), SparseInput::Text(format!("common word{id}"))),
            (
                "weights".into(),
                SparseInput::Vector(
                    SparseVector::from_pairs(vec![(0, 1.0), (1 + id as u32, 0.5)]).unwrap(),
                ),
            ),
        ],
        expires_at,
    }
}

fn ids(points: impl IntoIterator<Item = PointId>) -> Vec<u64> {
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

fn filter(v: Value) -> Filter {
    Filter::from_json(&v).unwrap()
}

/// Every read path's answer, as sorted ids, by name. Each path is asked for every point, so
/// each must return exactly the live ones.
fn read_paths(c: &Collection, scope: &Scope, all_ids: &[u64]) -> BTreeMap<&'static str, Vec<u64>> {
    let mut out = BTreeMap::new();
    let k = all_ids.len().max(1);
    let id_list: Vec<PointId> = all_ids.iter().map(|&i| PointId::Num(i)).collect();
    out.insert(
        "get",
        ids(c
            .get(scope, &id_list, true, true)
            .unwrap()
            .into_iter()
            .map(|p| p.id)),
    );
    let scroll = |f: Option<&Filter>, order: Option<&OrderBy>| {
        let mut got = Vec::new();
        let mut offset = None;
        loop {
            let page = c
                .scroll(scope, f, 3, offset.as_deref(), order, false)
                .unwrap();
            got.extend(page.points.into_iter().map(|p| p.id));
            match page.next_offset {
                Some(o) => offset = Some(o),
                None => return ids(got),
            }
        }
    };
    out.insert("scroll", scroll(None, None));
    let by_n = OrderBy {
        key: "n".into(),
        descending: true,
    };
    out.insert("scroll order_by", scroll(None, Some(&by_n)));
    let indexed = filter(json!({"must": [{"key": "tag", "match": {"value": "t"}}]}));
    let ranged = filter(json!({"must": [{"key": "n", "range": {"gte": 0}}]}));
    let unindexed = filter(json!({"must": [{"key": "note", "match": {"value": "x"}}]}));
    let negated = filter(json!({"must_not": [{"key": "tag", "match": {"value": "zzz"}}]}));
    let has_id = filter(json!({"must": [{"has_id": all_ids}]}));
    out.insert("scroll filter", scroll(Some(&unindexed), None));
    let count_as_ids = |f: Option<&Filter>| -> Vec<u64> {
        // A count is compared as a number: report it as that many placeholder entries.
        let n = c.count(scope, f).unwrap();
        (0..n).collect()
    };
    out.insert("count", count_as_ids(None));
    out.insert("count indexed", count_as_ids(Some(&indexed)));
    out.insert("count range", count_as_ids(Some(&ranged)));
    out.insert("count unindexed", count_as_ids(Some(&unindexed)));
    out.insert("count must_not", count_as_ids(Some(&negated)));
    out.insert("count has_id", count_as_ids(Some(&has_id)));
    out.insert(
        "ids_matching",
        ids(c.ids_matching(scope, &indexed).unwrap()),
    );
    let search = |f: Option<Filter>, threshold: Option<u64>| {
        let r = c
            .search(SearchRequest {
                vector: vec![0.0, 1.0, 0.0, 0.5],
                k,
                ef: Some(512),
                filter: f,
                scope: scope.clone(),
                with_payload: true,
                exact_threshold: threshold,
                ..SearchRequest::default()
            })
            .unwrap();
        ids(r.hits.into_iter().map(|h| h.id))
    };
    out.insert("search graph", search(None, None));
    out.insert("search exact filtered", search(Some(indexed.clone()), None));
    out.insert(
        "search graph filtered",
        search(Some(indexed.clone()), Some(0)),
    );
    out.insert(
        "search unindexed filter",
        search(Some(unindexed.clone()), Some(0)),
    );
    let sparse = |space: &str, query: SparseInput, f: Option<Filter>| {
        let r = c
            .search_sparse(SparseSearchRequest {
                space: space.into(),
                query,
                k,
                filter: f,
                scope: scope.clone(),
                with_payload: true,
            })
            .unwrap();
        ids(r.hits.into_iter().map(|h| h.id))
    };
    out.insert(
        "bm25",
        sparse("text", SparseInput::Text("common".into()), None),
    );
    out.insert(
        "bm25 filtered",
        sparse(
            "text",
            SparseInput::Text("common".into()),
            Some(ranged.clone()),
        ),
    );
    let w = SparseVector::from_pairs(vec![(0, 1.0)]).unwrap();
    out.insert(
        "dot",
        sparse("weights", SparseInput::Vector(w), Some(indexed)),
    );
    out.insert("info points", (0..c.info().points).collect());
    if c.schema().tenant_key.is_some() {
        let n: u64 = c.tenants().unwrap().iter().map(|(_, n)| n).sum();
        out.insert("tenants", (0..n).collect());
    }
    out
}

/// Asserts every read path returns exactly `live` (counts: its size).
fn assert_reads(c: &Collection, scope: &Scope, all: &[u64], live: &[u64], when: &str) {
    let mut live = live.to_vec();
    live.sort_unstable();
    let counted: Vec<u64> = (0..live.len() as u64).collect();
    for (path, got) in read_paths(c, scope, all) {
        let want = if path.starts_with("count") || path == "info points" || path == "tenants" {
            &counted
        } else {
            &live
        };
        assert_eq!(&got, want, "{path} {when}");
    }
}

fn open_with_clock(dir: &Path, name: &str, clock: &ManualClock) -> Arc<Collection> {
    let db = Database::open(dir, config()).unwrap();
    let c = db.collection(name).unwrap();
    c.set_clock(Arc::new(clock.clone()));
    c
}

/// The matrix: points expiring at different instants, in the mutable segment and in an
/// HNSW segment, some deleted; before, at and after each expiry every read path (get, scroll
/// by id and by payload key, counts with and without indexed, unindexed, range, must_not and
/// has_id filters, ids by filter, dense search by graph and exact scan with and without
/// filters, BM25 and dot-product sparse search, info, tenant counts) returns exactly the live
/// points; an expired point is not deleted again by id or by filter; the expiry is exclusive
/// of nothing: at `now == expires_at` the point is gone.
#[test]
fn every_read_path_hides_expired_points_from_their_instant() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    for tenant in [false, true] {
        let name = if tenant { "tenants" } else { "plain" };
        let db = Database::open(dir.path(), config()).unwrap();
        let c = db.create_collection(name, schema(tenant, None)).unwrap();
        c.set_clock(Arc::new(clock.clone()));
        clock.set(T0);
        let scope = if tenant {
            Scope::Tenant(TenantId::Str("a".into()))
        } else {
            Scope::Unscoped
        };
        // 0..10 flushed into an HNSW segment, 10..20 in the mutable segment; in each half,
        // point i expires at T0 + (i % 5) seconds when i % 5 != 0, else never.
        let exp = |i: u64| (!i.is_multiple_of(5)).then(|| T0 + (i % 5) as i64 * 1000);
        c.upsert(&scope, (0..10).map(|i| point(i, exp(i))).collect())
            .unwrap();
        c.flush().unwrap();
        c.upsert(&scope, (10..20).map(|i| point(i, exp(i))).collect())
            .unwrap();
        let all: Vec<u64> = (0..20).collect();
        for step in 0..=5i64 {
            clock.set(T0 + step * 1000 - 1);
            let live: Vec<u64> = all
                .iter()
                .copied()
                .filter(|&i| exp(i).is_none_or(|e| T0 + step * 1000 - 1 < e))
                .collect();
            assert_reads(
                &c,
                &scope,
                &all,
                &live,
                &format!("{name} just before {step}s"),
            );
            clock.set(T0 + step * 1000);
            let live: Vec<u64> = all
                .iter()
                .copied()
                .filter(|&i| exp(i).is_none_or(|e| T0 + step * 1000 < e))
                .collect();
            assert_reads(&c, &scope, &all, &live, &format!("{name} at {step}s"));
        }
        // Everything that expires has: only multiples of 5 are left.
        let info = c.info();
        assert_eq!(info.points, 4);
        assert_eq!(info.expired, 16);
        // An expired point is not there to delete, by id or by filter.
        assert_eq!(
            c.delete(&scope, vec![PointId::Num(1), PointId::Num(11)])
                .unwrap(),
            0
        );
        let f = filter(json!({"must": [{"key": "n", "range": {"gte": 10, "lte": 12}}]}));
        assert_eq!(c.delete_by_filter(&scope, &f).unwrap(), 1, "10 only");
        assert_reads(
            &c,
            &scope,
            &all,
            &[0, 5, 15],
            &format!("{name} after deletes"),
        );
        // Writing an expired id again makes a new, live point.
        c.upsert(&scope, vec![point(3, None)]).unwrap();
        assert_reads(
            &c,
            &scope,
            &all,
            &[0, 3, 5, 15],
            &format!("{name} after rewrite"),
        );
        // Through flush, merge and reopen nothing comes back.
        c.optimize().unwrap();
        assert_reads(
            &c,
            &scope,
            &all,
            &[0, 3, 5, 15],
            &format!("{name} after optimize"),
        );
        drop(c);
        drop(db);
        let c = open_with_clock(dir.path(), name, &clock);
        assert_reads(
            &c,
            &scope,
            &all,
            &[0, 3, 5, 15],
            &format!("{name} reopened"),
        );
    }
}

/// The collection default: the payload's datetime field plus the TTL; a point's own expiry
/// wins; a point without the field does not expire; the default is shown in the schema and
/// refused when it makes no sense.
#[test]
fn the_default_ttl_comes_from_a_payload_datetime_and_the_own_expiry_wins() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let db = Database::open(dir.path(), config()).unwrap();
    let ttl = TtlSpec {
        field: "created".into(),
        seconds: 60,
    };
    for bad in [
        TtlSpec {
            field: "".into(),
            seconds: 60,
        },
        TtlSpec {
            field: "a..b".into(),
            seconds: 60,
        },
        TtlSpec {
            field: "created".into(),
            seconds: 0,
        },
    ] {
        assert!(db
            .create_collection("bad", schema(false, Some(bad)))
            .is_err());
    }
    let c = db
        .create_collection("d", schema(false, Some(ttl.clone())))
        .unwrap();
    c.set_clock(Arc::new(clock.clone()));
    assert_eq!(c.info().schema.ttl, Some(ttl));
    let with_created = |id: u64, created: Value, own: Option<i64>| {
        let mut p = point(id, own);
        p.payload["created"] = created;
        p
    };
    c.upsert(
        &Scope::Unscoped,
        vec![
            // Created at T0 - 30 s: expires at T0 + 30 s.
            with_created(1, json!("2025-12-31T23:59:30Z"), None),
            // Same, but its own expiry (T0 + 90 s) wins.
            with_created(2, json!("2025-12-31T23:59:30Z"), Some(T0 + 90_000)),
            // Own expiry earlier than the default's.
            with_created(3, json!("2025-12-31T23:59:30Z"), Some(T0 + 10_000)),
            // No datetime there: never expires.
            with_created(4, json!(17), None),
            point(5, None),
        ],
    )
    .unwrap();
    let all = [1, 2, 3, 4, 5];
    assert_reads(&c, &Scope::Unscoped, &all, &all, "at T0");
    clock.set(T0 + 10_000);
    assert_reads(&c, &Scope::Unscoped, &all, &[1, 2, 4, 5], "at 10 s");
    clock.set(T0 + 30_000);
    assert_reads(&c, &Scope::Unscoped, &all, &[2, 4, 5], "at 30 s");
    c.flush().unwrap();
    clock.set(T0 + 90_000);
    assert_reads(&c, &Scope::Unscoped, &all, &[4, 5], "at 90 s");
}

/// Expired points hold space until a merge: `info` counts them in `deleted` and
/// `reclaimable_bytes`, the merge policy picks their segment as it would for deletes, and after
/// the merge they are gone from disk (the segment holds only live points, reclaimable 0).
#[test]
fn expired_points_are_reclaimed_by_the_next_merge() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let db = Database::open(dir.path(), config()).unwrap();
    let c = db.create_collection("r", schema(false, None)).unwrap();
    c.set_clock(Arc::new(clock.clone()));
    // 200 points, half expiring at T0 + 1 s, with big payloads so the space shows.
    let points: Vec<PointInput> = (0..200)
        .map(|i| {
            let mut p = point(i, (i % 2 == 0).then_some(T0 + 1000));
            p.payload["blob"] = json!("z".repeat(2000));
            p
        })
        .collect();
    c.upsert(&Scope::Unscoped, points).unwrap();
    c.flush().unwrap();
    assert!(!c.merge().unwrap(), "nothing to reclaim yet");
    let before = c.info();
    assert_eq!(before.reclaimable_bytes, 0);
    assert_eq!(before.points, 200);
    clock.set(T0 + 1000);
    let expired = c.info();
    assert_eq!(expired.points, 100);
    assert_eq!(expired.expired, 100);
    assert_eq!(expired.deleted, 100);
    assert_eq!(expired.segments[0].deleted, 100);
    assert!(
        expired.reclaimable_bytes > 100 * 2000,
        "reclaimable {} counts the expired payloads",
        expired.reclaimable_bytes
    );
    let disk_before = expired.segments[0].disk_bytes;
    assert!(
        c.merge().unwrap(),
        "the policy merges for expired points alone"
    );
    let after = c.info();
    assert_eq!(after.points, 100);
    assert_eq!(after.deleted, 0);
    assert_eq!(after.expired, 0);
    assert_eq!(after.reclaimable_bytes, 0);
    assert_eq!(after.segments.len(), 1);
    assert_eq!(after.segments[0].points, 100, "only live points are stored");
    let freed = disk_before - after.segments[0].disk_bytes;
    assert!(
        freed as f64 >= 0.8 * expired.reclaimable_bytes as f64,
        "freed {freed} of an estimated {}",
        expired.reclaimable_bytes
    );
    // The expired points' payloads are not in any file any more.
    let seg_dir = dir.path().join("collections/r/segments");
    let mut found = 0;
    for e in walk(&seg_dir) {
        let bytes = std::fs::read(&e).unwrap();
        found += bytes.windows(7).filter(|w| *w == b"\"n\":0,").count();
    }
    assert_eq!(found, 0, "point 0's payload is gone from disk");
    // A flush drops expired points of the mutable segment too.
    c.upsert(
        &Scope::Unscoped,
        (300..310).map(|i| point(i, Some(T0 + 2000))).collect(),
    )
    .unwrap();
    clock.set(T0 + 2000);
    c.flush().unwrap();
    assert_eq!(c.info().segments.len(), 1, "nothing live to flush");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        if e.path().is_dir() {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}

/// Expiries are durable: replayed from the WAL after a restart, kept by a flush into a
/// segment, by a merge, and by a snapshot; a restored snapshot does not bring expired points
/// back as live.
#[test]
fn expiries_survive_restart_flush_merge_and_snapshot_restore() {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new(T0);
    let all: Vec<u64> = (0..8).collect();
    let exp = |i: u64| (i % 2 == 1).then_some(T0 + 5000);
    {
        let db = Database::open(dir.path(), config()).unwrap();
        let c = db.create_collection("s", schema(false, None)).unwrap();
        c.set_clock(Arc::new(clock.clone()));
        c.upsert(&Scope::Unscoped, (0..4).map(|i| point(i, exp(i))).collect())
            .unwrap();
        c.flush().unwrap();
        c.upsert(&Scope::Unscoped, (4..8).map(|i| point(i, exp(i))).collect())
            .unwrap();
    }
    // Reopened: 0..4 from the segment, 4..8 replayed from the WAL.
    let c = open_with_clock(dir.path(), "s", &clock);
    assert_eq!(c.recovery().replayed_records, 1);
    assert_reads(&c, &Scope::Unscoped, &all, &all, "reopened before expiry");
    // A snapshot taken before the expiry, restored after it.
    let snap = dir.path().join("s.snapshot");
    {
        drop(c);
        let db = Database::open(dir.path(), config()).unwrap();
        db.create_snapshot("s", Some(&snap), &mut |_, _| {})
            .unwrap();
        clock.set(T0 + 5000);
        db.restore_snapshot(&snap, "restored", false, &mut |_, _| {})
            .unwrap();
        let r = db.collection("restored").unwrap();
        r.set_clock(Arc::new(clock.clone()));
        assert_reads(
            &r,
            &Scope::Unscoped,
            &all,
            &[0, 2, 4, 6],
            "restored after expiry",
        );
        let s = db.collection("s").unwrap();
        s.set_clock(Arc::new(clock.clone()));
        assert_reads(
            &s,
            &Scope::Unscoped,
            &all,
            &[0, 2, 4, 6],
            "original after expiry",
        );
        // A snapshot taken after the expiry counts only live points.
        let later = dir.path().join("later.snapshot");
        let info = db
            .create_snapshot("s", Some(&later), &mut |_, _| {})
            .unwrap();
        assert_eq!(info.points, 4);
        s.optimize().unwrap();
        assert_reads(&s, &Scope::Unscoped, &all, &[0, 2, 4, 6], "after optimize");
    }
    // Back before the expiry (a clock set back): points a merge dropped stay dropped, those
    // still stored are visible again (expiry is judged against the clock, not latched).
    clock.set(T0);
    let db = Database::open(dir.path(), config()).unwrap();
    let r = db.collection("restored").unwrap();
    r.set_clock(Arc::new(clock.clone()));
    assert_reads(
        &r,
        &Scope::Unscoped,
        &all,
        &all,
        "restored, clock before expiry",
    );
    let s = db.collection("s").unwrap();
    s.set_clock(Arc::new(clock.clone()));
    assert_reads(
        &s,
        &Scope::Unscoped,
        &all,
        &[0, 2, 4, 6],
        "merged, clock set back",
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn envelope_version(path: &Path) -> u32 {
    let b = std::fs::read(path).unwrap();
    u32::from_le_bytes(b[8..12].try_into().unwrap())
}

/// A collection written before expiries (segments with `points.bin` v1, WAL records of the
/// old tags) opens with no point expiring, takes expiring writes, and rewrites its segments
/// in the current format (v2) with the expiries kept.
#[test]
fn a_collection_from_before_expiries_opens_and_takes_them() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bm25-v1");
    copy_dir(&fixture, dir.path());
    let seg = walk(&dir.path().join("collections/old/segments"))
        .into_iter()
        .find(|p| p.ends_with("points.bin"))
        .expect("the fixture has a segment");
    assert_eq!(envelope_version(&seg), 1, "the fixture is the old format");
    let clock = ManualClock::new(T0);
    let c = open_with_clock(dir.path(), "old", &clock);
    assert!(
        c.recovery().replayed_records > 0,
        "old WAL records replayed"
    );
    assert_eq!(c.count(&Scope::Unscoped, None).unwrap(), 4);
    assert_eq!(c.info().expired, 0);
    let p = PointInput {
        id: PointId::Num(9),
        vectors: Vectors::Single(vec![9.0, 0.0]),
        payload: json!({}),
        sparse: vec![("text".into(), SparseInput::Text("brown fox".into()))],
        expires_at: Some(T0 + 1000),
    };
    c.upsert(&Scope::Unscoped, vec![p]).unwrap();
    c.optimize().unwrap();
    let seg = walk(&dir.path().join("collections/old/segments"))
        .into_iter()
        .find(|p| p.ends_with("points.bin"))
        .unwrap();
    assert_eq!(envelope_version(&seg), 2);
    assert_eq!(c.count(&Scope::Unscoped, None).unwrap(), 5);
    clock.set(T0 + 1000);
    assert_eq!(c.count(&Scope::Unscoped, None).unwrap(), 4);
    drop(c);
    let c = open_with_clock(dir.path(), "old", &clock);
    assert_eq!(c.count(&Scope::Unscoped, None).unwrap(), 4);
    clock.set(T0);
    assert_eq!(
        c.count(&Scope::Unscoped, None).unwrap(),
        5,
        "the expiry was stored"
    );
}

#[derive(Debug, Clone)]
enum Step {
    /// Upsert ids with an expiry `ms` after now (or none).
    Upsert(Vec<(u64, Option<i64>)>),
    Delete(Vec<u64>),
    Flush,
    Merge,
    Optimize,
    Advance(i64),
    Reopen,
}

fn step() -> impl Strategy<Value = Step> {
    let expiry = prop_oneof![Just(None), (0i64..3000).prop_map(Some)];
    prop_oneof![
        4 => prop::collection::vec((0u64..24, expiry), 1..6).prop_map(Step::Upsert),
        1 => prop::collection::vec(0u64..24, 1..4).prop_map(Step::Delete),
        1 => Just(Step::Flush),
        1 => Just(Step::Merge),
        1 => Just(Step::Optimize),
        3 => (0i64..1500).prop_map(Step::Advance),
        1 => Just(Step::Reopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random upserts with and without expiry, deletes, flushes, merges, restarts and clock
    /// advances against an in-memory model: after every step no read path returns a point
    /// whose expiry is at or before now, and every unexpired live point is returned; after an
    /// optimize no expired point is stored.
    #[test]
    fn no_read_path_ever_returns_an_expired_point(steps in prop::collection::vec(step(), 1..30)) {
        let dir = tempfile::tempdir().unwrap();
        let clock = ManualClock::new(T0);
        let mut cfg = config();
        cfg.flush_points = 7;
        let db = Database::open(dir.path(), cfg).unwrap();
        let mut c = db.create_collection("p", schema(false, None)).unwrap();
        drop(db);
        c.set_clock(Arc::new(clock.clone()));
        let mut db_holder = None;
        let mut now = T0;
        // id → expiry of the live version.
        let mut model: BTreeMap<u64, Option<i64>> = BTreeMap::new();
        let all: Vec<u64> = (0..24).collect();
        for (i, s) in steps.iter().enumerate() {
            match s {
                Step::Upsert(points) => {
                    let batch: Vec<PointInput> = points
                        .iter()
                        .map(|&(id, e)| point(id, e.map(|ms| now + ms)))
                        .collect();
                    c.upsert(&Scope::Unscoped, batch).unwrap();
                    for &(id, e) in points {
                        model.insert(id, e.map(|ms| now + ms));
                    }
                }
                Step::Delete(del) => {
                    let live_before = del
                        .iter()
                        .filter(|id| model.get(id).is_some_and(|e| e.is_none_or(|e| now < e)))
                        .collect::<std::collections::BTreeSet<_>>()
                        .len();
                    let n = c
                        .delete(&Scope::Unscoped, del.iter().map(|&i| PointId::Num(i)).collect())
                        .unwrap();
                    prop_assert_eq!(n, live_before, "deleted count, step {}", i);
                    for id in del {
                        model.remove(id);
                    }
                }
                Step::Flush => c.flush().unwrap(),
                Step::Merge => {
                    c.merge().unwrap();
                }
                Step::Optimize => {
                    c.optimize().unwrap();
                    let info = c.info();
                    prop_assert_eq!(info.expired, 0);
                    prop_assert_eq!(info.deleted, 0);
                    let stored: u64 = info.segments.iter().map(|s| s.points).sum();
                    prop_assert_eq!(stored, info.points, "only live points stored");
                }
                Step::Advance(ms) => {
                    now += ms;
                    clock.set(now);
                }
                Step::Reopen => {
                    drop(c);
                    drop(db_holder.take());
                    let db = Database::open(dir.path(), cfg).unwrap();
                    c = db.collection("p").unwrap();
                    c.set_clock(Arc::new(clock.clone()));
                    db_holder = Some(db);
                }
            }
            let live: Vec<u64> = model
                .iter()
                .filter(|(_, e)| e.is_none_or(|e| now < e))
                .map(|(&id, _)| id)
                .collect();
            let mut want = live.clone();
            want.sort_unstable();
            let counted: Vec<u64> = (0..want.len() as u64).collect();
            for (path, got) in read_paths(&c, &Scope::Unscoped, &all) {
                let w = if path.starts_with("count") || path == "info points" {
                    &counted
                } else {
                    &want
                };
                prop_assert_eq!(&got, w, "{} after step {} {:?}", path, i, s);
            }
        }
        drop(db_holder);
    }
}
