//! Re-embedding a document collection with another model, into a new collection, from the
//! chunk text it stores: the model-upgrade path (`sextant reindex`). The source keeps serving
//! reads and writes meanwhile; an alias switch (`Database::set_alias`) moves readers over in
//! one step, and the source stays for rollback.
//!
//! * **What is copied.** Every live chunk of the source (every tenant's), with its id and
//!   payload unchanged. The dense vector is the new model's embedding of the same text the
//!   ingester embeds (the title cut to the new model's free tokens, a newline, the chunk text);
//!   BM25 is recomputed from that text; SPLADE weights are re-encoded with the source's SPLADE
//!   model. Expiries follow from the schema's TTL field, copied with the schema.
//! * **What is not.** Chunking is not redone: chunks keep the boundaries the old model's
//!   tokenizer gave them, so a new model whose limit is below the chunk budget is refused.
//!   Writes to the source after a chunk was copied are not carried over: run the reindex again
//!   with `resume` (it re-embeds only chunks whose payload differs, adds new ones and deletes
//!   those gone), and switch the alias after a pass with nothing left to do.
//! * **Crash.** Every batch is one durable upsert; an interrupted reindex continues with
//!   `resume`, re-embedding only what is missing or changed.

use std::collections::HashSet;

use serde::Serialize;
use serde_json::Value;
use sextant_core::{Filter, PointId};
use sextant_storage::schema::Schema;

use super::ingest::{embed_text, title_prefix};
use super::{check_models, DenseModel, DocumentSettings, SparseModel, BM25, DENSE, SPLADE};
use crate::collection::{PointInput, SparseInput, Vectors};
use crate::error::{EngineError, Result};
use crate::{Collection, Scope};

/// Chunks embedded per batch (one durable upsert each) by default.
pub const DEFAULT_REINDEX_BATCH: usize = 64;

/// What a reindex will do, known before it starts.
#[derive(Debug, Clone, Serialize)]
pub struct ReindexEstimate {
    /// Live chunks in the source.
    pub chunks: u64,
    /// Bytes of chunk text to embed.
    pub text_bytes: u64,
    /// The source's dense dimension and the new one.
    pub old_dim: usize,
    /// The new model's dimension.
    pub new_dim: usize,
    /// Bytes the source takes on disk.
    pub source_disk_bytes: u64,
    /// Estimated bytes of the new collection once merged: the source's, with the dense
    /// vectors resized to the new dimension.
    pub estimated_disk_bytes: u64,
}

/// What a reindex did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReindexStats {
    /// Chunks embedded and written.
    pub embedded: u64,
    /// Chunks already in the target with the same payload (a resumed run).
    pub unchanged: u64,
    /// Chunks deleted from the source while the reindex ran (skipped).
    pub vanished: u64,
    /// Chunks in the target that the source no longer has, deleted (a resumed run).
    pub removed: u64,
}

/// The schema of the collection a reindex of `src` with `dense` writes into: the source's,
/// with the dense space resized and carrying the new model's identity. Refuses a source that
/// is not a document collection and a model too short for the source's chunks.
pub fn target_schema(src: &Collection, dense: &dyn DenseModel) -> Result<Schema> {
    let settings = DocumentSettings::of(src)?;
    settings.validate(dense.max_tokens()).map_err(|e| {
        EngineError::invalid(
            "model",
            format!(
                "the new model reads at most {} tokens, too few for the chunks of collection {:?} ({}): {e}",
                dense.max_tokens(),
                src.name(),
                settings.chunking.max_tokens
            ),
        )
    })?;
    let mut schema = src.schema().clone();
    let space = schema
        .spaces
        .iter_mut()
        .find(|s| s.name == DENSE)
        .ok_or_else(|| {
            EngineError::invalid(
                "collection",
                format!("collection {:?} has no dense space {DENSE:?}", src.name()),
            )
        })?;
    space.dim = dense.dim();
    space.model = Some(dense.identity());
    Ok(schema)
}

/// Counts and sizes for [`ReindexEstimate`] (reads every chunk's text length).
pub fn estimate(src: &Collection, dense: &dyn DenseModel) -> Result<ReindexEstimate> {
    let old_dim = src
        .schema()
        .spaces
        .iter()
        .find(|s| s.name == DENSE)
        .map_or(0, |s| s.dim);
    // Every tenant's points (the same as unscoped in a collection without tenants).
    let scope = Scope::AllTenants;
    let ids = src.ids_matching(&scope, &Filter::default())?;
    let mut text_bytes = 0u64;
    for batch in ids.chunks(1024) {
        for p in src.get(&scope, batch, true, false)? {
            text_bytes += p
                .payload
                .as_ref()
                .and_then(|v| v.get("text"))
                .and_then(Value::as_str)
                .map_or(0, |t| t.len() as u64);
        }
    }
    let chunks = ids.len() as u64;
    let source_disk_bytes = src.info().disk_bytes;
    let delta = (dense.dim() as i64 - old_dim as i64) * 4 * chunks as i64;
    Ok(ReindexEstimate {
        chunks,
        text_bytes,
        old_dim,
        new_dim: dense.dim(),
        source_disk_bytes,
        estimated_disk_bytes: (source_disk_bytes as i64 + delta).max(0) as u64,
    })
}

/// Up to `n` chunk texts of `src` as they would be embedded, for timing the model.
pub fn sample_texts(src: &Collection, dense: &dyn DenseModel, n: usize) -> Result<Vec<String>> {
    let settings = DocumentSettings::of(src)?;
    let scope = Scope::AllTenants;
    let ids = src.ids_matching(&scope, &Filter::default())?;
    let step = (ids.len() / n.max(1)).max(1);
    let picked: Vec<PointId> = ids.into_iter().step_by(step).take(n).collect();
    src.get(&scope, &picked, true, false)?
        .iter()
        .map(|p| chunk_embed_text(p.payload.as_ref(), &p.id, dense, &settings))
        .collect()
}

fn chunk_embed_text(
    payload: Option<&Value>,
    id: &PointId,
    dense: &dyn DenseModel,
    settings: &DocumentSettings,
) -> Result<String> {
    let field = |k: &str| payload.and_then(|p| p.get(k)).and_then(Value::as_str);
    let text = field("text").ok_or_else(|| {
        EngineError::invalid(
            "collection",
            format!(
                "chunk {} has no text in its payload: only chunks written by ingest can be re-embedded",
                id.to_json()
            ),
        )
    })?;
    let prefix = title_prefix(
        dense,
        settings.chunking.max_tokens,
        field("title").unwrap_or(""),
    );
    Ok(embed_text(&prefix, text))
}

/// Re-embeds every chunk of `src` into `dst` (made with [`target_schema`]) with `dense` (and
/// `splade`, required when the source has a SPLADE space), `batch` chunks per durable upsert.
/// With `resume`, chunks already in `dst` with the same payload are skipped and chunks of
/// `dst` the source no longer has are deleted. `progress(done, total)` after each batch.
pub fn reindex(
    src: &Collection,
    dst: &Collection,
    dense: &dyn DenseModel,
    splade: Option<&dyn SparseModel>,
    batch: usize,
    resume: bool,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<ReindexStats> {
    if batch == 0 {
        return Err(EngineError::invalid("batch", "must be at least 1".into()));
    }
    let settings = DocumentSettings::of(src)?;
    let expected = target_schema(src, dense)?;
    if dst.schema() != &expected {
        return Err(EngineError::Conflict(format!(
            "collection {:?} is not a reindex target of {:?} with this model (its schema differs)",
            dst.name(),
            src.name()
        )));
    }
    check_models(dst, Some(dense), None)?;
    let has_splade = src.schema().sparse_spaces.iter().any(|s| s.name == SPLADE);
    if has_splade {
        let m = splade.ok_or_else(|| {
            EngineError::invalid(
                "splade",
                format!(
                    "collection {:?} has a SPLADE space: give its SPLADE model",
                    src.name()
                ),
            )
        })?;
        check_models(src, None, Some(m))?;
    }
    let splade = if has_splade { splade } else { None };
    let scope = Scope::AllTenants;
    let ids = src.ids_matching(&scope, &Filter::default())?;
    let total = ids.len() as u64;
    let mut stats = ReindexStats::default();
    if resume {
        let keep: HashSet<&PointId> = ids.iter().collect();
        let gone: Vec<PointId> = dst
            .ids_matching(&scope, &Filter::default())?
            .into_iter()
            .filter(|id| !keep.contains(id))
            .collect();
        if !gone.is_empty() {
            stats.removed = dst.delete(&scope, gone)? as u64;
        }
    }
    let mut done = 0u64;
    for chunk in ids.chunks(batch) {
        let mut points = src.get(&scope, chunk, true, false)?;
        stats.vanished += (chunk.len() - points.len()) as u64;
        if resume {
            let have = dst.get(&scope, chunk, true, false)?;
            let before = points.len();
            points.retain(|p| !have.iter().any(|h| h.id == p.id && h.payload == p.payload));
            stats.unchanged += (before - points.len()) as u64;
        }
        if !points.is_empty() {
            let texts: Vec<String> = points
                .iter()
                .map(|p| chunk_embed_text(p.payload.as_ref(), &p.id, dense, &settings))
                .collect::<Result<_>>()?;
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let vectors = dense
                .embed(&refs, false)
                .map_err(|e| EngineError::Model(format!("embedding chunks: {e}")))?;
            if vectors.len() != refs.len() {
                return Err(EngineError::Model(format!(
                    "the embedding model returned {} vectors for {} chunks",
                    vectors.len(),
                    refs.len()
                )));
            }
            let mut sparse = match splade {
                Some(m) => Some(
                    m.encode(&refs, false)
                        .map_err(|e| EngineError::Model(format!("SPLADE encoding chunks: {e}")))?
                        .into_iter(),
                ),
                None => None,
            };
            let inputs: Vec<PointInput> = points
                .into_iter()
                .zip(vectors)
                .zip(texts)
                .map(|((p, v), text)| {
                    let mut sp = vec![(BM25.to_string(), SparseInput::Text(text))];
                    if let Some(s) = sparse.as_mut().and_then(Iterator::next) {
                        sp.push((SPLADE.to_string(), SparseInput::Vector(s)));
                    }
                    PointInput {
                        id: p.id,
                        vectors: Vectors::Single(v),
                        payload: p.payload.unwrap_or(Value::Null),
                        sparse: sp,
                        expires_at: None,
                    }
                })
                .collect();
            stats.embedded += inputs.len() as u64;
            dst.upsert(&scope, inputs)?;
        }
        done += chunk.len() as u64;
        progress(done, total);
    }
    dst.sync()?;
    Ok(stats)
}
