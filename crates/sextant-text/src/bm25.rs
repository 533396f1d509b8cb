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
//! **Term identity is the term itself.** A document is encoded as [`TermCounts`] (term text →
//! frequency) and a query as (term text, IDF) pairs; the storage layer numbers terms in a term
//! dictionary per segment, so two distinct terms never share postings or statistics. Analyzer
//! version 1 (collections made before this) identified terms by a 32-bit FNV-1a hash
//! ([`term_id`]), which merged colliding terms (`1023898` and `1027041`, and 106 more pairs among
//! the numbers 1000000..2000000); with a version-1 analyzer the encoder still emits each term as
//! [`legacy_term`]`(term_id(term))`, so such collections keep scoring as they did.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use sextant_core::{legacy_term, SparseVector, TermCounts};

use crate::analyzer::{AnalysisLanguage, Analyzer, AnalyzerConfig, Language, LanguageSource};

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

/// The 32-bit id analyzer version 1 gave a term: FNV-1a over its UTF-8 bytes, folded to 32
/// bits. Not collision-free; kept for collections written with it.
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

    /// Calls `f` with each term of `text` as the index identifies it: the term itself, or its
    /// legacy hashed form under analyzer version 1.
    fn for_each_term(&self, text: &str, mut f: impl FnMut(&str)) {
        if self.analyzer.config().version < 2 {
            self.analyzer
                .for_each_term_str(text, |t| f(&legacy_term(term_id(t))));
        } else {
            self.analyzer.for_each_term_str(text, f);
        }
    }

    /// A document: each distinct term with its frequency (in increasing term order), and its
    /// length in terms.
    pub fn encode_document(&self, text: &str) -> TermCounts {
        let mut counts: HashMap<String, f32> = HashMap::new();
        let mut len = 0usize;
        self.for_each_term(text, |t| {
            len += 1;
            match counts.get_mut(t) {
                Some(c) => *c += 1.0,
                None => {
                    counts.insert(t.to_owned(), 1.0);
                }
            }
        });
        let mut terms: Vec<(String, f32)> = counts.into_iter().collect();
        terms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        TermCounts {
            terms,
            len: len as f32,
        }
    }

    /// A document as a sparse vector, where `id` numbers terms (a caller's own term
    /// dictionary), and its length in terms.
    pub fn encode_document_with(
        &self,
        text: &str,
        mut id: impl FnMut(&str) -> u32,
    ) -> (SparseVector, f32) {
        let mut counts: HashMap<u32, f32> = HashMap::new();
        let mut len = 0usize;
        self.for_each_term(text, |t| {
            *counts.entry(id(t)).or_default() += 1.0;
            len += 1;
        });
        let v = SparseVector::from_pairs(counts.into_iter().collect()).expect("counts are finite");
        (v, len as f32)
    }

    /// The distinct terms of a query, in increasing order.
    pub fn query_terms(&self, text: &str) -> Vec<String> {
        self.analyse_query(text, None).0
    }

    /// The distinct terms of a query (in increasing order) and the language they were analysed
    /// in: `language`, or the analyzer's own choice (the configured language, or with
    /// detection the query's when the guess is reliable).
    pub fn analyse_query(
        &self,
        text: &str,
        language: Option<Language>,
    ) -> (Vec<String>, AnalysisLanguage) {
        let mut terms: Vec<String> = Vec::new();
        let legacy = self.analyzer.config().version < 2;
        let mut push = |t: &str| {
            terms.push(if legacy {
                legacy_term(term_id(t))
            } else {
                t.to_owned()
            })
        };
        let used = match language {
            Some(l) => {
                self.analyzer.for_each_term_in(text, Some(l), &mut push);
                AnalysisLanguage {
                    language: Some(l),
                    detected: None,
                    source: LanguageSource::Given,
                }
            }
            None => {
                self.analyzer.for_each_term_str(text, &mut push);
                self.analyzer.language_for(text)
            }
        };
        terms.sort_unstable();
        terms.dedup();
        (terms, used)
    }

    /// [`analyse_query`](Self::analyse_query), except that an analyzer which detects each
    /// text's language chooses the query's by the index when no language is given: a query is
    /// too short to detect reliably, and a wrong guess stems it unlike the documents it is
    /// after. Every language's analysis (and none) is tried; the one whose terms the
    /// collection holds most (`doc_freq` > 0) wins, ties going to the detected language, then
    /// the configured one, then the larger summed document frequency.
    pub fn analyse_query_by_index(
        &self,
        text: &str,
        language: Option<Language>,
        doc_freq: impl Fn(&str) -> u64,
    ) -> (Vec<String>, AnalysisLanguage) {
        if language.is_some() || !self.analyzer.config().detect_language {
            return self.analyse_query(text, language);
        }
        let guess = self.analyzer.language_for(text);
        let fallback = self
            .analyzer
            .config()
            .stemmer
            .or(self.analyzer.config().stop_words);
        // (terms found, summed document frequency, preference), the terms, the language.
        type Candidate = ((usize, u64, u8), Vec<String>, Option<Language>);
        let mut best: Option<Candidate> = None;
        let candidates = std::iter::once(None).chain(Language::ALL.iter().copied().map(Some));
        for l in candidates {
            let terms = match l {
                Some(l) => self.analyse_query(text, Some(l)).0,
                None => self.terms_without_language(text),
            };
            let found = terms.iter().filter(|t| doc_freq(t) > 0).count();
            let preference = if l.is_some() && l == guess.language && guess.detected.is_some() {
                2
            } else if l == fallback {
                1
            } else {
                0
            };
            let mass: u64 = terms.iter().map(|t| doc_freq(t)).sum();
            let key = (found, mass, preference);
            if best.as_ref().is_none_or(|(k, _, _)| key > *k) {
                best = Some((key, terms, l));
            }
        }
        let (_, terms, chosen) = best.expect("at least one candidate");
        (
            terms,
            AnalysisLanguage {
                language: chosen,
                detected: guess.detected,
                source: LanguageSource::Index,
            },
        )
    }

    /// A query's distinct terms with no stemming or stop words (whatever the configuration).
    fn terms_without_language(&self, text: &str) -> Vec<String> {
        let mut terms: Vec<String> = Vec::new();
        let legacy = self.analyzer.config().version < 2;
        self.analyzer.for_each_term_in(text, None, |t| {
            terms.push(if legacy {
                legacy_term(term_id(t))
            } else {
                t.to_owned()
            })
        });
        terms.sort_unstable();
        terms.dedup();
        terms
    }

    /// A feedback document's term counts for query expansion (RM3): analysed like the
    /// collection's documents but in `language` (the query's analysis language), with that
    /// language's stop words removed where it has a list, so expansion terms carry content.
    pub fn feedback_counts(&self, text: &str, language: Option<Language>) -> TermCounts {
        let config = self.analyzer.config();
        let feedback = Bm25Encoder::new(
            AnalyzerConfig {
                stop_words: language.filter(|l| l.has_stop_words()),
                stemmer: config.stemmer.and(language),
                detect_language: false,
                ..config.clone()
            },
            self.params,
        );
        feedback.encode_document(text)
    }

    /// Weighted query terms (each its weight times its IDF, in the order given), where
    /// `doc_freq` gives the number of live documents holding a term across the collection.
    pub fn weigh(
        &self,
        terms: &[(String, f32)],
        stats: CorpusStats,
        doc_freq: impl Fn(&str) -> u64,
    ) -> Vec<(String, f32)> {
        terms
            .iter()
            .map(|(t, w)| (t.clone(), w * stats.idf(doc_freq(t))))
            .collect()
    }

    /// A query: each distinct term once (in increasing term order), weighted by its IDF (a
    /// repeated query word does not count twice, as in bm25s and a disjunction of term queries
    /// in Lucene/tantivy), where `doc_freq` gives the number of live documents holding a term
    /// across the whole collection.
    pub fn encode_query(
        &self,
        text: &str,
        stats: CorpusStats,
        doc_freq: impl Fn(&str) -> u64,
    ) -> Vec<(String, f32)> {
        let terms: Vec<(String, f32)> = self
            .query_terms(text)
            .into_iter()
            .map(|t| (t, 1.0))
            .collect();
        self.weigh(&terms, stats, doc_freq)
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
        let d = e.encode_document("the cat and the hat");
        assert_eq!(d.len, 5.0);
        assert_eq!(
            d.terms,
            [
                ("and".to_string(), 1.0),
                ("cat".into(), 1.0),
                ("hat".into(), 1.0),
                ("the".into(), 2.0)
            ]
        );
        let q = e.encode_query("cat cat dog", s, |t| if t == "cat" { 1 } else { 0 });
        assert_eq!(q.len(), 2);
        assert_eq!(q[0].0, "cat");
        assert!(
            (q[0].1 - s.idf(1)).abs() < 1e-6,
            "a repeated query term counts once"
        );
    }

    /// Regression (issue 14, item 3): analyzer version 1's hashed ids merged colliding terms.
    #[test]
    fn colliding_numbers_stay_distinct_terms() {
        assert_eq!(
            term_id("1023898"),
            term_id("1027041"),
            "the known FNV-1a collision"
        );
        let e = Bm25Encoder::new(AnalyzerConfig::default(), Bm25Params::default());
        let d = e.encode_document("1023898 1027041");
        assert_eq!(d.terms.len(), 2);
        let legacy = Bm25Encoder::new(
            AnalyzerConfig {
                version: 1,
                ..AnalyzerConfig::default()
            },
            Bm25Params::default(),
        );
        let d = legacy.encode_document("1023898 1027041");
        assert_eq!(d.terms, [(legacy_term(term_id("1023898")), 2.0)]);
    }

    /// A million distinct numeric tokens and 100,000 random words are a million and a hundred
    /// thousand distinct terms: nothing is merged between analysis and the index's terms.
    #[test]
    fn a_million_numbers_and_random_words_are_distinct_terms() {
        let e = Bm25Encoder::new(AnalyzerConfig::default(), Bm25Params::default());
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut text = String::new();
        let mut added = 0usize;
        let flush = |text: &mut String, seen: &mut std::collections::HashSet<String>| {
            for (t, c) in e.encode_document(text).terms {
                assert_eq!(c, 1.0, "{t} counted twice");
                assert!(seen.insert(t.clone()), "{t} emitted twice");
            }
            text.clear();
        };
        for n in 1_000_000u32..2_000_000 {
            text.push_str(&n.to_string());
            text.push(' ');
            added += 1;
            if added.is_multiple_of(10_000) {
                flush(&mut text, &mut seen);
            }
        }
        // Random lower-case words of 3..=12 letters (xorshift, fixed seed), distinct.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut words = std::collections::HashSet::new();
        while words.len() < 100_000 {
            let mut w = String::new();
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            for i in 0..3 + (x % 10) {
                w.push((b'a' + ((x >> (5 + i * 5)) % 26) as u8) as char);
            }
            if words.insert(w.clone()) {
                text.push_str(&w);
                text.push(' ');
                if words.len().is_multiple_of(10_000) {
                    flush(&mut text, &mut seen);
                }
            }
        }
        flush(&mut text, &mut seen);
        assert_eq!(seen.len(), 1_100_000);
    }
}
