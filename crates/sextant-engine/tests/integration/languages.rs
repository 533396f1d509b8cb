//! Languages: detection recorded in every chunk's payload, BM25 analysed in the collection's
//! language (fixed, none, or detected per chunk and query), the query's language chosen or
//! given and reported.

use serde_json::{json, Value};
use sextant_core::{Filter, PointId};
use sextant_engine::documents::ingest::{Document, Ingester};
use sextant_engine::documents::search::{
    search_text_explained, Models, Rm3, SourceKind, TextQuery,
};
use sextant_engine::documents::{schema, DocumentSettings};
use std::sync::Arc;

use sextant_engine::{Collection, CollectionConfig, Database, Scope};
use sextant_text::{Language, LanguageSource};

use crate::documents::{settings, FakeDense};

const FR: &str = "Les enfants jouaient dans les jardins publics de la ville pendant que leurs parents travaillaient dans les usines du quartier.";
const DE: &str = "Die Kinder spielten in den öffentlichen Gärten der Stadt, während ihre Eltern in den Fabriken des Viertels arbeiteten.";
/// Nothing to detect a language in; too long to share a chunk with a sentence above.
const NUMBERS: &str = "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15.";
const EN: &str = "The children were playing in the public gardens of the city while their parents were working in the factories of the district.";

fn doc(id: &str, text: &str) -> Document {
    Document {
        id: id.into(),
        text: text.into(),
        ..Default::default()
    }
}

fn with_language(language: Option<&str>) -> DocumentSettings {
    DocumentSettings {
        language: language.map(str::to_string),
        ..settings("sentences", 32)
    }
}

/// A collection with the three documents, plus one whose record names its language and a
/// French one whose last chunk has no words.
fn build(dir: &std::path::Path, language: Option<&str>) -> (Database, Arc<Collection>) {
    let model = FakeDense::default();
    let db = Database::open(dir, CollectionConfig::default()).unwrap();
    let c = db
        .create_collection("d", schema(&model, None, &with_language(language)).unwrap())
        .unwrap();
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
    for (id, text) in [("fr", FR), ("de", DE), ("en", EN)] {
        ing.add(doc(id, text)).unwrap();
    }
    let mut tagged = doc("tagged", EN);
    tagged.fields.insert("language".into(), json!("cy"));
    ing.add(tagged).unwrap();
    ing.add(doc("mixed", &format!("{FR} {FR} {NUMBERS}")))
        .unwrap();
    ing.finish().unwrap();
    (db, c)
}

fn payload(c: &Collection, id: &str) -> Value {
    c.get(&Scope::Unscoped, &[PointId::Str(id.into())], true, false)
        .unwrap()
        .pop()
        .unwrap()
        .payload
        .unwrap()
}

fn bm25(c: &Collection, text: &str, language: Option<Language>) -> (Vec<String>, Value) {
    let model = FakeDense::default();
    let mut q = TextQuery::new(text, &[SourceKind::Bm25], 10);
    q.language = language;
    let (hits, why) = search_text_explained(
        c,
        Models {
            dense: Some(&model),
            ..Default::default()
        },
        &q,
    )
    .unwrap();
    (
        hits.into_iter().map(|h| h.doc_id).collect(),
        serde_json::to_value(&why.sources[0]).unwrap(),
    )
}

#[test]
fn every_chunk_records_its_language_and_filters_find_them() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, c) = build(dir.path(), None);
    for (id, lang) in [("fr#0", "fr"), ("de#0", "de"), ("en#0", "en")] {
        let p = payload(&c, id);
        assert_eq!(p["language"], lang, "{id}: {p}");
        assert_eq!(p["doc_language"], lang, "{id}");
    }
    // The record's own field wins over detection, for the chunk and the document.
    let p = payload(&c, "tagged#0");
    assert_eq!(
        (&p["language"], &p["doc_language"]),
        (&json!("cy"), &json!("cy"))
    );
    // A chunk too short to detect takes its document's language.
    let last = c
        .scroll(&Scope::Unscoped, None, 100, None, None, true)
        .unwrap()
        .points
        .into_iter()
        .filter_map(|p| p.payload)
        .filter(|p| p["doc_id"] == "mixed")
        .find(|p| p["text"] == NUMBERS)
        .expect("the short chunk");
    assert_eq!(
        (&last["language"], &last["doc_language"]),
        (&json!("fr"), &json!("fr"))
    );
    // `language` is indexed, and filters on it.
    assert!(c
        .schema()
        .payload_indexes
        .iter()
        .any(|i| i.key == "language"));
    let f = Filter::from_json(&json!({"must": [{"key": "language", "match": {"value": "de"}}]}))
        .unwrap();
    assert_eq!(c.count(&Scope::Unscoped, Some(&f)).unwrap(), 1);
}

#[test]
fn bm25_analyses_in_the_collection_language() {
    // "travailler" finds "travaillaient" only through the French stemmer.
    for (setting, finds_fr, lang) in [
        (None, false, Some(Language::English)),
        (Some("english"), false, Some(Language::English)),
        (Some("fr"), true, Some(Language::French)),
        (Some("french"), true, Some(Language::French)),
        (Some("pl"), false, None),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let (_db, c) = build(dir.path(), setting);
        let (docs, why) = bm25(&c, "travailler", None);
        assert_eq!(
            docs.contains(&"fr".to_string()),
            finds_fr,
            "{setting:?}: {docs:?}"
        );
        assert_eq!(why["language"]["source"], "configured", "{setting:?}");
        assert_eq!(
            why["language"]["language"],
            json!(lang.map(|l| l.name())),
            "{setting:?}"
        );
        assert_eq!(why["source"], "bm25");
        // The explanation lists the analysed terms with their weights.
        let terms = why["terms"].as_array().unwrap();
        assert_eq!(terms.len(), 1);
        assert!(terms[0][1].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn auto_detects_each_chunk_and_query_and_a_given_language_wins() {
    let dir = tempfile::tempdir().unwrap();
    let (_db, c) = build(dir.path(), Some("auto"));
    // The French chunk was stemmed as French, the German as German.
    let fr_query = "Les jardins publics de la ville où jouaient les enfants";
    let (docs, why) = bm25(&c, fr_query, None);
    assert_eq!(docs[0], "fr", "{docs:?}");
    // The query's analysis is chosen by the index: French stems are the ones it holds.
    assert_eq!(why["language"]["source"], "index");
    assert_eq!(why["language"]["detected"], "fr");
    assert_eq!(why["language"]["language"], "french");
    let (docs, _) = bm25(&c, "Gärten", Some(Language::German));
    assert_eq!(docs, ["de"]);
    // One word is too little to detect, and the index still finds its language.
    let (docs, why) = bm25(&c, "travailler", None);
    assert_eq!(why["language"]["source"], "index");
    assert_eq!(why["language"]["detected"], Value::Null);
    assert_eq!(docs, ["fr", "mixed"], "{why}");
    let (docs, _) = bm25(&c, "gardens", None);
    assert!(docs.contains(&"en".to_string()), "{docs:?}");
    // A given language is used, and said to be given.
    let (docs, why) = bm25(&c, "travailler", Some(Language::French));
    assert_eq!(why["language"]["source"], "given");
    assert!(docs.contains(&"fr".to_string()), "{docs:?}");
    let s: sextant_text::AnalysisLanguage = sextant_text::AnalysisLanguage {
        language: Some(Language::French),
        detected: None,
        source: LanguageSource::Given,
    };
    assert_eq!(why["language"], serde_json::to_value(s).unwrap());
    // Stored: the analyzer detects, with English as the fallback.
    let stored = &c.schema().sparse_spaces[0].kind;
    let json = serde_json::to_value(stored).unwrap();
    let text = json.to_string();
    assert!(text.contains("\"detect_language\":true"), "{text}");
    assert!(text.contains("\"stemmer\":\"english\""), "{text}");
}

#[test]
fn bad_languages_are_refused_naming_the_field() {
    let model = FakeDense::default();
    for bad in ["klingon", "xx", ""] {
        let e = schema(&model, None, &with_language(Some(bad))).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("language"), "{bad}: {msg}");
        assert!(msg.contains("french"), "{bad}: {msg}");
    }
    // Settings from before the option read back as English.
    let old: DocumentSettings = serde_json::from_value(json!({
        "chunking": {"strategy": "sentences", "max_tokens": 32}
    }))
    .unwrap();
    assert_eq!(old.language, None);
    let s = schema(&model, None, &old).unwrap();
    let text = serde_json::to_value(&s.sparse_spaces[0].kind)
        .unwrap()
        .to_string();
    assert!(
        text.contains("\"stemmer\":\"english\"") && !text.contains("detect_language"),
        "{text}"
    );
}

#[test]
fn rm3_adds_the_feedback_documents_terms() {
    let dir = tempfile::tempdir().unwrap();
    let model = FakeDense::default();
    let db = Database::open(dir.path(), CollectionConfig::default()).unwrap();
    let c = db
        .create_collection("d", schema(&model, None, &with_language(None)).unwrap())
        .unwrap();
    let mut ing = Ingester::new(&c, Scope::Unscoped, &model, None).unwrap();
    let texts = [
        (
            "a",
            "The red fox hunts voles in the meadow near the burrow.",
        ),
        ("b", "A fox digs a burrow and hunts voles at dusk."),
        (
            "c",
            "Voles hide from every hunter in a burrow under the meadow.",
        ),
        ("d", "Bread is baked from flour, water and yeast."),
        ("e", "The moon orbits the earth once a month."),
    ];
    for (id, text) in texts {
        ing.add(doc(id, text)).unwrap();
    }
    ing.finish().unwrap();
    let run = |rm3: Option<Rm3>| {
        let mut q = TextQuery::new("fox", &[SourceKind::Bm25], 10);
        q.rm3 = rm3;
        let (hits, why) = search_text_explained(&c, Models::default(), &q).unwrap();
        let docs: Vec<String> = hits.into_iter().map(|h| h.doc_id).collect();
        (docs, why.sources[0].clone())
    };
    let (plain, why) = run(None);
    assert_eq!(plain.len(), 2, "{plain:?}");
    assert!(why.expansion.is_empty());
    let rm3 = Rm3 {
        fb_docs: 2,
        ..Rm3::default()
    };
    let (expanded, why) = run(Some(rm3));
    // "c" shares the fox documents' "voles" and "burrow" but not "fox".
    assert_eq!(&expanded[..2], &plain[..], "the fox documents stay first");
    assert!(expanded.contains(&"c".to_string()), "{expanded:?}");
    assert!(!expanded.contains(&"d".to_string()), "{expanded:?}");
    let terms: Vec<&str> = why.expansion.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        terms[0], "fox",
        "the query's own term weighs most: {terms:?}"
    );
    assert!(terms.contains(&"vole"), "{terms:?}");
    // English stop words are not expansion terms.
    assert!(
        !terms.contains(&"the") && !terms.contains(&"a"),
        "{terms:?}"
    );
    let sum: f32 = why.expansion.iter().map(|(_, w)| w).sum();
    assert!((sum - 1.0).abs() < 1e-4, "{sum}");
    // Only the original query with weight 1: the plain ranking.
    let (same, _) = run(Some(Rm3 {
        original_weight: 1.0,
        ..rm3
    }));
    assert_eq!(same, plain);
    // Bad settings are refused, naming the option.
    let mut q = TextQuery::new("fox", &[SourceKind::Bm25], 10);
    q.rm3 = Some(Rm3 { fb_docs: 0, ..rm3 });
    let e = search_text_explained(&c, Models::default(), &q).unwrap_err();
    assert!(e.to_string().contains("rm3"), "{e}");
}
