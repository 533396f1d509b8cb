//! `sextant._native.HttpTransport`: the HTTP backend's transport for `http://` servers, in Rust.
//!
//! A search over HTTP spends more CPU in the client than in the server when the client is
//! Python's `http.client` (BENCHMARKS.md, "HTTP serving": 334 µs of client CPU a query against
//! 298 µs in the server). This sends the same requests through a pooled keep-alive `ureq`
//! agent with the GIL released, and for a vector search also writes the body from the numpy
//! array and builds the `Hit`s from the answer here, so the Python side only picks the route.
//! What it returns is what the server said (status, content type, `Retry-After`, body): the
//! Python backend keeps one place that turns an error answer into the package's exceptions.
//!
//! A request that never got an answer raises `TimeoutError` (no answer in time),
//! `ConnectionRefusedError` (no connection) or `ConnectionResetError` (the connection dropped:
//! a pooled one the server closed while idle, say); the caller retries a read once after the
//! last and turns all three into `TransportError`.

use std::io::Read;
use std::time::Duration;

use numpy::PyReadonlyArray1;
use pyo3::exceptions::{
    PyConnectionRefusedError, PyConnectionResetError, PyTimeoutError, PyValueError,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};
use serde::Deserialize;
use serde_json::{Map, Value};

use crate::hit::Hit;

/// What an answer carried: status, content type, `Retry-After`, and the body `B`.
type Reply<B> = (u16, Option<String>, Option<String>, B);

/// An answer as read.
type Answer = Reply<Vec<u8>>;

/// A search's answer: its hits when it was a 200 with the server's JSON, else the body.
type Parsed = Reply<Result<SearchAnswer, Vec<u8>>>;

/// A pooled keep-alive client of one server (thread-safe: every Python thread shares it).
#[pyclass(module = "sextant._native", frozen)]
#[derive(Debug)]
pub struct HttpTransport {
    agent: ureq::Agent,
    base: String,
    headers: Vec<(String, String)>,
}

/// A request that got no answer, by what the caller does about it.
#[derive(Debug)]
enum Failure {
    Timeout(String),
    Refused(String),
    Dropped(String),
}

impl From<Failure> for PyErr {
    fn from(f: Failure) -> PyErr {
        match f {
            Failure::Timeout(m) => PyTimeoutError::new_err(m),
            Failure::Refused(m) => PyConnectionRefusedError::new_err(m),
            Failure::Dropped(m) => PyConnectionResetError::new_err(m),
        }
    }
}

impl Failure {
    fn of(t: &ureq::Transport) -> Failure {
        let timed_out = std::error::Error::source(t)
            .and_then(|e| e.downcast_ref::<std::io::Error>())
            .is_some_and(|e| {
                matches!(
                    e.kind(),
                    std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
                )
            });
        match t.kind() {
            _ if timed_out => Failure::Timeout(t.to_string()),
            ureq::ErrorKind::ConnectionFailed | ureq::ErrorKind::Dns => {
                Failure::Refused(t.to_string())
            }
            _ => Failure::Dropped(t.to_string()),
        }
    }
}

impl HttpTransport {
    fn send(
        &self,
        method: &str,
        target: &str,
        body: Option<&[u8]>,
        ctype: &str,
    ) -> Result<Answer, Failure> {
        let mut req = self
            .agent
            .request(method, &format!("{}{target}", self.base));
        for (k, v) in &self.headers {
            req = req.set(k, v);
        }
        let sent = match body {
            Some(b) => req.set("Content-Type", ctype).send_bytes(b),
            None if matches!(method, "POST" | "PUT") => req.send_bytes(&[]),
            None => req.call(),
        };
        let resp = match sent {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(ureq::Error::Transport(t)) => return Err(Failure::of(&t)),
        };
        let status = resp.status();
        let ctype = resp.header("Content-Type").map(str::to_string);
        let retry_after = resp.header("Retry-After").map(str::to_string);
        let mut out = Vec::new();
        resp.into_reader()
            .read_to_end(&mut out)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => {
                    Failure::Timeout(format!("reading the answer: {e}"))
                }
                _ => Failure::Dropped(format!("reading the answer: {e}")),
            })?;
        Ok((status, ctype, retry_after, out))
    }
}

/// The part of a search answer a vector search turns into `Hit`s.
#[derive(Deserialize)]
struct SearchAnswer {
    hits: Vec<SearchHit>,
}

#[derive(Deserialize)]
struct SearchHit {
    id: Value,
    #[serde(default)]
    score: f64,
    #[serde(default)]
    payload: Option<Value>,
    #[serde(default)]
    vectors: Option<Map<String, Value>>,
}

#[pymethods]
impl HttpTransport {
    /// A client of `base` (`http://HOST:PORT`; targets carry any path prefix) sending
    /// `headers` on every request, waiting at most `timeout` seconds for each.
    #[new]
    fn new(base: &str, headers: Vec<(String, String)>, timeout: f64) -> PyResult<Self> {
        if !base.starts_with("http://") {
            return Err(PyValueError::new_err(format!(
                "the native transport speaks plain http://, not {base:?}"
            )));
        }
        if !(timeout.is_finite() && timeout > 0.0) {
            return Err(PyValueError::new_err(format!(
                "timeout must be a positive number of seconds, got {timeout}"
            )));
        }
        // No redirects, as `http.client`: a 3xx is answered as it is, and an API key never
        // follows it to another host.
        let agent = ureq::AgentBuilder::new()
            .timeout(Duration::from_secs_f64(timeout))
            .max_idle_connections_per_host(64)
            .redirects(0)
            .build();
        Ok(HttpTransport {
            agent,
            base: base.trim_end_matches('/').to_string(),
            headers,
        })
    }

    /// Sends a request; returns `(status, content_type, retry_after, body)`.
    #[pyo3(signature = (method, target, body=None, content_type="application/json"))]
    fn request<'py>(
        &self,
        py: Python<'py>,
        method: &str,
        target: &str,
        body: Option<&[u8]>,
        content_type: &str,
    ) -> PyResult<Reply<Bound<'py, PyBytes>>> {
        let body = body.map(<[u8]>::to_vec);
        let (status, ctype, retry, out) =
            py.detach(|| self.send(method, target, body.as_deref(), content_type))?;
        Ok((status, ctype, retry, PyBytes::new(py, &out)))
    }

    /// A vector search: POSTs `{"vector": [...], "k", "with_payload", "with_vector"[, "ef"]
    /// [, ...extra]}` to `target` (`extra`: the rarer options as a JSON object). A 200 answer
    /// gives `(200, None, None, [Hit])`, with each hit's id, score, payload and vectors; any
    /// other gives the answer as [`Self::request`] does.
    #[pyo3(signature = (target, vector, k, ef=None, with_payload=true, with_vector=false, extra=None))]
    #[allow(clippy::too_many_arguments)]
    fn search<'py>(
        &self,
        py: Python<'py>,
        target: &str,
        vector: PyReadonlyArray1<'py, f32>,
        k: usize,
        ef: Option<usize>,
        with_payload: bool,
        with_vector: bool,
        extra: Option<&[u8]>,
    ) -> PyResult<Reply<Bound<'py, PyAny>>> {
        let v = vector
            .as_slice()
            .map_err(|e| PyValueError::new_err(e.to_string()))?;
        if let Some(x) = v.iter().find(|x| !x.is_finite()) {
            return Err(PyValueError::new_err(format!(
                "vector: the query holds {x}, not a finite number"
            )));
        }
        let rest = match extra.map(<[u8]>::trim_ascii) {
            None => &b""[..],
            Some(e) => e
                .strip_prefix(b"{")
                .and_then(|r| r.strip_suffix(b"}"))
                .ok_or_else(|| PyValueError::new_err("extra: a JSON object"))?
                .trim_ascii(),
        };
        let mut body = Vec::with_capacity(v.len() * 12 + rest.len() + 64);
        body.extend_from_slice(b"{\"vector\":");
        serde_json::to_writer(&mut body, v).map_err(|e| PyValueError::new_err(e.to_string()))?;
        use std::io::Write as _;
        write!(
            body,
            ",\"k\":{k},\"with_payload\":{with_payload},\"with_vector\":{with_vector}"
        )?;
        if let Some(ef) = ef {
            write!(body, ",\"ef\":{ef}")?;
        }
        if !rest.is_empty() {
            body.push(b',');
            body.extend_from_slice(rest);
        }
        body.push(b'}');
        let answer = py.detach(|| -> Result<Parsed, Failure> {
            let (status, ctype, retry, out) =
                self.send("POST", target, Some(&body), "application/json")?;
            if status != 200 {
                return Ok((status, ctype, retry, Err(out)));
            }
            match serde_json::from_slice::<SearchAnswer>(&out) {
                Ok(a) => Ok((status, ctype, retry, Ok(a))),
                // Not the server's JSON: the caller says so with the body in hand.
                Err(_) => Ok((status, ctype, retry, Err(out))),
            }
        });
        let (status, ctype, retry, parsed) = answer?;
        match parsed {
            Ok(a) => {
                let hits = PyList::empty(py);
                for h in &a.hits {
                    let hit =
                        Hit::from_json(py, &h.id, h.score, h.payload.as_ref(), h.vectors.as_ref())?;
                    hits.append(Bound::new(py, hit)?)?;
                }
                Ok((status, None, None, hits.into_any()))
            }
            Err(out) => Ok((status, ctype, retry, PyBytes::new(py, &out).into_any())),
        }
    }
}
