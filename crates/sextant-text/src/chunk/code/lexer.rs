//! The lexer of the code chunker: per language family, which bytes are comments, strings
//! (escapes, raw strings, triple quotes, templates, regular expressions, heredocs) and
//! continuations, so that each line gets its bracket depth, indentation and kind (blank,
//! trivia, closer) right whatever brackets the strings and comments hold.

use std::ops::Range;

use crate::extract::CodeLanguage;

/// Columns of a tab in indentation (Python's rule).
const TAB_WIDTH: usize = 8;

/// What the lexer knows about one line.
#[derive(Debug, Clone)]
pub(super) struct Line {
    pub(super) start: usize,
    pub(super) end: usize,
    /// Bracket depth at the line's start.
    pub(super) depth: usize,
    /// Columns of leading whitespace.
    pub(super) indent: usize,
    /// Starts outside strings, comments and continuations.
    pub(super) clean_start: bool,
    pub(super) blank: bool,
    /// Only comments, or an attribute/decorator: belongs with the item below.
    pub(super) trivia: bool,
    /// Continues the line above (closing bracket, `else`, `end`, …).
    pub(super) closer: bool,
    pub(super) tokens: usize,
}

impl Line {
    pub(super) fn candidate(&self) -> bool {
        self.clean_start && !self.blank && !self.trivia && !self.closer
    }

    pub(super) fn level(&self) -> (usize, usize) {
        (self.depth, self.indent)
    }
}

/// How `'` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Apostrophe {
    /// Opens a string like `"` (Python, JavaScript, Ruby, shell).
    String,
    /// A short character literal when one closes it on the line, else nothing (C family, Go;
    /// Rust's lifetimes and labels).
    Char,
}

/// How a backtick reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backtick {
    None,
    /// A string that may span lines, with escapes (JavaScript templates, Ruby and shell
    /// command substitution).
    Escaped,
    /// A string that may span lines, without escapes (Go raw strings).
    Raw,
}

/// The lexical rules of a language family.
#[derive(Debug, Clone, Copy)]
struct Syntax {
    line_comment: &'static str,
    block_comment: Option<(&'static str, &'static str)>,
    nested_comments: bool,
    apostrophe: Apostrophe,
    /// `"` and `'` strings may span lines.
    multiline_strings: bool,
    /// `"""` (and Python's `'''`) strings.
    triple_quotes: bool,
    backtick: Backtick,
    /// `'` strings have no escapes (shell).
    literal_apostrophe: bool,
    /// `#` starts a comment only at a word's start (shell).
    comment_at_word_start: bool,
    rust_raw_strings: bool,
    cpp_raw_strings: bool,
    csharp_verbatim: bool,
    heredocs: bool,
    ruby_block_comments: bool,
    regex_literals: bool,
    brackets: &'static [u8],
    closers: &'static [&'static str],
    attributes: &'static [&'static str],
}

const C_FAMILY: Syntax = Syntax {
    line_comment: "//",
    block_comment: Some(("/*", "*/")),
    nested_comments: false,
    apostrophe: Apostrophe::Char,
    multiline_strings: false,
    triple_quotes: false,
    backtick: Backtick::None,
    literal_apostrophe: false,
    comment_at_word_start: false,
    rust_raw_strings: false,
    cpp_raw_strings: false,
    csharp_verbatim: false,
    heredocs: false,
    ruby_block_comments: false,
    regex_literals: false,
    brackets: b"([{",
    closers: &["else", "catch", "finally"],
    attributes: &[],
};

fn syntax(language: CodeLanguage) -> Syntax {
    match language {
        CodeLanguage::Rust => Syntax {
            nested_comments: true,
            multiline_strings: true,
            rust_raw_strings: true,
            closers: &["else", "where"],
            attributes: &["#["],
            ..C_FAMILY
        },
        CodeLanguage::Python => Syntax {
            line_comment: "#",
            block_comment: None,
            apostrophe: Apostrophe::String,
            triple_quotes: true,
            closers: &["else", "elif", "except", "finally"],
            attributes: &["@"],
            ..C_FAMILY
        },
        CodeLanguage::JavaScript | CodeLanguage::TypeScript => Syntax {
            apostrophe: Apostrophe::String,
            backtick: Backtick::Escaped,
            regex_literals: true,
            attributes: &["@"],
            ..C_FAMILY
        },
        CodeLanguage::Go => Syntax {
            backtick: Backtick::Raw,
            ..C_FAMILY
        },
        CodeLanguage::Java => Syntax {
            triple_quotes: true,
            attributes: &["@"],
            ..C_FAMILY
        },
        CodeLanguage::C => C_FAMILY,
        CodeLanguage::Cpp => Syntax {
            cpp_raw_strings: true,
            ..C_FAMILY
        },
        CodeLanguage::CSharp => Syntax {
            triple_quotes: true,
            csharp_verbatim: true,
            attributes: &["["],
            ..C_FAMILY
        },
        CodeLanguage::Ruby => Syntax {
            line_comment: "#",
            block_comment: None,
            apostrophe: Apostrophe::String,
            multiline_strings: true,
            backtick: Backtick::Escaped,
            heredocs: true,
            ruby_block_comments: true,
            closers: &[
                "end", "else", "elsif", "when", "in", "rescue", "ensure", "then",
            ],
            ..C_FAMILY
        },
        CodeLanguage::Shell => Syntax {
            line_comment: "#",
            block_comment: None,
            apostrophe: Apostrophe::String,
            multiline_strings: true,
            backtick: Backtick::Escaped,
            literal_apostrophe: true,
            comment_at_word_start: true,
            heredocs: true,
            brackets: b"{",
            closers: &["fi", "done", "esac", "else", "elif", "then", "do", ";;"],
            ..C_FAMILY
        },
    }
}

/// Lexer state carried from line to line.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Code,
    Comment {
        depth: u32,
    },
    Str {
        end: Vec<u8>,
        escapes: bool,
        multiline: bool,
    },
    Heredoc {
        end: String,
        indented: bool,
    },
    RubyComment,
}

pub(super) struct Lexer {
    syntax: Syntax,
    state: State,
    depth: usize,
}

impl Lexer {
    pub(super) fn new(language: CodeLanguage) -> Self {
        Lexer {
            syntax: syntax(language),
            state: State::Code,
            depth: 0,
        }
    }

    pub(super) fn lines(
        mut self,
        text: &str,
        tokens: &dyn Fn(&str) -> Vec<Range<usize>>,
    ) -> Vec<Line> {
        let mut out = Vec::new();
        let mut continued = false;
        let mut start = 0;
        for raw in text.split_inclusive('\n') {
            let end = start + raw.len();
            let body = raw.trim_end_matches(['\n', '\r']);
            let trimmed = body.trim_start();
            let indent = body[..body.len() - trimmed.len()]
                .chars()
                .fold(0, |col, c| {
                    if c == '\t' {
                        col / TAB_WIDTH * TAB_WIDTH + TAB_WIDTH
                    } else {
                        col + 1
                    }
                });
            let clean_start = self.state == State::Code && !continued;
            let depth = self.depth;
            let (has_code, backslash) = self.scan(body.as_bytes());
            let blank = trimmed.is_empty();
            let attribute = clean_start
                && self
                    .syntax
                    .attributes
                    .iter()
                    .any(|a| trimmed.starts_with(a));
            out.push(Line {
                start,
                end,
                depth,
                indent,
                clean_start,
                blank,
                trivia: !blank && (!has_code || attribute),
                closer: self.closes(trimmed),
                tokens: tokens(raw).len(),
            });
            continued = backslash;
            start = end;
        }
        out
    }

    /// Whether a line (trimmed) continues the one above it.
    fn closes(&self, trimmed: &str) -> bool {
        if trimmed.starts_with([')', ']', '}', '{']) {
            return true;
        }
        self.syntax.closers.iter().any(|k| {
            trimmed.starts_with(k)
                && !trimmed[k.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        })
    }

    /// Reads one line (without its line break), updating the state and bracket depth. Returns
    /// whether it holds code (anything outside comments) and whether it ends in a line
    /// continuation.
    fn scan(&mut self, line: &[u8]) -> (bool, bool) {
        let sx = self.syntax;
        match &self.state {
            State::Heredoc { end, indented } => {
                let l = String::from_utf8_lossy(line);
                let l = if *indented { l.trim() } else { l.trim_end() };
                if l == end {
                    self.state = State::Code;
                }
                return (true, false);
            }
            State::RubyComment => {
                if line.starts_with(b"=end") {
                    self.state = State::Code;
                }
                return (false, false);
            }
            State::Code if sx.ruby_block_comments && line.starts_with(b"=begin") => {
                self.state = State::RubyComment;
                return (false, false);
            }
            _ => {}
        }
        let mut has_code = false;
        let mut heredoc = None;
        let mut prev = 0u8;
        let mut i = 0;
        while i < line.len() {
            let c = line[i];
            match &mut self.state {
                State::Comment { depth } => {
                    let (open, close) = sx.block_comment.unwrap_or(("/*", "*/"));
                    if line[i..].starts_with(close.as_bytes()) {
                        *depth -= 1;
                        i += close.len();
                        if *depth == 0 {
                            self.state = State::Code;
                        }
                    } else if sx.nested_comments && line[i..].starts_with(open.as_bytes()) {
                        *depth += 1;
                        i += open.len();
                    } else {
                        i += 1;
                    }
                }
                State::Str { end, escapes, .. } => {
                    has_code = true;
                    if *escapes && c == b'\\' {
                        i += 2;
                    } else if line[i..].starts_with(end) {
                        i += end.len();
                        self.state = State::Code;
                        prev = b'"';
                    } else {
                        i += 1;
                    }
                }
                State::Heredoc { .. } | State::RubyComment => i = line.len(),
                State::Code => {
                    if c.is_ascii_whitespace() {
                        i += 1;
                        continue;
                    }
                    if line[i..].starts_with(sx.line_comment.as_bytes())
                        && (!sx.comment_at_word_start
                            || i == 0
                            || matches!(line[i - 1], b' ' | b'\t' | b';' | b'|' | b'&' | b'('))
                    {
                        break;
                    }
                    if let Some((open, _)) = sx.block_comment {
                        if line[i..].starts_with(open.as_bytes()) {
                            self.state = State::Comment { depth: 1 };
                            i += open.len();
                            continue;
                        }
                    }
                    has_code = true;
                    if let Some(next) = self.open_literal(line, i, prev, &mut heredoc) {
                        i = next;
                        prev = b'"';
                        continue;
                    }
                    if sx.brackets.contains(&c) {
                        self.depth += 1;
                    } else if matches!(c, b')' | b']' | b'}') && sx.brackets.contains(&matching(c))
                    {
                        self.depth = self.depth.saturating_sub(1);
                    }
                    prev = c;
                    i += 1;
                }
            }
        }
        if let State::Str {
            multiline: false, ..
        } = self.state
        {
            // An unclosed string that cannot span lines ends with its line.
            self.state = State::Code;
        }
        let backslash = self.state == State::Code && line.trim_ascii_end().ends_with(b"\\");
        if let Some((end, indented)) = heredoc {
            if self.state == State::Code {
                self.state = State::Heredoc { end, indented };
            }
        }
        (has_code, backslash)
    }

    /// If a string, character literal or regular expression starts at `i`, enters it (or
    /// skips it, when it closes on this line) and returns where scanning goes on.
    fn open_literal(
        &mut self,
        line: &[u8],
        i: usize,
        prev: u8,
        heredoc: &mut Option<(String, bool)>,
    ) -> Option<usize> {
        let sx = self.syntax;
        let c = line[i];
        let ident_before = i > 0 && (line[i - 1].is_ascii_alphanumeric() || line[i - 1] == b'_');
        let string = |end: &[u8], escapes: bool, multiline: bool| State::Str {
            end: end.to_vec(),
            escapes,
            multiline,
        };
        if sx.rust_raw_strings
            && (c == b'r' || (c == b'b' && line.get(i + 1) == Some(&b'r')))
            && !ident_before
        {
            let r = i + usize::from(c == b'b');
            let hashes = line[r + 1..].iter().take_while(|&&b| b == b'#').count();
            if line.get(r + 1 + hashes) == Some(&b'"') {
                let mut end = vec![b'"'];
                end.extend(std::iter::repeat_n(b'#', hashes));
                self.state = string(&end, false, true);
                return Some(r + 2 + hashes);
            }
        }
        if sx.cpp_raw_strings && c == b'R' && line.get(i + 1) == Some(&b'"') {
            let open = line[i + 2..]
                .iter()
                .position(|&b| b == b'(')
                .filter(|&p| p <= 16)?;
            let delim = &line[i + 2..i + 2 + open];
            let mut end = vec![b')'];
            end.extend_from_slice(delim);
            end.push(b'"');
            self.state = string(&end, false, true);
            return Some(i + 3 + open);
        }
        if sx.csharp_verbatim && c == b'@' && line.get(i + 1) == Some(&b'"') {
            self.state = string(b"\"", false, true);
            return Some(i + 2);
        }
        if sx.triple_quotes
            && (line[i..].starts_with(b"\"\"\"")
                || (sx.apostrophe == Apostrophe::String && line[i..].starts_with(b"'''")))
        {
            self.state = string(&line[i..i + 3], true, true);
            return Some(i + 3);
        }
        match c {
            b'"' => {
                self.state = string(b"\"", true, sx.multiline_strings);
                Some(i + 1)
            }
            b'\'' if sx.apostrophe == Apostrophe::String => {
                self.state = string(b"'", !sx.literal_apostrophe, sx.multiline_strings);
                Some(i + 1)
            }
            b'\'' => Some(char_literal_end(line, i).unwrap_or(i + 1)),
            b'`' if sx.backtick != Backtick::None => {
                self.state = string(b"`", sx.backtick == Backtick::Escaped, true);
                Some(i + 1)
            }
            b'/' if sx.regex_literals && regex_may_start(line, i, prev) => regex_end(line, i),
            b'<' if sx.heredocs && line[i..].starts_with(b"<<") => {
                let (end, next) = heredoc_start(line, i)?;
                *heredoc = Some(end);
                Some(next)
            }
            _ => None,
        }
    }
}

/// The opening bracket of a closing one.
fn matching(close: u8) -> u8 {
    match close {
        b')' => b'(',
        b']' => b'[',
        _ => b'{',
    }
}

/// Where a character literal starting at `i` (`'x'`, `'\n'`, `'\u{1F600}'`, `'é'`) ends, if
/// one closes within a few bytes; `None` for a Rust lifetime or label, or a C++ digit
/// separator.
fn char_literal_end(line: &[u8], i: usize) -> Option<usize> {
    let rest = &line[i + 1..];
    if rest.first() == Some(&b'\\') {
        let mut j = 1;
        while j < rest.len().min(12) {
            if rest[j] == b'\'' {
                return Some(i + 2 + j);
            }
            j += 1;
        }
        return None;
    }
    let first = *rest.first()?;
    let len = match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    };
    (rest.get(len) == Some(&b'\'') && first != b'\'').then_some(i + 2 + len)
}

/// Whether a `/` at `i` starts a regular expression literal rather than dividing: after an
/// operator, an opening bracket, a comma or `return`, or at the start of a line.
fn regex_may_start(line: &[u8], i: usize, prev: u8) -> bool {
    if matches!(line.get(i + 1), Some(b'/' | b'*')) {
        return false;
    }
    let before = line[..i].trim_ascii_end();
    prev == 0
        || b"(,=:[!&|?{};+-*%<>~^".contains(&prev)
        || before.ends_with(b"return")
        || before.ends_with(b"typeof")
}

/// The end of a regular expression literal starting at `i`, if it closes on the line.
fn regex_end(line: &[u8], i: usize) -> Option<usize> {
    let mut j = i + 1;
    let mut class = false;
    while j < line.len() {
        match line[j] {
            b'\\' => j += 1,
            b'[' => class = true,
            b']' => class = false,
            b'/' if !class => return Some(j + 1),
            _ => {}
        }
        j += 1;
    }
    None
}

/// A heredoc operator at `i` (`<<EOF`, `<<-'EOF'`, `<<~SQL`): its terminator, whether the
/// terminator may be indented, and where scanning goes on.
fn heredoc_start(line: &[u8], i: usize) -> Option<((String, bool), usize)> {
    let mut j = i + 2;
    if line.get(j) == Some(&b'<') {
        return None;
    }
    let indented = matches!(line.get(j), Some(b'-' | b'~'));
    j += usize::from(indented);
    let quote = line.get(j).copied().filter(|q| *q == b'\'' || *q == b'"');
    j += usize::from(quote.is_some());
    let name_len = line[j..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .count();
    if name_len == 0 {
        return None;
    }
    let name = String::from_utf8_lossy(&line[j..j + name_len]).into_owned();
    j += name_len + usize::from(quote.is_some());
    Some(((name, indented), j))
}
