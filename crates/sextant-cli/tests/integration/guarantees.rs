//! Guarantees on every command: tenant scope on every point command, flags honoured or refused
//! by name, global options anywhere, and hostile input sizes as errors, never panics.

use serde_json::Value;

use crate::db::{ok, run};

fn fails(data: &std::path::Path, args: &[&str]) -> String {
    let out = run(data, args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{args:?} should fail");
    assert!(!err.contains("panicked"), "{args:?}: {err}");
    err
}

fn json(s: &str) -> Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

/// Integer tenants 2^53 and 2^53 + 1 (equal as f64) and string tenants "007" and "7" (equal
/// to a parser that reads numbers): every point command sees only its own tenant.
#[test]
fn tenant_scope_on_every_point_command() {
    let dir = tempfile::tempdir().unwrap();
    for (key, a, b) in [
        ("org:integer", "9007199254740992", "9007199254740993"),
        ("org", "007", "7"),
    ] {
        let data = dir.path().join(key.replace(':', "_"));
        ok(
            &data,
            &[
                "collection",
                "create",
                "t",
                "--dim",
                "2",
                "--tenant-key",
                key,
            ],
        );
        let quote = |t: &str| {
            if key.ends_with("integer") {
                t.to_string()
            } else {
                format!("\"{t}\"")
            }
        };
        let lines: Vec<String> = (0..20)
            .map(|i| {
                let t = if i % 2 == 0 { a } else { b };
                format!(
                    r#"{{"id": {i}, "vector": [1, {i}], "payload": {{"org": {}, "n": {i}}}}}"#,
                    quote(t)
                )
            })
            .collect();
        let file = dir.path().join("p.jsonl");
        std::fs::write(&file, lines.join("\n")).unwrap();
        let f = file.to_str().unwrap();
        // Without a scope every point command is refused, naming the flags.
        for args in [
            vec!["upsert", "t", "--file", f],
            vec!["count", "t"],
            vec!["get", "t", "1"],
            vec!["scroll", "t"],
            vec!["delete", "t", "1"],
            vec!["delete", "t", "--filter", "{}"],
            vec!["search", "t", "--vector", "[1, 0]"],
        ] {
            let err = fails(&data, &args);
            assert!(
                err.contains("--tenant") && err.contains("--all-tenants"),
                "{args:?}: {err}"
            );
        }
        // Importing several tenants is the administrator's path; one tenant's scope refuses
        // the other tenant's lines and writes nothing.
        let err = fails(&data, &["upsert", "t", "--file", f, "--tenant", a]);
        assert!(err.contains("nothing"), "{err}");
        ok(&data, &["upsert", "t", "--file", f, "--all-tenants"]);
        for (t, other_parity) in [(a, 1), (b, 0)] {
            let count = ok(&data, &["count", "t", "--tenant", t]);
            assert_eq!(count.trim(), "10", "{t}");
            let all_ids: Vec<String> = (0..20).map(|i| i.to_string()).collect();
            let mut get = vec!["--json", "get", "t"];
            get.extend(all_ids.iter().map(String::as_str));
            get.extend(["--tenant", t]);
            let got = json(&ok(&data, &get));
            assert_eq!(got.as_array().unwrap().len(), 10, "get {t}");
            for p in got.as_array().unwrap() {
                assert_ne!(p["id"].as_u64().unwrap() % 2, other_parity);
                assert_eq!(p["payload"]["org"].to_string(), quote(t));
            }
            let page = json(&ok(
                &data,
                &[
                    "--json",
                    "scroll",
                    "t",
                    "--limit",
                    "100",
                    "--with-payload",
                    "--tenant",
                    t,
                ],
            ));
            assert_eq!(page["points"].as_array().unwrap().len(), 10);
            let hits = json(&ok(
                &data,
                &[
                    "--json", "search", "t", "--vector", "[1, 3]", "--k", "50", "--tenant", t,
                ],
            ));
            assert_eq!(hits["hits"].as_array().unwrap().len(), 10, "search {t}");
        }
        // Deleting the other tenant's points from one tenant's scope deletes nothing.
        let out = ok(&data, &["delete", "t", "1", "3", "5", "--tenant", a]);
        assert_eq!(out.trim(), "deleted 0 points");
        let out = ok(&data, &["delete", "t", "--filter", "{}", "--tenant", a]);
        assert_eq!(out.trim(), "deleted 10 points");
        assert_eq!(ok(&data, &["count", "t", "--tenant", b]).trim(), "10");
        // Tenants listed, one dropped with one command.
        let list = json(&ok(&data, &["--json", "tenant", "list", "t"]));
        assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
        let out = ok(&data, &["tenant", "drop", "t", b]);
        assert!(out.contains("deleted 10 points"), "{out}");
        assert_eq!(ok(&data, &["count", "t", "--all-tenants"]).trim(), "0");
        if key.ends_with("integer") {
            let err = fails(&data, &["count", "t", "--tenant", "acme"]);
            assert!(err.contains("not an integer"), "{err}");
        }
    }
}

/// Each flag that a command would not use is refused with a message naming it.
#[test]
fn flags_a_command_would_ignore_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&data, &["collection", "create", "v", "--dim", "2"]);
    let run_out = dir.path().join("run.txt");
    let run_out = run_out.to_str().unwrap();
    for (extra, flag) in [
        (vec!["--mode", "bm25"], "--mode"),
        (vec!["--rerank", "maxsim"], "--rerank"),
        (
            vec!["--rerank", "maxsim", "--rerank-blend", "0.5"],
            "--rerank",
        ),
        (vec!["--mmr", "0.5"], "--mmr"),
        (vec!["--fusion", "rrf"], "--fusion"),
        (vec!["--weights", "1,1"], "--weights"),
        (vec!["--group-size", "2"], "--group-size"),
        (vec!["--run-out", run_out], "--run-out"),
        (vec!["--query-language", "fr"], "--query-language"),
        (vec!["--expand", "rm3"], "--expand"),
    ] {
        let mut args = vec!["search", "v", "--vector", "[1, 0]"];
        args.extend(extra);
        let err = fails(&data, &args);
        assert!(err.contains(flag), "{flag}: {err}");
    }
    assert!(!std::path::Path::new(run_out).exists());
    // (--explain applies to both: a text search explains its sources.)
    for (extra, flag) in [
        (vec!["--with-vector"], "--with-vector"),
        (vec!["--space", "default"], "--space"),
    ] {
        let mut args = vec!["search", "v", "--text", "hello"];
        args.extend(extra);
        let err = fails(&data, &args);
        assert!(err.contains(flag), "{flag}: {err}");
    }
}

/// `--json`, `--data` and `--durability` work after the subcommand too.
#[test]
fn global_options_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["collection", "create", "c", "--dim", "2", "--data", d])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_sextant"))
        .args(["count", "c", "--json", "--durability", "100ms", "--data", d])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&String::from_utf8_lossy(&out.stdout))["count"], 0);
}

/// Input sizes that meet allocation or ids are checked: errors, never panics or wraps.
#[test]
fn hostile_sizes_and_ids_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    ok(&data, &["collection", "create", "v", "--dim", "4"]);
    let npy = |shape: &str, body: usize| {
        let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        b.extend(std::iter::repeat_n(0u8, body));
        b
    };
    let huge = dir.path().join("huge.npy");
    std::fs::write(&huge, npy("(4611686018427387904, 4)", 32)).unwrap();
    let err = fails(&data, &["upsert", "v", "--file", huge.to_str().unwrap()]);
    assert!(err.contains("too large"), "{err}");
    let two = dir.path().join("two.npy");
    let mut ones = npy("(2, 4)", 0);
    for _ in 0..8 {
        ones.extend_from_slice(&1f32.to_le_bytes());
    }
    std::fs::write(&two, ones).unwrap();
    let err = fails(
        &data,
        &[
            "upsert",
            "v",
            "--file",
            two.to_str().unwrap(),
            "--start-id",
            "18446744073709551615",
        ],
    );
    assert!(err.contains("--start-id"), "{err}");
    assert_eq!(ok(&data, &["count", "v"]).trim(), "0");
    // The last id itself is fine for one row.
    let one = dir.path().join("one.npy");
    let mut b = npy("(1, 4)", 0);
    for _ in 0..4 {
        b.extend_from_slice(&1f32.to_le_bytes());
    }
    std::fs::write(&one, b).unwrap();
    ok(
        &data,
        &[
            "upsert",
            "v",
            "--file",
            one.to_str().unwrap(),
            "--start-id",
            "18446744073709551615",
        ],
    );
    let got = json(&ok(&data, &["--json", "get", "v", "18446744073709551615"]));
    assert_eq!(got.as_array().unwrap().len(), 1);
}
