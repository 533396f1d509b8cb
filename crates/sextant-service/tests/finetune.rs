//! A supervised fine-tuning run: held-back queries scored every N steps, early stopping that
//! keeps the best weights, and a run that crashes after a checkpoint resumed to the same end
//! as a run that never stopped; resuming with other settings, or starting over a directory
//! that holds checkpoints, is refused by name.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use sextant_embed::{BertEmbedder, Embedder, EmbedderOptions, InputKind, Precision, TrainOptions};
use sextant_service::finetune::{
    finetune, CrossLoss, FinetuneOptions, FinetuneReport, HardNegatives, TrainingData,
    CHECKPOINTS_DIR,
};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sextant-embed/tests/fixtures")
        .join(name)
}

/// 24 queries, query `i` judged relevant to document `i`, with which it shares a word.
fn beir(dir: &Path) {
    let words = [
        "cat", "bread", "river", "stock", "town", "mat", "bake", "flood", "market", "share",
        "recipe", "simple", "sharp", "lot", "today", "hit", "sits", "fell", "dropped", "how",
        "floods", "violin", "harbour", "owl",
    ];
    let (mut corpus, mut queries) = (String::new(), String::new());
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

fn options(dir: &Path, out: &str) -> FinetuneOptions {
    FinetuneOptions {
        model: fixture("tiny-st"),
        data: TrainingData::Beir {
            corpus: dir.join("corpus.jsonl"),
            queries: dir.join("queries.jsonl"),
            qrels: dir.join("qrels.tsv"),
        },
        out: dir.join(out),
        hard_negatives: HardNegatives::Bm25,
        max_seq: Some(32),
        validation: 0.25,
        threads: Some(1),
        cross_encoder: false,
        cross_loss: CrossLoss::Listwise,
        cross_negatives: 3,
        validation_docs: 10_000,
        eval_steps: Some(2),
        patience: None,
        checkpoint_steps: Some(4),
        resume: None,
        mixed_precision: false,
        train: TrainOptions {
            epochs: 4,
            batch: 8,
            lr: 2e-3,
            symmetric: true,
            ..TrainOptions::default()
        },
    }
}

fn embed(model: &Path, texts: &[&str]) -> Vec<Vec<f32>> {
    let opts = EmbedderOptions {
        precision: Some(Precision::F32),
        ..EmbedderOptions::default()
    };
    let e = BertEmbedder::load(&model.to_string_lossy(), opts).unwrap();
    e.embed(texts, InputKind::Plain)
        .unwrap()
        .rows()
        .map(<[f32]>::to_vec)
        .collect()
}

/// nDCG@10 of exact cosine retrieval by the model in `out` for the queries it did not train on
/// (those absent from its `training_pairs.jsonl`), over the whole corpus: one relevant
/// document each, so 1 / log2(rank + 1).
fn held_back_ndcg(dir: &Path, out: &Path) -> f64 {
    let lines = |p: PathBuf| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let trained: std::collections::HashSet<String> = lines(out.join("training_pairs.jsonl"))
        .iter()
        .map(|l| l["anchor"].as_str().unwrap().to_owned())
        .collect();
    let docs: Vec<String> = lines(dir.join("corpus.jsonl"))
        .iter()
        .map(|d| d["text"].as_str().unwrap().to_owned())
        .collect();
    let queries: Vec<(usize, String)> = lines(dir.join("queries.jsonl"))
        .iter()
        .enumerate()
        .map(|(i, q)| (i, q["text"].as_str().unwrap().to_owned()))
        .filter(|(_, t)| !trained.contains(t))
        .collect();
    assert_eq!(queries.len(), 6);
    let d = embed(out, &docs.iter().map(String::as_str).collect::<Vec<_>>());
    let q = embed(
        out,
        &queries.iter().map(|(_, t)| t.as_str()).collect::<Vec<_>>(),
    );
    let cos = |a: &[f32], b: &[f32]| {
        let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
        let n = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt();
        dot / (n(a) * n(b))
    };
    let mut total = 0.0;
    for ((rel, _), qv) in queries.iter().zip(&q) {
        let own = cos(qv, &d[*rel]);
        // Ties broken by document order, as the trainer's ranking does.
        let rank = 1 + d
            .iter()
            .enumerate()
            .filter(|(i, dv)| {
                let s = cos(qv, dv);
                s > own || (s == own && i < rel)
            })
            .count();
        if rank <= 10 {
            total += 1.0 / (rank as f64 + 1.0).log2();
        }
    }
    total / queries.len() as f64
}

fn best(report: &FinetuneReport) -> (usize, f64) {
    let mut best = report.validations[0];
    for v in &report.validations {
        if v.ndcg > best.ndcg {
            best = *v;
        }
    }
    (best.step, best.ndcg)
}

#[test]
fn validation_early_stopping_and_a_resumed_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    beir(dir);

    // Uninterrupted: 18 training pairs in batches of 8 are 3 steps an epoch, 12 in all;
    // validated every 2 steps; the model saved is the best-scoring one.
    let whole = finetune(&options(dir, "whole"), |_| {}).unwrap();
    assert_eq!(whole.steps, 12);
    let steps: Vec<usize> = whole.validations.iter().map(|v| v.step).collect();
    assert_eq!(steps, [2, 4, 6, 8, 10, 12]);
    let (best_step, best_ndcg) = best(&whole);
    assert_eq!(whole.best_step, Some(best_step));
    assert_eq!(whole.ndcg_after, Some(best_ndcg));
    assert!(!whole.stopped_early && whole.resumed_from.is_none());
    assert!((held_back_ndcg(dir, &dir.join("whole")) - best_ndcg).abs() < 1e-6);
    assert!(!dir.join("whole").join(CHECKPOINTS_DIR).exists());
    assert!(whole.options.train.symmetric);

    // A crash at step 7, after the checkpoint of step 4: resumed from it, the run ends as the
    // uninterrupted one did.
    let crashed = std::panic::catch_unwind(|| {
        finetune(&options(dir, "resumed"), |s| {
            assert!(s.step < 7, "simulated crash at step {}", s.step);
        })
    });
    assert!(crashed.is_err());
    let checkpoint = dir
        .join("resumed")
        .join(CHECKPOINTS_DIR)
        .join("step-000004");
    for part in ["model", "optimizer.safetensors", "state.json"] {
        assert!(checkpoint.join(part).exists(), "{part}");
    }
    // A fresh run over the crashed one's checkpoints is refused.
    let err = finetune(&options(dir, "resumed"), |_| {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("checkpoints of an earlier run"), "{err}");
    // So is resuming with other settings, naming the setting.
    let mut other = options(dir, "resumed");
    other.resume = Some(checkpoint.clone());
    other.train.batch = 6;
    let err = finetune(&other, |_| {}).unwrap_err().to_string();
    assert!(err.contains("train.batch was 8, now 6"), "{err}");
    let mut again = options(dir, "resumed");
    again.resume = Some(checkpoint);
    let mut seen = Vec::new();
    let resumed = finetune(&again, |s| seen.push(s.step)).unwrap();
    assert_eq!(seen.first(), Some(&5));
    assert_eq!(resumed.resumed_from, Some(4));
    assert_eq!(resumed.steps, 12);
    assert_eq!(resumed.best_step, whole.best_step);
    for (a, b) in resumed.validations.iter().zip(&whole.validations) {
        assert_eq!(a.step, b.step);
        assert!((a.ndcg - b.ndcg).abs() < 1e-9, "{a:?} {b:?}");
    }
    assert!(!dir.join("resumed").join(CHECKPOINTS_DIR).exists());
    let texts = ["the river on a day", "a day with the owl"];
    let (x, y) = (
        embed(&dir.join("whole"), &texts),
        embed(&dir.join("resumed"), &texts),
    );
    for (a, b) in x.iter().flatten().zip(y.iter().flatten()) {
        assert!((a - b).abs() < 1e-4, "{a} {b}");
    }

    // Early stopping: validated every step, stopped at the first validation that is not
    // better than the best; the best weights are the ones saved.
    let mut eager = options(dir, "eager");
    eager.eval_steps = Some(1);
    eager.patience = Some(1);
    eager.checkpoint_steps = None;
    let stopped = finetune(&eager, |_| {}).unwrap();
    assert!(stopped.stopped_early, "{:?}", stopped.validations);
    assert!(stopped.steps < 12);
    assert_eq!(stopped.validations.len(), stopped.steps);
    let (best_step, best_ndcg) = best(&stopped);
    assert_eq!(stopped.best_step, Some(best_step));
    assert!(best_step < stopped.steps, "{:?}", stopped.validations);
    assert_eq!(stopped.ndcg_after, Some(best_ndcg));
    assert!((held_back_ndcg(dir, &dir.join("eager")) - best_ndcg).abs() < 1e-6);
    let card: HashMap<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("eager").join("training_card.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(card["stopped_early"], true);
    assert_eq!(card["best_step"], best_step);
}

/// Pairs from a collection's own structure: titles and section headings become queries, a
/// heading over more than 3 documents does not, and each query trains on its first 2
/// passages; the model trains and is validated on held-back titles. A vector collection, or
/// one with neither titles nor headings, is refused by name.
#[test]
fn pairs_from_a_collections_titles_and_sections() {
    use sextant_service::finetune::{StructurePairs, MAX_HEADING_DOCUMENTS, PAIRS_PER_QUERY};
    use sextant_service::{Document, IngestOptions, Scope, Service, ServiceConfig};
    let tmp = tempfile::tempdir().unwrap();
    let svc = Service::open(&tmp.path().join("data"), ServiceConfig::default()).unwrap();
    let words = [
        "falcon", "harbour", "violin", "glacier", "orchard", "engine", "lantern", "meadow",
    ];
    let doc = |i: usize, w: &str, title: &str| {
        let para = |topic: &str| {
            format!(
                "The {w} and its {topic} were described at length. Every {w} keeps to the {topic}."
            )
        };
        Document {
            id: format!("d{i}"),
            title: title.into(),
            text: format!(
                "# {w} habits\n\n{}\n\n{}\n\n{}\n\n# Description\n\n{}\n",
                para("seasons"),
                para("nests"),
                para("travels"),
                para("colours")
            ),
            ..Document::default()
        }
    };
    let docs: Vec<Document> = words
        .iter()
        .enumerate()
        .map(|(i, w)| doc(i, w, &format!("All about the {w}")))
        .collect();
    let ingest = |name: &str, docs: Vec<Document>| {
        let opts = IngestOptions {
            model: Some(fixture("tiny-st").to_string_lossy().into_owned()),
            no_splade: true,
            chunking: Some("paragraphs".into()),
            chunk_tokens: Some(24),
            ..IngestOptions::default()
        };
        let mut it = docs.into_iter().map(Ok);
        svc.ingest(name, &Scope::Unscoped, &opts, &mut it, &mut |_| {})
            .unwrap();
    };
    ingest("notes", docs);
    let chunks = svc
        .collection("notes")
        .unwrap()
        .scroll(&Scope::Unscoped, None, 1000, None, None, true)
        .unwrap()
        .points;
    let per_doc = chunks.len() / words.len();
    assert!(per_doc > PAIRS_PER_QUERY, "{} chunks", chunks.len());
    assert!(chunks
        .iter()
        .any(|c| c.payload.as_ref().unwrap()["section"] == "Description"));
    let mut opts = options(tmp.path(), "structure");
    opts.data = TrainingData::Collection {
        collection: "notes".into(),
        pairs: StructurePairs::Both,
        tenant: None,
        all_tenants: false,
    };
    opts.eval_steps = None;
    opts.checkpoint_steps = None;
    opts.train.epochs = 2;
    opts.train.batch = 4;
    let report = svc.finetune(&opts, |_| {}).unwrap();
    // 8 titles and 8 "W habits" headings; "Description" heads all 8 documents
    // (> MAX_HEADING_DOCUMENTS) and is no query. 4 of the 16 queries are held back.
    assert!(words.len() > MAX_HEADING_DOCUMENTS);
    assert_eq!(report.train_queries + report.validation_queries, 16);
    assert_eq!(report.validation_queries, 4);
    assert_eq!(report.pairs, 12 * PAIRS_PER_QUERY);
    assert!(report.ndcg_before.is_some() && report.ndcg_after.is_some());
    assert_eq!(report.validation_docs, chunks.len());
    let pairs = std::fs::read_to_string(tmp.path().join("structure/training_pairs.jsonl")).unwrap();
    let anchors: std::collections::HashSet<String> = pairs
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["anchor"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(
        anchors
            .iter()
            .all(|a| a.starts_with("All about") || a.ends_with("habits")),
        "{anchors:?}"
    );
    let card: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("structure/training_card.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(card["options"]["data"]["from"], "collection");
    assert_eq!(card["options"]["data"]["pairs"], "both");

    // Titles only: 8 queries (2 held back).
    let mut titles = options(tmp.path(), "titles");
    titles.data = TrainingData::Collection {
        collection: "notes".into(),
        pairs: StructurePairs::Title,
        tenant: None,
        all_tenants: false,
    };
    titles.eval_steps = None;
    titles.checkpoint_steps = None;
    let report = svc.finetune(&titles, |_| {}).unwrap();
    assert_eq!(report.train_queries + report.validation_queries, 8);

    // Refusals: a collection without titles or headings; a missing collection; BEIR-only
    // `finetune` given a collection.
    ingest(
        "bare",
        (0..4)
            .map(|i| Document {
                id: format!("b{i}"),
                text: format!("plain words number {i} without any heading"),
                ..Document::default()
            })
            .collect(),
    );
    let mut bare = options(tmp.path(), "bare");
    bare.data = TrainingData::Collection {
        collection: "bare".into(),
        pairs: StructurePairs::Both,
        tenant: None,
        all_tenants: false,
    };
    let err = svc.finetune(&bare, |_| {}).unwrap_err().to_string();
    assert!(err.contains("titles or section headings"), "{err}");
    bare.data = TrainingData::Collection {
        collection: "missing".into(),
        pairs: StructurePairs::Title,
        tenant: None,
        all_tenants: false,
    };
    assert!(svc
        .finetune(&bare, |_| {})
        .unwrap_err()
        .to_string()
        .contains("missing"));
    let err = finetune(&bare, |_| {}).unwrap_err().to_string();
    assert!(err.contains("Service::finetune"), "{err}");

    // A multi-tenant collection: tenant a holds 6 documents, b 2. The pairs come from one
    // tenant's documents, or from every tenant's when asked for by name; with neither the run
    // is refused, naming `tenant` (a model carries its training text).
    let mt_opts = IngestOptions {
        model: Some(fixture("tiny-st").to_string_lossy().into_owned()),
        no_splade: true,
        chunking: Some("paragraphs".into()),
        chunk_tokens: Some(24),
        tenant_key: Some("org".into()),
        ..IngestOptions::default()
    };
    for (org, range) in [("a", 0..6), ("b", 6..8)] {
        let mut it = words[range.clone()].iter().zip(range).map(|(w, i)| {
            let mut d = doc(i, w, &format!("All about the {w}"));
            d.tenant = Some(sextant_engine::TenantId::Str(org.into()));
            Ok(d)
        });
        svc.ingest("mt", &Scope::AllTenants, &mt_opts, &mut it, &mut |_| {})
            .unwrap();
    }
    let mut mt = options(tmp.path(), "mt-none");
    mt.eval_steps = None;
    mt.checkpoint_steps = None;
    let run = |mt: &mut sextant_service::finetune::FinetuneOptions,
               out: &str,
               tenant: Option<&str>,
               all_tenants: bool| {
        mt.out = tmp.path().join(out);
        mt.data = TrainingData::Collection {
            collection: "mt".into(),
            pairs: StructurePairs::Title,
            tenant: tenant.map(str::to_owned),
            all_tenants,
        };
        svc.finetune(mt, |_| {})
    };
    let err = run(&mut mt, "mt-none", None, false).unwrap_err();
    assert_eq!(err.field(), Some("tenant"), "{err}");
    assert!(err.to_string().contains("multi-tenant"), "{err}");
    let a = run(&mut mt, "mt-a", Some("a"), false).unwrap();
    assert_eq!(a.train_queries + a.validation_queries, 6);
    let anchors = std::fs::read_to_string(tmp.path().join("mt-a/training_pairs.jsonl")).unwrap();
    for w in &words[6..8] {
        assert!(!anchors.contains(w), "tenant b's {w} in tenant a's pairs");
    }
    let b = run(&mut mt, "mt-b", Some("b"), false).unwrap();
    assert_eq!(b.train_queries + b.validation_queries, 2);
    let all = run(&mut mt, "mt-all", None, true).unwrap();
    assert_eq!(all.train_queries + all.validation_queries, 8);
    let err = run(&mut mt, "mt-both", Some("a"), true).unwrap_err();
    assert_eq!(err.field(), Some("tenant"), "{err}");
    // A tenant in a collection without a tenant key is refused, not ignored.
    mt.out = tmp.path().join("notes-tenant");
    mt.data = TrainingData::Collection {
        collection: "notes".into(),
        pairs: StructurePairs::Title,
        tenant: Some("a".into()),
        all_tenants: false,
    };
    let err = svc.finetune(&mt, |_| {}).unwrap_err();
    assert_eq!(err.field(), Some("tenant"), "{err}");
    assert!(err.to_string().contains("not multi-tenant"), "{err}");
}
