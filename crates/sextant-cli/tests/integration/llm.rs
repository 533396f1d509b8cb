//! `ask --llm` never sends `SEXTANT_LLM_API_KEY` in clear text to another machine unless the
//! user opts in, and never prints the key.

use std::process::Command;

use crate::db::ok;
use crate::tiny_model;

const KEY: &str = "sk-integration-secret-42";

/// Regression (issue 14): the key went as a bearer token to any `--llm` URL, plain HTTP
/// included.
#[test]
fn ask_refuses_to_send_the_key_over_plain_http_to_another_host() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let corpus = dir.path().join("c.jsonl");
    std::fs::write(
        &corpus,
        r#"{"_id": "d1", "text": "A falcon is a bird of prey."}"#,
    )
    .unwrap();
    let model = tiny_model();
    let c = corpus.to_str().unwrap();
    ok(&data, &["ingest", "kb", "--jsonl", c, "--model", &model]);
    let ask = |url: &str, opt_in: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sextant"));
        cmd.arg("--data")
            .arg(&data)
            .args(["ask", "kb", "what is a falcon?", "--llm", url])
            .args(["--llm-timeout", "1"])
            .env("SEXTANT_LLM_API_KEY", KEY)
            .env_remove("SEXTANT_LLM_ALLOW_INSECURE_KEY");
        if opt_in {
            cmd.env("SEXTANT_LLM_ALLOW_INSECURE_KEY", "1");
        }
        cmd.output().expect("sextant runs")
    };
    // 192.0.2.1 is TEST-NET-1: never reachable, and never contacted when refused.
    let out = ask("http://192.0.2.1:9/v1", false);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("refusing") && err.contains("SEXTANT_LLM_ALLOW_INSECURE_KEY"),
        "{err}"
    );
    assert!(!err.contains(KEY) && !String::from_utf8_lossy(&out.stdout).contains(KEY));
    // With the opt-in the request is attempted (and fails to connect), still without the key
    // in any message.
    let out = ask("http://192.0.2.1:9/v1", true);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(!err.contains("refusing"), "{err}");
    assert!(!err.contains(KEY), "{err}");
}
