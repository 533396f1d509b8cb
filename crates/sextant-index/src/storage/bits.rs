//! Packed binary vectors: the walk storage of the binary metrics (hamming, jaccard). One bit
//! per component, 64 to a word, and each vector's count of ones. Distances are exact, by
//! popcount: Hamming is `popcount(a ⊕ b)`; with `h` that count and `|a|`, `|b|` the ones,
//! `|a ∧ b| = (|a| + |b| − h) / 2` and `|a ∨ b| = (|a| + |b| + h) / 2`, so the Jaccard distance
//! is `2h / (|a| + |b| + h)` (0 for two empty sets) — the same float the f32 kernel gives, as
//! both divide the same two integers. A graph walks these instead of the f32 vectors: 1/32 of
//! the bytes, so the f32 vectors may stay on disk.

use sextant_core::Metric;

use crate::distance::{kernels, HammingKernel};
use crate::storage::{prefetch_read, DenseVectors, VectorStorage};

/// Packed bits of a [`DenseVectors`] store of a binary metric.
#[derive(Clone)]
pub struct BitVectors {
    jaccard: bool,
    /// Words per vector.
    words: usize,
    bits: Vec<u64>,
    ones: Vec<u32>,
    hamming: HammingKernel,
}

impl std::fmt::Debug for BitVectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BitVectors")
            .field("words", &self.words)
            .field("len", &self.ones.len())
            .finish()
    }
}

/// A query packed like the stored vectors.
#[derive(Debug, Clone)]
pub struct BitQuery {
    words: Vec<u64>,
    ones: u32,
}

impl BitVectors {
    /// Whether `metric` ranks binary vectors (hamming, jaccard).
    pub fn supports(metric: Metric) -> bool {
        metric.is_binary()
    }

    /// Packs every vector of `vectors` (validated binary on the way in); `None` unless the
    /// metric is binary.
    pub fn from_vectors(vectors: &DenseVectors) -> Option<Self> {
        let metric = vectors.metric();
        if !Self::supports(metric) {
            return None;
        }
        let words = vectors.dim().div_ceil(64);
        let mut out = BitVectors {
            jaccard: metric == Metric::Jaccard,
            words,
            bits: Vec::with_capacity(vectors.len() * words),
            ones: Vec::with_capacity(vectors.len()),
            hamming: kernels().hamming,
        };
        for id in 0..vectors.len() as u32 {
            out.push(vectors.get(id).expect("in range"));
        }
        Some(out)
    }

    /// Appends a vector (its components 0 or 1; any non-zero reads as 1).
    pub fn push(&mut self, v: &[f32]) {
        let (words, ones) = self.pack(v);
        self.bits.extend_from_slice(&words);
        self.ones.push(ones);
    }

    fn pack(&self, v: &[f32]) -> (Vec<u64>, u32) {
        let mut words = vec![0u64; self.words];
        for (i, _) in v.iter().enumerate().filter(|(_, x)| **x != 0.0) {
            words[i / 64] |= 1 << (i % 64);
        }
        let ones = words.iter().map(|w| w.count_ones()).sum();
        (words, ones)
    }

    fn words_of(&self, id: u32) -> &[u64] {
        let start = id as usize * self.words;
        &self.bits[start..start + self.words]
    }

    #[inline(always)]
    fn combine(&self, h: u32, a: u32, b: u32) -> f32 {
        if !self.jaccard {
            return h as f32;
        }
        let all = a + b + h;
        if all == 0 {
            0.0
        } else {
            (2 * h) as f32 / all as f32
        }
    }
}

impl VectorStorage for BitVectors {
    type Query = BitQuery;

    fn len(&self) -> usize {
        self.ones.len()
    }

    fn prepare(&self, query: &[f32]) -> BitQuery {
        let (words, ones) = self.pack(query);
        BitQuery { words, ones }
    }

    fn prepare_stored(&self, id: u32) -> BitQuery {
        BitQuery {
            words: self.words_of(id).to_vec(),
            ones: self.ones[id as usize],
        }
    }

    #[inline(always)]
    fn distance(&self, query: &BitQuery, id: u32) -> f32 {
        let h = (self.hamming)(&query.words, self.words_of(id));
        self.combine(h, query.ones, self.ones[id as usize])
    }

    fn distance_between(&self, a: u32, b: u32) -> f32 {
        let h = (self.hamming)(self.words_of(a), self.words_of(b));
        self.combine(h, self.ones[a as usize], self.ones[b as usize])
    }

    #[inline(always)]
    fn prefetch(&self, id: u32) {
        if let Some(w) = self.bits.get(id as usize * self.words) {
            prefetch_read(std::ptr::from_ref(w).cast());
        }
    }

    fn memory_bytes(&self) -> usize {
        self.bits.capacity() * 8 + self.ones.capacity() * 4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Packed distances equal the f32 kernels' exactly, for both metrics, across word
    /// boundaries and for empty vectors.
    #[test]
    fn packed_distances_equal_the_f32_kernels() {
        let mut x = 0x2545_f491_u32;
        let mut bit = |p: u32| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            f32::from(u8::from(x % 100 < p))
        };
        for dim in [1, 63, 64, 65, 130] {
            for metric in [Metric::Hamming, Metric::Jaccard] {
                let rows: Vec<f32> = (0..40 * dim)
                    .map(|i| if i < dim { 0.0 } else { bit(30) })
                    .collect();
                let v = DenseVectors::from_rows(metric, dim, &rows).unwrap();
                let packed = BitVectors::from_vectors(&v).unwrap();
                let exact = kernels().distance(metric.kernel());
                for a in 0..40u32 {
                    let q = packed.prepare(v.get(a).unwrap());
                    for b in 0..40u32 {
                        let want = exact(v.get(a).unwrap(), v.get(b).unwrap());
                        assert_eq!(packed.distance(&q, b), want, "{metric} dim {dim}");
                        assert_eq!(packed.distance_between(a, b), want, "{metric} dim {dim}");
                    }
                }
            }
        }
        let l2 = DenseVectors::from_rows(Metric::L2, 2, &[0.5, 1.0]).unwrap();
        assert!(BitVectors::from_vectors(&l2).is_none());
    }
}
