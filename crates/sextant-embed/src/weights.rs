//! Loading `model.safetensors` and finding tensors under any of the names checkpoints use.
//!
//! The same BERT weight is stored under different names depending on who saved it: with or
//! without a `bert.` or `roberta.` prefix (heads such as `BertForMaskedLM` or
//! `XLMRobertaForSequenceClassification` add it), and layer norms either as
//! `weight`/`bias` or as the legacy `gamma`/`beta`. Real users load arbitrary Hugging Face
//! directories, so every lookup tries all the spellings instead of matching one checkpoint.
//!
//! The file is read once: the same bytes are hashed for the model fingerprint and parsed into
//! tensors (converted to f32, the dtype the CPU forward computes in).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};

use crate::EmbedError;

/// Prefixes under which a base encoder may be stored (`roberta.` in the RoBERTa and XLM-R
/// heads' checkpoints).
const PREFIXES: [&str; 4] = ["", "bert.", "roberta.", "model."];

/// All tensors of one checkpoint, by stored name.
#[derive(Debug)]
pub struct Weights {
    path: PathBuf,
    tensors: HashMap<String, Tensor>,
    sha256: String,
}

impl Weights {
    /// Reads and hashes a safetensors file; every floating tensor is converted to f32.
    pub fn load(path: &Path, device: &Device) -> Result<Self, EmbedError> {
        let bytes = std::fs::read(path).map_err(|e| EmbedError::io(path, e))?;
        let sha256 = hex(&Sha256::digest(&bytes));
        let raw = candle_core::safetensors::load_buffer(&bytes, device)?;
        let mut tensors = HashMap::with_capacity(raw.len());
        for (name, t) in raw {
            let t = match t.dtype() {
                DType::F16 | DType::BF16 | DType::F64 => t.to_dtype(DType::F32)?,
                _ => t,
            };
            tensors.insert(name, t);
        }
        Ok(Weights {
            path: path.to_path_buf(),
            tensors,
            sha256,
        })
    }

    /// Lowercase hex sha256 of the file's bytes.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The stored names the logical `name` may have, most likely first.
    fn candidates(name: &str) -> Vec<String> {
        let mut bases = vec![name.to_owned()];
        if let Some(stem) = name.strip_suffix(".weight") {
            if is_layer_norm(stem) {
                bases.push(format!("{stem}.gamma"));
            }
        } else if let Some(stem) = name.strip_suffix(".bias") {
            if is_layer_norm(stem) {
                bases.push(format!("{stem}.beta"));
            }
        }
        let mut out = Vec::with_capacity(bases.len() * PREFIXES.len());
        for p in PREFIXES {
            for b in &bases {
                out.push(format!("{p}{b}"));
            }
        }
        out
    }

    /// The stored name of the logical `name` (its spelling in the file), if present.
    pub fn stored_name(&self, name: &str) -> Option<String> {
        Self::candidates(name)
            .into_iter()
            .find(|c| self.tensors.contains_key(c))
    }

    /// Every stored tensor by its stored name (floating ones as f32).
    pub fn tensors(&self) -> &HashMap<String, Tensor> {
        &self.tensors
    }

    /// The tensor stored under any spelling of `name`, if present.
    pub fn find(&self, name: &str) -> Option<&Tensor> {
        Self::candidates(name)
            .into_iter()
            .find_map(|c| self.tensors.get(&c))
    }

    /// The tensor stored under any spelling of `name`, checked to have `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Tensor, EmbedError> {
        let t = self.find(name).ok_or_else(|| EmbedError::MissingTensor {
            name: name.to_owned(),
            path: self.path.clone(),
            tried: Self::candidates(name),
        })?;
        if t.dims() != shape {
            return Err(EmbedError::ShapeMismatch {
                name: name.to_owned(),
                expected: shape.to_vec(),
                got: t.dims().to_vec(),
            });
        }
        Ok(t.clone())
    }

    /// Like [`Weights::get`], but `None` when no spelling is stored (optional heads).
    pub fn get_opt(&self, name: &str, shape: &[usize]) -> Result<Option<Tensor>, EmbedError> {
        if self.find(name).is_none() {
            return Ok(None);
        }
        self.get(name, shape).map(Some)
    }
}

fn is_layer_norm(stem: &str) -> bool {
    let last = stem.rsplit('.').next().unwrap_or(stem);
    last.eq_ignore_ascii_case("layernorm") || last == "layer_norm" || last == "norm"
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_norm_names_have_legacy_spellings() {
        let c = Weights::candidates("embeddings.LayerNorm.weight");
        assert!(c.contains(&"bert.embeddings.LayerNorm.gamma".to_owned()));
        assert!(c.contains(&"embeddings.LayerNorm.weight".to_owned()));
        let c = Weights::candidates("encoder.layer.0.attention.output.LayerNorm.bias");
        assert!(c.contains(&"bert.encoder.layer.0.attention.output.LayerNorm.beta".to_owned()));
        // Dense layers never get gamma/beta spellings.
        let c = Weights::candidates("pooler.dense.weight");
        assert!(!c.iter().any(|n| n.ends_with("gamma")));
    }

    #[test]
    fn hex_is_lowercase() {
        assert_eq!(hex(&[0x00, 0xab, 0x7f]), "00ab7f");
    }
}
