//! Request extractors whose failures are [`ApiError`]s (JSON, naming the problem) instead of
//! axum's plain-text rejections.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::auth::Principal;
use crate::error::ApiError;
use crate::AppState;

/// A JSON body.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(json_rejection(r)),
        }
    }
}

fn json_rejection(r: JsonRejection) -> ApiError {
    match r {
        JsonRejection::JsonDataError(e) => ApiError::invalid("body", e.body_text()),
        JsonRejection::JsonSyntaxError(e) => ApiError::invalid("body", e.body_text()),
        JsonRejection::MissingJsonContentType(_) => ApiError::invalid(
            "content-type",
            "send the body as JSON with the header Content-Type: application/json",
        )
        .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE),
        JsonRejection::BytesRejection(e) => body_error(e.status(), e.body_text()),
        other => ApiError::invalid("body", other.body_text()),
    }
}

/// A body that could not be read: too large (413) or cut off.
pub(crate) fn body_error(status: StatusCode, text: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::invalid(
            "body",
            "the request body is larger than the server's limit (limits.max_body_bytes)",
        )
        .with_status(StatusCode::PAYLOAD_TOO_LARGE)
    } else {
        ApiError::invalid("body", format!("cannot read the request body: {text}"))
    }
}

/// Path parameters.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(v)) => Ok(ApiPath(v)),
            Err(r) => Err(path_rejection(r)),
        }
    }
}

fn path_rejection(r: PathRejection) -> ApiError {
    ApiError::invalid("path", r.body_text())
}

/// Query-string parameters.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(query_rejection(r)),
        }
    }
}

fn query_rejection(r: QueryRejection) -> ApiError {
    ApiError::invalid("query", r.body_text())
}

/// The caller, from `Authorization: Bearer KEY` (or the anonymous administrator when auth is
/// off); also takes one token of the key's rate limit.
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let p = if !state.config().auth {
            Principal::anonymous()
        } else {
            let header = parts
                .headers
                .get(axum::http::header::AUTHORIZATION)
                .ok_or_else(|| {
                    ApiError::new(
                        sextant_core::ErrorKind::Unauthorized,
                        "this needs an API key: send the header Authorization: Bearer KEY",
                    )
                })?;
            let key = header
                .to_str()
                .ok()
                .and_then(|h| h.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(|| {
                    ApiError::new(
                        sextant_core::ErrorKind::Unauthorized,
                        "the Authorization header must be `Bearer KEY`",
                    )
                })?;
            state.keys().verify(key).ok_or_else(|| {
                ApiError::new(
                    sextant_core::ErrorKind::Unauthorized,
                    "unknown or revoked API key",
                )
            })?
        };
        state.rate.check(&p.key_id)?;
        Ok(Auth(p))
    }
}

/// The request id (`x-request-id`, set by the server when the client sends none).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Ok(RequestId(
            parts
                .headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string(),
        ))
    }
}
