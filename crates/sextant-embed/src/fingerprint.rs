//! Model fingerprints: what makes two embeddings comparable.
//!
//! Vectors from different models (or from the same model with another pooling, normalisation,
//! dimension or instruction prefix) live in different spaces; mixing them silently ruins
//! search quality. Every model-backed vector space records the fingerprint of its model, and
//! queries and upserts are checked against it with [`ModelFingerprint::check`].

use serde::{Deserialize, Serialize};

use crate::pooling::Pooling;
use crate::EmbedError;

/// Everything that determines the vector a model produces for a text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ModelFingerprint {
    /// Human-readable model id (directory name or hub id).
    pub model_id: String,
    /// Lowercase hex sha256 of `model.safetensors`.
    pub weights_sha256: String,
    /// Output dimension (after any Matryoshka truncation).
    pub dim: usize,
    /// Pooling of token states (`None` for models that do not pool, e.g. SPLADE, rerankers).
    pub pooling: Option<Pooling>,
    /// Whether outputs are L2-normalised.
    pub normalize: bool,
    /// Prefix prepended to queries.
    pub query_prefix: String,
    /// Prefix prepended to passages.
    pub passage_prefix: String,
    /// Prefix prepended to plain inputs (the model's `default_prompt_name`; empty for almost
    /// every model, and then left out of the serialised form so that fingerprints stored
    /// before this field existed still compare equal).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub plain_prefix: String,
}

impl ModelFingerprint {
    /// `Ok` when `other` describes the same vector space; otherwise an error naming the first
    /// field that differs. The model id is only a label and is not compared: the weights hash
    /// decides whether two models are the same.
    pub fn check(&self, other: &ModelFingerprint) -> Result<(), EmbedError> {
        let mismatch = |field: &'static str, expected: String, got: String| {
            Err(EmbedError::FingerprintMismatch {
                field,
                expected,
                got,
            })
        };
        if self.weights_sha256 != other.weights_sha256 {
            return mismatch(
                "weights_sha256",
                format!("{} ({})", self.weights_sha256, self.model_id),
                format!("{} ({})", other.weights_sha256, other.model_id),
            );
        }
        if self.dim != other.dim {
            return mismatch("dim", self.dim.to_string(), other.dim.to_string());
        }
        if self.pooling != other.pooling {
            return mismatch(
                "pooling",
                format!("{:?}", self.pooling),
                format!("{:?}", other.pooling),
            );
        }
        if self.normalize != other.normalize {
            return mismatch(
                "normalize",
                self.normalize.to_string(),
                other.normalize.to_string(),
            );
        }
        if self.query_prefix != other.query_prefix {
            return mismatch(
                "query_prefix",
                format!("{:?}", self.query_prefix),
                format!("{:?}", other.query_prefix),
            );
        }
        if self.passage_prefix != other.passage_prefix {
            return mismatch(
                "passage_prefix",
                format!("{:?}", self.passage_prefix),
                format!("{:?}", other.passage_prefix),
            );
        }
        if self.plain_prefix != other.plain_prefix {
            return mismatch(
                "plain_prefix",
                format!("{:?}", self.plain_prefix),
                format!("{:?}", other.plain_prefix),
            );
        }
        Ok(())
    }

    /// A canonical byte string of the comparable fields (used to key the embedding cache).
    pub fn key_bytes(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(128);
        for part in [
            self.weights_sha256.as_str(),
            &self.dim.to_string(),
            self.pooling.map_or("none", Pooling::as_str),
            if self.normalize { "norm" } else { "raw" },
            &self.query_prefix,
            &self.passage_prefix,
        ] {
            k.extend_from_slice(&(part.len() as u64).to_le_bytes());
            k.extend_from_slice(part.as_bytes());
        }
        // Only when set, so that the keys of every model without one stay as they were.
        if !self.plain_prefix.is_empty() {
            for part in ["plain", self.plain_prefix.as_str()] {
                k.extend_from_slice(&(part.len() as u64).to_le_bytes());
                k.extend_from_slice(part.as_bytes());
            }
        }
        k
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp() -> ModelFingerprint {
        ModelFingerprint {
            model_id: "m".into(),
            weights_sha256: "ab".repeat(32),
            dim: 384,
            pooling: Some(Pooling::Mean),
            normalize: true,
            query_prefix: String::new(),
            passage_prefix: String::new(),
            plain_prefix: String::new(),
        }
    }

    #[test]
    fn fingerprints_stored_without_a_plain_prefix_still_match() {
        let a = fp();
        let json = serde_json::to_value(&a).unwrap();
        assert!(json.get("plain_prefix").is_none(), "{json}");
        let old: ModelFingerprint = serde_json::from_value(json).unwrap();
        a.check(&old).unwrap();
        let mut c = fp();
        c.plain_prefix = "Represent: ".into();
        assert!(matches!(
            a.check(&c),
            Err(EmbedError::FingerprintMismatch {
                field: "plain_prefix",
                ..
            })
        ));
        assert_ne!(a.key_bytes(), c.key_bytes());
        let back: ModelFingerprint =
            serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn equal_fingerprints_pass_and_round_trip_json() {
        let a = fp();
        let json = serde_json::to_string(&a).unwrap();
        let b: ModelFingerprint = serde_json::from_str(&json).unwrap();
        assert_eq!(a, b);
        a.check(&b).unwrap();
        // The label alone does not make a different space.
        let mut c = fp();
        c.model_id = "renamed".into();
        a.check(&c).unwrap();
    }

    #[test]
    fn mismatch_names_the_field() {
        let a = fp();
        let mut b = fp();
        b.dim = 256;
        let err = a.check(&b).unwrap_err();
        assert!(matches!(
            err,
            EmbedError::FingerprintMismatch { field: "dim", .. }
        ));
        assert!(err.to_string().contains("384"), "{err}");
        let mut c = fp();
        c.query_prefix = "query: ".into();
        assert!(matches!(
            a.check(&c),
            Err(EmbedError::FingerprintMismatch {
                field: "query_prefix",
                ..
            })
        ));
        assert_ne!(a.key_bytes(), c.key_bytes());
    }
}
