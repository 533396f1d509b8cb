//! Server configuration: defaults, then a TOML file, then `SEXTANT_SERVER_*` environment
//! variables, then command-line flags; validated as a whole before the server starts.
//! Every setting is documented in `docs/server.md`; keep the two in step.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Prefix of the environment variables that override settings: `SEXTANT_SERVER_LISTEN`,
/// `SEXTANT_SERVER_LIMITS__QUEUE_DEPTH` (`__` separates a section from its key).
pub const ENV_PREFIX: &str = "SEXTANT_SERVER_";

/// Where the project's setup script puts the default embedding model.
pub const DEFAULT_MODEL_DIR: &str = "models/all-MiniLM-L6-v2";

/// Default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:6480";

/// Every setting of `sextant serve`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: String,
    /// API keys required (`false` only on a loopback address).
    pub auth: bool,
    /// Audit log of writes and admin actions (JSON lines); relative paths are inside the data
    /// directory; empty: off.
    pub audit_log: String,
    /// HTTPS.
    pub tls: TlsConfig,
    /// Request limits.
    pub limits: LimitsConfig,
    /// Caches.
    pub cache: CacheConfig,
    /// Logging.
    pub log: LogConfig,
    /// Model names served by `/v1/embeddings`, `/embed` and `/rerank` and usable by ingest and
    /// rerank requests: name → directory. Remote callers only ever name models; they never
    /// give paths.
    pub models: BTreeMap<String, String>,
    /// The model used when a request names none (ingest, `/embed`) [default:
    /// `all-MiniLM-L6-v2` when `models/all-MiniLM-L6-v2` exists, else the only configured one].
    pub default_model: String,
    /// The language model `ask` may call for an answer.
    pub llm: LlmConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.into(),
            auth: true,
            audit_log: "audit.jsonl".into(),
            tls: TlsConfig::default(),
            limits: LimitsConfig::default(),
            cache: CacheConfig::default(),
            log: LogConfig::default(),
            models: BTreeMap::new(),
            default_model: String::new(),
            llm: LlmConfig::default(),
        }
    }
}

/// HTTPS with rustls.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// PEM certificate chain; empty: plain HTTP.
    pub cert: String,
    /// PEM private key.
    pub key: String,
}

/// Limits that keep an overloaded server answering.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest JSON request body, in bytes.
    pub max_body_bytes: usize,
    /// Largest document upload (a streamed JSONL body or files), in bytes.
    pub max_upload_bytes: u64,
    /// CPU tasks (search, embedding, ingest, writes) run at once; 0: one per core.
    pub workers: usize,
    /// Requests allowed to wait for a worker; beyond that the answer is 503 + `Retry-After`.
    pub queue_depth: usize,
    /// Longest wait for a worker before 503, in milliseconds.
    pub queue_timeout_ms: u64,
    /// Longest time a read request may take, in milliseconds (then 503). Writes, once started,
    /// always finish: an acknowledged write is never cut short.
    pub request_timeout_ms: u64,
    /// Requests per second allowed per API key (token bucket); 0: no rate limit.
    pub rate_limit_per_s: f64,
    /// Burst size of the rate limit.
    pub rate_limit_burst: f64,
    /// Largest `k`, `limit` or number of ids in one request.
    pub max_results: usize,
    /// Largest HNSW `ef` a search may ask for.
    pub max_ef: usize,
    /// Most points in one upsert request.
    pub max_batch_points: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_bytes: 32 << 20,
            max_upload_bytes: 1 << 30,
            workers: 0,
            queue_depth: 256,
            queue_timeout_ms: 5_000,
            request_timeout_ms: 30_000,
            rate_limit_per_s: 0.0,
            rate_limit_burst: 100.0,
            max_results: 10_000,
            max_ef: 10_000,
            max_batch_points: 10_000,
        }
    }
}

/// Caches (both bounded; 0 entries switches one off).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Search results kept; invalidated by any write to their collection.
    pub query_entries: usize,
    /// Query and passage embeddings kept (by model and text).
    pub embedding_entries: usize,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            query_entries: 4_096,
            embedding_entries: 65_536,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: String,
    /// A `tracing` filter: `info`, `debug`, `sextant_server=debug,info`.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: "text".into(),
            level: "info".into(),
        }
    }
}

/// The OpenAI-compatible chat endpoint `ask` may use (`"answer": true`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LlmConfig {
    /// Endpoint (`http://host:port/v1`); empty: `ask` returns cited context only.
    pub endpoint: String,
    /// Model name sent to it.
    pub model: String,
    /// Seconds to wait for it.
    pub timeout_s: u64,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            endpoint: String::new(),
            model: "gpt-4o-mini".into(),
            timeout_s: 120,
        }
    }
}

/// Command-line overrides (the highest precedence).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--listen`.
    pub listen: Option<String>,
    /// `--no-auth`.
    pub no_auth: bool,
}

/// A configuration that cannot be used; the message names the setting and where it came from.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl ServerConfig {
    /// Defaults ← `file` ← environment (`vars`) ← `overrides`, validated.
    pub fn load(
        file: Option<&Path>,
        vars: impl IntoIterator<Item = (String, String)>,
        overrides: &Overrides,
    ) -> Result<ServerConfig, ConfigError> {
        let mut table = match file {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(|e| {
                    ConfigError(format!("cannot read config file {}: {e}", p.display()))
                })?;
                text.parse::<toml::Table>()
                    .map_err(|e| ConfigError(format!("config file {}: {e}", p.display())))?
            }
            None => toml::Table::new(),
        };
        for (name, value) in vars {
            let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(|s| s.to_ascii_lowercase()).collect();
            let parsed = parse_env_value(&value);
            set_path(&mut table, &path, parsed)
                .map_err(|e| ConfigError(format!("environment variable {name}: {e}")))?;
        }
        let mut cfg: ServerConfig =
            toml::Value::Table(table)
                .try_into()
                .map_err(|e: toml::de::Error| {
                    ConfigError(format!(
                        "configuration{}: {}",
                        file.map(|p| format!(" ({})", p.display()))
                            .unwrap_or_default(),
                        e.to_string().trim()
                    ))
                })?;
        if let Some(l) = &overrides.listen {
            cfg.listen = l.clone();
        }
        if overrides.no_auth {
            cfg.auth = false;
        }
        cfg.validate()?;
        Ok(cfg)
    }

    /// The listen address.
    pub fn listen_addr(&self) -> Result<SocketAddr, ConfigError> {
        self.listen.parse().map_err(|_| {
            ConfigError(format!(
                "listen {:?}: expected IP:PORT, e.g. 127.0.0.1:6480",
                self.listen
            ))
        })
    }

    /// Checks every setting; the first problem is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let addr = self.listen_addr()?;
        if !self.auth && !addr.ip().is_loopback() {
            return Err(ConfigError(format!(
                "auth is off (--no-auth) but listen {addr} is not a loopback address: without API keys the server may only listen on 127.0.0.1 or ::1"
            )));
        }
        let l = &self.limits;
        let checks: [(&str, bool); 7] = [
            ("limits.max_body_bytes must be at least 1024", l.max_body_bytes >= 1024),
            ("limits.max_upload_bytes must be at least 1024", l.max_upload_bytes >= 1024),
            ("limits.queue_depth must be at least 1", l.queue_depth >= 1),
            ("limits.max_results must be at least 1", l.max_results >= 1),
            ("limits.max_ef must be at least 1", l.max_ef >= 1),
            ("limits.max_batch_points must be at least 1", l.max_batch_points >= 1),
            (
                "limits.rate_limit_per_s and rate_limit_burst must be finite and non-negative (burst at least 1 when a rate is set)",
                l.rate_limit_per_s.is_finite()
                    && l.rate_limit_per_s >= 0.0
                    && l.rate_limit_burst.is_finite()
                    && (l.rate_limit_per_s == 0.0 || l.rate_limit_burst >= 1.0),
            ),
        ];
        if let Some((msg, _)) = checks.iter().find(|(_, ok)| !ok) {
            return Err(ConfigError((*msg).to_string()));
        }
        if l.request_timeout_ms == 0 || l.queue_timeout_ms == 0 {
            return Err(ConfigError(
                "limits.request_timeout_ms and limits.queue_timeout_ms must be at least 1".into(),
            ));
        }
        if !matches!(self.log.format.as_str(), "text" | "json") {
            return Err(ConfigError(format!(
                "log.format {:?}: expected text or json",
                self.log.format
            )));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(ConfigError(format!(
                "log.level {:?}: not a tracing filter (e.g. info, debug, sextant_server=debug)",
                self.log.level
            )));
        }
        match (self.tls.cert.is_empty(), self.tls.key.is_empty()) {
            (true, true) => {}
            (false, false) => {
                if !cfg!(feature = "tls") {
                    return Err(ConfigError(
                        "tls.cert is set but this build has no TLS support (build with the `tls` feature)".into(),
                    ));
                }
                for (name, p) in [("tls.cert", &self.tls.cert), ("tls.key", &self.tls.key)] {
                    if !Path::new(p).is_file() {
                        return Err(ConfigError(format!("{name} {p:?}: no such file")));
                    }
                }
            }
            _ => {
                return Err(ConfigError(
                    "tls.cert and tls.key go together: give both or neither".into(),
                ))
            }
        }
        for (name, dir) in &self.models {
            if name.is_empty() {
                return Err(ConfigError("models: a model name is empty".into()));
            }
            if !Path::new(dir).join("config.json").is_file() {
                return Err(ConfigError(format!(
                    "models.{name} = {dir:?}: not a model directory (no config.json)"
                )));
            }
        }
        if !self.default_model.is_empty()
            && !self.effective_models().contains_key(&self.default_model)
        {
            return Err(ConfigError(format!(
                "default_model {:?} is not one of the models (models.NAME)",
                self.default_model
            )));
        }
        if !self.llm.endpoint.is_empty() && self.llm.timeout_s == 0 {
            return Err(ConfigError("llm.timeout_s must be at least 1".into()));
        }
        Ok(())
    }

    /// The served models: the configured ones, and the project's default model
    /// (`models/all-MiniLM-L6-v2`, fetched by `scripts/setup-models.sh`) when it is present, as
    /// `all-MiniLM-L6-v2` and `sentence-transformers/all-MiniLM-L6-v2`.
    pub fn effective_models(&self) -> BTreeMap<String, String> {
        let mut m = self.models.clone();
        let dir = Path::new(DEFAULT_MODEL_DIR);
        if dir.join("config.json").is_file() {
            let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
            for name in ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"] {
                m.entry(name.to_string())
                    .or_insert_with(|| abs.display().to_string());
            }
        }
        m
    }

    /// The model used when a request names none.
    pub fn default_model(&self) -> Option<String> {
        if !self.default_model.is_empty() {
            return Some(self.default_model.clone());
        }
        let m = self.effective_models();
        if m.contains_key("all-MiniLM-L6-v2") {
            return Some("all-MiniLM-L6-v2".into());
        }
        (m.len() == 1).then(|| m.keys().next().cloned()).flatten()
    }

    /// The audit log's path, if on.
    pub fn audit_path(&self, data_dir: &Path) -> Option<PathBuf> {
        (!self.audit_log.is_empty()).then(|| data_dir.join(&self.audit_log))
    }

    /// Worker count with `0` resolved to the number of cores.
    pub fn workers(&self) -> usize {
        match self.limits.workers {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        }
    }

    /// Threads of the async runtime: one more than the workers, so that with every worker's
    /// job running in place ([`crate::limits::Work::Quick`]) one thread still reads requests
    /// and answers 503 when the queue is full.
    pub fn async_threads(&self) -> usize {
        self.workers() + 1
    }
}

/// An environment value as TOML when it parses as a TOML value (numbers, booleans, arrays),
/// else as a string.
fn parse_env_value(v: &str) -> toml::Value {
    format!("x = {v}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("x"))
        .unwrap_or_else(|| toml::Value::String(v.to_string()))
}

fn set_path(table: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    match path {
        [] => Err("empty setting name".into()),
        [last] => {
            table.insert(last.clone(), value);
            Ok(())
        }
        [head, rest @ ..] => {
            let entry = table
                .entry(head.clone())
                .or_insert_with(|| toml::Value::Table(toml::Table::new()));
            match entry {
                toml::Value::Table(t) => set_path(t, rest, value),
                _ => Err(format!("{head} is not a section")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(
        toml_text: &str,
        env: &[(&str, &str)],
        o: &Overrides,
    ) -> Result<ServerConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, toml_text).unwrap();
        ServerConfig::load(
            Some(&p),
            env.iter().map(|(a, b)| (a.to_string(), b.to_string())),
            o,
        )
    }

    #[test]
    fn file_then_environment_then_flags() {
        let c = load(
            "listen = \"127.0.0.1:7000\"\n[limits]\nqueue_depth = 9\n",
            &[
                ("SEXTANT_SERVER_LIMITS__QUEUE_DEPTH", "12"),
                ("SEXTANT_SERVER_LOG__FORMAT", "json"),
            ],
            &Overrides {
                listen: Some("127.0.0.1:7001".into()),
                no_auth: false,
            },
        )
        .unwrap();
        assert_eq!(c.limits.queue_depth, 12);
        assert_eq!(c.log.format, "json");
        assert_eq!(c.listen, "127.0.0.1:7001");
        assert!(c.auth);
    }

    #[test]
    fn bad_settings_are_named() {
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: [Case<'_>; 6] = [
            ("[limits]\nqueue_dept = 3\n", &[], "queue_dept"),
            ("listen = \"nowhere\"\n", &[], "listen"),
            ("[limits]\nqueue_depth = \"many\"\n", &[], "queue_depth"),
            ("", &[("SEXTANT_SERVER_LOG__FORMAT", "xml")], "log.format"),
            ("[tls]\ncert = \"/nonexistent.pem\"\n", &[], "tls"),
            ("auth = false\nlisten = \"0.0.0.0:7000\"\n", &[], "loopback"),
        ];
        for (text, env, needle) in cases {
            let e = load(text, env, &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{text:?}: {e}");
        }
    }

    #[test]
    fn no_auth_only_on_loopback() {
        let o = Overrides {
            listen: Some("0.0.0.0:7000".into()),
            no_auth: true,
        };
        assert!(load("", &[], &o).is_err());
        let o = Overrides {
            listen: Some("127.0.0.1:7000".into()),
            no_auth: true,
        };
        assert!(!load("", &[], &o).unwrap().auth);
        let o = Overrides {
            listen: Some("[::1]:7000".into()),
            no_auth: true,
        };
        assert!(!load("", &[], &o).unwrap().auth);
    }
}
