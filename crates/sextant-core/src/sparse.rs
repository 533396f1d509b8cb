//! Sparse vectors: (dimension, weight) pairs, as SPLADE produces them, and term counts, as
//! BM25 produces them.
//!
//! A BM25 space's terms travel as text ([`TermCounts`]) through the write-ahead log and into a
//! segment, which numbers them in its own term dictionary: term identity is the term itself,
//! so two distinct terms never share postings (a hash of the term would merge colliding terms).

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

/// A text's term counts for BM25: distinct terms in increasing byte order, each with its
/// frequency (finite, positive), and the text's length in terms.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TermCounts {
    /// (term, frequency), terms strictly increasing.
    pub terms: Vec<(String, f32)>,
    /// Number of terms in the text (repeats counted).
    pub len: f32,
}

/// One point's entry in one sparse space.
#[derive(Debug, Clone, PartialEq)]
pub enum SparseDoc {
    /// Non-negative weights by vocabulary index, scored by dot product (learned sparse
    /// encoders). Also how data written before term dictionaries carries BM25 terms: as their
    /// 32-bit hashes (see [`legacy_term`]).
    Weights(SparseVector),
    /// Term counts of a text (BM25 spaces).
    Terms(TermCounts),
}

impl Default for SparseDoc {
    /// Nothing (an empty weight vector).
    fn default() -> Self {
        SparseDoc::Weights(SparseVector::default())
    }
}

/// The term that stands for a BM25 term id of format version 1 (a 32-bit FNV-1a hash, the term
/// text unknown): `U+0001` and eight hex digits. No analyzer emits a control character, so
/// these never meet a real term; collections written before term dictionaries keep their
/// hashed identity (and its collisions) through them.
pub fn legacy_term(id: u32) -> String {
    format!("\u{1}{id:08x}")
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
