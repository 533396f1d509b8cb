//! `ask --llm`: one chat completion from an OpenAI-compatible endpoint (OpenAI, vLLM,
//! llama.cpp's server, Ollama), with a prompt that demands citations of the numbered passages.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sextant_engine::documents::context::{render, Context as RagContext};

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

/// Sends the messages; returns the answer text.
pub fn complete(url: &str, model: &str, messages: &Value, timeout: Duration) -> Result<String> {
    let url = endpoint(url);
    if url.starts_with("https://") && !cfg!(feature = "tls") {
        bail!("{url}: this build speaks plain HTTP only; rebuild with `--features tls` for HTTPS endpoints");
    }
    let agent = ureq::AgentBuilder::new().timeout(timeout).build();
    let mut req = agent.post(&url);
    if let Ok(key) = std::env::var("SEXTANT_LLM_API_KEY") {
        req = req.set("Authorization", &format!("Bearer {key}"));
    }
    let body = json!({"model": model, "messages": messages, "temperature": 0.0, "stream": false});
    let resp = match req.send_json(body) {
        Ok(r) => r,
        Err(ureq::Error::Status(code, r)) => {
            let text = r.into_string().unwrap_or_default();
            bail!(
                "{url} answered HTTP {code}: {}",
                text.chars().take(500).collect::<String>()
            )
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot reach the language model at {url}"))
        }
    };
    let v: Value = resp
        .into_json()
        .with_context(|| format!("{url} did not answer JSON"))?;
    v["choices"][0]["message"]["content"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("{url}: no choices[0].message.content in the answer: {v}"))
}
