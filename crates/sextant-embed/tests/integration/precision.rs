//! Reduced precision: bf16 vectors against f32 vectors of the same model.

use std::sync::OnceLock;

use sextant_embed::{BertEmbedder, Embedder, EmbedderOptions, InputKind, Precision};

use crate::{compare, load_json, model_dir};

/// The bar of issue 4: every bf16 vector within this cosine of its f32 vector.
const MIN_COS_BF16: f64 = 0.999;

fn load(precision: Precision, threads: Option<usize>) -> BertEmbedder {
    BertEmbedder::load(
        &model_dir("all-MiniLM-L6-v2"),
        EmbedderOptions {
            precision: Some(precision),
            threads,
            batch_size: Some(4),
            ..Default::default()
        },
    )
    .expect("load all-MiniLM-L6-v2")
}

fn bf16() -> &'static BertEmbedder {
    static M: OnceLock<BertEmbedder> = OnceLock::new();
    M.get_or_init(|| load(Precision::Bf16, None))
}

fn parity_texts() -> Vec<String> {
    let j = load_json("minilm_reference.json");
    j["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["text"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn bf16_is_close_to_f32_on_every_parity_text() {
    let texts = parity_texts();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    assert!(texts.len() >= 30);
    let f32_model = load(Precision::F32, None);
    assert_eq!(bf16().precision(), Precision::Bf16);
    assert_eq!(f32_model.precision(), Precision::F32);
    // Same vector space: the fingerprint does not record the precision.
    assert_eq!(bf16().fingerprint(), f32_model.fingerprint());
    let want = f32_model.embed(&texts, InputKind::Plain).unwrap();
    let got = bf16().embed(&texts, InputKind::Plain).unwrap();
    assert_eq!(got.len(), texts.len());
    let (mut worst_cos, mut worst_abs) = (1f64, 0f64);
    for (k, text) in texts.iter().enumerate() {
        let (abs, cos) = compare(got.row(k), want.row(k));
        assert!(
            cos >= MIN_COS_BF16,
            "text {k} {text:?}: bf16 vs f32 cosine {cos}"
        );
        assert!(got.row(k).iter().all(|x| x.is_finite()));
        worst_cos = worst_cos.min(cos);
        worst_abs = worst_abs.max(abs);
    }
    // The mode really rounds: identical vectors would mean bf16 silently ran in f32.
    assert!(worst_abs > 1e-5, "bf16 equals f32 ({worst_abs:e})");
    eprintln!(
        "bf16 vs f32 over {} texts: min cosine {worst_cos:.6}, max abs {worst_abs:e}",
        texts.len()
    );
}

/// In f32, batch and single outputs differ by at most 1e-6 (padding changes only the
/// summation order of attention). Rounding to bf16 can turn such a 1e-7 difference into one
/// bf16 step (2⁻⁸ relative) of one activation, so the bar here is a cosine, far tighter than
/// the bf16-vs-f32 bar; a real batching bug (padding leaking into attention, rows mixed up)
/// moves vectors by far more.
const MIN_COS_BATCH: f64 = 0.99999;

#[test]
fn bf16_batch_output_equals_single_output() {
    let texts = parity_texts();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = bf16().embed(&texts, InputKind::Plain).unwrap();
    let (mut worst_cos, mut worst_abs, mut exact) = (1f64, 0f64, 0);
    for (k, t) in texts.iter().enumerate() {
        let one = bf16().embed(&[t], InputKind::Plain).unwrap();
        let (abs, cos) = compare(one.row(0), batch.row(k));
        assert!(
            cos >= MIN_COS_BATCH,
            "text {k}: batch vs single cosine {cos} (max abs {abs:e})"
        );
        worst_cos = worst_cos.min(cos);
        worst_abs = worst_abs.max(abs);
        exact += usize::from(abs <= 1e-6);
    }
    eprintln!(
        "bf16 batch vs single: min cosine {worst_cos:.8}, max abs {worst_abs:e}, \
         {exact}/{} within 1e-6",
        texts.len()
    );
}

#[test]
fn bf16_parallel_batches_equal_sequential_batches() {
    let texts = parity_texts();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let par = load(Precision::Bf16, Some(3))
        .embed(&texts, InputKind::Plain)
        .unwrap();
    let seq = bf16().embed(&texts, InputKind::Plain).unwrap();
    for k in 0..texts.len() {
        let (abs, _) = compare(par.row(k), seq.row(k));
        assert!(
            abs <= 1e-6,
            "text {k}: 3 threads vs caller's pool differ by {abs:e}"
        );
    }
}

fn int8() -> &'static BertEmbedder {
    static M: OnceLock<BertEmbedder> = OnceLock::new();
    M.get_or_init(|| load(Precision::Int8, None))
}

/// The bar of issue 22 for int8: every parity text (none of them a calibration text) within
/// cosine 0.999 of f32, on this CPU's int8 kernel (emulated where it has none).
#[test]
fn int8_is_close_to_f32_on_every_parity_text() {
    let texts = parity_texts();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let f32_model = load(Precision::F32, None);
    assert_eq!(int8().precision(), Precision::Int8);
    assert_eq!(int8().precision_choice().chosen, "int8");
    assert_eq!(int8().fingerprint(), f32_model.fingerprint());
    let want = f32_model.embed(&texts, InputKind::Plain).unwrap();
    let got = int8().embed(&texts, InputKind::Plain).unwrap();
    let (mut worst_cos, mut worst_abs) = (1f64, 0f64);
    for (k, text) in texts.iter().enumerate() {
        let (abs, cos) = compare(got.row(k), want.row(k));
        assert!(
            cos >= MIN_COS_BF16,
            "text {k} {text:?}: int8 vs f32 cosine {cos}"
        );
        worst_cos = worst_cos.min(cos);
        worst_abs = worst_abs.max(abs);
    }
    // int8 really quantises: it is further from f32 than bf16's rounding alone.
    assert!(worst_abs > 1e-4, "int8 equals f32 ({worst_abs:e})");
    eprintln!(
        "int8 ({}) vs f32 over {} texts: min cosine {worst_cos:.6}, max abs {worst_abs:e}",
        Precision::Int8.kernel(),
        texts.len()
    );
}

/// Batching and threads leave int8 vectors as they are: activations are quantised per token,
/// so a row never depends on the other rows of its batch.
#[test]
fn int8_batch_and_threads_do_not_change_vectors() {
    let texts = parity_texts();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let batch = int8().embed(&texts, InputKind::Plain).unwrap();
    let par = load(Precision::Int8, Some(3))
        .embed(&texts, InputKind::Plain)
        .unwrap();
    for (k, t) in texts.iter().enumerate().step_by(5) {
        let one = int8().embed(&[t], InputKind::Plain).unwrap();
        let (_, cos) = compare(one.row(0), batch.row(k));
        assert!(
            cos >= MIN_COS_BATCH,
            "text {k}: batch vs single cosine {cos}"
        );
    }
    for k in 0..texts.len() {
        let (abs, _) = compare(par.row(k), batch.row(k));
        assert!(
            abs <= 1e-5,
            "text {k}: 3 threads vs caller's pool differ by {abs:e}"
        );
    }
}

/// `auto` resolves to a concrete precision, reports what it measured, keeps the bound on the
/// parity texts, and a second load finds the choice in the cache.
#[test]
fn auto_chooses_a_precision_within_the_bound_and_caches_it() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("precision.json");
    let opts = |threads| EmbedderOptions {
        precision: Some(Precision::Auto),
        threads: Some(threads),
        batch_size: Some(32),
        ..Default::default()
    };
    // The variable is read by this test only (other tests ask for fixed precisions).
    std::env::set_var(sextant_embed::PRECISION_CACHE_ENV, &cache);
    let first = BertEmbedder::load(&model_dir("all-MiniLM-L6-v2"), opts(1)).unwrap();
    let choice = first.precision_choice().clone();
    assert_eq!(choice.requested, "auto");
    assert!(!choice.cached);
    assert_ne!(first.precision(), Precision::Auto);
    assert_eq!(first.precision().as_str(), choice.chosen);
    assert_eq!(choice.trials[0].precision, "f32");
    let chosen = choice
        .trials
        .iter()
        .find(|t| t.precision == choice.chosen)
        .unwrap();
    assert!(chosen.min_cosine >= sextant_embed::AUTO_MIN_COSINE);
    if choice.chosen != "f32" {
        assert!(chosen.seconds * sextant_embed::AUTO_MIN_SPEEDUP <= choice.trials[0].seconds);
    }
    assert!(cache.exists(), "the choice is cached");
    let second = BertEmbedder::load(&model_dir("all-MiniLM-L6-v2"), opts(1)).unwrap();
    assert!(second.precision_choice().cached);
    assert_eq!(second.precision(), first.precision());
    std::env::remove_var(sextant_embed::PRECISION_CACHE_ENV);
    let texts = parity_texts();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let want = load(Precision::F32, None)
        .embed(&texts, InputKind::Plain)
        .unwrap();
    let got = second.embed(&texts, InputKind::Plain).unwrap();
    for k in 0..texts.len() {
        let (_, cos) = compare(got.row(k), want.row(k));
        assert!(
            cos >= MIN_COS_BF16,
            "text {k}: auto ({}) cosine {cos}",
            choice.chosen
        );
    }
    eprintln!("auto on this CPU: {choice:?}");
}
