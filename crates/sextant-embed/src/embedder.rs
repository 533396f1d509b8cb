//! The bi-encoder: texts in, one vector per text out.
//!
//! [`BertEmbedder`] runs a BERT-family transformer (BERT, RoBERTa, XLM-RoBERTa): a batch is
//! tokenized whole, then sorted by token count so that each forward pass pads only to the
//! longest of similar-length inputs (a batch mixing a 5-token and a 256-token text would
//! otherwise spend most of its work on padding); outputs are written back in input order.
//! Instruction prefixes (see `prompts`) are applied before tokenization (and left out of
//! pooling when the pooling module says `include_prompt: false`); pooling, the `Dense` modules,
//! Matryoshka truncation and normalisation follow, in sentence-transformers' order. Forward
//! passes run inside the embedder's own rayon pool when a thread count is configured, so an
//! embedding job cannot take every core of a busy server. Static (Model2Vec) models have their
//! own embedder ([`crate::StaticEmbedder`]); [`crate::TextEmbedder`] loads either.

use candle_core::Device;

use crate::bert::BertModel;
use crate::choice::PrecisionChoice;
use crate::config::{ModelDir, TOKENIZER_FILE, WEIGHTS_FILE};
use crate::dense::{combined_sha256, DenseLayer};
use crate::fingerprint::ModelFingerprint;
use crate::pooling::{truncate_and_normalize, Pooling};
use crate::precision::Precision;
use crate::profile::{timed, EmbedProfile};
use crate::prompts::Prompts;
use crate::tokenize::{Batch, Encoded, TextTokenizer};
use crate::weights::Weights;
use crate::EmbedError;

/// Inputs per forward pass unless configured otherwise.
pub const DEFAULT_BATCH_SIZE: usize = 32;
/// Pooling for models without a sentence-transformers pooling module.
pub const DEFAULT_POOLING: Pooling = Pooling::Mean;

/// What a text is, which decides the instruction prefix put before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InputKind {
    /// A search query (gets the query prefix).
    Query,
    /// A document or passage (gets the passage prefix).
    Passage,
    /// Used as given (or with the model's default prompt, when its
    /// `config_sentence_transformers.json` names one).
    Plain,
}

impl InputKind {
    /// Stable one-byte code (used in cache keys).
    pub fn code(self) -> u8 {
        match self {
            InputKind::Query => 1,
            InputKind::Passage => 2,
            InputKind::Plain => 0,
        }
    }
}

/// Vectors of a batch, row-major, in input order.
#[derive(Debug, Clone, PartialEq)]
pub struct Embeddings {
    dim: usize,
    data: Vec<f32>,
    /// How many inputs were longer than the model's sequence limit and were cut.
    pub truncated: usize,
}

impl Embeddings {
    /// Builds from row-major data; `data.len()` must be a multiple of `dim`.
    pub fn new(dim: usize, data: Vec<f32>, truncated: usize) -> Self {
        debug_assert!(dim == 0 || data.len().is_multiple_of(dim));
        Embeddings {
            dim,
            data,
            truncated,
        }
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.data.len().checked_div(self.dim).unwrap_or(0)
    }

    /// Whether there are no vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th vector.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// All vectors in order.
    pub fn rows(&self) -> impl Iterator<Item = &[f32]> + '_ {
        self.data.chunks_exact(self.dim.max(1))
    }

    /// The row-major data.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// The row-major data, owned.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }
}

/// A model that turns texts into dense vectors.
pub trait Embedder: Send + Sync {
    /// Output dimension.
    fn dim(&self) -> usize;
    /// The fingerprint of the vector space this embedder produces.
    fn fingerprint(&self) -> &ModelFingerprint;
    /// Embeds `texts`, one vector each, in input order.
    fn embed(&self, texts: &[&str], kind: InputKind) -> Result<Embeddings, EmbedError>;
}

/// How an embedding job spreads over the threads of its pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchParallelism {
    /// Whole batches run on different threads at once (each matrix product then runs on the
    /// thread that owns its batch, with no synchronisation inside a layer). Best for throughput
    /// on long jobs; a single batch still uses one thread only.
    #[default]
    Batches,
    /// Batches run one after the other, every matrix product split over all threads. Best for
    /// the latency of one small batch.
    WithinBatch,
}

/// Options of a [`BertEmbedder`]; `None` means "as the model directory says".
#[derive(Debug, Clone, Default)]
pub struct EmbedderOptions {
    /// Inputs per forward pass ([`DEFAULT_BATCH_SIZE`] when `None`).
    pub batch_size: Option<usize>,
    /// Threads of the embedder's own pool; `None` runs on the caller's rayon pool.
    pub threads: Option<usize>,
    /// How a job with several batches uses several threads ([`BatchParallelism::Batches`]
    /// unless set).
    pub parallelism: Option<BatchParallelism>,
    /// Precision of the layer projections ([`crate::DEFAULT_PRECISION`], f32, unless set).
    /// [`Precision::Bf16`] is about 1.6× faster on CPUs with AVX512-BF16, with vectors within
    /// cosine 0.999 of f32; it does not change the fingerprint (see [`Precision`]).
    pub precision: Option<Precision>,
    /// Pooling override.
    pub pooling: Option<Pooling>,
    /// Normalisation override.
    pub normalize: Option<bool>,
    /// Matryoshka dimension: keep the first `dim` components (then re-normalise when
    /// normalising).
    pub dim: Option<usize>,
    /// Sequence limit override (never above the model's position table).
    pub max_seq_length: Option<usize>,
    /// Query prefix override (default: the model's `prompts.query`, else its default prompt,
    /// else empty; see `prompts`).
    pub query_prefix: Option<String>,
    /// Passage prefix override (default: the model's first non-empty `prompts.passage`,
    /// `document` or `corpus`, else its default prompt, else empty).
    pub passage_prefix: Option<String>,
}

impl EmbedderOptions {
    /// Checks the options that do not depend on the model (before any file is read).
    pub(crate) fn check(&self) -> Result<usize, EmbedError> {
        if self.dim == Some(0) {
            return Err(EmbedError::InvalidArgument("dim must be positive".into()));
        }
        if matches!(self.max_seq_length, Some(0 | 1)) {
            return Err(EmbedError::InvalidArgument(
                "max_seq_length must leave room for the special tokens".into(),
            ));
        }
        let batch_size = self.batch_size.unwrap_or(DEFAULT_BATCH_SIZE);
        if batch_size == 0 {
            return Err(EmbedError::InvalidArgument(
                "batch size must be positive".into(),
            ));
        }
        Ok(batch_size)
    }
}

/// A BERT-family (BERT, RoBERTa, XLM-RoBERTa) bi-encoder on candle (CPU).
#[derive(Debug)]
pub struct BertEmbedder {
    pub(crate) model: BertModel,
    pub(crate) tokenizer: TextTokenizer,
    pooling: Pooling,
    /// The `Dense` modules after pooling, in order.
    dense: Vec<DenseLayer>,
    normalize: bool,
    dim: Option<usize>,
    out_dim: usize,
    prompts: Prompts,
    /// Leading positions left out of pooling for queries, passages and plain inputs: the
    /// leading special token (`[CLS]`, `<s>`) and the prefix's tokens when the pooling module
    /// excludes the prompt, else 0.
    query_skip: usize,
    passage_skip: usize,
    plain_skip: usize,
    pub(crate) batch_size: usize,
    parallelism: BatchParallelism,
    pool: Option<rayon::ThreadPool>,
    fingerprint: ModelFingerprint,
    precision_choice: PrecisionChoice,
}

impl BertEmbedder {
    /// Loads a transformer model from a directory (or a Hugging Face id present in the local
    /// cache). A Model2Vec directory is refused by name: [`crate::TextEmbedder`] loads both.
    pub fn load(spec: &str, opts: EmbedderOptions) -> Result<Self, EmbedError> {
        // Arguments first: a bad option fails before reading 100 MB of weights.
        opts.check()?;
        let dir = ModelDir::resolve(spec)?;
        Self::load_dir(dir, opts)
    }

    /// [`BertEmbedder::load`] on a resolved directory.
    pub(crate) fn load_dir(dir: ModelDir, opts: EmbedderOptions) -> Result<Self, EmbedError> {
        let batch_size = opts.check()?;
        let pool = build_pool(opts.threads)?;
        let device = Device::Cpu;
        let bert = dir.bert_config()?;
        let sentence = dir.sentence_config(&bert, DEFAULT_POOLING)?;
        let weights = Weights::load(&dir.require(WEIGHTS_FILE)?, &device)?;
        let model = BertModel::load(&bert, &weights, &device)?;
        let max_len = match opts.max_seq_length {
            Some(m) => m.min(bert.max_tokens()),
            None => sentence.max_seq_length,
        };
        let tokenizer = TextTokenizer::load(&dir.require(TOKENIZER_FILE)?, max_len)?;
        let prompts = Prompts::resolve(dir.root(), opts.query_prefix, opts.passage_prefix)?;
        let pooling = opts.pooling.unwrap_or(sentence.pooling);
        let normalize = opts.normalize.unwrap_or(sentence.normalize);
        let mut width = bert.hidden_size;
        let mut dense = Vec::with_capacity(sentence.dense.len());
        for d in &sentence.dense {
            let layer = DenseLayer::load(d, width)?;
            width = layer.out_features();
            dense.push(layer);
        }
        let out_dim = opts.dim.map_or(width, |d| d.min(width));
        // sentence-transformers masks the leading special token and the prompt's tokens: the
        // prompt tokenized alone, minus its final special token (`[SEP]`, `</s>`).
        let skip = |prefix: &str| -> Result<usize, EmbedError> {
            if sentence.include_prompt || prefix.is_empty() {
                return Ok(0);
            }
            Ok(tokenizer.encode(prefix)?.ids.len().saturating_sub(1))
        };
        let query_skip = skip(&prompts.query)?;
        let passage_skip = skip(&prompts.passage)?;
        let plain_skip = skip(&prompts.plain)?;
        let fingerprint = ModelFingerprint {
            model_id: dir.model_id(),
            weights_sha256: combined_sha256(weights.sha256(), &dense),
            dim: out_dim,
            pooling: Some(pooling),
            normalize,
            query_prefix: prompts.query.clone(),
            passage_prefix: prompts.passage.clone(),
            plain_prefix: prompts.plain.clone(),
        };
        let mut e = BertEmbedder {
            model,
            tokenizer,
            pooling,
            dense,
            normalize,
            dim: opts.dim,
            out_dim,
            prompts,
            query_skip,
            passage_skip,
            plain_skip,
            batch_size,
            parallelism: opts.parallelism.unwrap_or_default(),
            pool,
            fingerprint,
            precision_choice: PrecisionChoice::fixed(Precision::F32),
        };
        e.set_precision(opts.precision.unwrap_or_default())?;
        Ok(e)
    }

    /// Switches the layer projections to `precision` (from the f32 model this was loaded as);
    /// `auto` measures (see [`crate::choice`]).
    fn set_precision(&mut self, precision: Precision) -> Result<(), EmbedError> {
        let f32_model = self.model.clone();
        let mut int8: Option<BertModel> = None;
        let build = |p: Precision, e: &Self| -> Result<BertModel, EmbedError> {
            Ok(match p {
                Precision::F32 => f32_model.clone(),
                Precision::Int8 => match &int8 {
                    Some(m) => m.clone(),
                    None => {
                        let m = e.run(|| {
                            crate::int8::calibration::int8_model(&f32_model, &e.tokenizer)
                        })?;
                        int8 = Some(m.clone());
                        m
                    }
                },
                p => f32_model.with_precision(p)?,
            })
        };
        let key = format!(
            "{} | batch {}",
            self.fingerprint.weights_sha256, self.batch_size
        );
        self.precision_choice = crate::choice::apply(
            self,
            precision,
            &key,
            build,
            |e, m| e.model = m,
            |e, texts| {
                let v = e.embed_impl(texts, InputKind::Passage, &mut EmbedProfile::default())?;
                Ok((0..texts.len()).map(|i| v.row(i).to_vec()).collect())
            },
        )?;
        Ok(())
    }

    /// How the precision was decided (the `auto` measurements when asked for `auto`).
    pub fn precision_choice(&self) -> &PrecisionChoice {
        &self.precision_choice
    }

    /// The pooling in use.
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// The `Dense` modules after pooling, in order.
    pub fn dense_layers(&self) -> &[DenseLayer] {
        &self.dense
    }

    /// The precision of the layer projections.
    pub fn precision(&self) -> Precision {
        self.model.precision()
    }

    /// Whether outputs are normalised.
    pub fn normalize(&self) -> bool {
        self.normalize
    }

    /// The sequence limit in tokens (special tokens included).
    pub fn max_seq_length(&self) -> usize {
        self.tokenizer.max_len()
    }

    /// The encoder's configuration (layer count and widths: what a FLOP count needs).
    pub fn config(&self) -> &crate::BertConfig {
        self.model.config()
    }

    /// The tokenizer (with the model's truncation).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// The text actually tokenized for `text` of `kind` (prefix applied).
    pub fn prefixed(&self, text: &str, kind: InputKind) -> String {
        self.prompts.apply(text, kind)
    }

    /// Runs `f` in the embedder's pool (or on the caller's).
    pub(crate) fn run<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }

    /// Tokenizes every text (prefix applied) and returns the encodings with the order that
    /// sorts them by decreasing length (ties keep input order).
    pub(crate) fn tokenize_sorted(
        &self,
        texts: &[&str],
        kind: InputKind,
    ) -> Result<(Vec<Encoded>, Vec<usize>), EmbedError> {
        use rayon::prelude::*;
        let enc = texts
            .par_iter()
            .with_min_len(64)
            .map(|t| self.tokenizer.encode(&self.prefixed(t, kind)))
            .collect::<Result<Vec<_>, _>>()?;
        let mut order: Vec<usize> = (0..enc.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(enc[i].ids.len()));
        Ok((enc, order))
    }

    /// Builds the padded batch of the inputs `idx` and runs the encoder on it.
    pub(crate) fn forward_batch(
        &self,
        enc: &[Encoded],
        idx: &[usize],
    ) -> Result<(candle_core::Tensor, Batch), EmbedError> {
        let items: Vec<&Encoded> = idx.iter().map(|&i| &enc[i]).collect();
        let batch = Batch::new(
            &items,
            self.model.config().pad_token_id,
            self.model.device(),
        )?;
        let hidden = self
            .model
            .forward(&batch.ids, &batch.type_ids, &batch.mask)?;
        Ok((hidden, batch))
    }

    /// [`Embedder::embed`], adding token counts and the time of every stage to `prof`
    /// (what `sextant bench embed` reports).
    pub fn embed_profiled(
        &self,
        texts: &[&str],
        kind: InputKind,
        prof: &mut EmbedProfile,
    ) -> Result<Embeddings, EmbedError> {
        self.run(|| self.embed_impl(texts, kind, prof))
    }

    fn embed_impl(
        &self,
        texts: &[&str],
        kind: InputKind,
        prof: &mut EmbedProfile,
    ) -> Result<Embeddings, EmbedError> {
        let (enc, order) = timed(&mut prof.tokenize_s, || self.tokenize_sorted(texts, kind))?;
        let truncated = enc.iter().filter(|e| e.truncated).count();
        let skip = match kind {
            InputKind::Query => self.query_skip,
            InputKind::Passage => self.passage_skip,
            InputKind::Plain => self.plain_skip,
        };
        let d = self.out_dim;
        let mut out = vec![0f32; texts.len() * d];
        let chunks: Vec<&[usize]> = order.chunks(self.batch_size).collect();
        let parallel = self.parallelism == BatchParallelism::Batches
            && rayon::current_num_threads() > 1
            && chunks.len() > 1;
        let mut write = |chunk: &[usize], rows: Vec<Vec<f32>>| {
            for (&i, v) in chunk.iter().zip(rows) {
                out[i * d..(i + 1) * d].copy_from_slice(&v);
            }
        };
        if parallel {
            use rayon::prelude::*;
            // Stage timers add up over threads here (thread-seconds, not wall seconds).
            let done = chunks
                .par_iter()
                .map(|chunk| {
                    let mut p = EmbedProfile::default();
                    let rows = self.embed_batch(&enc, chunk, skip, &mut p)?;
                    Ok((rows, p))
                })
                .collect::<Result<Vec<_>, EmbedError>>()?;
            for (chunk, (rows, p)) in chunks.iter().zip(done) {
                prof.merge(&p);
                write(chunk, rows);
            }
        } else {
            for chunk in chunks {
                let rows = self.embed_batch(&enc, chunk, skip, prof)?;
                write(chunk, rows);
            }
        }
        Ok(Embeddings::new(d, out, truncated))
    }

    /// Pads, encodes and pools the inputs `chunk` of `enc` (leaving their first `skip`
    /// positions out of pooling): their vectors, in `chunk` order.
    fn embed_batch(
        &self,
        enc: &[Encoded],
        chunk: &[usize],
        skip: usize,
        prof: &mut EmbedProfile,
    ) -> Result<Vec<Vec<f32>>, EmbedError> {
        let items: Vec<&Encoded> = chunk.iter().map(|&i| &enc[i]).collect();
        let batch = timed(&mut prof.batch_s, || {
            Batch::new(
                &items,
                self.model.config().pad_token_id,
                self.model.device(),
            )
        })?;
        let seq = batch.ids.dim(1)?;
        prof.sequences += chunk.len();
        prof.batches += 1;
        prof.tokens += batch.lengths.iter().sum::<usize>();
        prof.tokens_squared += batch.lengths.iter().map(|l| l * l).sum::<usize>();
        prof.padded_tokens += chunk.len() * seq;
        prof.padded_tokens_squared += chunk.len() * seq * seq;
        let hidden = timed(&mut prof.forward_s, || {
            self.model.forward_profiled(
                &batch.ids,
                &batch.type_ids,
                &batch.mask,
                &mut prof.forward_ops,
            )
        })?;
        timed(&mut prof.pool_s, || {
            let mask = if skip == 0 {
                batch.mask.clone()
            } else {
                let skip = skip.min(seq);
                let head = batch.mask.narrow(1, 0, skip)?.zeros_like()?;
                let tail = batch.mask.narrow(1, skip, seq - skip)?;
                candle_core::Tensor::cat(&[&head, &tail], 1)?
            };
            let mut pooled = self.pooling.apply(&hidden, &mask)?;
            for d in &self.dense {
                pooled = d.forward(&pooled)?;
            }
            let mut rows = pooled.to_vec2::<f32>()?;
            for v in &mut rows {
                truncate_and_normalize(v, self.dim, self.normalize);
            }
            Ok(rows)
        })
    }
}

impl Embedder for BertEmbedder {
    fn dim(&self) -> usize {
        self.out_dim
    }

    fn fingerprint(&self) -> &ModelFingerprint {
        &self.fingerprint
    }

    fn embed(&self, texts: &[&str], kind: InputKind) -> Result<Embeddings, EmbedError> {
        self.run(|| self.embed_impl(texts, kind, &mut EmbedProfile::default()))
    }
}

/// A dedicated pool of `threads` threads, or `None` for the caller's pool.
pub(crate) fn build_pool(threads: Option<usize>) -> Result<Option<rayon::ThreadPool>, EmbedError> {
    match threads {
        None => Ok(None),
        Some(0) => Err(EmbedError::InvalidArgument(
            "threads must be positive".into(),
        )),
        Some(n) => Ok(Some(
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(|i| format!("sextant-embed-{i}"))
                .build()?,
        )),
    }
}
