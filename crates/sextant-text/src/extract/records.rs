//! Files that hold many documents (CSV rows, mbox messages) as a stream of [`Record`]s, and
//! every other format as a stream of one, so an ingester can read any file the same way.

use std::fmt;
use std::ops::Range;

use super::delimited::{CsvOptions, CsvRecords};
use super::email::MboxRecords;
use super::{extract_bytes, ExtractError, Extracted, Format};

/// One document of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Unique within the file, stable when rows or messages are appended: a CSV row's id
    /// column value or row number(s) (`"7"`, `"1-10"`); an mbox message's Message-ID (else
    /// `"message-N"`); an `.eml` file's Message-ID (else `""`); `""` for the other formats
    /// (the file is the document). A document id is the file's id plus `#` and this key.
    pub key: String,
    /// Its bytes in the file: `&file[range]` is the record (a CSV row without its line break,
    /// a message without its mbox envelope line; the whole file for single-document formats).
    pub range: Range<usize>,
    /// Its text, title, payload and map (whose source offsets are offsets of the whole file,
    /// not of `range`).
    pub extracted: Extracted,
}

/// How to read records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordOptions {
    /// CSV and TSV files.
    pub csv: CsvOptions,
}

/// The records of a file, read lazily: [`records`] returns it. A record that cannot be read
/// (a ragged CSV row, a message without headers) is an `Err` item and the next one follows.
pub struct Records<'a> {
    inner: Inner<'a>,
}

enum Inner<'a> {
    Csv(Box<CsvRecords<'a>>),
    Mbox(MboxRecords<'a>),
    One(Option<Record>),
}

impl fmt::Debug for Records<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            Inner::Csv(c) => f.debug_tuple("Records::Csv").field(c).finish(),
            Inner::Mbox(m) => f.debug_tuple("Records::Mbox").field(m).finish(),
            Inner::One(r) => f.debug_tuple("Records::One").field(&r.is_some()).finish(),
        }
    }
}

impl Iterator for Records<'_> {
    type Item = Result<Record, ExtractError>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.inner {
            Inner::Csv(c) => c.next(),
            Inner::Mbox(m) => m.next(),
            Inner::One(r) => r.take().map(Ok),
        }
    }
}

/// The records of a file's bytes read as `format`: a CSV file's rows (or groups of rows,
/// [`CsvOptions`]), an mbox's messages, and for every other format the file as one record
/// (the [`extract_bytes`] of it). Fails at once when the file as a whole cannot be read (a CSV
/// option names a column the header lacks, a DOCX that is not a zip archive, …).
///
/// ```
/// use sextant_text::extract::{records, Format, RecordOptions};
///
/// let csv = b"id,name,year\r\nq1,Ada Lovelace,1815\r\nq2,\"Turing, Alan\",1912\r\n";
/// let mut options = RecordOptions::default();
/// options.csv.id_column = Some("id".into());
/// let rows: Vec<_> = records(Format::Csv, csv, &options)
///     .unwrap()
///     .collect::<Result<_, _>>()
///     .unwrap();
/// assert_eq!(rows[1].key, "q2");
/// assert_eq!(rows[1].extracted.text, "id: q2\nname: Turing, Alan\nyear: 1912");
/// assert_eq!(rows[1].extracted.payload["year"], 1912);
/// assert_eq!(&csv[rows[1].range.clone()], b"q2,\"Turing, Alan\",1912");
/// ```
pub fn records<'a>(
    format: Format,
    bytes: &'a [u8],
    options: &RecordOptions,
) -> Result<Records<'a>, ExtractError> {
    let inner = match format {
        Format::Csv => Inner::Csv(Box::new(CsvRecords::new(bytes, &options.csv)?)),
        Format::Mbox => Inner::Mbox(MboxRecords::new(bytes)),
        Format::Text
        | Format::Markdown
        | Format::Html
        | Format::Pdf
        | Format::Docx
        | Format::Epub
        | Format::Email
        | Format::Code => {
            let extracted = extract_bytes(format, bytes)?;
            let key = extracted
                .payload
                .get("message_id")
                .and_then(|v| v.as_str())
                .filter(|_| format == Format::Email)
                .unwrap_or_default()
                .to_string();
            Inner::One(Some(Record {
                key,
                range: 0..bytes.len(),
                extracted,
            }))
        }
    };
    Ok(Records { inner })
}

/// All the records of a file ([`records`], collected), failing at the first one that cannot
/// be read.
pub fn extract_records(
    format: Format,
    bytes: &[u8],
    options: &RecordOptions,
) -> Result<Vec<Record>, ExtractError> {
    records(format, bytes, options)?.collect()
}
