//! Evaluation and the model-upgrade job over HTTP, on the tiny fixture models: `eval` with a
//! second collection and a sweep, a reindex job followed to its end, and refusals (paths for
//! models, a target that exists, roles).

use serde_json::{json, Value};

use crate::common::{assert_error, config, raw, start_with, TestServer};

fn fixture(name: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sextant-embed/tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

fn server() -> TestServer {
    let mut c = config(false);
    c.models.insert("small".into(), fixture("tiny-st"));
    c.models.insert("clip".into(), fixture("tiny-clip"));
    c.models
        .insert("wide".into(), fixture("tiny-cross-encoder"));
    c.default_model = "small".into();
    start_with(c)
}

const DOCS: &str = concat!(
    r#"{"id": "d1", "title": "", "text": "The falcon hunts small birds over the marsh."}"#,
    "\n",
    r#"{"id": "d2", "title": "", "text": "A trout swims in the cold mountain river."}"#,
    "\n",
    r#"{"id": "d3", "title": "", "text": "The violin plays a slow melody at dusk."}"#,
    "\n",
);

fn eval_body() -> Value {
    json!({
        "queries": [{"id": "q1", "text": "falcon"}, {"id": "q2", "text": "trout river"},
                    {"id": "q3", "text": "violin melody"}],
        "qrels": {"q1": {"d1": 1}, "q2": {"d2": 2}, "q3": {"d3": 1}},
        "configs": ["dense"],
        "metrics": ["ndcg@10", "recall@2"],
        "permutations": 50
    })
}

#[test]
fn eval_and_a_reindex_job_over_http() {
    let t = server();
    let (st, v, _) = raw(
        "POST",
        &t.url("/collections/kb/documents"),
        None,
        "application/x-ndjson",
        DOCS.as_bytes(),
    );
    assert_eq!(st, 200, "{v}");

    // Evaluate: baselines plus `dense`; BM25 finds each query's document first.
    let r = t.ok("POST", "/collections/kb/eval", None, Some(eval_body()));
    let names: Vec<&str> = r["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["random", "bm25", "dense-exact", "dense"]);
    assert_eq!(r["configs"][1]["means"]["ndcg@10"], 1.0, "{r}");
    assert!(r["markdown"]
        .as_str()
        .unwrap()
        .starts_with("# Evaluation of `kb`"));

    // A model path is refused: remote callers name configured models.
    let mut body = eval_body();
    body["configs"] = json!([format!(
        "x=mode=dense;rerank={}",
        fixture("tiny-cross-encoder")
    )]);
    assert_error(
        &t.call("POST", "/collections/kb/eval", None, Some(body)),
        400,
        "invalid_input",
        "unknown model",
    );
    let mut body = eval_body();
    body["nonsense"] = json!(1);
    assert_error(
        &t.call("POST", "/collections/kb/eval", None, Some(body)),
        400,
        "invalid_input",
        "nonsense",
    );

    // Reindex into kb_wide with the other model, as a job.
    assert_error(
        &t.call(
            "POST",
            "/collections/kb/reindex",
            None,
            Some(json!({"model": fixture("tiny-cross-encoder"), "into": "kb_wide"})),
        ),
        400,
        "invalid_input",
        "unknown model",
    );
    let (st, job) = t.call(
        "POST",
        "/collections/kb/reindex",
        None,
        Some(json!({"model": "wide", "into": "kb_wide"})),
    );
    assert_eq!(st, 202, "{job}");
    let id = job["id"].as_u64().unwrap();
    let mut done = Value::Null;
    for _ in 0..600 {
        done = t.ok("GET", &format!("/jobs/{id}"), None, None);
        if done["state"] != "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(done["state"], "succeeded", "{done}");
    assert_eq!(done["done"], done["total"]);
    assert_eq!(done["result"]["stats"]["embedded"], 3, "{done}");
    assert_eq!(done["result"]["plan"]["estimate"]["new_dim"], 32);
    assert!(t.ok("GET", "/jobs", None, None)["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|j| j["id"] == id));
    assert_error(
        &t.call("GET", "/jobs/999", None, None),
        404,
        "not_found",
        "999",
    );

    // Again without resume: refused before a job starts; with resume: nothing to do.
    assert_error(
        &t.call(
            "POST",
            "/collections/kb/reindex",
            None,
            Some(json!({"model": "wide", "into": "kb_wide"})),
        ),
        409,
        "already_exists",
        "resume",
    );
    let (st, job) = t.call(
        "POST",
        "/collections/kb/reindex",
        None,
        Some(json!({"model": "wide", "into": "kb_wide", "resume": true})),
    );
    assert_eq!(st, 202, "{job}");
    let id = job["id"].as_u64().unwrap();
    for _ in 0..600 {
        done = t.ok("GET", &format!("/jobs/{id}"), None, None);
        if done["state"] != "running" {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(done["result"]["stats"]["embedded"], 0, "{done}");

    // Both side by side, with a fusion-weight sweep.
    let mut body = eval_body();
    body["compare"] = json!("kb_wide");
    body["no_baselines"] = json!(true);
    body["configs"] = json!(["bm25", "dense"]);
    body["sweep_weights"] = json!(2);
    let r = t.ok("POST", "/collections/kb/eval", None, Some(body));
    let names: Vec<&str> = r["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 10, "{names:?}");
    assert!(names.contains(&"dense@kb_wide") && names.contains(&"sweep-w0.50@kb_wide"));
    assert_eq!(
        r["configs"][0]["means"], r["configs"][5]["means"],
        "BM25 reads the same text in both"
    );
    assert!(r["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["reference"] == "dense" && c["config"] == "dense@kb_wide"));
    // The new collection answers queries; an alias switches readers to it.
    t.ok(
        "PUT",
        "/aliases/live",
        None,
        Some(json!({"collection": "kb_wide"})),
    );
    let q = t.ok(
        "POST",
        "/collections/live/query",
        None,
        Some(json!({"text": "falcon", "mode": "bm25"})),
    );
    assert_eq!(q["documents"][0]["doc_id"], "d1", "{q}");
}

/// Duplicate detection over HTTP: `?dedup=link` at creation, the report counts the copy, and a
/// query answers one document standing for both.
#[test]
fn ingest_with_dedup_over_http() {
    let t = server();
    let body = concat!(
        r#"{"id": "a", "title": "", "text": "The falcon hunts small birds over the marsh at dawn."}"#,
        "\n",
        r#"{"id": "b", "title": "", "text": "A trout swims in the cold mountain river."}"#,
        "\n",
        r#"{"id": "a2", "title": "", "text": "the FALCON hunts small birds, over the marsh at dawn!"}"#,
        "\n",
    );
    let (st, v, _) = raw(
        "POST",
        &t.url("/collections/dd/documents?dedup=link"),
        None,
        "application/x-ndjson",
        body.as_bytes(),
    );
    assert_eq!(st, 200, "{v}");
    assert_eq!(v["duplicates"], 1, "{v}");
    let q = t.ok(
        "POST",
        "/collections/dd/query",
        None,
        Some(json!({"text": "falcon marsh", "mode": "bm25", "k": 3})),
    );
    let docs = q["documents"].as_array().unwrap();
    assert_eq!(docs.len(), 1, "b does not match; a and a2 are one hit: {q}");
    assert_eq!(docs[0]["copies"].as_array().unwrap().len(), 1, "{q}");
    let payload = &docs[0]["chunks"][0]["payload"];
    assert!(
        payload.get("dedup_sig").is_none() && payload.get("dedup_keys").is_none(),
        "{payload}"
    );
    // Bad policies are refused by name.
    let (st, v, _) = raw(
        "POST",
        &t.url("/collections/dd2/documents?dedup=merge"),
        None,
        "application/x-ndjson",
        body.as_bytes(),
    );
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("dedup"),
        "{v}"
    );
}

/// Languages over HTTP: `?language=auto` at creation, `query_language`, `expand: rm3` and
/// `explain` in a query body; multi-query without a configured language model is refused.
#[test]
fn languages_explain_and_expansion_over_http() {
    let t = server();
    let body = concat!(
        r#"{"id": "fr", "text": "Les enfants jouaient dans les jardins publics de la ville pendant que leurs parents travaillaient dans les usines du quartier."}"#,
        "\n",
        r#"{"id": "de", "text": "Die Kinder spielten in den öffentlichen Gärten der Stadt, während ihre Eltern in den Fabriken des Viertels arbeiteten."}"#,
        "\n",
    );
    let (st, v, _) = raw(
        "POST",
        &t.url("/collections/ml/documents?language=auto"),
        None,
        "application/x-ndjson",
        body.as_bytes(),
    );
    assert_eq!(st, 200, "{v}");
    let q = t.ok(
        "POST",
        "/collections/ml/query",
        None,
        Some(
            json!({"text": "travailler", "mode": "bm25", "query_language": "fr",
                    "expand": "rm3", "rm3_docs": 1, "explain": true}),
        ),
    );
    assert_eq!(q["documents"][0]["doc_id"], "fr", "{q}");
    assert_eq!(
        q["documents"][0]["chunks"][0]["payload"]["language"], "fr",
        "{q}"
    );
    let bm25 = &q["explain"]["sources"][0];
    assert_eq!(bm25["language"]["source"], "given", "{q}");
    assert_eq!(bm25["language"]["language"], "french", "{q}");
    assert!(!bm25["expansion"].as_array().unwrap().is_empty(), "{q}");
    let plain = t.ok(
        "POST",
        "/collections/ml/query",
        None,
        Some(json!({"text": "Kinder", "mode": "bm25"})),
    );
    assert!(plain.get("explain").is_none(), "{plain}");
    for (body, field) in [
        (
            json!({"text": "x", "mode": "bm25", "expand": "multi-query"}),
            "expand",
        ),
        (
            json!({"text": "x", "mode": "bm25", "query_language": "klingon"}),
            "query_language",
        ),
        (
            json!({"text": "x", "mode": "bm25", "llm": {"url": "http://127.0.0.1:9"}}),
            "llm",
        ),
    ] {
        let (st, v, _) = raw(
            "POST",
            &t.url("/collections/ml/query"),
            None,
            "application/json",
            body.to_string().as_bytes(),
        );
        assert_eq!(st, 400, "{body}: {v}");
        assert!(v.to_string().contains(field), "{body}: {v}");
    }
}

#[test]
fn pictures_uploaded_and_searched_by_image_and_text_over_http() {
    let t = server();
    let boundary = "sxtpictures7";
    let names = [
        "rocket_640x427_444.jpg",
        "chelsea_300x200_q90.jpg",
        "grass_256_lossless.webp",
    ];
    let mut mp = Vec::new();
    for name in names {
        let bytes = std::fs::read(std::path::Path::new(&fixture("images")).join(name)).unwrap();
        mp.extend_from_slice(format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        mp.extend_from_slice(&bytes);
        mp.extend_from_slice(b"\r\n");
    }
    mp.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    let (st, r, text) = raw(
        "POST",
        &t.url("/collections/pics/documents?model=clip"),
        None,
        &format!("multipart/form-data; boundary={boundary}"),
        &mp,
    );
    assert_eq!(st, 200, "{text}");
    assert_eq!(r["documents"], 3, "{r}");
    let b64 = |name: &str| {
        let bytes = std::fs::read(std::path::Path::new(&fixture("images")).join(name)).unwrap();
        sextant_service::plan::image_base64(&bytes)
    };
    for name in names {
        let q = t.ok(
            "POST",
            "/collections/pics/query",
            None,
            Some(json!({"image": b64(name), "k": 3})),
        );
        assert_eq!(q["documents"][0]["doc_id"], name, "{q}");
        assert_eq!(
            q["documents"][0]["chunks"][0]["payload"]["media"], "image",
            "{q}"
        );
    }
    let q = t.ok(
        "POST",
        "/collections/pics/query",
        None,
        Some(json!({"text": "a rocket", "mode": "dense", "k": 3})),
    );
    assert_eq!(q["documents"].as_array().unwrap().len(), 3, "{q}");
    // A text collection, bad base64, both text and image, a mode other than dense: 400s
    // naming the field.
    let (st, v, _) = raw(
        "POST",
        &t.url("/collections/kb/documents"),
        None,
        "application/x-ndjson",
        DOCS.as_bytes(),
    );
    assert_eq!(st, 200, "{v}");
    for (coll, body, field) in [
        ("kb", json!({"image": b64(names[0])}), "image"),
        ("pics", json!({"image": "not base64 !!"}), "image"),
        (
            "pics",
            json!({"image": b64(names[0]), "text": "rocket"}),
            "text",
        ),
        (
            "pics",
            json!({"image": b64(names[0]), "mode": "hybrid"}),
            "mode",
        ),
    ] {
        let (st, v, _) = raw(
            "POST",
            &t.url(&format!("/collections/{coll}/query")),
            None,
            "application/json",
            body.to_string().as_bytes(),
        );
        assert_eq!(st, 400, "{coll} {field}: {v}");
        assert_eq!(v["error"]["field"], field, "{v}");
    }
}
