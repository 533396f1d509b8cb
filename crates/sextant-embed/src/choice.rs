//! [`Precision::Auto`]: the precision chosen by measurement on this CPU.
//!
//! At load, the model embeds the calibration texts (`int8::calibration::TEXTS`, short and
//! long) and eight passages built from them in f32 and in every reduced precision this CPU
//! runs natively; that run checks accuracy and warms up, and a batch of [`PASSAGES`] passages
//! is timed (passages of about a hundred tokens: a workload like
//! ingestion's, where per-call overheads of short texts would mislead — on a Xeon, bf16 on
//! AVX512-BF16 looked 1.12× faster than f32 on the short texts and is 0.7× on real ones). The
//! choice is the fastest whose every vector stays within [`AUTO_MIN_COSINE`] of its f32
//! vector, and f32 unless a reduced precision is at least [`AUTO_MIN_SPEEDUP`] faster (so
//! `auto` is never slower than f32 beyond the measurement's noise). Emulated kernels are never
//! candidates: they are no faster than f32 by construction.
//!
//! The result is cached per CPU, kernel, model weights and batch size (not threads: the timing
//! is per thread) in a JSON file ([`PRECISION_CACHE_ENV`]), so later loads on the same machine
//! skip the measurement.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::precision::AUTO_MIN_COSINE;
use crate::{EmbedError, Precision};

/// Passages timed, on one thread (what every thread does when batches run in parallel), so
/// the ratios between precisions are per-thread rates at any thread count.
pub const PASSAGES: usize = 16;

/// `n` passages of four consecutive calibration texts each (wrapping around).
pub(crate) fn passages(n: usize) -> Vec<String> {
    let t = crate::int8::calibration::TEXTS;
    (0..n)
        .map(|i| {
            (0..4)
                .map(|j| t[(i * 3 + j) % t.len()])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

/// Puts `target` (a model loaded in f32) in `precision`: `build(p, target)` makes its weights
/// for `p` and `install` puts them in place; for `auto`, `embed(target, texts)` is what
/// [`choose`] measures (run on a one-thread pool: each thread's rate when batches run in
/// parallel; a single batch on the model's own pool would time products split over threads).
/// `model_key` identifies the model's weights and batch size in the cache.
pub(crate) fn apply<T: Sync, M>(
    target: &mut T,
    precision: Precision,
    model_key: &str,
    mut build: impl FnMut(Precision, &T) -> Result<M, EmbedError>,
    install: impl Fn(&mut T, M),
    embed: impl Fn(&T, &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> + Sync,
) -> Result<PrecisionChoice, EmbedError> {
    if precision != Precision::Auto {
        let m = build(precision, target)?;
        install(target, m);
        return Ok(PrecisionChoice::fixed(precision));
    }
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .map_err(|e| EmbedError::InvalidArgument(format!("cannot start a thread: {e}")))?;
    let this = std::cell::RefCell::new(target);
    choose(
        model_key,
        |p| {
            let m = build(p, &this.borrow())?;
            install(&mut this.borrow_mut(), m);
            Ok(())
        },
        |texts| {
            let guard = this.borrow();
            let t: &T = &guard;
            single.install(|| embed(t, texts))
        },
    )
}

/// A reduced precision must be at least this much faster than f32 (time ratio) to be chosen.
pub const AUTO_MIN_SPEEDUP: f64 = 1.1;

/// The environment variable naming the file that caches `auto`'s choices (`off` disables the
/// cache). Default: `$XDG_CACHE_HOME/sextant/precision-auto.json`, else
/// `$HOME/.cache/sextant/precision-auto.json`.
pub const PRECISION_CACHE_ENV: &str = "SEXTANT_PRECISION_CACHE";

/// One precision measured by [`Precision::Auto`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecisionTrial {
    /// `f32`, `bf16` or `int8`.
    pub precision: String,
    /// Its kernel here (see [`Precision::kernel`]).
    pub kernel: String,
    /// Seconds to embed the timed passages.
    pub seconds: f64,
    /// The smallest cosine of its vectors to the f32 ones (1 for f32).
    pub min_cosine: f64,
}

/// How a model's precision was decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrecisionChoice {
    /// What was asked for (`auto`, or a fixed precision).
    pub requested: String,
    /// What runs.
    pub chosen: String,
    /// The measurements behind an `auto` choice (empty for a fixed precision).
    pub trials: Vec<PrecisionTrial>,
    /// Whether the `auto` choice came from the cache instead of a measurement now.
    pub cached: bool,
}

impl PrecisionChoice {
    /// A precision asked for by name: nothing measured.
    pub fn fixed(p: Precision) -> Self {
        PrecisionChoice {
            requested: p.as_str().into(),
            chosen: p.as_str().into(),
            trials: Vec::new(),
            cached: false,
        }
    }
}

/// The candidates of `auto` on this CPU, f32 first.
fn candidates() -> Vec<Precision> {
    let mut v = vec![Precision::F32];
    v.extend(
        [Precision::Bf16, Precision::Int8]
            .into_iter()
            .filter(|p| p.is_native()),
    );
    v
}

/// The smallest cosine between corresponding rows (1 when a pair is all zeros in both).
pub(crate) fn min_cosine(a: &[Vec<f32>], b: &[Vec<f32>]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let dot: f64 = x
                .iter()
                .zip(y)
                .map(|(p, q)| f64::from(*p) * f64::from(*q))
                .sum();
            let nx: f64 = x.iter().map(|p| f64::from(*p).powi(2)).sum::<f64>().sqrt();
            let ny: f64 = y.iter().map(|p| f64::from(*p).powi(2)).sum::<f64>().sqrt();
            if nx == 0.0 && ny == 0.0 {
                1.0
            } else if nx == 0.0 || ny == 0.0 {
                0.0
            } else {
                dot / (nx * ny)
            }
        })
        .fold(1.0, f64::min)
}

/// Decides `auto` for a model identified by `model_key`. `switch(p)` makes the model run in
/// `p`; `embed(texts)` embeds texts in the current precision.
pub(crate) fn choose(
    model_key: &str,
    switch: impl FnMut(Precision) -> Result<(), EmbedError>,
    embed: impl FnMut(&[&str]) -> Result<Vec<Vec<f32>>, EmbedError>,
) -> Result<PrecisionChoice, EmbedError> {
    let passages = passages(PASSAGES);
    let timed: Vec<&str> = passages.iter().map(String::as_str).collect();
    choose_among(&candidates(), model_key, &timed, switch, embed)
}

/// [`choose`] among `cands` (f32 first), timing `timed`.
fn choose_among(
    cands: &[Precision],
    model_key: &str,
    timed: &[&str],
    mut switch: impl FnMut(Precision) -> Result<(), EmbedError>,
    mut embed: impl FnMut(&[&str]) -> Result<Vec<Vec<f32>>, EmbedError>,
) -> Result<PrecisionChoice, EmbedError> {
    let accuracy: Vec<&str> = crate::int8::calibration::TEXTS
        .iter()
        .copied()
        .chain(timed.iter().take(8).copied())
        .collect();
    assert_eq!(cands.first(), Some(&Precision::F32));
    // The method's version: a cached choice measured another way is measured again.
    const METHOD: u32 = 3;
    let key = format!(
        "{} | {} | {} m{METHOD} | {}",
        cpu_name(),
        cands
            .iter()
            .map(|p| format!("{p}:{}", p.kernel()))
            .collect::<Vec<_>>()
            .join(","),
        env!("CARGO_PKG_VERSION"),
        model_key
    );
    if let Some(mut hit) = Cache::open().and_then(|c| c.get(&key)) {
        if let Ok(p) = hit.chosen.parse::<Precision>() {
            switch(p)?;
            hit.cached = true;
            return Ok(hit);
        }
    }
    let mut trials = Vec::new();
    let mut reference: Option<Vec<Vec<f32>>> = None;
    for &p in cands {
        switch(p)?;
        // The accuracy run also warms caches and allocators; the second run is timed.
        let vectors = embed(&accuracy)?;
        let t = Instant::now();
        embed(timed)?;
        let best = t.elapsed().as_secs_f64();
        let min_cosine = match &reference {
            None => 1.0,
            Some(r) => min_cosine(&vectors, r),
        };
        if reference.is_none() {
            reference = Some(vectors);
        }
        trials.push(PrecisionTrial {
            precision: p.as_str().into(),
            kernel: p.kernel().into(),
            seconds: best,
            min_cosine,
        });
    }
    let f32_s = trials[0].seconds;
    let chosen = trials
        .iter()
        .zip(cands)
        .filter(|(t, _)| t.min_cosine >= AUTO_MIN_COSINE && t.seconds * AUTO_MIN_SPEEDUP <= f32_s)
        .min_by(|a, b| a.0.seconds.total_cmp(&b.0.seconds))
        .map_or(Precision::F32, |(_, &p)| p);
    switch(chosen)?;
    let choice = PrecisionChoice {
        requested: Precision::Auto.as_str().into(),
        chosen: chosen.as_str().into(),
        trials,
        cached: false,
    };
    if let Some(mut c) = Cache::open() {
        c.put(key, choice.clone());
    }
    Ok(choice)
}

/// The CPU's brand string (CPUID), or the architecture's name.
fn cpu_name() -> String {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::__cpuid;
        if __cpuid(0x8000_0000).eax >= 0x8000_0004 {
            let mut bytes = Vec::with_capacity(48);
            for leaf in 0x8000_0002u32..=0x8000_0004 {
                let r = __cpuid(leaf);
                for v in [r.eax, r.ebx, r.ecx, r.edx] {
                    bytes.extend_from_slice(&v.to_le_bytes());
                }
            }
            let s = String::from_utf8_lossy(&bytes);
            return s.trim_matches(char::from(0)).trim().to_owned();
        }
    }
    std::env::consts::ARCH.to_owned()
}

/// The cache file of `auto`'s choices.
struct Cache {
    path: PathBuf,
    entries: BTreeMap<String, PrecisionChoice>,
}

impl Cache {
    /// The cache, or `None` when it is turned off or no location is known. A missing or
    /// unreadable file is an empty cache.
    fn open() -> Option<Self> {
        let path = match std::env::var_os(PRECISION_CACHE_ENV) {
            Some(p) if p == "off" => return None,
            Some(p) if !p.is_empty() => PathBuf::from(p),
            _ => {
                let base = std::env::var_os("XDG_CACHE_HOME")
                    .filter(|v| !v.is_empty())
                    .map(PathBuf::from)
                    .or_else(|| {
                        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache"))
                    })?;
                base.join("sextant").join("precision-auto.json")
            }
        };
        let entries = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Some(Cache { path, entries })
    }

    fn get(&self, key: &str) -> Option<PrecisionChoice> {
        self.entries.get(key).cloned()
    }

    /// Stores an entry, best effort: a cache that cannot be written only costs the next load
    /// a measurement. Written to a temporary file and renamed, so readers never see half.
    fn put(&mut self, key: String, choice: PrecisionChoice) {
        self.entries.insert(key, choice);
        let Ok(json) = serde_json::to_vec_pretty(&self.entries) else {
            return;
        };
        if let Some(dir) = self.path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = self
            .path
            .with_extension(format!("tmp.{}", std::process::id()));
        if std::fs::write(&tmp, json).is_ok() && std::fs::rename(&tmp, &self.path).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_cosine_of_rows() {
        let a = vec![vec![1.0, 0.0], vec![0.0, 0.0], vec![1.0, 1.0]];
        let b = vec![vec![1.0, 0.0], vec![0.0, 0.0], vec![1.0, 0.0]];
        assert!((min_cosine(&a, &b) - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-12);
        assert_eq!(min_cosine(&[vec![1.0]], &[vec![0.0]]), 0.0);
    }

    /// A fake model: `bf16` twice as fast and close, `int8` faster still but off by more than
    /// the bound. `auto` picks bf16, then finds it in the cache without measuring.
    #[test]
    fn picks_the_fastest_precision_within_the_bound_and_caches_it() {
        let dir = std::env::temp_dir().join(format!("sx-choice-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("c.json");
        // The only test of this binary that reads the variable.
        std::env::set_var(PRECISION_CACHE_ENV, &file);
        let cands = [Precision::F32, Precision::Bf16, Precision::Int8];
        let run = |use_cache_key: &str| {
            let current = std::cell::Cell::new(Precision::F32);
            let embeds = std::cell::Cell::new(0);
            let choice = choose_among(
                &cands,
                use_cache_key,
                &["a timed passage"],
                |p| {
                    current.set(p);
                    Ok(())
                },
                |_texts: &[&str]| {
                    embeds.set(embeds.get() + 1);
                    let (ms, v) = match current.get() {
                        Precision::F32 => (40, vec![1.0, 0.0]),
                        Precision::Bf16 => (10, vec![1.0, 0.01]),
                        _ => (2, vec![1.0, 0.2]),
                    };
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                    Ok(vec![v])
                },
            )
            .unwrap();
            (choice, current.get(), embeds.get())
        };
        let (c, now, embeds) = run("model-a");
        assert_eq!(
            (c.chosen.as_str(), now, c.cached),
            ("bf16", Precision::Bf16, false)
        );
        assert_eq!(embeds, 6, "an accuracy run and a timed run per candidate");
        assert_eq!(c.trials.len(), 3);
        assert!(c.trials[2].min_cosine < AUTO_MIN_COSINE);
        let (c, now, embeds) = run("model-a");
        assert_eq!(
            (c.chosen.as_str(), now, c.cached, embeds),
            ("bf16", Precision::Bf16, true, 0)
        );
        // Another model is measured afresh.
        let (c, _, embeds) = run("model-b");
        assert_eq!((c.cached, embeds), (false, 6));
        std::env::remove_var(PRECISION_CACHE_ENV);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn cpu_has_a_name() {
        assert!(!cpu_name().is_empty());
    }
}
