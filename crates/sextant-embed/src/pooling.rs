//! Pooling token states into one vector, normalisation and Matryoshka truncation.
//!
//! Pooling runs on tensors (so that it stays on the device when a GPU backend arrives) and
//! follows sentence-transformers' `Pooling` module exactly, one mode per model: mean divides by
//! the clamped token count, max replaces padded positions by a large negative number first,
//! weighted mean weighs position `i` (from 1) by `i`, last token takes the state of the last
//! position the mask keeps (`[SEP]` for BERT). Normalisation reuses
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
    /// Average of the non-padding token states weighted by their position (1, 2, ...).
    WeightedMean,
    /// The state of the last non-padding token.
    LastToken,
}

/// Every pooling, in the order sentence-transformers concatenates them.
pub const ALL_POOLINGS: [Pooling; 6] = [
    Pooling::Cls,
    Pooling::Max,
    Pooling::Mean,
    Pooling::MeanSqrtLen,
    Pooling::WeightedMean,
    Pooling::LastToken,
];

impl Pooling {
    /// Stable lowercase name, as written in fingerprints and accepted by [`FromStr`].
    pub fn as_str(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Max => "max",
            Pooling::MeanSqrtLen => "mean_sqrt_len",
            Pooling::WeightedMean => "weighted_mean",
            Pooling::LastToken => "last_token",
        }
    }

    /// The name of this pooling in sentence-transformers' `pooling_mode` (release 6 on).
    pub fn st_name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Max => "max",
            Pooling::MeanSqrtLen => "mean_sqrt_len_tokens",
            Pooling::WeightedMean => "weightedmean",
            Pooling::LastToken => "lasttoken",
        }
    }

    /// The legacy flag of sentence-transformers' `1_Pooling/config.json` that selects this
    /// pooling (releases before 6).
    pub fn st_flag(self) -> &'static str {
        match self {
            Pooling::Mean => "pooling_mode_mean_tokens",
            Pooling::Cls => "pooling_mode_cls_token",
            Pooling::Max => "pooling_mode_max_tokens",
            Pooling::MeanSqrtLen => "pooling_mode_mean_sqrt_len_tokens",
            Pooling::WeightedMean => "pooling_mode_weightedmean_tokens",
            Pooling::LastToken => "pooling_mode_lasttoken",
        }
    }

    /// Pools `hidden` `[batch, seq, dim]` with `mask` `[batch, seq]` (1 for the tokens to pool,
    /// 0 for padding and left-out prompt tokens, f32) into `[batch, dim]`. CLS takes the first
    /// position the mask keeps (position 0 unless prompt tokens are left out), as
    /// sentence-transformers 6 does.
    pub fn apply(self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor, EmbedError> {
        let m = mask.to_dtype(hidden.dtype())?.unsqueeze(D::Minus1)?;
        let out = match self {
            Pooling::Cls => kept_position(hidden, mask, false)?,
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
            Pooling::WeightedMean => {
                let seq = hidden.dim(1)?;
                let positions = Tensor::arange(1f32, seq as f32 + 1.0, hidden.device())?
                    .to_dtype(hidden.dtype())?
                    .reshape((1, seq, 1))?;
                let w = m.broadcast_mul(&positions)?;
                let sum = hidden.broadcast_mul(&w)?.sum(1)?;
                let total = w.sum(1)?.clamp(MEAN_MIN_COUNT, f64::MAX)?;
                sum.broadcast_div(&total)?
            }
            Pooling::LastToken => kept_position(hidden, mask, true)?,
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
            "weighted_mean" | "weighted-mean" | "weightedmean" => Ok(Pooling::WeightedMean),
            "last_token" | "last-token" | "lasttoken" => Ok(Pooling::LastToken),
            other => Err(EmbedError::InvalidArgument(format!(
                "unknown pooling {other:?} (expected mean, cls, max, mean_sqrt_len, \
                 weighted_mean or last_token)"
            ))),
        }
    }
}

/// The state at the first (CLS) or last (last token) position `mask` keeps, per row. A row
/// whose mask keeps nothing takes position 0 for CLS and zeros for the last token, as
/// sentence-transformers does (its last token is multiplied by the mask).
fn kept_position(hidden: &Tensor, mask: &Tensor, last: bool) -> Result<Tensor, EmbedError> {
    let (batch, seq, _) = hidden.dims3()?;
    let rows = mask.to_dtype(DType::F32)?.to_vec2::<f32>()?;
    let mut index = Vec::with_capacity(batch);
    let mut keep = Vec::with_capacity(batch);
    for (b, row) in rows.iter().enumerate() {
        let found = if last {
            row.iter().rposition(|&x| x != 0.0)
        } else {
            row.iter().position(|&x| x != 0.0)
        };
        let fallback = if last { seq - 1 } else { 0 };
        index.push((b * seq + found.unwrap_or(fallback)) as u32);
        keep.push(if found.is_some() || !last { 1f32 } else { 0.0 });
    }
    let index = Tensor::from_vec(index, batch, hidden.device())?;
    let keep = Tensor::from_vec(keep, (batch, 1), hidden.device())?.to_dtype(hidden.dtype())?;
    let flat = hidden.flatten_to(1)?;
    Ok(flat.index_select(&index, 0)?.broadcast_mul(&keep)?)
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
    fn weighted_mean_weighs_by_position() {
        let (h, m) = setup();
        let p = Pooling::WeightedMean
            .apply(&h, &m)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        // Row 0: (1·1 + 2·3 + 3·5) / 6, (1·2 + 2·4 + 3·6) / 6; row 1 drops the padded position.
        let want = [[22. / 6., 28. / 6.], [-7. / 3., 16. / 3.]];
        for (got, want) in p.iter().zip(want) {
            for (g, w) in got.iter().zip(want) {
                assert!((g - w).abs() < 1e-6, "{p:?}");
            }
        }
    }

    #[test]
    fn last_token_is_the_last_kept_position() {
        let (h, m) = setup();
        let p = Pooling::LastToken
            .apply(&h, &m)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(p, vec![vec![5., 6.], vec![-3., 8.]]);
        let none = Tensor::new(&[[1f32, 1., 1.], [0., 0., 0.]], &Device::Cpu).unwrap();
        let p = Pooling::LastToken
            .apply(&h, &none)
            .unwrap()
            .to_vec2::<f32>()
            .unwrap();
        assert_eq!(p[1], vec![0., 0.]);
    }

    #[test]
    fn names_round_trip() {
        for p in ALL_POOLINGS {
            assert_eq!(p.as_str().parse::<Pooling>().unwrap(), p);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
        assert!("sum".parse::<Pooling>().is_err());
    }
}
