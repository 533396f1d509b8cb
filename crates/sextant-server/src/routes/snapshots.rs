//! Collection snapshots over HTTP: create, list, download, verify, restore, delete.
//!
//! Snapshots are admin work, like creating and deleting collections: every route needs an
//! admin key, and a key limited to collections may touch only their snapshots (and restore only
//! into a collection it may use). A remote caller never names a server path: snapshots live
//! under `<data>/snapshots/<collection>/` and are named by their file name there, and error
//! messages say `<data>` instead of the data directory. What a snapshot is, how it stays
//! consistent while writes go on and how a restore stays atomic is `sextant_engine::snapshot`.

use std::path::PathBuf;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sextant_core::ErrorKind;
use sextant_engine::database::check_name;
use sextant_engine::{EngineError, SnapshotInfo};
use utoipa::ToSchema;

use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiJson, ApiPath, Auth, RequestId};
use crate::limits::Work;
use crate::routes::ErrorBody;
use crate::AppState;

/// Bytes read per chunk of a download.
const DOWNLOAD_CHUNK: usize = 256 * 1024;

/// A snapshot file and what its manifest says.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotEntry {
    /// Its file name: the `{snapshot}` of the snapshot routes.
    pub snapshot: String,
    /// The collection it was taken of.
    pub collection: String,
    /// The WAL sequence number it stands at: every write acknowledged up to it is in it.
    pub seq: u64,
    /// When it was taken (RFC 3339, UTC).
    pub created_at: String,
    /// Live points at `seq`.
    pub points: u64,
    /// Files inside it.
    pub files: usize,
    /// Its size in bytes.
    pub bytes: u64,
    /// The version of Sextant that wrote it.
    pub sextant_version: String,
}

impl From<SnapshotInfo> for SnapshotEntry {
    fn from(i: SnapshotInfo) -> Self {
        SnapshotEntry {
            snapshot: file_name(&i.path),
            collection: i.collection,
            seq: i.seq,
            created_at: i.created_at,
            points: i.points,
            files: i.files,
            bytes: i.bytes,
            sextant_version: i.sextant_version,
        }
    }
}

/// A snapshot file whose header or manifest cannot be read.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadableSnapshot {
    /// Its file name.
    pub snapshot: String,
    /// Its size in bytes.
    pub bytes: u64,
    /// Why it cannot be read.
    pub problem: String,
}

/// Snapshots, oldest first per collection.
#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotList {
    /// Readable snapshots (header and manifest; `verify` reads the whole file).
    pub snapshots: Vec<SnapshotEntry>,
    /// Files named like snapshots whose header or manifest is damaged.
    pub unreadable: Vec<UnreadableSnapshot>,
}

/// Where to restore a snapshot.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestoreSnapshot {
    /// The restored collection's name; absent: the collection the snapshot was taken of.
    #[serde(default)]
    pub name: Option<String>,
    /// Replace an existing collection of that name, atomically (never an alias). Without it an
    /// existing name is refused (409).
    #[serde(default)]
    pub replace: bool,
}

fn file_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// An engine error for a client: the data directory shown as `<data>`, a snapshot's path as
/// its file name.
fn public(s: &AppState, e: EngineError, path: Option<&std::path::Path>) -> ApiError {
    let mut a = ApiError::from(e);
    if let Some(p) = path {
        a = a.replace_in_message(&p.display().to_string(), &file_name(p));
    }
    a.replace_in_message(&s.data_dir().display().to_string(), "<data>")
}

/// The collection whose snapshots `name` (a collection or alias) means, after checking the name
/// and that `p` may do admin work on it.
fn snapshot_collection(s: &AppState, p: &Principal, name: &str) -> ApiResult<String> {
    check_name(name).map_err(|e| ApiError::from(e).with_field("name"))?;
    s.allow(p, Role::Admin, Some(name))?;
    Ok(s.db().resolve(name))
}

/// The path of snapshot `file` of collection `collection`; the file must exist.
fn snapshot_path(s: &AppState, collection: &str, file: &str) -> ApiResult<PathBuf> {
    if !(crate::routes::is_plain_name(file) && file.ends_with(".snapshot")) {
        return Err(ApiError::invalid(
            "snapshot",
            format!("{file:?} is not a snapshot file name (<name>.snapshot, as listed)"),
        ));
    }
    let path = s.db().snapshots_dir().join(collection).join(file);
    if !path.is_file() {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("collection {collection:?} has no snapshot {file:?}"),
        ));
    }
    Ok(path)
}

/// Snapshots a collection while writes to it go on (admin). The snapshot is written under
/// `<data>/snapshots/<collection>/`, named after the collection, the time and its sequence
/// number.
#[utoipa::path(post, path = "/collections/{name}/snapshots", tag = "snapshots",
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 201, description = "Written", body = SnapshotEntry),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<SnapshotEntry>)> {
    snapshot_collection(&s, &p, &name)?;
    let st = s.clone();
    let n = name.clone();
    let r = s
        .run(Work::Write, move || {
            st.db()
                .create_snapshot(&n, None, &mut |_, _| {})
                .map(SnapshotEntry::from)
                .map_err(|e| public(&st, e, None))
        })
        .await;
    s.audit(&p, "snapshot.create", Some(&name), None, &rid, &r);
    Ok((StatusCode::CREATED, Json(r?)))
}

/// Lists a collection's snapshots (admin). The collection need not exist any more.
#[utoipa::path(get, path = "/collections/{name}/snapshots", tag = "snapshots",
    params(("name" = String, Path, description = "Collection or alias")),
    responses((status = 200, body = SnapshotList), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<SnapshotList>> {
    let collection = snapshot_collection(&s, &p, &name)?;
    let st = s.clone();
    s.run(s.read_work(), move || {
        let listed = st
            .db()
            .list_snapshots(Some(&collection))
            .map_err(|e| public(&st, e, None))?;
        let mut out = SnapshotList {
            snapshots: Vec::new(),
            unreadable: Vec::new(),
        };
        for l in listed {
            match l.snapshot {
                Some(i) => out.snapshots.push(i.into()),
                None => out.unreadable.push(UnreadableSnapshot {
                    snapshot: file_name(&l.path),
                    bytes: l.bytes,
                    problem: public(
                        &st,
                        EngineError::invalid("snapshot", l.problem.unwrap_or_default()),
                        Some(&l.path),
                    )
                    .message()
                    .to_string(),
                }),
            }
        }
        Ok(Json(out))
    })
    .await
}

/// Downloads a snapshot file (admin), streamed (`application/octet-stream`). It restores with
/// `sextant snapshot restore FILE` on any machine.
#[utoipa::path(get, path = "/collections/{name}/snapshots/{snapshot}", tag = "snapshots",
    params(("name" = String, Path, description = "Collection or alias"),
           ("snapshot" = String, Path, description = "Snapshot file name, as listed")),
    responses((status = 200, description = "The snapshot file", body = Vec<u8>, content_type = "application/octet-stream"),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn download(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath((name, file)): ApiPath<(String, String)>,
) -> ApiResult<Response> {
    let collection = snapshot_collection(&s, &p, &name)?;
    let r = async {
        let path = snapshot_path(&s, &collection, &file)?;
        let f = tokio::fs::File::open(&path)
            .await
            .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?;
        let len = f
            .metadata()
            .await
            .map_err(|e| ApiError::internal(format!("{}: {e}", path.display())))?
            .len();
        Ok((f, len))
    }
    .await;
    s.audit(&p, "snapshot.download", Some(&name), None, &rid, &r);
    let (f, len) = r?;
    let stream = futures_util::stream::unfold(f, |mut f| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; DOWNLOAD_CHUNK];
        match f.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), f))
            }
            Err(e) => Some((Err(e), f)),
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{file}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

/// Reads a whole snapshot and checks it (admin): header, manifest, every file's length and
/// SHA-256, and that the files make a collection. A damaged one is 400, naming the bad part.
#[utoipa::path(post, path = "/collections/{name}/snapshots/{snapshot}/verify", tag = "snapshots",
    params(("name" = String, Path, description = "Collection or alias"),
           ("snapshot" = String, Path, description = "Snapshot file name, as listed")),
    responses((status = 200, description = "Whole", body = SnapshotEntry),
              (status = 400, description = "Damaged (the message names the bad part)", body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn verify(
    State(s): State<AppState>,
    Auth(p): Auth,
    ApiPath((name, file)): ApiPath<(String, String)>,
) -> ApiResult<Json<SnapshotEntry>> {
    let collection = snapshot_collection(&s, &p, &name)?;
    let path = snapshot_path(&s, &collection, &file)?;
    let st = s.clone();
    // A write's work: it reads the whole file, and is not cut short by the read timeout.
    s.run(Work::Write, move || {
        st.db()
            .verify_snapshot(&path, &mut |_, _| {})
            .map(|i| Json(i.into()))
            .map_err(|e| public(&st, e, Some(&path)))
    })
    .await
}

/// Restores a snapshot as a collection (admin): a new name, or with `replace` an existing
/// collection, swapped atomically once the restored one is complete. Every file is checked
/// first; a damaged snapshot is 400 naming the bad part, and nothing is left behind.
#[utoipa::path(post, path = "/collections/{name}/snapshots/{snapshot}/restore", tag = "snapshots",
    request_body = RestoreSnapshot,
    params(("name" = String, Path, description = "Collection or alias the snapshot belongs to"),
           ("snapshot" = String, Path, description = "Snapshot file name, as listed")),
    responses((status = 200, description = "Restored; the collection's info", body = Object),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody),
              (status = 409, description = "The name is taken and `replace` was not given", body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn restore(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath((name, file)): ApiPath<(String, String)>,
    ApiJson(b): ApiJson<RestoreSnapshot>,
) -> ApiResult<Json<Value>> {
    let collection = snapshot_collection(&s, &p, &name)?;
    let target = b.name.clone().unwrap_or_else(|| collection.clone());
    check_name(&target).map_err(|e| ApiError::from(e).with_field("name"))?;
    s.allow(&p, Role::Admin, Some(&target))?;
    let path = snapshot_path(&s, &collection, &file)?;
    let st = s.clone();
    let t = target.clone();
    let replace = b.replace;
    let r = s
        .run(Work::Write, move || {
            let db = st.db();
            let replacing = replace && db.list_collections()?.contains(&t);
            let info = db
                .restore_snapshot(&path, &t, replace, &mut |_, _| {})
                .map_err(|e| match e {
                    EngineError::NameTaken(_) if !replace => ApiError::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "collection {t:?} exists; nothing was restored (send \"replace\": true to replace it, or another name)"
                        ),
                    )
                    .with_field("name"),
                    e => public(&st, e, Some(&path)),
                })?;
            st.cache.invalidate(&t);
            let c = db.collection(&t)?;
            Ok(json!({
                "restored": t,
                "replaced": replacing,
                "snapshot": SnapshotEntry::from(info),
                "collection": serde_json::to_value(c.info()).map_err(ApiError::internal)?,
            }))
        })
        .await;
    s.audit(&p, "snapshot.restore", Some(&target), None, &rid, &r);
    Ok(Json(r?))
}

/// Deletes a snapshot file (admin).
#[utoipa::path(delete, path = "/collections/{name}/snapshots/{snapshot}", tag = "snapshots",
    params(("name" = String, Path, description = "Collection or alias"),
           ("snapshot" = String, Path, description = "Snapshot file name, as listed")),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath((name, file)): ApiPath<(String, String)>,
) -> ApiResult<Json<Value>> {
    let collection = snapshot_collection(&s, &p, &name)?;
    let path = snapshot_path(&s, &collection, &file)?;
    let st = s.clone();
    let r = s
        .run(Work::Write, move || {
            st.db()
                .delete_snapshot(&path)
                .map_err(|e| public(&st, e, Some(&path)))?;
            Ok(json!({ "deleted": file }))
        })
        .await;
    s.audit(&p, "snapshot.delete", Some(&name), None, &rid, &r);
    Ok(Json(r?))
}
