//! [`ExtractError`]: why a file (or one record of it) gave no text.
//!
//! Every variant names what a person can check: the part of an archive, the line of a CSV file,
//! the byte where a message starts. Parser errors stay as `#[source]`s (boxed, so the public
//! type does not depend on the zip, XML, CSV or PDF crate's version).

use super::Format;

/// An error from a parser, kept as the source of an [`ExtractError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a file, or one record of it, gave no text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExtractError {
    /// The crate was built without the `pdf` feature.
    #[error("PDF support is not built in (the `pdf` feature of sextant-text)")]
    PdfUnsupported,
    /// Not a PDF the parser can read: damaged, truncated or not a PDF at all.
    #[error("cannot parse the PDF")]
    PdfUnreadable(#[source] BoxError),
    /// Encrypted, and the empty user password does not open it.
    #[error("the PDF is encrypted (a password is needed to read it)")]
    PdfEncrypted,
    /// The parser failed on every page.
    #[error("the PDF parser could not read any of its {pages} page(s): {reason}")]
    PdfParserFailed {
        /// Pages in the document.
        pages: usize,
        /// Why the first page failed.
        reason: String,
    },
    /// The pages hold no text: a scan, images only, or text drawn as outlines.
    #[error("the PDF has no text on its {pages} page(s) (scanned or image-only?)")]
    PdfNoText {
        /// Pages in the document.
        pages: usize,
    },
    /// A DOCX or EPUB file that is not a zip archive, or a damaged one (truncated, a bad
    /// checksum, a part that does not inflate).
    #[error("cannot read the {format} file as a zip archive")]
    Archive {
        /// The format it was read as.
        format: Format,
        /// The zip reader's error.
        #[source]
        source: BoxError,
    },
    /// A part the format cannot do without is not in the archive (`word/document.xml`,
    /// `META-INF/container.xml`, the EPUB's package document).
    #[error("the {format} file has no {part}")]
    MissingPart {
        /// The format it was read as.
        format: Format,
        /// The part's path in the archive.
        part: String,
    },
    /// A part of an archive is not well-formed XML.
    #[error(
        "{part} in the {format} file is not well-formed XML (near byte {position} of the part)"
    )]
    Xml {
        /// The format it was read as.
        format: Format,
        /// The part's path in the archive.
        part: String,
        /// Byte offset in the (inflated) part where the parser stopped.
        position: u64,
        /// The XML parser's error.
        #[source]
        source: BoxError,
    },
    /// A part inflates to more than [`MAX_PART_BYTES`](super::MAX_PART_BYTES) (a zip bomb, or
    /// a document far larger than any text a person wrote).
    #[error("{part} in the {format} file is larger than {limit} bytes uncompressed")]
    PartTooLarge {
        /// The format it was read as.
        format: Format,
        /// The part's path in the archive.
        part: String,
        /// The limit, in bytes.
        limit: u64,
    },
    /// Password-protected: an encrypted Office package (an OLE2 compound file holding an
    /// `EncryptedPackage` stream), zip entries encrypted with a password, or an EPUB whose
    /// chapters are listed in `META-INF/encryption.xml` (DRM).
    #[error("the {format} file is encrypted (a password or DRM key is needed to read it)")]
    Encrypted {
        /// The format it was read as.
        format: Format,
    },
    /// An OLE2 compound file that is not an encrypted package: a legacy binary Office document
    /// (`.doc`, `.xls`, `.ppt`) renamed or detected as DOCX.
    #[error("not a {format} file but an OLE2 compound file (a legacy .doc, .xls or .ppt?)")]
    LegacyOffice {
        /// The format it was read as.
        format: Format,
    },
    /// An EPUB whose spine (reading order) lists no XHTML document.
    #[error("the EPUB's spine lists no XHTML document to read")]
    EpubEmptySpine,
    /// A CSV row with another number of fields than the header (or than the first row, for a
    /// file without a header).
    #[error("CSV line {line}: {found} field(s), but the header has {expected}")]
    CsvRagged {
        /// Line (from 1) where the row starts.
        line: u64,
        /// Fields in the header.
        expected: usize,
        /// Fields in this row.
        found: usize,
    },
    /// A CSV row that is not valid UTF-8.
    #[error("CSV line {line}, field {field}: not valid UTF-8")]
    CsvUtf8 {
        /// Line (from 1) of the first invalid byte.
        line: u64,
        /// Field (from 1) holding it.
        field: usize,
    },
    /// A column named in [`CsvOptions`](super::CsvOptions) that the file does not have.
    #[error("the CSV file has no column {name:?} (its columns: {})", columns.join(", "))]
    CsvUnknownColumn {
        /// The name (or 1-based number) asked for.
        name: String,
        /// The file's column names.
        columns: Vec<String>,
    },
    /// A row whose id column is empty.
    #[error("CSV line {line}: the id column is empty")]
    CsvEmptyId {
        /// Line (from 1) where the row starts.
        line: u64,
    },
    /// A row whose id an earlier row already had (ids become document ids, so they must be
    /// unique within the file).
    #[error("CSV line {line}: id {id:?} is used by an earlier row")]
    CsvDuplicateId {
        /// Line (from 1) where the row starts.
        line: u64,
        /// The id.
        id: String,
    },
    /// Any other CSV syntax error.
    #[error("CSV line {line}: cannot read the row")]
    Csv {
        /// Line (from 1) where the row starts.
        line: u64,
        /// The CSV reader's error.
        #[source]
        source: BoxError,
    },
    /// No e-mail message where one should start: no RFC 5322 header fields.
    #[error("no e-mail message at byte {offset} (it does not start with header fields)")]
    NotEmail {
        /// Byte offset in the file where the message should start.
        offset: usize,
    },
    /// A format that holds many documents (CSV, mbox) given to a function that returns one.
    #[error("a {format} file holds many documents: read it with `extract::records`")]
    ManyRecords {
        /// The format.
        format: Format,
    },
}
