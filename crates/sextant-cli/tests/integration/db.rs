//! The database commands end to end: create, upsert (JSONL and fvecs), search with filters and
//! tenants, count, scroll, get, delete, aliases, and bad input leaving collections unchanged.

use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

pub(crate) fn run(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sextant"))
        .arg("--data")
        .arg(data)
        .args(args)
        .output()
        .expect("sextant runs")
}

pub(crate) fn ok(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    assert!(!out.status.success(), "{args:?} should fail");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    err
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap()
}

#[test]
fn collection_lifecycle_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(
        &data,
        &[
            "collection",
            "create",
            "docs",
            "--dim",
            "3",
            "--metric",
            "l2",
            "--payload-index",
            "tag:keyword",
            "--tenant-key",
            "org",
        ],
    );
    let jsonl = dir.path().join("p.jsonl");
    let lines: Vec<String> = (0..50)
        .map(|i| {
            format!(
                r#"{{"id": {i}, "vector": [{}, {}, 0.5], "payload": {{"tag": "t{}", "org": "o{}", "n": {i}}}}}"#,
                i as f32 * 0.1,
                (i % 7) as f32,
                i % 3,
                i % 2
            )
        })
        .collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    ok(
        &data,
        &[
            "upsert",
            "docs",
            "--file",
            jsonl.to_str().unwrap(),
            "--all-tenants",
        ],
    );
    assert_eq!(ok(&data, &["count", "docs", "--all-tenants"]).trim(), "50");
    let f = r#"{"must":[{"key":"tag","match":{"value":"t1"}}]}"#;
    assert_eq!(
        ok(&data, &["count", "docs", "--filter", f, "--all-tenants"]).trim(),
        "17"
    );

    let r = json(&ok(
        &data,
        &[
            "--json",
            "search",
            "docs",
            "--vector",
            "[0.1, 1, 0.5]",
            "--k",
            "5",
            "--filter",
            f,
            "--tenant",
            "o1",
            "--with-payload",
        ],
    ));
    let hits = r["hits"].as_array().unwrap();
    assert!(!hits.is_empty());
    for h in hits {
        assert_eq!(h["payload"]["tag"], "t1");
        assert_eq!(h["payload"]["org"], "o1");
    }
    // Point 1 is at exactly (0.1, 1, 0.5): with tag t1 and org o1 it is the top hit.
    assert_eq!(hits[0]["id"], 1);

    let page = json(&ok(
        &data,
        &[
            "--json",
            "scroll",
            "docs",
            "--order-by",
            "n",
            "--desc",
            "--limit",
            "2",
            "--with-payload",
            "--all-tenants",
        ],
    ));
    assert_eq!(page["points"][0]["id"], 49);
    assert_eq!(page["next_offset"], "2");

    // Bad input: each a clear error, and the collection unchanged.
    let bad = dir.path().join("bad.jsonl");
    for (line, needle) in [
        (
            r#"{"id": 99, "vector": [1, 2], "payload": {"org": "o1"}}"#,
            "dimension",
        ),
        (
            r#"{"id": 99, "vector": [1, 2, null], "payload": {"org": "o1"}}"#,
            "not a number",
        ),
        (
            r#"{"id": 99, "vector": [1, 2, 3], "payload": [1]}"#,
            "JSON object",
        ),
        (
            r#"{"id": "abc", "vector": [1, 2, 3], "payload": {"org": "o1"}}"#,
            "string",
        ),
        (
            r#"{"id": 99, "vector": [1, 2, 3], "payload": {"tag": "x"}}"#,
            "multi-tenant",
        ),
        (
            r#"{"id": 99, "vector": [1, 2, 3e39], "payload": {"org": "o1"}}"#,
            "infinity are not allowed",
        ),
        ("not json", "not valid JSON"),
    ] {
        std::fs::write(&bad, format!("{}\n{line}\n", lines[0])).unwrap();
        let err = fails(
            &data,
            &[
                "upsert",
                "docs",
                "--file",
                bad.to_str().unwrap(),
                "--all-tenants",
            ],
        );
        assert!(err.contains(needle), "{line}: {err}");
    }
    let err = fails(
        &data,
        &[
            "search",
            "docs",
            "--vector",
            "[1, 2, 3]",
            "--filter",
            "{\"must\": 3}",
            "--all-tenants",
        ],
    );
    assert!(err.contains("invalid filter at $.must"), "{err}");
    let err = fails(&data, &["search", "nope", "--vector", "[1, 2, 3]"]);
    assert!(err.contains("\"nope\" does not exist"), "{err}");
    let err = fails(
        &data,
        &["search", "docs", "--vector", "[1, 2]", "--all-tenants"],
    );
    assert!(err.contains("dimension"), "{err}");
    assert_eq!(ok(&data, &["count", "docs", "--all-tenants"]).trim(), "50");

    // Aliases, get, delete, info.
    ok(&data, &["alias", "set", "live", "docs"]);
    let got = json(&ok(
        &data,
        &["--json", "get", "live", "3", "4", "--all-tenants"],
    ));
    assert_eq!(got.as_array().unwrap().len(), 2);
    assert_eq!(
        ok(&data, &["delete", "live", "3", "4", "777", "--all-tenants"]).trim(),
        "deleted 2 points"
    );
    assert_eq!(
        ok(&data, &["delete", "docs", "--filter", f, "--all-tenants"]).trim(),
        "deleted 16 points"
    );
    let info = json(&ok(&data, &["--json", "collection", "info", "live"]));
    assert_eq!(info["deleted"], 18);
    assert!(info["deleted_fraction"].as_f64().unwrap() > 0.3, "{info}");
    // Unflushed: the deleted points hold memory, no segment bytes.
    assert_eq!(info["reclaimable_bytes"], 0);
    assert!(
        info["reclaimable_memory_bytes"].as_u64().unwrap() > 0,
        "{info}"
    );
    let text = ok(&data, &["collection", "info", "live"]);
    assert!(text.contains("reclaimable"), "{text}");
    let opt = json(&ok(&data, &["--json", "collection", "optimize", "docs"]));
    assert_eq!(opt["reclaimable_bytes"], 0, "{opt}");
    let info = json(&ok(&data, &["--json", "collection", "info", "live"]));
    assert_eq!(info["deleted"], 0);
    assert_eq!(info["deleted_fraction"], 0.0);
    assert_eq!(info["reclaimable_bytes"], 0);
    assert_eq!(info["reclaimable_memory_bytes"], 0);
    assert_eq!(info["points"], 32);
    assert_eq!(info["segments"].as_array().unwrap().len(), 1);
    assert_eq!(info["unindexed_payload_keys"], serde_json::json!(["n"]));
    ok(&data, &["collection", "delete", "docs"]);
    let err = fails(&data, &["count", "live"]);
    assert!(err.contains("does not exist"), "{err}");
}

#[test]
fn fvecs_import_with_payload_file() {
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
            "--metric",
            "dot",
            "--index",
            "flat",
        ],
    );
    let mut bytes = Vec::new();
    for i in 0..10 {
        bytes.extend_from_slice(&2i32.to_le_bytes());
        bytes.extend_from_slice(&(i as f32).to_le_bytes());
        bytes.extend_from_slice(&1f32.to_le_bytes());
    }
    let f = dir.path().join("v.fvecs");
    std::fs::write(&f, bytes).unwrap();
    let p = dir.path().join("p.jsonl");
    std::fs::write(
        &p,
        (0..10)
            .map(|i| format!("{{\"i\": {i}}}\n"))
            .collect::<String>(),
    )
    .unwrap();
    let out = json(&ok(
        &data,
        &[
            "--json",
            "upsert",
            "v",
            "--file",
            f.to_str().unwrap(),
            "--payloads",
            p.to_str().unwrap(),
            "--start-id",
            "100",
        ],
    ));
    assert_eq!(out["points"], 10);
    let r = json(&ok(
        &data,
        &[
            "--json",
            "search",
            "v",
            "--vector",
            "[1, 0]",
            "--k",
            "1",
            "--with-payload",
        ],
    ));
    assert_eq!(r["hits"][0]["id"], 109);
    assert_eq!(r["hits"][0]["payload"]["i"], 9);
    std::fs::write(&p, "{\"i\": 1}\n").unwrap();
    let err = fails(
        &data,
        &[
            "upsert",
            "v",
            "--file",
            f.to_str().unwrap(),
            "--payloads",
            p.to_str().unwrap(),
        ],
    );
    assert!(err.contains("1 payloads for 10 vectors"), "{err}");
}

/// Regression: `sextant … | head` used to end in a "failed printing to stdout" panic with a
/// backtrace when the reader closed the pipe; now the process exits with status 141
/// (128 + SIGPIPE) and says nothing.
#[test]
fn closed_stdout_pipe_ends_quietly() {
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&data, &["collection", "create", "c", "--dim", "2"]);
    let jsonl = dir.path().join("p.jsonl");
    let lines: Vec<String> = (0..3000)
        .map(|i| format!(r#"{{"id": {i}, "vector": [1, {i}], "payload": {{"n": {i}}}}}"#))
        .collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    ok(&data, &["upsert", "c", "--file", jsonl.to_str().unwrap()]);
    // More output than a pipe buffer holds, so the writer is still writing when the reader
    // goes away.
    let mut child = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .arg("--data")
        .arg(&data)
        .args(["--json", "scroll", "c", "--limit", "3000", "--with-payload"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(141), "{err}");
}

/// `sextant bench reclaim` at a small size: the policy's merge runs after the deletes, disk
/// shrinks, nothing is left reclaimable and every live point is still there.
#[test]
fn bench_reclaim_reports_disk_and_memory_per_stage() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let report = dir.path().join("reclaim.json");
    let out = Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args([
            "bench",
            "reclaim",
            "--points",
            "3000",
            "--dim",
            "8",
            "--segments",
            "2",
        ])
        .arg("--data")
        .arg(&data)
        .arg("--json")
        .arg(&report)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("| next merge (policy) |"));
    let r = json(&std::fs::read_to_string(&report).unwrap());
    assert_eq!(r["merge_ran"], true);
    assert_eq!(r["deleted_points"], 2700);
    let stages = r["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "built (reopened)",
            "deleted",
            "next merge (policy)",
            "optimize"
        ]
    );
    let n = |i: usize, k: &str| stages[i][k].as_u64().unwrap();
    assert_eq!(n(0, "segments"), 2);
    assert_eq!(n(0, "points"), 3000);
    assert_eq!(n(1, "points"), 300);
    assert!(n(1, "reclaimable_bytes") > 0);
    assert_eq!(n(2, "segments"), 1);
    assert_eq!(n(2, "deleted"), 0);
    assert_eq!(n(2, "reclaimable_bytes"), 0);
    assert!(n(2, "disk_bytes") < n(1, "disk_bytes") / 2);
    assert!(n(3, "disk_bytes") <= n(2, "disk_bytes"));
    assert!(n(3, "fresh_rss_bytes") > 0);
}

/// `collection advise`: the report as JSON with every layout measured, the budget applied, the
/// caller's query file used, and bad flags refused naming them.
#[test]
fn collection_advise_reports_layouts_and_refuses_bad_flags() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(
        &data,
        &["collection", "create", "v", "--dim", "16", "--metric", "l2"],
    );
    // 1,500 points around 30 centres.
    let rows: Vec<Vec<f32>> = (0..1_500)
        .map(|i: usize| {
            (0..16)
                .map(|d| ((i % 30) * 7 + d) as f32 % 11.0 + (i * 31 + d * 17) as f32 % 7.0 * 0.01)
                .collect()
        })
        .collect();
    let f = dir.path().join("v.fvecs");
    crate::write_fvecs(&f, &rows);
    ok(&data, &["upsert", "v", "--file", f.to_str().unwrap()]);
    let common = [
        "collection",
        "advise",
        "v",
        "--sample",
        "1000",
        "--queries",
        "40",
    ];
    let r = json(&ok(
        &data,
        &[
            &["--json"][..],
            &common[..],
            &["--memory-budget", "2MiB", "--points", "3000"],
        ]
        .concat(),
    ));
    assert_eq!(r["points"], 3000);
    assert_eq!(r["memory_budget"], 2 * 1024 * 1024);
    assert_eq!(r["sample"], 1000);
    let layouts = r["layouts"].as_array().unwrap();
    assert!(layouts.len() >= 4, "{r}");
    for l in layouts {
        let ram = l["ram_bytes"].as_u64().unwrap();
        assert_eq!(l["fits_budget"], ram <= 2 * 1024 * 1024, "{l}");
    }
    if let Some(i) = r["recommended"].as_u64() {
        assert_eq!(layouts[i as usize]["fits_budget"], true);
    }
    // The text report names the recommended layout's create command, or why there is none.
    let text = ok(&data, &common);
    assert!(
        text.contains("sextant collection create NAME --dim 16 --metric l2")
            || text.contains("no recommendation"),
        "{text}"
    );
    // Own queries.
    let q = dir.path().join("q.fvecs");
    crate::write_fvecs(&q, &rows[..25]);
    let r = json(&ok(
        &data,
        &[
            &["--json"][..],
            &common[..5],
            &["--queries-file", q.to_str().unwrap()],
        ]
        .concat(),
    ));
    assert_eq!(
        (r["queries"].as_u64(), r["queries_from"].as_str()),
        (Some(25), Some("given"))
    );
    // --queries with a file: its first queries.
    let r = json(&ok(
        &data,
        &[
            &["--json"][..],
            &common[..],
            &["--queries-file", q.to_str().unwrap()],
        ]
        .concat(),
    ));
    assert_eq!(r["queries"].as_u64(), Some(25), "40 asked, 25 in the file");
    let r = json(&ok(
        &data,
        &[
            &["--json"][..],
            &common[..5],
            &["--queries", "10", "--queries-file", q.to_str().unwrap()],
        ]
        .concat(),
    ));
    assert_eq!(r["queries"].as_u64(), Some(10));
    let bad = dir.path().join("bad.fvecs");
    crate::write_fvecs(&bad, &[vec![1.0; 3]]);
    for (args, named) in [
        (vec!["--memory-budget", "12XB"], "--memory-budget"),
        (vec!["--memory-budget=-5MiB"], "--memory-budget"),
        (vec!["--recall", "1.5"], "target_recall"),
        (vec!["--k", "0"], "k"),
        (vec!["--queries-file", bad.to_str().unwrap()], "queries"),
        (vec!["--space", "nope"], "space"),
    ] {
        let err = fails(&data, &[&common[..5], &args[..]].concat());
        assert!(err.contains(named), "{args:?}: {err}");
    }
}

/// `collection create`'s IVF-PQ code settings reach the stored schema (and `collection info`
/// prints them as written), or are refused naming the setting.
#[test]
fn ivf_pq_code_width_and_opq_are_stored_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fn create<'a>(name: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["collection", "create", name, "--dim", "16"];
        args.extend_from_slice(extra);
        args
    }
    ok(
        &data,
        &create(
            "fine",
            &[
                "--index",
                "ivf_pq",
                "--pq-bits",
                "8",
                "--opq",
                "--pq-m",
                "4",
            ],
        ),
    );
    let info = ok(&data, &["collection", "info", "fine"]);
    assert!(
        info.contains("ivf_pq (nlist auto, pq_m 4, pq_bits 8, opq, nprobe 16)"),
        "{info}"
    );
    let err = fails(&data, &create("g", &["--pq-bits", "8"]));
    assert!(
        err.contains("pq_bits does not apply to index hnsw"),
        "{err}"
    );
    let err = fails(&data, &create("f", &["--index", "flat", "--opq"]));
    assert!(err.contains("opq does not apply to index flat"), "{err}");
    let err = fails(
        &data,
        &create("w", &["--index", "ivf_pq", "--pq-bits", "6"]),
    );
    assert!(err.contains("pq_bits must be 4 or 8"), "{err}");
    let err = fails(
        &data,
        &[
            "collection",
            "create",
            "s",
            "--space",
            "a:16:l2:ivf_pq",
            "--opq",
        ],
    );
    assert!(err.contains("--opq"), "{err}");
}
