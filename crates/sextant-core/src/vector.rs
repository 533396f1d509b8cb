//! Validation and normalisation of user vectors.

use crate::{Metric, VectorError};

/// Checks that `v` has `expected` components, none of them NaN or infinite.
///
/// ```
/// use sextant_core::{validate_vector, VectorError};
/// assert!(validate_vector(&[1.0, 2.0], 2).is_ok());
/// assert!(matches!(validate_vector(&[1.0], 2), Err(VectorError::DimensionMismatch { .. })));
/// assert!(matches!(validate_vector(&[f32::NAN, 0.0], 2), Err(VectorError::NonFinite { .. })));
/// ```
pub fn validate_vector(v: &[f32], expected: usize) -> Result<(), VectorError> {
    if v.is_empty() {
        return Err(VectorError::Empty);
    }
    if v.len() != expected {
        return Err(VectorError::DimensionMismatch {
            expected,
            got: v.len(),
        });
    }
    match v.iter().position(|x| !x.is_finite()) {
        Some(position) => Err(VectorError::NonFinite {
            position,
            value: v[position],
        }),
        None => Ok(()),
    }
}

/// [`validate_vector`], and for a binary metric ([`Metric::is_binary`]) every component 0 or 1.
///
/// ```
/// use sextant_core::{validate_vector_for, Metric, VectorError};
/// assert!(validate_vector_for(&[1.0, 0.0], 2, Metric::Hamming).is_ok());
/// assert!(matches!(
///     validate_vector_for(&[1.0, 0.5], 2, Metric::Jaccard),
///     Err(VectorError::NotBinary { position: 1, .. })
/// ));
/// assert!(validate_vector_for(&[1.0, 0.5], 2, Metric::L2).is_ok());
/// ```
pub fn validate_vector_for(v: &[f32], expected: usize, metric: Metric) -> Result<(), VectorError> {
    validate_vector(v, expected)?;
    if metric.is_binary() {
        if let Some(position) = v.iter().position(|&x| x != 0.0 && x != 1.0) {
            return Err(VectorError::NotBinary {
                position,
                value: v[position],
                metric,
            });
        }
    }
    Ok(())
}

/// Scales `v` to unit L2 norm. The zero vector (and any vector whose norm underflows to zero)
/// is left unchanged instead of becoming NaN: its cosine similarity to anything is then 0.
///
/// The norm is accumulated in f64 so that very long or very small vectors do not lose precision.
pub fn l2_normalize_in_place(v: &mut [f32]) {
    let norm_sq: f64 = v.iter().map(|&x| f64::from(x) * f64::from(x)).sum();
    let norm = norm_sq.sqrt();
    if norm > 0.0 && norm.is_finite() {
        let inv = (1.0 / norm) as f32;
        if inv.is_finite() {
            v.iter_mut().for_each(|x| *x *= inv);
        } else {
            // Tiny norms: divide in f64 to avoid an infinite reciprocal.
            v.iter_mut()
                .for_each(|x| *x = (f64::from(*x) / norm) as f32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_vector_stays_zero() {
        let mut v = vec![0.0f32; 8];
        l2_normalize_in_place(&mut v);
        assert!(v.iter().all(|&x| x == 0.0));
    }

    #[test]
    fn normalises_to_unit_length() {
        let mut v = vec![3.0f32, 4.0];
        l2_normalize_in_place(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-7 && (v[1] - 0.8).abs() < 1e-7);
    }

    #[test]
    fn tiny_vectors_normalise_without_overflow() {
        let mut v = vec![1e-40f32, 0.0];
        l2_normalize_in_place(&mut v);
        assert!((v[0] - 1.0).abs() < 1e-6, "{v:?}");
    }

    #[test]
    fn empty_vector_is_rejected() {
        assert_eq!(validate_vector(&[], 0), Err(VectorError::Empty));
    }
}
