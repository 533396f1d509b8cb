//! sentence-transformers' `Dense` module: `activation(x Wᵀ + b)` after pooling.
//!
//! A `Dense` module directory holds `config.json` (`in_features`, `out_features`, `bias`,
//! `activation_function` as a PyTorch class path) and the weights as `model.safetensors`
//! (`linear.weight` `[out, in]`, `linear.bias`). Older sentence-transformers releases wrote
//! `pytorch_model.bin` (a pickle) instead; this crate reads safetensors only and says so. An
//! activation outside [`DenseActivation`] is refused by name.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::bert::Linear;
use crate::config::{read_json, CONFIG_FILE, WEIGHTS_FILE};
use crate::weights::{hex, Weights};
use crate::EmbedError;

/// The pickle file older sentence-transformers releases store `Dense` weights in.
const PICKLE_WEIGHTS_FILE: &str = "pytorch_model.bin";
/// The only feature a `Dense` module may read and write here: the pooled vector.
const SENTENCE_EMBEDDING: &str = "sentence_embedding";
/// sentence-transformers' default activation of a `Dense` module.
const DEFAULT_ACTIVATION: &str = "torch.nn.modules.activation.Tanh";

/// The activations a `Dense` module may apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenseActivation {
    /// `torch.nn.Identity`.
    Identity,
    /// `torch.nn.Tanh` (sentence-transformers' default).
    Tanh,
    /// `torch.nn.ReLU`.
    Relu,
    /// `torch.nn.Sigmoid`.
    Sigmoid,
    /// `torch.nn.GELU` (exact, `erf`).
    Gelu,
}

impl DenseActivation {
    /// Parses a PyTorch class path such as `torch.nn.modules.activation.Tanh`.
    pub fn parse(name: &str) -> Option<Self> {
        match name.rsplit('.').next().unwrap_or(name) {
            "Identity" => Some(DenseActivation::Identity),
            "Tanh" => Some(DenseActivation::Tanh),
            "ReLU" => Some(DenseActivation::Relu),
            "Sigmoid" => Some(DenseActivation::Sigmoid),
            "GELU" => Some(DenseActivation::Gelu),
            _ => None,
        }
    }

    pub(crate) fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            DenseActivation::Identity => Ok(x.clone()),
            DenseActivation::Tanh => x.tanh(),
            DenseActivation::Relu => x.relu(),
            DenseActivation::Sigmoid => candle_nn::ops::sigmoid(x),
            DenseActivation::Gelu => x.gelu_erf(),
        }
    }
}

#[derive(Deserialize)]
struct DenseFile {
    in_features: usize,
    out_features: usize,
    #[serde(default = "yes")]
    bias: bool,
    #[serde(default = "default_activation")]
    activation_function: String,
    /// sentence-transformers 6: what the layer reads and writes (only the sentence embedding is
    /// implemented) and an optional residual connection (not implemented).
    #[serde(default)]
    module_input_name: Option<String>,
    #[serde(default)]
    module_output_name: Option<String>,
    #[serde(default)]
    use_residual: bool,
}

fn yes() -> bool {
    true
}

fn default_activation() -> String {
    DEFAULT_ACTIVATION.to_owned()
}

/// One loaded `Dense` module.
#[derive(Debug, Clone)]
pub struct DenseLayer {
    linear: Linear,
    activation: DenseActivation,
    in_features: usize,
    out_features: usize,
    /// sha256 over the configuration and the weights' hash: what the fingerprint folds in.
    sha256: String,
}

impl DenseLayer {
    /// Loads the module in `dir`, which must read vectors of width `in_dim`.
    pub fn load(dir: &Path, in_dim: usize) -> Result<Self, EmbedError> {
        let cfg_path = dir.join(CONFIG_FILE);
        let cfg: DenseFile = read_json(&cfg_path)?;
        let bad = |r: String| EmbedError::bad_config(&cfg_path, r);
        if cfg.in_features != in_dim {
            return Err(bad(format!(
                "in_features {} differs from the width {in_dim} of the vectors it receives",
                cfg.in_features
            )));
        }
        if cfg.use_residual {
            return Err(bad(
                "use_residual true (a residual Dense module) is not implemented".into(),
            ));
        }
        for name in [&cfg.module_input_name, &cfg.module_output_name]
            .into_iter()
            .flatten()
        {
            if name != SENTENCE_EMBEDDING {
                return Err(bad(format!(
                    "a Dense module on {name:?} is not implemented (only on {SENTENCE_EMBEDDING:?})"
                )));
            }
        }
        if cfg.out_features == 0 {
            return Err(bad("out_features must be positive".into()));
        }
        let activation = DenseActivation::parse(&cfg.activation_function).ok_or_else(|| {
            bad(format!(
                "activation_function {:?} is not supported (Identity, Tanh, ReLU, Sigmoid, GELU)",
                cfg.activation_function
            ))
        })?;
        let weights = Weights::load(&weights_file(dir)?, &Device::Cpu)?;
        let linear = Linear::load(&weights, "linear", cfg.in_features, cfg.out_features)?;
        if cfg.bias != weights.find("linear.bias").is_some() {
            return Err(bad(format!(
                "bias is {} but the weights {} linear.bias",
                cfg.bias,
                if cfg.bias { "lack" } else { "hold" }
            )));
        }
        let mut h = Sha256::new();
        for part in [
            weights.sha256(),
            &cfg.in_features.to_string(),
            &cfg.out_features.to_string(),
            &format!("{activation:?}"),
        ] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part.as_bytes());
        }
        Ok(DenseLayer {
            linear,
            activation,
            in_features: cfg.in_features,
            out_features: cfg.out_features,
            sha256: hex(&h.finalize()),
        })
    }

    /// Width of the vectors read.
    pub fn in_features(&self) -> usize {
        self.in_features
    }

    /// Width of the vectors produced.
    pub fn out_features(&self) -> usize {
        self.out_features
    }

    /// The activation.
    pub fn activation(&self) -> DenseActivation {
        self.activation
    }

    /// Hash of the configuration and weights.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// `activation(x Wᵀ + b)` for `x` `[batch, in_features]`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, EmbedError> {
        Ok(self.activation.apply(&self.linear.forward(x)?)?)
    }
}

/// `model.safetensors` of a `Dense` directory; a pickle-only directory is an error that says
/// how to convert it.
pub(crate) fn weights_file(dir: &Path) -> Result<PathBuf, EmbedError> {
    let st = dir.join(WEIGHTS_FILE);
    if st.is_file() {
        return Ok(st);
    }
    let pickle = dir.join(PICKLE_WEIGHTS_FILE);
    if pickle.is_file() {
        return Err(EmbedError::bad_config(
            pickle,
            "Dense weights stored only as a PyTorch pickle are not read (safetensors only): \
             load the model with sentence-transformers and save it again \
             (`model.save(dir)` writes model.safetensors)",
        ));
    }
    Err(EmbedError::MissingFile { path: st })
}

/// The fingerprint hash of an encoder with `dense` layers after it: the encoder's own hash when
/// there are none (so that existing collections keep matching), else a hash over all of them.
pub(crate) fn combined_sha256(encoder: &str, dense: &[DenseLayer]) -> String {
    if dense.is_empty() {
        return encoder.to_owned();
    }
    let mut h = Sha256::new();
    for part in std::iter::once(encoder).chain(dense.iter().map(DenseLayer::sha256)) {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn write_dense(dir: &Path, cfg: &str, bias: bool) {
        std::fs::write(dir.join(CONFIG_FILE), cfg).unwrap();
        let mut t = HashMap::new();
        let w = Tensor::new(&[[1f32, 0., -1.], [0.5, 0.5, 0.5]], &Device::Cpu).unwrap();
        t.insert("linear.weight".to_owned(), w);
        if bias {
            t.insert(
                "linear.bias".to_owned(),
                Tensor::new(&[0.25f32, -0.25], &Device::Cpu).unwrap(),
            );
        }
        candle_core::safetensors::save(&t, dir.join(WEIGHTS_FILE)).unwrap();
    }

    #[test]
    fn dense_applies_weight_bias_and_activation() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = r#"{"in_features": 3, "out_features": 2, "bias": true,
            "activation_function": "torch.nn.modules.activation.Tanh"}"#;
        write_dense(dir.path(), cfg, true);
        let d = DenseLayer::load(dir.path(), 3).unwrap();
        assert_eq!((d.in_features(), d.out_features()), (3, 2));
        let x = Tensor::new(&[[1f32, 2., 3.]], &Device::Cpu).unwrap();
        let y = d.forward(&x).unwrap().to_vec2::<f32>().unwrap();
        let want = [(-2f32 + 0.25).tanh(), (3f32 - 0.25).tanh()];
        assert!((y[0][0] - want[0]).abs() < 1e-6 && (y[0][1] - want[1]).abs() < 1e-6);
        assert_ne!(combined_sha256("abc", std::slice::from_ref(&d)), "abc");
        assert_eq!(combined_sha256("abc", &[]), "abc");
    }

    #[test]
    fn identity_without_bias() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = r#"{"in_features": 3, "out_features": 2, "bias": false,
            "activation_function": "torch.nn.modules.linear.Identity"}"#;
        write_dense(dir.path(), cfg, false);
        let d = DenseLayer::load(dir.path(), 3).unwrap();
        assert_eq!(d.activation(), DenseActivation::Identity);
        let x = Tensor::new(&[[1f32, 2., 3.]], &Device::Cpu).unwrap();
        assert_eq!(
            d.forward(&x).unwrap().to_vec2::<f32>().unwrap(),
            [[-2., 3.]]
        );
    }

    #[test]
    fn bad_dense_modules_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = r#"{"in_features": 3, "out_features": 2,
            "activation_function": "torch.nn.modules.activation.Softsign"}"#;
        write_dense(dir.path(), cfg, true);
        let err = DenseLayer::load(dir.path(), 3).unwrap_err();
        assert!(err.to_string().contains("Softsign"), "{err}");
        // Residual and token-level Dense modules.
        for cfg in [
            r#"{"in_features": 3, "out_features": 2, "use_residual": true}"#,
            r#"{"in_features": 3, "out_features": 2, "module_input_name": "token_embeddings"}"#,
        ] {
            write_dense(dir.path(), cfg, true);
            let err = DenseLayer::load(dir.path(), 3).unwrap_err();
            assert!(err.to_string().contains("not implemented"), "{err}");
        }
        // Wrong input width.
        let cfg = r#"{"in_features": 3, "out_features": 2}"#;
        write_dense(dir.path(), cfg, true);
        assert!(DenseLayer::load(dir.path(), 4).is_err());
        // Pickle only.
        std::fs::remove_file(dir.path().join(WEIGHTS_FILE)).unwrap();
        std::fs::write(dir.path().join(PICKLE_WEIGHTS_FILE), b"\x80\x02").unwrap();
        let err = DenseLayer::load(dir.path(), 3).unwrap_err();
        assert!(err.to_string().contains("safetensors only"), "{err}");
    }
}
