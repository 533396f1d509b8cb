//! Drift monitoring over HTTP: the report, pinning the reference, canary queries and checks
//! (`sextant_service::drift`, `sextant_engine::drift`). Canaries search every tenant and the
//! statistics cover every point, so these routes refuse keys limited to a tenant; changing
//! the reference or the canaries is admin work, reading the report needs a read key.

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use sextant_core::ErrorKind;
use sextant_service::drift::{CanaryRequest, PinRequest};

use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Auth, RequestId};
use crate::limits::Work;
use crate::routes::ErrorBody;
use crate::AppState;

fn untenanted(p: &Principal) -> ApiResult<()> {
    super::untenanted(p, "drift monitoring covers every tenant")
}

fn to_json(v: impl serde::Serialize) -> ApiResult<Value> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

/// An admin change to a collection's drift state: checks the key, runs `f` as a write on the
/// CPU pool, audits it as `action`.
async fn admin_change(
    s: AppState,
    p: Principal,
    rid: String,
    name: String,
    action: &'static str,
    f: impl FnOnce(&sextant_service::Service, &str) -> ApiResult<Value> + Send + 'static,
) -> ApiResult<Json<Value>> {
    untenanted(&p)?;
    s.allow(&p, Role::Admin, Some(&name))?;
    let st = s.clone();
    let n = name.clone();
    let r = s.run(Work::Write, move || f(st.service(), &n)).await;
    s.audit(&p, action, Some(&name), None, &rid, &r);
    Ok(Json(r?))
}

/// The drift report: the distribution of each dense space now against the pinned reference,
/// the last canary check and its history, and the alarms raised (read). 404 when the
/// collection is not monitored (nothing pinned, no canary).
#[utoipa::path(get, path = "/collections/{name}/drift", tag = "collections",
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, description = "The report", body = Object),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn status(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    untenanted(&p)?;
    s.allow(&p, Role::Read, Some(&name))?;
    let st = s.clone();
    let n = name.clone();
    s.run(s.read_work(), move || {
        match st.service().drift_status(&n)? {
            Some(d) => Ok(Json(to_json(d)?)),
            None => Err(ApiError::new(
                ErrorKind::NotFound,
                format!("collection {n:?} is not monitored: pin a reference or add a canary"),
            )),
        }
    })
    .await
}

/// Pins the distribution of the collection's vectors now as the drift reference, with the
/// alarm thresholds (admin).
#[utoipa::path(post, path = "/collections/{name}/drift/pin", tag = "collections",
    request_body = PinRequest,
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, description = "The pinned reference", body = Object),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn pin(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<PinRequest>,
) -> ApiResult<Json<Value>> {
    admin_change(s, p, rid, name, "drift.pin", move |svc, n| {
        to_json(svc.drift_pin(n, &body)?)
    })
    .await
}

/// Lists the canary queries (read).
#[utoipa::path(get, path = "/collections/{name}/drift/canaries", tag = "collections",
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, description = "`{\"canaries\": [...]}`", body = Object),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn canaries(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    untenanted(&p)?;
    let c = s.collection(&p, Role::Read, &name)?;
    Ok(Json(json!({"canaries": c.drift_canaries()})))
}

/// Adds a canary query: a text (embedded with the collection's model) or a vector, with the
/// ids expected in its top k (default: the exact top k now) (admin).
#[utoipa::path(post, path = "/collections/{name}/drift/canaries", tag = "collections",
    request_body = CanaryRequest,
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, description = "The canary", body = Object),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "A canary of that name exists", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn add_canary(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<CanaryRequest>,
) -> ApiResult<Json<Value>> {
    admin_change(s, p, rid, name, "drift.canary_add", move |svc, n| {
        to_json(svc.drift_add_canary(n, &body)?)
    })
    .await
}

/// Removes a canary query (admin).
#[utoipa::path(delete, path = "/collections/{name}/drift/canaries/{canary}", tag = "collections",
    params(("name" = String, Path, description = "Collection or alias"),
           ("canary" = String, Path, description = "The canary's name")),
    responses((status = 200, description = "`{\"removed\": NAME}`", body = Object),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn remove_canary(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath((name, canary)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    admin_change(s, p, rid, name, "drift.canary_remove", move |svc, n| {
        svc.drift_remove_canary(n, &canary)?;
        Ok(json!({ "removed": canary }))
    })
    .await
}

/// Runs every canary through the normal search, records the check and returns the report
/// (admin: it writes the history).
#[utoipa::path(post, path = "/collections/{name}/drift/check", tag = "collections",
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, description = "The report after the check", body = Object),
              (status = 400, description = "No canaries", body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn check(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    admin_change(s, p, rid, name, "drift.check", |svc, n| {
        to_json(svc.drift_check(n)?)
    })
    .await
}
