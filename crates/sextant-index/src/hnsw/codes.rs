//! 4-bit product-quantisation codes of every node's level-0 neighbours, stored beside the node
//! (the layout of quantised graphs such as NGT's QG): expanding a node reads one contiguous
//! record, and the fast-scan kernel estimates all its neighbours' distances at once from a table
//! held in registers, instead of reading 32 vectors scattered through memory.
//!
//! A node's record holds a copy of its level-0 links (the walk reads them from the record, one
//! stream of memory per node instead of two: 8% more queries per second on GloVe), then
//! [`SLOTS`] neighbour slots per fast-scan block (one block when `m0 ≤ 32`) in the kernel's layout
//! (see [`crate::distance`]): slot `v` holds the codes of the node's `v`-th link. Records are
//! derived from the graph and each node's own codes (kept too, two codes a byte, for the greedy
//! descent of the upper levels and to rebuild records), so they are not stored on disk: a load
//! rebuilds them.
//!
//! Distances are byte sums of the query's quantised table (one scale for every sub-table, so
//! sums compare across nodes); a search ranks its `ef` candidates by them and rescores those
//! exactly.

use rayon::prelude::*;
use sextant_core::KernelKind;
use std::sync::atomic::Ordering::Relaxed;

use super::graph::Graph;
use crate::bytes::{Reader, Writer};
use crate::distance::{fastscan_slot, kernels, MAX_SUBQUANTIZERS};
use crate::ivf::pq::{self, ProductQuantizer, KSUB};
use crate::storage::{
    advise_huge_pages, prefetch_read, DenseVectors, SharedBytes, Slab, VectorStorage,
};
use crate::IndexError;

/// Neighbour slots of one fast-scan block.
const SLOTS: usize = 32;
/// An empty link slot of a record.
pub(crate) const NO_LINK: u32 = u32::MAX;
/// Vectors the sub-quantisers are trained on (a sample of the index).
const TRAIN_SAMPLE: usize = 32_768;
/// Lloyd iterations per sub-quantiser.
const TRAIN_ITERS: usize = 20;
/// Rows encoded per parallel task.
const ENCODE_CHUNK: usize = 4_096;

/// Components per sub-quantiser for `dim`-dimensional vectors: the fewest that keep the
/// sub-quantisers within what the kernel sums exactly (one component up to 256 dimensions: on
/// GloVe, two components a code cost 0.08 of recall@10 at equal `ef`).
pub(crate) fn sub_dim(dim: usize) -> usize {
    dim.div_ceil(MAX_SUBQUANTIZERS).max(1)
}

/// The codes of a graph's nodes and of every node's level-0 neighbours.
pub(crate) struct LinkCodes {
    neg_dot: bool,
    pq: ProductQuantizer,
    /// Pairs of sub-quantisers (one kernel step each).
    pairs: usize,
    /// Fast-scan blocks per node: `⌈m0 / 32⌉`.
    node_blocks: usize,
    /// `pairs` bytes per node: sub-quantiser `2p` in the low nibble of byte `p`, `2p + 1` in
    /// the high one (zero past `m`).
    codes: Vec<u8>,
    /// One record per node ([`Self::record_bytes`]): its links, then its neighbours' codes
    /// (words, so that the links are aligned; owned, or a view of a version 3 index file).
    records: Slab<u32>,
}

/// A query's table, quantised to bytes in the fast-scan layout.
pub(crate) struct CodedQuery {
    lut: Vec<u8>,
}

impl LinkCodes {
    /// Trains sub-quantisers on a sample of `vectors`, encodes them all and lays out every
    /// node's record from `graph`. `None` for metrics the codes do not support.
    pub(crate) fn train(vectors: &DenseVectors, graph: &Graph, seed: u64) -> Option<Self> {
        let (n, dim) = (vectors.len(), vectors.dim());
        if !vectors.metric().quantizable() || n < KSUB {
            return None;
        }
        let m = dim.div_ceil(sub_dim(dim));
        let rows = |ids: &mut dyn Iterator<Item = u32>| -> Vec<f32> {
            ids.flat_map(|i| vectors.get(i).expect("in range").iter().copied())
                .collect()
        };
        let sample = {
            use rand::seq::index;
            use rand::SeedableRng;
            let mut rng = rand::rngs::SmallRng::seed_from_u64(seed);
            let mut s = index::sample(&mut rng, n, TRAIN_SAMPLE.min(n)).into_vec();
            s.sort_unstable();
            rows(&mut s.into_iter().map(|i| i as u32))
        };
        let pq = ProductQuantizer::train(&sample, dim, m, KSUB, TRAIN_ITERS, seed);
        drop(sample);
        let pairs = m.div_ceil(2);
        let mut codes = vec![0u8; n * pairs];
        codes
            .par_chunks_mut(ENCODE_CHUNK * pairs)
            .enumerate()
            .for_each(|(c, out)| {
                let start = (c * ENCODE_CHUNK) as u32;
                let count = out.len() / pairs;
                let chunk = rows(&mut (start..start + count as u32));
                let mut wide = vec![0u8; count * m];
                pq.encode_rows(&chunk, &mut wide);
                for (packed, code) in out.chunks_exact_mut(pairs).zip(wide.chunks_exact(m)) {
                    pack(code, packed);
                }
            });
        Some(Self::with_codes(vectors, graph, pq, codes))
    }

    fn with_codes(
        vectors: &DenseVectors,
        graph: &Graph,
        pq: ProductQuantizer,
        codes: Vec<u8>,
    ) -> Self {
        let pairs = pq.m.div_ceil(2);
        let node_blocks = graph.m0().div_ceil(SLOTS);
        let mut lc = LinkCodes {
            neg_dot: vectors.metric().kernel() == KernelKind::NegDot,
            pq,
            pairs,
            node_blocks,
            codes,
            records: Slab::default(),
        };
        let size = lc.record_bytes() / 4;
        let mut records = Vec::with_capacity(graph.len() * size);
        advise_huge_pages(&records);
        records.resize(graph.len() * size, 0u32);
        records
            .par_chunks_mut(size)
            .enumerate()
            .for_each(|(node, record)| {
                lc.fill(graph, node as u32, bytemuck::cast_slice_mut(record));
            });
        lc.records = Slab::Owned(records);
        lc
    }

    /// `id`'s packed codes.
    #[inline(always)]
    fn node(&self, id: u32) -> &[u8] {
        let start = id as usize * self.pairs;
        &self.codes[start..start + self.pairs]
    }

    /// A node's record: its level-0 links (`node_blocks × 32` ids, [`NO_LINK`] past the last),
    /// then `node_blocks` fast-scan blocks of its neighbours' codes (a multiple of 4 bytes).
    fn record_bytes(&self) -> usize {
        self.node_blocks * SLOTS * 4 + self.node_blocks * self.pairs * SLOTS
    }

    fn ids_bytes(&self) -> usize {
        self.node_blocks * SLOTS * 4
    }

    /// `node`'s record.
    #[inline(always)]
    fn record(&self, node: u32) -> &[u8] {
        let size = self.record_bytes();
        let start = node as usize * size;
        &bytemuck::cast_slice(self.records.as_slice())[start..start + size]
    }

    /// Writes `node`'s record: its level-0 links, then their codes one 32-byte row (a pair of
    /// sub-quantisers) at a time.
    fn fill(&self, graph: &Graph, node: u32, record: &mut [u8]) {
        let (ids, block) = record.split_at_mut(self.ids_bytes());
        let ids: &mut [u32] = bytemuck::cast_slice_mut(ids);
        ids.fill(NO_LINK);
        block.fill(0);
        let pairs = self.pairs;
        let links = graph.neighbors(node, 0);
        for (o, slot) in ids.iter_mut().zip(links) {
            *o = slot.load(Relaxed);
        }
        for (b, slots) in links.chunks(SLOTS).enumerate() {
            let mut rows = [0usize; SLOTS];
            for (row, slot) in rows.iter_mut().zip(slots) {
                *row = slot.load(Relaxed) as usize * pairs;
            }
            let out = &mut block[b * pairs * SLOTS..(b + 1) * pairs * SLOTS];
            for (p, line) in out.chunks_exact_mut(SLOTS).enumerate() {
                for (v, &row) in rows.iter().enumerate().take(slots.len()) {
                    line[fastscan_slot(v)] = self.codes[row + p];
                }
            }
        }
    }

    /// Rewrites `node`'s record after its links changed.
    pub(crate) fn refresh(&mut self, graph: &Graph, node: u32) {
        let size = self.record_bytes();
        let start = node as usize * size;
        // `fill` reads the codes through `self` while the record is written: lend it out.
        let mut records = std::mem::take(&mut self.records);
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(records.owned());
        self.fill(graph, node, &mut bytes[start..start + size]);
        self.records = records;
    }

    /// Encodes one more node (its record starts empty: link it, then [`Self::refresh`] it).
    pub(crate) fn push(&mut self, vector: &[f32]) {
        let mut code = vec![0u8; self.pq.m];
        self.pq.encode(vector, &mut code);
        let at = self.codes.len();
        self.codes.resize(at + self.pairs, 0);
        pack(&code, &mut self.codes[at..]);
        let words = self.record_bytes() / 4;
        let records = self.records.owned();
        records.resize(records.len() + words, 0);
    }

    /// Estimated distances from `query` to `node`'s neighbours, in link order, into `sums`
    /// (`node_blocks × 32` values); returns the neighbours, [`NO_LINK`] past the last (whose
    /// sums are meaningless).
    #[inline]
    pub(crate) fn scan<'s>(
        &'s self,
        query: &CodedQuery,
        node: u32,
        sums: &mut Vec<u16>,
    ) -> &'s [u32] {
        let (ids, block) = self.record(node).split_at(self.ids_bytes());
        sums.resize(self.node_blocks * SLOTS, 0);
        (kernels().fastscan)(block, &query.lut, sums);
        bytemuck::cast_slice(ids)
    }

    /// Hints the CPU to load `node`'s record.
    #[inline]
    pub(crate) fn prefetch_record(&self, node: u32) {
        let record = self.record(node);
        let size = record.len();
        // Every line: measured on GloVe (before the links were copied in), prefetching the
        // first 2 or 4 lines of 800 bytes of codes answered 8–11% fewer queries per second
        // than all 13.
        for line in (0..size).step_by(64) {
            prefetch_read(record[line..].as_ptr().cast());
        }
    }

    /// Writes the sub-quantisers, every node's packed codes and (format version 3) the
    /// records, 64-byte aligned, so that a mapped file uses them in place.
    pub(crate) fn write(&self, w: &mut Writer) {
        w.u32(self.pq.m as u32);
        w.u32(self.pq.dsub as u32);
        w.f32s(&self.pq.centroids);
        w.u64(self.codes.len() as u64);
        w.bytes(&self.codes);
        let records: &[u8] = bytemuck::cast_slice(self.records.as_slice());
        w.u64(records.len() as u64);
        w.align(64);
        w.bytes(records);
    }

    /// Bytes used in place from shared bytes.
    pub(crate) fn mapped_bytes(&self) -> usize {
        self.records.mapped_bytes()
    }

    /// Reads what [`Self::write`] wrote, for an index of `vectors` linked by `graph`: a
    /// version 3 file's records in place where they lie aligned inside `shared` (checked
    /// against the graph's links), a version 2 file's records derived from its codes.
    pub(crate) fn read(
        r: &mut Reader<'_>,
        vectors: &DenseVectors,
        graph: &Graph,
        (version, shared): (u32, Option<&SharedBytes>),
    ) -> Result<Self, IndexError> {
        let corrupt = |what: String| IndexError::Corrupt(format!("hnsw index: link codes: {what}"));
        let dim = vectors.dim();
        let (m, dsub) = (r.u32()? as usize, r.u32()? as usize);
        if m == 0 || m > MAX_SUBQUANTIZERS || dsub == 0 || dim.div_ceil(dsub) != m {
            return Err(corrupt(format!(
                "{m} sub-quantisers of {dsub} for dimension {dim}"
            )));
        }
        let centroids: Vec<f32> = r.f32s(m * KSUB * dsub)?.collect();
        let len = r.u64()?;
        if len != (graph.len() * m.div_ceil(2)) as u64 {
            return Err(corrupt(format!(
                "{len} code bytes for {} nodes",
                graph.len()
            )));
        }
        // Every byte is two valid codes (a nibble indexes a 16-entry table); the padding
        // sub-quantiser of an odd `m` has an all-zero table.
        let codes = r.bytes(len as usize)?.to_vec();
        let pq = ProductQuantizer {
            dim,
            m,
            dsub,
            ksub: KSUB,
            centroids,
        };
        if version < 3 {
            return Ok(Self::with_codes(vectors, graph, pq, codes));
        }
        let pairs = pq.m.div_ceil(2);
        let mut lc = LinkCodes {
            neg_dot: vectors.metric().kernel() == KernelKind::NegDot,
            pq,
            pairs,
            node_blocks: graph.m0().div_ceil(SLOTS),
            codes,
            records: Slab::default(),
        };
        let n = usize::try_from(r.u64()?).map_err(|_| corrupt("size".into()))?;
        if Some(n) != graph.len().checked_mul(lc.record_bytes()) {
            return Err(corrupt(format!(
                "{n} record bytes for {} nodes",
                graph.len()
            )));
        }
        r.align(64)?;
        lc.records = Slab::of(shared, r.array(n, 1)?);
        // A record's links are what the walk follows: they must be the graph's (its codes can
        // be any bytes: every nibble indexes a 16-entry table).
        for node in 0..graph.len() as u32 {
            let ids: &[u32] = bytemuck::cast_slice(&lc.record(node)[..lc.ids_bytes()]);
            let links = graph.neighbors(node, 0);
            let matches = ids.iter().enumerate().all(|(i, &id)| match links.get(i) {
                Some(slot) => slot.load(Relaxed) == id,
                None => id == NO_LINK,
            });
            if !matches {
                return Err(corrupt(format!(
                    "node {node}'s record disagrees with its links"
                )));
            }
        }
        Ok(lc)
    }
}

impl VectorStorage for LinkCodes {
    type Query = CodedQuery;

    fn len(&self) -> usize {
        self.codes.len() / self.pairs
    }

    fn prepare(&self, query: &[f32]) -> CodedQuery {
        let table = if self.neg_dot {
            self.pq.neg_dot_table(query)
        } else {
            self.pq.l2_table(query)
        };
        let mut lut = vec![0u8; self.pairs * 2 * KSUB];
        pq::quantize_table(&table, &mut lut);
        CodedQuery { lut }
    }

    fn prepare_stored(&self, id: u32) -> CodedQuery {
        let code: Vec<u8> = self
            .node(id)
            .iter()
            .flat_map(|&b| [b & 15, b >> 4])
            .take(self.pq.m)
            .collect();
        self.prepare(&self.pq.decode(&code))
    }

    #[inline]
    fn distance(&self, query: &CodedQuery, id: u32) -> f32 {
        let sum: u32 = self
            .node(id)
            .iter()
            .zip(query.lut.chunks_exact(2 * KSUB))
            .map(|(&b, t)| {
                u32::from(t[usize::from(b & 15)]) + u32::from(t[KSUB + usize::from(b >> 4)])
            })
            .sum();
        sum as f32
    }

    fn distance_between(&self, a: u32, b: u32) -> f32 {
        self.distance(&self.prepare_stored(a), b)
    }

    #[inline]
    fn prefetch(&self, id: u32) {
        prefetch_read(self.node(id).as_ptr().cast());
    }

    fn memory_bytes(&self) -> usize {
        self.codes.capacity() + self.records.heap_bytes() + self.pq.centroids.capacity() * 4
    }
}

/// Packs codes two a byte: `code[2p]` in the low nibble of `out[p]`, `code[2p + 1]` in the high.
fn pack(code: &[u8], out: &mut [u8]) {
    for (o, pair) in out.iter_mut().zip(code.chunks(2)) {
        *o = pair[0] | (pair.get(1).copied().unwrap_or(0) << 4);
    }
}

#[cfg(test)]
mod tests {
    use rand::rngs::SmallRng;
    use rand::{Rng, SeedableRng};
    use sextant_core::Metric;

    use super::*;
    use crate::hnsw::{HnswIndex, HnswParams, Quantization};
    use crate::VectorIndexMut;

    /// Every slot of a node's block holds the codes of the link at that position: the kernel's
    /// sums over a block equal each neighbour's own table sum, for odd sub-quantiser counts,
    /// several components per sub-quantiser, two blocks per node (`m0 = 48`), and after inserts
    /// rewrote the records of the nodes they linked; every record starts with a copy of its links.
    #[test]
    fn block_sums_equal_each_neighbours_own_sum() {
        let mut rng = SmallRng::seed_from_u64(3);
        for (metric, dim, m) in [
            (Metric::L2, 24, 16),
            (Metric::Cosine, 37, 24),
            (Metric::Dot, 300, 8),
        ] {
            let n = 1_500;
            let data: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let vectors = DenseVectors::from_rows(metric, dim, &data).unwrap();
            let params = HnswParams {
                m,
                ef_construction: 40,
                quantization: Quantization::Pq4,
                ..HnswParams::default()
            };
            let mut index = HnswIndex::build(vectors, params, None).unwrap();
            for _ in 0..50 {
                let v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
                index.insert(&v).unwrap();
            }
            let codes = index.link_codes.as_ref().expect("trained");
            assert_eq!(codes.pq.m, dim.div_ceil(sub_dim(dim)));
            let query: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let q = codes.prepare(&index.vectors.preprocess(&query).unwrap());
            let mut sums = Vec::new();
            let mut checked = 0;
            for node in 0..index.graph.len() as u32 {
                let ids = codes.scan(&q, node, &mut sums);
                let links: Vec<u32> = index
                    .graph
                    .neighbors(node, 0)
                    .iter()
                    .map(|s| s.load(Relaxed))
                    .collect();
                assert_eq!(&ids[..links.len()], links, "{metric} node {node}");
                assert!(ids[links.len()..].iter().all(|&i| i == NO_LINK));
                for (&id, &sum) in links.iter().zip(&sums) {
                    assert_eq!(
                        f32::from(sum),
                        codes.distance(&q, id),
                        "{metric} node {node}"
                    );
                    checked += 1;
                }
            }
            assert!(checked > n * m / 2, "{metric}: {checked} links checked");
        }
    }

    /// Records read from a version 3 file are checked against the graph's links: one that
    /// names another neighbour, or a link past the last, is an error; intact ones load as
    /// written (in place from shared bytes).
    #[test]
    fn stored_records_must_match_the_links() {
        let mut rng = SmallRng::seed_from_u64(4);
        let (n, dim) = (1_200, 24);
        let data: Vec<f32> = (0..n * dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let vectors = DenseVectors::from_rows(Metric::L2, dim, &data).unwrap();
        let params = HnswParams {
            m: 8,
            quantization: Quantization::Pq4,
            ..HnswParams::default()
        };
        let index = HnswIndex::build(vectors, params, None).unwrap();
        let codes = index.link_codes.as_ref().expect("trained");
        let mut w = Writer::new(b"TESTTEST", 3, 0);
        codes.write(&mut w);
        let bytes = w.finish();
        let records_at = bytes.len() - 4 - codes.record_bytes() * n;
        let read = |bytes: &[u8]| {
            let mut r = Reader::open(bytes, b"TESTTEST", "test", 3).unwrap();
            LinkCodes::read(&mut r, &index.vectors, &index.graph, (3, None))
        };
        let back = read(&bytes).unwrap();
        assert_eq!(back.records.as_slice(), codes.records.as_slice());
        let with_crc = |mut b: Vec<u8>| {
            let body = b.len() - 4;
            let crc = crc32fast::hash(&b[..body]);
            b[body..].copy_from_slice(&crc.to_le_bytes());
            b
        };
        let node = 7;
        let count = index.graph.neighbors(node, 0).len();
        let id_at = |i: usize| records_at + node as usize * codes.record_bytes() + 4 * i;
        for (slot, value) in [(0, (node + 1) % n as u32), (count, 0), (count - 1, NO_LINK)] {
            let mut b = bytes.clone();
            let at = id_at(slot);
            if b[at..at + 4] == value.to_le_bytes() {
                continue; // already that value: not a corruption
            }
            b[at..at + 4].copy_from_slice(&value.to_le_bytes());
            let e = read(&with_crc(b)).err().expect("corrupt record accepted");
            assert!(e.to_string().contains("disagrees"), "{e}");
        }
    }
}
