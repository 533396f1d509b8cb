//! IVF-PQ contracts, for each code layout (4- and 8-bit codes, with and without an OPQ
//! rotation): recall after rescoring against exact search for every metric it supports, the
//! knobs (more lists and more rescoring never lose recall), filters and deletes, inserts after
//! training, persistence, and clear errors.

use roaring::RoaringBitmap;
use sextant_core::Metric;
use sextant_index::{
    AnyIndex, DenseVectors, IdFilter, IndexError, IvfPqIndex, IvfPqParams, SearchParams,
    VectorIndex, VectorIndexMut,
};

use crate::clustered;
use crate::hnsw_contracts::{exact, ids, recall, search_all as run};

const N: usize = 6_000;
const DIM: usize = 32;
const QUERIES: usize = 200;
const K: usize = 10;
const METRICS: [Metric; 3] = [Metric::Cosine, Metric::Dot, Metric::L2];
/// Bits per code and OPQ.
const LAYOUTS: [(usize, bool); 4] = [(4, false), (4, true), (8, false), (8, true)];

fn layout((bits, opq): (usize, bool)) -> IvfPqParams {
    IvfPqParams {
        bits,
        opq,
        ..IvfPqParams::default()
    }
}

fn build(metric: Metric, data: &[f32], params: IvfPqParams) -> IvfPqIndex {
    let vectors = DenseVectors::from_rows(metric, DIM, data).unwrap();
    IvfPqIndex::build(vectors, params, None).unwrap()
}

/// Defaults (about √n lists, 16 probed, 100 rescored): recall@10 ≥ 0.95 for cosine, inner
/// product and L2; scanning every list with deep rescoring reaches ≥ 0.99; recall never falls
/// as `nprobe` or the rescoring depth grows.
#[test]
fn recall_after_rescoring_meets_contract_for_every_metric() {
    let data = clustered(N, DIM, 40, 1);
    let queries = clustered(QUERIES, DIM, 40, 2);
    for (metric, l) in METRICS.into_iter().flat_map(|m| LAYOUTS.map(|l| (m, l))) {
        let truth = exact(metric, &data, &queries, None);
        let index = build(metric, &data, layout(l));
        let (nlist, m) = (index.params().nlist, index.params().m);
        let metric = format!("{metric:?} {l:?}");
        assert_eq!(
            (nlist, m * l.0),
            (77, 32),
            "about √6000 lists, ⌈32 / 4⌉ 4-bit or ⌈32 / 8⌉ 8-bit sub-quantisers"
        );
        assert_eq!(index.code_bytes(), 4);
        let r = recall(&truth, &run(&index, &queries, &SearchParams::new(K), None));
        assert!(r >= 0.95, "{metric}: recall {r}");
        let mut last = 0.0;
        for (nprobe, ef) in [(1, 10), (4, 50), (16, 100), (77, 400)] {
            let p = SearchParams::new(K).with_nprobe(nprobe).with_ef(ef);
            let r = recall(&truth, &run(&index, &queries, &p, None));
            assert!(
                r >= last - 0.005,
                "{metric} nprobe {nprobe} ef {ef}: {r} after {last}"
            );
            last = r;
        }
        assert!(last >= 0.99, "{metric}: every list, 400 rescored: {last}");
    }
}

/// Filters restrict results, with the exact scan under the threshold equal to Flat's, and
/// deleted offsets never come back.
#[test]
fn filters_and_deletes_are_honoured() {
    for l in LAYOUTS {
        filters_and_deletes_are_honoured_for(l);
    }
}

fn filters_and_deletes_are_honoured_for(l: (usize, bool)) {
    let data = clustered(N, DIM, 40, 3);
    let queries = clustered(50, DIM, 40, 4);
    let mut index = build(Metric::L2, &data, layout(l));
    let allowed: RoaringBitmap = (0..N as u32).filter(|id| id % 10 == 3).collect();
    let f = IdFilter::Bitmap(&allowed);
    // The walk over lists (threshold 0): every result allowed, good recall.
    let walk = SearchParams {
        exact_filter_threshold: 0,
        ..SearchParams::new(K).with_nprobe(40).with_ef(200)
    };
    let truth = exact(Metric::L2, &data, &queries, Some(&f));
    for (name, filter) in [
        ("bitmap", f),
        ("predicate", IdFilter::Predicate(&|id| id % 10 == 3)),
    ] {
        let got = run(&index, &queries, &walk, Some(&filter));
        assert!(got.iter().flatten().all(|id| id % 10 == 3), "{name} {l:?}");
        let r = recall(&truth, &got);
        assert!(r >= 0.95, "{name} {l:?}: filtered recall {r}");
    }
    // Under the threshold: exactly Flat's answer.
    let scan = SearchParams::new(K);
    assert_eq!(run(&index, &queries, &scan, Some(&f)), truth);
    // Deletes.
    let gone: Vec<u32> = run(&index, &queries[..DIM], &SearchParams::new(K), None).remove(0);
    for &id in &gone {
        assert!(index.delete(id).unwrap());
    }
    assert!(
        !index.delete(gone[0]).unwrap(),
        "second delete reports false"
    );
    assert_eq!(index.deleted_count(), gone.len());
    let after = run(&index, &queries[..DIM], &SearchParams::new(K), None).remove(0);
    assert!(
        after.iter().all(|id| !gone.contains(id)),
        "{after:?} ∩ {gone:?}"
    );
    assert_eq!(after.len(), K);
    assert!(matches!(
        index.delete(N as u32),
        Err(IndexError::UnknownPoint(_))
    ));
}

/// Vectors inserted after training are encoded with the trained quantisers and found.
#[test]
fn inserts_after_training_are_found() {
    for l in LAYOUTS {
        inserts_after_training_are_found_for(l);
    }
}

fn inserts_after_training_are_found_for(l: (usize, bool)) {
    let data = clustered(N + 500, DIM, 40, 5);
    let mut index = build(Metric::Cosine, &data[..N * DIM], layout(l));
    for row in data[N * DIM..].chunks(DIM) {
        index.insert(row).unwrap();
    }
    assert_eq!(index.len(), N + 500);
    let mut found = 0;
    for (i, row) in data[N * DIM..].chunks(DIM).enumerate() {
        let got = ids(index.search(row, &SearchParams::new(1), None).unwrap());
        found += usize::from(
            got == [(N + i) as u32] || index.vector(got[0]) == index.vector((N + i) as u32),
        );
    }
    assert!(
        found >= 490,
        "{l:?}: {found} of 500 inserted vectors are their own nearest neighbour"
    );
}

/// Bytes round-trip exactly and load through `AnyIndex`; corruption, truncation and a future
/// version are errors.
#[test]
fn round_trip_and_corruption() {
    for l in LAYOUTS {
        round_trip_and_corruption_for(l);
    }
}

fn round_trip_and_corruption_for(l: (usize, bool)) {
    let data = clustered(2_000, DIM, 20, 6);
    let mut index = build(
        Metric::Dot,
        &data,
        IvfPqParams {
            nlist: 20,
            m: 16,
            ..layout(l)
        },
    );
    index.delete(7).unwrap();
    let bytes = index.to_bytes();
    let back = match AnyIndex::from_bytes(&bytes).unwrap() {
        AnyIndex::IvfPq(i) => *i,
        other => panic!("loaded as {other:?}"),
    };
    assert_eq!(back.to_bytes(), bytes);
    assert_eq!(back.params(), index.params());
    assert!(back.is_deleted(7));
    let queries = clustered(20, DIM, 20, 7);
    let p = SearchParams::new(K);
    assert_eq!(
        run(&back, &queries, &p, None),
        run(&index, &queries, &p, None)
    );
    for at in [20, bytes.len() / 2, bytes.len() - 1] {
        let mut bad = bytes.clone();
        bad[at] ^= 0x40;
        assert!(AnyIndex::from_bytes(&bad).is_err(), "flipped byte {at}");
    }
    assert!(AnyIndex::from_bytes(&bytes[..bytes.len() / 3]).is_err());
    let mut future = bytes.clone();
    future[8] = 99;
    assert!(AnyIndex::from_bytes(&future).is_err());
}

/// Bad settings and inputs are errors naming the problem, never panics.
#[test]
fn clear_errors() {
    let data = clustered(500, DIM, 5, 8);
    let v = || DenseVectors::from_rows(Metric::L2, DIM, &data).unwrap();
    let err = |r: Result<IvfPqIndex, IndexError>| r.unwrap_err().to_string();
    let l1 = DenseVectors::from_rows(Metric::L1, DIM, &data).unwrap();
    assert!(err(IvfPqIndex::build(l1, IvfPqParams::default(), None)).contains("l1"));
    let few = DenseVectors::from_rows(Metric::L2, DIM, &data[..10 * DIM]).unwrap();
    assert!(err(IvfPqIndex::build(few, IvfPqParams::default(), None)).contains("at least"));
    // 8-bit codes train 256 centroids per sub-space.
    let few = DenseVectors::from_rows(Metric::L2, DIM, &data[..200 * DIM]).unwrap();
    let e = err(IvfPqIndex::build(few, layout((8, false)), None));
    assert!(e.contains("8-bit") && e.contains("at least 256"), "{e}");
    for (params, field) in [
        (
            IvfPqParams {
                nlist: 501,
                ..IvfPqParams::default()
            },
            "at least",
        ),
        (
            IvfPqParams {
                m: 33,
                ..IvfPqParams::default()
            },
            "sub-quantisers",
        ),
        (
            IvfPqParams {
                m: 33,
                ..layout((8, true))
            },
            "sub-quantisers",
        ),
        (
            IvfPqParams {
                bits: 6,
                ..IvfPqParams::default()
            },
            "4 or 8 bits",
        ),
        (
            IvfPqParams {
                nprobe: 0,
                ..IvfPqParams::default()
            },
            "nprobe",
        ),
        (
            IvfPqParams {
                rescore: 0,
                ..IvfPqParams::default()
            },
            "rescore",
        ),
    ] {
        let e = err(IvfPqIndex::build(v(), params, None));
        assert!(e.contains(field), "{params:?}: {e}");
    }
    let index = IvfPqIndex::build(v(), IvfPqParams::default(), None).unwrap();
    let q = &data[..DIM];
    for (p, what) in [
        (SearchParams::new(0), "k"),
        (SearchParams::new(5).with_nprobe(0), "nprobe"),
        (SearchParams::new(5).with_ef(0), "ef"),
    ] {
        let e = index.search(q, &p, None).unwrap_err().to_string();
        assert!(e.contains(what), "{what}: {e}");
    }
    assert!(index.search(&q[..5], &SearchParams::new(5), None).is_err());
    assert!(index
        .search(&[f32::NAN; DIM], &SearchParams::new(5), None)
        .is_err());
    // More lists asked than exist: all of them are scanned.
    assert_eq!(
        index
            .search(q, &SearchParams::new(5).with_nprobe(10_000), None)
            .unwrap()
            .len(),
        5
    );
}
