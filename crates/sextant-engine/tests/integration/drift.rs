//! Drift monitoring: the embedding statistics against a direct computation while the state
//! evolves (upserts, deletes, flushes, merges), the centroid-shift alarm, canary checks and
//! their alarm, persistence (also encrypted), and bad input.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use sextant_core::{Metric, PointId};
use sextant_engine::drift::CanaryInput;
use sextant_engine::{Collection, CollectionConfig, Database, IndexSpec, MasterKey, Scope};

use super::engine::{point, random_vec, schema};

const DIM: usize = 6;

fn config() -> CollectionConfig {
    CollectionConfig {
        flush_points: 50,
        background_merge: false,
        ..CollectionConfig::default()
    }
}

/// Mean, mean norm and RMS distance to the mean of `vs`, directly.
fn direct(vs: &[Vec<f32>]) -> (Vec<f64>, f64, f64) {
    let n = vs.len() as f64;
    let mut mean = vec![0.0; DIM];
    for v in vs {
        for (m, x) in mean.iter_mut().zip(v) {
            *m += f64::from(*x) / n;
        }
    }
    let norm = vs
        .iter()
        .map(|v| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt())
        .sum::<f64>()
        / n;
    let spread = (vs
        .iter()
        .map(|v| {
            v.iter()
                .zip(&mean)
                .map(|(x, m)| (f64::from(*x) - m).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / n)
        .sqrt();
    (mean, norm, spread)
}

fn check_stats(c: &Collection, model: &BTreeMap<u64, Vec<f32>>, step: usize) {
    let stats = c.embedding_stats();
    let s = &stats[0];
    assert_eq!(s.count, model.len() as u64, "step {step}");
    if model.is_empty() {
        return;
    }
    let vs: Vec<Vec<f32>> = model.values().cloned().collect();
    let (mean, norm, spread) = direct(&vs);
    for (a, b) in s.centroid.iter().zip(&mean) {
        assert!((f64::from(*a) - b).abs() < 1e-4, "step {step}: {a} vs {b}");
    }
    assert!((s.mean_norm - norm).abs() < 1e-6, "step {step}");
    assert!((s.spread - spread).abs() < 1e-6, "step {step}");
}

#[test]
fn statistics_follow_a_model_through_writes_flushes_and_merges() {
    for seed in 0..4 {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), config()).unwrap();
        let c = db
            .create_collection("c", schema(DIM, Metric::L2, IndexSpec::Flat))
            .unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut model: BTreeMap<u64, Vec<f32>> = BTreeMap::new();
        for step in 0..40 {
            match rng.gen_range(0..10) {
                0..=4 => {
                    let n = rng.gen_range(1..30);
                    let pts: Vec<_> = (0..n)
                        .map(|_| {
                            let id = rng.gen_range(0..200u64);
                            let v = random_vec(&mut rng, DIM);
                            model.insert(id, v.clone());
                            point(id, v, json!({}))
                        })
                        .collect();
                    // The last write of an id wins, as in the model.
                    c.upsert(&Scope::Unscoped, pts).unwrap();
                }
                5..=6 => {
                    let ids: Vec<u64> = model
                        .keys()
                        .copied()
                        .filter(|_| rng.gen_bool(0.2))
                        .collect();
                    for id in &ids {
                        model.remove(id);
                    }
                    c.delete(
                        &Scope::Unscoped,
                        ids.into_iter().map(PointId::Num).collect(),
                    )
                    .unwrap();
                }
                7 => c.flush().unwrap(),
                8 => {
                    c.merge().unwrap();
                }
                _ => c.optimize().unwrap(),
            }
            check_stats(&c, &model, step);
            // Twice: the second answer comes from the per-segment cache.
            check_stats(&c, &model, step);
        }
    }
}

#[test]
fn a_moved_distribution_raises_the_shift_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), config()).unwrap();
    let c = db
        .create_collection("c", schema(DIM, Metric::L2, IndexSpec::default()))
        .unwrap();
    assert!(c.info().drift.is_none(), "unmonitored: no drift scan");
    let mut rng = StdRng::seed_from_u64(9);
    let add = |rng: &mut StdRng, from: u64, n: u64, offset: f32| {
        let pts = (from..from + n)
            .map(|id| {
                let v: Vec<f32> = random_vec(rng, DIM)
                    .into_iter()
                    .map(|x| x + offset)
                    .collect();
                point(id, v, json!({}))
            })
            .collect();
        c.upsert(&Scope::Unscoped, pts).unwrap();
    };
    add(&mut rng, 0, 2_000, 0.0);
    let r = c.drift_pin(Some(0.2), None).unwrap();
    assert_eq!(r.spaces[0].count, 2_000);
    // More of the same: a small shift, no alarm.
    add(&mut rng, 2_000, 1_000, 0.0);
    let d = c.info().drift.unwrap();
    let shift = d.spaces[0].centroid_shift.unwrap();
    assert!(shift < 0.1, "{shift}");
    assert!(d.alarms.is_empty(), "{:?}", d.alarms);
    assert!(d.pinned_at.is_some());
    // A quarter of the data from elsewhere (every coordinate +1.5): the alarm.
    add(&mut rng, 3_000, 1_000, 1.5);
    let d = c.info().drift.unwrap();
    let shift = d.spaces[0].centroid_shift.unwrap();
    assert!(shift > 0.2, "{shift}");
    assert_eq!(d.alarms.len(), 1, "{:?}", d.alarms);
    assert!(d.alarms[0].contains("centroid"), "{:?}", d.alarms);
    assert!(d.spaces[0].norm_shift.unwrap() > 0.1);
    // Pinning again accepts the new distribution.
    c.drift_pin(None, None).unwrap();
    let d = c.info().drift.unwrap();
    assert!(d.spaces[0].centroid_shift.unwrap() < 1e-6);
    assert!(d.alarms.is_empty());
    assert_eq!(d.shift_alarm, 0.2, "the threshold set before is kept");
}

#[test]
fn canaries_track_precision_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(4);
    let q = random_vec(&mut rng, DIM);
    let expected;
    {
        let db = Database::open(dir.path(), config()).unwrap();
        let c = db
            .create_collection("c", schema(DIM, Metric::L2, IndexSpec::Flat))
            .unwrap();
        let pts = (0..300)
            .map(|id| point(id, random_vec(&mut rng, DIM), json!({})))
            .collect();
        c.upsert(&Scope::Unscoped, pts).unwrap();
        let canary = c
            .drift_add_canary(CanaryInput {
                name: "top".into(),
                vector: q.clone(),
                k: 5,
                ..CanaryInput::default()
            })
            .unwrap();
        assert_eq!(canary.expected.len(), 5);
        expected = canary.expected.clone();
        let d = c.drift_check().unwrap();
        assert_eq!(d.last_check.as_ref().unwrap().mean, 1.0);
        assert!(d.alarms.is_empty());
        // Two of the five expected points go: precision 3/5, below the default alarm 0.8.
        let gone: Vec<PointId> = expected[..2]
            .iter()
            .map(|v| PointId::Num(v.as_u64().unwrap()))
            .collect();
        c.delete(&Scope::Unscoped, gone).unwrap();
        let d = c.drift_check().unwrap();
        let last = d.last_check.unwrap();
        assert!((last.mean - 0.6).abs() < 1e-12, "{last:?}");
        assert_eq!(last.precision, vec![("top".to_string(), 0.6)]);
        assert_eq!(d.precision_history, vec![1.0, 0.6]);
        assert_eq!(d.alarms.len(), 1);
        assert!(d.alarms[0].contains("precision"), "{:?}", d.alarms);
        // Given expected ids; a duplicate name is refused.
        c.drift_add_canary(CanaryInput {
            name: "given".into(),
            vector: q.clone(),
            k: 3,
            expected: Some(vec![PointId::Num(299)]),
            ..CanaryInput::default()
        })
        .unwrap();
        let dup = c
            .drift_add_canary(CanaryInput {
                name: "given".into(),
                vector: q.clone(),
                k: 3,
                ..CanaryInput::default()
            })
            .unwrap_err();
        assert!(dup.to_string().contains("given"), "{dup}");
        // The history keeps the last 100 checks.
        for _ in 0..110 {
            c.drift_check().unwrap();
        }
        assert_eq!(c.info().drift.unwrap().precision_history.len(), 100);
    }
    // Reopened: canaries and history are there.
    let db = Database::open(dir.path(), config()).unwrap();
    let c = db.collection("c").unwrap();
    let names: Vec<String> = c.drift_canaries().into_iter().map(|x| x.name).collect();
    assert_eq!(names, ["top", "given"]);
    assert_eq!(c.drift_canaries()[0].expected, expected);
    let d = c.info().drift.unwrap();
    assert_eq!(d.canaries, 2);
    assert_eq!(d.precision_history.len(), 100);
    assert!(c.drift_remove_canary("given").unwrap());
    assert!(!c.drift_remove_canary("given").unwrap());
    assert_eq!(c.drift_canaries().len(), 1);
}

#[test]
fn drift_state_of_an_encrypted_collection_is_encrypted() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::from_bytes([7; 32]);
    {
        let db = Database::open(dir.path(), config()).unwrap();
        db.set_master_key(Some(key.clone()));
        let c = db
            .create_collection_with("e", schema(DIM, Metric::L2, IndexSpec::Flat), true)
            .unwrap();
        let mut rng = StdRng::seed_from_u64(5);
        let pts = (0..50)
            .map(|id| point(id, random_vec(&mut rng, DIM), json!({})))
            .collect();
        c.upsert(&Scope::Unscoped, pts).unwrap();
        c.drift_add_canary(CanaryInput {
            name: "secret-canary".into(),
            text: Some("a confidential question".into()),
            vector: random_vec(&mut rng, DIM),
            k: 3,
            ..CanaryInput::default()
        })
        .unwrap();
        c.drift_pin(None, None).unwrap();
    }
    let raw = std::fs::read(dir.path().join("collections/e/drift")).unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(!text.contains("confidential") && !text.contains("secret-canary"));
    let db = Database::open(dir.path(), config()).unwrap();
    db.set_master_key(Some(key));
    let c = db.collection("e").unwrap();
    assert_eq!(
        c.drift_canaries()[0].text.as_deref(),
        Some("a confidential question")
    );
    assert!(c.info().drift.unwrap().pinned_at.is_some());
}

#[test]
fn bad_drift_requests_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), config()).unwrap();
    let c = db
        .create_collection("c", schema(DIM, Metric::L2, IndexSpec::Flat))
        .unwrap();
    let err = c.drift_check().unwrap_err().to_string();
    assert!(err.contains("canar"), "{err}");
    let ok = CanaryInput {
        name: "x".into(),
        vector: vec![0.5; DIM],
        k: 3,
        ..CanaryInput::default()
    };
    // An empty collection has no exact answer to expect.
    assert!(c
        .drift_add_canary(ok.clone())
        .unwrap_err()
        .to_string()
        .contains("expected"));
    for (bad, needle) in [
        (CanaryInput { k: 0, ..ok.clone() }, "k"),
        (
            CanaryInput {
                k: 101,
                ..ok.clone()
            },
            "k",
        ),
        (
            CanaryInput {
                name: String::new(),
                ..ok.clone()
            },
            "name",
        ),
        (
            CanaryInput {
                vector: vec![0.5; DIM + 1],
                ..ok.clone()
            },
            "vector",
        ),
        (
            CanaryInput {
                space: Some("nope".into()),
                ..ok.clone()
            },
            "space",
        ),
        (
            CanaryInput {
                expected: Some(Vec::new()),
                ..ok.clone()
            },
            "expected",
        ),
    ] {
        let e = c.drift_add_canary(bad).unwrap_err().to_string();
        assert!(e.contains(needle), "{needle}: {e}");
    }
    for (shift, precision, needle) in [
        (Some(-1.0), None, "shift_alarm"),
        (None, Some(f64::NAN), "precision_alarm"),
    ] {
        let e = c.drift_pin(shift, precision).unwrap_err().to_string();
        assert!(e.contains(needle), "{e}");
    }
    assert!(
        c.info().drift.is_none(),
        "refused requests leave nothing behind"
    );
}
