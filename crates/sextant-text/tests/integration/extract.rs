//! Realistic pages through `extract`: what is kept, what is dropped, headings, titles, and that
//! every word of the text maps back to the source bytes it came from.

use sextant_text::chunk::{chunk, whitespace_tokens, Strategy};
use sextant_text::extract::{decode_entities, extract, Extracted, Format};

const BLOG: &str = r#"<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Tuning HNSW &amp; friends &mdash; Sextant blog</title>
  <style>body { font-family: sans-serif } .x::before { content: "<p>not text</p>" }</style>
  <script>window.dataLayer = []; if (a < b) { document.write("<p>tracking</p>") }</script>
</head>
<body>
  <div class="cookie-banner" id="consent">
    <p>We use cookies to improve your experience.</p>
    <button>Accept all</button>
  </div>
  <header class="site-header">
    <a href="/" class="logo">Sextant</a>
    <nav><ul><li><a href="/docs">Docs</a></li><li><a href="/blog">Blog</a></li></ul></nav>
  </header>
  <main>
    <article>
      <header><h1>Tuning HNSW</h1><p class="byline">By Ada &middot; 3 min read</p></header>
      <p>Graph indexes trade   memory
         for speed&nbsp;&mdash; and <em>recall</em> depends on <code>ef</code>.</p>
      <h2>Parameters</h2>
      <ul>
        <li>M: links per node
          <ul><li>higher M, better recall</li><li>more memory</li></ul>
        </li>
        <li>ef_construction: beam width at build time</li>
      </ul>
      <pre><code>let index = Hnsw::new(16, 200);
if a &lt; b {
    search(&amp;q);
}</code></pre>
      <h3>Results</h3>
      <table><tr><th>m</th><th>recall</th></tr><tr><td>16</td><td>0.95</td></tr></table>
      <div hidden>Secret draft note</div>
      <p>Caf&eacute; owners love <span aria-hidden="true">ICON</span>fast search.</p>
      <div class="related"><a href="/a">Related one</a> <a href="/b">Related two</a> <a href="/c">Related three</a></div>
    </article>
  </main>
  <aside class="sidebar"><h2>Subscribe</h2><p>Get our newsletter.</p></aside>
  <footer><p>&copy; 2025 Sextant. <a href="/privacy">Privacy</a></p></footer>
  <script src="/app.js"></script>
</body>
</html>
"#;

/// `s` without `<…>` markup (enough for the pages of these tests).
fn strip_tags(s: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in s.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

/// Every character of the text maps back, in order, to source bytes that decode to it; only
/// characters extraction inserted (breaks, `#`, `-`, `|`, spaces) map to nothing.
fn assert_words_map_back(source: &str, out: &Extracted) {
    let mut last_end = 0;
    for (i, c) in out.text.char_indices() {
        let r = out.map.range_to_source(i..i + c.len_utf8());
        assert!(
            source.is_char_boundary(r.start) && source.is_char_boundary(r.end),
            "{c:?} at {i} maps to {r:?}, not on char boundaries"
        );
        if r.is_empty() {
            assert!("#-| \n\\".contains(c), "{c:?} at {i} maps to nothing");
            continue;
        }
        assert!(
            r.start >= last_end,
            "{c:?} at {i} maps to {r:?}, before {last_end}"
        );
        last_end = r.end;
        let decoded = decode_entities(&source[r.clone()]);
        let ok = if c.is_whitespace() {
            decoded.chars().all(char::is_whitespace)
        } else {
            decoded == c.to_string()
        };
        assert!(ok, "{c:?} at {i} maps to {r:?} = {:?}", &source[r.clone()]);
    }
}

#[test]
fn blog_post_keeps_the_article_and_drops_the_furniture() {
    let out = extract(Format::Html, BLOG);
    let text = &out.text;
    assert_eq!(
        out.title.as_deref(),
        Some("Tuning HNSW & friends — Sextant blog")
    );
    for kept in [
        "# Tuning HNSW\n\nBy Ada · 3 min read\n\n",
        "Graph indexes trade memory for speed — and recall depends on ef.",
        "\n\n## Parameters\n\n- M: links per node\n  - higher M, better recall\n  - more memory\n- ef_construction: beam width at build time\n\n",
        "let index = Hnsw::new(16, 200);\nif a < b {\n    search(&q);\n}",
        "### Results",
        "m | recall\n16 | 0.95",
        "Café owners love fast search.",
    ] {
        assert!(text.contains(kept), "missing {kept:?} in\n{text}");
    }
    for dropped in [
        "cookies",
        "Accept",
        "Docs",
        "Blog",
        "Sextant\n",
        "tracking",
        "font-family",
        "not text",
        "Secret",
        "ICON",
        "Related",
        "Subscribe",
        "newsletter",
        "©",
        "Privacy",
        "dataLayer",
    ] {
        assert!(
            !text.contains(dropped),
            "{dropped:?} should be dropped:\n{text}"
        );
    }
    assert!(!text.starts_with(char::is_whitespace) && !text.ends_with(char::is_whitespace));
    assert!(!text.contains("\n\n\n"), "no runs of blank lines:\n{text}");
    assert_words_map_back(BLOG, &out);
    // A word copied verbatim maps to exactly its bytes.
    let at = text.find("recall depends").unwrap();
    assert_eq!(&BLOG[out.map.range_to_source(at..at + 6)], "recall");
    let at = text.find("Café").unwrap();
    assert_eq!(
        &BLOG[out.map.range_to_source(at..at + "Café".len())],
        "Caf&eacute;"
    );
}

#[test]
fn headings_become_sections_for_the_paragraph_chunker() {
    let out = extract(Format::Html, BLOG);
    let chunks = chunk(
        &out.text,
        Strategy::Paragraphs { max_tokens: 40 },
        &whitespace_tokens,
    );
    let sections: Vec<Option<&str>> = chunks.iter().map(|c| c.section.as_deref()).collect();
    assert!(sections.contains(&Some("Tuning HNSW")), "{sections:?}");
    assert!(sections.contains(&Some("Parameters")), "{sections:?}");
    assert!(sections.contains(&Some("Results")), "{sections:?}");
    for c in &chunks {
        let src = out.map.range_to_source(c.start..c.end);
        assert!(src.start < src.end && src.end <= BLOG.len());
        // The chunk's first and last words are at the ends of its source range.
        let piece = &out.text[c.start..c.end];
        let last = piece.split_whitespace().last().unwrap();
        let last_clean = last.trim_end_matches(['.', ';', '}']);
        if !last_clean.is_empty() && !last.contains(['&', '<', '·', '—', 'é']) {
            assert!(
                strip_tags(&BLOG[src.clone()])
                    .trim_end_matches(['.', ';', '}'])
                    .ends_with(last_clean),
                "{piece:?} → {:?}",
                &BLOG[src]
            );
        }
    }
}

#[test]
fn main_is_preferred_and_title_falls_back_to_h1() {
    let src = "<body><div>Top banner text that is long enough to matter here</div>\
               <div role=main><h1>Only&nbsp;this</h1><p>Body.</p></div>\
               <div>Bottom text</div></body>";
    let out = extract(Format::Html, src);
    assert_eq!(out.text, "# Only this\n\nBody.");
    assert_eq!(out.title.as_deref(), Some("Only this"));
    // No <main>, several articles: the whole body, both articles.
    let src = "<article><h2>A</h2><p>one</p></article><article><h2>B</h2><p>two</p></article>";
    assert_eq!(
        extract(Format::Html, src).text,
        "## A\n\none\n\n## B\n\ntwo"
    );
    assert_eq!(extract(Format::Html, src).title, None);
}

#[test]
fn link_lists_go_but_a_page_made_of_links_stays() {
    let src = "<p>Read the <a href=x>full report</a> before Friday.</p>\
               <ul><li><a href=1>Home</a></li><li><a href=2>About</a></li><li><a href=3>Contact us</a></li></ul>";
    let out = extract(Format::Html, src);
    assert_eq!(out.text, "Read the full report before Friday.");
    // When links are most of the page, they are the content.
    let src = "<ul><li><a href=1>Alpha paper</a></li><li><a href=2>Beta paper</a></li></ul>";
    assert_eq!(
        extract(Format::Html, src).text,
        "- Alpha paper\n- Beta paper"
    );
}

#[test]
fn a_page_wrapped_in_a_form_or_made_of_furniture_is_still_read() {
    // ASP.NET WebForms wrap the whole page in a <form>.
    let src = "<body><form id=aspnetForm><nav><a href=/>Home</a></nav>\
               <h1>Quarterly report</h1><p>Revenue grew by four percent this quarter.</p>\
               </form><form><input name=q><p>Search</p></form></body>";
    assert_eq!(
        extract(Format::Html, src).text,
        "# Quarterly report\n\nRevenue grew by four percent this quarter."
    );
    // Nothing but furniture: read it rather than return nothing.
    let src = "<nav><ul><li><a href=a>Alpha</a></li><li><a href=b>Beta</a></li></ul></nav>";
    assert_eq!(extract(Format::Html, src).text, "- Alpha\n- Beta");
    // Hidden stays hidden even then.
    assert_eq!(extract(Format::Html, "<nav hidden>x</nav>").text, "");
}

#[test]
fn only_real_headings_become_sections() {
    let src = "<h2>Install</h2><pre># fetch the sources\ngit clone x\n  ## not a heading\n#!shebang</pre>\
               <p># literal hash text</p>";
    let out = extract(Format::Html, src);
    assert_eq!(
        out.text,
        "## Install\n\n\\# fetch the sources\ngit clone x\n  \\## not a heading\n#!shebang\n\n\\# literal hash text"
    );
    assert_words_map_back(src, &out);
    let chunks = chunk(
        &out.text,
        Strategy::Paragraphs { max_tokens: 5 },
        &whitespace_tokens,
    );
    assert!(
        chunks
            .iter()
            .all(|c| c.section.as_deref() == Some("Install")),
        "{chunks:?}"
    );
    let at = out.text.find("fetch").unwrap();
    assert_eq!(&src[out.map.range_to_source(at..at + 5)], "fetch");
}

#[test]
fn titles_skip_icons_and_hidden_anchors() {
    let src = "<body><svg><title>Menu icon</title></svg>\
               <h1><a class=anchor aria-hidden=true>#</a>Caf<b>&eacute;</b> hours</h1></body>";
    assert_eq!(
        extract(Format::Html, src).title.as_deref(),
        Some("Café hours")
    );
}

#[test]
fn hidden_styles_breaks_and_inline_whitespace() {
    let src = "<p>one<br>two<br><br>three</p><div style=\"display: none\">gone</div>\
               <p>a<b>b</b> c <i> d</i></p><h2>Multi<br>line</h2><p>x&#10;y</p>";
    assert_eq!(
        extract(Format::Html, src).text,
        "one\ntwo\n\nthree\n\nab c d\n\n## Multi line\n\nx y"
    );
}

#[test]
fn malformed_and_empty_inputs_never_panic() {
    for src in [
        "",
        "   ",
        "<",
        "<<<>>>",
        "</p></div>text",
        "<p>unclosed <b>bold <i>italic",
        "<script>never closed",
        "<!-- open comment",
        "<title>t</title",
        "<a href=\"unterminated>link",
        "\u{fffd}\u{fffd} lossy � bytes <p>é</p>",
        "<table><td>cell<tr>row</table>",
        "&",
        "&#xFFFFFFFF; &#55296;",
        "<pre>\n\n</pre>",
    ] {
        let out = extract(Format::Html, src);
        let _ = out.map.range_to_source(0..out.text.len());
        assert_words_map_back(src, &out);
    }
    assert_eq!(extract(Format::Html, "").text, "");
    assert_eq!(
        extract(Format::Html, "<p>unclosed <b>bold <i>italic").text,
        "unclosed bold italic"
    );
}

use proptest::strategy::Strategy as _;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Random tag soup: no panic, offsets on char boundaries and in order, words map back.
    #[test]
    fn random_tag_soup(parts in proptest::collection::vec(
        proptest::prop_oneof![
            proptest::string::string_regex("[a-zé東 ]{0,8}").unwrap(),
            proptest::sample::select(vec![
                "<p>", "</p>", "<div>", "</div>", "<h2>", "</h2>", "<li>", "<ul>", "</ul>",
                "<pre>", "</pre>", "<br>", "<script>", "</script>", "<a href=x>", "</a>",
                "&amp;", "&eacute;", "&#233;", "&", "<", ">", "<!--", "-->", "\n", "<nav>",
                "</nav>", "<td>", "<tr>", "<b>", "</b>", "<main>", "</main>", "<title>",
                "</title>", "<span hidden>", "</span>", "# ", "## ", "<h1>", "</h1>",
            ]).prop_map(str::to_string),
        ],
        0..40,
    )) {
        let src: String = parts.concat();
        let out = extract(Format::Html, &src);
        let mut last = 0;
        for run in out.map.runs() {
            proptest::prop_assert!(run.source_start >= last);
            last = run.source_start + run.source_len;
            proptest::prop_assert!(last <= src.len());
            proptest::prop_assert!(src.is_char_boundary(run.source_start) && src.is_char_boundary(last));
        }
        assert_words_map_back(&src, &out);
    }
}

/// Every `.html` file under `$SEXTANT_HTML_DIR` (at most `$SEXTANT_HTML_LIMIT`, default 2,000):
/// no panic, every character maps back. The Rust documentation that rustup installs
/// (`<toolchain>/share/doc/rust/html`) is a good corpus: 3,000 pages took 3 s.
#[test]
#[ignore = "smoke test over a directory of real pages: SEXTANT_HTML_DIR"]
fn smoke_real_pages() {
    let Ok(dir) = std::env::var("SEXTANT_HTML_DIR") else {
        return;
    };
    let limit: usize = std::env::var("SEXTANT_HTML_LIMIT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mut stack = vec![std::path::PathBuf::from(dir)];
    let (mut n, mut bytes, mut empty) = (0, 0, 0);
    let t = std::time::Instant::now();
    while let Some(p) = stack.pop() {
        if n >= limit {
            break;
        }
        if p.is_dir() {
            for e in std::fs::read_dir(&p).unwrap() {
                stack.push(e.unwrap().path());
            }
            continue;
        }
        if p.extension().is_none_or(|e| e != "html") {
            continue;
        }
        let src = String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned();
        let out = extract(Format::Html, &src);
        assert_words_map_back(&src, &out);
        if out.text.is_empty() {
            empty += 1;
            println!("EMPTY {}", p.display());
        }
        n += 1;
        bytes += src.len();
    }
    println!("{n} pages, {bytes} bytes, {empty} empty, {:?}", t.elapsed());
}
