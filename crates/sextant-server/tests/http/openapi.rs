//! `/openapi.json`: OpenAPI 3.1, every served route described, and answers that match it.

use serde_json::{json, Value};

use crate::common::start;

/// Every route the router serves, as (method, OpenAPI path). Keep in step with
/// `src/routes/mod.rs`; the test below checks both directions.
const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/readyz"),
    ("get", "/metrics"),
    ("get", "/openapi.json"),
    ("get", "/"),
    ("get", "/console/{file}"),
    ("get", "/collections"),
    ("post", "/collections"),
    ("get", "/collections/{name}"),
    ("put", "/collections/{name}"),
    ("delete", "/collections/{name}"),
    ("post", "/collections/{name}/optimize"),
    ("get", "/aliases"),
    ("put", "/aliases/{alias}"),
    ("delete", "/aliases/{alias}"),
    ("get", "/collections/{name}/tenants"),
    ("delete", "/collections/{name}/tenants/{tenant}"),
    ("get", "/collections/{name}/adapter"),
    ("put", "/collections/{name}/adapter"),
    ("delete", "/collections/{name}/adapter"),
    ("get", "/collections/{name}/drift"),
    ("post", "/collections/{name}/drift/pin"),
    ("get", "/collections/{name}/drift/canaries"),
    ("post", "/collections/{name}/drift/canaries"),
    ("delete", "/collections/{name}/drift/canaries/{canary}"),
    ("post", "/collections/{name}/drift/check"),
    ("post", "/collections/{name}/eval"),
    ("post", "/collections/{name}/reindex"),
    ("post", "/collections/{name}/advise"),
    ("get", "/jobs"),
    ("get", "/jobs/{id}"),
    ("post", "/collections/{name}/snapshots"),
    ("get", "/collections/{name}/snapshots"),
    ("get", "/collections/{name}/snapshots/{snapshot}"),
    ("delete", "/collections/{name}/snapshots/{snapshot}"),
    ("post", "/collections/{name}/snapshots/{snapshot}/verify"),
    ("post", "/collections/{name}/snapshots/{snapshot}/restore"),
    ("post", "/backups"),
    ("get", "/backups"),
    ("post", "/backups/{backup}/restore"),
    ("delete", "/backups/{backup}"),
    ("put", "/collections/{name}/points"),
    ("post", "/collections/{name}/points/get"),
    ("get", "/collections/{name}/points/{id}"),
    ("post", "/collections/{name}/points/delete"),
    ("post", "/collections/{name}/points/count"),
    ("post", "/collections/{name}/points/scroll"),
    ("post", "/collections/{name}/search"),
    ("post", "/collections/{name}/query"),
    ("post", "/collections/{name}/ask"),
    ("post", "/collections/{name}/documents"),
    ("delete", "/collections/{name}/documents"),
    ("delete", "/collections/{name}/documents/{doc_id}"),
    ("post", "/embed"),
    ("post", "/rerank"),
    ("post", "/v1/embeddings"),
    ("get", "/v1/models"),
    ("post", "/admin/keys"),
    ("get", "/admin/keys"),
    ("delete", "/admin/keys/{id}"),
];

#[test]
fn every_route_is_documented_and_served() {
    let t = start(false);
    let doc = t.ok("GET", "/openapi.json", None, None);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let mut documented = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "put", "post", "delete", "patch"] {
            if item.get(m).is_some() {
                documented.push((m.to_string(), path.clone()));
            }
        }
    }
    let mut expected: Vec<(String, String)> = ROUTES
        .iter()
        .map(|(m, p)| (m.to_string(), p.to_string()))
        .collect();
    expected.sort();
    documented.sort();
    assert_eq!(documented, expected);
    // Each documented route is served: a request to it never meets the 404 "no route" fallback.
    for (m, p) in &expected {
        let path = p
            .replace("{name}", "c")
            .replace("{alias}", "a")
            .replace("{tenant}", "t")
            .replace("{canary}", "k")
            .replace("{id}", "1")
            .replace("{doc_id}", "d")
            .replace("{file}", "app.js")
            .replace("{snapshot}", "s.snapshot");
        let (st, v) = t.call(
            &m.to_uppercase(),
            &path,
            None,
            if m == "get" || m == "delete" {
                None
            } else {
                Some(json!({}))
            },
        );
        let no_route = st == 404
            && v["error"]["message"]
                .as_str()
                .unwrap_or("")
                .starts_with("no route");
        assert!(!no_route, "{m} {path} is documented but not served");
    }
}

/// A minimal JSON Schema check for the schemas utoipa emits (type, properties, required, items,
/// $ref, oneOf/anyOf/allOf, nullable types).
fn validate(doc: &Value, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap();
        return validate(doc, &doc["components"]["schemas"][name], v, at);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = schema[key].as_array() {
            return if alts.iter().any(|s| validate(doc, s, v, at).is_ok()) {
                Ok(())
            } else {
                Err(format!("{at}: matches no alternative of {key}"))
            };
        }
    }
    if let Some(all) = schema["allOf"].as_array() {
        for s in all {
            validate(doc, s, v, at)?;
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(|x| x.as_str()).collect(),
        _ => vec![],
    };
    if !types.is_empty() {
        let ok = types.iter().any(|t| match *t {
            "object" => v.is_object(),
            "array" => v.is_array(),
            "string" => v.is_string(),
            "integer" => v.is_i64() || v.is_u64(),
            "number" => v.is_number(),
            "boolean" => v.is_boolean(),
            "null" => v.is_null(),
            _ => true,
        });
        if !ok {
            return Err(format!("{at}: {v} is not {types:?}"));
        }
    }
    if let (Some(props), Some(obj)) = (schema["properties"].as_object(), v.as_object()) {
        for req in schema["required"].as_array().into_iter().flatten() {
            let k = req.as_str().unwrap();
            if !obj.contains_key(k) {
                return Err(format!("{at}: required {k:?} missing"));
            }
        }
        for (k, s) in props {
            if let Some(x) = obj.get(k) {
                validate(doc, s, x, &format!("{at}.{k}"))?;
            }
        }
    }
    if let (Some(items), Some(arr)) = (schema.get("items"), v.as_array()) {
        for (i, x) in arr.iter().enumerate() {
            validate(doc, items, x, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

fn check(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let op = &doc["paths"][path][method];
    assert!(op.is_object(), "{method} {path} not documented");
    let resp = &op["responses"][status.to_string()];
    assert!(
        resp.is_object(),
        "{method} {path}: status {status} not documented: {body}"
    );
    let schema = &resp["content"]["application/json"]["schema"];
    if schema.is_object() {
        validate(doc, schema, body, "body")
            .unwrap_or_else(|e| panic!("{method} {path} {status}: {e}"));
    }
}

#[test]
fn answers_validate_against_the_document() {
    let t = start(false);
    let doc = t.ok("GET", "/openapi.json", None, None);
    let run = |m: &str, path: &str, concrete: &str, body: Option<Value>| {
        let (st, v) = t.call(&m.to_uppercase(), concrete, None, body);
        check(&doc, m, path, st, &v);
    };
    run("get", "/healthz", "/healthz", None);
    run("get", "/readyz", "/readyz", None);
    run("get", "/", "/", None);
    run("get", "/console/{file}", "/console/app.css", None);
    run("get", "/console/{file}", "/console/nope.js", None);
    run(
        "post",
        "/collections",
        "/collections",
        Some(json!({"name": "c", "dim": 2})),
    );
    run(
        "post",
        "/collections",
        "/collections",
        Some(json!({"name": "c", "dim": 2})),
    );
    run(
        "post",
        "/collections",
        "/collections",
        Some(json!({"name": "x"})),
    );
    run("get", "/collections", "/collections", None);
    run("get", "/collections/{name}", "/collections/c", None);
    run("get", "/collections/{name}", "/collections/zz", None);
    run(
        "put",
        "/collections/{name}/points",
        "/collections/c/points",
        Some(json!({"points": [{"id": 1, "vector": [1, 0]}, {"id": "u", "vector": [0, 1]}]})),
    );
    run(
        "put",
        "/collections/{name}/points",
        "/collections/c/points",
        Some(json!({"points": [{"id": 1, "vector": [1]}]})),
    );
    run(
        "post",
        "/collections/{name}/points/get",
        "/collections/c/points/get",
        Some(json!({"ids": [1, "u"]})),
    );
    run(
        "get",
        "/collections/{name}/points/{id}",
        "/collections/c/points/1",
        None,
    );
    run(
        "get",
        "/collections/{name}/points/{id}",
        "/collections/c/points/9",
        None,
    );
    run(
        "post",
        "/collections/{name}/points/count",
        "/collections/c/points/count",
        Some(json!({})),
    );
    run(
        "post",
        "/collections/{name}/points/scroll",
        "/collections/c/points/scroll",
        Some(json!({"limit": 1})),
    );
    run(
        "post",
        "/collections/{name}/search",
        "/collections/c/search",
        Some(json!({"vector": [1, 0], "k": 2})),
    );
    run(
        "post",
        "/collections/{name}/search",
        "/collections/c/search",
        Some(json!({"vector": [1, 0], "k": 0})),
    );
    run(
        "put",
        "/aliases/{alias}",
        "/aliases/a",
        Some(json!({"collection": "c"})),
    );
    run("get", "/aliases", "/aliases", None);
    run("delete", "/aliases/{alias}", "/aliases/a", None);
    run(
        "post",
        "/collections/{name}/points/delete",
        "/collections/c/points/delete",
        Some(json!({"ids": [1]})),
    );
    run(
        "post",
        "/collections/{name}/optimize",
        "/collections/c/optimize",
        None,
    );
    run(
        "post",
        "/admin/keys",
        "/admin/keys",
        Some(json!({"role": "read"})),
    );
    run("get", "/admin/keys", "/admin/keys", None);
    run("delete", "/admin/keys/{id}", "/admin/keys/nope", None);
    let (_, snap) = t.call("POST", "/collections/c/snapshots", None, None);
    check(&doc, "post", "/collections/{name}/snapshots", 201, &snap);
    let file = snap["snapshot"].as_str().unwrap();
    let one = format!("/collections/c/snapshots/{file}");
    run(
        "get",
        "/collections/{name}/snapshots",
        "/collections/c/snapshots",
        None,
    );
    run(
        "post",
        "/collections/{name}/snapshots",
        "/collections/nope/snapshots",
        None,
    );
    run(
        "post",
        "/collections/{name}/snapshots/{snapshot}/verify",
        &format!("{one}/verify"),
        None,
    );
    run(
        "post",
        "/collections/{name}/snapshots/{snapshot}/restore",
        &format!("{one}/restore"),
        Some(json!({"name": "c_restored"})),
    );
    run(
        "post",
        "/collections/{name}/snapshots/{snapshot}/restore",
        &format!("{one}/restore"),
        Some(json!({"name": "c_restored"})),
    );
    run(
        "delete",
        "/collections/{name}/snapshots/{snapshot}",
        &one,
        None,
    );
    run(
        "delete",
        "/collections/{name}/snapshots/{snapshot}",
        &one,
        None,
    );
    run("delete", "/collections/{name}", "/collections/c", None);
}
