//! Retrieval evaluation over a document collection: every configuration (a text search
//! request) runs every query, is scored against the qrels on every metric at every cut-off
//! (`sextant_eval::metrics`), timed per query, and compared with a reference configuration by a
//! paired randomisation test; baselines (random, BM25, dense exact) are added unless turned off.
//! `sextant eval` is the front end.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use sextant_engine::Scope;
use sextant_eval::ir::{Qrels, Run};
use sextant_eval::metrics::{self, Metric, Significance};

use crate::error::{Error, Result};

use crate::plan::TextSearchRequest;
use crate::Service;
pub use sextant_eval::ir::read_qrels;
pub use sextant_eval::metrics::{ranked, Metric as MetricSpec};

/// Documents each configuration retrieves per query unless a metric needs more.
pub const DEFAULT_DEPTH: usize = 100;
/// Random sign flips of the randomisation test.
pub const DEFAULT_PERMUTATIONS: usize = 10_000;
/// The metrics reported unless others are named.
pub const DEFAULT_METRICS: &str =
    "ndcg@10,recall@10,recall@100,mrr@10,map@100,precision@10,hit_rate@10";

/// A configuration to evaluate: a name and the search request it makes (its `text` is each
/// query's).
#[derive(Debug, Clone, Serialize)]
pub struct EvalConfig {
    /// Its name in the report.
    pub name: String,
    /// The request (without the query text); `None` for the random baseline.
    pub request: Option<TextSearchRequest>,
    /// The collection (or alias) it runs on [default: the request's collection]: the same
    /// configuration on two collections compares, e.g., an old and a re-embedded one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub collection: Option<String>,
    /// Another configuration it is compared with as well as the reference (its counterpart
    /// on the other collection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub paired_with: Option<String>,
}

impl EvalConfig {
    /// A built-in configuration: `bm25`, `dense`, `dense-exact`, `splade`, `hybrid` (the
    /// default hybrid: dense + BM25, weighted min-max fusion), or `random`.
    pub fn builtin(name: &str) -> Option<EvalConfig> {
        let req = |mode: &str| TextSearchRequest {
            mode: Some(mode.into()),
            ..TextSearchRequest::default()
        };
        let request = match name {
            "random" => None,
            "bm25" | "dense" | "splade" | "hybrid" => Some(req(name)),
            "dense-exact" => Some(TextSearchRequest {
                exact: true,
                ..req("dense")
            }),
            _ => return None,
        };
        Some(EvalConfig {
            name: name.to_string(),
            request,
            collection: None,
            paired_with: None,
        })
    }

    /// A configuration as a user writes it: a built-in name, or `NAME=KEY=VALUE;KEY=VALUE…`
    /// with the keys of a text query (`mode`, `sources` and `weights` as `a|b`, `fusion`,
    /// `rerank`, `rerank_top`, `rerank_blend`, `source_k`, `mmr`, `group_size`, `ef`, `exact`,
    /// `precision`).
    pub fn parse(spec: &str) -> Result<EvalConfig> {
        let Some((name, body)) = spec.split_once('=') else {
            return EvalConfig::builtin(spec.trim()).ok_or_else(|| {
                Error::invalid(
                    "config",
                    format!("{spec:?}: not a built-in configuration (random, bm25, dense, dense-exact, splade, hybrid); write NAME=KEY=VALUE;KEY=VALUE…"),
                )
            });
        };
        let name = name.trim();
        if name.is_empty() || name.contains(['/', ' ']) {
            return Err(Error::invalid(
                "config",
                format!("{spec:?}: the name must be a word without spaces or slashes"),
            ));
        }
        let mut obj = serde_json::Map::new();
        obj.insert("text".into(), serde_json::Value::String(String::new()));
        for pair in body.split(';').filter(|p| !p.trim().is_empty()) {
            let (k, v) = pair.split_once('=').ok_or_else(|| {
                Error::invalid("config", format!("{spec:?}: {pair:?} is not KEY=VALUE"))
            })?;
            let (k, v) = (k.trim(), v.trim());
            let value = match k {
                "sources" => serde_json::json!(v.split('|').map(str::trim).collect::<Vec<_>>()),
                "weights" => serde_json::Value::Array(
                    v.split('|')
                        .map(|x| {
                            x.trim()
                                .parse::<f64>()
                                .map(serde_json::Value::from)
                                .map_err(|_| {
                                    Error::invalid(
                                        "config",
                                        format!("{spec:?}: weight {x:?} is not a number"),
                                    )
                                })
                        })
                        .collect::<Result<_>>()?,
                ),
                "k" | "text" | "filter" => {
                    return Err(Error::invalid(
                        "config",
                        format!("{spec:?}: {k} is set by the evaluation, not per configuration"),
                    ))
                }
                _ => {
                    serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.into()))
                }
            };
            obj.insert(k.to_string(), value);
        }
        let request: TextSearchRequest = serde_json::from_value(serde_json::Value::Object(obj))
            .map_err(|e| Error::invalid("config", format!("{spec:?}: {e}")))?;
        crate::plan::plan(&request)
            .map_err(|e| Error::invalid("config", format!("{spec:?}: {e}")))?;
        Ok(EvalConfig {
            name: name.to_string(),
            request: Some(request),
            collection: None,
            paired_with: None,
        })
    }
}

/// Name prefix of the configurations of a fusion-weight sweep (`sweep-w0.30`).
pub const SWEEP_PREFIX: &str = "sweep-w";

/// The baselines every report has unless they are turned off.
pub const BASELINES: [&str; 3] = ["random", "bm25", "dense-exact"];

/// An evaluation as every front end takes it: judged queries, configurations as written, and
/// the report's settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalOptions {
    /// The queries.
    pub queries: Vec<EvalQuery>,
    /// query id → document id → grade (≥ 1 is relevant).
    #[schema(value_type = Object)]
    pub qrels: Qrels,
    /// Configurations: built-ins (`random`, `bm25`, `dense`, `dense-exact`, `splade`,
    /// `hybrid`) or `NAME=KEY=VALUE;…` with the keys of a text query.
    #[serde(default)]
    pub configs: Vec<String>,
    /// Leave out the baselines (random, bm25, dense-exact).
    #[serde(default)]
    pub no_baselines: bool,
    /// The configuration the others are compared with [default: the first given, else bm25].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_to: Option<String>,
    /// Also run every configuration on this second collection (each as `CONFIG@OTHER`,
    /// compared with `CONFIG`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare: Option<String>,
    /// A fusion-weight sweep: hybrid dense + BM25 at STEPS + 1 dense weights from 0 to 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep_weights: Option<u32>,
    /// Metrics [default: [`DEFAULT_METRICS`]].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<Vec<String>>,
    /// Documents retrieved per query [default: 100].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<usize>,
    /// Permutations of the significance test [default: 10000].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permutations: Option<usize>,
    /// Seed of the random baseline and the test [default: 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Error analysis cut-off [default: 10].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fail_k: Option<usize>,
    /// Failed queries shown per configuration in the Markdown report [default: 10].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub examples: Option<usize>,
}

/// A judged query.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvalQuery {
    /// Its id in the qrels.
    pub id: String,
    /// Its text.
    pub text: String,
}

/// Most permutations an evaluation may ask for.
pub const MAX_PERMUTATIONS: usize = 1_000_000;
/// Most steps of a fusion-weight sweep.
pub const MAX_SWEEP_STEPS: u32 = 100;

impl EvalOptions {
    /// The configurations in report order (baselines, the user's, the sweep, then the copies
    /// on the second collection) and the reference.
    pub fn configs(&self, collection: &str) -> Result<(Vec<EvalConfig>, Option<String>)> {
        let user: Vec<EvalConfig> = self
            .configs
            .iter()
            .map(|c| EvalConfig::parse(c))
            .collect::<Result<_>>()?;
        let named: BTreeSet<&str> = user.iter().map(|c| c.name.as_str()).collect();
        let mut configs: Vec<EvalConfig> = Vec::new();
        if !self.no_baselines {
            for b in BASELINES {
                if !named.contains(b) {
                    configs.push(EvalConfig::builtin(b).expect("a built-in"));
                }
            }
        }
        let reference = self.compare_to.clone().or_else(|| {
            user.first()
                .map(|c| c.name.clone())
                .or_else(|| (!self.no_baselines).then(|| "bm25".to_string()))
        });
        configs.extend(user);
        if let Some(steps) = self.sweep_weights {
            if steps == 0 || steps > MAX_SWEEP_STEPS {
                return Err(Error::invalid(
                    "sweep_weights",
                    format!("must be 1..={MAX_SWEEP_STEPS}, got {steps}"),
                ));
            }
            for i in 0..=steps {
                let w = f64::from(i) / f64::from(steps);
                configs.push(EvalConfig::parse(&format!(
                    "{SWEEP_PREFIX}{w:.2}=mode=hybrid;sources=dense|bm25;weights={w}|{}",
                    1.0 - w
                ))?);
            }
        }
        if let Some(other) = &self.compare {
            if other == collection {
                return Err(Error::invalid(
                    "compare",
                    format!("give a second collection, not {other:?} again"),
                ));
            }
            let copies: Vec<EvalConfig> = configs
                .iter()
                .map(|c| EvalConfig {
                    name: format!("{}@{other}", c.name),
                    collection: Some(other.clone()),
                    paired_with: Some(c.name.clone()),
                    ..c.clone()
                })
                .collect();
            configs.extend(copies);
        }
        if configs.is_empty() {
            return Err(Error::invalid(
                "configs",
                "nothing to evaluate: give configurations, or leave the baselines on",
            ));
        }
        Ok((configs, reference))
    }

    /// The engine request for `collection` in `scope`.
    pub fn request(&self, collection: &str, scope: Scope) -> Result<EvalRequest> {
        let metrics: Vec<Metric> = self
            .metrics
            .clone()
            .unwrap_or_else(|| DEFAULT_METRICS.split(',').map(str::to_string).collect())
            .iter()
            .map(|m| m.parse().map_err(|e: String| Error::invalid("metrics", e)))
            .collect::<Result<_>>()?;
        let permutations = self.permutations.unwrap_or(DEFAULT_PERMUTATIONS);
        if permutations > MAX_PERMUTATIONS {
            return Err(Error::invalid(
                "permutations",
                format!("at most {MAX_PERMUTATIONS}, got {permutations}"),
            ));
        }
        let (configs, reference) = self.configs(collection)?;
        Ok(EvalRequest {
            collection: collection.to_string(),
            scope,
            queries: self
                .queries
                .iter()
                .map(|q| (q.id.clone(), q.text.clone()))
                .collect(),
            qrels: self.qrels.clone(),
            configs,
            metrics,
            depth: self.depth.unwrap_or(DEFAULT_DEPTH),
            reference,
            permutations,
            seed: self.seed.unwrap_or(1),
            fail_k: self.fail_k.unwrap_or(DEFAULT_FAIL_K),
            examples: self.examples.unwrap_or(10),
        })
    }
}

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct EvalRequest {
    /// The document collection.
    pub collection: String,
    /// Its tenant scope.
    pub scope: Scope,
    /// (query id, text).
    pub queries: Vec<(String, String)>,
    /// Judgements.
    pub qrels: Qrels,
    /// Configurations, in report order (baselines first when added).
    pub configs: Vec<EvalConfig>,
    /// Metrics.
    pub metrics: Vec<Metric>,
    /// Documents retrieved per query (at least every metric's cut-off).
    pub depth: usize,
    /// The configuration every other is compared with (default: the first).
    pub reference: Option<String>,
    /// Random sign flips of the significance test.
    pub permutations: usize,
    /// Seed of the random baseline and of the significance test.
    pub seed: u64,
    /// A query fails a configuration when no relevant document is in its top this-many (the
    /// error analysis).
    pub fail_k: usize,
    /// Failed queries shown per configuration in the Markdown report (all are in the JSON).
    pub examples: usize,
}

/// Cut-off of the error analysis unless another is given.
pub const DEFAULT_FAIL_K: usize = 10;

/// Why a configuration failed a query, where it can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCause {
    /// A relevant document was retrieved, but below the cut-off.
    RankedTooLow,
    /// BM25 finds a relevant document in its top k; exact dense search does not.
    Lexical,
    /// Exact dense search finds one in its top k; BM25 does not.
    Semantic,
    /// Both BM25 and exact dense search find one; this configuration does not (its fusion,
    /// rerank or approximate index loses it).
    LostByCombination,
    /// Neither BM25 nor exact dense search finds one in its top k.
    BothMiss,
    /// No BM25 or dense baseline ran to tell.
    Unknown,
}

/// A document shown in the error analysis.
#[derive(Debug, Clone, Serialize)]
pub struct ShownDocument {
    /// Document id.
    pub id: String,
    /// The start of its text (its best chunk when it was retrieved).
    pub text: String,
}

/// A query a configuration failed.
#[derive(Debug, Clone, Serialize)]
pub struct Failure {
    /// Query id.
    pub query: String,
    /// Query text.
    pub text: String,
    /// Why.
    pub cause: FailureCause,
    /// Rank of the first relevant document in this configuration's run, when retrieved at all.
    pub first_relevant_rank: Option<usize>,
    /// The relevant documents.
    pub relevant: Vec<ShownDocument>,
    /// What this configuration ranked first (its top three).
    pub retrieved: Vec<ShownDocument>,
    /// Words the query shares with a relevant document (lower-cased, 3+ letters).
    pub shared_terms: Vec<String>,
}

/// Per-query latency of a configuration, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Mean.
    pub mean: f64,
}

/// One configuration's results.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigResult {
    /// Its name.
    pub name: String,
    /// Its request (absent for the random baseline).
    pub request: Option<TextSearchRequest>,
    /// Metric name → mean over the qrels' queries.
    pub means: BTreeMap<String, f64>,
    /// Per query latency.
    pub latency_ms: Latency,
    /// Recall@k at k = 1, 2, 3, 5, 10, 20, 30, 50, 100, … up to the depth (mean over the
    /// qrels' queries), for recall curves.
    pub recall_curve: Vec<(usize, f64)>,
    /// Query id → metric name → score.
    pub per_query: BTreeMap<String, BTreeMap<String, f64>>,
    /// Queries with a relevant document none of whose relevant documents it retrieved at all.
    pub missed: Vec<String>,
    /// Queries with no relevant document in the top `fail_k`, with their causes.
    pub failures: Vec<Failure>,
    /// Failures by cause.
    pub failure_causes: BTreeMap<String, usize>,
    /// The ranked documents per query.
    #[serde(skip)]
    pub run: Run,
}

/// A configuration compared with the reference on one metric.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// The reference configuration.
    pub reference: String,
    /// The other configuration.
    pub config: String,
    /// The metric.
    pub metric: String,
    /// The test (difference = config − reference).
    pub significance: Significance,
}

/// An evaluation's results.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The collection.
    pub collection: String,
    /// Queries run.
    pub queries: usize,
    /// Queries of the qrels scored (every one; a query without a relevant document scores 0).
    pub judged_queries: usize,
    /// Documents retrieved per query.
    pub depth: usize,
    /// The metrics, in order.
    pub metrics: Vec<String>,
    /// Per configuration.
    pub configs: Vec<ConfigResult>,
    /// Every configuration against the reference, per metric.
    pub comparisons: Vec<Comparison>,
    /// Cut-off of the error analysis.
    pub fail_k: usize,
    /// Failed queries shown per configuration in the Markdown report.
    #[serde(skip)]
    pub examples: usize,
    /// Relevant documents of the qrels that the collection does not hold (in the scope): no
    /// configuration can retrieve them, so every score is lower than the retrieval alone
    /// explains (a wrong corpus or id field shows here).
    pub missing_judged: usize,
    /// Up to ten of them.
    pub missing_examples: Vec<String>,
}

/// The first 200 characters of a text, on one line.
fn clip(t: &str) -> String {
    let one_line: String = t.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None => one_line,
    }
}

/// Lower-cased words of three or more letters, without a few very common ones.
fn terms(t: &str) -> BTreeSet<String> {
    const STOP: [&str; 12] = [
        "the", "and", "for", "with", "that", "from", "are", "was", "not", "but", "its", "into",
    ];
    t.split(|c: char| !c.is_alphanumeric())
        .map(str::to_lowercase)
        .filter(|w| w.chars().count() >= 3 && !STOP.contains(&w.as_str()))
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((p / 100.0) * (sorted.len() - 1) as f64).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

impl Service {
    /// Runs an evaluation as the front ends describe it ([`EvalOptions`]): checks the second
    /// collection of `compare`, builds the configurations, evaluates;
    /// `progress(config, done, total)` after each query.
    pub fn evaluate_options(
        &self,
        collection: &str,
        scope: &Scope,
        opts: &EvalOptions,
        progress: &mut dyn FnMut(&str, usize, usize),
    ) -> Result<EvalReport> {
        let c = self.collection(collection)?;
        sextant_engine::documents::DocumentSettings::of(&c)?;
        if let Some(other) = &opts.compare {
            let o = self
                .collection(other)
                .map_err(|e| e.with_field("compare"))?;
            sextant_engine::documents::DocumentSettings::of(&o)
                .map_err(|e| Error::from(e).with_field("compare"))?;
            if o.schema().tenant_key != c.schema().tenant_key {
                return Err(Error::invalid(
                    "compare",
                    format!("{other:?} and {collection:?} differ in tenancy; compare collections made the same way"),
                ));
            }
        }
        let request = opts.request(collection, scope.clone())?;
        self.evaluate(&request, progress)
    }

    /// Evaluates every configuration of `r`: runs its queries, scores them against the qrels,
    /// the error analysis and the significance tests; `progress(config, done, total)` after
    /// each query.
    pub fn evaluate(
        &self,
        r: &EvalRequest,
        progress: &mut dyn FnMut(&str, usize, usize),
    ) -> Result<EvalReport> {
        if r.queries.is_empty() {
            return Err(Error::invalid("queries", "no queries to evaluate"));
        }
        if r.metrics.is_empty() {
            return Err(Error::invalid("metrics", "no metrics"));
        }
        if r.configs.is_empty() {
            return Err(Error::invalid("config", "no configurations"));
        }
        let asked: BTreeSet<&str> = r.queries.iter().map(|(q, _)| q.as_str()).collect();
        if let Some(q) = r.qrels.keys().find(|q| !asked.contains(q.as_str())) {
            return Err(Error::invalid(
                "qrels",
                format!("the qrels judge query {q:?}, which the queries file does not hold"),
            ));
        }
        let mut names = BTreeSet::new();
        for c in &r.configs {
            if !names.insert(c.name.as_str()) {
                return Err(Error::invalid(
                    "config",
                    format!("two configurations are named {:?}", c.name),
                ));
            }
        }
        let reference = r
            .reference
            .clone()
            .unwrap_or_else(|| r.configs[0].name.clone());
        if !names.contains(reference.as_str()) {
            return Err(Error::invalid(
                "compare_to",
                format!("no configuration is named {reference:?}"),
            ));
        }
        let depth = r
            .metrics
            .iter()
            .filter_map(|m| m.k)
            .max()
            .unwrap_or(0)
            .max(r.depth);
        let held: BTreeSet<String> = self
            .document_ids(&r.collection, &r.scope)?
            .into_iter()
            .collect();
        let missing: BTreeSet<&String> = r
            .qrels
            .values()
            .flat_map(|rel| rel.iter().filter(|(_, &g)| g >= 1).map(|(d, _)| d))
            .filter(|d| !held.contains(*d))
            .collect();
        let mut results = Vec::new();
        // The text of every document retrieved (its best chunk), for the error analysis.
        let mut texts: BTreeMap<String, String> = BTreeMap::new();
        for c in &r.configs {
            let mut run: Run = BTreeMap::new();
            let mut lat = Vec::new();
            let collection = c.collection.as_deref().unwrap_or(&r.collection);
            match &c.request {
                Some(template) => {
                    // One query untimed first: loading the models is not a query's latency.
                    self.text_search(
                        collection,
                        &r.scope,
                        &TextSearchRequest {
                            text: r.queries[0].1.clone(),
                            k: Some(depth),
                            ..template.clone()
                        },
                    )?;
                    for (i, (qid, text)) in r.queries.iter().enumerate() {
                        let req = TextSearchRequest {
                            text: text.clone(),
                            k: Some(depth),
                            ..template.clone()
                        };
                        let t = Instant::now();
                        let hits = self.text_search(collection, &r.scope, &req)?;
                        lat.push(t.elapsed().as_secs_f64() * 1e3);
                        for h in hits.iter().take(3) {
                            if let Some(t) =
                                h.chunks.first().and_then(|c| c.payload["text"].as_str())
                            {
                                texts.entry(h.doc_id.clone()).or_insert_with(|| clip(t));
                            }
                        }
                        run.insert(
                            qid.clone(),
                            hits.into_iter().map(|h| (h.doc_id, h.score)).collect(),
                        );
                        progress(&c.name, i + 1, r.queries.len());
                    }
                }
                None => {
                    let docs = self.document_ids(collection, &r.scope)?;
                    let mut state = r.seed ^ 0x5eed;
                    for (i, (qid, _)) in r.queries.iter().enumerate() {
                        let mut picked: Vec<(String, f32)> = Vec::new();
                        let mut pool: Vec<&String> = docs.iter().collect();
                        for rank in 0..depth.min(pool.len()) {
                            state = state
                                .wrapping_mul(6_364_136_223_846_793_005)
                                .wrapping_add(1_442_695_040_888_963_407);
                            let j = rank + (state >> 33) as usize % (pool.len() - rank);
                            pool.swap(rank, j);
                            picked.push((pool[rank].clone(), (depth - rank) as f32));
                        }
                        run.insert(qid.clone(), picked);
                        progress(&c.name, i + 1, r.queries.len());
                    }
                }
            }
            lat.sort_by(f64::total_cmp);
            let latency_ms = Latency {
                p50: percentile(&lat, 50.0),
                p95: percentile(&lat, 95.0),
                p99: percentile(&lat, 99.0),
                mean: if lat.is_empty() {
                    0.0
                } else {
                    lat.iter().sum::<f64>() / lat.len() as f64
                },
            };
            let pq = metrics::per_query(&run, &r.qrels, &r.metrics);
            let means = metrics::mean(&pq, r.metrics.len());
            let cuts: Vec<usize> = [1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500, 1000]
                .into_iter()
                .filter(|&k| k <= depth)
                .collect();
            let curve_metrics: Vec<Metric> = cuts
                .iter()
                .map(|&k| Metric {
                    measure: metrics::Measure::Recall,
                    k: Some(k),
                })
                .collect();
            let curve = metrics::mean(
                &metrics::per_query(&run, &r.qrels, &curve_metrics),
                curve_metrics.len(),
            );
            let recall_curve: Vec<(usize, f64)> = cuts.into_iter().zip(curve).collect();
            let missed = r
                .qrels
                .iter()
                .filter(|(_, rel)| rel.values().any(|&g| g >= 1))
                .filter(|(q, rel)| {
                    !run.get(*q).is_some_and(|docs| {
                        docs.iter()
                            .any(|(d, _)| rel.get(d).is_some_and(|&g| g >= 1))
                    })
                })
                .map(|(q, _)| q.clone())
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect();
            results.push(ConfigResult {
                name: c.name.clone(),
                request: c.request.clone(),
                means: r
                    .metrics
                    .iter()
                    .zip(&means)
                    .map(|(m, v)| (m.to_string(), *v))
                    .collect(),
                latency_ms,
                recall_curve,
                per_query: pq
                    .iter()
                    .map(|(q, s)| {
                        let row = r.metrics.iter().zip(s).map(|(m, v)| (m.to_string(), *v));
                        (q.clone(), row.collect())
                    })
                    .collect(),
                missed,
                failures: Vec::new(),
                failure_causes: BTreeMap::new(),
                run,
            });
        }
        self.analyse_failures(r, &mut results, &mut texts)?;
        let base = results
            .iter()
            .find(|c| c.name == reference)
            .expect("the reference is a configuration");
        let mut comparisons = Vec::new();
        let mut compare = |base: &ConfigResult, c: &ConfigResult| {
            for m in &r.metrics {
                let key = m.to_string();
                let a: Vec<f64> = base.per_query.values().map(|s| s[&key]).collect();
                let b: Vec<f64> = c.per_query.values().map(|s| s[&key]).collect();
                comparisons.push(Comparison {
                    reference: base.name.clone(),
                    config: c.name.clone(),
                    metric: key,
                    significance: metrics::randomisation_test(&a, &b, r.permutations, r.seed),
                });
            }
        };
        for c in results.iter().filter(|c| c.name != reference) {
            compare(base, c);
        }
        // Each configuration with a counterpart (the same one on another collection) against
        // it, unless that is the reference already.
        for c in &r.configs {
            if let Some(p) = c.paired_with.as_deref().filter(|p| *p != reference) {
                let find = |n: &str| results.iter().find(|x| x.name == n);
                match (find(p), find(&c.name)) {
                    (Some(a), Some(b)) => compare(a, b),
                    _ => {
                        return Err(Error::invalid(
                            "config",
                            format!(
                                "{:?} is paired with {p:?}, which is not a configuration",
                                c.name
                            ),
                        ))
                    }
                }
            }
        }
        Ok(EvalReport {
            collection: r.collection.clone(),
            queries: r.queries.len(),
            judged_queries: r.qrels.len(),
            depth,
            metrics: r.metrics.iter().map(ToString::to_string).collect(),
            configs: results,
            comparisons,
            fail_k: r.fail_k,
            examples: r.examples,
            missing_judged: missing.len(),
            missing_examples: missing.into_iter().take(10).cloned().collect(),
        })
    }

    /// Fills each configuration's failures: the queries with no relevant document in its top
    /// `fail_k`, each with its cause (by the BM25 and exact dense baselines' runs when they ran)
    /// and the texts side by side.
    fn analyse_failures(
        &self,
        r: &EvalRequest,
        results: &mut [ConfigResult],
        texts: &mut BTreeMap<String, String>,
    ) -> Result<()> {
        let k = r.fail_k.max(1);
        let hit_at = |run: &Run, q: &str, rel: &std::collections::HashMap<String, u32>| {
            run.get(q).and_then(|docs| {
                metrics::ranked(docs)
                    .iter()
                    .position(|d| rel.get(*d).is_some_and(|&g| g >= 1))
                    .map(|p| p + 1)
            })
        };
        let run_of = |name: &str| {
            results
                .iter()
                .find(|c| c.name == name)
                .map(|c| c.run.clone())
        };
        let (bm25, dense) = (
            run_of("bm25"),
            run_of("dense-exact").or_else(|| run_of("dense")),
        );
        let query_text: BTreeMap<&str, &str> = r
            .queries
            .iter()
            .map(|(q, t)| (q.as_str(), t.as_str()))
            .collect();
        for c in results.iter_mut() {
            let mut failures = Vec::new();
            for (q, rel) in &r.qrels {
                if !rel.values().any(|&g| g >= 1) {
                    continue;
                }
                let rank = hit_at(&c.run, q, rel);
                if rank.is_some_and(|p| p <= k) {
                    continue;
                }
                let found = |run: &Option<Run>| {
                    run.as_ref()
                        .map(|run| hit_at(run, q, rel).is_some_and(|p| p <= k))
                };
                let cause = match (rank, found(&bm25), found(&dense)) {
                    (Some(_), _, _) => FailureCause::RankedTooLow,
                    (None, Some(true), Some(false)) => FailureCause::Lexical,
                    (None, Some(false), Some(true)) => FailureCause::Semantic,
                    (None, Some(true), Some(true)) => FailureCause::LostByCombination,
                    (None, Some(false), Some(false)) => FailureCause::BothMiss,
                    _ => FailureCause::Unknown,
                };
                failures.push((q.clone(), cause, rank));
            }
            let mut shown = Vec::new();
            for (q, cause, rank) in failures {
                let rel = &r.qrels[&q];
                let mut relevant = Vec::new();
                let mut rel_ids: Vec<&String> = rel
                    .iter()
                    .filter(|(_, &g)| g >= 1)
                    .map(|(d, _)| d)
                    .collect();
                rel_ids.sort();
                for d in rel_ids {
                    if !texts.contains_key(d) {
                        let t = self.document_text(&r.collection, &r.scope, d)?;
                        texts.insert(d.clone(), t);
                    }
                    relevant.push(ShownDocument {
                        id: d.clone(),
                        text: texts[d].clone(),
                    });
                }
                let retrieved = c
                    .run
                    .get(&q)
                    .map(|docs| {
                        metrics::ranked(docs)
                            .iter()
                            .take(3)
                            .map(|d| ShownDocument {
                                id: d.to_string(),
                                text: texts.get(*d).cloned().unwrap_or_default(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let text = query_text
                    .get(q.as_str())
                    .copied()
                    .unwrap_or("")
                    .to_string();
                let query_terms = terms(&text);
                let mut shared: BTreeSet<String> = BTreeSet::new();
                for d in &relevant {
                    shared.extend(terms(&d.text).intersection(&query_terms).cloned());
                }
                shown.push(Failure {
                    query: q,
                    text,
                    cause,
                    first_relevant_rank: rank,
                    relevant,
                    retrieved,
                    shared_terms: shared.into_iter().collect(),
                });
            }
            let mut causes = BTreeMap::new();
            for f in &shown {
                let key = serde_json::to_value(f.cause)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                *causes.entry(key).or_insert(0) += 1;
            }
            c.failures = shown;
            c.failure_causes = causes;
        }
        Ok(())
    }

    /// The start of a document's text (its first chunk), or empty when it is not found.
    fn document_text(&self, collection: &str, scope: &Scope, doc_id: &str) -> Result<String> {
        let c = self.collection(collection)?;
        let filter = sextant_core::Filter::from_json(
            &serde_json::json!({"must": [{"key": "doc_id", "match": {"value": doc_id}}]}),
        )
        .map_err(|e| Error::invalid("qrels", e.to_string()))?;
        let page = c.scroll(scope, Some(&filter), 1, None, None, true)?;
        Ok(page
            .points
            .first()
            .and_then(|p| p.payload.as_ref())
            .and_then(|v| v["text"].as_str())
            .map(clip)
            .unwrap_or_default())
    }

    /// The distinct document ids of a document collection (in the scope).
    fn document_ids(&self, collection: &str, scope: &Scope) -> Result<Vec<String>> {
        let c = self.collection(collection)?;
        let mut ids = BTreeSet::new();
        let mut offset = None;
        loop {
            let page = c.scroll(scope, None, 10_000, offset.as_deref(), None, true)?;
            for p in &page.points {
                if let Some(d) = p.payload.as_ref().and_then(|v| v["doc_id"].as_str()) {
                    ids.insert(d.to_string());
                }
            }
            match page.next_offset {
                Some(o) => offset = Some(o),
                None => break,
            }
        }
        Ok(ids.into_iter().collect())
    }
}

impl EvalReport {
    /// The report as Markdown: metrics per configuration (with the significance of each
    /// difference from the reference), latency, and the queries each configuration missed.
    pub fn markdown(&self) -> String {
        let mut md = format!(
            "# Evaluation of `{}`\n\n{} queries ({} judged), {} documents retrieved per query.\n\n",
            self.collection, self.queries, self.judged_queries, self.depth
        );
        if self.missing_judged > 0 {
            md.push_str(&format!(
                "**Warning:** {} relevant documents of the qrels are not in the collection (e.g. {}): no configuration can retrieve them. Check the corpus and its id field.\n\n",
                self.missing_judged,
                self.missing_examples.join(", ")
            ));
        }
        let reference = self
            .comparisons
            .first()
            .map(|c| c.reference.clone())
            .unwrap_or_default();
        md.push_str("| configuration |");
        for m in &self.metrics {
            md.push_str(&format!(" {m} |"));
        }
        md.push_str(" p50 ms | p95 ms | p99 ms |\n|---|");
        md.push_str(&"---:|".repeat(self.metrics.len() + 3));
        md.push('\n');
        for c in &self.configs {
            md.push_str(&format!("| {} |", c.name));
            for m in &self.metrics {
                let v = c.means[m];
                let mark = self
                    .comparisons
                    .iter()
                    .find(|x| x.config == c.name && &x.metric == m)
                    .map(|x| {
                        let p = x.significance.p_value;
                        if p < 0.01 {
                            "**"
                        } else if p < 0.05 {
                            "*"
                        } else {
                            ""
                        }
                    })
                    .unwrap_or("");
                md.push_str(&format!(" {v:.4}{mark} |"));
            }
            md.push_str(&format!(
                " {:.2} | {:.2} | {:.2} |\n",
                c.latency_ms.p50, c.latency_ms.p95, c.latency_ms.p99
            ));
        }
        if !reference.is_empty() {
            let perms = self.comparisons[0].significance.permutations;
            md.push_str(&format!(
                "\n`*` p < 0.05, `**` p < 0.01: the difference from `{reference}` in a paired randomisation test over the {} queries ({perms} permutations, two-sided).\n",
                self.judged_queries
            ));
            let counterparts = self.comparisons.iter().any(|x| x.reference != reference);
            md.push_str(&format!(
                "\n## Differences from the reference{}\n\n| configuration | against | metric | difference | p-value |\n|---|---|---|---:|---:|\n",
                if counterparts {
                    " and between counterparts on the two collections"
                } else {
                    ""
                }
            ));
            for x in &self.comparisons {
                md.push_str(&format!(
                    "| {} | {} | {} | {:+.4} | {:.4} |\n",
                    x.config,
                    x.reference,
                    x.metric,
                    x.significance.difference,
                    x.significance.p_value
                ));
            }
        }
        md.push_str("\n## Queries with no relevant document retrieved\n\n");
        for c in &self.configs {
            md.push_str(&format!(
                "- `{}`: {} of {}\n",
                c.name,
                c.missed.len(),
                self.judged_queries
            ));
        }
        md.push_str(&format!(
            "\n## Error analysis: queries with no relevant document in the top {}\n\nCauses, judged by the BM25 and exact dense baselines' runs: `ranked_too_low` (this configuration retrieved it, below the cut-off), `lexical` (BM25 finds it, exact dense search does not), `semantic` (the reverse), `lost_by_combination` (both find it, this configuration does not), `both_miss`. For `random` they describe the query, not the ranking.\n\n| configuration | failed |",
            self.fail_k
        ));
        let causes = [
            "ranked_too_low",
            "lexical",
            "semantic",
            "lost_by_combination",
            "both_miss",
            "unknown",
        ];
        for cause in causes {
            md.push_str(&format!(" {cause} |"));
        }
        md.push_str("\n|---|---:|");
        md.push_str(&"---:|".repeat(causes.len()));
        md.push('\n');
        for c in &self.configs {
            md.push_str(&format!("| {} | {} |", c.name, c.failures.len()));
            for cause in causes {
                md.push_str(&format!(" {} |", c.failure_causes.get(cause).unwrap_or(&0)));
            }
            md.push('\n');
        }
        let cell = |t: &str| t.replace('|', "\\|");
        // Examples for the configurations a user wrote or the baselines, not for each step of a
        // weight sweep (their counts are in the table above, every failure in the JSON).
        let shown = self
            .configs
            .iter()
            .filter(|c| c.name != "random" && !c.name.starts_with(SWEEP_PREFIX));
        for c in shown {
            if c.failures.is_empty() || self.examples == 0 {
                continue;
            }
            let n = self.examples.min(c.failures.len());
            md.push_str(&format!(
                "\n### `{}`: {}\n\n| query | cause | relevant | retrieved first | shared terms |\n|---|---|---|---|---|\n",
                c.name,
                if n == c.failures.len() {
                    format!("its {n} failure{}", if n == 1 { "" } else { "s" })
                } else {
                    format!("the first {n} of its {} failures", c.failures.len())
                }
            ));
            for f in c.failures.iter().take(self.examples) {
                // At most three relevant documents per cell; the JSON has them all.
                let mut rel = f
                    .relevant
                    .iter()
                    .take(3)
                    .map(|d| format!("`{}` {}", d.id, cell(&d.text)))
                    .collect::<Vec<_>>()
                    .join("<br>");
                if f.relevant.len() > 3 {
                    rel.push_str(&format!("<br>(and {} more)", f.relevant.len() - 3));
                }
                let got = f
                    .retrieved
                    .first()
                    .map(|d| format!("`{}` {}", d.id, cell(&d.text)))
                    .unwrap_or_default();
                let cause = serde_json::to_value(f.cause)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let rank = f
                    .first_relevant_rank
                    .map(|r| format!(" (rank {r})"))
                    .unwrap_or_default();
                md.push_str(&format!(
                    "| `{}` {} | {cause}{rank} | {rel} | {got} | {} |\n",
                    f.query,
                    cell(&f.text),
                    f.shared_terms.join(", ")
                ));
            }
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_parse_or_are_refused_by_name() {
        assert!(EvalConfig::parse("bm25").unwrap().request.is_some());
        assert!(EvalConfig::parse("random").unwrap().request.is_none());
        assert!(
            EvalConfig::parse("dense-exact")
                .unwrap()
                .request
                .unwrap()
                .exact
        );
        let c =
            EvalConfig::parse("h=mode=hybrid;sources=dense|bm25;weights=1|0.5;fusion=rrf").unwrap();
        let r = c.request.unwrap();
        assert_eq!(c.name, "h");
        assert_eq!(r.weights, Some(vec![1.0, 0.5]));
        assert_eq!(r.fusion.as_deref(), Some("rrf"));
        let d = EvalConfig::parse("d=mode=dense;ef=64")
            .unwrap()
            .request
            .unwrap();
        assert_eq!(d.ef, Some(64));
        let b = EvalConfig::parse("b=mode=hybrid;rerank=maxsim;rerank_top=20;rerank_blend=0.3")
            .unwrap()
            .request
            .unwrap();
        assert_eq!((b.rerank_top, b.rerank_blend), (Some(20), Some(0.3)));
        for bad in [
            "nope",
            "x=mode=bm25;ef=64",
            "x=mode=hybrid;rerank_blend=0.3",
            "x=mode=hybrid;rerank=maxsim;rerank_blend=1.5",
            "x=mode=dense;k=5",
            "x=mode=bm25;colour=red",
            "x=mode",
            "x y=mode=bm25",
        ] {
            let e = EvalConfig::parse(bad).unwrap_err();
            assert_eq!(e.field(), Some("config"), "{bad}: {e}");
        }
    }
}
