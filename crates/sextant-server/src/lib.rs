//! `sextant serve`: Sextant over HTTP.
//!
//! - [`app`] builds the axum router over an [`AppState`]; every route is registered together with
//!   its OpenAPI description (`utoipa-axum`), so `/openapi.json` lists exactly the routes served;
//! - [`auth`]: API keys (roles, collections, one tenant) and the principal of a request;
//! - [`limits`]: the bounded queue in front of CPU work and per-key rate limits;
//! - [`cache`]: the query-result cache, invalidated by writes;
//! - [`audit`]: the JSONL audit log of writes and admin actions;
//! - [`config`]: settings from a TOML file, the environment and flags;
//! - [`error`]: the one JSON error shape and the status of each error kind.
//!
//! Handlers are thin: check the caller, parse, make one engine call on the CPU pool, answer.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod cache;
pub mod config;
pub mod error;
mod extract;
pub mod jobs;
pub mod limits;
mod metrics;
mod routes;
mod serve;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use sextant_engine::{Collection, Database, Scope, TenantId};
use sextant_service::{RegistryConfig, Service, ServiceConfig};

use crate::audit::AuditLog;
use crate::auth::{KeyStore, Principal, Role};
use crate::cache::QueryCache;
use crate::config::ServerConfig;
use crate::error::{ApiError, ApiResult};
use crate::limits::{CpuGate, RateLimiter, Work};
pub use crate::serve::{init_logging, serve, RunningServer};

/// Everything a handler can reach; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// The shared state.
#[derive(Debug)]
pub struct Inner {
    service: Arc<Service>,
    data_dir: PathBuf,
    keys: KeyStore,
    config: ServerConfig,
    gate: CpuGate,
    rate: RateLimiter,
    cache: QueryCache,
    audit: AuditLog,
    ready: AtomicBool,
    /// Background jobs (reindex).
    pub(crate) jobs: crate::jobs::Jobs,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// State over an open database. Opens the key store and (inside a tokio runtime) the audit
    /// log.
    pub fn new(db: Database, config: ServerConfig) -> anyhow::Result<AppState> {
        let data_dir = db.dir().to_path_buf();
        // Install the metrics recorder before the first request is counted.
        let _ = crate::metrics::handle();
        let keys = KeyStore::open(&data_dir)?;
        let audit = match config.audit_path(&data_dir) {
            Some(p) => AuditLog::open(&p)
                .map_err(|e| anyhow::anyhow!("cannot open the audit log {}: {e}", p.display()))?,
            None => AuditLog::off(),
        };
        let l = &config.limits;
        Ok(AppState(Arc::new(Inner {
            gate: CpuGate::new(
                config.workers(),
                l.queue_depth,
                Duration::from_millis(l.queue_timeout_ms),
            )
            // The runtime has a thread more than the workers (`ServerConfig::async_threads`).
            .with_inline(),
            rate: RateLimiter::new(l.rate_limit_per_s, l.rate_limit_burst),
            cache: QueryCache::new(config.cache.query_entries),
            service: Arc::new(Service::from_database(
                db,
                ServiceConfig {
                    models: RegistryConfig {
                        names: config.effective_models(),
                        embedding_cache_entries: config.cache.embedding_entries,
                        ..RegistryConfig::default()
                    },
                    redaction_key: sextant_engine::documents::RedactionKey::from_env()?,
                    ..ServiceConfig::default()
                },
            )),
            data_dir,
            keys,
            audit,
            config,
            ready: AtomicBool::new(true),
            jobs: crate::jobs::Jobs::default(),
        })))
    }

    /// The database.
    pub fn db(&self) -> &Database {
        self.service.database()
    }

    /// The front door: text search, ask, ingest, models.
    pub fn service(&self) -> &Arc<Service> {
        &self.service
    }

    /// The key store.
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// The configuration.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// The read timeout.
    pub(crate) fn read_work(&self) -> Work {
        Work::Read(Duration::from_millis(self.config.limits.request_timeout_ms))
    }

    /// A read bounded to well under a millisecond ([`Work::Quick`]).
    pub(crate) fn quick_work(&self) -> Work {
        Work::Quick(Duration::from_millis(self.config.limits.request_timeout_ms))
    }

    /// Runs engine work on the CPU pool.
    pub(crate) async fn run<T, F>(&self, work: Work, f: F) -> ApiResult<T>
    where
        F: FnOnce() -> ApiResult<T> + Send + 'static,
        T: Send + 'static,
    {
        self.gate.run(work, f).await
    }

    /// Refuses a caller whose role is below `need` or whose key does not cover `collection`.
    pub(crate) fn allow(
        &self,
        p: &Principal,
        need: Role,
        collection: Option<&str>,
    ) -> ApiResult<()> {
        if p.role < need {
            return Err(ApiError::new(
                sextant_core::ErrorKind::Forbidden,
                format!(
                    "this API key has role {}; this needs role {} or above",
                    p.role.as_str(),
                    need.as_str()
                ),
            ));
        }
        if let (Some(allowed), Some(name)) = (&p.collections, collection) {
            let resolved = self.db().resolve(name);
            if !allowed.iter().any(|a| a == name || *a == resolved) {
                return Err(ApiError::new(
                    sextant_core::ErrorKind::Forbidden,
                    format!("this API key may not use collection {name:?}"),
                ));
            }
        }
        Ok(())
    }

    /// The collection (or alias) `name`, after checking that `p` may use it with `need`.
    pub(crate) fn collection(
        &self,
        p: &Principal,
        need: Role,
        name: &str,
    ) -> ApiResult<Arc<Collection>> {
        self.allow(p, need, Some(name))?;
        Ok(self.db().collection(name)?)
    }

    /// The tenant scope of a request: a tenant-limited key always gets its own tenant (asking for
    /// another, or for all tenants, is refused); otherwise the request's `tenant` or
    /// `all_tenants`.
    pub(crate) fn scope(
        &self,
        p: &Principal,
        c: &Collection,
        tenant: Option<&serde_json::Value>,
        all_tenants: bool,
    ) -> ApiResult<Scope> {
        let forbidden = |m: String| ApiError::new(sextant_core::ErrorKind::Forbidden, m);
        let multi = c.schema().tenant_key.is_some();
        if let Some(mine) = &p.tenant {
            if !multi {
                return Err(forbidden(format!(
                    "this API key is limited to tenant {mine}, and collection {:?} is not multi-tenant",
                    c.name()
                )));
            }
            if all_tenants {
                return Err(forbidden(format!(
                    "this API key is limited to tenant {mine}; all_tenants is not allowed"
                )));
            }
            // A key's tenant is typed by each collection's tenant key (the CLI stores it as
            // text), and so is the tenant a request names when compared with it.
            let own = TenantId::parse_for(c.schema(), &tenant_text(mine))?;
            if let Some(t) = tenant {
                let asked = TenantId::parse_for(c.schema(), &tenant_text(t))
                    .map_err(|e| ApiError::from(e).with_field("tenant"))?;
                if asked != own {
                    return Err(forbidden(format!(
                        "this API key is limited to tenant {mine}, not {t}"
                    )));
                }
            }
            return Ok(Scope::Tenant(own));
        }
        match (tenant, all_tenants) {
            (Some(_), true) => Err(ApiError::invalid(
                "tenant",
                "give tenant or all_tenants, not both",
            )),
            (Some(_), false) if !multi => Err(ApiError::invalid(
                "tenant",
                format!(
                    "collection {:?} is not multi-tenant (it has no tenant key)",
                    c.name()
                ),
            )),
            (Some(t), false) => Ok(Scope::Tenant(
                TenantId::from_json(t).map_err(|e| ApiError::from(e).with_field("tenant"))?,
            )),
            (None, true) => Ok(Scope::AllTenants),
            (None, false) => Ok(Scope::Unscoped),
        }
    }

    /// Records a write or admin action in the audit log.
    pub(crate) fn audit<T>(
        &self,
        who: &Principal,
        action: &str,
        collection: Option<&str>,
        scope: Option<&Scope>,
        request_id: &str,
        result: &ApiResult<T>,
    ) {
        let tenant = match scope {
            Some(Scope::Tenant(t)) => Some(t.to_json()),
            Some(Scope::AllTenants) => Some(serde_json::Value::String("*".into())),
            _ => None,
        };
        let outcome = match result {
            Ok(_) => "ok".to_string(),
            Err(e) => format!("{} ({})", e.kind().code(), e.status().as_u16()),
        };
        self.audit.record(
            who,
            action,
            collection,
            tenant.as_ref(),
            &outcome,
            request_id,
        );
    }
}

/// A tenant id as text (a JSON string's contents, or a number's digits).
fn tenant_text(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The router (with every middleware: request ids, tracing, metrics, body limit, panics).
pub fn app(state: AppState) -> Router {
    routes::router(state)
}
