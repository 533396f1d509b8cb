//! A forgiving HTML tokenizer that keeps source offsets: start tags (lower-cased names,
//! attributes with references decoded), end tags, and text spans; comments, doctypes and
//! processing instructions are skipped. Raw-text elements (`script`, `style`, `title`, …) read
//! up to their end tag as the standard says, so `if (a < b)` in a script is not markup.

use super::entities;

/// Elements whose content is raw text up to their end tag; the last two decode references.
const RAW_TEXT: &[&str] = &[
    "script", "style", "xmp", "iframe", "noembed", "noframes", "noscript", "title", "textarea",
];

#[derive(Debug, PartialEq)]
pub(crate) enum Token {
    Start {
        name: String,
        attrs: Vec<(String, String)>,
        self_closing: bool,
    },
    End {
        name: String,
    },
    /// Text at `start..end` of the source; `raw` text has no character references.
    Text {
        start: usize,
        end: usize,
        raw: bool,
    },
}

pub(crate) struct Tokenizer<'a> {
    s: &'a str,
    pos: usize,
    /// After a raw-text start tag: the element whose end tag ends the text.
    raw_until: Option<String>,
}

pub(crate) fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

impl<'a> Tokenizer<'a> {
    pub(crate) fn new(s: &'a str) -> Self {
        Tokenizer {
            s,
            pos: 0,
            raw_until: None,
        }
    }

    fn byte(&self, i: usize) -> Option<u8> {
        self.s.as_bytes().get(i).copied()
    }

    /// Moves past the next `needle` (or to the end).
    fn skip_past(&mut self, needle: &str) {
        self.pos = match self.s[self.pos..].find(needle) {
            Some(i) => self.pos + i + needle.len(),
            None => self.s.len(),
        };
    }

    fn name_at(&self, mut i: usize) -> (String, usize) {
        let start = i;
        while let Some(b) = self.byte(i) {
            if is_space(b) || b == b'/' || b == b'>' {
                break;
            }
            i += 1;
        }
        (self.s[start..i].to_ascii_lowercase(), i)
    }

    fn start_tag(&mut self) -> Token {
        let (name, mut i) = self.name_at(self.pos + 1);
        let mut attrs = Vec::new();
        let mut self_closing = false;
        loop {
            while self.byte(i).is_some_and(is_space) {
                i += 1;
            }
            match self.byte(i) {
                None => break,
                Some(b'>') => {
                    i += 1;
                    break;
                }
                Some(b'/') => {
                    i += 1;
                    self_closing = self.byte(i) == Some(b'>');
                    continue;
                }
                Some(_) => {}
            }
            // Attribute name (a leading '=' belongs to the name, as in the standard).
            let name_start = i;
            i += 1;
            while let Some(b) = self.byte(i) {
                if is_space(b) || matches!(b, b'/' | b'>' | b'=') {
                    break;
                }
                i += 1;
            }
            let attr = self.s[name_start..i].to_ascii_lowercase();
            while self.byte(i).is_some_and(is_space) {
                i += 1;
            }
            let mut value = String::new();
            if self.byte(i) == Some(b'=') {
                i += 1;
                while self.byte(i).is_some_and(is_space) {
                    i += 1;
                }
                let v_start;
                match self.byte(i) {
                    Some(q @ (b'"' | b'\'')) => {
                        v_start = i + 1;
                        let close = self.s[v_start..].find(q as char);
                        let v_end = close.map_or(self.s.len(), |c| v_start + c);
                        value = entities::decode_to_string(&self.s[v_start..v_end]);
                        i = (v_end + 1).min(self.s.len());
                    }
                    _ => {
                        v_start = i;
                        while let Some(b) = self.byte(i) {
                            if is_space(b) || b == b'>' {
                                break;
                            }
                            i += 1;
                        }
                        value = entities::decode_to_string(&self.s[v_start..i]);
                    }
                }
            }
            attrs.push((attr, value));
        }
        self.pos = i;
        if RAW_TEXT.contains(&name.as_str()) && !self_closing {
            self.raw_until = Some(name.clone());
        }
        Token::Start {
            name,
            attrs,
            self_closing,
        }
    }

    fn end_tag(&mut self) -> Token {
        let (name, i) = self.name_at(self.pos + 2);
        self.pos = i;
        self.skip_past(">");
        Token::End { name }
    }

    /// Where the raw text of `name` ends: at its end tag `</name` (any case) followed by a
    /// space, `/` or `>`, or at the end of the input.
    fn raw_text_end(&self, name: &str) -> usize {
        let b = self.s.as_bytes();
        let mut from = self.pos;
        while let Some(i) = self.s[from..].find("</") {
            let at = from + i;
            let name_end = at + 2 + name.len();
            if b.len() >= name_end
                && b[at + 2..name_end].eq_ignore_ascii_case(name.as_bytes())
                && b.get(name_end)
                    .is_none_or(|&c| is_space(c) || c == b'/' || c == b'>')
            {
                return at;
            }
            from = at + 2;
        }
        self.s.len()
    }
}

impl Iterator for Tokenizer<'_> {
    type Item = Token;

    fn next(&mut self) -> Option<Token> {
        if let Some(name) = self.raw_until.take() {
            let start = self.pos;
            let end = self.raw_text_end(&name);
            self.pos = end;
            if end > start {
                let raw = !matches!(name.as_str(), "title" | "textarea");
                return Some(Token::Text { start, end, raw });
            }
        }
        while self.pos < self.s.len() {
            let p = self.pos;
            if self.byte(p) == Some(b'<') {
                match self.byte(p + 1) {
                    Some(c) if c.is_ascii_alphabetic() => return Some(self.start_tag()),
                    Some(b'/') if self.byte(p + 2).is_some_and(|c| c.is_ascii_alphabetic()) => {
                        return Some(self.end_tag());
                    }
                    Some(b'!') if self.s[p..].starts_with("<!--") => {
                        self.pos = p + 4;
                        self.skip_past("-->");
                        continue;
                    }
                    Some(b'!' | b'?' | b'/') => {
                        self.skip_past(">");
                        continue;
                    }
                    _ => {}
                }
            }
            // Text up to the next '<' (a '<' that starts no markup is text).
            let first = self.s[p..].chars().next().map_or(1, char::len_utf8);
            let end = self.s[p + first..]
                .find('<')
                .map_or(self.s.len(), |i| p + first + i);
            self.pos = end;
            return Some(Token::Text {
                start: p,
                end,
                raw: false,
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(s: &str) -> Vec<Token> {
        Tokenizer::new(s).collect()
    }

    #[test]
    fn tokenizer_reads_tags_attributes_comments_and_raw_text() {
        let s = "<!DOCTYPE html><P Class=\"a b\" data-x='1' hidden>x<!-- <b>no</b> --><br/>\
                 <script>if (a < b && c) { '</p>' }</script>y";
        let t = tokens(s);
        assert_eq!(
            t[0],
            Token::Start {
                name: "p".into(),
                attrs: vec![
                    ("class".into(), "a b".into()),
                    ("data-x".into(), "1".into()),
                    ("hidden".into(), String::new())
                ],
                self_closing: false
            }
        );
        assert!(matches!(t[1], Token::Text { raw: false, .. }));
        assert!(matches!(&t[2], Token::Start { name, self_closing: true, .. } if name == "br"));
        assert!(matches!(&t[3], Token::Start { name, .. } if name == "script"));
        match t[4] {
            Token::Text { start, end, raw } => {
                assert!(raw);
                assert_eq!(&s[start..end], "if (a < b && c) { '</p>' }");
            }
            ref other => panic!("{other:?}"),
        }
        assert_eq!(
            t[5],
            Token::End {
                name: "script".into()
            }
        );
        assert!(matches!(t[6], Token::Text { .. }));
        assert_eq!(t.len(), 7);
    }
}
