//! The operations a WAL record carries, and their byte encoding.
//!
//! ```text
//! op     = 7 u8 | count u32 | upsert₄*    (upsert batch with expiries)
//!        | 8 u8 | count u32 | id* | count u32 | upsert₄*  (replace with expiries)
//!        | 5 u8 | count u32 | upsert*     (upsert batch, no point expires)
//!        | 2 u8 | count u32 | id*         (delete batch)
//!        | 6 u8 | count u32 | id* | count u32 | upsert*   (replace: delete, then upsert)
//!        | 3 u8 | count u32 | upsert₂*    (upsert batch before term dictionaries: read only)
//!        | 4 u8 | count u32 | id* | count u32 | upsert₂*  (replace, idem: read only)
//!        | 1 u8 | count u32 | upsert₁*    (upsert batch before sparse spaces: read only)
//! upsert₁ = id | spaces u16 | (dim u32 | f32 × dim)* | payload_len u32 | payload JSON
//! upsert₂ = upsert₁ | sparse u16 | (len f32 | nnz u32 | (index u32 | value f32) × nnz)*
//! upsert = upsert₁ | sparse u16 | entry*   (entry: `sparse_store::put_sparse_doc`, a BM25
//!          space's terms as text, a dot-product space's weights by index)
//! upsert₄ = upsert | expires_at i64  (milliseconds since the Unix epoch; `i64::MAX`: never)
//! id     = as in segment files (tag u8 + value)
//! ```
//!
//! A batch in which no point expires is written with tags 5 and 6, as before expiries
//! existed, so a log written without TTLs stays readable by older builds; tags 7 and 8 carry
//! each point's expiry (the expiry as computed at upsert, the collection default applied).
//!
//! ```text
//! ```
//!
//! A delete by filter is resolved to ids before it is logged, so replaying the log never
//! depends on the state a filter was evaluated against. Records of tags 3 and 4 hold a BM25
//! space's terms as 32-bit hashes; they replay as weights, which the segment's store turns
//! into legacy terms (the collection's analyzer is then version 1, which emits those too).

use std::path::Path;

use serde_json::Value;
use sextant_core::{PointId, SparseDoc};
use sextant_storage::segment::{decode_id, put_id, read_sparse, Cursor, NO_EXPIRY};
use sextant_storage::sparse_store::{put_sparse_doc, read_sparse_doc};
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
    /// One entry per sparse space, in schema order (empty weights when the point has nothing
    /// for a space).
    pub sparse: Vec<SparseDoc>,
    /// When it expires (milliseconds since the Unix epoch, UTC), if ever.
    pub expires_at: Option<i64>,
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

fn put_upserts(points: &[PointWrite], expiries: bool, out: &mut Vec<u8>) {
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
        for doc in &p.sparse {
            put_sparse_doc(doc, out);
        }
        if expiries {
            let e = p.expires_at.unwrap_or(NO_EXPIRY);
            out.extend_from_slice(&e.to_le_bytes());
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
                let exp = any_expiry(points);
                out.push(if exp { 7 } else { 5 });
                put_upserts(points, exp, &mut out);
            }
            Op::Delete(ids) => {
                out.push(2);
                put_ids(ids, &mut out);
            }
            Op::Replace { delete, upsert } => {
                let exp = any_expiry(upsert);
                out.push(if exp { 8 } else { 6 });
                put_ids(delete, &mut out);
                put_upserts(upsert, exp, &mut out);
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
            1 => Op::Upsert(read_upserts(&mut r, Sparse::None)?),
            3 => Op::Upsert(read_upserts(&mut r, Sparse::Hashed)?),
            5 => Op::Upsert(read_upserts(&mut r, Sparse::Docs)?),
            7 => Op::Upsert(read_upserts(&mut r, Sparse::DocsExpiring)?),
            2 => Op::Delete(read_ids(&mut r)?),
            4 | 6 | 8 => {
                let delete = read_ids(&mut r)?;
                let sparse = match tag {
                    4 => Sparse::Hashed,
                    6 => Sparse::Docs,
                    _ => Sparse::DocsExpiring,
                };
                Op::Replace {
                    delete,
                    upsert: read_upserts(&mut r, sparse)?,
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

fn any_expiry(points: &[PointWrite]) -> bool {
    points.iter().any(|p| p.expires_at.is_some())
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

/// How an upsert list's sparse entries are written.
#[derive(Clone, Copy, PartialEq)]
enum Sparse {
    /// Not at all (tag 1).
    None,
    /// As (index, value) vectors, BM25 terms hashed (tags 3 and 4).
    Hashed,
    /// As `put_sparse_doc` entries (tags 5 and 6).
    Docs,
    /// As `put_sparse_doc` entries, then the point's expiry (tags 7 and 8).
    DocsExpiring,
}

/// Reads an upsert list.
fn read_upserts(r: &mut Cursor<'_>, sparse_kind: Sparse) -> Result<Vec<PointWrite>, StorageError> {
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
        if sparse_kind != Sparse::None {
            let n = u16::from_le_bytes(r.take(2)?.try_into().expect("2"));
            for _ in 0..n {
                sparse.push(match sparse_kind {
                    Sparse::Hashed => SparseDoc::Weights(read_sparse(r)?.0),
                    _ => read_sparse_doc(r)?,
                });
            }
        }
        let expires_at = if sparse_kind == Sparse::DocsExpiring {
            Some(r.u64()? as i64).filter(|&e| e != NO_EXPIRY)
        } else {
            None
        };
        points.push(PointWrite {
            id,
            vectors,
            payload,
            sparse,
            expires_at,
        });
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sextant_core::{SparseVector, TermCounts};
    use sextant_storage::segment::put_sparse;

    #[test]
    fn round_trip() {
        let ops = [
            Op::Upsert(vec![
                PointWrite {
                    id: PointId::Str("a".into()),
                    vectors: vec![vec![1.0, -2.5], vec![0.25]],
                    payload: serde_json::json!({"k": [1, "x"], "n": null}),
                    sparse: vec![
                        SparseDoc::Weights(
                            SparseVector::from_pairs(vec![(9, 1.5), (2, 1.0)]).unwrap(),
                        ),
                        SparseDoc::Terms(TermCounts {
                            terms: vec![("1023898".into(), 1.0), ("東京".into(), 2.0)],
                            len: 3.0,
                        }),
                    ],
                    expires_at: Some(1_700_000_000_000),
                },
                PointWrite {
                    id: PointId::Uuid(7),
                    vectors: vec![vec![], vec![3.0]],
                    payload: serde_json::json!({}),
                    sparse: vec![],
                    expires_at: None,
                },
            ]),
            Op::Delete(vec![PointId::Num(3), PointId::Num(u64::MAX)]),
            Op::Replace {
                delete: vec![],
                upsert: vec![PointWrite {
                    id: PointId::Num(1),
                    vectors: vec![vec![0.5]],
                    payload: serde_json::json!({}),
                    sparse: vec![],
                    expires_at: Some(-5),
                }],
            },
            Op::Replace {
                delete: vec![PointId::Str("a#3".into())],
                upsert: vec![PointWrite {
                    id: PointId::Str("a#0".into()),
                    vectors: vec![vec![0.5]],
                    payload: serde_json::json!({"doc_id": "a"}),
                    sparse: vec![],
                    expires_at: None,
                }],
            },
        ];
        for op in ops {
            let bytes = op.encode();
            assert_eq!(Op::decode(Path::new("wal"), &bytes).unwrap(), op);
            assert!(Op::decode(Path::new("wal"), &bytes[..bytes.len() - 1]).is_err());
        }
    }

    #[test]
    fn batches_without_expiries_keep_the_old_tags() {
        let p = PointWrite {
            id: PointId::Num(1),
            vectors: vec![vec![0.5]],
            payload: serde_json::json!({}),
            sparse: vec![],
            expires_at: None,
        };
        assert_eq!(Op::Upsert(vec![p.clone()]).encode()[0], 5);
        let replace = Op::Replace {
            delete: vec![],
            upsert: vec![p.clone()],
        };
        assert_eq!(replace.encode()[0], 6);
        let mut e = p;
        e.expires_at = Some(9);
        assert_eq!(Op::Upsert(vec![e]).encode()[0], 7);
    }

    #[test]
    fn records_before_term_dictionaries_replay_as_weights() {
        let mut b = vec![3u8];
        b.extend_from_slice(&1u32.to_le_bytes());
        put_id(&PointId::Num(1), &mut b);
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&2u32.to_le_bytes());
        b.extend_from_slice(b"{}");
        b.extend_from_slice(&1u16.to_le_bytes());
        let v = SparseVector::from_pairs(vec![(7, 2.0)]).unwrap();
        put_sparse(&v, 2.0, &mut b);
        let Op::Upsert(points) = Op::decode(Path::new("wal"), &b).unwrap() else {
            panic!("an upsert");
        };
        assert_eq!(points[0].sparse, [SparseDoc::Weights(v)]);
    }
}
