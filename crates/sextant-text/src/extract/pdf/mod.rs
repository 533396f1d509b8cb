//! PDF → the text of its pages, its title and where each page starts.
//!
//! The parsing, fonts and encodings are [pdf-extract](https://crates.io/crates/pdf-extract) on
//! lopdf (pure Rust; the `pdf` feature). What this module adds around it:
//!
//! - **Layout** (`layout.rs`): our own receiver of positioned glyphs. A show-text string that
//!   starts on another baseline starts a new line (a blank line when the jump is over 1.5 font
//!   sizes and well over the page's usual line spacing: after headings, between paragraphs);
//!   one that starts more than [`WORD_GAP`] font sizes after the previous glyph's end is a new
//!   word. Glyphs inside one string follow each other (the font's widths placed them).
//! - **Clean-up** (`clean.rs`): ligatures (`ﬁ` → `fi`), TeX's spacing accents composed with
//!   their letter (`´a` → `á`), NUL and control characters dropped, odd spaces made plain,
//!   runs of spaces and of blank lines collapsed, and words hyphenated at a line end joined
//!   only where that is safe: when the joined word occurs elsewhere in the document
//!   (`hyphen-`/`ation` → `hyphenation`); otherwise only the line break goes (`well-`/`known`
//!   → `well-known`), so a compound keeps its hyphen.
//! - **Containment** (`guard.rs`): the parser asserts and unwraps on input it does not expect,
//!   so every call into it runs under `catch_unwind` with the panic message kept for the error
//!   (a process-wide panic hook, installed once and chained to the previous one, keeps those
//!   messages off stderr while a PDF is read; a binary built with `panic = "abort"` loses this
//!   protection). A panic loses one page, not the document: the document is read in one pass,
//!   then page by page if that pass fails. What `catch_unwind` cannot contain is checked before
//!   a page is read: form XObjects that draw themselves (unbounded recursion would overflow
//!   the stack and abort the process), too-deep nesting of forms and cyclic page-tree parents.
//!   Image data is dropped before reading (the parser would scan it as drawing operators), and
//!   the `'` and `"` text operators, which the parser ignores, are rewritten to `T*` + `Tj`.
//! - **Repair** (`repair.rs`): when the cross-reference data cannot be read (a truncated file,
//!   offsets shifted by an edit; lopdf 0.42 does not rebuild it), a new table is built by
//!   scanning the file for its objects, as poppler and mupdf do, and the file is loaded again;
//!   what survived is read.
//!
//! Output: page texts in page order joined by a blank line (`\n\n`), pages without text
//! contributing nothing; [`Extracted::pages`](super::Extracted::pages) holds each page's start.
//! The title is the Info dictionary's `/Title` (PDFDocEncoding, UTF-16BE or UTF-8 text strings)
//! when it is not blank. Offsets are into the extracted text; the
//! [`map`](super::Extracted::map) is the identity.
//!
//! Errors ([`ExtractError`]): a file that cannot be parsed even so (or has no pages), a
//! password-protected file (an empty user password is tried), no text on any page (scanned or
//! image-only), or the parser failing on every page. Speed: about 100 pages a second on one
//! core (release build), a third of poppler's `pdftotext`.

#[cfg(feature = "pdf")]
mod clean;
#[cfg(feature = "pdf")]
mod guard;
#[cfg(feature = "pdf")]
mod layout;
#[cfg(feature = "pdf")]
mod read;
#[cfg(feature = "pdf")]
mod repair;

use super::{ExtractError, Extracted};

/// The header every PDF starts with.
pub const HEADER: &str = "%PDF-";

/// A show-text string that starts more than this many font sizes after the end of the previous
/// glyph on its line starts a new word (a word space is about 0.25 em; kerning and tracking
/// are a few hundredths).
pub const WORD_GAP: f64 = 0.1;

/// Extracts a PDF's text, title and page starts.
#[cfg(feature = "pdf")]
pub(super) fn extract(bytes: &[u8]) -> Result<Extracted, ExtractError> {
    read::extract(bytes)
}

/// Without the `pdf` feature every PDF is an error.
#[cfg(not(feature = "pdf"))]
pub(super) fn extract(_bytes: &[u8]) -> Result<Extracted, ExtractError> {
    Err(ExtractError::PdfUnsupported)
}
