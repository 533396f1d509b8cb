//! The model-upgrade workflow: reindex a document collection with another model while queries
//! run through an alias, then switch the alias. No query may fail or come back empty, and each
//! answer must be wholly the old collection's or wholly the new one's (the two models differ
//! in dimension, so a query embedded by one and searched in the other could not even run).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use sextant_core::ErrorKind;
use sextant_service::{
    Document, IngestOptions, ReindexOptions, Scope, Service, ServiceConfig, TextSearchRequest,
};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sextant-embed/tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

const WORDS: &[&str] = &[
    "river", "bank", "stone", "bridge", "music", "violin", "harbour", "ship", "garden", "rose",
    "winter", "snow", "engine", "piston", "letter", "stamp", "forest", "owl", "market", "bread",
];

fn docs(n: usize, salt: usize) -> Vec<Document> {
    (0..n)
        .map(|i| {
            let w = |k: usize| WORDS[(i * 7 + k * 3 + salt) % WORDS.len()];
            Document {
                id: format!("d{i}"),
                title: format!("{} and {}", w(0), w(1)),
                text: format!(
                    "The {} near the {} was quiet. A {} stood by the {}. Later the {} met the {}.",
                    w(2),
                    w(3),
                    w(4),
                    w(5),
                    w(6),
                    w(7)
                ),
                ..Document::default()
            }
        })
        .collect()
}

fn ingest(svc: &Service, name: &str, docs: Vec<Document>) {
    let opts = IngestOptions {
        model: Some(fixture("tiny-st")),
        no_splade: true,
        ..IngestOptions::default()
    };
    let mut it = docs.into_iter().map(Ok);
    svc.ingest(name, &Scope::Unscoped, &opts, &mut it, &mut |_| {})
        .unwrap();
}

fn query(i: usize) -> TextSearchRequest {
    TextSearchRequest {
        text: format!(
            "{} by the {}",
            WORDS[i % WORDS.len()],
            WORDS[(i * 3 + 1) % WORDS.len()]
        ),
        k: Some(5),
        mode: Some("dense".into()),
        ..TextSearchRequest::default()
    }
}

fn answer(svc: &Service, collection: &str, i: usize) -> Value {
    serde_json::to_value(
        svc.text_search(collection, &Scope::Unscoped, &query(i))
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn reindex_under_queries_then_an_atomic_alias_switch() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Arc::new(Service::open(dir.path(), ServiceConfig::default()).unwrap());
    ingest(&svc, "docs", docs(150, 0));
    svc.database().set_alias("live", "docs").unwrap();

    const QUERIES: usize = 12;
    let stop = Arc::new(AtomicBool::new(false));
    // Phase: 0 before the switch, 1 after `set_alias` returned.
    let switched = Arc::new(AtomicBool::new(false));
    let seen: Arc<Mutex<Vec<(usize, bool, Value)>>> = Arc::default();
    let failures: Arc<Mutex<Vec<String>>> = Arc::default();
    let answered = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..3)
        .map(|w| {
            let (svc, stop, switched, seen, failures, answered) = (
                svc.clone(),
                stop.clone(),
                switched.clone(),
                seen.clone(),
                failures.clone(),
                answered.clone(),
            );
            std::thread::spawn(move || {
                let mut i = w;
                while !stop.load(Ordering::SeqCst) {
                    let q = i % QUERIES;
                    let after = switched.load(Ordering::SeqCst);
                    match svc.text_search("live", &Scope::Unscoped, &query(q)) {
                        Ok(hits) if hits.is_empty() => {
                            failures.lock().unwrap().push(format!("query {q}: empty"))
                        }
                        Ok(hits) => {
                            seen.lock().unwrap().push((
                                q,
                                after,
                                serde_json::to_value(hits).unwrap(),
                            ));
                            answered.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) => failures.lock().unwrap().push(format!("query {q}: {e}")),
                    }
                    i += 3;
                }
            })
        })
        .collect();

    // The estimate, then the reindex, both while the queries run.
    let opts = ReindexOptions {
        model: fixture("tiny-cross-encoder"),
        into: "docs_v2".into(),
        batch: Some(16),
        resume: false,
    };
    let plan = svc.reindex_plan("live", &opts).unwrap();
    assert_eq!(plan.source, "docs");
    assert_eq!(plan.estimate.old_dim, 8);
    assert_eq!(plan.estimate.new_dim, 32);
    let chunks = plan.estimate.chunks;
    assert!(chunks >= 150, "{chunks}");
    assert!(plan.estimate.text_bytes > 0);
    assert!(plan.estimate.estimated_disk_bytes > plan.estimate.source_disk_bytes);
    let during_before = answered.load(Ordering::SeqCst);
    let mut calls = 0;
    let report = svc
        .reindex("live", &opts, &mut |done, total| {
            calls += 1;
            assert!(done <= total && total == chunks);
        })
        .unwrap();
    assert_eq!(report.stats.embedded, chunks);
    assert!(calls >= (chunks as usize).div_ceil(16));
    let during = answered.load(Ordering::SeqCst) - during_before;

    // The switch, with queries running.
    std::thread::sleep(std::time::Duration::from_millis(100));
    svc.database().set_alias("live", "docs_v2").unwrap();
    switched.store(true, Ordering::SeqCst);
    std::thread::sleep(std::time::Duration::from_millis(300));
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    assert!(failures.is_empty(), "{failures:?}");
    assert!(during > 0, "no query ran during the reindex");

    // Every answer is exactly one collection's.
    let old: Vec<Value> = (0..QUERIES).map(|q| answer(&svc, "docs", q)).collect();
    let new: Vec<Value> = (0..QUERIES).map(|q| answer(&svc, "docs_v2", q)).collect();
    assert!(
        (0..QUERIES).any(|q| old[q] != new[q]),
        "the models should rank differently"
    );
    let seen = seen.lock().unwrap();
    let (mut from_old, mut from_new) = (0, 0);
    for (q, after, got) in seen.iter() {
        if *got == old[*q] && *got != new[*q] {
            from_old += 1;
            assert!(
                !after,
                "query {q} started after the switch and got the old collection"
            );
        } else if *got == new[*q] {
            from_new += 1;
        } else {
            panic!("query {q}: an answer from neither collection: {got}");
        }
    }
    assert!(
        from_old > 0 && from_new > 0,
        "{from_old} old, {from_new} new"
    );

    // The old collection stays for rollback; the alias moves back in one step.
    svc.database().set_alias("live", "docs").unwrap();
    assert_eq!(answer(&svc, "live", 0), old[0]);

    // Ingesting into the new collection with the old model is refused, naming both models.
    let mut it = docs(1, 5).into_iter().map(Ok);
    let err = svc
        .ingest(
            "docs_v2",
            &Scope::Unscoped,
            &IngestOptions {
                model: Some(fixture("tiny-st")),
                no_splade: true,
                ..IngestOptions::default()
            },
            &mut it,
            &mut |_| {},
        )
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert_eq!(err.field(), Some("model"), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("tiny-st") && msg.contains("tiny-cross-encoder"),
        "{msg}"
    );
}

#[test]
fn a_resumed_reindex_catches_up_with_writes_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::open(dir.path(), ServiceConfig::default()).unwrap();
    ingest(&svc, "docs", docs(40, 0));
    let opts = ReindexOptions {
        model: fixture("tiny-cross-encoder"),
        into: "v2".into(),
        batch: None,
        resume: false,
    };
    let first = svc.reindex("docs", &opts, &mut |_, _| {}).unwrap();
    assert_eq!(first.stats.unchanged, 0);
    // A second plain run is refused: the target exists.
    let err = svc.reindex("docs", &opts, &mut |_, _| {}).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains("resume"), "{err}");

    // Writes to the source after the copy: 5 documents changed, 3 removed, 4 added.
    let mut changed = docs(5, 11);
    changed.extend(docs(49, 0).into_iter().skip(45));
    ingest(&svc, "docs", changed);
    for d in ["d10", "d11", "d12"] {
        svc.delete_document("docs", &Scope::Unscoped, d).unwrap();
    }
    let resumed = svc
        .reindex(
            "docs",
            &ReindexOptions {
                resume: true,
                ..opts.clone()
            },
            &mut |_, _| {},
        )
        .unwrap();
    assert!(resumed.stats.embedded > 0 && resumed.stats.embedded < first.stats.embedded);
    assert!(resumed.stats.unchanged > 0);
    assert!(resumed.stats.removed >= 3, "{:?}", resumed.stats);
    // Now the two hold the same chunks with the same payloads.
    let ids = |name: &str| {
        let c = svc.collection(name).unwrap();
        let mut v: Vec<String> = c
            .ids_matching(&Scope::Unscoped, &sextant_core::Filter::default())
            .unwrap()
            .into_iter()
            .map(|id| id.to_json().to_string())
            .collect();
        v.sort();
        v
    };
    assert_eq!(ids("docs"), ids("v2"));
    // A pass with nothing left to do embeds nothing.
    let again = svc
        .reindex(
            "docs",
            &ReindexOptions {
                resume: true,
                ..opts.clone()
            },
            &mut |_, _| {},
        )
        .unwrap();
    assert_eq!(again.stats.embedded, 0);
    assert_eq!(again.stats.removed, 0);
}

#[test]
fn bad_reindex_requests_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::open(dir.path(), ServiceConfig::default()).unwrap();
    ingest(&svc, "docs", docs(5, 0));
    svc.database().set_alias("live", "docs").unwrap();
    let opts = |into: &str, model: String| ReindexOptions {
        model,
        into: into.into(),
        ..ReindexOptions::default()
    };
    let m = fixture("tiny-cross-encoder");
    for (o, field) in [
        (opts("docs", m.clone()), "into"),
        (opts("live", m.clone()), "into"),
        (opts("v2", "/nonexistent/model".into()), "model"),
    ] {
        let err = svc.reindex("live", &o, &mut |_, _| {}).unwrap_err();
        assert_eq!(err.field(), Some(field), "{err}");
    }
    let err = svc
        .reindex("nope", &opts("v2", m.clone()), &mut |_, _| {})
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    // A vector collection has no stored text to re-embed.
    svc.create_collection(&sextant_service::CollectionSpec {
        name: "vecs".into(),
        dim: Some(4),
        ..Default::default()
    })
    .unwrap();
    let err = svc
        .reindex("vecs", &opts("v2", m), &mut |_, _| {})
        .unwrap_err();
    assert!(
        err.to_string().contains("not a document collection"),
        "{err}"
    );
    assert!(svc.collection("v2").is_err(), "nothing was created");
}

#[test]
fn a_multi_tenant_collection_reindexes_every_tenant_into_its_own_scope() {
    use sextant_engine::TenantId;
    let dir = tempfile::tempdir().unwrap();
    let svc = Service::open(dir.path(), ServiceConfig::default()).unwrap();
    let opts = IngestOptions {
        model: Some(fixture("tiny-st")),
        no_splade: true,
        tenant_key: Some("org".into()),
        ..IngestOptions::default()
    };
    // The same document ids under two tenants.
    for (org, n) in [("a", 7), ("b", 4)] {
        let mut it = docs(n, 0).into_iter().map(|mut d| {
            d.tenant = Some(TenantId::Str(org.into()));
            Ok(d)
        });
        svc.ingest("mt", &Scope::AllTenants, &opts, &mut it, &mut |_| {})
            .unwrap();
    }
    let report = svc
        .reindex(
            "mt",
            &ReindexOptions {
                model: fixture("tiny-cross-encoder"),
                into: "mt2".into(),
                ..ReindexOptions::default()
            },
            &mut |_, _| {},
        )
        .unwrap();
    assert!(report.stats.embedded > 0);
    let new = svc.collection("mt2").unwrap();
    assert_eq!(new.schema().tenant_key.as_deref(), Some("org"));
    let old = svc.collection("mt").unwrap();
    for org in ["a", "b"] {
        let scope = Scope::Tenant(TenantId::Str(org.into()));
        assert_eq!(
            new.count(&scope, None).unwrap(),
            old.count(&scope, None).unwrap(),
            "tenant {org}"
        );
        // A tenant's search in the new collection finds only its documents.
        let hits = svc
            .text_search(
                "mt2",
                &scope,
                &TextSearchRequest {
                    text: "river".into(),
                    k: Some(20),
                    ..TextSearchRequest::default()
                },
            )
            .unwrap();
        assert!(!hits.is_empty());
        for h in hits {
            for c in h.chunks {
                assert_eq!(c.payload["org"], org, "{:?}", c.payload);
            }
        }
    }
}
