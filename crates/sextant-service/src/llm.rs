//! The LLM client of `ask`: one chat completion from an OpenAI-compatible endpoint (OpenAI, vLLM,
//! llama.cpp's server, Ollama), with a prompt that demands citations of the numbered passages.
//!
//! The API key (`SEXTANT_LLM_API_KEY`) goes out as a bearer token only over HTTPS, or over
//! plain HTTP to a loopback host (a local server: the key never leaves the machine), unless
//! `SEXTANT_LLM_ALLOW_INSECURE_KEY=1` says otherwise. The endpoint is parsed with the `url`
//! crate, as the HTTP client parses it, so that `http://127.0.0.1.example.com` or
//! `http://localhost@example.com` are judged by the host they really reach. The key is never
//! part of an error message: a server's answer quoted in one has it redacted.

use std::net::IpAddr;
use std::time::Duration;

use serde_json::{json, Value};
use sextant_core::ErrorKind;
use sextant_engine::documents::context::{render, Context as RagContext};
use url::{Host, Url};

use crate::error::{Error, Result};

/// Environment variable holding the API key sent as `Authorization: Bearer …`.
pub const API_KEY_ENV: &str = "SEXTANT_LLM_API_KEY";
/// Environment variable that, set to `1`, lets the key go over plain HTTP to any host.
pub const ALLOW_INSECURE_KEY_ENV: &str = "SEXTANT_LLM_ALLOW_INSECURE_KEY";
/// What replaces the key in a server's answer quoted in an error.
const REDACTED: &str = "[redacted]";

/// The messages sent for a question and its context.
pub fn prompt(question: &str, ctx: &RagContext) -> Value {
    let system = "You answer questions using only the numbered passages you are given. \
        Cite every claim with the passage numbers in square brackets, like [1] or [2][3]. \
        If the passages do not contain the answer, say that you do not know. \
        Do not use outside knowledge.";
    let user = format!(
        "Passages:\n\n{}Question: {question}\n\nAnswer with citations:",
        render(ctx)
    );
    json!([{"role": "system", "content": system}, {"role": "user", "content": user}])
}

/// The messages asking for `n` rewrites of a search query (multi-query expansion).
pub fn rewrite_prompt(query: &str, n: usize) -> Value {
    let system = "You rewrite search queries for a document search engine. \
        Write different phrasings that keep the meaning: synonyms, related terms, \
        a more specific and a more general form.";
    let user = format!(
        "Write {n} different search queries for: {query}\n\nOne query per line, nothing else."
    );
    json!([{"role": "system", "content": system}, {"role": "user", "content": user}])
}

/// The rewrites in a model's answer: one per line, list markers and quotes removed, empty
/// lines, repeats and the query itself left out, at most `n`.
pub fn parse_rewrites(answer: &str, query: &str, n: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in answer.lines() {
        let t = line
            .trim()
            .trim_start_matches(|c: char| c.is_ascii_digit())
            .trim_start_matches(['.', ')', '-', '*', '•'])
            .trim()
            .trim_matches(['"', '\'', '`'])
            .trim();
        if t.is_empty()
            || t.eq_ignore_ascii_case(query.trim())
            || out.iter().any(|o| o.eq_ignore_ascii_case(t))
        {
            continue;
        }
        out.push(t.to_string());
        if out.len() == n {
            break;
        }
    }
    out
}

/// The messages asking for a passage that answers a query (HyDE).
pub fn hyde_prompt(query: &str) -> Value {
    let system = "You write short factual passages like those found in reference documents.";
    let user = format!(
        "Write a short passage (three to five sentences) that answers: {query}\n\nWrite only the passage."
    );
    json!([{"role": "system", "content": system}, {"role": "user", "content": user}])
}

/// The chat-completions URL of an endpoint given as `http://host:port`, `…/v1` or the full path.
pub fn endpoint(url: &str) -> String {
    let u = url.trim_end_matches('/');
    if u.ends_with("/chat/completions") {
        u.to_string()
    } else if u.ends_with("/v1") {
        format!("{u}/chat/completions")
    } else {
        format!("{u}/v1/chat/completions")
    }
}

/// The credentials of a request and whether the user allowed them over plain HTTP.
#[derive(Clone, Default)]
pub struct KeyPolicy {
    /// The API key (`None` when unset or empty).
    pub key: Option<String>,
    /// Whether the key may go over plain HTTP to a host that is not loopback.
    pub allow_insecure: bool,
}

impl std::fmt::Debug for KeyPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPolicy")
            .field("key", &self.key.as_ref().map(|_| REDACTED))
            .field("allow_insecure", &self.allow_insecure)
            .finish()
    }
}

impl KeyPolicy {
    /// From [`API_KEY_ENV`] and [`ALLOW_INSECURE_KEY_ENV`].
    pub fn from_env() -> Self {
        let key = std::env::var(API_KEY_ENV).ok().filter(|k| !k.is_empty());
        let allow = std::env::var(ALLOW_INSECURE_KEY_ENV).unwrap_or_default();
        KeyPolicy {
            key,
            allow_insecure: matches!(allow.trim(), "1" | "true" | "yes"),
        }
    }

    /// `s` with every occurrence of the key replaced.
    fn redact(&self, s: &str) -> String {
        match &self.key {
            Some(k) => s.replace(k.as_str(), REDACTED),
            None => s.to_string(),
        }
    }
}

/// Whether `host` is this machine: `localhost`, 127.0.0.0/8, `::1` (or `::ffff:127.x.y.z`).
fn is_loopback(host: &Host<&str>) -> bool {
    let ip = match host {
        Host::Domain(d) => return d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(v4) => IpAddr::V4(*v4),
        Host::Ipv6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(*v6), IpAddr::V4),
    };
    ip.is_loopback()
}

/// The endpoint as shown in messages: any password in it replaced.
fn shown(url: &Url) -> String {
    let mut u = url.clone();
    if u.password().is_some() {
        let _ = u.set_password(Some(REDACTED));
    }
    u.to_string()
}

/// Parses the endpoint and refuses to send the key where it would travel in clear text to
/// another machine. Returns the parsed URL.
pub fn check_endpoint(url: &str, policy: &KeyPolicy) -> Result<Url> {
    let parsed = Url::parse(url).map_err(|e| {
        Error::invalid(
            "llm",
            format!("--llm {url:?} is not a URL (expected http://host:port or https://…)"),
        )
        .with_source(e)
    })?;
    let host = parsed.host().ok_or_else(|| {
        Error::invalid(
            "llm",
            format!("--llm {}: the URL names no host", shown(&parsed)),
        )
    })?;
    match parsed.scheme() {
        "https" => {}
        "http" => {
            if policy.key.is_some() && !policy.allow_insecure && !is_loopback(&host) {
                return Err(Error::invalid(
                    "llm",
                    format!(
                        "refusing to send {API_KEY_ENV} in clear text to {host}: {} is plain HTTP \
                         and {host} is not a loopback address. Use an https:// endpoint, unset \
                         {API_KEY_ENV}, or set {ALLOW_INSECURE_KEY_ENV}=1 to send it anyway",
                        shown(&parsed)
                    ),
                ));
            }
        }
        other => {
            return Err(Error::invalid(
                "llm",
                format!(
                    "--llm {}: unsupported scheme {other:?} (expected http or https)",
                    shown(&parsed)
                ),
            ))
        }
    }
    Ok(parsed)
}

/// Sends the messages; returns the answer text. The key comes from the environment (see
/// [`KeyPolicy::from_env`]).
pub fn complete(url: &str, model: &str, messages: &Value, timeout: Duration) -> Result<String> {
    complete_with(url, model, messages, timeout, &KeyPolicy::from_env())
}

/// [`complete`] with explicit credentials.
pub fn complete_with(
    url: &str,
    model: &str,
    messages: &Value,
    timeout: Duration,
    policy: &KeyPolicy,
) -> Result<String> {
    let parsed = check_endpoint(&endpoint(url), policy)?;
    let url = shown(&parsed);
    if parsed.scheme() == "https" && !cfg!(feature = "tls") {
        return Err(Error::invalid(
            "llm",
            format!("{url}: this build speaks plain HTTP only; rebuild with `--features tls` for HTTPS endpoints"),
        ));
    }
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    let mut req = agent.request_url("POST", &parsed);
    if let Some(key) = &policy.key {
        req = req.set("Authorization", &format!("Bearer {key}"));
    }
    let body = json!({"model": model, "messages": messages, "temperature": 0.0, "stream": false});
    let resp = match req.send_json(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let text = policy.redact(&r.into_string().unwrap_or_default());
            return Err(Error::new(
                ErrorKind::Internal,
                format!(
                    "{url} answered HTTP {code}: {}",
                    text.chars().take(500).collect::<String>()
                ),
            ));
        }
        // A transport error names the URL and the cause, never the request's headers.
        Err(e) => {
            return Err(Error::internal(
                format!("cannot reach the language model at {url}"),
                Box::new(e),
            ))
        }
    };
    let v: Value = resp
        .into_json()
        .map_err(|e| Error::internal(format!("{url} did not answer JSON"), e))?;
    v["choices"][0]["message"]["content"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| {
            let answer = policy.redact(&v.to_string());
            Error::new(
                ErrorKind::Internal,
                format!("{url}: no choices[0].message.content in the answer: {answer}"),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_are_parsed_from_lists_of_any_style() {
        let answer = "1. red fox habitat\n2) \"where foxes live\"\n- Red Fox Habitat\n\n* fox\n* den of a fox\n";
        assert_eq!(
            parse_rewrites(answer, "fox", 3),
            ["red fox habitat", "where foxes live", "den of a fox"]
        );
        assert!(parse_rewrites("", "fox", 3).is_empty());
    }

    const KEY: &str = "sk-test-0123456789";

    fn with_key(allow_insecure: bool) -> KeyPolicy {
        KeyPolicy {
            key: Some(KEY.into()),
            allow_insecure,
        }
    }

    fn refused(url: &str) -> bool {
        check_endpoint(url, &with_key(false)).is_err()
    }

    #[test]
    fn https_and_loopback_http_get_the_key() {
        for url in [
            "https://api.openai.com/v1/chat/completions",
            "https://127.0.0.1.example.com/v1",
            "http://localhost:11434/v1/chat/completions",
            "http://LOCALHOST:8080/",
            "http://127.0.0.1:8000/v1",
            "http://127.1.2.3/",
            "http://[::1]:8080/v1",
            "http://[::ffff:127.0.0.1]/",
            "http://user@localhost:1/",
        ] {
            assert!(!refused(url), "{url}");
        }
    }

    #[test]
    fn plain_http_to_another_host_is_refused() {
        for url in [
            "http://api.example.com/v1",
            "http://10.0.0.5:8000/v1",
            "http://0.0.0.0:8000/",
            "http://127.0.0.1.evil.com/v1",
            "http://localhost.evil.com/",
            "http://localhost@evil.com/v1",
            "http://127.0.0.1:80@evil.com/",
            "http://evil.com#@localhost/",
            "http://evil.com\\@127.0.0.1/",
            "http://[::2]/",
            "http://[2001:db8::1]:8080/",
            "HTTP://EVIL.COM/",
        ] {
            assert!(refused(url), "{url}");
        }
    }

    #[test]
    fn the_refusal_names_the_reason_and_the_way_out_but_not_the_key() {
        let err = check_endpoint("http://llm.example.com:8000/v1", &with_key(false)).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("clear text") && msg.contains("llm.example.com"),
            "{msg}"
        );
        assert!(msg.contains(ALLOW_INSECURE_KEY_ENV), "{msg}");
        assert!(!msg.contains(KEY), "{msg}");
        // A password in the URL is not repeated either.
        let err =
            check_endpoint("http://u:hunter2@llm.example.com/", &with_key(false)).unwrap_err();
        assert!(!format!("{err:#}").contains("hunter2"), "{err:#}");
    }

    #[test]
    fn the_opt_in_or_no_key_allows_plain_http() {
        check_endpoint("http://llm.example.com/v1", &with_key(true)).unwrap();
        check_endpoint("http://llm.example.com/v1", &KeyPolicy::default()).unwrap();
    }

    #[test]
    fn other_schemes_and_hostless_urls_are_errors() {
        for url in [
            "ftp://localhost/",
            "localhost:11434/v1",
            "not a url",
            "file:///tmp/x",
        ] {
            assert!(check_endpoint(url, &KeyPolicy::default()).is_err(), "{url}");
        }
    }

    #[test]
    fn complete_refuses_before_connecting_and_keeps_the_key_out() {
        // 192.0.2.1 (TEST-NET-1) is never reached: the refusal comes first.
        let err = complete_with(
            "http://192.0.2.1:9",
            "m",
            &json!([]),
            Duration::from_secs(1),
            &with_key(false),
        )
        .unwrap_err();
        let msg = format!("{err:#} {err:?}");
        assert!(msg.contains("refusing"), "{msg}");
        assert!(!msg.contains(KEY), "{msg}");
        assert!(!format!("{:?}", with_key(false)).contains(KEY));
    }

    #[test]
    fn a_server_echoing_the_key_is_redacted() {
        let p = with_key(false);
        assert_eq!(
            p.redact(&format!("bad token Bearer {KEY}")),
            "bad token Bearer [redacted]"
        );
    }
}
