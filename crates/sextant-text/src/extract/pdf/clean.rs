//! Clean-up of the text laid out from a PDF page: characters first ([`clean_page`]), then
//! words hyphenated at line ends, which needs the words of the whole document
//! ([`vocabulary`], [`dehyphenate`]).

use std::collections::HashSet;

use unicode_normalization::UnicodeNormalization;

/// The soft hyphen: a producer's mark of a discretionary break.
const SOFT_HYPHEN: char = '\u{ad}';

/// Normalises characters, spaces and blank lines of one page's text.
///
/// Ligatures become their letters, a TeX spacing accent followed by a letter becomes the
/// accented letter when Unicode has one (`´a` → `á`), control characters (NUL included) and
/// zero-width ones are dropped, other spaces become a plain space, line separators a newline;
/// each line is trimmed with its runs of spaces collapsed, and runs of blank lines become one.
/// Soft hyphens are kept for [`dehyphenate`].
pub(super) fn clean_page(raw: &str) -> String {
    let mut chars = String::with_capacity(raw.len());
    let mut it = raw.chars().peekable();
    while let Some(c) = it.next() {
        if let Some(mark) = combining_accent(c) {
            if let Some(&letter) = it.peek() {
                if let Some(composed) = compose(letter, mark) {
                    chars.push(composed);
                    it.next();
                    continue;
                }
            }
        }
        match c {
            '\u{fb00}' => chars.push_str("ff"),
            '\u{fb01}' => chars.push_str("fi"),
            '\u{fb02}' => chars.push_str("fl"),
            '\u{fb03}' => chars.push_str("ffi"),
            '\u{fb04}' => chars.push_str("ffl"),
            '\u{fb05}' | '\u{fb06}' => chars.push_str("st"),
            '\n' | '\r' | '\u{0b}' | '\u{0c}' | '\u{85}' | '\u{2028}' | '\u{2029}' => {
                chars.push('\n')
            }
            '\t' | '\u{a0}' | '\u{2000}'..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}' => {
                chars.push(' ')
            }
            '\u{200b}' | '\u{2060}' | '\u{feff}' => {}
            c if c.is_control() => {}
            c => chars.push(c),
        }
    }
    let mut out = String::with_capacity(chars.len());
    let mut blank_run = true; // no blank lines at the start
    for line in chars.split('\n') {
        let mut words = line.split(' ').filter(|w| !w.is_empty()).peekable();
        if words.peek().is_none() {
            if !blank_run {
                out.push('\n');
                blank_run = true;
            }
            continue;
        }
        blank_run = false;
        for (i, w) in words.enumerate() {
            if i > 0 {
                out.push(' ');
            }
            out.push_str(w);
        }
        out.push('\n');
    }
    out.truncate(out.trim_end().len());
    out
}

/// The combining mark of a spacing accent that TeX draws before its letter (`´`, `ˆ`, `˜`, `¨`,
/// …; not the ASCII `` ` `` and `^`, which are far more often code than accents).
fn combining_accent(c: char) -> Option<char> {
    Some(match c {
        '\u{b4}' => '\u{301}',
        '\u{2c6}' => '\u{302}',
        '\u{2dc}' => '\u{303}',
        '\u{af}' => '\u{304}',
        '\u{2d8}' => '\u{306}',
        '\u{2d9}' => '\u{307}',
        '\u{a8}' => '\u{308}',
        '\u{2da}' => '\u{30a}',
        '\u{2dd}' => '\u{30b}',
        '\u{2c7}' => '\u{30c}',
        '\u{b8}' => '\u{327}',
        '\u{2db}' => '\u{328}',
        _ => return None,
    })
}

/// `letter` with `mark` as one precomposed character, when Unicode has one (TeX's dotless ı
/// takes its accent as an i would).
fn compose(letter: char, mark: char) -> Option<char> {
    if !letter.is_alphabetic() {
        return None;
    }
    let base = if letter == 'ı' { 'i' } else { letter };
    let mut composed = [base, mark].into_iter().nfc();
    match (composed.next(), composed.next()) {
        (Some(c), None) => Some(c),
        _ => None,
    }
}

/// Every word (run of letters, lower-cased) of the cleaned pages.
pub(super) fn vocabulary(pages: &[String]) -> HashSet<String> {
    let mut words = HashSet::new();
    for page in pages {
        for w in page.split(|c: char| !c.is_alphabetic()) {
            if !w.is_empty() {
                words.insert(w.to_lowercase());
            }
        }
    }
    words
}

/// Joins words broken at line ends. A line ending in a letter and `-` followed by a line
/// starting with a lower-case letter loses its line break, and also the hyphen when the joined
/// word is in `vocabulary` (it occurs unbroken elsewhere in the document); a compound such as
/// `well-`/`known` keeps its hyphen. A soft hyphen at a line end always joins; soft hyphens
/// elsewhere are dropped.
pub(super) fn dehyphenate(page: &str, vocabulary: &HashSet<String>) -> String {
    let lines: Vec<&str> = page.split('\n').collect();
    let mut out = String::with_capacity(page.len());
    for (i, line) in lines.iter().enumerate() {
        let next = lines.get(i + 1).copied().unwrap_or("");
        let starts_lower = next.chars().next().is_some_and(char::is_lowercase);
        if let Some(head) = line.strip_suffix(SOFT_HYPHEN).filter(|_| !next.is_empty()) {
            out.push_str(head);
            continue;
        }
        if let Some(head) = line.strip_suffix('-').filter(|_| starts_lower) {
            let prefix = trailing_letters(head);
            if !prefix.is_empty() {
                let suffix: String = next.chars().take_while(|c| c.is_alphabetic()).collect();
                let joined = format!("{prefix}{suffix}").to_lowercase();
                out.push_str(if vocabulary.contains(&joined) {
                    head
                } else {
                    line
                });
                continue;
            }
        }
        out.push_str(line);
        if i + 1 < lines.len() {
            out.push('\n');
        }
    }
    out.retain(|c| c != SOFT_HYPHEN);
    out
}

/// The run of letters `s` ends with.
fn trailing_letters(s: &str) -> &str {
    let start = s
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphabetic())
        .last()
        .map_or(s.len(), |(i, _)| i);
    &s[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn characters_spaces_and_blank_lines() {
        let raw = "\n\n  The \u{fb01}nal \u{fb02}ight,\u{a0}e\u{fb03}cient\u{0}  and\t\u{fb04}y.  \r\n\n\n\n\
                   Mudr\u{b4}ak and Dvo\u{2c7}r\u{b4}ak na\u{ef}ve \u{b4}\u{131}  \u{200b}\u{c}x\u{7}y\n\n";
        assert_eq!(
            clean_page(raw),
            "The final flight, efficient and ffly.\n\nMudrák and Dvořák naïve í\nxy"
        );
        // An accent before something it does not compose with stays as it is.
        assert_eq!(clean_page("don\u{b4}t 5\u{b4}"), "don\u{b4}t 5\u{b4}");
        assert_eq!(clean_page(" \n \u{3000}\n"), "");
    }

    #[test]
    fn hyphens_at_line_ends_join_only_known_words() {
        let pages = [
            "Typesetters break words with hyphen-\nation, and hyphenation is undone;".to_string(),
            "a well-\nknown compound keeps it, and so does a new-\nish word.\nStop -\nhere, 10-\n12, Up-\nPer"
                .to_string(),
        ];
        let vocab = vocabulary(&pages);
        assert!(vocab.contains("hyphenation") && vocab.contains("well"));
        assert_eq!(
            dehyphenate(&pages[0], &vocab),
            "Typesetters break words with hyphenation, and hyphenation is undone;"
        );
        assert_eq!(
            dehyphenate(&pages[1], &vocab),
            "a well-known compound keeps it, and so does a new-ish word.\nStop -\nhere, 10-\n12, Up-\nPer"
        );
        assert_eq!(
            dehyphenate("soft\u{ad}\nly, re\u{ad}ally\u{ad}", &vocab),
            "softly, really"
        );
    }
}
