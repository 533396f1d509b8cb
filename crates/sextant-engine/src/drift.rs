//! Drift monitoring of a collection: how its stored embeddings are distributed now against a
//! pinned reference, and canary queries whose expected results are checked over time.
//!
//! * **Distribution.** Per dense space, over the live points: the centroid (mean vector), the
//!   norm's mean, deviation, minimum and maximum, and the spread (root-mean-square distance to
//!   the centroid). Immutable segments' sums are cached by (segment, dead points), so a repeat
//!   costs only the mutable segment.
//! * **Centroid shift** = ‖centroid now − centroid pinned‖ / spread pinned: how far the mean
//!   has moved, in units of the reference's spread (0 when nothing changed; a new topic making
//!   up a fifth of the data typically moves it by tenths). **Norm shift** = |mean norm now −
//!   pinned| / pinned.
//! * **Canaries**: a query vector (the front end embeds a text with the collection's model),
//!   `k`, and the ids expected in its top `k` (given, or the exact answer when it was added).
//!   A check runs each through the normal (approximate) search and records precision@k =
//!   |found ∩ expected| / |expected|; the last [`HISTORY`] checks are kept.
//! * **Alarms**: a centroid shift above the reference's `shift_alarm`, or a canary check whose
//!   mean precision is below `precision_alarm`.
//! * **Storage.** The state is one file, [`DRIFT_FILE`], in the collection directory, written
//!   atomically through the collection's file system (encrypted with the collection). It is
//!   monitoring state, not data: snapshots and backups do not carry it (pin again after a
//!   restore). Canaries search every tenant: they are the operator's tool.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use sextant_core::PointId;
use sextant_index::VectorIndex;
use sextant_storage::envelope;

use crate::collection::Collection;
use crate::error::{EngineError, Result};
use crate::query::SearchRequest;
use crate::scope::Scope;

/// File name of the drift state in a collection directory.
pub const DRIFT_FILE: &str = "drift";
const MAGIC: &[u8; 8] = b"SXTDRIFT";
const VERSION: u32 = 1;
/// Canary checks kept.
pub const HISTORY: usize = 100;
/// Default alarm threshold of the centroid shift.
pub const DEFAULT_SHIFT_ALARM: f64 = 0.2;
/// Default alarm threshold of the canaries' mean precision@k.
pub const DEFAULT_PRECISION_ALARM: f64 = 0.8;

/// The distribution of one dense space's vectors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceStats {
    /// The space.
    pub space: String,
    /// Live vectors counted.
    pub count: u64,
    /// The mean vector (left out of `info`'s output).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub centroid: Vec<f32>,
    /// Mean L2 norm.
    pub mean_norm: f64,
    /// Standard deviation of the norm.
    pub norm_std: f64,
    /// Smallest norm.
    pub min_norm: f64,
    /// Largest norm.
    pub max_norm: f64,
    /// Root-mean-square distance to the centroid.
    pub spread: f64,
}

/// The pinned reference distribution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriftReference {
    /// When it was pinned (ms since the epoch, by the collection's clock).
    pub pinned_at_ms: i64,
    /// Per dense space.
    pub spaces: Vec<SpaceStats>,
}

/// A canary query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Canary {
    /// Its name (unique in the collection).
    pub name: String,
    /// The dense space it searches.
    pub space: String,
    /// The text it was embedded from, when a front end embedded one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The query vector.
    pub vector: Vec<f32>,
    /// Results checked.
    pub k: usize,
    /// Ids expected in the top `k` (as JSON: numbers or strings).
    pub expected: Vec<serde_json::Value>,
}

/// A canary to add.
#[derive(Debug, Clone, Default)]
pub struct CanaryInput {
    /// Name.
    pub name: String,
    /// Dense space (may be omitted when the collection has one).
    pub space: Option<String>,
    /// The text the vector came from (kept for display).
    pub text: Option<String>,
    /// The query vector.
    pub vector: Vec<f32>,
    /// Results checked (1..=100).
    pub k: usize,
    /// Expected ids; `None`: the exact top `k` now.
    pub expected: Option<Vec<PointId>>,
}

/// One canary check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanaryCheck {
    /// When (ms since the epoch).
    pub at_ms: i64,
    /// precision@k per canary, by name.
    pub precision: Vec<(String, f64)>,
    /// Their mean.
    pub mean: f64,
}

/// Everything stored in [`DRIFT_FILE`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DriftState {
    /// The pinned reference.
    pub reference: Option<DriftReference>,
    /// Alarm threshold of the centroid shift.
    pub shift_alarm: Option<f64>,
    /// Alarm threshold of the canaries' mean precision.
    pub precision_alarm: Option<f64>,
    /// Canaries.
    pub canaries: Vec<Canary>,
    /// The last checks, oldest first.
    pub history: VecDeque<CanaryCheck>,
}

/// One space, now against the reference.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SpaceDrift {
    /// The distribution now (without the centroid).
    pub now: SpaceStats,
    /// The pinned one (without the centroid).
    pub reference: Option<SpaceStats>,
    /// ‖centroid now − pinned‖ / pinned spread.
    pub centroid_shift: Option<f64>,
    /// |mean norm now − pinned| / pinned.
    pub norm_shift: Option<f64>,
}

/// The drift report of `info` and of a check.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DriftInfo {
    /// When the reference was pinned (RFC 3339), if it was.
    pub pinned_at: Option<String>,
    /// Per dense space.
    pub spaces: Vec<SpaceDrift>,
    /// Canaries defined.
    pub canaries: usize,
    /// The last canary check.
    pub last_check: Option<CanaryCheck>,
    /// The mean precision of each check kept, oldest first.
    pub precision_history: Vec<f64>,
    /// Thresholds in force.
    pub shift_alarm: f64,
    /// Thresholds in force.
    pub precision_alarm: f64,
    /// Alarms raised now (empty: none).
    pub alarms: Vec<String>,
}

/// Per-segment sums: (count, Σx, Σ‖x‖, Σ‖x‖², min, max) for one space.
#[derive(Debug, Clone)]
pub(crate) struct Sums {
    count: u64,
    sum: Vec<f64>,
    norm: f64,
    norm2: f64,
    min: f64,
    max: f64,
}

impl Sums {
    fn new(dim: usize) -> Self {
        Sums {
            count: 0,
            sum: vec![0.0; dim],
            norm: 0.0,
            norm2: 0.0,
            min: f64::INFINITY,
            max: 0.0,
        }
    }
    fn add(&mut self, v: &[f32]) {
        let mut n2 = 0.0f64;
        for (s, &x) in self.sum.iter_mut().zip(v) {
            *s += f64::from(x);
            n2 += f64::from(x) * f64::from(x);
        }
        let n = n2.sqrt();
        self.count += 1;
        self.norm += n;
        self.norm2 += n2;
        self.min = self.min.min(n);
        self.max = self.max.max(n);
    }
    fn merge(&mut self, o: &Sums) {
        self.count += o.count;
        for (a, b) in self.sum.iter_mut().zip(&o.sum) {
            *a += b;
        }
        self.norm += o.norm;
        self.norm2 += o.norm2;
        self.min = self.min.min(o.min);
        self.max = self.max.max(o.max);
    }
    fn stats(&self, space: &str) -> SpaceStats {
        let n = self.count.max(1) as f64;
        let centroid: Vec<f32> = self.sum.iter().map(|s| (s / n) as f32).collect();
        let c2: f64 = self.sum.iter().map(|s| (s / n) * (s / n)).sum();
        let mean_norm = self.norm / n;
        // E‖x − μ‖² = E‖x‖² − ‖μ‖².
        let spread = (self.norm2 / n - c2).max(0.0).sqrt();
        SpaceStats {
            space: space.to_string(),
            count: self.count,
            centroid,
            mean_norm,
            norm_std: (self.norm2 / n - mean_norm * mean_norm).max(0.0).sqrt(),
            min_norm: if self.count == 0 { 0.0 } else { self.min },
            max_norm: self.max,
            spread,
        }
    }
}

/// Cached sums of immutable segments, by (segment id, dead points, space).
pub(crate) type SumCache = HashMap<(u64, u64, usize), Sums>;

fn without_centroid(s: &SpaceStats) -> SpaceStats {
    SpaceStats {
        centroid: Vec::new(),
        ..s.clone()
    }
}

fn distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (f64::from(*x) - f64::from(*y)).powi(2))
        .sum::<f64>()
        .sqrt()
}

/// Reads the drift state of a collection directory (empty when there is none).
pub(crate) fn load(fs: &dyn sextant_storage::fs::Fs, dir: &std::path::Path) -> Result<DriftState> {
    let path = dir.join(DRIFT_FILE);
    if !fs.exists(&path) {
        return Ok(DriftState::default());
    }
    let body = envelope::read(fs, &path, MAGIC, VERSION)?;
    serde_json::from_slice(&body).map_err(|e| {
        EngineError::Storage(sextant_storage::StorageError::Corrupt {
            path,
            offset: 0,
            reason: format!("drift state does not parse: {e}"),
        })
    })
}

impl Collection {
    /// Rewrites the drift file, when there is one (a data-key rotation rewrites every file).
    pub(crate) fn rewrite_drift_file(&self) -> Result<()> {
        let st = self.drift.lock();
        if !self.fs.exists(&self.dir.join(DRIFT_FILE)) {
            return Ok(());
        }
        self.save_drift(&st)
    }

    fn save_drift(&self, st: &DriftState) -> Result<()> {
        let body = serde_json::to_vec(st).expect("drift state serialises");
        envelope::write_atomic(
            &*self.fs,
            &self.dir.join(DRIFT_FILE),
            &envelope::seal(MAGIC, VERSION, &body),
        )?;
        Ok(())
    }

    /// The distribution of every dense space's live vectors now.
    pub fn embedding_stats(&self) -> Vec<SpaceStats> {
        let now = self.now_ms();
        let st = self.state.read();
        let mut cache = self.drift_sums.lock();
        let mut live_keys = std::collections::HashSet::new();
        let out = self
            .schema()
            .spaces
            .iter()
            .enumerate()
            .map(|(si, spec)| {
                let mut total = Sums::new(spec.dim);
                for (loc, seg, dead) in st.each_segment(now) {
                    let immutable = matches!(loc, crate::collection::Loc::Segment(..));
                    let key = (seg.id, dead.len(), si);
                    if immutable {
                        live_keys.insert(key);
                        if let Some(s) = cache.get(&key) {
                            total.merge(s);
                            continue;
                        }
                    }
                    let mut s = Sums::new(spec.dim);
                    let index = seg.vectors(si);
                    for o in 0..seg.len() {
                        if dead.contains(o) {
                            continue;
                        }
                        if let Some(v) = index.vector(o) {
                            s.add(v);
                        }
                    }
                    total.merge(&s);
                    if immutable {
                        cache.insert(key, s);
                    }
                }
                total.stats(&spec.name)
            })
            .collect();
        cache.retain(|k, _| live_keys.contains(k));
        out
    }

    /// Pins the distribution now as the reference (with alarm thresholds, when given).
    pub fn drift_pin(
        &self,
        shift_alarm: Option<f64>,
        precision_alarm: Option<f64>,
    ) -> Result<DriftReference> {
        for (name, v) in [
            ("shift_alarm", shift_alarm),
            ("precision_alarm", precision_alarm),
        ] {
            if v.is_some_and(|x| !x.is_finite() || x < 0.0) {
                return Err(EngineError::invalid(
                    name,
                    format!(
                        "must be a non-negative number, got {}",
                        v.unwrap_or_default()
                    ),
                ));
            }
        }
        let reference = DriftReference {
            pinned_at_ms: self.now_ms(),
            spaces: self.embedding_stats(),
        };
        let mut guard = self.drift.lock();
        let mut st = guard.clone();
        st.reference = Some(reference.clone());
        st.shift_alarm = shift_alarm.or(st.shift_alarm);
        st.precision_alarm = precision_alarm.or(st.precision_alarm);
        self.save_drift(&st)?;
        *guard = st;
        Ok(reference)
    }

    /// Adds a canary query; without expected ids, the exact top `k` now are expected.
    pub fn drift_add_canary(&self, c: CanaryInput) -> Result<Canary> {
        if c.name.is_empty() || c.name.len() > 128 {
            return Err(EngineError::invalid(
                "name",
                "a canary needs a name of 1 to 128 bytes".into(),
            ));
        }
        if !(1..=100).contains(&c.k) {
            return Err(EngineError::invalid(
                "k",
                format!("must be 1..=100, got {}", c.k),
            ));
        }
        let schema = self.schema();
        let space = match &c.space {
            Some(s) => schema.spaces.iter().find(|x| &x.name == s).ok_or_else(|| {
                EngineError::invalid("space", format!("unknown vector space {s:?}"))
            })?,
            None if schema.spaces.len() == 1 => &schema.spaces[0],
            None => {
                return Err(EngineError::invalid(
                    "space",
                    "the collection has several vector spaces; name the canary's".into(),
                ))
            }
        };
        sextant_core::validate_vector_for(&c.vector, space.dim, space.metric)
            .map_err(|e| EngineError::invalid("vector", format!("canary vector: {e}")))?;
        let expected = match c.expected {
            Some(ids) if ids.is_empty() => {
                return Err(EngineError::invalid(
                    "expected",
                    "give at least one expected id, or none to take the exact answer now".into(),
                ))
            }
            Some(ids) => ids,
            None => {
                let hits = self
                    .search(SearchRequest {
                        space: Some(space.name.clone()),
                        vector: c.vector.clone(),
                        k: c.k,
                        scope: Scope::AllTenants,
                        exact_threshold: Some(u64::MAX),
                        ..SearchRequest::default()
                    })?
                    .hits;
                if hits.is_empty() {
                    return Err(EngineError::invalid(
                        "expected",
                        "the collection is empty: give the expected ids".into(),
                    ));
                }
                hits.into_iter().map(|h| h.id).collect()
            }
        };
        let canary = Canary {
            name: c.name,
            space: space.name.clone(),
            text: c.text,
            vector: c.vector,
            k: c.k,
            expected: expected.iter().map(PointId::to_json).collect(),
        };
        let mut guard = self.drift.lock();
        if guard.canaries.iter().any(|x| x.name == canary.name) {
            return Err(EngineError::Conflict(format!(
                "collection {:?} already has a canary named {:?}",
                self.name(),
                canary.name
            )));
        }
        let mut st = guard.clone();
        st.canaries.push(canary.clone());
        self.save_drift(&st)?;
        *guard = st;
        Ok(canary)
    }

    /// Removes a canary; whether it existed.
    pub fn drift_remove_canary(&self, name: &str) -> Result<bool> {
        let mut guard = self.drift.lock();
        let mut st = guard.clone();
        let before = st.canaries.len();
        st.canaries.retain(|c| c.name != name);
        if st.canaries.len() == before {
            return Ok(false);
        }
        self.save_drift(&st)?;
        *guard = st;
        Ok(true)
    }

    /// The canaries.
    pub fn drift_canaries(&self) -> Vec<Canary> {
        self.drift.lock().canaries.clone()
    }

    /// Runs every canary through the normal search, records the check and returns the report.
    pub fn drift_check(&self) -> Result<DriftInfo> {
        let canaries = self.drift_canaries();
        if canaries.is_empty() {
            return Err(EngineError::invalid(
                "canaries",
                format!(
                    "collection {:?} has no canary queries; add one first",
                    self.name()
                ),
            ));
        }
        let mut precision = Vec::with_capacity(canaries.len());
        for c in &canaries {
            let got = self.search(SearchRequest {
                space: Some(c.space.clone()),
                vector: c.vector.clone(),
                k: c.k,
                scope: Scope::AllTenants,
                ..SearchRequest::default()
            })?;
            let ids: Vec<serde_json::Value> = got.hits.iter().map(|h| h.id.to_json()).collect();
            let found = c.expected.iter().filter(|e| ids.contains(e)).count();
            precision.push((c.name.clone(), found as f64 / c.expected.len() as f64));
        }
        let mean = precision.iter().map(|p| p.1).sum::<f64>() / precision.len() as f64;
        {
            let mut guard = self.drift.lock();
            let mut st = guard.clone();
            st.history.push_back(CanaryCheck {
                at_ms: self.now_ms(),
                precision,
                mean,
            });
            while st.history.len() > HISTORY {
                st.history.pop_front();
            }
            self.save_drift(&st)?;
            *guard = st;
        }
        Ok(self.drift_report())
    }

    /// The drift report (`None` when nothing is pinned and no canary is defined, so that
    /// `info` scans no vectors for a collection nobody monitors).
    pub fn drift_info(&self) -> Option<DriftInfo> {
        let monitored = {
            let st = self.drift.lock();
            st.reference.is_some() || !st.canaries.is_empty()
        };
        monitored.then(|| self.drift_report())
    }

    fn drift_report(&self) -> DriftInfo {
        let st = self.drift.lock().clone();
        let shift_alarm = st.shift_alarm.unwrap_or(DEFAULT_SHIFT_ALARM);
        let precision_alarm = st.precision_alarm.unwrap_or(DEFAULT_PRECISION_ALARM);
        let now = self.embedding_stats();
        let mut alarms = Vec::new();
        let spaces = now
            .iter()
            .map(|s| {
                let r = st
                    .reference
                    .as_ref()
                    .and_then(|r| r.spaces.iter().find(|x| x.space == s.space));
                let centroid_shift = r.map(|r| {
                    let d = distance(&s.centroid, &r.centroid);
                    if r.spread > 0.0 {
                        d / r.spread
                    } else if d == 0.0 {
                        0.0
                    } else {
                        f64::INFINITY
                    }
                });
                let norm_shift = r
                    .filter(|r| r.mean_norm > 0.0)
                    .map(|r| (s.mean_norm - r.mean_norm).abs() / r.mean_norm);
                if let Some(x) = centroid_shift.filter(|x| *x > shift_alarm) {
                    alarms.push(format!(
                        "space {:?}: the centroid moved {x:.3} spreads since the reference (alarm above {shift_alarm})",
                        s.space
                    ));
                }
                SpaceDrift {
                    now: without_centroid(s),
                    reference: r.map(without_centroid),
                    centroid_shift,
                    norm_shift,
                }
            })
            .collect();
        let last_check = st.history.back().cloned();
        if let Some(c) = last_check.as_ref().filter(|c| c.mean < precision_alarm) {
            alarms.push(format!(
                "canaries: mean precision@k {:.3} at the last check (alarm below {precision_alarm})",
                c.mean
            ));
        }
        DriftInfo {
            pinned_at: st
                .reference
                .as_ref()
                .map(|r| crate::clock::format_expiry(r.pinned_at_ms)),
            spaces,
            canaries: st.canaries.len(),
            last_check,
            precision_history: st.history.iter().map(|c| c.mean).collect(),
            shift_alarm,
            precision_alarm,
            alarms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_give_the_mean_spread_and_norms() {
        let mut s = Sums::new(2);
        for v in [[1.0f32, 0.0], [-1.0, 0.0], [0.0, 3.0], [0.0, -3.0]] {
            s.add(&v);
        }
        let st = s.stats("d");
        assert_eq!(st.count, 4);
        assert_eq!(st.centroid, vec![0.0, 0.0]);
        assert!((st.mean_norm - 2.0).abs() < 1e-12);
        assert!((st.norm_std - 1.0).abs() < 1e-12);
        assert_eq!((st.min_norm, st.max_norm), (1.0, 3.0));
        // RMS distance to the centroid: sqrt((1 + 1 + 9 + 9) / 4).
        assert!((st.spread - 5f64.sqrt()).abs() < 1e-12);
        let mut half = Sums::new(2);
        half.add(&[1.0, 0.0]);
        half.add(&[-1.0, 0.0]);
        let mut other = Sums::new(2);
        other.add(&[0.0, 3.0]);
        other.add(&[0.0, -3.0]);
        half.merge(&other);
        assert_eq!(half.stats("d"), st);
    }
}
