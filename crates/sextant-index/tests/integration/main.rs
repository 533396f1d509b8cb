//! Quality contracts of the index crate: recall against exact search, persistence, deletes and
//! filters. One integration binary (see STYLE.md, "Boring layout").

mod binary_metrics;
mod external_vectors;
mod format_fixtures;
mod hnsw_contracts;
mod ivf_contracts;
mod mapped_hnsw;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// `n` points around `clusters` random centres in `dim` dimensions (Gaussian-ish noise): data
/// with structure, like real embeddings, rather than uniform noise.
pub fn clustered(n: usize, dim: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let centres: Vec<f32> = (0..clusters * dim)
        .map(|_| rng.gen_range(-1.0..1.0))
        .collect();
    let mut out = Vec::with_capacity(n * dim);
    for _ in 0..n {
        let c = rng.gen_range(0..clusters);
        for d in 0..dim {
            let noise: f32 = (0..3).map(|_| rng.gen_range(-0.25f32..0.25)).sum();
            out.push(centres[c * dim + d] + noise);
        }
    }
    out
}
