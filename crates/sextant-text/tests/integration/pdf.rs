//! PDF files through `extract_bytes` (the `pdf` feature): text, page starts and titles of the
//! committed fixtures (`scripts/make-pdf-fixtures.py` wrote them; its docstring says what each
//! holds), clean errors for files that give no text, and damaged copies that never panic.

use std::path::PathBuf;

use sextant_text::chunk::{chunk, whitespace_tokens, Strategy};
use sextant_text::extract::{extract_bytes, page_at, ExtractError, Extracted, Format};

fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pdf")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read(name: &str) -> Extracted {
    extract_bytes(Format::Pdf, &fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The text of each page, cut at the page starts.
fn pages(out: &Extracted) -> Vec<&str> {
    let starts = out.pages.as_deref().expect("a PDF has pages");
    starts
        .iter()
        .enumerate()
        .map(|(i, &s)| out.text[s..starts.get(i + 1).copied().unwrap_or(out.text.len())].trim_end())
        .collect()
}

#[test]
fn three_pages_give_their_text_page_starts_and_title() {
    let out = read("three-pages.pdf");
    assert_eq!(
        out.title.as_deref(),
        Some("Field Guide — Birds, Fish and Trees")
    );
    assert_eq!(
        pages(&out),
        [
            "Birds of Prey\n\nThe falcon is a bird of prey that hunts small birds in flight.\n\
             Falcons nest on cliffs and on tall buildings.",
            "Freshwater Fish\n\nTrout are freshwater fish of cold rivers and lakes.\n\
             Anglers eat them in a café by the river.",
            // Words spaced by TJ displacements, and "W" kerned against "ood".
            "Trees\n\nThe oak is a tree; its fruit is the acorn.\nWood from oak makes strong barrels.",
        ]
    );
    // Pages are separated by one blank line, and offsets are into the text (identity map).
    let starts = out.pages.clone().unwrap();
    assert_eq!(&out.text[starts[1] - 2..starts[1]], "\n\n");
    assert!(out.map.is_identity() && out.unreadable_pages.is_empty());
    // Every chunk is on the page its first sentence came from.
    for c in chunk(
        &out.text,
        Strategy::Sentences { max_tokens: 12 },
        &whitespace_tokens,
    ) {
        let body = &out.text[c.start..c.end];
        let page = out.page_at(c.start).unwrap();
        let expected = if body.contains("falcon") || body.contains("Falcons") {
            1
        } else if body.contains("Trout") || body.contains("Anglers") {
            2
        } else if body.contains("oak") {
            3
        } else {
            continue;
        };
        assert_eq!(page, expected, "{body:?}");
    }
    assert_eq!(page_at(&starts, out.text.len()), Some(3));
}

#[test]
fn ligatures_and_line_end_hyphens_are_cleaned() {
    let out = read("ligatures.pdf");
    assert_eq!(out.title, None, "no Info dictionary");
    assert_eq!(
        out.text,
        "The final flight was efficient.\n\
         Typesetters break long words with hyphenation at the end of a line; hyphenation is undone\n\
         when the joined word occurs elsewhere. A compound\n\
         such as well-known keeps its hyphen."
    );
    assert_eq!(out.pages, Some(vec![0]));
}

#[test]
fn hazards_are_contained_and_repaired() {
    // Page 1 draws a form that draws itself: refused (the parser would overflow the stack);
    // page 2's ' and " operators and page 3's missing media box are repaired.
    let out = read("hazards.pdf");
    assert_eq!(out.unreadable_pages, [1]);
    assert_eq!(
        pages(&out),
        [
            "",
            "Shown by Tj.\nShown by the quote operator.\nShown by the double quote operator.",
            "A page without a media box.",
        ]
    );
    assert_eq!(
        out.page_at(0),
        Some(2),
        "the empty page starts where page 2 does"
    );
}

#[test]
fn a_truncated_file_gives_the_pages_before_the_cut() {
    // Its cross-reference table was cut off: a table rebuilt from the objects finds page 1.
    let out = read("truncated.pdf");
    assert_eq!(
        out.text,
        "Birds of Prey\n\nThe falcon is a bird of prey that hunts small birds in flight.\n\
         Falcons nest on cliffs and on tall buildings."
    );
    assert_eq!(out.pages, Some(vec![0]));
    // Offsets shifted by an inserted line are found again too.
    let mut shifted = fixture("three-pages.pdf");
    shifted.splice(15..15, b"% a comment added by an editor\n".iter().copied());
    let out = extract_bytes(Format::Pdf, &shifted).unwrap();
    assert_eq!(out.text, read("three-pages.pdf").text);
}

#[test]
fn files_without_text_are_clear_errors() {
    let err = |bytes: &[u8]| extract_bytes(Format::Pdf, bytes).unwrap_err();
    assert!(matches!(
        err(&fixture("corrupt.pdf")),
        ExtractError::PdfUnreadable(_)
    ));
    assert!(matches!(
        err(&fixture("encrypted.pdf")),
        ExtractError::PdfEncrypted
    ));
    let no_text = err(&fixture("no-text.pdf"));
    assert!(matches!(no_text, ExtractError::PdfNoText { pages: 1 }));
    assert!(
        no_text.to_string().contains("scanned or image-only"),
        "{no_text}"
    );
    for junk in [
        &b""[..],
        b"%PDF-1.7",
        b"plain text, not a PDF",
        b"%PDF-1.4\n1 0 obj << >>",
    ] {
        let e = err(junk);
        assert!(
            matches!(e, ExtractError::PdfUnreadable(_)),
            "{junk:?}: {e:?}"
        );
        // The parser's own error stays reachable as the source.
        assert!(std::error::Error::source(&e).is_some(), "{junk:?}");
    }
    // Without bytes to parse, the text API gives an empty text rather than an error.
    assert_eq!(sextant_text::extract(Format::Pdf, "not a pdf").text, "");
}

/// A small xorshift generator, so the damage is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Quality contract: no damaged copy of a fixture makes extraction panic (or abort the test
/// process); each is text with valid page starts, or an error.
#[test]
fn damaged_pdfs_give_text_or_an_error_never_a_panic() {
    let mut rng = Rng(0x5eed_cafe);
    let (mut ok, mut failed) = (0, 0);
    for name in ["three-pages.pdf", "ligatures.pdf", "hazards.pdf"] {
        let original = fixture(name);
        let mut copies: Vec<Vec<u8>> = (0..original.len())
            .step_by(11)
            .map(|n| original[..n].to_vec())
            .collect();
        for _ in 0..300 {
            let mut b = original.clone();
            for _ in 0..1 + rng.below(6) {
                let at = rng.below(b.len());
                match rng.below(3) {
                    0 => b[at] = rng.next() as u8,
                    1 => {
                        let n = rng.below(40).min(b.len() - at);
                        b.drain(at..at + n);
                    }
                    _ => b.insert(at, rng.next() as u8),
                }
            }
            copies.push(b);
        }
        for bytes in &copies {
            match extract_bytes(Format::Pdf, bytes) {
                Ok(out) => {
                    ok += 1;
                    let starts = out.pages.unwrap();
                    assert!(starts.windows(2).all(|w| w[0] <= w[1]));
                    assert!(starts.iter().all(|&s| s <= out.text.len()));
                    assert!(!out.text.trim().is_empty());
                }
                Err(_) => failed += 1,
            }
        }
    }
    // Both outcomes happen: damage in a page's text still reads, damage to the structure fails.
    assert!(ok > 50 && failed > 50, "ok {ok}, failed {failed}");
}
