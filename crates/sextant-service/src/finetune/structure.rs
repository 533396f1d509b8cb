//! Training pairs from a document collection's own structure (issue 20, deliverable 2), for a
//! domain with no judged queries: each document's title, or each section heading, is a query,
//! and the chunks under it are its relevant passages.
//!
//! - The corpus is every chunk's text as stored (its `text` payload: redacted text stays
//!   redacted); chunks without text (pictures) are left out. In a multi-tenant collection it
//!   is one tenant's chunks, or every tenant's when asked for by name ([`scope`]): a model
//!   trained on text carries that text, so the tenant boundary is never crossed by default.
//! - A title or heading becomes one query, whatever number of documents carry it. One that
//!   heads chunks in more than [`MAX_HEADING_DOCUMENTS`] documents is not a query: "Description"
//!   or "Introduction" says nothing about the passage. Nor is one identical to a chunk's text.
//! - Every chunk under the query is judged relevant, so that none is mined as a hard negative
//!   of its own title, but only its first [`PAIRS_PER_QUERY`] become training pairs: a long
//!   document would otherwise fill a batch with one anchor, whose other positives then count
//!   as its negatives.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use sextant_engine::{Collection, Scope, TenantId};
use sextant_eval::ir::Record;

use super::{invalid, Judged};
use crate::Result;

/// Training pairs a structural query gives (its first chunks, in document order).
pub const PAIRS_PER_QUERY: usize = 2;

/// A heading over chunks of more documents than this is too generic to be a query.
pub const MAX_HEADING_DOCUMENTS: usize = 3;

/// Chunks read a page.
const PAGE: usize = 10_000;

/// Which of a collection's structure becomes queries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StructurePairs {
    /// A document's title → its passages.
    Title,
    /// A section heading → the passages under it.
    Section,
    /// Both.
    Both,
}

/// One chunk as the pairs need it.
struct Chunk {
    id: String,
    doc: String,
    index: u64,
    title: String,
    section: String,
    text: String,
}

/// Whose chunks the pairs come from: `tenant`'s, or with `all_tenants` every tenant's; one
/// of the two in a multi-tenant collection, neither elsewhere.
pub(super) fn scope(c: &Collection, tenant: Option<&str>, all_tenants: bool) -> Result<Scope> {
    let schema = c.schema();
    match (tenant, all_tenants, &schema.tenant_key) {
        (Some(_), true, _) => Err(invalid(
            "tenant",
            "give a tenant or all tenants, not both",
        )),
        (None, false, Some(key)) => Err(invalid(
            "tenant",
            format!(
                "collection {:?} is multi-tenant (tenant key {key:?}): train on one tenant's documents (tenant) or, as the administrator, on every tenant's (all_tenants)",
                c.name()
            ),
        )),
        (Some(_), false, None) => Err(invalid(
            "tenant",
            format!(
                "collection {:?} is not multi-tenant (it has no tenant key)",
                c.name()
            ),
        )),
        (Some(t), false, Some(_)) => Ok(Scope::Tenant(TenantId::parse_for(schema, t)?)),
        (None, true, _) => Ok(Scope::AllTenants),
        (None, false, None) => Ok(Scope::Unscoped),
    }
}

/// The judged data of `c`'s structure within `scope` (see the module documentation).
pub(super) fn judged(c: &Collection, scope: &Scope, kind: StructurePairs) -> Result<Judged> {
    if c.schema().documents.is_none() {
        return Err(invalid(
            "collection",
            format!(
                "collection {:?} is not a document collection: its structure (titles, sections) comes from ingested documents",
                c.name()
            ),
        ));
    }
    let mut chunks = Vec::new();
    let mut offset: Option<String> = None;
    loop {
        let page = c.scroll(scope, None, PAGE, offset.as_deref(), None, true)?;
        for p in page.points {
            let Some(payload) = p.payload else { continue };
            let field = |k: &str| payload[k].as_str().unwrap_or("").trim().to_owned();
            let text = field("text");
            if text.is_empty() {
                continue;
            }
            chunks.push(Chunk {
                id: p.id.to_string(),
                doc: field("doc_id"),
                index: payload["chunk_index"].as_u64().unwrap_or(0),
                title: field("title"),
                section: field("section"),
                text,
            });
        }
        match page.next_offset {
            Some(o) => offset = Some(o),
            None => break,
        }
    }
    // Document order: the first chunks of a query's are its training pairs.
    chunks.sort_by(|a, b| (&a.doc, a.index).cmp(&(&b.doc, b.index)));
    let texts: BTreeSet<&str> = chunks.iter().map(|c| c.text.as_str()).collect();
    // Query text → (documents, chunk places).
    let mut heads: BTreeMap<&str, (BTreeSet<&str>, Vec<usize>)> = BTreeMap::new();
    for (i, ch) in chunks.iter().enumerate() {
        let title = (kind != StructurePairs::Section).then_some(ch.title.as_str());
        let section = (kind != StructurePairs::Title && ch.section != ch.title)
            .then_some(ch.section.as_str());
        for q in [title, section].into_iter().flatten() {
            if !q.is_empty() && !texts.contains(q) {
                let e = heads.entry(q).or_default();
                e.0.insert(ch.doc.as_str());
                e.1.push(i);
            }
        }
    }
    let mut queries = Vec::new();
    let mut qrels: HashMap<String, HashMap<String, u32>> = HashMap::new();
    for (n, (text, (docs, places))) in heads.into_iter().enumerate() {
        if docs.len() > MAX_HEADING_DOCUMENTS {
            continue;
        }
        let id = format!("q{n}");
        qrels.insert(
            id.clone(),
            places.iter().map(|&i| (chunks[i].id.clone(), 1)).collect(),
        );
        queries.push(Record {
            id,
            title: String::new(),
            text: text.to_owned(),
        });
    }
    if queries.is_empty() {
        return Err(invalid(
            "collection",
            format!(
                "collection {:?} has no {} to train on: its documents need titles or Markdown headings",
                c.name(),
                match kind {
                    StructurePairs::Title => "titles",
                    StructurePairs::Section => "section headings",
                    StructurePairs::Both => "titles or section headings",
                }
            ),
        ));
    }
    Ok(Judged {
        corpus: chunks
            .into_iter()
            .map(|c| Record {
                id: c.id,
                title: String::new(),
                text: c.text,
            })
            .collect(),
        queries,
        qrels,
        pairs_per_query: Some(PAIRS_PER_QUERY),
    })
}
