//! RAG context assembly: retrieved chunks → cited passages within a token budget.
//!
//! 1. Hierarchical chunks are replaced by their parent (the payload's `parent`), once per parent.
//! 2. Overlapping chunks of one document are merged into one passage (byte ranges united, text
//!    joined without repeating the overlap) when their stored text is the source slice, else the
//!    lower-scored one is dropped.
//! 3. Passages are packed best first while they fit the token budget; one that does not fit is
//!    skipped (a smaller one further down may still fit); the first passage is cut to the budget
//!    rather than dropped, so a non-empty result always has some context.
//! 4. Citations are numbered `[1]`, `[2]`, … in relevance order.

use serde::Serialize;
use serde_json::Value;

use super::search::DocumentHit;

/// A passage of the context.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Passage {
    /// Citation number (from 1).
    pub citation: usize,
    /// Its document.
    pub doc_id: String,
    /// Source file or URL, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Document title.
    pub title: String,
    /// Section heading, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
    /// Page (from 1) the passage starts on, for paged sources (PDF); `start`/`end` are then
    /// offsets into the extracted text.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<usize>,
    /// Byte offsets into the source.
    pub start: usize,
    /// End offset.
    pub end: usize,
    /// Best score of the chunks it covers.
    pub score: f32,
    /// The text.
    pub text: String,
    /// Its tokens by the budget's counter.
    pub tokens: usize,
    /// Cut to fit the budget.
    pub truncated: bool,
    /// Documents with the same (or nearly the same) text that this passage stands for (the
    /// `link` dedup policy).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub copies: Vec<String>,
    /// `"image"` for an image (its `text` is the caption, `source` the picture's path).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
}

/// An assembled context.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Context {
    /// Passages, most relevant first.
    pub passages: Vec<Passage>,
    /// Tokens used.
    pub tokens: usize,
    /// The budget.
    pub budget: usize,
    /// Candidate passages left out for lack of budget.
    pub omitted: usize,
}

struct Candidate {
    doc_id: String,
    source: Option<String>,
    title: String,
    section: Option<String>,
    page: Option<usize>,
    start: usize,
    end: usize,
    score: f32,
    text: String,
    /// Whether `text` is exactly the source bytes `start..end` (so ranges can be merged).
    exact: bool,
    /// Documents collapsed into this one as duplicates.
    copies: Vec<String>,
    media: Option<String>,
}

fn candidate(doc_id: &str, score: f32, p: &Value) -> Candidate {
    let s = |k: &str| p[k].as_str().map(str::to_string);
    let u = |v: &Value| v.as_u64().unwrap_or(0) as usize;
    let page = |v: &Value| v.as_u64().map(|n| n as usize);
    let (start, end, text, exact, page) = match p.get("parent").filter(|v| v.is_object()) {
        Some(par) => {
            let text = par["text"].as_str().unwrap_or("").to_string();
            let (a, b) = (u(&par["start"]), u(&par["end"]));
            let exact = b.saturating_sub(a) == text.len();
            (a, b, text, exact, page(&par["page"]).or(page(&p["page"])))
        }
        None => {
            let text = s("text").unwrap_or_default();
            let (a, b) = (u(&p["start"]), u(&p["end"]));
            let exact = b.saturating_sub(a) == text.len();
            (a, b, text, exact, page(&p["page"]))
        }
    };
    Candidate {
        doc_id: doc_id.to_string(),
        source: s("source"),
        title: s("title").unwrap_or_default(),
        section: s("section"),
        page,
        start,
        end,
        score,
        text,
        exact,
        copies: Vec::new(),
        media: s(super::ingest::MEDIA),
    }
}

/// Assembles the context of ranked results within `budget` tokens, counted by `count`.
pub fn assemble(hits: &[DocumentHit], budget: usize, count: &dyn Fn(&str) -> usize) -> Context {
    // Candidates in rank order, merged per document.
    let mut cands: Vec<Candidate> = Vec::new();
    for d in hits {
        for h in &d.chunks {
            let mut c = candidate(&d.doc_id, h.score, &h.payload);
            c.copies = d.copies.clone();
            // An image stands for itself even without a caption.
            if c.text.trim().is_empty() && c.media.is_none() {
                continue;
            }
            let same = cands.iter_mut().find(|o| {
                o.doc_id == c.doc_id
                    && o.source == c.source
                    && c.start < o.end.max(o.start + 1)
                    && o.start < c.end.max(c.start + 1)
            });
            match same {
                None => cands.push(c),
                Some(o) if o.exact && c.exact => merge(o, c),
                // Overlapping but not mergeable (redacted or extracted text): keep the better.
                Some(_) => {}
            }
        }
    }
    let mut out = Context {
        passages: Vec::new(),
        tokens: 0,
        budget,
        omitted: 0,
    };
    for c in cands {
        let tokens = count(&c.text);
        let (text, tokens, truncated) = if out.tokens + tokens <= budget {
            (c.text, tokens, false)
        } else if out.passages.is_empty() && budget > 0 {
            let cut = cut_to_tokens(&c.text, budget, count);
            let t = count(&cut);
            (cut, t, true)
        } else {
            out.omitted += 1;
            continue;
        };
        out.tokens += tokens;
        out.passages.push(Passage {
            citation: out.passages.len() + 1,
            doc_id: c.doc_id,
            source: c.source,
            title: c.title,
            section: c.section,
            page: c.page,
            start: c.start,
            end: c.end,
            score: c.score,
            text,
            tokens,
            truncated,
            copies: c.copies,
            media: c.media,
        });
    }
    out
}

/// Unites two overlapping exact ranges of one source.
fn merge(o: &mut Candidate, c: Candidate) {
    if c.start >= o.start && c.end <= o.end {
        return;
    }
    if c.start < o.start {
        // The passage now starts where `c` does, on its page.
        o.page = c.page.or(o.page);
    }
    if c.start <= o.start && c.end >= o.end {
        o.text = c.text;
    } else if c.start < o.start {
        // c first, then the part of o past c's end.
        let skip = c.end - o.start;
        o.text = format!("{}{}", c.text, o.text.get(skip..).unwrap_or(""));
    } else {
        let skip = o.end - c.start;
        o.text = format!("{}{}", o.text, c.text.get(skip..).unwrap_or(""));
    }
    o.start = o.start.min(c.start);
    o.end = o.end.max(c.end);
    o.score = o.score.max(c.score);
}

/// The longest prefix of `text` (cut at a word boundary when possible) within `budget` tokens.
fn cut_to_tokens(text: &str, budget: usize, count: &dyn Fn(&str) -> usize) -> String {
    let bounds: Vec<usize> = text
        .char_indices()
        .filter(|&(_, ch)| ch.is_whitespace())
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    // Binary search over word boundaries for the last prefix that fits.
    let (mut lo, mut hi) = (0usize, bounds.len());
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if count(&text[..bounds[mid - 1]]) <= budget {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    match lo {
        0 => String::new(),
        n => text[..bounds[n - 1]].trim_end().to_string(),
    }
}

/// Renders the context as the numbered, cited text given to a language model or printed.
pub fn render(ctx: &Context) -> String {
    let mut s = String::new();
    for p in &ctx.passages {
        let text = match (p.text.trim(), p.media.as_deref()) {
            ("", Some(media)) => format!("[{media} without a caption]"),
            (t, _) => t.to_owned(),
        };
        s.push_str(&format!(
            "[{}] {}\n{}\n\n",
            p.citation,
            citation_line(p),
            text
        ));
    }
    s
}

/// `title › section (source, bytes a–b)` for a passage; `(source, p. N)` for a passage of a
/// paged source (PDF), whose offsets are into the extracted text, not the file; `(image:
/// source)` for an image.
pub fn citation_line(p: &Passage) -> String {
    let mut s = if p.title.is_empty() {
        p.doc_id.clone()
    } else {
        p.title.clone()
    };
    if let Some(sec) = p.section.as_deref().filter(|x| !x.is_empty()) {
        s.push_str(" › ");
        s.push_str(sec);
    }
    let src = p.source.as_deref().unwrap_or(&p.doc_id);
    match (p.media.as_deref(), p.page) {
        (Some(media), _) => s.push_str(&format!(" ({media}: {src})")),
        (None, Some(page)) => s.push_str(&format!(" ({src}, p. {page})")),
        (None, None) => s.push_str(&format!(" ({src}, bytes {}–{})", p.start, p.end)),
    }
    if !p.copies.is_empty() {
        s.push_str(&format!(" [also: {}]", p.copies.join(", ")));
    }
    s
}
