//! Evaluation and model upgrades over HTTP: `POST /collections/{name}/eval` scores
//! configurations against judged queries (`sextant_service::eval`), `POST
//! /collections/{name}/reindex` re-embeds a document collection with another model into a new
//! collection as a background job (`sextant_service::reindex`), `POST
//! /collections/{name}/advise` measures index layouts on a sample as a background job
//! (`sextant_service::advise`), `GET /jobs` and `GET /jobs/{id}` report on jobs.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use sextant_core::ErrorKind;
use sextant_service::advise::AdviseOptions;
use sextant_service::eval::EvalOptions;
use sextant_service::ReindexOptions;
use utoipa::ToSchema;

use crate::auth::Role;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Auth, RequestId};
use crate::jobs::Job;
use crate::limits::Work;
use crate::routes::text::check_model_name;
use crate::routes::ErrorBody;
use crate::AppState;

/// An evaluation request: the fields of `EvalOptions` plus the tenant scope. (It documents the
/// body; the handler takes the tenant fields out of the JSON and reads the rest as
/// `EvalOptions`, which refuses unknown fields.)
#[allow(dead_code)]
#[derive(Debug, Deserialize, ToSchema)]
pub struct EvalBody {
    /// Judged queries, configurations and report settings.
    #[serde(flatten)]
    pub options: EvalOptions,
    /// The tenant to evaluate in (multi-tenant collections).
    #[schema(value_type = Option<Object>)]
    pub tenant: Option<Value>,
    /// Every tenant's documents (the administrator's path).
    #[serde(default)]
    pub all_tenants: bool,
}

/// Scores configurations of a document collection against judged queries: every metric at
/// every cut-off, latency, paired significance against the reference (and between each
/// configuration and its counterpart on `compare`), error analysis; the report as JSON with
/// its Markdown (read). Long evaluations are not cut short by the read timeout.
#[utoipa::path(post, path = "/collections/{name}/eval", tag = "search",
    request_body = EvalBody,
    params(("name" = String, Path, description = "Document collection or alias")),
    responses((status = 200, description = "The report (`markdown` holds it as text)", body = Object),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn eval(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(name): ApiPath<String>,
    ApiJson(mut body): ApiJson<Value>,
) -> ApiResult<Json<Value>> {
    let obj = body
        .as_object_mut()
        .ok_or_else(|| ApiError::invalid("body", "expected a JSON object"))?;
    let tenant = obj.remove("tenant");
    let all_tenants = match obj.remove("all_tenants") {
        None => false,
        Some(Value::Bool(b)) => b,
        Some(v) => {
            return Err(ApiError::invalid(
                "all_tenants",
                format!("expected true or false, got {v}"),
            ))
        }
    };
    let opts: EvalOptions = serde_json::from_value(body).map_err(|e| {
        let msg = e.to_string();
        let field = msg
            .split('`')
            .nth(1)
            .filter(|f| !f.contains(' '))
            .unwrap_or("body")
            .to_string();
        ApiError::invalid(&field, format!("evaluation request: {msg}"))
    })?;
    let c = s.collection(&p, Role::Read, &name)?;
    if let Some(other) = &opts.compare {
        s.allow(&p, Role::Read, Some(other))
            .map_err(|e| e.with_field("compare"))?;
    }
    // Remote callers name configured models only, never paths.
    let (configs, _) = opts.configs(&name)?;
    for cfg in &configs {
        if let Some(r) = cfg.request.as_ref() {
            check_model_name(&s, "configs", r.rerank.as_deref())?;
        }
    }
    let scope = s.scope(&p, &c, tenant.as_ref(), all_tenants)?;
    let st = s.clone();
    s.run(Work::Write, move || {
        let report = st
            .service()
            .evaluate_options(&name, &scope, &opts, &mut |_, _, _| {})?;
        let mut v = serde_json::to_value(&report).map_err(ApiError::internal)?;
        v["markdown"] = Value::String(report.markdown());
        Ok(Json(v))
    })
    .await
}

/// Starts re-embedding a document collection with another configured model into a new
/// collection (admin): the source keeps serving and stays for rollback. Answers 202 with the
/// job; follow it at `GET /jobs/{id}`. With `resume`, continues into an existing target.
#[utoipa::path(post, path = "/collections/{name}/reindex", tag = "collections",
    request_body = ReindexOptions,
    params(("name" = String, Path, description = "Document collection or alias")),
    responses((status = 202, description = "Started: the job, with the estimate in `result` once done", body = Job),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "The target exists (give resume) or is being written", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn reindex(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
    ApiJson(opts): ApiJson<ReindexOptions>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    s.allow(&p, Role::Admin, Some(&name))?;
    s.allow(&p, Role::Admin, Some(&opts.into))
        .map_err(|e| e.with_field("into"))?;
    if p.tenant.is_some() {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "a reindex copies every tenant's documents; this API key is limited to a tenant",
        ));
    }
    check_model_name(&s, "model", Some(&opts.model))?;
    if opts.batch == Some(0) {
        return Err(ApiError::invalid("batch", "must be at least 1"));
    }
    let busy = s.jobs.list().into_iter().any(|j| {
        j.state == crate::jobs::JobState::Running && j.target.as_deref() == Some(&opts.into)
    });
    if busy {
        return Err(ApiError::new(
            ErrorKind::Conflict,
            format!("a reindex into {:?} is already running", opts.into),
        )
        .with_field("into"));
    }
    // Refuse what can be refused before starting: unknown source, a target that exists
    // without resume, a model too short for the chunks (the plan checks them all).
    let st = s.clone();
    let (n, o) = (name.clone(), opts.clone());
    s.run(Work::Write, move || {
        let src = st.service().collection(&n)?;
        sextant_engine::documents::DocumentSettings::of(&src)?;
        if !o.resume && st.db().collection(&o.into).is_ok() {
            return Err(ApiError::new(
                ErrorKind::AlreadyExists,
                format!(
                    "collection {:?} exists; give resume to continue a reindex into it",
                    o.into
                ),
            )
            .with_field("into"));
        }
        Ok(())
    })
    .await?;
    let target = opts.into.clone();
    let job = spawn_job(
        &s,
        &p,
        rid,
        ("reindex", "collection.reindex"),
        (&name, Some(&target)),
        move |st, n, progress| {
            let r = st
                .service()
                .reindex(n, &opts, &mut |done, total| progress(done, total))
                .map_err(ApiError::from)
                .and_then(|rep| serde_json::to_value(rep).map_err(ApiError::internal));
            st.cache.invalidate(&opts.into);
            r
        },
    )?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Starts the index advisor on a collection (admin): every layout its space can be created
/// with is built and measured on a sample of its vectors, and one is recommended for the
/// planned size, memory budget and recall target. Answers 202 with the job; the report is its
/// `result` at `GET /jobs/{id}` (`done`/`total` count the layouts measured). A bad request is
/// refused before the job starts; one advice job per collection at a time.
#[utoipa::path(post, path = "/collections/{name}/advise", tag = "collections",
    request_body = AdviseOptions,
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 202, description = "Started: the job, with the advice in `result` once done", body = Job),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "An advice job on this collection is running", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn advise(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
    ApiJson(opts): ApiJson<AdviseOptions>,
) -> ApiResult<(StatusCode, Json<Job>)> {
    s.collection(&p, Role::Admin, &name)?;
    let busy = s.jobs.list().into_iter().any(|j| {
        j.state == crate::jobs::JobState::Running && j.kind == "advise" && j.collection == name
    });
    if busy {
        return Err(ApiError::new(
            ErrorKind::Conflict,
            format!("an advice job on {name:?} is already running"),
        ));
    }
    let st = s.clone();
    let (n, o) = (name.clone(), opts.clone());
    s.run(Work::Write, move || {
        Ok(st.service().check_advise(&n, &o)?)
    })
    .await?;
    let job = spawn_job(
        &s,
        &p,
        rid,
        ("advise", "collection.advise"),
        (&name, None),
        move |st, n, progress| {
            st.service()
                .advise(n, &opts, &mut |done, total, _| {
                    progress(done as u64, total as u64)
                })
                .map_err(ApiError::from)
                .and_then(|rep| serde_json::to_value(rep).map_err(ApiError::internal))
        },
    )?;
    Ok((StatusCode::ACCEPTED, Json(job)))
}

/// Starts `work` as a background job of `kind` on collection `name` (writing `target`, if
/// any) on its own thread: `work` reports progress through the function it is given, its
/// outcome is audited as `action` and kept for `GET /jobs/{id}`.
fn spawn_job<F>(
    s: &AppState,
    who: &crate::auth::Principal,
    rid: String,
    (kind, action): (&str, &'static str),
    (name, target): (&str, Option<&str>),
    work: F,
) -> ApiResult<Job>
where
    F: FnOnce(&AppState, &str, &dyn Fn(u64, u64)) -> ApiResult<Value> + Send + 'static,
{
    let job = s.jobs.start(kind, name, target);
    let id = job.id;
    let st = s.clone();
    let (who, n) = (who.clone(), name.to_string());
    std::thread::Builder::new()
        .name(format!("sextant-job-{id}"))
        .spawn(move || {
            let r = work(&st, &n, &|done, total| st.jobs.progress(id, done, total));
            st.audit(&who, action, Some(&n), None, &rid, &r);
            st.jobs.finish(id, r.map_err(|e| e.detail()));
        })
        .map_err(|e| ApiError::internal(format!("cannot start the job: {e}")))?;
    Ok(job)
}

/// Whether `p` may see a job: a key limited to collections sees the jobs of those only.
fn may_see(s: &AppState, p: &crate::auth::Principal, j: &Job) -> bool {
    s.allow(p, Role::Admin, Some(&j.collection)).is_ok()
        && j.target
            .as_deref()
            .is_none_or(|t| s.allow(p, Role::Admin, Some(t)).is_ok())
}

/// Background jobs kept by this server (admin; a key limited to collections sees the jobs of
/// those): running ones and the last finished ones.
#[utoipa::path(get, path = "/jobs", tag = "admin",
    responses((status = 200, description = "`{\"jobs\": [...]}`, oldest first", body = Object),
              (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list_jobs(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<Value>> {
    s.allow(&p, Role::Admin, None)?;
    let jobs: Vec<Job> = s
        .jobs
        .list()
        .into_iter()
        .filter(|j| may_see(&s, &p, j))
        .collect();
    Ok(Json(json!({ "jobs": jobs })))
}

/// One background job: progress (`done` of `total`), and its report or error once finished
/// (admin; 404 for a job of a collection the key does not cover, as for one that does not
/// exist).
#[utoipa::path(get, path = "/jobs/{id}", tag = "admin",
    params(("id" = u64, Path, description = "Job id")),
    responses((status = 200, body = Job), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn job(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(id): ApiPath<u64>,
) -> ApiResult<Json<Job>> {
    s.allow(&p, Role::Admin, None)?;
    s.jobs
        .get(id)
        .filter(|j| may_see(&s, &p, j))
        .map(Json)
        .ok_or_else(|| ApiError::new(ErrorKind::NotFound, format!("no job {id}")))
}
