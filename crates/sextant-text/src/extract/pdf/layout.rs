//! Positioned glyphs → lines and words of text, one string per page.
//!
//! pdf-extract interprets the content streams and calls [`OutputDev`] once per glyph with its
//! text rendering matrix. Only where a show-text string *starts* is compared with the previous
//! glyph (inside a string the font's widths placed the glyphs, and letter-spacing must not split
//! words): a new baseline is a new line, a gap along the baseline is a word break. Distances
//! are measured along and across the previous glyph's baseline, so rotated text reads too.
//!
//! Which line breaks are paragraph breaks (a blank line) is decided when the page ends: a jump
//! of more than [`NEW_PARAGRAPH`] font sizes that is also more than [`OVER_LINE_SPACING`] times
//! the page's usual line spacing, so a double-spaced page is not a paragraph per line.

use pdf_extract::{MediaBox, OutputDev, OutputError, Transform};

use super::WORD_GAP;

/// A baseline jump of more than this many font sizes starts a new line.
const NEW_LINE: f64 = 0.5;
/// A baseline jump of more than this many font sizes leaves a blank line (headings,
/// paragraph gaps, columns)...
const NEW_PARAGRAPH: f64 = 1.5;
/// ... when it is also more than this many times the page's usual line spacing (the most common
/// jump of at most [`MAX_LINE_SPACING`] font sizes, when the page has [`MIN_LINES`] of them).
const OVER_LINE_SPACING: f64 = 1.3;
/// Jumps larger than this many font sizes are not line spacing (columns, figures).
const MAX_LINE_SPACING: f64 = 3.0;
/// Line breaks a page needs before its usual line spacing is trusted.
const MIN_LINES: usize = 3;
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

/// What goes between the previous glyph and the start of a string.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Separator {
    Nothing,
    Space,
    /// A new line, the baseline having moved by `jump` (device units) at font size `em`.
    Line {
        jump: f64,
        em: f64,
    },
}

/// A line break of the page being read, where it is in the page's text.
#[derive(Debug, Clone, Copy)]
struct LineBreak {
    at: usize,
    jump: f64,
    em: f64,
}

/// Collects the text of each page (index `page number − 1`).
#[derive(Debug, Default)]
pub(super) struct PageTexts {
    /// The raw text of each page laid out so far.
    pub pages: Vec<String>,
    current: usize,
    last: Option<Glyph>,
    string_start: bool,
    breaks: Vec<LineBreak>,
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
        self.breaks.clear();
        Ok(())
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        let breaks = std::mem::take(&mut self.breaks);
        let page = self.page();
        for at in paragraph_breaks(&breaks).into_iter().rev() {
            page.insert(at, '\n');
        }
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
            _ => Separator::Nothing,
        };
        let page = self.page();
        match separator {
            Separator::Nothing => {}
            Separator::Space => page.push(' '),
            Separator::Line { jump, em } => {
                let at = page.len();
                page.push('\n');
                self.breaks.push(LineBreak { at, jump, em });
            }
        }
        let page = self.page();
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

/// The line breaks (positions in the page's text) that are paragraph breaks.
fn paragraph_breaks(breaks: &[LineBreak]) -> Vec<usize> {
    // The usual line spacing: the most common jump (to a tenth of a font size), the smaller on
    // a tie.
    let mut counts: Vec<(i64, usize)> = Vec::new();
    for b in breaks.iter().filter(|b| b.jump <= MAX_LINE_SPACING * b.em) {
        let key = (b.jump / b.em * 10.0).round() as i64;
        match counts.iter_mut().find(|(k, _)| *k == key) {
            Some((_, n)) => *n += 1,
            None => counts.push((key, 1)),
        }
    }
    let lines: usize = counts.iter().map(|&(_, n)| n).sum();
    let usual = counts
        .iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .filter(|_| lines >= MIN_LINES)
        .map_or(0.0, |&(key, _)| key as f64 / 10.0);
    breaks
        .iter()
        .filter(|b| b.jump > NEW_PARAGRAPH * b.em && b.jump > OVER_LINE_SPACING * usual * b.em)
        .map(|b| b.at)
        .collect()
}

/// What goes between the previous glyph and a string starting with `next`.
fn separator(last: &Glyph, next: &Glyph) -> Separator {
    let em = last.size.max(next.size);
    let (ux, uy) = last.direction;
    // Offset of the new origin across the previous baseline (its normal).
    let (rx, ry) = (next.origin.0 - last.origin.0, next.origin.1 - last.origin.1);
    let jump = (ux * ry - uy * rx).abs();
    if jump > NEW_LINE * em {
        return Separator::Line { jump, em };
    }
    // Gap along the baseline from the previous glyph's end.
    let (gx, gy) = (next.origin.0 - last.end.0, next.origin.1 - last.end.1);
    let along = ux * gx + uy * gy;
    let small = last.size.min(next.size);
    let back_on_another_baseline = jump > NEW_LINE * small && along < -NEW_LINE * small;
    if along > WORD_GAP * em || along < -BACKWARDS * em || back_on_another_baseline {
        Separator::Space
    } else {
        Separator::Nothing
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
        use Separator::{Line, Nothing, Space};
        let a = glyph(100.0, 700.0, 6.0, 10.0);
        // Kerned closer, or just after: same word.
        assert_eq!(separator(&a, &glyph(105.5, 700.0, 6.0, 10.0)), Nothing);
        assert_eq!(separator(&a, &glyph(106.5, 700.0, 6.0, 10.0)), Nothing);
        // A word space (a quarter em) or a jump back to an earlier column.
        assert_eq!(separator(&a, &glyph(108.5, 700.0, 6.0, 10.0)), Space);
        assert_eq!(separator(&a, &glyph(50.0, 700.0, 6.0, 10.0)), Space);
        // A superscript (raised a third of an em, smaller) stays on the line.
        assert_eq!(separator(&a, &glyph(106.0, 703.5, 4.0, 7.0)), Nothing);
        // A big letter drawn back over its caption is another word.
        let caption = glyph(100.0, 700.0, 30.0, 8.0);
        assert_eq!(separator(&caption, &glyph(110.0, 712.0, 30.0, 48.0)), Space);
        // The next line, whatever the jump (paragraphs are decided per page).
        let line = |jump| Line { jump, em: 10.0 };
        assert_eq!(separator(&a, &glyph(72.0, 688.0, 6.0, 10.0)), line(12.0));
        assert_eq!(separator(&a, &glyph(72.0, 730.0, 6.0, 10.0)), line(30.0));
        // Text running upwards (rotated 90°): along and across follow its baseline.
        let up = Glyph {
            origin: (50.0, 100.0),
            end: (50.0, 106.0),
            direction: (0.0, 1.0),
            size: 10.0,
        };
        let mut next = up;
        next.origin = (50.0, 109.0);
        assert_eq!(separator(&up, &next), Space);
        next.origin = (38.0, 100.0);
        assert_eq!(separator(&up, &next), line(12.0));
    }

    #[test]
    fn paragraphs_are_jumps_beyond_the_usual_line_spacing() {
        let breaks = |jumps: &[f64]| -> Vec<LineBreak> {
            jumps
                .iter()
                .enumerate()
                .map(|(at, &jump)| LineBreak { at, jump, em: 10.0 })
                .collect()
        };
        // Single spacing: a gap of 1.5 lines and a heading's 3 are paragraphs.
        assert_eq!(
            paragraph_breaks(&breaks(&[12.0, 12.0, 18.5, 12.0, 30.0, 12.0])),
            [2, 4]
        );
        // Double spacing: only the jump well beyond two lines is one.
        assert_eq!(
            paragraph_breaks(&breaks(&[24.0, 24.0, 24.0, 36.0, 24.0, 18.0])),
            [3]
        );
        // Too few lines to know the spacing: any jump over 1.5 font sizes.
        assert_eq!(paragraph_breaks(&breaks(&[24.0, 12.0])), [0]);
        assert!(paragraph_breaks(&[]).is_empty());
    }
}
