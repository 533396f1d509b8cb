//! What watches a fine-tuning run besides its optimiser (issue 20, deliverable 1): the
//! held-back queries scored every N steps, early stopping with the best weights kept (they
//! are the ones saved), and checkpoints a run resumes from.
//!
//! A checkpoint is a directory `OUT/checkpoints/step-NNNNNN/` written whole under another name
//! and renamed into place: `model/` (a model directory as [`Trained::save`] writes it),
//! `optimizer.safetensors` (AdamW's moments and step count, [`Optimiser::save`]),
//! `state.json` (the run's fingerprint, losses, validations and best step) and, when the best
//! validated weights are not the checkpoint's own, `best/` (a model directory of them). The two
//! newest are kept; a run that ends removes them.

use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use sextant_embed::{restore_params, snapshot_params, Flow, Optimiser, Param, Step};
use sextant_eval::process_cpu_seconds;

use super::invalid;
use crate::Result;

/// The directory under `--out` that holds a run's checkpoints.
pub const CHECKPOINTS_DIR: &str = "checkpoints";

/// Checkpoints kept: older ones are removed when a new one is written.
const KEPT_CHECKPOINTS: usize = 2;

/// Where a saved model is scored, under `--out` (removed after each validation).
const VALIDATION_DIR: &str = ".validation-model";

/// nDCG@10 of the held-back queries at a step.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    pub step: usize,
    pub ndcg: f64,
}

/// Scores a saved model directory: nDCG@10 of the held-back queries.
pub(super) type Scorer<'a> = Box<dyn Fn(&Path) -> Result<f64> + 'a>;

/// A model being trained, as the supervisor needs it.
pub(super) trait Trained {
    fn params(&self) -> &[Param];
    /// Writes a model directory that the inference path loads (and training resumes from).
    fn save(&self, dir: &Path) -> Result<()>;
}

/// When to validate, stop and checkpoint.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Schedule {
    pub eval_steps: Option<usize>,
    pub patience: Option<usize>,
    pub checkpoint_steps: Option<usize>,
}

/// `state.json` of a checkpoint.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    /// What the run trains on and how ([`super::fingerprint`]): a resumed run must match it.
    fingerprint: serde_json::Value,
    step: usize,
    losses: Vec<Step>,
    validations: Vec<Validation>,
    best: Option<Validation>,
    since_best: usize,
    train_seconds: f64,
    train_cpu_seconds: f64,
}

/// The state of a run that a checkpoint resumes: where its weights and optimiser are.
pub(super) struct Resumed {
    pub model: PathBuf,
    pub optimizer: PathBuf,
    /// The best validated weights' model directory, when not the checkpoint's own.
    pub best: Option<PathBuf>,
}

/// Watches a run's steps: see the module documentation.
pub(super) struct Supervisor<'a> {
    out: &'a Path,
    fingerprint: serde_json::Value,
    schedule: Schedule,
    /// Present whenever `schedule.eval_steps` is (checked by [`Supervisor::new`]).
    score: Option<Scorer<'a>>,
    pub losses: Vec<Step>,
    pub validations: Vec<Validation>,
    pub best: Option<Validation>,
    best_weights: Option<Vec<Tensor>>,
    since_best: usize,
    pub stopped_early: bool,
    pub resumed_from: Option<usize>,
    before: (f64, f64),
    started: (Instant, f64),
}

impl<'a> Supervisor<'a> {
    /// `score` gives nDCG@10 of the held-back queries for a saved model directory; `None`
    /// when nothing is held back (then `eval_steps` and `patience` must be unset).
    pub fn new(
        out: &'a Path,
        fingerprint: serde_json::Value,
        schedule: Schedule,
        score: Option<Scorer<'a>>,
    ) -> Result<Self> {
        if score.is_none() && schedule.eval_steps.is_some() {
            return Err(invalid(
                "eval_steps",
                "validating every N steps needs held-back queries (validation > 0)",
            ));
        }
        if schedule.patience.is_some() && schedule.eval_steps.is_none() {
            return Err(invalid(
                "patience",
                "early stopping counts validations: give eval_steps too",
            ));
        }
        for (field, value) in [
            ("eval_steps", schedule.eval_steps),
            ("patience", schedule.patience),
            ("checkpoint_steps", schedule.checkpoint_steps),
        ] {
            if value == Some(0) {
                return Err(invalid(field, format!("{field} must be at least 1")));
            }
        }
        Ok(Supervisor {
            out,
            fingerprint,
            schedule,
            score,
            losses: Vec::new(),
            validations: Vec::new(),
            best: None,
            best_weights: None,
            since_best: 0,
            stopped_early: false,
            resumed_from: None,
            before: (0.0, 0.0),
            started: (Instant::now(), process_cpu_seconds()),
        })
    }

    /// Reads the checkpoint `dir`, checks it was written by a run with this fingerprint, and
    /// takes over its losses, validations and times.
    pub fn resume(&mut self, dir: &Path) -> Result<Resumed> {
        let bad = |m: String| invalid("resume", format!("{}: {m}", dir.display()));
        let path = dir.join("state.json");
        let text = std::fs::read_to_string(&path)
            .map_err(|e| bad(format!("not a checkpoint ({}: {e})", path.display())))?;
        let state: State =
            serde_json::from_str(&text).map_err(|e| bad(format!("state.json: {e}")))?;
        if let Some(what) = difference(&state.fingerprint, &self.fingerprint, "") {
            return Err(bad(format!(
                "the checkpoint's run differs from this one: {what}; resume with the same data and settings"
            )));
        }
        let best = dir.join("best");
        let resumed = Resumed {
            model: dir.join("model"),
            optimizer: dir.join("optimizer.safetensors"),
            best: best.is_dir().then_some(best),
        };
        for p in [&resumed.model, &resumed.optimizer] {
            if !p.exists() {
                return Err(bad(format!("{} is missing", p.display())));
            }
        }
        self.resumed_from = Some(state.step);
        self.losses = state.losses;
        self.validations = state.validations;
        self.best = state.best;
        self.since_best = state.since_best;
        self.before = (state.train_seconds, state.train_cpu_seconds);
        self.started = (Instant::now(), process_cpu_seconds());
        Ok(resumed)
    }

    /// Keeps `weights` as the best validated ones (a resumed run's `best/`).
    pub fn set_best_weights(&mut self, weights: Vec<Tensor>) {
        self.best_weights = Some(weights);
    }

    /// Training wall and CPU seconds so far, a resumed run's earlier ones included.
    pub fn seconds(&self) -> (f64, f64) {
        (
            self.before.0 + self.started.0.elapsed().as_secs_f64(),
            self.before.1 + process_cpu_seconds() - self.started.1,
        )
    }

    /// After every step: validation, early stopping and checkpoints as scheduled.
    pub fn after_step(
        &mut self,
        s: &Step,
        optimiser: &Optimiser<'_>,
        model: &dyn Trained,
    ) -> Result<Flow> {
        self.losses.push(*s);
        let last = s.step == s.total;
        let mut flow = Flow::Continue;
        if let (Some(n), Some(score)) = (self.schedule.eval_steps, &self.score) {
            if s.step.is_multiple_of(n) || last {
                let dir = self.out.join(VALIDATION_DIR);
                remove_dir(&dir)?;
                model.save(&dir)?;
                let ndcg = score(&dir)?;
                remove_dir(&dir)?;
                let v = Validation { step: s.step, ndcg };
                self.validations.push(v);
                if self.best.is_none_or(|b| ndcg > b.ndcg) {
                    self.best = Some(v);
                    self.best_weights = Some(snapshot_params(model.params())?);
                    self.since_best = 0;
                } else {
                    self.since_best += 1;
                    if !last && self.schedule.patience.is_some_and(|p| self.since_best >= p) {
                        self.stopped_early = true;
                        flow = Flow::Stop;
                    }
                }
            }
        }
        if let Some(n) = self.schedule.checkpoint_steps {
            if s.step.is_multiple_of(n) && !last && flow == Flow::Continue {
                self.checkpoint(s.step, optimiser, model)?;
            }
        }
        Ok(flow)
    }

    /// Writes the checkpoint of `step` (see the module documentation) and removes all but the
    /// newest [`KEPT_CHECKPOINTS`].
    fn checkpoint(
        &self,
        step: usize,
        optimiser: &Optimiser<'_>,
        model: &dyn Trained,
    ) -> Result<()> {
        let root = self.out.join(CHECKPOINTS_DIR);
        let name = format!("step-{step:06}");
        let partial = root.join(format!(".{name}.partial"));
        remove_dir(&partial)?;
        std::fs::create_dir_all(&partial).map_err(|e| io(&partial, e))?;
        model.save(&partial.join("model"))?;
        optimiser.save(&partial.join("optimizer.safetensors"))?;
        if let (Some(best), Some(weights)) = (self.best, &self.best_weights) {
            if best.step != step {
                let current = snapshot_params(model.params())?;
                restore_params(model.params(), weights)?;
                let saved = model.save(&partial.join("best"));
                restore_params(model.params(), &current)?;
                saved?;
            }
        }
        let (train_seconds, train_cpu_seconds) = self.seconds();
        let state = State {
            fingerprint: self.fingerprint.clone(),
            step,
            losses: self.losses.clone(),
            validations: self.validations.clone(),
            best: self.best,
            since_best: self.since_best,
            train_seconds,
            train_cpu_seconds,
        };
        let state_path = partial.join("state.json");
        std::fs::write(
            &state_path,
            serde_json::to_string_pretty(&state).expect("the state serialises"),
        )
        .map_err(|e| io(&state_path, e))?;
        let done = root.join(&name);
        remove_dir(&done)?;
        std::fs::rename(&partial, &done).map_err(|e| io(&done, e))?;
        let mut steps: Vec<PathBuf> = std::fs::read_dir(&root)
            .map_err(|e| io(&root, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("step-"))
            })
            .collect();
        steps.sort();
        for old in steps.iter().rev().skip(KEPT_CHECKPOINTS) {
            remove_dir(old)?;
        }
        Ok(())
    }

    /// At the end of a run: the best validated weights back in the model (when validated),
    /// and the checkpoints removed. Returns the nDCG@10 of the weights the model now holds,
    /// when they were validated.
    pub fn finish(&mut self, model: &dyn Trained) -> Result<Option<f64>> {
        let kept = match (self.best, self.best_weights.take()) {
            (Some(best), Some(weights)) => {
                restore_params(model.params(), &weights)?;
                Some(best.ndcg)
            }
            _ => None,
        };
        remove_dir(&self.out.join(CHECKPOINTS_DIR))?;
        Ok(kept)
    }
}

/// The first field (dotted path) where two fingerprints differ, with both values.
fn difference(saved: &serde_json::Value, now: &serde_json::Value, at: &str) -> Option<String> {
    use serde_json::Value;
    match (saved, now) {
        (Value::Object(a), Value::Object(b)) => {
            let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                difference(
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                    &path,
                )
            })
        }
        (a, b) if a == b => None,
        (a, b) => Some(format!("{at} was {a}, now {b}")),
    }
}

fn io(path: &Path, e: std::io::Error) -> crate::Error {
    invalid("out", format!("{}: {e}", path.display()))
}

fn remove_dir(dir: &Path) -> Result<()> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io(dir, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::difference;
    use serde_json::json;

    #[test]
    fn difference_names_the_first_changed_field() {
        let a = json!({"pairs": 10, "train": {"batch": 16, "lr": 1e-4}, "model": "m"});
        assert_eq!(difference(&a, &a.clone(), ""), None);
        let b = json!({"pairs": 10, "train": {"batch": 32, "lr": 1e-4}, "model": "m"});
        assert_eq!(
            difference(&a, &b, "").as_deref(),
            Some("train.batch was 16, now 32")
        );
        let c = json!({"pairs": 10, "train": {"batch": 16, "lr": 1e-4}});
        assert_eq!(
            difference(&a, &c, "").as_deref(),
            Some("model was \"m\", now null")
        );
    }
}
