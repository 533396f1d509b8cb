//! The cross-encoder reranker: reads a query and a passage together and scores their relevance.
//!
//! The architecture is `BertForSequenceClassification` (`[CLS] query [SEP] passage [SEP]` with
//! segment ids 0 then 1, the pooler and a linear classifier) or
//! `(XLM)RobertaForSequenceClassification` (`<s> query </s></s> passage </s>`, all segment ids
//! 0, dense + tanh + `out_proj` on `<s>`; see `heads`). The special tokens come from the
//! tokenizer's own post-processor, never from this code. The score
//! is the raw logit (no sigmoid), so that it matches what transformers returns and keeps its
//! full range for ranking; a caller that needs a probability applies the sigmoid itself.
//! Pairs are batched, sorted by length like the bi-encoder's inputs.

use crate::bert::BertModel;
use crate::embedder::build_pool;
use crate::fingerprint::ModelFingerprint;
use crate::heads::ClassifierHead;
use crate::load::HeadedEncoder;
use crate::tokenize::{Batch, Encoded, TextTokenizer};
use crate::EmbedError;

/// A model that scores (query, passage) pairs; higher is more relevant.
pub trait Reranker: Send + Sync {
    /// The fingerprint of the model.
    fn fingerprint(&self) -> &ModelFingerprint;
    /// One score per pair, in input order.
    fn score_pairs(&self, pairs: &[(&str, &str)]) -> Result<Vec<f32>, EmbedError>;
    /// Scores every passage against one query.
    fn score(&self, query: &str, passages: &[&str]) -> Result<Vec<f32>, EmbedError> {
        let pairs: Vec<(&str, &str)> = passages.iter().map(|p| (query, *p)).collect();
        self.score_pairs(&pairs)
    }
}

/// Options of a [`CrossEncoder`].
#[derive(Debug, Clone, Default)]
pub struct RerankerOptions {
    /// Pairs per forward pass ([`crate::DEFAULT_BATCH_SIZE`] when `None`).
    pub batch_size: Option<usize>,
    /// Threads of the reranker's own pool; `None` runs on the caller's rayon pool.
    pub threads: Option<usize>,
    /// Sequence limit override (never above the model's position table).
    pub max_seq_length: Option<usize>,
}

/// A BERT-family cross-encoder on candle (CPU).
#[derive(Debug)]
pub struct CrossEncoder {
    model: BertModel,
    head: ClassifierHead,
    tokenizer: TextTokenizer,
    labels: usize,
    batch_size: usize,
    pool: Option<rayon::ThreadPool>,
    fingerprint: ModelFingerprint,
}

impl CrossEncoder {
    /// Loads a `BertForSequenceClassification` or `(XLM)RobertaForSequenceClassification`
    /// directory.
    pub fn load(spec: &str, opts: RerankerOptions) -> Result<Self, EmbedError> {
        let e = HeadedEncoder::load(
            spec,
            opts.max_seq_length,
            opts.batch_size,
            4,
            "max_seq_length must leave room for a pair and its special tokens",
        )?;
        let head = ClassifierHead::load(&e.cfg, &e.weights)?;
        let fingerprint = e.fingerprint(e.cfg.labels());
        Ok(CrossEncoder {
            labels: e.cfg.labels(),
            model: e.model,
            head,
            tokenizer: e.tokenizer,
            batch_size: e.batch_size,
            pool: build_pool(opts.threads)?,
            fingerprint,
        })
    }

    /// The tokenizer (with the model's truncation).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    fn score_impl(&self, pairs: &[(&str, &str)]) -> Result<Vec<f32>, EmbedError> {
        let enc = pairs
            .iter()
            .map(|(q, p)| self.tokenizer.encode_pair(q, p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut order: Vec<usize> = (0..enc.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(enc[i].ids.len()));
        let mut out = vec![0f32; pairs.len()];
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
            let logits = self.head.forward(&hidden)?.to_vec2::<f32>()?;
            for (&i, row) in chunk.iter().zip(logits) {
                // One label: its logit. Several: the last label is "relevant" by convention.
                out[i] = row[self.labels - 1];
            }
        }
        Ok(out)
    }
}

impl Reranker for CrossEncoder {
    fn fingerprint(&self) -> &ModelFingerprint {
        &self.fingerprint
    }

    fn score_pairs(&self, pairs: &[(&str, &str)]) -> Result<Vec<f32>, EmbedError> {
        match &self.pool {
            Some(p) => p.install(|| self.score_impl(pairs)),
            None => self.score_impl(pairs),
        }
    }
}
