//! What every BERT-family model with a task head (cross-encoder, SPLADE) loads the same way: the
//! config, the weights, the encoder, a tokenizer cut at the model's limit, the batch size, and
//! the fingerprint of a model that neither pools nor prefixes.

use candle_core::Device;

use crate::bert::BertModel;
use crate::config::{BertConfig, ModelDir, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::embedder::DEFAULT_BATCH_SIZE;
use crate::fingerprint::ModelFingerprint;
use crate::tokenize::TextTokenizer;
use crate::weights::Weights;
use crate::EmbedError;

/// A loaded encoder, before its head.
pub(crate) struct HeadedEncoder {
    pub(crate) dir: ModelDir,
    pub(crate) cfg: BertConfig,
    pub(crate) weights: Weights,
    pub(crate) model: BertModel,
    pub(crate) tokenizer: TextTokenizer,
    pub(crate) batch_size: usize,
}

impl HeadedEncoder {
    /// Loads `spec`; the sequence limit is the override or the model's, capped by its position
    /// table, and must be at least `min_len` (`too_short` says why otherwise).
    pub(crate) fn load(
        spec: &str,
        max_seq_length: Option<usize>,
        batch_size: Option<usize>,
        min_len: usize,
        too_short: &str,
    ) -> Result<Self, EmbedError> {
        let dir = ModelDir::resolve(spec)?;
        let device = Device::Cpu;
        let cfg = dir.bert_config()?;
        let weights = Weights::load(&dir.require(WEIGHTS_FILE)?, &device)?;
        let model = BertModel::load(&cfg, &weights, &device)?;
        let max_len = max_seq_length
            .unwrap_or(dir.max_seq_length(&cfg)?)
            .min(cfg.max_tokens());
        if max_len < min_len {
            return Err(EmbedError::InvalidArgument(too_short.into()));
        }
        let tokenizer = TextTokenizer::load(&dir.require(TOKENIZER_FILE)?, max_len)?;
        let batch_size = batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if batch_size == 0 {
            return Err(EmbedError::InvalidArgument(
                "batch size must be positive".into(),
            ));
        }
        Ok(HeadedEncoder {
            dir,
            cfg,
            weights,
            model,
            tokenizer,
            batch_size,
        })
    }

    /// The fingerprint of this model's `dim`-wide output (no pooling, no normalisation, no
    /// prefixes).
    pub(crate) fn fingerprint(&self, dim: usize) -> ModelFingerprint {
        ModelFingerprint {
            model_id: self.dir.model_id(),
            weights_sha256: self.weights.sha256().to_owned(),
            dim,
            pooling: None,
            normalize: false,
            query_prefix: String::new(),
            passage_prefix: String::new(),
            plain_prefix: String::new(),
        }
    }
}
