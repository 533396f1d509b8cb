//! Vectors on disk (`on_disk` spaces): for every index kind, every operation that reads or
//! writes points gives the same answers as the same collection held in memory — search with
//! and without a filter, get with vectors, count, scroll, delete, overwrite, flush, merge,
//! reopen, snapshot and restore — while the flushed vectors live in `vectors-<i>.f32` files,
//! used memory-mapped, and out of the heap the collection accounts for.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sextant_core::{Filter, Metric, PointId};
use sextant_engine::{Collection, CollectionConfig, Database, IndexSpec, Scope, SearchRequest};

use crate::engine::{brute, ids, point, random_vec, schema};

const N: usize = 3_000;
const DIM: usize = 16;

fn on_disk_schema(index: IndexSpec, on_disk: bool) -> sextant_engine::Schema {
    let mut s = schema(DIM, Metric::L2, index);
    s.spaces[0].on_disk = on_disk;
    s
}

fn vector_files(c: &Collection) -> usize {
    let segs = c.dir().join("segments");
    std::fs::read_dir(&segs)
        .unwrap()
        .map(|d| d.unwrap().path())
        .filter(|d| d.join("vectors-0.f32").exists())
        .count()
}

fn search(c: &Collection, q: &[f32], filter: Option<Filter>) -> Vec<u64> {
    let r = c
        .search(SearchRequest {
            vector: q.to_vec(),
            k: 10,
            ef: Some(200),
            filter,
            exact_threshold: Some(0),
            ..Default::default()
        })
        .unwrap();
    ids(&r.hits)
}

fn stored_vector(c: &Collection, id: u64) -> Vec<f32> {
    let got = c
        .get(&Scope::Unscoped, &[PointId::Num(id)], false, true)
        .unwrap();
    serde_json::from_value(got[0].vectors.as_ref().unwrap()["default"].clone()).unwrap()
}

#[test]
fn every_operation_matches_the_in_memory_twin_for_every_index_kind() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut vecs: Vec<Vec<f32>> = (0..N).map(|_| random_vec(&mut rng, DIM)).collect();
    let buckets: Vec<u64> = (0..N).map(|_| rng.gen_range(0..10)).collect();
    let queries: Vec<Vec<f32>> = (0..20).map(|_| random_vec(&mut rng, DIM)).collect();
    let f = Filter::from_json_str(r#"{"must":[{"key":"bucket","range":{"lt":4}}]}"#).unwrap();
    let specs = [
        IndexSpec::Flat,
        IndexSpec::Hnsw {
            m: 16,
            ef_construction: 100,
            quantization: sextant_engine::Quantization::Auto,
        },
        IndexSpec::Hnsw {
            m: 16,
            ef_construction: 100,
            quantization: sextant_engine::Quantization::None,
        },
        IndexSpec::Hnsw {
            m: 16,
            ef_construction: 100,
            quantization: sextant_engine::Quantization::Sq8,
        },
        IndexSpec::IvfPq {
            nlist: 0,
            m: 8,
            nprobe: 32,
            bits: 4,
            opq: false,
        },
        IndexSpec::IvfPq {
            nlist: 0,
            m: 8,
            nprobe: 32,
            bits: 8,
            opq: true,
        },
    ];
    for (k, spec) in specs.into_iter().enumerate() {
        let dir = tempfile::tempdir().unwrap();
        let config = CollectionConfig {
            flush_points: 100_000,
            ..CollectionConfig::default()
        };
        let before: Vec<Vec<u64>>;
        {
            let db = Database::open(dir.path(), config).unwrap();
            let disk = db
                .create_collection("disk", on_disk_schema(spec, true))
                .unwrap();
            let mem = db
                .create_collection("mem", on_disk_schema(spec, false))
                .unwrap();
            assert!(disk.schema().spaces[0].on_disk);
            for c in [&disk, &mem] {
                let pts = (0..N)
                    .map(|i| point(i as u64, vecs[i].clone(), json!({"bucket": buckets[i]})))
                    .collect();
                c.upsert(&Scope::Unscoped, pts).unwrap();
                c.optimize().unwrap();
            }
            assert_eq!(
                vector_files(&disk),
                1,
                "{spec:?}: the flushed segment's vectors file"
            );
            assert_eq!(vector_files(&mem), 0);
            let (pd, pm) = (disk.info().memory_parts, mem.info().memory_parts);
            assert_eq!(pd.vectors, 0, "{spec:?}: no f32 vector in memory");
            assert!(pd.vectors_on_disk >= (N * DIM * 4) as u64, "{pd:?}");
            assert!(
                pm.vectors >= (N * DIM * 4) as u64 && pm.vectors_on_disk == 0,
                "{pm:?}"
            );
            assert!(disk.info().memory_bytes + (N * DIM * 4) as u64 <= mem.info().memory_bytes);
            // Disk by part: the vectors file on one side, inline vectors in the index file on
            // the other; the parts add up to the total.
            let (dd, dm) = (disk.info().disk_parts, mem.info().disk_parts);
            assert!(
                dd.vectors >= (N * DIM * 4) as u64 && dm.vectors == 0,
                "{dd:?} {dm:?}"
            );
            assert!(dm.index >= (N * DIM * 4) as u64, "{dm:?}");
            assert!(dd.points > 0 && dd.payloads > 0, "{dd:?}");
            let info = disk.info();
            let d = info.disk_parts;
            assert_eq!(
                d.vectors
                    + d.index
                    + d.payloads
                    + d.points
                    + d.sparse
                    + d.tombstones
                    + d.wal
                    + d.other,
                info.disk_bytes
            );

            // Reads.
            for id in [0, 1, 1234, N as u64 - 1] {
                assert_eq!(
                    stored_vector(&disk, id),
                    vecs[id as usize],
                    "{spec:?} get {id}"
                );
            }
            assert_eq!(
                disk.count(&Scope::Unscoped, Some(&f)).unwrap(),
                mem.count(&Scope::Unscoped, Some(&f)).unwrap()
            );
            let page = |c: &Collection| {
                ids(&c
                    .scroll(&Scope::Unscoped, Some(&f), 50, None, None, true)
                    .unwrap()
                    .points)
            };
            assert_eq!(page(&disk), page(&mem));
            let (mut hit, mut hit_f) = (0, 0);
            for q in &queries {
                let got = search(&disk, q, None);
                let truth = brute(&vecs, |_| true, q, 10);
                if k == 0 {
                    assert_eq!(got, truth, "flat on disk is exact");
                    assert_eq!(search(&mem, q, None), got);
                }
                hit += got.iter().filter(|i| truth.contains(i)).count();
                let got = search(&disk, q, Some(f.clone()));
                let truth = brute(&vecs, |i| buckets[i] < 4, q, 10);
                hit_f += got.iter().filter(|i| truth.contains(i)).count();
            }
            let (r, rf) = (hit as f64 / 200.0, hit_f as f64 / 200.0);
            assert!(r >= 0.9 && rf >= 0.9, "{spec:?}: recall {r}, filtered {rf}");

            // Writes: delete, overwrite, then flush and merge into a new on-disk segment.
            let gone: Vec<u64> = search(&disk, &queries[0], None);
            for c in [&disk, &mem] {
                c.delete(
                    &Scope::Unscoped,
                    gone.iter().map(|&i| PointId::Num(i)).collect(),
                )
                .unwrap();
            }
            assert!(search(&disk, &queries[0], None)
                .iter()
                .all(|i| !gone.contains(i)));
            let moved: Vec<usize> = (100..120).collect();
            for &i in &moved {
                vecs[i] = queries[1].iter().map(|x| x + 0.001 * i as f32).collect();
            }
            for c in [&disk, &mem] {
                let pts = moved
                    .iter()
                    .map(|&i| point(i as u64, vecs[i].clone(), json!({"bucket": buckets[i]})))
                    .collect();
                c.upsert(&Scope::Unscoped, pts).unwrap();
            }
            assert_eq!(
                stored_vector(&disk, 105),
                vecs[105],
                "the overwrite, unflushed"
            );
            disk.optimize().unwrap();
            assert_eq!(
                vector_files(&disk),
                1,
                "{spec:?}: merged into one on-disk segment"
            );
            assert_eq!(
                stored_vector(&disk, 105),
                vecs[105],
                "the overwrite, merged"
            );
            let top = search(&disk, &queries[1], None);
            assert!(
                top.iter()
                    .filter(|&&i| (100..120).contains(&(i as usize)))
                    .count()
                    >= 9,
                "{spec:?}: the moved points are the nearest: {top:?}"
            );
            assert_eq!(
                disk.count(&Scope::Unscoped, None).unwrap(),
                (N - gone.len()) as u64
            );
            before = queries.iter().map(|q| search(&disk, q, None)).collect();

            // Snapshot and restore: the restored collection keeps its vectors on disk.
            let snap = db.create_snapshot("disk", None, &mut |_, _| {}).unwrap();
            db.restore_snapshot(&snap.path, "restored", false, &mut |_, _| {})
                .unwrap();
            let restored = db.collection("restored").unwrap();
            assert_eq!(vector_files(&restored), 1);
            let again: Vec<Vec<u64>> = queries.iter().map(|q| search(&restored, q, None)).collect();
            assert_eq!(again, before, "{spec:?}: restored");
        }
        let db = Database::open(dir.path(), config).unwrap();
        let disk = db.collection("disk").unwrap();
        let again: Vec<Vec<u64>> = queries.iter().map(|q| search(&disk, q, None)).collect();
        assert_eq!(again, before, "{spec:?}: reopened");
        assert_eq!(disk.info().memory_parts.vectors, 0);
        assert_eq!(stored_vector(&disk, 105), vecs[105]);
        assert_eq!(stored_vector(&disk, 2999), vecs[2999]);
    }
}

/// An HNSW space's `quantization` is kept in its schema across reopening and decides what
/// its segments hold: `none` keeps no 8-bit codes (one byte per dimension per point less than
/// `auto` and `sq8`), `pq4` keeps its neighbours' 4-bit codes beside every node's links (at least
/// 16 bytes per dimension per point more than `none`), and `sq8` and `pq4` are refused where the
/// metric has no codes (l1), naming them.
#[test]
fn hnsw_quantization_is_kept_and_decides_the_codes() {
    use sextant_engine::Quantization;
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(13);
    let vecs: Vec<Vec<f32>> = (0..N).map(|_| random_vec(&mut rng, DIM)).collect();
    let spec = |quantization| IndexSpec::Hnsw {
        m: 16,
        ef_construction: 100,
        quantization,
    };
    let kinds = [
        Quantization::Auto,
        Quantization::None,
        Quantization::Sq8,
        Quantization::Pq4,
    ];
    let mut index_bytes = Vec::new();
    {
        let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
        for q in kinds {
            let c = db
                .create_collection(q.name(), on_disk_schema(spec(q), false))
                .unwrap();
            let pts = (0..N)
                .map(|i| point(i as u64, vecs[i].clone(), json!({})))
                .collect();
            c.upsert(&Scope::Unscoped, pts).unwrap();
            c.optimize().unwrap();
            index_bytes.push(c.info().memory_parts.index);
        }
        for q in [Quantization::Sq8, Quantization::Pq4] {
            let err = db
                .create_collection("l1", schema(DIM, Metric::L1, spec(q)))
                .unwrap_err()
                .to_string();
            assert!(err.contains(q.name()) && err.contains("l1"), "{err}");
        }
        db.create_collection("l1", schema(DIM, Metric::L1, spec(Quantization::Auto)))
            .unwrap();
    }
    let codes = (N * DIM) as u64;
    assert!(
        index_bytes[1] + codes <= index_bytes[0]
            && index_bytes[0] == index_bytes[2]
            && index_bytes[1] + 16 * codes <= index_bytes[3],
        "index bytes auto/none/sq8/pq4: {index_bytes:?}"
    );
    let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
    for (q, bytes) in kinds.into_iter().zip(&index_bytes) {
        let c = db.collection(q.name()).unwrap();
        assert_eq!(c.schema().spaces[0].index, spec(q), "reopened");
        // Reopened, the index is used in place from its file's mapping (links and codes):
        // the same structures, now mostly in the page cache instead of the heap.
        let parts = c.info().memory_parts;
        assert!(
            parts.index < *bytes && parts.index_mapped > 0 && parts.vectors == 0,
            "{q:?} reopened, {bytes} index bytes before: {parts:?}"
        );
        let mut hit = 0;
        for v in vecs.iter().take(20) {
            let truth = brute(&vecs, |_| true, v, 10);
            hit += search(&c, v, None)
                .iter()
                .filter(|i| truth.contains(i))
                .count();
        }
        assert!(hit >= 190, "{q:?}: {hit} of 200");
    }
}

#[test]
fn on_disk_is_refused_for_an_encrypted_collection_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
    db.set_master_key(Some(sextant_engine::MasterKey::from_bytes([7; 32])));
    let err = db
        .create_collection_with("enc", on_disk_schema(IndexSpec::Flat, true), true)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("on_disk") && err.contains("encrypted"),
        "{err}"
    );
    assert!(db.list_collections().unwrap().is_empty());
}

/// A damaged vectors file is an error naming the file when the collection opens (header) —
/// never a panic or wrong answers from a file of another shape.
#[test]
fn a_damaged_vectors_file_header_fails_the_open_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    {
        let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
        let c = db
            .create_collection("disk", on_disk_schema(IndexSpec::Flat, true))
            .unwrap();
        let pts = (0..300)
            .map(|i| point(i, random_vec(&mut rng, DIM), json!({})))
            .collect();
        c.upsert(&Scope::Unscoped, pts).unwrap();
        c.optimize().unwrap();
    }
    let segs = dir.path().join("collections/disk/segments");
    let seg = std::fs::read_dir(&segs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let file = seg.join("vectors-0.f32");
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[20] ^= 1;
    std::fs::write(&file, &bytes).unwrap();
    let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
    let err = db.collection("disk").unwrap_err().to_string();
    assert!(err.contains("vectors-0.f32"), "{err}");
    bytes[20] ^= 1;
    bytes.truncate(bytes.len() - 64);
    std::fs::write(&file, &bytes).unwrap();
    let err = db.collection("disk").unwrap_err().to_string();
    assert!(err.contains("vectors-0.f32"), "{err}");
}

/// `nprobe` at search time: more lists never lose recall, scanning every list with deep
/// rescoring is exact on this data, and it is refused (naming it) for a space of another
/// index and when zero.
#[test]
fn nprobe_per_search_is_honoured_or_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
    let spec = IndexSpec::IvfPq {
        nlist: 64,
        m: 4,
        nprobe: 1,
        bits: 4,
        opq: false,
    };
    let c = db
        .create_collection("ivf", on_disk_schema(spec, true))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(21);
    let vecs: Vec<Vec<f32>> = (0..N).map(|_| random_vec(&mut rng, DIM)).collect();
    let pts = (0..N)
        .map(|i| point(i as u64, vecs[i].clone(), json!({})))
        .collect();
    c.upsert(&Scope::Unscoped, pts).unwrap();
    c.optimize().unwrap();
    let queries: Vec<Vec<f32>> = (0..30).map(|_| random_vec(&mut rng, DIM)).collect();
    let recall = |nprobe: Option<usize>| {
        let mut hit = 0;
        for q in &queries {
            let r = c
                .search(SearchRequest {
                    vector: q.clone(),
                    k: 10,
                    ef: Some(1000),
                    nprobe,
                    exact_threshold: Some(0),
                    ..Default::default()
                })
                .unwrap();
            let truth = brute(&vecs, |_| true, q, 10);
            hit += ids(&r.hits).iter().filter(|i| truth.contains(i)).count();
        }
        hit as f64 / 300.0
    };
    let (one, some, all) = (recall(None), recall(Some(8)), recall(Some(64)));
    assert!(one < some && some <= all, "{one} {some} {all}");
    assert!(all >= 0.999, "every list, 1000 rescored: {all}");
    let err = |nprobe, c: &Collection| {
        c.search(SearchRequest {
            vector: queries[0].clone(),
            k: 10,
            nprobe: Some(nprobe),
            ..Default::default()
        })
        .unwrap_err()
        .to_string()
    };
    assert!(err(0, &c).contains("nprobe"));
    let hnsw = db
        .create_collection("hnsw", on_disk_schema(IndexSpec::default(), false))
        .unwrap();
    let e = err(4, &hnsw);
    assert!(e.contains("nprobe") && e.contains("hnsw"), "{e}");
}
