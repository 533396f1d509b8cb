//! The arithmetic precision of the encoder's linear projections.

use std::fmt;
use std::str::FromStr;

use crate::EmbedError;

/// Precision unless configured otherwise.
pub const DEFAULT_PRECISION: Precision = Precision::F32;

/// How the four linear projections of every layer (query/key/value, attention output,
/// feed-forward up and down: about 85% of the forward pass) multiply. Attention products,
/// softmax, layer norms, GELU and pooling stay in f32 in every mode.
///
/// The precision is **not** part of the [`crate::ModelFingerprint`]: bf16 vectors are the
/// same vector space as f32 ones (cosine ≥ 0.999 to the f32 vector on every parity text, see
/// `BENCHMARKS.md`), so an index built in one mode can be queried in the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// f32 weights and activations (the reference; matches sentence-transformers to 1e-5).
    #[default]
    F32,
    /// Weights rounded to bf16 once at load, activations rounded to bf16 per product, sums in
    /// f32. The projections run on AMX tiles where the CPU exposes them (Intel Sapphire Rapids
    /// and later), else on our AVX512-BF16 (`vdpbf16ps`) kernel (about 1.9× the f32 gemm's
    /// rate on AMD Zen 4, no faster than f32 on Intel cores, where it issues on one port);
    /// elsewhere the same rounding is emulated on the f32 product (the same vectors up to f32
    /// summation order, no faster). [`Precision::kernel`] says which.
    Bf16,
    /// Three of the four projections of every layer in int8 (per-token activation scales,
    /// per-channel weight scales, SmoothQuant factors calibrated on built-in texts at load), the
    /// feed-forward down projection in bf16 where the CPU has a bf16 kernel and f32 elsewhere.
    /// On AMX tiles (`tdpbusd`) or AVX-512 VNNI (`vpdpbusd`), else emulated on the f32 product.
    Int8,
    /// Chosen at load: the fastest of f32 and the reduced precisions this CPU runs natively
    /// whose vectors stay within [`AUTO_MIN_COSINE`] of f32 on the calibration texts, measured
    /// then (or taken from the per-CPU cache). A request, never the precision a model runs in.
    Auto,
}

/// The accuracy bound [`Precision::Auto`] holds: every calibration vector within this cosine of
/// its f32 vector.
pub const AUTO_MIN_COSINE: f64 = 0.999;

impl Precision {
    /// The name used by the CLI and the configuration (`f32`, `bf16`, `int8`, `auto`).
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
            Precision::Auto => "auto",
        }
    }

    /// Whether this mode runs on a native kernel on this CPU (`false` for bf16 or int8
    /// emulated; `auto` resolves to a native one or f32).
    pub fn is_native(self) -> bool {
        match self {
            Precision::F32 | Precision::Auto => true,
            Precision::Bf16 => {
                crate::bf16::Kernel::detect().is_ok_and(|k| k != crate::bf16::Kernel::Emulated)
            }
            Precision::Int8 => {
                crate::int8::Kernel::detect().is_ok_and(|k| k != crate::int8::Kernel::Emulated)
            }
        }
    }

    /// The kernel the projections run on here: `f32` (the gemm crate's), for bf16 `amx`,
    /// `avx512` or `emulated` (see [`crate::BF16_KERNEL_ENV`]), for int8 `amx`, `vnni` or
    /// `emulated` (see [`crate::INT8_KERNEL_ENV`]); `unavailable` when the environment names a
    /// kernel this CPU cannot run; `auto` before it is resolved.
    pub fn kernel(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => crate::bf16::Kernel::detect().map_or("unavailable", |k| k.name()),
            Precision::Int8 => crate::int8::Kernel::detect().map_or("unavailable", |k| k.name()),
            Precision::Auto => "auto",
        }
    }
}

/// The kernel a product family runs on: the one `env` names (refused when unknown or when this
/// CPU cannot run it), else the first of `kernels` (fastest first) that runs here. For the
/// `detect` of `bf16` and `int8`, which cache the answer.
pub(crate) fn pick_kernel<K: Copy>(
    env: &str,
    kernels: &[K],
    name: impl Fn(K) -> &'static str,
    runs_here: impl Fn(K) -> bool,
) -> Result<K, String> {
    match std::env::var(env).ok().as_deref() {
        None | Some("") => kernels
            .iter()
            .copied()
            .find(|&k| runs_here(k))
            .ok_or_else(|| format!("no kernel of {env} runs here")),
        Some(wanted) => {
            let Some(&k) = kernels.iter().find(|&&k| name(k) == wanted) else {
                let names: Vec<&str> = kernels.iter().map(|&k| name(k)).collect();
                return Err(format!("{env}={wanted:?}: expected {}", names.join(", ")));
            };
            if runs_here(k) {
                Ok(k)
            } else {
                Err(format!("{env}={wanted}: this CPU cannot run it"))
            }
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Precision {
    type Err = EmbedError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "f32" => Ok(Precision::F32),
            "bf16" => Ok(Precision::Bf16),
            "int8" => Ok(Precision::Int8),
            "auto" => Ok(Precision::Auto),
            other => Err(EmbedError::InvalidArgument(format!(
                "unknown precision {other:?} (expected auto, f32, bf16 or int8)"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The environment names a kernel, or the fastest that runs is taken; an unknown name and
    /// one that cannot run are refused naming the variable.
    #[test]
    fn pick_kernel_follows_the_environment() {
        const ENV: &str = "SEXTANT_TEST_PICK_KERNEL";
        let ks = [1, 2, 3];
        let name = |k: i32| ["fast", "slow", "always"][k as usize - 1];
        let runs = |k: i32| k != 1;
        std::env::remove_var(ENV);
        assert_eq!(pick_kernel(ENV, &ks, name, runs), Ok(2));
        std::env::set_var(ENV, "always");
        assert_eq!(pick_kernel(ENV, &ks, name, runs), Ok(3));
        std::env::set_var(ENV, "fast");
        let e = pick_kernel(ENV, &ks, name, runs).unwrap_err();
        assert!(e.contains("cannot run"), "{e}");
        std::env::set_var(ENV, "turbo");
        let e = pick_kernel(ENV, &ks, name, runs).unwrap_err();
        assert!(e.contains(ENV) && e.contains("fast, slow, always"), "{e}");
        std::env::remove_var(ENV);
    }

    #[test]
    fn names_round_trip() {
        for p in [
            Precision::F32,
            Precision::Bf16,
            Precision::Int8,
            Precision::Auto,
        ] {
            assert_eq!(p.to_string().parse::<Precision>().unwrap(), p);
        }
        assert!("fp16".parse::<Precision>().is_err());
        assert_eq!(Precision::default(), DEFAULT_PRECISION);
    }
}
