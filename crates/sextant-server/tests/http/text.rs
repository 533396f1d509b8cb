//! Documents, text query, ask, embed and the OpenAI-compatible routes, with the real
//! all-MiniLM-L6-v2 model (`scripts/setup-models.sh` fetches it).

use serde_json::{json, Value};

use crate::common::{assert_error, config, raw, start_with, TestServer};

fn model_dir() -> String {
    let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/all-MiniLM-L6-v2");
    assert!(
        d.join("config.json").is_file(),
        "run scripts/setup-models.sh first"
    );
    d.canonicalize().unwrap().display().to_string()
}

fn server() -> TestServer {
    let mut c = config(false);
    c.models.insert("minilm".into(), model_dir());
    c.default_model = "minilm".into();
    c.limits.max_upload_bytes = 256 * 1024;
    start_with(c)
}

const DOCS: &str = concat!(
    r#"{"id": "cats", "title": "Cats", "text": "Cats are small carnivorous mammals. Domestic cats purr and chase mice.", "lang": "en"}"#,
    "\n",
    r#"{"id": "rust", "title": "Rust", "text": "Rust is a systems programming language focused on memory safety without a garbage collector.", "lang": "en"}"#,
    "\n",
    r#"{"id": "bread", "title": "Bread", "text": "Bread is baked from flour, water and yeast; sourdough uses a fermented starter.", "lang": "en"}"#,
    "\n",
);

fn jsonl(t: &TestServer, path: &str, body: &str) -> (u16, Value, String) {
    raw(
        "POST",
        &t.url(path),
        None,
        "application/x-ndjson",
        body.as_bytes(),
    )
}

fn top_doc(v: &Value) -> String {
    v["documents"][0]["doc_id"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

#[test]
fn ingest_query_ask_delete() {
    let t = server();
    let (st, r, text) = jsonl(&t, "/collections/docs/documents?no_splade=true", DOCS);
    assert_eq!(st, 200, "{text}");
    assert_eq!(r["documents"], 3);
    let (_, again, _) = jsonl(&t, "/collections/docs/documents", DOCS);
    assert_eq!(again["unchanged"], 3, "{again}");

    for mode in ["bm25", "dense", "hybrid"] {
        let q = t.ok(
            "POST",
            "/collections/docs/query",
            None,
            Some(json!({"text": "garbage collector memory safety", "mode": mode, "k": 3})),
        );
        assert_eq!(top_doc(&q), "rust", "{mode}: {q}");
        let chunk = &q["documents"][0]["chunks"][0];
        assert!(chunk["payload"]["text"].as_str().unwrap().contains("Rust"));
        assert!(chunk["payload"]["start"].is_number() && chunk["payload"]["end"].is_number());
    }
    let q = t.ok(
        "POST",
        "/collections/docs/query",
        None,
        Some(
            json!({"text": "purring pets", "mode": "hybrid", "fusion": "rrf", "mmr": 0.5, "k": 2}),
        ),
    );
    assert_eq!(top_doc(&q), "cats", "{q}");
    // The dense source's HNSW walk and exact search, taken and answering alike here.
    for extra in [json!({"ef": 16}), json!({"exact": true})] {
        let mut body = json!({"text": "garbage collector memory safety", "mode": "dense", "k": 3});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let q = t.ok("POST", "/collections/docs/query", None, Some(body));
        assert_eq!(top_doc(&q), "rust", "{extra}: {q}");
    }
    let filtered = t.ok("POST", "/collections/docs/query", None, Some(json!({"text": "language", "mode": "bm25", "filter": {"must": [{"key": "doc_id", "match": {"value": "bread"}}]}})));
    assert!(
        filtered["documents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["doc_id"] == "bread"),
        "{filtered}"
    );
    // A rerank blended at w 0 keeps the first stage's order; each head chunk carries the
    // reranker's score.
    let body = json!({"text": "garbage collector memory safety", "mode": "hybrid", "k": 3});
    let plain = t.ok("POST", "/collections/docs/query", None, Some(body.clone()));
    let mut blended = body.clone();
    blended["rerank"] = json!("maxsim");
    blended["rerank_blend"] = json!(0.0);
    let b = t.ok("POST", "/collections/docs/query", None, Some(blended));
    let docs = |v: &Value| -> Vec<Value> {
        v["documents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["doc_id"].clone())
            .collect()
    };
    assert_eq!(docs(&b), docs(&plain), "{b}");
    assert!(
        b["documents"][0]["chunks"][0]["rerank_score"].is_number(),
        "{b}"
    );
    // Refusals name the field.
    for (body, field) in [
        (json!({"text": "x", "rerank_blend": 0.3}), "rerank_blend"),
        (
            json!({"text": "x", "rerank": "maxsim", "rerank_blend": 1.5}),
            "rerank_blend",
        ),
        (json!({"text": "x", "mode": "telepathy"}), "mode"),
        (
            json!({"text": "x", "mode": "bm25", "fusion": "rrf"}),
            "fusion",
        ),
        (json!({"text": "x", "mmr": 2.0}), "mmr"),
        (json!({"text": "x", "rerank": "/etc"}), "rerank"),
        (json!({"text": "x", "k": 0}), "k"),
        (json!({"text": "x", "group_size": 0}), "group_size"),
        (json!({"text": "x", "mode": "bm25", "ef": 16}), "ef"),
        (json!({"text": "x", "mode": "bm25", "exact": true}), "exact"),
        (
            json!({"text": "x", "mode": "dense", "ef": 16, "exact": true}),
            "ef",
        ),
        (json!({"text": "x", "mode": "dense", "ef": 0}), "ef"),
    ] {
        let (st, v) = t.call("POST", "/collections/docs/query", None, Some(body.clone()));
        assert_eq!(st, 400, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
    // Ask: cited context, numbered passages.
    let a = t.ok(
        "POST",
        "/collections/docs/ask",
        None,
        Some(json!({"question": "How is sourdough bread made?", "k": 3})),
    );
    let passages = a["context"]["passages"].as_array().unwrap();
    assert!(!passages.is_empty());
    assert_eq!(passages[0]["citation"], 1);
    assert_eq!(passages[0]["doc_id"], "bread", "{a}");
    assert!(a["answer"].is_null());
    assert_error(
        &t.call(
            "POST",
            "/collections/docs/ask",
            None,
            Some(json!({"question": "q", "answer": true})),
        ),
        400,
        "invalid_input",
        "llm.endpoint",
    );
    let ask = t.ok(
        "POST",
        "/collections/docs/ask",
        None,
        Some(json!({"question": "How is sourdough bread made?", "k": 3, "rerank": "maxsim", "rerank_blend": 0.5})),
    );
    assert_eq!(ask["context"]["passages"][0]["doc_id"], "bread", "{ask}");
    assert_error(
        &t.call(
            "POST",
            "/collections/docs/ask",
            None,
            Some(json!({"question": "q", "rerank_blend": 0.5})),
        ),
        400,
        "invalid_input",
        "rerank_blend",
    );
    // Delete documents by age: none is a day old; a bad age names the field.
    let d = t.ok(
        "DELETE",
        "/collections/docs/documents?older_than=1d",
        None,
        None,
    );
    assert_eq!(
        (
            d["deleted_documents"].as_u64(),
            d["deleted_chunks"].as_u64()
        ),
        (Some(0), Some(0)),
        "{d}"
    );
    assert!(d["cutoff"].as_str().unwrap().ends_with('Z'), "{d}");
    for bad in ["3w", "0d", "1.5h"] {
        let r = t.call(
            "DELETE",
            &format!("/collections/docs/documents?older_than={bad}"),
            None,
            None,
        );
        assert_error(&r, 400, "invalid_input", "not a duration");
        assert_eq!(r.1["error"]["field"], "older_than", "{}", r.1);
    }
    let r = t.call("DELETE", "/collections/docs/documents", None, None);
    assert_eq!(r.0, 400, "{}", r.1);
    // Delete a document: gone from queries; deleting again is 404.
    let d = t.ok("DELETE", "/collections/docs/documents/rust", None, None);
    assert!(d["deleted_chunks"].as_u64().unwrap() >= 1);
    let q = t.ok(
        "POST",
        "/collections/docs/query",
        None,
        Some(json!({"text": "garbage collector memory safety", "mode": "bm25"})),
    );
    assert!(
        q["documents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["doc_id"] != "rust"),
        "{q}"
    );
    assert_error(
        &t.call("DELETE", "/collections/docs/documents/rust", None, None),
        404,
        "not_found",
        "rust",
    );
    // Text routes on a vector collection, bad documents.
    t.ok(
        "POST",
        "/collections",
        None,
        Some(json!({"name": "vec", "dim": 3})),
    );
    let (st, v) = t.call(
        "POST",
        "/collections/vec/query",
        None,
        Some(json!({"text": "x"})),
    );
    assert!((400..500).contains(&st), "{v}");
    let (st, v, _) = jsonl(
        &t,
        "/collections/docs/documents",
        "{\"id\": \"x\"}\nnot json\n",
    );
    assert_eq!(st, 400, "{v}");
    let (st, v, _) = jsonl(&t, "/collections/docs/documents?model=/etc", DOCS);
    assert_eq!(
        (st, v["error"]["field"].clone()),
        (400, json!("model")),
        "{v}"
    );
    let (st, v, _) = raw(
        "POST",
        &t.url("/collections/docs/documents"),
        None,
        "text/csv",
        b"a,b",
    );
    assert_eq!(st, 415, "{v}");
}

/// A query adapter attached over HTTP maps the dense source's query (here `-I`: the farthest
/// document comes first), is named by `explain`, empties the query cache, and detaching
/// restores the model's own embedding; a non-square map and another model's are refused.
#[test]
fn an_adapter_attached_over_http_maps_dense_queries() {
    let t = server();
    let (st, _, text) = jsonl(&t, "/collections/docs/documents?no_splade=true", DOCS);
    assert_eq!(st, 200, "{text}");
    let q = json!({"text": "garbage collector memory safety", "mode": "dense", "k": 3, "explain": true});
    let before = t.ok("POST", "/collections/docs/query", None, Some(q.clone()));
    assert_eq!(top_doc(&before), "rust");
    assert!(
        before["explain"]["sources"][0]["adapter"].is_null(),
        "{before}"
    );
    assert_eq!(
        t.ok("GET", "/collections/docs/adapter", None, None)["adapters"],
        json!([])
    );
    let info = t.ok("GET", "/collections/docs", None, None);
    let model = info["schema"]["spaces"][0]["model"].clone();
    let dim = info["schema"]["spaces"][0]["dim"].as_u64().unwrap() as usize;
    let negate: Vec<f32> = (0..dim * dim)
        .map(|i| if i % (dim + 1) == 0 { -1.0 } else { 0.0 })
        .collect();
    let attached = t.ok(
        "PUT",
        "/collections/docs/adapter",
        None,
        Some(json!({"model": model, "weights": negate, "card": {"note": "negation"}})),
    );
    let fingerprint = attached["fingerprint"].as_str().unwrap().to_string();
    let after = t.ok("POST", "/collections/docs/query", None, Some(q.clone()));
    assert_ne!(top_doc(&after), "rust", "{after}");
    assert_eq!(
        after["explain"]["sources"][0]["adapter"],
        fingerprint.as_str()
    );
    let shown = t.ok("GET", "/collections/docs/adapter", None, None);
    assert_eq!(shown["adapters"][0]["fingerprint"], fingerprint.as_str());
    // Per request: the model's own embedding.
    let mut off = q.clone();
    off["adapter"] = json!(false);
    assert_eq!(
        top_doc(&t.ok("POST", "/collections/docs/query", None, Some(off))),
        "rust"
    );
    let mut bm25 = q.clone();
    bm25["mode"] = json!("bm25");
    bm25["adapter"] = json!(false);
    let (st, v) = t.call("POST", "/collections/docs/query", None, Some(bm25));
    assert_eq!(
        (st, v["error"]["field"].clone()),
        (400, json!("adapter")),
        "{v}"
    );
    // Refused: not a square, another model.
    let (st, v) = t.call(
        "PUT",
        "/collections/docs/adapter",
        None,
        Some(json!({"model": model, "weights": [1.0, 0.0, 0.0]})),
    );
    assert_eq!(
        (st, v["error"]["field"].clone()),
        (400, json!("weights")),
        "{v}"
    );
    assert_error(
        &t.call(
            "PUT",
            "/collections/docs/adapter",
            None,
            Some(json!({"model": {"path": "/elsewhere"}, "weights": [1.0]})),
        ),
        409,
        "conflict",
        "trained for model",
    );
    // Detached: back to the model's own query embedding, cache or not.
    let removed = t.ok("DELETE", "/collections/docs/adapter", None, None);
    assert_eq!(removed["removed"], true);
    let back = t.ok("POST", "/collections/docs/query", None, Some(q));
    assert_eq!(top_doc(&back), "rust", "{back}");
    assert!(back["explain"]["sources"][0]["adapter"].is_null(), "{back}");
}

#[test]
fn streamed_and_uploaded_documents_and_upload_limit() {
    let t = server();
    // A JSONL body far larger than the JSON body limit streams through when under the upload
    // limit.
    let mut body = String::new();
    for i in 0..300 {
        body.push_str(&json!({"id": format!("d{i}"), "text": format!("Document number {i} talks about topic {} at some length so that it has a few words.", i % 7)}).to_string());
        body.push('\n');
    }
    assert!(body.len() > 30_000);
    let (st, r, text) = jsonl(
        &t,
        "/collections/many/documents?no_splade=true&chunking=sentences",
        &body,
    );
    assert_eq!(st, 200, "{text}");
    assert_eq!(r["documents"], 300);
    // Over the upload limit: refused, nothing half-acknowledged is reported as done.
    let big = body.repeat(10);
    let (st, v, _) = jsonl(&t, "/collections/big/documents?no_splade=true", &big);
    assert!(st == 413 || st == 400, "{st} {v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("limit"),
        "{v}"
    );
    // Files as multipart/form-data.
    let boundary = "sxtboundary42";
    let mut mp = Vec::new();
    for (name, content) in [
        (
            "guide.md",
            "# Guide\n\nHow to brew coffee with a French press.",
        ),
        ("notes.txt", "Tea leaves steep for three minutes."),
    ] {
        mp.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: text/plain\r\n\r\n{content}\r\n").as_bytes());
    }
    mp.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let (st, r, text) = raw(
        "POST",
        &t.url("/collections/files/documents?no_splade=true"),
        None,
        &format!("multipart/form-data; boundary={boundary}"),
        &mp,
    );
    assert_eq!(st, 200, "{text}");
    assert_eq!(r["documents"], 2);
    let q = t.ok(
        "POST",
        "/collections/files/query",
        None,
        Some(json!({"text": "coffee", "mode": "bm25"})),
    );
    assert_eq!(top_doc(&q), "guide.md", "{q}");
}

#[test]
fn embed_and_openai_compatible_routes() {
    let t = server();
    let e = t.ok(
        "POST",
        "/embed",
        None,
        Some(json!({"texts": ["hello world", "good night"], "model": "minilm"})),
    );
    assert_eq!(e["dim"], 384);
    let v0: Vec<f64> = e["embeddings"][0]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert!((v0.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-3);
    let m = t.ok("GET", "/v1/models", None, None);
    assert!(
        m["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["id"] == "minilm"),
        "{m}"
    );
    let f = t.ok(
        "POST",
        "/v1/embeddings",
        None,
        Some(json!({"input": "hello world", "model": "minilm"})),
    );
    assert_eq!(f["object"], "list");
    assert_eq!(f["data"][0]["index"], 0);
    let floats: Vec<f64> = f["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(floats.len(), 384);
    for (a, b) in floats.iter().zip(&v0) {
        assert!((a - b).abs() < 1e-5);
    }
    assert!(f["usage"]["prompt_tokens"].as_u64().unwrap() >= 2);
    let short = t.ok(
        "POST",
        "/v1/embeddings",
        None,
        Some(json!({"input": ["hello world", "b"], "model": "minilm", "dimensions": 64})),
    );
    let s0: Vec<f64> = short["data"][0]["embedding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    assert_eq!(s0.len(), 64);
    assert!(
        (s0.iter().map(|x| x * x).sum::<f64>() - 1.0).abs() < 1e-3,
        "Matryoshka truncation re-normalises"
    );
    let b64 = t.ok(
        "POST",
        "/v1/embeddings",
        None,
        Some(json!({"input": ["hello world"], "model": "minilm", "encoding_format": "base64"})),
    );
    assert!(b64["data"][0]["embedding"].is_string());
    let decoded = decode_base64(b64["data"][0]["embedding"].as_str().unwrap());
    let back: Vec<f32> = decoded
        .chunks(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    assert_eq!(back.len(), 384);
    for (a, b) in back.iter().zip(&v0) {
        assert!((f64::from(*a) - b).abs() < 1e-5);
    }
    for (body, status, field) in [
        (json!({"input": "x", "model": "gpt-9"}), 404, "model"),
        (json!({"input": [], "model": "minilm"}), 400, "input"),
        (
            json!({"input": [[1, 2, 3]], "model": "minilm"}),
            400,
            "input",
        ),
        (
            json!({"input": "x", "model": "minilm", "encoding_format": "hex"}),
            400,
            "encoding_format",
        ),
        (
            json!({"input": "x", "model": "minilm", "dimensions": 0}),
            400,
            "dimensions",
        ),
        (
            json!({"input": "x", "model": "minilm", "dimensions": 10000}),
            400,
            "dimensions",
        ),
    ] {
        let (st, v) = t.call("POST", "/v1/embeddings", None, Some(body.clone()));
        assert_eq!(st, status, "{body}: {v}");
        assert_eq!(v["error"]["field"], field, "{body}: {v}");
    }
}

fn decode_base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => panic!("not base64: {c}"),
    };
    let mut out = Vec::new();
    for chunk in s.as_bytes().chunks(4) {
        let pad = chunk.iter().filter(|&&c| c == b'=').count();
        let n = chunk
            .iter()
            .filter(|&&c| c != b'=')
            .fold(0u32, |n, &c| (n << 6) | u32::from(val(c)))
            << (6 * pad);
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    out
}

#[test]
fn document_routes_keep_tenants_apart() {
    let mut c = config(true);
    c.models.insert("minilm".into(), model_dir());
    c.default_model = "minilm".into();
    let t = start_with(c);
    let admin = t.key("admin", None, None);
    let post = |key: &str, path: &str, body: &str| {
        let resp = ureq::post(&t.url(path))
            .set("Authorization", &format!("Bearer {key}"))
            .set("Content-Type", "application/x-ndjson")
            .send_bytes(body.as_bytes());
        match resp {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(s, r)) => (s, r.into_string().unwrap()),
            Err(e) => panic!("{e}"),
        }
    };
    let doc = |id: &str, text: &str| format!("{}\n", json!({"id": id, "text": text}));
    let (st, body) = post(
        &admin,
        "/collections/mt/documents?tenant_key=org&tenant=a&no_splade=true",
        &doc(
            "shared",
            "Alpha tenant secret: the vault code is lighthouse.",
        ),
    );
    assert_eq!(st, 200, "{body}");
    let (st, body) = post(
        &admin,
        "/collections/mt/documents?tenant=b",
        &doc("shared", "Beta tenant secret: the vault code is submarine."),
    );
    assert_eq!(st, 200, "{body}");
    let ka = t.key("write", None, Some(json!("a")));
    // Query and ask see only tenant a, whatever the request says.
    for mode in ["bm25", "dense", "hybrid"] {
        let q = t.ok(
            "POST",
            "/collections/mt/query",
            Some(&ka),
            Some(json!({"text": "vault code submarine", "mode": mode})),
        );
        let text = q.to_string();
        assert!(
            !text.contains("submarine") || text.matches("submarine").count() == 0,
            "{mode} leaked tenant b: {q}"
        );
        assert!(text.contains("lighthouse"), "{mode}: {q}");
    }
    let a = t.ok(
        "POST",
        "/collections/mt/ask",
        Some(&ka),
        Some(json!({"question": "What is the vault code?"})),
    );
    assert!(!a.to_string().contains("submarine"), "{a}");
    for body in [
        json!({"text": "vault", "tenant": "b"}),
        json!({"text": "vault", "all_tenants": true}),
    ] {
        assert_eq!(
            t.call("POST", "/collections/mt/query", Some(&ka), Some(body))
                .0,
            403
        );
    }
    assert_eq!(
        t.call(
            "POST",
            "/collections/mt/ask",
            Some(&ka),
            Some(json!({"question": "q", "tenant": "b"}))
        )
        .0,
        403
    );
    // Ingest with the tenant key lands in tenant a; naming tenant b is refused.
    let (st, body) = post(
        &ka,
        "/collections/mt/documents",
        &doc("new", "Alpha adds a note about lighthouses."),
    );
    assert_eq!(st, 200, "{body}");
    assert_eq!(
        post(&ka, "/collections/mt/documents?tenant=b", &doc("x", "y")).0,
        403
    );
    let count_b = t.ok(
        "POST",
        "/collections/mt/points/count",
        Some(&admin),
        Some(json!({"tenant": "b"})),
    )["count"]
        .clone();
    assert_eq!(count_b, 1);
    // Deleting "shared" with tenant a's key removes only tenant a's document.
    t.ok(
        "DELETE",
        "/collections/mt/documents/shared",
        Some(&ka),
        None,
    );
    assert_eq!(
        t.ok(
            "POST",
            "/collections/mt/points/count",
            Some(&admin),
            Some(json!({"tenant": "b"}))
        )["count"],
        1
    );
    let qb = t.ok(
        "POST",
        "/collections/mt/query",
        Some(&admin),
        Some(json!({"text": "vault code", "mode": "bm25", "tenant": "b"})),
    );
    assert!(qb.to_string().contains("submarine"));
    // A read key cannot ingest; a tenant key cannot create a collection.
    let kr = t.key("read", None, Some(json!("a")));
    assert_eq!(
        post(&kr, "/collections/mt/documents", &doc("z", "z")).0,
        403
    );
    assert_eq!(
        post(&ka, "/collections/fresh/documents", &doc("z", "z")).0,
        403
    );
}
