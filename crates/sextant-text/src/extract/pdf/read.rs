//! The PDF reading pipeline: load (and decrypt with the empty password), repair, check each
//! page, lay the glyphs out (one pass, else page by page), clean up, join the pages.

use pdf_extract::{Document, Object, ObjectId};

use super::clean::{clean_page, dehyphenate, vocabulary};
use super::guard::{check_page, prepare, quietly};
use super::layout::PageTexts;
use super::repair::rebuild_xref;
use crate::extract::{ExtractError, Extracted, OffsetMap};

/// What went wrong inside the parser (a panic's message), or with the document, as an error
/// source.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct Problem(String);

/// Extracts a PDF's text, title and page starts (see the [module docs](super)).
pub(super) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    let mut doc = load(bytes)?;
    if doc.is_encrypted() && !matches!(quietly(|| doc.decrypt("")), Ok(Ok(()))) {
        return Err(ExtractError::PdfEncrypted);
    }
    let title = info_title(&doc);
    let pages: Vec<(u32, ObjectId)> = quietly(|| {
        prepare(&mut doc);
        doc.get_pages().into_iter().collect()
    })
    .map_err(|panic| ExtractError::PdfUnreadable(Box::new(Problem(panic))))?;
    if pages.is_empty() {
        let problem = Problem("its page tree holds no pages".into());
        return Err(ExtractError::PdfUnreadable(Box::new(problem)));
    }
    let (texts, unreadable) = lay_out(&doc, &pages);
    let cleaned: Vec<String> = texts.iter().map(|t| clean_page(t)).collect();
    let words = vocabulary(&cleaned);
    let (text, starts) = join_pages(cleaned.iter().map(|p| dehyphenate(p, &words)));
    if text.is_empty() {
        return Err(match unreadable.first() {
            Some((_, reason)) if unreadable.len() == pages.len() => ExtractError::PdfParserFailed {
                pages: pages.len(),
                reason: reason.clone(),
            },
            _ => ExtractError::PdfNoText { pages: pages.len() },
        });
    }
    Ok(Extracted {
        map: OffsetMap::identity(text.len()),
        text,
        title,
        pages: Some(starts),
        unreadable_pages: unreadable.into_iter().map(|(page, _)| page).collect(),
        payload: serde_json::Map::new(),
        parts: Vec::new(),
    })
}

/// Loads a document; when its cross-reference data cannot be read, loads it again with a
/// table rebuilt from its objects (kept only if that finds pages), else fails with the first
/// error.
fn load(bytes: &[u8]) -> Result<Document, ExtractError> {
    let error = match quietly(|| Document::load_mem(bytes)) {
        Ok(Ok(doc)) => return Ok(doc),
        Ok(Err(e)) => ExtractError::PdfUnreadable(Box::new(e)),
        Err(panic) => ExtractError::PdfUnreadable(Box::new(Problem(panic))),
    };
    let repaired = rebuild_xref(bytes).and_then(|fixed| {
        quietly(|| {
            Document::load_mem(&fixed)
                .ok()
                .filter(|d| !d.get_pages().is_empty())
        })
        .ok()
        .flatten()
    });
    repaired.ok_or(error)
}

/// The raw text of every page (in page order) and the pages that could not be read, with why.
/// One pass over the document keeps fonts parsed once; when a page fails it (the parser
/// panicked or errored) or a page must not be read, the pages are read one by one instead.
fn lay_out(doc: &Document, pages: &[(u32, ObjectId)]) -> (Vec<String>, Vec<(usize, String)>) {
    let mut unreadable = Vec::new();
    for (i, &(_, id)) in pages.iter().enumerate() {
        if let Err(reason) = check_page(doc, id) {
            unreadable.push((i + 1, reason));
        }
    }
    if unreadable.is_empty() {
        let mut out = PageTexts::default();
        if let Ok(Ok(())) = quietly(|| pdf_extract::output_doc(doc, &mut out)) {
            return (page_order(out.pages, pages), unreadable);
        }
    }
    let mut texts = Vec::with_capacity(pages.len());
    for (i, &(number, _)) in pages.iter().enumerate() {
        if unreadable.iter().any(|&(p, _)| p == i + 1) {
            texts.push(String::new());
            continue;
        }
        let mut out = PageTexts::default();
        match quietly(|| pdf_extract::output_doc_page(doc, &mut out, number)) {
            Ok(Ok(())) => {
                texts.push(out.pages.pop().unwrap_or_default());
                continue;
            }
            Ok(Err(e)) => unreadable.push((i + 1, e.to_string())),
            Err(panic) => unreadable.push((i + 1, panic)),
        }
        texts.push(String::new());
    }
    unreadable.sort_by_key(|&(p, _)| p);
    (texts, unreadable)
}

/// The texts the layout collected by page number, in the order of `pages`.
fn page_order(mut by_number: Vec<String>, pages: &[(u32, ObjectId)]) -> Vec<String> {
    pages
        .iter()
        .map(|&(number, _)| {
            by_number
                .get_mut((number as usize).saturating_sub(1))
                .map(std::mem::take)
                .unwrap_or_default()
        })
        .collect()
}

/// Page texts joined by blank lines, and where each page starts (a page without text starts
/// where the next one does, or at the end).
fn join_pages(pages: impl Iterator<Item = String>) -> (String, Vec<usize>) {
    let mut text = String::new();
    let mut starts: Vec<Option<usize>> = Vec::new();
    for page in pages {
        if page.is_empty() {
            starts.push(None);
            continue;
        }
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        starts.push(Some(text.len()));
        text.push_str(&page);
    }
    let mut next = text.len();
    let mut filled: Vec<usize> = starts
        .into_iter()
        .rev()
        .map(|s| {
            next = s.unwrap_or(next);
            next
        })
        .collect();
    filled.reverse();
    (text, filled)
}

/// The Info dictionary's `/Title`, decoded and trimmed, when it is not blank.
fn info_title(doc: &Document) -> Option<String> {
    let info = doc.trailer.get(b"Info").ok()?;
    let (_, info) = doc.dereference(info).ok()?;
    let title = info.as_dict().ok()?.get(b"Title").ok()?;
    let (_, title) = doc.dereference(title).ok()?;
    let Object::String(bytes, _) = title else {
        return None;
    };
    let title = clean_page(&decode_text_string(bytes))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    (!title.is_empty()).then_some(title)
}

/// A PDF text string: UTF-16BE or UTF-8 after their byte-order marks (UTF-16LE too, which some
/// producers write), else PDFDocEncoding.
fn decode_text_string(bytes: &[u8]) -> String {
    let utf16 = |bytes: &[u8], from: fn([u8; 2]) -> u16| {
        let units = bytes.chunks_exact(2).map(|p| from([p[0], p[1]]));
        char::decode_utf16(units)
            .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
            .collect()
    };
    match bytes {
        [0xfe, 0xff, rest @ ..] => utf16(rest, u16::from_be_bytes),
        [0xff, 0xfe, rest @ ..] => utf16(rest, u16::from_le_bytes),
        [0xef, 0xbb, 0xbf, rest @ ..] => String::from_utf8_lossy(rest).into_owned(),
        _ => bytes.iter().map(|&b| pdf_doc_char(b)).collect(),
    }
}

/// A PDFDocEncoding byte (PDF 32000-1, annex D): Latin-1 but for a few accents below 0x20 and
/// typographic characters in 0x80–0xA0.
fn pdf_doc_char(b: u8) -> char {
    const LOW: [char; 8] = ['˘', 'ˇ', 'ˆ', '˙', '˝', '˛', '˚', '˜'];
    const HIGH: [char; 33] = [
        '•', '†', '‡', '…', '—', '–', 'ƒ', '⁄', '‹', '›', '−', '‰', '„', '“', '”', '‘', '’', '‚',
        '™', 'ﬁ', 'ﬂ', 'Ł', 'Œ', 'Š', 'Ÿ', 'Ž', 'ı', 'ł', 'œ', 'š', 'ž', '\u{fffd}', '€',
    ];
    match b {
        0x18..=0x1f => LOW[usize::from(b - 0x18)],
        0x80..=0xa0 => HIGH[usize::from(b - 0x80)],
        _ => char::from(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_join_with_blank_lines_and_empty_pages_start_at_the_next() {
        let pages = ["", "one", "", "", "two", ""].map(String::from);
        let (text, starts) = join_pages(pages.into_iter());
        assert_eq!(text, "one\n\ntwo");
        assert_eq!(starts, [0, 0, 5, 5, 5, 8]);
        assert_eq!(join_pages(std::iter::empty()), (String::new(), vec![]));
    }

    #[test]
    fn text_strings_in_every_encoding() {
        assert_eq!(
            decode_text_string(b"Plain \x93le \x84 \xe9t\xe9"),
            "Plain ﬁle — été"
        );
        assert_eq!(
            decode_text_string(b"\xfe\xff\x00F\x00i\x00e\x00l\x00d\x20\x14\xd8\x3d\xde\x00"),
            "Field—😀"
        );
        assert_eq!(decode_text_string(b"\xff\xfeO\x00k\x00"), "Ok");
        assert_eq!(decode_text_string("\u{feff}Ünïcode".as_bytes()), "Ünïcode");
        assert_eq!(decode_text_string(b"\xfe\xff\xd8\x00"), "\u{fffd}");
    }
}
