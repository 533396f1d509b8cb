//! TTL and retention end to end: `collection create --ttl`, `expires_at` / `ttl` in upsert
//! files, `collection info`, `delete --older-than`, and the refusals (issue 16, item 3).

use serde_json::Value;

use crate::db::{ok, run};
use crate::tiny_model;

fn code(data: &std::path::Path, args: &[&str]) -> (i32, String) {
    let out = run(data, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (out.status.code().unwrap_or(-1), err)
}

#[test]
fn points_expire_by_their_own_expiry_or_the_collection_default() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(
        &data,
        &[
            "collection",
            "create",
            "v",
            "--dim",
            "2",
            "--ttl",
            "created:1h",
        ],
    );
    let info: Value =
        serde_json::from_str(&ok(&data, &["--json", "collection", "info", "v"])).unwrap();
    assert_eq!(
        info["schema"]["ttl"],
        serde_json::json!({"field": "created", "seconds": 3600})
    );
    let now = chrono_now();
    let file = dir.path().join("p.jsonl");
    std::fs::write(
        &file,
        [
            // Own expiry in the past: never visible.
            r#"{"id":1,"vector":[1,0],"expires_at":"2000-01-01T00:00:00Z"}"#.to_string(),
            // Own ttl: an hour from now.
            r#"{"id":2,"vector":[1,0],"ttl":3600}"#.to_string(),
            // Default: created long ago + 1 h, expired.
            r#"{"id":3,"vector":[1,0],"payload":{"created":"2000-01-01T00:00:00Z"}}"#.to_string(),
            // Default: created now + 1 h.
            format!(r#"{{"id":4,"vector":[1,0],"payload":{{"created":"{now}"}}}}"#),
            // Own expiry wins over an expired default.
            r#"{"id":5,"vector":[1,0],"payload":{"created":"2000-01-01T00:00:00Z"},"expires_at":"2999-01-01T00:00:00Z"}"#.to_string(),
        ]
        .join("\n"),
    )
    .unwrap();
    ok(&data, &["upsert", "v", "--file", file.to_str().unwrap()]);
    assert_eq!(ok(&data, &["count", "v"]).trim(), "3");
    let got = ok(&data, &["--json", "get", "v", "1", "2", "3", "4", "5"]);
    let ids: Vec<u64> = serde_json::from_str::<Value>(&got)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [2, 4, 5]);
    let hits = ok(
        &data,
        &["--json", "search", "v", "--vector", "[1,0]", "--k", "10"],
    );
    assert!(
        !hits.contains("\"id\":1") && !hits.contains("\"id\":3"),
        "{hits}"
    );
    let text = ok(&data, &["collection", "info", "v"]);
    assert!(
        text.contains("default ttl: 3600 s after payload field created"),
        "{text}"
    );
    assert!(
        text.contains("3 live, 2 deleted (of which 2 expired)"),
        "{text}"
    );
    // Bad input is refused naming the flag or field, never accepted and ignored.
    let (c, e) = code(
        &data,
        &[
            "collection",
            "create",
            "w",
            "--dim",
            "2",
            "--ttl",
            "created",
        ],
    );
    assert_eq!(c, 2);
    assert!(e.contains("--ttl") && e.contains("FIELD:DURATION"), "{e}");
    let (c, e) = code(
        &data,
        &[
            "collection",
            "create",
            "w",
            "--dim",
            "2",
            "--ttl",
            "created:3w",
        ],
    );
    assert_eq!(c, 2);
    assert!(e.contains("not a duration"), "{e}");
    std::fs::write(&file, r#"{"id":9,"vector":[1,0],"ttl":"soon"}"#).unwrap();
    let (c, e) = code(&data, &["upsert", "v", "--file", file.to_str().unwrap()]);
    assert_eq!(c, 2);
    assert!(e.contains("\"ttl\" must be whole seconds"), "{e}");
}

/// Today as RFC 3339 (whole seconds), from the system clock.
fn chrono_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    sextant_core::format_rfc3339(secs)
}

#[test]
fn delete_older_than_removes_whole_documents_and_refuses_nonsense() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let corpus = dir.path().join("c.jsonl");
    std::fs::write(
        &corpus,
        r#"{"_id":"a","title":"A","text":"Alpha beta gamma. Delta epsilon zeta. Eta theta iota."}
{"_id":"b","title":"B","text":"Kappa lambda mu."}"#,
    )
    .unwrap();
    let model = tiny_model();
    let c = corpus.to_str().unwrap();
    ok(
        &data,
        &[
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
    let chunks: u64 = ok(&data, &["count", "kb"]).trim().parse().unwrap();
    // Nothing is a day old.
    let r: Value = serde_json::from_str(&ok(
        &data,
        &["--json", "delete", "kb", "--older-than", "1d"],
    ))
    .unwrap();
    assert_eq!(
        (r["deleted"].as_u64(), r["documents"].as_u64()),
        (Some(0), Some(0))
    );
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r: Value = serde_json::from_str(&ok(
        &data,
        &["--json", "delete", "kb", "--older-than", "1s"],
    ))
    .unwrap();
    assert_eq!(r["documents"], 2);
    assert_eq!(r["deleted"].as_u64(), Some(chunks));
    assert!(r["cutoff"].as_str().unwrap().ends_with('Z'));
    assert_eq!(ok(&data, &["count", "kb"]).trim(), "0");
    let text = ok(&data, &["delete", "kb", "--older-than", "45s"]);
    assert!(
        text.starts_with("deleted 0 documents (0 points) ingested before 20"),
        "{text}"
    );
    // Refusals: a bad duration names the flag; conflicting flags; a vector collection.
    for bad in ["30", "3w", "-1d", "1.5h", "0d", "d"] {
        let flag = format!("--older-than={bad}");
        let (c, e) = code(&data, &["delete", "kb", &flag]);
        assert_eq!(c, 2, "{bad}");
        assert!(
            e.contains("--older-than") && e.contains("not a duration"),
            "{bad}: {e}"
        );
    }
    let (c, e) = code(&data, &["delete", "kb", "a#0", "--older-than", "1d"]);
    assert_eq!(c, 2);
    assert!(e.contains("cannot be used with"), "{e}");
    let (c, e) = code(
        &data,
        &["delete", "kb", "--filter", "{}", "--older-than", "1d"],
    );
    assert_eq!(c, 2);
    assert!(e.contains("cannot be used with"), "{e}");
    ok(&data, &["collection", "create", "v", "--dim", "2"]);
    let (c, e) = code(&data, &["delete", "v", "--older-than", "1d"]);
    assert_eq!(c, 2);
    assert!(e.contains("not a document collection"), "{e}");
    let help = ok(&data, &["delete", "--help"]);
    assert!(help.contains("--older-than <DURATION>"), "{help}");
}
