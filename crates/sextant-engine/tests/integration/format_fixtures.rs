//! Data written by older builds still opens (fixtures in `tests/fixtures/`).

use std::path::Path;

use sextant_core::PointId;
use sextant_engine::Scope;
use sextant_engine::{Collection, CollectionConfig, Database, SparseInput, SparseSearchRequest};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn search(c: &Collection, q: &str) -> Vec<(u64, f32)> {
    let mut hits: Vec<(u64, f32)> = c
        .search_sparse(SparseSearchRequest {
            space: "text".into(),
            query: SparseInput::Text(q.into()),
            k: 10,
            filter: None,
            scope: Scope::Unscoped,
            with_payload: false,
        })
        .unwrap()
        .hits
        .iter()
        .map(|h| match h.id {
            PointId::Num(n) => (n, h.score.unwrap()),
            _ => unreachable!(),
        })
        .collect();
    hits.sort_by_key(|h| h.0);
    hits
}

/// A BM25 collection written before term dictionaries (segment `sparse-0.bin` v1 with hashed
/// term ids, WAL records of tags 3 and 4) opens, keeps scoring as it did (analyzer version 1,
/// the hash collision of `1023898` and `1027041` included), takes new writes, and survives a
/// rewrite into the current formats.
#[test]
fn bm25_collection_from_before_term_dictionaries_opens() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bm25-v1");
    copy_dir(&fixture, dir.path());
    let cfg = CollectionConfig {
        background_merge: false,
        ..CollectionConfig::default()
    };
    let db = Database::open(dir.path(), cfg).unwrap();
    let c = db.collection("old").unwrap();
    assert_eq!(
        c.count(&Scope::Unscoped, None).unwrap(),
        4,
        "1, 2, 4 and 6 are live"
    );
    let ids = |hits: Vec<(u64, f32)>| hits.iter().map(|h| h.0).collect::<Vec<_>>();
    let numbers = search(&c, "1023898");
    assert_eq!(
        ids(numbers.clone()),
        [1, 4],
        "the old hashed identity is kept"
    );
    assert_eq!(ids(search(&c, "fox")), [2, 6]);
    assert!(search(&c, "sleeps").is_empty(), "3 was replaced");
    c.upsert(
        &Scope::Unscoped,
        vec![sextant_engine::PointInput {
            id: PointId::Num(7),
            vectors: sextant_engine::Vectors::Single(vec![7.0, 0.0]),
            payload: serde_json::json!({}),
            sparse: vec![("text".into(), SparseInput::Text("brown fox".into()))],
            expires_at: None,
        }],
    )
    .unwrap();
    assert_eq!(ids(search(&c, "brown")), [2, 7]);
    let before = (search(&c, "1023898"), search(&c, "brown fox dog"));
    c.optimize().unwrap();
    drop(c);
    drop(db);
    let db = Database::open(dir.path(), cfg).unwrap();
    let c = db.collection("old").unwrap();
    assert_eq!((search(&c, "1023898"), search(&c, "brown fox dog")), before);
}
