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

use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::OnceLock;

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

/// A language with its own analysis: a Snowball stemmer (every language `rust-stemmers` has)
/// and, for all but Tamil, a stop-word list (English: Lucene's `EnglishAnalyzer` set; the
/// others: the Snowball project's lists as NLTK ships them). Text in a language without one
/// (Chinese, Japanese, Korean, Polish, …) is analysed without stemming; CJK runs become
/// bigrams whatever the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// Arabic.
    Arabic,
    /// Danish.
    Danish,
    /// Dutch.
    Dutch,
    /// English.
    English,
    /// Finnish.
    Finnish,
    /// French.
    French,
    /// German.
    German,
    /// Greek.
    Greek,
    /// Hungarian.
    Hungarian,
    /// Italian.
    Italian,
    /// Norwegian (Bokmål).
    Norwegian,
    /// Portuguese.
    Portuguese,
    /// Romanian.
    Romanian,
    /// Russian.
    Russian,
    /// Spanish.
    Spanish,
    /// Swedish.
    Swedish,
    /// Tamil (a stemmer, no stop-word list).
    Tamil,
    /// Turkish.
    Turkish,
}

impl Language {
    /// Every language, in name order.
    pub const ALL: &'static [Language] = &[
        Language::Arabic,
        Language::Danish,
        Language::Dutch,
        Language::English,
        Language::Finnish,
        Language::French,
        Language::German,
        Language::Greek,
        Language::Hungarian,
        Language::Italian,
        Language::Norwegian,
        Language::Portuguese,
        Language::Romanian,
        Language::Russian,
        Language::Spanish,
        Language::Swedish,
        Language::Tamil,
        Language::Turkish,
    ];

    /// Its ISO 639-1 code (Norwegian: "nb", which is what detection returns).
    pub fn code(self) -> &'static str {
        match self {
            Language::Arabic => "ar",
            Language::Danish => "da",
            Language::Dutch => "nl",
            Language::English => "en",
            Language::Finnish => "fi",
            Language::French => "fr",
            Language::German => "de",
            Language::Greek => "el",
            Language::Hungarian => "hu",
            Language::Italian => "it",
            Language::Norwegian => "nb",
            Language::Portuguese => "pt",
            Language::Romanian => "ro",
            Language::Russian => "ru",
            Language::Spanish => "es",
            Language::Swedish => "sv",
            Language::Tamil => "ta",
            Language::Turkish => "tr",
        }
    }

    /// Its name as configurations spell it ("english", "french", …).
    pub fn name(self) -> &'static str {
        match self {
            Language::Arabic => "arabic",
            Language::Danish => "danish",
            Language::Dutch => "dutch",
            Language::English => "english",
            Language::Finnish => "finnish",
            Language::French => "french",
            Language::German => "german",
            Language::Greek => "greek",
            Language::Hungarian => "hungarian",
            Language::Italian => "italian",
            Language::Norwegian => "norwegian",
            Language::Portuguese => "portuguese",
            Language::Romanian => "romanian",
            Language::Russian => "russian",
            Language::Spanish => "spanish",
            Language::Swedish => "swedish",
            Language::Tamil => "tamil",
            Language::Turkish => "turkish",
        }
    }

    /// The language with this ISO 639-1 code ("no" and "nn" are taken as Norwegian), if it
    /// has its own analysis.
    pub fn from_code(code: &str) -> Option<Language> {
        match code {
            "no" | "nn" => Some(Language::Norwegian),
            _ => Language::ALL.iter().copied().find(|l| l.code() == code),
        }
    }

    /// Whether it has a stop-word list.
    pub fn has_stop_words(self) -> bool {
        self != Language::Tamil
    }

    fn algorithm(self) -> rust_stemmers::Algorithm {
        use rust_stemmers::Algorithm as A;
        match self {
            Language::Arabic => A::Arabic,
            Language::Danish => A::Danish,
            Language::Dutch => A::Dutch,
            Language::English => A::English,
            Language::Finnish => A::Finnish,
            Language::French => A::French,
            Language::German => A::German,
            Language::Greek => A::Greek,
            Language::Hungarian => A::Hungarian,
            Language::Italian => A::Italian,
            Language::Norwegian => A::Norwegian,
            Language::Portuguese => A::Portuguese,
            Language::Romanian => A::Romanian,
            Language::Russian => A::Russian,
            Language::Spanish => A::Spanish,
            Language::Swedish => A::Swedish,
            Language::Tamil => A::Tamil,
            Language::Turkish => A::Turkish,
        }
    }

    /// Its stop words (lower-case), or `None` for Tamil.
    pub fn stop_words(self) -> Option<&'static HashSet<String>> {
        static LISTS: OnceLock<HashMap<Language, HashSet<String>>> = OnceLock::new();
        LISTS
            .get_or_init(|| {
                Language::ALL
                    .iter()
                    .filter(|l| l.has_stop_words())
                    .map(|&l| {
                        let words: HashSet<String> = if l == Language::English {
                            ENGLISH_STOP_WORDS.iter().map(|w| w.to_string()).collect()
                        } else {
                            // The crate names Norwegian "no".
                            let code = if l == Language::Norwegian {
                                "no"
                            } else {
                                l.code()
                            };
                            stop_words::get(code)
                                .into_iter()
                                .map(|w| w.trim().to_lowercase())
                                .filter(|w| !w.is_empty())
                                .collect()
                        };
                        (l, words)
                    })
                    .collect()
            })
            .get(&self)
    }
}

impl std::fmt::Display for Language {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Language {
    type Err = String;
    /// A name ("french") or an ISO 639-1 code ("fr"), in any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.to_ascii_lowercase();
        Language::ALL
            .iter()
            .copied()
            .find(|l| l.name() == lower)
            .or_else(|| Language::from_code(&lower))
            .ok_or_else(|| {
                format!(
                    "unsupported language {s:?}: expected one of {} (or their ISO 639-1 codes)",
                    Language::ALL
                        .iter()
                        .map(|l| l.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
    }
}

/// English stop words: Lucene's `EnglishAnalyzer` default set.
pub const ENGLISH_STOP_WORDS: &[&str] = &[
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// The language an analysis used for stop words and stemming, and why.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AnalysisLanguage {
    /// The language whose stop words and stemmer applied (when the configuration turns them
    /// on); `None`: no language-specific analysis.
    pub language: Option<Language>,
    /// The language detected in the text (ISO 639-1), when the configuration detects and the
    /// guess was reliable.
    pub detected: Option<&'static str>,
    /// How `language` was chosen.
    pub source: LanguageSource,
}

/// How an analysis chose its language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LanguageSource {
    /// The configuration's language (no detection, or detection unreliable on this text).
    Configured,
    /// Detected in the text.
    Detected,
    /// Given by the caller.
    Given,
    /// Chosen by the index: the analysis whose terms the collection holds most (queries of
    /// collections that detect each text's language).
    Index,
}

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
    /// Detect each text's language and use that language's stop words and stemmer where the
    /// two options above turn them on (the configured languages are the fallback when the
    /// guess is unreliable; a detected language without a stemmer or a list is analysed
    /// without). Needs version 2.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub detect_language: bool,
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
            detect_language: false,
        }
    }
}

impl AnalyzerConfig {
    /// Checks the options against each other.
    pub fn validate(&self) -> Result<(), String> {
        if self.detect_language && self.version < 2 {
            return Err(format!(
                "detect_language needs analyzer version 2 or later, not {}",
                self.version
            ));
        }
        if let Some(l) = self.stop_words {
            if !l.has_stop_words() {
                return Err(format!("there is no stop-word list for {l}"));
            }
        }
        Ok(())
    }
}

/// A ready analyzer.
pub struct Analyzer {
    config: AnalyzerConfig,
    stop: Option<&'static HashSet<String>>,
    stemmer: Option<rust_stemmers::Stemmer>,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer")
            .field("config", &self.config)
            .finish()
    }
}

/// Stop words and stemmer of one analysis.
struct Resources<'a> {
    stop: Option<&'static HashSet<String>>,
    stemmer: Option<&'a rust_stemmers::Stemmer>,
}

impl Analyzer {
    /// Builds an analyzer.
    pub fn new(config: AnalyzerConfig) -> Analyzer {
        let stop = config.stop_words.and_then(Language::stop_words);
        let stemmer = config
            .stemmer
            .map(|l| rust_stemmers::Stemmer::create(l.algorithm()));
        Analyzer {
            config,
            stop,
            stemmer,
        }
    }

    /// The language analysing `text` uses: the configured one, or with `detect_language` the
    /// text's own when detection is reliable.
    pub fn language_for(&self, text: &str) -> AnalysisLanguage {
        let configured = AnalysisLanguage {
            language: self.config.stemmer.or(self.config.stop_words),
            detected: None,
            source: LanguageSource::Configured,
        };
        if !self.config.detect_language || self.config.version < 2 {
            return configured;
        }
        match crate::language::detect(text) {
            Some(d) if d.reliable => AnalysisLanguage {
                language: Language::from_code(d.code),
                detected: Some(d.code),
                source: LanguageSource::Detected,
            },
            _ => configured,
        }
    }

    /// The stop words and stemmer for an analysis in `language`, as far as the configuration
    /// turns them on. `None` means the configured ones.
    fn with_language<R>(
        &self,
        language: Option<AnalysisLanguage>,
        f: impl FnOnce(&Resources<'_>) -> R,
    ) -> R {
        match language {
            Some(a) if a.source != LanguageSource::Configured => {
                let stemmer = match (self.config.stemmer, a.language) {
                    (Some(_), Some(l)) => Some(rust_stemmers::Stemmer::create(l.algorithm())),
                    _ => None,
                };
                let stop = match (self.config.stop_words, a.language) {
                    (Some(_), Some(l)) => l.stop_words(),
                    _ => None,
                };
                f(&Resources {
                    stop,
                    stemmer: stemmer.as_ref(),
                })
            }
            _ => f(&Resources {
                stop: self.stop,
                stemmer: self.stemmer.as_ref(),
            }),
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
    pub fn for_each_term_str(&self, text: &str, f: impl FnMut(&str)) {
        let language = self.config.detect_language.then(|| self.language_for(text));
        self.with_language(language, |r| self.analyse(text, r, f));
    }

    /// Like [`for_each_term_str`](Self::for_each_term_str) in the given language (`None`: no
    /// language-specific analysis), whatever the text's own; stop words and stemming still
    /// apply only where the configuration turns them on.
    pub fn for_each_term_in(&self, text: &str, language: Option<Language>, f: impl FnMut(&str)) {
        let given = AnalysisLanguage {
            language,
            detected: None,
            source: LanguageSource::Given,
        };
        self.with_language(Some(given), |r| self.analyse(text, r, f));
    }

    fn analyse(&self, text: &str, r: &Resources<'_>, mut f: impl FnMut(&str)) {
        if self.config.version < 2 || text.is_ascii() {
            self.split(text, r, &mut f);
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
                    self.split(&folded[rest..at], r, &mut f);
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
            None => self.split(&folded[rest..], r, &mut f),
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
    fn split(&self, text: &str, r: &Resources<'_>, f: &mut impl FnMut(&str)) {
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
            if r.stop.is_some_and(|s| s.contains(tok)) {
                return;
            }
            match r.stemmer {
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

    #[test]
    fn every_language_stems_and_most_have_stop_words() {
        for &l in Language::ALL {
            assert_eq!(l.name().parse::<Language>(), Ok(l));
            assert_eq!(l.code().parse::<Language>(), Ok(l));
            assert_eq!(serde_json::to_value(l).unwrap(), l.name());
            assert_eq!(l.stop_words().is_some(), l.has_stop_words(), "{l}");
            if let Some(s) = l.stop_words() {
                assert!(s.len() >= 30, "{l}: {} stop words", s.len());
                assert!(s
                    .iter()
                    .all(|w| w.to_lowercase() == *w && !w.trim().is_empty()));
            }
        }
        assert!("klingon"
            .parse::<Language>()
            .unwrap_err()
            .contains("french"));
        let cases = [
            (
                Language::French,
                "Les chats mangeaient des souris",
                vec!["chat", "mang", "sour"],
            ),
            (
                Language::German,
                "Die Kinder spielten in den Gärten",
                vec!["kind", "spielt", "gart"],
            ),
            (
                Language::Spanish,
                "Los niños corrían por las calles",
                vec!["niñ", "corr", "call"],
            ),
            (
                Language::Russian,
                "Кошки ловили мышей в домах",
                vec!["кошк", "лов", "мыш", "дом"],
            ),
        ];
        for (l, text, want) in cases {
            let a = Analyzer::new(AnalyzerConfig {
                stop_words: Some(l),
                stemmer: Some(l),
                ..AnalyzerConfig::default()
            });
            assert_eq!(a.terms(text), want, "{l}");
        }
        let bad = AnalyzerConfig {
            stop_words: Some(Language::Tamil),
            ..AnalyzerConfig::default()
        };
        assert!(bad.validate().unwrap_err().contains("tamil"));
        let old_detect = AnalyzerConfig {
            version: 1,
            detect_language: true,
            ..AnalyzerConfig::default()
        };
        assert!(old_detect.validate().unwrap_err().contains("version 2"));
    }

    #[test]
    fn detection_picks_each_texts_language() {
        let a = Analyzer::new(AnalyzerConfig {
            stemmer: Some(Language::English),
            detect_language: true,
            ..AnalyzerConfig::default()
        });
        let fr = "Les enfants jouaient dans les jardins de la ville pendant que leurs parents travaillaient";
        let l = a.language_for(fr);
        assert_eq!(l.source, LanguageSource::Detected);
        assert_eq!(
            (l.language, l.detected),
            (Some(Language::French), Some("fr"))
        );
        let french = Analyzer::new(AnalyzerConfig {
            stemmer: Some(Language::French),
            ..AnalyzerConfig::default()
        });
        assert_eq!(a.terms(fr), french.terms(fr));
        // English text stems as English; too short a text falls back to the configuration.
        let en = "The children were playing in the gardens of the city while their parents worked";
        assert_eq!(a.language_for(en).language, Some(Language::English));
        assert_eq!(a.language_for("jardins").source, LanguageSource::Configured);
        assert_eq!(a.terms("jardins"), ["jardin"]);
        // A detected language without a stemmer (Polish) is analysed without one.
        let pl =
            "Dzieci bawiły się w ogrodach miasta, podczas gdy ich rodzice pracowali w fabrykach";
        let l = a.language_for(pl);
        assert_eq!((l.language, l.detected), (None, Some("pl")));
        let plain = Analyzer::new(AnalyzerConfig::default());
        assert_eq!(a.terms(pl), plain.terms(pl));
        // Stop words stay off when the configuration has none, whatever the language.
        assert!(a.terms(fr).contains(&"le".to_string()));
        // A given language wins over detection.
        let mut given = Vec::new();
        a.for_each_term_in(fr, Some(Language::English), |t| given.push(t.to_string()));
        assert_ne!(given, a.terms(fr));
        // The setting is stored only when on, so older configurations read back unchanged.
        let json = serde_json::to_value(AnalyzerConfig::default()).unwrap();
        assert!(json.get("detect_language").is_none());
        let on = serde_json::to_value(a.config()).unwrap();
        assert_eq!(on["detect_language"], true);
    }
}
