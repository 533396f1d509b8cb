//! Code-aware chunking ([`code`]): source files cut at top-level function, class and `impl`
//! boundaries, each chunk labelled with the symbols it holds. The lexer is in `code/lexer.rs`,
//! the symbol patterns in `code/symbol.rs`.

mod lexer;
mod symbol;

use std::ops::Range;

pub use crate::extract::CodeLanguage;

use super::Chunk;
use lexer::{Lexer, Line};
use symbol::{clip, symbol};

/// Items nested deeper than this are cut between lines (generated code can nest thousands of
/// levels deep; following each would overflow the stack).
const MAX_NESTING: usize = 64;
/// Joins a symbol to the symbol of the item it sits in.
const SYMBOL_SEPARATOR: &str = " > ";

/// Cuts source code into chunks at top-level function, class and `impl` boundaries; each
/// chunk's `section` is the symbols it holds (`fn parse`, `class Foo`, `impl Display for Id >
/// fn fmt`; items packed together are listed: `fn a, fn b`). `tokens` gives the token spans
/// of a piece of text (as for [`chunk`](super::chunk)).
///
/// No parser (tree-sitter needs a C build): a small lexer per language family knows comments,
/// strings (escapes, raw strings, Python's triple quotes, JavaScript templates and regular
/// expressions, Go's raw strings, C#'s verbatim strings, shell and Ruby heredocs, Rust's
/// lifetimes versus character literals) and line continuations, so that brackets inside them
/// do not count. Every line then has a *level*: its bracket depth (all of `(`, `[`, `{`; only
/// `{` for shell) and its indentation, compared in that order, so brace languages nest by
/// depth and Python, Ruby and shell by indentation.
///
/// A range of lines is cut into *atoms* at the lines of the lowest level found among its
/// candidate lines. A candidate starts outside any string, comment or continuation, is not
/// blank, is not only comments or an attribute/decorator (`#[…]`, `@…`; those glue to the item
/// below them, together with the comments right above it), and does not continue the line
/// before it: closing brackets, an opening brace on its own line, `else`, `catch`, `where`,
/// Python's `elif`/`except`/`finally`, Ruby's `end`/`rescue`/…, shell's `fi`/`done`/`esac`/….
/// Blank lines stay with the atom above them. At the top of a file the atoms are its items.
///
/// Atoms are packed greedily into chunks of at most `max_tokens` tokens, and when a chunk is
/// full it is cut at the last blank line of its second half if it has one, else before the atom
/// that did not fit. An atom bigger than the budget is cut the same way *inside*: its lines
/// after the declaration line at their own lowest level (an `impl`'s or a class's methods; a
/// function's statements, blank lines preferred), its symbol prefixed to its parts'. A run of
/// lines with no candidate inside (a long string, one huge statement) is cut between lines.
///
/// Guarantees (property-tested): the chunks cover the text in order, without gaps or
/// overlaps, each from a line start to a line end (the last may lack its line break); each
/// holds at most `max_tokens` tokens unless it is a single line that holds more. Token counts
/// are summed per line, which is exact for [`whitespace_tokens`](super::whitespace_tokens).
///
/// Unlike the other chunkers, chunks keep their surrounding whitespace (blank lines, the
/// indentation of the first line), so that joined they give the file back.
///
/// ```
/// use sextant_text::chunk::{code, whitespace_tokens, CodeLanguage};
///
/// let src = "use std::fmt;\n\n/// Parses.\nfn parse(s: &str) -> u32 {\n    s.len() as u32\n}\n\nstruct Point {\n    x: i32,\n}\n";
/// let chunks = code(src, CodeLanguage::Rust, 12, &whitespace_tokens);
/// let parts: Vec<(&str, Option<&str>)> = chunks
///     .iter()
///     .map(|c| (&src[c.start..c.end], c.section.as_deref()))
///     .collect();
/// assert_eq!(parts, [
///     ("use std::fmt;\n\n", None),
///     ("/// Parses.\nfn parse(s: &str) -> u32 {\n    s.len() as u32\n}\n\n", Some("fn parse")),
///     ("struct Point {\n    x: i32,\n}\n", Some("struct Point")),
/// ]);
/// ```
pub fn code(
    text: &str,
    language: CodeLanguage,
    max_tokens: usize,
    tokens: &dyn Fn(&str) -> Vec<Range<usize>>,
) -> Vec<Chunk> {
    let lines = Lexer::new(language).lines(text, tokens);
    if lines.is_empty() {
        return Vec::new();
    }
    let cutter = Cutter {
        text,
        language,
        lines: &lines,
        budget: max_tokens.max(1),
    };
    let mut pieces = Vec::new();
    cutter.split(0, lines.len(), 0, None, 0, &mut pieces);
    pieces
        .into_iter()
        .map(|p| Chunk {
            start: lines[p.lines.start].start,
            end: lines[p.lines.end - 1].end,
            section: p.symbol,
        })
        .collect()
}

/// A contiguous run of lines becoming one chunk.
#[derive(Debug)]
struct Piece {
    lines: Range<usize>,
    symbol: Option<String>,
}

/// An atom: lines that stay together unless they exceed the budget.
#[derive(Debug, Clone)]
struct Unit {
    lines: Range<usize>,
    tokens: usize,
    /// Follows a blank line (a preferred place to cut).
    after_blank: bool,
}

struct Cutter<'a> {
    text: &'a str,
    language: CodeLanguage,
    lines: &'a [Line],
    budget: usize,
}

impl Cutter<'_> {
    /// Cuts lines `lo..hi` into pieces. Lines before `first` are never cut points (the
    /// declaration of the item being cut inside); `depth` counts the items cut inside so far.
    fn split(
        &self,
        lo: usize,
        hi: usize,
        first: usize,
        parent: Option<&str>,
        depth: usize,
        out: &mut Vec<Piece>,
    ) {
        let cuts = self.atoms(lo, hi, first);
        let head = self.head(lo, hi);
        if (cuts.len() == 1 && head < first) || depth >= MAX_NESTING {
            // No structure left to cut at (or too deep to follow): between lines.
            let units = (lo..hi).map(|i| self.unit(i, i + 1)).collect();
            return self.pack(units, parent, None, depth, out);
        }
        let units = cuts
            .iter()
            .enumerate()
            .map(|(k, &s)| self.unit(s, cuts.get(k + 1).copied().unwrap_or(hi)))
            .collect();
        self.pack(units, parent, Some(first), depth, out);
    }

    fn unit(&self, lo: usize, hi: usize) -> Unit {
        Unit {
            lines: lo..hi,
            tokens: self.lines[lo..hi].iter().map(|l| l.tokens).sum(),
            after_blank: lo > 0 && self.lines[lo - 1].blank,
        }
    }

    /// Greedy packing of `units` into pieces within the budget. `symbols_from`: units are
    /// atoms, and those whose declaration line is at or after this one name their piece (the
    /// lines before belong to the parent's declaration); an oversized atom is cut inside.
    /// `None`: units are lines, pieces take the parent's symbol, and a line over the budget
    /// stands alone.
    fn pack(
        &self,
        units: Vec<Unit>,
        parent: Option<&str>,
        symbols_from: Option<usize>,
        depth: usize,
        out: &mut Vec<Piece>,
    ) {
        let flush = |units: &mut Vec<Unit>, out: &mut Vec<Piece>| {
            self.flush(units, parent, symbols_from, out)
        };
        let mut current: Vec<Unit> = Vec::new();
        let mut total = 0;
        for u in units {
            if u.tokens > self.budget && symbols_from.is_some() {
                flush(&mut current, out);
                total = 0;
                let head = self.head(u.lines.start, u.lines.end);
                let symbol = symbols_from
                    .filter(|&from| head >= from)
                    .and_then(|_| self.symbol_of(head, parent));
                let inner = symbol.as_deref().or(parent);
                self.split(u.lines.start, u.lines.end, head + 1, inner, depth + 1, out);
                continue;
            }
            if total + u.tokens > self.budget && !current.is_empty() {
                // Cut at the last blank line of the second half, if there is one.
                let mut before = 0;
                let mut at = None;
                for (k, c) in current.iter().enumerate() {
                    if k > 0 && c.after_blank && before * 2 >= self.budget {
                        at = Some(k);
                    }
                    before += c.tokens;
                }
                match at {
                    Some(k) => {
                        let rest = current.split_off(k);
                        flush(&mut current, out);
                        current = rest;
                        total = current.iter().map(|c| c.tokens).sum();
                        if total + u.tokens > self.budget {
                            flush(&mut current, out);
                            total = 0;
                        }
                    }
                    None => {
                        flush(&mut current, out);
                        total = 0;
                    }
                }
            }
            total += u.tokens;
            current.push(u);
        }
        flush(&mut current, out);
    }

    fn flush(
        &self,
        units: &mut Vec<Unit>,
        parent: Option<&str>,
        symbols_from: Option<usize>,
        out: &mut Vec<Piece>,
    ) {
        let (Some(first), Some(last)) = (units.first(), units.last()) else {
            return;
        };
        // The symbols of the items packed together, under the parent's.
        let mut own: Vec<String> = Vec::new();
        if let Some(from) = symbols_from {
            for u in units.iter() {
                let head = self.head(u.lines.start, u.lines.end);
                if let Some(s) = (head >= from).then(|| self.symbol_of(head, None)).flatten() {
                    if !own.contains(&s) {
                        own.push(s);
                    }
                }
            }
        }
        let symbol = match (parent, own.is_empty()) {
            (_, false) => Some(clip(&join(parent, &own.join(", ")))),
            (Some(p), true) => Some(p.to_string()),
            (None, true) => None,
        };
        out.push(Piece {
            lines: first.lines.start..last.lines.end,
            symbol,
        });
        units.clear();
    }

    /// Cut points of lines `lo..hi` (the first is `lo`): the candidates after `first` at the
    /// lowest level, each moved up over the comments and attributes right above it.
    fn atoms(&self, lo: usize, hi: usize, first: usize) -> Vec<usize> {
        let from = first.max(lo);
        let Some(min) = (from..hi)
            .filter(|&i| self.lines[i].candidate())
            .map(|i| self.lines[i].level())
            .min()
        else {
            return vec![lo];
        };
        let mut cuts = vec![lo];
        for i in from..hi {
            let l = &self.lines[i];
            if !l.candidate() || l.level() != min {
                continue;
            }
            let last = *cuts.last().unwrap_or(&lo);
            let mut s = i;
            while s > from && s > last + 1 && self.lines[s - 1].trivia {
                s -= 1;
            }
            if s > last {
                cuts.push(s);
            }
        }
        cuts
    }

    /// The declaration line of lines `lo..hi`: the first that is neither blank nor trivia.
    fn head(&self, lo: usize, hi: usize) -> usize {
        (lo..hi)
            .find(|&i| !self.lines[i].blank && !self.lines[i].trivia)
            .unwrap_or(lo)
    }

    /// The symbol declared on line `i`, under `parent`'s.
    fn symbol_of(&self, i: usize, parent: Option<&str>) -> Option<String> {
        let l = &self.lines[i];
        let own = symbol(self.language, self.text[l.start..l.end].trim())?;
        Some(join(parent, &own))
    }
}

/// `symbol` under `parent`'s.
fn join(parent: Option<&str>, symbol: &str) -> String {
    match parent {
        Some(p) => format!("{p}{SYMBOL_SEPARATOR}{symbol}"),
        None => symbol.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chunk::whitespace_tokens;

    fn pieces(src: &str, lang: CodeLanguage, max: usize) -> Vec<(String, Option<String>)> {
        code(src, lang, max, &whitespace_tokens)
            .into_iter()
            .map(|c| (src[c.start..c.end].to_string(), c.section))
            .collect()
    }

    #[test]
    fn braces_in_strings_and_comments_do_not_count() {
        let src = "fn a() {\n    let s = \"}\";\n    let c = '}';\n    // }\n    /* } /* nested } */ */\n    let r = r#\"}\"#;\n    x\n}\n\nfn b<'a>(x: &'a str) {\n    y\n}\n";
        let p = pieces(src, CodeLanguage::Rust, 30);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].1.as_deref(), Some("fn a"));
        assert!(p[1].0.starts_with("fn b"));
        let py = "def a():\n    s = \"\"\"\ndef not_a_function():\n\"\"\"\n    return s\n\n\nclass B:\n    pass\n";
        let p = pieces(py, CodeLanguage::Python, 12);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(
            (p[0].1.as_deref(), p[1].1.as_deref()),
            (Some("def a"), Some("class B"))
        );
    }

    #[test]
    fn oversized_items_are_cut_at_their_members_then_blank_lines() {
        let src = "impl Parser {\n    /// One.\n    fn one(&self) {\n        a b c d\n    }\n\n    fn two(&self) {\n        e f g h\n    }\n}\n";
        let p = pieces(src, CodeLanguage::Rust, 14);
        let symbols: Vec<_> = p
            .iter()
            .map(|(_, s)| s.clone().unwrap_or_default())
            .collect();
        assert_eq!(
            symbols,
            ["impl Parser > fn one", "impl Parser > fn two"],
            "{p:?}"
        );
        assert!(p[0].0.starts_with("impl Parser {\n    /// One."));
        assert!(p[1].0.ends_with("    }\n}\n"));
        let body = "def big():\n    a = 1\n    b = 2\n\n    c = 3\n    d = 4\n";
        let p = pieces(body, CodeLanguage::Python, 9);
        assert_eq!(p[0].0, "def big():\n    a = 1\n    b = 2\n\n", "{p:?}");
        assert!(p.iter().all(|(_, s)| s.as_deref() == Some("def big")));
    }

    #[test]
    fn deep_nesting_is_cut_between_lines_not_a_stack_overflow() {
        let src = "f {\n".repeat(100_000) + &"}\n".repeat(100_000);
        let chunks = code(&src, CodeLanguage::C, 50, &whitespace_tokens);
        assert_eq!(chunks.first().map(|c| c.start), Some(0));
        assert_eq!(chunks.last().map(|c| c.end), Some(src.len()));
        assert!(chunks.windows(2).all(|w| w[0].end == w[1].start));
        assert!(chunks.len() >= 200_000 / 50);
    }

    #[test]
    fn shell_ruby_and_javascript_lexing() {
        let sh = "greet() {\n  cat <<EOF\n}\nEOF\n  echo \"${#}\" '}' # }\n}\n\nbye() {\n  :\n}\n";
        let p = pieces(sh, CodeLanguage::Shell, 14);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[1].1.as_deref(), Some("bye()"));
        let rb = "class A\n  def x\n    1\n  end\nend\n\nmodule B\nend\n";
        let p = pieces(rb, CodeLanguage::Ruby, 8);
        assert_eq!(
            (p[0].1.as_deref(), p[1].1.as_deref()),
            (Some("class A"), Some("module B")),
            "{p:?}"
        );
        let js = "function f() {\n  const re = /[}]/g;\n  return `}\n${x}`;\n}\nfunction g() {\n  return 1 / 2;\n}\n";
        let p = pieces(js, CodeLanguage::JavaScript, 14);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[1].1.as_deref(), Some("function g"));
    }
}
