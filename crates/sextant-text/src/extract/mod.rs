//! Document text extraction: a source file → the text to chunk, its title, format-specific
//! fields for the chunks' payload, and an [`OffsetMap`] from offsets in that text back to the
//! source ([`Format::source_offsets`] says what those count: bytes of the file for most
//! formats, the extracted text itself for PDF, paragraphs for DOCX, the chapters laid end to
//! end for EPUB).
//!
//! The extracted text is what the chunkers in [`crate::chunk`] read: for HTML, DOCX and EPUB
//! it is Markdown-shaped (headings become `#` lines, blocks are separated by blank lines, list
//! items are `- ` lines) so [`crate::chunk::Strategy::Paragraphs`] records every chunk's
//! `section`. A chunk at `start..end` of the text came from `map.range_to_source(start..end)`
//! of the source, which is what a citation should point at.
//!
//! | format | text | title | map | payload |
//! |---|---|---|---|---|
//! | [`Format::Text`] | the source | none (a first line is too often not a title; use the file name) | identity | — |
//! | [`Format::Markdown`] | the source (front matter included) | front matter `title:`, else the first `#`/`##` heading (ATX or setext) outside code fences | identity | — |
//! | [`Format::Html`] | visible content only (see below) | `<title>`, else the first `<h1>` | runs of copied text | — |
//! | [`Format::Pdf`] | page texts separated by blank lines, page starts in [`Extracted::pages`] (see [`pdf`](mod@pdf)) | the Info dictionary's `/Title` | identity (offsets stay in the text) | — |
//! | [`Format::Docx`] | the body's paragraphs separated by blank lines; `Title`/`Heading 1`–`9` paragraphs as `#` lines, list paragraphs as `- ` lines, table rows as lines of tab-separated cells | `docProps/core.xml`'s `dc:title`, else the first level-1 heading | each paragraph to its index ([`SourceOffsets::Paragraphs`]) | `author`, `created`, `modified` (RFC 3339, UTC), `subject`, `keywords`, `description`, `declared_language` |
//! | [`Format::Epub`] | the spine's XHTML documents in reading order, each through the HTML extractor, separated by blank lines | the package's `dc:title`, else the first chapter's | bytes of the spine documents laid end to end, named by [`Extracted::parts`] | `author`, `declared_language`, `identifier`, `publisher`, `date` |
//! | [`Format::Email`] | the `text/plain` body parts, else the HTML ones through the HTML extractor | `Subject` | bytes of the file (a transfer-encoded part maps as a whole) | `from`, `to`, `cc`, `date` (RFC 3339, UTC), `message_id`, `in_reply_to`, `attachments` (names) |
//! | [`Format::Csv`] (records) | per row: `column: value` lines, or the text columns' values (see [`CsvOptions`]) | the title column's value | bytes of the file | the other columns, numbers as JSON numbers |
//! | [`Format::Mbox`] (records) | each message as [`Format::Email`] | `Subject` | bytes of the mbox file | as [`Format::Email`] |
//! | [`Format::Code`] | the source (chunk it with [`crate::chunk::code`]) | none | identity | — |
//!
//! CSV files and mailboxes hold many documents: [`records`] reads them one [`Record`] at a
//! time (each with its key and its byte range in the file), so a 1 GB mbox is held once, as
//! the caller's bytes.
//!
//! HTML: `script`, `style`, `noscript`, `template`, `head`, `svg`, `iframe`, buttons, form
//! controls, media and dialogs are never text, and neither are elements hidden by `hidden`,
//! `aria-hidden="true"` or an inline `display: none`/`visibility: hidden`. Page furniture is
//! dropped: `nav`, `footer`, `aside`, `header` outside `main`/`article` (inside them it holds
//! the article's heading) and furniture landmarks (`role="navigation"`, `banner`,
//! `contentinfo`, …). Unless they hold at least half of the page's words, so are `form`s (an
//! ASP.NET page is one big form), blocks whose `class`/`id` names boilerplate (cookie and
//! consent banners, sidebars, share widgets, …) and blocks of at most 80 words that are at
//! least 60% link text. If that leaves nothing (a page made only of `<nav>`), the page is read
//! again keeping furniture. When the page has a `<main>` (or `role="main"`), only it is read;
//! else its only `<article>` if it has exactly one. Character references are decoded,
//! whitespace is collapsed except inside `<pre>`.
//!
//! Extraction of the text formats never fails: malformed markup, empty input and text that was
//! decoded lossily all give some text. The binary formats can fail, and [`extract_bytes`] and
//! [`records`] say why ([`ExtractError`]): a PDF that is damaged, encrypted or has no text
//! layer; a DOCX or EPUB that is not a zip archive, lacks its main part, holds malformed XML or
//! is encrypted; a CSV row that is ragged or not UTF-8 (the error names the line); bytes that
//! do not start with e-mail header fields. A line of page text that would read as a Markdown
//! heading (`# comment` in a code block) is escaped as `\# comment`, so only the page's
//! headings become sections (DOCX paragraphs likewise). Known limit: HTML named references
//! outside the common set stay as written (see `entities.rs`).

mod code;
mod delimited;
mod docx;
mod email;
mod entities;
mod epub;
mod error;
mod format;
mod html;
mod map;
mod mapped;
pub mod pdf;
mod records;
mod tokenizer;
mod zipped;

pub use code::{CodeLanguage, UnknownLanguage};
pub use delimited::{CsvOptions, DEFAULT_ROWS_PER_RECORD};
pub use error::{BoxError, ExtractError};
pub use format::{Format, SourceOffsets, UnknownFormat, SNIFF_BYTES};
/// HTML elements nested deeper than this are read as if they sat at this depth.
pub use html::MAX_DEPTH;
pub use map::{OffsetMap, Run};
pub use records::{extract_records, records, Record, RecordOptions, Records};
pub use zipped::MAX_PART_BYTES;

use serde_json::{Map, Value};

/// What [`extract`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The text to chunk and embed.
    pub text: String,
    /// The document's title, if it names one.
    pub title: Option<String>,
    /// Offsets in `text` → offsets in the source (what they count: [`Format::source_offsets`]).
    pub map: OffsetMap,
    /// Paged formats (PDF): where each page starts in `text`, ascending (page `i + 1` starts at
    /// `pages[i]`; a page without text starts where the next one does). `None` for the others.
    pub pages: Option<Vec<usize>>,
    /// Pages (from 1) the parser could not read: their text is missing, the rest is there.
    /// EPUB: spine items (from 1) missing from the archive.
    pub unreadable_pages: Vec<usize>,
    /// Fields of the document for its chunks' payload: e-mail headers, a CSV row's columns,
    /// DOCX and EPUB metadata (the table in the [module docs](self) lists them). Empty for
    /// text, Markdown, HTML, PDF and code.
    pub payload: Map<String, Value>,
    /// Documents made of several files (EPUB): each file, in reading order; the map's source
    /// offsets count bytes of these files laid end to end. Empty for the other formats.
    pub parts: Vec<Part>,
}

/// One file of a document made of several ([`SourceOffsets::Parts`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// Its path in the archive (`OEBPS/chapter1.xhtml`).
    pub name: String,
    /// Where its bytes start among the parts laid end to end (the map's source offsets).
    pub source_start: usize,
    /// Its length in bytes.
    pub source_len: usize,
    /// Where its text starts in [`Extracted::text`] (a part without text starts where the next
    /// one does).
    pub text_start: usize,
}

impl Extracted {
    /// A text that is its own source.
    fn identity(text: String, title: Option<String>) -> Extracted {
        let map = OffsetMap::identity(text.len());
        Extracted::unpaged(text, title, map)
    }

    /// A text without pages.
    fn unpaged(text: String, title: Option<String>, map: OffsetMap) -> Extracted {
        Extracted {
            text,
            title,
            map,
            pages: None,
            unreadable_pages: Vec::new(),
            payload: Map::new(),
            parts: Vec::new(),
        }
    }

    /// The page (from 1) that the text at byte `offset` is on, for paged formats.
    pub fn page_at(&self, offset: usize) -> Option<usize> {
        page_at(self.pages.as_deref()?, offset)
    }

    /// For documents made of several files (EPUB): the part holding source offset `offset` (a
    /// source offset from [`Extracted::map`]) and the offset inside that part. An offset at the
    /// end of the last part belongs to it; `None` without parts or past the end.
    ///
    /// ```
    /// use sextant_text::extract::{extract, Format, Part};
    ///
    /// // Two chapters of 40 and 25 bytes, laid end to end.
    /// let mut out = extract(Format::Text, "");
    /// out.parts = vec![
    ///     Part { name: "ch1.xhtml".into(), source_start: 0, source_len: 40, text_start: 0 },
    ///     Part { name: "ch2.xhtml".into(), source_start: 40, source_len: 25, text_start: 12 },
    /// ];
    /// let (part, offset) = out.part_at(52).unwrap();
    /// assert_eq!((part.name.as_str(), offset), ("ch2.xhtml", 12));
    /// assert_eq!(out.part_at(40).unwrap().0.name, "ch2.xhtml");
    /// assert_eq!(out.part_at(65).unwrap().1, 25);
    /// assert!(out.part_at(66).is_none());
    /// ```
    pub fn part_at(&self, offset: usize) -> Option<(&Part, usize)> {
        let i = self
            .parts
            .partition_point(|p| p.source_start <= offset)
            .checked_sub(1)?;
        let part = &self.parts[i];
        (offset <= part.source_start + part.source_len).then(|| (part, offset - part.source_start))
    }
}

/// The page (from 1) holding byte `offset` of a text whose pages start at `starts` (ascending):
/// the last page starting at or before it. `None` when there are no pages.
///
/// ```
/// use sextant_text::extract::page_at;
///
/// // Page 2 has no text, so it starts where page 3 does.
/// let starts = [0, 10, 10, 25];
/// assert_eq!(page_at(&starts, 0), Some(1));
/// assert_eq!(page_at(&starts, 10), Some(3));
/// assert_eq!(page_at(&starts, 99), Some(4));
/// assert_eq!(page_at(&[], 3), None);
/// ```
pub fn page_at(starts: &[usize], offset: usize) -> Option<usize> {
    (!starts.is_empty()).then(|| starts.partition_point(|&s| s <= offset).max(1))
}

/// Extracts the text, title and offset map of `source` read as `format`.
///
/// The binary formats are best read with [`extract_bytes`] (a `&str` has usually lost their
/// bytes to UTF-8 decoding, and it says why a file gave no text): here a file they cannot
/// read, and a CSV file or mailbox (many documents: see [`records`]), gives an empty text.
///
/// ```
/// use sextant_text::extract::{extract, Format};
///
/// let src = "<title>Doc</title><nav><a href=/>Home</a></nav><h1>Hello</h1><p>Caf&eacute; open.</p>";
/// let out = extract(Format::Html, src);
/// assert_eq!(out.text, "# Hello\n\nCafé open.");
/// assert_eq!(out.title.as_deref(), Some("Doc"));
/// let at = out.text.find("open").unwrap();
/// assert_eq!(&src[out.map.range_to_source(at..at + 4)], "open");
/// ```
pub fn extract(format: Format, source: &str) -> Extracted {
    match format {
        Format::Text | Format::Code => Extracted::identity(source.to_string(), None),
        Format::Markdown => Extracted::identity(source.to_string(), markdown_title(source)),
        Format::Html => {
            let (text, title, map) = html::extract(source);
            Extracted::unpaged(text, title, map)
        }
        Format::Pdf | Format::Docx | Format::Epub | Format::Csv | Format::Email | Format::Mbox => {
            extract_bytes(format, source.as_bytes())
                .unwrap_or_else(|_| Extracted::identity(String::new(), None))
        }
    }
}

/// Extracts the text, title, payload and offset map of a file's bytes read as `format`: text
/// formats (text, Markdown, HTML, code) are decoded as UTF-8 (invalid bytes become U+FFFD) and
/// never fail; the binary ones fail with an [`ExtractError`] that says why (a PDF also fails
/// when the crate was built without the `pdf` feature). CSV files and mailboxes hold many
/// documents: read them with [`records`] ([`ExtractError::ManyRecords`] here).
///
/// ```
/// use sextant_text::extract::{extract_bytes, ExtractError, Format};
///
/// let out = extract_bytes(Format::Markdown, b"# Notes\n\nSome text.").unwrap();
/// assert_eq!(out.title.as_deref(), Some("Notes"));
/// assert!(extract_bytes(Format::Pdf, b"%PDF-1.4 and then nothing").is_err());
///
/// let mail = b"From: Ann <ann@example.com>\r\nSubject: Lunch\r\nDate: Tue, 5 Mar 2024 12:30:00 +0100\r\n\r\nNoon?\r\n";
/// let out = extract_bytes(Format::Email, mail).unwrap();
/// assert_eq!((out.title.as_deref(), out.text.as_str()), (Some("Lunch"), "Noon?"));
/// assert_eq!(out.payload["date"], "2024-03-05T11:30:00Z");
/// assert!(matches!(
///     extract_bytes(Format::Docx, b"not a zip"),
///     Err(ExtractError::Archive { .. })
/// ));
/// ```
pub fn extract_bytes(format: Format, bytes: &[u8]) -> Result<Extracted, ExtractError> {
    match format {
        Format::Pdf => pdf::extract(bytes),
        Format::Docx => docx::extract(bytes),
        Format::Epub => epub::extract(bytes),
        Format::Email => email::extract_message(bytes),
        Format::Csv | Format::Mbox => Err(ExtractError::ManyRecords { format }),
        Format::Text | Format::Markdown | Format::Html | Format::Code => {
            Ok(extract(format, &String::from_utf8_lossy(bytes)))
        }
    }
}

/// Decodes HTML character references (`&amp;`, `&eacute;`, `&#233;`, `&#xE9;`) in `raw`; unknown
/// names stay as written.
pub fn decode_entities(raw: &str) -> String {
    entities::decode_to_string(raw)
}

/// The title of a Markdown document: the `title:` of a YAML front matter block, else the first
/// level-1 or level-2 heading (`# T`, `## T`, or a line underlined by `===`/`---`) outside
/// fenced code blocks.
pub fn markdown_title(source: &str) -> Option<String> {
    let source = source.trim_start_matches('\u{feff}');
    let mut lines = source.lines().peekable();
    if lines.peek().is_some_and(|l| l.trim_end() == "---") {
        lines.next();
        let mut title = None;
        for line in lines.by_ref() {
            let t = line.trim_end();
            if t == "---" || t == "..." {
                break;
            }
            if let Some(v) = t.strip_prefix("title:") {
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                    .unwrap_or(v)
                    .trim();
                if !v.is_empty() && title.is_none() {
                    title = Some(v.to_string());
                }
            }
        }
        if title.is_some() {
            return title;
        }
    }
    let mut fence: Option<&str> = None;
    let mut previous: Option<&str> = None;
    for line in lines {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let t = line.trim();
        if let Some(f) = fence {
            if t.starts_with(f) {
                fence = None;
            }
            previous = None;
            continue;
        }
        if indent < 4 && (t.starts_with("```") || t.starts_with("~~~")) {
            fence = Some(&t[..3]);
            previous = None;
            continue;
        }
        if indent < 4 && t.starts_with('#') {
            let level = t.len() - t.trim_start_matches('#').len();
            let rest = &t[level..];
            if level <= 2 && (rest.is_empty() || rest.starts_with([' ', '\t'])) {
                let title = rest.trim().trim_end_matches('#').trim();
                if !title.is_empty() {
                    return Some(title.to_string());
                }
            }
        }
        let underline = !t.is_empty()
            && indent < 4
            && (t.bytes().all(|b| b == b'=') || t.bytes().all(|b| b == b'-'));
        if underline {
            if let Some(p) = previous {
                return Some(p.to_string());
            }
        }
        previous = (!t.is_empty() && indent < 4 && !t.starts_with('#')).then_some(t);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_markdown_are_identity() {
        let src = "# Hello\n\nSome *text*.\n";
        for f in [Format::Text, Format::Markdown] {
            let out = extract(f, src);
            assert_eq!(out.text, src);
            assert!(out.map.is_identity());
            assert_eq!(out.map.range_to_source(2..7), 2..7);
        }
        assert_eq!(extract(Format::Text, src).title, None);
        assert_eq!(
            extract(Format::Markdown, src).title.as_deref(),
            Some("Hello")
        );
        assert_eq!(extract(Format::Markdown, "").title, None);
    }

    #[test]
    fn markdown_titles() {
        let t = |s: &str| markdown_title(s);
        assert_eq!(
            t("---\nlayout: post\ntitle: \"Front: matter\"\n---\n# Heading\n").as_deref(),
            Some("Front: matter")
        );
        assert_eq!(
            t("---\nlayout: post\n---\n\n## Second level ##\n").as_deref(),
            Some("Second level")
        );
        assert_eq!(
            t("intro\n\n### Third\n\n# First\n").as_deref(),
            Some("First")
        );
        assert_eq!(
            t("```\n# not a title\n```\n# Real\n").as_deref(),
            Some("Real")
        );
        assert_eq!(
            t("    # indented code\n#hashtag\nSetext title\n===\n").as_deref(),
            Some("Setext title")
        );
        assert_eq!(t("Sub\n---\n").as_deref(), Some("Sub"));
        assert_eq!(t("no headings\n\n---\n\nat all"), None);
    }
}
