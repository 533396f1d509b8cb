//! The document layer with deterministic fake models: ingestion (unchanged, replaced,
//! removed, atomic across reopen), the hybrid plan (sources, fusion, rerank, MMR, grouping),
//! model identity checks and context assembly.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{json, Value};
use sextant_core::{Filter, PointId, SparseVector};
use sextant_engine::documents::context::{assemble, render};
use sextant_engine::documents::ingest::{Document, Ingester, Outcome};
use sextant_engine::documents::search::{search_text, Models, SourceKind, TextQuery};
use sextant_engine::documents::{
    schema, ChunkingSpec, DenseModel, DocumentSettings, PairScorer, SparseModel,
};
use sextant_engine::Scope;
use sextant_engine::{CollectionConfig, Database};

/// Bag of hashed lower-case words, L2-normalised: texts sharing words are similar.
#[derive(Default)]
pub(crate) struct FakeDense {
    seed: u64,
    calls: AtomicUsize,
}

const DIM: usize = 1024;

fn words(text: &str) -> impl Iterator<Item = (Range<usize>, String)> + '_ {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices().chain([(text.len(), ' ')]) {
        match (c.is_alphanumeric(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                out.push((s..i, text[s..i].to_lowercase()));
                start = None;
            }
            _ => {}
        }
    }
    out.into_iter()
}

fn hash(s: &str, seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

impl DenseModel for FakeDense {
    fn dim(&self) -> usize {
        DIM
    }
    fn identity(&self) -> Value {
        json!({"fake": self.seed})
    }
    fn check_identity(&self, stored: &Value) -> Result<(), String> {
        if stored == &self.identity() {
            Ok(())
        } else {
            Err(format!("expected {stored}, got {}", self.identity()))
        }
    }
    fn max_tokens(&self) -> usize {
        34
    }
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        words(text).map(|(r, _)| r).collect()
    }
    fn embed(&self, texts: &[&str], _query: bool) -> Result<Vec<Vec<f32>>, String> {
        self.calls.fetch_add(texts.len(), Ordering::Relaxed);
        Ok(texts
            .iter()
            .map(|t| {
                let mut v = vec![0.0f32; DIM];
                for (_, w) in words(t) {
                    v[(hash(&w, self.seed) % DIM as u64) as usize] += 1.0;
                }
                let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
                if n > 0.0 {
                    v.iter_mut().for_each(|x| *x /= n);
                } else {
                    v[0] = 1.0;
                }
                v
            })
            .collect())
    }
}

/// Sparse weights: 1 per distinct word (a "learned" encoder that is plain term matching).
struct FakeSparse;

impl SparseModel for FakeSparse {
    fn identity(&self) -> Value {
        json!({"fake_sparse": 1})
    }
    fn check_identity(&self, stored: &Value) -> Result<(), String> {
        (stored == &self.identity())
            .then_some(())
            .ok_or_else(|| "other sparse model".to_string())
    }
    fn encode(&self, texts: &[&str], _query: bool) -> Result<Vec<SparseVector>, String> {
        Ok(texts
            .iter()
            .map(|t| {
                let mut m: HashMap<u32, f32> = HashMap::new();
                for (_, w) in words(t) {
                    m.insert((hash(&w, 7) % 100_000) as u32, 1.0);
                }
                SparseVector::from_pairs(m.into_iter().collect()).unwrap()
            })
            .collect())
    }
}

/// Scores a passage by whether it contains a magic word.
struct MagicScorer(&'static str);

impl PairScorer for MagicScorer {
    fn score(&self, _query: &str, passages: &[&str]) -> Result<Vec<f32>, String> {
        Ok(passages
            .iter()
            .map(|p| if p.contains(self.0) { 10.0 } else { 0.0 })
            .collect())
    }
}

pub(crate) fn settings(strategy: &str, max_tokens: usize) -> DocumentSettings {
    DocumentSettings {
        chunking: ChunkingSpec {
            strategy: strategy.into(),
            max_tokens,
            overlap: None,
            parent_max_tokens: None,
        },
        redaction: None,
        dedup: None,
        language: None,
    }
}

pub(crate) fn doc(id: &str, title: &str, text: &str) -> Document {
    Document {
        id: id.into(),
        title: title.into(),
        text: text.into(),
        source: Some(format!("/docs/{id}.txt")),
        ..Default::default()
    }
}

pub(crate) const CORPUS: &[(&str, &str, &str)] = &[
    ("fox", "Foxes", "The red fox is a small carnivore. It hunts rodents at night. Foxes live in dens."),
    ("cat", "Cats", "The domestic cat is a small carnivore kept as a pet. Cats purr and sleep a lot."),
    ("rust", "Rust", "Rust is a systems programming language. It guarantees memory safety without a garbage collector."),
    ("bread", "Bread", "Bread is baked from flour, water and yeast. Sourdough bread uses a natural starter."),
    ("moon", "Moon", "The moon orbits the earth. Its phases change over a month of about thirty days."),
];

fn open(dir: &std::path::Path) -> Database {
    Database::open(dir, CollectionConfig::default()).unwrap()
}

fn doc_count(c: &sextant_engine::Collection, id: &str) -> u64 {
    let f =
        Filter::from_json(&json!({"must": [{"key": "doc_id", "match": {"value": id}}]})).unwrap();
    c.count(&Scope::Unscoped, Some(&f)).unwrap()
}

#[test]
fn ingest_skips_unchanged_replaces_changed_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    {
        let db = open(dir.path());
        let c = db
            .create_collection(
                "d",
                schema(&model, None, &settings("sentences", 8)).unwrap(),
            )
            .unwrap();
        let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None)
            .unwrap()
            .with_batch_chunks(3);
        for (id, t, x) in CORPUS {
            assert!(matches!(ing.add(doc(id, t, x)).unwrap(), Outcome::Added(n) if n >= 2));
        }
        let st = ing.finish().unwrap();
        assert_eq!(st.documents, 5);
        assert_eq!(c.count(&Scope::Unscoped, None).unwrap() as usize, st.chunks);
        let fox_before = doc_count(&c, "fox");
        assert!(fox_before >= 2, "{fox_before}");

        let calls = model.calls.load(Ordering::Relaxed);
        let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
        for (id, t, x) in CORPUS {
            assert_eq!(ing.add(doc(id, t, x)).unwrap(), Outcome::Unchanged);
        }
        assert_eq!(ing.finish().unwrap().unchanged, 5);
        assert_eq!(
            model.calls.load(Ordering::Relaxed),
            calls,
            "unchanged docs are not embedded"
        );

        // A shorter fox: one chunk; the old ones must all be gone, in the same record.
        let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
        assert_eq!(
            ing.add(doc("fox", "Foxes", "Foxes are clever.")).unwrap(),
            Outcome::Replaced(1)
        );
        ing.finish().unwrap();
        assert_eq!(doc_count(&c, "fox"), 1);
        let p = c
            .get(
                &Scope::Unscoped,
                &[PointId::Str("fox#0".into())],
                true,
                false,
            )
            .unwrap();
        assert_eq!(p[0].payload.as_ref().unwrap()["text"], "Foxes are clever.");
        assert!(c
            .get(
                &Scope::Unscoped,
                &[PointId::Str("fox#1".into())],
                true,
                false
            )
            .unwrap()
            .is_empty());
        // Not flushed: the state must come back from the WAL alone.
    }
    let db = open(dir.path());
    let c = db.collection("d").unwrap();
    assert_eq!(doc_count(&c, "fox"), 1);
    assert!(doc_count(&c, "cat") >= 2);
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
    assert!(ing.remove("cat").unwrap() >= 2);
    ing.finish().unwrap();
    assert_eq!(doc_count(&c, "cat"), 0);
    // Payload fields of a chunk.
    let p = c
        .get(
            &Scope::Unscoped,
            &[PointId::Str("moon#0".into())],
            true,
            false,
        )
        .unwrap();
    let p = p[0].payload.as_ref().unwrap();
    assert_eq!(p["doc_id"], "moon");
    assert_eq!(p["source"], "/docs/moon.txt");
    let (s, e) = (
        p["start"].as_u64().unwrap() as usize,
        p["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&CORPUS[4].2[s..e], p["text"].as_str().unwrap());
}

#[test]
fn another_model_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let a = FakeDense::default();
    let b = FakeDense {
        seed: 9,
        ..Default::default()
    };
    let c = db
        .create_collection("d", schema(&a, None, &settings("sentences", 8)).unwrap())
        .unwrap();
    let e = Ingester::new(&c, Scope::Unscoped, &b, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not the one"), "{e}");
    let q = TextQuery::new("fox", &[SourceKind::Dense], 3);
    let models = Models {
        dense: Some(&b),
        ..Default::default()
    };
    assert!(search_text(&c, models, &q).is_err());
    // Bad settings are refused before anything is created.
    assert!(schema(&a, None, &settings("sentences", 500)).is_err());
    assert!(schema(&a, None, &settings("zigzag", 8)).is_err());
}

fn corpus_collection(
    dir: &std::path::Path,
    model: &FakeDense,
    splade: Option<&dyn SparseModel>,
) -> std::sync::Arc<sextant_engine::Collection> {
    let db = open(dir);
    let c = db
        .create_collection(
            "d",
            schema(model, splade, &settings("sentences", 8)).unwrap(),
        )
        .unwrap();
    let mut ing = Ingester::new(&c, Scope::Unscoped, model, splade).unwrap();
    for (id, t, x) in CORPUS {
        ing.add(doc(id, t, x)).unwrap();
    }
    ing.finish().unwrap();
    c
}

#[test]
fn every_source_and_fusion_finds_the_document() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let c = corpus_collection(dir.path(), &model, Some(&FakeSparse));
    let models = Models {
        dense: Some(&model),
        splade: Some(&FakeSparse),
        reranker: None,
    };
    let queries = [
        ("sourdough yeast flour", "bread"),
        ("memory safety garbage collector", "rust"),
    ];
    let source_sets: [&[SourceKind]; 4] = [
        &[SourceKind::Dense],
        &[SourceKind::Bm25],
        &[SourceKind::Splade],
        &[SourceKind::Dense, SourceKind::Bm25, SourceKind::Splade],
    ];
    for (text, want) in queries {
        for kinds in source_sets {
            let q = TextQuery::new(text, kinds, 3);
            let r = search_text(&c, models, &q).unwrap();
            assert_eq!(r[0].doc_id, want, "{kinds:?} {text}");
            // Grouped: one entry per document.
            let mut ids: Vec<&str> = r.iter().map(|d| d.doc_id.as_str()).collect();
            ids.dedup();
            assert_eq!(ids.len(), r.len());
            assert!(r.iter().all(|d| d.chunks.len() == 1));
        }
    }
    // A filter applies to every source.
    let mut q = TextQuery::new(
        "sourdough yeast flour",
        &[SourceKind::Dense, SourceKind::Bm25, SourceKind::Splade],
        3,
    );
    q.filter = Some(
        Filter::from_json(&json!({"must_not": [{"key": "doc_id", "match": {"value": "bread"}}]}))
            .unwrap(),
    );
    let r = search_text(&c, models, &q).unwrap();
    assert!(r.iter().all(|d| d.doc_id != "bread"));
    // Group size: up to n chunks per document.
    let mut q = TextQuery::new("fox foxes dens rodents", &[SourceKind::Bm25], 2);
    q.group_size = Some(3);
    let r = search_text(&c, models, &q).unwrap();
    assert_eq!(r[0].doc_id, "fox");
    assert!(r[0].chunks.len() >= 2, "{:?}", r[0].chunks.len());
    // Bad requests.
    let mut q = TextQuery::new("x", &[SourceKind::Bm25], 2);
    q.mmr_lambda = Some(1.5);
    assert!(search_text(&c, models, &q).is_err());
    let q = TextQuery::new("x", &[SourceKind::Splade], 2);
    assert!(search_text(&c, Models::default(), &q).is_err());
}

/// Scores every passage far below any fusion score, as a cross-encoder's negative logits are.
struct NegativeScorer;

impl PairScorer for NegativeScorer {
    fn score(&self, _query: &str, passages: &[&str]) -> Result<Vec<f32>, String> {
        Ok((0..passages.len()).map(|i| -20.0 - i as f32).collect())
    }
}

/// A reranker on another scale than fusion: the reranked head still comes first and every
/// score below it is lower, chunk by chunk and document by document, so whoever sorts by
/// score (grouping, `eval`, a client) keeps the engine's order.
#[test]
fn scores_after_a_rerank_keep_the_reranked_head_first() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let c = corpus_collection(dir.path(), &model, None);
    let models = Models {
        dense: Some(&model),
        splade: None,
        reranker: Some(&NegativeScorer),
    };
    for group in [None, Some(1)] {
        let mut q = TextQuery::new(
            "small carnivore moon bread",
            &[SourceKind::Bm25, SourceKind::Dense],
            8,
        );
        q.group_size = group;
        q.rerank_top = 2;
        let r = search_text(&c, models, &q).unwrap();
        assert!(r.len() > 3, "{}", r.len());
        let scores: Vec<f32> = r.iter().map(|d| d.score).collect();
        assert!(
            scores.windows(2).all(|w| w[0] >= w[1]),
            "{group:?}: {scores:?}"
        );
        let reranked: Vec<bool> = r
            .iter()
            .map(|d| d.chunks[0].rerank_score.is_some())
            .collect();
        assert!(reranked[0] && !reranked[reranked.len() - 1], "{reranked:?}");
        assert!(
            reranked.windows(2).all(|w| w[0] || !w[1]),
            "reranked first: {reranked:?}"
        );
        assert!(scores[scores.len() - 1] < -20.0, "{scores:?}");
    }
}

/// Scores a passage by its length: an order that disagrees with fusion's.
struct LengthScorer;

impl PairScorer for LengthScorer {
    fn score(&self, _query: &str, passages: &[&str]) -> Result<Vec<f32>, String> {
        Ok(passages
            .iter()
            .map(|p| p.len() as f32 * 0.5 - 40.0)
            .collect())
    }
}

/// `rerank_blend`: the head is in the order of `w · reranker rank + (1 − w) · fusion rank`,
/// recomputed here from the un-reranked list and the scorer; 0 is fusion's order, 1 (and no
/// blend) the reranker's; scores fall strictly down the list; out-of-range weights and a
/// blend without a rerank stage are refused by name.
#[test]
fn rerank_blend_places_the_head_by_blended_rank() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let c = corpus_collection(dir.path(), &model, None);
    let models = Models {
        dense: Some(&model),
        splade: None,
        reranker: Some(&LengthScorer),
    };
    let mut q = TextQuery::new(
        "small carnivore moon bread",
        &[SourceKind::Bm25, SourceKind::Dense],
        20,
    );
    q.group_size = None;
    let ids = |r: &[sextant_engine::documents::search::DocumentHit]| -> Vec<String> {
        r.iter().map(|d| d.chunks[0].id.to_string()).collect()
    };
    let fused = search_text(&c, models, &q).unwrap();
    let top = 6;
    assert!(fused.len() > top + 1, "{}", fused.len());
    let texts: Vec<String> = fused[..top]
        .iter()
        .map(|d| {
            let p = &d.chunks[0].payload;
            let (t, x) = (
                p["title"].as_str().unwrap_or(""),
                p["text"].as_str().unwrap_or(""),
            );
            if t.is_empty() {
                x.to_string()
            } else {
                format!("{t}\n{x}")
            }
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let ce = LengthScorer.score("", &refs).unwrap();
    let mut by_ce: Vec<usize> = (0..top).collect();
    by_ce.sort_by(|&a, &b| ce[b].total_cmp(&ce[a]));
    let mut ce_rank = vec![0; top];
    for (r, &i) in by_ce.iter().enumerate() {
        ce_rank[i] = r + 1;
    }
    let expected = |w: f64| -> Vec<String> {
        let mut order: Vec<usize> = (0..top).collect();
        let key = |i: usize| w * ce_rank[i] as f64 + (1.0 - w) * (i + 1) as f64;
        order.sort_by(|&a, &b| key(a).total_cmp(&key(b)).then(ce_rank[a].cmp(&ce_rank[b])));
        let mut v: Vec<String> = order.iter().map(|&i| ids(&fused)[i].clone()).collect();
        v.extend(ids(&fused)[top..].iter().cloned());
        v
    };
    q.rerank_top = top;
    let pure = search_text(&c, models, &q).unwrap();
    assert_eq!(ids(&pure), expected(1.0));
    assert_ne!(
        expected(1.0),
        ids(&fused),
        "the scorer must disagree with fusion"
    );
    for w in [0.0f32, 0.3, 0.5, 0.7, 1.0] {
        q.rerank_blend = Some(w);
        let r = search_text(&c, models, &q).unwrap();
        assert_eq!(ids(&r), expected(f64::from(w)), "w {w}");
        let scores: Vec<f32> = r.iter().map(|d| d.score).collect();
        // Strictly down the reranked head and into the tail; the tail keeps fusion's
        // (possibly tied) scores.
        assert!(
            scores[..=top].windows(2).all(|s| s[0] > s[1]),
            "w {w}: {scores:?}"
        );
        assert!(scores.windows(2).all(|s| s[0] >= s[1]), "w {w}: {scores:?}");
        for d in &r[..top] {
            let i = ids(&fused)
                .iter()
                .position(|x| *x == d.chunks[0].id.to_string())
                .unwrap();
            assert_eq!(d.chunks[0].rerank_score, Some(ce[i]), "w {w}");
        }
        assert!(r[top].chunks[0].rerank_score.is_none());
    }
    assert_eq!(expected(0.0), ids(&fused));
    assert_ne!(
        expected(0.3),
        expected(1.0),
        "a blend between the two orders is tested"
    );

    for bad in [-0.1f32, 1.5, f32::NAN] {
        q.rerank_blend = Some(bad);
        let e = search_text(&c, models, &q).unwrap_err().to_string();
        assert!(e.contains("rerank_blend"), "{e}");
    }
    q.rerank_blend = Some(0.5);
    q.rerank_top = 0;
    let e = search_text(&c, models, &q).unwrap_err().to_string();
    assert!(e.contains("rerank_blend") && e.contains("rerank"), "{e}");
}

#[test]
fn rerank_reorders_and_mmr_diversifies() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let c = corpus_collection(dir.path(), &model, None);
    let scorer = MagicScorer("thirty");
    let models = Models {
        dense: Some(&model),
        splade: None,
        reranker: Some(&scorer),
    };
    let mut q = TextQuery::new("small carnivore", &[SourceKind::Bm25, SourceKind::Dense], 3);
    let plain = search_text(&c, models, &q).unwrap();
    assert_ne!(plain[0].doc_id, "moon");
    q.rerank_top = 50;
    let r = search_text(&c, models, &q).unwrap();
    assert_eq!(r[0].doc_id, "moon", "the reranker's favourite comes first");
    assert_eq!(r[0].chunks[0].rerank_score, Some(10.0));

    // MMR over ungrouped chunks: near-duplicates are pushed down.
    let db = open(&dir.path().join("dup"));
    let c = db
        .create_collection(
            "d",
            schema(&model, None, &settings("sentences", 30)).unwrap(),
        )
        .unwrap();
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
    ing.add(doc("a1", "", "apple banana cherry")).unwrap();
    ing.add(doc("a2", "", "apple banana cherry")).unwrap();
    ing.add(doc("b", "", "apple kiwi mango")).unwrap();
    ing.finish().unwrap();
    let mut q = TextQuery::new("apple banana cherry", &[SourceKind::Dense], 2);
    q.group_size = None;
    let r = search_text(&c, models, &q).unwrap();
    let top: Vec<&str> = r.iter().map(|d| d.doc_id.as_str()).collect();
    assert!(top.contains(&"a1") && top.contains(&"a2"), "{top:?}");
    q.mmr_lambda = Some(0.3);
    let r = search_text(&c, models, &q).unwrap();
    let top: Vec<&str> = r.iter().map(|d| d.doc_id.as_str()).collect();
    assert!(
        top.contains(&"b"),
        "MMR picks the different document: {top:?}"
    );
}

#[test]
fn context_merges_overlaps_respects_the_budget_and_cites() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let db = open(dir.path());
    let mut s = settings("fixed", 6);
    s.chunking.overlap = Some(2);
    let c = db
        .create_collection("d", schema(&model, None, &s).unwrap())
        .unwrap();
    let text = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi";
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
    ing.add(doc("greek", "Letters", text)).unwrap();
    ing.add(doc("other", "Other", "zeta functions in number theory"))
        .unwrap();
    ing.finish().unwrap();
    let mut q = TextQuery::new("zeta eta theta alpha xi", &[SourceKind::Bm25], 10);
    q.group_size = None;
    let hits = search_text(&c, Models::default(), &q).unwrap();
    assert!(hits.len() >= 3);
    let count = |s: &str| s.split_whitespace().count();
    let ctx = assemble(&hits, 1000, &count);
    // The overlapping windows of "greek" became one passage covering all of them.
    let greek: Vec<_> = ctx
        .passages
        .iter()
        .filter(|p| p.doc_id == "greek")
        .collect();
    assert_eq!(greek.len(), 1, "{:?}", ctx.passages);
    assert_eq!(greek[0].text, &text[greek[0].start..greek[0].end]);
    assert_eq!(
        greek[0].text, text,
        "all windows matched, so the whole text"
    );
    assert_eq!(
        ctx.passages.iter().map(|p| p.citation).collect::<Vec<_>>(),
        (1..=ctx.passages.len()).collect::<Vec<_>>()
    );
    let out = render(&ctx);
    assert!(out.contains("[1] ") && out.contains("/docs/"), "{out}");
    // A small budget: the first passage is cut to fit, the rest omitted.
    let small = assemble(&hits, 5, &count);
    assert!(small.tokens <= 5, "{}", small.tokens);
    assert_eq!(small.passages.len(), 1);
    assert!(small.passages[0].truncated);
    assert!(small.omitted >= 1);
}

#[test]
fn redaction_hierarchical_and_semantic_chunking() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let db = open(dir.path());
    let mut s = settings("sentences", 12);
    s.redaction = Some(sextant_engine::documents::RedactionSpec {
        mode: "mask".into(),
        key_id: None,
        kinds: None,
    });
    let c = db
        .create_collection("pii", schema(&model, None, &s).unwrap())
        .unwrap();
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
    let text = "Write to jane.doe@example.com today. Card 4111 1111 1111 1111 was charged.";
    ing.add(doc("p", "Contact", text)).unwrap();
    let st = ing.finish().unwrap();
    assert_eq!(st.redactions.get("email"), Some(&1), "{st:?}");
    assert_eq!(st.redactions.get("card"), Some(&1), "{st:?}");
    let all = c
        .scroll(&Scope::Unscoped, None, 100, None, None, true)
        .unwrap();
    let dump = serde_json::to_string(&all.points).unwrap();
    assert!(
        !dump.contains("jane.doe") && !dump.contains("4111"),
        "{dump}"
    );
    assert!(
        dump.contains("[EMAIL]") && dump.contains("[CARD]"),
        "{dump}"
    );
    // Offsets still point into the original text.
    let p0 = all
        .points
        .iter()
        .find(|p| p.id == PointId::Str("p#0".into()))
        .unwrap();
    let p0 = p0.payload.as_ref().unwrap();
    assert_eq!(p0["pii"]["email"], 1);
    let (a, b) = (
        p0["start"].as_u64().unwrap() as usize,
        p0["end"].as_u64().unwrap() as usize,
    );
    assert!(
        text[a..b].contains("jane.doe@example.com"),
        "{}",
        &text[a..b]
    );

    // Hierarchical: small children, each carrying its parent; the context returns parents once.
    let mut h = settings("hierarchical", 4);
    h.chunking.parent_max_tokens = Some(12);
    h.chunking.overlap = Some(0);
    let c = db
        .create_collection("h", schema(&model, None, &h).unwrap())
        .unwrap();
    let text = "one two three four five six seven eight nine ten eleven twelve \
                thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty";
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
    ing.add(doc("n", "", text)).unwrap();
    let st = ing.finish().unwrap();
    assert!(st.chunks >= 5, "{st:?}");
    let mut q = TextQuery::new("two three seven", &[SourceKind::Bm25], 10);
    q.group_size = None;
    let hits = search_text(&c, Models::default(), &q).unwrap();
    assert!(hits.len() >= 2, "{hits:?}");
    for d in &hits {
        let p = &d.chunks[0].payload;
        let parent = p["parent"]["text"].as_str().unwrap();
        assert!(parent.contains(p["text"].as_str().unwrap()));
        let (a, b) = (
            p["parent"]["start"].as_u64().unwrap() as usize,
            p["parent"]["end"].as_u64().unwrap() as usize,
        );
        assert_eq!(&text[a..b], parent);
    }
    let ctx = assemble(&hits, 1000, &|s: &str| s.split_whitespace().count());
    assert_eq!(
        ctx.passages.len(),
        1,
        "both children share one parent: {:?}",
        ctx.passages
    );
    assert!(ctx.passages[0].text.starts_with("one two three"));

    // Semantic chunking: embeds sentences through the model; chunks cover the text in order.
    let c = db
        .create_collection(
            "s",
            schema(&model, None, &settings("semantic", 10)).unwrap(),
        )
        .unwrap();
    let text =
        "Cats purr. Cats sleep. Cats hunt mice. Stocks fell today. Markets slid. Bonds rose.";
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
    ing.add(doc("s", "", text)).unwrap();
    let st = ing.finish().unwrap();
    assert!(st.chunks >= 2, "{st:?}");
    let pts = c
        .scroll(&Scope::Unscoped, None, 100, None, None, true)
        .unwrap()
        .points;
    let mut ranges: Vec<(usize, usize)> = pts
        .iter()
        .map(|p| {
            let p = p.payload.as_ref().unwrap();
            (
                p["start"].as_u64().unwrap() as usize,
                p["end"].as_u64().unwrap() as usize,
            )
        })
        .collect();
    ranges.sort();
    assert!(ranges.windows(2).all(|w| w[0].1 <= w[1].0), "{ranges:?}");
    for p in &pts {
        let p = p.payload.as_ref().unwrap();
        let (a, b) = (
            p["start"].as_u64().unwrap() as usize,
            p["end"].as_u64().unwrap() as usize,
        );
        assert_eq!(&text[a..b], p["text"].as_str().unwrap());
    }
}

/// A paged document (a PDF's text): every chunk records the page it starts on, also through
/// redaction and for hierarchical parents; offsets stay in the text; citations give the page.
#[test]
fn paged_documents_record_the_page_of_every_chunk() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let db = open(dir.path());
    let pages = [
        "Falcons hunt small birds. They nest on cliffs.",
        "",
        "Trout live in rivers. Write to jane.doe@example.com about trout.",
        "Oaks grow acorns. Their wood makes barrels.",
    ];
    let mut text = String::new();
    let mut starts = Vec::new();
    for p in pages {
        if !p.is_empty() && !text.is_empty() {
            text.push_str("\n\n");
        }
        starts.push(text.len());
        text.push_str(p);
    }
    // The empty page 2 starts where page 3 does.
    starts[1] = starts[2];
    let paged = |id: &str| Document {
        id: id.into(),
        title: "Field guide".into(),
        text: text.clone(),
        source: Some(format!("/docs/{id}.pdf")),
        pages: Some(starts.clone()),
        ..Default::default()
    };
    // No word is on two pages, so a chunk's first word names its page.
    let expected_page = |body: &str| {
        let (_, first) = words(body).next().unwrap();
        1 + pages
            .iter()
            .position(|p| words(p).any(|(_, w)| w == first))
            .unwrap()
    };

    let mut redacting = settings("sentences", 6);
    redacting.redaction = Some(sextant_engine::documents::RedactionSpec {
        mode: "mask".into(),
        key_id: None,
        kinds: None,
    });
    let mut hierarchical = settings("hierarchical", 4);
    hierarchical.chunking.parent_max_tokens = Some(8);
    hierarchical.chunking.overlap = Some(0);
    for (name, s) in [
        ("plain", settings("sentences", 6)),
        ("redacted", redacting),
        ("hierarchical", hierarchical),
    ] {
        let c = db
            .create_collection(name, schema(&model, None, &s).unwrap())
            .unwrap();
        let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
        ing.add(paged("guide")).unwrap();
        ing.add(doc("plain", "Plain", "Falcons are fast.")).unwrap();
        ing.finish().unwrap();
        let all = c
            .scroll(&Scope::Unscoped, None, 100, None, None, true)
            .unwrap();
        let mut seen_pages = std::collections::BTreeSet::new();
        for p in &all.points {
            let p = p.payload.as_ref().unwrap();
            if p["doc_id"] == "plain" {
                assert!(p.get("page").is_none(), "{p}");
                continue;
            }
            let (a, b) = (
                p["start"].as_u64().unwrap() as usize,
                p["end"].as_u64().unwrap() as usize,
            );
            let page = p["page"].as_u64().unwrap() as usize;
            assert_eq!(page, expected_page(&text[a..b]), "{name}: {p}");
            if name != "redacted" {
                assert_eq!(&text[a..b], p["text"].as_str().unwrap(), "{name}");
            }
            if let Some(parent) = p.get("parent").filter(|v| v.is_object()) {
                let pa = parent["start"].as_u64().unwrap() as usize;
                assert_eq!(
                    parent["page"].as_u64().unwrap() as usize,
                    sextant_text::extract::page_at(&starts, pa).unwrap(),
                    "{name}: {parent}"
                );
            }
            seen_pages.insert(page);
        }
        assert_eq!(
            seen_pages.into_iter().collect::<Vec<_>>(),
            [1, 3, 4],
            "{name}"
        );

        // The context cites the page, not bytes, for the paged document only.
        let mut q = TextQuery::new("trout rivers falcons", &[SourceKind::Bm25], 10);
        q.group_size = None;
        let hits = search_text(&c, Models::default(), &q).unwrap();
        let ctx = assemble(&hits, 1000, &|s: &str| s.split_whitespace().count());
        let out = render(&ctx);
        let trout = ctx
            .passages
            .iter()
            .find(|p| p.doc_id == "guide" && p.text.contains("rivers"))
            .unwrap_or_else(|| panic!("{name}: {out}"));
        assert_eq!(trout.page, Some(3), "{name}");
        assert!(out.contains("(/docs/guide.pdf, p. 3)"), "{name}: {out}");
        assert!(
            out.contains("(/docs/plain.txt, bytes 0–17)"),
            "{name}: {out}"
        );
    }

    // Page starts that do not ascend within the text are refused.
    let c = db.collection("plain").unwrap();
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
    let mut bad = paged("bad");
    bad.pages = Some(vec![0, 30, 10]);
    assert!(ing.add(bad).is_err());
    let mut bad = paged("bad");
    bad.pages = Some(vec![0, text.len() + 1]);
    assert!(ing.add(bad).is_err());
}

/// Every file under `dir`, read whole.
fn files_under(dir: &std::path::Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn redaction_leaves_no_planted_value_or_hash_of_it_on_disk() {
    use sextant_engine::documents::{RedactionKey, RedactionSpec};
    use sha2::{Digest, Sha256};
    let planted = [
        "jane.roe@example.org",
        "+44 20 7946 0958",
        "4111 1111 1111 1111",
        "GB82 WEST 1234 5698 7654 32",
        "078-05-1120",
    ];
    let all = planted.join(" and ");
    // What an attacker would look for: the values, their digits, unkeyed hashes of them.
    let mut needles: Vec<String> = Vec::new();
    for v in planted {
        needles.push(v.to_string());
        let compact: String = v.chars().filter(|c| !c.is_whitespace()).collect();
        needles.push(compact.clone());
        for form in [v, compact.as_str()] {
            let h = hex(&Sha256::digest(form.as_bytes()));
            needles.push(h[..16].to_string());
            needles.push(h[..8].to_string());
        }
    }
    needles.push("jane.roe".into());
    needles.push("7946 0958".into());
    let key = RedactionKey::new(b"0123456789abcdef-secret".to_vec()).unwrap();
    for mode in ["mask", "hash"] {
        for strategy in ["paragraphs", "hierarchical"] {
            let dir = tempfile::tempdir().unwrap();
            let model = FakeDense::default();
            let db = open(dir.path());
            let mut s = settings(strategy, 12);
            if strategy == "hierarchical" {
                s.chunking.parent_max_tokens = Some(40);
                s.chunking.overlap = Some(2);
            }
            s.redaction = Some(RedactionSpec {
                mode: mode.into(),
                key_id: (mode == "hash").then(|| key.id()),
                kinds: None,
            });
            let c = db
                .create_collection("pii", schema(&model, None, &s).unwrap())
                .unwrap();
            let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
            if mode == "hash" {
                // Without its key a hashing collection takes no document.
                assert!(ing.add(doc("early", "t", "x")).is_err());
                ing = ing.with_redaction_key(&key).unwrap();
                let other = RedactionKey::new(b"another key, 16+ bytes".to_vec()).unwrap();
                let ing2 = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
                assert!(ing2.with_redaction_key(&other).is_err(), "a different key");
            }
            // The value in every field: title, text (a heading → section, a parent), other
            // fields (strings, nested, arrays, keys).
            let mut d = doc(
                "record",
                &format!("About {all}"),
                &format!(
                    "# Contact {all}\n\nReach us: {all}.\n\nMore text here about {all} again."
                ),
            );
            d.fields.insert("note".into(), json!(format!("call {all}")));
            d.fields.insert(
                "nested".into(),
                json!({"deep": [planted[0], {"x": planted[2]}], planted[0]: 1}),
            );
            let original_hash = sextant_engine::documents::ingest::content_hash(&d.title, &d.text);
            ing.add(d).unwrap();
            // What cannot be redacted is refused.
            let refused = [
                doc(planted[0], "t", "x"),
                Document {
                    source: Some(format!("/home/{}/a.txt", planted[0])),
                    ..doc("s", "t", "x")
                },
                {
                    let mut n = doc("n", "t", "x");
                    n.fields
                        .insert("card".into(), json!(4_111_111_111_111_111_u64));
                    n
                },
            ];
            for r in refused {
                let e = ing.add(r).unwrap_err().to_string();
                assert!(e.contains("personal data"), "{e}");
                assert!(!e.contains(planted[0]) || e.contains("source"), "{e}");
            }
            ing.finish().unwrap();
            // Some in segments, some only in the WAL.
            c.flush().unwrap();
            let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
            if mode == "hash" {
                ing = ing.with_redaction_key(&key).unwrap();
            }
            ing.add(doc(
                "second",
                &format!("Also {all}"),
                &format!("Text {all}."),
            ))
            .unwrap();
            ing.finish().unwrap();
            let stored = c
                .scroll(&Scope::Unscoped, None, 1000, None, None, true)
                .unwrap();
            let dump = serde_json::to_string(&stored.points).unwrap();
            assert!(dump.contains("[EMAIL"), "{dump}");
            drop(c);
            drop(db);
            let files = files_under(dir.path());
            assert!(files.len() >= 4, "{files:?}");
            for (path, bytes) in &files {
                let text = String::from_utf8_lossy(bytes);
                for n in needles.iter().chain([&original_hash]) {
                    assert!(
                        !text.contains(n.as_str()),
                        "{mode}/{strategy}: {n:?} found in {}",
                        path.display()
                    );
                }
            }
        }
    }
}

/// The document layer in a multi-tenant collection: two tenants may ingest the same document
/// id; text search (every source, MMR) and removal see one tenant only; an unscoped ingester is
/// refused; a record's tenant field outside the scope is refused.
#[test]
fn documents_are_scoped_by_tenant() {
    use sextant_engine::{EngineError, FieldType, PayloadIndexSpec, TenantId};
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let db = open(dir.path());
    let mut s = schema(&model, Some(&FakeSparse), &settings("sentences", 8)).unwrap();
    s.tenant_key = Some("org".into());
    s.payload_indexes.push(PayloadIndexSpec {
        key: "org".into(),
        field_type: FieldType::Keyword,
    });
    let c = db.create_collection("mt", s).unwrap();
    let err = Ingester::new(&c, Scope::Unscoped, &model, Some(&FakeSparse)).unwrap_err();
    assert!(matches!(err, EngineError::TenantRequired(_)), "{err}");
    let (a, b) = (TenantId::Str("a".into()), TenantId::Str("b".into()));
    for (t, text) in [
        (&a, "Foxes hunt rodents at night."),
        (&b, "Foxes sleep in dens all day."),
    ] {
        let mut ing =
            Ingester::new(&c, Scope::Tenant(t.clone()), &model, Some(&FakeSparse)).unwrap();
        ing.add(doc("fox", "Foxes", text)).unwrap();
        // A record naming another tenant is refused inside this tenant's scope.
        let mut other = doc("x", "t", "y");
        other.fields.insert("org".into(), json!("zzz"));
        assert!(ing.add(other).is_err());
        ing.finish().unwrap();
    }
    for (t, word) in [(&a, "rodents"), (&b, "dens")] {
        for kinds in [
            vec![SourceKind::Dense],
            vec![SourceKind::Bm25],
            vec![SourceKind::Splade],
            vec![SourceKind::Dense, SourceKind::Bm25, SourceKind::Splade],
        ] {
            let mut q = TextQuery::new(&format!("foxes {word}"), &kinds, 10);
            q.scope = Scope::Tenant(t.clone());
            q.mmr_lambda = Some(0.5);
            let models = Models {
                dense: Some(&model),
                splade: Some(&FakeSparse),
                reranker: None,
            };
            let hits = search_text(&c, models, &q).unwrap();
            assert_eq!(hits.len(), 1, "{kinds:?}");
            for ch in &hits[0].chunks {
                assert_eq!(ch.payload["org"], t.to_json(), "{kinds:?}");
                assert!(ch.payload["text"].as_str().unwrap().contains(word));
            }
        }
    }
    // Unscoped search is refused; removing A's document leaves B's.
    let q = TextQuery::new("foxes", &[SourceKind::Bm25], 10);
    assert!(search_text(&c, Models::default(), &q).is_err());
    let mut ing = Ingester::new(&c, Scope::Tenant(a.clone()), &model, Some(&FakeSparse)).unwrap();
    assert!(ing.remove("fox").unwrap() >= 1);
    ing.finish().unwrap();
    assert_eq!(c.count(&Scope::Tenant(a), None).unwrap(), 0);
    assert!(c.count(&Scope::Tenant(b), None).unwrap() >= 1);
}

/// Regression: `--chunk-overlap` (and a parent size) did nothing for the strategies that do
/// not use them; now they are refused by name.
#[test]
fn overlap_and_parent_size_are_refused_where_unused() {
    for strategy in ["sentences", "paragraphs", "semantic"] {
        let mut s = settings(strategy, 20);
        s.chunking.overlap = Some(3);
        let e = s.validate(128).unwrap_err().to_string();
        assert!(e.contains("overlap"), "{strategy}: {e}");
        let mut s = settings(strategy, 20);
        s.chunking.parent_max_tokens = Some(80);
        assert!(s.validate(128).is_err(), "{strategy}");
    }
    for strategy in ["fixed", "hierarchical"] {
        let mut s = settings(strategy, 20);
        s.chunking.overlap = Some(3);
        s.validate(128).unwrap();
    }
}

/// TTL on a document collection (issue 16, item 3): a default TTL on `ingested_at` expires
/// documents; every source of the hybrid plan, fusion, rerank, MMR, grouping and the `ask`
/// context see only unexpired chunks.
#[test]
fn expired_chunks_never_reach_search_or_context() {
    use sextant_engine::{ManualClock, TtlSpec};
    const T0: i64 = 1_767_225_600_000;
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let clock = ManualClock::new(T0);
    let db = open(dir.path());
    let mut s = schema(&model, Some(&FakeSparse), &settings("sentences", 8)).unwrap();
    s.ttl = Some(TtlSpec {
        field: "ingested_at".into(),
        seconds: 60,
    });
    let c = db.create_collection("d", s).unwrap();
    c.set_clock(std::sync::Arc::new(clock.clone()));
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, Some(&FakeSparse)).unwrap();
    for (id, t, x) in CORPUS {
        ing.add(doc(id, t, x)).unwrap();
    }
    ing.finish().unwrap();
    clock.set(T0 + 30_000);
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, Some(&FakeSparse)).unwrap();
    ing.add(doc(
        "fox2",
        "More foxes",
        "The arctic fox is a small carnivore. Foxes hunt at night.",
    ))
    .unwrap();
    ing.finish().unwrap();
    let scorer = MagicScorer("fox");
    let models = Models {
        dense: Some(&model),
        splade: Some(&FakeSparse),
        reranker: Some(&scorer),
    };
    let all_sources = [SourceKind::Dense, SourceKind::Bm25, SourceKind::Splade];
    let run = |q: &TextQuery| -> Vec<String> {
        let mut ids: Vec<String> = search_text(&c, models, q)
            .unwrap()
            .iter()
            .map(|d| d.doc_id.clone())
            .collect();
        ids.sort();
        ids.dedup();
        ids
    };
    let queries = |q: &str| {
        let mut out = Vec::new();
        for kinds in [
            &all_sources[..1],
            &all_sources[1..2],
            &all_sources[2..],
            &all_sources[..],
        ] {
            out.push(TextQuery::new(q, kinds, 10));
        }
        let mut reranked = TextQuery::new(q, &all_sources, 10);
        reranked.rerank_top = 50;
        out.push(reranked);
        let mut mmr = TextQuery::new(q, &[SourceKind::Dense], 10);
        mmr.group_size = None;
        mmr.mmr_lambda = Some(0.5);
        out.push(mmr);
        let mut groups = TextQuery::new(q, &[SourceKind::Bm25], 10);
        groups.group_size = Some(3);
        out.push(groups);
        out
    };
    for q in queries("small carnivore fox foxes night") {
        let got = run(&q);
        assert!(
            got.contains(&"fox".to_string()) && got.contains(&"fox2".to_string()),
            "{got:?}"
        );
    }
    // 60 s after the first ingest: only fox2 (ingested at 30 s) is left.
    clock.set(T0 + 60_000);
    for q in queries("small carnivore fox foxes night moon bread rust cat") {
        assert_eq!(run(&q), ["fox2"], "{:?}", q.sources);
        let hits = search_text(&c, models, &q).unwrap();
        let ctx = assemble(&hits, 1000, &|s: &str| s.split_whitespace().count());
        assert!(ctx.passages.iter().all(|p| p.doc_id == "fox2"));
        assert!(!render(&ctx).contains("red fox"));
    }
    assert_eq!(doc_count(&c, "fox"), 0);
    assert_eq!(doc_count(&c, "fox2"), 2);
}

/// Deleting documents by age: `ingested_at` is when the current version was written (an
/// unchanged re-ingest keeps it, a changed document gets a new one); every chunk of a document
/// older than the age goes in one write, counted by document and by point; a vector collection
/// and a non-positive age are refused.
#[test]
fn documents_older_than_an_age_are_deleted_whole() {
    use sextant_engine::documents::retention::delete_older_than;
    use sextant_engine::ManualClock;
    const T0: i64 = 1_767_225_600_000;
    const DAY: i64 = 86_400_000;
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let clock = ManualClock::new(T0);
    let db = open(dir.path());
    let c = db
        .create_collection(
            "d",
            schema(&model, None, &settings("sentences", 8)).unwrap(),
        )
        .unwrap();
    c.set_clock(std::sync::Arc::new(clock.clone()));
    let ingest = |docs: &[(&str, &str)]| {
        let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
        for (id, text) in docs {
            ing.add(doc(id, "", text)).unwrap();
        }
        ing.finish().unwrap();
    };
    ingest(&[
        ("old", "One sentence here. Another sentence there."),
        ("kept", "This one is re-ingested changed."),
        ("same", "This one is re-ingested unchanged."),
    ]);
    let stored = c
        .scroll(&Scope::Unscoped, None, 100, None, None, true)
        .unwrap();
    assert!(stored
        .points
        .iter()
        .all(|p| { p.payload.as_ref().unwrap()["ingested_at"] == json!("2026-01-01T00:00:00Z") }));
    clock.set(T0 + 20 * DAY);
    ingest(&[
        ("kept", "This one is re-ingested, and changed."),
        ("same", "This one is re-ingested unchanged."),
        ("new", "A new document."),
    ]);
    clock.set(T0 + 35 * DAY);
    let old_chunks = doc_count(&c, "old") + doc_count(&c, "same");
    assert!(old_chunks >= 2);
    let r = delete_older_than(&c, &Scope::Unscoped, 30 * DAY).unwrap();
    assert_eq!(r.documents, 2, "old and same (unchanged since day 0)");
    assert_eq!(r.points as u64, old_chunks);
    assert_eq!(r.cutoff_ms, T0 + 5 * DAY);
    assert_eq!(doc_count(&c, "old"), 0);
    assert_eq!(doc_count(&c, "same"), 0);
    assert!(doc_count(&c, "kept") > 0 && doc_count(&c, "new") > 0);
    let again = delete_older_than(&c, &Scope::Unscoped, 30 * DAY).unwrap();
    assert_eq!((again.documents, again.points), (0, 0));
    assert!(delete_older_than(&c, &Scope::Unscoped, 0).is_err());
    let v = db
        .create_collection(
            "v",
            super::engine::schema(2, sextant_core::Metric::L2, sextant_engine::IndexSpec::Flat),
        )
        .unwrap();
    let e = delete_older_than(&v, &Scope::Unscoped, DAY).unwrap_err();
    assert!(e.to_string().contains("not a document collection"), "{e}");
}

// ---- duplicate detection -------------------------------------------------------------------

fn dedup_settings(policy: &str) -> DocumentSettings {
    DocumentSettings {
        dedup: Some(sextant_engine::documents::DedupSpec {
            policy: policy.into(),
            threshold: sextant_text::dedup::DEFAULT_THRESHOLD,
        }),
        ..settings("sentences", 32)
    }
}

/// A pseudo-word vocabulary: 3,000 distinct words from syllables.
fn vocabulary() -> Vec<String> {
    const S: [&str; 20] = [
        "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "po", "da", "fi", "gu", "he", "jo",
        "be", "co", "wu", "xi", "yo",
    ];
    let mut v = Vec::new();
    for a in S {
        for b in S {
            for c in S {
                v.push(format!("{a}{b}{c}"));
            }
        }
    }
    v.truncate(3000);
    v
}

/// `words` with a share `rate` of positions edited (substituted, deleted or inserted in turn).
fn edited(words: &[String], rate: f64, vocab: &[String], rng: &mut u64) -> Vec<String> {
    let mut next = || {
        *rng = rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (*rng >> 33) as usize
    };
    let mut out = Vec::new();
    let mut op = 0;
    for w in words {
        if (next() % 10_000) as f64 / 10_000.0 < rate {
            op += 1;
            match op % 3 {
                0 => out.push(vocab[next() % vocab.len()].clone()),
                1 => {}
                _ => {
                    out.push(w.clone());
                    out.push(vocab[next() % vocab.len()].clone());
                }
            }
        } else {
            out.push(w.clone());
        }
    }
    out
}

/// The bar: on a corpus with planted near-duplicates of known edit rates, detection precision
/// and recall are at least 0.95, and each detected copy points to the document it was made
/// from. Positives: exact copies (case, spacing and punctuation changed) and copies with 1–8%
/// of their words edited; negatives: the 300 originals and copies with 50–70% edited.
#[test]
fn planted_near_duplicates_are_found_with_high_precision_and_recall() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let db = open(dir.path());
    let c = db
        .create_collection("d", schema(&model, None, &dedup_settings("keep")).unwrap())
        .unwrap();
    let vocab = vocabulary();
    let mut rng = 42u64;
    let originals: Vec<Vec<String>> = (0..300)
        .map(|_| {
            let n = 80 + (rng as usize >> 40) % 120;
            (0..n)
                .map(|_| {
                    rng = rng.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    vocab[(rng >> 33) as usize % vocab.len()].clone()
                })
                .collect()
        })
        .collect();
    // (id, text, the original it copies when it should be detected)
    let mut planted: Vec<(String, String, Option<String>)> = Vec::new();
    for (i, o) in originals.iter().enumerate() {
        let id = format!("o{i}");
        let text = o.join(" ");
        match i % 6 {
            0 => planted.push((
                format!("exact{i}"),
                format!("{}.", text.to_uppercase().replace(' ', "  ")),
                Some(id.clone()),
            )),
            1..=3 => {
                let rate = [0.01, 0.03, 0.05, 0.08][i % 4];
                planted.push((
                    format!("near{i}"),
                    edited(o, rate, &vocab, &mut rng).join(" "),
                    Some(id.clone()),
                ));
            }
            4 => {
                let rate = [0.5, 0.6, 0.7][i % 3];
                planted.push((
                    format!("far{i}"),
                    edited(o, rate, &vocab, &mut rng).join(" "),
                    None,
                ));
            }
            _ => {}
        }
    }
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None)
        .unwrap()
        .with_batch_chunks(64);
    for (i, o) in originals.iter().enumerate() {
        ing.add(doc(&format!("o{i}"), "", &o.join(" "))).unwrap();
    }
    // Half of the copies in the same run (detected before their batch is written), half in a
    // later one (detected through the stored keys).
    let (first, second) = planted.split_at(planted.len() / 2);
    for (id, text, _) in first {
        ing.add(doc(id, "", text)).unwrap();
    }
    let st1 = ing.finish().unwrap();
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
    for (id, text, _) in second {
        ing.add(doc(id, "", text)).unwrap();
    }
    let st2 = ing.finish().unwrap();
    let flagged = |id: &str| -> Option<String> {
        let f = Filter::from_json(&json!({"must": [{"key": "doc_id", "match": {"value": id}}]}))
            .unwrap();
        let p = c
            .scroll(&Scope::Unscoped, Some(&f), 1, None, None, true)
            .unwrap();
        p.points[0].payload.as_ref().unwrap()["duplicate_of"]
            .as_str()
            .map(str::to_string)
    };
    let (mut tp, mut fp, mut fneg) = (0, 0, 0);
    for (id, _, truth) in &planted {
        match (flagged(id), truth) {
            (Some(of), Some(t)) => {
                assert_eq!(&of, t, "{id} points to the wrong original");
                tp += 1;
            }
            (Some(of), None) => {
                fp += 1;
                eprintln!("false positive: {id} flagged as a copy of {of}");
            }
            (None, Some(_)) => {
                fneg += 1;
                eprintln!("missed: {id}");
            }
            (None, None) => {}
        }
    }
    for i in 0..originals.len() {
        if flagged(&format!("o{i}")).is_some() {
            fp += 1;
        }
    }
    let precision = tp as f64 / (tp + fp) as f64;
    let recall = tp as f64 / (tp + fneg) as f64;
    eprintln!("planted: tp {tp}, fp {fp}, fn {fneg}: precision {precision:.3}, recall {recall:.3}");
    assert!(tp >= 180, "{tp}");
    assert!(
        precision >= 0.95 && recall >= 0.95,
        "precision {precision}, recall {recall}"
    );
    // The 50 exact copies, and the 1%-edited copies that drew no edit at all.
    assert!(
        (50..=80).contains(&(st1.duplicates + st2.duplicates)),
        "exact copies"
    );
    assert_eq!(
        st1.near_duplicates + st2.near_duplicates + st1.duplicates + st2.duplicates,
        tp + fp
    );
}

#[test]
fn dedup_policies_skip_link_and_keep_within_a_tenant() {
    let text = "The red fox is a small carnivore. It hunts rodents at night. Foxes live in dens.";
    let copy = "the red fox is a small carnivore; it hunts rodents at night! foxes live in dens";
    for policy in ["skip", "link", "keep"] {
        let dir = tempfile::tempdir().unwrap();
        let model = FakeDense::default();
        let db = open(dir.path());
        let c = db
            .create_collection("d", schema(&model, None, &dedup_settings(policy)).unwrap())
            .unwrap();
        let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
        for (id, t, x) in CORPUS {
            ing.add(doc(id, t, x)).unwrap();
        }
        ing.finish().unwrap();
        let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
        let outcome = ing.add(doc("fox-copy", "Foxes", copy)).unwrap();
        let st = ing.finish().unwrap();
        assert_eq!(st.duplicates, 1, "{policy}");
        let q = TextQuery::new("red fox hunts rodents", &[SourceKind::Dense], 3);
        let models = Models {
            dense: Some(&model),
            ..Default::default()
        };
        let hits = search_text(&c, models, &q).unwrap();
        let ids: Vec<&str> = hits.iter().map(|h| h.doc_id.as_str()).collect();
        match policy {
            "skip" => {
                assert_eq!(outcome, Outcome::Duplicate);
                assert_eq!(st.skipped_duplicates, 1);
                assert_eq!(doc_count(&c, "fox-copy"), 0);
            }
            "link" => {
                // One hit stands for both copies.
                assert_eq!(
                    ids.iter().filter(|d| d.starts_with("fox")).count(),
                    1,
                    "{ids:?}"
                );
                let h = hits.iter().find(|h| h.doc_id.starts_with("fox")).unwrap();
                let other = if h.doc_id == "fox" { "fox-copy" } else { "fox" };
                assert_eq!(h.copies, vec![other.to_string()]);
                assert_eq!(hits.len(), 3, "the list is filled up to k: {ids:?}");
                // In RAG context, one citation stands for both copies.
                let ctx = assemble(&hits, 1000, &|t: &str| t.split_whitespace().count());
                let p = ctx
                    .passages
                    .iter()
                    .find(|p| p.doc_id.starts_with("fox"))
                    .unwrap();
                assert_eq!(p.copies, vec![other.to_string()]);
                assert!(
                    render(&ctx).contains(&format!("[also: {other}]")),
                    "{}",
                    render(&ctx)
                );
                assert_eq!(
                    ctx.passages
                        .iter()
                        .filter(|p| p.doc_id.starts_with("fox"))
                        .count(),
                    1
                );
            }
            _ => {
                assert!(ids.contains(&"fox") && ids.contains(&"fox-copy"), "{ids:?}");
                assert!(hits.iter().all(|h| h.copies.is_empty()));
                let dup = hits.iter().find(|h| h.doc_id == "fox-copy").unwrap();
                assert_eq!(dup.chunks[0].payload["duplicate_of"], "fox");
                assert_eq!(dup.chunks[0].payload["duplicate_kind"], "exact");
            }
        }
    }
    // Tenants: the same text under two tenants is not a duplicate.
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let db = open(dir.path());
    let mut s = schema(&model, None, &dedup_settings("skip")).unwrap();
    s.tenant_key = Some("org".into());
    s.payload_indexes.push(sextant_engine::PayloadIndexSpec {
        key: "org".into(),
        field_type: sextant_engine::FieldType::Keyword,
    });
    let c = db.create_collection("t", s).unwrap();
    for org in ["a", "b"] {
        let scope = Scope::Tenant(sextant_engine::TenantId::Str(org.into()));
        let mut ing = Ingester::new(&c, scope, &model, None).unwrap();
        assert!(matches!(
            ing.add(doc("x", "", text)).unwrap(),
            Outcome::Added(_)
        ));
        // Within the tenant, a copy is skipped.
        assert_eq!(ing.add(doc("y", "", copy)).unwrap(), Outcome::Duplicate);
        ing.finish().unwrap();
    }
    assert_eq!(
        c.count(&Scope::AllTenants, None).unwrap() as usize,
        2 * doc_chunks(&c)
    );
}

fn doc_chunks(c: &sextant_engine::Collection) -> usize {
    let f =
        Filter::from_json(&json!({"must": [{"key": "doc_id", "match": {"value": "x"}}]})).unwrap();
    (c.count(&Scope::AllTenants, Some(&f)).unwrap() / 2) as usize
}

#[test]
fn bad_dedup_settings_are_refused_by_name() {
    let model = FakeDense::default();
    for (policy, threshold, field) in [
        ("merge", 0.5, "dedup.policy"),
        ("keep", 0.0, "dedup.threshold"),
        ("keep", 1.5, "dedup.threshold"),
    ] {
        let s = DocumentSettings {
            dedup: Some(sextant_engine::documents::DedupSpec {
                policy: policy.into(),
                threshold,
            }),
            ..settings("sentences", 8)
        };
        let e = schema(&model, None, &s).unwrap_err().to_string();
        assert!(e.contains(field), "{e}");
    }
}

/// [`FakeDense`] with an image side: a picture's vector is the text vector of its bytes read
/// as words, so two pictures with the same bytes meet and others do not.
#[derive(Default)]
struct FakeClip(FakeDense);

impl DenseModel for FakeClip {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn identity(&self) -> Value {
        json!({"fake_clip": 1})
    }
    fn check_identity(&self, stored: &Value) -> Result<(), String> {
        (stored == &self.identity())
            .then_some(())
            .ok_or_else(|| "other model".to_string())
    }
    fn max_tokens(&self) -> usize {
        self.0.max_tokens()
    }
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        self.0.token_spans(text)
    }
    fn embed(&self, texts: &[&str], query: bool) -> Result<Vec<Vec<f32>>, String> {
        self.0.embed(texts, query)
    }
    fn embeds_images(&self) -> bool {
        true
    }
    fn embed_images(&self, images: &[&[u8]]) -> Result<Vec<Vec<f32>>, String> {
        let texts: Vec<String> = images
            .iter()
            .map(|b| format!("picture {}", String::from_utf8_lossy(b)))
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.0.embed(&refs, false)
    }
}

fn picture(id: &str, caption: &str, bytes: &str) -> Document {
    Document {
        image: Some(bytes.as_bytes().to_vec()),
        ..doc(id, "", caption)
    }
}

#[test]
fn pictures_are_one_chunk_embedded_by_the_image_side_in_batch_order() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let model = FakeClip::default();
    let c = db
        .create_collection(
            "p",
            schema(&model, None, &settings("sentences", 8)).unwrap(),
        )
        .unwrap();
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None)
        .unwrap()
        .with_batch_chunks(100);
    // Texts and pictures interleaved in one batch; a long caption is not cut.
    let long =
        "A caption much longer than the eight tokens of a chunk, which a picture keeps whole.";
    ing.add(doc("t1", "Foxes", "The red fox hunts rodents at night."))
        .unwrap();
    assert_eq!(
        ing.add(picture("p1", long, "zebra stripes")).unwrap(),
        Outcome::Added(1)
    );
    ing.add(doc("t2", "Bread", "Bread is baked from flour and yeast."))
        .unwrap();
    ing.add(picture("p2", "", "ocean waves")).unwrap();
    ing.finish().unwrap();
    assert_eq!(doc_count(&c, "p1"), 1);
    let search = |v: Vec<f32>| {
        let mut q = TextQuery::new("", &[SourceKind::Dense], 4);
        q.dense_vector = Some(v);
        let models = Models {
            dense: Some(&model),
            ..Default::default()
        };
        search_text(&c, models, &q).unwrap()
    };
    // Each picture's own embedding finds it first; a text's finds the text.
    for (id, bytes) in [("p1", "zebra stripes"), ("p2", "ocean waves")] {
        let v = model.embed_images(&[bytes.as_bytes()]).unwrap().remove(0);
        let hits = search(v);
        assert_eq!(hits[0].doc_id, id);
        assert!((hits[0].score - 1.0).abs() < 1e-5, "{}", hits[0].score);
        let p = &hits[0].chunks[0].payload;
        assert_eq!(p["media"], "image");
    }
    let v = model
        .embed(&["Bread is baked from flour and yeast."], false)
        .unwrap();
    let hits = search(v.into_iter().next().unwrap());
    assert_eq!(hits[0].doc_id, "t2");
    assert!(hits[0].chunks[0].payload.get("media").is_none());
    // The picture's caption is searchable by BM25, whole.
    let q = TextQuery::new("whole", &[SourceKind::Bm25], 2);
    let hits = search_text(&c, Models::default(), &q).unwrap();
    assert_eq!(hits[0].doc_id, "p1");
    assert_eq!(hits[0].chunks[0].payload["text"], long);
    // A caption-less picture is still a passage of the context, cited as a picture.
    let v = model.embed_images(&[b"ocean waves"]).unwrap().remove(0);
    let ctx = assemble(&search(v)[..1], 100, &|t: &str| {
        t.split_whitespace().count()
    });
    assert_eq!(ctx.passages.len(), 1);
    let text = render(&ctx);
    assert!(text.contains("(image: /docs/p2.txt)"), "{text}");
    assert!(text.contains("[image without a caption]"), "{text}");
    // Same bytes and caption: unchanged; new bytes under the same caption: replaced.
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
    assert_eq!(
        ing.add(picture("p2", "", "ocean waves")).unwrap(),
        Outcome::Unchanged
    );
    assert_eq!(
        ing.add(picture("p2", "", "desert dunes")).unwrap(),
        Outcome::Replaced(1)
    );
    ing.finish().unwrap();
    let v = model.embed_images(&[b"desert dunes"]).unwrap().remove(0);
    assert_eq!(search(v)[0].doc_id, "p2");
}

#[test]
fn a_text_only_model_refuses_a_picture_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let model = FakeDense::default();
    let c = db
        .create_collection(
            "t",
            schema(&model, None, &settings("sentences", 8)).unwrap(),
        )
        .unwrap();
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
    let e = ing.add(picture("p", "", "zebra")).unwrap_err();
    assert!(e.field() == Some("image"), "{e:?}");
    assert!(e.to_string().contains("CLIP"), "{e}");
    assert_eq!(ing.finish().unwrap().documents, 0);
    assert_eq!(c.count(&Scope::Unscoped, None).unwrap(), 0);
}

#[test]
fn pictures_are_duplicates_by_their_bytes_not_their_names() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let model = FakeClip::default();
    let c = db
        .create_collection("p", schema(&model, None, &dedup_settings("keep")).unwrap())
        .unwrap();
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
    // Same (empty) caption and the same title, different pixels: not duplicates.
    let named = |id: &str, bytes: &str| Document {
        title: "photo".into(),
        ..picture(id, "", bytes)
    };
    ing.add(named("a/photo.jpg", "zebra stripes")).unwrap();
    ing.add(named("b/photo.jpg", "ocean waves")).unwrap();
    // The same bytes under another name: an exact copy.
    ing.add(named("c/copy.jpg", "zebra stripes")).unwrap();
    let st = ing.finish().unwrap();
    assert_eq!((st.duplicates, st.near_duplicates), (1, 0));
    let f =
        Filter::from_json(&json!({"must": [{"key": "doc_id", "match": {"value": "c/copy.jpg"}}]}))
            .unwrap();
    let p = c
        .scroll(&Scope::Unscoped, Some(&f), 1, None, None, true)
        .unwrap()
        .points
        .remove(0);
    assert_eq!(p.payload.unwrap()["duplicate_of"], "a/photo.jpg");
    assert_eq!(doc_count(&c, "b/photo.jpg"), 1);
}

/// A chunk text seen earlier in the run (in its batch, or in an earlier batch) is not embedded
/// again: the model sees each distinct text once, the repeats get the same dense and sparse
/// vectors, the report counts them, and every stage is timed.
#[test]
fn repeated_chunk_texts_are_embedded_once() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let db = open(dir.path());
    let c = db
        .create_collection(
            "d",
            schema(&model, Some(&FakeSparse), &settings("sentences", 30)).unwrap(),
        )
        .unwrap();
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, Some(&FakeSparse))
        .unwrap()
        .with_batch_chunks(2);
    let footer = "Printed by the county office. All rights reserved.";
    // a and b share a batch; c and d repeat it in later batches; u is unique.
    for id in ["a", "b", "u", "c", "d"] {
        let text = if id == "u" {
            "A unique page about foxes."
        } else {
            footer
        };
        ing.add(doc(id, "Notice", text)).unwrap();
    }
    let st = ing.finish().unwrap();
    assert_eq!(st.documents, 5);
    assert_eq!(st.chunks, 5);
    assert_eq!(st.repeated_chunks, 3, "{st:?}");
    assert_eq!(
        model.calls.load(Ordering::Relaxed),
        2,
        "two distinct texts embedded"
    );
    assert!(st.stages.prepare_s > 0.0 && st.stages.dense_s > 0.0 && st.stages.write_s > 0.0);
    assert!(st.stages.splade_s > 0.0, "{:?}", st.stages);
    let all = c
        .scroll(&Scope::Unscoped, None, 100, None, None, true)
        .unwrap();
    let ids: Vec<_> = all.points.iter().map(|p| p.id.clone()).collect();
    let got = c.get(&Scope::Unscoped, &ids, true, true).unwrap();
    let vectors_of = |doc: &str| {
        got.iter()
            .find(|p| p.payload.as_ref().unwrap()["doc_id"] == doc)
            .and_then(|p| p.vectors.clone())
            .unwrap()
    };
    let a = vectors_of("a");
    for d in ["b", "c", "d"] {
        assert_eq!(vectors_of(d), a, "{d}'s vectors are a's");
    }
    assert_ne!(vectors_of("u"), a);
    assert_eq!(got.len(), 5);
}

/// Counts the models running at once: each call enters, waits (up to 10 s) for the other
/// model to enter too, and records whether it met it.
#[derive(Default)]
struct Rendezvous {
    inside: AtomicUsize,
    met: AtomicUsize,
    calls: AtomicUsize,
}

impl Rendezvous {
    fn visit(&self) {
        self.calls.fetch_add(1, Ordering::SeqCst);
        self.inside.fetch_add(1, Ordering::SeqCst);
        let t = std::time::Instant::now();
        while t.elapsed() < std::time::Duration::from_secs(10) {
            if self.inside.load(Ordering::SeqCst) >= 2 {
                self.met.fetch_add(1, Ordering::SeqCst);
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // Stay until the other one has seen us too.
        while self.met.load(Ordering::SeqCst) % 2 == 1
            && t.elapsed() < std::time::Duration::from_secs(10)
        {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        self.inside.fetch_sub(1, Ordering::SeqCst);
    }
}

struct MeetingDense<'a>(&'a FakeDense, &'a Rendezvous);
struct MeetingSparse<'a>(&'a Rendezvous, bool);

impl DenseModel for MeetingDense<'_> {
    fn dim(&self) -> usize {
        self.0.dim()
    }
    fn identity(&self) -> Value {
        self.0.identity()
    }
    fn check_identity(&self, stored: &Value) -> Result<(), String> {
        self.0.check_identity(stored)
    }
    fn max_tokens(&self) -> usize {
        self.0.max_tokens()
    }
    fn token_spans(&self, text: &str) -> Vec<Range<usize>> {
        self.0.token_spans(text)
    }
    fn embed(&self, texts: &[&str], query: bool) -> Result<Vec<Vec<f32>>, String> {
        self.1.visit();
        self.0.embed(texts, query)
    }
}

impl SparseModel for MeetingSparse<'_> {
    fn identity(&self) -> Value {
        FakeSparse.identity()
    }
    fn check_identity(&self, stored: &Value) -> Result<(), String> {
        FakeSparse.check_identity(stored)
    }
    fn encode(&self, texts: &[&str], query: bool) -> Result<Vec<SparseVector>, String> {
        self.0.visit();
        if self.1 {
            return Err("the sparse model broke".into());
        }
        FakeSparse.encode(texts, query)
    }
}

/// The dense model and SPLADE embed a batch at the same time (each fills the cores the other
/// leaves idle); the stages report each model's own time and their joint wall time. When one
/// of them fails while the other runs, the batch is not written and the error names the model.
#[test]
fn dense_and_splade_run_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let base = FakeDense::default();
    let db = open(dir.path());
    let c = db
        .create_collection(
            "d",
            schema(&base, Some(&FakeSparse), &settings("sentences", 30)).unwrap(),
        )
        .unwrap();
    let meet = Rendezvous::default();
    let (dense, sparse) = (MeetingDense(&base, &meet), MeetingSparse(&meet, false));
    let mut ing = Ingester::new(&c, Scope::Unscoped, &dense, Some(&sparse))
        .unwrap()
        .with_batch_chunks(2);
    for (i, text) in [
        "Foxes hunt at dusk.",
        "Owls see in the dark.",
        "Bees make honey.",
    ]
    .iter()
    .enumerate()
    {
        ing.add(doc(&format!("d{i}"), "Animals", text)).unwrap();
    }
    let st = ing.finish().unwrap();
    assert_eq!(st.chunks, 3);
    // Two batches, two models each: every call met the other model's call.
    assert_eq!(meet.calls.load(Ordering::SeqCst), 4);
    assert_eq!(meet.met.load(Ordering::SeqCst), 4, "{st:?}");
    let s = &st.stages;
    assert!(
        s.models_s > 0.0 && s.dense_s > 0.0 && s.splade_s > 0.0,
        "{s:?}"
    );
    assert!(
        s.dense_s <= s.models_s + 1e-3 && s.splade_s <= s.models_s + 1e-3,
        "{s:?}"
    );
    // That the models ran side by side is what the rendezvous shows (every call met the
    // other model's); comparing `models_s` with `dense_s + splade_s` would be a timing
    // assertion, and failed on a loaded machine (6.9 ms against 2.2 + 2.2 ms).
    assert_eq!(
        doc_count(&c, "d0") + doc_count(&c, "d1") + doc_count(&c, "d2"),
        3
    );

    // SPLADE fails while the dense model runs: an error naming SPLADE, nothing written.
    let meet = Rendezvous::default();
    let (dense, sparse) = (MeetingDense(&base, &meet), MeetingSparse(&meet, true));
    let mut ing = Ingester::new(&c, Scope::Unscoped, &dense, Some(&sparse)).unwrap();
    ing.add(doc("d9", "Animals", "Wolves howl at night."))
        .unwrap();
    let err = ing.finish().unwrap_err().to_string();
    assert!(err.contains("SPLADE") && err.contains("broke"), "{err}");
    assert_eq!(
        meet.met.load(Ordering::SeqCst),
        2,
        "the two models ran side by side"
    );
    assert_eq!(doc_count(&c, "d9"), 0);
}
