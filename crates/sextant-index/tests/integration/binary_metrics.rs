//! Hamming and Jaccard over users' binary vectors (every component 0 or 1): exact scores by
//! their set definitions in the flat index, a graph that finds the nearest at the contract's
//! recall, and every way in refusing a vector that is not binary. Codes that approximate
//! products or squared distances (SQ8, PQ, 1-bit) do not apply and are refused by name.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use sextant_core::Metric;
use sextant_index::{
    BinaryCodes, DenseVectors, FlatIndex, HnswIndex, HnswParams, IvfPqIndex, IvfPqParams,
    Quantization, SearchParams, VectorIndex, VectorIndexMut,
};

const BITS: usize = 96;
const N: usize = 3_000;
const K: usize = 10;

/// `n` binary vectors around `clusters` random centres, each bit flipped with probability 0.1.
fn binary(n: usize, clusters: usize, seed: u64) -> Vec<f32> {
    let mut rng = SmallRng::seed_from_u64(seed);
    let centres: Vec<bool> = (0..clusters * BITS).map(|_| rng.gen()).collect();
    (0..n)
        .flat_map(|_| {
            let c = rng.gen_range(0..clusters);
            (0..BITS)
                .map(|d| f32::from(u8::from(centres[c * BITS + d] ^ rng.gen_bool(0.1))))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The distance by definition: differing bits, or 1 − |a ∧ b| / |a ∨ b| (0 for two empty sets).
fn definition(metric: Metric, a: &[f32], b: &[f32]) -> f32 {
    let count = |f: fn(bool, bool) -> bool| {
        a.iter()
            .zip(b)
            .filter(|(x, y)| f(**x == 1.0, **y == 1.0))
            .count()
    };
    match metric {
        Metric::Hamming => count(|x, y| x != y) as f32,
        Metric::Jaccard => {
            let (and, or) = (count(|x, y| x && y), count(|x, y| x || y));
            if or == 0 {
                0.0
            } else {
                1.0 - and as f32 / or as f32
            }
        }
        other => panic!("{other} is not binary"),
    }
}

#[test]
fn binary_metrics_score_by_definition_and_the_graph_finds_the_nearest() {
    let data = binary(N, 30, 1);
    let queries = binary(100, 30, 2);
    for metric in [Metric::Hamming, Metric::Jaccard] {
        let flat = FlatIndex::from_rows(metric, BITS, &data).unwrap();
        let vectors = DenseVectors::from_rows(metric, BITS, &data).unwrap();
        let graph = HnswIndex::build(vectors, HnswParams::default(), None).unwrap();
        // No codes apply: the walk compares the vectors themselves.
        assert_eq!(graph.params().quantization, Quantization::None, "{metric}");
        let (mut found, mut wanted) = (0, 0);
        for q in queries.chunks(BITS) {
            let mut truth: Vec<f32> = data
                .chunks(BITS)
                .map(|row| definition(metric, q, row))
                .collect();
            let exact = flat.search(q, &SearchParams::new(K), None).unwrap();
            for n in &exact {
                let want = definition(metric, q, &data[n.id as usize * BITS..][..BITS]);
                assert!((metric.score(n.distance) - want).abs() < 1e-6, "{metric}");
            }
            truth.sort_by(f32::total_cmp);
            assert!(
                (exact[K - 1].distance - truth[K - 1]).abs() < 1e-6,
                "{metric}"
            );
            // Distances tie often (Hamming counts bits): a result counts when it is no farther
            // than the k-th nearest.
            let walked = graph
                .search(q, &SearchParams::new(K).with_ef(100), None)
                .unwrap();
            found += walked
                .iter()
                .filter(|n| n.distance <= truth[K - 1] + 1e-6)
                .count();
            wanted += K;
        }
        let recall = found as f64 / wanted as f64;
        assert!(recall >= 0.95, "{metric}: recall {recall}");
    }
}

#[test]
fn vectors_that_are_not_binary_are_refused_on_every_way_in() {
    for metric in [Metric::Hamming, Metric::Jaccard] {
        let mut bits = vec![0f32; BITS];
        bits[3] = 1.0;
        let mut half = bits.clone();
        half[7] = 0.5;
        let err = |e: sextant_index::IndexError| e.to_string();
        let e = err(DenseVectors::from_rows(metric, BITS, &half).unwrap_err());
        assert!(e.contains("binary") && e.contains("component 7"), "{e}");
        let mut flat = FlatIndex::from_rows(metric, BITS, &bits).unwrap();
        assert!(err(flat.insert(&half).unwrap_err()).contains("binary"));
        let e = err(flat.search(&half, &SearchParams::new(1), None).unwrap_err());
        assert!(e.contains("binary"), "{e}");
        let mut graph = HnswIndex::new(metric, BITS, HnswParams::default()).unwrap();
        graph.insert(&bits).unwrap();
        assert!(err(graph.insert(&half).unwrap_err()).contains("binary"));
        let e = err(graph
            .search(&half, &SearchParams::new(1), None)
            .unwrap_err());
        assert!(e.contains("binary"), "{e}");
        // -1 is not binary either (signs are a different encoding).
        let mut signs = bits.clone();
        signs[0] = -1.0;
        assert!(err(flat.insert(&signs).unwrap_err()).contains("binary"));
    }
}

#[test]
fn codes_that_approximate_products_are_refused_for_binary_metrics() {
    let data = binary(2_000, 10, 3);
    for metric in [Metric::Hamming, Metric::Jaccard] {
        let v = || DenseVectors::from_rows(metric, BITS, &data).unwrap();
        for quantization in [Quantization::Sq8, Quantization::Pq4] {
            let params = HnswParams {
                quantization,
                ..HnswParams::default()
            };
            let e = HnswIndex::build(v(), params, None).unwrap_err().to_string();
            let want = format!("{} does not support {metric}", quantization.name());
            assert!(e.contains(&want), "{e}");
        }
        let e = IvfPqIndex::build(v(), IvfPqParams::default(), None)
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("{metric} is not supported")), "{e}");
        assert!(!BinaryCodes::supports(metric, BITS));
    }
}
