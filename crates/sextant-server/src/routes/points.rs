//! Points: upsert, get, delete, count, scroll, and vector search.

use std::time::Instant;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sextant_core::{Filter, PointId};
use sextant_engine::{OrderBy, PointInput, SearchRequest, Vectors};
use utoipa::ToSchema;

use crate::auth::Role;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, RequestId};
use crate::limits::Work;
use crate::routes::ErrorBody;
use crate::AppState;

/// A point to write.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PointBody {
    /// A non-negative integer, a UUID or another string.
    #[schema(value_type = Object)]
    pub id: Value,
    /// The vector (single-space collection) or vectors by space name.
    #[schema(value_type = Object)]
    pub vector: Value,
    /// JSON object.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub payload: Value,
    /// When the point expires: an RFC 3339 instant (UTC, millisecond precision). From then on
    /// no read returns it. Wins over the collection's default `ttl`.
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub expires_at: Option<Value>,
    /// Seconds from now after which the point expires (instead of `expires_at`).
    #[serde(default)]
    #[schema(value_type = Option<u64>)]
    pub ttl: Option<Value>,
}

/// Points to write; one batch is atomic.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpsertBody {
    /// The points.
    pub points: Vec<PointBody>,
    /// Tenant of every point (multi-tenant collections).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tenant: Option<Value>,
    /// Write across tenants (each point's payload names its tenant); not for tenant keys.
    #[serde(default)]
    pub all_tenants: bool,
}

/// The result of a write.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpsertResult {
    /// Points written.
    pub upserted: usize,
    /// The WAL sequence number of the batch.
    pub sequence: u64,
}

fn id_of(v: &Value, field: &str) -> ApiResult<PointId> {
    PointId::from_json(v)
        .ok_or_else(|| ApiError::invalid(field, "an id is a non-negative integer or a string"))
}

fn vector_of(v: &Value, field: &str) -> ApiResult<Vec<f32>> {
    let arr = v
        .as_array()
        .ok_or_else(|| ApiError::invalid(field, "expected an array of numbers"))?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_f64()
                .map(|f| f as f32)
                .ok_or_else(|| ApiError::invalid(field, format!("element {i} is not a number")))
        })
        .collect()
}

fn point_input(i: usize, p: PointBody) -> ApiResult<PointInput> {
    let id = id_of(&p.id, &format!("points[{i}].id"))?;
    let vectors = match &p.vector {
        Value::Object(m) => Vectors::Named(
            m.iter()
                .map(|(k, x)| Ok((k.clone(), vector_of(x, &format!("points[{i}].vector.{k}"))?)))
                .collect::<ApiResult<_>>()?,
        ),
        x => Vectors::Single(vector_of(x, &format!("points[{i}].vector"))?),
    };
    let expires_at = sextant_service::import::expiry(
        p.expires_at.as_ref(),
        p.ttl.as_ref(),
        &format!("points[{i}]"),
    )
    .map_err(|e| {
        let field = format!("points[{i}].{}", e.field().unwrap_or("expires_at"));
        ApiError::invalid(&field, e.to_string())
    })?;
    Ok(PointInput {
        id,
        vectors,
        payload: p.payload,
        sparse: Vec::new(),
        expires_at,
    })
}

fn filter_of(v: Option<&Value>) -> ApiResult<Option<Filter>> {
    v.filter(|v| !v.is_null())
        .map(|v| Filter::from_json(v).map_err(|e| ApiError::invalid("filter", e.to_string())))
        .transpose()
}

/// Writes points (write role); an existing id is replaced. Atomic per request.
#[utoipa::path(put, path = "/collections/{name}/points", tag = "points", request_body = UpsertBody,
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, body = UpsertResult), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn upsert(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
    ApiJson(b): ApiJson<UpsertBody>,
) -> ApiResult<Json<UpsertResult>> {
    let c = s.collection(&p, Role::Write, &name)?;
    let scope = s.scope(&p, &c, b.tenant.as_ref(), b.all_tenants)?;
    let max = s.config().limits.max_batch_points;
    if b.points.len() > max {
        return Err(ApiError::invalid(
            "points",
            format!(
                "{} points in one request; the limit is {max} (limits.max_batch_points)",
                b.points.len()
            ),
        ));
    }
    let points = b
        .points
        .into_iter()
        .enumerate()
        .map(|(i, pt)| point_input(i, pt))
        .collect::<ApiResult<Vec<_>>>()?;
    let st = s.clone();
    let sc = scope.clone();
    let r = s
        .run(Work::Write, move || {
            let n = points.len();
            let sequence = c.upsert(&sc, points)?;
            st.cache.invalidate(c.name());
            Ok(UpsertResult {
                upserted: n,
                sequence,
            })
        })
        .await;
    s.audit(&p, "points.upsert", Some(&name), Some(&scope), &rid, &r);
    Ok(Json(r?))
}

/// Which points to read.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GetBody {
    /// Ids (missing ones are left out of the answer).
    #[schema(value_type = Vec<Object>)]
    pub ids: Vec<Value>,
    /// Return payloads (default true).
    #[serde(default)]
    pub with_payload: Option<bool>,
    /// Return vectors (default false).
    #[serde(default)]
    pub with_vector: bool,
    /// Tenant (multi-tenant collections).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tenant: Option<Value>,
    /// Every tenant (not for tenant keys).
    #[serde(default)]
    pub all_tenants: bool,
}

/// Points found.
#[derive(Debug, Serialize, ToSchema)]
pub struct PointsOut {
    /// The points.
    #[schema(value_type = Vec<Object>)]
    pub points: Vec<Value>,
}

/// Reads points by id (read role).
#[utoipa::path(post, path = "/collections/{name}/points/get", tag = "points", request_body = GetBody,
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, body = PointsOut), (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(name): ApiPath<String>,
    ApiJson(b): ApiJson<GetBody>,
) -> ApiResult<Json<PointsOut>> {
    let c = s.collection(&p, Role::Read, &name)?;
    let scope = s.scope(&p, &c, b.tenant.as_ref(), b.all_tenants)?;
    let max = s.config().limits.max_results;
    if b.ids.len() > max {
        return Err(ApiError::invalid(
            "ids",
            format!("at most {max} ids per request"),
        ));
    }
    let ids = b
        .ids
        .iter()
        .enumerate()
        .map(|(i, v)| id_of(v, &format!("ids[{i}]")))
        .collect::<ApiResult<Vec<_>>>()?;
    s.run(s.read_work(), move || {
        let pts = c.get(&scope, &ids, b.with_payload.unwrap_or(true), b.with_vector)?;
        Ok(Json(PointsOut {
            points: pts
                .iter()
                .map(|p| serde_json::to_value(p).unwrap_or_default())
                .collect(),
        }))
    })
    .await
}

/// Tenant of a single-point read.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct TenantQuery {
    /// Tenant (an integer for an integer tenant key).
    #[serde(default)]
    pub tenant: Option<String>,
    /// Every tenant (`true`).
    #[serde(default)]
    pub all_tenants: Option<bool>,
}

/// Reads one point (read role); 404 when it does not exist (or is another tenant's).
#[utoipa::path(get, path = "/collections/{name}/points/{id}", tag = "points",
    params(("name" = String, Path, description = "Collection or alias"),
           ("id" = String, Path, description = "Point id (digits: an integer id)"), TenantQuery),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn get_one(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath((name, id)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<TenantQuery>,
) -> ApiResult<Json<Value>> {
    let c = s.collection(&p, Role::Read, &name)?;
    let tenant = match &q.tenant {
        Some(t) => Some(
            sextant_engine::TenantId::parse_for(c.schema(), t)
                .map_err(|e| ApiError::from(e).with_field("tenant"))?
                .to_json(),
        ),
        None => None,
    };
    let scope = s.scope(&p, &c, tenant.as_ref(), q.all_tenants.unwrap_or(false))?;
    let pid = match id.parse::<u64>() {
        Ok(n) => PointId::Num(n),
        Err(_) => id_of(&Value::String(id.clone()), "id")?,
    };
    s.run(s.read_work(), move || {
        let pts = c.get(&scope, &[pid], true, false)?;
        match pts.first() {
            Some(pt) => Ok(Json(serde_json::to_value(pt).map_err(ApiError::internal)?)),
            None => Err(ApiError::new(
                sextant_core::ErrorKind::NotFound,
                format!("no point {id:?} in collection {:?}", c.name()),
            )),
        }
    })
    .await
}

/// Points to delete: by ids or by filter (one of the two).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteBody {
    /// Ids.
    #[serde(default)]
    #[schema(value_type = Vec<Object>)]
    pub ids: Option<Vec<Value>>,
    /// Payload filter.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub filter: Option<Value>,
    /// Tenant (multi-tenant collections).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tenant: Option<Value>,
    /// Every tenant (not for tenant keys).
    #[serde(default)]
    pub all_tenants: bool,
}

/// Deletes points by id or filter (write role).
#[utoipa::path(post, path = "/collections/{name}/points/delete", tag = "points", request_body = DeleteBody,
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
    ApiJson(b): ApiJson<DeleteBody>,
) -> ApiResult<Json<Value>> {
    let c = s.collection(&p, Role::Write, &name)?;
    let scope = s.scope(&p, &c, b.tenant.as_ref(), b.all_tenants)?;
    enum Target {
        Ids(Vec<PointId>),
        Filter(Filter),
    }
    let target = match (&b.ids, filter_of(b.filter.as_ref())?) {
        (Some(ids), None) => Target::Ids(
            ids.iter()
                .enumerate()
                .map(|(i, v)| id_of(v, &format!("ids[{i}]")))
                .collect::<ApiResult<_>>()?,
        ),
        (None, Some(f)) => Target::Filter(f),
        _ => return Err(ApiError::invalid("ids", "give ids or filter (exactly one)")),
    };
    let st = s.clone();
    let sc = scope.clone();
    let r = s
        .run(Work::Write, move || {
            let n = match target {
                Target::Ids(ids) => c.delete(&sc, ids)?,
                Target::Filter(f) => c.delete_by_filter(&sc, &f)?,
            };
            st.cache.invalidate(c.name());
            Ok(json!({"deleted": n}))
        })
        .await;
    s.audit(&p, "points.delete", Some(&name), Some(&scope), &rid, &r);
    Ok(Json(r?))
}

/// What to count.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CountBody {
    /// Payload filter.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub filter: Option<Value>,
    /// Tenant (multi-tenant collections).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tenant: Option<Value>,
    /// Every tenant (not for tenant keys).
    #[serde(default)]
    pub all_tenants: bool,
}

/// A count.
#[derive(Debug, Serialize, ToSchema)]
pub struct CountOut {
    /// Points matching.
    pub count: u64,
}

/// Counts points, exactly (read role).
#[utoipa::path(post, path = "/collections/{name}/points/count", tag = "points", request_body = CountBody,
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, body = CountOut), (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn count(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(name): ApiPath<String>,
    ApiJson(b): ApiJson<CountBody>,
) -> ApiResult<Json<CountOut>> {
    let c = s.collection(&p, Role::Read, &name)?;
    let scope = s.scope(&p, &c, b.tenant.as_ref(), b.all_tenants)?;
    let filter = filter_of(b.filter.as_ref())?;
    s.run(s.read_work(), move || {
        Ok(Json(CountOut {
            count: c.count(&scope, filter.as_ref())?,
        }))
    })
    .await
}

/// Scroll order.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderByBody {
    /// Payload key (dotted).
    pub key: String,
    /// `asc` (default) or `desc`.
    #[serde(default)]
    pub direction: Option<String>,
}

/// A page of points.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScrollBody {
    /// Payload filter.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub filter: Option<Value>,
    /// Page size (default 100).
    #[serde(default)]
    pub limit: Option<usize>,
    /// `next_offset` of the previous page.
    #[serde(default)]
    pub offset: Option<String>,
    /// Order by a payload key.
    #[serde(default)]
    pub order_by: Option<OrderByBody>,
    /// Return payloads (default true).
    #[serde(default)]
    pub with_payload: Option<bool>,
    /// Tenant (multi-tenant collections).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tenant: Option<Value>,
    /// Every tenant (not for tenant keys).
    #[serde(default)]
    pub all_tenants: bool,
}

/// Pages through points (read role).
#[utoipa::path(post, path = "/collections/{name}/points/scroll", tag = "points", request_body = ScrollBody,
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn scroll(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(name): ApiPath<String>,
    ApiJson(b): ApiJson<ScrollBody>,
) -> ApiResult<Json<Value>> {
    let c = s.collection(&p, Role::Read, &name)?;
    let scope = s.scope(&p, &c, b.tenant.as_ref(), b.all_tenants)?;
    let filter = filter_of(b.filter.as_ref())?;
    let limit = b.limit.unwrap_or(100);
    let max = s.config().limits.max_results;
    if limit == 0 || limit > max {
        return Err(ApiError::invalid(
            "limit",
            format!("limit must be 1..={max}"),
        ));
    }
    let order = match b.order_by {
        Some(o) => Some(OrderBy {
            key: o.key,
            descending: match o.direction.as_deref() {
                None | Some("asc") => false,
                Some("desc") => true,
                Some(d) => {
                    return Err(ApiError::invalid(
                        "order_by.direction",
                        format!("{d:?}: expected asc or desc"),
                    ))
                }
            },
        }),
        None => None,
    };
    s.run(s.read_work(), move || {
        let page = c.scroll(
            &scope,
            filter.as_ref(),
            limit,
            b.offset.as_deref(),
            order.as_ref(),
            b.with_payload.unwrap_or(true),
        )?;
        Ok(Json(
            serde_json::to_value(page).map_err(ApiError::internal)?,
        ))
    })
    .await
}

/// A vector search.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// The query vector.
    pub vector: Vec<f32>,
    /// Space (when the collection has several).
    #[serde(default)]
    pub space: Option<String>,
    /// Results (default 10).
    #[serde(default)]
    pub k: Option<usize>,
    /// Candidates an approximate search keeps: the HNSW candidate list, or the number of
    /// `ivf_pq` candidates rescored exactly [default: the index's]. Raised to `k`, except by a
    /// filtered HNSW walk, which stops at its `ef`-th match and returns the `k` closest
    /// matches it found.
    #[serde(default)]
    pub ef: Option<usize>,
    /// Lists an `ivf_pq` space scans [default: the space's `nprobe`]; refused for other
    /// indexes.
    #[serde(default)]
    pub nprobe: Option<usize>,
    /// Search every point exactly, no HNSW (ground truth for recall checks; slower on large
    /// collections) [default: false].
    #[serde(default)]
    pub exact: bool,
    /// Payload filter.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub filter: Option<Value>,
    /// Return payloads (default false).
    #[serde(default)]
    pub with_payload: bool,
    /// Return vectors (default false).
    #[serde(default)]
    pub with_vector: bool,
    /// Return the per-segment plan.
    #[serde(default)]
    pub explain: bool,
    /// Tenant (multi-tenant collections).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub tenant: Option<Value>,
    /// Every tenant (not for tenant keys).
    #[serde(default)]
    pub all_tenants: bool,
}

/// Search hits.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchOut {
    /// Best first: `id`, `score` (similarity for cosine/dot, distance for l2/l1), `payload`.
    #[schema(value_type = Vec<Object>)]
    pub hits: Vec<Value>,
    /// Per-segment plan (with `explain`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Object)]
    pub plan: Option<Value>,
}

/// Nearest neighbours of a vector, with an optional payload filter (read role).
#[utoipa::path(post, path = "/collections/{name}/search", tag = "search", request_body = SearchBody,
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, body = SearchOut), (status = 400, body = ErrorBody),
              (status = 503, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn search(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(name): ApiPath<String>,
    ApiJson(b): ApiJson<SearchBody>,
) -> ApiResult<axum::response::Response> {
    let c = s.collection(&p, Role::Read, &name)?;
    let scope = s.scope(&p, &c, b.tenant.as_ref(), b.all_tenants)?;
    let filter = filter_of(b.filter.as_ref())?;
    let limits = &s.config().limits;
    let k = b.k.unwrap_or(10);
    if k == 0 || k > limits.max_results {
        return Err(ApiError::invalid(
            "k",
            format!("k must be 1..={}", limits.max_results),
        ));
    }
    if let Some(ef) = b.ef {
        if ef == 0 || ef > limits.max_ef {
            return Err(ApiError::invalid(
                "ef",
                format!("ef must be 1..={}", limits.max_ef),
            ));
        }
    }
    if let Some(nprobe) = b.nprobe {
        if nprobe == 0 || nprobe > sextant_engine::MAX_NLIST {
            return Err(ApiError::invalid(
                "nprobe",
                format!("nprobe must be 1..={}", sextant_engine::MAX_NLIST),
            ));
        }
    }
    let key = s.cache.enabled().then(|| {
        s.cache.key(
            c.name(),
            &format!("{scope:?}"),
            // A cached answer lasts until the next expiry in the collection at most.
            &format!("search\u{0}{:?}", c.next_expiry()),
            &serde_json::to_value(&b).unwrap_or_default(),
        )
    });
    if let Some(hit) = key.as_deref().and_then(|k| s.cache.get(k)) {
        return Ok(json_bytes(hit));
    }
    let st = s.clone();
    // An unfiltered graph search is a fraction of a millisecond: run it in place.
    let work = if b.filter.is_none() && !b.exact {
        s.quick_work()
    } else {
        s.read_work()
    };
    s.run(work, move || {
        let t0 = Instant::now();
        let resp = c.search(SearchRequest {
            space: b.space,
            vector: b.vector,
            k,
            ef: b.ef,
            nprobe: b.nprobe,
            filter,
            scope,
            with_payload: b.with_payload,
            with_vector: b.with_vector,
            exact_threshold: b.exact.then_some(u64::MAX),
        })?;
        let plan = if b.filter.is_some() {
            "filtered"
        } else {
            "vector"
        };
        metrics::histogram!("sextant_search_duration_seconds", "plan" => plan)
            .record(t0.elapsed().as_secs_f64());
        let out = bytes::Bytes::from(
            serde_json::to_vec(&SearchOut {
                hits: resp
                    .hits
                    .iter()
                    .map(|h| serde_json::to_value(h).unwrap_or_default())
                    .collect(),
                plan: b
                    .explain
                    .then(|| json!({"segments": resp.plan, "unindexed_keys": resp.unindexed_keys})),
            })
            .map_err(ApiError::internal)?,
        );
        if let Some(k) = key {
            st.cache.put(k, out.clone());
        }
        Ok(json_bytes(out))
    })
    .await
}

/// A pre-serialised JSON answer.
pub(crate) fn json_bytes(b: bytes::Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    ([(axum::http::header::CONTENT_TYPE, "application/json")], b).into_response()
}
