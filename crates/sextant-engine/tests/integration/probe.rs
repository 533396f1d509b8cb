//! Exact search on every path, and the ANN recall probe measured against recall computed
//! offline by brute force on the same queries.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::json;
use sextant_core::{Metric, PointId};
use sextant_engine::{
    Collection, CollectionConfig, Database, IndexSpec, ProbeConfig, Scope, SearchRequest, Strategy,
    TenantId,
};

use super::engine::{point, random_vec, schema};

const DIM: usize = 24;

fn config(rate: f64, window: usize) -> CollectionConfig {
    CollectionConfig {
        flush_points: 1_500,
        background_merge: false,
        recall_probe: ProbeConfig {
            rate,
            window,
            max_busy: 1.0,
        },
        ..CollectionConfig::default()
    }
}

/// A deliberately weak graph (m = 4, small beam), so that approximate search misses.
fn weak() -> IndexSpec {
    IndexSpec::Hnsw {
        m: 4,
        ef_construction: 16,
        quantization: sextant_engine::Quantization::Auto,
    }
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Brute-force top `k` ids among `points` (id, vector).
fn brute(points: &[(u64, Vec<f32>)], q: &[f32], k: usize) -> Vec<u64> {
    let mut d: Vec<(f32, u64)> = points.iter().map(|(id, v)| (l2(v, q), *id)).collect();
    d.sort_by(|a, b| a.0.total_cmp(&b.0));
    d.into_iter().take(k).map(|(_, id)| id).collect()
}

fn num(id: &PointId) -> u64 {
    match id {
        PointId::Num(n) => *n,
        _ => panic!("integer ids"),
    }
}

/// Fills a collection with `n` random points in three segments and the mutable segment,
/// deleting every 7th; returns the live points.
fn fill(
    c: &Collection,
    rng: &mut StdRng,
    n: u64,
    tenant: impl Fn(u64) -> Option<TenantId>,
) -> Vec<(u64, Vec<f32>)> {
    let mut live = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        for &id in chunk {
            let v = random_vec(rng, DIM);
            let scope = match tenant(id) {
                Some(t) => Scope::Tenant(t),
                None => Scope::Unscoped,
            };
            c.upsert(&scope, vec![point(id, v.clone(), json!({}))])
                .unwrap();
            live.push((id, v));
        }
    }
    let dead: Vec<u64> = live.iter().map(|p| p.0).filter(|id| id % 7 == 0).collect();
    for id in &dead {
        let scope = match tenant(*id) {
            Some(t) => Scope::Tenant(t),
            None => Scope::Unscoped,
        };
        c.delete(&scope, vec![PointId::Num(*id)]).unwrap();
    }
    live.retain(|p| p.0 % 7 != 0);
    live
}

fn search(
    c: &Collection,
    q: &[f32],
    k: usize,
    ef: Option<usize>,
    exact: bool,
    scope: Scope,
) -> sextant_engine::SearchResponse {
    search_with(c, q, k, ef, exact.then_some(u64::MAX), scope)
}

fn search_with(
    c: &Collection,
    q: &[f32],
    k: usize,
    ef: Option<usize>,
    exact_threshold: Option<u64>,
    scope: Scope,
) -> sextant_engine::SearchResponse {
    c.search(SearchRequest {
        vector: q.to_vec(),
        k,
        ef,
        scope,
        exact_threshold,
        ..SearchRequest::default()
    })
    .unwrap()
}

#[test]
fn exact_search_without_a_filter_scans_every_segment() {
    // Before the fix an unfiltered "exact" search walked the graph in every segment without
    // deletes: the flag was accepted and ignored.
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), config(0.0, 1)).unwrap();
    let c = db
        .create_collection("c", schema(DIM, Metric::L2, weak()))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let mut live = fill(&c, &mut rng, 4_000, |_| None);
    // One more segment with no deletes at all.
    for id in 10_000..11_600u64 {
        let v = random_vec(&mut rng, DIM);
        c.upsert(&Scope::Unscoped, vec![point(id, v.clone(), json!({}))])
            .unwrap();
        live.push((id, v));
    }
    c.flush().unwrap();
    assert!(c.info().segments.len() >= 3);
    let mut approx_misses = 0;
    for _ in 0..40 {
        let q = random_vec(&mut rng, DIM);
        let exact = search(&c, &q, 10, Some(1), true, Scope::Unscoped);
        assert!(
            exact.plan.iter().all(|p| p.strategy == Strategy::Exact),
            "{:?}",
            exact.plan
        );
        let got: Vec<u64> = exact.hits.iter().map(|h| num(&h.id)).collect();
        assert_eq!(got, brute(&live, &q, 10));
        let approx = search(&c, &q, 10, Some(1), false, Scope::Unscoped);
        let approx: Vec<u64> = approx.hits.iter().map(|h| num(&h.id)).collect();
        approx_misses += usize::from(approx != got);
    }
    // The weak graph with a beam of 1 does miss, so the comparison above can fail.
    assert!(approx_misses > 0);
}

/// Offline recall@k of `ef` over `queries`, from brute force (`exact_threshold`: the search's
/// override of the planner's default).
fn offline_recall(
    c: &Collection,
    live: &[(u64, Vec<f32>)],
    queries: &[Vec<f32>],
    (k, ef, exact_threshold): (usize, usize, Option<u64>),
    scope: &Scope,
) -> f64 {
    let mut sum = 0.0;
    for q in queries {
        let truth: HashSet<u64> = brute(live, q, k).into_iter().collect();
        let got = search_with(c, q, k, Some(ef), exact_threshold, scope.clone());
        let hit = got
            .hits
            .iter()
            .filter(|h| truth.contains(&num(&h.id)))
            .count();
        sum += hit as f64 / truth.len() as f64;
    }
    sum / queries.len() as f64
}

#[test]
fn the_probe_measures_the_recall_that_brute_force_measures() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), config(1.0, 10_000)).unwrap();
    let c = db
        .create_collection("c", schema(DIM, Metric::L2, weak()))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(2);
    let live = fill(&c, &mut rng, 5_000, |_| None);
    let queries: Vec<Vec<f32>> = (0..200).map(|_| random_vec(&mut rng, DIM)).collect();
    for ef in [10, 40] {
        let before = c.recall_probe().unwrap().measured;
        // In batches smaller than the queue, so no sample is dropped.
        let mut offline = 0.0;
        for batch in queries.chunks(50) {
            offline += offline_recall(&c, &live, batch, (10, ef, None), &Scope::Unscoped)
                * batch.len() as f64;
            c.drain_recall_probe();
        }
        offline /= queries.len() as f64;
        let info = c.recall_probe().unwrap();
        assert_eq!(info.dropped, 0);
        assert_eq!(info.measured - before, queries.len() as u64);
        assert_eq!(info.k_range, Some((10, 10)));
        // The window holds both runs after the second; compare per run.
        let window_mean = info.recall.unwrap();
        if ef == 10 {
            assert!(
                (window_mean - offline).abs() < 1e-9,
                "probe {window_mean} offline {offline}"
            );
            assert!(
                offline < 0.99,
                "the weak graph should lose recall at ef 10: {offline}"
            );
            assert!(info.recall_stderr.unwrap() > 0.0);
            assert!(info.min_recall.unwrap() < 1.0);
        } else {
            let first = (window_mean * 400.0 - offline * 200.0) / 200.0;
            assert!(
                first < offline,
                "more ef, more recall: {first} vs {offline}"
            );
        }
    }
    // info() reports the same numbers.
    assert_eq!(c.info().recall_probe, c.recall_probe());
}

#[test]
fn the_probe_keeps_the_tenant_filter_of_the_search() {
    // A re-run that lost the tenant condition would find other tenants' points and report
    // lower recall than brute force over the tenant's own points.
    let dir = tempfile::tempdir().unwrap();
    // Segments large enough that a tenant's share of one is walked (at the search's threshold
    // of 2,000 points), not scanned.
    let cfg = CollectionConfig {
        flush_points: 6_000,
        ..config(1.0, 10_000)
    };
    let db = Database::open(dir.path(), cfg).unwrap();
    let mut s = schema(DIM, Metric::L2, weak());
    s.payload_indexes.push(sextant_engine::PayloadIndexSpec {
        key: "org".into(),
        field_type: sextant_engine::FieldType::Keyword,
    });
    s.tenant_key = Some("org".into());
    let c = db.create_collection("t", s).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let org = |id: u64| {
        Some(TenantId::Str(
            if !id.is_multiple_of(3) { "a" } else { "b" }.into(),
        ))
    };
    let live = fill(&c, &mut rng, 13_000, org);
    let mine: Vec<(u64, Vec<f32>)> = live
        .into_iter()
        .filter(|p| !p.0.is_multiple_of(3))
        .collect();
    let scope = Scope::Tenant(TenantId::Str("a".into()));
    let queries: Vec<Vec<f32>> = (0..60).map(|_| random_vec(&mut rng, DIM)).collect();
    let mut offline = 0.0;
    for batch in queries.chunks(30) {
        // At 24-d the default threshold scans up to ~14,000 matching points: ask for a walk of
        // the tenant's ~4,000 points per segment.
        let walk = Some(sextant_engine::DEFAULT_EXACT_THRESHOLD);
        offline += offline_recall(&c, &mine, batch, (5, 8, walk), &scope) * batch.len() as f64;
        c.drain_recall_probe();
    }
    offline /= queries.len() as f64;
    let info = c.recall_probe().unwrap();
    assert_eq!(info.measured, queries.len() as u64);
    let r = info.recall.unwrap();
    assert!((r - offline).abs() < 1e-9, "probe {r} offline {offline}");
    assert!(
        offline < 0.999,
        "the weak graph should lose recall: {offline}"
    );
}

#[test]
fn the_window_slides_and_exact_searches_are_not_sampled() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), config(1.0, 25)).unwrap();
    let c = db
        .create_collection("c", schema(DIM, Metric::L2, weak()))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    fill(&c, &mut rng, 3_000, |_| None);
    for _ in 0..3 {
        for _ in 0..40 {
            search(
                &c,
                &random_vec(&mut rng, DIM),
                3,
                Some(4),
                false,
                Scope::Unscoped,
            );
        }
        c.drain_recall_probe();
    }
    let info = c.recall_probe().unwrap();
    assert_eq!(info.samples, 25);
    assert_eq!(info.measured + info.dropped, 120);
    assert_eq!(info.pending, 0);
    assert!(info.exact_ms.unwrap() >= 0.0);
    let measured = info.measured;
    for _ in 0..20 {
        search(
            &c,
            &random_vec(&mut rng, DIM),
            3,
            None,
            true,
            Scope::Unscoped,
        );
    }
    c.drain_recall_probe();
    assert_eq!(c.recall_probe().unwrap().measured, measured);
}

#[test]
fn the_probe_is_off_at_rate_zero_and_refuses_bad_settings() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path(), config(0.0, 10)).unwrap();
        let c = db
            .create_collection("c", schema(DIM, Metric::L2, weak()))
            .unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        fill(&c, &mut rng, 2_000, |_| None);
        search(
            &c,
            &random_vec(&mut rng, DIM),
            3,
            None,
            false,
            Scope::Unscoped,
        );
        assert!(c.info().recall_probe.is_none());
    }
    for (rate, window, field) in [(-0.1, 10, "rate"), (1.01, 10, "rate"), (0.5, 0, "window")] {
        let err = Database::open(dir.path(), config(rate, window)).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("recall probe") && msg.contains(field), "{msg}");
    }
}

#[test]
fn closing_the_database_stops_the_probe_and_unlocks_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(6);
    for round in 0..3 {
        let db = Database::open(dir.path(), config(1.0, 100)).unwrap();
        let c = if round == 0 {
            let c = db
                .create_collection("c", schema(DIM, Metric::L2, weak()))
                .unwrap();
            fill(&c, &mut rng, 3_000, |_| None);
            c
        } else {
            db.collection("c").unwrap()
        };
        // Samples are still queued when the database goes.
        for _ in 0..30 {
            search(
                &c,
                &random_vec(&mut rng, DIM),
                10,
                Some(2),
                false,
                Scope::Unscoped,
            );
        }
        drop(c);
        drop(db);
    }
    // Deleting a collection with queued samples works too.
    let db = Database::open(dir.path(), config(1.0, 100)).unwrap();
    let c = db.collection("c").unwrap();
    for _ in 0..30 {
        search(
            &c,
            &random_vec(&mut rng, DIM),
            10,
            Some(2),
            false,
            Scope::Unscoped,
        );
    }
    db.delete_collection("c").unwrap();
    assert!(db.collection("c").is_err());
}

/// Searches answered by scanning 1-bit codes are approximate too: the probe samples them and
/// measures their recall, like walks.
#[test]
fn code_scan_searches_are_probed() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), config(1.0, 64)).unwrap();
    let c = db
        .create_collection("p", schema(64, Metric::L2, IndexSpec::default()))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(41);
    let pts = (0..3_000u64)
        .map(|i| point(i, random_vec(&mut rng, 64), json!({"bucket": i % 100})))
        .collect();
    c.upsert(&Scope::Unscoped, pts).unwrap();
    c.optimize().unwrap();
    let f = sextant_core::Filter::from_json_str(r#"{"must":[{"key":"bucket","range":{"lt":50}}]}"#)
        .unwrap();
    let mut coded = 0;
    for _ in 0..40 {
        let r = c
            .search(SearchRequest {
                vector: random_vec(&mut rng, 64),
                k: 10,
                filter: Some(f.clone()),
                ..SearchRequest::default()
            })
            .unwrap();
        coded += usize::from(r.plan.iter().any(|p| p.strategy == Strategy::Binary));
    }
    c.drain_recall_probe();
    let info = c.recall_probe().unwrap();
    assert!(coded >= 1, "no search scanned codes");
    // Every search was approximate somewhere (codes or walk) and the rate is 1.
    assert_eq!(info.measured, 40, "{info:?}");
    assert!(info.recall.unwrap() >= 0.9, "{info:?}");
}
