//! Where documents come from: files and directories (text, Markdown, HTML, PDF, DOCX, EPUB,
//! e-mail, source code: one document each; CSV/TSV rows and mbox messages: one document per
//! record, id `FILE#KEY`; document ids relative to the root given) and JSONL records (one document per line, BEIR corpus format
//! by default), each as an iterator of [`Document`]s for [`crate::Service::ingest`]. JSONL is
//! read from any [`BufRead`], so a server can stream a request body line by line.
//!
//! Nothing here prints: a file that cannot be used is counted ([`FileDocuments::skipped`],
//! [`FileDocuments::unreadable`]) and what went wrong is handed to the caller's warning sink.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sextant_engine::documents::ingest::Document;
use sextant_text::Format;

use crate::error::{Error, Result};

/// File extensions read from directories: every text format's ([`Format::extensions`]) and
/// the images' ([`IMAGE_EXTENSIONS`]).
pub fn extensions() -> Vec<&'static str> {
    Format::ALL
        .iter()
        .flat_map(|f| f.extensions().iter().copied())
        .chain(IMAGE_EXTENSIONS.iter().copied())
        .collect()
}

/// Extensions of the images ingestion reads (one document each, embedded by a CLIP model).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg", "webp"];

/// Whether `p` names an image ingestion reads.
pub fn is_image(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// Payload keys file ingestion writes itself (beside the engine's
/// [`CHUNK_KEYS`](sextant_engine::documents::ingest::CHUNK_KEYS)); a format's field of either
/// name (a CSV column called `text`, an e-mail's `source`) is stored as `field_<name>` instead.
const SOURCE_KEYS: &[&str] = &[
    "format",
    "offsets",
    "parts",
    "record",
    sextant_engine::documents::ingest::CODE_LANGUAGE,
];
/// Default JSONL field of the document id (BEIR).
pub const DEFAULT_ID_FIELD: &str = "_id";
/// Default JSONL field of the text.
pub const DEFAULT_TEXT_FIELD: &str = "text";
/// Default JSONL field of the title.
pub const DEFAULT_TITLE_FIELD: &str = "title";

/// Files under `root` (itself when it is a file), sorted, with a known extension; hidden
/// entries are skipped.
pub fn walk(root: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(root)
        .map_err(|e| Error::not_found(format!("cannot read {}", root.display())).with_source(e))?;
    if meta.is_file() {
        return Ok(vec![root.to_path_buf()]);
    }
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map_err(|e| Error::internal(format!("cannot list {}", dir.display()), e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if name.starts_with('.') {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else if has_known_extension(&p) {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Whether `p` has an extension of a format ingestion reads.
pub fn has_known_extension(p: &Path) -> bool {
    Format::from_path(p).is_some() || is_image(p)
}

/// What [`read_file`] made of a file.
#[derive(Debug)]
pub enum FileRead {
    /// Its documents (one, or one per CSV row group or mbox message), and warnings about it
    /// (invalid UTF-8 repaired, PDF pages unread).
    Documents(Vec<Document>, Vec<String>),
    /// Not a format ingestion reads (a file given explicitly).
    UnknownFormat,
    /// A file that could not be read (a PDF without text, a picture that does not decode); why.
    Unreadable(String),
}

/// Reads one file as a document (id: the root directory's name and the path under it, or the
/// file name for a file given directly). A PDF that gives no text is [`FileRead::Unreadable`],
/// so one bad file never stops an ingest.
pub fn read_file(root: &Path, file: &Path) -> Result<FileRead> {
    if !has_known_extension(file) {
        return Ok(FileRead::UnknownFormat);
    }
    let bytes = std::fs::read(file)
        .map_err(|e| Error::internal(format!("cannot read {}", file.display()), e))?;
    let unreadable = |e: &dyn std::error::Error| {
        FileRead::Unreadable(format!("skipping {}: {}", file.display(), error_chain(e)))
    };
    let mut warnings = Vec::new();
    let meta = std::fs::metadata(file)
        .map_err(|e| Error::internal(format!("cannot read {}", file.display()), e))?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| sextant_core::format_rfc3339(d.as_secs() as i64));
    let id = file_id(root, file);
    let stem = file
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = Document {
        id: id.clone(),
        source: Some(file.display().to_string()),
        modified,
        ..Default::default()
    };
    if is_image(file) {
        // Decoded once here: a file that is not a picture is a warning, not a failed ingest,
        // and its size goes into the payload.
        let rgb = match sextant_embed::clip::decode_rgb(&bytes) {
            Ok(rgb) => rgb,
            Err(e) => return Ok(unreadable(&e)),
        };
        let kind = image_format(&bytes);
        let mut doc = base;
        doc.title = stem;
        doc.fields.insert("format".into(), json!(kind));
        doc.fields.insert("width".into(), json!(rgb.width()));
        doc.fields.insert("height".into(), json!(rgb.height()));
        doc.fields.insert("offsets".into(), json!("none"));
        doc.image = Some(bytes);
        return Ok(FileRead::Documents(vec![doc], warnings));
    }
    let format = Format::detect_bytes(file, &bytes);
    if format.has_records() {
        let records = match sextant_text::extract::extract_records(
            format,
            &bytes,
            &sextant_text::extract::RecordOptions::default(),
        ) {
            Ok(r) => r,
            Err(e) => return Ok(unreadable(&e)),
        };
        let docs = records
            .into_iter()
            .map(|r| {
                let mut doc = document(base.clone(), format, r.extracted, &stem);
                doc.id = format!("{id}#{}", r.key);
                doc.fields.insert(
                    "record".into(),
                    json!({"start": r.range.start, "end": r.range.end}),
                );
                doc
            })
            .collect();
        return Ok(FileRead::Documents(docs, warnings));
    }
    let ex = if format.is_binary() {
        match sextant_text::extract_bytes(format, &bytes) {
            Ok(ex) => ex,
            Err(e) => return Ok(unreadable(&e)),
        }
    } else {
        let source = String::from_utf8_lossy(&bytes);
        if matches!(source, std::borrow::Cow::Owned(_)) {
            warnings.push(format!(
                "{} is not valid UTF-8; invalid bytes read as U+FFFD",
                file.display()
            ));
        }
        sextant_text::extract(format, &source)
    };
    if !ex.unreadable_pages.is_empty() {
        let pages: Vec<String> = ex.unreadable_pages.iter().map(usize::to_string).collect();
        warnings.push(format!(
            "{}: the PDF parser could not read page(s) {}; the other pages are ingested",
            file.display(),
            pages.join(", ")
        ));
    }
    let mut doc = document(base, format, ex, &stem);
    if format == Format::Code {
        let text = String::from_utf8_lossy(&bytes);
        match sextant_text::extract::CodeLanguage::detect(file, &text) {
            Some(lang) => {
                doc.fields.insert(
                    sextant_engine::documents::ingest::CODE_LANGUAGE.into(),
                    json!(lang.name()),
                );
            }
            None => warnings.push(format!(
                "{}: the programming language is not recognised; chunked as text",
                file.display()
            )),
        }
    }
    Ok(FileRead::Documents(vec![doc], warnings))
}

/// `png`, `jpeg` or `webp` by the file's signature (decoding has accepted it as one of them).
fn image_format(bytes: &[u8]) -> &'static str {
    use sextant_embed::clip::image::{guess_format, ImageFormat};
    match guess_format(bytes) {
        Ok(ImageFormat::Png) => "png",
        Ok(ImageFormat::Jpeg) => "jpeg",
        _ => "webp",
    }
}

/// A file's document id: the root directory's name and the path under it, or the file name
/// for a file given directly.
fn file_id(root: &Path, file: &Path) -> String {
    if root.is_file() {
        file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        )
    } else {
        // `<directory name>/<path under it>`, so equal names under two roots stay apart.
        let rel = file.strip_prefix(root).unwrap_or(file);
        match root.file_name() {
            Some(d) => Path::new(d).join(rel),
            None => rel.to_path_buf(),
        }
        .to_string_lossy()
        .into_owned()
    }
}

/// A document from extracted text: title (else the file's stem), the format's fields (a
/// reserved key renamed `field_<key>`), what its offsets count, and its map or pages.
fn document(
    mut doc: Document,
    format: Format,
    ex: sextant_text::Extracted,
    stem: &str,
) -> Document {
    use sextant_text::extract::SourceOffsets;
    doc.title = ex.title.clone().unwrap_or_else(|| stem.to_string());
    for (k, v) in ex.payload {
        let reserved = sextant_engine::documents::ingest::CHUNK_KEYS.contains(&k.as_str())
            || SOURCE_KEYS.contains(&k.as_str());
        let key = if reserved { format!("field_{k}") } else { k };
        doc.fields.insert(key, v);
    }
    doc.fields.insert("format".into(), json!(format.name()));
    let offsets = match format.source_offsets() {
        SourceOffsets::File => "bytes",
        SourceOffsets::Text => "text",
        SourceOffsets::Paragraphs => "paragraphs",
        SourceOffsets::Parts => "parts",
    };
    doc.fields.insert("offsets".into(), json!(offsets));
    if !ex.parts.is_empty() {
        let parts: Vec<Value> = ex
            .parts
            .iter()
            .map(|p| json!({"name": p.name, "start": p.source_start, "len": p.source_len}))
            .collect();
        doc.fields.insert("parts".into(), Value::Array(parts));
    }
    doc.text = ex.text;
    doc.source_map = (!ex.map.is_identity()).then_some(ex.map);
    doc.pages = ex.pages;
    doc
}

/// An error and its sources, `: `-separated (a warning has one line to say why).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// The documents of files and directories, in order: each root walked (sorted), each file
/// read. Files of unknown formats and PDFs without text are counted and skipped; warnings go to
/// the sink given to [`FileDocuments::with_warnings`].
pub struct FileDocuments<'w> {
    roots: std::vec::IntoIter<PathBuf>,
    root: Option<PathBuf>,
    files: std::vec::IntoIter<PathBuf>,
    pending: std::vec::IntoIter<Document>,
    skipped: usize,
    unreadable: usize,
    warn: Box<dyn FnMut(&str) + 'w>,
}

impl std::fmt::Debug for FileDocuments<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileDocuments")
            .field("root", &self.root)
            .field("skipped", &self.skipped)
            .field("unreadable", &self.unreadable)
            .finish()
    }
}

impl<'w> FileDocuments<'w> {
    /// The documents under `roots` (files or directories); warnings are dropped.
    pub fn new(roots: Vec<PathBuf>) -> Self {
        FileDocuments {
            roots: roots.into_iter(),
            root: None,
            files: Vec::new().into_iter(),
            pending: Vec::new().into_iter(),
            skipped: 0,
            unreadable: 0,
            warn: Box::new(|_| {}),
        }
    }

    /// Sends warnings (a file skipped and why, invalid UTF-8, unread PDF pages) to `sink`.
    pub fn with_warnings(mut self, sink: impl FnMut(&str) + 'w) -> Self {
        self.warn = Box::new(sink);
        self
    }

    /// Files skipped as no format ingestion reads (given explicitly).
    pub fn skipped(&self) -> usize {
        self.skipped
    }

    /// Files that could not be read (see [`FileRead::Unreadable`]).
    pub fn unreadable(&self) -> usize {
        self.unreadable
    }
}

impl Iterator for FileDocuments<'_> {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(doc) = self.pending.next() {
                return Some(Ok(doc));
            }
            if let Some(file) = self.files.next() {
                let root = self.root.as_deref().expect("files come from a root");
                match read_file(root, &file) {
                    Ok(FileRead::Documents(docs, warnings)) => {
                        for w in &warnings {
                            (self.warn)(w);
                        }
                        self.pending = docs.into_iter();
                    }
                    Ok(FileRead::UnknownFormat) => self.skipped += 1,
                    Ok(FileRead::Unreadable(why)) => {
                        (self.warn)(&why);
                        self.unreadable += 1;
                    }
                    Err(e) => return Some(Err(e)),
                }
                continue;
            }
            let root = self.roots.next()?;
            match walk(&root) {
                Ok(files) => {
                    self.files = files.into_iter();
                    self.root = Some(root);
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// Which JSONL fields hold a record's id, text and title; every other field is stored in the
/// chunks' payloads.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, default)]
pub struct RecordFields {
    /// Field of the document id (a non-empty string or a number) [default: `_id`].
    pub id_field: String,
    /// Field of the text (a string; missing or null: empty) [default: `text`].
    pub text_field: String,
    /// Field of the title (optional in records) [default: `title`].
    pub title_field: String,
}

impl Default for RecordFields {
    fn default() -> Self {
        RecordFields {
            id_field: DEFAULT_ID_FIELD.into(),
            text_field: DEFAULT_TEXT_FIELD.into(),
            title_field: DEFAULT_TITLE_FIELD.into(),
        }
    }
}

/// A JSONL record as a document. Errors are invalid input naming the field.
pub fn record(line: &str, f: &RecordFields) -> Result<Document> {
    let rec: Map<String, Value> = serde_json::from_str(line)
        .map_err(|e| Error::invalid("record", "not a JSON object").with_source(e))?;
    let id = match rec.get(&f.id_field) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => {
            return Err(Error::invalid(
                f.id_field.clone(),
                format!("missing or empty id field {:?}", f.id_field),
            ))
        }
    };
    let text = match rec.get(&f.text_field) {
        Some(Value::String(s)) => s.clone(),
        None | Some(Value::Null) => String::new(),
        Some(_) => {
            return Err(Error::invalid(
                f.text_field.clone(),
                format!("field {:?} is not a string", f.text_field),
            ))
        }
    };
    let title = rec
        .get(&f.title_field)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let mut fields = rec;
    for k in [&f.id_field, &f.text_field, &f.title_field] {
        fields.remove(k);
    }
    Ok(Document {
        id,
        title,
        text,
        fields,
        ..Default::default()
    })
}

/// The documents of a JSONL stream, one record per line (blank lines skipped), read as they
/// are needed. An error names the stream and the line.
#[derive(Debug)]
pub struct JsonlDocuments<R> {
    reader: R,
    name: String,
    fields: RecordFields,
    line_no: usize,
    line: String,
}

impl<R: BufRead> JsonlDocuments<R> {
    /// Records from `reader`; `name` (a path, "request body") is what errors call it.
    pub fn new(reader: R, name: impl Into<String>, fields: RecordFields) -> Self {
        JsonlDocuments {
            reader,
            name: name.into(),
            fields,
            line_no: 0,
            line: String::new(),
        }
    }

    /// Lines read so far.
    pub fn lines_read(&self) -> usize {
        self.line_no
    }
}

impl<R: BufRead> Iterator for JsonlDocuments<R> {
    type Item = Result<Document>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.line.clear();
            self.line_no += 1;
            let at = format!("{} line {}", self.name, self.line_no);
            match self.reader.read_line(&mut self.line) {
                Ok(0) => return None,
                Ok(_) if self.line.trim().is_empty() => continue,
                Ok(_) => return Some(record(&self.line, &self.fields).map_err(|e| e.context(at))),
                Err(e) => return Some(Err(Error::invalid("record", at).with_source(e))),
            }
        }
    }
}

/// Reads BEIR `queries.jsonl` (`_id`, `text`) as (id, text) pairs.
pub fn read_queries(reader: impl BufRead, name: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let at = || format!("{name} line {}", i + 1);
        let line = line.map_err(|e| Error::invalid("queries", at()).with_source(e))?;
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(&line)
            .map_err(|e| Error::invalid("queries", format!("{}: not JSON", at())).with_source(e))?;
        let id = match &v["_id"] {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return Err(Error::invalid("_id", format!("{}: missing \"_id\"", at()))),
        };
        out.push((id, v["text"].as_str().unwrap_or("").to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_core::ErrorKind;

    #[test]
    fn walk_sorts_recurses_and_skips_hidden_and_unknown_files() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("kb");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::write(root.join("b.md"), "# B\n\nbee").unwrap();
        std::fs::write(root.join("a.txt"), "ay").unwrap();
        std::fs::write(root.join("sub/c.HTML"), "<p>see</p>").unwrap();
        std::fs::write(root.join("x.bin"), "no").unwrap();
        std::fs::write(root.join(".hidden.txt"), "no").unwrap();
        std::fs::write(root.join(".git/d.txt"), "no").unwrap();
        let files = walk(&root).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|p| p.strip_prefix(&root).unwrap().to_str().unwrap().to_string())
            .collect();
        assert_eq!(names, vec!["a.txt", "b.md", "sub/c.HTML"]);
        let docs: Vec<Document> = FileDocuments::new(vec![root.clone()])
            .collect::<Result<_>>()
            .unwrap();
        let ids: Vec<_> = docs.iter().map(|d| d.id.as_str()).collect();
        assert_eq!(ids, vec!["kb/a.txt", "kb/b.md", "kb/sub/c.HTML"]);
        assert_eq!(docs[1].title, "B");
        // A file given directly is named by its file name; an unknown format is counted.
        let mut it = FileDocuments::new(vec![root.join("a.txt"), root.join("x.bin")]);
        let docs: Vec<Document> = it.by_ref().collect::<Result<_>>().unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].id, "a.txt");
        assert_eq!(it.skipped(), 1);
        let e = walk(&dir.path().join("nope")).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.to_string().contains("nope"), "{e}");
    }

    #[test]
    fn invalid_utf8_is_repaired_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("bad.txt");
        std::fs::write(&f, b"caf\xe9 au lait").unwrap();
        let mut warnings = Vec::new();
        let docs: Vec<Document> = FileDocuments::new(vec![f])
            .with_warnings(|w| warnings.push(w.to_string()))
            .collect::<Result<_>>()
            .unwrap();
        assert!(docs[0].text.contains('\u{FFFD}'));
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("not valid UTF-8"), "{warnings:?}");
    }

    #[test]
    fn jsonl_records_stream_from_any_bufread() {
        let body = "{\"_id\":\"d1\",\"title\":\"T\",\"text\":\"hello\",\"lang\":\"en\"}\n\n{\"_id\":7,\"text\":null}\n";
        // A reader that hands out one byte at a time: nothing needs the whole body.
        let reader = std::io::BufReader::with_capacity(1, body.as_bytes());
        let docs: Vec<Document> = JsonlDocuments::new(reader, "body", RecordFields::default())
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0].id, "d1");
        assert_eq!(docs[0].title, "T");
        assert_eq!(docs[0].fields["lang"], "en");
        assert!(!docs[0].fields.contains_key("_id"));
        assert_eq!(docs[1].id, "7");
        assert_eq!(docs[1].text, "");
        let fields = RecordFields {
            id_field: "key".into(),
            text_field: "body".into(),
            title_field: "name".into(),
        };
        let d = record(r#"{"key":"k","body":"b","name":"n"}"#, &fields).unwrap();
        assert_eq!(
            (d.id.as_str(), d.text.as_str(), d.title.as_str()),
            ("k", "b", "n")
        );
    }

    #[test]
    fn jsonl_errors_name_the_line_and_the_field() {
        let body = "{\"_id\":\"ok\"}\n{\"text\":\"no id\"}\n";
        let mut it = JsonlDocuments::new(body.as_bytes(), "docs.jsonl", RecordFields::default());
        assert!(it.next().unwrap().is_ok());
        let e = it.next().unwrap().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
        assert_eq!(e.field(), Some("_id"));
        assert!(e.to_string().starts_with("docs.jsonl line 2: "), "{e}");
        let e = JsonlDocuments::new(
            "{\"_id\":\"a\",\"text\":3}\n".as_bytes(),
            "b",
            RecordFields::default(),
        )
        .next()
        .unwrap()
        .unwrap_err();
        assert_eq!(e.field(), Some("text"));
        let e = JsonlDocuments::new("nope\n".as_bytes(), "b", RecordFields::default())
            .next()
            .unwrap()
            .unwrap_err();
        assert!(e.to_string().contains("b line 1: not a JSON object"), "{e}");
    }

    #[test]
    fn beir_queries_read_ids_and_texts() {
        let q = read_queries(
            "{\"_id\":\"q1\",\"text\":\"a\"}\n{\"_id\":2,\"text\":\"b\"}\n".as_bytes(),
            "q",
        )
        .unwrap();
        assert_eq!(q, vec![("q1".into(), "a".into()), ("2".into(), "b".into())]);
        let e = read_queries("{\"text\":\"a\"}\n".as_bytes(), "q.jsonl").unwrap_err();
        assert!(e.to_string().contains("q.jsonl line 1"), "{e}");
    }
}
