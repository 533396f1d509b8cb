//! A server on a free loopback port over a temporary data directory, and a small client.

use serde_json::Value;
use sextant_engine::{CollectionConfig, Database};
use sextant_server::config::ServerConfig;
use sextant_server::RunningServer;

pub struct TestServer {
    pub server: RunningServer,
    pub base: String,
    pub dir: tempfile::TempDir,
}

pub fn config(auth: bool) -> ServerConfig {
    let mut c = ServerConfig {
        listen: "127.0.0.1:0".into(),
        auth,
        ..ServerConfig::default()
    };
    c.limits.max_body_bytes = 1 << 20;
    c
}

pub fn start(auth: bool) -> TestServer {
    start_with(config(auth))
}

pub fn start_with(c: ServerConfig) -> TestServer {
    start_with_collections(c, CollectionConfig::default())
}

/// A server whose collections open with `cc`.
pub fn start_with_collections(c: ServerConfig, cc: CollectionConfig) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), cc).unwrap();
    let server = RunningServer::start(db, c).unwrap();
    let base = format!("http://{}", server.addr());
    TestServer { server, base, dir }
}

/// Status and JSON body (Null when the body is not JSON).
pub fn call(method: &str, url: &str, key: Option<&str>, body: Option<&Value>) -> (u16, Value) {
    let mut req = ureq::request(method, url);
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    let r = match body {
        Some(b) => req.send_json(b.clone()),
        None => req.call(),
    };
    let resp = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Sends raw bytes with a content type.
pub fn raw(
    method: &str,
    url: &str,
    key: Option<&str>,
    ctype: &str,
    body: &[u8],
) -> (u16, Value, String) {
    let mut req = ureq::request(method, url).set("Content-Type", ctype);
    if let Some(k) = key {
        req = req.set("Authorization", &format!("Bearer {k}"));
    }
    let resp = match req.send_bytes(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        // A server may answer a body over its limit before reading it all, and close: the
        // client then fails writing the rest. Status 0 stands for that.
        Err(e) if body.len() > 64 * 1024 => return (0, Value::Null, e.to_string()),
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    let text = resp.into_string().unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    )
}

impl TestServer {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
    pub fn call(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        call(method, &self.url(path), key, body.as_ref())
    }
    pub fn ok(&self, method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> Value {
        let (st, v) = self.call(method, path, key, body);
        assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
        v
    }
    /// Makes a key through the store (what `sextant keys create` does).
    pub fn key(&self, role: &str, collections: Option<Vec<&str>>, tenant: Option<Value>) -> String {
        self.server
            .state()
            .keys()
            .create(
                role.parse().unwrap(),
                collections.map(|c| c.into_iter().map(String::from).collect()),
                tenant,
                String::new(),
            )
            .unwrap()
            .1
    }
}

/// Asserts an error response: status, JSON error code, and (optionally) a word of the message.
pub fn assert_error(resp: &(u16, Value), status: u16, code: &str, needle: &str) {
    let (st, v) = resp;
    assert_eq!(*st, status, "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    let msg = v["error"]["message"].as_str().unwrap_or("");
    assert!(msg.contains(needle), "message {msg:?} lacks {needle:?}");
}
