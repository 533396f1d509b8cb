//! The tiny random cross-encoder (committed fixture) against transformers.

use sextant_embed::{
    BertEmbedder, CrossEncoder, Embedder, EmbedderOptions, InputKind, Reranker, RerankerOptions,
};

use crate::{fixture, ints, load_json};

const TOL: f32 = 1e-4;

fn tiny_dir() -> String {
    fixture("tiny-cross-encoder").to_string_lossy().into_owned()
}

#[test]
fn cross_encoder_scores_match_transformers() {
    let j = load_json("cross_encoder_reference.json");
    let items = j["items"].as_array().unwrap();
    let pairs: Vec<(&str, &str)> = items
        .iter()
        .map(|i| (i["query"].as_str().unwrap(), i["passage"].as_str().unwrap()))
        .collect();
    let ce = CrossEncoder::load(
        &tiny_dir(),
        RerankerOptions {
            batch_size: Some(4),
            ..Default::default()
        },
    )
    .unwrap();
    let scores = ce.score_pairs(&pairs).unwrap();
    let mut worst = 0f32;
    for (k, item) in items.iter().enumerate() {
        let enc = ce.tokenizer().encode_pair(pairs[k].0, pairs[k].1).unwrap();
        assert_eq!(enc.ids, ints(&item["input_ids"]), "ids of pair {k}");
        assert_eq!(
            enc.type_ids,
            ints(&item["type_ids"]),
            "type ids of pair {k}"
        );
        let want = item["score"].as_f64().unwrap() as f32;
        let d = (scores[k] - want).abs();
        worst = worst.max(d);
        assert!(d <= TOL, "pair {k}: {} vs {want}", scores[k]);
    }
    eprintln!("cross-encoder parity: max abs diff {worst:e}");

    // Batched and one-at-a-time agree; score() is score_pairs() with one query.
    for (k, p) in pairs.iter().enumerate() {
        let one = ce.score(p.0, &[p.1]).unwrap();
        assert!((one[0] - scores[k]).abs() <= 1e-6);
    }
}

#[test]
fn a_classifier_checkpoint_also_loads_as_an_encoder() {
    // Weights stored under `bert.` load as a plain encoder; the head is ignored.
    let m = BertEmbedder::load(&tiny_dir(), EmbedderOptions::default()).unwrap();
    assert_eq!(m.dim(), 32);
    assert_eq!(m.max_seq_length(), 128);
    let out = m.embed(&["hello world", ""], InputKind::Plain).unwrap();
    assert!(out.as_slice().iter().all(|x| x.is_finite()));
}
