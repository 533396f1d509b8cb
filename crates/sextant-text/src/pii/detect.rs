//! Detection: one regular expression per kind finds candidates, a validator keeps the values
//! (Luhn, mod 97, octet ranges, issued SSN ranges, allocated NI prefixes, and the shape of the
//! text around them), and [`scan`] makes sure a rejected candidate cannot hide a value inside it.

use std::net::Ipv6Addr;
use std::sync::OnceLock;

use regex::Regex;

use super::{PiiKind, PiiMatch, HASH_HEX_LEN};

pub(super) struct Patterns {
    email: Regex,
    phone: Regex,
    card: Regex,
    iban: Regex,
    ipv4: Regex,
    ipv6: Regex,
    ssn: Regex,
    nino: Regex,
    /// Our own replacement tokens, never matched as values.
    pub(super) token: Regex,
}

pub(super) fn patterns() -> &'static Patterns {
    static PATTERNS: OnceLock<Patterns> = OnceLock::new();
    PATTERNS.get_or_init(|| {
        let re = |p: &str| Regex::new(p).expect("PII pattern compiles");
        Patterns {
            email: re(concat!(
                r"[\w%+-](?:[\w.%+-]*[\w%+-])?@",
                r"[\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?",
                r"(?:\.[\p{L}\p{N}](?:[\p{L}\p{N}-]*[\p{L}\p{N}])?)*\.\p{L}{2,24}",
            )),
            phone: re(concat!(
                // International: + country code, then groups.
                r"\+\d{1,3}(?:[ .-]?(?:\(\d{1,4}\)|\d{1,5})){1,6}",
                // North American: (555) 123-4567, 555-123-4567, 555.123.4567, 555 123 4567.
                r"|(?:\(\d{3}\)[ ]?|\d{3}[ .-])\d{3}[ .-]\d{4}",
                // National with a trunk 0: 020 7946 0958, 06 12 34 56 78, 07700 900123.
                r"|0\d{1,4}(?:[ .-]\d{2,8}){1,4}",
            )),
            // Printed the way cards are: one run, groups of four (one separator throughout),
            // or the 4-6-5 / 4-6-4 grouping of American Express and Diners.
            card: re(concat!(
                r"\d{13,19}",
                r"|\d{4}(?: \d{4}){2,3}(?: \d{1,4})?",
                r"|\d{4}(?:-\d{4}){2,3}(?:-\d{1,4})?",
                r"|\d{4} \d{6} \d{4,5}|\d{4}-\d{6}-\d{4,5}",
            )),
            iban: re(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}"),
            ipv4: re(r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}"),
            ipv6: re(r"(?i)(?:[0-9a-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]{1,4})?"),
            ssn: re(r"\d{3}-\d{2}-\d{4}"),
            nino: re(r"[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]"),
            token: re(&format!(
                r"\[(?:EMAIL|PHONE|CARD|IBAN|IP|NATIONAL_ID)(?::[0-9a-f]{{{HASH_HEX_LEN}}})?\]"
            )),
        }
    })
}

/// True when the characters around `start..end` do not continue the match (no letter or digit
/// glued to either side).
fn standalone(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
        && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
}

/// Runs `re` over `text`, reporting `start..end` for every candidate that `accept` turns into a
/// match end. After a rejected candidate the search resumes one character after its start,
/// not after its end, so a greedy non-match ("2024 07700 900123" read from the "0" of 2024)
/// cannot hide a real value inside it.
fn scan(
    re: &Regex,
    text: &str,
    kind: PiiKind,
    out: &mut Vec<PiiMatch>,
    mut accept: impl FnMut(regex::Match<'_>) -> Option<usize>,
) {
    let mut at = 0;
    while let Some(m) = re.find_at(text, at) {
        match accept(m) {
            Some(end) => {
                out.push(PiiMatch {
                    kind,
                    start: m.start(),
                    end,
                });
                at = end.max(m.start() + 1);
            }
            None => at = m.start() + text[m.start()..].chars().next().map_or(1, char::len_utf8),
        }
        while at < text.len() && !text.is_char_boundary(at) {
            at += 1;
        }
        if at >= text.len() {
            break;
        }
    }
}

/// [`standalone`], and not glued to more digits by a separator on either side: the "01.2024"
/// in "15.01.2024" or the "16-148410" in an ISBN is part of a longer number, not a value.
fn standalone_number(text: &str, start: usize, end: usize) -> bool {
    let glue = |c: char| matches!(c, '.' | '-' | '/' | ':' | ',');
    let mut before = text[..start].chars().rev();
    let mut after = text[end..].chars();
    let glued_before =
        before.next().is_some_and(glue) && before.next().is_some_and(|c| c.is_ascii_digit());
    let glued_after =
        after.next().is_some_and(glue) && after.next().is_some_and(|c| c.is_ascii_digit());
    standalone(text, start, end) && !glued_before && !glued_after
}

/// Appends every accepted value of `kind` in `text` to `out` (unordered across kinds).
pub(super) fn candidates(p: &Patterns, kind: PiiKind, text: &str, out: &mut Vec<PiiMatch>) {
    let whole = |m: &regex::Match<'_>, ok: bool| ok.then_some(m.end());
    match kind {
        PiiKind::Email => scan(&p.email, text, kind, out, |m| {
            let before = text[..m.start()].chars().next_back();
            whole(&m, !before.is_some_and(|c| c.is_alphanumeric() || c == '.'))
        }),
        PiiKind::Phone => scan(&p.phone, text, kind, out, |m| {
            let s = m.as_str();
            let digits = s.bytes().filter(u8::is_ascii_digit).count();
            let ok = if s.starts_with('+') {
                (8..=15).contains(&digits)
            } else if s.starts_with('0') {
                (9..=12).contains(&digits)
            } else {
                digits == 10
            };
            whole(&m, ok && standalone_number(text, m.start(), m.end()))
        }),
        PiiKind::Card => scan(&p.card, text, kind, out, |m| {
            let digits: Vec<u8> = m
                .as_str()
                .bytes()
                .filter(u8::is_ascii_digit)
                .map(|b| b - b'0')
                .collect();
            // No card number starts with 0 (so zero padding such as `nm` output, which passes
            // Luhn, is left alone).
            whole(
                &m,
                (13..=19).contains(&digits.len())
                    && digits[0] != 0
                    && luhn_valid(&digits)
                    && standalone_number(text, m.start(), m.end()),
            )
        }),
        PiiKind::Iban => scan(&p.iban, text, kind, out, |m| {
            longest_valid_iban(text, m.start(), m.end())
                .filter(|&end| standalone(text, m.start(), end))
        }),
        PiiKind::Ip => {
            scan(&p.ipv4, text, kind, out, |m| {
                let octets_ok = m
                    .as_str()
                    .split('.')
                    .all(|o| o.parse::<u16>().is_ok_and(|v| v <= 255));
                let before = &text[..m.start()];
                let after = &text[m.end()..];
                // "1.2.3.4.5" is a version or an OID, not an address.
                let longer = (before.ends_with('.')
                    && before[..before.len() - 1].ends_with(|c: char| c.is_ascii_digit()))
                    || (after.starts_with('.')
                        && after[1..].starts_with(|c: char| c.is_ascii_digit()));
                whole(
                    &m,
                    octets_ok
                        && !longer
                        && !after_numbering_word(before)
                        && standalone(text, m.start(), m.end()),
                )
            });
            scan(&p.ipv6, text, kind, out, |m| {
                let s = m.as_str();
                // An embedded IPv4 tail stands for two groups.
                let groups =
                    s.split(':').filter(|g| !g.is_empty()).count() + usize::from(s.contains('.'));
                let after = text[m.end()..].chars().next();
                whole(
                    &m,
                    groups >= 3
                        && s.parse::<Ipv6Addr>().is_ok()
                        && standalone(text, m.start(), m.end())
                        && after != Some(':')
                        && !text[..m.start()].ends_with(':'),
                )
            });
        }
        PiiKind::NationalId => {
            scan(&p.ssn, text, kind, out, |m| {
                let mut parts = m.as_str().split('-');
                let (area, group, serial) = (parts.next()?, parts.next()?, parts.next()?);
                let issued = area != "000"
                    && area != "666"
                    && !area.starts_with('9')
                    && group != "00"
                    && serial != "0000";
                whole(&m, issued && standalone_number(text, m.start(), m.end()))
            });
            scan(&p.nino, text, kind, out, |m| {
                let prefix = &m.as_str()[..2];
                let allocated = !matches!(prefix, "BG" | "GB" | "NK" | "KN" | "TN" | "NT" | "ZZ");
                whole(&m, allocated && standalone(text, m.start(), m.end()))
            });
        }
    }
}

/// True when `before` ends with a word that introduces a dotted number that is not an
/// address ("section 2.5.5.2", "version 10.0.0.1").
fn after_numbering_word(before: &str) -> bool {
    let word = before
        .trim_end()
        .rsplit(|c: char| !c.is_alphanumeric() && c != '§')
        .next()
        .unwrap_or("")
        .to_lowercase();
    matches!(
        word.as_str(),
        "section" | "sections" | "version" | "versions" | "release" | "chapter" | "rfc" | "§"
    )
}

/// The Luhn checksum over decimal digits (most significant first).
pub fn luhn_valid(digits: &[u8]) -> bool {
    if digits.is_empty() || digits.iter().any(|&d| d > 9) {
        return false;
    }
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The ISO 13616 / ISO 7064 mod-97 check of an IBAN without spaces (upper-case letters and
/// digits; 15–34 characters).
pub fn iban_valid(iban: &str) -> bool {
    let b = iban.as_bytes();
    if !(15..=34).contains(&b.len())
        || !b[..2].iter().all(u8::is_ascii_uppercase)
        || !b[2..4].iter().all(u8::is_ascii_digit)
        || !b
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in b[4..].iter().chain(&b[..4]) {
        if c.is_ascii_digit() {
            rem = (rem * 10 + u32::from(c - b'0')) % 97;
        } else {
            rem = (rem * 100 + u32::from(c - b'A' + 10)) % 97;
        }
    }
    rem == 1
}

/// The IBAN length of a country (ISO 13616 registry), where known.
fn iban_length(country: &str) -> Option<usize> {
    const LENGTHS: &[(&str, usize)] = &[
        ("AD", 24),
        ("AE", 23),
        ("AL", 28),
        ("AT", 20),
        ("AZ", 28),
        ("BA", 20),
        ("BE", 16),
        ("BG", 22),
        ("BH", 22),
        ("BR", 29),
        ("BY", 28),
        ("CH", 21),
        ("CR", 22),
        ("CY", 28),
        ("CZ", 24),
        ("DE", 22),
        ("DK", 18),
        ("DO", 28),
        ("EE", 20),
        ("EG", 29),
        ("ES", 24),
        ("FI", 18),
        ("FO", 18),
        ("FR", 27),
        ("GB", 22),
        ("GE", 22),
        ("GI", 23),
        ("GL", 18),
        ("GR", 27),
        ("GT", 28),
        ("HR", 21),
        ("HU", 28),
        ("IE", 22),
        ("IL", 23),
        ("IQ", 23),
        ("IS", 26),
        ("IT", 27),
        ("JO", 30),
        ("KW", 30),
        ("KZ", 20),
        ("LB", 28),
        ("LC", 32),
        ("LI", 21),
        ("LT", 20),
        ("LU", 20),
        ("LV", 21),
        ("MC", 27),
        ("MD", 24),
        ("ME", 22),
        ("MK", 19),
        ("MR", 27),
        ("MT", 31),
        ("MU", 30),
        ("NL", 18),
        ("NO", 15),
        ("PK", 24),
        ("PL", 28),
        ("PS", 29),
        ("PT", 25),
        ("QA", 29),
        ("RO", 24),
        ("RS", 22),
        ("SA", 24),
        ("SC", 31),
        ("SE", 24),
        ("SI", 19),
        ("SK", 24),
        ("SM", 27),
        ("ST", 25),
        ("SV", 28),
        ("TL", 23),
        ("TN", 24),
        ("TR", 26),
        ("UA", 29),
        ("VA", 22),
        ("VG", 24),
        ("XK", 20),
    ];
    LENGTHS.iter().find(|(c, _)| *c == country).map(|&(_, n)| n)
}

/// The end of the longest mod-97-valid IBAN starting at `start` and ending at or before `end`
/// at a word boundary (the regex may have swallowed a following word such as " DATE").
fn longest_valid_iban(text: &str, start: usize, end: usize) -> Option<usize> {
    let cand = &text[start..end];
    let mut compact = String::with_capacity(cand.len());
    let mut ends = Vec::with_capacity(cand.len()); // source end after each compact char
    for (i, c) in cand.char_indices() {
        if c != ' ' {
            compact.push(c);
            ends.push(start + i + c.len_utf8());
        }
    }
    // Where the country's IBAN length is known, only that length is tried: otherwise a
    // following word can pass mod 97 by chance (1 in 97).
    let lengths = match iban_length(&compact[..2]) {
        Some(n) if n <= compact.len() => n..=n,
        Some(_) => return None,
        None => 15..=compact.len().min(34),
    };
    lengths.rev().find_map(|n| {
        let e = ends[n - 1];
        let boundary = !text[e..].starts_with(|c: char| c.is_ascii_alphanumeric());
        (boundary && iban_valid(&compact[..n])).then_some(e)
    })
}
