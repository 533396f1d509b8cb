//! `sextant ingest` and text search (`--text`, `--queries`, TREC runs) end to end, on the tiny
//! fixture model (no setup needed).

use std::path::PathBuf;

use crate::db::{ok, run};

fn tiny_model() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sextant-embed/tests/fixtures/tiny-cross-encoder")
        .to_string_lossy()
        .into_owned()
}

#[test]
fn ingest_is_idempotent_and_text_search_writes_trec_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let corpus = dir.path().join("corpus.jsonl");
    let docs = [
        (
            "d1",
            "Falcon",
            "A falcon is a bird of prey. It hunts small birds in flight.",
        ),
        (
            "d2",
            "Trout",
            "A trout is a freshwater fish. Anglers catch trout in rivers.",
        ),
        ("d3", "Oak", "The oak is a tree. Its fruit is the acorn."),
    ];
    let lines: Vec<String> = docs
        .iter()
        .map(|(id, t, x)| {
            serde_json::json!({"_id": id, "title": t, "text": x, "lang": "en"}).to_string()
        })
        .collect();
    std::fs::write(&corpus, lines.join("\n")).unwrap();
    let model = tiny_model();
    let c = corpus.to_str().unwrap();
    let first = ok(
        &data,
        &[
            "--json",
            "ingest",
            "kb",
            "--jsonl",
            c,
            "--model",
            &model,
            "--chunk-tokens",
            "8",
        ],
    );
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["documents"], 3);
    assert!(first["chunks"].as_u64().unwrap() >= 3);
    let again = ok(&data, &["--json", "ingest", "kb", "--jsonl", c]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        (again["documents"].clone(), again["unchanged"].clone()),
        (0.into(), 3.into())
    );
    // Changed document: its old chunks are replaced, the count of documents stays 3.
    std::fs::write(&corpus, lines[0].replace("bird of prey", "raptor")).unwrap();
    ok(&data, &["ingest", "kb", "--jsonl", c]);
    let f = r#"{"must":[{"key":"doc_id","match":{"value":"d1"}}]}"#;
    let n: u64 = ok(&data, &["count", "kb", "--filter", f])
        .trim()
        .parse()
        .unwrap();
    assert!(n >= 1);
    let texts = ok(
        &data,
        &[
            "--json",
            "scroll",
            "kb",
            "--filter",
            f,
            "--with-payload",
            "--limit",
            "50",
        ],
    );
    assert!(
        texts.contains("raptor") && !texts.contains("bird of prey"),
        "{texts}"
    );

    // BM25 finds the trout document; chunk payloads carry offsets into the text.
    let r = ok(
        &data,
        &[
            "--json",
            "search",
            "kb",
            "--text",
            "freshwater fish",
            "--mode",
            "bm25",
            "--k",
            "2",
        ],
    );
    let r: serde_json::Value = serde_json::from_str(&r).unwrap();
    assert_eq!(r[0]["hits"][0]["doc_id"], "d2", "{r}");
    let p = &r[0]["hits"][0]["payload"];
    let (start, end) = (
        p["start"].as_u64().unwrap() as usize,
        p["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&docs[1].2[start..end], p["text"].as_str().unwrap());

    // A batch of queries as a TREC run, for each mode; one line per document, ranks from 1.
    let queries = dir.path().join("queries.jsonl");
    std::fs::write(&queries, "{\"_id\": \"q1\", \"text\": \"acorn tree\"}\n{\"_id\": \"q2\", \"text\": \"trout river\"}\n").unwrap();
    for mode in ["dense", "bm25", "hybrid"] {
        let trec = dir.path().join(format!("{mode}.trec"));
        ok(
            &data,
            &[
                "search",
                "kb",
                "--queries",
                queries.to_str().unwrap(),
                "--mode",
                mode,
                "--fusion",
                "rrf",
                "--k",
                "3",
                "--run-out",
                trec.to_str().unwrap(),
            ],
        );
        let run = std::fs::read_to_string(&trec).unwrap();
        let lines: Vec<Vec<&str>> = run.lines().map(|l| l.split(' ').collect()).collect();
        assert!(lines.iter().all(|l| l.len() == 6 && l[1] == "Q0"), "{run}");
        // BM25 returns only documents sharing a word with the query; dense ranks them all.
        let q1 = lines.iter().filter(|l| l[0] == "q1").count();
        assert_eq!(q1, if mode == "bm25" { 1 } else { 3 }, "{mode}: {run}");
        let docs_q1: std::collections::HashSet<&str> = lines
            .iter()
            .filter(|l| l[0] == "q1")
            .map(|l| l[2])
            .collect();
        assert_eq!(docs_q1.len(), q1, "{mode}: one line per document");
        if mode != "dense" {
            assert_eq!(
                lines.iter().find(|l| l[0] == "q1" && l[3] == "1").unwrap()[2],
                "d3",
                "{mode}: {run}"
            );
        }
    }
    let out = run(&data, &["search", "kb", "--text", "x", "--mode", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown mode"));
}
