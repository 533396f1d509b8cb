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
#[derive(Debug, Clone, Default)]
pub struct IdMap {
    kind: Option<IdKind>,
    offsets: HashMap<PointId, u32>,
    ids: Vec<Option<PointId>>,
}

impl IdMap {
    /// The id kind of this collection, once it has one.
    pub fn kind(&self) -> Option<IdKind> {
        self.kind
    }

    /// Number of live ids.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// Whether no id is mapped.
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// The offset of `id`.
    pub fn offset(&self, id: &PointId) -> Option<u32> {
        self.offsets.get(id).copied()
    }

    /// The id at `offset`.
    pub fn id(&self, offset: u32) -> Option<&PointId> {
        self.ids.get(offset as usize).and_then(Option::as_ref)
    }

    /// Checks that every id of a batch has this collection's kind (or, for the first batch, one
    /// common kind). Call before applying anything, so a refused batch changes nothing.
    pub fn check_batch<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a PointId>,
    ) -> Result<(), StorageError> {
        check_id_kinds(self.kind, ids).map(|_| ())
    }

    /// Maps `id` to `offset`; returns the offset it had before (now to be tombstoned). The batch
    /// must have passed [`IdMap::check_batch`].
    pub fn assign(&mut self, id: PointId, offset: u32) -> Option<u32> {
        debug_assert!(self.kind.is_none_or(|k| k == IdKind::of(&id)));
        self.kind.get_or_insert(IdKind::of(&id));
        let at = offset as usize;
        if self.ids.len() <= at {
            self.ids.resize(at + 1, None);
        }
        let previous = self.offsets.insert(id.clone(), offset);
        if let Some(old) = previous {
            self.ids[old as usize] = None;
        }
        self.ids[at] = Some(id);
        previous
    }

    /// Unmaps `id`; returns its offset.
    pub fn remove(&mut self, id: &PointId) -> Option<u32> {
        let offset = self.offsets.remove(id)?;
        self.ids[offset as usize] = None;
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
        assert_eq!((m.offset(&a), m.id(0), m.id(2)), (Some(2), None, Some(&a)));
        assert_eq!(m.remove(&a), Some(2));
        assert_eq!((m.offset(&a), m.id(2), m.len()), (None, None, 1));
        assert_eq!(m.kind(), Some(IdKind::Str));
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
