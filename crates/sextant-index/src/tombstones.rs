//! A dense bitset of deleted offsets. Checked on every search result, so it is a plain bit
//! lookup rather than a compressed bitmap.

#[derive(Debug, Clone, Default)]
pub(crate) struct Tombstones {
    words: Vec<u64>,
    count: usize,
}

impl Tombstones {
    #[inline]
    pub(crate) fn contains(&self, id: u32) -> bool {
        let (w, b) = (id as usize / 64, id % 64);
        self.words.get(w).is_some_and(|word| word & (1 << b) != 0)
    }

    /// Marks `id`; returns `false` if it already was marked.
    pub(crate) fn insert(&mut self, id: u32) -> bool {
        let (w, b) = (id as usize / 64, id % 64);
        if self.words.len() <= w {
            self.words.resize(w + 1, 0);
        }
        let fresh = self.words[w] & (1 << b) == 0;
        self.words[w] |= 1 << b;
        self.count += usize::from(fresh);
        fresh
    }

    pub(crate) fn count(&self) -> usize {
        self.count
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(w, &word)| {
            (0..64)
                .filter(move |b| word & (1 << b) != 0)
                .map(move |b| (w * 64 + b) as u32)
        })
    }

    pub(crate) fn memory_bytes(&self) -> usize {
        self.words.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_contains_count() {
        let mut t = Tombstones::default();
        assert!(!t.contains(130));
        assert!(t.insert(130));
        assert!(!t.insert(130));
        assert!(t.insert(3));
        assert!(t.contains(130) && t.contains(3) && !t.contains(4));
        assert_eq!(t.count(), 2);
        assert_eq!(t.iter().collect::<Vec<_>>(), vec![3, 130]);
    }
}
