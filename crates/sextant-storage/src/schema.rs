//! A collection's schema and its manifest: the small documents that say what a collection is and
//! which segment files make up its current state.
//!
//! The manifest is the single source of truth after a crash: a segment directory or tombstone
//! file it does not name is garbage from an interrupted flush or merge. It is JSON (readable in an
//! emergency) inside a checked envelope, and is only ever replaced atomically.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sextant_core::Metric;
pub use sextant_index::Quantization;

use crate::envelope;
use crate::fs::Fs;
use crate::id_map::IdKind;
use crate::payload_index::FieldType;
use crate::StorageError;

/// Default HNSW `m` of a new space (links per node per layer).
pub const DEFAULT_M: usize = 16;
/// Default HNSW `ef_construction` of a new space.
pub const DEFAULT_EF_CONSTRUCTION: usize = 200;
/// Largest accepted vector dimension.
pub const MAX_DIM: usize = 65_536;
/// The name of the vector space a single-space collection gets when none is given.
pub const DEFAULT_SPACE: &str = "default";

/// The index a dense space keeps in its flushed segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum IndexSpec {
    /// Exact search only.
    Flat,
    /// An HNSW graph.
    Hnsw {
        /// Links per node per layer.
        m: usize,
        /// Candidate list size while building.
        ef_construction: usize,
        /// What the graph walk compares: `auto` (SQ8 codes where the metric allows, the
        /// default), `none` (the f32 vectors) or `sq8`; results are rescored exactly either
        /// way. Manifests written before this setting existed read as `auto`.
        #[serde(default, skip_serializing_if = "is_auto", with = "quantization_name")]
        quantization: Quantization,
    },
    /// Inverted lists of product-quantisation codes, candidates rescored exactly (each
    /// flushed or merged segment trains its own quantisers; segments under
    /// [`IVF_MIN_POINTS`] points stay flat).
    #[serde(rename = "ivf_pq")]
    IvfPq {
        /// Inverted lists per segment; 0 chooses about √n (a segment gets at most one list
        /// per 8 of its points).
        nlist: usize,
        /// Sub-quantisers; 0 chooses ⌈dim / 4⌉ for 4-bit codes and ⌈dim / 8⌉ for 8-bit ones
        /// (both `dim / 8` bytes per vector).
        m: usize,
        /// Lists scanned per search.
        nprobe: usize,
        /// Bits per code: 4 (16 centroids per sub-space, scanned in registers; the default)
        /// or 8 (256: finer codes, a slower scan). Manifests written before this setting
        /// existed read as 4; 4 is not written.
        #[serde(default = "four_bits", skip_serializing_if = "is_four_bits")]
        bits: usize,
        /// Learn an OPQ rotation before quantising (a slower build and a rotation per query;
        /// more recall per byte on data whose variance is uneven across components).
        #[serde(default, skip_serializing_if = "is_false")]
        opq: bool,
    },
}

fn four_bits() -> usize {
    4
}

fn is_four_bits(bits: &usize) -> bool {
    *bits == 4
}

/// Points below which a segment of an `ivf_pq` space keeps a flat (exact) index: too few to
/// train lists and codebooks, and cheap to scan.
pub const IVF_MIN_POINTS: usize = 1_024;
/// Lists an `ivf_pq` search scans unless the space says otherwise.
pub const DEFAULT_NPROBE: usize = sextant_index::DEFAULT_NPROBE;
/// Most inverted lists an `ivf_pq` space may ask for.
pub const MAX_NLIST: usize = 1 << 20;
/// Most sub-quantisers (the fast-scan kernels' exact-sum limit).
pub const MAX_SUBQUANTIZERS: usize = sextant_index::distance::MAX_SUBQUANTIZERS;

fn is_auto(q: &Quantization) -> bool {
    *q == Quantization::Auto
}

/// An HNSW walk's [`Quantization`] as the name users write (`auto`, `none`, `sq8`).
mod quantization_name {
    use serde::{Deserialize, Deserializer, Serializer};
    use sextant_index::Quantization;

    pub(super) fn serialize<S: Serializer>(q: &Quantization, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(q.name())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Quantization, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl IndexSpec {
    /// The index kind's name as users write it: `flat`, `hnsw` or `ivf_pq`.
    pub fn name(&self) -> &'static str {
        match self {
            IndexSpec::Flat => "flat",
            IndexSpec::Hnsw { .. } => "hnsw",
            IndexSpec::IvfPq { .. } => "ivf_pq",
        }
    }
}

impl std::fmt::Display for IndexSpec {
    /// As users write the settings: `hnsw (m 16, ef_construction 200, quantization auto)`,
    /// `ivf_pq (nlist auto, pq_m 96, pq_bits 4, nprobe 16)` (`, opq` after the bits when
    /// set), `flat`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IndexSpec::Flat => f.write_str("flat"),
            IndexSpec::Hnsw {
                m,
                ef_construction,
                quantization,
            } => write!(
                f,
                "hnsw (m {m}, ef_construction {ef_construction}, quantization {})",
                quantization.name()
            ),
            IndexSpec::IvfPq {
                nlist,
                m,
                nprobe,
                bits,
                opq,
            } => {
                let auto = |n: &usize| {
                    if *n == 0 {
                        "auto".to_string()
                    } else {
                        n.to_string()
                    }
                };
                write!(
                    f,
                    "ivf_pq (nlist {}, pq_m {}, pq_bits {bits}{}, nprobe {nprobe})",
                    auto(nlist),
                    auto(m),
                    if *opq { ", opq" } else { "" }
                )
            }
        }
    }
}

impl Default for IndexSpec {
    fn default() -> Self {
        IndexSpec::Hnsw {
            m: DEFAULT_M,
            ef_construction: DEFAULT_EF_CONSTRUCTION,
            quantization: Quantization::Auto,
        }
    }
}

/// One named dense vector space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpaceSpec {
    /// Name (letters, digits, `_`, `-`).
    pub name: String,
    /// Dimension.
    pub dim: usize,
    /// Distance metric.
    pub metric: Metric,
    /// Index kind.
    #[serde(default)]
    pub index: IndexSpec,
    /// The model whose vectors this space holds (its directory and fingerprint, owned by the
    /// embedding layer and stored verbatim), when the space is model-backed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<serde_json::Value>,
    /// Keep the f32 vectors of immutable segments on disk, memory-mapped, instead of in
    /// memory: opening a segment reads its vectors file's header only, and searches read the
    /// pages they touch (an `ivf_pq` search reads only the candidates it rescores, an HNSW
    /// walk with SQ8 codes likewise; a flat scan or an f32 walk reads them all). The index
    /// itself (graph, codes, lists) stays in memory. Not with encryption at rest (there is
    /// no plain file to map).
    #[serde(default, skip_serializing_if = "is_false")]
    pub on_disk: bool,
}

fn is_false(b: &bool) -> bool {
    !b
}

/// How a sparse space scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SparseKind {
    /// BM25 over text: the engine analyzes text into term frequencies; scoring uses `k1`, `b`
    /// and collection-wide statistics.
    Bm25 {
        /// Term-frequency saturation.
        k1: f32,
        /// Length normalisation.
        b: f32,
        /// The analyzer configuration (owned by the text layer; stored here verbatim).
        #[serde(default)]
        analyzer: serde_json::Value,
    },
    /// Caller-supplied non-negative weights (e.g. SPLADE), scored by dot product.
    Dot,
}

/// One named sparse space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SparseSpaceSpec {
    /// Name (letters, digits, `_`, `-`; distinct from the dense spaces' names).
    pub name: String,
    /// Scoring.
    pub kind: SparseKind,
    /// Identity of the model whose weights the space holds (learned sparse encoders).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<serde_json::Value>,
}

/// A declared payload index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PayloadIndexSpec {
    /// Dotted payload key.
    pub key: String,
    /// Value type.
    #[serde(rename = "type")]
    pub field_type: FieldType,
}

/// What a collection holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schema {
    /// Dense vector spaces (at least one).
    pub spaces: Vec<SpaceSpec>,
    /// Declared payload indexes.
    #[serde(default)]
    pub payload_indexes: Vec<PayloadIndexSpec>,
    /// The payload key naming each point's tenant, when the collection is multi-tenant.
    #[serde(default)]
    pub tenant_key: Option<String>,
    /// Sparse spaces (BM25 or learned sparse weights).
    #[serde(default)]
    pub sparse_spaces: Vec<SparseSpaceSpec>,
    /// Settings of the document layer (chunking, redaction, models) for collections made by
    /// document ingestion; opaque to storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub documents: Option<serde_json::Value>,
    /// The collection's default expiry (retention): a point without an expiry of its own
    /// expires `seconds` after the instant in its payload's datetime `field`. Fixed at
    /// creation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<TtlSpec>,
}

/// A collection's default time to live: a point expires `seconds` after the RFC 3339 instant
/// at payload key `field` (a point whose payload has no such instant does not expire by
/// default). A point's own expiry, given at upsert, wins over this default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TtlSpec {
    /// Dotted payload key holding an RFC 3339 datetime.
    pub field: String,
    /// Seconds after that instant at which the point expires (at least 1).
    pub seconds: u64,
}

/// Largest [`TtlSpec::seconds`] accepted (about 10,000 years, so that any expiry computed from
/// it stays far inside `i64` milliseconds).
pub const MAX_TTL_SECONDS: u64 = 10_000 * 366 * 86_400;

/// A schema that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid schema: {0}")]
pub struct SchemaError(pub String);

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Schema {
    /// Checks the schema and completes it: the tenant key gets a keyword index when none is
    /// declared for it.
    pub fn validated(mut self) -> Result<Schema, SchemaError> {
        let bad = |s: String| Err(SchemaError(s));
        if self.spaces.is_empty() {
            return bad("a collection needs at least one vector space".into());
        }
        let mut names = HashSet::new();
        for s in &self.spaces {
            if !valid_name(&s.name) {
                return bad(format!(
                    "space name {:?} must be 1-64 letters, digits, '_' or '-'",
                    s.name
                ));
            }
            if !names.insert(&s.name) {
                return bad(format!("space {:?} is declared twice", s.name));
            }
            if s.dim == 0 || s.dim > MAX_DIM {
                return bad(format!(
                    "space {:?}: dim must be 1..={MAX_DIM}, got {}",
                    s.name, s.dim
                ));
            }
            match s.index {
                IndexSpec::Hnsw {
                    m,
                    ef_construction,
                    quantization,
                } => {
                    if !(2..=128).contains(&m) {
                        return bad(format!("space {:?}: m must be 2..=128, got {m}", s.name));
                    }
                    if !quantization.supports(s.metric) {
                        return bad(format!(
                            "space {:?}: quantization {} does not support metric {} (use auto or none)",
                            s.name,
                            quantization.name(),
                            s.metric
                        ));
                    }
                    if ef_construction < m {
                        return bad(format!(
                            "space {:?}: ef_construction ({ef_construction}) must be at least m ({m})",
                            s.name
                        ));
                    }
                }
                IndexSpec::IvfPq {
                    nlist,
                    m,
                    nprobe,
                    bits,
                    opq: _,
                } => {
                    if !s.metric.quantizable() {
                        return bad(format!(
                            "space {:?}: ivf_pq ranks by inner product or squared distance: metric {} is not supported",
                            s.name, s.metric
                        ));
                    }
                    if bits != 4 && bits != 8 {
                        return bad(format!(
                            "space {:?}: pq_bits must be 4 or 8, got {bits}",
                            s.name
                        ));
                    }
                    if m > s.dim || (bits == 4 && m > MAX_SUBQUANTIZERS) {
                        return bad(format!(
                            "space {:?}: pq_m must be at most the dimension {}{}, got {m}",
                            s.name,
                            s.dim,
                            if bits == 4 {
                                format!(" and at most {MAX_SUBQUANTIZERS} with 4-bit codes")
                            } else {
                                String::new()
                            }
                        ));
                    }
                    if nlist > MAX_NLIST {
                        return bad(format!(
                            "space {:?}: nlist must be at most {MAX_NLIST}, got {nlist}",
                            s.name
                        ));
                    }
                    if nprobe == 0 {
                        return bad(format!("space {:?}: nprobe must be at least 1", s.name));
                    }
                }
                IndexSpec::Flat => {}
            }
        }
        for s in &self.sparse_spaces {
            if !valid_name(&s.name) {
                return bad(format!(
                    "sparse space name {:?} must be 1-64 letters, digits, '_' or '-'",
                    s.name
                ));
            }
            if !names.insert(&s.name) {
                return bad(format!("space {:?} is declared twice", s.name));
            }
            if let SparseKind::Bm25 { k1, b, .. } = s.kind {
                if !(k1.is_finite() && k1 > 0.0 && (0.0..=1.0).contains(&b)) {
                    return bad(format!(
                        "sparse space {:?}: BM25 needs k1 > 0 and 0 <= b <= 1 (got k1={k1}, b={b})",
                        s.name
                    ));
                }
            }
        }
        let mut keys = HashSet::new();
        for p in &self.payload_indexes {
            if p.key.is_empty() || p.key.split('.').any(str::is_empty) {
                return bad(format!("payload index key {:?} is not a dotted key", p.key));
            }
            if !keys.insert(p.key.clone()) {
                return bad(format!("payload index {:?} is declared twice", p.key));
            }
        }
        if let Some(ttl) = &self.ttl {
            if ttl.field.is_empty() || ttl.field.split('.').any(str::is_empty) {
                return bad(format!("ttl field {:?} is not a dotted key", ttl.field));
            }
            if ttl.seconds == 0 || ttl.seconds > MAX_TTL_SECONDS {
                return bad(format!(
                    "ttl must be 1..={MAX_TTL_SECONDS} seconds, got {}",
                    ttl.seconds
                ));
            }
        }
        if let Some(t) = &self.tenant_key {
            match self.payload_indexes.iter().find(|p| &p.key == t) {
                Some(p) if !matches!(p.field_type, FieldType::Keyword | FieldType::Integer) => {
                    return bad(format!(
                        "tenant key {t:?} must be indexed as keyword or integer"
                    ));
                }
                Some(_) => {}
                None if t.is_empty() => return bad("tenant key is empty".into()),
                None => self.payload_indexes.push(PayloadIndexSpec {
                    key: t.clone(),
                    field_type: FieldType::Keyword,
                }),
            }
        }
        Ok(self)
    }

    /// The position of the space called `name`.
    pub fn space_index(&self, name: &str) -> Option<usize> {
        self.spaces.iter().position(|s| s.name == name)
    }

    /// The position of the sparse space called `name`.
    pub fn sparse_index(&self, name: &str) -> Option<usize> {
        self.sparse_spaces.iter().position(|s| s.name == name)
    }
}

/// One segment as the manifest records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentEntry {
    /// Segment id (its directory is `segments/<id>`).
    pub id: u64,
    /// Points stored (live and deleted).
    pub points: u64,
    /// The tombstone file inside the segment directory, when any point is deleted.
    #[serde(default)]
    pub tombstones: Option<String>,
}

/// The current state of a collection on disk.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// The schema.
    pub schema: Schema,
    /// Incremented by every manifest write.
    pub generation: u64,
    /// Every WAL record up to this sequence number is reflected in the segments.
    pub flushed_seq: u64,
    /// The id kind fixed by the first point, once there is one.
    #[serde(default)]
    pub id_kind: Option<IdKindName>,
    /// The id the next segment gets.
    pub next_segment: u64,
    /// The segments, oldest first.
    pub segments: Vec<SegmentEntry>,
}

/// Serialised form of [`IdKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IdKindName {
    /// Integers.
    Integer,
    /// UUIDs.
    Uuid,
    /// Strings.
    String,
}

impl From<IdKind> for IdKindName {
    fn from(k: IdKind) -> Self {
        match k {
            IdKind::Num => IdKindName::Integer,
            IdKind::Uuid => IdKindName::Uuid,
            IdKind::Str => IdKindName::String,
        }
    }
}

impl From<IdKindName> for IdKind {
    fn from(k: IdKindName) -> Self {
        match k {
            IdKindName::Integer => IdKind::Num,
            IdKindName::Uuid => IdKind::Uuid,
            IdKindName::String => IdKind::Str,
        }
    }
}

/// Magic number of manifest files.
pub const MANIFEST_MAGIC: &[u8; 8] = b"SXTMANF\0";
/// Manifest format version.
pub const MANIFEST_VERSION: u32 = 1;

impl Manifest {
    /// A fresh manifest for a new collection.
    pub fn new(schema: Schema) -> Manifest {
        Manifest {
            schema,
            generation: 0,
            flushed_seq: 0,
            id_kind: None,
            next_segment: 1,
            segments: Vec::new(),
        }
    }

    /// Reads and checks `path`.
    pub fn read(fs: &dyn Fs, path: &Path) -> Result<Manifest, StorageError> {
        let bytes = fs.read(path).map_err(|e| envelope::io_err(path, e))?;
        Manifest::decode(path, &bytes)
    }

    /// Writes `self` to `path` atomically and durably.
    pub fn write(&self, fs: &dyn Fs, path: &Path) -> Result<(), StorageError> {
        envelope::write_atomic(fs, path, &self.encode())
    }

    /// The bytes of a manifest file holding `self`.
    pub fn encode(&self) -> Vec<u8> {
        let body = serde_json::to_vec_pretty(self).expect("manifest serialises");
        envelope::seal(MANIFEST_MAGIC, MANIFEST_VERSION, &body)
    }

    /// Parses the bytes of a manifest file (`path` names it in errors).
    pub fn decode(path: &Path, bytes: &[u8]) -> Result<Manifest, StorageError> {
        let body = envelope::open(path, MANIFEST_MAGIC, MANIFEST_VERSION, bytes)?;
        serde_json::from_slice(body).map_err(|e| StorageError::Corrupt {
            path: path.to_path_buf(),
            offset: 24,
            reason: format!("manifest JSON does not parse: {e}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn space(name: &str, dim: usize) -> SpaceSpec {
        SpaceSpec {
            name: name.into(),
            dim,
            metric: Metric::Cosine,
            index: IndexSpec::default(),
            model: None,
            on_disk: false,
        }
    }

    #[test]
    fn validation_names_the_problem() {
        let ok = Schema {
            spaces: vec![space("a", 4)],
            payload_indexes: vec![],
            tenant_key: Some("org".into()),
            documents: None,
            ttl: None,
            sparse_spaces: vec![],
        }
        .validated()
        .unwrap();
        assert_eq!(ok.payload_indexes[0].key, "org", "tenant key gets an index");
        let err = |s: Schema| s.validated().unwrap_err().to_string();
        let mut s = ok.clone();
        s.spaces.push(space("a", 4));
        assert!(err(s).contains("declared twice"));
        let mut s = ok.clone();
        s.spaces[0].dim = 0;
        assert!(err(s).contains("dim must be"));
        let mut s = ok.clone();
        s.spaces[0].name = "a b".into();
        assert!(err(s).contains("space name"));
        let mut s = ok.clone();
        s.payload_indexes[0].field_type = FieldType::Float;
        assert!(err(s).contains("keyword or integer"));
    }

    #[test]
    fn index_specs_read_as_users_write_them_and_old_manifests_walk_auto() {
        assert_eq!(
            IndexSpec::default().to_string(),
            "hnsw (m 16, ef_construction 200, quantization auto)"
        );
        let ivf = IndexSpec::IvfPq {
            nlist: 0,
            m: 96,
            nprobe: 16,
            bits: 4,
            opq: false,
        };
        assert_eq!(
            ivf.to_string(),
            "ivf_pq (nlist auto, pq_m 96, pq_bits 4, nprobe 16)"
        );
        // A space written before the code width and OPQ were settings reads as 4-bit codes
        // without rotation; those defaults are not written, the others are.
        let old: IndexSpec =
            serde_json::from_str(r#"{"type": "ivf_pq", "nlist": 0, "m": 96, "nprobe": 16}"#)
                .unwrap();
        assert_eq!(old, ivf);
        let json = serde_json::to_string(&ivf).unwrap();
        assert!(!json.contains("bits") && !json.contains("opq"), "{json}");
        let fine = IndexSpec::IvfPq {
            nlist: 10,
            m: 48,
            nprobe: 8,
            bits: 8,
            opq: true,
        };
        assert_eq!(
            fine.to_string(),
            "ivf_pq (nlist 10, pq_m 48, pq_bits 8, opq, nprobe 8)"
        );
        let json = serde_json::to_string(&fine).unwrap();
        assert!(
            json.contains(r#""bits":8"#) && json.contains(r#""opq":true"#),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<IndexSpec>(&json).unwrap(), fine);
        assert_eq!(IndexSpec::Flat.to_string(), "flat");
        // A space written before the walk's quantization was a setting.
        let old: IndexSpec =
            serde_json::from_str(r#"{"type": "hnsw", "m": 8, "ef_construction": 40}"#).unwrap();
        assert_eq!(
            old,
            IndexSpec::Hnsw {
                m: 8,
                ef_construction: 40,
                quantization: Quantization::Auto
            }
        );
        // Auto is not written (files stay as they were); the others are, by name.
        assert!(!serde_json::to_string(&old)
            .unwrap()
            .contains("quantization"));
        let none = IndexSpec::Hnsw {
            m: 8,
            ef_construction: 40,
            quantization: Quantization::None,
        };
        let json = serde_json::to_string(&none).unwrap();
        assert!(json.contains(r#""quantization":"none""#), "{json}");
        assert_eq!(serde_json::from_str::<IndexSpec>(&json).unwrap(), none);
        let bad = serde_json::from_str::<IndexSpec>(
            r#"{"type": "hnsw", "m": 8, "ef_construction": 40, "quantization": "pq"}"#,
        );
        assert!(bad
            .unwrap_err()
            .to_string()
            .contains("unknown quantization"));
    }

    #[test]
    fn manifest_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("manifest");
        let mut m = Manifest::new(
            Schema {
                spaces: vec![space("v", 3)],
                payload_indexes: vec![PayloadIndexSpec {
                    key: "k".into(),
                    field_type: FieldType::Keyword,
                }],
                tenant_key: None,
                documents: None,
                ttl: None,
                sparse_spaces: vec![SparseSpaceSpec {
                    name: "text".into(),
                    kind: SparseKind::Bm25 {
                        k1: 1.2,
                        b: 0.75,
                        analyzer: serde_json::json!({"split": "unicode_words"}),
                    },
                    model: None,
                }],
            }
            .validated()
            .unwrap(),
        );
        m.id_kind = Some(IdKindName::Uuid);
        m.segments.push(SegmentEntry {
            id: 1,
            points: 10,
            tombstones: Some("deleted-3.bin".into()),
        });
        m.write(&crate::fs::RealFs, &p).unwrap();
        assert_eq!(Manifest::read(&crate::fs::RealFs, &p).unwrap(), m);
    }
}
