//! Vector storage and the scorer interface the index structures use to compare vectors.
//!
//! Graphs never touch vector bytes directly: they ask a [`VectorStorage`] for distances, so the
//! same HNSW can later run over f32, SQ8, PQ or memory-mapped vectors.
//!
//! [`DenseVectors`] keeps f32 vectors in one contiguous, 64-byte aligned allocation, each padded
//! with zeros to a multiple of 16 components. Zero padding changes no dot product, L2 or L1
//! distance, and in exchange every vector starts on a cache line and the SIMD kernels never run a
//! tail loop.

mod sq8;

pub use sq8::{Sq8Query, Sq8Vectors};

use bytemuck::{Pod, Zeroable};
use sextant_core::{l2_normalize_in_place, validate_vector, Metric};

use crate::distance::{kernels, F32Kernel};
use crate::IndexError;

/// What a graph index needs from the vectors it links: distances and a prefetch hint.
pub trait VectorStorage: Send + Sync {
    /// A query prepared for fast repeated scoring against stored vectors.
    type Query: Send + Sync;

    /// Number of stored vectors.
    fn len(&self) -> usize;

    /// Whether no vector is stored.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Prepares an already validated and preprocessed (normalised for cosine) query.
    fn prepare(&self, query: &[f32]) -> Self::Query;

    /// Prepares stored vector `id` as a query (used while building a graph).
    fn prepare_stored(&self, id: u32) -> Self::Query;

    /// Internal distance (smaller is closer) from a prepared query to stored vector `id`.
    fn distance(&self, query: &Self::Query, id: u32) -> f32;

    /// Internal distance between two stored vectors.
    fn distance_between(&self, a: u32, b: u32) -> f32;

    /// Hints the CPU to start loading vector `id`; never faults.
    fn prefetch(&self, id: u32);

    /// Heap memory held, in bytes.
    fn memory_bytes(&self) -> usize;
}

/// One cache line of f32 components; the unit of allocation of [`DenseVectors`].
#[repr(C, align(64))]
#[derive(Clone, Copy, Pod, Zeroable)]
struct Line([f32; LANES]);

const LANES: usize = 16;

/// Contiguous f32 vectors of one dimension and metric, preprocessed for that metric.
#[derive(Clone)]
pub struct DenseVectors {
    metric: Metric,
    dim: usize,
    lines_per_vector: usize,
    data: Vec<Line>,
    len: usize,
    kernel: F32Kernel,
}

impl std::fmt::Debug for DenseVectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DenseVectors")
            .field("metric", &self.metric)
            .field("dim", &self.dim)
            .field("len", &self.len)
            .finish()
    }
}

/// A prepared f32 query: preprocessed and zero-padded like stored vectors.
#[derive(Debug, Clone)]
pub struct DenseQuery {
    padded: Vec<f32>,
}

impl DenseQuery {
    /// The preprocessed components, without the zero padding.
    pub(crate) fn values(&self, dim: usize) -> &[f32] {
        &self.padded[..dim]
    }
}

impl DenseVectors {
    /// An empty store for `dim`-dimensional vectors compared by `metric`.
    pub fn new(metric: Metric, dim: usize) -> Result<Self, IndexError> {
        if dim == 0 {
            return Err(IndexError::param("dim", "must be at least 1"));
        }
        Ok(DenseVectors {
            metric,
            dim,
            lines_per_vector: dim.div_ceil(LANES),
            data: Vec::new(),
            len: 0,
            kernel: kernels().distance(metric.kernel()),
        })
    }

    /// The metric vectors are compared by.
    pub fn metric(&self) -> Metric {
        self.metric
    }

    /// Number of components of each vector.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Reserves room for `additional` more vectors.
    pub fn reserve(&mut self, additional: usize) {
        self.data.reserve(additional * self.lines_per_vector);
    }

    /// Validates `v` (dimension, finite values), preprocesses it for the metric and returns the
    /// padded copy used for comparisons.
    pub fn preprocess(&self, v: &[f32]) -> Result<Vec<f32>, IndexError> {
        validate_vector(v, self.dim)?;
        let mut padded = vec![0.0; self.lines_per_vector * LANES];
        padded[..self.dim].copy_from_slice(v);
        if self.metric.normalizes() {
            l2_normalize_in_place(&mut padded[..self.dim]);
        }
        Ok(padded)
    }

    /// Validates and preprocesses a user query into the form searches score with.
    pub fn query(&self, v: &[f32]) -> Result<DenseQuery, IndexError> {
        Ok(DenseQuery {
            padded: self.preprocess(v)?,
        })
    }

    /// Validates, preprocesses and appends `v`; returns its offset.
    pub fn push(&mut self, v: &[f32]) -> Result<u32, IndexError> {
        let padded = self.preprocess(v)?;
        self.push_padded(&padded)
    }

    fn push_padded(&mut self, padded: &[f32]) -> Result<u32, IndexError> {
        let id = u32::try_from(self.len)
            .ok()
            .filter(|&id| id < u32::MAX)
            .ok_or(IndexError::CapacityExceeded {
                max: u64::from(u32::MAX),
            })?;
        self.data.extend(
            padded
                .chunks_exact(LANES)
                .map(|c| Line(c.try_into().expect("16"))),
        );
        self.len += 1;
        Ok(id)
    }

    /// Builds a store from `n` row-major vectors in `flat` (`flat.len() == n * dim`).
    pub fn from_rows(metric: Metric, dim: usize, flat: &[f32]) -> Result<Self, IndexError> {
        let mut s = DenseVectors::new(metric, dim)?;
        if !flat.len().is_multiple_of(dim) {
            return Err(IndexError::param(
                "vectors",
                format!("{} values is not a multiple of dimension {dim}", flat.len()),
            ));
        }
        s.reserve(flat.len() / dim);
        for row in flat.chunks_exact(dim) {
            s.push(row)?;
        }
        Ok(s)
    }

    /// The stored (preprocessed) vector `id`, without padding.
    pub fn get(&self, id: u32) -> Option<&[f32]> {
        let id = id as usize;
        (id < self.len).then(|| &self.padded(id)[..self.dim])
    }

    #[inline(always)]
    fn padded(&self, id: usize) -> &[f32] {
        let start = id * self.lines_per_vector;
        bytemuck::cast_slice(&self.data[start..start + self.lines_per_vector])
    }

    pub(crate) fn serialize_into(&self, w: &mut crate::bytes::Writer) {
        for id in 0..self.len {
            w.f32s(&self.padded(id)[..self.dim]);
        }
    }

    pub(crate) fn deserialize_from(
        r: &mut crate::bytes::Reader<'_>,
        metric: Metric,
        dim: usize,
        len: usize,
    ) -> Result<Self, IndexError> {
        let mut s = DenseVectors::new(metric, dim)?;
        let values: Vec<f32> = r
            .f32s(len.checked_mul(dim).ok_or_else(|| {
                IndexError::Corrupt(format!("{len} vectors of dimension {dim} overflow"))
            })?)?
            .collect();
        s.reserve(len);
        let mut padded = vec![0.0; s.lines_per_vector * LANES];
        for row in values.chunks_exact(dim) {
            if let Some(p) = row.iter().position(|x| !x.is_finite()) {
                return Err(IndexError::Corrupt(format!(
                    "stored vector has non-finite value at {p}"
                )));
            }
            padded[..dim].copy_from_slice(row);
            s.push_padded(&padded)?;
        }
        Ok(s)
    }

    /// Internal distance between a padded query and stored vector `id`.
    #[inline(always)]
    pub(crate) fn distance_padded(&self, padded_query: &[f32], id: u32) -> f32 {
        (self.kernel)(padded_query, self.padded(id as usize))
    }
}

impl VectorStorage for DenseVectors {
    type Query = DenseQuery;

    fn len(&self) -> usize {
        self.len
    }

    fn prepare(&self, query: &[f32]) -> DenseQuery {
        let mut padded = vec![0.0; self.lines_per_vector * LANES];
        padded[..query.len().min(self.dim)].copy_from_slice(&query[..query.len().min(self.dim)]);
        DenseQuery { padded }
    }

    fn prepare_stored(&self, id: u32) -> DenseQuery {
        DenseQuery {
            padded: self.padded(id as usize).to_vec(),
        }
    }

    #[inline(always)]
    fn distance(&self, query: &DenseQuery, id: u32) -> f32 {
        self.distance_padded(&query.padded, id)
    }

    #[inline(always)]
    fn distance_between(&self, a: u32, b: u32) -> f32 {
        (self.kernel)(self.padded(a as usize), self.padded(b as usize))
    }

    #[inline(always)]
    fn prefetch(&self, id: u32) {
        let start = id as usize * self.lines_per_vector;
        // Most of a vector's lines are fetched by the hardware prefetcher once the first few are
        // touched; asking for more than four costs more instructions than it saves.
        for line in self
            .data
            .get(start..start + self.lines_per_vector.min(4))
            .into_iter()
            .flatten()
        {
            prefetch_read(std::ptr::from_ref(line).cast());
        }
    }

    fn memory_bytes(&self) -> usize {
        self.data.capacity() * std::mem::size_of::<Line>()
    }
}

/// Issues a read prefetch for the cache line holding `ptr`.
#[inline(always)]
pub(crate) fn prefetch_read(ptr: *const i8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetch is a hint; it never faults and does not dereference in the Rust sense.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(ptr);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_does_not_change_distances() {
        let mut s = DenseVectors::new(Metric::L2, 3).unwrap();
        s.push(&[1.0, 2.0, 3.0]).unwrap();
        s.push(&[4.0, 6.0, 3.0]).unwrap();
        assert_eq!(s.distance_between(0, 1), 25.0);
        let q = s.prepare(&[1.0, 2.0, 3.0]);
        assert_eq!(s.distance(&q, 1), 25.0);
        assert_eq!(s.get(1), Some(&[4.0, 6.0, 3.0][..]));
        assert_eq!(s.get(2), None);
    }

    #[test]
    fn cosine_normalises_on_insert() {
        let mut s = DenseVectors::new(Metric::Cosine, 2).unwrap();
        s.push(&[3.0, 4.0]).unwrap();
        s.push(&[0.0, 0.0]).unwrap();
        assert_eq!(s.get(0), Some(&[0.6, 0.8][..]));
        assert_eq!(
            s.distance_between(0, 1),
            0.0,
            "zero vector is similarity 0, never NaN"
        );
    }

    #[test]
    fn rejects_bad_vectors() {
        let mut s = DenseVectors::new(Metric::Dot, 2).unwrap();
        assert!(s.push(&[1.0]).is_err());
        assert!(s.push(&[1.0, f32::INFINITY]).is_err());
        assert!(DenseVectors::new(Metric::Dot, 0).is_err());
        assert!(DenseVectors::from_rows(Metric::Dot, 2, &[1.0, 2.0, 3.0]).is_err());
    }
}
