//! Whole-database backups (every collection and the aliases) restored into a fresh data
//! directory, point for point; names already taken refuse a restore before anything is written;
//! a damaged snapshot in a backup leaves nothing restored; temporary files of interrupted
//! snapshot writes are removed by the next open.

use std::path::Path;

use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};
use sextant_core::{Metric, PointId};
use sextant_engine::{CollectionConfig, Database, EngineError, IndexSpec, Scope};

use crate::engine::{point, random_vec, schema};

const DIM: usize = 6;

fn config() -> CollectionConfig {
    CollectionConfig {
        flush_points: 120,
        max_segments: 3,
        ..CollectionConfig::default()
    }
}

/// Every point of `name` (through an alias or not): id, vectors, payload.
fn points(db: &Database, name: &str) -> Vec<(PointId, Value, Option<Value>)> {
    let c = db.collection(name).unwrap();
    let all = Scope::Unscoped;
    let ids: Vec<PointId> = c
        .scroll(&all, None, 100_000, None, None, false)
        .unwrap()
        .points
        .into_iter()
        .map(|p| p.id)
        .collect();
    assert!(!ids.is_empty());
    c.get(&all, &ids, true, true)
        .unwrap()
        .into_iter()
        .map(|p| (p.id, Value::Object(p.vectors.unwrap()), p.payload))
        .collect()
}

/// Two collections (L2: a cosine vector is normalised again whenever it is re-added, so a
/// plain reopen can move it by an ulp) with flushed segments, tombstones and unflushed WAL records, and aliases.
fn populate(db: &Database) {
    let mut rng = StdRng::seed_from_u64(9);
    for (name, n) in [("alpha", 400u64), ("beta", 250)] {
        let c = db
            .create_collection(name, schema(DIM, Metric::L2, IndexSpec::default()))
            .unwrap();
        for b in 0..n / 50 {
            let batch = (0..50)
                .map(|i| {
                    let id = b * 50 + i;
                    point(id, random_vec(&mut rng, DIM), json!({"n": id, "of": name}))
                })
                .collect();
            c.upsert(&Scope::Unscoped, batch).unwrap();
        }
        c.delete(&Scope::Unscoped, (10..40).map(PointId::Num).collect())
            .unwrap();
    }
    db.set_alias("current", "alpha").unwrap();
    db.set_alias("previous", "beta").unwrap();
}

#[test]
fn a_backup_restores_every_collection_and_alias_into_a_fresh_directory() {
    let src = tempfile::tempdir().unwrap();
    let db = Database::open(src.path(), config()).unwrap();
    populate(&db);
    let before: Vec<_> = ["alpha", "beta", "current", "previous"]
        .iter()
        .map(|n| points(&db, n))
        .collect();
    let seqs: Vec<u64> = ["alpha", "beta"]
        .iter()
        .map(|n| db.collection(n).unwrap().begin_snapshot().unwrap().seq())
        .collect();
    let out = tempfile::tempdir().unwrap();
    let backup_dir = out.path().join("b1");
    let mut seen = Vec::new();
    let info = db
        .backup(&backup_dir, &mut |c, done, total| {
            assert!(done <= total);
            if seen.last() != Some(&c.to_string()) {
                seen.push(c.to_string());
            }
        })
        .unwrap();
    assert_eq!(seen, ["alpha", "beta"]);
    assert_eq!(
        info.manifest
            .collections
            .iter()
            .map(|c| (c.name.as_str(), c.seq))
            .collect::<Vec<_>>(),
        [("alpha", seqs[0]), ("beta", seqs[1])]
    );
    assert_eq!(info.manifest.aliases.len(), 2);
    // Writes after the backup are not in it.
    db.collection("alpha")
        .unwrap()
        .upsert(
            &Scope::Unscoped,
            vec![point(9_999, vec![1.0; DIM], json!({}))],
        )
        .unwrap();
    // A second backup into the same (non-empty) directory is refused.
    let e = db.backup(&backup_dir, &mut |_, _, _| {}).unwrap_err();
    assert!(e.to_string().contains("not an empty directory"), "{e}");
    drop(db);

    let dst = tempfile::tempdir().unwrap();
    let fresh = Database::open(dst.path(), config()).unwrap();
    let restored = fresh
        .restore_backup(&backup_dir, &mut |_, _, _| {})
        .unwrap();
    assert_eq!(restored.manifest, info.manifest);
    assert_eq!(fresh.list_collections().unwrap(), ["alpha", "beta"]);
    assert_eq!(fresh.aliases(), info.manifest.aliases);
    for (i, n) in ["alpha", "beta", "current", "previous"].iter().enumerate() {
        let got = points(&fresh, n);
        assert_eq!(got.len(), before[i].len(), "{n}: number of points");
        for (g, w) in got.iter().zip(&before[i]) {
            assert_eq!(g, w, "{n}");
        }
    }
    for (n, seq) in ["alpha", "beta"].iter().zip(&seqs) {
        let c = fresh.collection(n).unwrap();
        assert_eq!(c.begin_snapshot().unwrap().seq(), *seq, "{n}");
    }
    // Restoring again into a database that has those names is refused, and changes nothing.
    let e = fresh
        .restore_backup(&backup_dir, &mut |_, _, _| {})
        .unwrap_err();
    assert!(
        matches!(e, EngineError::NameTaken(ref n) if n == "alpha"),
        "{e}"
    );
    assert_eq!(points(&fresh, "alpha"), before[0]);
}

#[test]
fn a_backup_with_a_damaged_snapshot_restores_nothing() {
    let src = tempfile::tempdir().unwrap();
    let db = Database::open(src.path(), config()).unwrap();
    populate(&db);
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("b");
    db.backup(&dir, &mut |_, _, _| {}).unwrap();
    drop(db);
    // Flip a byte near the end of the second collection's snapshot (inside a file body).
    let beta = dir.join("beta.snapshot");
    let mut bytes = std::fs::read(&beta).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    std::fs::write(&beta, bytes).unwrap();

    let dst = tempfile::tempdir().unwrap();
    let fresh = Database::open(dst.path(), config()).unwrap();
    let e = fresh.restore_backup(&dir, &mut |_, _, _| {}).unwrap_err();
    assert!(matches!(e, EngineError::SnapshotDamaged(_)), "{e}");
    assert!(
        e.to_string().contains("beta.snapshot is damaged: file "),
        "{e}"
    );
    assert!(fresh.list_collections().unwrap().is_empty());
    assert!(fresh.aliases().is_empty());
    // No manifest: an interrupted backup is refused.
    std::fs::remove_file(dir.join("backup")).unwrap();
    let e = fresh.restore_backup(&dir, &mut |_, _, _| {}).unwrap_err();
    assert!(e.to_string().contains("holds no backup manifest"), "{e}");
}

#[test]
fn temporary_files_of_interrupted_snapshot_writes_are_removed_on_open() {
    let data = tempfile::tempdir().unwrap();
    let db = Database::open(data.path(), config()).unwrap();
    populate(&db);
    let kept = db.create_snapshot("alpha", None, &mut |_, _| {}).unwrap();
    // What a crash in the middle of a snapshot write leaves: `.<name>.tmp` beside the target.
    let dir = db.snapshots_dir().join("alpha");
    let leftover = dir.join(".alpha-20261204T000000Z-seq1.snapshot.tmp");
    std::fs::write(&leftover, b"SXTSNAP\0 half written").unwrap();
    let top = db.snapshots_dir().join(".x.snapshot.tmp");
    std::fs::write(&top, b"half").unwrap();
    drop(db);
    let db = Database::open(data.path(), config()).unwrap();
    assert!(!leftover.exists() && !top.exists());
    let listed: Vec<_> = db
        .list_snapshots(None)
        .unwrap()
        .into_iter()
        .map(|l| l.path)
        .collect();
    assert_eq!(listed, std::slice::from_ref(&kept.path));
    db.verify_snapshot(&kept.path, &mut |_, _| {}).unwrap();
    assert!(Path::new(&kept.path).exists());
}
