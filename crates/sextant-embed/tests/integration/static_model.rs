//! Model2Vec static models against model2vec 0.10.0's `StaticModel.encode`: the tiny random
//! fixtures `tiny-static` (normalised, `max_length` 512) and `tiny-static-raw` (raw,
//! `max_length` 16: both the character and the token cut bite), and the real
//! `tokenlearn-static-model` (int8 table, token mapping and weights, the unknown-id quirk) when
//! `models/tokenlearn-static-64d/` is installed. Then what a static model shares with the
//! transformers: prompts, fingerprints, batch and thread invariance, Matryoshka truncation.

use std::path::Path;

use serde_json::Value;
use sextant_embed::{
    Embedder, EmbedderOptions, InputKind, ModelKind, Pooling, StaticEmbedder, TextEmbedder,
};

use crate::{compare, fixture, floats, ints, load_json, workspace_root};

/// The MiniLM parity bars (`minilm.rs`).
const MAX_ABS: f64 = 1e-5;
const MIN_COS: f64 = 0.99999;
/// Where `scripts/setup-models.sh` puts the real model.
const REAL_MODEL: &str = "tokenlearn-static-64d";

fn load(dir: &Path, opts: EmbedderOptions) -> StaticEmbedder {
    let m = TextEmbedder::load(dir.to_str().unwrap(), opts)
        .unwrap_or_else(|e| panic!("load {}: {e}", dir.display()));
    assert_eq!(m.kind(), ModelKind::Static);
    assert_eq!(m.pooling(), Pooling::Mean);
    match m {
        TextEmbedder::Static(m) => m,
        other => unreachable!("{:?}", other.kind()),
    }
}

/// Ids and vectors of `items` (reference `text`, `ids`, `embedding`); the worst `(abs, cos)`.
fn check_items(m: &StaticEmbedder, name: &str, items: &[Value]) -> (f64, f64) {
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    for (t, item) in texts.iter().zip(items) {
        let got = m.encode(t).unwrap().ids;
        assert_eq!(got, ints(&item["ids"]), "{name}: ids of {t:?}");
    }
    let out = m.embed(&texts, InputKind::Plain).unwrap();
    assert_eq!(out.len(), texts.len());
    let (mut worst_abs, mut worst_cos) = (0f64, 1f64);
    for (k, item) in items.iter().enumerate() {
        let got = out.row(k);
        assert!(got.iter().all(|x| x.is_finite()), "{name}: text {k}");
        let (abs, cos) = compare(got, &floats(&item["embedding"]));
        assert!(
            abs <= MAX_ABS && cos >= MIN_COS,
            "{name}, text {k} ({:?}): max abs diff {abs:e}, cosine {cos}",
            texts[k]
        );
        worst_abs = worst_abs.max(abs);
        worst_cos = worst_cos.min(cos);
    }
    (worst_abs, worst_cos)
}

#[test]
fn tiny_static_models_match_model2vec() {
    let j = load_json("tiny_static_reference.json");
    for v in j["variants"].as_array().unwrap() {
        let name = v["dir"].as_str().unwrap();
        let m = load(&fixture(name), EmbedderOptions::default());
        assert_eq!(m.dim(), j["dim"].as_u64().unwrap() as usize);
        assert_eq!(
            m.median_token_length(),
            v["median_token_length"].as_u64().unwrap() as usize
        );
        assert_eq!(m.max_length(), v["max_length"].as_u64().map(|x| x as usize));
        assert_eq!(m.unk_id(), v["unk_token_id"].as_u64().map(|x| x as u32));
        assert_eq!(m.normalize(), v["normalize"].as_bool().unwrap());
        let items = v["items"].as_array().unwrap();
        let (abs, cos) = check_items(&m, name, items);
        eprintln!(
            "{name}: max abs diff {abs:e}, 1 - min cosine {:e}",
            1.0 - cos
        );
        // The texts exercise both cuts: one cut by characters, one by tokens only.
        let cut: Vec<bool> = items
            .iter()
            .map(|i| m.encode(i["text"].as_str().unwrap()).unwrap().truncated)
            .collect();
        assert!(cut.iter().any(|&c| c), "{name}: no text was cut");
        let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
        let out = m.embed(&texts, InputKind::Plain).unwrap();
        assert_eq!(out.truncated, cut.iter().filter(|&&c| c).count());
    }
}

/// The real Model2Vec model (int8 table, mapping, weights, unk_id on "."). Skipped, with a
/// note, until `scripts/setup-models.sh` has installed it.
#[test]
fn real_static_model_matches_model2vec() {
    let dir = workspace_root().join("models").join(REAL_MODEL);
    if !dir.join("model.safetensors").is_file() {
        eprintln!(
            "SKIPPED real_static_model_matches_model2vec: {} is missing (run \
             scripts/setup-models.sh to install tokenlearn-static-model 0.1.1 there)",
            dir.display()
        );
        return;
    }
    let j = load_json("static_real_reference.json");
    let m = load(&dir, EmbedderOptions::default());
    assert_eq!(m.dim(), j["dim"].as_u64().unwrap() as usize);
    assert_eq!(
        m.median_token_length(),
        j["median_token_length"].as_u64().unwrap() as usize
    );
    assert_eq!(m.max_length(), Some(512));
    // The quirk: model.unk_id is 3, the token ".", and model2vec drops it.
    assert_eq!(m.unk_id(), Some(3));
    assert_eq!(m.tokenizer().id_to_token(3).as_deref(), Some("."));
    assert!(m.normalize());
    let (abs, cos) = check_items(&m, REAL_MODEL, j["items"].as_array().unwrap());
    eprintln!(
        "{REAL_MODEL}: max abs diff {abs:e}, 1 - min cosine {:e}",
        1.0 - cos
    );
    let full_stop = m.encode("A sentence. Another one.").unwrap().ids;
    assert!(!full_stop.contains(&3), "{full_stop:?}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn parity_texts() -> Vec<String> {
    let j = load_json("tiny_static_reference.json");
    j["variants"][0]["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["text"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn static_batches_threads_and_single_texts_agree() {
    let texts = parity_texts();
    let mut texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    texts.extend(texts.clone().iter().rev());
    let m = load(&fixture("tiny-static"), EmbedderOptions::default());
    let all = m.embed(&texts, InputKind::Plain).unwrap();
    let threaded = load(
        &fixture("tiny-static"),
        EmbedderOptions {
            threads: Some(3),
            ..Default::default()
        },
    )
    .embed(&texts, InputKind::Plain)
    .unwrap();
    assert_eq!(all, threaded);
    for (k, t) in texts.iter().enumerate() {
        assert_eq!(m.embed(&[t], InputKind::Plain).unwrap().row(0), all.row(k));
    }
    assert!(m.embed(&[], InputKind::Query).unwrap().is_empty());
}

#[test]
fn static_prompts_dimension_and_fingerprint() {
    let plain = load(&fixture("tiny-static"), EmbedderOptions::default());
    let fp = plain.fingerprint().clone();
    assert_eq!(fp.pooling, Some(Pooling::Mean));
    assert!(fp.normalize);
    assert_eq!((fp.dim, fp.query_prefix.as_str()), (16, ""));
    // Same vectors, other max_length and normalisation: another space.
    let raw = load(&fixture("tiny-static-raw"), EmbedderOptions::default());
    assert_ne!(raw.fingerprint().weights_sha256, fp.weights_sha256);
    assert!(fp.check(raw.fingerprint()).is_err());

    // Prompts from config_sentence_transformers.json apply as for transformers.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("tiny-static"), dir.path());
    std::fs::write(
        dir.path().join("config_sentence_transformers.json"),
        r#"{"prompts": {"query": "query: ", "passage": "passage: ", "document": ""}}"#,
    )
    .unwrap();
    let prompted = load(dir.path(), EmbedderOptions::default());
    let fp2 = prompted.fingerprint();
    assert_eq!(
        (fp2.query_prefix.as_str(), fp2.passage_prefix.as_str()),
        ("query: ", "passage: ")
    );
    assert_eq!(fp2.weights_sha256, fp.weights_sha256);
    assert!(fp.check(fp2).is_err());
    let t = "Unable to locate package";
    let q = prompted.embed(&[t], InputKind::Query).unwrap();
    let by_hand = plain
        .embed(&[&format!("query: {t}")], InputKind::Plain)
        .unwrap();
    assert_eq!(q.row(0), by_hand.row(0));
    let p = prompted.embed(&[t], InputKind::Passage).unwrap();
    assert_ne!(p.row(0), q.row(0));

    // Matryoshka: the first 8 components of the raw mean, normalised.
    let short = load(
        &fixture("tiny-static"),
        EmbedderOptions {
            dim: Some(8),
            ..Default::default()
        },
    );
    assert_eq!((short.dim(), short.fingerprint().dim), (8, 8));
    let unnormalised = load(
        &fixture("tiny-static"),
        EmbedderOptions {
            normalize: Some(false),
            ..Default::default()
        },
    );
    let mut want = unnormalised
        .embed(&[t], InputKind::Plain)
        .unwrap()
        .into_vec();
    want.truncate(8);
    let norm = want.iter().map(|x| x * x).sum::<f32>().sqrt();
    want.iter_mut().for_each(|x| *x /= norm);
    let got = short.embed(&[t], InputKind::Plain).unwrap();
    assert!(compare(got.row(0), &want).0 <= 1e-6);
    // Token counting for chunkers: the tokenizer's spans, no special tokens.
    let spans = plain.tokenizer().token_spans("hello world").unwrap();
    let ids = plain.tokenizer().encode_plain("hello world").unwrap();
    assert_eq!(spans.len(), ids.len());
}
