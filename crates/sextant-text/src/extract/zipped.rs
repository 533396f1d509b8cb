//! What DOCX and EPUB share: a zip archive of XML parts. Opening one (telling an encrypted
//! Office file or a legacy `.doc` from a damaged zip), reading a part with a size limit (a zip
//! bomb stops at [`MAX_PART_BYTES`]), and the few XML helpers both readers need on top of
//! quick-xml's pull parser.

use std::borrow::Cow;
use std::io::{Cursor, Read};

use quick_xml::events::{BytesRef, BytesStart};
use quick_xml::{Reader, XmlVersion};
use zip::result::ZipError;
use zip::ZipArchive;

use super::{ExtractError, Format};

/// The largest part read from an archive, inflated (a 300-page novel's XHTML is about 1 MB, a
/// long report's `word/document.xml` a few MB; past this, the archive is a zip bomb).
pub const MAX_PART_BYTES: u64 = 256 << 20;

/// At most this much is allocated for a part before its bytes arrive.
const INITIAL_CAPACITY: u64 = 8 << 20;
/// The zip local-file-header signature every archive starts with.
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
/// The signature of an OLE2 compound file (legacy Office documents, and encrypted OOXML).
const CFB_MAGIC: &[u8] = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1";
/// How far from its end [`sniff`] looks for a DOCX's central-directory entry.
const CENTRAL_DIRECTORY_SCAN: usize = 1 << 20;

/// An open archive and the format it is read as (for errors).
pub(super) struct Archive<'a> {
    zip: ZipArchive<Cursor<&'a [u8]>>,
    format: Format,
}

impl<'a> Archive<'a> {
    /// Opens `bytes` as the zip archive of a `format` document.
    pub fn open(format: Format, bytes: &'a [u8]) -> Result<Self, ExtractError> {
        if bytes.starts_with(CFB_MAGIC) {
            // An encrypted OOXML package is a compound file with an `EncryptedPackage` stream
            // (MS-OFFCRYPTO 2.3.4.4); its directory entry names are UTF-16LE.
            let name: Vec<u8> = "EncryptedPackage"
                .encode_utf16()
                .flat_map(u16::to_le_bytes)
                .collect();
            return Err(if find(bytes, &name).is_some() {
                ExtractError::Encrypted { format }
            } else {
                ExtractError::LegacyOffice { format }
            });
        }
        let zip = ZipArchive::new(Cursor::new(bytes)).map_err(|e| ExtractError::Archive {
            format,
            source: Box::new(e),
        })?;
        Ok(Archive { zip, format })
    }

    /// The archive's entry names, in central-directory order.
    pub fn names(&self) -> Vec<String> {
        self.zip
            .file_names()
            .filter_map(Result::ok)
            .map(Cow::into_owned)
            .collect()
    }

    /// The part at `name` as text (UTF-8, a byte-order mark dropped, invalid bytes as U+FFFD),
    /// or `None` when the archive has no such part. A name that differs only in case is taken
    /// when there is no exact match (some EPUB writers get the case of their links wrong).
    pub fn read(&mut self, name: &str) -> Result<Option<String>, ExtractError> {
        let Some(bytes) = self.read_bytes(name)? else {
            return Ok(None);
        };
        let text = match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        Ok(Some(match text.strip_prefix('\u{feff}') {
            Some(rest) => rest.to_string(),
            None => text,
        }))
    }

    /// The part at `name`, which the format cannot do without.
    pub fn require(&mut self, name: &str) -> Result<String, ExtractError> {
        self.read(name)?.ok_or_else(|| ExtractError::MissingPart {
            format: self.format,
            part: name.to_string(),
        })
    }

    fn read_bytes(&mut self, name: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        let format = self.format;
        let name = if self.zip.index_for_name(name).is_some() {
            name.to_string()
        } else {
            match self
                .names()
                .into_iter()
                .find(|n| n.eq_ignore_ascii_case(name))
            {
                Some(n) => n,
                None => return Ok(None),
            }
        };
        let archive_error = |e: ZipError| match e {
            ZipError::UnsupportedArchive(ZipError::PASSWORD_REQUIRED)
            | ZipError::InvalidPassword => ExtractError::Encrypted { format },
            e => ExtractError::Archive {
                format,
                source: Box::new(e),
            },
        };
        let file = self.zip.by_name(&name).map_err(archive_error)?;
        // The declared size is only a hint: a forged one must not allocate much up front.
        let mut out = Vec::with_capacity(file.size().min(INITIAL_CAPACITY) as usize);
        file.take(MAX_PART_BYTES + 1)
            .read_to_end(&mut out)
            .map_err(|e| ExtractError::Archive {
                format,
                source: Box::new(e),
            })?;
        if out.len() as u64 > MAX_PART_BYTES {
            return Err(ExtractError::PartTooLarge {
                format,
                part: name,
                limit: MAX_PART_BYTES,
            });
        }
        Ok(Some(out))
    }

    /// An XML error in part `part`, at the reader's position.
    pub fn xml_error(
        &self,
        part: &str,
        reader: &Reader<&[u8]>,
        e: quick_xml::Error,
    ) -> ExtractError {
        ExtractError::Xml {
            format: self.format,
            part: part.to_string(),
            position: reader.error_position(),
            source: Box::new(e),
        }
    }
}

/// DOCX or EPUB by content: see [`Format::sniff_bytes`].
pub(super) fn sniff(bytes: &[u8]) -> Option<Format> {
    if bytes.starts_with(CFB_MAGIC) {
        return Some(Format::Docx);
    }
    if !bytes.starts_with(ZIP_MAGIC) {
        return None;
    }
    // OCF 3.3: the first entry is `mimetype`, stored, without an extra field, so its content
    // follows its 30-byte local header and 8-byte name.
    let name_len = bytes.get(26..28).map(|b| u16::from_le_bytes([b[0], b[1]]));
    if name_len == Some(8) && bytes.get(30..38) == Some(b"mimetype") {
        let content = &bytes[38.min(bytes.len())..bytes.len().min(38 + 64)];
        if content.starts_with(b"application/epub+zip") {
            return Some(Format::Epub);
        }
    }
    let tail = &bytes[bytes.len().saturating_sub(CENTRAL_DIRECTORY_SCAN)..];
    find(tail, b"word/document.xml").map(|_| Format::Docx)
}

/// The first position of `needle` in `haystack`.
pub(super) fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    let first = needle[0];
    let mut i = 0;
    while i + needle.len() <= haystack.len() {
        match haystack[i..=haystack.len() - needle.len()]
            .iter()
            .position(|&b| b == first)
        {
            None => return None,
            Some(p) => {
                i += p;
                if haystack[i..].starts_with(needle) {
                    return Some(i);
                }
                i += 1;
            }
        }
    }
    None
}

/// An XML reader over a part's text.
pub(super) fn reader(xml: &str) -> Reader<&[u8]> {
    Reader::from_str(xml)
}

/// The value of the attribute whose local name is `local` (`w:val` → `val`), unescaped.
pub(super) fn attr(e: &BytesStart<'_>, local: &str) -> Option<String> {
    e.attributes().flatten().find_map(|a| {
        (a.key.local_name().as_ref() == local).then(|| {
            a.normalized_value(XmlVersion::Implicit1_0)
                .map(Cow::into_owned)
                .unwrap_or_else(|_| a.value.to_string())
        })
    })
}

/// The text a general reference stands for: a character reference, or one of XML's five
/// predefined entities (anything else, which a DTD would have to define, stays as written).
pub(super) fn reference(r: &BytesRef<'_>) -> String {
    if let Ok(Some(c)) = r.resolve_char_ref() {
        return c.to_string();
    }
    match &**r {
        "amp" => "&".into(),
        "lt" => "<".into(),
        "gt" => ">".into(),
        "quot" => "\"".into(),
        "apos" => "'".into(),
        other => format!("&{other};"),
    }
}

/// `name`'s local part (`w:p` → `p`).
pub(super) fn local(name: &str) -> &str {
    name.rsplit_once(':').map_or(name, |(_, l)| l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_and_sniff() {
        assert_eq!(find(b"abcabd", b"abd"), Some(3));
        assert_eq!(find(b"ab", b"abc"), None);
        assert_eq!(find(b"", b"a"), None);
        assert_eq!(sniff(b"PK\x03\x04"), None);
        assert_eq!(sniff(b"%PDF"), None);
        assert_eq!(sniff(CFB_MAGIC), Some(Format::Docx));
        assert!(matches!(
            Archive::open(Format::Docx, CFB_MAGIC),
            Err(ExtractError::LegacyOffice { .. })
        ));
        assert!(matches!(
            Archive::open(Format::Epub, b"PK\x03\x04 truncated"),
            Err(ExtractError::Archive { .. })
        ));
        assert_eq!(local("w:p"), "p");
        assert_eq!(local("p"), "p");
    }
}
