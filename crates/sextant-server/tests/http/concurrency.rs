//! Many clients at once: searches during writes and merges, and a graceful stop that loses no
//! acknowledged write.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::json;
use sextant_engine::{CollectionConfig, Database, Scope};

use crate::common::start;

fn v(i: u64) -> Vec<f32> {
    (0..8)
        .map(|j| ((i * 13 + j * 7) % 29) as f32 + 1.0)
        .collect()
}

#[test]
fn writes_searches_and_merges_together_then_a_graceful_stop_keeps_every_ack() {
    let t = start(false);
    t.ok(
        "POST",
        "/collections",
        None,
        Some(json!({"name": "c", "dim": 8})),
    );
    let acked = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut threads = Vec::new();
    for w in 0..3u64 {
        let (url, acked, stop) = (t.url("/collections/c/points"), acked.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            let mut next = w * 1_000_000;
            while !stop.load(Ordering::Relaxed) {
                let ids: Vec<u64> = (next..next + 20).collect();
                next += 20;
                let pts: Vec<_> = ids
                    .iter()
                    .map(|&i| json!({"id": i, "vector": v(i)}))
                    .collect();
                match ureq::put(&url).send_json(json!({"points": pts})) {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().extend(ids),
                    Ok(_) | Err(ureq::Error::Status(..)) => {}
                    Err(_) => break, // the server stopped
                }
            }
        }));
    }
    let search_errors = Arc::new(Mutex::new(Vec::<String>::new()));
    for r in 0..2u64 {
        let (url, stop, errs) = (
            t.url("/collections/c/search"),
            stop.clone(),
            search_errors.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut i = r;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                match ureq::post(&url).send_json(json!({"vector": v(i), "k": 5})) {
                    Ok(_) => {}
                    Err(ureq::Error::Status(s, resp)) if s != 503 => errs
                        .lock()
                        .unwrap()
                        .push(format!("{s} {}", resp.into_string().unwrap_or_default())),
                    Err(_) => {}
                }
            }
        }));
    }
    // Merges while all that goes on.
    for _ in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        t.ok("POST", "/collections/c/optimize", None, None);
    }
    let before_stop = acked.lock().unwrap().len();
    assert!(before_stop > 100, "only {before_stop} points acknowledged");
    // Graceful stop while writers are still sending.
    let crate::common::TestServer { server, dir, .. } = t;
    server.stop().unwrap();
    stop.store(true, Ordering::Relaxed);
    for th in threads {
        th.join().unwrap();
    }
    assert!(
        search_errors.lock().unwrap().is_empty(),
        "{:?}",
        search_errors.lock().unwrap()
    );
    let acked = acked.lock().unwrap().clone();
    let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
    let c = db.collection("c").unwrap();
    let ids: Vec<sextant_core::PointId> = acked
        .iter()
        .map(|&i| sextant_core::PointId::Num(i))
        .collect();
    let found = c.get(&Scope::Unscoped, &ids, false, false).unwrap();
    assert_eq!(
        found.len(),
        acked.len(),
        "acknowledged writes lost across the stop"
    );
}
