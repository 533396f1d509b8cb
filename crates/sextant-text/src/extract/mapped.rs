//! [`MappedText`]: extracted text built piece by piece, each piece copied from the source
//! (verbatim: offsets inside map one to one), standing for a stretch of it (decoded,
//! unescaped: the piece maps as a whole), or inserted (separators, `# ` before a heading).

use std::ops::Range;

use super::OffsetMap;

/// A text and the map of where its pieces came from. Pieces must come in source order.
#[derive(Debug, Default)]
pub(super) struct MappedText {
    pub text: String,
    pub map: OffsetMap,
}

impl MappedText {
    /// Text that came from nowhere (a separator, a prefix).
    pub fn insert(&mut self, s: &str) {
        self.text.push_str(s);
    }

    /// Text copied byte for byte from the source at `source_start`.
    pub fn copy(&mut self, s: &str, source_start: usize) {
        self.map
            .push(self.text.len(), s.len(), source_start, s.len());
        self.text.push_str(s);
    }

    /// Text that stands for the whole of `source` (decoded, unescaped, or a paragraph of a
    /// DOCX): every offset inside maps to its start, its end to the range's end. A piece as
    /// long as its range would read as verbatim, which is what it then is, or as good.
    pub fn stand_for(&mut self, s: &str, source: Range<usize>) {
        if source.is_empty() {
            // Nothing in the source to point at: the piece maps like inserted text.
            self.text.push_str(s);
            return;
        }
        self.map
            .push(self.text.len(), s.len(), source.start, source.len());
        self.text.push_str(s);
    }

    /// Whether no text was written yet.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }
}
