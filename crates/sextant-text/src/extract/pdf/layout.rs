//! Positioned glyphs → lines and words of text, one string per page.
//!
//! pdf-extract interprets the content streams and calls [`OutputDev`] once per glyph with its
//! text rendering matrix. Only where a show-text string *starts* is compared with the previous
//! glyph (inside a string the font's widths placed the glyphs, and letter-spacing must not split
//! words): a new baseline is a new line, a gap along the baseline is a word break. Distances
//! are measured along and across the previous glyph's baseline, so rotated text reads too.

use pdf_extract::{MediaBox, OutputDev, OutputError, Transform};

use super::WORD_GAP;

/// A baseline jump of more than this many font sizes starts a new line.
const NEW_LINE: f64 = 0.5;
/// A baseline jump of more than this many font sizes leaves a blank line (headings,
/// paragraph gaps, columns).
const NEW_PARAGRAPH: f64 = 1.5;
/// A string starting more than this many font sizes *before* the previous glyph's end on the
/// same baseline (a table cell to the left, overprinting) is a new word too; so is one starting
/// more than [`NEW_LINE`] of the smaller size before it on a baseline shifted by as much (a big
/// letter drawn over its caption; a superscript or footnote mark stays with its word).
const BACKWARDS: f64 = 1.0;

/// The previous glyph: where it starts and ends, its baseline direction and its size, in
/// device space.
#[derive(Debug, Clone, Copy)]
struct Glyph {
    origin: (f64, f64),
    end: (f64, f64),
    direction: (f64, f64),
    size: f64,
}

/// Collects the text of each page (index `page number − 1`).
#[derive(Debug, Default)]
pub(super) struct PageTexts {
    /// The raw text of each page laid out so far.
    pub pages: Vec<String>,
    current: usize,
    last: Option<Glyph>,
    string_start: bool,
}

impl PageTexts {
    /// Text of the page being read.
    fn page(&mut self) -> &mut String {
        if self.pages.len() <= self.current {
            self.pages.resize(self.current + 1, String::new());
        }
        &mut self.pages[self.current]
    }
}

impl OutputDev for PageTexts {
    fn begin_page(
        &mut self,
        page_num: u32,
        _media_box: &MediaBox,
        _art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        self.current = (page_num as usize).saturating_sub(1);
        self.page();
        self.last = None;
        Ok(())
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        _spacing: f64,
        font_size: f64,
        text: &str,
    ) -> Result<(), OutputError> {
        // The text rendering matrix maps text space (font size not applied) to device space: its
        // first row is the baseline direction, its translation the glyph origin.
        let (dx, dy) = (trm.m11, trm.m12);
        let scale = (trm.m11 * trm.m22 - trm.m12 * trm.m21).abs().sqrt();
        let size = (font_size * scale).abs();
        let norm = dx.hypot(dy);
        let direction = if norm > 0.0 {
            (dx / norm, dy / norm)
        } else {
            (1.0, 0.0)
        };
        let origin = (trm.m31, trm.m32);
        let advance = width * font_size;
        let glyph = Glyph {
            origin,
            end: (origin.0 + advance * dx, origin.1 + advance * dy),
            direction,
            size,
        };
        let separator = match (self.last, self.string_start) {
            (Some(last), true) => separator(&last, &glyph),
            _ => "",
        };
        let page = self.page();
        page.push_str(separator);
        page.push_str(text);
        self.last = Some(glyph);
        self.string_start = false;
        Ok(())
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        self.string_start = true;
        Ok(())
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        Ok(())
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        Ok(())
    }
}

/// What goes between the previous glyph and a string starting with `next`: a blank line, a
/// line break, a space or nothing.
fn separator(last: &Glyph, next: &Glyph) -> &'static str {
    let em = last.size.max(next.size);
    let (ux, uy) = last.direction;
    // Offset of the new origin across the previous baseline (its normal).
    let (rx, ry) = (next.origin.0 - last.origin.0, next.origin.1 - last.origin.1);
    let across = (ux * ry - uy * rx).abs();
    if across > NEW_PARAGRAPH * em {
        return "\n\n";
    }
    if across > NEW_LINE * em {
        return "\n";
    }
    // Gap along the baseline from the previous glyph's end.
    let (gx, gy) = (next.origin.0 - last.end.0, next.origin.1 - last.end.1);
    let along = ux * gx + uy * gy;
    let small = last.size.min(next.size);
    let back_on_another_baseline = across > NEW_LINE * small && along < -NEW_LINE * small;
    if along > WORD_GAP * em || along < -BACKWARDS * em || back_on_another_baseline {
        " "
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn glyph(x: f64, y: f64, width: f64, size: f64) -> Glyph {
        Glyph {
            origin: (x, y),
            end: (x + width, y),
            direction: (1.0, 0.0),
            size,
        }
    }

    #[test]
    fn separators_from_positions() {
        let a = glyph(100.0, 700.0, 6.0, 10.0);
        // Kerned closer, or just after: same word.
        assert_eq!(separator(&a, &glyph(105.5, 700.0, 6.0, 10.0)), "");
        assert_eq!(separator(&a, &glyph(106.5, 700.0, 6.0, 10.0)), "");
        // A word space (a quarter em) or a jump back to an earlier column.
        assert_eq!(separator(&a, &glyph(108.5, 700.0, 6.0, 10.0)), " ");
        assert_eq!(separator(&a, &glyph(50.0, 700.0, 6.0, 10.0)), " ");
        // A superscript (raised a third of an em, smaller) stays on the line.
        assert_eq!(separator(&a, &glyph(106.0, 703.5, 4.0, 7.0)), "");
        // A big letter drawn back over its caption is another word.
        let caption = glyph(100.0, 700.0, 30.0, 8.0);
        assert_eq!(separator(&caption, &glyph(110.0, 712.0, 30.0, 48.0)), " ");
        // The next line, and a gap of two lines.
        assert_eq!(separator(&a, &glyph(72.0, 688.0, 6.0, 10.0)), "\n");
        assert_eq!(separator(&a, &glyph(72.0, 670.0, 6.0, 10.0)), "\n\n");
        // Text running upwards (rotated 90°): along and across follow its baseline.
        let up = Glyph {
            origin: (50.0, 100.0),
            end: (50.0, 106.0),
            direction: (0.0, 1.0),
            size: 10.0,
        };
        let mut next = up;
        next.origin = (50.0, 109.0);
        assert_eq!(separator(&up, &next), " ");
        next.origin = (38.0, 100.0);
        assert_eq!(separator(&up, &next), "\n");
    }
}
