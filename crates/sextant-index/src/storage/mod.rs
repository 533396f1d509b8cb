//! Vector storage and the scorer interface the index structures use to compare vectors.
//!
//! Graphs never touch vector bytes directly: they ask a [`VectorStorage`] for distances, so the
//! same HNSW can later run over f32, SQ8, PQ or memory-mapped vectors.
//!
//! [`DenseVectors`] keeps f32 vectors in one contiguous, 64-byte aligned allocation, each padded
//! with zeros to a multiple of 16 components. Zero padding changes no dot product, L2 or L1
//! distance, and in exchange every vector starts on a cache line and the SIMD kernels never run a
//! tail loop.

mod binary;
mod bits;
mod slab;
mod sq8;

pub(crate) use slab::Slab;

pub use binary::{bound_sigmas_for, BinaryCodes, BinaryQuery, BOUND_SIGMAS, DEFAULT_ROTATION_SEED};
pub use bits::{BitQuery, BitVectors};
pub use sq8::{Sq8Query, Sq8Vectors};

use std::sync::Arc;

use bytemuck::{Pod, Zeroable};
use sextant_core::{l2_normalize_in_place, validate_vector_for, Metric};

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

/// Bytes shared with their owner: a memory-mapped file, or a buffer read whole.
pub type SharedBytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// Magic number of a vectors file ([`DenseVectors::to_file_bytes`]).
const FILE_MAGIC: &[u8; 8] = b"SXTVECS\0";
const FILE_VERSION: u32 = 1;
/// The vectors of a vectors file start at this offset, so a page-aligned mapping puts every
/// vector on a cache line.
pub const VECTORS_FILE_HEADER: usize = 4096;
/// Bytes of the header that are used (the rest is zeros): magic, version, metric code and three
/// bytes of padding, dimension, lines per vector, count, body CRC, header CRC.
const HEADER_USED: usize = 8 + 4 + 4 + 4 + 4 + 8 + 4 + 4;

/// Contiguous f32 vectors of one dimension and metric, preprocessed for that metric.
#[derive(Clone)]
pub struct DenseVectors {
    metric: Metric,
    dim: usize,
    lines_per_vector: usize,
    /// The lines: owned and growing with inserts, or a read-only view of a vectors file or
    /// an index file (memory-mapped, so only the pages a search touches are read and the
    /// kernel can drop them again under memory pressure).
    data: Slab<Line>,
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
            data: Slab::default(),
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
        let lines = additional * self.lines_per_vector;
        let data = self.data.owned();
        data.reserve(lines);
        advise_huge_pages(data);
    }

    /// Validates `v` (dimension, finite values), preprocesses it for the metric and returns the
    /// padded copy used for comparisons.
    pub fn preprocess(&self, v: &[f32]) -> Result<Vec<f32>, IndexError> {
        validate_vector_for(v, self.dim, self.metric)?;
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
        self.data.owned().extend(
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
        bytemuck::cast_slice(&self.data.as_slice()[start..start + self.lines_per_vector])
    }

    /// Whether the vectors are a view of a vectors file rather than held in memory.
    pub fn is_mapped(&self) -> bool {
        self.data.is_mapped()
    }

    /// Bytes of the vectors themselves, in memory or in the file they are a view of.
    pub fn data_bytes(&self) -> usize {
        self.len * self.lines_per_vector * std::mem::size_of::<Line>()
    }

    /// The vectors as a vectors file: a [`VECTORS_FILE_HEADER`]-byte header (magic `SXTVECS\0`,
    /// version, metric, dimension, lines per vector, count, CRC-32 of the body, CRC-32 of the
    /// header) and then every vector preprocessed and zero-padded to whole 64-byte lines,
    /// little-endian, exactly as searches read them — so the file can be memory-mapped and
    /// used in place.
    pub fn to_file_bytes(&self) -> Vec<u8> {
        let body: &[u8] =
            bytemuck::cast_slice(&self.data.as_slice()[..self.len * self.lines_per_vector]);
        let mut out = Vec::with_capacity(VECTORS_FILE_HEADER + body.len());
        out.extend_from_slice(FILE_MAGIC);
        out.extend_from_slice(&FILE_VERSION.to_le_bytes());
        out.extend_from_slice(&[self.metric.code(), 0, 0, 0]);
        out.extend_from_slice(&(self.dim as u32).to_le_bytes());
        out.extend_from_slice(&(self.lines_per_vector as u32).to_le_bytes());
        out.extend_from_slice(&(self.len as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(body).to_le_bytes());
        let crc = crc32fast::hash(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        debug_assert_eq!(out.len(), HEADER_USED);
        out.resize(VECTORS_FILE_HEADER, 0);
        #[cfg(target_endian = "little")]
        out.extend_from_slice(body);
        #[cfg(not(target_endian = "little"))]
        for x in bytemuck::cast_slice::<u8, f32>(body) {
            out.extend_from_slice(&x.to_le_bytes());
        }
        out
    }

    /// Opens a vectors file written by [`DenseVectors::to_file_bytes`].
    ///
    /// The header is checked (magic, version, its CRC, the sizes against the file's length).
    /// With `verify` the body is checked too (its CRC, finite values) and copied into memory
    /// (for a buffer read whole); that reads every byte. Without it, a 64-byte aligned buffer (a memory mapping) becomes a view at once and nothing past
    /// the header is read: opening costs the header check, and a search reads the pages it
    /// touches; the body's CRC is then checked only on demand ([`DenseVectors::verify_file`]).
    pub fn from_file(bytes: SharedBytes, verify: bool) -> Result<Self, IndexError> {
        let all: &[u8] = (*bytes).as_ref();
        let (metric, dim, lines_per_vector, len, _) = Self::file_header(all)?;
        let body = &all[VECTORS_FILE_HEADER..];
        if verify {
            Self::verify_file(all)?;
        }
        let mut s = DenseVectors::new(metric, dim)?;
        s.len = len;
        // A verified buffer was read whole into memory: copy it, so memory accounting sees it.
        let owner = (!verify).then_some(&bytes);
        s.data = Slab::of(
            owner,
            &body[..len * lines_per_vector * std::mem::size_of::<Line>()],
        );
        if verify {
            s.check_finite()?;
        }
        Ok(s)
    }

    /// Checks a vectors file's body against its CRC and every value for finiteness (reads it
    /// all).
    pub fn verify_file(bytes: &[u8]) -> Result<(), IndexError> {
        let (.., body_crc) = Self::file_header(bytes)?;
        if crc32fast::hash(&bytes[VECTORS_FILE_HEADER..]) != body_crc {
            return Err(IndexError::Corrupt(
                "vectors file: body checksum mismatch".into(),
            ));
        }
        Ok(())
    }

    fn check_finite(&self) -> Result<(), IndexError> {
        for id in 0..self.len {
            if let Some(p) = self.padded(id).iter().position(|x| !x.is_finite()) {
                return Err(IndexError::Corrupt(format!(
                    "vectors file: vector {id} has a non-finite value at {p}"
                )));
            }
        }
        Ok(())
    }

    /// Checks a vectors file's header and its length; returns metric, dimension, lines per
    /// vector, count and the body CRC.
    fn file_header(bytes: &[u8]) -> Result<(Metric, usize, usize, usize, u32), IndexError> {
        let corrupt = |what: &str| IndexError::Corrupt(format!("vectors file: {what}"));
        if bytes.len() < VECTORS_FILE_HEADER {
            return Err(corrupt("shorter than its header"));
        }
        if &bytes[..8] != FILE_MAGIC {
            return Err(corrupt("wrong magic number"));
        }
        let u32_at = |at: usize| u32::from_le_bytes(bytes[at..at + 4].try_into().expect("4 bytes"));
        let stored = u32_at(HEADER_USED - 4);
        if crc32fast::hash(&bytes[..HEADER_USED - 4]) != stored {
            return Err(corrupt("header checksum mismatch"));
        }
        let version = u32_at(8);
        if version != FILE_VERSION {
            return Err(IndexError::UnsupportedVersion {
                found: version,
                supported: FILE_VERSION,
            });
        }
        let metric = Metric::from_code(bytes[12]).ok_or_else(|| corrupt("unknown metric code"))?;
        let dim = u32_at(16) as usize;
        let lines_per_vector = u32_at(20) as usize;
        let len = u64::from_le_bytes(bytes[24..32].try_into().expect("8 bytes"));
        if dim == 0 || lines_per_vector != dim.div_ceil(LANES) {
            return Err(corrupt("dimension and line count disagree"));
        }
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l < u32::MAX as usize)
            .ok_or_else(|| corrupt("count out of range"))?;
        let body = len
            .checked_mul(lines_per_vector * std::mem::size_of::<Line>())
            .ok_or_else(|| corrupt("size overflows"))?;
        if bytes.len() - VECTORS_FILE_HEADER != body {
            return Err(corrupt(&format!(
                "{} bytes of vectors where the header announces {body}",
                bytes.len() - VECTORS_FILE_HEADER
            )));
        }
        Ok((metric, dim, lines_per_vector, len, u32_at(32)))
    }

    /// Every vector, padded, as one row-major slice, and the row stride (the padded width).
    pub(crate) fn rows(&self) -> (&[f32], usize) {
        let lines = &self.data.as_slice()[..self.len * self.lines_per_vector];
        (bytemuck::cast_slice(lines), self.lines_per_vector * LANES)
    }

    /// The vectors as stored lines (preprocessed, zero-padded), for a format that uses them
    /// in place ([`DenseVectors::from_lines`]).
    pub(crate) fn line_bytes(&self) -> &[u8] {
        bytemuck::cast_slice(&self.data.as_slice()[..self.len * self.lines_per_vector])
    }

    /// Bytes of [`DenseVectors::line_bytes`] for `len` vectors of this store's dimension.
    pub(crate) fn line_bytes_for(&self, len: usize) -> Option<usize> {
        len.checked_mul(self.lines_per_vector * std::mem::size_of::<Line>())
    }

    /// `len` vectors from [`DenseVectors::line_bytes`], used in place where the bytes lie
    /// aligned inside `owner` (values are not checked: the caller verified the file's CRC).
    pub(crate) fn from_lines(
        metric: Metric,
        dim: usize,
        len: usize,
        bytes: &[u8],
        owner: Option<&SharedBytes>,
    ) -> Result<Self, IndexError> {
        let mut s = DenseVectors::new(metric, dim)?;
        if Some(bytes.len()) != len.checked_mul(s.lines_per_vector * std::mem::size_of::<Line>()) {
            return Err(IndexError::Corrupt(format!(
                "{} bytes of vectors for {len} × {dim}-d",
                bytes.len()
            )));
        }
        s.data = Slab::of(owner, bytes);
        s.len = len;
        Ok(s)
    }

    pub(crate) fn serialize_into(&self, w: &mut crate::bytes::Writer) {
        if w.external_vectors {
            return;
        }
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
        if r.external_vectors {
            let s = r.vectors.take().ok_or_else(|| {
                IndexError::Corrupt(
                    "the index keeps its vectors in a separate vectors file, which was not given"
                        .into(),
                )
            })?;
            if s.metric != metric || s.dim != dim || s.len != len {
                return Err(IndexError::Corrupt(format!(
                    "the vectors file holds {} × {}-d {} vectors; the index expects {len} × {dim}-d {metric}",
                    s.len, s.dim, s.metric
                )));
            }
            return Ok(s);
        }
        if r.vectors.is_some() {
            return Err(IndexError::Corrupt(
                "the index holds its vectors inline, yet a vectors file was given".into(),
            ));
        }
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
            .as_slice()
            .get(start..start + self.lines_per_vector.min(4))
            .into_iter()
            .flatten()
        {
            prefetch_read(std::ptr::from_ref(line).cast());
        }
    }

    fn memory_bytes(&self) -> usize {
        // A view of a file counts nothing: its pages are the kernel's page cache.
        self.data.heap_bytes()
    }
}

/// Asks Linux to back the not yet written pages of `v`'s allocation with 2 MiB pages where the
/// system grants transparent huge pages on request (the usual `madvise` setting; a no-op where
/// it does not, and on other systems). A graph walk reads vectors, codes and links at random: on
/// this project's Xeon, huge pages for them answered 4–12% more queries per second
/// (Fashion-MNIST f32 walk, GloVe `pq4` walk; BENCHMARKS.md), one page-table walk saved per
/// read. Call it right after reserving, before the memory is first written: pages already
/// written stay small.
pub(crate) fn advise_huge_pages<T>(v: &Vec<T>) {
    #[cfg(target_os = "linux")]
    {
        const HUGE: usize = 2 << 20;
        let start = v.as_ptr() as usize;
        let end = start + v.capacity() * std::mem::size_of::<T>();
        let (first, last) = (start.next_multiple_of(HUGE), end / HUGE * HUGE);
        if last > first {
            // SAFETY: the range lies within `v`'s allocation; the advice changes how its pages
            // are backed, never their contents, and a failure (an old kernel) changes nothing.
            unsafe {
                libc::madvise(
                    first as *mut libc::c_void,
                    last - first,
                    libc::MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
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
