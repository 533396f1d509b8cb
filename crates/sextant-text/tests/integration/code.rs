//! The code chunker: whole source files cut at their items, with symbols, and the properties
//! every cut keeps whatever the input (property tests over fragments of each language).

use std::path::Path;

use proptest::prelude::*;
use sextant_text::chunk::{code, whitespace_tokens, Chunk, CodeLanguage};
use sextant_text::extract::{extract, Format};

fn cut(src: &str, lang: CodeLanguage, max: usize) -> Vec<(&str, Option<String>)> {
    code(src, lang, max, &whitespace_tokens)
        .into_iter()
        .map(|c| (&src[c.start..c.end], c.section))
        .collect()
}

const RUST: &str = r#"//! A small module.

use std::fmt;

/// A point.
#[derive(Debug, Clone)]
pub struct Point {
    pub x: i32,
    pub y: i32,
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.x, self.y)
    }
}

impl Point {
    /// The origin.
    pub fn origin() -> Self {
        Point { x: 0, y: 0 }
    }

    /// Distance to another point, squared.
    pub fn dist2(&self, o: &Point) -> i64 {
        let dx = i64::from(self.x - o.x);
        let dy = i64::from(self.y - o.y);

        // No square root: integers stay exact.
        dx * dx + dy * dy
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn origin() {
        assert_eq!(super::Point::origin().x, 0);
    }
}
"#;

fn symbols(chunks: &[(&str, Option<String>)]) -> Vec<String> {
    chunks
        .iter()
        .map(|(_, s)| s.clone().unwrap_or_default())
        .collect()
}

#[test]
fn rust_items_with_their_docs_and_attributes() {
    // A budget for the whole file: one chunk listing its items.
    let chunks = cut(RUST, CodeLanguage::Rust, 1000);
    assert_eq!(
        symbols(&chunks),
        ["struct Point, impl fmt::Display for Point, impl Point, mod tests"]
    );
    // Items packed up to the budget; `impl Point` is too big, so it is cut at its methods,
    // each with its doc comment.
    let chunks = cut(RUST, CodeLanguage::Rust, 60);
    assert_eq!(
        symbols(&chunks),
        [
            "struct Point, impl fmt::Display for Point",
            "impl Point > fn origin",
            "impl Point > fn dist2",
            "mod tests"
        ],
        "{chunks:#?}"
    );
    assert!(chunks[0]
        .0
        .starts_with("//! A small module.\n\nuse std::fmt;\n\n/// A point.\n#[derive"));
    assert!(chunks[1].0.starts_with("impl Point {\n    /// The origin."));
    assert!(chunks[2].0.starts_with("    /// Distance"));
    assert!(chunks[3].0.starts_with("#[cfg(test)]\nmod tests {"));
    assert_eq!(chunks.concat_text(), RUST);
    // Smaller: the long method is cut inside, at its blank line.
    let chunks = cut(RUST, CodeLanguage::Rust, 30);
    assert_eq!(
        symbols(&chunks),
        [
            "struct Point",
            "impl fmt::Display for Point",
            "impl Point > fn origin",
            "impl Point > fn dist2",
            "impl Point > fn dist2",
            "mod tests"
        ],
        "{chunks:#?}"
    );
    assert!(chunks[3]
        .0
        .ends_with("let dy = i64::from(self.y - o.y);\n\n"));
    assert!(chunks[4].0.starts_with("        // No square root"));
    assert_eq!(chunks.concat_text(), RUST);
}

const PYTHON: &str = r#"import os


@dataclass
class Store:
    """Keeps things.

    def not_a_method(self): inside the docstring
    """

    def get(self, key):
        return self.items[key]

    async def put(self, key, value):
        if key in self.items:
            raise KeyError(key)
        else:
            self.items[key] = value


def main():
    s = Store()
    print(s.get("a{"))


if __name__ == "__main__":
    main()
"#;

#[test]
fn python_classes_methods_and_decorators() {
    let chunks = cut(PYTHON, CodeLanguage::Python, 40);
    assert_eq!(symbols(&chunks), ["class Store", "def main"], "{chunks:#?}");
    assert!(chunks[0]
        .0
        .starts_with("import os\n\n\n@dataclass\nclass Store:"));
    assert!(chunks[1]
        .0
        .ends_with("if __name__ == \"__main__\":\n    main()\n"));
    let chunks = cut(PYTHON, CodeLanguage::Python, 20);
    assert_eq!(
        symbols(&chunks),
        [
            "",
            "class Store",
            "class Store > def get, def put",
            "def main"
        ],
        "{chunks:#?}"
    );
    // Cut inside `put`, the `else` stays with its `if`; nothing is cut in the docstring.
    let chunks = cut(PYTHON, CodeLanguage::Python, 12);
    assert!(chunks.iter().all(|(t, _)| !t.starts_with("        else:")
        && !t.starts_with("    def not_a_method")), "{chunks:#?}");
    assert!(chunks
        .iter()
        .any(|(t, s)| s.as_deref() == Some("class Store > def put")
            && t.starts_with("        if key in self.items:")));
}

#[test]
fn go_java_c_and_typescript() {
    let go = "package main\n\nimport \"fmt\"\n\ntype Server struct {\n\tAddr string\n}\n\nfunc (s *Server) Serve() error {\n\tfmt.Println(`raw } string`)\n\treturn nil\n}\n\nfunc main() {\n\t_ = '}'\n}\n";
    let chunks = cut(go, CodeLanguage::Go, 12);
    assert_eq!(
        symbols(&chunks),
        ["type Server", "func (s *Server) Serve", "func main"],
        "{chunks:#?}"
    );
    let java = "package a;\n\n@Service\npublic class Cart {\n    private final List<Item> items = new ArrayList<>();\n\n    @Override\n    public String toString()\n    {\n        return \"Cart{\" + items + \"}\";\n    }\n}\n";
    let chunks = cut(java, CodeLanguage::Java, 12);
    assert_eq!(chunks[1].1.as_deref(), Some("class Cart"), "{chunks:#?}");
    assert!(chunks
        .iter()
        .any(|(t, s)| s.as_deref() == Some("class Cart > toString()")
            && t.starts_with("    @Override")));
    let c = "#include <stdio.h>\n\nstatic int twice(int x)\n{\n    return 2 * x; /* } */\n}\n\nint main(void) {\n    printf(\"%d}\\n\", twice(2));\n    return 0;\n}\n";
    let chunks = cut(c, CodeLanguage::C, 16);
    assert_eq!(symbols(&chunks), ["twice()", "main()"], "{chunks:#?}");
    assert!(chunks[0]
        .0
        .starts_with("#include <stdio.h>\n\nstatic int twice"));
    let ts = "export interface Shape {\n  area(): number;\n}\n\nexport const square = (s: number): Shape => ({\n  area: () => s * s,\n});\n";
    let symbols: Vec<Option<String>> = cut(ts, CodeLanguage::TypeScript, 16)
        .into_iter()
        .map(|(_, s)| s)
        .collect();
    assert_eq!(
        symbols,
        [Some("interface Shape".into()), Some("const square".into())]
    );
}

#[test]
fn code_files_are_detected_and_extracted_as_they_are() {
    assert_eq!(Format::detect(Path::new("src/lib.rs"), ""), Format::Code);
    assert_eq!(
        Format::detect(Path::new("deploy"), "#!/usr/bin/env bash\nset -e\n"),
        Format::Code
    );
    assert_eq!(
        CodeLanguage::detect(Path::new("deploy"), "#!/usr/bin/env bash\n"),
        Some(CodeLanguage::Shell)
    );
    let out = extract(Format::Code, RUST);
    assert_eq!(out.text, RUST);
    assert!(out.map.is_identity() && out.title.is_none());
    assert!(code("", CodeLanguage::Rust, 10, &whitespace_tokens).is_empty());
}

trait ConcatText {
    fn concat_text(&self) -> String;
}

impl ConcatText for Vec<(&str, Option<String>)> {
    fn concat_text(&self) -> String {
        self.iter().map(|(t, _)| *t).collect()
    }
}

/// Fragments that exercise every lexer rule, in any order (unbalanced on purpose).
const FRAGMENTS: &[&str] = &[
    "fn f() {",
    "def g(x):",
    "class C:",
    "impl T for U {",
    "function h() {",
    "func (s *S) M() {",
    "end",
    "fi",
    "else:",
    "} else {",
    "}",
    "{",
    "(",
    ")",
    "[",
    "]",
    "\n",
    "\n\n",
    "    ",
    "\t",
    "  ",
    "x = 1;",
    "return y",
    "\"str } {\"",
    "'c'",
    "'}'",
    "'a",
    "`tpl {\n}`",
    "r#\"raw }\"#",
    "\"\"\"doc\n{\n\"\"\"",
    "'''",
    "// comment {",
    "/* block { */",
    "/*",
    "*/",
    "# hash {",
    "<<EOF\n}\nEOF\n",
    "=begin\n{\n=end\n",
    "@decorator",
    "#[attr]",
    "\\\n",
    "/re{/",
    "1 / 2",
    "é",
    "東",
    "\r\n",
    "@\"verb}\"",
    "R\"x(})x\"",
    "$#",
    "${#x}",
];

fn check(text: &str, chunks: &[Chunk], max: usize) -> Result<(), TestCaseError> {
    if text.is_empty() {
        prop_assert!(chunks.is_empty());
        return Ok(());
    }
    prop_assert!(!chunks.is_empty());
    prop_assert_eq!(chunks[0].start, 0);
    prop_assert_eq!(chunks[chunks.len() - 1].end, text.len());
    for w in chunks.windows(2) {
        prop_assert_eq!(w[0].end, w[1].start, "no gap, no overlap");
    }
    for c in chunks {
        prop_assert!(c.start < c.end, "empty chunk {:?}", c);
        prop_assert!(
            c.start == 0 || text.as_bytes()[c.start - 1] == b'\n',
            "starts a line"
        );
        prop_assert!(
            c.end == text.len() || text.as_bytes()[c.end - 1] == b'\n',
            "ends a line"
        );
        let piece = &text[c.start..c.end];
        let lines = piece.trim_end_matches('\n').matches('\n').count() + 1;
        let n = whitespace_tokens(piece).len();
        prop_assert!(
            n <= max || lines == 1,
            "{} tokens in {} lines: {:?}",
            n,
            lines,
            piece
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn chunks_cover_the_file_in_order_within_the_budget(
        parts in proptest::collection::vec(proptest::sample::select(FRAGMENTS), 0..120),
        lang in proptest::sample::select(CodeLanguage::ALL),
        max in 1usize..40,
    ) {
        let text: String = parts.concat();
        let chunks = code(&text, lang, max, &whitespace_tokens);
        check(&text, &chunks, max)?;
    }

    #[test]
    fn any_text_is_cut_safely(
        text in "(?s).{0,400}",
        lang in proptest::sample::select(CodeLanguage::ALL),
        max in 1usize..20,
    ) {
        let chunks = code(&text, lang, max, &whitespace_tokens);
        check(&text, &chunks, max)?;
    }
}
