//! Health, readiness, metrics and the OpenAPI document.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use crate::auth::Role;
use crate::error::{ApiError, ApiResult};
use crate::extract::Auth;
use crate::AppState;

/// Liveness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// The process is up (no key needed).
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Alive", body = Health)))]
pub async fn healthz() -> axum::Json<Health> {
    axum::Json(Health {
        status: "ok".into(),
    })
}

/// Readiness.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// `ready`.
    pub status: String,
    /// Collections open (WAL replayed).
    pub collections: usize,
}

/// Collections are open and their WALs replayed; 503 while starting or shutting down (no key
/// needed).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses((status = 200, description = "Ready", body = Ready),
              (status = 503, description = "Not ready", body = crate::routes::ErrorBody)))]
pub async fn readyz(State(s): State<AppState>) -> ApiResult<axum::Json<Ready>> {
    if !s.is_ready() {
        return Err(ApiError::overloaded(
            "not ready: starting or shutting down",
            1,
        ));
    }
    let n = s.db().list_collections()?.len();
    Ok(axum::Json(Ready {
        status: "ready".into(),
        collections: n,
    }))
}

/// Prometheus metrics (any key not limited to collections or a tenant: the metrics name every
/// collection).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain"),
              (status = 401, description = "No key", body = crate::routes::ErrorBody),
              (status = 403, description = "A key limited to collections or a tenant", body = crate::routes::ErrorBody)),
    security(("api_key" = [])))]
pub async fn metrics(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<impl IntoResponse> {
    s.allow(&p, Role::Read, None)?;
    if p.collections.is_some() || p.tenant.is_some() {
        return Err(ApiError::new(
            sextant_core::ErrorKind::Forbidden,
            "the metrics cover every collection: they need a key not limited to collections or a tenant",
        ));
    }
    let st = s.clone();
    s.run(s.read_work(), move || {
        for name in st.db().list_collections()? {
            if let Ok(c) = st.db().collection(&name) {
                let info = c.info();
                let l = [("collection", name.clone())];
                metrics::gauge!("sextant_collection_points", &l).set(info.points as f64);
                metrics::gauge!("sextant_collection_segments", &l).set(info.segments.len() as f64);
                metrics::gauge!("sextant_collection_wal_bytes", &l).set(info.wal_bytes as f64);
                metrics::gauge!("sextant_collection_disk_bytes", &l).set(info.disk_bytes as f64);
                metrics::gauge!("sextant_collection_memory_bytes", &l)
                    .set(info.memory_bytes as f64);
                if let Some(p) = &info.recall_probe {
                    if let Some(r) = p.recall {
                        metrics::gauge!("sextant_ann_recall", &l).set(r);
                    }
                    metrics::gauge!("sextant_ann_recall_samples", &l).set(p.samples as f64);
                    metrics::counter!("sextant_ann_recall_probes_total", &l).absolute(p.measured);
                    metrics::counter!("sextant_ann_recall_dropped_total", &l).absolute(p.dropped);
                }
                if let Some(d) = &info.drift {
                    for sp in &d.spaces {
                        if let Some(x) = sp.centroid_shift {
                            let l = [
                                ("collection", name.clone()),
                                ("space", sp.now.space.clone()),
                            ];
                            metrics::gauge!("sextant_drift_centroid_shift", &l).set(x);
                        }
                    }
                    if let Some(c) = &d.last_check {
                        metrics::gauge!("sextant_drift_canary_precision", &l).set(c.mean);
                    }
                    metrics::gauge!("sextant_drift_alarms", &l).set(d.alarms.len() as f64);
                }
            }
        }
        Ok(())
    })
    .await?;
    metrics::gauge!("sextant_queue_depth").set(s.gate.queue_depth() as f64);
    let e = s.service().models().embedding_cache_stats();
    metrics::counter!("sextant_cache_requests_total", "cache" => "embedding", "outcome" => "hit")
        .absolute(e.hits);
    metrics::counter!("sextant_cache_requests_total", "cache" => "embedding", "outcome" => "miss")
        .absolute(e.misses);
    metrics::gauge!("sextant_cache_entries", "cache" => "embedding").set(e.len as f64);
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::handle().render(),
    ))
}

/// The OpenAPI 3.1 description of this server (no key needed).
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "OpenAPI 3.1 document", body = Object)))]
pub async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        crate::routes::OPENAPI.get().cloned().unwrap_or_default(),
    )
}
