//! Hierarchical (parent–child) chunking: small children are what gets embedded and matched,
//! their larger parent is what a RAG answer is given as context.
//!
//! Parents are [`Strategy::Paragraphs`](super::Strategy::Paragraphs) chunks of up to
//! `parent_max_tokens` (Markdown sections and paragraphs, with their `section`); each parent is
//! cut into [`Strategy::Fixed`](super::Strategy::Fixed) windows of `child_max_tokens` with
//! `child_overlap`. Children never cross their parent's bounds and inherit its `section`.
//!
//! The result is a separate [`Hierarchy`] rather than a `parent` field on [`Chunk`], so the
//! flat strategies keep their simple type.

use std::ops::Range;

use super::{fixed, paragraphs, Chunk};

/// Default [`HierarchyOptions::parent_max_tokens`].
pub const DEFAULT_PARENT_TOKENS: usize = 512;
/// Default [`HierarchyOptions::child_max_tokens`].
pub const DEFAULT_CHILD_TOKENS: usize = 128;
/// Default [`HierarchyOptions::child_overlap`].
pub const DEFAULT_CHILD_OVERLAP: usize = 16;

/// Sizes of [`hierarchical`] chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HierarchyOptions {
    /// Tokens per parent at most (the context a match expands to). Default:
    /// [`DEFAULT_PARENT_TOKENS`].
    pub parent_max_tokens: usize,
    /// Tokens per child at most (what is embedded; smaller matches more precisely). Default:
    /// [`DEFAULT_CHILD_TOKENS`].
    pub child_max_tokens: usize,
    /// Tokens shared by consecutive children of one parent (less than `child_max_tokens`).
    /// Default: [`DEFAULT_CHILD_OVERLAP`].
    pub child_overlap: usize,
}

impl Default for HierarchyOptions {
    fn default() -> Self {
        HierarchyOptions {
            parent_max_tokens: DEFAULT_PARENT_TOKENS,
            child_max_tokens: DEFAULT_CHILD_TOKENS,
            child_overlap: DEFAULT_CHILD_OVERLAP,
        }
    }
}

/// Parents and their children.
///
/// Children are grouped by parent, in parent order: `children[child_range(p)]` are parent
/// `p`'s, and `parent_of[c]` is child `c`'s parent. Every parent has at least one child.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hierarchy {
    /// The large chunks, in text order.
    pub parents: Vec<Chunk>,
    /// The small chunks, in text order.
    pub children: Vec<Chunk>,
    /// For each child, the index of its parent in `parents`.
    pub parent_of: Vec<usize>,
}

impl Hierarchy {
    /// The indexes in `children` of parent `parent`'s children (empty for an unknown parent).
    pub fn child_range(&self, parent: usize) -> Range<usize> {
        let start = self.parent_of.partition_point(|&p| p < parent);
        let end = self.parent_of.partition_point(|&p| p <= parent);
        start..end
    }

    /// The parent of child `child`.
    ///
    /// # Panics
    /// When `child` is not an index into `children`.
    pub fn parent(&self, child: usize) -> &Chunk {
        &self.parents[self.parent_of[child]]
    }
}

/// Cuts `text` into parents and children (see the module docs). `tokens` gives token spans, as
/// for [`chunk`](super::chunk).
pub fn hierarchical(
    text: &str,
    options: &HierarchyOptions,
    tokens: &dyn Fn(&str) -> Vec<Range<usize>>,
) -> Hierarchy {
    let mut parents = Vec::new();
    paragraphs(text, options.parent_max_tokens.max(1), tokens, &mut parents);
    let child_max = options.child_max_tokens.max(1);
    let mut h = Hierarchy::default();
    for p in parents {
        let before = h.children.len();
        fixed(
            &text[p.start..p.end],
            p.start,
            child_max,
            options.child_overlap,
            p.section.as_deref(),
            tokens,
            &mut h.children,
        );
        let index = h.parents.len();
        if h.children.len() == before {
            // A parent's text always has tokens, but a tokenizer may disagree on a slice: the
            // parent is then its own child, so nothing goes unembedded.
            h.children.push(p.clone());
        }
        h.parent_of.resize(h.children.len(), index);
        h.parents.push(p);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::super::whitespace_tokens;
    use super::*;

    #[test]
    fn children_are_windows_inside_their_parents() {
        let text = "# Intro\n\none two three four five six\n\n## Next\n\nseven eight nine\n";
        let h = hierarchical(
            text,
            &HierarchyOptions {
                parent_max_tokens: 50,
                child_max_tokens: 3,
                child_overlap: 1,
            },
            &whitespace_tokens,
        );
        let parents: Vec<&str> = h.parents.iter().map(|c| &text[c.start..c.end]).collect();
        assert_eq!(
            parents,
            [
                "# Intro\n\none two three four five six",
                "## Next\n\nseven eight nine"
            ]
        );
        let children: Vec<(&str, usize, Option<&str>)> = h
            .children
            .iter()
            .zip(&h.parent_of)
            .map(|(c, &p)| (&text[c.start..c.end], p, c.section.as_deref()))
            .collect();
        assert_eq!(
            children,
            [
                ("# Intro\n\none", 0, Some("Intro")),
                ("one two three", 0, Some("Intro")),
                ("three four five", 0, Some("Intro")),
                ("five six", 0, Some("Intro")),
                ("## Next\n\nseven", 1, Some("Next")),
                ("seven eight nine", 1, Some("Next")),
            ]
        );
        assert_eq!(h.child_range(0), 0..4);
        assert_eq!(h.child_range(1), 4..6);
        assert_eq!(h.child_range(7), 6..6);
        assert_eq!(h.parent(5), &h.parents[1]);
        assert_eq!(
            HierarchyOptions::default().child_max_tokens,
            DEFAULT_CHILD_TOKENS
        );
        assert_eq!(
            hierarchical("", &HierarchyOptions::default(), &whitespace_tokens),
            Hierarchy::default()
        );
    }
}
