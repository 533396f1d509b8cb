//! Encrypted collections over HTTP: created with `"encrypted": true` on a server holding a
//! master key (their files hold none of the planted payload), refused with 403 on a server
//! without one, and encrypted snapshots made and verified through the snapshot routes.

use serde_json::json;
use sextant_engine::{CollectionConfig, Database, MasterKey};
use sextant_server::RunningServer;

use crate::common::{assert_error, config, start, TestServer};

const SECRET: &str = "HTTP-PLANTED-SECRET";

fn start_with_key() -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
    db.set_master_key(Some(MasterKey::from_bytes([9; 32])));
    let server = RunningServer::start(db, config(false)).unwrap();
    let base = format!("http://{}", server.addr());
    TestServer { server, base, dir }
}

#[test]
fn encrypted_collections_over_http() {
    let t = start_with_key();
    t.ok(
        "POST",
        "/collections",
        None,
        Some(json!({"name": "e", "dim": 3, "metric": "l2", "encrypted": true})),
    );
    let points: Vec<_> = (0..20)
        .map(|i| json!({"id": i, "vector": [i as f32, 1.0, 2.0], "payload": {"s": format!("{SECRET}-{i}")}}))
        .collect();
    t.ok(
        "PUT",
        "/collections/e/points",
        None,
        Some(json!({"points": points})),
    );
    let hits = t.ok(
        "POST",
        "/collections/e/search",
        None,
        Some(json!({"vector": [5.0, 1.0, 2.0], "k": 1})),
    );
    assert_eq!(hits["hits"][0]["id"], 5, "{hits}");
    let snap = t.ok("POST", "/collections/e/snapshots", None, None);
    let name = snap["snapshot"].as_str().unwrap().to_string();
    t.ok(
        "POST",
        &format!("/collections/e/snapshots/{name}/verify"),
        None,
        None,
    );
    let mut dirs = vec![t.dir.path().to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else {
                let b = std::fs::read(&p).unwrap();
                assert!(
                    !b.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()),
                    "{} holds the planted payload",
                    p.display()
                );
            }
        }
    }
    // Without a master key the server refuses to create one, naming why.
    let plain = start(false);
    let r = plain.call(
        "POST",
        "/collections",
        None,
        Some(json!({"name": "e", "dim": 3, "encrypted": true})),
    );
    assert_error(&r, 403, "forbidden", "master key");
    assert_eq!(plain.call("GET", "/collections/e", None, None).0, 404);
}
