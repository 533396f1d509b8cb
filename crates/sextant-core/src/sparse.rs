//! Sparse vectors: (dimension, weight) pairs, as BM25 and SPLADE produce them.

use crate::VectorError;

/// A sparse vector: strictly increasing `indices` with one finite `values` entry each.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SparseVector {
    /// Dimensions (term ids), strictly increasing.
    pub indices: Vec<u32>,
    /// Weights, one per index.
    pub values: Vec<f32>,
}

impl SparseVector {
    /// Builds a sparse vector from unsorted pairs; weights of repeated indices are summed.
    /// Fails on NaN or infinite weights.
    pub fn from_pairs(mut pairs: Vec<(u32, f32)>) -> Result<SparseVector, VectorError> {
        if let Some((position, &(_, value))) =
            pairs.iter().enumerate().find(|(_, (_, v))| !v.is_finite())
        {
            return Err(VectorError::NonFinite { position, value });
        }
        pairs.sort_unstable_by_key(|p| p.0);
        let mut out = SparseVector::default();
        for (i, v) in pairs {
            match out.indices.last() {
                Some(&last) if last == i => *out.values.last_mut().expect("same length") += v,
                _ => {
                    out.indices.push(i);
                    out.values.push(v);
                }
            }
        }
        Ok(out)
    }

    /// Number of non-zero entries stored.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Dot product with another sparse vector (merge of the two index lists).
    pub fn dot(&self, other: &SparseVector) -> f32 {
        let (mut i, mut j, mut sum) = (0, 0, 0.0f32);
        while i < self.indices.len() && j < other.indices.len() {
            match self.indices[i].cmp(&other.indices[j]) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    sum += self.values[i] * other.values[j];
                    i += 1;
                    j += 1;
                }
            }
        }
        sum
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_sorted_and_merged() {
        let v = SparseVector::from_pairs(vec![(5, 1.0), (2, 0.5), (5, 2.0)]).unwrap();
        assert_eq!((v.indices, v.values), (vec![2, 5], vec![0.5, 3.0]));
        assert!(SparseVector::from_pairs(vec![(1, f32::NAN)]).is_err());
        let a = SparseVector::from_pairs(vec![(1, 2.0), (3, 1.0)]).unwrap();
        let b = SparseVector::from_pairs(vec![(3, 4.0), (7, 1.0)]).unwrap();
        assert_eq!(a.dot(&b), 4.0);
    }
}
