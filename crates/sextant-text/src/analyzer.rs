//! Analyzers: how text becomes terms, for BM25 indexing and querying alike.
//!
//! The pipeline is fixed and each stage is optional: split → lower-case → drop tokens outside
//! the length limits → drop stop words → stem. The split is either Unicode word segmentation
//! (UAX #29, so "don't" stays one word and CJK splits per character) or maximal runs of
//! alphanumeric characters (what tantivy's default tokenizer does: "don't" → "don", "t").
//! Documents and queries must go through the same analyzer: the configuration is stored with a
//! collection's sparse space.

use std::collections::HashSet;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

/// Tokens longer than this (in bytes) are dropped by default (tantivy uses 40; such tokens are
/// almost always base64, hashes or URLs).
pub const DEFAULT_MAX_TOKEN_LEN: usize = 40;

/// How text is cut into tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Unicode word boundaries (UAX #29), keeping only words with a letter or digit.
    UnicodeWords,
    /// Maximal runs of alphanumeric characters.
    Alphanumeric,
}

/// A language for stop words and stemming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// English.
    English,
}

impl FromStr for Language {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "en" | "english" => Ok(Language::English),
            _ => Err(format!("unsupported language {s:?}: expected english")),
        }
    }
}

/// English stop words: Lucene's `EnglishAnalyzer` default set.
pub const ENGLISH_STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// What an analyzer does; serialisable so it can be stored with a collection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnalyzerConfig {
    /// Tokenisation.
    pub split: Split,
    /// Lower-case every token.
    pub lowercase: bool,
    /// Drop tokens with fewer characters.
    pub min_chars: usize,
    /// Drop tokens longer than this many bytes.
    pub max_bytes: usize,
    /// Drop this language's stop words (matched after lower-casing).
    pub stop_words: Option<Language>,
    /// Stem with this language's Snowball stemmer.
    pub stemmer: Option<Language>,
}

impl Default for AnalyzerConfig {
    /// Unicode words, lower-cased, 1..=40 bytes, no stop words, no stemming.
    fn default() -> Self {
        AnalyzerConfig {
            split: Split::UnicodeWords,
            lowercase: true,
            min_chars: 1,
            max_bytes: DEFAULT_MAX_TOKEN_LEN,
            stop_words: None,
            stemmer: None,
        }
    }
}

/// A ready analyzer.
pub struct Analyzer {
    config: AnalyzerConfig,
    stop: HashSet<&'static str>,
    stemmer: Option<rust_stemmers::Stemmer>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("config", &self.config)
            .finish()
    }
}

impl Analyzer {
    /// Builds an analyzer.
    pub fn new(config: AnalyzerConfig) -> Analyzer {
        let stop = match config.stop_words {
            Some(Language::English) => ENGLISH_STOP_WORDS.iter().copied().collect(),
            None => HashSet::new(),
        };
        let stemmer = config.stemmer.map(|l| match l {
            Language::English => rust_stemmers::Stemmer::create(rust_stemmers::Algorithm::English),
        });
        Analyzer {
            config,
            stop,
            stemmer,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &AnalyzerConfig {
        &self.config
    }

    /// The terms of `text`, in order (repeats kept).
    pub fn terms(&self, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        self.for_each_term(text, |t| out.push(t));
        out
    }

    /// Calls `f` with each term of `text`.
    pub fn for_each_term(&self, text: &str, mut f: impl FnMut(String)) {
        self.for_each_term_str(text, |t| f(t.to_owned()));
    }

    /// Calls `f` with each term of `text`, borrowed: no allocation per term (one buffer is
    /// reused; ASCII tokens are lower-cased in place).
    pub fn for_each_term_str(&self, text: &str, mut f: impl FnMut(&str)) {
        let mut buf = String::new();
        let mut emit = |raw: &str| {
            let tok: &str = if !self.config.lowercase {
                raw
            } else if raw.is_ascii() {
                buf.clear();
                buf.push_str(raw);
                buf.make_ascii_lowercase();
                &buf
            } else {
                buf = raw.to_lowercase();
                &buf
            };
            let chars = if tok.is_ascii() {
                tok.len()
            } else {
                tok.chars().count()
            };
            if tok.len() > self.config.max_bytes || chars < self.config.min_chars {
                return;
            }
            if self.stop.contains(tok) {
                return;
            }
            match &self.stemmer {
                Some(s) => f(&s.stem(tok)),
                None => f(tok),
            }
        };
        match self.config.split {
            Split::UnicodeWords => {
                for w in text.unicode_words() {
                    emit(w);
                }
            }
            Split::Alphanumeric => {
                for w in text
                    .split(|c: char| !c.is_alphanumeric())
                    .filter(|w| !w.is_empty())
                {
                    emit(w);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines() {
        let text = "The Quick brown fox doesn't JUMP — 東京 running! x";
        let plain = Analyzer::new(AnalyzerConfig::default());
        assert_eq!(
            plain.terms(text),
            ["the", "quick", "brown", "fox", "doesn't", "jump", "東", "京", "running", "x"]
        );
        let alnum = Analyzer::new(AnalyzerConfig {
            split: Split::Alphanumeric,
            min_chars: 2,
            ..AnalyzerConfig::default()
        });
        assert_eq!(
            alnum.terms(text),
            ["the", "quick", "brown", "fox", "doesn", "jump", "東京", "running"]
        );
        let english = Analyzer::new(AnalyzerConfig {
            stop_words: Some(Language::English),
            stemmer: Some(Language::English),
            ..AnalyzerConfig::default()
        });
        assert_eq!(
            english.terms("The runners were running in the parks"),
            ["runner", "were", "run", "park"]
        );
        let long = "a".repeat(41);
        assert!(plain.terms(&long).is_empty());
        assert!(plain.terms("   \n\t ").is_empty());
    }
}
