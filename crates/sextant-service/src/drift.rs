//! Drift monitoring for every front end: pin the embedding distribution, add canary queries
//! (a text is embedded with the collection's own model, as a query), check them. The engine
//! part is `sextant_engine::drift`.

use serde::{Deserialize, Serialize};
use sextant_core::PointId;
use sextant_embed::Precision;
use sextant_engine::documents::DenseModel;
use sextant_engine::drift::{Canary, CanaryInput, DriftInfo, DriftReference};

use crate::error::{Error, Result};
use crate::Service;

/// Results a canary checks unless told.
pub const DEFAULT_CANARY_K: usize = 10;

/// A canary query to add: a text (document collections: embedded with the collection's
/// model) or a vector.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CanaryRequest {
    /// Its name (unique in the collection).
    pub name: String,
    /// The query text (document collections).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The query vector (instead of a text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vector: Option<Vec<f32>>,
    /// The vector space (collections with several).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub space: Option<String>,
    /// Results checked, 1..=100 [default: 10].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k: Option<usize>,
    /// Ids expected in the top k [default: the exact top k now].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub expected: Option<Vec<serde_json::Value>>,
}

/// Alarm thresholds set when pinning.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    /// Centroid shift (in reference spreads) above which the alarm is raised [default: 0.2].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shift_alarm: Option<f64>,
    /// Canaries' mean precision@k below which the alarm is raised [default: 0.8].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision_alarm: Option<f64>,
}

impl Service {
    /// Pins the distribution of `collection`'s vectors now as the drift reference.
    pub fn drift_pin(&self, collection: &str, req: &PinRequest) -> Result<DriftReference> {
        let c = self.collection(collection)?;
        Ok(c.drift_pin(req.shift_alarm, req.precision_alarm)?)
    }

    /// Adds a canary query (a text is embedded as a query with the collection's model).
    pub fn drift_add_canary(&self, collection: &str, req: &CanaryRequest) -> Result<Canary> {
        let c = self.collection(collection)?;
        let vector = match (&req.text, &req.vector) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "vector",
                    "give a text or a vector, not both",
                ))
            }
            (None, None) => return Err(Error::invalid("text", "give a text or a vector")),
            (None, Some(v)) => v.clone(),
            (Some(t), None) => {
                let m = self.models().collection_dense(&c, Precision::F32)?;
                let mut rows = (m.as_ref() as &dyn DenseModel)
                    .embed(&[t.as_str()], true)
                    .map_err(|e| Error::from(sextant_engine::EngineError::Model(e)))?;
                rows.pop().unwrap_or_default()
            }
        };
        let expected = req
            .expected
            .as_ref()
            .map(|ids| {
                ids.iter()
                    .map(|v| {
                        PointId::from_json(v).ok_or_else(|| {
                            Error::invalid(
                                "expected",
                                format!("expected id {v} is not an unsigned integer or a string"),
                            )
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()?;
        Ok(c.drift_add_canary(CanaryInput {
            name: req.name.clone(),
            space: req.space.clone(),
            text: req.text.clone(),
            vector,
            k: req.k.unwrap_or(DEFAULT_CANARY_K),
            expected,
        })?)
    }

    /// Removes a canary; refused as not found when there is none of that name.
    pub fn drift_remove_canary(&self, collection: &str, name: &str) -> Result<()> {
        let c = self.collection(collection)?;
        if c.drift_remove_canary(name)? {
            Ok(())
        } else {
            Err(Error::new(
                sextant_core::ErrorKind::NotFound,
                format!("collection {:?} has no canary named {name:?}", c.name()),
            )
            .with_field("name"))
        }
    }

    /// Runs the canaries and records the check.
    pub fn drift_check(&self, collection: &str) -> Result<DriftInfo> {
        Ok(self.collection(collection)?.drift_check()?)
    }

    /// The drift report (`None` when the collection is not monitored).
    pub fn drift_status(&self, collection: &str) -> Result<Option<DriftInfo>> {
        Ok(self.collection(collection)?.drift_info())
    }
}
