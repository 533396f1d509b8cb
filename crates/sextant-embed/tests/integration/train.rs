//! The training forward pass (issue 20): its gradients, by candle's autograd, against central
//! finite differences of the same loss, and against PyTorch's for the same model and batch
//! (`train_reference.json`, written by `scripts/train_reference.py`), with relative error at
//! most 1e-3 (in f64 both are near 1e-8).

use candle_core::{DType, Device, Tensor, Var};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sextant_embed::{mnrl_loss, Pooling, TrainableCrossEncoder, TrainableEncoder};

use crate::fixture;

const SCALE: f64 = 20.0;

fn model() -> TrainableEncoder {
    TrainableEncoder::load(&fixture("tiny-st"), DType::F64, Pooling::Mean).unwrap()
}

/// `[batch, seq]` ids, type ids and mask from rows of ids (padded with 0, mask 0 there).
fn batch(rows: &[Vec<u32>], types: Option<&[Vec<u32>]>) -> (Tensor, Tensor, Tensor) {
    let s = rows.iter().map(Vec::len).max().unwrap();
    let (mut ids, mut tys, mut mask) = (Vec::new(), Vec::new(), Vec::new());
    for (i, r) in rows.iter().enumerate() {
        for j in 0..s {
            ids.push(r.get(j).copied().unwrap_or(0));
            tys.push(types.and_then(|t| t[i].get(j).copied()).unwrap_or(0));
            mask.push(if j < r.len() { 1f64 } else { 0.0 });
        }
    }
    let b = rows.len();
    let d = &Device::Cpu;
    (
        Tensor::from_vec(ids, (b, s), d).unwrap(),
        Tensor::from_vec(tys, (b, s), d).unwrap(),
        Tensor::from_vec(mask, (b, s), d).unwrap(),
    )
}

type Batch = (Tensor, Tensor, Tensor);

fn loss(m: &TrainableEncoder, a: &Batch, p: &Batch) -> Tensor {
    let ea = m.forward(&a.0, &a.1, &a.2).unwrap();
    let ep = m.forward(&p.0, &p.1, &p.2).unwrap();
    mnrl_loss(&ea, &ep, None, SCALE).unwrap()
}

fn scalar(t: &Tensor) -> f64 {
    t.to_scalar::<f64>().unwrap()
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all().unwrap().to_vec1::<f64>().unwrap()
}

/// Sets element `i` of `var` to `value`.
fn set(var: &Var, i: usize, value: f64) {
    let mut v = values(var.as_tensor());
    v[i] = value;
    let t = Tensor::from_vec(v, var.shape(), &Device::Cpu).unwrap();
    var.set(&t).unwrap();
}

#[test]
fn gradients_match_central_finite_differences() {
    let m = model();
    let mut rng = SmallRng::seed_from_u64(20);
    // Random token ids (not 0, the padding id) in rows of uneven length: padding is masked.
    let mut rows = |n: usize| -> Vec<Vec<u32>> {
        (0..n)
            .map(|i| (0..5 + i % 3).map(|_| rng.gen_range(1..2_499)).collect())
            .collect()
    };
    let (a, p) = (rows(4), rows(4));
    let used: Vec<u32> = a.iter().chain(&p).flatten().copied().collect();
    let (a, p) = (batch(&a, None), batch(&p, None));
    let l = loss(&m, &a, &p);
    let grads = l.backward().unwrap();
    let (mut checked, mut worst) = (0, 0f64);
    for param in m.params() {
        let g = values(
            grads
                .get(param.var.as_tensor())
                .unwrap_or_else(|| panic!("{}: no gradient", param.name)),
        );
        let n = g.len();
        // Three entries of each weight; of the word embeddings, entries of used rows.
        let picks: Vec<usize> = (0..3)
            .map(|_| {
                if param.name == "embeddings.word_embeddings.weight" {
                    let hidden = param.var.dims()[1];
                    let row = used[rng.gen_range(0..used.len())] as usize;
                    row * hidden + rng.gen_range(0..hidden)
                } else {
                    rng.gen_range(0..n)
                }
            })
            .collect();
        let original = values(param.var.as_tensor());
        for i in picks {
            let eps = 1e-6 * original[i].abs().max(1.0);
            set(&param.var, i, original[i] + eps);
            let up = scalar(&loss(&m, &a, &p));
            set(&param.var, i, original[i] - eps);
            let down = scalar(&loss(&m, &a, &p));
            set(&param.var, i, original[i]);
            let numeric = (up - down) / (2.0 * eps);
            // Gradients below 1e-5 (the key biases' are 0: softmax ignores a shift shared by
            // every key) are compared absolutely, at 1e-8: the difference quotient's rounding
            // is about 1e-10 here.
            let err = (g[i] - numeric).abs() / g[i].abs().max(numeric.abs()).max(1e-5);
            assert!(
                err <= 1e-3,
                "{}[{i}]: autograd {} against finite difference {numeric} (relative error {err})",
                param.name,
                g[i]
            );
            worst = worst.max(err);
            checked += 1;
        }
    }
    eprintln!("{checked} entries, largest relative error against finite differences {worst:e}");
    // 2 layers × 16 tensors + 5 embedding tensors + 3 Dense tensors, 3 entries each.
    assert_eq!(checked, 3 * m.params().len());
    assert!(m.params().len() >= 40, "{} weights", m.params().len());
}

fn ids_of(v: &Value) -> Vec<Vec<u32>> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_u64().unwrap() as u32)
                .collect()
        })
        .collect()
}

/// A fixture side (`anchors` or `positives`) as a padded batch (its attention mask decides
/// the lengths).
fn fixture_batch(side: &Value) -> Batch {
    let ids = ids_of(&side["input_ids"]);
    let mask = ids_of(&side["attention_mask"]);
    let types = ids_of(&side["token_type_ids"]);
    let rows: Vec<Vec<u32>> = ids
        .iter()
        .zip(&mask)
        .map(|(r, m)| {
            r.iter()
                .zip(m)
                .filter(|(_, &m)| m == 1)
                .map(|(&i, _)| i)
                .collect()
        })
        .collect();
    batch(&rows, Some(&types))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// ‖a − b‖ / ‖b‖, with ‖b‖ at least 1e-9: a gradient that is 0 in exact arithmetic (the key
/// biases': softmax ignores a shift shared by every key) is rounding noise near 1e-17 on both
/// sides, compared absolutely.
fn relative(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let diff: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).powi(2))
        .sum::<f64>()
        .sqrt();
    let norm: f64 = b.iter().map(|y| y * y).sum::<f64>().sqrt();
    diff / norm.max(1e-9)
}

#[test]
fn loss_and_gradients_match_pytorch() {
    let text = std::fs::read_to_string(fixture("train_reference.json")).unwrap();
    let reference: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(reference["scale"].as_f64(), Some(SCALE));
    let m = model();
    let (a, p) = (
        fixture_batch(&reference["anchors"]),
        fixture_batch(&reference["positives"]),
    );
    let ea = m.forward(&a.0, &a.1, &a.2).unwrap();
    let want: Vec<f64> = reference["anchor_embeddings"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(floats)
        .collect();
    assert!(
        relative(&values(&ea), &want) <= 1e-6,
        "anchor embeddings differ"
    );
    let l = loss(&m, &a, &p);
    let want = reference["loss"].as_f64().unwrap();
    assert!(
        (scalar(&l) - want).abs() <= 1e-9 * want.abs().max(1.0),
        "loss {} against PyTorch's {want}",
        scalar(&l)
    );
    let grads = l.backward().unwrap();
    let expected = reference["gradients"].as_object().unwrap();
    let (mut compared, mut worst) = (0, 0f64);
    for param in m.params() {
        let want = expected
            .get(&param.name)
            .unwrap_or_else(|| panic!("{}: not in the reference", param.name));
        let got = values(grads.get(param.var.as_tensor()).unwrap());
        let shape: Vec<usize> = floats(&want["shape"]).iter().map(|&d| d as usize).collect();
        assert_eq!(shape, param.var.dims(), "{}", param.name);
        let (got, want_values) = match want.get("rows") {
            // Word embeddings: the reference keeps the rows of the batch's tokens.
            Some(rows) => {
                let hidden = shape[1];
                let rows: Vec<usize> = floats(rows).iter().map(|&r| r as usize).collect();
                let picked: Vec<f64> = rows
                    .iter()
                    .flat_map(|&r| got[r * hidden..(r + 1) * hidden].to_vec())
                    .collect();
                // Every other row has no gradient.
                let total: f64 = got.iter().map(|x| x * x).sum();
                let kept: f64 = picked.iter().map(|x| x * x).sum();
                assert!(
                    (total - kept).abs() <= 1e-12 * total.max(1.0),
                    "{}",
                    param.name
                );
                (picked, floats(&want["values"]))
            }
            None => (got, floats(&want["values"])),
        };
        let err = relative(&got, &want_values);
        assert!(
            err <= 1e-3,
            "{}: relative error {err} against PyTorch",
            param.name
        );
        worst = worst.max(err);
        compared += 1;
    }
    assert_eq!(
        compared,
        expected.len(),
        "every reference gradient compared"
    );
    eprintln!("{compared} gradients, largest relative error against PyTorch {worst:e}");
}

/// Pairs a tiny random model can learn: each anchor and its positive share one word no other
/// pair uses, around words every pair uses.
fn toy_pairs() -> Vec<(String, String)> {
    let words = [
        "cat", "bread", "river", "stock", "town", "mat", "bake", "flood", "market", "share",
        "recipe", "simple", "sharp", "lot", "today", "hit",
    ];
    words
        .iter()
        .map(|w| (format!("the {w} on a day"), format!("a day with the {w}")))
        .collect()
}

fn tokenized(
    tok: &sextant_embed::TextTokenizer,
    pairs: &[(String, String)],
) -> Vec<(sextant_embed::Encoded, sextant_embed::Encoded)> {
    pairs
        .iter()
        .map(|(a, p)| (tok.encode(a).unwrap(), tok.encode(p).unwrap()))
        .collect()
}

/// MNRL over all pairs at once, and the anchors' embeddings.
fn whole_loss(
    m: &TrainableEncoder,
    pairs: &[(sextant_embed::Encoded, sextant_embed::Encoded)],
) -> (f64, Vec<f32>) {
    let side = |first: bool| {
        let items: Vec<&sextant_embed::Encoded> = pairs
            .iter()
            .map(|(a, p)| if first { a } else { p })
            .collect();
        let b = sextant_embed::Batch::new(&items, 0, &Device::Cpu).unwrap();
        m.forward(&b.ids, &b.type_ids, &b.mask).unwrap()
    };
    let (a, p) = (side(true), side(false));
    let l = mnrl_loss(&a, &p, None, SCALE)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap();
    let v = a.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    (f64::from(l), v)
}

/// A run stopped after step 5 (`Flow::Stop`), its weights saved and its optimiser
/// checkpointed, then resumed from a model loaded from those weights, ends with exactly the
/// weights of the run that was never interrupted; the same for the cross-encoder's loop. A
/// checkpoint past the run's last step is refused.
#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    use sextant_embed::{Control, Flow, Optimiser, Step, TextTokenizer, TrainOptions};
    let dir = fixture("tiny-st");
    let tok = TextTokenizer::load(&dir.join("tokenizer.json"), 48).unwrap();
    let pairs = tokenized(&tok, &toy_pairs());
    let opts = TrainOptions {
        epochs: 3,
        batch: 4,
        lr: 2e-3,
        ..TrainOptions::default()
    };
    let weights = |m: &TrainableEncoder| -> Vec<Vec<f32>> {
        m.params()
            .iter()
            .map(|p| p.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
            .collect()
    };
    let whole = TrainableEncoder::load(&dir, DType::F32, Pooling::Mean).unwrap();
    let mut all = Vec::new();
    whole.fit(&pairs, None, 0, &opts, |s| all.push(*s)).unwrap();
    assert_eq!(all.len(), 12);

    let tmp = tempfile::tempdir().unwrap();
    let state = tmp.path().join("optimizer.safetensors");
    let first = TrainableEncoder::load(&dir, DType::F32, Pooling::Mean).unwrap();
    let mut seen: Vec<Step> = Vec::new();
    let mut stop_at_5 = |s: &Step, o: &Optimiser<'_>| {
        seen.push(*s);
        if s.step == 5 {
            o.save(&state)?;
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    };
    let control = Control {
        resume: None,
        after_step: &mut stop_at_5,
    };
    first
        .fit_controlled(&pairs, None, 0, &opts, control)
        .unwrap();
    assert_eq!(seen.len(), 5, "Flow::Stop ends the run");
    let saved = tmp.path().join("model");
    first.save(&dir, &saved).unwrap();

    let resumed = TrainableEncoder::load(&saved, DType::F32, Pooling::Mean).unwrap();
    let mut rest: Vec<Step> = Vec::new();
    let mut go_on = |s: &Step, _: &Optimiser<'_>| {
        rest.push(*s);
        Ok(Flow::Continue)
    };
    let control = Control {
        resume: Some(&state),
        after_step: &mut go_on,
    };
    resumed
        .fit_controlled(&pairs, None, 0, &opts, control)
        .unwrap();
    assert_eq!(rest.first().map(|s| s.step), Some(6));
    assert_eq!(rest.len(), 7);
    // The same learning rates and losses as the uninterrupted run's last 7 steps.
    for (a, b) in rest.iter().zip(&all[5..]) {
        assert_eq!(a.lr, b.lr);
        assert!((a.loss - b.loss).abs() < 1e-5, "{a:?} {b:?}");
    }
    for (a, b) in weights(&resumed).iter().zip(weights(&whole)) {
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        assert!(worst < 1e-5, "weights differ by {worst}");
    }

    // A checkpoint taken after the last step of a shorter run leaves nothing to do.
    let short = TrainOptions { epochs: 1, ..opts };
    let again = TrainableEncoder::load(&saved, DType::F32, Pooling::Mean).unwrap();
    let mut never = |_: &Step, _: &Optimiser<'_>| Ok(Flow::Continue);
    let err = again
        .fit_controlled(
            &pairs,
            None,
            0,
            &short,
            Control {
                resume: Some(&state),
                after_step: &mut never,
            },
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("after step 5 of this run's 4"), "{err}");
}

/// Mixed precision (the linear products on the bf16 kernel) trains as f32 does within bf16's
/// rounding: the same first loss to 1%, and the loss falls as far. Where the CPU has no
/// native bf16 kernel it is refused by name instead.
#[test]
fn mixed_precision_trains_like_f32() {
    use sextant_embed::{mixed_precision_available, TextTokenizer, TrainOptions};
    let dir = fixture("tiny-st");
    let tok = TextTokenizer::load(&dir.join("tokenizer.json"), 48).unwrap();
    let pairs = tokenized(&tok, &toy_pairs());
    let mut mixed = TrainableEncoder::load(&dir, DType::F32, Pooling::Mean).unwrap();
    if !mixed_precision_available() {
        let err = mixed.set_mixed_precision(true).unwrap_err().to_string();
        assert!(err.contains("AMX or AVX512-BF16"), "{err}");
        return;
    }
    mixed.set_mixed_precision(true).unwrap();
    let mut f64_model = TrainableEncoder::load(&dir, DType::F64, Pooling::Mean).unwrap();
    assert!(f64_model.set_mixed_precision(true).is_err());
    let plain = TrainableEncoder::load(&dir, DType::F32, Pooling::Mean).unwrap();
    let opts = TrainOptions {
        epochs: 6,
        batch: 8,
        lr: 2e-3,
        ..TrainOptions::default()
    };
    let (mut a, mut b) = (Vec::new(), Vec::new());
    mixed
        .fit(&pairs, None, 0, &opts, |s| a.push(s.loss))
        .unwrap();
    plain
        .fit(&pairs, None, 0, &opts, |s| b.push(s.loss))
        .unwrap();
    assert!((a[0] - b[0]).abs() < 0.01 * b[0], "{a:?} {b:?}");
    assert!(a[0] != b[0], "bf16 rounding changes the loss: {a:?}");
    let (first, last) = (a[0], a[a.len() - 1]);
    assert!(last < 0.7 * first, "{a:?}");
    assert!((last - b[b.len() - 1]).abs() < 0.1 * b[0], "{a:?} {b:?}");
}

#[test]
fn fitting_lowers_the_loss_and_the_saved_model_embeds_as_trained() {
    use sextant_embed::{
        BertEmbedder, Embedder, EmbedderOptions, InputKind, Precision, TextTokenizer, TrainOptions,
    };
    let dir = fixture("tiny-st");
    let m = TrainableEncoder::load(&dir, DType::F32, Pooling::Mean).unwrap();
    let tok = TextTokenizer::load(&dir.join("tokenizer.json"), 48).unwrap();
    let texts = toy_pairs();
    let pairs = tokenized(&tok, &texts);
    let (before, _) = whole_loss(&m, &pairs);
    let opts = TrainOptions {
        epochs: 6,
        batch: 8,
        lr: 2e-3,
        ..TrainOptions::default()
    };
    let mut steps = Vec::new();
    m.fit(&pairs, None, 0, &opts, |s| steps.push(*s)).unwrap();
    // 16 pairs in batches of 8: 2 steps an epoch; warm-up 10% of 12 is 2 steps.
    assert_eq!(steps.len(), 12);
    assert!(steps.iter().all(|s| s.total == 12 && s.loss.is_finite()));
    assert!((steps[1].lr - 2e-3).abs() < 1e-12 && steps[11].lr < steps[2].lr);
    let (after, trained) = whole_loss(&m, &pairs);
    eprintln!("loss {before} before training, {after} after");
    assert!(
        after < 0.7 * before,
        "loss {before} before training, {after} after"
    );

    // Saved, the model loads in the inference path and embeds as the training pass does.
    let out = tempfile::tempdir().unwrap();
    m.save(&dir, out.path()).unwrap();
    let options = || EmbedderOptions {
        precision: Some(Precision::F32),
        ..EmbedderOptions::default()
    };
    let saved = BertEmbedder::load(&out.path().to_string_lossy(), options()).unwrap();
    let anchors: Vec<&str> = texts.iter().map(|(a, _)| a.as_str()).collect();
    let got = saved.embed(&anchors, InputKind::Plain).unwrap();
    let diff = got
        .as_slice()
        .iter()
        .zip(&trained)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        diff < 1e-5,
        "saved model embeds {diff} away from the trained pass"
    );
    let original = BertEmbedder::load(&dir.to_string_lossy(), options()).unwrap();
    let moved = original
        .embed(&anchors, InputKind::Plain)
        .unwrap()
        .as_slice()
        .iter()
        .zip(&trained)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        moved > 1e-3,
        "training did not change the embeddings ({moved})"
    );
    // Every file of the original is there; the weights files are the trained ones.
    for name in [
        "config.json",
        "tokenizer.json",
        "modules.json",
        "1_Pooling/config.json",
    ] {
        assert!(out.path().join(name).is_file(), "{name} missing");
    }
}

/// The trainable cross-encoder is `BertForSequenceClassification`: on the tiny cross-encoder
/// fixture its logits are the inference reranker's scores.
#[test]
fn cross_encoder_forward_matches_the_reranker() {
    use sextant_embed::{CrossEncoder, Reranker, RerankerOptions, TextTokenizer};
    let dir = fixture("tiny-cross-encoder");
    let ce = TrainableCrossEncoder::load(&dir, DType::F64, 1).unwrap();
    let tok = TextTokenizer::load(&dir.join("tokenizer.json"), 64).unwrap();
    let pairs = [
        ("what is a cat", "a small domestic animal"),
        ("river flood", "water over the banks of a river after rain"),
        ("stock market", "shares are traded there"),
    ];
    let encoded: Vec<_> = pairs
        .iter()
        .map(|(q, d)| tok.encode_pair(q, d).unwrap())
        .collect();
    let b =
        sextant_embed::Batch::new(&encoded.iter().collect::<Vec<_>>(), 0, &Device::Cpu).unwrap();
    let ours = values(&ce.forward(&b.ids, &b.type_ids, &b.mask).unwrap());
    let reranker = CrossEncoder::load(&dir.to_string_lossy(), RerankerOptions::default()).unwrap();
    let theirs = reranker.score_pairs(&pairs).unwrap();
    for (a, b) in ours.iter().zip(&theirs) {
        assert!((a - f64::from(*b)).abs() < 1e-4, "{ours:?} vs {theirs:?}");
    }
}

/// Gradients of the cross-encoder's binary cross-entropy, against central finite
/// differences, for the classifier, the pooler and an encoder weight.
#[test]
fn cross_encoder_gradients_match_finite_differences() {
    use sextant_embed::{bce_with_logits, TextTokenizer};
    let dir = fixture("tiny-st");
    let ce = TrainableCrossEncoder::load(&dir, DType::F64, 3).unwrap();
    let tok = TextTokenizer::load(&dir.join("tokenizer.json"), 48).unwrap();
    let encoded: Vec<_> = [("the cat", "a cat sat"), ("the river", "a market day")]
        .iter()
        .map(|(q, d)| tok.encode_pair(q, d).unwrap())
        .collect();
    let b =
        sextant_embed::Batch::new(&encoded.iter().collect::<Vec<_>>(), 0, &Device::Cpu).unwrap();
    let labels = Tensor::new(&[1f64, 0.0], &Device::Cpu).unwrap();
    let loss = || {
        let logits = ce.forward(&b.ids, &b.type_ids, &b.mask).unwrap();
        bce_with_logits(&logits, &labels).unwrap()
    };
    let grads = loss().backward().unwrap();
    let names = [
        "classifier.weight",
        "classifier.bias",
        "pooler.dense.weight",
        "encoder.layer.0.attention.self.query.weight",
    ];
    for name in names {
        let p = ce.params().iter().find(|p| p.name == name).unwrap();
        let g = values(grads.get(p.var.as_tensor()).unwrap());
        for i in [0, g.len() / 2, g.len() - 1] {
            let x = values(p.var.as_tensor())[i];
            let h = 1e-5;
            set(&p.var, i, x + h);
            let up = scalar(&loss());
            set(&p.var, i, x - h);
            let down = scalar(&loss());
            set(&p.var, i, x);
            let fd = (up - down) / (2.0 * h);
            let rel = (fd - g[i]).abs() / fd.abs().max(g[i].abs()).max(1e-6);
            assert!(rel < 1e-3, "{name}[{i}]: autograd {} vs {fd}", g[i]);
        }
    }
}

/// Trained on pairs it can learn, the cross-encoder's loss falls, and the saved directory
/// reranks in the inference path with the trained scores.
#[test]
fn cross_encoder_trains_and_saves_a_reranker() {
    use sextant_embed::{
        bce_with_logits, CrossEncoder, Reranker, RerankerOptions, TextTokenizer, TrainOptions,
    };
    let dir = fixture("tiny-st");
    let ce = TrainableCrossEncoder::load(&dir, DType::F32, 5).unwrap();
    let tok = TextTokenizer::load(&dir.join("tokenizer.json"), 48).unwrap();
    let texts = toy_pairs();
    // Each group: the query with its own passage (relevant) and the next pair's (not).
    let groups: Vec<Vec<(sextant_embed::Encoded, f64)>> = (0..texts.len())
        .map(|i| {
            let (q, d) = &texts[i];
            let other = &texts[(i + 1) % texts.len()].1;
            vec![
                (tok.encode_pair(q, d).unwrap(), 1.0),
                (tok.encode_pair(q, other).unwrap(), 0.0),
            ]
        })
        .collect();
    let all: Vec<&sextant_embed::Encoded> = groups.iter().flatten().map(|(e, _)| e).collect();
    let labels: Vec<f32> = groups.iter().flatten().map(|(_, y)| *y as f32).collect();
    let b = sextant_embed::Batch::new(&all, 0, &Device::Cpu).unwrap();
    let label_t = Tensor::new(labels.as_slice(), &Device::Cpu).unwrap();
    let whole = |ce: &TrainableCrossEncoder| {
        let logits = ce.forward(&b.ids, &b.type_ids, &b.mask).unwrap();
        let l = bce_with_logits(&logits, &label_t).unwrap();
        (
            f64::from(l.to_scalar::<f32>().unwrap()),
            logits.to_vec1::<f32>().unwrap(),
        )
    };
    let (before, _) = whole(&ce);
    let opts = TrainOptions {
        epochs: 30,
        batch: 8,
        lr: 5e-3,
        ..TrainOptions::default()
    };
    let mut steps = 0;
    ce.fit(&groups, 0, &opts, |_| steps += 1).unwrap();
    assert_eq!(steps, 60);
    let (after, trained) = whole(&ce);
    assert!(after < 0.5 * before, "loss {before} before, {after} after");
    let out = tempfile::tempdir().unwrap();
    ce.save(&dir, out.path(), Some(40)).unwrap();
    let tc: Value = serde_json::from_str(
        &std::fs::read_to_string(out.path().join("tokenizer_config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(tc["model_max_length"], 40);
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("config.json")).unwrap())
            .unwrap();
    assert_eq!(config["architectures"][0], "BertForSequenceClassification");
    assert!(!out.path().join("modules.json").exists());
    let reranker =
        CrossEncoder::load(&out.path().to_string_lossy(), RerankerOptions::default()).unwrap();
    let pairs: Vec<(&str, &str)> = texts
        .iter()
        .enumerate()
        .flat_map(|(i, (q, d))| {
            [
                (q.as_str(), d.as_str()),
                (q.as_str(), texts[(i + 1) % texts.len()].1.as_str()),
            ]
        })
        .collect();
    let scores = reranker.score_pairs(&pairs).unwrap();
    let diff = scores
        .iter()
        .zip(&trained)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max);
    assert!(
        diff < 1e-4,
        "saved reranker scores {diff} away from training"
    );
    // Labels outside [0, 1] are refused.
    let bad = vec![vec![(tok.encode_pair("a", "b").unwrap(), 2.0)]; 2];
    let err = ce.fit(&bad, 0, &opts, |_| {}).unwrap_err().to_string();
    assert!(err.contains("label 2"), "{err}");
}

/// The listwise loss is the softmax cross-entropy of each group (written out by hand here),
/// averaged over groups; its gradient with respect to the logits is `softmax(z) − y/Σy`
/// within each group; groups without a relevant pair or of the wrong sizes are refused.
#[test]
fn listwise_loss_is_each_groups_softmax_cross_entropy() {
    let z = [2.0, -1.0, 0.5, 0.3, 0.3, 1.0, -2.0];
    let y = [1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0];
    let sizes = [3, 4];
    let logits = Var::from_vec(z.to_vec(), z.len(), &Device::Cpu).unwrap();
    let loss = TrainableCrossEncoder::listwise_loss(logits.as_tensor(), &y, &sizes).unwrap();
    let lse = |g: &[f64]| g.iter().map(|v| v.exp()).sum::<f64>().ln();
    let first = lse(&z[..3]) - z[0];
    let second = lse(&z[3..]) - (z[4] + z[5]) / 2.0;
    let expected = (first + second) / 2.0;
    assert!(
        (scalar(&loss) - expected).abs() < 1e-12,
        "{} vs {expected}",
        scalar(&loss)
    );
    let grads = loss.backward().unwrap();
    let g = values(grads.get(logits.as_tensor()).unwrap());
    let mut start = 0;
    for &len in &sizes {
        let group = &z[start..start + len];
        let mass: f64 = y[start..start + len].iter().sum();
        let norm: f64 = group.iter().map(|v| v.exp()).sum();
        for i in 0..len {
            let want = (group[i].exp() / norm - y[start + i] / mass) / sizes.len() as f64;
            assert!(
                (g[start + i] - want).abs() < 1e-12,
                "{i}: {} vs {want}",
                g[start + i]
            );
        }
        start += len;
    }
    // Shifting a group's logits by a constant changes nothing (the loss ranks within groups).
    let shifted: Vec<f64> = z
        .iter()
        .enumerate()
        .map(|(i, v)| v + if i < 3 { 50.0 } else { -7.0 })
        .collect();
    let t = Tensor::from_vec(shifted, z.len(), &Device::Cpu).unwrap();
    let again = scalar(&TrainableCrossEncoder::listwise_loss(&t, &y, &sizes).unwrap());
    assert!((again - expected).abs() < 1e-9, "{again} vs {expected}");
    let t = Tensor::from_vec(z.to_vec(), z.len(), &Device::Cpu).unwrap();
    let no_positive = [0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0];
    let err = TrainableCrossEncoder::listwise_loss(&t, &no_positive, &sizes).unwrap_err();
    assert!(err.to_string().contains("no relevant pair"), "{err}");
    assert!(TrainableCrossEncoder::listwise_loss(&t, &y, &[3, 3]).is_err());
}

/// Gradients of the cross-encoder's listwise loss through the whole model, against central
/// finite differences, for the classifier, the pooler and an encoder weight.
#[test]
fn cross_encoder_listwise_gradients_match_finite_differences() {
    use sextant_embed::TextTokenizer;
    let dir = fixture("tiny-st");
    let ce = TrainableCrossEncoder::load(&dir, DType::F64, 3).unwrap();
    let tok = TextTokenizer::load(&dir.join("tokenizer.json"), 48).unwrap();
    let texts = [
        ("the cat", "a cat sat"),
        ("the cat", "a market day"),
        ("the cat", "the river rose"),
        ("the river", "a river flood"),
        ("the river", "a cat sat"),
    ];
    let encoded: Vec<_> = texts
        .iter()
        .map(|(q, d)| tok.encode_pair(q, d).unwrap())
        .collect();
    let b =
        sextant_embed::Batch::new(&encoded.iter().collect::<Vec<_>>(), 0, &Device::Cpu).unwrap();
    let labels = [1.0, 0.0, 0.0, 1.0, 0.0];
    let loss = || {
        let logits = ce.forward(&b.ids, &b.type_ids, &b.mask).unwrap();
        TrainableCrossEncoder::listwise_loss(&logits, &labels, &[3, 2]).unwrap()
    };
    let grads = loss().backward().unwrap();
    for name in [
        "classifier.weight",
        "pooler.dense.weight",
        "pooler.dense.bias",
        "encoder.layer.1.output.dense.weight",
    ] {
        let p = ce.params().iter().find(|p| p.name == name).unwrap();
        let g = values(grads.get(p.var.as_tensor()).unwrap());
        for i in [0, g.len() / 3, g.len() - 1] {
            let x = values(p.var.as_tensor())[i];
            let h = 1e-5;
            set(&p.var, i, x + h);
            let up = scalar(&loss());
            set(&p.var, i, x - h);
            let down = scalar(&loss());
            set(&p.var, i, x);
            let fd = (up - down) / (2.0 * h);
            let rel = (fd - g[i]).abs() / fd.abs().max(g[i].abs()).max(1e-6);
            assert!(rel < 1e-3, "{name}[{i}]: autograd {} vs {fd}", g[i]);
        }
    }
    // The classifier's bias moves every logit of a group alike: no listwise gradient.
    let p = ce
        .params()
        .iter()
        .find(|p| p.name == "classifier.bias")
        .unwrap();
    let g = values(grads.get(p.var.as_tensor()).unwrap());
    assert!(g[0].abs() < 1e-12, "bias gradient {}", g[0]);
}

/// Trained listwise on a small separable problem (each query's own passage among three
/// others), the cross-encoder ranks every query's own passage first, which it did not before;
/// groups it cannot learn from are refused.
#[test]
fn cross_encoder_trained_listwise_ranks_the_relevant_passage_first() {
    use sextant_embed::{TextTokenizer, TrainOptions};
    let dir = fixture("tiny-st");
    let ce = TrainableCrossEncoder::load(&dir, DType::F32, 5).unwrap();
    let tok = TextTokenizer::load(&dir.join("tokenizer.json"), 48).unwrap();
    // Words that are one token each in the fixture's vocabulary (some of toy_pairs' split
    // into pieces that differ only in a letter, e.g. `c ##a ##t` and `m ##a ##t`).
    let words = [
        "school",
        "world",
        "city",
        "state",
        "people",
        "university",
        "team",
        "film",
        "river",
        "town",
        "head",
        "year",
        "time",
        "part",
        "national",
        "american",
    ];
    let texts: Vec<(String, String)> = words
        .iter()
        .map(|w| (format!("the {w} on a day"), format!("a day with the {w}")))
        .collect();
    let n = texts.len();
    let groups: Vec<Vec<(sextant_embed::Encoded, f64)>> = (0..n)
        .map(|i| {
            let (q, d) = &texts[i];
            let mut g = vec![(tok.encode_pair(q, d).unwrap(), 1.0)];
            for k in [1, 5, 11] {
                g.push((tok.encode_pair(q, &texts[(i + k) % n].1).unwrap(), 0.0));
            }
            g
        })
        .collect();
    let firsts = |ce: &TrainableCrossEncoder| -> usize {
        groups
            .iter()
            .filter(|g| {
                let items: Vec<&sextant_embed::Encoded> = g.iter().map(|(e, _)| e).collect();
                let b = sextant_embed::Batch::new(&items, 0, &Device::Cpu).unwrap();
                let s = ce
                    .forward(&b.ids, &b.type_ids, &b.mask)
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                s[1..].iter().all(|&x| x < s[0])
            })
            .count()
    };
    let before = firsts(&ce);
    assert!(
        before < n / 2,
        "{before} of {n} already first before training"
    );
    let opts = TrainOptions {
        epochs: 40,
        batch: 4,
        lr: 2e-3,
        ..TrainOptions::default()
    };
    let mut losses = Vec::new();
    ce.fit_listwise(&groups, 0, &opts, |s| losses.push(s.loss))
        .unwrap();
    assert_eq!(losses.len(), 160);
    assert_eq!(firsts(&ce), n, "losses {:?}", &losses[losses.len() - 8..]);
    let lone = vec![vec![(tok.encode_pair("a", "b").unwrap(), 1.0)]; 2];
    let err = ce.fit_listwise(&lone, 0, &opts, |_| {}).unwrap_err();
    assert!(err.to_string().contains("listwise"), "{err}");
    let none_relevant = vec![
        vec![
            (tok.encode_pair("a", "b").unwrap(), 0.0),
            (tok.encode_pair("a", "c").unwrap(), 0.0),
        ];
        2
    ];
    assert!(ce.fit_listwise(&none_relevant, 0, &opts, |_| {}).is_err());
}

/// Scoring pairs in length buckets gives the logits of one padded batch, in the pairs' order,
/// with the same gradients.
#[test]
fn cross_encoder_length_buckets_score_as_one_batch() {
    use sextant_embed::TextTokenizer;
    let dir = fixture("tiny-st");
    let ce = TrainableCrossEncoder::load(&dir, DType::F64, 9).unwrap();
    let tok = TextTokenizer::load(&dir.join("tokenizer.json"), 48).unwrap();
    let texts = toy_pairs();
    // 40 pairs of lengths from 7 to over 30 tokens, in no length order: three buckets.
    let encoded: Vec<_> = (0..40)
        .map(|i| {
            let (q, d) = &texts[i % texts.len()];
            let long = d.repeat(1 + (i * 7) % 5);
            tok.encode_pair(q, &long).unwrap()
        })
        .collect();
    let refs: Vec<&sextant_embed::Encoded> = encoded.iter().collect();
    let b = sextant_embed::Batch::new(&refs, 0, &Device::Cpu).unwrap();
    let whole = ce.forward(&b.ids, &b.type_ids, &b.mask).unwrap();
    let bucketed = ce.forward_pairs(&refs, 0).unwrap();
    let (w, k) = (values(&whole), values(&bucketed));
    assert_eq!(w.len(), 40);
    for (a, b) in w.iter().zip(&k) {
        assert!((a - b).abs() < 1e-9, "{w:?} vs {k:?}");
    }
    let weights: Vec<f64> = (0..40).map(|i| (i as f64 * 0.37).sin()).collect();
    let weights = Tensor::from_vec(weights, 40, &Device::Cpu).unwrap();
    let gw = (whole * &weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    let gk = (bucketed * &weights)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for p in ce.params() {
        let (a, b) = (gw.get(p.var.as_tensor()), gk.get(p.var.as_tensor()));
        let (a, b) = (values(a.unwrap()), values(b.unwrap()));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f64, f64::max);
        assert!(worst < 1e-9, "{}: gradients differ by {worst}", p.name);
    }
}
