//! The operations a WAL record carries, and their byte encoding.
//!
//! ```text
//! op     = 3 u8 | count u32 | upsert*     (upsert batch)
//!        | 1 u8 | count u32 | upsert₁*    (upsert batch before sparse spaces: read, never written)
//!        | 2 u8 | count u32 | id*         (delete batch)
//!        | 4 u8 | count u32 | id* | count u32 | upsert*   (replace: delete, then upsert)
//! upsert₁ = id | spaces u16 | (dim u32 | f32 × dim)* | payload_len u32 | payload JSON
//! upsert = upsert₁ | sparse u16 | (len f32 | nnz u32 | (index u32 | value f32) × nnz)*
//! id     = as in segment files (tag u8 + value)
//! ```
//!
//! A delete by filter is resolved to ids before it is logged, so replaying the log never
//! depends on the state a filter was evaluated against.

use std::path::Path;

use serde_json::Value;
use sextant_core::{PointId, SparseVector};
use sextant_storage::segment::{decode_id, put_id, put_sparse, read_sparse, Cursor};
use sextant_storage::StorageError;

/// A validated point to write.
#[derive(Debug, Clone, PartialEq)]
pub struct PointWrite {
    /// External id.
    pub id: PointId,
    /// One vector per space, in schema order.
    pub vectors: Vec<Vec<f32>>,
    /// JSON object payload.
    pub payload: Value,
    /// One sparse vector and its length per sparse space, in schema order (empty when the
    /// point has nothing for a space).
    pub sparse: Vec<(SparseVector, f32)>,
}

/// One logged batch.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Insert or replace points.
    Upsert(Vec<PointWrite>),
    /// Delete points by id (missing ids are ignored).
    Delete(Vec<PointId>),
    /// Delete some points and upsert others as one atomic batch (a document's new chunks
    /// replacing its old ones): deletes apply first, so an id in both lists ends up written.
    Replace {
        /// Points to delete.
        delete: Vec<PointId>,
        /// Points to write.
        upsert: Vec<PointWrite>,
    },
}

fn put_upserts(points: &[PointWrite], out: &mut Vec<u8>) {
    out.extend_from_slice(&(points.len() as u32).to_le_bytes());
    for p in points {
        put_id(&p.id, out);
        out.extend_from_slice(&(p.vectors.len() as u16).to_le_bytes());
        for v in &p.vectors {
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.reserve(v.len() * 4);
            for x in v {
                out.extend_from_slice(&x.to_le_bytes());
            }
        }
        let json = serde_json::to_vec(&p.payload).expect("JSON serialises");
        out.extend_from_slice(&(json.len() as u32).to_le_bytes());
        out.extend_from_slice(&json);
        out.extend_from_slice(&(p.sparse.len() as u16).to_le_bytes());
        for (v, len) in &p.sparse {
            put_sparse(v, *len, out);
        }
    }
}

fn put_ids(ids: &[PointId], out: &mut Vec<u8>) {
    out.extend_from_slice(&(ids.len() as u32).to_le_bytes());
    for id in ids {
        put_id(id, out);
    }
}

impl Op {
    /// Encodes the batch.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        match self {
            Op::Upsert(points) => {
                out.push(3);
                put_upserts(points, &mut out);
            }
            Op::Delete(ids) => {
                out.push(2);
                put_ids(ids, &mut out);
            }
            Op::Replace { delete, upsert } => {
                out.push(4);
                put_ids(delete, &mut out);
                put_upserts(upsert, &mut out);
            }
        }
        out
    }

    /// Decodes a batch read from the WAL at `path` (whose records passed their CRC, so a
    /// failure here is a format bug or foreign data, reported as corruption).
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Op, StorageError> {
        let mut r = Cursor { bytes, at: 0, path };
        let tag = r.u8()?;
        let op = match tag {
            1 | 3 => Op::Upsert(read_upserts(&mut r, tag == 3)?),
            2 => Op::Delete(read_ids(&mut r)?),
            4 => {
                let delete = read_ids(&mut r)?;
                Op::Replace {
                    delete,
                    upsert: read_upserts(&mut r, true)?,
                }
            }
            t => return Err(bad(path, &format!("unknown operation {t}"))),
        };
        if !r.done() {
            return Err(bad(path, "trailing bytes"));
        }
        Ok(op)
    }
}

fn bad(path: &Path, reason: &str) -> StorageError {
    StorageError::Corrupt {
        path: path.to_path_buf(),
        offset: 0,
        reason: format!("WAL record does not decode: {reason}"),
    }
}

fn read_ids(r: &mut Cursor<'_>) -> Result<Vec<PointId>, StorageError> {
    let n = r.u32()? as usize;
    let mut ids = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        ids.push(decode_id(r)?);
    }
    Ok(ids)
}

/// Reads an upsert list; `with_sparse` is false for the legacy tag 1.
fn read_upserts(r: &mut Cursor<'_>, with_sparse: bool) -> Result<Vec<PointWrite>, StorageError> {
    let path = r.path;
    let n = r.u32()? as usize;
    let mut points = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let id = decode_id(r)?;
        let spaces = u16::from_le_bytes(r.take(2)?.try_into().expect("2"));
        let mut vectors = Vec::with_capacity(spaces as usize);
        for _ in 0..spaces {
            let dim = r.u32()? as usize;
            let raw = r.take(dim.checked_mul(4).ok_or_else(|| bad(path, "dimension"))?)?;
            vectors.push(
                raw.chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                    .collect(),
            );
        }
        let len = r.u32()? as usize;
        let payload =
            serde_json::from_slice(r.take(len)?).map_err(|_| bad(path, "payload JSON"))?;
        let mut sparse = Vec::new();
        if with_sparse {
            let n = u16::from_le_bytes(r.take(2)?.try_into().expect("2"));
            for _ in 0..n {
                sparse.push(read_sparse(r)?);
            }
        }
        points.push(PointWrite {
            id,
            vectors,
            payload,
            sparse,
        });
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let ops = [
            Op::Upsert(vec![
                PointWrite {
                    id: PointId::Str("a".into()),
                    vectors: vec![vec![1.0, -2.5], vec![0.25]],
                    payload: serde_json::json!({"k": [1, "x"], "n": null}),
                    sparse: vec![(
                        SparseVector::from_pairs(vec![(9, 1.5), (2, 1.0)]).unwrap(),
                        3.0,
                    )],
                },
                PointWrite {
                    id: PointId::Uuid(7),
                    vectors: vec![vec![], vec![3.0]],
                    payload: serde_json::json!({}),
                    sparse: vec![],
                },
            ]),
            Op::Delete(vec![PointId::Num(3), PointId::Num(u64::MAX)]),
            Op::Replace {
                delete: vec![PointId::Str("a#3".into())],
                upsert: vec![PointWrite {
                    id: PointId::Str("a#0".into()),
                    vectors: vec![vec![0.5]],
                    payload: serde_json::json!({"doc_id": "a"}),
                    sparse: vec![],
                }],
            },
        ];
        for op in ops {
            let bytes = op.encode();
            assert_eq!(Op::decode(Path::new("wal"), &bytes).unwrap(), op);
            assert!(Op::decode(Path::new("wal"), &bytes[..bytes.len() - 1]).is_err());
        }
    }
}
