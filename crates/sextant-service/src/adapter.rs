//! Query adapters (issue 20): a linear map of query embeddings trained against a document
//! collection's frozen chunk vectors, so the collection adapts to its domain without
//! re-embedding anything. What `sextant adapter train | attach | detach | show` runs.
//!
//! **Training.** Every judged query (BEIR `queries.jsonl` + qrels, relevance > 0) is embedded
//! once with the collection's model, as a query. Its positives are the stored vectors of the
//! chunks of its relevant documents (the [`MAX_POSITIVE_CHUNKS`] closest to the query); its
//! hard negatives are the collection's nearest chunks of documents it is not judged relevant
//! to. The map `W` (`dim × dim`, starting at the identity) minimises, over batches, the
//! multiple-negatives ranking loss of `W q` (cosine, scale [`AdapterOptions::scale`]) against
//! the batch's pool of candidates — every query's positives and hard negatives, a chunk of a
//! document judged relevant to the query counting as a positive — with the probability mass
//! of all its positives as the target, plus `λ/2 ‖W − I‖²` that keeps it near the identity.
//! Adam updates `W`. Only query vectors move, so the collection's points are never touched.
//!
//! **Validation and early stopping.** A seeded share of the judged queries is held back. After
//! every epoch they are searched in the collection as a text search's dense source does (the
//! index's default plan, chunks grouped by document), and nDCG@10 is measured; the best `W`
//! so far is kept, and training stops after [`AdapterOptions::patience`] epochs without a
//! better one. The report gives nDCG@10 before (the identity) and after.
//!
//! **Output.** `out/adapter.safetensors` (tensor `weight`, `dim × dim`, f32: `W q` is the
//! adapted query, loadable by any safetensors reader) and `out/adapter_card.json` (the
//! collection, space, model identity, fingerprint, data, settings, per-epoch loss and nDCG).
//! With `attach`, the adapter is stored with the collection ([`Collection::set_adapter`]) and
//! every text search applies it from then on.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::{Device, Tensor};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rayon::prelude::*;
use serde::Serialize;
use serde_json::{json, Value};
use sextant_core::{Filter, PointId};
use sextant_embed::InputKind;
use sextant_engine::adapter::{AdapterInfo, QueryAdapter};
use sextant_engine::documents::{stored_model, DENSE};
use sextant_engine::{Collection, Scope, SearchRequest};
use sextant_eval::ir::{evaluate, read_beir, read_qrels, Qrels, Run};

use crate::{Error, Result, Service};

/// Chunks of one relevant document a query keeps as positives (the closest to it).
pub const MAX_POSITIVE_CHUNKS: usize = 4;
/// The weights' file in an adapter directory.
pub const WEIGHTS_FILE: &str = "adapter.safetensors";
/// The card in an adapter directory.
pub const CARD_FILE: &str = "adapter_card.json";
/// Chunks a validation search retrieves before grouping them by document.
const VALIDATION_DEPTH: usize = 100;

/// What to train an adapter on, and how.
#[derive(Debug, Clone, Serialize)]
pub struct AdapterOptions {
    /// The document collection.
    pub collection: String,
    /// BEIR `queries.jsonl`.
    pub queries: PathBuf,
    /// BEIR qrels TSV (`query-id`, `corpus-id`, `score`; documents are the collection's
    /// `doc_id`s).
    pub qrels: PathBuf,
    /// Where to write the adapter (created; must not exist or be empty).
    pub out: PathBuf,
    /// Store the trained adapter with the collection.
    pub attach: bool,
    /// Most passes over the training queries (early stopping may end sooner).
    pub epochs: usize,
    /// Queries per step.
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Hard negatives (chunks) mined per query.
    pub negatives: usize,
    /// Cosine scale of the loss (the inverse temperature).
    pub scale: f32,
    /// λ of `λ/2 ‖W − I‖²`.
    pub regularisation: f64,
    /// Share of the judged queries held back for validation and early stopping (0: none; the
    /// last epoch's map is kept).
    pub validation: f64,
    /// Epochs without a better validation nDCG@10 before training stops.
    pub patience: usize,
    /// Seed of the split and of the batch order.
    pub seed: u64,
    #[serde(skip)]
    pub scope: Scope,
}

impl AdapterOptions {
    /// The defaults for a collection, data and output directory.
    pub fn new(collection: &str, queries: &Path, qrels: &Path, out: &Path) -> Self {
        AdapterOptions {
            collection: collection.to_string(),
            queries: queries.to_path_buf(),
            qrels: qrels.to_path_buf(),
            out: out.to_path_buf(),
            attach: true,
            epochs: 30,
            batch: 64,
            lr: 1e-4,
            negatives: 16,
            scale: 20.0,
            regularisation: 1e-3,
            validation: 0.1,
            patience: 3,
            seed: 42,
            scope: Scope::Unscoped,
        }
    }
}

/// One epoch of training.
#[derive(Debug, Clone, Serialize)]
pub struct Epoch {
    /// 1-based.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches (regulariser included).
    pub loss: f64,
    /// Validation nDCG@10 after the epoch (`None` without validation).
    pub ndcg_at_10: Option<f64>,
    /// Wall seconds since training began.
    pub seconds: f64,
}

/// What an adapter training run did and measured (also the card's `report`).
#[derive(Debug, Clone, Serialize)]
pub struct AdapterReport {
    pub options: AdapterOptions,
    pub space: String,
    pub dim: usize,
    /// Judged queries with text.
    pub queries: usize,
    /// Training queries with at least one positive chunk in the collection.
    pub training: usize,
    /// Judged queries skipped: none of their relevant documents is in the collection.
    pub skipped: usize,
    /// Held-back queries.
    pub validation: usize,
    /// Validation nDCG@10 with the identity (the model's own query embedding).
    pub ndcg_before: Option<f64>,
    /// Validation nDCG@10 with the kept map.
    pub ndcg_after: Option<f64>,
    /// The epoch whose map was kept (0: the identity was never beaten).
    pub best_epoch: usize,
    pub epochs: Vec<Epoch>,
    /// Whether training stopped before `options.epochs` (no better validation nDCG for
    /// `options.patience` epochs).
    pub stopped_early: bool,
    pub train_seconds: f64,
    /// The adapter's fingerprint ([`QueryAdapter::fingerprint`]).
    pub fingerprint: String,
    /// Whether it was attached to the collection.
    pub attached: bool,
}

/// Progress of a training run.
#[derive(Debug, Clone, Copy)]
pub enum Progress {
    /// Queries embedded of the total.
    Embedded(usize, usize),
    /// Queries whose positives and negatives were found, of the total.
    Mined(usize, usize),
    /// An epoch ended.
    Epoch(usize, f64, Option<f64>),
}

fn invalid(field: &str, message: impl Into<String>) -> Error {
    Error::invalid(field, message.into())
}

/// A judged query's training data: its embedding and candidate chunks.
struct Example {
    query: Vec<f32>,
    /// Indices into the chunk table: positives first, then hard negatives.
    chunks: Vec<usize>,
    /// Documents it is judged relevant to (indices into the document table).
    relevant: HashSet<usize>,
}

/// Chunk vectors (normalised) and their documents, shared by every example.
#[derive(Default)]
struct Chunks {
    index: HashMap<PointId, usize>,
    vectors: Vec<Vec<f32>>,
    doc: Vec<usize>,
    docs: HashMap<String, usize>,
}

impl Chunks {
    fn doc_id(&mut self, d: &str) -> usize {
        let n = self.docs.len();
        *self.docs.entry(d.to_string()).or_insert(n)
    }

    fn add(&mut self, id: PointId, vector: Vec<f32>, doc: usize) -> usize {
        if let Some(&i) = self.index.get(&id) {
            return i;
        }
        let i = self.vectors.len();
        self.index.insert(id, i);
        self.vectors.push(normalised(vector));
        self.doc.push(doc);
        i
    }
}

fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
    v
}

impl Service {
    /// Trains a query adapter for a document collection's dense space (see the module docs).
    pub fn train_adapter(
        &self,
        opts: &AdapterOptions,
        mut progress: impl FnMut(Progress),
    ) -> Result<AdapterReport> {
        check_options(opts)?;
        let c = self.collection(&opts.collection)?;
        if c.schema().documents.is_none() {
            return Err(invalid(
                "collection",
                format!(
                    "collection {:?} is not a document collection: an adapter is trained against the chunks of judged documents (ingest them first)",
                    c.name()
                ),
            ));
        }
        let model_identity = stored_model(&c, DENSE).ok_or_else(|| {
            invalid(
                "collection",
                format!("collection {:?} has no model-backed dense space", c.name()),
            )
        })?;
        let dim = c
            .schema()
            .spaces
            .iter()
            .find(|s| s.name == DENSE)
            .map(|s| s.dim)
            .unwrap_or(0);
        let model = self
            .models()
            .collection_dense(&c, crate::plan::DEFAULT_PRECISION)?;
        let bad_data = |e: sextant_eval::EvalError| invalid("data", e.to_string());
        let queries = read_beir(&opts.queries).map_err(bad_data)?;
        let qrels = read_qrels(&opts.qrels).map_err(bad_data)?;
        let text: HashMap<&str, &str> = queries
            .iter()
            .map(|q| (q.id.as_str(), q.text.as_str()))
            .collect();
        let mut judged: Vec<&str> = qrels
            .iter()
            .filter(|(q, rel)| text.contains_key(q.as_str()) && rel.values().any(|&s| s > 0))
            .map(|(q, _)| q.as_str())
            .collect();
        judged.sort_unstable();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(opts.seed);
        judged.shuffle(&mut rng);
        let held = (opts.validation * judged.len() as f64).round() as usize;
        let (validation, training) = judged.split_at(held);
        if training.len() < 2 {
            return Err(invalid(
                "qrels",
                format!(
                    "{} judged queries with text to train on (after holding back {held}): at least 2 are needed",
                    training.len()
                ),
            ));
        }

        // Embed every judged query once, as the dense source does.
        let mut embedded: HashMap<&str, Vec<f32>> = HashMap::new();
        for part in judged.chunks(256) {
            let texts: Vec<&str> = part.iter().map(|q| text[q]).collect();
            let (rows, _) = model.embed_rows(&texts, InputKind::Query)?;
            embedded.extend(part.iter().copied().zip(rows));
            progress(Progress::Embedded(embedded.len(), judged.len()));
        }

        let mut chunks = Chunks::default();
        let mut examples = Vec::new();
        let mut skipped = 0;
        let mined = std::sync::atomic::AtomicUsize::new(0);
        let found: Vec<Result<Option<Mined>>> = training
            .par_iter()
            .map(|q| {
                let r = mine(&c, opts, &embedded[q], &qrels[*q]);
                mined.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                r
            })
            .collect();
        progress(Progress::Mined(
            mined.load(std::sync::atomic::Ordering::Relaxed),
            training.len(),
        ));
        for (q, m) in training.iter().zip(found) {
            let Some(m) = m? else {
                skipped += 1;
                continue;
            };
            let relevant: HashSet<usize> = qrels[*q]
                .iter()
                .filter(|(_, &s)| s > 0)
                .map(|(d, _)| chunks.doc_id(d))
                .collect();
            let mut ids = Vec::new();
            for (id, v, doc) in m.positives.into_iter().chain(m.negatives) {
                let d = chunks.doc_id(&doc);
                ids.push(chunks.add(id, v, d));
            }
            examples.push(Example {
                query: embedded[q].clone(),
                chunks: ids,
                relevant,
            });
        }
        if examples.len() < 2 {
            return Err(invalid(
                "qrels",
                format!(
                    "{} training queries have a relevant document in collection {:?} (its chunks' doc_id): at least 2 are needed",
                    examples.len(),
                    c.name()
                ),
            ));
        }

        let validate = |w: &QueryAdapter| -> Result<Option<f64>> {
            if validation.is_empty() {
                return Ok(None);
            }
            let vectors: Vec<Vec<f32>> = validation.iter().map(|q| w.apply(&embedded[q])).collect();
            ndcg(&c, &opts.scope, validation, &vectors, &qrels).map(Some)
        };
        let mut adapter = QueryAdapter::identity(DENSE, dim, model_identity);
        let ndcg_before = validate(&adapter)?;
        let mut trainer = Trainer::new(dim, opts);
        let mut best = (ndcg_before, 0usize, adapter.weights.clone());
        let mut epochs = Vec::new();
        let mut stopped_early = false;
        let t0 = Instant::now();
        let mut order: Vec<usize> = (0..examples.len()).collect();
        for epoch in 1..=opts.epochs {
            order.shuffle(&mut rng);
            let mut loss = 0.0;
            let mut batches = 0;
            for batch in order.chunks(opts.batch) {
                loss += trainer.step(&examples, batch, &chunks);
                batches += 1;
            }
            adapter.weights.clone_from(&trainer.w);
            let score = validate(&adapter)?;
            let loss = loss / batches as f64;
            progress(Progress::Epoch(epoch, loss, score));
            epochs.push(Epoch {
                epoch,
                loss,
                ndcg_at_10: score,
                seconds: t0.elapsed().as_secs_f64(),
            });
            match (score, best.0) {
                (Some(s), Some(b)) if s > b => best = (Some(s), epoch, trainer.w.clone()),
                (Some(_), Some(_)) => {
                    if epoch - best.1 >= opts.patience {
                        stopped_early = epoch < opts.epochs;
                        break;
                    }
                }
                _ => best = (None, epoch, trainer.w.clone()),
            }
        }
        let train_seconds = t0.elapsed().as_secs_f64();
        adapter.weights = best.2;
        let mut report = AdapterReport {
            options: opts.clone(),
            space: DENSE.to_string(),
            dim,
            queries: judged.len(),
            training: examples.len(),
            skipped,
            validation: validation.len(),
            ndcg_before,
            ndcg_after: best.0,
            best_epoch: best.1,
            epochs,
            stopped_early,
            train_seconds,
            fingerprint: adapter.fingerprint(),
            attached: false,
        };
        adapter.card = json!({
            "collection": c.name(),
            "trained_at": sextant_core::format_rfc3339(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs() as i64)
                    .unwrap_or(0)
            ),
            "queries": opts.queries,
            "qrels": opts.qrels,
            "training_queries": report.training,
            "validation_queries": report.validation,
            "ndcg_before": report.ndcg_before,
            "ndcg_after": report.ndcg_after,
            "best_epoch": report.best_epoch,
        });
        write_adapter(&opts.out, &adapter, &report)?;
        if opts.attach {
            c.set_adapter(adapter.clone())?;
            report.attached = true;
            write_adapter_card(&opts.out, &adapter, &report)?;
        }
        Ok(report)
    }

    /// Attaches the adapter in directory `dir` (what `train_adapter` wrote) to a collection.
    pub fn attach_adapter(&self, collection: &str, dir: &Path) -> Result<AdapterInfo> {
        let c = self.collection(collection)?;
        let adapter = read_adapter(dir)?;
        Ok(c.set_adapter(adapter)?)
    }

    /// Removes a collection's adapter of its dense space; `false` when it had none.
    pub fn detach_adapter(&self, collection: &str) -> Result<bool> {
        let c = self.collection(collection)?;
        Ok(c.remove_adapter(&default_space(&c, None))?)
    }

    /// Attaches an adapter given by value (the server's `PUT /collections/{name}/adapter`).
    pub fn put_adapter(&self, collection: &str, body: &AdapterBody) -> Result<AdapterInfo> {
        let c = self.collection(collection)?;
        let n = body.weights.len();
        let dim = (n as f64).sqrt().round() as usize;
        if n == 0 || dim * dim != n {
            return Err(invalid(
                "weights",
                format!("weights must hold dim × dim numbers (row-major); {n} is not a square"),
            ));
        }
        Ok(c.set_adapter(QueryAdapter {
            space: default_space(&c, body.space.as_deref()),
            dim,
            weights: body.weights.clone(),
            model: body.model.clone(),
            card: body.card.clone(),
        })?)
    }
}

/// The space an adapter request means: the one named, else a document collection's dense
/// space, else a collection's only space.
fn default_space(c: &Collection, given: Option<&str>) -> String {
    if let Some(s) = given {
        return s.to_string();
    }
    let spaces = &c.schema().spaces;
    match spaces.as_slice() {
        [only] => only.name.clone(),
        _ => DENSE.to_string(),
    }
}

/// An adapter given by value: what `adapter_card.json` and `adapter.safetensors` hold.
#[derive(Debug, Clone, serde::Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AdapterBody {
    /// The dense space it maps [default: a document collection's `dense`, or the only space].
    #[serde(default)]
    pub space: Option<String>,
    /// The model identity it was trained for (`model` in `adapter_card.json`; `null` for a
    /// space without a model); another one than the space's is refused (409).
    #[schema(value_type = Object)]
    pub model: Value,
    /// `W`, row-major, `dim × dim` numbers: the adapted query is `W q`.
    pub weights: Vec<f32>,
    /// A free-form record of how it was trained.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub card: Value,
}

fn check_options(opts: &AdapterOptions) -> Result<()> {
    if !(0.0..1.0).contains(&opts.validation) {
        return Err(invalid(
            "validation",
            format!(
                "validation (the share of judged queries held back) must be in [0, 1), not {}",
                opts.validation
            ),
        ));
    }
    for (field, value, least) in [
        ("epochs", opts.epochs, 1),
        ("batch", opts.batch, 2),
        ("patience", opts.patience, 1),
    ] {
        if value < least {
            return Err(invalid(
                field,
                format!("must be at least {least}, not {value}"),
            ));
        }
    }
    if opts.negatives > 1000 {
        return Err(invalid(
            "negatives",
            format!(
                "at most 1000 hard negatives per query, not {}",
                opts.negatives
            ),
        ));
    }
    if !(opts.lr.is_finite() && opts.lr > 0.0) {
        return Err(invalid(
            "lr",
            format!("lr must be a positive number, not {}", opts.lr),
        ));
    }
    if !(opts.scale.is_finite() && opts.scale > 0.0) {
        return Err(invalid(
            "scale",
            format!("scale must be a positive number, not {}", opts.scale),
        ));
    }
    if !(opts.regularisation.is_finite() && opts.regularisation >= 0.0) {
        return Err(invalid(
            "regularisation",
            format!(
                "regularisation must be 0 or more, not {}",
                opts.regularisation
            ),
        ));
    }
    crate::finetune::check_new_dir(&opts.out)?;
    Ok(())
}

/// A query's positive and negative chunks: (id, stored vector, document id).
struct Mined {
    positives: Vec<(PointId, Vec<f32>, String)>,
    negatives: Vec<(PointId, Vec<f32>, String)>,
}

fn doc_filter(docs: &[&str], negate: bool) -> Result<Filter> {
    let cond = json!({"key": "doc_id", "match": {"any": docs}});
    let f = if negate {
        json!({"must_not": [cond]})
    } else {
        json!({"must": [cond]})
    };
    Ok(Filter::from_json(&f)?)
}

/// The positives (the closest chunks of the relevant documents, exactly) and hard negatives
/// (the nearest chunks of other documents) of one query; `None` when no relevant document is
/// in the collection.
fn mine(
    c: &Collection,
    opts: &AdapterOptions,
    query: &[f32],
    judged: &HashMap<String, u32>,
) -> Result<Option<Mined>> {
    let relevant: Vec<&str> = judged
        .iter()
        .filter(|(_, &s)| s > 0)
        .map(|(d, _)| d.as_str())
        .collect();
    let all_judged: Vec<&str> = judged.keys().map(String::as_str).collect();
    let search =
        |filter: Filter, k: usize, exact: bool| -> Result<Vec<(PointId, Vec<f32>, String)>> {
            let resp = c.search(SearchRequest {
                space: Some(DENSE.into()),
                vector: query.to_vec(),
                k,
                filter: Some(filter),
                scope: opts.scope.clone(),
                with_payload: true,
                with_vector: true,
                exact_threshold: exact.then_some(u64::MAX),
                ..Default::default()
            })?;
            Ok(resp
                .hits
                .into_iter()
                .filter_map(|h| {
                    let v = h
                        .vectors
                        .as_ref()?
                        .get(DENSE)?
                        .as_array()?
                        .iter()
                        .map(|x| x.as_f64().map(|x| x as f32))
                        .collect::<Option<Vec<f32>>>()?;
                    let doc = h.payload.as_ref()?["doc_id"].as_str()?.to_string();
                    Some((h.id, v, doc))
                })
                .collect())
        };
    let positives = search(
        doc_filter(&relevant, false)?,
        MAX_POSITIVE_CHUNKS * relevant.len(),
        true,
    )?;
    if positives.is_empty() {
        return Ok(None);
    }
    // Judged non-relevant documents are not negatives either: their judgement may be partial.
    let negatives = if opts.negatives == 0 {
        Vec::new()
    } else {
        search(doc_filter(&all_judged, true)?, opts.negatives, false)?
    };
    Ok(Some(Mined {
        positives,
        negatives,
    }))
}

/// nDCG@10 of the queries' vectors searched in the collection's dense space as a text search's
/// dense source does, chunks grouped by document (best chunk first).
fn ndcg(
    c: &Collection,
    scope: &Scope,
    ids: &[&str],
    vectors: &[Vec<f32>],
    qrels: &Qrels,
) -> Result<f64> {
    let lists: Vec<Result<Vec<(String, f32)>>> = vectors
        .par_iter()
        .map(|v| {
            let resp = c.search(SearchRequest {
                space: Some(DENSE.into()),
                vector: v.clone(),
                k: VALIDATION_DEPTH,
                scope: scope.clone(),
                with_payload: true,
                ..Default::default()
            })?;
            let mut seen = HashSet::new();
            Ok(resp
                .hits
                .into_iter()
                .filter_map(|h| {
                    let doc = h.payload.as_ref()?["doc_id"].as_str()?.to_string();
                    let score = h.score?;
                    seen.insert(doc.clone()).then_some((doc, score))
                })
                .collect())
        })
        .collect();
    let mut run = Run::new();
    let mut judged: Qrels = HashMap::new();
    for (q, list) in ids.iter().zip(lists) {
        run.insert((*q).to_string(), list?);
        judged.insert((*q).to_string(), qrels[*q].clone());
    }
    Ok(evaluate(&run, &judged).ndcg_at_10)
}

/// Adam over `W` with the loss of the module docs.
struct Trainer {
    dim: usize,
    w: Vec<f32>,
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
    lr: f64,
    scale: f32,
    lambda: f64,
}

impl Trainer {
    fn new(dim: usize, opts: &AdapterOptions) -> Self {
        Trainer {
            dim,
            w: QueryAdapter::identity(DENSE, dim, Value::Null).weights,
            m: vec![0.0; dim * dim],
            v: vec![0.0; dim * dim],
            t: 0,
            lr: opts.lr,
            scale: opts.scale,
            lambda: opts.regularisation,
        }
    }

    /// One Adam step on a batch; returns its loss.
    fn step(&mut self, examples: &[Example], batch: &[usize], chunks: &Chunks) -> f64 {
        let (loss, grad) = loss_and_gradient(
            &self.w,
            self.dim,
            self.scale,
            self.lambda,
            examples,
            batch,
            chunks,
        );
        self.t += 1;
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
        let c1 = 1.0 - b1.powi(self.t);
        let c2 = 1.0 - b2.powi(self.t);
        let lr = self.lr;
        self.w
            .par_iter_mut()
            .zip(self.m.par_iter_mut())
            .zip(self.v.par_iter_mut())
            .zip(grad.par_iter())
            .for_each(|(((w, m), v), &g)| {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *w -= (lr * (*m / c1) / ((*v / c2).sqrt() + eps)) as f32;
            });
        loss
    }
}

/// The batch's mean loss and its gradient with respect to `W` (row-major), regulariser
/// included.
fn loss_and_gradient(
    w: &[f32],
    dim: usize,
    scale: f32,
    lambda: f64,
    examples: &[Example],
    batch: &[usize],
    chunks: &Chunks,
) -> (f64, Vec<f64>) {
    // The pool: every candidate chunk of the batch, once.
    let mut pool: Vec<usize> = batch
        .iter()
        .flat_map(|&e| examples[e].chunks.iter().copied())
        .collect();
    pool.sort_unstable();
    pool.dedup();
    let per_query: Vec<(f64, Vec<f64>)> = batch
        .par_iter()
        .map(|&e| {
            let ex = &examples[e];
            let q = &ex.query;
            // q' = W q, u = q' / |q'|.
            let qp: Vec<f64> = w
                .chunks_exact(dim)
                .map(|row| {
                    row.iter()
                        .zip(q)
                        .map(|(a, b)| f64::from(*a) * f64::from(*b))
                        .sum()
                })
                .collect();
            let norm = qp.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-12);
            let u: Vec<f64> = qp.iter().map(|x| x / norm).collect();
            let s = f64::from(scale);
            let logits: Vec<f64> = pool
                .iter()
                .map(|&j| {
                    s * chunks.vectors[j]
                        .iter()
                        .zip(&u)
                        .map(|(a, b)| f64::from(*a) * b)
                        .sum::<f64>()
                })
                .collect();
            let max = logits.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
            let total: f64 = exp.iter().sum();
            let positive: Vec<bool> = pool
                .iter()
                .map(|&j| ex.relevant.contains(&chunks.doc[j]))
                .collect();
            let pos_total: f64 = exp
                .iter()
                .zip(&positive)
                .filter(|(_, &p)| p)
                .map(|(e, _)| e)
                .sum();
            let loss = total.ln() - pos_total.ln();
            // dL/dlogit_j = p_j − r_j, r_j the posterior among positives.
            let mut gu = vec![0.0f64; dim];
            for (k, &j) in pool.iter().enumerate() {
                let p = exp[k] / total;
                let r = if positive[k] { exp[k] / pos_total } else { 0.0 };
                let coef = s * (p - r);
                if coef != 0.0 {
                    for (g, x) in gu.iter_mut().zip(&chunks.vectors[j]) {
                        *g += coef * f64::from(*x);
                    }
                }
            }
            // Through the normalisation: dL/dq' = (gu − (gu·u) u) / |q'|.
            let dot: f64 = gu.iter().zip(&u).map(|(a, b)| a * b).sum();
            let gq: Vec<f64> = gu
                .iter()
                .zip(&u)
                .map(|(g, x)| (g - dot * x) / norm)
                .collect();
            (loss, gq)
        })
        .collect();
    let n = batch.len() as f64;
    let mut grad = vec![0.0f64; dim * dim];
    grad.par_chunks_mut(dim).enumerate().for_each(|(r, row)| {
        for (&e, (_, gq)) in batch.iter().zip(&per_query) {
            let g = gq[r] / n;
            if g != 0.0 {
                for (x, q) in row.iter_mut().zip(&examples[e].query) {
                    *x += g * f64::from(*q);
                }
            }
        }
    });
    let mut loss: f64 = per_query.iter().map(|(l, _)| l).sum::<f64>() / n;
    if lambda > 0.0 {
        let mut reg = 0.0;
        for r in 0..dim {
            for col in 0..dim {
                let d = f64::from(w[r * dim + col]) - if r == col { 1.0 } else { 0.0 };
                reg += d * d;
                grad[r * dim + col] += lambda * d;
            }
        }
        loss += 0.5 * lambda * reg;
    }
    (loss, grad)
}

fn write_adapter(out: &Path, adapter: &QueryAdapter, report: &AdapterReport) -> Result<()> {
    std::fs::create_dir_all(out).map_err(|e| invalid("out", format!("{}: {e}", out.display())))?;
    let t = Tensor::from_vec(
        adapter.weights.clone(),
        (adapter.dim, adapter.dim),
        &Device::Cpu,
    )
    .map_err(|e| Error::internal("adapter weights", e))?;
    let path = out.join(WEIGHTS_FILE);
    t.save_safetensors("weight", &path)
        .map_err(|e| invalid("out", format!("{}: {e}", path.display())))?;
    write_adapter_card(out, adapter, report)
}

fn write_adapter_card(out: &Path, adapter: &QueryAdapter, report: &AdapterReport) -> Result<()> {
    let path = out.join(CARD_FILE);
    let card = json!({
        "kind": "linear",
        "space": report.space,
        "dim": report.dim,
        "collection": report.options.collection,
        "fingerprint": report.fingerprint,
        "model": adapter.model,
        "card": adapter.card,
        "report": report,
    });
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&card).expect("card serialises"),
    )
    .map_err(|e| invalid("out", format!("{}: {e}", path.display())))
}

/// Reads an adapter directory (what [`Service::train_adapter`] wrote).
pub fn read_adapter(dir: &Path) -> Result<QueryAdapter> {
    let card_path = dir.join(CARD_FILE);
    let card: Value = std::fs::read(&card_path)
        .map_err(|e| invalid("adapter", format!("{}: {e}", card_path.display())))
        .and_then(|b| {
            serde_json::from_slice(&b)
                .map_err(|e| invalid("adapter", format!("{}: {e}", card_path.display())))
        })?;
    let path = dir.join(WEIGHTS_FILE);
    let tensors = candle_core::safetensors::load(&path, &Device::Cpu)
        .map_err(|e| invalid("adapter", format!("{}: {e}", path.display())))?;
    let w = tensors.get("weight").ok_or_else(|| {
        invalid(
            "adapter",
            format!("{} holds no tensor \"weight\"", path.display()),
        )
    })?;
    let (rows, cols) = w
        .dims2()
        .map_err(|e| invalid("adapter", format!("{}: {e}", path.display())))?;
    if rows != cols {
        return Err(invalid(
            "adapter",
            format!("{}: weight is {rows} × {cols}, not square", path.display()),
        ));
    }
    let weights: Vec<f32> = w
        .to_dtype(candle_core::DType::F32)
        .and_then(|t| t.flatten_all())
        .and_then(|t| t.to_vec1())
        .map_err(|e| invalid("adapter", format!("{}: {e}", path.display())))?;
    Ok(QueryAdapter {
        space: card["space"].as_str().unwrap_or(DENSE).to_string(),
        dim: rows,
        weights,
        model: card["model"].clone(),
        card: card["card"].clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn random(rng: &mut rand::rngs::SmallRng, n: usize) -> Vec<f32> {
        normalised((0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
    }

    /// Four queries, twelve chunks of eight documents, some documents relevant to two queries.
    fn problem(dim: usize) -> (Vec<Example>, Chunks) {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let mut chunks = Chunks::default();
        for i in 0..12u64 {
            let d = chunks.doc_id(&format!("d{}", i % 8));
            chunks.add(PointId::Num(i), random(&mut rng, dim), d);
        }
        let examples = (0..4)
            .map(|e| Example {
                query: random(&mut rng, dim),
                chunks: (0..12).filter(|c| (c + e) % 3 != 0).collect(),
                relevant: [e, (e + 3) % 8].into_iter().collect(),
            })
            .collect();
        (examples, chunks)
    }

    #[test]
    fn the_gradient_matches_finite_differences() {
        let dim = 6;
        let (examples, chunks) = problem(dim);
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let mut w: Vec<f32> = QueryAdapter::identity(DENSE, dim, Value::Null).weights;
        w.iter_mut().for_each(|x| *x += rng.gen_range(-0.3f32..0.3));
        let batch = [0, 1, 2, 3];
        let (scale, lambda) = (5.0, 0.1);
        let (_, grad) = loss_and_gradient(&w, dim, scale, lambda, &examples, &batch, &chunks);
        let h = 1e-2f32;
        let mut worst = 0.0f64;
        for i in 0..dim * dim {
            let mut plus = w.clone();
            plus[i] += h;
            let mut minus = w.clone();
            minus[i] -= h;
            let lp = loss_and_gradient(&plus, dim, scale, lambda, &examples, &batch, &chunks).0;
            let lm = loss_and_gradient(&minus, dim, scale, lambda, &examples, &batch, &chunks).0;
            let numeric = (lp - lm) / (2.0 * f64::from(h));
            let err = (numeric - grad[i]).abs() / grad[i].abs().max(1e-2);
            worst = worst.max(err);
        }
        assert!(worst < 1e-3, "worst relative error {worst}");
    }

    #[test]
    fn training_lowers_the_loss_and_ranks_positives_first() {
        let dim = 6;
        let (examples, chunks) = problem(dim);
        let mut opts = AdapterOptions::new("c", Path::new("q"), Path::new("r"), Path::new("o"));
        opts.lr = 0.05;
        opts.regularisation = 0.0;
        let mut t = Trainer::new(dim, &opts);
        let batch = [0, 1, 2, 3];
        let first = t.step(&examples, &batch, &chunks);
        let mut last = first;
        for _ in 0..300 {
            last = t.step(&examples, &batch, &chunks);
        }
        assert!(last < first * 0.5, "loss {first} -> {last}");
        // Every query's best candidate is now a chunk of a relevant document.
        let a = QueryAdapter {
            weights: t.w.clone(),
            ..QueryAdapter::identity(DENSE, dim, Value::Null)
        };
        for ex in &examples {
            let u = a.apply(&ex.query);
            let best = (0..chunks.vectors.len())
                .max_by(|&x, &y| {
                    let s = |c: usize| {
                        chunks.vectors[c]
                            .iter()
                            .zip(&u)
                            .map(|(a, b)| a * b)
                            .sum::<f32>()
                    };
                    s(x).total_cmp(&s(y))
                })
                .unwrap();
            assert!(ex.relevant.contains(&chunks.doc[best]));
        }
    }
}
