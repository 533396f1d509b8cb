//! Deleting documents by age: every document whose current version was ingested before a
//! cutoff, all its chunks, in one WAL record.
//!
//! A document's age is the time its current version was written, which ingestion records in
//! every chunk as [`INGESTED_AT`] (an unchanged document re-ingested keeps its time; a changed
//! one gets a new one). Chunks written before that field existed carry no time and are never
//! deleted by age. All chunks of a version share one time, so a document goes whole or stays
//! whole.

use serde::Serialize;
use serde_json::json;
use sextant_core::{Filter, PointId};

use super::ingest::INGESTED_AT;
use crate::error::{EngineError, Result};
use crate::{Collection, Scope};

/// What [`delete_older_than`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AgeDeletion {
    /// Documents removed.
    pub documents: usize,
    /// Their chunks (points) removed.
    pub points: usize,
    /// The cutoff (milliseconds since the Unix epoch): documents ingested before it went.
    pub cutoff_ms: i64,
}

/// Deletes, in the scope, every document of the document collection `c` ingested more than
/// `age_ms` milliseconds before now (by the collection's clock), as one durable write.
pub fn delete_older_than(c: &Collection, scope: &Scope, age_ms: i64) -> Result<AgeDeletion> {
    if age_ms <= 0 {
        return Err(EngineError::invalid(
            "older_than",
            format!("the age must be positive, got {age_ms} ms"),
        ));
    }
    if c.schema().documents.is_none() {
        return Err(EngineError::invalid(
            "older_than",
            format!(
                "collection {:?} is not a document collection: only ingested documents record their age",
                c.name()
            ),
        ));
    }
    let cutoff_ms = c.now_ms().saturating_sub(age_ms);
    let filter = Filter::from_json(&json!({"must": [{"key": INGESTED_AT, "range": {
        "lt": crate::clock::format_expiry(cutoff_ms)
    }}]}))
    .map_err(EngineError::from)?;
    let mut documents = 0;
    let points = c.delete_with(scope, || {
        let ids = c.ids_matching(scope, &filter)?;
        documents = document_count(&ids);
        Ok(ids)
    })?;
    Ok(AgeDeletion {
        documents,
        points,
        cutoff_ms,
    })
}

/// The number of distinct documents among chunk ids (`<doc key>#<n>`).
fn document_count(ids: &[PointId]) -> usize {
    ids.iter()
        .map(|id| match id {
            PointId::Str(s) => s.rsplit_once('#').map_or(s.as_str(), |(d, _)| d),
            _ => "",
        })
        .collect::<std::collections::HashSet<_>>()
        .len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_counted_by_chunk_id_prefix() {
        let ids = ["a#0", "a#1", "b#0", "x#y#0", "x#y#1"]
            .map(|s| PointId::Str(s.into()))
            .to_vec();
        assert_eq!(document_count(&ids), 3);
    }
}
