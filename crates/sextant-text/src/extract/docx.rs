//! DOCX (Office Open XML word-processing documents) → the body's text, a title and the core
//! properties.
//!
//! A DOCX file is a zip archive; the text is in the main document part (`word/document.xml`,
//! or wherever `_rels/.rels` points), heading and list styles in `word/styles.xml`, the title
//! and author in `docProps/core.xml`. Output, shaped for the Markdown chunker:
//!
//! - each paragraph with text is a block, blocks separated by a blank line; runs' `w:t` text,
//!   `w:tab` as a tab, `w:br`/`w:cr` as a line break;
//! - a paragraph whose style is a heading (the built-in `heading 1`–`heading 9` and `Title`,
//!   whose names styles.xml keeps in English whatever the user's language, a style with an
//!   outline level, or one based on such a style) becomes a `#`…`#########` line;
//! - a paragraph with numbering (its own `w:numPr` or its style's: `List Bullet`, `List
//!   Number`) becomes a `- ` line, consecutive items on consecutive lines;
//! - a table row becomes one line of its cells' text separated by tabs (a cell's paragraphs
//!   joined by spaces; nested tables flattened into their cell), rows on consecutive lines;
//! - deleted revisions (`w:del`), field codes, the VML fallback of drawings (`mc:Fallback`)
//!   and text boxes (`w:txbxContent`) are not text; headers, footers, footnotes and comments
//!   (other parts) are not read.
//!
//! Offsets ([`SourceOffsets::Paragraphs`](super::SourceOffsets::Paragraphs)): a byte offset
//! into a zipped file means nothing, so the map sends each paragraph's text to its index `i`
//! (source range `i..i + 1`): every `<w:p>` of the body in document order counts, empty ones
//! and those in table cells included (a table row maps to the paragraphs of its cells). A
//! chunk's mapped range is the paragraphs it came from.

use std::collections::HashMap;

use quick_xml::events::Event;
use serde_json::{Map, Value};

use super::mapped::MappedText;
use super::zipped::{attr, local, reader, reference, Archive};
use super::{ExtractError, Extracted, Format};

/// The main document part when `_rels/.rels` does not name one.
const DOCUMENT: &str = "word/document.xml";
/// Style definitions (heading levels, list styles).
const STYLES: &str = "word/styles.xml";
/// Title, author, dates.
const CORE: &str = "docProps/core.xml";
/// The package relationships, which name the main document part.
const PACKAGE_RELS: &str = "_rels/.rels";
/// Elements whose content is not text of the document.
const SKIPPED: &[&str] = &["Fallback", "txbxContent", "del", "moveFrom"];
/// Deepest heading level (Word has nine).
const MAX_HEADING: u8 = 9;

/// Extracts a DOCX file's text, title and core properties (see the [module docs](self)).
pub(super) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let mut zip = Archive::open(Format::Docx, bytes)?;
    let main = match zip.read(PACKAGE_RELS)? {
        Some(rels) => main_part(&rels).unwrap_or_else(|| DOCUMENT.to_string()),
        None => DOCUMENT.to_string(),
    };
    let document = zip.require(&main)?;
    // Styles and properties only dress the text up: a damaged one is read as far as it goes.
    let styles = zip
        .read(STYLES)?
        .map(|x| Styles::parse(&x))
        .unwrap_or_default();
    let mut payload = match zip.read(CORE)? {
        Some(x) => core_properties(&x),
        None => Map::new(),
    };
    let mut body = Body::new(&styles);
    let mut r = reader(&document);
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => body.open(&e, false),
            Ok(Event::Empty(e)) => body.open(&e, true),
            Ok(Event::End(e)) => body.close(local(e.name().as_ref())),
            Ok(Event::Text(t)) => body.text(&t.xml10_content()),
            Ok(Event::CData(t)) => body.text(&t.xml10_content()),
            Ok(Event::GeneralRef(g)) => body.text(&reference(&g)),
            Ok(Event::Eof) => break,
            Ok(_) => {}
            Err(e) => return Err(zip.xml_error(&main, &r, e)),
        }
    }
    let title = match payload.remove("title") {
        Some(Value::String(t)) => Some(t),
        _ => body.first_heading.take(),
    };
    let out = body.out;
    let mut ex = Extracted::unpaged(out.text, title, out.map);
    ex.payload = payload;
    Ok(ex)
}

/// The target of the package's `officeDocument` relationship.
fn main_part(rels: &str) -> Option<String> {
    let mut r = reader(rels);
    loop {
        match r.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if local(e.name().as_ref()) == "Relationship" => {
                let kind = attr(&e, "Type").unwrap_or_default();
                if kind.ends_with("/officeDocument") {
                    return attr(&e, "Target").map(|t| t.trim_start_matches('/').to_string());
                }
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// What a paragraph style contributes.
#[derive(Debug, Default, Clone)]
struct Style {
    heading: Option<u8>,
    list: bool,
    based_on: Option<String>,
}

/// Paragraph styles by id.
#[derive(Debug, Default)]
struct Styles(HashMap<String, Style>);

impl Styles {
    fn parse(xml: &str) -> Styles {
        let mut styles = HashMap::new();
        let mut current: Option<(String, Style)> = None;
        let mut r = reader(xml);
        loop {
            match r.read_event() {
                Ok(Event::Start(e) | Event::Empty(e)) => {
                    let name = e.name();
                    match (local(name.as_ref()), current.as_mut()) {
                        ("style", _) => {
                            current = attr(&e, "styleId").map(|id| (id, Style::default()));
                        }
                        ("name", Some((_, s))) => {
                            s.heading =
                                s.heading.or(attr(&e, "val").and_then(|n| heading_name(&n)));
                        }
                        ("outlineLvl", Some((_, s))) => {
                            s.heading = s.heading.or(attr(&e, "val").and_then(|v| outline(&v)));
                        }
                        ("numPr", Some((_, s))) => s.list = true,
                        ("basedOn", Some((_, s))) => s.based_on = attr(&e, "val"),
                        _ => {}
                    }
                }
                Ok(Event::End(e)) if local(e.name().as_ref()) == "style" => {
                    if let Some((id, s)) = current.take() {
                        styles.insert(id, s);
                    }
                }
                Ok(Event::Eof) | Err(_) => break,
                Ok(_) => {}
            }
        }
        Styles(styles)
    }

    /// The heading level and list flag of style `id`, following `basedOn` (a few steps: the
    /// chain can be cyclic in a damaged file). Without a definition, the built-in ids
    /// `Heading1`…`Heading9` and `Title` still count.
    fn resolve(&self, id: &str) -> (Option<u8>, bool) {
        let (mut heading, mut list) = (None, false);
        let mut at = Some(id.to_string());
        for _ in 0..8 {
            let Some(s) = at.as_deref().and_then(|i| self.0.get(i)) else {
                break;
            };
            heading = heading.or(s.heading);
            list |= s.list;
            at.clone_from(&s.based_on);
        }
        if !self.0.contains_key(id) {
            heading = id
                .strip_prefix("Heading")
                .and_then(|n| n.parse::<u8>().ok())
                .filter(|n| (1..=MAX_HEADING).contains(n))
                .or((id == "Title").then_some(1));
        }
        (heading, list)
    }
}

/// The level of a built-in heading style by its (English, case-insensitive) name.
fn heading_name(name: &str) -> Option<u8> {
    let n = name.trim().to_ascii_lowercase();
    if n == "title" {
        return Some(1);
    }
    n.strip_prefix("heading")?
        .trim()
        .parse::<u8>()
        .ok()
        .filter(|l| (1..=MAX_HEADING).contains(l))
}

/// A heading level from an outline level (0-based; 9 means body text).
fn outline(val: &str) -> Option<u8> {
    val.parse::<u8>()
        .ok()
        .filter(|&v| v < MAX_HEADING)
        .map(|v| v + 1)
}

/// The kind of the last block written, for the separator before the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Last {
    Nothing,
    Block,
    ListItem,
    Row,
}

/// The paragraph being read.
#[derive(Debug, Default)]
struct Paragraph {
    text: String,
    style: Option<String>,
    list: bool,
    outline: Option<u8>,
}

/// The table cell being read: its text and the paragraphs it came from.
#[derive(Debug, Default)]
struct Cell {
    text: String,
    paragraphs: Option<(usize, usize)>,
}

/// The walk over the main document part.
struct Body<'s> {
    styles: &'s Styles,
    out: MappedText,
    last: Last,
    /// Index of the next paragraph.
    index: usize,
    /// Depth inside an element whose content is skipped.
    skip: usize,
    paragraph: Option<Paragraph>,
    in_run: bool,
    in_text: bool,
    tables: usize,
    row: Vec<Cell>,
    cell: Option<Cell>,
    first_heading: Option<String>,
}

impl<'s> Body<'s> {
    fn new(styles: &'s Styles) -> Self {
        Body {
            styles,
            out: MappedText::default(),
            last: Last::Nothing,
            index: 0,
            skip: 0,
            paragraph: None,
            in_run: false,
            in_text: false,
            tables: 0,
            row: Vec::new(),
            cell: None,
            first_heading: None,
        }
    }

    fn open(&mut self, e: &quick_xml::events::BytesStart<'_>, empty: bool) {
        let qname = e.name();
        let name = local(qname.as_ref());
        if self.skip > 0 {
            self.skip += usize::from(!empty);
            return;
        }
        if SKIPPED.contains(&name) {
            self.skip = usize::from(!empty);
            return;
        }
        match name {
            "p" if self.paragraph.is_none() => {
                self.paragraph = Some(Paragraph::default());
                if empty {
                    self.close("p");
                }
            }
            "pStyle" => {
                if let Some(p) = &mut self.paragraph {
                    p.style = attr(e, "val");
                }
            }
            "numPr" => {
                if let Some(p) = &mut self.paragraph {
                    p.list = true;
                }
            }
            "outlineLvl" => {
                if let Some(p) = &mut self.paragraph {
                    p.outline = attr(e, "val").and_then(|v| outline(&v));
                }
            }
            "r" => self.in_run = !empty,
            "t" => self.in_text = !empty,
            "tab" if self.in_run => self.special('\t'),
            "br" | "cr" if self.in_run => self.special('\n'),
            "noBreakHyphen" if self.in_run => self.special('-'),
            "tbl" if !empty => {
                self.tables += 1;
                if self.tables == 1 && self.last == Last::Row {
                    self.last = Last::Block;
                }
            }
            "tr" if self.tables == 1 && !empty => self.row.clear(),
            "tc" if self.tables == 1 => {
                self.cell = Some(Cell::default());
                if empty {
                    self.close("tc");
                }
            }
            _ => {}
        }
    }

    fn close(&mut self, name: &str) {
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        match name {
            "r" => self.in_run = false,
            "t" => self.in_text = false,
            "p" => {
                if let Some(p) = self.paragraph.take() {
                    let index = self.index;
                    self.index += 1;
                    self.paragraph_done(p, index);
                }
            }
            "tc" if self.tables == 1 => {
                if let Some(c) = self.cell.take() {
                    self.row.push(c);
                }
            }
            "tr" if self.tables == 1 => self.row_done(),
            "tbl" => self.tables = self.tables.saturating_sub(1),
            _ => {}
        }
    }

    /// Character data: text only inside `w:t` (elsewhere it is field codes or the XML's
    /// indentation).
    fn text(&mut self, s: &str) {
        if let (Some(p), true, 0) = (&mut self.paragraph, self.in_text, self.skip) {
            p.text.push_str(s);
        }
    }

    /// A character an element stands for (`w:tab`, `w:br`).
    fn special(&mut self, c: char) {
        if let Some(p) = &mut self.paragraph {
            p.text.push(c);
        }
    }

    fn paragraph_done(&mut self, p: Paragraph, index: usize) {
        let text = p.text.trim();
        if text.is_empty() {
            return;
        }
        if self.tables > 0 {
            if let Some(c) = &mut self.cell {
                if !c.text.is_empty() {
                    c.text.push(' ');
                }
                c.text.extend(
                    text.chars()
                        .map(|ch| if ch == '\t' || ch == '\n' { ' ' } else { ch }),
                );
                let first = c.paragraphs.map_or(index, |(f, _)| f);
                c.paragraphs = Some((first, index));
            }
            return;
        }
        let (style_heading, style_list) = match &p.style {
            Some(id) => self.styles.resolve(id),
            None => (None, false),
        };
        let heading = p.outline.or(style_heading);
        let list = heading.is_none() && (p.list || style_list);
        let sep = match self.last {
            Last::Nothing => "",
            Last::ListItem if list => "\n",
            Last::Block | Last::ListItem | Last::Row => "\n\n",
        };
        self.out.insert(sep);
        if let Some(level) = heading {
            let flat = text.replace(['\n', '\t'], " ");
            if level == 1 && self.first_heading.is_none() {
                self.first_heading = Some(flat.clone());
            }
            self.out
                .insert(&format!("{} ", "#".repeat(usize::from(level))));
            self.out.stand_for(&flat, index..index + 1);
            self.last = Last::Block;
            return;
        }
        if list {
            self.out.insert("- ");
        } else if text.starts_with('#') {
            self.out.insert("\\");
        }
        self.out.stand_for(text, index..index + 1);
        self.last = if list { Last::ListItem } else { Last::Block };
    }

    fn row_done(&mut self) {
        let row = std::mem::take(&mut self.row);
        if row.iter().all(|c| c.text.is_empty()) {
            return;
        }
        self.out.insert(match self.last {
            Last::Nothing => "",
            Last::Row => "\n",
            Last::Block | Last::ListItem => "\n\n",
        });
        for (i, c) in row.iter().enumerate() {
            if i > 0 {
                self.out.insert("\t");
            }
            match c.paragraphs {
                Some((first, last)) => self.out.stand_for(&c.text, first..last + 1),
                None => self.out.insert(&c.text),
            }
        }
        self.last = Last::Row;
    }
}

/// The core properties (`docProps/core.xml`) worth a payload field: `title` (taken out again
/// as the title), `author`, `created`, `modified` (RFC 3339, UTC when parseable), `subject`,
/// `keywords`, `description`, `declared_language` (as written, `en-US`: a template's default as
/// often as the text's language, so not the engine's `language` field). A damaged part gives
/// what was read before the damage.
fn core_properties(xml: &str) -> Map<String, Value> {
    let mut out = Map::new();
    let mut field: Option<&'static str> = None;
    let mut value = String::new();
    let mut r = reader(xml);
    loop {
        match r.read_event() {
            Ok(Event::Start(e)) => {
                value.clear();
                field = match local(e.name().as_ref()) {
                    "title" => Some("title"),
                    "creator" => Some("author"),
                    "created" => Some("created"),
                    "modified" => Some("modified"),
                    "subject" => Some("subject"),
                    "keywords" => Some("keywords"),
                    "description" => Some("description"),
                    "language" => Some("declared_language"),
                    _ => None,
                };
            }
            Ok(Event::Text(t)) if field.is_some() => value.push_str(&t.xml10_content()),
            Ok(Event::GeneralRef(g)) if field.is_some() => value.push_str(&reference(&g)),
            Ok(Event::End(_)) => {
                if let Some(f) = field.take() {
                    let v = value.trim();
                    if !v.is_empty() {
                        let v = match f {
                            "created" | "modified" => normalise_date(v),
                            _ => v.to_string(),
                        };
                        out.insert(f.to_string(), Value::String(v));
                    }
                }
            }
            Ok(Event::Eof) | Err(_) => break,
            Ok(_) => {}
        }
    }
    out
}

/// An RFC 3339 (W3CDTF) date-time in UTC at whole seconds, or the value as written when it
/// does not parse.
pub(super) fn normalise_date(v: &str) -> String {
    sextant_core::parse_rfc3339(v)
        .map(|micros| sextant_core::format_rfc3339(micros.div_euclid(1_000_000)))
        .unwrap_or_else(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heading_levels_from_names_ids_and_outlines() {
        assert_eq!(heading_name("heading 3"), Some(3));
        assert_eq!(heading_name("Heading 10"), None);
        assert_eq!(heading_name("Title"), Some(1));
        assert_eq!(heading_name("Normal"), None);
        assert_eq!(outline("0"), Some(1));
        assert_eq!(outline("9"), None);
        let styles = Styles::parse(
            r#"<w:styles xmlns:w="x"><w:style w:styleId="berschrift2"><w:name w:val="heading 2"/></w:style>
               <w:style w:styleId="Mine"><w:basedOn w:val="berschrift2"/></w:style>
               <w:style w:styleId="Bullets"><w:pPr><w:numPr><w:numId w:val="1"/></w:numPr></w:pPr></w:style>
               <w:style w:styleId="Loop"><w:basedOn w:val="Loop"/></w:style></w:styles>"#,
        );
        assert_eq!(styles.resolve("berschrift2"), (Some(2), false));
        assert_eq!(styles.resolve("Mine"), (Some(2), false));
        assert_eq!(styles.resolve("Bullets"), (None, true));
        assert_eq!(styles.resolve("Loop"), (None, false));
        assert_eq!(styles.resolve("Heading4"), (Some(4), false));
        assert_eq!(
            normalise_date("2024-03-05T12:30:00+01:00"),
            "2024-03-05T11:30:00Z"
        );
        assert_eq!(normalise_date("yesterday"), "yesterday");
    }
}
