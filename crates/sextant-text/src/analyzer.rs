//! Analyzers: how text becomes terms, for BM25 indexing and querying alike.
//!
//! The pipeline is fixed and each stage is optional: split → lower-case → drop tokens outside
//! the length limits → drop stop words → stem. The split is either Unicode word segmentation
//! (UAX #29, so "don't" stays one word and CJK splits per character) or maximal runs of
//! alphanumeric characters (what tantivy's default tokenizer does: "don't" → "don", "t").
//! Documents and queries must go through the same analyzer: the configuration is stored with a
//! collection's sparse space.
//!
//! **Versions** ([`AnalyzerConfig::version`]; changing what an analyzer emits changes the scores
//! of a collection that already holds documents, so behaviour is versioned and stored):
//! - 1 (configurations stored without a version): the pipeline above on the raw text; a run of
//!   CJK characters is one character per term (UAX #29) or one over-long token (alphanumeric
//!   runs, then dropped), and the BM25 encoder identifies terms by a 32-bit hash.
//! - 2 ([`ANALYZER_VERSION`], the default): non-ASCII text is first normalised to NFKC and
//!   case-folded (Unicode lower-casing plus the full folds ß → ss and ς → σ; the few other full
//!   folds, e.g. Cherokee, are not applied); runs of Han, Hiragana, Katakana and Hangul become
//!   overlapping character bigrams (a one-character run its unigram), exempt from `min_chars`,
//!   stop words and stemming, which are for Latin-script words; the rest is split as
//!   configured. The BM25 encoder keeps terms as text (exact identity). ASCII text takes the
//!   same fast path as in version 1 (NFKC leaves it unchanged).

use std::collections::HashSet;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};
use unicode_normalization::UnicodeNormalization;
use unicode_segmentation::UnicodeSegmentation;

/// The analyzer version new configurations get (see the module docs).
pub const ANALYZER_VERSION: u32 = 2;

/// The version a stored configuration without a `version` field has.
pub const LEGACY_ANALYZER_VERSION: u32 = 1;

fn legacy_version() -> u32 {
    LEGACY_ANALYZER_VERSION
}

fn known_version<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let v = u32::deserialize(d)?;
    if (LEGACY_ANALYZER_VERSION..=ANALYZER_VERSION).contains(&v) {
        Ok(v)
    } else {
        Err(serde::de::Error::custom(format!(
            "analyzer version {v} is not supported (this Sextant knows {LEGACY_ANALYZER_VERSION}..={ANALYZER_VERSION})"
        )))
    }
}

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
    /// Behaviour version (module docs): 2 normalises Unicode, segments CJK text and keeps BM25
    /// terms exact; 1 is what collections made before versions were stored do.
    #[serde(default = "legacy_version", deserialize_with = "known_version")]
    pub version: u32,
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
    /// The current version, Unicode words, lower-cased, 1..=40 bytes, no stop words, no
    /// stemming.
    fn default() -> Self {
        AnalyzerConfig {
            version: ANALYZER_VERSION,
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
        if self.config.version < 2 || text.is_ascii() {
            self.split(text, &mut f);
            return;
        }
        let folded = self.normalise(text);
        let mut rest = 0;
        let mut run: Option<usize> = None;
        let mut prev: Option<(usize, char)> = None;
        let mut chars = 0usize;
        for (at, c) in folded.char_indices() {
            if is_cjk(c) {
                if run.is_none() {
                    self.split(&folded[rest..at], &mut f);
                    run = Some(at);
                    chars = 0;
                }
                if let Some((p, _)) = prev {
                    f(&folded[p..at + c.len_utf8()]);
                }
                prev = Some((at, c));
                chars += 1;
            } else if let Some(start) = run.take() {
                if chars == 1 {
                    f(&folded[start..at]);
                }
                prev = None;
                rest = at;
            }
        }
        match run {
            Some(start) if chars == 1 => f(&folded[start..]),
            Some(_) => {}
            None => self.split(&folded[rest..], &mut f),
        }
    }

    /// NFKC and case folding (version 2, non-ASCII text).
    fn normalise(&self, text: &str) -> String {
        let nfkc: String = text.nfkc().collect();
        if !self.config.lowercase {
            return nfkc;
        }
        let lower = nfkc.to_lowercase();
        if lower.contains(['ß', 'ς']) {
            lower.replace('ß', "ss").replace('ς', "σ")
        } else {
            lower
        }
    }

    /// Splits text with no CJK run (or any text, in version 1) and emits its words through the
    /// rest of the pipeline.
    fn split(&self, text: &str, f: &mut impl FnMut(&str)) {
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

/// Whether `c` belongs to a script written without spaces between words that version 2 cuts
/// into bigrams: Han (with 々〆〇), Hiragana, Katakana (with the prolonged sound mark) and
/// Hangul (syllables and jamo).
pub fn is_cjk(c: char) -> bool {
    matches!(c,
        '\u{3005}'..='\u{3007}'
        | '\u{3041}'..='\u{309F}'
        | '\u{30A1}'..='\u{30FA}'
        | '\u{30FC}'..='\u{30FF}'
        | '\u{31F0}'..='\u{31FF}'
        | '\u{3400}'..='\u{4DBF}'
        | '\u{4E00}'..='\u{9FFF}'
        | '\u{F900}'..='\u{FAFF}'
        | '\u{20000}'..='\u{3FFFF}'
        | '\u{1100}'..='\u{11FF}'
        | '\u{3131}'..='\u{318E}'
        | '\u{AC00}'..='\u{D7A3}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipelines() {
        let text = "The Quick brown fox doesn't JUMP — 東京 running! x";
        let legacy = Analyzer::new(AnalyzerConfig {
            version: 1,
            ..AnalyzerConfig::default()
        });
        assert_eq!(
            legacy.terms(text),
            ["the", "quick", "brown", "fox", "doesn't", "jump", "東", "京", "running", "x"]
        );
        let plain = Analyzer::new(AnalyzerConfig::default());
        assert_eq!(
            plain.terms(text),
            ["the", "quick", "brown", "fox", "doesn't", "jump", "東京", "running", "x"]
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

    #[test]
    fn cjk_runs_become_bigrams() {
        let a = Analyzer::new(AnalyzerConfig {
            split: Split::Alphanumeric,
            min_chars: 2,
            ..AnalyzerConfig::default()
        });
        // A Chinese sentence was one over-long alphanumeric token, dropped.
        assert_eq!(
            a.terms("我们喜欢学习中文。"),
            ["我们", "们喜", "喜欢", "欢学", "学习", "习中", "中文"]
        );
        // Kana and kanji together; a single-character run is its unigram despite min_chars.
        assert_eq!(
            a.terms("東京タワーへ行く 猫"),
            ["東京", "京タ", "タワ", "ワー", "ーへ", "へ行", "行く", "猫"]
        );
        // Hangul words are cut into bigrams too, so a particle does not hide the noun.
        assert_eq!(a.terms("학교에 갑니다"), ["학교", "교에", "갑니", "니다"]);
        // Mixed scripts: Latin words around CJK runs keep the configured pipeline.
        assert_eq!(
            a.terms("iPhone的价格 2024年"),
            ["iphone", "的价", "价格", "2024", "年"]
        );
    }

    #[test]
    fn nfkc_and_case_folding() {
        let a = Analyzer::new(AnalyzerConfig::default());
        // Full-width Latin and digits, ligatures, half-width katakana, composed vs decomposed.
        assert_eq!(a.terms("ＡＢＣ １２３"), ["abc", "123"]);
        assert_eq!(a.terms("ﬁle"), ["file"]);
        assert_eq!(a.terms("ｶﾀｶﾅ"), a.terms("カタカナ"));
        assert_eq!(a.terms("Cafe\u{301}"), a.terms("café"));
        assert_eq!(a.terms("STRASSE Straße"), ["strasse", "strasse"]);
        assert_eq!(a.terms("ΟΔΟΣ οδος"), ["οδοσ", "οδοσ"]);
        // Version 1 keeps its behaviour: no normalisation.
        let legacy = Analyzer::new(AnalyzerConfig {
            version: 1,
            ..AnalyzerConfig::default()
        });
        assert_eq!(legacy.terms("ＡＢＣ"), ["ａｂｃ"]);
    }

    #[test]
    fn versions_are_stored_and_checked() {
        let old: AnalyzerConfig = serde_json::from_str(
            r#"{"split": "unicode_words", "lowercase": true, "min_chars": 1, "max_bytes": 40,
                "stop_words": null, "stemmer": null}"#,
        )
        .unwrap();
        assert_eq!(old.version, LEGACY_ANALYZER_VERSION);
        let json = serde_json::to_value(AnalyzerConfig::default()).unwrap();
        assert_eq!(json["version"], ANALYZER_VERSION);
        let mut future = json.clone();
        future["version"] = 3.into();
        let err = serde_json::from_value::<AnalyzerConfig>(future).unwrap_err();
        assert!(err.to_string().contains("analyzer version 3"), "{err}");
    }
}
