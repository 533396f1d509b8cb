//! `sextant ingest` and text search (`--text`, `--queries`, TREC runs) end to end, on the tiny
//! fixture model (no setup needed).

use crate::db::{ok, run};
use crate::{stderr, tiny_model};
use serde_json::Value;

#[test]
fn ingest_is_idempotent_and_text_search_writes_trec_runs() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let corpus = dir.path().join("corpus.jsonl");
    let docs = [
        (
            "d1",
            "Falcon",
            "A falcon is a bird of prey. It hunts small birds in flight.",
        ),
        (
            "d2",
            "Trout",
            "A trout is a freshwater fish. Anglers catch trout in rivers.",
        ),
        ("d3", "Oak", "The oak is a tree. Its fruit is the acorn."),
    ];
    let lines: Vec<String> = docs
        .iter()
        .map(|(id, t, x)| {
            serde_json::json!({"_id": id, "title": t, "text": x, "lang": "en"}).to_string()
        })
        .collect();
    std::fs::write(&corpus, lines.join("\n")).unwrap();
    let model = tiny_model();
    let c = corpus.to_str().unwrap();
    let first = ok(
        &data,
        &[
            "--json",
            "ingest",
            "kb",
            "--jsonl",
            c,
            "--model",
            &model,
            "--chunk-tokens",
            "8",
        ],
    );
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["documents"], 3);
    assert!(first["chunks"].as_u64().unwrap() >= 3);
    let again = ok(&data, &["--json", "ingest", "kb", "--jsonl", c]);
    let again: serde_json::Value = serde_json::from_str(&again).unwrap();
    assert_eq!(
        (again["documents"].clone(), again["unchanged"].clone()),
        (0.into(), 3.into())
    );
    // Changed document: its old chunks are replaced, the count of documents stays 3.
    std::fs::write(&corpus, lines[0].replace("bird of prey", "raptor")).unwrap();
    ok(&data, &["ingest", "kb", "--jsonl", c]);
    let f = r#"{"must":[{"key":"doc_id","match":{"value":"d1"}}]}"#;
    let n: u64 = ok(&data, &["count", "kb", "--filter", f])
        .trim()
        .parse()
        .unwrap();
    assert!(n >= 1);
    let texts = ok(
        &data,
        &[
            "--json",
            "scroll",
            "kb",
            "--filter",
            f,
            "--with-payload",
            "--limit",
            "50",
        ],
    );
    let v: serde_json::Value = serde_json::from_str(&texts).unwrap();
    let joined: String = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["payload"]["text"].as_str().unwrap())
        .collect();
    assert!(
        joined.contains("raptor") && !texts.contains("prey"),
        "{texts}"
    );

    // BM25 finds the trout document; chunk payloads carry offsets into the text.
    let r = ok(
        &data,
        &[
            "--json",
            "search",
            "kb",
            "--text",
            "freshwater fish",
            "--mode",
            "bm25",
            "--k",
            "2",
        ],
    );
    let r: serde_json::Value = serde_json::from_str(&r).unwrap();
    assert_eq!(r[0]["documents"][0]["doc_id"], "d2", "{r}");
    let p = &r[0]["documents"][0]["chunks"][0]["payload"];
    let (start, end) = (
        p["start"].as_u64().unwrap() as usize,
        p["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&docs[1].2[start..end], p["text"].as_str().unwrap());

    // A batch of queries as a TREC run, for each mode; one line per document, ranks from 1.
    let queries = dir.path().join("queries.jsonl");
    std::fs::write(&queries, "{\"_id\": \"q1\", \"text\": \"acorn tree\"}\n{\"_id\": \"q2\", \"text\": \"trout river\"}\n").unwrap();
    for mode in ["dense", "bm25", "hybrid", "rerank", "blend"] {
        let (mode_arg, extra): (&str, Vec<&str>) = match mode {
            "rerank" => (
                "hybrid",
                vec!["--rerank", &model, "--rerank-top", "10", "--fusion", "rrf"],
            ),
            "blend" => (
                "hybrid",
                vec![
                    "--rerank",
                    &model,
                    "--rerank-blend",
                    "0.4",
                    "--fusion",
                    "rrf",
                ],
            ),
            // Fusion applies to hybrid mode only (a single source is refused it).
            "hybrid" => (mode, vec!["--fusion", "rrf"]),
            _ => (mode, vec![]),
        };
        let trec = dir.path().join(format!("{mode}.trec"));
        let mut args = vec![
            "search",
            "kb",
            "--queries",
            queries.to_str().unwrap(),
            "--mode",
            mode_arg,
            "--k",
            "3",
            "--run-out",
            trec.to_str().unwrap(),
        ];
        args.extend(extra);
        ok(&data, &args);
        let run = std::fs::read_to_string(&trec).unwrap();
        let lines: Vec<Vec<&str>> = run.lines().map(|l| l.split(' ').collect()).collect();
        assert!(lines.iter().all(|l| l.len() == 6 && l[1] == "Q0"), "{run}");
        // BM25 returns only documents sharing a word with the query; dense ranks them all.
        let q1 = lines.iter().filter(|l| l[0] == "q1").count();
        assert_eq!(q1, if mode == "bm25" { 1 } else { 3 }, "{mode}: {run}");
        let docs_q1: std::collections::HashSet<&str> = lines
            .iter()
            .filter(|l| l[0] == "q1")
            .map(|l| l[2])
            .collect();
        assert_eq!(docs_q1.len(), q1, "{mode}: one line per document");
        if mode == "bm25" || mode == "hybrid" {
            assert_eq!(
                lines.iter().find(|l| l[0] == "q1" && l[3] == "1").unwrap()[2],
                "d3",
                "{mode}: {run}"
            );
        }
    }
    let out = run(&data, &["search", "kb", "--text", "x", "--mode", "nope"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown mode"));
    // Options a query would ignore, or values it cannot use, are refused by name.
    for (args, needle) in [
        (vec!["--weights", "nan,1"], "--weights"),
        (vec!["--weights=-1,1"], "--weights"),
        (vec!["--mode", "dense", "--fusion", "rrf"], "--fusion"),
        (vec!["--mode", "bm25", "--weights", "1"], "--weights"),
        (vec!["--mode", "bm25", "--sources", "dense"], "--sources"),
        (vec!["--mmr", "1.5"], "--mmr"),
        (vec!["--group-size", "0"], "--group-size"),
        (vec!["--rerank-top", "5"], "--rerank"),
        (vec!["--rerank-blend", "0.3"], "--rerank"),
        (
            vec!["--rerank", "maxsim", "--rerank-blend", "1.5"],
            "--rerank-blend",
        ),
    ] {
        let mut a = vec!["search", "kb", "--text", "x"];
        a.extend(args.iter().copied());
        let out = run(&data, &a);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(
            err.contains(needle) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
    }
    // `ask --group-size` is honoured: grouped retrieval, then the context (0 is refused).
    let out = run(&data, &["ask", "kb", "x", "--group-size", "0"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("--group-size"));
    ok(&data, &["ask", "kb", "foxes", "--group-size", "2"]);
    // Creation-time options that differ from the stored settings are refused, not ignored.
    let out = run(
        &data,
        &["ingest", "kb", "--jsonl", "/dev/null", "--redact", "mask"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("--redact"), "{err}");
}

/// A tiny HTTP server answering one chat completion; returns its URL and the request it saw.
fn stub_llm(answer: &str) -> (String, std::thread::JoinHandle<String>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let body =
        serde_json::json!({"choices": [{"message": {"role": "assistant", "content": answer}}]})
            .to_string();
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        let mut len = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap();
            }
            head.push_str(&line);
            if line == "\r\n" || line.is_empty() {
                break;
            }
        }
        let mut req = vec![0u8; len];
        reader.read_exact(&mut req).unwrap();
        let mut out = stream;
        write!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        format!("{head}{}", String::from_utf8_lossy(&req))
    });
    (url, handle)
}

#[test]
fn files_and_directories_are_ingested_and_ask_cites_them() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(docs.join("sub")).unwrap();
    std::fs::write(
        docs.join("falcon.md"),
        "# Falcons\n\nA falcon is a bird of prey.\n\n## Hunting\n\nFalcons hunt small birds in flight.\n",
    )
    .unwrap();
    std::fs::write(
        docs.join("sub/trout.txt"),
        "A trout is a freshwater fish of rivers.",
    )
    .unwrap();
    std::fs::write(docs.join("image.png"), [0u8, 1, 2]).unwrap();
    let html = "<html><head><title>Owls</title><script>var x = 1;</script></head><body>\
        <nav><a href='/'>Home</a> <a href='/birds'>Birds</a></nav><main><h1>Owls</h1>\
        <p>Owls hunt at night &amp; see well in the dark.</p></main><footer>Copyright</footer></body></html>";
    std::fs::write(docs.join("owl.html"), html).unwrap();
    std::fs::write(docs.join("sub/bad.txt"), b"caf\xe9 latte is a coffee drink").unwrap();
    let model = tiny_model();
    let d = docs.to_str().unwrap();
    // A second root with a file of the same relative name: a different document.
    let more = dir.path().join("more");
    std::fs::create_dir_all(more.join("sub")).unwrap();
    std::fs::write(more.join("sub/trout.txt"), "Sea trout migrate to the sea.").unwrap();
    let r = ok(
        &data,
        &[
            "--json",
            "ingest",
            "kb",
            d,
            more.to_str().unwrap(),
            "--model",
            &model,
            "--chunking",
            "paragraphs",
            "--chunk-tokens",
            "12",
        ],
    );
    let r: serde_json::Value = serde_json::from_str(&r).unwrap();
    assert_eq!(
        (r["documents"].clone(), r["replaced"].clone()),
        (5.into(), 0.into()),
        "{r}"
    );
    let again: serde_json::Value = serde_json::from_str(&ok(
        &data,
        &["--json", "ingest", "kb", d, more.to_str().unwrap()],
    ))
    .unwrap();
    assert_eq!(again["unchanged"], 5, "{again}");
    let out = ok(
        &data,
        &["--json", "scroll", "kb", "--with-payload", "--limit", "100"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let points = v["points"].as_array().unwrap();
    let falcon: Vec<&serde_json::Value> = points
        .iter()
        .map(|p| &p["payload"])
        .filter(|p| p["doc_id"] == "docs/falcon.md")
        .collect();
    assert!(!falcon.is_empty(), "{out}");
    assert!(falcon.iter().all(|p| p["title"] == "Falcons"
        && p["source"].as_str().unwrap().ends_with("docs/falcon.md")
        && p["modified"].as_str().unwrap().ends_with('Z')));
    assert!(
        falcon.iter().any(|p| p["section"] == "Hunting"),
        "heading-aware chunks: {falcon:?}"
    );
    assert!(points
        .iter()
        .any(|p| p["payload"]["doc_id"] == "docs/sub/trout.txt"));

    // Extractive answer: cited context within the budget.
    let a = ok(
        &data,
        &[
            "--json",
            "ask",
            "kb",
            "which fish lives in rivers",
            "--mode",
            "bm25",
            "--budget",
            "50",
        ],
    );
    let a: serde_json::Value = serde_json::from_str(&a).unwrap();
    assert!(a["answer"].is_null());
    let passages = a["context"]["passages"].as_array().unwrap();
    assert_eq!(passages[0]["doc_id"], "docs/sub/trout.txt", "{a}");
    assert_eq!(passages[0]["citation"], 1);
    assert!(a["context"]["tokens"].as_u64().unwrap() <= 50);
    let text = ok(
        &data,
        &["ask", "kb", "which fish lives in rivers", "--mode", "bm25"],
    );
    assert!(
        text.contains("[1] ") && text.contains("trout.txt"),
        "{text}"
    );

    // With a language model: the prompt carries the numbered passages, the answer its sources.
    let (url, seen) = stub_llm("Trout live in rivers [1].");
    let out = ok(
        &data,
        &[
            "ask",
            "kb",
            "which fish lives in rivers",
            "--mode",
            "bm25",
            "--llm",
            &url,
            "--llm-model",
            "stub",
        ],
    );
    let request = seen.join().unwrap();
    assert!(
        request.starts_with("POST /v1/chat/completions"),
        "{request}"
    );
    assert!(request.contains("\"model\":\"stub\""), "{request}");
    assert!(
        request.contains("[1] ") && request.contains("freshwater fish"),
        "{request}"
    );
    assert!(
        out.contains("Trout live in rivers [1].") && out.contains("Sources:"),
        "{out}"
    );

    // An unreachable model is a clear error.
    let out = run(
        &data,
        &[
            "ask",
            "kb",
            "fish",
            "--mode",
            "bm25",
            "--llm",
            "http://127.0.0.1:9",
        ],
    );
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot reach"),
        "{out:?}"
    );
    // Nothing to ingest, and a missing path.
    let out = run(&data, &["ingest", "kb"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("give files"));
    let out = run(&data, &["ingest", "kb", "/no/such/dir"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("/no/such/dir"));
}

/// A PDF fixture of sextant-text (`scripts/make-pdf-fixtures.py` describes them).
#[cfg(feature = "pdf")]
fn pdf_fixture(name: &str) -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../sextant-text/tests/fixtures/pdf")
        .join(name)
}

#[cfg(feature = "pdf")]
#[test]
fn pdfs_are_ingested_by_page_bad_ones_skipped_and_ask_cites_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(docs.join("bad")).unwrap();
    std::fs::copy(pdf_fixture("three-pages.pdf"), docs.join("guide.pdf")).unwrap();
    for bad in ["corrupt.pdf", "encrypted.pdf", "no-text.pdf"] {
        std::fs::copy(pdf_fixture(bad), docs.join("bad").join(bad)).unwrap();
    }
    std::fs::write(docs.join("notes.md"), "# Notes\n\nOwls hunt at night.\n").unwrap();
    let model = tiny_model();
    let d = docs.to_str().unwrap();
    let out = run(
        &data,
        &[
            "--json",
            "ingest",
            "kb",
            d,
            "--model",
            &model,
            "--no-splade",
            "--chunk-tokens",
            "16",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["documents"].clone(), r["unreadable_files"].clone()),
        (2.into(), 3.into()),
        "{r}"
    );
    // One warning per bad file, naming it and saying why.
    for (file, why) in [
        ("corrupt.pdf", "cannot parse the PDF"),
        ("encrypted.pdf", "encrypted"),
        ("no-text.pdf", "no text"),
    ] {
        assert!(
            err.lines()
                .any(|l| l.starts_with("warning: skipping") && l.contains(file) && l.contains(why)),
            "{file}: {err}"
        );
    }

    // Extraction is deterministic: ingesting again changes nothing.
    let again = run(&data, &["--json", "ingest", "kb", d]);
    let again: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        (again["unchanged"].clone(), again["documents"].clone()),
        (2.into(), 0.into()),
        "{again}"
    );

    let out = ok(
        &data,
        &["--json", "scroll", "kb", "--with-payload", "--limit", "100"],
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let guide: Vec<&serde_json::Value> = v["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["payload"])
        .filter(|p| p["doc_id"] == "docs/guide.pdf")
        .collect();
    assert!(guide.len() >= 3, "{out}");
    // The extracted text (sextant-text's tests check it against the PDF): chunk offsets are
    // into it, and each chunk's page is the one its start falls in.
    let pages = [
        "Birds of Prey\n\nThe falcon is a bird of prey that hunts small birds in flight.\n\
         Falcons nest on cliffs and on tall buildings.",
        "Freshwater Fish\n\nTrout are freshwater fish of cold rivers and lakes.\n\
         Anglers eat them in a café by the river.",
        "Trees\n\nThe oak is a tree; its fruit is the acorn.\nWood from oak makes strong barrels.",
    ];
    let full = pages.join("\n\n");
    let page_2 = pages[0].len() + 2;
    let page_3 = page_2 + pages[1].len() + 2;
    let mut seen = std::collections::BTreeSet::new();
    for p in &guide {
        assert_eq!(p["format"], "pdf");
        assert_eq!(p["title"], "Field Guide — Birds, Fish and Trees");
        let (a, b) = (
            p["start"].as_u64().unwrap() as usize,
            p["end"].as_u64().unwrap() as usize,
        );
        assert_eq!(&full[a..b], p["text"].as_str().unwrap(), "{p}");
        let page = 1 + usize::from(a >= page_2) + usize::from(a >= page_3);
        assert_eq!(p["page"], page, "{p}");
        seen.insert(page);
    }
    assert_eq!(seen.len(), 3, "chunks on every page");
    assert!(v["points"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["payload"]["doc_id"] == "docs/notes.md" && p["payload"].get("page").is_none()));

    // The answer's context cites the page of the PDF.
    let a = ok(
        &data,
        &[
            "--json",
            "ask",
            "kb",
            "which fish lives in cold rivers",
            "--mode",
            "bm25",
        ],
    );
    let a: serde_json::Value = serde_json::from_str(&a).unwrap();
    let first = &a["context"]["passages"][0];
    assert_eq!(
        (first["doc_id"].clone(), first["page"].clone()),
        ("docs/guide.pdf".into(), 2.into()),
        "{a}"
    );
    let text = ok(
        &data,
        &[
            "ask",
            "kb",
            "which fish lives in cold rivers",
            "--mode",
            "bm25",
        ],
    );
    assert!(
        text.contains("[1] Field Guide — Birds, Fish and Trees")
            && text.contains("guide.pdf, p. 2)"),
        "{text}"
    );

    // A PDF given explicitly is read too; a bad one given explicitly is skipped, not fatal.
    let bad = pdf_fixture("corrupt.pdf");
    let out = run(
        &data,
        &[
            "--json",
            "ingest",
            "kb",
            pdf_fixture("ligatures.pdf").to_str().unwrap(),
            bad.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (r["documents"].clone(), r["unreadable_files"].clone()),
        (1.into(), 1.into()),
        "{r}"
    );
}

/// Every file format from a directory: CSV rows and mbox messages as documents of their own
/// (`FILE#KEY`, columns and headers in the payload, each record's byte range), DOCX, EPUB and
/// e-mail with their metadata, source code chunked by function, and a file that cannot be read
/// skipped with a warning naming the line.
#[test]
fn every_format_is_ingested_with_its_fields_and_offsets() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let docs = dir.path().join("docs");
    std::fs::create_dir_all(&docs).unwrap();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../sextant-text/tests/fixtures/formats");
    for f in [
        "people.csv",
        "archive.mbox",
        "message.eml",
        "report.docx",
        "book.epub",
        "ragged.csv",
    ] {
        std::fs::copy(fixtures.join(f), docs.join(f)).unwrap();
    }
    std::fs::write(
        docs.join("geometry.rs"),
        "/// A point.\npub struct Point { x: f64, y: f64 }\n\nimpl Point {\n    /// Distance to the origin.\n    pub fn norm(&self) -> f64 {\n        (self.x * self.x + self.y * self.y).sqrt()\n    }\n}\n\n/// Parses \"x,y\".\npub fn parse(s: &str) -> Option<Point> {\n    let (a, b) = s.split_once(',')?;\n    Some(Point { x: a.parse().ok()?, y: b.parse().ok()? })\n}\n",
    )
    .unwrap();
    let model = tiny_model();
    let o = run(
        &data,
        &[
            "ingest",
            "kb",
            docs.to_str().unwrap(),
            "--model",
            &model,
            "--no-splade",
            "--chunk-tokens",
            "24",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("ragged.csv: CSV line 3"), "{err}");
    let search = |text: &str| -> Vec<Value> {
        let out = ok(
            &data,
            &[
                "--json",
                "search",
                "kb",
                "--text",
                text,
                "--mode",
                "bm25",
                "--k",
                "20",
                "--group-size",
                "5",
            ],
        );
        let v: Value = serde_json::from_str(&out).unwrap();
        v[0]["documents"].as_array().unwrap().clone()
    };
    let find = |hits: &[Value], id: &str| -> Value {
        hits.iter()
            .find(|d| d["doc_id"] == id)
            .unwrap_or_else(|| panic!("{id} not in {hits:?}"))["chunks"][0]["payload"]
            .clone()
    };
    let hits = search("Ada Lovelace Analytical Engine");
    let row = find(&hits, "docs/people.csv#1");
    assert_eq!(
        (row["name"].as_str(), row["born"].as_i64()),
        (Some("Ada Lovelace"), Some(1815))
    );
    assert_eq!(row["format"], "csv");
    let csv = std::fs::read(docs.join("people.csv")).unwrap();
    let (s, e) = (
        row["record"]["start"].as_u64().unwrap() as usize,
        row["record"]["end"].as_u64().unwrap() as usize,
    );
    assert!(String::from_utf8_lossy(&csv[s..e]).starts_with("ada,Ada Lovelace,1815"));
    let mail = find(&hits, "docs/message.eml");
    assert_eq!(mail["from"], "Ada Lovelace <ada@example.com>");
    assert_eq!(mail["format"], "email");
    let docx = find(&hits, "docs/report.docx");
    assert_eq!(
        (docx["format"].as_str(), docx["offsets"].as_str()),
        (Some("docx"), Some("paragraphs"))
    );
    // The document's own modification time does not overwrite the file's: it is renamed.
    assert!(
        docx["field_modified"].is_string() && docx["modified"].is_string(),
        "{docx}"
    );
    let lunch = search("lunch");
    let ids: Vec<&str> = lunch.iter().filter_map(|d| d["doc_id"].as_str()).collect();
    assert!(
        ids.contains(&"docs/archive.mbox#lunch-1@example.com"),
        "{ids:?}"
    );
    assert!(
        ids.contains(&"docs/archive.mbox#lunch-2@example.com"),
        "{ids:?}"
    );
    let code = search("parse point norm");
    let chunks = code
        .iter()
        .find(|d| d["doc_id"] == "docs/geometry.rs")
        .expect("the code file")["chunks"]
        .as_array()
        .unwrap()
        .clone();
    let sections: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["payload"]["section"].as_str())
        .collect();
    assert!(sections.contains(&"fn parse"), "{sections:?}");
    assert!(
        sections.iter().any(|s| s.ends_with("fn norm")),
        "{sections:?}"
    );
    assert!(chunks
        .iter()
        .all(|c| c["payload"]["code_language"] == "rust"));
}

/// Multi-query and HyDE expansion through a real HTTP language model (a stub): the rewrites
/// are asked for, each searched, and fused (a document only a rewrite finds is returned); the
/// HyDE passage is embedded by the dense source; both are shown by --explain.
#[test]
fn multi_query_and_hyde_ask_the_language_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let docs = dir.path().join("docs.jsonl");
    std::fs::write(
        &docs,
        concat!(
            "{\"_id\": \"fox\", \"text\": \"The red fox hunts voles in the meadow.\"}\n",
            "{\"_id\": \"den\", \"text\": \"A burrow dug under roots shelters the cubs.\"}\n",
            "{\"_id\": \"bread\", \"text\": \"Bread is baked from flour, water and yeast.\"}\n",
        ),
    )
    .unwrap();
    let model = tiny_model();
    ok(
        &data,
        &[
            "ingest",
            "kb",
            "--jsonl",
            docs.to_str().unwrap(),
            "--model",
            &model,
            "--no-splade",
        ],
    );
    let (url, seen) = stub_llm("1. fox burrow\n2. \"where cubs shelter\"\n3. fox");
    let out = ok(
        &data,
        &[
            "search",
            "kb",
            "--text",
            "fox",
            "--mode",
            "bm25",
            "--expand",
            "multi-query",
            "--expand-llm",
            &url,
            "--rewrites",
            "2",
            "--explain",
        ],
    );
    let request = seen.join().unwrap();
    assert!(
        request.contains("Write 2 different search queries for: fox"),
        "{request}"
    );
    assert!(
        out.contains("multi-query rewrites: fox burrow | where cubs shelter"),
        "{out}"
    );
    let ranked: Vec<&str> = out.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(
        ranked[0].contains(". fox "),
        "the query's own best stays first: {out}"
    );
    assert!(
        ranked.iter().any(|l| l.contains(". den ")),
        "found by a rewrite only: {out}"
    );
    assert!(!ranked.iter().any(|l| l.contains(". bread ")), "{out}");

    let (url, seen) = stub_llm("Foxes raise their cubs in a burrow dug under roots.");
    let out = ok(
        &data,
        &[
            "search",
            "kb",
            "--text",
            "where do foxes live",
            "--mode",
            "dense",
            "--expand",
            "hyde",
            "--expand-llm",
            &url,
            "--explain",
        ],
    );
    let request = seen.join().unwrap();
    assert!(
        request.contains("answers: where do foxes live"),
        "{request}"
    );
    assert!(
        out.contains("hyde passage: Foxes raise their cubs"),
        "{out}"
    );
    // Refusals name the option.
    for (args, what) in [
        (
            vec![
                "--mode",
                "bm25",
                "--expand",
                "hyde",
                "--expand-llm",
                "http://127.0.0.1:9",
            ],
            "expand",
        ),
        (vec!["--mode", "bm25", "--expand", "multi-query"], "llm"),
        (
            vec!["--mode", "bm25", "--expand", "rm3", "--rewrites", "2"],
            "rewrites",
        ),
    ] {
        let o = run(
            &data,
            &[&["search", "kb", "--text", "fox"][..], &args[..]].concat(),
        );
        assert_eq!(o.status.code(), Some(2), "{args:?}");
        assert!(stderr(&o).contains(what), "{args:?}: {}", stderr(&o));
    }
}
