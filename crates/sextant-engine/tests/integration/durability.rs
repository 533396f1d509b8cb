//! Regression tests for the durability bugs of issue 14 (item 4), each named after what it
//! fixes. Most run on the simulated disk of `sextant_storage::fs::sim`, where only fsynced
//! data and fsynced directory entries survive a power cut.

use std::path::Path;
use std::time::{Duration, Instant};

use sextant_core::PointId;
use sextant_engine::{CollectionConfig, Database, Durability, Scope};
use sextant_storage::fs::sim::{Fault, OpKind, SimFs};

use crate::power_loss::{config, point, schema};

const DATA: &str = "/data";

fn open(fs: &SimFs, config: CollectionConfig) -> Database {
    Database::open_with(Path::new(DATA), config, fs.handle()).unwrap()
}

fn versions(db: &Database, ids: std::ops::Range<u64>) -> Vec<Option<u64>> {
    let c = db.collection("c").unwrap();
    ids.map(|i| {
        c.get(&Scope::Unscoped, &[PointId::Num(i)], true, false)
            .unwrap()
            .first()
            .map(|p| p.payload.as_ref().unwrap()["v"].as_u64().unwrap())
    })
    .collect()
}

#[test]
fn tombstone_files_are_durable_before_the_manifest_names_them() {
    let fs = SimFs::new();
    let db = open(&fs, config());
    let c = db.create_collection("c", schema()).unwrap();
    c.upsert(&Scope::Unscoped, (0..6).map(|i| point(i, 1)).collect())
        .unwrap();
    c.flush().unwrap();
    c.delete(&Scope::Unscoped, vec![PointId::Num(1), PointId::Num(2)])
        .unwrap();
    c.flush().unwrap(); // writes segments/1/deleted-2.bin and a manifest naming it
    let cut = fs.power_loss(0);
    let db = open(&cut, config());
    assert_eq!(
        versions(&db, 0..6),
        [Some(1), None, None, Some(1), Some(1), Some(1)],
        "deletes must not come back"
    );
}

#[test]
fn failed_wal_fsync_is_not_replayed_after_restart() {
    let fs = SimFs::new();
    let db = open(&fs, config());
    let c = db.create_collection("c", schema()).unwrap();
    c.upsert(&Scope::Unscoped, vec![point(1, 1)]).unwrap();
    let mut armed = true;
    fs.fail_when(move |op| {
        let hit = armed && op.kind == OpKind::SyncFile && op.path.ends_with("wal");
        armed &= !hit;
        hit.then_some(Fault::Eio)
    });
    let err = c.upsert(&Scope::Unscoped, vec![point(2, 1)]).unwrap_err();
    assert!(err.to_string().contains("was not written"), "{err}");
    assert_eq!(versions(&db, 1..3), [Some(1), None]);
    // The disk works again: the process goes on without a restart.
    c.upsert(&Scope::Unscoped, vec![point(3, 1)]).unwrap();
    for (what, disk) in [("restart", fs.restart()), ("power cut", fs.power_loss(0))] {
        let db = open(&disk, config());
        assert_eq!(versions(&db, 1..4), [Some(1), None, Some(1)], "{what}");
    }
}

#[test]
fn wal_poisoned_after_failed_fdatasync_refuses_writes_until_repaired() {
    let fs = SimFs::new();
    let db = open(&fs, config());
    let c = db.create_collection("c", schema()).unwrap();
    c.upsert(&Scope::Unscoped, vec![point(1, 1)]).unwrap();
    // The disk fails every fsync and write from now on.
    fs.fail_when(|op| (op.kind != OpKind::OpenLog).then_some(Fault::Eio));
    assert!(c.upsert(&Scope::Unscoped, vec![point(2, 1)]).is_err());
    let refused = c.upsert(&Scope::Unscoped, vec![point(3, 1)]).unwrap_err();
    assert!(refused.to_string().contains("refuses writes"), "{refused}");
    fs.heal();
    c.upsert(&Scope::Unscoped, vec![point(4, 1)]).unwrap();
    for (what, disk) in [("restart", fs.restart()), ("power cut", fs.power_loss(0))] {
        let db = open(&disk, config());
        assert_eq!(
            versions(&db, 1..5),
            [Some(1), None, None, Some(1)],
            "{what}"
        );
    }
}

#[test]
fn flush_failure_after_a_committed_write_is_a_background_error() {
    let fs = SimFs::new();
    let db = open(&fs, config()); // flushes at 8 points
    let c = db.create_collection("c", schema()).unwrap();
    c.upsert(&Scope::Unscoped, (0..7).map(|i| point(i, 1)).collect())
        .unwrap();
    // The manifest's rename fails once: the segment directory is already written.
    let mut armed = true;
    fs.fail_when(move |op| {
        let hit = armed && op.kind == OpKind::Rename && op.path.ends_with(".manifest.tmp");
        armed &= !hit;
        hit.then_some(Fault::Enospc)
    });
    c.upsert(&Scope::Unscoped, vec![point(7, 1)])
        .expect("the write is durable in the WAL; a failed flush is not its error");
    let info = c.info();
    assert!(
        info.background_error
            .as_deref()
            .unwrap_or("")
            .contains("flush"),
        "{:?}",
        info.background_error
    );
    // The collection can flush again (a fresh segment id, not the half-written one).
    c.flush().unwrap();
    assert_eq!(c.info().unflushed_points, 0);
    let db = open(&fs.power_loss(0), config());
    assert_eq!(versions(&db, 0..8), vec![Some(1); 8]);
}

#[test]
fn leftover_temp_files_are_removed_on_open() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path(), config()).unwrap();
        let c = db.create_collection("c", schema()).unwrap();
        c.upsert(&Scope::Unscoped, vec![point(1, 1)]).unwrap();
    }
    let coll = dir.path().join("collections");
    let leftovers = [
        coll.join("c/.manifest.tmp"),
        coll.join("c/.manifest.tmp-4242"),
        coll.join("c/wal.wal.tmp"),
        coll.join("c/segments/9.tmp/points.bin"),
        coll.join("d.creating/manifest"),
        coll.join(".deleting-e-77/wal"),
        dir.path().join(".aliases.tmp"),
    ];
    for f in &leftovers {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b"junk").unwrap();
    }
    let db = Database::open(dir.path(), config()).unwrap();
    let c = db.collection("c").unwrap();
    assert_eq!(versions(&db, 1..2), [Some(1)]);
    assert!(!c.recovery().removed_leftovers.is_empty());
    for f in &leftovers {
        let top = if f.starts_with(coll.join("c/segments")) {
            f.parent().unwrap().to_path_buf()
        } else if f.starts_with(coll.join("c")) || f.starts_with(dir.path().join(".aliases.tmp")) {
            f.clone()
        } else {
            f.parent().unwrap().to_path_buf()
        };
        assert!(!top.exists(), "{} is still there", top.display());
    }
    assert_eq!(db.list_collections().unwrap(), ["c"]);
}

#[test]
fn missing_wal_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path(), config()).unwrap();
        db.create_collection("fresh", schema()).unwrap();
        let c = db.create_collection("c", schema()).unwrap();
        c.upsert(&Scope::Unscoped, vec![point(1, 1)]).unwrap();
    }
    let wal = dir.path().join("collections/c/wal");
    std::fs::remove_file(&wal).unwrap();
    let db = Database::open(dir.path(), config()).unwrap();
    // A fresh collection, its WAL empty, opens.
    db.collection("fresh").unwrap();
    let err = db.collection("c").unwrap_err().to_string();
    assert!(err.contains(&wal.display().to_string()), "{err}");
    assert!(err.contains("missing"), "{err}");
    assert!(!wal.exists(), "the log must not be recreated");
}

fn interval(every: Duration) -> CollectionConfig {
    CollectionConfig {
        durability: Durability::Interval(every),
        ..config()
    }
}

#[test]
fn interval_durability_syncs_on_a_timer() {
    let fs = SimFs::new();
    let db = open(&fs, interval(Duration::from_millis(50)));
    let c = db.create_collection("c", schema()).unwrap();
    c.upsert(&Scope::Unscoped, vec![point(1, 1)]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cut = fs.power_loss(0);
        if versions(&open(&cut, config()), 1..2) == [Some(1)] {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the batch never reached the disk"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn interval_durability_syncs_on_close() {
    let fs = SimFs::new();
    {
        let db = open(&fs, interval(Duration::from_secs(3600)));
        let c = db.create_collection("c", schema()).unwrap();
        // The first append after opening is within the interval: not synced by itself.
        c.upsert(&Scope::Unscoped, vec![point(1, 1)]).unwrap();
    }
    let db = open(&fs.power_loss(0), config());
    assert_eq!(versions(&db, 1..2), [Some(1)]);
}
