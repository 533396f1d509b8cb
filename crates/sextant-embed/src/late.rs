//! Late interaction (ColBERT-style): one vector per token, compared with MaxSim.
//!
//! A text keeps all its token states (padding dropped), optionally projected to a smaller
//! dimension (ColBERT checkpoints store the projection as `linear.weight`) and normalised per
//! token. MaxSim sums, over the query tokens, the best dot product with any document token.

use std::path::Path;

use candle_core::{Device, Tensor};

use crate::bert::Linear;
use crate::embedder::{BertEmbedder, InputKind};
use crate::weights::Weights;
use crate::EmbedError;

/// The per-token vectors of one text, row-major `[tokens, dim]`.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenEmbeddings {
    /// Vector dimension.
    pub dim: usize,
    /// Row-major token vectors.
    pub data: Vec<f32>,
}

impl TokenEmbeddings {
    /// Number of token vectors.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether there are no token vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The vector of token `i`.
    pub fn token(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

/// A linear projection of token states (`[out, hidden]` weight, optional bias).
#[derive(Debug, Clone)]
pub struct Projection {
    linear: Linear,
    out_dim: usize,
}

impl Projection {
    /// Reads tensor `name` (e.g. `linear`, giving `linear.weight` and an optional
    /// `linear.bias`) from a safetensors file.
    pub fn from_safetensors(path: &Path, name: &str, hidden: usize) -> Result<Self, EmbedError> {
        let w = Weights::load(path, &Device::Cpu)?;
        let weight_name = format!("{name}.weight");
        let t = w
            .find(&weight_name)
            .ok_or_else(|| EmbedError::MissingTensor {
                name: weight_name.clone(),
                path: path.to_path_buf(),
                tried: vec![weight_name.clone()],
            })?;
        let out_dim = t.dim(0)?;
        Ok(Projection {
            linear: Linear::load(&w, name, hidden, out_dim)?,
            out_dim,
        })
    }

    /// From a row-major `[out_dim, hidden]` matrix, no bias.
    pub fn from_matrix(
        weight: Vec<f32>,
        out_dim: usize,
        hidden: usize,
    ) -> Result<Self, EmbedError> {
        if out_dim == 0 || weight.len() != out_dim * hidden {
            return Err(EmbedError::ShapeMismatch {
                name: "projection".into(),
                expected: vec![out_dim, hidden],
                got: vec![weight.len()],
            });
        }
        let t = Tensor::from_vec(weight, (out_dim, hidden), &Device::Cpu)?;
        Ok(Projection {
            linear: Linear::from_parts(&t, None)?,
            out_dim,
        })
    }

    /// Output dimension.
    pub fn out_dim(&self) -> usize {
        self.out_dim
    }
}

/// How token vectors are produced.
#[derive(Debug, Clone, Default)]
pub struct TokenOptions {
    /// Projection applied to every token state.
    pub projection: Option<Projection>,
    /// L2-normalise every token vector (zero vectors stay zero).
    pub normalize: bool,
}

impl BertEmbedder {
    /// Per-token vectors of `texts` (special tokens included, padding dropped), in input order.
    pub fn embed_tokens(
        &self,
        texts: &[&str],
        kind: InputKind,
        opts: &TokenOptions,
    ) -> Result<Vec<TokenEmbeddings>, EmbedError> {
        self.run(|| {
            let (enc, order) = self.tokenize_sorted(texts, kind)?;
            let mut out = vec![
                TokenEmbeddings {
                    dim: 0,
                    data: Vec::new()
                };
                texts.len()
            ];
            for chunk in order.chunks(self.batch_size) {
                let (hidden, batch) = self.forward_batch(&enc, chunk)?;
                let hidden = match &opts.projection {
                    Some(p) => p.linear.forward(&hidden)?,
                    None => hidden,
                };
                let dim = hidden.dim(2)?;
                for (row, &i) in chunk.iter().enumerate() {
                    let t = hidden.get(row)?.narrow(0, 0, batch.lengths[row])?;
                    let mut data = t.flatten_all()?.to_vec1::<f32>()?;
                    if opts.normalize {
                        data.chunks_exact_mut(dim)
                            .for_each(sextant_core::l2_normalize_in_place);
                    }
                    out[i] = TokenEmbeddings { dim, data };
                }
            }
            Ok(out)
        })
    }
}

/// MaxSim: for every query token the best dot product with a document token, summed.
/// An empty side scores 0.
pub fn maxsim(query: &TokenEmbeddings, doc: &TokenEmbeddings) -> Result<f32, EmbedError> {
    if query.dim != doc.dim && !query.is_empty() && !doc.is_empty() {
        return Err(EmbedError::InvalidArgument(format!(
            "maxsim of {}-d query tokens with {}-d document tokens",
            query.dim, doc.dim
        )));
    }
    if doc.is_empty() {
        return Ok(0.0);
    }
    let mut total = 0f32;
    for q in query.data.chunks_exact(query.dim.max(1)) {
        let best = doc
            .data
            .chunks_exact(doc.dim)
            .map(|d| q.iter().zip(d).map(|(a, b)| a * b).sum::<f32>())
            .fold(f32::NEG_INFINITY, f32::max);
        total += best;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxsim_sums_best_matches() {
        let q = TokenEmbeddings {
            dim: 2,
            data: vec![1.0, 0.0, 0.0, 1.0],
        };
        let d = TokenEmbeddings {
            dim: 2,
            data: vec![0.5, 0.5, 0.9, 0.1, 0.0, 0.0],
        };
        assert!((maxsim(&q, &d).unwrap() - (0.9 + 0.5)).abs() < 1e-6);
        let empty = TokenEmbeddings {
            dim: 2,
            data: vec![],
        };
        assert_eq!(maxsim(&q, &empty).unwrap(), 0.0);
        assert_eq!(maxsim(&empty, &d).unwrap(), 0.0);
        let other = TokenEmbeddings {
            dim: 3,
            data: vec![1.0; 3],
        };
        assert!(maxsim(&q, &other).is_err());
    }
}
