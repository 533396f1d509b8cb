//! TTL over HTTP (issue 16, item 3): `expires_at` / `ttl` on upserted points, a collection's
//! default `ttl`, and the refusals. (Deleting documents by age is in `text.rs`, which has a
//! model.)

use serde_json::json;

use crate::common::{assert_error, start};

#[test]
fn expired_points_are_never_returned_and_bad_expiries_are_refused() {
    let t = start(false);
    t.ok(
        "POST",
        "/collections",
        None,
        Some(json!({"name": "v", "dim": 2, "ttl": "created:1h"})),
    );
    let info = t.ok("GET", "/collections/v", None, None);
    assert_eq!(
        info["schema"]["ttl"],
        json!({"field": "created", "seconds": 3600}),
        "{info}"
    );
    t.ok(
        "PUT",
        "/collections/v/points",
        None,
        Some(json!({"points": [
            {"id": 1, "vector": [1, 0], "expires_at": "2000-01-01T00:00:00Z"},
            {"id": 2, "vector": [1, 0], "ttl": 3600},
            {"id": 3, "vector": [1, 0], "payload": {"created": "2000-01-01T00:00:00Z"}},
            {"id": 4, "vector": [1, 0], "payload": {"created": "2000-01-01T00:00:00Z"},
             "expires_at": "2999-01-01T00:00:00Z"},
        ]})),
    );
    let c = t.ok("POST", "/collections/v/points/count", None, Some(json!({})));
    assert_eq!(c["count"], 2, "{c}");
    let s = t.ok(
        "POST",
        "/collections/v/search",
        None,
        Some(json!({"vector": [1, 0], "k": 10})),
    );
    let mut ids: Vec<u64> = s["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_u64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, [2, 4], "{s}");
    let (st, _) = t.call("GET", "/collections/v/points/1", None, None);
    assert_eq!(st, 404);
    for (point, field) in [
        (
            json!({"id": 9, "vector": [1, 0], "expires_at": "soon"}),
            "points[0].expires_at",
        ),
        (
            json!({"id": 9, "vector": [1, 0], "ttl": 0}),
            "points[0].ttl",
        ),
        (
            json!({"id": 9, "vector": [1, 0], "ttl": "60"}),
            "points[0].ttl",
        ),
        (
            json!({"id": 9, "vector": [1, 0], "ttl": 60, "expires_at": "2999-01-01T00:00:00Z"}),
            "points[0].expires_at",
        ),
    ] {
        let r = t.call(
            "PUT",
            "/collections/v/points",
            None,
            Some(json!({"points": [point]})),
        );
        assert_error(&r, 400, "invalid_input", "");
        assert_eq!(r.1["error"]["field"], field, "{}", r.1);
    }
    let r = t.call(
        "POST",
        "/collections",
        None,
        Some(json!({"name": "w", "dim": 2, "ttl": "created:soon"})),
    );
    assert_error(&r, 400, "invalid_input", "not a duration");
    assert_eq!(r.1["error"]["field"], "ttl");
    // Deleting by age is for document collections.
    let r = t.call(
        "DELETE",
        "/collections/v/documents?older_than=1d",
        None,
        None,
    );
    assert_error(&r, 400, "invalid_input", "not a document collection");
}

/// The query cache never serves a point past its expiry: an answer is cached only until the
/// collection's next expiry.
#[test]
fn the_query_cache_does_not_outlive_an_expiry() {
    let t = start(false);
    t.ok(
        "POST",
        "/collections",
        None,
        Some(json!({"name": "c", "dim": 2})),
    );
    let soon = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        + 1500;
    let soon = sextant_engine::clock::format_expiry(soon);
    t.ok(
        "PUT",
        "/collections/c/points",
        None,
        Some(json!({"points": [
            {"id": 1, "vector": [1, 0], "expires_at": soon},
            {"id": 2, "vector": [0, 1]},
        ]})),
    );
    let search = || {
        let r = t.ok(
            "POST",
            "/collections/c/search",
            None,
            Some(json!({"vector": [1, 0], "k": 10})),
        );
        r["hits"].as_array().unwrap().len()
    };
    assert_eq!(search(), 2);
    assert_eq!(search(), 2, "served from the cache");
    std::thread::sleep(std::time::Duration::from_millis(1600));
    assert_eq!(
        search(),
        1,
        "the expired point is not served from the cache"
    );
}
