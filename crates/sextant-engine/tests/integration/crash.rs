//! The crash test: a child process writes batches (with flushes and background merges going
//! on) and is killed with SIGKILL at random moments; after each kill the collection is reopened
//! and checked: every acknowledged batch is fully there, no batch is partly there, no id is
//! duplicated, payload indexes agree with payloads, and search meets its recall contract.
//!
//! The child is this test binary itself, running the ignored test [`child_writer`].

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sextant_core::{Filter, Metric, PointId};
use sextant_engine::Scope;
use sextant_engine::{
    CollectionConfig, Database, FieldType, IndexSpec, PayloadIndexSpec, PointInput, Schema,
    SearchRequest, SpaceSpec, Vectors,
};

const BATCH: u64 = 20;
const DIM: usize = 8;
const KILLS: usize = 24;

/// The operations, in order: op `2b` upserts batch `b`; op `2b+1` deletes the odd ids of
/// batch `b-2` (a no-op for b < 2). Odd batches are written and deleted through
/// `Collection::replace` (WAL op 4), even ones through `upsert` and `delete`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Step {
    Upsert(u64),
    Delete(u64),
}

fn step(op: u64) -> Step {
    let b = op / 2;
    if op.is_multiple_of(2) {
        Step::Upsert(b)
    } else {
        Step::Delete(b.saturating_sub(2))
    }
}

fn vector(id: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(id);
    (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect()
}

fn config() -> CollectionConfig {
    CollectionConfig {
        flush_points: 200,
        max_segments: 3,
        ..CollectionConfig::default()
    }
}

fn schema() -> Schema {
    Schema {
        spaces: vec![SpaceSpec {
            name: "default".into(),
            dim: DIM,
            metric: Metric::L2,
            index: IndexSpec::default(),
            model: None,
            on_disk: false,
        }],
        payload_indexes: vec![PayloadIndexSpec {
            key: "batch".into(),
            field_type: FieldType::Integer,
        }],
        tenant_key: None,
        documents: None,
        ttl: None,
        sparse_spaces: Vec::new(),
    }
}

/// Runs in the child: executes ops from `SEXTANT_CRASH_START` on, printing `ACK <op>` after
/// each one returns, until killed.
/// Opens the data directory, with the test's master key when the collection is encrypted.
fn open(dir: &Path, encrypted: bool) -> Database {
    let db = Database::open(dir, config()).unwrap();
    if encrypted {
        db.set_master_key(Some(sextant_engine::MasterKey::from_bytes([7; 32])));
    }
    db
}

#[test]
#[ignore = "run by crash_test_kill_9 as a child process"]
fn child_writer() {
    let dir = std::env::var("SEXTANT_CRASH_DIR").expect("run by the crash test");
    let start: u64 = std::env::var("SEXTANT_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let encrypted = std::env::var_os("SEXTANT_CRASH_ENCRYPTED").is_some();
    let db = open(Path::new(&dir), encrypted);
    let c = match db.collection("crash") {
        Ok(c) => c,
        Err(_) => db
            .create_collection_with("crash", schema(), encrypted)
            .unwrap(),
    };
    let merger = Arc::clone(&c);
    std::thread::spawn(move || loop {
        merger.merge().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    });
    for op in start.. {
        match step(op) {
            Step::Upsert(b) => {
                let pts = (b * BATCH..(b + 1) * BATCH)
                    .map(|id| PointInput {
                        id: PointId::Num(id),
                        vectors: Vectors::Single(vector(id)),
                        payload: json!({"batch": b}),
                        sparse: Vec::new(),
                        expires_at: None,
                    })
                    .collect();
                // Odd batches go through the replace record (document re-ingestion's).
                if b % 2 == 1 {
                    c.replace(&Scope::Unscoped, Vec::new(), pts).unwrap();
                } else {
                    c.upsert(&Scope::Unscoped, pts).unwrap();
                }
            }
            Step::Delete(b) => {
                if op >= 5 {
                    let ids = (b * BATCH..(b + 1) * BATCH)
                        .filter(|i| i % 2 == 1)
                        .map(PointId::Num)
                        .collect();
                    if b % 2 == 1 {
                        c.replace(&Scope::Unscoped, ids, Vec::new()).unwrap();
                    } else {
                        c.delete(&Scope::Unscoped, ids).unwrap();
                    }
                }
            }
        }
        println!("ACK {op}");
    }
}

/// Which ids of batch `b` should exist after ops `0..=acked` (plus, maybe, op `acked + 1`).
fn allowed_states(b: u64, acked: Option<u64>) -> Vec<Vec<u64>> {
    let all: Vec<u64> = (b * BATCH..(b + 1) * BATCH).collect();
    let evens: Vec<u64> = all.iter().copied().filter(|i| i % 2 == 0).collect();
    let state_after = |last: Option<u64>| -> Vec<u64> {
        let Some(last) = last else { return vec![] };
        let upserted = 2 * b <= last;
        let deleted = (2 * (b + 2) + 1) <= last && 2 * (b + 2) + 1 >= 5;
        match (upserted, deleted) {
            (false, _) => vec![],
            (true, false) => all.clone(),
            (true, true) => evens.clone(),
        }
    };
    let next = acked.map_or(0, |a| a + 1);
    let mut s = vec![state_after(acked), state_after(Some(next))];
    s.dedup();
    s
}

fn verify(dir: &Path, encrypted: bool, acked: Option<u64>, rng: &mut StdRng) -> usize {
    let db = open(dir, encrypted);
    let Ok(c) = db.collection("crash") else {
        assert!(acked.is_none(), "acknowledged writes but no collection");
        return 0;
    };
    // Every live point, with payload and vector.
    let mut ids = Vec::new();
    let mut offset = None;
    loop {
        let page = c
            .scroll(&Scope::Unscoped, None, 1000, offset.as_deref(), None, false)
            .unwrap();
        ids.extend(page.points.iter().map(|p| p.id.clone()));
        match page.next_offset {
            Some(o) => offset = Some(o),
            None => break,
        }
    }
    let unique: HashSet<&PointId> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "an id is duplicated");
    assert_eq!(c.count(&Scope::Unscoped, None).unwrap(), ids.len() as u64);
    let points = c.get(&Scope::Unscoped, &ids, true, true).unwrap();
    let mut by_batch: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
    for p in &points {
        let PointId::Num(id) = p.id else { panic!() };
        let b = p.payload.as_ref().unwrap()["batch"].as_u64().unwrap();
        assert_eq!(b, id / BATCH, "payload of {id}");
        assert_eq!(p.vectors.as_ref().unwrap()["default"], json!(vector(id)));
        by_batch.entry(b).or_default().push(id);
    }
    let max_b = acked.map_or(0, |a| a / 2 + 1) + 1;
    for b in 0..=max_b {
        let mut have = by_batch.remove(&b).unwrap_or_default();
        have.sort();
        let ok = allowed_states(b, acked);
        assert!(
            ok.contains(&have),
            "batch {b} after op {acked:?}: has {have:?}, allowed {ok:?}"
        );
        // The payload index agrees with the payloads.
        let f = Filter::from_json_str(&format!(
            r#"{{"must":[{{"key":"batch","match":{{"value":{b}}}}}]}}"#
        ))
        .unwrap();
        assert_eq!(
            c.count(&Scope::Unscoped, Some(&f)).unwrap(),
            have.len() as u64,
            "index count of batch {b}"
        );
    }
    assert!(by_batch.is_empty(), "batches never written: {by_batch:?}");
    // Search recall against brute force over what is there.
    if ids.len() >= 50 {
        let mut hits = 0;
        for _ in 0..10 {
            let q: Vec<f32> = (0..DIM).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let r = c
                .search(SearchRequest {
                    vector: q.clone(),
                    k: 10,
                    ..Default::default()
                })
                .unwrap();
            let mut truth: Vec<(f32, &PointId)> = points
                .iter()
                .map(|p| {
                    let PointId::Num(id) = p.id else { panic!() };
                    let d = vector(id)
                        .iter()
                        .zip(&q)
                        .map(|(a, b)| (a - b) * (a - b))
                        .sum();
                    (d, &p.id)
                })
                .collect();
            truth.sort_by(|a, b| a.0.total_cmp(&b.0));
            let truth: Vec<&PointId> = truth.iter().take(10).map(|t| t.1).collect();
            hits += r.hits.iter().filter(|h| truth.contains(&&h.id)).count();
        }
        assert!(hits >= 90, "recall@10 {hits}/100 after recovery");
    }
    ids.len()
}

#[test]
fn crash_test_kill_9() {
    kill_9_rounds(false, KILLS);
}

/// The crash test on an encrypted collection (a SIGKILL tears encrypted WAL frames).
#[test]
fn crash_test_kill_9_encrypted() {
    kill_9_rounds(true, KILLS / 2);
}

fn kill_9_rounds(encrypted: bool, kills: usize) {
    let dir = tempfile::tempdir().unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut rng = StdRng::seed_from_u64(0xdead);
    let mut acked: Option<u64> = None;
    let mut torn = 0;
    for round in 0..kills {
        let start = acked.map_or(0, |a| a + 1);
        let mut command = Command::new(&exe);
        if encrypted {
            command.env("SEXTANT_CRASH_ENCRYPTED", "1");
        }
        let mut child = command
            .args([
                "--exact",
                "crash::child_writer",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SEXTANT_CRASH_DIR", dir.path())
            .env("SEXTANT_CRASH_START", start.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut last = None;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // libtest may print "test crash::child_writer ... " on the same line first.
                if let Some((_, n)) = line.rsplit_once("ACK ") {
                    last = Some(n.trim().parse::<u64>().unwrap());
                }
            }
            last
        });
        std::thread::sleep(Duration::from_millis(rng.gen_range(40..400)));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        if let Some(a) = reader.join().unwrap() {
            acked = Some(a);
        }
        let n = verify(dir.path(), encrypted, acked, &mut rng);
        let db = open(dir.path(), encrypted);
        if let Ok(c) = db.collection("crash") {
            torn += usize::from(c.recovery().torn_tail_bytes > 0);
        }
        eprintln!("round {round}: acked through op {acked:?}, {n} live points");
    }
    assert!(
        acked.is_some_and(|a| a > 20),
        "the child made progress: {acked:?}"
    );
    eprintln!("torn WAL tails seen: {torn}");
}
