//! Query adapters over HTTP (`sextant_engine::adapter`, `sextant_service::adapter`): show,
//! attach (the weights in the body) and detach a collection's adapter. An adapter maps every
//! tenant's queries, so these routes refuse keys limited to a tenant; attaching or detaching
//! is admin work and empties the collection's query-result cache (its answers were computed
//! with the other map).

use axum::extract::State;
use axum::Json;
use serde_json::{json, Value};
use sextant_service::adapter::AdapterBody;

use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Auth, RequestId};
use crate::limits::Work;
use crate::routes::ErrorBody;
use crate::AppState;

fn untenanted(p: &Principal) -> ApiResult<()> {
    super::untenanted(p, "a query adapter maps every tenant's queries")
}

/// Attaching or detaching: an admin key without a tenant, `f` run as a write on the CPU pool,
/// the collection's query cache emptied, the change audited as `action`.
async fn change(
    s: AppState,
    p: Principal,
    rid: String,
    name: String,
    action: &'static str,
    f: impl FnOnce(&sextant_service::Service, &str) -> ApiResult<Value> + Send + 'static,
) -> ApiResult<Json<Value>> {
    untenanted(&p)?;
    let c = s.collection(&p, Role::Admin, &name)?;
    let st = s.clone();
    let r = s
        .run(Work::Write, move || {
            let out = f(st.service(), c.name())?;
            st.cache.invalidate(c.name());
            Ok(out)
        })
        .await;
    s.audit(&p, action, Some(&name), None, &rid, &r);
    Ok(Json(r?))
}

/// The collection's query adapters: space, kind, dimension, fingerprint and training card
/// (read). `{"adapters": []}` when none is attached.
#[utoipa::path(get, path = "/collections/{name}/adapter", tag = "collections",
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, description = "`{\"adapters\": [...]}`", body = Object),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn show(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    untenanted(&p)?;
    let c = s.collection(&p, Role::Read, &name)?;
    Ok(Json(json!({"adapters": c.adapters()})))
}

/// Attaches a query adapter (replacing the space's): `W` as `dim × dim` numbers and the model
/// identity it was trained for (`adapter_card.json`'s `model`); text searches map their
/// embedded query through it from now on (admin).
#[utoipa::path(put, path = "/collections/{name}/adapter", tag = "collections",
    request_body = AdapterBody,
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, description = "The attached adapter (with its fingerprint)", body = Object),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "Trained for another model", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn attach(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
    ApiJson(body): ApiJson<AdapterBody>,
) -> ApiResult<Json<Value>> {
    change(s, p, rid, name, "adapter.attach", move |svc, n| {
        serde_json::to_value(svc.put_adapter(n, &body)?).map_err(ApiError::internal)
    })
    .await
}

/// Removes the collection's query adapter: text searches use the model's own query embedding
/// (admin). `{"removed": false}` when none was attached.
#[utoipa::path(delete, path = "/collections/{name}/adapter", tag = "collections",
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, description = "`{\"removed\": bool}`", body = Object),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn detach(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    change(s, p, rid, name, "adapter.detach", |svc, n| {
        Ok(json!({ "removed": svc.detach_adapter(n)? }))
    })
    .await
}
