//! BM25 as a sparse encoder.
//!
//! A document becomes a sparse vector of raw term frequencies plus its length (number of
//! terms); the index stores exactly that. The saturation and length normalisation
//! (`k1`, `b`, average length) and the IDF are applied at query time from collection-wide
//! statistics, so a score is the same whichever segment a document sits in:
//!
//! ```text
//! score(q, d) = Σ_{distinct t ∈ q} idf(t) · tf(t,d)·(k1 + 1) / (tf(t,d) + k1·(1 − b + b·|d|/avg|d|))
//! idf(t)      = ln(1 + (N − df(t) + 0.5) / (df(t) + 0.5))          (Lucene's, never negative)
//! ```
//!
//! Terms are identified by a stable 32-bit hash ([`term_id`]), so no shared vocabulary has to
//! be kept in step across segments; two distinct terms collide with probability 2⁻³² per pair
//! (about one pair per 10⁵ terms of a 10⁵-term vocabulary), which merges their statistics.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sextant_core::SparseVector;

use crate::analyzer::{Analyzer, AnalyzerConfig};

/// Default term-frequency saturation.
pub const DEFAULT_K1: f32 = 1.2;
/// Default length normalisation.
pub const DEFAULT_B: f32 = 0.75;

/// BM25's two knobs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bm25Params {
    /// Term-frequency saturation: higher lets repeated terms count for longer.
    pub k1: f32,
    /// Length normalisation: 0 ignores document length, 1 normalises fully.
    pub b: f32,
}

impl Default for Bm25Params {
    fn default() -> Self {
        Bm25Params {
            k1: DEFAULT_K1,
            b: DEFAULT_B,
        }
    }
}

/// Collection-wide statistics BM25 needs at query time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CorpusStats {
    /// Number of live documents.
    pub docs: u64,
    /// Sum of their lengths.
    pub total_len: f64,
}

impl CorpusStats {
    /// Average document length (1 for an empty corpus, so nothing divides by zero).
    pub fn avg_len(&self) -> f32 {
        if self.docs == 0 || self.total_len <= 0.0 {
            1.0
        } else {
            (self.total_len / self.docs as f64) as f32
        }
    }

    /// Lucene's IDF of a term found in `df` documents.
    pub fn idf(&self, df: u64) -> f32 {
        let n = self.docs as f64;
        let df = (df as f64).min(n);
        (1.0 + (n - df + 0.5) / (df + 0.5)).ln() as f32
    }
}

/// The stable id of a term: FNV-1a over its UTF-8 bytes, folded to 32 bits.
pub fn term_id(term: &str) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in term.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (h ^ (h >> 32)) as u32
}

/// Encodes documents and queries for BM25.
#[derive(Debug)]
pub struct Bm25Encoder {
    analyzer: Analyzer,
    params: Bm25Params,
}

impl Bm25Encoder {
    /// An encoder with this analyzer and these parameters.
    pub fn new(analyzer: AnalyzerConfig, params: Bm25Params) -> Bm25Encoder {
        Bm25Encoder {
            analyzer: Analyzer::new(analyzer),
            params,
        }
    }

    /// The parameters.
    pub fn params(&self) -> Bm25Params {
        self.params
    }

    /// The analyzer.
    pub fn analyzer(&self) -> &Analyzer {
        &self.analyzer
    }

    fn counts(&self, text: &str) -> (HashMap<u32, f32>, usize) {
        let mut counts: HashMap<u32, f32> = HashMap::new();
        let mut len = 0;
        self.analyzer.for_each_term_str(text, |t| {
            *counts.entry(term_id(t)).or_default() += 1.0;
            len += 1;
        });
        (counts, len)
    }

    /// A document: term frequencies and its length in terms.
    pub fn encode_document(&self, text: &str) -> (SparseVector, f32) {
        let (counts, len) = self.counts(text);
        let v = SparseVector::from_pairs(counts.into_iter().collect()).expect("counts are finite");
        (v, len as f32)
    }

    /// A query: each distinct term once, weighted by its IDF (a repeated query word does not
    /// count twice, as in bm25s and a disjunction of term queries in Lucene/tantivy), where
    /// `doc_freq` gives the number of documents holding a term across the whole collection.
    pub fn encode_query(
        &self,
        text: &str,
        stats: CorpusStats,
        doc_freq: impl Fn(u32) -> u64,
    ) -> Vec<(u32, f32)> {
        let mut ids: Vec<u32> = Vec::new();
        self.analyzer
            .for_each_term_str(text, |t| ids.push(term_id(t)));
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .map(|t| (t, stats.idf(doc_freq(t))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idf_and_encoding() {
        let s = CorpusStats {
            docs: 10,
            total_len: 50.0,
        };
        assert_eq!(s.avg_len(), 5.0);
        // df = 1 of 10: ln(1 + 9.5 / 1.5)
        assert!((s.idf(1) - (1.0f64 + 9.5 / 1.5).ln() as f32).abs() < 1e-6);
        assert!(s.idf(10) > 0.0, "Lucene's IDF never goes negative");
        let empty = CorpusStats {
            docs: 0,
            total_len: 0.0,
        };
        assert_eq!(empty.avg_len(), 1.0);
        assert!(empty.idf(0).is_finite());

        let e = Bm25Encoder::new(AnalyzerConfig::default(), Bm25Params::default());
        let (v, len) = e.encode_document("the cat and the hat");
        assert_eq!(len, 5.0);
        let the = v.indices.iter().position(|&i| i == term_id("the")).unwrap();
        assert_eq!(v.values[the], 2.0);
        let q = e.encode_query(
            "cat cat dog",
            s,
            |t| if t == term_id("cat") { 1 } else { 0 },
        );
        let cat = q.iter().find(|p| p.0 == term_id("cat")).unwrap().1;
        assert!(
            (cat - s.idf(1)).abs() < 1e-6,
            "a repeated query term counts once"
        );
        assert_ne!(term_id("cat"), term_id("hat"));
    }
}
