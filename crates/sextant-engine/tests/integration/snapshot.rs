//! Snapshots and restore: a snapshot taken while another thread writes equals the collection at
//! its sequence number, point for point and search for search; damaged, truncated and
//! misdirected restores are refused and leave nothing behind; an interrupted replace is
//! finished or undone by the next open.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use sextant_core::{ErrorKind, Filter, Metric, PointId};
use sextant_engine::{
    Collection, CollectionConfig, Database, EngineError, IndexSpec, Scope, SearchRequest,
};

use crate::engine::{point, random_vec, schema};

const DIM: usize = 8;

/// What the test expects a collection to hold: id → (vector, payload).
type Model = BTreeMap<u64, (Vec<f32>, Value)>;

/// One logged write, as the writer thread made it.
#[derive(Debug, Clone)]
enum Write {
    Upsert(Vec<(u64, Vec<f32>, Value)>),
    Delete(Vec<u64>),
}

fn apply(model: &mut Model, w: &Write) {
    match w {
        Write::Upsert(points) => {
            for (id, v, p) in points {
                model.insert(*id, (v.clone(), p.clone()));
            }
        }
        Write::Delete(ids) => {
            for id in ids {
                model.remove(id);
            }
        }
    }
}

/// The model at sequence number `seq`: every logged write up to it, in order.
fn model_at(log: &[(u64, Write)], seq: u64) -> Model {
    let mut m = Model::new();
    for (_, w) in log.iter().filter(|(s, _)| *s <= seq) {
        apply(&mut m, w);
    }
    m
}

/// Logs one write: its sequence number and what it did.
fn write(c: &Collection, log: &Mutex<Vec<(u64, Write)>>, w: Write) {
    let seq = match &w {
        Write::Upsert(points) => c
            .upsert(
                &Scope::Unscoped,
                points
                    .iter()
                    .map(|(id, v, p)| point(*id, v.clone(), p.clone()))
                    .collect(),
            )
            .unwrap(),
        Write::Delete(ids) => c
            .replace(
                &Scope::Unscoped,
                ids.iter().map(|&i| PointId::Num(i)).collect(),
                Vec::new(),
            )
            .unwrap(),
    };
    let mut log = log.lock().unwrap();
    assert!(
        log.last().is_none_or(|(s, _)| *s < seq),
        "one writer: numbers increase"
    );
    log.push((seq, w));
}

fn random_upsert(rng: &mut StdRng, n: usize, max_id: u64, round: usize) -> Write {
    Write::Upsert(
        (0..n)
            .map(|_| {
                let id = rng.gen_range(0..max_id);
                let b = rng.gen_range(0..7);
                let payload = json!({"bucket": b, "tag": format!("t{}", id % 5), "round": round});
                (id, random_vec(rng, DIM), payload)
            })
            .collect(),
    )
}

fn num(id: &PointId) -> u64 {
    match id {
        PointId::Num(n) => *n,
        other => panic!("integer ids, got {other}"),
    }
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// Asserts that `c` holds exactly `model`: ids, payloads and vectors, counts, and exact
/// search (every segment scanned, through a filter that matches every point) against brute
/// force on the model.
fn assert_holds(c: &Collection, model: &Model, rng: &mut StdRng) {
    let all = Scope::Unscoped;
    assert_eq!(c.count(&all, None).unwrap(), model.len() as u64);
    let page = c.scroll(&all, None, 100_000, None, None, true).unwrap();
    let ids: Vec<u64> = page.points.iter().map(|p| num(&p.id)).collect();
    assert_eq!(ids, model.keys().copied().collect::<Vec<_>>(), "ids");
    let wanted: Vec<PointId> = model.keys().map(|&i| PointId::Num(i)).collect();
    let got = c.get(&all, &wanted, true, true).unwrap();
    assert_eq!(got.len(), model.len());
    for p in got {
        let (v, payload) = &model[&num(&p.id)];
        assert_eq!(p.payload.as_ref(), Some(payload), "payload of {}", p.id);
        let stored: Vec<f32> = p.vectors.unwrap()["default"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(&stored, v, "vector of {}", p.id);
    }
    let every = Filter::from_json_str(r#"{"must":[{"key":"bucket","range":{"gte":0}}]}"#).unwrap();
    for _ in 0..20 {
        let q = random_vec(rng, DIM);
        let hits = c
            .search(SearchRequest {
                vector: q.clone(),
                k: 10,
                filter: Some(every.clone()),
                exact_threshold: Some(u64::MAX),
                ..Default::default()
            })
            .unwrap()
            .hits;
        let mut brute: Vec<(f32, u64)> =
            model.iter().map(|(id, (v, _))| (l2(&q, v), *id)).collect();
        brute.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let want: Vec<u64> = brute.iter().take(10).map(|&(_, id)| id).collect();
        assert_eq!(hits.iter().map(|h| num(&h.id)).collect::<Vec<_>>(), want);
    }
}

/// Asserts that two collections answer the same default (graph) searches identically.
fn assert_same_search(a: &Collection, b: &Collection, rng: &mut StdRng) {
    let filter =
        Filter::from_json_str(r#"{"must":[{"key":"bucket","match":{"value":3}}]}"#).unwrap();
    for i in 0..30 {
        let req = SearchRequest {
            vector: random_vec(rng, DIM),
            k: 10,
            filter: (i % 3 == 0).then(|| filter.clone()),
            with_payload: true,
            ..Default::default()
        };
        let (x, y) = (
            a.search(req.clone()).unwrap().hits,
            b.search(req).unwrap().hits,
        );
        assert_eq!(x, y, "search {i}");
        assert!(!x.is_empty());
    }
}

fn config() -> CollectionConfig {
    CollectionConfig {
        flush_points: 150,
        max_segments: 3,
        ..CollectionConfig::default()
    }
}

/// Entries of `<data>/collections` (leftovers of a failed restore would show here).
fn collection_dirs(data: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(data.join("collections"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn snapshots_taken_during_writes_restore_the_collection_at_their_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path(), config()).unwrap());
    let src = db
        .create_collection("src", schema(DIM, Metric::L2, IndexSpec::default()))
        .unwrap();
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut rng = StdRng::seed_from_u64(16);
    for round in 0..20 {
        write(&src, &log, random_upsert(&mut rng, 50, 1500, round));
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Stops the writer when the test ends, also when it fails.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let _stop_on_drop = StopOnDrop(stop.clone());
    let writes = Arc::new(AtomicUsize::new(0));
    let writer = {
        let (src, log, stop, writes) = (src.clone(), log.clone(), stop.clone(), writes.clone());
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(17);
            let mut live = model_at(&log.lock().unwrap(), u64::MAX);
            let mut round = 100;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                let w = if rng.gen_bool(0.3) && live.len() > 10 {
                    let keys: Vec<u64> = live.keys().copied().collect();
                    Write::Delete((0..5).map(|_| keys[rng.gen_range(0..keys.len())]).collect())
                } else {
                    random_upsert(&mut rng, 20, 2000, round)
                };
                apply(&mut live, &w);
                write(&src, &log, w);
                writes.fetch_add(1, Ordering::Relaxed);
            }
        })
    };
    let mut taken = Vec::new();
    for k in 0..3 {
        // Let the writer get ahead (past flushes and merges) before each snapshot.
        let start = writes.load(Ordering::Relaxed);
        while writes.load(Ordering::Relaxed) < start + 40 {
            assert!(!writer.is_finished(), "the writer stopped");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let before = writes.load(Ordering::Relaxed);
        let path = dir.path().join(format!("s{k}.snapshot"));
        let info = db
            .create_snapshot("src", Some(&path), &mut |_, _| {
                // Slow the copy down so the writer certainly goes on during it.
                std::thread::sleep(std::time::Duration::from_millis(20))
            })
            .unwrap();
        assert!(
            writes.load(Ordering::Relaxed) > before,
            "the writer wrote while snapshot {k} was taken"
        );
        taken.push(info);
    }
    stop.store(true, Ordering::Relaxed);
    writer.join().unwrap();
    let log = log.lock().unwrap().clone();
    assert!(src.info().segments.len() > 1, "the source flushed segments");

    for (k, info) in taken.iter().enumerate() {
        let model = model_at(&log, info.seq);
        assert_eq!(
            info.points,
            model.len() as u64,
            "snapshot {k}'s point count"
        );
        assert!(
            log.iter().any(|(s, _)| *s > info.seq),
            "writes after snapshot {k}"
        );
        let name = format!("copy{k}");
        db.restore_snapshot(&info.path, &name, false, &mut |_, _| {})
            .unwrap();
        let restored = db.collection(&name).unwrap();
        assert_holds(&restored, &model, &mut rng);
        // The restored collection is a whole collection: it takes writes and survives reopen.
        restored
            .upsert(
                &Scope::Unscoped,
                vec![point(99_999, vec![0.5; DIM], json!({"bucket": 1}))],
            )
            .unwrap();
        assert_eq!(
            restored.count(&Scope::Unscoped, None).unwrap(),
            model.len() as u64 + 1
        );
    }

    // Search for search: with the writer stopped and merges done, the restored copy of a
    // fresh snapshot answers graph searches exactly as the source does.
    src.wait_for_merge();
    let last = db.create_snapshot("src", None, &mut |_, _| {}).unwrap();
    assert!(
        last.path
            .starts_with(dir.path().join("snapshots").join("src")),
        "{:?}",
        last.path
    );
    assert_eq!(last.seq, log.last().unwrap().0);
    db.restore_snapshot(&last.path, "final", false, &mut |_, _| {})
        .unwrap();
    let copy = db.collection("final").unwrap();
    assert_holds(&copy, &model_at(&log, u64::MAX), &mut rng);
    assert_same_search(&src, &copy, &mut rng);

    // And all of it after a reopen of the database.
    drop((src, copy));
    drop(Arc::try_unwrap(db).unwrap());
    let db = Database::open(dir.path(), config()).unwrap();
    let k = 1;
    assert_holds(
        &db.collection(&format!("copy{k}")).unwrap(),
        &{
            let mut m = model_at(&log, taken[k].seq);
            m.insert(99_999, (vec![0.5; DIM], json!({"bucket": 1})));
            m
        },
        &mut rng,
    );
}

/// A small collection with flushed segments, tombstones and unflushed WAL records.
fn small(db: &Database, name: &str) -> Arc<Collection> {
    let c = db
        .create_collection(name, schema(DIM, Metric::L2, IndexSpec::default()))
        .unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    for b in 0..4 {
        let points = (0..100)
            .map(|i| {
                point(
                    b * 100 + i,
                    random_vec(&mut rng, DIM),
                    json!({"bucket": i % 7}),
                )
            })
            .collect();
        c.upsert(&Scope::Unscoped, points).unwrap();
    }
    c.delete(&Scope::Unscoped, (0..30).map(PointId::Num).collect())
        .unwrap();
    c.flush().unwrap();
    c.upsert(
        &Scope::Unscoped,
        vec![point(7_000, vec![1.0; DIM], json!({"bucket": 1}))],
    )
    .unwrap();
    c
}

/// Where each file's body starts in a snapshot, from its header and manifest.
fn body_offsets(bytes: &[u8]) -> Vec<(String, usize, usize)> {
    let mlen = u64::from_le_bytes(bytes[12..20].try_into().unwrap()) as usize;
    let manifest: Value = serde_json::from_slice(&bytes[24..24 + mlen]).unwrap();
    let mut at = 24 + mlen;
    manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let len = f["len"].as_u64().unwrap() as usize;
            at += len;
            (f["name"].as_str().unwrap().to_string(), at - len, len)
        })
        .collect()
}

fn refused(db: &Database, path: &Path, name: &str) -> String {
    let err = db
        .restore_snapshot(path, name, false, &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, EngineError::SnapshotDamaged(_)), "{err}");
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    let verified = db
        .verify_snapshot(path, &mut |_, _| {})
        .unwrap_err()
        .to_string();
    assert_eq!(
        verified,
        err.to_string(),
        "verify finds what restore refuses"
    );
    assert!(matches!(
        db.collection(name),
        Err(EngineError::CollectionNotFound(_))
    ));
    err.to_string()
}

#[test]
fn damaged_and_truncated_snapshots_are_refused_naming_the_bad_file_and_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = Database::open(&data, config()).unwrap();
    let c = small(&db, "src");
    let good = db
        .create_snapshot("src", Some(dir.path()), &mut |_, _| {})
        .unwrap();
    assert_eq!(good.points, c.count(&Scope::Unscoped, None).unwrap());
    assert_eq!(
        db.verify_snapshot(&good.path, &mut |_, _| {}).unwrap(),
        good
    );
    let bytes = std::fs::read(&good.path).unwrap();
    let files = body_offsets(&bytes);
    let before = collection_dirs(&data);
    assert_eq!(before, ["src"]);
    let bad = dir.path().join("bad.snapshot");

    // A flipped bit in the body of each kind of file names that file.
    for (name, start, len) in files.iter().filter(|f| f.2 > 0) {
        let mut flipped = bytes.clone();
        flipped[start + len / 2] ^= 0x04;
        std::fs::write(&bad, &flipped).unwrap();
        let e = refused(&db, &bad, "copy");
        assert!(
            e.contains(&format!("file {name}")) && e.contains("SHA-256"),
            "{e}"
        );
        assert_eq!(collection_dirs(&data), before, "nothing left after {name}");
    }
    assert!(files.iter().any(|f| f.0.ends_with("vectors-0.idx")));
    assert!(
        files.iter().any(|f| f.0.contains("deleted-")),
        "a tombstone file is in it"
    );

    // Cut off inside a file: that file is named.
    let (name, start, len) = files.iter().rev().find(|f| f.2 > 100).unwrap().clone();
    std::fs::write(&bad, &bytes[..start + len / 3]).unwrap();
    let e = refused(&db, &bad, "copy");
    assert!(
        e.contains(&format!("file {name}")) && e.contains("truncated"),
        "{e}"
    );
    // Cut off inside the manifest, or inside the header.
    std::fs::write(&bad, &bytes[..100]).unwrap();
    let e = refused(&db, &bad, "copy");
    assert!(e.contains("manifest") && e.contains("truncated"), "{e}");
    std::fs::write(&bad, &bytes[..10]).unwrap();
    assert!(refused(&db, &bad, "copy").contains("header"));
    // A flipped bit in the manifest.
    let mut flipped = bytes.clone();
    flipped[60] ^= 0x01;
    std::fs::write(&bad, &flipped).unwrap();
    assert!(refused(&db, &bad, "copy").contains("manifest: checksum mismatch"));
    assert_eq!(collection_dirs(&data), before);

    // The name is still free, and the good snapshot restores into it.
    let restored = db
        .restore_snapshot(&good.path, "copy", false, &mut |_, _| {})
        .unwrap();
    assert_eq!(restored, good);
    let copy = db.collection("copy").unwrap();
    assert_eq!(copy.count(&Scope::Unscoped, None).unwrap(), good.points);
    assert!(matches!(
        db.restore_snapshot(
            &dir.path().join("missing.snapshot"),
            "x",
            false,
            &mut |_, _| {}
        ),
        Err(EngineError::SnapshotNotFound(_))
    ));
}

#[test]
fn restore_onto_an_existing_name_needs_replace_and_replaces_atomically() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), config()).unwrap();
    let c = small(&db, "live");
    let snap = db.create_snapshot("live", None, &mut |_, _| {}).unwrap();
    c.upsert(
        &Scope::Unscoped,
        vec![point(8_000, vec![0.0; DIM], json!({}))],
    )
    .unwrap();
    let after = c.count(&Scope::Unscoped, None).unwrap();
    assert_eq!(after, snap.points + 1);

    let err = db
        .restore_snapshot(&snap.path, "live", false, &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(err, EngineError::NameTaken(_)), "{err}");
    assert_eq!(err.kind(), ErrorKind::AlreadyExists);
    assert_eq!(
        db.collection("live")
            .unwrap()
            .count(&Scope::Unscoped, None)
            .unwrap(),
        after
    );
    db.set_alias("current", "live").unwrap();
    let err = db
        .restore_snapshot(&snap.path, "current", true, &mut |_, _| {})
        .unwrap_err();
    assert!(
        matches!(err, EngineError::NameTaken(_)),
        "an alias is never replaced: {err}"
    );

    db.restore_snapshot(&snap.path, "live", true, &mut |_, _| {})
        .unwrap();
    let restored = db.collection("live").unwrap();
    assert_eq!(restored.count(&Scope::Unscoped, None).unwrap(), snap.points);
    assert!(restored
        .get(&Scope::Unscoped, &[PointId::Num(8_000)], false, false)
        .unwrap()
        .is_empty());
    assert_eq!(
        db.collection("current")
            .unwrap()
            .count(&Scope::Unscoped, None)
            .unwrap(),
        snap.points
    );
    assert_eq!(
        collection_dirs(dir.path()),
        ["live"],
        "the replaced collection is gone"
    );
}

#[test]
fn an_interrupted_replace_is_undone_or_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let collections = dir.path().join("collections");
    let points = {
        let db = Database::open(dir.path(), config()).unwrap();
        let c = small(&db, "a");
        c.count(&Scope::Unscoped, None).unwrap()
    };
    // Moved aside, the new one never landed (a crash between the two renames): put back.
    std::fs::rename(collections.join("a"), collections.join(".replaced-a")).unwrap();
    std::fs::create_dir_all(collections.join(".restore-a-1-0.tmp/segments")).unwrap();
    {
        let db = Database::open(dir.path(), config()).unwrap();
        assert_eq!(
            db.collection("a")
                .unwrap()
                .count(&Scope::Unscoped, None)
                .unwrap(),
            points
        );
    }
    assert_eq!(collection_dirs(dir.path()), ["a"]);
    // Both there (a crash before the old one was removed): the new one stays.
    std::fs::create_dir_all(collections.join(".replaced-a/segments")).unwrap();
    let db = Database::open(dir.path(), config()).unwrap();
    assert_eq!(
        db.collection("a")
            .unwrap()
            .count(&Scope::Unscoped, None)
            .unwrap(),
        points
    );
    assert_eq!(collection_dirs(dir.path()), ["a"]);
}

#[test]
fn snapshots_are_listed_found_by_name_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), config()).unwrap();
    small(&db, "a");
    small(&db, "b");
    let a1 = db.create_snapshot("a", None, &mut |_, _| {}).unwrap();
    let a2 = db.create_snapshot("a", None, &mut |_, _| {}).unwrap();
    let b1 = db.create_snapshot("b", None, &mut |_, _| {}).unwrap();
    assert_ne!(
        a1.path, a2.path,
        "two snapshots in one second get two names"
    );
    let all = db.list_snapshots(None).unwrap();
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|l| l.problem.is_none()));
    let of_a: Vec<_> = db
        .list_snapshots(Some("a"))
        .unwrap()
        .into_iter()
        .map(|l| l.snapshot.unwrap())
        .collect();
    assert_eq!(of_a.len(), 2);
    assert!(of_a.iter().all(|s| s.collection == "a" && s.seq == a1.seq));

    let file = b1.path.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(db.find_snapshot(&file).unwrap(), b1.path);
    assert_eq!(
        db.find_snapshot(file.trim_end_matches(".snapshot"))
            .unwrap(),
        b1.path
    );
    assert!(matches!(
        db.find_snapshot("nope"),
        Err(EngineError::SnapshotNotFound(_))
    ));

    // A damaged file is listed with its problem rather than hiding the others.
    std::fs::write(a2.path.with_file_name("junk.snapshot"), b"not a snapshot").unwrap();
    let listed = db.list_snapshots(Some("a")).unwrap();
    assert_eq!(listed.iter().filter(|l| l.problem.is_some()).count(), 1);

    let other = dir.path().join("notes.txt");
    std::fs::write(&other, b"keep me").unwrap();
    assert_eq!(
        db.delete_snapshot(&other).unwrap_err().kind(),
        ErrorKind::InvalidInput
    );
    assert!(other.exists());
    db.delete_snapshot(&a1.path).unwrap();
    assert!(!a1.path.exists());
    assert!(matches!(
        db.delete_snapshot(&a1.path),
        Err(EngineError::SnapshotNotFound(_))
    ));
    assert_eq!(db.list_snapshots(None).unwrap().len(), 3, "a2, junk, b1");
    assert!(matches!(
        db.create_snapshot("a", Some(&a2.path), &mut |_, _| {}),
        Err(EngineError::SnapshotExists(_))
    ));
}

/// The contents of collection `name` as (id, payload `src`) pairs, or `None` when it does not
/// exist.
fn contents(db: &Database, name: &str) -> Option<Vec<(u64, String)>> {
    let c = match db.collection(name) {
        Ok(c) => c,
        Err(EngineError::CollectionNotFound(_)) => return None,
        Err(e) => panic!("{name}: {e}"),
    };
    let page = c
        .scroll(&Scope::Unscoped, None, 10_000, None, None, true)
        .unwrap();
    Some(
        page.points
            .iter()
            .map(|p| {
                let src = p.payload.as_ref().unwrap()["src"].as_str().unwrap();
                (num(&p.id), src.to_string())
            })
            .collect(),
    )
}

/// On the simulated disk: collection `a` (20 points), collection `b` (30 points, a flushed
/// segment with tombstones and WAL records), a snapshot of `b`.
fn sim_setup(fs: &sextant_storage::fs::sim::SimFs) -> Database {
    let db = Database::open_with(Path::new("/data"), config(), fs.handle()).unwrap();
    for (name, n) in [("a", 20), ("b", 30)] {
        let c = db
            .create_collection(name, schema(DIM, Metric::L2, IndexSpec::Flat))
            .unwrap();
        let points = (0..n)
            .map(|i| point(i, vec![i as f32; DIM], json!({"src": name, "bucket": 1})))
            .collect();
        c.upsert(&Scope::Unscoped, points).unwrap();
        if name == "b" {
            c.flush().unwrap();
            c.delete(&Scope::Unscoped, vec![PointId::Num(0)]).unwrap();
            c.upsert(
                &Scope::Unscoped,
                vec![point(40, vec![0.0; DIM], json!({"src": "b", "bucket": 1}))],
            )
            .unwrap();
        }
    }
    db.create_snapshot("b", Some(Path::new("/b.snapshot")), &mut |_, _| {})
        .unwrap();
    db
}

/// A restore cut by a power loss before any one of its file operations, or failing at any one
/// of them: collection `a` is afterwards either what it was or the snapshot, whole; a restore
/// into a new name either made the whole collection or nothing; the database always opens.
#[test]
fn restores_cut_by_power_loss_or_failing_io_are_whole_or_absent() {
    use sextant_storage::fs::sim::{Fault, SimFs};
    let probe = SimFs::new();
    let (old, new) = {
        let db = sim_setup(&probe);
        let old = contents(&db, "a").unwrap();
        let new = contents(&db, "b").unwrap();
        assert_eq!(new.len(), 30, "b: 29 old + 1 new");
        (old, new)
    };
    for replace in [true, false] {
        let target = if replace { "a" } else { "c" };
        let run = |fs: &SimFs| {
            let db = sim_setup(fs);
            let start = fs.ops();
            let r = db.restore_snapshot(Path::new("/b.snapshot"), target, replace, &mut |_, _| {});
            (db, start, r.map(drop))
        };
        let probe = SimFs::new();
        let (_, start, r) = run(&probe);
        r.unwrap();
        let end = probe.ops();
        assert!(end - start > 20, "a restore is many file operations");
        let before = if replace { Some(old.clone()) } else { None };
        let after = Some(new.clone());
        let mut outcomes = [0; 2];
        // (k = end: the power goes after the restore returned.)
        for k in start..=end {
            // Power cut before operation k.
            let fs = SimFs::new();
            fs.crash_at(k, k + 1);
            let (db, _, _) = run(&fs);
            drop(db);
            let db = Database::open_with(Path::new("/data"), config(), fs.after_crash().handle())
                .unwrap_or_else(|e| panic!("power cut at restore op {}: {e}", k - start));
            let got = contents(&db, target);
            assert!(
                got == before || got == after,
                "power cut at restore op {}: {target} is neither before nor after",
                k - start
            );
            outcomes[usize::from(got == after)] += 1;
            assert_eq!(contents(&db, "b").as_ref(), Some(&new));

            // Operation k fails (EIO); the process goes on.
            if k == end {
                continue;
            }
            let fs = SimFs::new();
            let at = k;
            fs.fail_when(move |o| (o.index == at).then_some(Fault::Eio));
            let (db, _, r) = run(&fs);
            let got = contents(&db, target);
            match r {
                Ok(()) => assert_eq!(got, after, "restore reported done, op {} failed", k - start),
                Err(_) => assert_eq!(got, before, "restore reported failed at op {}", k - start),
            }
            drop(db);
            let db =
                Database::open_with(Path::new("/data"), config(), fs.restart().handle()).unwrap();
            assert_eq!(
                contents(&db, target),
                got,
                "after a restart, op {}",
                k - start
            );
        }
        assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
    }
}

/// The collection in the snapshot fixture: a dense HNSW space, a BM25 space, a payload index;
/// a flushed segment with a tombstone file, and writes only in the WAL.
fn fixture_collection(db: &Database) {
    use sextant_engine::{
        FieldType, PayloadIndexSpec, PointInput, Schema, SpaceSpec, SparseInput, SparseKind,
        SparseSpaceSpec, Vectors,
    };
    let schema = Schema {
        spaces: vec![SpaceSpec {
            name: "default".into(),
            dim: 3,
            metric: Metric::L2,
            index: IndexSpec::default(),
            model: None,
            on_disk: false,
        }],
        payload_indexes: vec![PayloadIndexSpec {
            key: "tag".into(),
            field_type: FieldType::Keyword,
        }],
        tenant_key: None,
        sparse_spaces: vec![SparseSpaceSpec {
            name: "text".into(),
            kind: SparseKind::Bm25 {
                k1: 1.2,
                b: 0.75,
                analyzer: Value::Null,
            },
            model: None,
        }],
        documents: None,
        ttl: None,
    };
    let c = db.create_collection("fixture", schema).unwrap();
    let texts = [
        "the quick brown fox",
        "a lazy dog sleeps",
        "foxes and dogs",
        "brown bread",
        "the fox again",
        "nothing here",
        "a late brown fox",
    ];
    let p = |i: u64| PointInput {
        id: PointId::Num(i),
        vectors: Vectors::Single(vec![i as f32, 0.0, 1.0]),
        payload: json!({"tag": format!("t{}", i % 2), "text": texts[i as usize - 1]}),
        sparse: vec![(
            "text".into(),
            SparseInput::Text(texts[i as usize - 1].into()),
        )],
        expires_at: None,
    };
    c.upsert(&Scope::Unscoped, (1..=6).map(p).collect())
        .unwrap();
    c.flush().unwrap();
    c.delete(&Scope::Unscoped, vec![PointId::Num(2)]).unwrap();
    c.flush().unwrap();
    c.upsert(&Scope::Unscoped, vec![p(7)]).unwrap();
    c.delete(&Scope::Unscoped, vec![PointId::Num(3)]).unwrap();
}

const FIXTURE: &str = "tests/fixtures/snapshot-v1/fixture.snapshot";

/// Writes the snapshot fixture again (run by hand, only when the format version changes and a
/// new fixture is added beside the old one): `cargo test -p sextant-engine --test integration
/// write_snapshot_fixture -- --ignored`.
#[test]
#[ignore]
fn write_snapshot_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), config()).unwrap();
    fixture_collection(&db);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let _ = std::fs::remove_file(&path);
    db.create_snapshot("fixture", Some(&path), &mut |_, _| {})
        .unwrap();
}

/// A snapshot written by format version 1 verifies and restores: the points, the deletes in
/// its tombstone file and in its WAL, BM25 and dense search.
#[test]
fn a_version_1_snapshot_restores() {
    use sextant_engine::{SparseInput, SparseSearchRequest};
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), config()).unwrap();
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE);
    let info = db.verify_snapshot(&path, &mut |_, _| {}).unwrap();
    assert_eq!((info.collection.as_str(), info.points), ("fixture", 5));
    assert!(info.files >= 7, "{info:?}");
    db.restore_snapshot(&path, "old", false, &mut |_, _| {})
        .unwrap();
    let c = db.collection("old").unwrap();
    let page = c
        .scroll(&Scope::Unscoped, None, 100, None, None, true)
        .unwrap();
    let ids: Vec<u64> = page.points.iter().map(|p| num(&p.id)).collect();
    assert_eq!(ids, [1, 4, 5, 6, 7]);
    assert_eq!(
        page.points[4].payload.as_ref().unwrap()["text"],
        "a late brown fox"
    );
    let fox = c
        .search_sparse(SparseSearchRequest {
            space: "text".into(),
            query: SparseInput::Text("fox".into()),
            k: 10,
            filter: None,
            scope: Scope::Unscoped,
            with_payload: false,
        })
        .unwrap();
    let mut hits: Vec<u64> = fox.hits.iter().map(|h| num(&h.id)).collect();
    hits.sort();
    assert_eq!(hits, [1, 5, 7], "3 (foxes) was deleted in the WAL");
    let near = c
        .search(SearchRequest {
            vector: vec![4.2, 0.0, 1.0],
            k: 2,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(
        near.hits.iter().map(|h| num(&h.id)).collect::<Vec<_>>(),
        [4, 5]
    );
}

/// Whole-database backups and their restores cut by a power cut before every file operation:
/// a backup either reads back whole (its manifest checks, and restoring it gives both
/// collections point for point) or is refused as incomplete with nothing restored; a restore
/// leaves each collection whole or absent, and the data directory opens.
#[test]
fn backups_and_their_restores_cut_by_power_loss_are_whole_or_refused() {
    use sextant_storage::fs::sim::SimFs;
    let (backup, data2) = (Path::new("/backup"), Path::new("/data2"));
    let want: Vec<_> = {
        let db = sim_setup(&SimFs::new());
        ["a", "b"].iter().map(|n| contents(&db, n)).collect()
    };
    let run_backup = |fs: &SimFs| {
        let db = sim_setup(fs);
        let start = fs.ops();
        let r = db.backup(backup, &mut |_, _, _| {});
        (db, start, r.map(drop))
    };
    let probe = SimFs::new();
    let (_, start, r) = run_backup(&probe);
    r.unwrap();
    let end = probe.ops();
    assert!(end - start > 20, "a backup is many file operations");
    let mut usable = 0;
    for k in start..=end {
        let fs = SimFs::new();
        fs.crash_at(k, k + 1);
        drop(run_backup(&fs));
        let db = Database::open_with(data2, config(), fs.after_crash().handle()).unwrap();
        if db.backup_info(backup).is_ok() {
            db.restore_backup(backup, &mut |_, _, _| {})
                .unwrap_or_else(|e| {
                    panic!(
                        "cut at backup op {}: a complete backup fails: {e}",
                        k - start
                    )
                });
            let got: Vec<_> = ["a", "b"].iter().map(|n| contents(&db, n)).collect();
            assert_eq!(got, want, "cut at backup op {}", k - start);
            usable += 1;
        } else {
            assert!(db.restore_backup(backup, &mut |_, _, _| {}).is_err());
            assert!(
                db.list_collections().unwrap().is_empty(),
                "cut at backup op {}",
                k - start
            );
        }
    }
    assert!(usable > 0 && usable <= (end - start) as usize, "{usable}");

    let run_restore = |fs: &SimFs| {
        drop(run_backup(fs));
        let db = Database::open_with(data2, config(), fs.handle()).unwrap();
        let start = fs.ops();
        let r = db.restore_backup(backup, &mut |_, _, _| {});
        (db, start, r.map(drop))
    };
    let probe = SimFs::new();
    let (_, start, r) = run_restore(&probe);
    r.unwrap();
    let end = probe.ops();
    let mut whole = 0;
    for k in start..=end {
        let fs = SimFs::new();
        fs.crash_at(k, k + 1);
        drop(run_restore(&fs));
        let db = Database::open_with(data2, config(), fs.after_crash().handle())
            .unwrap_or_else(|e| panic!("cut at restore op {}: {e}", k - start));
        for (n, w) in ["a", "b"].iter().zip(&want) {
            let got = contents(&db, n);
            assert!(
                got.is_none() || &got == w,
                "cut at restore op {}: {n} is half restored",
                k - start
            );
        }
        whole += usize::from(db.list_collections().unwrap().len() == 2);
    }
    assert!(whole > 0, "{whole}");
    eprintln!(
        "backup power cuts: {usable} usable backups; restore cuts: {whole} of {} whole",
        end - start + 1
    );
}
