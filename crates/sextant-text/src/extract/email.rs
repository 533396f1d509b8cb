//! E-mail: one RFC 5322 message (`.eml`) or an mbox of many → body text, subject as title,
//! headers as payload.
//!
//! MIME parsing, transfer encodings (quoted-printable, base64), RFC 2047 encoded words and
//! charsets are [mail-parser](https://crates.io/crates/mail-parser)'s (built without
//! `full_encoding`: UTF-8, UTF-16, UTF-7 and the single-byte charsets ISO-8859-*,
//! Windows-125*, KOI8-* are decoded; CJK multi-byte charsets are not, their bytes are read as
//! UTF-8 with U+FFFD).
//!
//! Text: the `text/plain` body parts (mail-parser's choice of the message's text body:
//! `multipart/alternative` gives its plain part), joined by blank lines; when there is none,
//! the `text/html` parts through the [HTML extractor](super::html). Attachments are listed by
//! name in the payload, never read. Payload: `from` (`Name <address>`), `to` and `cc` (arrays
//! of the same), `subject`, `date` (RFC 3339 in UTC, whatever zone the message was written
//! in), `message_id` and `in_reply_to` (without angle brackets), `attachments` (file names;
//! an unnamed one as its content type); absent headers are left out.
//!
//! Offsets are bytes of the file (of the mbox for its messages). A part copied as it is
//! (`7bit`/`8bit`, UTF-8) maps byte for byte; a quoted-printable or base64 part, or one in
//! another charset, maps as a whole to its encoded body.
//!
//! Mbox (mboxo/mboxrd, as Python's `mailbox`, Thunderbird and Google Takeout write it): a
//! message starts at every line beginning with `From ` (the envelope line, not part of the
//! message); a record's range is the message after that line, less the blank line that
//! separates it from the next. Body lines that the writer escaped as `>From ` (`>>From `, …)
//! read with one `>` less. Keys: the Message-ID, or `message-N` (from 1) for a message without
//! one or with one an earlier message had.

use std::collections::HashSet;
use std::ops::Range;

use mail_parser::{Address, Encoding, Message, MessageParser, MessagePart, MimeHeaders, PartType};
use serde_json::{Map, Value};

use super::mapped::MappedText;
use super::{html, ExtractError, Extracted, Record};

/// Header names that tell e-mail apart from other `name: value` text, and those of them that
/// only a message has.
const KNOWN_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message-id",
    "received",
    "return-path",
    "mime-version",
    "delivered-to",
    "reply-to",
    "in-reply-to",
    "references",
    "content-type",
    "x-mailer",
    "sender",
];
const MESSAGE_ONLY_HEADERS: &[&str] = &[
    "from",
    "date",
    "message-id",
    "received",
    "return-path",
    "delivered-to",
];

/// Extracts one message (a `.eml` file).
pub(super) fn extract_message(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    message(bytes, 0, false)
}

/// Extracts the message `bytes`, which starts at byte `base` of its file.
fn message(bytes: &[u8], base: usize, mbox: bool) -> Result<Extracted, ExtractError> {
    let msg = MessageParser::new()
        .parse(bytes)
        .filter(is_message)
        .ok_or(ExtractError::NotEmail { offset: base })?;
    let mut out = MappedText::default();
    let plain: Vec<&MessagePart<'_>> = msg
        .text_body
        .iter()
        .filter_map(|&i| msg.parts.get(i as usize))
        .filter(|p| matches!(p.body, PartType::Text(_)))
        .collect();
    if !plain.is_empty() {
        for p in plain {
            if let PartType::Text(t) = &p.body {
                push_plain(&mut out, t, p, bytes, base, mbox);
            }
        }
    } else {
        for p in msg
            .html_body
            .iter()
            .filter_map(|&i| msg.parts.get(i as usize))
        {
            if let PartType::Html(h) = &p.body {
                push_html(&mut out, h, p, bytes, base);
            }
        }
    }
    let title = msg
        .subject()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty());
    let payload = headers(&msg, title.as_deref());
    let mut ex = Extracted::unpaged(out.text, title, out.map);
    ex.payload = payload;
    Ok(ex)
}

/// Whether the parser found at least one header a message has.
fn is_message(m: &Message<'_>) -> bool {
    m.from().is_some()
        || m.to().is_some()
        || m.subject().is_some()
        || m.date().is_some()
        || m.message_id().is_some()
}

/// The part's body in `bytes`, and where the part's decoded text starts in it when the text
/// is a verbatim copy (no transfer encoding, no charset conversion).
fn body_of(p: &MessagePart<'_>, bytes: &[u8], decoded: &str) -> (Range<usize>, Option<usize>) {
    let range = (p.offset_body as usize).min(bytes.len())..(p.offset_end as usize).min(bytes.len());
    let raw = &bytes[range.clone()];
    let verbatim = p.encoding == Encoding::None && raw.starts_with(decoded.as_bytes());
    (range.clone(), verbatim.then_some(range.start))
}

fn push_plain(
    out: &mut MappedText,
    text: &str,
    p: &MessagePart<'_>,
    bytes: &[u8],
    base: usize,
    mbox: bool,
) {
    let (range, at) = body_of(p, bytes, text);
    let lead = text.len() - text.trim_start().len();
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.insert("\n\n");
    }
    // Lines an mbox writer escaped: one `>` goes.
    let mut removed = Vec::new();
    if mbox {
        let mut line_start = 0;
        for line in trimmed.split_inclusive('\n') {
            let quotes = line.len() - line.trim_start_matches('>').len();
            if quotes > 0 && line[quotes..].starts_with("From ") {
                removed.push(line_start);
            }
            line_start += line.len();
        }
    }
    let whole = base + range.start..base + range.end;
    match at {
        Some(at) => {
            let start = base + at + lead;
            let mut prev = 0;
            for &r in &removed {
                out.copy(&trimmed[prev..r], start + prev);
                prev = r + 1;
            }
            out.copy(&trimmed[prev..], start + prev);
        }
        None => {
            let mut s = String::with_capacity(trimmed.len());
            let mut prev = 0;
            for &r in &removed {
                s.push_str(&trimmed[prev..r]);
                prev = r + 1;
            }
            s.push_str(&trimmed[prev..]);
            out.stand_for(&s, whole);
        }
    }
}

fn push_html(out: &mut MappedText, h: &str, p: &MessagePart<'_>, bytes: &[u8], base: usize) {
    let (text, _, map) = html::extract(h);
    if text.is_empty() {
        return;
    }
    if !out.is_empty() {
        out.insert("\n\n");
    }
    let (range, at) = body_of(p, bytes, h);
    match at {
        Some(at) => {
            let shift = out.text.len();
            for r in map.runs() {
                out.map.push(
                    shift + r.text_start,
                    r.text_len,
                    base + at + r.source_start,
                    r.source_len,
                );
            }
            out.text.push_str(&text);
        }
        None => out.stand_for(&text, base + range.start..base + range.end),
    }
}

/// The payload fields of a message (see the [module docs](self)).
fn headers(m: &Message<'_>, subject: Option<&str>) -> Map<String, Value> {
    let mut out = Map::new();
    if let Some(a) = m.from().and_then(|a| addresses(a).into_iter().next()) {
        out.insert("from".into(), Value::String(a));
    }
    for (key, list) in [("to", m.to()), ("cc", m.cc())] {
        let list = list.map(addresses).unwrap_or_default();
        if !list.is_empty() {
            out.insert(key.into(), list.into());
        }
    }
    if let Some(s) = subject {
        out.insert("subject".into(), s.into());
    }
    if let Some(d) = m.date().filter(|d| d.is_valid()) {
        out.insert(
            "date".into(),
            sextant_core::format_rfc3339(d.to_timestamp()).into(),
        );
    }
    if let Some(id) = m.message_id().filter(|i| !i.is_empty()) {
        out.insert("message_id".into(), id.into());
    }
    let reply = m.in_reply_to();
    let reply = reply.as_text().or_else(|| {
        reply
            .as_text_list()
            .and_then(|l| l.first().map(|c| c.as_ref()))
    });
    if let Some(r) = reply.filter(|r| !r.is_empty()) {
        out.insert("in_reply_to".into(), r.into());
    }
    let attachments: Vec<Value> = m
        .attachments()
        .map(|a| {
            let name = a.attachment_name().map(str::to_string).unwrap_or_else(|| {
                a.content_type().map_or_else(
                    || "application/octet-stream".to_string(),
                    |c| match c.subtype() {
                        Some(s) => format!("{}/{s}", c.ctype()),
                        None => c.ctype().to_string(),
                    },
                )
            });
            Value::String(name)
        })
        .collect();
    if !attachments.is_empty() {
        out.insert("attachments".into(), attachments.into());
    }
    out
}

/// `Name <address>` (or just one of them) for every address, groups flattened.
fn addresses(a: &Address<'_>) -> Vec<String> {
    a.iter()
        .filter_map(|x| match (x.name().map(str::trim), x.address()) {
            (Some(n), Some(ad)) if !n.is_empty() => Some(format!("{n} <{ad}>")),
            (_, Some(ad)) => Some(ad.to_string()),
            (Some(n), None) if !n.is_empty() => Some(n.to_string()),
            _ => None,
        })
        .collect()
}

/// The messages of an mbox file, read lazily.
#[derive(Debug)]
pub(super) struct MboxRecords<'a> {
    bytes: &'a [u8],
    pos: usize,
    n: usize,
    seen: HashSet<String>,
}

impl<'a> MboxRecords<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        MboxRecords {
            bytes,
            pos: 0,
            n: 0,
            seen: HashSet::new(),
        }
    }
}

impl Iterator for MboxRecords<'_> {
    type Item = Result<Record, ExtractError>;

    fn next(&mut self) -> Option<Self::Item> {
        let b = self.bytes;
        loop {
            if self.pos >= b.len() {
                return None;
            }
            let from = self.pos;
            let start = if b[from..].starts_with(b"From ") {
                b[from..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(b.len(), |i| from + i + 1)
            } else {
                from
            };
            let next = find_from_line(b, start).unwrap_or(b.len());
            let mut end = next;
            if b[start..end].ends_with(b"\r\n\r\n") {
                end -= 2;
            } else if b[start..end].ends_with(b"\n\n") {
                end -= 1;
            }
            self.pos = next;
            if b[start..end].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            self.n += 1;
            return Some(message(&b[start..end], start, true).map(|extracted| {
                let key = match extracted.payload.get("message_id").and_then(Value::as_str) {
                    Some(id) if self.seen.insert(id.to_string()) => id.to_string(),
                    _ => format!("message-{}", self.n),
                };
                Record {
                    key,
                    range: start..end,
                    extracted,
                }
            }));
        }
    }
}

/// The start of the next line beginning with `From ` at or after `from` (which is itself a
/// line start).
fn find_from_line(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i < b.len() {
        if b[i..].starts_with(b"From ") && (i == 0 || b[i - 1] == b'\n') {
            return Some(i);
        }
        i += b[i..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |p| p + 1);
    }
    None
}

/// Whether a text starts like an mbox: a `From ` envelope line holding a time (`10:42`),
/// then a header field.
pub(super) fn is_mbox_start(head: &str) -> bool {
    let mut lines = head.lines();
    let Some(first) = lines.next().filter(|l| l.starts_with("From ")) else {
        return false;
    };
    let b = first.as_bytes();
    let has_time = b.windows(5).any(|w| {
        w[0].is_ascii_digit()
            && w[1].is_ascii_digit()
            && w[2] == b':'
            && w[3].is_ascii_digit()
            && w[4].is_ascii_digit()
    });
    has_time && lines.next().is_some_and(|l| header_name(l).is_some())
}

/// Whether a text starts with a block of header fields naming at least two known headers, one
/// of which only a message has.
pub(super) fn looks_like_message(head: &str) -> bool {
    let mut known: Vec<String> = Vec::new();
    for (i, full) in head.split_inclusive('\n').enumerate() {
        let line = full.trim_end_matches(['\r', '\n']);
        if line.trim().is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) && i > 0 {
            continue;
        }
        let Some(name) = header_name(line) else {
            // The last line of a head cut short may be half a header.
            if !full.ends_with('\n') && i > 0 {
                break;
            }
            return false;
        };
        let name = name.to_ascii_lowercase();
        if KNOWN_HEADERS.contains(&name.as_str()) && !known.contains(&name) {
            known.push(name);
        }
    }
    known.len() >= 2
        && known
            .iter()
            .any(|k| MESSAGE_ONLY_HEADERS.contains(&k.as_str()))
}

/// The field name of a header line (`Name: value`).
fn header_name(line: &str) -> Option<&str> {
    let (name, _) = line.split_once(':')?;
    (!name.is_empty() && name.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'))
        .then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_lines_split_an_mbox() {
        let b = b"From a Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody\n>From here\n\nFrom b Tue\nSubject: y\n";
        let next = find_from_line(b, 32).unwrap();
        assert!(b[next..].starts_with(b"From b"));
        assert_eq!(find_from_line(b, next + 1), None);
        assert!(is_mbox_start(
            "From MAILER-DAEMON Mon Jan  1 10:00:00 2024\nReturn-Path: <a@b>\n"
        ));
        assert!(!is_mbox_start("From me to you 10:30\nlove\n"));
        assert!(!is_mbox_start("From: a@b\n"));
    }

    #[test]
    fn not_an_email() {
        assert!(matches!(
            extract_message(b"just some text\n\nand more"),
            Err(ExtractError::NotEmail { offset: 0 })
        ));
        assert!(extract_message(b"").is_err());
    }
}
