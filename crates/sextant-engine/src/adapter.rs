//! Query adapters: a learnt linear map applied to query vectors of a dense space at search
//! time, so a collection adapts to its domain without re-embedding its points (issue 20).
//!
//! An adapter is a `dim × dim` matrix `W` trained on query embeddings against the space's
//! frozen point vectors (`sextant_service::adapter`); a text search embeds its query, then
//! searches with `W q`. Points are never touched, so attaching, replacing or removing an
//! adapter is instant and reversible.
//!
//! * **Storage.** The adapters of a collection are one file, [`ADAPTER_FILE`], in its
//!   directory, an envelope written atomically through the collection's file system (so
//!   encrypted with an encrypted collection, and rewritten by a data-key rotation). Snapshots
//!   and backups carry it; a restore checks it parses.
//! * **Identity.** An adapter records the model identity of the space it was trained on;
//!   attaching one to a space of another model is a [`EngineError::Conflict`]. Its
//!   [`QueryAdapter::fingerprint`] (SHA-256 of the space, dimension, model identity and
//!   weights) is part of the space's query identity: `info` shows it and a text search's
//!   explanation names it, so results are traceable to the exact map that produced them.
//! * **Where it applies.** Text queries embedded with the collection's model as queries
//!   (dense source of a text search, `ask`, `eval`). Not to vectors a caller gives (a raw
//!   vector search, an image query, a HyDE passage embedded as a document): those are already
//!   in the points' space.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sextant_storage::envelope;
use sha2::{Digest, Sha256};

use crate::collection::Collection;
use crate::error::{EngineError, Result};

/// The file holding a collection's adapters.
pub const ADAPTER_FILE: &str = "adapter";
const MAGIC: &[u8; 8] = b"SXTADAPT";
const VERSION: u32 = 1;

/// A linear map of one dense space's query vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryAdapter {
    /// The dense space it applies to.
    pub space: String,
    /// The space's dimension.
    pub dim: usize,
    /// `W`, row-major (`dim × dim`): the adapted query is `W q`.
    pub weights: Vec<f32>,
    /// The model identity stored with the space when the adapter was trained.
    pub model: Value,
    /// What the adapter was trained on and how (free-form; the trainer's card).
    pub card: Value,
}

/// An adapter attached to a collection, with its fingerprint computed once (a search names it
/// in its explanation, and hashing the weights per query would cost more than applying them).
#[derive(Debug)]
pub struct Attached {
    /// The map.
    pub adapter: QueryAdapter,
    fingerprint: String,
}

impl Attached {
    pub(crate) fn new(adapter: QueryAdapter) -> Attached {
        let fingerprint = adapter.fingerprint();
        Attached {
            adapter,
            fingerprint,
        }
    }

    /// [`QueryAdapter::fingerprint`].
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// [`QueryAdapter::apply`].
    pub fn apply(&self, q: &[f32]) -> Vec<f32> {
        self.adapter.apply(q)
    }

    fn info(&self) -> AdapterInfo {
        AdapterInfo {
            space: self.adapter.space.clone(),
            kind: "linear".into(),
            dim: self.adapter.dim,
            fingerprint: self.fingerprint.clone(),
            card: self.adapter.card.clone(),
        }
    }
}

/// What `info` reports of an attached adapter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AdapterInfo {
    /// The dense space it applies to.
    pub space: String,
    /// `linear`: a full `dim × dim` matrix.
    pub kind: String,
    /// Its dimension.
    pub dim: usize,
    /// SHA-256 (hex) of the space, dimension, model identity and weights.
    pub fingerprint: String,
    /// The trainer's card.
    pub card: Value,
}

#[derive(Serialize, Deserialize)]
struct Header {
    space: String,
    dim: usize,
    model: Value,
    card: Value,
}

impl QueryAdapter {
    /// The identity map of a space (what an untrained adapter starts from).
    pub fn identity(space: &str, dim: usize, model: Value) -> QueryAdapter {
        let mut weights = vec![0.0; dim * dim];
        for i in 0..dim {
            weights[i * dim + i] = 1.0;
        }
        QueryAdapter {
            space: space.to_string(),
            dim,
            weights,
            model,
            card: Value::Null,
        }
    }

    /// `W q`. `q` must have the adapter's dimension (checked by the caller's search).
    pub fn apply(&self, q: &[f32]) -> Vec<f32> {
        let d = self.dim;
        if q.len() != d {
            return q.to_vec();
        }
        self.weights
            .chunks_exact(d)
            .map(|row| row.iter().zip(q).map(|(w, x)| w * x).sum())
            .collect()
    }

    /// SHA-256 of the space, dimension, model identity and weights, in hex.
    pub fn fingerprint(&self) -> String {
        let mut h = Sha256::new();
        h.update(self.space.as_bytes());
        h.update([0]);
        h.update((self.dim as u64).to_le_bytes());
        h.update(self.model.to_string().as_bytes());
        h.update([0]);
        for w in &self.weights {
            h.update(w.to_le_bytes());
        }
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    }

    fn check_shape(&self) -> Result<()> {
        if self.dim == 0 || self.weights.len() != self.dim * self.dim {
            return Err(EngineError::invalid(
                "adapter.weights",
                format!(
                    "a {0} × {0} adapter needs {1} weights, got {2}",
                    self.dim,
                    self.dim * self.dim,
                    self.weights.len()
                ),
            ));
        }
        if let Some(i) = self.weights.iter().position(|w| !w.is_finite()) {
            return Err(EngineError::invalid(
                "adapter.weights",
                format!("weight {i} is not finite"),
            ));
        }
        Ok(())
    }
}

/// Encodes adapters as the body of [`ADAPTER_FILE`]: a count, then per adapter the length of
/// a JSON header (space, dim, model, card), the header, and `dim²` little-endian f32 weights.
fn encode(adapters: &[QueryAdapter]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(adapters.len() as u32).to_le_bytes());
    for a in adapters {
        let header = serde_json::to_vec(&Header {
            space: a.space.clone(),
            dim: a.dim,
            model: a.model.clone(),
            card: a.card.clone(),
        })
        .expect("adapter header serialises");
        out.extend_from_slice(&(header.len() as u32).to_le_bytes());
        out.extend_from_slice(&header);
        for w in &a.weights {
            out.extend_from_slice(&w.to_le_bytes());
        }
    }
    out
}

/// Decodes a body [`encode`] wrote; every length is checked.
fn decode(path: &Path, body: &[u8]) -> Result<Vec<QueryAdapter>> {
    let corrupt = |offset: usize, reason: String| {
        EngineError::Storage(sextant_storage::StorageError::Corrupt {
            path: path.to_path_buf(),
            offset: offset as u64,
            reason,
        })
    };
    let mut at = 0usize;
    let mut take = |n: usize, what: &str| -> Result<(usize, &[u8])> {
        let start = at;
        let end = at
            .checked_add(n)
            .filter(|&e| e <= body.len())
            .ok_or_else(|| corrupt(start, format!("the file ends inside {what}")))?;
        at = end;
        Ok((start, &body[start..end]))
    };
    let u32_at = |b: &[u8]| u32::from_le_bytes(b.try_into().expect("four bytes")) as usize;
    let (_, n) = take(4, "the adapter count")?;
    let n = u32_at(n);
    let mut out = Vec::new();
    for _ in 0..n {
        let (_, len) = take(4, "a header length")?;
        let len = u32_at(len);
        let (offset, header) = take(len, "a header")?;
        let h: Header = serde_json::from_slice(header)
            .map_err(|e| corrupt(offset, format!("adapter header does not parse: {e}")))?;
        let count = h
            .dim
            .checked_mul(h.dim)
            .and_then(|c| c.checked_mul(4))
            .ok_or_else(|| corrupt(offset, format!("dimension {} is too large", h.dim)))?;
        let (offset, raw) = take(count, "the weights")?;
        let weights: Vec<f32> = raw
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().expect("four bytes")))
            .collect();
        let a = QueryAdapter {
            space: h.space,
            dim: h.dim,
            weights,
            model: h.model,
            card: h.card,
        };
        a.check_shape()
            .map_err(|e| corrupt(offset, format!("adapter of space {:?}: {e}", a.space)))?;
        out.push(a);
    }
    if at != body.len() {
        return Err(corrupt(at, "bytes after the last adapter".into()));
    }
    Ok(out)
}

/// The sealed file bytes of `adapters`.
pub(crate) fn file_bytes(adapters: &[QueryAdapter]) -> Vec<u8> {
    envelope::seal(MAGIC, VERSION, &encode(adapters))
}

/// Checks the bytes of an adapter file (a snapshot's) without keeping them.
pub(crate) fn check_file_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    let body = envelope::open(path, MAGIC, VERSION, bytes)?;
    decode(path, body).map(|_| ())
}

/// Reads a collection directory's adapters (none when it has no adapter file).
pub(crate) fn load(fs: &dyn sextant_storage::fs::Fs, dir: &Path) -> Result<Vec<QueryAdapter>> {
    let path = dir.join(ADAPTER_FILE);
    if !fs.exists(&path) {
        return Ok(Vec::new());
    }
    let body = envelope::read(fs, &path, MAGIC, VERSION)?;
    decode(&path, &body)
}

impl Collection {
    /// Attaches `adapter` to its space (replacing the one there), durably. Refused: an unknown
    /// or binary-metric space, a dimension other than the space's, weights that are not
    /// `dim²` finite numbers, and (a conflict) a model identity other than the one stored
    /// with the space.
    pub fn set_adapter(&self, adapter: QueryAdapter) -> Result<AdapterInfo> {
        let spec = self
            .schema
            .spaces
            .iter()
            .find(|s| s.name == adapter.space)
            .ok_or_else(|| {
                EngineError::invalid(
                    "adapter.space",
                    format!(
                        "collection {:?} has no dense space {:?}",
                        self.name(),
                        adapter.space
                    ),
                )
            })?;
        if !spec.metric.quantizable() {
            return Err(EngineError::invalid(
                "adapter.space",
                format!(
                    "space {:?} has the binary metric {}: a linear map of its vectors is not binary",
                    spec.name, spec.metric
                ),
            ));
        }
        let stored = spec.model.clone().unwrap_or(Value::Null);
        if adapter.model != stored {
            return Err(EngineError::Conflict(format!(
                "the adapter was trained for model {} but space {:?} of collection {:?} holds vectors of {}",
                adapter.model, spec.name, self.name(), stored
            )));
        }
        if adapter.dim != spec.dim {
            return Err(EngineError::invalid(
                "adapter.dim",
                format!(
                    "the adapter maps {}-dimensional vectors; space {:?} holds {}",
                    adapter.dim, spec.name, spec.dim
                ),
            ));
        }
        adapter.check_shape()?;
        let attached = Attached::new(adapter);
        let info = attached.info();
        let _w = self.writer.lock();
        let mut next: Vec<QueryAdapter> = self
            .adapters
            .read()
            .iter()
            .filter(|a| a.adapter.space != attached.adapter.space)
            .map(|a| a.adapter.clone())
            .collect();
        next.push(attached.adapter.clone());
        self.write_adapters(&next)?;
        let mut current = self.adapters.write();
        current.retain(|a| a.adapter.space != attached.adapter.space);
        current.push(std::sync::Arc::new(attached));
        Ok(info)
    }

    /// Removes the adapter of `space`, durably; `false` when it had none.
    pub fn remove_adapter(&self, space: &str) -> Result<bool> {
        let _w = self.writer.lock();
        let current = self.adapters.read().clone();
        if !current.iter().any(|a| a.adapter.space == space) {
            return Ok(false);
        }
        let next: Vec<QueryAdapter> = current
            .iter()
            .filter(|a| a.adapter.space != space)
            .map(|a| a.adapter.clone())
            .collect();
        self.write_adapters(&next)?;
        self.adapters.write().retain(|a| a.adapter.space != space);
        Ok(true)
    }

    /// The adapter of `space`, if one is attached.
    pub fn adapter(&self, space: &str) -> Option<std::sync::Arc<Attached>> {
        self.adapters
            .read()
            .iter()
            .find(|a| a.adapter.space == space)
            .cloned()
    }

    /// Every attached adapter, as `info` reports them.
    pub fn adapters(&self) -> Vec<AdapterInfo> {
        self.adapters.read().iter().map(|a| a.info()).collect()
    }

    /// Writes the adapter file (removes it when there are none). Called under the writer
    /// lock, which a snapshot holds while it takes the file's bytes.
    fn write_adapters(&self, adapters: &[QueryAdapter]) -> Result<()> {
        let path = self.dir.join(ADAPTER_FILE);
        if adapters.is_empty() {
            if self.fs.exists(&path) {
                self.fs
                    .remove_file(&path)
                    .map_err(|e| envelope::io_err(&path, e))?;
                envelope::sync_dir(&*self.fs, &self.dir)?;
            }
            return Ok(());
        }
        envelope::write_atomic(&*self.fs, &path, &file_bytes(adapters))?;
        Ok(())
    }

    /// The adapter file's bytes as a snapshot stores them (`None` without adapters).
    pub(crate) fn adapter_file_bytes(&self) -> Option<Vec<u8>> {
        let a = self.adapters.read();
        (!a.is_empty())
            .then(|| file_bytes(&a.iter().map(|a| a.adapter.clone()).collect::<Vec<_>>()))
    }

    /// Rewrites the adapter file (with the current data key of an encrypted collection).
    pub(crate) fn rewrite_adapter_file(&self) -> Result<()> {
        let current: Vec<QueryAdapter> = self
            .adapters
            .read()
            .iter()
            .map(|a| a.adapter.clone())
            .collect();
        if current.is_empty() {
            return Ok(());
        }
        self.write_adapters(&current)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> QueryAdapter {
        let mut a = QueryAdapter::identity("dense", 3, serde_json::json!({"path": "m"}));
        a.weights[1] = 0.5;
        a.card = serde_json::json!({"queries": 10});
        a
    }

    #[test]
    fn apply_multiplies_by_the_matrix() {
        let a = sample();
        // Row 0 is (1, 0.5, 0); rows 1 and 2 are the identity's.
        assert_eq!(a.apply(&[2.0, 4.0, 6.0]), vec![4.0, 4.0, 6.0]);
    }

    #[test]
    fn encoding_round_trips_and_damage_is_refused() {
        let a = sample();
        let mut b = QueryAdapter::identity("other", 2, Value::Null);
        b.weights[3] = -1.0;
        let body = encode(&[a.clone(), b.clone()]);
        assert_eq!(decode(Path::new("x"), &body).unwrap(), vec![a.clone(), b]);
        for cut in [0, 3, 10, body.len() - 1] {
            assert!(
                decode(Path::new("x"), &body[..cut]).is_err(),
                "cut at {cut}"
            );
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(decode(Path::new("x"), &longer).is_err());
        let mut nan = encode(std::slice::from_ref(&a));
        let n = nan.len();
        nan[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
        let err = decode(Path::new("x"), &nan).unwrap_err().to_string();
        assert!(err.contains("not finite"), "{err}");
    }

    #[test]
    fn fingerprint_follows_weights_and_model() {
        let a = sample();
        let mut b = a.clone();
        assert_eq!(a.fingerprint(), b.fingerprint());
        b.weights[0] = 1.0001;
        assert_ne!(a.fingerprint(), b.fingerprint());
        let mut c = a.clone();
        c.model = serde_json::json!({"path": "other"});
        assert_ne!(a.fingerprint(), c.fingerprint());
        // The card is a record, not part of the map.
        let mut d = a.clone();
        d.card = Value::Null;
        assert_eq!(a.fingerprint(), d.fingerprint());
    }
}
