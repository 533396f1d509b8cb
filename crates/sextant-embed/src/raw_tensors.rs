//! A small reader of safetensors files for the tensors candle does not load.
//!
//! Model2Vec checkpoints may store their embedding table as int8 (vocabulary-quantized
//! models), a dtype candle 0.11 has no type for, so `candle_core::safetensors` refuses the
//! whole file. The format is simple enough to read directly:
//!
//! ```text
//! [u64 LE: n] [n bytes of JSON header] [data]
//! header: {"name": {"dtype": "I8", "shape": [rows, cols], "data_offsets": [start, end]}, …,
//!          "__metadata__": {…}}          offsets are relative to the start of the data
//! ```
//!
//! Every length and offset is checked against the file before it is used, so a damaged or
//! truncated file is an error naming it, never a panic. Values are converted to what the
//! callers compute with: floats (any float or integer dtype) to f32, indices (integer dtypes)
//! to u32.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::weights::hex;
use crate::EmbedError;

/// Largest header accepted (real headers are kilobytes; this guards the allocation).
const MAX_HEADER_BYTES: u64 = 100 << 20;
/// The header key that is not a tensor.
const METADATA_KEY: &str = "__metadata__";

#[derive(Deserialize)]
struct HeaderEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: [usize; 2],
}

/// One tensor's place in the file.
#[derive(Debug, Clone)]
struct Entry {
    dtype: String,
    shape: Vec<usize>,
    start: usize,
    end: usize,
}

/// The tensors of one safetensors file, undecoded.
#[derive(Debug)]
pub(crate) struct RawTensors {
    path: PathBuf,
    bytes: Vec<u8>,
    entries: HashMap<String, Entry>,
    sha256: String,
}

fn bad(path: &Path, reason: impl Into<String>) -> EmbedError {
    EmbedError::bad_config(
        path,
        format!("not a valid safetensors file: {}", reason.into()),
    )
}

/// The byte size of one element of `dtype`, for the dtypes this reader decodes.
fn element_size(dtype: &str) -> Option<usize> {
    Some(match dtype {
        "I8" | "U8" | "BOOL" => 1,
        "F16" | "BF16" | "I16" | "U16" => 2,
        "F32" | "I32" | "U32" => 4,
        "F64" | "I64" | "U64" => 8,
        _ => return None,
    })
}

/// Parses the JSON header, checking every entry's offsets against `data_len` bytes of data.
fn parse_header(
    path: &Path,
    header: &[u8],
    data_len: usize,
) -> Result<HashMap<String, Entry>, EmbedError> {
    let raw: HashMap<String, serde_json::Value> =
        serde_json::from_slice(header).map_err(|source| EmbedError::Json {
            path: path.to_path_buf(),
            source,
        })?;
    let mut entries = HashMap::with_capacity(raw.len());
    for (name, v) in raw {
        if name == METADATA_KEY {
            continue;
        }
        let e: HeaderEntry = serde_json::from_value(v).map_err(|source| EmbedError::Json {
            path: path.to_path_buf(),
            source,
        })?;
        let [start, end] = e.data_offsets;
        if start > end || end > data_len {
            return Err(bad(
                path,
                format!("tensor {name:?} lies at bytes {start}..{end} of {data_len}"),
            ));
        }
        if let Some(size) = element_size(&e.dtype) {
            let count = e.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if count.and_then(|c| c.checked_mul(size)) != Some(end - start) {
                return Err(bad(
                    path,
                    format!(
                        "tensor {name:?} of shape {:?} and dtype {} does not fill its {} bytes",
                        e.shape,
                        e.dtype,
                        end - start
                    ),
                ));
            }
        }
        entries.insert(
            name,
            Entry {
                dtype: e.dtype,
                shape: e.shape,
                start,
                end,
            },
        );
    }
    Ok(entries)
}

/// Splits a whole file into header length and header, checked.
fn header_len(path: &Path, prefix: &[u8], file_len: u64) -> Result<usize, EmbedError> {
    let n = u64::from_le_bytes(
        prefix
            .try_into()
            .map_err(|_| bad(path, "shorter than its 8-byte header length"))?,
    );
    if n > MAX_HEADER_BYTES || n > file_len.saturating_sub(8) {
        return Err(bad(
            path,
            format!("header of {n} bytes in a file of {file_len}"),
        ));
    }
    Ok(n as usize)
}

impl RawTensors {
    /// Reads and hashes the whole file.
    pub(crate) fn load(path: &Path) -> Result<Self, EmbedError> {
        let bytes = std::fs::read(path).map_err(|e| EmbedError::io(path, e))?;
        let sha256 = hex(&Sha256::digest(&bytes));
        let prefix = bytes.get(..8).unwrap_or(&bytes);
        let n = header_len(path, prefix, bytes.len() as u64)?;
        let data_start = 8 + n;
        let entries = parse_header(path, &bytes[8..data_start], bytes.len() - data_start)?;
        // Offsets are relative to the data: rebase them once.
        let entries = entries
            .into_iter()
            .map(|(k, mut e)| {
                e.start += data_start;
                e.end += data_start;
                (k, e)
            })
            .collect();
        Ok(RawTensors {
            path: path.to_path_buf(),
            bytes,
            entries,
            sha256,
        })
    }

    /// The tensor names of a file, reading only its header.
    pub(crate) fn header_names(path: &Path) -> Result<Vec<String>, EmbedError> {
        let mut f = std::fs::File::open(path).map_err(|e| EmbedError::io(path, e))?;
        let file_len = f.metadata().map_err(|e| EmbedError::io(path, e))?.len();
        let mut prefix = [0u8; 8];
        f.read_exact(&mut prefix)
            .map_err(|_| bad(path, "shorter than its 8-byte header length"))?;
        let n = header_len(path, &prefix, file_len)?;
        let mut header = vec![0u8; n];
        f.read_exact(&mut header)
            .map_err(|e| EmbedError::io(path, e))?;
        let data_len = (file_len - 8 - n as u64) as usize;
        Ok(parse_header(path, &header, data_len)?.into_keys().collect())
    }

    /// Lowercase hex sha256 of the file's bytes.
    pub(crate) fn sha256(&self) -> &str {
        &self.sha256
    }

    /// The shape of tensor `name`, if present.
    pub(crate) fn shape(&self, name: &str) -> Option<&[usize]> {
        self.entries.get(name).map(|e| e.shape.as_slice())
    }

    fn entry(&self, name: &str) -> Result<&Entry, EmbedError> {
        self.entries
            .get(name)
            .ok_or_else(|| EmbedError::MissingTensor {
                name: name.to_owned(),
                path: self.path.clone(),
                tried: vec![name.to_owned()],
            })
    }

    fn unsupported(&self, name: &str, e: &Entry, wanted: &str) -> EmbedError {
        EmbedError::bad_config(
            &self.path,
            format!(
                "tensor {name:?} has dtype {}, which cannot be read as {wanted}",
                e.dtype
            ),
        )
    }

    /// Tensor `name` as f32 values (row-major), from any float or integer dtype; integers keep
    /// their value (Model2Vec's int8 tables are used unscaled).
    pub(crate) fn f32s(&self, name: &str) -> Result<Vec<f32>, EmbedError> {
        let e = self.entry(name)?;
        let data = &self.bytes[e.start..e.end];
        let via_candle = |dtype: DType| -> Result<Vec<f32>, EmbedError> {
            let n = e.shape.iter().product::<usize>();
            Ok(Tensor::from_raw_buffer(data, dtype, &[n], &Device::Cpu)?
                .to_dtype(DType::F32)?
                .to_vec1::<f32>()?)
        };
        Ok(match e.dtype.as_str() {
            "F32" => le_chunks::<4>(data).map(f32::from_le_bytes).collect(),
            "F16" => via_candle(DType::F16)?,
            "BF16" => via_candle(DType::BF16)?,
            "F64" => le_chunks::<8>(data)
                .map(|b| f64::from_le_bytes(b) as f32)
                .collect(),
            "I8" => data.iter().map(|&b| f32::from(b as i8)).collect(),
            "U8" => data.iter().map(|&b| f32::from(b)).collect(),
            "I16" => le_chunks::<2>(data)
                .map(|b| f32::from(i16::from_le_bytes(b)))
                .collect(),
            "I32" => le_chunks::<4>(data)
                .map(|b| i32::from_le_bytes(b) as f32)
                .collect(),
            _ => return Err(self.unsupported(name, e, "numbers")),
        })
    }

    /// Tensor `name` as row indices, from any integer dtype; a negative index or one above
    /// `u32::MAX` is an error.
    pub(crate) fn indices(&self, name: &str) -> Result<Vec<u32>, EmbedError> {
        let e = self.entry(name)?;
        let data = &self.bytes[e.start..e.end];
        let wide: Vec<i128> = match e.dtype.as_str() {
            "I64" => le_chunks::<8>(data)
                .map(|b| i128::from(i64::from_le_bytes(b)))
                .collect(),
            "U64" => le_chunks::<8>(data)
                .map(|b| i128::from(u64::from_le_bytes(b)))
                .collect(),
            "I32" => le_chunks::<4>(data)
                .map(|b| i128::from(i32::from_le_bytes(b)))
                .collect(),
            "U32" => le_chunks::<4>(data)
                .map(|b| i128::from(u32::from_le_bytes(b)))
                .collect(),
            "I16" => le_chunks::<2>(data)
                .map(|b| i128::from(i16::from_le_bytes(b)))
                .collect(),
            "U16" => le_chunks::<2>(data)
                .map(|b| i128::from(u16::from_le_bytes(b)))
                .collect(),
            "U8" => data.iter().map(|&b| i128::from(b)).collect(),
            "I8" => data.iter().map(|&b| i128::from(b as i8)).collect(),
            _ => return Err(self.unsupported(name, e, "indices")),
        };
        wide.into_iter()
            .map(|v| {
                u32::try_from(v).map_err(|_| {
                    EmbedError::bad_config(
                        &self.path,
                        format!("tensor {name:?} holds the index {v}, outside 0..2^32"),
                    )
                })
            })
            .collect()
    }
}

/// `data` in little-endian chunks of `N` bytes (the length is a multiple of `N`: checked
/// against the shape when the header was read).
fn le_chunks<const N: usize>(data: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
    data.chunks_exact(N).map(|c| {
        let mut a = [0u8; N];
        a.copy_from_slice(c);
        a
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A safetensors file with the given `(name, dtype, shape, bytes)` tensors.
    pub(crate) fn write(path: &Path, tensors: &[(&str, &str, Vec<usize>, Vec<u8>)]) {
        let mut header = serde_json::Map::new();
        let mut data = Vec::new();
        for (name, dtype, shape, bytes) in tensors {
            header.insert(
                (*name).to_owned(),
                serde_json::json!({"dtype": dtype, "shape": shape,
                    "data_offsets": [data.len(), data.len() + bytes.len()]}),
            );
            data.extend_from_slice(bytes);
        }
        header.insert(METADATA_KEY.into(), serde_json::json!({"format": "pt"}));
        let h = serde_json::to_vec(&header).unwrap();
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&h);
        out.extend_from_slice(&data);
        std::fs::write(path, out).unwrap();
    }

    #[test]
    fn every_dtype_decodes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.safetensors");
        let f16: Vec<u8> = [0x3c00u16, 0xc000]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        write(
            &p,
            &[
                ("i8", "I8", vec![3], vec![0x80, 0xff, 0x7f]),
                ("f16", "F16", vec![2], f16),
                ("f32", "F32", vec![1], 1.5f32.to_le_bytes().to_vec()),
                ("i64", "I64", vec![1], 7i64.to_le_bytes().to_vec()),
                ("neg", "I64", vec![1], (-1i64).to_le_bytes().to_vec()),
            ],
        );
        let t = RawTensors::load(&p).unwrap();
        assert_eq!(t.f32s("i8").unwrap(), vec![-128., -1., 127.]);
        assert_eq!(t.f32s("f16").unwrap(), vec![1., -2.]);
        assert_eq!(t.f32s("f32").unwrap(), vec![1.5]);
        assert_eq!(t.indices("i64").unwrap(), vec![7]);
        assert!(t.indices("neg").is_err());
        assert!(t.indices("f32").is_err());
        assert!(matches!(
            t.f32s("absent"),
            Err(EmbedError::MissingTensor { .. })
        ));
        let mut names = RawTensors::header_names(&p).unwrap();
        names.sort();
        assert_eq!(names, ["f16", "f32", "i64", "i8", "neg"]);
    }

    #[test]
    fn damaged_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.safetensors");
        for bytes in [
            vec![1u8, 2],                                    // shorter than the length prefix
            u64::MAX.to_le_bytes().to_vec(),                 // absurd header length
            [4u64.to_le_bytes().as_slice(), b"{}"].concat(), // header past the end
        ] {
            std::fs::write(&p, &bytes).unwrap();
            assert!(RawTensors::load(&p).is_err());
            assert!(RawTensors::header_names(&p).is_err());
        }
        // Offsets past the data, and a shape that does not fill its bytes.
        write(&p, &[("x", "F32", vec![2], vec![0; 4])]);
        let err = RawTensors::load(&p).unwrap_err();
        assert!(err.to_string().contains("safetensors"), "{err}");
    }
}
