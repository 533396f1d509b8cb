//! Files written by released format versions must keep loading (STYLE.md §9). The fixtures in
//! `tests/fixtures/` were written by this code at format v1 from the deterministic data below;
//! a change that stops reading them, or reads them differently, fails here.
//!
//! `write_fixtures` (ignored; run with `cargo test -p sextant-index --test integration
//! write_fixtures -- --ignored`) writes the files named in `FIXTURES` with the current code. When
//! a format version changes, add entries with the new version's file names and keep the old
//! files and entries: old versions must still load and answer exactly (their re-serialised bytes
//! will then be the new version's, so that check applies to current-version files only).

use std::path::PathBuf;

use sextant_core::Metric;
use sextant_index::{
    AnyIndex, DenseVectors, FlatIndex, HnswIndex, HnswParams, Quantization, SearchParams,
    VectorIndex, VectorIndexMut,
};

const DIM: usize = 8;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// 1,500 deterministic points (over SQ8's minimum fit size) and 5 queries.
fn data() -> (Vec<f32>, Vec<f32>) {
    let point = |i: usize| -> Vec<f32> {
        (0..DIM)
            .map(|d| ((i * 31 + d * 17) % 97) as f32 / 97.0 - ((i * 7 + d) % 5) as f32 * 0.1)
            .collect()
    };
    let base = (0..1_500).flat_map(point).collect();
    let queries = (0..5).flat_map(|i| point(i * 301 + 11)).collect();
    (base, queries)
}

fn build_single_threaded(quantization: Quantization) -> HnswIndex {
    let (base, _) = data();
    let vectors = DenseVectors::from_rows(Metric::L2, DIM, &base).unwrap();
    // A small m keeps the committed fixtures small (links dominate their size).
    let params = HnswParams {
        m: 4,
        quantization,
        ..HnswParams::default()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut index = pool
        .install(|| HnswIndex::build(vectors, params, None))
        .unwrap();
    for id in [3, 500, 1_499] {
        index.delete(id).unwrap();
    }
    index
}

fn flat() -> FlatIndex {
    let (base, _) = data();
    let mut flat = FlatIndex::from_rows(Metric::L2, DIM, &base).unwrap();
    for id in [3, 500, 1_499] {
        flat.delete(id).unwrap();
    }
    flat
}

const FIXTURES: [(&str, Option<Quantization>); 3] = [
    ("hnsw-v1-f32.bin", Some(Quantization::None)),
    ("hnsw-v1-sq8.bin", Some(Quantization::Sq8)),
    ("flat-v1.bin", None),
];

#[test]
#[ignore = "writes fixture files; run by hand when a format version is added"]
fn write_fixtures() {
    std::fs::create_dir_all(fixture("")).unwrap();
    for (name, quantization) in FIXTURES {
        let bytes = match quantization {
            Some(q) => build_single_threaded(q).to_bytes(),
            None => flat().to_bytes(),
        };
        std::fs::write(fixture(name), bytes).unwrap();
    }
}

#[test]
fn v1_fixtures_load_and_answer_exactly_as_when_written() {
    let (_, queries) = data();
    let exact = flat();
    for (name, quantization) in FIXTURES {
        let bytes = std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let index = AnyIndex::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            (index.len(), index.deleted_count(), index.dim()),
            (1_500, 3, DIM),
            "{name}"
        );
        if let (AnyIndex::Hnsw(h), Some(q)) = (&index, quantization) {
            assert_eq!(h.params().quantization, q, "{name}");
        }
        // Loading then saving gives back the same bytes: nothing is lost or reinterpreted.
        assert_eq!(
            index.to_bytes(),
            bytes,
            "{name}: re-serialised bytes differ"
        );
        let params = SearchParams::new(10).with_ef(200);
        for q in queries.chunks(DIM) {
            let got: Vec<u32> = index
                .search(q, &params, None)
                .unwrap()
                .iter()
                .map(|n| n.id)
                .collect();
            let want: Vec<u32> = exact
                .search(q, &params, None)
                .unwrap()
                .iter()
                .map(|n| n.id)
                .collect();
            assert_eq!(got, want, "{name}");
        }
    }
}
