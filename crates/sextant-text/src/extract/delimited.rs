//! CSV and TSV files → one [`Record`] per row, or per group of rows.
//!
//! Parsing is the `csv` crate's (RFC 4180: quoted fields with doubled quotes, fields spanning
//! lines, `\n` or `\r\n` endings); a UTF-8 byte-order mark is skipped. The delimiter is
//! [`CsvOptions::delimiter`], else sniffed from the first line: whichever of `,`, tab, `;` and
//! `|` occurs most often outside quotes (`,` when none does), so `.tsv` files need no option.
//!
//! Each record's text is, by default, every non-empty column as a `name: value` line (so a
//! row reads as a small card and the embedding sees what each value means); with
//! [`CsvOptions::text_columns`], those columns' values in file order, separated by blank lines.
//! The payload holds every column that is not a text column (so, by default, all of them):
//! numbers written plainly (`42`, `-1.5`, `2e3`; not `007` or `1,000`) as JSON numbers, other
//! values as strings, empty cells left out. A group of rows
//! ([`CsvOptions::rows_per_record`] > 1) joins its rows' texts by blank lines and holds each
//! payload column as an array of the rows' values (`null` for an empty cell).
//!
//! Keys: the [`CsvOptions::id_column`]'s value (of a group's first row), which must be
//! non-empty and unique in the file; else the data row number from 1 (`"7"`), or the first and
//! last for a group (`"1-10"`). The map's source offsets and the record's range are byte
//! offsets of the file: slicing the file at a record's range gives its rows (without the last
//! line break). A value copied as it is maps byte for byte; a quoted value with doubled quotes
//! maps as a whole.
//!
//! Errors name the line: a row with a different number of fields than the header
//! ([`ExtractError::CsvRagged`]), bytes that are not UTF-8 ([`ExtractError::CsvUtf8`]), an
//! empty or repeated id. The iterator yields the error and goes on with the next row.

use std::collections::HashSet;
use std::ops::Range;

use serde_json::{Map, Number, Value};

use super::mapped::MappedText;
use super::{ExtractError, Extracted, Record};

/// Rows per record by default.
pub const DEFAULT_ROWS_PER_RECORD: usize = 1;
/// Delimiters the sniffer chooses from, the first winning ties.
const DELIMITERS: &[u8] = b",\t;|";
/// How much of the first line the sniffer reads.
const SNIFF_LINE: usize = 64 << 10;
/// UTF-8 byte-order mark.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// How to cut a CSV file into records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// The field delimiter; `None` (default): sniffed from the first line.
    pub delimiter: Option<u8>,
    /// Whether the first row names the columns (default). Without a header the columns are
    /// `column1`, `column2`, … and the first row is data.
    pub has_header: bool,
    /// Columns (names, or numbers from 1) whose values are the text, in file order separated
    /// by blank lines; empty (default): every column as a `name: value` line.
    pub text_columns: Vec<String>,
    /// A column whose value is the record's title.
    pub title_column: Option<String>,
    /// A column whose value is the record's key (non-empty and unique in the file); `None`:
    /// row numbers.
    pub id_column: Option<String>,
    /// Rows per record (at least 1; [`DEFAULT_ROWS_PER_RECORD`]): small rows make better
    /// passages in groups.
    pub rows_per_record: usize,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            delimiter: None,
            has_header: true,
            text_columns: Vec::new(),
            title_column: None,
            id_column: None,
            rows_per_record: DEFAULT_ROWS_PER_RECORD,
        }
    }
}

/// One field of a row: its value and where it sits in the file.
#[derive(Debug)]
struct Field {
    value: String,
    /// Byte range of the value in the file (inside the quotes when quoted).
    span: Range<usize>,
    /// Whether `value` is exactly the file's bytes at `span`.
    verbatim: bool,
}

/// One row as read.
#[derive(Debug)]
struct Row {
    number: u64,
    line: u64,
    range: Range<usize>,
    fields: Vec<Field>,
}

/// The records of a CSV file, read lazily.
pub(super) struct CsvRecords<'a> {
    bytes: &'a [u8],
    base: usize,
    reader: csv::Reader<&'a [u8]>,
    delimiter: u8,
    record: csv::ByteRecord,
    columns: Vec<String>,
    text: Vec<usize>,
    title: Option<usize>,
    id: Option<usize>,
    per: usize,
    rows: u64,
    seen: HashSet<String>,
    /// A row read ahead (the first row of a file without a header).
    ahead: Option<Row>,
    group: Vec<Row>,
    done: bool,
}

impl std::fmt::Debug for CsvRecords<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvRecords")
            .field("columns", &self.columns)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl<'a> CsvRecords<'a> {
    /// Reads the header (or the first row) and checks the options against it.
    pub fn new(bytes: &'a [u8], options: &CsvOptions) -> Result<Self, ExtractError> {
        let base = if bytes.starts_with(BOM) { BOM.len() } else { 0 };
        let body = &bytes[base..];
        let delimiter = options.delimiter.unwrap_or_else(|| sniff_delimiter(body));
        let reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .has_headers(false)
            .flexible(true)
            .from_reader(body);
        let mut it = CsvRecords {
            bytes,
            base,
            reader,
            delimiter,
            record: csv::ByteRecord::new(),
            columns: Vec::new(),
            text: Vec::new(),
            title: None,
            id: None,
            per: options.rows_per_record.max(1),
            rows: 0,
            seen: HashSet::new(),
            ahead: None,
            group: Vec::new(),
            done: false,
        };
        let first = match it.read_row() {
            Some(row) => row?,
            None => {
                it.done = true;
                return Ok(it);
            }
        };
        if options.has_header {
            let mut names: Vec<String> = Vec::with_capacity(first.fields.len());
            for (i, f) in first.fields.iter().enumerate() {
                let mut name = f.value.trim().to_string();
                if name.is_empty() {
                    name = format!("column{}", i + 1);
                }
                if names.contains(&name) {
                    name = format!("{name}_{}", i + 1);
                }
                names.push(name);
            }
            it.columns = names;
            it.rows = 0;
        } else {
            it.columns = (1..=first.fields.len())
                .map(|i| format!("column{i}"))
                .collect();
            it.ahead = Some(first);
        }
        let mut text: Vec<usize> = options
            .text_columns
            .iter()
            .map(|c| it.column(c))
            .collect::<Result<_, _>>()?;
        text.sort_unstable();
        text.dedup();
        it.text = text;
        it.title = options
            .title_column
            .as_deref()
            .map(|c| it.column(c))
            .transpose()?;
        it.id = options
            .id_column
            .as_deref()
            .map(|c| it.column(c))
            .transpose()?;
        Ok(it)
    }

    /// The index of a column by name (exact, else ignoring case) or number from 1.
    fn column(&self, name: &str) -> Result<usize, ExtractError> {
        let found = self.columns.iter().position(|c| c == name).or_else(|| {
            self.columns
                .iter()
                .position(|c| c.eq_ignore_ascii_case(name))
        });
        found
            .or_else(|| {
                name.parse::<usize>()
                    .ok()
                    .filter(|&n| (1..=self.columns.len()).contains(&n))
                    .map(|n| n - 1)
            })
            .ok_or_else(|| ExtractError::CsvUnknownColumn {
                name: name.to_string(),
                columns: self.columns.clone(),
            })
    }

    /// The next row, checked for UTF-8 and (after the header) its number of fields.
    fn read_row(&mut self) -> Option<Result<Row, ExtractError>> {
        if let Some(row) = self.ahead.take() {
            return Some(Ok(row));
        }
        if self.done {
            return None;
        }
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => {
                self.done = true;
                None
            }
            Err(e) => {
                // The reader cannot go on after an error it reports (there are no I/O errors
                // on a slice, and rows of any length are accepted, so this is rare).
                self.done = true;
                let line = e.position().map_or(0, csv::Position::line);
                Some(Err(ExtractError::Csv {
                    line,
                    source: Box::new(e),
                }))
            }
            Ok(true) => Some(self.row()),
        }
    }

    fn row(&mut self) -> Result<Row, ExtractError> {
        self.rows += 1;
        let (mut start, mut line) = self
            .record
            .position()
            .map_or((0, 0), |p| (p.byte() as usize, p.line()));
        let mut end = (self.reader.position().byte() as usize).max(start);
        let body = &self.bytes[self.base..];
        // After a `\r\n` ending the reader's position is at the `\n`, which is not the row's.
        while start < end && matches!(body[start], b'\r' | b'\n') {
            line += u64::from(body[start] == b'\n');
            start += 1;
        }
        if body[start..end].ends_with(b"\n") {
            end -= 1;
        }
        if body[start..end].ends_with(b"\r") {
            end -= 1;
        }
        let raw = &body[start..end];
        let spans = split_spans(raw, self.delimiter);
        if let Err(e) = std::str::from_utf8(raw) {
            let at = e.valid_up_to();
            let newlines = raw[..at].iter().filter(|&&b| b == b'\n').count() as u64;
            let field = spans.iter().position(|s| s.end >= at).map_or(1, |i| i + 1);
            return Err(ExtractError::CsvUtf8 {
                line: line + newlines,
                field,
            });
        }
        if !self.columns.is_empty() && self.record.len() != self.columns.len() {
            return Err(ExtractError::CsvRagged {
                line,
                expected: self.columns.len(),
                found: self.record.len(),
            });
        }
        let abs = self.base + start;
        let fields = self
            .record
            .iter()
            .enumerate()
            .map(|(i, value)| {
                let value = String::from_utf8_lossy(value).into_owned();
                match spans.get(i).filter(|_| spans.len() == self.record.len()) {
                    Some(s) => {
                        let verbatim = raw.get(s.clone()) == Some(value.as_bytes());
                        Field {
                            value,
                            span: abs + s.start..abs + s.end,
                            verbatim,
                        }
                    }
                    None => Field {
                        value,
                        span: abs..abs + raw.len(),
                        verbatim: false,
                    },
                }
            })
            .collect();
        Ok(Row {
            number: self.rows,
            line,
            range: abs..abs + raw.len(),
            fields,
        })
    }

    /// The record of the rows in `self.group`.
    fn record(&mut self) -> Result<Record, ExtractError> {
        let rows = std::mem::take(&mut self.group);
        let first = &rows[0];
        let key = match self.id {
            Some(c) => {
                let id = first.fields[c].value.trim().to_string();
                if id.is_empty() {
                    return Err(ExtractError::CsvEmptyId { line: first.line });
                }
                if !self.seen.insert(id.clone()) {
                    return Err(ExtractError::CsvDuplicateId {
                        line: first.line,
                        id,
                    });
                }
                id
            }
            None if rows.len() == 1 => first.number.to_string(),
            None => format!("{}-{}", first.number, rows[rows.len() - 1].number),
        };
        let mut out = MappedText::default();
        for row in &rows {
            if !out.is_empty() {
                out.insert("\n\n");
            }
            self.row_text(row, &mut out);
        }
        let title = self
            .title
            .map(|c| first.fields[c].value.trim().to_string())
            .filter(|t| !t.is_empty());
        let payload = self.payload(&rows);
        let range = first.range.start..rows[rows.len() - 1].range.end;
        let mut extracted = Extracted::unpaged(out.text, title, out.map);
        extracted.payload = payload;
        Ok(Record {
            key,
            range,
            extracted,
        })
    }

    fn row_text(&self, row: &Row, out: &mut MappedText) {
        let cards = self.text.is_empty();
        let columns: Vec<usize> = if cards {
            (0..self.columns.len()).collect()
        } else {
            self.text.clone()
        };
        let mut first = true;
        for c in columns {
            let f = &row.fields[c];
            let value = f.value.trim();
            if value.is_empty() {
                continue;
            }
            if !first {
                out.insert(if cards { "\n" } else { "\n\n" });
            }
            first = false;
            if cards {
                out.insert(&format!("{}: ", self.columns[c]));
            }
            if f.verbatim {
                let lead = f.value.len() - f.value.trim_start().len();
                out.copy(value, f.span.start + lead);
            } else {
                out.stand_for(value, f.span.clone());
            }
        }
    }

    fn payload(&self, rows: &[Row]) -> Map<String, Value> {
        let mut out = Map::new();
        for (c, name) in self.columns.iter().enumerate() {
            if self.text.binary_search(&c).is_ok() {
                continue;
            }
            if rows.len() == 1 {
                let v = rows[0].fields[c].value.trim();
                if !v.is_empty() {
                    out.insert(name.clone(), typed(v));
                }
            } else {
                let values: Vec<Value> = rows
                    .iter()
                    .map(|r| match r.fields[c].value.trim() {
                        "" => Value::Null,
                        v => typed(v),
                    })
                    .collect();
                out.insert(name.clone(), Value::Array(values));
            }
        }
        out
    }
}

impl Iterator for CsvRecords<'_> {
    type Item = Result<Record, ExtractError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.read_row() {
                Some(Ok(row)) => {
                    self.group.push(row);
                    if self.group.len() == self.per {
                        return Some(self.record());
                    }
                }
                Some(Err(e)) => return Some(Err(e)),
                None if self.group.is_empty() => return None,
                None => return Some(self.record()),
            }
        }
    }
}

/// The delimiter of a file whose data starts with `body`: the candidate occurring most often
/// outside quotes in the first line.
fn sniff_delimiter(body: &[u8]) -> u8 {
    let mut counts = [0usize; DELIMITERS.len()];
    let mut quoted = false;
    for &b in &body[..body.len().min(SNIFF_LINE)] {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            _ if !quoted => {
                if let Some(i) = DELIMITERS.iter().position(|&d| d == b) {
                    counts[i] += 1;
                }
            }
            _ => {}
        }
    }
    let best = (0..DELIMITERS.len())
        .rev()
        .max_by_key(|&i| counts[i])
        .filter(|&i| counts[i] > 0);
    best.map_or(b',', |i| DELIMITERS[i])
}

/// The byte ranges of a row's field values in `raw` (inside the quotes for a quoted field),
/// found by the same rules the csv reader follows; the caller checks them against its fields.
fn split_spans(raw: &[u8], delimiter: u8) -> Vec<Range<usize>> {
    let mut spans = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        if raw.get(i) == Some(&b'"') {
            i += 1;
            let content = i;
            let mut close = raw.len();
            while i < raw.len() {
                if raw[i] == b'"' {
                    if raw.get(i + 1) == Some(&b'"') {
                        i += 2;
                        continue;
                    }
                    close = i;
                    i += 1;
                    break;
                }
                i += 1;
            }
            while i < raw.len() && raw[i] != delimiter {
                i += 1;
            }
            spans.push(content..close.max(content));
        } else {
            while i < raw.len() && raw[i] != delimiter {
                i += 1;
            }
            spans.push(start..i);
        }
        if i >= raw.len() {
            return spans;
        }
        i += 1;
        if i == raw.len() {
            spans.push(i..i);
            return spans;
        }
    }
}

/// A cell's value for the payload: a plainly written integer (fitting i64) or decimal number
/// as a JSON number, anything else as a string.
fn typed(v: &str) -> Value {
    let digits = v.strip_prefix('-').unwrap_or(v);
    let (int, rest) = digits.split_at(digits.find(['.', 'e', 'E']).unwrap_or(digits.len()));
    let plain_int = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && (int == "0" || !int.starts_with('0'));
    if plain_int && rest.is_empty() {
        if let Ok(i) = v.parse::<i64>() {
            return Value::Number(i.into());
        }
    }
    if plain_int && is_fraction_and_exponent(rest) {
        if let Some(n) = v.parse::<f64>().ok().and_then(Number::from_f64) {
            return Value::Number(n);
        }
    }
    Value::String(v.to_string())
}

/// `.digits`, `e±digits`, or both, and nothing else (non-empty).
fn is_fraction_and_exponent(s: &str) -> bool {
    let (frac, exp) = s.split_at(s.find(['e', 'E']).unwrap_or(s.len()));
    let frac_ok = frac.is_empty()
        || (frac.len() > 1
            && frac.starts_with('.')
            && frac[1..].bytes().all(|b| b.is_ascii_digit()));
    let exp_ok = exp.is_empty() || {
        let e = exp[1..].strip_prefix(['+', '-']).unwrap_or(&exp[1..]);
        !e.is_empty() && e.bytes().all(|b| b.is_ascii_digit())
    };
    !s.is_empty() && frac_ok && exp_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_only_when_plainly_written() {
        assert_eq!(typed("42"), Value::from(42));
        assert_eq!(typed("-7"), Value::from(-7));
        assert_eq!(typed("0"), Value::from(0));
        assert_eq!(typed("-1.5"), Value::from(-1.5));
        assert_eq!(typed("2e3"), Value::from(2000.0));
        assert_eq!(typed("6.02E+23"), Value::from(6.02e23));
        for s in [
            "007",
            "1,000",
            "1.",
            ".5",
            "1e",
            "12345678901234567890",
            "NaN",
            "inf",
            "-",
            "1.2.3",
            "0x10",
            "+1",
        ] {
            assert_eq!(typed(s), Value::from(s), "{s}");
        }
    }

    #[test]
    fn delimiters_are_sniffed_outside_quotes() {
        assert_eq!(sniff_delimiter(b"a,b,c\n1\t2"), b',');
        assert_eq!(sniff_delimiter(b"a\tb\t\"c,d,e\"\n"), b'\t');
        assert_eq!(sniff_delimiter(b"a;b;c"), b';');
        assert_eq!(sniff_delimiter(b"a|b"), b'|');
        assert_eq!(sniff_delimiter(b"single"), b',');
        assert_eq!(sniff_delimiter(b"a,b\tc"), b',', "ties go to the comma");
    }

    #[test]
    fn field_spans() {
        assert_eq!(split_spans(b"a,\"b,c\",", b','), [0..1, 3..6, 8..8]);
        assert_eq!(split_spans(b"\"x\"\"y\"", b','), vec![1..5]);
        assert_eq!(split_spans(b"", b','), vec![0..0]);
        assert_eq!(split_spans(b"\"open", b','), vec![1..5]);
    }
}
