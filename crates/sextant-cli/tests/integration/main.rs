//! End-to-end tests of the `sextant` binary: real processes, real files, exit codes and the
//! messages users see.

#[cfg(feature = "embed")]
mod embed;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The random-weight BERT fixture of sextant-embed (loads as an embedder or a cross-encoder).
fn tiny_model() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sextant-embed/tests/fixtures/tiny-cross-encoder")
        .to_string_lossy()
        .into_owned()
}

/// The random-weight sentence-transformers fixture of sextant-embed (BERT, pooling, a Dense
/// projection to 8 dimensions).
#[cfg(feature = "embed")]
fn tiny_st() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sextant-embed/tests/fixtures/tiny-st")
        .to_string_lossy()
        .into_owned()
}

fn sextant(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(args)
        .output()
        .expect("sextant runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn write_fvecs(path: &Path, rows: &[Vec<f32>]) {
    let mut bytes = Vec::new();
    for r in rows {
        bytes.extend_from_slice(&(r.len() as i32).to_le_bytes());
        r.iter()
            .for_each(|v| bytes.extend_from_slice(&v.to_le_bytes()));
    }
    std::fs::write(path, bytes).unwrap();
}

/// A small grid-like data set: 600 base points and 30 queries in 4-d.
fn data(dir: &Path) -> (PathBuf, PathBuf) {
    let base: Vec<Vec<f32>> = (0..600)
        .map(|i| {
            vec![
                (i % 13) as f32,
                (i / 13 % 7) as f32,
                (i % 5) as f32 * 0.5,
                (i / 91) as f32,
            ]
        })
        .collect();
    let queries: Vec<Vec<f32>> = (0..30)
        .map(|i| vec![i as f32 * 0.4, 3.1, 1.0, (i % 6) as f32])
        .collect();
    let (b, q) = (dir.join("base.fvecs"), dir.join("queries.fvecs"));
    write_fvecs(&b, &base);
    write_fvecs(&q, &queries);
    (b, q)
}

fn ann_args<'a>(b: &'a str, q: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "bench",
        "ann",
        "--base",
        b,
        "--queries",
        q,
        "--metric",
        "l2",
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn bench_ann_reports_recall_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let (b, q) = data(dir.path());
    let json = dir.path().join("out.json");
    let (b, q, j) = (
        b.to_str().unwrap(),
        q.to_str().unwrap(),
        json.to_str().unwrap(),
    );
    let out = sextant(&ann_args(
        b,
        q,
        &["--ef", "8,200", "--k", "5", "--runs", "2", "--json", j],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("| ef | recall@5 | QPS |"), "{table}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["system"], "sextant");
    assert_eq!(report["params"]["quantization"], "sq8");
    assert_eq!(report["dataset"]["n_base"], 600);
    let results = report["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert!(
        results[1]["recall"].as_f64().unwrap() >= 0.99,
        "{results:?}"
    );
    assert_eq!(results[0]["qps_runs"].as_array().unwrap().len(), 2);
    assert!(report["build"]["cpu_s"].as_f64().unwrap() >= 0.0);
    assert!(report["memory_bytes"].as_u64().unwrap() > 600 * 4 * 4);
}

#[test]
fn bench_gt_output_is_accepted_as_ground_truth() {
    let dir = tempfile::tempdir().unwrap();
    let (b, q) = data(dir.path());
    let gt = dir.path().join("gt.ivecs");
    let (b, q, g) = (
        b.to_str().unwrap(),
        q.to_str().unwrap(),
        gt.to_str().unwrap(),
    );
    let out = sextant(&[
        "bench",
        "gt",
        "--base",
        b,
        "--queries",
        q,
        "--metric",
        "l2",
        "--k",
        "20",
        "--out",
        g,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&gt).unwrap().len(), 30 * 21 * 4);
    let out = sextant(&ann_args(
        b,
        q,
        &["--gt", g, "--ef", "300", "--quantization", "none"],
    ));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("| 300 | 1.0000 |"));
}

/// Each bad input fails with exit code 1 or 2 (usage), a message naming the problem, and no panic.
#[test]
fn bad_input_is_a_clear_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let (b, q) = data(dir.path());
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    write_fvecs(Path::new(&p("q3.fvecs")), &[vec![1.0, 2.0, 3.0]]);
    write_fvecs(Path::new(&p("nan.fvecs")), &[vec![1.0, f32::NAN, 0.0, 0.0]]);
    write_fvecs(
        Path::new(&p("inf.fvecs")),
        &[vec![1.0, 0.0, f32::INFINITY, 0.0]],
    );
    std::fs::write(p("empty.fvecs"), b"").unwrap();
    std::fs::write(p("short.fvecs"), [4u8, 0, 0, 0, 1, 2]).unwrap();
    std::fs::write(p("bad.ivecs"), [1u8, 0, 0, 0, 200, 0, 0, 0]).unwrap();
    let (b, q) = (
        b.to_str().unwrap().to_string(),
        q.to_str().unwrap().to_string(),
    );

    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["--queries".into(), p("q3.fvecs")],
            "dimension mismatch",
        ),
        (vec!["--queries".into(), p("nan.fvecs")], "NaN"),
        (vec!["--queries".into(), p("inf.fvecs")], "inf"),
        (vec!["--queries".into(), p("empty.fvecs")], "empty"),
        (
            vec!["--queries".into(), p("short.fvecs")],
            "whole number of rows",
        ),
        (
            vec!["--queries".into(), p("missing.fvecs")],
            "missing.fvecs",
        ),
        (vec!["--gt".into(), p("bad.ivecs")], "ground truth"),
        (vec!["--k".into(), "0".into()], "--k"),
        (
            vec!["--metric".into(), "chebyshev".into()],
            "unknown metric",
        ),
        (vec!["--ef".into(), "0".into()], "--ef"),
        (vec!["--m".into(), "1".into()], "outside 2..=128"),
        (
            vec![
                "--metric".into(),
                "l1".into(),
                "--quantization".into(),
                "sq8".into(),
            ],
            "sq8",
        ),
    ];
    for (extra, needle) in cases {
        // Later flags override the defaults below (clap keeps the last value).
        let mut args: Vec<String> = [
            "bench",
            "ann",
            "--base",
            &b,
            "--queries",
            &q,
            "--metric",
            "l2",
            "--ef",
            "10",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if extra[0] == "--queries" || extra[0] == "--metric" || extra[0] == "--ef" {
            let at = args.iter().position(|a| a == &extra[0]).unwrap();
            args.drain(at..at + 2);
        }
        args.extend(extra.iter().cloned());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = sextant(&refs);
        let err = stderr(&out);
        assert!(
            matches!(out.status.code(), Some(1 | 2)),
            "{extra:?}: {:?} {err}",
            out.status
        );
        assert!(
            err.contains(needle),
            "{extra:?}: expected {needle:?} in {err}"
        );
        assert!(!err.contains("panicked"), "{extra:?}: {err}");
    }
}

#[test]
fn help_documents_the_bench_interface() {
    let out = sextant(&["bench", "ann", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--base",
        "--queries",
        "--gt",
        "--metric",
        "--m",
        "--ef-construction",
        "--ef",
        "--k",
        "--threads",
        "--json",
        "--quantization",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[cfg(feature = "embed")]
mod adapter;
mod db;
mod docs;
mod encryption;
#[cfg(feature = "embed")]
mod eval;
#[cfg(feature = "embed")]
mod finetune;
mod guarantees;
#[cfg(feature = "embed")]
mod images;
#[cfg(feature = "embed")]
mod llm;
#[cfg(feature = "embed")]
mod models;
mod snapshot;
mod ttl;
