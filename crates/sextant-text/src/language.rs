//! Language detection: which natural language a text is written in, by character-trigram
//! profiles (the `whatlang` crate: 70 languages, no model files).
//!
//! Languages are named by their ISO 639-1 code ("en", "de", "zh", "nb", …), which is what
//! ingestion stores in a chunk's payload and what filters match. Detection is a guess: its
//! [`Detection::reliable`] flag says whether the best language beat the runner-up by a clear
//! margin on enough text; short texts (a query of two words, a heading) are often unreliable.

use whatlang::Lang;

/// What [`detect`] found.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Detection {
    /// ISO 639-1 code of the most likely language.
    pub code: &'static str,
    /// Its English name.
    pub name: &'static str,
    /// whatlang's confidence in [0, 1].
    pub confidence: f64,
    /// Whether the guess is clear enough to act on: `confidence` at least
    /// [`RELIABLE_CONFIDENCE`].
    pub reliable: bool,
}

/// Texts longer than this many bytes are detected on their first this-many bytes (cut at a
/// character boundary): trigram profiles settle long before, and detection stays O(1) per
/// document.
pub const DETECT_PREFIX_BYTES: usize = 8192;

/// The confidence from which a detection counts as reliable. whatlang's own flag asks for 0.9,
/// which even a clear two-sentence Russian text misses (Cyrillic languages share trigrams); the
/// value is calibrated on the man-page sample (`sextant bench langid`, BENCHMARKS.md).
pub const RELIABLE_CONFIDENCE: f64 = 0.5;

/// The language of `text`, or `None` when it has no letters to go by.
pub fn detect(text: &str) -> Option<Detection> {
    let mut end = text.len().min(DETECT_PREFIX_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let info = whatlang::detect(&text[..end])?;
    Some(Detection {
        code: iso639_1(info.lang()),
        name: info.lang().eng_name(),
        confidence: info.confidence(),
        reliable: info.confidence() >= RELIABLE_CONFIDENCE,
    })
}

/// Every language [`detect`] can return, as ISO 639-1 codes.
pub fn detectable() -> impl Iterator<Item = &'static str> {
    Lang::all().iter().map(|&l| iso639_1(l))
}

/// The English name of a language given by ISO 639-1 code, when [`detect`] knows it.
pub fn name_of(code: &str) -> Option<&'static str> {
    Lang::all()
        .iter()
        .find(|&&l| iso639_1(l) == code)
        .map(|l| l.eng_name())
}

/// ISO 639-1 code of a whatlang language (whatlang names them by ISO 639-3; every one of them
/// has a 639-1 code: Mandarin is "zh", Bokmål "nb", Western Persian "fa").
fn iso639_1(lang: Lang) -> &'static str {
    match lang {
        Lang::Epo => "eo",
        Lang::Eng => "en",
        Lang::Rus => "ru",
        Lang::Cmn => "zh",
        Lang::Spa => "es",
        Lang::Por => "pt",
        Lang::Ita => "it",
        Lang::Ben => "bn",
        Lang::Fra => "fr",
        Lang::Deu => "de",
        Lang::Ukr => "uk",
        Lang::Kat => "ka",
        Lang::Ara => "ar",
        Lang::Hin => "hi",
        Lang::Jpn => "ja",
        Lang::Heb => "he",
        Lang::Yid => "yi",
        Lang::Pol => "pl",
        Lang::Amh => "am",
        Lang::Jav => "jv",
        Lang::Kor => "ko",
        Lang::Nob => "nb",
        Lang::Dan => "da",
        Lang::Swe => "sv",
        Lang::Fin => "fi",
        Lang::Tur => "tr",
        Lang::Nld => "nl",
        Lang::Hun => "hu",
        Lang::Ces => "cs",
        Lang::Ell => "el",
        Lang::Bul => "bg",
        Lang::Bel => "be",
        Lang::Mar => "mr",
        Lang::Kan => "kn",
        Lang::Ron => "ro",
        Lang::Slv => "sl",
        Lang::Hrv => "hr",
        Lang::Srp => "sr",
        Lang::Mkd => "mk",
        Lang::Lit => "lt",
        Lang::Lav => "lv",
        Lang::Est => "et",
        Lang::Tam => "ta",
        Lang::Vie => "vi",
        Lang::Urd => "ur",
        Lang::Tha => "th",
        Lang::Guj => "gu",
        Lang::Uzb => "uz",
        Lang::Pan => "pa",
        Lang::Aze => "az",
        Lang::Ind => "id",
        Lang::Tel => "te",
        Lang::Pes => "fa",
        Lang::Mal => "ml",
        Lang::Ori => "or",
        Lang::Mya => "my",
        Lang::Nep => "ne",
        Lang::Sin => "si",
        Lang::Khm => "km",
        Lang::Tuk => "tk",
        Lang::Aka => "ak",
        Lang::Zul => "zu",
        Lang::Sna => "sn",
        Lang::Afr => "af",
        Lang::Lat => "la",
        Lang::Slk => "sk",
        Lang::Cat => "ca",
        Lang::Tgl => "tl",
        Lang::Hye => "hy",
        Lang::Cym => "cy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_distinct_two_letter_codes() {
        let codes: Vec<&str> = detectable().collect();
        assert_eq!(codes.len(), Lang::all().len());
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), codes.len(), "two languages share a code");
        assert!(codes
            .iter()
            .all(|c| c.len() == 2 && c.bytes().all(|b| b.is_ascii_lowercase())));
        assert_eq!(name_of("de"), Some("German"));
        assert_eq!(name_of("xx"), None);
    }

    #[test]
    fn detects_clear_texts_and_declines_empty_ones() {
        let cases = [
            (
                "The children were playing in the gardens of the city while their parents were working in the factories",
                "en",
            ),
            (
                "Die Kinder spielten in den Gärten der Stadt, während ihre Eltern in den Fabriken arbeiteten",
                "de",
            ),
            (
                "Les enfants jouaient dans les jardins de la ville pendant que leurs parents travaillaient dans les usines",
                "fr",
            ),
            (
                "Дети играли в садах города, пока их родители работали на фабриках. Это было очень давно, и теперь никто уже не помнит, как назывались эти улицы.",
                "ru",
            ),
        ];
        for (text, code) in cases {
            let d = detect(text).expect("detected");
            assert_eq!(d.code, code, "{text}");
            assert!(d.reliable, "{text}: {d:?}");
        }
        assert_eq!(detect(""), None);
        assert_eq!(detect("1234 5678 !!"), None);
    }

    #[test]
    fn long_texts_are_cut_at_a_character_boundary() {
        // 3-byte characters, so the prefix limit falls inside one.
        let text = "日本語の文章です。".repeat(2000);
        let d = detect(&text).expect("detected");
        assert_eq!(d.code, "ja");
    }
}
