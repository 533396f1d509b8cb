//! Chunking: cutting a document into passages that fit a model's token limit, each with its
//! byte offsets in the source.
//!
//! Token counts come from the caller as token spans (byte ranges), so the embedding model's own
//! tokenizer decides what "fits"; [`whitespace_tokens`] is the stand-in when there is no model.
//! Strategies:
//! - [`Strategy::Fixed`]: windows of `max_tokens` tokens, each starting `max_tokens − overlap`
//!   tokens after the previous one;
//! - [`Strategy::Sentences`]: whole sentences (Unicode sentence boundaries) packed greedily up
//!   to `max_tokens`; a sentence longer than that is cut like `Fixed` (without overlap);
//! - [`Strategy::Paragraphs`]: Markdown-aware: blank lines separate paragraphs, `#` headings
//!   start a new section (recorded in every chunk under it); paragraphs of one section are packed
//!   up to `max_tokens`, and a long paragraph falls back to sentences.
//!
//! Every chunk's `start..end` slices the source to exactly its text (trimmed of surrounding
//! whitespace), and no chunk holds more than `max_tokens` tokens.

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

/// Default overlap of fixed-size chunks, as a fraction of the chunk size.
pub const DEFAULT_OVERLAP_FRACTION: f32 = 0.15;

/// A passage of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Byte offset of the first byte in the source.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
    /// The heading the chunk sits under (Markdown paragraphs strategy).
    pub section: Option<String>,
}

/// How to chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Fixed windows of tokens with overlap.
    Fixed {
        /// Tokens per chunk.
        max_tokens: usize,
        /// Tokens shared by consecutive chunks (< `max_tokens`).
        overlap: usize,
    },
    /// Sentences packed up to a token budget.
    Sentences {
        /// Tokens per chunk at most.
        max_tokens: usize,
    },
    /// Markdown paragraphs and headings, packed per section.
    Paragraphs {
        /// Tokens per chunk at most.
        max_tokens: usize,
    },
}

/// Token spans of words separated by whitespace (a model-free stand-in for a tokenizer).
pub fn whitespace_tokens(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                out.push(s..i);
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push(s..text.len());
    }
    out
}

/// Cuts `text` into chunks. `tokens` gives the token spans of any piece of text (offsets relative
/// to that piece).
pub fn chunk(
    text: &str,
    strategy: Strategy,
    tokens: &dyn Fn(&str) -> Vec<Range<usize>>,
) -> Vec<Chunk> {
    let mut out = Vec::new();
    match strategy {
        Strategy::Fixed {
            max_tokens,
            overlap,
        } => fixed(text, 0, max_tokens.max(1), overlap, None, tokens, &mut out),
        Strategy::Sentences { max_tokens } => {
            sentences(text, 0, max_tokens.max(1), None, tokens, &mut out)
        }
        Strategy::Paragraphs { max_tokens } => {
            paragraphs(text, max_tokens.max(1), tokens, &mut out)
        }
    }
    out
}

fn push_trimmed(
    text: &str,
    base: usize,
    r: Range<usize>,
    section: Option<&str>,
    out: &mut Vec<Chunk>,
) {
    let piece = &text[r.clone()];
    let lead = piece.len() - piece.trim_start().len();
    let trail = piece.len() - piece.trim_end().len();
    if lead + trail >= piece.len() {
        return;
    }
    out.push(Chunk {
        start: base + r.start + lead,
        end: base + r.end - trail,
        section: section.map(str::to_string),
    });
}

fn fixed(
    text: &str,
    base: usize,
    max: usize,
    overlap: usize,
    section: Option<&str>,
    tokens: &dyn Fn(&str) -> Vec<Range<usize>>,
    out: &mut Vec<Chunk>,
) {
    let spans = tokens(text);
    let step = max.saturating_sub(overlap).max(1);
    let mut i = 0;
    while i < spans.len() {
        let j = (i + max).min(spans.len());
        push_trimmed(text, base, spans[i].start..spans[j - 1].end, section, out);
        if j == spans.len() {
            break;
        }
        i += step;
    }
}

fn sentences(
    text: &str,
    base: usize,
    max: usize,
    section: Option<&str>,
    tokens: &dyn Fn(&str) -> Vec<Range<usize>>,
    out: &mut Vec<Chunk>,
) {
    let mut current: Option<(usize, usize, usize)> = None; // start, end, tokens
    for (at, s) in text.split_sentence_bound_indices() {
        let n = tokens(s).len();
        if n == 0 {
            continue;
        }
        if n > max {
            if let Some((a, b, _)) = current.take() {
                push_trimmed(text, base, a..b, section, out);
            }
            fixed(s, base + at, max, 0, section, tokens, out);
            continue;
        }
        current = match current {
            Some((a, _, t)) if t + n <= max => Some((a, at + s.len(), t + n)),
            Some((a, b, _)) => {
                push_trimmed(text, base, a..b, section, out);
                Some((at, at + s.len(), n))
            }
            None => Some((at, at + s.len(), n)),
        };
    }
    if let Some((a, b, _)) = current {
        push_trimmed(text, base, a..b, section, out);
    }
}

fn paragraphs(
    text: &str,
    max: usize,
    tokens: &dyn Fn(&str) -> Vec<Range<usize>>,
    out: &mut Vec<Chunk>,
) {
    // Blocks: runs of non-blank lines; a heading line is a block of its own.
    let mut blocks: Vec<(Range<usize>, Option<String>)> = Vec::new();
    let mut section: Option<String> = None;
    let mut block_start: Option<usize> = None;
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        let heading = trimmed.starts_with('#') && trimmed.trim_start_matches('#').starts_with(' ');
        if trimmed.is_empty() || heading {
            if let Some(s) = block_start.take() {
                blocks.push((s..pos, section.clone()));
            }
        }
        if heading {
            section = Some(trimmed.trim_start_matches('#').trim().to_string());
            blocks.push((pos..pos + line.len(), section.clone()));
        } else if !trimmed.is_empty() && block_start.is_none() {
            block_start = Some(pos);
        }
        pos += line.len();
    }
    if let Some(s) = block_start {
        blocks.push((s..pos, section.clone()));
    }
    let mut current: Option<(Range<usize>, usize, Option<String>)> = None;
    for (r, sec) in blocks {
        let n = tokens(&text[r.clone()]).len();
        let same_section = current.as_ref().is_some_and(|c| c.2 == sec);
        match current.take() {
            Some((cr, t, cs)) if same_section && t + n <= max => {
                current = Some((cr.start..r.end, t + n, cs));
                continue;
            }
            Some((cr, _, cs)) => push_trimmed(text, 0, cr, cs.as_deref(), out),
            None => {}
        }
        if n > max {
            sentences(&text[r.clone()], r.start, max, sec.as_deref(), tokens, out);
        } else {
            current = Some((r, n, sec));
        }
    }
    if let Some((cr, _, cs)) = current {
        push_trimmed(text, 0, cr, cs.as_deref(), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, chunks: &[Chunk], max: usize) {
        for c in chunks {
            let piece = &text[c.start..c.end];
            assert_eq!(piece, piece.trim(), "trimmed");
            assert!(!piece.is_empty());
            assert!(
                whitespace_tokens(piece).len() <= max,
                "{piece:?} has too many tokens"
            );
        }
    }

    #[test]
    fn fixed_windows_overlap() {
        let text = "one two three four five six seven eight nine ten";
        let c = chunk(
            text,
            Strategy::Fixed {
                max_tokens: 4,
                overlap: 1,
            },
            &whitespace_tokens,
        );
        let pieces: Vec<&str> = c.iter().map(|c| &text[c.start..c.end]).collect();
        assert_eq!(
            pieces,
            [
                "one two three four",
                "four five six seven",
                "seven eight nine ten"
            ]
        );
        check(text, &c, 4);
        assert!(chunk(
            "  ",
            Strategy::Fixed {
                max_tokens: 4,
                overlap: 1
            },
            &whitespace_tokens
        )
        .is_empty());
    }

    #[test]
    fn sentences_pack_and_long_ones_split() {
        let text =
            "Short one. Another short one. This sentence is definitely much too long to fit. End.";
        let c = chunk(
            text,
            Strategy::Sentences { max_tokens: 5 },
            &whitespace_tokens,
        );
        let pieces: Vec<&str> = c.iter().map(|c| &text[c.start..c.end]).collect();
        assert_eq!(pieces[0], "Short one. Another short one.");
        assert!(pieces.contains(&"End."));
        check(text, &c, 5);
    }

    #[test]
    fn markdown_sections_are_recorded() {
        let text =
            "# Intro\n\nFirst paragraph here.\n\nSecond one.\n\n## Usage\n\nRun it like this.\n";
        let c = chunk(
            text,
            Strategy::Paragraphs { max_tokens: 50 },
            &whitespace_tokens,
        );
        let got: Vec<(&str, Option<&str>)> = c
            .iter()
            .map(|c| (&text[c.start..c.end], c.section.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                (
                    "# Intro\n\nFirst paragraph here.\n\nSecond one.",
                    Some("Intro")
                ),
                ("## Usage\n\nRun it like this.", Some("Usage")),
            ]
        );
        let c = chunk(
            text,
            Strategy::Paragraphs { max_tokens: 2 },
            &whitespace_tokens,
        );
        check(text, &c, 2);
    }

    /// Every strategy, on generated Markdown-ish texts: offsets slice the source, no chunk is
    /// over budget, and every token of the text lands in some chunk.
    #[test]
    fn invariants_on_generated_texts() {
        let words = [
            "alpha",
            "beta",
            "gamma.",
            "delta",
            "é",
            "東京",
            "x",
            "longerword!",
        ];
        let mut seed = 7u64;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize
        };
        for _ in 0..200 {
            let mut text = String::new();
            for _ in 0..next() % 120 {
                match next() % 12 {
                    0 => text.push_str("\n\n"),
                    1 => text.push_str("\n## Head\n"),
                    _ => {
                        text.push_str(words[next() % words.len()]);
                        text.push(' ');
                    }
                }
            }
            for strategy in [
                Strategy::Fixed {
                    max_tokens: 7,
                    overlap: 2,
                },
                Strategy::Sentences { max_tokens: 5 },
                Strategy::Paragraphs { max_tokens: 6 },
            ] {
                let max = match strategy {
                    Strategy::Fixed { max_tokens, .. }
                    | Strategy::Sentences { max_tokens }
                    | Strategy::Paragraphs { max_tokens } => max_tokens,
                };
                let chunks = chunk(&text, strategy, &whitespace_tokens);
                check(&text, &chunks, max);
                for t in whitespace_tokens(&text) {
                    assert!(
                        chunks.iter().any(|c| c.start <= t.start && t.end <= c.end),
                        "{strategy:?}: token {:?} of {text:?} is in no chunk",
                        &text[t]
                    );
                }
            }
        }
    }
}
