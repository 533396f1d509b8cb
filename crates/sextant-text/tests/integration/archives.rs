//! DOCX and EPUB files through `extract_bytes`: text, titles, metadata and where the text came
//! from, for the fixtures `scripts/make-format-fixtures.py` wrote with python-docx and EbookLib
//! (its docstring says what each holds), and a clean error for every file that cannot be read.

use std::io::{Cursor, Read, Write};
use std::path::{Path, PathBuf};

use sextant_text::chunk::{chunk, whitespace_tokens, Strategy};
use sextant_text::extract::{
    extract, extract_bytes, ExtractError, Extracted, Format, SourceOffsets,
};

pub(crate) fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/formats")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(format: Format, name: &str) -> Extracted {
    extract_bytes(format, &fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The archive with `edit` applied to each entry (`None` drops it), rewritten uncompressed.
fn rezip(bytes: &[u8], edit: impl Fn(&str, Vec<u8>) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut zin = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut zout = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..zin.len() {
        let mut f = zin.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut data = Vec::new();
        f.read_to_end(&mut data).unwrap();
        if let Some(data) = edit(&name, data) {
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Stored);
            zout.start_file(name, options).unwrap();
            zout.write_all(&data).unwrap();
        }
    }
    zout.finish().unwrap().into_inner()
}

/// An entry of an archive.
fn entry(bytes: &[u8], name: &str) -> Vec<u8> {
    let mut zin = zip::ZipArchive::new(Cursor::new(bytes)).unwrap();
    let mut data = Vec::new();
    zin.by_name(name).unwrap().read_to_end(&mut data).unwrap();
    data
}

#[test]
fn docx_paragraphs_headings_lists_tables_and_properties() {
    let out = read(Format::Docx, "report.docx");
    assert_eq!(
        out.text,
        "# Summary\n\n\
         Revenue grew by 12% in the third quarter.\n\n\
         Costs & margins stayed < plan.\n\n\
         ## Details\n\n\
         - North region\n\
         - South region\n\n\
         Name:\tAda\nRole: analyst\n\n\
         \\# not a heading\n\n\
         Region\tQ2\tQ3\n\
         North\t10\t12\n\
         South\t8\t9\n\n\
         End of report."
    );
    assert_eq!(out.title.as_deref(), Some("Quarterly Report — Q3"));
    assert_eq!(out.payload["author"], "Ada Lovelace");
    assert_eq!(out.payload["subject"], "Sales");
    assert_eq!(out.payload["keywords"], "revenue, growth");
    // Written in +02:00, normalised to UTC.
    assert_eq!(out.payload["created"], "2024-10-01T09:00:00Z");
    assert_eq!(out.payload["modified"], "2024-10-02T17:30:00Z");
    assert!(
        !out.payload.contains_key("title"),
        "the title is not repeated"
    );
    assert!(out.pages.is_none() && out.parts.is_empty());

    // The map sends text to paragraph indices: paragraph 3 is the empty one, the table's nine
    // cells are paragraphs 9–17.
    assert_eq!(Format::Docx.source_offsets(), SourceOffsets::Paragraphs);
    let range = |needle: &str| {
        let at = out.text.find(needle).unwrap();
        out.map.range_to_source(at..at + needle.len())
    };
    assert_eq!(range("Summary"), 0..1);
    assert_eq!(range("Revenue grew"), 1..2);
    assert_eq!(range("Details"), 4..5);
    assert_eq!(range("North\t10\t12"), 12..15);
    assert_eq!(range("End of report."), 18..19);
    assert_eq!(out.map.range_to_source(0..out.text.len()), 0..19);

    // Headings become the chunks' sections.
    let chunks = chunk(
        &out.text,
        Strategy::Paragraphs { max_tokens: 12 },
        &whitespace_tokens,
    );
    let sections: Vec<_> = chunks.iter().map(|c| c.section.as_deref()).collect();
    assert_eq!(sections.first(), Some(&Some("Summary")));
    assert_eq!(sections.last(), Some(&Some("Details")));
}

#[test]
fn docx_title_falls_back_to_the_first_level_one_heading() {
    let out = read(Format::Docx, "untitled.docx");
    assert_eq!(
        out.text,
        "# A Draft\n\n# Field Notes\n\nOwls hunt at night."
    );
    assert_eq!(
        out.title.as_deref(),
        Some("A Draft"),
        "the Title style is level 1"
    );
    assert!(
        !out.payload.contains_key("author"),
        "an empty author is left out"
    );
}

#[test]
fn docx_files_that_cannot_be_read_say_why() {
    let report = fixture("report.docx");
    let err = |bytes: &[u8]| extract_bytes(Format::Docx, bytes).unwrap_err();
    assert!(matches!(
        err(&fixture("encrypted.docx")),
        ExtractError::Encrypted {
            format: Format::Docx
        }
    ));
    match err(&fixture("no-document.docx")) {
        ExtractError::MissingPart { part, .. } => assert_eq!(part, "word/document.xml"),
        e => panic!("{e:?}"),
    }
    assert!(matches!(
        err(&report[..report.len() * 6 / 10]),
        ExtractError::Archive { .. }
    ));
    assert!(matches!(err(b"plain text"), ExtractError::Archive { .. }));
    let mut legacy = b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1".to_vec();
    legacy.resize(4096, 0);
    assert!(matches!(err(&legacy), ExtractError::LegacyOffice { .. }));
    // word/document.xml cut in the middle of a tag.
    let malformed = rezip(&report, |name, data| {
        Some(if name == "word/document.xml" {
            let cut = data.windows(7).position(|w| w == b"Revenue").unwrap();
            [&data[..cut], b"</w:t></w:p"].concat()
        } else {
            data
        })
    });
    match err(&malformed) {
        ExtractError::Xml { part, source, .. } => {
            assert_eq!(part, "word/document.xml");
            assert!(!source.to_string().is_empty());
        }
        e => panic!("{e:?}"),
    }
    let message = err(&malformed).to_string();
    assert!(
        message.contains("word/document.xml") && message.contains("docx"),
        "{message}"
    );
    // `extract` on text gives an empty document instead.
    assert_eq!(extract(Format::Docx, "not a zip").text, "");
}

#[test]
fn damaged_archives_never_panic() {
    for name in ["report.docx", "book.epub"] {
        let bytes = fixture(name);
        let format = Format::detect_bytes(Path::new(name), &bytes);
        for cut in (0..bytes.len()).step_by(bytes.len() / 40 + 1) {
            let _ = extract_bytes(format, &bytes[..cut]);
        }
        for at in (30..bytes.len()).step_by(bytes.len() / 60 + 1) {
            let mut b = bytes.clone();
            b[at] ^= 0x5a;
            let _ = extract_bytes(format, &b);
        }
    }
}

#[test]
fn epub_chapters_in_spine_order_with_their_files() {
    let bytes = fixture("book.epub");
    let out = read(Format::Epub, "book.epub");
    assert_eq!(
        out.text,
        "# Chapter One\n\n\
         Call me Ishmael. Some years ago I went to sea.\n\n\
         The harbour smelled of tar & salt.\n\n\
         # Chapter Two\n\n\
         The whale surfaced at dawn.\n\n\
         - harpoons\n- rope"
    );
    assert_eq!(out.title.as_deref(), Some("The Voyage"));
    assert_eq!(out.payload["author"], "Jules Example, Ann Other");
    assert_eq!(out.payload["declared_language"], "en");
    assert_eq!(
        out.payload["identifier"],
        "urn:uuid:0b7e6f52-2d38-4c1c-9c84-5ab3a1c5e001"
    );
    // The spine reads chapter one first although the manifest lists chapter two first; the
    // navigation document is not in the spine, so not in the text.
    let names: Vec<&str> = out.parts.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        ["EPUB/text/ch1.xhtml", "EPUB/text/chapter two.xhtml"]
    );
    assert_eq!(
        out.parts[1].text_start,
        out.text.find("# Chapter Two").unwrap()
    );
    assert_eq!(out.parts[1].source_start, out.parts[0].source_len);

    // Every word maps back, through (file, offset), to itself in its chapter file.
    for word in ["Ishmael", "tar", "whale", "harpoons", "Two"] {
        let at = out.text.find(word).unwrap();
        let src = out.map.range_to_source(at..at + word.len());
        let (part, offset) = out.part_at(src.start).unwrap();
        let file = entry(&bytes, &part.name);
        assert_eq!(
            &file[offset..offset + src.len()],
            word.as_bytes(),
            "{word} in {}",
            part.name
        );
    }
    // "&" came from "&amp;": it maps to the whole reference.
    let amp = out.text.find('&').unwrap();
    let src = out.map.range_to_source(amp..amp + 1);
    let (part, offset) = out.part_at(src.start).unwrap();
    assert_eq!(
        &entry(&bytes, &part.name)[offset..offset + src.len()],
        b"&amp;"
    );
}

#[test]
fn epub_errors_and_missing_chapters() {
    let err = |bytes: &[u8]| extract_bytes(Format::Epub, bytes).unwrap_err();
    assert!(matches!(
        err(&fixture("drm.epub")),
        ExtractError::Encrypted {
            format: Format::Epub
        }
    ));
    assert!(matches!(
        err(&fixture("no-spine.epub")),
        ExtractError::EpubEmptySpine
    ));
    let book = fixture("book.epub");
    let no_container = rezip(&book, |name, data| {
        (name != "META-INF/container.xml").then_some(data)
    });
    assert_eq!(
        extract_bytes(Format::Epub, &no_container).unwrap().text,
        read(Format::Epub, "book.epub").text,
        "without a container the .opf is found by name"
    );
    let no_opf = rezip(&book, |name, data| {
        (name != "EPUB/content.opf").then_some(data)
    });
    match err(&no_opf) {
        ExtractError::MissingPart { part, .. } => assert_eq!(part, "EPUB/content.opf"),
        e => panic!("{e:?}"),
    }
    let bad_opf = rezip(&book, |name, data| {
        Some(if name == "EPUB/content.opf" {
            data[..data.len() / 2].to_vec()
        } else {
            data
        })
    });
    assert!(matches!(err(&bad_opf), ExtractError::Xml { .. }));
    // A chapter missing from the archive: the rest is read, the gap recorded.
    let gap = rezip(&book, |name, data| {
        (name != "EPUB/text/ch1.xhtml").then_some(data)
    });
    let out = extract_bytes(Format::Epub, &gap).unwrap();
    assert!(out.text.starts_with("# Chapter Two"), "{}", out.text);
    assert_eq!(out.unreadable_pages, [1]);
}

#[test]
fn archives_are_detected_by_content() {
    let unnamed = Path::new("upload");
    assert_eq!(
        Format::detect_bytes(unnamed, &fixture("report.docx")),
        Format::Docx
    );
    assert_eq!(
        Format::detect_bytes(unnamed, &fixture("encrypted.docx")),
        Format::Docx
    );
    assert_eq!(
        Format::detect_bytes(unnamed, &fixture("book.epub")),
        Format::Epub
    );
    assert_eq!(
        Format::detect_bytes(unnamed, &fixture("message.eml")),
        Format::Email
    );
    assert_eq!(
        Format::detect_bytes(unnamed, &fixture("archive.mbox")),
        Format::Mbox
    );
    assert_eq!(
        Format::detect_bytes(Path::new("x.docx"), b"anything"),
        Format::Docx
    );
    assert!(Format::Docx.is_binary() && Format::Epub.is_binary());
}
