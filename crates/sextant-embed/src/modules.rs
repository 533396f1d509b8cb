//! The sentence-transformers pipeline after the transformer: `modules.json`, the pooling
//! module's configuration, `Dense` layers and `Normalize`.
//!
//! sentence-transformers runs the modules listed in `modules.json` in order. This crate runs
//! exactly one shape of pipeline — `Transformer` (at the model's root), `Pooling`, any number
//! of `Dense`, optionally `Normalize` — and refuses, by name, any other module, any other order
//! and any pooling flag it does not implement, so that a model never embeds differently from
//! sentence-transformers without an error. This module only reads files; the `Dense` layer's
//! tensors live in [`crate::dense`].

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::config::read_json;
use crate::pooling::{Pooling, ALL_POOLINGS};
use crate::EmbedError;

/// File name of the module list.
pub const MODULES_FILE: &str = "modules.json";
/// Where the pooling configuration lives when there is no `modules.json`.
const DEFAULT_POOLING_DIR: &str = "1_Pooling";
/// The sentence-transformers modules this crate runs, in their only accepted order.
const MODULES_TEXT: &str = "sentence_transformers.models.Transformer (at the model's root), \
    then Pooling, then any number of Dense, then optionally Normalize";
/// The `modules.json` types this crate runs: sentence-transformers before 6 names a module by
/// its Python module (`sentence_transformers.models.Pooling`), later releases by the full class
/// path.
const MODULE_TYPES: [(&str, ModuleKind); 8] = [
    (
        "sentence_transformers.models.Transformer",
        ModuleKind::Transformer,
    ),
    (
        "sentence_transformers.base.modules.transformer.Transformer",
        ModuleKind::Transformer,
    ),
    ("sentence_transformers.models.Pooling", ModuleKind::Pooling),
    (
        "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
        ModuleKind::Pooling,
    ),
    ("sentence_transformers.models.Dense", ModuleKind::Dense),
    (
        "sentence_transformers.base.modules.dense.Dense",
        ModuleKind::Dense,
    ),
    (
        "sentence_transformers.models.Normalize",
        ModuleKind::Normalize,
    ),
    (
        "sentence_transformers.base.modules.normalize.Normalize",
        ModuleKind::Normalize,
    ),
];

/// The modules of a sentence-transformers model, as far as this crate runs them.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipeline {
    /// The pooling module (`None`: the model has none, the caller's default applies).
    pub pooling: Option<PoolingConfig>,
    /// The directories of the `Dense` modules, in order.
    pub dense: Vec<PathBuf>,
    /// Whether a `Normalize` module ends the pipeline.
    pub normalize: bool,
}

/// What a pooling module's `config.json` selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolingConfig {
    /// The one pooling mode.
    pub pooling: Pooling,
    /// Whether instruction-prefix tokens are pooled too (sentence-transformers' default).
    pub include_prompt: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ModuleKind {
    Transformer,
    Pooling,
    Dense,
    Normalize,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(default)]
    path: String,
    #[serde(rename = "type", default)]
    kind: String,
}

/// A pooling module's `config.json`, in either format: sentence-transformers 6 writes
/// `embedding_dimension` and `pooling_mode` (a name or a list of names), earlier releases
/// `word_embedding_dimension` and one `pooling_mode_*` flag per mode.
#[derive(Deserialize)]
struct PoolingFile {
    #[serde(default, alias = "word_embedding_dimension")]
    embedding_dimension: Option<usize>,
    #[serde(default)]
    pooling_mode: Option<serde_json::Value>,
    #[serde(default = "yes")]
    include_prompt: bool,
    /// Every other key: the `pooling_mode_*` flags, known or not.
    #[serde(flatten)]
    rest: serde_json::Map<String, serde_json::Value>,
}

fn yes() -> bool {
    true
}

impl Pipeline {
    /// Reads `modules.json` under `root` (or, without one, a `1_Pooling/config.json` alone)
    /// for an encoder of width `hidden`.
    pub fn read(root: &Path, hidden: usize) -> Result<Self, EmbedError> {
        let modules = root.join(MODULES_FILE);
        if !modules.is_file() {
            let pooling = root
                .join(DEFAULT_POOLING_DIR)
                .join(crate::config::CONFIG_FILE);
            let pooling = if pooling.is_file() {
                Some(read_pooling(&pooling, hidden)?)
            } else {
                None
            };
            return Ok(Pipeline {
                pooling,
                dense: Vec::new(),
                normalize: false,
            });
        }
        let entries: Vec<ModuleEntry> = read_json(&modules)?;
        let mut pipeline = Pipeline {
            pooling: None,
            dense: Vec::new(),
            normalize: false,
        };
        let mut last: Option<ModuleKind> = None;
        for m in &entries {
            let kind = module_kind(&modules, &m.kind)?;
            let refuse = |module: String| {
                Err(EmbedError::UnsupportedModule {
                    path: modules.clone(),
                    module,
                    supported: MODULES_TEXT,
                })
            };
            // The only accepted order: Transformer, Pooling, Dense*, Normalize?.
            let in_order = matches!(
                (last, kind),
                (None, ModuleKind::Transformer)
                    | (Some(ModuleKind::Transformer), ModuleKind::Pooling)
                    | (
                        Some(ModuleKind::Pooling | ModuleKind::Dense),
                        ModuleKind::Dense | ModuleKind::Normalize
                    )
            );
            if !in_order {
                let after = last.map_or("first".to_owned(), |l| format!("after {l:?}"));
                return refuse(format!("{} {after}", m.kind));
            }
            let dir = root.join(&m.path);
            match kind {
                ModuleKind::Transformer if !m.path.is_empty() => {
                    return refuse(format!("{} in the subdirectory {:?}", m.kind, m.path));
                }
                ModuleKind::Transformer => {}
                ModuleKind::Pooling => {
                    let cfg = dir.join(crate::config::CONFIG_FILE);
                    pipeline.pooling = Some(read_pooling(&cfg, hidden)?);
                }
                ModuleKind::Dense => pipeline.dense.push(dir),
                ModuleKind::Normalize => pipeline.normalize = true,
            }
            last = Some(kind);
        }
        if !matches!(
            last,
            Some(ModuleKind::Pooling | ModuleKind::Dense | ModuleKind::Normalize)
        ) {
            return Err(EmbedError::UnsupportedModule {
                path: modules,
                module: "a pipeline without a Pooling module (token embeddings)".into(),
                supported: MODULES_TEXT,
            });
        }
        Ok(pipeline)
    }
}

/// The `(path, type)` of every module `modules.json` under `root` lists, in order (`None`
/// without a `modules.json`).
pub(crate) fn module_types(root: &Path) -> Result<Option<Vec<(String, String)>>, EmbedError> {
    let modules = root.join(MODULES_FILE);
    if !modules.is_file() {
        return Ok(None);
    }
    let entries: Vec<ModuleEntry> = read_json(&modules)?;
    Ok(Some(
        entries.into_iter().map(|m| (m.path, m.kind)).collect(),
    ))
}

/// Whether a `modules.json` type is sentence-transformers' `StaticEmbedding` (under any of its
/// class paths).
pub(crate) fn is_static_embedding(kind: &str) -> bool {
    kind.starts_with("sentence_transformers.") && kind.rsplit('.').next() == Some("StaticEmbedding")
}

/// Whether a `modules.json` type is sentence-transformers' `Normalize`.
pub(crate) fn is_normalize(kind: &str) -> bool {
    MODULE_TYPES
        .iter()
        .any(|(t, k)| *t == kind && *k == ModuleKind::Normalize)
}

/// The kind of a `modules.json` type such as `sentence_transformers.models.Pooling`.
fn module_kind(path: &Path, kind: &str) -> Result<ModuleKind, EmbedError> {
    let found = MODULE_TYPES
        .iter()
        .find(|(t, _)| *t == kind)
        .map(|(_, k)| *k);
    found.ok_or_else(|| EmbedError::UnsupportedModule {
        path: path.to_path_buf(),
        module: format!("{kind:?}"),
        supported: MODULES_TEXT,
    })
}

/// Reads a pooling module's `config.json`: exactly one known mode, at the encoder's width.
fn read_pooling(path: &Path, hidden: usize) -> Result<PoolingConfig, EmbedError> {
    let f: PoolingFile = read_json(path)?;
    if let Some(d) = f.embedding_dimension {
        if d != hidden {
            return Err(EmbedError::bad_config(
                path,
                format!("embedding_dimension {d} differs from the encoder's hidden_size {hidden}"),
            ));
        }
    }
    let modes = match &f.pooling_mode {
        Some(v) => named_modes(path, v)?,
        None => flagged_modes(path, &f.rest)?,
    };
    match modes.as_slice() {
        [one] => Ok(PoolingConfig {
            pooling: *one,
            include_prompt: f.include_prompt,
        }),
        // sentence-transformers pools by mean when no mode is selected.
        [] => Ok(PoolingConfig {
            pooling: Pooling::Mean,
            include_prompt: f.include_prompt,
        }),
        several => Err(EmbedError::UnsupportedPooling {
            path: path.to_path_buf(),
            what: several
                .iter()
                .map(|p| {
                    if f.pooling_mode.is_some() {
                        p.st_name()
                    } else {
                        p.st_flag()
                    }
                })
                .collect::<Vec<_>>()
                .join(" + "),
            reason: "several modes at once (concatenated pooling) are not implemented; \
                     keep one mode",
        }),
    }
}

/// The modes of a `pooling_mode` value (`"mean"` or `["cls", "max"]`).
fn named_modes(path: &Path, v: &serde_json::Value) -> Result<Vec<Pooling>, EmbedError> {
    let names: Vec<&serde_json::Value> = match v {
        serde_json::Value::Array(a) => a.iter().collect(),
        one => vec![one],
    };
    names
        .into_iter()
        .map(|n| {
            let mode = n
                .as_str()
                .and_then(|s| ALL_POOLINGS.into_iter().find(|p| p.st_name() == s));
            mode.ok_or_else(|| EmbedError::UnsupportedPooling {
                path: path.to_path_buf(),
                what: format!("pooling_mode {n}"),
                reason: "unknown pooling mode",
            })
        })
        .collect()
}

/// The modes whose legacy `pooling_mode_*` flag is true, in concatenation order; an unknown
/// flag set to true is an error.
fn flagged_modes(
    path: &Path,
    rest: &serde_json::Map<String, serde_json::Value>,
) -> Result<Vec<Pooling>, EmbedError> {
    let flag = |name: &str| -> Result<bool, EmbedError> {
        match rest.get(name) {
            None | Some(serde_json::Value::Null) => Ok(false),
            Some(serde_json::Value::Bool(b)) => Ok(*b),
            Some(other) => Err(EmbedError::bad_config(
                path,
                format!("{name} is {other}, not true or false"),
            )),
        }
    };
    let known: Vec<&str> = ALL_POOLINGS.iter().map(|p| p.st_flag()).collect();
    let mut unknown = Vec::new();
    for key in rest.keys() {
        if key.starts_with("pooling_mode_") && !known.contains(&key.as_str()) && flag(key)? {
            unknown.push(key.clone());
        }
    }
    if !unknown.is_empty() {
        return Err(EmbedError::UnsupportedPooling {
            path: path.to_path_buf(),
            what: unknown.join(", "),
            reason: "unknown pooling mode",
        });
    }
    let mut chosen = Vec::new();
    for p in ALL_POOLINGS {
        if flag(p.st_flag())? {
            chosen.push(p);
        }
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(modules: Option<&str>, pooling: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        if let Some(m) = modules {
            std::fs::write(dir.path().join(MODULES_FILE), m).unwrap();
        }
        if let Some(p) = pooling {
            std::fs::create_dir(dir.path().join("1_Pooling")).unwrap();
            std::fs::write(dir.path().join("1_Pooling/config.json"), p).unwrap();
        }
        dir
    }

    const MEAN: &str = r#"{"word_embedding_dimension": 8, "pooling_mode_mean_tokens": true}"#;

    fn modules(types: &[(&str, &str)]) -> String {
        let v: Vec<_> = types
            .iter()
            .map(|(path, t)| {
                serde_json::json!({"path": path, "type": format!("sentence_transformers.models.{t}")})
            })
            .collect();
        serde_json::to_string(&v).unwrap()
    }

    #[test]
    fn the_usual_pipeline_reads() {
        let m = modules(&[
            ("", "Transformer"),
            ("1_Pooling", "Pooling"),
            ("2_Dense", "Dense"),
            ("3_Dense", "Dense"),
            ("4_Normalize", "Normalize"),
        ]);
        let dir = model(Some(&m), Some(MEAN));
        let p = Pipeline::read(dir.path(), 8).unwrap();
        assert_eq!(p.pooling.unwrap().pooling, Pooling::Mean);
        assert!(p.pooling.unwrap().include_prompt);
        assert_eq!(
            p.dense,
            vec![dir.path().join("2_Dense"), dir.path().join("3_Dense")]
        );
        assert!(p.normalize);
    }

    #[test]
    fn every_pooling_flag_and_name_selects_its_mode() {
        for want in ALL_POOLINGS {
            let legacy = format!(r#"{{"{}": true, "include_prompt": false}}"#, want.st_flag());
            let named = format!(
                r#"{{"embedding_dimension": 8, "pooling_mode": "{}"}}"#,
                want.st_name()
            );
            let listed = format!(r#"{{"pooling_mode": ["{}"]}}"#, want.st_name());
            for (cfg, include) in [(legacy, false), (named, true), (listed, true)] {
                let dir = model(None, Some(&cfg));
                let p = Pipeline::read(dir.path(), 8).unwrap().pooling.unwrap();
                assert_eq!((p.pooling, p.include_prompt), (want, include), "{cfg}");
            }
        }
    }

    #[test]
    fn sentence_transformers_6_class_paths_read() {
        let m = r#"[
            {"path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
            {"path": "1_Pooling", "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling"},
            {"path": "2_Dense", "type": "sentence_transformers.base.modules.dense.Dense"},
            {"path": "3_Normalize", "type": "sentence_transformers.base.modules.normalize.Normalize"}
        ]"#;
        let dir = model(Some(m), Some(MEAN));
        let p = Pipeline::read(dir.path(), 8).unwrap();
        assert_eq!(p.dense.len(), 1);
        assert!(p.normalize);
    }

    #[test]
    fn an_unknown_module_is_refused_by_name() {
        let m = modules(&[("", "Transformer"), ("1_Pooling", "Pooling"), ("2", "LSTM")]);
        let dir = model(Some(&m), Some(MEAN));
        let err = Pipeline::read(dir.path(), 8).unwrap_err();
        assert!(matches!(err, EmbedError::UnsupportedModule { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("sentence_transformers.models.LSTM"),
            "{err}"
        );
        let m = r#"[{"path": "", "type": "sentence_transformers.models.StaticEmbedding"}]"#;
        let err = Pipeline::read(model(Some(m), None).path(), 8).unwrap_err();
        assert!(err.to_string().contains("StaticEmbedding"), "{err}");
    }

    #[test]
    fn modules_out_of_order_are_refused() {
        for bad in [
            modules(&[
                ("", "Transformer"),
                ("1_Pooling", "Pooling"),
                ("2", "Normalize"),
                ("3", "Dense"),
            ]),
            modules(&[
                ("", "Transformer"),
                ("2", "Dense"),
                ("1_Pooling", "Pooling"),
            ]),
            modules(&[("", "Transformer")]),
            modules(&[("0_Transformer", "Transformer"), ("1_Pooling", "Pooling")]),
        ] {
            let dir = model(Some(&bad), Some(MEAN));
            let err = Pipeline::read(dir.path(), 8).unwrap_err();
            assert!(
                matches!(err, EmbedError::UnsupportedModule { .. }),
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn concatenated_and_unknown_pooling_is_refused_naming_the_flags() {
        let both = r#"{"pooling_mode_cls_token": true, "pooling_mode_lasttoken": true}"#;
        let err = Pipeline::read(model(None, Some(both)).path(), 8).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, EmbedError::UnsupportedPooling { .. }),
            "{msg}"
        );
        assert!(
            msg.contains("pooling_mode_cls_token + pooling_mode_lasttoken"),
            "{msg}"
        );
        let odd = r#"{"pooling_mode_median_tokens": true}"#;
        let err = Pipeline::read(model(None, Some(odd)).path(), 8).unwrap_err();
        assert!(
            err.to_string().contains("pooling_mode_median_tokens"),
            "{err}"
        );
        let named = r#"{"pooling_mode": ["cls", "max"]}"#;
        let err = Pipeline::read(model(None, Some(named)).path(), 8).unwrap_err();
        assert!(err.to_string().contains("cls + max"), "{err}");
        let named = r#"{"pooling_mode": "median"}"#;
        let err = Pipeline::read(model(None, Some(named)).path(), 8).unwrap_err();
        assert!(err.to_string().contains("median"), "{err}");
        // No mode at all is mean, as in sentence-transformers.
        let none = r#"{"pooling_mode_mean_tokens": false}"#;
        let p = Pipeline::read(model(None, Some(none)).path(), 8).unwrap();
        assert_eq!(p.pooling.unwrap().pooling, Pooling::Mean);
    }

    #[test]
    fn a_pooling_width_that_is_not_the_encoders_is_refused() {
        let dir = model(None, Some(MEAN));
        let err = Pipeline::read(dir.path(), 16).unwrap_err();
        assert!(err.to_string().contains("embedding_dimension 8"), "{err}");
    }

    #[test]
    fn a_plain_checkpoint_has_no_pooling_module() {
        let p = Pipeline::read(model(None, None).path(), 8).unwrap();
        assert_eq!(p.pooling, None);
        assert!(p.dense.is_empty() && !p.normalize);
    }
}
