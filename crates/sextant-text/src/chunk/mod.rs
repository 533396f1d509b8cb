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
//! Two more strategies have their own entry points, because they need more than a budget:
//! - [`semantic`]: sentences grouped while they stay on one topic, cut where the embedding
//!   distance between consecutive sentences peaks (the caller supplies the embedder);
//! - [`hierarchical`]: paragraph-sized parents, each cut into small overlapping children
//!   ([`Hierarchy`]).
//!
//! [`StrategyKind`] names all five for a command-line flag.
//!
//! Every chunk's `start..end` slices the source to exactly its text (trimmed of surrounding
//! whitespace), and no chunk holds more than `max_tokens` tokens (token counts of sentences and
//! paragraphs are added up, so this holds exactly for tokenizers whose count of a concatenation
//! is the sum of the parts' counts, and within a token or two per piece for subword ones).

mod code;
mod hierarchy;
mod semantic;

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use unicode_segmentation::UnicodeSegmentation;

pub use code::{code, CodeLanguage};
pub use hierarchy::{
    hierarchical, Hierarchy, HierarchyOptions, DEFAULT_CHILD_OVERLAP, DEFAULT_CHILD_TOKENS,
    DEFAULT_PARENT_TOKENS,
};
pub use semantic::{
    cosine_distance, semantic, Breakpoint, SemanticOptions, SentenceEmbedder,
    DEFAULT_BREAKPOINT_PERCENTILE,
};

/// Default overlap of fixed-size chunks, as a fraction of the chunk size.
pub const DEFAULT_OVERLAP_FRACTION: f32 = 0.15;

/// A passage of a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Byte offset of the first byte in the source.
    pub start: usize,
    /// Byte offset one past the last byte.
    pub end: usize,
    /// The Markdown heading the chunk sits under (paragraphs, semantic and hierarchical
    /// chunking; `None` for fixed windows and sentences).
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

/// The name of a chunking strategy, as a command-line flag or a configuration file gives it.
///
/// [`StrategyKind::Fixed`], [`Sentences`](StrategyKind::Sentences) and
/// [`Paragraphs`](StrategyKind::Paragraphs) run through [`chunk`] with the [`Strategy`] from
/// [`StrategyKind::strategy`]; [`Semantic`](StrategyKind::Semantic) runs through [`semantic`]
/// (it needs an embedder) and [`Hierarchical`](StrategyKind::Hierarchical) through
/// [`hierarchical`] (it returns parents and children).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    /// Fixed token windows with overlap.
    Fixed,
    /// Sentences packed up to the budget.
    Sentences,
    /// Markdown paragraphs and sections packed up to the budget.
    Paragraphs,
    /// Sentences grouped by topic (embedding distance) up to the budget.
    Semantic,
    /// Paragraph parents with fixed-window children.
    Hierarchical,
}

impl StrategyKind {
    /// Every strategy, in the order help texts list them.
    pub const ALL: &'static [StrategyKind] = &[
        StrategyKind::Fixed,
        StrategyKind::Sentences,
        StrategyKind::Paragraphs,
        StrategyKind::Semantic,
        StrategyKind::Hierarchical,
    ];

    /// The strategy's name: `fixed`, `sentences`, `paragraphs`, `semantic` or `hierarchical`.
    pub fn name(self) -> &'static str {
        match self {
            StrategyKind::Fixed => "fixed",
            StrategyKind::Sentences => "sentences",
            StrategyKind::Paragraphs => "paragraphs",
            StrategyKind::Semantic => "semantic",
            StrategyKind::Hierarchical => "hierarchical",
        }
    }

    /// True for the strategy that calls an embedding model while chunking.
    pub fn needs_embedder(self) -> bool {
        self == StrategyKind::Semantic
    }

    /// The [`Strategy`] for [`chunk`] with a budget of `max_tokens` (fixed windows overlap by
    /// [`DEFAULT_OVERLAP_FRACTION`]), or `None` for semantic and hierarchical chunking, which
    /// have their own functions.
    pub fn strategy(self, max_tokens: usize) -> Option<Strategy> {
        match self {
            StrategyKind::Fixed => Some(Strategy::Fixed {
                max_tokens,
                overlap: (max_tokens as f32 * DEFAULT_OVERLAP_FRACTION) as usize,
            }),
            StrategyKind::Sentences => Some(Strategy::Sentences { max_tokens }),
            StrategyKind::Paragraphs => Some(Strategy::Paragraphs { max_tokens }),
            StrategyKind::Semantic | StrategyKind::Hierarchical => None,
        }
    }
}

impl From<Strategy> for StrategyKind {
    fn from(s: Strategy) -> Self {
        match s {
            Strategy::Fixed { .. } => StrategyKind::Fixed,
            Strategy::Sentences { .. } => StrategyKind::Sentences,
            Strategy::Paragraphs { .. } => StrategyKind::Paragraphs,
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown chunking strategy name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown chunking strategy {0:?}: expected one of fixed, sentences, paragraphs, semantic, hierarchical"
)]
pub struct UnknownStrategy(pub String);

impl FromStr for StrategyKind {
    type Err = UnknownStrategy;

    /// A name from [`StrategyKind::name`], in any case; the singulars `sentence` and `paragraph`
    /// are accepted too.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let t = match t.as_str() {
            "sentence" => "sentences",
            "paragraph" => "paragraphs",
            other => other,
        };
        StrategyKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == t)
            .ok_or_else(|| UnknownStrategy(s.to_string()))
    }
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

/// The title of a Markdown ATX heading line (`## Usage` → `Usage`), or `None`.
pub(crate) fn heading_title(line: &str) -> Option<&str> {
    let trimmed = line.trim();
    let rest = trimmed.trim_start_matches('#');
    (trimmed.starts_with('#') && rest.starts_with(' ')).then(|| rest.trim())
}

/// Byte offsets of the heading lines of `text` with their titles, in order.
fn headings(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        if let Some(title) = heading_title(line) {
            out.push((pos, title));
        }
        pos += line.len();
    }
    out
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
        let heading = heading_title(line);
        if trimmed.is_empty() || heading.is_some() {
            if let Some(s) = block_start.take() {
                blocks.push((s..pos, section.clone()));
            }
        }
        if let Some(title) = heading {
            section = Some(title.to_string());
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

    #[test]
    fn strategy_kinds_by_name() {
        for &k in StrategyKind::ALL {
            assert_eq!(k.to_string().parse::<StrategyKind>(), Ok(k));
        }
        assert_eq!(
            " Sentence ".parse::<StrategyKind>(),
            Ok(StrategyKind::Sentences)
        );
        assert_eq!(
            "PARAGRAPH".parse::<StrategyKind>(),
            Ok(StrategyKind::Paragraphs)
        );
        let err = "smart".parse::<StrategyKind>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown chunking strategy \"smart\": expected one of fixed, sentences, paragraphs, semantic, hierarchical"
        );
        assert_eq!(
            StrategyKind::Fixed.strategy(100),
            Some(Strategy::Fixed {
                max_tokens: 100,
                overlap: 15
            })
        );
        assert_eq!(
            StrategyKind::Paragraphs.strategy(64),
            Some(Strategy::Paragraphs { max_tokens: 64 })
        );
        assert_eq!(StrategyKind::Semantic.strategy(64), None);
        assert_eq!(StrategyKind::Hierarchical.strategy(64), None);
        assert!(StrategyKind::Semantic.needs_embedder());
        assert!(!StrategyKind::Hierarchical.needs_embedder());
        for &k in &StrategyKind::ALL[..3] {
            assert_eq!(StrategyKind::from(k.strategy(10).unwrap()), k);
        }
        // Configuration files spell them as the flag does.
        for &k in StrategyKind::ALL {
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{k}\""));
            assert_eq!(serde_json::from_str::<StrategyKind>(&json).unwrap(), k);
        }
    }

    /// A deterministic stand-in embedder: sentences sharing a first letter point the same way.
    fn letter_embedder(sentences: &[&str]) -> Result<Vec<Vec<f32>>, std::convert::Infallible> {
        Ok(sentences
            .iter()
            .map(|s| {
                let b = s.bytes().next().unwrap_or(0);
                vec![f32::from(b % 3), f32::from(b % 5), 1.0]
            })
            .collect())
    }

    /// Chunks are trimmed, in budget, on char boundaries and in order (`disjoint`: without
    /// overlap); with `covers`, every token of `text` is in some chunk.
    fn assert_well_formed(
        text: &str,
        chunks: &[Chunk],
        max: usize,
        disjoint: bool,
        covers: bool,
        what: &str,
    ) {
        for (i, c) in chunks.iter().enumerate() {
            assert!(c.start < c.end && c.end <= text.len(), "{what}: {c:?}");
            assert!(
                text.is_char_boundary(c.start) && text.is_char_boundary(c.end),
                "{what}: {c:?}"
            );
            let piece = &text[c.start..c.end];
            assert_eq!(piece, piece.trim(), "{what}: untrimmed");
            assert!(
                whitespace_tokens(piece).len() <= max,
                "{what}: {piece:?} over {max}"
            );
            if let Some(next) = chunks.get(i + 1) {
                assert!(c.start < next.start, "{what}: out of order");
                if disjoint {
                    assert!(c.end <= next.start, "{what}: {c:?} overlaps {next:?}");
                }
            }
        }
        for t in whitespace_tokens(text).into_iter().filter(|_| covers) {
            assert!(
                chunks.iter().any(|c| c.start <= t.start && t.end <= c.end),
                "{what}: token {:?} is in no chunk",
                &text[t]
            );
        }
    }

    proptest::proptest! {
        /// All five strategies on random Markdown-ish texts: budgets hold, offsets are char
        /// boundaries in order, every token is covered, children lie inside their parents.
        #[test]
        fn all_strategies_keep_their_contracts(
            words in proptest::collection::vec(
                proptest::sample::select(vec![
                    "alpha", "Beta", "gamma.", "Delta!", "é", "東京。", "x?", "\n\n", "\n# Head\n",
                    "\n## Sub section\n", "word", "ok.", "🎉", "\t",
                ]),
                0..150,
            ),
            max in 1usize..12,
            overlap in 0usize..12,
            child in 1usize..6,
        ) {
            let text = words.join(" ");
            let overlap = overlap.min(max - 1);
            for strategy in [
                Strategy::Fixed { max_tokens: max, overlap },
                Strategy::Sentences { max_tokens: max },
                Strategy::Paragraphs { max_tokens: max },
            ] {
                let chunks = chunk(&text, strategy, &whitespace_tokens);
                let disjoint = !matches!(strategy, Strategy::Fixed { .. });
                assert_well_formed(&text, &chunks, max, disjoint, true, &format!("{strategy:?}"));
            }
            for breakpoint in [Breakpoint::Percentile(DEFAULT_BREAKPOINT_PERCENTILE), Breakpoint::Distance(0.1)] {
                let chunks = semantic(
                    &text,
                    max,
                    &whitespace_tokens,
                    &mut letter_embedder,
                    &SemanticOptions { breakpoint },
                )
                .unwrap();
                assert_well_formed(&text, &chunks, max, true, true, "semantic");
            }
            let opts = HierarchyOptions {
                parent_max_tokens: max,
                child_max_tokens: child,
                child_overlap: child / 2,
            };
            let h = hierarchical(&text, &opts, &whitespace_tokens);
            assert_well_formed(&text, &h.parents, max, true, true, "parents");
            proptest::prop_assert_eq!(h.children.len(), h.parent_of.len());
            for (p, parent) in h.parents.iter().enumerate() {
                let r = h.child_range(p);
                proptest::prop_assert!(!r.is_empty(), "parent {} has no children", p);
                let kids = &h.children[r];
                assert_well_formed(&text, kids, child, false, false, "children");
                for k in kids {
                    proptest::prop_assert!(parent.start <= k.start && k.end <= parent.end);
                    proptest::prop_assert_eq!(&k.section, &parent.section);
                }
                // The children cover every token of their parent.
                for t in whitespace_tokens(&text[parent.start..parent.end]) {
                    let (s, e) = (parent.start + t.start, parent.start + t.end);
                    proptest::prop_assert!(kids.iter().any(|k| k.start <= s && e <= k.end));
                }
            }
        }
    }
}
