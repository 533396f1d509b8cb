//! PII detection and redaction: e-mail addresses, phone numbers, payment-card numbers, IBANs,
//! IP addresses and national identifiers, replaced by a label (`[EMAIL]`) or by a keyed,
//! non-reversible token (`[EMAIL:3f2a9c1b]`) before text is stored or embedded.
//!
//! Detection is two-stage: a regular expression finds *candidates*, then a validator rejects
//! what only looks like PII — card numbers must pass the Luhn check, IBANs the ISO 7064 mod-97
//! check, IPv4 octets must be ≤ 255, SSNs must avoid the never-issued ranges — so random digit
//! runs, dates, versions and years stay in the text. Phone numbers have no checksum, so their
//! patterns are deliberately narrow (see [`PiiKind::Phone`]): a missed local number is a better
//! failure than a redacted date.
//!
//! Overlaps between kinds are resolved deterministically: the earliest match wins, then the
//! longest, then the kind listed first in [`PiiKind::ALL`]. Redaction is idempotent: the
//! replacement tokens are never matched again, so redacting redacted text changes nothing.
//!
//! ```
//! use sextant_text::pii::{PiiKind, RedactionMode, Redactor};
//!
//! let r = Redactor::new(PiiKind::ALL, RedactionMode::Mask);
//! let out = r.redact("Mail jane@example.org or call +44 20 7946 0958.");
//! assert_eq!(out.text, "Mail [EMAIL] or call [PHONE].");
//! assert_eq!(out.counts["email"], 1);
//! assert_eq!(out.total, 2);
//! ```

mod detect;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::extract::OffsetMap;

pub use detect::{iban_valid, luhn_valid};

/// Hex digits of the keyed hash kept in a [`RedactionMode::Hash`] token: 64 bits of
/// HMAC-SHA256, so equal values get equal tokens and distinct values practically never share
/// one; without the key a token cannot be confirmed by hashing guesses (a 32-bit token of an
/// unkeyed or leaked-salt hash let a phone number be recovered in under a thousand guesses).
pub const HASH_HEX_LEN: usize = 16;

/// A public fingerprint of a hash-mode key (16 hex digits of HMAC-SHA256 keyed with it over a
/// fixed label): stored with a collection so a different key is refused, while revealing
/// nothing about the key or any redacted value.
pub fn key_id(key: &[u8]) -> String {
    let mut h = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    h.update(b"sextant redaction key id v1");
    h.finalize()
        .into_bytes()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A kind of personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    /// E-mail addresses (`local@domain.tld`).
    Email,
    /// Phone numbers: international (`+` country code, 8–15 digits, spaces/dots/dashes and a
    /// parenthesised area code allowed), North American (`(555) 123-4567`, `555-123-4567`,
    /// `555.123.4567`) and national numbers with a trunk `0` (`020 7946 0958`,
    /// `06 12 34 56 78`; 9–12 digits). Bare digit runs, dates, years and versions are not phones;
    /// digits written right after a phone number (`+49 30 901820 2024`) are taken as part of it.
    Phone,
    /// Payment-card numbers: 13–19 digits, in one run or grouped as cards print them (fours, or
    /// 4-6-5), by spaces or by dashes; not starting with 0; Luhn-valid.
    Card,
    /// International bank account numbers: country code, two check digits, 11–30 alphanumerics
    /// (optionally in groups of four), mod-97 valid.
    Iban,
    /// IPv4 (four octets ≤ 255, not part of a longer dotted run, not after "section",
    /// "version", "RFC", "§", …) and IPv6 addresses (at least three groups, parsed by the
    /// standard library; so `::1` and `a::b` are left alone).
    Ip,
    /// National identifiers: US social security numbers (`ddd-dd-dddd` outside the never-issued
    /// ranges 000/666/9xx, 00, 0000) and UK National Insurance numbers (`AB 12 34 56 C`).
    NationalId,
}

impl PiiKind {
    /// Every kind, in the order that breaks ties between equal overlapping matches.
    pub const ALL: &'static [PiiKind] = &[
        PiiKind::Email,
        PiiKind::Iban,
        PiiKind::Card,
        PiiKind::NationalId,
        PiiKind::Ip,
        PiiKind::Phone,
    ];

    /// The lower-case name used in counts and configuration (`email`, `phone`, `card`, `iban`,
    /// `ip`, `national_id`).
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::Card => "card",
            PiiKind::Iban => "iban",
            PiiKind::Ip => "ip",
            PiiKind::NationalId => "national_id",
        }
    }

    /// The label inside a replacement token (`EMAIL` in `[EMAIL]`).
    pub fn label(self) -> &'static str {
        match self {
            PiiKind::Email => "EMAIL",
            PiiKind::Phone => "PHONE",
            PiiKind::Card => "CARD",
            PiiKind::Iban => "IBAN",
            PiiKind::Ip => "IP",
            PiiKind::NationalId => "NATIONAL_ID",
        }
    }

    /// Parses a comma-separated list of kind names (`email,phone`), or `all` for every kind.
    pub fn parse_list(list: &str) -> Result<Vec<PiiKind>, UnknownPiiKind> {
        if list.trim().eq_ignore_ascii_case("all") {
            return Ok(PiiKind::ALL.to_vec());
        }
        list.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect()
    }

    fn rank(self) -> usize {
        PiiKind::ALL
            .iter()
            .position(|&k| k == self)
            .unwrap_or(usize::MAX)
    }
}

impl fmt::Display for PiiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown PII kind name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown PII kind {0:?}: expected one of email, phone, card, iban, ip, national_id")]
pub struct UnknownPiiKind(pub String);

impl FromStr for PiiKind {
    type Err = UnknownPiiKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase().replace('-', "_");
        PiiKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == lower)
            .ok_or_else(|| UnknownPiiKind(s.to_string()))
    }
}

/// What a detected value is replaced with.
#[derive(Clone, PartialEq, Eq)]
pub enum RedactionMode {
    /// The kind's label: `[EMAIL]`, `[PHONE]`, `[CARD]`, `[IBAN]`, `[IP]`, `[NATIONAL_ID]`.
    Mask,
    /// The label and the first [`HASH_HEX_LEN`] hex digits of HMAC-SHA256, keyed with a
    /// secret, over the kind and the value: `[EMAIL:3f2a9c1b04d7e6a5]`. Equal values under one
    /// key get equal tokens (so a person can still be followed across chunks); without the key
    /// a token cannot be confirmed by hashing guesses. Keep the key secret, outside the data,
    /// and stable per collection.
    Hash {
        /// The HMAC key.
        key: Vec<u8>,
    },
}

impl RedactionMode {
    /// [`RedactionMode::Hash`] keyed with `key` (a collection's secret, as text or bytes).
    pub fn hash(key: impl AsRef<[u8]>) -> Self {
        RedactionMode::Hash {
            key: key.as_ref().to_vec(),
        }
    }
}

impl fmt::Debug for RedactionMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RedactionMode::Mask => f.write_str("Mask"),
            // Never print the key: it is a secret.
            RedactionMode::Hash { .. } => f.write_str("Hash { key: <redacted> }"),
        }
    }
}

/// One detected value: `text[start..end]` is of kind `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PiiMatch {
    /// What was found.
    pub kind: PiiKind,
    /// Byte offset of the first byte.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
}

/// The result of [`Redactor::redact`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Redacted {
    /// The text with every detected value replaced.
    pub text: String,
    /// Replacements per configured kind, by [`PiiKind::name`] (zero counts included).
    pub counts: BTreeMap<&'static str, usize>,
    /// All replacements.
    pub total: usize,
    /// Offsets in `text` → offsets in the redacted input: untouched text maps one to one, a
    /// replacement token maps to the whole value it replaced. Chunk the redacted text (so no
    /// chunk boundary can cut a value in two and leave both halves unrecognised), then map
    /// chunk offsets back through this map (and the extraction's map) to the source file.
    #[serde(skip)]
    pub map: OffsetMap,
}

/// Finds and replaces personal data of the configured kinds.
#[derive(Debug, Clone)]
pub struct Redactor {
    kinds: Vec<PiiKind>,
    mode: RedactionMode,
}

impl Redactor {
    /// A redactor for `kinds` (duplicates ignored) in `mode`.
    pub fn new(kinds: &[PiiKind], mode: RedactionMode) -> Self {
        let mut kinds = kinds.to_vec();
        kinds.sort_by_key(|k| k.rank());
        kinds.dedup();
        Redactor { kinds, mode }
    }

    /// The configured kinds.
    pub fn kinds(&self) -> &[PiiKind] {
        &self.kinds
    }

    /// The configured mode.
    pub fn mode(&self) -> &RedactionMode {
        &self.mode
    }

    /// Every value of a configured kind in `text`, non-overlapping and in order. Existing
    /// replacement tokens (`[EMAIL]`, `[CARD:0a1b2c3d]`, …) are never reported.
    pub fn find(&self, text: &str) -> Vec<PiiMatch> {
        let p = detect::patterns();
        let mut all = Vec::new();
        for &kind in &self.kinds {
            detect::candidates(p, kind, text, &mut all);
        }
        // Earliest first, then longest, then by kind rank.
        all.sort_by_key(|m| (m.start, std::cmp::Reverse(m.end), m.kind.rank()));
        let tokens: Vec<(usize, usize)> = p
            .token
            .find_iter(text)
            .map(|m| (m.start(), m.end()))
            .collect();
        let mut out: Vec<PiiMatch> = Vec::new();
        let mut next_token = 0; // tokens before this one end at or before the current match
        for m in all {
            if out.last().is_some_and(|last| m.start < last.end) {
                continue;
            }
            while tokens.get(next_token).is_some_and(|&(_, e)| e <= m.start) {
                next_token += 1;
            }
            if tokens.get(next_token).is_some_and(|&(s, _)| s < m.end) {
                continue; // inside (or across) a replacement token
            }
            out.push(m);
        }
        out
    }

    /// Replaces every value found by [`Redactor::find`] and counts the replacements.
    pub fn redact(&self, text: &str) -> Redacted {
        let mut counts: BTreeMap<&'static str, usize> =
            self.kinds.iter().map(|k| (k.name(), 0)).collect();
        let mut out = String::with_capacity(text.len());
        let mut map = OffsetMap::default();
        let mut at = 0;
        let matches = self.find(text);
        for m in &matches {
            map.push(out.len(), m.start - at, at, m.start - at);
            out.push_str(&text[at..m.start]);
            let token = self.replacement(m.kind, &text[m.start..m.end]);
            map.push(out.len(), token.len(), m.start, m.end - m.start);
            out.push_str(&token);
            at = m.end;
            *counts.entry(m.kind.name()).or_default() += 1;
        }
        map.push(out.len(), text.len() - at, at, text.len() - at);
        out.push_str(&text[at..]);
        Redacted {
            text: out,
            counts,
            total: matches.len(),
            map,
        }
    }

    /// The token that replaces `value` of kind `kind` in this redactor's mode.
    pub fn replacement(&self, kind: PiiKind, value: &str) -> String {
        match &self.mode {
            RedactionMode::Mask => format!("[{}]", kind.label()),
            RedactionMode::Hash { key } => {
                let mut h = <Hmac<Sha256> as Mac>::new_from_slice(key)
                    .expect("HMAC takes keys of any length");
                h.update(kind.name().as_bytes());
                h.update(&[0u8]);
                h.update(value.as_bytes());
                let digest = h.finalize().into_bytes();
                let hex: String = digest
                    .iter()
                    .take(HASH_HEX_LEN / 2)
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!("[{}:{hex}]", kind.label())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(kinds: &[PiiKind], text: &str) -> String {
        Redactor::new(kinds, RedactionMode::Mask).redact(text).text
    }

    fn found(kind: PiiKind, text: &str) -> Vec<&str> {
        Redactor::new(&[kind], RedactionMode::Mask)
            .find(text)
            .into_iter()
            .map(|m| &text[m.start..m.end])
            .collect()
    }

    #[test]
    fn emails() {
        assert_eq!(
            found(
                PiiKind::Email,
                "to jane.doe+tag@mail.example.co.uk, bob@x.io."
            ),
            ["jane.doe+tag@mail.example.co.uk", "bob@x.io"]
        );
        assert!(found(PiiKind::Email, "not@an address, user@localhost, a@b.c").is_empty());
    }

    #[test]
    fn phones_and_their_look_alikes() {
        for phone in [
            "+44 20 7946 0958",
            "+1 (555) 123-4567",
            "+33612345678",
            "(555) 123-4567",
            "555-123-4567",
            "555.123.4567",
            "020 7946 0958",
            "06 12 34 56 78",
        ] {
            let text = format!("call {phone} now");
            assert_eq!(found(PiiKind::Phone, &text), [phone], "{phone}");
        }
        for not in [
            "in 2024 we",
            "on 2024-01-15 at",
            "on 15.01.2024 at",
            "on 01/02/2023 at",
            "version 1.2.3 and 10.0.19041.1",
            "order 12345 of 987654",
            "ratio 3-4",
            "id 5551234567 plain",
            "+12",
        ] {
            assert!(found(PiiKind::Phone, not).is_empty(), "{not}");
        }
    }

    #[test]
    fn cards_must_pass_luhn() {
        for card in [
            "4111 1111 1111 1111",
            "5500-0000-0000-0004",
            "378282246310005",
        ] {
            let text = format!("card: {card}.");
            assert_eq!(found(PiiKind::Card, &text), [card]);
        }
        assert!(found(PiiKind::Card, "card: 4111 1111 1111 1112.").is_empty());
        assert!(found(PiiKind::Card, "run 1234567890123456 digits").is_empty());
        assert!(found(PiiKind::Card, "short 4111 1111").is_empty());
        assert!(found(PiiKind::Card, "0000000000000000 R foo::BAZ").is_empty());
        // Luhn-valid by chance, but not printed like a card: a number and dates.
        assert!(found(PiiKind::Card, "#5 2024-01-15 2024 2024-01-15").is_empty());
        assert_eq!(
            found(PiiKind::Card, "amex 3782 822463 10005."),
            ["3782 822463 10005"]
        );
        assert!(luhn_valid(&[7, 9, 9, 2, 7, 3, 9, 8, 7, 1, 3]));
        assert!(!luhn_valid(&[]));
    }

    #[test]
    fn ibans_must_pass_mod_97() {
        for iban in [
            "GB82 WEST 1234 5698 7654 32",
            "DE89370400440532013000",
            "FR14 2004 1010 0505 0001 3M02 606",
        ] {
            let text = format!("IBAN {iban} DATE 2024");
            assert_eq!(found(PiiKind::Iban, &text), [iban], "{iban}");
        }
        assert!(found(PiiKind::Iban, "IBAN GB82 WEST 1234 5698 7654 33").is_empty());
        assert!(found(PiiKind::Iban, "code AB12 CDEF GHIJ KLMN").is_empty());
        // A truncated IBAN of a country with a known length is not one.
        assert!(found(PiiKind::Iban, "IBAN DE89 3704 0044 0532 0130 0").is_empty());
        assert!(iban_valid("GB82WEST12345698765432"));
        assert!(!iban_valid("GB82WEST1234569876543"));
    }

    #[test]
    fn ip_addresses() {
        assert_eq!(
            found(
                PiiKind::Ip,
                "from 192.168.0.1, 10.0.0.255 and 255.255.255.255"
            ),
            ["192.168.0.1", "10.0.0.255", "255.255.255.255"]
        );
        assert!(found(PiiKind::Ip, "999.1.1.1 or 1.2.3.256 or 1.2.3.4.5 or 1.2.3").is_empty());
        assert!(found(
            PiiKind::Ip,
            "see RFC 4291 Section 2.5.5.2; version 10.0.0.1, § 1.2.3.4"
        )
        .is_empty());
        assert_eq!(found(PiiKind::Ip, "server 10.0.0.1:8080"), ["10.0.0.1"]);
        assert_eq!(
            found(PiiKind::Ip, "mapped ::ffff:192.0.2.128 here"),
            ["::ffff:192.0.2.128"]
        );
        assert_eq!(
            found(
                PiiKind::Ip,
                "v6 2001:db8:85a3::8a2e:370:7334 and fe80::1:2:3, not std::io::Error or 12:30:45"
            ),
            ["2001:db8:85a3::8a2e:370:7334", "fe80::1:2:3"]
        );
    }

    #[test]
    fn national_ids() {
        assert_eq!(
            found(
                PiiKind::NationalId,
                "SSN 123-45-6789, NI AB 12 34 56 C, NI ce123456a"
            ),
            ["123-45-6789", "AB 12 34 56 C"]
        );
        for not in [
            "000-12-3456",
            "666-12-3456",
            "912-34-5678",
            "123-00-4567",
            "123-45-0000",
            "QQ 12 34 56 C",
            "BG123456A",
        ] {
            assert!(found(PiiKind::NationalId, not).is_empty(), "{not}");
        }
    }

    #[test]
    fn mask_mode_and_counts() {
        let r = Redactor::new(PiiKind::ALL, RedactionMode::Mask);
        let out = r.redact(
            "Jane <jane@example.org>, +1 555 123 4567, card 4111-1111-1111-1111, \
             IBAN DE89 3704 0044 0532 0130 00, host 10.1.2.3, SSN 123-45-6789; bob@example.org",
        );
        assert_eq!(
            out.text,
            "Jane <[EMAIL]>, [PHONE], card [CARD], IBAN [IBAN], host [IP], SSN [NATIONAL_ID]; [EMAIL]"
        );
        assert_eq!(out.total, 7);
        assert_eq!(out.counts["email"], 2);
        for k in ["phone", "card", "iban", "ip", "national_id"] {
            assert_eq!(out.counts[k], 1, "{k}");
        }
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(json["counts"]["email"], 2);
        assert!(json.get("map").is_none());
        // Only configured kinds are reported, and only they are redacted.
        let out =
            Redactor::new(&[PiiKind::Email], RedactionMode::Mask).redact("a@example.org 10.1.2.3");
        assert_eq!(out.text, "[EMAIL] 10.1.2.3");
        assert_eq!(out.counts.len(), 1);
    }

    #[test]
    fn hash_mode_is_stable_keyed_and_hides_the_value() {
        let salted =
            |key: &[u8]| Redactor::new(PiiKind::ALL, RedactionMode::Hash { key: key.to_vec() });
        let r = salted(b"pepper");
        let out = r.redact("a@example.org, b@example.org, a@example.org");
        let tokens: Vec<&str> = out.text.split(", ").collect();
        assert_eq!(tokens[0], tokens[2]);
        assert_ne!(tokens[0], tokens[1]);
        assert!(
            tokens[0].starts_with("[EMAIL:") && tokens[0].len() == "[EMAIL:]".len() + HASH_HEX_LEN
        );
        assert!(!out.text.contains("example"));
        assert_eq!(r.redact("a@example.org").text, tokens[0]);
        assert_ne!(salted(b"salt").redact("a@example.org").text, tokens[0]);
        assert!(!format!("{r:?}").contains("pepper"));
        assert_eq!(RedactionMode::hash("pepper"), *r.mode());
    }

    #[test]
    fn the_map_leads_back_to_the_values() {
        let text = "Mail ana@example.org or call 555-123-4567 today.";
        for mode in [RedactionMode::Mask, RedactionMode::hash("s")] {
            let out = Redactor::new(PiiKind::ALL, mode).redact(text);
            let token = out.text.find("[EMAIL").unwrap();
            let token_end = token + out.text[token..].find(']').unwrap() + 1;
            assert_eq!(
                &text[out.map.range_to_source(token..token_end)],
                "ana@example.org"
            );
            let at = out.text.find("today").unwrap();
            assert_eq!(&text[out.map.range_to_source(at..at + 5)], "today");
            assert_eq!(out.map.range_to_source(0..out.text.len()), 0..text.len());
        }
        assert!(Redactor::new(PiiKind::ALL, RedactionMode::Mask)
            .redact("nothing here")
            .map
            .is_identity());
    }

    #[test]
    fn overlaps_resolve_to_earliest_then_longest() {
        // The card contains a phone-shaped run; the e-mail contains an IP-shaped run.
        assert_eq!(
            mask(
                PiiKind::ALL,
                "4111 1111 1111 1111 and x@10.1.2.3.example.com"
            ),
            "[CARD] and [EMAIL]"
        );
    }

    #[test]
    fn non_ascii_text_and_idempotence() {
        let r = Redactor::new(PiiKind::ALL, RedactionMode::Mask);
        let h = Redactor::new(PiiKind::ALL, RedactionMode::hash("k"));
        let text = "Ünïcödé 東京 josé@example.com — tél +33 6 12 34 56 78 · 🎉 192.168.1.1é";
        let once = r.redact(text);
        assert!(once.text.contains("東京 [EMAIL] —"), "{}", once.text);
        assert!(once.text.contains("[PHONE]"));
        // New values next to old tokens are still found.
        let out = r.redact("[EMAIL] bob@example.org [IP:0a1b2c3d] 10.0.0.1");
        assert_eq!(out.text, "[EMAIL] [EMAIL] [IP:0a1b2c3d] [IP]");
        assert_eq!(out.total, 2);
        for red in [&r, &h] {
            let once = red.redact(text).text;
            let twice = red.redact(&once);
            assert_eq!(twice.text, once);
            assert_eq!(twice.total, 0);
        }
    }

    #[test]
    fn kinds_parse_by_name() {
        assert_eq!("national-id".parse::<PiiKind>(), Ok(PiiKind::NationalId));
        assert_eq!("EMAIL".parse::<PiiKind>(), Ok(PiiKind::Email));
        let err = "ssn".parse::<PiiKind>().unwrap_err().to_string();
        assert!(err.contains("ssn") && err.contains("national_id"), "{err}");
        for &k in PiiKind::ALL {
            assert_eq!(k.to_string().parse::<PiiKind>(), Ok(k));
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{k}\""));
            assert_eq!(serde_json::from_str::<PiiKind>(&json).unwrap(), k);
        }
        assert_eq!(
            PiiKind::parse_list(" email, ip ,"),
            Ok(vec![PiiKind::Email, PiiKind::Ip])
        );
        assert_eq!(PiiKind::parse_list("ALL"), Ok(PiiKind::ALL.to_vec()));
        assert_eq!(
            PiiKind::parse_list("email,ssn"),
            Err(UnknownPiiKind("ssn".into()))
        );
    }

    proptest::proptest! {
        #[test]
        fn never_panics_and_is_idempotent(text in "(\\PC|[0-9 .:@+()-]){0,80}") {
            let r = Redactor::new(PiiKind::ALL, RedactionMode::Mask);
            let once = r.redact(&text).text;
            proptest::prop_assert_eq!(r.redact(&once).text, once);
        }

        /// A valid value dropped between ordinary words is found, whole and as its own kind,
        /// and nothing else in the text is.
        #[test]
        fn planted_values_are_found_exactly(
            before in proptest::collection::vec(proptest::sample::select(FILLER.to_vec()), 0..12),
            after in proptest::collection::vec(proptest::sample::select(FILLER.to_vec()), 0..12),
            planted in proptest::sample::select(PLANTED.to_vec()),
        ) {
            let (kind, value) = planted;
            // A comma after the value: digits right after a phone number would be read as
            // part of it (see `PiiKind::Phone`).
            let text = format!("{} {value}, {}", before.join(" "), after.join(" "));
            let r = Redactor::new(PiiKind::ALL, RedactionMode::Mask);
            let found: Vec<(PiiKind, &str)> =
                r.find(&text).iter().map(|m| (m.kind, &text[m.start..m.end])).collect();
            proptest::prop_assert_eq!(found, vec![(kind, value)]);
        }
    }

    /// Words, numbers, dates and versions that are not personal data.
    const FILLER: &[&str] = &[
        "the",
        "Über",
        "東京",
        "2024",
        "2024-01-15",
        "15.01.2024",
        "v1.2.3",
        "10.0.19041.1",
        "42",
        "12:30",
        "3.14159",
        "#5",
        "(draft)",
        "ISBN",
        "978-3-16-148410-0",
        "x@y",
        "—",
        "[1]",
        "1,000,000",
        "0x1F",
        "é.",
        "id:77",
        "page 12-14",
        "50%",
    ];

    const PLANTED: &[(PiiKind, &str)] = &[
        (PiiKind::Email, "maria.lopez@correo.example.es"),
        (PiiKind::Phone, "+49 30 901820"),
        (PiiKind::Phone, "(212) 555-0187"),
        (PiiKind::Phone, "07700 900123"),
        (PiiKind::Card, "5555 5555 5555 4444"),
        (PiiKind::Card, "6011-1111-1111-1117"),
        (PiiKind::Iban, "NL91 ABNA 0417 1643 00"),
        (PiiKind::Iban, "BE68539007547034"),
        (PiiKind::Ip, "172.16.254.1"),
        (PiiKind::Ip, "2001:0db8:0000:0000:0000:ff00:0042:8329"),
        (PiiKind::NationalId, "078-05-1121"),
        (PiiKind::NationalId, "JG 10 37 52 A"),
    ];
}
