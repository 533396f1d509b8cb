//! Readers and writers of the vector file formats: the CLI imports them, the ANN benchmarks
//! read data sets and ground truth from them.
//!
//! - `.fvecs` / `.ivecs`: per row, a little-endian `i32` dimension then that many `f32` / `i32`.
//! - `.npy`: NumPy's format, version 1–3, C order, 2-D (or 1-D as one row), little-endian
//!   `f4`/`f8` for vectors and `i4`/`i8`/`u4` for ids (wider types are narrowed with checks).

#![forbid(unsafe_code)]

use std::path::Path;

/// A vector file that cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum VecIoError {
    /// A file could not be read or written.
    #[error("cannot access {path}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A file's content is not what its format requires.
    #[error("{path}: {reason}")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

type EvalError = VecIoError;

/// A dense row-major matrix.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix<T> {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns.
    pub dim: usize,
    /// `rows * dim` values, row after row.
    pub data: Vec<T>,
}

impl<T> Matrix<T> {
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[T] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, EvalError> {
    std::fs::read(path).map_err(|source| VecIoError::Io {
        path: path.display().to_string(),
        source,
    })
}

fn format_err(path: &Path, reason: impl Into<String>) -> EvalError {
    VecIoError::Format {
        path: path.display().to_string(),
        reason: reason.into(),
    }
}

fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase()
}

/// Reads float vectors from `.fvecs` or `.npy` and checks every value is finite.
pub fn read_vectors(path: &Path) -> Result<Matrix<f32>, EvalError> {
    let m = match extension(path).as_str() {
        "fvecs" => read_vecs(path, &read_file(path)?, f32::from_le_bytes)?,
        "npy" => read_npy_f32(path, &read_file(path)?)?,
        other => {
            return Err(format_err(
                path,
                format!("unknown vector format {other:?}: use .fvecs or .npy"),
            ))
        }
    };
    if let Some(pos) = m.data.iter().position(|x: &f32| !x.is_finite()) {
        return Err(format_err(
            path,
            format!(
                "row {} component {} is {} (NaN and infinity are not allowed)",
                pos / m.dim,
                pos % m.dim,
                m.data[pos]
            ),
        ));
    }
    Ok(m)
}

/// Reads integer ids from `.ivecs` or `.npy`.
pub fn read_ids(path: &Path) -> Result<Matrix<i32>, EvalError> {
    match extension(path).as_str() {
        "ivecs" => read_vecs(path, &read_file(path)?, i32::from_le_bytes),
        "npy" => read_npy_i32(path, &read_file(path)?),
        other => Err(format_err(
            path,
            format!("unknown id format {other:?}: use .ivecs or .npy"),
        )),
    }
}

fn read_vecs<T>(
    path: &Path,
    bytes: &[u8],
    decode: fn([u8; 4]) -> T,
) -> Result<Matrix<T>, EvalError> {
    if bytes.is_empty() {
        return Err(format_err(path, "file is empty"));
    }
    let word = |at: usize| -> [u8; 4] { bytes[at..at + 4].try_into().expect("4 bytes") };
    if bytes.len() < 4 {
        return Err(format_err(path, "truncated: no dimension header"));
    }
    let dim = i32::from_le_bytes(word(0));
    if dim <= 0 {
        return Err(format_err(
            path,
            format!("dimension {dim} in the first row header"),
        ));
    }
    let dim = dim as usize;
    let row_bytes = 4 * (dim + 1);
    if !bytes.len().is_multiple_of(row_bytes) {
        return Err(format_err(
            path,
            format!(
                "{} bytes is not a whole number of rows of dimension {dim} (truncated file?)",
                bytes.len()
            ),
        ));
    }
    let rows = bytes.len() / row_bytes;
    let mut data = Vec::with_capacity(rows * dim);
    for r in 0..rows {
        let at = r * row_bytes;
        let d = i32::from_le_bytes(word(at));
        if d as usize != dim {
            return Err(format_err(
                path,
                format!("row {r} has dimension {d}, row 0 has {dim}"),
            ));
        }
        data.extend((0..dim).map(|c| decode(word(at + 4 + 4 * c))));
    }
    Ok(Matrix { rows, dim, data })
}

/// Writes ids as `.ivecs`.
pub fn write_ivecs(path: &Path, m: &Matrix<i32>) -> Result<(), EvalError> {
    let mut out = Vec::with_capacity(m.rows * (m.dim + 1) * 4);
    for r in 0..m.rows {
        out.extend_from_slice(&(m.dim as i32).to_le_bytes());
        for v in m.row(r) {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    std::fs::write(path, out).map_err(|source| VecIoError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// Shape and raw little-endian data of a `.npy` file.
struct Npy<'a> {
    rows: usize,
    dim: usize,
    descr: &'a str,
    body: &'a [u8],
}

fn parse_npy<'a>(path: &Path, bytes: &'a [u8]) -> Result<Npy<'a>, EvalError> {
    const MAGIC: &[u8] = b"\x93NUMPY";
    if bytes.is_empty() {
        return Err(format_err(path, "file is empty"));
    }
    if bytes.len() < 10 || &bytes[..6] != MAGIC {
        return Err(format_err(path, "not a .npy file (bad magic)"));
    }
    let (header_len, header_start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes(bytes[8..12].try_into().expect("4")) as usize,
            12,
        ),
        v => return Err(format_err(path, format!("unsupported .npy version {v}"))),
    };
    let header = bytes
        .get(header_start..header_start + header_len)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| format_err(path, "truncated or non-UTF-8 .npy header"))?;
    let field = |name: &str| -> Option<&'a str> {
        let at = header.find(&format!("'{name}'"))? + name.len() + 2;
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    };
    let descr = field("descr")
        .and_then(|s| s.strip_prefix('\'')?.split('\'').next())
        .ok_or_else(|| format_err(path, "no 'descr' in .npy header"))?;
    if field("fortran_order").is_some_and(|s| s.starts_with("True")) {
        return Err(format_err(
            path,
            "Fortran-order arrays are not supported; save with C order",
        ));
    }
    let shape_src = field("shape")
        .and_then(|s| s.strip_prefix('(')?.split(')').next())
        .ok_or_else(|| format_err(path, "no 'shape' in .npy header"))?;
    let shape: Vec<usize> = shape_src
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse()
                .map_err(|_| format_err(path, format!("bad shape {shape_src:?}")))
        })
        .collect::<Result<_, _>>()?;
    let (rows, dim) = match shape[..] {
        [n] => (1, n),
        [r, c] => (r, c),
        _ => {
            return Err(format_err(
                path,
                format!("expected a 2-D array, shape is {shape:?}"),
            ))
        }
    };
    if rows == 0 || dim == 0 {
        return Err(format_err(
            path,
            format!("array is empty (shape {shape:?})"),
        ));
    }
    // A crafted shape must not overflow the size arithmetic (8 bytes: the widest dtype).
    let body = bytes.len().saturating_sub(header_start + header_len);
    match rows.checked_mul(dim).and_then(|n| n.checked_mul(8)) {
        Some(_) => {}
        None => {
            return Err(format_err(
                path,
                format!("shape {shape:?} is too large (the file has {body} data bytes)"),
            ))
        }
    }
    Ok(Npy {
        rows,
        dim,
        descr,
        body: &bytes[header_start + header_len..],
    })
}

impl Npy<'_> {
    /// Decodes every element with `decode`, which reads `width` bytes.
    fn decode<T>(
        &self,
        path: &Path,
        width: usize,
        decode: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<Matrix<T>, EvalError> {
        // Cannot overflow: `parse_npy` checked rows × dim × 8.
        let need = self.rows * self.dim * width;
        if self.body.len() < need {
            let got = self.body.len();
            return Err(format_err(
                path,
                format!("truncated: {got} data bytes, shape needs {need}"),
            ));
        }
        let data = self.body[..need]
            .chunks_exact(width)
            .map(|b| decode(b).map_err(|e| format_err(path, e)))
            .collect::<Result<_, _>>()?;
        Ok(Matrix {
            rows: self.rows,
            dim: self.dim,
            data,
        })
    }
}

fn read_npy_f32(path: &Path, bytes: &[u8]) -> Result<Matrix<f32>, EvalError> {
    let npy = parse_npy(path, bytes)?;
    match npy.descr {
        "<f4" => npy.decode(path, 4, |b| {
            Ok(f32::from_le_bytes(b.try_into().expect("4")))
        }),
        "<f8" => npy.decode(path, 8, |b| {
            Ok(f64::from_le_bytes(b.try_into().expect("8")) as f32)
        }),
        d => Err(format_err(
            path,
            format!("dtype {d:?}: expected <f4 or <f8"),
        )),
    }
}

fn read_npy_i32(path: &Path, bytes: &[u8]) -> Result<Matrix<i32>, EvalError> {
    let npy = parse_npy(path, bytes)?;
    let narrow = |v: i64| i32::try_from(v).map_err(|_| format!("id {v} does not fit in i32"));
    match npy.descr {
        "<i4" => npy.decode(path, 4, |b| {
            Ok(i32::from_le_bytes(b.try_into().expect("4")))
        }),
        "<u4" => npy.decode(path, 4, |b| {
            narrow(i64::from(u32::from_le_bytes(b.try_into().expect("4"))))
        }),
        "<i8" => npy.decode(path, 8, |b| {
            narrow(i64::from_le_bytes(b.try_into().expect("8")))
        }),
        d => Err(format_err(
            path,
            format!("dtype {d:?}: expected <i4, <u4 or <i8"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fvecs(rows: &[&[f32]]) -> Vec<u8> {
        let mut out = Vec::new();
        for r in rows {
            out.extend_from_slice(&(r.len() as i32).to_le_bytes());
            for v in *r {
                out.extend_from_slice(&v.to_le_bytes());
            }
        }
        out
    }

    fn npy(descr: &str, shape: &str, body: &[u8]) -> Vec<u8> {
        let mut header =
            format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        while (10 + header.len() + 1) % 64 != 0 {
            header.push(' ');
        }
        header.push('\n');
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend_from_slice(&(header.len() as u16).to_le_bytes());
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn reads_fvecs_and_npy() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.fvecs");
        std::fs::write(&p, fvecs(&[&[1.0, 2.0], &[3.0, 4.0]])).unwrap();
        let m = read_vectors(&p).unwrap();
        assert_eq!(
            (m.rows, m.dim, m.data.clone()),
            (2, 2, vec![1.0, 2.0, 3.0, 4.0])
        );

        let body: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let p = dir.path().join("a.npy");
        std::fs::write(&p, npy("<f4", "(3, 2)", &body)).unwrap();
        let m = read_vectors(&p).unwrap();
        assert_eq!((m.rows, m.dim), (3, 2));
        assert_eq!(m.row(2), &[5.0, 6.0]);

        let body: Vec<u8> = [7i64, 16_777_217]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let p = dir.path().join("ids.npy");
        std::fs::write(&p, npy("<i8", "(1, 2)", &body)).unwrap();
        assert_eq!(read_ids(&p).unwrap().data, vec![7, 16_777_217]);
    }

    #[test]
    fn ivecs_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("gt.ivecs");
        let m = Matrix {
            rows: 2,
            dim: 3,
            data: vec![1, 2, 3, 4, 5, 6],
        };
        write_ivecs(&p, &m).unwrap();
        assert_eq!(read_ids(&p).unwrap(), m);
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("empty.fvecs", vec![], "empty"),
            (
                "trunc.fvecs",
                fvecs(&[&[1.0, 2.0]])[..10].to_vec(),
                "whole number of rows",
            ),
            (
                "ragged.fvecs",
                [fvecs(&[&[1.0, 2.0]]), fvecs(&[&[1.0, 2.0]])].concat()[..].to_vec(),
                "",
            ),
            ("nan.fvecs", fvecs(&[&[1.0, f32::NAN]]), "NaN"),
            ("x.csv", vec![1], "unknown vector format"),
            ("bad.npy", b"hello world".to_vec(), "bad magic"),
            ("int.npy", npy("<i4", "(1, 1)", &[0; 4]), "expected <f4"),
            // Regression: a crafted shape overflowed rows × dim × width ("capacity overflow").
            (
                "huge.npy",
                npy("<f4", "(4611686018427387904, 4)", &[0; 16]),
                "too large",
            ),
            (
                "big.npy",
                npy("<f4", "(1000000, 1000000)", &[0; 16]),
                "truncated",
            ),
        ];
        for (name, bytes, needle) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            match read_vectors(&p) {
                Err(e) => assert!(e.to_string().contains(needle), "{name}: {e}"),
                Ok(_) if name == "ragged.fvecs" => {}
                Ok(m) => panic!("{name} loaded: {m:?}"),
            }
        }
        let missing = read_vectors(&dir.path().join("missing.fvecs")).unwrap_err();
        assert!(missing.to_string().contains("missing.fvecs"));
    }
}
