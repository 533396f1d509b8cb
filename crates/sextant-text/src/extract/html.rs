//! HTML → the visible text a reader would take from the page, as Markdown-ish plain text
//! (headings as `#` lines, paragraphs separated by blank lines, list items as `- ` lines), with
//! an [`OffsetMap`] back to the source.
//!
//! Why our own tokenizer: extraction must know where every copied character sat in the source,
//! and a forgiving tag-soup reader is small. It follows the HTML standard where it matters for
//! text (raw-text elements such as `script`, comments, character references, void elements,
//! implied end tags of `p`, `li`, `dt`/`dd`, table rows and cells) and never fails: every input
//! yields some text. Nesting deeper than [`MAX_DEPTH`] is flattened, so hostile input cannot
//! exhaust the stack.

use super::entities;
use super::map::OffsetMap;
use super::tokenizer::{Token, Tokenizer};

/// Elements nested deeper than this are attached to the element at this depth.
pub const MAX_DEPTH: usize = 256;

/// Blocks whose words are mostly link text are navigation, unless they are at least this long.
const LINK_DENSE_MAX_WORDS: usize = 80;

const VOID: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr",
];

/// Never visible text.
const NEVER_TEXT: &[&str] = &[
    "script", "style", "noscript", "template", "svg", "head", "title", "button", "select",
    "textarea", "object", "embed", "canvas", "audio", "video", "dialog", "noembed", "noframes",
    "xmp", "map", "iframe",
];

/// Page furniture rather than content (and `header` outside `main`/`article`).
const FURNITURE: &[&str] = &["nav", "footer", "aside"];

/// ARIA landmark roles of page furniture.
const DROPPED_ROLES: &[&str] = &[
    "navigation",
    "banner",
    "contentinfo",
    "complementary",
    "search",
    "dialog",
    "alertdialog",
];

/// `class`/`id` words (prefixes) of boilerplate: cookie banners, sidebars, share widgets.
const BOILERPLATE_WORDS: &[&str] = &[
    "cookie",
    "consent",
    "gdpr",
    "breadcrumb",
    "sidebar",
    "newsletter",
    "popup",
    "modal",
    "advert",
    "sponsor",
    "share",
    "social",
];

/// Separated from their neighbours by a blank line.
const PARAGRAPH_BLOCKS: &[&str] = &[
    "p",
    "div",
    "section",
    "article",
    "main",
    "blockquote",
    "address",
    "details",
    "dl",
    "fieldset",
    "figure",
    "table",
    "hr",
    "header",
    "center",
    "body",
    "hgroup",
];

/// Start a new line.
const LINE_BLOCKS: &[&str] = &[
    "tr",
    "dt",
    "dd",
    "caption",
    "figcaption",
    "summary",
    "legend",
    "option",
    "thead",
    "tbody",
    "tfoot",
];

/// Written between the cells of a table row.
const CELL_SEPARATOR: &str = " | ";

/// Blocks checked for link density.
const DENSITY_BLOCKS: &[&str] = &["div", "section", "ul", "ol", "menu", "p", "table", "dl"];

/// Extracted text, title and offset map of an HTML page.
pub(crate) fn extract(source: &str) -> (String, Option<String>, OffsetMap) {
    let doc = Document::parse(source);
    let root = doc.content_root();
    let mut counts = vec![(0usize, 0usize); doc.elements.len()];
    doc.count_words(0, false, &mut counts);
    let root_words = counts[root].0;
    let read = |lenient| {
        let mut w = Writer {
            doc: &doc,
            counts: &counts,
            root_words,
            lenient,
            out: Out::default(),
        };
        w.walk(root, Ctx::default());
        w.out.finish()
    };
    // A page whose content is all furniture by our rules (a site map made of `<nav>`) is still
    // better read whole than not at all.
    let (text, map) = match read(false) {
        (text, _) if text.is_empty() => read(true),
        strict => strict,
    };
    let title = doc
        .first_named(0, "title")
        .map(|t| doc.plain_text(t))
        .filter(|t| !t.is_empty())
        .or_else(|| {
            doc.first_named(root, "h1")
                .or_else(|| doc.first_named(0, "h1"))
                .map(|h| doc.plain_text(h))
                .filter(|t| !t.is_empty())
        });
    (text, title, map)
}

// ---------------------------------------------------------------- tree

#[derive(Debug)]
enum Child {
    Element(usize),
    Text { start: usize, end: usize, raw: bool },
}

#[derive(Debug)]
struct Element {
    name: String,
    attrs: Vec<(String, String)>,
    children: Vec<Child>,
}

impl Element {
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn is_heading(&self) -> Option<usize> {
        match self.name.as_str() {
            "h1" => Some(1),
            "h2" => Some(2),
            "h3" => Some(3),
            "h4" => Some(4),
            "h5" => Some(5),
            "h6" => Some(6),
            _ => None,
        }
    }

    /// Never shown: an element that is never text, or one hidden by `hidden`,
    /// `aria-hidden="true"` or an inline `display: none` / `visibility: hidden`.
    fn never_visible(&self) -> bool {
        if NEVER_TEXT.contains(&self.name.as_str())
            || self.attr("hidden").is_some()
            || self
                .attr("aria-hidden")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"))
        {
            return true;
        }
        // Heading permalinks (Sphinx's `¶`, MkDocs' and rustdoc's anchors) are not text.
        if self.name == "a"
            && self.attr("href").is_some_and(|h| h.starts_with('#'))
            && self.attr("class").is_some_and(|c| {
                c.split_whitespace().any(|w| {
                    let w = w.to_ascii_lowercase();
                    w == "headerlink" || w == "permalink" || w == "anchor" || w == "anchor-link"
                })
            })
        {
            return true;
        }
        self.attr("style").is_some_and(|style| {
            let s: String = style
                .chars()
                .filter(|c| !c.is_whitespace())
                .collect::<String>()
                .to_ascii_lowercase();
            s.contains("display:none") || s.contains("visibility:hidden")
        })
    }

    /// Page furniture by its name or landmark role (`nav`, `footer`, `aside`, a `header` outside
    /// `main`/`article`, `role="navigation"`, …).
    fn furniture(&self, in_content: bool) -> bool {
        let name = self.name.as_str();
        if FURNITURE.contains(&name) || (name == "header" && !in_content) {
            return true;
        }
        self.attr("role").is_some_and(|r| {
            DROPPED_ROLES.contains(&r.trim().to_ascii_lowercase().as_str())
                && !(in_content && r.trim().eq_ignore_ascii_case("banner"))
        })
    }

    /// Dropped whatever its size: never visible, or (unless `lenient`) furniture.
    fn hard_dropped(&self, in_content: bool, lenient: bool) -> bool {
        self.never_visible() || (!lenient && self.furniture(in_content))
    }

    /// A `class` or `id` word names boilerplate (a cookie banner, a sidebar, …).
    fn boilerplate_attrs(&self) -> bool {
        ["class", "id"].iter().any(|a| {
            self.attr(a).is_some_and(|v| {
                v.split(|c: char| !c.is_ascii_alphanumeric())
                    .map(str::to_ascii_lowercase)
                    .any(|w| BOILERPLATE_WORDS.iter().any(|b| w.starts_with(b)))
            })
        })
    }
}

struct Document<'a> {
    source: &'a str,
    /// Element 0 is the document itself.
    elements: Vec<Element>,
}

impl<'a> Document<'a> {
    fn parse(source: &'a str) -> Self {
        let mut elements = vec![Element {
            name: "#document".into(),
            attrs: Vec::new(),
            children: Vec::new(),
        }];
        let mut stack = vec![0usize];
        for token in Tokenizer::new(source) {
            let top = *stack.last().expect("the document is never popped");
            match token {
                Token::Text { start, end, raw } => {
                    elements[top].children.push(Child::Text { start, end, raw })
                }
                Token::Start {
                    name,
                    attrs,
                    self_closing,
                } => {
                    close_implied(&mut stack, &elements, &name);
                    let parent = *stack.last().expect("the document is never popped");
                    let idx = elements.len();
                    let void = VOID.contains(&name.as_str()) || self_closing;
                    elements.push(Element {
                        name,
                        attrs,
                        children: Vec::new(),
                    });
                    elements[parent].children.push(Child::Element(idx));
                    if !void && stack.len() < MAX_DEPTH {
                        stack.push(idx);
                    }
                }
                // `</br>` is a line break in every browser.
                Token::End { name } if name == "br" => {
                    let idx = elements.len();
                    elements.push(Element {
                        name,
                        attrs: Vec::new(),
                        children: Vec::new(),
                    });
                    elements[top].children.push(Child::Element(idx));
                }
                Token::End { name } => {
                    if let Some(at) = stack.iter().rposition(|&e| elements[e].name == name) {
                        if at > 0 {
                            stack.truncate(at);
                        }
                    }
                }
            }
        }
        Document { source, elements }
    }

    /// Where the content is: the first `<main>` (or `role="main"`), else the only `<article>`,
    /// else `<body>`, else the whole document.
    fn content_root(&self) -> usize {
        let main = self.elements.iter().position(|e| {
            e.name == "main"
                || e.attr("role")
                    .is_some_and(|r| r.eq_ignore_ascii_case("main"))
        });
        if let Some(m) = main {
            return m;
        }
        let articles: Vec<usize> = (0..self.elements.len())
            .filter(|&i| self.elements[i].name == "article")
            .collect();
        if let [a] = articles[..] {
            return a;
        }
        self.elements
            .iter()
            .position(|e| e.name == "body")
            .unwrap_or(0)
    }

    /// The first element named `name` under `from`, outside SVG and MathML (an icon's
    /// `<title>` is not the page's).
    fn first_named(&self, from: usize, name: &str) -> Option<usize> {
        for c in &self.elements[from].children {
            if let Child::Element(e) = *c {
                if self.elements[e].name == name {
                    return Some(e);
                }
                if matches!(self.elements[e].name.as_str(), "svg" | "math") {
                    continue;
                }
                if let Some(found) = self.first_named(e, name) {
                    return Some(found);
                }
            }
        }
        None
    }

    /// The decoded text under `e`, whitespace collapsed and trimmed.
    fn plain_text(&self, e: usize) -> String {
        let mut s = String::new();
        self.collect_text(e, &mut s);
        s.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    fn collect_text(&self, e: usize, s: &mut String) {
        for c in &self.elements[e].children {
            match *c {
                Child::Element(c) => {
                    let el = &self.elements[c];
                    if el.never_visible() {
                        continue;
                    }
                    let inline = !PARAGRAPH_BLOCKS.contains(&el.name.as_str())
                        && !LINE_BLOCKS.contains(&el.name.as_str())
                        && !matches!(el.name.as_str(), "br" | "li" | "td" | "th");
                    if !inline {
                        s.push(' ');
                    }
                    self.collect_text(c, s);
                }
                Child::Text { start, end, raw } if !raw => {
                    s.push_str(&entities::decode_to_string(&self.source[start..end]))
                }
                Child::Text { .. } => {}
            }
        }
    }

    /// Words and link words under every element, leaving out hard-dropped subtrees.
    fn count_words(&self, e: usize, in_content: bool, counts: &mut [(usize, usize)]) {
        let el = &self.elements[e];
        let in_content = in_content || matches!(el.name.as_str(), "main" | "article");
        let (mut words, mut links) = (0, 0);
        for c in &el.children {
            match *c {
                Child::Element(c) => {
                    if self.elements[c].hard_dropped(in_content, false) {
                        continue;
                    }
                    self.count_words(c, in_content, counts);
                    words += counts[c].0;
                    links += counts[c].1;
                }
                Child::Text { start, end, raw } if !raw => {
                    words += self.source[start..end].split_whitespace().count();
                }
                Child::Text { .. } => {}
            }
        }
        if el.name == "a" {
            links = words;
        }
        counts[e] = (words, links);
    }
}

/// The stack position of the nearest open element named in `targets`, unless an element named
/// in `boundaries` comes first.
fn find_open(
    stack: &[usize],
    elements: &[Element],
    targets: &[&str],
    boundaries: &[&str],
) -> Option<usize> {
    for (i, &e) in stack.iter().enumerate().rev() {
        let n = elements[e].name.as_str();
        if targets.contains(&n) {
            return Some(i);
        }
        if boundaries.contains(&n) {
            return None;
        }
    }
    None
}

/// Closes the elements that a start tag `name` implicitly ends (`<p>` before a block, `<li>`
/// before the next item, table rows and cells, headings).
fn close_implied(stack: &mut Vec<usize>, elements: &[Element], name: &str) {
    const P_BOUNDARY: &[&str] = &[
        "td",
        "th",
        "table",
        "button",
        "body",
        "html",
        "li",
        "dd",
        "dt",
        "blockquote",
        "div",
        "section",
        "article",
        "main",
        "aside",
        "nav",
        "header",
        "footer",
    ];
    let closes_p = PARAGRAPH_BLOCKS.contains(&name)
        || matches!(
            name,
            "h1" | "h2"
                | "h3"
                | "h4"
                | "h5"
                | "h6"
                | "ul"
                | "ol"
                | "menu"
                | "pre"
                | "li"
                | "dd"
                | "dt"
                | "nav"
                | "aside"
                | "footer"
                | "form"
                | "tr"
                | "td"
                | "th"
        );
    if closes_p {
        if let Some(i) = find_open(stack, elements, &["p"], P_BOUNDARY) {
            stack.truncate(i);
        }
    }
    let closed = match name {
        "li" => find_open(
            stack,
            elements,
            &["li"],
            &["ul", "ol", "menu", "table", "body"],
        ),
        "dt" | "dd" => find_open(stack, elements, &["dt", "dd"], &["dl", "table", "body"]),
        "tr" => find_open(stack, elements, &["tr"], &["table", "body"]),
        "td" | "th" => find_open(stack, elements, &["td", "th"], &["tr", "table", "body"]),
        "option" => find_open(stack, elements, &["option"], &["select", "body"]),
        "h1" | "h2" | "h3" | "h4" | "h5" | "h6" => {
            let top = elements[*stack.last().expect("non-empty")].is_heading();
            top.map(|_| stack.len() - 1)
        }
        _ => None,
    };
    if let Some(i) = closed {
        stack.truncate(i.max(1));
    }
}

// ---------------------------------------------------------------- writer

/// Whitespace waiting to become one space.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum Space {
    #[default]
    None,
    /// Whitespace of the source at `start..start + len`.
    Source(usize, usize),
    /// A space extraction adds (a line break inside a heading).
    Inserted,
}

/// The text being built: breaks, spaces and prefixes wait until the next visible character, so
/// the output never ends in furniture and never holds runs of blank lines.
#[derive(Default)]
struct Out {
    text: String,
    map: OffsetMap,
    /// Newlines wanted before the next character (1 = new line, 2 = blank line).
    pending_break: usize,
    /// Whitespace seen since the last character.
    pending_space: Space,
    /// Inserted before the next character (`## `, `- `, ` | `).
    prefix: String,
    /// Where the heading lines we wrote start, in order.
    headings: Vec<usize>,
}

impl Out {
    fn request_break(&mut self, n: usize) {
        self.pending_break = self.pending_break.max(n);
        // A cell separator never starts a line (a cell that holds paragraphs).
        if self.prefix == CELL_SEPARATOR {
            self.prefix.clear();
        }
    }

    fn inserted(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// The text without trailing whitespace (a `<pre>` may end in newlines), and its map.
    /// The text without trailing whitespace (a `<pre>` may end in newlines), and its map. A line
    /// of page text that would read as a Markdown heading (`# install` in a shell snippet) is
    /// escaped as `\# install`, so only the page's real headings become sections.
    fn finish(mut self) -> (String, OffsetMap) {
        let len = self.text.trim_end().len();
        self.text.truncate(len);
        self.map.truncate(len);
        let mut escapes = Vec::new();
        let mut pos = 0;
        for line in self.text.split_inclusive('\n') {
            let lead = line.len() - line.trim_start().len();
            if crate::chunk::heading_title(line).is_some()
                && self.headings.binary_search(&(pos + lead)).is_err()
            {
                escapes.push(pos + lead);
            }
            pos += line.len();
        }
        if escapes.is_empty() {
            return (self.text, self.map);
        }
        let mut text = String::with_capacity(self.text.len() + escapes.len());
        let mut at = 0;
        for &e in &escapes {
            text.push_str(&self.text[at..e]);
            text.push('\\');
            at = e;
        }
        text.push_str(&self.text[at..]);
        self.map.insert_bytes(&escapes);
        (text, self.map)
    }

    fn emit(&mut self, c: char, src: usize, src_len: usize) {
        if !self.text.is_empty() {
            if self.pending_break > 0 {
                let have = self.text.bytes().rev().take_while(|&b| b == b'\n').count();
                for _ in have.min(2)..self.pending_break {
                    self.text.push('\n');
                }
            } else if self.pending_space != Space::None
                && !self.text.ends_with(char::is_whitespace)
                && !self.prefix.starts_with(' ')
            {
                let at = self.text.len();
                self.text.push(' ');
                if let Space::Source(s, l) = self.pending_space {
                    self.map.push(at, 1, s, l);
                }
            }
        }
        self.pending_break = 0;
        self.pending_space = Space::None;
        if !self.prefix.is_empty() {
            let p = std::mem::take(&mut self.prefix);
            if p.starts_with('#') {
                self.headings.push(self.text.len());
            }
            self.inserted(&p);
        }
        let at = self.text.len();
        self.text.push(c);
        self.map.push(at, c.len_utf8(), src, src_len);
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Ctx {
    pre: bool,
    heading: bool,
    list_depth: usize,
    in_content: bool,
}

struct Writer<'d, 's> {
    doc: &'d Document<'s>,
    counts: &'d [(usize, usize)],
    root_words: usize,
    /// Keep furniture and boilerplate too (the second try when the first read nothing).
    lenient: bool,
    out: Out,
}

impl Writer<'_, '_> {
    fn brk(&mut self, n: usize, ctx: Ctx) {
        if ctx.heading {
            // A heading stays on one line.
            if self.out.pending_space == Space::None {
                self.out.pending_space = Space::Inserted;
            }
        } else {
            self.out.request_break(n);
        }
    }

    fn text(&mut self, start: usize, end: usize, ctx: Ctx) {
        let raw = &self.doc.source[start..end];
        let out = &mut self.out;
        entities::decode(raw, start, |c, s, l| {
            if ctx.pre {
                // Preformatted text is copied as it is, newlines included.
                out.emit(c, s, l);
            } else if c.is_whitespace() || c == '\u{feff}' {
                if out.pending_space == Space::None {
                    out.pending_space = Space::Source(s, l);
                }
            } else {
                out.emit(c, s, l);
            }
        });
    }

    /// Soft rules, which can never remove most of the page: forms, boilerplate `class`/`id`
    /// words, and blocks that are mostly link text with few words.
    fn soft_dropped(&self, e: usize) -> bool {
        let el = &self.doc.elements[e];
        let (words, links) = self.counts[e];
        if self.lenient || (words * 2 >= self.root_words && words > 0) {
            return false;
        }
        // A `form` is a search box or a newsletter sign-up, unless (ASP.NET) it wraps the page.
        if el.name == "form" || el.boilerplate_attrs() {
            return true;
        }
        DENSITY_BLOCKS.contains(&el.name.as_str())
            && words > 0
            && words <= LINK_DENSE_MAX_WORDS
            && links * 10 >= words * 6
    }

    fn walk(&mut self, e: usize, ctx: Ctx) {
        let doc = self.doc;
        let el = &doc.elements[e];
        let ctx = Ctx {
            in_content: ctx.in_content || matches!(el.name.as_str(), "main" | "article"),
            ..ctx
        };
        let mut first_cell = true;
        for child in &el.children {
            let c = match *child {
                Child::Text { start, end, raw } => {
                    if !raw {
                        self.text(start, end, ctx);
                    }
                    continue;
                }
                Child::Element(c) => c,
            };
            let ce = &doc.elements[c];
            if ce.hard_dropped(ctx.in_content, self.lenient) || self.soft_dropped(c) {
                continue;
            }
            let name = ce.name.as_str();
            if let Some(level) = ce.is_heading() {
                self.brk(2, ctx);
                self.out.prefix = format!("{} ", "#".repeat(level));
                self.walk(
                    c,
                    Ctx {
                        heading: true,
                        ..ctx
                    },
                );
                self.out.prefix.clear();
                self.brk(2, ctx);
            } else if name == "li" {
                self.brk(1, ctx);
                if !ctx.heading {
                    self.out.prefix =
                        format!("{}- ", "  ".repeat(ctx.list_depth.saturating_sub(1)));
                }
                self.walk(c, ctx);
                self.out.prefix.clear();
                self.brk(1, ctx);
            } else if matches!(name, "ul" | "ol" | "menu") {
                let n = if ctx.list_depth > 0 { 1 } else { 2 };
                self.brk(n, ctx);
                self.walk(
                    c,
                    Ctx {
                        list_depth: ctx.list_depth + 1,
                        ..ctx
                    },
                );
                self.brk(n, ctx);
            } else if name == "pre" {
                self.brk(2, ctx);
                self.walk_pre(c, ctx);
                self.brk(2, ctx);
            } else if name == "br" {
                if ctx.pre {
                    self.out.request_break(1);
                } else if self.out.pending_break == 1 {
                    self.out.pending_break = 2;
                } else {
                    self.brk(1, ctx);
                }
            } else if matches!(name, "td" | "th") {
                if !first_cell && !ctx.heading && self.out.pending_break == 0 {
                    self.out.prefix = CELL_SEPARATOR.into();
                }
                first_cell = false;
                self.walk(c, ctx);
            } else if PARAGRAPH_BLOCKS.contains(&name) {
                self.brk(2, ctx);
                self.walk(c, ctx);
                self.brk(2, ctx);
            } else if LINE_BLOCKS.contains(&name) {
                self.brk(1, ctx);
                self.walk(c, ctx);
                self.brk(1, ctx);
            } else {
                self.walk(c, ctx);
            }
        }
    }

    fn walk_pre(&mut self, e: usize, ctx: Ctx) {
        // The standard drops one newline right after `<pre>`.
        let skip_first_newline = match self.doc.elements[e].children.first() {
            Some(&Child::Text { start, .. }) => {
                let s = &self.doc.source[start..];
                if s.starts_with("\r\n") {
                    2
                } else {
                    usize::from(s.starts_with('\n'))
                }
            }
            _ => 0,
        };
        let pre = Ctx { pre: true, ..ctx };
        let el = &self.doc.elements[e];
        for (i, child) in el.children.iter().enumerate() {
            match *child {
                Child::Text { start, end, raw } if !raw => {
                    let start = if i == 0 {
                        start + skip_first_newline
                    } else {
                        start
                    };
                    if start < end {
                        self.text(start, end, pre);
                    }
                }
                Child::Text { .. } => {}
                Child::Element(c) => {
                    let ce = &self.doc.elements[c];
                    if ce.hard_dropped(ctx.in_content, self.lenient) {
                        continue;
                    }
                    if ce.name == "br" {
                        self.out.request_break(1);
                    } else {
                        self.walk_pre(c, ctx);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_permalinks_are_dropped() {
        let (text, _, _) = extract(
            "<h2>Tuples<a class=\"headerlink\" href=\"#tuples\">\u{b6}</a></h2>\
             <p>See <a class=\"reference\" href=\"#lists\">lists</a>.</p>",
        );
        assert_eq!(text, "## Tuples\n\nSee lists.");
    }

    #[test]
    fn tokenizer_survives_truncated_markup() {
        for s in [
            "<",
            "<a",
            "<a href=\"x",
            "<a href='",
            "</",
            "</a",
            "<!--",
            "<!",
            "<?x",
            "<script>",
            "<p =x>",
            "a < b",
            "<é>",
            "</é>",
            "<a\u{0}b>",
        ] {
            let _ = Tokenizer::new(s).count();
            let _ = extract(s);
        }
    }

    #[test]
    fn implied_end_tags_and_void_elements() {
        let (text, _, _) = extract(
            "<ul><li>one<li>two</ul><p>a<p>b<img src=x>c<table><tr><td>x<td>y<tr><td>z</table>",
        );
        assert_eq!(text, "- one\n- two\n\na\n\nbc\n\nx | y\nz");
        // Cells that hold paragraphs (layout tables) keep them as paragraphs.
        let (text, _, _) = extract("<table><tr><td>left<td><p>right</p></table>");
        assert_eq!(text, "left\n\nright");
    }

    #[test]
    fn deep_nesting_is_flattened_not_a_stack_overflow() {
        let s = "<div>".repeat(100_000) + "deep" + &"</div>".repeat(100_000);
        assert_eq!(extract(&s).0, "deep");
    }
}
