//! The JSON and Markdown shape of benchmark results. The peer script
//! (`bench/peers/ann.py`) writes the same JSON shape, so one comparison reads both.

use serde::{Deserialize, Serialize};

/// Which files a benchmark ran on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Base vectors file.
    pub base: String,
    /// Query vectors file.
    pub queries: String,
    /// Number of base vectors.
    pub n_base: usize,
    /// Number of queries.
    pub n_queries: usize,
    /// Dimension.
    pub dim: usize,
}

/// Index and query parameters of an ANN run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnnParams {
    /// HNSW links per node.
    pub m: usize,
    /// HNSW build beam width.
    pub ef_construction: usize,
    /// Neighbours per query.
    pub k: usize,
    /// Threads issuing queries (and building).
    pub threads: usize,
    /// Repetitions of each `ef` measurement; medians are reported.
    pub runs: usize,
    /// What the graph walk compares (`none` = f32, `sq8`); absent for peers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    /// Inverted lists of an IVF index (absent for graphs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nlist: Option<usize>,
    /// Product-quantisation sub-quantisers of an IVF-PQ index, and their bits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pq: Option<String>,
}

/// Wall and CPU seconds of a phase.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Timing {
    /// Elapsed seconds.
    pub wall_s: f64,
    /// Process CPU seconds (all threads).
    pub cpu_s: f64,
}

/// Recall and speed at one `ef`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EfResult {
    /// Search beam width (graphs), or candidates rescored exactly (IVF-PQ).
    pub ef: usize,
    /// Inverted lists scanned (IVF indexes only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nprobe: Option<usize>,
    /// Mean recall@k against the ground truth.
    pub recall: f64,
    /// Median queries per second over the runs.
    pub qps: f64,
    /// Queries per second of every run.
    pub qps_runs: Vec<f64>,
    /// Median wall seconds of one pass over all queries.
    pub wall_s: f64,
    /// Median CPU seconds of one pass over all queries.
    pub cpu_s: f64,
}

/// One system's ANN benchmark.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AnnReport {
    /// `sextant`, `hnswlib`, `faiss`, `usearch`.
    pub system: String,
    /// The system's version.
    pub version: String,
    /// Kernel instruction set (ours) or build notes (peers).
    #[serde(default)]
    pub isa: String,
    /// Files and sizes.
    pub dataset: DatasetInfo,
    /// Metric name.
    pub metric: String,
    /// Parameters.
    pub params: AnnParams,
    /// Index build time.
    pub build: Timing,
    /// Index memory in bytes.
    pub memory_bytes: u64,
    /// One entry per `ef`, in the order given.
    pub results: Vec<EfResult>,
}

impl AnnReport {
    /// A Markdown section: a summary line and one table row per `ef`.
    pub fn to_markdown(&self) -> String {
        let d = &self.dataset;
        let ivf = self.params.nlist.is_some();
        let index = match (&self.params.nlist, &self.params.pq) {
            (Some(nlist), pq) => format!(
                "nlist={nlist}{}",
                pq.as_deref()
                    .map(|p| format!(", PQ {p}"))
                    .unwrap_or_default()
            ),
            _ => format!(
                "M={}, efConstruction={}",
                self.params.m, self.params.ef_construction
            ),
        };
        let mut s = format!(
            "### {} {} ({}) — {} base × {} queries, dim {}, {}\n\n\
             {index}, k={}, threads={}, runs={} (median). \
             Build: {:.2} s wall, {:.2} s CPU. Index memory: {:.1} MiB.\n\n\
             | {}ef | recall@{} | QPS | wall s | CPU s |\n|---:|{}---:|---:|---:|---:|\n",
            self.system,
            self.version,
            self.isa,
            d.n_base,
            d.n_queries,
            d.dim,
            self.metric,
            self.params.k,
            self.params.threads,
            self.params.runs,
            self.build.wall_s,
            self.build.cpu_s,
            self.memory_bytes as f64 / (1024.0 * 1024.0),
            if ivf { "nprobe | " } else { "" },
            self.params.k,
            if ivf { "---:|" } else { "" },
        );
        for r in &self.results {
            let nprobe = r.nprobe.map(|n| format!("{n} | ")).unwrap_or_default();
            s.push_str(&format!(
                "| {nprobe}{} | {:.4} | {:.0} | {:.3} | {:.3} |\n",
                r.ef, r.recall, r.qps, r.wall_s, r.cpu_s
            ));
        }
        s
    }
}

/// Median of `values` (mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
