//! The ANN benchmark: build an HNSW (or IVF-PQ) index, then sweep `ef` (and `nprobe`) and
//! measure recall@k against exact ground truth and queries per second with queries issued one
//! at a time (as a service sees them) on a fixed number of threads.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use sextant_core::Metric;
use sextant_index::{
    AnyIndex, DenseVectors, FlatIndex, HnswIndex, HnswParams, IvfPqIndex, IvfPqParams,
    Quantization, SearchParams, VectorIndex, VectorStorage,
};

use crate::io::{read_ids, read_vectors, write_ivecs, Matrix};
use crate::report::{median, AnnParams, AnnReport, DatasetInfo, EfResult, Timing};
use crate::{process_cpu_seconds, EvalError};

/// What to benchmark.
#[derive(Debug, Clone)]
pub struct AnnConfig {
    /// Base vectors (`.fvecs` / `.npy`).
    pub base: PathBuf,
    /// Query vectors (`.fvecs` / `.npy`).
    pub queries: PathBuf,
    /// Ground-truth ids (`.ivecs` / `.npy`); computed exactly when absent.
    pub gt: Option<PathBuf>,
    /// Where to save computed ground truth (`.ivecs`).
    pub gt_out: Option<PathBuf>,
    /// Metric.
    pub metric: Metric,
    /// HNSW parameters (`ef_search` unused: the sweep gives `ef`).
    pub hnsw: HnswParams,
    /// Build an IVF-PQ index with these settings instead of HNSW (`nprobe` and `rescore`
    /// unused: the sweeps give them).
    pub ivf: Option<IvfPqParams>,
    /// The `ef` sweep (graph beam widths; for IVF-PQ the candidates rescored exactly).
    pub efs: Vec<usize>,
    /// The `nprobe` sweep (IVF-PQ only): every value is measured with every `ef`.
    pub nprobes: Vec<usize>,
    /// Neighbours per query.
    pub k: usize,
    /// Threads for the build and for issuing queries.
    pub threads: usize,
    /// Repetitions of each `ef`; medians are reported.
    pub runs: usize,
    /// Load the index from this file when it exists (its parameters must match); otherwise
    /// build it and save it here. A loaded index reports no build time.
    pub index_file: Option<PathBuf>,
}

/// Callbacks for progress display; the harness itself prints nothing.
pub trait AnnObserver: Sync {
    /// A phase starts (`"loading"`, `"ground truth"`, `"build"`, `"search ef=…"`).
    fn phase(&self, _name: &str) {}
    /// `done` of `total` base vectors are linked into the graph.
    fn build_progress(&self, _done: usize, _total: usize) {}
}

/// An observer that ignores everything.
#[derive(Debug)]
pub struct Silent;
impl AnnObserver for Silent {}

fn invalid(msg: impl Into<String>) -> EvalError {
    EvalError::Invalid(msg.into())
}

impl AnnConfig {
    fn validate(&self) -> Result<(), EvalError> {
        if self.k == 0 {
            return Err(invalid("--k must be at least 1"));
        }
        if self.efs.is_empty() || self.efs.contains(&0) {
            return Err(invalid("--ef needs one or more values, each at least 1"));
        }
        if self.threads == 0 || self.runs == 0 {
            return Err(invalid("--threads and --runs must be at least 1"));
        }
        match (&self.ivf, self.nprobes.is_empty()) {
            (None, false) => return Err(invalid("--nprobe applies to --index ivf_pq only")),
            (Some(_), true) => {
                return Err(invalid("--index ivf_pq needs one or more --nprobe values"))
            }
            _ => {}
        }
        if self.nprobes.contains(&0) {
            return Err(invalid("--nprobe values must be at least 1"));
        }
        if self.ivf.is_some() && self.index_file.is_some() {
            return Err(invalid("--index-file saves and loads HNSW indexes only"));
        }
        Ok(())
    }
}

/// Fails unless base vectors and queries have the same dimension.
fn check_same_dim(base: &Matrix<f32>, queries: &Matrix<f32>) -> Result<(), EvalError> {
    if base.dim != queries.dim {
        return Err(invalid(format!(
            "dimension mismatch: base vectors have {}, queries have {}",
            base.dim, queries.dim
        )));
    }
    Ok(())
}

/// Exact top-`k` ids of every query, computed with the flat index on the current rayon pool.
pub fn exact_ground_truth(
    metric: Metric,
    base: &Matrix<f32>,
    queries: &Matrix<f32>,
    k: usize,
) -> Result<Matrix<i32>, EvalError> {
    check_same_dim(base, queries)?;
    let flat = FlatIndex::from_rows(metric, base.dim, &base.data)?;
    let found = flat.search_batch(&queries.data, &SearchParams::new(k), None)?;
    let k = k.min(base.rows);
    let mut data = Vec::with_capacity(queries.rows * k);
    for row in found {
        data.extend(row.iter().map(|n| n.id as i32));
    }
    Ok(Matrix {
        rows: queries.rows,
        dim: k,
        data,
    })
}

fn check_ground_truth(
    gt: &Matrix<i32>,
    n_base: usize,
    n_queries: usize,
    k: usize,
) -> Result<(), EvalError> {
    if gt.rows != n_queries {
        return Err(invalid(format!(
            "ground truth has {} rows, there are {n_queries} queries",
            gt.rows
        )));
    }
    if gt.dim < k.min(n_base) {
        return Err(invalid(format!(
            "ground truth has {} ids per query, --k is {k}",
            gt.dim
        )));
    }
    if let Some(bad) = gt.data.iter().find(|&&id| id < 0 || id as usize >= n_base) {
        return Err(invalid(format!(
            "ground truth id {bad} is outside 0..{n_base}"
        )));
    }
    Ok(())
}

/// Mean fraction of each query's true top-`k` found in its returned top-`k`.
pub fn recall_at_k(gt: &Matrix<i32>, found: &[Vec<u32>], k: usize) -> f64 {
    let k = k.min(gt.dim);
    let hits: usize = found
        .iter()
        .enumerate()
        .map(|(q, ids)| {
            let truth = &gt.row(q)[..k];
            ids.iter()
                .take(k)
                .filter(|&&id| truth.contains(&(id as i32)))
                .count()
        })
        .sum();
    hits as f64 / (found.len() * k).max(1) as f64
}

/// Issues every query once, one at a time per thread; returns the ids found and the timing.
fn run_queries(
    index: &AnyIndex,
    queries: &Matrix<f32>,
    params: &SearchParams,
    threads: usize,
) -> Result<(Vec<Vec<u32>>, Timing), EvalError> {
    /// Ids found per query index, from one worker.
    type Found = Result<Vec<(usize, Vec<u32>)>, EvalError>;
    let next = AtomicUsize::new(0);
    let worker = || -> Found {
        let mut out = Vec::new();
        loop {
            let q = next.fetch_add(1, Ordering::Relaxed);
            if q >= queries.rows {
                return Ok(out);
            }
            let found = index.search(queries.row(q), params, None)?;
            out.push((q, found.into_iter().map(|n| n.id).collect()));
        }
    };
    let (cpu0, t0) = (process_cpu_seconds(), Instant::now());
    let parts: Vec<Found> = if threads == 1 {
        vec![worker()]
    } else {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads).map(|_| s.spawn(worker)).collect();
            handles
                .into_iter()
                .map(|h| h.join().expect("query thread panicked"))
                .collect()
        })
    };
    let timing = Timing {
        wall_s: t0.elapsed().as_secs_f64(),
        cpu_s: process_cpu_seconds() - cpu0,
    };
    let mut found = vec![Vec::new(); queries.rows];
    for part in parts {
        for (q, ids) in part? {
            found[q] = ids;
        }
    }
    Ok((found, timing))
}

/// Loads a saved index and checks it was built from the same data and parameters.
fn load_index(
    path: &std::path::Path,
    config: &AnnConfig,
    base: &Matrix<f32>,
) -> Result<HnswIndex, EvalError> {
    let bytes = std::fs::read(path).map_err(|source| EvalError::Io {
        path: path.display().to_string(),
        source,
    })?;
    let index = HnswIndex::from_bytes(&bytes).map_err(|e| EvalError::Format {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    let p = index.params();
    let same = index.metric() == config.metric
        && index.dim() == base.dim
        && index.len() == base.rows
        && (p.m, p.ef_construction, p.quantization)
            == (
                config.hnsw.m,
                config.hnsw.ef_construction,
                config.hnsw.quantization.resolve(config.metric),
            );
    if !same {
        return Err(invalid(format!(
            "{} holds an index of {} × {} ({}, m={}, ef_construction={}, {:?}), not the one \
             asked for; delete it to rebuild",
            path.display(),
            index.len(),
            index.dim(),
            index.metric(),
            p.m,
            p.ef_construction,
            p.quantization
        )));
    }
    Ok(index)
}

/// Runs the whole benchmark.
pub fn run(config: &AnnConfig, observer: &dyn AnnObserver) -> Result<AnnReport, EvalError> {
    config.validate()?;
    observer.phase("loading");
    let base = read_vectors(&config.base)?;
    let queries = read_vectors(&config.queries)?;
    check_same_dim(&base, &queries)?;
    let gt = match &config.gt {
        Some(path) => read_ids(path)?,
        None => {
            observer.phase("ground truth");
            let gt = exact_ground_truth(config.metric, &base, &queries, config.k)?;
            if let Some(out) = &config.gt_out {
                write_ivecs(out, &gt)?;
            }
            gt
        }
    };
    check_ground_truth(&gt, base.rows, queries.rows, config.k)?;

    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(config.threads)
        .build()
        .map_err(|e| invalid(format!("cannot start {} threads: {e}", config.threads)))?;
    let cached = config.index_file.as_ref().filter(|p| p.exists());
    let (index, build) = match cached {
        Some(path) => {
            observer.phase("loading index");
            let index = load_index(path, config, &base)?;
            (
                AnyIndex::Hnsw(Box::new(index)),
                Timing {
                    wall_s: f64::NAN,
                    cpu_s: f64::NAN,
                },
            )
        }
        None => {
            observer.phase("build");
            let (cpu0, t0) = (process_cpu_seconds(), Instant::now());
            let index = pool.install(|| -> Result<AnyIndex, EvalError> {
                let vectors = DenseVectors::from_rows(config.metric, base.dim, &base.data)?;
                let total = vectors.len();
                let progress = |done: usize| observer.build_progress(done, total);
                Ok(match config.ivf {
                    Some(p) => {
                        AnyIndex::IvfPq(Box::new(IvfPqIndex::build(vectors, p, Some(&progress))?))
                    }
                    None => AnyIndex::Hnsw(Box::new(HnswIndex::build(
                        vectors,
                        config.hnsw,
                        Some(&progress),
                    )?)),
                })
            })?;
            let wall_s = t0.elapsed().as_secs_f64();
            let build = Timing {
                wall_s,
                cpu_s: process_cpu_seconds() - cpu0,
            };
            if let Some(path) = &config.index_file {
                std::fs::write(path, index.to_bytes()).map_err(|source| EvalError::Io {
                    path: path.display().to_string(),
                    source,
                })?;
            }
            (index, build)
        }
    };
    drop(base.data);

    let sweep: Vec<(Option<usize>, usize)> = if config.nprobes.is_empty() {
        config.efs.iter().map(|&ef| (None, ef)).collect()
    } else {
        config
            .nprobes
            .iter()
            .flat_map(|&n| config.efs.iter().map(move |&ef| (Some(n), ef)))
            .collect()
    };
    let mut results = Vec::with_capacity(sweep.len());
    for (nprobe, ef) in sweep {
        let mut params = SearchParams::new(config.k).with_ef(ef);
        match nprobe {
            Some(n) => {
                observer.phase(&format!("search nprobe={n} ef={ef}"));
                params = params.with_nprobe(n);
            }
            None => observer.phase(&format!("search ef={ef}")),
        }
        let mut timings = Vec::with_capacity(config.runs);
        let mut recall = f64::NAN;
        for run in 0..config.runs {
            let (found, timing) = run_queries(&index, &queries, &params, config.threads)?;
            if run == 0 {
                recall = recall_at_k(&gt, &found, config.k);
            }
            timings.push(timing);
        }
        let qps_runs: Vec<f64> = timings
            .iter()
            .map(|t| queries.rows as f64 / t.wall_s)
            .collect();
        results.push(EfResult {
            ef,
            nprobe,
            recall,
            qps: median(&qps_runs),
            qps_runs,
            wall_s: median(&timings.iter().map(|t| t.wall_s).collect::<Vec<_>>()),
            cpu_s: median(&timings.iter().map(|t| t.cpu_s).collect::<Vec<_>>()),
        });
    }
    Ok(AnnReport {
        system: match &index {
            AnyIndex::IvfPq(_) => "sextant-ivfpq".into(),
            AnyIndex::Hnsw(h) if h.params().quantization == Quantization::None => {
                "sextant-f32".into()
            }
            AnyIndex::Hnsw(h) if h.params().quantization == Quantization::Pq4 => {
                "sextant-pq4".into()
            }
            _ => "sextant".into(),
        },
        version: env!("CARGO_PKG_VERSION").into(),
        isa: sextant_index::distance::kernels().isa.name().into(),
        dataset: DatasetInfo {
            base: config.base.display().to_string(),
            queries: config.queries.display().to_string(),
            n_base: index.len(),
            n_queries: queries.rows,
            dim: queries.dim,
        },
        metric: config.metric.to_string(),
        params: match &index {
            AnyIndex::IvfPq(i) => AnnParams {
                m: 0,
                ef_construction: 0,
                k: config.k,
                threads: config.threads,
                runs: config.runs,
                quantization: None,
                nlist: Some(i.params().nlist),
                pq: Some(format!(
                    "{}{}×{}-bit ({} bytes per vector)",
                    if i.params().opq { "OPQ, " } else { "" },
                    i.params().m,
                    i.params().bits,
                    i.code_bytes()
                )),
            },
            _ => AnnParams {
                m: config.hnsw.m,
                ef_construction: config.hnsw.ef_construction,
                k: config.k,
                threads: config.threads,
                runs: config.runs,
                quantization: Some(
                    config
                        .hnsw
                        .quantization
                        .resolve(config.metric)
                        .name()
                        .into(),
                ),
                nlist: None,
                pq: None,
            },
        },
        build,
        memory_bytes: index.memory_bytes() as u64,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recall_counts_overlap_of_top_k() {
        let gt = Matrix {
            rows: 2,
            dim: 3,
            data: vec![1, 2, 3, 4, 5, 6],
        };
        let found = vec![vec![3, 2, 9], vec![7, 8, 9]];
        assert!((recall_at_k(&gt, &found, 3) - 2.0 / 6.0).abs() < 1e-12);
        assert!((recall_at_k(&gt, &found, 1) - 0.0).abs() < 1e-12);
    }

    #[test]
    fn ground_truth_checks_catch_mismatches() {
        let gt = Matrix {
            rows: 2,
            dim: 2,
            data: vec![0, 1, 1, 5],
        };
        assert!(check_ground_truth(&gt, 4, 2, 2)
            .unwrap_err()
            .to_string()
            .contains("outside"));
        assert!(check_ground_truth(&gt, 9, 3, 2)
            .unwrap_err()
            .to_string()
            .contains("rows"));
        assert!(check_ground_truth(&gt, 9, 2, 10)
            .unwrap_err()
            .to_string()
            .contains("--k"));
        assert!(check_ground_truth(&gt, 9, 2, 2).is_ok());
    }

    #[test]
    fn end_to_end_on_small_files() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, rows: &[Vec<f32>]| {
            let mut out = Vec::new();
            for r in rows {
                out.extend_from_slice(&(r.len() as i32).to_le_bytes());
                r.iter()
                    .for_each(|v| out.extend_from_slice(&v.to_le_bytes()));
            }
            let p = dir.path().join(name);
            std::fs::write(&p, out).unwrap();
            p
        };
        let base: Vec<Vec<f32>> = (0..500)
            .map(|i| vec![(i % 37) as f32, (i / 37) as f32, (i % 11) as f32])
            .collect();
        let queries: Vec<Vec<f32>> = (0..20).map(|i| vec![i as f32 * 1.3, 2.0, 1.0]).collect();
        let config = AnnConfig {
            base: write("b.fvecs", &base),
            queries: write("q.fvecs", &queries),
            gt: None,
            gt_out: Some(dir.path().join("gt.ivecs")),
            metric: Metric::L2,
            hnsw: HnswParams::default(),
            ivf: None,
            efs: vec![10, 100],
            nprobes: vec![],
            k: 5,
            threads: 2,
            runs: 2,
            index_file: Some(dir.path().join("index.bin")),
        };
        let report = run(&config, &Silent).unwrap();
        assert_eq!(report.results.len(), 2);
        assert!(report.results[1].recall >= 0.99, "{:?}", report.results);
        assert_eq!(report.results[0].qps_runs.len(), 2);
        assert_eq!(read_ids(&dir.path().join("gt.ivecs")).unwrap().rows, 20);
        let md = report.to_markdown();
        assert!(md.contains("| 100 |"), "{md}");

        // A second run loads the saved index and finds the same neighbours.
        let again = run(&config, &Silent).unwrap();
        assert!(again.build.wall_s.is_nan(), "loaded, not built");
        assert_eq!(again.results[1].recall, report.results[1].recall);
        let other = AnnConfig {
            hnsw: HnswParams {
                m: 8,
                ..config.hnsw
            },
            ..config.clone()
        };
        assert!(run(&other, &Silent)
            .unwrap_err()
            .to_string()
            .contains("delete it"));

        let bad_dim = AnnConfig {
            queries: write("q2.fvecs", &[vec![1.0, 2.0]]),
            ..config.clone()
        };
        assert!(run(&bad_dim, &Silent)
            .unwrap_err()
            .to_string()
            .contains("dimension mismatch"));
        let zero_k = AnnConfig {
            k: 0,
            ..config.clone()
        };
        assert!(run(&zero_k, &Silent).is_err());

        // IVF-PQ: every (nprobe, ef) pair measured; scanning every list with deep rescoring
        // is exact on this data; flags that do not apply are refused by name.
        let ivf = AnnConfig {
            ivf: Some(IvfPqParams {
                nlist: 4,
                ..IvfPqParams::default()
            }),
            nprobes: vec![1, 4],
            index_file: None,
            ..config.clone()
        };
        let report = run(&ivf, &Silent).unwrap();
        assert_eq!(report.system, "sextant-ivfpq");
        assert_eq!(report.params.nlist, Some(4));
        let pairs: Vec<_> = report.results.iter().map(|r| (r.nprobe, r.ef)).collect();
        assert_eq!(
            pairs,
            [(Some(1), 10), (Some(1), 100), (Some(4), 10), (Some(4), 100)]
        );
        assert!(report.results[3].recall >= 0.99, "{:?}", report.results);
        assert!(report.to_markdown().contains("| 4 | 100 |"));
        for (bad, word) in [
            (
                AnnConfig {
                    nprobes: vec![],
                    ..ivf.clone()
                },
                "--nprobe",
            ),
            (
                AnnConfig {
                    nprobes: vec![0],
                    ..ivf.clone()
                },
                "--nprobe",
            ),
            (
                AnnConfig {
                    index_file: config.index_file.clone(),
                    ..ivf.clone()
                },
                "--index-file",
            ),
            (
                AnnConfig {
                    nprobes: vec![2],
                    ..config.clone()
                },
                "--nprobe",
            ),
        ] {
            let e = run(&bad, &Silent).unwrap_err().to_string();
            assert!(e.contains(word), "{e}");
        }
    }
}
