//! Models: `/embed`, `/rerank`, and the OpenAI-compatible `/v1/embeddings` and `/v1/models`.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sextant_service::{EmbedKind, EmbedOptions};
use utoipa::ToSchema;

use crate::auth::Role;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, Auth};
use crate::routes::ErrorBody;
use crate::AppState;

/// The model a request names: one the server offers (setting `models.NAME`), or the default.
fn model_name(s: &AppState, field: &str, name: Option<&str>) -> ApiResult<String> {
    let models = s.config().effective_models();
    let name = match name {
        Some(n) => n.to_string(),
        None => s.config().default_model().ok_or_else(|| {
            ApiError::invalid(field, "name a model (the server has no default model)")
        })?,
    };
    if models.contains_key(&name) {
        Ok(name)
    } else {
        Err(ApiError::new(
            sextant_core::ErrorKind::NotFound,
            format!(
                "model {name:?} is not served here; models: {}",
                models.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        )
        .with_field(field))
    }
}

fn check_texts(s: &AppState, texts: &[String], field: &str) -> ApiResult<()> {
    let max = s.config().limits.max_results;
    if texts.is_empty() {
        return Err(ApiError::invalid(field, "give at least one text"));
    }
    if texts.len() > max {
        return Err(ApiError::invalid(
            field,
            format!("at most {max} texts per request"),
        ));
    }
    Ok(())
}

/// Texts to embed.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedBody {
    /// The texts.
    pub texts: Vec<String>,
    /// A served model name [default: the default model].
    #[serde(default)]
    pub model: Option<String>,
    /// query, passage or plain (the model's prefixes) [default: plain].
    #[serde(default)]
    pub kind: EmbedKind,
    /// Matryoshka dimension: the first D components, re-normalised.
    #[serde(default)]
    pub dimensions: Option<usize>,
}

/// Embeddings, in input order.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbedOut {
    /// The model.
    pub model: String,
    /// Components per vector.
    pub dim: usize,
    /// One vector per text.
    pub embeddings: Vec<Vec<f32>>,
    /// Texts cut to the model's sequence limit.
    pub truncated: usize,
}

/// Embeds texts with a served model (read role).
#[utoipa::path(post, path = "/embed", tag = "models", request_body = EmbedBody,
    responses((status = 200, body = EmbedOut), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn embed(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<EmbedBody>,
) -> ApiResult<Json<EmbedOut>> {
    s.allow(&p, Role::Read, None)?;
    let model = model_name(&s, "model", b.model.as_deref())?;
    check_texts(&s, &b.texts, "texts")?;
    let st = s.clone();
    s.run(s.read_work(), move || {
        let opts = EmbedOptions {
            kind: b.kind,
            dimensions: b.dimensions,
            precision: None,
        };
        let e = st.service().models().embed(&model, &b.texts, &opts)?;
        metrics::counter!("sextant_embedded_texts_total", "model" => model.clone())
            .increment(b.texts.len() as u64);
        Ok(Json(EmbedOut {
            model,
            dim: e.dim,
            embeddings: e.data.chunks(e.dim.max(1)).map(<[f32]>::to_vec).collect(),
            truncated: e.truncated,
        }))
    })
    .await
}

/// Passages to score against a query.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RerankBody {
    /// The query.
    pub query: String,
    /// The passages.
    pub documents: Vec<String>,
    /// A served cross-encoder name.
    pub model: String,
}

/// Scores in input order, and the order best first.
#[derive(Debug, Serialize, ToSchema)]
pub struct RerankOut {
    /// Raw cross-encoder scores, in input order.
    pub scores: Vec<f32>,
    /// Input positions, best first.
    pub ranking: Vec<usize>,
}

/// Scores passages against a query with a served cross-encoder (read role).
#[utoipa::path(post, path = "/rerank", tag = "models", request_body = RerankBody,
    responses((status = 200, body = RerankOut), (status = 400, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn rerank(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<RerankBody>,
) -> ApiResult<Json<RerankOut>> {
    s.allow(&p, Role::Read, None)?;
    let model = model_name(&s, "model", Some(&b.model))?;
    check_texts(&s, &b.documents, "documents")?;
    let st = s.clone();
    s.run(s.read_work(), move || {
        let scores = st.service().rerank(&model, &b.query, &b.documents)?;
        let mut ranking: Vec<usize> = (0..scores.len()).collect();
        ranking.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        Ok(Json(RerankOut { scores, ranking }))
    })
    .await
}

/// `/v1/embeddings` input: a string or a list of strings.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum OpenAiInput {
    /// One text.
    One(String),
    /// Several texts.
    Many(Vec<String>),
    /// Token ids (not supported: send text).
    Tokens(#[allow(dead_code)] Vec<Value>),
}

/// An OpenAI embeddings request.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAiEmbeddingRequest {
    /// Text or texts.
    pub input: OpenAiInput,
    /// A served model name (see `/v1/models`).
    pub model: String,
    /// `float` (default) or `base64` (little-endian float32).
    #[serde(default)]
    pub encoding_format: Option<String>,
    /// Matryoshka truncation to this many dimensions (re-normalised).
    #[serde(default)]
    pub dimensions: Option<usize>,
    /// End-user id (accepted, recorded in nothing).
    #[serde(default)]
    pub user: Option<String>,
}

/// OpenAI-compatible embeddings: the official `openai` client works unchanged (read role).
#[utoipa::path(post, path = "/v1/embeddings", tag = "openai", request_body = OpenAiEmbeddingRequest,
    responses((status = 200, description = "`{object: list, data: [{object: embedding, index, embedding}], model, usage}`", body = Object),
              (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn openai_embeddings(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiJson(b): ApiJson<OpenAiEmbeddingRequest>,
) -> ApiResult<Json<Value>> {
    s.allow(&p, Role::Read, None)?;
    let model = model_name(&s, "model", Some(&b.model))?;
    let texts =
        match b.input {
            OpenAiInput::One(t) => vec![t],
            OpenAiInput::Many(t) => t,
            OpenAiInput::Tokens(_) => return Err(ApiError::invalid(
                "input",
                "token-id input is not supported: send the text (a string or a list of strings)",
            )),
        };
    check_texts(&s, &texts, "input")?;
    tracing::debug!(user = ?b.user, texts = texts.len(), "openai embeddings");
    let base64 = match b.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                "encoding_format",
                format!("{other:?}: expected float or base64"),
            ))
        }
    };
    if b.dimensions == Some(0) {
        return Err(ApiError::invalid(
            "dimensions",
            "dimensions must be at least 1",
        ));
    }
    let st = s.clone();
    s.run(s.read_work(), move || {
        let opts = EmbedOptions {
            kind: EmbedKind::Plain,
            dimensions: b.dimensions,
            precision: None,
        };
        let e = st.service().models().embed(&model, &texts, &opts)?;
        let tokens = st.service().models().count_tokens(&model, &texts)?;
        metrics::counter!("sextant_embedded_texts_total", "model" => model.clone())
            .increment(texts.len() as u64);
        let data: Vec<Value> = e
            .data
            .chunks(e.dim.max(1))
            .enumerate()
            .map(|(i, row)| {
                let embedding = if base64 {
                    let bytes: Vec<u8> = row.iter().flat_map(|x| x.to_le_bytes()).collect();
                    Value::String(base64_encode(&bytes))
                } else {
                    json!(row)
                };
                json!({"object": "embedding", "index": i, "embedding": embedding})
            })
            .collect();
        Ok(Json(json!({
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })))
    })
    .await
}

/// The served models, OpenAI style (read role).
#[utoipa::path(get, path = "/v1/models", tag = "openai",
    responses((status = 200, description = "`{object: list, data: [{id, object: model, created, owned_by}]}`", body = Object)),
    security(("api_key" = [])))]
pub async fn openai_models(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    s.allow(&p, Role::Read, None)?;
    let data: Vec<Value> = s
        .config()
        .effective_models()
        .keys()
        .map(|id| json!({"id": id, "object": "model", "created": 0, "owned_by": "sextant"}))
        .collect();
    Ok(Json(json!({"object": "list", "data": data})))
}

/// Standard base64 with padding.
fn base64_encode(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if c.len() > 1 {
            T[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if c.len() > 2 {
            T[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(super::base64_encode(b""), "");
        assert_eq!(super::base64_encode(b"f"), "Zg==");
        assert_eq!(super::base64_encode(b"fo"), "Zm8=");
        assert_eq!(super::base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(super::base64_encode(&[0xff, 0xfe, 0x00]), "//4A");
    }
}
