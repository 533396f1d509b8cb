//! External point ids ↔ the dense offsets that indexes and payload storage use.
//!
//! A collection's ids are all of one kind (integers, UUIDs or strings): the first id fixes the
//! kind, and a batch that mixes kinds, or uses another kind, is refused as a whole before
//! anything changes.

use std::collections::HashMap;

use sextant_core::PointId;

use crate::StorageError;

/// The kind of a point id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    /// Unsigned integers.
    Num,
    /// UUIDs.
    Uuid,
    /// Other strings.
    Str,
}

impl IdKind {
    /// The kind of `id`.
    pub fn of(id: &PointId) -> IdKind {
        match id {
            PointId::Num(_) => IdKind::Num,
            PointId::Uuid(_) => IdKind::Uuid,
            PointId::Str(_) => IdKind::Str,
        }
    }

    fn name(self) -> &'static str {
        match self {
            IdKind::Num => "an integer",
            IdKind::Uuid => "a UUID",
            IdKind::Str => "a string",
        }
    }
}

/// Checks that every id has kind `expected` (or, when `None`, that all share one kind); returns
/// the kind the ids have.
pub fn check_id_kinds<'a>(
    mut expected: Option<IdKind>,
    ids: impl IntoIterator<Item = &'a PointId>,
) -> Result<Option<IdKind>, StorageError> {
    for id in ids {
        let kind = IdKind::of(id);
        match expected {
            None => expected = Some(kind),
            Some(want) if want != kind => {
                let shown = match id {
                    PointId::Str(s) => format!("{s:?}"),
                    other => other.to_string(),
                };
                return Err(StorageError::MixedIdKinds {
                    id: shown,
                    found: kind.name(),
                    expected: want.name(),
                });
            }
            Some(_) => {}
        }
    }
    Ok(expected)
}

/// Two-way map between external ids and offsets.
///
/// Two layouts: a hash map (any id kind; the mutable segment, and immutable segments of UUID or
/// string ids) and, for an immutable segment of integer ids, two sorted arrays and the ids by
/// offset — 20 bytes a point instead of about 150, built by one sort instead of a million hash
/// inserts ([`IdMap::freeze`]). A frozen map that is written to becomes a hash map again.
#[derive(Debug, Clone, Default)]
pub struct IdMap {
    kind: Option<IdKind>,
    repr: Repr,
}

#[derive(Debug, Clone)]
enum Repr {
    Hashed {
        offsets: HashMap<PointId, u32>,
        ids: Vec<Option<PointId>>,
    },
    /// Integer ids, every offset live: `by_offset[o]` is the id at offset `o`; `sorted` the
    /// ids in increasing order and `sorted_offsets` their offsets.
    Nums {
        by_offset: Vec<u64>,
        sorted: Vec<u64>,
        sorted_offsets: Vec<u32>,
    },
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Hashed {
            offsets: HashMap::new(),
            ids: Vec::new(),
        }
    }
}

impl IdMap {
    /// A frozen map of integer ids, `ids[o]` at offset `o`; `Err(o)` names an offset whose id
    /// appears at an earlier offset too.
    pub fn from_nums(ids: Vec<u64>) -> Result<IdMap, u32> {
        let mut order: Vec<u32> = (0..ids.len() as u32).collect();
        order.sort_unstable_by_key(|&o| (ids[o as usize], o));
        let sorted: Vec<u64> = order.iter().map(|&o| ids[o as usize]).collect();
        if let Some(w) = (1..sorted.len()).find(|&i| sorted[i] == sorted[i - 1]) {
            return Err(order[w]);
        }
        Ok(IdMap {
            kind: (!ids.is_empty()).then_some(IdKind::Num),
            repr: Repr::Nums {
                by_offset: ids,
                sorted,
                sorted_offsets: order,
            },
        })
    }

    /// Turns a map of integer ids with every offset live into the compact layout (anything
    /// else is left as it is). For maps that will not change: an immutable segment's.
    pub fn freeze(&mut self) {
        let Repr::Hashed { offsets, ids } = &self.repr else {
            return;
        };
        if self.kind != Some(IdKind::Num) || offsets.len() != ids.len() {
            return;
        }
        let nums: Vec<u64> = ids
            .iter()
            .map(|id| match id {
                Some(PointId::Num(n)) => *n,
                _ => unreachable!("an integer map with every offset live"),
            })
            .collect();
        *self = IdMap::from_nums(nums).expect("a map holds each id once");
    }

    /// Heap bytes held (an estimate for hash maps: buckets and the ids by offset, not the
    /// bytes of string ids).
    pub fn memory_bytes(&self) -> usize {
        match &self.repr {
            Repr::Hashed { offsets, ids } => {
                offsets.capacity() * (std::mem::size_of::<(PointId, u32)>() + 1)
                    + ids.capacity() * std::mem::size_of::<Option<PointId>>()
            }
            Repr::Nums {
                by_offset,
                sorted,
                sorted_offsets,
            } => by_offset.capacity() * 8 + sorted.capacity() * 8 + sorted_offsets.capacity() * 4,
        }
    }

    /// The id kind of this collection, once it has one.
    pub fn kind(&self) -> Option<IdKind> {
        self.kind
    }

    /// Number of live ids.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Hashed { offsets, .. } => offsets.len(),
            Repr::Nums { by_offset, .. } => by_offset.len(),
        }
    }

    /// Whether no id is mapped.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The offset of `id`.
    pub fn offset(&self, id: &PointId) -> Option<u32> {
        match (&self.repr, id) {
            (Repr::Hashed { offsets, .. }, _) => offsets.get(id).copied(),
            (
                Repr::Nums {
                    sorted,
                    sorted_offsets,
                    ..
                },
                PointId::Num(n),
            ) => sorted.binary_search(n).ok().map(|i| sorted_offsets[i]),
            (Repr::Nums { .. }, _) => None,
        }
    }

    /// The id at `offset`.
    pub fn id(&self, offset: u32) -> Option<PointId> {
        match &self.repr {
            Repr::Hashed { ids, .. } => ids.get(offset as usize).cloned().flatten(),
            Repr::Nums { by_offset, .. } => {
                by_offset.get(offset as usize).map(|&n| PointId::Num(n))
            }
        }
    }

    /// Checks that every id of a batch has this collection's kind (or, for the first batch, one
    /// common kind). Call before applying anything, so a refused batch changes nothing.
    pub fn check_batch<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a PointId>,
    ) -> Result<(), StorageError> {
        check_id_kinds(self.kind, ids).map(|_| ())
    }

    /// The hash-map layout, converting a frozen map first.
    fn hashed(&mut self) -> (&mut HashMap<PointId, u32>, &mut Vec<Option<PointId>>) {
        if let Repr::Nums { by_offset, .. } = &self.repr {
            let ids: Vec<Option<PointId>> =
                by_offset.iter().map(|&n| Some(PointId::Num(n))).collect();
            let offsets = by_offset
                .iter()
                .enumerate()
                .map(|(o, &n)| (PointId::Num(n), o as u32))
                .collect();
            self.repr = Repr::Hashed { offsets, ids };
        }
        match &mut self.repr {
            Repr::Hashed { offsets, ids } => (offsets, ids),
            Repr::Nums { .. } => unreachable!("converted above"),
        }
    }

    /// Maps `id` to `offset`; returns the offset it had before (now to be tombstoned). The batch
    /// must have passed [`IdMap::check_batch`].
    pub fn assign(&mut self, id: PointId, offset: u32) -> Option<u32> {
        debug_assert!(self.kind.is_none_or(|k| k == IdKind::of(&id)));
        self.kind.get_or_insert(IdKind::of(&id));
        let (offsets, ids) = self.hashed();
        let at = offset as usize;
        if ids.len() <= at {
            ids.resize(at + 1, None);
        }
        let previous = offsets.insert(id.clone(), offset);
        if let Some(old) = previous {
            ids[old as usize] = None;
        }
        ids[at] = Some(id);
        previous
    }

    /// Unmaps `id`; returns its offset.
    pub fn remove(&mut self, id: &PointId) -> Option<u32> {
        self.offset(id)?;
        let (offsets, ids) = self.hashed();
        let offset = offsets.remove(id)?;
        ids[offset as usize] = None;
        Some(offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assign_replace_remove() {
        let mut m = IdMap::default();
        let a = PointId::Str("a".into());
        assert_eq!(m.assign(a.clone(), 0), None);
        assert_eq!(m.assign(PointId::Str("b".into()), 1), None);
        assert_eq!(
            m.assign(a.clone(), 2),
            Some(0),
            "replacing returns the old offset"
        );
        assert_eq!(
            (m.offset(&a), m.id(0), m.id(2)),
            (Some(2), None, Some(a.clone()))
        );
        assert_eq!(m.remove(&a), Some(2));
        assert_eq!((m.offset(&a), m.id(2), m.len()), (None, None, 1));
        assert_eq!(m.kind(), Some(IdKind::Str));
    }

    /// The frozen layout answers as the hash map it came from, for every offset and id (and
    /// ids it does not hold), refuses a duplicate naming its offset, and turns back into a hash
    /// map when written to.
    #[test]
    fn frozen_integer_ids_answer_as_the_hash_map() {
        let nums: Vec<u64> = (0..500u64).map(|i| (i * 7919) % 1009 + 3).collect();
        let mut hashed = IdMap::default();
        for (o, &n) in nums.iter().enumerate() {
            hashed.assign(PointId::Num(n), o as u32);
        }
        let mut frozen = hashed.clone();
        frozen.freeze();
        assert!(matches!(frozen.repr, Repr::Nums { .. }));
        assert!(frozen.memory_bytes() * 3 < hashed.memory_bytes());
        assert_eq!(frozen.len(), 500);
        for o in 0..501 {
            assert_eq!(frozen.id(o), hashed.id(o));
        }
        for n in 0..1015 {
            let id = PointId::Num(n);
            assert_eq!(frozen.offset(&id), hashed.offset(&id), "{n}");
        }
        assert_eq!(frozen.offset(&PointId::Str("3".into())), None);
        assert_eq!(IdMap::from_nums(vec![5, 1, 5]).unwrap_err(), 2);
        // Written to: a hash map again, with the same content plus the write.
        let id = PointId::Num(nums[10]);
        assert_eq!(frozen.assign(id.clone(), 500), Some(10));
        assert_eq!((frozen.offset(&id), frozen.id(10)), (Some(500), None));
        assert_eq!(frozen.remove(&PointId::Num(nums[11])), Some(11));
        assert_eq!(frozen.len(), 499);
        // Maps with holes or other kinds stay hash maps.
        let mut holes = IdMap::default();
        holes.assign(PointId::Num(1), 1);
        holes.freeze();
        assert!(matches!(holes.repr, Repr::Hashed { .. }));
    }

    #[test]
    fn mixed_kinds_are_refused_before_any_change() {
        let mut m = IdMap::default();
        let batch = [PointId::Num(1), PointId::Str("two".into())];
        let err = m.check_batch(&batch).unwrap_err().to_string();
        assert!(
            err.contains("\"two\"") && err.contains("a string") && err.contains("an integer"),
            "{err}"
        );
        assert!(m.is_empty() && m.kind().is_none());
        m.check_batch(&[PointId::Num(1)]).unwrap();
        m.assign(PointId::Num(1), 0);
        let uuid = PointId::Uuid(0xabc);
        let err = m.check_batch(&[uuid]).unwrap_err().to_string();
        assert!(
            err.contains("a UUID") && err.contains("an integer"),
            "{err}"
        );
        assert_eq!(m.len(), 1);
    }
}
