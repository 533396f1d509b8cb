//! [`Slab`]: an array that is either owned or a read-only view of bytes that outlive it (a
//! memory-mapped index file), so that a loaded index can use its arrays in place.

use bytemuck::Pod;

use super::SharedBytes;

/// An array of plain values: owned (and growable), or a view of a range of shared bytes
/// that is copied into memory the first time it is changed.
pub(crate) enum Slab<T: Pod> {
    Owned(Vec<T>),
    Mapped(View<T>),
}

pub(crate) struct View<T> {
    /// Keeps the bytes `ptr` points into alive (and unchanged: they are never written).
    _owner: SharedBytes,
    ptr: *const T,
    len: usize,
}

// SAFETY: `ptr` points into `_owner`'s bytes, which are immutable and live as long as the `Arc`;
// a read-only view is as safe to send and share between threads as `&[T]` with `T: Pod`.
unsafe impl<T: Pod> Send for View<T> {}
// SAFETY: as above; the view is never written through.
unsafe impl<T: Pod> Sync for View<T> {}

impl<T: Pod> Clone for Slab<T> {
    fn clone(&self) -> Self {
        match self {
            Slab::Owned(v) => Slab::Owned(v.clone()),
            Slab::Mapped(m) => Slab::Mapped(View {
                _owner: m._owner.clone(),
                ptr: m.ptr,
                len: m.len,
            }),
        }
    }
}

impl<T: Pod> Default for Slab<T> {
    fn default() -> Self {
        Slab::Owned(Vec::new())
    }
}

impl<T: Pod> std::fmt::Debug for Slab<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Slab::Owned(v) => write!(f, "Slab::Owned({} items)", v.len()),
            Slab::Mapped(m) => write!(f, "Slab::Mapped({} items)", m.len),
        }
    }
}

impl<T: Pod> From<Vec<T>> for Slab<T> {
    fn from(v: Vec<T>) -> Self {
        Slab::Owned(v)
    }
}

impl<T: Pod> Slab<T> {
    /// A view of `bytes`, which must lie inside `owner`'s bytes, when they are aligned for `T`
    /// and a whole number of `T`s on a little-endian machine; otherwise a copy.
    pub(crate) fn of(owner: Option<&SharedBytes>, bytes: &[u8]) -> Self {
        let size = std::mem::size_of::<T>();
        debug_assert!(bytes.len().is_multiple_of(size));
        if let Some(owner) = owner {
            let whole: &[u8] = (**owner).as_ref();
            let inside = whole.as_ptr_range().start <= bytes.as_ptr_range().start
                && bytes.as_ptr_range().end <= whole.as_ptr_range().end;
            let aligned = (bytes.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>());
            if inside && aligned && cfg!(target_endian = "little") {
                return Slab::Mapped(View {
                    _owner: owner.clone(),
                    ptr: bytes.as_ptr().cast(),
                    len: bytes.len() / size,
                });
            }
        }
        let n = bytes.len() / size;
        // A copy is walked at random like the arrays a build makes: huge pages where granted.
        let mut copy = Vec::with_capacity(n);
        super::advise_huge_pages(&copy);
        copy.resize(n, T::zeroed());
        bytemuck::cast_slice_mut::<T, u8>(&mut copy).copy_from_slice(&bytes[..n * size]);
        Slab::Owned(copy)
    }

    #[inline(always)]
    pub(crate) fn as_slice(&self) -> &[T] {
        match self {
            Slab::Owned(v) => v,
            // SAFETY: `ptr`/`len` were taken from an aligned, in-bounds range of the owner's
            // bytes (`Slab::of`), any bit pattern is a valid `T` (`Pod`), and the owner is kept
            // alive and unmodified by the `Arc` this value holds.
            Slab::Mapped(m) => unsafe { std::slice::from_raw_parts(m.ptr, m.len) },
        }
    }

    /// The owned array, copying a view into memory first (a view that is changed stops being
    /// one).
    pub(crate) fn owned(&mut self) -> &mut Vec<T> {
        if let Slab::Mapped(_) = self {
            *self = Slab::Owned(self.as_slice().to_vec());
        }
        match self {
            Slab::Owned(v) => v,
            Slab::Mapped(_) => unreachable!("converted above"),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub(crate) fn is_mapped(&self) -> bool {
        matches!(self, Slab::Mapped(_))
    }

    /// Heap bytes held (a view holds none: its pages belong to the page cache).
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Slab::Owned(v) => v.capacity() * std::mem::size_of::<T>(),
            Slab::Mapped(_) => 0,
        }
    }

    /// Bytes used in place from shared bytes.
    pub(crate) fn mapped_bytes(&self) -> usize {
        match self {
            Slab::Owned(_) => 0,
            Slab::Mapped(m) => m.len * std::mem::size_of::<T>(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[repr(C, align(64))]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct Aligned([u8; 256]);

    fn shared(bytes: &[u8]) -> SharedBytes {
        // A 64-byte aligned buffer holding `bytes`.
        let mut a = Aligned([0; 256]);
        a.0[..bytes.len()].copy_from_slice(bytes);
        struct Owner(Aligned, usize);
        impl AsRef<[u8]> for Owner {
            fn as_ref(&self) -> &[u8] {
                &self.0 .0[..self.1]
            }
        }
        Arc::new(Owner(a, bytes.len()))
    }

    #[test]
    fn aligned_ranges_are_views_and_the_rest_copies() {
        let data: Vec<u8> = (0..64u8).collect();
        let owner = shared(&data);
        let whole: &[u8] = (*owner).as_ref();
        let view: Slab<u32> = Slab::of(Some(&owner), &whole[8..24]);
        assert!(view.is_mapped());
        assert_eq!(view.mapped_bytes(), 16);
        assert_eq!(view.heap_bytes(), 0);
        assert_eq!(view.as_slice()[0], u32::from_le_bytes([8, 9, 10, 11]));
        // Misaligned for u64: copied, same values.
        let copy: Slab<u64> = Slab::of(Some(&owner), &whole[4..20]);
        assert!(!copy.is_mapped());
        assert_eq!(
            copy.as_slice()[0],
            u64::from_le_bytes(data[4..12].try_into().unwrap())
        );
        // Bytes outside the owner are copied, never viewed.
        let elsewhere = data.clone();
        let copy: Slab<u8> = Slab::of(Some(&owner), &elsewhere[..8]);
        assert!(!copy.is_mapped());
        // Changing a view copies it first.
        let mut view = view;
        view.owned().push(7);
        assert!(!view.is_mapped());
        assert_eq!(view.len(), 5);
        assert_eq!(view.as_slice()[4], 7);
    }
}
