//! The ingestion path these building blocks are made for: extract → redact → chunk, with every
//! chunk's offsets mapped back through both maps to the bytes of the original file.

use std::convert::Infallible;

use sextant_text::chunk::{
    hierarchical, semantic, whitespace_tokens, Chunk, HierarchyOptions, SemanticOptions,
};
use sextant_text::extract::{extract, Format};
use sextant_text::pii::{PiiKind, RedactionMode, Redactor};

const PAGE: &str = r#"<html><head><title>Support</title></head><body>
<nav><a href="/">Home</a> <a href="/help">Help</a></nav>
<main>
<h1>Contact</h1>
<p>Write to <a href="mailto:help@example.com">help@example.com</a> or call +44 20 7946 0958.
Our cats answer every letter. Cats love mail.</p>
<h2>Billing</h2>
<p>Stocks of paper are low. Pay by card 4111&nbsp;1111&nbsp;1111&nbsp;1111 before Friday.</p>
</main></body></html>"#;

fn topics(sentences: &[&str]) -> Result<Vec<Vec<f32>>, Infallible> {
    Ok(sentences
        .iter()
        .map(|s| {
            let s = s.to_lowercase();
            vec![
                f32::from(u8::from(s.contains("cat"))),
                f32::from(u8::from(s.contains("stock") || s.contains("pay"))),
                0.1,
            ]
        })
        .collect())
}

#[test]
fn chunks_of_redacted_text_point_at_the_original_file() {
    let extracted = extract(Format::Html, PAGE);
    assert_eq!(extracted.title.as_deref(), Some("Support"));
    let redactor = Redactor::new(PiiKind::ALL, RedactionMode::Mask);
    let redacted = redactor.redact(&extracted.text);
    assert_eq!(redacted.counts["email"], 1);
    assert_eq!(redacted.counts["phone"], 1);
    assert_eq!(redacted.counts["card"], 1);
    let to_source = |c: &Chunk| {
        extracted
            .map
            .range_to_source(redacted.map.range_to_source(c.start..c.end))
    };

    let semantic_chunks = semantic(
        &redacted.text,
        40,
        &whitespace_tokens,
        &mut topics,
        &SemanticOptions::default(),
    )
    .unwrap();
    let hierarchy = hierarchical(
        &redacted.text,
        &HierarchyOptions {
            parent_max_tokens: 40,
            child_max_tokens: 6,
            child_overlap: 2,
        },
        &whitespace_tokens,
    );
    for c in semantic_chunks
        .iter()
        .chain(&hierarchy.parents)
        .chain(&hierarchy.children)
    {
        let text = &redacted.text[c.start..c.end];
        for secret in ["help@example.com", "7946", "4111"] {
            assert!(!text.contains(secret), "{text:?} leaks {secret}");
        }
        let src = to_source(c);
        let original = &PAGE[src.clone()];
        // The last word of the chunk ends its source range (tokens and markup aside).
        let last = text.split_whitespace().last().unwrap();
        if !last.starts_with('[') {
            assert!(
                original.ends_with(last.trim_end_matches(['.', ']'])) || original.ends_with(last),
                "{text:?} → {original:?}"
            );
        }
        if text.contains("[EMAIL]") {
            assert!(original.contains("help@example.com"), "{original:?}");
        }
        if text.contains("[CARD]") {
            assert!(
                original.contains("4111&nbsp;1111&nbsp;1111&nbsp;1111"),
                "{original:?}"
            );
        }
    }
    let sections: Vec<Option<&str>> = semantic_chunks
        .iter()
        .map(|c| c.section.as_deref())
        .collect();
    assert_eq!(sections.first(), Some(&Some("Contact")));
    assert_eq!(sections.last(), Some(&Some("Billing")));
    // Redacting chunk by chunk instead could have cut the phone number in two.
    let child_texts: Vec<&str> = hierarchy
        .children
        .iter()
        .map(|c| &redacted.text[c.start..c.end])
        .collect();
    assert!(
        child_texts.iter().any(|t| t.contains("[PHONE]")),
        "{child_texts:?}"
    );
}
