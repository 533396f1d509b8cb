//! CLIP against transformers 5 (`CLIPModel`, `CLIPImageProcessorPil` on Pillow 13):
//! `tiny_clip_reference.json` and the 31 real pictures of `fixtures/images/` (PNG in every
//! colour type, baseline/progressive/optimised/greyscale/CMYK/4:2:0/4:2:2/4:4:4 JPEG, lossy,
//! lossy-with-alpha and lossless WebP; public domain, CC0 or PSF, see its README).
//!
//! - Preprocessing, by hash at every stage and on every image: the decoded RGB
//!   (`decoded_rgb_sha256`), the resized and the cropped bytes, the f32 pixel values. All 31
//!   must be byte-identical: decoding (libjpeg-turbo's decoder for JPEG, the `image` crate for
//!   PNG and WebP), Pillow's resampler and transformers' arithmetic are all reproduced
//!   exactly, so any difference is a bug.
//! - Embeddings: image and text features at the MiniLM bars (cosine ≥ 0.99999, max abs
//!   difference ≤ 1e-5), token ids exactly; batches equal one-at-a-time; the bytes, files,
//!   `DynamicImage` and RGB entry points agree; normalised output is unit length.
//! - Errors, never panics: corrupt and truncated images, unsupported formats, a missing
//!   file, directories that are not CLIP or are broken.
//!
//! With `CLIP_PIL_CORPUS=DIR` (and `--ignored`), `pillow_corpus` also compares [`open_rgb`] with Pillow on every
//! image `X` in `DIR` that has Pillow's decoded RGB next to it as `X.rgb` (see
//! `fixtures/images/README.md` for the snippet that writes them).

use std::path::{Path, PathBuf};

use serde_json::Value;
use sextant_embed::clip::{decode_image, decode_rgb, open_rgb, ClipImageProcessor};
use sextant_embed::{ClipError, ClipModel, ClipOptions, EmbedError, Embedder, InputKind};
use sha2::{Digest, Sha256};

use crate::{compare, fixture, floats, ints, load_json};

const REFERENCE: &str = "tiny_clip_reference.json";
/// The MiniLM parity bars (`minilm.rs`).
const MAX_ABS: f64 = 1e-5;
const MIN_COS: f64 = 0.99999;
/// Batch and entry-point invariance: the same pixels through differently shaped products.
const SAME_MAX_ABS: f64 = 1e-6;

fn sha(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn image_path(file: &str) -> PathBuf {
    fixture("images").join(file)
}

fn images(j: &Value) -> &Vec<Value> {
    j["images"].as_array().expect("images")
}

fn files(j: &Value) -> Vec<PathBuf> {
    images(j)
        .iter()
        .map(|i| image_path(i["file"].as_str().unwrap()))
        .collect()
}

fn clip_dir() -> String {
    fixture("tiny-clip").to_string_lossy().into_owned()
}

fn model(normalize: bool) -> ClipModel {
    ClipModel::load_with(
        &clip_dir(),
        ClipOptions {
            normalize,
            ..ClipOptions::default()
        },
    )
    .expect("load tiny-clip")
}

/// The stages of one image that differ from the reference (empty: byte-identical).
fn differing_stages(p: &ClipImageProcessor, item: &Value) -> Vec<&'static str> {
    let file = item["file"].as_str().unwrap();
    let rgb = open_rgb(&image_path(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
    let size = ints(&item["size_wh"]);
    assert_eq!(
        [rgb.width(), rgb.height()],
        [size[0], size[1]],
        "{file}: size"
    );
    let resized = p.resize(&rgb);
    let want = ints(&item["resized_size_wh"]);
    assert_eq!(
        [resized.width(), resized.height()],
        [want[0], want[1]],
        "{file}: resized size"
    );
    let cropped = p.center_crop(&resized);
    let pv = p.pixel_values(&cropped);
    assert_eq!(
        (pv.height, pv.width, pv.data.len()),
        (224, 224, 3 * 224 * 224)
    );
    let mut differ = Vec::new();
    for (stage, got, key) in [
        ("decoded", sha(rgb.as_raw()), "decoded_rgb_sha256"),
        ("resized", sha(resized.as_raw()), "resized_sha256"),
        ("cropped", sha(cropped.as_raw()), "cropped_uint8_sha256"),
        (
            "pixel_values",
            sha(&f32_bytes(&pv.data)),
            "pixel_values_sha256",
        ),
    ] {
        if got != item[key] {
            differ.push(stage);
        }
    }
    if floats(&item["pixel_values_head"]) != pv.data[..32] {
        differ.push("pixel_values_head");
    }
    differ
}

#[test]
fn preprocessing_is_byte_identical_on_every_image() {
    let j = load_json(REFERENCE);
    let p = ClipImageProcessor::load(&fixture("tiny-clip")).unwrap();
    assert_eq!(p, ClipImageProcessor::default(), "OpenAI CLIP settings");
    let items = images(&j);
    assert_eq!(items.len(), 31);
    let failures: Vec<String> = items
        .iter()
        .filter_map(|item| {
            let d = differing_stages(&p, item);
            (!d.is_empty()).then(|| format!("{}: {d:?}", item["file"]))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} images differ from transformers: {failures:#?}",
        failures.len(),
        items.len()
    );
}

#[test]
fn every_entry_point_preprocesses_alike() {
    let j = load_json(REFERENCE);
    let p = ClipImageProcessor::default();
    for path in files(&j) {
        let bytes = std::fs::read(&path).unwrap();
        let rgb = decode_rgb(&bytes).unwrap();
        assert_eq!(rgb, open_rgb(&path).unwrap());
        // DynamicImage in: the same pixels for every fixture (none has a PNG colour key on a
        // greyscale or truecolour image at a depth where Pillow's rules differ).
        let dynamic = decode_image(&bytes).unwrap();
        assert_eq!(
            p.preprocess(&dynamic),
            p.preprocess_rgb(&rgb),
            "{}",
            path.display()
        );
    }
}

#[test]
fn image_embeddings_match_transformers() {
    let j = load_json(REFERENCE);
    let m = model(false);
    assert_eq!(m.dim(), j["projection_dim"].as_u64().unwrap() as usize);
    let paths = files(&j);
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let got = m.embed_image_files(&refs).unwrap();
    assert_eq!(got.len(), refs.len());
    let (mut worst_abs, mut worst_cos) = (0f64, 1f64);
    for (i, item) in images(&j).iter().enumerate() {
        let (abs, cos) = compare(got.row(i), &floats(&item["image_embedding"]));
        assert!(
            abs <= MAX_ABS && cos >= MIN_COS,
            "{}: max abs {abs:e}, cosine {cos}",
            item["file"]
        );
        worst_abs = worst_abs.max(abs);
        worst_cos = worst_cos.min(cos);
    }
    eprintln!("images: worst max abs {worst_abs:e}, worst cosine {worst_cos}");
}

#[test]
fn image_batches_and_entry_points_agree() {
    let j = load_json(REFERENCE);
    let m = ClipModel::load_with(
        &clip_dir(),
        ClipOptions {
            normalize: false,
            batch_size: 5,
        },
    )
    .unwrap();
    let paths = files(&j);
    let refs: Vec<&Path> = paths.iter().map(|p| p.as_path()).collect();
    let batch = m.embed_image_files(&refs).unwrap();
    for (i, path) in paths.iter().enumerate() {
        let bytes = std::fs::read(path).unwrap();
        let dynamic = decode_image(&bytes).unwrap();
        let rgb = decode_rgb(&bytes).unwrap();
        for single in [
            m.embed_image_bytes(&[&bytes]).unwrap(),
            m.embed_images(&[&dynamic]).unwrap(),
            m.embed_rgb(&[&rgb]).unwrap(),
        ] {
            let (abs, _) = compare(single.row(0), batch.row(i));
            assert!(abs <= SAME_MAX_ABS, "{}: {abs:e}", path.display());
        }
    }
}

#[test]
fn text_ids_and_embeddings_match_transformers() {
    let j = load_json(REFERENCE);
    let m = model(false);
    let items = j["texts"].as_array().unwrap();
    let texts: Vec<&str> = items.iter().map(|t| t["text"].as_str().unwrap()).collect();
    for (t, item) in texts.iter().zip(items) {
        let ids = m.tokenize(t).unwrap().ids;
        assert_eq!(ids, ints(&item["input_ids"]), "ids of {t:?}");
    }
    let got = m.embed_texts(&texts).unwrap();
    assert_eq!(got.truncated, 1, "the long caption is cut to 77 tokens");
    let (mut worst_abs, mut worst_cos) = (0f64, 1f64);
    for (i, item) in items.iter().enumerate() {
        let (abs, cos) = compare(got.row(i), &floats(&item["text_embedding"]));
        assert!(
            abs <= MAX_ABS && cos >= MIN_COS,
            "{:?}: max abs {abs:e}, cosine {cos}",
            texts[i]
        );
        worst_abs = worst_abs.max(abs);
        worst_cos = worst_cos.min(cos);
        // Padding to the longest text of the batch changes nothing.
        let single = m.embed_texts(&[texts[i]]).unwrap();
        let (abs, _) = compare(single.row(0), got.row(i));
        assert!(
            abs <= SAME_MAX_ABS,
            "{:?} alone vs batched: {abs:e}",
            texts[i]
        );
    }
    eprintln!("texts: worst max abs {worst_abs:e}, worst cosine {worst_cos}");
}

#[test]
fn normalised_vectors_share_one_space() {
    let raw = model(false);
    let unit = model(true);
    assert_ne!(raw.fingerprint(), unit.fingerprint());
    assert_eq!(unit.fingerprint().dim, 16);
    let texts = ["a photo of a cat", "a diagram"];
    let a = unit.embed_texts(&texts).unwrap();
    let b = raw.embed_texts(&texts).unwrap();
    // The Embedder trait embeds texts as they are, whatever the input kind.
    let c = unit.embed(&texts, InputKind::Query).unwrap();
    assert_eq!(a, c);
    for i in 0..2 {
        let norm: f32 = a.row(i).iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        let (_, cos) = compare(a.row(i), b.row(i));
        assert!(cos > 0.999_999, "{cos}");
    }
    let img = unit
        .embed_image_files(&[&image_path("astronaut_200_rgba.png")])
        .unwrap();
    let norm: f32 = img.row(0).iter().map(|x| x * x).sum::<f32>().sqrt();
    assert!((norm - 1.0).abs() < 1e-5, "{norm}");
}

#[test]
fn bad_images_are_errors_not_panics() {
    let m = model(true);
    let jpeg = std::fs::read(image_path("astronaut_256_progressive.jpg")).unwrap();
    let png = std::fs::read(image_path("astronaut_200_rgba.png")).unwrap();
    let webp = std::fs::read(image_path("grass_256_lossless.webp")).unwrap();
    let corrupt: Vec<(&str, Vec<u8>)> = vec![
        (
            "truncated progressive JPEG",
            jpeg[..jpeg.len() / 2].to_vec(),
        ),
        ("JPEG header only", jpeg[..300].to_vec()),
        ("truncated PNG", png[..png.len() / 2].to_vec()),
        ("PNG with a broken image chunk", {
            let mut b = png.clone();
            let idat = b.windows(4).position(|w| w == b"IDAT").unwrap();
            for x in &mut b[idat + 100..idat + 260] {
                *x ^= 0x5A;
            }
            b
        }),
        ("truncated WebP", webp[..webp.len() / 3].to_vec()),
        ("JPEG signature only", vec![0xFF, 0xD8, 0xFF]),
    ];
    for (what, bytes) in &corrupt {
        let e = match m.embed_image_bytes(&[bytes]) {
            Ok(_) => panic!("{what}: decoded"),
            Err(e) => e,
        };
        assert!(matches!(e, ClipError::CorruptImage { .. }), "{what}: {e:?}");
        assert!(e.is_input_error(), "{what}");
        assert!(!e.to_string().is_empty());
    }
    let gif = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let bmp = b"BM\x1e\x00\x00\x00\x00\x00\x00\x00\x1a\x00\x00\x00";
    for (what, bytes, format) in [
        ("GIF", &gif[..], "Gif"),
        ("BMP", &bmp[..], "Bmp"),
        (
            "text",
            &b"just some text"[..],
            "data without a known image signature",
        ),
        ("empty", &b""[..], "data without a known image signature"),
    ] {
        let e = m.embed_image_bytes(&[bytes]).unwrap_err();
        match &e {
            ClipError::UnsupportedImageFormat { format: f, .. } => assert_eq!(f, format, "{what}"),
            other => panic!("{what}: {other:?}"),
        }
        assert!(e.to_string().contains("PNG, JPEG or WebP"), "{e}");
    }
    let missing = fixture("images").join("no-such-image.png");
    let e = m.embed_image_files(&[&missing]).unwrap_err();
    assert!(matches!(e, ClipError::ImageIo { .. }), "{e:?}");
    assert!(e.to_string().contains("no-such-image.png"), "{e}");
    assert!(!e.is_input_error());
    // A file error names the file.
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("photo.jpg");
    std::fs::write(&bad, &jpeg[..1000]).unwrap();
    let e = m.embed_image_files(&[&bad]).unwrap_err();
    assert!(e.to_string().contains("photo.jpg"), "{e}");
    // Images without pixels are refused, not resized.
    let empty = sextant_embed::clip::image::RgbImage::new(0, 5);
    let e = m.embed_rgb(&[&empty]).unwrap_err();
    assert!(matches!(e, ClipError::InvalidImage { .. }), "{e:?}");
    let e = m
        .embed_images(&[&sextant_embed::clip::image::DynamicImage::new_rgba8(7, 0)])
        .unwrap_err();
    assert!(matches!(e, ClipError::InvalidImage { .. }), "{e:?}");
    // Pixel values of the wrong size are refused, not indexed out of bounds.
    let small = ClipImageProcessor {
        crop: Some((32, 32)),
        ..ClipImageProcessor::default()
    }
    .preprocess_rgb(&decode_rgb(&png).unwrap());
    let e = m.embed_pixel_values(&[&small]).unwrap_err();
    assert!(
        matches!(e, ClipError::Model(EmbedError::InvalidArgument(_))),
        "{e:?}"
    );
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

fn load_err(dir: &Path) -> EmbedError {
    match ClipModel::load(dir.to_str().unwrap()).unwrap_err() {
        ClipError::Model(e) => e,
        other => panic!("{}: not a model error: {other:?}", dir.display()),
    }
}

#[test]
fn directories_that_are_not_clip_are_refused() {
    for name in ["tiny-st", "tiny-xlmr", "tiny-static"] {
        let e = load_err(&fixture(name));
        assert!(
            matches!(e, EmbedError::UnsupportedArchitecture { .. }),
            "{name}: {e:?}"
        );
        assert!(e.to_string().contains("CLIP"), "{name}: {e}");
    }
    let empty = tempfile::tempdir().unwrap();
    assert!(matches!(
        load_err(empty.path()),
        EmbedError::MissingFile { .. }
    ));

    // Broken CLIP directories.
    let broken = |edit: &dyn Fn(&Path)| -> EmbedError {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&fixture("tiny-clip"), dir.path());
        edit(dir.path());
        load_err(dir.path())
    };
    let e = broken(&|d| {
        std::fs::remove_file(d.join("preprocessor_config.json")).unwrap();
        std::fs::remove_file(d.join("processor_config.json")).unwrap();
    });
    assert!(matches!(e, EmbedError::MissingFile { .. }), "{e:?}");
    let e = broken(&|d| std::fs::remove_file(d.join("tokenizer.json")).unwrap());
    assert!(matches!(e, EmbedError::MissingFile { .. }), "{e:?}");
    let e = broken(&|d| {
        let p = d.join("preprocessor_config.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        v["crop_size"] = serde_json::json!({"height": 256, "width": 256});
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    });
    assert!(matches!(e, EmbedError::BadConfig { .. }), "{e:?}");
    assert!(e.to_string().contains("224x224"), "{e}");
    let e = broken(&|d| {
        let p = d.join("config.json");
        let mut v: Value = serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap();
        v["projection_dim"] = 24.into();
        std::fs::write(&p, serde_json::to_vec(&v).unwrap()).unwrap();
    });
    assert!(matches!(e, EmbedError::ShapeMismatch { .. }), "{e:?}");
    let e = broken(&|d| std::fs::write(d.join("model.safetensors"), b"not safetensors").unwrap());
    assert!(matches!(e, EmbedError::Candle(_)), "{e:?}");
    // Only preprocessor settings inside processor_config.json (transformers 5) still load.
    let dir = tempfile::tempdir().unwrap();
    copy_dir(&fixture("tiny-clip"), dir.path());
    std::fs::remove_file(dir.path().join("preprocessor_config.json")).unwrap();
    ClipModel::load(dir.path().to_str().unwrap()).unwrap();
}

/// Opt-in: Pillow's decoding of a directory of images (see the module docs). Run with
/// `CLIP_PIL_CORPUS=DIR cargo test -p sextant-embed --test integration pillow_corpus -- --ignored`.
#[test]
#[ignore = "opt-in: needs CLIP_PIL_CORPUS=DIR with Pillow's decodings"]
fn pillow_corpus() {
    let dir = std::env::var_os("CLIP_PIL_CORPUS").expect("set CLIP_PIL_CORPUS=DIR");
    let mut differ = Vec::new();
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|x| x == "rgb") {
            continue;
        }
        let Ok(want) = std::fs::read(format!("{}.rgb", path.display())) else {
            continue;
        };
        let got = open_rgb(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        n += 1;
        let max = got
            .as_raw()
            .iter()
            .zip(&want)
            .map(|(a, b)| a.abs_diff(*b))
            .max();
        if got.as_raw().len() != want.len() || max != Some(0) {
            differ.push(format!("{} (max difference {max:?})", path.display()));
        }
    }
    eprintln!("{n} images compared with Pillow");
    assert!(
        n > 0,
        "no image in {} has Pillow's X.rgb beside it",
        dir.to_string_lossy()
    );
    assert!(differ.is_empty(), "{differ:#?}");
}

/// A CLIP directory given to [`sextant_embed::TextEmbedder`] (what `--model DIR` loads) is a CLIP
/// model: its text side embeds as [`ClipModel::embed_texts`] does, its image side is reachable,
/// and options that do not apply to CLIP are refused by name.
#[test]
fn text_embedder_loads_a_clip_directory() {
    use sextant_embed::{EmbedderOptions, ModelDir, ModelKind, Precision, TextEmbedder};
    let dir = clip_dir();
    assert_eq!(
        ModelDir::resolve(&dir).unwrap().kind().unwrap(),
        ModelKind::Clip
    );
    let te = TextEmbedder::load(&dir, EmbedderOptions::default()).unwrap();
    assert_eq!(te.kind(), ModelKind::Clip);
    let m = model(true);
    let texts = ["a photo of a cat", "ein Hund im Schnee"];
    let a = te.embed(&texts, InputKind::Query).unwrap();
    let b = m.embed_texts(&texts).unwrap();
    assert_eq!(a.as_slice(), b.as_slice());
    assert_eq!(te.dim(), m.dim());
    assert_eq!(te.fingerprint(), m.fingerprint());
    let clip = te.as_clip().expect("the image side");
    let png = std::fs::read(image_path("astronaut_200_rgba.png")).unwrap();
    let via_te = clip.install(|c| c.embed_image_bytes(&[&png])).unwrap();
    assert_eq!(
        via_te.as_slice(),
        m.embed_image_bytes(&[&png]).unwrap().as_slice()
    );
    for (opts, what) in [
        (
            EmbedderOptions {
                dim: Some(8),
                ..Default::default()
            },
            "Matryoshka",
        ),
        (
            EmbedderOptions {
                precision: Some(Precision::Bf16),
                ..Default::default()
            },
            "precision",
        ),
        (
            EmbedderOptions {
                query_prefix: Some("query: ".into()),
                ..Default::default()
            },
            "prefix",
        ),
    ] {
        let e = TextEmbedder::load(&dir, opts).unwrap_err();
        assert!(e.to_string().contains(what), "{what}: {e}");
    }
    // Unnormalised output is transformers' raw features.
    let raw = TextEmbedder::load(
        &dir,
        EmbedderOptions {
            normalize: Some(false),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(
        raw.embed(&texts, InputKind::Query).unwrap().as_slice(),
        model(false).embed_texts(&texts).unwrap().as_slice()
    );
}
