//! Space comes back (issue 16, items 4 and 5): after deletes and updates, `optimize` shrinks
//! the collection on disk and `info` reports nothing left to reclaim, with every live point
//! kept (checked point for point against a model); the deleted-fraction policy merges without
//! an `optimize`; a dropped tenant leaves no byte of its data behind after the next merge.

use std::collections::BTreeMap;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sextant_core::{Metric, PointId};
use sextant_engine::{
    Collection, CollectionConfig, CollectionInfo, Database, FieldType, IndexSpec, PayloadIndexSpec,
    PointInput, Schema, Scope, SpaceSpec, SparseInput, SparseKind, SparseSpaceSpec, TenantId,
    Vectors,
};

use crate::engine::random_vec;

const DIM: usize = 8;

fn schema(tenant_key: Option<&str>) -> Schema {
    Schema {
        spaces: vec![SpaceSpec {
            name: "v".into(),
            dim: DIM,
            metric: Metric::Cosine,
            index: IndexSpec::Hnsw {
                m: 8,
                ef_construction: 32,
                quantization: sextant_engine::Quantization::Auto,
            },
            model: None,
            on_disk: false,
        }],
        payload_indexes: tenant_key
            .map(|k| PayloadIndexSpec {
                key: k.into(),
                field_type: FieldType::Keyword,
            })
            .into_iter()
            .collect(),
        tenant_key: tenant_key.map(Into::into),
        documents: None,
        ttl: None,
        sparse_spaces: vec![SparseSpaceSpec {
            name: "text".into(),
            kind: SparseKind::Bm25 {
                k1: 1.2,
                b: 0.75,
                analyzer: Value::Null,
            },
            model: None,
        }],
    }
}

fn point(id: u64, vector: Vec<f32>, payload: Value) -> PointInput {
    let text = payload["text"].as_str().unwrap_or_default().to_string();
    PointInput {
        id: PointId::Num(id),
        vectors: Vectors::Single(vector),
        payload,
        sparse: vec![("text".into(), SparseInput::Text(text))],
        expires_at: None,
    }
}

type Model = BTreeMap<u64, (Vec<f32>, Value)>;

/// Every live point equals the model's, and there is no other.
fn assert_matches(c: &Collection, model: &Model, what: &str) {
    let scope = if c.schema().tenant_key.is_some() {
        Scope::AllTenants
    } else {
        Scope::Unscoped
    };
    assert_eq!(
        c.count(&scope, None).unwrap(),
        model.len() as u64,
        "{what}: count"
    );
    let ids: Vec<PointId> = model.keys().map(|&i| PointId::Num(i)).collect();
    let got = c.get(&scope, &ids, true, true).unwrap();
    assert_eq!(got.len(), model.len(), "{what}: get");
    for p in got {
        let PointId::Num(i) = p.id else {
            panic!("{what}: id kind")
        };
        let (v, payload) = &model[&i];
        assert_eq!(p.payload.as_ref(), Some(payload), "{what}: payload of {i}");
        let vs = p.vectors.unwrap();
        // Stored normalised (cosine): compare directions.
        let stored: Vec<f32> = serde_json::from_value(vs["v"].clone()).unwrap();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        for (a, b) in stored.iter().zip(v) {
            assert!((a - b / norm).abs() < 1e-5, "{what}: vector of {i}");
        }
    }
}

fn segment_disk(info: &CollectionInfo) -> u64 {
    info.segments.iter().map(|s| s.disk_bytes).sum()
}

/// Random upserts (new ids and overwrites, payloads of varied size) and deletes against a
/// model, with flushes along the way and no merge; then `optimize`: disk shrinks, `info`
/// reports nothing reclaimable, no live point is lost or changed, and `info`'s estimate
/// before was close to what the rewrite gave back.
#[test]
fn optimize_gives_back_what_info_said_and_keeps_every_live_point() {
    for seed in 0..4u64 {
        let dir = tempfile::tempdir().unwrap();
        let config = CollectionConfig {
            flush_points: 150,
            background_merge: false,
            ..CollectionConfig::default()
        };
        let db = Database::open(dir.path(), config).unwrap();
        let c = db.create_collection("c", schema(None)).unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut model = Model::new();
        for step in 0..120 {
            if rng.gen_bool(0.6) {
                let batch: Vec<PointInput> = (0..rng.gen_range(1..40))
                    .map(|_| {
                        let id = rng.gen_range(0..1_500u64);
                        let v = random_vec(&mut rng, DIM);
                        let pad = "x".repeat(rng.gen_range(0..200));
                        let payload = json!({"step": step, "text": format!("word{id} {pad}")});
                        model.insert(id, (v.clone(), payload.clone()));
                        point(id, v, payload)
                    })
                    .collect();
                c.upsert(&Scope::Unscoped, batch).unwrap();
            } else {
                let ids: Vec<u64> = (0..rng.gen_range(1..60))
                    .map(|_| rng.gen_range(0..1_500u64))
                    .collect();
                for id in &ids {
                    model.remove(id);
                }
                c.delete(
                    &Scope::Unscoped,
                    ids.into_iter().map(PointId::Num).collect(),
                )
                .unwrap();
            }
        }
        c.flush().unwrap();
        let before = c.info();
        assert!(before.segments.len() > 1, "seed {seed}: several segments");
        assert!(before.deleted > 0, "seed {seed}: deletes reached segments");
        assert!(before.reclaimable_bytes > 0, "seed {seed}: {before:?}");
        assert!(before.deleted_fraction > 0.0 && before.deleted_fraction < 1.0);
        assert_matches(&c, &model, &format!("seed {seed}, before optimize"));

        c.optimize().unwrap();
        let after = c.info();
        assert_eq!(after.segments.len(), 1, "seed {seed}");
        assert_eq!(after.deleted, 0, "seed {seed}");
        assert_eq!(after.deleted_fraction, 0.0, "seed {seed}");
        assert_eq!(after.reclaimable_bytes, 0, "seed {seed}");
        assert_eq!(after.reclaimable_memory_bytes, 0, "seed {seed}");
        assert!(
            after.disk_bytes < before.disk_bytes,
            "seed {seed}: disk {} -> {}",
            before.disk_bytes,
            after.disk_bytes
        );
        assert_matches(&c, &model, &format!("seed {seed}, after optimize"));

        // The estimate: what the rewrite gave back is what `info` called reclaimable, within
        // the part that is not proportional to the points (file headers, graph levels).
        let freed = segment_disk(&before) as f64 - segment_disk(&after) as f64;
        let said = before.reclaimable_bytes as f64;
        assert!(
            (freed - said).abs() <= 0.2 * freed + 4096.0 * before.segments.len() as f64,
            "seed {seed}: info said {said} bytes reclaimable, the rewrite freed {freed}"
        );

        drop(c);
        drop(db);
        let db = Database::open(dir.path(), config).unwrap();
        assert_matches(
            &db.collection("c").unwrap(),
            &model,
            &format!("seed {seed}, reopened"),
        );
    }
}

/// The merge policy rewrites a segment once its deleted fraction reaches
/// `vacuum_deleted_fraction`, without an `optimize`: not before, and from deletes as well as
/// from updates (which tombstone the old version).
#[test]
fn the_deleted_fraction_policy_merges_without_optimize() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectionConfig {
        flush_points: 100_000,
        vacuum_deleted_fraction: 0.3,
        ..CollectionConfig::default()
    };
    assert!(config.background_merge);
    let db = Database::open(dir.path(), config).unwrap();
    let c = db.create_collection("c", schema(None)).unwrap();
    let mut rng = StdRng::seed_from_u64(7);
    let mut model = Model::new();
    let batch: Vec<PointInput> = (0..400u64)
        .map(|id| {
            let v = random_vec(&mut rng, DIM);
            let payload = json!({"text": format!("point {id}")});
            model.insert(id, (v.clone(), payload.clone()));
            point(id, v, payload)
        })
        .collect();
    c.upsert(&Scope::Unscoped, batch).unwrap();
    c.flush().unwrap();
    c.wait_for_merge();
    let first = c.info();
    assert_eq!(first.segments.len(), 1);
    let seg = first.segments[0].id;

    // 25% deleted: under the fraction, nothing is rewritten.
    let doomed: Vec<u64> = (0..100).collect();
    for id in &doomed {
        model.remove(id);
    }
    c.delete(
        &Scope::Unscoped,
        doomed.into_iter().map(PointId::Num).collect(),
    )
    .unwrap();
    c.wait_for_merge();
    let under = c.info();
    assert_eq!(under.segments[0].id, seg, "rewritten under the fraction");
    assert_eq!(under.segments[0].deleted, 100);
    assert_eq!(under.segments[0].deleted_fraction, 0.25);
    assert!(under.reclaimable_bytes > 0);
    assert!(
        !c.merge().unwrap(),
        "the policy asks for no merge under the fraction"
    );

    // 20 more deleted (30%): the delete itself starts the merge.
    let doomed: Vec<u64> = (100..120).collect();
    for id in &doomed {
        model.remove(id);
    }
    c.delete(
        &Scope::Unscoped,
        doomed.into_iter().map(PointId::Num).collect(),
    )
    .unwrap();
    c.wait_for_merge();
    let merged = c.info();
    assert!(merged.background_error.is_none(), "{merged:?}");
    assert_eq!(merged.segments.len(), 1);
    assert_ne!(merged.segments[0].id, seg, "not rewritten at the fraction");
    assert_eq!(merged.segments[0].points, 280);
    assert_eq!(merged.deleted, 0);
    assert_eq!(merged.reclaimable_bytes, 0);
    assert!(merged.disk_bytes < under.disk_bytes);
    assert_matches(&c, &model, "after the policy's merge on deletes");

    // Updates: overwriting 30% of the segment's points tombstones their old versions.
    let seg = merged.segments[0].id;
    let batch: Vec<PointInput> = (120..204u64)
        .map(|id| {
            let v = random_vec(&mut rng, DIM);
            let payload = json!({"text": format!("point {id}, updated")});
            model.insert(id, (v.clone(), payload.clone()));
            point(id, v, payload)
        })
        .collect();
    c.upsert(&Scope::Unscoped, batch).unwrap();
    c.wait_for_merge();
    let updated = c.info();
    assert_ne!(updated.segments[0].id, seg, "not rewritten after updates");
    assert_eq!(updated.segments[0].points, 196);
    assert_eq!(updated.unflushed_points, 84);
    assert_eq!(updated.reclaimable_bytes, 0);
    assert_matches(&c, &model, "after the policy's merge on updates");

    // Above 1, deletes alone never rewrite a segment.
    drop(c);
    drop(db);
    let off = CollectionConfig {
        vacuum_deleted_fraction: 1.5,
        ..config
    };
    let db = Database::open(dir.path(), off).unwrap();
    let c = db.collection("c").unwrap();
    c.flush().unwrap();
    c.wait_for_merge();
    let ids: Vec<PointId> = model.keys().take(150).map(|&i| PointId::Num(i)).collect();
    c.delete(&Scope::Unscoped, ids).unwrap();
    c.wait_for_merge();
    assert!(c.info().deleted >= 150, "merged although the policy is off");
}

/// Every file under `dir`, read whole.
fn all_bytes(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(all_bytes(&p));
        } else {
            out.push((p.display().to_string(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Dropping a tenant is one write (every point of it gone at once, the others untouched), and
/// the next merge, started by the policy, leaves none of its bytes on disk: not its payloads,
/// not its BM25 terms, not its payload index entries.
#[test]
fn a_dropped_tenant_is_gone_from_disk_after_the_next_merge() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectionConfig {
        flush_points: 100_000,
        ..CollectionConfig::default()
    };
    let db = Database::open(dir.path(), config).unwrap();
    let c = db.create_collection("c", schema(Some("org"))).unwrap();
    let mut rng = StdRng::seed_from_u64(11);
    let mut model = Model::new();
    let orgs = ["acme", "globex", "initech"];
    for (t, org) in orgs.iter().enumerate() {
        let batch: Vec<PointInput> = (0..150u64)
            .map(|i| {
                let id = t as u64 * 1_000 + i;
                let v = random_vec(&mut rng, DIM);
                let payload = json!({
                    "org": org,
                    "text": format!("{org}secretword{i} quarterly report of {org}confidential"),
                });
                model.insert(id, (v.clone(), payload.clone()));
                point(id, v, payload)
            })
            .collect();
        c.upsert(&Scope::Tenant(TenantId::Str((*org).into())), batch)
            .unwrap();
    }
    c.flush().unwrap();
    c.wait_for_merge();
    let before = c.info();
    let planted = b"acmeconfidential";
    assert!(
        all_bytes(c.dir()).iter().any(|(_, b)| contains(b, planted)),
        "the planted term is not on disk to begin with"
    );

    let n = c.drop_tenant(&TenantId::Str("acme".into())).unwrap();
    assert_eq!(n, 150);
    model.retain(|&id, _| id >= 1_000);
    // A third of the segment is deleted: over the default fraction, the drop starts a merge.
    c.wait_for_merge();
    let after = c.info();
    assert!(after.background_error.is_none(), "{after:?}");
    assert_eq!(after.deleted, 0);
    assert_eq!(after.reclaimable_bytes, 0);
    assert!(after.disk_bytes < before.disk_bytes);
    assert_eq!(
        c.tenants().unwrap(),
        vec![
            (TenantId::Str("globex".into()), 150),
            (TenantId::Str("initech".into()), 150)
        ]
    );
    assert_matches(&c, &model, "after the drop");
    for (file, bytes) in all_bytes(c.dir()) {
        for needle in [&planted[..], b"acmesecretword", b"\"acme\""] {
            assert!(
                !contains(&bytes, needle),
                "{file} still holds {:?} of the dropped tenant",
                String::from_utf8_lossy(needle)
            );
        }
    }
    // Reopening rebuilds the payload index from what is left: the tenant is gone there too.
    drop(c);
    drop(db);
    let db = Database::open(dir.path(), config).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(
        c.count(&Scope::Tenant(TenantId::Str("acme".into())), None)
            .unwrap(),
        0
    );
    assert_matches(&c, &model, "reopened after the drop");
}

/// A tenant drop racing with writes of that tenant is one cut: the points it removed are
/// exactly those written before some instant (every one of them; none written after), it
/// counts what it removed, and another tenant's points are untouched.
#[test]
fn a_tenant_drop_under_concurrent_writes_is_one_cut() {
    let dir = tempfile::tempdir().unwrap();
    let config = CollectionConfig {
        flush_points: 64,
        ..CollectionConfig::default()
    };
    let db = Database::open(dir.path(), config).unwrap();
    let c = db.create_collection("c", schema(Some("org"))).unwrap();
    let acme = Scope::Tenant(TenantId::Str("acme".into()));
    let globex = Scope::Tenant(TenantId::Str("globex".into()));
    let other: Vec<PointInput> = (0..100u64)
        .map(|i| point(1_000_000 + i, vec![1.0; DIM], json!({"text": "other"})))
        .collect();
    c.upsert(&globex, other).unwrap();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (written, dropped) = std::thread::scope(|s| {
        let writer = s.spawn(|| {
            let mut rng = StdRng::seed_from_u64(3);
            let mut written = Vec::new();
            let mut id = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) || id < 400 {
                let batch: Vec<PointInput> = (id..id + 4)
                    .map(|i| point(i, random_vec(&mut rng, DIM), json!({"text": "acme"})))
                    .collect();
                let seq = c.upsert(&acme, batch).unwrap();
                written.extend((id..id + 4).map(|i| (i, seq)));
                id += 4;
            }
            written
        });
        while c.count(&acme, None).unwrap() < 200 {
            std::thread::yield_now();
        }
        let dropped = c.drop_tenant(&TenantId::Str("acme".into())).unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        (writer.join().unwrap(), dropped)
    });
    let ids: Vec<PointId> = written.iter().map(|&(i, _)| PointId::Num(i)).collect();
    let left: std::collections::HashSet<u64> = c
        .get(&acme, &ids, false, false)
        .unwrap()
        .into_iter()
        .map(|p| match p.id {
            PointId::Num(i) => i,
            _ => unreachable!(),
        })
        .collect();
    let gone: Vec<u64> = written
        .iter()
        .filter(|(i, _)| !left.contains(i))
        .map(|&(_, seq)| seq)
        .collect();
    let kept: Vec<u64> = written
        .iter()
        .filter(|(i, _)| left.contains(i))
        .map(|&(_, seq)| seq)
        .collect();
    assert_eq!(gone.len(), dropped, "the drop counted what it removed");
    assert!(dropped >= 200);
    assert!(
        gone.iter().max() < kept.iter().min().or(Some(&u64::MAX)),
        "the drop removed a point written after one it kept"
    );
    assert_eq!(c.count(&globex, None).unwrap(), 100);
    c.wait_for_merge();
    assert!(c.info().background_error.is_none());
    assert_eq!(c.count(&acme, None).unwrap(), left.len() as u64);
}
