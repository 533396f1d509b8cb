//! Which kind of model a directory holds, and the errors (never panics) for directories that
//! are neither a transformer nor a Model2Vec model, or are broken: an unknown `model_type`, a
//! missing tokenizer, an embedding table that does not fit the vocabulary, a module list a
//! static model does not run, and each loader given the other kind.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use serde_json::Value;
use sextant_embed::{
    BertEmbedder, CrossEncoder, EmbedError, EmbedderOptions, ModelDir, ModelKind, RerankerOptions,
    StaticEmbedder, TextEmbedder,
};

use crate::{fixture, workspace_root};

fn copy_of(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(name), dir.path());
    dir
}

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

fn write_json(path: &Path, v: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn kind(dir: &Path) -> ModelKind {
    ModelDir::resolve(dir.to_str().unwrap())
        .unwrap()
        .kind()
        .unwrap()
}

fn load_err(dir: &Path) -> EmbedError {
    TextEmbedder::load(dir.to_str().unwrap(), EmbedderOptions::default()).unwrap_err()
}

/// Replaces the static model's tensors.
fn write_tensors(dir: &Path, tensors: &[(&str, Tensor)]) {
    let map: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    candle_core::safetensors::save(&map, dir.join("model.safetensors")).unwrap();
}

#[test]
fn every_layout_is_recognised() {
    for name in ["tiny-xlmr", "tiny-roberta", "tiny-st", "tiny-cross-encoder"] {
        assert_eq!(kind(&fixture(name)), ModelKind::Transformer, "{name}");
    }
    for name in ["tiny-static", "tiny-static-raw"] {
        assert_eq!(kind(&fixture(name)), ModelKind::Static, "{name}");
    }
    // The bare config.json of the tokenlearn wheel: no modules.json, no model_type; the
    // weights' "embeddings" tensor decides.
    let dir = copy_of("tiny-static");
    std::fs::remove_file(dir.path().join("modules.json")).unwrap();
    write_json(
        &dir.path().join("config.json"),
        &serde_json::json!({"normalize": true, "embedding_dtype": "float32"}),
    );
    assert_eq!(kind(dir.path()), ModelKind::Static);
    TextEmbedder::load(dir.path().to_str().unwrap(), EmbedderOptions::default()).unwrap();
    // model2vec's hub configs name themselves.
    write_json(
        &dir.path().join("config.json"),
        &serde_json::json!({"model_type": "model2vec", "architectures": ["StaticModel"],
            "hidden_dim": 16, "normalize": false}),
    );
    assert_eq!(kind(dir.path()), ModelKind::Static);
    let real = workspace_root().join("models/tokenlearn-static-64d");
    if real.join("config.json").is_file() {
        assert_eq!(kind(&real), ModelKind::Static);
    }
}

#[test]
fn an_unknown_model_type_is_refused_by_name() {
    let dir = copy_of("tiny-xlmr");
    let cfg = dir.path().join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["model_type"] = "gpt2".into();
    write_json(&cfg, &v);
    let err = load_err(dir.path());
    let msg = err.to_string();
    assert!(
        matches!(err, EmbedError::UnsupportedArchitecture { .. }),
        "{msg}"
    );
    assert!(msg.contains("gpt2") && msg.contains("xlm-roberta"), "{msg}");
    assert!(msg.contains("Model2Vec"), "{msg}");

    // A config.json that describes nothing at all: neither a transformer nor Model2Vec.
    let dir = copy_of("tiny-static");
    std::fs::remove_file(dir.path().join("modules.json")).unwrap();
    write_json(
        &dir.path().join("config.json"),
        &serde_json::json!({"foo": 1}),
    );
    write_tensors(
        dir.path(),
        &[(
            "vectors",
            Tensor::zeros((500, 16), candle_core::DType::F32, &Device::Cpu).unwrap(),
        )],
    );
    let err = load_err(dir.path());
    assert!(
        matches!(err, EmbedError::UnsupportedArchitecture { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("neither"), "{err}");
}

#[test]
fn a_missing_tokenizer_is_named() {
    for name in ["tiny-static", "tiny-xlmr"] {
        let dir = copy_of(name);
        std::fs::remove_file(dir.path().join("tokenizer.json")).unwrap();
        let err = load_err(dir.path());
        assert!(
            matches!(&err, EmbedError::MissingFile { path } if path.ends_with("tokenizer.json")),
            "{name}: {err}"
        );
    }
}

#[test]
fn an_embedding_table_that_does_not_fit_the_vocabulary_is_refused() {
    let dir = copy_of("tiny-static");
    let t = |rows: usize, dim: usize| Tensor::randn(0f32, 1.0, (rows, dim), &Device::Cpu).unwrap();
    // One row short of the 500-token vocabulary.
    write_tensors(dir.path(), &[("embeddings", t(499, 16))]);
    let err = load_err(dir.path());
    assert!(
        matches!(&err, EmbedError::ShapeMismatch { name, expected, got }
            if name == "embeddings" && expected == &[500, 16] && got == &[499, 16]),
        "{err}"
    );
    // Not a matrix.
    write_tensors(
        dir.path(),
        &[(
            "embeddings",
            Tensor::zeros(500, candle_core::DType::F32, &Device::Cpu).unwrap(),
        )],
    );
    assert!(load_err(dir.path()).to_string().contains("[rows, dim > 0]"));
    // A mapping or weights of the wrong length, a mapping past the table.
    let ids = |n: usize, v: i64| Tensor::full(v, n, &Device::Cpu).unwrap();
    for (tensors, what) in [
        (
            vec![("embeddings", t(10, 16)), ("mapping", ids(499, 0))],
            "mapping",
        ),
        (
            vec![
                ("embeddings", t(500, 16)),
                (
                    "weights",
                    Tensor::ones(3, candle_core::DType::F32, &Device::Cpu).unwrap(),
                ),
            ],
            "weights",
        ),
        (
            vec![("embeddings", t(10, 16)), ("mapping", ids(500, 10))],
            "row 10",
        ),
    ] {
        write_tensors(dir.path(), &tensors);
        let err = load_err(dir.path());
        assert!(err.to_string().contains(what), "{what}: {err}");
    }
    // No table at all.
    write_tensors(dir.path(), &[("vectors", t(500, 16))]);
    assert!(matches!(
        load_err(dir.path()),
        EmbedError::MissingTensor { .. }
    ));
    // A valid quantized layout loads: 10 rows shared by 500 tokens.
    write_tensors(
        dir.path(),
        &[("embeddings", t(10, 16)), ("mapping", ids(500, 9))],
    );
    TextEmbedder::load(dir.path().to_str().unwrap(), EmbedderOptions::default()).unwrap();
}

#[test]
fn static_module_lists_other_than_model2vecs_are_refused() {
    for modules in [
        // sentence-transformers' own StaticEmbedding format (weights in a subdirectory).
        serde_json::json!([{"path": "0_StaticEmbedding",
            "type": "sentence_transformers.models.StaticEmbedding"}]),
        serde_json::json!([
            {"path": ".", "type": "sentence_transformers.models.StaticEmbedding"},
            {"path": "1_Dense", "type": "sentence_transformers.models.Dense"}]),
    ] {
        let dir = copy_of("tiny-static");
        write_json(&dir.path().join("modules.json"), &modules);
        let err = load_err(dir.path());
        assert!(
            matches!(err, EmbedError::UnsupportedModule { .. }),
            "{modules}: {err}"
        );
    }
}

#[test]
fn each_loader_refuses_the_other_kind_by_name() {
    let spec = fixture("tiny-static").to_string_lossy().into_owned();
    let err = BertEmbedder::load(&spec, EmbedderOptions::default()).unwrap_err();
    assert!(
        matches!(err, EmbedError::UnsupportedArchitecture { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("Model2Vec"), "{err}");
    assert!(CrossEncoder::load(&spec, RerankerOptions::default()).is_err());
    // A static model through the static loader, with a pooling it cannot do.
    let err = StaticEmbedder::load(
        &spec,
        EmbedderOptions {
            pooling: Some(sextant_embed::Pooling::Cls),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, EmbedError::InvalidArgument(_)), "{err}");
    // A transformer through the static loader: its modules are not model2vec's.
    let err = StaticEmbedder::load(
        fixture("tiny-xlmr").to_str().unwrap(),
        EmbedderOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(err, EmbedError::UnsupportedModule { .. }), "{err}");
}
