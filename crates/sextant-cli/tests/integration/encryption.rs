//! `sextant encryption …` and `collection create --encrypt` end to end: a key made by keygen,
//! an encrypted collection whose files hold none of the planted bytes, the key refused beside
//! the data, a missing or wrong key as exit 6, both rotations, an encrypted snapshot restored.

use std::path::Path;

use serde_json::Value;

use crate::db::{ok, run};

const SECRET: &str = "CLI-PLANTED-SECRET";

fn fails_with(data: &Path, args: &[&str], code: i32) -> String {
    let out = run(data, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn grep_dir(dir: &Path, needle: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if std::fs::read(&p)
                .unwrap()
                .windows(needle.len())
                .any(|w| w == needle)
            {
                found.push(p.display().to_string());
            }
        }
    }
    found
}

#[test]
fn encrypted_collections_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let key = dir.path().join("master.key");
    let key2 = dir.path().join("new.key");
    let k = key.to_str().unwrap();
    ok(&data, &["encryption", "keygen", "--out", k]);
    ok(
        &data,
        &["encryption", "keygen", "--out", key2.to_str().unwrap()],
    );
    fails_with(&data, &["encryption", "keygen", "--out", k], 4);
    // A key under the data directory is refused, as a flag and as a new file.
    std::fs::create_dir_all(&data).unwrap();
    std::fs::copy(&key, data.join("key")).unwrap();
    let inside = data.join("key");
    let err = fails_with(
        &data,
        &[
            "--master-key-file",
            inside.to_str().unwrap(),
            "collection",
            "list",
        ],
        2,
    );
    assert!(err.contains("inside the data directory"), "{err}");
    std::fs::remove_file(&inside).unwrap();
    // Without a key, --encrypt is refused by name and nothing is made.
    let err = fails_with(
        &data,
        &[
            "collection",
            "create",
            "c",
            "--dim",
            "3",
            "--metric",
            "l2",
            "--encrypt",
        ],
        6,
    );
    assert!(err.contains("master key"), "{err}");
    let with_key = |args: &[&str]| {
        let mut v = vec!["--master-key-file", k];
        v.extend_from_slice(args);
        v.iter().map(|s| s.to_string()).collect::<Vec<_>>()
    };
    let ok_k = |args: &[&str]| {
        let v = with_key(args);
        ok(&data, &v.iter().map(String::as_str).collect::<Vec<_>>())
    };
    ok_k(&[
        "collection",
        "create",
        "c",
        "--dim",
        "3",
        "--metric",
        "l2",
        "--encrypt",
    ]);
    let jsonl = dir.path().join("points.jsonl");
    let lines: Vec<String> = (0..60)
        .map(|i| {
            format!(
                r#"{{"id": {i}, "vector": [{i}.5, 2.0, 3.0], "payload": {{"s": "{SECRET}-{i}"}}}}"#
            )
        })
        .collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    ok_k(&["upsert", "c", "--file", jsonl.to_str().unwrap()]);
    ok_k(&["collection", "optimize", "c"]);
    ok_k(&["snapshot", "create", "c"]);
    assert!(grep_dir(&data, SECRET.as_bytes()).is_empty());
    let got: Value = serde_json::from_str(&ok_k(&["--json", "get", "c", "7"])).unwrap();
    assert_eq!(got[0]["payload"]["s"], format!("{SECRET}-7"));
    let status: Value = serde_json::from_str(&ok_k(&["--json", "encryption", "status"])).unwrap();
    assert_eq!(
        status["collections"][0]["encryption"]["current_generation"],
        1
    );
    // No key, or another one: exit 6, naming the problem.
    let err = fails_with(&data, &["count", "c"], 6);
    assert!(err.contains("encrypted"), "{err}");
    let err = fails_with(
        &data,
        &["--master-key-file", key2.to_str().unwrap(), "count", "c"],
        6,
    );
    assert!(err.contains("wrapped by master key"), "{err}");
    // Both rotations.
    ok_k(&["encryption", "rotate-data-key", "c"]);
    let status: Value =
        serde_json::from_str(&ok_k(&["--json", "encryption", "status", "c"])).unwrap();
    assert_eq!(
        status["collections"][0]["encryption"]["generations"],
        serde_json::json!([2])
    );
    ok_k(&[
        "encryption",
        "rotate-master-key",
        "--new-key-file",
        key2.to_str().unwrap(),
    ]);
    fails_with(
        &data,
        &with_key(&["count", "c"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        6,
    );
    let k2 = key2.to_str().unwrap();
    assert_eq!(
        ok(&data, &["--master-key-file", k2, "count", "c"]).trim(),
        "60"
    );
    // The snapshot taken under the first master key restores with it.
    let snaps: Value = serde_json::from_str(&ok_k(&["--json", "snapshot", "list"])).unwrap();
    let path = snaps["snapshots"][0]["path"].as_str().unwrap().to_string();
    ok_k(&["snapshot", "restore", &path, "back"]);
    assert_eq!(
        ok(&data, &["--master-key-file", k, "count", "back"]).trim(),
        "60"
    );
    // The environment variable gives the key too.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["--data", data.to_str().unwrap(), "count", "c"])
        .env(
            "SEXTANT_MASTER_KEY",
            std::fs::read_to_string(&key2).unwrap().trim(),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
