//! Fine-tuning a bi-encoder on judged data (issue 20): what `sextant finetune` runs.
//!
//! Training pairs come from BEIR files: every (query, relevant document) of the qrels whose
//! query is not held back. A share of the judged queries ([`FinetuneOptions::validation`],
//! seeded) is held back, and the base model and the trained one are both scored on it: nDCG@10
//! of exact dense retrieval over the whole corpus. Hard negatives, when asked for, are mined by
//! BM25 over the corpus or by the starting model (exact cosine): for each pair, the
//! best-ranked document the query is not judged relevant to. The model trains with [`sextant_embed::mnrl_loss`] (in-batch negatives, plus the
//! hard ones) and AdamW ([`TrainableEncoder::fit`]). It is saved as a model directory in the
//! layout it was loaded from, with a training card (`training_card.json`: data, settings, loss,
//! nDCG before and after) and the pairs it trained on, in order (`training_pairs.jsonl`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use candle_core::DType;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use sextant_embed::{
    snapshot_params, BertEmbedder, Control, CrossEncoder, Embedder, EmbedderOptions, Encoded, Flow,
    InputKind, Optimiser, Param, Precision, Reranker, RerankerOptions, Step, TextTokenizer,
    TrainOptions, TrainableCrossEncoder, TrainableEncoder, DEFAULT_POOLING,
};
use sextant_eval::ir::{evaluate, read_beir, read_qrels, Qrels, Record, Run};
use sextant_index::{SparseIndex, SparseScoring, TermDict};
use sextant_text::{AnalyzerConfig, Bm25Encoder, Bm25Params, CorpusStats};

use crate::{Error, Result};

mod structure;
mod supervise;

pub use structure::{StructurePairs, MAX_HEADING_DOCUMENTS, PAIRS_PER_QUERY};

use supervise::{Schedule, Scorer, Supervisor, Trained};
pub use supervise::{Validation, CHECKPOINTS_DIR};

/// Documents the held-back queries are ranked over, at most, when validating a bi-encoder
/// ([`FinetuneOptions::validation_docs`]).
pub const DEFAULT_VALIDATION_DOCS: usize = 10_000;

/// Where hard negatives come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HardNegatives {
    /// In-batch negatives only.
    None,
    /// The best BM25 hit of the query that is not judged relevant to it.
    Bm25,
    /// The starting model's best hit (exact cosine over the corpus) that is not judged relevant
    /// to the query.
    Model,
}

/// The loss of a cross-encoder (`--cross-encoder`), over each training pair's group: the pair
/// (relevant), its hard negatives and, with [`CrossLoss::Bce`], another pair's document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CrossLoss {
    /// Binary cross-entropy on every pair of the group, each on its own
    /// ([`TrainableCrossEncoder::fit`]).
    Bce,
    /// Softmax cross-entropy over the group: the relevant document must outscore the query's
    /// negatives ([`TrainableCrossEncoder::fit_listwise`]), as reranking one query's list asks.
    Listwise,
}

/// The cross-encoder's loss when none is given. Binary cross-entropy on BM25 negatives learnt
/// a score that ranked hybrid's top 20 below the untrained order (0.11 against 0.52 nDCG@10 on
/// gcide-5k, `bench/results/finetune-gcide-cross`): it can lower its loss by scoring whole
/// queries up or down, where a reranker needs one query's candidates in order.
pub const DEFAULT_CROSS_LOSS: CrossLoss = CrossLoss::Listwise;

/// Hard negatives a cross-encoder trains on for each pair when not told: each costs a pair's
/// forward and backward pass, so 3 (a group of 4) trains on twice the queries of 7 in the same
/// time, which mattered more in the CPU runs of `bench/results/finetune-gcide-cross-listwise`.
pub const DEFAULT_CROSS_NEGATIVES: usize = 3;

/// A cross-encoder's peak learning rate when not told. Its pooler and classifier start
/// untrained and a CPU run is a few hundred steps: on 800 gcide-train pairs (50 steps) 1e-4
/// left held-back BM25 top-20 reranking at -0.001 nDCG@10, 2e-4 gave +0.008 (the bi-encoder's
/// 2e-5 barely moves the head).
pub const DEFAULT_CROSS_LR: f64 = 2e-4;

/// How deep in the negative source's list (BM25's or the model's) a cross-encoder's negatives
/// are drawn: the candidates a reranker sees (it reranks the top 20 of `--rerank-top`'s usual
/// setting, and [`CROSS_VALIDATION_DEPTH`] here).
pub const CROSS_NEGATIVE_DEPTH: usize = 20;

/// Where the judged pairs come from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "from", rename_all = "lowercase")]
pub enum TrainingData {
    /// BEIR files: `corpus.jsonl`, `queries.jsonl` and a qrels TSV of training judgements.
    Beir {
        corpus: PathBuf,
        queries: PathBuf,
        qrels: PathBuf,
    },
    /// A document collection's own structure ([`structure`]): titles and section headings as
    /// queries, the chunks under them as their relevant passages ([`Service::finetune`]).
    Collection {
        collection: String,
        pairs: StructurePairs,
        /// In a multi-tenant collection, train on this tenant's documents only…
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
        /// …or on every tenant's (one of the two is required there).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        all_tenants: bool,
    },
}

/// What to fine-tune, on what, how.
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneOptions {
    /// The model directory to start from (sentence-transformers or Hugging Face BERT layout).
    pub model: PathBuf,
    /// What it trains on.
    pub data: TrainingData,
    /// Where to write the trained model (created; must not exist or be empty).
    pub out: PathBuf,
    pub hard_negatives: HardNegatives,
    /// Token limit of every text (`None`: the model's `max_seq_length`).
    pub max_seq: Option<usize>,
    /// Share of the judged queries held back for validation (0: none, no nDCG reported).
    pub validation: f64,
    /// Threads for training and embedding (`None`: all cores).
    pub threads: Option<usize>,
    /// Train a cross-encoder (`BertForSequenceClassification`, one label) instead of a
    /// bi-encoder, with `cross_loss` on groups of each pair (label 1) and `cross_negatives`
    /// documents drawn from the query's top [`CROSS_NEGATIVE_DEPTH`] by the `hard_negatives`
    /// source that it is not judged relevant to (label 0).
    pub cross_encoder: bool,
    /// The cross-encoder's loss ([`DEFAULT_CROSS_LOSS`]); unused for a bi-encoder.
    pub cross_loss: CrossLoss,
    /// Negatives per pair of a cross-encoder ([`DEFAULT_CROSS_NEGATIVES`]), seeded draws
    /// without replacement from the source's top [`CROSS_NEGATIVE_DEPTH`] less the judged
    /// documents (fewer when fewer are left); unused for a bi-encoder (one hard negative a pair).
    pub cross_negatives: usize,
    /// A bi-encoder's held-back queries are ranked over their judged documents and seeded
    /// others, this many documents in all ([`DEFAULT_VALIDATION_DOCS`]; the whole corpus when
    /// smaller), so that validating every few steps does not embed a large corpus each time.
    pub validation_docs: usize,
    /// Score the held-back queries every this many steps and at the last one; the weights
    /// saved are the best-scoring ones (`None`: only before and after).
    pub eval_steps: Option<usize>,
    /// Stop after this many validations in a row without a better nDCG@10 (needs
    /// `eval_steps`).
    pub patience: Option<usize>,
    /// Write a checkpoint every this many steps (`OUT/checkpoints/step-N`; the two newest
    /// kept, all removed when the run ends).
    pub checkpoint_steps: Option<usize>,
    /// Resume from this checkpoint of an interrupted run with the same data and settings.
    pub resume: Option<PathBuf>,
    /// Mixed precision: the linear layers' products, forward and backward, on the native
    /// bf16 kernel ([`sextant_embed::TrainableEncoder::set_mixed_precision`]).
    pub mixed_precision: bool,
    pub train: TrainOptions,
}

/// What a fine-tuning run did and measured (also written as `training_card.json`).
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneReport {
    pub options: FinetuneOptions,
    /// Training pairs (query, relevant document).
    pub pairs: usize,
    /// Pairs that got a hard negative (a cross-encoder: hard negatives in all).
    pub hard_negatives: usize,
    /// Queries trained on and held back.
    pub train_queries: usize,
    pub validation_queries: usize,
    pub steps: usize,
    /// Loss of the first and last step, and the mean of the last epoch's steps.
    pub first_loss: f64,
    pub last_loss: f64,
    pub last_epoch_loss: f64,
    /// What `ndcg_before` and `ndcg_after` measure: `exact dense retrieval` (bi-encoder), or
    /// `BM25` before and `BM25 top 20 reranked` after (cross-encoder).
    pub validation_metric: String,
    /// nDCG@10 on the held-back queries, before and after (absent without validation queries).
    pub ndcg_before: Option<f64>,
    pub ndcg_after: Option<f64>,
    /// Documents the held-back queries were ranked over.
    pub validation_docs: usize,
    /// nDCG@10 of the held-back queries every `eval_steps` steps; the model saved has the
    /// best one's weights (`best_step`).
    pub validations: Vec<Validation>,
    pub best_step: Option<usize>,
    /// The run ended before its last step: `patience` validations without a better score.
    pub stopped_early: bool,
    /// The checkpoint's step this run resumed from.
    pub resumed_from: Option<usize>,
    /// Training wall seconds, the process's CPU seconds over them (every thread), and pairs
    /// per second (the steps' pairs, over the wall seconds); a resumed run's include the
    /// interrupted one's, validations included.
    pub train_seconds: f64,
    pub train_cpu_seconds: f64,
    pub pairs_per_second: f64,
}

/// The text a document is embedded and matched as.
fn document_text(d: &Record) -> String {
    if d.title.is_empty() {
        d.text.clone()
    } else {
        format!("{} {}", d.title, d.text)
    }
}

/// Refuses an output directory that exists and is not empty (field `out`).
pub(crate) fn check_new_dir(out: &Path) -> Result<()> {
    if out.exists() && std::fs::read_dir(out).map_or(true, |mut d| d.next().is_some()) {
        return Err(invalid(
            "out",
            format!("{} exists and is not empty", out.display()),
        ));
    }
    Ok(())
}

/// Refuses an output directory that holds anything but checkpoints, or checkpoints when not
/// resuming (field `out`).
fn check_training_dir(out: &Path, resuming: bool) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(out) else {
        return check_new_dir(out);
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if name == CHECKPOINTS_DIR && entry.path().is_dir() {
            if !resuming {
                return Err(invalid(
                    "out",
                    format!(
                        "{} holds the checkpoints of an earlier run: resume it (--resume {}/step-N) or remove them",
                        out.display(),
                        out.join(CHECKPOINTS_DIR).display()
                    ),
                ));
            }
        } else {
            return Err(invalid(
                "out",
                format!("{} exists and is not empty", out.display()),
            ));
        }
    }
    Ok(())
}

/// What a resumed run must share with the run that wrote its checkpoint: the data, the
/// pairs and every setting that changes what is trained (not `out`, `threads`,
/// `checkpoint_steps` or `resume`).
fn fingerprint(opts: &FinetuneOptions, pairs: usize) -> serde_json::Value {
    let path = |p: &Path| {
        p.canonicalize()
            .unwrap_or_else(|_| p.to_path_buf())
            .display()
            .to_string()
    };
    serde_json::json!({
        "model": path(&opts.model),
        "data": match &opts.data {
            TrainingData::Beir { corpus, queries, qrels } => serde_json::json!({
                "corpus": path(corpus),
                "queries": path(queries),
                "qrels": path(qrels),
            }),
            other => serde_json::to_value(other).expect("the data serialises"),
        },
        "pairs": pairs,
        "hard_negatives": opts.hard_negatives,
        "max_seq": opts.max_seq,
        "validation": opts.validation,
        "validation_docs": opts.validation_docs,
        "cross_encoder": opts.cross_encoder,
        "cross_loss": opts.cross_loss,
        "cross_negatives": opts.cross_negatives,
        "eval_steps": opts.eval_steps,
        "mixed_precision": opts.mixed_precision,
        "patience": opts.patience,
        "train": opts.train,
    })
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::invalid(field, message.into())
}

/// Judged data in memory: the corpus, the queries, their judgements, and how many of a
/// query's relevant documents become training pairs (`None`: all).
struct Judged {
    corpus: Vec<Record>,
    queries: Vec<Record>,
    qrels: Qrels,
    pairs_per_query: Option<usize>,
}

/// Fine-tunes `opts.model` on BEIR files (see the module docs); `on_step` sees every training
/// step. Training on a collection's structure goes through [`Service::finetune`].
pub fn finetune(
    opts: &FinetuneOptions,
    on_step: impl FnMut(&Step) + Send,
) -> Result<FinetuneReport> {
    let TrainingData::Beir {
        corpus,
        queries,
        qrels,
    } = &opts.data
    else {
        return Err(invalid(
            "data",
            "training on a collection's structure reads the collection: use Service::finetune",
        ));
    };
    check_options(opts)?;
    let bad_data = |e: sextant_eval::EvalError| invalid("data", e.to_string());
    let data = Judged {
        corpus: read_beir(corpus).map_err(bad_data)?,
        queries: read_beir(queries).map_err(bad_data)?,
        qrels: read_qrels(qrels).map_err(bad_data)?,
        pairs_per_query: None,
    };
    finetune_on(opts, &data, on_step)
}

impl crate::Service {
    /// Fine-tunes `opts.model` on BEIR files ([`finetune`]) or on a collection's own structure
    /// ([`TrainingData::Collection`]: every tenant's documents, read as stored).
    pub fn finetune(
        &self,
        opts: &FinetuneOptions,
        on_step: impl FnMut(&Step) + Send,
    ) -> Result<FinetuneReport> {
        let TrainingData::Collection {
            collection,
            pairs,
            tenant,
            all_tenants,
        } = &opts.data
        else {
            return finetune(opts, on_step);
        };
        check_options(opts)?;
        let c = self.collection(collection)?;
        let scope = structure::scope(&c, tenant.as_deref(), *all_tenants)?;
        let data = structure::judged(&c, &scope, *pairs)?;
        finetune_on(opts, &data, on_step)
    }
}

/// Checks made before any data is read.
fn check_options(opts: &FinetuneOptions) -> Result<()> {
    if !(0.0..1.0).contains(&opts.validation) {
        return Err(invalid(
            "validation",
            format!(
                "validation (the share of judged queries held back) must be in [0, 1), not {}",
                opts.validation
            ),
        ));
    }
    check_training_dir(&opts.out, opts.resume.is_some())
}

/// [`finetune`] on judged data in memory.
fn finetune_on(
    opts: &FinetuneOptions,
    data: &Judged,
    on_step: impl FnMut(&Step) + Send,
) -> Result<FinetuneReport> {
    let (corpus, queries, qrels) = (&data.corpus, &data.queries, &data.qrels);
    let doc_index: HashMap<&str, usize> = corpus
        .iter()
        .enumerate()
        .map(|(i, d)| (d.id.as_str(), i))
        .collect();
    let query_text: HashMap<&str, &str> = queries
        .iter()
        .map(|q| (q.id.as_str(), q.text.as_str()))
        .collect();
    // Judged queries present in both files, in a seeded order; the first share held back.
    let mut judged: Vec<&str> = qrels
        .keys()
        .map(String::as_str)
        .filter(|q| query_text.contains_key(q))
        .collect();
    judged.sort_unstable();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(opts.train.seed);
    judged.shuffle(&mut rng);
    let held = (opts.validation * judged.len() as f64).round() as usize;
    let (validation, training) = judged.split_at(held);
    let mut pairs_text: Vec<(&str, usize)> = Vec::new();
    for &q in training {
        let mut docs: Vec<usize> = qrels[q]
            .keys()
            .filter_map(|d| doc_index.get(d.as_str()).copied())
            .collect();
        docs.sort_unstable();
        if let Some(n) = data.pairs_per_query {
            docs.truncate(n);
        }
        pairs_text.extend(docs.into_iter().map(|d| (q, d)));
    }
    if pairs_text.len() < 2 {
        return Err(invalid(
            "qrels",
            format!(
                "{} training pairs (judged query, document in the corpus): at least 2 are needed",
                pairs_text.len()
            ),
        ));
    }
    let pool = {
        let mut b = rayon::ThreadPoolBuilder::new();
        if let Some(t) = opts.threads {
            b = b.num_threads(t);
        }
        b.build().map_err(|e| invalid("threads", e.to_string()))?
    };
    pool.install(|| {
        run(
            opts,
            corpus,
            qrels,
            &query_text,
            (validation, training),
            &pairs_text,
            on_step,
        )
    })
}

#[allow(clippy::too_many_arguments)]
fn run(
    opts: &FinetuneOptions,
    corpus: &[Record],
    qrels: &Qrels,
    query_text: &HashMap<&str, &str>,
    (validation, training): (&[&str], &[&str]),
    pairs_text: &[(&str, usize)],
    mut on_step: impl FnMut(&Step) + Send,
) -> Result<FinetuneReport> {
    let model = sextant_embed::ModelDir::resolve(&opts.model.to_string_lossy())?;
    let bert = model.bert_config()?;
    let max_seq = match opts.max_seq {
        Some(m) => m.min(bert.max_tokens()),
        None => model.max_seq_length(&bert)?,
    };
    let tokenizer = TextTokenizer::load(&model.require(sextant_embed::TOKENIZER_FILE)?, max_seq)?;
    let docs: Vec<String> = corpus.iter().map(document_text).collect();
    let embed_options = || EmbedderOptions {
        precision: Some(Precision::F32),
        max_seq_length: Some(max_seq),
        ..EmbedderOptions::default()
    };
    if opts.cross_encoder {
        return run_cross_encoder(
            opts,
            &tokenizer,
            &docs,
            corpus,
            qrels,
            query_text,
            (validation, training),
            pairs_text,
            (bert.pad_token_id, max_seq),
            embed_options(),
            on_step,
        );
    }
    let negatives: Option<Vec<usize>> = match opts.hard_negatives {
        HardNegatives::None => None,
        HardNegatives::Bm25 => Some(bm25_negatives(&docs, qrels, corpus, query_text, pairs_text)),
        HardNegatives::Model => {
            let embedder = BertEmbedder::load(&opts.model.to_string_lossy(), embed_options())?;
            Some(model_negatives(
                &embedder, &docs, qrels, corpus, query_text, pairs_text,
            )?)
        }
    };
    let encode = |t: &str| -> Result<Encoded> { Ok(tokenizer.encode(t)?) };
    let mut pairs = Vec::with_capacity(pairs_text.len());
    for &(q, d) in pairs_text {
        pairs.push((encode(query_text[q])?, encode(&docs[d])?));
    }
    let hard: Option<Vec<Encoded>> = match &negatives {
        Some(n) => Some(n.iter().map(|&d| encode(&docs[d])).collect::<Result<_>>()?),
        None => None,
    };
    let held_docs = validation_documents(corpus, qrels, validation, opts);
    let (held_texts, held_records): (Vec<String>, Vec<Record>) = held_docs
        .iter()
        .map(|&i| (docs[i].clone(), corpus[i].clone()))
        .unzip();
    let score = |dir: &Path| -> Result<f64> {
        let embedder = BertEmbedder::load(&dir.to_string_lossy(), embed_options())?;
        dense_ndcg(
            &embedder,
            &held_texts,
            &held_records,
            qrels,
            query_text,
            validation,
        )
    };
    let ndcg_before = (!validation.is_empty())
        .then(|| score(&opts.model))
        .transpose()?;
    let mut sup = Supervisor::new(
        &opts.out,
        fingerprint(opts, pairs.len()),
        schedule(opts),
        (!validation.is_empty()).then(|| Box::new(&score) as Scorer<'_>),
    )?;
    let (trained, resume) = starting_model(&mut sup, opts, |dir| {
        let mut model = TrainableEncoder::load(dir, DType::F32, DEFAULT_POOLING)?;
        model.set_mixed_precision(opts.mixed_precision)?;
        Ok(BiEncoder {
            model,
            from: &opts.model,
        })
    })?;
    let kept = supervised(
        &mut sup,
        &trained,
        resume.as_deref(),
        &mut on_step,
        |control| {
            trained.model.fit_controlled(
                &pairs,
                hard.as_deref(),
                bert.pad_token_id,
                &opts.train,
                control,
            )
        },
    )?;
    trained.save(&opts.out)?;
    write_training_pairs(
        &opts.out.join(TRAINING_PAIRS_FILE),
        &opts.train,
        pairs_text,
        query_text,
        &docs,
        negatives.as_deref().map(Negatives::One),
    )?;
    let ndcg_after = match kept {
        Some(k) => Some(k),
        None if !validation.is_empty() => Some(score(&opts.out)?),
        None => None,
    };
    let report = make_report(
        opts,
        "exact dense retrieval".into(),
        (pairs.len(), negatives.as_ref().map_or(0, Vec::len)),
        (validation.len(), training.len()),
        &sup,
        (ndcg_before, ndcg_after),
        held_docs.len(),
    );
    write_card(&report)?;
    Ok(report)
}

/// The report of a run: `(pairs, hard negatives)`, `(validation, training)` query counts, the
/// supervisor's steps, times and validations, nDCG before and after, and the documents the
/// held-back queries were ranked over.
fn make_report(
    opts: &FinetuneOptions,
    validation_metric: String,
    (pairs, hard_negatives): (usize, usize),
    (validation_queries, train_queries): (usize, usize),
    sup: &Supervisor<'_>,
    (ndcg_before, ndcg_after): (Option<f64>, Option<f64>),
    validation_docs: usize,
) -> FinetuneReport {
    let losses = &sup.losses;
    let last_epoch = losses.last().map_or(0, |s| s.epoch);
    let tail: Vec<f64> = losses
        .iter()
        .filter(|s| s.epoch == last_epoch)
        .map(|s| s.loss)
        .collect();
    let (train_seconds, train_cpu_seconds) = sup.seconds();
    // The pairs of the steps taken (a run stopped early took fewer than every epoch's).
    let trained_pairs: usize = sextant_embed::training_batches(pairs, &opts.train)
        .iter()
        .flatten()
        .take(losses.len())
        .map(Vec::len)
        .sum();
    FinetuneReport {
        options: opts.clone(),
        validation_metric,
        pairs,
        hard_negatives,
        train_queries,
        validation_queries,
        steps: losses.len(),
        first_loss: losses.first().map_or(f64::NAN, |s| s.loss),
        last_loss: losses.last().map_or(f64::NAN, |s| s.loss),
        last_epoch_loss: tail.iter().sum::<f64>() / tail.len().max(1) as f64,
        ndcg_before,
        ndcg_after,
        validation_docs,
        validations: sup.validations.clone(),
        best_step: sup.best.map(|b| b.step),
        stopped_early: sup.stopped_early,
        resumed_from: sup.resumed_from,
        train_seconds,
        train_cpu_seconds,
        pairs_per_second: trained_pairs as f64 / train_seconds.max(1e-9),
    }
}

/// When the run validates, stops and checkpoints.
fn schedule(opts: &FinetuneOptions) -> Schedule {
    Schedule {
        eval_steps: opts.eval_steps,
        patience: opts.patience,
        checkpoint_steps: opts.checkpoint_steps,
    }
}

/// A bi-encoder under training, saved in the layout of the directory it started from.
struct BiEncoder<'a> {
    model: TrainableEncoder,
    from: &'a Path,
}

impl Trained for BiEncoder<'_> {
    fn params(&self) -> &[Param] {
        self.model.params()
    }
    fn save(&self, dir: &Path) -> Result<()> {
        Ok(self.model.save(self.from, dir)?)
    }
}

/// A cross-encoder under training, saved as a `BertForSequenceClassification` directory.
struct Cross<'a> {
    model: TrainableCrossEncoder,
    from: &'a Path,
    max_seq: usize,
}

impl Trained for Cross<'_> {
    fn params(&self) -> &[Param] {
        self.model.params()
    }
    fn save(&self, dir: &Path) -> Result<()> {
        Ok(self.model.save(self.from, dir, Some(self.max_seq))?)
    }
}

/// The model a run trains, loaded by `load`: the starting directory's, or with
/// [`FinetuneOptions::resume`] the checkpoint's (its best validated weights handed to `sup`),
/// with the optimiser state to resume from.
fn starting_model<T: Trained>(
    sup: &mut Supervisor<'_>,
    opts: &FinetuneOptions,
    load: impl Fn(&Path) -> Result<T>,
) -> Result<(T, Option<PathBuf>)> {
    let Some(dir) = &opts.resume else {
        return Ok((load(&opts.model)?, None));
    };
    let resumed = sup.resume(dir)?;
    let model = load(&resumed.model)?;
    if let Some(best) = &resumed.best {
        sup.set_best_weights(snapshot_params(load(best)?.params())?);
    } else if sup.best.is_some() {
        // The best validated weights are the checkpoint's own.
        sup.set_best_weights(snapshot_params(model.params())?);
    }
    Ok((model, Some(resumed.optimizer)))
}

/// Runs `fit` under `sup` (resumed from the optimiser state `resume`; every step reported to
/// `on_step`, then validated and checkpointed as scheduled) and finishes the run: the best
/// validated weights back in `trained`. Returns their nDCG@10, when validated.
fn supervised<T: Trained>(
    sup: &mut Supervisor<'_>,
    trained: &T,
    resume: Option<&Path>,
    on_step: &mut dyn FnMut(&Step),
    fit: impl FnOnce(Control<'_>) -> std::result::Result<(), sextant_embed::EmbedError>,
) -> Result<Option<f64>> {
    let mut failure: Option<Error> = None;
    let mut after = |s: &Step, o: &Optimiser<'_>| {
        on_step(s);
        match sup.after_step(s, o, trained) {
            Ok(flow) => Ok(flow),
            Err(e) => {
                failure = Some(e);
                Ok(Flow::Stop)
            }
        }
    };
    fit(Control {
        resume,
        after_step: &mut after,
    })?;
    if let Some(e) = failure {
        return Err(e);
    }
    sup.finish(trained)
}

/// The documents a bi-encoder's held-back queries are ranked over (indices, ascending): the
/// whole corpus when it has at most [`FinetuneOptions::validation_docs`], otherwise every
/// document they are judged on and seeded others up to that many.
fn validation_documents(
    corpus: &[Record],
    qrels: &Qrels,
    validation: &[&str],
    opts: &FinetuneOptions,
) -> Vec<usize> {
    if validation.is_empty() {
        return Vec::new();
    }
    if corpus.len() <= opts.validation_docs {
        return (0..corpus.len()).collect();
    }
    let judged: HashSet<&str> = validation
        .iter()
        .flat_map(|q| qrels[*q].keys().map(String::as_str))
        .collect();
    let (mut chosen, mut others): (Vec<usize>, Vec<usize>) =
        (0..corpus.len()).partition(|&i| judged.contains(corpus[i].id.as_str()));
    let mut rng = rand::rngs::SmallRng::seed_from_u64(opts.train.seed ^ 0x0da1_1d00);
    others.shuffle(&mut rng);
    let room = opts.validation_docs.saturating_sub(chosen.len());
    chosen.extend(others.into_iter().take(room));
    chosen.sort_unstable();
    chosen
}

fn write_card(report: &FinetuneReport) -> Result<()> {
    let card = serde_json::to_string_pretty(report).expect("the report serialises");
    let path = report.options.out.join("training_card.json");
    std::fs::write(&path, card + "\n")
        .map_err(|e| invalid("out", format!("cannot write {}: {e}", path.display())))
}

/// Documents a cross-encoder reranks from BM25's list when it is validated.
const CROSS_VALIDATION_DEPTH: usize = 20;

/// The cross-encoder branch of [`run`]: a group for each pair, of the pair (label 1) and its
/// negatives (label 0: [`cross_negatives`], and with binary cross-entropy another pair's
/// document too), trained with [`FinetuneOptions::cross_loss`]; validation by reranking BM25's
/// top [`CROSS_VALIDATION_DEPTH`].
#[allow(clippy::too_many_arguments)]
fn run_cross_encoder(
    opts: &FinetuneOptions,
    tokenizer: &TextTokenizer,
    docs: &[String],
    corpus: &[Record],
    qrels: &Qrels,
    query_text: &HashMap<&str, &str>,
    (validation, training): (&[&str], &[&str]),
    pairs_text: &[(&str, usize)],
    (pad_id, max_seq): (u32, usize),
    embed_options: EmbedderOptions,
    mut on_step: impl FnMut(&Step) + Send,
) -> Result<FinetuneReport> {
    if opts.cross_negatives == 0 {
        return Err(invalid(
            "cross_negatives",
            "a cross-encoder trains on at least 1 negative a pair",
        ));
    }
    let bm25 = Bm25Ranker::new(docs);
    let negatives = cross_negatives(
        opts,
        &bm25,
        docs,
        corpus,
        qrels,
        query_text,
        pairs_text,
        embed_options,
    )?;
    let n = pairs_text.len();
    let mut groups = Vec::with_capacity(n);
    for (i, &(q, d)) in pairs_text.iter().enumerate() {
        let text = query_text[q];
        let mut group = vec![(tokenizer.encode_pair(text, &docs[d])?, 1.0)];
        for &neg in &negatives[i] {
            group.push((tokenizer.encode_pair(text, &docs[neg])?, 0.0));
        }
        // Binary cross-entropy also sees an easy negative: another pair's document, half the
        // list away, when the query is not judged on it.
        let other = pairs_text[(i + n / 2) % n].1;
        if opts.cross_loss == CrossLoss::Bce && !qrels[q].contains_key(corpus[other].id.as_str()) {
            group.push((tokenizer.encode_pair(text, &docs[other])?, 0.0));
        }
        groups.push(group);
    }
    let ranked = |queries: &[&str], k: usize| -> Vec<Vec<usize>> {
        queries
            .iter()
            .map(|q| bm25.rank(query_text[q], k))
            .collect()
    };
    let ndcg_of = |lists: Vec<Vec<(usize, f32)>>| -> f64 {
        let mut run: Run = Run::new();
        let mut judged: Qrels = HashMap::new();
        for (q, list) in validation.iter().zip(lists) {
            run.insert(
                (*q).to_string(),
                list.into_iter()
                    .map(|(d, s)| (corpus[d].id.clone(), s))
                    .collect(),
            );
            judged.insert((*q).to_string(), qrels[*q].clone());
        }
        evaluate(&run, &judged).ndcg_at_10
    };
    let by_rank = |list: &[usize]| -> Vec<(usize, f32)> {
        list.iter()
            .enumerate()
            .map(|(r, &d)| (d, -(r as f32)))
            .collect()
    };
    let ndcg_before = (!validation.is_empty())
        .then(|| ndcg_of(ranked(validation, 100).iter().map(|l| by_rank(l)).collect()));
    let score = |dir: &Path| -> Result<f64> {
        let reranker = CrossEncoder::load(&dir.to_string_lossy(), RerankerOptions::default())?;
        let mut lists = Vec::with_capacity(validation.len());
        for (q, list) in validation
            .iter()
            .zip(ranked(validation, CROSS_VALIDATION_DEPTH))
        {
            let passages: Vec<&str> = list.iter().map(|&d| docs[d].as_str()).collect();
            let scores = reranker.score(query_text[q], &passages)?;
            lists.push(list.into_iter().zip(scores).collect());
        }
        Ok(ndcg_of(lists))
    };
    let mut sup = Supervisor::new(
        &opts.out,
        fingerprint(opts, n),
        schedule(opts),
        (!validation.is_empty()).then(|| Box::new(&score) as Scorer<'_>),
    )?;
    let (trained, resume) = starting_model(&mut sup, opts, |dir| {
        let mut model = TrainableCrossEncoder::load(dir, DType::F32, opts.train.seed)?;
        model.set_mixed_precision(opts.mixed_precision)?;
        Ok(Cross {
            model,
            from: &opts.model,
            max_seq,
        })
    })?;
    let listwise = opts.cross_loss == CrossLoss::Listwise;
    let kept = supervised(
        &mut sup,
        &trained,
        resume.as_deref(),
        &mut on_step,
        |control| {
            trained
                .model
                .fit_controlled(&groups, pad_id, &opts.train, listwise, control)
        },
    )?;
    trained.save(&opts.out)?;
    write_training_pairs(
        &opts.out.join(TRAINING_PAIRS_FILE),
        &opts.train,
        pairs_text,
        query_text,
        docs,
        Some(Negatives::Several(&negatives)),
    )?;
    let ndcg_after = match kept {
        Some(k) => Some(k),
        None if !validation.is_empty() => Some(score(&opts.out)?),
        None => None,
    };
    let report = make_report(
        opts,
        format!(
            "BM25 before, BM25 top {CROSS_VALIDATION_DEPTH} reranked by the cross-encoder after"
        ),
        (n, negatives.iter().map(Vec::len).sum()),
        (validation.len(), training.len()),
        &sup,
        (ndcg_before, ndcg_after),
        corpus.len(),
    );
    write_card(&report)?;
    Ok(report)
}

/// A cross-encoder's negatives for each pair: `opts.cross_negatives` documents drawn without
/// replacement (seeded by `opts.train.seed` and the pair's place) from the top
/// [`CROSS_NEGATIVE_DEPTH`] of the query's BM25 or model ranking (`opts.hard_negatives`) less
/// the documents it is judged relevant to; every pair gets at least one (a document the query
/// is not judged on, when the ranking has none left).
#[allow(clippy::too_many_arguments)]
fn cross_negatives(
    opts: &FinetuneOptions,
    bm25: &Bm25Ranker,
    docs: &[String],
    corpus: &[Record],
    qrels: &Qrels,
    query_text: &HashMap<&str, &str>,
    pairs: &[(&str, usize)],
    embed_options: EmbedderOptions,
) -> Result<Vec<Vec<usize>>> {
    let mut queries: Vec<&str> = pairs.iter().map(|&(q, _)| q).collect();
    queries.sort_unstable();
    queries.dedup();
    let most_relevant = queries.iter().map(|q| qrels[*q].len()).max().unwrap_or(0);
    let depth = CROSS_NEGATIVE_DEPTH + most_relevant;
    let ranked: Vec<Vec<usize>> = match opts.hard_negatives {
        HardNegatives::None => {
            return Err(invalid(
                "hard_negatives",
                "a cross-encoder trains on negatives: use --hard-negatives bm25 or model",
            ))
        }
        HardNegatives::Bm25 => queries
            .iter()
            .map(|q| bm25.rank(query_text[q], depth))
            .collect(),
        HardNegatives::Model => {
            let embedder = BertEmbedder::load(&opts.model.to_string_lossy(), embed_options)?;
            let texts: Vec<&str> = queries.iter().map(|q| query_text[q]).collect();
            dense_rank(&embedder, docs, &texts, depth)?
                .into_iter()
                .map(|hits| hits.into_iter().map(|(d, _)| d).collect())
                .collect()
        }
    };
    let pool: HashMap<&str, Vec<usize>> = queries
        .iter()
        .zip(ranked)
        .map(|(&q, hits)| {
            let relevant = &qrels[q];
            let negatives: Vec<usize> = hits
                .into_iter()
                .filter(|&d| !relevant.contains_key(corpus[d].id.as_str()))
                .take(CROSS_NEGATIVE_DEPTH)
                .collect();
            (q, negatives)
        })
        .collect();
    let mut rng = rand::rngs::SmallRng::seed_from_u64(opts.train.seed ^ 0x00ce_0000);
    Ok(pairs
        .iter()
        .map(|&(q, d)| {
            let mut drawn: Vec<usize> = pool[q]
                .choose_multiple(&mut rng, opts.cross_negatives)
                .copied()
                .collect();
            if drawn.is_empty() {
                let relevant = &qrels[q];
                drawn.extend(
                    (1..docs.len())
                        .map(|k| (d + k) % docs.len())
                        .find(|&o| !relevant.contains_key(corpus[o].id.as_str())),
                );
            }
            drawn
        })
        .collect())
}

/// The training data a fine-tuned model directory records: [`write_training_pairs`].
pub const TRAINING_PAIRS_FILE: &str = "training_pairs.jsonl";

/// The hard negatives of each training pair: one (a bi-encoder's) or a list (a
/// cross-encoder's).
#[derive(Clone, Copy)]
enum Negatives<'a> {
    One(&'a [usize]),
    Several(&'a [Vec<usize>]),
}

/// Writes the pairs as trained, batch after batch and epoch after epoch (the order
/// [`sextant_embed::training_batches`] gives): one JSON object a line, `{"epoch", "anchor",
/// "positive", "negative"}` (`negative` null without hard negatives; a cross-encoder's lines
/// also have `negatives`, all of the pair's, `negative` being the first). It is the provenance
/// of the model, and what another trainer is given to train on the same data in the same
/// order.
fn write_training_pairs(
    path: &Path,
    train: &TrainOptions,
    pairs: &[(&str, usize)],
    query_text: &HashMap<&str, &str>,
    docs: &[String],
    negatives: Option<Negatives<'_>>,
) -> Result<()> {
    use std::io::Write;
    let fail = |e: std::io::Error| invalid("out", format!("cannot write {}: {e}", path.display()));
    let file = std::fs::File::create(path).map_err(fail)?;
    let mut w = std::io::BufWriter::new(file);
    for (epoch, batches) in sextant_embed::training_batches(pairs.len(), train)
        .iter()
        .enumerate()
    {
        for &i in batches.iter().flatten() {
            let (q, d) = pairs[i];
            let mut line = serde_json::json!({
                "epoch": epoch + 1,
                "anchor": query_text[q],
                "positive": docs[d],
                "negative": null,
            });
            match negatives {
                None => {}
                Some(Negatives::One(n)) => line["negative"] = docs[n[i]].as_str().into(),
                Some(Negatives::Several(n)) => {
                    line["negative"] = n[i].first().map(|&x| docs[x].as_str()).into();
                    line["negatives"] = n[i].iter().map(|&x| docs[x].as_str()).collect();
                }
            }
            writeln!(w, "{line}").map_err(fail)?;
        }
    }
    w.flush().map_err(fail)
}

/// BM25 over the documents' texts, with the engine's default analysis and parameters.
struct Bm25Ranker {
    encoder: Bm25Encoder,
    index: SparseIndex,
    dict: TermDict,
    stats: CorpusStats,
    scoring: SparseScoring,
}

impl Bm25Ranker {
    fn new(docs: &[String]) -> Self {
        let encoder = Bm25Encoder::new(AnalyzerConfig::default(), Bm25Params::default());
        let mut index = SparseIndex::new();
        let mut dict = TermDict::new();
        for text in docs {
            let (v, len) = encoder.encode_document_with(text, |t| dict.insert(t));
            index
                .push(&v, len)
                .expect("term ids come from the dictionary");
        }
        let stats = CorpusStats {
            docs: index.len() as u64,
            total_len: index.total_len(),
        };
        let params = Bm25Params::default();
        let scoring = SparseScoring::Bm25 {
            k1: params.k1,
            b: params.b,
            avg_len: stats.avg_len(),
        };
        Bm25Ranker {
            encoder,
            index,
            dict,
            stats,
            scoring,
        }
    }

    /// The `k` best documents (indices) for `query`, best first.
    fn rank(&self, query: &str, k: usize) -> Vec<usize> {
        let df = |t: &str| {
            self.dict
                .get(t)
                .map_or(0, |id| self.index.doc_freq(id) as u64)
        };
        let (analysed, _) = self.encoder.analyse_query_by_index(query, None, df);
        let ones: Vec<(String, f32)> = analysed.into_iter().map(|t| (t, 1.0)).collect();
        let terms: Vec<(u32, f32)> = self
            .encoder
            .weigh(&ones, self.stats, df)
            .into_iter()
            .filter_map(|(t, w)| self.dict.get(&t).map(|id| (id, w)))
            .collect();
        self.index
            .search(&terms, k, self.scoring, None)
            .iter()
            .map(|h| h.id as usize)
            .collect()
    }
}

/// For each pair, the best BM25 hit of its query among the documents the query is not judged
/// relevant to (a seeded other document when BM25 finds none).
fn bm25_negatives(
    docs: &[String],
    qrels: &Qrels,
    corpus: &[Record],
    query_text: &HashMap<&str, &str>,
    pairs: &[(&str, usize)],
) -> Vec<usize> {
    let bm25 = Bm25Ranker::new(docs);
    let mut cache: HashMap<&str, Vec<usize>> = HashMap::new();
    pairs
        .iter()
        .enumerate()
        .map(|(i, &(q, _))| {
            let relevant: HashSet<&str> = qrels[q].keys().map(String::as_str).collect();
            let hits = cache
                .entry(q)
                .or_insert_with(|| bm25.rank(query_text[q], relevant.len() + 10));
            hits.iter()
                .copied()
                .find(|&d| !relevant.contains(corpus[d].id.as_str()))
                .unwrap_or_else(|| {
                    // Deterministic: the document after the pair's own, skipping relevant ones.
                    (1..docs.len())
                        .map(|k| (pairs[i].1 + k) % docs.len())
                        .find(|&d| !relevant.contains(corpus[d].id.as_str()))
                        .unwrap_or(pairs[i].1)
                })
        })
        .collect()
}

/// Exact cosine retrieval over `docs` for `queries` (texts): each query's `k` best documents
/// (indices) with their scores, best first (ties by index).
fn dense_rank(
    embedder: &BertEmbedder,
    docs: &[String],
    queries: &[&str],
    k: usize,
) -> Result<Vec<Vec<(usize, f32)>>> {
    use rayon::prelude::*;
    let doc_refs: Vec<&str> = docs.iter().map(String::as_str).collect();
    let d = embedder.embed(&doc_refs, InputKind::Passage)?;
    let q = embedder.embed(queries, InputKind::Query)?;
    let unit = |v: &[f32]| -> Vec<f32> {
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter().map(|x| x / n).collect()
    };
    let doc_units: Vec<Vec<f32>> = d.rows().map(unit).collect();
    let query_units: Vec<Vec<f32>> = q.rows().map(unit).collect();
    Ok(query_units
        .par_iter()
        .map(|qv| {
            let mut scored: Vec<(usize, f32)> = doc_units
                .iter()
                .enumerate()
                .map(|(i, dv)| (i, dv.iter().zip(qv).map(|(a, b)| a * b).sum()))
                .collect();
            let k = k.min(scored.len());
            if k < scored.len() {
                scored.select_nth_unstable_by(k, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                scored.truncate(k);
            }
            scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            scored
        })
        .collect())
}

/// For each pair, the model's best hit for its query among the documents the query is not
/// judged relevant to (exact cosine over the corpus).
fn model_negatives(
    embedder: &BertEmbedder,
    docs: &[String],
    qrels: &Qrels,
    corpus: &[Record],
    query_text: &HashMap<&str, &str>,
    pairs: &[(&str, usize)],
) -> Result<Vec<usize>> {
    let mut queries: Vec<&str> = pairs.iter().map(|&(q, _)| q).collect();
    queries.sort_unstable();
    queries.dedup();
    let texts: Vec<&str> = queries.iter().map(|q| query_text[q]).collect();
    let most_relevant = queries.iter().map(|q| qrels[*q].len()).max().unwrap_or(0);
    let ranked = dense_rank(embedder, docs, &texts, most_relevant + 1)?;
    let best: HashMap<&str, usize> = queries
        .iter()
        .zip(&ranked)
        .map(|(&q, hits)| {
            let relevant = &qrels[q];
            let first = hits
                .iter()
                .map(|&(d, _)| d)
                .find(|&d| !relevant.contains_key(corpus[d].id.as_str()));
            (q, first.unwrap_or(0))
        })
        .collect();
    Ok(pairs.iter().map(|&(q, _)| best[q]).collect())
}

/// nDCG@10 of exact cosine retrieval over `docs` for the `queries`, judged by `qrels`.
fn dense_ndcg(
    embedder: &BertEmbedder,
    docs: &[String],
    corpus: &[Record],
    qrels: &Qrels,
    query_text: &HashMap<&str, &str>,
    queries: &[&str],
) -> Result<f64> {
    let q_texts: Vec<&str> = queries.iter().map(|q| query_text[q]).collect();
    let ranked = dense_rank(embedder, docs, &q_texts, 100)?;
    let mut run: Run = Run::new();
    let mut judged: Qrels = HashMap::new();
    for (qi, scored) in ranked.into_iter().enumerate() {
        let id = queries[qi].to_string();
        run.insert(
            id.clone(),
            scored
                .into_iter()
                .map(|(i, s)| (corpus[i].id.clone(), s))
                .collect(),
        );
        judged.insert(id.clone(), qrels[queries[qi]].clone());
    }
    Ok(evaluate(&run, &judged).ndcg_at_10)
}
