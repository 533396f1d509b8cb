//! `sextant snapshot create|list|verify|restore|delete` end to end: exit codes, what is printed,
//! and the collections a restore leaves (or, refused, does not leave).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::db::{ok, run};

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

/// Runs a command that must fail with `code`; returns its stderr.
fn fails_with(data: &Path, args: &[&str], code: i32) -> String {
    let out = run(data, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{args:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn upsert(data: &Path, dir: &Path, name: &str, ids: std::ops::Range<u32>) {
    let jsonl = dir.join(format!("{name}-{}.jsonl", ids.start));
    let lines: Vec<String> = ids
        .map(|i| {
            format!(
                r#"{{"id": {i}, "vector": [{}, {}, 1.5], "payload": {{"n": {i}}}}}"#,
                i as f32 * 0.25,
                (i % 7) as f32
            )
        })
        .collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    ok(data, &["upsert", name, "--file", jsonl.to_str().unwrap()]);
}

fn count(data: &Path, name: &str) -> u64 {
    ok(data, &["count", name]).trim().parse().unwrap()
}

fn collections(data: &Path) -> Vec<Value> {
    json(&ok(data, &["--json", "collection", "list"]))["collections"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn snapshot_subcommands_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(
        &data,
        &["collection", "create", "c", "--dim", "3", "--metric", "l2"],
    );
    upsert(&data, dir.path(), "c", 0..40);
    // A flushed segment, plus writes only in the WAL.
    ok(&data, &["collection", "optimize", "c"]);
    upsert(&data, dir.path(), "c", 40..60);

    let created = json(&ok(&data, &["--json", "snapshot", "create", "c"]));
    let snap = &created["snapshot"];
    assert_eq!(snap["collection"], "c");
    assert_eq!(snap["points"], 60);
    let path = PathBuf::from(snap["path"].as_str().unwrap());
    assert!(
        path.starts_with(data.join("snapshots").join("c")),
        "{path:?}"
    );
    let file = path.file_name().unwrap().to_str().unwrap().to_string();
    let path_s = path.to_str().unwrap();
    upsert(&data, dir.path(), "c", 100..110);
    assert_eq!(count(&data, "c"), 70);

    let listed = json(&ok(&data, &["--json", "snapshot", "list"]));
    let listed = listed["snapshots"].as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["snapshot"]["seq"], snap["seq"]);
    assert!(ok(&data, &["snapshot", "list", "c"]).contains(&file));
    assert!(ok(&data, &["snapshot", "list", "other"]).contains("no snapshots"));
    let verified = ok(&data, &["snapshot", "verify", &file]);
    assert!(
        verified.contains("verified") && verified.contains("60 points"),
        "{verified}"
    );

    // Onto the existing collection: refused without --replace (exit 4), and nothing changed.
    let err = fails_with(&data, &["snapshot", "restore", path_s], 4);
    assert!(err.contains("already"), "{err}");
    assert_eq!(count(&data, "c"), 70);
    // Into a new name: the collection at the snapshot.
    let out = ok(&data, &["snapshot", "restore", &file, "copy"]);
    assert!(
        out.contains("as collection \"copy\"") && out.contains("60 points"),
        "{out}"
    );
    assert_eq!(count(&data, "copy"), 60);
    let get = |name: &str| ok(&data, &["--json", "get", name, "7", "45", "--with-vector"]);
    assert_eq!(get("copy"), get("c"));
    let search = |name: &str| {
        json(&ok(
            &data,
            &[
                "--json",
                "search",
                name,
                "--vector",
                "[2, 3, 1.5]",
                "--k",
                "5",
            ],
        ))["hits"]
            .clone()
    };
    assert_eq!(search("copy"), search("c"));
    // Replacing: the later writes are gone.
    let out = ok(&data, &["snapshot", "restore", path_s, "--replace"]);
    assert!(out.contains("replacing"), "{out}");
    assert_eq!(count(&data, "c"), 60);

    // A flipped bit near the end (inside the last file) and a cut-off copy: refused with exit
    // code 2, naming the file, and no collection made.
    let bytes = std::fs::read(&path).unwrap();
    let bad = dir.path().join("bad.snapshot");
    let mut flipped = bytes.clone();
    let at = flipped.len() - 20;
    flipped[at] ^= 0x01;
    std::fs::write(&bad, &flipped).unwrap();
    let bad_s = bad.to_str().unwrap();
    let err = fails_with(&data, &["snapshot", "verify", bad_s], 2);
    assert!(
        err.contains("damaged") && err.contains("file segments/"),
        "{err}"
    );
    let err = fails_with(&data, &["snapshot", "restore", bad_s, "broken"], 2);
    assert!(err.contains("SHA-256"), "{err}");
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    let err = fails_with(&data, &["snapshot", "restore", bad_s, "broken"], 2);
    assert!(err.contains("truncated") && err.contains("file "), "{err}");
    assert_eq!(collections(&data), ["c", "copy"]);
    let err = fails_with(&data, &["snapshot", "verify", "no-such-snapshot"], 3);
    assert!(err.contains("does not exist"), "{err}");

    ok(&data, &["snapshot", "delete", &file]);
    assert!(!path.exists());
    let listed = json(&ok(&data, &["--json", "snapshot", "list"]));
    assert!(listed["snapshots"].as_array().unwrap().is_empty());
    // To a path of one's own, listed with --dir.
    let own = dir.path().join("mine.snapshot");
    ok(
        &data,
        &[
            "snapshot",
            "create",
            "copy",
            "--output",
            own.to_str().unwrap(),
        ],
    );
    std::fs::write(dir.path().join("junk.snapshot"), b"not a snapshot").unwrap();
    let listed = ok(
        &data,
        &["snapshot", "list", "--dir", dir.path().to_str().unwrap()],
    );
    assert!(
        listed.contains("mine.snapshot  collection \"copy\""),
        "{listed}"
    );
    // (A cut-off body does not show in a listing, which reads headers only.)
    assert!(
        listed.contains("bad.snapshot  collection \"c\""),
        "{listed}"
    );
    assert!(
        listed.contains("junk.snapshot  unreadable") && listed.contains("header"),
        "{listed}"
    );
    let err = fails_with(
        &data,
        &[
            "snapshot",
            "create",
            "copy",
            "--output",
            own.to_str().unwrap(),
        ],
        4,
    );
    assert!(err.contains("already exists"), "{err}");

    let help = ok(&data, &["snapshot", "--help"]);
    for sub in ["create", "list", "verify", "restore", "delete"] {
        assert!(help.contains(sub), "{help}");
    }
}

#[test]
fn backup_create_and_restore_into_an_empty_data_directory() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for c in ["a", "b"] {
        ok(
            &data,
            &["collection", "create", c, "--dim", "3", "--metric", "l2"],
        );
    }
    upsert(&data, dir.path(), "a", 0..40);
    ok(&data, &["collection", "optimize", "a"]);
    upsert(&data, dir.path(), "a", 40..50);
    upsert(&data, dir.path(), "b", 0..25);
    ok(&data, &["alias", "set", "live", "a"]);
    let backup = dir.path().join("bk");
    let made = json(&ok(
        &data,
        &["--json", "backup", "create", backup.to_str().unwrap()],
    ));
    assert_eq!(made["backup"]["collections"].as_array().unwrap().len(), 2);
    assert_eq!(made["backup"]["aliases"]["live"], "a");
    let err = fails_with(&data, &["backup", "create", backup.to_str().unwrap()], 2);
    assert!(err.contains("not an empty directory"), "{err}");

    let fresh = dir.path().join("fresh");
    let out = ok(&fresh, &["backup", "restore", backup.to_str().unwrap()]);
    assert!(
        out.contains("restored 2 collections and 1 aliases"),
        "{out}"
    );
    assert_eq!(count(&fresh, "a"), 50);
    assert_eq!(count(&fresh, "live"), 50);
    assert_eq!(count(&fresh, "b"), 25);
    for c in ["a", "b"] {
        let q = |d: &Path| ok(d, &["--json", "scroll", c, "--limit", "100"]);
        assert_eq!(q(&data), q(&fresh), "{c}");
    }
    // The names are taken now: refused, nothing changed.
    let err = fails_with(&fresh, &["backup", "restore", backup.to_str().unwrap()], 4);
    assert!(err.contains("\"a\""), "{err}");
    assert_eq!(count(&fresh, "a"), 50);
}
