//! Query adapters on every path: a text search maps its embedded query through the adapter
//! (and only an embedded query: not a HyDE passage, not a given vector, not with
//! `adapter: false`); bad adapters are refused by name; the adapter survives reopening,
//! snapshots, backups, encryption (no weight byte in the clear) and a data-key rotation (with
//! a drift reference pinned: both files are rewritten); an I/O fault or a power cut while one
//! is attached leaves the old or the new adapter, whole.

use std::path::Path;
use std::sync::Arc;

use serde_json::{json, Value};
use sextant_core::{Metric, PointId};
use sextant_engine::adapter::QueryAdapter;
use sextant_engine::documents::ingest::Ingester;
use sextant_engine::documents::search::{search_text_explained, Models, SourceKind, TextQuery};
use sextant_engine::documents::{schema, DenseModel, DENSE};
use sextant_engine::{
    CollectionConfig, Database, EngineError, ErrorKind, IndexSpec, MasterKey, PointInput, Scope,
    Vectors,
};
use sextant_storage::fs::sim::{Fault, SimFs};

use crate::documents::FakeDense;

fn open(dir: &Path) -> Database {
    Database::open(dir, CollectionConfig::default()).unwrap()
}

/// The bucket of a word in [`FakeDense`]'s bag of words.
fn bucket(model: &FakeDense, word: &str) -> usize {
    let v = model.embed(&[word], true).unwrap().pop().unwrap();
    v.iter().position(|&x| x > 0.5).unwrap()
}

/// An adapter that moves the weight of word `from` onto word `to` (the rest unchanged).
fn moving(model: &FakeDense, from: &str, to: &str) -> QueryAdapter {
    let d = model.dim();
    let mut a = QueryAdapter::identity(DENSE, d, model.identity());
    let (f, t) = (bucket(model, from), bucket(model, to));
    a.weights[f * d + f] = 0.0;
    a.weights[t * d + f] = 1.0;
    a.card = json!({"test": true});
    a
}

fn collection(db: &Database, model: &FakeDense) -> Arc<sextant_engine::Collection> {
    let c = db
        .create_collection(
            "d",
            schema(model, None, &crate::documents::settings("sentences", 8)).unwrap(),
        )
        .unwrap();
    let mut ing = Ingester::new(&c, Scope::Unscoped, model, None).unwrap();
    for (id, title, text) in crate::documents::CORPUS {
        ing.add(crate::documents::doc(id, title, text)).unwrap();
    }
    ing.finish().unwrap();
    c
}

fn top(
    c: &sextant_engine::Collection,
    model: &FakeDense,
    q: &TextQuery,
) -> (String, Option<String>) {
    let models = Models {
        dense: Some(model),
        ..Default::default()
    };
    let (hits, explanation) = search_text_explained(c, models, q).unwrap();
    (
        hits[0].doc_id.clone(),
        explanation.sources[0].adapter.clone(),
    )
}

#[test]
fn a_text_search_maps_only_its_embedded_query() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let db = open(dir.path());
    let c = collection(&db, &model);
    let q = TextQuery::new("sourdough", &[SourceKind::Dense], 3);
    assert_eq!(top(&c, &model, &q), ("bread".into(), None));

    let a = moving(&model, "sourdough", "garbage");
    let fingerprint = a.fingerprint();
    let info = c.set_adapter(a).unwrap();
    assert_eq!(info.fingerprint, fingerprint);
    assert_eq!(c.info().adapters, vec![info.clone()]);
    // The embedded query goes through the map, and the explanation names it.
    assert_eq!(
        top(&c, &model, &q),
        ("rust".into(), Some(fingerprint.clone()))
    );
    // Hybrid: the dense source is mapped, BM25 is not touched.
    let hybrid = TextQuery::new("sourdough", &[SourceKind::Dense, SourceKind::Bm25], 3);
    let (hits, e) = search_text_explained(
        &c,
        Models {
            dense: Some(&model),
            ..Default::default()
        },
        &hybrid,
    )
    .unwrap();
    assert_eq!(e.sources[0].adapter.as_deref(), Some(fingerprint.as_str()));
    assert_eq!(e.sources[1].adapter, None);
    assert!(hits.iter().any(|h| h.doc_id == "bread") && hits.iter().any(|h| h.doc_id == "rust"));
    // Not asked for: the model's own query embedding.
    let mut off = q.clone();
    off.adapter = false;
    assert_eq!(top(&c, &model, &off), ("bread".into(), None));
    // A HyDE passage is embedded as a document: not mapped.
    let mut hyde = TextQuery::new("anything", &[SourceKind::Dense], 3);
    hyde.dense_text = Some("sourdough".into());
    assert_eq!(top(&c, &model, &hyde), ("bread".into(), None));
    // A given vector is in the points' space already: not mapped.
    let mut given = TextQuery::new("", &[SourceKind::Dense], 3);
    given.dense_vector = Some(model.embed(&["sourdough"], true).unwrap().pop().unwrap());
    assert_eq!(top(&c, &model, &given), ("bread".into(), None));

    // Durable: reopened, the same map.
    drop(c);
    drop(db);
    let db = open(dir.path());
    let c = db.collection("d").unwrap();
    assert_eq!(c.adapters(), vec![info]);
    assert_eq!(top(&c, &model, &q), ("rust".into(), Some(fingerprint)));
    // Removed, durably.
    assert!(c.remove_adapter(DENSE).unwrap());
    assert!(!c.remove_adapter(DENSE).unwrap());
    assert_eq!(top(&c, &model, &q), ("bread".into(), None));
    drop(c);
    drop(db);
    let db = open(dir.path());
    let c = db.collection("d").unwrap();
    assert!(c.adapters().is_empty() && c.adapter(DENSE).is_none());
    assert!(!dir.path().join("collections/d/adapter").exists());
}

#[test]
fn bad_adapters_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let db = open(dir.path());
    let c = collection(&db, &model);
    let good = || QueryAdapter::identity(DENSE, model.dim(), model.identity());
    let field = |e: EngineError| match e {
        EngineError::Invalid { field, .. } => field,
        other => panic!("not an invalid field: {other}"),
    };
    let mut a = good();
    a.space = "nope".into();
    assert_eq!(field(c.set_adapter(a).unwrap_err()), "adapter.space");
    let a = QueryAdapter::identity(DENSE, 3, model.identity());
    assert_eq!(field(c.set_adapter(a).unwrap_err()), "adapter.dim");
    let mut a = good();
    a.weights.pop();
    assert_eq!(field(c.set_adapter(a).unwrap_err()), "adapter.weights");
    let mut a = good();
    a.weights[5] = f32::INFINITY;
    assert_eq!(field(c.set_adapter(a).unwrap_err()), "adapter.weights");
    // Trained for another model: a conflict, not bad input.
    let mut a = good();
    a.model = json!({"fake": 99});
    let e = c.set_adapter(a).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict, "{e}");
    // A binary space: a linear map of 0/1 vectors is not binary.
    let bits = db
        .create_collection(
            "bits",
            crate::engine::schema(8, Metric::Hamming, IndexSpec::Flat),
        )
        .unwrap();
    let a = QueryAdapter::identity("default", 8, Value::Null);
    assert_eq!(field(bits.set_adapter(a).unwrap_err()), "adapter.space");
    // Nothing was attached by any of them.
    assert!(c.adapters().is_empty() && bits.adapters().is_empty());
    assert!(!dir.path().join("collections/d/adapter").exists());
    // A vector collection without a model takes an adapter with no model identity.
    let plain = db
        .create_collection(
            "plain",
            crate::engine::schema(4, Metric::Cosine, IndexSpec::Flat),
        )
        .unwrap();
    plain
        .set_adapter(QueryAdapter::identity("default", 4, Value::Null))
        .unwrap();
    assert_eq!(plain.adapters().len(), 1);
}

#[test]
fn snapshots_and_backups_carry_the_adapter() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let db = open(dir.path());
    let c = collection(&db, &model);
    let plain = db.create_snapshot("d", None, &mut |_, _| {}).unwrap();
    let a = moving(&model, "sourdough", "garbage");
    let fingerprint = a.fingerprint();
    c.set_adapter(a).unwrap();
    let with = db.create_snapshot("d", None, &mut |_, _| {}).unwrap();
    db.restore_snapshot(&with.path, "copy", false, &mut |_, _| {})
        .unwrap();
    db.restore_snapshot(&plain.path, "before", false, &mut |_, _| {})
        .unwrap();
    let copy = db.collection("copy").unwrap();
    assert_eq!(copy.adapters()[0].fingerprint, fingerprint);
    let q = TextQuery::new("sourdough", &[SourceKind::Dense], 3);
    assert_eq!(top(&copy, &model, &q).0, "rust");
    // The snapshot taken before the adapter restores without one.
    assert!(db.collection("before").unwrap().adapters().is_empty());
    // A whole-database backup, restored into a fresh directory.
    let backup = dir.path().join("backup");
    db.backup(&backup, &mut |_, _, _| {}).unwrap();
    let other = tempfile::tempdir().unwrap();
    let db2 = open(other.path());
    db2.restore_backup(&backup, &mut |_, _, _| {}).unwrap();
    let d = db2.collection("d").unwrap();
    assert_eq!(d.adapters()[0].fingerprint, fingerprint);
    assert_eq!(top(&d, &model, &q).0, "rust");
    assert!(db2.collection("before").unwrap().adapters().is_empty());
}

/// A weight no other file holds, whose bytes are easy to find.
const PLANTED: f32 = 1234.5678;

#[test]
fn an_encrypted_collection_keeps_its_adapter_secret_through_both_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    db.set_master_key(Some(MasterKey::from_bytes([3; 32])));
    let c = db
        .create_collection_with(
            "e",
            crate::engine::schema(4, Metric::Cosine, IndexSpec::Flat),
            true,
        )
        .unwrap();
    let points: Vec<PointInput> = (0..20u64)
        .map(|i| PointInput {
            id: PointId::Num(i),
            vectors: Vectors::Single(vec![1.0, i as f32, 0.5, -1.0]),
            payload: json!({}),
            sparse: Vec::new(),
            expires_at: None,
        })
        .collect();
    c.upsert(&Scope::Unscoped, points).unwrap();
    c.flush().unwrap();
    c.drift_pin(None, None).unwrap();
    let mut a = QueryAdapter::identity("default", 4, Value::Null);
    a.weights[1] = PLANTED;
    let fingerprint = a.fingerprint();
    c.set_adapter(a).unwrap();
    let needle = PLANTED.to_le_bytes();
    let leaked = |d: &Path| -> Vec<String> {
        let mut out = Vec::new();
        for entry in crate::encryption::files(d) {
            let b = std::fs::read(&entry).unwrap();
            if b.windows(4).any(|w| w == needle) {
                out.push(entry.display().to_string());
            }
        }
        out
    };
    let cdir = dir.path().join("collections/e");
    assert!(cdir.join("adapter").exists());
    assert_eq!(leaked(dir.path()), Vec::<String>::new());
    // A data-key rotation rewrites every file, the adapter and drift files included.
    assert_eq!(c.rotate_data_key().unwrap(), 2);
    assert_eq!(c.adapters()[0].fingerprint, fingerprint);
    let new_key = MasterKey::from_bytes([4; 32]);
    db.rotate_master_key(&new_key).unwrap();
    drop(c);
    drop(db);
    let db = open(dir.path());
    db.set_master_key(Some(new_key));
    let c = db.collection("e").unwrap();
    assert_eq!(c.adapters()[0].fingerprint, fingerprint);
    assert!(c.drift_info().is_some());
    assert_eq!(leaked(dir.path()), Vec::<String>::new());
    // The same scan finds the weight in a plain collection.
    let p = db
        .create_collection(
            "p",
            crate::engine::schema(4, Metric::Cosine, IndexSpec::Flat),
        )
        .unwrap();
    let mut a = QueryAdapter::identity("default", 4, Value::Null);
    a.weights[1] = PLANTED;
    p.set_adapter(a).unwrap();
    assert_eq!(leaked(&dir.path().join("collections/p")).len(), 1);
}

#[test]
fn a_fault_or_power_cut_while_attaching_leaves_one_adapter_whole() {
    const DATA: &str = "/data";
    let old = {
        let mut a = QueryAdapter::identity("default", 4, Value::Null);
        a.weights[1] = 0.25;
        a
    };
    let new = {
        let mut a = QueryAdapter::identity("default", 4, Value::Null);
        a.weights[2] = -0.5;
        a
    };
    let setup = || {
        let fs = SimFs::new();
        let db =
            Database::open_with(Path::new(DATA), CollectionConfig::default(), fs.handle()).unwrap();
        let c = db
            .create_collection(
                "c",
                crate::engine::schema(4, Metric::Cosine, IndexSpec::Flat),
            )
            .unwrap();
        c.set_adapter(old.clone()).unwrap();
        (fs, db, c)
    };
    let reopened = |fs: &SimFs| {
        let db =
            Database::open_with(Path::new(DATA), CollectionConfig::default(), fs.handle()).unwrap();
        let c = db.collection("c").unwrap();
        c.adapter("default").map(|a| a.fingerprint().to_string())
    };
    // How many file operations attaching takes.
    let (fs, _db, c) = setup();
    let before = fs.ops();
    c.set_adapter(new.clone()).unwrap();
    let ops = fs.ops() - before;
    assert!(ops >= 3, "write, sync, rename: {ops}");
    let (old_fp, new_fp) = (old.fingerprint(), new.fingerprint());
    for at in 0..ops {
        for fault in [Fault::Eio, Fault::Enospc] {
            let (fs, _db, c) = setup();
            let target = fs.ops() + at;
            fs.fail_when(move |o| (o.index == target).then_some(fault));
            let r = c.set_adapter(new.clone());
            let acked = r.is_ok();
            let now = c.adapter("default").map(|a| a.fingerprint().to_string());
            match r {
                // A failed attach changed nothing in memory.
                Err(_) => assert_eq!(now.as_deref(), Some(old_fp.as_str()), "op {at}"),
                Ok(_) => assert_eq!(now.as_deref(), Some(new_fp.as_str()), "op {at}"),
            }
            fs.heal();
            let after = reopened(&fs.power_loss(at + 1));
            assert!(
                after.as_deref() == Some(old_fp.as_str())
                    || after.as_deref() == Some(new_fp.as_str()),
                "op {at} {fault:?}: {after:?}"
            );
            if acked {
                // Acknowledged: durable.
                assert_eq!(after.as_deref(), Some(new_fp.as_str()), "op {at} {fault:?}");
            }
        }
        // A power cut at every operation: the old adapter or the new one, whole.
        let (fs, _db, c) = setup();
        fs.crash_at(fs.ops() + at, at * 7 + 1);
        let _ = c.set_adapter(new.clone());
        let after = reopened(&fs.after_crash());
        assert!(
            after.as_deref() == Some(old_fp.as_str()) || after.as_deref() == Some(new_fp.as_str()),
            "cut at op {at}: {after:?}"
        );
    }
}
