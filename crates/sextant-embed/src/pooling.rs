//! Pooling token states into one vector, normalisation and Matryoshka truncation.
//!
//! Pooling runs on tensors (so that it stays on the device when a GPU backend arrives) and
//! follows sentence-transformers exactly: mean divides by the clamped token count, max replaces
//! padded positions by a large negative number first. Normalisation reuses
//! [`sextant_core::l2_normalize_in_place`], which leaves a zero vector at zero instead of NaN.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Tensor, D};
use serde::{Deserialize, Serialize};

use crate::EmbedError;

/// Value given to padded positions before max pooling (as sentence-transformers does).
const MAX_POOL_PAD: f64 = -1e9;
/// Lower bound of the token count in mean pooling (as sentence-transformers does).
const MEAN_MIN_COUNT: f64 = 1e-9;

/// How token states become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Average of the non-padding token states.
    Mean,
    /// The state of the first (`[CLS]`) token.
    Cls,
    /// Component-wise maximum over the non-padding token states.
    Max,
    /// Sum of the token states divided by the square root of their count.
    MeanSqrtLen,
}

impl Pooling {
    /// Stable lowercase name, as written in fingerprints and accepted by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Max => "max",
            Pooling::MeanSqrtLen => "mean_sqrt_len",
        }
    }

    /// Pools `hidden` `[batch, seq, dim]` with `mask` `[batch, seq]` (1 for real tokens, 0 for
    /// padding, f32) into `[batch, dim]`.
    pub fn apply(self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor, EmbedError> {
        let m = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?;
        let out = match self {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean | Pooling::MeanSqrtLen => {
                let sum = hidden.broadcast_mul(&m)?.sum(1)?;
                let count = m.sum(1)?.to_dtype(DType::F32)?;
                let count = count.clamp(MEAN_MIN_COUNT, f64::MAX)?;
                let count = if self == Pooling::Mean {
                    count
                } else {
                    count.sqrt()?
                };
                sum.broadcast_div(&count.to_dtype(hidden.dtype())?)?
            }
            Pooling::Max => {
                let pad = ((1.0 - &m)? * MAX_POOL_PAD)?;
                hidden.broadcast_mul(&m)?.broadcast_add(&pad)?.max(1)?
            }
        };
        Ok(out)
    }
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Pooling {
    type Err = EmbedError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "mean" => Ok(Pooling::Mean),
            "cls" => Ok(Pooling::Cls),
            "max" => Ok(Pooling::Max),
            "mean_sqrt_len" | "mean-sqrt-len" => Ok(Pooling::MeanSqrtLen),
            other => Err(EmbedError::InvalidArgument(format!(
                "unknown pooling {other:?} (expected mean, cls, max or mean_sqrt_len)"
            ))),
        }
    }
}

/// Keeps the first `dim` components (Matryoshka truncation) and, when `normalize`, rescales to
/// unit length. `dim` larger than the vector keeps it whole.
pub fn truncate_and_normalize(v: &mut Vec<f32>, dim: Option<usize>, normalize: bool) {
    if let Some(d) = dim {
        v.truncate(d);
    }
    if normalize {
        sextant_core::l2_normalize_in_place(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn setup() -> (Tensor, Tensor) {
        // batch 2, seq 3, dim 2; second row has one padded position.
        let h = Tensor::new(
            &[
                [[1f32, 2.], [3., 4.], [5., 6.]],
                [[-1f32, 0.], [-3., 8.], [100., 100.]],
            ],
            &Device::Cpu,
        )
        .unwrap();
        let m = Tensor::new(&[[1f32, 1., 1.], [1., 1., 0.]], &Device::Cpu).unwrap();
        (h, m)
    }

    #[test]
    fn mean_ignores_padding() {
        let (h, m) = setup();
        let p = Pooling::Mean
            .apply(&h, &m)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(p, vec![vec![3., 4.], vec![-2., 4.]]);
    }

    #[test]
    fn max_ignores_padding() {
        let (h, m) = setup();
        let p = Pooling::Max
            .apply(&h, &m)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(p, vec![vec![5., 6.], vec![-1., 8.]]);
    }

    #[test]
    fn cls_takes_first_token() {
        let (h, m) = setup();
        let p = Pooling::Cls
            .apply(&h, &m)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(p, vec![vec![1., 2.], vec![-1., 0.]]);
    }

    #[test]
    fn mean_sqrt_len_divides_by_root_count() {
        let (h, m) = setup();
        let p = Pooling::MeanSqrtLen
            .apply(&h, &m)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        let r2 = 2f32.sqrt();
        assert!((p[1][0] + 4. / r2).abs() < 1e-6 && (p[1][1] - 8. / r2).abs() < 1e-6);
    }

    #[test]
    fn matryoshka_renormalises_and_zero_stays_zero() {
        let mut v = vec![3.0, 4.0, 12.0];
        truncate_and_normalize(&mut v, Some(2), true);
        assert_eq!(v.len(), 2);
        assert!((v[0] - 0.6).abs() < 1e-7 && (v[1] - 0.8).abs() < 1e-7);
        let mut z = vec![0.0; 4];
        truncate_and_normalize(&mut z, Some(8), true);
        assert!(z.iter().all(|x| *x == 0.0));
    }

    #[test]
    fn names_round_trip() {
        for p in [
            Pooling::Mean,
            Pooling::Cls,
            Pooling::Max,
            Pooling::MeanSqrtLen,
        ] {
            assert_eq!(p.as_str().parse::<Pooling>().unwrap(), p);
        }
        assert!("sum".parse::<Pooling>().is_err());
    }
}
