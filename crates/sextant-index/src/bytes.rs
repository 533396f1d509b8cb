//! Little-endian byte encoding shared by the index file formats.
//!
//! Every format is `magic (8 bytes) | version (u32) | body | crc32 of everything before (u32)`.
//! The checksum is verified before any field is trusted, and every read is bounds-checked, so a
//! truncated or corrupt buffer becomes an error rather than a panic or a wild allocation.

use crate::IndexError;

/// The bit of the version word that marks an index file whose f32 vectors are stored apart
/// (in a vectors file, see [`crate::DenseVectors::to_file_bytes`]) instead of inline.
pub(crate) const EXTERNAL_VECTORS: u32 = 1 << 31;

pub(crate) struct Writer {
    buf: Vec<u8>,
    /// Whether the f32 vectors are left out (the caller stores them in a vectors file).
    pub(crate) external_vectors: bool,
}

impl Writer {
    pub(crate) fn new(magic: &[u8; 8], version: u32, capacity: usize) -> Self {
        let mut buf = Vec::with_capacity(capacity + 16);
        buf.extend_from_slice(magic);
        buf.extend_from_slice(&version.to_le_bytes());
        Writer {
            buf,
            external_vectors: false,
        }
    }

    /// Leaves the f32 vectors out of the file and marks its version word so.
    pub(crate) fn external(mut self, external: bool) -> Self {
        if external {
            self.external_vectors = true;
            self.buf[8..12]
                .iter_mut()
                .zip(EXTERNAL_VECTORS.to_le_bytes())
                .for_each(|(b, m)| *b |= m);
        }
        self
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub(crate) fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    pub(crate) fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
    }

    pub(crate) fn u32s(&mut self, v: impl IntoIterator<Item = u32>) {
        for x in v {
            self.u32(x);
        }
    }

    pub(crate) fn f32s(&mut self, v: &[f32]) {
        for x in v {
            self.buf.extend_from_slice(&x.to_le_bytes());
        }
    }

    /// Pads with zeros to a multiple of `to` bytes from the start of the file, so that the
    /// array written next lies aligned in a page-aligned mapping of the file.
    pub(crate) fn align(&mut self, to: usize) {
        let padded = self.buf.len().next_multiple_of(to);
        self.buf.resize(padded, 0);
    }

    pub(crate) fn finish(mut self) -> Vec<u8> {
        let crc = crc32fast::hash(&self.buf);
        self.buf.extend_from_slice(&crc.to_le_bytes());
        self.buf
    }
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Whether the file leaves its vectors out (they come from [`Reader::vectors`]).
    pub(crate) external_vectors: bool,
    /// The vectors of a file that stores them apart, handed over by the caller.
    pub(crate) vectors: Option<crate::DenseVectors>,
}

impl<'a> Reader<'a> {
    /// Checks magic, checksum and version, and returns a reader positioned after the version.
    pub(crate) fn open(
        bytes: &'a [u8],
        magic: &[u8; 8],
        what: &str,
        version: u32,
    ) -> Result<Self, IndexError> {
        Self::open_versions(bytes, magic, what, version..=version).map(|(r, _)| r)
    }

    /// Like [`Reader::open`] for a format that reads every version in `versions`; returns the
    /// file's version too.
    pub(crate) fn open_versions(
        bytes: &'a [u8],
        magic: &[u8; 8],
        what: &str,
        versions: std::ops::RangeInclusive<u32>,
    ) -> Result<(Self, u32), IndexError> {
        if bytes.len() < 16 {
            return Err(IndexError::Corrupt(format!(
                "{what}: {} bytes is too short",
                bytes.len()
            )));
        }
        if &bytes[..8] != magic {
            return Err(IndexError::Corrupt(format!("{what}: wrong magic number")));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        let stored = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
        if crc32fast::hash(body) != stored {
            return Err(IndexError::Corrupt(format!("{what}: checksum mismatch")));
        }
        let mut r = Reader {
            buf: body,
            pos: 8,
            external_vectors: false,
            vectors: None,
        };
        let mut found = r.u32()?;
        if found & EXTERNAL_VECTORS != 0 {
            r.external_vectors = true;
            found &= !EXTERNAL_VECTORS;
        }
        if !versions.contains(&found) {
            return Err(IndexError::UnsupportedVersion {
                found,
                supported: *versions.end(),
            });
        }
        Ok((r, found))
    }

    /// Hands over the vectors of a file that stores them apart.
    pub(crate) fn with_vectors(mut self, vectors: Option<crate::DenseVectors>) -> Self {
        self.vectors = vectors;
        self
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], IndexError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| {
                IndexError::Corrupt(format!("truncated: need {n} bytes at offset {}", self.pos))
            })?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, IndexError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u32(&mut self) -> Result<u32, IndexError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, IndexError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], IndexError> {
        self.take(n)
    }

    /// Skips the padding [`Writer::align`] wrote.
    pub(crate) fn align(&mut self, to: usize) -> Result<(), IndexError> {
        let padded = self.pos.next_multiple_of(to);
        self.take(padded - self.pos).map(|_| ())
    }

    /// `n` items of `size` bytes, checked for overflow and truncation.
    pub(crate) fn array(&mut self, n: usize, size: usize) -> Result<&'a [u8], IndexError> {
        self.take(n.checked_mul(size).ok_or_else(|| overflow(n))?)
    }

    pub(crate) fn u32s(&mut self, n: usize) -> Result<impl Iterator<Item = u32> + 'a, IndexError> {
        let bytes = self.take(n.checked_mul(4).ok_or_else(|| overflow(n))?)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))))
    }

    pub(crate) fn f32s(&mut self, n: usize) -> Result<impl Iterator<Item = f32> + 'a, IndexError> {
        let bytes = self.take(n.checked_mul(4).ok_or_else(|| overflow(n))?)?;
        Ok(bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))))
    }

    /// Fails unless every byte has been consumed.
    pub(crate) fn finish(self) -> Result<(), IndexError> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(IndexError::Corrupt(format!(
                "{} trailing bytes",
                self.buf.len() - self.pos
            )))
        }
    }
}

fn overflow(n: usize) -> IndexError {
    IndexError::Corrupt(format!("length {n} overflows"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_corruption_detection() {
        let mut w = Writer::new(b"TESTMAG\0", 3, 0);
        w.u32(7);
        w.f32s(&[1.5, -2.0]);
        let bytes = w.finish();
        let mut r = Reader::open(&bytes, b"TESTMAG\0", "test", 3).unwrap();
        assert_eq!(r.u32().unwrap(), 7);
        assert_eq!(r.f32s(2).unwrap().collect::<Vec<_>>(), vec![1.5, -2.0]);
        r.finish().unwrap();

        let mut flipped = bytes.clone();
        flipped[13] ^= 1;
        assert!(Reader::open(&flipped, b"TESTMAG\0", "test", 3).is_err());
        assert!(matches!(
            Reader::open(&bytes, b"TESTMAG\0", "test", 4),
            Err(IndexError::UnsupportedVersion {
                found: 3,
                supported: 4
            })
        ));
        assert!(Reader::open(&bytes[..10], b"TESTMAG\0", "test", 3).is_err());
        let mut r = Reader::open(&bytes, b"TESTMAG\0", "test", 3).unwrap();
        assert!(r.f32s(100).is_err());
    }
}
