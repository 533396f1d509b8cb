//! all-MiniLM-L6-v2 against sentence-transformers, and the bi-encoder's own invariants.

use std::sync::OnceLock;

use sextant_embed::{
    lines_from_bytes, maxsim, BatchParallelism, BertEmbedder, CachedEmbedder, EmbedError, Embedder,
    EmbedderOptions, InputKind, Pooling, TokenOptions,
};

use crate::{compare, floats, ints, load_json, model_dir};

/// Weights sha256 recorded in scripts/setup-models.sh.
const MINILM_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
const MAX_ABS: f64 = 1e-5;
const MIN_COS: f64 = 0.99999;

fn minilm() -> &'static BertEmbedder {
    static M: OnceLock<BertEmbedder> = OnceLock::new();
    M.get_or_init(|| {
        BertEmbedder::load(&model_dir("all-MiniLM-L6-v2"), EmbedderOptions::default())
            .expect("load all-MiniLM-L6-v2")
    })
}

struct Reference {
    texts: Vec<String>,
    ids: Vec<Vec<u32>>,
    truncated: Vec<bool>,
    vectors: Vec<Vec<f32>>,
}

fn reference() -> Reference {
    let j = load_json("minilm_reference.json");
    let items = j["items"].as_array().unwrap();
    Reference {
        texts: items
            .iter()
            .map(|i| i["text"].as_str().unwrap().to_owned())
            .collect(),
        ids: items.iter().map(|i| ints(&i["input_ids"])).collect(),
        truncated: items
            .iter()
            .map(|i| i["truncated"].as_bool().unwrap())
            .collect(),
        vectors: items.iter().map(|i| floats(&i["embedding"])).collect(),
    }
}

#[test]
fn config_comes_from_the_model_not_the_tokenizer_file() {
    let m = minilm();
    // tokenizer.json says 128; sentence_bert_config.json says 256.
    assert_eq!(m.max_seq_length(), 256);
    assert_eq!(m.pooling(), Pooling::Mean);
    assert!(m.normalize());
    let fp = m.fingerprint();
    assert_eq!(fp.weights_sha256, MINILM_SHA256);
    assert_eq!(fp.dim, 384);
    assert_eq!(fp.model_id, "all-MiniLM-L6-v2");
}

#[test]
fn tokens_match_the_reference_tokenizer() {
    let r = reference();
    assert!(r.texts.len() >= 30);
    for (k, t) in r.texts.iter().enumerate() {
        let e = minilm().tokenizer().encode(t).unwrap();
        assert_eq!(e.ids, r.ids[k], "token ids of text {k} {t:?}");
        assert_eq!(e.truncated, r.truncated[k], "truncation flag of text {k}");
    }
}

#[test]
fn embeddings_match_sentence_transformers() {
    let r = reference();
    let texts: Vec<&str> = r.texts.iter().map(String::as_str).collect();
    let out = minilm().embed(&texts, InputKind::Plain).unwrap();
    assert_eq!(out.len(), texts.len());
    assert_eq!(out.truncated, r.truncated.iter().filter(|t| **t).count());
    let (mut worst_abs, mut worst_cos) = (0f64, 1f64);
    for (k, want) in r.vectors.iter().enumerate() {
        let got = out.row(k);
        assert!(
            got.iter().all(|x| x.is_finite()),
            "text {k} has non-finite values"
        );
        let (abs, cos) = compare(got, want);
        worst_abs = worst_abs.max(abs);
        worst_cos = worst_cos.min(cos);
        assert!(
            abs <= MAX_ABS && cos >= MIN_COS,
            "text {k} {:?}: max abs diff {abs:e}, cosine {cos}",
            r.texts[k]
        );
    }
    eprintln!(
        "minilm parity: max abs diff {worst_abs:e}, min cosine {worst_cos:.9} (1 - cos = {:e})",
        1.0 - worst_cos
    );
}

#[test]
fn batch_output_equals_single_output() {
    let r = reference();
    let texts: Vec<&str> = r.texts.iter().map(String::as_str).collect();
    let batch = minilm().embed(&texts, InputKind::Plain).unwrap();
    let mut worst = 0f64;
    for (k, t) in texts.iter().enumerate() {
        let one = minilm().embed(&[t], InputKind::Plain).unwrap();
        let (abs, _) = compare(one.row(0), batch.row(k));
        worst = worst.max(abs);
        assert!(abs <= 1e-6, "text {k}: batch vs single differ by {abs:e}");
    }
    eprintln!("minilm batch vs single: max abs diff {worst:e}");
}

/// Batches run on different threads give the same vectors, in input order, as batches run one
/// after the other.
#[test]
fn parallel_batches_equal_sequential_batches() {
    let r = reference();
    let mut texts: Vec<&str> = r.texts.iter().map(String::as_str).collect();
    texts.extend(r.texts.iter().rev().map(String::as_str));
    let load = |parallelism| {
        BertEmbedder::load(
            &model_dir("all-MiniLM-L6-v2"),
            EmbedderOptions {
                batch_size: Some(3),
                threads: Some(3),
                parallelism: Some(parallelism),
                ..Default::default()
            },
        )
        .unwrap()
    };
    let par = load(BatchParallelism::Batches)
        .embed(&texts, InputKind::Plain)
        .unwrap();
    let seq = load(BatchParallelism::WithinBatch)
        .embed(&texts, InputKind::Plain)
        .unwrap();
    assert_eq!(par.len(), texts.len());
    for k in 0..texts.len() {
        let (abs, _) = compare(par.row(k), seq.row(k));
        assert!(
            abs <= 1e-6,
            "text {k}: parallel vs sequential differ by {abs:e}"
        );
    }
}

#[test]
fn prefixes_are_prepended() {
    let dir = model_dir("all-MiniLM-L6-v2");
    let m = BertEmbedder::load(
        &dir,
        EmbedderOptions {
            query_prefix: Some("query: ".into()),
            passage_prefix: Some("passage: ".into()),
            ..Default::default()
        },
    )
    .unwrap();
    let q = m
        .embed(&["how are deletes handled?"], InputKind::Query)
        .unwrap();
    let p = m
        .embed(&["how are deletes handled?"], InputKind::Passage)
        .unwrap();
    let plain = minilm()
        .embed(
            &[
                "query: how are deletes handled?",
                "passage: how are deletes handled?",
            ],
            InputKind::Plain,
        )
        .unwrap();
    assert!(compare(q.row(0), plain.row(0)).0 <= 1e-6);
    assert!(compare(p.row(0), plain.row(1)).0 <= 1e-6);
    assert_eq!(m.fingerprint().query_prefix, "query: ");
    assert!(minilm().fingerprint().check(m.fingerprint()).is_err());
}

#[test]
fn matryoshka_truncates_then_renormalises() {
    let m = BertEmbedder::load(
        &model_dir("all-MiniLM-L6-v2"),
        EmbedderOptions {
            dim: Some(128),
            threads: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(m.dim(), 128);
    assert_eq!(m.fingerprint().dim, 128);
    let texts = ["matryoshka embeddings", "", "🚀"];
    let small = m.embed(&texts, InputKind::Plain).unwrap();
    let full = minilm().embed(&texts, InputKind::Plain).unwrap();
    for k in 0..texts.len() {
        let mut want = full.row(k)[..128].to_vec();
        sextant_core::l2_normalize_in_place(&mut want);
        let norm: f32 = small.row(k).iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
        // Full-model outputs were normalised before truncation: equal up to rounding.
        assert!(compare(small.row(k), &want).0 <= 1e-5);
    }
}

#[test]
fn other_poolings_give_finite_unit_vectors() {
    for pooling in [Pooling::Cls, Pooling::Max, Pooling::MeanSqrtLen] {
        let m = BertEmbedder::load(
            &model_dir("all-MiniLM-L6-v2"),
            EmbedderOptions {
                pooling: Some(pooling),
                batch_size: Some(2),
                ..Default::default()
            },
        )
        .unwrap();
        let out = m
            .embed(&["", "  ", "a longer text here", "x"], InputKind::Plain)
            .unwrap();
        for row in out.rows() {
            let n: f32 = row.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!(
                row.iter().all(|x| x.is_finite()) && (n - 1.0).abs() < 1e-5,
                "{pooling}"
            );
        }
    }
}

#[test]
fn token_embeddings_mean_to_the_sentence_embedding() {
    let texts = ["late interaction keeps every token", "short"];
    let toks = minilm()
        .embed_tokens(&texts, InputKind::Plain, &TokenOptions::default())
        .unwrap();
    let pooled = minilm().embed(&texts, InputKind::Plain).unwrap();
    for (k, t) in toks.iter().enumerate() {
        assert_eq!(
            t.len(),
            minilm().tokenizer().encode(texts[k]).unwrap().ids.len()
        );
        let mut mean = vec![0f32; t.dim];
        for i in 0..t.len() {
            mean.iter_mut()
                .zip(t.token(i))
                .for_each(|(m, x)| *m += x / t.len() as f32);
        }
        sextant_core::l2_normalize_in_place(&mut mean);
        assert!(compare(&mean, pooled.row(k)).0 <= 1e-5);
    }
    let norm = TokenOptions {
        normalize: true,
        ..Default::default()
    };
    let q = minilm()
        .embed_tokens(&["vector search"], InputKind::Query, &norm)
        .unwrap();
    let d = minilm()
        .embed_tokens(
            &["a vector search engine", "a recipe for bread"],
            InputKind::Passage,
            &norm,
        )
        .unwrap();
    assert!(maxsim(&q[0], &d[0]).unwrap() > maxsim(&q[0], &d[1]).unwrap());
}

#[test]
fn cache_serves_repeats_with_identical_vectors() {
    let m = BertEmbedder::load(&model_dir("all-MiniLM-L6-v2"), EmbedderOptions::default()).unwrap();
    let cached = CachedEmbedder::new(m, 100);
    let texts = ["cache me", "and me", "cache me"];
    let first = cached.embed(&texts, InputKind::Passage).unwrap();
    let second = cached.embed(&texts, InputKind::Passage).unwrap();
    assert_eq!(first, second);
    assert!(compare(first.row(0), first.row(2)).0 == 0.0);
    let s = cached.cache().stats();
    assert_eq!((s.hits, s.misses, s.len), (3, 3, 2));
}

#[test]
fn invalid_utf8_lines_are_repaired_and_embedded() {
    let lines = lines_from_bytes(b"good line\nbad \xc3\x28 bytes\n\xff\n");
    assert_eq!(lines.invalid_utf8, vec![1, 2]);
    let texts: Vec<&str> = lines.lines.iter().map(String::as_str).collect();
    let out = minilm().embed(&texts, InputKind::Plain).unwrap();
    assert_eq!(out.len(), 3);
    assert!(out.as_slice().iter().all(|x| x.is_finite()));
}

#[test]
fn empty_input_gives_empty_output() {
    let out = minilm().embed(&[], InputKind::Plain).unwrap();
    assert!(out.is_empty());
    assert_eq!(out.dim(), 384);
}

#[test]
fn bad_arguments_are_errors_not_panics() {
    let dir = model_dir("all-MiniLM-L6-v2");
    for opts in [
        EmbedderOptions {
            dim: Some(0),
            ..Default::default()
        },
        EmbedderOptions {
            batch_size: Some(0),
            ..Default::default()
        },
        EmbedderOptions {
            threads: Some(0),
            ..Default::default()
        },
    ] {
        assert!(matches!(
            BertEmbedder::load(&dir, opts),
            Err(EmbedError::InvalidArgument(_))
        ));
    }
    let err = BertEmbedder::load("/no/such/model", EmbedderOptions::default()).unwrap_err();
    assert!(err.to_string().contains("setup-models.sh"), "{err}");
}
