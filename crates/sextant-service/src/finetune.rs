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
use std::time::Instant;

use candle_core::DType;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use sextant_embed::{
    BertEmbedder, CrossEncoder, Embedder, EmbedderOptions, Encoded, InputKind, Precision, Reranker,
    RerankerOptions, Step, TextTokenizer, TrainOptions, TrainableCrossEncoder, TrainableEncoder,
    DEFAULT_POOLING,
};
use sextant_eval::ir::{evaluate, read_beir, read_qrels, Qrels, Record, Run};
use sextant_eval::process_cpu_seconds;
use sextant_index::{SparseIndex, SparseScoring, TermDict};
use sextant_text::{AnalyzerConfig, Bm25Encoder, Bm25Params, CorpusStats};

use crate::{Error, Result};

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

/// What to fine-tune, on what, how.
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneOptions {
    /// The model directory to start from (sentence-transformers or Hugging Face BERT layout).
    pub model: PathBuf,
    /// BEIR `corpus.jsonl`.
    pub corpus: PathBuf,
    /// BEIR `queries.jsonl`.
    pub queries: PathBuf,
    /// BEIR qrels TSV: the training judgements.
    pub qrels: PathBuf,
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
    /// bi-encoder: binary cross-entropy on each pair (label 1), its hard negative (label 0) and
    /// another pair's document (label 0).
    pub cross_encoder: bool,
    pub train: TrainOptions,
}

/// What a fine-tuning run did and measured (also written as `training_card.json`).
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneReport {
    pub options: FinetuneOptions,
    /// Training pairs (query, relevant document).
    pub pairs: usize,
    /// Pairs that got a hard negative.
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
    /// Training wall seconds, the process's CPU seconds over them (every thread), and pairs
    /// per second (every epoch's pairs, over the wall seconds).
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

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::invalid(field, message.into())
}

/// Fine-tunes `opts.model` (see the module docs); `on_step` sees every training step.
pub fn finetune(
    opts: &FinetuneOptions,
    on_step: impl FnMut(&Step) + Send,
) -> Result<FinetuneReport> {
    if !(0.0..1.0).contains(&opts.validation) {
        return Err(invalid(
            "validation",
            format!(
                "validation (the share of judged queries held back) must be in [0, 1), not {}",
                opts.validation
            ),
        ));
    }
    if opts.out.exists() && std::fs::read_dir(&opts.out).map_or(true, |mut d| d.next().is_some()) {
        return Err(invalid(
            "out",
            format!("{} exists and is not empty", opts.out.display()),
        ));
    }
    let bad_data = |e: sextant_eval::EvalError| invalid("data", e.to_string());
    let corpus = read_beir(&opts.corpus).map_err(bad_data)?;
    let queries = read_beir(&opts.queries).map_err(bad_data)?;
    let qrels = read_qrels(&opts.qrels).map_err(bad_data)?;
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
            &corpus,
            &qrels,
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
    if opts.cross_encoder {
        let negatives = negatives.ok_or_else(|| {
            invalid(
                "hard_negatives",
                "a cross-encoder trains on negatives: use --hard-negatives bm25 or model",
            )
        })?;
        return run_cross_encoder(
            opts,
            &tokenizer,
            &docs,
            corpus,
            qrels,
            query_text,
            (validation, training),
            pairs_text,
            &negatives,
            (bert.pad_token_id, max_seq),
            on_step,
        );
    }
    let encode = |t: &str| -> Result<Encoded> { Ok(tokenizer.encode(t)?) };
    let mut pairs = Vec::with_capacity(pairs_text.len());
    for &(q, d) in pairs_text {
        pairs.push((encode(query_text[q])?, encode(&docs[d])?));
    }
    let hard: Option<Vec<Encoded>> = match &negatives {
        Some(n) => Some(n.iter().map(|&d| encode(&docs[d])).collect::<Result<_>>()?),
        None => None,
    };
    let score = |dir: &Path| -> Result<Option<f64>> {
        if validation.is_empty() {
            return Ok(None);
        }
        let embedder = BertEmbedder::load(&dir.to_string_lossy(), embed_options())?;
        Ok(Some(dense_ndcg(
            &embedder, &docs, corpus, qrels, query_text, validation,
        )?))
    };
    let ndcg_before = score(&opts.model)?;
    let encoder = TrainableEncoder::load(&opts.model, DType::F32, DEFAULT_POOLING)?;
    let mut losses: Vec<Step> = Vec::new();
    let (t0, cpu0) = (Instant::now(), process_cpu_seconds());
    encoder.fit(
        &pairs,
        hard.as_deref(),
        bert.pad_token_id,
        &opts.train,
        |s| {
            losses.push(*s);
            on_step(s);
        },
    )?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let train_cpu_seconds = process_cpu_seconds() - cpu0;
    encoder.save(&opts.model, &opts.out)?;
    write_training_pairs(
        &opts.out.join(TRAINING_PAIRS_FILE),
        &opts.train,
        pairs_text,
        query_text,
        &docs,
        negatives.as_deref(),
    )?;
    let ndcg_after = score(&opts.out)?;
    let report = make_report(
        opts,
        "exact dense retrieval".into(),
        (pairs.len(), negatives.as_ref().map_or(0, Vec::len)),
        (validation.len(), training.len()),
        &losses,
        (train_seconds, train_cpu_seconds),
        (ndcg_before, ndcg_after),
    );
    write_card(&report)?;
    Ok(report)
}

/// The report of a run: `(pairs, hard negatives)`, `(validation, training)` query counts, the
/// steps, `(wall, CPU)` training seconds and nDCG before and after.
fn make_report(
    opts: &FinetuneOptions,
    validation_metric: String,
    (pairs, hard_negatives): (usize, usize),
    (validation_queries, train_queries): (usize, usize),
    losses: &[Step],
    (train_seconds, train_cpu_seconds): (f64, f64),
    (ndcg_before, ndcg_after): (Option<f64>, Option<f64>),
) -> FinetuneReport {
    let tail: Vec<f64> = losses
        .iter()
        .filter(|s| s.epoch == opts.train.epochs)
        .map(|s| s.loss)
        .collect();
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
        train_seconds,
        train_cpu_seconds,
        pairs_per_second: (pairs * opts.train.epochs) as f64 / train_seconds.max(1e-9),
    }
}

fn write_card(report: &FinetuneReport) -> Result<()> {
    let card = serde_json::to_string_pretty(report).expect("the report serialises");
    let path = report.options.out.join("training_card.json");
    std::fs::write(&path, card + "\n")
        .map_err(|e| invalid("out", format!("cannot write {}: {e}", path.display())))
}

/// Documents a cross-encoder reranks from BM25's list when it is validated.
const CROSS_VALIDATION_DEPTH: usize = 20;

/// The cross-encoder branch of [`run`]: groups of (query, document) pairs labelled 1 and 0,
/// [`TrainableCrossEncoder::fit`], validation by reranking BM25's top
/// [`CROSS_VALIDATION_DEPTH`].
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
    negatives: &[usize],
    (pad_id, max_seq): (u32, usize),
    mut on_step: impl FnMut(&Step) + Send,
) -> Result<FinetuneReport> {
    let n = pairs_text.len();
    let mut groups = Vec::with_capacity(n);
    for (i, &(q, d)) in pairs_text.iter().enumerate() {
        let text = query_text[q];
        let mut group = vec![
            (tokenizer.encode_pair(text, &docs[d])?, 1.0),
            (tokenizer.encode_pair(text, &docs[negatives[i]])?, 0.0),
        ];
        // Another pair's document, half the list away, when the query is not judged on it.
        let other = pairs_text[(i + n / 2) % n].1;
        if !qrels[q].contains_key(corpus[other].id.as_str()) {
            group.push((tokenizer.encode_pair(text, &docs[other])?, 0.0));
        }
        groups.push(group);
    }
    let bm25 = Bm25Ranker::new(docs);
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
    let model = TrainableCrossEncoder::load(&opts.model, DType::F32, opts.train.seed)?;
    let mut losses: Vec<Step> = Vec::new();
    let (t0, cpu0) = (Instant::now(), process_cpu_seconds());
    model.fit(&groups, pad_id, &opts.train, |s| {
        losses.push(*s);
        on_step(s);
    })?;
    let train_seconds = t0.elapsed().as_secs_f64();
    let train_cpu_seconds = process_cpu_seconds() - cpu0;
    model.save(&opts.model, &opts.out, Some(max_seq))?;
    write_training_pairs(
        &opts.out.join(TRAINING_PAIRS_FILE),
        &opts.train,
        pairs_text,
        query_text,
        docs,
        Some(negatives),
    )?;
    let ndcg_after = if validation.is_empty() {
        None
    } else {
        let reranker = CrossEncoder::load(&opts.out.to_string_lossy(), RerankerOptions::default())?;
        let mut lists = Vec::with_capacity(validation.len());
        for (q, list) in validation
            .iter()
            .zip(ranked(validation, CROSS_VALIDATION_DEPTH))
        {
            let passages: Vec<&str> = list.iter().map(|&d| docs[d].as_str()).collect();
            let scores = reranker.score(query_text[q], &passages)?;
            lists.push(list.into_iter().zip(scores).collect());
        }
        Some(ndcg_of(lists))
    };
    let report = make_report(
        opts,
        format!(
            "BM25 before, BM25 top {CROSS_VALIDATION_DEPTH} reranked by the cross-encoder after"
        ),
        (n, negatives.len()),
        (validation.len(), training.len()),
        &losses,
        (train_seconds, train_cpu_seconds),
        (ndcg_before, ndcg_after),
    );
    write_card(&report)?;
    Ok(report)
}

/// The training data a fine-tuned model directory records: [`write_training_pairs`].
pub const TRAINING_PAIRS_FILE: &str = "training_pairs.jsonl";

/// Writes the pairs as trained, batch after batch and epoch after epoch (the order
/// [`sextant_embed::training_batches`] gives): one JSON object a line, `{"epoch", "anchor",
/// "positive", "negative"}` (`negative` null without hard negatives). It is the provenance of
/// the model, and what another trainer is given to train on the same data in the same order.
fn write_training_pairs(
    path: &Path,
    train: &TrainOptions,
    pairs: &[(&str, usize)],
    query_text: &HashMap<&str, &str>,
    docs: &[String],
    negatives: Option<&[usize]>,
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
            let line = serde_json::json!({
                "epoch": epoch + 1,
                "anchor": query_text[q],
                "positive": docs[d],
                "negative": negatives.map(|n| docs[n[i]].as_str()),
            });
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
