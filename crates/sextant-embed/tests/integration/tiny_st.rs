//! The tiny random sentence-transformers model (committed fixture `tiny-st`) against
//! sentence-transformers: every pooling mode, prompts left out of pooling, `Dense` modules and
//! `Normalize` (each case writes the `modules.json` and pooling `config.json` that
//! sentence-transformers saved for it); then the architectures and modules that must be refused.

use std::path::Path;

use serde_json::Value;
use sextant_embed::{
    BertEmbedder, CrossEncoder, EmbedError, Embedder, EmbedderOptions, InputKind, Pooling,
    RerankerOptions, SpladeEncoder, SpladeOptions,
};

use crate::{compare, fixture, floats, ints, load_json};

const MIN_COSINE: f64 = 0.9999;
const MAX_ABS: f64 = 1e-4;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// A copy of the tiny model, to be edited.
fn tiny_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("tiny-st"), dir.path());
    dir
}

/// A copy of the tiny model with the modules and pooling of a reference case.
fn model_for(case: &Value) -> tempfile::TempDir {
    let dir = tiny_copy();
    let write = |rel: &str, v: &Value| {
        std::fs::write(dir.path().join(rel), serde_json::to_vec_pretty(v).unwrap()).unwrap()
    };
    write("modules.json", &case["modules"]);
    let pooling = format!("{}/config.json", case["pooling_path"].as_str().unwrap());
    write(&pooling, &case["pooling_config"]);
    dir
}

fn load(dir: &Path, prompt: Option<&str>) -> BertEmbedder {
    BertEmbedder::load(
        dir.to_str().unwrap(),
        EmbedderOptions {
            batch_size: Some(4),
            query_prefix: prompt.map(str::to_owned),
            ..Default::default()
        },
    )
    .unwrap()
}

#[test]
fn every_pooling_mode_and_dense_module_matches_sentence_transformers() {
    let j = load_json("tiny_st_reference.json");
    let texts: Vec<&str> = j["texts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    for case in j["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let prompt = case["prompt"].as_str();
        let dir = model_for(case);
        let m = load(dir.path(), prompt);
        assert_eq!(m.dim(), case["dim"].as_u64().unwrap() as usize, "{name}");
        assert_eq!(
            m.max_seq_length(),
            j["max_seq_length"].as_u64().unwrap() as usize
        );
        for (t, want) in texts.iter().zip(j["input_ids"].as_array().unwrap()) {
            assert_eq!(m.tokenizer().encode(t).unwrap().ids, ints(want), "{t:?}");
        }
        let kind = if prompt.is_some() {
            InputKind::Query
        } else {
            InputKind::Plain
        };
        let got = m.embed(&texts, kind).unwrap();
        let (mut worst_abs, mut worst_cos) = (0f64, 1f64);
        for (k, want) in case["embeddings"].as_array().unwrap().iter().enumerate() {
            let (abs, cos) = compare(got.row(k), &floats(want));
            assert!(
                cos >= MIN_COSINE && abs <= MAX_ABS,
                "{name}, text {k} ({:?}): cosine {cos}, max abs diff {abs}",
                texts[k]
            );
            worst_abs = worst_abs.max(abs);
            worst_cos = worst_cos.min(cos);
        }
        eprintln!("{name}: max abs diff {worst_abs:e}, min cosine {worst_cos}");
    }
}

/// Regression (issue 14): `pooling_mode_lasttoken` was read as mean pooling, and a `Dense`
/// module was ignored, so a model declared 32→16 embedded into 32 dimensions.
#[test]
fn lasttoken_and_dense_are_no_longer_ignored() {
    let j = load_json("tiny_st_reference.json");
    let case = |n: &str| {
        j["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == n)
            .unwrap()
            .clone()
    };
    let last = model_for(&case("lasttoken_dense"));
    let m = load(last.path(), None);
    assert_eq!(m.pooling(), Pooling::LastToken);
    assert_eq!(m.dim(), 16);
    assert_eq!(m.fingerprint().dim, 16);
    // The committed model: Dense 32→16, Dense 16→8, Normalize.
    let full = load(&fixture("tiny-st"), None);
    assert_eq!(full.dim(), 8);
    assert_eq!(full.dense_layers().len(), 2);
    assert!(full.normalize());
    // The Dense weights are part of the model's identity.
    let plain = load(model_for(&case("mean")).path(), None);
    assert_eq!(plain.dim(), 32);
    assert_ne!(
        plain.fingerprint().weights_sha256,
        full.fingerprint().weights_sha256
    );
    // Matryoshka truncation applies after the Dense modules.
    let short = BertEmbedder::load(
        fixture("tiny-st").to_str().unwrap(),
        EmbedderOptions {
            dim: Some(4),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(short.dim(), 4);
    let v = short.embed(&["hello"], InputKind::Plain).unwrap();
    let norm: f32 = v.row(0).iter().map(|x| x * x).sum();
    assert!((norm - 1.0).abs() < 1e-5);
}

fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// Regression (issue 14): `model_type` was never checked, so any checkpoint loaded into the
/// BERT forward. (RoBERTa and XLM-RoBERTa load since; see `multiarch`.)
#[test]
fn other_architectures_are_refused_by_name() {
    for (key, value, named) in [
        ("model_type", serde_json::json!("mpnet"), "mpnet"),
        ("model_type", serde_json::json!("distilbert"), "distilbert"),
        ("model_type", serde_json::json!("gpt2"), "gpt2"),
        (
            "architectures",
            serde_json::json!(["GPT2LMHeadModel"]),
            "GPT2LMHeadModel",
        ),
        ("is_decoder", serde_json::json!(true), "is_decoder"),
    ] {
        let dir = tiny_copy();
        edit_json(&dir.path().join("config.json"), |v| v[key] = value.clone());
        let spec = dir.path().to_str().unwrap();
        let err = BertEmbedder::load(spec, EmbedderOptions::default()).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, EmbedError::UnsupportedArchitecture { .. }),
            "{key}: {msg}"
        );
        assert!(msg.contains(named) && msg.contains("\"bert\""), "{msg}");
        // The headed models read the same configuration.
        assert!(CrossEncoder::load(spec, RerankerOptions::default()).is_err());
        assert!(SpladeEncoder::load(spec, SpladeOptions::default()).is_err());
    }
}

#[test]
fn unknown_modules_and_concatenated_pooling_are_refused() {
    let dir = tiny_copy();
    edit_json(&dir.path().join("modules.json"), |v| {
        v[2]["type"] = "sentence_transformers.models.LSTM".into();
    });
    let err =
        BertEmbedder::load(dir.path().to_str().unwrap(), EmbedderOptions::default()).unwrap_err();
    assert!(matches!(err, EmbedError::UnsupportedModule { .. }), "{err}");
    assert!(err.to_string().contains("LSTM"), "{err}");

    let dir = tiny_copy();
    std::fs::write(
        dir.path().join("1_Pooling/config.json"),
        r#"{"word_embedding_dimension": 32, "pooling_mode_cls_token": true,
            "pooling_mode_mean_tokens": true}"#,
    )
    .unwrap();
    let err =
        BertEmbedder::load(dir.path().to_str().unwrap(), EmbedderOptions::default()).unwrap_err();
    assert!(
        matches!(err, EmbedError::UnsupportedPooling { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("pooling_mode_cls_token + pooling_mode_mean_tokens"),
        "{err}"
    );
}

#[test]
fn dense_weights_only_as_a_pickle_are_refused() {
    let dir = tiny_copy();
    let dense = dir.path().join("2_Dense");
    std::fs::remove_file(dense.join("model.safetensors")).unwrap();
    std::fs::write(dense.join("pytorch_model.bin"), b"PK\x03\x04").unwrap();
    let err =
        BertEmbedder::load(dir.path().to_str().unwrap(), EmbedderOptions::default()).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("pytorch_model.bin") && msg.contains("safetensors"),
        "{msg}"
    );
}
