//! Collections, aliases and tenants.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sextant_engine::TenantId;
use utoipa::ToSchema;

use crate::auth::Role;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Auth, RequestId};
use crate::limits::Work;
use crate::routes::ErrorBody;
use crate::AppState;

/// Collections and aliases.
#[derive(Debug, Serialize, ToSchema)]
pub struct CollectionList {
    /// Collection names.
    pub collections: Vec<String>,
    /// Alias → collection.
    pub aliases: BTreeMap<String, String>,
}

/// Lists the collections (and aliases) this key may use.
#[utoipa::path(get, path = "/collections", tag = "collections",
    responses((status = 200, body = CollectionList), (status = 401, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<CollectionList>> {
    s.allow(&p, Role::Read, None)?;
    let allowed = |n: &str| s.allow(&p, Role::Read, Some(n)).is_ok();
    let collections = s
        .db()
        .list_collections()?
        .into_iter()
        .filter(|n| allowed(n))
        .collect();
    let aliases = s
        .db()
        .aliases()
        .into_iter()
        .filter(|(a, _)| allowed(a))
        .collect();
    Ok(Json(CollectionList {
        collections,
        aliases,
    }))
}

pub use sextant_service::CollectionSpec as CreateCollection;

/// Creates a collection (admin).
#[utoipa::path(post, path = "/collections", tag = "collections", request_body = CreateCollection,
    responses((status = 201, description = "Created; the collection's info", body = Object),
              (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiJson(b): ApiJson<CreateCollection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if b.name.is_empty() {
        return Err(ApiError::invalid("name", "give the collection's name"));
    }
    create_collection(s, p, rid, b).await
}

/// Creates the collection named in the path (admin); the body is that of `POST /collections`
/// without (or with the same) `name`.
#[utoipa::path(put, path = "/collections/{name}", tag = "collections", request_body = CreateCollection,
    params(("name" = String, Path, description = "New collection's name")),
    responses((status = 201, description = "Created; the collection's info", body = Object),
              (status = 400, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create_named(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
    ApiJson(mut b): ApiJson<CreateCollection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    if !b.name.is_empty() && b.name != name {
        return Err(ApiError::invalid(
            "name",
            format!("the body names {:?} but the path {name:?}", b.name),
        ));
    }
    b.name = name;
    create_collection(s, p, rid, b).await
}

async fn create_collection(
    s: AppState,
    p: crate::auth::Principal,
    rid: String,
    b: CreateCollection,
) -> ApiResult<(StatusCode, Json<Value>)> {
    s.allow(&p, Role::Admin, Some(&b.name))?;
    b.schema()?;
    let st = s.clone();
    let spec = b.clone();
    let r = s
        .run(Work::Write, move || {
            let c = st.service().create_collection(&spec)?;
            st.cache.invalidate(c.name());
            serde_json::to_value(c.info()).map_err(ApiError::internal)
        })
        .await;
    s.audit(&p, "collection.create", Some(&b.name), None, &rid, &r);
    Ok((StatusCode::CREATED, Json(r?)))
}

/// Collection statistics: counts, segments, memory, disk. A tenant-limited key sees its
/// tenant's point count only.
#[utoipa::path(get, path = "/collections/{name}", tag = "collections",
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn info(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let c = s.collection(&p, Role::Read, &name)?;
    let st = s.clone();
    s.run(s.read_work(), move || {
        if p.tenant.is_some() {
            let scope = st.scope(&p, &c, None, false)?;
            return Ok(Json(json!({
                "name": c.name(),
                "schema": c.schema(),
                "points": c.count(&scope, None)?,
            })));
        }
        Ok(Json(
            serde_json::to_value(c.info()).map_err(ApiError::internal)?,
        ))
    })
    .await
}

/// Deletes a collection and its files (admin).
#[utoipa::path(delete, path = "/collections/{name}", tag = "collections",
    params(("name" = String, Path, description = "Collection (not an alias)")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    s.allow(&p, Role::Admin, Some(&name))?;
    let st = s.clone();
    let n = name.clone();
    let r = s
        .run(Work::Write, move || {
            st.db().delete_collection(&n)?;
            st.cache.invalidate(&n);
            Ok(json!({"deleted": n}))
        })
        .await;
    s.audit(&p, "collection.delete", Some(&name), None, &rid, &r);
    Ok(Json(r?))
}

/// Flushes and merges a collection into one segment, dropping deleted points (admin).
#[utoipa::path(post, path = "/collections/{name}/optimize", tag = "collections",
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn optimize(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let c = s.collection(&p, Role::Admin, &name)?;
    let r = s
        .run(Work::Write, move || {
            c.optimize()?;
            serde_json::to_value(c.info()).map_err(ApiError::internal)
        })
        .await;
    s.audit(&p, "collection.optimize", Some(&name), None, &rid, &r);
    Ok(Json(r?))
}

/// Aliases.
#[derive(Debug, Serialize, ToSchema)]
pub struct AliasList {
    /// Alias → collection.
    pub aliases: BTreeMap<String, String>,
}

/// Lists aliases.
#[utoipa::path(get, path = "/aliases", tag = "collections",
    responses((status = 200, body = AliasList)), security(("api_key" = [])))]
pub async fn aliases(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<AliasList>> {
    s.allow(&p, Role::Read, None)?;
    let aliases = s
        .db()
        .aliases()
        .into_iter()
        .filter(|(a, _)| s.allow(&p, Role::Read, Some(a)).is_ok())
        .collect();
    Ok(Json(AliasList { aliases }))
}

/// Where an alias points.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetAlias {
    /// The collection.
    pub collection: String,
}

/// Creates or atomically switches an alias (admin).
#[utoipa::path(put, path = "/aliases/{alias}", tag = "collections", request_body = SetAlias,
    params(("alias" = String, Path, description = "Alias name")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn set_alias(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(alias): ApiPath<String>,
    ApiJson(b): ApiJson<SetAlias>,
) -> ApiResult<Json<Value>> {
    s.allow(&p, Role::Admin, None)?;
    let st = s.clone();
    let a = alias.clone();
    let r = s
        .run(Work::Write, move || {
            st.db().set_alias(&a, &b.collection)?;
            Ok(json!({"alias": a, "collection": b.collection}))
        })
        .await;
    s.audit(&p, "alias.set", Some(&alias), None, &rid, &r);
    Ok(Json(r?))
}

/// Deletes an alias (admin).
#[utoipa::path(delete, path = "/aliases/{alias}", tag = "collections",
    params(("alias" = String, Path, description = "Alias name")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete_alias(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(alias): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    s.allow(&p, Role::Admin, None)?;
    let st = s.clone();
    let a = alias.clone();
    let r = s
        .run(Work::Write, move || {
            st.db().delete_alias(&a)?;
            Ok(json!({"deleted": a}))
        })
        .await;
    s.audit(&p, "alias.delete", Some(&alias), None, &rid, &r);
    Ok(Json(r?))
}

/// Tenants and their point counts (admin).
#[utoipa::path(get, path = "/collections/{name}/tenants", tag = "collections",
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn tenants(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let c = s.collection(&p, Role::Admin, &name)?;
    s.run(s.read_work(), move || {
        let list: Vec<Value> = c
            .tenants()?
            .into_iter()
            .map(|(t, n)| json!({"tenant": t.to_json(), "points": n}))
            .collect();
        Ok(Json(json!({"tenants": list})))
    })
    .await
}

/// Deletes every point of one tenant (admin).
#[utoipa::path(delete, path = "/collections/{name}/tenants/{tenant}", tag = "collections",
    params(("name" = String, Path, description = "Collection or alias"),
           ("tenant" = String, Path, description = "Tenant id (an integer for an integer tenant key)")),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn drop_tenant(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath((name, tenant)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let c = s.collection(&p, Role::Admin, &name)?;
    let st = s.clone();
    let r = s
        .run(Work::Write, move || {
            let t = TenantId::parse_for(c.schema(), &tenant)
                .map_err(|e| ApiError::from(e).with_field("tenant"))?;
            let n = c.drop_tenant(&t)?;
            st.cache.invalidate(c.name());
            Ok(json!({"tenant": t.to_json(), "deleted": n}))
        })
        .await;
    s.audit(&p, "tenant.drop", Some(&name), None, &rid, &r);
    Ok(Json(r?))
}
