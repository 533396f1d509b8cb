//! Durability under I/O faults and power loss, on the simulated disk of
//! `sextant_storage::fs::sim` (a SIGKILL keeps the page cache; these tests do not).
//!
//! A seeded workload (upserts, deletes, replaces, flushes, merges, optimizes) runs against a
//! model (id → version of the last acknowledged write). Checked everywhere:
//! - a step that returned `Ok` is in the collection, with its latest acknowledged value;
//! - a step that returned an error is not, not even after a restart or a power cut;
//! - the collection always opens again;
//! - a single fault costs at most the one step it hit: the process goes on without a restart.
//!
//! A step during which the power was cut may or may not have happened, but whole or not at all.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sextant_core::{Metric, PointId};
use sextant_engine::{
    Collection, CollectionConfig, Database, Durability, IndexSpec, PointInput, Schema, Scope,
    SpaceSpec, Vectors,
};
use sextant_storage::fs::sim::{Fault, SimFs};

const DIM: usize = 4;
const UNIVERSE: u64 = 24;
const DATA: &str = "/data";

pub fn schema() -> Schema {
    Schema {
        spaces: vec![SpaceSpec {
            name: "default".into(),
            dim: DIM,
            metric: Metric::L2,
            index: IndexSpec::Flat,
            model: None,
            on_disk: false,
        }],
        payload_indexes: Vec::new(),
        tenant_key: None,
        documents: None,
        ttl: None,
        sparse_spaces: Vec::new(),
    }
}

pub fn config() -> CollectionConfig {
    CollectionConfig {
        durability: Durability::Always,
        flush_points: 8,
        max_segments: 2,
        background_merge: false,
        ..CollectionConfig::default()
    }
}

/// id → version of its last acknowledged write.
pub type Model = BTreeMap<u64, u64>;

#[derive(Debug, Clone)]
pub enum Step {
    Upsert(Vec<(u64, u64)>),
    Delete(Vec<u64>),
    Replace(Vec<u64>, Vec<(u64, u64)>),
    Flush,
    Merge,
    Optimize,
}

pub fn point(id: u64, version: u64) -> PointInput {
    let v = (0..DIM)
        .map(|d| (id * 31 + version * 7 + d as u64) as f32 % 13.0)
        .collect();
    PointInput {
        id: PointId::Num(id),
        vectors: Vectors::Single(v),
        payload: json!({ "v": version }),
        sparse: Vec::new(),
        expires_at: None,
    }
}

fn apply(model: &mut Model, step: &Step) {
    match step {
        Step::Upsert(ps) => model.extend(ps.iter().copied()),
        Step::Delete(ids) => ids.iter().for_each(|id| {
            model.remove(id);
        }),
        Step::Replace(del, ps) => {
            del.iter().for_each(|id| {
                model.remove(id);
            });
            model.extend(ps.iter().copied());
        }
        Step::Flush | Step::Merge | Step::Optimize => {}
    }
}

fn run_step(c: &Collection, step: &Step) -> sextant_engine::Result<()> {
    let points = |ps: &[(u64, u64)]| ps.iter().map(|&(i, v)| point(i, v)).collect::<Vec<_>>();
    let ids = |ids: &[u64]| ids.iter().map(|&i| PointId::Num(i)).collect::<Vec<_>>();
    match step {
        Step::Upsert(ps) => c.upsert(&Scope::Unscoped, points(ps)).map(drop),
        Step::Delete(d) => c.delete(&Scope::Unscoped, ids(d)).map(drop),
        Step::Replace(d, ps) => c.replace(&Scope::Unscoped, ids(d), points(ps)).map(drop),
        Step::Flush => c.flush(),
        Step::Merge => c.merge().map(drop),
        Step::Optimize => c.optimize(),
    }
}

/// A seeded random workload.
pub fn workload(seed: u64, steps: usize) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut version = 0;
    let mut batch = |rng: &mut StdRng| -> Vec<(u64, u64)> {
        (0..rng.gen_range(1..=4))
            .map(|_| {
                version += 1;
                (rng.gen_range(0..UNIVERSE), version)
            })
            .collect()
    };
    (0..steps)
        .map(|_| match rng.gen_range(0..100) {
            0..=54 => Step::Upsert(batch(&mut rng)),
            55..=69 => Step::Delete(
                (0..rng.gen_range(1..=3))
                    .map(|_| rng.gen_range(0..UNIVERSE))
                    .collect(),
            ),
            70..=79 => {
                let del = (0..rng.gen_range(1..=3))
                    .map(|_| rng.gen_range(0..UNIVERSE))
                    .collect();
                Step::Replace(del, batch(&mut rng))
            }
            80..=87 => Step::Flush,
            88..=94 => Step::Merge,
            _ => Step::Optimize,
        })
        .collect()
}

/// What the collection holds, as a model.
pub fn snapshot(c: &Collection) -> Model {
    let ids: Vec<PointId> = (0..UNIVERSE).map(PointId::Num).collect();
    c.get(&Scope::Unscoped, &ids, true, false)
        .unwrap()
        .into_iter()
        .map(|p| {
            let PointId::Num(id) = p.id else {
                panic!("integer ids")
            };
            let v = p.payload.expect("asked for payloads")["v"]
                .as_u64()
                .expect("version");
            (id, v)
        })
        .collect()
}

/// How a run ended.
pub struct Run {
    /// The acknowledged writes.
    pub model: Model,
    /// The step during which the power was cut, if any.
    pub unknown: Option<Step>,
    /// Steps that returned an error.
    pub failures: usize,
}

thread_local! {
    /// Whether this test thread's workloads run on an encrypted collection.
    static ENCRYPTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    /// Whether this test thread's workloads keep their vectors on disk (`on_disk`: a vectors
    /// file per flushed segment; the simulated disk has no mappings, so it is read whole and
    /// checked on open).
    static ON_DISK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn open_db(fs: &SimFs) -> sextant_engine::Result<Database> {
    let db = Database::open_with(Path::new(DATA), config(), fs.handle())?;
    if ENCRYPTED.get() {
        db.set_master_key(Some(sextant_engine::MasterKey::from_bytes([42; 32])));
    }
    Ok(db)
}

/// Opens (creating when needed) the collection, retrying a step a one-shot fault failed.
fn open_collection(fs: &SimFs, failures: &mut usize) -> Option<(Database, Arc<Collection>)> {
    for _ in 0..4 {
        if fs.crashed() {
            return None;
        }
        let Ok(db) = open_db(fs) else {
            *failures += 1;
            continue;
        };
        for _ in 0..4 {
            match db.collection("c").or_else(|_| {
                let mut s = schema();
                s.spaces[0].on_disk = ON_DISK.get();
                db.create_collection_with("c", s, ENCRYPTED.get())
            }) {
                Ok(c) => return Some((db, c)),
                Err(_) if fs.crashed() => return None,
                Err(_) => *failures += 1,
            }
        }
    }
    None
}

/// Runs `steps` on `fs`, checking the live collection against the model after every step.
pub fn run(fs: &SimFs, steps: &[Step]) -> Run {
    let mut out = Run {
        model: Model::new(),
        unknown: None,
        failures: 0,
    };
    let Some((_db, c)) = open_collection(fs, &mut out.failures) else {
        return out;
    };
    for step in steps {
        let r = run_step(&c, step);
        if fs.crashed() {
            out.unknown = Some(step.clone());
            return out;
        }
        match r {
            Ok(()) => apply(&mut out.model, step),
            Err(_) => out.failures += 1,
        }
        assert_eq!(snapshot(&c), out.model, "live state after {step:?} ({r:?})");
    }
    out
}

/// Reopens the collection on `fs` (a disk after a restart or a power cut) and checks it holds
/// `run`'s acknowledged writes (plus, maybe, the step the power cut interrupted), then that it
/// takes a write.
pub fn check_reopened(fs: &SimFs, run: &Run, what: &str) {
    let db = open_db(fs).unwrap_or_else(|e| panic!("{what}: the database does not open: {e}"));
    let c = match db.collection("c") {
        Ok(c) => c,
        Err(sextant_engine::EngineError::CollectionNotFound(_)) => {
            assert!(run.model.is_empty(), "{what}: the collection is gone");
            return;
        }
        Err(e) => panic!("{what}: the collection does not open: {e:?}"),
    };
    let got = snapshot(&c);
    let mut with = run.model.clone();
    if let Some(step) = &run.unknown {
        apply(&mut with, step);
    }
    assert!(
        got == run.model || got == with,
        "{what}: reopened state differs\n got      {got:?}\n expected {:?}\n or       {with:?} (step {:?})",
        run.model,
        run.unknown
    );
    c.upsert(&Scope::Unscoped, vec![point(0, 999_999)])
        .unwrap_or_else(|e| panic!("{what}: no write after reopening: {e}"));
}

/// Every numbered operation of a workload failed in turn, with EIO and with ENOSPC (EIO on an
/// fsync is a failed fsync): the failed step's effects never appear, every other step
/// succeeds, and the state survives a restart and a power cut.
#[test]
fn every_write_step_failed_in_turn() {
    every_write_step_failed_in_turn_on(false);
}

/// [`every_write_step_failed_in_turn`] on an encrypted collection (every file through the
/// encrypting file system; the checks read it back decrypted).
#[test]
fn every_write_step_failed_in_turn_encrypted() {
    every_write_step_failed_in_turn_on(true);
}

/// [`every_write_step_failed_in_turn`] with the vectors on disk (one more file per flushed
/// segment, written, fsynced and named like the others).
#[test]
fn every_write_step_failed_in_turn_on_disk() {
    ON_DISK.set(true);
    every_write_step_failed_in_turn_on(false);
}

fn every_write_step_failed_in_turn_on(encrypted: bool) {
    ENCRYPTED.set(encrypted);
    let steps = workload(7, 40);
    let probe = SimFs::new();
    let clean = run(&probe, &steps);
    assert_eq!(clean.failures, 0);
    check_reopened(&probe.power_loss(0), &clean, "clean run");
    let journal = probe.journal();
    assert!(journal.len() > 200, "{} operations", journal.len());
    let mut syncs = 0;
    for op in &journal {
        syncs += usize::from(op.kind.is_sync());
        for fault in [Fault::Eio, Fault::Enospc] {
            let fs = SimFs::new();
            let at = op.index;
            fs.fail_when(move |o| (o.index == at).then_some(fault));
            let r = run(&fs, &steps);
            let what = format!("{fault:?} at op {at} ({:?} {})", op.kind, op.path.display());
            assert!(r.failures <= 1, "{what}: {} steps failed", r.failures);
            check_reopened(&fs.restart(), &r, &format!("{what}, restart"));
            check_reopened(&fs.power_loss(0), &r, &format!("{what}, power cut"));
            check_reopened(
                &fs.power_loss(at + 1),
                &r,
                &format!("{what}, torn power cut"),
            );
        }
    }
    eprintln!(
        "every_write_step_failed_in_turn: {} operations, {syncs} fsyncs",
        journal.len()
    );
    assert!(syncs > 50, "{syncs} fsyncs");
}

/// Power cuts at every operation of several seeded workloads (each also with one fault at a
/// random earlier operation on odd crash points): the reopened collection holds every
/// acknowledged write and nothing that failed.
#[test]
fn power_loss_at_many_points() {
    power_loss_at_many_points_on(false, 0..6);
}

/// [`power_loss_at_many_points`] on an encrypted collection: torn encrypted frames at every
/// crash point.
#[test]
fn power_loss_at_many_points_encrypted() {
    power_loss_at_many_points_on(true, 6..10);
}

/// [`power_loss_at_many_points`] with the vectors on disk.
#[test]
fn power_loss_at_many_points_on_disk() {
    ON_DISK.set(true);
    power_loss_at_many_points_on(false, 10..13);
}

fn power_loss_at_many_points_on(encrypted: bool, seeds: std::ops::Range<u64>) {
    ENCRYPTED.set(encrypted);
    let mut points = 0;
    for seed in seeds {
        let steps = workload(100 + seed, 80);
        let probe = SimFs::new();
        run(&probe, &steps);
        let total = probe.ops();
        let mut rng = StdRng::seed_from_u64(seed);
        for k in 0..total {
            let fs = SimFs::new();
            fs.crash_at(k, k * 7919 + seed + 1);
            if k % 2 == 1 {
                let at = rng.gen_range(0..k);
                let fault = if rng.gen_bool(0.5) {
                    Fault::Eio
                } else {
                    Fault::Enospc
                };
                fs.fail_when(move |o| (o.index == at).then_some(fault));
            }
            let r = run(&fs, &steps);
            check_reopened(
                &fs.after_crash(),
                &r,
                &format!("seed {seed}, power cut at op {k}"),
            );
            points += 1;
        }
    }
    eprintln!("power_loss_at_many_points (encrypted: {encrypted}): {points} crash points");
    assert!(points >= 1000, "{points} crash points");
}

/// Collection creation and deletion and alias changes, every operation failed in turn: the
/// database always opens again (after a restart and after a power cut), and what was
/// acknowledged holds.
#[test]
fn collection_and_alias_changes_under_faults() {
    struct Outcome {
        created: bool,
        alias_set: bool,
        deleted: bool,
    }
    let script = |fs: &SimFs| -> Outcome {
        let mut out = Outcome {
            created: false,
            alias_set: false,
            deleted: false,
        };
        let Ok(db) = open_db(fs).or_else(|_| open_db(fs)) else {
            return out;
        };
        let Ok(x) = db
            .create_collection("x", schema())
            .or_else(|_| db.collection("x"))
        else {
            return out;
        };
        out.created = true;
        let _ = x.upsert(&Scope::Unscoped, vec![point(1, 1)]);
        drop(x);
        // Stop at the first failure, so that nothing after it can mask its effects.
        if db.set_alias("a", "x").is_err() {
            return out;
        }
        out.alias_set = true;
        if db.delete_alias("a").is_err() {
            return out;
        }
        out.alias_set = false;
        if db.set_alias("a", "x").is_err() {
            return out;
        }
        out.alias_set = true;
        out.deleted = db.delete_collection("x").is_ok();
        out
    };
    let probe = SimFs::new();
    let clean = script(&probe);
    assert!(clean.deleted);
    for op in probe.journal() {
        for fault in [Fault::Eio, Fault::Enospc] {
            let fs = SimFs::new();
            let at = op.index;
            fs.fail_when(move |o| (o.index == at).then_some(fault));
            let out = script(&fs);
            for (what, disk) in [("restart", fs.restart()), ("power cut", fs.power_loss(0))] {
                let what = format!(
                    "{fault:?} at op {at} ({:?} {}), {what}",
                    op.kind,
                    op.path.display()
                );
                let db = open_db(&disk).unwrap_or_else(|e| panic!("{what}: no open: {e}"));
                let exists = db.list_collections().unwrap().contains(&"x".to_string());
                if out.deleted {
                    assert!(!exists, "{what}: a deleted collection came back");
                    assert!(
                        db.aliases().is_empty(),
                        "{what}: alias of a deleted collection"
                    );
                } else if out.created {
                    assert!(exists, "{what}: a collection whose delete failed is gone");
                    db.collection("x")
                        .unwrap_or_else(|e| panic!("{what}: x does not open: {e}"));
                    assert_eq!(
                        db.aliases().contains_key("a"),
                        out.alias_set,
                        "{what}: the alias is not as acknowledged"
                    );
                }
            }
        }
    }
}
