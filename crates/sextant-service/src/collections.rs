//! A new vector collection as every front end asks for it: one unnamed space (`dim`, `metric`,
//! `index`, HNSW parameters) or named spaces, payload indexes, and a tenant key. The CLI builds
//! it from flags, the server reads it as a JSON body; both make the schema here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sextant_core::Metric;
use sextant_engine::{
    FieldType, IndexSpec, PayloadIndexSpec, Quantization, Schema, SpaceSpec, TtlSpec,
    DEFAULT_EF_CONSTRUCTION, DEFAULT_M, DEFAULT_SPACE,
};

use crate::error::{Error, Result};

/// A named vector space of a new collection.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpaceBody {
    /// Name.
    pub name: String,
    /// Dimension.
    pub dim: usize,
    /// `cosine`, `dot`, `l2`, `l1`, or for binary vectors (every component 0 or 1) `hamming` or
    /// `jaccard`.
    pub metric: String,
    /// `hnsw` (default), `flat` or `ivf_pq`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// HNSW links per node [default: 16].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<usize>,
    /// HNSW build candidate list size [default: 200].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_construction: Option<usize>,
    /// HNSW: what the graph walk compares, `auto` (SQ8 codes where the metric allows: the
    /// default), `none` (f32 vectors: no codes in memory), `sq8`, or `pq4` (4-bit codes of
    /// every node's neighbours beside its links: the fastest walk and the most memory, about
    /// 16 bytes per dimension plus 128 per point up to 256 dimensions); results are rescored
    /// exactly either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    /// IVF-PQ inverted lists per segment [default: 0, about √n].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nlist: Option<usize>,
    /// IVF-PQ sub-quantisers [default: 0, ⌈dim / 4⌉ with 4-bit codes, ⌈dim / 8⌉ with 8-bit].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pq_m: Option<usize>,
    /// IVF-PQ bits per code, 4 (scanned in registers) or 8 (finer, slower to scan)
    /// [default: 4].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pq_bits: Option<usize>,
    /// IVF-PQ: learn an OPQ rotation before quantising (slower build; more recall per byte
    /// where variance is uneven across components) [default: false].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opq: Option<bool>,
    /// IVF-PQ lists scanned per search [default: 16].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nprobe: Option<usize>,
    /// Keep the f32 vectors of flushed segments on disk, memory-mapped, instead of in memory
    /// (the index — graph, SQ8 or PQ codes — stays in memory; searches read the vectors they
    /// rescore); not with `encrypted` [default: false].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_disk: bool,
}

/// A new collection: one unnamed space (`dim`, `metric`, `index`) or named `spaces`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollectionSpec {
    /// Name (1-64 letters, digits, `_`, `-`).
    #[serde(default)]
    pub name: String,
    /// Dimension of the single space.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dim: Option<usize>,
    /// Metric of the single space: `cosine`, `dot`, `l2`, `l1`, or for binary vectors (every
    /// component 0 or 1) `hamming` or `jaccard` [default: cosine].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Index of the single space: `hnsw`, `flat` or `ivf_pq` [default: hnsw].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    /// HNSW links per node [default: 16].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub m: Option<usize>,
    /// HNSW build candidate list size [default: 200].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ef_construction: Option<usize>,
    /// HNSW: what the graph walk compares, `auto` (SQ8 codes where the metric allows: the
    /// default), `none` (f32 vectors: no codes in memory), `sq8`, or `pq4` (4-bit codes of
    /// every node's neighbours beside its links: the fastest walk and the most memory, about
    /// 16 bytes per dimension plus 128 per point up to 256 dimensions); results are rescored
    /// exactly either way.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quantization: Option<String>,
    /// IVF-PQ inverted lists per segment [default: 0, about √n].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nlist: Option<usize>,
    /// IVF-PQ sub-quantisers [default: 0, ⌈dim / 4⌉ with 4-bit codes, ⌈dim / 8⌉ with 8-bit].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pq_m: Option<usize>,
    /// IVF-PQ bits per code, 4 (scanned in registers) or 8 (finer, slower to scan)
    /// [default: 4].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pq_bits: Option<usize>,
    /// IVF-PQ: learn an OPQ rotation before quantising (slower build; more recall per byte
    /// where variance is uneven across components) [default: false].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opq: Option<bool>,
    /// IVF-PQ lists scanned per search [default: 16].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nprobe: Option<usize>,
    /// Keep the f32 vectors of flushed segments on disk, memory-mapped, instead of in memory
    /// (the index — graph, SQ8 or PQ codes — stays in memory; searches read the vectors they
    /// rescore); not with `encrypted` [default: false].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub on_disk: bool,
    /// Named spaces instead of the single one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spaces: Option<Vec<SpaceBody>>,
    /// Payload indexes: key → `keyword`, `integer`, `float`, `bool` or `datetime`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub payload_indexes: BTreeMap<String, String>,
    /// Payload key holding each point's tenant, `KEY` (string tenants) or `KEY:integer`: every
    /// point operation then names a tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_key: Option<String>,
    /// Encrypt the collection at rest (every file, and its snapshots) under a data key wrapped
    /// by the master key the database was opened with; refused without one [default: false].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
    /// Default time to live, `FIELD:DURATION` (`created_at:30d`; units `s`, `m`, `h`, `d`): a
    /// point without an expiry of its own expires DURATION after the RFC 3339 instant in its
    /// payload's FIELD (a point without one does not expire). A point's own expiry wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<String>,
}

/// Parses a default TTL written `FIELD:DURATION` (`created_at:30d`).
pub fn parse_ttl(spec: &str) -> Result<TtlSpec> {
    let (field, duration) = spec.rsplit_once(':').ok_or_else(|| {
        Error::invalid(
            "ttl",
            format!("{spec:?}: expected FIELD:DURATION, e.g. created_at:30d"),
        )
    })?;
    let ms = sextant_engine::clock::parse_duration_ms(duration).ok_or_else(|| {
        Error::invalid(
            "ttl",
            format!("{spec:?}: {duration:?} is not a duration (a whole number and s, m, h or d, e.g. 30d)"),
        )
    })?;
    if field.is_empty() {
        return Err(Error::invalid(
            "ttl",
            format!("{spec:?}: the field is empty"),
        ));
    }
    Ok(TtlSpec {
        field: field.to_string(),
        seconds: (ms / 1000) as u64,
    })
}

/// The index settings a space body gives (`None`: not given).
struct IndexArgs {
    kind: Option<String>,
    m: Option<usize>,
    ef_construction: Option<usize>,
    quantization: Option<String>,
    nlist: Option<usize>,
    pq_m: Option<usize>,
    pq_bits: Option<usize>,
    opq: Option<bool>,
    nprobe: Option<usize>,
}

fn index(a: IndexArgs, field: &str) -> Result<IndexSpec> {
    let graph = [
        ("m", a.m.is_some()),
        ("ef_construction", a.ef_construction.is_some()),
        ("quantization", a.quantization.is_some()),
    ];
    let ivf = [
        ("nlist", a.nlist.is_some()),
        ("pq_m", a.pq_m.is_some()),
        ("pq_bits", a.pq_bits.is_some()),
        ("opq", a.opq.is_some()),
        ("nprobe", a.nprobe.is_some()),
    ];
    let refuse = |given: &[(&str, bool)], kind: &str| -> Result<()> {
        match given.iter().find(|(_, g)| *g) {
            Some((name, _)) => Err(Error::invalid(
                field,
                format!("{name} does not apply to index {kind}"),
            )),
            None => Ok(()),
        }
    };
    match a.kind.as_deref().unwrap_or("hnsw") {
        "hnsw" => {
            refuse(&ivf, "hnsw")?;
            let quantization = match a.quantization.as_deref() {
                None => Quantization::Auto,
                Some(q) => q.parse().map_err(|e: String| {
                    let at = match field {
                        "index" => "quantization".to_string(),
                        f => format!("{f}.quantization"),
                    };
                    Error::invalid(at, e)
                })?,
            };
            Ok(IndexSpec::Hnsw {
                m: a.m.unwrap_or(DEFAULT_M),
                ef_construction: a.ef_construction.unwrap_or(DEFAULT_EF_CONSTRUCTION),
                quantization,
            })
        }
        "flat" => {
            refuse(&graph, "flat")?;
            refuse(&ivf, "flat")?;
            Ok(IndexSpec::Flat)
        }
        "ivf_pq" => {
            refuse(&graph, "ivf_pq")?;
            Ok(IndexSpec::IvfPq {
                nlist: a.nlist.unwrap_or(0),
                m: a.pq_m.unwrap_or(0),
                nprobe: a.nprobe.unwrap_or(sextant_engine::DEFAULT_NPROBE),
                bits: a.pq_bits.unwrap_or(4),
                opq: a.opq.unwrap_or(false),
            })
        }
        other => Err(Error::invalid(
            field,
            format!("unknown index {other:?}: expected hnsw, flat or ivf_pq"),
        )),
    }
}

fn metric(s: Option<&str>, field: &str) -> Result<Metric> {
    s.unwrap_or("cosine")
        .parse::<Metric>()
        .map_err(|e| Error::invalid(field, e.to_string()))
}

impl CollectionSpec {
    /// The schema this asks for (the engine then checks names, dimensions and keys).
    pub fn schema(&self) -> Result<Schema> {
        let spaces = match &self.spaces {
            Some(spaces) => {
                let single = [
                    ("dim", self.dim.is_some()),
                    ("metric", self.metric.is_some()),
                    ("index", self.index.is_some()),
                    ("m", self.m.is_some()),
                    ("ef_construction", self.ef_construction.is_some()),
                    ("quantization", self.quantization.is_some()),
                    ("nlist", self.nlist.is_some()),
                    ("pq_m", self.pq_m.is_some()),
                    ("pq_bits", self.pq_bits.is_some()),
                    ("opq", self.opq.is_some()),
                    ("nprobe", self.nprobe.is_some()),
                    ("on_disk", self.on_disk),
                ];
                if let Some((f, _)) = single.iter().find(|(_, given)| *given) {
                    return Err(Error::invalid(
                        *f,
                        "give the single space's settings or spaces, not both",
                    ));
                }
                spaces
                    .iter()
                    .enumerate()
                    .map(|(i, sp)| {
                        let field = format!("spaces[{i}]");
                        Ok(SpaceSpec {
                            name: sp.name.clone(),
                            dim: sp.dim,
                            metric: metric(Some(&sp.metric), &field)?,
                            index: index(
                                IndexArgs {
                                    kind: sp.index.clone(),
                                    m: sp.m,
                                    ef_construction: sp.ef_construction,
                                    quantization: sp.quantization.clone(),
                                    nlist: sp.nlist,
                                    pq_m: sp.pq_m,
                                    pq_bits: sp.pq_bits,
                                    opq: sp.opq,
                                    nprobe: sp.nprobe,
                                },
                                &field,
                            )?,
                            model: None,
                            on_disk: sp.on_disk,
                        })
                    })
                    .collect::<Result<Vec<_>>>()?
            }
            None => vec![SpaceSpec {
                name: DEFAULT_SPACE.into(),
                dim: self
                    .dim
                    .ok_or_else(|| Error::invalid("dim", "give dim (or spaces)"))?,
                metric: metric(self.metric.as_deref(), "metric")?,
                index: index(
                    IndexArgs {
                        kind: self.index.clone(),
                        m: self.m,
                        ef_construction: self.ef_construction,
                        quantization: self.quantization.clone(),
                        nlist: self.nlist,
                        pq_m: self.pq_m,
                        pq_bits: self.pq_bits,
                        opq: self.opq,
                        nprobe: self.nprobe,
                    },
                    "index",
                )?,
                model: None,
                on_disk: self.on_disk,
            }],
        };
        let payload_indexes = self
            .payload_indexes
            .iter()
            .map(|(k, t)| {
                Ok(PayloadIndexSpec {
                    key: k.clone(),
                    field_type: t
                        .parse::<FieldType>()
                        .map_err(|e| Error::invalid("payload_indexes", format!("{k:?}: {e}")))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut schema = Schema {
            spaces,
            payload_indexes,
            tenant_key: None,
            documents: None,
            ttl: self.ttl.as_deref().map(parse_ttl).transpose()?,
            sparse_spaces: Vec::new(),
        };
        if let Some(spec) = &self.tenant_key {
            crate::ingest::set_tenant_key(&mut schema, spec)
                .map_err(|e| e.with_field("tenant_key"))?;
        }
        Ok(schema)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_become_schemas_and_refusals_name_the_field() {
        let s = CollectionSpec {
            name: "c".into(),
            dim: Some(4),
            payload_indexes: [("lang".to_string(), "keyword".to_string())].into(),
            tenant_key: Some("org:integer".into()),
            ..Default::default()
        }
        .schema()
        .unwrap();
        assert_eq!(s.spaces[0].dim, 4);
        assert_eq!(s.tenant_key.as_deref(), Some("org"));
        assert_eq!(s.payload_indexes.len(), 2);
        assert_eq!(s.ttl, None);
        let t = CollectionSpec {
            dim: Some(2),
            ttl: Some("meta.created:12h".into()),
            ..Default::default()
        }
        .schema()
        .unwrap();
        assert_eq!(
            t.ttl,
            Some(TtlSpec {
                field: "meta.created".into(),
                seconds: 43_200
            })
        );
        for bad in [
            "created",
            "created:",
            ":30d",
            "created:30",
            "created:1.5d",
            "created:0s",
        ] {
            let e = parse_ttl(bad).unwrap_err();
            assert_eq!(e.field(), Some("ttl"), "{bad}");
        }
        let field = |spec: CollectionSpec| spec.schema().unwrap_err().field().map(String::from);
        assert_eq!(field(CollectionSpec::default()).as_deref(), Some("dim"));
        let bad = |f: fn(&mut CollectionSpec)| {
            let mut s = CollectionSpec {
                dim: Some(3),
                ..Default::default()
            };
            f(&mut s);
            field(s)
        };
        assert_eq!(
            bad(|s| s.metric = Some("manhattan-ish".into())).as_deref(),
            Some("metric")
        );
        assert_eq!(
            bad(|s| s.index = Some("lsh".into())).as_deref(),
            Some("index")
        );
        assert_eq!(
            bad(|s| {
                s.index = Some("flat".into());
                s.m = Some(8)
            })
            .as_deref(),
            Some("index")
        );
        assert_eq!(
            bad(|s| {
                s.payload_indexes.insert("x".into(), "colour".into());
            })
            .as_deref(),
            Some("payload_indexes")
        );
        assert_eq!(
            bad(|s| s.tenant_key = Some("org:float".into())).as_deref(),
            Some("tenant_key")
        );
        assert_eq!(bad(|s| s.spaces = Some(vec![])).as_deref(), Some("dim"));
        // IVF-PQ: its settings only with it, graph settings never with it.
        let ivf = CollectionSpec {
            dim: Some(64),
            index: Some("ivf_pq".into()),
            pq_m: Some(16),
            ..Default::default()
        }
        .schema()
        .unwrap();
        assert_eq!(
            ivf.spaces[0].index,
            IndexSpec::IvfPq {
                nlist: 0,
                m: 16,
                nprobe: sextant_engine::DEFAULT_NPROBE,
                bits: 4,
                opq: false,
            }
        );
        let fine = CollectionSpec {
            dim: Some(64),
            index: Some("ivf_pq".into()),
            pq_bits: Some(8),
            opq: Some(true),
            ..Default::default()
        }
        .schema()
        .unwrap();
        assert!(matches!(
            fine.spaces[0].index,
            IndexSpec::IvfPq {
                bits: 8,
                opq: true,
                ..
            }
        ));
        let message = |spec: CollectionSpec| spec.schema().unwrap_err().to_string();
        let with = |f: fn(&mut CollectionSpec)| {
            let mut s = CollectionSpec {
                dim: Some(3),
                ..Default::default()
            };
            f(&mut s);
            message(s)
        };
        assert!(with(|s| s.nprobe = Some(4)).contains("nprobe does not apply to index hnsw"));
        assert!(with(|s| s.pq_bits = Some(8)).contains("pq_bits does not apply to index hnsw"));
        assert!(with(|s| {
            s.index = Some("flat".into());
            s.opq = Some(true)
        })
        .contains("opq does not apply to index flat"));
        // The walk's quantization: parsed for hnsw, named when unknown, refused elsewhere.
        let q = CollectionSpec {
            dim: Some(8),
            quantization: Some("none".into()),
            ..Default::default()
        }
        .schema()
        .unwrap();
        assert!(matches!(
            q.spaces[0].index,
            IndexSpec::Hnsw {
                quantization: Quantization::None,
                ..
            }
        ));
        assert_eq!(
            bad(|s| s.quantization = Some("pq2".into())).as_deref(),
            Some("quantization")
        );
        assert!(with(|s| {
            s.index = Some("ivf_pq".into());
            s.quantization = Some("sq8".into())
        })
        .contains("quantization does not apply to index ivf_pq"));
        assert!(with(|s| {
            s.index = Some("flat".into());
            s.nlist = Some(4)
        })
        .contains("nlist does not apply to index flat"));
        assert!(with(|s| {
            s.index = Some("ivf_pq".into());
            s.ef_construction = Some(4)
        })
        .contains("ef_construction does not apply to index ivf_pq"));
        assert!(with(|s| {
            s.spaces = Some(vec![]);
            s.dim = None;
            s.pq_m = Some(2)
        })
        .contains("not both"));
    }
}
