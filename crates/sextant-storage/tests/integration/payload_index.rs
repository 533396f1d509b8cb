//! Payload indexes must agree exactly with evaluating the filter on every payload.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use roaring::RoaringBitmap;
use serde_json::{json, Value};
use sextant_core::{Filter, PointId};
use sextant_storage::payload_index::{FieldIndex, FieldType, PayloadIndexes};

const CITIES: [&str; 4] = ["Paris", "Lyon", "Oslo", "Lima"];
const TIMES: [&str; 4] = [
    "2024-01-01T00:00:00Z",
    "2024-06-01T12:00:00+02:00",
    "2023-12-31",
    "not a date",
];

/// Payloads with the awkward cases: missing keys, nulls, arrays, values of the "wrong" type.
fn payload(rng: &mut SmallRng) -> Value {
    let mut o = serde_json::Map::new();
    let pick = |rng: &mut SmallRng| CITIES[rng.gen_range(0..4)];
    match rng.gen_range(0..6) {
        0 => {}
        1 => drop(o.insert("city".into(), Value::Null)),
        2 => drop(o.insert("city".into(), json!([pick(rng), pick(rng)]))),
        3 => drop(o.insert("city".into(), json!(7))),
        _ => drop(o.insert("city".into(), json!(pick(rng)))),
    }
    match rng.gen_range(0..6) {
        0 => {}
        1 => drop(o.insert("n".into(), json!(rng.gen_range(0..10) as f64 + 0.5))),
        2 => drop(o.insert("n".into(), json!("5"))),
        3 => drop(o.insert(
            "n".into(),
            json!([rng.gen_range(0..10), rng.gen_range(0..10)]),
        )),
        _ => drop(o.insert("n".into(), json!(rng.gen_range(0..10)))),
    }
    if rng.gen_bool(0.8) {
        o.insert("flag".into(), json!(rng.gen_bool(0.5)));
    }
    if rng.gen_bool(0.8) {
        o.insert(
            "meta".into(),
            json!({"t": TIMES[rng.gen_range(0..4)], "tags": ["x", pick(rng)]}),
        );
    }
    Value::Object(o)
}

fn condition(rng: &mut SmallRng) -> Value {
    let cities: [Value; 2] = [
        json!(CITIES[rng.gen_range(0..4)]),
        json!(CITIES[rng.gen_range(0..4)]),
    ];
    let city = |i: usize| cities[i].clone();
    match rng.gen_range(0..12) {
        0 => json!({"key": "city", "match": {"value": city(0)}}),
        1 => json!({"key": "city", "match": {"any": [city(0), city(1)]}}),
        2 => json!({"key": "city", "match": {"except": [city(0)]}}),
        3 => {
            json!({"key": "n", "range": {"gte": rng.gen_range(0..10), "lt": rng.gen_range(0..12)}})
        }
        4 => json!({"key": "n", "range": {"gt": rng.gen_range(0..10) as f64 - 0.5}}),
        5 => json!({"key": "n", "match": {"value": rng.gen_range(0..10)}}),
        6 => json!({"key": "flag", "match": {"value": rng.gen_bool(0.5)}}),
        7 => json!({"key": "meta.t", "range": {"lte": TIMES[rng.gen_range(0..3)]}}),
        8 => json!({"is_null": {"key": "city"}}),
        9 => json!({"is_empty": {"key": "n"}}),
        10 => json!({"key": "meta.tags", "match": {"value": city(0)}}),
        _ => {
            json!({"should": [{"key": "flag", "match": {"value": true}}, {"key": "city", "match": {"value": city(0)}}]})
        }
    }
}

fn filter(rng: &mut SmallRng) -> Value {
    let mut f = serde_json::Map::new();
    for clause in ["must", "should", "must_not"] {
        let n = rng.gen_range(0..3);
        if n > 0 {
            f.insert(
                clause.into(),
                Value::Array((0..n).map(|_| condition(rng)).collect()),
            );
        }
    }
    Value::Object(f)
}

#[test]
fn indexed_answers_equal_a_full_scan() {
    let mut rng = SmallRng::seed_from_u64(42);
    let payloads: Vec<Value> = (0..400).map(|_| payload(&mut rng)).collect();
    let mut indexes = PayloadIndexes::default();
    for (key, t) in [
        ("city", FieldType::Keyword),
        ("n", FieldType::Float),
        ("flag", FieldType::Bool),
        ("meta.t", FieldType::Datetime),
        ("meta.tags", FieldType::Keyword),
    ] {
        indexes.add(FieldIndex::new(key, t));
    }
    // Insert everything, then replace some payloads (remove + insert), as updates will.
    for (i, p) in payloads.iter().enumerate() {
        indexes.insert(i as u32, p);
    }
    let mut payloads = payloads;
    for i in (0..400).step_by(7) {
        indexes.remove(i as u32, &payloads[i]);
        payloads[i] = payload(&mut rng);
        indexes.insert(i as u32, &payloads[i]);
    }
    let all: RoaringBitmap = (0..400).filter(|i| i % 11 != 0).collect(); // some points deleted
    let (mut answered, trials) = (0, 500);
    for _ in 0..trials {
        let json = filter(&mut rng);
        let f = Filter::from_json(&json).unwrap();
        let truth: RoaringBitmap = all
            .iter()
            .filter(|&i| f.matches(&PointId::Num(u64::from(i)), &payloads[i as usize]))
            .collect();
        if let Some(got) = indexes.answer(&f, &all) {
            answered += 1;
            assert_eq!(got, truth, "filter {json}");
        }
    }
    assert!(
        answered > trials * 3 / 4,
        "only {answered} of {trials} filters answered from indexes"
    );
}

#[test]
fn what_an_index_cannot_answer_is_left_to_a_scan() {
    let mut indexes = PayloadIndexes::default();
    indexes.add(FieldIndex::new("n", FieldType::Integer));
    let all: RoaringBitmap = (0..3).collect();
    let ask = |v: Value| indexes.answer(&Filter::from_json(&v).unwrap(), &all);
    assert!(ask(json!({"must": [{"key": "n", "match": {"value": "five"}}]})).is_none());
    assert!(ask(json!({"must": [{"key": "n", "range": {"gt": "2024-01-01"}}]})).is_none());
    assert!(ask(json!({"must": [{"key": "other", "match": {"value": 1}}]})).is_none());
    assert!(ask(json!({"must": [{"has_id": [1]}]})).is_none());
    let f = Filter::from_json(&json!({"must": [{"key": "other", "match": {"value": 1}}, {"key": "n", "range": {"gt": 1}}]})).unwrap();
    assert_eq!(indexes.unindexed_keys(&f), vec!["other".to_string()]);
    assert!("geo".parse::<FieldType>().unwrap_err().contains("keyword"));
}
