//! A term dictionary: term texts ↔ dense `u32` ordinals, in order of first insertion.
//!
//! A BM25 space keeps one per segment (the storage layer owns it and writes its terms in the
//! segment's sparse file), so the inverted index is keyed by ordinals that are exact: two
//! distinct terms never share an ordinal, unlike a hash of the term. Ordinals are local to the
//! dictionary; statistics across segments are summed by term text.

use std::collections::HashMap;

/// foldhash: several times faster than SipHash on short strings (query terms are looked up in
/// every segment), and randomly seeded per map, so crafted terms cannot predict collisions.
type Hasher = foldhash::fast::RandomState;

/// Term texts numbered `0..len` in order of first insertion.
#[derive(Debug, Clone, Default)]
pub struct TermDict {
    ids: HashMap<Box<str>, u32, Hasher>,
    terms: Vec<Box<str>>,
}

impl TermDict {
    /// An empty dictionary.
    pub fn new() -> TermDict {
        TermDict::default()
    }

    /// Number of terms.
    pub fn len(&self) -> usize {
        self.terms.len()
    }

    /// Whether there is no term.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The ordinal of `term`, if known.
    pub fn get(&self, term: &str) -> Option<u32> {
        self.ids.get(term).copied()
    }

    /// The ordinal of `term`, numbering it if new.
    ///
    /// # Panics
    /// Past 2³² − 1 terms (a segment holds far fewer points than that; each term has one).
    pub fn insert(&mut self, term: &str) -> u32 {
        if let Some(&id) = self.ids.get(term) {
            return id;
        }
        let id = u32::try_from(self.terms.len()).expect("fewer than 2^32 terms per dictionary");
        let boxed: Box<str> = term.into();
        self.ids.insert(boxed.clone(), id);
        self.terms.push(boxed);
        id
    }

    /// The term numbered `id`.
    pub fn term(&self, id: u32) -> Option<&str> {
        self.terms.get(id as usize).map(|t| &**t)
    }

    /// All terms, by ordinal.
    pub fn terms(&self) -> impl ExactSizeIterator<Item = &str> {
        self.terms.iter().map(|t| &**t)
    }

    /// Heap bytes held (approximate: strings twice, table entries).
    pub fn memory_bytes(&self) -> usize {
        self.terms.iter().map(|t| 2 * t.len() + 48).sum::<usize>() + self.terms.capacity() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_are_dense_stable_and_distinct() {
        let mut d = TermDict::new();
        assert_eq!(d.insert("b"), 0);
        assert_eq!(d.insert("a"), 1);
        assert_eq!(d.insert("b"), 0);
        assert_eq!(d.get("a"), Some(1));
        assert_eq!(d.get("c"), None);
        assert_eq!(d.term(1), Some("a"));
        assert_eq!(d.terms().collect::<Vec<_>>(), ["b", "a"]);
        // The 1,000,000 numbers 1000000..2000000 (107 pairs of which shared a 32-bit FNV-1a id)
        // and 100,000 other words get as many ordinals, each naming its own term.
        let mut d = TermDict::new();
        for n in 1_000_000u32..2_000_000 {
            d.insert(&n.to_string());
        }
        for n in 0..100_000u32 {
            d.insert(&format!("w{n:x}"));
        }
        assert_eq!(d.len(), 1_100_000);
        assert_eq!(d.term(d.get("1023898").unwrap()), Some("1023898"));
        assert_ne!(d.get("1023898"), d.get("1027041"));
    }
}
