//! Pictures end to end with a CLIP model (sextant-embed's random-weight `tiny-clip` fixture and
//! its real fixture pictures): ingest next to text, text → image and image → image search,
//! citations by path in `ask`, re-ingest of changed pictures, and every refusal (a text-only
//! collection, modes and options that need query text, a file that is not a picture).

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::db::{ok, run};
use crate::tiny_model;

fn embed_fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sextant-embed/tests/fixtures")
        .join(name)
}

fn picture(name: &str) -> PathBuf {
    embed_fixture("images").join(name)
}

const PICTURES: [&str; 5] = [
    "rocket_640x427_444.jpg",
    "chelsea_300x200_q90.jpg",
    "coffee_240x160_cmyk.jpg",
    "grass_256_lossless.webp",
    "astronaut_200_rgba.png",
];

fn fails(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `ingest NAME DIR --model MODEL --no-splade` with `--json`: the report and the warnings.
fn ingest_json(data: &Path, name: &str, dir: &Path, model: &str) -> (Value, String) {
    let out = run(
        data,
        &[
            "--json",
            "ingest",
            name,
            dir.to_str().unwrap(),
            "--model",
            model,
            "--no-splade",
        ],
    );
    let warnings = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{warnings}");
    (serde_json::from_slice(&out.stdout).unwrap(), warnings)
}

/// `--json search NAME --image FILE --k K`: the ranked documents.
fn search_image(data: &Path, name: &str, file: &Path, k: usize) -> (Vec<Value>, String) {
    let out = ok(
        data,
        &[
            "--json",
            "search",
            name,
            "--image",
            file.to_str().unwrap(),
            "--k",
            &k.to_string(),
        ],
    );
    (hits(&out), out)
}

fn hits(out: &str) -> Vec<Value> {
    let v: Value = serde_json::from_str(out).unwrap();
    v[0]["documents"].as_array().unwrap().clone()
}

#[test]
fn pictures_are_ingested_searched_by_text_and_by_image_and_cited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let pics = dir.path().join("pics");
    std::fs::create_dir(&pics).unwrap();
    for p in PICTURES {
        std::fs::copy(picture(p), pics.join(p)).unwrap();
    }
    std::fs::write(
        pics.join("notes.txt"),
        "A rocket launch at dawn, with smoke.",
    )
    .unwrap();
    std::fs::write(pics.join("broken.png"), "not a picture").unwrap();
    let clip = embed_fixture("tiny-clip");
    let clip = clip.to_str().unwrap();
    let p = pics.to_str().unwrap();
    let (report, warn) = ingest_json(&data, "pics", &pics, clip);
    assert_eq!(report["documents"], 6, "{report}");
    assert_eq!(report["chunks"], 6, "one chunk per picture: {report}");
    assert_eq!(report["unreadable_files"], 1, "{report}");
    assert_eq!(report["skipped_images"], 0, "{report}");
    assert!(warn.contains("broken.png"), "{warn}");

    // Image → image: each picture finds itself first, at cosine 1.
    for name in PICTURES {
        let (h, out) = search_image(&data, "pics", &pics.join(name), 10);
        assert_eq!(h[0]["doc_id"], format!("pics/{name}"), "{name}: {out}");
        let score = h[0]["score"].as_f64().unwrap();
        assert!((score - 1.0).abs() < 1e-4, "{name}: {score}");
        // Every document is in the one space: 6 results for k = 10.
        assert_eq!(h.len(), 6, "{out}");
    }
    // The picture's payload: what it is, its size and format, where it is.
    let (h, _) = search_image(&data, "pics", &pics.join("rocket_640x427_444.jpg"), 1);
    let p0 = &h[0]["chunks"][0]["payload"];
    assert_eq!(p0["media"], "image", "{p0}");
    assert_eq!(p0["format"], "jpeg", "{p0}");
    assert_eq!(
        (p0["width"].clone(), p0["height"].clone()),
        (640.into(), 427.into())
    );
    assert!(p0["source"]
        .as_str()
        .unwrap()
        .ends_with("rocket_640x427_444.jpg"));
    assert_eq!(p0["title"], "rocket_640x427_444");

    // Text → image in the same space: a dense text query ranks the pictures and the text.
    let out = ok(
        &data,
        &[
            "--json",
            "search",
            "pics",
            "--text",
            "a cat on a rug",
            "--mode",
            "dense",
            "--k",
            "10",
        ],
    );
    let h = hits(&out);
    assert_eq!(h.len(), 6, "{out}");
    assert_eq!(
        h.iter()
            .filter(|d| d["chunks"][0]["payload"]["media"] == "image")
            .count(),
        5
    );

    // ask cites a picture by its path.
    let out = ok(&data, &["ask", "pics", "rocket", "--k", "6"]);
    assert!(
        out.contains(&format!(
            "(image: {})",
            pics.join("rocket_640x427_444.jpg").display()
        )),
        "{out}"
    );
    assert!(out.contains("[image without a caption]"), "{out}");

    // Unchanged pictures are skipped; a picture whose bytes change is replaced.
    let again: Value = serde_json::from_str(&ok(&data, &["--json", "ingest", "pics", p])).unwrap();
    assert_eq!(
        (again["documents"].clone(), again["unchanged"].clone()),
        (0.into(), 6.into())
    );
    std::fs::copy(
        picture("hubble_300x262_422.jpg"),
        pics.join("chelsea_300x200_q90.jpg"),
    )
    .unwrap();
    let changed: Value =
        serde_json::from_str(&ok(&data, &["--json", "ingest", "pics", p])).unwrap();
    assert_eq!(
        (changed["replaced"].clone(), changed["unchanged"].clone()),
        (1.into(), 5.into())
    );
    let (h, out) = search_image(&data, "pics", &picture("hubble_300x262_422.jpg"), 1);
    let top = &h[0];
    assert_eq!(top["doc_id"], "pics/chelsea_300x200_q90.jpg", "{out}");
    assert_eq!(top["chunks"][0]["payload"]["height"], 262);

    // What an image query cannot take is refused by name.
    let q = pics.join("rocket_640x427_444.jpg");
    let q = q.to_str().unwrap();
    for (extra, field) in [
        (&["--mode", "bm25"][..], "mode"),
        (&["--mode", "hybrid"][..], "mode"),
        (&["--mmr", "0.5"][..], "mmr"),
        (&["--expand", "rm3"][..], "expand"),
        (&["--rerank", clip][..], "rerank"),
    ] {
        let mut args = vec!["search", "pics", "--image", q];
        args.extend_from_slice(extra);
        let e = fails(&data, &args);
        assert!(e.contains(field), "{extra:?}: {e}");
    }
    let e = fails(&data, &["search", "pics", "--image", q, "--text", "rocket"]);
    assert!(e.contains("--text") || e.contains("cannot be used"), "{e}");
    let e = fails(
        &data,
        &["search", "pics", "--image", "/no/such/picture.png"],
    );
    assert!(e.contains("/no/such/picture.png"), "{e}");
    let not_a_picture = pics.join("broken.png");
    let e = fails(
        &data,
        &["search", "pics", "--image", not_a_picture.to_str().unwrap()],
    );
    assert!(e.contains("image"), "{e}");
}

#[test]
fn a_text_collection_skips_pictures_and_refuses_image_queries() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let docs = dir.path().join("docs");
    std::fs::create_dir(&docs).unwrap();
    std::fs::write(docs.join("a.txt"), "Falcons hunt small birds in flight.").unwrap();
    std::fs::copy(picture(PICTURES[0]), docs.join(PICTURES[0])).unwrap();
    std::fs::copy(picture(PICTURES[1]), docs.join(PICTURES[1])).unwrap();
    let (report, _) = ingest_json(&data, "kb", &docs, &tiny_model());
    assert_eq!(report["documents"], 1, "{report}");
    assert_eq!(report["skipped_images"], 2, "{report}");
    // The plain report says why.
    let out = ok(&data, &["ingest", "kb", docs.to_str().unwrap()]);
    assert!(
        out.contains("skipped 2 images") && out.contains("CLIP"),
        "{out}"
    );
    let e = fails(
        &data,
        &[
            "search",
            "kb",
            "--image",
            picture(PICTURES[0]).to_str().unwrap(),
        ],
    );
    assert!(e.contains("text-only") && e.contains("CLIP"), "{e}");
}
