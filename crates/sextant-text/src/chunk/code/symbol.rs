//! Symbols of declaration lines: `fn parse`, `class Foo`, `impl Display for Id`,
//! `func (s *Server) Serve`, `main()`, by a few regular expressions per language (a heuristic:
//! a line that declares nothing in a recognisable way names nothing).

use std::sync::OnceLock;

use regex::Regex;

use crate::extract::CodeLanguage;

/// Longest symbol kept, in bytes (a declaration line can be very long, and a chunk can pack
/// many items).
const MAX_SYMBOL: usize = 120;

/// `s` cut to at most [`MAX_SYMBOL`] bytes (on a char boundary), `…` marking the cut.
pub(super) fn clip(s: &str) -> String {
    if s.len() <= MAX_SYMBOL {
        return s.to_string();
    }
    let mut end = MAX_SYMBOL;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Words that look like a call or definition but are not one.
const NOT_NAMES: &[&str] = &[
    "if",
    "for",
    "while",
    "switch",
    "return",
    "catch",
    "sizeof",
    "new",
    "else",
    "do",
    "case",
    "throw",
    "typeof",
    "await",
    "delete",
    "using",
    "lock",
    "foreach",
    "yield",
    "super",
    "this",
    "assert",
    "synchronized",
    "with",
    "function",
    "elif",
    "match",
    "when",
];

/// The symbol a declaration line names (`fn parse`, `class Foo`, `impl Trait for T`,
/// `func (s *Server) Serve`, `main()`), if it is one.
pub(super) fn symbol(language: CodeLanguage, line: &str) -> Option<String> {
    static PATTERNS: OnceLock<Vec<(CodeLanguage, Regex)>> = OnceLock::new();
    let patterns = PATTERNS.get_or_init(|| {
        let rust_item = r#"^(?:pub(?:\s*\([^)]*\))?\s+)?(?:(?:default|const|async|unsafe|extern(?:\s+"[^"]*")?)\s+)*(?P<kind>fn|struct|enum|union|trait|mod|type|static|const|macro_rules!)\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)"#;
        let rust_impl = r"^(?:unsafe\s+)?(?P<kind>impl\b.*?)\s*(?:\bwhere\b.*)?\{?\s*$";
        let js_item = r"^(?:export\s+)?(?:default\s+)?(?:declare\s+)?(?:abstract\s+)?(?:async\s+)?(?P<kind>function\*?|class|interface|type|enum|namespace)\s+(?P<name>[A-Za-z_$][\w$]*)";
        let js_binding = r"^(?:export\s+)?(?P<kind>const|let|var)\s+(?P<name>[A-Za-z_$][\w$]*)\s*(?::[^=]*)?=\s*(?:async\s+)?(?:function\b|\([^)]*\)\s*(?::[^=]*)?=>|[A-Za-z_$][\w$]*\s*=>)";
        let js_method = r"^(?:(?:public|private|protected|static|async|readonly|override|get|set|abstract)\s+)*\*?(?P<name>[A-Za-z_$#][\w$]*)\s*(?:<[^>]*>)?\s*\(.*[)\{]$";
        let go_func = r"^(?P<kind>func(?:\s*\([^)]*\))?)\s*(?P<name>[A-Za-z_]\w*)";
        let go_type = r"^(?P<kind>type)\s+(?P<name>[A-Za-z_]\w*)";
        let jvm_type = r"^(?:(?:public|private|protected|internal|static|final|abstract|sealed|partial|readonly|unsafe|virtual|override|new|strictfp|file|ref)\s+)*(?P<kind>class|interface|enum|record|struct|namespace|@interface)\s+(?P<name>[A-Za-z_]\w*)";
        let c_type = r"^(?:template\s*<.*>\s*)?(?:typedef\s+)?(?P<kind>class|struct|union|enum(?:\s+class)?|namespace)\s+(?P<name>[A-Za-z_]\w*)";
        let c_function = r"^(?:[\w:<>,*&\[\]~]+[\s*&]+)*(?P<name>[A-Za-z_~][\w:~]*)\s*\([^;]*[)\{]$";
        let py = r"^(?:async\s+)?(?P<kind>def|class)\s+(?P<name>[A-Za-z_]\w*)";
        let rb = r"^(?P<kind>def|class|module)\s+(?P<name>(?:self\.)?[\w:]+[?!=]?)";
        let sh_function = r"^(?P<kind>function)\s+(?P<name>[\w.:-]+)";
        let sh_parens = r"^(?P<name>[A-Za-z_][\w.:-]*)\s*\(\s*\)";
        let table: &[(CodeLanguage, &[&str])] = &[
            (CodeLanguage::Rust, &[rust_item, rust_impl]),
            (CodeLanguage::Python, &[py]),
            (CodeLanguage::JavaScript, &[js_item, js_binding, js_method]),
            (CodeLanguage::TypeScript, &[js_item, js_binding, js_method]),
            (CodeLanguage::Go, &[go_func, go_type]),
            (CodeLanguage::Java, &[jvm_type, c_function]),
            (CodeLanguage::CSharp, &[jvm_type, c_function]),
            (CodeLanguage::C, &[c_type, c_function]),
            (CodeLanguage::Cpp, &[c_type, c_function]),
            (CodeLanguage::Ruby, &[rb]),
            (CodeLanguage::Shell, &[sh_function, sh_parens]),
        ];
        table
            .iter()
            .flat_map(|(l, ps)| {
                ps.iter()
                    .map(|p| (*l, Regex::new(p).expect("symbol patterns are valid")))
            })
            .collect()
    });
    patterns
        .iter()
        .filter(|(l, _)| *l == language)
        .find_map(|(_, re)| {
            let caps = re.captures(line)?;
            let kind = caps.name("kind").map(|m| m.as_str().trim());
            let name = caps.name("name").map(|m| m.as_str());
            let s = match (kind, name) {
                (Some(k), Some(n)) => format!("{k} {n}"),
                (Some(k), None) => k.to_string(),
                (None, Some(n)) if !NOT_NAMES.contains(&n) => format!("{n}()"),
                (None, _) => return None,
            };
            Some(clip(&s.split_whitespace().collect::<Vec<_>>().join(" ")))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_per_language() {
        let s = |l, line| symbol(l, line);
        assert_eq!(
            s(CodeLanguage::Rust, "pub(crate) async fn load<T>(x: T) {").as_deref(),
            Some("fn load")
        );
        assert_eq!(
            s(
                CodeLanguage::Rust,
                "impl<T: Clone> Display for Wrapper<T> where T: Debug {"
            )
            .as_deref(),
            Some("impl<T: Clone> Display for Wrapper<T>")
        );
        assert_eq!(
            s(CodeLanguage::Rust, "macro_rules! square {").as_deref(),
            Some("macro_rules! square")
        );
        assert_eq!(
            s(CodeLanguage::Python, "async def fetch(url):").as_deref(),
            Some("def fetch")
        );
        assert_eq!(
            s(CodeLanguage::TypeScript, "export default class Store<T> {").as_deref(),
            Some("class Store")
        );
        assert_eq!(
            s(CodeLanguage::JavaScript, "const add = (a, b) => {").as_deref(),
            Some("const add")
        );
        assert_eq!(
            s(CodeLanguage::JavaScript, "  async render() {").as_deref(),
            None,
            "lines are trimmed first"
        );
        assert_eq!(
            s(CodeLanguage::JavaScript, "async render() {").as_deref(),
            Some("render()")
        );
        assert_eq!(s(CodeLanguage::JavaScript, "if (x) {"), None);
        assert_eq!(
            s(
                CodeLanguage::Go,
                "func (s *Server) Serve(l net.Listener) error {"
            )
            .as_deref(),
            Some("func (s *Server) Serve")
        );
        assert_eq!(
            s(
                CodeLanguage::Java,
                "public static void main(String[] args) {"
            )
            .as_deref(),
            Some("main()")
        );
        assert_eq!(
            s(
                CodeLanguage::CSharp,
                "public sealed class Cache : IDisposable"
            )
            .as_deref(),
            Some("class Cache")
        );
        assert_eq!(
            s(
                CodeLanguage::C,
                "static int parse_args(int argc, char **argv)"
            )
            .as_deref(),
            Some("parse_args()")
        );
        assert_eq!(s(CodeLanguage::C, "int x = f(y);"), None);
        assert_eq!(
            s(CodeLanguage::Cpp, "template <typename T> class Vec {").as_deref(),
            Some("class Vec")
        );
        assert_eq!(
            s(CodeLanguage::Ruby, "def self.find!(id)").as_deref(),
            Some("def self.find!")
        );
        assert_eq!(
            s(CodeLanguage::Shell, "deploy() {").as_deref(),
            Some("deploy()")
        );
        assert_eq!(
            s(CodeLanguage::Shell, "function clean {").as_deref(),
            Some("function clean")
        );
    }

    #[test]
    fn long_symbols_are_clipped() {
        let long = format!("fn {}", "x".repeat(200));
        let s = symbol(CodeLanguage::Rust, &long).unwrap();
        assert!(s.ends_with('…') && s.len() <= MAX_SYMBOL + '…'.len_utf8());
        assert_eq!(clip("é".repeat(100).as_str()).chars().last(), Some('…'));
    }
}
