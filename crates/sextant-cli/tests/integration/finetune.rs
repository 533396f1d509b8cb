//! `sextant finetune` on the tiny sentence-transformers fixture and a small judged set: the
//! trained model directory loads and embeds, the training card and the pairs file report what
//! ran; model-mined negatives, Matryoshka training and a cross-encoder; options that do not go
//! together, a missing file or a non-empty output are refused by name.

use std::path::Path;

use serde_json::Value;

use crate::{sextant, stderr, tiny_st};

/// 24 documents and queries: query `i` is judged relevant to document `i`, with which it
/// shares a word no other pair uses.
pub(crate) fn beir(dir: &Path) {
    let words = [
        "cat", "bread", "river", "stock", "town", "mat", "bake", "flood", "market", "share",
        "recipe", "simple", "sharp", "lot", "today", "hit", "sits", "fell", "dropped", "how",
        "floods", "the", "on", "a",
    ];
    let mut corpus = String::new();
    let mut queries = String::new();
    let mut qrels = String::from("query-id\tcorpus-id\tscore\n");
    for (i, w) in words.iter().enumerate() {
        corpus.push_str(&format!(
            "{{\"_id\": \"d{i}\", \"title\": \"\", \"text\": \"a day with the {w}\"}}\n"
        ));
        queries.push_str(&format!(
            "{{\"_id\": \"q{i}\", \"text\": \"the {w} on a day\"}}\n"
        ));
        qrels.push_str(&format!("q{i}\td{i}\t1\n"));
    }
    std::fs::write(dir.join("corpus.jsonl"), corpus).unwrap();
    std::fs::write(dir.join("queries.jsonl"), queries).unwrap();
    std::fs::write(dir.join("qrels.tsv"), qrels).unwrap();
}

fn args<'a>(dir: &'a str, model: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<String> {
    let mut v: Vec<String> = vec![
        "finetune".into(),
        "--model".into(),
        model.into(),
        "--corpus".into(),
        format!("{dir}/corpus.jsonl"),
        "--queries".into(),
        format!("{dir}/queries.jsonl"),
        "--qrels".into(),
        format!("{dir}/qrels.tsv"),
        "--out".into(),
        out.into(),
    ];
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

fn run(a: &[String]) -> std::process::Output {
    let refs: Vec<&str> = a.iter().map(String::as_str).collect();
    sextant(&refs)
}

#[test]
fn finetune_trains_saves_a_loadable_model_and_a_training_card() {
    let tmp = tempfile::tempdir().unwrap();
    beir(tmp.path());
    let dir = tmp.path().to_string_lossy().into_owned();
    let model = tiny_st();
    let out = tmp.path().join("trained");
    let out_s = out.to_string_lossy().into_owned();
    let extra = [
        "--epochs",
        "4",
        "--batch",
        "8",
        "--lr",
        "2e-3",
        "--validation",
        "0.25",
        "--threads",
        "1",
    ];
    let o = run(&args(&dir, &model, &out_s, &extra));
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(
        printed.contains("nDCG@10 on 6 held-back queries"),
        "{printed}"
    );
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("training_card.json")).unwrap())
            .unwrap();
    // 24 judged queries, 6 held back: 18 pairs, each with a BM25 hard negative (the default).
    assert_eq!(card["pairs"], 18);
    assert_eq!(card["hard_negatives"], 18);
    assert_eq!(card["validation_queries"], 6);
    // 18 pairs in batches of 8: 3 steps an epoch (the last batch has 2 pairs).
    assert_eq!(card["steps"], 12);
    assert_eq!(card["options"]["train"]["epochs"], 4);
    assert_eq!(card["options"]["hard_negatives"], "bm25");
    for key in ["ndcg_before", "ndcg_after", "first_loss", "last_epoch_loss"] {
        let v = card[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {card}"));
        assert!(v.is_finite() && v >= 0.0, "{key} = {v}");
    }
    assert!(card["last_epoch_loss"].as_f64() < card["first_loss"].as_f64());
    // The output is a model directory Sextant embeds with.
    let texts = tmp.path().join("texts.txt");
    std::fs::write(&texts, "the cat on a day\n").unwrap();
    let npy = tmp.path().join("v.npy");
    let o = sextant(&[
        "embed",
        "--model",
        &out_s,
        "--input",
        &texts.to_string_lossy(),
        "--output",
        &npy.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(npy.is_file());
    // The pairs as trained: every epoch's, each with its hard negative.
    let pairs = std::fs::read_to_string(out.join("training_pairs.jsonl")).unwrap();
    let lines: Vec<Value> = pairs
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 4 * 18);
    assert!(lines
        .iter()
        .all(|l| l["negative"].is_string() && l["anchor"].is_string()));
    assert_eq!(lines[0]["epoch"], 1);
    assert_eq!(lines[71]["epoch"], 4);
    // A second run into the same, now non-empty, directory is refused.
    let o = run(&args(&dir, &model, &out_s, &["--validation", "0"]));
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("not empty"), "{}", stderr(&o));
}

#[test]
fn finetune_refuses_bad_input_and_options_that_do_not_go_together() {
    let tmp = tempfile::tempdir().unwrap();
    beir(tmp.path());
    let dir = tmp.path().to_string_lossy().into_owned();
    let model = tiny_st();
    let out = tmp.path().join("never").to_string_lossy().into_owned();
    let nowhere = tmp.path().join("nowhere").to_string_lossy().into_owned();
    for (extra, says) in [
        (vec!["--matryoshka", "8,99"], "Matryoshka width 99"),
        (vec!["--matryoshka", "0"], "--matryoshka"),
        (vec!["--cross-encoder", "--matryoshka", "8"], "--matryoshka"),
        (
            vec!["--cross-encoder", "--hard-negatives", "none"],
            "--cross-encoder",
        ),
        (vec!["--loss", "triplet"], "--loss"),
        (vec!["--loss", "listwise"], "--loss listwise"),
        (vec!["--loss", "bce"], "--loss bce"),
        (vec!["--cross-encoder", "--loss", "mnrl"], "--loss mnrl"),
        (vec!["--negatives", "3"], "--negatives"),
        (vec!["--cross-encoder", "--negatives", "0"], "--negatives"),
        (vec!["--batch", "1"], "--batch"),
        (vec!["--validation", "1.5"], "validation"),
        (vec!["--cross-encoder", "--symmetric"], "--symmetric"),
        (vec!["--patience", "2"], "--patience"),
        (vec!["--eval-steps", "0"], "--eval-steps"),
        (
            vec!["--eval-steps", "2", "--validation", "0"],
            "--eval-steps",
        ),
        (
            vec!["--cross-encoder", "--validation-docs", "50"],
            "--validation-docs",
        ),
        (vec!["--resume", &nowhere], "nowhere"),
        (vec!["--collection", "kb"], "cannot be used with"),
        (vec!["--pairs", "title"], "--collection"),
        (vec!["--tenant", "acme"], "--collection"),
        (vec!["--all-tenants"], "--collection"),
    ] {
        let o = run(&args(&dir, &model, &out, &extra));
        assert!(!o.status.success(), "{extra:?} accepted");
        assert!(stderr(&o).contains(says), "{extra:?}: {}", stderr(&o));
        assert!(!Path::new(&out).exists(), "{extra:?} wrote {out}");
    }
    let missing = tmp.path().join("nope.tsv").to_string_lossy().into_owned();
    let mut a = args(&dir, &model, &out, &[]);
    a[8] = missing;
    let o = run(&a);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("nope.tsv"), "{}", stderr(&o));
}

/// `--hard-negatives model` and `--matryoshka` train and say so in the card.
#[test]
fn finetune_mines_negatives_with_the_model_and_trains_matryoshka_widths() {
    let tmp = tempfile::tempdir().unwrap();
    beir(tmp.path());
    let dir = tmp.path().to_string_lossy().into_owned();
    let model = tiny_st();
    let out = tmp.path().join("mrl").to_string_lossy().into_owned();
    let extra = [
        "--hard-negatives",
        "model",
        "--matryoshka",
        "8,4",
        "--epochs",
        "2",
        "--batch",
        "8",
        "--validation",
        "0",
        "--threads",
        "1",
    ];
    let o = run(&args(&dir, &model, &out, &extra));
    assert!(o.status.success(), "{}", stderr(&o));
    let card: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&out).join("training_card.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(card["options"]["hard_negatives"], "model");
    assert_eq!(
        card["options"]["train"]["matryoshka"],
        serde_json::json!([8, 4])
    );
    assert_eq!(card["hard_negatives"], 24);
    // A mined negative is never the pair's own (judged) document.
    let pairs = std::fs::read_to_string(Path::new(&out).join("training_pairs.jsonl")).unwrap();
    for line in pairs.lines() {
        let l: Value = serde_json::from_str(line).unwrap();
        assert_ne!(l["negative"], l["positive"], "{line}");
    }
}

/// `--cross-encoder` writes a `BertForSequenceClassification` directory that `rerank` loads,
/// and scores the held-back queries as BM25 before and reranked after.
#[test]
fn finetune_trains_a_cross_encoder_that_reranks() {
    let tmp = tempfile::tempdir().unwrap();
    beir(tmp.path());
    let dir = tmp.path().to_string_lossy().into_owned();
    let model = tiny_st();
    let out = tmp.path().join("ce").to_string_lossy().into_owned();
    let extra = [
        "--cross-encoder",
        "--negatives",
        "3",
        "--epochs",
        "2",
        "--batch",
        "8",
        "--lr",
        "1e-3",
        "--validation",
        "0.25",
        "--eval-steps",
        "2",
        "--threads",
        "1",
    ];
    let o = run(&args(&dir, &model, &out, &extra));
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = String::from_utf8_lossy(&o.stdout);
    assert!(
        printed.contains("reranked by the cross-encoder")
            && printed.contains("held-back nDCG@10 by step: 2 "),
        "{printed}"
    );
    let out_dir = Path::new(&out);
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    assert!(!out_dir.join("modules.json").exists());
    let card: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("training_card.json")).unwrap())
            .unwrap();
    assert_eq!(card["options"]["cross_encoder"], true);
    assert_eq!(card["options"]["cross_loss"], "listwise");
    assert_eq!(card["options"]["cross_negatives"], 3);
    assert!(card["ndcg_after"].as_f64().is_some() && card["ndcg_before"].as_f64().is_some());
    // Validated at steps 2, 4 and 6 (18 groups in batches of 8, 2 epochs): the directory holds
    // the best-scoring weights.
    let validations = card["validations"].as_array().unwrap();
    let steps: Vec<u64> = validations
        .iter()
        .map(|v| v["step"].as_u64().unwrap())
        .collect();
    assert_eq!(steps, [2, 4, 6]);
    let best = validations
        .iter()
        .map(|v| v["ndcg"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(card["ndcg_after"].as_f64(), Some(best));
    // 18 training pairs (6 of 24 queries held back), each with 3 negatives drawn from BM25's
    // list, none of them the pair's own document.
    assert_eq!(card["pairs"], 18);
    assert_eq!(card["hard_negatives"], 18 * 3);
    let pairs = std::fs::read_to_string(out_dir.join("training_pairs.jsonl")).unwrap();
    for line in pairs.lines() {
        let l: Value = serde_json::from_str(line).unwrap();
        let negatives = l["negatives"].as_array().unwrap();
        assert_eq!(negatives.len(), 3, "{line}");
        assert_eq!(l["negative"], negatives[0], "{line}");
        assert!(negatives.iter().all(|n| *n != l["positive"]), "{line}");
    }
    // The directory is a reranker.
    let passages = tmp.path().join("passages.txt");
    std::fs::write(&passages, "a day with the cat\na day with the bread\n").unwrap();
    let o = sextant(&[
        "rerank",
        "--model",
        &out,
        "--query",
        "the cat on a day",
        "--input",
        &passages.to_string_lossy(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("a day with the bread"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
}

/// `--loss bce` trains the pointwise cross-encoder and says so in the card; its groups have an
/// easy negative besides the drawn ones.
#[test]
fn finetune_trains_a_cross_encoder_with_binary_cross_entropy() {
    let tmp = tempfile::tempdir().unwrap();
    beir(tmp.path());
    let dir = tmp.path().to_string_lossy().into_owned();
    let model = tiny_st();
    let out = tmp.path().join("ce").to_string_lossy().into_owned();
    let extra = [
        "--cross-encoder",
        "--loss",
        "bce",
        "--batch",
        "8",
        "--validation",
        "0",
        "--threads",
        "1",
    ];
    let o = run(&args(&dir, &model, &out, &extra));
    assert!(o.status.success(), "{}", stderr(&o));
    let card: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&out).join("training_card.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(card["options"]["cross_loss"], "bce");
    assert_eq!(card["options"]["cross_negatives"], 3);
    assert_eq!(card["hard_negatives"], 24 * 3);
    assert_eq!(card["options"]["train"]["lr"], 2e-4);
}

/// `--collection` trains on a collection's titles (`--pairs title`): no BEIR files.
#[test]
fn finetune_trains_on_a_collections_titles() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data").to_string_lossy().into_owned();
    let corpus = tmp.path().join("corpus.jsonl");
    let words = [
        "cat", "bread", "river", "stock", "town", "mat", "bake", "flood",
    ];
    let lines: Vec<String> = words
        .iter()
        .enumerate()
        .map(|(i, w)| {
            serde_json::json!({"_id": format!("d{i}"), "title": format!("all about the {w}"),
                "text": format!("a long day with the {w} and nothing else")})
            .to_string()
        })
        .collect();
    std::fs::write(&corpus, lines.join("\n") + "\n").unwrap();
    let model = tiny_st();
    let o = sextant(&[
        "--data",
        &data,
        "ingest",
        "kb",
        "--jsonl",
        &corpus.to_string_lossy(),
        "--model",
        &model,
        "--no-splade",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = tmp.path().join("tuned").to_string_lossy().into_owned();
    let o = sextant(&[
        "--data",
        &data,
        "finetune",
        "--model",
        &model,
        "--collection",
        "kb",
        "--pairs",
        "title",
        "--out",
        &out,
        "--batch",
        "4",
        "--validation",
        "0.25",
        "--threads",
        "1",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let card: Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&out).join("training_card.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(card["options"]["data"]["collection"], "kb");
    assert_eq!(card["validation_queries"], 2);
    assert_eq!(card["train_queries"], 6);
    assert_eq!(card["pairs"], 6);
    let o = sextant(&[
        "--data",
        &data,
        "finetune",
        "--model",
        &model,
        "--collection",
        "nope",
        "--out",
        &tmp.path().join("never").to_string_lossy(),
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("nope"), "{}", stderr(&o));
    // `--tenant` on a collection without a tenant key is refused by name, not ignored.
    let o = sextant(&[
        "--data",
        &data,
        "finetune",
        "--model",
        &model,
        "--collection",
        "kb",
        "--tenant",
        "acme",
        "--out",
        &tmp.path().join("never").to_string_lossy(),
    ]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("tenant") && err.contains("not multi-tenant"),
        "{err}"
    );
    assert!(!tmp.path().join("never").exists());
}
