//! `sextant adapter` end to end on the tiny sentence-transformers fixture: training writes the
//! adapter directory and attaches it (the fingerprint in `collection info`, in `--explain`,
//! gone with `--no-adapter`); detach, attach and show; eval's `adapter=false`; bad options,
//! a vector collection, a non-empty output and an adapter of another model refused by name.
//! (The engine's tests cover snapshots, backups, encryption and faults.)

use std::path::Path;

use serde_json::Value;

use crate::db::{ok, run};
use crate::tiny_st;

/// The fine-tuning tests' 24 judged pairs (query `i` → document `i`), with the qrels where
/// `--beir` looks for them.
fn beir(dir: &Path) {
    std::fs::create_dir_all(dir.join("qrels")).unwrap();
    crate::finetune::beir(dir);
    std::fs::rename(dir.join("qrels.tsv"), dir.join("qrels/test.tsv")).unwrap();
}

fn fails(data: &Path, args: &[&str]) -> String {
    let o = run(data, args);
    assert!(!o.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn info_adapters(data: &Path) -> Vec<Value> {
    let info: Value =
        serde_json::from_str(&ok(data, &["--json", "collection", "info", "kb"])).unwrap();
    info["adapters"].as_array().cloned().unwrap_or_default()
}

fn explained_adapter(data: &Path, extra: &[&str]) -> Option<String> {
    let mut args = vec![
        "--json",
        "search",
        "kb",
        "--text",
        "the river on a day",
        "--explain",
    ];
    args.extend_from_slice(extra);
    let v: Value = serde_json::from_str(&ok(data, &args)).unwrap();
    let v = if v.is_array() { v[0].clone() } else { v };
    v["explain"]["sources"][0]["adapter"]
        .as_str()
        .map(str::to_string)
}

#[test]
fn adapter_train_attach_detach_and_refusals() {
    let tmp = tempfile::tempdir().unwrap();
    let b = tmp.path().join("beir");
    beir(&b);
    let data = tmp.path().join("data");
    let corpus = b.join("corpus.jsonl");
    let model = tiny_st();
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
    let (queries, qrels) = (b.join("queries.jsonl"), b.join("qrels/test.tsv"));
    let (q, r) = (queries.to_str().unwrap(), qrels.to_str().unwrap());
    let out = tmp.path().join("adapter");
    let out_s = out.to_str().unwrap();
    assert_eq!(explained_adapter(&data, &[]), None);

    let printed = ok(
        &data,
        &[
            "adapter",
            "train",
            "kb",
            "--queries",
            q,
            "--qrels",
            r,
            "--out",
            out_s,
            "--epochs",
            "5",
            "--lr",
            "1e-2",
            "--validation",
            "0.25",
            "--batch",
            "8",
        ],
    );
    assert!(printed.contains("trained a"), "{printed}");
    assert!(printed.contains("18 queries (6 held back"), "{printed}");
    assert!(out.join("adapter.safetensors").exists());
    let card: Value =
        serde_json::from_slice(&std::fs::read(out.join("adapter_card.json")).unwrap()).unwrap();
    let fingerprint = card["fingerprint"].as_str().unwrap().to_string();
    let info: Value =
        serde_json::from_str(&ok(&data, &["--json", "collection", "info", "kb"])).unwrap();
    assert_eq!(card["dim"], info["schema"]["spaces"][0]["dim"]);
    assert!(card["report"]["ndcg_before"].is_number());
    assert!(card["report"]["epochs"].as_array().unwrap().len() <= 5);
    assert_eq!(card["report"]["attached"], true);
    // Attached: in info, and named by the dense source's explanation.
    let adapters = info_adapters(&data);
    assert_eq!(adapters.len(), 1);
    assert_eq!(adapters[0]["fingerprint"], fingerprint.as_str());
    assert_eq!(explained_adapter(&data, &[]), Some(fingerprint.clone()));
    assert_eq!(explained_adapter(&data, &["--no-adapter"]), None);
    assert_eq!(
        explained_adapter(&data, &["--mode", "dense"]),
        Some(fingerprint.clone())
    );
    // --no-adapter where nothing embeds a query is refused, not ignored.
    let e = fails(
        &data,
        &[
            "search",
            "kb",
            "--text",
            "river",
            "--mode",
            "bm25",
            "--no-adapter",
        ],
    );
    assert!(e.contains("adapter"), "{e}");
    let e = fails(
        &data,
        &["search", "kb", "--vector", "[1,2]", "--no-adapter"],
    );
    assert!(e.contains("--no-adapter"), "{e}");
    // Show, detach, attach again.
    let shown = ok(&data, &["adapter", "show", "kb"]);
    assert!(shown.contains(&fingerprint), "{shown}");
    assert!(ok(&data, &["adapter", "detach", "kb"]).contains("removed"));
    assert!(info_adapters(&data).is_empty());
    assert_eq!(explained_adapter(&data, &[]), None);
    assert!(ok(&data, &["adapter", "detach", "kb"]).contains("no query adapter"));
    assert!(ok(&data, &["adapter", "attach", "kb", out_s]).contains(&fingerprint));
    assert_eq!(info_adapters(&data)[0]["fingerprint"], fingerprint.as_str());
    // eval with and without it.
    let report = tmp.path().join("eval");
    ok(
        &data,
        &[
            "eval",
            "kb",
            "--beir",
            b.to_str().unwrap(),
            "--no-baselines",
            "--config",
            "off=mode=dense;adapter=false",
            "--config",
            "dense",
            "--out",
            report.to_str().unwrap(),
        ],
    );
    let md = std::fs::read_to_string(report.join("report.md")).unwrap();
    assert!(md.contains("| off |") && md.contains("| dense |"), "{md}");

    // Refusals, each naming what is wrong.
    let e = fails(
        &data,
        &[
            "adapter",
            "train",
            "kb",
            "--queries",
            q,
            "--qrels",
            r,
            "--out",
            out_s,
        ],
    );
    assert!(e.contains("not empty"), "{e}");
    let other = tmp.path().join("other");
    let other_s = other.to_str().unwrap();
    let e = fails(
        &data,
        &[
            "adapter",
            "train",
            "kb",
            "--queries",
            q,
            "--qrels",
            r,
            "--out",
            other_s,
            "--validation",
            "1.5",
        ],
    );
    assert!(e.contains("validation"), "{e}");
    let e = fails(
        &data,
        &[
            "adapter",
            "train",
            "kb",
            "--queries",
            q,
            "--qrels",
            r,
            "--out",
            other_s,
            "--lr",
            "0",
        ],
    );
    assert!(e.contains("lr"), "{e}");
    let e = fails(&data, &["adapter", "attach", "kb", other_s]);
    assert!(e.contains("adapter_card.json"), "{e}");
    let e = fails(
        &data,
        &[
            "adapter",
            "train",
            "nope",
            "--queries",
            q,
            "--qrels",
            r,
            "--out",
            other_s,
        ],
    );
    assert!(e.contains("nope"), "{e}");
    // Qrels naming no document of the collection.
    let empty = tmp.path().join("none.tsv");
    std::fs::write(
        &empty,
        "query-id\tcorpus-id\tscore\nq1\tzz\t1\nq2\tzz2\t1\nq3\tzz3\t1\n",
    )
    .unwrap();
    let e = fails(
        &data,
        &[
            "adapter",
            "train",
            "kb",
            "--queries",
            q,
            "--qrels",
            empty.to_str().unwrap(),
            "--out",
            other_s,
            "--validation",
            "0",
        ],
    );
    assert!(e.contains("relevant document in collection"), "{e}");
    // A vector collection is not trained on (no documents), and an adapter of another
    // collection's model is refused as a conflict.
    ok(
        &data,
        &[
            "collection",
            "create",
            "vec",
            "--dim",
            "32",
            "--metric",
            "cosine",
        ],
    );
    let e = fails(
        &data,
        &[
            "adapter",
            "train",
            "vec",
            "--queries",
            q,
            "--qrels",
            r,
            "--out",
            other_s,
        ],
    );
    assert!(e.contains("not a document collection"), "{e}");
    let e = fails(&data, &["adapter", "attach", "vec", out_s]);
    assert!(e.contains("no dense space"), "{e}");
    let other_model = crate::tiny_model();
    ok(
        &data,
        &[
            "ingest",
            "kb2",
            "--jsonl",
            corpus.to_str().unwrap(),
            "--model",
            &other_model,
            "--no-splade",
        ],
    );
    let e = fails(&data, &["adapter", "attach", "kb2", out_s]);
    assert!(e.contains("trained for model"), "{e}");
}
