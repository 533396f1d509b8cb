//! The routes, each registered with its OpenAPI description.

use std::sync::OnceLock;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request, StatusCode};
use axum::Router;
use serde::Serialize;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{
    MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer,
};
use tower_http::trace::TraceLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::error::ApiError;
use crate::AppState;

/// Whether `name` is a plain file or directory name a client may give for a server-side file
/// (a snapshot, a backup): ASCII letters, digits, `_`, `-` and `.`, not starting with `.`, at
/// most 255 bytes — never a path.
/// Refuses a key limited to a tenant for a route that covers every tenant (`what` says what
/// covers them, e.g. "drift monitoring covers every tenant").
pub(crate) fn untenanted(p: &crate::auth::Principal, what: &str) -> crate::error::ApiResult<()> {
    match &p.tenant {
        Some(t) => Err(crate::error::ApiError::new(
            sextant_core::ErrorKind::Forbidden,
            format!("{what}; this API key is limited to tenant {t}"),
        )),
        None => Ok(()),
    }
}

pub(crate) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 255
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

pub mod adapter;
pub mod admin;
pub mod backups;
pub mod collections;
pub mod console;
pub mod drift;
pub mod eval;
pub mod models;
pub mod ops;
pub mod points;
pub mod snapshots;
pub mod text;

/// The OpenAPI document, rendered once.
pub(crate) static OPENAPI: OnceLock<String> = OnceLock::new();

/// Every error response: `{"error": {"code", "message", "field"?}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// An error.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `not_found`, `already_exists`, `invalid_input`, `conflict`, `unauthorized`,
    /// `forbidden`, `overloaded` or `internal`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
    /// The request field at fault.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Sextant", description = "Sextant embedding database: REST + JSON. Authenticate with `Authorization: Bearer KEY` (keys from `sextant keys create`); /healthz, /readyz and /openapi.json need none."),
    modifiers(&Security),
    components(schemas(ErrorBody, ErrorDetail)),
    tags((name = "collections"), (name = "points"), (name = "search"), (name = "documents"),
         (name = "models"), (name = "openai"), (name = "snapshots"), (name = "backups"), (name = "admin"),
         (name = "operations"))
)]
struct ApiDoc;

/// The routes and their OpenAPI document.
pub(crate) fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi))
        .routes(routes!(console::index))
        .routes(routes!(console::file))
        .routes(routes!(collections::list, collections::create))
        .routes(routes!(
            collections::info,
            collections::create_named,
            collections::delete
        ))
        .routes(routes!(collections::optimize))
        .routes(routes!(collections::aliases))
        .routes(routes!(collections::set_alias, collections::delete_alias))
        .routes(routes!(collections::tenants))
        .routes(routes!(collections::drop_tenant))
        .routes(routes!(adapter::show, adapter::attach, adapter::detach))
        .routes(routes!(drift::status))
        .routes(routes!(drift::pin))
        .routes(routes!(drift::canaries, drift::add_canary))
        .routes(routes!(drift::remove_canary))
        .routes(routes!(drift::check))
        .routes(routes!(eval::eval))
        .routes(routes!(eval::reindex))
        .routes(routes!(eval::advise))
        .routes(routes!(eval::list_jobs))
        .routes(routes!(eval::job))
        .routes(routes!(snapshots::list, snapshots::create))
        .routes(routes!(snapshots::download, snapshots::delete))
        .routes(routes!(snapshots::verify))
        .routes(routes!(snapshots::restore))
        .routes(routes!(backups::list, backups::create))
        .routes(routes!(backups::restore))
        .routes(routes!(backups::delete))
        .routes(routes!(points::upsert))
        .routes(routes!(points::get))
        .routes(routes!(points::get_one))
        .routes(routes!(points::delete))
        .routes(routes!(points::count))
        .routes(routes!(points::scroll))
        .routes(routes!(points::search))
        .routes(routes!(text::query))
        .routes(routes!(text::ask))
        .routes(routes!(text::ingest, text::delete_older_than))
        .routes(routes!(text::delete_document))
        .routes(routes!(models::embed))
        .routes(routes!(models::rerank))
        .routes(routes!(models::openai_embeddings))
        .routes(routes!(models::openai_models))
        .routes(routes!(admin::create_key, admin::list_keys))
        .routes(routes!(admin::delete_key))
        .split_for_parts()
}

/// Request ids: a random per-process prefix and a counter.
#[derive(Debug, Clone)]
struct Ids {
    prefix: String,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl MakeRequestId for Ids {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        format!("{}-{n}", self.prefix)
            .parse()
            .ok()
            .map(RequestId::new)
    }
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        sextant_core::ErrorKind::NotFound,
        format!("no route {}; see /openapi.json", uri.path()),
    )
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::invalid(
        "method",
        format!("{method} is not allowed on {}", uri.path()),
    )
    .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

fn panic_response(_: Box<dyn std::any::Any + Send + 'static>) -> axum::response::Response {
    use axum::response::IntoResponse;
    ApiError::internal("a request handler panicked").into_response()
}

/// The full router.
pub(crate) fn router(state: AppState) -> Router {
    let (routes, api) = api();
    let _ = OPENAPI.set(api.to_json().expect("the OpenAPI document serialises"));
    let header = HeaderName::from_static("x-request-id");
    let mut prefix = [0u8; 4];
    getrandom::getrandom(&mut prefix).expect("random source");
    let ids = Ids {
        prefix: prefix.iter().map(|b| format!("{b:02x}")).collect(),
        next: Default::default(),
    };
    let body_limit = state.config().limits.max_body_bytes;
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .route_layer(axum::middleware::from_fn(crate::metrics::track))
        .layer(DefaultBodyLimit::max(body_limit))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_response(
                    |resp: &axum::response::Response, latency: Duration, _: &tracing::Span| {
                        tracing::debug!(status = resp.status().as_u16(), latency_ms = latency.as_secs_f64() * 1e3, "response");
                    },
                ),
        )
        .layer(PropagateRequestIdLayer::new(header.clone()))
        .layer(SetRequestIdLayer::new(header, ids))
        .with_state(state)
}
