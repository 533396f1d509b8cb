//! [`Format`]: the closed set of document formats, their names and extensions, and telling them
//! apart by content when a file's extension says nothing.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::{code, email, pdf, zipped};

/// How many leading bytes [`Format::sniff`] looks at.
pub const SNIFF_BYTES: usize = 1024;

/// A source document format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// Plain text, used as it is.
    Text,
    /// Markdown, used as it is (the Markdown chunker understands its headings).
    Markdown,
    /// HTML, reduced to its visible content.
    Html,
    /// PDF, the text of its pages (binary: read it with [`extract_bytes`](super::extract_bytes);
    /// needs the `pdf` feature).
    Pdf,
    /// Word (Office Open XML) documents: the body's paragraphs and tables (binary: a zip
    /// archive).
    Docx,
    /// EPUB e-books: the chapters in reading order, each through the HTML extractor (binary: a
    /// zip archive).
    Epub,
    /// Comma-, tab-, semicolon- or pipe-separated values: one record per row or group of rows
    /// (read it with [`records`](super::records)).
    Csv,
    /// One e-mail message (RFC 5322 with MIME, `.eml`).
    Email,
    /// A mailbox of many e-mail messages (read it with [`records`](super::records)).
    Mbox,
    /// Source code, used as it is (chunk it with [`crate::chunk::code`]; its language comes
    /// from [`CodeLanguage::detect`](super::CodeLanguage::detect)).
    Code,
}

/// What the source offsets of an [`Extracted::map`](super::Extracted::map) count: where a
/// chunk's `start..end`, mapped through it, points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SourceOffsets {
    /// Bytes of the file (text, Markdown, HTML, code; for CSV, e-mail and mbox records, bytes
    /// of the whole file, not of the record).
    File,
    /// Bytes of the extracted text itself: the map is the identity, and
    /// [`Extracted::pages`](super::Extracted::pages) says which page a text offset is on (PDF:
    /// byte offsets into a PDF file mean nothing to a reader).
    Text,
    /// Paragraphs: the source range `i..i + 1` is the body's paragraph `i` (from 0, every
    /// `<w:p>` in document order, empty ones and those in table cells included), so a chunk
    /// maps to the paragraphs it came from (DOCX: byte offsets into a zipped file mean
    /// nothing).
    Paragraphs,
    /// Bytes of the document's parts laid end to end in reading order;
    /// [`Extracted::parts`](super::Extracted::parts) names the part each range belongs to and
    /// [`Extracted::part_at`](super::Extracted::part_at) turns an offset into (part, offset in
    /// it) (EPUB: the spine's XHTML files).
    Parts,
}

impl Format {
    /// Every format.
    pub const ALL: &'static [Format] = &[
        Format::Text,
        Format::Markdown,
        Format::Html,
        Format::Pdf,
        Format::Docx,
        Format::Epub,
        Format::Csv,
        Format::Email,
        Format::Mbox,
        Format::Code,
    ];

    /// The format's name: `text`, `markdown`, `html`, `pdf`, `docx`, `epub`, `csv`, `email`,
    /// `mbox` or `code`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Html => "html",
            Format::Pdf => "pdf",
            Format::Docx => "docx",
            Format::Epub => "epub",
            Format::Csv => "csv",
            Format::Email => "email",
            Format::Mbox => "mbox",
            Format::Code => "code",
        }
    }

    /// The file extensions of the format (lower case, without the dot), the first being the
    /// usual one. A directory walk can read every file whose extension is listed by a format
    /// of [`Format::ALL`].
    pub fn extensions(self) -> &'static [&'static str] {
        match self {
            Format::Text => &["txt", "text"],
            Format::Markdown => &["md", "markdown", "mdown", "mkd"],
            Format::Html => &["html", "htm", "xhtml"],
            Format::Pdf => &["pdf"],
            Format::Docx => &["docx"],
            Format::Epub => &["epub"],
            Format::Csv => &["csv", "tsv", "tab"],
            Format::Email => &["eml"],
            Format::Mbox => &["mbox", "mbx"],
            Format::Code => code::EXTENSIONS,
        }
    }

    /// Whether files of this format must be read as bytes, with
    /// [`extract_bytes`](super::extract_bytes) or [`records`](super::records), not decoded as
    /// UTF-8 first: archives and PDF are binary, e-mail declares its own charsets, and a CSV
    /// file's invalid UTF-8 is an error that names the line.
    pub fn is_binary(self) -> bool {
        match self {
            Format::Pdf
            | Format::Docx
            | Format::Epub
            | Format::Csv
            | Format::Email
            | Format::Mbox => true,
            Format::Text | Format::Markdown | Format::Html | Format::Code => false,
        }
    }

    /// Whether a file of this format holds many documents (CSV rows, mbox messages): read it
    /// with [`records`](super::records); [`extract_bytes`](super::extract_bytes) refuses it.
    pub fn has_records(self) -> bool {
        match self {
            Format::Csv | Format::Mbox => true,
            Format::Text
            | Format::Markdown
            | Format::Html
            | Format::Pdf
            | Format::Docx
            | Format::Epub
            | Format::Email
            | Format::Code => false,
        }
    }

    /// What the source offsets of this format's [`OffsetMap`](super::OffsetMap) count.
    pub fn source_offsets(self) -> SourceOffsets {
        match self {
            Format::Text
            | Format::Markdown
            | Format::Html
            | Format::Csv
            | Format::Email
            | Format::Mbox
            | Format::Code => SourceOffsets::File,
            Format::Pdf => SourceOffsets::Text,
            Format::Docx => SourceOffsets::Paragraphs,
            Format::Epub => SourceOffsets::Parts,
        }
    }

    /// The format of a file extension (one of [`Format::extensions`]; any case, with or
    /// without the dot), or `None` for an extension we do not know.
    pub fn from_extension(ext: &str) -> Option<Format> {
        let ext = ext.strip_prefix('.').unwrap_or(ext).to_ascii_lowercase();
        Format::ALL
            .iter()
            .copied()
            .find(|f| f.extensions().contains(&ext.as_str()))
    }

    /// The format of a path, by its extension.
    pub fn from_path(path: &Path) -> Option<Format> {
        Format::from_extension(path.extension()?.to_str()?)
    }

    /// The format of a text by its first bytes: PDF when it starts (after whitespace) with the
    /// `%PDF-` header; code when it starts with a `#!` line; an mbox when it starts with a
    /// `From ` envelope line; e-mail when it starts with a block of header fields naming at
    /// least two of `From`, `To`, `Subject`, `Date`, `Message-ID`, `Received`, … (one being
    /// `From`, `Date`, `Message-ID`, `Received` or `Return-Path`); HTML when it starts (after a
    /// byte-order mark and whitespace) with markup and its first [`SNIFF_BYTES`] bytes hold a
    /// doctype or an `<html>`, `<head>` or `<body>` tag; otherwise text (Markdown and CSV
    /// cannot be told from text reliably, and reading them as text loses little).
    pub fn sniff(source: &str) -> Format {
        let s = source.trim_start_matches('\u{feff}');
        if s.trim_start().starts_with(pdf::HEADER) {
            return Format::Pdf;
        }
        if s.starts_with("#!") {
            return Format::Code;
        }
        let head = prefix(s, SNIFF_BYTES);
        if email::is_mbox_start(head) {
            return Format::Mbox;
        }
        if email::looks_like_message(head) {
            return Format::Email;
        }
        let s = s.trim_start();
        if !s.starts_with('<') {
            return Format::Text;
        }
        let head = prefix(s, SNIFF_BYTES).to_ascii_lowercase();
        let html = head.starts_with("<!doctype html")
            || ["<html", "<head", "<body"].iter().any(|t| {
                head.match_indices(t).any(|(i, _)| {
                    head[i + t.len()..]
                        .chars()
                        .next()
                        .is_some_and(|c| c == '>' || c.is_ascii_whitespace())
                })
            });
        if html {
            Format::Html
        } else {
            Format::Text
        }
    }

    /// [`Format::sniff`] on raw bytes: a zip archive is an EPUB when its first entry is the
    /// `mimetype` file saying `application/epub+zip`, a DOCX when its central directory lists
    /// `word/document.xml`; an OLE2 compound file is taken for a DOCX (an encrypted one, or a
    /// legacy `.doc`: reading it says which); otherwise the first [`SNIFF_BYTES`] are decoded
    /// and sniffed as text.
    pub fn sniff_bytes(bytes: &[u8]) -> Format {
        if let Some(f) = zipped::sniff(bytes) {
            return f;
        }
        let head = &bytes[..bytes.len().min(SNIFF_BYTES)];
        Format::sniff(&String::from_utf8_lossy(head))
    }

    /// The format of a file: by extension when it is known, else by [`Format::sniff`].
    pub fn detect(path: &Path, source: &str) -> Format {
        Format::from_path(path).unwrap_or_else(|| Format::sniff(source))
    }

    /// The format of a file read as bytes: by extension when it is known, else by
    /// [`Format::sniff_bytes`].
    pub fn detect_bytes(path: &Path, bytes: &[u8]) -> Format {
        Format::from_path(path).unwrap_or_else(|| Format::sniff_bytes(bytes))
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a char boundary.
fn prefix(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown document format {0:?}: expected text, markdown, html, pdf, docx, epub, csv, email, \
     mbox or code"
)]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    /// A format name ([`Format::name`]) or one of its extensions (`txt`, `md`, `htm`, `tsv`,
    /// `eml`, `rs`, …).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        Format::ALL
            .iter()
            .copied()
            .find(|f| f.name() == t)
            .or_else(|| Format::from_extension(&t))
            .ok_or_else(|| UnknownFormat(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_from_extensions_names_and_content() {
        assert_eq!(Format::from_extension(".MD"), Some(Format::Markdown));
        assert_eq!(Format::from_extension("htm"), Some(Format::Html));
        assert_eq!(Format::from_extension("pdf"), Some(Format::Pdf));
        assert_eq!(Format::from_extension("odt"), None);
        assert_eq!(
            Format::from_path(Path::new("docs/Guide.markdown")),
            Some(Format::Markdown)
        );
        assert_eq!(Format::from_path(Path::new("README")), None);
        assert_eq!("HTML".parse::<Format>(), Ok(Format::Html));
        assert_eq!("txt".parse::<Format>(), Ok(Format::Text));
        let err = "odt".parse::<Format>().unwrap_err().to_string();
        assert!(err.contains("odt") && err.contains("markdown"), "{err}");
        for &f in Format::ALL {
            assert_eq!(f.to_string().parse::<Format>(), Ok(f));
            assert!(err.contains(f.name()), "{err} lacks {f}");
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{f}\""));
            assert_eq!(serde_json::from_str::<Format>(&json).unwrap(), f);
            for ext in f.extensions() {
                assert_eq!(Format::from_extension(ext), Some(f), "{ext}");
            }
        }
        assert_eq!(Format::sniff("\u{feff}  <!DOCTYPE html><p>x"), Format::Html);
        assert_eq!(Format::sniff("<html lang=en>"), Format::Html);
        assert_eq!(
            Format::sniff("<!-- generated -->\n<HEAD><title>x"),
            Format::Html
        );
        assert_eq!(Format::sniff("<div>a <bodyguard> tag</div>"), Format::Text);
        assert_eq!(Format::sniff("# Title\n\nuse <body> tags"), Format::Text);
        assert_eq!(Format::sniff("plain"), Format::Text);
        assert_eq!(Format::sniff(&"é".repeat(SNIFF_BYTES)), Format::Text);
        assert_eq!(
            Format::detect(Path::new("page"), "<html><body>x</body></html>"),
            Format::Html
        );
        assert_eq!(Format::detect(Path::new("a.txt"), "<html>"), Format::Text);
        assert_eq!(Format::sniff("%PDF-1.7\n%âãÏÓ"), Format::Pdf);
        assert_eq!(
            Format::sniff_bytes(b"\n%PDF-1.4\n%\xe2\xe3\xcf\xd3"),
            Format::Pdf
        );
        assert_eq!(Format::sniff_bytes(b"<html><body>x"), Format::Html);
        assert_eq!(Format::sniff_bytes(b"a %PDF- in text"), Format::Text);
        assert_eq!(
            Format::detect_bytes(Path::new("scan"), b"%PDF-1.5"),
            Format::Pdf
        );
        assert!(Format::Pdf.is_binary() && !Format::Html.is_binary());
    }

    #[test]
    fn new_formats_by_extension_and_content() {
        for (ext, f) in [
            ("DOCX", Format::Docx),
            ("epub", Format::Epub),
            ("tsv", Format::Csv),
            ("eml", Format::Email),
            ("mbox", Format::Mbox),
            ("rs", Format::Code),
            ("tsx", Format::Code),
            ("sh", Format::Code),
        ] {
            assert_eq!(Format::from_extension(ext), Some(f), "{ext}");
        }
        assert_eq!(
            Format::sniff("#!/usr/bin/env python3\nprint(1)"),
            Format::Code
        );
        assert_eq!(
            Format::sniff("From alice@example.com Mon Jan  1 10:00:00 2024\nFrom: a@b\n"),
            Format::Mbox
        );
        assert_eq!(
            Format::sniff("Return-Path: <a@b.c>\nReceived: from x\n\tby y\nFrom: A <a@b.c>\nSubject: Hi\n\nBody"),
            Format::Email
        );
        assert_eq!(Format::sniff("From here we walked on.\n"), Format::Text);
        assert_eq!(Format::sniff("title: x\ndate: 2024\n\ntext"), Format::Text);
        assert_eq!(Format::sniff("Subject: only one\n\nx"), Format::Text);
        assert!(Format::Csv.has_records() && !Format::Email.has_records());
        assert_eq!(Format::Docx.source_offsets(), SourceOffsets::Paragraphs);
        assert_eq!(Format::Epub.source_offsets(), SourceOffsets::Parts);
        assert_eq!(Format::Pdf.source_offsets(), SourceOffsets::Text);
        assert_eq!(Format::Mbox.source_offsets(), SourceOffsets::File);
    }
}
