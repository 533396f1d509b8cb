//! Snapshot routes: create, list, download, verify, restore (new name, taken name, replace),
//! delete; unknown collections and snapshots, bad names, a damaged snapshot refused naming the
//! bad part (and never the server's paths), and the admin-only, collection-limited key model.

use std::io::Read;

use serde_json::{json, Value};

use crate::common::{assert_error, start, TestServer};

fn points(range: std::ops::Range<usize>) -> Value {
    Value::Array(
        range
            .map(|i| json!({"id": i, "vector": [i as f32, 1.0, 2.0, 3.0], "payload": {"i": i}}))
            .collect(),
    )
}

fn count(t: &TestServer, c: &str, key: Option<&str>) -> u64 {
    t.ok(
        "POST",
        &format!("/collections/{c}/points/count"),
        key,
        Some(json!({})),
    )["count"]
        .as_u64()
        .unwrap()
}

/// Status, content type and body bytes of a GET.
fn download(t: &TestServer, path: &str, key: Option<&str>) -> (u16, String, Vec<u8>) {
    let mut req = ureq::get(&t.url(path));
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    let resp = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("GET {path}: {e}"),
    };
    let (status, ctype) = (resp.status(), resp.content_type().to_string());
    let mut body = Vec::new();
    resp.into_reader().read_to_end(&mut body).unwrap();
    (status, ctype, body)
}

fn setup(t: &TestServer, key: Option<&str>) {
    t.ok(
        "POST",
        "/collections",
        key,
        Some(json!({"name": "c", "dim": 4, "metric": "l2"})),
    );
    t.ok(
        "PUT",
        "/collections/c/points",
        key,
        Some(json!({"points": points(0..30)})),
    );
    t.ok("PUT", "/aliases/ca", key, Some(json!({"collection": "c"})));
}

#[test]
fn snapshots_are_created_listed_downloaded_verified_restored_and_deleted() {
    let t = start(false);
    setup(&t, None);
    let snap = {
        let (st, v) = t.call("POST", "/collections/ca/snapshots", None, None);
        assert_eq!(st, 201, "{v}");
        v
    };
    assert_eq!(snap["collection"], "c");
    assert_eq!(snap["points"], 30);
    let file = snap["snapshot"].as_str().unwrap().to_string();
    assert!(
        file.starts_with("c-") && file.ends_with(".snapshot"),
        "{file}"
    );
    assert_error(
        &t.call("POST", "/collections/nope/snapshots", None, None),
        404,
        "not_found",
        "nope",
    );
    assert_error(
        &t.call("POST", "/collections/bad.name/snapshots", None, None),
        400,
        "invalid_input",
        "bad.name",
    );

    for via in ["c", "ca"] {
        let list = t.ok("GET", &format!("/collections/{via}/snapshots"), None, None);
        assert_eq!(list["snapshots"].as_array().unwrap().len(), 1, "{list}");
        assert_eq!(list["snapshots"][0]["snapshot"], file.as_str());
    }
    let on_disk = std::fs::read(t.dir.path().join("snapshots/c").join(&file)).unwrap();
    let (st, ctype, body) = download(&t, &format!("/collections/c/snapshots/{file}"), None);
    assert_eq!(st, 200);
    assert_eq!(ctype, "application/octet-stream");
    assert!(body == on_disk, "the download is the snapshot file");
    let v = t.ok(
        "POST",
        &format!("/collections/c/snapshots/{file}/verify"),
        None,
        None,
    );
    assert_eq!(v["seq"], snap["seq"]);

    // Writes after the snapshot are not in what it restores.
    t.ok(
        "PUT",
        "/collections/c/points",
        None,
        Some(json!({"points": points(30..40)})),
    );
    let restore = format!("/collections/c/snapshots/{file}/restore");
    let r = t.ok("POST", &restore, None, Some(json!({"name": "c2"})));
    assert_eq!(r["restored"], "c2");
    assert_eq!(r["replaced"], false);
    assert_eq!(count(&t, "c2", None), 30);
    assert_error(
        &t.call("POST", &restore, None, Some(json!({}))),
        409,
        "already_exists",
        "replace",
    );
    assert_eq!(
        count(&t, "c", None),
        40,
        "a refused restore changes nothing"
    );
    let r = t.ok("POST", &restore, None, Some(json!({"replace": true})));
    assert_eq!(r["replaced"], true);
    assert_eq!(count(&t, "c", None), 30);
    assert_eq!(count(&t, "ca", None), 30, "the alias still points at it");
    assert_error(
        &t.call("POST", &restore, None, Some(json!({"name": "no/good"}))),
        400,
        "invalid_input",
        "no/good",
    );
    assert_error(
        &t.call("POST", &restore, None, Some(json!({"nmae": "x"}))),
        400,
        "invalid_input",
        "nmae",
    );

    // A damaged copy: refused by verify and restore, naming the bad part and no server path.
    let mut damaged = on_disk.clone();
    let at = damaged.len() - 3;
    damaged[at] ^= 0x20;
    std::fs::write(t.dir.path().join("snapshots/c/bad.snapshot"), &damaged).unwrap();
    let data = t.dir.path().display().to_string();
    for (method, path, body) in [
        ("POST", "/collections/c/snapshots/bad.snapshot/verify", None),
        (
            "POST",
            "/collections/c/snapshots/bad.snapshot/restore",
            Some(json!({"name": "c3"})),
        ),
    ] {
        let resp = t.call(method, path, None, body);
        assert_error(
            &resp,
            400,
            "invalid_input",
            "bad.snapshot is damaged: file ",
        );
        let msg = resp.1["error"]["message"].as_str().unwrap();
        assert!(msg.contains("SHA-256") && !msg.contains(&data), "{msg}");
    }
    let names = t.ok("GET", "/collections", None, None)["collections"].clone();
    assert_eq!(names, json!(["c", "c2"]), "nothing of the refused restore");
    let list = t.ok("GET", "/collections/c/snapshots", None, None);
    assert_eq!(list["snapshots"].as_array().unwrap().len(), 2, "{list}");
    let mut cut = on_disk.clone();
    cut.truncate(10);
    std::fs::write(t.dir.path().join("snapshots/c/cut.snapshot"), &cut).unwrap();
    let list = t.ok("GET", "/collections/c/snapshots", None, None);
    assert_eq!(list["unreadable"][0]["snapshot"], "cut.snapshot", "{list}");
    assert!(
        list["unreadable"][0]["problem"]
            .as_str()
            .unwrap()
            .contains("header"),
        "{list}"
    );

    // Names: not a snapshot file name (400), no such snapshot (404).
    assert_error(
        &t.call(
            "POST",
            "/collections/c/snapshots/.x.snapshot.tmp/verify",
            None,
            None,
        ),
        400,
        "invalid_input",
        "not a snapshot file name",
    );
    assert_error(
        &t.call(
            "DELETE",
            "/collections/c/snapshots/nope.snapshot",
            None,
            None,
        ),
        404,
        "not_found",
        "nope.snapshot",
    );
    let d = t.ok(
        "DELETE",
        &format!("/collections/c/snapshots/{file}"),
        None,
        None,
    );
    assert_eq!(d["deleted"], file.as_str());
    let (st, _, _) = download(&t, &format!("/collections/c/snapshots/{file}"), None);
    assert_eq!(st, 404);
    // The snapshots of a deleted collection stay listed and restorable.
    t.ok("DELETE", "/collections/c2", None, None);
    let s2 = t.call("POST", "/collections/c/snapshots", None, None).1;
    t.ok("DELETE", "/collections/c", None, None);
    let f2 = s2["snapshot"].as_str().unwrap();
    t.ok(
        "POST",
        &format!("/collections/c/snapshots/{f2}/restore"),
        None,
        Some(json!({})),
    );
    assert_eq!(count(&t, "c", None), 30);
}

#[test]
fn snapshots_need_an_admin_key_that_covers_the_collection() {
    let t = start(true);
    let admin = t.key("admin", None, None);
    setup(&t, Some(&admin));
    t.ok(
        "POST",
        "/collections",
        Some(&admin),
        Some(json!({"name": "other", "dim": 4})),
    );
    let writer = t.key("write", None, None);
    let other_admin = t.key("admin", Some(vec!["other"]), None);
    let c_admin = t.key("admin", Some(vec!["c"]), None);
    let (st, snap) = t.call("POST", "/collections/c/snapshots", Some(&c_admin), None);
    assert_eq!(st, 201, "{snap}");
    let file = snap["snapshot"].as_str().unwrap();
    let each = |key: Option<&str>| {
        vec![
            t.call("POST", "/collections/c/snapshots", key, None),
            t.call("GET", "/collections/c/snapshots", key, None),
            t.call(
                "GET",
                &format!("/collections/c/snapshots/{file}"),
                key,
                None,
            ),
            t.call(
                "POST",
                &format!("/collections/c/snapshots/{file}/verify"),
                key,
                None,
            ),
            t.call(
                "POST",
                &format!("/collections/c/snapshots/{file}/restore"),
                key,
                Some(json!({"name": "c9"})),
            ),
            t.call(
                "DELETE",
                &format!("/collections/c/snapshots/{file}"),
                key,
                None,
            ),
        ]
    };
    for resp in each(Some(&writer)) {
        assert_error(&resp, 403, "forbidden", "role write");
    }
    for resp in each(Some(&other_admin)) {
        assert_error(&resp, 403, "forbidden", "collection \"c\"");
    }
    for resp in each(None) {
        assert_eq!(resp.0, 401, "{}", resp.1);
    }
    // An admin of `c` may not restore into a collection it does not cover.
    assert_error(
        &t.call(
            "POST",
            &format!("/collections/c/snapshots/{file}/restore"),
            Some(&c_admin),
            Some(json!({"name": "other", "replace": true})),
        ),
        403,
        "forbidden",
        "collection \"other\"",
    );
    let (st, _, body) = download(
        &t,
        &format!("/collections/c/snapshots/{file}"),
        Some(&c_admin),
    );
    assert_eq!(
        (st, body.len() as u64),
        (200, snap["bytes"].as_u64().unwrap())
    );
    let r = t.ok(
        "POST",
        &format!("/collections/c/snapshots/{file}/restore"),
        Some(&admin),
        Some(json!({"name": "c9"})),
    );
    assert_eq!(r["collection"]["points"], 30);
}

/// Whole-database backups over HTTP: create, list, restore (refused while the names are taken,
/// then every collection and alias back), delete; names that are not backups, and keys that do
/// not cover every collection.
#[test]
fn backups_are_created_listed_restored_and_deleted() {
    let t = start(true);
    let admin = t.key("admin", None, None);
    let a = Some(admin.as_str());
    setup(&t, a);
    t.ok(
        "POST",
        "/collections",
        a,
        Some(json!({"name": "d", "dim": 4, "metric": "l2"})),
    );
    t.ok(
        "PUT",
        "/collections/d/points",
        a,
        Some(json!({"points": points(0..7)})),
    );
    let made = t.call("POST", "/backups", a, None);
    assert_eq!(made.0, 201, "{}", made.1);
    let name = made.1["backup"].as_str().unwrap().to_string();
    assert!(name.starts_with("backup-"), "{name}");
    let names: Vec<&str> = made.1["collections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c", "d"]);
    assert_eq!(made.1["aliases"]["ca"], "c");
    let listed = t.ok("GET", "/backups", a, None);
    assert_eq!(listed["backups"][0]["backup"], name.as_str());
    assert!(!listed
        .to_string()
        .contains(&t.dir.path().display().to_string()));
    // The names are taken: 409, nothing written.
    let r = t.call("POST", &format!("/backups/{name}/restore"), a, None);
    assert_error(&r, 409, "already_exists", "");
    t.ok("DELETE", "/collections/c", a, None);
    t.ok("DELETE", "/collections/d", a, None);
    let back = t.ok("POST", &format!("/backups/{name}/restore"), a, None);
    assert_eq!(back["backup"], name.as_str());
    assert_eq!(count(&t, "c", a), 30);
    assert_eq!(count(&t, "d", a), 7);
    assert_eq!(count(&t, "ca", a), 30);
    // Keys: read and write keys, and an admin key limited to a collection, are 403.
    for k in [
        t.key("read", None, None),
        t.key("write", None, None),
        t.key("admin", Some(vec!["c"]), None),
    ] {
        for (m, path) in [
            ("POST", "/backups".to_string()),
            ("GET", "/backups".to_string()),
            ("POST", format!("/backups/{name}/restore")),
            ("DELETE", format!("/backups/{name}")),
        ] {
            assert_eq!(t.call(m, &path, Some(&k), None).0, 403, "{m} {path}");
        }
    }
    assert_eq!(t.call("GET", "/backups", None, None).0, 401);
    // Names that are not backups.
    assert_error(
        &t.call("POST", "/backups/..%2Fcollections/restore", a, None),
        400,
        "invalid_input",
        "",
    );
    assert_error(
        &t.call("DELETE", "/backups/nope", a, None),
        404,
        "not_found",
        "nope",
    );
    t.ok("DELETE", &format!("/backups/{name}"), a, None);
    assert_error(
        &t.call("DELETE", &format!("/backups/{name}"), a, None),
        404,
        "not_found",
        "",
    );
    assert!(t.ok("GET", "/backups", a, None)["backups"]
        .as_array()
        .unwrap()
        .is_empty());
}
