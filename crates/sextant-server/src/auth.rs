//! API keys: roles `admin` > `write` > `read`, optionally limited to some collections and to one
//! tenant. A key is `sxk_<id>_<secret>`; the store (`server/keys.json` in the data directory,
//! mode 0600) keeps only the id and the SHA-256 of the secret, and a presented secret is compared
//! in constant time. Secrets are 32 random bytes, so a fast hash is enough (there is nothing to
//! guess); `argon2` would only slow every request down.
//!
//! The store is shared by the server and `sextant keys …` (a file lock serialises writers); the
//! server re-reads the file when it changes, so a key made or revoked by the CLI takes effect
//! without a restart.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What a key may do.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads: get, count, scroll, search, ask, info, embed, rerank.
    Read,
    /// Reads and writes of points and documents.
    Write,
    /// Everything: collections, aliases, tenants, keys.
    Admin,
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            _ => Err(format!("unknown role {s:?}: expected read, write or admin")),
        }
    }
}

impl Role {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

/// A stored key (no secret).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// Public id (the part after `sxk_`).
    pub id: String,
    /// SHA-256 of the secret, hex.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schema(ignore)]
    pub hash: String,
    /// Role.
    pub role: Role,
    /// Collections (or aliases) it may use; absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collections: Option<Vec<String>>,
    /// The one tenant whose points it may read or write; absent: no tenant limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<serde_json::Value>,
    /// A note for people.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Creation time, seconds since the Unix epoch.
    pub created: u64,
}

/// Who is calling.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Key id (`anonymous` with auth off).
    pub key_id: String,
    /// Role.
    pub role: Role,
    /// Allowed collections (None: all).
    pub collections: Option<Vec<String>>,
    /// Forced tenant.
    pub tenant: Option<serde_json::Value>,
}

impl Principal {
    /// The caller when auth is off: an administrator.
    pub fn anonymous() -> Principal {
        Principal {
            key_id: "anonymous".into(),
            role: Role::Admin,
            collections: None,
            tenant: None,
        }
    }

    fn of(r: &KeyRecord) -> Principal {
        Principal {
            key_id: r.id.clone(),
            role: r.role,
            collections: r.collections.clone(),
            tenant: r.tenant.clone(),
        }
    }
}

/// Why a key could not be made or found.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Bad parameters.
    #[error("{0}")]
    Invalid(String),
    /// No key with this id.
    #[error("no API key with id {0:?}")]
    NotFound(String),
    /// The key file could not be read or written.
    #[error("key store {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    keys: Vec<KeyRecord>,
}

/// The key store of a data directory.
#[derive(Debug)]
pub struct KeyStore {
    path: PathBuf,
    cache: Mutex<Cached>,
}

#[derive(Debug)]
struct Cached {
    keys: Vec<KeyRecord>,
    modified: Option<SystemTime>,
    checked: Option<Instant>,
}

/// How often the server looks at the key file for changes.
const RELOAD_EVERY: Duration = Duration::from_millis(500);

impl KeyStore {
    /// The store of `data_dir` (the file need not exist yet).
    pub fn open(data_dir: &Path) -> Result<KeyStore, KeyError> {
        let path = data_dir.join("server").join("keys.json");
        let s = KeyStore {
            path,
            cache: Mutex::new(Cached {
                keys: Vec::new(),
                modified: None,
                checked: None,
            }),
        };
        s.reload(true)?;
        Ok(s)
    }

    fn io(&self, source: std::io::Error) -> KeyError {
        KeyError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn read_file(&self) -> Result<(Vec<KeyRecord>, Option<SystemTime>), KeyError> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let f: KeyFile = serde_json::from_slice(&bytes).map_err(|e| {
                    self.io(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
                })?;
                let m = std::fs::metadata(&self.path)
                    .and_then(|m| m.modified())
                    .ok();
                Ok((f.keys, m))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok((Vec::new(), None)),
            Err(e) => Err(self.io(e)),
        }
    }

    fn reload(&self, force: bool) -> Result<(), KeyError> {
        let mut c = self.cache.lock();
        if !force && c.checked.is_some_and(|t| t.elapsed() < RELOAD_EVERY) {
            return Ok(());
        }
        c.checked = Some(Instant::now());
        let m = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if force || m != c.modified {
            let (keys, modified) = self.read_file()?;
            c.keys = keys;
            c.modified = modified;
        }
        Ok(())
    }

    /// The keys (without hashes).
    pub fn list(&self) -> Result<Vec<KeyRecord>, KeyError> {
        self.reload(true)?;
        Ok(self
            .cache
            .lock()
            .keys
            .iter()
            .map(|k| KeyRecord {
                hash: String::new(),
                ..k.clone()
            })
            .collect())
    }

    /// Makes a key; returns its record and the full key (shown once, never stored).
    pub fn create(
        &self,
        role: Role,
        collections: Option<Vec<String>>,
        tenant: Option<serde_json::Value>,
        description: String,
    ) -> Result<(KeyRecord, String), KeyError> {
        if role == Role::Admin && tenant.is_some() {
            return Err(KeyError::Invalid(
                "an admin key manages the whole database and cannot be limited to a tenant; make a read or write key for a tenant".into(),
            ));
        }
        if let Some(t) = &tenant {
            if !(t.is_string() || t.is_i64() || t.is_u64()) {
                return Err(KeyError::Invalid(format!(
                    "tenant {t}: a tenant id is a string or an integer"
                )));
            }
        }
        if let Some(cs) = &collections {
            if cs.is_empty() || cs.iter().any(|c| c.is_empty()) {
                return Err(KeyError::Invalid(
                    "collections: give at least one non-empty name, or none for all".into(),
                ));
            }
        }
        let id = hex(&random::<6>());
        let secret = hex(&random::<32>());
        let record = KeyRecord {
            id: id.clone(),
            hash: hex(&Sha256::digest(secret.as_bytes())),
            role,
            collections,
            tenant,
            description,
            created: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        };
        self.modify(|keys| {
            keys.push(record.clone());
            Ok(())
        })?;
        Ok((
            KeyRecord {
                hash: String::new(),
                ..record
            },
            format!("sxk_{id}_{secret}"),
        ))
    }

    /// Revokes a key.
    pub fn delete(&self, id: &str) -> Result<(), KeyError> {
        self.modify(|keys| {
            let before = keys.len();
            keys.retain(|k| k.id != id);
            if keys.len() == before {
                return Err(KeyError::NotFound(id.to_string()));
            }
            Ok(())
        })
    }

    /// Read-modify-write under an exclusive file lock, replaced atomically (temp, fsync,
    /// rename, fsync directory).
    fn modify(
        &self,
        f: impl FnOnce(&mut Vec<KeyRecord>) -> Result<(), KeyError>,
    ) -> Result<(), KeyError> {
        let dir = self.path.parent().expect("key file has a directory");
        std::fs::create_dir_all(dir).map_err(|e| self.io(e))?;
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("keys.lock"))
            .map_err(|e| self.io(e))?;
        lock.lock().map_err(|e| self.io(e))?;
        let (mut keys, _) = self.read_file()?;
        f(&mut keys)?;
        let bytes =
            serde_json::to_vec_pretty(&KeyFile { version: 1, keys }).expect("keys serialise");
        let tmp = dir.join("keys.json.tmp");
        {
            use std::io::Write;
            let mut opts = std::fs::OpenOptions::new();
            opts.create(true).truncate(true).write(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut file = opts.open(&tmp).map_err(|e| self.io(e))?;
            file.write_all(&bytes).map_err(|e| self.io(e))?;
            file.sync_all().map_err(|e| self.io(e))?;
        }
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| self.io(e))?;
        drop(lock);
        self.reload(true)
    }

    /// The principal a presented key belongs to, or `None` for an unknown or malformed key.
    pub fn verify(&self, presented: &str) -> Option<Principal> {
        if let Err(e) = self.reload(false) {
            tracing::error!(error = %e, "cannot reload API keys; using the keys loaded before");
        }
        let (id, secret) = presented.strip_prefix("sxk_")?.split_once('_')?;
        let digest = Sha256::digest(secret.as_bytes());
        let c = self.cache.lock();
        let mut found = None;
        // Every record is compared (constant time each), so timing does not tell which ids exist.
        for k in &c.keys {
            let stored = unhex(&k.hash).unwrap_or_default();
            let same_hash: bool = stored.as_slice().ct_eq(digest.as_slice()).into();
            if same_hash && k.id == id {
                found = Some(Principal::of(k));
            }
        }
        found
    }
}

fn random<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("the operating system's random source works");
    b
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    s.len()
        .is_multiple_of(2)
        .then(|| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
                .collect()
        })
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_verify_only_whole_and_are_stored_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let s = KeyStore::open(dir.path()).unwrap();
        let (rec, key) = s
            .create(
                Role::Write,
                Some(vec!["docs".into()]),
                Some("acme".into()),
                String::new(),
            )
            .unwrap();
        let p = s.verify(&key).expect("valid key");
        assert_eq!(p.role, Role::Write);
        assert_eq!(p.tenant, Some(serde_json::json!("acme")));
        let secret = key.rsplit('_').next().unwrap();
        let file = std::fs::read_to_string(dir.path().join("server/keys.json")).unwrap();
        assert!(!file.contains(secret), "the secret must not be stored");
        assert!(file.contains(&rec.id));
        // A changed character, a truncated key, another id with the right secret: all refused.
        let mut bad = key.clone().into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'0' { b'1' } else { b'0' };
        assert!(s.verify(std::str::from_utf8(&bad).unwrap()).is_none());
        assert!(s.verify(&key[..key.len() - 1]).is_none());
        assert!(s.verify(&format!("sxk_000000000000_{secret}")).is_none());
        assert!(s.verify("").is_none());
        s.delete(&rec.id).unwrap();
        assert!(s.verify(&key).is_none());
        assert!(matches!(s.delete(&rec.id), Err(KeyError::NotFound(_))));
    }

    #[test]
    fn admin_keys_cannot_have_a_tenant() {
        let dir = tempfile::tempdir().unwrap();
        let s = KeyStore::open(dir.path()).unwrap();
        assert!(s
            .create(Role::Admin, None, Some("t".into()), String::new())
            .is_err());
        assert!(s
            .create(
                Role::Read,
                None,
                Some(serde_json::json!(1.5)),
                String::new()
            )
            .is_err());
    }

    #[test]
    fn a_key_made_by_another_process_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let server = KeyStore::open(dir.path()).unwrap();
        let cli = KeyStore::open(dir.path()).unwrap();
        let (_, key) = cli.create(Role::Read, None, None, String::new()).unwrap();
        std::thread::sleep(RELOAD_EVERY + Duration::from_millis(50));
        assert!(server.verify(&key).is_some());
    }
}
