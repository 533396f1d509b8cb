//! SPLADE: learned sparse vectors over the vocabulary from a masked-LM head.
//!
//! Each token's masked-LM logits are activated with `log(1 + relu(x))` and the vector is the
//! maximum over the (non-padding) tokens. Because that activation is monotonic, we take the
//! maximum of the raw logits first and activate once per vocabulary entry: the same result for a
//! fraction of the work. The vocabulary projection is done one sequence at a time over its real
//! tokens only, so a batch never materialises a `[batch, seq, vocab]` tensor (256 tokens × 30k
//! entries × 32 inputs would be a gigabyte).

use crate::bert::BertModel;
use crate::choice::PrecisionChoice;
use crate::config::{EncoderFamily, CONFIG_FILE};
use crate::embedder::build_pool;
use crate::fingerprint::ModelFingerprint;
use crate::heads::MaskedLmHead;
use crate::load::HeadedEncoder;
use crate::precision::Precision;
use crate::tokenize::{Batch, Encoded, TextTokenizer};
use crate::EmbedError;

/// A sparse vector: vocabulary ids in increasing order and their (positive) weights.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseEmbedding {
    /// Vocabulary ids, strictly increasing.
    pub indices: Vec<u32>,
    /// Weights, parallel to `indices`, all > 0.
    pub values: Vec<f32>,
}

impl SparseEmbedding {
    /// Number of non-zero entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// The weight of vocabulary id `id` (0 when absent).
    pub fn get(&self, id: u32) -> f32 {
        self.indices
            .binary_search(&id)
            .map_or(0.0, |p| self.values[p])
    }

    /// Dot product with another sparse vector (both sorted by index).
    pub fn dot(&self, other: &SparseEmbedding) -> f32 {
        let (mut i, mut j, mut s) = (0, 0, 0f32);
        while i < self.indices.len() && j < other.indices.len() {
            match self.indices[i].cmp(&other.indices[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    s += self.values[i] * other.values[j];
                    i += 1;
                    j += 1;
                }
            }
        }
        s
    }

    /// Builds from a dense activation vector, keeping the `top_k` largest positive entries
    /// (all of them when `None`); ties are broken by the smaller id.
    pub fn from_dense(dense: &[f32], top_k: Option<usize>) -> Self {
        let mut nz: Vec<(u32, f32)> = dense
            .iter()
            .enumerate()
            .filter(|(_, &v)| v > 0.0)
            .map(|(i, &v)| (i as u32, v))
            .collect();
        if let Some(k) = top_k {
            if nz.len() > k {
                let by_weight =
                    |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
                if k > 0 {
                    nz.select_nth_unstable_by(k - 1, by_weight);
                }
                nz.truncate(k);
                nz.sort_unstable_by_key(|e| e.0);
            }
        }
        SparseEmbedding {
            indices: nz.iter().map(|e| e.0).collect(),
            values: nz.iter().map(|e| e.1).collect(),
        }
    }
}

/// Sparse vectors of a batch, in input order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseEmbeddings {
    /// One vector per input.
    pub vectors: Vec<SparseEmbedding>,
    /// How many inputs were cut to the sequence limit.
    pub truncated: usize,
}

/// A model that turns texts into sparse vectors over a vocabulary.
pub trait SparseEncoder: Send + Sync {
    /// Size of the vocabulary (the dimension of the sparse space).
    fn vocab_size(&self) -> usize;
    /// The fingerprint of the model.
    fn fingerprint(&self) -> &ModelFingerprint;
    /// Encodes `texts`, in input order.
    fn encode(&self, texts: &[&str]) -> Result<SparseEmbeddings, EmbedError>;
}

/// Options of a [`SpladeEncoder`].
#[derive(Debug, Clone, Default)]
pub struct SpladeOptions {
    /// Keep only the `top_k` largest weights per text (`None`: every positive weight).
    pub top_k: Option<usize>,
    /// Inputs per forward pass ([`crate::DEFAULT_BATCH_SIZE`] when `None`).
    pub batch_size: Option<usize>,
    /// Threads of the encoder's own pool; `None` runs on the caller's rayon pool.
    pub threads: Option<usize>,
    /// Sequence limit override (never above the model's position table).
    pub max_seq_length: Option<usize>,
    /// Precision of the layer projections and of the masked-LM head, the vocabulary projection
    /// included (f32 unless set; see [`Precision`]). Not part of the fingerprint: bf16 weights
    /// stay within a small distance of f32's, as for dense models.
    pub precision: Option<Precision>,
}

/// A SPLADE encoder (`BertForMaskedLM` checkpoint) on candle (CPU).
#[derive(Debug)]
pub struct SpladeEncoder {
    model: BertModel,
    head: MaskedLmHead,
    tokenizer: TextTokenizer,
    top_k: Option<usize>,
    batch_size: usize,
    pool: Option<rayon::ThreadPool>,
    fingerprint: ModelFingerprint,
    precision_choice: PrecisionChoice,
}

impl SpladeEncoder {
    /// Loads a masked-LM directory.
    pub fn load(spec: &str, opts: SpladeOptions) -> Result<Self, EmbedError> {
        let e = HeadedEncoder::load(
            spec,
            opts.max_seq_length,
            opts.batch_size,
            2,
            "max_seq_length must leave room for the special tokens",
        )?;
        if e.cfg.family() != EncoderFamily::Bert {
            // RoBERTa's masked-LM head (`lm_head.*`) is another shape; not implemented.
            return Err(EmbedError::UnsupportedArchitecture {
                path: e.dir.root().join(CONFIG_FILE),
                what: format!(
                    "SPLADE on a {} encoder",
                    e.cfg.model_type.as_deref().unwrap_or("RoBERTa-family")
                ),
                supported: "SPLADE on BERT masked-LM checkpoints (BertForMaskedLM, \
                    BertForPreTraining)",
            });
        }
        let head = MaskedLmHead::load(&e.cfg, &e.weights, &e.model)?;
        let fingerprint = e.fingerprint(e.cfg.vocab_size);
        let mut s = SpladeEncoder {
            model: e.model,
            head,
            tokenizer: e.tokenizer,
            top_k: opts.top_k,
            batch_size: e.batch_size,
            pool: build_pool(opts.threads)?,
            fingerprint,
            precision_choice: PrecisionChoice::fixed(Precision::F32),
        };
        s.set_precision(opts.precision.unwrap_or_default())?;
        Ok(s)
    }

    /// Switches the encoder and head to `precision` (from the f32 model this was loaded as);
    /// `auto` measures (see [`crate::choice`]). In int8 the head (two projections, the
    /// vocabulary one included) stays out of bytes: bf16 on AMX, f32 elsewhere.
    fn set_precision(&mut self, precision: Precision) -> Result<(), EmbedError> {
        let (f32_model, f32_head) = (self.model.clone(), self.head.clone());
        let mut int8: Option<BertModel> = None;
        let build = |p: Precision, s: &Self| -> Result<(BertModel, MaskedLmHead), EmbedError> {
            Ok(match p {
                Precision::F32 => (f32_model.clone(), f32_head.clone()),
                Precision::Int8 => {
                    let m = match &int8 {
                        Some(m) => m.clone(),
                        None => {
                            let m = s.run(|| {
                                crate::int8::calibration::int8_model(&f32_model, &s.tokenizer)
                            })?;
                            int8 = Some(m.clone());
                            m
                        }
                    };
                    (m, f32_head.for_int8_mode()?)
                }
                p => (f32_model.with_precision(p)?, f32_head.with_precision(p)?),
            })
        };
        let key = format!(
            "splade {} | batch {}",
            self.fingerprint.weights_sha256, self.batch_size
        );
        let vocab = self.model.config().vocab_size;
        self.precision_choice = crate::choice::apply(
            self,
            precision,
            &key,
            build,
            |s, (m, h)| (s.model, s.head) = (m, h),
            |s, texts| {
                Ok(s.encode_impl(texts)?
                    .vectors
                    .iter()
                    .map(|v| {
                        let mut d = vec![0f32; vocab];
                        for (&i, &w) in v.indices.iter().zip(&v.values) {
                            d[i as usize] = w;
                        }
                        d
                    })
                    .collect())
            },
        )?;
        Ok(())
    }

    /// How the precision was decided (the `auto` measurements when asked for `auto`).
    pub fn precision_choice(&self) -> &PrecisionChoice {
        &self.precision_choice
    }

    /// Runs `f` in the encoder's pool (or on the caller's).
    fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }

    /// The tokenizer (with the model's truncation).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The precision of the layer projections and the head.
    pub fn precision(&self) -> Precision {
        self.model.precision()
    }

    fn encode_impl(&self, texts: &[&str]) -> Result<SparseEmbeddings, EmbedError> {
        let enc = texts
            .iter()
            .map(|t| self.tokenizer.encode(t))
            .collect::<Result<Vec<_>, _>>()?;
        let truncated = enc.iter().filter(|e| e.truncated).count();
        let mut order: Vec<usize> = (0..enc.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(enc[i].ids.len()));
        let mut out = vec![SparseEmbedding::default(); texts.len()];
        for chunk in order.chunks(self.batch_size) {
            let items: Vec<&Encoded> = chunk.iter().map(|&i| &enc[i]).collect();
            let batch = Batch::new(
                &items,
                self.model.config().pad_token_id,
                self.model.device(),
            )?;
            let hidden = self
                .model
                .forward(&batch.ids, &batch.type_ids, &batch.mask)?;
            let transformed = self.head.transform(&hidden)?;
            for (row, &i) in chunk.iter().enumerate() {
                let tokens = transformed.get(row)?.narrow(0, 0, batch.lengths[row])?;
                let dense: Vec<f32> = self
                    .head
                    .max_logits(&tokens)?
                    .into_iter()
                    .map(|x| x.max(0.0).ln_1p())
                    .collect();
                out[i] = SparseEmbedding::from_dense(&dense, self.top_k);
            }
        }
        Ok(SparseEmbeddings {
            vectors: out,
            truncated,
        })
    }
}

impl SparseEncoder for SpladeEncoder {
    fn vocab_size(&self) -> usize {
        self.model.config().vocab_size
    }

    fn fingerprint(&self) -> &ModelFingerprint {
        &self.fingerprint
    }

    fn encode(&self, texts: &[&str]) -> Result<SparseEmbeddings, EmbedError> {
        self.run(|| self.encode_impl(texts))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_largest_and_sorts_by_id() {
        let dense = [0.0, 3.0, -1.0, 1.0, 2.0, 2.0];
        let all = SparseEmbedding::from_dense(&dense, None);
        assert_eq!(all.indices, vec![1, 3, 4, 5]);
        let top = SparseEmbedding::from_dense(&dense, Some(2));
        assert_eq!(top.indices, vec![1, 4]); // tie between 4 and 5 goes to the smaller id
        assert_eq!(top.values, vec![3.0, 2.0]);
        assert!(SparseEmbedding::from_dense(&dense, Some(0))
            .indices
            .is_empty());
    }

    #[test]
    fn dot_and_get() {
        let a = SparseEmbedding::from_dense(&[1.0, 0.0, 2.0, 3.0], None);
        let b = SparseEmbedding::from_dense(&[0.0, 5.0, 0.5, 2.0], None);
        assert_eq!(a.dot(&b), 2.0 * 0.5 + 3.0 * 2.0);
        assert_eq!(a.get(1), 0.0);
        assert_eq!(a.get(3), 3.0);
    }
}
