//! [`OffsetMap`]: from byte offsets in extracted text back to byte offsets in the source.

use std::ops::Range;

/// A stretch of extracted text that came from one stretch of the source.
///
/// When `text_len == source_len` the two are byte-for-byte equal (text copied verbatim) and
/// offsets inside map one to one; otherwise (a character reference such as `&amp;`, or a run
/// of collapsed whitespace) every offset inside maps to the run's start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run {
    /// Byte offset of the run in the extracted text.
    pub text_start: usize,
    /// Its length in the extracted text.
    pub text_len: usize,
    /// Byte offset of the run in the source.
    pub source_start: usize,
    /// Its length in the source.
    pub source_len: usize,
}

impl Run {
    fn text_end(&self) -> usize {
        self.text_start + self.text_len
    }

    fn source_end(&self) -> usize {
        self.source_start + self.source_len
    }

    fn verbatim(&self) -> bool {
        self.text_len == self.source_len
    }
}

/// Maps byte offsets in an extracted text to byte offsets in its source.
///
/// Text that extraction inserted (line breaks between blocks, `# ` before a heading, `- ` before
/// a list item) belongs to no run: a start offset there maps forward to the next run, an end
/// offset backward to the previous one, so a mapped range always covers exactly the source
/// stretch its copied text came from. Mapped offsets are char boundaries of the source whenever
/// the text offset is a char boundary of the text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OffsetMap {
    runs: Vec<Run>,
}

impl OffsetMap {
    /// The map of a text that *is* its source (`len` bytes).
    pub fn identity(len: usize) -> Self {
        let mut m = OffsetMap::default();
        m.push(0, len, 0, len);
        m
    }

    /// The runs, in text order (and source order).
    pub fn runs(&self) -> &[Run] {
        &self.runs
    }

    /// True when every text offset maps to itself (plain text and Markdown).
    pub fn is_identity(&self) -> bool {
        match self.runs.as_slice() {
            [] => true,
            [r] => r.text_start == 0 && r.source_start == 0 && r.verbatim(),
            _ => false,
        }
    }

    /// Records that text `text_start..+text_len` came from source `source_start..+source_len`.
    /// Runs must be pushed in increasing text and source order; a verbatim run that continues
    /// the previous verbatim run is merged into it.
    pub(crate) fn push(
        &mut self,
        text_start: usize,
        text_len: usize,
        source_start: usize,
        source_len: usize,
    ) {
        if text_len == 0 {
            return;
        }
        if let Some(last) = self.runs.last_mut() {
            debug_assert!(last.text_end() <= text_start && last.source_end() <= source_start);
            if last.verbatim()
                && text_len == source_len
                && last.text_end() == text_start
                && last.source_end() == source_start
            {
                last.text_len += text_len;
                last.source_len += source_len;
                return;
            }
        }
        self.runs.push(Run {
            text_start,
            text_len,
            source_start,
            source_len,
        });
    }

    /// Drops what maps text at or past `len` (after the text was truncated to `len` bytes).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.runs.retain(|r| r.text_start < len);
        if let Some(last) = self.runs.last_mut() {
            if last.text_end() > len && last.verbatim() {
                last.text_len = len - last.text_start;
                last.source_len = last.text_len;
            }
        }
    }

    /// Accounts for one inserted byte at each of the text offsets `points` (ascending, offsets
    /// in the text before insertion): runs after a point move right, a verbatim run around
    /// one is split.
    pub(crate) fn insert_bytes(&mut self, points: &[usize]) {
        let mut runs = Vec::with_capacity(self.runs.len() + points.len());
        for mut r in self.runs.drain(..) {
            let inside = points.partition_point(|&p| p <= r.text_start)
                ..points.partition_point(|&p| p < r.text_end());
            for &p in &points[inside] {
                if !r.verbatim() {
                    break;
                }
                let left = p - r.text_start;
                runs.push(Run {
                    text_len: left,
                    source_len: left,
                    ..r
                });
                r = Run {
                    text_start: p,
                    text_len: r.text_len - left,
                    source_start: r.source_start + left,
                    source_len: r.source_len - left,
                };
            }
            runs.push(r);
        }
        for r in &mut runs {
            r.text_start += points.partition_point(|&p| p <= r.text_start);
        }
        self.runs = runs;
    }

    /// The source offset of the text offset `t` read as the *start* of something: inside a run
    /// its source position, in inserted text the start of the next run, past the end the end of
    /// the last run.
    pub fn to_source(&self, t: usize) -> usize {
        let i = self.runs.partition_point(|r| r.text_end() <= t);
        match self.runs.get(i) {
            Some(r) if r.text_start <= t && r.verbatim() => r.source_start + (t - r.text_start),
            Some(r) => r.source_start,
            None => self.runs.last().map_or(0, Run::source_end),
        }
    }

    /// The source offset of the text offset `t` read as the *end* of something (exclusive):
    /// inside a run its source position, in inserted text the end of the previous run, before
    /// the first run the start of the first run.
    pub fn end_to_source(&self, t: usize) -> usize {
        let i = self.runs.partition_point(|r| r.text_start < t);
        let Some(r) = i.checked_sub(1).map(|i| &self.runs[i]) else {
            return self.runs.first().map_or(0, |r| r.source_start);
        };
        if t < r.text_end() && r.verbatim() {
            r.source_start + (t - r.text_start)
        } else {
            // At or past the run's end, or inside a reference: cover the whole run.
            r.source_end()
        }
    }

    /// The source range that text range `r` came from (empty, at the next run's start, when
    /// `r` holds only inserted text).
    pub fn range_to_source(&self, r: Range<usize>) -> Range<usize> {
        let start = self.to_source(r.start);
        if r.end <= r.start {
            return start..start;
        }
        let end = self.end_to_source(r.end);
        start..end.max(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_maps_every_offset_to_itself() {
        let m = OffsetMap::identity(10);
        assert!(m.is_identity());
        for t in 0..=10 {
            assert_eq!(m.to_source(t), t);
            assert_eq!(m.end_to_source(t), t);
        }
        assert_eq!(m.range_to_source(3..7), 3..7);
        assert!(OffsetMap::default().is_identity());
        assert_eq!(OffsetMap::default().range_to_source(0..4), 0..0);
    }

    #[test]
    fn runs_references_and_inserted_text() {
        // source: "<h1>Hi</h1><p>a &amp; b</p>"  text: "# Hi\n\na & b"
        let mut m = OffsetMap::default();
        m.push(2, 2, 4, 2); // "Hi"
        m.push(6, 2, 14, 2); // "a "
        m.push(8, 1, 16, 5); // "&" from "&amp;"
        m.push(9, 2, 21, 2); // " b"
        assert_eq!(m.runs().len(), 4);
        assert!(!m.is_identity());
        assert_eq!(m.to_source(0), 4, "inserted '# ' maps forward");
        assert_eq!(m.range_to_source(0..4), 4..6);
        assert_eq!(
            m.range_to_source(2..6),
            4..6,
            "trailing break maps backward"
        );
        assert_eq!(m.range_to_source(6..11), 14..23);
        assert_eq!(m.range_to_source(8..9), 16..21, "a reference maps whole");
        assert_eq!(m.range_to_source(4..6), 14..14, "only inserted text: empty");
        assert_eq!(m.to_source(100), 23);
        // One byte inserted at text offsets 1 and 5 of a single verbatim run.
        let mut m = OffsetMap::identity(8);
        m.insert_bytes(&[1, 5]);
        assert_eq!(m.to_source(0), 0);
        assert_eq!(
            m.range_to_source(1..2),
            1..1,
            "the inserted byte maps to nothing"
        );
        assert_eq!(m.to_source(2), 1);
        assert_eq!(m.to_source(7), 5);
        assert_eq!(m.range_to_source(2..10), 1..8);
        // Adjacent verbatim runs merge.
        let mut m = OffsetMap::default();
        m.push(0, 3, 5, 3);
        m.push(3, 2, 8, 2);
        assert_eq!(
            m.runs(),
            [Run {
                text_start: 0,
                text_len: 5,
                source_start: 5,
                source_len: 5
            }]
        );
    }
}
