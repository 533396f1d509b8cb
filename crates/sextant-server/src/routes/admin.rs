//! API key management (admin).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::{KeyError, KeyRecord, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Auth, RequestId};
use crate::routes::ErrorBody;
use crate::AppState;

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Invalid(m) => ApiError::new(sextant_core::ErrorKind::InvalidInput, m),
            KeyError::NotFound(_) => {
                ApiError::new(sextant_core::ErrorKind::NotFound, e.to_string())
            }
            KeyError::Io { .. } => ApiError::internal(crate::error::chain(&e)),
        }
    }
}

/// A new key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKey {
    /// `read`, `write` or `admin`.
    pub role: Role,
    /// Collections (or aliases) it may use; absent: all.
    #[serde(default)]
    pub collections: Option<Vec<String>>,
    /// The one tenant it may read and write (read and write keys only).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tenant: Option<Value>,
    /// A note.
    #[serde(default)]
    pub description: String,
}

/// A key as made: the secret is shown only here, once.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedKey {
    /// Send as `Authorization: Bearer KEY`.
    pub key: String,
    /// The stored record.
    pub record: KeyRecord,
}

/// Makes an API key (admin).
#[utoipa::path(post, path = "/admin/keys", tag = "admin", request_body = CreateKey,
    responses((status = 201, body = CreatedKey), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiJson(b): ApiJson<CreateKey>,
) -> ApiResult<(StatusCode, Json<CreatedKey>)> {
    s.allow(&p, Role::Admin, None)?;
    let st = s.clone();
    let r = s
        .run(crate::limits::Work::Write, move || {
            let (record, key) = st
                .keys()
                .create(b.role, b.collections, b.tenant, b.description)?;
            Ok(CreatedKey { key, record })
        })
        .await;
    s.audit(&p, "key.create", None, None, &rid, &r);
    Ok((StatusCode::CREATED, Json(r?)))
}

/// Key list.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    /// Keys (never their secrets).
    pub keys: Vec<KeyRecord>,
}

/// Lists API keys (admin).
#[utoipa::path(get, path = "/admin/keys", tag = "admin",
    responses((status = 200, body = KeyList), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_keys(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<KeyList>> {
    s.allow(&p, Role::Admin, None)?;
    Ok(Json(KeyList {
        keys: s.keys().list()?,
    }))
}

/// Revokes an API key (admin).
#[utoipa::path(delete, path = "/admin/keys/{id}", tag = "admin",
    params(("id" = String, Path, description = "Key id")),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete_key(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    s.allow(&p, Role::Admin, None)?;
    let st = s.clone();
    let i = id.clone();
    let r = s
        .run(crate::limits::Work::Write, move || {
            st.keys().delete(&i)?;
            Ok(json!({"deleted": i}))
        })
        .await;
    s.audit(&p, "key.delete", None, None, &rid, &r);
    Ok(Json(r?))
}
