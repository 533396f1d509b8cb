//! Vectors stored apart from their index (the on-disk layout): every index kind written with
//! `external_vectors` and its vectors as a vectors file loads back — as a zero-copy view of an
//! aligned buffer, as a memory mapping is, or as a checked copy — and answers exactly as the
//! index it was written from; damaged or mismatched vectors files are clear errors.

use std::sync::Arc;

use sextant_core::Metric;
use sextant_index::{
    AnyIndex, DenseVectors, FlatIndex, HnswIndex, HnswParams, IvfPqIndex, IvfPqParams,
    Quantization, SearchParams, SharedBytes, VectorIndex, VECTORS_FILE_HEADER,
};

use crate::clustered;

const N: usize = 3_000;
const DIM: usize = 40;

/// A buffer whose vectors (past the header) start on a 64-byte boundary, like a page-aligned
/// memory mapping.
struct Aligned {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for Aligned {
    fn as_ref(&self) -> &[u8] {
        &self.raw[self.start..self.start + self.len]
    }
}

fn aligned(bytes: &[u8]) -> SharedBytes {
    let mut raw = vec![0u8; bytes.len() + 64];
    let start = (64 - (raw.as_ptr() as usize + VECTORS_FILE_HEADER) % 64) % 64;
    raw[start..start + bytes.len()].copy_from_slice(bytes);
    Arc::new(Aligned {
        raw,
        start,
        len: bytes.len(),
    })
}

fn indexes(metric: Metric, data: &[f32]) -> Vec<AnyIndex> {
    let v = || DenseVectors::from_rows(metric, DIM, data).unwrap();
    let mut out = vec![AnyIndex::Flat(
        FlatIndex::from_rows(metric, DIM, data).unwrap(),
    )];
    for quantization in [Quantization::None, Quantization::Sq8, Quantization::Pq4] {
        let params = HnswParams {
            quantization,
            ..HnswParams::default()
        };
        out.push(AnyIndex::Hnsw(Box::new(
            HnswIndex::build(v(), params, None).unwrap(),
        )));
    }
    out.push(AnyIndex::IvfPq(Box::new(
        IvfPqIndex::build(v(), IvfPqParams::default(), None).unwrap(),
    )));
    out
}

fn answers(index: &dyn VectorIndex, queries: &[f32]) -> Vec<Vec<(u32, u32)>> {
    let p = SearchParams::new(10);
    queries
        .chunks_exact(DIM)
        .map(|q| {
            index
                .search(q, &p, None)
                .unwrap()
                .into_iter()
                .map(|n| (n.id, n.distance.to_bits()))
                .collect()
        })
        .collect()
}

#[test]
fn every_index_kind_loads_with_its_vectors_apart_and_answers_the_same() {
    let data = clustered(N, DIM, 20, 7);
    let queries = clustered(50, DIM, 20, 8);
    for metric in [Metric::Cosine, Metric::Dot, Metric::L2] {
        for index in indexes(metric, &data) {
            let before = answers(&index, &queries);
            let inline = index.to_bytes();
            let apart = index.to_bytes_with(true);
            let file = index.dense_vectors().to_file_bytes();
            // Left out: the f32 vectors (4 bytes a component); an SQ8 walk's codes (one byte a
            // component, padded to 64) are stored in their place.
            assert!(
                apart.len() + N * DIM * 2 <= inline.len(),
                "the index file leaves its vectors out: {} against {}",
                apart.len(),
                inline.len()
            );
            assert_eq!(file.len(), VECTORS_FILE_HEADER + N * DIM.div_ceil(16) * 64);

            // A view: nothing copied, nothing counted as heap.
            let view = DenseVectors::from_file(aligned(&file), false).unwrap();
            assert!(view.is_mapped());
            let loaded = AnyIndex::from_parts(&apart, Some(view)).unwrap();
            assert!(loaded.dense_vectors().is_mapped());
            assert!(
                loaded.memory_bytes() + N * DIM * 4 <= index.memory_bytes(),
                "{metric:?}: {} heap bytes mapped against {} in memory",
                loaded.memory_bytes(),
                index.memory_bytes()
            );
            assert_eq!(answers(&loaded, &queries), before, "{metric:?} view");
            for id in [0, 1, N as u32 - 1] {
                assert_eq!(loaded.vector(id), index.vector(id));
            }

            // A checked copy (a buffer read whole, as a file system without mappings gives).
            let copy = DenseVectors::from_file(Arc::new(file.clone()), true).unwrap();
            assert!(!copy.is_mapped());
            let loaded = AnyIndex::from_parts(&apart, Some(copy)).unwrap();
            assert_eq!(answers(&loaded, &queries), before, "{metric:?} copy");

            // Shared bytes (a mapped index file): IVF-PQ codes used in place, same answers.
            let shared = AnyIndex::from_shared(
                Arc::new(apart.clone()),
                Some(DenseVectors::from_file(aligned(&file), false).unwrap()),
            )
            .unwrap();
            assert_eq!(answers(&shared, &queries), before, "{metric:?} shared");
            if matches!(index, AnyIndex::IvfPq(_)) {
                assert!(shared.mapped_bytes() > 0);
                assert!(shared.memory_bytes() + shared.mapped_bytes() / 2 < index.memory_bytes());
            }
            // Inserts into shared lists copy them first; the file's bytes are untouched.
            let mut grown = shared;
            {
                use sextant_index::VectorIndexMut;
                let id = grown.insert(&queries[..DIM]).unwrap();
                let hit = grown
                    .search(&queries[..DIM], &SearchParams::new(1), None)
                    .unwrap();
                // (An inner product need not rank a vector first against itself.)
                if metric != Metric::Dot {
                    assert_eq!(
                        hit[0].id, id,
                        "{metric:?}: the inserted point is its own nearest"
                    );
                }
                assert_eq!(grown.vector(id).unwrap().len(), DIM);
            }

            // The index without its vectors, or inline vectors given a file, is refused.
            let err = AnyIndex::from_bytes(&apart).unwrap_err().to_string();
            assert!(err.contains("separate vectors file"), "{err}");
            let v = DenseVectors::from_file(aligned(&file), false).unwrap();
            let err = AnyIndex::from_parts(&inline, Some(v))
                .unwrap_err()
                .to_string();
            assert!(err.contains("inline"), "{err}");
        }
    }
}

#[test]
fn a_view_takes_inserts_by_copying_itself_into_memory() {
    use sextant_index::{VectorIndexMut, VectorStorage};
    let data = clustered(200, DIM, 4, 3);
    let flat = FlatIndex::from_rows(Metric::L2, DIM, &data).unwrap();
    let file = flat.dense_vectors().to_file_bytes();
    let view = DenseVectors::from_file(aligned(&file), false).unwrap();
    let mut index = AnyIndex::from_parts(&flat.to_bytes_with(true), Some(view)).unwrap();
    let id = index.insert(&data[..DIM]).unwrap();
    assert_eq!(id, 200);
    assert!(!index.dense_vectors().is_mapped());
    assert_eq!(index.dense_vectors().len(), 201);
    assert_eq!(index.vector(5), flat.vector(5));
}

#[test]
fn damaged_or_mismatched_vectors_files_are_errors() {
    let data = clustered(300, DIM, 4, 5);
    let flat = FlatIndex::from_rows(Metric::Cosine, DIM, &data).unwrap();
    let file = flat.dense_vectors().to_file_bytes();
    let apart = flat.to_bytes_with(true);
    let open = |bytes: &[u8], verify| DenseVectors::from_file(Arc::new(bytes.to_vec()), verify);

    let mut header = file.clone();
    header[17] ^= 1;
    assert!(open(&header, false)
        .unwrap_err()
        .to_string()
        .contains("header checksum"));
    let mut magic = file.clone();
    magic[0] = b'X';
    assert!(open(&magic, false)
        .unwrap_err()
        .to_string()
        .contains("magic"));
    let short = &file[..file.len() - 64];
    assert!(open(short, false)
        .unwrap_err()
        .to_string()
        .contains("announces"));
    assert!(open(&file[..100], false).is_err());

    // A flipped bit in a vector: the header check cannot see it, the verified open and
    // `verify_file` do.
    let mut body = file.clone();
    body[VECTORS_FILE_HEADER + 100] ^= 0x10;
    assert!(open(&body, false).is_ok());
    assert!(open(&body, true)
        .unwrap_err()
        .to_string()
        .contains("body checksum"));
    assert!(DenseVectors::verify_file(&body).is_err());
    DenseVectors::verify_file(&file).unwrap();

    // Another space's vectors.
    let other = FlatIndex::from_rows(Metric::L2, DIM, &data).unwrap();
    let wrong =
        DenseVectors::from_file(aligned(&other.dense_vectors().to_file_bytes()), false).unwrap();
    let err = AnyIndex::from_parts(&apart, Some(wrong))
        .unwrap_err()
        .to_string();
    assert!(err.contains("the index expects"), "{err}");
}
