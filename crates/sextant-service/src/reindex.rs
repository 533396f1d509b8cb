//! The model-upgrade workflow: re-embed a document collection with a new model into a new
//! collection ([`Service::reindex`]), after an estimate of time and space
//! ([`Service::reindex_plan`]); then `eval` both side by side and switch an alias. The engine
//! part (what is copied, resume) is `sextant_engine::documents::reindex`.

use std::time::Instant;

use serde::{Deserialize, Serialize};
use sextant_embed::Precision;
use sextant_engine::documents::reindex::{
    self as engine, ReindexEstimate, ReindexStats, DEFAULT_REINDEX_BATCH,
};
use sextant_engine::documents::{self, SparseModel, DENSE, SPLADE};
use sextant_engine::{Collection, EngineError};

use crate::error::{Error, Result};
use crate::models::stored_path;
use crate::Service;

/// Chunks embedded to time the new model before a reindex.
pub const TIMING_SAMPLE: usize = 32;

/// A reindex request.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReindexOptions {
    /// The new embedding model (a directory, or a name the server maps to one).
    pub model: String,
    /// The collection to write (created with the source's settings and the new model).
    pub into: String,
    /// Chunks per durable batch [default: 64].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
    /// Continue into an existing target: re-embed only chunks missing or changed there, delete
    /// those the source no longer has.
    #[serde(default)]
    pub resume: bool,
}

/// What a reindex will cost, before it starts.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReindexPlan {
    /// The source collection (an alias resolved).
    pub source: String,
    /// The source's model (stored location).
    pub source_model: String,
    /// The new model's location.
    pub model: String,
    /// Counts and sizes.
    #[schema(value_type = Object)]
    pub estimate: ReindexEstimate,
    /// Estimated seconds of embedding (from timing [`TIMING_SAMPLE`] chunks).
    pub estimated_seconds: f64,
    /// Free bytes on the data directory's file system (`None` when unknown).
    pub free_disk_bytes: Option<u64>,
}

/// What a reindex did.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ReindexReport {
    /// The plan it ran.
    pub plan: ReindexPlan,
    /// Counts.
    #[schema(value_type = Object)]
    pub stats: ReindexStats,
    /// Wall seconds.
    pub seconds: f64,
    /// Chunks embedded per second.
    pub chunks_per_s: f64,
}

fn free_bytes(path: &std::path::Path) -> Option<u64> {
    let s = rustix::fs::statvfs(path).ok()?;
    Some(s.f_bavail.saturating_mul(s.f_frsize))
}

impl Service {
    fn reindex_source(
        &self,
        source: &str,
        opts: &ReindexOptions,
    ) -> Result<std::sync::Arc<Collection>> {
        let src = self.collection(source)?;
        if opts.into == src.name() || opts.into == source {
            return Err(Error::invalid(
                "into",
                format!("the target must be a new collection, not the source {source:?}"),
            ));
        }
        if self.database().aliases().contains_key(&opts.into) {
            return Err(Error::invalid(
                "into",
                format!("{:?} is an alias; give a collection name", opts.into),
            ));
        }
        documents::DocumentSettings::of(&src)?;
        Ok(src)
    }

    /// The estimate of a reindex of `source` (a collection or alias): chunks, text, disk, and
    /// the embedding time from timing the new model on a sample of the chunks.
    pub fn reindex_plan(&self, source: &str, opts: &ReindexOptions) -> Result<ReindexPlan> {
        let src = self.reindex_source(source, opts)?;
        let dense = self
            .models()
            .dense(&opts.model, Precision::F32)
            .map_err(|e| e.with_field("model"))?;
        engine::target_schema(&src, dense.as_ref())?;
        let estimate = engine::estimate(&src, dense.as_ref())?;
        let sample = engine::sample_texts(&src, dense.as_ref(), TIMING_SAMPLE)?;
        let refs: Vec<&str> = sample.iter().map(String::as_str).collect();
        let mut per_chunk = 0.0;
        if !refs.is_empty() {
            // Once to warm up, once timed.
            let m: &dyn documents::DenseModel = dense.as_ref();
            m.embed(&refs[..refs.len().min(4)], false)
                .map_err(|e| Error::from(EngineError::Model(e)))?;
            let t = Instant::now();
            m.embed(&refs, false)
                .map_err(|e| Error::from(EngineError::Model(e)))?;
            per_chunk = t.elapsed().as_secs_f64() / refs.len() as f64;
        }
        let source_model = documents::stored_model(&src, DENSE)
            .map(|v| stored_path(&v))
            .transpose()?
            .unwrap_or_default();
        Ok(ReindexPlan {
            source: src.name().to_string(),
            source_model,
            model: self.models().resolve(&opts.model).to_string(),
            estimated_seconds: per_chunk * estimate.chunks as f64,
            estimate,
            free_disk_bytes: free_bytes(self.database().dir()),
        })
    }

    /// Re-embeds `source` (a collection or alias) with `opts.model` into the new collection
    /// `opts.into`, which keeps the source's settings, tenancy and encryption. Refuses when the
    /// disk lacks the estimated space. The source keeps serving meanwhile. `progress(done,
    /// total)` after each batch.
    pub fn reindex(
        &self,
        source: &str,
        opts: &ReindexOptions,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ReindexReport> {
        let t0 = Instant::now();
        let plan = self.reindex_plan(source, opts)?;
        self.reindex_planned(plan, opts, t0, progress)
    }

    /// [`Service::reindex`] after its plan was made (and shown) by [`Service::reindex_plan`]
    /// with the same options; `t0` is when the plan began, for the report's time.
    pub fn reindex_planned(
        &self,
        plan: ReindexPlan,
        opts: &ReindexOptions,
        t0: Instant,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ReindexReport> {
        let src = self.collection(&plan.source)?;
        let dense = self
            .models()
            .dense(&opts.model, Precision::F32)
            .map_err(|e| e.with_field("model"))?;
        let schema = engine::target_schema(&src, dense.as_ref())?;
        let dst =
            match self.database().collection(&opts.into) {
                Ok(c) if opts.resume => c,
                Ok(_) => return Err(Error::from(EngineError::NameTaken(opts.into.clone()))
                    .context(
                        "give a new target, or resume to continue an interrupted reindex into it",
                    )),
                Err(EngineError::CollectionNotFound(_)) => {
                    if let Some(free) = plan.free_disk_bytes {
                        if free < plan.estimate.estimated_disk_bytes {
                            return Err(Error::new(
                                sextant_core::ErrorKind::Conflict,
                                format!(
                                "the new collection needs about {} MiB; the disk has {} MiB free",
                                plan.estimate.estimated_disk_bytes >> 20,
                                free >> 20
                            ),
                            ));
                        }
                    }
                    let encrypted = src.encryption_status().is_some();
                    self.database()
                        .create_collection_with(&opts.into, schema, encrypted)?
                }
                Err(e) => return Err(e.into()),
            };
        let splade = documents::stored_model(&src, SPLADE)
            .is_some()
            .then(|| {
                self.models()
                    .collection_splade(&src, sextant_embed::Precision::default())
            })
            .transpose()?;
        let stats = engine::reindex(
            &src,
            &dst,
            dense.as_ref(),
            splade.as_deref().map(|s| s as &dyn SparseModel),
            opts.batch.unwrap_or(DEFAULT_REINDEX_BATCH),
            opts.resume,
            progress,
        )?;
        dst.settle().map_err(|e| {
            Error::from(e)
                .context("every chunk was written and is durable; the merge after it failed")
        })?;
        let seconds = t0.elapsed().as_secs_f64().max(1e-9);
        Ok(ReindexReport {
            plan,
            chunks_per_s: stats.embedded as f64 / seconds,
            stats,
            seconds,
        })
    }
}
