//! Semantic chunking: consecutive sentences stay together while they talk about the same thing.
//!
//! The text is cut into sentences (Unicode sentence boundaries, as
//! [`Strategy::Sentences`](super::Strategy::Sentences) does), every sentence is embedded — in
//! **one** call of the caller's `embed`, which batches as its model likes — and the cosine
//! distance between each sentence and the next is measured. A chunk ends where that distance is
//! a breakpoint (see [`Breakpoint`]) and also wherever the next sentence would take it past
//! `max_tokens`; a sentence longer than `max_tokens` on its own is cut into fixed windows, like
//! the other strategies do, and is never embedded.
//!
//! The embedder is a closure, not a model type, so this crate stays free of models: the engine
//! passes its `Embedder`, tests pass a deterministic fake.

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

use super::{fixed, headings, push_trimmed, Chunk};

/// Default [`Breakpoint::Percentile`]: cut at the 5% largest distances between sentences.
pub const DEFAULT_BREAKPOINT_PERCENTILE: f32 = 95.0;

/// Where a distance between consecutive sentences is large enough to end a chunk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Breakpoint {
    /// At distances at or above this percentile (0–100) of all distances in the document, so
    /// the number of cuts adapts to the document. When every distance is the same, nothing is
    /// cut (a document on one topic stays whole up to the token budget).
    Percentile(f32),
    /// At cosine distances (1 − cosine similarity, 0–2) strictly above this value, the same for
    /// every document.
    Distance(f32),
}

/// Options of [`semantic`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SemanticOptions {
    /// Where topic shifts are cut. Default: [`DEFAULT_BREAKPOINT_PERCENTILE`].
    pub breakpoint: Breakpoint,
}

impl Default for SemanticOptions {
    fn default() -> Self {
        SemanticOptions {
            breakpoint: Breakpoint::Percentile(DEFAULT_BREAKPOINT_PERCENTILE),
        }
    }
}

/// What [`semantic`] calls to embed sentences: all of a document's sentences in, one vector
/// per sentence out, in the same order.
pub type SentenceEmbedder<'a, E> = dyn FnMut(&[&str]) -> Result<Vec<Vec<f32>>, E> + 'a;

/// A sentence: its byte range in the text, its token count, and the index of the Markdown
/// heading it sits under.
struct Sentence {
    range: Range<usize>,
    tokens: usize,
    section: Option<usize>,
}

/// Cuts `text` into chunks of at most `max_tokens` tokens at topic shifts.
///
/// `tokens` gives token spans (as for [`chunk`](super::chunk)); `embed` receives every sentence
/// that fits the budget, in order, in one call, and must return one vector per sentence (a
/// missing, empty or zero vector counts as "no shift" rather than producing NaN). Its error is
/// returned as it is. Markdown headings (`# …` lines, as [`Strategy::Paragraphs`] reads them)
/// always start a new chunk and stay with the sentence after them, and every chunk records the
/// heading it sits under as `section`.
///
/// [`Strategy::Paragraphs`]: super::Strategy::Paragraphs
///
/// ```
/// use sextant_text::chunk::{semantic, whitespace_tokens, SemanticOptions};
///
/// let text = "Cats purr. Cats nap. Stocks fell. Stocks rose.";
/// let mut embed = |sentences: &[&str]| -> Result<Vec<Vec<f32>>, std::convert::Infallible> {
///     Ok(sentences.iter().map(|s| if s.contains("Cats") { vec![1.0, 0.0] } else { vec![0.0, 1.0] }).collect())
/// };
/// let chunks = semantic(text, 100, &whitespace_tokens, &mut embed, &SemanticOptions::default()).unwrap();
/// let pieces: Vec<&str> = chunks.iter().map(|c| &text[c.start..c.end]).collect();
/// assert_eq!(pieces, ["Cats purr. Cats nap.", "Stocks fell. Stocks rose."]);
/// ```
pub fn semantic<E>(
    text: &str,
    max_tokens: usize,
    tokens: &dyn Fn(&str) -> Vec<Range<usize>>,
    embed: &mut SentenceEmbedder<'_, E>,
    options: &SemanticOptions,
) -> Result<Vec<Chunk>, E> {
    let max = max_tokens.max(1);
    let heads = headings(text);
    // Units in order: sentences that fit the budget, or over-long ones (`tokens > max`).
    let units: Vec<Sentence> = text
        .split_sentence_bound_indices()
        .map(|(at, s)| Sentence {
            range: at..at + s.len(),
            tokens: tokens(s).len(),
            // A heading line always starts a sentence (a line feed ends one).
            section: heads.partition_point(|&(h, _)| h <= at).checked_sub(1),
        })
        .filter(|s| s.tokens > 0)
        .collect();
    let title = |u: &Sentence| u.section.map(|i| heads[i].1);
    let fitting: Vec<&str> = units
        .iter()
        .filter(|u| u.tokens <= max)
        .map(|u| text[u.range.clone()].trim())
        .collect();
    let vectors = if fitting.is_empty() {
        Vec::new()
    } else {
        embed(&fitting)?
    };
    // distance[i]: between the i-th and (i+1)-th fitting sentence.
    let distances: Vec<f32> = (1..fitting.len())
        .map(|i| match (vectors.get(i - 1), vectors.get(i)) {
            (Some(a), Some(b)) => cosine_distance(a, b),
            _ => 0.0,
        })
        .collect();
    let cuts = breakpoints(&distances, options.breakpoint);

    let mut out = Vec::new();
    // start, end, tokens, section of the chunk being built
    let mut current: Option<(usize, usize, usize, Option<usize>)> = None;
    let mut fit_index = 0; // index among fitting sentences of the next fitting unit
    let mut after_heading = false; // the previous fitting unit was a heading line
    for u in &units {
        if u.tokens > max {
            if let Some((a, b, _, sec)) = current.take() {
                push_trimmed(text, 0, a..b, sec.map(|i| heads[i].1), &mut out);
            }
            let r = u.range.clone();
            fixed(
                &text[r.clone()],
                r.start,
                max,
                0,
                title(u),
                tokens,
                &mut out,
            );
            continue;
        }
        // A heading line stays with the sentence after it, whatever their distance.
        let shift = fit_index > 0 && cuts[fit_index - 1] && !after_heading;
        fit_index += 1;
        after_heading = u.section.is_some_and(|i| heads[i].0 == u.range.start);
        current = match current {
            Some((a, _, t, sec)) if !shift && sec == u.section && t + u.tokens <= max => {
                Some((a, u.range.end, t + u.tokens, sec))
            }
            Some((a, b, _, sec)) => {
                push_trimmed(text, 0, a..b, sec.map(|i| heads[i].1), &mut out);
                Some((u.range.start, u.range.end, u.tokens, u.section))
            }
            None => Some((u.range.start, u.range.end, u.tokens, u.section)),
        };
    }
    if let Some((a, b, _, sec)) = current {
        push_trimmed(text, 0, a..b, sec.map(|i| heads[i].1), &mut out);
    }
    Ok(out)
}

/// 1 − cosine similarity; 0 (no shift) when either vector is empty or zero or the result is
/// not finite, so a bad vector never produces NaN or a spurious cut. Vectors of different
/// lengths are compared over their common prefix.
pub fn cosine_distance(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0.0f64, 0.0f64, 0.0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    let d = 1.0 - dot / (na.sqrt() * nb.sqrt());
    if d.is_finite() {
        d.clamp(0.0, 2.0) as f32
    } else {
        0.0
    }
}

/// For each distance, whether it ends a chunk.
fn breakpoints(distances: &[f32], breakpoint: Breakpoint) -> Vec<bool> {
    match breakpoint {
        Breakpoint::Distance(t) => distances.iter().map(|&d| d > t).collect(),
        Breakpoint::Percentile(p) => {
            let mut sorted = distances.to_vec();
            sorted.sort_by(f32::total_cmp);
            let (Some(&lo), Some(&hi)) = (sorted.first(), sorted.last()) else {
                return Vec::new();
            };
            if lo == hi {
                return vec![false; distances.len()];
            }
            let t = percentile(&sorted, p);
            distances.iter().map(|&d| d >= t).collect()
        }
    }
}

/// The `p`-th percentile (0–100, clamped) of ascending `sorted`, linearly interpolated.
fn percentile(sorted: &[f32], p: f32) -> f32 {
    let p = if p.is_nan() {
        100.0
    } else {
        p.clamp(0.0, 100.0)
    };
    let rank = f64::from(p) / 100.0 * (sorted.len() - 1) as f64;
    let lo = rank.floor() as usize;
    let hi = rank.ceil() as usize;
    let frac = (rank - lo as f64) as f32;
    sorted[lo] + (sorted[hi] - sorted[lo]) * frac
}

#[cfg(test)]
mod tests {
    use super::super::whitespace_tokens;
    use super::*;
    use std::convert::Infallible;

    /// Topic vectors: pets → x, finance → y, weather → z; other words add nothing.
    fn topics(sentences: &[&str]) -> Result<Vec<Vec<f32>>, Infallible> {
        Ok(sentences
            .iter()
            .map(|s| {
                let mut v = vec![0.0f32; 3];
                for w in s.split_whitespace() {
                    let w = w.to_lowercase();
                    let axis = if ["cats", "dogs", "pets", "cat", "dog"]
                        .iter()
                        .any(|k| w.starts_with(k))
                    {
                        0
                    } else if ["stocks", "markets", "bonds", "shares"]
                        .iter()
                        .any(|k| w.starts_with(k))
                    {
                        1
                    } else if ["rain", "snow", "wind"].iter().any(|k| w.starts_with(k)) {
                        2
                    } else {
                        continue;
                    };
                    v[axis] += 1.0;
                }
                v
            })
            .collect())
    }

    fn pieces<'a>(text: &'a str, chunks: &[Chunk]) -> Vec<&'a str> {
        chunks.iter().map(|c| &text[c.start..c.end]).collect()
    }

    const TEXT: &str = "Cats purr softly. Dogs bark loudly. Pets need care. \
                        Stocks fell today. Markets were nervous. Bonds rallied late. \
                        Rain is coming. Snow follows the rain. Cats sleep a lot.";

    #[test]
    fn breaks_land_at_topic_changes() {
        let mut calls = 0;
        let mut embed = |s: &[&str]| {
            calls += 1;
            assert_eq!(s.len(), 9, "every sentence in one call");
            topics(s)
        };
        let c = semantic(
            TEXT,
            100,
            &whitespace_tokens,
            &mut embed,
            &SemanticOptions::default(),
        )
        .unwrap();
        assert_eq!(calls, 1);
        assert_eq!(
            pieces(TEXT, &c),
            [
                "Cats purr softly. Dogs bark loudly. Pets need care.",
                "Stocks fell today. Markets were nervous. Bonds rallied late.",
                "Rain is coming. Snow follows the rain.",
                "Cats sleep a lot."
            ]
        );
        // An absolute threshold above every distance cuts nothing; the budget still applies.
        let opts = SemanticOptions {
            breakpoint: Breakpoint::Distance(1.5),
        };
        let c = semantic(TEXT, 100, &whitespace_tokens, &mut topics, &opts).unwrap();
        assert_eq!(pieces(TEXT, &c), [TEXT]);
        let opts = SemanticOptions {
            breakpoint: Breakpoint::Distance(0.5),
        };
        let c = semantic(TEXT, 100, &whitespace_tokens, &mut topics, &opts).unwrap();
        assert_eq!(c.len(), 4);
    }

    #[test]
    fn headings_start_chunks_and_name_sections() {
        let text = "# Pets\n\nCats purr. Dogs bark.\n\n## More pets\n\nCats nap. Stocks fell.\n";
        let c = semantic(
            text,
            100,
            &whitespace_tokens,
            &mut topics,
            &SemanticOptions::default(),
        )
        .unwrap();
        let got: Vec<(&str, Option<&str>)> = c
            .iter()
            .map(|c| (&text[c.start..c.end], c.section.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("# Pets\n\nCats purr. Dogs bark.", Some("Pets")),
                ("## More pets\n\nCats nap.", Some("More pets")),
                ("Stocks fell.", Some("More pets")),
            ]
        );
        // A heading is never left alone, even when the text after it is on another topic.
        let text = "# Pets\n\nCats purr.\n\n## Cat money\n\nStocks fell. Bonds rose.";
        let c = semantic(
            text,
            100,
            &whitespace_tokens,
            &mut topics,
            &SemanticOptions::default(),
        )
        .unwrap();
        assert_eq!(
            pieces(text, &c),
            [
                "# Pets\n\nCats purr.",
                "## Cat money\n\nStocks fell. Bonds rose."
            ]
        );
    }

    #[test]
    fn the_token_budget_also_cuts() {
        // 3 + 3 + 3 tokens per pet sentence: a budget of 7 splits the first topic in two.
        let c = semantic(
            TEXT,
            7,
            &whitespace_tokens,
            &mut topics,
            &SemanticOptions::default(),
        )
        .unwrap();
        assert_eq!(
            &pieces(TEXT, &c)[..3],
            [
                "Cats purr softly. Dogs bark loudly.",
                "Pets need care.",
                "Stocks fell today. Markets were nervous."
            ]
        );
        for piece in pieces(TEXT, &c) {
            assert!(whitespace_tokens(piece).len() <= 7, "{piece:?}");
        }
    }

    #[test]
    fn long_sentences_fall_back_to_windows_and_are_not_embedded() {
        let text = "Cats purr. One two three four five six seven eight nine ten. Stocks fell.";
        let mut seen = Vec::new();
        let mut embed = |s: &[&str]| {
            seen.extend(s.iter().map(|s| s.to_string()));
            topics(s)
        };
        let c = semantic(
            text,
            4,
            &whitespace_tokens,
            &mut embed,
            &SemanticOptions::default(),
        )
        .unwrap();
        assert_eq!(seen, ["Cats purr.", "Stocks fell."]);
        assert_eq!(
            pieces(text, &c),
            [
                "Cats purr.",
                "One two three four",
                "five six seven eight",
                "nine ten.",
                "Stocks fell."
            ]
        );
    }

    #[test]
    fn errors_propagate_and_bad_vectors_do_not_cut() {
        let mut failing =
            |_: &[&str]| -> Result<Vec<Vec<f32>>, String> { Err("model down".into()) };
        let err = semantic(
            TEXT,
            100,
            &whitespace_tokens,
            &mut failing,
            &SemanticOptions::default(),
        );
        assert_eq!(err, Err("model down".to_string()));
        // Zero, empty and missing vectors: no NaN, no cut.
        let mut bad = |s: &[&str]| -> Result<Vec<Vec<f32>>, Infallible> {
            Ok(s.iter()
                .skip(1)
                .enumerate()
                .map(|(i, _)| if i % 2 == 0 { vec![0.0; 3] } else { vec![] })
                .collect())
        };
        let c = semantic(
            TEXT,
            100,
            &whitespace_tokens,
            &mut bad,
            &SemanticOptions::default(),
        )
        .unwrap();
        assert_eq!(pieces(TEXT, &c), [TEXT]);
        // Nothing to embed: the embedder is not called.
        let mut never = |_: &[&str]| -> Result<Vec<Vec<f32>>, Infallible> { panic!("called") };
        assert!(semantic(
            "  \n ",
            10,
            &whitespace_tokens,
            &mut never,
            &SemanticOptions::default()
        )
        .unwrap()
        .is_empty());
    }

    #[test]
    fn distances_and_percentiles() {
        assert_eq!(cosine_distance(&[1.0, 0.0], &[0.0, 2.0]), 1.0);
        assert!(cosine_distance(&[1.0, 1.0], &[2.0, 2.0]).abs() < 1e-6);
        assert_eq!(cosine_distance(&[1.0, 0.0], &[-1.0, 0.0]), 2.0);
        assert_eq!(cosine_distance(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine_distance(&[f32::NAN], &[1.0]), 0.0);
        assert_eq!(percentile(&[0.0, 1.0], 95.0), 0.95);
        assert_eq!(percentile(&[0.0, 1.0, 2.0], 50.0), 1.0);
        assert_eq!(percentile(&[3.0], 95.0), 3.0);
        assert_eq!(
            breakpoints(&[0.1, 0.9, 0.1, 0.2], Breakpoint::Percentile(95.0)),
            [false, true, false, false]
        );
        assert_eq!(
            breakpoints(&[0.3, 0.3], Breakpoint::Percentile(0.0)),
            [false, false]
        );
        assert_eq!(
            breakpoints(&[0.0, 1.0, 1.0], Breakpoint::Percentile(95.0)),
            [false, true, true]
        );
    }
}
