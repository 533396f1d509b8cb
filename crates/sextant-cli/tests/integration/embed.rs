//! `sextant embed` and `sextant rerank` on the tiny cross-encoder fixture (no setup needed).

use crate::{sextant, stderr, tiny_model};

#[test]
fn embed_writes_npy_in_input_order_and_reports_repairs() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("texts.txt");
    let long = "word ".repeat(500);
    std::fs::write(
        &input,
        format!("hello world\nbad \u{1} \n{long}\n").into_bytes(),
    )
    .unwrap();
    let mut bytes = std::fs::read(&input).unwrap();
    bytes.extend_from_slice(b"\xff\xfe broken\n");
    std::fs::write(&input, bytes).unwrap();
    let output = dir.path().join("out.npy");
    let model = tiny_model();
    let out = sextant(&[
        "embed",
        "--model",
        &model,
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--batch",
        "2",
        "--threads",
        "1",
        "--dim",
        "16",
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("1 truncated"), "{err}");
    assert!(err.contains("invalid UTF-8"), "{err}");
    let npy = std::fs::read(&output).unwrap();
    assert_eq!(&npy[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    let header = std::str::from_utf8(&npy[10..10 + header_len]).unwrap();
    assert!(header.contains("'shape': (4, 16)"), "{header}");
    assert_eq!((10 + header_len) % 64, 0);
    assert_eq!(npy.len(), 10 + header_len + 4 * 16 * 4);
}

#[test]
fn rerank_prints_the_top_passages() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("passages.txt");
    std::fs::write(
        &input,
        "paris is the capital\nbread needs yeast\n\nvectors\n",
    )
    .unwrap();
    let model = tiny_model();
    let out = sextant(&[
        "rerank",
        "--model",
        &model,
        "--query",
        "capital of france",
        "--input",
        input.to_str().unwrap(),
        "--top",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("rank\tscore"));
    let s1: f32 = lines[1].split('\t').nth(1).unwrap().parse().unwrap();
    let s2: f32 = lines[2].split('\t').nth(1).unwrap().parse().unwrap();
    assert!(s1 >= s2);
}

#[test]
fn embed_with_a_missing_model_points_at_the_setup_script() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("t.txt");
    std::fs::write(&input, "x\n").unwrap();
    let out = sextant(&[
        "embed",
        "--model",
        dir.path().join("nope").to_str().unwrap(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        dir.path().join("o.npy").to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("setup-models.sh"), "{}", stderr(&out));
}

/// The `.npy` body of `sextant embed` on `input` with extra flags, as f32s.
fn embed_npy(input: &std::path::Path, output: &std::path::Path, extra: &[&str]) -> Vec<f32> {
    let model = tiny_model();
    let mut args = vec![
        "embed",
        "--model",
        &model,
        "--input",
        input.to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--threads",
        "1",
    ];
    args.extend_from_slice(extra);
    let out = sextant(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let npy = std::fs::read(output).unwrap();
    let header_len = u16::from_le_bytes([npy[8], npy[9]]) as usize;
    npy[10 + header_len..]
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

#[test]
fn embed_precision_bf16_stays_close_to_f32_and_unknown_precisions_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("texts.txt");
    std::fs::write(&input, "reduced precision\nthe same vector space\n").unwrap();
    let full = embed_npy(&input, &dir.path().join("f32.npy"), &["--precision", "f32"]);
    let dim = full.len() / 2;
    // Every precision, the default (auto) included, stays within cosine 0.999 of f32; bf16 and
    // int8 really change the arithmetic.
    for p in ["bf16", "int8", "auto", "default"] {
        let extra: &[&str] = if p == "default" {
            &[]
        } else {
            &["--precision", p]
        };
        let got = embed_npy(&input, &dir.path().join(format!("{p}.npy")), extra);
        assert_eq!(full.len(), got.len());
        for (a, b) in full.chunks_exact(dim).zip(got.chunks_exact(dim)) {
            let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
            let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!(dot / (na * nb) >= 0.999, "{p}: cosine {}", dot / (na * nb));
        }
        if p == "bf16" || p == "int8" {
            assert_ne!(full, got, "{p} produced exactly the f32 vectors");
        }
    }
    let out = sextant(&[
        "embed",
        "--model",
        &tiny_model(),
        "--input",
        input.to_str().unwrap(),
        "--output",
        dir.path().join("x.npy").to_str().unwrap(),
        "--precision",
        "fp16",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("expected auto, f32, bf16 or int8"),
        "{}",
        stderr(&out)
    );
}
