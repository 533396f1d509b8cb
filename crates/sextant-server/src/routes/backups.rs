//! Whole-database backups over HTTP: create, list, restore, delete.
//!
//! A backup covers every collection and the aliases, so these routes need an admin key that is
//! not limited to collections. Backups live under `<data>/backups/` and are named by their
//! directory name there; a remote caller never names a server path, and error messages say
//! `<data>` instead of the data directory. What a backup is and why it is whole or refused is
//! `sextant_engine::snapshot::backup`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use sextant_core::ErrorKind;
use sextant_engine::snapshot::{BackupCollection, BackupInfo};
use sextant_engine::EngineError;
use utoipa::ToSchema;

use crate::auth::{Principal, Role};
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiPath, Auth, RequestId};
use crate::limits::Work;
use crate::routes::ErrorBody;
use crate::AppState;

/// One collection in a backup.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupCollectionEntry {
    /// The collection.
    pub name: String,
    /// The WAL sequence number its snapshot stands at.
    pub seq: u64,
    /// Live points at `seq`.
    pub points: u64,
    /// Its snapshot's size in bytes.
    pub bytes: u64,
}

/// A backup and what its manifest says.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupEntry {
    /// Its directory name: the `{backup}` of the backup routes.
    pub backup: String,
    /// When it was taken (RFC 3339, UTC).
    pub created_at: String,
    /// Its collections.
    pub collections: Vec<BackupCollectionEntry>,
    /// Its aliases (alias → collection).
    pub aliases: std::collections::BTreeMap<String, String>,
}

impl From<BackupInfo> for BackupEntry {
    fn from(i: BackupInfo) -> Self {
        BackupEntry {
            backup: dir_name(&i.dir),
            created_at: i.manifest.created_at,
            collections: i
                .manifest
                .collections
                .into_iter()
                .map(|c: BackupCollection| BackupCollectionEntry {
                    name: c.name,
                    seq: c.seq,
                    points: c.points,
                    bytes: c.bytes,
                })
                .collect(),
            aliases: i.manifest.aliases,
        }
    }
}

/// A directory under `<data>/backups/` that is not a complete backup.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnreadableBackup {
    /// Its directory name.
    pub backup: String,
    /// Why it cannot be read (an interrupted backup has no manifest).
    pub problem: String,
}

/// Backups, by name.
#[derive(Debug, Serialize, ToSchema)]
pub struct BackupList {
    /// Complete backups.
    pub backups: Vec<BackupEntry>,
    /// Directories that are not (interrupted or damaged).
    pub unreadable: Vec<UnreadableBackup>,
}

fn dir_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn public(s: &AppState, e: impl Into<ApiError>) -> ApiError {
    e.into()
        .replace_in_message(&s.data_dir().display().to_string(), "<data>")
}

/// Backups cover every collection: an admin key not limited to collections.
fn allow(s: &AppState, p: &Principal) -> ApiResult<()> {
    s.allow(p, Role::Admin, None)?;
    if p.collections.is_some() {
        return Err(ApiError::new(
            ErrorKind::Forbidden,
            "a backup covers every collection; this API key is limited to some collections",
        ));
    }
    Ok(())
}

/// The directory of backup `name` (it must exist).
fn backup_dir(s: &AppState, name: &str) -> ApiResult<std::path::PathBuf> {
    if !crate::routes::is_plain_name(name) {
        return Err(ApiError::invalid(
            "backup",
            format!("{name:?} is not a backup name (a directory name, as listed)"),
        ));
    }
    let dir = s.db().backups_dir().join(name);
    if !dir.is_dir() {
        return Err(ApiError::new(
            ErrorKind::NotFound,
            format!("there is no backup {name:?}"),
        ));
    }
    Ok(dir)
}

/// Backs up every collection and the aliases while writes go on (admin, every collection),
/// into `<data>/backups/backup-<time>/`.
#[utoipa::path(post, path = "/backups", tag = "backups",
    responses((status = 201, description = "Written", body = BackupEntry),
              (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn create(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
) -> ApiResult<(StatusCode, Json<BackupEntry>)> {
    allow(&s, &p)?;
    let st = s.clone();
    let r = s
        .run(Work::Write, move || {
            let db = st.db();
            db.backup(&db.new_backup_dir(), &mut |_, _, _| {})
                .map(BackupEntry::from)
                .map_err(|e| public(&st, e))
        })
        .await;
    s.audit(&p, "backup.create", None, None, &rid, &r);
    Ok((StatusCode::CREATED, Json(r?)))
}

/// Lists the backups under `<data>/backups/` (admin, every collection).
#[utoipa::path(get, path = "/backups", tag = "backups",
    responses((status = 200, body = BackupList), (status = 403, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn list(State(s): State<AppState>, Auth(p): Auth) -> ApiResult<Json<BackupList>> {
    allow(&s, &p)?;
    let st = s.clone();
    s.run(s.read_work(), move || {
        let mut out = BackupList {
            backups: Vec::new(),
            unreadable: Vec::new(),
        };
        for l in st.db().list_backups().map_err(|e| public(&st, e))? {
            match l.backup {
                Some(i) => out.backups.push(i.into()),
                None => out.unreadable.push(UnreadableBackup {
                    backup: dir_name(&l.dir),
                    problem: public(
                        &st,
                        EngineError::invalid("backup", l.problem.unwrap_or_default()),
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

/// Restores a backup (admin, every collection): every collection and alias in it, each name
/// free in this database (409 naming the first taken one, nothing written); every file checked
/// before a collection appears, a damaged snapshot 400 with nothing left restored.
#[utoipa::path(post, path = "/backups/{backup}/restore", tag = "backups",
    params(("backup" = String, Path, description = "Backup directory name, as listed")),
    responses((status = 200, description = "Restored", body = BackupEntry),
              (status = 400, body = ErrorBody), (status = 403, body = ErrorBody),
              (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn restore(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<BackupEntry>> {
    allow(&s, &p)?;
    let dir = backup_dir(&s, &name)?;
    let st = s.clone();
    let r = s
        .run(Work::Write, move || {
            let info = st
                .db()
                .restore_backup(&dir, &mut |_, _, _| {})
                .map_err(|e| public(&st, e))?;
            for c in &info.manifest.collections {
                st.cache.invalidate(&c.name);
            }
            Ok(BackupEntry::from(info))
        })
        .await;
    s.audit(&p, "backup.restore", None, None, &rid, &r);
    Ok(Json(r?))
}

/// Deletes a backup directory (admin, every collection).
#[utoipa::path(delete, path = "/backups/{backup}", tag = "backups",
    params(("backup" = String, Path, description = "Backup directory name, as listed")),
    responses((status = 200, body = Object), (status = 400, body = ErrorBody),
              (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)),
    security(("api_key" = [])))]
pub async fn delete(
    State(s): State<AppState>,
    Auth(p): Auth,
    RequestId(rid): RequestId,
    ApiPath(name): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    allow(&s, &p)?;
    let dir = backup_dir(&s, &name)?;
    let st = s.clone();
    let r = s
        .run(Work::Write, move || {
            st.db().delete_backup(&dir).map_err(|e| public(&st, e))?;
            Ok(json!({ "deleted": name }))
        })
        .await;
    s.audit(&p, "backup.delete", None, None, &rid, &r);
    Ok(Json(r?))
}
