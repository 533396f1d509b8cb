//! Bad input on every route: a 4xx with a JSON error naming the problem; never a 5xx, a panic or
//! internal text.

use serde_json::{json, Value};

use crate::common::{assert_error, config, raw, start_with};

fn is_clean_4xx(st: u16, body: &Value, text: &str) -> bool {
    (400..500).contains(&st)
        && body["error"]["code"].is_string()
        && body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty())
        && !text.contains("panicked")
        && !text.contains("src/")
}

#[test]
fn every_route_refuses_bad_bodies_with_a_json_4xx() {
    let mut c = config(false);
    c.limits.max_body_bytes = 64 * 1024;
    let t = start_with(c);
    t.ok(
        "POST",
        "/collections",
        None,
        Some(json!({"name": "c", "dim": 3})),
    );
    t.ok(
        "PUT",
        "/collections/c/points",
        None,
        Some(json!({"points": [{"id": 1, "vector": [1, 2, 3]}]})),
    );
    let routes = [
        ("POST", "/collections"),
        ("PUT", "/collections/c/points"),
        ("POST", "/collections/c/points/get"),
        ("POST", "/collections/c/points/delete"),
        ("POST", "/collections/c/points/count"),
        ("POST", "/collections/c/points/scroll"),
        ("POST", "/collections/c/search"),
        ("PUT", "/aliases/a"),
        ("POST", "/admin/keys"),
        ("PUT", "/collections/new"),
        ("POST", "/collections/c/query"),
        ("POST", "/collections/c/ask"),
        ("POST", "/embed"),
        ("POST", "/rerank"),
        ("POST", "/v1/embeddings"),
    ];
    let huge = vec![b' '; 80 * 1024];
    let bodies: Vec<(&str, Vec<u8>, &str)> = vec![
        ("malformed", b"{\"points\": [".to_vec(), "application/json"),
        ("not an object", b"[1, 2, 3]".to_vec(), "application/json"),
        ("wrong types", br#"{"points": "many", "ids": 3, "vector": "up", "name": 5, "k": "ten", "role": 7, "collection": []}"#.to_vec(), "application/json"),
        ("unknown field", br#"{"surprise": true}"#.to_vec(), "application/json"),
        ("invalid utf-8", b"{\"name\": \"\xff\xfe\"}".to_vec(), "application/json"),
        ("no content type", b"{}".to_vec(), "text/plain"),
        ("huge", huge, "application/json"),
    ];
    let mut too_large = 0;
    for (m, path) in routes {
        for (what, body, ctype) in &bodies {
            let (st, v, text) = raw(m, &t.url(path), None, ctype, body);
            if *what == "huge" {
                // 413, or the connection closed after the early 413 while the client still wrote.
                assert!(st == 413 || st == 0, "{m} {path}: {st} {text}");
                too_large += usize::from(st == 413);
                continue;
            }
            assert!(
                is_clean_4xx(st, &v, &text),
                "{m} {path} {what}: {st} {text}"
            );
        }
    }
    assert!(too_large > 0, "no huge body got its 413");
    // Absurd numbers and values, named.
    let cases = [
        (
            "POST",
            "/collections/c/search",
            json!({"vector": [1, 2, 3], "k": 0}),
            "k",
        ),
        (
            "POST",
            "/collections/c/search",
            json!({"vector": [1, 2, 3], "k": 1_000_000_000u64}),
            "k",
        ),
        (
            "POST",
            "/collections/c/search",
            json!({"vector": [1, 2, 3], "k": -1}),
            "body",
        ),
        (
            "POST",
            "/collections/c/search",
            json!({"vector": [1, 2, 3], "ef": 1_000_000_000u64}),
            "ef",
        ),
        (
            "POST",
            "/collections/c/search",
            json!({"vector": [1, 2, 3], "nprobe": 0}),
            "nprobe",
        ),
        (
            "POST",
            "/collections/c/search",
            json!({"vector": [1, 2, 3], "nprobe": 4}),
            "nprobe",
        ),
        (
            "POST",
            "/collections/c/search",
            json!({"vector": [1, 2]}),
            "",
        ),
        (
            "POST",
            "/collections/c/search",
            json!({"vector": [1e300, 2, 3]}),
            "",
        ),
        (
            "POST",
            "/collections/c/search",
            json!({"vector": [1, 2, 3], "filter": {"must": [{"key": "x", "bogus": 1}]}}),
            "filter",
        ),
        (
            "POST",
            "/collections/c/points/scroll",
            json!({"limit": 0}),
            "limit",
        ),
        (
            "POST",
            "/collections/c/points/scroll",
            json!({"limit": 10_000_000}),
            "limit",
        ),
        (
            "POST",
            "/collections/c/points/scroll",
            json!({"order_by": {"key": "x", "direction": "sideways"}}),
            "order_by.direction",
        ),
        (
            "POST",
            "/collections/c/points/get",
            json!({"ids": [-5]}),
            "ids[0]",
        ),
        ("POST", "/collections/c/points/delete", json!({}), "ids"),
        (
            "PUT",
            "/collections/c/points",
            json!({"points": [{"id": 1, "vector": [1, "x", 3]}]}),
            "points[0].vector",
        ),
        (
            "PUT",
            "/collections/c/points",
            json!({"points": [{"id": 1.5, "vector": [1, 2, 3]}]}),
            "points[0].id",
        ),
        (
            "PUT",
            "/collections/c/points",
            json!({"points": [{"id": 1, "vector": [1, 2]}]}),
            "",
        ),
        (
            "PUT",
            "/collections/c/points",
            json!({"points": [{"id": 1, "vector": [1, 2, 3], "payload": 7}]}),
            "",
        ),
        (
            "PUT",
            "/collections/c/points",
            json!({"points": [], "tenant": "t"}),
            "tenant",
        ),
        (
            "POST",
            "/collections",
            json!({"name": "bad name!", "dim": 3}),
            "",
        ),
        ("POST", "/collections", json!({"name": "d"}), "dim"),
        ("POST", "/collections", json!({"name": "d", "dim": 0}), ""),
        (
            "POST",
            "/collections",
            json!({"name": "d", "dim": 3, "metric": "manhattan-ish"}),
            "metric",
        ),
        (
            "POST",
            "/collections",
            json!({"name": "d", "dim": 3, "index": "lsh"}),
            "index",
        ),
        (
            "POST",
            "/collections",
            json!({"name": "d", "dim": 3, "payload_indexes": {"x": "colour"}}),
            "payload_indexes",
        ),
        (
            "POST",
            "/collections",
            json!({"name": "d", "dim": 3, "tenant_key": "org:float"}),
            "tenant_key",
        ),
        ("POST", "/admin/keys", json!({"role": "superuser"}), "body"),
    ];
    for (m, path, body, field) in cases {
        let (st, v) = t.call(m, path, None, Some(body.clone()));
        assert!((400..500).contains(&st), "{m} {path} {body}: {st} {v}");
        assert!(v["error"]["message"].is_string(), "{v}");
        if !field.is_empty() {
            assert_eq!(v["error"]["field"], field, "{m} {path} {body}: {v}");
        }
    }
    // Unknown routes and methods, bad path parameters.
    assert_error(
        &t.call("GET", "/nope", None, None),
        404,
        "not_found",
        "/nope",
    );
    let (st, v) = t.call("PATCH", "/collections", None, None);
    assert_eq!(st, 405, "{v}");
    assert_eq!(v["error"]["field"], "method");
    assert_error(
        &t.call("GET", "/collections/c/points/%FF%FE", None, None),
        400,
        "invalid_input",
        "",
    );
    assert_error(
        &t.call(
            "GET",
            "/collections/c/points/1?tenant=x&bogus=1",
            None,
            None,
        ),
        400,
        "invalid_input",
        "",
    );
    // The server is still healthy and the data intact.
    assert_eq!(
        t.ok("POST", "/collections/c/points/count", None, Some(json!({})))["count"],
        1
    );
}

#[test]
fn overload_answers_503_with_retry_after() {
    let mut c = config(false);
    c.limits.workers = 1;
    c.limits.queue_depth = 1;
    c.limits.queue_timeout_ms = 50;
    let t = start_with(c);
    t.ok(
        "POST",
        "/collections",
        None,
        Some(json!({"name": "c", "dim": 64, "index": "flat"})),
    );
    let pts: Vec<Value> = (0..5000).map(|i| json!({"id": i, "vector": (0..64).map(|j| ((i * j) % 13) as f32).collect::<Vec<_>>()})).collect();
    for chunk in pts.chunks(1000) {
        t.ok(
            "PUT",
            "/collections/c/points",
            None,
            Some(json!({"points": chunk})),
        );
    }
    let url = t.url("/collections/c/search");
    let handles: Vec<_> = (0..16)
        .map(|i| {
            let url = url.clone();
            std::thread::spawn(move || {
                // Exact: queued work on the blocking pool (an unfiltered graph search may run
                // in place, which the gate's own tests cover).
                let q = json!({"vector": (0..64).map(|j| ((i * 31 + j) % 17) as f32).collect::<Vec<_>>(), "k": 100, "exact": true});
                let mut statuses = Vec::new();
                for _ in 0..20 {
                    match ureq::post(&url).send_json(q.clone()) {
                        Ok(r) => statuses.push((r.status(), None)),
                        Err(ureq::Error::Status(s, r)) => statuses.push((s, r.header("Retry-After").map(String::from))),
                        Err(e) => panic!("{e}"),
                    }
                }
                statuses
            })
        })
        .collect();
    let all: Vec<(u16, Option<String>)> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    assert!(all.iter().all(|(s, _)| *s == 200 || *s == 503), "{all:?}");
    assert!(all.iter().any(|(s, _)| *s == 200));
    let refused: Vec<_> = all.iter().filter(|(s, _)| *s == 503).collect();
    assert!(
        !refused.is_empty(),
        "16 clients on 1 worker with a queue of 1 must be refused sometimes"
    );
    assert!(refused.iter().all(|(_, r)| r.as_deref() == Some("1")));
}

#[test]
fn rate_limit_answers_429() {
    let mut c = config(true);
    c.limits.rate_limit_per_s = 1.0;
    c.limits.rate_limit_burst = 3.0;
    let t = start_with(c);
    let k = t.key("read", None, None);
    let statuses: Vec<u16> = (0..6)
        .map(|_| t.call("GET", "/collections", Some(&k), None).0)
        .collect();
    assert_eq!(&statuses[..3], &[200, 200, 200]);
    assert!(statuses[3..].contains(&429), "{statuses:?}");
    let other = t.key("read", None, None);
    assert_eq!(t.call("GET", "/collections", Some(&other), None).0, 200);
}
