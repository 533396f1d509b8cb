//! Encryption at rest: no planted payload string, BM25 term or vector is anywhere on disk (data
//! directory and snapshots, every byte scanned; the same scan finds them in a plain
//! collection); a missing or wrong master key is a clear error, never garbage; snapshots
//! restore with the master key alone and a damaged one is refused; master-key rotation under a
//! concurrent write load loses nothing; data-key rotation rewrites every file.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use sextant_core::{Metric, PointId};
use sextant_engine::{
    Collection, CollectionConfig, Database, EngineError, IndexSpec, MasterKey, PointInput, Schema,
    Scope, SearchRequest, SparseInput, SparseKind, SparseSearchRequest, SparseSpaceSpec, Vectors,
};

use crate::engine::schema as dense_schema;

const DIM: usize = 8;
const SECRET: &str = "PLANTED-SECRET-7f3a9c";
/// A word that only the planted texts hold (it reaches the BM25 term dictionary).
const TERM: &str = "zygomorphicity";

fn key(byte: u8) -> MasterKey {
    MasterKey::from_bytes([byte; 32])
}

fn config() -> CollectionConfig {
    CollectionConfig {
        flush_points: 50,
        max_segments: 3,
        ..CollectionConfig::default()
    }
}

fn schema() -> Schema {
    let mut s = dense_schema(DIM, Metric::L2, IndexSpec::default());
    s.sparse_spaces.push(SparseSpaceSpec {
        name: "text".into(),
        kind: SparseKind::Bm25 {
            k1: 1.2,
            b: 0.75,
            analyzer: json!({"split": "unicode_words", "lowercase": true, "min_chars": 1,
                             "max_bytes": 40, "stop_words": "english"}),
        },
        model: None,
    });
    s
}

/// A vector no other point has, whose bytes are easy to find.
fn planted_vec(i: u64) -> Vec<f32> {
    (0..DIM)
        .map(|d| 1000.0 + i as f32 * 10.0 + d as f32 * 0.125)
        .collect()
}

fn point(i: u64) -> PointInput {
    PointInput {
        id: PointId::Num(i),
        vectors: Vectors::Single(planted_vec(i)),
        payload: json!({"secret": format!("{SECRET}-{i}"), "bucket": i % 5, "tag": "t"}),
        sparse: vec![(
            "text".into(),
            SparseInput::Text(format!("the {TERM} of point {i}")),
        )],
        expires_at: None,
    }
}

/// Fills `c` so that every kind of file exists: flushed and merged segments (vectors, HNSW
/// graph, payloads, payload index, BM25 postings and dictionary), tombstones, WAL records.
fn fill(c: &Collection) {
    for b in 0..6u64 {
        c.upsert(&Scope::Unscoped, (b * 40..b * 40 + 40).map(point).collect())
            .unwrap();
    }
    c.flush().unwrap();
    c.wait_for_merge();
    c.delete(&Scope::Unscoped, (0..15).map(PointId::Num).collect())
        .unwrap();
    c.flush().unwrap();
    c.upsert(&Scope::Unscoped, (500..510).map(point).collect())
        .unwrap();
}

pub(crate) fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// Which planted things appear in the bytes of the files under `dir`.
fn leaks(dir: &Path) -> Vec<String> {
    let mut needles: Vec<(String, Vec<u8>)> = vec![
        ("payload string".into(), SECRET.as_bytes().to_vec()),
        ("BM25 term".into(), TERM.as_bytes().to_vec()),
    ];
    for i in [20u64, 100, 239, 505] {
        let bytes: Vec<u8> = planted_vec(i)[..4]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        needles.push((format!("vector of point {i}"), bytes));
    }
    let mut found = Vec::new();
    for f in files(dir) {
        let bytes = std::fs::read(&f).unwrap();
        for (what, n) in &needles {
            if bytes.windows(n.len()).any(|w| w == &n[..]) {
                found.push(format!("{what} in {}", f.display()));
            }
        }
    }
    found
}

fn all_ids(c: &Collection) -> Vec<PointId> {
    c.scroll(&Scope::Unscoped, None, 100_000, None, None, false)
        .unwrap()
        .points
        .into_iter()
        .map(|p| p.id)
        .collect()
}

fn search(c: &Collection, i: u64) -> Vec<PointId> {
    c.search(SearchRequest {
        space: None,
        vector: planted_vec(i),
        k: 3,
        ..SearchRequest::default()
    })
    .unwrap()
    .hits
    .into_iter()
    .map(|h| h.id)
    .collect()
}

#[test]
fn no_planted_byte_is_on_disk_or_in_a_snapshot() {
    for encrypted in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), config()).unwrap();
        db.set_master_key(Some(key(1)));
        let c = db.create_collection_with("c", schema(), encrypted).unwrap();
        fill(&c);
        assert_eq!(c.encryption_status().is_some(), encrypted);
        db.create_snapshot("c", None, &mut |_, _| {}).unwrap();
        let found = leaks(dir.path());
        if encrypted {
            assert!(found.is_empty(), "encrypted, yet found: {found:#?}");
        } else {
            // The control: the scan does find them when nothing is encrypted.
            for what in ["payload string", "BM25 term", "vector of point 100"] {
                assert!(
                    found.iter().any(|f| f.starts_with(what)),
                    "the scan should find the {what} in a plain collection: {found:#?}"
                );
            }
        }
        // Everything reads back, searches work, and the same after a reopen.
        let check = |c: &Collection| {
            assert_eq!(all_ids(c).len(), 240 - 15 + 10);
            assert_eq!(search(c, 100)[0], PointId::Num(100));
            let got = c
                .get(&Scope::Unscoped, &[PointId::Num(505)], true, true)
                .unwrap();
            assert_eq!(
                got[0].payload.as_ref().unwrap()["secret"],
                format!("{SECRET}-505")
            );
            let bm25 = c
                .search_sparse(SparseSearchRequest {
                    space: "text".into(),
                    query: SparseInput::Text(format!("{TERM} 77")),
                    k: 1,
                    filter: None,
                    scope: Scope::Unscoped,
                    with_payload: false,
                })
                .unwrap();
            assert_eq!(bm25.hits[0].id, PointId::Num(77));
        };
        check(&c);
        drop(c);
        drop(db);
        let db = Database::open(dir.path(), config()).unwrap();
        db.set_master_key(Some(key(1)));
        check(&db.collection("c").unwrap());
    }
}

#[test]
fn a_missing_or_wrong_master_key_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path(), config()).unwrap();
        let e = db.create_collection_with("c", schema(), true).unwrap_err();
        assert!(matches!(e, EngineError::EncryptionKey(_)), "{e}");
        assert!(!dir.path().join("collections/c").exists(), "nothing made");
        db.set_master_key(Some(key(1)));
        fill(&db.create_collection_with("c", schema(), true).unwrap());
        db.create_collection("plain", schema()).unwrap();
        db.create_snapshot("c", Some(&dir.path().join("c.snapshot")), &mut |_, _| {})
            .unwrap();
    }
    let db = Database::open(dir.path(), config()).unwrap();
    let e = db.collection("c").unwrap_err();
    assert!(matches!(e, EngineError::EncryptionKey(_)), "{e}");
    assert!(e.to_string().contains("give the master key"), "{e}");
    assert_eq!(e.kind(), sextant_engine::ErrorKind::Forbidden);
    // A plain collection needs no key.
    db.collection("plain").unwrap();
    db.set_master_key(Some(key(2)));
    let e = db.collection("c").unwrap_err().to_string();
    assert!(
        e.contains(key(1).id()) && e.contains(key(2).id()),
        "names both key ids: {e}"
    );
    let snap = dir.path().join("c.snapshot");
    for err in [
        db.verify_snapshot(&snap, &mut |_, _| {}).unwrap_err(),
        db.restore_snapshot(&snap, "r", false, &mut |_, _| {})
            .unwrap_err(),
    ] {
        assert!(matches!(err, EngineError::EncryptionKey(_)), "{err}");
    }
    assert!(!dir.path().join("collections/r").exists());
    let listing = db.list_snapshots(None).unwrap();
    assert!(listing.iter().all(|l| l.snapshot.is_none()));
    // The key file altered: the unwrap fails authentication.
    let kf = dir.path().join("collections/c/keys");
    let mut bytes = std::fs::read(&kf).unwrap();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let at = text.find("\"wrapped\": \"").unwrap() + 14;
    bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
    // Keep the envelope's checksum right, so that only the authentication can catch it.
    let body = bytes[24..].to_vec();
    bytes[20..24].copy_from_slice(&crc32fast::hash(&body).to_le_bytes());
    std::fs::write(&kf, &bytes).unwrap();
    db.set_master_key(Some(key(1)));
    let e = db.collection("c").unwrap_err().to_string();
    assert!(e.contains("fails authentication"), "{e}");
}

#[test]
fn an_encrypted_snapshot_restores_with_the_master_key_alone() {
    let src = tempfile::tempdir().unwrap();
    let db = Database::open(src.path(), config()).unwrap();
    db.set_master_key(Some(key(3)));
    let c = db.create_collection_with("c", schema(), true).unwrap();
    fill(&c);
    let snap = src.path().join("c.snapshot");
    db.create_snapshot("c", Some(&snap), &mut |_, _| {})
        .unwrap();
    let want = all_ids(&c);
    // Another data directory, which never saw the collection's key file.
    let dst = tempfile::tempdir().unwrap();
    let other = Database::open(dst.path(), config()).unwrap();
    other.set_master_key(Some(key(3)));
    let info = other.verify_snapshot(&snap, &mut |_, _| {}).unwrap();
    assert_eq!(info.collection, "c");
    let listed = db.list_snapshots_in(src.path()).unwrap();
    assert_eq!(listed[0].snapshot.as_ref().unwrap().seq, info.seq);
    other
        .restore_snapshot(&snap, "restored", false, &mut |_, _| {})
        .unwrap();
    let r = other.collection("restored").unwrap();
    assert_eq!(all_ids(&r), want);
    assert_eq!(search(&r, 100)[0], PointId::Num(100));
    assert!(r.encryption_status().is_some(), "restored encrypted");
    assert!(leaks(dst.path()).is_empty());
    // A whole-database backup holding the encrypted collection and a plain one restores into
    // a third directory with the master key (and the encrypted one stays encrypted).
    db.create_collection("plain", schema()).unwrap();
    let backup = src.path().join("backup");
    db.backup(&backup, &mut |_, _, _| {}).unwrap();
    assert!(leaks(&backup).is_empty(), "{:?}", leaks(&backup));
    let third = tempfile::tempdir().unwrap();
    let db3 = Database::open(third.path(), config()).unwrap();
    let e = db3.restore_backup(&backup, &mut |_, _, _| {}).unwrap_err();
    assert!(matches!(e, EngineError::EncryptionKey(_)), "{e}");
    assert!(
        db3.list_collections().unwrap().is_empty(),
        "nothing restored"
    );
    db3.set_master_key(Some(key(3)));
    db3.restore_backup(&backup, &mut |_, _, _| {}).unwrap();
    let c3 = db3.collection("c").unwrap();
    assert_eq!(all_ids(&c3), want);
    assert!(c3.encryption_status().is_some());
    assert!(db3
        .collection("plain")
        .unwrap()
        .encryption_status()
        .is_none());
    // A flipped bit anywhere after the header is refused, naming the damage; nothing is made.
    let good = std::fs::read(&snap).unwrap();
    for at in [200, good.len() / 2, good.len() - 5] {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        let p = dst.path().join(format!("bad-{at}.snapshot"));
        std::fs::write(&p, &bad).unwrap();
        let e = other
            .restore_snapshot(&p, &format!("bad{at}"), false, &mut |_, _| {})
            .unwrap_err();
        assert!(matches!(e, EngineError::SnapshotDamaged(_)), "at {at}: {e}");
        assert!(!dst.path().join(format!("collections/bad{at}")).exists());
    }
    // Cut short.
    let p = dst.path().join("short.snapshot");
    std::fs::write(&p, &good[..good.len() - 100]).unwrap();
    let e = other
        .restore_snapshot(&p, "short", false, &mut |_, _| {})
        .unwrap_err();
    assert!(matches!(e, EngineError::SnapshotDamaged(_)), "{e}");
}

#[test]
fn master_key_rotation_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let acked = Arc::new(Mutex::new(Vec::new()));
    {
        let db = Arc::new(Database::open(dir.path(), config()).unwrap());
        db.set_master_key(Some(key(4)));
        db.create_collection_with("a", schema(), true).unwrap();
        db.create_collection_with("b", schema(), true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writers: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|name| {
                let (db, stop, acked) = (db.clone(), stop.clone(), acked.clone());
                std::thread::spawn(move || {
                    let c = db.collection(name).unwrap();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) || i < 100 {
                        c.upsert(&Scope::Unscoped, vec![point(i)]).unwrap();
                        acked.lock().unwrap().push((name, i));
                        i += 1;
                    }
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(100));
        let rotated = db.rotate_master_key(&key(5)).unwrap();
        assert_eq!(rotated, ["a", "b"]);
        // Run again (as after an interruption): nothing left to do.
        assert!(db.rotate_master_key(&key(5)).unwrap().is_empty());
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
        let c = db.collection("a").unwrap();
        assert_eq!(c.encryption_status().unwrap().master_key_id, key(5).id());
        // A snapshot taken now carries the new wrap.
        db.create_snapshot("a", Some(&dir.path().join("a.snapshot")), &mut |_, _| {})
            .unwrap();
    }
    let db = Database::open(dir.path(), config()).unwrap();
    db.set_master_key(Some(key(4)));
    assert!(matches!(
        db.collection("a"),
        Err(EngineError::EncryptionKey(_))
    ));
    db.set_master_key(Some(key(5)));
    let acked = acked.lock().unwrap().clone();
    for name in ["a", "b"] {
        let got: std::collections::HashSet<PointId> =
            all_ids(&db.collection(name).unwrap()).into_iter().collect();
        let want: Vec<u64> = acked
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|a| a.1)
            .collect();
        assert!(want.len() >= 100);
        for i in want {
            assert!(
                got.contains(&PointId::Num(i)),
                "{name}: acknowledged {i} lost"
            );
        }
    }
    db.verify_snapshot(&dir.path().join("a.snapshot"), &mut |_, _| {})
        .unwrap();
}

/// The data key generation of every file of the collection in `dir` (but the key file).
fn generations(dir: &Path) -> std::collections::BTreeSet<u32> {
    files(dir)
        .into_iter()
        .filter(|f| f.file_name().unwrap() != "keys")
        .map(|f| {
            let b = std::fs::read(&f).unwrap();
            assert_eq!(&b[..8], b"SXTCRYP\0", "{} is encrypted", f.display());
            u32::from_le_bytes(b[12..16].try_into().unwrap())
        })
        .collect()
}

#[test]
fn data_key_rotation_rewrites_every_file_while_writes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let db = Arc::new(Database::open(dir.path(), config()).unwrap());
    db.set_master_key(Some(key(6)));
    let c = db.create_collection_with("c", schema(), true).unwrap();
    fill(&c);
    let cdir = dir.path().join("collections/c");
    assert_eq!(generations(&cdir), [1].into());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (c, stop) = (c.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut acked = Vec::new();
            let mut i = 1000u64;
            while !stop.load(Ordering::Relaxed) {
                c.upsert(&Scope::Unscoped, vec![point(i)]).unwrap();
                acked.push(i);
                i += 1;
            }
            acked
        })
    };
    std::thread::sleep(std::time::Duration::from_millis(50));
    assert_eq!(c.rotate_data_key().unwrap(), 2);
    stop.store(true, Ordering::Relaxed);
    let acked = writer.join().unwrap();
    let status = c.encryption_status().unwrap();
    assert_eq!(
        (status.current_generation, status.generations),
        (2, vec![2])
    );
    // Files written after the rotation finished are of generation 2 as well.
    assert_eq!(generations(&cdir), [2].into());
    drop(c);
    drop(db);
    let db = Database::open(dir.path(), config()).unwrap();
    db.set_master_key(Some(key(6)));
    let c = db.collection("c").unwrap();
    let got: std::collections::HashSet<PointId> = all_ids(&c).into_iter().collect();
    assert_eq!(got.len(), 235 + acked.len());
    for i in acked {
        assert!(got.contains(&PointId::Num(i)));
    }
    assert_eq!(search(&c, 239)[0], PointId::Num(239));
    // A plain collection refuses key operations by name.
    let p = db.create_collection("plain", schema()).unwrap();
    let e = p.rotate_data_key().unwrap_err().to_string();
    assert!(e.contains("not encrypted"), "{e}");
}
