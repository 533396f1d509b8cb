//! Document text extraction: a source file (plain text, Markdown or HTML) → the text to chunk,
//! its title, and an [`OffsetMap`] from offsets in that text back to offsets in the source.
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
//! Extraction never fails: malformed markup, empty input and text that was decoded lossily all
//! give some text. A line of page text that would read as a Markdown heading (`# comment` in a
//! code block) is escaped as `\# comment`, so only the page's headings become sections. Known
//! limit: HTML named references outside the common set stay as written (see `entities.rs`).

mod entities;
mod html;
mod map;
mod tokenizer;

use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// HTML elements nested deeper than this are read as if they sat at this depth.
pub use html::MAX_DEPTH;
pub use map::{OffsetMap, Run};

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
}

impl Format {
    /// Every format.
    pub const ALL: &'static [Format] = &[Format::Text, Format::Markdown, Format::Html];

    /// The format's name: `text`, `markdown` or `html`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Html => "html",
        }
    }

    /// The format of a file extension (`txt`, `md`/`markdown`, `html`/`htm`/`xhtml`; any case,
    /// with or without the dot), or `None` for an extension we do not know.
    pub fn from_extension(ext: &str) -> Option<Format> {
        let ext = ext.strip_prefix('.').unwrap_or(ext).to_ascii_lowercase();
        match ext.as_str() {
            "txt" | "text" => Some(Format::Text),
            "md" | "markdown" | "mdown" | "mkd" => Some(Format::Markdown),
            "html" | "htm" | "xhtml" => Some(Format::Html),
            _ => None,
        }
    }

    /// The format of a path, by its extension.
    pub fn from_path(path: &Path) -> Option<Format> {
        Format::from_extension(path.extension()?.to_str()?)
    }

    /// HTML when the source starts (after a byte-order mark and whitespace) with markup and its
    /// first [`SNIFF_BYTES`] bytes hold a doctype or an `<html>`, `<head>` or `<body>` tag;
    /// otherwise text (Markdown cannot be told from text reliably, and reading it as text loses
    /// nothing but the title).
    pub fn sniff(source: &str) -> Format {
        let s = source.trim_start_matches('\u{feff}').trim_start();
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

    /// The format of a file: by extension when it is known, else by [`Format::sniff`].
    pub fn detect(path: &Path, source: &str) -> Format {
        Format::from_path(path).unwrap_or_else(|| Format::sniff(source))
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown format name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown document format {0:?}: expected text, markdown or html")]
pub struct UnknownFormat(pub String);

impl FromStr for Format {
    type Err = UnknownFormat;

    /// A format name (`text`, `markdown`, `html`) or one of its extensions (`txt`, `md`, `htm`).
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
}

/// Extracts the text, title and offset map of `source` read as `format`.
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
        Format::Text => Extracted {
            text: source.to_string(),
            title: None,
            map: OffsetMap::identity(source.len()),
        },
        Format::Markdown => Extracted {
            text: source.to_string(),
            title: markdown_title(source),
            map: OffsetMap::identity(source.len()),
        },
        Format::Html => {
            let (text, title, map) = html::extract(source);
            Extracted { text, title, map }
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
    fn formats_from_extensions_names_and_content() {
        assert_eq!(Format::from_extension(".MD"), Some(Format::Markdown));
        assert_eq!(Format::from_extension("htm"), Some(Format::Html));
        assert_eq!(Format::from_extension("pdf"), None);
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
