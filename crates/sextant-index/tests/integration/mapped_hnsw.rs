//! HNSW indexes used in place from their file's bytes (format v3). Loaded from an aligned
//! buffer, as a memory mapping is, every walk (f32, SQ8, `pq4`), with vectors inline or apart,
//! keeps its links, vectors, codes and `pq4` records as views of the buffer. It answers exactly
//! as the index it was written from: unfiltered, through a filtered walk and through the code
//! scan. A misaligned buffer is copied and answers the same. An insert copies what it changes
//! and then behaves as on a decoded copy. A file whose checksum holds but whose links do not
//! is an error.

use std::sync::Arc;

use roaring::RoaringBitmap;
use sextant_core::Metric;
use sextant_index::{
    AnyIndex, DenseVectors, HnswIndex, HnswParams, IdFilter, Quantization, SearchParams,
    SharedBytes, VectorIndex, VectorIndexMut,
};

use crate::clustered;

/// 64 dimensions and over 1,024 points: the index gets 1-bit codes and SQ8 codes.
const DIM: usize = 64;
const N: usize = 1_500;

/// A copy of `bytes` starting `offset` bytes past a 64-byte boundary (0: as a page-aligned
/// memory mapping).
struct Buffer {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for Buffer {
    fn as_ref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

fn shared(bytes: &[u8], offset: usize) -> SharedBytes {
    let mut raw = vec![0u8; bytes.len() + 128];
    let start = (64 - raw.as_ptr() as usize % 64) % 64 + offset;
    raw[start..start + bytes.len()].copy_from_slice(bytes);
    Arc::new(Buffer {
        raw,
        start,
        len: bytes.len(),
    })
}

fn build(quantization: Quantization) -> HnswIndex {
    let data = clustered(N, DIM, 12, 31);
    let vectors = DenseVectors::from_rows(Metric::L2, DIM, &data).unwrap();
    let params = HnswParams {
        quantization,
        ..HnswParams::default()
    };
    let mut index = HnswIndex::build(vectors, params, None).unwrap();
    for id in [5, 77, 1_000] {
        index.delete(id).unwrap();
    }
    index
}

/// Results of unfiltered searches, filtered walks and code scans over a few queries.
fn answers(index: &dyn VectorIndex) -> Vec<Vec<(u32, u32)>> {
    let queries = clustered(8, DIM, 12, 32);
    let allowed: RoaringBitmap = (0..N as u32).filter(|i| i % 7 == 0).collect();
    let filter = IdFilter::Bitmap(&allowed);
    let plain = SearchParams::new(10).with_ef(40);
    let walk = SearchParams {
        exact_filter_threshold: 0,
        binary_filter_share: 0.0,
        ..plain
    };
    let scan = SearchParams {
        exact_filter_threshold: 0,
        binary_filter_share: 1.0,
        ..plain
    };
    let mut out = Vec::new();
    for q in queries.chunks(DIM) {
        for (params, filter) in [
            (&plain, None),
            (&walk, Some(&filter)),
            (&scan, Some(&filter)),
        ] {
            let found = index.search(q, params, filter).unwrap();
            assert_eq!(found.len(), 10);
            out.push(found.iter().map(|n| (n.id, n.distance.to_bits())).collect());
        }
    }
    out
}

fn load(bytes: &[u8], offset: usize, vectors: Option<DenseVectors>) -> HnswIndex {
    match AnyIndex::from_shared(shared(bytes, offset), vectors).unwrap() {
        AnyIndex::Hnsw(h) => *h,
        other => panic!("loaded as {other:?}"),
    }
}

#[test]
fn an_aligned_file_is_used_in_place_and_answers_as_written() {
    for quantization in [Quantization::None, Quantization::Sq8, Quantization::Pq4] {
        let index = build(quantization);
        let want = answers(&index);
        assert!(
            index.binary_codes().is_some(),
            "{quantization:?}: no codes to test"
        );
        assert_eq!(index.mapped_bytes(), 0);
        let name = quantization.name();
        for apart in [false, true] {
            let bytes = index.to_bytes_with(apart);
            let vectors = || apart.then(|| index.dense_vectors().clone());
            let mapped = load(&bytes, 0, vectors());
            // Links (at least 33 slots of 4 bytes a node) and the 1-bit codes are views.
            assert!(
                mapped.mapped_bytes() >= N * 33 * 4 + N * 16,
                "{name}: {} bytes used in place",
                mapped.mapped_bytes()
            );
            // The `pq4` records (each node's links, 128 bytes here, beside its neighbours'
            // codes) are views too.
            let records = if quantization == Quantization::Pq4 {
                N * 128
            } else {
                0
            };
            assert!(
                mapped.mapped_bytes() >= N * 33 * 4 + N * 16 + records,
                "{name}: {} bytes used in place",
                mapped.mapped_bytes()
            );
            assert_eq!(
                mapped.dense_vectors().is_mapped(),
                !apart,
                "{name}: inline vectors are views"
            );
            assert!(mapped.memory_bytes() < index.memory_bytes(), "{name}");
            assert_eq!(answers(&mapped), want, "{name}, apart {apart}: mapped");
            assert_eq!(mapped.to_bytes_with(apart), bytes, "{name}: re-serialised");
            // Misaligned bytes are copied: nothing is a view, the answers are the same.
            let copied = load(&bytes, 1, vectors());
            assert_eq!(copied.mapped_bytes(), 0, "{name}");
            assert!(!copied.dense_vectors().is_mapped(), "{name}");
            assert_eq!(answers(&copied), want, "{name}, apart {apart}: copied");
            // So are bytes that are not kept alive (`from_parts`).
            let decoded = HnswIndex::from_parts(&bytes, vectors()).unwrap();
            assert_eq!(decoded.mapped_bytes(), 0, "{name}");
            assert_eq!(answers(&decoded), want, "{name}, apart {apart}: decoded");
        }
    }
}

#[test]
fn inserting_into_an_index_used_in_place_copies_it_first() {
    for quantization in [Quantization::None, Quantization::Sq8, Quantization::Pq4] {
        let name = quantization.name();
        let bytes = build(quantization).to_bytes();
        let mut mapped = load(&bytes, 0, None);
        let mut decoded = HnswIndex::from_bytes(&bytes).unwrap();
        assert!(mapped.mapped_bytes() > 0, "{name}");
        for v in clustered(50, DIM, 12, 33).chunks(DIM) {
            assert_eq!(
                mapped.insert(v).unwrap(),
                decoded.insert(v).unwrap(),
                "{name}"
            );
        }
        assert!(!mapped.dense_vectors().is_mapped(), "{name}");
        assert_eq!(answers(&mapped), answers(&decoded), "{name}");
        assert_eq!(mapped.to_bytes(), decoded.to_bytes(), "{name}");
    }
}

/// Offset of the level-0 links of a v3 file of an f32 index (no SQ8 range in the header).
fn links_offset(len: usize) -> usize {
    // magic, version, metric, dim, len, m, ef_construction, ef_search, seed, quantization,
    // SQ8 flag, entry point, one level byte a node; then padding to 64.
    (8 + 4 + 1 + 4 + 8 + 4 + 4 + 4 + 8 + 1 + 1 + 8 + len).next_multiple_of(64)
}

fn with_crc(mut bytes: Vec<u8>) -> Vec<u8> {
    let body = bytes.len() - 4;
    let crc = crc32fast::hash(&bytes[..body]);
    bytes[body..].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[test]
fn links_that_do_not_hold_are_errors_even_with_a_valid_checksum() {
    let bytes = build(Quantization::None).to_bytes();
    let at = links_offset(N);
    let m0 = 2 * HnswParams::default().m as u32;
    let count = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap());
    assert!(
        (1..=m0).contains(&count),
        "node 0's count {count} is at {at}"
    );
    let cases: [(usize, u32, &str); 3] = [
        (at, m0 + 1, "neighbours"),              // more neighbours than slots
        (at + 4, N as u32 + 3, "bad neighbour"), // a node that does not exist
        (at + 4, 0, "bad neighbour"),            // node 0 linked to itself
    ];
    for (pos, value, what) in cases {
        let mut b = bytes.clone();
        b[pos..pos + 4].copy_from_slice(&value.to_le_bytes());
        let b = with_crc(b);
        for result in [
            AnyIndex::from_shared(shared(&b, 0), None).map(|_| ()),
            AnyIndex::from_bytes(&b).map(|_| ()),
        ] {
            let e = result.expect_err(what).to_string();
            assert!(e.contains(what), "{e}");
        }
    }
    // A file cut inside its aligned arrays is an error too, mapped or not.
    for cut in [at + 2, bytes.len() / 2, bytes.len() - 8] {
        let b = with_crc(bytes[..cut].to_vec());
        assert!(
            AnyIndex::from_shared(shared(&b, 0), None).is_err(),
            "cut at {cut}"
        );
        assert!(AnyIndex::from_bytes(&b).is_err(), "cut at {cut}");
    }
}
