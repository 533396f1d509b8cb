//! HTML character references (`&amp;`, `&#233;`, `&#x1F600;`), decoded with the source span of
//! every decoded character so extracted text can be mapped back to the source.
//!
//! The named table covers the references that occur in real prose (Latin-1 letters, quotes,
//! dashes, spaces, common symbols), not all 2,231 of the HTML standard: an unknown name stays in
//! the text as written, which is what a browser does for an unknown name too.

/// Calls `f(c, source_start, source_len)` for every character of `raw` (which starts at byte
/// `base` of the source) after decoding character references. A decoded reference reports the
/// whole reference as its span; other characters report themselves.
pub(crate) fn decode(raw: &str, base: usize, mut f: impl FnMut(char, usize, usize)) {
    let mut i = 0;
    let bytes = raw.as_bytes();
    while i < raw.len() {
        if bytes[i] == b'&' {
            if let Some((c, len)) = reference(&raw[i..]) {
                f(c, base + i, len);
                i += len;
                continue;
            }
        }
        let c = raw[i..]
            .chars()
            .next()
            .expect("i is a char boundary inside raw");
        f(c, base + i, c.len_utf8());
        i += c.len_utf8();
    }
}

/// Decodes `raw` to a string (no spans).
pub(crate) fn decode_to_string(raw: &str) -> String {
    let mut s = String::with_capacity(raw.len());
    decode(raw, 0, |c, _, _| s.push(c));
    s
}

/// The reference at the start of `s` (which starts with `&`): its character and its length in
/// bytes, or `None` when it is not a reference.
fn reference(s: &str) -> Option<(char, usize)> {
    let b = s.as_bytes();
    if b.get(1) == Some(&b'#') {
        let (radix, start) = match b.get(2) {
            Some(b'x' | b'X') => (16, 3),
            _ => (10, 2),
        };
        let digits = b[start..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || (radix == 16 && c.is_ascii_hexdigit()))
            .count();
        if digits == 0 {
            return None;
        }
        let end = start + digits;
        let len = if b.get(end) == Some(&b';') {
            end + 1
        } else {
            end
        };
        let value = if digits > 8 {
            u32::MAX
        } else {
            u32::from_str_radix(&s[start..end], radix).unwrap_or(u32::MAX)
        };
        return Some((numeric(value), len));
    }
    let name_len = b[1..]
        .iter()
        .take_while(|c| c.is_ascii_alphanumeric())
        .count();
    if name_len == 0 {
        return None;
    }
    let name = &s[1..1 + name_len];
    let has_semicolon = b.get(1 + name_len) == Some(&b';');
    // Browsers accept a few legacy names without the semicolon.
    let legacy = matches!(name, "amp" | "lt" | "gt" | "quot" | "nbsp" | "copy" | "reg");
    if !has_semicolon && !legacy {
        return None;
    }
    let c = named(name)?;
    Some((c, 1 + name_len + usize::from(has_semicolon)))
}

/// A numeric reference's character, with the HTML standard's repairs: NUL, surrogates and values
/// past U+10FFFF become U+FFFD, and 0x80–0x9F are read as Windows-1252 (what authors meant).
fn numeric(v: u32) -> char {
    const CP1252: [char; 32] = [
        '€', '\u{81}', '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', '\u{8d}', 'Ž',
        '\u{8f}', '\u{90}', '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', '\u{9d}',
        'ž', 'Ÿ',
    ];
    match v {
        0 => '\u{fffd}',
        0x80..=0x9f => CP1252[(v - 0x80) as usize],
        _ => char::from_u32(v).unwrap_or('\u{fffd}'),
    }
}

fn named(name: &str) -> Option<char> {
    // The non-breaking space is decoded as a plain space: extracted text is for reading and
    // embedding, where U+00A0 only gets in the way of word splitting.
    let c = match name {
        "amp" => '&',
        "lt" => '<',
        "gt" => '>',
        "quot" => '"',
        "apos" => '\'',
        "nbsp" | "ensp" | "emsp" | "thinsp" => ' ',
        "shy" => '\u{ad}',
        "zwj" => '\u{200d}',
        "zwnj" => '\u{200c}',
        "copy" => '©',
        "reg" => '®',
        "trade" => '™',
        "hellip" => '…',
        "mdash" => '—',
        "ndash" => '–',
        "minus" => '−',
        "lsquo" => '‘',
        "rsquo" => '’',
        "sbquo" => '‚',
        "ldquo" => '“',
        "rdquo" => '”',
        "bdquo" => '„',
        "laquo" => '«',
        "raquo" => '»',
        "lsaquo" => '‹',
        "rsaquo" => '›',
        "bull" => '•',
        "middot" => '·',
        "prime" => '′',
        "Prime" => '″',
        "dagger" => '†',
        "Dagger" => '‡',
        "sect" => '§',
        "para" => '¶',
        "deg" => '°',
        "plusmn" => '±',
        "times" => '×',
        "divide" => '÷',
        "frac12" => '½',
        "frac14" => '¼',
        "frac34" => '¾',
        "sup1" => '¹',
        "sup2" => '²',
        "sup3" => '³',
        "micro" => 'µ',
        "euro" => '€',
        "pound" => '£',
        "yen" => '¥',
        "cent" => '¢',
        "curren" => '¤',
        "iexcl" => '¡',
        "iquest" => '¿',
        "ordf" => 'ª',
        "ordm" => 'º',
        "not" => '¬',
        "larr" => '←',
        "rarr" => '→',
        "uarr" => '↑',
        "darr" => '↓',
        "harr" => '↔',
        "rArr" => '⇒',
        "lArr" => '⇐',
        "le" => '≤',
        "ge" => '≥',
        "ne" => '≠',
        "asymp" => '≈',
        "infin" => '∞',
        "sum" => '∑',
        "radic" => '√',
        "alpha" => 'α',
        "beta" => 'β',
        "gamma" => 'γ',
        "delta" => 'δ',
        "pi" => 'π',
        "sigma" => 'σ',
        "mu" => 'μ',
        "lambda" => 'λ',
        "Omega" => 'Ω',
        "szlig" => 'ß',
        "AElig" => 'Æ',
        "aelig" => 'æ',
        "OElig" => 'Œ',
        "oelig" => 'œ',
        "Oslash" => 'Ø',
        "oslash" => 'ø',
        "Aring" => 'Å',
        "aring" => 'å',
        "ETH" => 'Ð',
        "eth" => 'ð',
        "THORN" => 'Þ',
        "thorn" => 'þ',
        "Ccedil" => 'Ç',
        "ccedil" => 'ç',
        "Ntilde" => 'Ñ',
        "ntilde" => 'ñ',
        _ => return accented(name),
    };
    Some(c)
}

/// `Xacute`, `xgrave`, `xcirc`, `xuml`, `xtilde` for the Latin-1 vowels (and `yacute`/`yuml`).
fn accented(name: &str) -> Option<char> {
    let (letter, accent) = name.split_at_checked(1)?;
    let table: &[(char, [char; 5])] = &[
        // acute, grave, circ, uml, tilde
        ('a', ['á', 'à', 'â', 'ä', 'ã']),
        ('e', ['é', 'è', 'ê', 'ë', '\0']),
        ('i', ['í', 'ì', 'î', 'ï', '\0']),
        ('o', ['ó', 'ò', 'ô', 'ö', 'õ']),
        ('u', ['ú', 'ù', 'û', 'ü', '\0']),
        ('y', ['ý', '\0', '\0', 'ÿ', '\0']),
        ('A', ['Á', 'À', 'Â', 'Ä', 'Ã']),
        ('E', ['É', 'È', 'Ê', 'Ë', '\0']),
        ('I', ['Í', 'Ì', 'Î', 'Ï', '\0']),
        ('O', ['Ó', 'Ò', 'Ô', 'Ö', 'Õ']),
        ('U', ['Ú', 'Ù', 'Û', 'Ü', '\0']),
        ('Y', ['Ý', '\0', '\0', 'Ÿ', '\0']),
    ];
    let idx = ["acute", "grave", "circ", "uml", "tilde"]
        .iter()
        .position(|a| *a == accent)?;
    let l = letter.chars().next()?;
    let c = table.iter().find(|(t, _)| *t == l)?.1[idx];
    (c != '\0').then_some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_named_numeric_and_legacy_references() {
        assert_eq!(
            decode_to_string(
                "Tom &amp; Jerry &lt;3 caf&eacute; &#233;&#xE9;&#X1F600; &#150; &copy 2024"
            ),
            "Tom & Jerry <3 café éé😀 – © 2024"
        );
        // Unknown names, missing semicolons on non-legacy names and bare ampersands stay as written.
        assert_eq!(
            decode_to_string("a &bogus; b &hellip c & d &#; &#xZZ; &"),
            "a &bogus; b &hellip c & d &#; &#xZZ; &"
        );
        assert_eq!(
            decode_to_string("&#0;&#xD800;&#99999999999;"),
            "\u{fffd}\u{fffd}\u{fffd}"
        );
    }

    #[test]
    fn spans_cover_whole_references() {
        let mut spans = Vec::new();
        decode("a&amp;é", 10, |c, s, l| spans.push((c, s, l)));
        assert_eq!(spans, [('a', 10, 1), ('&', 11, 5), ('é', 16, 2)]);
    }
}
