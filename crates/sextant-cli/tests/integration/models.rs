//! Where a collection's model is stored: a `--model` directory given relative to the working
//! directory at ingest still loads for a query run from another directory.

use std::path::Path;
use std::process::{Command, Output};

use crate::tiny_model;

fn sextant_in(cwd: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sextant"))
        .current_dir(cwd)
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("sextant runs")
}

fn ok_in(cwd: &Path, data: &Path, args: &[&str]) -> String {
    let out = sextant_in(cwd, data, args);
    assert!(
        out.status.success(),
        "{args:?} in {} failed: {}",
        cwd.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Regression (issue 14): the model path was stored as given, so `--model models/x` at ingest
/// broke every later search run from another directory.
#[test]
fn a_relative_model_path_stored_at_ingest_works_from_another_directory() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let model = project.join("models").join("tiny");
    std::fs::create_dir_all(&model).unwrap();
    for entry in std::fs::read_dir(tiny_model()).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), model.join(entry.file_name())).unwrap();
    }
    let elsewhere = dir.path().join("elsewhere");
    std::fs::create_dir_all(&elsewhere).unwrap();
    let data = dir.path().join("data");
    let corpus = dir.path().join("corpus.jsonl");
    std::fs::write(
        &corpus,
        r#"{"_id": "d1", "text": "A falcon is a bird of prey."}
{"_id": "d2", "text": "A trout is a freshwater fish."}"#,
    )
    .unwrap();
    ok_in(
        &project,
        &data,
        &[
            "ingest",
            "kb",
            "--jsonl",
            corpus.to_str().unwrap(),
            "--model",
            "models/tiny",
        ],
    );
    let hits = ok_in(
        &elsewhere,
        &data,
        &["--json", "search", "kb", "--text", "falcon", "--k", "2"],
    );
    assert!(hits.contains("d1") || hits.contains("d2"), "{hits}");
    // The identity on disk names the canonical directory, not the relative path.
    let canonical = std::fs::canonicalize(&model).unwrap();
    let mut found = false;
    for entry in walk(&data) {
        let text = std::fs::read(&entry).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        if text.contains("\"fingerprint\"") && text.contains("\"path\"") {
            assert!(!text.contains("\"models/tiny\""), "{}", entry.display());
            found |= text.contains(canonical.to_str().unwrap());
        }
    }
    assert!(found, "no stored identity names {}", canonical.display());
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
