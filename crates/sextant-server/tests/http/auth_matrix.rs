//! The auth matrix: each role × each endpoint × own / other / no tenant, and keys limited to
//! collections. No request of a tenant key may read or change another tenant's points.

use serde_json::{json, Value};

use crate::common::{start, TestServer};

fn v(i: usize) -> Vec<f32> {
    (0..4).map(|j| ((i * 5 + j) % 7) as f32 + 1.0).collect()
}

/// One request of the matrix: method, path, body.
struct Req {
    name: &'static str,
    method: &'static str,
    path: String,
    body: Option<Value>,
    /// The lowest role that may make it.
    need: &'static str,
}

fn with_tenant(body: &Option<Value>, tenant: Option<&Value>) -> Option<Value> {
    match (body, tenant) {
        (Some(Value::Object(m)), Some(t)) => {
            let mut m = m.clone();
            m.insert("tenant".into(), t.clone());
            Some(Value::Object(m))
        }
        (b, _) => b.clone(),
    }
}

fn requests(coll: &str) -> Vec<Req> {
    let p = |s: &str| format!("/collections/{coll}{s}");
    vec![
        Req {
            name: "count",
            method: "POST",
            path: p("/points/count"),
            body: Some(json!({})),
            need: "read",
        },
        Req {
            name: "get",
            method: "POST",
            path: p("/points/get"),
            body: Some(json!({"ids": [0, 1, 100, 101]})),
            need: "read",
        },
        Req {
            name: "scroll",
            method: "POST",
            path: p("/points/scroll"),
            body: Some(json!({"limit": 1000})),
            need: "read",
        },
        Req {
            name: "search",
            method: "POST",
            path: p("/search"),
            body: Some(json!({"vector": v(0), "k": 100, "with_payload": true})),
            need: "read",
        },
        Req {
            name: "upsert",
            method: "PUT",
            path: p("/points"),
            body: Some(json!({"points": [{"id": 500, "vector": v(1), "payload": {}}]})),
            need: "write",
        },
        Req {
            name: "delete",
            method: "POST",
            path: p("/points/delete"),
            body: Some(json!({"ids": [500]})),
            need: "write",
        },
        Req {
            name: "delete_filter",
            method: "POST",
            path: p("/points/delete"),
            body: Some(json!({"filter": {"must": [{"key": "n", "range": {"gte": 1000}}]}})),
            need: "write",
        },
        Req {
            name: "optimize",
            method: "POST",
            path: p("/optimize"),
            body: None,
            need: "admin",
        },
        Req {
            name: "tenants",
            method: "GET",
            path: p("/tenants"),
            body: None,
            need: "admin",
        },
    ]
}

fn rank(r: &str) -> u8 {
    match r {
        "read" => 0,
        "write" => 1,
        _ => 2,
    }
}

/// Ids (as u64) in a JSON answer, from any list of points or hits.
fn ids_in(v: &Value) -> Vec<u64> {
    let mut out = Vec::new();
    for k in ["points", "hits"] {
        if let Some(a) = v[k].as_array() {
            out.extend(a.iter().filter_map(|p| p["id"].as_u64()));
        }
    }
    out
}

fn setup(t: &TestServer, admin: &str) {
    t.ok(
        "POST",
        "/collections",
        Some(admin),
        Some(json!({"name": "mt", "dim": 4, "tenant_key": "org"})),
    );
    t.ok(
        "POST",
        "/collections",
        Some(admin),
        Some(json!({"name": "plain", "dim": 4})),
    );
    // Tenant a: ids 0..50; tenant b: ids 100..150.
    let pts = |r: std::ops::Range<usize>| -> Value {
        r.map(|i| json!({"id": i, "vector": v(i), "payload": {"n": i}}))
            .collect()
    };
    t.ok(
        "PUT",
        "/collections/mt/points",
        Some(admin),
        Some(json!({"points": pts(0..50), "tenant": "a"})),
    );
    t.ok(
        "PUT",
        "/collections/mt/points",
        Some(admin),
        Some(json!({"points": pts(100..150), "tenant": "b"})),
    );
    t.ok(
        "PUT",
        "/collections/plain/points",
        Some(admin),
        Some(json!({"points": pts(0..20)})),
    );
}

#[test]
fn roles_collections_and_tenants() {
    let t = start(true);
    let admin = t.key("admin", None, None);
    setup(&t, &admin);
    let mut checked = 0;
    for role in ["read", "write", "admin"] {
        // Unlimited keys: role decides; the request's own tenant is honoured.
        let key = t.key(role, None, None);
        for r in requests("mt") {
            for tenant in [Some(json!("a")), None] {
                let (st, body) = t.call(
                    r.method,
                    &r.path,
                    Some(&key),
                    with_tenant(&r.body, tenant.as_ref()),
                );
                if rank(role) < rank(r.need) {
                    assert_eq!(st, 403, "{role} {}: {body}", r.name);
                    assert_eq!(body["error"]["code"], "forbidden");
                } else if tenant.is_none() && r.body.is_some() {
                    // Unscoped point requests in a multi-tenant collection are refused.
                    assert_eq!(st, 400, "{role} {} unscoped: {body}", r.name);
                } else {
                    assert!((200..300).contains(&st), "{role} {}: {st} {body}", r.name);
                    if tenant.is_some() {
                        assert!(
                            ids_in(&body).iter().all(|&i| i < 100 || i == 500),
                            "{role} {} leaked: {body}",
                            r.name
                        );
                    }
                }
                checked += 1;
            }
        }
        // Tenant keys (read and write only): own tenant allowed, other tenant and all tenants
        // refused, no tenant means its own.
        if role == "admin" {
            continue;
        }
        let tkey = t.key(role, None, Some(json!("a")));
        for r in requests("mt") {
            for (label, tenant, all) in [
                ("own", Some(json!("a")), false),
                ("other", Some(json!("b")), false),
                ("none", None, false),
                ("all", None, true),
            ] {
                let mut body = with_tenant(&r.body, tenant.as_ref());
                if all {
                    if let Some(Value::Object(m)) = &mut body {
                        m.insert("all_tenants".into(), json!(true));
                    }
                }
                let (st, resp) = t.call(r.method, &r.path, Some(&tkey), body);
                let ids = ids_in(&resp);
                assert!(
                    ids.iter().all(|&i| i < 100 || i == 500),
                    "tenant key {role}/{label} {} read another tenant: {resp}",
                    r.name
                );
                if rank(role) < rank(r.need)
                    || (r.body.is_some() && (label == "other" || all))
                    || r.body.is_none()
                {
                    assert_eq!(st, 403, "tenant key {role}/{label} {}: {resp}", r.name);
                } else {
                    assert!(
                        (200..300).contains(&st),
                        "tenant key {role}/{label} {}: {st} {resp}",
                        r.name
                    );
                }
                checked += 1;
            }
        }
        // A tenant key cannot use a collection without tenants at all.
        let (st, _) = t.call(
            "POST",
            "/collections/plain/points/count",
            Some(&tkey),
            Some(json!({})),
        );
        assert_eq!(st, 403);
        // Single-point read of another tenant's point: 403 when it names the tenant, 404 (as if
        // absent) when it names none.
        assert_eq!(
            t.call(
                "GET",
                "/collections/mt/points/100?tenant=b",
                Some(&tkey),
                None
            )
            .0,
            403
        );
        assert_eq!(
            t.call("GET", "/collections/mt/points/100", Some(&tkey), None)
                .0,
            404
        );
        assert_eq!(
            t.call("GET", "/collections/mt/points/1", Some(&tkey), None)
                .0,
            200
        );
        // Collection info shows only its tenant's count.
        let info = t.ok("GET", "/collections/mt", Some(&tkey), None);
        assert_eq!(info["points"], 50);
    }
    assert!(checked > 80);
    // Tenant b's points are untouched by everything tenant-a keys did.
    let b = t.ok(
        "POST",
        "/collections/mt/points/count",
        Some(&admin),
        Some(json!({"tenant": "b"})),
    );
    assert_eq!(b["count"], 50);
    // A tenant write key cannot write a point claiming another tenant in its payload.
    let tw = t.key("write", None, Some(json!("a")));
    let (st, resp) = t.call(
        "PUT",
        "/collections/mt/points",
        Some(&tw),
        Some(json!({"points": [{"id": 900, "vector": v(2), "payload": {"org": "b"}}]})),
    );
    assert!(st == 409 || st == 400, "{st} {resp}");
    // Nor overwrite tenant b's point 100 with its own tenant.
    let (st, resp) = t.call(
        "PUT",
        "/collections/mt/points",
        Some(&tw),
        Some(json!({"points": [{"id": 100, "vector": v(2), "payload": {}}]})),
    );
    assert_eq!(st, 409, "{resp}");
    assert_eq!(
        t.ok(
            "POST",
            "/collections/mt/points/count",
            Some(&admin),
            Some(json!({"tenant": "b"}))
        )["count"],
        50
    );
}

#[test]
fn collection_limited_keys() {
    let t = start(true);
    let admin = t.key("admin", None, None);
    setup(&t, &admin);
    let only_plain = t.key("write", Some(vec!["plain"]), None);
    assert_eq!(
        t.ok("GET", "/collections", Some(&only_plain), None)["collections"],
        json!(["plain"])
    );
    for r in requests("mt") {
        let (st, _) = t.call(
            r.method,
            &r.path,
            Some(&only_plain),
            with_tenant(&r.body, Some(&json!("a"))),
        );
        assert_eq!(st, 403, "{}", r.name);
    }
    assert_eq!(
        t.ok(
            "POST",
            "/collections/plain/points/count",
            Some(&only_plain),
            Some(json!({}))
        )["count"],
        20
    );
    // Admin-only routes.
    for (m, p, b) in [
        ("POST", "/collections", Some(json!({"name": "x", "dim": 2}))),
        ("DELETE", "/collections/plain", None),
        ("PUT", "/aliases/al", Some(json!({"collection": "plain"}))),
        ("POST", "/admin/keys", Some(json!({"role": "read"}))),
    ] {
        let (st, body) = t.call(m, p, Some(&only_plain), b);
        assert_eq!(st, 403, "{m} {p}: {body}");
    }
    // No key, a malformed header, an unknown key.
    assert_eq!(t.call("GET", "/collections", None, None).0, 401);
    assert_eq!(
        t.call("GET", "/collections", Some("sxk_nope_nope"), None).0,
        401
    );
    let resp = ureq::get(&t.url("/collections"))
        .set("Authorization", "Basic abc")
        .call();
    assert!(matches!(resp, Err(ureq::Error::Status(401, _))));
    // Open routes.
    assert_eq!(t.call("GET", "/healthz", None, None).0, 200);
    assert_eq!(t.call("GET", "/openapi.json", None, None).0, 200);
}

/// The drift routes: reading the report and the canaries needs a read key, changing them or
/// checking an admin key; a key limited to a tenant gets none of them (they cover every
/// tenant), and a key limited to other collections none either.
#[test]
fn drift_routes_need_their_role_and_no_tenant_key() {
    let t = start(true);
    let admin = t.key("admin", None, None);
    setup(&t, &admin);
    let p = |s: &str| format!("/collections/mt/drift{s}");
    // Monitored from the start, so the read routes answer 200.
    t.ok("POST", &p("/pin"), Some(&admin), Some(json!({})));
    t.ok(
        "POST",
        &p("/canaries"),
        Some(&admin),
        Some(json!({"name": "base", "vector": v(3), "k": 5})),
    );
    let routes: Vec<(&str, String, Option<Value>, &str)> = vec![
        ("GET", p(""), None, "read"),
        ("GET", p("/canaries"), None, "read"),
        (
            "POST",
            p("/pin"),
            Some(json!({"shift_alarm": 0.5})),
            "admin",
        ),
        (
            "POST",
            p("/canaries"),
            Some(json!({"name": "new", "vector": v(4), "k": 3})),
            "admin",
        ),
        ("DELETE", p("/canaries/new"), None, "admin"),
        ("POST", p("/check"), None, "admin"),
    ];
    untenanted_routes(&t, &routes);
}

/// Routes that cover every tenant of `mt`: each role gets 403 below the role a route needs
/// and a 2xx from it; a key limited to a tenant, or to another collection, gets 403 always.
fn untenanted_routes(t: &TestServer, routes: &[(&str, String, Option<Value>, &str)]) {
    for role in ["read", "write", "admin"] {
        let key = t.key(role, None, None);
        // An admin key cannot be limited to a tenant at all.
        let tkey = (role != "admin").then(|| t.key(role, None, Some(json!("a"))));
        let other = t.key(role, Some(vec!["plain"]), None);
        for (m, path, body, need) in routes {
            let (st, resp) = t.call(m, path, Some(&key), body.clone());
            if rank(role) < rank(need) {
                assert_eq!(st, 403, "{role} {m} {path}: {resp}");
            } else {
                assert!((200..300).contains(&st), "{role} {m} {path}: {st} {resp}");
            }
            for (label, k) in [
                ("tenant", tkey.as_ref()),
                ("other collection", Some(&other)),
            ] {
                let Some(k) = k else { continue };
                let (st, resp) = t.call(m, path, Some(k), body.clone());
                assert_eq!(st, 403, "{label} key {role} {m} {path}: {resp}");
            }
        }
    }
}

/// The adapter routes: reading needs a read key, attaching and detaching an admin key; a key
/// limited to a tenant gets none of them (an adapter maps every tenant's queries), and a key
/// limited to other collections none either.
#[test]
fn adapter_routes_need_their_role_and_no_tenant_key() {
    let t = start(true);
    let admin = t.key("admin", None, None);
    setup(&t, &admin);
    let p = "/collections/mt/adapter".to_string();
    let identity: Vec<f32> = (0..16)
        .map(|i| if i % 5 == 0 { 1.0 } else { 0.0 })
        .collect();
    let body = json!({"model": null, "weights": identity});
    let routes: Vec<(&str, String, Option<Value>, &str)> = vec![
        ("GET", p.clone(), None, "read"),
        ("PUT", p.clone(), Some(body.clone()), "admin"),
        ("DELETE", p.clone(), None, "admin"),
    ];
    untenanted_routes(&t, &routes);
}

/// Evaluation, reindex and jobs: eval needs a read key covering the collection (and the
/// `compare` one), reindex an admin key covering source and target and no tenant; a key limited
/// to collections sees only their jobs.
#[test]
fn eval_reindex_and_jobs_need_their_role() {
    let t = start(true);
    let admin = t.key("admin", None, None);
    setup(&t, &admin);
    let eval = json!({"queries": [{"id": "q", "text": "x"}], "qrels": {"q": {"d": 1}},
                      "permutations": 10});
    for role in ["read", "write", "admin"] {
        let key = t.key(role, None, None);
        let (st, body) = t.call(
            "POST",
            "/collections/plain/eval",
            Some(&key),
            Some(eval.clone()),
        );
        // Allowed for every role; `plain` is not a document collection, so the evaluation
        // itself is refused as bad input, not as forbidden.
        assert_eq!(st, 400, "{role}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("not a document collection"),
            "{body}"
        );
        let other = t.key(role, Some(vec!["mt"]), None);
        let (st, _) = t.call(
            "POST",
            "/collections/plain/eval",
            Some(&other),
            Some(eval.clone()),
        );
        assert_eq!(st, 403, "{role} key for other collections");
        let mut cmp = eval.clone();
        cmp["compare"] = json!("plain");
        let (st, body) = t.call("POST", "/collections/mt/eval", Some(&other), Some(cmp));
        assert_eq!(
            st, 403,
            "{role}: compare names a collection the key does not cover: {body}"
        );
        let (st, body) = t.call(
            "POST",
            "/collections/plain/reindex",
            Some(&key),
            Some(json!({"model": "nope", "into": "plain2"})),
        );
        if role == "admin" {
            // Past the role check: the model name is refused.
            assert_eq!(st, 400, "{body}");
        } else {
            assert_eq!(st, 403, "{role}: {body}");
        }
        let (st, _) = t.call("GET", "/jobs", Some(&key), None);
        assert_eq!(st, if role == "admin" { 200 } else { 403 });
        // The index advisor: admin only; past the role check `plain` has too few points.
        let (st, body) = t.call(
            "POST",
            "/collections/plain/advise",
            Some(&key),
            Some(json!({"target_recall": 0.9})),
        );
        if role == "admin" {
            assert_eq!(st, 400, "{body}");
            assert_eq!(body["error"]["field"], "collection", "{body}");
        } else {
            assert_eq!(st, 403, "{role}: {body}");
        }
        let (st, _) = t.call(
            "POST",
            "/collections/plain/advise",
            Some(&other),
            Some(json!({})),
        );
        assert_eq!(st, 403, "{role} key for other collections");
    }
    let (st, _) = t.call(
        "POST",
        "/collections/mt/advise",
        Some(&t.key("write", None, Some(json!("a")))),
        Some(json!({})),
    );
    assert_eq!(st, 403, "a tenant key cannot see every tenant's vectors");
    // A tenant key cannot reindex (it would copy every tenant), even with a covering role.
    let tkey = t.key("write", None, Some(json!("a")));
    let (st, _) = t.call(
        "POST",
        "/collections/mt/reindex",
        Some(&tkey),
        Some(json!({"model": "nope", "into": "mt2"})),
    );
    assert_eq!(st, 403);
    // An admin key limited to `plain` may not write the target `other`.
    let limited = t.key("admin", Some(vec!["plain"]), None);
    let (st, body) = t.call(
        "POST",
        "/collections/plain/reindex",
        Some(&limited),
        Some(json!({"model": "nope", "into": "other"})),
    );
    assert_eq!(st, 403, "{body}");
    assert_eq!(
        t.ok("GET", "/jobs", Some(&limited), None)["jobs"],
        json!([])
    );
}
