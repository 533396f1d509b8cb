//! Document text extraction: a source file (plain text, Markdown, HTML or PDF) → the text to
//! chunk, its title, and an [`OffsetMap`] from offsets in that text back to offsets in the source
//! (PDF: the page each part of the text came from instead, since offsets into a PDF file mean
//! nothing to a reader).
//!
//! The extracted text is what the chunkers in [`crate::chunk`] read: for HTML it is
//! Markdown-shaped (headings become `#` lines, blocks are separated by blank lines, list items
//! are `- ` lines) so [`crate::chunk::Strategy::Paragraphs`] records every chunk's `section`.
//! A chunk at `start..end` of the text came from `map.range_to_source(start..end)` of the source,
//! which is what a citation should point at.
//!
//! | format | text | title | map |
//! |---|---|---|---|
//! | [`Format::Text`] | the source | none (a first line is too often not a title; use the file name) | identity |
//! | [`Format::Markdown`] | the source (front matter included) | front matter `title:`, else the first `#`/`##` heading (ATX or setext) outside code fences | identity |
//! | [`Format::Html`] | visible content only (see below) | `<title>`, else the first `<h1>` | runs of copied text |
//! | [`Format::Pdf`] | page texts separated by blank lines, page starts in [`Extracted::pages`] (see [`pdf`](mod@pdf)) | the Info dictionary's `/Title` | identity (offsets stay in the text) |
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
//! decoded lossily all give some text. A PDF can fail (damaged, encrypted, no text layer):
//! [`extract_bytes`] says why. A line of page text that would read as a Markdown heading
//! (`# comment` in a code block) is escaped as `\# comment`, so only the page's headings become
//! sections. Known limit: HTML named references outside the common set stay as written (see
//! `entities.rs`).

mod entities;
mod html;
mod map;
pub mod pdf;
mod tokenizer;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// HTML elements nested deeper than this are read as if they sat at this depth.
pub use html::MAX_DEPTH;
pub use map::{OffsetMap, Run};
pub use pdf::ExtractError;

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
    /// PDF, the text of its pages (binary: read it with [`extract_bytes`]; needs the `pdf`
    /// feature).
    Pdf,
}

impl Format {
    /// Every format.
    pub const ALL: &'static [Format] = &[Format::Text, Format::Markdown, Format::Html, Format::Pdf];

    /// The format's name: `text`, `markdown`, `html` or `pdf`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Html => "html",
            Format::Pdf => "pdf",
        }
    }

    /// Whether files of this format are binary (read them with [`extract_bytes`], not as text).
    pub fn is_binary(self) -> bool {
        self == Format::Pdf
    }

    /// The format of a file extension (`txt`, `md`/`markdown`, `html`/`htm`/`xhtml`, `pdf`; any
    /// case, with or without the dot), or `None` for an extension we do not know.
    pub fn from_extension(ext: &str) -> Option<Format> {
        let ext = ext.strip_prefix('.').unwrap_or(ext).to_ascii_lowercase();
        match ext.as_str() {
            "txt" | "text" => Some(Format::Text),
            "md" | "markdown" | "mdown" | "mkd" => Some(Format::Markdown),
            "html" | "htm" | "xhtml" => Some(Format::Html),
            "pdf" => Some(Format::Pdf),
            _ => None,
        }
    }

    /// The format of a path, by its extension.
    pub fn from_path(path: &Path) -> Option<Format> {
        Format::from_extension(path.extension()?.to_str()?)
    }

    /// PDF when the source starts (after whitespace) with the `%PDF-` header; HTML when it
    /// starts (after a byte-order mark and whitespace) with markup and its first
    /// [`SNIFF_BYTES`] bytes hold a doctype or an `<html>`, `<head>` or `<body>` tag; otherwise
    /// text (Markdown cannot be told from text reliably, and reading it as text loses nothing
    /// but the title).
    pub fn sniff(source: &str) -> Format {
        let s = source.trim_start_matches('\u{feff}').trim_start();
        if s.starts_with(pdf::HEADER) {
            return Format::Pdf;
        }
        if !s.starts_with('<') {
            return Format::Text;
        }
        let mut end = s.len().min(SNIFF_BYTES);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let head = s[..end].to_ascii_lowercase();
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

    /// [`Format::sniff`] on raw bytes (a PDF is not text): only the first [`SNIFF_BYTES`] are
    /// decoded.
    pub fn sniff_bytes(bytes: &[u8]) -> Format {
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

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown document format {0:?}: expected text, markdown, html or pdf")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    /// A format name (`text`, `markdown`, `html`, `pdf`) or one of its extensions (`txt`, `md`,
    /// `htm`).
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

/// What [`extract`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// The text to chunk and embed.
    pub text: String,
    /// The document's title, if it names one.
    pub title: Option<String>,
    /// Offsets in `text` → offsets in the source.
    pub map: OffsetMap,
    /// Paged formats (PDF): where each page starts in `text`, ascending (page `i + 1` starts at
    /// `pages[i]`; a page without text starts where the next one does). `None` for the others.
    pub pages: Option<Vec<usize>>,
    /// Pages (from 1) the parser could not read: their text is missing, the rest is there.
    pub unreadable_pages: Vec<usize>,
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
        }
    }

    /// The page (from 1) that the text at byte `offset` is on, for paged formats.
    pub fn page_at(&self, offset: usize) -> Option<usize> {
        page_at(self.pages.as_deref()?, offset)
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
/// A PDF is binary and a `&str` has usually lost its bytes to UTF-8 decoding: read PDFs with
/// [`extract_bytes`], which also says why one gave no text; here such a PDF gives an empty text.
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
        Format::Text => Extracted::identity(source.to_string(), None),
        Format::Markdown => Extracted::identity(source.to_string(), markdown_title(source)),
        Format::Html => {
            let (text, title, map) = html::extract(source);
            Extracted::unpaged(text, title, map)
        }
        Format::Pdf => pdf::extract(source.as_bytes())
            .unwrap_or_else(|_| Extracted::identity(String::new(), None)),
    }
}

/// Extracts the text, title and offset map of a file's bytes read as `format`: text formats
/// are decoded as UTF-8 (invalid bytes become U+FFFD) and never fail; a PDF fails when it cannot
/// be parsed, is encrypted, has no text layer, or the crate was built without the `pdf` feature.
///
/// ```
/// use sextant_text::extract::{extract_bytes, ExtractError, Format};
///
/// let out = extract_bytes(Format::Markdown, b"# Notes\n\nSome text.").unwrap();
/// assert_eq!(out.title.as_deref(), Some("Notes"));
/// assert!(extract_bytes(Format::Pdf, b"%PDF-1.4 and then nothing").is_err());
/// ```
pub fn extract_bytes(format: Format, bytes: &[u8]) -> Result<Extracted, ExtractError> {
    match format {
        Format::Pdf => pdf::extract(bytes),
        _ => Ok(extract(format, &String::from_utf8_lossy(bytes))),
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
    fn formats_from_extensions_names_and_content() {
        assert_eq!(Format::from_extension(".MD"), Some(Format::Markdown));
        assert_eq!(Format::from_extension("htm"), Some(Format::Html));
        assert_eq!(Format::from_extension("pdf"), Some(Format::Pdf));
        assert_eq!(Format::from_extension("docx"), None);
        assert_eq!(
            Format::from_path(Path::new("docs/Guide.markdown")),
            Some(Format::Markdown)
        );
        assert_eq!(Format::from_path(Path::new("README")), None);
        assert_eq!("HTML".parse::<Format>(), Ok(Format::Html));
        assert_eq!("txt".parse::<Format>(), Ok(Format::Text));
        let err = "docx".parse::<Format>().unwrap_err().to_string();
        assert!(err.contains("docx") && err.contains("markdown"), "{err}");
        for &f in Format::ALL {
            assert_eq!(f.to_string().parse::<Format>(), Ok(f));
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(json, format!("\"{f}\""));
            assert_eq!(serde_json::from_str::<Format>(&json).unwrap(), f);
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
