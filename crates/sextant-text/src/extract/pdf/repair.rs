//! A new cross-reference table for a PDF whose own one cannot be read (a truncated file,
//! offsets shifted by an edit or a line-ending conversion), found the way poppler and mupdf
//! find it: by scanning the file for `N G obj` headers. lopdf 0.42 does not do this itself.

use std::fmt::Write;
use std::sync::OnceLock;

use regex::bytes::Regex;

/// Objects numbered above this are taken for noise (a real file has far fewer).
const MAX_OBJECT: u64 = 10_000_000;

fn object_header() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(r"(?-u)(?:^|[\r\n\s])(\d{1,10})[ \t\r\n]+(\d{1,5})[ \t\r\n]+obj\b").unwrap()
    })
}

fn reference(key: &str) -> Regex {
    Regex::new(&format!(
        r"(?-u)/{key}[ \t\r\n]*(\d{{1,10}})[ \t\r\n]+(\d{{1,5}})[ \t\r\n]+R\b"
    ))
    .unwrap()
}

/// The file with a rebuilt cross-reference section and trailer appended (a reader uses the
/// last one), or `None` when it has no objects or no document catalog. Offsets count from the
/// `%PDF-` header, as readers do; the trailer keeps the last `/Root`, `/Info`, `/Encrypt` and
/// `/ID` the file names, and finds the catalog by its `/Type` when no `/Root` is named.
pub(super) fn rebuild_xref(bytes: &[u8]) -> Option<Vec<u8>> {
    let header = bytes.windows(5).position(|w| w == b"%PDF-")?;
    let body = &bytes[header..];
    // Object number → (generation, offset); a later definition (an incremental update) wins.
    let mut objects: Vec<Option<(u64, usize)>> = Vec::new();
    for c in object_header().captures_iter(body) {
        let (Some(num), Some(generation)) = (number(&c[1]), number(&c[2])) else {
            continue;
        };
        if num == 0 || num > MAX_OBJECT {
            continue;
        }
        let num = num as usize;
        if objects.len() <= num {
            objects.resize(num + 1, None);
        }
        objects[num] = Some((generation, c.get(1).map_or(0, |m| m.start())));
    }
    if objects.is_empty() {
        return None;
    }
    let last_ref = |key: &str| {
        reference(key).captures_iter(body).last().map(|c| {
            format!(
                "{} {} R",
                String::from_utf8_lossy(&c[1]),
                String::from_utf8_lossy(&c[2])
            )
        })
    };
    let root = last_ref("Root").or_else(|| catalog(body, &objects))?;
    let mut trailer = format!("/Size {} /Root {root}", objects.len());
    for key in ["Info", "Encrypt"] {
        if let Some(r) = last_ref(key) {
            let _ = write!(trailer, " /{key} {r}");
        }
    }
    let id = Regex::new(r"(?-u)/ID[ \t\r\n]*\[[^\]]{0,300}\]").unwrap();
    if let Some(m) = id.find_iter(body).last() {
        let _ = write!(trailer, " {}", String::from_utf8_lossy(m.as_bytes()));
    }
    let mut out = bytes.to_vec();
    out.extend_from_slice(b"\n");
    let xref_at = out.len() - header;
    let mut table = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len());
    for entry in &objects[1..] {
        match entry {
            Some((generation, offset)) => {
                let _ = writeln!(table, "{offset:010} {generation:05} n ");
            }
            None => table.push_str("0000000000 65535 f \n"),
        }
    }
    let _ = write!(
        table,
        "trailer\n<< {trailer} >>\nstartxref\n{xref_at}\n%%EOF\n"
    );
    out.extend_from_slice(table.as_bytes());
    Some(out)
}

fn number(digits: &[u8]) -> Option<u64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// `N G R` of the first object whose dictionary says `/Type /Catalog`.
fn catalog(body: &[u8], objects: &[Option<(u64, usize)>]) -> Option<String> {
    let catalog = Regex::new(r"(?-u)^[^>]{0,200}/Type[ \t\r\n]*/Catalog\b").unwrap();
    objects.iter().enumerate().find_map(|(num, entry)| {
        let (generation, offset) = (*entry)?;
        let window = &body[offset..body.len().min(offset + 300)];
        catalog
            .is_match(window)
            .then(|| format!("{num} {generation} R"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_and_trailer_keys_are_found() {
        let pdf = b"junk%PDF-1.4\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n\
                    3 0 obj (x) endobj\n2 0 obj\n<< /Type /Pages >>\nendobj\n\
                    2 0 obj\n<< /Type /Pages /Count 0 >>\nendobj\n";
        let out = rebuild_xref(pdf).unwrap();
        let tail = String::from_utf8_lossy(&out[pdf.len()..]).into_owned();
        let at = |needle: &[u8]| {
            let body = &pdf[4..];
            let all: Vec<usize> = (0..body.len())
                .filter(|&i| body[i..].starts_with(needle))
                .collect();
            *all.last().unwrap()
        };
        assert!(
            tail.contains(&format!("{:010} 00000 n \n", at(b"1 0 obj"))),
            "{tail}"
        );
        // The second definition of object 2 is the one that counts.
        assert!(
            tail.contains(&format!("{:010} 00000 n \n", at(b"2 0 obj"))),
            "{tail}"
        );
        assert!(tail.contains("<< /Size 4 /Root 1 0 R >>"), "{tail}");
        assert!(
            tail.ends_with(&format!("startxref\n{}\n%%EOF\n", pdf.len() + 1 - 4)),
            "{tail}"
        );
        assert_eq!(rebuild_xref(b"%PDF-1.4 nothing here"), None);
        assert_eq!(rebuild_xref(b"no header 1 0 obj"), None);
    }
}
