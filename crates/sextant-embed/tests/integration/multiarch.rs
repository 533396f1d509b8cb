//! The tiny random XLM-RoBERTa and RoBERTa sentence-transformers models (committed fixtures
//! `tiny-xlmr`, `tiny-roberta`) against transformers and sentence-transformers: token ids
//! (SentencePiece Unigram and byte-level BPE tokenizers, `<s>`/`</s>` from the post-processor),
//! RoBERTa position ids (a literal `<pad>` in the text included), raw hidden states, and
//! sentence embeddings without a prompt and with the e5-style / bge-style query and passage
//! prompts of `config_sentence_transformers.json`; bf16 within the bf16 bar; a RoBERTa-family
//! classification head.

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use sextant_embed::{
    BatchParallelism, BertConfig, BertEmbedder, BertModel, CrossEncoder, EmbedError, Embedder,
    EmbedderOptions, EncoderFamily, InputKind, ModelKind, Pooling, Precision, Reranker,
    RerankerOptions, SpladeEncoder, SpladeOptions, TextEmbedder, TextTokenizer, Weights,
};

use crate::{compare, fixture, floats, ints, load_json};

/// The MiniLM parity bars (`minilm.rs`).
const MAX_ABS: f64 = 1e-5;
const MIN_COS: f64 = 0.99999;
/// The bf16 bar of `precision.rs`.
const MIN_COS_BF16: f64 = 0.999;

struct Fixture {
    dir: &'static str,
    json: &'static str,
    family_type: &'static str,
    pooling: Pooling,
}

const XLMR: Fixture = Fixture {
    dir: "tiny-xlmr",
    json: "tiny_xlmr_reference.json",
    family_type: "xlm-roberta",
    pooling: Pooling::Mean,
};
const ROBERTA: Fixture = Fixture {
    dir: "tiny-roberta",
    json: "tiny_roberta_reference.json",
    family_type: "roberta",
    pooling: Pooling::Cls,
};

fn spec(f: &Fixture) -> String {
    fixture(f.dir).to_string_lossy().into_owned()
}

fn load(f: &Fixture, precision: Precision, batch_size: usize) -> BertEmbedder {
    let m = TextEmbedder::load(
        &spec(f),
        EmbedderOptions {
            batch_size: Some(batch_size),
            precision: Some(precision),
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("load {}: {e}", f.dir));
    assert_eq!(m.kind(), ModelKind::Transformer);
    match m {
        TextEmbedder::Transformer(m) => m,
        other => unreachable!("{:?}", other.kind()),
    }
}

fn texts(j: &Value) -> Vec<&str> {
    j["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["text"].as_str().unwrap())
        .collect()
}

/// The raw encoder, for hidden states and position ids.
fn encoder(f: &Fixture) -> (BertModel, TextTokenizer) {
    let dir = fixture(f.dir);
    let cfg = BertConfig::load(&dir.join("config.json")).unwrap();
    let w = Weights::load(&dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let model = BertModel::load(&cfg, &w, &Device::Cpu).unwrap();
    let tok = TextTokenizer::load(&dir.join("tokenizer.json"), 48).unwrap();
    (model, tok)
}

fn check_tokens(f: &Fixture) {
    let j = load_json(f.json);
    let m = load(f, Precision::F32, 4);
    assert_eq!(j["model_type"], f.family_type);
    assert_eq!(m.config().family(), EncoderFamily::Roberta);
    assert_eq!(
        m.max_seq_length(),
        j["max_seq_length"].as_u64().unwrap() as usize
    );
    assert_eq!(m.pooling(), f.pooling);
    assert!(m.normalize());
    for item in j["items"].as_array().unwrap() {
        let t = item["text"].as_str().unwrap();
        let e = m.tokenizer().encode(t).unwrap();
        assert_eq!(e.ids, ints(&item["input_ids"]), "{}: ids of {t:?}", f.dir);
        assert_eq!(e.truncated, item["truncated"].as_bool().unwrap(), "{t:?}");
        for (kind, key) in [
            (InputKind::Query, "input_ids_query"),
            (InputKind::Passage, "input_ids_passage"),
        ] {
            let e = m.tokenizer().encode(&m.prefixed(t, kind)).unwrap();
            assert_eq!(e.ids, ints(&item[key]), "{}: {key} of {t:?}", f.dir);
        }
    }
}

#[test]
fn xlmr_tokens_match_the_reference_tokenizer() {
    check_tokens(&XLMR);
}

#[test]
fn roberta_tokens_match_the_reference_tokenizer() {
    check_tokens(&ROBERTA);
}

fn check_positions(f: &Fixture) {
    let j = load_json(f.json);
    let (model, _) = encoder(f);
    let items = j["items"].as_array().unwrap();
    for item in items {
        let ids = ints(&item["input_ids"]);
        let t = Tensor::from_vec(ids.clone(), (1, ids.len()), &Device::Cpu).unwrap();
        let pos = model.position_ids(&t).unwrap().to_vec2::<u32>().unwrap();
        assert_eq!(pos[0], ints(&item["position_ids"]), "{}: {ids:?}", f.dir);
    }
    // A padded row: its padding takes position pad_token_id, its tokens count from 2.
    let t = Tensor::new(&[[0u32, 7, 2], [0, 2, 1]], &Device::Cpu).unwrap();
    let pos = model.position_ids(&t).unwrap().to_vec2::<u32>().unwrap();
    assert_eq!(pos, [[2, 3, 4], [2, 3, 1]]);
}

/// Regression guard for the RoBERTa embeddings: positions start at `pad_token_id + 1` and a
/// literal `<pad>` in the text is not counted (the fixture has one).
#[test]
fn roberta_family_position_ids_match_transformers() {
    for f in [&XLMR, &ROBERTA] {
        check_positions(f);
    }
    let j = load_json(XLMR.json);
    let literal = j["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["text"].as_str().unwrap().contains("<pad>"))
        .unwrap();
    assert!(ints(&literal["input_ids"]).contains(&1));
    assert!(ints(&literal["position_ids"]).contains(&1));
}

/// `[tokens, hidden]` of one unpadded input, as f32 rows.
fn hidden_rows(model: &BertModel, ids: &[u32]) -> Vec<Vec<f32>> {
    let n = ids.len();
    let t = Tensor::from_vec(ids.to_vec(), (1, n), &Device::Cpu).unwrap();
    let types = t.zeros_like().unwrap();
    let mask = Tensor::ones((1, n), DType::F32, &Device::Cpu).unwrap();
    model
        .forward(&t, &types, &mask)
        .unwrap()
        .get(0)
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap()
}

fn check_hidden_states(f: &Fixture) {
    let j = load_json(f.json);
    let (model, _) = encoder(f);
    let bf16 = model.with_precision(Precision::Bf16).unwrap();
    let (mut worst_abs, mut worst_cos, mut worst_bf16) = (0f64, 1f64, 1f64);
    for h in j["last_hidden_state"].as_array().unwrap() {
        let k = h["text_index"].as_u64().unwrap() as usize;
        let ids = ints(&j["items"][k]["input_ids"]);
        let want = h["values"].as_array().unwrap();
        let got = hidden_rows(&model, &ids);
        let got_bf16 = hidden_rows(&bf16, &ids);
        assert_eq!(got.len(), want.len());
        for (row, (g, w)) in got.iter().zip(want).enumerate() {
            let (abs, cos) = compare(g, &floats(w));
            assert!(
                abs <= MAX_ABS && cos >= MIN_COS,
                "{}: text {k} token {row}: max abs diff {abs:e}, cosine {cos}",
                f.dir
            );
            worst_abs = worst_abs.max(abs);
            worst_cos = worst_cos.min(cos);
            let (_, cos) = compare(&got_bf16[row], &floats(w));
            assert!(cos >= MIN_COS_BF16, "{}: bf16 token {row}: {cos}", f.dir);
            worst_bf16 = worst_bf16.min(cos);
        }
    }
    eprintln!(
        "{} last_hidden_state: max abs diff {worst_abs:e}, 1 - min cosine {:e}; \
         bf16 min cosine {worst_bf16:.6}",
        f.dir,
        1.0 - worst_cos
    );
}

#[test]
fn xlmr_hidden_states_match_transformers() {
    check_hidden_states(&XLMR);
}

#[test]
fn roberta_hidden_states_match_transformers() {
    check_hidden_states(&ROBERTA);
}

/// Sentence embeddings of every text without a prompt, as queries and as passages, against
/// the reference within `(max_abs, min_cos)`; returns the worst `(abs, cos)`.
fn check_embeddings(m: &BertEmbedder, f: &Fixture, max_abs: f64, min_cos: f64) -> (f64, f64) {
    let j = load_json(f.json);
    let texts = texts(&j);
    let long = j["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["truncated"].as_bool().unwrap())
        .count();
    assert!(
        long > 0,
        "the fixture has a text longer than max_seq_length"
    );
    let (mut worst_abs, mut worst_cos) = (0f64, 1f64);
    for (kind, key) in [
        (InputKind::Plain, "embedding"),
        (InputKind::Query, "embedding_query"),
        (InputKind::Passage, "embedding_passage"),
    ] {
        let out = m.embed(&texts, kind).unwrap();
        assert_eq!(out.len(), texts.len());
        if kind == InputKind::Plain {
            assert_eq!(out.truncated, long);
        } else {
            // A prompt can only push more texts past the limit.
            assert!(out.truncated >= long, "{key}");
        }
        for (k, item) in j["items"].as_array().unwrap().iter().enumerate() {
            let (abs, cos) = compare(out.row(k), &floats(&item[key]));
            assert!(
                abs <= max_abs && cos >= min_cos,
                "{} {key}, text {k} ({:?}): max abs diff {abs:e}, cosine {cos}",
                f.dir,
                texts[k]
            );
            worst_abs = worst_abs.max(abs);
            worst_cos = worst_cos.min(cos);
        }
    }
    (worst_abs, worst_cos)
}

fn check_sentence_embeddings(f: &Fixture) {
    let m = load(f, Precision::F32, 4);
    assert_eq!(m.dim(), 32);
    let (abs, cos) = check_embeddings(&m, f, MAX_ABS, MIN_COS);
    eprintln!(
        "{} f32 embeddings (plain, query, passage): max abs diff {abs:e}, 1 - min cosine {:e}",
        f.dir,
        1.0 - cos
    );
    let bf16 = load(f, Precision::Bf16, 4);
    assert_eq!(bf16.fingerprint(), m.fingerprint());
    let (abs, cos) = check_embeddings(&bf16, f, 1.0, MIN_COS_BF16);
    eprintln!(
        "{} bf16 embeddings: max abs diff {abs:e}, min cosine {cos:.6}",
        f.dir
    );
}

#[test]
fn xlmr_embeddings_match_sentence_transformers_with_and_without_prompts() {
    check_sentence_embeddings(&XLMR);
}

#[test]
fn roberta_embeddings_match_sentence_transformers_with_and_without_prompts() {
    check_sentence_embeddings(&ROBERTA);
}

/// Padding with RoBERTa positions must not move a vector: batches (sorted by length, padded)
/// equal one text at a time, and parallel batches equal sequential ones.
#[test]
fn roberta_family_batch_output_equals_single_output() {
    for f in [&XLMR, &ROBERTA] {
        let j = load_json(f.json);
        let texts = texts(&j);
        let m = load(f, Precision::F32, 5);
        let batch = m.embed(&texts, InputKind::Query).unwrap();
        for (k, t) in texts.iter().enumerate() {
            let one = m.embed(&[t], InputKind::Query).unwrap();
            let (abs, _) = compare(one.row(0), batch.row(k));
            assert!(abs <= 1e-6, "{} text {k}: batch vs single {abs:e}", f.dir);
        }
        let par = BertEmbedder::load(
            &spec(f),
            EmbedderOptions {
                batch_size: Some(3),
                threads: Some(3),
                parallelism: Some(BatchParallelism::Batches),
                ..Default::default()
            },
        )
        .unwrap()
        .embed(&texts, InputKind::Query)
        .unwrap();
        for k in 0..texts.len() {
            let (abs, _) = compare(par.row(k), batch.row(k));
            assert!(
                abs <= 1e-6,
                "{} text {k}: parallel vs sequential {abs:e}",
                f.dir
            );
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn edit_json(path: &Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// The prompts are part of the model's identity: a changed prompt is another vector space.
#[test]
fn prompts_are_part_of_the_fingerprint() {
    let base = load(&XLMR, Precision::F32, 4);
    let fp = base.fingerprint().clone();
    assert_eq!(fp.query_prefix, "query: ");
    assert_eq!(fp.passage_prefix, "passage: ");
    assert_eq!(fp.plain_prefix, "");
    let roberta = load(&ROBERTA, Precision::F32, 4);
    assert_eq!(
        roberta.fingerprint().query_prefix,
        "Represent this sentence for searching relevant passages: "
    );
    assert_eq!(roberta.fingerprint().passage_prefix, "");

    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture(XLMR.dir), dir.path());
    let st = dir.path().join("config_sentence_transformers.json");
    let reload = || {
        TextEmbedder::load(dir.path().to_str().unwrap(), EmbedderOptions::default())
            .unwrap()
            .fingerprint()
            .clone()
    };
    // The copy is the same space (the directory name is only a label).
    fp.check(&reload()).unwrap();
    for (edit, field) in [
        (("prompts", "query", "query:  "), "query_prefix"),
        (("prompts", "passage", "document: "), "passage_prefix"),
    ] {
        let ((section, name, value), field) = (edit, field);
        copy_dir(&fixture(XLMR.dir), dir.path());
        edit_json(&st, |v| v[section][name] = value.into());
        match fp.check(&reload()) {
            Err(EmbedError::FingerprintMismatch { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{name}: {other:?}"),
        }
    }
    // A default prompt changes plain inputs, and the identity with them.
    copy_dir(&fixture(XLMR.dir), dir.path());
    edit_json(&st, |v| v["default_prompt_name"] = "query".into());
    let fp2 = reload();
    assert_eq!(fp2.plain_prefix, "query: ");
    assert!(matches!(
        fp.check(&fp2),
        Err(EmbedError::FingerprintMismatch {
            field: "plain_prefix",
            ..
        })
    ));
    let m = TextEmbedder::load(dir.path().to_str().unwrap(), EmbedderOptions::default()).unwrap();
    let plain = m.embed(&["Hello, world!"], InputKind::Plain).unwrap();
    let query = base.embed(&["Hello, world!"], InputKind::Query).unwrap();
    assert!(compare(plain.row(0), query.row(0)).0 <= 1e-6);
}

/// An XLM-R classification checkpoint (the tiny encoder under `roberta.` plus a random
/// `classifier.dense` / `classifier.out_proj`) scores like the head computed by hand on the
/// encoder's `<s>` state, with `<s> q </s></s> p </s>` from the tokenizer's post-processor.
#[test]
fn xlmr_sequence_classification_head_scores_pairs() {
    let src = fixture(XLMR.dir);
    let dir = tempfile::tempdir().unwrap();
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(src.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::copy(src.join("config.json"), dir.path().join("config.json")).unwrap();
    edit_json(&dir.path().join("config.json"), |v| {
        v["architectures"] = serde_json::json!(["XLMRobertaForSequenceClassification"]);
        v["num_labels"] = 1.into();
    });
    let enc = candle_core::safetensors::load(src.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut tensors: std::collections::HashMap<String, Tensor> = enc
        .into_iter()
        .filter(|(k, _)| !k.starts_with("pooler."))
        .map(|(k, v)| (format!("roberta.{k}"), v))
        .collect();
    let dense_w = Tensor::randn(0f32, 0.3, (32, 32), &Device::Cpu).unwrap();
    let dense_b = Tensor::randn(0f32, 0.3, 32, &Device::Cpu).unwrap();
    let out_w = Tensor::randn(0f32, 0.3, (1, 32), &Device::Cpu).unwrap();
    let out_b = Tensor::new(&[0.25f32], &Device::Cpu).unwrap();
    for (k, v) in [
        ("classifier.dense.weight", &dense_w),
        ("classifier.dense.bias", &dense_b),
        ("classifier.out_proj.weight", &out_w),
        ("classifier.out_proj.bias", &out_b),
    ] {
        tensors.insert(k.into(), v.clone());
    }
    candle_core::safetensors::save(&tensors, dir.path().join("model.safetensors")).unwrap();

    // Long enough for every pair unpadded and uncut (the model reads 128 tokens).
    let opts = RerankerOptions {
        max_seq_length: Some(128),
        ..Default::default()
    };
    let ce = CrossEncoder::load(dir.path().to_str().unwrap(), opts).unwrap();
    let (query, passages) = (
        "what is a vector database?",
        [
            "Vector databases store embeddings.",
            "Paketlisten werden gelesen… Fertig",
        ],
    );
    let scores = ce.score(query, &passages).unwrap();
    let (model, _) = encoder(&XLMR);
    for (k, p) in passages.iter().enumerate() {
        let pair = ce.tokenizer().encode_pair(query, p).unwrap();
        let q = ce.tokenizer().encode(query).unwrap();
        let p_ids = ce.tokenizer().encode(p).unwrap();
        // <s> q </s> </s> p </s>: the single encodings joined by the pair template.
        let mut want_ids = q.ids.clone();
        want_ids.extend_from_slice(&p_ids.ids[..]);
        want_ids[q.ids.len()] = 2;
        assert_eq!(pair.ids, want_ids);
        assert!(pair.type_ids.iter().all(|&t| t == 0));
        let first = Tensor::new(hidden_rows(&model, &pair.ids)[0].as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let x = first
            .matmul(&dense_w.t().unwrap())
            .unwrap()
            .broadcast_add(&dense_b)
            .unwrap()
            .tanh()
            .unwrap();
        let logit = x
            .matmul(&out_w.t().unwrap())
            .unwrap()
            .broadcast_add(&out_b)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap()[0];
        assert!(
            (scores[k] - logit).abs() <= 1e-5,
            "pair {k}: {} vs {logit}",
            scores[k]
        );
    }
    // The same directory is no SPLADE model: RoBERTa's masked-LM head is not implemented.
    let err = SpladeEncoder::load(&spec(&XLMR), SpladeOptions::default()).unwrap_err();
    assert!(
        matches!(err, EmbedError::UnsupportedArchitecture { .. }),
        "{err}"
    );
}
