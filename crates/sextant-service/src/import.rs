//! Point import: JSONL points (`{"id": …, "vector": […] or {"space": […]}, "payload": {…}}` per
//! line, optionally `"expires_at"`: an RFC 3339 instant, or `"ttl"`: seconds from now), or `.npy` / `.fvecs` vectors with sequential integer ids from a start id and an
//! optional payload JSONL (one object per row), as batches of [`PointInput`]. JSONL is read
//! from any [`BufRead`] as batches are asked for, so a server can stream a request body. Errors
//! name the input, the line and the field.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::Value;
use sextant_core::PointId;
use sextant_engine::MAX_TTL_SECONDS;
use sextant_engine::{PointInput, Vectors};

use crate::error::{Error, Result};

/// Points per WAL batch when importing.
pub const DEFAULT_IMPORT_BATCH: usize = 1_000;

/// How to read an import file.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// For `.npy`/`.fvecs`: the id of the first row.
    pub start_id: u64,
    /// For `.npy`/`.fvecs`: a JSONL file with one payload object per row.
    pub payloads: Option<PathBuf>,
    /// Points per batch.
    pub batch: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        ImportOptions {
            start_id: 0,
            payloads: None,
            batch: DEFAULT_IMPORT_BATCH,
        }
    }
}

fn json_vector(v: &Value, what: &str, field: &str) -> Result<Vec<f32>> {
    let arr = v
        .as_array()
        .ok_or_else(|| Error::invalid(field, format!("{what}: expected an array of numbers")))?;
    arr.iter()
        .enumerate()
        .map(|(i, x)| {
            x.as_f64().map(|f| f as f32).ok_or_else(|| {
                Error::invalid(field, format!("{what}: element {i} is not a number"))
            })
        })
        .collect()
}

/// A JSON array of numbers as a vector (`what` names it in errors).
pub fn vector_from_json(v: &Value, what: &str) -> Result<Vec<f32>> {
    json_vector(v, what, "vector")
}

/// One JSONL point; `at` (`file line 3`) prefixes errors.
pub fn point_from_json(line: &str, at: &str) -> Result<PointInput> {
    let v: Value = serde_json::from_str(line)
        .map_err(|e| Error::invalid("line", format!("{at}: not valid JSON")).with_source(e))?;
    let id = PointId::from_json(
        v.get("id")
            .ok_or_else(|| Error::invalid("id", format!("{at}: missing \"id\"")))?,
    )
    .ok_or_else(|| {
        Error::invalid(
            "id",
            format!("{at}: \"id\" must be a non-negative integer or a string"),
        )
    })?;
    let vectors = match v.get("vector") {
        Some(Value::Object(m)) => Vectors::Named(
            m.iter()
                .map(|(k, x)| {
                    Ok((
                        k.clone(),
                        json_vector(x, &format!("{at}: vector {k:?}"), "vector")?,
                    ))
                })
                .collect::<Result<_>>()?,
        ),
        Some(x) => Vectors::Single(json_vector(x, &format!("{at}: \"vector\""), "vector")?),
        None => {
            return Err(Error::invalid(
                "vector",
                format!("{at}: missing \"vector\""),
            ))
        }
    };
    Ok(PointInput {
        id,
        vectors,
        payload: v.get("payload").cloned().unwrap_or(Value::Null),
        sparse: Vec::new(),
        expires_at: expiry(v.get("expires_at"), v.get("ttl"), at)?,
    })
}

/// A point's expiry as front ends take it: `expires_at`, an RFC 3339 instant, or `ttl`, whole
/// seconds from now (the system clock), not both; `at` prefixes errors. Milliseconds since
/// the Unix epoch (see `sextant_engine::clock`).
pub fn expiry(expires_at: Option<&Value>, ttl: Option<&Value>, at: &str) -> Result<Option<i64>> {
    let expires_at = expires_at.filter(|v| !v.is_null());
    let ttl = ttl.filter(|v| !v.is_null());
    match (expires_at, ttl) {
        (Some(_), Some(_)) => Err(Error::invalid(
            "expires_at",
            format!("{at}: give \"expires_at\" or \"ttl\", not both"),
        )),
        (Some(v), None) => v
            .as_str()
            .and_then(sextant_engine::clock::parse_expiry)
            .map(Some)
            .ok_or_else(|| {
                Error::invalid(
                    "expires_at",
                    format!("{at}: \"expires_at\" must be an RFC 3339 date-time, got {v}"),
                )
            }),
        (None, Some(v)) => {
            let secs = v.as_u64().filter(|&s| (1..=MAX_TTL_SECONDS).contains(&s));
            let secs = secs.ok_or_else(|| {
                Error::invalid(
                    "ttl",
                    format!("{at}: \"ttl\" must be whole seconds, 1..={MAX_TTL_SECONDS}, got {v}"),
                )
            })?;
            let now = sextant_engine::clock::system_now_ms();
            Ok(Some(now.saturating_add(secs as i64 * 1000)))
        }
        (None, None) => Ok(None),
    }
}

/// JSONL points from a stream, one per line (blank lines skipped).
#[derive(Debug)]
pub struct JsonlPoints<R> {
    reader: R,
    name: String,
    line_no: usize,
    line: String,
}

impl<R: BufRead> JsonlPoints<R> {
    /// Points from `reader`; `name` is what errors call it.
    pub fn new(reader: R, name: impl Into<String>) -> Self {
        JsonlPoints {
            reader,
            name: name.into(),
            line_no: 0,
            line: String::new(),
        }
    }
}

impl<R: BufRead> Iterator for JsonlPoints<R> {
    type Item = Result<PointInput>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.line.clear();
            self.line_no += 1;
            let at = format!("{} line {}", self.name, self.line_no);
            match self.reader.read_line(&mut self.line) {
                Ok(0) => return None,
                Ok(_) if self.line.trim().is_empty() => continue,
                Ok(_) => return Some(point_from_json(&self.line, &at)),
                Err(e) => return Some(Err(Error::invalid("line", at).with_source(e))),
            }
        }
    }
}

enum Rows {
    Jsonl(JsonlPoints<Box<dyn BufRead + Send>>),
    Matrix {
        m: sextant_vecio::Matrix<f32>,
        payloads: Vec<Value>,
        start_id: u64,
        next: usize,
    },
}

/// Batches of points from an import source.
pub struct PointBatches {
    rows: Rows,
    batch: usize,
}

impl std::fmt::Debug for PointBatches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PointBatches")
            .field("batch", &self.batch)
            .finish()
    }
}

impl PointBatches {
    /// Batches of JSONL points from a stream.
    pub fn jsonl(reader: impl BufRead + Send + 'static, name: &str, batch: usize) -> Result<Self> {
        check_batch(batch)?;
        Ok(PointBatches {
            rows: Rows::Jsonl(JsonlPoints::new(Box::new(reader), name)),
            batch,
        })
    }

    /// Batches of an import file: `.npy`/`.fvecs` by extension, else JSONL.
    pub fn open(file: &Path, opts: &ImportOptions) -> Result<Self> {
        check_batch(opts.batch)?;
        let ext = file
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        if ext != "npy" && ext != "fvecs" {
            if opts.payloads.is_some() {
                return Err(Error::invalid(
                    "payloads",
                    "--payloads is for .npy/.fvecs files; JSONL lines carry their own payload",
                ));
            }
            let f = std::fs::File::open(file).map_err(|e| {
                Error::not_found(format!("cannot open {}", file.display())).with_source(e)
            })?;
            return PointBatches::jsonl(BufReader::new(f), &file.display().to_string(), opts.batch);
        }
        let m = sextant_vecio::read_vectors(file).map_err(|e| {
            Error::invalid("file", format!("cannot read {}", file.display())).with_source(e)
        })?;
        let payloads = match &opts.payloads {
            Some(p) => read_payloads(p, m.rows)?,
            None => vec![Value::Null; m.rows],
        };
        let last = (m.rows as u64)
            .checked_sub(1)
            .and_then(|n| opts.start_id.checked_add(n));
        if m.rows > 0 && last.is_none() {
            return Err(Error::invalid(
                "start_id",
                format!(
                    "--start-id {}: {} rows would need ids past the largest id ({})",
                    opts.start_id,
                    m.rows,
                    u64::MAX
                ),
            ));
        }
        Ok(PointBatches {
            rows: Rows::Matrix {
                m,
                payloads,
                start_id: opts.start_id,
                next: 0,
            },
            batch: opts.batch,
        })
    }
}

fn check_batch(batch: usize) -> Result<()> {
    if batch == 0 {
        return Err(Error::invalid("batch", "--batch must be at least 1"));
    }
    Ok(())
}

fn read_payloads(p: &Path, rows: usize) -> Result<Vec<Value>> {
    let f = std::fs::File::open(p)
        .map_err(|e| Error::not_found(format!("cannot open {}", p.display())).with_source(e))?;
    let mut out = Vec::with_capacity(rows);
    for (i, line) in BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| {
            Error::invalid("payloads", format!("{}: line {}", p.display(), i + 1)).with_source(e)
        })?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str::<Value>(&line).map_err(|e| {
            Error::invalid(
                "payloads",
                format!("{}: line {} is not JSON", p.display(), i + 1),
            )
            .with_source(e)
        })?);
    }
    if out.len() != rows {
        return Err(Error::invalid(
            "payloads",
            format!(
                "{} has {} payloads for {} vectors",
                p.display(),
                out.len(),
                rows
            ),
        ));
    }
    Ok(out)
}

impl Iterator for PointBatches {
    type Item = Result<Vec<PointInput>>;

    fn next(&mut self) -> Option<Self::Item> {
        match &mut self.rows {
            Rows::Jsonl(points) => {
                let mut out = Vec::new();
                for p in points.by_ref() {
                    match p {
                        Ok(p) => out.push(p),
                        Err(e) => return Some(Err(e)),
                    }
                    if out.len() == self.batch {
                        break;
                    }
                }
                (!out.is_empty()).then_some(Ok(out))
            }
            Rows::Matrix {
                m,
                payloads,
                start_id,
                next,
            } => {
                let end = (*next + self.batch).min(m.rows);
                if *next >= end {
                    return None;
                }
                let out = (*next..end)
                    .map(|i| PointInput {
                        // Checked at open: start_id + rows - 1 fits in u64.
                        id: PointId::Num(*start_id + i as u64),
                        vectors: Vectors::Single(m.row(i).to_vec()),
                        payload: std::mem::take(&mut payloads[i]),
                        sparse: Vec::new(),
                        expires_at: None,
                    })
                    .collect();
                *next = end;
                Some(Ok(out))
            }
        }
    }
}

/// Query vectors from a file: JSON (one array or an array of arrays), `.npy` or `.fvecs`.
pub fn read_query_vectors(path: &Path) -> Result<Vec<Vec<f32>>> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    if ext == "npy" || ext == "fvecs" {
        let m = sextant_vecio::read_vectors(path).map_err(|e| {
            Error::invalid("vector_file", format!("cannot read {}", path.display())).with_source(e)
        })?;
        return Ok((0..m.rows).map(|i| m.row(i).to_vec()).collect());
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::not_found(format!("cannot read {}", path.display())).with_source(e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        Error::invalid("vector_file", format!("{} is not JSON", path.display())).with_source(e)
    })?;
    match v.as_array() {
        Some(a) if a.iter().all(Value::is_array) && !a.is_empty() => a
            .iter()
            .enumerate()
            .map(|(i, q)| vector_from_json(q, &format!("{} query {}", path.display(), i + 1)))
            .collect(),
        _ => Ok(vec![vector_from_json(&v, &path.display().to_string())?]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_core::ErrorKind;

    fn all(b: PointBatches) -> Result<Vec<Vec<PointInput>>> {
        b.collect()
    }

    #[test]
    fn jsonl_points_come_in_batches() {
        let body = "{\"id\":1,\"vector\":[1,0]}\n\n{\"id\":\"a\",\"vector\":{\"img\":[0,1]},\"payload\":{\"t\":1}}\n{\"id\":3,\"vector\":[0.5,0.5]}\n";
        let b = all(PointBatches::jsonl(std::io::Cursor::new(body.to_string()), "p", 2).unwrap())
            .unwrap();
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
        assert_eq!(b[0][0].id, PointId::Num(1));
        assert!(matches!(&b[0][1].vectors, Vectors::Named(m) if m[0].0 == "img"));
        assert_eq!(b[0][1].payload["t"], 1);
        assert_eq!(b[1][0].payload, Value::Null);
    }

    #[test]
    fn jsonl_points_carry_an_expiry() {
        let before = sextant_engine::clock::system_now_ms();
        let body = "{\"id\":1,\"vector\":[1],\"expires_at\":\"2030-01-01T00:00:00.250Z\"}\n{\"id\":2,\"vector\":[1],\"ttl\":60}\n{\"id\":3,\"vector\":[1]}\n";
        let b = all(PointBatches::jsonl(std::io::Cursor::new(body.to_string()), "p", 9).unwrap())
            .unwrap();
        assert_eq!(b[0][0].expires_at, Some(1_893_456_000_250));
        let ttl = b[0][1].expires_at.unwrap();
        assert!(ttl >= before + 60_000 && ttl <= sextant_engine::clock::system_now_ms() + 60_000);
        assert_eq!(b[0][2].expires_at, None);
    }

    #[test]
    fn jsonl_errors_name_the_line_and_field() {
        for (line, field, needle) in [
            ("{\"vector\":[1]}", "id", "missing \"id\""),
            (
                "{\"id\":-1,\"vector\":[1]}",
                "id",
                "non-negative integer or a string",
            ),
            ("{\"id\":1}", "vector", "missing \"vector\""),
            (
                "{\"id\":1,\"vector\":[1,\"x\"]}",
                "vector",
                "element 1 is not a number",
            ),
            (
                "{\"id\":1,\"vector\":{\"s\":3}}",
                "vector",
                "vector \"s\": expected an array",
            ),
            ("nope", "line", "not valid JSON"),
            (
                "{\"id\":1,\"vector\":[1],\"expires_at\":\"tomorrow\"}",
                "expires_at",
                "RFC 3339",
            ),
            (
                "{\"id\":1,\"vector\":[1],\"ttl\":-5}",
                "ttl",
                "whole seconds",
            ),
            (
                "{\"id\":1,\"vector\":[1],\"ttl\":1.5}",
                "ttl",
                "whole seconds",
            ),
            (
                "{\"id\":1,\"vector\":[1],\"ttl\":5,\"expires_at\":\"2030-01-01T00:00:00Z\"}",
                "expires_at",
                "not both",
            ),
        ] {
            let body = format!("{{\"id\":0,\"vector\":[1]}}\n{line}\n");
            let e = all(PointBatches::jsonl(std::io::Cursor::new(body), "in.jsonl", 10).unwrap())
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidInput, "{line}");
            assert_eq!(e.field(), Some(field), "{line}: {e}");
            assert!(e.to_string().contains("in.jsonl line 2"), "{e}");
            assert!(e.to_string().contains(needle), "{line}: {e}");
        }
    }

    #[test]
    fn npy_and_fvecs_rows_get_sequential_ids_and_payloads() {
        let dir = tempfile::tempdir().unwrap();
        let rows: [[f32; 2]; 3] = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]];
        let npy = dir.path().join("v.npy");
        let fvecs = dir.path().join("v.fvecs");
        let mut header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }".to_string();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(' ');
        }
        header.push('\n');
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(header.len() as u16).to_le_bytes());
        b.extend_from_slice(header.as_bytes());
        let mut fv = Vec::new();
        for r in rows {
            fv.extend_from_slice(&2i32.to_le_bytes());
            for x in r {
                b.extend_from_slice(&x.to_le_bytes());
                fv.extend_from_slice(&x.to_le_bytes());
            }
        }
        std::fs::write(&npy, b).unwrap();
        std::fs::write(&fvecs, fv).unwrap();
        let payloads = dir.path().join("p.jsonl");
        std::fs::write(&payloads, "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n").unwrap();
        for file in [&npy, &fvecs] {
            let opts = ImportOptions {
                start_id: 10,
                payloads: Some(payloads.clone()),
                batch: 2,
            };
            let b = all(PointBatches::open(file, &opts).unwrap()).unwrap();
            assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), vec![2, 1]);
            assert_eq!(b[1][0].id, PointId::Num(12));
            assert_eq!(b[1][0].payload["n"], 2);
            assert!(matches!(&b[0][1].vectors, Vectors::Single(v) if v == &[0.0, 1.0]));
        }
        // Errors: payload count, ids past u64::MAX, payloads with JSONL, batch 0.
        std::fs::write(&payloads, "{}\n").unwrap();
        let opts = ImportOptions {
            payloads: Some(payloads.clone()),
            ..Default::default()
        };
        let e = PointBatches::open(&npy, &opts).unwrap_err();
        assert_eq!(e.field(), Some("payloads"));
        assert!(e.to_string().contains("1 payloads for 3 vectors"), "{e}");
        let opts = ImportOptions {
            start_id: u64::MAX,
            ..Default::default()
        };
        assert_eq!(
            PointBatches::open(&npy, &opts).unwrap_err().field(),
            Some("start_id")
        );
        let jsonl = dir.path().join("p2.jsonl");
        std::fs::write(&jsonl, "").unwrap();
        let opts = ImportOptions {
            payloads: Some(payloads),
            ..Default::default()
        };
        assert_eq!(
            PointBatches::open(&jsonl, &opts).unwrap_err().field(),
            Some("payloads")
        );
        let opts = ImportOptions {
            batch: 0,
            ..Default::default()
        };
        assert_eq!(
            PointBatches::open(&jsonl, &opts).unwrap_err().field(),
            Some("batch")
        );
        let e = PointBatches::open(&dir.path().join("none.jsonl"), &ImportOptions::default())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound);
    }
}
