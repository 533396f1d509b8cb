//! Exact search: every live vector is scored. The reference that approximate indexes are
//! measured against, and the right index for small collections and very selective filters.

use rayon::prelude::*;
use sextant_core::{Metric, PointOffset};

use crate::bytes::{Reader, Writer};
use crate::storage::{DenseVectors, VectorStorage};
use crate::tombstones::Tombstones;
use crate::topk::TopK;
use crate::{IdFilter, IndexError, Neighbor, SearchParams, VectorIndex, VectorIndexMut};

pub(crate) const MAGIC: &[u8; 8] = b"SXTFLAT\0";

/// Queries scored together by [`FlatIndex::search_batch`]: 16 padded queries of up to a few
/// hundred dimensions stay in L1/L2 while each stored vector streams past them once.
pub const QUERY_BLOCK: usize = 16;
const VERSION: u32 = 1;

/// Exact nearest-neighbour index.
#[derive(Debug, Clone)]
pub struct FlatIndex {
    vectors: DenseVectors,
    deleted: Tombstones,
}

impl FlatIndex {
    /// An empty index.
    pub fn new(metric: Metric, dim: usize) -> Result<Self, IndexError> {
        Ok(FlatIndex {
            vectors: DenseVectors::new(metric, dim)?,
            deleted: Tombstones::default(),
        })
    }

    /// An index over `n` row-major vectors (`flat.len() == n * dim`).
    pub fn from_rows(metric: Metric, dim: usize, flat: &[f32]) -> Result<Self, IndexError> {
        Ok(FlatIndex {
            vectors: DenseVectors::from_rows(metric, dim, flat)?,
            deleted: Tombstones::default(),
        })
    }

    /// Wraps already stored vectors.
    pub fn from_vectors(vectors: DenseVectors) -> Self {
        FlatIndex {
            vectors,
            deleted: Tombstones::default(),
        }
    }

    /// The stored vectors.
    pub fn vectors(&self) -> &DenseVectors {
        &self.vectors
    }

    /// Searches many row-major queries at once on the current rayon pool (wrap the call in
    /// `ThreadPool::install` to choose the thread count). Results are in query order and equal
    /// to [`VectorIndex::search`]'s.
    ///
    /// Without a filter, queries are scored in blocks of [`QUERY_BLOCK`]: each stored vector is
    /// read from memory once per block instead of once per query, which is what bounds a flat
    /// scan over vectors that do not fit in cache.
    pub fn search_batch(
        &self,
        queries: &[f32],
        params: &SearchParams,
        filter: Option<&IdFilter<'_>>,
    ) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        let dim = self.vectors.dim();
        if !queries.len().is_multiple_of(dim) {
            return Err(IndexError::param(
                "queries",
                format!(
                    "{} values is not a multiple of dimension {dim}",
                    queries.len()
                ),
            ));
        }
        if filter.is_some() {
            return queries
                .par_chunks_exact(dim)
                .map(|q| self.search(q, params, filter))
                .collect();
        }
        params.validate()?;
        let blocks: Vec<Vec<Vec<Neighbor>>> = queries
            .par_chunks(dim * QUERY_BLOCK)
            .map(|block| self.scan_block(block, params.k))
            .collect::<Result<_, _>>()?;
        Ok(blocks.into_iter().flatten().collect())
    }

    /// Exact top-`k` of each query in `block` (at most [`QUERY_BLOCK`] row-major queries).
    fn scan_block(&self, block: &[f32], k: usize) -> Result<Vec<Vec<Neighbor>>, IndexError> {
        let dim = self.vectors.dim();
        let prepared: Vec<_> = block
            .chunks_exact(dim)
            .map(|q| self.vectors.query(q))
            .collect::<Result<_, _>>()?;
        let mut tops: Vec<TopK> = prepared.iter().map(|_| TopK::new(k)).collect();
        for id in 0..self.vectors.len() as u32 {
            if self.deleted.contains(id) {
                continue;
            }
            for (q, top) in prepared.iter().zip(&mut tops) {
                top.offer(id, self.vectors.distance(q, id));
            }
        }
        Ok(tops.into_iter().map(TopK::into_sorted).collect())
    }

    /// Exact search over the offsets in `ids` (all must be < `len`); used by other indexes when
    /// a filter leaves few candidates.
    pub(crate) fn scan<S: VectorStorage>(
        storage: &S,
        query: &S::Query,
        ids: impl Iterator<Item = u32>,
        k: usize,
        deleted: &Tombstones,
    ) -> Vec<Neighbor> {
        // Scattered ids defeat the hardware prefetcher: ask for each vector a few ahead of the
        // one being scored (the order of offers does not change a TopK's answer).
        const AHEAD: usize = 4;
        let mut top = TopK::new(k);
        let mut ring = [0u32; AHEAD];
        let mut queued = 0usize;
        for id in ids.filter(|&id| !deleted.contains(id)) {
            storage.prefetch(id);
            let slot = &mut ring[queued % AHEAD];
            if queued >= AHEAD {
                top.offer(*slot, storage.distance(query, *slot));
            }
            *slot = id;
            queued += 1;
        }
        for &id in &ring[..queued.min(AHEAD)] {
            top.offer(id, storage.distance(query, id));
        }
        top.into_sorted()
    }

    /// The exact answer of an approximate index when `filter` is a bitmap allowing at most
    /// the search's `exact_filter_threshold` points (`None` otherwise: search approximately).
    pub(crate) fn scan_if_selective(
        vectors: &DenseVectors,
        query: &crate::storage::DenseQuery,
        params: &SearchParams,
        filter: Option<&IdFilter<'_>>,
        deleted: &Tombstones,
    ) -> Option<Vec<Neighbor>> {
        match filter {
            Some(IdFilter::Bitmap(b)) if b.len() <= params.exact_filter_threshold as u64 => {
                let n = vectors.len() as u32;
                Some(Self::scan(vectors, query, b.range(..n), params.k, deleted))
            }
            _ => None,
        }
    }

    /// Loads an index written by [`VectorIndex::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, IndexError> {
        Self::from_parts(bytes, None)
    }

    /// Loads an index written by [`VectorIndex::to_bytes_with`]; `vectors` are the vectors of
    /// one written with `external_vectors` (see [`DenseVectors::from_file`]).
    pub fn from_parts(bytes: &[u8], vectors: Option<DenseVectors>) -> Result<Self, IndexError> {
        let mut r = Reader::open(bytes, MAGIC, "flat index", VERSION)?.with_vectors(vectors);
        let metric = Metric::from_code(r.u8()?)
            .ok_or_else(|| IndexError::Corrupt("flat index: unknown metric code".into()))?;
        let dim = r.u32()? as usize;
        let len = usize::try_from(r.u64()?)
            .map_err(|_| IndexError::Corrupt("flat index: length overflows".into()))?;
        let vectors = DenseVectors::deserialize_from(&mut r, metric, dim, len)?;
        let deleted = read_tombstones(&mut r, len)?;
        r.finish()?;
        Ok(FlatIndex { vectors, deleted })
    }
}

pub(crate) fn write_tombstones(w: &mut Writer, t: &Tombstones) {
    w.u64(t.count() as u64);
    w.u32s(t.iter());
}

pub(crate) fn read_tombstones(r: &mut Reader<'_>, len: usize) -> Result<Tombstones, IndexError> {
    let count = usize::try_from(r.u64()?)
        .ok()
        .filter(|&c| c <= len)
        .ok_or_else(|| IndexError::Corrupt("more deleted points than points".into()))?;
    let mut t = Tombstones::default();
    for id in r.u32s(count)? {
        if id as usize >= len || !t.insert(id) {
            return Err(IndexError::Corrupt(format!("bad deleted offset {id}")));
        }
    }
    Ok(t)
}

impl VectorIndex for FlatIndex {
    stored_accessors!();

    fn search(
        &self,
        query: &[f32],
        params: &SearchParams,
        filter: Option<&IdFilter<'_>>,
    ) -> Result<Vec<Neighbor>, IndexError> {
        params.validate()?;
        let q = self.vectors.query(query)?;
        let n = self.vectors.len() as u32;
        Ok(match filter {
            None => Self::scan(&self.vectors, &q, 0..n, params.k, &self.deleted),
            Some(IdFilter::Bitmap(b)) => {
                Self::scan(&self.vectors, &q, b.range(..n), params.k, &self.deleted)
            }
            Some(f @ IdFilter::Predicate(_)) => Self::scan(
                &self.vectors,
                &q,
                (0..n).filter(|&id| f.allows(id)),
                params.k,
                &self.deleted,
            ),
        })
    }

    fn memory_bytes(&self) -> usize {
        self.vectors.memory_bytes() + self.deleted.memory_bytes()
    }

    fn to_bytes_with(&self, external_vectors: bool) -> Vec<u8> {
        let mut w =
            Writer::new(MAGIC, VERSION, self.len() * self.dim() * 4).external(external_vectors);
        w.u8(self.metric().code());
        w.u32(self.dim() as u32);
        w.u64(self.len() as u64);
        self.vectors.serialize_into(&mut w);
        write_tombstones(&mut w, &self.deleted);
        w.finish()
    }
}

impl VectorIndexMut for FlatIndex {
    fn insert(&mut self, vector: &[f32]) -> Result<PointOffset, IndexError> {
        self.vectors.push(vector)
    }

    fn delete(&mut self, id: PointOffset) -> Result<bool, IndexError> {
        if id as usize >= self.len() {
            return Err(IndexError::UnknownPoint(id));
        }
        Ok(self.deleted.insert(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> FlatIndex {
        let rows: Vec<f32> = (0..20).flat_map(|i| [i as f32, 0.0]).collect();
        FlatIndex::from_rows(Metric::L2, 2, &rows).unwrap()
    }

    #[test]
    fn finds_exact_neighbours_in_order() {
        let res = index()
            .search(&[4.2, 0.0], &SearchParams::new(3), None)
            .unwrap();
        let ids: Vec<u32> = res.iter().map(|n| n.id).collect();
        assert_eq!(ids, vec![4, 5, 3]);
        assert!((res[0].distance - 0.04).abs() < 1e-5);
    }

    #[test]
    fn deletes_and_filters_are_respected() {
        let mut idx = index();
        assert!(idx.delete(4).unwrap());
        assert!(!idx.delete(4).unwrap());
        assert!(idx.delete(99).is_err());
        let only_even = |id: u32| id.is_multiple_of(2);
        let f = IdFilter::Predicate(&only_even);
        let ids: Vec<u32> = idx
            .search(&[4.2, 0.0], &SearchParams::new(3), Some(&f))
            .unwrap()
            .iter()
            .map(|n| n.id)
            .collect();
        assert_eq!(ids, vec![6, 2, 8]);
    }

    #[test]
    fn serialisation_round_trips() {
        let mut idx = index();
        idx.delete(7).unwrap();
        let bytes = idx.to_bytes();
        let back = FlatIndex::from_bytes(&bytes).unwrap();
        assert_eq!(back.len(), 20);
        assert!(back.is_deleted(7));
        assert_eq!(back.vector(3), idx.vector(3));
        let corrupt = [&bytes[..bytes.len() - 9], &bytes[bytes.len() - 8..]].concat();
        assert!(FlatIndex::from_bytes(&corrupt).is_err());
    }

    #[test]
    fn batch_equals_single() {
        let mut idx = index();
        idx.delete(5).unwrap();
        // 40 queries: two full blocks of QUERY_BLOCK and a partial one.
        let queries: Vec<f32> = (0..40).flat_map(|i| [i as f32 * 0.53, 0.1]).collect();
        let params = SearchParams::new(3);
        let batch = idx.search_batch(&queries, &params, None).unwrap();
        assert_eq!(batch.len(), 40);
        for (q, res) in queries.chunks(2).zip(&batch) {
            assert_eq!(&idx.search(q, &params, None).unwrap(), res);
        }
        let bad = idx
            .search_batch(&[1.0, f32::NAN], &params, None)
            .unwrap_err();
        assert!(bad.to_string().contains("NaN"), "{bad}");
    }
}
