//! Each route's success path and its main error paths.

use serde_json::{json, Value};

use crate::common::{assert_error, start};

fn vec(i: usize) -> Vec<f32> {
    (0..4)
        .map(|j| ((i * 7 + j * 3) % 11) as f32 + 0.5)
        .collect()
}

fn points(range: std::ops::Range<usize>) -> Value {
    Value::Array(
        range
            .map(|i| json!({"id": i, "vector": vec(i), "payload": {"i": i, "even": i % 2 == 0}}))
            .collect(),
    )
}

#[test]
fn collections_points_search_scroll_aliases() {
    let t = start(false);
    assert_eq!(t.ok("GET", "/healthz", None, None)["status"], "ok");
    assert_eq!(t.ok("GET", "/readyz", None, None)["status"], "ready");
    let info = t.ok(
        "POST",
        "/collections",
        None,
        Some(
            json!({"name": "c", "dim": 4, "metric": "cosine", "payload_indexes": {"i": "integer"}}),
        ),
    );
    assert_eq!(info["name"], "c");
    assert_error(
        &t.call(
            "POST",
            "/collections",
            None,
            Some(json!({"name": "c", "dim": 4})),
        ),
        409,
        "already_exists",
        "c",
    );
    assert_eq!(
        t.ok("GET", "/collections", None, None)["collections"],
        json!(["c"])
    );
    let up = t.ok(
        "PUT",
        "/collections/c/points",
        None,
        Some(json!({"points": points(0..50)})),
    );
    assert_eq!(up["upserted"], 50);
    assert_eq!(
        t.ok("POST", "/collections/c/points/count", None, Some(json!({})))["count"],
        50
    );
    let n = t.ok(
        "POST",
        "/collections/c/points/count",
        None,
        Some(json!({"filter": {"must": [{"key": "even", "match": {"value": true}}]}})),
    );
    assert_eq!(n["count"], 25);
    let got = t.ok(
        "POST",
        "/collections/c/points/get",
        None,
        Some(json!({"ids": [3, 99, 4]})),
    );
    let ids: Vec<&Value> = got["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["id"])
        .collect();
    assert_eq!(ids, vec![&json!(3), &json!(4)]);
    assert_eq!(got["points"][0]["payload"]["i"], 3);
    assert_eq!(
        t.ok("GET", "/collections/c/points/7", None, None)["payload"]["i"],
        7
    );
    assert_error(
        &t.call("GET", "/collections/c/points/700", None, None),
        404,
        "not_found",
        "700",
    );

    // Search: the exact nearest neighbour of a stored vector is itself.
    let hits = t.ok(
        "POST",
        "/collections/c/search",
        None,
        Some(json!({"vector": vec(9), "k": 3, "with_payload": true})),
    );
    assert_eq!(hits["hits"].as_array().unwrap().len(), 3);
    assert!(hits["hits"]
        .as_array()
        .unwrap()
        .iter()
        .any(|h| h["id"] == 9));
    // `exact` searches every point: the four stored copies of vec(9) (ids 9, 20, 31, 42) are
    // the top 4, each at cosine 1.
    let exact = t.ok(
        "POST",
        "/collections/c/search",
        None,
        Some(json!({"vector": vec(9), "k": 4, "exact": true})),
    );
    let mut ids: Vec<u64> = exact["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, vec![9, 20, 31, 42]);
    assert!(exact["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| (h["score"].as_f64().unwrap() - 1.0).abs() < 1e-5));
    let filtered = t.ok(
        "POST",
        "/collections/c/search",
        None,
        Some(json!({"vector": vec(9), "k": 5, "filter": {"must": [{"key": "i", "range": {"lt": 10}}]}, "explain": true})),
    );
    assert!(filtered["hits"]
        .as_array()
        .unwrap()
        .iter()
        .all(|h| h["id"].as_u64().unwrap() < 10));
    assert!(filtered["plan"]["segments"].is_array());

    // Cache: a repeated search gives the same answer; a write is visible at once.
    let q = json!({"vector": vec(1), "k": 50});
    let a = t.ok("POST", "/collections/c/search", None, Some(q.clone()));
    assert_eq!(
        a,
        t.ok("POST", "/collections/c/search", None, Some(q.clone()))
    );
    t.ok(
        "POST",
        "/collections/c/points/delete",
        None,
        Some(json!({"ids": [1]})),
    );
    let b = t.ok("POST", "/collections/c/search", None, Some(q.clone()));
    assert!(
        b["hits"].as_array().unwrap().iter().all(|h| h["id"] != 1),
        "stale cached answer after a delete"
    );
    assert_eq!(b["hits"].as_array().unwrap().len(), 49);

    // Scroll in payload order, two pages.
    let p1 = t.ok(
        "POST",
        "/collections/c/points/scroll",
        None,
        Some(json!({"limit": 30, "order_by": {"key": "i", "direction": "desc"}})),
    );
    assert_eq!(p1["points"][0]["id"], 49);
    let off = p1["next_offset"].as_str().unwrap().to_string();
    let p2 = t.ok(
        "POST",
        "/collections/c/points/scroll",
        None,
        Some(json!({"limit": 30, "offset": off, "order_by": {"key": "i", "direction": "desc"}})),
    );
    assert_eq!(
        p1["points"].as_array().unwrap().len() + p2["points"].as_array().unwrap().len(),
        49
    );
    assert!(p2["next_offset"].is_null());

    // Delete by filter, then optimize.
    let d = t.ok(
        "POST",
        "/collections/c/points/delete",
        None,
        Some(json!({"filter": {"must": [{"key": "even", "match": {"value": true}}]}})),
    );
    assert_eq!(d["deleted"], 25);
    let info = t.ok("POST", "/collections/c/optimize", None, None);
    assert_eq!(info["points"], 24);
    assert_eq!(t.ok("GET", "/collections/c", None, None)["points"], 24);

    // Aliases.
    t.ok(
        "PUT",
        "/aliases/live",
        None,
        Some(json!({"collection": "c"})),
    );
    assert_eq!(t.ok("GET", "/aliases", None, None)["aliases"]["live"], "c");
    assert_eq!(
        t.ok(
            "POST",
            "/collections/live/points/count",
            None,
            Some(json!({}))
        )["count"],
        24
    );
    assert_error(
        &t.call(
            "PUT",
            "/aliases/x",
            None,
            Some(json!({"collection": "nope"})),
        ),
        404,
        "not_found",
        "nope",
    );
    t.ok("DELETE", "/aliases/live", None, None);
    assert_error(
        &t.call("DELETE", "/aliases/live", None, None),
        404,
        "not_found",
        "live",
    );

    // Delete the collection.
    t.ok("DELETE", "/collections/c", None, None);
    assert_error(
        &t.call("GET", "/collections/c", None, None),
        404,
        "not_found",
        "c",
    );
    assert_error(
        &t.call(
            "POST",
            "/collections/c/search",
            None,
            Some(json!({"vector": vec(1)})),
        ),
        404,
        "not_found",
        "c",
    );
}

#[test]
fn tenants_over_http() {
    let t = start(false);
    t.ok(
        "POST",
        "/collections",
        None,
        Some(json!({"name": "m", "dim": 4, "tenant_key": "org"})),
    );
    // Unscoped writes and reads in a multi-tenant collection are refused.
    assert_error(
        &t.call(
            "PUT",
            "/collections/m/points",
            None,
            Some(json!({"points": points(0..2)})),
        ),
        400,
        "invalid_input",
        "multi-tenant",
    );
    t.ok(
        "PUT",
        "/collections/m/points",
        None,
        Some(json!({"points": points(0..10), "tenant": "a"})),
    );
    t.ok(
        "PUT",
        "/collections/m/points",
        None,
        Some(json!({"points": points(10..15), "tenant": "b"})),
    );
    // Moving a point to another tenant is a conflict.
    assert_error(
        &t.call(
            "PUT",
            "/collections/m/points",
            None,
            Some(json!({"points": points(0..1), "tenant": "b"})),
        ),
        409,
        "conflict",
        "",
    );
    let count = |tenant: Value| {
        t.ok(
            "POST",
            "/collections/m/points/count",
            None,
            Some(json!({"tenant": tenant})),
        )["count"]
            .clone()
    };
    assert_eq!(count(json!("a")), 10);
    assert_eq!(count(json!("b")), 5);
    assert_eq!(
        t.ok(
            "POST",
            "/collections/m/points/count",
            None,
            Some(json!({"all_tenants": true}))
        )["count"],
        15
    );
    assert_error(
        &t.call("GET", "/collections/m/points/1?tenant=b", None, None),
        404,
        "not_found",
        "",
    );
    assert_eq!(
        t.ok("GET", "/collections/m/points/1?tenant=a", None, None)["id"],
        1
    );
    let ts = t.ok("GET", "/collections/m/tenants", None, None);
    assert_eq!(ts["tenants"].as_array().unwrap().len(), 2);
    assert_eq!(
        t.ok("DELETE", "/collections/m/tenants/b", None, None)["deleted"],
        5
    );
    assert_eq!(count(json!("b")), 0);
}

#[test]
fn keys_admin_routes_and_audit_log() {
    let t = start(true);
    let admin = t.key("admin", None, None);
    let made = t.ok(
        "POST",
        "/admin/keys",
        Some(&admin),
        Some(json!({"role": "read", "collections": ["c"]})),
    );
    let key = made["key"].as_str().unwrap().to_string();
    let id = made["record"]["id"].as_str().unwrap().to_string();
    assert!(
        made["record"].get("hash").is_none(),
        "the hash is never shown"
    );
    let list = t.ok("GET", "/admin/keys", Some(&admin), None);
    assert_eq!(list["keys"].as_array().unwrap().len(), 2);
    assert!(!list.to_string().contains(key.rsplit('_').next().unwrap()));
    assert_eq!(
        t.ok("GET", "/collections", Some(&key), None)["collections"],
        json!([])
    );
    assert_error(
        &t.call("GET", "/admin/keys", Some(&key), None),
        403,
        "forbidden",
        "admin",
    );
    t.ok("DELETE", &format!("/admin/keys/{id}"), Some(&admin), None);
    assert_error(
        &t.call("GET", "/collections", Some(&key), None),
        401,
        "unauthorized",
        "",
    );
    assert_error(
        &t.call(
            "POST",
            "/admin/keys",
            Some(&admin),
            Some(json!({"role": "admin", "tenant": "x"})),
        ),
        400,
        "invalid_input",
        "tenant",
    );
    t.ok(
        "POST",
        "/collections",
        Some(&admin),
        Some(json!({"name": "c", "dim": 4})),
    );
    t.ok(
        "PUT",
        "/collections/c/points",
        Some(&admin),
        Some(json!({"points": points(0..3)})),
    );
    // The metrics page needs a key and shows the request counters.
    assert_error(
        &t.call("GET", "/metrics", None, None),
        401,
        "unauthorized",
        "",
    );
    let resp = ureq::get(&t.url("/metrics"))
        .set("Authorization", &format!("Bearer {admin}"))
        .call()
        .unwrap();
    let text = resp.into_string().unwrap();
    assert!(text.contains("sextant_http_requests_total"), "{text}");
    assert!(text.contains("sextant_collection_points"), "{text}");
    // The audit log has the writes and admin actions, with who and the outcome.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = std::fs::read_to_string(t.dir.path().join("audit.jsonl")).unwrap();
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let actions: Vec<&str> = lines
        .iter()
        .map(|l| l["action"].as_str().unwrap())
        .collect();
    for a in [
        "key.create",
        "key.delete",
        "collection.create",
        "points.upsert",
    ] {
        assert!(actions.contains(&a), "{a} missing from {actions:?}");
    }
    let failed = lines
        .iter()
        .find(|l| l["action"] == "key.create" && l["outcome"] != "ok")
        .unwrap();
    assert!(failed["outcome"].as_str().unwrap().contains("400"));
    assert!(lines
        .iter()
        .all(|l| l["key_id"].is_string() && l["time"].is_string()));
}

/// The ANN recall probe of a served collection: sampled searches are re-run exactly in the
/// background, and the estimate shows in the collection's info and in `/metrics`.
#[test]
fn the_recall_probe_reports_in_info_and_metrics() {
    let t = crate::common::start_with_collections(
        crate::common::config(false),
        sextant_engine::CollectionConfig {
            recall_probe: sextant_engine::ProbeConfig {
                rate: 1.0,
                ..sextant_engine::ProbeConfig::default()
            },
            ..sextant_engine::CollectionConfig::default()
        },
    );
    t.ok(
        "POST",
        "/collections",
        None,
        Some(json!({"name": "p", "dim": 4, "metric": "l2"})),
    );
    t.ok(
        "PUT",
        "/collections/p/points",
        None,
        Some(json!({"points": points(0..200)})),
    );
    // The mutable segment is scanned exactly: its searches are not sampled.
    t.ok(
        "POST",
        "/collections/p/search",
        None,
        Some(json!({"vector": vec(1), "k": 5})),
    );
    // One HNSW segment: searches walk its graph.
    t.ok("POST", "/collections/p/optimize", None, None);
    let before = t.ok("GET", "/collections/p", None, None);
    assert_eq!(before["recall_probe"]["measured"], 0, "{before}");
    for i in 0..20 {
        // Distinct queries: the query cache would answer a repeated one without a search.
        let q: Vec<f32> = vec(i).iter().map(|x| x + i as f32 * 0.01).collect();
        t.ok(
            "POST",
            "/collections/p/search",
            None,
            Some(json!({"vector": q, "k": 5})),
        );
    }
    let mut info = Value::Null;
    for _ in 0..500 {
        info = t.ok("GET", "/collections/p", None, None);
        if info["recall_probe"]["measured"] == 20 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let p = &info["recall_probe"];
    assert_eq!(p["measured"], 20, "{info}");
    assert_eq!(p["rate"], 1.0);
    let recall = p["recall"].as_f64().unwrap();
    assert!((0.8..=1.0).contains(&recall), "{info}");
    let text = ureq::get(&t.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("sextant_ann_recall{collection=\"p\"} ")),
        "{text}"
    );
    assert!(
        text.contains("sextant_ann_recall_probes_total{collection=\"p\"} 20"),
        "{text}"
    );
}

/// Drift monitoring over HTTP: not monitored (404), pin, a canary (expected ids taken from the
/// exact answer), a check, the report in the collection's info and in /metrics, the shift
/// alarm after new data, and canary removal.
#[test]
fn drift_over_http() {
    let t = start(false);
    t.ok(
        "POST",
        "/collections",
        None,
        Some(json!({"name": "d", "dim": 4, "metric": "l2"})),
    );
    t.ok(
        "PUT",
        "/collections/d/points",
        None,
        Some(json!({"points": points(0..100)})),
    );
    assert_error(
        &t.call("GET", "/collections/d/drift", None, None),
        404,
        "not_found",
        "not monitored",
    );
    assert_error(
        &t.call("POST", "/collections/d/drift/check", None, None),
        400,
        "invalid_input",
        "canar",
    );
    let r = t.ok(
        "POST",
        "/collections/d/drift/pin",
        None,
        Some(json!({"shift_alarm": 0.05})),
    );
    assert_eq!(r["spaces"][0]["count"], 100, "{r}");
    let c = t.ok(
        "POST",
        "/collections/d/drift/canaries",
        None,
        Some(json!({"name": "nine", "vector": vec(9), "k": 4})),
    );
    assert_eq!(c["expected"].as_array().unwrap().len(), 4, "{c}");
    assert_error(
        &t.call(
            "POST",
            "/collections/d/drift/canaries",
            None,
            Some(json!({"name": "nine", "vector": vec(9)})),
        ),
        409,
        "conflict",
        "nine",
    );
    assert_error(
        &t.call(
            "POST",
            "/collections/d/drift/canaries",
            None,
            Some(json!({"name": "bad", "vector": [1.0], "k": 4})),
        ),
        400,
        "invalid_input",
        "vector",
    );
    let d = t.ok("POST", "/collections/d/drift/check", None, None);
    assert_eq!(d["last_check"]["mean"], 1.0, "{d}");
    assert_eq!(d["alarms"], json!([]));
    // Far-away points: the centroid moves past 0.05 spreads.
    let far: Value = (1000..1100)
        .map(|i| json!({"id": i, "vector": [50.0, 50.0, 50.0, 50.0 + i as f32], "payload": {}}))
        .collect();
    t.ok(
        "PUT",
        "/collections/d/points",
        None,
        Some(json!({"points": far})),
    );
    let info = t.ok("GET", "/collections/d", None, None);
    let drift = &info["drift"];
    assert!(
        drift["spaces"][0]["centroid_shift"].as_f64().unwrap() > 0.05,
        "{drift}"
    );
    assert_eq!(drift["alarms"].as_array().unwrap().len(), 1, "{drift}");
    let text = ureq::get(&t.url("/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    assert!(
        text.contains("sextant_drift_centroid_shift{collection=\"d\",space=\"default\"}"),
        "{text}"
    );
    assert!(
        text.contains("sextant_drift_alarms{collection=\"d\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("sextant_drift_canary_precision{collection=\"d\"} 1"),
        "{text}"
    );
    let list = t.ok("GET", "/collections/d/drift/canaries", None, None);
    assert_eq!(list["canaries"][0]["name"], "nine");
    t.ok("DELETE", "/collections/d/drift/canaries/nine", None, None);
    assert_error(
        &t.call("DELETE", "/collections/d/drift/canaries/nine", None, None),
        404,
        "not_found",
        "nine",
    );
}

/// The index advisor over HTTP: refused up front when the body is bad, otherwise a job whose
/// result is the advice, with the collection's layouts measured and the budget applied.
#[test]
fn advise_runs_as_a_job_and_reports_every_layout() {
    let t = start(false);
    t.ok(
        "POST",
        "/collections",
        None,
        Some(json!({"name": "a", "dim": 4, "metric": "l2"})),
    );
    t.ok(
        "PUT",
        "/collections/a/points",
        None,
        Some(json!({"points": points(0..1_300)})),
    );
    // An unknown field is named in the message (the server's JSON extractor answers `body`).
    let (st, resp) = t.call(
        "POST",
        "/collections/a/advise",
        None,
        Some(json!({"budget": 5})),
    );
    assert_eq!(st, 400, "{resp}");
    assert!(
        resp["error"]["message"]
            .as_str()
            .unwrap()
            .contains("budget"),
        "{resp}"
    );
    for (body, field) in [
        (json!({"target_recall": 2.0}), "target_recall"),
        (json!({"sample": 5}), "sample"),
        (json!({"space": "nope"}), "space"),
        (json!({"query_vectors": [[1.0, 2.0]]}), "queries"),
        (json!({"queries": 400}), "collection"),
    ] {
        let (st, resp) = t.call("POST", "/collections/a/advise", None, Some(body.clone()));
        assert_eq!(st, 400, "{body}: {resp}");
        assert_eq!(resp["error"]["field"], field, "{body}: {resp}");
    }
    assert_eq!(
        t.call("POST", "/collections/nope/advise", None, Some(json!({})))
            .0,
        404
    );
    let (st, job) = t.call(
        "POST",
        "/collections/a/advise",
        None,
        Some(json!({"sample": 1000, "queries": 50, "memory_budget": 50_000_000})),
    );
    assert_eq!(st, 202, "{job}");
    assert_eq!(
        (job["kind"].as_str(), job["state"].as_str()),
        (Some("advise"), Some("running"))
    );
    let path = format!("/jobs/{}", job["id"]);
    let mut job = job;
    for _ in 0..600 {
        job = t.ok("GET", &path, None, None);
        if job["state"] != "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(job["state"], "succeeded", "{job}");
    assert_eq!(job["done"], job["total"]);
    let r = &job["result"];
    assert_eq!(
        (r["sample"].as_u64(), r["queries"].as_u64()),
        (Some(1000), Some(50))
    );
    let layouts = r["layouts"].as_array().unwrap();
    assert!(layouts.len() >= 4, "{r}");
    for l in layouts {
        assert_eq!(
            l["fits_budget"],
            l["ram_bytes"].as_u64().unwrap() <= 50_000_000,
            "{l}"
        );
    }
    let best = &layouts[r["recommended"].as_u64().expect("a recommendation") as usize];
    assert!(best["chosen"]["recall"].as_f64().unwrap() >= 0.95, "{best}");
}
