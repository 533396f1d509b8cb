//! The audit log: one JSON line per write or admin action — who (key id and role), what
//! (action and route), which collection and tenant, when, and the outcome. Appended and flushed
//! per line by one writer task, so request handlers never wait on it.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::auth::Principal;

/// Handle to the audit log.
#[derive(Debug, Clone)]
pub struct AuditLog {
    tx: Option<mpsc::UnboundedSender<Value>>,
    path: Option<PathBuf>,
}

impl AuditLog {
    /// No audit log.
    pub fn off() -> AuditLog {
        AuditLog {
            tx: None,
            path: None,
        }
    }

    /// Appends to `path` (made 0600 if new); must be called inside the tokio runtime.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut file = opts.open(path)?;
        let (tx, mut rx) = mpsc::unbounded_channel::<Value>();
        let shown = path.display().to_string();
        std::thread::Builder::new()
            .name("sextant-audit".into())
            .spawn(move || {
                while let Some(v) = rx.blocking_recv() {
                    let mut line = v.to_string();
                    line.push('\n');
                    if let Err(e) = file
                        .write_all(line.as_bytes())
                        .and_then(|_| file.sync_data())
                    {
                        tracing::error!(path = %shown, error = %e, "cannot write the audit log");
                    }
                }
            })?;
        Ok(AuditLog {
            tx: Some(tx),
            path: Some(path.to_path_buf()),
        })
    }

    /// Where it writes.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Records one action.
    pub fn record(
        &self,
        who: &Principal,
        action: &str,
        collection: Option<&str>,
        tenant: Option<&Value>,
        outcome: &str,
        request_id: &str,
    ) {
        let Some(tx) = &self.tx else { return };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let _ = tx.send(json!({
            "time": sextant_core::format_rfc3339(now.as_secs() as i64),
            "time_ms": now.as_millis() as u64,
            "key_id": who.key_id,
            "role": who.role.as_str(),
            "action": action,
            "collection": collection,
            "tenant": tenant,
            "outcome": outcome,
            "request_id": request_id,
        }));
    }
}
