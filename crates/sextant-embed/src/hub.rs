//! Downloading a model from the Hugging Face hub into the standard cache layout
//! (`<cache>/models--<org>--<name>/snapshots/<revision>/…` and `refs/main`), so the next load
//! finds it offline and other tools share it.
//!
//! Only the files a BERT-family or Model2Vec model needs are fetched: `config.json`, `tokenizer.json` and
//! `model.safetensors` (required), and the sentence-transformers and tokenizer side files when
//! the repository has them, and the files of the modules its `modules.json` lists (a pooling
//! module's `config.json` where it is not `1_Pooling`, a `Dense` module's `config.json` and
//! `model.safetensors`). `HF_ENDPOINT` overrides the hub's address (mirrors, tests);
//! `HF_HUB_OFFLINE=1` (or `SEXTANT_OFFLINE=1`) forbids any download. HTTPS needs the crate's
//! `tls` feature; plain-HTTP endpoints (a local mirror) work without it.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::EmbedError;

/// Files a model cannot load without.
const REQUIRED: &[&str] = &["config.json", "tokenizer.json", "model.safetensors"];
/// Files used when present.
const OPTIONAL: &[&str] = &[
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
    "config_sentence_transformers.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
];
/// The public hub.
pub const DEFAULT_ENDPOINT: &str = "https://huggingface.co";

/// Where and whether to download.
#[derive(Debug, Clone)]
pub struct HubOptions {
    /// Base URL of the hub.
    pub endpoint: String,
    /// The cache root (`…/huggingface/hub`).
    pub cache: PathBuf,
    /// Never download.
    pub offline: bool,
}

impl HubOptions {
    /// From the environment (`HF_ENDPOINT`, `HF_HUB_CACHE`/`HF_HOME`, `HF_HUB_OFFLINE`,
    /// `SEXTANT_OFFLINE`).
    pub fn from_env(cache: PathBuf) -> Self {
        let set =
            |k: &str| std::env::var(k).is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
        HubOptions {
            endpoint: std::env::var("HF_ENDPOINT")
                .ok()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| DEFAULT_ENDPOINT.to_string()),
            cache,
            offline: set("HF_HUB_OFFLINE") || set("SEXTANT_OFFLINE"),
        }
    }
}

/// The repository id as the hub names it (`org/name`; a bare name is a sentence-transformers
/// model, as sentence-transformers itself resolves it).
pub(crate) fn full_id(id: &str) -> String {
    if id.contains('/') {
        id.to_owned()
    } else {
        format!("sentence-transformers/{id}")
    }
}

/// Downloads `id` into the cache; returns the snapshot directory.
pub(crate) fn download(id: &str, opts: &HubOptions) -> Result<PathBuf, String> {
    if opts.offline {
        return Err("downloads are disabled (HF_HUB_OFFLINE or SEXTANT_OFFLINE is set)".into());
    }
    let base = opts.endpoint.trim_end_matches('/');
    if base.starts_with("https://") && !cfg!(feature = "tls") {
        return Err(format!(
            "{base} needs HTTPS, and this build has no TLS (build with `--features tls`, or set HF_ENDPOINT to a plain-HTTP mirror)"
        ));
    }
    let id = full_id(id);
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(10))
        .timeout_read(Duration::from_secs(120))
        .build();
    let repo = opts
        .cache
        .join(format!("models--{}", id.replace('/', "--")));
    let mut revision: Option<String> = None;
    let mut fetched: Vec<(String, Vec<u8>)> = Vec::new();
    let mut wanted: Vec<(String, bool)> = REQUIRED
        .iter()
        .map(|n| (n.to_string(), true))
        .chain(OPTIONAL.iter().map(|n| (n.to_string(), false)))
        .collect();
    let mut next = 0;
    while let Some((name, required)) = wanted.get(next).cloned() {
        next += 1;
        let url = format!("{base}/{id}/resolve/main/{name}");
        match agent.get(&url).call() {
            Ok(resp) => {
                if revision.is_none() {
                    revision = resp
                        .header("x-repo-commit")
                        .filter(|r| r.chars().all(|c| c.is_ascii_alphanumeric()))
                        .map(str::to_string);
                }
                let mut body = Vec::new();
                resp.into_reader()
                    .read_to_end(&mut body)
                    .map_err(|e| format!("{url}: {e}"))?;
                if name == crate::modules::MODULES_FILE {
                    wanted.extend(module_files(&body));
                }
                fetched.push((name, body));
            }
            Err(ureq::Error::Status(404, _)) if !required => {}
            Err(ureq::Error::Status(code, _)) => {
                return Err(format!("{url} answered HTTP {code}"));
            }
            Err(e) => return Err(format!("{url}: {e}")),
        }
    }
    let revision = revision.unwrap_or_else(|| "main".to_string());
    let dir = repo.join("snapshots").join(&revision);
    for (name, body) in &fetched {
        write_atomic(&dir.join(name), body).map_err(|e| format!("writing {name}: {e}"))?;
    }
    write_atomic(&repo.join("refs").join("main"), revision.as_bytes())
        .map_err(|e| format!("writing refs/main: {e}"))?;
    Ok(dir)
}

/// The files of the modules `modules.json` lists that [`OPTIONAL`] does not name: a pooling
/// module's configuration, a `Dense` module's configuration and weights (required). Paths
/// that could leave the snapshot directory are skipped.
fn module_files(modules_json: &[u8]) -> Vec<(String, bool)> {
    let entries: Vec<serde_json::Value> = serde_json::from_slice(modules_json).unwrap_or_default();
    let mut out = Vec::new();
    for e in &entries {
        let (Some(path), Some(kind)) = (e["path"].as_str(), e["type"].as_str()) else {
            continue;
        };
        let safe = !path.is_empty()
            && path
                .split('/')
                .all(|p| !p.is_empty() && p != "." && p != ".." && !p.contains('\\'));
        if !safe {
            continue;
        }
        if kind.ends_with("Pooling") && path != "1_Pooling" {
            out.push((format!("{path}/config.json"), true));
        } else if kind.ends_with("Dense") {
            out.push((format!("{path}/config.json"), true));
            out.push((format!("{path}/model.safetensors"), true));
        }
    }
    out
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = path.with_extension("sextant-part");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(tmp, path)
}

/// Builds the error for a hub id that could not be found or fetched.
pub(crate) fn not_found(spec: &str, cache: &Path, reason: String) -> EmbedError {
    EmbedError::ModelNotFound {
        spec: spec.to_owned(),
        cache: cache.display().to_string(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;

    use super::*;
    use crate::config::ModelDir;

    /// Serves the files of `dir` as `/<org>/<name>/resolve/main/<file>` (404 otherwise) until
    /// `requests` have been answered; returns its base URL and the paths it was asked for.
    fn stub_hub(dir: PathBuf, requests: usize) -> (String, std::thread::JoinHandle<Vec<String>>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let h = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..requests {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                reader.read_line(&mut first).unwrap();
                loop {
                    let mut l = String::new();
                    reader.read_line(&mut l).unwrap();
                    if l == "\r\n" || l.is_empty() {
                        break;
                    }
                }
                let path = first.split(' ').nth(1).unwrap_or("").to_string();
                let file = path.split("/resolve/main/").nth(1).unwrap_or("");
                let mut out = stream;
                match std::fs::read(dir.join(file)) {
                    Ok(body) if !file.is_empty() => {
                        write!(out, "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Repo-Commit: abc123\r\nConnection: close\r\n\r\n", body.len()).unwrap();
                        out.write_all(&body).unwrap();
                    }
                    _ => {
                        write!(out, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").unwrap();
                    }
                }
                seen.push(path);
            }
            seen
        });
        (url, h)
    }

    #[test]
    fn dense_and_moved_pooling_modules_are_fetched_too() {
        let m = br#"[{"path": "", "type": "sentence_transformers.models.Transformer"},
            {"path": "1_Pool", "type": "sentence_transformers.models.Pooling"},
            {"path": "2_Dense", "type": "sentence_transformers.base.modules.dense.Dense"},
            {"path": "../x", "type": "sentence_transformers.models.Dense"}]"#;
        assert_eq!(
            module_files(m),
            vec![
                ("1_Pool/config.json".to_owned(), true),
                ("2_Dense/config.json".to_owned(), true),
                ("2_Dense/model.safetensors".to_owned(), true),
            ]
        );
    }

    #[test]
    fn a_hub_id_is_downloaded_into_the_cache_once() {
        let fixture =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-cross-encoder");
        let cache = tempfile::tempdir().unwrap();
        let (url, server) = stub_hub(fixture.clone(), REQUIRED.len() + OPTIONAL.len());
        let hub = HubOptions {
            endpoint: url,
            cache: cache.path().to_path_buf(),
            offline: false,
        };
        let dir = ModelDir::resolve_with("acme/tiny", &hub).unwrap();
        let seen = server.join().unwrap();
        assert!(seen.contains(&"/acme/tiny/resolve/main/model.safetensors".to_string()));
        let snap = cache.path().join("models--acme--tiny/snapshots/abc123");
        assert_eq!(dir.root(), snap);
        for f in [
            "config.json",
            "tokenizer.json",
            "model.safetensors",
            "tokenizer_config.json",
        ] {
            assert_eq!(
                std::fs::read(snap.join(f)).unwrap(),
                std::fs::read(fixture.join(f)).unwrap(),
                "{f}"
            );
        }
        assert!(
            !snap.join("modules.json").exists(),
            "absent optional files are skipped"
        );
        // Second time: from the cache, no server needed; offline mode does not matter.
        let hub = HubOptions {
            offline: true,
            endpoint: "http://127.0.0.1:9".into(),
            ..hub
        };
        assert_eq!(
            ModelDir::resolve_with("acme/tiny", &hub).unwrap().root(),
            snap
        );
        // Offline and not cached: a clear error.
        let e = ModelDir::resolve_with("acme/other", &hub)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("HF_HUB_OFFLINE") && e.contains("setup-models.sh"),
            "{e}"
        );
    }

    #[test]
    fn a_missing_required_file_is_an_error_naming_it() {
        let empty = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let (url, server) = stub_hub(empty.path().to_path_buf(), 1);
        let hub = HubOptions {
            endpoint: url,
            cache: cache.path().to_path_buf(),
            offline: false,
        };
        let e = ModelDir::resolve_with("acme/none", &hub)
            .unwrap_err()
            .to_string();
        server.join().unwrap();
        assert!(e.contains("config.json") && e.contains("404"), "{e}");
        assert!(!cache.path().join("models--acme--none/refs/main").exists());
    }
}
