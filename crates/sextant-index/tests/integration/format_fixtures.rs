//! Files written by released format versions must keep loading (STYLE.md §9). The fixtures in
//! `tests/fixtures/` were written by this code from the deterministic data below (the `-v1`
//! files at format v1; HNSW v2 added 1-bit filter codes, and later the `pq4` walk's codes, which
//! only files of that walk hold; HNSW v3 aligns every large array so that a mapped file is used
//! in place; IVF-PQ v2 added 8-bit codes and the OPQ rotation); a change that stops reading
//! them, or reads them differently, fails here.
//!
//! `write_fixtures` (ignored; run with `cargo test -p sextant-index --test integration
//! write_fixtures -- --ignored`) writes the files named in `FIXTURES` with the current code. When
//! a format version changes, add entries with the new version's file names and keep the old
//! files and entries: old versions must still load and answer exactly (their re-serialised bytes
//! will then be the new version's, so that check applies to current-version files only).

use std::path::PathBuf;

use roaring::RoaringBitmap;
use sextant_core::Metric;
use sextant_index::{
    AnyIndex, DenseVectors, FlatIndex, HnswIndex, HnswParams, IdFilter, IvfPqIndex, IvfPqParams,
    Quantization, SearchParams, VectorIndex, VectorIndexMut,
};

const DIM: usize = 8;
/// Dimension of the fixture with 1-bit codes (they need at least 64).
const WIDE: usize = 64;
/// Points of that fixture (over the 1,024 the codes need).
const WIDE_N: usize = 1_100;

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

/// `WIDE_N` deterministic `WIDE`-d points and 5 queries.
fn wide_data() -> (Vec<f32>, Vec<f32>) {
    let point = |i: usize| -> Vec<f32> {
        (0..WIDE)
            .map(|d| ((i * 37 + d * 11) % 89) as f32 / 89.0 - ((i * 3 + d) % 7) as f32 * 0.05)
            .collect()
    };
    let base = (0..WIDE_N).flat_map(point).collect();
    let queries = (0..5).flat_map(|i| point(i * 211 + 5)).collect();
    (base, queries)
}

fn build_single_threaded(quantization: Quantization) -> HnswIndex {
    let (base, _) = data();
    build_on(&base, DIM, quantization)
}

fn build_on(base: &[f32], dim: usize, quantization: Quantization) -> HnswIndex {
    let vectors = DenseVectors::from_rows(Metric::L2, dim, base).unwrap();
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
    let last = (base.len() / dim - 1) as u32;
    for id in [3, 500, last] {
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

/// Name, whether the file is at the current format version (so re-serialising it must give
/// back its bytes), and the HNSW quantisation (`None`: a flat index).
const FIXTURES: [(&str, bool, Option<Quantization>); 9] = [
    ("hnsw-v1-f32.bin", false, Some(Quantization::None)),
    ("hnsw-v1-sq8.bin", false, Some(Quantization::Sq8)),
    ("flat-v1.bin", true, None),
    ("hnsw-v2-f32.bin", false, Some(Quantization::None)),
    ("hnsw-v2-sq8.bin", false, Some(Quantization::Sq8)),
    ("hnsw-v2-pq4.bin", false, Some(Quantization::Pq4)),
    ("hnsw-v3-f32.bin", true, Some(Quantization::None)),
    ("hnsw-v3-sq8.bin", true, Some(Quantization::Sq8)),
    ("hnsw-v3-pq4.bin", true, Some(Quantization::Pq4)),
];
/// IVF-PQ files of `data()` (default lists and sub-quantisers, the same three deletes as
/// `flat()`): name, whether at the current version, bits per code, OPQ.
const IVF_FIXTURES: [(&str, bool, usize, bool); 3] = [
    ("ivf-v1.bin", false, 4, false),
    ("ivf-v2-4bit.bin", true, 4, false),
    ("ivf-v2-8bit-opq.bin", true, 8, true),
];

fn ivf(bits: usize, opq: bool) -> IvfPqIndex {
    let (base, _) = data();
    let vectors = DenseVectors::from_rows(Metric::L2, DIM, &base).unwrap();
    let params = IvfPqParams {
        bits,
        opq,
        ..IvfPqParams::default()
    };
    let mut index = IvfPqIndex::build(vectors, params, None).unwrap();
    for id in [3, 500, 1_499] {
        index.delete(id).unwrap();
    }
    index
}

/// The HNSW fixtures with 1-bit codes, written with their vectors apart (they are
/// `wide_data()`), which keeps them small, and whether each is at the current version.
const CODES_FIXTURES: [(&str, bool); 2] = [
    ("hnsw-v2-codes-external.bin", false),
    ("hnsw-v3-codes-external.bin", true),
];

#[test]
#[ignore = "writes fixture files; run by hand when a format version is added"]
fn write_fixtures() {
    std::fs::create_dir_all(fixture("")).unwrap();
    for (name, current, quantization) in FIXTURES {
        if !current {
            continue; // written by an older version of this code; never rewritten
        }
        let bytes = match quantization {
            Some(q) => build_single_threaded(q).to_bytes(),
            None => flat().to_bytes(),
        };
        std::fs::write(fixture(name), bytes).unwrap();
    }
    for (name, current, bits, opq) in IVF_FIXTURES {
        if current {
            std::fs::write(fixture(name), ivf(bits, opq).to_bytes()).unwrap();
        }
    }
    let (base, _) = wide_data();
    let codes = build_on(&base, WIDE, Quantization::Sq8);
    for (name, current) in CODES_FIXTURES {
        if current {
            std::fs::write(fixture(name), codes.to_bytes_with(true)).unwrap();
        }
    }
}

#[test]
fn fixtures_load_and_answer_exactly_as_when_written() {
    let (_, queries) = data();
    let exact = flat();
    for (name, current, quantization) in FIXTURES {
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
        if current {
            assert_eq!(
                index.to_bytes(),
                bytes,
                "{name}: re-serialised bytes differ"
            );
        }
        if let AnyIndex::Hnsw(h) = &index {
            assert!(h.binary_codes().is_none(), "{name}: 8-d gets no codes");
        }
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

/// Every IVF-PQ version loads with its settings, re-serialises to its own bytes when current,
/// answers exactly when every list is scanned and every point rescored, and its codes still
/// rank: at 4 lists and 30 rescored the answers keep most of the exact top 10.
#[test]
fn ivf_fixtures_load_and_answer_as_when_written() {
    let (_, queries) = data();
    let exact = flat();
    for (name, current, bits, opq) in IVF_FIXTURES {
        let bytes = std::fs::read(fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let index = match AnyIndex::from_bytes(&bytes).unwrap_or_else(|e| panic!("{name}: {e}")) {
            AnyIndex::IvfPq(i) => i,
            other => panic!("{name}: loaded as {other:?}"),
        };
        assert_eq!((index.len(), index.deleted_count()), (1_500, 3), "{name}");
        assert_eq!(
            (index.params().bits, index.params().opq),
            (bits, opq),
            "{name}"
        );
        if current {
            assert_eq!(
                index.to_bytes(),
                bytes,
                "{name}: re-serialised bytes differ"
            );
        }
        let ids = |r: Vec<sextant_index::Neighbor>| r.iter().map(|n| n.id).collect::<Vec<u32>>();
        let (all, some) = (
            SearchParams::new(10).with_nprobe(10_000).with_ef(1_500),
            SearchParams::new(10).with_nprobe(4).with_ef(30),
        );
        let mut hits = 0;
        for q in queries.chunks(DIM) {
            let want = ids(exact.search(q, &SearchParams::new(10), None).unwrap());
            assert_eq!(ids(index.search(q, &all, None).unwrap()), want, "{name}");
            let got = ids(index.search(q, &some, None).unwrap());
            hits += got.iter().filter(|id| want.contains(id)).count();
        }
        assert!(
            hits >= 35,
            "{name}: {hits}/50 of the exact top 10 at nprobe 4, ef 30"
        );
    }
}

/// The files with codes: each loads with its vectors, keeps its codes (re-serialising a
/// current one gives back its bytes), answers unfiltered searches exactly at a wide beam, and
/// its filtered code scan agrees with an exact scan of the allowed points.
#[test]
fn codes_fixtures_load_with_their_codes() {
    for (name, current) in CODES_FIXTURES {
        codes_fixture_loads_with_its_codes(name, current);
    }
}

fn codes_fixture_loads_with_its_codes(name: &str, current: bool) {
    let (base, queries) = wide_data();
    let bytes = std::fs::read(fixture(name)).unwrap();
    let vectors = DenseVectors::from_rows(Metric::L2, WIDE, &base).unwrap();
    let index = AnyIndex::from_parts(&bytes, Some(vectors)).unwrap();
    assert_eq!((index.len(), index.deleted_count()), (WIDE_N, 3), "{name}");
    assert_eq!(
        index.binary_codes().map(|c| c.len()),
        Some(WIDE_N),
        "{name}"
    );
    if current {
        assert_eq!(
            index.to_bytes_with(true),
            bytes,
            "{name}: re-serialised bytes differ"
        );
    }
    let mut exact = FlatIndex::from_rows(Metric::L2, WIDE, &base).unwrap();
    for id in [3, 500, 1_099] {
        exact.delete(id).unwrap();
    }
    let allowed: RoaringBitmap = (0..WIDE_N as u32).step_by(4).collect();
    let f = IdFilter::Bitmap(&allowed);
    let scan = SearchParams {
        exact_filter_threshold: 0,
        binary_filter_share: 1.0,
        ..SearchParams::new(10).with_ef(40)
    };
    let ids = |r: Vec<sextant_index::Neighbor>| r.iter().map(|n| n.id).collect::<Vec<u32>>();
    let mut hits = 0;
    for q in queries.chunks(WIDE) {
        let wide = SearchParams::new(10).with_ef(400);
        let want = ids(exact.search(q, &wide, None).unwrap());
        assert_eq!(ids(index.search(q, &wide, None).unwrap()), want, "{name}");
        let truth = ids(exact.search(q, &SearchParams::new(10), Some(&f)).unwrap());
        let got = ids(index.search(q, &scan, Some(&f)).unwrap());
        assert!(got.iter().all(|id| allowed.contains(*id)), "{name}");
        hits += got.iter().filter(|id| truth.contains(id)).count();
    }
    assert!(hits >= 45, "{name}: code-scan recall {hits}/50");
}
