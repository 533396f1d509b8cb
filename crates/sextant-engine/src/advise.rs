//! The index advisor: which layout (index, walk quantisation, vectors on disk) should a vector
//! space have, given how many points it will hold, a memory budget and a recall target —
//! answered by measuring, on a sample of the collection's own vectors, every layout a user
//! can create.
//!
//! * **Sample.** Up to [`AdviseRequest::sample`] live vectors of the space, drawn uniformly
//!   (seeded), plus [`AdviseRequest::queries`] more held out as queries — or the caller's own
//!   query vectors, which represent real traffic better than stored vectors do.
//! * **Layouts.** Flat; HNSW walking f32 vectors; HNSW walking 8-bit codes with the vectors in
//!   memory and on disk (where the metric has codes); IVF-PQ at ⌈dim/8⌉, ⌈dim/4⌉ and ⌈dim/2⌉
//!   sub-quantisers (2, 4 and 8 bits of code per 8 dimensions), in memory and on disk. Each
//!   is built on the sample with the builder flushed segments use ([`build_index`]); the
//!   on-disk twin of a layout shares its build. Layouts whose every search reads all the f32
//!   vectors (flat, an f32 walk) gain nothing from keeping them on disk and are not offered
//!   that way.
//! * **Measured.** Exact ground truth over the sample; for each layout a sweep of its search
//!   settings (`ef`; `nprobe` × `ef` for IVF-PQ), recall@k and queries per second on one
//!   thread (the faster of two passes).
//! * **Projected to the planned size** `N` (the collection's live points unless the caller
//!   plans for more), with stated models, not measurements: RAM from the bytes per vector
//!   measured on the sample (IVF centroids and per-list tables re-sized to the lists `N`
//!   points get) plus what
//!   the collection holds per point besides this space's index (ids, payloads, other
//!   spaces), measured on the collection; queries per second scaled by `s/N` for a flat scan,
//!   `ln s / ln N` for a graph walk and `√(s/N)` for IVF-PQ (nlist grows like √N and the
//!   same nprobe scans lists √(N/s) times longer). Recall is the sample's; a graph at the same
//!   `ef` can lose some as it grows (Fashion-MNIST: 0.962 on a 12,000 sample, 0.932 on 60,000
//!   at ef 10), so planned beyond the sample a graph's setting aims halfway from the target
//!   to 1 (`aimed_recall`). IVF lists grow finer with the points, and the same `nprobe` keeps
//!   its recall or gains (BENCHMARKS.md).
//! * **Recommended:** the layout with the highest projected QPS among those that reach the
//!   target recall and fit the budget (at equal speed, vectors in memory: keeping them on
//!   disk is a way to fit a budget); when none does, the report says why and which layout
//!   comes closest within the budget.

use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde::Serialize;
use sextant_core::Metric;
use sextant_index::{
    AnyIndex, DenseVectors, FlatIndex, IvfPqParams, Quantization, SearchParams, VectorIndex,
    VectorStorage,
};
use sextant_storage::schema::{IndexSpec, MAX_SUBQUANTIZERS};
use sextant_storage::segment::build_index;

use crate::collection::Collection;
use crate::error::{EngineError, Result};

/// Vectors sampled to build and measure each layout, unless asked otherwise.
pub const DEFAULT_SAMPLE: usize = 100_000;
/// Stored vectors held out as queries, unless asked otherwise (or given).
pub const DEFAULT_QUERIES: usize = 200;
/// Recall@k the advice aims for, unless asked otherwise.
pub const DEFAULT_TARGET_RECALL: f64 = 0.95;
/// Neighbours per query, unless asked otherwise.
pub const DEFAULT_K: usize = 10;
/// Seed of the sample, unless asked otherwise.
pub const DEFAULT_SEED: u64 = 42;
/// Fewest sampled vectors (besides the queries) for approximate layouts to be worth measuring:
/// below this a flat scan is exact and costs microseconds.
pub const MIN_SAMPLE: usize = 1_000;
/// Most vectors a sample may hold (each layout is built over it).
pub const MAX_SAMPLE: usize = 1_000_000;
/// Most queries.
pub const MAX_QUERIES: usize = 10_000;
/// Most bytes of f32 vectors a sample may hold (1 GiB: 100,000 vectors up to 2,684
/// dimensions); wider vectors get a smaller sample, and the report says so.
pub const MAX_SAMPLE_BYTES: usize = 1 << 30;
/// Largest `k`.
pub const MAX_K: usize = 1_000;

const HNSW_EFS: [usize; 12] = [10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512];
const IVF_NPROBES: [usize; 9] = [1, 2, 4, 8, 16, 32, 64, 128, 256];
const IVF_EFS: [usize; 5] = [20, 50, 100, 200, 400];
/// A sweep stops once a setting reaches this recall: more cannot be told apart.
const SATURATED: f64 = 0.999;

/// What to advise on.
#[derive(Debug, Clone, PartialEq)]
pub struct AdviseRequest {
    /// The dense space (`None`: the collection's only one).
    pub space: Option<String>,
    /// Points to plan for (`None`: the live points now).
    pub points: Option<u64>,
    /// RAM the whole collection may hold at `points`, in bytes (`None`: no limit).
    pub memory_budget: Option<u64>,
    /// Recall@k to reach, in `(0, 1]`.
    pub target_recall: f64,
    /// Neighbours per query.
    pub k: usize,
    /// Stored vectors to build each layout over (fewer when the space holds fewer).
    pub sample: usize,
    /// Stored vectors held out as queries (ignored when `query_vectors` is given).
    pub queries: usize,
    /// The caller's own queries, instead of held-out stored vectors.
    pub query_vectors: Option<Vec<Vec<f32>>>,
    /// Seed of the sample.
    pub seed: u64,
}

impl Default for AdviseRequest {
    fn default() -> Self {
        AdviseRequest {
            space: None,
            points: None,
            memory_budget: None,
            target_recall: DEFAULT_TARGET_RECALL,
            k: DEFAULT_K,
            sample: DEFAULT_SAMPLE,
            queries: DEFAULT_QUERIES,
            query_vectors: None,
            seed: DEFAULT_SEED,
        }
    }
}

/// One measured search setting of a layout.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Measured {
    /// HNSW beam width, or the candidates IVF-PQ rescores (`None` for flat).
    pub ef: Option<usize>,
    /// IVF-PQ lists scanned.
    pub nprobe: Option<usize>,
    /// Mean recall@k over the queries.
    pub recall: f64,
    /// Queries per second on one thread, on the sample.
    pub qps: f64,
}

/// One layout, built and measured on the sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LayoutReport {
    /// Short description.
    pub layout: String,
    /// The index its space would be created with.
    pub index: IndexSpec,
    /// Whether flushed f32 vectors stay on disk, memory-mapped.
    pub on_disk: bool,
    /// The `collection create` flags that make it.
    pub create_flags: String,
    /// Seconds to build it over the sample (all cores).
    pub build_s: f64,
    /// RAM per vector of this space's index and in-memory vectors, on the sample.
    pub ram_bytes_per_vector: f64,
    /// Disk per vector of its index file and vectors file, on the sample.
    pub disk_bytes_per_vector: f64,
    /// Projected RAM of the whole collection at the planned points.
    pub ram_bytes: u64,
    /// Projected disk of this space at the planned points.
    pub disk_bytes: u64,
    /// Whether `ram_bytes` is within the budget (`None`: no budget).
    pub fits_budget: Option<bool>,
    /// Every setting measured, cheapest first.
    pub sweep: Vec<Measured>,
    /// The recall its setting was chosen for on the sample: the target, or for a graph
    /// planned beyond the sample size halfway from the target to 1.
    pub aimed_recall: f64,
    /// The fastest setting that reaches `aimed_recall` (else the target), if any does.
    pub chosen: Option<Measured>,
    /// The chosen setting's QPS projected to the planned points.
    pub projected_qps: Option<f64>,
    /// The search flags of the chosen setting (`--ef`, `--nprobe`).
    pub search_flags: Option<String>,
}

/// The advice.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdviseReport {
    /// Collection name.
    pub collection: String,
    /// Space advised on.
    pub space: String,
    /// Its dimension.
    pub dim: usize,
    /// Its metric.
    pub metric: Metric,
    /// Live points now.
    pub live_points: u64,
    /// Points planned for.
    pub points: u64,
    /// Vectors each layout was built over.
    pub sample: usize,
    /// Queries measured.
    pub queries: usize,
    /// `held-out` (stored vectors not in the sample) or `given`.
    pub queries_from: &'static str,
    /// Neighbours per query.
    pub k: usize,
    /// Recall@k aimed for.
    pub target_recall: f64,
    /// RAM budget of the collection, bytes.
    pub memory_budget: Option<u64>,
    /// RAM per point the collection holds besides this space's index and vectors (ids,
    /// sequence numbers, payloads, other spaces), measured now.
    pub other_bytes_per_point: f64,
    /// Every layout measured.
    pub layouts: Vec<LayoutReport>,
    /// Index into `layouts` of the advice, if any layout qualifies.
    pub recommended: Option<usize>,
    /// Why that one (or why none).
    pub reason: String,
    /// What the figures are and are not.
    pub notes: Vec<String>,
}

/// The layouts offered for a space of `metric` and `dim` over a sample of `n` vectors, each
/// with where its vectors may live (`true`: on disk; never for an encrypted collection, which
/// has no plain file to map).
fn layouts(metric: Metric, dim: usize, n: usize, encrypted: bool) -> Vec<(IndexSpec, Vec<bool>)> {
    let places = if encrypted {
        vec![false]
    } else {
        vec![false, true]
    };
    let hnsw = |quantization| IndexSpec::Hnsw {
        m: sextant_storage::schema::DEFAULT_M,
        ef_construction: sextant_storage::schema::DEFAULT_EF_CONSTRUCTION,
        quantization,
    };
    // A binary metric's graph walks packed bits, not the f32 vectors: those may stay on disk.
    let f32_walk_places = if metric.is_binary() {
        places.clone()
    } else {
        vec![false]
    };
    let mut out = vec![
        (IndexSpec::Flat, vec![false]),
        (hnsw(Quantization::None), f32_walk_places),
    ];
    for walk in [Quantization::Sq8, Quantization::Pq4] {
        if walk.supports(metric) {
            out.push((hnsw(walk), places.clone()));
        }
    }
    if metric.quantizable() && n >= sextant_storage::schema::IVF_MIN_POINTS {
        let mut ms: Vec<usize> = [8, 4, 2]
            .iter()
            .map(|d| dim.div_ceil(*d).clamp(1, MAX_SUBQUANTIZERS.min(dim)))
            .collect();
        ms.dedup();
        let ivf = |m, bits, opq| IndexSpec::IvfPq {
            nlist: 0,
            m,
            nprobe: sextant_storage::schema::DEFAULT_NPROBE,
            bits,
            opq,
        };
        for m in ms {
            out.push((ivf(m, 4, false), places.clone()));
        }
        // At the default's bytes per vector: 8-bit codes, and 4-bit codes after an OPQ
        // rotation.
        out.push((ivf(dim.div_ceil(8), 8, false), places.clone()));
        out.push((
            ivf(dim.div_ceil(4).min(MAX_SUBQUANTIZERS), 4, true),
            places.clone(),
        ));
    }
    out
}

fn describe(index: &IndexSpec, metric: Metric, on_disk: bool) -> (String, String) {
    let disk = if on_disk { ", on disk" } else { "" };
    let disk_flag = if on_disk { " --on-disk" } else { "" };
    match index {
        IndexSpec::Flat => ("flat (exact)".into(), "--index flat".into()),
        IndexSpec::Hnsw { quantization, .. } => (
            match quantization.resolve(metric) {
                Quantization::None if metric.is_binary() => {
                    format!("hnsw, packed-bit walk{disk}")
                }
                Quantization::None => format!("hnsw, f32 walk{disk}"),
                Quantization::Pq4 => format!("hnsw, 4-bit neighbour-code walk{disk}"),
                Quantization::Sq8 | Quantization::Auto => format!("hnsw, 8-bit walk{disk}"),
            },
            format!(
                "--index hnsw --quantization {}{disk_flag}",
                quantization.name()
            ),
        ),
        IndexSpec::IvfPq { m, bits, opq, .. } => (
            format!(
                "ivf_pq, pq_m {m} × {bits}-bit{} ({} B code){disk}",
                if *opq { ", opq" } else { "" },
                if *bits == 8 { *m } else { m.div_ceil(2) }
            ),
            format!(
                "--index ivf_pq --pq-m {m}{}{}{disk_flag}",
                if *bits == 4 {
                    String::new()
                } else {
                    format!(" --pq-bits {bits}")
                },
                if *opq { " --opq" } else { "" }
            ),
        ),
    }
}

/// Exact top-`k` offsets of each query.
fn ground_truth(base: &DenseVectors, queries: &[Vec<f32>], k: usize) -> Result<Vec<Vec<u32>>> {
    let flat = FlatIndex::from_vectors(base.clone());
    queries
        .iter()
        .map(|q| {
            Ok(flat
                .search(q, &SearchParams::new(k), None)
                .map_err(index_error)?
                .into_iter()
                .map(|n| n.id)
                .collect())
        })
        .collect()
}

fn index_error(e: sextant_index::IndexError) -> EngineError {
    EngineError::invalid("queries", e.to_string())
}

/// Recall@k and one-thread QPS of `params` over the queries (the faster of two passes).
fn measure(
    index: &AnyIndex,
    queries: &[Vec<f32>],
    truth: &[Vec<u32>],
    params: &SearchParams,
) -> Result<(f64, f64)> {
    let mut best = f64::INFINITY;
    let mut hits = 0usize;
    let mut wanted = 0usize;
    for pass in 0..2 {
        let start = Instant::now();
        for (q, t) in queries.iter().zip(truth) {
            let got = index.search(q, params, None).map_err(index_error)?;
            if pass == 0 {
                hits += got.iter().filter(|n| t.contains(&n.id)).count();
                wanted += t.len();
            }
        }
        best = best.min(start.elapsed().as_secs_f64());
    }
    let recall = if wanted == 0 {
        1.0
    } else {
        hits as f64 / wanted as f64
    };
    Ok((recall, queries.len() as f64 / best.max(1e-9)))
}

/// Every setting of `index` worth measuring, cheapest first, stopping where recall saturates.
fn sweep(
    index: &AnyIndex,
    queries: &[Vec<f32>],
    truth: &[Vec<u32>],
    k: usize,
    n: usize,
) -> Result<Vec<Measured>> {
    let mut out = Vec::new();
    match index {
        AnyIndex::Flat(_) => {
            let (recall, qps) = measure(index, queries, truth, &SearchParams::new(k))?;
            out.push(Measured {
                ef: None,
                nprobe: None,
                recall,
                qps,
            });
        }
        AnyIndex::Hnsw(_) => {
            for ef in HNSW_EFS.into_iter().filter(|&ef| ef >= k && ef <= n) {
                let (recall, qps) =
                    measure(index, queries, truth, &SearchParams::new(k).with_ef(ef))?;
                out.push(Measured {
                    ef: Some(ef),
                    nprobe: None,
                    recall,
                    qps,
                });
                if recall >= SATURATED {
                    break;
                }
            }
        }
        AnyIndex::IvfPq(ivf) => {
            let nlist = ivf.params().nlist;
            for nprobe in IVF_NPROBES.into_iter().filter(|&p| p <= nlist) {
                let mut top = 0.0f64;
                for ef in IVF_EFS.into_iter().map(|e| e.max(k)).filter(|&e| e <= n) {
                    let params = SearchParams::new(k).with_ef(ef).with_nprobe(nprobe);
                    let (recall, qps) = measure(index, queries, truth, &params)?;
                    out.push(Measured {
                        ef: Some(ef),
                        nprobe: Some(nprobe),
                        recall,
                        qps,
                    });
                    top = top.max(recall);
                    if recall >= SATURATED {
                        break;
                    }
                }
                if top >= SATURATED {
                    break;
                }
            }
        }
    }
    Ok(out)
}

/// `qps` measured over `s` vectors, projected to `n` (the module docs give the models).
fn project_qps(index: &IndexSpec, qps: f64, s: usize, n: u64) -> f64 {
    let (s, n) = (s.max(2) as f64, (n as f64).max(s.max(2) as f64));
    match index {
        IndexSpec::Flat => qps * s / n,
        IndexSpec::Hnsw { .. } => qps * s.ln() / n.ln(),
        IndexSpec::IvfPq { .. } => qps * (s / n).sqrt(),
    }
}

impl Collection {
    /// Up to `n` live vectors of dense space `space`, drawn uniformly with `seed`, as rows of
    /// `dim` components (stored form: normalised for cosine). Every tenant's points are drawn:
    /// this is the administrator's path the advisor takes (front ends expose only its
    /// aggregate report, to admin keys), never a way to read points for a caller.
    pub fn sample_vectors(&self, space: usize, n: usize, seed: u64) -> Vec<Vec<f32>> {
        let now = self.now_ms();
        let st = self.state.read();
        let lives: Vec<_> = st
            .each_segment(now)
            .map(|(_, seg, dead)| {
                let mut all = roaring::RoaringBitmap::new();
                all.insert_range(0..seg.len());
                (seg, all - dead.as_ref())
            })
            .collect();
        let total: usize = lives.iter().map(|(_, l)| l.len() as usize).sum();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut picks = rand::seq::index::sample(&mut rng, total, n.min(total)).into_vec();
        picks.sort_unstable();
        let mut out = Vec::with_capacity(picks.len());
        let (mut base, mut next) = (0usize, picks.iter().peekable());
        for (seg, live) in &lives {
            let len = live.len() as usize;
            while let Some(&&p) = next.peek() {
                if p >= base + len {
                    break;
                }
                let offset = live
                    .select((p - base) as u32)
                    .expect("rank inside the bitmap");
                let v = seg.vectors(space).vector(offset).expect("live offset");
                out.push(v.to_vec());
                next.next();
            }
            base += len;
        }
        // Picks were taken in storage order; shuffle so that a caller splitting the sample
        // (queries first) gets a uniform split.
        rand::seq::SliceRandom::shuffle(out.as_mut_slice(), &mut rng);
        out
    }

    /// Heap bytes per live point held besides dense space `space`'s vectors and index.
    fn other_bytes_per_point(&self, space: usize) -> f64 {
        let now = self.now_ms();
        let st = self.state.read();
        let (mut other, mut live) = (0u64, 0u64);
        for (_, seg, dead) in st.each_segment(now) {
            let parts = seg.memory_parts();
            let this = seg.vectors(space);
            other += (parts.heap() + parts.index_mapped)
                .saturating_sub((this.memory_bytes() + this.mapped_bytes()) as u64);
            live += u64::from(seg.len()).saturating_sub(dead.len());
        }
        if live == 0 {
            0.0
        } else {
            other as f64 / live as f64
        }
    }

    /// Checks an advice request against this collection (every field, the space, and enough
    /// live vectors to sample) without measuring anything; returns the space's index.
    /// [`Collection::advise`] runs the same checks; a server calls this first to refuse a bad
    /// request before starting a job.
    pub fn check_advise(&self, req: &AdviseRequest) -> Result<usize> {
        let invalid = |f: &str, m: String| Err(EngineError::invalid(f, m));
        if !(req.target_recall > 0.0 && req.target_recall <= 1.0) {
            return invalid(
                "target_recall",
                format!("must be in (0, 1], got {}", req.target_recall),
            );
        }
        if req.k == 0 || req.k > MAX_K {
            return invalid("k", format!("must be 1..={MAX_K}, got {}", req.k));
        }
        if req.sample < MIN_SAMPLE || req.sample > MAX_SAMPLE {
            return invalid(
                "sample",
                format!("must be {MIN_SAMPLE}..={MAX_SAMPLE}, got {}", req.sample),
            );
        }
        if req.query_vectors.is_none() && (req.queries == 0 || req.queries > MAX_QUERIES) {
            return invalid(
                "queries",
                format!("must be 1..={MAX_QUERIES}, got {}", req.queries),
            );
        }
        if req.memory_budget == Some(0) {
            return invalid("memory_budget", "must be more than 0 bytes".into());
        }
        if req.points == Some(0) {
            return invalid("points", "must be at least 1".into());
        }
        let schema = self.schema();
        let space = match &req.space {
            Some(name) => schema.space_index(name).ok_or_else(|| {
                EngineError::invalid("space", format!("unknown vector space {name:?}"))
            })?,
            None if schema.spaces.len() == 1 => 0,
            None => {
                return invalid(
                    "space",
                    "the collection has several vector spaces; name the one to advise on".into(),
                )
            }
        };
        let spec = &schema.spaces[space];
        let dim = spec.dim;
        if let Some(qs) = &req.query_vectors {
            if qs.is_empty() || qs.len() > MAX_QUERIES {
                return invalid(
                    "queries",
                    format!("give 1..={MAX_QUERIES} query vectors, got {}", qs.len()),
                );
            }
            for (i, q) in qs.iter().enumerate() {
                sextant_core::validate_vector_for(q, dim, spec.metric)
                    .map_err(|e| EngineError::invalid("queries", format!("query {i}: {e}")))?;
            }
        }
        let live = self.state.read().live_count(self.now_ms()) as usize;
        let held_out = if req.query_vectors.is_some() {
            0
        } else {
            req.queries
        };
        if live < held_out + MIN_SAMPLE {
            return invalid("collection", too_few(&spec.name, live, held_out));
        }
        Ok(space)
    }

    /// Measures every layout on a sample of this collection's vectors and recommends one (see
    /// the module docs). `progress` hears `(done, total, what)` as layouts are built and
    /// measured.
    pub fn advise(
        &self,
        req: &AdviseRequest,
        progress: &mut dyn FnMut(usize, usize, &str),
    ) -> Result<AdviseReport> {
        let space = self.check_advise(req)?;
        let invalid = |f: &str, m: String| Err(EngineError::invalid(f, m));
        let spec = self.schema().spaces[space].clone();
        let (dim, metric) = (spec.dim, spec.metric);
        let live = self.state.read().live_count(self.now_ms());
        let held_out = if req.query_vectors.is_some() {
            0
        } else {
            req.queries
        };
        // Each layout holds the sample two or three times while it is built and reloaded:
        // bound the sample's f32 bytes so that wide vectors cannot exhaust memory.
        let want = req.sample.min(sample_cap(dim));
        let mut rows = self.sample_vectors(space, want + held_out, req.seed);
        if rows.len() < held_out + MIN_SAMPLE {
            // Deleted since the check.
            return invalid("collection", too_few(&spec.name, rows.len(), held_out));
        }
        let queries: Vec<Vec<f32>> = match &req.query_vectors {
            Some(qs) => qs.clone(),
            None => rows.drain(..held_out).collect(),
        };
        let s = rows.len();
        let flat: Vec<f32> = rows.concat();
        drop(rows);
        let base = DenseVectors::from_rows(metric, dim, &flat).map_err(index_error)?;
        drop(flat);
        let points = req.points.unwrap_or(live).max(1);
        let truth = ground_truth(&base, &queries, req.k)?;
        let other = self.other_bytes_per_point(space);

        let encrypted = self.encryption.is_some();
        let plans = layouts(metric, dim, s, encrypted);
        let total = plans.len();
        let mut reports = Vec::new();
        for (done, (index_spec, disks)) in plans.into_iter().enumerate() {
            let (what, _) = describe(&index_spec, metric, false);
            progress(done, total, &what);
            let start = Instant::now();
            let built = build_index(&index_spec, base.clone(), None)?;
            let build_s = start.elapsed().as_secs_f64();
            // Measured as a flushed segment serves it: written, then loaded from its bytes
            // (structures sized exactly, not as they grew while building).
            let bytes = built.to_bytes();
            drop(built);
            let index = AnyIndex::from_bytes(&bytes).map_err(|e| {
                EngineError::Storage(sextant_storage::StorageError::InvalidSequence(format!(
                    "index advisor: reloading a {} index: {e}",
                    index_spec.name()
                )))
            })?;
            let sweep = sweep(&index, &queries, &truth, req.k, s)?;
            let fastest = |aim: f64| {
                sweep
                    .iter()
                    .filter(|m| m.recall >= aim)
                    .max_by(|a, b| a.qps.total_cmp(&b.qps))
                    .copied()
            };
            // A graph loses recall at the same ef as it grows: planning for more points than
            // the sample, its setting aims halfway from the target to 1 (0.975 for 0.95).
            let aimed_recall = match index_spec {
                // (Beyond the sample: more points than it and its held-out queries.)
                IndexSpec::Hnsw { .. } if points as usize > s + held_out => {
                    req.target_recall + (1.0 - req.target_recall) / 2.0
                }
                _ => req.target_recall,
            };
            let chosen = fastest(aimed_recall).or_else(|| fastest(req.target_recall));
            // Centroids and tables are per list, and a segment of `points` points gets more lists.
            let (lists_bytes, lists_at_n) = match &index {
                AnyIndex::IvfPq(ivf) => {
                    let (at_n, _) = IvfPqParams::default().resolve(points as usize, dim);
                    let per_list = ivf.list_bytes() as f64 / ivf.params().nlist.max(1) as f64;
                    (ivf.list_bytes() as f64, per_list * at_n as f64)
                }
                _ => (0.0, 0.0),
            };
            let vectors_bytes = index.dense_vectors().memory_bytes() as f64;
            for on_disk in disks {
                let (layout, create_flags) = describe(&index_spec, metric, on_disk);
                let ram_sample =
                    index.memory_bytes() as f64 - if on_disk { vectors_bytes } else { 0.0 };
                let ram_bytes_per_vector = ram_sample / s as f64;
                let per_vector = (ram_sample - lists_bytes) / s as f64;
                let ram_bytes = (per_vector * points as f64 + lists_at_n + other * points as f64)
                    .round() as u64;
                let disk_sample = if on_disk {
                    (index.to_bytes_with(true).len() + index.dense_vectors().data_bytes()) as f64
                } else {
                    bytes.len() as f64
                };
                let disk_bytes_per_vector = disk_sample / s as f64;
                let search_flags = chosen.map(|m| {
                    let mut f = Vec::new();
                    if let Some(p) = m.nprobe {
                        f.push(format!("--nprobe {p}"));
                    }
                    if let Some(ef) = m.ef {
                        f.push(format!("--ef {ef}"));
                    }
                    f.join(" ")
                });
                reports.push(LayoutReport {
                    layout,
                    index: index_spec,
                    on_disk,
                    create_flags,
                    build_s,
                    ram_bytes_per_vector,
                    disk_bytes_per_vector,
                    ram_bytes,
                    disk_bytes: (disk_bytes_per_vector * points as f64).round() as u64,
                    fits_budget: req.memory_budget.map(|b| ram_bytes <= b),
                    sweep: sweep.clone(),
                    aimed_recall,
                    chosen,
                    projected_qps: chosen.map(|m| project_qps(&index_spec, m.qps, s, points)),
                    search_flags,
                });
            }
        }
        progress(total, total, "done");
        let (recommended, reason) = recommend(&reports, req);
        let mut notes = vec![
            format!(
                "Recall and QPS were measured on {s} of the space's vectors with {} {} queries, one thread; QPS at {points} points is projected (flat x s/N, hnsw x ln s / ln N, ivf_pq x sqrt(s/N)), not measured.",
                queries.len(),
                if req.query_vectors.is_some() { "given" } else { "held-out stored vectors as" }
            ),
            "A graph can lose recall at the same ef as it grows (planned beyond the sample, its setting aims halfway from the target to 1): confirm the setting on the full collection (`collection info` shows the recall probe's estimate).".into(),
            format!(
                "RAM counts this space's index and in-memory vectors per vector as measured, plus {:.0} B per point the collection holds besides (ids, payloads, other spaces); on-disk layouts assume a warm page cache for the vectors they rescore.",
                other
            ),
        ];
        if want < req.sample && s == want {
            notes.push(format!(
                "The sample was capped at {want} vectors ({} MiB of {dim}-d f32 vectors) to bound the advisor's memory; {} were asked for.",
                MAX_SAMPLE_BYTES >> 20,
                req.sample
            ));
        }
        if encrypted {
            notes.push("The collection is encrypted at rest: layouts with vectors on disk are not offered (an encrypted collection has no plain file to map).".into());
        }
        if req.query_vectors.is_none() {
            notes.push("Held-out stored vectors are easier queries than real traffic when queries come from another distribution (questions against passages): pass your own queries for advice on those.".into());
        }
        Ok(AdviseReport {
            collection: self.name().to_string(),
            space: spec.name.clone(),
            dim,
            metric,
            live_points: live,
            points,
            sample: s,
            queries: queries.len(),
            queries_from: if req.query_vectors.is_some() {
                "given"
            } else {
                "held-out"
            },
            k: req.k,
            target_recall: req.target_recall,
            memory_budget: req.memory_budget,
            other_bytes_per_point: other,
            layouts: reports,
            recommended,
            reason,
            notes,
        })
    }
}

/// The most vectors of `dim` components a sample may hold ([`MAX_SAMPLE_BYTES`], never under
/// [`MIN_SAMPLE`]).
fn sample_cap(dim: usize) -> usize {
    (MAX_SAMPLE_BYTES / (dim.max(1) * 4)).max(MIN_SAMPLE)
}

fn too_few(space: &str, live: usize, held_out: usize) -> String {
    let queries = if held_out > 0 {
        format!(" and {held_out} held out as queries")
    } else {
        String::new()
    };
    format!(
        "space {space:?} holds {live} live vectors: the advisor needs at least {} ({MIN_SAMPLE} to build on{queries}); at this size a flat index is exact and fast",
        held_out + MIN_SAMPLE
    )
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// The recommended layout and why (see the module docs).
fn recommend(layouts: &[LayoutReport], req: &AdviseRequest) -> (Option<usize>, String) {
    let fits = |l: &LayoutReport| l.fits_budget != Some(false);
    let best = layouts
        .iter()
        .enumerate()
        .filter(|(_, l)| fits(l) && l.chosen.is_some())
        .max_by(|a, b| {
            // Equal speed (an on-disk twin measures what its in-memory build does): the
            // vectors in memory, which no cold page cache slows down.
            let q = |l: &LayoutReport| l.projected_qps.unwrap_or(0.0);
            q(a.1)
                .total_cmp(&q(b.1))
                .then_with(|| b.1.on_disk.cmp(&a.1.on_disk))
        });
    let target = req.target_recall;
    if let Some((i, l)) = best {
        let within = match req.memory_budget {
            Some(b) => format!(" within the budget of {}", mib(b)),
            None => String::new(),
        };
        return (
            Some(i),
            format!(
                "the highest projected QPS ({:.0}) among layouts reaching recall@{} {target}{within}, at {} of RAM",
                l.projected_qps.unwrap_or(0.0),
                req.k,
                mib(l.ram_bytes)
            ),
        );
    }
    let reaching = layouts
        .iter()
        .filter(|l| l.chosen.is_some())
        .min_by_key(|l| l.ram_bytes);
    let need = match reaching {
        Some(l) => format!(
            "the smallest layout reaching it ({}) needs {}",
            l.layout,
            mib(l.ram_bytes)
        ),
        None => "no layout measured reaches it".into(),
    };
    let top = |l: &LayoutReport| l.sweep.iter().map(|m| m.recall).fold(0.0, f64::max);
    let closest = layouts
        .iter()
        .enumerate()
        .filter(|(_, l)| fits(l))
        .max_by(|a, b| top(a.1).total_cmp(&top(b.1)));
    match closest {
        Some((i, l)) => (
            Some(i),
            format!(
                "no layout within the budget reaches recall@{} {target}: {need}; the closest within it is shown (best recall {:.4})",
                req.k,
                top(l)
            ),
        ),
        None => {
            let smallest = layouts.iter().map(|l| l.ram_bytes).min().unwrap_or(0);
            (
                None,
                format!(
                    "no layout fits the budget: the smallest needs {}; {need}",
                    mib(smallest)
                ),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layouts_follow_the_metric_and_the_sample() {
        let names = |m, d, n| {
            layouts(m, d, n, false)
                .iter()
                .flat_map(|(i, disks)| {
                    disks
                        .iter()
                        .map(|&o| describe(i, m, o).1)
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        let l2 = names(Metric::L2, 384, 20_000);
        assert_eq!(l2.len(), 16, "{l2:?}");
        for want in [
            "--index ivf_pq --pq-m 48 --on-disk",
            "--index ivf_pq --pq-m 192",
            "--index ivf_pq --pq-m 48 --pq-bits 8 --on-disk",
            "--index ivf_pq --pq-m 96 --opq",
        ] {
            assert!(l2.contains(&want.to_string()), "{want} not in {l2:?}");
        }
        assert!(l2.contains(&"--index hnsw --quantization sq8 --on-disk".to_string()));
        assert!(l2.contains(&"--index hnsw --quantization pq4 --on-disk".to_string()));
        // l1: no codes of either kind; a small sample: no lists to train.
        assert_eq!(
            names(Metric::L1, 384, 20_000),
            ["--index flat", "--index hnsw --quantization none"]
        );
        assert_eq!(names(Metric::Cosine, 8, 500).len(), 6);
        // Binary metrics: no codes; the graph walks packed bits, so its vectors may be on disk.
        assert_eq!(
            names(Metric::Hamming, 256, 20_000),
            [
                "--index flat",
                "--index hnsw --quantization none",
                "--index hnsw --quantization none --on-disk"
            ]
        );
        let hnsw = IndexSpec::default();
        assert_eq!(
            describe(&hnsw, Metric::Jaccard, true).0,
            "hnsw, packed-bit walk, on disk"
        );
        assert_eq!(describe(&hnsw, Metric::L2, false).0, "hnsw, 8-bit walk");
        let pq4 = IndexSpec::Hnsw {
            m: 16,
            ef_construction: 200,
            quantization: Quantization::Pq4,
        };
        assert_eq!(
            describe(&pq4, Metric::L2, true),
            (
                "hnsw, 4-bit neighbour-code walk, on disk".to_string(),
                "--index hnsw --quantization pq4 --on-disk".to_string()
            )
        );
        // Encrypted: nothing on disk.
        let enc: Vec<String> = layouts(Metric::L2, 384, 20_000, true)
            .iter()
            .flat_map(|(i, disks)| {
                disks
                    .iter()
                    .map(|&o| describe(i, Metric::L2, o).1)
                    .collect::<Vec<_>>()
            })
            .collect();
        assert_eq!(enc.len(), 9, "{enc:?}");
        assert!(enc.iter().all(|f| !f.contains("--on-disk")));
        // Sub-quantiser counts never exceed the dimension and are not repeated.
        let tiny = names(Metric::L2, 3, 5_000);
        let count = |flags: &str| tiny.iter().filter(|f| f.starts_with(flags)).count();
        assert_eq!(count("--index ivf_pq --pq-m 1"), 6, "{tiny:?}");
        assert_eq!(count("--index ivf_pq --pq-m 1 --pq-bits 8"), 2, "{tiny:?}");
        assert_eq!(count("--index ivf_pq --pq-m 1 --opq"), 2, "{tiny:?}");
        assert_eq!(count("--index ivf_pq --pq-m 2"), 2, "{tiny:?}");
    }

    #[test]
    fn wide_vectors_get_a_smaller_sample() {
        assert!(sample_cap(384) > DEFAULT_SAMPLE, "no cap at common widths");
        assert_eq!(sample_cap(4_096), 65_536);
        assert_eq!(sample_cap(65_536), 4_096);
        assert_eq!(sample_cap(1 << 20), MIN_SAMPLE);
    }

    #[test]
    fn projections_scale_each_index_by_its_model() {
        let flat = IndexSpec::Flat;
        assert!((project_qps(&flat, 1000.0, 10_000, 100_000) - 100.0).abs() < 1e-9);
        let ivf = IndexSpec::IvfPq {
            nlist: 0,
            m: 8,
            nprobe: 16,
            bits: 4,
            opq: false,
        };
        assert!((project_qps(&ivf, 1000.0, 10_000, 1_000_000) - 100.0).abs() < 1e-9);
        let g = project_qps(&IndexSpec::default(), 1000.0, 10_000, 1_000_000);
        assert!((g - 1000.0 * 4.0 / 6.0).abs() < 1e-6, "{g}");
        // Planning for fewer points than were sampled never projects faster.
        assert_eq!(project_qps(&flat, 1000.0, 10_000, 10), 1000.0);
    }
}
