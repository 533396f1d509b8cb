//! EPUB (2 and 3) → the chapters' text in reading order, the book's title and metadata.
//!
//! `META-INF/container.xml` names the package document (the OPF; without a container, the
//! archive's first `.opf` file is used). Its spine gives the reading order of manifest items;
//! each XHTML (or HTML) item is read through the [HTML extractor](super::html), and the
//! chapters' texts are joined by a blank line (items without text, such as a cover image
//! page, add nothing). Items of other types in the spine (SVG, images) are skipped; an item
//! the archive lacks is recorded in [`Extracted::unreadable_pages`] by its spine position
//! (from 1) and the rest is read. A book whose spine items are listed in
//! `META-INF/encryption.xml` is DRM-protected: [`ExtractError::Encrypted`] (obfuscated fonts,
//! which that file also lists, are not spine items).
//!
//! Offsets ([`SourceOffsets::Parts`](super::SourceOffsets::Parts)): the map's source offsets
//! count bytes of the spine's XHTML files laid end to end in reading order (each decoded as
//! UTF-8 without its byte-order mark); [`Extracted::parts`] names each file with its start, and
//! [`Extracted::part_at`] turns a source offset into (file, offset in that file), which is
//! what a citation into a book can honestly point at.
//!
//! Title: the package's first non-empty `dc:title`, else the first chapter's HTML title.
//! Payload: `author` (the `dc:creator`s, joined by `, `), `declared_language` (`dc:language`
//! as written, `en-GB`; not named `language`, the engine's field for the detected language),
//! `identifier`, `publisher`, `date` (as written: often a year).

use std::collections::{HashMap, HashSet};

use quick_xml::events::Event;
use serde_json::{Map, Value};

use super::mapped::MappedText;
use super::zipped::{attr, local, reader, reference, Archive};
use super::{html, ExtractError, Extracted, Format, Part};

/// The OCF container, which names the package document.
const CONTAINER: &str = "META-INF/container.xml";
/// Resources encrypted by DRM (or obfuscated fonts).
const ENCRYPTION: &str = "META-INF/encryption.xml";
/// Media types read as chapters.
const TEXT_TYPES: &[&str] = &["application/xhtml+xml", "text/html", "text/x-oeb1-document"];

/// Extracts an EPUB's text, title and metadata (see the [module docs](self)).
pub(super) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let mut zip = Archive::open(Format::Epub, bytes)?;
    let opf_path = match zip.read(CONTAINER)? {
        Some(c) => rootfile(&c).ok_or_else(|| ExtractError::MissingPart {
            format: Format::Epub,
            part: "package document (a rootfile in META-INF/container.xml)".into(),
        })?,
        None => zip
            .names()
            .into_iter()
            .find(|n| n.to_ascii_lowercase().ends_with(".opf"))
            .ok_or_else(|| ExtractError::MissingPart {
                format: Format::Epub,
                part: CONTAINER.into(),
            })?,
    };
    let opf = zip.require(&opf_path)?;
    let package = Package::parse(&opf).map_err(|(e, position)| ExtractError::Xml {
        format: Format::Epub,
        part: opf_path.clone(),
        position,
        source: Box::new(e),
    })?;
    let base = opf_path.rsplit_once('/').map_or("", |(dir, _)| dir);
    let spine: Vec<String> = package
        .spine
        .iter()
        .filter_map(|id| package.manifest.get(id))
        .filter(|(_, media)| TEXT_TYPES.contains(&media.as_str()))
        .map(|(href, _)| resolve(base, href))
        .collect();
    if spine.is_empty() {
        return Err(ExtractError::EpubEmptySpine);
    }
    if let Some(enc) = zip.read(ENCRYPTION)? {
        let locked = cipher_references(&enc);
        if spine.iter().any(|p| locked.contains(p)) {
            return Err(ExtractError::Encrypted {
                format: Format::Epub,
            });
        }
    }
    let mut out = MappedText::default();
    let mut parts = Vec::new();
    let mut missing = Vec::new();
    let mut has_text = Vec::new();
    let mut first_title = None;
    let mut source_start = 0;
    for (i, path) in spine.iter().enumerate() {
        let Some(xhtml) = zip.read(path)? else {
            missing.push(i + 1);
            continue;
        };
        let (text, title, map) = html::extract(&xhtml);
        first_title = first_title.or(title);
        if !text.is_empty() && !out.is_empty() {
            out.insert("\n\n");
        }
        let shift = out.text.len();
        for r in map.runs() {
            out.map.push(
                shift + r.text_start,
                r.text_len,
                source_start + r.source_start,
                r.source_len,
            );
        }
        out.text.push_str(&text);
        has_text.push(!text.is_empty());
        parts.push(Part {
            name: path.clone(),
            source_start,
            source_len: xhtml.len(),
            text_start: shift,
        });
        source_start += xhtml.len();
    }
    if parts.is_empty() {
        return Err(ExtractError::MissingPart {
            format: Format::Epub,
            part: spine[0].clone(),
        });
    }
    // A chapter without text starts where the next one with text does.
    let mut next = out.text.len();
    for (p, &has) in parts.iter_mut().zip(&has_text).rev() {
        if !has {
            p.text_start = next;
        }
        next = p.text_start;
    }
    let title = package.title.or(first_title);
    let mut ex = Extracted::unpaged(out.text, title, out.map);
    ex.payload = package.metadata;
    ex.parts = parts;
    ex.unreadable_pages = missing;
    Ok(ex)
}

/// The first rootfile's `full-path` in `container.xml`.
fn rootfile(container: &str) -> Option<String> {
    let mut r = reader(container);
    loop {
        match r.read_event() {
            Ok(Event::Start(e) | Event::Empty(e)) if local(e.name().as_ref()) == "rootfile" => {
                if let Some(p) = attr(&e, "full-path").filter(|p| !p.is_empty()) {
                    return Some(p.trim_start_matches('/').to_string());
                }
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// The archive paths that `encryption.xml` lists as encrypted.
fn cipher_references(xml: &str) -> HashSet<String> {
    let mut out = HashSet::new();
    let mut r = reader(xml);
    loop {
        match r.read_event() {
            Ok(Event::Start(e) | Event::Empty(e))
                if local(e.name().as_ref()) == "CipherReference" =>
            {
                if let Some(uri) = attr(&e, "URI") {
                    out.insert(resolve("", &uri));
                }
            }
            Ok(Event::Eof) | Err(_) => return out,
            Ok(_) => {}
        }
    }
}

/// What the package document says.
#[derive(Debug, Default)]
struct Package {
    title: Option<String>,
    metadata: Map<String, Value>,
    /// Manifest: id → (href, media type).
    manifest: HashMap<String, (String, String)>,
    /// Spine: manifest ids in reading order.
    spine: Vec<String>,
}

impl Package {
    fn parse(xml: &str) -> Result<Package, (quick_xml::Error, u64)> {
        let mut p = Package::default();
        let mut creators: Vec<String> = Vec::new();
        let mut field: Option<String> = None;
        let mut value = String::new();
        let mut in_metadata = false;
        let mut r = reader(xml);
        loop {
            let event = r.read_event().map_err(|e| (e, r.error_position()))?;
            match event {
                Event::Start(e) | Event::Empty(e) => {
                    let qname = e.name();
                    let name = local(qname.as_ref());
                    match name {
                        "metadata" => in_metadata = true,
                        "item" => {
                            if let (Some(id), Some(href)) = (attr(&e, "id"), attr(&e, "href")) {
                                let media = attr(&e, "media-type").unwrap_or_default();
                                p.manifest.insert(id, (href, media));
                            }
                        }
                        "itemref" => p.spine.extend(attr(&e, "idref")),
                        "title" | "creator" | "language" | "identifier" | "publisher" | "date"
                            if in_metadata =>
                        {
                            field = Some(name.to_string());
                            value.clear();
                        }
                        _ => {}
                    }
                }
                Event::Text(t) if field.is_some() => value.push_str(&t.xml10_content()),
                Event::CData(t) if field.is_some() => value.push_str(&t.xml10_content()),
                Event::GeneralRef(g) if field.is_some() => value.push_str(&reference(&g)),
                Event::End(e) => {
                    if local(e.name().as_ref()) == "metadata" {
                        in_metadata = false;
                    }
                    if let Some(f) = field.take() {
                        let v = value.split_whitespace().collect::<Vec<_>>().join(" ");
                        if v.is_empty() {
                            continue;
                        }
                        match f.as_str() {
                            "title" => {
                                p.title.get_or_insert(v);
                            }
                            "creator" => creators.push(v),
                            "language" => {
                                p.metadata
                                    .entry("declared_language")
                                    .or_insert(Value::String(v));
                            }
                            key => {
                                p.metadata
                                    .entry(key.to_string())
                                    .or_insert(Value::String(v));
                            }
                        }
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        if !creators.is_empty() {
            p.metadata
                .insert("author".into(), Value::String(creators.join(", ")));
        }
        Ok(p)
    }
}

/// The archive path of `href` (relative to the directory `base`, percent-encoded, maybe with a
/// `#fragment`): `..` and `.` segments resolved.
fn resolve(base: &str, href: &str) -> String {
    let href = href.split('#').next().unwrap_or("");
    let href = percent_decode(href);
    let mut segments: Vec<&str> = if href.starts_with('/') {
        Vec::new()
    } else {
        base.split('/').filter(|s| !s.is_empty()).collect()
    };
    for s in href.split('/') {
        match s {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    segments.join("/")
}

/// `%XX` escapes decoded (as UTF-8; a bad escape stays as written).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hrefs_resolve_against_the_package_directory() {
        assert_eq!(
            resolve("OEBPS", "text/ch1.xhtml#top"),
            "OEBPS/text/ch1.xhtml"
        );
        assert_eq!(
            resolve("OEBPS/text", "../Text/Chapter%201.xhtml"),
            "OEBPS/Text/Chapter 1.xhtml"
        );
        assert_eq!(resolve("", "./ch.html"), "ch.html");
        assert_eq!(resolve("a/b", "/root.xhtml"), "root.xhtml");
        assert_eq!(percent_decode("caf%C3%A9%2"), "café%2");
        assert_eq!(percent_decode("%"), "%");
    }

    #[test]
    fn package_metadata_manifest_and_spine() {
        let p = Package::parse(
            r#"<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" xmlns:dc="http://purl.org/dc/elements/1.1/">
            <metadata><dc:title> Moby-Dick;
               or, The Whale </dc:title><dc:creator>Herman Melville</dc:creator><dc:creator>Ed &amp; Co</dc:creator>
            <dc:language>en</dc:language><dc:title>Second</dc:title></metadata>
            <manifest><item id="c1" href="c1.xhtml" media-type="application/xhtml+xml"/></manifest>
            <spine><itemref idref="c1"/><itemref idref="gone"/></spine></package>"#,
        )
        .unwrap();
        assert_eq!(p.title.as_deref(), Some("Moby-Dick; or, The Whale"));
        assert_eq!(p.metadata["author"], "Herman Melville, Ed & Co");
        assert_eq!(p.metadata["declared_language"], "en");
        assert_eq!(p.spine, ["c1", "gone"]);
        assert_eq!(p.manifest["c1"].0, "c1.xhtml");
        assert!(Package::parse("<package><metadata></package>").is_err());
    }
}
