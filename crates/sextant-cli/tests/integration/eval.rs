//! `sextant eval` end to end on the tiny fixture model: a BEIR folder, the baselines and a
//! configuration of the user's, scores that follow from the data (BM25 finds each document by
//! its one distinctive word), the files `--out` writes, and bad input refused by name.

use std::path::Path;

use serde_json::Value;

use crate::db::{ok, run};
use crate::{tiny_model, tiny_st};

const DOCS: [(&str, &str); 6] = [
    ("d1", "The falcon hunts small birds over the marsh."),
    ("d2", "A trout swims in the cold mountain river."),
    ("d3", "The oak drops acorns in the autumn wind."),
    ("d4", "Copper conducts electricity through the wire."),
    ("d5", "The violin plays a slow melody at dusk."),
    ("d6", "Granite forms deep under the volcano."),
];

fn beir(dir: &Path) {
    let corpus: Vec<String> = DOCS
        .iter()
        .map(|(id, t)| serde_json::json!({"_id": id, "title": "", "text": t}).to_string())
        .collect();
    std::fs::write(dir.join("corpus.jsonl"), corpus.join("\n")).unwrap();
    let queries = [
        ("q1", "falcon"),
        ("q2", "trout river"),
        ("q3", "violin melody"),
    ];
    let lines: Vec<String> = queries
        .iter()
        .map(|(id, t)| serde_json::json!({"_id": id, "text": t}).to_string())
        .collect();
    std::fs::write(dir.join("queries.jsonl"), lines.join("\n")).unwrap();
    std::fs::create_dir_all(dir.join("qrels")).unwrap();
    std::fs::write(
        dir.join("qrels/test.tsv"),
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t2\nq3\td5\t1\n",
    )
    .unwrap();
}

/// A data directory with collection `kb` ingested from the BEIR folder `beir/` under `dir`.
fn setup(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let data = dir.join("data");
    let b = dir.join("beir");
    std::fs::create_dir_all(&b).unwrap();
    beir(&b);
    let model = tiny_model();
    let corpus = b.join("corpus.jsonl");
    ok(
        &data,
        &[
            "ingest",
            "kb",
            "--jsonl",
            corpus.to_str().unwrap(),
            "--model",
            &model,
            "--no-splade",
        ],
    );
    (data, b)
}

#[test]
fn eval_scores_every_configuration_and_writes_its_report() {
    let dir = tempfile::tempdir().unwrap();
    let (data, b) = setup(dir.path());
    let out = dir.path().join("out");
    let json = ok(
        &data,
        &[
            "--json",
            "eval",
            "kb",
            "--beir",
            b.to_str().unwrap(),
            "--config",
            "rrf=mode=hybrid;fusion=rrf",
            "--metrics",
            "ndcg@10,mrr@10,recall@5,precision@1",
            "--permutations",
            "200",
            "--fail-k",
            "1",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    let r: Value = serde_json::from_str(&json).unwrap();
    let names: Vec<&str> = r["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["random", "bm25", "dense-exact", "rrf"]);
    let bm25 = &r["configs"][1]["means"];
    // Each query's words are in its relevant document only: BM25 ranks it first.
    for m in ["ndcg@10", "mrr@10", "recall@5", "precision@1"] {
        assert_eq!(bm25[m], 1.0, "bm25 {m}: {bm25}");
    }
    assert_eq!(r["configs"][1]["missed"], serde_json::json!([]));
    // Error analysis: BM25 fails nothing; every failure of another configuration has a cause
    // that follows from the runs (BM25 finds every query's document, so never `semantic` or
    // `both_miss`), and shows the query's relevant document with its text.
    assert_eq!(r["configs"][1]["failures"], serde_json::json!([]));
    for c in r["configs"].as_array().unwrap() {
        for f in c["failures"].as_array().unwrap() {
            let cause = f["cause"].as_str().unwrap();
            assert!(
                ["ranked_too_low", "lexical", "lost_by_combination"].contains(&cause),
                "{}: {f}",
                c["name"]
            );
            assert!(
                !f["relevant"][0]["text"].as_str().unwrap().is_empty(),
                "{f}"
            );
        }
    }
    let random_failures = r["configs"][0]["failures"].as_array().unwrap().len();
    assert!(
        random_failures >= 1,
        "a random ranking of 6 documents misses some query at k=1"
    );
    // Every other configuration is compared with the first one given, on every metric.
    let cmp = r["comparisons"].as_array().unwrap();
    assert_eq!(cmp.len(), 3 * 4);
    for c in cmp {
        assert_eq!(c["reference"], "rrf");
        let p = c["significance"]["p_value"].as_f64().unwrap();
        assert!(p > 0.0 && p <= 1.0, "{c}");
        assert_eq!(c["significance"]["queries"], 3);
    }
    // The files.
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| bm25 | 1.0000"), "{md}");
    assert!(md.contains("## Error analysis"), "{md}");
    for plot in ["metrics.svg", "recall-at-k.svg", "latency.svg"] {
        let svg = std::fs::read_to_string(out.join(plot)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("bm25"), "{plot}");
    }
    // BM25's recall curve reaches 1 at k = 1 here (every relevant document ranked first).
    assert_eq!(
        r["configs"][1]["recall_curve"][0],
        serde_json::json!([1, 1.0])
    );
    let per_query: Value =
        serde_json::from_slice(&std::fs::read(out.join("per-query.json")).unwrap()).unwrap();
    assert_eq!(per_query["bm25"].as_object().unwrap().len(), 3);
    let trec = std::fs::read_to_string(out.join("runs/bm25.trec")).unwrap();
    let first: Vec<&str> = trec.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(&first[..4], ["q1", "Q0", "d1", "1"]);
    assert_eq!(first[5], "bm25");
}

#[test]
fn eval_refuses_bad_input_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let (data, b) = setup(dir.path());
    let bd = b.to_str().unwrap();
    let queries = b.join("queries.jsonl").to_string_lossy().into_owned();
    let qrels = b.join("qrels/test.tsv").to_string_lossy().into_owned();
    for (args, needle) in [
        (
            vec!["eval", "kb", "--beir", bd, "--config", "nope"],
            "config",
        ),
        (
            vec!["eval", "kb", "--beir", bd, "--config", "x=mode=bm25;ef=9"],
            "ef",
        ),
        (
            vec!["eval", "kb", "--beir", bd, "--metrics", "bleu@4"],
            "metrics",
        ),
        (
            vec!["eval", "kb", "--beir", bd, "--compare-to", "zzz"],
            "zzz",
        ),
        (vec!["eval", "missing", "--beir", bd], "missing"),
        // --split names a file of --beir; beside --queries it would be ignored.
        (
            vec![
                "eval",
                "kb",
                "--queries",
                &queries,
                "--qrels",
                &qrels,
                "--split",
                "train",
            ],
            "--split",
        ),
    ] {
        let o = run(&data, &args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success(), "{args:?} should fail");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    // Text search takes --ef for its dense source, and refuses it without one.
    let hits = ok(
        &data,
        &[
            "search", "kb", "--text", "falcon", "--mode", "dense", "--ef", "16",
        ],
    );
    assert!(hits.contains("d1"), "{hits}");
    let o = run(
        &data,
        &[
            "search", "kb", "--text", "falcon", "--mode", "bm25", "--ef", "16",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--ef"));
    // Judged documents the collection does not hold: a warning naming them.
    std::fs::write(b.join("qrels/test.tsv"), "q1\td1\t1\nq1\td99\t1\n").unwrap();
    let md = ok(&data, &["eval", "kb", "--beir", bd, "--permutations", "10"]);
    assert!(
        md.contains("1 relevant documents of the qrels are not in the collection (e.g. d99)"),
        "{md}"
    );
    // A judged query the queries file does not hold.
    std::fs::write(b.join("qrels/test.tsv"), "q9\td1\t1\n").unwrap();
    let o = run(&data, &["eval", "kb", "--beir", bd]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("q9"));
}

/// The model-upgrade workflow from the command line: estimate, reindex into a new collection
/// with another model, evaluate both side by side (with a fusion-weight sweep), switch an
/// alias.
#[test]
fn reindex_then_compare_then_switch() {
    let dir = tempfile::tempdir().unwrap();
    let (data, b) = setup(dir.path());
    // A model that reads fewer tokens than the collection's chunks hold is refused, by name.
    let o = run(
        &data,
        &["reindex", "kb", "--model", &tiny_st(), "--into", "short"],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--model") && err.contains("48 tokens"),
        "{err}"
    );
    // From a collection built with the 8-d model to the 32-d one.
    ok(
        &data,
        &[
            "ingest",
            "kb8",
            "--jsonl",
            b.join("corpus.jsonl").to_str().unwrap(),
            "--model",
            &tiny_st(),
            "--no-splade",
        ],
    );
    let model = tiny_model();
    let plan: Value = serde_json::from_str(&ok(
        &data,
        &[
            "--json",
            "reindex",
            "kb8",
            "--model",
            &model,
            "--into",
            "kb_v2",
            "--dry-run",
        ],
    ))
    .unwrap();
    assert_eq!(plan["estimate"]["chunks"], 6, "{plan}");
    assert_eq!(plan["estimate"]["old_dim"], 8, "{plan}");
    assert_eq!(plan["estimate"]["new_dim"], 32);
    assert!(plan["estimated_seconds"].as_f64().unwrap() >= 0.0);
    let o = run(&data, &["collection", "info", "kb_v2"]);
    assert!(!o.status.success(), "a dry run creates nothing");
    let text = ok(
        &data,
        &["reindex", "kb8", "--model", &model, "--into", "kb_v2"],
    );
    assert!(text.contains("re-embedded 6 chunks"), "{text}");
    assert!(text.contains("alias set"), "{text}");
    // Again: refused, the target exists; with --resume: nothing to do.
    let o = run(
        &data,
        &["reindex", "kb8", "--model", &model, "--into", "kb_v2"],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--resume")
            || String::from_utf8_lossy(&o.stderr).contains("resume")
    );
    let text = ok(
        &data,
        &[
            "reindex", "kb8", "--model", &model, "--into", "kb_v2", "--resume",
        ],
    );
    assert!(text.contains("re-embedded 0 chunks"), "{text}");

    let out = dir.path().join("cmp");
    let r: Value = serde_json::from_str(&ok(
        &data,
        &[
            "--json",
            "eval",
            "kb8",
            "--compare",
            "kb_v2",
            "--beir",
            b.to_str().unwrap(),
            "--no-baselines",
            "--config",
            "bm25",
            "--config",
            "dense",
            "--sweep-weights",
            "2",
            "--metrics",
            "ndcg@10,recall@5",
            "--permutations",
            "100",
            "--out",
            out.to_str().unwrap(),
        ],
    ))
    .unwrap();
    let names: Vec<&str> = r["configs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "bm25",
            "dense",
            "sweep-w0.00",
            "sweep-w0.50",
            "sweep-w1.00",
            "bm25@kb_v2",
            "dense@kb_v2",
            "sweep-w0.00@kb_v2",
            "sweep-w0.50@kb_v2",
            "sweep-w1.00@kb_v2"
        ]
    );
    let means = |name: &str| {
        r["configs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()["means"]
            .clone()
    };
    // BM25 reads the same stored text in both collections: the same scores.
    assert_eq!(means("bm25"), means("bm25@kb_v2"));
    // Each copy is compared with its counterpart on the first collection.
    let cmp = r["comparisons"].as_array().unwrap();
    assert!(cmp
        .iter()
        .any(|c| c["reference"] == "dense" && c["config"] == "dense@kb_v2"));
    assert!(cmp
        .iter()
        .any(|c| c["reference"] == "sweep-w0.50" && c["config"] == "sweep-w0.50@kb_v2"));
    let svg = std::fs::read_to_string(out.join("fusion-sweep.svg")).unwrap();
    assert!(
        svg.contains("ndcg@10@kb_v2") && svg.contains("recall@5"),
        "{svg}"
    );
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(md.contains("| dense@kb_v2 | dense | ndcg@10 |"), "{md}");

    // Readers move in one step, and back.
    ok(&data, &["alias", "set", "live", "kb_v2"]);
    let hits = ok(
        &data,
        &["search", "live", "--text", "falcon", "--mode", "bm25"],
    );
    assert!(hits.contains("d1"), "{hits}");
    let info = ok(&data, &["--json", "collection", "info", "live"]);
    assert!(info.contains("\"dim\": 32"), "{info}");
}

/// Drift monitoring from the command line: pin, a text canary, checks, the shift alarm with
/// its exit status, and `collection info` showing it all.
#[test]
fn drift_pin_canaries_check_and_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let (data, b) = setup(dir.path());
    let o = run(&data, &["drift", "status", "kb"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not monitored"));
    let info = ok(&data, &["collection", "info", "kb"]);
    assert!(!info.contains("drift"), "{info}");

    let pinned = ok(&data, &["drift", "pin", "kb", "--shift-alarm", "0.000001"]);
    assert!(
        pinned.contains("pinned space dense of \"kb\": 6 vectors"),
        "{pinned}"
    );
    let added = ok(
        &data,
        &[
            "drift",
            "canary-add",
            "kb",
            "--canary",
            "falcon",
            "--text",
            "falcon",
            "--k",
            "3",
        ],
    );
    assert!(added.contains("top 3 expected to hold"), "{added}");
    let checked = ok(&data, &["drift", "check", "kb", "--fail-on-alarm"]);
    assert!(checked.contains("precision@k 1.000"), "{checked}");
    assert!(checked.contains("no alarm"), "{checked}");

    // New documents move the centroid past the (tiny) threshold: the alarm, exit status 8.
    let more = b.join("more.jsonl");
    std::fs::write(
        &more,
        "{\"_id\": \"n1\", \"title\": \"\", \"text\": \"Quantum chromodynamics binds quarks with gluons.\"}\n\
         {\"_id\": \"n2\", \"title\": \"\", \"text\": \"The stock exchange closed lower on Friday.\"}\n",
    )
    .unwrap();
    ok(&data, &["ingest", "kb", "--jsonl", more.to_str().unwrap()]);
    let o = run(&data, &["drift", "check", "kb", "--fail-on-alarm"]);
    assert_eq!(
        o.status.code(),
        Some(8),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("ALARM: space \"dense\": the centroid moved"),
        "{out}"
    );
    let info = ok(&data, &["collection", "info", "kb"]);
    assert!(
        info.contains("centroid shift") && info.contains("ALARM"),
        "{info}"
    );
    let json: Value =
        serde_json::from_str(&ok(&data, &["--json", "drift", "status", "kb"])).unwrap();
    assert_eq!(json["spaces"][0]["now"]["count"], 8);
    assert_eq!(json["canaries"], 1);
    assert_eq!(json["precision_history"].as_array().unwrap().len(), 2);

    // Canaries are listed and removed by name; bad input is refused.
    assert!(ok(&data, &["drift", "canaries", "kb"]).contains("falcon: k 3"));
    let o = run(
        &data,
        &[
            "drift",
            "canary-add",
            "kb",
            "--canary",
            "falcon",
            "--text",
            "falcon",
        ],
    );
    assert_eq!(o.status.code(), Some(5), "a second canary of that name");
    let o = run(
        &data,
        &[
            "drift",
            "canary-add",
            "kb",
            "--canary",
            "v",
            "--vector",
            "[1, 2]",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("vector"));
    ok(
        &data,
        &["drift", "canary-remove", "kb", "--canary", "falcon"],
    );
    assert!(ok(&data, &["drift", "canaries", "kb"]).contains("no canaries"));
    let o = run(
        &data,
        &["drift", "canary-remove", "kb", "--canary", "falcon"],
    );
    assert_eq!(o.status.code(), Some(3));
}

/// Duplicate detection from the command line: `ingest --dedup link` records and collapses
/// copies; the setting is fixed at creation; a threshold without a policy is refused.
#[test]
fn ingest_dedup_links_copies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let docs = dir.path().join("docs.jsonl");
    std::fs::write(
        &docs,
        concat!(
            "{\"_id\": \"a\", \"text\": \"The falcon hunts small birds over the marsh at dawn.\"}\n",
            "{\"_id\": \"b\", \"text\": \"A trout swims in the cold mountain river.\"}\n",
            "{\"_id\": \"a-copy\", \"text\": \"the FALCON hunts small birds, over the marsh at dawn!\"}\n",
        ),
    )
    .unwrap();
    let model = tiny_model();
    let base = [
        "ingest",
        "kb",
        "--jsonl",
        docs.to_str().unwrap(),
        "--model",
        &model,
        "--no-splade",
    ];
    let o = run(&data, &[&base[..], &["--dedup-threshold", "0.5"]].concat());
    assert_eq!(o.status.code(), Some(2), "a threshold without --dedup");
    let out = ok(&data, &[&base[..], &["--dedup", "link"]].concat());
    assert!(
        out.contains("duplicates: 1 exact copies, 0 near-duplicates"),
        "{out}"
    );
    let hits = ok(
        &data,
        &["search", "kb", "--text", "falcon marsh", "--mode", "bm25"],
    );
    let first = hits.lines().next().unwrap();
    assert!(first.contains("[also: "), "{hits}");
    assert_eq!(
        hits.matches("falcon").count(),
        1,
        "one line for both copies: {hits}"
    );
    // Fixed at creation.
    let o = run(&data, &[&base[..], &["--dedup", "skip"]].concat());
    assert_eq!(o.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&o.stderr).contains("dedup"));
    let o = run(&data, &[&base[..], &["--dedup", "merge"]].concat());
    assert!(!o.status.success());
}

/// Languages from the command line: `ingest --language` fixes the BM25 analysis at creation,
/// every chunk records its detected language (and filters on it), `search --explain` states
/// the query's analysis language and terms, `--query-language` and `--expand rm3` reach BM25.
#[test]
fn ingest_language_explain_and_rm3() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let docs = dir.path().join("docs.jsonl");
    std::fs::write(
        &docs,
        concat!(
            "{\"_id\": \"fr\", \"text\": \"Les enfants jouaient dans les jardins publics de la ville pendant que leurs parents travaillaient dans les usines du quartier.\"}\n",
            "{\"_id\": \"de\", \"text\": \"Die Kinder spielten in den öffentlichen Gärten der Stadt, während ihre Eltern in den Fabriken des Viertels arbeiteten.\"}\n",
        ),
    )
    .unwrap();
    let model = tiny_model();
    let base = [
        "ingest",
        "kb",
        "--jsonl",
        docs.to_str().unwrap(),
        "--model",
        &model,
        "--no-splade",
    ];
    let o = run(&data, &[&base[..], &["--language", "klingon"]].concat());
    assert_eq!(o.status.code(), Some(2), "an unknown language");
    assert!(String::from_utf8_lossy(&o.stderr).contains("language"));
    ok(&data, &[&base[..], &["--language", "auto"]].concat());
    // Fixed at creation.
    let o = run(&data, &[&base[..], &["--language", "german"]].concat());
    assert_eq!(o.status.code(), Some(5));
    assert!(String::from_utf8_lossy(&o.stderr).contains("language"));
    let search = |extra: &[&str]| {
        ok(
            &data,
            &[&["search", "kb", "--mode", "bm25", "--explain"][..], extra].concat(),
        )
    };
    let out = search(&["--text", "travailler", "--query-language", "fr"]);
    assert!(
        out.contains("query analysed in french (given by --query-language)"),
        "{out}"
    );
    assert!(out.contains("terms: travaill "), "{out}");
    assert!(out.lines().any(|l| l.contains(". fr ")), "{out}");
    let out = search(&[
        "--text",
        "Die Kinder spielten in den Gärten der Stadt",
        "--filter",
        r#"{"must":[{"key":"language","match":{"value":"de"}}]}"#,
    ]);
    assert!(
        out.contains("query analysed in german (chosen by the index; detection guessed de)"),
        "{out}"
    );
    assert!(out.lines().any(|l| l.contains(". de ")), "{out}");
    assert!(!out.lines().any(|l| l.contains(". fr ")), "{out}");
    let out = search(&[
        "--text",
        "enfants jardins",
        "--expand",
        "rm3",
        "--rm3-docs",
        "1",
    ]);
    assert!(out.contains("rm3 query: "), "{out}");
    // Options that need a BM25 source are refused without one.
    let o = run(
        &data,
        &[
            "search", "kb", "--mode", "dense", "--text", "x", "--expand", "rm3",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("expand"));
}
