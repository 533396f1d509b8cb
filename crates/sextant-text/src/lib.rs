//! Sextant's text processing.
//!
//! - [`analyzer`]: text → terms (NFKC and case folding, CJK bigrams, Unicode word segmentation
//!   or alphanumeric runs, lower-casing, length limits, stop words and Snowball stemming in 18
//!   languages, chosen per collection or detected per text; versioned);
//! - [`bm25`]: BM25 as a sparse encoder: documents become term counts (terms as text) with a
//!   length, queries become IDF-weighted term lists, computed from collection-wide statistics so
//!   scores never depend on how the collection is split into segments.
//!
//! - [`chunk`]: fixed-size (tokens, with overlap), sentence, Markdown paragraph/heading,
//!   semantic (embedding distance between sentences) and hierarchical (parent/child) chunking
//!   with byte offsets;
//! - [`extract`](mod@extract): plain text, Markdown, HTML and PDF documents → the text to chunk, a
//!   title, and a map from text offsets back to source offsets (HTML reduced to its visible
//!   content; PDF, with the `pdf` feature, page by page with each page's start);
//! - [`dedup`]: exact-duplicate keys and MinHash/LSH signatures for near-duplicates;
//! - [`language`]: language detection (ISO 639-1 codes, with a reliability flag);
//! - [`pii`]: detection and redaction (mask or keyed hash) of e-mail addresses, phone numbers,
//!   card numbers (Luhn), IBANs (mod 97), IP addresses and national identifiers.
//!
//! Pure functions over strings: no vectors, models or storage here.
//!
//! Ingestion uses them in this order: [`extract()`] the file's text, [`Redactor::redact`] it,
//! chunk the *redacted* text (so no chunk boundary cuts a value in two and hides both halves
//! from the detector), and map every chunk back to the original file through both maps:
//! `extracted.map.range_to_source(redacted.map.range_to_source(chunk.start..chunk.end))`
//! (`tests/integration/pipeline.rs` does exactly this).
#![forbid(unsafe_code)]

pub mod analyzer;
pub mod bm25;
pub mod chunk;
pub mod dedup;
pub mod extract;
pub mod language;
pub mod pii;

pub use analyzer::{
    is_cjk, AnalysisLanguage, Analyzer, AnalyzerConfig, Language, LanguageSource, Split,
    ANALYZER_VERSION, LEGACY_ANALYZER_VERSION,
};
pub use bm25::{term_id, Bm25Encoder, Bm25Params, CorpusStats};
pub use extract::{extract, extract_bytes, ExtractError, Extracted, Format, OffsetMap};
pub use pii::{PiiKind, Redacted, RedactionMode, Redactor};
