//! The ANN recall probe: a collection samples a small share of its approximate vector searches,
//! re-runs each exactly on a background thread and keeps recall@k of the approximate answers
//! over a sliding window, so a user sees when the index's settings lose recall as data grows.
//!
//! * **What is sampled.** Only searches that walked a graph or scanned 1-bit codes (both
//!   approximate) in at least one segment (a search answered exactly everywhere has recall 1 by
//!   construction), with probability
//!   [`ProbeConfig::rate`]. The sample keeps the query vector, `k`, the whole filter (the
//!   tenant condition included) and the ids the caller got.
//! * **The exact re-run** uses the same filter, scanning every matching live point of every
//!   segment. It runs after the search returned, against the collection as it is then: a
//!   write between the two can count as a miss (or a hit) that the index did not cause.
//! * **Recall@k** of one sample is `|approximate ∩ exact| / |exact|` over the top `k` (a sample
//!   whose exact answer is empty is skipped). The probe reports the mean over the last
//!   [`ProbeConfig::window`] samples with its standard error.
//! * **Cost.** Sampling is one atomic add per search; the queue holds [`QUEUE`] samples and
//!   drops (and counts) what arrives while it is full, so the probe never slows a search down
//!   or holds memory without bound. The worker rests after each re-run so that it keeps at
//!   most [`ProbeConfig::max_busy`] of one core busy (an exact scan of a large collection
//!   costs far more than a graph walk); samples arriving faster are dropped. The worker starts with the first sample and stops when
//!   the collection closes ([`RecallProbe::stop`], called by the database's drop).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::{Arc, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

use parking_lot::Mutex;
use serde::Serialize;
use sextant_core::{Filter, PointId};

use crate::collection::Collection;

/// Default share of approximate searches the probe re-runs exactly.
pub const DEFAULT_PROBE_RATE: f64 = 0.01;
/// Default number of samples the recall estimate is taken over.
pub const DEFAULT_PROBE_WINDOW: usize = 1000;
/// Default share of one core the probe's worker may keep busy: 5%. An exact re-run of a
/// 200,000 × 50 collection takes about 2 ms, so that is ~25 samples a second at most, and the
/// window of 1,000 fills in under a minute under load; at 1M × 384 (~40 ms) in about 15 minutes.
pub const DEFAULT_PROBE_MAX_BUSY: f64 = 0.05;
/// Samples waiting for their exact re-run; more are dropped (and counted).
pub const QUEUE: usize = 64;

/// Settings of the recall probe.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProbeConfig {
    /// Share of approximate searches re-run exactly, in `[0, 1]`; 0 turns the probe off.
    pub rate: f64,
    /// Number of most recent samples the estimate is taken over (at least 1).
    pub window: usize,
    /// Share of one core the worker may keep busy, in `(0, 1]`: after a re-run that took `t`
    /// it rests `t × (1 / max_busy − 1)`.
    pub max_busy: f64,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            rate: DEFAULT_PROBE_RATE,
            window: DEFAULT_PROBE_WINDOW,
            max_busy: DEFAULT_PROBE_MAX_BUSY,
        }
    }
}

impl ProbeConfig {
    /// Refuses a rate outside `[0, 1]` or an empty window, naming the setting.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.rate) {
            return Err(format!(
                "recall probe rate must be between 0 and 1, got {}",
                self.rate
            ));
        }
        if self.window == 0 {
            return Err("recall probe window must be at least 1".into());
        }
        if !(self.max_busy > 0.0 && self.max_busy <= 1.0) {
            return Err(format!(
                "recall probe max_busy must be in (0, 1], got {}",
                self.max_busy
            ));
        }
        Ok(())
    }
}

/// What the probe measured, as `info` reports it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecallProbeInfo {
    /// Share of approximate searches sampled.
    pub rate: f64,
    /// Window size (samples).
    pub window: usize,
    /// Samples in the window now.
    pub samples: usize,
    /// Mean recall@k over the window (`None` before the first measured sample).
    pub recall: Option<f64>,
    /// Standard error of `recall` (`None` with fewer than two samples).
    pub recall_stderr: Option<f64>,
    /// Lowest recall of one sample in the window.
    pub min_recall: Option<f64>,
    /// Smallest and largest `k` of the samples in the window.
    pub k_range: Option<(usize, usize)>,
    /// Samples measured since the collection was opened.
    pub measured: u64,
    /// Samples dropped because the queue was full.
    pub dropped: u64,
    /// Samples waiting for their exact re-run.
    pub pending: u64,
    /// The worker's limit, as a share of one core.
    pub max_busy: f64,
    /// Mean time of one exact re-run, in milliseconds.
    pub exact_ms: Option<f64>,
}

/// A sampled search waiting for its exact re-run.
pub(crate) struct Sample {
    pub(crate) space: usize,
    pub(crate) vector: Vec<f32>,
    pub(crate) k: usize,
    pub(crate) filter: Option<Filter>,
    pub(crate) got: Vec<PointId>,
}

#[derive(Debug, Default)]
struct Window {
    recalls: VecDeque<(f64, usize)>,
    measured: u64,
    dropped: u64,
    pending: u64,
    exact_secs: f64,
}

/// The probe of one collection.
#[derive(Debug)]
pub(crate) struct RecallProbe {
    config: ProbeConfig,
    draws: AtomicU64,
    seed: u64,
    tx: Mutex<Option<SyncSender<Sample>>>,
    worker: Mutex<Option<JoinHandle<()>>>,
    stopped: AtomicBool,
    window: Arc<Mutex<Window>>,
}

/// splitmix64: a well-mixed 64-bit value from a counter.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl RecallProbe {
    pub(crate) fn new(config: ProbeConfig, seed: u64) -> Self {
        RecallProbe {
            config,
            draws: AtomicU64::new(0),
            seed,
            tx: Mutex::new(None),
            worker: Mutex::new(None),
            stopped: AtomicBool::new(false),
            window: Arc::new(Mutex::new(Window::default())),
        }
    }

    /// Whether this search is sampled (one atomic add; false when the probe is off).
    pub(crate) fn draw(&self) -> bool {
        if self.config.rate <= 0.0 || self.stopped.load(Ordering::Relaxed) {
            return false;
        }
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        let u = (mix(self.seed ^ n) >> 11) as f64 / (1u64 << 53) as f64;
        u < self.config.rate
    }

    /// Queues a sample for its exact re-run, starting the worker on first use; drops it when
    /// the queue is full.
    pub(crate) fn offer(&self, sample: Sample, collection: &Weak<Collection>) {
        if self.stopped.load(Ordering::Relaxed) {
            return;
        }
        let mut tx = self.tx.lock();
        if tx.is_none() {
            let (sender, rx) = sync_channel::<Sample>(QUEUE);
            let weak = collection.clone();
            let window = self.window.clone();
            let cap = self.config.window;
            let rest = 1.0 / self.config.max_busy - 1.0;
            let spawned = std::thread::Builder::new()
                .name("sextant-recall-probe".into())
                .spawn(move || {
                    for s in rx {
                        let Some(c) = weak.upgrade() else { break };
                        let t = Instant::now();
                        let exact = c.exact_ids(&s);
                        drop(c);
                        let secs = t.elapsed().as_secs_f64();
                        let mut w = window.lock();
                        w.pending = w.pending.saturating_sub(1);
                        let exact = match exact {
                            Some(e) if !e.is_empty() => e,
                            _ => continue,
                        };
                        let hit = exact.iter().filter(|id| s.got.contains(id)).count();
                        w.recalls.push_back((hit as f64 / exact.len() as f64, s.k));
                        while w.recalls.len() > cap {
                            w.recalls.pop_front();
                        }
                        w.measured += 1;
                        w.exact_secs += secs;
                        drop(w);
                        if rest > 0.0 {
                            std::thread::sleep(std::time::Duration::from_secs_f64(secs * rest));
                        }
                    }
                });
            match spawned {
                Ok(h) => {
                    *self.worker.lock() = Some(h);
                    *tx = Some(sender);
                }
                Err(_) => {
                    self.window.lock().dropped += 1;
                    return;
                }
            }
        }
        let sender = tx.as_ref().expect("started above");
        let mut w = self.window.lock();
        match sender.try_send(sample) {
            Ok(()) => w.pending += 1,
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => w.dropped += 1,
        }
    }

    /// Stops the worker after the samples already queued, and waits for it.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
        drop(self.tx.lock().take());
        if let Some(h) = self.worker.lock().take() {
            let _ = h.join();
        }
    }

    /// Blocks until every queued sample has been measured (tests and benchmarks).
    pub(crate) fn drain(&self) {
        loop {
            let pending = self.window.lock().pending;
            if pending == 0 || self.worker.lock().is_none() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }

    /// Empties the window and the counters (samples still queued land after it).
    pub(crate) fn reset(&self) {
        let mut w = self.window.lock();
        let pending = w.pending;
        *w = Window {
            pending,
            ..Window::default()
        };
    }

    pub(crate) fn info(&self) -> Option<RecallProbeInfo> {
        if self.config.rate <= 0.0 {
            return None;
        }
        let w = self.window.lock();
        let n = w.recalls.len();
        let mean = (n > 0).then(|| w.recalls.iter().map(|r| r.0).sum::<f64>() / n as f64);
        let stderr = mean.filter(|_| n > 1).map(|m| {
            let var = w.recalls.iter().map(|r| (r.0 - m).powi(2)).sum::<f64>() / (n - 1) as f64;
            (var / n as f64).sqrt()
        });
        Some(RecallProbeInfo {
            rate: self.config.rate,
            window: self.config.window,
            samples: n,
            recall: mean,
            recall_stderr: stderr,
            min_recall: w.recalls.iter().map(|r| r.0).reduce(f64::min),
            k_range: w.recalls.iter().fold(None, |acc, &(_, k)| match acc {
                None => Some((k, k)),
                Some((lo, hi)) => Some((lo.min(k), hi.max(k))),
            }),
            measured: w.measured,
            dropped: w.dropped,
            pending: w.pending,
            max_busy: self.config.max_busy,
            exact_ms: (w.measured > 0).then(|| w.exact_secs * 1000.0 / w.measured as f64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_draw_rate_matches_the_configured_rate() {
        let p = RecallProbe::new(
            ProbeConfig {
                rate: 0.1,
                ..ProbeConfig::default()
            },
            7,
        );
        let hits = (0..100_000).filter(|_| p.draw()).count();
        assert!((9_000..=11_000).contains(&hits), "{hits}");
        let off = RecallProbe::new(
            ProbeConfig {
                rate: 0.0,
                ..ProbeConfig::default()
            },
            7,
        );
        assert!((0..1000).all(|_| !off.draw()));
        assert!(off.info().is_none());
    }

    #[test]
    fn bad_settings_are_refused_by_name() {
        let ok = ProbeConfig::default();
        assert!(ok.validate().is_ok());
        for (bad, field) in [
            (ProbeConfig { rate: 1.5, ..ok }, "rate"),
            (ProbeConfig { rate: -0.1, ..ok }, "rate"),
            (ProbeConfig { window: 0, ..ok }, "window"),
            (
                ProbeConfig {
                    max_busy: 0.0,
                    ..ok
                },
                "max_busy",
            ),
            (
                ProbeConfig {
                    max_busy: 1.5,
                    ..ok
                },
                "max_busy",
            ),
        ] {
            assert!(bad.validate().unwrap_err().contains(field), "{bad:?}");
        }
    }
}
