//! The index advisor: it samples only live vectors (across flushed segments, the mutable one
//! and deletes), measures every layout with exact ground truth, projects memory and speed by
//! its stated models, recommends within the budget (or says why it cannot), and refuses bad
//! requests naming the field.

use std::collections::HashSet;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sextant_core::{Metric, PointId};
use sextant_engine::advise::{AdviseRequest, LayoutReport};
use sextant_engine::{CollectionConfig, Database, IndexSpec, Schema, Scope, SpaceSpec};

use crate::engine::{point, schema};

const DIM: usize = 32;

/// Points around 40 centres: structure an index can use, like embeddings have.
fn clustered(n: usize, seed: u64) -> Vec<Vec<f32>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let centres: Vec<Vec<f32>> = (0..40)
        .map(|_| (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect())
        .collect();
    (0..n)
        .map(|i| {
            centres[i % 40]
                .iter()
                .map(|c| c + rng.gen_range(-0.15..0.15))
                .collect()
        })
        .collect()
}

fn request() -> AdviseRequest {
    AdviseRequest {
        sample: 2_000,
        queries: 60,
        ..AdviseRequest::default()
    }
}

fn by_flags<'a>(layouts: &'a [LayoutReport], flags: &str) -> &'a LayoutReport {
    layouts
        .iter()
        .find(|l| l.create_flags == flags)
        .unwrap_or_else(|| panic!("no layout {flags}"))
}

#[test]
fn advice_is_measured_projected_and_within_the_budget() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectionConfig {
        flush_points: 1_000,
        background_merge: false,
        ..CollectionConfig::default()
    };
    let db = Database::open(dir.path(), config).unwrap();
    let c = db
        .create_collection("c", schema(DIM, Metric::L2, IndexSpec::default()))
        .unwrap();
    let vecs = clustered(3_000, 1);
    let pts = (0..vecs.len())
        .map(|i| point(i as u64, vecs[i].clone(), json!({"bucket": i % 10})))
        .collect();
    c.upsert(&Scope::Unscoped, pts).unwrap();
    // 500 deleted: none of them may be sampled.
    c.delete(&Scope::Unscoped, (0..500).map(PointId::Num).collect())
        .unwrap();
    let live: HashSet<Vec<u32>> = vecs[500..]
        .iter()
        .map(|v| v.iter().map(|x| x.to_bits()).collect())
        .collect();
    let sample = c.sample_vectors(0, 10_000, 7);
    assert_eq!(sample.len(), 2_500, "every live vector once");
    let distinct: HashSet<Vec<u32>> = sample
        .iter()
        .map(|v| v.iter().map(|x| x.to_bits()).collect())
        .collect();
    assert_eq!(distinct, live, "exactly the live vectors");
    assert_eq!(c.sample_vectors(0, 100, 7), c.sample_vectors(0, 100, 7));
    assert_ne!(c.sample_vectors(0, 100, 7), c.sample_vectors(0, 100, 8));

    let mut stages = Vec::new();
    let r = c
        .advise(&request(), &mut |done, total, what| {
            stages.push((done, total, what.to_string()))
        })
        .unwrap();
    assert_eq!((r.live_points, r.points), (2_500, 2_500));
    assert_eq!(
        (r.sample, r.queries, r.queries_from),
        (2_000, 60, "held-out")
    );
    // flat, hnsw f32, hnsw 8-bit and 4-bit neighbour codes (memory, disk), five ivf_pq
    // (memory, disk): 4-bit codes at three sizes, 8-bit codes, 4-bit codes after OPQ.
    assert_eq!(r.layouts.len(), 16);
    assert_eq!(stages.first().map(|s| (s.0, s.1)), Some((0, 9)));
    assert_eq!(stages.last().map(|s| (s.0, s.1)), Some((9, 9)));
    let flags: Vec<&str> = r.layouts.iter().map(|l| l.create_flags.as_str()).collect();
    for want in [
        "--index ivf_pq --pq-m 4 --pq-bits 8",
        "--index ivf_pq --pq-m 8 --opq",
    ] {
        assert!(flags.contains(&want), "{want} not in {flags:?}");
    }
    for l in &r.layouts {
        assert!(!l.sweep.is_empty(), "{}", l.layout);
        for m in &l.sweep {
            assert!((0.0..=1.0).contains(&m.recall) && m.qps > 0.0, "{l:?}");
        }
        // Planned for more points than the sample (2,500 live, 2,000 sampled), a graph aims
        // halfway from the target to 1; the others at the target.
        let graph = matches!(l.index, IndexSpec::Hnsw { .. });
        assert_eq!(l.aimed_recall, if graph { 0.975 } else { 0.95 }, "{l:?}");
        if let Some(m) = l.chosen {
            assert!(m.recall >= 0.95 && l.sweep.contains(&m));
            let aim = if l.sweep.iter().any(|o| o.recall >= l.aimed_recall) {
                l.aimed_recall
            } else {
                0.95
            };
            assert!(m.recall >= aim, "{l:?}");
            assert!(l.sweep.iter().all(|o| o.recall < aim || o.qps <= m.qps));
        } else {
            assert!(l.sweep.iter().all(|o| o.recall < 0.95), "{l:?}");
        }
        assert!(l.ram_bytes_per_vector > 0.0 && l.disk_bytes_per_vector > 0.0);
    }
    let flat = by_flags(&r.layouts, "--index flat");
    assert_eq!(flat.sweep.len(), 1);
    assert_eq!(
        flat.sweep[0].recall, 1.0,
        "the exact scan is the ground truth"
    );
    // Vectors on disk leave the f32 rows (32 floats, one 128-byte row each) out of RAM.
    for (mem, disk) in [
        (
            "--index hnsw --quantization sq8",
            "--index hnsw --quantization sq8 --on-disk",
        ),
        (
            "--index ivf_pq --pq-m 8",
            "--index ivf_pq --pq-m 8 --on-disk",
        ),
    ] {
        let (m, d) = (by_flags(&r.layouts, mem), by_flags(&r.layouts, disk));
        assert!(
            (m.ram_bytes_per_vector - d.ram_bytes_per_vector - 128.0).abs() < 1.0,
            "{mem}: {} against {}",
            m.ram_bytes_per_vector,
            d.ram_bytes_per_vector
        );
        assert_eq!(m.sweep, d.sweep, "one build, measured once");
    }
    // The 8-bit walk keeps its codes beside the f32 vectors.
    let f32_walk = by_flags(&r.layouts, "--index hnsw --quantization none");
    let sq8_walk = by_flags(&r.layouts, "--index hnsw --quantization sq8");
    assert!(sq8_walk.ram_bytes_per_vector >= f32_walk.ram_bytes_per_vector + DIM as f64);
    // The 4-bit walk keeps its neighbours' codes beside each node's links: 32 links of DIM
    // 4-bit codes.
    let pq4_walk = by_flags(&r.layouts, "--index hnsw --quantization pq4");
    assert_eq!(pq4_walk.layout, "hnsw, 4-bit neighbour-code walk");
    assert!(pq4_walk.ram_bytes_per_vector >= f32_walk.ram_bytes_per_vector + 16.0 * DIM as f64);
    // The recommendation reaches the target; on clustered data something approximate does,
    // and with no budget nothing is excluded.
    let best = &r.layouts[r.recommended.expect("a recommendation")];
    assert!(best.chosen.unwrap().recall >= 0.95 && best.fits_budget.is_none());
    assert!(r
        .layouts
        .iter()
        .all(|l| l.projected_qps.unwrap_or(0.0) <= best.projected_qps.unwrap()));

    // A budget between the on-disk IVF layouts and the rest: the advice fits it.
    let ivf_disk = by_flags(&r.layouts, "--index ivf_pq --pq-m 4 --on-disk").ram_bytes;
    let budget = ivf_disk + 1;
    let tight = c
        .advise(
            &AdviseRequest {
                memory_budget: Some(budget),
                ..request()
            },
            &mut |_, _, _| {},
        )
        .unwrap();
    let pick = &tight.layouts[tight.recommended.expect("the small IVF fits")];
    assert!(pick.ram_bytes <= budget && pick.fits_budget == Some(true));
    assert!(tight
        .layouts
        .iter()
        .all(|l| l.fits_budget == Some(l.ram_bytes <= budget)));
    // A budget nothing fits: no recommendation, and the reason names the smallest need.
    let none = c
        .advise(
            &AdviseRequest {
                memory_budget: Some(1_000),
                ..request()
            },
            &mut |_, _, _| {},
        )
        .unwrap();
    assert_eq!(none.recommended, None);
    assert!(
        none.reason.contains("no layout fits the budget"),
        "{}",
        none.reason
    );

    // Planning for 100x the points: memory grows with them, a flat scan slows down in
    // proportion, and the sample's own figures stay as measured.
    let big = c
        .advise(
            &AdviseRequest {
                points: Some(250_000),
                ..request()
            },
            &mut |_, _, _| {},
        )
        .unwrap();
    let (f1, f100) = (
        by_flags(&r.layouts, "--index flat"),
        by_flags(&big.layouts, "--index flat"),
    );
    assert!(f100.ram_bytes > 90 * f1.ram_bytes);
    let q = f100.chosen.unwrap().qps;
    assert!((f100.projected_qps.unwrap() - q * 2_000.0 / 250_000.0).abs() < 1e-6 * q);

    // The caller's own queries.
    let own: Vec<Vec<f32>> = clustered(25, 99);
    let given = c
        .advise(
            &AdviseRequest {
                query_vectors: Some(own),
                ..request()
            },
            &mut |_, _, _| {},
        )
        .unwrap();
    assert_eq!((given.queries, given.queries_from), (25, "given"));
    assert_eq!(given.sample, 2_000, "no stored vector held out");
}

#[test]
fn bad_requests_are_refused_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
    let c = db
        .create_collection("c", schema(DIM, Metric::Cosine, IndexSpec::default()))
        .unwrap();
    let vecs = clustered(1_200, 3);
    let pts = (0..vecs.len())
        .map(|i| point(i as u64, vecs[i].clone(), json!({})))
        .collect();
    c.upsert(&Scope::Unscoped, pts).unwrap();
    let field = |req: AdviseRequest| {
        c.advise(&req, &mut |_, _, _| {})
            .unwrap_err()
            .field()
            .map(String::from)
    };
    let with = |f: fn(&mut AdviseRequest)| {
        let mut r = request();
        f(&mut r);
        field(r)
    };
    type Change = fn(&mut AdviseRequest);
    let cases: [(Change, &str); 12] = [
        (|r| r.target_recall = 0.0, "target_recall"),
        (|r| r.target_recall = 1.5, "target_recall"),
        (|r| r.target_recall = f64::NAN, "target_recall"),
        (|r| r.k = 0, "k"),
        (|r| r.sample = 10, "sample"),
        (|r| r.queries = 0, "queries"),
        (|r| r.memory_budget = Some(0), "memory_budget"),
        (|r| r.points = Some(0), "points"),
        (|r| r.space = Some("other".into()), "space"),
        (
            |r| r.query_vectors = Some(vec![vec![0.5; DIM - 1]]),
            "queries",
        ),
        (|r| r.query_vectors = Some(vec![]), "queries"),
        // 1,200 points cannot give 1,000 to build on and 300 queries.
        (|r| r.queries = 300, "collection"),
    ];
    for (f, name) in cases {
        assert_eq!(with(f).as_deref(), Some(name));
    }
    let mut nan = request();
    nan.query_vectors = Some(vec![vec![f32::NAN; DIM]]);
    assert_eq!(field(nan).as_deref(), Some("queries"));

    // Several spaces: the one to advise on must be named.
    let two = Schema {
        spaces: ["a", "b"]
            .iter()
            .map(|n| SpaceSpec {
                name: n.to_string(),
                dim: 4,
                metric: Metric::L2,
                index: IndexSpec::Flat,
                model: None,
                on_disk: false,
            })
            .collect(),
        payload_indexes: Vec::new(),
        tenant_key: None,
        sparse_spaces: Vec::new(),
        documents: None,
        ttl: None,
    };
    let m = db.create_collection("two", two).unwrap();
    let e = m.advise(&request(), &mut |_, _, _| {}).unwrap_err();
    assert_eq!(e.field(), Some("space"), "{e}");
}

/// An encrypted collection cannot keep vectors on disk, so the advice never offers that.
#[test]
fn an_encrypted_collection_is_never_advised_vectors_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
    db.set_master_key(Some(sextant_engine::MasterKey::from_bytes([7; 32])));
    let c = db
        .create_collection_with("enc", schema(DIM, Metric::L2, IndexSpec::default()), true)
        .unwrap();
    let vecs = clustered(1_200, 5);
    let pts = (0..vecs.len())
        .map(|i| point(i as u64, vecs[i].clone(), json!({})))
        .collect();
    c.upsert(&Scope::Unscoped, pts).unwrap();
    let r = c.advise(&request(), &mut |_, _, _| {}).unwrap();
    assert_eq!(r.layouts.len(), 9, "one row per build");
    assert!(r.layouts.iter().all(|l| !l.on_disk));
    assert!(
        r.notes.iter().any(|n| n.contains("encrypted")),
        "{:?}",
        r.notes
    );
}
