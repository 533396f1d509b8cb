//! The server's error: a kind (from `sextant_core::ErrorKind`), a message safe to show a remote
//! client, and optionally the request field at fault. Every failure a handler can meet becomes
//! one, so every response outside 2xx is the same JSON shape:
//! `{"error": {"code": "invalid_input", "message": "...", "field": "k"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sextant_core::ErrorKind;
use sextant_engine::EngineError;

/// A failed request.
#[derive(Debug, Clone)]
pub struct ApiError {
    kind: ErrorKind,
    message: String,
    field: Option<String>,
    /// A status more precise than the kind's (413 for a body over the limit, 429 for a rate
    /// limit, 404/405 for unknown routes).
    status: Option<StatusCode>,
    retry_after: Option<u64>,
}

impl ApiError {
    /// The error as a response body carries it (for a job's outcome).
    pub fn detail(&self) -> crate::routes::ErrorDetail {
        crate::routes::ErrorDetail {
            code: self.kind.code().to_string(),
            message: self.message.clone(),
            field: self.field.clone(),
        }
    }

    /// An error of `kind` with a message for the client.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            field: None,
            status: None,
            retry_after: None,
        }
    }

    /// Invalid input in `field`.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ApiError::new(ErrorKind::InvalidInput, message).with_field(field)
    }

    /// Names the request field at fault.
    pub fn with_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_string());
        self
    }

    /// Answers with `status` instead of the kind's status.
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    /// Too much queued work: 503 with `Retry-After`.
    pub fn overloaded(message: impl Into<String>, retry_after_s: u64) -> Self {
        let mut e = ApiError::new(ErrorKind::Overloaded, message);
        e.retry_after = Some(retry_after_s.max(1));
        e
    }

    /// A key over its rate limit: 429 with `Retry-After`.
    pub fn rate_limited(retry_after_s: u64) -> Self {
        ApiError::overloaded("rate limit reached for this API key", retry_after_s)
            .with_status(StatusCode::TOO_MANY_REQUESTS)
    }

    /// An internal failure: the detail goes to the log, the client sees only that it happened.
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        ApiError::new(
            ErrorKind::Internal,
            "internal error (the detail is in the server log)",
        )
    }

    /// Replaces `from` by `to` in the message (a server path by the name a client knows).
    pub fn replace_in_message(mut self, from: &str, to: &str) -> Self {
        if !from.is_empty() {
            self.message = self.message.replace(from, to);
        }
        self
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message shown to the client.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| status_of(self.kind))
    }
}

/// The HTTP status of each kind (exhaustive: a new kind must be given one).
pub fn status_of(kind: ErrorKind) -> StatusCode {
    match kind {
        ErrorKind::NotFound => StatusCode::NOT_FOUND,
        ErrorKind::AlreadyExists => StatusCode::CONFLICT,
        ErrorKind::InvalidInput => StatusCode::BAD_REQUEST,
        ErrorKind::Conflict => StatusCode::CONFLICT,
        ErrorKind::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorKind::Forbidden => StatusCode::FORBIDDEN,
        ErrorKind::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl ApiError {
    /// A library error of `kind`: internal ones keep their detail in the log only.
    fn from_library(kind: ErrorKind, e: &dyn std::error::Error, field: Option<&str>) -> Self {
        if kind == ErrorKind::Internal {
            return ApiError::internal(chain(e));
        }
        let a = ApiError::new(kind, chain(e));
        match field {
            Some(f) => a.with_field(f),
            None => a,
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        ApiError::from_library(e.kind(), &e, e.field())
    }
}

impl From<sextant_service::Error> for ApiError {
    fn from(e: sextant_service::Error) -> Self {
        ApiError::from_library(e.kind(), &e, e.field())
    }
}

/// An error and its sources as one line.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        metrics::counter!("sextant_http_errors_total", "code" => self.kind.code()).increment(1);
        let mut body = serde_json::json!({
            "error": {"code": self.kind.code(), "message": self.message}
        });
        if let Some(f) = &self.field {
            body["error"]["field"] = serde_json::Value::String(f.clone());
        }
        let mut resp = (status, axum::Json(body)).into_response();
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        if self.kind == ErrorKind::Unauthorized {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Handler result.
pub type ApiResult<T> = Result<T, ApiError>;
