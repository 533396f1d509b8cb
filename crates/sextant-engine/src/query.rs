//! Reads: search with the filter planner, get, count, scroll and info.
//!
//! **Planner.** For each segment (the immutable ones and the mutable one) a filter is turned
//! into a bitmap of matching live offsets: conditions the payload indexes answer are combined
//! as bitmaps; anything else (an unindexed key, `has_id`) is checked by reading the payloads of
//! the points the indexed part left (or of every live point when nothing is indexed). The
//! bitmap's size is the exact cardinality, and it picks the plan: at most
//! [`default_exact_threshold`] matches (about 0.4 ms of scanning: 12,307 points at 50-d,
//! 4,842 at 384-d, never fewer than 2,000; [`codes_exact_threshold`], about 40 µs of
//! scanning, where the index keeps 1-bit codes) → exact scan of just those points (recall 1);
//! more → a filtered HNSW walk that only returns allowed points, or a scan of the allowed
//! points' 1-bit codes, whichever the segment's index has measured cheaper. An immutable
//! segment keeps the bitmaps of its recent filters ([`Segment::select`]), so a repeated filter
//! costs one bitmap difference with the dead points. A tenant scope ([`Scope`]) is one more
//! `must` condition on the (always indexed) tenant key, so it is a pre-filter like any other;
//! every read here (search, sparse search, get, count, scroll, ids) takes one.
//!
//! **Expiry.** Every read takes the time once from the collection's clock and treats the
//! points expired at that instant as deleted: [`State::each_segment`] hands each segment's
//! tombstones together with its expired points, and that union is the one bitmap every
//! candidate set (payload-index answers, payload scans, graph walks, sparse search, BM25
//! statistics, counts) is built against; `get` looks ids up with `State::find_live`.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::sync::Arc;

use roaring::RoaringBitmap;
use serde::Serialize;
use serde_json::Value;
use sextant_core::filter::payload_values;
use sextant_core::{Filter, Num, PointId};
use sextant_index::{FilterPlan, IdFilter, Neighbor, SearchParams, VectorIndex};
use sextant_storage::schema::IndexSpec;
use sextant_storage::segment::Segment;

use crate::collection::{Collection, Loc, SparseInput, State};
use crate::error::{EngineError, Result};
use crate::scope::{Scope, TenantId};
use sextant_index::{SparseHit, SparseScoring};
use sextant_storage::schema::SparseKind;
use sextant_storage::sparse_store::SparseQuery;
use sextant_text::{Bm25Encoder, CorpusStats};

/// At most this many matching points in a segment → exact scan instead of a graph walk, at
/// any dimension (see [`default_exact_threshold`]).
pub const DEFAULT_EXACT_THRESHOLD: u64 = 2_000;
/// Time budget, in nanoseconds, of the exact scan a filtered search prefers to a graph walk
/// (see [`default_exact_threshold`]).
pub const EXACT_SCAN_BUDGET_NS: u64 = 400_000;

/// The default exact-scan threshold of a space of dimension `dim`: the points an exact scan
/// covers in [`EXACT_SCAN_BUDGET_NS`] at an estimated 25 ns + 0.15 ns per dimension a point
/// (scattered points, one cache miss each, then f32 components at about 25 GB/s), and never
/// fewer than [`DEFAULT_EXACT_THRESHOLD`]: 12,307 points at 50-d, 4,842 at 384-d, 2,805 at
/// 784-d.
///
/// A walk whose filter rejects most nodes visits about the inverse of the selectivity times
/// the nodes of an unfiltered walk, so at low selectivity a scan is both exact and faster.
/// Measured (`bench/filtered_sweep.sh`): GloVe 390,000 × 50-d at 1% (3,900 points) scans at
/// ~16,000 queries/s where the walk ran 470 (recall 0.99); 100,000 × 384-d clustered at 3%
/// (3,000 points) 4,060 against 600 (recall 0.97). Where the walk is cheap relative to the
/// scan (GloVe at 10%: 1,100 scanning against 3,800 walking at recall 0.96) the budget keeps
/// the walk.
pub fn default_exact_threshold(dim: usize) -> u64 {
    let per_point_centi_ns = 2_500 + 15 * dim as u64;
    DEFAULT_EXACT_THRESHOLD.max(EXACT_SCAN_BUDGET_NS * 100 / per_point_centi_ns)
}

/// The most matches a segment whose index keeps 1-bit codes (HNSW at 64 dimensions or more)
/// scans exactly by default, at any dimension (see [`codes_exact_threshold`]): scanning the
/// codes of a filter's matches and rescoring a few costs about a quarter of scanning their f32
/// vectors (Fashion-MNIST at 3%, 1,800 points: 3,774 queries/s scanned exactly, 14,913 through
/// the codes; BENCHMARKS.md), so past the threshold the planner picks between the codes and the
/// walk by their measured costs ([`sextant_index::PlanCosts`]).
pub const CODES_EXACT_THRESHOLD: u64 = 1_000;
/// Time budget, in nanoseconds, of the exact scan a filtered search prefers to the planner's
/// choice where the index keeps 1-bit codes (see [`codes_exact_threshold`]).
pub const CODES_EXACT_BUDGET_NS: u64 = 40_000;

/// The exact-scan threshold of a segment of dimension `dim` whose index keeps 1-bit codes: the
/// points an exact scan covers in [`CODES_EXACT_BUDGET_NS`] at the cost per point of
/// [`default_exact_threshold`], at most [`CODES_EXACT_THRESHOLD`]: 1,000 up to about 100-d,
/// 484 at 384-d, 280 at 784-d. A wide vector makes an exact scan of even a few hundred points
/// slower than the code scan (Fashion-MNIST at 1%, 600 points of 784-d: 16,646 queries/s
/// scanned exactly, half the unfiltered walk's speed).
pub fn codes_exact_threshold(dim: usize) -> u64 {
    let per_point_centi_ns = 2_500 + 15 * dim as u64;
    CODES_EXACT_THRESHOLD.min(CODES_EXACT_BUDGET_NS * 100 / per_point_centi_ns)
}

/// Largest `k` a search accepts.
pub const MAX_K: usize = 10_000;
/// Payloads read per segment when `info` looks for unindexed keys.
pub const INFO_PAYLOAD_SAMPLE: u32 = 10_000;

/// A vector search.
#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    /// The space to search (may be omitted when the collection has one).
    pub space: Option<String>,
    /// The query vector.
    pub vector: Vec<f32>,
    /// Number of results.
    pub k: usize,
    /// Candidates kept by an approximate search (default: the index's): an HNSW walk's
    /// candidate list, or the number of `ivf_pq` candidates rescored exactly. Raised to `k`,
    /// except by a filtered HNSW walk, which stops at its `ef`-th match and returns the `k`
    /// closest matches it scored (a filter's walk explores more per unit of `ef`: a smaller
    /// `ef` often keeps its recall).
    pub ef: Option<usize>,
    /// Lists an `ivf_pq` space scans (default: the space's `nprobe`); refused for other
    /// indexes.
    pub nprobe: Option<usize>,
    /// Payload filter.
    pub filter: Option<Filter>,
    /// Which tenant's points to search (required in a multi-tenant collection).
    pub scope: Scope,
    /// Return payloads.
    pub with_payload: bool,
    /// Return the stored vectors (cosine spaces store them normalised).
    pub with_vector: bool,
    /// Override of [`default_exact_threshold`].
    pub exact_threshold: Option<u64>,
}

/// A point as returned by reads.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointOut {
    /// External id.
    #[serde(serialize_with = "ser_id")]
    pub id: PointId,
    /// Score (similarity for cosine/dot, distance for l2/l1); absent for get/scroll.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
    /// Payload, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
    /// Vectors by space, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub vectors: Option<serde_json::Map<String, Value>>,
}

fn ser_id<S: serde::Serializer>(id: &PointId, s: S) -> std::result::Result<S::Ok, S::Error> {
    id.to_json().serialize(s)
}

/// How one segment was searched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// Nothing matched the filter.
    Empty,
    /// Exact distances to every matching point.
    Exact,
    /// HNSW walk (filtered when a filter or deletes apply).
    Graph,
    /// Scan of the matching points' 1-bit codes, rescoring exactly the candidates the codes'
    /// error bound cannot rule out (approximate: the bound holds with high probability).
    Binary,
    /// Sparse inverted index, MaxScore (exact).
    Sparse,
}

/// A vector search after validation: the space by index and the whole filter (tenant
/// condition included).
struct Planned<'a> {
    space: usize,
    vector: &'a [f32],
    k: usize,
    ef: Option<usize>,
    nprobe: Option<usize>,
    filter: Option<&'a Filter>,
    exact_threshold: Option<u64>,
    with_payload: bool,
    with_vector: bool,
}

/// A search in a sparse space (BM25 text or sparse weights).
#[derive(Debug, Clone)]
pub struct SparseSearchRequest {
    /// The sparse space.
    pub space: String,
    /// Text for a BM25 space, weights for a dot-product space.
    pub query: SparseInput,
    /// Number of results.
    pub k: usize,
    /// Payload filter.
    pub filter: Option<Filter>,
    /// Which tenant's points to search (required in a multi-tenant collection).
    pub scope: Scope,
    /// Return payloads.
    pub with_payload: bool,
}

/// The plan chosen for one segment.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentPlan {
    /// Segment id (0 = the mutable segment).
    pub segment: u64,
    /// Live points in the segment.
    pub points: u64,
    /// Points the filter matches (the cardinality the choice was made on).
    pub matching: u64,
    /// The strategy.
    pub strategy: Strategy,
}

/// Search results and how they were found.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResponse {
    /// Best first.
    pub hits: Vec<PointOut>,
    /// Per segment plan.
    pub plan: Vec<SegmentPlan>,
    /// Filter keys that no payload index covers (they were checked by reading payloads).
    pub unindexed_keys: Vec<String>,
    /// A BM25 search's query terms, each with the weight it scored with (query weight × IDF).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub query_terms: Vec<(String, f32)>,
}

/// Statistics of a collection.
#[derive(Debug, Clone, Serialize)]
pub struct CollectionInfo {
    /// Name.
    pub name: String,
    /// Schema.
    pub schema: sextant_storage::schema::Schema,
    /// Live points.
    pub points: u64,
    /// Deleted, overwritten or expired points not yet vacuumed, in segments and the mutable
    /// segment.
    pub deleted: u64,
    /// Of `deleted`, the points that expired (by the collection's clock at the time of the
    /// call) and were not deleted otherwise: a merge of their segments drops them.
    pub expired: u64,
    /// `deleted / (points + deleted)`: the share of stored points that are dead.
    pub deleted_fraction: f64,
    /// Estimated bytes on disk that deleted (and expired) points hold in segments (what a merge of every
    /// segment would give back; see [`SegmentInfo::reclaimable_bytes`]).
    pub reclaimable_bytes: u64,
    /// Estimated heap bytes that deleted points hold (segments and the mutable segment).
    pub reclaimable_memory_bytes: u64,
    /// Points in the mutable (unflushed) segment.
    pub unflushed_points: u64,
    /// Immutable segments.
    pub segments: Vec<SegmentInfo>,
    /// Heap bytes held by segments.
    pub memory_bytes: u64,
    /// Memory by part (segments and the mutable segment): f32 vectors in memory and used from
    /// disk, index structures, payloads, points, sparse spaces.
    pub memory_parts: sextant_storage::segment::MemoryParts,
    /// The immutable segments' filter caches, summed: lookups answered from a cache (`hits`)
    /// or computed (`misses`) since the collection was opened, and the filters and bitmap
    /// bytes held now (those bytes are also in `memory_parts.payloads`).
    pub filter_cache: sextant_storage::filter_cache::FilterCacheStats,
    /// Bytes on disk (segments, manifest, WAL).
    pub disk_bytes: u64,
    /// Bytes on disk by part (segment files by kind, the WAL, the rest).
    pub disk_parts: DiskParts,
    /// WAL bytes.
    pub wal_bytes: u64,
    /// Payload keys seen in (a sample of) the payloads that have no index.
    pub unindexed_payload_keys: Vec<String>,
    /// The last error of a background merge, if one failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background_error: Option<String>,
    /// Recall@k of the approximate index as the recall probe measures it on live searches
    /// (`None` when the probe is off; see [`crate::probe`]). Live state of this process: it
    /// starts empty whenever the collection is opened.
    pub recall_probe: Option<crate::probe::RecallProbeInfo>,
    /// The embedding distribution against its pinned reference, canary checks and alarms
    /// (`None` until a reference is pinned or a canary added; see [`crate::drift`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub drift: Option<crate::drift::DriftInfo>,
    /// Query adapters attached to dense spaces ([`crate::adapter`]), with their fingerprints.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub adapters: Vec<crate::adapter::AdapterInfo>,
}

/// One segment in [`CollectionInfo`].
#[derive(Debug, Clone, Serialize)]
pub struct SegmentInfo {
    /// Id.
    pub id: u64,
    /// Points stored.
    pub points: u64,
    /// Of which deleted, overwritten or expired.
    pub deleted: u64,
    /// `deleted / points`; the merge policy rewrites the segment once this reaches
    /// [`crate::CollectionConfig::vacuum_deleted_fraction`].
    pub deleted_fraction: f64,
    /// Heap bytes.
    pub memory_bytes: u64,
    /// Bytes of its files.
    pub disk_bytes: u64,
    /// Estimated bytes of its files that deleted points hold: their payload bytes, their share
    /// by count of the rest (vectors, graph, ids, postings), and the tombstone file.
    pub reclaimable_bytes: u64,
    /// Estimated heap bytes that deleted points hold, by the same rule.
    pub reclaimable_memory_bytes: u64,
}

/// A page of [`Collection::scroll`].
#[derive(Debug, Clone, Serialize)]
pub struct ScrollPage {
    /// The points.
    pub points: Vec<PointOut>,
    /// Pass as `offset` to get the next page; `None` at the end.
    pub next_offset: Option<String>,
}

/// Scroll order by a payload key.
#[derive(Debug, Clone)]
pub struct OrderBy {
    /// Dotted key.
    pub key: String,
    /// Largest first.
    pub descending: bool,
}

/// The live points of a segment that a filter matches (`None`: every point, none deleted).
fn matching(
    seg: &Segment,
    deleted: &RoaringBitmap,
    filter: Option<&Filter>,
) -> Option<RoaringBitmap> {
    let Some(filter) = filter else {
        return if deleted.is_empty() {
            None
        } else {
            Some(live(seg, deleted))
        };
    };
    let mut out = Arc::unwrap_or_clone(seg.select(filter));
    out -= deleted;
    Some(out)
}

fn live(seg: &Segment, deleted: &RoaringBitmap) -> RoaringBitmap {
    let mut all = RoaringBitmap::new();
    all.insert_range(0..seg.len());
    all - deleted
}

/// The offsets of `seg` that are dead at `now`: tombstoned (`deleted`) or expired.
pub(crate) fn dead_at<'a>(
    seg: &Segment,
    deleted: &'a RoaringBitmap,
    now: i64,
) -> Cow<'a, RoaringBitmap> {
    if seg.any_expired_at(now) {
        Cow::Owned(seg.expired_at(now) | deleted)
    } else {
        Cow::Borrowed(deleted)
    }
}

impl State {
    /// Every segment (the immutable ones, then the mutable one) with its points that are dead
    /// at `now`: deleted or expired. Reads build every candidate set against this bitmap.
    pub(crate) fn each_segment(
        &self,
        now: i64,
    ) -> impl Iterator<Item = (Loc, &Segment, Cow<'_, RoaringBitmap>)> {
        self.segments
            .iter()
            .enumerate()
            .map(move |(i, s)| {
                (
                    Loc::Segment(i, 0),
                    s.seg.as_ref(),
                    dead_at(&s.seg, &s.deleted, now),
                )
            })
            .chain(std::iter::once((
                Loc::Mutable(0),
                &self.mutable,
                dead_at(&self.mutable, &self.mutable_deleted, now),
            )))
    }
}

impl Collection {
    /// The filter with the scope's tenant condition added (refuses a scope the collection
    /// does not accept).
    pub(crate) fn full_filter(
        &self,
        filter: Option<Filter>,
        scope: &Scope,
    ) -> Result<Option<Filter>> {
        let Some(cond) = self.resolve(scope)?.condition() else {
            return Ok(filter);
        };
        let mut f = filter.unwrap_or_default();
        f.must.push(cond);
        Ok(Some(f))
    }

    fn point_out(&self, seg: &Segment, o: u32, with_payload: bool, with_vector: bool) -> PointOut {
        PointOut {
            id: seg.id(o).expect("live offsets have ids"),
            score: None,
            payload: with_payload.then(|| seg.payload(o)),
            vectors: with_vector.then(|| {
                self.schema()
                    .spaces
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let v = seg.vectors(i).vector(o).unwrap_or(&[]);
                        (s.name.clone(), Value::from(v.to_vec()))
                    })
                    .collect()
            }),
        }
    }

    /// Nearest neighbours of a vector, with filters and tenant scope applied exactly.
    pub fn search(&self, req: SearchRequest) -> Result<SearchResponse> {
        let schema = self.schema();
        let space = match &req.space {
            Some(name) => schema.space_index(name).ok_or_else(|| {
                EngineError::invalid("space", format!("unknown vector space {name:?}"))
            })?,
            None if schema.spaces.len() == 1 => 0,
            None => {
                return Err(EngineError::invalid(
                    "space",
                    "the collection has several vector spaces; name the one to search".into(),
                ))
            }
        };
        let spec = &schema.spaces[space];
        sextant_core::validate_vector_for(&req.vector, spec.dim, spec.metric)
            .map_err(|e| EngineError::invalid("vector", format!("query vector: {e}")))?;
        if req.k == 0 || req.k > MAX_K {
            return Err(EngineError::invalid(
                "k",
                format!("must be 1..={MAX_K}, got {}", req.k),
            ));
        }
        if req.ef == Some(0) {
            return Err(EngineError::invalid("ef", "must be at least 1".into()));
        }
        if let Some(nprobe) = req.nprobe {
            if !matches!(spec.index, IndexSpec::IvfPq { .. }) {
                return Err(EngineError::invalid(
                    "nprobe",
                    format!(
                        "applies to ivf_pq spaces; space {:?} uses {}",
                        spec.name,
                        spec.index.name()
                    ),
                ));
            }
            if nprobe == 0 {
                return Err(EngineError::invalid("nprobe", "must be at least 1".into()));
            }
        }
        let filter = self.full_filter(req.filter, &req.scope)?;
        let resp = self.search_planned(&Planned {
            space,
            vector: &req.vector,
            k: req.k,
            ef: req.ef,
            nprobe: req.nprobe,
            filter: filter.as_ref(),
            exact_threshold: req.exact_threshold,
            with_payload: req.with_payload,
            with_vector: req.with_vector,
        })?;
        let approximate = |s: Strategy| matches!(s, Strategy::Graph | Strategy::Binary);
        if resp.plan.iter().any(|p| approximate(p.strategy)) && self.probe.draw() {
            let sample = crate::probe::Sample {
                space,
                vector: req.vector,
                k: req.k,
                filter,
                got: resp.hits.iter().map(|h| h.id.clone()).collect(),
            };
            self.probe.offer(sample, &self.this);
        }
        Ok(resp)
    }

    /// The exact answer to a sampled search (its ids, best first), for the recall probe.
    pub(crate) fn exact_ids(&self, s: &crate::probe::Sample) -> Option<Vec<PointId>> {
        let resp = self
            .search_planned(&Planned {
                space: s.space,
                vector: &s.vector,
                k: s.k,
                ef: None,
                nprobe: None,
                filter: s.filter.as_ref(),
                exact_threshold: Some(u64::MAX),
                with_payload: false,
                with_vector: false,
            })
            .ok()?;
        Some(resp.hits.into_iter().map(|h| h.id).collect())
    }

    /// What the recall probe measured (`None` when it is off).
    pub fn recall_probe(&self) -> Option<crate::probe::RecallProbeInfo> {
        self.probe.info()
    }

    /// Empties the recall probe's window and counters, e.g. after changing `ef`, so the
    /// estimate describes the new setting only.
    pub fn reset_recall_probe(&self) {
        self.probe.reset();
    }

    /// Blocks until every sample the recall probe queued has been re-run.
    pub fn drain_recall_probe(&self) {
        self.probe.drain();
    }

    /// A validated vector search: plans each segment and merges the hits.
    fn search_planned(&self, req: &Planned<'_>) -> Result<SearchResponse> {
        let space = req.space;
        let spec = &self.schema().spaces[space];
        let filter = req.filter;
        // An explicit threshold applies with or without a filter (`u64::MAX`: exact search);
        // the default one only picks between a filtered walk and a scan.
        let threshold = req
            .exact_threshold
            .unwrap_or_else(|| default_exact_threshold(spec.dim));
        let scan_allowed = filter.is_some() || req.exact_threshold.is_some();
        let now = self.now_ms();
        let st = self.state.read();
        let unindexed_keys = filter
            .map(|f| st.mutable.indexes().unindexed_keys(f))
            .unwrap_or_default();
        let mut plan = Vec::new();
        let mut found: Vec<(Neighbor, Loc)> = Vec::new();
        for (loc, seg, deleted) in st.each_segment(now) {
            let points = u64::from(seg.len()) - deleted.len();
            if points == 0 {
                continue;
            }
            let allowed = matching(seg, &deleted, filter);
            let matching_n = allowed.as_ref().map_or(points, |b| b.len());
            let index = seg.vectors(space);
            // A flat index (the mutable segment's, or a flat collection's) is an exact scan
            // whatever the threshold.
            let flat = matches!(index, sextant_index::AnyIndex::Flat(_));
            // An index with 1-bit codes scans a filter's matches through them more cheaply
            // than exactly, so its default threshold is lower; past it, the index's measured
            // costs pick between the codes and the walk.
            let costs = index.plan_costs().filter(|_| filter.is_some());
            let threshold = match (costs, req.exact_threshold) {
                (Some(_), None) => threshold.min(codes_exact_threshold(spec.dim)),
                _ => threshold,
            };
            let strategy = if matching_n == 0 {
                Strategy::Empty
            } else if flat || (scan_allowed && matching_n <= threshold) {
                Strategy::Exact
            } else if let Some(costs) = costs {
                match costs.choose(matching_n, points, req.ef) {
                    FilterPlan::Codes => Strategy::Binary,
                    FilterPlan::Walk => Strategy::Graph,
                }
            } else {
                Strategy::Graph
            };
            plan.push(SegmentPlan {
                segment: seg.id,
                points,
                matching: matching_n,
                strategy,
            });
            let mut params = SearchParams::new(req.k);
            params.ef = req.ef;
            params.nprobe = req.nprobe;
            params.exact_filter_threshold = match strategy {
                Strategy::Exact => usize::MAX,
                _ => 0,
            };
            params.binary_filter_share = match strategy {
                Strategy::Binary => 1.0,
                _ => 0.0,
            };
            let started = std::time::Instant::now();
            let hits = match (strategy, allowed) {
                (Strategy::Empty, _) => continue,
                (_, Some(b)) => index.search(req.vector, &params, Some(&IdFilter::Bitmap(&b))),
                // An exact scan needs the candidates as a bitmap: every live point.
                (Strategy::Exact, None) => {
                    let all = live(seg, &deleted);
                    index.search(req.vector, &params, Some(&IdFilter::Bitmap(&all)))
                }
                (_, None) => index.search(req.vector, &params, None),
            }
            .map_err(|e| EngineError::invalid("vector", e.to_string()))?;
            if let Some(costs) = costs {
                let plan = match strategy {
                    Strategy::Binary => Some(FilterPlan::Codes),
                    Strategy::Graph => Some(FilterPlan::Walk),
                    _ => None,
                };
                if let Some(plan) = plan {
                    costs.record(plan, matching_n, points, req.ef, started.elapsed());
                }
            }
            found.extend(hits.into_iter().map(|n| (n, loc)));
        }
        found.sort_by(|a, b| {
            a.0.distance
                .partial_cmp(&b.0.distance)
                .unwrap_or(Ordering::Equal)
        });
        found.truncate(req.k);
        let hits = found
            .into_iter()
            .map(|(n, loc)| {
                let seg = match loc {
                    Loc::Mutable(_) => &st.mutable,
                    Loc::Segment(i, _) => st.segments[i].seg.as_ref(),
                };
                let mut p = self.point_out(seg, n.id, req.with_payload, req.with_vector);
                p.score = Some(spec.metric.score(n.distance));
                p
            })
            .collect();
        Ok(SearchResponse {
            hits,
            plan,
            unindexed_keys,
            query_terms: Vec::new(),
        })
    }

    /// A text as a BM25 space analyses a query: its distinct terms (in increasing order) and
    /// the language they were analysed in (`language`, or the space analyzer's own choice:
    /// the configured language, or with detection the text's when the guess is reliable).
    pub fn analyse(
        &self,
        space: &str,
        text: &str,
        language: Option<sextant_text::Language>,
    ) -> Result<(Vec<String>, sextant_text::AnalysisLanguage)> {
        let (i, encoder) = self.bm25_encoder(space)?;
        let st = self.state.read();
        let segments: Vec<(Loc, &Segment, Cow<'_, RoaringBitmap>)> =
            st.each_segment(self.now_ms()).collect();
        Ok(analyse_bm25(encoder, text, language, i, &segments))
    }

    /// A BM25 space's index and encoder.
    fn bm25_encoder(&self, space: &str) -> Result<(usize, &Bm25Encoder)> {
        let i = self.schema().sparse_index(space).ok_or_else(|| {
            EngineError::invalid("space", format!("unknown sparse space {space:?}"))
        })?;
        let encoder = self.encoders[i].as_ref().ok_or_else(|| {
            EngineError::invalid(
                "space",
                format!("sparse space {space:?} is not BM25: it has no analyzer"),
            )
        })?;
        Ok((i, encoder))
    }

    /// A feedback text's term counts in a BM25 space's analysis, in `language` with its stop
    /// words removed (query expansion, see [`sextant_text::Bm25Encoder::feedback_counts`]).
    pub fn feedback_counts(
        &self,
        space: &str,
        text: &str,
        language: Option<sextant_text::Language>,
    ) -> Result<sextant_core::TermCounts> {
        let (_, encoder) = self.bm25_encoder(space)?;
        Ok(encoder.feedback_counts(text, language))
    }

    /// The best points of a sparse space for a text (BM25) or weight (dot) query. BM25 uses
    /// collection-wide statistics (document count, average length, document frequencies
    /// summed over all segments), so a score does not depend on which segment holds a point.
    pub fn search_sparse(&self, req: SparseSearchRequest) -> Result<SearchResponse> {
        let schema = self.schema();
        let i = schema.sparse_index(&req.space).ok_or_else(|| {
            EngineError::invalid("space", format!("unknown sparse space {:?}", req.space))
        })?;
        if req.k == 0 || req.k > MAX_K {
            return Err(EngineError::invalid(
                "k",
                format!("must be 1..={MAX_K}, got {}", req.k),
            ));
        }
        let filter = self.full_filter(req.filter, &req.scope)?;
        let now = self.now_ms();
        let st = self.state.read();
        let segments: Vec<(Loc, &Segment, Cow<'_, RoaringBitmap>)> = st.each_segment(now).collect();
        let (query, scoring) = match (&schema.sparse_spaces[i].kind, req.query) {
            (
                SparseKind::Bm25 { k1, b, .. },
                input @ (SparseInput::Text(_) | SparseInput::Terms(_)),
            ) => {
                let encoder = self.encoders[i]
                    .as_ref()
                    .expect("BM25 spaces have encoders");
                let terms = match input {
                    SparseInput::Terms(t) => {
                        if let Some((t, w)) = t.iter().find(|(_, w)| !w.is_finite() || *w < 0.0) {
                            return Err(EngineError::invalid(
                                "query",
                                format!(
                                    "query term {t:?}: weight {w} is not finite and non-negative"
                                ),
                            ));
                        }
                        t
                    }
                    // Analysed as text search analyses it (by the index, for an analyzer that
                    // detects languages).
                    SparseInput::Text(text) => analyse_bm25(encoder, &text, None, i, &segments)
                        .0
                        .into_iter()
                        .map(|t| (t, 1.0))
                        .collect(),
                    SparseInput::Vector(_) => unreachable!("matched above"),
                };
                let (q, stats) = bm25_query(encoder, &terms, i, &segments);
                let scoring = SparseScoring::Bm25 {
                    k1: *k1,
                    b: *b,
                    avg_len: stats.avg_len(),
                };
                (SparseQuery::Terms(q), scoring)
            }
            (SparseKind::Dot, SparseInput::Vector(v)) => {
                if v.values.iter().any(|x| !x.is_finite()) {
                    return Err(EngineError::invalid(
                        "vector",
                        "sparse query weights must be finite".into(),
                    ));
                }
                let q = v
                    .indices
                    .iter()
                    .copied()
                    .zip(v.values.iter().copied())
                    .collect();
                (SparseQuery::Ids(q), SparseScoring::Dot)
            }
            (SparseKind::Bm25 { .. }, SparseInput::Vector(_)) => {
                return Err(EngineError::invalid(
                    "query",
                    format!("sparse space {:?} is BM25: query it with text", req.space),
                ))
            }
            (SparseKind::Dot, SparseInput::Text(_) | SparseInput::Terms(_)) => {
                return Err(EngineError::invalid(
                    "query",
                    format!(
                        "sparse space {:?} takes a weight vector as query, not text",
                        req.space
                    ),
                ))
            }
        };
        let query_terms = match &query {
            SparseQuery::Terms(q) => q.clone(),
            SparseQuery::Ids(_) => Vec::new(),
        };
        let mut plan = Vec::new();
        let mut found: Vec<(SparseHit, Loc)> = Vec::new();
        for (loc, seg, deleted) in segments {
            let points = u64::from(seg.len()) - deleted.len();
            if points == 0 {
                continue;
            }
            let allowed = matching(seg, &deleted, filter.as_ref());
            plan.push(SegmentPlan {
                segment: seg.id,
                points,
                matching: allowed.as_ref().map_or(points, |b| b.len()),
                strategy: Strategy::Sparse,
            });
            let hits = seg
                .sparse(i)
                .search(&query, req.k, scoring, allowed.as_ref());
            found.extend(hits.into_iter().map(|h| (h, loc)));
        }
        found.sort_by(|a, b| b.0.score.total_cmp(&a.0.score));
        found.truncate(req.k);
        let hits = found
            .into_iter()
            .map(|(h, loc)| {
                let seg = match loc {
                    Loc::Mutable(_) => &st.mutable,
                    Loc::Segment(s, _) => st.segments[s].seg.as_ref(),
                };
                let mut p = self.point_out(seg, h.id, req.with_payload, false);
                p.score = Some(h.score);
                p
            })
            .collect();
        let unindexed_keys = filter
            .as_ref()
            .map(|f| st.mutable.indexes().unindexed_keys(f))
            .unwrap_or_default();
        Ok(SearchResponse {
            hits,
            plan,
            unindexed_keys,
            query_terms,
        })
    }

    /// The points with these ids (ids missing or outside the scope are skipped), in the
    /// order asked.
    pub fn get(
        &self,
        scope: &Scope,
        ids: &[PointId],
        with_payload: bool,
        with_vector: bool,
    ) -> Result<Vec<PointOut>> {
        let scope = self.resolve(scope)?;
        let now = self.now_ms();
        let st = self.state.read();
        Ok(ids
            .iter()
            .filter_map(|id| {
                let loc = st.find_live(id, now)?;
                if !scope.admits_at(&st, loc) {
                    return None;
                }
                Some(match loc {
                    Loc::Mutable(o) => self.point_out(&st.mutable, o, with_payload, with_vector),
                    Loc::Segment(i, o) => {
                        self.point_out(&st.segments[i].seg, o, with_payload, with_vector)
                    }
                })
            })
            .collect())
    }

    /// Number of live points in the scope matching `filter` (all when `None`).
    pub fn count(&self, scope: &Scope, filter: Option<&Filter>) -> Result<u64> {
        let filter = self.full_filter(filter.cloned(), scope)?;
        let now = self.now_ms();
        let st = self.state.read();
        Ok(st
            .each_segment(now)
            .map(
                |(_, seg, deleted)| match matching(seg, &deleted, filter.as_ref()) {
                    Some(b) => b.len(),
                    None => u64::from(seg.len()) - deleted.len(),
                },
            )
            .sum())
    }

    /// The ids of the live points in the scope matching `filter`.
    pub fn ids_matching(&self, scope: &Scope, filter: &Filter) -> Result<Vec<PointId>> {
        let filter = self.full_filter(Some(filter.clone()), scope)?;
        let now = self.now_ms();
        let st = self.state.read();
        let mut out = Vec::new();
        for (_, seg, deleted) in st.each_segment(now) {
            let b = matching(seg, &deleted, filter.as_ref()).unwrap_or_else(|| live(seg, &deleted));
            out.extend(b.iter().filter_map(|o| seg.id(o)));
        }
        Ok(out)
    }

    /// Deletes every point in the scope matching `filter`; returns how many. The matching
    /// points are found under the writer lock, so the one WAL record deletes exactly the points
    /// that matched when it was appended: a write racing with it is either before (and deleted)
    /// or after (and kept), never lost in between.
    pub fn delete_by_filter(&self, scope: &Scope, filter: &Filter) -> Result<usize> {
        self.delete_with(scope, || self.ids_matching(scope, filter))
    }

    /// Every tenant with its number of live points (the administrator's view of a
    /// multi-tenant collection), by tenant id.
    pub fn tenants(&self) -> Result<Vec<(TenantId, u64)>> {
        let key = self.schema().tenant_key.clone().ok_or_else(|| {
            EngineError::invalid(
                "tenant",
                format!(
                    "collection {:?} is not multi-tenant (it has no tenant key)",
                    self.name()
                ),
            )
        })?;
        let now = self.now_ms();
        let st = self.state.read();
        let mut counts = std::collections::BTreeMap::new();
        for (_, seg, deleted) in st.each_segment(now) {
            for o in &live(seg, &deleted) {
                if let Some(t) = crate::scope::tenant_of(&seg.payload(o), &key) {
                    *counts.entry(t).or_insert(0u64) += 1;
                }
            }
        }
        Ok(counts.into_iter().collect())
    }

    /// Deletes every point of one tenant as one WAL record (after a crash all of them are gone
    /// or none is), found under the writer lock (see [`Collection::delete_by_filter`]); returns
    /// how many. Their space — vectors, payloads, payload index entries, postings — stays in
    /// their segments, masked by tombstones, until a merge rewrites them: the merge policy
    /// starts one once a segment's deleted fraction reaches
    /// [`crate::CollectionConfig::vacuum_deleted_fraction`], and `optimize` forces it.
    pub fn drop_tenant(&self, tenant: &TenantId) -> Result<usize> {
        self.delete_by_filter(&Scope::Tenant(tenant.clone()), &Filter::default())
    }

    /// A page of points matching `filter`, ordered by id, or by a payload key (points without
    /// a value at the key come last, ties broken by id). `offset` is the `next_offset` of the
    /// previous page.
    pub fn scroll(
        &self,
        scope: &Scope,
        filter: Option<&Filter>,
        limit: usize,
        offset: Option<&str>,
        order_by: Option<&OrderBy>,
        with_payload: bool,
    ) -> Result<ScrollPage> {
        if limit == 0 {
            return Err(EngineError::invalid("limit", "must be at least 1".into()));
        }
        let skip: usize = match offset {
            None => 0,
            Some(s) => s.parse().map_err(|_| {
                EngineError::invalid(
                    "offset",
                    format!("offset {s:?} is not a next_offset returned by scroll"),
                )
            })?,
        };
        let filter = self.full_filter(filter.cloned(), scope)?;
        let now = self.now_ms();
        let st = self.state.read();
        let mut rows: Vec<(Option<SortKey>, SortId, &Segment, u32)> = Vec::new();
        for (_, seg, deleted) in st.each_segment(now) {
            let b = matching(seg, &deleted, filter.as_ref()).unwrap_or_else(|| live(seg, &deleted));
            for o in &b {
                let id = seg.id(o).expect("live");
                let key = order_by.and_then(|ob| sort_key(&seg.payload(o), &ob.key));
                rows.push((key, SortId::of(&id), seg, o));
            }
        }
        let desc = order_by.is_some_and(|o| o.descending);
        rows.sort_by(|a, b| {
            let by_key = match (&a.0, &b.0) {
                (Some(x), Some(y)) => {
                    let c = x.cmp(y);
                    if desc {
                        c.reverse()
                    } else {
                        c
                    }
                }
                (Some(_), None) => Ordering::Less,
                (None, Some(_)) => Ordering::Greater,
                (None, None) => Ordering::Equal,
            };
            by_key.then_with(|| a.1.cmp(&b.1))
        });
        let total = rows.len();
        let points = rows
            .into_iter()
            .skip(skip)
            .take(limit)
            .map(|(_, _, seg, o)| self.point_out(seg, o, with_payload, false))
            .collect::<Vec<_>>();
        let next = skip + points.len();
        Ok(ScrollPage {
            points,
            next_offset: (next < total).then(|| next.to_string()),
        })
    }

    /// Counts, segments, memory, disk and unindexed payload keys.
    pub fn info(&self) -> CollectionInfo {
        // Before the state lock below: the drift statistics take it themselves.
        let drift = self.drift_info();
        let now = self.now_ms();
        let st = self.state.read();
        let indexed: Vec<&str> = self
            .schema()
            .payload_indexes
            .iter()
            .map(|p| p.key.as_str())
            .collect();
        let mut keys = std::collections::BTreeSet::new();
        for (_, seg, deleted) in st.each_segment(now) {
            for o in live(seg, &deleted)
                .iter()
                .take(INFO_PAYLOAD_SAMPLE as usize)
            {
                collect_paths(&seg.payload(o), "", &mut keys);
            }
        }
        let unindexed_payload_keys = keys
            .into_iter()
            .filter(|k| !indexed.contains(&k.as_str()))
            .collect();
        let segments: Vec<SegmentInfo> = st
            .segments
            .iter()
            .map(|s| {
                let dir = crate::collection::seg_dir(self.dir(), s.seg.id);
                let dead = dead_at(&s.seg, &s.deleted, now);
                let held = crate::space::held(Some(&dir), &s.seg, &dead);
                let points = u64::from(s.seg.len());
                SegmentInfo {
                    id: s.seg.id,
                    points,
                    deleted: dead.len(),
                    deleted_fraction: crate::space::fraction(dead.len(), points),
                    memory_bytes: s.seg.memory_bytes() as u64,
                    disk_bytes: held.disk_bytes,
                    reclaimable_bytes: held.reclaimable_bytes,
                    reclaimable_memory_bytes: held.reclaimable_memory_bytes,
                }
            })
            .collect();
        let memory_bytes =
            segments.iter().map(|s| s.memory_bytes).sum::<u64>() + st.mutable.memory_bytes() as u64;
        let mut memory_parts = st.mutable.memory_parts();
        let mut filter_cache = sextant_storage::filter_cache::FilterCacheStats::default();
        for s in &st.segments {
            memory_parts += s.seg.memory_parts();
            filter_cache += s.seg.filter_cache_stats();
        }
        let mutable_dead = dead_at(&st.mutable, &st.mutable_deleted, now);
        let mutable_held = crate::space::held(None, &st.mutable, &mutable_dead);
        let points = st.live_count(now);
        let deleted = segments.iter().map(|s| s.deleted).sum::<u64>() + mutable_dead.len();
        let expired = st
            .segments
            .iter()
            .map(|s| (s.seg.as_ref(), &s.deleted))
            .chain(std::iter::once((&st.mutable, &st.mutable_deleted)))
            .map(|(seg, deleted)| (seg.expired_at(now) - deleted).len())
            .sum::<u64>();
        CollectionInfo {
            name: self.name().to_string(),
            schema: self.schema().clone(),
            points,
            deleted,
            expired,
            deleted_fraction: crate::space::fraction(deleted, points + deleted),
            reclaimable_bytes: segments.iter().map(|s| s.reclaimable_bytes).sum(),
            reclaimable_memory_bytes: segments
                .iter()
                .map(|s| s.reclaimable_memory_bytes)
                .sum::<u64>()
                + mutable_held.reclaimable_memory_bytes,
            unflushed_points: u64::from(st.mutable.len()) - mutable_dead.len(),
            segments,
            memory_bytes,
            memory_parts,
            filter_cache,
            disk_bytes: dir_bytes(self.dir()),
            disk_parts: disk_parts(self.dir()),
            wal_bytes: self.fs.file_len(&self.dir().join("wal")).unwrap_or(0),
            unindexed_payload_keys,
            background_error: self.background_error.lock().clone(),
            recall_probe: self.probe.info(),
            drift,
            adapters: self.adapters(),
        }
    }
}

/// A collection's bytes on disk by part.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DiskParts {
    /// f32 vectors in their own files (`vectors-<i>.f32`, on-disk spaces).
    pub vectors: u64,
    /// Vector index files (`vectors-<i>.idx`: graphs, codes, lists; f32 vectors too unless the
    /// space keeps them on disk).
    pub index: u64,
    /// Payload files.
    pub payloads: u64,
    /// Ids, sequence numbers and expiries (`points.bin`).
    pub points: u64,
    /// Sparse spaces (`sparse-<i>.bin`).
    pub sparse: u64,
    /// Tombstone files.
    pub tombstones: u64,
    /// The write-ahead log.
    pub wal: u64,
    /// Everything else (manifest, keys, drift state, leftovers).
    pub other: u64,
}

fn disk_parts(dir: &std::path::Path) -> DiskParts {
    let mut p = DiskParts::default();
    let len = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len());
    let segs = dir.join("segments");
    for seg in std::fs::read_dir(&segs).into_iter().flatten().flatten() {
        for f in std::fs::read_dir(seg.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = f.file_name().to_string_lossy().into_owned();
            let n = len(&f.path());
            let part = if name.starts_with("vectors-") && name.ends_with(".f32") {
                &mut p.vectors
            } else if name.starts_with("vectors-") {
                &mut p.index
            } else if name == "payloads.bin" {
                &mut p.payloads
            } else if name == "points.bin" {
                &mut p.points
            } else if name.starts_with("sparse-") {
                &mut p.sparse
            } else if name.starts_with("deleted-") {
                &mut p.tombstones
            } else {
                &mut p.other
            };
            *part += n;
        }
    }
    p.wal = len(&dir.join("wal"));
    let counted = p.vectors + p.index + p.payloads + p.points + p.sparse + p.tombstones + p.wal;
    p.other += dir_bytes(dir).saturating_sub(counted + p.other);
    p
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

fn collect_paths(v: &Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                collect_paths(v, &p, out);
            }
        }
        Value::Array(a) if a.iter().any(Value::is_object) => {
            for x in a {
                collect_paths(x, prefix, out);
            }
        }
        _ if !prefix.is_empty() => {
            out.insert(prefix.to_string());
        }
        _ => {}
    }
}

/// A payload value to order by: numbers (exactly) before strings.
#[derive(Debug, Clone, PartialEq)]
enum SortKey {
    Num(Num),
    Str(String),
}

impl Eq for SortKey {}
impl PartialOrd for SortKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for SortKey {
    fn cmp(&self, other: &Self) -> Ordering {
        match (self, other) {
            (SortKey::Num(a), SortKey::Num(b)) => a.cmp(b),
            (SortKey::Str(a), SortKey::Str(b)) => a.cmp(b),
            (SortKey::Num(_), SortKey::Str(_)) => Ordering::Less,
            (SortKey::Str(_), SortKey::Num(_)) => Ordering::Greater,
        }
    }
}

fn sort_key(payload: &Value, key: &str) -> Option<SortKey> {
    payload_values(payload, key)
        .into_iter()
        .find_map(|v| match v {
            Value::Number(n) => Some(SortKey::Num(Num::of(n))),
            Value::String(s) => Some(SortKey::Str(s.clone())),
            _ => None,
        })
}

/// Ids in a total order (integers numerically, others as text).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortId {
    Num(u64),
    Uuid(u128),
    Str(String),
}

impl SortId {
    fn of(id: &PointId) -> SortId {
        match id {
            PointId::Num(n) => SortId::Num(*n),
            PointId::Uuid(u) => SortId::Uuid(*u),
            PointId::Str(s) => SortId::Str(s.clone()),
        }
    }
}

/// A query text analysed by a BM25 space's encoder: in `language`, or by the encoder's own
/// choice; an analyzer that detects languages chooses by the live document frequencies of
/// `segments` ([`Bm25Encoder::analyse_query_by_index`]), the others need no statistics.
fn analyse_bm25(
    encoder: &Bm25Encoder,
    text: &str,
    language: Option<sextant_text::Language>,
    space: usize,
    segments: &[(Loc, &Segment, Cow<'_, RoaringBitmap>)],
) -> (Vec<String>, sextant_text::AnalysisLanguage) {
    if language.is_some() || !encoder.analyzer().config().detect_language {
        return encoder.analyse_query(text, language);
    }
    let live: Vec<_> = segments
        .iter()
        .map(|(_, s, deleted)| s.sparse(space).live_stats(deleted))
        .collect();
    encoder.analyse_query_by_index(text, None, |t| live.iter().map(|l| l.doc_freq(t)).sum())
}

/// A BM25 query's (term, IDF) pairs and the collection's statistics, both over live points
/// only (tombstoned ones subtracted per segment), so scores depend on the live documents and
/// never on update history or on how the collection is split into segments.
fn bm25_query(
    encoder: &Bm25Encoder,
    terms: &[(String, f32)],
    space: usize,
    segments: &[(Loc, &Segment, Cow<'_, RoaringBitmap>)],
) -> (Vec<(String, f32)>, CorpusStats) {
    let live: Vec<_> = segments
        .iter()
        .map(|(_, s, deleted)| s.sparse(space).live_stats(deleted))
        .collect();
    let stats = CorpusStats {
        docs: live.iter().map(|l| l.docs()).sum(),
        total_len: live.iter().map(|l| l.total_len()).sum(),
    };
    let q = encoder.weigh(terms, stats, |t| live.iter().map(|l| l.doc_freq(t)).sum());
    (q, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exact_scan_threshold_shrinks_with_the_dimension_down_to_its_floor() {
        assert_eq!(default_exact_threshold(50), 12_307);
        assert_eq!(default_exact_threshold(384), 4_842);
        assert_eq!(default_exact_threshold(784), 2_805);
        assert_eq!(default_exact_threshold(4096), DEFAULT_EXACT_THRESHOLD);
        assert_eq!(default_exact_threshold(0), 16_000);
        let mut last = u64::MAX;
        for dim in 1..5_000 {
            let t = default_exact_threshold(dim);
            assert!(t <= last && t >= DEFAULT_EXACT_THRESHOLD, "dim {dim}: {t}");
            last = t;
        }
    }

    #[test]
    fn an_index_with_codes_scans_exactly_for_40_microseconds_at_most_1000_points() {
        assert_eq!(codes_exact_threshold(64), CODES_EXACT_THRESHOLD);
        assert_eq!(codes_exact_threshold(384), 484);
        assert_eq!(codes_exact_threshold(784), 280);
        assert_eq!(codes_exact_threshold(4096), 62);
        let mut last = u64::MAX;
        for dim in 1..5_000 {
            let t = codes_exact_threshold(dim);
            assert!(t <= last && t <= CODES_EXACT_THRESHOLD, "dim {dim}: {t}");
            assert!(t < default_exact_threshold(dim), "dim {dim}: {t}");
            last = t;
        }
    }
}
