//! Tokenizer set-up and the padded id batches the encoder reads.
//!
//! `tokenizer.json` files often hard-code truncation and padding (all-MiniLM-L6-v2's pads every
//! input to 128 tokens and cuts there, although the model reads 256). We drop both and apply the
//! model's own `max_seq_length`; padding is done here, to the longest input of each batch, so
//! that sorting inputs by length (see `embedder`) actually saves work.

use std::path::Path;

use candle_core::{Device, Tensor};
use tokenizers::{EncodeInput, Tokenizer, TruncationParams, TruncationStrategy};

use crate::EmbedError;

/// One tokenized input: ids and segment ids including special tokens, unpadded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids.
    pub ids: Vec<u32>,
    /// Segment (token type) ids: 0 for the first text, 1 for the second of a pair.
    pub type_ids: Vec<u32>,
    /// Whether the input was cut to the sequence limit.
    pub truncated: bool,
}

/// A tokenizer with the model's truncation and no padding.
#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    /// The same tokenizer without truncation, for measuring whole texts.
    untruncated: Tokenizer,
    max_len: usize,
}

impl TextTokenizer {
    /// Loads `tokenizer.json` and sets truncation to `max_len` tokens (special tokens included).
    pub fn load(path: &Path, max_len: usize) -> Result<Self, EmbedError> {
        if !path.is_file() {
            return Err(EmbedError::MissingFile {
                path: path.to_path_buf(),
            });
        }
        let mut inner = Tokenizer::from_file(path).map_err(|source| EmbedError::Tokenizer {
            context: format!("loading {}", path.display()),
            source,
        })?;
        inner.with_padding(None);
        let mut untruncated = inner.clone();
        untruncated
            .with_truncation(None)
            .map_err(|source| EmbedError::Tokenizer {
                context: "disabling truncation".into(),
                source,
            })?;
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
                ..TruncationParams::default()
            }))
            .map_err(|source| EmbedError::Tokenizer {
                context: format!("setting truncation to {max_len}"),
                source,
            })?;
        Ok(TextTokenizer {
            inner,
            untruncated,
            max_len,
        })
    }

    /// Byte spans of the model's tokens in `text`, without special tokens or truncation: what
    /// a chunker needs to keep every chunk within the model's limit.
    pub fn token_spans(&self, text: &str) -> Result<Vec<std::ops::Range<usize>>, EmbedError> {
        let enc = self
            .untruncated
            .encode(text, false)
            .map_err(|source| EmbedError::Tokenizer {
                context: "measuring a text".into(),
                source,
            })?;
        Ok(enc.get_offsets().iter().map(|&(a, b)| a..b).collect())
    }

    /// Token ids of `text` without special tokens and without truncation (what a static
    /// model averages).
    pub fn encode_plain(&self, text: &str) -> Result<Vec<u32>, EmbedError> {
        let enc = self
            .untruncated
            .encode(text, false)
            .map_err(|source| EmbedError::Tokenizer {
                context: "encoding an input".into(),
                source,
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Every token string of the vocabulary, added tokens included, with its id.
    pub fn vocabulary(&self) -> std::collections::HashMap<String, u32> {
        self.inner.get_vocab(true)
    }

    /// The sequence limit, special tokens included.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The id of `token`, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// The token string of `id`, if the vocabulary has it.
    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// Tokenizes one text (with the model's special tokens).
    pub fn encode(&self, text: &str) -> Result<Encoded, EmbedError> {
        self.encode_input(EncodeInput::Single(text.into()))
    }

    /// Tokenizes a (query, passage) pair: `[CLS] query [SEP] passage [SEP]`, segments 0 then 1;
    /// the longer side is cut first when the pair is too long.
    pub fn encode_pair(&self, first: &str, second: &str) -> Result<Encoded, EmbedError> {
        self.encode_input(EncodeInput::Dual(first.into(), second.into()))
    }

    fn encode_input(&self, input: EncodeInput<'_>) -> Result<Encoded, EmbedError> {
        let enc = self
            .inner
            .encode(input, true)
            .map_err(|source| EmbedError::Tokenizer {
                context: "encoding an input".to_owned(),
                source,
            })?;
        Ok(Encoded {
            ids: enc.get_ids().to_vec(),
            type_ids: enc.get_type_ids().to_vec(),
            truncated: !enc.get_overflowing().is_empty(),
        })
    }
}

/// A padded batch ready for the encoder.
#[derive(Debug)]
pub struct Batch {
    /// `[batch, seq]` u32 token ids, padded with the model's pad id.
    pub ids: Tensor,
    /// `[batch, seq]` u32 segment ids (0 on padding).
    pub type_ids: Tensor,
    /// `[batch, seq]` f32: 1 on real tokens, 0 on padding.
    pub mask: Tensor,
    /// Real length of every row.
    pub lengths: Vec<usize>,
}

impl Batch {
    /// Pads `items` to the longest one.
    pub fn new(items: &[&Encoded], pad_id: u32, device: &Device) -> Result<Self, EmbedError> {
        let seq = items.iter().map(|e| e.ids.len()).max().unwrap_or(0).max(1);
        let n = items.len();
        let mut ids = vec![pad_id; n * seq];
        let mut types = vec![0u32; n * seq];
        let mut mask = vec![0f32; n * seq];
        for (row, e) in items.iter().enumerate() {
            let o = row * seq;
            ids[o..o + e.ids.len()].copy_from_slice(&e.ids);
            types[o..o + e.type_ids.len()].copy_from_slice(&e.type_ids);
            mask[o..o + e.ids.len()].fill(1.0);
        }
        Ok(Batch {
            ids: Tensor::from_vec(ids, (n, seq), device)?,
            type_ids: Tensor::from_vec(types, (n, seq), device)?,
            mask: Tensor::from_vec(mask, (n, seq), device)?,
            lengths: items.iter().map(|e| e.ids.len()).collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_pads_to_longest() {
        let a = Encoded {
            ids: vec![101, 7, 102],
            type_ids: vec![0; 3],
            truncated: false,
        };
        let b = Encoded {
            ids: vec![101, 102],
            type_ids: vec![0; 2],
            truncated: false,
        };
        let batch = Batch::new(&[&a, &b], 0, &Device::Cpu).unwrap();
        assert_eq!(
            batch.ids.to_vec2::<u32>().unwrap(),
            vec![vec![101, 7, 102], vec![101, 102, 0]]
        );
        assert_eq!(
            batch.mask.to_vec2::<f32>().unwrap(),
            vec![vec![1., 1., 1.], vec![1., 1., 0.]]
        );
        assert_eq!(batch.lengths, vec![3, 2]);
    }
}
