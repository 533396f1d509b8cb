//! Texts from files: one text per line, invalid UTF-8 repaired instead of failing.
//!
//! The embedding API takes `&str`, so invalid UTF-8 can only come in at the file boundary; there
//! each bad byte sequence becomes U+FFFD and the caller is told which lines were repaired.

/// Lines of a text file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TextLines {
    /// One text per line, without the line terminator (`\n` or `\r\n`).
    pub lines: Vec<String>,
    /// 0-based numbers of the lines that held invalid UTF-8 (repaired with U+FFFD).
    pub invalid_utf8: Vec<usize>,
}

/// Splits `bytes` into lines (a final line without terminator counts; a trailing terminator
/// does not start an extra empty line).
pub fn lines_from_bytes(bytes: &[u8]) -> TextLines {
    let mut out = TextLines::default();
    if bytes.is_empty() {
        return out;
    }
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    for (n, raw) in body.split(|&b| b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        match std::str::from_utf8(raw) {
            Ok(s) => out.lines.push(s.to_owned()),
            Err(_) => {
                out.lines.push(String::from_utf8_lossy(raw).into_owned());
                out.invalid_utf8.push(n);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_repairs() {
        let t = lines_from_bytes(b"one\r\ntwo \xff\xfe end\n\nlast");
        assert_eq!(t.lines, vec!["one", "two \u{fffd}\u{fffd} end", "", "last"]);
        assert_eq!(t.invalid_utf8, vec![1]);
    }

    #[test]
    fn trailing_newline_adds_no_line() {
        assert_eq!(lines_from_bytes(b"a\nb\n").lines, vec!["a", "b"]);
        assert!(lines_from_bytes(b"").lines.is_empty());
        assert_eq!(lines_from_bytes(b"\n").lines, vec![""]);
    }
}
